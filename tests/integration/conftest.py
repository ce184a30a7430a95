"""Fixtures of the integration tier: moto server and the Intercom emulator over HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from support.foreign import foreign
from support.lambda_handler import fresh_poller_app
from support.stack_fixtures import (
    emulator,
    env,
    poller,
    settings,
    slack_receiver,
    stack,
    subscriber,
    token,
)

__all__ = [
    "app",
    "emulator",
    "env",
    "foreign",
    "poller",
    "settings",
    "slack_receiver",
    "stack",
    "subscriber",
    "token",
]


@pytest.fixture
def app(env: dict[str, str], capfd: pytest.CaptureFixture[str]) -> Iterator[ModuleType]:
    """functions/poller/app.py imported afresh as the module `poller.app`, with its environment set (`env`)."""
    with fresh_poller_app() as module:
        yield module

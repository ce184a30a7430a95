"""Fixtures for the tiers that talk HTTP: one fresh stack and emulator per test, on the session's moto server
(the `moto_server` fixture in tests/conftest.py: one for the whole run, whichever tiers use it).

Not a conftest: tests/integration/conftest.py, tests/faults/conftest.py and tests/infra/conftest.py import what
they use, so the unit tier (sockets off) never sees them. The stack's resources are built from template.yaml
(exportwatch_local.localstack), so tests exercise what is deployed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from exportwatch.config import Settings
from exportwatch.poll import Poller
from exportwatch.wiring import build_poller
from exportwatch_local.emulator import IntercomEmulator
from exportwatch_local.localstack import LocalStack, MotoServer, create_resources, subscribe_queue
from exportwatch_local.slack_receiver import SlackReceiver
from support.paths import TEMPLATE


@pytest.fixture
def token() -> str:
    """This test's Intercom token: random, so a leak check can search every output for it."""
    return f"test-token-{secrets.token_hex(12)}"


@pytest.fixture
def stack(moto_server: MotoServer, token: str) -> LocalStack:
    """This stack's table, bucket, topic and token secret, freshly named for this test."""
    suffix = secrets.token_hex(4)
    return create_resources(moto_server.endpoint_url, token=token, template=TEMPLATE, suffix=suffix)


@pytest.fixture
def emulator(token: str) -> Iterator[IntercomEmulator]:
    """A fresh Intercom emulator on 127.0.0.1 that accepts only this test's token."""
    with IntercomEmulator(token=token) as em:
        yield em


@pytest.fixture
def env(stack: LocalStack, emulator: IntercomEmulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The poller's environment for this stack and emulator, also set in os.environ for the test."""
    values = stack.env(INTERCOM_API_URL=emulator.base_url, POLL_INTERVAL_MINUTES="5")
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


@pytest.fixture
def poller(settings: Settings) -> Poller:
    """Collaborators built exactly as the Lambda builds them (wiring.build_poller), pointed at moto."""
    return build_poller(settings)


@pytest.fixture
def subscriber(moto_server: MotoServer, stack: LocalStack) -> str:
    """An SQS queue subscribed to the stack's topic: what a subscriber receives. Returns the queue URL."""
    return subscribe_queue(moto_server.endpoint_url, stack.topic_arn)


@pytest.fixture
def slack_receiver() -> Iterator[SlackReceiver]:
    """A local Slack incoming-webhook receiver on 127.0.0.1 (real HTTP)."""
    with SlackReceiver() as receiver:
        yield receiver

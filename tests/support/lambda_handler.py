"""The poller Lambda's handler (functions/poller/app.py) as Lambda runs it: imported as the module `poller.app`
(pytest puts functions/ on sys.path), a LambdaContext stand-in, the sample events, its JSON log lines."""

from __future__ import annotations

import importlib
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from support.paths import EVENTS

POLLER_MODULE = "poller.app"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:exportwatch-poller"


@dataclass
class FakeContext:
    """The attributes Powertools and the handler read from a LambdaContext."""

    remaining_ms: int = 600_000
    function_name: str = "exportwatch-poller"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = FUNCTION_ARN
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


class CurrentStdout:
    """A stream that is whatever sys.stdout is when written to (pytest swaps it between test phases)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def _logger_state(logger: logging.Logger) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in vars(logger).items()}


@contextmanager
def fresh_poller_app() -> Iterator[ModuleType]:
    """`poller.app` imported afresh, as in a new Lambda container (the environment must be set first).

    Powertools configures the process-wide "exportwatch" logger on import (level, a stdout handler, markers that
    make later imports skip configuration); it is put back afterwards so other tests' log capture is unaffected
    and the next import writes to that test's captured stdout. The module leaves sys.modules again, so the next
    test's import runs the module's top level once more.
    """
    module: ModuleType | None = None
    with restored_loggers():
        sys.modules.pop(POLLER_MODULE, None)
        try:
            module = importlib.import_module(POLLER_MODULE)
            handler = module.logger.registered_handler
            assert isinstance(handler, logging.StreamHandler)
            handler.setStream(CurrentStdout())
            vars(module)["_poller"] = None  # as in a fresh container
            yield module
        finally:
            if module is not None:
                vars(module)["_poller"] = None
            sys.modules.pop(POLLER_MODULE, None)


@contextmanager
def restored_loggers() -> Iterator[None]:
    """Whatever a handler module's import does to the "exportwatch" and Powertools loggers (handlers, level,
    propagation, and the markers Powertools leaves so a later import skips its set-up) and to the root handlers'
    filters is undone on exit, so the tests that follow, in any order, see the loggers as they were."""
    touched = [logging.getLogger(n) for n in ("exportwatch", "aws_lambda_powertools")]
    saved = [(lg, _logger_state(lg)) for lg in touched]
    root_filters = {h: list(h.filters) for h in logging.root.handlers}
    try:
        yield
    finally:
        for lg, state in saved:
            vars(lg).clear()
            vars(lg).update(state)
        for handler, filters in root_filters.items():
            handler.filters[:] = filters


def json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def emf_blobs(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if "_aws" in line]

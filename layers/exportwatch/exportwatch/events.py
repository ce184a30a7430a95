"""Parsing what invokes the poller: EventBridge Scheduler, an EventBridge rule, or an operator's event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class InvalidEvent(ValueError):
    """The invocation event is not one the poller understands; the text is one line for the log."""


@dataclass(frozen=True)
class PollRequest:
    all_jobs: bool = False

    @classmethod
    def from_event(cls, event: Any) -> PollRequest:
        # EventBridge Scheduler delivers its (empty by default) JSON input; an EventBridge rule delivers a
        # "Scheduled Event"; an operator may invoke with {"all": true} to ignore back-off.
        if event is None:
            return cls()
        if not isinstance(event, dict):
            raise InvalidEvent(f"poller event must be a JSON object, got {type(event).__name__}")
        all_jobs = event.get("all", False)
        if not isinstance(all_jobs, bool):
            raise InvalidEvent(f'"all" must be true or false, got {type(all_jobs).__name__}')
        return cls(all_jobs=all_jobs)

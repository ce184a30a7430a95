"""Parsing what invokes the functions: the poller's schedule or operator events, the Slack notifier's SNS events."""

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


def sns_event_problem(event: Any) -> str | None:
    """Why `event` is not an SNS event (one line), or None. SNS always sends Records[].Sns.Message."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not records:
        return f"not an SNS event: no Records (got a {type(event).__name__})"
    for record in records:
        sns = record.get("Sns") if isinstance(record, dict) else None
        if not isinstance(sns, dict) or not isinstance(sns.get("Message"), str):
            return "not an SNS event: a record has no Sns.Message string"
    return None

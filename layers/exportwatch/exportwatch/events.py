"""Parsing what invokes the functions: the poller's schedule or operator events, the Slack notifier's SNS events."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes import SNSEvent


class InvalidEvent(ValueError):
    """The invocation event is not one the function understands; the text is one line for the log."""


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


class SnsNotifications(SNSEvent):
    """An SNS event as parse_sns_event checked it: read it through Powertools' SNSEvent properties only.

    Every record has an Sns.Message string; its MessageId is a string, its Subject and TopicArn a string or
    None (Lambda sends a null Subject when none was published), and its MessageAttributes a mapping of
    {"Type", "Value"} strings (empty when SNS sent none, or something that is not a mapping).
    """


def parse_sns_event(event: Any) -> SnsNotifications:
    """The Slack notifier's event, checked once; InvalidEvent (one line) when it is not an SNS event at all.

    Only the structure SNS always sends is required (Records[].Sns.Message); the other fields are made the types
    SNSMessage promises, so a message with odd attributes is still posted rather than dropped. `event` itself
    is not changed (Lambda keeps it for the dead-letter queue as it came).
    """
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not records:
        raise InvalidEvent(f"not an SNS event: no Records (got a {type(event).__name__})")
    checked = []
    for record in records:
        sns = record.get("Sns") if isinstance(record, dict) else None
        if not isinstance(sns, dict) or not isinstance(sns.get("Message"), str):
            raise InvalidEvent("not an SNS event: a record has no Sns.Message string")
        message = {
            **sns,
            "MessageId": str(sns.get("MessageId") or ""),
            "Subject": _text_or_none(sns.get("Subject")),
            "TopicArn": _text_or_none(sns.get("TopicArn")),
            "MessageAttributes": _attributes(sns.get("MessageAttributes")),
        }
        checked.append({**record, "Sns": message})
    return SnsNotifications({**event, "Records": checked})


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _attributes(given: object) -> dict[str, dict[str, str]]:
    if not isinstance(given, Mapping):
        return {}
    return {
        str(name): (
            {"Type": str(attr.get("Type", "")), "Value": str(attr.get("Value", ""))}
            if isinstance(attr, Mapping)
            else {"Type": "String", "Value": str(attr)}
        )
        for name, attr in given.items()
    }

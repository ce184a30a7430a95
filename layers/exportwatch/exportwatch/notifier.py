"""One SNS message per outcome: the JSON contract subscribers (and their filter policies) rely on.

The body is stable JSON (sorted keys) so a subscriber can parse it and a test can compare it byte for byte.
MessageAttributes `event` and `job_identifier` let a subscription filter without parsing the body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from exportwatch.model import Event, Job

SCHEMA_VERSION = 1

_SUBJECTS = {
    Event.COMPLETED: "export {id} completed and copied to S3",
    Event.FAILED: "export {id} failed",
    Event.NOT_FOUND: "export {id} not found at Intercom",
    Event.NO_DATA: "export {id} finished with no data",
    Event.CANCELED: "export {id} was canceled",
    Event.EXPIRED: "export {id} expired before it was copied",
}


@dataclass(frozen=True)
class Notification:
    event: Event
    job_identifier: str
    body: dict[str, Any]

    @property
    def message(self) -> str:
        return json.dumps(self.body, sort_keys=True, separators=(", ", ": "))

    @property
    def subject(self) -> str:
        # SNS subjects: ASCII, no newlines, at most 100 characters.
        text = "exportwatch: " + _SUBJECTS[self.event].format(id=self.job_identifier)
        return text.encode("ascii", "replace").decode()[:100]

    @property
    def attributes(self) -> dict[str, dict[str, str]]:
        return {
            "event": {"DataType": "String", "StringValue": self.event.value},
            "job_identifier": {"DataType": "String", "StringValue": self.job_identifier},
        }


def notification_for(job: Job) -> Notification:
    """Render the notification for a job whose outcome is decided (its state is final)."""
    event = Event.for_state(job.state)
    body: dict[str, Any] = {
        "version": SCHEMA_VERSION,
        "event": event.value,
        "job_identifier": job.job_identifier,
        "intercom_status": job.intercom_status or "",
        "occurred_at": job.outcome_at,
        "tracked_at": job.tracked_at,
    }
    if job.created_at_after and job.created_at_before:
        body["created_at_after"] = job.created_at_after
        body["created_at_before"] = job.created_at_before
    if job.download_expires_at:
        body["download_expires_at"] = job.download_expires_at
    if event is Event.COMPLETED:
        body.update(
            s3_uri=job.s3_uri,
            size_bytes=job.size_bytes,
            sha256=job.sha256,
            content_type=job.content_type,
        )
    else:
        body["reason"] = job.outcome_reason or event.value
    return Notification(event=event, job_identifier=job.job_identifier, body=body)


class Notifier:
    def __init__(self, sns: Any, topic_arn: str) -> None:
        self._sns = sns
        self.topic_arn = topic_arn

    def publish(self, note: Notification) -> str:
        resp = self._sns.publish(
            TopicArn=self.topic_arn,
            Subject=note.subject,
            Message=note.message,
            MessageAttributes=note.attributes,
        )
        return str(resp["MessageId"])

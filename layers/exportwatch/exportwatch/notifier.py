"""One SNS message per outcome: the JSON contract subscribers (and their filter policies) rely on.

The body is stable JSON (sorted keys) so a subscriber can parse it and a test can compare it byte for byte.
MessageAttributes `event`, `job_identifier` and `workspace` (and `dataset`, for a reporting export) let a
subscription filter without parsing the body.

It is published with MessageStructure=json: `default` (every protocol without its own key: Lambda, HTTPS,
email-json...) and `sqs` carry that JSON unchanged; `email` carries the plain text a person reads
(render.email_text), rendered from the same JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from exportwatch.model import Event, Job, from_epoch, human_duration, iso, parse_iso
from exportwatch.outcomes import NOTICES, RUNNING_STATUSES
from exportwatch.render import email_text, region_from_arn
from exportwatch.reporting import DATASET_RE

SCHEMA_VERSION = 1
SUBJECT_MAX = 100  # SNS: ASCII, no line breaks, at most 100 characters
SNS_MESSAGE_MAX_BYTES = 262_144  # one publish: the Message (all protocols' texts) and its attributes
_ATTRIBUTES_RESERVE = 1024  # room kept for the message attributes (event, job_identifier, workspace)


class NotificationTooLarge(ValueError):
    """The message would exceed SNS's 256 KB limit.

    Not reachable from the poller: every field it writes is bounded (job ids <= 64 characters, S3 keys <= 1024
    bytes, reasons and errors cut to a few hundred characters), so a notification is a few KB. Only a body
    built by hand can be this large, and then it is refused whole rather than published cut.
    """


@dataclass(frozen=True)
class Notification:
    event: Event
    job_identifier: str
    body: dict[str, Any]
    workspace: str = "default"  # the job's workspace: the `workspace` attribute subscribers filter on
    dataset: str | None = None  # a reporting export's dataset: the `dataset` attribute (content exports have none)

    @property
    def message(self) -> str:
        return json.dumps(self.body, sort_keys=True, separators=(", ", ": "))

    @property
    def subject(self) -> str:
        # SNS subjects: ASCII, no newlines, at most 100 characters. A very long job id is shortened in the
        # middle rather than cutting the outcome off the end.
        job_id = self.job_identifier.encode("ascii", "replace").decode()
        template = "exportwatch: " + NOTICES[self.event].subject
        room = SUBJECT_MAX - len(template.format(id=""))
        if len(job_id) > room:
            keep = room - 3
            job_id = job_id[: keep - keep // 3] + "..." + job_id[-(keep // 3) :]
        return "".join(ch if ch.isprintable() else "?" for ch in template.format(id=job_id))[:SUBJECT_MAX]

    def email(self, region: str | None) -> str:
        """The plain-text email (the `email` protocol's message); `region` is the topic's, for the console link."""
        return email_text(self.body, region=region)

    def structured_message(self, region: str | None) -> str:
        """The Message for Publish(MessageStructure="json"): one text per protocol, `default` required."""
        message = self.message
        text = json.dumps({"default": message, "sqs": message, "email": self.email(region)})
        size = len(text.encode())
        if size > SNS_MESSAGE_MAX_BYTES - _ATTRIBUTES_RESERVE:
            raise NotificationTooLarge(
                f"notification for {self.job_identifier} is {size} bytes; SNS takes at most {SNS_MESSAGE_MAX_BYTES}"
            )
        return text

    @property
    def attributes(self) -> dict[str, dict[str, str]]:
        return {
            "event": {"DataType": "String", "StringValue": self.event.value},
            "job_identifier": {"DataType": "String", "StringValue": self.job_identifier},
            "workspace": {"DataType": "String", "StringValue": self.workspace},
        } | ({"dataset": {"DataType": "String", "StringValue": self.dataset}} if self.dataset else {})


def _dataset(job: Job) -> str | None:
    """A reporting job's dataset, only when it follows the rule (a row read back can hold anything)."""
    dataset = job.dataset if job.reporting else None
    return dataset if dataset is not None and DATASET_RE.fullmatch(dataset) else None


def _base_body(job: Job, event: Event, occurred_at: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": SCHEMA_VERSION,
        "event": event.value,
        "job_identifier": job.job_identifier,
        "intercom_status": job.intercom_status or "",
        "occurred_at": occurred_at,
        "tracked_at": job.tracked_at,
        "workspace": job.workspace,
        "kind": job.kind,
        "dataset": _dataset(job),
    }
    if job.window_start and job.window_end:  # a ledger window's job: its whole UTC days, both included
        body["window_start"] = job.window_start
        body["window_end"] = job.window_end
    if job.created_at_after and job.created_at_before:
        body["created_at_after"] = job.created_at_after
        body["created_at_before"] = job.created_at_before
    if job.download_expires_at:
        body["download_expires_at"] = job.download_expires_at
    return body


def notification_for(job: Job) -> Notification:
    """Render the notification for a job whose outcome is decided (its state is final)."""
    event = Event.for_state(job.state)
    body = _base_body(job, event, job.outcome_at)
    if event is Event.COMPLETED:
        body.update(
            s3_uri=job.s3_uri,
            size_bytes=job.size_bytes,
            sha256=job.sha256,
            content_type=job.content_type,
        )
    else:
        body["reason"] = job.outcome_reason or event.value
    return Notification(
        event=event, job_identifier=job.job_identifier, body=body, workspace=job.workspace, dataset=_dataset(job)
    )


def warning_for(job: Job, event: Event, now: float) -> Notification:
    """Render an early warning (export.expiring or export.stuck) for a job that is still watched, as of `now`.

    expiring: `download_expires_at` and `time_left_seconds` (until Intercom deletes its copy).
    stuck: `pending_since` (when exportwatch started tracking the job) and `pending_seconds` (its age).
    Both: `reason`, a sentence for a person.
    """
    if not event.is_warning:
        raise ValueError(f"{event} is not a warning")
    body = _base_body(job, event, iso(from_epoch(now)))
    if event is Event.EXPIRING:
        expires = parse_iso(job.download_expires_at)
        if expires is None:
            raise ValueError(f"job {job.job_identifier} has no download_expires_at to warn about")
        left = max(0, int(expires.timestamp() - now))
        body["time_left_seconds"] = left
        reason = (
            f"Intercom deletes its copy at {iso(expires)}, in {human_duration(left)}, and the copy to S3 has not "
            "succeeded yet"
        )
        if job.last_error:
            reason += f" (last error: {job.last_error})"
    else:
        since = parse_iso(job.tracked_at)
        if since is None:
            raise ValueError(f"job {job.job_identifier} has no tracked_at to measure its age from")
        age = max(0, int(now - since.timestamp()))
        body["pending_since"] = iso(since)
        body["pending_seconds"] = age
        if job.intercom_status in RUNNING_STATUSES:
            reason = f"Intercom still reports the export job {job.intercom_status} after {human_duration(age)}"
        else:
            reason = f"Intercom has not reported the export job finished in {human_duration(age)}"
            if job.last_error:
                reason += f" (last error: {job.last_error})"
        reason += "; Intercom gives up on export jobs that run longer than 12 hours"
    body["reason"] = reason
    return Notification(
        event=event, job_identifier=job.job_identifier, body=body, workspace=job.workspace, dataset=_dataset(job)
    )


class Notifier:
    def __init__(self, sns: Any, topic_arn: str) -> None:
        self._sns = sns
        self.topic_arn = topic_arn
        self.region = region_from_arn(topic_arn)  # the console link in the email points at this region

    def publish(self, note: Notification) -> str:
        resp = self._sns.publish(
            TopicArn=self.topic_arn,
            Subject=note.subject,
            Message=note.structured_message(self.region),
            MessageStructure="json",
            MessageAttributes=note.attributes,
        )
        return str(resp["MessageId"])

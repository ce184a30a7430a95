"""Fixed jobs, one or more per outcome: the inputs of the reviewed snapshots, the sample SNS events and the docs.

Every value is pinned (times, sizes, hashes, bucket, region), so what is rendered from them never changes unless
the renderer does. The topic ARN's region (eu-west-1) is deliberately not the SDK's default region, to show that
the console link takes its region from the topic.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Final

from exportwatch.model import Event, Job, JobState
from exportwatch.outcomes import Outcome, final_state

SAMPLE_TOPIC_ARN: Final = "arn:aws:sns:eu-west-1:123456789012:exportwatch-NotifyTopic-Q1W2E3R4T5Y6"
SAMPLE_BUCKET: Final = "exportwatch-exportbucket-1a2b3c4d5e6f"
_SINCE: Final = "2026-11-01T00:00:00Z"
_UNTIL: Final = "2026-11-07T23:59:59Z"

_BASE: Final = Job(
    job_identifier="orzzsbd7hk67xyu",
    tracked_at="2026-11-08T09:00:12Z",
    last_checked_at="2026-11-08T09:35:02Z",
    attempts=8,
    created_at_after=_SINCE,
    created_at_before=_UNTIL,
    outcome_at="2026-11-08T09:35:04Z",
)


def _job(**changes: object) -> Job:
    return replace(_BASE, **changes)  # type: ignore[arg-type]


# name -> job; the names are the snapshot file names. Every Event appears at least once.
SAMPLE_JOBS: Final[dict[str, Job]] = {
    "completed": _job(
        state=JobState.COMPLETED,
        intercom_status="completed",
        download_expires_at="2026-11-10T09:34:41Z",
        s3_uri=f"s3://{SAMPLE_BUCKET}/intercom-exports/default/content/dt=2026-11-08/orzzsbd7hk67xyu.zip",
        size_bytes=48_713_562,
        sha256="9f2c1a4e5b6d7c8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6",
        content_type="application/zip",
    ),
    # Tracked with `exportwatch track ID`: the date range is not known.
    "completed_tracked_by_id": _job(
        job_identifier="k3j9x2m8q7w4e1r",
        created_at_after=None,
        created_at_before=None,
        state=JobState.COMPLETED,
        intercom_status="complete",
        download_expires_at="2026-11-10T09:34:41Z",
        s3_uri=f"s3://{SAMPLE_BUCKET}/intercom-exports/default/content/dt=2026-11-08/k3j9x2m8q7w4e1r.gz",
        size_bytes=1_536,
        sha256="0b1c2d3e4f5a697887a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4",
        content_type="application/gzip",
    ),
    "failed": _job(
        state=JobState.FAILED,
        intercom_status="failed",
        outcome_reason=final_state(Outcome.FAILED)[1],  # the poller's reason for these, from the table
    ),
    # Intercom finished, but exportwatch refused to follow the download link: not Intercom's failure.
    "failed_foreign_origin": _job(
        state=JobState.FAILED,
        intercom_status="completed",
        download_expires_at="2026-11-10T09:34:41Z",
        outcome_reason=(
            "download_url is on https://downloads.example.net, not the Intercom API origin https://api.intercom.io: "
            "refusing to send the token there"
        ),
    ),
    "not_found": _job(
        job_identifier="zz9plural8alpha",
        created_at_after=None,
        created_at_before=None,
        state=JobState.NOT_FOUND,
        intercom_status="not_found",
        outcome_reason=f"{final_state(Outcome.NOT_FOUND)[1]} (Export job not found for identifier: zz9plural8alpha)",
    ),
    "no_data": _job(
        state=JobState.NO_DATA,
        intercom_status="no_data",
        created_at_after="2026-11-07T10:00:00Z",
        created_at_before="2026-11-07T12:30:00Z",
        outcome_reason=final_state(Outcome.NO_DATA)[1],
    ),
    "canceled": _job(
        state=JobState.CANCELED,
        intercom_status="canceled",
        outcome_reason=final_state(Outcome.CANCELED)[1],
    ),
    "expired": _job(
        state=JobState.EXPIRED,
        intercom_status="completed",
        download_expires_at="2026-11-06T22:10:00Z",
        outcome_reason="Intercom's copy expired at 2026-11-06T22:10:00Z before it was copied",
    ),
    # The longest id Intercom-shaped validation accepts: the Subject must still name the outcome.
    "expired_long_id": _job(
        job_identifier="a" * 30 + "-" + "b" * 33,
        created_at_after=None,
        created_at_before=None,
        state=JobState.EXPIRED,
        intercom_status="completed",
        download_expires_at="2026-11-06T22:10:00Z",
        outcome_reason="Intercom no longer has the file: download answered 410 Gone",
    ),
}


def _at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# name -> (job as it is when the warning is noticed, the warning, when it is noticed). The job is still watching.
SAMPLE_WARNINGS: Final[dict[str, tuple[Job, Event, float]]] = {
    # Intercom finished, but every download so far broke off; five hours before Intercom deletes the file.
    "expiring": (
        _job(
            intercom_status="completed",
            tracked_at="2026-11-08T09:00:12Z",
            completed_seen_at="2026-11-08T09:35:02Z",
            download_expires_at="2026-11-10T09:34:41Z",
            outcome_at=None,
            last_error="copy: download ended after 1048576 of 48713562 bytes (Content-Length)",
        ),
        Event.EXPIRING,
        _at("2026-11-10T04:20:07Z"),
    ),
    # Still pending at Intercom twelve hours after `exportwatch start`.
    "stuck": (
        _job(
            intercom_status="pending",
            tracked_at="2026-11-07T20:02:11Z",
            last_checked_at="2026-11-08T08:05:37Z",
            outcome_at=None,
        ),
        Event.STUCK,
        _at("2026-11-08T08:05:37Z"),
    ),
    # Tracked by id (no date range), and in progress.
    "stuck_tracked_by_id": (
        _job(
            job_identifier="k3j9x2m8q7w4e1r",
            created_at_after=None,
            created_at_before=None,
            intercom_status="in_progress",
            tracked_at="2026-11-07T18:30:00Z",
            outcome_at=None,
        ),
        Event.STUCK,
        _at("2026-11-08T07:45:00Z"),
    ),
}

# Messages on the topic that exportwatch did not publish (another publisher, a hand-typed test, a newer schema).
FOREIGN_MESSAGES: Final[dict[str, tuple[str | None, str]]] = {
    "foreign_text": ("Scheduled maintenance", "Heads up: the data warehouse is read-only tonight 22:00-23:00 UTC."),
    "foreign_json": (
        None,
        '{"AlarmName":"exportwatch-poller-errors","NewStateValue":"ALARM","NewStateReason":"Threshold Crossed: '
        '1 datapoint [2.0 (08/11/26 09:30:00)] was greater than the threshold (0.0).","Region":"EU (Ireland)"}',
    ),
    "foreign_malformed_json": ("exportwatch: export orzzsbd7hk67xyu completed", '{"event": "export.completed", '),
    "foreign_unknown_event": (
        "exportwatch: export orzzsbd7hk67xyu archived",
        '{"event": "export.archived", "job_identifier": "orzzsbd7hk67xyu", "version": 2}',
    ),
}

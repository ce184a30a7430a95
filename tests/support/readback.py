"""What the rest of the system holds after a cycle: the raw table item, the subscriber's queue, the emulator's log."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from exportwatch_local.emulator import IntercomEmulator, RecordedRequest
from exportwatch_local.localstack import LocalStack, ReceivedNotification, aws_client, receive_notifications

_deser = TypeDeserializer()


def raw_item(stack: LocalStack, job_id: str) -> dict[str, Any]:
    """The job's table item exactly as stored, deserialized (numbers are Decimal); {} when there is none."""
    ddb = aws_client("dynamodb", stack.endpoint_url)
    resp = ddb.get_item(TableName=stack.table_name, Key={"job_identifier": {"S": job_id}}, ConsistentRead=True)
    return {k: _deser.deserialize(v) for k, v in resp.get("Item", {}).items()}


def drain(stack: LocalStack, queue_url: str) -> list[ReceivedNotification]:
    """Everything on the subscriber queue now (moto delivers SNS -> SQS during Publish, nothing is in flight)."""
    return receive_notifications(stack.endpoint_url, queue_url, timeout=0.9)


def published(notes: Iterable[ReceivedNotification]) -> Counter[tuple[str, str]]:
    """(job_identifier, event) -> how many times a subscriber received it."""
    return Counter((n.attributes["job_identifier"], n.attributes["event"]) for n in notes)


def status_requests(emulator: IntercomEmulator, job_ids: Iterable[str] | None = None) -> list[RecordedRequest]:
    """Status calls Intercom received (for the given jobs), oldest first."""
    wanted = None if job_ids is None else set(job_ids)
    return [
        r
        for r in emulator.requests
        if r.method == "GET"
        and r.path.startswith("/export/content/data/")
        and (wanted is None or r.job_identifier in wanted)
    ]


def rate_limited_status_calls(emulator: IntercomEmulator, job_ids: Iterable[str]) -> int:
    """How many of these jobs' status calls the emulator answered 429 (over its rate limit).

    The emulator records every request, but counts a job's `status_calls` only for calls that got past its rate
    limit (and these jobs are scripted without faults), so the difference is exactly the 429s it served.
    """
    ids = list(job_ids)
    answered = 0
    for job_id in ids:
        info = emulator.job_info(job_id)
        assert info is not None, job_id
        answered += int(info["status_calls"])  # type: ignore[call-overload]
    return len(status_requests(emulator, ids)) - answered


def calls_per_window(emulator: IntercomEmulator, window_seconds: float) -> Counter[int]:
    """Every API call Intercom received, by the emulator's aligned rate-limit window it fell in."""
    return Counter(math.floor(r.time / window_seconds) for r in emulator.requests)


def archive_key(stack: LocalStack, job_id: str, ext: str, prefix: str = "intercom-exports/") -> str:
    """Where docs/archive.md says a job's export lands: {prefix}{workspace}/content/dt=YYYY-MM-DD/{job_id}.{ext}, the
    day being the window's first day or, for a job tracked by hand, the UTC day it was first seen completed (read
    from the table: when that happened is the code's to record, where it goes is the layout's)."""
    item = raw_item(stack, job_id)
    day = str(item.get("window_start") or str(item.get("completed_seen_at", ""))[:10])
    return f"{prefix}{item.get('workspace', 'default')}/content/dt={day}/{job_id}.{ext}"


def keys_of_job(stack: LocalStack, job_id: str, prefix: str = "intercom-exports/") -> list[str]:
    """Every object in the bucket, under `prefix`, whose file name is the job's id plus an extension."""
    s3 = aws_client("s3", stack.endpoint_url)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=stack.bucket, Prefix=prefix)
    keys = (o["Key"] for page in pages for o in page.get("Contents", []))
    return [k for k in keys if k.rsplit("/", 1)[-1].startswith(f"{job_id}.")]

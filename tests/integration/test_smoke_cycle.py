"""One completed export, end to end through the shared fixtures: status -> S3 -> SNS -> SQS subscriber."""

from __future__ import annotations

import hashlib

from exportwatch.poll import Poller, run_cycle
from exportwatch_local.emulator import IntercomEmulator
from exportwatch_local.localstack import LocalStack, aws_client, receive_notifications
from support.tracking import track


def test_completed_export_is_copied_and_notified_once(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    job_id = emulator.add_job("completed", steps=["completed"])
    track(poller, job_id)

    summary = run_cycle(poller)

    assert [r.event for r in summary.results] == ["export.completed"]
    notes = receive_notifications(stack.endpoint_url, subscriber, expect=1)
    assert len(notes) == 1 and notes[0].body is not None
    body = notes[0].body
    s3 = aws_client("s3", stack.endpoint_url)
    bucket, key = body["s3_uri"].removeprefix("s3://").split("/", 1)
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert data[:4] == b"PK\x03\x04"
    assert body["sha256"] == hashlib.sha256(data).hexdigest() and body["size_bytes"] == len(data)
    assert run_cycle(poller).due == 0  # settled: nothing left to do

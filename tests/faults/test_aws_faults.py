"""AWS refusing calls: S3 mid multipart upload, SNS Publish, DynamoDB conditional writes (leases).

Faults are injected with botocore event hooks on the poller's own clients (built as wiring.build_poller builds
them), so the code under test sees exactly what a refusing AWS would give it: a ClientError from that call.
Cycles run in-process (run_cycle, what the Lambda handler calls); the lease tests also run the CLI.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import pytest

from exportwatch.archive import CopySettings
from exportwatch_local.localstack import aws_client
from support.aws import set_attrs

from .harness import Expect, FailOnce, FaultHarness, MiB

BIG = 12_000_000  # three 5 MiB parts


@pytest.mark.fault("AWS S3: UploadPart refused on the 2nd of 3 parts (12 MB export, 5 MiB parts), once")
def test_s3_failing_mid_multipart_upload_leaves_nothing_and_is_copied_next_cycle(harness: FaultHarness) -> None:
    h = harness
    job_id = h.add("completed", Expect(downloads=2), steps=["completed"], size_bytes=BIG)
    h.track(job_id)
    refuse = FailOnce("UploadPart", nth=2)
    clients = h.clients({"before-call.s3.UploadPart": refuse})
    calls: list[str] = []
    clients["s3"].meta.events.register("after-call.s3", lambda model, **_: calls.append(model.name))
    poller = h.poller(clients=clients, copy_settings=CopySettings(part_size=5 * MiB))

    first = h.cycle(poller)

    [result] = first.results
    assert (result.action, result.event) == ("retry", None), result
    assert result.detail.startswith("copy: ") and "UploadPart" in result.detail
    assert refuse.raised == 1
    assert calls.count("CreateMultipartUpload") == 1 and calls.count("AbortMultipartUpload") == 1, calls
    assert "CompleteMultipartUpload" not in calls
    h.assert_watching(job_id, "injected fault in UploadPart")  # no object at the final key
    assert h.uploads() == []  # the multipart upload was aborted, not left to the lifecycle rule

    # The next cycle (the same warm container: the same clients) copies it whole.
    calls.clear()
    second = h.cycle(poller)

    assert second.events == {"export.completed": 1}
    assert calls.count("UploadPart") == 3 and calls.count("CompleteMultipartUpload") == 1, calls
    head = aws_client("s3", h.stack.endpoint_url).head_object(Bucket=h.stack.bucket, Key=h.key(job_id))
    assert head["ContentLength"] == BIG and head["ETag"].strip('"').endswith("-3")
    h.verify()
    h.detail = "cycle 1: no object, upload aborted; cycle 2: copied in 3 parts"


@pytest.mark.fault("AWS SNS: Publish refused twice (3 jobs: completed, failed, no_data)")
def test_sns_publish_failure_is_published_next_cycle_never_twice(harness: FaultHarness) -> None:
    h = harness
    jobs = [
        h.add("completed", steps=["completed"]),
        h.add("failed", Expect(event="export.failed", downloads=0), steps=["failed"]),
        h.add("no_data", Expect(event="export.no_data", downloads=0), steps=["no_data"]),
    ]
    h.track(*jobs)
    refuse = FailOnce("Publish", nth=1, times=2)
    poller = h.poller(clients=h.clients({"before-call.sns.Publish": refuse}))
    t0 = time.time()
    interval = poller.settings.poll_interval_seconds
    poller.clock = lambda: t0

    first = h.cycle(poller, all_jobs=False)  # scheduled cycles from here on: no --all

    assert refuse.raised == 2
    published = [r.job_identifier for r in first.results if r.event]
    retried = [r for r in first.results if r.action == "retry"]
    assert len(published) == 1 and len(retried) == 2, first.to_dict()
    for r in retried:
        it = h.item(r.job_identifier)
        assert it["state"] == r.state != "watching"  # the outcome is recorded...
        assert "notified_at" not in it and it["due_shard"] == "due"  # ...and still due, to be announced
        assert it["last_error"].startswith("publish export.") and it["next_check_at"] == int(t0) + interval
        assert h.events_for(r.job_identifier) == []
    assert h.events_for(published[0]) == [h.expected[published[0]].event]

    poller.clock = lambda: t0 + interval  # the next scheduled cycle
    second = h.cycle(poller, all_jobs=False)

    assert sorted(r.job_identifier for r in second.results if r.event) == sorted(r.job_identifier for r in retried)
    assert all(r.action == "notified" for r in second.results), second.to_dict()  # no copy redone
    for later in (t0 + 2 * interval, t0 + 3 * interval):  # never again
        poller.clock = functools.partial(float, later)
        assert h.cycle(poller, all_jobs=True).due == 0
    assert refuse.calls == 5  # 2 refused + 3 accepted: one accepted publish per job
    h.verify()
    h.detail = "2 outcomes published on the next scheduled cycle, no copy redone, nothing after"


@pytest.mark.fault("AWS DynamoDB: claim refused, another owner's live lease (then it lapses)")
def test_live_lease_of_another_owner_is_respected_until_it_lapses(harness: FaultHarness) -> None:
    h = harness
    held, free = h.add("completed", steps=["completed"]), h.add("completed", steps=["completed"])
    h.track(held, free)
    now = int(time.time())
    assert h.poller().store.claim(held, "another-poller", now, 900, None) is not None

    first = h.cli()

    assert first.job(held)["action"] == "skipped" and first.job(free)["event"] == "export.completed"
    assert h.emulator.requests_for(held) == []  # not even a status call
    it = h.item(held)
    assert it["lease_owner"] == "another-poller" and it["state"] == "watching" and it["due_shard"] == "due"
    assert h.events_for(held) == []

    set_attrs(h.stack, held, lease_until=now - 1)  # the other poller died; its lease ran out
    second = h.cli()

    assert second.job(held)["event"] == "export.completed"
    assert [j["job_identifier"] for j in second.summary["jobs"]] == [held]
    h.verify()
    h.detail = "skipped while the lease was live (no Intercom call), copied once it lapsed"


@pytest.mark.fault("AWS DynamoDB: lease taken over mid-copy, checkpoint refused (LeaseLost)")
def test_lease_lost_mid_cycle_publishes_nothing_and_the_new_owner_finishes(harness: FaultHarness) -> None:
    h = harness
    # Two downloads: the first owner's copy is never recorded (its checkpoint is refused), so the new owner copies
    # again, to the same key, the same bytes.
    job_id = h.add("completed", Expect(downloads=2), steps=["completed"])
    h.track(job_id)
    lease = h.settings.lease_seconds
    store = h.poller().store
    stolen: list[bool] = []

    def take_over(**_: Any) -> None:  # right after the copy reached S3: our lease lapsed and another took it
        stolen.append(store.claim(job_id, "new-owner", int(time.time()) + lease + 1, lease, None) is not None)

    slow = h.poller(clients=h.clients({"after-call.s3.PutObject": take_over}))
    summary = h.cycle(slow, owner="slow-owner")

    assert stolen == [True]
    [result] = summary.results
    assert result.action == "skipped" and "taken over" in result.detail and result.event is None, result
    assert h.events_for(job_id) == []  # LeaseLost before the publish
    it = h.item(job_id)
    assert it["lease_owner"] == "new-owner" and it["state"] == "watching" and "notified_at" not in it
    assert "s3_uri" not in it

    new_owner = h.poller()
    new_owner.clock = lambda: time.time() + 2 * lease + 10  # its own lease (from its clock) has run out by now
    summary = h.cycle(new_owner, owner="new-owner")

    assert summary.events == {"export.completed": 1}
    h.verify()
    h.detail = "old owner's checkpoint refused, nothing published; the new owner copied again and announced once"


@pytest.mark.fault("AWS DynamoDB: checkpoint PutItem refused after the copy (InternalError, not a condition)")
def test_checkpoint_refused_after_the_copy_is_redone_next_cycle(harness: FaultHarness) -> None:
    h = harness
    # Two downloads: the first copy reached S3 but was never recorded, so it is redone (same key, same bytes).
    job_id = h.add("completed", Expect(downloads=2), steps=["completed"])
    h.track(job_id)
    refuse = FailOnce("PutItem", nth=1)
    poller = h.poller(clients=h.clients({"before-call.dynamodb.PutItem": refuse}))

    first = h.cycle(poller)

    [result] = first.results
    assert result.action == "error" and "PutItem" in result.detail and result.event is None, result
    assert refuse.raised == 1 and h.events_for(job_id) == []  # nothing announced before the outcome is recorded
    it = h.item(job_id)
    assert it["state"] == "watching" and it["due_shard"] == "due" and "s3_uri" not in it
    # The failed worker released its lease: the very next cycle retries, without waiting LEASE_SECONDS.
    assert "lease_owner" not in it and "lease_until" not in it

    second = h.cycle(h.poller())

    assert second.events == {"export.completed": 1}
    h.verify()
    h.detail = "cycle 1 errs, nothing published, lease released; the next cycle copied again and announced once"

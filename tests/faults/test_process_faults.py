"""The poll process itself: killed with SIGKILL mid-copy, and four of them running at once.

Both drive `exportwatch poll` processes; a killed process leaves a live lease, an orphaned multipart upload and
a half-read download behind, and the later runs must finish the job with one object and one notification.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from exportwatch_local.localstack import aws_client

from .harness import Expect, FaultHarness, MiB

SIZE = 20 * MiB  # more than the CLI's 16 MiB part: the copy is a multipart upload with one part in S3 when killed


def wait_for[T](probe: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.fault("Process: `exportwatch poll` killed with SIGKILL mid-copy (LEASE_SECONDS=2)")
def test_poll_killed_mid_copy_is_finished_by_a_later_run(harness: FaultHarness) -> None:
    h = harness
    # The first download sends 17 MiB at full speed, then crawls (128 KiB/s): the kill lands mid-copy, with the
    # first 16 MiB part already uploaded and the rest still coming. The retry downloads at full speed.
    job_id = h.add(
        "completed",
        Expect(downloads=2),
        steps=["completed"],
        size_bytes=SIZE,
        download_rate=128 * 1024,
        download_rate_after=17 * MiB,
        slow_downloads=1,
    )
    h.track(job_id)
    s3 = aws_client("s3", h.stack.endpoint_url)
    short_lease = {"LEASE_SECONDS": "2"}

    def uploaded_part() -> str | None:
        if proc.poll() is not None:
            raise AssertionError(f"the poll ended before the kill: {(h.workdir / 'killed.err').read_text()[-2000:]}")
        for upload in h.uploads():
            parts = s3.list_parts(Bucket=h.stack.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            if parts.get("Parts"):
                return str(upload["UploadId"])
        return None

    proc = h.start_cli("poll", "--all", "--json", env=short_lease, name="killed")
    try:
        orphan = wait_for(uploaded_part, 30, "the first part of the multipart upload")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    it = h.item(job_id)
    assert it["state"] == "watching" and it["lease_owner"] and "notified_at" not in it and "s3_uri" not in it
    assert h.objects_for(job_id) == []  # nothing at the final key: the upload was never completed
    assert h.events_for(job_id) == []
    lease_until = int(it["lease_until"])

    # While the dead process's lease is live, a cycle leaves the job alone (run at a moment inside the lease).
    inside = h.poller()
    inside.clock = lambda: float(lease_until - 1)
    [skipped] = h.cycle(inside).results
    assert skipped.action == "skipped" and h.downloads(job_id) == 1

    # The lease lapses (seconds, with LEASE_SECONDS=2); the next run takes the job over and finishes it.
    time.sleep(max(0.0, lease_until + 1.05 - time.time()))
    run = h.cli(env=short_lease)

    assert run.job(job_id)["event"] == "export.completed" and run.job(job_id)["bytes_copied"] == SIZE
    # The killed process's upload is orphaned, never completed: harmless, and the lifecycle rule aborts it.
    assert [u["UploadId"] for u in h.uploads()] == [orphan]
    rules = s3.get_bucket_lifecycle_configuration(Bucket=h.stack.bucket)["Rules"]
    assert any(r["Status"] == "Enabled" and "AbortIncompleteMultipartUpload" in r for r in rules), rules
    h.verify(orphan_uploads=1)

    # What that rule does a day later: the orphan goes, the copy at the final key stays as it is.
    s3.abort_multipart_upload(Bucket=h.stack.bucket, Key=h.key(job_id), UploadId=orphan)
    assert h.uploads() == [] and h.objects_for(job_id) == [h.key(job_id)]
    assert h.cli("poll", "--json").summary["due"] == 0
    h.detail = (
        "killed with 1 part uploaded; its live lease respected, taken over once lapsed; "
        "orphaned upload left to the lifecycle rule"
    )


@pytest.mark.fault("Concurrency: 4 `exportwatch poll --all` processes at once over 200 completed jobs")
def test_four_pollers_over_200_jobs_copy_and_announce_each_once(harness: FaultHarness) -> None:
    h = harness
    jobs = [h.add("completed", steps=["completed"], rows=1) for _ in range(200)]
    h.track(*jobs)

    procs = [h.start_cli("poll", "--all", "--json", name=f"poller-{i}") for i in range(4)]
    for proc in procs:
        proc.wait(timeout=150)
    errors = [(h.workdir / f"poller-{i}.err").read_text() for i in range(4)]
    assert [p.returncode for p in procs] == [0] * 4, errors
    assert not any(h.token in text for text in errors)
    summaries: list[dict[str, Any]] = [json.loads((h.workdir / f"poller-{i}.out").read_text()) for i in range(4)]

    done = Counter(j["job_identifier"] for s in summaries for j in s["jobs"] if j["event"])
    assert done == Counter(dict.fromkeys(jobs, 1))
    actions = Counter(j["action"] for s in summaries for j in s["jobs"])
    assert set(actions) <= {"copied", "skipped"} and actions["copied"] == 200, actions
    assert sum(1 for s in summaries if s["events"]) >= 2, "the pollers did not overlap"
    h.verify()
    shares = "/".join(str(s["actions"].get("copied", 0)) for s in summaries)
    h.detail = f"copies per poller {shares}, every other claim refused"

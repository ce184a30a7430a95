"""Every outcome in the Intercom export API reference, end to end.

Each test scripts the emulator (real HTTP), runs real poll cycles against moto (real HTTP), then checks the table
item, the S3 object and the notification exactly as an SQS subscriber of the topic receives it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import re
import time
from decimal import Decimal
from typing import Any

import pytest
import requests

from exportwatch.model import Job, from_epoch, iso
from exportwatch.poll import CycleSummary, Poller, run_cycle
from exportwatch_local.emulator import IntercomEmulator
from exportwatch_local.localstack import (
    LocalStack,
    aws_client,
    receive_notifications,
    subscribe_queue,
)
from support.outcomes import (
    ISO_Z,
    assert_contract,
    assert_settled,
    due_index,
    item,
    one_note,
    result_for,
)
from support.readback import archive_key, drain
from support.tracking import track

SHA256 = re.compile(r"^[0-9a-f]{64}$")
# -- helpers ------------------------------------------------------------------------------------------------


def emulator_body(emulator: IntercomEmulator, job_id: str) -> bytes:
    """The export's bytes as the emulator serves them (a direct, authorised download)."""
    resp = requests.get(
        f"{emulator.base_url}/download/content/data/{job_id}",
        headers={"Authorization": f"Bearer {emulator.token}", "Accept": "application/octet-stream"},
        timeout=10,
    )
    assert resp.status_code == 200
    return resp.content


def run_until_final(poller: Poller, stack: LocalStack, queue: str, job_id: str, cycles: int) -> CycleSummary:
    """Cycle (ignoring back-off) until the job leaves `watching`; nothing may be published before that."""
    for _ in range(cycles):
        summary = run_cycle(poller, all_jobs=True)
        if result_for(summary, job_id).state != "watching":
            return summary
        assert drain(stack, queue) == []
    raise AssertionError(f"{job_id} still watching after {cycles} cycles")


# -- completed ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "ext", "content_type", "magic", "intercom_status"),
    [
        ("completed", "zip", "application/zip", b"PK\x03\x04", "completed"),
        ("complete_legacy", "gz", "application/gzip", b"\x1f\x8b", "complete"),
    ],
)
def test_completed_is_copied_and_announced(
    poller: Poller,
    emulator: IntercomEmulator,
    stack: LocalStack,
    subscriber: str,
    scenario: str,
    ext: str,
    content_type: str,
    magic: bytes,
    intercom_status: str,
) -> None:
    job_id = emulator.add_job(scenario)  # completed: pending, in_progress, completed; legacy: pending, complete
    track(poller, job_id)

    summary = run_until_final(poller, stack, subscriber, job_id, cycles=4)

    result = result_for(summary, job_id)
    assert (result.action, result.event, result.state) == ("copied", "export.completed", "completed")
    assert len([r for r in emulator.requests_for(job_id) if r.path.startswith("/download/")]) == 1
    body = assert_contract(one_note(stack, subscriber), "export.completed", job_id, intercom_status)

    key = archive_key(stack, job_id, ext)
    assert body["s3_uri"] == f"s3://{stack.bucket}/{key}"
    s3 = aws_client("s3", stack.endpoint_url)
    obj = s3.get_object(Bucket=stack.bucket, Key=key)
    data = obj["Body"].read()
    assert data.startswith(magic)
    assert data == emulator_body(emulator, job_id)
    assert body["size_bytes"] == len(data) == result.bytes_copied
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["content_type"] == obj["ContentType"] == content_type
    expires_at = emulator.job_info(job_id)["download_expires_at"]  # type: ignore[index]
    assert isinstance(expires_at, float)
    assert body["download_expires_at"] == iso(from_epoch(int(expires_at)))
    assert ISO_Z.match(body["download_expires_at"])

    it = assert_settled(stack, job_id, "completed")
    assert it["intercom_status"] == intercom_status
    assert (it["s3_uri"], it["sha256"], it["size_bytes"]) == (body["s3_uri"], body["sha256"], Decimal(len(data)))
    assert it["outcome_at"] == body["occurred_at"]
    assert "last_error" not in it

    idle = run_cycle(poller)
    assert (idle.due, idle.results) == (0, [])
    assert drain(stack, subscriber) == []


# -- terminal outcomes without a copy -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "event", "state", "intercom_status", "reason_part"),
    [
        ("failed", "export.failed", "failed", "failed", "12 hours"),
        ("not_found", "export.not_found", "not_found", "not_found", "Export job not found for identifier"),
        ("no_data", "export.no_data", "no_data", "no_data", "no messages"),
        ("canceled", "export.canceled", "canceled", "canceled", "canceled"),
        ("expired", "export.expired", "expired", "completed", "expired at"),
        ("download_gone", "export.expired", "expired", "completed", "no longer has the file"),
    ],
)
def test_terminal_outcome_is_announced_without_a_copy(
    poller: Poller,
    emulator: IntercomEmulator,
    stack: LocalStack,
    subscriber: str,
    scenario: str,
    event: str,
    state: str,
    intercom_status: str,
    reason_part: str,
) -> None:
    job_id = emulator.add_job(scenario)
    track(poller, job_id)

    summary = run_until_final(poller, stack, subscriber, job_id, cycles=4)

    result = result_for(summary, job_id)
    assert (result.event, result.state) == (event, state)
    body = assert_contract(one_note(stack, subscriber), event, job_id, intercom_status)
    assert reason_part in body["reason"]
    if scenario == "not_found":
        assert job_id in body["reason"]  # Intercom's own message is kept
    it = assert_settled(stack, job_id, state)
    assert it["outcome_reason"] == body["reason"]
    assert "s3_uri" not in it
    s3 = aws_client("s3", stack.endpoint_url)
    assert s3.list_objects_v2(Bucket=stack.bucket).get("KeyCount") == 0
    downloads = [r for r in emulator.requests_for(job_id) if r.path.startswith("/download/")]
    # An expired copy is never requested; a gone one is tried exactly once.
    assert len(downloads) == {"download_gone": 1}.get(scenario, 0)
    assert run_cycle(poller).due == 0


def test_failed_job_answers_504_with_json_body(emulator: IntercomEmulator) -> None:
    """The documented failure shape the poller relies on above (a 504 whose JSON body says failed)."""
    job_id = emulator.add_job("failed", steps=["failed"])
    resp = requests.get(
        f"{emulator.base_url}/export/content/data/{job_id}",
        headers={"Authorization": f"Bearer {emulator.token}"},
        timeout=5,
    )
    assert resp.status_code == 504 and resp.json()["status"] == "failed"


# -- transient errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "options", "failing_cycles", "error_part"),
    [
        ("html_504", {}, 2, "HTTP 504"),
        # urllib3 retries 500/502/503 twice inside one call, so three errors in a row fail one whole cycle.
        ("server_errors", {"error_count": 3}, 1, "HTTP 503"),
    ],
)
def test_transient_errors_keep_watching_then_complete(
    poller: Poller,
    emulator: IntercomEmulator,
    stack: LocalStack,
    subscriber: str,
    scenario: str,
    options: dict[str, Any],
    failing_cycles: int,
    error_part: str,
) -> None:
    job_id = emulator.add_job(scenario, **options)
    track(poller, job_id)

    for attempt in range(1, failing_cycles + 1):
        summary = run_cycle(poller, all_jobs=True)
        result = result_for(summary, job_id)
        assert (result.action, result.state, result.event) == ("retry", "watching", None)
        it = item(stack, job_id)
        assert it["state"] == "watching" and it["due_shard"] == "due"
        assert it["attempts"] == attempt
        assert error_part in it["last_error"] and it["last_error"].startswith("status check: ")
        assert "lease_owner" not in it and "notified_at" not in it
        assert drain(stack, subscriber) == []

    summary = run_cycle(poller, all_jobs=True)
    assert result_for(summary, job_id).event == "export.completed"
    assert_contract(one_note(stack, subscriber), "export.completed", job_id, "completed")
    it = assert_settled(stack, job_id, "completed")
    assert it["attempts"] == failing_cycles + 1
    assert "last_error" not in it


def test_server_errors_recovered_within_one_call(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    job_id = emulator.add_job("server_errors")  # 500 then 502, then the job model
    track(poller, job_id)

    summary = run_cycle(poller)

    assert result_for(summary, job_id).event == "export.completed"
    assert emulator.job_info(job_id)["status_calls"] == 3  # type: ignore[index]
    assert item(stack, job_id)["attempts"] == 1
    assert_contract(one_note(stack, subscriber), "export.completed", job_id, "completed")


# -- rate limits ---------------------------------------------------------------------------------------------


def test_rate_limit_resetting_soon_is_waited_out(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    job_id = emulator.add_job("rate_limited", reset_in=1.0)
    track(poller, job_id)

    started = time.monotonic()
    summary = run_cycle(poller)

    assert result_for(summary, job_id).event == "export.completed"
    assert summary.stopped is None
    assert emulator.job_info(job_id)["status_calls"] == 2  # type: ignore[index]
    status_calls = [r for r in emulator.requests_for(job_id) if r.path.startswith("/export/")]
    assert status_calls[1].time - status_calls[0].time >= 0.5  # the retry waited for the window...
    assert time.monotonic() - started < 10  # ...but not for long
    assert item(stack, job_id)["attempts"] == 1
    assert_contract(one_note(stack, subscriber), "export.completed", job_id, "completed")


def test_long_rate_limit_defers_the_job_and_leaves_the_rest(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    poller.settings = dataclasses.replace(poller.settings, poll_concurrency=1)  # deterministic order
    limited = emulator.add_job("rate_limited", reset_in=120)
    others = [emulator.add_job("completed", steps=["completed"]) for _ in range(3)]
    now = time.time()
    assert poller.store.track(Job(job_identifier=limited, tracked_at=iso(from_epoch(now)), next_check_at=0))
    for n, job_id in enumerate(others, start=1):  # the due index is sorted by next_check_at: these come later
        assert poller.store.track(Job(job_identifier=job_id, tracked_at=iso(from_epoch(now)), next_check_at=n))

    summary = run_cycle(poller)

    assert summary.due == 4 and len(summary.results) == 1
    result = result_for(summary, limited)
    assert (result.action, result.state, result.event) == ("deferred", "watching", None)
    assert summary.stopped is not None and "rate limited" in summary.stopped
    assert summary.left_for_next_cycle == 3
    it = item(stack, limited)
    match = re.search(r"window resets at (\d+)", it["last_error"])
    assert match is not None, it["last_error"]
    reset = int(match.group(1))
    assert it["next_check_at"] == reset
    assert now + 120 <= reset <= time.time() + 121  # Intercom's X-RateLimit-Reset, as sent
    assert it["state"] == "watching" and it["due_shard"] == "due" and it["attempts"] == 0
    for job_id in others:
        untouched = item(stack, job_id)
        assert untouched["attempts"] == 0 and "last_checked_at" not in untouched
        assert emulator.requests_for(job_id) == []
    assert drain(stack, subscriber) == []  # a rate limit is never a failure

    # The next cycle (a new container: its own view of the window) takes the others.
    from exportwatch.wiring import build_poller

    later = run_cycle(build_poller(poller.settings))
    assert {r.job_identifier for r in later.results if r.event == "export.completed"} >= set(others)
    events = [n.body["event"] for n in receive_notifications(stack.endpoint_url, subscriber, expect=3, timeout=5)]
    assert "export.failed" not in events and events.count("export.completed") >= 3


# -- responses we do not understand --------------------------------------------------------------------------


def test_unreadable_status_keeps_the_job_and_the_cycle_goes_on(
    poller: Poller,
    emulator: IntercomEmulator,
    stack: LocalStack,
    subscriber: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="exportwatch")
    bad = {
        emulator.add_job("malformed"): "not JSON",
        emulator.add_job("wrong_types"): "status is int",
        emulator.add_job("unknown_status"): "unknown status 'archived'",
    }
    good = emulator.add_job("completed", steps=["completed"])
    track(poller, *bad, good)

    summary = run_cycle(poller)

    assert summary.due == 4 and len(summary.results) == 4 and summary.stopped is None
    assert result_for(summary, good).event == "export.completed"
    for job_id, error in bad.items():
        result = result_for(summary, job_id)
        assert (result.action, result.state, result.event) == ("retry", "watching", None)
        it = item(stack, job_id)
        assert it["state"] == "watching" and it["due_shard"] == "due" and it["attempts"] == 1
        assert error in it["last_error"]
        logged = [r for r in caplog.records if job_id in r.getMessage()]
        assert logged and all(r.levelno == logging.WARNING for r in logged)
    assert_contract(one_note(stack, subscriber), "export.completed", good, "completed")

    # Kept, not dropped: they are checked again (other malformed variants now) and still not announced.
    again = run_cycle(poller, all_jobs=True)
    assert {r.job_identifier for r in again.results} == set(bad)
    assert all(item(stack, job_id)["attempts"] == 2 for job_id in bad)
    assert drain(stack, subscriber) == []


# -- back-off --------------------------------------------------------------------------------------------------


def test_running_jobs_back_off_with_age_up_to_the_cap(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    t0 = float(int(time.time()))  # whole seconds: tracked_at is stored at second precision
    interval, cap = poller.settings.poll_interval_seconds, poller.settings.max_check_delay_seconds
    assert (interval, cap) == (300, 1800)
    ages = {"young": 0, "two_hours": 2 * 3600, "ten_hours": 10 * 3600}
    ids = {name: emulator.add_job("completed", steps=["pending", "in_progress"]) for name in ages}
    for name, age in ages.items():
        assert poller.store.track(Job(job_identifier=ids[name], tracked_at=iso(from_epoch(t0 - age)), next_check_at=0))

    poller.clock = lambda: t0
    first = run_cycle(poller)
    assert {r.job_identifier: r.detail for r in first.results} == {i: "still pending" for i in ids.values()}
    delay = {name: int(item(stack, ids[name])["next_check_at"]) - int(t0) for name in ids}
    assert delay["young"] == interval  # young jobs: every cycle
    assert delay["two_hours"] == 720  # a tenth of the age
    assert delay["ten_hours"] == cap  # capped

    # A young job is due in the very next cycle: one interval later.
    next_cycle = t0 + interval
    due_next = poller.store.due_ids(int(next_cycle + interval / 2))
    assert due_next == [ids["young"]]
    poller.clock = lambda: next_cycle
    second = run_cycle(poller)
    assert [r.job_identifier for r in second.results] == [ids["young"]]
    assert second.results[0].detail == "still in_progress"

    # The older job's delay grows as it ages, but never past the cap; the oldest stays at the cap.
    previous = delay["two_hours"]
    for _ in range(15):
        if previous == cap:
            break
        when = float(item(stack, ids["two_hours"])["next_check_at"])
        poller.clock = functools.partial(float, when)
        summary = run_cycle(poller)
        assert ids["two_hours"] in {r.job_identifier for r in summary.results}
        grown = int(item(stack, ids["two_hours"])["next_check_at"]) - int(when)
        assert previous < grown <= cap or grown == previous == cap
        previous = grown
        if ids["ten_hours"] in {r.job_identifier for r in summary.results}:
            assert int(item(stack, ids["ten_hours"])["next_check_at"]) - int(when) == cap
    assert previous == cap  # 2 h old and growing: the cap is reached
    assert item(stack, ids["ten_hours"])["attempts"] >= 2
    # No outcome for running jobs. The ten-hour-old job is now over 12 hours old (STUCK_AFTER_HOURS) and got its
    # one early warning, export.stuck (tests/integration/test_warnings.py); the younger ones got nothing.
    notes = [(n.body["event"], n.body["job_identifier"]) for n in drain(stack, subscriber)]
    assert notes == [("export.stuck", ids["ten_hours"])]


# -- notification contract -----------------------------------------------------------------------------------


def test_filter_policy_subscription_receives_only_failures(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    failures = subscribe_queue(stack.endpoint_url, stack.topic_arn, filter_policy={"event": ["export.failed"]})
    failed = emulator.add_job("failed", steps=["failed"])
    others = [
        emulator.add_job("completed", steps=["completed"]),
        emulator.add_job("no_data", steps=["no_data"]),
        emulator.add_job("canceled", steps=["canceled"]),
    ]
    track(poller, failed, *others)

    summary = run_cycle(poller)

    assert sorted(summary.events.elements()) == sorted(
        ["export.failed", "export.completed", "export.no_data", "export.canceled"]
    )
    everything = receive_notifications(stack.endpoint_url, subscriber, expect=4, timeout=5)
    assert sorted(n.attributes["event"] for n in everything) == sorted(summary.events.elements())
    only = receive_notifications(stack.endpoint_url, failures, expect=1, timeout=5) + drain(stack, failures)
    assert [(n.attributes["event"], n.body["job_identifier"]) for n in only] == [("export.failed", failed)]
    assert_contract(only[0], "export.failed", failed, "failed")


def test_settled_jobs_leave_the_due_index(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    running = emulator.add_job("completed", steps=["pending"])
    done = [
        emulator.add_job("not_found"),
        emulator.add_job("no_data", steps=["no_data"]),
        emulator.add_job("completed", steps=["completed"]),
    ]
    track(poller, running, *done)
    assert sorted(due_index(stack)) == sorted([running, *done])

    run_cycle(poller)

    assert due_index(stack) == [running]  # only unfinished work is in the index
    for job_id in done:
        it = item(stack, job_id)
        assert "due_shard" not in it and "ttl" in it
    assert "ttl" not in item(stack, running)
    assert run_cycle(poller).due == 0  # the running job is not due before its next check
    assert len(receive_notifications(stack.endpoint_url, subscriber, expect=3, timeout=5)) == 3

"""Early warnings, end to end: export.stuck and export.expiring, sent once each, then the job's real outcome.

Real poll cycles against moto (HTTP) and the Intercom emulator (HTTP); what a subscriber gets is read from an SQS
queue subscribed to the topic; the table item is read back raw.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from exportwatch.config import ConfigError, Settings
from exportwatch.model import Event, Job, JobState, from_epoch, iso
from exportwatch.notifier import Notifier, warning_for
from exportwatch.poll import CycleSummary, Poller, run_cycle
from exportwatch.wiring import build_poller
from exportwatch_local.emulator import IntercomEmulator
from exportwatch_local.localstack import LocalStack, ReceivedNotification, aws_client
from support.aws import FlakySNS
from support.outcomes import ISO_Z, assert_contract, assert_settled, item, one_note, result_for
from support.readback import drain
from support.tracking import track

HOUR = 3600


def track_at(poller: Poller, job_id: str, tracked_at: float) -> str:
    """Track a job as `exportwatch track` would have at `tracked_at` (epoch seconds); returns the stored time."""
    stamp = iso(from_epoch(tracked_at))
    assert poller.store.track(Job(job_identifier=job_id, tracked_at=stamp, next_check_at=0))
    return stamp


def notes(stack: LocalStack, queue: str) -> list[ReceivedNotification]:
    return drain(stack, queue)


def events_of(summary: CycleSummary) -> dict[str, int]:
    return dict(summary.events)


# -- export.stuck -----------------------------------------------------------------------------------------------


def test_stuck_is_sent_once_then_the_outcome(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    job_id = emulator.add_job("failed", steps=["pending", "pending", "in_progress", "in_progress", "failed"])
    tracked_at = track_at(poller, job_id, time.time() - 13 * HOUR)

    first = run_cycle(poller, all_jobs=True)

    result = result_for(first, job_id)
    assert (result.action, result.state, result.warning, result.event) == ("warned", "watching", "export.stuck", None)
    assert events_of(first) == {"export.stuck": 1}
    body = assert_contract(one_note(stack, subscriber), "export.stuck", job_id, "pending")
    assert body["pending_since"] == tracked_at == body["tracked_at"]
    assert 13 * HOUR - 5 <= body["pending_seconds"] <= 13 * HOUR + 60
    assert "pending after 13 hours" in body["reason"] and "12 hours" in body["reason"]
    assert "time_left_seconds" not in body and "s3_uri" not in body
    it = item(stack, job_id)
    assert it["state"] == "watching" and it["due_shard"] == "due"  # a warning is not an outcome
    assert it["warned_stuck_at"] == body["occurred_at"] and ISO_Z.match(it["warned_stuck_at"])
    assert "notified_at" not in it and "warned_expiring_at" not in it

    for _ in range(3):  # still pending / in progress: never again
        again = run_cycle(poller, all_jobs=True)
        assert result_for(again, job_id).warning is None
        assert notes(stack, subscriber) == []
    assert item(stack, job_id)["warned_stuck_at"] == body["occurred_at"]

    final = run_cycle(poller, all_jobs=True)  # Intercom gives up
    assert result_for(final, job_id).event == "export.failed"
    assert_contract(one_note(stack, subscriber), "export.failed", job_id, "failed")
    settled = assert_settled(stack, job_id, "failed")
    assert settled["warned_stuck_at"] == body["occurred_at"]  # the record keeps that it was warned


def test_a_job_never_answered_for_hours_is_stuck_too(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    """No status from Intercom at all (every check fails): unfinished as far as anyone knows."""
    job_id = emulator.add_job("html_504", html_504_count=None)
    track_at(poller, job_id, time.time() - 20 * HOUR)

    summary = run_cycle(poller, all_jobs=True)

    result = result_for(summary, job_id)
    assert (result.action, result.warning) == ("retry", "export.stuck")
    body = assert_contract(one_note(stack, subscriber), "export.stuck", job_id, "")
    assert "has not reported the export job finished in 20 hours" in body["reason"]
    assert "HTTP 504" in body["reason"]  # the last error says why
    assert run_cycle(poller, all_jobs=True).events == {}
    assert notes(stack, subscriber) == []


# -- export.expiring --------------------------------------------------------------------------------------------


def test_expiring_is_sent_once_then_the_copy(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    # Intercom finished; its copy goes away in 4 hours; the first two downloads break off.
    job_id = emulator.add_job("completed", steps=["completed"], expires_in=4 * HOUR, flaky_downloads=2)
    track(poller, job_id)

    first = run_cycle(poller, all_jobs=True)

    result = result_for(first, job_id)
    assert (result.action, result.state, result.warning, result.event) == ("retry", "watching", "export.expiring", None)
    body = assert_contract(one_note(stack, subscriber), "export.expiring", job_id, "completed")
    expires_at = emulator.job_info(job_id)["download_expires_at"]  # type: ignore[index]
    assert isinstance(expires_at, float)
    assert body["download_expires_at"] == iso(from_epoch(int(expires_at)))
    assert 4 * HOUR - 60 <= body["time_left_seconds"] <= 4 * HOUR
    assert "has not succeeded yet" in body["reason"] and "last error: copy:" in body["reason"]
    assert "pending_since" not in body and "s3_uri" not in body
    it = item(stack, job_id)
    assert it["state"] == "watching" and it["due_shard"] == "due"
    assert it["warned_expiring_at"] == body["occurred_at"]
    assert ISO_Z.match(it["completed_seen_at"]) and it["completed_seen_at"] <= body["occurred_at"]
    s3 = aws_client("s3", stack.endpoint_url)
    assert s3.list_objects_v2(Bucket=stack.bucket).get("KeyCount") == 0  # nothing half-copied

    second = run_cycle(poller, all_jobs=True)  # the copy breaks again: no second warning
    assert (result_for(second, job_id).action, result_for(second, job_id).warning) == ("retry", None)
    assert notes(stack, subscriber) == []

    third = run_cycle(poller, all_jobs=True)  # the copy succeeds: the outcome, as for any job
    assert result_for(third, job_id).event == "export.completed"
    done = assert_contract(one_note(stack, subscriber), "export.completed", job_id, "completed")
    assert s3.head_object(Bucket=stack.bucket, Key=done["s3_uri"].split("/", 3)[3])["ContentLength"] > 0
    assert assert_settled(stack, job_id, "completed")["warned_expiring_at"] == body["occurred_at"]


def test_expiry_warning_hours_is_the_threshold(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    """13 hours left and a failing copy: nothing with the default 12 h, a warning with EXPIRY_WARNING_HOURS=14."""
    job_id = emulator.add_job("truncated", expires_in=13 * HOUR)
    track(poller, job_id)

    assert run_cycle(poller, all_jobs=True).events == {}
    assert notes(stack, subscriber) == []

    poller.settings = Settings.from_env({**_env(poller.settings, stack), "EXPIRY_WARNING_HOURS": "14"})
    assert run_cycle(poller, all_jobs=True).events == {"export.expiring": 1}
    assert len(notes(stack, subscriber)) == 1


def _env(settings: Settings, stack: LocalStack) -> dict[str, str]:
    return stack.env(INTERCOM_API_URL=settings.intercom_api_url)


# -- healthy jobs -----------------------------------------------------------------------------------------------


def test_healthy_jobs_get_no_warning(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    young = emulator.add_job("completed", steps=["pending", "in_progress", "in_progress", "completed"])
    hiccup = emulator.add_job("completed", steps=["completed"], flaky_downloads=1)  # 48 h left, one bad download
    old_but_done = emulator.add_job("completed", steps=["completed"])  # tracked long ago, finished at once
    track(poller, young, hiccup)
    track_at(poller, old_but_done, time.time() - 30 * HOUR)

    seen: list[str] = []
    for _ in range(5):
        summary = run_cycle(poller, all_jobs=True)
        assert all(r.warning is None for r in summary.results)
        seen += [n.body["event"] for n in notes(stack, subscriber)]

    assert sorted(seen) == ["export.completed"] * 3
    for job_id in (young, hiccup, old_but_done):
        it = assert_settled(stack, job_id, "completed")
        assert "warned_stuck_at" not in it and "warned_expiring_at" not in it


# -- publish failures and concurrency ---------------------------------------------------------------------------


@pytest.mark.parametrize("warning", ["export.stuck", "export.expiring"])
def test_a_failed_warning_publish_is_retried_next_cycle_once(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str, warning: str
) -> None:
    if warning == "export.stuck":
        job_id = emulator.add_job("completed", steps=["pending"])
        track_at(poller, job_id, time.time() - 13 * HOUR)
    else:
        job_id = emulator.add_job("truncated", expires_in=4 * HOUR)
        track(poller, job_id)
    flaky = FlakySNS(aws_client("sns", stack.endpoint_url), fail=1)
    poller.notifier = Notifier(flaky, stack.topic_arn)
    t0 = float(int(time.time()))
    poller.clock = lambda: t0

    first = run_cycle(poller)

    result = result_for(first, job_id)
    assert result.warning is None and f"publish {warning}" in result.detail
    assert notes(stack, subscriber) == []
    it = item(stack, job_id)
    assert "warned_stuck_at" not in it and "warned_expiring_at" not in it
    assert it["state"] == "watching" and it["due_shard"] == "due"
    assert int(it["next_check_at"]) <= t0 + poller.settings.poll_interval_seconds  # due next cycle, not backed off

    poller.clock = lambda: t0 + poller.settings.poll_interval_seconds  # the next scheduled cycle
    second = run_cycle(poller)

    assert second.events == {warning: 1}
    note = one_note(stack, subscriber)
    assert note.attributes == {"event": warning, "job_identifier": job_id, "workspace": "default"}
    field = "warned_stuck_at" if warning == "export.stuck" else "warned_expiring_at"
    assert item(stack, job_id)[field] == note.body["occurred_at"]

    for step in range(2, 4):  # never again
        poller.clock = lambda step=step: t0 + step * poller.settings.max_check_delay_seconds
        assert run_cycle(poller, all_jobs=True).events == {}
    assert notes(stack, subscriber) == []
    assert flaky.published == 1


def test_concurrent_pollers_warn_once(
    settings: Settings, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    instances = [build_poller(settings) for _ in range(4)]
    stuck = [emulator.add_job("completed", steps=["pending"]) for _ in range(6)]
    expiring = [emulator.add_job("truncated", expires_in=2 * HOUR) for _ in range(6)]
    for job_id in stuck:
        track_at(instances[0], job_id, time.time() - 12 * HOUR - 60)
    track(instances[0], *expiring)
    barrier = threading.Barrier(len(instances))
    summaries: list[CycleSummary] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            summaries.append(run_cycle(instances[i], all_jobs=True, owner=f"poller-{i}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(instances))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and len(summaries) == len(instances)

    received = notes(stack, subscriber) + notes(stack, subscriber)
    got = sorted((n.attributes["job_identifier"], n.attributes["event"]) for n in received)
    assert got == sorted([(j, "export.stuck") for j in stuck] + [(j, "export.expiring") for j in expiring])
    for _ in range(2):
        assert run_cycle(instances[0], all_jobs=True).events == {}
    assert notes(stack, subscriber) == []


# -- the contract and configuration -----------------------------------------------------------------------------


def test_warning_for_refuses_outcomes_and_missing_times() -> None:
    job = Job("abc123", intercom_status="completed", tracked_at="2026-11-08T09:00:12Z")
    with pytest.raises(ValueError, match="not a warning"):
        warning_for(job, Event.COMPLETED, time.time())
    with pytest.raises(ValueError, match="download_expires_at"):
        warning_for(job, Event.EXPIRING, time.time())
    with pytest.raises(ValueError, match="tracked_at"):
        warning_for(dataclasses.replace(job, tracked_at=None), Event.STUCK, time.time())


def test_events_split_into_outcomes_and_warnings() -> None:
    assert [e.value for e in Event.warnings()] == ["export.expiring", "export.stuck"]
    assert set(Event.outcomes()) == {Event.for_state(s) for s in JobState if s.is_final}
    assert set(Event.outcomes()) | set(Event.warnings()) == set(Event)


BASE_ENV = {
    "JOBS_TABLE": "jobs",
    "EXPORT_BUCKET": "bucket-1",
    "NOTIFY_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:t",
    "INTERCOM_TOKEN_SECRET": "s",
}


def test_warning_settings_default_to_twelve_hours() -> None:
    settings = Settings.from_env(BASE_ENV)
    assert (settings.expiry_warning_seconds, settings.stuck_after_seconds) == (12 * HOUR, 12 * HOUR)
    custom = Settings.from_env({**BASE_ENV, "EXPIRY_WARNING_HOURS": "6", "STUCK_AFTER_HOURS": " 24 "})
    assert (custom.expiry_warning_seconds, custom.stuck_after_seconds) == (6 * HOUR, 24 * HOUR)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("EXPIRY_WARNING_HOURS", "0", "outside 1..47"),
        ("EXPIRY_WARNING_HOURS", "48", "outside 1..47"),  # would warn about every finished export at once
        ("EXPIRY_WARNING_HOURS", "twelve", "not a whole number"),
        ("STUCK_AFTER_HOURS", "0", "outside 1..168"),
        ("STUCK_AFTER_HOURS", "1.5", "not a whole number"),
    ],
)
def test_bad_warning_settings_name_the_variable(name: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**BASE_ENV, name: value})
    assert str(info.value).startswith(f"{name}: ") and problem in str(info.value)

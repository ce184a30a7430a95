"""The scheduler (exportwatch.schedule.Scheduler) and the poll cycle's window jobs, over in-memory fakes
(tests/support/fakes.py: FakeLedger keeps LedgerStore's conditions, FakeSources one FakeSource per workspace).

Each workspace: at most one active export; its oldest queued window started with the window's exact range; a 429
leaves the window queued and reports nothing; a settled export moves the window to archived / empty / queued again
/ failed; the daily schedule queues what it owes, a bounded number per pass; a lost lease writes nothing; one
workspace's error never stops another's. The same against DynamoDB (moto) and the emulator is tests/integration.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import date, timedelta

import pytest
from botocore.exceptions import ClientError

from exportwatch.intercom import ActiveJobExists, RateLimited, TransientError, Unauthorized
from exportwatch.ledger import window_key
from exportwatch.model import JobState, from_epoch, iso
from exportwatch.poll import Action, StopReason, run_cycle
from exportwatch.results import WorkspaceAction
from exportwatch.schedule import Scheduler
from exportwatch.windows import MAX_QUEUED_PER_PASS, Span, WindowState
from support.fakes import ZIP_BYTES, LedgerRig, settings
from support.fakes import report as status
from support.scheduling import day, first_second, last_second, lease_lost_before, queue, schedule, settle

HOUR = 3600
# The Rig's clock: 2027-01-15T08:00:00Z, so yesterday is 2027-01-14.
TODAY = date(2027, 1, 15)


@pytest.fixture
def rig() -> LedgerRig:
    return LedgerRig()


ARCHIVED = {"s3_uri": "s3://archive/eu/content/dt=2027-01-02/eu-1.zip", "size_bytes": 10, "sha256": "ab" * 32}


# -- starting windows ---------------------------------------------------------------------------------------------


def test_the_oldest_queued_window_is_started_with_its_range_and_tracked(rig: LedgerRig) -> None:
    eu = rig.workspace("eu")
    queue(rig, "eu", Span(day(5), day(5)), Span(day(2), day(3)), Span(day(9), day(11)))  # queued out of order

    [(name, result)] = schedule(rig).items()

    assert eu.created == [(first_second(day(2)), last_second(day(3)))]  # inclusive: 00:00:00 .. 23:59:59
    assert eu.created[0] == (1_798_848_000, 1_799_020_799)
    assert (name, result.action, result.window, result.job_identifier) == (
        "eu",
        WorkspaceAction.STARTED,
        "2027-01-02..2027-01-03",
        "eu-1",
    )
    assert result.detail == "window 2027-01-02..2027-01-03 started (attempt 1)"
    job = rig.repo.get("eu-1")
    assert job is not None
    assert (job.workspace, job.window_start, job.window_end, job.window_attempt) == (
        "eu",
        "2027-01-02",
        "2027-01-03",
        1,
    )
    assert (job.created_at_after, job.created_at_before) == ("2027-01-02T00:00:00Z", "2027-01-03T23:59:59Z")
    assert (job.state, job.next_check_at, job.intercom_status) == (JobState.WATCHING, 0, "pending")  # due now
    assert job.tracked_at == iso(from_epoch(rig.now)) and job.lease_owner is None
    window = rig.ledger.window("eu", day(2))
    assert (window.state, window.export_job, window.attempts, window.round_attempts) == (
        WindowState.RUNNING,
        "eu-1",
        1,
        1,
    )
    row = rig.ledger.row("eu")
    assert (row.active_job, row.active_window) == ("eu-1", window_key("eu", day(2)))
    assert row.lease_owner is None and row.next_check_at == int(rig.now + rig.settings.max_check_delay_seconds)
    assert rig.ledger.states("eu")[1:] == [("2027-01-05", "queued"), ("2027-01-09..2027-01-11", "queued")]
    assert rig.source.created == []  # the default workspace's token is never used for eu


def test_one_active_export_per_workspace_the_next_pass_waits(rig: LedgerRig) -> None:
    eu = rig.workspace("eu")
    queue(rig, "eu", Span(day(1), day(1)), Span(day(2), day(2)))
    schedule(rig)
    rig.now += 60

    result = schedule(rig)["eu"]

    assert (result.action, result.job_identifier) == (WorkspaceAction.WAITING, "eu-1")
    assert result.detail == "window 2027-01-01 export eu-1 still running"
    assert len(eu.created) == 1 and list(rig.repo.jobs) == ["eu-1"]
    assert rig.ledger.states("eu") == [("2027-01-01", "running"), ("2027-01-02", "queued")]


def test_each_workspace_gets_its_own_slot_and_its_own_source(rig: LedgerRig) -> None:
    eu, au = rig.workspace("eu"), rig.workspace("au")
    rig.ledger.add_workspace("default")
    for name in ("eu", "au", "default"):
        queue(rig, name, Span(day(1), day(1)), Span(day(2), day(2)))

    results = schedule(rig)

    assert {n: (r.action, r.job_identifier) for n, r in results.items()} == {
        "eu": (WorkspaceAction.STARTED, "eu-1"),
        "au": (WorkspaceAction.STARTED, "au-1"),
        "default": (WorkspaceAction.STARTED, "exp-1"),
    }
    assert len(eu.created) == len(au.created) == len(rig.source.created) == 1
    assert {j.job_identifier: j.workspace for j in rig.repo.jobs.values()} == {
        "eu-1": "eu",
        "au-1": "au",
        "exp-1": "default",
    }


@pytest.mark.parametrize(
    ("refusal", "detail"),
    [
        (ActiveJobExists("an export job is already active"), "an export job is already active"),
        (RateLimited(1_800_000_600.0), "rate limited by Intercom until 2027-01-15T08:10:00Z"),
    ],
)
def test_a_429_on_create_leaves_the_window_queued_and_fails_nothing(
    rig: LedgerRig, refusal: Exception, detail: str
) -> None:
    eu = rig.workspace("eu")
    queue(rig, "eu", Span(day(1), day(1)))
    eu.creates.append(refusal)

    result = schedule(rig)["eu"]

    assert (result.action, result.window, result.job_identifier) == (WorkspaceAction.WAITING, "2027-01-01", None)
    assert result.detail == f"window 2027-01-01 waits: {detail}"
    window = rig.ledger.window("eu", day(1))
    assert (window.state, window.attempts, window.round_attempts, window.last_error) == (WindowState.QUEUED, 0, 0, None)
    assert rig.repo.jobs == {} and rig.publisher.published == []
    row = rig.ledger.row("eu")
    assert row.active_job is None and row.next_check_at == int(rig.now + rig.settings.poll_interval_seconds)

    rig.now += rig.settings.poll_interval_seconds
    assert schedule(rig, all_due=False)["eu"].action is WorkspaceAction.STARTED  # due again next interval
    assert rig.ledger.window("eu", day(1)).attempts == 1


@pytest.mark.parametrize(
    "error",
    [Unauthorized("Intercom rejected the token (401)"), TransientError("HTTP 503 from Intercom")],
)
def test_a_create_that_fails_keeps_the_window_queued_with_the_reason(rig: LedgerRig, error: Exception) -> None:
    eu = rig.workspace("eu")
    queue(rig, "eu", Span(day(1), day(1)))
    eu.creates.append(error)

    result = schedule(rig)["eu"]

    assert result.action is WorkspaceAction.RETRY and str(error) in result.detail
    window = rig.ledger.window("eu", day(1))
    assert window.state is WindowState.QUEUED and window.attempts == 0
    assert window.last_error == f"could not start the export: {error}"
    assert rig.repo.jobs == {} and rig.ledger.row("eu").active_job is None


def test_an_unregistered_workspace_waits_without_any_request(rig: LedgerRig) -> None:
    rig.ledger.add_workspace("gone")  # its scheduler record, but no source: removed from the registry
    queue(rig, "gone", Span(day(1), day(1)))

    result = schedule(rig)["gone"]

    assert result.action is WorkspaceAction.RETRY and "not registered" in result.detail
    assert rig.ledger.window("gone", day(1)).state is WindowState.QUEUED


def test_nothing_queued_is_idle_and_looked_at_again_in_a_day(rig: LedgerRig) -> None:
    rig.workspace("eu")
    result = schedule(rig)["eu"]
    assert (result.action, result.detail) == (WorkspaceAction.IDLE, "nothing queued")
    assert rig.ledger.row("eu").next_check_at == int(rig.now + 86400)


def test_a_workspace_that_is_not_due_or_is_leased_is_left_alone(rig: LedgerRig) -> None:
    eu = rig.workspace("eu")
    queue(rig, "eu", Span(day(1), day(1)))
    rig.ledger.row("eu").next_check_at = int(rig.now + HOUR)
    assert schedule(rig, all_due=False) == {}

    rig.ledger.take_over("eu", "other-poller", until=int(rig.now + 60))
    result = schedule(rig)["eu"]  # due (all_due), but another poller holds it
    assert result.action is WorkspaceAction.SKIPPED and eu.created == []


# -- settling windows ---------------------------------------------------------------------------------------------


def started(rig: LedgerRig, *spans: Span) -> None:
    rig.workspace("eu")
    queue(rig, "eu", *spans)
    assert schedule(rig)["eu"].action is WorkspaceAction.STARTED


def test_an_archived_export_archives_the_window_and_the_next_one_starts_in_the_same_pass(rig: LedgerRig) -> None:
    started(rig, Span(day(2), day(2)), Span(day(3), day(3)))
    settle(rig, "eu-1", JobState.COMPLETED, **ARCHIVED)

    result = schedule(rig)["eu"]

    assert (result.action, result.window, result.job_identifier) == (WorkspaceAction.STARTED, "2027-01-03", "eu-2")
    assert result.detail == "window 2027-01-02 archived; window 2027-01-03 started (attempt 1)"
    assert rig.ledger.states("eu") == [("2027-01-02", "archived"), ("2027-01-03", "running")]
    assert rig.ledger.window("eu", day(2)).s3_uri == ARCHIVED["s3_uri"]
    stored = rig.ledger.window_rows[window_key("eu", day(2))]
    assert (stored.size_bytes, stored.sha256) == (10, "ab" * 32)
    assert rig.ledger.row("eu").active_job == "eu-2"


def test_no_data_makes_the_window_empty(rig: LedgerRig) -> None:
    started(rig, Span(day(2), day(2)))
    settle(rig, "eu-1", JobState.NO_DATA)

    result = schedule(rig)["eu"]

    assert (result.action, result.window, result.detail, result.settled) == (
        WorkspaceAction.SETTLED,
        "2027-01-02",
        "window 2027-01-02 empty",
        "empty",
    )
    assert rig.ledger.states("eu") == [("2027-01-02", "empty")]
    assert rig.ledger.row("eu").active_job is None


def test_a_job_still_being_copied_or_notified_keeps_the_slot(rig: LedgerRig) -> None:
    started(rig, Span(day(2), day(2)))
    copied = replace(
        rig.repo.jobs["eu-1"], state=JobState.COMPLETED, s3_uri="s3://a/k.zip", size_bytes=1, sha256="0" * 64
    )
    rig.repo.jobs["eu-1"] = copied  # final and copied, but not notified yet

    assert schedule(rig)["eu"].action is WorkspaceAction.WAITING
    assert rig.ledger.states("eu") == [("2027-01-02", "running")]


@pytest.mark.parametrize("state", [JobState.FAILED, JobState.EXPIRED, JobState.NOT_FOUND, JobState.CANCELED])
def test_a_failed_export_is_retried_then_the_window_fails_after_the_last_attempt(
    rig: LedgerRig, state: JobState
) -> None:
    started(rig, Span(day(2), day(4)))
    max_attempts = rig.settings.window_max_attempts
    assert max_attempts == 3  # the documented default

    for attempt in range(1, max_attempts):
        settle(rig, f"eu-{attempt}", state, outcome_reason="Intercom's export job failed")
        result = schedule(rig)["eu"]
        assert (result.action, result.job_identifier) == (WorkspaceAction.STARTED, f"eu-{attempt + 1}")
        assert result.detail == (
            f"window 2027-01-02..2027-01-04 queued; window 2027-01-02..2027-01-04 started (attempt {attempt + 1})"
        )
        job = rig.repo.get(f"eu-{attempt + 1}")
        assert job is not None and job.window_attempt == attempt + 1
        window = rig.ledger.window("eu", day(2))
        assert (window.state, window.attempts, window.round_attempts) == (WindowState.RUNNING, attempt + 1, attempt + 1)

    settle(rig, f"eu-{max_attempts}", state, outcome_reason="Intercom's export job failed")
    result = schedule(rig)["eu"]

    assert (result.action, result.detail, result.settled) == (
        WorkspaceAction.SETTLED,
        "window 2027-01-02..2027-01-04 failed",
        "failed",
    )
    window = rig.ledger.window("eu", day(2))
    assert (window.state, window.attempts) == (WindowState.FAILED, max_attempts)
    assert window.last_error == (
        "window 2027-01-02..2027-01-04 of workspace eu failed after 3 attempts: Intercom's export job failed"
    )
    assert rig.sources.sources["eu"].created == [(first_second(day(2)), last_second(day(4)))] * max_attempts
    assert schedule(rig)["eu"].action is WorkspaceAction.IDLE  # a failed window is not started again


@pytest.mark.parametrize("missing", ["s3_uri", "sha256", "size_bytes"])
def test_a_window_is_never_archived_without_its_copys_uri_size_and_sha256(rig: LedgerRig, missing: str) -> None:
    started(rig, Span(day(2), day(2)))
    settle(rig, "eu-1", JobState.COMPLETED, **{**ARCHIVED, missing: None})

    result = schedule(rig)["eu"]

    window = rig.ledger.window("eu", day(2))
    assert window.state is not WindowState.ARCHIVED and window.s3_uri is None
    assert (result.action, result.job_identifier) == (WorkspaceAction.STARTED, "eu-2")  # a new export instead


def test_a_window_job_gone_from_the_table_queues_the_window_again(rig: LedgerRig) -> None:
    started(rig, Span(day(2), day(2)))
    del rig.repo.jobs["eu-1"]

    result = schedule(rig)["eu"]

    assert (result.action, result.job_identifier) == (WorkspaceAction.STARTED, "eu-2")
    assert rig.ledger.window("eu", day(2)).attempts == 2


def test_an_active_job_whose_window_is_not_running_just_frees_the_slot(rig: LedgerRig) -> None:
    started(rig, Span(day(2), day(2)), Span(day(3), day(3)))
    stored = rig.ledger.window_rows[window_key("eu", day(2))]
    stored.window = replace(stored.window, state=WindowState.ARCHIVED)  # settled by another way already

    result = schedule(rig)["eu"]

    assert (result.action, result.window) == (WorkspaceAction.STARTED, "2027-01-03")
    assert result.detail == "freed the slot of export eu-1; window 2027-01-03 started (attempt 1)"
    assert rig.ledger.row("eu").active_job == "eu-2"


# -- the daily schedule -------------------------------------------------------------------------------------------


def test_a_daily_workspace_queues_every_day_up_to_yesterday_and_starts_the_oldest(rig: LedgerRig) -> None:
    eu = rig.workspace("eu", daily_start=day(10))

    result = schedule(rig)["eu"]

    assert (result.action, result.queued, result.window) == (WorkspaceAction.STARTED, 5, "2027-01-10")
    assert [label for label, _ in rig.ledger.states("eu")] == [f"2027-01-{n}" for n in range(10, 15)]
    assert eu.created == [(first_second(day(10)), last_second(day(10)))]
    assert rig.ledger.row("eu").daily_through == day(14)  # yesterday: today is not over

    settle(rig, "eu-1", JobState.NO_DATA)
    again = schedule(rig)["eu"]
    assert again.queued == 0 and len(rig.ledger.windows("eu")) == 5  # nothing queued twice

    rig.now += 86400  # the 15th is over
    settle(rig, "eu-2", JobState.COMPLETED, **ARCHIVED)
    assert schedule(rig)["eu"].queued == 1 and rig.ledger.row("eu").daily_through == TODAY


def test_missed_days_are_caught_up_at_most_max_queued_per_pass_oldest_first(rig: LedgerRig) -> None:
    start = date(2026, 1, 1)
    owed = (TODAY - start).days  # every day from start to yesterday
    assert owed > 2 * MAX_QUEUED_PER_PASS
    rig.workspace("eu", daily_start=start)

    first = schedule(rig)["eu"]

    assert first.queued == MAX_QUEUED_PER_PASS and first.window == "2026-01-01"
    assert rig.ledger.row("eu").daily_through == start + timedelta(days=MAX_QUEUED_PER_PASS - 1)
    queued_total = first.queued
    for job_number in range(1, 10):
        settle(rig, f"eu-{job_number}", JobState.NO_DATA)
        queued_total += schedule(rig)["eu"].queued
        if queued_total == owed:
            break
    assert queued_total == owed and rig.ledger.row("eu").daily_through == TODAY - timedelta(days=1)
    spans = [w.span for w in rig.ledger.windows("eu")]
    assert spans == [Span(start + timedelta(days=i), start + timedelta(days=i)) for i in range(owed)]


def test_daily_windows_of_several_days_are_queued_only_when_whole(rig: LedgerRig) -> None:
    rig.workspace("eu", daily_start=day(1), window_days=3)

    result = schedule(rig)["eu"]

    assert result.queued == 4  # 1-3, 4-6, 7-9, 10-12; 13-14 wait for the 15th
    assert [label for label, _ in rig.ledger.states("eu")] == [
        "2027-01-01..2027-01-03",
        "2027-01-04..2027-01-06",
        "2027-01-07..2027-01-09",
        "2027-01-10..2027-01-12",
    ]
    assert rig.ledger.row("eu").daily_through == day(12)


def test_the_daily_schedule_does_not_queue_days_a_backfill_covers(rig: LedgerRig) -> None:
    rig.workspace("eu", daily_start=day(10))
    queue(rig, "eu", Span(day(11), day(12)))

    schedule(rig)

    assert [label for label, _ in rig.ledger.states("eu")] == [
        "2027-01-10",
        "2027-01-11..2027-01-12",
        "2027-01-13",
        "2027-01-14",
    ]


def test_the_daily_schedule_never_queues_a_window_overlapping_a_failed_one(rig: LedgerRig) -> None:
    rig.workspace("eu", daily_start=day(10))  # window_days 1
    queue(rig, "eu", Span(day(10), day(12)))  # a backfill with --window-days 3, ahead of the daily schedule
    stored = rig.ledger.window_rows[window_key("eu", day(10))]
    stored.window = replace(stored.window, state=WindowState.FAILED, attempts=3)

    schedule(rig)

    spans = [w.span for w in rig.ledger.windows("eu")]
    overlaps = [(a, b) for a, b in itertools.pairwise(spans) if b.start <= a.end]
    assert overlaps == []


# -- leases and errors --------------------------------------------------------------------------------------------


def test_a_lease_lost_before_start_writes_nothing(rig: LedgerRig) -> None:
    eu = rig.workspace("eu")
    queue(rig, "eu", Span(day(1), day(1)))
    writes = list(rig.ledger.writes)

    lease_lost_before(rig, "start")

    result = schedule(rig)["eu"]

    assert (
        result.action is WorkspaceAction.RETRY
        and result.detail == "created eu-1 for window 2027-01-01 but not recorded"
    )
    assert len(eu.created) == 1  # Intercom has it; it answers 429 until it is done, then the window starts again
    assert rig.ledger.writes == writes  # not even the lease's release: it is someone else's
    assert rig.repo.jobs == {} and rig.ledger.states("eu") == [("2027-01-01", "queued")]
    row = rig.ledger.row("eu")
    assert (row.active_job, row.lease_owner) == (None, "other-poller")


def test_a_lease_lost_before_finish_writes_nothing(rig: LedgerRig) -> None:
    started(rig, Span(day(1), day(1)), Span(day(2), day(2)))
    settle(rig, "eu-1", JobState.COMPLETED, **ARCHIVED)
    writes, job = list(rig.ledger.writes), rig.repo.get("eu-1")

    lease_lost_before(rig, "finish")

    result = schedule(rig)["eu"]

    assert result.action is WorkspaceAction.ERROR and "TransactionCanceledException" in result.detail
    assert rig.ledger.writes == writes
    assert rig.ledger.states("eu") == [("2027-01-01", "running"), ("2027-01-02", "queued")]
    assert rig.ledger.row("eu").active_job == "eu-1" and rig.repo.get("eu-1") == job
    assert len(rig.sources.sources["eu"].created) == 1


def test_a_workspaces_unexpected_error_does_not_stop_the_others(rig: LedgerRig) -> None:
    bad, good = rig.workspace("bad"), rig.workspace("good")
    rig.workspace("broken")
    for name in ("bad", "good", "broken"):
        queue(rig, name, Span(day(1), day(1)))
    bad.creates.append(RuntimeError("a bug in the client"))

    def unwell(operation: str, workspace: str) -> None:
        if (operation, workspace) == ("claim_workspace", "broken"):
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "DynamoDB is unwell"}}, "UpdateItem")

    rig.ledger.before_write = unwell

    results = schedule(rig)

    assert results["good"].action is WorkspaceAction.STARTED and len(good.created) == 1
    assert results["bad"].action is WorkspaceAction.ERROR and results["bad"].detail == "a bug in the client"
    assert rig.ledger.row("bad").lease_owner is None  # released, to look again next interval
    assert rig.ledger.row("bad").next_check_at == int(rig.now + rig.settings.poll_interval_seconds)
    assert rig.ledger.window("bad", day(1)).state is WindowState.QUEUED
    assert results["broken"].action is WorkspaceAction.ERROR and "DynamoDB is unwell" in results["broken"].detail


def test_a_pass_with_no_time_left_leaves_every_workspace_due(rig: LedgerRig) -> None:
    eu = rig.workspace("eu")
    queue(rig, "eu", Span(day(1), day(1)))
    scheduler = Scheduler(rig.settings, rig.ledger, rig.repo, rig.sources, "me", lambda: rig.now)

    assert scheduler.run(True, lambda: -1.0) == []
    assert eu.created == [] and rig.ledger.row("eu").next_check_at == 0


# -- the poll cycle with windows ----------------------------------------------------------------------------------


def test_a_retried_window_attempt_publishes_nothing_and_the_next_attempt_starts_in_the_same_cycle(
    rig: LedgerRig,
) -> None:
    eu = rig.workspace("eu")
    queue(rig, "eu", Span(day(2), day(2)))
    eu.answer("eu-1", status("eu-1", "failed", message="Intercom could not build it"))

    summary = run_cycle(rig.poller(), owner="me")

    [job_result] = summary.results
    assert (job_result.job_identifier, job_result.state, job_result.event) == ("eu-1", "failed", None)
    assert rig.publisher.published == []
    job = rig.repo.get("eu-1")
    assert job is not None and job.settled and job.window_result == "retry"
    assert [(w.workspace, w.action) for w in summary.workspaces] == [
        ("eu", WorkspaceAction.STARTED),
        ("eu", WorkspaceAction.STARTED),  # the cycle's second pass: the window queued again and started
    ]
    window = rig.ledger.window("eu", day(2))
    assert (window.state, window.export_job, window.attempts) == (WindowState.RUNNING, "eu-2", 2)


def test_the_last_attempt_publishes_exactly_one_export_failed_naming_the_window(rig: LedgerRig) -> None:
    eu = rig.workspace("eu")
    queue(rig, "eu", Span(day(2), day(3)))
    for n in (1, 2, 3):
        eu.answer(f"eu-{n}", status(f"eu-{n}", "failed"))

    for _ in range(5):
        run_cycle(rig.poller(), owner="me")
        rig.now += rig.settings.poll_interval_seconds

    [note] = rig.publisher.published
    assert (note.job_identifier, note.event.value, note.workspace) == ("eu-3", "export.failed", "eu")
    assert (note.body["window_start"], note.body["window_end"], note.body["workspace"]) == (
        "2027-01-02",
        "2027-01-03",
        "eu",
    )
    assert str(note.body["reason"]).startswith("window 2027-01-02..2027-01-03 of workspace eu failed after 3 attempts")
    window = rig.ledger.window("eu", day(2))
    assert (window.state, window.attempts) == (WindowState.FAILED, 3)
    assert len(eu.created) == 3 and all(rig.repo.jobs[f"eu-{n}"].settled for n in (1, 2, 3))


def test_a_window_export_that_completes_is_copied_under_its_window_day_and_archived(rig: LedgerRig) -> None:
    eu = rig.workspace("eu")
    queue(rig, "eu", Span(day(2), day(2)), Span(day(3), day(3)))
    eu.answer("eu-1", status("eu-1", "completed", expires_at=rig.now + 40 * HOUR))
    eu.files[eu.download_url_for("eu-1")] = ZIP_BYTES

    summary = run_cycle(rig.poller(), owner="me")

    assert summary.events == {"export.completed": 1}
    assert list(rig.archive.objects) == ["intercom-exports/eu/content/dt=2027-01-02/eu-1.zip"]
    assert rig.ledger.states("eu") == [("2027-01-02", "archived"), ("2027-01-03", "running")]
    assert rig.ledger.window("eu", day(2)).s3_uri == "s3://archive/intercom-exports/eu/content/dt=2027-01-02/eu-1.zip"
    assert rig.source.status_calls == [] and eu.status_calls == ["eu-1"]  # eu's host and token only


def tracked(rig: LedgerRig, *ids_and_workspaces: tuple[str, str]) -> None:
    for job_id, workspace in ids_and_workspaces:
        rig.track(job_id, workspace=workspace)


def test_a_rate_limit_in_one_workspace_does_not_stop_another_workspaces_jobs(rig: LedgerRig) -> None:
    rig.settings = settings(poll_concurrency=1)  # one job at a time, in table order
    a, b = rig.workspace("a"), rig.workspace("b")
    tracked(rig, ("a1", "a"), ("a2", "a"), ("b1", "b"))
    a.answer("a1", RateLimited(rig.now + 120))
    a.answer("a2", status("a2", "in_progress"))
    b.answer("b1", status("b1", "in_progress"))

    summary = run_cycle(rig.poller(), owner="me")

    actions = {r.job_identifier: r.action for r in summary.results}
    assert actions == {"a1": Action.DEFERRED, "a2": Action.SKIPPED, "b1": Action.CHECKED}
    assert a.status_calls == ["a1"] and b.status_calls == ["b1"]
    assert list(summary.halted) == ["a"] and summary.left_for_next_cycle == 0
    assert summary.stop_reason is StopReason.RATE_LIMITED
    a2 = rig.repo.get("a2")
    assert a2 is not None and a2.lease_owner is None and a2.attempts == 0  # left as it was, due next cycle


def test_a_refused_token_in_one_workspace_does_not_stop_another_workspaces_jobs(rig: LedgerRig) -> None:
    rig.settings = settings(poll_concurrency=1)
    a, b = rig.workspace("a"), rig.workspace("b")
    tracked(rig, ("a1", "a"), ("a2", "a"), ("b1", "b"))
    a.answer("a1", Unauthorized("Intercom rejected the token (401)"))
    b.answer("b1", status("b1", "in_progress"))

    summary = run_cycle(rig.poller(), owner="me")

    assert {r.job_identifier: r.action for r in summary.results} == {
        "a1": Action.RETRY,
        "a2": Action.SKIPPED,
        "b1": Action.CHECKED,
    }
    assert list(summary.halted) == ["a"] and b.status_calls == ["b1"]


def test_a_rate_limit_stops_every_job_when_default_is_the_only_workspace(rig: LedgerRig) -> None:
    rig.settings = settings(poll_concurrency=1)
    rig.sources.is_single = True  # the old behaviour: one workspace, one rate limit for the whole cycle
    tracked(rig, ("d1", "default"), ("d2", "default"), ("d3", "default"))
    rig.source.answer("d1", RateLimited(rig.now + 120))
    rig.source.answer("d2", status("d2", "in_progress"))

    summary = run_cycle(rig.poller(), owner="me")

    assert [(r.job_identifier, r.action) for r in summary.results] == [("d1", Action.DEFERRED)]
    assert summary.left_for_next_cycle == 2 and summary.stop_reason is StopReason.RATE_LIMITED
    assert rig.source.status_calls == ["d1"] and summary.halted == {}


def test_a_rate_limit_stops_everything_when_single_even_across_workspaces(rig: LedgerRig) -> None:
    rig.settings = settings(poll_concurrency=1)
    rig.sources.is_single = True
    a, b = rig.workspace("a"), rig.workspace("b")
    tracked(rig, ("a1", "a"), ("b1", "b"))
    a.answer("a1", RateLimited(rig.now + 120))
    b.answer("b1", status("b1", "in_progress"))

    summary = run_cycle(rig.poller(), owner="me")

    assert [r.job_identifier for r in summary.results] == ["a1"] and b.status_calls == []
    assert summary.left_for_next_cycle == 1


def test_a_plain_poller_without_a_ledger_schedules_nothing_and_works_as_before() -> None:
    plain = LedgerRig()
    plain.track("solo")
    plain.source.answer("solo", status("solo", "in_progress"))
    poller = replace(plain.poller(), sources=None, ledger=None)

    summary = run_cycle(poller, owner="me")

    assert summary.workspaces == [] and [r.action for r in summary.results] == [Action.CHECKED]
    assert poller.export_sources().single()

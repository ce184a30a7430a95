"""The scheduler and the poll cycle with the reporting export family (issue 11), over in-memory fakes
(tests/support/fakes.py: FakeLedger keeps LedgerStore's conditions, FakeSources one FakeSource per workspace).

A queued reporting window is enqueued with its dataset, its attributes and its exact range; up to five reporting
exports run at once beside the one content export (the families' slots are independent), the sixth waits; a 429
stops starting more in that pass and fails nothing; a settled reporting export frees its slot and moves its window
as windows.judge says; the datasets' daily schedules queue whole days with every attribute of the dataset; the
cycle checks a reporting job with its dataset and copies it under reporting/{dataset}/.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from exportwatch.intercom import ActiveJobExists, BadRequest, RateLimited, TransientError
from exportwatch.ledger import window_key
from exportwatch.model import JobState, from_epoch, iso
from exportwatch.poll import run_cycle
from exportwatch.reporting import MAX_PENDING, Attribute, Dataset
from exportwatch.results import WorkspaceAction
from exportwatch.windows import Span, WindowState
from support.fakes import ZIP_BYTES, FakeSource, LedgerRig
from support.fakes import report as status
from support.scheduling import day, first_second, last_second, lease_lost_before, queue, schedule, settle

HOUR = 3600
CONVERSATION = "reporting:conversation"  # the ledger kind of the conversation dataset's windows
TICKET = "reporting:ticket"
ATTRIBUTES = ("conversation.conversation_id", "conversation.created_at")  # FakeSource's catalogue, by qualified id
FULL = "Exceeded rate limit of 5 pending reporting dataset export jobs"


def one_day(n: int) -> Span:
    return Span(day(n), day(n))


@pytest.fixture
def rig() -> LedgerRig:
    return LedgerRig()


def queue_dataset(
    rig: LedgerRig,
    workspace: str,
    *spans: Span,
    dataset: str = "conversation",
    attributes: tuple[str, ...] = ATTRIBUTES,
) -> None:
    rig.ledger.queue(workspace, list(spans), iso(from_epoch(rig.now)), "reporting", dataset, attributes)


def reporting_eu(rig: LedgerRig) -> FakeSource:
    return rig.workspace("eu", reporting_ids=True)


def archived(job_id: str, dataset: str = "conversation", dt: str = "2027-01-02") -> dict[str, object]:
    uri = f"s3://archive/intercom-exports/eu/reporting/{dataset}/dt={dt}/{job_id}.zip"
    return {"s3_uri": uri, "size_bytes": 10, "sha256": "cd" * 32}


# -- starting reporting windows -----------------------------------------------------------------------------------


def test_a_queued_reporting_window_is_enqueued_with_its_dataset_attributes_and_exact_range(rig: LedgerRig) -> None:
    eu = reporting_eu(rig)
    queue_dataset(rig, "eu", Span(day(2), day(3)))

    result = schedule(rig)["eu"]

    # Whole UTC days, both included: the first second of the 2nd .. the last second of the 3rd.
    assert eu.enqueued == [("conversation", ATTRIBUTES, first_second(day(2)), last_second(day(3)))]
    assert eu.enqueued[0][2:] == (1_798_848_000, 1_799_020_799)
    assert eu.created == [] and rig.source.enqueued == []  # no content export; never the default's source
    assert (result.action, result.window, result.job_identifier, result.detail) == (
        WorkspaceAction.STARTED,
        "2027-01-02..2027-01-03",
        "eu-r1",
        "conversation window 2027-01-02..2027-01-03 started (attempt 1)",
    )
    job = rig.repo.get("eu-r1")
    assert job is not None
    assert (job.kind, job.dataset, job.api_version) == ("reporting", "conversation", rig.settings.intercom_version)
    assert (job.workspace, job.window_start, job.window_end, job.window_attempt) == (
        "eu",
        "2027-01-02",
        "2027-01-03",
        1,
    )
    assert (job.created_at_after, job.created_at_before) == ("2027-01-02T00:00:00Z", "2027-01-03T23:59:59Z")
    assert (job.state, job.next_check_at, job.intercom_status) == (JobState.WATCHING, 0, "pending")
    window = rig.ledger.window("eu", day(2), CONVERSATION)
    assert (window.state, window.export_job, window.attempts, window.kind, window.dataset, window.attributes) == (
        WindowState.RUNNING,
        "eu-r1",
        1,
        "reporting",
        "conversation",
        ATTRIBUTES,
    )
    row = rig.ledger.row("eu")
    assert row.active_reporting == {("eu-r1", window_key("eu", day(2), CONVERSATION))}
    assert (row.active_job, row.active_window) == (None, None)  # the content slot is untouched
    assert row.lease_owner is None and row.next_check_at == int(rig.now + rig.settings.max_check_delay_seconds)


def test_attributes_are_sent_exactly_as_queued(rig: LedgerRig) -> None:
    eu = reporting_eu(rig)
    queue_dataset(rig, "eu", one_day(4), attributes=("conversation.created_at",))

    schedule(rig)

    assert eu.enqueued == [("conversation", ("conversation.created_at",), first_second(day(4)), last_second(day(4)))]


def test_five_reporting_exports_run_beside_one_content_export_and_the_sixth_waits(rig: LedgerRig) -> None:
    eu = reporting_eu(rig)
    queue(rig, "eu", one_day(1), one_day(2))
    queue_dataset(rig, "eu", one_day(1), one_day(2), one_day(3))
    queue_dataset(rig, "eu", one_day(4), one_day(5), one_day(6), dataset="ticket", attributes=("ticket.id",))
    assert MAX_PENDING == 5

    first = schedule(rig)["eu"]

    assert first.action is WorkspaceAction.STARTED
    assert eu.created == [(first_second(day(1)), last_second(day(1)))]  # content: its one slot
    # reporting: the family's five oldest windows, every dataset together, oldest first
    assert [(d, s) for d, _, s, _ in eu.enqueued] == [
        ("conversation", first_second(day(1))),
        ("conversation", first_second(day(2))),
        ("conversation", first_second(day(3))),
        ("ticket", first_second(day(4))),
        ("ticket", first_second(day(5))),
    ]
    row = rig.ledger.row("eu")
    assert row.active_job == "eu-1" and len(row.active_reporting) == MAX_PENDING
    assert rig.ledger.states("eu", TICKET) == [
        ("2027-01-04", "running"),
        ("2027-01-05", "running"),
        ("2027-01-06", "queued"),
    ]
    assert rig.ledger.states("eu") == [("2027-01-01", "running"), ("2027-01-02", "queued")]

    # Nothing settled: every slot is taken, nothing more is asked of Intercom.
    second = schedule(rig)["eu"]
    assert second.action is WorkspaceAction.WAITING and "still running" in second.detail
    assert len(eu.created) == 1 and len(eu.enqueued) == MAX_PENDING

    # The content export settles: the next content window starts although the reporting slots are all taken.
    settle(rig, "eu-1", JobState.NO_DATA)
    third = schedule(rig)["eu"]
    assert (third.action, third.job_identifier) == (WorkspaceAction.STARTED, "eu-2")
    assert len(eu.enqueued) == MAX_PENDING and rig.ledger.states("eu", TICKET)[-1] == ("2027-01-06", "queued")

    # One reporting export settles: the sixth window takes its slot; the content export is left alone.
    settle(rig, "eu-r2", JobState.NO_DATA)
    fourth = schedule(rig)["eu"]
    assert (fourth.action, fourth.window, fourth.job_identifier) == (WorkspaceAction.STARTED, "2027-01-06", "eu-r6")
    assert eu.enqueued[-1] == ("ticket", ("ticket.id",), first_second(day(6)), last_second(day(6)))
    row = rig.ledger.row("eu")
    assert row.active_job == "eu-2" and len(row.active_reporting) == MAX_PENDING
    assert ("eu-r2", window_key("eu", day(2), CONVERSATION)) not in row.active_reporting
    assert rig.ledger.states("eu", CONVERSATION)[1] == ("2027-01-02", "empty")


def test_a_content_export_that_is_turned_away_does_not_stop_the_reporting_family(rig: LedgerRig) -> None:
    eu = reporting_eu(rig)
    queue(rig, "eu", one_day(1))
    queue_dataset(rig, "eu", one_day(1))
    eu.creates.append(ActiveJobExists("an export job is already active"))  # content's create

    result = schedule(rig)["eu"]

    assert result.action is WorkspaceAction.STARTED and result.job_identifier == "eu-r1"
    assert rig.ledger.states("eu") == [("2027-01-01", "queued")]
    assert rig.ledger.states("eu", CONVERSATION) == [("2027-01-01", "running")]


def test_a_429_on_enqueue_stops_starting_reporting_windows_in_that_pass_and_fails_nothing(rig: LedgerRig) -> None:
    eu = reporting_eu(rig)
    queue(rig, "eu", one_day(1))
    queue_dataset(rig, "eu", one_day(1), one_day(2), one_day(3), one_day(4))
    # content's create, two enqueues that work, then Intercom has five pending (some not ours)
    eu.creates += [status("c-1", "pending"), status("r-a", "pending"), status("r-b", "pending"), ActiveJobExists(FULL)]

    result = schedule(rig)["eu"]

    assert len(eu.created) == 1 and len(eu.enqueued) == 3  # the 4th window was not even tried
    assert result.action is WorkspaceAction.STARTED
    assert f"conversation window 2027-01-03 waits: {FULL}" in result.detail.split("; ")
    assert rig.ledger.states("eu", CONVERSATION) == [
        ("2027-01-01", "running"),
        ("2027-01-02", "running"),
        ("2027-01-03", "queued"),
        ("2027-01-04", "queued"),
    ]
    for n in (3, 4):
        window = rig.ledger.window("eu", day(n), CONVERSATION)
        assert (window.attempts, window.round_attempts, window.last_error) == (0, 0, None)
    assert set(rig.repo.jobs) == {"c-1", "r-a", "r-b"} and rig.publisher.published == []
    row = rig.ledger.row("eu")
    assert row.active_job == "c-1" and {job for job, _ in row.active_reporting} == {"r-a", "r-b"}
    assert row.next_check_at == int(rig.now + rig.settings.poll_interval_seconds)  # look again next interval

    rig.now += rig.settings.poll_interval_seconds
    again = schedule(rig, all_due=False)["eu"]
    assert again.action is WorkspaceAction.STARTED and len(eu.enqueued) == 5
    assert [s for _, s in rig.ledger.states("eu", CONVERSATION)] == ["running"] * 4


@pytest.mark.parametrize(
    ("refusal", "detail"),
    [
        (ActiveJobExists(FULL), FULL),
        (RateLimited(1_800_000_600.0), "rate limited by Intercom until 2027-01-15T08:10:00Z"),
    ],
)
def test_a_turned_away_reporting_window_waits_as_the_only_thing_in_the_pass(
    rig: LedgerRig, refusal: Exception, detail: str
) -> None:
    eu = reporting_eu(rig)
    queue_dataset(rig, "eu", one_day(1), one_day(2))
    eu.creates.append(refusal)

    result = schedule(rig)["eu"]

    assert (result.action, result.window, result.job_identifier) == (WorkspaceAction.WAITING, "2027-01-01", None)
    assert result.detail == f"conversation window 2027-01-01 waits: {detail}"
    assert len(eu.enqueued) == 1 and rig.repo.jobs == {}
    assert rig.ledger.row("eu").active_reporting == set()


def test_an_enqueue_that_fails_keeps_the_window_queued_with_the_reason(rig: LedgerRig) -> None:
    eu = reporting_eu(rig)
    queue_dataset(rig, "eu", one_day(1))
    error = TransientError("HTTP 503 from Intercom")
    eu.creates.append(error)

    result = schedule(rig)["eu"]

    assert result.action is WorkspaceAction.RETRY
    assert result.detail == f"conversation window 2027-01-01 could not start the export: {error}"
    window = rig.ledger.window("eu", day(1), CONVERSATION)
    assert (window.state, window.attempts, window.last_error) == (
        WindowState.QUEUED,
        0,
        f"could not start the export: {error}",
    )


def test_a_window_intercom_refuses_does_not_keep_another_datasets_windows_from_starting(rig: LedgerRig) -> None:
    eu = reporting_eu(rig)
    queue_dataset(rig, "eu", one_day(1), dataset="ticket", attributes=("ticket.gone",))
    queue_dataset(rig, "eu", one_day(2))
    eu.creates.append(BadRequest("Intercom refused the request: unknown attribute ticket.gone"))

    schedule(rig)

    assert rig.ledger.window("eu", day(1), TICKET).state is WindowState.QUEUED
    assert rig.ledger.states("eu", CONVERSATION) == [("2027-01-02", "running")]


# -- settling reporting windows -----------------------------------------------------------------------------------


def started(rig: LedgerRig, *spans: Span) -> FakeSource:
    eu = reporting_eu(rig)
    queue_dataset(rig, "eu", *spans)
    assert schedule(rig)["eu"].action is WorkspaceAction.STARTED
    return eu


def test_an_archived_reporting_export_archives_the_window_with_its_api_version_and_frees_its_slot(
    rig: LedgerRig,
) -> None:
    started(rig, one_day(2))
    settle(rig, "eu-r1", JobState.COMPLETED, **archived("eu-r1"))

    result = schedule(rig)["eu"]

    assert (result.action, result.window, result.job_identifier, result.detail, result.settled) == (
        WorkspaceAction.SETTLED,
        "2027-01-02",
        "eu-r1",
        "conversation window 2027-01-02 archived",
        "archived",
    )
    window = rig.ledger.window("eu", day(2), CONVERSATION)
    assert (window.state, window.s3_uri, window.api_version) == (
        WindowState.ARCHIVED,
        archived("eu-r1")["s3_uri"],
        rig.settings.intercom_version,
    )
    stored = rig.ledger.window_rows[window.key]
    assert (stored.size_bytes, stored.sha256) == (10, "cd" * 32)
    assert window.to_dict() | {"workspace": "eu"} == {
        "workspace": "eu",
        "kind": "reporting",
        "dataset": "conversation",
        "start": "2027-01-02",
        "end": "2027-01-02",
        "state": "archived",
        "job_identifier": "eu-r1",
        "s3_uri": archived("eu-r1")["s3_uri"],
        "attempts": 1,
        "api_version": rig.settings.intercom_version,
    }
    assert rig.ledger.row("eu").active_reporting == set()


def test_no_data_makes_the_reporting_window_empty(rig: LedgerRig) -> None:
    started(rig, one_day(2))
    settle(rig, "eu-r1", JobState.NO_DATA)

    result = schedule(rig)["eu"]

    assert (result.action, result.detail, result.settled) == (
        WorkspaceAction.SETTLED,
        "conversation window 2027-01-02 empty",
        "empty",
    )
    assert rig.ledger.states("eu", CONVERSATION) == [("2027-01-02", "empty")]
    assert rig.ledger.row("eu").active_reporting == set()


def test_a_reporting_export_still_running_keeps_its_slot(rig: LedgerRig) -> None:
    started(rig, one_day(2))

    result = schedule(rig)["eu"]

    assert (result.action, result.job_identifier, result.detail) == (
        WorkspaceAction.WAITING,
        "eu-r1",
        "conversation window 2027-01-02 export eu-r1 still running",
    )
    assert len(rig.ledger.row("eu").active_reporting) == 1


@pytest.mark.parametrize("state", [JobState.FAILED, JobState.EXPIRED, JobState.NOT_FOUND, JobState.CANCELED])
def test_a_failed_reporting_export_is_retried_then_the_window_fails_after_the_last_attempt(
    rig: LedgerRig, state: JobState
) -> None:
    eu = started(rig, Span(day(2), day(4)))
    max_attempts = rig.settings.window_max_attempts

    for attempt in range(1, max_attempts):
        settle(rig, f"eu-r{attempt}", state, outcome_reason="Intercom's export job failed")
        result = schedule(rig)["eu"]
        assert (result.action, result.job_identifier) == (WorkspaceAction.STARTED, f"eu-r{attempt + 1}")
        job = rig.repo.get(f"eu-r{attempt + 1}")
        assert job is not None and (job.window_attempt, job.kind, job.dataset) == (
            attempt + 1,
            "reporting",
            "conversation",
        )
        row = rig.ledger.row("eu")
        assert row.active_reporting == {(f"eu-r{attempt + 1}", window_key("eu", day(2), CONVERSATION))}

    settle(rig, f"eu-r{max_attempts}", state, outcome_reason="Intercom's export job failed")
    result = schedule(rig)["eu"]

    assert (result.action, result.detail, result.settled) == (
        WorkspaceAction.SETTLED,
        "conversation window 2027-01-02..2027-01-04 failed",
        "failed",
    )
    window = rig.ledger.window("eu", day(2), CONVERSATION)
    assert (window.state, window.attempts) == (WindowState.FAILED, max_attempts)
    assert window.last_error is not None and window.last_error.startswith(
        "conversation window 2027-01-02..2027-01-04 of workspace eu"
    )
    assert eu.enqueued == [("conversation", ATTRIBUTES, first_second(day(2)), last_second(day(4)))] * max_attempts
    assert rig.ledger.row("eu").active_reporting == set()
    assert schedule(rig)["eu"].action is WorkspaceAction.IDLE  # a failed window is not started again


def test_a_reporting_job_gone_from_the_table_queues_its_window_again(rig: LedgerRig) -> None:
    started(rig, one_day(2))
    del rig.repo.jobs["eu-r1"]

    result = schedule(rig)["eu"]

    assert (result.action, result.job_identifier) == (WorkspaceAction.STARTED, "eu-r2")
    assert rig.ledger.window("eu", day(2), CONVERSATION).attempts == 2
    assert {job for job, _ in rig.ledger.row("eu").active_reporting} == {"eu-r2"}


def test_a_reporting_slot_whose_window_is_not_running_its_job_is_just_freed(rig: LedgerRig) -> None:
    started(rig, one_day(2), one_day(3), one_day(4), one_day(5), one_day(6), one_day(7))
    stored = rig.ledger.window_rows[window_key("eu", day(2), CONVERSATION)]
    stored.window = replace(stored.window, state=WindowState.ARCHIVED)  # settled by another way already

    result = schedule(rig)["eu"]

    assert (result.action, result.window, result.job_identifier) == (WorkspaceAction.STARTED, "2027-01-07", "eu-r6")
    assert result.detail.startswith("freed the slot of export eu-r1; ")
    assert f"clear_active eu eu-r1|{stored.window.key}" in rig.ledger.writes
    row = rig.ledger.row("eu")
    assert len(row.active_reporting) == MAX_PENDING and "eu-r1" not in {job for job, _ in row.active_reporting}


def test_a_lease_lost_before_a_reporting_finish_writes_nothing(rig: LedgerRig) -> None:
    started(rig, one_day(2))
    settle(rig, "eu-r1", JobState.NO_DATA)
    writes = list(rig.ledger.writes)

    lease_lost_before(rig, "finish")

    result = schedule(rig)["eu"]

    assert result.action is WorkspaceAction.ERROR and "TransactionCanceledException" in result.detail
    assert rig.ledger.writes == writes
    assert rig.ledger.states("eu", CONVERSATION) == [("2027-01-02", "running")]
    assert len(rig.ledger.row("eu").active_reporting) == 1


# -- the datasets' daily schedules --------------------------------------------------------------------------------


def test_a_daily_dataset_queues_every_day_up_to_yesterday_with_every_attribute(rig: LedgerRig) -> None:
    eu = rig.workspace("eu", daily_start=day(9), daily_datasets=("conversation",))
    attributes = tuple(Attribute(f"a{n}", f"conversation.a{n}", f"A{n}") for n in range(3))
    eu.catalogue = [
        Dataset("ticket", "Ticket", "", None, (Attribute("id", "ticket.id", "Id"),)),
        Dataset("conversation", "Conversation", "", "conversation.a0", attributes),
    ]
    every = ("conversation.a0", "conversation.a1", "conversation.a2")

    result = schedule(rig)["eu"]

    assert (result.action, result.queued) == (WorkspaceAction.STARTED, 6)  # the 9th .. the 14th
    assert rig.ledger.states("eu", CONVERSATION) == [(f"2027-01-{n:02d}", "running") for n in range(9, 14)] + [
        ("2027-01-14", "queued")  # the sixth waits for a slot
    ]
    assert all(w.attributes == every for w in rig.ledger.windows("eu", CONVERSATION))
    assert eu.enqueued == [("conversation", every, first_second(day(n)), last_second(day(n))) for n in range(9, 14)]
    assert rig.ledger.windows("eu") == [] and eu.created == []  # no content schedule for this workspace
    row = rig.ledger.row("eu")
    assert row.reporting_through == {"conversation": day(14)} and row.daily_through is None

    again = schedule(rig)["eu"]
    assert again.queued == 0 and len(rig.ledger.windows("eu", CONVERSATION)) == 6  # nothing queued twice

    rig.now += 86400  # the 15th is over
    assert schedule(rig)["eu"].queued == 1
    assert rig.ledger.row("eu").reporting_through == {"conversation": day(15)}


def test_daily_content_and_daily_datasets_keep_their_own_schedules(rig: LedgerRig) -> None:
    eu = rig.workspace("eu", daily_start=day(13), daily_datasets=("conversation",), daily_content=True)
    rig.ledger.row("eu").reporting_through = {"conversation": day(13)}  # the dataset is one day further along

    result = schedule(rig)["eu"]

    assert result.queued == 3  # content: the 13th and the 14th; conversation: the 14th
    assert rig.ledger.states("eu") == [("2027-01-13", "running"), ("2027-01-14", "queued")]
    assert rig.ledger.states("eu", CONVERSATION) == [("2027-01-14", "running")]
    row = rig.ledger.row("eu")
    assert (row.daily_through, row.reporting_through) == (day(14), {"conversation": day(14)})
    assert len(eu.created) == 1 and len(eu.enqueued) == 1


@pytest.mark.parametrize("catalogue_fails", [False, True])
def test_an_unknown_daily_dataset_logs_queues_nothing_and_the_content_schedule_goes_on(
    rig: LedgerRig, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, catalogue_fails: bool
) -> None:
    eu = rig.workspace("eu", daily_start=day(13), daily_datasets=("nosuch",), daily_content=True)
    why = "Intercom has no dataset 'nosuch' in this workspace (known: conversation)"
    if catalogue_fails:
        why = "HTTP 503 from Intercom"

        def unavailable() -> list[Dataset]:
            raise TransientError(why)

        monkeypatch.setattr(eu, "get_datasets", unavailable)

    with caplog.at_level(logging.ERROR, logger="exportwatch.schedule"):
        result = schedule(rig)["eu"]

    phrase = f"daily nosuch windows not queued: {why}"
    assert result.action is WorkspaceAction.RETRY
    assert result.detail == f"{phrase}; window 2027-01-13 started (attempt 1)"
    assert [r.getMessage() for r in caplog.records] == [f"workspace eu: {phrase}"]
    assert rig.ledger.windows("eu", None) == rig.ledger.windows("eu")  # only content windows
    assert rig.ledger.states("eu") == [("2027-01-13", "running"), ("2027-01-14", "queued")]
    assert eu.enqueued == [] and len(eu.created) == 1
    row = rig.ledger.row("eu")
    assert (row.daily_through, row.reporting_through) == (day(14), {})


# -- the poll cycle with reporting windows ------------------------------------------------------------------------


def test_a_poll_cycle_checks_a_reporting_job_with_its_dataset_and_archives_it_under_its_dataset(
    rig: LedgerRig,
) -> None:
    eu = reporting_eu(rig)
    queue(rig, "eu", one_day(2))
    queue_dataset(rig, "eu", one_day(2))
    for job_id, dataset in (("eu-1", None), ("eu-r1", "conversation")):
        eu.answer(job_id, status(job_id, "complete", expires_at=rig.now + 40 * HOUR))
        eu.files[eu.download_url_for(job_id, dataset)] = ZIP_BYTES

    summary = run_cycle(rig.poller(), owner="me")

    assert summary.events == {"export.completed": 2}
    assert dict(zip(eu.status_calls, eu.status_datasets, strict=True)) == {"eu-1": None, "eu-r1": "conversation"}
    assert rig.source.status_calls == []  # eu's host and token only
    reporting_key = "intercom-exports/eu/reporting/conversation/dt=2027-01-02/eu-r1.zip"
    assert sorted(rig.archive.objects) == ["intercom-exports/eu/content/dt=2027-01-02/eu-1.zip", reporting_key]
    assert eu.download_url_for("eu-r1", "conversation") in eu.downloads
    window = rig.ledger.window("eu", day(2), CONVERSATION)
    assert (window.state, window.s3_uri, window.api_version) == (
        WindowState.ARCHIVED,
        f"s3://archive/{reporting_key}",
        rig.settings.intercom_version,
    )
    assert rig.ledger.states("eu") == [("2027-01-02", "archived")]
    assert rig.ledger.row("eu").active_reporting == set() and rig.ledger.row("eu").active_job is None
    note = next(n for n in rig.publisher.published if n.job_identifier == "eu-r1")
    assert (note.body["kind"], note.body["dataset"], note.dataset) == ("reporting", "conversation", "conversation")


def test_a_week_of_conversation_and_a_week_of_content_reach_one_gap_free_ledger(rig: LedgerRig) -> None:
    eu = reporting_eu(rig)
    week = [one_day(n) for n in range(1, 8)]
    queue(rig, "eu", *week)
    queue_dataset(rig, "eu", *week)

    for _ in range(12):  # each cycle: what the scheduler started is completed at Intercom by the next one
        for job_id, job in rig.repo.jobs.items():
            if job_id not in eu.answers:
                eu.answer(job_id, status(job_id, "complete", expires_at=rig.now + 40 * HOUR))
                eu.files[eu.download_url_for(job_id, job.dataset if job.reporting else None)] = ZIP_BYTES
        run_cycle(rig.poller(), owner="me")
        rig.now += rig.settings.poll_interval_seconds
        if all(w.state is WindowState.ARCHIVED for w in rig.ledger.windows("eu", None)):
            break

    everything = rig.ledger.windows("eu", None)
    assert [(w.lkind, w.span.label(), w.state.value) for w in everything] == [
        (lkind, f"2027-01-0{n}", "archived") for lkind in ("content", CONVERSATION) for n in range(1, 8)
    ]
    assert len(rig.archive.objects) == 14 and len(rig.publisher.published) == 14

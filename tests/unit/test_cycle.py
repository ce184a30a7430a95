"""The poll cycle (exportwatch.poll.run_cycle) over in-memory fakes of its four ports (tests/support/fakes.py):
the order of its steps, leases, one job's failure among others, the time budget and the stops. The decisions
themselves are tests/unit/test_decide.py; the same cycle against moto and the emulator is tests/integration."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from exportwatch.archive import IncompleteDownload
from exportwatch.config import ConfigError
from exportwatch.intercom import ForeignOrigin, RateLimited, TransientError, Unauthorized
from exportwatch.model import Job, JobState, from_epoch, iso
from exportwatch.poll import Action, StopReason, run_cycle
from support.fakes import ZIP_BYTES, Rig
from support.fakes import report as status

HOUR = 3600


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_a_completed_export_is_copied_checkpointed_published_and_settled(rig: Rig) -> None:
    rig.track("done1")
    rig.source.answer("done1", status("done1", "completed", expires_at=rig.now + 40 * HOUR))
    rig.serve("done1")
    order: list[str] = []
    rig.repo.before_save = lambda job, release: order.append(f"save {job.state.value} release={release}")
    rig.publisher.before_publish = lambda note: order.append(f"publish {note.event.value}")

    summary = run_cycle(rig.poller(), owner="me")

    [result] = summary.results
    assert (result.action, result.state, result.event) == (Action.COPIED, "completed", "export.completed")
    assert (result.bytes_copied, result.copy_seconds, result.intercom_status) == (len(ZIP_BYTES), 1.5, "completed")
    assert order == ["save completed release=False", "publish export.completed", "save completed release=True"]
    assert rig.archive.objects == {"intercom-exports/default/content/dt=2027-01-15/done1.zip": ZIP_BYTES}
    assert rig.source.downloads == [rig.source.download_url_for("done1")]
    [note] = rig.publisher.published
    assert note.body["s3_uri"] == "s3://archive/intercom-exports/default/content/dt=2027-01-15/done1.zip"
    assert note.body["size_bytes"] == len(ZIP_BYTES)
    job = rig.repo.get("done1")
    assert job.settled and job.lease_owner is None and job.notified_at == iso(from_epoch(rig.now))
    assert summary.to_dict()["actions"] == {"copied": 1} and summary.stop_reason is None


def test_intercoms_download_url_is_used_when_it_gives_one(rig: Rig) -> None:
    url = "https://api.intercom.io/download/content/data/done2?signature=x"
    rig.track("done2")
    rig.source.answer("done2", status("done2", "completed", download_url=url))
    rig.source.files[url] = ZIP_BYTES

    run_cycle(rig.poller())

    assert rig.source.downloads == [url] and rig.publisher.events == [("done2", "export.completed")]


def test_a_foreign_download_url_fails_the_job_and_says_why(rig: Rig) -> None:
    url = "https://evil.example/x.zip"
    rig.track("foreign")
    rig.source.answer("foreign", status("foreign", "completed", download_url=url))
    rig.source.files[url] = ForeignOrigin("download_url is on https://evil.example: refusing to send the token there")

    [result] = run_cycle(rig.poller()).results

    assert (result.action, result.state, result.event) == (Action.NOTIFIED, "failed", "export.failed")
    assert "evil.example" in rig.publisher.published[0].body["reason"] and rig.archive.objects == {}


def test_an_export_known_expired_is_not_downloaded_and_one_gone_at_download_time_expires(rig: Rig) -> None:
    rig.track("old")
    rig.source.answer("old", status("old", "completed", expires_at=rig.now))
    rig.track("gone")
    rig.source.answer("gone", status("gone", "completed", expires_at=rig.now + HOUR))  # not served: HTTP 404

    summary = run_cycle(rig.poller())

    assert summary.events == {"export.expired": 2}
    assert rig.source.downloads == [rig.source.download_url_for("gone")] and rig.archive.objects == {}
    reasons = {n.job_identifier: n.body["reason"] for n in rig.publisher.published}
    assert reasons["old"].startswith("Intercom's copy expired at") and reasons["gone"].startswith(
        "Intercom no longer has the file"
    )


def test_a_broken_copy_is_retried_next_cycle_without_a_notification(rig: Rig) -> None:
    rig.track("flaky")
    rig.source.answer("flaky", status("flaky", "completed", expires_at=rig.now + 40 * HOUR))
    rig.serve("flaky")
    rig.archive.failures["flaky"] = IncompleteDownload("download ended after 10 of 20 bytes (Content-Length)")

    [first] = run_cycle(rig.poller()).results

    assert (first.action, first.state, first.event) == (Action.RETRY, "watching", None)
    assert first.detail.startswith("copy: download ended") and rig.publisher.published == []
    assert first.expires_in_seconds == 40 * HOUR and first.uncopied_seconds == 0  # gauges of an uncopied export
    assert rig.repo.get("flaky").next_check_at == int(rig.now + rig.settings.poll_interval_seconds)
    rig.now += rig.settings.poll_interval_seconds

    [second] = run_cycle(rig.poller()).results

    assert (second.action, second.event) == (Action.COPIED, "export.completed")


def test_a_job_intercom_has_not_finished_is_checked_again_and_measured(rig: Rig) -> None:
    rig.track("slow", age=2 * HOUR)
    rig.source.answer("slow", status("slow", "in_progress"))

    [result] = run_cycle(rig.poller()).results

    assert (result.action, result.state, result.detail) == (Action.CHECKED, "watching", "still in_progress")
    assert result.pending_seconds == 2 * HOUR and result.expires_in_seconds is None
    job = rig.repo.get("slow")
    assert job.next_check_at == int(rig.now + 2 * HOUR / 10) and job.attempts == 1 and job.lease_owner is None
    assert rig.publisher.published == [] and rig.repo.saves == [("slow", True)]  # one save: nothing to checkpoint


def test_a_failed_publish_keeps_the_outcome_and_is_published_next_cycle_without_a_second_copy(rig: Rig) -> None:
    rig.track("pub")
    rig.source.answer("pub", status("pub", "completed"))
    rig.serve("pub")
    rig.publisher.fail_next = 1

    [first] = run_cycle(rig.poller()).results

    assert (first.action, first.state, first.event) == (Action.RETRY, "completed", None)
    assert first.detail == "publish export.completed: SNS is having a bad day"
    outcome_at = rig.repo.get("pub").outcome_at
    rig.now += rig.settings.poll_interval_seconds

    [second] = run_cycle(rig.poller()).results

    assert (second.action, second.event) == (Action.NOTIFIED, "export.completed")
    assert rig.publisher.published[0].body["occurred_at"] == outcome_at  # the outcome's time, not the retry's
    assert len(rig.source.downloads) == 1 and rig.source.status_calls == ["pub"]  # a final job is not asked again
    assert rig.repo.get("pub").settled


def test_a_stuck_job_is_warned_once_after_a_checkpoint(rig: Rig) -> None:
    rig.track("stuck", age=13 * HOUR)
    rig.source.answer("stuck", status("stuck", "pending"))
    order: list[str] = []
    rig.repo.before_save = lambda job, release: order.append(f"save release={release}")
    rig.publisher.before_publish = lambda note: order.append(f"publish {note.event.value}")

    [first] = run_cycle(rig.poller(), all_jobs=True).results
    [second] = run_cycle(rig.poller(), all_jobs=True).results

    assert (first.action, first.warning, first.event) == (Action.WARNED, "export.stuck", None)
    assert order[:3] == ["save release=False", "publish export.stuck", "save release=True"]
    assert (second.action, second.warning) == (Action.CHECKED, None)
    assert rig.publisher.events == [("stuck", "export.stuck")]
    assert rig.repo.get("stuck").state is JobState.WATCHING


def test_a_warning_whose_publish_failed_is_sent_next_cycle(rig: Rig) -> None:
    rig.track("stuck2", age=13 * HOUR)
    rig.source.answer("stuck2", TransientError("Intercom answered HTTP 504"))
    rig.publisher.fail_next = 1

    [first] = run_cycle(rig.poller(), all_jobs=True).results
    [second] = run_cycle(rig.poller(), all_jobs=True).results

    assert (first.action, first.warning) == (Action.RETRY, None)
    assert first.detail == "status check: Intercom answered HTTP 504; publish export.stuck: SNS is having a bad day"
    assert (second.action, second.warning) == (Action.RETRY, "export.stuck")
    assert rig.publisher.events == [("stuck2", "export.stuck")]


# -- leases --------------------------------------------------------------------------------------------------------


def test_a_job_another_poller_holds_is_skipped_without_asking_intercom(rig: Rig) -> None:
    rig.track("held")
    rig.repo.take_over("held", "other", until=int(rig.now) + 60)
    rig.track("free")
    rig.source.answer("free", status("free", "pending"))

    summary = run_cycle(rig.poller())

    by_id = {r.job_identifier: r for r in summary.results}
    assert by_id["held"].action is Action.SKIPPED and by_id["held"].detail.startswith("claimed by another poller")
    assert by_id["free"].action is Action.CHECKED and rig.source.status_calls == ["free"]


def test_a_job_handled_elsewhere_since_it_was_listed_is_skipped(rig: Rig) -> None:
    """The due index said due; by the time of the claim another poller had pushed its next check out."""
    rig.track("raced")
    listed = rig.repo.due_ids

    def due_ids(due_by: int | None) -> list[str]:
        ids = listed(due_by)
        rig.repo.jobs["raced"] = dataclasses.replace(rig.repo.jobs["raced"], next_check_at=int(rig.now) + 900)
        return ids

    rig.repo.due_ids = due_ids  # type: ignore[method-assign]

    [result] = run_cycle(rig.poller()).results

    assert result.action is Action.SKIPPED and rig.source.status_calls == []


def test_a_lease_lost_before_the_checkpoint_publishes_nothing(rig: Rig) -> None:
    rig.track("lost")
    rig.source.answer("lost", status("lost", "failed"))
    rig.source.during_status = lambda job_id: rig.repo.take_over(job_id, "taker")

    [result] = run_cycle(rig.poller(), owner="me").results

    assert (result.action, result.event, result.state) == (Action.SKIPPED, None, "failed")
    assert "taken over" in result.detail and rig.publisher.published == []
    job = rig.repo.get("lost")
    assert job.lease_owner == "taker" and job.state is JobState.WATCHING  # nothing of ours was written


def test_a_lease_lost_between_checkpoint_and_publish_leaves_the_outcome_for_the_new_holder(rig: Rig) -> None:
    """Our checkpoint holds the outcome; the lease is taken while we publish: our publish has gone out (it cannot
    be taken back), the settle is refused, and the job stays final and unsettled for the poller that holds it."""
    rig.track("late")
    rig.source.answer("late", status("late", "no_data"))
    rig.publisher.before_publish = lambda note: rig.repo.take_over(note.job_identifier, "taker")

    summary = run_cycle(rig.poller(), owner="me")

    [result] = summary.results
    assert (result.action, result.state, result.event) == (Action.SKIPPED, "no_data", "export.no_data")
    assert "taken over" in result.detail and summary.events == {"export.no_data": 1}
    job = rig.repo.get("late")
    assert job.state is JobState.NO_DATA and job.notified_at is None and job.lease_owner == "taker"
    assert rig.repo.saves == [("late", False)]  # the checkpoint only


def test_a_lease_lost_before_a_warning_publishes_no_warning(rig: Rig) -> None:
    rig.track("warn", age=13 * HOUR)
    rig.source.answer("warn", status("warn", "pending"))
    rig.repo.after_claim = lambda job_id: rig.repo.take_over(job_id, "taker")

    [result] = run_cycle(rig.poller()).results

    assert (result.action, result.warning) == (Action.SKIPPED, None) and rig.publisher.published == []


# -- one job among others ----------------------------------------------------------------------------------------


def test_one_jobs_unexpected_error_does_not_stop_the_others(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    for job_id in ("a1", "boom", "c3"):
        rig.track(job_id)
        rig.source.answer(job_id, status(job_id, "canceled"))

    def explode(job: Job, release: bool) -> None:
        if job.job_identifier == "boom":
            raise RuntimeError("the table fell over")

    rig.repo.before_save = explode

    with caplog.at_level(logging.ERROR, logger="exportwatch.poll"):
        summary = run_cycle(rig.poller(), owner="me")

    by_id = {r.job_identifier: r for r in summary.results}
    assert by_id["boom"].action is Action.ERROR and by_id["boom"].detail == "RuntimeError: the table fell over"
    assert {by_id["a1"].event, by_id["c3"].event} == {"export.canceled"}
    assert rig.repo.released == ["boom"] and rig.repo.get("boom").lease_owner is None  # retried next cycle
    assert "unexpected error" in caplog.text
    assert summary.to_dict()["actions"] == {"notified": 2, "error": 1}


def test_a_bug_in_a_status_check_is_retried_and_logged_with_its_traceback(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.track("bug")
    rig.source.answer("bug", KeyError("oops"))

    with caplog.at_level(logging.WARNING, logger="exportwatch.poll"):
        [result] = run_cycle(rig.poller()).results

    assert result.action is Action.RETRY and result.detail == "status check: 'oops'"
    [record] = [r for r in caplog.records if "will retry" in r.getMessage()]
    assert record.exc_info is not None


def test_a_row_with_a_bad_id_is_set_aside_once_and_never_sent_to_intercom(rig: Rig) -> None:
    rig.track("../etc")
    rig.track("good")
    rig.source.answer("good", status("good", "pending"))

    first = run_cycle(rig.poller(), all_jobs=True)
    second = run_cycle(rig.poller(), all_jobs=True)

    assert sorted(r.action for r in first.results) == [Action.CHECKED, Action.INVALID]
    [invalid] = [r for r in first.results if r.action is Action.INVALID]
    assert invalid.job_identifier == "'../etc'" and "characters Intercom ids never contain" in invalid.detail
    assert [r.action for r in second.results] == [Action.CHECKED]
    assert "../etc" in rig.repo.quarantined and rig.source.status_calls == ["good", "good"]


def test_a_bad_token_fails_the_cycle_before_any_job_is_claimed(rig: Rig) -> None:
    rig.track("any")
    rig.source.token_error = ConfigError("INTERCOM_TOKEN_SECRET", "the secret's value is empty")

    with pytest.raises(ConfigError):
        run_cycle(rig.poller())

    assert rig.repo.claims == []


# -- stopping early -------------------------------------------------------------------------------------------------


def test_the_time_budget_leaves_the_rest_for_the_next_cycle(rig: Rig) -> None:
    rig.settings = dataclasses.replace(rig.settings, poll_concurrency=1)
    for job_id in ("t1", "t2", "t3"):
        rig.track(job_id)
        rig.source.answer(job_id, status(job_id, "pending"))
    left = iter([120.0, 30.0])

    summary = run_cycle(rig.poller(), time_left=lambda: next(left), reserve_seconds=60.0)

    assert len(summary.results) == 1 and summary.left_for_next_cycle == 2 and summary.due == 3
    assert summary.stop_reason is StopReason.TIME_BUDGET and summary.stopped is not None
    assert "time budget" in summary.stopped


def test_a_rate_limit_defers_the_job_and_stops_the_cycle(rig: Rig) -> None:
    rig.settings = dataclasses.replace(rig.settings, poll_concurrency=1)
    rig.track("r1", next_check_at=0)
    rig.source.answer("r1", RateLimited(rig.now + 90, "rate limited by Intercom (429)"))
    for job_id in ("r2", "r3"):
        rig.track(job_id, next_check_at=1)
        rig.source.answer(job_id, status(job_id, "pending"))

    summary = run_cycle(rig.poller())

    [result] = summary.results
    assert (result.job_identifier, result.action, result.state) == ("r1", Action.DEFERRED, "watching")
    assert summary.stop_reason is StopReason.RATE_LIMITED and summary.left_for_next_cycle == 2
    assert summary.stopped == f"rate limited by Intercom until {iso(from_epoch(rig.now + 90))}"
    assert summary.to_dict()["stop_reason"] == "rate_limited"
    job = rig.repo.get("r1")
    assert job.next_check_at == int(rig.now + 90) and job.attempts == 0
    assert rig.source.status_calls == ["r1"]


def test_a_refused_token_stops_the_cycle_with_its_own_reason(rig: Rig) -> None:
    rig.settings = dataclasses.replace(rig.settings, poll_concurrency=1)
    for n, job_id in enumerate(("u1", "u2")):
        rig.track(job_id, next_check_at=n)
        rig.source.answer(job_id, Unauthorized("Intercom rejected the access token (401)"))

    summary = run_cycle(rig.poller())

    assert [r.action for r in summary.results] == [Action.RETRY] and summary.left_for_next_cycle == 1
    assert summary.stop_reason is StopReason.UNAUTHORIZED
    assert summary.stopped == "Intercom rejected the token (401)"

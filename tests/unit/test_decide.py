"""Every decision of the poll cycle, as the pure functions of exportwatch.decide: a job, an answer and a time in, a
Decision out. No ports, no clock, no sockets: what the cycle does with these is tests/unit/test_cycle.py."""

from __future__ import annotations

import dataclasses
import math

import botocore.exceptions
import pytest
import requests

from exportwatch.archive import CopyResult, IncompleteDownload, MalformedDownload
from exportwatch.decide import (
    Decision,
    FailureKind,
    Gauges,
    decide_check,
    decide_copy,
    decide_published,
    decide_warned,
    defer,
    due_by,
    failure_kind,
    gauges,
    invalid_row,
    next_check,
    promote,
    publish_error,
    report,
    running_delay,
    time_budget,
    warning_due,
)
from exportwatch.intercom import (
    DownloadGone,
    ForeignOrigin,
    MalformedResponse,
    RateLimited,
    TransientError,
    Unauthorized,
)
from exportwatch.model import ArchivedCopy, Event, Job, JobState, from_epoch, iso
from exportwatch.results import Action, CycleSummary, JobResult, StopReason
from support.fakes import report as status
from support.fakes import settings

NOW = 1_800_000_000.0
HOUR = 3600
S = settings()
INTERVAL = S.poll_interval_seconds  # 300
MAX_DELAY = S.max_check_delay_seconds  # 1800


def stamp(t: float) -> str:
    return iso(from_epoch(t))


def watching(job_id: str = "abc123", *, age: float = 60.0, **fields: object) -> Job:
    job = Job(job_identifier=job_id, tracked_at=stamp(NOW - age), next_check_at=0, attempts=2)
    return dataclasses.replace(job, **fields)  # type: ignore[arg-type]


def check(job: Job, answer: object, *, asked_at: float = NOW - 2, now: float = NOW) -> Decision:
    before = dataclasses.replace(job)
    decision = decide_check(job, answer, asked_at=asked_at, now=now, settings=S)  # type: ignore[arg-type]
    assert job == before, "a decision never changes the job it was given"
    return decision


def copied(job_id: str = "abc123", size: int = 1234) -> CopyResult:
    return CopyResult(
        ArchivedCopy("archive", f"intercom-exports/{job_id}.zip", size, "ab" * 32, "application/zip"), 2.5
    )


# -- the cycle's own rules ----------------------------------------------------------------------------------------


def test_due_by_gives_half_an_interval_of_grace_and_all_jobs_takes_every_one() -> None:
    assert due_by(NOW, False, S) == int(NOW + INTERVAL / 2)
    assert due_by(NOW, True, S) is None


def test_time_budget_stops_only_below_the_reserve() -> None:
    assert time_budget(None, 60.0) is None
    assert time_budget(60.0, 60.0) is None
    stop = time_budget(59.9, 60.0)
    assert stop is not None and stop.reason is StopReason.TIME_BUDGET
    assert stop.text == "time budget: the rest is left for the next cycle"


def test_a_valid_id_passes_and_a_bad_one_is_set_aside_with_a_bounded_reason() -> None:
    assert invalid_row("orzzsbd7hk67xyu") is None
    long = invalid_row("x" * 200)
    assert long is not None
    assert long.shown.startswith("'xxx") and len(long.shown) <= 80
    assert long.reason == "job id is 200 characters long; Intercom ids are at most 64"
    path = invalid_row("../etc\n")
    assert path is not None and "characters Intercom ids never contain" in path.reason and "\n" not in path.reason
    dash = invalid_row("-abc")
    assert dash is not None and "must start with a letter or digit" in dash.reason


def test_next_check_is_never_past_the_longest_delay() -> None:
    assert next_check(NOW, 10, S) == int(NOW + 10)
    assert next_check(NOW, 10 * MAX_DELAY, S) == int(NOW + MAX_DELAY)


@pytest.mark.parametrize(
    ("age", "delay"),
    [
        (0, INTERVAL),  # young: every cycle
        (10 * INTERVAL, INTERVAL),  # a tenth of its age is one interval
        (10 * INTERVAL + 100, INTERVAL + 10),  # then a tenth of its age
        (10 * MAX_DELAY, MAX_DELAY),  # capped
        (100 * MAX_DELAY, MAX_DELAY),
    ],
)
def test_running_back_off_is_a_tenth_of_the_age_between_the_interval_and_the_cap(age: float, delay: float) -> None:
    assert running_delay(watching(age=age), NOW, S) == delay


def test_running_back_off_of_a_job_without_a_tracked_time_is_the_interval() -> None:
    assert running_delay(watching(tracked_at=None), NOW, S) == INTERVAL
    assert running_delay(watching(tracked_at="not a time"), NOW, S) == INTERVAL


# -- a status check -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["pending", "in_progress"])
def test_running_is_checked_again_after_the_back_off(word: str) -> None:
    job = watching(age=20 * INTERVAL, last_error="status check: Intercom answered HTTP 502")
    asked_at = NOW - 3

    d = check(job, status(job.job_identifier, word), asked_at=asked_at)

    assert d.job.state is JobState.WATCHING and d.action is None and d.detail == f"still {word}"
    assert d.job.attempts == 3 and d.job.last_checked_at == stamp(asked_at)
    assert d.job.intercom_status == word and d.job.last_error is None
    age_when_asked = 20 * INTERVAL - 3
    assert d.job.next_check_at == int(NOW + age_when_asked / 10)
    assert d.copy_from is None and d.stop is None and d.failure is None


def test_completed_asks_for_the_copy_from_intercoms_url_and_records_when_it_was_first_seen() -> None:
    job = watching()
    url = "https://api.intercom.io/download/content/data/abc123"

    d = check(job, status(job.job_identifier, "completed", expires_at=NOW + 40 * HOUR, download_url=url))

    assert d.copy_from == url and d.job.state is JobState.WATCHING
    assert d.job.completed_seen_at == stamp(NOW - 2) and d.job.download_expires_at == stamp(NOW + 40 * HOUR)
    assert d.job.intercom_status == "completed"

    again = check(d.job, status(job.job_identifier, "complete"), asked_at=NOW + 500, now=NOW + 501)
    assert again.copy_from == "" and again.job.completed_seen_at == stamp(NOW - 2)  # the first sighting stays
    assert again.job.download_expires_at == stamp(NOW + 40 * HOUR)  # no new expiry: the known one stays


@pytest.mark.parametrize("left", [0, -1, -HOUR])
def test_completed_at_or_past_its_expiry_is_expired_without_a_copy(left: float) -> None:
    job = watching()
    expires = NOW + left

    d = check(job, status(job.job_identifier, "completed", expires_at=expires))

    assert d.copy_from is None and d.job.state is JobState.EXPIRED
    assert d.job.outcome_reason == f"Intercom's copy expired at {stamp(expires)} before it was copied"
    assert d.job.outcome_at == stamp(NOW) and d.job.last_error is None


def test_completed_a_second_before_expiry_is_still_copied() -> None:
    d = check(watching(), status("abc123", "completed", expires_at=NOW + 1))
    assert d.copy_from == "" and d.job.state is JobState.WATCHING


@pytest.mark.parametrize(
    ("word", "state", "reason"),
    [
        (
            "failed",
            JobState.FAILED,
            "Intercom reports the export job failed (jobs that run longer than 12 hours fail); request a new export",
        ),
        ("no_data", JobState.NO_DATA, "Intercom found no messages sent in the requested date range"),
        ("canceled", JobState.CANCELED, "the export job was canceled at Intercom"),
        ("not_found", JobState.NOT_FOUND, "Intercom has no export job with this identifier"),
    ],
)
def test_each_final_answer_ends_the_job_with_its_reason(word: str, state: JobState, reason: str) -> None:
    job = watching(last_error="copy: broke off")

    d = check(job, status(job.job_identifier, word))

    assert d.job.state is state and d.job.outcome_reason == reason
    assert d.job.outcome_at == stamp(NOW) and d.job.last_error is None and d.job.intercom_status == word
    assert d.action is None and d.copy_from is None and d.stop is None


def test_not_found_carries_intercoms_message() -> None:
    d = check(watching(), status("abc123", "not_found", message="job_not_found: Export job not found"))
    assert d.job.outcome_reason == (
        "Intercom has no export job with this identifier (job_not_found: Export job not found)"
    )


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (TransientError("Intercom answered HTTP 502"), FailureKind.EXPECTED),
        (MalformedResponse("job model has no job_identifier string"), FailureKind.EXPECTED),
        (requests.ConnectionError("refused"), FailureKind.EXPECTED),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="https://dynamodb"), FailureKind.EXPECTED),
        (OSError("disk"), FailureKind.EXPECTED),
        (KeyError("a bug"), FailureKind.BUG),
        (ValueError(), FailureKind.BUG),
    ],
)
def test_a_failed_status_check_is_retried_next_interval(error: Exception, kind: FailureKind) -> None:
    job = watching()

    d = check(job, error)

    text = str(error) or type(error).__name__
    assert d.action is Action.RETRY and d.job.last_error == f"status check: {text}" and d.detail == d.job.last_error
    assert d.job.next_check_at == int(NOW + INTERVAL) and d.job.attempts == 3
    assert d.job.last_checked_at == stamp(NOW - 2) and d.job.state is JobState.WATCHING
    assert d.failure is not None and d.failure.kind is kind and d.failure.step == "status check"
    assert d.failure.error is error and d.stop is None


def test_a_failure_text_is_one_bounded_line() -> None:
    d = check(watching(), TransientError("line one\nline two " + "x" * 1000))
    assert d.job.last_error is not None and "\n" not in d.job.last_error and len(d.job.last_error) <= 320


def test_unauthorized_is_retried_and_stops_the_cycle() -> None:
    d = check(watching(), Unauthorized("Intercom rejected the access token (401)"))

    assert d.action is Action.RETRY and d.job.next_check_at == int(NOW + INTERVAL)
    assert d.failure is not None and d.failure.kind is FailureKind.UNAUTHORIZED
    assert d.stop is not None and d.stop.reason is StopReason.UNAUTHORIZED
    assert d.stop.text == "Intercom rejected the token (401)"


def test_rate_limited_waits_for_the_reset_is_no_attempt_and_stops_the_cycle() -> None:
    reset = NOW + 42.3
    d = check(watching(), RateLimited(reset, "rate limited by Intercom (429)"))

    assert d.action is Action.DEFERRED and d.job.attempts == 2  # the attempt is not counted
    assert d.job.next_check_at == math.ceil(reset)
    assert d.job.last_error == f"status check: rate limited by Intercom (429); window resets at {int(reset)}"
    assert d.stop is not None and d.stop.reason is StopReason.RATE_LIMITED
    assert d.stop.text == f"rate limited by Intercom until {stamp(math.ceil(reset))}"
    assert d.failure is not None and d.failure.kind is FailureKind.RATE_LIMITED


def test_a_rate_limit_reset_is_clamped_to_the_longest_check_delay() -> None:
    d = check(watching(), RateLimited(NOW + 10 * HOUR))
    assert d.job.next_check_at == int(NOW + MAX_DELAY)
    assert d.stop is not None and d.stop.text == f"rate limited by Intercom until {stamp(NOW + MAX_DELAY)}"


def test_rate_limited_never_counts_attempts_below_zero() -> None:
    d = defer(watching(attempts=0), RateLimited(NOW + 1), "status check", NOW, S)
    assert d.job.attempts == 0


def test_failure_kinds() -> None:
    assert failure_kind(RateLimited(NOW)) is FailureKind.RATE_LIMITED
    assert failure_kind(Unauthorized("401")) is FailureKind.UNAUTHORIZED
    assert failure_kind(IncompleteDownload("short")) is FailureKind.EXPECTED
    assert failure_kind(MalformedDownload("bad length")) is FailureKind.EXPECTED
    assert failure_kind(RuntimeError("bug")) is FailureKind.BUG


# -- the copy -----------------------------------------------------------------------------------------------------


def after_check(**fields: object) -> Job:
    """A job whose check just asked for the copy."""
    return check(watching(**fields), status("abc123", "completed", expires_at=NOW + 40 * HOUR)).job


def test_a_copy_that_landed_completes_the_job() -> None:
    job = after_check(last_error="copy: broke off")
    result = copied(size=4321)

    d = decide_copy(job, result, now=NOW + 30, settings=S)

    assert d.job.state is JobState.COMPLETED and d.job.outcome_reason is None and d.job.outcome_at == stamp(NOW + 30)
    assert d.job.s3_uri == "s3://archive/intercom-exports/abc123.zip" and d.job.size_bytes == 4321
    assert (d.job.sha256, d.job.content_type) == ("ab" * 32, "application/zip")
    assert d.job.last_error is None and d.action is Action.COPIED and d.copied is result
    assert job.state is JobState.WATCHING and job.s3_uri is None  # the job given is untouched


def test_a_download_url_off_intercoms_origin_fails_the_job() -> None:
    error = ForeignOrigin("download_url is on https://evil.example, not the Intercom API origin")

    d = decide_copy(after_check(), error, now=NOW, settings=S)

    assert d.job.state is JobState.FAILED and d.job.outcome_reason == str(error) and d.action is None


def test_a_download_that_is_gone_expires_the_job() -> None:
    d = decide_copy(
        after_check(), DownloadGone("the download answered HTTP 410: the file is gone"), now=NOW, settings=S
    )

    assert d.job.state is JobState.EXPIRED
    assert d.job.outcome_reason == "Intercom no longer has the file: the download answered HTTP 410: the file is gone"


@pytest.mark.parametrize(
    "error",
    [
        IncompleteDownload("download ended after 10 of 20 bytes (Content-Length)"),
        MalformedDownload("the download's Content-Length is not a number"),
        botocore.exceptions.ClientError({"Error": {"Code": "NoSuchBucket", "Message": "gone"}}, "PutObject"),
        TransientError("the download answered HTTP 500"),
    ],
)
def test_a_copy_that_failed_is_retried_next_interval(error: Exception) -> None:
    job = after_check()

    d = decide_copy(job, error, now=NOW + 5, settings=S)

    assert d.action is Action.RETRY and d.job.state is JobState.WATCHING
    assert d.job.last_error == f"copy: {error}" and d.job.next_check_at == int(NOW + 5 + INTERVAL)
    assert d.job.completed_seen_at == job.completed_seen_at and d.job.s3_uri is None
    assert d.failure is not None and d.failure.step == "copy" and d.failure.kind is FailureKind.EXPECTED


def test_a_rate_limit_on_the_download_defers_and_stops_like_one_on_the_status_call() -> None:
    job = after_check()

    d = decide_copy(job, RateLimited(NOW + 60), now=NOW, settings=S)

    assert d.action is Action.DEFERRED and d.job.attempts == job.attempts - 1 and d.job.next_check_at == NOW + 60
    assert d.stop is not None and d.stop.reason is StopReason.RATE_LIMITED


# -- the outcome's notification -----------------------------------------------------------------------------------


def final_job() -> Job:
    return decide_copy(after_check(), copied(), now=NOW, settings=S).job


def test_a_published_outcome_settles_the_job() -> None:
    job = final_job()

    d = decide_published(job, Event.COMPLETED, None, now=NOW + 1, settings=S)

    assert d.job.notified_at == stamp(NOW + 1) and d.job.ttl == int(NOW + 1) + 30 * 86400 and d.job.settled
    assert d.action is Action.NOTIFIED and d.event is Event.COMPLETED and d.job.last_error is None
    assert d.job.outcome_at == job.outcome_at  # the outcome's time, not the publish's


def test_a_failed_publish_keeps_the_final_job_due_for_the_next_cycle() -> None:
    job = final_job()
    error = publish_error(Event.COMPLETED, RuntimeError("SNS is having a bad day"))
    assert error == "publish export.completed: SNS is having a bad day"

    d = decide_published(job, Event.COMPLETED, error, now=NOW + 1, settings=S)

    assert d.action is Action.RETRY and d.detail == error and d.event is None
    assert d.job.state is JobState.COMPLETED and d.job.notified_at is None and not d.job.settled
    assert d.job.last_error == error and d.job.next_check_at == int(NOW + 1 + INTERVAL)


def test_a_publish_error_without_text_is_named_by_its_type() -> None:
    assert publish_error(Event.FAILED, TimeoutError()) == "publish export.failed: TimeoutError"


# -- early warnings -----------------------------------------------------------------------------------------------


WINDOW = S.expiry_warning_seconds
STUCK = S.stuck_after_seconds


def uncopied(expires_in: float, **fields: object) -> Job:
    values: dict[str, object] = {"intercom_status": "completed", "download_expires_at": stamp(NOW + expires_in)}
    return watching(**(values | fields))


@pytest.mark.parametrize(
    ("expires_in", "due"),
    [(WINDOW, None), (WINDOW - 1, Event.EXPIRING), (1, Event.EXPIRING), (0, None), (-1, None)],
)
def test_expiring_is_due_strictly_inside_the_window(expires_in: float, due: Event | None) -> None:
    assert warning_due(uncopied(expires_in), NOW, S) is due


def test_expiring_is_never_due_twice_nor_for_a_copied_or_unfinished_export() -> None:
    assert warning_due(uncopied(HOUR, warned_expiring_at=stamp(NOW - 60)), NOW, S) is None
    assert warning_due(uncopied(HOUR, s3_uri="s3://archive/k.zip"), NOW, S) is None
    assert warning_due(uncopied(HOUR, intercom_status="complete"), NOW, S) is Event.EXPIRING  # the older spelling
    assert warning_due(uncopied(HOUR, download_expires_at=None), NOW, S) is None


@pytest.mark.parametrize(
    ("age", "word", "due"),
    [
        (STUCK, "pending", Event.STUCK),
        (STUCK - 1, "pending", None),
        (STUCK + HOUR, "in_progress", Event.STUCK),
        (STUCK, None, Event.STUCK),  # never answered: unfinished as far as anyone knows
        (STUCK, "completed", None),  # finished: the expiring warning is the one that applies
        (STUCK, "failed", None),
    ],
)
def test_stuck_is_due_from_stuck_after_hours_for_a_job_not_known_finished(
    age: float, word: str | None, due: Event | None
) -> None:
    assert warning_due(watching(age=age, intercom_status=word), NOW, S) is due


def test_stuck_is_never_due_twice_nor_without_a_tracked_time() -> None:
    assert warning_due(watching(age=2 * STUCK, warned_stuck_at=stamp(NOW - 60)), NOW, S) is None
    assert warning_due(watching(tracked_at=None), NOW, S) is None


@pytest.mark.parametrize(("event", "field"), [(Event.EXPIRING, "warned_expiring_at"), (Event.STUCK, "warned_stuck_at")])
def test_a_published_warning_is_recorded_and_changes_nothing_else(event: Event, field: str) -> None:
    job = watching(age=2 * STUCK, next_check_at=int(NOW + 900))

    d = decide_warned(job, event, None, now=NOW, settings=S)

    assert getattr(d.job, field) == stamp(NOW) and d.action is Action.WARNED and d.warning is event
    assert dataclasses.replace(d.job, **{field: None}) == job  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("scheduled", "expected"),
    [(None, int(NOW + INTERVAL)), (int(NOW + 60), int(NOW + 60)), (int(NOW + 10 * INTERVAL), int(NOW + INTERVAL))],
)
def test_a_failed_warning_is_due_again_by_the_next_cycle(scheduled: int | None, expected: int) -> None:
    job = watching(age=2 * STUCK, next_check_at=scheduled)
    error = publish_error(Event.STUCK, RuntimeError("down"))

    d = decide_warned(job, Event.STUCK, error, now=NOW, settings=S)

    assert d.job.next_check_at == expected and d.job.warned_stuck_at is None
    assert d.job.last_error == error and d.detail == error and d.action is None and d.warning is None


def test_a_failed_warning_keeps_the_error_that_explains_the_job() -> None:
    job = watching(last_error="copy: broke off")
    d = decide_warned(job, Event.EXPIRING, "publish export.expiring: down", now=NOW, settings=S)
    assert d.job.last_error == "copy: broke off"


# -- gauges -------------------------------------------------------------------------------------------------------


def test_gauges_of_a_job_intercom_has_not_finished() -> None:
    assert gauges(watching(age=HOUR, intercom_status="pending"), NOW) == Gauges(pending_seconds=HOUR)
    assert gauges(watching(age=HOUR), NOW) == Gauges(pending_seconds=HOUR)  # never answered
    assert gauges(watching(age=-5, intercom_status="in_progress"), NOW) == Gauges(pending_seconds=0)  # clock skew
    assert gauges(watching(tracked_at=None), NOW) == Gauges()


def test_gauges_of_a_finished_export_not_copied_yet() -> None:
    job = uncopied(3 * HOUR, completed_seen_at=stamp(NOW - 600))
    assert gauges(job, NOW) == Gauges(expires_in_seconds=3 * HOUR, uncopied_seconds=600)
    assert gauges(uncopied(-HOUR), NOW).expires_in_seconds == 0
    assert gauges(uncopied(HOUR, s3_uri="s3://archive/k.zip"), NOW) == Gauges()
    assert gauges(watching(intercom_status="failed"), NOW) == Gauges()


# -- a job's result ----------------------------------------------------------------------------------------------


def test_a_success_names_the_result_only_when_nothing_more_telling_happened() -> None:
    assert promote(Action.CHECKED, Action.NOTIFIED) is Action.NOTIFIED
    assert promote(Action.COPIED, Action.NOTIFIED) is Action.COPIED
    assert promote(Action.RETRY, Action.WARNED) is Action.RETRY


def test_report_adds_up_a_jobs_steps() -> None:
    job = watching()
    result = JobResult("abc123", Action.CHECKED)

    after_copy = report(result, Decision(job, Action.COPIED, copied=copied(size=99)))
    assert (after_copy.action, after_copy.bytes_copied, after_copy.copy_seconds) == (Action.COPIED, 99, 2.5)
    notified = report(after_copy, Decision(job, Action.NOTIFIED, event=Event.COMPLETED))
    assert (notified.action, notified.event, notified.bytes_copied) == (Action.COPIED, "export.completed", 99)
    failed_publish = report(after_copy, Decision(job, Action.RETRY, "publish export.completed: down"))
    assert (failed_publish.action, failed_publish.detail) == (Action.RETRY, "publish export.completed: down")

    retried = report(result, Decision(job, Action.RETRY, "status check: HTTP 504"))
    warned = report(retried, Decision(job, Action.WARNED, warning=Event.STUCK))
    assert (warned.action, warned.warning, warned.detail) == (Action.RETRY, "export.stuck", "status check: HTTP 504")
    unwarned = report(retried, Decision(job, detail="publish export.stuck: down"))
    assert (unwarned.action, unwarned.warning) == (Action.RETRY, None)
    assert unwarned.detail == "status check: HTTP 504; publish export.stuck: down"


def test_results_and_summaries_keep_their_json_contract() -> None:
    assert [a.value for a in Action] == [
        "checked",
        "copied",
        "notified",
        "warned",
        "retry",
        "deferred",
        "skipped",
        "invalid",
        "error",
    ]
    legacy = JobResult("abc", "retry", uncopied_seconds=4000)  # type: ignore[arg-type]
    assert legacy.action is Action.RETRY
    summary = CycleSummary(owner="me", due=2, results=[legacy, JobResult("def", Action.COPIED, bytes_copied=7)])
    summary.stopped, summary.stop_reason = "Intercom rejected the token (401)", StopReason.UNAUTHORIZED
    out = summary.to_dict()
    assert out["stopped"] == "Intercom rejected the token (401)" and out["stop_reason"] == "unauthorized"
    assert out["actions"] == {"retry": 1, "copied": 1} and out["bytes_copied"] == 7
    assert [type(k) for k in out["actions"]] == [str, str]
    assert [j["action"] for j in out["jobs"]] == ["retry", "copied"] and type(out["jobs"][0]["action"]) is str
    assert list(out["jobs"][0]) == [f.name for f in dataclasses.fields(JobResult)]
    with pytest.raises(ValueError):
        JobResult("abc", "retried")  # type: ignore[arg-type]

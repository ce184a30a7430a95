"""The poll cycle's decisions, as pure functions: no I/O and no clock.

Each takes a job, what the outside answered (Intercom's report or error, the copy's result or error, whether a
publish failed) and the time, and returns a Decision: the job as it is to be saved (a new value; the job passed in
is never changed), the action and detail for the job's line in the cycle summary, whether to copy the export,
and whether the cycle should stop taking new jobs. poll.py reads the clock, calls the ports, logs, and hands the
answers to these functions; the unit tests call them directly.

    decide_check      Intercom's answer to a status call -> running (next check), copy wanted, final, or deferred
    decide_copy       the copy's result -> completed, failed (foreign download_url), expired, or deferred
    defer             an error -> the job checked again later: when, and whether the cycle stops (rate limit, 401)
    decide_published  the outcome's publish -> settled (notified_at, ttl) or retried next cycle
    decide_retried    a window's attempt that will be retried -> settled without a notification
    warning_due       which early warning a still-watching job has earned (export.expiring / export.stuck)
    decide_warned     the warning's publish -> recorded (sent at most once) or due again next cycle
    gauges            the metrics a still-watching job contributes (pending age, time left, uncopied age)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

import boto3.exceptions
import botocore.exceptions
import requests
import urllib3.exceptions

from exportwatch.archive import CopyResult, IncompleteDownload, MalformedDownload
from exportwatch.config import ConfigError, Settings
from exportwatch.intercom import (
    DownloadGone,
    ForeignOrigin,
    MalformedResponse,
    NoReportingIds,
    RateLimited,
    StatusReport,
    TransientError,
    Unauthorized,
)
from exportwatch.model import InvalidJobId, Job, from_epoch, iso, parse_iso, validate_job_id
from exportwatch.outcomes import FINISHED_OK_STATUSES, RUNNING_STATUSES, Event, JobState, Outcome, final_state
from exportwatch.results import Action, JobResult, StopReason
from exportwatch.safetext import one_line
from exportwatch.sources import UnknownWorkspace

# Failures a cycle expects now and then (a broken download, an HTTP or AWS error): logged as one line and retried.
# Anything else is a bug and is logged with its traceback.
_EXPECTED_FAILURES: tuple[type[BaseException], ...] = (
    UnknownWorkspace,  # its jobs wait until the workspace is added again
    ConfigError,  # a workspace's token secret cannot be read (named in the error)
    NoReportingIds,  # a reporting job of a workspace without app_id / client_id: waits until they are set
    TransientError,
    MalformedResponse,
    IncompleteDownload,
    MalformedDownload,
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    botocore.exceptions.BotoCoreError,
    botocore.exceptions.ClientError,
    boto3.exceptions.Boto3Error,
    OSError,
)


class FailureKind(StrEnum):
    """How a failed step is handled (and logged)."""

    RATE_LIMITED = "rate_limited"  # wait for Intercom's window to reset; not an attempt; the cycle stops
    UNAUTHORIZED = "unauthorized"  # the token is refused: retried next interval; the cycle stops
    EXPECTED = "expected"  # weather (HTTP, AWS, a broken download): retried next interval
    BUG = "bug"  # anything else: retried next interval, logged with its traceback


def failure_kind(exc: BaseException) -> FailureKind:
    if isinstance(exc, RateLimited):
        return FailureKind.RATE_LIMITED
    if isinstance(exc, Unauthorized):
        return FailureKind.UNAUTHORIZED
    if isinstance(exc, _EXPECTED_FAILURES):
        return FailureKind.EXPECTED
    return FailureKind.BUG


@dataclass(frozen=True)
class Failure:
    """A step that failed and is retried: what the cycle logs."""

    kind: FailureKind
    step: str  # "status check" | "copy"
    text: str  # one line, bounded
    error: BaseException


@dataclass(frozen=True)
class Stop:
    """The cycle takes no new jobs: why, for code and for people."""

    reason: StopReason
    text: str


@dataclass(frozen=True)
class Decision:
    job: Job  # the job as it is to be saved
    action: Action | None = None  # for the job's result; None: this step leaves it as it is
    detail: str = ""  # added to the result's detail
    copy_from: str | None = None  # the copy is wanted, from Intercom's download_url ("": the documented URL)
    copied: CopyResult | None = None  # the copy that succeeded
    event: Event | None = None  # the outcome notification was published
    warning: Event | None = None  # the early warning was published
    failure: Failure | None = None  # the step failed and the job is checked again later
    stop: Stop | None = None  # the cycle should stop taking new jobs


# -- the cycle's own rules --------------------------------------------------------------------------------------


def due_by(now: float, all_jobs: bool, settings: Settings) -> int | None:
    """The latest next_check_at that is due now (None: every unfinished job). Half an interval of grace: a job
    scheduled "next cycle" is due even if this run fires a bit early."""
    return None if all_jobs else int(now + settings.poll_interval_seconds / 2)


def time_budget(time_left: float | None, reserve: float) -> Stop | None:
    """Stop taking new jobs when less than `reserve` seconds are left (None: no limit)."""
    if time_left is not None and time_left < reserve:
        return Stop(StopReason.TIME_BUDGET, "time budget: the rest is left for the next cycle")
    return None


@dataclass(frozen=True)
class InvalidRow:
    shown: str  # the id as it may be shown (a repr, one bounded line)
    reason: str


def invalid_row(job_id: str) -> InvalidRow | None:
    """A row whose id breaks the rule `track` applies is never sent to Intercom: set aside (None: the id is fine)."""
    try:
        validate_job_id(job_id)
    except InvalidJobId as exc:
        return InvalidRow(one_line(repr(job_id), 80), one_line(str(exc), 200))
    return None


def promote(action: Action, to: Action) -> Action:
    """A success (notified, warned) names a job's result only when nothing more telling happened to it."""
    return to if action is Action.CHECKED else action


def report(result: JobResult, decision: Decision) -> JobResult:
    """The job's result after a step: a failure or a copy names the action outright, a success only replaces a
    plain "checked"; details add up; what was copied or published is recorded."""
    action = result.action
    if decision.action in (Action.NOTIFIED, Action.WARNED):
        action = promote(action, decision.action)
    elif decision.action is not None:
        action = decision.action
    copied = decision.copied
    return replace(
        result,
        action=action,
        detail="; ".join(d for d in (result.detail, decision.detail) if d),
        event=decision.event.value if decision.event else result.event,
        warning=decision.warning.value if decision.warning else result.warning,
        bytes_copied=copied.copy.size_bytes if copied else result.bytes_copied,
        copy_seconds=copied.seconds if copied else result.copy_seconds,
    )


def describe(exc: BaseException) -> str:
    return one_line(str(exc) or type(exc).__name__, 300)


def next_check(now: float, delay: float, settings: Settings) -> int:
    """A job's next check, never more than MAX_CHECK_DELAY_MINUTES away (so warnings and alarms still fire)."""
    return int(now + min(delay, settings.max_check_delay_seconds))


def running_delay(job: Job, now: float, settings: Settings) -> float:
    """Check young jobs every cycle; back off to a tenth of the job's age, capped (most finish in minutes)."""
    tracked = parse_iso(job.tracked_at)
    age = now - (tracked.timestamp() if tracked is not None else now)
    return min(max(settings.poll_interval_seconds, age / 10), settings.max_check_delay_seconds)


def finalize(job: Job, state: JobState, reason: str | None, now: float) -> Job:
    """The job with its outcome decided (published later, with this time)."""
    return replace(job, state=state, outcome_reason=reason, outcome_at=iso(from_epoch(now)), last_error=None)


# -- a status check and the copy --------------------------------------------------------------------------------


def decide_check(
    job: Job, answer: StatusReport | Exception, *, asked_at: float, now: float, settings: Settings
) -> Decision:
    """What Intercom's answer (or the error instead of one) means for a watching job. `asked_at`: when the status
    call was made (the attempt's time); `now`: when its answer came."""
    job = replace(job, attempts=job.attempts + 1, last_checked_at=iso(from_epoch(asked_at)))
    if isinstance(answer, Exception):
        return defer(job, answer, "status check", now, settings)
    report_ = answer
    expires = report_.download_expires_at
    job = replace(
        job,
        intercom_status=report_.status,
        download_expires_at=iso(expires) if expires is not None else job.download_expires_at,
    )
    if report_.outcome is Outcome.RUNNING:
        job = replace(
            job, last_error=None, next_check_at=next_check(now, running_delay(job, asked_at, settings), settings)
        )
        return Decision(job, detail=f"still {report_.status}")
    if report_.outcome is Outcome.COMPLETED:
        if job.completed_seen_at is None:
            job = replace(job, completed_seen_at=iso(from_epoch(asked_at)))
        if expires is not None and expires.timestamp() <= now:
            reason = f"Intercom's copy expired at {iso(expires)} before it was copied"
            return Decision(finalize(job, JobState.EXPIRED, reason, now))
        return Decision(job, copy_from=report_.download_url)
    state, reason = final_state(report_.outcome)
    if report_.outcome is Outcome.NOT_FOUND and report_.message:
        reason = f"{reason} ({report_.message})"
    return Decision(finalize(job, state, reason, now))


def decide_copy(job: Job, outcome: CopyResult | Exception, *, now: float, settings: Settings) -> Decision:
    """What the copy's result (or its error) means: completed, failed, expired, or checked again later."""
    if isinstance(outcome, ForeignOrigin):  # a download_url we refuse to fetch: it will not change
        return Decision(finalize(job, JobState.FAILED, str(outcome), now))
    if isinstance(outcome, DownloadGone):
        return Decision(finalize(job, JobState.EXPIRED, f"Intercom no longer has the file: {outcome}", now))
    if isinstance(outcome, Exception):
        return defer(job, outcome, "copy", now, settings)
    copy = outcome.copy
    job = replace(
        job, s3_uri=copy.s3_uri, size_bytes=copy.size_bytes, sha256=copy.sha256, content_type=copy.content_type
    )
    return Decision(finalize(job, JobState.COMPLETED, None, now), action=Action.COPIED, copied=outcome)


def defer(job: Job, exc: BaseException, step: str, now: float, settings: Settings) -> Decision:
    """Keep the job as it is and check it again later; how much later, and whether the cycle stops, by the error."""
    text = describe(exc)
    failure = Failure(failure_kind(exc), step, text, exc)
    job = replace(job, last_error=f"{step}: {text}")
    if isinstance(exc, RateLimited):
        # Never a failure: wait for Intercom's window to reset (clamped by the client, and never past the longest
        # check delay), and stop starting more work this cycle.
        at = min(math.ceil(exc.reset_at), int(now + settings.max_check_delay_seconds))
        job = replace(job, attempts=max(0, job.attempts - 1), next_check_at=at)
        limited = Stop(StopReason.RATE_LIMITED, f"rate limited by Intercom until {iso(from_epoch(at))}")
        return Decision(job, Action.DEFERRED, job.last_error or "", failure=failure, stop=limited)
    refused = Stop(StopReason.UNAUTHORIZED, "Intercom rejected the token (401)")
    job = replace(job, next_check_at=next_check(now, settings.poll_interval_seconds, settings))
    stop = refused if isinstance(exc, Unauthorized) else None
    return Decision(job, Action.RETRY, job.last_error or "", failure=failure, stop=stop)


# -- notifications ----------------------------------------------------------------------------------------------


def publish_error(event: Event, exc: BaseException) -> str:
    return f"publish {event.value}: {describe(exc)}"


def decide_published(job: Job, event: Event, error: str | None, *, now: float, settings: Settings) -> Decision:
    """After publishing a final job's outcome: settled (leaves the due index, gets a TTL), or, when the publish
    failed, still due in its final state and published again next cycle (not lost)."""
    if error is not None:
        job = replace(job, last_error=error, next_check_at=next_check(now, settings.poll_interval_seconds, settings))
        return Decision(job, Action.RETRY, error)
    job = replace(
        job, notified_at=iso(from_epoch(now)), ttl=int(now) + settings.settled_ttl_days * 86400, last_error=None
    )
    return Decision(job, Action.NOTIFIED, event=event)


def decide_retried(job: Job, *, now: float, settings: Settings) -> Decision:
    """A window's attempt that failed and will be retried (windows.announced is False): settled without a
    notification, so only the window's last attempt, or its success, is announced."""
    job = replace(job, notified_at=iso(from_epoch(now)), ttl=int(now) + settings.settled_ttl_days * 86400)
    return Decision(
        job, detail=f"window attempt {job.window_attempt or 1} ended {job.state.value}; window queued again"
    )


def warning_due(job: Job, now: float, settings: Settings) -> Event | None:
    """The warning this still-watching job has earned and not yet been sent, if any."""
    status = job.intercom_status
    if job.warned_expiring_at is None and status in FINISHED_OK_STATUSES and job.s3_uri is None:
        expires = parse_iso(job.download_expires_at)
        # Already past expiry is not "expiring": the next answer from Intercom makes it export.expired.
        if expires is not None and 0 < expires.timestamp() - now < settings.expiry_warning_seconds:
            return Event.EXPIRING
    if job.warned_stuck_at is None and (status is None or status in RUNNING_STATUSES):
        tracked = parse_iso(job.tracked_at)
        if tracked is not None and now - tracked.timestamp() >= settings.stuck_after_seconds:
            return Event.STUCK
    return None


def decide_warned(job: Job, event: Event, error: str | None, *, now: float, settings: Settings) -> Decision:
    """After publishing an early warning: recorded (never sent again), or, when the publish failed, due again by
    the next cycle (the job is checked again by then anyway). A warning never changes the job's state."""
    if error is not None:
        retry_at = int(now + settings.poll_interval_seconds)
        job = replace(
            job, next_check_at=min(job.next_check_at or retry_at, retry_at), last_error=job.last_error or error
        )
        return Decision(job, detail=error)
    stamp = iso(from_epoch(now))
    if event is Event.EXPIRING:
        return Decision(replace(job, warned_expiring_at=stamp), Action.WARNED, warning=event)
    return Decision(replace(job, warned_stuck_at=stamp), Action.WARNED, warning=event)


@dataclass(frozen=True)
class Gauges:
    pending_seconds: int | None = None  # not finished at Intercom: age since tracked
    expires_in_seconds: int | None = None  # finished but not copied: time left before Intercom deletes it
    uncopied_seconds: int | None = None  # finished but not copied: since the first check that saw it finished


def gauges(job: Job, now: float) -> Gauges:
    """Gauges for the cycle's metrics, from a job that is still watching after its check."""
    status = job.intercom_status
    if status is None or status in RUNNING_STATUSES:
        tracked = parse_iso(job.tracked_at)
        return Gauges(pending_seconds=max(0, int(now - tracked.timestamp())) if tracked is not None else None)
    if status in FINISHED_OK_STATUSES and job.s3_uri is None:
        expires, seen = parse_iso(job.download_expires_at), parse_iso(job.completed_seen_at)
        return Gauges(
            expires_in_seconds=max(0, int(expires.timestamp() - now)) if expires is not None else None,
            uncopied_seconds=max(0, int(now - seen.timestamp())) if seen is not None else None,
        )
    return Gauges()

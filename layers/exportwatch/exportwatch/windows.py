"""The coverage ledger's rules, as pure functions: whole UTC days, how a range is cut into windows, and what a
window's export means for the window. No I/O and no clock: ledger.py stores, schedule.py acts.

A window is a run of whole UTC days, both ends included. Windows of one workspace never overlap: a new range is
cut only over the days no window covers yet, so backfills of different window sizes and the daily schedule can be
mixed freely, and the days from `since` to `until` end up covered with no second left out.

    queued --(export created)--> running --(archived | empty)--> done
                                         \\--(failed, expired, not_found, canceled)--> queued again, a new export,
                                             until WINDOW_MAX_ATTEMPTS exports were made: then failed (announced once)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from exportwatch.model import Job, JobState

DAY = timedelta(days=1)
MAX_BACKFILL_DAYS = 3660  # ten years: one command never queues more than this many days
MAX_QUEUED_PER_PASS = (
    100  # the daily schedule queues at most this many windows per cycle (a long outage: the rest next)
)


class WindowState(StrEnum):
    """A window's state in the ledger (`coverage --json` `state`: a contract)."""

    QUEUED = "queued"  # waiting for its workspace's one export slot (or for a retry)
    RUNNING = "running"  # an export for it exists at Intercom and is watched like any job
    ARCHIVED = "archived"  # its export is in S3, size and sha256 checked while copying
    EMPTY = "empty"  # Intercom answered no_data: nothing to archive, nothing missing
    FAILED = "failed"  # every attempt failed; announced once with export.failed

    @property
    def covers(self) -> bool:
        """A window in this state keeps its days: backfill does not queue them again."""
        return self is not WindowState.FAILED


class WindowResult(StrEnum):
    """What a window's job, once final, means for the window: decided once, recorded on the job."""

    ARCHIVED = "archived"
    EMPTY = "empty"
    RETRY = "retry"  # the window is queued again for a new export; nothing is announced
    FAILED = "failed"  # out of attempts: the job is announced as export.failed naming the window


@dataclass(frozen=True, order=True)
class Span:
    """Whole UTC days from `start` to `end`, both included."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"window ends ({self.end}) before it starts ({self.start})")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def first_second(self) -> int:
        return int(datetime.combine(self.start, time(0, 0, 0), UTC).timestamp())

    @property
    def last_second(self) -> int:
        """Intercom's range is inclusive: the window's last second, 23:59:59 of its last day."""
        return int(datetime.combine(self.end, time(23, 59, 59), UTC).timestamp())

    def label(self) -> str:
        return self.start.isoformat() if self.start == self.end else f"{self.start}..{self.end}"


def parse_day(value: object) -> date | None:
    """A strict YYYY-MM-DD day, or None (the table and messages can hold anything)."""
    if not isinstance(value, str) or len(value) != 10 or value[4] != "-" or value[7] != "-":
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def yesterday(now: float) -> date:
    """The last whole UTC day before `now`: the newest day a window may cover (today is not over yet)."""
    return datetime.fromtimestamp(now, UTC).date() - DAY


def plan(covered: Iterable[Span], since: date, until: date, window_days: int, limit: int | None = None) -> list[Span]:
    """The windows to queue so that every day from `since` to `until` is covered: the days no window in `covered`
    has, cut into runs of at most `window_days` (the last of a run shorter), oldest first."""
    if window_days < 1:
        raise ValueError("window_days must be at least 1")
    taken = sorted(s for s in covered if s.end >= since and s.start <= until)
    spans: list[Span] = []
    day = since
    for span in [*taken, Span(until + DAY, until + DAY)]:  # a sentinel closes the last free run
        free_end = min(span.start - DAY, until)
        while day <= free_end:
            end = min(day + timedelta(days=window_days - 1), free_end)
            spans.append(Span(day, end))
            if limit is not None and len(spans) >= limit:
                return spans
            day = end + DAY
        day = max(day, span.end + DAY)
    return spans


def daily_range(start: date, through: date | None, last_day: date, window_days: int) -> tuple[date, date] | None:
    """The days the daily schedule queues now: after `through` (the last day it queued), from `start`, up to the end
    of the last window of `window_days` (counted from `start`) that is over by `last_day`. None: nothing yet."""
    first = start if through is None else max(start, through + DAY)
    if first > last_day:
        return None
    whole = ((last_day - start).days + 1) // window_days * window_days
    end = start + timedelta(days=whole - 1)
    return (first, end) if end >= first else None


# -- a window's job ----------------------------------------------------------------------------------------------

_RETRIED_STATES = frozenset({JobState.FAILED, JobState.EXPIRED, JobState.NOT_FOUND, JobState.CANCELED})


def window_span(job: Job) -> Span | None:
    start, end = parse_day(job.window_start), parse_day(job.window_end)
    return Span(start, end) if start is not None and end is not None and start <= end else None


def judge(job: Job, max_attempts: int) -> Job:
    """A window job that just reached its final state, with its WindowResult recorded (`window_result`). The last
    allowed attempt that did not archive becomes export.failed whose reason names the window; an earlier one is
    retried silently. A job without a window is returned unchanged."""
    span = window_span(job)
    if span is None or not job.state.is_final or job.window_result is not None:
        return job
    if job.state is JobState.COMPLETED:
        return replace(job, window_result=WindowResult.ARCHIVED.value)
    if job.state is JobState.NO_DATA:
        return replace(job, window_result=WindowResult.EMPTY.value)
    attempt = job.window_attempt or 1
    if job.state in _RETRIED_STATES and attempt < max_attempts:
        return replace(job, window_result=WindowResult.RETRY.value)
    why = job.outcome_reason or job.state.value
    what = f"{job.dataset} window" if job.reporting and job.dataset else "window"
    reason = (
        f"{what} {span.label()} of workspace {job.workspace} failed after {attempt} "
        f"attempt{'s' if attempt != 1 else ''}: {why}"
    )
    return replace(job, state=JobState.FAILED, outcome_reason=reason, window_result=WindowResult.FAILED.value)


def announced(job: Job) -> bool:
    """Whether a final job's outcome is published: every job's, except a window attempt that will be retried."""
    return job.window_result != WindowResult.RETRY.value


def window_state_after(result: WindowResult) -> WindowState:
    return {
        WindowResult.ARCHIVED: WindowState.ARCHIVED,
        WindowResult.EMPTY: WindowState.EMPTY,
        WindowResult.RETRY: WindowState.QUEUED,
        WindowResult.FAILED: WindowState.FAILED,
    }[result]


def next_look(now: float, *, active: bool, waiting: bool, daily: bool, interval: int, max_delay: int) -> int:
    """When the scheduler looks at a workspace again. An active export: at the latest after the longest check
    delay (the job's settling makes the workspace due at once anyway). Turned away (429): next interval. A daily
    workspace: just after the next UTC midnight, when another day is over. Otherwise once a day (a backfill makes
    it due at once)."""
    if waiting:
        return int(now + interval)
    if active:
        return int(now + max_delay)
    if daily:
        tomorrow = datetime.fromtimestamp(now, UTC).date() + DAY
        return int(datetime.combine(tomorrow, time(0, 1, 0), UTC).timestamp())
    return int(now + 86400)

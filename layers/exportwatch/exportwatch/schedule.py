"""The scheduler: each workspace's windows, started one at a time (Intercom allows one active content export).

Part of every poll cycle (poll.run_cycle), before and after the jobs. For each workspace that is due (ledger.py:
the "sched" partition of due-index), under a lease on its record:

    1. its active window's export settled?  -> the window is archived / empty / failed, or queued again (retry)
    2. a daily workspace                    -> queue the whole UTC days that ended since it last looked
    3. no active export                     -> create the export for its oldest queued window and track the job,
                                               in one transaction: job tracked, window running, workspace active
    4. release the lease, saying when to look again (windows.next_look)

A 429 on create means another export is active in that workspace (one `exportwatch start` made, say): the window
stays queued and is tried next interval; that is not a failure and nothing is announced. The window's job itself
is checked, copied and notified by the cycle like any job; what its outcome means for the window was decided when
it became final (windows.judge), and step 1 only applies it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date

from botocore.exceptions import BotoCoreError, ClientError
from requests import RequestException

from exportwatch.config import ConfigError, Settings
from exportwatch.intercom import ActiveJobExists, IntercomError, RateLimited
from exportwatch.ledger import Window, WorkspaceRecord
from exportwatch.model import InvalidJobId, Job, from_epoch, iso, validate_job_id
from exportwatch.ports import ExportSources, JobRepository, Ledger
from exportwatch.results import WorkspaceAction, WorkspaceResult
from exportwatch.safetext import one_line
from exportwatch.sources import UnknownWorkspace
from exportwatch.windows import (
    MAX_QUEUED_PER_PASS,
    Span,
    WindowResult,
    WindowState,
    daily_range,
    judge,
    next_look,
    plan,
    window_state_after,
    yesterday,
)
from exportwatch.workspaces import DEFAULT_WORKSPACE, Workspace

log = logging.getLogger(__name__)

# Starting a window failed in a way the next cycle may not repeat: the window stays queued, the reason is kept.
_START_FAILURES = (
    IntercomError,
    ConfigError,
    UnknownWorkspace,
    InvalidJobId,
    RequestException,
    BotoCoreError,
    ClientError,
)


def default_workspace(settings: Settings) -> Workspace:
    """The workspace the environment describes: INTERCOM_API_URL, INTERCOM_TOKEN_SECRET, DEFAULT_DAILY_START."""
    return Workspace(
        name=DEFAULT_WORKSPACE,
        api_url=settings.intercom_api_url,
        token_secret=settings.intercom_token_secret,
        daily=settings.default_daily_start is not None,
        start=settings.default_daily_start,
        window_days=settings.default_window_days,
        app_id=settings.intercom_app_id,
        client_id=settings.intercom_client_id,
        daily_datasets=settings.default_daily_datasets,
    )


@dataclass(frozen=True)
class _Step:
    """One workspace's outcome this pass, and what to record when its lease is released."""

    result: WorkspaceResult
    active: bool = False  # an export of one of its windows is running
    waiting: bool = False  # turned away (429, rate limit): look again next interval
    through: date | None = None  # the daily schedule's new daily_through, if it moved


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        jobs: JobRepository,
        sources: ExportSources,
        owner: str,
        clock: Callable[[], float],
    ) -> None:
        self.s = settings
        self.ledger = ledger
        self.jobs = jobs
        self.sources = sources
        self.owner = owner
        self.clock = clock

    def run(self, all_due: bool, time_left: Callable[[], float | None]) -> list[WorkspaceResult]:
        """One pass over every due workspace (all of them with `all_due`), a few at a time."""
        # Half an interval of grace, as for jobs (decide.due_by): "next cycle" is due even if this run fires early.
        due_by = None if all_due else int(self.clock() + self.s.poll_interval_seconds / 2)
        names = self.ledger.due_workspaces(due_by)
        if not names:
            return []

        def one(name: str) -> WorkspaceResult | None:
            left = time_left()
            if left is not None and left < 0:
                return None  # the cycle's time is up: the workspace is still due next cycle
            return self._one_safely(name, due_by)

        with ThreadPoolExecutor(max_workers=self.s.poll_concurrency, thread_name_prefix="schedule") as pool:
            return [r for r in pool.map(one, names) if r is not None]

    def _one_safely(self, name: str, due_by: int | None) -> WorkspaceResult:
        now = self.clock()
        try:
            record = self.ledger.claim_workspace(name, self.owner, int(now), self.s.lease_seconds, due_by)
        except Exception as exc:
            log.exception("workspace %s: could not take its lease", name)
            return WorkspaceResult(name, WorkspaceAction.ERROR, detail=_text(exc))
        if record is None:
            return WorkspaceResult(name, WorkspaceAction.SKIPPED, detail="claimed by another poller or not due")
        step = _Step(WorkspaceResult(name, WorkspaceAction.ERROR), waiting=True)
        try:
            step = self._work(record, now)
        except Exception as exc:  # one workspace's error never stops the others
            log.exception("workspace %s: unexpected error", name)
            step = _Step(WorkspaceResult(name, WorkspaceAction.ERROR, detail=_text(exc)), waiting=True)
        finally:
            config = self._config(record)
            look = next_look(
                self.clock(),
                active=step.active,
                waiting=step.waiting,
                daily=config is not None and config.daily,
                interval=self.s.poll_interval_seconds,
                max_delay=self.s.max_check_delay_seconds,
            )
            try:
                self.ledger.release_workspace(name, self.owner, look, step.through)
            except Exception:
                log.warning("workspace %s: could not release its lease; it lapses after LEASE_SECONDS", name)
        return step.result

    def _config(self, record: WorkspaceRecord) -> Workspace | None:
        return default_workspace(self.s) if record.name == DEFAULT_WORKSPACE else record.config

    def _work(self, record: WorkspaceRecord, now: float) -> _Step:
        name = record.name
        settled: WorkspaceResult | None = None
        if record.active_job is not None:
            settled = self._settle(record, now)
            if settled is None:
                waiting = WorkspaceResult(name, WorkspaceAction.WAITING, job_identifier=record.active_job)
                return _Step(replace(waiting, detail="its export is still running"), active=True)
        config = self._config(record)
        queued, through = self._queue_daily(record, config, now) if config is not None else (0, None)
        window = self.ledger.oldest_queued(name)
        if window is None:
            idle = settled or WorkspaceResult(name, WorkspaceAction.IDLE, detail="nothing queued")
            return _Step(replace(idle, queued=queued), through=through)
        step = self._start(name, window, now)
        result = replace(step.result, queued=queued)
        if settled is not None:  # say what became of the window before, too
            detail = f"window {settled.window} {settled.detail}; {result.detail}"
            result = replace(result, detail=detail, settled=settled.settled)
        return _Step(result, active=step.active, waiting=step.waiting, through=through)

    def _settle(self, record: WorkspaceRecord, now: float) -> WorkspaceResult | None:
        """Apply the active window's finished export to the window; None while the export is still running."""
        name, job_id = record.name, record.active_job or ""
        window = self.ledger.get_window(record.active_window) if record.active_window else None
        if window is None or window.state is not WindowState.RUNNING or window.export_job != job_id:
            self.ledger.clear_active(name, self.owner)
            return WorkspaceResult(name, WorkspaceAction.SETTLED, job_identifier=job_id, detail="slot freed")
        job = self.jobs.get(job_id)
        if job is not None and not job.settled:
            return None
        state = WindowState.QUEUED if job is None else _window_state(job, self.s.window_max_attempts)
        self.ledger.finish(name, self.owner, window, state, job, iso(from_epoch(now)))
        log.info("workspace %s: window %s %s (export %s)", name, window.span.label(), state.value, job_id)
        label = window.span.label()
        return WorkspaceResult(
            name, WorkspaceAction.SETTLED, window=label, job_identifier=job_id, detail=state.value, settled=state.value
        )

    def _queue_daily(self, record: WorkspaceRecord, config: Workspace, now: float) -> tuple[int, date | None]:
        """Queue the days the daily schedule owes (oldest first, at most MAX_QUEUED_PER_PASS windows a pass)."""
        if not config.daily or config.start is None:
            return 0, None
        days = daily_range(config.start, record.daily_through, yesterday(now), config.window_days)
        if days is None:
            return 0, None
        cover = cover_days(
            self.ledger, record.name, Span(*days), config.window_days, iso(from_epoch(now)), MAX_QUEUED_PER_PASS
        )
        if cover.queued:
            log.info("workspace %s: queued %d daily window(s) up to %s", record.name, cover.queued, cover.through)
        return cover.queued, cover.through

    def _start(self, name: str, window: Window, now: float) -> _Step:
        """Create the window's export at Intercom and track it; a 429 leaves the window queued."""
        label, span = window.span.label(), window.span
        base = WorkspaceResult(name, WorkspaceAction.STARTED, window=label)
        try:
            source = self.sources.source_for(name)
            report = source.create(span.first_second, span.last_second)
            job_id = validate_job_id(report.job_identifier)
        except ActiveJobExists:
            detail = "another export is active in the workspace (Intercom allows one): the window waits"
            return _Step(replace(base, action=WorkspaceAction.WAITING, detail=detail), waiting=True)
        except RateLimited as exc:
            detail = f"rate limited by Intercom until {iso(from_epoch(math.ceil(exc.reset_at)))}: the window waits"
            return _Step(replace(base, action=WorkspaceAction.WAITING, detail=detail), waiting=True)
        except _START_FAILURES as exc:
            error = f"could not start the export: {_text(exc)}"
            log.error("workspace %s: window %s %s", name, label, error)
            self.ledger.note_error(window, error, iso(from_epoch(now)))
            return _Step(replace(base, action=WorkspaceAction.RETRY, detail=error), waiting=True)
        job = Job(
            job_identifier=job_id,
            tracked_at=iso(from_epoch(now)),
            next_check_at=0,
            intercom_status=report.status,
            created_at_after=iso(from_epoch(span.first_second)),
            created_at_before=iso(from_epoch(span.last_second)),
            workspace=name,
            window_start=span.start.isoformat(),
            window_end=span.end.isoformat(),
            window_attempt=window.round_attempts + 1,
        )
        try:
            self.ledger.start(name, self.owner, window, job, iso(from_epoch(now)))
        except (ClientError, BotoCoreError) as exc:
            # The export exists at Intercom but is not recorded: say its id. The window stays queued and is
            # started again once Intercom frees the workspace's slot (its create answers 429 until then).
            log.error(
                "workspace %s: created export %s for window %s but could not record it: %s", name, job_id, label, exc
            )
            return _Step(
                replace(base, action=WorkspaceAction.RETRY, detail=f"created {job_id} but not recorded"), waiting=True
            )
        log.info("workspace %s: started export %s for window %s (attempt %d)", name, job_id, label, job.window_attempt)
        return _Step(replace(base, detail=f"attempt {job.window_attempt}", job_identifier=job_id), active=True)


@dataclass(frozen=True)
class Cover:
    queued: int  # windows queued, failed ones queued again included
    requeued: int  # of which failed windows given a fresh set of attempts
    through: date  # the last day now covered (short of the range's end when `limit` stopped it)


def cover_days(
    ledger: Ledger, workspace: str, days: Span, window_days: int, now: str, limit: int | None = None
) -> Cover:
    """Queue what it takes for every day of `days` to be covered by a window: a failed window there is queued again
    (a fresh set of attempts, its own days), and the days no window covers are cut into new windows of at most
    `window_days`. Windows never overlap. `backfill` and the daily schedule both queue through this."""
    existing = ledger.windows(workspace)
    retried = [
        w for w in existing if w.state is WindowState.FAILED and w.span.end >= days.start and w.span.start <= days.end
    ]
    requeued = sum(1 for w in retried if ledger.requeue_failed(w, now))
    covered = [w.span for w in existing if w.state.covers or w in retried]
    spans = plan(covered, days.start, days.end, window_days, limit=limit)
    queued = ledger.queue(workspace, spans, now) + requeued
    through = spans[-1].end if limit is not None and len(spans) >= limit else days.end
    return Cover(queued, requeued, through)


def _window_state(job: Job, max_attempts: int) -> WindowState:
    """The window's state after its export's job settled: the result recorded on the job (windows.judge), and
    never `archived` unless the copy's size and sha256 were recorded."""
    judged = judge(job, max_attempts)
    try:
        result = WindowResult(str(judged.window_result))
    except ValueError:
        result = WindowResult.RETRY
    state = window_state_after(result)
    if state is WindowState.ARCHIVED and not (job.s3_uri and job.sha256 and job.size_bytes is not None):
        return WindowState.QUEUED
    return state


def _text(exc: BaseException) -> str:
    return one_line(str(exc) or type(exc).__name__, 300)

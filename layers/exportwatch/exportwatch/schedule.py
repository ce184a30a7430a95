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
from dataclasses import dataclass
from datetime import date
from enum import Enum

from botocore.exceptions import BotoCoreError, ClientError
from requests import RequestException

from exportwatch.config import ConfigError, OperatorSettings, Settings
from exportwatch.intercom import ActiveJobExists, IntercomError, RateLimited
from exportwatch.ledger import Window, WorkspaceRecord
from exportwatch.model import InvalidJobId, Job, from_epoch, iso, validate_job_id
from exportwatch.ports import ExportSources, JobRepository, Ledger
from exportwatch.reporting import MAX_PENDING, InvalidReporting, Kind, find_dataset, ledger_kind
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


def default_workspace(settings: Settings | OperatorSettings) -> Workspace:
    """The workspace the environment describes: INTERCOM_API_URL, INTERCOM_TOKEN_SECRET, INTERCOM_APP_ID,
    INTERCOM_CLIENT_ID, and for the poller its daily schedules (DEFAULT_DAILY_START, DEFAULT_DAILY_DATASETS)."""
    poller = settings if isinstance(settings, Settings) else None
    return Workspace(
        name=DEFAULT_WORKSPACE,
        api_url=settings.intercom_api_url,
        token_secret=settings.intercom_token_secret,
        daily=poller is not None and poller.default_daily_start is not None,
        start=poller.default_daily_start if poller else None,
        window_days=poller.default_window_days if poller else 1,
        app_id=settings.intercom_app_id,
        client_id=settings.intercom_client_id,
        daily_datasets=poller.default_daily_datasets if poller else (),
    )


@dataclass(frozen=True)
class _Step:
    """One workspace's outcome this pass, and what to record when its lease is released."""

    result: WorkspaceResult
    active: bool = False  # an export of one of its windows is running
    waiting: bool = False  # turned away (429, rate limit): look again next interval
    through: date | None = None  # the daily schedule's new daily_through, if it moved
    reporting_through: dict[str, date] | None = None  # the datasets' daily schedules, when one moved


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
                daily=config is not None and (config.daily or bool(config.daily_datasets)),
                interval=self.s.poll_interval_seconds,
                max_delay=self.s.max_check_delay_seconds,
            )
            try:
                self.ledger.release_workspace(name, self.owner, look, step.through, step.reporting_through)
            except Exception:
                log.warning("workspace %s: could not release its lease; it lapses after LEASE_SECONDS", name)
        return step.result

    def _config(self, record: WorkspaceRecord) -> Workspace | None:
        return default_workspace(self.s) if record.name == DEFAULT_WORKSPACE else record.config

    def _work(self, record: WorkspaceRecord, now: float) -> _Step:
        """One workspace's pass: settle what finished, queue what the daily schedules owe, start what may start."""
        name, config, notes = record.name, self._config(record), _Notes(record.name)
        content_busy = record.active_job is not None and not self._settle_content(record, now, notes)
        reporting_busy = [e for e in record.active_reporting if not self._settle_reporting(name, e, now, notes)]
        through, reporting_through = None, dict(record.reporting_through)
        if config is not None:
            through = self._queue_daily(record, config, now, notes)
            for dataset in config.daily_datasets:
                dataset_through = self._queue_daily_dataset(record, config, dataset, now, notes)
                if dataset_through is not None:
                    reporting_through[dataset] = dataset_through
        waiting = False
        if not content_busy:
            for window in self.ledger.oldest_queued(name, Kind.CONTENT.value):
                start = self._start(name, window, now, notes)
                content_busy, waiting = start is _Start.STARTED, start is not _Start.STARTED
        free = MAX_PENDING - len(reporting_busy)
        for window in self.ledger.oldest_queued(name, Kind.REPORTING.value, limit=free) if free > 0 else []:
            start = self._start(name, window, now, notes)
            reporting_busy += [("", window.key)] if start is _Start.STARTED else []
            waiting = waiting or start is not _Start.STARTED
            if start is _Start.TURNED_AWAY:  # Intercom has five pending already (some not ours): the rest wait too
                break
            # A window Intercom refused (FAILED: kept queued with the reason) does not hold up the next one.
        moved = reporting_through if reporting_through != record.reporting_through else None
        return _Step(
            notes.result(),
            active=content_busy or bool(reporting_busy),
            waiting=waiting,
            through=through,
            reporting_through=moved,
        )

    def _settle_content(self, record: WorkspaceRecord, now: float, notes: _Notes) -> bool:
        """Apply the content window's finished export; False while it is still running."""
        job_id = record.active_job or ""
        window = self.ledger.get_window(record.active_window) if record.active_window else None
        if window is None or window.state is not WindowState.RUNNING or window.export_job != job_id:
            self.ledger.clear_active(record.name, self.owner)
            notes.add(WorkspaceAction.SETTLED, f"freed the slot of export {job_id}", job_id=job_id)
            return True
        return self._settle(record.name, window, job_id, now, notes)

    def _settle_reporting(self, name: str, entry: tuple[str, str], now: float, notes: _Notes) -> bool:
        """The same for one of the reporting family's exports; False while it is still running."""
        job_id, key = entry
        window = self.ledger.get_window(key)
        if window is None or window.state is not WindowState.RUNNING or window.export_job != job_id:
            self.ledger.clear_active(name, self.owner, entry)
            notes.add(WorkspaceAction.SETTLED, f"freed the slot of export {job_id}", job_id=job_id)
            return True
        return self._settle(name, window, job_id, now, notes)

    def _settle(self, name: str, window: Window, job_id: str, now: float, notes: _Notes) -> bool:
        job = self.jobs.get(job_id)
        if job is not None and not job.settled:
            notes.add(WorkspaceAction.WAITING, f"{_what(window)} export {job_id} still running", job_id=job_id)
            return False
        state = WindowState.QUEUED if job is None else _window_state(job, self.s.window_max_attempts)
        self.ledger.finish(name, self.owner, window, state, job, iso(from_epoch(now)))
        log.info("workspace %s: %s %s (export %s)", name, _what(window), state.value, job_id)
        notes.add(WorkspaceAction.SETTLED, f"{_what(window)} {state.value}", window, job_id, settled=state.value)
        return True

    def _queue_daily(self, record: WorkspaceRecord, config: Workspace, now: float, notes: _Notes) -> date | None:
        """Queue the content days the daily schedule owes (oldest first, at most MAX_QUEUED_PER_PASS a pass)."""
        if not config.daily or config.start is None:
            return None
        days = daily_range(config.start, record.daily_through, yesterday(now), config.window_days)
        if days is None:
            return None
        cover = cover_days(
            self.ledger, record.name, Span(*days), config.window_days, iso(from_epoch(now)), MAX_QUEUED_PER_PASS
        )
        notes.queued(cover.queued, "content", cover.through)
        return cover.through

    def _queue_daily_dataset(
        self, record: WorkspaceRecord, config: Workspace, dataset: str, now: float, notes: _Notes
    ) -> date | None:
        """The same for one reporting dataset, with every attribute the dataset has today."""
        if config.start is None:
            return None
        days = daily_range(config.start, record.reporting_through.get(dataset), yesterday(now), config.window_days)
        if days is None:
            return None
        try:
            catalogue = self.sources.source_for(record.name).get_datasets()
            attributes = find_dataset(catalogue, dataset).resolve(None)
        except (*_START_FAILURES, InvalidReporting) as exc:
            error = f"daily {dataset} windows not queued: {_text(exc)}"
            log.error("workspace %s: %s", record.name, error)
            notes.add(WorkspaceAction.RETRY, error)
            return None
        cover = cover_days(
            self.ledger,
            record.name,
            Span(*days),
            config.window_days,
            iso(from_epoch(now)),
            MAX_QUEUED_PER_PASS,
            kind=Kind.REPORTING.value,
            dataset=dataset,
            attributes=attributes,
        )
        notes.queued(cover.queued, dataset, cover.through)
        return cover.through

    def _start(self, name: str, window: Window, now: float, notes: _Notes) -> _Start:
        """Create the window's export at Intercom and track it. A 429 (TURNED_AWAY) leaves the window queued: another
        export holds the slot, not a failure. Any other refusal (FAILED) keeps it queued with the reason."""
        span = window.span
        try:
            source = self.sources.source_for(name)
            if window.kind == Kind.REPORTING:
                report = source.enqueue(str(window.dataset), window.attributes, span.first_second, span.last_second)
            else:
                report = source.create(span.first_second, span.last_second)
            job_id = validate_job_id(report.job_identifier)
        except ActiveJobExists as exc:
            notes.add(WorkspaceAction.WAITING, f"{_what(window)} waits: {_text(exc)}", window)
            return _Start.TURNED_AWAY
        except RateLimited as exc:
            until = iso(from_epoch(math.ceil(exc.reset_at)))
            notes.add(WorkspaceAction.WAITING, f"{_what(window)} waits: rate limited by Intercom until {until}", window)
            return _Start.TURNED_AWAY
        except _START_FAILURES as exc:
            error = f"could not start the export: {_text(exc)}"
            log.error("workspace %s: %s %s", name, _what(window), error)
            self.ledger.note_error(window, error, iso(from_epoch(now)))
            notes.add(WorkspaceAction.RETRY, f"{_what(window)} {error}", window)
            return _Start.FAILED
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
            kind=window.kind,
            dataset=window.dataset,
            api_version=self.s.intercom_version,
        )
        try:
            self.ledger.start(name, self.owner, window, job, iso(from_epoch(now)))
        except (ClientError, BotoCoreError) as exc:
            # The export exists at Intercom but is not recorded: say its id. The window stays queued and is
            # started again once Intercom frees the workspace's slot (its create answers 429 until then).
            log.error(
                "workspace %s: created export %s for %s but could not record it: %s", name, job_id, _what(window), exc
            )
            notes.add(WorkspaceAction.RETRY, f"created {job_id} for {_what(window)} but not recorded", window)
            return _Start.FAILED
        log.info("workspace %s: started export %s for %s (attempt %d)", name, job_id, _what(window), job.window_attempt)
        notes.add(WorkspaceAction.STARTED, f"{_what(window)} started (attempt {job.window_attempt})", window, job_id)
        return _Start.STARTED


class _Start(Enum):
    STARTED = "started"
    TURNED_AWAY = "turned away"  # a 429: the workspace's slots are taken; nothing more of the family starts now
    FAILED = "failed"  # refused or broken: this window stays queued with the reason; the next may still start


def _what(window: Window) -> str:
    """'window 2026-11-03' (content) or 'conversation window 2026-11-03' (a dataset's)."""
    return f"{window.dataset} window {window.span.label()}" if window.dataset else f"window {window.span.label()}"


# Which action names a workspace's pass when several things happened: the most telling one.
_PRECEDENCE = (
    WorkspaceAction.ERROR,
    WorkspaceAction.RETRY,
    WorkspaceAction.STARTED,
    WorkspaceAction.SETTLED,
    WorkspaceAction.WAITING,
)


class _Notes:
    """What a workspace's pass did, gathered as it goes, then one WorkspaceResult."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.actions: list[WorkspaceAction] = []
        self.phrases: list[str] = []
        self.window: str | None = None
        self.job_id: str | None = None
        self.settled: str | None = None
        self.count = 0

    def add(
        self,
        action: WorkspaceAction,
        phrase: str,
        window: Window | None = None,
        job_id: str | None = None,
        settled: str | None = None,
    ) -> None:
        self.actions.append(action)
        self.phrases.append(phrase)
        if window is not None and (self.window is None or action is WorkspaceAction.STARTED):
            self.window = window.span.label()
        if job_id and (self.job_id is None or action is WorkspaceAction.STARTED):
            self.job_id = job_id
        self.settled = settled or self.settled

    def queued(self, n: int, what: str, through: date) -> None:
        if n:
            self.count += n
            log.info("workspace %s: queued %d daily %s window(s) up to %s", self.name, n, what, through)

    def result(self) -> WorkspaceResult:
        action = next((a for a in _PRECEDENCE if a in self.actions), WorkspaceAction.IDLE)
        detail = "; ".join(self.phrases) or "nothing queued"
        return WorkspaceResult(
            self.name, action, self.window, self.job_id, queued=self.count, detail=detail, settled=self.settled
        )


@dataclass(frozen=True)
class Cover:
    queued: int  # windows queued, failed ones queued again included
    requeued: int  # of which failed windows given a fresh set of attempts
    through: date  # the last day now covered (short of the range's end when `limit` stopped it)


def cover_days(
    ledger: Ledger,
    workspace: str,
    days: Span,
    window_days: int,
    now: str,
    limit: int | None = None,
    *,
    kind: str = Kind.CONTENT.value,
    dataset: str | None = None,
    attributes: tuple[str, ...] = (),
) -> Cover:
    """Queue what it takes for every day of `days` to be covered by a window: a failed window there is queued again
    (a fresh set of attempts, its own days), and the days no window covers are cut into new windows of at most
    `window_days`. Windows never overlap. `backfill` and the daily schedule both queue through this."""
    existing = ledger.windows(workspace, ledger_kind(kind, dataset))  # each dataset has a ledger of its own
    retried = [
        w for w in existing if w.state is WindowState.FAILED and w.span.end >= days.start and w.span.start <= days.end
    ]
    requeued = sum(1 for w in retried if ledger.requeue_failed(w, now))
    covered = [w.span for w in existing if w.state.covers or w in retried]
    spans = plan(covered, days.start, days.end, window_days, limit=limit)
    queued = ledger.queue(workspace, spans, now, kind, dataset, attributes) + requeued
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

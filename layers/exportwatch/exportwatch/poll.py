"""The poll cycle: the one place where a job's state changes.

For each due job: claim it (a lease, by conditional write), ask Intercom for its status, decide, act on the
decision (copy to S3), checkpoint, publish the notification, then settle the job and release the lease. A failure
at any step leaves the job due, so the next cycle resumes where this one stopped:

    watching --(pending/in_progress, transient error, copy failed)--> watching (checked again later)
    watching --(completed + copied)--> completed --(published)--> settled
    watching --(failed / no_data / canceled / 404 / expired / foreign download_url)--> <final> --> settled

A final state whose publish failed stays due and is published on a later cycle; a settled job leaves the
due index and gets a TTL.

Early warnings are published for a job that is still watching, at most once each, in the cycle that finds
them due (and again next cycle if that publish fails; the job is due anyway):

    export.expiring  Intercom reports it completed, the copy has not succeeded, and less than
                     EXPIRY_WARNING_HOURS are left before download_expires_at   (recorded as warned_expiring_at)
    export.stuck     still pending/in_progress (or never answered) STUCK_AFTER_HOURS after it was tracked
                                                                                  (recorded as warned_stuck_at)

Warnings never change the job's state: its outcome is notified later as for any other job.

Bounds, whatever Intercom or another host answers: a job's next check is never more than MAX_CHECK_DELAY_MINUTES
away (a rate-limit reset is also clamped to ratelimit.MAX_RESET_SECONDS), so the stuck and expiring warnings and
the alarms still fire. A row whose id is not a valid Intercom job id (the rule `track` applies) is never sent
to Intercom: it is logged and counted once (action "invalid") and taken out of the due index.

Where things are: every decision above (next state, when to check next, what to copy and publish, when the cycle
stops) is a pure function in decide.py; this module reads the clock, calls the four ports (ports.py: the job
repository, the export source, the archive sink, the publisher), logs, and hands the answers to decide.py. What a
cycle reports (JobResult, CycleSummary, Action, StopReason) is in results.py.

One job, through _Cycle._process:

    store.claim                                  -> None: skipped
    intercom.get_status -> decide.decide_check   -> running / deferred (retry, rate limit: the cycle stops) / final
                                                    / copy wanted:
        intercom.download -> archive.copy -> decide.decide_copy   -> completed / failed / expired / deferred
    store.save(release=False) if now final       (the checkpoint: LeaseLost stops us before a duplicate publish)
    final, not notified: notifier.publish -> decide.decide_published   -> settled, or retried next cycle
    still watching: decide.gauges, decide.warning_due -> store.save(release=False), notifier.publish
                                                        -> decide.decide_warned
    store.save(release=True)
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from exportwatch.archive import CopyResult, CopySettings, announced_length
from exportwatch.config import ConfigError, Settings
from exportwatch.decide import (
    Decision,
    FailureKind,
    Stop,
    decide_check,
    decide_copy,
    decide_published,
    decide_retried,
    decide_warned,
    due_by,
    gauges,
    invalid_row,
    publish_error,
    report,
    time_budget,
    warning_due,
)
from exportwatch.intercom import StatusReport
from exportwatch.model import Event, Job, from_epoch, iso
from exportwatch.notifier import Notification, notification_for, warning_for
from exportwatch.observability import in_workspace, job_context
from exportwatch.ports import ArchiveSink, ExportSource, ExportSources, JobRepository, Ledger, Publisher, S3Archive
from exportwatch.results import Action, CycleSummary, JobResult, StopReason
from exportwatch.safetext import one_line
from exportwatch.schedule import Scheduler
from exportwatch.sources import DefaultOnly, UnknownWorkspace, WithDefault
from exportwatch.store import LeaseLost
from exportwatch.windows import announced, judge
from exportwatch.workspaces import DEFAULT_WORKSPACE

__all__ = ["Action", "CycleSummary", "JobResult", "Poller", "StopReason", "new_owner", "run_cycle"]

log = logging.getLogger(__name__)


@dataclass
class Poller:
    """Everything a cycle needs, built once per Lambda container (or CLI run) by wiring.build_poller().

    The archive is S3 (`s3`, EXPORT_BUCKET/EXPORT_PREFIX, `copy_settings`, read when a cycle starts) unless
    `archive` gives another ArchiveSink (the unit tests' in-memory one).
    """

    settings: Settings
    store: JobRepository
    intercom: ExportSource  # the default workspace's
    notifier: Publisher
    s3: Any = None
    copy_settings: CopySettings = field(default_factory=CopySettings)
    archive: ArchiveSink | None = None
    clock: Callable[[], float] = time.time
    # Workspaces (wiring.build_poller sets both): every workspace's source, and the registry and ledger the
    # scheduler works on. Without them the cycle knows `default` alone and schedules nothing.
    sources: ExportSources | None = None
    ledger: Ledger | None = None
    default_state_ready: bool = False  # the default workspace's scheduler record exists (its daily schedule is on)

    def export_sources(self) -> ExportSources:
        return WithDefault(self.intercom, self.sources if self.sources is not None else DefaultOnly(self.intercom))

    def archive_sink(self) -> ArchiveSink:
        if self.archive is not None:
            return self.archive
        if self.s3 is None:
            raise ValueError("Poller needs an s3 client or an archive")
        return S3Archive(self.s3, self.settings.export_bucket, self.settings.export_prefix, self.copy_settings)


def new_owner() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def run_cycle(
    poller: Poller,
    *,
    all_jobs: bool = False,
    time_left: Callable[[], float] | None = None,
    reserve_seconds: float = 60.0,
    owner: str | None = None,
) -> CycleSummary:
    """Run one poll cycle. `all_jobs` ignores back-off and checks every unfinished job now.

    `time_left` (seconds) lets the Lambda handler stop taking new jobs `reserve_seconds` before its timeout;
    jobs not started are simply still due next cycle.
    """
    return _Cycle(poller, owner or new_owner(), all_jobs, time_left, reserve_seconds).run()


class _Cycle:
    def __init__(
        self,
        poller: Poller,
        owner: str,
        all_jobs: bool,
        time_left: Callable[[], float] | None,
        reserve_seconds: float,
    ) -> None:
        self.p = poller
        self.s = poller.settings
        self.archive = poller.archive_sink()
        self.owner = owner
        self.all_jobs = all_jobs
        self.time_left = time_left
        self.reserve = reserve_seconds
        self.summary = CycleSummary(owner=owner)
        self._stop_lock = threading.Lock()
        self._single = True  # `default` is the only workspace (run() asks the registry)
        self._stopped = False  # no new jobs at all this cycle (time budget; a halt when `default` is alone)
        self.sources = poller.export_sources()
        self._ready: dict[str, ExportSource | Exception] = {}  # each workspace's source, its token resolved
        self._window_settled = False  # a window's job settled: the scheduler looks again at the end of the cycle

    # -- scheduling ---------------------------------------------------------------------------------------

    def _stop(self, stop: Stop, workspace: str | None = None) -> None:
        """Take no new jobs (workspace None, or `default` alone), or none of one workspace's, this cycle."""
        with self._stop_lock:  # the first reason wins
            if self.summary.stop_reason is None:
                self.summary.stop_reason, self.summary.stopped = stop.reason, stop.text
            if workspace is None or self._single:
                self._stopped = True
            else:
                self.summary.halted.setdefault(workspace, stop.text)

    def _should_stop(self) -> bool:
        if self._stopped:
            return True
        stop = time_budget(None if self.time_left is None else self.time_left(), self.reserve)
        if stop is not None:
            self._stop(stop)
            return True
        return False

    def _schedule(self, all_due: bool) -> None:
        """The scheduler's pass over the due workspaces (schedule.py): windows settled, queued and started."""
        ledger = self.p.ledger
        if ledger is None:
            return
        if self.s.default_daily_start is not None and not self.p.default_state_ready:
            ledger.ensure_workspace_state(DEFAULT_WORKSPACE, iso(from_epoch(self.p.clock())))
            self.p.default_state_ready = True
        scheduler = Scheduler(self.s, ledger, self.p.store, self.sources, self.owner, self.p.clock)
        budget = None if self.time_left is None else self.time_left

        def left() -> float | None:
            return None if budget is None else budget() - self.reserve

        self.summary.workspaces.extend(scheduler.run(all_due, left))

    def run(self) -> CycleSummary:
        self._single = self.sources.single()
        self._schedule(self.all_jobs)
        self._run_jobs()
        if self._window_settled:
            # The workspaces whose window just finished (made due by _window_done): their next window starts now,
            # not next cycle. Only those: the others were looked at a moment ago.
            self._schedule(all_due=False)
        return self.summary

    def _run_jobs(self) -> None:
        due = self.p.store.due_ids(due_by(self.p.clock(), self.all_jobs, self.s))
        self.summary.due = len(due)
        ids = [job_id for job_id in due if self._valid_row(job_id)]
        if not ids:
            return
        if self._single:
            self.p.intercom.ensure_token()  # a bad secret is a ConfigError for the whole cycle, not per job
        pending: set[Future[JobResult]] = set()
        queue = list(reversed(ids))
        with ThreadPoolExecutor(max_workers=self.s.poll_concurrency, thread_name_prefix="poll") as pool:
            while queue or pending:
                while queue and len(pending) < self.s.poll_concurrency and not self._should_stop():
                    pending.add(pool.submit(self._process_safely, queue.pop()))
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                self.summary.results.extend(f.result() for f in done)
        self.summary.left_for_next_cycle = len(queue)

    def _source(self, workspace: str) -> ExportSource:
        """The workspace's source, its token resolved once per cycle; the error instead, every time it is asked."""
        with self._stop_lock:
            ready = self._ready.get(workspace)
        if ready is None:
            try:
                source = self.sources.source_for(workspace)
                source.ensure_token()
                ready = source
            except (UnknownWorkspace, ConfigError) as exc:
                log.error("workspace %s: %s; its jobs wait", one_line(workspace, 80), one_line(str(exc), 300))
                ready = exc
            with self._stop_lock:
                ready = self._ready.setdefault(workspace, ready)
        if isinstance(ready, Exception):
            raise ready
        return ready

    def _valid_row(self, job_id: str) -> bool:
        """An id read back from the table passes the rule `track` applies, or the row is set aside once."""
        invalid = invalid_row(job_id)
        if invalid is None:
            return True
        if self.p.store.quarantine(job_id, invalid.reason, int(self.p.clock())):
            log.error(
                "job row %s is not a valid Intercom job id (%s): taken out of the due index",
                invalid.shown,
                invalid.reason,
            )
            self.summary.results.append(JobResult(invalid.shown, Action.INVALID, detail=invalid.reason))
        return False

    # -- one job ------------------------------------------------------------------------------------------

    def _process_safely(self, job_id: str) -> JobResult:
        with job_context(job_id):  # every log line in this thread, until the job is done, names it
            try:
                return self._process(job_id)
            except Exception as exc:  # one job's error never stops the others
                log.exception("job %s: unexpected error", job_id)
                self._release_quietly(job_id)
                return JobResult(job_id, Action.ERROR, detail=one_line(f"{type(exc).__name__}: {exc}", 300))

    def _release_quietly(self, job_id: str) -> None:
        """After an unexpected error, let the next cycle retry the job instead of waiting out the lease."""
        try:
            self.p.store.release(job_id, self.owner)
        except Exception:  # the store itself may be what failed; the lease then lapses on its own
            log.warning("job %s: could not release the lease; it lapses after LEASE_SECONDS", job_id)

    def _process(self, job_id: str) -> JobResult:
        now = self.p.clock()
        job = self.p.store.claim(job_id, self.owner, int(now), self.s.lease_seconds, due_by(now, self.all_jobs, self.s))
        if job is None:
            return JobResult(job_id, Action.SKIPPED, detail="claimed by another poller or no longer due")
        in_workspace(one_line(job.workspace, 80))
        halted = self.summary.halted.get(job.workspace)
        if halted is not None:
            self.p.store.release(job_id, self.owner)
            return JobResult(
                job_id, Action.SKIPPED, workspace=job.workspace, detail=f"workspace {job.workspace}: {halted}"
            )
        result = JobResult(job_id, Action.CHECKED)
        try:
            if not job.state.is_final:
                decision = self._check(job)
                job, result = judge(decision.job, self.s.window_max_attempts), report(result, decision)
                if job.state.is_final:
                    # Checkpoint the outcome (and the copy) before telling anyone, so a crash after the
                    # publish cannot lose the copy's record, and a lost lease stops us before a duplicate.
                    self.p.store.save(job, self.owner, release=False)
            if job.state.is_final and job.notified_at is None:
                decision = self._notify(job)
                job, result = decision.job, report(result, decision)
            elif not job.state.is_final:
                now = self.p.clock()
                result = replace(result, **asdict(gauges(job, now)))
                event = warning_due(job, now, self.s)
                if event is not None:
                    decision = self._warn(job, event, now)
                    job, result = decision.job, report(result, decision)
            self.p.store.save(job, self.owner, release=True)
            if job.window_start is not None and job.settled:
                self._window_done(job.workspace)
        except LeaseLost as exc:
            log.warning("job %s: %s", job_id, exc)
            result = replace(result, action=Action.SKIPPED, detail=str(exc))
        return replace(result, state=job.state.value, intercom_status=job.intercom_status, workspace=job.workspace)

    def _check(self, job: Job) -> Decision:
        """Ask Intercom and decide; when the decision wants the copy, copy and decide on how that went."""
        asked_at = self.p.clock()
        answer: StatusReport | Exception
        source: ExportSource | None = None
        try:
            source = self._source(job.workspace)
            # A content job is asked as before reporting existed (one argument): wrappers of get_status keep working.
            answer = (
                source.get_status(job.job_identifier, job.dataset)
                if job.reporting
                else source.get_status(job.job_identifier)
            )
        except Exception as exc:
            answer = exc
        decision = decide_check(job, answer, asked_at=asked_at, now=self.p.clock(), settings=self.s)
        if decision.copy_from is not None and source is not None:
            url = decision.copy_from or (
                source.download_url_for(job.job_identifier, job.dataset)
                if job.reporting
                else source.download_url_for(job.job_identifier)
            )
            copied = self._copy(source, decision.job, url)
            decision = decide_copy(decision.job, copied, now=self.p.clock(), settings=self.s)
        self._follow(decision)
        return decision

    def _copy(self, source: ExportSource, job: Job, url: str) -> CopyResult | Exception:
        """Stream the download into the archive; the error instead when it did not land whole."""
        try:
            with source.download(url) as resp:
                length = announced_length(resp.headers.get("Content-Length"), self.archive.max_bytes)
                return self.archive.copy(resp.raw, job, length)
        except Exception as exc:
            return exc

    def _follow(self, decision: Decision) -> None:
        """Log a check's decision, and stop the cycle when it says so."""
        job, failure = decision.job, decision.failure
        if decision.stop is not None:
            self._stop(decision.stop, job.workspace)
        if failure is not None:
            if failure.kind is FailureKind.UNAUTHORIZED:
                log.error("job %s: %s", job.job_identifier, failure.text)
            elif failure.kind is FailureKind.EXPECTED:
                log.warning("job %s: %s failed, will retry: %s", job.job_identifier, failure.step, failure.text)
            elif failure.kind is FailureKind.BUG:  # a bug, not weather: keep the traceback
                log.warning(
                    "job %s: %s failed, will retry: %s",
                    job.job_identifier,
                    failure.step,
                    failure.text,
                    exc_info=failure.error,
                )
        if decision.copied is not None:
            log.info("job %s: copied %d bytes to %s", job.job_identifier, decision.copied.copy.size_bytes, job.s3_uri)
        if job.state.is_final:
            reason = job.outcome_reason
            log.info("job %s: outcome %s%s", job.job_identifier, job.state.value, f" ({reason})" if reason else "")

    def _notify(self, job: Job) -> Decision:
        if not announced(job):  # a window's attempt that is retried: the window's outcome is announced later
            log.info(
                "job %s: window %s attempt failed (%s); queued again",
                job.job_identifier,
                job.window_start,
                job.state.value,
            )
            return decide_retried(job, now=self.p.clock(), settings=self.s)
        note = notification_for(job)
        error = self._publish(job, note)
        return decide_published(job, note.event, error, now=self.p.clock(), settings=self.s)

    def _window_done(self, workspace: str) -> None:
        """A window's job settled: its workspace's scheduler frees the slot and starts the next window."""
        self._window_settled = True
        if self.p.ledger is not None:
            try:
                self.p.ledger.make_due(workspace)
            except Exception:  # the scheduler's own next look finds it anyway (windows.next_look)
                log.warning("workspace %s: could not make it due; its scheduler looks again later", workspace)

    def _warn(self, job: Job, event: Event, now: float) -> Decision:
        note = warning_for(job, event, now)
        # Checkpoint what this cycle learnt before telling anyone: if our lease was taken over, LeaseLost stops
        # us here, and the worker that holds the job now decides about the warning (no duplicate).
        self.p.store.save(job, self.owner, release=False)
        error = self._publish(job, note)
        if error is None:
            log.info("job %s: warned %s (%s)", job.job_identifier, event.value, note.body["reason"])
        return decide_warned(job, event, error, now=now, settings=self.s)

    def _publish(self, job: Job, note: Notification) -> str | None:
        """Publish; on failure log it and return the one-line error (the caller keeps the job due)."""
        try:
            self.p.notifier.publish(note)
        except Exception as exc:
            error = publish_error(note.event, exc)
            log.warning("job %s: %s; will retry next cycle", job.job_identifier, error)
            return error
        return None

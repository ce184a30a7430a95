"""The poll cycle: the one place where a job's state changes.

For each due job: claim it (a lease, by conditional write), ask Intercom for its status, act on the outcome
(copy to S3, decide a final state), checkpoint, publish the notification, then settle the job and release
the lease. A failure at any step leaves the job due, so the next cycle resumes where this one stopped:

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
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import boto3.exceptions
import botocore.exceptions
import requests
import urllib3.exceptions

from exportwatch.archive import CopySettings, IncompleteDownload, MalformedDownload, announced_length, copy_to_s3
from exportwatch.config import Settings
from exportwatch.intercom import (
    DownloadGone,
    ForeignOrigin,
    IntercomClient,
    MalformedResponse,
    Outcome,
    RateLimited,
    StatusReport,
    TransientError,
    Unauthorized,
)
from exportwatch.model import (
    Event,
    IntercomStatus,
    InvalidJobId,
    Job,
    JobState,
    from_epoch,
    iso,
    parse_iso,
    validate_job_id,
)
from exportwatch.notifier import Notification, Notifier, notification_for, warning_for
from exportwatch.observability import job_context
from exportwatch.safetext import one_line
from exportwatch.store import JobStore, LeaseLost

log = logging.getLogger(__name__)

_RUNNING = frozenset({IntercomStatus.PENDING.value, IntercomStatus.IN_PROGRESS.value})
_FINISHED_OK = frozenset({IntercomStatus.COMPLETED.value, IntercomStatus.COMPLETE.value})

# Failures a cycle expects now and then (a broken download, an HTTP or AWS error): logged as one line and retried.
# Anything else is a bug and is logged with its traceback.
_EXPECTED_FAILURES: tuple[type[BaseException], ...] = (
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

_FINAL_FOR: dict[Outcome, tuple[JobState, str]] = {
    Outcome.FAILED: (
        JobState.FAILED,
        "Intercom reports the export job failed (jobs that run longer than 12 hours fail); request a new export",
    ),
    Outcome.NO_DATA: (JobState.NO_DATA, "Intercom found no messages sent in the requested date range"),
    Outcome.CANCELED: (JobState.CANCELED, "the export job was canceled at Intercom"),
    Outcome.NOT_FOUND: (JobState.NOT_FOUND, "Intercom has no export job with this identifier"),
}


@dataclass
class Poller:
    """Everything a cycle needs, built once per Lambda container (or CLI run) by wiring.build()."""

    settings: Settings
    store: JobStore
    intercom: IntercomClient
    s3: Any
    notifier: Notifier
    copy_settings: CopySettings = field(default_factory=CopySettings)
    clock: Callable[[], float] = time.time


@dataclass
class JobResult:
    job_identifier: str
    action: str  # checked | copied | notified | warned | retry | deferred | skipped | invalid | error
    state: str = ""
    intercom_status: str | None = None
    event: str | None = None  # the outcome notification published this cycle
    warning: str | None = None  # the early warning published this cycle (export.expiring / export.stuck)
    detail: str = ""
    bytes_copied: int = 0
    copy_seconds: float = 0.0
    # Gauges for a job still watching after this cycle's check (observability.cycle_metrics):
    pending_seconds: int | None = None  # not finished at Intercom: age since tracked
    expires_in_seconds: int | None = None  # finished but not copied: time left before Intercom deletes it
    uncopied_seconds: int | None = None  # finished but not copied: since the first check that saw it finished


@dataclass
class CycleSummary:
    owner: str
    due: int = 0
    results: list[JobResult] = field(default_factory=list)
    left_for_next_cycle: int = 0
    stopped: str | None = None  # why the cycle stopped taking new work early, if it did

    @property
    def events(self) -> Counter[str]:
        """Notifications published this cycle, outcomes and warnings, by event name."""
        return Counter(e for r in self.results for e in (r.event, r.warning) if e)

    @property
    def actions(self) -> Counter[str]:
        return Counter(r.action for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "due": self.due,
            "processed": len(self.results),
            "left_for_next_cycle": self.left_for_next_cycle,
            "stopped": self.stopped,
            "actions": dict(self.actions),
            "events": dict(self.events),
            "bytes_copied": sum(r.bytes_copied for r in self.results),
            "jobs": [asdict(r) for r in self.results],
        }


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
        self.owner = owner
        self.all_jobs = all_jobs
        self.time_left = time_left
        self.reserve = reserve_seconds
        self.summary = CycleSummary(owner=owner)
        self._stop_lock = threading.Lock()

    # -- scheduling ---------------------------------------------------------------------------------------

    def _due_by(self, now: float) -> int | None:
        # Half an interval of grace: a job scheduled "next cycle" is due even if this run fires a bit early.
        return None if self.all_jobs else int(now + self.s.poll_interval_seconds / 2)

    def _stop(self, reason: str) -> None:
        with self._stop_lock:
            self.summary.stopped = self.summary.stopped or reason

    def _should_stop(self) -> bool:
        if self.summary.stopped:
            return True
        if self.time_left is not None and self.time_left() < self.reserve:
            self._stop("time budget: the rest is left for the next cycle")
            return True
        return False

    def run(self) -> CycleSummary:
        due = self.p.store.due_ids(self._due_by(self.p.clock()))
        self.summary.due = len(due)
        ids = [job_id for job_id in due if self._valid_row(job_id)]
        if not ids:
            return self.summary
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
        return self.summary

    def _valid_row(self, job_id: str) -> bool:
        """An id read back from the table passes the rule `track` applies, or the row is set aside once."""
        try:
            validate_job_id(job_id)
        except InvalidJobId as exc:
            shown = one_line(repr(job_id), 80)
            reason = one_line(str(exc), 200)
            if self.p.store.quarantine(job_id, reason, int(self.p.clock())):
                log.error("job row %s is not a valid Intercom job id (%s): taken out of the due index", shown, reason)
                self.summary.results.append(JobResult(shown, "invalid", detail=reason))
            return False
        return True

    # -- one job ------------------------------------------------------------------------------------------

    def _process_safely(self, job_id: str) -> JobResult:
        with job_context(job_id):  # every log line in this thread, until the job is done, names it
            try:
                return self._process(job_id)
            except Exception as exc:  # one job's error never stops the others
                log.exception("job %s: unexpected error", job_id)
                self._release_quietly(job_id)
                return JobResult(job_id, "error", detail=f"{type(exc).__name__}: {exc}"[:300])

    def _release_quietly(self, job_id: str) -> None:
        """After an unexpected error, let the next cycle retry the job instead of waiting out the lease."""
        try:
            self.p.store.release(job_id, self.owner)
        except Exception:  # the store itself may be what failed; the lease then lapses on its own
            log.warning("job %s: could not release the lease; it lapses after LEASE_SECONDS", job_id)

    def _process(self, job_id: str) -> JobResult:
        now = self.p.clock()
        job = self.p.store.claim(job_id, self.owner, int(now), self.s.lease_seconds, self._due_by(now))
        if job is None:
            return JobResult(job_id, "skipped", detail="claimed by another poller or no longer due")
        result = JobResult(job_id, "checked")
        try:
            if not job.state.is_final:
                self._check(job, result)
                if job.state.is_final:
                    # Checkpoint the outcome (and the copy) before telling anyone, so a crash after the
                    # publish cannot lose the copy's record, and a lost lease stops us before a duplicate.
                    self.p.store.save(job, self.owner, release=False)
            if job.state.is_final and job.notified_at is None:
                self._notify(job, result)
            elif not job.state.is_final:
                self._measure(job, result)
                self._warn(job, result)
            self.p.store.save(job, self.owner, release=True)
        except LeaseLost as exc:
            log.warning("job %s: %s", job_id, exc)
            result.action, result.detail = "skipped", str(exc)
        result.state = job.state.value
        result.intercom_status = job.intercom_status
        return result

    def _check(self, job: Job, result: JobResult) -> None:
        now = self.p.clock()
        job.attempts += 1
        job.last_checked_at = iso(from_epoch(now))
        try:
            report = self.p.intercom.get_status(job.job_identifier)
        except Exception as exc:
            self._defer(job, result, exc, "status check")
            return
        job.intercom_status = report.status
        if report.download_expires_at is not None:
            job.download_expires_at = iso(report.download_expires_at)
        if report.outcome is Outcome.RUNNING:
            job.last_error = None
            self._schedule(job, self._running_delay(job, now))
            result.detail = f"still {report.status}"
        elif report.outcome is Outcome.COMPLETED:
            if job.completed_seen_at is None:
                job.completed_seen_at = iso(from_epoch(now))
            self._copy(job, report, result)
        else:
            state, reason = _FINAL_FOR[report.outcome]
            if report.outcome is Outcome.NOT_FOUND and report.message:
                reason = f"{reason} ({report.message})"
            self._finalize(job, state, reason)

    def _copy(self, job: Job, report: StatusReport, result: JobResult) -> None:
        now = self.p.clock()
        expires = report.download_expires_at
        if expires is not None and expires.timestamp() <= now:
            self._finalize(job, JobState.EXPIRED, f"Intercom's copy expired at {iso(expires)} before it was copied")
            return
        url = report.download_url or self.p.intercom.download_url_for(job.job_identifier)
        try:
            with self.p.intercom.download(url) as resp:
                length = announced_length(resp.headers.get("Content-Length"), self.p.copy_settings.max_bytes)
                copied = copy_to_s3(
                    self.p.s3,
                    resp.raw,
                    bucket=self.s.export_bucket,
                    prefix=self.s.export_prefix,
                    job_id=job.job_identifier,
                    expected_length=length,
                    settings=self.p.copy_settings,
                )
        except ForeignOrigin as exc:
            self._finalize(job, JobState.FAILED, str(exc))
            return
        except DownloadGone as exc:
            self._finalize(job, JobState.EXPIRED, f"Intercom no longer has the file: {exc}")
            return
        except Exception as exc:
            self._defer(job, result, exc, "copy")
            return
        job.s3_uri = copied.copy.s3_uri
        job.size_bytes = copied.copy.size_bytes
        job.sha256 = copied.copy.sha256
        job.content_type = copied.copy.content_type
        result.action, result.bytes_copied, result.copy_seconds = (
            "copied",
            copied.copy.size_bytes,
            copied.seconds,
        )
        log.info("job %s: copied %d bytes to %s", job.job_identifier, copied.copy.size_bytes, job.s3_uri)
        self._finalize(job, JobState.COMPLETED, None)

    def _defer(self, job: Job, result: JobResult, exc: Exception, step: str) -> None:
        """Keep the job as it is and check it again later; decide how much later from the error."""
        text = _describe(exc)
        job.last_error = f"{step}: {text}"
        result.action, result.detail = "retry", job.last_error
        if isinstance(exc, RateLimited):
            # Never a failure: wait for Intercom's window to reset (clamped by the client, and never past the
            # longest check delay), and stop starting more work this cycle.
            job.attempts = max(0, job.attempts - 1)
            latest = int(self.p.clock() + self.s.max_check_delay_seconds)
            job.next_check_at = min(math.ceil(exc.reset_at), latest)
            result.action = "deferred"
            self._stop(f"rate limited by Intercom until {iso(from_epoch(job.next_check_at))}")
            return
        if isinstance(exc, Unauthorized):
            self._stop("Intercom rejected the token (401)")
            log.error("job %s: %s", job.job_identifier, text)
        elif isinstance(exc, _EXPECTED_FAILURES):
            log.warning("job %s: %s failed, will retry: %s", job.job_identifier, step, text)
        else:  # a bug, not weather: keep the traceback
            log.warning("job %s: %s failed, will retry: %s", job.job_identifier, step, text, exc_info=exc)
        self._schedule(job, self.s.poll_interval_seconds)

    def _finalize(self, job: Job, state: JobState, reason: str | None) -> None:
        job.state = state
        job.outcome_reason = reason
        job.outcome_at = iso(from_epoch(self.p.clock()))
        job.last_error = None
        log.info("job %s: outcome %s%s", job.job_identifier, state.value, f" ({reason})" if reason else "")

    def _notify(self, job: Job, result: JobResult) -> None:
        note = notification_for(job)
        error = self._publish(job, note)
        if error is not None:
            # Not lost: the job stays due in its final state and the publish is retried next cycle.
            job.last_error = error
            self._schedule(job, self.s.poll_interval_seconds)
            result.action, result.detail = "retry", error
            return
        now = self.p.clock()
        job.notified_at = iso(from_epoch(now))
        job.ttl = int(now) + self.s.settled_ttl_days * 86400
        job.last_error = None
        result.event = note.event.value
        if result.action == "checked":
            result.action = "notified"

    def _publish(self, job: Job, note: Notification) -> str | None:
        """Publish; on failure log it and return the one-line error (the caller keeps the job due)."""
        try:
            self.p.notifier.publish(note)
        except Exception as exc:
            error = f"publish {note.event.value}: {_describe(exc)}"
            log.warning("job %s: %s; will retry next cycle", job.job_identifier, error)
            return error
        return None

    # -- early warnings and gauges -------------------------------------------------------------------------

    def _warning_due(self, job: Job, now: float) -> Event | None:
        """The warning this still-watching job has earned and not yet been sent, if any."""
        status = job.intercom_status
        if job.warned_expiring_at is None and status in _FINISHED_OK and job.s3_uri is None:
            expires = parse_iso(job.download_expires_at)
            # Already past expiry is not "expiring": the next answer from Intercom makes it export.expired.
            if expires is not None and 0 < expires.timestamp() - now < self.s.expiry_warning_seconds:
                return Event.EXPIRING
        if job.warned_stuck_at is None and (status is None or status in _RUNNING):
            tracked = parse_iso(job.tracked_at)
            if tracked is not None and now - tracked.timestamp() >= self.s.stuck_after_seconds:
                return Event.STUCK
        return None

    def _warn(self, job: Job, result: JobResult) -> None:
        now = self.p.clock()
        event = self._warning_due(job, now)
        if event is None:
            return
        note = warning_for(job, event, now)
        # Checkpoint what this cycle learnt before telling anyone: if our lease was taken over, LeaseLost stops
        # us here, and the worker that holds the job now decides about the warning (no duplicate).
        self.p.store.save(job, self.owner, release=False)
        error = self._publish(job, note)
        if error is not None:
            # Not lost: the warning is still due next cycle, and the job is checked again by then.
            retry_at = int(now + self.s.poll_interval_seconds)
            job.next_check_at = min(job.next_check_at or retry_at, retry_at)
            job.last_error = job.last_error or error
            result.detail = f"{result.detail}; {error}" if result.detail else error
            return
        stamp = iso(from_epoch(now))
        if event is Event.EXPIRING:
            job.warned_expiring_at = stamp
        else:
            job.warned_stuck_at = stamp
        result.warning = event.value
        if result.action == "checked":
            result.action = "warned"
        log.info("job %s: warned %s (%s)", job.job_identifier, event.value, note.body["reason"])

    def _measure(self, job: Job, result: JobResult) -> None:
        """Gauges for the cycle's metrics, from a job that is still watching after its check."""
        now = self.p.clock()
        status = job.intercom_status
        if status is None or status in _RUNNING:
            tracked = parse_iso(job.tracked_at)
            if tracked is not None:
                result.pending_seconds = max(0, int(now - tracked.timestamp()))
        elif status in _FINISHED_OK and job.s3_uri is None:
            expires = parse_iso(job.download_expires_at)
            if expires is not None:
                result.expires_in_seconds = max(0, int(expires.timestamp() - now))
            seen = parse_iso(job.completed_seen_at)
            if seen is not None:
                result.uncopied_seconds = max(0, int(now - seen.timestamp()))

    def _schedule(self, job: Job, delay: float) -> None:
        job.next_check_at = int(self.p.clock() + min(delay, self.s.max_check_delay_seconds))

    def _running_delay(self, job: Job, now: float) -> float:
        """Check young jobs every cycle; back off to a tenth of the job's age, capped (most finish in minutes)."""
        age = now - _epoch(job.tracked_at, now)
        return min(max(self.s.poll_interval_seconds, age / 10), self.s.max_check_delay_seconds)


def _epoch(value: str | None, default: float) -> float:
    if not value:
        return default
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return default


def _describe(exc: BaseException) -> str:
    return one_line(str(exc) or type(exc).__name__, 300)

"""What the scheduler's unit tests share (tests/unit/test_scheduler*.py): the Rig's days, one scheduler pass, queueing
windows straight into the FakeLedger, and settling a window's job as the cycle would."""

from __future__ import annotations

import calendar
from dataclasses import replace
from datetime import date, timedelta

from exportwatch.model import Job, JobState, from_epoch, iso
from exportwatch.results import WorkspaceResult
from exportwatch.schedule import Scheduler
from exportwatch.windows import Span, judge
from support.fakes import LedgerRig


def day(n: int) -> date:
    """Day n of January 2027 (the Rig's clock is 2027-01-15T08:00:00Z, so yesterday is the 14th)."""
    return date(2027, 1, 1) + timedelta(days=n - 1)


def first_second(d: date) -> int:
    return calendar.timegm(d.timetuple())


def last_second(d: date) -> int:
    return calendar.timegm((d + timedelta(days=1)).timetuple()) - 1


def schedule(rig: LedgerRig, owner: str = "me", *, all_due: bool = True) -> dict[str, WorkspaceResult]:
    """One scheduler pass; its results by workspace."""
    scheduler = Scheduler(rig.settings, rig.ledger, rig.repo, rig.sources, owner, lambda: rig.now)
    results = scheduler.run(all_due, lambda: None)
    by_name = {r.workspace: r for r in results}
    assert len(by_name) == len(results)
    return by_name


def queue(rig: LedgerRig, workspace: str, *spans: Span) -> None:
    rig.ledger.queue(workspace, list(spans), iso(from_epoch(rig.now)))


def settle(rig: LedgerRig, job_id: str, state: JobState, **fields: object) -> Job:
    """The cycle's work on a window job: its final state judged (windows.judge), notified, saved."""
    job = replace(rig.repo.jobs[job_id], state=state, notified_at=iso(from_epoch(rig.now)), **fields)  # type: ignore[arg-type]
    job = judge(job, rig.settings.window_max_attempts)
    rig.repo.jobs[job_id] = job
    return job


def lease_lost_before(rig: LedgerRig, operation: str, owner: str = "other-poller") -> None:
    """Another poller takes the workspace's lease just before the scheduler's next `operation` write."""

    def taken_over(write: str, workspace: str) -> None:
        if write == operation:
            rig.ledger.take_over(workspace, owner)

    rig.ledger.before_write = taken_over

"""What a poll cycle reports: one JobResult per job it handled, and the CycleSummary of the cycle.

The summary is `exportwatch poll --json`, the poller Lambda's return value and the source of the cycle's metrics
(observability.cycle_metrics). Action values and the JSON keys are contracts: scripts and metrics read them.
This module depends on nothing else in the package, so poll.py and observability.py both import it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    """What the cycle did with a job: the `action` of its result (a contract in `poll --json` and the metrics)."""

    CHECKED = "checked"  # asked Intercom; nothing else happened
    COPIED = "copied"  # the export was copied to S3 (and, unless the publish failed, notified)
    NOTIFIED = "notified"  # the outcome notification was published
    WARNED = "warned"  # an early warning was published
    RETRY = "retry"  # a step failed; the job stays due and is retried
    DEFERRED = "deferred"  # rate limited by Intercom: checked again after the window resets
    SKIPPED = "skipped"  # another poller holds the job, it is no longer due, or our lease was taken over
    INVALID = "invalid"  # the row's id is not a valid Intercom job id: taken out of the due index
    ERROR = "error"  # an unexpected error (a bug); the job stays due


class StopReason(StrEnum):
    """Why a cycle stopped taking new jobs early (CycleSummary.stopped says it in words)."""

    RATE_LIMITED = "rate_limited"  # Intercom's rate-limit window is spent
    UNAUTHORIZED = "unauthorized"  # Intercom rejected the token (401)
    TIME_BUDGET = "time_budget"  # the Lambda's time is nearly up


class WorkspaceAction(StrEnum):
    """What the scheduler did for a workspace this cycle (`workspaces` in `poll --json`)."""

    STARTED = "started"  # created the export for its oldest queued window, and tracks it
    WAITING = "waiting"  # an export is active (ours, or one Intercom's 429 told us about): the window waits
    SETTLED = "settled"  # the active window's export finished: the window is archived, empty, failed or queued again
    IDLE = "idle"  # nothing queued
    SKIPPED = "skipped"  # another poller holds the workspace, or it is no longer due
    RETRY = "retry"  # starting a window failed (an HTTP or AWS error, a refused token): tried again next cycle
    ERROR = "error"  # an unexpected error (a bug): tried again next cycle


@dataclass(frozen=True)
class WorkspaceResult:
    workspace: str
    action: WorkspaceAction
    window: str | None = None  # the window started or settled, as "2026-11-03" or "2026-11-01..2026-11-07"
    job_identifier: str | None = None  # the export created for it
    queued: int = 0  # windows the daily schedule queued this cycle
    detail: str = ""
    settled: str | None = None  # what became of the window whose export finished: archived, empty, queued, failed

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "action": self.action.value}


@dataclass(frozen=True)
class JobResult:
    job_identifier: str
    action: Action
    state: str = ""
    workspace: str = ""  # the job's workspace ("" when the job was not read: skipped, invalid)
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "action", Action(self.action))  # "retry" and Action.RETRY are the same result

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "action": self.action.value}


@dataclass
class CycleSummary:
    owner: str
    due: int = 0
    results: list[JobResult] = field(default_factory=list)
    left_for_next_cycle: int = 0
    stopped: str | None = None  # why the cycle stopped taking new work early, if it did (for people)
    stop_reason: StopReason | None = None  # the same, for code (the CLI's exit status)
    workspaces: list[WorkspaceResult] = field(default_factory=list)  # the scheduler's work, one per workspace looked at
    halted: dict[str, str] = field(default_factory=dict)  # workspace -> why its jobs were left for the next cycle

    @property
    def events(self) -> Counter[str]:
        """Notifications published this cycle, outcomes and warnings, by event name."""
        return Counter(e for r in self.results for e in (r.event, r.warning) if e)

    @property
    def actions(self) -> Counter[Action]:
        return Counter(r.action for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "due": self.due,
            "processed": len(self.results),
            "left_for_next_cycle": self.left_for_next_cycle,
            "stopped": self.stopped,
            "stop_reason": None if self.stop_reason is None else self.stop_reason.value,
            "actions": {action.value: n for action, n in self.actions.items()},
            "events": dict(self.events),
            "bytes_copied": sum(r.bytes_copied for r in self.results),
            "jobs": [r.to_dict() for r in self.results],
            "workspaces": [w.to_dict() for w in self.workspaces],
            "halted_workspaces": dict(self.halted),
        }

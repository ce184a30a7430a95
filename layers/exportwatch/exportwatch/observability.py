"""Operations: the job id and its workspace on every log line about a job, and each cycle's CloudWatch metrics.

Logs. The poll cycle works on jobs in a thread pool. While a worker handles a job, `job_context` holds the
job's id (and, once the job is read, its workspace) in context variables of that thread; `JobContextFilter`,
installed on the log handler (the Lambda's Powertools handler, see functions/poller/app.py), puts them on every
record as `job_identifier` and `workspace`. So a line
logged anywhere during that job (poll, store, archive, intercom) names the job, and lines of two jobs
handled at once never get each other's id: nothing is shared between threads.

Metrics (EMF via Powertools Metrics, namespace `exportwatch`, dimension `service`), one set per cycle:

| metric | unit | what |
|---|---|---|
| `JobsDue`, `JobsChecked`, `JobsLeftForNextCycle`, `JobErrors` | Count | the cycle's work |
| `InvalidJobRows` | Count | rows whose id is not a valid Intercom job id, taken out of the due index (each once) |
| `Export_<event>` (e.g. `Export_completed`, `Export_stuck`) | Count | notifications published, per event |
| `BytesCopied` | Bytes | copied to S3 this cycle |
| `CopySeconds` | Seconds | one value per copy |
| `OldestPendingAge` | Seconds | the oldest job still pending/in progress, of those checked this cycle |
| `MostUrgentTimeLeft` | Seconds | time left before Intercom deletes the most urgent completed-but-uncopied export |
| `OldestUncopiedAge` | Seconds | how long the oldest completed-but-uncopied export has been waiting for its copy |
| `WindowsStarted`, `WindowsWaiting` | Count | exports created for windows; windows turned away (429: another export) |
| `WindowsSettled`, `WorkspaceErrors` | Count | windows whose export finished; workspaces whose scheduler pass failed |
| `WorkspacesHalted` | Count | workspaces whose jobs waited this cycle (rate limited, token refused) |

Per workspace, the same counts travel as EMF metadata (`workspaces`: name -> {events, windows, halted}), not as a
CloudWatch dimension: a dimension per workspace would make every metric a custom metric per workspace (about
$0.30 a month each, even for a workspace that is idle most of the month). Logs Insights reads the metadata.

The last three are sent only when the cycle checked such a job (no job, no data point), so an alarm on them
treats missing data as fine; the poller not running is what the Invocations alarm is for.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from exportwatch.results import Action, CycleSummary, WorkspaceAction

JOB_KEY = "job_identifier"
WORKSPACE_KEY = "workspace"
_current_job: ContextVar[str | None] = ContextVar("exportwatch_job", default=None)
_current_workspace: ContextVar[str | None] = ContextVar("exportwatch_workspace", default=None)


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Everything logged in this thread inside the block is about `job_id`."""
    token = _current_job.set(job_id)
    workspace = _current_workspace.set(None)
    try:
        yield
    finally:
        _current_workspace.reset(workspace)
        _current_job.reset(token)


def in_workspace(name: str) -> None:
    """The job handled in this thread belongs to `name` (known once it is read): its log lines say so."""
    _current_workspace.set(name)


def current_job() -> str | None:
    return _current_job.get()


class JobContextFilter(logging.Filter):
    """Adds `job_identifier` and `workspace` to each record logged while a job is being handled (explicit ones win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, var in ((JOB_KEY, _current_job), (WORKSPACE_KEY, _current_workspace)):
            value = var.get()
            if value is not None and not hasattr(record, key):
                setattr(record, key, value)
        return True


def install_job_context(handler: logging.Handler) -> None:
    """Put the job id on every record `handler` emits (idempotent)."""
    if not any(isinstance(f, JobContextFilter) for f in handler.filters):
        handler.addFilter(JobContextFilter())


def cycle_metrics(summary: CycleSummary) -> list[tuple[str, str, float]]:
    """(name, unit, value) for every data point of one cycle; a name may repeat (CopySeconds)."""
    points: list[tuple[str, str, float]] = [
        ("JobsDue", "Count", summary.due),
        ("JobsChecked", "Count", len(summary.results)),
        ("JobsLeftForNextCycle", "Count", summary.left_for_next_cycle),
    ]
    for event, count in sorted(summary.events.items()):
        points.append((event.replace("export.", "Export_"), "Count", count))
    copied = [r for r in summary.results if r.bytes_copied]
    points.append(("BytesCopied", "Bytes", sum(r.bytes_copied for r in copied)))
    points.extend(("CopySeconds", "Seconds", r.copy_seconds) for r in copied)
    points.append(("JobErrors", "Count", summary.actions.get(Action.ERROR, 0)))
    points.append(("InvalidJobRows", "Count", summary.actions.get(Action.INVALID, 0)))
    pending = [r.pending_seconds for r in summary.results if r.pending_seconds is not None]
    if pending:
        points.append(("OldestPendingAge", "Seconds", max(pending)))
    time_left = [r.expires_in_seconds for r in summary.results if r.expires_in_seconds is not None]
    if time_left:
        points.append(("MostUrgentTimeLeft", "Seconds", min(time_left)))
    uncopied = [r.uncopied_seconds for r in summary.results if r.uncopied_seconds is not None]
    if uncopied:
        points.append(("OldestUncopiedAge", "Seconds", max(uncopied)))
    if summary.workspaces or summary.halted:
        scheduled = Counter(w.action for w in summary.workspaces)
        points.append(("WindowsStarted", "Count", scheduled.get(WorkspaceAction.STARTED, 0)))
        points.append(("WindowsWaiting", "Count", scheduled.get(WorkspaceAction.WAITING, 0)))
        points.append(("WindowsSettled", "Count", sum(1 for w in summary.workspaces if w.settled is not None)))
        points.append(("WorkspaceErrors", "Count", scheduled.get(WorkspaceAction.ERROR, 0)))
        points.append(("WorkspacesHalted", "Count", len(summary.halted)))
    return points


def workspace_metadata(summary: CycleSummary) -> dict[str, dict[str, Any]]:
    """Per workspace: notifications published by event, the scheduler's action, and why its jobs waited."""
    found: dict[str, dict[str, Any]] = {}
    for r in summary.results:
        events = found.setdefault(r.workspace or "default", {}).setdefault("events", {})
        for event in (r.event, r.warning):
            if event:
                events[event] = events.get(event, 0) + 1
    for w in summary.workspaces:
        found.setdefault(w.workspace, {})["scheduler"] = w.action.value
    for name, why in summary.halted.items():
        found.setdefault(name, {})["halted"] = why
    return found


def record_cycle(metrics: Any, logger: Any, summary: CycleSummary) -> None:
    """Add the cycle's metrics to a Powertools Metrics instance and log one summary line."""
    from aws_lambda_powertools.metrics import MetricUnit

    for name, unit, value in cycle_metrics(summary):
        metrics.add_metric(name=name, unit=MetricUnit(unit), value=value)
    per_workspace = workspace_metadata(summary)
    if per_workspace:
        metrics.add_metadata(key="workspaces", value=per_workspace)
    logger.info(
        "poll cycle finished",
        extra={k: v for k, v in summary.to_dict().items() if k != "jobs"},
    )

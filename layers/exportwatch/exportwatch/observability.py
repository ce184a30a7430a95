"""Operations: the job id on every log line about a job, and each cycle's CloudWatch metrics.

Logs. The poll cycle works on jobs in a thread pool. While a worker handles a job, `job_context` holds the
job's id in a context variable of that thread; `JobContextFilter`, installed on the log handler (the Lambda's
Powertools handler, see functions/poller/app.py), puts it on every record as `job_identifier`. So a line
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

The last three are sent only when the cycle checked such a job (no job, no data point), so an alarm on them
treats missing data as fine; the poller not running is what the Invocations alarm is for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from exportwatch.results import Action, CycleSummary

JOB_KEY = "job_identifier"
_current_job: ContextVar[str | None] = ContextVar("exportwatch_job", default=None)


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Everything logged in this thread inside the block is about `job_id`."""
    token = _current_job.set(job_id)
    try:
        yield
    finally:
        _current_job.reset(token)


def current_job() -> str | None:
    return _current_job.get()


class JobContextFilter(logging.Filter):
    """Adds `job_identifier` to each record logged while a job is being handled (an explicit one wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        job_id = _current_job.get()
        if job_id is not None and not hasattr(record, JOB_KEY):
            setattr(record, JOB_KEY, job_id)
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
    return points


def record_cycle(metrics: Any, logger: Any, summary: CycleSummary) -> None:
    """Add the cycle's metrics to a Powertools Metrics instance and log one summary line."""
    from aws_lambda_powertools.metrics import MetricUnit

    for name, unit, value in cycle_metrics(summary):
        metrics.add_metric(name=name, unit=MetricUnit(unit), value=value)
    logger.info(
        "poll cycle finished",
        extra={k: v for k, v in summary.to_dict().items() if k != "jobs"},
    )

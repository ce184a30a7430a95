"""Turns a cycle summary into CloudWatch metrics (EMF via Powertools) and one summary log line."""

from __future__ import annotations

from typing import Any

from exportwatch.poll import CycleSummary


def record_cycle(metrics: Any, logger: Any, summary: CycleSummary) -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    metrics.add_metric(name="JobsDue", unit=MetricUnit.Count, value=summary.due)
    metrics.add_metric(name="JobsChecked", unit=MetricUnit.Count, value=len(summary.results))
    metrics.add_metric(name="JobsLeftForNextCycle", unit=MetricUnit.Count, value=summary.left_for_next_cycle)
    for event, count in summary.events.items():
        metrics.add_metric(name=event.replace("export.", "Export_"), unit=MetricUnit.Count, value=count)
    copied = [r for r in summary.results if r.bytes_copied]
    metrics.add_metric(name="BytesCopied", unit=MetricUnit.Bytes, value=sum(r.bytes_copied for r in copied))
    for r in copied:
        metrics.add_metric(name="CopySeconds", unit=MetricUnit.Seconds, value=r.copy_seconds)
    metrics.add_metric(name="JobErrors", unit=MetricUnit.Count, value=summary.actions.get("error", 0))
    logger.info(
        "poll cycle finished",
        extra={k: v for k, v in summary.to_dict().items() if k != "jobs"},
    )

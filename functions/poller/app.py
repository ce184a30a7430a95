"""Scheduled poller: parse the event, build collaborators from the environment, run one cycle, return.

All logic lives in the exportwatch layer; `exportwatch poll` runs the same run_cycle().
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from exportwatch import observability
from exportwatch.config import Settings
from exportwatch.events import InvalidEvent, PollRequest
from exportwatch.poll import Poller, run_cycle
from exportwatch.wiring import build_poller

# Logs: Powertools names its Python logger after the service, so with service "exportwatch" it IS the package's
# top logger, and every package logger (exportwatch.poll, exportwatch.intercom, ...) propagates its records to
# this handler: one JSON format, the Lambda context (function_request_id) on every line. (Powertools'
# copy_config_to_registered_loggers would copy nothing here: it always skips the source logger's own name.)
# The job filter adds `job_identifier` to each line logged while a worker thread handles a job.
logger = Logger(service="exportwatch")
observability.install_job_context(logger.registered_handler)
metrics = Metrics(namespace="exportwatch", service="exportwatch")

# Leave this much of the Lambda timeout unused: enough to finish a status check and save the job.
RESERVE_SECONDS = 60.0

_poller: Poller | None = None  # built once per container: pooled HTTP and AWS connections, cached token


def _get_poller() -> Poller:
    global _poller
    if _poller is None:
        _poller = build_poller(Settings.from_env())
    return _poller


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    try:
        request = PollRequest.from_event(event)
    except InvalidEvent as exc:
        # Rejected, not raised: raising would make Lambda retry the same bad event.
        logger.error("rejected invocation event", extra={"reason": str(exc)})
        return {"rejected": str(exc)}
    summary = run_cycle(
        _get_poller(),
        all_jobs=request.all_jobs,
        time_left=lambda: context.get_remaining_time_in_millis() / 1000,
        reserve_seconds=RESERVE_SECONDS,
    )
    observability.record_cycle(metrics, logger, summary)
    return summary.to_dict()

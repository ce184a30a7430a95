"""Slack notifier: parse the SNS event, build the webhook from the environment, post, return.

Subscribed to the notification topic (only when the stack has a SlackWebhookSecretId). A post Slack does not
take raises, so Lambda retries the async invocation and then hands the event to the dead-letter queue.
All logic lives in the exportwatch layer (exportwatch.slack, exportwatch.render, exportwatch.wiring).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from exportwatch.config import ConfigError, SlackSettings
from exportwatch.events import InvalidEvent, parse_sns_event
from exportwatch.slack import SlackError, SlackWebhook, handle_sns_event
from exportwatch.wiring import build_slack_webhook

# The Powertools logger is the Python logger "exportwatch" (named after the service): the package's loggers
# (exportwatch.slack, ...) propagate into its handler, so their lines share its JSON format and Lambda context.
logger = Logger(service="exportwatch")

_webhook: SlackWebhook | None = None  # built once per container: pooled connection, cached webhook URL


def _get_webhook() -> SlackWebhook:
    global _webhook
    if _webhook is None:
        _webhook = build_slack_webhook(SlackSettings.from_env())  # the URL via Powertools Parameters
    return _webhook


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    try:
        notifications = parse_sns_event(event)
    except InvalidEvent as exc:
        # Rejected, not raised: a hand-made event is not a notification, and raising would only retry it twice
        # and fill the dead-letter queue (and its alarm) with it. One line says why.
        logger.error("rejected invocation event", extra={"reason": str(exc)})
        return {"rejected": str(exc)}
    try:
        posted = handle_sns_event(
            notifications,
            _get_webhook(),
            time_left=lambda: context.get_remaining_time_in_millis() / 1000,
        )
    except (SlackError, ConfigError, ValueError) as exc:
        # Raised on purpose: Lambda retries, then the event goes to the dead-letter queue. The text is safe
        # to log (it never holds the webhook URL).
        logger.error("not delivered to Slack; raising so the event is retried", extra={"error": str(exc)})
        raise
    for message in posted:
        logger.info("posted to Slack", extra=message.to_dict())
    return {"posted": [message.to_dict() for message in posted]}

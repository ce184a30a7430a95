"""Slack notifier: parse the SNS event, fetch the webhook URL, render Block Kit, post, return.

Subscribed to the notification topic (only when the stack has a SlackWebhookSecretId). A post Slack does not
take raises, so Lambda retries the async invocation and then hands the event to the dead-letter queue.
All logic lives in the exportwatch layer (exportwatch.slack, exportwatch.render).
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from exportwatch.config import ConfigError
from exportwatch.events import sns_event_problem
from exportwatch.slack import (
    WEBHOOK_SECRET_VAR,
    SlackError,
    SlackWebhook,
    handle_sns_event,
    webhook_url_provider,
)

# The Powertools logger is the Python logger "exportwatch" (named after the service): the package's loggers
# (exportwatch.slack, ...) propagate into its handler, so their lines share its JSON format and Lambda context.
logger = Logger(service="exportwatch")

_webhook: SlackWebhook | None = None  # built once per container: pooled connection, cached webhook URL


def _get_webhook() -> SlackWebhook:
    global _webhook
    if _webhook is None:
        secret_id = os.environ.get(WEBHOOK_SECRET_VAR, "").strip()
        if not secret_id:
            raise ConfigError(WEBHOOK_SECRET_VAR, "not set (the Secrets Manager id of the Slack webhook URL)")
        client = boto3.client("secretsmanager", config=Config(connect_timeout=5, read_timeout=10))
        _webhook = SlackWebhook(webhook_url_provider(secret_id, client))  # URL via Powertools Parameters
    return _webhook


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    if (why := sns_event_problem(event)) is not None:
        # Rejected, not raised: a hand-made event is not a notification, and raising would only retry it twice
        # and fill the dead-letter queue (and its alarm) with it. One line says why.
        logger.error("rejected invocation event", extra={"reason": why})
        return {"rejected": why}
    try:
        posted = handle_sns_event(
            event,
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

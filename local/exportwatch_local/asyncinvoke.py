"""A local stand-in for Lambda's asynchronous invocation, for tests and the demo (no AWS, no Docker).

SNS invokes a subscribed function asynchronously. When the function raises, Lambda runs it again up to
MaximumRetryAttempts times (about one and then two minutes apart), and then sends an invocation record to the
OnFailure destination: here, the SQS dead-letter queue from template.yaml. This module does the same in-process
(without the waits between attempts) and writes the record in the format AWS documents for destinations
(docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html), so what lands in the queue
locally is what an operator finds in the real one.
"""

from __future__ import annotations

import json
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from exportwatch.model import iso, utcnow

__all__ = ["AsyncOutcome", "invoke_async"]


@dataclass
class AsyncOutcome:
    attempts: int
    result: Any = None  # the handler's return value when an attempt succeeded
    errors: list[BaseException] = field(default_factory=list)
    record: dict[str, Any] | None = None  # what was sent to the on-failure destination

    @property
    def succeeded(self) -> bool:
        return self.record is None


def _error_payload(exc: BaseException) -> dict[str, Any]:
    """What Lambda's Python runtime reports for an unhandled exception."""
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": "",
        "stackTrace": [line for line in traceback.format_tb(exc.__traceback__)],
    }


def invoke_async(
    handler: Callable[[Any, Any], Any],
    event: Any,
    context: Any,
    *,
    maximum_retry_attempts: int,
    on_failure: Callable[[str], None],
    function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:exportwatch-SlackNotifierFunction",
) -> AsyncOutcome:
    """Run `handler` as Lambda runs an async invocation; `on_failure` receives the destination record (JSON)."""
    outcome = AsyncOutcome(attempts=0)
    for _ in range(1 + maximum_retry_attempts):
        outcome.attempts += 1
        try:
            outcome.result = handler(event, context)
        except Exception as exc:
            outcome.errors.append(exc)
            continue
        return outcome
    record = {
        "version": "1.0",
        "timestamp": iso(utcnow()).replace("Z", ".000Z"),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"{function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": outcome.attempts,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": _error_payload(outcome.errors[-1]),
    }
    outcome.record = record
    on_failure(json.dumps(record))
    return outcome


# --------------------------------------------------------------------------------------------- from the template

SLACK_FUNCTION_ID = "SlackNotifierFunction"
SLACK_DLQ_ID = "SlackNotifierDeadLetterQueue"


def retry_attempts(template: dict[str, Any], function_id: str = SLACK_FUNCTION_ID) -> int:
    """EventInvokeConfig.MaximumRetryAttempts of a function in template.yaml."""
    props = template["Resources"][function_id]["Properties"]
    return int(props["EventInvokeConfig"]["MaximumRetryAttempts"])


def create_dead_letter_queue(
    endpoint_url: str, template: dict[str, Any], name: str, *, queue_id: str = SLACK_DLQ_ID
) -> str:
    """The dead-letter queue, created in moto from its own definition in template.yaml; returns its URL."""
    from exportwatch_local.localstack import aws_client

    props = template["Resources"][queue_id].get("Properties") or {}
    supported = ("MessageRetentionPeriod", "SqsManagedSseEnabled", "VisibilityTimeout", "KmsMasterKeyId")
    unknown = set(props) - set(supported)
    if unknown:
        raise ValueError(f"{queue_id} properties {sorted(unknown)} are not supported locally; extend this function")
    attributes = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in props.items()}
    return str(aws_client("sqs", endpoint_url).create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])

"""Sample SNS events for the Slack function, captured from a real SNS delivery (moto's SNS -> SQS).

SNS hands a subscribed Lambda function the same envelope it delivers to an SQS queue with raw message
delivery off; in the Lambda event two keys are spelled differently (SigningCertURL -> SigningCertUrl,
UnsubscribeURL -> UnsubscribeUrl), an absent Subject is null, and the envelope sits in Records[0].Sns.
`lambda_event` makes exactly that change and nothing else.

Regenerate events/sns_*.json (what `sam local invoke SlackNotifierFunction -e events/sns_failed.json` takes):

    python -m exportwatch_local.snsevents [--out events]
"""

from __future__ import annotations

import argparse
import json
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

__all__ = ["EVENT_FILES", "capture", "lambda_event", "main", "write_events"]

# File name (events/<name>.json) -> the sample it carries (exportwatch_local.samples).
EVENT_FILES: Final[dict[str, str]] = {
    "sns_completed": "completed",
    "sns_failed": "failed",
    "sns_not_found": "not_found",
    "sns_no_data": "no_data",
    "sns_canceled": "canceled",
    "sns_expired": "expired",
    "sns_foreign": "foreign_text",
}

_LAMBDA_SPELLING: Final = {"SigningCertURL": "SigningCertUrl", "UnsubscribeURL": "UnsubscribeUrl"}
# Key order of the Sns object in AWS's documented sample event.
_SNS_KEYS: Final = (
    "Type",
    "MessageId",
    "TopicArn",
    "Subject",
    "Message",
    "Timestamp",
    "SignatureVersion",
    "Signature",
    "SigningCertUrl",
    "UnsubscribeUrl",
    "MessageAttributes",
)


def lambda_event(envelope: Mapping[str, Any], *, subscription_arn: str) -> dict[str, Any]:
    """The Lambda SNS event for one envelope as SNS delivered it to SQS (raw delivery off)."""
    sns = {_LAMBDA_SPELLING.get(k, k): v for k, v in envelope.items()}
    sns.setdefault("Subject", None)
    sns.setdefault("MessageAttributes", {})
    ordered = {k: sns.pop(k) for k in _SNS_KEYS if k in sns} | sns
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": ordered,
            }
        ]
    }


def capture(endpoint_url: str, topic_arn: str, names: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Publish samples to `topic_arn` on the moto server and return their Lambda events, by sample name.

    exportwatch's samples are published by the real Notifier (MessageStructure=json: the `sqs` text is what
    SQS receives, as the `default` text is what Lambda receives); foreign samples by a plain Publish, as another
    publisher on the topic would.
    """
    from exportwatch.notifier import Notifier, notification_for
    from exportwatch_local.localstack import aws_client, receive_notifications, subscribe_queue
    from exportwatch_local.samples import FOREIGN_MESSAGES, SAMPLE_JOBS

    wanted = list(names) if names is not None else [*SAMPLE_JOBS, *FOREIGN_MESSAGES]
    region = topic_arn.split(":")[3]
    sns = aws_client("sns", endpoint_url, region)
    queue_url = subscribe_queue(endpoint_url, topic_arn, region=region)
    sqs = aws_client("sqs", endpoint_url, region)
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subscription_arn = next(
        s["SubscriptionArn"]
        for s in sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
        if s["Endpoint"] == queue_arn
    )
    notifier = Notifier(sns, topic_arn)
    by_message_id: dict[str, str] = {}
    for name in wanted:
        if name in SAMPLE_JOBS:
            message_id = notifier.publish(notification_for(SAMPLE_JOBS[name]))
        else:
            subject, message = FOREIGN_MESSAGES[name]
            extra = {"Subject": subject} if subject else {}
            message_id = str(sns.publish(TopicArn=topic_arn, Message=message, **extra)["MessageId"])
        by_message_id[message_id] = name
    received = receive_notifications(endpoint_url, queue_url, expect=len(wanted), timeout=10, region=region)
    sqs.delete_queue(QueueUrl=queue_url)
    sns.unsubscribe(SubscriptionArn=subscription_arn)
    events = {}
    for note in received:
        name = by_message_id[note.envelope["MessageId"]]
        events[name] = lambda_event(note.envelope, subscription_arn=subscription_arn)
    missing = set(wanted) - set(events)
    if missing:
        raise RuntimeError(f"SNS did not deliver {sorted(missing)} to the capture queue")
    return events


def dumps(event: Mapping[str, Any]) -> str:
    return json.dumps(event, indent=2, ensure_ascii=False) + "\n"


def write_events(out: Path, endpoint_url: str, topic_arn: str) -> list[Path]:
    events = capture(endpoint_url, topic_arn, list(EVENT_FILES.values()))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, sample in EVENT_FILES.items():
        path = out / f"{file_name}.json"
        path.write_text(dumps(events[sample]), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    from exportwatch_local.localstack import MotoServer, create_resources

    parser = argparse.ArgumentParser(
        prog="python -m exportwatch_local.snsevents", description="Capture sample SNS events for the Slack function."
    )
    parser.add_argument("--out", default="events", help="directory for the sns_*.json files (default: events)")
    args = parser.parse_args(argv)
    with MotoServer() as moto:
        stack = create_resources(moto.endpoint_url, token=secrets.token_urlsafe(8))
        for path in write_events(Path(args.out), moto.endpoint_url, stack.topic_arn):
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What a settled job must look like: its table item, its one notification, its contract (the poll-outcome tests
in tests/integration and the fault harness)."""

from __future__ import annotations

import re
import time
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from exportwatch.poll import CycleSummary
from exportwatch_local.localstack import LocalStack, ReceivedNotification, aws_client, receive_notifications
from support.readback import drain

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


BASE_KEYS = {"event", "job_identifier", "intercom_status", "occurred_at"}


_deser = TypeDeserializer()


def item(stack: LocalStack, job_id: str) -> dict[str, Any]:
    """The job's raw table item, deserialized (numbers are Decimal)."""
    ddb = aws_client("dynamodb", stack.endpoint_url)
    resp = ddb.get_item(TableName=stack.table_name, Key={"job_identifier": {"S": job_id}}, ConsistentRead=True)
    return {k: _deser.deserialize(v) for k, v in resp["Item"].items()}


def due_index(stack: LocalStack) -> list[str]:
    """What the sparse due index holds right now (the Query an idle cycle pays for)."""
    ddb = aws_client("dynamodb", stack.endpoint_url)
    resp = ddb.query(
        TableName=stack.table_name,
        IndexName="due-index",
        KeyConditionExpression="due_shard = :d",
        ExpressionAttributeValues={":d": {"S": "due"}},
    )
    return [i["job_identifier"]["S"] for i in resp["Items"]]


def one_note(stack: LocalStack, queue_url: str) -> ReceivedNotification:
    notes = receive_notifications(stack.endpoint_url, queue_url, expect=1, timeout=5)
    notes += drain(stack, queue_url)
    assert len(notes) == 1, [n.body for n in notes]
    return notes[0]


def result_for(summary: CycleSummary, job_id: str) -> Any:
    matches = [r for r in summary.results if r.job_identifier == job_id]
    assert len(matches) == 1, summary.to_dict()
    return matches[0]


def assert_contract(note: ReceivedNotification, event: str, job_id: str, intercom_status: str) -> dict[str, Any]:
    body = note.body
    assert isinstance(body, dict), note.message
    assert body.keys() >= BASE_KEYS
    assert body["event"] == event
    assert body["job_identifier"] == job_id
    assert body["intercom_status"] == intercom_status
    assert ISO_Z.match(body["occurred_at"]), body["occurred_at"]
    assert note.attributes == {"event": event, "job_identifier": job_id, "workspace": "default"}
    subject = note.subject
    assert subject is not None and subject.startswith("exportwatch: export ") and job_id in subject
    assert subject.isascii() and "\n" not in subject and len(subject) <= 100
    if event == "export.completed":
        assert "reason" not in body
    else:
        assert isinstance(body.get("reason"), str) and body["reason"].strip()
        assert "s3_uri" not in body
    return body


def assert_settled(stack: LocalStack, job_id: str, state: str) -> dict[str, Any]:
    it = item(stack, job_id)
    assert it["state"] == state
    assert "due_shard" not in it
    assert "lease_owner" not in it and "lease_until" not in it
    assert ISO_Z.match(it["notified_at"])
    # TTL: settled_ttl_days (30) from now, as epoch seconds.
    assert abs(int(it["ttl"]) - (time.time() + 30 * 86400)) < 120
    assert job_id not in due_index(stack)
    return it

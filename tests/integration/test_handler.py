"""The poller Lambda's handler (functions/poller/app.py), invoked as Lambda would, against moto and the emulator."""

from __future__ import annotations

import json
import time
from types import ModuleType
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from exportwatch.model import Job, iso, utcnow
from exportwatch_local.emulator import IntercomEmulator
from exportwatch_local.localstack import LocalStack, aws_client, receive_notifications
from support.lambda_handler import FUNCTION_ARN, FakeContext, emf_blobs, event, json_lines
from support.paths import EVENTS
from support.tracking import track


def table_items(stack: LocalStack) -> list[dict[str, Any]]:
    ddb = aws_client("dynamodb", stack.endpoint_url)
    deser = TypeDeserializer()
    items = ddb.scan(TableName=stack.table_name, ConsistentRead=True)["Items"]
    return sorted(({k: deser.deserialize(v) for k, v in i.items()} for i in items), key=lambda i: i["job_identifier"])


def test_scheduled_invocation_runs_one_cycle(
    app: ModuleType,
    emulator: IntercomEmulator,
    stack: LocalStack,
    subscriber: str,
    token: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    job_id = emulator.add_job("completed", steps=["completed"])
    track(app._get_poller(), job_id)
    context = FakeContext()

    result = app.lambda_handler(event("poller_schedule.json"), context)

    assert result["due"] == 1 and result["processed"] == 1 and result["left_for_next_cycle"] == 0
    assert result["stopped"] is None
    assert result["events"] == {"export.completed": 1} and result["actions"] == {"copied": 1}
    [job] = result["jobs"]
    assert job["job_identifier"] == job_id and job["state"] == "completed" and job["bytes_copied"] > 0
    json.dumps(result)  # Lambda serialises the return value
    [note] = receive_notifications(stack.endpoint_url, subscriber, expect=1, timeout=5)
    assert note.body["event"] == "export.completed" and note.body["job_identifier"] == job_id

    out, err = capfd.readouterr()
    assert token not in out and token not in err
    lines = json_lines(out)
    logs = [line for line in lines if "level" in line and "message" in line]
    about_job = [line for line in logs if job_id in line["message"]]
    assert about_job, out
    for line in about_job:  # Powertools' structured lines, with the Lambda context injected
        assert line["service"] == "exportwatch"
        assert line["function_request_id"] == context.aws_request_id
        assert line["function_arn"] == FUNCTION_ARN
        assert line["job_identifier"] == job_id  # a field, not just in the text
    finished = [line for line in logs if line["message"] == "poll cycle finished"]
    assert len(finished) == 1 and finished[0]["due"] == 1
    [blob] = emf_blobs(lines)
    [directive] = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "exportwatch"
    names = {m["Name"] for m in directive["Metrics"]}
    assert {"JobsDue", "JobsChecked", "BytesCopied", "Export_completed", "JobErrors"} <= names
    assert blob["JobsDue"] == [1] and blob["Export_completed"] == [1] and blob["BytesCopied"] == [job["bytes_copied"]]
    assert blob["service"] == "exportwatch"


def test_poll_all_invocation_ignores_back_off(
    app: ModuleType, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    job_id = emulator.add_job("completed", steps=["completed"])
    later = int(time.time()) + 3600  # backed off: not due for an hour
    assert app._get_poller().store.track(Job(job_identifier=job_id, tracked_at=iso(utcnow()), next_check_at=later))

    scheduled = app.lambda_handler(event("poller_schedule.json"), FakeContext())
    assert (scheduled["due"], scheduled["processed"]) == (0, 0)
    assert emulator.requests == []

    forced = app.lambda_handler(event("poller_poll_all.json"), FakeContext())
    assert (forced["due"], forced["processed"], forced["events"]) == (1, 1, {"export.completed": 1})
    assert len(receive_notifications(stack.endpoint_url, subscriber, expect=1, timeout=5)) == 1


MALFORMED_EVENTS: list[Any] = [
    [],
    [{"all": True}],
    {"all": "yes"},
    {"all": "true"},
    {"all": 1},
    {"all": None},
    {"all": [True]},
    {"all": {"value": True}},
    "poll",
    12345,
    True,
    1.5,
]

# What may invoke the poller besides the schedule's own input: all run a normal (due-jobs) cycle.
EXTRA_KEY_EVENTS: list[Any] = [
    None,  # `aws lambda invoke` without a payload
    {},
    # An EventBridge rule's "Scheduled Event" (if someone wires one instead of the Scheduler).
    {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-08T09:35:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/exportwatch"],
        "detail": {},
    },
    # The Scheduler's input with keys a later template version might add.
    {**json.loads((EVENTS / "poller_schedule.json").read_text()), "note": {"nested": [1, 2]}, "all": False},
]


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # a rejected event records none
def test_malformed_events_are_rejected_without_side_effects(
    app: ModuleType,
    emulator: IntercomEmulator,
    stack: LocalStack,
    subscriber: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    track(app._get_poller(), emulator.add_job("completed", steps=["completed"]))
    before = table_items(stack)

    for bad in MALFORMED_EVENTS:
        result = app.lambda_handler(bad, FakeContext())  # returns: raising would make Lambda retry it

        assert set(result) == {"rejected"} and isinstance(result["rejected"], str) and result["rejected"], bad
        out, _ = capfd.readouterr()
        rejected = [line for line in json_lines(out) if line.get("message") == "rejected invocation event"]
        assert len(rejected) == 1 and rejected[0]["level"] == "ERROR", (bad, out)
        assert rejected[0]["reason"] == result["rejected"]

    assert table_items(stack) == before
    assert emulator.requests == []
    assert receive_notifications(stack.endpoint_url, subscriber, timeout=0.9) == []
    # The job is untouched and still due: a good event processes it.
    assert app.lambda_handler(event("poller_schedule.json"), FakeContext())["events"] == {"export.completed": 1}


@pytest.mark.parametrize("invocation", EXTRA_KEY_EVENTS, ids=["none", "empty", "eventbridge_rule", "extra_keys"])
def test_scheduled_events_with_unexpected_keys_still_run_a_cycle(
    app: ModuleType, emulator: IntercomEmulator, stack: LocalStack, subscriber: str, invocation: Any
) -> None:
    due = emulator.add_job("completed", steps=["completed"])
    later = emulator.add_job("completed", steps=["completed"])
    poller = app._get_poller()
    track(poller, due)
    assert poller.store.track(Job(later, tracked_at=iso(utcnow()), next_check_at=int(time.time()) + 3600))

    result = app.lambda_handler(invocation, FakeContext())

    assert "rejected" not in result
    assert (result["due"], result["events"]) == (1, {"export.completed": 1})  # due jobs only: not "all"
    [note] = receive_notifications(stack.endpoint_url, subscriber, expect=1, timeout=5)
    assert note.body["job_identifier"] == due


def test_short_remaining_time_takes_no_work(
    app: ModuleType, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    assert app.RESERVE_SECONDS == 60
    job_ids = [emulator.add_job("completed", steps=["completed"]) for _ in range(3)]
    poller = app._get_poller()
    track(poller, *job_ids)
    before = table_items(stack)

    result = app.lambda_handler(event("poller_schedule.json"), FakeContext(remaining_ms=30_000))

    assert result["due"] == 3 and result["processed"] == 0 and result["left_for_next_cycle"] == 3
    assert result["stopped"] is not None and "time budget" in result["stopped"]
    assert table_items(stack) == before  # not even claimed
    assert emulator.requests == []
    assert sorted(poller.store.due_ids(int(time.time()))) == sorted(job_ids)
    assert receive_notifications(stack.endpoint_url, subscriber, timeout=0.9) == []

    # With time to spare, the same jobs are done by the next invocation.
    result = app.lambda_handler(event("poller_schedule.json"), FakeContext(remaining_ms=600_000))
    assert result["events"] == {"export.completed": 3}


def test_poller_is_built_once_per_container(app: ModuleType, emulator: IntercomEmulator) -> None:
    assert app._poller is None
    app.lambda_handler(event("poller_schedule.json"), FakeContext())
    first = app._poller
    assert first is not None
    app.lambda_handler(event("poller_schedule.json"), FakeContext())
    assert app._poller is first

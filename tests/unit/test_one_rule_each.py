"""One rule for each thing: the timestamp parser (model.parse_iso), the loopback rule (urls.is_loopback_host)
as config.py and slack.py apply it, and the SNS event read once into Powertools' data class (events.py)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from exportwatch.config import ConfigError, PollerSettings
from exportwatch.events import InvalidEvent, SnsNotifications, parse_sns_event
from exportwatch.model import iso, parse_iso
from exportwatch.slack import handle_sns_event, parse_webhook_url
from exportwatch.urls import is_loopback_host

# -- model.parse_iso --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-31T23:59:59Z", datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC)),
        ("2024-01-31T23:59:59.250Z", datetime(2024, 1, 31, 23, 59, 59, 250000, tzinfo=UTC)),
        ("2024-02-01T01:59:59+02:00", datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC)),
        ("2024-01-31T18:59:59-0500", datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_parse_iso_reads_what_both_forms_accept_as_aware_utc(text: str, expected: datetime) -> None:
    for strict in (False, True):
        parsed = parse_iso(text, strict=strict)
        assert parsed == expected and parsed is not None
        assert parsed.utcoffset() == timedelta(0) and parsed.tzinfo is UTC


def test_parse_iso_round_trips_what_the_table_stores() -> None:
    now = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_iso(iso(now)) == now
    assert parse_iso(iso(now), strict=True) == now


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-31T23:59:59",  # no offset: the table's times without one are UTC
        "2024-01-31 23:59:59Z",  # a space, not T
        "2024-01-31T23:59Z",  # no seconds
        "2024-01-31",  # a day
        "20240131T235959Z",  # basic format
    ],
)
def test_lenient_reads_what_fromisoformat_reads_strict_does_not(text: str) -> None:
    parsed = parse_iso(text)
    assert parsed is not None and parsed.tzinfo is UTC
    assert parse_iso(text, strict=True) is None


def test_lenient_takes_a_time_without_offset_as_utc() -> None:
    assert parse_iso("2024-01-31T23:59:59") == datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        " ",
        "yesterday",
        "2024-13-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-01-31T24:00:01Z",
        "2024-01-31T23:59:59Z\n",
        "\u0662\u0660\u0662\u0664-01-31T23:59:59Z",  # Arabic-Indic digits match \d but are no date
        1706745599,
        1706745599.0,
        ["2024-01-31T23:59:59Z"],
        {"at": "2024-01-31T23:59:59Z"},
        True,
    ],
)
def test_parse_iso_is_none_for_anything_else(value: object) -> None:
    assert parse_iso(value) is None
    assert parse_iso(value, strict=True) is None


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_parse_iso_is_none_past_the_calendars_ends(text: str) -> None:
    """Year 1 or 9999 moved past the calendar's end by its offset: OverflowError in astimezone, not a crash."""
    assert parse_iso(text) is None
    assert parse_iso(text, strict=True) is None


def test_parse_iso_keeps_the_instant() -> None:
    tz = timezone(timedelta(hours=5, minutes=30))
    local = datetime(2024, 5, 5, 10, 0, 0, tzinfo=tz)
    parsed = parse_iso(local.isoformat())
    assert parsed == local and parsed is not None and parsed.timestamp() == local.timestamp()


# -- the loopback rule: urls.is_loopback_host, as config.py and slack.py apply it ----------------------------

HOSTS = [
    ("localhost", True),
    ("LOCALHOST", True),
    ("127.0.0.1", True),
    ("127.0.0.2", True),
    ("127.255.255.254", True),
    ("[::1]", True),
    ("10.0.0.1", False),
    ("0.0.0.0", False),
    ("localhost.example", False),
    ("api.intercom.io", False),
    ("[::2]", False),
    ("[::ffff:127.0.0.1]", True),  # IPv4-mapped 127.0.0.1 (Python 3.13 ipaddress says loopback)
]


@pytest.mark.parametrize(("host", "loopback"), HOSTS)
def test_http_is_allowed_for_exactly_the_hosts_the_one_rule_calls_loopback(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback

    env = {
        "JOBS_TABLE": "exportwatch-jobs",
        "EXPORT_BUCKET": "exportwatch-exports",
        "NOTIFY_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:exportwatch-notify",
        "INTERCOM_TOKEN_SECRET": "exportwatch/intercom-token",
        "INTERCOM_API_URL": f"http://{host}:8080",
    }
    try:
        PollerSettings.from_env(env)
        api_ok = True
    except ConfigError as exc:
        assert str(exc).startswith("INTERCOM_API_URL: plain http is allowed only for a loopback emulator")
        api_ok = False

    try:
        parse_webhook_url(f"http://{host}:8080/services/T0/B0/abc")
        webhook_ok = True
    except ConfigError as exc:
        assert "must be https://" in str(exc)
        webhook_ok = False

    assert api_ok is webhook_ok is loopback


# -- the SNS event: checked once, then read through Powertools' SNSEvent ------------------------------------


def sns_event(**sns: Any) -> dict[str, Any]:
    fields = {
        "Type": "Notification",
        "MessageId": "5f0c3c52-3a9e-5d4b-9f7e-0d1c2b3a4f5e",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:exportwatch-notify",
        "Subject": "subject",
        "Message": "hello",
        "MessageAttributes": {"origin": {"Type": "String", "Value": "ci"}},
    }
    return {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "Sns": {**fields, **sns}}]}


NOT_SNS = [
    ({"source": "exportwatch.schedule"}, "not an SNS event: no Records (got a dict)"),
    (None, "not an SNS event: no Records (got a NoneType)"),
    ([], "not an SNS event: no Records (got a list)"),
    ({"Records": []}, "not an SNS event: no Records (got a dict)"),
    ({"Records": [{"EventSource": "aws:sns"}]}, "not an SNS event: a record has no Sns.Message string"),
    ({"Records": [{"Sns": {"Message": {"event": "x"}}}]}, "not an SNS event: a record has no Sns.Message string"),
]


@pytest.mark.parametrize(("event", "why"), NOT_SNS)
def test_an_event_that_is_not_sns_is_refused_in_one_line(event: Any, why: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_sns_event(event)
    assert str(info.value) == why
    assert isinstance(info.value, ValueError)


def test_the_data_class_offers_every_field_the_handler_reads() -> None:
    parsed = parse_sns_event(sns_event())
    assert isinstance(parsed, SnsNotifications)
    sns = parsed.record.sns
    assert (sns.message, sns.subject, sns.topic_arn, sns.message_id) == (
        "hello",
        "subject",
        "arn:aws:sns:eu-west-1:123456789012:exportwatch-notify",
        "5f0c3c52-3a9e-5d4b-9f7e-0d1c2b3a4f5e",
    )
    assert {name: a.value for name, a in sns.message_attributes.items()} == {"origin": "ci"}


@pytest.mark.parametrize(
    ("odd", "attributes"),
    [
        ({"MessageAttributes": ["not", "a", "map"]}, {}),
        ({"MessageAttributes": None}, {}),
        ({"MessageAttributes": {"n": {"Type": "Number", "Value": 7}}}, {"n": "7"}),
        ({"MessageAttributes": {"flat": "value"}}, {"flat": "value"}),
        ({"MessageAttributes": {"no_value": {"Type": "String"}}}, {"no_value": ""}),
    ],
)
def test_odd_attributes_are_made_what_the_data_class_promises(odd: dict[str, Any], attributes: dict[str, str]) -> None:
    sns = parse_sns_event(sns_event(**odd)).record.sns
    assert {name: a.value for name, a in sns.message_attributes.items()} == attributes


def test_missing_or_ill_typed_optional_fields() -> None:
    event = sns_event(Subject=None, TopicArn=42, MessageId=None)
    del event["Records"][0]["Sns"]["MessageAttributes"]
    sns = parse_sns_event(event).record.sns
    assert (sns.subject, sns.topic_arn, sns.message_id, sns.message_attributes) == (None, None, "", {})


def test_the_event_itself_is_left_as_it_came() -> None:
    event = sns_event(MessageAttributes=["odd"], Subject=3)
    before = copy.deepcopy(event)
    parse_sns_event(event)
    assert event == before


class RecordingWebhook:
    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []

    def post(self, payload: dict[str, Any], *, time_left: Any = None) -> None:
        self.payloads.append(payload)


def test_handle_sns_event_takes_the_parsed_event_or_parses_a_raw_one_once() -> None:
    message = json.dumps({"event": "export.failed", "job_identifier": "abc123", "reason": "broken"})
    raw = sns_event(Message=message)
    from_parsed, from_raw = RecordingWebhook(), RecordingWebhook()

    posted = handle_sns_event(parse_sns_event(raw), from_parsed)  # type: ignore[arg-type]
    assert [(p.kind, p.event, p.job_identifier, p.message_id) for p in posted] == [
        ("exportwatch", "export.failed", "abc123", "5f0c3c52-3a9e-5d4b-9f7e-0d1c2b3a4f5e")
    ]
    handle_sns_event(raw, from_raw)  # type: ignore[arg-type]
    assert from_parsed.payloads == from_raw.payloads and len(from_raw.payloads) == 1

    with pytest.raises(InvalidEvent, match="not an SNS event"):
        handle_sns_event({"Records": []}, RecordingWebhook())  # type: ignore[arg-type]

"""The Slack notifier: functions/slack_notifier/app.py fed real SNS events, posting to a local Slack receiver.

Everything goes over the real protocols: the webhook URL comes from moto's Secrets Manager through Powertools
Parameters, the events are SNS envelopes captured from moto's SNS -> SQS delivery (events/sns_*.json, and fresh
ones), and the posts go over HTTP to exportwatch_local.slack_receiver. Failures must raise; the URL must never show.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import re
import secrets
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from exportwatch.config import ConfigError
from exportwatch.notifier import notification_for
from exportwatch.render import slack_payload, slack_payload_for_message
from exportwatch.slack import (
    SlackRateLimited,
    SlackRejected,
    SlackTimeout,
    SlackUnreachable,
    SlackWebhook,
    handle_sns_event,
    parse_webhook_url,
    uninstall_log_redaction,
)
from exportwatch_local.asyncinvoke import create_dead_letter_queue, invoke_async, retry_attempts
from exportwatch_local.localstack import LocalStack, aws_client, load_template, receive_notifications, subscribe_queue
from exportwatch_local.samples import FOREIGN_MESSAGES, SAMPLE_JOBS
from exportwatch_local.slack_receiver import (
    CHANNEL_IS_ARCHIVED,
    CHANNEL_NOT_FOUND,
    INVALID_PAYLOAD,
    SERVER_ERROR,
    Answer,
    SlackReceiver,
    rate_limited,
    slow,
)
from exportwatch_local.snsevents import EVENT_FILES, capture, lambda_event
from support.aws import store_webhook_secret
from support.lambda_handler import event as saved_event
from support.lambda_handler import restored_loggers
from support.paths import TEMPLATE

APP_MODULE = "slack_notifier.app"  # functions/slack_notifier/app.py (functions/ is on pytest's pythonpath)


@dataclass
class FakeContext:
    """The LambdaContext attributes Powertools and the handler read."""

    remaining_seconds: float = 30.0
    function_name: str = "exportwatch-SlackNotifierFunction"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:exportwatch-SlackNotifierFunction"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining_seconds * 1000)


@pytest.fixture(autouse=True)
def _redaction_stays_in_this_test() -> Iterator[None]:
    """The log redaction filters are process-wide; other tests must see botocore and urllib3 as they are."""
    yield
    uninstall_log_redaction()


@pytest.fixture(scope="module")
def app_module() -> Iterator[ModuleType]:
    """functions/slack_notifier/app.py, imported as Lambda imports it.

    At import the handler sets the `exportwatch` logger up for Lambda (Powertools' JSON handler, no propagation)
    and Powertools filters the root handlers; both are put back so the rest of the suite's caplog still works.
    """
    with restored_loggers():
        sys.modules.pop(APP_MODULE, None)  # imported afresh: its top level runs as in a new container
        module = importlib.import_module(APP_MODULE)
    yield module


@pytest.fixture
def app(app_module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setattr(app_module, "_webhook", None)  # a cold start for every test
    return app_module


@pytest.fixture
def webhook(stack: LocalStack, slack_receiver: SlackReceiver, monkeypatch: pytest.MonkeyPatch) -> str:
    """A webhook on the local receiver, its URL stored in moto's Secrets Manager as JSON {"url": ...}."""
    url = slack_receiver.new_webhook()
    name = store_webhook_secret(stack, url)
    for key, value in stack.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SLACK_WEBHOOK_SECRET", name)
    return url


def expected_payload(event: dict[str, Any]) -> dict[str, Any]:
    sns = event["Records"][0]["Sns"]
    return slack_payload_for_message(
        sns["Message"],
        subject=sns["Subject"],
        topic_arn=sns["TopicArn"],
        message_id=sns["MessageId"],
        attributes={k: v["Value"] for k, v in sns["MessageAttributes"].items()},
    )


# ------------------------------------------------------------------------------------- the saved events


@pytest.mark.parametrize("file_name", sorted(EVENT_FILES))
def test_each_saved_event_is_posted(
    app: ModuleType, webhook: str, slack_receiver: SlackReceiver, file_name: str
) -> None:
    event = saved_event(f"{file_name}.json")
    result = app.lambda_handler(event, FakeContext())

    (payload,) = slack_receiver.payloads
    assert payload == expected_payload(event)
    sns = event["Records"][0]["Sns"]
    sample = EVENT_FILES[file_name]
    if sample in SAMPLE_JOBS:
        job = SAMPLE_JOBS[sample]
        assert sns["Message"] == notification_for(job).message  # the `default` JSON, byte for byte
        assert result == {
            "posted": [
                {
                    "message_id": sns["MessageId"],
                    "kind": "exportwatch",
                    "event": notification_for(job).event.value,
                    "job": job.job_identifier,
                }
            ]
        }
    else:
        assert result["posted"][0]["kind"] == "foreign"
        assert sns["Message"] in json.dumps(payload, ensure_ascii=False)  # raw text, readable


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


VARIABLE = {
    "MessageId": r"[0-9a-f-]{36}",
    "TopicArn": r"arn:aws:sns:us-east-1:123456789012:exportwatch-notify(-[0-9a-f]+)?",
    "Timestamp": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",
    "Signature": r"[A-Za-z0-9+/=]{40,}",
    "SigningCertUrl": r"https://sns\.us-east-1\.amazonaws\.com/SimpleNotificationService-[0-9a-f]+\.pem",
    "UnsubscribeUrl": r"https://sns\.us-east-1\.amazonaws\.com/\?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:.+",
}


def test_saved_events_match_a_fresh_capture(stack: LocalStack) -> None:
    """events/sns_*.json are what SNS really delivers: capture again and compare (exportwatch_local.snsevents)."""
    fresh = capture(stack.endpoint_url, stack.topic_arn, list(EVENT_FILES.values()))
    for file_name, sample in EVENT_FILES.items():
        saved, new = saved_event(f"{file_name}.json"), fresh[sample]
        assert _shape(saved) == _shape(new), file_name
        assert list(saved["Records"][0]["Sns"]) == list(new["Records"][0]["Sns"]), "key order"
        (old_record,) = saved["Records"]
        (new_record,) = new["Records"]
        assert {k: v for k, v in old_record.items() if k not in ("Sns", "EventSubscriptionArn")} == {
            "EventSource": "aws:sns",
            "EventVersion": "1.0",
        }
        assert new_record["EventSubscriptionArn"].startswith(stack.topic_arn + ":")
        for key in ("Type", "Subject", "Message", "SignatureVersion", "MessageAttributes"):
            assert old_record["Sns"][key] == new_record["Sns"][key], (file_name, key)
        for key, pattern in VARIABLE.items():
            for record in (old_record, new_record):
                assert re.fullmatch(pattern, record["Sns"][key]), (file_name, key, record["Sns"][key])


def test_lambda_event_only_respells_what_lambda_spells_differently() -> None:
    envelope = {
        "Type": "Notification",
        "MessageId": "m",
        "TopicArn": "t",
        "Message": "x",
        "Timestamp": "ts",
        "SignatureVersion": "2",
        "Signature": "s",
        "SigningCertURL": "c",
        "UnsubscribeURL": "u",
    }
    (record,) = lambda_event(envelope, subscription_arn="arn:sub")["Records"]
    assert record["Sns"] == {
        "Type": "Notification",
        "MessageId": "m",
        "TopicArn": "t",
        "Subject": None,  # Lambda says null where SQS leaves the key out
        "Message": "x",
        "Timestamp": "ts",
        "SignatureVersion": "2",
        "Signature": "s",
        "SigningCertUrl": "c",
        "UnsubscribeUrl": "u",
        "MessageAttributes": {},
    }
    assert record["EventSubscriptionArn"] == "arn:sub"


# ------------------------------------------------------------------------------------- end to end


def test_every_outcome_and_every_foreign_message_end_to_end(
    app: ModuleType, webhook: str, stack: LocalStack, slack_receiver: SlackReceiver
) -> None:
    """Notifier -> SNS -> (captured delivery) -> handler -> Slack, for each sample and each foreign message."""
    events = capture(stack.endpoint_url, stack.topic_arn)
    assert set(events) == set(SAMPLE_JOBS) | set(FOREIGN_MESSAGES)
    for name, event in events.items():
        slack_receiver.clear()
        result = app.lambda_handler(event, FakeContext())
        (payload,) = slack_receiver.payloads
        sns = event["Records"][0]["Sns"]
        if name in SAMPLE_JOBS:
            note = notification_for(SAMPLE_JOBS[name])
            assert sns["Message"] == note.message and sns["Subject"] == note.subject
            assert payload == slack_payload(note.body, region="us-east-1")
            assert result["posted"][0]["kind"] == "exportwatch"
        else:
            subject, message = FOREIGN_MESSAGES[name]
            assert sns["Message"] == message and sns["Subject"] == subject
            assert payload == expected_payload(event)
            assert result["posted"][0]["kind"] == "foreign"
            assert "Shown as received" in json.dumps(payload)


def test_a_message_from_another_publisher_is_posted_not_dropped(
    app: ModuleType, webhook: str, stack: LocalStack, slack_receiver: SlackReceiver
) -> None:
    queue = subscribe_queue(stack.endpoint_url, stack.topic_arn)
    sns = aws_client("sns", stack.endpoint_url)
    sns.publish(TopicArn=stack.topic_arn, Message="deploy finished: v1.2.3 <ok> & done")
    (note,) = receive_notifications(stack.endpoint_url, queue, expect=1)
    result = app.lambda_handler(lambda_event(note.envelope, subscription_arn="arn:sub"), FakeContext())
    (payload,) = slack_receiver.payloads
    assert result["posted"][0]["kind"] == "foreign"
    raw = payload["attachments"][0]["blocks"][1]["text"]["text"]
    assert raw == "```deploy finished: v1.2.3 &lt;ok&gt; &amp; done```"
    assert payload["text"].startswith("Message on exportwatch-notify-")


# ------------------------------------------------------------------------------------- messages that try to bend


def lambda_invoke_event(message_json: str, *, subject_json: str = "null", attributes_json: str = "{}") -> Any:
    """The SNS event as the Lambda runtime hands it over: decoded from JSON text, where "\\ud800" is a lone
    surrogate (json.loads makes one, and nothing on the way rejects it)."""
    text = (
        '{"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:sub", "Sns": '
        '{"Type": "Notification", "MessageId": "5f0c3c52-3a9e-5d4b-9f7e-0d1c2b3a4f5e", '
        '"TopicArn": "arn:aws:sns:eu-west-1:123456789012:exportwatch-notify", '
        f'"Subject": {subject_json}, "Message": {message_json}, "MessageAttributes": {attributes_json}'
        "}}]}"
    )
    return json.loads(text)


def webhook_on(receiver: SlackReceiver) -> SlackWebhook:
    url = receiver.new_webhook()
    return SlackWebhook(lambda: url)


def test_a_foreign_message_with_a_lone_surrogate_is_posted(slack_receiver: SlackReceiver) -> None:
    event = lambda_invoke_event(
        '"deploy \\ud800 done"',
        subject_json='"build \\udfff"',
        attributes_json='{"origin": {"Type": "String", "Value": "ci \\ud800"}}',
    )
    assert "\ud800" in event["Records"][0]["Sns"]["Message"]  # the surrogate really reaches the handler

    posted = handle_sns_event(event, webhook_on(slack_receiver))

    assert [p.kind for p in posted] == ["foreign"]
    (payload,) = slack_receiver.payloads  # went over HTTP as UTF-8: the post did not crash encoding it
    blocks = payload["attachments"][0]["blocks"]
    assert blocks[0]["text"]["text"].startswith("*Subject:* build\nShown as received")
    assert blocks[1]["text"]["text"] == "```deploy \ufffd done```"  # shown, marked, not dropped
    assert blocks[2]["elements"][0]["text"].endswith("attributes origin=ci")
    assert payload["text"] == "Message on exportwatch-notify: build"


@pytest.mark.parametrize(
    "message_json",
    [
        # ours, with the surrogate escaped inside the JSON text (what json.dumps writes)...
        json.dumps(json.dumps({"event": "export.failed", "job_identifier": "abc123", "reason": "bad \ud800 byte"})),
        # ...and raw in the message itself
        '"{\\"event\\": \\"export.failed\\", \\"job_identifier\\": \\"abc123\\", '
        '\\"reason\\": \\"bad \\ud800 byte\\"}"',
    ],
    ids=["escaped-in-the-json", "raw-in-the-message"],
)
def test_our_message_with_a_lone_surrogate_is_posted(slack_receiver: SlackReceiver, message_json: str) -> None:
    posted = handle_sns_event(lambda_invoke_event(message_json), webhook_on(slack_receiver))

    assert [(p.kind, p.event, p.job_identifier) for p in posted] == [("exportwatch", "export.failed", "abc123")]
    (payload,) = slack_receiver.payloads
    assert payload["attachments"][0]["blocks"][1]["text"]["text"] == "*Reason:* Bad byte"


def test_message_attributes_that_are_not_an_object_do_not_stop_the_post(slack_receiver: SlackReceiver) -> None:
    event = lambda_invoke_event('"hello"', attributes_json='["not", "a", "map"]')
    posted = handle_sns_event(event, webhook_on(slack_receiver))
    assert [p.kind for p in posted] == ["foreign"] and len(slack_receiver.payloads) == 1


def test_the_slack_post_ignores_proxy_variables(slack_receiver: SlackReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """As the Intercom client: a proxy from the environment would see the webhook URL (a credential)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there: a post through it fails
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    webhook = webhook_on(slack_receiver)
    webhook.post({"text": "straight to Slack"})
    assert slack_receiver.payloads == [{"text": "straight to Slack"}]


# ------------------------------------------------------------------------------------- failures are loud


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [
        (INVALID_PAYLOAD, 400, "invalid_payload"),
        (CHANNEL_NOT_FOUND, 404, "channel_not_found"),
        (CHANNEL_IS_ARCHIVED, 410, "channel_is_archived"),
        (SERVER_ERROR, 500, "rollup_error"),
        (Answer(403, "action_prohibited"), 403, "action_prohibited"),
        (Answer(200, "not_ok"), 200, "not_ok"),  # a 2xx without Slack's "ok" is not a delivery
        (Answer(302, "", {"Location": "http://127.0.0.1:9/elsewhere"}), 302, "(empty body)"),
    ],
)
def test_a_rejected_post_raises(
    app: ModuleType, webhook: str, slack_receiver: SlackReceiver, answer: Answer, status: int, code: str
) -> None:
    slack_receiver.script(webhook, answer)
    with pytest.raises(SlackRejected) as caught:
        app.lambda_handler(saved_event("sns_failed.json"), FakeContext())
    assert (caught.value.status, caught.value.code or "(empty body)") == (status, code)
    assert f"HTTP {status} {code}" in str(caught.value)
    assert len(slack_receiver.posts) == 1 and slack_receiver.payloads == []  # one try; Lambda does the retries


def test_the_receiver_itself_rejects_a_malformed_payload(webhook: str) -> None:
    """The receiver checks payloads as Slack does, so a renderer bug fails the same way it would in production."""
    post = SlackWebhook(lambda: webhook).post
    with pytest.raises(SlackRejected, match="invalid_blocks"):
        post({"blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}]})
    with pytest.raises(SlackRejected, match="no_text"):
        post({"text": ""})
    post({"text": "hello"})


def test_a_slow_slack_times_out_and_raises(
    app: ModuleType, webhook: str, slack_receiver: SlackReceiver, stack: LocalStack
) -> None:
    app._webhook = SlackWebhook(lambda: webhook, read_timeout=0.5)  # the real handler, a short read timeout
    slack_receiver.script(webhook, slow(3.0))
    started = time.monotonic()
    with pytest.raises(SlackTimeout, match=r"within 0\.5 s"):
        app.lambda_handler(saved_event("sns_expired.json"), FakeContext())
    assert time.monotonic() - started < 2.5


def test_an_unreachable_slack_raises(app: ModuleType, slack_receiver: SlackReceiver, webhook: str) -> None:
    slack_receiver.stop()  # connection refused
    with pytest.raises(SlackUnreachable, match="cannot reach the Slack webhook"):
        app.lambda_handler(saved_event("sns_failed.json"), FakeContext())


def test_a_short_429_is_waited_out(app: ModuleType, webhook: str, slack_receiver: SlackReceiver) -> None:
    slack_receiver.script(webhook, rate_limited(retry_after=1))
    started = time.monotonic()
    app.lambda_handler(saved_event("sns_completed.json"), FakeContext())
    assert time.monotonic() - started >= 1.0  # Retry-After honoured
    assert [p.status for p in slack_receiver.posts] == [429, 200]
    assert len(slack_receiver.payloads) == 1


def test_a_long_429_raises_at_once(app: ModuleType, webhook: str, slack_receiver: SlackReceiver) -> None:
    slack_receiver.script(webhook, rate_limited(retry_after=60))
    started = time.monotonic()
    with pytest.raises(SlackRateLimited, match="Retry-After 60 s") as caught:
        app.lambda_handler(saved_event("sns_completed.json"), FakeContext())
    assert caught.value.retry_after == 60 and time.monotonic() - started < 1.0
    assert slack_receiver.payloads == []


def test_a_429_is_not_waited_out_past_the_lambda_timeout(
    app: ModuleType, webhook: str, slack_receiver: SlackReceiver
) -> None:
    slack_receiver.script(webhook, rate_limited(retry_after=3))
    started = time.monotonic()
    with pytest.raises(SlackRateLimited):
        app.lambda_handler(saved_event("sns_completed.json"), FakeContext(remaining_seconds=8))
    assert time.monotonic() - started < 1.0


def test_a_429_that_never_ends_raises_after_a_few_waits(webhook: str, slack_receiver: SlackReceiver) -> None:
    slack_receiver.always(webhook, rate_limited(retry_after="0"))
    waits: list[float] = []
    with pytest.raises(SlackRateLimited):
        SlackWebhook(lambda: webhook, sleep=waits.append).post({"text": "x"})
    assert waits == [0.0, 0.0] and len(slack_receiver.posts) == 3


def test_retry_after_as_an_http_date(webhook: str, slack_receiver: SlackReceiver) -> None:
    slack_receiver.script(webhook, rate_limited(retry_after="Wed, 21 Oct 2015 07:28:05 GMT"))
    waits: list[float] = []
    SlackWebhook(lambda: webhook, sleep=waits.append, clock=lambda: 1445412483.0).post({"text": "x"})
    assert waits == [2.0]


def test_a_dead_webhook_fails_the_function_and_the_event_lands_in_the_dead_letter_queue(
    app: ModuleType, webhook: str, stack: LocalStack, slack_receiver: SlackReceiver
) -> None:
    """Lambda's async retries and OnFailure destination as template.yaml sets them (exportwatch_local.asyncinvoke)."""
    template = load_template(TEMPLATE)
    dlq = create_dead_letter_queue(stack.endpoint_url, template, f"exportwatch-slack-dlq-{secrets.token_hex(4)}")
    sqs = aws_client("sqs", stack.endpoint_url)
    slack_receiver.always(webhook, CHANNEL_NOT_FOUND)
    event = saved_event("sns_failed.json")

    outcome = invoke_async(
        app.lambda_handler,
        event,
        FakeContext(),
        maximum_retry_attempts=retry_attempts(template),
        on_failure=lambda body: sqs.send_message(QueueUrl=dlq, MessageBody=body),
    )

    assert not outcome.succeeded and outcome.attempts == 1 + retry_attempts(template) == 3
    assert len(slack_receiver.posts) == 3 and slack_receiver.payloads == []
    (message,) = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1)["Messages"]
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestPayload"] == event  # the whole SNS event is kept
    assert record["responsePayload"]["errorType"] == "SlackRejected"
    assert "HTTP 404 channel_not_found" in record["responsePayload"]["errorMessage"]
    assert webhook not in message["Body"] and webhook.rsplit("/", 1)[1] not in message["Body"]

    # Redrive once the webhook works again: invoke with the kept event.
    slack_receiver.always(webhook, None)
    app.lambda_handler(record["requestPayload"], FakeContext())
    assert slack_receiver.payloads == [expected_payload(event)]


# ------------------------------------------------------------------------------------- the URL stays secret


def test_the_webhook_url_never_shows_in_logs_exceptions_or_results(
    app: ModuleType,
    webhook: str,
    stack: LocalStack,
    slack_receiver: SlackReceiver,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)  # everything: urllib3, botocore, Powertools, exportwatch
    stream = io.StringIO()
    json_logs = logging.StreamHandler(stream)  # the handler's own (Powertools) logger, formatted as in Lambda
    json_logs.setFormatter(app.logger.registered_formatter)
    logging.getLogger("exportwatch").addHandler(json_logs)
    texts: list[str] = []
    try:
        texts.append(json.dumps(app.lambda_handler(saved_event("sns_completed.json"), FakeContext())))
        slack_receiver.script(webhook, rate_limited(retry_after=0))
        texts.append(json.dumps(app.lambda_handler(saved_event("sns_foreign.json"), FakeContext())))
        for answer in (INVALID_PAYLOAD, CHANNEL_NOT_FOUND, rate_limited(retry_after=120)):
            slack_receiver.script(webhook, answer)
            with pytest.raises(Exception) as caught:
                app.lambda_handler(saved_event("sns_failed.json"), FakeContext())
            texts += [str(caught.value), repr(caught.value), "".join(traceback.format_exception(caught.value))]
        app._webhook = SlackWebhook(app._get_webhook()._url, read_timeout=0.3)
        slack_receiver.script(webhook, slow(1.0))
        with pytest.raises(SlackTimeout) as timeout:
            app.lambda_handler(saved_event("sns_failed.json"), FakeContext())
        texts += [str(timeout.value), "".join(traceback.format_exception(timeout.value))]
        slack_receiver.stop()
        with pytest.raises(SlackUnreachable) as unreachable:
            app.lambda_handler(saved_event("sns_failed.json"), FakeContext())
        texts += [str(unreachable.value), "".join(traceback.format_exception(unreachable.value))]
    finally:
        logging.getLogger("exportwatch").removeHandler(json_logs)

    records = caplog.records
    assert any(r.name == "urllib3.connectionpool" and "<redacted>" in r.getMessage() for r in records)
    assert any(r.name == "botocore.parsers" and "<redacted>" in r.getMessage() for r in records)
    out = capsys.readouterr()
    everything = "\n".join(
        [*texts, *(r.getMessage() for r in records), caplog.text, stream.getvalue(), out.out, out.err]
    )
    assert "posted to Slack" in everything and "not delivered to Slack" in everything  # the logs were captured
    path = webhook.split("127.0.0.1", 1)[1].split("/", 1)[1]
    for secret in (webhook, path, path.rsplit("/", 1)[1]):
        assert secret not in everything


# ------------------------------------------------------------------------------------- configuration


def test_the_secret_may_hold_the_bare_url(
    app: ModuleType, webhook: str, stack: LocalStack, slack_receiver: SlackReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"exportwatch/slack-bare-{secrets.token_hex(4)}"
    aws_client("secretsmanager", stack.endpoint_url).create_secret(Name=name, SecretString=webhook)
    monkeypatch.setenv("SLACK_WEBHOOK_SECRET", name)
    app.lambda_handler(saved_event("sns_no_data.json"), FakeContext())
    assert len(slack_receiver.payloads) == 1


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "empty"),
        ("{not json", "does not parse"),
        ('{"webhook": "https://hooks.slack.com/services/T/B/X"}', 'no non-empty "url"'),
        ("http://hooks.slack.com/services/T0/B0/SECRETSECRET", "must be https"),
        ("https://user:pw@hooks.slack.com/services/T0/B0/SECRETSECRET", "not an incoming-webhook URL"),
        ("https://hooks.slack.com", "not an incoming-webhook URL"),
        ("https://hooks.slack.com/services/T0/B0/SECRET SECRET", "whitespace"),
    ],
)
def test_a_bad_secret_value_fails_clearly_without_echoing_it(value: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        parse_webhook_url(value)
    assert str(caught.value).startswith("SLACK_WEBHOOK_SECRET: ")
    assert "SECRET" not in str(caught.value).removeprefix("SLACK_WEBHOOK_SECRET")


def test_missing_configuration_fails_clearly(
    app: ModuleType, stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in stack.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SLACK_WEBHOOK_SECRET", raising=False)
    with pytest.raises(ConfigError, match="SLACK_WEBHOOK_SECRET: not set"):
        app.lambda_handler(saved_event("sns_failed.json"), FakeContext())
    monkeypatch.setattr(app, "_webhook", None)
    monkeypatch.setenv("SLACK_WEBHOOK_SECRET", "exportwatch/no-such-secret")
    with pytest.raises(ConfigError, match="cannot read secret 'exportwatch/no-such-secret'"):
        app.lambda_handler(saved_event("sns_failed.json"), FakeContext())


NOT_SNS_EVENTS: list[Any] = [
    {"source": "exportwatch.schedule"},
    None,
    [],
    "posted by hand",
    {"Records": []},
    {"Records": "x"},
    {"Records": [{"EventSource": "aws:sns"}]},
    {"Records": [{"Sns": {"Message": {"event": "export.failed"}}}]},  # Message must be the string SNS sends
]


@pytest.mark.parametrize("event", NOT_SNS_EVENTS)
def test_an_event_that_is_not_sns_is_rejected_with_one_line(
    app: ModuleType, webhook: str, slack_receiver: SlackReceiver, event: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Not a crash loop: a hand-made event returns (no Lambda retries, nothing in the dead-letter queue)."""
    caplog.set_level(logging.INFO, logger="exportwatch")
    result = app.lambda_handler(event, FakeContext())

    assert set(result) == {"rejected"} and result["rejected"].startswith("not an SNS event")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["rejected invocation event"]
    assert errors[0].reason == result["rejected"]  # type: ignore[attr-defined]
    assert slack_receiver.posts == []
    assert app._webhook is None  # rejected before the secret is even read


def test_webhook_urls_are_cached_not_fetched_per_message(
    app: ModuleType, webhook: str, slack_receiver: SlackReceiver, stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="botocore.endpoint")
    for _ in range(3):
        app.lambda_handler(saved_event("sns_canceled.json"), FakeContext())
    fetches = [r for r in caplog.records if "GetSecretValue" in r.getMessage() and "Making request" in r.getMessage()]
    assert len(fetches) == 1 and len(slack_receiver.payloads) == 3


# ------------------------------------------------------------------------------------- the receiver


def test_receiver_answers_like_slack(slack_receiver: SlackReceiver) -> None:
    import requests

    url = slack_receiver.new_webhook()
    assert requests.post(url, json={"text": "hi"}, timeout=5).text == "ok"
    form = requests.post(url, data={"payload": json.dumps({"text": "from a form"})}, timeout=5)
    assert (form.status_code, form.text) == (200, "ok")
    bad = requests.post(url, data=b"{nope", headers={"Content-Type": "application/json"}, timeout=5)
    assert (bad.status_code, bad.text) == (400, "invalid_payload")
    unknown = requests.post(slack_receiver.base_url + "/services/T1/B1/nope", json={"text": "x"}, timeout=5)
    assert (unknown.status_code, unknown.text) == (404, "no_service")
    assert slack_receiver.payloads == [{"text": "hi"}, {"text": "from a form"}]
    assert [p.status for p in slack_receiver.posts] == [200, 200, 400, 404]

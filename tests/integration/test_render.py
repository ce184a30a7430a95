"""Notifications people read: the email text and the Slack payload for every outcome, against reviewed snapshots.

The inputs are fixed (exportwatch_local.samples), so the snapshots only change when the rendering does; regenerate
with UPDATE_SNAPSHOTS=1 and review the diff. Also: the JSON contract stays byte for byte what it was.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from exportwatch.model import JOB_ID_MAX_LEN, Event, Job, JobState
from exportwatch.notifier import (
    SNS_MESSAGE_MAX_BYTES,
    Notification,
    NotificationTooLarge,
    Notifier,
    notification_for,
    warning_for,
)
from exportwatch.render import (
    NotOurs,
    Rendered,
    console_url,
    email_text,
    parse_contract,
    region_from_arn,
    slack_payload,
    slack_payload_for_message,
    start_command,
)
from exportwatch_local import cli
from exportwatch_local.localstack import LocalStack, aws_client, receive_notifications, subscribe_queue
from exportwatch_local.samples import FOREIGN_MESSAGES, SAMPLE_BUCKET, SAMPLE_JOBS, SAMPLE_TOPIC_ARN, SAMPLE_WARNINGS
from exportwatch_local.slack_receiver import validate_payload
from support import snapshots
from support.paths import SNAPSHOTS
from support.snapshots import WINDOW_SAMPLES, check_snapshot

REGION = region_from_arn(SAMPLE_TOPIC_ARN)
FOREIGN_MESSAGE_ID = "5f0c3c52-3a9e-5d4b-9f7e-0d1c2b3a4f5e"


# Every sample notification: the outcomes (SAMPLE_JOBS) and the early warnings (SAMPLE_WARNINGS).
SAMPLES = sorted([*SAMPLE_JOBS, *SAMPLE_WARNINGS])


def sample_note(name: str) -> Notification:
    if name in SAMPLE_WARNINGS:
        job, event, at = SAMPLE_WARNINGS[name]
        return warning_for(job, event, at)
    return notification_for(SAMPLE_JOBS[name])


def sample_job(name: str) -> Job:
    return SAMPLE_WARNINGS[name][0] if name in SAMPLE_WARNINGS else SAMPLE_JOBS[name]


def email_snapshot(name: str) -> str:
    note = sample_note(name)
    return f"Subject: {note.subject}\n\n{note.email(REGION)}"


def slack_snapshot(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    # Invisible format characters (the zero-width spaces that keep URLs from becoming links) written as JSON
    # escapes, so a reviewer sees them; they only occur inside strings, so the file still parses to the payload.
    return "".join(f"\\u{ord(ch):04x}" if unicodedata.category(ch) == "Cf" else ch for ch in text)


# ------------------------------------------------------------------------------------- snapshots


def test_samples_cover_every_outcome() -> None:
    assert {Event.for_state(job.state) for job in SAMPLE_JOBS.values()} == set(Event.outcomes())
    assert {event for _, event, _ in SAMPLE_WARNINGS.values()} == set(Event.warnings())
    assert {sample_note(name).event for name in SAMPLES} == set(Event)
    assert not set(SAMPLE_JOBS) & set(SAMPLE_WARNINGS)
    assert all(not job.state.is_final for job, _, _ in SAMPLE_WARNINGS.values())  # warnings: still watching


@pytest.mark.parametrize("name", SAMPLES)
def test_email_matches_snapshot(name: str) -> None:
    check_snapshot(f"email/{name}.txt", email_snapshot(name))


@pytest.mark.parametrize("name", SAMPLES)
def test_slack_payload_matches_snapshot(name: str) -> None:
    payload = slack_payload(sample_note(name).body, region=REGION)
    assert validate_payload(payload) is None  # Slack would take it (Block Kit limits)
    check_snapshot(f"slack/{name}.json", slack_snapshot(payload))


@pytest.mark.parametrize("name", sorted(FOREIGN_MESSAGES))
def test_foreign_message_slack_payload_matches_snapshot(name: str) -> None:
    subject, message = FOREIGN_MESSAGES[name]
    payload = slack_payload_for_message(
        message,
        subject=subject,
        topic_arn=SAMPLE_TOPIC_ARN,
        message_id=FOREIGN_MESSAGE_ID,
        attributes={"origin": "monitoring"} if name == "foreign_json" else {},
    )
    assert validate_payload(payload) is None
    check_snapshot(f"slack/{name}.json", slack_snapshot(payload))


def test_no_stale_snapshots() -> None:
    expected = {f"email/{n}.txt" for n in SAMPLES} | {f"slack/{n}.json" for n in [*SAMPLES, *FOREIGN_MESSAGES]}
    expected |= {f"{kind}/{n}.{ext}" for n in WINDOW_SAMPLES for kind, ext in (("email", "txt"), ("slack", "json"))}
    present = {str(p.relative_to(SNAPSHOTS)) for p in SNAPSHOTS.rglob("*") if p.is_file()}
    assert present == expected


def test_snapshot_files_are_reviewed_text() -> None:
    """Snapshots are plain files a reviewer reads: UTF-8, newline-terminated, no trailing spaces but the sig dash,
    and nothing invisible (a zero-width space is written as the JSON escape \\u200b)."""
    for path in SNAPSHOTS.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert text.endswith("\n")
            assert all(line == "-- " or line == line.rstrip() for line in text.splitlines()), path
            assert not [ch for ch in text if unicodedata.category(ch) == "Cf"], path


def test_slack_snapshot_files_parse_back_to_the_payload() -> None:
    payload = slack_payload(sample_note("failed_foreign_origin").body, region=REGION)
    written = slack_snapshot(payload)
    assert "https:\\u200b//downloads" in written  # visible in the file...
    assert json.loads(written) == payload  # ...and still exactly the payload


def test_snapshots_cannot_be_updated_in_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """CI=true with UPDATE_SNAPSHOTS=1 fails instead of accepting every rendering change unseen."""
    monkeypatch.setattr(snapshots, "SNAPSHOTS", tmp_path)  # never the real files, whatever happens
    reviewed = tmp_path / "email" / "x.txt"
    reviewed.parent.mkdir()
    reviewed.write_text("reviewed\n", encoding="utf-8")
    monkeypatch.setenv("UPDATE_SNAPSHOTS", "1")
    for ci in ("true", "1", "yes"):
        monkeypatch.setenv("CI", ci)
        with pytest.raises(pytest.fail.Exception, match="UPDATE_SNAPSHOTS=1 in CI"):
            check_snapshot("email/x.txt", "unreviewed\n")
        with pytest.raises(pytest.fail.Exception, match="UPDATE_SNAPSHOTS=1 in CI"):
            check_snapshot("email/new.txt", "unreviewed\n")
    assert reviewed.read_text(encoding="utf-8") == "reviewed\n"
    assert not (tmp_path / "email" / "new.txt").exists()
    monkeypatch.setenv("CI", "false")  # set but off, as some runners leave it: updating by hand still works
    check_snapshot("email/x.txt", "updated by hand\n")
    assert reviewed.read_text(encoding="utf-8") == "updated by hand\n"


# ------------------------------------------------------------------------------------- what the email says


@pytest.mark.parametrize("name", SAMPLES)
def test_email_reads_in_five_seconds(name: str) -> None:
    job = sample_job(name)
    note = sample_note(name)
    event = note.event
    text = note.email(REGION)
    first = text.splitlines()[0]
    assert first.startswith(event.value.removeprefix("export.").replace("_", " ").upper() + ":")
    assert job.job_identifier in first
    assert f"Job id:          {job.job_identifier}" in text
    if job.download_expires_at:
        assert "Intercom's copy: " in text
    if event is Event.COMPLETED:
        assert job.s3_uri and job.s3_uri in text
        bucket, key = job.s3_uri.removeprefix("s3://").split("/", 1)
        assert console_url(bucket, key, REGION) in text
        assert "MiB" in text or "KiB" in text
        assert "Reason:" not in text and "Next step:" not in text
    else:
        assert "Reason:" in text and "Next step:" in text
    if event in (Event.FAILED, Event.NOT_FOUND, Event.CANCELED, Event.EXPIRED):
        assert "    exportwatch start --since " in text
    if event.is_warning:  # a warning says the job is still watched and its outcome comes separately
        assert "Noticed at:" in text and "Decided at:" not in text
        assert "outcome in its own" in " ".join(text.split())
    else:
        assert "Decided at:" in text
    assert text.isascii(), "plain text: no emoji or typographic characters in the email"
    body = text.splitlines()[1:]  # the first line is the outcome, whole, for the inbox preview
    unwrappable = ("://", job.job_identifier, "sha256")  # URLs, ids and hashes cannot be wrapped
    assert all(len(line) <= 76 for line in body if not any(t in line for t in unwrappable)), text


def test_console_link_uses_the_topic_region_and_quotes_the_key() -> None:
    assert region_from_arn(SAMPLE_TOPIC_ARN) == "eu-west-1"
    assert region_from_arn("arn:aws-cn:sns:cn-north-1:123456789012:t") == "cn-north-1"
    assert region_from_arn("not an arn") is None
    assert console_url(SAMPLE_BUCKET, "intercom-exports/a b+c.zip", "eu-west-1") == (
        f"https://s3.console.aws.amazon.com/s3/object/{SAMPLE_BUCKET}"
        "?region=eu-west-1&prefix=intercom-exports/a%20b%2Bc.zip"
    )
    assert console_url("b", "k", None) == "https://s3.console.aws.amazon.com/s3/object/b?prefix=k"


@pytest.mark.parametrize(
    ("after", "before", "expected"),
    [
        ("2026-11-01T00:00:00Z", "2026-11-07T23:59:59Z", "--since 2026-11-01 --until 2026-11-07"),
        ("2026-11-07T10:00:00Z", "2026-11-07T12:30:00Z", "--since 2026-11-07T10:00:00Z --until 2026-11-07T12:30:00Z"),
        (None, None, "--since YYYY-MM-DD --until YYYY-MM-DD"),
    ],
)
def test_start_command_recreates_the_same_range(after: str | None, before: str | None, expected: str) -> None:
    job = Job("abc123", state=JobState.FAILED, created_at_after=after, created_at_before=before)
    command = start_command(Rendered.from_body(notification_for(job).body))
    assert command == f"exportwatch start {expected}"
    if after is None or before is None:
        return
    args = cli.build_parser().parse_args(command.split()[1:])  # the real CLI takes it as it is
    since = cli._parse_when(args.since, "--since", end_of_day=False)
    until = cli._parse_when(args.until, "--until", True)
    assert (since, until) == (
        datetime.fromisoformat(after.replace("Z", "+00:00")).astimezone(UTC),
        datetime.fromisoformat(before.replace("Z", "+00:00")).astimezone(UTC),
    )


def test_subject_names_outcome_and_job_within_sns_limits() -> None:
    for name in SAMPLES:
        subject = sample_note(name).subject
        assert len(subject) <= 100 and subject.isascii() and subject.isprintable()
        assert subject.startswith("exportwatch: export ")
    long = notification_for(SAMPLE_JOBS["expired_long_id"]).subject
    assert long.endswith("expired before it was copied")  # the outcome survives a 64-character id
    assert long.startswith("exportwatch: export aaaaaaaa") and "..." in long


# ------------------------------------------------------------------------------------- the JSON contract


@pytest.mark.parametrize("name", SAMPLES)
def test_default_and_sqs_bodies_are_the_contract_byte_for_byte(name: str) -> None:
    note = sample_note(name)
    structure = json.loads(note.structured_message(REGION))
    assert set(structure) == {"default", "sqs", "email"}
    assert structure["default"] == note.message  # exactly the string the contract defines
    assert structure["sqs"] == note.message
    assert structure["email"] == email_text(note.body, region=REGION)
    assert note.message == json.dumps(note.body, sort_keys=True, separators=(", ", ": "))


def test_published_json_reaches_an_sqs_subscriber_unchanged(stack: LocalStack) -> None:
    queue = subscribe_queue(stack.endpoint_url, stack.topic_arn)
    notifier = Notifier(aws_client("sns", stack.endpoint_url), stack.topic_arn)
    sent = {notifier.publish(sample_note(name)): name for name in SAMPLES}
    received = receive_notifications(stack.endpoint_url, queue, expect=len(SAMPLES), timeout=10)
    assert len(received) == len(SAMPLES)
    for got in received:
        note = sample_note(sent[got.envelope["MessageId"]])
        assert got.message == note.message  # byte for byte, not just equal JSON
        assert got.subject == note.subject
        assert got.attributes == {
            "event": note.event.value,
            "job_identifier": note.job_identifier,
            "workspace": note.workspace,
        }


def at_the_bounds(job: Job) -> Job:
    """The job with every field the poller fills from outside well past its bound: ids <= 64 characters,
    S3 keys <= 1024 bytes, reasons and errors <= 300 characters (here 1000 characters that JSON escapes)."""
    job_id = "j" * JOB_ID_MAX_LEN
    key = "p/" * 450 + job_id + ".zip"
    words = "\u2603" * 1000
    return replace(job, job_identifier=job_id, s3_uri=f"s3://{'b' * 63}/{key}", outcome_reason=words, last_error=words)


@pytest.mark.parametrize("name", SAMPLES)
def test_bounded_notifications_are_far_below_the_sns_limit(name: str) -> None:
    if name in SAMPLE_WARNINGS:
        job, event, at = SAMPLE_WARNINGS[name]
        note = warning_for(at_the_bounds(job), event, at)
    else:
        note = notification_for(at_the_bounds(SAMPLE_JOBS[name]))
    text = note.structured_message(REGION)
    assert len(text.encode()) < SNS_MESSAGE_MAX_BYTES // 8
    structure = json.loads(text)
    assert structure["default"] == structure["sqs"] == note.message
    assert structure["email"] == email_text(note.body, region=REGION)


def test_a_notification_over_the_sns_limit_is_refused_whole() -> None:
    # Only a body built by hand gets here (see above); it raises rather than publishing a cut message. The JSON
    # carries the reason whole twice (default, sqs); the email only its first REASON_MAX characters.
    note = notification_for(replace(SAMPLE_JOBS["failed"], outcome_reason="x" * 150_000))
    with pytest.raises(NotificationTooLarge, match=f"SNS takes at most {SNS_MESSAGE_MAX_BYTES}"):
        note.structured_message(REGION)


# ------------------------------------------------------------------------------------- foreign messages


@pytest.mark.parametrize(
    ("message", "why"),
    [
        ("plain words", "plain text, not JSON"),
        ('{"event": ', "malformed JSON"),
        ("[1, 2]", "JSON list, not an object"),
        ('{"AlarmName": "x"}', "JSON without an exportwatch event"),
        ('{"event": "export.archived", "job_identifier": "abc"}', "unknown event 'export.archived'"),
        ('{"event": "export.failed", "job_identifier": "a/b"}', "no valid job_identifier"),
    ],
)
def test_messages_that_are_not_ours_are_recognised(message: str, why: str) -> None:
    with pytest.raises(NotOurs, match=why.replace("[", r"\[")):
        parse_contract(message)
    payload = slack_payload_for_message(message, topic_arn=SAMPLE_TOPIC_ARN)
    assert validate_payload(payload) is None
    shown = json.dumps(payload)
    assert "Shown as received" in shown


def test_a_huge_foreign_message_is_cut_to_fit_slack() -> None:
    payload = slack_payload_for_message("<&>" * 5000, subject="big", topic_arn=SAMPLE_TOPIC_ARN)
    assert validate_payload(payload) is None
    raw = payload["attachments"][0]["blocks"][1]["text"]["text"]
    assert raw.startswith("```&lt;&amp;&gt;") and "_(cut: 15,000 characters in all)_" in raw
    assert "&am```" not in raw and "&l```" not in raw  # never half an entity


def test_mrkdwn_specials_in_a_reason_are_escaped() -> None:
    job = Job("abc123", state=JobState.FAILED, intercom_status="failed", outcome_reason="<!channel> & <@U123>")
    payload = slack_payload(notification_for(job).body, region=None)
    text = json.dumps(payload)
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; &lt;@U123&gt;" in text

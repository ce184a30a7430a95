"""Notifications against expectations written out by hand, not computed by the renderer (nor by a snapshot it wrote).

Whole Slack payloads for a completed and a failed export; short durations and small sizes; a run in another
time zone; and free text that tries to bend a message: URLs, control characters, runs of &, a cleaned S3 URI.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from exportwatch.model import Event, Job, JobState
from exportwatch.notifier import notification_for, warning_for
from exportwatch.render import email_text, slack_payload, slack_payload_for_message
from exportwatch_local.samples import SAMPLE_JOBS, SAMPLE_WARNINGS

REGION = "eu-west-1"
ZWSP = "\u200b"


def body(**fields: Any) -> dict[str, Any]:
    """A notification body as the contract spells it, for a job with no range and no times unless given."""
    return {"version": 1, "job_identifier": "abc123", **fields}


def attachment_texts(payload: dict[str, Any]) -> list[str]:
    """Every text in the attachment, in order (sections, fields, context)."""
    out: list[str] = []
    for block in payload["attachments"][0]["blocks"]:
        if "text" in block:
            out.append(block["text"]["text"])
        out += [item["text"] for item in block.get("fields", []) + block.get("elements", [])]
    return out


# ------------------------------------------------------------------------------------- whole payloads


def test_completed_slack_payload_is_exactly_this() -> None:
    assert slack_payload(notification_for(SAMPLE_JOBS["completed"]).body, region=REGION) == {
        "text": "COMPLETED: export orzzsbd7hk67xyu is in S3 (46.5 MiB). Nothing to do.",
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": ":white_check_mark: Export completed: orzzsbd7hk67xyu",
                    "emoji": True,
                },
            }
        ],
        "attachments": [
            {
                "color": "#2EB67D",
                "blocks": [
                    {
                        "type": "section",
                        "text": {
                            "type": "mrkdwn",
                            "text": "Export `orzzsbd7hk67xyu` is in S3 (46.5 MiB). Nothing to do.",
                        },
                    },
                    {
                        "type": "section",
                        "fields": [
                            {"type": "mrkdwn", "text": "*Job*\n`orzzsbd7hk67xyu`"},
                            {"type": "mrkdwn", "text": "*Workspace*\n`default`"},
                            {"type": "mrkdwn", "text": "*Date range*\n2026-11-01 to 2026-11-07 (whole days, UTC)"},
                            {"type": "mrkdwn", "text": "*Size*\n46.5 MiB"},
                            {"type": "mrkdwn", "text": "*Intercom's copy*\ndeleted 2026-11-10 09:34 UTC (in 47 hours)"},
                        ],
                    },
                    {
                        "type": "section",
                        "text": {
                            "type": "mrkdwn",
                            "text": "*S3:* `s3://exportwatch-exportbucket-1a2b3c4d5e6f/intercom-exports/default/content/dt=2026-11-08/orzzsbd7hk67xyu.zip`"
                            "\n<https://s3.console.aws.amazon.com/s3/object/exportwatch-exportbucket-1a2b3c4d5e6f"
                            "?region=eu-west-1&amp;prefix=intercom-exports/default/content/dt%3D2026-11-08/orzzsbd7hk67xyu.zip"
                            "|Open in the AWS console>",
                        },
                    },
                    {
                        "type": "context",
                        "elements": [
                            {
                                "type": "mrkdwn",
                                "text": "exportwatch \u00b7 `export.completed` \u00b7 decided 2026-11-08 09:35 UTC"
                                " \u00b7 sha256 `9f2c1a4e5b6d\u2026`",
                            }
                        ],
                    },
                ],
            }
        ],
    }


def test_failed_slack_payload_is_exactly_this() -> None:
    assert slack_payload(notification_for(SAMPLE_JOBS["failed"]).body, region=REGION) == {
        "text": "FAILED: export orzzsbd7hk67xyu failed at Intercom. Request a new export.",
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": ":x: Export failed: orzzsbd7hk67xyu", "emoji": True},
            }
        ],
        "attachments": [
            {
                "color": "#E01E5A",
                "blocks": [
                    {
                        "type": "section",
                        "text": {
                            "type": "mrkdwn",
                            "text": "Export `orzzsbd7hk67xyu` failed at Intercom. Request a new export.",
                        },
                    },
                    {
                        "type": "section",
                        "text": {
                            "type": "mrkdwn",
                            "text": "*Reason:* Intercom reports the export job failed (jobs that run longer than "
                            "12 hours fail); request a new export",
                        },
                    },
                    {
                        "type": "section",
                        "fields": [
                            {"type": "mrkdwn", "text": "*Job*\n`orzzsbd7hk67xyu`"},
                            {"type": "mrkdwn", "text": "*Workspace*\n`default`"},
                            {"type": "mrkdwn", "text": "*Date range*\n2026-11-01 to 2026-11-07 (whole days, UTC)"},
                            {"type": "mrkdwn", "text": "*Intercom status*\n`failed`"},
                        ],
                    },
                    {
                        "type": "section",
                        "text": {
                            "type": "mrkdwn",
                            "text": "*Next step:* Request the export again; if it fails again, split the range into "
                            "shorter ones.\n```exportwatch start --since 2026-11-01 --until 2026-11-07```",
                        },
                    },
                    {
                        "type": "context",
                        "elements": [
                            {
                                "type": "mrkdwn",
                                "text": "exportwatch \u00b7 `export.failed` \u00b7 decided 2026-11-08 09:35 UTC",
                            }
                        ],
                    },
                ],
            }
        ],
    }


def test_failed_with_a_hostile_reason_keeps_its_shape() -> None:
    """Key fields written out: the reason is one escaped line without links, the rest is untouched."""
    reason = "Intercom said:\n<!channel> see https://evil.example/x & www.evil.example\x1b[2J"
    job = Job("abc123", state=JobState.FAILED, intercom_status="failed\r\nx", outcome_reason=reason)
    payload = slack_payload(notification_for(job).body, region=None)
    assert payload["text"] == "FAILED: export abc123 failed at Intercom. Request a new export."
    assert attachment_texts(payload)[:5] == [
        "Export `abc123` failed at Intercom. Request a new export.",
        f"*Reason:* Intercom said: &lt;!channel&gt; see https:{ZWSP}//evil.{ZWSP}example/x &amp; "
        f"www.{ZWSP}evil.{ZWSP}example [2J",
        "*Job*\n`abc123`",
        "*Workspace*\n`default`",
        "*Intercom status*\n`failed x`",
    ]


# ------------------------------------------------------------------------------------- small numbers


@pytest.mark.parametrize(
    ("size", "short", "exact"),
    [(0, "0 B", "0 bytes"), (1, "1 B", "1 byte"), (1023, "1023 B", "1,023 bytes"), (1024, "1.0 KiB", "1,024 bytes")],
)
def test_sizes_under_one_kib(size: int, short: str, exact: str) -> None:
    job = replace(SAMPLE_JOBS["completed_tracked_by_id"], size_bytes=size)
    note = notification_for(job)
    email = email_text(note.body, region=REGION)
    assert email.splitlines()[0] == f"COMPLETED: export k3j9x2m8q7w4e1r is in S3 ({short}). Nothing to do."
    assert f"\nSize:            {short} ({exact}, application/gzip)\n" in email
    payload = slack_payload(note.body, region=REGION)
    assert payload["text"] == f"COMPLETED: export k3j9x2m8q7w4e1r is in S3 ({short}). Nothing to do."
    assert f"*Size*\n{short}" in attachment_texts(payload)


STUCK_AT = 1_794_124_800.0  # 2026-11-08T08:00:00Z


@pytest.mark.parametrize(("age", "said"), [(45, "45 seconds"), (1, "1 second"), (0, "0 seconds"), (60, "1 minute")])
def test_stuck_durations_under_a_minute(age: int, said: str) -> None:
    job, _, _ = SAMPLE_WARNINGS["stuck"]
    job = replace(job, tracked_at="2026-11-08T08:00:00Z")
    note = warning_for(job, Event.STUCK, STUCK_AT + age)
    email = email_text(note.body, region=REGION)
    assert email.splitlines()[0] == (
        f"STUCK: export orzzsbd7hk67xyu is still not finished at Intercom after {said}. Nothing to do yet."
    )
    assert f"\nPending since:   2026-11-08 08:00 UTC ({said})\n" in email
    assert note.body["reason"].startswith(f"Intercom still reports the export job pending after {said};")
    texts = attachment_texts(slack_payload(note.body, region=REGION))
    assert texts[0] == f"Export `orzzsbd7hk67xyu` is still not finished at Intercom after {said}. Nothing to do yet."
    assert f"*Pending since*\n2026-11-08 08:00 UTC ({said})" in texts


@pytest.mark.parametrize(("left", "said"), [(45, "45 seconds"), (1, "1 second"), (0, "0 seconds")])
def test_expiring_durations_under_a_minute(left: int, said: str) -> None:
    job, _, _ = SAMPLE_WARNINGS["expiring"]  # Intercom deletes its copy at 2026-11-10T09:34:41Z
    note = warning_for(job, Event.EXPIRING, 1_794_303_281.0 - left)
    headline = f"export orzzsbd7hk67xyu is not in S3 yet and Intercom deletes it in {said}. Action needed."
    assert email_text(note.body, region=REGION).splitlines()[0] == f"EXPIRING: {headline}"
    assert slack_payload(note.body, region=REGION)["text"] == f"EXPIRING: {headline}"
    assert note.body["reason"].startswith(f"Intercom deletes its copy at 2026-11-10T09:34:41Z, in {said}, ")


# ------------------------------------------------------------------------------------- time zone


@pytest.fixture
def kolkata() -> Iterator[None]:
    """The process's local time zone set to UTC+05:30 (os.environ and time.tzset), put back afterwards."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    try:
        assert time.localtime(0).tm_hour == 5 and time.localtime(0).tm_min == 30, "Asia/Kolkata not in effect"
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


def render_everything() -> dict[str, tuple[str, dict[str, Any]]]:
    out = {}
    for name, job in SAMPLE_JOBS.items():
        note = notification_for(job)
        out[name] = (email_text(note.body, region=REGION), slack_payload(note.body, region=REGION))
    for name, (job, event, at) in SAMPLE_WARNINGS.items():
        note = warning_for(job, event, at)  # builds times from an epoch: the likeliest place for local time
        out[name] = (email_text(note.body, region=REGION), slack_payload(note.body, region=REGION))
    return out


def test_times_render_in_utc_whatever_the_local_time_zone(kolkata: None) -> None:
    in_kolkata = render_everything()
    os.environ["TZ"] = "UTC"
    time.tzset()
    assert render_everything() == in_kolkata
    email, payload = in_kolkata["completed"]
    assert "\nDecided at:      2026-11-08 09:35 UTC (tracked since 2026-11-08 09:00 UTC)\n" in email
    assert "*Intercom's copy*\ndeleted 2026-11-10 09:34 UTC (in 47 hours)" in attachment_texts(payload)
    email, _ = in_kolkata["stuck"]
    assert "\nPending since:   2026-11-07 20:02 UTC (12 hours)\n" in email
    assert "\nNoticed at:      2026-11-08 08:05 UTC\n" in email


# ------------------------------------------------------------------------------------- free text


def test_bare_urls_in_a_reason_are_not_links_in_slack_but_read_the_same() -> None:
    reason = "download_url is on https://evil.example/x (mail admin@evil.example or www.evil.example); v1.2 ok"
    texts = attachment_texts(slack_payload(body(event="export.failed", reason=reason), region=None))
    assert texts[1] == (
        f"*Reason:* download_url is on https:{ZWSP}//evil.{ZWSP}example/x (mail admin@evil.{ZWSP}example or "
        f"www.{ZWSP}evil.{ZWSP}example); v1.2 ok"
    )
    assert texts[1].replace(ZWSP, "") == "*Reason:* " + reason  # nothing else changed
    email = email_text(body(event="export.failed", reason=reason), region=None)
    assert ZWSP not in email and "https://evil.example/x" in email  # plain text: the email shows it as sent


def test_slack_link_syntax_in_a_reason_stays_text() -> None:
    texts = attachment_texts(slack_payload(body(event="export.failed", reason="<https://x|click> <@U1>"), region=None))
    assert texts[1] == f"*Reason:* &lt;https:{ZWSP}//x|click&gt; &lt;@U1&gt;"


def test_a_reason_of_ampersands_is_cut_between_entities() -> None:
    payload = slack_payload(body(event="export.failed", reason="&" * 5000), region=None)
    assert attachment_texts(payload)[1] == "*Reason:* " + "&amp;" * 597 + "\u2026"  # 2,996 of 3,000
    email = email_text(body(event="export.failed", reason="&" * 5000), region=None)
    assert "&" * 999 + "\u2026" in email.replace("\n", "").replace(" ", "")  # REASON_MAX = 1000


def test_foreign_attributes_are_cut_between_entities() -> None:
    payload = slack_payload_for_message("x", topic_arn=None, message_id="m", attributes={"k": "&" * 300})
    context = attachment_texts(payload)[-1]
    assert (
        context == "topic `the exportwatch topic` \u00b7 message id `m` \u00b7 attributes k=" + "&amp;" * 199 + "\u2026"
    )


def test_free_text_in_the_email_is_one_clean_line() -> None:
    email = email_text(
        body(event="export.failed", reason="line one\nline two\x1b[31m red \u202eevil\ud800", intercom_status="\x00"),
        region=None,
    )
    assert "\nReason:          Line one line two [31m red evil\n" in email
    assert "Intercom status" not in email  # nothing printable left: the row is left out


def test_a_cleaned_s3_uri_gets_no_console_link() -> None:
    uri = "s3://bucket/intercom-exports/abc\n123.zip"
    email = email_text(body(event="export.completed", s3_uri=uri), region=REGION)
    assert "\nS3 object:       s3://bucket/intercom-exports/abc 123.zip\n" in email
    assert "AWS console" not in email  # the link would name another object
    texts = attachment_texts(slack_payload(body(event="export.completed", s3_uri=uri), region=REGION))
    assert "*S3:* `s3://bucket/intercom-exports/abc 123.zip`" in texts
    fine = attachment_texts(slack_payload(body(event="export.completed", s3_uri="s3://b/k`x.zip"), region=None))
    assert (
        "*S3:* `s3://b/k\u02cbx.zip`"  # a backtick would end the code span: a look-alike instead
        "\n<https://s3.console.aws.amazon.com/s3/object/b?prefix=k%60x.zip|Open in the AWS console>"
    ) in fine


def test_a_foreign_message_with_a_lone_surrogate_and_controls_is_shown_readably() -> None:
    payload = slack_payload_for_message("deploy \ud800 done\r\nnext\x07 line\u202e", subject="hi\ud800")
    texts = attachment_texts(payload)
    assert texts[0].startswith("*Subject:* hi\n")
    assert texts[1] == "```deploy \ufffd done\nnext\ufffd line\ufffd```"
    assert payload["text"] == "Message on the exportwatch topic: hi"


def test_json_nested_deeper_than_python_recurses_is_shown_raw() -> None:
    message = "[" * 100_000 + "]" * 100_000
    payload = slack_payload_for_message(message)
    assert "(JSON nested too deeply)" in attachment_texts(payload)[0]
    assert attachment_texts(payload)[1].startswith("```[[[[")

"""Notifications carry the workspace and, for a ledger window's job, the window (issue 10).

The body gains `workspace` (always) and `window_start`/`window_end` (window jobs only); the SNS attribute
`workspace` lets a subscriber filter; email and Slack show a Workspace row and a Window row. Bodies come from
anyone on the topic, so a hostile workspace or window is shown as one escaped line, or not at all.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from exportwatch.model import Event, Job, JobState
from exportwatch.notifier import Notification, notification_for, warning_for
from exportwatch.render import Rendered, email_text, slack_payload
from exportwatch_local.samples import SAMPLE_JOBS, SAMPLE_TOPIC_ARN, SAMPLE_WARNINGS
from exportwatch_local.slack_receiver import validate_payload
from support.rendered import email_rows, fields
from support.snapshots import WINDOW_SAMPLES, check_snapshot, email_snapshot_text, slack_snapshot_text

REGION = "eu-west-1"
assert SAMPLE_TOPIC_ARN.split(":")[3] == REGION
WINDOW_KEYS = {"window_start", "window_end"}


# ------------------------------------------------------------------------------------- the body and attributes


@pytest.mark.parametrize("name", sorted(SAMPLE_JOBS))
def test_every_body_has_the_workspace_and_no_window_for_a_tracked_job(name: str) -> None:
    note = notification_for(SAMPLE_JOBS[name])
    assert note.body["workspace"] == "default"
    assert not WINDOW_KEYS & set(note.body)
    assert note.workspace == "default"


@pytest.mark.parametrize("name", sorted(SAMPLE_WARNINGS))
def test_warnings_carry_the_workspace_and_window_too(name: str) -> None:
    job, event, at = SAMPLE_WARNINGS[name]
    plain = warning_for(replace(job, workspace="au-1"), event, at)
    assert plain.body["workspace"] == "au-1" and not WINDOW_KEYS & set(plain.body)
    windowed = warning_for(replace(job, window_start="2026-11-02", window_end="2026-11-02"), event, at)
    assert (windowed.body["window_start"], windowed.body["window_end"]) == ("2026-11-02", "2026-11-02")
    assert windowed.attributes["workspace"] == {"DataType": "String", "StringValue": "default"}


def test_a_window_job_body_has_its_window_and_the_old_fields_unchanged() -> None:
    job = WINDOW_SAMPLES["window_completed"]
    body = notification_for(job).body
    assert body["workspace"] == "eu"
    assert (body["window_start"], body["window_end"]) == ("2026-11-01", "2026-11-07")
    assert "window_attempt" not in body  # not part of the contract
    old = notification_for(replace(job, workspace="default", window_start=None, window_end=None)).body
    assert {k: v for k, v in body.items() if k not in WINDOW_KEYS | {"workspace"}} == {
        k: v for k, v in old.items() if k != "workspace"
    }


def test_half_a_window_is_not_put_in_the_body() -> None:
    job = Job("abc123", state=JobState.FAILED, window_start="2026-11-01")
    assert not WINDOW_KEYS & set(notification_for(job).body)


def test_attributes_add_workspace_and_keep_event_and_job_identifier() -> None:
    note = notification_for(WINDOW_SAMPLES["window_failed"])
    assert note.attributes == {
        "event": {"DataType": "String", "StringValue": "export.failed"},
        "job_identifier": {"DataType": "String", "StringValue": "e7u2kq9d3m5pz3c"},
        "workspace": {"DataType": "String", "StringValue": "eu"},
    }


def test_a_notification_built_without_a_workspace_is_the_default_one() -> None:
    note = Notification(event=Event.FAILED, job_identifier="abc123", body={"event": "export.failed"})
    assert note.attributes["workspace"]["StringValue"] == "default"


def test_the_message_is_still_sorted_stable_json() -> None:
    note = notification_for(WINDOW_SAMPLES["window_completed"])
    assert note.message == json.dumps(note.body, sort_keys=True, separators=(", ", ": "))
    assert list(json.loads(note.message)) == sorted(note.body)


# ------------------------------------------------------------------------------------- reviewed snapshots


@pytest.mark.parametrize("name", sorted(WINDOW_SAMPLES))
def test_window_email_matches_snapshot(name: str) -> None:
    check_snapshot(f"email/{name}.txt", email_snapshot_text(notification_for(WINDOW_SAMPLES[name]), REGION))


@pytest.mark.parametrize("name", sorted(WINDOW_SAMPLES))
def test_window_slack_payload_matches_snapshot(name: str) -> None:
    payload = slack_payload(notification_for(WINDOW_SAMPLES[name]).body, region=REGION)
    assert validate_payload(payload) is None
    check_snapshot(f"slack/{name}.json", slack_snapshot_text(payload))


def test_the_failed_window_names_its_window_workspace_and_attempts() -> None:
    note = notification_for(WINDOW_SAMPLES["window_failed"])
    text = email_text(note.body, region=REGION)
    rows = email_rows(text)
    assert rows["Workspace"] == "eu" and rows["Window"] == "2026-11-03"
    assert "Window 2026-11-03 of workspace eu failed after 3 attempts" in " ".join(text.split())
    shown = fields(slack_payload(note.body, region=REGION))
    assert shown["Workspace"] == "`eu`" and shown["Window"] == "2026-11-03"


def test_the_completed_window_shows_its_days() -> None:
    body = notification_for(WINDOW_SAMPLES["window_completed"]).body
    assert email_rows(email_text(body, region=REGION))["Window"] == "2026-11-01 .. 2026-11-07"
    assert fields(slack_payload(body, region=REGION))["Window"] == "2026-11-01 .. 2026-11-07"


# ------------------------------------------------------------------------------------- older and hostile bodies


def test_a_body_from_before_workspaces_renders_without_the_rows() -> None:
    body = notification_for(SAMPLE_JOBS["completed"]).body
    old = {k: v for k, v in body.items() if k != "workspace"}
    assert "Workspace" not in email_rows(email_text(old, region=REGION))
    assert "Workspace" not in fields(slack_payload(old, region=REGION))
    # ...and the rest is what it was: only the Workspace row differs.
    with_row = email_text(body, region=REGION).splitlines()
    assert [line for line in with_row if not line.startswith("Workspace:")] == email_text(
        old, region=REGION
    ).splitlines()


HOSTILE_WORKSPACES = [
    "eu\nDecided at:      never",
    "<!channel> & <https://evil.example/x|click>",
    "evil.example",
    "https://evil.example/x",
    "`code` *bold* ```",
    "\u202eue\u2066",
    "\x1b[31mred\x1b[0m",
    "\ud800",
    "x" * 5000,
    "EU",
]


@pytest.mark.parametrize("workspace", HOSTILE_WORKSPACES)
def test_a_hostile_workspace_is_one_escaped_line(workspace: str) -> None:
    body = {"event": "export.failed", "job_identifier": "abc123", "workspace": workspace, "reason": "r"}
    text = email_text(body, region=REGION)
    lines = text.splitlines()
    assert all(line.isprintable() for line in lines)
    shown = [line for line in lines if line.startswith("Workspace:")]
    assert len(shown) <= 1
    assert "Decided at:      never" not in text
    if shown:
        assert len(shown[0]) <= 17 + 63  # cut to a workspace name's length
    payload = slack_payload(body, region=REGION)
    assert validate_payload(payload) is None
    value = fields(payload).get("Workspace")
    if value is None:
        return
    assert value.startswith("`") and value.endswith("`") and value.count("`") == 2  # one code span, not ended early
    inner = value[1:-1]
    assert "<" not in inner and ">" not in inner and "\n" not in inner
    assert "://" not in inner and "evil.example" not in inner  # Slack cannot make it a link
    assert all(ch.isprintable() or ch == "\u200b" for ch in inner)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-11-07", "2026-11-01"),  # backwards
        ("2026-02-30", "2026-03-01"),  # no such day
        ("20261101", "20261107"),  # not YYYY-MM-DD (date.fromisoformat would take it)
        ("2026-W45-1", "2026-W45-7"),
        ("2026-11-01T00:00:00Z", "2026-11-07T23:59:59Z"),
        ("\u0662\u0660\u0662\u0666-11-01", "2026-11-07"),  # Arabic-Indic digits
        ("2026-11-01\n", "2026-11-07"),
        ("<!channel>", "2026-11-07"),
        (20261101, 20261107),
        (["2026-11-01"], None),
        ("2026-11-01", None),
        (None, "2026-11-07"),
    ],
)
def test_a_window_that_is_not_two_ordered_days_is_not_shown(start: object, end: object) -> None:
    body: dict[str, Any] = {"event": "export.completed", "job_identifier": "abc123", "workspace": "eu"}
    body.update({k: v for k, v in (("window_start", start), ("window_end", end)) if v is not None})
    view = Rendered.from_body(body)
    assert view.window_start is None and view.window_end is None
    text = email_text(body, region=REGION)
    assert "Window" not in email_rows(text) and "channel" not in text
    payload = slack_payload(body, region=REGION)
    assert validate_payload(payload) is None
    assert "Window" not in fields(payload) and "channel" not in json.dumps(payload)
    assert fields(payload)["Workspace"] == "`eu`"


def test_slack_fields_stay_within_slacks_ten() -> None:
    # Everything at once: every field the renderer can send.
    job, event, at = SAMPLE_WARNINGS["stuck"]
    body = warning_for(replace(job, window_start="2026-11-01", window_end="2026-11-07"), event, at).body
    body.update(size_bytes=1, download_expires_at="2026-11-10T09:34:41Z")
    payload = slack_payload(body, region=REGION)
    assert validate_payload(payload) is None
    assert 8 <= len(fields(payload)) <= 10


def _failed_body(**fields: object) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": 1,
        "event": "export.failed",
        "job_identifier": "abc123",
        "intercom_status": "failed",
        "occurred_at": "2026-11-08T09:35:00Z",
        "reason": "Intercom reported the export job failed",
        "created_at_after": "2026-11-03T00:00:00Z",
        "created_at_before": "2026-11-03T23:59:59Z",
    }
    body.update(fields)
    return body


@pytest.mark.parametrize(
    ("fields", "command"),
    [
        ({}, "exportwatch start --since 2026-11-03 --until 2026-11-03"),
        ({"workspace": "default"}, "exportwatch start --since 2026-11-03 --until 2026-11-03"),
        ({"workspace": "eu"}, "exportwatch start --since 2026-11-03 --until 2026-11-03 --workspace eu"),
        (
            {"workspace": "eu", "window_start": "2026-11-03", "window_end": "2026-11-03"},
            "exportwatch backfill --workspace eu --since 2026-11-03 --until 2026-11-03",
        ),
        # A name that breaks the rule never reaches a command a person may paste.
        ({"workspace": "eu; rm -rf /"}, "exportwatch start --since 2026-11-03 --until 2026-11-03"),
        (
            {"workspace": "EU $(x)", "window_start": "2026-11-03", "window_end": "2026-11-03"},
            "exportwatch start --since 2026-11-03 --until 2026-11-03",
        ),
    ],
)
def test_the_next_step_command_makes_the_export_again_in_its_workspace(fields: dict[str, object], command: str) -> None:
    text = email_text(_failed_body(**fields), region="us-east-1")
    commands = [
        line.strip() for line in text.splitlines() if line.strip().startswith("exportwatch ") and "--since" in line
    ]
    assert commands == [command]

"""Notifications for the reporting export family (issue 11): `kind`, `dataset`, the Dataset row, the next step.

Every body gains `kind` ("content" | "reporting") and `dataset` (null for content); the SNS attribute `dataset`
is set for reporting jobs only. Email and Slack show a Dataset row for a reporting job whose dataset follows the
rule [a-z0-9][a-z0-9_]{0,63}; the body can come from anyone, so any other value is never shown and no command is
suggested for it. The next step of a reporting job names its dataset (`--dataset ID`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from exportwatch.model import Event, Job, JobState
from exportwatch.notifier import notification_for, warning_for
from exportwatch.render import Rendered, email_text, slack_payload, start_command
from exportwatch_local.samples import SAMPLE_JOBS, SAMPLE_WARNINGS
from exportwatch_local.slack_receiver import validate_payload
from support.rendered import email_rows, fields
from support.snapshots import WINDOW_SAMPLES

REGION = "eu-west-1"
NEW_KEYS = {"kind", "dataset"}
REPORTING = {"kind": "reporting", "dataset": "conversation"}


def email_command(text: str) -> str | None:
    """The next step's command line of an email (indented by four spaces), or None."""
    commands = [line.strip() for line in text.splitlines() if line.startswith("    exportwatch ")]
    assert len(commands) <= 1
    return commands[0] if commands else None


def slack_command(payload: dict[str, Any]) -> str | None:
    texts = [b["text"]["text"] for b in payload["attachments"][0]["blocks"] if "text" in b]
    commands = [t.split("```")[1] for t in texts if t.startswith("*Next step:*") and "```" in t]
    assert len(commands) <= 1
    return commands[0] if commands else None


def reporting_job(**changes: Any) -> Job:
    """A reporting export made with `exportwatch start --dataset conversation` (no window), failed."""
    job = Job(
        job_identifier="r4p9cv2w8n6tq2b",
        state=JobState.FAILED,
        intercom_status="failed",
        tracked_at="2026-11-08T09:00:12Z",
        outcome_at="2026-11-08T09:35:04Z",
        outcome_reason="Intercom reports the export job failed",
        created_at_after="2026-11-01T00:00:00Z",
        created_at_before="2026-11-07T23:59:59Z",
        kind="reporting",
        dataset="conversation",
        api_version="2.16",
    )
    return replace(job, **changes)


# ------------------------------------------------------------------------------------- the body and attributes


@pytest.mark.parametrize("name", sorted(SAMPLE_JOBS))
def test_a_content_body_says_content_with_a_null_dataset_and_no_dataset_attribute(name: str) -> None:
    note = notification_for(SAMPLE_JOBS[name])
    assert note.body["kind"] == "content"
    assert "dataset" in note.body and note.body["dataset"] is None
    assert note.dataset is None
    assert set(note.attributes) == {"event", "job_identifier", "workspace"}
    assert '"dataset": null' in note.message and '"kind": "content"' in note.message


@pytest.mark.parametrize("name", sorted(SAMPLE_WARNINGS))
def test_warnings_carry_kind_and_dataset_too(name: str) -> None:
    job, event, at = SAMPLE_WARNINGS[name]
    plain = warning_for(job, event, at)
    assert (plain.body["kind"], plain.body["dataset"]) == ("content", None)
    assert "dataset" not in plain.attributes
    reporting = warning_for(replace(job, **REPORTING), event, at)
    assert (reporting.body["kind"], reporting.body["dataset"]) == ("reporting", "conversation")
    assert reporting.attributes["dataset"] == {"DataType": "String", "StringValue": "conversation"}


def test_a_reporting_body_has_kind_and_dataset_and_everything_else_unchanged() -> None:
    job = reporting_job()
    note = notification_for(job)
    assert note.body["kind"] == "reporting"
    assert note.body["dataset"] == "conversation"
    assert "api_version" not in note.body  # recorded with the archived window, not part of the notification
    content = notification_for(replace(job, kind="content", dataset=None, api_version=None)).body
    assert set(note.body) == set(content)
    assert {k: v for k, v in note.body.items() if k not in NEW_KEYS} == {
        k: v for k, v in content.items() if k not in NEW_KEYS
    }


def test_a_reporting_job_gets_the_dataset_attribute() -> None:
    note = notification_for(WINDOW_SAMPLES["reporting_window_failed"])
    assert note.attributes == {
        "event": {"DataType": "String", "StringValue": "export.failed"},
        "job_identifier": {"DataType": "String", "StringValue": "r4p9cv2w8n6tq3c"},
        "workspace": {"DataType": "String", "StringValue": "eu"},
        "dataset": {"DataType": "String", "StringValue": "conversation"},
    }


def test_a_content_job_with_a_stray_dataset_publishes_none() -> None:
    note = notification_for(replace(SAMPLE_JOBS["failed"], kind="content", dataset="conversation"))
    assert (note.body["kind"], note.body["dataset"]) == ("content", None)
    assert "dataset" not in note.attributes


def test_the_reporting_samples_are_windows_with_a_reporting_key() -> None:
    body = notification_for(WINDOW_SAMPLES["reporting_window_completed"]).body
    assert body["s3_uri"].endswith("/intercom-exports/eu/reporting/conversation/dt=2026-11-01/r4p9cv2w8n6tq1a.gz")
    assert (body["workspace"], body["window_start"], body["window_end"]) == ("eu", "2026-11-01", "2026-11-07")


# ------------------------------------------------------------------------------------- the Dataset row


@pytest.mark.parametrize("name", ["reporting_window_completed", "reporting_window_failed"])
def test_email_and_slack_show_the_dataset(name: str) -> None:
    body = notification_for(WINDOW_SAMPLES[name]).body
    assert email_rows(email_text(body, region=REGION))["Dataset"] == "conversation"
    payload = slack_payload(body, region=REGION)
    assert validate_payload(payload) is None
    assert fields(payload)["Dataset"] == "`conversation`"
    assert list(fields(payload))[:3] == ["Job", "Workspace", "Dataset"]


@pytest.mark.parametrize("name", sorted(SAMPLE_JOBS))
def test_content_jobs_show_no_dataset_row(name: str) -> None:
    body = notification_for(SAMPLE_JOBS[name]).body
    assert "Dataset" not in email_rows(email_text(body, region=REGION))
    assert "Dataset" not in fields(slack_payload(body, region=REGION))


def test_a_reporting_email_is_the_content_email_plus_the_dataset() -> None:
    """Everything else a person reads is unchanged: only the Dataset row and `--dataset` in the command."""
    job = reporting_job()
    reporting = email_text(notification_for(job).body, region=REGION)
    content = email_text(notification_for(replace(job, kind="content", dataset=None)).body, region=REGION)
    assert "Dataset:         conversation\n" in reporting
    stripped = reporting.replace("Dataset:         conversation\n", "").replace(" --dataset conversation", "")
    assert stripped == content


@pytest.mark.parametrize(
    "dataset",
    [
        "<!channel>",
        "<https://evil.example/x|click>",
        "evil.example",
        "https://evil.example/x",
        "Conversation",
        "_conversation",
        "conversation\n",
        "conversation; rm -rf ~",
        "conv`ersation",
        "a" * 65,
        "",
        " ",
        "\u202econversation",
        "conversation\u200b",
        5,
        True,
        None,
        ["conversation"],
        {"id": "conversation"},
    ],
)
def test_a_hostile_dataset_is_never_shown_and_gets_no_command(dataset: object) -> None:
    body = notification_for(reporting_job(workspace="eu")).body | {"dataset": dataset}
    assert Rendered.from_body(body).dataset is None
    assert start_command(Rendered.from_body(body)) is None
    text = email_text(body, region=REGION)
    assert "Dataset" not in email_rows(text)
    assert "Next step" in email_rows(text)  # the advice stays, without a command line
    assert email_command(text) is None
    payload = slack_payload(body, region=REGION)
    assert validate_payload(payload) is None
    assert "Dataset" not in fields(payload)
    assert slack_command(payload) is None
    if isinstance(dataset, str) and dataset.strip():
        shown = [text, *(str(b) for b in payload["attachments"][0]["blocks"]), payload["text"]]
        assert not any(dataset in piece for piece in shown)


@pytest.mark.parametrize("kind", ["Reporting", "report", "", None, 1, ["reporting"], "reporting\u200b"])
def test_an_unknown_kind_shows_no_dataset_and_no_command(kind: object) -> None:
    body = notification_for(reporting_job()).body | {"kind": kind}
    view = Rendered.from_body(body)
    assert (view.kind, view.dataset) == (None, None)
    text = email_text(body, region=REGION)
    assert "Dataset" not in email_rows(text) and email_command(text) is None
    payload = slack_payload(body, region=REGION)
    assert "Dataset" not in fields(payload) and slack_command(payload) is None


def test_a_content_body_with_a_dataset_shows_no_row_and_the_content_command() -> None:
    body = notification_for(SAMPLE_JOBS["failed"]).body | {"dataset": "conversation"}
    text = email_text(body, region=REGION)
    assert "Dataset" not in email_rows(text)
    assert email_command(text) == "exportwatch start --since 2026-11-01 --until 2026-11-07"


def test_a_body_from_before_kinds_is_a_content_export() -> None:
    body = {k: v for k, v in notification_for(SAMPLE_JOBS["failed"]).body.items() if k not in NEW_KEYS}
    view = Rendered.from_body(body)
    assert (view.kind, view.dataset, view.reporting) == ("content", None, False)
    assert email_text(body, region=REGION) == email_text(notification_for(SAMPLE_JOBS["failed"]).body, region=REGION)


# ------------------------------------------------------------------------------------- the next step


WEEK = {"created_at_after": "2026-11-01T00:00:00Z", "created_at_before": "2026-11-07T23:59:59Z"}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            {"workspace": "eu", "window_start": "2026-11-01", "window_end": "2026-11-07", **WEEK},
            "exportwatch backfill --workspace eu --since 2026-11-01 --until 2026-11-07 --dataset conversation",
            id="window",
        ),
        pytest.param(
            {"workspace": "default", "window_start": "2026-11-03", "window_end": "2026-11-03"},
            "exportwatch backfill --workspace default --since 2026-11-03 --until 2026-11-03 --dataset conversation",
            id="default-window",
        ),
        pytest.param(
            {"workspace": "default", **WEEK},
            "exportwatch start --dataset conversation --since 2026-11-01 --until 2026-11-07",
            id="default-workspace",
        ),
        pytest.param(
            {"workspace": "eu", **WEEK},
            "exportwatch start --dataset conversation --since 2026-11-01 --until 2026-11-07 --workspace eu",
            id="named-workspace",
        ),
        pytest.param(
            {"workspace": "eu"},
            "exportwatch start --dataset conversation --since YYYY-MM-DD --until YYYY-MM-DD --workspace eu",
            id="tracked-by-id",
        ),
        pytest.param(  # reporting start takes whole days: the days of the range
            {"created_at_after": "2026-11-07T10:00:00Z", "created_at_before": "2026-11-07T12:30:00Z"},
            "exportwatch start --dataset conversation --since 2026-11-07 --until 2026-11-07",
            id="part-of-a-day",
        ),
        pytest.param(  # a workspace that breaks the rule is left out, and with it the window's backfill
            {"workspace": "EU; rm -rf ~", "window_start": "2026-11-01", "window_end": "2026-11-07", **WEEK},
            "exportwatch start --dataset conversation --since 2026-11-01 --until 2026-11-07",
            id="hostile-workspace",
        ),
    ],
)
def test_the_next_step_command_of_a_reporting_job(extra: dict[str, Any], expected: str) -> None:
    body = {"event": "export.failed", "job_identifier": "r4p9cv2w8n6tq2b", "reason": "failed", **REPORTING, **extra}
    assert start_command(Rendered.from_body(body)) == expected
    assert email_command(email_text(body, region=REGION)) == expected
    assert slack_command(slack_payload(body, region=REGION)) == expected


def test_the_failed_reporting_window_sample_backfills_its_dataset() -> None:
    body = notification_for(WINDOW_SAMPLES["reporting_window_failed"]).body
    expected = "exportwatch backfill --workspace eu --since 2026-11-01 --until 2026-11-07 --dataset conversation"
    assert email_command(email_text(body, region=REGION)) == expected
    assert slack_command(slack_payload(body, region=REGION)) == expected


@pytest.mark.parametrize("event", [Event.FAILED, Event.CANCELED, Event.NOT_FOUND, Event.EXPIRED])
def test_every_outcome_that_suggests_a_new_export_names_the_dataset(event: Event) -> None:
    body = notification_for(reporting_job()).body | {"event": event.value}
    assert email_command(email_text(body, region=REGION)) == (
        "exportwatch start --dataset conversation --since 2026-11-01 --until 2026-11-07"
    )


@pytest.mark.parametrize("event", [Event.COMPLETED, Event.NO_DATA])
def test_outcomes_without_a_command_stay_so_for_reporting(event: Event) -> None:
    body = notification_for(reporting_job()).body | {"event": event.value}
    assert email_command(email_text(body, region=REGION)) is None
    assert slack_command(slack_payload(body, region=REGION)) is None

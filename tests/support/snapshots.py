"""Reviewed output files under tests/snapshots/ (tests/integration/test_render.py, test_slack_notifier.py)."""

from __future__ import annotations

import json
import os
import unicodedata
from dataclasses import replace
from typing import Any, Final

import pytest

from exportwatch.model import Job
from exportwatch.notifier import Notification
from exportwatch_local.samples import SAMPLE_BUCKET, SAMPLE_JOBS
from support.paths import SNAPSHOTS


def check_snapshot(relative: str, actual: str) -> None:
    """Compare `actual` with the reviewed file tests/snapshots/<relative>; UPDATE_SNAPSHOTS=1 rewrites it.

    A snapshot is only ever written on request, so a rendering change shows up as a failing test and a diff
    to review, never as a silently accepted new file. Never in CI (the CI variable set, as CI services do): a
    pipeline left with UPDATE_SNAPSHOTS=1 would accept every change unseen, so there it fails instead.
    """
    path = SNAPSHOTS / relative
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false"):
            pytest.fail(f"UPDATE_SNAPSHOTS=1 in CI (CI={os.environ['CI']!r}): snapshots are only updated by hand")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.is_file(), f"no snapshot {relative}; review the output, then run with UPDATE_SNAPSHOTS=1"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{relative} changed; if the change is intended, rerun with UPDATE_SNAPSHOTS=1"


# ------------------------------------------------------------------------------------- ledger windows' notices

_WINDOW_KEY: Final = "intercom-exports/eu/content/dt=2026-11-01/e7u2kq9d3m5pz1x.zip"
# A reporting export's key: {prefix}{workspace}/reporting/{dataset}/dt=YYYY-MM-DD/{job_id}.{ext} (a gzip CSV).
_REPORTING_KEY: Final = "intercom-exports/eu/reporting/conversation/dt=2026-11-01/r4p9cv2w8n6tq1a.gz"

# name -> a window job's final state; the names are the snapshot file names (email/<name>.txt, slack/<name>.json).
# Pinned like exportwatch_local.samples (same bucket, times and topic region), in workspace `eu`.
WINDOW_SAMPLES: Final[dict[str, Job]] = {
    # A week's window archived on its first export.
    "window_completed": replace(
        SAMPLE_JOBS["completed"],
        job_identifier="e7u2kq9d3m5pz1x",
        workspace="eu",
        window_start="2026-11-01",
        window_end="2026-11-07",
        window_attempt=1,
        s3_uri=f"s3://{SAMPLE_BUCKET}/{_WINDOW_KEY}",
    ),
    # A one-day window's last allowed export failed too: the one export.failed the window gets.
    "window_failed": replace(
        SAMPLE_JOBS["failed"],
        job_identifier="e7u2kq9d3m5pz3c",
        workspace="eu",
        window_start="2026-11-03",
        window_end="2026-11-03",
        window_attempt=3,
        created_at_after="2026-11-03T00:00:00Z",
        created_at_before="2026-11-03T23:59:59Z",
        outcome_reason="window 2026-11-03 of workspace eu failed after 3 attempts: "
        "Intercom reported the export job failed",
    ),
    # Issue 11: a week of the `conversation` reporting dataset, archived on its first export (a Dataset row).
    "reporting_window_completed": replace(
        SAMPLE_JOBS["completed"],
        job_identifier="r4p9cv2w8n6tq1a",
        workspace="eu",
        kind="reporting",
        dataset="conversation",
        api_version="2.16",
        window_start="2026-11-01",
        window_end="2026-11-07",
        window_attempt=1,
        intercom_status="complete",  # the reporting family's spelling in Intercom's examples
        s3_uri=f"s3://{SAMPLE_BUCKET}/{_REPORTING_KEY}",
        size_bytes=3_214_877,
        sha256="5d41c0b7e2a9f8136c4e0d7a9b2f1e8c3a6d5b4e7f0c9a8b1d2e3f4a5b6c7d8e",
        content_type="application/gzip",
    ),
    # The same week's last allowed export failed: its next step backfills the window again, with --dataset.
    "reporting_window_failed": replace(
        SAMPLE_JOBS["failed"],
        job_identifier="r4p9cv2w8n6tq3c",
        workspace="eu",
        kind="reporting",
        dataset="conversation",
        api_version="2.16",
        window_start="2026-11-01",
        window_end="2026-11-07",
        window_attempt=3,
        # as windows.judge words it: the dataset, the window, the workspace, then the last attempt's reason
        outcome_reason="conversation window 2026-11-01..2026-11-07 of workspace eu failed after 3 attempts: "
        f"{SAMPLE_JOBS['failed'].outcome_reason}",
    ),
}


def email_snapshot_text(note: Notification, region: str | None) -> str:
    """What tests/snapshots/email/*.txt hold: the Subject line, then the email (as tests/integration/test_render.py)."""
    return f"Subject: {note.subject}\n\n{note.email(region)}"


def slack_snapshot_text(payload: dict[str, Any]) -> str:
    """What tests/snapshots/slack/*.json hold: the payload, indented, invisible format characters as JSON escapes
    (so a reviewer sees them; they only occur inside strings, so the file still parses to the payload)."""
    text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    return "".join(f"\\u{ord(ch):04x}" if unicodedata.category(ch) == "Cf" else ch for ch in text)

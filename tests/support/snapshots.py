"""Reviewed output files under tests/snapshots/ (tests/integration/test_render.py, test_slack_notifier.py)."""

from __future__ import annotations

import os

import pytest

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

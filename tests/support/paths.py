"""Where things are in the checkout, for every tier (tests/<tier>/test_x.py never counts parents itself)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
EVENTS = REPO_ROOT / "events"
SNAPSHOTS = REPO_ROOT / "tests" / "snapshots"

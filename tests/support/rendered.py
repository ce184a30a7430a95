"""Reading a rendered notification back: the Slack payload's fields and the email's rows, by label."""

from __future__ import annotations

from typing import Any


def fields(payload: dict[str, Any]) -> dict[str, str]:
    """The Slack field texts by label ("*Workspace*\\n`eu`" -> {"Workspace": "`eu`"})."""
    out: dict[str, str] = {}
    for block in payload["attachments"][0]["blocks"]:
        for item in block.get("fields", []):
            label, _, value = item["text"].partition("\n")
            out[label.strip("*")] = value
    return out


def email_rows(text: str) -> dict[str, str]:
    """The email's `Label:   value` rows (first line of each)."""
    rows: dict[str, str] = {}
    for line in text.splitlines():
        if line[:1].isalpha() and ":" in line[:17] and line[17:18] != " ":
            label, _, value = line.partition(":")
            rows.setdefault(label, value.strip())
    return rows

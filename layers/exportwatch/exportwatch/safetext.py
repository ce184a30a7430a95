"""Untrusted text made safe for one log line or one field of a message: the single helper for it.

Intercom's error messages, host names from a URL, reasons built from them and foreign SNS messages all end
up in logs, emails and Slack. Whatever they hold (control characters, line breaks, bidi overrides, lone
surrogates that cannot be encoded), what leaves here is one printable line of bounded length. Clip first,
escape after (render.py escapes for Slack), so an escape is never cut in half.
"""

from __future__ import annotations

import unicodedata

ELLIPSIS = "\u2026"


def _safe_char(ch: str) -> str:
    # Cc control, Cf format (bidi overrides, zero-width), Cs lone surrogates, Co private use, Cn unassigned,
    # Zl/Zp line and paragraph separators: none belongs in a single line a person reads.
    category = unicodedata.category(ch)
    if category[0] == "C" or category in ("Zl", "Zp"):
        return " "
    return ch


def one_line(text: object, limit: int) -> str:
    """`text` as one printable line of at most `limit` characters (cut ones end with an ellipsis).

    Non-printable characters become spaces, runs of whitespace collapse to one, and the ends are stripped.
    A non-string is shown by its type name only: its str() is not ours to trust.
    """
    if not isinstance(text, str):
        text = type(text).__name__
    flat = " ".join("".join(_safe_char(ch) for ch in text).split())
    if limit <= 0:
        return ""
    if len(flat) <= limit:
        return flat
    return flat[: limit - 1].rstrip() + ELLIPSIS

"""Notifications cannot be bent: arbitrary bodies and SNS messages, rendered, stay within every limit.

Hypothesis feeds the renderers bodies whose free text is anything at all (lone surrogates, control characters,
bidi overrides, huge strings, runs of &<>, URLs, backticks) and checks what people would get: every Slack block
within Slack's limits (written out here, not read from the renderer), a payload that encodes as UTF-8 (what
SlackWebhook.post sends), no entity cut in half, no link but exportwatch's own, and an email whose lines are
printable. Limits: api.slack.com/reference/block-kit/blocks.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exportwatch.model import Event
from exportwatch.render import email_text, slack_payload, slack_payload_for_message
from exportwatch_local.slack_receiver import validate_payload

# Slack's limits, independent of render.py's constants.
HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
FIELDS_MAX = 10
CONTEXT_ELEMENTS_MAX = 10
CONTEXT_TEXT_MAX = 3000
TEXT_MAX = 3000  # Slack takes 40,000; the notification line is kept far shorter

PIECES = [
    "\ud800",
    "\udfff",
    "\U0001f600",
    "&",
    "<",
    ">",
    "&amp;",
    "<!channel>",
    "<https://evil.example/x|click>",
    "https://evil.example/x",
    "http://10.0.0.1/",
    "www.evil.example",
    "evil.example",
    "mail@evil.example",
    "\n",
    "\r\n",
    "\t",
    "\x00",
    "\x1b[31m",
    "\x85",
    "\u202e",
    "\u2066",
    "\u2028",
    "\u200b",
    "\ufeff",
    "\u00a0",
    "`",
    "```",
    "*",
    "_",
    "~",
    "é",
    " ",
    ".",
    ":",
    "//",
    "x",
]
REPEATED = ["&", "<", ">", "a.b ", "https://e.x/ ", "\ud800", "é", "x", "`", "\n"]

free_text = st.one_of(
    st.text(st.characters(), max_size=50),  # any code point, surrogates included
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(st.characters(), max_size=4)), max_size=40).map("".join),
    st.builds(lambda piece, n: piece * n, st.sampled_from(REPEATED), st.integers(1, 5_000)),
)
maybe_text = st.one_of(st.none(), free_text, st.integers(), st.lists(st.integers(), max_size=2))
times = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "2026-11-01T00:00:00Z",
            "2026-11-07T23:59:59Z",
            "2026-11-08T09:35:04Z",
            "0001-01-01T00:00:00+23:59",  # past the calendar's start once made UTC
            "9999-12-31T23:59:59-23:59",
            "2026-02-30T00:00:00Z",
        ]
    ),
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
    free_text,
)
days = st.one_of(  # a ledger window's first and last day: YYYY-MM-DD, or anything else a publisher sends
    st.none(),
    st.dates().map(lambda d: d.isoformat()),
    st.sampled_from(["2026-11-01", "2026-11-07", "2026-02-30", "20261101", "2026-W45-1", "0001-01-01"]),
    free_text,
)
workspaces = st.one_of(maybe_text, st.from_regex(r"[a-z0-9][a-z0-9-]{0,62}", fullmatch=True))
kinds = st.one_of(st.sampled_from(["content", "reporting", "Reporting", ""]), maybe_text)  # issue 11
datasets = st.one_of(  # a reporting export's dataset id, [a-z0-9][a-z0-9_]{0,63}, or anything else
    maybe_text,
    st.from_regex(r"[a-z0-9][a-z0-9_]{0,63}", fullmatch=True),
    st.sampled_from(["conversation", "a" * 65, "evil.example", "<!channel>", "conv`x", "conversation\n"]),
)
counts = st.one_of(st.none(), st.integers(-5, 2**70), st.booleans(), st.floats(), free_text)
job_ids = st.one_of(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", fullmatch=True), st.just("orzzsbd7hk67xyu"))
s3_uris = st.one_of(
    maybe_text,
    st.builds(lambda bucket, key: f"s3://{bucket}/{key}", free_text, free_text),
    st.just("s3://bucket/intercom-exports/orzzsbd7hk67xyu.zip"),
)
bodies = st.fixed_dictionaries(
    {"event": st.sampled_from([e.value for e in Event]), "job_identifier": job_ids},
    optional={
        "version": st.just(1),
        "reason": maybe_text,
        "intercom_status": maybe_text,
        "s3_uri": s3_uris,
        "sha256": maybe_text,
        "content_type": maybe_text,
        "size_bytes": counts,
        "occurred_at": times,
        "tracked_at": times,
        "created_at_after": times,
        "created_at_before": times,
        "download_expires_at": times,
        "time_left_seconds": counts,
        "pending_since": times,
        "pending_seconds": counts,
        "workspace": workspaces,
        "window_start": days,
        "window_end": days,
        "kind": kinds,
        "dataset": datasets,
    },
)
regions = st.one_of(
    st.none(), st.just("eu-west-1"), st.from_regex(r"[a-z0-9-]{1,40}", fullmatch=True)
)  # region_from_arn
topic_arns = st.one_of(
    st.none(),
    st.just("arn:aws:sns:eu-west-1:123456789012:exportwatch-NotifyTopic-Q1W2E3R4T5Y6"),
    st.builds(lambda name: f"arn:aws:sns:eu-west-1:123456789012:{name}", free_text),
    free_text,
)
messages = st.one_of(
    free_text,
    st.builds(json.dumps, bodies),  # ours: JSON escapes a lone surrogate, json.loads brings it back
    st.builds(lambda body: json.dumps(body, ensure_ascii=False), bodies),
    st.builds(lambda n: "[" * n + "]" * n, st.integers(1, 5000)),  # nested deeper than Python recurses
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# exportwatch's own link and the places where text is shown as code, exactly as the renderer lays them out:
# only these may hold something Slack could link (the S3 URI is shown exactly, to be copied).
CONSOLE_LINK_RE = re.compile(r"<https://s3\.console\.aws\.amazon\.com/s3/object/[^<>|\s]*\|Open in the AWS console>")
OWN_CODE_RE = re.compile(r"\*S3:\* `[^`]*`|```.*?```|`export\.[a-z_]+`", re.DOTALL)
LINKABLE_RE = re.compile(r"://|[^\W_]\.[^\W\d_]")  # a scheme, or a host name's dot
CUT_ENTITY_RE = re.compile(r"&(?!(?:amp|lt|gt);)")


def _texts(payload: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, text) for every text in a payload, each checked against its own limit below."""
    yield "text", payload["text"]
    for block in [*payload.get("blocks", []), *(b for a in payload.get("attachments", []) for b in a["blocks"])]:
        if block["type"] == "header":
            yield "header", block["text"]["text"]
        elif block["type"] == "section":
            if "text" in block:
                yield "section", block["text"]["text"]
            for item in block.get("fields", []):
                yield "field", item["text"]
        elif block["type"] == "context":
            for item in block["elements"]:
                yield "context", item["text"]


LIMITS = {
    "text": TEXT_MAX,
    "header": HEADER_MAX,
    "section": SECTION_MAX,
    "field": FIELD_MAX,
    "context": CONTEXT_TEXT_MAX,
}


def assert_slack_safe(payload: dict[str, Any]) -> None:
    assert validate_payload(payload) is None, validate_payload(payload)  # the receiver's Slack rules
    json.dumps(payload, ensure_ascii=False).encode("utf-8")  # what SlackWebhook.post sends: no lone surrogate
    blocks = [b for a in payload["attachments"] for b in a["blocks"]]
    assert len(payload["blocks"]) + len(blocks) <= 50
    for block in blocks:
        assert len(block.get("fields", [])) <= FIELDS_MAX
        assert len(block.get("elements", [])) <= CONTEXT_ELEMENTS_MAX
    for where, text in _texts(payload):
        assert isinstance(text, str) and text, where
        assert len(text) <= LIMITS[where], (where, len(text))
        for ch in text:  # one printable line per value: only the layout's own line breaks (and a raw block's tabs)
            assert ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs", "Zl", "Zp"), (where, repr(ch))
        if where == "header":
            continue  # plain_text: nothing is escaped, nothing is linked
        assert not CUT_ENTITY_RE.search(text), (where, text[-40:])
        outside = OWN_CODE_RE.sub("", CONSOLE_LINK_RE.sub("", text))
        assert "<" not in outside and ">" not in outside, (where, outside)
        assert not LINKABLE_RE.search(outside), (where, LINKABLE_RE.search(outside))


@SETTINGS
@given(body=bodies, region=regions)
@example(body={"event": "export.failed", "job_identifier": "j", "reason": "&" * 1000}, region=None)
@example(body={"event": "export.completed", "job_identifier": "j", "s3_uri": "s3://b/" + "é" * 1024}, region="r")
@example(  # every field Slack can show at once (9 of its 10): a reporting window's warning with all of them
    body={
        "event": "export.stuck",
        "job_identifier": "j",
        "workspace": "eu",
        "kind": "reporting",
        "dataset": "conversation",
        "window_start": "2026-11-01",
        "window_end": "2026-11-07",
        "created_at_after": "2026-11-01T00:00:00Z",
        "created_at_before": "2026-11-07T23:59:59Z",
        "size_bytes": 1,
        "download_expires_at": "2026-11-10T09:34:41Z",
        "pending_since": "2026-11-08T09:00:12Z",
        "pending_seconds": 60,
        "intercom_status": "pending",
    },
    region=None,
)
def test_any_body_renders_within_slacks_limits(body: dict[str, Any], region: str | None) -> None:
    assert_slack_safe(slack_payload(body, region=region))


@SETTINGS
@given(
    message=messages,
    subject=st.one_of(st.none(), free_text),
    topic_arn=topic_arns,
    message_id=st.one_of(st.none(), free_text),
    attributes=st.dictionaries(free_text, free_text, max_size=10),
)
@example(message="[" * 100_000 + "]" * 100_000, subject=None, topic_arn=None, message_id=None, attributes={})
@example(message="x", subject="\ud800", topic_arn=None, message_id="\ud800", attributes={"k": "&" * 300})
def test_any_sns_message_renders_within_slacks_limits(
    message: str, subject: str | None, topic_arn: str | None, message_id: str | None, attributes: dict[str, str]
) -> None:
    payload = slack_payload_for_message(
        message, subject=subject, topic_arn=topic_arn, message_id=message_id, attributes=attributes
    )
    assert_slack_safe(payload)


@SETTINGS
@given(body=bodies, region=regions)
def test_any_body_renders_a_printable_bounded_email(body: dict[str, Any], region: str | None) -> None:
    text = email_text(body, region=region)
    text.encode("utf-8")
    assert text.endswith("\n")
    for line in text[:-1].split("\n"):  # split("\n"), not splitlines(): a stray \x1c or \u2028 must show
        assert line == "" or line.isprintable(), repr(line)
    assert len(text) < 30_000  # every field bounded: at most ~1,000 characters of reason, a URI and its link

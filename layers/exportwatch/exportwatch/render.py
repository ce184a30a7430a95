"""Notifications for people: the plain-text email and the Slack Block Kit message, both from the JSON contract.

Both renderings start from the `default` JSON body (notifier.notification_for), never from a Job, so the Slack
function (which only receives the SNS message) and the publisher (which adds the email text) say the same thing.

What a reader needs in five seconds comes first: the outcome and whether to act, then the job, its workspace, a
reporting export's dataset and ledger window (when the body has them), the date range, where the file is (s3 URI
and a console link), its size, when Intercom's copy goes away, and for failures the reason and the exact next
step. A message on the topic that is not ours is rendered as readable raw text.
The two early warnings (export.expiring, export.stuck) say so, and that the job's outcome follows separately.

Nothing in a body can bend a message. Every free-text field (a reason quoting Intercom's error or a host name,
Intercom's status, the S3 URI...) is made one printable line and cut to its limit (FIELD_LIMITS) when the body
is read, before anything is escaped; in Slack every piece is escaped into a room it cannot outgrow (an entity
such as &amp; is never cut in half), so each block stays within Slack's limits whatever the input, and URLs in
free text are broken so Slack does not turn them into links (_unlink).
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final
from urllib.parse import quote

from exportwatch.model import Event, InvalidJobId, human_duration, human_size, parse_iso, validate_job_id
from exportwatch.outcomes import FINISHED_OK_STATUSES, NOTICES, Facts, Notice, Style
from exportwatch.reporting import DATASET_RE, Kind
from exportwatch.safetext import ELLIPSIS, one_line
from exportwatch.workspaces import NAME_RE

__all__ = [
    "NotOurs",
    "Rendered",
    "console_url",
    "email_text",
    "parse_contract",
    "region_from_arn",
    "slack_payload",
    "slack_payload_for_message",
    "start_command",
]

EMAIL_WIDTH: Final = 76
# Slack limits (api.slack.com/reference/block-kit/blocks): section text 3000, a field 2000 and at most 10 of
# them (we send at most 9), header 150, a context block at most 10 elements (we send one). Slack cuts the
# top-level text at 40,000; ours is the push notification's one line, so it is kept far below.
SLACK_SECTION_MAX: Final = 3000
SLACK_FIELD_MAX: Final = 2000
SLACK_HEADER_MAX: Final = 150
SLACK_TEXT_MAX: Final = 3000

# Free text in a body, in characters after safetext.one_line and before any escaping. Far above what exportwatch
# writes itself, so they only cut a body made by hand (or a bug); docs/notifications.md lists them.
REASON_MAX: Final = 1000  # the poller's reasons are <= 300; a warning's adds the copy's last error (<= 300)
INTERCOM_STATUS_MAX: Final = 64  # Intercom's statuses are single words ("in_progress")
S3_URI_MAX: Final = 1100  # "s3://" + a bucket (<= 63) + "/" + a key (<= 1024 bytes): a real URI is never cut
CONTENT_TYPE_MAX: Final = 255  # RFC 6838: type and subtype <= 127 characters each
SHA256_MAX: Final = 64  # 64 hex digits
WORKSPACE_MAX: Final = 63  # a workspace name is [a-z0-9][a-z0-9-]{0,62}: a real one is never cut
FIELD_LIMITS: Final[dict[str, int]] = {
    "reason": REASON_MAX,
    "workspace": WORKSPACE_MAX,
    "intercom_status": INTERCOM_STATUS_MAX,
    "s3_uri": S3_URI_MAX,
    "content_type": CONTENT_TYPE_MAX,
    "sha256": SHA256_MAX,
}
# A message on the topic that is not ours: its subject (SNS allows 100), why it is shown raw, the topic's name
# (SNS allows 256), the message id (a UUID) and its attributes, all shown in prose or inline code.
FOREIGN_SUBJECT_MAX: Final = 100
FOREIGN_WHY_MAX: Final = 200
FOREIGN_TOPIC_MAX: Final = 100
FOREIGN_MESSAGE_ID_MAX: Final = 100
FOREIGN_FIRST_LINE_MAX: Final = 150
FOREIGN_ATTRIBUTES_MAX: Final = 500
_LABEL_WIDTH: Final = 17  # "Intercom's copy: " is the longest label


_FOREIGN_COLOR: Final = "#8D8D8D"

_ARN_RE: Final = re.compile(r"arn:(aws[a-z-]*):sns:([a-z0-9-]+):\d{12}:(.+)")
_START_BASE: Final = "exportwatch start"
_KINDS: Final = frozenset(kind.value for kind in Kind)
_DAY_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # a window's day: YYYY-MM-DD exactly, ASCII digits


class NotOurs(ValueError):
    """The message is not an exportwatch notification this version understands; str() says why."""


# --------------------------------------------------------------------------------------------- the contract


@dataclass(frozen=True)
class Rendered:
    """The contract's fields a person reads, normalised (absent or ill-typed values are None)."""

    event: Event
    job_identifier: str
    intercom_status: str | None
    occurred_at: datetime | None
    tracked_at: datetime | None
    created_at_after: datetime | None
    created_at_before: datetime | None
    download_expires_at: datetime | None
    s3_uri: str | None
    size_bytes: int | None
    sha256: str | None
    content_type: str | None
    reason: str | None
    time_left_seconds: int | None = None  # export.expiring
    pending_since: datetime | None = None  # export.stuck
    pending_seconds: int | None = None  # export.stuck
    s3_linkable: bool = False  # s3_uri is exactly what the body said (not cleaned or cut): a console link is right
    # The job's workspace, as one printable line (absent in messages from before workspaces: no row shown).
    workspace: str | None = None
    # A ledger window's whole UTC days, both included: both set (start <= end) or neither.
    window_start: date | None = None
    window_end: date | None = None
    # The export family: "content" (also when the body has no `kind`: messages from before kinds), "reporting",
    # or None for a kind this version does not know. dataset: a reporting job's dataset id, only when it follows
    # the rule (reporting.DATASET_RE); anything else is never shown, and then no command is suggested.
    kind: str | None = Kind.CONTENT.value
    dataset: str | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Rendered:
        raw_event = body.get("event")
        try:
            event = Event(str(raw_event))
        except ValueError:
            raise NotOurs(f"unknown event {str(raw_event)[:60]!r}") from None
        try:
            job_identifier = validate_job_id(body.get("job_identifier"))
        except InvalidJobId as exc:
            raise NotOurs(f"no valid job_identifier ({exc})") from None
        size = body.get("size_bytes")
        s3_uri = _free(body, "s3_uri")
        window = _window(body.get("window_start"), body.get("window_end"))
        kind = _kind(body.get("kind", Kind.CONTENT.value))
        return cls(
            event=event,
            job_identifier=job_identifier,
            intercom_status=_free(body, "intercom_status"),
            occurred_at=_time(body.get("occurred_at")),
            tracked_at=_time(body.get("tracked_at")),
            created_at_after=_time(body.get("created_at_after")),
            created_at_before=_time(body.get("created_at_before")),
            download_expires_at=_time(body.get("download_expires_at")),
            s3_uri=s3_uri,
            size_bytes=_count(size),
            sha256=_free(body, "sha256"),
            content_type=_free(body, "content_type"),
            reason=_free(body, "reason"),
            time_left_seconds=_count(body.get("time_left_seconds")),
            pending_since=_time(body.get("pending_since")),
            pending_seconds=_count(body.get("pending_seconds")),
            s3_linkable=s3_uri is not None and s3_uri == body.get("s3_uri"),
            workspace=_free(body, "workspace"),
            window_start=window[0] if window else None,
            window_end=window[1] if window else None,
            kind=kind,
            dataset=_dataset(body.get("dataset")) if kind == Kind.REPORTING else None,
        )

    @property
    def notice(self) -> Notice:
        """The event's row in outcomes.py: its subject, style and words."""
        return NOTICES[self.event]

    @property
    def style(self) -> Style:
        return self.notice.style

    @property
    def copy_failed(self) -> bool:
        """Failed on our side: Intercom finished the export, but exportwatch could not (or would not) copy it."""
        return self.event is Event.FAILED and (self.intercom_status or "") in FINISHED_OK_STATUSES

    @property
    def reporting(self) -> bool:
        return self.kind == Kind.REPORTING

    @property
    def has_range(self) -> bool:
        return self.created_at_after is not None and self.created_at_before is not None


def parse_contract(message: str) -> Rendered:
    """The notification in an SNS message body, or NotOurs saying why it is not one."""
    try:
        body = json.loads(message)
    except RecursionError:
        raise NotOurs("JSON nested too deeply") from None
    except ValueError:
        looks_json = message.lstrip().startswith(("{", "["))
        raise NotOurs("malformed JSON" if looks_json else "plain text, not JSON") from None
    if not isinstance(body, dict):
        raise NotOurs(f"JSON {type(body).__name__}, not an object")
    if "event" not in body:
        raise NotOurs("JSON without an exportwatch event")
    return Rendered.from_body(body)


_COUNT_MAX: Final = 2**63 - 1  # sizes and seconds; a larger int is no real value (and overflows a float)


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _COUNT_MAX else None


def _free(body: Mapping[str, Any], name: str) -> str | None:
    """A free-text field as one printable line within FIELD_LIMITS; None when absent, not text or blank."""
    value = body.get(name)
    return (one_line(value, FIELD_LIMITS[name]) or None) if isinstance(value, str) else None


def _time(value: object) -> datetime | None:
    return parse_iso(value, strict=True)  # a message anyone could publish: only full ISO times with an offset


def _kind(value: object) -> str | None:
    """The body's `kind` when this version knows it ("content", "reporting"); None for anything else."""
    return value if isinstance(value, str) and value in _KINDS else None


def _dataset(value: object) -> str | None:
    """A dataset id that follows the rule, else None: a body can come from anyone, and the id reaches a command."""
    return value if isinstance(value, str) and DATASET_RE.fullmatch(value) else None


def _day(value: object) -> date | None:
    """A strict YYYY-MM-DD day (date.fromisoformat alone also takes '20261103' and '2026-W45-1')."""
    if not isinstance(value, str) or not _DAY_RE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:  # 2026-02-30
        return None


def _window(start: object, end: object) -> tuple[date, date] | None:
    """A window's (first, last) day, both included; None unless both are days and first <= last."""
    first, last = _day(start), _day(end)
    return (first, last) if first is not None and last is not None and first <= last else None


# --------------------------------------------------------------------------------------------- shared pieces


def region_from_arn(arn: str | None) -> str | None:
    """'arn:aws:sns:eu-west-1:123456789012:topic' -> 'eu-west-1'."""
    match = _ARN_RE.fullmatch(arn or "")
    return match.group(2) if match else None


def _topic_name(arn: str | None) -> str | None:
    match = _ARN_RE.fullmatch(arn or "")
    return match.group(3) if match else None


def split_s3_uri(uri: str) -> tuple[str, str] | None:
    if not uri.startswith("s3://"):
        return None
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return (bucket, key) if bucket and key else None


def console_url(bucket: str, key: str, region: str | None) -> str:
    """The AWS console page of one S3 object."""
    query = f"region={quote(region, safe='')}&" if region else ""
    return f"https://s3.console.aws.amazon.com/s3/object/{quote(bucket, safe='')}?{query}prefix={quote(key, safe='/')}"


def _when(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M UTC")


def _whole_days(view: Rendered) -> bool:
    after, before = view.created_at_after, view.created_at_before
    return (
        after is not None
        and before is not None
        and (after.hour, after.minute, after.second) == (0, 0, 0)
        and (before.hour, before.minute, before.second) == (23, 59, 59)
    )


def _range_text(view: Rendered) -> str | None:
    after, before = view.created_at_after, view.created_at_before
    if after is None or before is None:
        return None
    if _whole_days(view):
        first, last = after.date().isoformat(), before.date().isoformat()
        return f"{first} (one whole day, UTC)" if first == last else f"{first} to {last} (whole days, UTC)"
    return f"{_when(after)} to {_when(before)}"


def _window_text(view: Rendered) -> str | None:
    """'2026-11-03' for a one-day window, '2026-11-01 .. 2026-11-07' for several; None for a job without one."""
    first, last = view.window_start, view.window_end
    if first is None or last is None:
        return None
    return first.isoformat() if first == last else f"{first.isoformat()} .. {last.isoformat()}"


def start_command(view: Rendered) -> str | None:
    """The command that makes the same export again: `exportwatch backfill` for a window (it queues the window again
    in its workspace's ledger), else `exportwatch start` for the same range (YYYY-MM-DD placeholders when the range
    is unknown), in the job's workspace when it is not `default`; `--dataset` for a reporting export. A workspace
    name that breaks the rule is left out of a command (the message may come from anyone). None when no command
    can be right: a reporting export without a valid dataset id, or a kind this version does not know."""
    if view.kind is None or (view.reporting and view.dataset is None):
        return None
    workspace = view.workspace if view.workspace and NAME_RE.fullmatch(view.workspace) else None
    dataset = f" --dataset {view.dataset}" if view.reporting and view.dataset else ""
    if workspace is not None and view.window_start is not None and view.window_end is not None:
        return (
            f"exportwatch backfill --workspace {workspace} --since {view.window_start} --until {view.window_end}"
            f"{dataset}"
        )
    where = f" --workspace {workspace}" if workspace not in (None, "default") else ""
    after, before = view.created_at_after, view.created_at_before
    base = f"{_START_BASE}{dataset}"
    if after is None or before is None:
        return f"{base} --since YYYY-MM-DD --until YYYY-MM-DD{where}"
    if _whole_days(view) or view.reporting:  # a reporting export's range is whole UTC days (start takes days)
        return f"{base} --since {after.date().isoformat()} --until {before.date().isoformat()}{where}"
    since, until = after.strftime("%Y-%m-%dT%H:%M:%SZ"), before.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{base} --since {since} --until {until}{where}"


def _relative(target: datetime, ref: datetime | None) -> str:
    if ref is None:
        return ""
    seconds = (target - ref).total_seconds()
    ahead = seconds >= 0
    seconds = abs(seconds)
    if seconds >= 2 * 86400:
        amount = f"{int(seconds // 86400)} days"
    elif seconds >= 2 * 3600:
        amount = f"{int(seconds // 3600)} hours"
    elif seconds >= 120:
        amount = f"{int(seconds // 60)} minutes"
    else:
        return "now"
    return f"in {amount}" if ahead else f"{amount} ago"


def _size_text(view: Rendered) -> str | None:
    if view.size_bytes is None:
        return None
    exact = "1 byte" if view.size_bytes == 1 else f"{view.size_bytes:,} bytes"
    detail = f"{exact}, {view.content_type}" if view.content_type else exact
    return f"{human_size(view.size_bytes)} ({detail})"


def _intercom_copy(view: Rendered) -> str | None:
    """When Intercom's copy of the file goes away (Intercom deletes finished exports after two days)."""
    expires = view.download_expires_at
    if expires is None:
        return None
    rel = _relative(expires, view.occurred_at)
    at = f"{_when(expires)}" + (f" ({rel})" if rel and rel != "now" else "")
    return f"{view.notice.intercom_copy} {at}"


def _facts(view: Rendered, job: str) -> Facts:
    """What the table's wording (outcomes.Notice) may say about this notification. `job` is the id as shown."""
    return Facts(
        job=job,
        id=view.job_identifier,
        size=f" ({human_size(view.size_bytes)})" if view.size_bytes is not None else "",
        left=f"in {human_duration(view.time_left_seconds)}" if view.time_left_seconds is not None else "soon",
        age=f" after {human_duration(view.pending_seconds)}" if view.pending_seconds is not None else "",
        unknown=""
        if view.has_range
        else " This job was tracked by id, so its date range is unknown: put in the range you need.",
        start=start_command(view) or "",  # "": no command line (outcomes.Notice.next_step gives None)
        copy_failed=view.copy_failed,
    )


def _summary(view: Rendered, job: str) -> tuple[str, str]:
    """(OUTCOME, what happened and whether to act): outcome first, then what to do. `job` is the id as shown."""
    return view.notice.label, view.notice.summary(_facts(view, job))


def _headline(view: Rendered) -> str:
    """The first line of the email and the text of Slack's notification."""
    label, text = _summary(view, view.job_identifier)
    return f"{label}: {text}"


def _next_step(view: Rendered) -> tuple[str, str | None] | None:
    """(what to do, the command to run or None) for outcomes that want a person; None when nothing to do."""
    return view.notice.next_step(_facts(view, view.job_identifier))


def _sentence(text: str) -> str:
    """Capitalise a leading plain word ("the job..." -> "The job..."), never an identifier ("download_url")."""
    first = re.match(r"[A-Za-z_]*", text)
    word = first.group(0) if first else ""
    return text[:1].upper() + text[1:] if word.isalpha() and word.islower() else text


def _s3_location(view: Rendered, region: str | None) -> tuple[str, str | None] | None:
    if view.s3_uri is None:
        return None
    parts = split_s3_uri(view.s3_uri) if view.s3_linkable else None  # a cleaned or cut URI names another object
    return view.s3_uri, console_url(*parts, region) if parts else None


def _pending_text(view: Rendered) -> str | None:
    """export.stuck: since when the job has been waiting (exportwatch tracks it from then), and for how long."""
    if view.pending_since is None:
        return None
    age = f" ({human_duration(view.pending_seconds)})" if view.pending_seconds is not None else ""
    return f"{_when(view.pending_since)}{age}"


# --------------------------------------------------------------------------------------------- email


def email_text(body: Mapping[str, Any], *, region: str | None) -> str:
    """The plain-text email for one notification body (the `default` JSON, parsed).

    `region` is the topic's region (region_from_arn), used for the console link.
    """
    view = Rendered.from_body(body)
    lines = [_headline(view), ""]

    def row(label: str, value: str | None) -> None:
        if value is None:
            return
        head = f"{label}:".ljust(_LABEL_WIDTH)
        lines.extend(
            textwrap.wrap(
                value,
                width=EMAIL_WIDTH,
                initial_indent=head,
                subsequent_indent=" " * _LABEL_WIDTH,
                break_long_words=False,
                break_on_hyphens=False,
            )
        )

    if view.event is not Event.COMPLETED:
        row("Reason", _sentence(view.reason or view.event.value))
        if step := _next_step(view):
            text, command = step
            row("Next step", _sentence(text))
            if command:
                lines.extend(["", f"    {command}"])
        lines.append("")

    row("Job id", view.job_identifier)
    row("Workspace", view.workspace)
    row("Dataset", view.dataset)
    row("Window", _window_text(view))
    row("Date range", _range_text(view))
    row("Size", _size_text(view))
    if location := _s3_location(view, region):
        uri, link = location
        row("S3 object", uri)
        row("AWS console", link)
    row("Intercom's copy", _intercom_copy(view))
    row("sha256", view.sha256)
    row("Pending since", _pending_text(view))
    row("Intercom status", view.intercom_status)
    decided = _when(view.occurred_at) if view.occurred_at else None
    if decided and view.tracked_at and view.event is not Event.STUCK:
        decided += f" (tracked since {_when(view.tracked_at)})"
    row("Noticed at" if view.event.is_warning else "Decided at", decided)
    lines += [
        "",
        "-- ",
        f"exportwatch notification, event {view.event.value}.",
        "Choose which outcomes you get with the stack parameter EmailEvents.",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------- Slack

_ZWSP: Final = "\u200b"
# Slack turns bare URLs, www. names and domain names in mrkdwn into links. Free text is shown with a zero-width
# space after a scheme's ':' and after every '.' between a letter or digit and a letter: it reads the same, but
# "https:\u200b//evil.\u200bexample/x" is no longer a link a reader could click by mistake.
_SCHEME_COLON_RE: Final = re.compile(r":(?=//)")
_HOST_DOT_RE: Final = re.compile(r"(?<=[^\W_])\.(?=[^\W\d_])")
# In a raw message's code block: C0/C1 controls, lone surrogates (UTF-8 cannot encode them: the post would
# fail), line/paragraph separators and bidi controls (they reorder what is shown). Line breaks and tabs stay.
_UNSHOWABLE_RE: Final = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]"
)
_BACKTICK_LOOKALIKE: Final = "\u02cb"


def _esc(text: str) -> str:
    """Slack mrkdwn escaping: only &, < and > are special (api.slack.com/reference/surfaces/formatting)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _esc_prefix(text: str, limit: int) -> str:
    """The longest escaped prefix of `text` that fits in `limit` characters (never half an entity)."""
    out: list[str] = []
    used = 0
    for ch in text:
        piece = _esc(ch)
        if used + len(piece) > limit:
            break
        out.append(piece)
        used += len(piece)
    return "".join(out)


def _fit(text: str, room: int) -> str:
    """`text` escaped in at most `room` characters: whole, or cut between two of its characters (so never
    inside an entity) and ended with an ellipsis."""
    escaped = _esc(text)
    return escaped if len(escaped) <= room else _esc_prefix(text, room - 1) + ELLIPSIS


def _unlink(text: str) -> str:
    return _HOST_DOT_RE.sub("." + _ZWSP, _SCHEME_COLON_RE.sub(":" + _ZWSP, text))


def _prose(text: str, room: int) -> str:
    """Free text for mrkdwn: no links, escaped, within `room` characters."""
    return _fit(_unlink(text), room)


def _code(text: str, room: int, *, exact: bool = False) -> str:
    """Free text for inside `...`: a backtick would end the span early, so it is shown as a look-alike.

    `exact` keeps dots and colons as they are, for a value people copy (the S3 URI): that one is written by
    exportwatch itself (its bucket, a validated job id), and Slack does not link inside code.
    """
    text = text.replace("`", _BACKTICK_LOOKALIKE)
    return _fit(text if exact else _unlink(text), room)


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _section(text: str) -> dict[str, Any]:
    # No cut here: every piece of `text` is fitted into its own room, so the whole is within SLACK_SECTION_MAX
    # (tests/unit/test_render_properties.py checks it for arbitrary bodies). Cutting the whole could break a link.
    return {"type": "section", "text": _mrkdwn(text)}


def _header(text: str) -> dict[str, Any]:
    # plain_text is not escaped, so a plain cut cannot split an entity.
    return {"type": "header", "text": {"type": "plain_text", "text": _clip(text, SLACK_HEADER_MAX), "emoji": True}}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def _slack_fields(view: Rendered) -> list[dict[str, Any]]:
    """The details as Slack fields (at most 9 of Slack's 10), each within a field's 2000 characters."""
    fields = [_mrkdwn(f"*Job*\n`{view.job_identifier}`")]
    if view.workspace is not None:  # one cleaned line; unlinked and escaped like any text from the body
        label = "*Workspace*\n"
        fields.append(_mrkdwn(f"{label}`{_code(view.workspace, SLACK_FIELD_MAX - len(label) - 2)}`"))
    if view.dataset is not None:  # follows DATASET_RE (no markup, no dots); escaped all the same
        label = "*Dataset*\n"
        fields.append(_mrkdwn(f"{label}`{_code(view.dataset, SLACK_FIELD_MAX - len(label) - 2)}`"))
    if window := _window_text(view):
        fields.append(_mrkdwn(f"*Window*\n{window}"))  # built from two parsed dates: nothing to escape
    if text := _range_text(view):
        fields.append(_mrkdwn(f"*Date range*\n{_esc(text)}"))
    if view.size_bytes is not None:
        fields.append(_mrkdwn(f"*Size*\n{human_size(view.size_bytes)}"))
    if copy := _intercom_copy(view):
        fields.append(_mrkdwn(f"*Intercom's copy*\n{_esc(copy)}"))
    if pending := _pending_text(view):
        fields.append(_mrkdwn(f"*Pending since*\n{_esc(pending)}"))
    if view.intercom_status and view.event is not Event.COMPLETED:
        label = "*Intercom status*\n"
        fields.append(_mrkdwn(f"{label}`{_code(view.intercom_status, SLACK_FIELD_MAX - len(label) - 2)}`"))
    return fields


def slack_payload(body: Mapping[str, Any], *, region: str | None) -> dict[str, Any]:
    """The incoming-webhook payload for one notification body: header with an icon, details in a coloured bar."""
    view = Rendered.from_body(body)
    style = view.style
    fields = _slack_fields(view)
    details: list[dict[str, Any]] = [_section(_sentence(_summary(view, f"`{view.job_identifier}`")[1]))]
    if view.event is not Event.COMPLETED:
        label = "*Reason:* "
        reason = _sentence(view.reason or view.event.value)
        details.append(_section(label + _prose(reason, SLACK_SECTION_MAX - len(label))))
    details.append({"type": "section", "fields": fields})
    if location := _s3_location(view, region):
        uri, link = location
        label = "*S3:* "
        text = f"{label}`{_code(uri, SLACK_SECTION_MAX - len(label) - 2, exact=True)}`"
        anchor = f"\n<{_esc(link)}|Open in the AWS console>" if link else ""
        if len(text) + len(anchor) <= SLACK_SECTION_MAX:  # a cut link would point nowhere: then none
            text += anchor
        details.append(_section(text))
    if step := _next_step(view):
        text, command = step
        details.append(
            _section(f"*Next step:* {_esc(_sentence(text))}" + (f"\n```{_esc(command)}```" if command else ""))
        )
    context = [f"exportwatch \u00b7 `{view.event.value}`"]
    if view.occurred_at:
        context.append(f"{'noticed' if view.event.is_warning else 'decided'} {_when(view.occurred_at)}")
    if view.sha256:
        context.append(f"sha256 `{_code(view.sha256[:12], 100)}\u2026`")
    details.append({"type": "context", "elements": [_mrkdwn(" \u00b7 ".join(context))]})

    return {
        "text": _fit(_headline(view), SLACK_TEXT_MAX),  # the notification text (push, sidebar) and the fallback
        "blocks": [_header(f"{style.icon} {style.title}: {view.job_identifier}")],
        "attachments": [{"color": style.color, "blocks": details}],
    }


_PRETTY: Final = json.JSONEncoder(indent=2, ensure_ascii=False)
_PRETTY_MAX: Final = 65_536  # far more than a section shows; deep nesting indents 10 KB of JSON into 50 MB


def _readable_raw(message: str) -> str:
    """The raw message for a code block: JSON pretty-printed (it is usually one long line), else as is."""
    try:
        data = json.loads(message)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python recurses
        return message
    if not isinstance(data, dict | list):
        return message
    pretty: list[str] = []
    size = 0
    try:
        for chunk in _PRETTY.iterencode(data):
            size += len(chunk)
            if size > _PRETTY_MAX:
                return message
            pretty.append(chunk)
    except RecursionError:
        return message
    return "".join(pretty)


def _block_text(text: str) -> str:
    """Raw text for a code block, lines kept: what cannot be shown (or would reorder the text) becomes U+FFFD."""
    return _UNSHOWABLE_RE.sub("\ufffd", text.replace("\r\n", "\n"))


def slack_payload_for_message(
    message: str,
    *,
    subject: str | None = None,
    topic_arn: str | None = None,
    message_id: str | None = None,
    attributes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Slack payload for any SNS message on the topic: ours rendered, anything else shown as raw text.

    Nothing is dropped: another publisher's message, malformed JSON or an event this version does not know
    still reaches the channel, readable, with the reason it is shown raw.
    """
    region = region_from_arn(topic_arn)
    try:
        parse_contract(message)
    except NotOurs as why:
        return _foreign_payload(message, str(why), subject, topic_arn, message_id, attributes or {})
    return slack_payload(json.loads(message), region=region)


def _foreign_payload(
    message: str,
    why: str,
    subject: str | None,
    topic_arn: str | None,
    message_id: str | None,
    attributes: Mapping[str, str],
) -> dict[str, Any]:
    topic = one_line(_topic_name(topic_arn) or "", FOREIGN_TOPIC_MAX) or "the exportwatch topic"
    raw = _block_text(_readable_raw(message)).replace("```", "`\u200b`\u200b`")  # a fence would end the block
    escaped = _esc(raw)
    if not escaped.strip():
        shown = "_(empty message)_"
    elif len(escaped) + len("``````") <= SLACK_SECTION_MAX:
        shown = f"```{escaped}```"
    else:
        note = f"\n_(cut: {len(raw):,} characters in all)_"
        shown = f"```{_esc_prefix(raw, SLACK_SECTION_MAX - len('``````') - len(note))}```{note}"
    # Rooms: subject <= 800 + why <= 1500 + the fixed words stay within a section's 3000.
    why_text = _prose(one_line(why, FOREIGN_WHY_MAX), 1500)
    intro = f"Shown as received: not an exportwatch notification this function understands ({why_text})."
    subject_line = one_line(subject or "", FOREIGN_SUBJECT_MAX)
    blocks: list[dict[str, Any]] = []
    if subject_line:
        blocks.append(_section(f"*Subject:* {_prose(subject_line, 800)}\n{intro}"))
    else:
        blocks.append(_section(intro))
    blocks.append(_section(shown))
    # Rooms: topic 400 + message id 400 + attributes 1500 + the labels stay within a context element's 3000.
    context = [f"topic `{_code(topic, 400)}`"]
    if message_id and (mid := one_line(message_id, FOREIGN_MESSAGE_ID_MAX)):
        context.append(f"message id `{_code(mid, 400)}`")
    if attributes:
        pairs = ", ".join(f"{one_line(k, 64)}={one_line(v, 200)}" for k, v in sorted(attributes.items()))
        context.append(f"attributes {_prose(one_line(pairs, FOREIGN_ATTRIBUTES_MAX), 1500)}")
    blocks.append({"type": "context", "elements": [_mrkdwn(" \u00b7 ".join(context))]})
    first_line = subject or (message.strip().splitlines() or [""])[0]
    first = one_line(first_line, FOREIGN_FIRST_LINE_MAX) or "(empty message)"
    return {
        "text": _prose(f"Message on {topic}: {first}", SLACK_TEXT_MAX),
        "blocks": [_header(f":incoming_envelope: Message on {_unlink(topic)}")],
        "attachments": [{"color": _FOREIGN_COLOR, "blocks": blocks}],
    }

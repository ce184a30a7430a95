"""Notifications for people: the plain-text email and the Slack Block Kit message, both from the JSON contract.

Both renderings start from the `default` JSON body (notifier.notification_for), never from a Job, so the Slack
function (which only receives the SNS message) and the publisher (which adds the email text) say the same thing.

What a reader needs in five seconds comes first: the outcome and whether to act, then the job, the date range,
where the file is (s3 URI and a console link), its size, when Intercom's copy goes away, and for failures the
reason and the exact next step. A message on the topic that is not ours is rendered as readable raw text.
The two early warnings (export.expiring, export.stuck) say so, and that the job's outcome follows separately.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from exportwatch.model import Event, InvalidJobId, human_duration, human_size, validate_job_id

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
# Slack limits (api.slack.com/reference/block-kit/blocks): section text 3000, a field 2000, header 150.
SLACK_SECTION_MAX: Final = 3000
SLACK_HEADER_MAX: Final = 150
_LABEL_WIDTH: Final = 17  # "Intercom's copy: " is the longest label


@dataclass(frozen=True)
class _Style:
    title: str  # "Export completed": Slack header, and (upper-cased first word) the email's first word
    icon: str  # Slack emoji shortcode
    color: str  # Slack attachment bar
    act: bool  # does somebody need to do something?


_STYLES: Final[dict[Event, _Style]] = {
    Event.COMPLETED: _Style("Export completed", ":white_check_mark:", "#2EB67D", act=False),
    Event.FAILED: _Style("Export failed", ":x:", "#E01E5A", act=True),
    Event.NOT_FOUND: _Style("Export not found", ":mag:", "#E01E5A", act=True),
    Event.NO_DATA: _Style("Export had no data", ":information_source:", "#8D8D8D", act=False),
    Event.CANCELED: _Style("Export canceled", ":no_entry_sign:", "#ECB22E", act=False),
    Event.EXPIRED: _Style("Export expired", ":hourglass:", "#E01E5A", act=True),
    Event.EXPIRING: _Style("Export expiring, not copied yet", ":warning:", "#ECB22E", act=True),
    Event.STUCK: _Style("Export still running", ":hourglass_flowing_sand:", "#ECB22E", act=False),
}
_FOREIGN_COLOR: Final = "#8D8D8D"

_ISO_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})")
_ARN_RE: Final = re.compile(r"arn:(aws[a-z-]*):sns:([a-z0-9-]+):\d{12}:(.+)")
_START_BASE: Final = "exportwatch start"


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
        return cls(
            event=event,
            job_identifier=job_identifier,
            intercom_status=_str(body.get("intercom_status")),
            occurred_at=_time(body.get("occurred_at")),
            tracked_at=_time(body.get("tracked_at")),
            created_at_after=_time(body.get("created_at_after")),
            created_at_before=_time(body.get("created_at_before")),
            download_expires_at=_time(body.get("download_expires_at")),
            s3_uri=_str(body.get("s3_uri")),
            size_bytes=_count(size),
            sha256=_str(body.get("sha256")),
            content_type=_str(body.get("content_type")),
            reason=_str(body.get("reason")),
            time_left_seconds=_count(body.get("time_left_seconds")),
            pending_since=_time(body.get("pending_since")),
            pending_seconds=_count(body.get("pending_seconds")),
        )

    @property
    def style(self) -> _Style:
        return _STYLES[self.event]

    @property
    def copy_failed(self) -> bool:
        """Failed on our side: Intercom finished the export, but exportwatch could not (or would not) copy it."""
        return self.event is Event.FAILED and (self.intercom_status or "") in ("completed", "complete")

    @property
    def has_range(self) -> bool:
        return self.created_at_after is not None and self.created_at_before is not None


def parse_contract(message: str) -> Rendered:
    """The notification in an SNS message body, or NotOurs saying why it is not one."""
    try:
        body = json.loads(message)
    except ValueError:
        looks_json = message.lstrip().startswith(("{", "["))
        raise NotOurs("malformed JSON" if looks_json else "plain text, not JSON") from None
    if not isinstance(body, dict):
        raise NotOurs(f"JSON {type(body).__name__}, not an object")
    if "event" not in body:
        raise NotOurs("JSON without an exportwatch event")
    return Rendered.from_body(body)


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not _ISO_RE.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


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


def start_command(view: Rendered) -> str:
    """`exportwatch start` for the same range as the job (YYYY-MM-DD placeholders when the range is unknown)."""
    after, before = view.created_at_after, view.created_at_before
    if after is None or before is None:
        return f"{_START_BASE} --since YYYY-MM-DD --until YYYY-MM-DD"
    if _whole_days(view):
        return f"{_START_BASE} --since {after.date().isoformat()} --until {before.date().isoformat()}"
    since, until = after.strftime("%Y-%m-%dT%H:%M:%SZ"), before.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{_START_BASE} --since {since} --until {until}"


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
    exact = f"{view.size_bytes:,} bytes"
    detail = f"{exact}, {view.content_type}" if view.content_type else exact
    return f"{human_size(view.size_bytes)} ({detail})"


def _intercom_copy(view: Rendered) -> str | None:
    """When Intercom's copy of the file goes away (Intercom deletes finished exports after two days)."""
    expires = view.download_expires_at
    if expires is None:
        return None
    rel = _relative(expires, view.occurred_at)
    at = f"{_when(expires)}" + (f" ({rel})" if rel and rel != "now" else "")
    if view.event is Event.COMPLETED:
        return f"deleted {at}"
    if view.event is Event.EXPIRED:
        return f"expired {at}"
    return f"available until {at}"


def _summary(view: Rendered, job: str) -> tuple[str, str]:
    """(OUTCOME, what happened and whether to act): outcome first, then what to do. `job` is the id as shown."""
    match view.event:
        case Event.COMPLETED:
            size = f" ({human_size(view.size_bytes)})" if view.size_bytes is not None else ""
            return "COMPLETED", f"export {job} is in S3{size}. Nothing to do."
        case Event.FAILED if view.copy_failed:
            return "FAILED", f"export {job} finished at Intercom but was not copied. Action needed."
        case Event.FAILED:
            return "FAILED", f"export {job} failed at Intercom. Request a new export."
        case Event.NOT_FOUND:
            return "NOT FOUND", f"Intercom has no export {job}. Check the job id."
        case Event.NO_DATA:
            return "NO DATA", f"export {job} found no messages in its date range. Nothing to do."
        case Event.CANCELED:
            return "CANCELED", f"export {job} was canceled at Intercom. Request it again if still needed."
        case Event.EXPIRED:
            return "EXPIRED", f"Intercom deleted export {job} before it was copied. Request a new export."
        case Event.EXPIRING:
            left = f"in {human_duration(view.time_left_seconds)}" if view.time_left_seconds is not None else "soon"
            return "EXPIRING", f"export {job} is not in S3 yet and Intercom deletes it {left}. Action needed."
        case Event.STUCK:
            age = f" after {human_duration(view.pending_seconds)}" if view.pending_seconds is not None else ""
            return "STUCK", f"export {job} is still not finished at Intercom{age}. Nothing to do yet."
    raise AssertionError(view.event)  # pragma: no cover - every Event is matched above


def _headline(view: Rendered) -> str:
    """The first line of the email and the text of Slack's notification."""
    label, text = _summary(view, view.job_identifier)
    return f"{label}: {text}"


def _next_step(view: Rendered) -> tuple[str, str | None] | None:
    """(what to do, the command to run or None) for outcomes that want a person; None when nothing to do."""
    command = start_command(view)
    unknown = (
        ""
        if view.has_range
        else " This job was tracked by id, so its date range is unknown: put in the range you need."
    )
    match view.event:
        case Event.COMPLETED:
            return None
        case Event.FAILED if view.copy_failed:
            return (
                "check that the stack parameter IntercomApiUrl is your workspace's region (US, EU or AU), "
                f"then request the export again.{unknown}",
                command,
            )
        case Event.FAILED:
            return (
                f"request the export again; if it fails again, split the range into shorter ones.{unknown}",
                command,
            )
        case Event.NOT_FOUND:
            return (
                "check the job id, and that the stack parameter IntercomApiUrl is your workspace's region "
                f"(US, EU or AU). To export the data anyway, request a new export.{unknown}",
                command,
            )
        case Event.NO_DATA:
            return ("nothing to do. If you expected data, check the date range.", None)
        case Event.CANCELED:
            return (f"if the export is still needed, request it again.{unknown}", command)
        case Event.EXPIRED:
            return (
                "request a new export. Intercom keeps a finished export for two days; if this happens again, "
                f"check that the poller runs (its schedule and its errors in CloudWatch Logs).{unknown}",
                command,
            )
        case Event.EXPIRING:
            return (
                "fix the copy before then. exportwatch retries it every cycle until Intercom deletes the file, "
                "and sends the job's outcome in its own message. Why it fails: the reason above, "
                "`exportwatch list` and the poller's errors in CloudWatch Logs. To retry now:",
                "exportwatch poll --all",
            )
        case Event.STUCK:
            return (
                "none yet. exportwatch keeps watching the job and sends its outcome in its own message. Intercom "
                "fails jobs that run longer than 12 hours; if this one fails, request shorter ranges. To stop "
                "waiting for it, cancel it:",
                f"exportwatch cancel {view.job_identifier}",
            )
    raise AssertionError(view.event)  # pragma: no cover


def _sentence(text: str) -> str:
    """Capitalise a leading plain word ("the job..." -> "The job..."), never an identifier ("download_url")."""
    first = re.match(r"[A-Za-z_]*", text)
    word = first.group(0) if first else ""
    return text[:1].upper() + text[1:] if word.isalpha() and word.islower() else text


def _s3_location(view: Rendered, region: str | None) -> tuple[str, str | None] | None:
    if view.s3_uri is None:
        return None
    parts = split_s3_uri(view.s3_uri)
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


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(_clip(text, SLACK_SECTION_MAX))}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": _clip(text, SLACK_HEADER_MAX), "emoji": True}}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def slack_payload(body: Mapping[str, Any], *, region: str | None) -> dict[str, Any]:
    """The incoming-webhook payload for one notification body: header with an icon, details in a coloured bar."""
    view = Rendered.from_body(body)
    style = view.style
    fields = [_mrkdwn(f"*Job*\n`{view.job_identifier}`")]
    if text := _range_text(view):
        fields.append(_mrkdwn(f"*Date range*\n{_esc(text)}"))
    if view.size_bytes is not None:
        fields.append(_mrkdwn(f"*Size*\n{human_size(view.size_bytes)}"))
    if copy := _intercom_copy(view):
        fields.append(_mrkdwn(f"*Intercom's copy*\n{_esc(copy)}"))
    if pending := _pending_text(view):
        fields.append(_mrkdwn(f"*Pending since*\n{_esc(pending)}"))
    if view.intercom_status and view.event is not Event.COMPLETED:
        fields.append(_mrkdwn(f"*Intercom status*\n`{_esc(view.intercom_status)}`"))

    details: list[dict[str, Any]] = [_section(_sentence(_summary(view, f"`{view.job_identifier}`")[1]))]
    if view.event is not Event.COMPLETED:
        details.append(_section(f"*Reason:* {_esc(_sentence(view.reason or view.event.value))}"))
    details.append({"type": "section", "fields": fields})
    if location := _s3_location(view, region):
        uri, link = location
        text = f"*S3:* `{_esc(uri)}`"
        if link:
            text += f"\n<{_esc(link)}|Open in the AWS console>"
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
        context.append(f"sha256 `{_esc(view.sha256[:12])}\u2026`")
    details.append({"type": "context", "elements": [_mrkdwn(" \u00b7 ".join(context))]})

    return {
        "text": _esc(_headline(view)),  # the notification text (push, sidebar) and the fallback
        "blocks": [_header(f"{style.icon} {style.title}: {view.job_identifier}")],
        "attachments": [{"color": style.color, "blocks": details}],
    }


def _readable_raw(message: str) -> str:
    """The raw message for a code block: JSON pretty-printed (it is usually one long line), else as is."""
    try:
        data = json.loads(message)
    except ValueError:
        return message
    if isinstance(data, dict | list):
        return json.dumps(data, indent=2, ensure_ascii=False)
    return message


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
    topic = _topic_name(topic_arn) or "the exportwatch topic"
    raw = _readable_raw(message).replace("```", "`\u200b`\u200b`")  # a fence inside would end the code block
    room = SLACK_SECTION_MAX - len("``````") - 40  # the fences and the "cut" note
    escaped = _esc(raw)
    if len(escaped) > room:
        shown = f"```{_esc_prefix(raw, room)}```\n_(cut: {len(raw):,} characters in all)_"
    else:
        shown = f"```{escaped}```" if escaped.strip() else "_(empty message)_"
    intro = f"Shown as received: not an exportwatch notification this function understands ({_esc(why)})."
    blocks: list[dict[str, Any]] = []
    if subject:
        blocks.append(_section(f"*Subject:* {_esc(subject)}\n{intro}"))
    else:
        blocks.append(_section(intro))
    blocks.append(_section(shown))
    context = [f"topic `{_esc(topic)}`"]
    if message_id:
        context.append(f"message id `{_esc(message_id)}`")
    if attributes:
        pairs = ", ".join(f"{_esc(k)}={_esc(v)}" for k, v in sorted(attributes.items()))
        context.append(f"attributes {_clip(pairs, 500)}")
    blocks.append({"type": "context", "elements": [_mrkdwn(" \u00b7 ".join(context))]})
    first_line = subject or (message.strip().splitlines() or ["(empty message)"])[0]
    return {
        "text": _esc(f"Message on {topic}: {_clip(first_line, 150)}"),
        "blocks": [_header(f":incoming_envelope: Message on {topic}")],
        "attachments": [{"color": _FOREIGN_COLOR, "blocks": blocks}],
    }

"""Posting to a Slack incoming webhook, loudly: every way a post can fail raises.

A webhook URL is a credential (whoever has it can post to the channel), so it only ever lives in Secrets
Manager and in this process's memory: it is read through Powertools Parameters (wiring.webhook_url_provider),
never put in an exception text, a log line or a return value, and urllib3's and botocore's debug lines that
could carry it are redacted.

Failure semantics (the Lambda relies on them: a raise makes Lambda retry the async invocation, then hand the
event to the on-failure destination, an SQS dead-letter queue):
  * 2xx with Slack's "ok" body: delivered.
  * any other status, or a 2xx with another body: SlackRejected (HTTP status and Slack's error code, e.g.
    400 invalid_payload, 404 channel_not_found, 410 channel_is_archived, 403 action_prohibited).
  * a connect or read timeout: SlackTimeout. Any other transport error: SlackUnreachable.
  * 429: wait out Retry-After when it is short and the invocation has the time, then post again; otherwise
    SlackRateLimited (the async retry comes back later).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import urlsplit

import requests

from exportwatch.config import SLACK_WEBHOOK_SECRET_VAR, ConfigError
from exportwatch.events import SnsNotifications, parse_sns_event
from exportwatch.redaction import install_log_redaction, uninstall_log_redaction
from exportwatch.render import NotOurs, parse_contract, slack_payload_for_message
from exportwatch.safetext import one_line
from exportwatch.urls import is_loopback_host

__all__ = [
    "WEBHOOK_SECRET_VAR",
    "PostedMessage",
    "SlackError",
    "SlackRateLimited",
    "SlackRejected",
    "SlackTimeout",
    "SlackUnreachable",
    "SlackWebhook",
    "handle_sns_event",
    "install_log_redaction",
    "parse_webhook_url",
    "uninstall_log_redaction",
]

log = logging.getLogger(__name__)

WEBHOOK_SECRET_VAR: Final = SLACK_WEBHOOK_SECRET_VAR
CONNECT_TIMEOUT: Final = 3.05
READ_TIMEOUT: Final = 10.0
MAX_RETRY_AFTER_WAIT: Final = 10.0  # wait out a 429 in-process only when Slack asks for at most this long
MAX_RATE_LIMIT_WAITS: Final = 2
_MAX_BODY: Final = 4096

# Slack's webhook error codes (api.slack.com/messaging/webhooks#handling_errors), with what to do about each.
_PAYLOAD_ERRORS: Final = frozenset({"invalid_payload", "no_text", "invalid_blocks", "invalid_attachments"})
_WEBHOOK_DEAD: Final = frozenset(
    {
        "channel_not_found",
        "channel_is_archived",
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "invalid_token",
        "action_prohibited",
        "posting_to_general_channel_denied",
        "user_not_found",
    }
)


# --------------------------------------------------------------------------------------------- errors


class SlackError(Exception):
    """The message did not reach Slack. str() is safe to log: it never contains the webhook URL."""


class SlackRejected(SlackError):
    def __init__(self, status: int, code: str) -> None:
        self.status, self.code = status, code
        if code in _PAYLOAD_ERRORS:
            hint = "the payload is malformed (an exportwatch bug); the event is kept in the dead-letter queue"
        elif code in _WEBHOOK_DEAD:
            hint = "the webhook no longer works: create a new incoming webhook and put its URL in the secret"
        elif status >= 500:
            hint = "Slack had a problem; Lambda retries the invocation"
        else:
            hint = "Slack did not take the message"
        super().__init__(f"Slack answered HTTP {status} {code or '(empty body)'}: {hint}")


class SlackRateLimited(SlackError):
    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(
            f"Slack rate-limited the webhook (HTTP 429, Retry-After {retry_after:g} s), longer than this invocation "
            "waits; Lambda retries the invocation later"
        )


class SlackTimeout(SlackError):
    pass


class SlackUnreachable(SlackError):
    pass


# --------------------------------------------------------------------------------------------- the secret


def parse_webhook_url(value: str | bytes) -> str:
    """The secret holds the webhook URL, or JSON {"url": "..."}. Errors never echo the value."""
    text = (value.decode("utf-8", "replace") if isinstance(value, bytes) else value).strip()
    if not text:
        raise ConfigError(WEBHOOK_SECRET_VAR, "the secret's value is empty")
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise ConfigError(WEBHOOK_SECRET_VAR, "the secret's value looks like JSON but does not parse") from None
        url = data.get("url") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url.strip():
            raise ConfigError(WEBHOOK_SECRET_VAR, 'the secret\'s JSON has no non-empty "url" string')
        text = url.strip()
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise ConfigError(WEBHOOK_SECRET_VAR, "the webhook URL contains whitespace or control characters")
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        _ = parts.port  # raises on a malformed port
    except ValueError:
        raise ConfigError(WEBHOOK_SECRET_VAR, "the secret's value is not a URL") from None
    if parts.scheme == "http" and is_loopback_host(host):
        pass  # a local receiver (tests, demo): nothing leaves the machine
    elif parts.scheme != "https":
        raise ConfigError(WEBHOOK_SECRET_VAR, "the webhook URL must be https:// (http only for a loopback host)")
    if not host or parts.path in ("", "/") or parts.username or parts.password:
        raise ConfigError(WEBHOOK_SECRET_VAR, "the secret's value is not an incoming-webhook URL (host and path)")
    return text


# --------------------------------------------------------------------------------------------- posting


def _retry_after(value: str | None, now: float) -> float:
    """Retry-After is delta-seconds (what Slack sends) or an HTTP date; missing or odd means one second."""
    if not value:
        return 1.0
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return 1.0


def _safe_code(body: bytes) -> str:
    """Slack's error body ("channel_not_found") made safe for a log line: printable, short."""
    return one_line(body.decode("utf-8", "replace"), 120)


def _is_ok(body: bytes) -> bool:
    text = body.decode("utf-8", "replace").strip()
    if text == "ok":
        return True
    try:  # workflow webhooks (/triggers/...) answer {"ok": true}
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("ok") is True


def _is_timeout(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, requests.Timeout | TimeoutError) or type(current).__name__.endswith("TimeoutError"):
            return True
        inner = [a for a in current.args if isinstance(a, BaseException)]
        current = inner[0] if inner else (current.__cause__ or current.__context__)
    return False


class SlackWebhook:
    """One incoming webhook. `url` is a callable so the URL is fetched (and cached) by the secret provider."""

    def __init__(
        self,
        url: Callable[[], str],
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        max_retry_after_wait: float = MAX_RETRY_AFTER_WAIT,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        install_log_redaction()
        self._url = url
        self._timeout = (connect_timeout, read_timeout)
        self._max_wait = max_retry_after_wait
        self._session = session or requests.Session()
        # As the Intercom client: no proxy variables or .netrc silently applied to a post that carries the
        # webhook URL (a credential) and the message.
        self._session.trust_env = False
        self._sleep = sleep
        self._clock = clock

    def post(self, payload: Mapping[str, Any], *, time_left: Callable[[], float] | None = None) -> None:
        """Deliver `payload` or raise SlackError. `time_left` (seconds) bounds how long a 429 may be waited out."""
        url = self._url()
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        waits = 0
        while True:
            status, body, retry_after = self._send(url, data)
            if 200 <= status < 300:
                if _is_ok(body):
                    return
                raise SlackRejected(status, _safe_code(body) or "(not Slack's 'ok')")
            if status != 429:
                raise SlackRejected(status, _safe_code(body))
            wait = _retry_after(retry_after, self._clock())
            budget = time_left() - sum(self._timeout) - 2.0 if time_left is not None else float("inf")
            if waits >= MAX_RATE_LIMIT_WAITS or wait > self._max_wait or wait > budget:
                raise SlackRateLimited(wait)
            waits += 1
            log.warning("Slack rate-limited the webhook (429); waiting %.1f s as Retry-After asks", wait)
            self._sleep(wait)

    def _send(self, url: str, data: bytes) -> tuple[int, bytes, str | None]:
        try:
            with self._session.post(
                url,
                data=data,
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=self._timeout,
                allow_redirects=False,  # a redirect is an answer we do not accept, and it would move the secret
                stream=True,
            ) as resp:
                body = resp.raw.read(_MAX_BODY, decode_content=True) or b""
                return resp.status_code, body, resp.headers.get("Retry-After")
        except Exception as exc:  # requests and urllib3 errors carry the URL in their text: never re-raise them
            seconds = self._timeout[1]
            if _is_timeout(exc):
                raise SlackTimeout(f"Slack did not answer within {seconds:g} s (timeout); not delivered") from None
            raise SlackUnreachable(f"cannot reach the Slack webhook: {type(exc).__name__}; not delivered") from None


# --------------------------------------------------------------------------------------------- the handler


@dataclass(frozen=True)
class PostedMessage:
    message_id: str
    kind: str  # "exportwatch" | "foreign"
    event: str | None
    job_identifier: str | None

    def to_dict(self) -> dict[str, str | None]:
        return {"message_id": self.message_id, "kind": self.kind, "event": self.event, "job": self.job_identifier}


def handle_sns_event(
    event: SnsNotifications | Any, webhook: SlackWebhook, *, time_left: Callable[[], float] | None = None
) -> list[PostedMessage]:
    """Post every SNS record of a Lambda event to Slack: ours rendered, anything else as raw text.

    `event` is what events.parse_sns_event returned (a raw event is parsed here, once: InvalidEvent, a
    ValueError, when it is not SNS). Raises on the first record that does not reach Slack (SNS delivers one
    record per invocation; were there more, a retry could repeat the earlier ones, which beats losing the
    failed one).
    """
    notifications = event if isinstance(event, SnsNotifications) else parse_sns_event(event)
    posted = []
    for record in notifications.records:
        sns = record.sns
        payload = slack_payload_for_message(
            sns.message,
            subject=sns.subject,
            topic_arn=sns.topic_arn,
            message_id=sns.message_id,
            attributes={name: attribute.value for name, attribute in sns.message_attributes.items()},
        )
        webhook.post(payload, time_left=time_left)
        try:
            view = parse_contract(sns.message)
        except NotOurs:
            posted.append(PostedMessage(sns.message_id, "foreign", None, None))
        else:
            posted.append(PostedMessage(sns.message_id, "exportwatch", view.event.value, view.job_identifier))
    return posted

"""Local stand-in for Slack incoming webhooks: a real HTTP server on loopback, for tests and the demo.

It answers like Slack does (api.slack.com/messaging/webhooks): 200 with the body ``ok`` for a message it takes,
and for one it does not, a status with Slack's error code as the body: 400 ``invalid_payload`` (not JSON),
400 ``no_text`` (neither text nor blocks), 400 ``invalid_blocks`` (a Block Kit limit broken), 404 ``no_service``
(no such webhook). Failures can be scripted per webhook: the next N answers (400 invalid_payload, 404
channel_not_found, 429 with Retry-After, a slow answer...), or one answer for good (a dead webhook).
Every request is recorded; the messages it took are in ``payloads``.

Stdlib only, like the Intercom emulator (never deployed: exportwatch_local).

    with SlackReceiver() as slack:
        url = slack.new_webhook()                       # http://127.0.0.1:PORT/services/T.../B.../secret
        slack.script(url, rate_limited(retry_after=1))  # the next post gets a 429
        ...
        slack.payloads                                  # what reached the "channel"

From a shell: ``python -m exportwatch_local.slack_receiver --port 8766`` prints a webhook URL, then one line per post.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import secrets
import signal
import string
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from exportwatch_local.loopback import LoopbackHandler, LoopbackServer

__all__ = [
    "CHANNEL_NOT_FOUND",
    "INVALID_PAYLOAD",
    "OK",
    "Answer",
    "ReceivedPost",
    "SlackReceiver",
    "main",
    "rate_limited",
    "slow",
]

_LOG = logging.getLogger(__name__)
_MAX_BODY: Final = 1 << 20
_ID_ALPHABET: Final = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class Answer:
    """One scripted answer. `delay` seconds pass before anything is sent (a slow Slack)."""

    status: int = 200
    body: str = "ok"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


OK: Final = Answer()
INVALID_PAYLOAD: Final = Answer(400, "invalid_payload")
CHANNEL_NOT_FOUND: Final = Answer(404, "channel_not_found")
CHANNEL_IS_ARCHIVED: Final = Answer(410, "channel_is_archived")
SERVER_ERROR: Final = Answer(500, "rollup_error")


def rate_limited(retry_after: float | str = 1) -> Answer:
    """Slack's 429: the webhook posts more than about one message per second."""
    value = retry_after if isinstance(retry_after, str) else f"{retry_after:g}"
    return Answer(429, "rate_limited", {"Retry-After": value})


def slow(seconds: float, then: Answer = OK) -> Answer:
    return Answer(then.status, then.body, then.headers, delay=seconds)


@dataclass(frozen=True)
class ReceivedPost:
    """One request as it arrived, and what it was answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    payload: Any  # the parsed JSON, or None
    status: int
    answer: str
    time: float

    @property
    def delivered(self) -> bool:
        """Slack took it: 200 with "ok" (a scripted 200 with another body is not a delivery)."""
        return self.status == 200 and self.answer == "ok"


@dataclass
class _Webhook:
    script: deque[Answer] = field(default_factory=deque)
    always: Answer | None = None


# --------------------------------------------------------------------------------------------- validation


_BLOCK_TYPES: Final = frozenset(
    {"section", "header", "context", "divider", "actions", "image", "rich_text", "markdown", "input", "file", "video"}
)


def _text_object(obj: object, where: str, limit: int, plain_only: bool = False) -> str | None:
    if not isinstance(obj, Mapping):
        return f"{where}: not a text object"
    kinds = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if obj.get("type") not in kinds:
        return f"{where}: type must be one of {kinds}"
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return f"{where}: text must be a non-empty string"
    if len(text) > limit:
        return f"{where}: text is {len(text)} characters, more than {limit}"
    return None


def _check_block(block: object, where: str) -> str | None:
    if not isinstance(block, Mapping) or block.get("type") not in _BLOCK_TYPES:
        return f"{where}: unknown block type"
    kind = block["type"]
    if kind == "header":
        return _text_object(block.get("text"), f"{where}.text", 150, plain_only=True)
    if kind == "section":
        text, fields = block.get("text"), block.get("fields")
        if text is None and fields is None:
            return f"{where}: a section needs text or fields"
        if text is not None and (problem := _text_object(text, f"{where}.text", 3000)):
            return problem
        if fields is not None:
            if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
                return f"{where}.fields: 1 to 10 fields"
            for i, item in enumerate(fields):
                if problem := _text_object(item, f"{where}.fields[{i}]", 2000):
                    return problem
    if kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
            return f"{where}.elements: 1 to 10 elements"
        for i, item in enumerate(elements):
            if isinstance(item, Mapping) and item.get("type") == "image":
                continue
            if problem := _text_object(item, f"{where}.elements[{i}]", 3000):
                return problem
    return None


def _check_blocks(blocks: object, where: str) -> str | None:
    if not isinstance(blocks, list) or len(blocks) > 50:
        return f"{where}: a list of at most 50 blocks"
    for i, block in enumerate(blocks):
        if problem := _check_block(block, f"{where}[{i}]"):
            return problem
    return None


def validate_payload(payload: object) -> tuple[str, str] | None:
    """Slack's verdict on a webhook payload: None when it would post it, else (error code, why)."""
    if not isinstance(payload, Mapping):
        return "invalid_payload", "the payload is not a JSON object"
    text, blocks, attachments = payload.get("text"), payload.get("blocks"), payload.get("attachments")
    if text is not None and not isinstance(text, str):
        return "invalid_payload", "text is not a string"
    if blocks is not None and (problem := _check_blocks(blocks, "blocks")):
        return "invalid_blocks", problem
    if attachments is not None:
        if not isinstance(attachments, list) or len(attachments) > 100:
            return "invalid_attachments", "attachments: a list of at most 100"
        for i, attachment in enumerate(attachments):
            if not isinstance(attachment, Mapping):
                return "invalid_attachments", f"attachments[{i}] is not an object"
            if "blocks" in attachment and (problem := _check_blocks(attachment["blocks"], f"attachments[{i}].blocks")):
                return "invalid_blocks", problem
    if not text and not blocks and not attachments:
        return "no_text", "neither text nor blocks"
    return None


# --------------------------------------------------------------------------------------------- the receiver


class SlackReceiver(LoopbackServer):
    """Slack-compatible incoming webhooks on 127.0.0.1 (a free port unless one is given)."""

    label = "slack receiver"
    noun = "the Slack receiver"
    log = _LOG

    def __init__(self, host: str = "127.0.0.1", port: int = 0, clock: Any = time.time) -> None:
        super().__init__(host, port, _Handler)
        self.clock = clock
        self._lock = threading.Lock()
        self._hooks: dict[str, _Webhook] = {}
        self._posts: list[ReceivedPost] = []
        self._arrived = threading.Condition(self._lock)

    # ---- scripting ------------------------------------------------------------------------------------

    def new_webhook(self) -> str:
        """A fresh webhook URL shaped like Slack's (/services/T.../B.../secret); the secret part is random."""
        team = "T" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))
        bot = "B" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))
        path = f"/services/{team}/{bot}/{secrets.token_urlsafe(18)}"
        with self._lock:
            self._hooks[path] = _Webhook()
        return self.base_url + path

    def script(self, webhook_url: str, *answers: Answer) -> None:
        """The next len(answers) posts to this webhook get these answers, in order; then it takes posts again."""
        with self._lock:
            self._hook(webhook_url).script.extend(answers)

    def always(self, webhook_url: str, answer: Answer | None) -> None:
        """Every post gets `answer` from now on (a dead webhook: CHANNEL_NOT_FOUND); None restores it."""
        with self._lock:
            self._hook(webhook_url).always = answer

    def _hook(self, webhook_url: str) -> _Webhook:
        path = urlsplit(webhook_url).path
        if path not in self._hooks:
            raise KeyError("not a webhook of this receiver")
        return self._hooks[path]

    # ---- what arrived ---------------------------------------------------------------------------------

    @property
    def posts(self) -> list[ReceivedPost]:
        """Every request, in arrival order, whatever it was answered."""
        with self._lock:
            return list(self._posts)

    @property
    def payloads(self) -> list[Any]:
        """The messages Slack would have shown (answered 200 ok), in arrival order."""
        return [p.payload for p in self.posts if p.delivered]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedPost]:
        """Wait until `count` requests have arrived (or timeout); returns every request so far."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._posts) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.wait(left)
            return list(self._posts)

    def clear(self) -> None:
        with self._lock:
            self._posts.clear()

    # ---- serving --------------------------------------------------------------------------------------

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[Answer, Any]:
        payload = _parse(headers.get("content-type", ""), body)
        with self._lock:
            hook = self._hooks.get(path)
            if hook is None:
                return Answer(404, "no_service"), payload
            if hook.script:
                return hook.script.popleft(), payload
            if hook.always is not None:
                return hook.always, payload
        if payload is _INVALID:
            return INVALID_PAYLOAD, None
        if verdict := validate_payload(payload):
            code, why = verdict
            _LOG.info("slack receiver: %s (%s)", code, why)
            return Answer(400, code), payload
        return OK, payload

    def _record(self, post: ReceivedPost) -> None:
        with self._arrived:
            self._posts.append(post)
            self._arrived.notify_all()


_INVALID: Final = object()


def _parse(content_type: str, body: bytes) -> Any:
    """Slack takes a JSON body, or a form with a `payload` field holding the JSON."""
    text = body.decode("utf-8", "replace")
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        text = (parse_qs(text).get("payload") or [""])[0]
    try:
        return json.loads(text)
    except ValueError:
        return _INVALID


class _Handler(LoopbackHandler[SlackReceiver]):
    server_version = "SlackReceiver/1.0"

    def do_GET(self) -> None:
        self._write(Answer(405, "invalid_method"))

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            self.close_connection = True
            self._write(Answer(400, "invalid_payload"))
            return
        body = self.rfile.read(length)
        path = urlsplit(self.path).path
        headers = {k.lower(): v for k, v in self.headers.items()}
        receiver = self.owner
        try:
            answer, payload = receiver._answer(path, headers, body)
        except Exception:
            _LOG.exception("slack receiver: failed to handle a post")
            answer, payload = SERVER_ERROR, None
        receiver._record(
            ReceivedPost(
                path=path,
                headers=dict(self.headers.items()),
                body=body,
                payload=None if payload is _INVALID else payload,
                status=answer.status,
                answer=answer.body,
                time=receiver.clock(),
            )
        )
        if answer.delay and receiver._stopping.wait(answer.delay):
            return
        self._write(answer)

    def _write(self, answer: Answer) -> None:
        data = answer.body.encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "text/html")  # what Slack sends with "ok" and its error codes
        self.send_header("Content-Length", str(len(data)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(OSError):  # the client may have timed out and gone
            self.wfile.write(data)


# --------------------------------------------------------------------------------------------- standalone


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m exportwatch_local.slack_receiver",
        description="Local Slack incoming-webhook receiver. Prints a webhook URL, then one line per post.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8766, help="port (0 picks a free one; default 8766)")
    args = parser.parse_args(argv)
    receiver = SlackReceiver(host=args.host, port=args.port).start()
    print(receiver.new_webhook(), flush=True)
    done = threading.Event()
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, lambda *_: done.set())
    seen = 0
    try:
        while not done.wait(0.2):
            posts = receiver.posts
            for post in posts[seen:]:
                print(f"{post.status} {post.answer}: {json.dumps(post.payload, ensure_ascii=False)}", flush=True)
            seen = len(posts)
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

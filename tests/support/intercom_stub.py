"""A scripted stand-in for Intercom on 127.0.0.1, for answers the emulator does not give.

The emulator (exportwatch_local.emulator) adds X-RateLimit-* headers to every authorised answer, so it cannot play a
429 that carries none. This stub answers each path from a script instead: `answer(path, a1, a2, ...)` serves a1
to the first request for that path, a2 to the second, and repeats the last answer after that. Every request is
recorded with the status it got. Stdlib only; the server runs on its own thread and closes each connection after
its answer, so nothing outlives `stop()`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, cast


@dataclass(frozen=True)
class Answer:
    status: int
    payload: object = None  # sent as JSON when not None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    time: float
    status: int  # what the stub answered


def job_model(job_id: str, status: str = "pending") -> Answer:
    """A 200 with Intercom's job model for a job that has not finished."""
    return Answer(200, {"job_identifier": job_id, "status": status, "download_url": "", "download_expires_at": ""})


def rate_limited_without_headers() -> Answer:
    """A 429 as Intercom's error list, with no X-RateLimit-* (nor Retry-After) header at all."""
    return Answer(
        429,
        {
            "type": "error.list",
            "request_id": "stub-request",
            "errors": [{"code": "rate_limit_exceeded", "message": "Exceeded rate limit"}],
        },
    )


def status_path(job_id: str) -> str:
    return f"/export/content/data/{job_id}"


class IntercomStub:
    def __init__(self, token: str) -> None:
        self.token = token
        self._lock = threading.Lock()
        self._scripts: dict[str, list[Answer]] = {}
        self._served: dict[str, int] = {}
        self._seen: list[Seen] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting and read-back ----------------------------------------------------------------------

    def answer(self, path: str, *answers: Answer) -> None:
        if not answers:
            raise ValueError("script at least one answer")
        with self._lock:
            self._scripts[path] = list(answers)
            self._served[path] = 0

    @property
    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def requests_for(self, path: str) -> list[Seen]:
        return [r for r in self.requests if r.path == path]

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stub is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> Self:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        cast(Any, server).stub = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="intercom-stub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- serving (called on the server's threads) -----------------------------------------------------

    def _reply(self, method: str, path: str, headers: dict[str, str]) -> Answer:
        lowered = {k.lower(): v for k, v in headers.items()}
        if lowered.get("authorization") != f"Bearer {self.token}":
            answer = Answer(401, {"type": "error.list", "errors": [{"code": "unauthorized"}]})
        else:
            with self._lock:
                script = self._scripts.get(path)
                if script is None:
                    answer = Answer(404, {"type": "error.list", "errors": [{"code": "not_found"}]})
                else:
                    used = self._served[path]
                    self._served[path] = used + 1
                    answer = script[min(used, len(script) - 1)]
        with self._lock:
            self._seen.append(Seen(method, path, headers, time.time(), answer.status))
        return answer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        stub = cast(IntercomStub, cast(Any, self.server).stub)
        answer = stub._reply(method, self.path, dict(self.headers.items()))
        body = b"" if answer.payload is None else json.dumps(answer.payload).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")  # no idle keep-alive connection outlives the test
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""

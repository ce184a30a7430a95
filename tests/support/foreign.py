"""A second origin on 127.0.0.1 that records what reaches it (token-safety and fault tests): never Intercom's host,
so a token or a download that arrives here has leaked."""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class ForeignServer:
    """A plain HTTP server on 127.0.0.1 (another origin than the emulator) serving a ZIP to any GET."""

    body: bytes
    seen: list[Seen] = field(default_factory=list)
    base_url: str = ""


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("receipts_20240101_000000.csv", "ruleset_id,content_id\n1,2\n")
    return buf.getvalue()


@pytest.fixture
def foreign() -> Iterator[ForeignServer]:
    state = ForeignServer(body=_zip_bytes())
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            with lock:
                state.seen.append(Seen("GET", self.path, dict(self.headers.items())))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def do_POST(self) -> None:
            with lock:
                state.seen.append(Seen("POST", self.path, dict(self.headers.items())))
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

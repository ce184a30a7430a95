"""A real HTTP server on loopback with its own thread: what the Intercom emulator and the Slack receiver share.

A subclass of `LoopbackServer` passes its request handler (a `LoopbackHandler`) and gets the lifecycle:
``start``/``stop``, ``with``, ``base_url``, and on ``stop`` every open keep-alive connection shut so no
handler thread outlives it. Slow answers should wait on ``self._stopping``: ``stop`` sets it.

Stdlib only, like the servers built on it (never deployed: exportwatch_local).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self, cast

__all__ = ["LoopbackHandler", "LoopbackServer"]


class LoopbackServer:
    """Serves `handler` on host:port (port 0: a free one, known after start) from a daemon thread."""

    label: ClassVar[str]  # "intercom emulator": log lines, and the thread's name with a dash
    noun: ClassVar[str]  # "the emulator": error messages
    log: ClassVar[logging.Logger]
    request_queue_size: ClassVar[int] = socketserver.TCPServer.request_queue_size

    def __init__(self, host: str, port: int, handler: type[LoopbackHandler[Any]]) -> None:
        self.host = host
        self.port = port
        self._handler = handler
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.noun} is not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"{self.noun} is already started")
        self._stopping.clear()
        server = _Server(self)
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.label.replace(" ", "-"), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes slow answers
        server.shutdown()
        server.close_connections()  # idle keep-alive connections would otherwise hold handler threads
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start() if self._server is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: LoopbackServer) -> None:
        self.owner = owner
        self.request_queue_size = owner.request_queue_size  # read by server_activate() in __init__
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((owner.host, owner.port), owner._handler)

    def track(self, connection: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            if alive:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients hanging up mid-answer (and stop() shutting sockets) are normal here, not worth a traceback.
        if isinstance(sys.exc_info()[1], OSError):
            return
        self.owner.log.exception("%s: handler failed for %s", self.owner.label, client_address)


class LoopbackHandler[O: LoopbackServer](BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, quiet, Nagle off; `owner` is the LoopbackServer it serves for.

    The Server header is `server_version` alone (the base class would append the Python version).
    """

    protocol_version = "HTTP/1.1"  # keep-alive, as pooled requests.Session clients expect

    def version_string(self) -> str:
        return self.server_version

    @property
    def owner(self) -> O:
        return cast(O, cast(_Server, self.server).owner)

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; with Nagle on, the body waits for the client's
        # delayed ACK (~40 ms per request), which would dominate every benchmark.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cast(_Server, self.server).track(self.connection, alive=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            cast(_Server, self.server).track(self.connection, alive=False)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: one stderr line per request would drown test and benchmark output (and a path may be secret)."""

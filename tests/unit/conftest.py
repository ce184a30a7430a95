"""The unit tier: pure decisions, renderers, settings, URL and id rules. No moto, no emulator, no sockets.

Every test here runs with socket.socket switched off (pytest-socket, unix sockets included): a unit test that
opens a connection, starts a server or resolves a host fails at once with SocketBlockedError. Such a test belongs
in tests/integration. The whole tier stays under 30 seconds (`make unit` prints its time).
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_sockets(socket_disabled: None) -> None:
    """pytest-socket's `socket_disabled` for every unit test; it switches sockets back on after the test."""

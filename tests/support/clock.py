"""A clock a test sets: handed to the emulator, the poller or the registry cache instead of time.time."""

from __future__ import annotations


class FakeClock:
    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

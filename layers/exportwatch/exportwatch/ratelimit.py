"""Intercom's rate-limit window, read from its headers and never trusted further than a few minutes.

Intercom counts calls in 10-second windows and says so in `X-RateLimit-Remaining` / `X-RateLimit-Reset` (a Unix
time). Those headers are obeyed only when they come from Intercom's own origin (the client decides that), and
every time they set is clamped: a reset further than MAX_RESET_SECONDS ahead is read as MAX_RESET_SECONDS ahead,
so no header, however absurd, parks a job or a cycle for longer than that.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime

log = logging.getLogger(__name__)

MAX_RESET_SECONDS = 300.0  # five minutes: Intercom's windows are 10 s, so anything longer is a lie or a bug
DEFAULT_RESET_SECONDS = 10.0  # a 429 without usable headers: wait one window
MIN_RESET_SECONDS = 1.0  # a 429 whose reset is already past: still give the window a second


def _finite(raw: object) -> float | None:
    if not isinstance(raw, str):
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def retry_after_seconds(raw: object, now: float) -> float | None:
    """`Retry-After` as seconds from `now`: delta-seconds or an HTTP date; None when absent or unreadable."""
    delta = _finite(raw)
    if delta is not None:
        return max(0.0, delta)
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        when = parsedate_to_datetime(raw.strip()).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - now)


def clamp_reset(reset_at: float, now: float, *, floor: float = 0.0) -> float:
    """A reset time no earlier than now + floor and no later than now + MAX_RESET_SECONDS."""
    return min(max(reset_at, now + floor), now + MAX_RESET_SECONDS)


def reset_from_headers(headers: Mapping[str, str], now: float) -> float:
    """When a 429's window resets: X-RateLimit-Reset, else Retry-After, else one window; always clamped."""
    reset = _finite(headers.get("X-RateLimit-Reset"))
    if reset is None:
        after = retry_after_seconds(headers.get("Retry-After"), now)
        reset = now + (DEFAULT_RESET_SECONDS if after is None else after)
    return clamp_reset(reset, now, floor=MIN_RESET_SECONDS)


class RateGate:
    """Shared view of Intercom's rate-limit window, so concurrent workers stop before a 429, not after.

    While the window is unknown (a new container, or just after a reset) only one call goes out, a probe; the
    other workers wait for its answer's headers instead of all firing into a window that may be spent. Within a
    window the count only goes down: an answer that arrives late, with an older (higher) count, cannot hand out
    calls the window no longer has. Every caller of before_call() calls after_call() when its request is over.
    """

    PROBE_WAIT_SECONDS = 60.0  # a worker waits at most this long for a probe's answer, then goes on regardless

    def __init__(self, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self._cond = threading.Condition()
        self._remaining: int | None = None
        self._reset_at = 0.0
        self._probing = False
        self._clock = clock
        self._sleep = sleep

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn the window from a response of Intercom's own origin (the caller checks the origin)."""
        remaining = _finite(headers.get("X-RateLimit-Remaining"))
        reset = _finite(headers.get("X-RateLimit-Reset"))
        if headers.get("X-RateLimit-Remaining") is not None and remaining is None:
            log.warning("ignoring an unparsable X-RateLimit-Remaining header")
        with self._cond:
            reset_at = clamp_reset(reset, self._clock()) if reset is not None else self._reset_at
            if remaining is not None:
                count = max(0, int(min(remaining, 1e9)))
                same_window = self._remaining is not None and reset_at == self._reset_at
                self._remaining = min(self._remaining, count) if same_window and self._remaining is not None else count
            self._reset_at = reset_at
            self._cond.notify_all()

    def exhausted_until(self, reset_at: float) -> None:
        with self._cond:
            self._remaining = 0
            self._reset_at = max(self._reset_at, clamp_reset(reset_at, self._clock()))
            self._cond.notify_all()

    def before_call(self, max_wait: float) -> None:
        """Take one call from the window: go now, wait for a probe's answer, sleep until a short reset, or raise
        RateLimitWait when the reset is further away than `max_wait`."""
        with self._cond:
            waited_for_probe = 0.0
            while True:
                if self._remaining is None:
                    if not self._probing or waited_for_probe >= self.PROBE_WAIT_SECONDS:
                        self._probing = True
                        return
                    started = self._clock()
                    self._cond.wait(timeout=1.0)
                    waited_for_probe += max(self._clock() - started, 0.05)
                    continue
                if self._remaining > 0:
                    self._remaining -= 1
                    return
                reset_at = self._reset_at
                wait = reset_at - self._clock()
                if wait > max_wait:
                    raise RateLimitWait(reset_at)
                if wait > 0:
                    self._cond.release()
                    try:
                        self._sleep(wait)
                    finally:
                        self._cond.acquire()
                if self._remaining == 0 and self._reset_at == reset_at:
                    self._remaining = None  # a new window: unknown until a probe's answer says otherwise

    def after_call(self) -> None:
        """The request that before_call() admitted is over (answered or failed): a probe no longer blocks others."""
        with self._cond:
            if self._probing:
                self._probing = False
                self._cond.notify_all()


class RateLimitWait(Exception):
    """The window is spent and resets later than the caller is willing to wait (reset_at: Unix time)."""

    def __init__(self, reset_at: float) -> None:
        super().__init__(f"Intercom rate-limit window is spent until {int(reset_at)}")
        self.reset_at = reset_at

"""The rate gate and header parsing, with a fake clock and no sockets: counts only go down, one probe at a time
while the window is unknown, every reset clamped."""

from __future__ import annotations

import threading

import pytest

from exportwatch.ratelimit import (
    MAX_RESET_SECONDS,
    RateGate,
    RateLimitWait,
    clamp_reset,
    reset_from_headers,
    retry_after_seconds,
)

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def gate() -> tuple[RateGate, Clock]:
    clock = Clock()
    return RateGate(clock=clock, sleep=clock.sleep), clock


def test_an_older_higher_count_for_the_same_window_does_not_add_calls() -> None:
    g, _ = gate()
    reset = str(int(NOW + 10))
    g.observe({"X-RateLimit-Remaining": "2", "X-RateLimit-Reset": reset})
    g.observe({"X-RateLimit-Remaining": "9", "X-RateLimit-Reset": reset})  # answered earlier, arrived later
    g.before_call(0)
    g.before_call(0)
    with pytest.raises(RateLimitWait):
        g.before_call(0)  # the third call would be over the window: the reset is 10 s away, we wait 0


def test_a_new_window_replaces_the_count() -> None:
    g, _ = gate()
    g.observe({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW + 10))})
    g.observe({"X-RateLimit-Remaining": "5", "X-RateLimit-Reset": str(int(NOW + 20))})
    for _ in range(5):
        g.before_call(0)


def test_a_spent_window_is_slept_out_when_short_then_one_probe_goes() -> None:
    g, clock = gate()
    g.observe({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW + 3))})
    g.before_call(max_wait=5)
    assert clock.slept == [3.0]


def test_an_absurd_reset_is_clamped_to_minutes() -> None:
    g, _ = gate()
    g.observe({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "9999999999"})
    with pytest.raises(RateLimitWait) as raised:
        g.before_call(0)
    assert raised.value.reset_at == NOW + MAX_RESET_SECONDS
    assert reset_from_headers({"X-RateLimit-Reset": "9999999999"}, NOW) == NOW + 300
    assert reset_from_headers({"Retry-After": "99999999"}, NOW) == NOW + 300
    assert reset_from_headers({"X-RateLimit-Reset": "nan"}, NOW) == NOW + 10  # one default window
    assert reset_from_headers({"X-RateLimit-Reset": "1e400"}, NOW) == NOW + 10
    assert reset_from_headers({}, NOW) == NOW + 10
    assert reset_from_headers({"X-RateLimit-Reset": str(int(NOW - 50))}, NOW) == NOW + 1  # past: one second
    assert clamp_reset(NOW + 30, NOW) == NOW + 30


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("7", NOW) == 7
    assert retry_after_seconds("-3", NOW) == 0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", NOW) == 0  # long past
    assert retry_after_seconds("soon", NOW) is None
    assert retry_after_seconds(None, NOW) is None


def test_unparsable_counts_are_ignored() -> None:
    g, _ = gate()
    g.observe({"X-RateLimit-Remaining": "lots", "X-RateLimit-Reset": "later"})
    g.before_call(0)  # still unknown: the probe goes


def test_while_the_window_is_unknown_only_one_call_goes_until_its_answer() -> None:
    g = RateGate()  # a real clock: the waiting worker blocks on a condition, not on sleep
    g.before_call(0)  # the probe
    admitted = threading.Event()

    def second() -> None:
        g.before_call(0)
        admitted.set()

    worker = threading.Thread(target=second, daemon=True)
    worker.start()
    assert not admitted.wait(0.3), "a second call went out before the probe was answered"
    g.observe({"X-RateLimit-Remaining": "5", "X-RateLimit-Reset": "1"})  # an answer: the window is known now
    g.after_call()
    assert admitted.wait(5)
    worker.join(5)


def test_a_probe_that_fails_without_headers_lets_the_next_worker_probe() -> None:
    g = RateGate()
    g.before_call(0)
    admitted = threading.Event()
    worker = threading.Thread(target=lambda: (g.before_call(0), admitted.set()), daemon=True)
    worker.start()
    assert not admitted.wait(0.3)
    g.after_call()  # e.g. a refused connection: no headers, but the probe is over
    assert admitted.wait(5)
    worker.join(5)

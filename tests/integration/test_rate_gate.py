"""Intercom's rate limit, as Intercom sees it: the proactive gate spends a window without a 429, and a 429 that
carries no rate headers is a short wait or a deferral, never a failure.

The emulator enforces a real aligned window (set_rate_limit) and logs every request; a 429 it served shows up as a
recorded status call that never reached the job (readback.rate_limited_status_calls). A 429 without X-RateLimit-*
headers is something the emulator never sends, so support.intercom_stub plays Intercom for those tests.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from exportwatch.config import Settings
from exportwatch.intercom import IntercomClient, RateGate
from exportwatch.poll import CycleSummary, Poller, run_cycle
from exportwatch.wiring import build_poller
from exportwatch_local.emulator import IntercomEmulator
from exportwatch_local.localstack import LocalStack
from support.intercom_stub import IntercomStub, job_model, rate_limited_without_headers, status_path
from support.readback import (
    calls_per_window,
    drain,
    rate_limited_status_calls,
    raw_item,
    status_requests,
)
from support.tracking import track_job

LIMIT = 3  # calls per window
WINDOW = 1.0  # seconds: Intercom's windows are 10 s; a short one keeps each test to a couple of seconds
JOBS = 2 * LIMIT + 1  # more than two windows' worth


def _sequential(poller: Poller) -> None:
    """One worker: calls go out one at a time, so what the gate lets through is deterministic."""
    poller.settings = dataclasses.replace(poller.settings, poll_concurrency=1)


def _track_pending(poller: Poller, emulator: IntercomEmulator, n: int) -> list[str]:
    """n jobs Intercom keeps reporting pending: each check is exactly one status call, nothing is downloaded."""
    ids = [emulator.add_job("completed", steps=["pending"]) for _ in range(n)]
    now = time.time()
    for job_id in ids:
        track_job(poller.store, job_id, tracked_at=now)
    return ids


def _checked_once(stack: LocalStack, emulator: IntercomEmulator, ids: list[str]) -> None:
    assert Counter(r.job_identifier for r in status_requests(emulator, ids)) == Counter(dict.fromkeys(ids, 1))
    for job_id in ids:
        it = raw_item(stack, job_id)
        assert (it["state"], it["intercom_status"], it["attempts"]) == ("watching", "pending", 1), it
        assert "last_error" not in it


def _at_start_of_a_window() -> None:
    """Wait (under one window) until a window has just begun, so a burst of calls falls inside one window."""
    into = time.time() % WINDOW
    if into > 0.2 * WINDOW:
        time.sleep(WINDOW - into + 0.01)


# -- the proactive gate -----------------------------------------------------------------------------------------


def test_a_cycle_with_more_jobs_than_the_window_allows_gets_no_429(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    """Seven due jobs, three calls per 1-second window, the shipped client (waits up to 15 s for a reset): the
    gate waits for each reset instead of calling into a spent window, and every job is checked in this cycle."""
    _sequential(poller)
    emulator.set_rate_limit(LIMIT, window_seconds=WINDOW)
    ids = _track_pending(poller, emulator, JOBS)

    summary = run_cycle(poller)

    assert rate_limited_status_calls(emulator, ids) == 0
    per_window = calls_per_window(emulator, WINDOW)
    assert max(per_window.values()) <= LIMIT, per_window  # from the request log: no window was overspent
    assert len(per_window) >= math.ceil(JOBS / LIMIT)  # ...because the cycle waited for the resets
    _checked_once(stack, emulator, ids)  # one status call per job, no retry of a refused one
    assert summary.stopped is None and summary.left_for_next_cycle == 0
    assert drain(stack, subscriber) == []


def test_a_spent_window_resetting_later_than_the_client_waits_defers_without_calling(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str, token: str
) -> None:
    """A client that waits for no reset (max_rate_wait=0): when the window is spent the gate defers the next job
    to the reset without sending its call, the cycle stops, and the following cycles check the rest."""
    _sequential(poller)
    poller.intercom = IntercomClient(emulator.base_url, lambda: token, max_rate_wait=0.0)
    emulator.set_rate_limit(LIMIT, window_seconds=WINDOW)
    ids = _track_pending(poller, emulator, JOBS)

    cycles: list[CycleSummary] = []
    while len(cycles) < 6 and len({r.job_identifier for r in status_requests(emulator, ids)}) < JOBS:
        asked_before = len(status_requests(emulator, ids))
        summary = run_cycle(poller)
        cycles.append(summary)
        calls = status_requests(emulator, ids)[asked_before:]
        if summary.stopped is None:
            continue
        assert re.search(r"rate.?limit", summary.stopped, re.IGNORECASE), summary.stopped
        assert calls, "the cycle stopped before its first call"
        [deferred] = [r.job_identifier for r in summary.results if r.action == "deferred"]
        assert deferred not in {c.job_identifier for c in calls}  # stopped before its call, not after a 429
        it = raw_item(stack, deferred)
        window_end = math.floor(calls[-1].time / WINDOW) * WINDOW + WINDOW
        assert it["next_check_at"] == math.ceil(window_end)  # due again when Intercom's window resets
        assert (it["state"], it["due_shard"], it["attempts"]) == ("watching", "due", 0)
        time.sleep(max(0.0, float(it["next_check_at"]) - time.time()) + 0.01)

    assert rate_limited_status_calls(emulator, ids) == 0
    per_window = calls_per_window(emulator, WINDOW)
    assert max(per_window.values()) <= LIMIT, per_window
    assert len(cycles) >= 2 and cycles[0].stopped is not None  # the gate did stop a cycle: deferred, not waited
    _checked_once(stack, emulator, ids)
    assert drain(stack, subscriber) == []


def test_concurrent_workers_share_a_known_window_without_a_429(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    """Once the gate knows the window (2 calls left), four workers starting at once take 2 calls between them and
    the other two wait for the reset. Intercom answers slowly (0.3 s), so all four pass the gate before any answer
    comes back: only the gate's own count keeps them out of the spent window."""
    _at_start_of_a_window()
    emulator.set_rate_limit(LIMIT, window_seconds=WINDOW)
    first = _track_pending(poller, emulator, 1)
    _sequential(poller)
    run_cycle(poller)  # one call: this container now knows LIMIT - 1 calls are left in the window
    slow = [emulator.add_job("completed", steps=["pending"], delay=0.3) for _ in range(4)]
    for job_id in slow:
        track_job(poller.store, job_id, tracked_at=time.time())
    poller.settings = dataclasses.replace(poller.settings, poll_concurrency=4)

    summary = run_cycle(poller)

    per_window = calls_per_window(emulator, WINDOW)
    if len(per_window) < 2 or min(per_window) != math.floor(status_requests(emulator, first)[0].time / WINDOW):
        pytest.fail(f"the setup did not fit in one window: {per_window}")
    assert rate_limited_status_calls(emulator, first + slow) == 0, per_window
    assert sorted(per_window.values()) == [2, LIMIT]  # 1 + 2 in the known window, the 2 that waited in the next
    _checked_once(stack, emulator, first + slow)
    assert summary.stopped is None
    assert drain(stack, subscriber) == []


def test_concurrent_workers_share_the_window_without_a_429(poller: Poller, emulator: IntercomEmulator) -> None:
    """The shipped concurrency (4 workers) against 3 calls per window: the gate is shared, so still no 429."""
    if poller.settings.poll_concurrency <= LIMIT:
        pytest.fail("this test needs more workers than calls per window")
    emulator.set_rate_limit(LIMIT, window_seconds=WINDOW)
    ids = _track_pending(poller, emulator, 2 * LIMIT + 2)
    _at_start_of_a_window()

    run_cycle(poller)

    assert rate_limited_status_calls(emulator, ids) == 0, calls_per_window(emulator, WINDOW)


# -- a 429 without rate headers (played by a stub: the emulator always sends them) ---------------------------------


@pytest.fixture
def intercom_stub(token: str) -> Iterator[IntercomStub]:
    with IntercomStub(token) as stub:
        yield stub


@pytest.fixture
def stub_poller(stack: LocalStack, intercom_stub: IntercomStub, monkeypatch: pytest.MonkeyPatch) -> Poller:
    """The poller as the Lambda builds it, pointed at moto and at the stub as Intercom; one worker."""
    values = stack.env(INTERCOM_API_URL=intercom_stub.base_url, POLL_INTERVAL_MINUTES="5", POLL_CONCURRENCY="1")
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return build_poller(Settings.from_env(values))


def _track_three(poller: Poller, stub: IntercomStub) -> tuple[str, str, str]:
    """`limited` first (Intercom answers it 429 without headers, then pending), then two pending jobs."""
    limited, second, third = "limited1", "second2", "third3"
    stub.answer(status_path(limited), rate_limited_without_headers(), job_model(limited))
    for job_id in (second, third):
        stub.answer(status_path(job_id), job_model(job_id))
    now = time.time()
    for n, job_id in enumerate((limited, second, third)):  # the due index is ordered by next_check_at
        track_job(poller.store, job_id, tracked_at=now, next_check_at=n)
    return limited, second, third


def test_a_429_without_rate_headers_defers_the_job_and_publishes_nothing(
    stub_poller: Poller, intercom_stub: IntercomStub, stack: LocalStack, subscriber: str, token: str
) -> None:
    """A client that will not wait a whole default window (max_rate_wait=1): the job is deferred to a short
    default reset, not failed and not retried at once; the cycle stops; nothing is published."""
    poller = stub_poller
    poller.intercom = IntercomClient(intercom_stub.base_url, lambda: token, max_rate_wait=1.0)
    limited, second, third = _track_three(poller, intercom_stub)

    before = time.time()
    summary = run_cycle(poller)
    after = time.time()

    assert [(r.path, r.status) for r in intercom_stub.requests] == [(status_path(limited), 429)]
    assert intercom_stub.requests[0].headers.get("Authorization") == f"Bearer {token}"  # it was Intercom's origin
    it = raw_item(stack, limited)
    assert (it["state"], it["due_shard"], it["attempts"]) == ("watching", "due", 0)  # not a failed attempt
    assert "notified_at" not in it and "outcome_reason" not in it
    assert re.search(r"rate.?limit", it["last_error"], re.IGNORECASE), it["last_error"]
    # Deferred to a default reset a few seconds ahead: not now (a retry storm), not the poll interval (300 s).
    assert before + 1 <= it["next_check_at"] <= after + 30, (before, it["next_check_at"])
    assert summary.stopped is not None and summary.left_for_next_cycle == 2
    for job_id in (second, third):
        untouched = raw_item(stack, job_id)
        assert untouched["attempts"] == 0 and "last_checked_at" not in untouched
    assert drain(stack, subscriber) == []

    # The next cycle, once the job is due again (a new container: no memory of the window): all three checked.
    poller.intercom = IntercomClient(intercom_stub.base_url, lambda: token, max_rate_wait=1.0)
    due_at = float(it["next_check_at"])
    poller.clock = lambda: due_at + 1
    later = run_cycle(poller)

    assert later.stopped is None
    assert Counter(r.status for r in intercom_stub.requests) == {429: 1, 200: 3}
    for job_id in (limited, second, third):
        checked = raw_item(stack, job_id)
        assert (checked["state"], checked["intercom_status"], checked["attempts"]) == ("watching", "pending", 1)
        assert "last_error" not in checked
    assert drain(stack, subscriber) == []


@pytest.mark.parametrize("then", ["answers", "429 again"])
def test_a_429_without_rate_headers_is_waited_out_for_one_default_window(
    stub_poller: Poller, intercom_stub: IntercomStub, stack: LocalStack, subscriber: str, token: str, then: str
) -> None:
    """The shipped wait budget (15 s) covers the default reset (one 10-second window): the client waits it out
    (the gate's sleep is recorded instead of slept) and asks once more. If Intercom answers, the job is checked in
    this cycle; if it says 429 again, the job is deferred to a default reset like any rate limit, never failed."""
    poller = stub_poller
    waits: list[float] = []
    poller.intercom = IntercomClient(intercom_stub.base_url, lambda: token, gate=RateGate(sleep=waits.append))
    limited, second, third = _track_three(poller, intercom_stub)
    if then == "429 again":
        intercom_stub.answer(
            status_path(limited), rate_limited_without_headers(), rate_limited_without_headers(), job_model(limited)
        )

    before = time.time()
    summary = run_cycle(poller)
    after = time.time()

    assert len(waits) == 1 and 9.0 <= waits[0] <= 10.5, waits  # about one 10-second window
    asked = [(r.path, r.status) for r in intercom_stub.requests]
    if then == "answers":
        assert asked[:2] == [(status_path(limited), 429), (status_path(limited), 200)]
        assert summary.stopped is None and summary.left_for_next_cycle == 0
        for job_id in (limited, second, third):
            it = raw_item(stack, job_id)
            assert (it["state"], it["intercom_status"], it["attempts"]) == ("watching", "pending", 1)
            assert "last_error" not in it
    else:
        assert asked == [(status_path(limited), 429), (status_path(limited), 429)]
        it = raw_item(stack, limited)
        assert (it["state"], it["due_shard"], it["attempts"]) == ("watching", "due", 0)
        assert re.search(r"rate.?limit", it["last_error"], re.IGNORECASE), it["last_error"]
        assert before + 1 <= it["next_check_at"] <= after + 30
        assert summary.stopped is not None and summary.left_for_next_cycle == 2
    assert drain(stack, subscriber) == []

"""Edges of the poll cycle that a one-character bug would move: a lease lost during a warning cycle, claim's own
due-ness check, and the exact boundaries of the export.expiring and export.stuck windows.

Real cycles against moto (HTTP) and the Intercom emulator (HTTP); the clock is injected (Poller.clock) so a
boundary is hit to the second; what subscribers get is read from the SQS queue subscribed to the topic.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from exportwatch.config import Settings
from exportwatch.model import Job, JobState
from exportwatch.poll import Poller, run_cycle
from exportwatch.store import JobStore
from exportwatch.wiring import build_poller
from exportwatch_local.emulator import IntercomEmulator
from exportwatch_local.localstack import LocalStack, aws_client
from support.readback import drain, published, raw_item
from support.tracking import stamp, track_job

HOUR = 3600


def _now() -> float:
    """A whole second, as the table stores times: boundaries below are then exact."""
    return float(int(time.time()))


def _at(poller: Poller, when: float) -> Poller:
    poller.clock = lambda: when
    return poller


# -- a lease lost during a warning cycle ------------------------------------------------------------------------


class TakenOverAfterClaim(JobStore):
    """The job table as poller A sees it: right after A's claim succeeds, `takeover(job_id, now)` runs once (another
    poller takes the job over because, by its clock, A's lease has lapsed), before A does anything with the job."""

    def __init__(self, dynamodb: Any, table: str, takeover: Callable[[str, int], None]) -> None:
        super().__init__(dynamodb, table)
        self._takeover: Callable[[str, int], None] | None = takeover

    def claim(self, job_id: str, owner: str, now: int, lease_seconds: int, due_by: int | None) -> Job | None:
        job = super().claim(job_id, owner, now, lease_seconds, due_by)
        takeover, self._takeover = self._takeover, None
        if job is not None and takeover is not None:
            takeover(job_id, now)
        return job


@pytest.mark.parametrize("poller_b", ["holds the job", "finishes its cycle"])
def test_a_poller_that_loses_its_lease_in_a_warning_cycle_publishes_no_warning(
    poller: Poller,
    settings: Settings,
    emulator: IntercomEmulator,
    stack: LocalStack,
    subscriber: str,
    poller_b: str,
) -> None:
    """Poller A claims a job whose export.stuck is due; before A gets further, poller B takes the job over (A's lease
    lapsed as B sees it). A publishes nothing. B ("finishes its cycle": warns and releases while A is busy) or, if B
    only holds the lease and dies, the next cycle after B's lease lapses, publishes the one export.stuck."""
    job_id = emulator.add_job("completed", steps=["pending"])
    t0 = _now()
    track_job(poller.store, job_id, tracked_at=t0 - 13 * HOUR)
    lease = settings.lease_seconds
    b = _at(build_poller(settings), t0 + lease + 1)

    def takeover(jid: str, now: int) -> None:
        if poller_b == "holds the job":
            taken = b.store.claim(jid, "poller-B", int(b.clock()), lease, None)
            assert taken is not None and taken.lease_owner == "poller-B"
        else:
            assert run_cycle(b, owner="poller-B").events == {"export.stuck": 1}

    poller.store = TakenOverAfterClaim(aws_client("dynamodb", stack.endpoint_url), stack.table_name, takeover)
    a = _at(poller, t0)

    summary = run_cycle(a, owner="poller-A")

    [result] = summary.results
    assert (result.action, result.warning, result.event) == ("skipped", None, None), result
    notes = drain(stack, subscriber)
    it = raw_item(stack, job_id)
    assert it["state"] == "watching" and it["due_shard"] == "due"
    if poller_b == "holds the job":
        assert notes == []  # A published nothing
        assert it["lease_owner"] == "poller-B" and "warned_stuck_at" not in it
        # B died holding the lease; once it lapses, the next cycle warns.
        later = _at(build_poller(settings), t0 + 2 * lease + 10)
        assert run_cycle(later, owner="poller-C").events == {"export.stuck": 1}
        notes = drain(stack, subscriber)
    assert published(notes) == Counter({(job_id, "export.stuck"): 1})  # exactly one, from B or the next cycle
    warned = raw_item(stack, job_id)
    assert warned["warned_stuck_at"] == notes[0].body["occurred_at"]
    assert "lease_owner" not in warned

    # Never again.
    again = _at(build_poller(settings), t0 + 4 * lease)
    assert run_cycle(again, all_jobs=True).events == {}
    assert drain(stack, subscriber) == []


# -- claim re-checks due-ness on the item itself ---------------------------------------------------------------


def test_claim_rechecks_next_check_at_on_the_item(stack: LocalStack) -> None:
    store = JobStore(aws_client("dynamodb", stack.endpoint_url), stack.table_name)
    now = int(time.time())
    for job_id, next_check_at in (("later", now + 600), ("onelate", now + 1), ("ontime", now), ("raced", 0)):
        track_job(store, job_id, tracked_at=now - 60, next_check_at=next_check_at)

    # Not due yet on the item: refused, and the item is left exactly as it was (no lease taken).
    for job_id in ("later", "onelate"):
        before = raw_item(stack, job_id)
        assert store.claim(job_id, "poller-A", now, 60, due_by=now) is None, job_id
        assert raw_item(stack, job_id) == before

    # Due exactly at due_by: claimed.
    job = store.claim("ontime", "poller-A", now, 60, due_by=now)
    assert job is not None and (job.lease_owner, job.lease_until) == ("poller-A", now + 60)
    assert raw_item(stack, "ontime")["lease_owner"] == "poller-A"

    # The race the check exists for: A listed the job as due, then B handled it and pushed its next check out.
    assert "raced" in store.due_ids(now)
    theirs = store.claim("raced", "poller-B", now, 60, due_by=now)
    assert theirs is not None
    theirs.next_check_at = now + 300
    store.save(theirs, "poller-B", release=True)
    before = raw_item(stack, "raced")
    assert store.claim("raced", "poller-A", now, 60, due_by=now) is None
    assert raw_item(stack, "raced") == before

    # --all (due_by None) claims regardless of next_check_at, and leaves next_check_at alone.
    job = store.claim("later", "poller-A", now, 60, due_by=None)
    assert job is not None and job.lease_owner == "poller-A" and job.next_check_at == now + 600
    assert raw_item(stack, "later")["next_check_at"] == now + 600


def test_claim_never_takes_a_settled_job(stack: LocalStack) -> None:
    store = JobStore(aws_client("dynamodb", stack.endpoint_url), stack.table_name)
    now = int(time.time())
    track_job(store, "settled", tracked_at=now - 60, state=JobState.COMPLETED, notified_at=stamp(now))
    before = raw_item(stack, "settled")
    assert "due_shard" not in before
    assert store.claim("settled", "poller-A", now, 60, due_by=None) is None
    assert raw_item(stack, "settled") == before


# -- the export.stuck window: due when now - tracked_at >= STUCK_AFTER_HOURS ---------------------------------------


def test_stuck_is_due_exactly_at_stuck_after_hours_and_not_a_second_before(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    t = _now()
    stuck_after = poller.settings.stuck_after_seconds
    at_boundary = emulator.add_job("completed", steps=["pending"])
    second_short = emulator.add_job("completed", steps=["pending"])
    track_job(poller.store, at_boundary, tracked_at=t - stuck_after)
    track_job(poller.store, second_short, tracked_at=t - stuck_after + 1)
    assert raw_item(stack, at_boundary)["tracked_at"] == stamp(t - stuck_after)  # whole seconds: exact

    run_cycle(_at(poller, t))

    notes = drain(stack, subscriber)
    assert published(notes) == Counter({(at_boundary, "export.stuck"): 1})
    assert notes[0].body["pending_seconds"] == stuck_after
    assert "warned_stuck_at" not in raw_item(stack, second_short)

    run_cycle(_at(poller, t + 1), all_jobs=True)  # one second later the other one is exactly at the boundary

    assert published(drain(stack, subscriber)) == Counter({(second_short, "export.stuck"): 1})


# -- the export.expiring window: due when 0 < download_expires_at - now < EXPIRY_WARNING_HOURS ----------------------


def test_expiring_is_due_a_second_inside_the_window_and_not_at_its_edge(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    """Intercom reports both exports completed (every download breaks off, so neither is copied); one expires exactly
    EXPIRY_WARNING_HOURS after now, the other a second sooner."""
    t = _now()
    window = poller.settings.expiry_warning_seconds
    at_edge = emulator.add_job("truncated", completed_at=t, expires_in=window)
    inside = emulator.add_job("truncated", completed_at=t, expires_in=window - 1)
    for job_id in (at_edge, inside):
        track_job(poller.store, job_id, tracked_at=t - 60)

    run_cycle(_at(poller, t))

    notes = drain(stack, subscriber)
    assert published(notes) == Counter({(inside, "export.expiring"): 1})
    assert notes[0].body["time_left_seconds"] == window - 1
    edge = raw_item(stack, at_edge)
    assert edge["download_expires_at"] == stamp(t + window) and "warned_expiring_at" not in edge
    assert edge["intercom_status"] == "completed" and "s3_uri" not in edge  # it was in play: finished, not copied

    run_cycle(_at(poller, t + 1), all_jobs=True)  # a second later the other one is a second inside

    assert published(drain(stack, subscriber)) == Counter({(at_edge, "export.expiring"): 1})


def test_an_export_at_or_past_its_expiry_is_not_expiring(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    """Intercom said "completed" on an earlier check and the copy has not succeeded; this cycle Intercom does not
    answer (HTTP 504), so only the stored expiry decides. One second left: export.expiring. None left, or past
    it: no warning (the next answer from Intercom makes it export.expired)."""
    t = _now()
    left = {"one_second_left": 1, "expires_now": 0, "expired_a_second_ago": -1}
    ids = {}
    for name, seconds in left.items():
        job_id = emulator.add_job("html_504", html_504_count=None)  # every status call: an HTML 504
        track_job(
            poller.store,
            job_id,
            tracked_at=t - HOUR,
            intercom_status="completed",
            download_expires_at=stamp(t + seconds),
            completed_seen_at=stamp(t - HOUR),
        )
        ids[name] = job_id

    summary = run_cycle(_at(poller, t))

    assert {r.job_identifier: r.action for r in summary.results} == dict.fromkeys(ids.values(), "retry")
    assert published(drain(stack, subscriber)) == Counter({(ids["one_second_left"], "export.expiring"): 1})
    for name in ("expires_now", "expired_a_second_ago"):
        it = raw_item(stack, ids[name])
        assert it["state"] == "watching" and "warned_expiring_at" not in it, name


def test_an_export_intercom_reports_at_or_past_expiry_is_expired_not_expiring(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    """Intercom answers "completed" with a download_expires_at of exactly now, or a second ago: the outcome is
    export.expired at once (no download is tried, no export.expiring is sent)."""
    t = _now()
    window = poller.settings.expiry_warning_seconds
    expires_now = emulator.add_job("expired", completed_at=t - window, expires_in=window)
    a_second_ago = emulator.add_job("expired", completed_at=t - window - 1, expires_in=window)
    for job_id in (expires_now, a_second_ago):
        track_job(poller.store, job_id, tracked_at=t - HOUR)

    summary = run_cycle(_at(poller, t))

    assert summary.events == {"export.expired": 2}
    assert [r.path for r in emulator.requests if r.path.startswith("/download/")] == []  # known gone: not fetched
    assert published(drain(stack, subscriber)) == Counter(
        {(expires_now, "export.expired"): 1, (a_second_ago, "export.expired"): 1}
    )

"""Several pollers at once (threads and processes), leases, and publish failures: copied once, announced once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import pytest

from exportwatch.config import Settings
from exportwatch.notifier import Notifier
from exportwatch.poll import CycleSummary, Poller, run_cycle
from exportwatch.store import LeaseLost
from exportwatch.wiring import build_poller
from exportwatch_local.emulator import IntercomEmulator
from exportwatch_local.localstack import LocalStack, ReceivedNotification, aws_client, receive_notifications
from support.aws import FlakySNS, set_attrs
from support.tracking import track

N_JOBS = 40


def downloads_per_job(emulator: IntercomEmulator) -> Counter[str | None]:
    return Counter(r.job_identifier for r in emulator.requests if r.path.startswith("/download/"))


def drain(stack: LocalStack, queue_url: str) -> list[ReceivedNotification]:
    return receive_notifications(stack.endpoint_url, queue_url, timeout=0.9)


def collect(stack: LocalStack, queue_url: str, expect: int) -> list[ReceivedNotification]:
    """`expect` notifications, then whatever else is in the queue (duplicates would show up here)."""
    notes = receive_notifications(stack.endpoint_url, queue_url, expect=expect, timeout=10)
    return notes + drain(stack, queue_url)


def assert_once_each(emulator: IntercomEmulator, notes: list[ReceivedNotification], job_ids: list[str]) -> None:
    assert downloads_per_job(emulator) == Counter(dict.fromkeys(job_ids, 1))
    announced = Counter((n.body["job_identifier"], n.body["event"]) for n in notes)
    assert announced == Counter({(job_id, "export.completed"): 1 for job_id in job_ids})


# -- many pollers, many jobs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pollers", [2, 4])
def test_concurrent_pollers_copy_and_announce_each_job_once(
    settings: Settings, emulator: IntercomEmulator, stack: LocalStack, subscriber: str, pollers: int
) -> None:
    instances = [build_poller(settings) for _ in range(pollers)]
    job_ids = [emulator.add_job("completed", steps=["completed"]) for _ in range(N_JOBS)]
    track(instances[0], *job_ids)
    barrier = threading.Barrier(pollers)
    summaries: dict[int, CycleSummary] = {}
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            summaries[i] = run_cycle(instances[i], all_jobs=True, owner=f"poller-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(pollers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and len(summaries) == pollers

    # Every poller saw every job as due, so each could have copied it: the leases decided.
    assert all(s.due == N_JOBS for s in summaries.values())
    done = Counter(r.job_identifier for s in summaries.values() for r in s.results if r.event)
    assert done == Counter(dict.fromkeys(job_ids, 1))
    actions = Counter(r.action for s in summaries.values() for r in s.results)
    assert set(actions) <= {"copied", "skipped"} and actions["copied"] == N_JOBS
    assert_once_each(emulator, collect(stack, subscriber, N_JOBS), job_ids)
    assert run_cycle(instances[0], all_jobs=True).due == 0


def test_concurrent_cli_processes_copy_and_announce_each_job_once(
    env: dict[str, str], poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    job_ids = [emulator.add_job("completed", steps=["completed"]) for _ in range(N_JOBS)]
    track(poller, *job_ids)
    proc_env = {**os.environ, **env}
    cmd = [sys.executable, "-m", "exportwatch", "poll", "--all", "--json"]
    procs = [
        subprocess.Popen(cmd, env=proc_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    summaries = [json.loads(out) for out, _ in outputs]
    done = Counter(j["job_identifier"] for s in summaries for j in s["jobs"] if j["event"])
    assert done == Counter(dict.fromkeys(job_ids, 1))
    assert sum(s["events"].get("export.completed", 0) for s in summaries) == N_JOBS
    assert_once_each(emulator, collect(stack, subscriber, N_JOBS), job_ids)


# -- leases ----------------------------------------------------------------------------------------------------


def test_live_lease_is_skipped_and_expired_lease_is_taken_over(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    job_id = emulator.add_job("completed", steps=["completed"])
    track(poller, job_id)
    now = int(time.time())
    assert poller.store.claim(job_id, "someone-else", now, 900, None) is not None

    summary = run_cycle(poller, all_jobs=True)

    assert [(r.job_identifier, r.action) for r in summary.results] == [(job_id, "skipped")]
    assert emulator.requests_for(job_id) == []
    job = poller.store.get(job_id)
    assert job is not None and job.lease_owner == "someone-else" and job.state == "watching"
    assert drain(stack, subscriber) == []

    # The holder was killed: its lease runs out, and the next cycle takes the job over.
    set_attrs(stack, job_id, lease_until=now - 1)
    summary = run_cycle(poller, all_jobs=True)

    assert summary.events == {"export.completed": 1}
    job = poller.store.get(job_id)
    assert job is not None and job.settled and job.lease_owner is None and job.lease_until is None
    assert len(collect(stack, subscriber, 1)) == 1


def test_save_after_losing_the_lease_raises(poller: Poller, emulator: IntercomEmulator, stack: LocalStack) -> None:
    job_id = emulator.add_job("completed")
    track(poller, job_id)
    now = int(time.time())
    mine = poller.store.claim(job_id, "slow", now, 60, None)
    assert mine is not None
    assert poller.store.claim(job_id, "fast", now + 30, 60, None) is None  # still live: refused
    theirs = poller.store.claim(job_id, "fast", now + 61, 60, None)  # lapsed: taken over
    assert theirs is not None and theirs.lease_owner == "fast"

    mine.attempts = 99
    with pytest.raises(LeaseLost, match=job_id):
        poller.store.save(mine, "slow", release=False)
    with pytest.raises(LeaseLost):
        poller.store.save(mine, "slow", release=True)
    stored = poller.store.get(job_id)
    assert stored is not None and stored.lease_owner == "fast" and stored.attempts == 0
    poller.store.save(theirs, "fast", release=True)  # the owner's save goes through
    stored = poller.store.get(job_id)
    assert stored is not None and stored.lease_owner is None


def test_poller_that_lost_its_lease_publishes_nothing(
    poller: Poller,
    emulator: IntercomEmulator,
    stack: LocalStack,
    subscriber: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = emulator.add_job("completed", steps=["completed"])
    track(poller, job_id)
    real_status = poller.intercom.get_status

    def slow_status(jid: str) -> Any:
        # While we are busy, our lease lapses and another poller takes the job.
        later = int(time.time()) + poller.settings.lease_seconds + 1
        assert poller.store.claim(jid, "taker", later, poller.settings.lease_seconds, None) is not None
        return real_status(jid)

    monkeypatch.setattr(poller.intercom, "get_status", slow_status)
    summary = run_cycle(poller, owner="loser")

    [result] = summary.results
    assert result.action == "skipped" and "taken over" in result.detail
    assert result.event is None
    assert drain(stack, subscriber) == []
    job = poller.store.get(job_id)
    assert job is not None and job.lease_owner == "taker" and job.notified_at is None and job.state == "watching"

    # The taker finishes the job (after its own lease lapses, as seen from a later clock): announced once.
    monkeypatch.setattr(poller.intercom, "get_status", real_status)
    poller.clock = lambda: time.time() + 2 * poller.settings.lease_seconds + 10
    summary = run_cycle(poller, all_jobs=True)
    assert summary.events == {"export.completed": 1}
    assert len(collect(stack, subscriber, 1)) == 1


# -- publish failures ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["missing_topic", "flaky_client"])
def test_failed_publish_is_retried_next_cycle_exactly_once(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str, failure: str
) -> None:
    sns = aws_client("sns", stack.endpoint_url)
    flaky = FlakySNS(sns, fail=1 if failure == "flaky_client" else 0)
    if failure == "missing_topic":
        poller.notifier = Notifier(sns, stack.topic_arn.rsplit(":", 1)[0] + ":no-such-topic")
    else:
        poller.notifier = Notifier(flaky, stack.topic_arn)
    job_id = emulator.add_job("completed", steps=["completed"])
    track(poller, job_id)
    t0 = time.time()
    poller.clock = lambda: t0

    first = run_cycle(poller)

    [result] = first.results
    assert (result.action, result.state, result.event) == ("retry", "completed", None)
    assert "publish export.completed" in result.detail
    job = poller.store.get(job_id)
    assert job is not None and job.state == "completed" and job.notified_at is None and not job.settled
    assert job.s3_uri is not None and job.last_error is not None and job.last_error.startswith("publish ")
    assert job.next_check_at == int(t0) + poller.settings.poll_interval_seconds
    assert job_id in poller.store.due_ids(None)  # still due
    assert drain(stack, subscriber) == []

    poller.notifier = Notifier(flaky, stack.topic_arn)  # SNS is back
    poller.clock = lambda: t0 + poller.settings.poll_interval_seconds  # the next scheduled cycle
    second = run_cycle(poller)

    assert second.events == {"export.completed": 1}
    [note] = collect(stack, subscriber, 1)
    assert note.body["job_identifier"] == job_id and note.body["s3_uri"] == job.s3_uri
    assert note.body["occurred_at"] == job.outcome_at  # the outcome's time, not the retry's
    assert downloads_per_job(emulator) == {job_id: 1}  # the copy was not redone
    settled = poller.store.get(job_id)
    assert settled is not None and settled.settled and settled.last_error is None

    for _ in range(2):  # never again
        assert run_cycle(poller, all_jobs=True).due == 0
    assert drain(stack, subscriber) == []
    assert flaky.published == 1

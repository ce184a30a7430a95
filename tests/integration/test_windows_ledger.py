"""The coverage ledger's windows end to end: backfill is idempotent and never overlaps, the daily schedule catches
up missed days oldest first, a 429 leaves a window waiting, a failed export is retried silently, and a window that
runs out of attempts is failed and announced once.

Against moto over HTTP and the emulators over HTTP; the CLI runs in-process, and the poller is built as the Lambda
builds it (wiring.build_poller) where the test needs to move its clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from exportwatch.config import Settings
from exportwatch.poll import Poller, run_cycle
from exportwatch.wiring import build_poller
from exportwatch_local.emulator import IntercomEmulator
from exportwatch_local.localstack import LocalStack
from support.clock import FakeClock
from support.readback import drain, raw_item
from support.workspaces import (
    EU,
    ONE_DAY,
    TwoWorkspaces,
    all_in,
    assert_gap_free,
    backfill,
    create_untracked_export,
    day_seconds,
    days,
    finish_untracked_export,
    ledger_rows,
    poll_until,
    run_cli,
    successful_ranges,
    two_workspaces,
    utc_today,
)


@pytest.fixture
def two(stack: LocalStack, token: str, subscriber: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TwoWorkspaces]:
    with two_workspaces(stack, token, subscriber, monkeypatch) as ws:
        ws.add_eu()
        yield ws


def test_backfill_is_idempotent_and_a_wider_backfill_fills_only_the_free_days(
    env: dict[str, str], stack: LocalStack, emulator: IntercomEmulator, poller: Poller
) -> None:
    y = utc_today() - ONE_DAY
    assert "queued 5 windows for workspace default" in backfill("default", y - 9 * ONE_DAY, y - 5 * ONE_DAY)
    assert "queued 0 windows" in backfill("default", y - 9 * ONE_DAY, y - 5 * ONE_DAY)
    assert "queued 0 windows" in backfill("default", y - 8 * ONE_DAY, y - 6 * ONE_DAY, "--window-days", "3")

    # Around the existing days, in 3-day windows: y-12..y-10, then y-4..y-2 and y-1..y (the last one shorter).
    assert "queued 3 windows" in backfill("default", y - 12 * ONE_DAY, y, "--window-days", "3")
    assert "queued 0 windows" in backfill("default", y - 12 * ONE_DAY, y, "--window-days", "2")

    rows = ledger_rows(stack)
    spans = [(r["start"], r["end"]) for r in rows]
    expected = [(y - 12 * ONE_DAY, y - 10 * ONE_DAY)]
    expected += [(d, d) for d in days(y - 9 * ONE_DAY, y - 5 * ONE_DAY)]
    expected += [(y - 4 * ONE_DAY, y - 2 * ONE_DAY), (y - ONE_DAY, y)]
    assert spans == [(str(a), str(b)) for a, b in expected]
    assert_gap_free(rows, y - 12 * ONE_DAY, y)

    poll_until(all_in(stack, {"archived"}, count=8), limit=30, poller=poller)

    assert_gap_free(ledger_rows(stack), y - 12 * ONE_DAY, y)
    # Started oldest queued first... the two backfills' windows interleave by day, each range whole UTC days.
    assert successful_ranges(emulator) == [day_seconds(a, b) for a, b in sorted(expected)]
    assert emulator.peak_active_exports == 1


def test_missed_daily_windows_are_caught_up_oldest_first_then_one_more_each_day(
    stack: LocalStack, token: str, subscriber: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0).timestamp())
    today = datetime.fromtimestamp(clock.now, UTC).date()
    start = today - 5 * ONE_DAY
    with two_workspaces(stack, token, subscriber, monkeypatch, clock=clock) as ws:
        ws.add_eu("--daily", "--start", str(start))
        poller = build_poller(Settings.from_env(ws.env))
        poller.clock = clock
        eu = ws.emulator(EU)

        def cycles_until(count: int) -> None:
            for _ in range(30):
                run_cycle(poller, all_jobs=True)
                rows = ledger_rows(stack, EU)
                assert sum(r["state"] == "running" for r in rows) <= 1, rows  # one export at a time
                if len(rows) == count and all(r["state"] == "archived" for r in rows):
                    return
            raise AssertionError(ledger_rows(stack, EU))

        run_cycle(poller, all_jobs=True)
        first = ledger_rows(stack, EU)
        assert [(r["start"], r["end"]) for r in first] == [(str(d), str(d)) for d in days(start, today - ONE_DAY)]
        assert [r["state"] for r in first] == ["running", "queued", "queued", "queued", "queued"]

        cycles_until(5)
        assert successful_ranges(eu) == [day_seconds(d) for d in days(start, today - ONE_DAY)]

        clock.now += 2 * 86_400  # two more days are over
        cycles_until(7)

        rows = ledger_rows(stack, EU)
        assert [(r["start"], r["end"]) for r in rows] == [(str(d), str(d)) for d in days(start, today + ONE_DAY)]
        assert_gap_free(rows, start, today + ONE_DAY)
        assert successful_ranges(eu) == [day_seconds(d) for d in days(start, today + ONE_DAY)]
        assert eu.peak_active_exports == 1
        assert ws.emulator("default").creates == []
        notes = drain(stack, subscriber)
        assert sorted(n.body["window_start"] for n in notes) == [str(d) for d in days(start, today + ONE_DAY)]
        assert {(n.attributes["event"], n.attributes["workspace"]) for n in notes} == {("export.completed", EU)}


def test_a_429_on_create_leaves_the_window_queued_until_the_other_export_finishes(two: TwoWorkspaces) -> None:
    eu = two.emulator(EU)
    day = utc_today() - 3 * ONE_DAY
    other = create_untracked_export(eu, day - ONE_DAY)
    backfill(EU, day, day)

    for _ in range(2):
        polled = run_cli("poll", "--all", "--json")
        assert polled.code == 0, polled
        [action] = [w for w in json.loads(polled.out)["workspaces"] if w["workspace"] == EU]
        assert action["action"] == "waiting", action
        assert action["window"] == str(day)
        [row] = ledger_rows(two.stack, EU)
        assert (row["state"], row["job_identifier"], row["attempts"]) == ("queued", None, 0)
    assert [(c.created_at_after, c.created_at_before, c.status_code) for c in eu.creates[1:]] == [
        (*day_seconds(day), 429)
    ] * 2
    assert drain(two.stack, two.queue_url) == []

    finish_untracked_export(eu, other)
    poll_until(all_in(two.stack, {"archived"}, EU), limit=8)

    [row] = ledger_rows(two.stack, EU)
    assert row["attempts"] == 1
    notes = drain(two.stack, two.queue_url)
    assert [(n.attributes["event"], n.body["job_identifier"]) for n in notes] == [
        ("export.completed", row["job_identifier"])
    ]
    assert eu.peak_active_exports == 1


def test_a_window_whose_export_fails_is_retried_silently_and_archived(two: TwoWorkspaces) -> None:
    default = two.emulator("default")
    default.queue_create_scenarios("failed", "completed")
    day = utc_today() - 2 * ONE_DAY
    backfill("default", day, day)

    poll_until(all_in(two.stack, {"archived"}, "default"), limit=10)

    [row] = ledger_rows(two.stack, "default")
    assert (row["state"], row["attempts"]) == ("archived", 2)
    first, second = [c.job_identifier for c in default.creates]
    assert first is not None and row["job_identifier"] == second
    assert successful_ranges(default) == [day_seconds(day)] * 2
    assert raw_item(two.stack, first)["state"] == "failed"
    notes = drain(two.stack, two.queue_url)
    assert [(n.attributes["event"], n.body["job_identifier"]) for n in notes] == [("export.completed", second)]
    assert (notes[0].body["window_start"], notes[0].body["window_end"]) == (str(day), str(day))
    assert notes[0].attributes["workspace"] == notes[0].body["workspace"] == "default"


def test_a_window_that_runs_out_of_attempts_is_failed_and_announced_once(
    stack: LocalStack, token: str, subscriber: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with two_workspaces(stack, token, subscriber, monkeypatch, extra_env={"WINDOW_MAX_ATTEMPTS": "2"}) as ws:
        ws.add_eu()
        eu = ws.emulator(EU)
        eu.set_create_scenario("failed")
        day = utc_today() - 4 * ONE_DAY
        backfill(EU, day, day)

        poll_until(all_in(stack, {"failed"}, EU), limit=12)

        [row] = ledger_rows(stack, EU)
        assert (row["state"], row["attempts"]) == ("failed", 2)
        [note] = drain(stack, subscriber)
        assert note.attributes["event"] == "export.failed"
        assert note.attributes["workspace"] == note.body["workspace"] == EU
        assert note.body["job_identifier"] == row["job_identifier"] == eu.creates[-1].job_identifier
        assert (note.body["window_start"], note.body["window_end"]) == (str(day), str(day))
        assert f"window {day} of workspace {EU}" in note.body["reason"], note.body["reason"]
        assert "2 attempts" in note.body["reason"], note.body["reason"]

        for _ in range(3):
            assert run_cli("poll", "--all").code == 0
        assert drain(stack, subscriber) == []
        assert len(eu.creates) == 2
        assert ledger_rows(stack, EU) == [row]

        # Backfill over it: queued again with a fresh round of attempts; this time the export completes.
        assert "queued 1 window for workspace eu" in backfill(EU, day, day)
        assert [r["state"] for r in ledger_rows(stack, EU)] == ["queued"]
        eu.set_create_scenario("completed")
        poll_until(all_in(stack, {"archived"}, EU), limit=12)
        rows = ledger_rows(stack, EU)
        assert [(r["start"], r["state"], r["attempts"]) for r in rows] == [(str(day), "archived", 3)]
        events = [(n.body["window_start"], n.attributes["event"]) for n in drain(stack, subscriber)]
        assert events == [(str(day), "export.completed")]

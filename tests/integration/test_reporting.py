"""Reporting datasets (issue 11) end to end, through the poller: a week of `conversation` and a week of content reach
one gap-free ledger for a named workspace and for the default one; the five-pending limit holds (the sixth window
waits, a 429 leaves a window queued); a failed reporting export is retried silently; each workspace's token and ids
reach only its own host.

Against moto over HTTP, the emulators over HTTP and an SQS queue subscribed to the topic; the CLI runs in-process,
and the poller is built once as the Lambda builds it (wiring.build_poller) where many cycles are needed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from exportwatch.config import Settings
from exportwatch.poll import run_cycle
from exportwatch.wiring import build_poller
from exportwatch_local.localstack import LocalStack, ReceivedNotification
from support.readback import drain, raw_item
from support.reporting import (
    CONVERSATION,
    assert_reporting_calls_carry_ids,
    enqueue_untracked,
    enqueued,
    every_in,
    every_row,
    expected_enqueue,
    finish_untracked_reporting,
    ids_of,
    reporting_window,
    reporting_workspaces,
)
from support.workspaces import (
    EU,
    ONE_DAY,
    TwoWorkspaces,
    assert_gap_free,
    backfill,
    coverage,
    day_seconds,
    days,
    poll_until,
    run_cli,
    s3_digest,
    successful_ranges,
    utc_today,
)

PREFIX = "intercom-exports/"  # EXPORT_PREFIX's default
VERSION = "2.16"  # INTERCOM_VERSION's default: the version the conversation dataset changed in


@pytest.fixture
def ws(stack: LocalStack, token: str, subscriber: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TwoWorkspaces]:
    """eu registered with its emulator's app_id and client_id; default without reporting ids."""
    with reporting_workspaces(stack, token, subscriber, monkeypatch) as two:
        two.add_eu(*ids_of(two.emulator(EU)))
        yield two


def _check_week(two: TwoWorkspaces, name: str, week: list[date], notes: list[ReceivedNotification]) -> None:
    """Both ledgers of `name` gap-free and archived, each copy where the contract says with its size and sha256,
    each enqueue a whole day with every attribute, the limits kept, one export.completed per window."""
    stack, emulator = two.stack, two.emulator(name)
    rows = coverage(name)
    assert len(rows) == 2 * len(week), rows
    content = [r for r in rows if r["kind"] == "content"]
    reporting = [r for r in rows if r["kind"] == "reporting"]
    assert len(content) == len(reporting) == len(week), rows
    assert all(r["dataset"] is None for r in content)
    assert all(r["dataset"] == CONVERSATION for r in reporting)
    completed = [n for n in notes if n.attributes["event"] == "export.completed"]
    assert len(completed) == len(notes), [n.attributes for n in notes]
    per_job = Counter(n.body["job_identifier"] for n in completed)
    for mine, folder, ext in ((content, "content", "zip"), (reporting, f"reporting/{CONVERSATION}", "gz")):
        assert [r["start"] for r in mine] == [r["end"] for r in mine] == [str(d) for d in week]
        assert_gap_free(mine, week[0], week[-1])
        for row in mine:
            assert (row["workspace"], row["state"], row["attempts"]) == (name, "archived", 1), row
            assert row["api_version"] == VERSION, row
            job_id = row["job_identifier"]
            key, size, sha = s3_digest(stack, row["s3_uri"])
            assert key == f"{PREFIX}{name}/{folder}/dt={row['start']}/{job_id}.{ext}"
            lkind = "content" if row["kind"] == "content" else f"reporting:{CONVERSATION}"
            window = raw_item(stack, f"window#{name}#{lkind}#{row['start']}")
            assert (window["size_bytes"], window["sha256"]) == (size, sha)
            job = raw_item(stack, job_id)
            assert (job["size_bytes"], job["sha256"], job["workspace"]) == (size, sha, name)
            assert per_job[job_id] == 1, per_job
            [note] = [n for n in completed if n.body["job_identifier"] == job_id]
            assert note.attributes["workspace"] == note.body["workspace"] == name
            assert note.body["window_start"] == note.body["window_end"] == row["start"]
            assert (note.body["s3_uri"], note.body["size_bytes"], note.body["sha256"]) == (row["s3_uri"], size, sha)
            assert note.body["kind"] == row["kind"]
            if row["kind"] == "reporting":
                assert note.body["dataset"] == note.attributes["dataset"] == CONVERSATION, note.attributes
            else:
                assert "dataset" in note.body and note.body["dataset"] is None, note.body
                assert "dataset" not in note.attributes, note.attributes
    assert len(completed) == 2 * len(week)

    assert enqueued(emulator) == [expected_enqueue(d) for d in week]
    assert all(e.status_code == 200 for e in emulator.enqueues)
    assert successful_ranges(emulator) == [day_seconds(d) for d in week]
    assert emulator.peak_pending_reporting <= 5
    assert emulator.peak_active_exports <= 1
    assert_reporting_calls_carry_ids(emulator, at_least=len(week))
    assert emulator.tokens_seen() == {two.tokens[name]}


def test_a_week_of_conversation_and_a_week_of_content_reach_one_gap_free_ledger(ws: TwoWorkspaces) -> None:
    until = utc_today() - ONE_DAY
    since = until - 6 * ONE_DAY
    assert "queued 7 windows of conversation for workspace eu" in backfill(EU, since, until, "--dataset", CONVERSATION)
    assert "queued 7 windows for workspace eu" in backfill(EU, since, until)

    poller = build_poller(Settings.from_env(ws.env))
    poll_until(every_in(ws.stack, {"archived"}, EU, count=14), limit=40, poller=poller)

    _check_week(ws, EU, days(since, until), drain(ws.stack, ws.queue_url))
    assert ws.emulator(EU).peak_pending_reporting == 5  # seven windows: five at once, the limit reached
    default = ws.emulator("default")
    assert (default.requests, default.enqueues, default.creates) == ([], [], [])


def test_the_default_workspace_takes_its_reporting_ids_from_the_environment(
    stack: LocalStack, token: str, subscriber: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with reporting_workspaces(stack, token, subscriber, monkeypatch, default_ids_in_env=True) as two:
        until = utc_today() - 2 * ONE_DAY
        since = until - 2 * ONE_DAY
        backfill("default", since, until, "--dataset", CONVERSATION)
        backfill("default", since, until)

        poller = build_poller(Settings.from_env(two.env))
        poll_until(every_in(stack, {"archived"}, "default", count=6), limit=30, poller=poller)

        _check_week(two, "default", days(since, until), drain(stack, subscriber))
        assert two.emulator(EU).requests == []


def test_at_most_five_reporting_windows_are_enqueued_the_rest_wait(ws: TwoWorkspaces) -> None:
    eu = ws.emulator(EU)
    slow = ["pending", "in_progress", "in_progress", "in_progress", "complete"]
    eu.set_reporting_scenario("completed", steps=slow)
    until = utc_today() - ONE_DAY
    since = until - 6 * ONE_DAY
    backfill(EU, since, until, "--dataset", CONVERSATION)
    poller = build_poller(Settings.from_env(ws.env))

    for _ in range(2):
        run_cycle(poller, all_jobs=True)
        rows = every_row(ws.stack, EU)
        assert [r["state"] for r in rows] == ["running"] * 5 + ["queued"] * 2, rows
        assert [r["job_identifier"] for r in rows[5:]] == [None, None]
        assert [e.status_code for e in eu.enqueues] == [200] * 5  # the sixth was never asked for
        assert enqueued(eu) == [expected_enqueue(d) for d in days(since, since + 4 * ONE_DAY)]
    shown = coverage(EU)
    assert [r["state"] for r in shown] == ["running"] * 5 + ["queued"] * 2
    assert drain(ws.stack, ws.queue_url) == []

    poll_until(every_in(ws.stack, {"archived"}, EU, count=7), limit=30, poller=poller)
    assert eu.peak_pending_reporting == 5
    assert [e.status_code for e in eu.enqueues] == [200] * 7
    notes = drain(ws.stack, ws.queue_url)
    assert sorted(n.body["window_start"] for n in notes) == [str(d) for d in days(since, until)]
    assert {n.attributes["event"] for n in notes} == {"export.completed"}


def test_a_429_on_enqueue_leaves_the_window_queued_and_publishes_nothing(ws: TwoWorkspaces) -> None:
    eu = ws.emulator(EU)
    day = utc_today() - 3 * ONE_DAY
    others = []
    for i in range(5):  # five pending reporting exports someone enqueued through Intercom's API
        resp = enqueue_untracked(eu, day - (i + 1) * ONE_DAY)
        assert resp.status_code == 200, resp.text
        others.append(str(resp.json()["job_identifier"]))
    backfill(EU, day, day, "--dataset", CONVERSATION)

    for _ in range(2):
        polled = run_cli("poll", "--all", "--json")
        assert polled.code == 0, polled
        [row] = every_row(ws.stack, EU)
        assert (row["state"], row["job_identifier"], row["attempts"]) == ("queued", None, 0), row
    refused = eu.enqueues[5:]
    assert refused and all(e.status_code == 429 for e in refused), [e.to_dict() for e in refused]
    assert {(e.dataset_id, e.start_time, e.end_time) for e in refused} == {(CONVERSATION, *day_seconds(day))}
    assert drain(ws.stack, ws.queue_url) == []
    assert [r["state"] for r in coverage(EU)] == ["queued"]

    finish_untracked_reporting(eu, others[0])  # one slot free: the window is enqueued and archived
    poll_until(every_in(ws.stack, {"archived"}, EU), limit=10)
    [row] = every_row(ws.stack, EU)
    assert row["attempts"] == 1
    notes = drain(ws.stack, ws.queue_url)
    assert [(n.attributes["event"], n.body["job_identifier"]) for n in notes] == [
        ("export.completed", row["job_identifier"])
    ]
    assert eu.peak_pending_reporting <= 5


def test_a_failed_reporting_export_is_retried_silently_while_content_goes_on(ws: TwoWorkspaces) -> None:
    eu = ws.emulator(EU)
    eu.queue_reporting_scenarios("failed", "completed")
    day = utc_today() - 2 * ONE_DAY
    backfill(EU, day, day, "--dataset", CONVERSATION)
    backfill(EU, day, day)

    poll_until(every_in(ws.stack, {"archived"}, EU, count=2), limit=15)

    rows = {r["kind"]: r for r in coverage(EU)}
    assert (rows["reporting"]["state"], rows["reporting"]["attempts"]) == ("archived", 2)
    assert (rows["content"]["state"], rows["content"]["attempts"]) == ("archived", 1)
    first, second = [e.job_identifier for e in eu.enqueues]
    assert first is not None and rows["reporting"]["job_identifier"] == second
    assert enqueued(eu) == [expected_enqueue(day)] * 2
    assert raw_item(ws.stack, first)["state"] == "failed"
    assert reporting_window(ws.stack, EU, day)["attempts"] == 2
    assert successful_ranges(eu) == [day_seconds(day)]
    notes = drain(ws.stack, ws.queue_url)
    events = sorted((n.attributes["event"], n.body["kind"], n.body["job_identifier"]) for n in notes)
    assert events == sorted(
        [
            ("export.completed", "content", rows["content"]["job_identifier"]),
            ("export.completed", "reporting", second),
        ]
    )


def test_each_workspaces_token_and_ids_reach_only_its_own_host(
    stack: LocalStack, token: str, subscriber: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with reporting_workspaces(stack, token, subscriber, monkeypatch, default_ids_in_env=True) as two:
        eu, default = two.emulator(EU), two.emulator("default")
        two.add_eu(*ids_of(eu))
        day = utc_today() - 2 * ONE_DAY
        for name in ("default", EU):
            backfill(name, day - ONE_DAY, day, "--dataset", CONVERSATION)
            backfill(name, day, day)
        tracked = eu.add_reporting_job("completed")
        assert run_cli("track", tracked, "--dataset", CONVERSATION, "--workspace", EU).code == 0
        assert run_cli("datasets", "--workspace", EU, "--json").code == 0
        assert run_cli("datasets", "--json").code == 0

        poller = build_poller(Settings.from_env(two.env))
        poll_until(every_in(stack, {"archived"}, count=6), limit=30, poller=poller)
        poll_until(lambda: raw_item(stack, tracked).get("state") == "completed", limit=5, poller=poller)

        for name, emulator in (("default", default), (EU, eu)):
            assert emulator.tokens_seen() == {two.tokens[name]}, name
            assert_reporting_calls_carry_ids(emulator, at_least=2)
            assert enqueued(emulator) == [expected_enqueue(d) for d in (day - ONE_DAY, day)]
            joined = json.dumps([r.to_dict() for r in emulator.requests])
            other = EU if name == "default" else "default"
            assert two.tokens[other] not in joined
            assert two.emulator(other).app_id not in joined and two.emulator(other).client_id not in joined
        assert all(r.job_identifier != tracked for r in default.requests)
        by_ws: dict[str, Any] = Counter(n.attributes["workspace"] for n in drain(stack, subscriber))
        assert by_ws == {"default": 3, EU: 4}

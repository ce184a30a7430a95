"""The reporting family's commands (issue 11): `datasets`, `start --dataset`, `track ID --dataset`, `backfill --dataset`
and `workspace add --app-id/--client-id/--daily-dataset`; and their refusals (a missing app_id/client_id, an unknown
dataset, an unknown attribute: exit 2, one line, nothing written, nothing enqueued).

Against moto over HTTP and the emulators over HTTP; the CLI runs in-process (support.workspaces.run_cli).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from exportwatch.config import Settings
from exportwatch.poll import run_cycle
from exportwatch.wiring import build_poller
from exportwatch_local.emulator import DATASETS
from exportwatch_local.localstack import LocalStack
from support.cli_runner import one_error_line, seed_job, table_items
from support.clock import FakeClock
from support.readback import drain, raw_item
from support.reporting import (
    CONVERSATION,
    all_attributes,
    archived_header,
    assert_reporting_calls_carry_ids,
    enqueued,
    every_row,
    expected_enqueue,
    ids_of,
    reporting_workspaces,
)
from support.workspaces import (
    EU,
    ONE_DAY,
    TwoWorkspaces,
    day_seconds,
    days,
    poll_until,
    run_cli,
    s3_digest,
    utc_today,
)

PREFIX = "intercom-exports/"


@pytest.fixture
def ws(stack: LocalStack, token: str, subscriber: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TwoWorkspaces]:
    """eu registered with its emulator's reporting ids; default without them (no INTERCOM_APP_ID/CLIENT_ID)."""
    with reporting_workspaces(stack, token, subscriber, monkeypatch) as two:
        two.add_eu(*ids_of(two.emulator(EU)))
        yield two


# -- refusals -----------------------------------------------------------------------------------------------------

_DAY = "{d}"
REFUSED = {
    # case: (workspace, eu added with its ids, arguments, what the one line names)
    "backfill, eu without ids": (EU, False, ["backfill", "--since", _DAY, "--until", _DAY, "--dataset", CONVERSATION]),
    "start, eu without ids": (EU, False, ["start", "--since", _DAY, "--until", _DAY, "--dataset", CONVERSATION]),
    "track, eu without ids": (EU, False, ["track", "abcdef123456", "--dataset", CONVERSATION]),
    "backfill, default without env ids": (
        "default",
        True,
        ["backfill", "--since", _DAY, "--until", _DAY, "--dataset", CONVERSATION],
    ),
    "start, default without env ids": (
        "default",
        True,
        ["start", "--since", _DAY, "--until", _DAY, "--dataset", CONVERSATION],
    ),
    "track, default without env ids": ("default", True, ["track", "abcdef123456", "--dataset", CONVERSATION]),
    "backfill, unknown dataset": (EU, True, ["backfill", "--since", _DAY, "--until", _DAY, "--dataset", "nope"]),
    "start, unknown dataset": (EU, True, ["start", "--since", _DAY, "--until", _DAY, "--dataset", "nope"]),
    "track, unknown dataset": (EU, True, ["track", "abcdef123456", "--dataset", "nope"]),
    "backfill, unknown attribute": (
        EU,
        True,
        ["backfill", "--since", _DAY, "--until", _DAY, "--dataset", CONVERSATION, "--attributes", "conversation.nope"],
    ),
    "start, unknown attribute": (
        EU,
        True,
        ["start", "--since", _DAY, "--until", _DAY, "--dataset", CONVERSATION, "--attributes", "conversation.nope"],
    ),
    "start, a non-day --since": (
        EU,
        True,
        ["start", "--since", "{d}T00:00:00Z", "--until", _DAY, "--dataset", CONVERSATION],
    ),
}
NEEDLE = {
    "without": "app_id/client_id",
    "unknown dataset": "nope",
    "unknown attribute": "conversation.nope",
    "non-day": "day",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_reporting_request_it_cannot_make_exits_2_with_one_line_and_writes_nothing(
    case: str, stack: LocalStack, token: str, subscriber: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace, with_ids, template = REFUSED[case]
    with reporting_workspaces(stack, token, subscriber, monkeypatch) as two:
        two.add_eu(*(ids_of(two.emulator(EU)) if with_ids else ()))
        seed_job(stack)
        before = table_items(stack)
        day = str(utc_today() - 2 * ONE_DAY)

        result = run_cli(*[a.format(d=day) for a in template], "--workspace", workspace)

        [needle] = [n for key, n in NEEDLE.items() if key in case]
        one_error_line(result, 2, needle)
        assert result.out == ""
        assert table_items(stack) == before
        for emulator in two.fleet.emulators.values():
            assert (emulator.enqueues, emulator.creates) == ([], [])
        assert drain(stack, subscriber) == []


# -- start, track -------------------------------------------------------------------------------------------------


def test_start_enqueues_exactly_the_given_attributes_and_a_poll_archives_it(ws: TwoWorkspaces) -> None:
    eu = ws.emulator(EU)
    day = utc_today() - 3 * ONE_DAY
    wanted = ["conversation.state", "conversation.channel"]
    started = run_cli(
        "start", "--dataset", CONVERSATION, "--attributes", ",".join(wanted), "--since", str(day), "--until", str(day),
        "--workspace", EU,
    )  # fmt: skip
    assert started.code == 0, started
    job_id = started.out.splitlines()[0]
    one_day = ("--since", str(day), "--until", str(day))
    everything = run_cli("start", "--dataset", CONVERSATION, *one_day, "--workspace", EU)
    assert everything.code == 0, everything
    all_id = everything.out.splitlines()[0]
    assert enqueued(eu) == [(CONVERSATION, tuple(wanted), *day_seconds(day)), expected_enqueue(day)]
    assert [e.job_identifier for e in eu.enqueues] == [job_id, all_id]
    for tracked in (job_id, all_id):
        item = raw_item(ws.stack, tracked)
        assert (item["kind"], item["dataset"], item["workspace"], item["state"]) == (
            "reporting",
            CONVERSATION,
            EU,
            "watching",
        ), item

    poll_until(lambda: all(raw_item(ws.stack, j).get("state") == "completed" for j in (job_id, all_id)), limit=8)

    notes = {n.body["job_identifier"]: n for n in drain(ws.stack, ws.queue_url)}
    assert set(notes) == {job_id, all_id}
    for tracked, header in ((job_id, wanted), (all_id, all_attributes(CONVERSATION))):
        item = raw_item(ws.stack, tracked)
        note = notes[tracked]
        uri = note.body["s3_uri"]
        key, size, sha = s3_digest(ws.stack, uri)
        seen = str(item["completed_seen_at"])[:10]
        assert key == f"{PREFIX}{EU}/reporting/{CONVERSATION}/dt={seen}/{tracked}.gz"
        assert (item["size_bytes"], item["sha256"]) == (size, sha)
        assert archived_header(ws.stack, uri) == header
        assert note.attributes["event"] == "export.completed"
        assert note.attributes["dataset"] == note.body["dataset"] == CONVERSATION
        assert note.body["kind"] == "reporting"
    assert_reporting_calls_carry_ids(eu)
    assert every_row(ws.stack, EU) == []  # a started export is not a window
    assert ws.emulator("default").requests == []


def test_track_with_a_dataset_polls_a_reporting_job_to_completed(ws: TwoWorkspaces) -> None:
    eu = ws.emulator(EU)
    job_id = eu.add_reporting_job("completed", dataset=CONVERSATION)
    tracked = run_cli("track", job_id, "--dataset", CONVERSATION, "--workspace", EU)
    assert tracked.code == 0, tracked
    assert job_id in tracked.out

    poll_until(lambda: raw_item(ws.stack, job_id).get("state") == "completed", limit=8)

    [note] = drain(ws.stack, ws.queue_url)
    assert (note.attributes["event"], note.attributes["dataset"], note.attributes["workspace"]) == (
        "export.completed",
        CONVERSATION,
        EU,
    )
    assert (note.body["kind"], note.body["dataset"]) == ("reporting", CONVERSATION)
    key, size, sha = s3_digest(ws.stack, note.body["s3_uri"])
    assert key.startswith(f"{PREFIX}{EU}/reporting/{CONVERSATION}/dt=") and key.endswith(f"/{job_id}.gz")
    assert (note.body["size_bytes"], note.body["sha256"]) == (size, sha)
    assert eu.enqueues == []
    assert_reporting_calls_carry_ids(eu)


# -- datasets, workspace ------------------------------------------------------------------------------------------


def test_datasets_lists_the_emulators_catalogue_with_attributes(ws: TwoWorkspaces) -> None:
    shown = run_cli("datasets", "--workspace", EU, "--json")
    assert shown.code == 0, shown
    assert json.loads(shown.out) == [dict(d) for d in DATASETS]
    text = run_cli("datasets", "--workspace", EU)
    assert text.code == 0, text
    for attribute in all_attributes(CONVERSATION):
        assert attribute in text.out
    assert ws.emulator("default").requests == []
    assert ws.emulator(EU).tokens_seen() == {ws.tokens[EU]}


def test_workspace_list_shows_the_reporting_settings(ws: TwoWorkspaces) -> None:
    eu = ws.emulator(EU)
    start = utc_today() - 2 * ONE_DAY
    ws.add_eu(*ids_of(eu), "--daily-dataset", CONVERSATION, "--daily-dataset", "ticket", "--start", str(start))
    listed = run_cli("workspace", "list", "--json")
    assert listed.code == 0, listed
    rows = {r["name"]: r for r in json.loads(listed.out)}
    assert (rows[EU]["app_id"], rows[EU]["client_id"], rows[EU]["daily_datasets"]) == (
        eu.app_id,
        eu.client_id,
        [CONVERSATION, "ticket"],
    )
    assert (rows["default"]["app_id"], rows["default"]["client_id"], rows["default"]["daily_datasets"]) == (
        None,
        None,
        [],
    )


def test_a_daily_dataset_is_queued_and_archived_up_to_yesterday(
    stack: LocalStack, token: str, subscriber: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0).timestamp())
    today = datetime.fromtimestamp(clock.now, UTC).date()
    start = today - 3 * ONE_DAY
    with reporting_workspaces(stack, token, subscriber, monkeypatch, clock=clock) as two:
        eu = two.emulator(EU)
        two.add_eu(*ids_of(eu), "--daily-dataset", CONVERSATION, "--start", str(start))
        poller = build_poller(Settings.from_env(two.env))
        poller.clock = clock
        for _ in range(20):
            run_cycle(poller, all_jobs=True)
            rows = every_row(stack, EU)
            if len(rows) == 3 and all(r["state"] == "archived" for r in rows):
                break
        rows = every_row(stack, EU)
        week = days(start, today - ONE_DAY)
        assert [(r["kind"], r["dataset"], r["start"], r["state"]) for r in rows] == [
            ("reporting", CONVERSATION, str(d), "archived") for d in week
        ]
        assert enqueued(eu) == [expected_enqueue(d) for d in week]
        assert eu.creates == []  # no --daily: no content windows
        notes = drain(stack, subscriber)
        assert sorted(n.body["window_start"] for n in notes) == [str(d) for d in week]
        assert {(n.attributes["event"], n.attributes["dataset"]) for n in notes} == {("export.completed", CONVERSATION)}


@pytest.mark.parametrize("case", ["unknown dataset", "without ids"])
def test_a_daily_dataset_it_cannot_archive_exits_2_and_writes_nothing(
    case: str, stack: LocalStack, token: str, subscriber: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with reporting_workspaces(stack, token, subscriber, monkeypatch) as two:
        eu = two.emulator(EU)
        seed_job(stack)
        before = table_items(stack)
        dataset, ids = ("nope", ids_of(eu)) if case == "unknown dataset" else (CONVERSATION, ())
        start = str(utc_today() - 3 * ONE_DAY)
        result = run_cli(
            "workspace", "add", EU, "--api-url", two.fleet.base_url(EU), "--token-secret", two.eu_secret,
            *ids, "--daily-dataset", dataset, "--start", start,
        )  # fmt: skip
        one_error_line(result, 2, "nope" if case == "unknown dataset" else "app")
        assert result.out == ""
        assert table_items(stack) == before
        assert eu.enqueues == []

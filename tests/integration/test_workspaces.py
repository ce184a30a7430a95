"""Workspaces end to end: two Intercom workspaces (own emulator, port and token each) on one stack.

A week of backfill over both reaches a gap-free ledger; each token reaches only its own host; a workspace with a
wrong token waits while the other works; a single-workspace setup with no registry entry works as before; and the
CLI refuses bad input (exit 2, one line, nothing written). The CLI runs in-process where many polls are needed
and as a subprocess for the validation cases.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest

from exportwatch.config import Settings
from exportwatch.wiring import build_poller
from exportwatch_local.emulator import IntercomEmulator
from exportwatch_local.localstack import LocalStack, aws_client
from support.cli_runner import make_cli, one_error_line, seed_job, table_items
from support.readback import drain, raw_item
from support.workspaces import (
    EU,
    ONE_DAY,
    TwoWorkspaces,
    all_in,
    assert_gap_free,
    backfill,
    coverage,
    day_seconds,
    days,
    ledger_records,
    poll_until,
    run_cli,
    s3_digest,
    successful_ranges,
    two_workspaces,
    utc_today,
)

PREFIX = "intercom-exports/"  # EXPORT_PREFIX's default


@pytest.fixture
def two(stack: LocalStack, token: str, subscriber: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TwoWorkspaces]:
    with two_workspaces(stack, token, subscriber, monkeypatch) as ws:
        ws.add_eu()
        yield ws


def test_a_week_of_backfill_over_two_workspaces_reaches_a_gap_free_ledger(two: TwoWorkspaces) -> None:
    until = utc_today() - ONE_DAY
    since = until - 6 * ONE_DAY
    week = days(since, until)
    for name in ("default", EU):
        assert f"queued 7 windows for workspace {name}" in backfill(name, since, until)

    poller = build_poller(Settings.from_env(two.env))  # what `poll --all` builds, once: many cycles, fast
    poll_until(all_in(two.stack, {"archived"}, count=14), limit=30, poller=poller)

    rows = coverage()
    notes = drain(two.stack, two.queue_url)
    completed = [n for n in notes if n.attributes["event"] == "export.completed"]
    assert len(notes) == len(completed) == 14, [n.attributes for n in notes]
    by_window = Counter((n.body["workspace"], n.body["window_start"]) for n in completed)
    for name in ("default", EU):
        mine = [r for r in rows if r["workspace"] == name]
        assert [r["start"] for r in mine] == [str(d) for d in week]
        assert all(r["end"] == r["start"] and r["state"] == "archived" and r["attempts"] == 1 for r in mine)
        assert_gap_free(mine, since, until)
        assert coverage(name) == mine
        for row in mine:
            job_id = row["job_identifier"]
            key, size, sha = s3_digest(two.stack, row["s3_uri"])
            assert key == f"{PREFIX}{name}/content/dt={row['start']}/{job_id}.zip"
            window = raw_item(two.stack, f"window#{name}#content#{row['start']}")
            assert (window["size_bytes"], window["sha256"]) == (size, sha)
            job = raw_item(two.stack, job_id)
            assert (job["size_bytes"], job["sha256"], job["workspace"]) == (size, sha, name)
            [note] = [n for n in completed if n.body["job_identifier"] == job_id]
            assert note.attributes["workspace"] == name
            assert note.body["window_start"] == note.body["window_end"] == row["start"]
            assert (note.body["s3_uri"], note.body["size_bytes"], note.body["sha256"]) == (row["s3_uri"], size, sha)
            assert by_window[name, row["start"]] == 1

        emulator = two.emulator(name)
        assert [(c.created_at_after, c.created_at_before, c.status_code) for c in emulator.creates] == [
            (*day_seconds(d), 200) for d in week
        ]
        assert emulator.peak_active_exports == 1
        assert emulator.tokens_seen() == {two.tokens[name]}


def test_a_wrong_token_keeps_its_workspace_waiting_and_never_reaches_another_host(
    two: TwoWorkspaces, stack: LocalStack
) -> None:
    wrong = "test-token-wrong-" + two.tokens[EU][-12:][::-1]
    sm = aws_client("secretsmanager", stack.endpoint_url)
    sm.put_secret_value(SecretId=two.eu_secret, SecretString=wrong)
    day = utc_today() - 2 * ONE_DAY
    backfill("default", day, day)
    backfill(EU, day, day)
    tracked = two.emulator(EU).add_job("completed")
    assert run_cli("track", tracked, "--workspace", EU).code == 0

    poll_until(all_in(stack, {"archived"}, "default"), limit=8, check_code=False)
    for _ in range(2):
        run_cli("poll", "--all")

    [eu_window] = coverage(EU)
    assert (eu_window["state"], eu_window["job_identifier"], eu_window["attempts"]) == ("queued", None, 0)
    error = raw_item(stack, f"window#{EU}#content#{day}")["last_error"]
    assert "could not start the export" in error and "401" in error, error
    assert raw_item(stack, tracked)["state"] == "watching"
    assert two.emulator(EU).creates == []  # 401s are not recorded as creates: nothing was made
    assert two.emulator("default").tokens_seen() == {two.tokens["default"]}
    assert two.emulator(EU).tokens_seen() == {wrong}
    events = [(n.body["workspace"], n.attributes["event"]) for n in drain(stack, two.queue_url)]
    assert events == [("default", "export.completed")]

    # The secret fixed: eu catches up with its own token, and its jobs reach their outcome.
    sm.put_secret_value(SecretId=two.eu_secret, SecretString=two.tokens[EU])
    poll_until(all_in(stack, {"archived"}, EU), limit=8)
    poll_until(lambda: raw_item(stack, tracked)["state"] == "completed", limit=4)
    assert two.emulator(EU).tokens_seen() == {wrong, two.tokens[EU]}
    assert two.emulator("default").tokens_seen() == {two.tokens["default"]}
    assert successful_ranges(two.emulator(EU)) == [day_seconds(day)]


def test_a_single_workspace_setup_without_a_registry_entry_works_as_before(
    env: dict[str, str], token: str, stack: LocalStack, emulator: IntercomEmulator, subscriber: str
) -> None:
    run = make_cli(env, token)
    job_id = emulator.add_job("completed")
    tracked = run("track", job_id)
    assert tracked.code == 0, tracked
    assert "workspace" not in tracked.out

    poll_until(lambda: raw_item(stack, job_id).get("state") == "completed", limit=5)

    [note] = drain(stack, subscriber)
    assert note.attributes == {"event": "export.completed", "job_identifier": job_id, "workspace": "default"}
    assert note.body["workspace"] == "default"
    assert "window_start" not in note.body and "window_end" not in note.body
    completed_day = raw_item(stack, job_id)["completed_seen_at"][:10]
    assert note.body["s3_uri"] == f"s3://{stack.bucket}/{PREFIX}default/content/dt={completed_day}/{job_id}.zip"
    assert ledger_records(stack) == []
    assert [i["job_identifier"]["S"] for i in table_items(stack)] == [job_id]

    listed = run("workspace", "list", "--json")
    assert listed.code == 0, listed
    [default] = json.loads(listed.out)
    assert default == {
        "name": "default",
        "api_url": emulator.base_url,
        "token_secret": stack.secret_id,
        "daily": False,
        "start": None,
        "window_days": 1,
        # issue 11's reporting family: none set in this environment
        "app_id": None,
        "client_id": None,
        "daily_datasets": [],
    }
    shown = run("coverage", "--json")
    assert (shown.code, json.loads(shown.out)) == (0, [])
    assert ledger_records(stack) == []


def _yesterday() -> str:
    return str(utc_today() - ONE_DAY)


BAD_INPUT = {
    "bad workspace name": (["workspace", "add", "EU_1", "--api-url", "http://127.0.0.1:9", "--token-secret", "{s}"],),
    "non-Intercom https URL": (
        ["workspace", "add", "eu", "--api-url", "https://example.com", "--token-secret", "{s}"],
    ),
    "http non-loopback URL": (
        ["workspace", "add", "eu", "--api-url", "http://api.eu.intercom.io", "--token-secret", "{s}"],
    ),
    "secret id with spaces": (
        ["workspace", "add", "eu", "--api-url", "https://api.eu.intercom.io", "--token-secret", "my eu token"],
    ),
    "missing secret": (
        ["workspace", "add", "eu", "--api-url", "https://api.eu.intercom.io", "--token-secret", "exportwatch/nope"],
    ),
    "add default": (["workspace", "add", "default", "--api-url", "http://127.0.0.1:9", "--token-secret", "{s}"],),
    "daily without start": (
        ["workspace", "add", "eu", "--api-url", "http://127.0.0.1:9", "--token-secret", "{s}", "--daily"],
    ),
    "track in an unknown workspace": (["track", "abcdef123456", "--workspace", "nope"],),
    "backfill until today": (["backfill", "--workspace", "default", "--since", "{y}", "--until", "{t}"],),
    "backfill since after until": (["backfill", "--workspace", "default", "--since", "{y}", "--until", "2024-01-01"],),
    "backfill bad since": (["backfill", "--workspace", "default", "--since", "2024-02-30", "--until", "{y}"],),
    "backfill bad until": (["backfill", "--workspace", "default", "--since", "2024-01-01", "--until", "01/02/2024"],),
    "backfill unknown workspace": (["backfill", "--workspace", "nope", "--since", "2024-01-01", "--until", "{y}"],),
    "backfill bad workspace name": (["backfill", "--workspace", "No!", "--since", "2024-01-01", "--until", "{y}"],),
    "coverage unknown workspace": (["coverage", "--workspace", "nope"],),
    "remove unknown workspace": (["workspace", "remove", "nope"],),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    case: str, env: dict[str, str], token: str, stack: LocalStack
) -> None:
    run = make_cli(env, token)
    secret = "exportwatch/eu-" + stack.table_name[-8:]
    aws_client("secretsmanager", stack.endpoint_url).create_secret(Name=secret, SecretString="eu-token-value")
    seed_job(stack)
    before = table_items(stack)
    (template,) = BAD_INPUT[case]
    args = [a.format(s=secret, y=_yesterday(), t=str(utc_today())) for a in template]

    result = run(*args)

    one_error_line(result, 2)
    assert result.out == ""
    assert table_items(stack) == before

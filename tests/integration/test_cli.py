"""The `exportwatch` command line, run as real subprocesses against the moto server and the Intercom emulator.

Contract checked here: exit codes (0 ok, 1 the operation failed, 2 bad input, nothing written), errors are ONE
line on stderr with no traceback, and no output ever contains the Intercom token.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from exportwatch.model import iso
from exportwatch.poll import Poller
from exportwatch_local.emulator import IntercomEmulator
from exportwatch_local.localstack import LocalStack, MotoServer, create_resources, receive_notifications
from support.cli_runner import (
    REQUIRED,
    Cli,
    cached_client,
    make_cli,
    one_error_line,
    seed_job,
    table_items,
)
from support.paths import TEMPLATE
from support.tracking import track


@pytest.fixture
def cli(env: dict[str, str], token: str) -> Cli:
    """The CLI against this test's own stack and emulator (for tests that write)."""
    return make_cli(env, token)


@dataclass(frozen=True)
class Shared:
    """One stack and emulator for the tests whose command must fail and write nothing: each checks that."""

    stack: LocalStack
    emulator: IntercomEmulator
    token: str
    cli: Cli

    def state(self) -> tuple[list[dict[str, Any]], int]:
        return table_items(self.stack), len(self.emulator.requests)


@pytest.fixture(scope="module")
def shared(moto_server: MotoServer) -> Iterator[Shared]:
    token = f"test-token-{secrets.token_hex(12)}"
    stack = create_resources(moto_server.endpoint_url, token=token, template=TEMPLATE, suffix=secrets.token_hex(4))
    seed_job(stack)  # due now: a poll would work on it if it got that far
    with IntercomEmulator(token=token) as emulator:
        env = stack.env(INTERCOM_API_URL=emulator.base_url, POLL_INTERVAL_MINUTES="5")
        yield Shared(stack, emulator, token, make_cli(env, token))


def plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: next(iter(v.values())) for k, v in item.items()}


def epoch(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


# -- track ------------------------------------------------------------------------------------------------


def test_track_writes_a_due_job_and_tracking_twice_is_a_no_op(cli: Cli, stack: LocalStack) -> None:
    empty = cli("list")
    assert empty.code == 0 and empty.out.startswith("no tracked jobs"), empty

    first = cli("track", "orzzsbd7hk67xyu")
    assert (first.code, first.err) == (0, ""), first
    assert "tracking orzzsbd7hk67xyu" in first.out
    items = table_items(stack)
    assert len(items) == 1
    job = plain(items[0])
    assert job["job_identifier"] == "orzzsbd7hk67xyu" and job["state"] == "watching"
    assert job["next_check_at"] == "0" and job["due_shard"] == "due"

    again = cli("track", "orzzsbd7hk67xyu", module=True)
    assert (again.code, again.err) == (0, ""), again
    assert "already tracked" in again.out and "watching" in again.out
    assert table_items(stack) == items


@pytest.mark.parametrize(
    "args",
    [
        ("track", "a/b"),
        ("track", "a b"),
        ("track", "a\tb"),
        ("track", "a\nb"),
        ("track", "\x01x"),  # NUL itself cannot be passed in argv; test_parsing covers it
        ("track", "\x1b[2Jx"),
        ("track", "a\u2028b"),
        ("track", "x" * 200),
        ("track", ""),
        ("track", "../x"),
        ("track", "-rf"),
        ("track", "--", "-rf"),
        ("track", "ok", "x\ny"),  # argparse's own messages used to carry the raw newline
        ("cancel", "a/b"),
    ],
    ids=lambda args: repr(args)[:48],
)
def test_invalid_job_ids_fail_in_one_line_and_write_nothing(shared: Shared, args: tuple[str, ...]) -> None:
    before = shared.state()
    one_error_line(shared.cli(*args), 2)
    assert shared.state() == before


# -- start ------------------------------------------------------------------------------------------------


def test_start_creates_the_export_at_intercom_and_tracks_it(
    cli: Cli, stack: LocalStack, emulator: IntercomEmulator
) -> None:
    result = cli("start", "--since", "2024-01-01", "--until", "2024-01-31")
    assert result.code == 0, result
    job_id = result.out.strip()
    assert job_id and "\n" not in job_id
    assert "tracking" in result.err and "Traceback" not in result.err

    posts = [r for r in emulator.requests if r.method == "POST"]
    assert [r.path for r in posts] == ["/export/content/data"]
    body = json.loads(posts[0].body)
    # Whole days, inclusive: the last day ends at 23:59:59 UTC. Unix seconds as JSON integers.
    assert body == {"created_at_after": epoch(2024, 1, 1), "created_at_before": epoch(2024, 1, 31, 23, 59, 59)}
    assert all(type(v) is int for v in body.values())
    assert (emulator.job_info(job_id) or {}).get("created_via_api") is True

    [item] = table_items(stack)
    job = plain(item)
    assert job["job_identifier"] == job_id and job["state"] == "watching"
    assert job["created_at_after"] == "2024-01-01T00:00:00Z"
    assert job["created_at_before"] == "2024-01-31T23:59:59Z"
    assert job["intercom_status"] == "pending" and job["next_check_at"] == "0"

    # Intercom runs one export per workspace at a time: the second create answers 429.
    second = cli("start", "--since", "2024-02-01", "--until", "2024-02-29")
    line = one_error_line(second, 1, "one active export job")
    assert "rate limit" not in line.lower()
    assert second.out == ""
    assert table_items(stack) == [item]
    assert len([r for r in emulator.requests if r.method == "POST"]) == 2


@pytest.mark.parametrize(
    ("since", "until", "after", "before"),
    [
        # ISO 8601 basic dates are whole days too (--until 20240131 used to mean its first second only)
        ("20240131", "20240131", epoch(2024, 1, 31), epoch(2024, 1, 31, 23, 59, 59)),
        ("2024-01-31T06:00:00Z", "2024-01-31T18:30:00+01:00", epoch(2024, 1, 31, 6), epoch(2024, 1, 31, 17, 30)),
    ],
)
def test_start_date_forms(
    cli: Cli, stack: LocalStack, emulator: IntercomEmulator, since: str, until: str, after: int, before: int
) -> None:
    result = cli("start", "--since", since, "--until", until)
    assert result.code == 0, result
    [post] = [r for r in emulator.requests if r.method == "POST"]
    assert json.loads(post.body) == {"created_at_after": after, "created_at_before": before}
    [item] = table_items(stack)
    assert plain(item)["created_at_before"] == iso(datetime.fromtimestamp(before, UTC))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--since", "2024-13-01", "--until", "2024-01-31"), "--since"),
        (("--since", "2024-01-01", "--until", "yesterday"), "--until"),
        (("--since", "2024-02-01", "--until", "2024-01-31"), "after --until"),
        (("--since", "2024-01-31T12:00:00Z", "--until", "2024-01-31T11:59:59Z"), "after --until"),
        (("--since", "2999-01-01", "--until", "2999-01-31"), "future"),
        (("--since", "2024-01-01"), "--until"),
    ],
)
def test_start_rejects_bad_ranges_before_calling_intercom(shared: Shared, args: tuple[str, ...], needle: str) -> None:
    before = shared.state()
    one_error_line(shared.cli("start", *args), 2, needle)
    assert shared.state() == before


# -- poll / list ------------------------------------------------------------------------------------------


def test_poll_settles_finished_jobs_and_list_shows_their_states(
    cli: Cli, stack: LocalStack, emulator: IntercomEmulator, poller: Poller, subscriber: str
) -> None:
    done = emulator.add_job("completed", steps=["completed"])
    empty = emulator.add_job("no_data", steps=["no_data"])
    running = emulator.add_job("completed", steps=["in_progress"])
    assert cli("track", done).code == 0
    track(poller, empty, running)

    result = cli("poll")
    assert (result.code, result.err) == (0, ""), result
    lines = result.out.splitlines()
    assert lines[-1] == "poll: 3 due, 3 processed (1 checked, 1 copied, 1 notified)", result.out
    by_job = {line.split()[0]: line for line in lines[:-1]}
    assert "completed" in by_job[done] and "notified export.completed" in by_job[done]
    assert "no_data" in by_job[empty] and "notified export.no_data" in by_job[empty]
    assert "watching" in by_job[running] and "still in_progress" in by_job[running]

    notes = receive_notifications(stack.endpoint_url, subscriber, expect=2)
    assert sorted((n.body["event"], n.body["job_identifier"]) for n in notes) == sorted(
        [("export.completed", done), ("export.no_data", empty)]
    )
    settled = plain(next(i for i in table_items(stack) if i["job_identifier"]["S"] == done))
    assert settled["state"] == "completed" and settled["notified_at"] and "due_shard" not in settled
    assert settled["s3_uri"].startswith(f"s3://{stack.bucket}/")

    listing = cli("list")
    assert listing.code == 0, listing
    rows = {line.split()[0]: line.split()[1] for line in listing.out.splitlines()[1:]}
    assert listing.out.split()[:2] == ["JOB", "STATE"]
    assert rows == {done: "completed", empty: "no_data", running: "watching"}

    as_json = cli("list", "--json", module=True)
    assert as_json.code == 0, as_json
    jobs = {j["job_identifier"]: j for j in map(json.loads, as_json.out.splitlines())}
    assert {k: (j["state"], j["settled"]) for k, j in jobs.items()} == {
        done: ("completed", True),
        empty: ("no_data", True),
        running: ("watching", False),
    }
    assert jobs[done]["s3_uri"] == settled["s3_uri"]

    # Settled jobs and the backed-off running job are not due again this cycle.
    assert cli("poll").out.splitlines() == ["poll: 0 due, 0 processed (nothing to do)"]
    assert notes and receive_notifications(stack.endpoint_url, subscriber, timeout=0.5) == []


def test_poll_all_checks_a_job_whose_next_check_is_in_the_future(
    cli: Cli, stack: LocalStack, emulator: IntercomEmulator
) -> None:
    job_id = emulator.add_job("completed", steps=["in_progress"])
    seed_job(stack, job_id, next_check_at=int(time.time()) + 3600)

    plain_poll = cli("poll", "--json", module=True)
    assert plain_poll.code == 0, plain_poll
    assert json.loads(plain_poll.out)["due"] == 0
    assert emulator.requests_for(job_id) == []

    forced = cli("poll", "--all")
    assert forced.code == 0, forced
    assert forced.out.splitlines()[-1] == "poll: 1 due, 1 processed (1 checked)"
    assert f"{job_id}  watching" in forced.out and "still in_progress" in forced.out
    assert [r.method for r in emulator.requests_for(job_id)] == ["GET"]


def test_cancel(cli: Cli, emulator: IntercomEmulator) -> None:
    # More in test_cli_newcomer.py: finished and unknown jobs, and the export.canceled that follows.
    job_id = emulator.add_job("completed", steps=["in_progress"])
    result = cli("cancel", job_id)
    assert (result.code, result.err) == (0, ""), result
    assert result.out.startswith(f"{job_id}: canceled at Intercom; it is not tracked here"), result
    assert emulator.job_status(job_id) == "canceled"


# -- configuration ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "args"),
    [
        ("JOBS_TABLE", ("list",)),
        ("EXPORT_BUCKET", ("poll",)),
        ("NOTIFY_TOPIC_ARN", ("poll",)),  # track and list read JOBS_TABLE alone (test_entry_point_settings.py)
        ("INTERCOM_TOKEN_SECRET", ("start", "--since", "2024-01-01", "--until", "2024-01-02")),
    ],
)
def test_a_missing_variable_is_named_in_one_line(shared: Shared, variable: str, args: tuple[str, ...]) -> None:
    assert variable in REQUIRED
    before = shared.state()
    one_error_line(shared.cli(*args, unset=(variable,)), 2, variable)
    assert shared.state() == before


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("INTERCOM_API_URL", "http://api.intercom.io"),  # plain http off the machine
        ("INTERCOM_API_URL", "https://api.intercom.io/v2"),
        ("INTERCOM_API_URL", "not a url"),
        ("INTERCOM_API_URL", "https://[abc"),  # used to exit 1 with a bare "ValueError: Invalid IPv6 URL"
        ("EXPORT_PREFIX", "/exports"),
        ("EXPORT_PREFIX", "../x"),
    ],
)
def test_a_bad_variable_is_named_in_one_line(shared: Shared, variable: str, value: str) -> None:
    before = shared.state()
    one_error_line(shared.cli("poll", set_env={variable: value}), 2, variable)
    assert shared.state() == before


def _secret(stack: LocalStack, token: str, kind: str) -> str:
    """A secret id whose value is bad in the way `kind` says (the real token is hidden in some of them)."""
    sm = cached_client("secretsmanager", stack.endpoint_url)
    name = f"exportwatch/bad-{kind}-{secrets.token_hex(4)}"
    values: dict[str, dict[str, Any]] = {
        "no-value": {},
        "blank": {"SecretString": "  \n\t "},
        "json-without-token": {"SecretString": json.dumps({"access_token": token})},
        "json-empty-token": {"SecretString": json.dumps({"token": "", "previous": token})},
        "json-not-parsing": {"SecretString": '{"token": "' + token},
        "token-with-space": {"SecretString": f"{token} {token}"},
        "binary-not-utf8": {"SecretBinary": b"\xff\xfe" + token.encode()},  # used to exit 1, UnicodeDecodeError
    }
    if kind == "missing":
        return name  # never created
    return str(sm.create_secret(Name=name, **values[kind])["ARN"])


@pytest.mark.parametrize(
    ("kind", "command"),
    [
        ("missing", "poll"),
        ("missing", "start"),
        ("no-value", "poll"),
        ("blank", "poll"),
        ("json-without-token", "poll"),
        ("json-empty-token", "start"),
        ("json-not-parsing", "poll"),
        ("token-with-space", "poll"),
        ("binary-not-utf8", "poll"),
    ],
)
def test_a_bad_token_secret_fails_at_once_without_leaking_it(shared: Shared, kind: str, command: str) -> None:
    secret_id = _secret(shared.stack, shared.token, kind)
    before = shared.state()
    args = ("poll",) if command == "poll" else ("start", "--since", "2024-01-01", "--until", "2024-01-02")
    result = shared.cli(*args, set_env={"INTERCOM_TOKEN_SECRET": secret_id})
    one_error_line(result, 2, "INTERCOM_TOKEN_SECRET")  # cli() itself checks the token is not in the output
    assert shared.state() == before


def test_a_json_token_secret_works(cli: Cli, stack: LocalStack, token: str) -> None:
    sm = cached_client("secretsmanager", stack.endpoint_url)
    arn = sm.create_secret(Name=f"exportwatch/json-{secrets.token_hex(4)}", SecretString=json.dumps({"token": token}))
    seed_job(stack, "unknownjob1")  # the emulator answers 404: a final state, notified
    result = cli("poll", set_env={"INTERCOM_TOKEN_SECRET": arn["ARN"]})
    assert result.code == 0, result
    assert "not_found" in result.out and result.out.splitlines()[-1].startswith("poll: 1 due, 1 processed")


# -- help -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [True, False], ids=["python -m exportwatch", "exportwatch"])
def test_help(shared: Shared, module: bool) -> None:
    result = shared.cli("--help", module=module)
    assert (result.code, result.err) == (0, ""), result
    assert result.out.startswith("usage: exportwatch")
    for command in ("track", "start", "poll", "list", "cancel", "demo"):
        assert command in result.out


def test_no_command_is_a_one_line_usage_error(shared: Shared) -> None:
    one_error_line(shared.cli(module=True), 2, "COMMAND")

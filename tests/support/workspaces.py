"""Two Intercom workspaces on one stack, and the readbacks the workspace and ledger tests share.

`default` is the environment's workspace (the stack's token secret), `eu` is registered with `workspace add`; each
has its own emulator (own port, own token). The CLI runs in-process here (many polls, fast); the validation tests
run it as a subprocess (support.cli_runner).
"""

from __future__ import annotations

import calendar
import hashlib
import io
import json
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
import requests

from exportwatch.ledger import LedgerStore
from exportwatch.poll import Poller, run_cycle
from exportwatch_local import cli
from exportwatch_local.emulator import EmulatorFleet, IntercomEmulator
from exportwatch_local.localstack import LocalStack, aws_client
from support.cli_runner import Result, cached_client, table_items

EU = "eu"
ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class TwoWorkspaces:
    stack: LocalStack
    fleet: EmulatorFleet
    tokens: dict[str, str]
    env: dict[str, str]
    queue_url: str
    eu_secret: str

    def emulator(self, name: str) -> IntercomEmulator:
        return self.fleet.emulators[name]

    def add_eu(self, *extra: str) -> Result:
        """`workspace add eu` (in-process), asserting it succeeded."""
        result = run_cli(
            "workspace", "add", EU, "--api-url", self.fleet.base_url(EU), "--token-secret", self.eu_secret, *extra
        )
        assert result.code == 0, result
        return result


@contextmanager
def two_workspaces(
    stack: LocalStack,
    token: str,
    queue_url: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    clock: Callable[[], float] = time.time,
    extra_env: dict[str, str] | None = None,
) -> Iterator[TwoWorkspaces]:
    """Both emulators started, the environment set (os.environ too), eu's token in its own secret (not added)."""
    tokens = {"default": token, EU: f"test-token-eu-{secrets.token_hex(12)}"}
    secret = f"exportwatch/eu-token-{secrets.token_hex(4)}"
    aws_client("secretsmanager", stack.endpoint_url).create_secret(Name=secret, SecretString=tokens[EU])
    with EmulatorFleet(tokens, clock=clock) as fleet:
        env = stack.env(INTERCOM_API_URL=fleet.base_url("default"), POLL_INTERVAL_MINUTES="1", **(extra_env or {}))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield TwoWorkspaces(stack, fleet, tokens, env, queue_url, secret)


# -- the CLI, in-process ------------------------------------------------------------------------------------------


def run_cli(*args: str) -> Result:
    """`exportwatch ARGS` in this process (os.environ is the stack's), its stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(list(args))
    return Result(code, out.getvalue(), err.getvalue())


def coverage(workspace: str | None = None) -> list[dict[str, Any]]:
    args = ["coverage", "--json"] + (["--workspace", workspace] if workspace else [])
    result = run_cli(*args)
    assert result.code == 0, result
    rows = json.loads(result.out)
    assert isinstance(rows, list)
    return rows


def backfill(workspace: str, since: date, until: date, *extra: str) -> str:
    result = run_cli("backfill", "--workspace", workspace, "--since", str(since), "--until", str(until), *extra)
    assert result.code == 0, result
    return result.out


def poll_until(
    done: Callable[[], bool], limit: int = 40, *, check_code: bool = True, poller: Poller | None = None
) -> int:
    """`poll --all` (or, given a poller built once, its cycle with every job due: faster) until `done()`; how many
    polls it took."""
    for n in range(1, limit + 1):
        if poller is not None:
            run_cycle(poller, all_jobs=True)
        else:
            result = run_cli("poll", "--all")
            if check_code:
                assert result.code == 0, result
        if done():
            return n
    raise AssertionError(f"not done after {limit} polls: {coverage()}")


def ledger_rows(stack: LocalStack, workspace: str | None = None) -> list[dict[str, Any]]:
    """What `coverage --json` prints, read with the ledger's own queries (fast: no CLI run, one cached client)."""
    ledger = LedgerStore(cached_client("dynamodb", stack.endpoint_url), stack.table_name)
    names = [workspace] if workspace else ["default", *sorted(r.name for r in ledger.workspaces() if r.config)]
    return [w.to_dict() for name in names for w in ledger.windows(name)]


def all_in(
    stack: LocalStack, states: set[str], workspace: str | None = None, count: int | None = None
) -> Callable[[], bool]:
    def done() -> bool:
        rows = ledger_rows(stack, workspace)
        return bool(rows) and (count is None or len(rows) == count) and all(r["state"] in states for r in rows)

    return done


# -- days, ranges and the ledger ----------------------------------------------------------------------------------


def utc_today() -> date:
    return datetime.now(UTC).date()


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def day_seconds(start: date, end: date | None = None) -> tuple[int, int]:
    """00:00:00 of `start` and 23:59:59 of `end` (default: the same day), Unix seconds, computed with calendar."""
    last = end or start
    return calendar.timegm(start.timetuple()), calendar.timegm(last.timetuple()) + 86_399


def successful_ranges(emulator: IntercomEmulator) -> list[tuple[int | None, int | None]]:
    return [(c.created_at_after, c.created_at_before) for c in emulator.creates if c.status_code == 200]


def assert_gap_free(rows: list[dict[str, Any]], since: date, until: date) -> None:
    """Windows from `since` to `until` with no overlap and no day left out."""
    spans = sorted((date.fromisoformat(r["start"]), date.fromisoformat(r["end"])) for r in rows)
    assert spans, "no windows"
    assert spans[0][0] == since, spans
    assert spans[-1][1] == until, spans
    for (_, before_end), (after_start, _) in pairwise(spans):
        assert after_start == before_end + ONE_DAY, f"gap or overlap between {before_end} and {after_start}: {spans}"


def ledger_records(stack: LocalStack) -> list[dict[str, Any]]:
    """Every workspace and window record in the table (raw DynamoDB items)."""
    return [i for i in table_items(stack) if i["job_identifier"]["S"].startswith(("workspace#", "window#"))]


def s3_digest(stack: LocalStack, uri: str) -> tuple[str, int, str]:
    """(key, size, sha256) of the S3 object `uri` names, read back from the bucket."""
    assert uri.startswith(f"s3://{stack.bucket}/"), uri
    key = uri.removeprefix(f"s3://{stack.bucket}/")
    body = aws_client("s3", stack.endpoint_url).get_object(Bucket=stack.bucket, Key=key)["Body"].read()
    return key, len(body), hashlib.sha256(body).hexdigest()


def finish_untracked_export(emulator: IntercomEmulator, job_id: str) -> None:
    """Ask the emulator for an export's status (as its owner would) until it is completed: its slot is free."""
    for _ in range(6):
        resp = requests.get(
            f"{emulator.base_url}/export/content/data/{job_id}",
            headers={"Authorization": f"Bearer {emulator.token}"},
            timeout=5,
        )
        if resp.json()["status"] == "completed":
            return
    raise AssertionError(f"export {job_id} never completed")


def create_untracked_export(emulator: IntercomEmulator, day: date) -> str:
    """An export someone made through Intercom's API (not tracked by us): it holds the workspace's one slot."""
    after, before = day_seconds(day)
    resp = requests.post(
        f"{emulator.base_url}/export/content/data",
        json={"created_at_after": after, "created_at_before": before},
        headers={"Authorization": f"Bearer {emulator.token}"},
        timeout=5,
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["job_identifier"])

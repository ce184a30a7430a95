"""The reporting family (issue 11) end to end: two workspaces whose emulators have their own reporting ids, and the
readbacks the reporting tests share (what was enqueued, which calls carried which ids, where an export landed).

Built on support.workspaces (same stack, same in-process CLI); the emulators get distinct app_id/client_id values so
a test can tell which workspace's ids a call carried.
"""

from __future__ import annotations

import gzip
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from exportwatch.ledger import LedgerStore
from exportwatch_local.emulator import DATASETS, EmulatorFleet, IntercomEmulator, RecordedRequest
from exportwatch_local.localstack import LocalStack, aws_client
from support.cli_runner import cached_client
from support.readback import raw_item
from support.workspaces import EU, TwoWorkspaces, day_seconds

CONVERSATION = "conversation"
REPORTING_STATUS = "/export/reporting_data/"
REPORTING_DOWNLOAD = "/download/reporting_data/"
ENQUEUE = "/export/reporting_data/enqueue"
DATASETS_PATH = "/export/reporting_data/get_datasets"


@contextmanager
def reporting_workspaces(
    stack: LocalStack,
    token: str,
    queue_url: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    clock: Callable[[], float] = time.time,
    extra_env: dict[str, str] | None = None,
    default_ids_in_env: bool = False,
) -> Iterator[TwoWorkspaces]:
    """As support.workspaces.two_workspaces (eu not added yet), each emulator with its own random app_id and
    client_id; with `default_ids_in_env`, INTERCOM_APP_ID/INTERCOM_CLIENT_ID are the default emulator's."""
    tokens = {"default": token, EU: f"test-token-eu-{secrets.token_hex(12)}"}
    app_ids = {name: f"app-{name}-{secrets.token_hex(4)}" for name in tokens}
    client_ids = {name: f"client-{name}-{secrets.token_hex(4)}" for name in tokens}
    secret = f"exportwatch/eu-token-{secrets.token_hex(4)}"
    aws_client("secretsmanager", stack.endpoint_url).create_secret(Name=secret, SecretString=tokens[EU])
    monkeypatch.delenv("INTERCOM_APP_ID", raising=False)
    monkeypatch.delenv("INTERCOM_CLIENT_ID", raising=False)
    with EmulatorFleet(tokens, clock=clock, app_ids=app_ids, client_ids=client_ids) as fleet:
        ids = (
            {"INTERCOM_APP_ID": app_ids["default"], "INTERCOM_CLIENT_ID": client_ids["default"]}
            if default_ids_in_env
            else {}
        )
        env = stack.env(
            INTERCOM_API_URL=fleet.base_url("default"), POLL_INTERVAL_MINUTES="1", **ids, **(extra_env or {})
        )
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield TwoWorkspaces(stack, fleet, tokens, env, queue_url, secret)


def ids_of(emulator: IntercomEmulator) -> tuple[str, ...]:
    """`--app-id X --client-id Y`: the flags that give a workspace its emulator's reporting ids."""
    return ("--app-id", emulator.app_id, "--client-id", emulator.client_id)


def all_attributes(dataset: str) -> list[str]:
    """Every attribute of `dataset` by qualified id, read from the emulator's catalogue (not from the product)."""
    [found] = [d for d in DATASETS if d["id"] == dataset]
    attributes = cast(list[dict[str, str]], found["attributes"])
    return [f"{dataset}.{a['id']}" for a in attributes]


def query_of(request: RecordedRequest) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.path).query)


def reporting_status_calls(emulator: IntercomEmulator) -> list[RecordedRequest]:
    """GETs of `/export/reporting_data/{id}` (not get_datasets)."""
    return [
        r
        for r in emulator.requests
        if r.method == "GET"
        and urlsplit(r.path).path.startswith(REPORTING_STATUS)
        and urlsplit(r.path).path != DATASETS_PATH
    ]


def reporting_downloads(emulator: IntercomEmulator) -> list[RecordedRequest]:
    return [r for r in emulator.requests if r.method == "GET" and urlsplit(r.path).path.startswith(REPORTING_DOWNLOAD)]


def assert_reporting_calls_carry_ids(emulator: IntercomEmulator, at_least: int = 1) -> None:
    """Every reporting status call carried the emulator's app_id and client_id, every download its app_id."""
    statuses, downloads = reporting_status_calls(emulator), reporting_downloads(emulator)
    assert len(statuses) >= at_least and len(downloads) >= at_least, (len(statuses), len(downloads))
    for r in statuses:
        q = query_of(r)
        assert (q.get("app_id"), q.get("client_id")) == ([emulator.app_id], [emulator.client_id]), r.path
    for r in downloads:
        assert query_of(r).get("app_id") == [emulator.app_id], r.path


def enqueued(emulator: IntercomEmulator) -> list[tuple[str | None, tuple[str, ...] | None, int | None, int | None]]:
    """(dataset, attributes, start_time, end_time) of every successful enqueue, oldest first."""
    return [
        (e.dataset_id, e.attribute_ids, e.start_time, e.end_time) for e in emulator.enqueues if e.status_code == 200
    ]


def expected_enqueue(day: date, dataset: str = CONVERSATION) -> tuple[str, tuple[str, ...], int, int]:
    return (dataset, tuple(all_attributes(dataset)), *day_seconds(day))


def enqueue_untracked(emulator: IntercomEmulator, day: date, dataset: str = CONVERSATION) -> requests.Response:
    """A reporting export someone enqueued through Intercom's API (not tracked by us)."""
    start, end = day_seconds(day)
    return requests.post(
        f"{emulator.base_url}{ENQUEUE}",
        json={"dataset_id": dataset, "attribute_ids": all_attributes(dataset), "start_time": start, "end_time": end},
        headers={"Authorization": f"Bearer {emulator.token}"},
        timeout=5,
    )


def reporting_window(stack: LocalStack, workspace: str, day: date, dataset: str = CONVERSATION) -> dict[str, Any]:
    """The ledger's raw window item of a reporting dataset's day."""
    return raw_item(stack, f"window#{workspace}#reporting:{dataset}#{day.isoformat()}")


def archived_header(stack: LocalStack, uri: str) -> list[str]:
    """The CSV header of a gzip reporting export archived at `uri` (the attribute ids Intercom was asked for)."""
    assert uri.startswith(f"s3://{stack.bucket}/"), uri
    key = uri.removeprefix(f"s3://{stack.bucket}/")
    body = aws_client("s3", stack.endpoint_url).get_object(Bucket=stack.bucket, Key=key)["Body"].read()
    return gzip.decompress(body).decode().splitlines()[0].split(",")


def finish_untracked_reporting(emulator: IntercomEmulator, job_id: str) -> None:
    """Ask for a reporting export's status (as its owner would) until it is complete: its pending slot is free."""
    for _ in range(8):
        resp = requests.get(
            f"{emulator.base_url}{REPORTING_STATUS}{job_id}",
            params={"app_id": emulator.app_id, "client_id": emulator.client_id},
            headers={"Authorization": f"Bearer {emulator.token}"},
            timeout=5,
        )
        assert resp.status_code == 200, resp.text
        if resp.json()["status"] in ("complete", "completed"):
            return
    raise AssertionError(f"reporting export {job_id} never completed")


def every_row(stack: LocalStack, workspace: str | None = None) -> list[dict[str, Any]]:
    """As support.workspaces.ledger_rows, but every ledger kind (content and each dataset), as `coverage --json`."""
    ledger = LedgerStore(cached_client("dynamodb", stack.endpoint_url), stack.table_name)
    names = [workspace] if workspace else ["default", *sorted(r.name for r in ledger.workspaces() if r.config)]
    return [w.to_dict() for name in names for w in ledger.windows(name, None)]


def every_in(
    stack: LocalStack, states: set[str], workspace: str | None = None, count: int | None = None
) -> Callable[[], bool]:
    """support.workspaces.all_in over every ledger kind."""

    def done() -> bool:
        rows = every_row(stack, workspace)
        return bool(rows) and (count is None or len(rows) == count) and all(r["state"] in states for r in rows)

    return done

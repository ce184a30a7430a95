"""The emulator as several Intercom workspaces: own port and token each, one active export each, creates recorded.

Exercised over real HTTP with requests, as the poller will use it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from exportwatch_local.emulator import CreateRecord, EmulatorFleet, IntercomEmulator, start_workspaces
from support.clock import FakeClock

TOKENS = {"us": "token-us", "eu": "token-eu"}
ONE_ACTIVE = "Exceeded rate limit of 1 pending message data export jobs"
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
DAY = 86_400
MONDAY = 1_767_571_200  # 2026-01-05T00:00:00Z


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_770_000_000.0)


@pytest.fixture
def fleet(clock: FakeClock) -> Iterator[EmulatorFleet]:
    with EmulatorFleet(TOKENS, clock=clock) as running:
        yield running


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create(
    http: requests.Session, fleet: EmulatorFleet, name: str, start: int = MONDAY, days: int = 1, token: str = ""
) -> requests.Response:
    body = {"created_at_after": start, "created_at_before": start + days * DAY - 1}
    return http.post(
        f"{fleet.base_url(name)}/export/content/data", json=body, headers=auth(token or TOKENS[name]), timeout=5
    )


def status(http: requests.Session, fleet: EmulatorFleet, name: str, job_id: str) -> str:
    resp = http.get(f"{fleet.base_url(name)}/export/content/data/{job_id}", headers=auth(TOKENS[name]), timeout=5)
    assert resp.status_code in (200, 504)
    return str(resp.json()["status"])


def run_to_end(http: requests.Session, fleet: EmulatorFleet, name: str, job_id: str) -> str:
    """Status calls until the job leaves pending/in_progress (jobs advance by calls, never by time)."""
    for _ in range(10):
        word = status(http, fleet, name, job_id)
        if word not in ("pending", "in_progress"):
            return word
    raise AssertionError(f"job {job_id} never finished")


def error_message(resp: requests.Response) -> str:
    body = resp.json()
    assert body["type"] == "error.list"
    return str(body["errors"][0]["message"])


def test_each_workspace_is_served_on_its_own_port_with_its_own_label(
    fleet: EmulatorFleet, http: requests.Session
) -> None:
    us, eu = fleet.emulators["us"], fleet.emulators["eu"]
    assert (us.workspace, eu.workspace) == ("us", "eu")
    assert us.port != eu.port
    assert fleet.base_url("us") == us.base_url and us.base_url.startswith("http://127.0.0.1:")
    for name in TOKENS:
        health = http.get(f"{fleet.base_url(name)}/_emulator/health", timeout=5).json()
        assert health == {"ok": True, "base_url": fleet.base_url(name), "workspace": name}


def test_a_token_is_rejected_by_the_other_workspace_and_seen_there(
    fleet: EmulatorFleet, http: requests.Session
) -> None:
    assert create(http, fleet, "us").status_code == 200
    wrong = create(http, fleet, "eu", token=TOKENS["us"])

    assert wrong.status_code == 401
    assert error_message(wrong) == "Access Token Invalid"
    assert not any(h in wrong.headers for h in RATE_HEADERS)  # like Intercom: no rate-limit headers on a 401
    assert fleet.emulators["eu"].tokens_seen() == {TOKENS["us"]}
    assert fleet.emulators["us"].tokens_seen() == {TOKENS["us"]}
    # A refused create is not a create the workspace made: the log holds authenticated creates only.
    assert fleet.emulators["eu"].creates == []
    assert fleet.emulators["eu"].active_exports == []


def test_tokens_seen_keeps_every_distinct_credential_whatever_the_scheme(
    fleet: EmulatorFleet, http: requests.Session
) -> None:
    base = fleet.base_url("eu")
    http.get(f"{base}/export/content/data/x", headers=auth(TOKENS["eu"]), timeout=5)
    http.get(f"{base}/export/content/data/x", headers=auth(TOKENS["eu"]), timeout=5)
    http.get(f"{base}/export/content/data/x", headers={"Authorization": "Basic dXM6cGFzcw=="}, timeout=5)
    http.get(f"{base}/export/content/data/x", timeout=5)  # no Authorization: nothing presented

    assert fleet.emulators["eu"].tokens_seen() == {TOKENS["eu"], "Basic dXM6cGFzcw=="}


def test_one_active_export_per_workspace_then_the_slot_frees_when_it_completes(
    fleet: EmulatorFleet, http: requests.Session
) -> None:
    first = create(http, fleet, "us", MONDAY)
    assert first.status_code == 200
    job_id = first.json()["job_identifier"]

    second = create(http, fleet, "us", MONDAY + DAY)
    assert second.status_code == 429
    assert error_message(second) == ONE_ACTIVE
    assert create(http, fleet, "eu", MONDAY).status_code == 200  # the other workspace has its own slot
    assert fleet.emulators["us"].active_exports == [job_id]

    assert run_to_end(http, fleet, "us", job_id) == "completed"
    third = create(http, fleet, "us", MONDAY + DAY)
    assert third.status_code == 200

    us = fleet.emulators["us"]
    assert [(c.status_code, c.job_identifier) for c in us.creates] == [
        (200, job_id),
        (429, None),
        (200, third.json()["job_identifier"]),
    ]
    assert us.peak_active_exports == 1
    assert fleet.emulators["eu"].peak_active_exports == 1


@pytest.mark.parametrize("scenario", ["failed", "no_data", "canceled", "completed", "complete_legacy"])
def test_a_finished_job_frees_the_slot(scenario: str, fleet: EmulatorFleet, http: requests.Session) -> None:
    fleet.emulators["us"].set_create_scenario(scenario)
    job_id = create(http, fleet, "us").json()["job_identifier"]
    assert create(http, fleet, "us").status_code == 429

    assert run_to_end(http, fleet, "us", job_id) == scenario.replace("complete_legacy", "complete")
    assert create(http, fleet, "us").status_code == 200


def test_a_cancel_frees_the_slot(fleet: EmulatorFleet, http: requests.Session) -> None:
    job_id = create(http, fleet, "eu").json()["job_identifier"]
    canceled = http.post(f"{fleet.base_url('eu')}/export/cancel/{job_id}", headers=auth(TOKENS["eu"]), timeout=5)
    assert canceled.json()["status"] == "canceled"
    assert create(http, fleet, "eu").status_code == 200
    assert fleet.emulators["eu"].peak_active_exports == 1


def test_every_create_range_is_recorded_whatever_the_answer(
    fleet: EmulatorFleet, http: requests.Session, clock: FakeClock
) -> None:
    eu = fleet.emulators["eu"]
    ok = create(http, fleet, "eu", MONDAY, days=7)
    clock.now += 5
    refused = create(http, fleet, "eu", MONDAY + 7 * DAY)
    bad = http.post(
        f"{fleet.base_url('eu')}/export/content/data",
        json={"created_at_after": MONDAY},
        headers=auth(TOKENS["eu"]),
        timeout=5,
    )
    assert (ok.status_code, refused.status_code, bad.status_code) == (200, 429, 400)

    start = clock.now - 5
    assert eu.creates == [
        CreateRecord(ok.json()["job_identifier"], MONDAY, MONDAY + 7 * DAY - 1, 200, start),
        CreateRecord(None, MONDAY + 7 * DAY, MONDAY + 8 * DAY - 1, 429, start + 5),
        CreateRecord(None, MONDAY, None, 400, start + 5),
    ]
    assert fleet.emulators["us"].creates == []
    with pytest.raises(AttributeError):
        eu.creates[0].status_code = 500  # type: ignore[misc]  # frozen records

    over_http = http.get(f"{fleet.base_url('eu')}/_emulator/creates", timeout=5).json()
    assert over_http["peak_active_exports"] == 1
    assert over_http["creates"][1] == {
        "job_identifier": None,
        "created_at_after": MONDAY + 7 * DAY,
        "created_at_before": MONDAY + 8 * DAY - 1,
        "status_code": 429,
        "time": start + 5,
    }


def test_a_create_over_the_call_rate_limit_is_recorded_as_a_429(fleet: EmulatorFleet, http: requests.Session) -> None:
    us = fleet.emulators["us"]
    us.set_rate_limit(0, 60)
    resp = create(http, fleet, "us")
    assert resp.status_code == 429
    assert [(c.status_code, c.created_at_after) for c in us.creates] == [(429, MONDAY)]


def test_queued_create_scenarios_are_taken_in_order_then_the_default(
    fleet: EmulatorFleet, http: requests.Session
) -> None:
    us = fleet.emulators["us"]
    us.set_create_scenario("no_data")
    us.queue_create_scenarios("failed", ("completed", {"rows": 3}))
    assert us.queued_create_scenarios == ["failed", "completed"]

    first = create(http, fleet, "us").json()["job_identifier"]
    assert create(http, fleet, "us").status_code == 429  # a refused create takes nothing from the queue
    assert us.queued_create_scenarios == ["completed"]
    assert run_to_end(http, fleet, "us", first) == "failed"  # the window's first export fails...

    retry = create(http, fleet, "us").json()["job_identifier"]
    assert run_to_end(http, fleet, "us", retry) == "completed"  # ...and its retry completes
    info = us.job_info(retry)
    assert info is not None and info["options"] == {"rows": 3}

    after = create(http, fleet, "us").json()["job_identifier"]
    assert run_to_end(http, fleet, "us", after) == "no_data"  # queue empty: set_create_scenario's
    assert us.queued_create_scenarios == []
    assert us.peak_active_exports == 1
    assert fleet.emulators["eu"].queued_create_scenarios == []  # queues are per workspace


def test_queued_create_scenarios_are_validated_up_front(fleet: EmulatorFleet) -> None:
    us = fleet.emulators["us"]
    with pytest.raises(ValueError, match="unknown scenario"):
        us.queue_create_scenarios("completed", "no_such_scenario")
    with pytest.raises(ValueError, match="unknown option"):
        us.queue_create_scenarios(("failed", {"no_such_option": 1}))
    assert us.queued_create_scenarios == []  # nothing queued from a rejected call


def test_create_scenarios_can_be_queued_over_http(fleet: EmulatorFleet, http: requests.Session) -> None:
    base = fleet.base_url("eu")
    queued = http.post(
        f"{base}/_emulator/create_scenarios",
        json={"scenarios": ["canceled", {"scenario": "completed", "rows": 2}]},
        timeout=5,
    )
    assert queued.json() == {"queued": ["canceled", "completed"]}
    bad = http.post(f"{base}/_emulator/create_scenarios", json={"scenarios": ["nope"]}, timeout=5)
    assert bad.status_code == 400
    assert http.post(f"{base}/_emulator/create_scenarios", json={}, timeout=5).status_code == 400

    job_id = create(http, fleet, "eu").json()["job_identifier"]
    assert run_to_end(http, fleet, "eu", job_id) == "canceled"


def test_start_workspaces_starts_a_fleet_and_stop_stops_every_emulator(http: requests.Session) -> None:
    fleet = start_workspaces({"a": "ta", "b": "tb", "c": "tc"})
    try:
        urls = [fleet.base_url(name) for name in "abc"]
        assert len(set(urls)) == 3
        for name, url in zip("abc", urls, strict=True):
            resp = http.get(f"{url}/export/content/data/x", headers=auth(f"t{name}"), timeout=5)
            assert resp.status_code == 404  # authenticated: an unknown job, not a 401
    finally:
        fleet.stop()
    with pytest.raises(RuntimeError, match="not started"):
        fleet.base_url("a")
    fleet.stop()  # idempotent


def test_a_fleet_needs_a_workspace() -> None:
    with pytest.raises(ValueError, match="at least one"):
        EmulatorFleet({})


def test_a_single_emulator_is_the_default_workspace() -> None:
    assert IntercomEmulator().workspace == "default"


def test_standalone_main_takes_a_workspace_label() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "exportwatch_local.emulator", "--port", "0", "--token", "T", "--workspace", "eu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        health = requests.get(f"{base_url}/_emulator/health", timeout=5).json()
        assert health["workspace"] == "eu"
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert stderr == ""

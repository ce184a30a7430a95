"""The emulator's second export family, reporting datasets: catalogue, enqueue, status, download.

Exercised over real HTTP with requests, as the poller will use it (intercom-reporting-export-api.md).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests

from exportwatch_local.emulator import DATASETS, EmulatorFleet, EnqueueRecord, IntercomEmulator
from support.clock import FakeClock

TOKEN = "reporting-token"
APP_ID = "app 1/x"  # a space and a slash: the download URL must quote it
CLIENT_ID = "client-1"
OCTET = {"Accept": "application/octet-stream"}
FIVE_PENDING = "Exceeded rate limit of 5 pending reporting dataset export jobs"
ONE_ACTIVE = "Exceeded rate limit of 1 pending message data export jobs"
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
DAY = 86_400
MONDAY = 1_767_571_200  # 2026-01-05T00:00:00Z
ATTRS = ["conversation.conversation_id", "conversation.created_at", "conversation.state"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_770_000_000.0)


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[IntercomEmulator]:
    with IntercomEmulator(token=TOKEN, clock=clock, app_id=APP_ID, client_id=CLIENT_ID) as emulator:
        yield emulator


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        yield session


def enqueue_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "dataset_id": "conversation",
        "attribute_ids": list(ATTRS),
        "start_time": MONDAY,
        "end_time": MONDAY + DAY - 1,
    }
    body.update(overrides)
    return body


def enqueue(emu: IntercomEmulator, http: requests.Session, **overrides: object) -> requests.Response:
    return http.post(f"{emu.base_url}/export/reporting_data/enqueue", json=enqueue_body(**overrides), timeout=5)


def status(
    emu: IntercomEmulator,
    http: requests.Session,
    job_id: str,
    app_id: str | None = APP_ID,
    client_id: str | None = CLIENT_ID,
) -> requests.Response:
    params = {k: v for k, v in (("app_id", app_id), ("client_id", client_id)) if v is not None}
    return http.get(f"{emu.base_url}/export/reporting_data/{job_id}", params=params, timeout=5)


def run_to_end(emu: IntercomEmulator, http: requests.Session, job_id: str) -> requests.Response:
    """Status calls until the job leaves pending/in_progress (jobs advance by calls, never by time)."""
    for _ in range(10):
        resp = status(emu, http, job_id)
        assert resp.status_code in (200, 504)
        if resp.json()["status"] not in ("pending", "in_progress"):
            return resp
    raise AssertionError(f"job {job_id} never finished")


def error_message(resp: requests.Response) -> str:
    body = resp.json()
    assert body["type"] == "error.list"
    return str(body["errors"][0]["message"])


def error_code(resp: requests.Response) -> str:
    return str(resp.json()["errors"][0]["code"])


# ---- datasets -------------------------------------------------------------------------------------------


def test_get_datasets_lists_the_catalogue_in_the_documented_shape(
    emu: IntercomEmulator, http: requests.Session
) -> None:
    resp = http.get(f"{emu.base_url}/export/reporting_data/get_datasets", timeout=5)

    assert resp.status_code == 200
    assert all(h in resp.headers for h in RATE_HEADERS)
    body = resp.json()
    assert body["type"] == "list"
    by_id = {d["id"]: d for d in body["data"]}
    assert {"conversation", "ticket"} <= set(by_id)
    for dataset in body["data"]:
        assert set(dataset) == {"id", "name", "description", "default_time_attribute_id", "attributes"}
        qualified = {a["qualified_id"] for a in dataset["attributes"]}
        assert dataset["default_time_attribute_id"] in qualified
        for attribute in dataset["attributes"]:
            assert set(attribute) == {"id", "qualified_id", "name"}
            assert attribute["qualified_id"] == f"{dataset['id']}.{attribute['id']}"
    conversation = {a["qualified_id"] for a in by_id["conversation"]["attributes"]}
    assert len(conversation) >= 8
    assert {"conversation.conversation_id", "conversation.created_at"} <= conversation
    assert body["data"] == [dict(d) for d in DATASETS]


def test_get_datasets_needs_the_token(emu: IntercomEmulator) -> None:
    resp = requests.get(f"{emu.base_url}/export/reporting_data/get_datasets", timeout=5)
    assert resp.status_code == 401 and error_message(resp) == "Access Token Invalid"
    assert not any(h in resp.headers for h in RATE_HEADERS)


# ---- enqueue --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dataset_id": None}, "dataset_id is required"),
        ({"dataset_id": "widgets"}, "Unknown dataset_id: widgets"),
        ({"attribute_ids": None}, "attribute_ids is required"),
        ({"attribute_ids": "conversation.state"}, "attribute_ids must be an array of attribute ids"),
        ({"attribute_ids": []}, "attribute_ids must not be empty"),
        (
            {"attribute_ids": ["conversation.state", "conversation.mood"]},
            "Unknown attribute_id for dataset conversation: conversation.mood",
        ),
        ({"attribute_ids": ["ticket.ticket_id"]}, "Unknown attribute_id for dataset conversation: ticket.ticket_id"),
        ({"start_time": None}, "start_time is required"),
        ({"end_time": None}, "end_time is required"),
        ({"start_time": "2026-01-05"}, "start_time must be an integer unix timestamp"),
        ({"end_time": 1.5}, "end_time must be an integer unix timestamp"),
        ({"end_time": True}, "end_time must be an integer unix timestamp"),
        ({"start_time": MONDAY + DAY, "end_time": MONDAY}, "start_time must not be later than end_time"),
    ],
)
def test_enqueue_refuses_a_bad_body_with_a_400_naming_the_problem(
    emu: IntercomEmulator, http: requests.Session, overrides: dict[str, object], message: str
) -> None:
    body = {k: v for k, v in enqueue_body(**overrides).items() if v is not None}
    resp = http.post(f"{emu.base_url}/export/reporting_data/enqueue", json=body, timeout=5)

    assert resp.status_code == 400
    assert error_code(resp) == "bad_request"
    assert error_message(resp) == message
    assert [e.status_code for e in emu.enqueues] == [400]
    assert emu.pending_reporting == []


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"{not json", "Request body is not valid JSON"), (b"[1, 2]", "Request body must be a JSON object")],
)
def test_enqueue_needs_a_json_object(emu: IntercomEmulator, http: requests.Session, data: bytes, message: str) -> None:
    resp = http.post(f"{emu.base_url}/export/reporting_data/enqueue", data=data, timeout=5)
    assert resp.status_code == 400 and error_message(resp) == message


def test_enqueue_accepts_qualified_and_plain_attribute_ids(emu: IntercomEmulator, http: requests.Session) -> None:
    resp = enqueue(emu, http, dataset_id="ticket", attribute_ids=["ticket.ticket_id", "created_at"])

    assert resp.status_code == 200
    assert resp.json() == {
        "job_identifier": resp.json()["job_identifier"],
        "status": "pending",
        "download_url": "",
        "download_expires_at": "",
    }
    assert emu.enqueues[0].attribute_ids == ("ticket.ticket_id", "created_at")


def test_five_pending_reporting_jobs_at_most_and_a_finished_one_frees_a_slot(
    emu: IntercomEmulator, http: requests.Session
) -> None:
    emu.queue_reporting_scenarios("failed", "completed")
    days = [(MONDAY + i * DAY, MONDAY + (i + 1) * DAY - 1) for i in range(5)]
    ids = [enqueue(emu, http, start_time=s, end_time=e).json()["job_identifier"] for s, e in days]
    assert len(set(ids)) == 5 and emu.pending_reporting == ids

    sixth = enqueue(emu, http)
    assert sixth.status_code == 429
    assert error_code(sixth) == "rate_limit_exceeded" and error_message(sixth) == FIVE_PENDING
    assert all(h in sixth.headers for h in RATE_HEADERS)

    failed = run_to_end(emu, http, ids[0])  # a failed job frees its slot...
    assert failed.json()["status"] == "failed"
    assert enqueue(emu, http).status_code == 200
    assert enqueue(emu, http).status_code == 429

    assert run_to_end(emu, http, ids[1]).json()["status"] == "complete"  # ...and so does a complete one
    assert enqueue(emu, http).status_code == 200
    assert emu.peak_pending_reporting == 5
    assert [e.status_code for e in emu.enqueues] == [200] * 5 + [429, 200, 429, 200]


def test_content_and_reporting_limits_are_independent(emu: IntercomEmulator, http: requests.Session) -> None:
    content = {"created_at_after": MONDAY, "created_at_before": MONDAY + DAY - 1}
    created = http.post(f"{emu.base_url}/export/content/data", json=content, timeout=5)
    assert created.status_code == 200

    # One content export active: reporting still gets its five...
    assert [enqueue(emu, http).status_code for _ in range(6)] == [200] * 5 + [429]
    # ...and five pending reporting jobs do not take the content slot either.
    content_id = created.json()["job_identifier"]
    assert emu.active_exports == [content_id]
    for _ in range(3):
        http.get(f"{emu.base_url}/export/content/data/{content_id}", timeout=5)
    assert emu.active_exports == []
    again = http.post(f"{emu.base_url}/export/content/data", json=content, timeout=5)
    assert again.status_code == 200
    refused = http.post(f"{emu.base_url}/export/content/data", json=content, timeout=5)
    assert refused.status_code == 429 and error_message(refused) == ONE_ACTIVE
    assert emu.peak_active_exports == 1 and emu.peak_pending_reporting == 5
    assert len(emu.creates) == 3 and len(emu.enqueues) == 6


# ---- status ---------------------------------------------------------------------------------------------


def test_status_needs_app_id_and_client_id(emu: IntercomEmulator, http: requests.Session) -> None:
    job_id = enqueue(emu, http).json()["job_identifier"]

    no_app = status(emu, http, job_id, app_id=None)
    assert no_app.status_code == 400 and error_code(no_app) == "bad_request"
    assert error_message(no_app) == "app_id is required"
    no_client = status(emu, http, job_id, client_id=None)
    assert no_client.status_code == 400 and error_message(no_client) == "client_id is required"
    empty = status(emu, http, job_id, client_id="")
    assert empty.status_code == 400 and error_message(empty) == "client_id is required"
    assert emu.job_info(job_id)["status_calls"] == 0  # type: ignore[index]


def test_a_wrong_app_id_is_not_found(emu: IntercomEmulator, http: requests.Session) -> None:
    job_id = enqueue(emu, http).json()["job_identifier"]

    resp = status(emu, http, job_id, app_id="someone-else")
    assert resp.status_code == 404
    assert error_code(resp) == "not_found"
    assert error_message(resp) == f"Export job not found for identifier: {job_id}"


def test_each_family_answers_404_for_the_other_familys_jobs(emu: IntercomEmulator, http: requests.Session) -> None:
    reporting_id = emu.add_reporting_job("completed", steps=["complete"])
    content_id = emu.add_job("completed", steps=["completed"])

    on_reporting = status(emu, http, content_id)
    assert on_reporting.status_code == 404
    assert error_message(on_reporting) == f"Export job not found for identifier: {content_id}"
    on_content = http.get(f"{emu.base_url}/export/content/data/{reporting_id}", timeout=5)
    assert on_content.status_code == 404
    assert http.post(f"{emu.base_url}/export/cancel/{reporting_id}", timeout=5).status_code == 404
    assert status(emu, http, "nope").status_code == 404

    assert status(emu, http, reporting_id).json()["status"] == "complete"
    assert http.get(f"{emu.base_url}/export/content/data/{content_id}", timeout=5).json()["status"] == "completed"
    assert http.get(f"{emu.base_url}/download/content/data/{reporting_id}", headers=OCTET, timeout=5).status_code == 404
    cross = http.get(
        f"{emu.base_url}/download/reporting_data/{content_id}", params={"app_id": APP_ID}, headers=OCTET, timeout=5
    )
    assert cross.status_code == 404


# ---- download -------------------------------------------------------------------------------------------


def test_download_needs_accept_and_the_right_app_id(emu: IntercomEmulator, http: requests.Session) -> None:
    job_id = emu.add_reporting_job("completed", steps=["complete"])
    assert status(emu, http, job_id).json()["status"] == "complete"
    url = f"{emu.base_url}/download/reporting_data/{job_id}"

    no_accept = http.get(url, params={"app_id": APP_ID}, headers={"Accept": "*/*"}, timeout=5)
    assert no_accept.status_code == 406 and error_code(no_accept) == "not_acceptable"
    no_app = http.get(url, headers=OCTET, timeout=5)
    assert no_app.status_code == 400 and error_message(no_app) == "app_id is required"
    wrong_app = http.get(url, params={"app_id": "other"}, headers=OCTET, timeout=5)
    assert wrong_app.status_code == 404
    assert error_message(wrong_app) == f"Export job not found for identifier: {job_id}"
    ok = http.get(url, params={"app_id": APP_ID}, headers=OCTET, timeout=5)
    assert ok.status_code == 200 and ok.headers["Content-Type"] == "application/octet-stream"


def test_enqueue_to_complete_to_download(emu: IntercomEmulator, http: requests.Session, clock: FakeClock) -> None:
    resp = enqueue(emu, http)
    assert resp.status_code == 200
    job_id = resp.json()["job_identifier"]

    words = [status(emu, http, job_id).json() for _ in range(3)]
    assert [w["status"] for w in words] == ["pending", "in_progress", "complete"]
    assert words[0]["download_url"] == "" and words[0]["download_expires_at"] == ""
    done = words[-1]
    expected_url = f"{emu.base_url}/download/reporting_data/{job_id}?app_id={quote(APP_ID, safe='')}"
    assert done["download_url"] == expected_url
    assert done["download_expires_at"] == str(int(clock.now + 2 * DAY))
    assert emu.pending_reporting == []

    body = http.get(done["download_url"], headers=OCTET, timeout=5)
    assert body.status_code == 200
    assert body.headers["Content-Disposition"] == f'attachment; filename="{job_id}.csv.gz"'
    rows = list(csv.reader(io.StringIO(gzip.decompress(body.content).decode())))
    assert rows[0] == ATTRS and len(rows) == 21
    created = [int(r[1]) for r in rows[1:]]
    assert all(MONDAY <= t < MONDAY + DAY for t in created)  # rows fall inside the range asked for
    assert http.get(done["download_url"], headers=OCTET, timeout=5).content == body.content  # deterministic

    clock.now += 2 * DAY  # past download_expires_at: the file is gone
    assert http.get(done["download_url"], headers=OCTET, timeout=5).status_code == 404

    recorded = emu.requests_for(job_id)
    assert [r.method for r in recorded] == ["GET"] * 6
    assert recorded[0].path == f"/export/reporting_data/{job_id}?app_id=app+1%2Fx&client_id={CLIENT_ID}"
    assert recorded[3].path.startswith(f"/download/reporting_data/{job_id}?app_id=")


def test_enqueues_are_recorded_with_what_was_asked(emu: IntercomEmulator, http: requests.Session) -> None:
    ok = enqueue(emu, http).json()["job_identifier"]
    enqueue(emu, http, dataset_id="widgets")
    http.post(f"{emu.base_url}/export/reporting_data/enqueue", data=b"nope", timeout=5)
    requests.post(f"{emu.base_url}/export/reporting_data/enqueue", json=enqueue_body(), timeout=5)  # 401: not logged

    first, second, third = emu.enqueues
    assert first == EnqueueRecord(
        job_identifier=ok,
        dataset_id="conversation",
        attribute_ids=tuple(ATTRS),
        start_time=MONDAY,
        end_time=MONDAY + DAY - 1,
        status_code=200,
        time=1_770_000_000.0,
    )
    assert (second.job_identifier, second.dataset_id, second.status_code) == (None, "widgets", 400)
    assert (third.dataset_id, third.attribute_ids, third.start_time, third.status_code) == (None, None, None, 400)
    assert emu.creates == []  # the content log is separate
    info = emu.job_info(ok)
    assert info is not None and (info["kind"], info["dataset"], info["created_via_api"]) == (
        "reporting",
        "conversation",
        True,
    )

    control = requests.get(f"{emu.base_url}/_emulator/enqueues", timeout=5).json()
    assert control["enqueues"][0] == first.to_dict()
    assert control["peak_pending_reporting"] == 1
    assert (control["app_id"], control["client_id"]) == (APP_ID, CLIENT_ID)


def test_tokens_seen_covers_the_reporting_calls(emu: IntercomEmulator, http: requests.Session) -> None:
    base = emu.base_url
    requests.get(f"{base}/export/reporting_data/get_datasets", headers={"Authorization": "Bearer other"}, timeout=5)
    requests.post(f"{base}/export/reporting_data/enqueue", json={}, headers={"Authorization": "Basic eDp5"}, timeout=5)
    bad = requests.get(
        f"{base}/download/reporting_data/x",
        params={"app_id": APP_ID},
        headers={**OCTET, "Authorization": "Bearer t2"},
        timeout=5,
    )
    assert bad.status_code == 401
    enqueue(emu, http)

    assert emu.tokens_seen() == {"other", "Basic eDp5", "t2", TOKEN}
    assert len(emu.requests) == 4


# ---- scripting ------------------------------------------------------------------------------------------


def test_reporting_scenarios_are_separate_from_the_create_queue(emu: IntercomEmulator, http: requests.Session) -> None:
    emu.queue_create_scenarios("no_data")
    emu.queue_reporting_scenarios(("completed", {"rows": 2}), "no_data")
    emu.set_reporting_scenario("failed")
    assert emu.queued_reporting_scenarios == ["completed", "no_data"]
    assert emu.queued_create_scenarios == ["no_data"]

    outcomes = []
    for i in range(3):
        job_id = enqueue(emu, http, start_time=MONDAY + i).json()["job_identifier"]
        outcomes.append(run_to_end(emu, http, job_id).json()["status"])
    assert outcomes == ["complete", "no_data", "failed"]
    assert emu.queued_create_scenarios == ["no_data"]
    with pytest.raises(ValueError, match="unknown scenario"):
        emu.queue_reporting_scenarios("nonsense")
    with pytest.raises(ValueError, match="unknown dataset"):
        emu.add_reporting_job(dataset="widgets")


def test_control_api_queues_reporting_scenarios_and_adds_jobs(emu: IntercomEmulator, http: requests.Session) -> None:
    control = requests.Session()  # no auth on the control API
    queued = control.post(
        f"{emu.base_url}/_emulator/reporting_scenarios",
        json={"scenarios": ["failed", {"scenario": "completed", "steps": ["pending", "completed"]}]},
        timeout=5,
    )
    assert queued.status_code == 200 and queued.json() == {"queued": ["failed", "completed"]}
    bad = control.post(f"{emu.base_url}/_emulator/reporting_scenarios", json={"scenarios": ["nope"]}, timeout=5)
    assert bad.status_code == 400
    assert control.post(f"{emu.base_url}/_emulator/reporting_scenario", json={"scenario": "no_data"}).status_code == 200

    first = enqueue(emu, http).json()["job_identifier"]
    assert run_to_end(emu, http, first).json()["status"] == "failed"
    second = enqueue(emu, http).json()["job_identifier"]
    assert run_to_end(emu, http, second).json()["status"] == "completed"  # explicit steps keep their spelling
    third = enqueue(emu, http).json()["job_identifier"]
    assert run_to_end(emu, http, third).json()["status"] == "no_data"

    added = control.post(
        f"{emu.base_url}/_emulator/reporting_jobs",
        json={"scenario": "completed", "job_identifier": "rep0000000000001", "dataset": "ticket"},
        timeout=5,
    )
    assert added.status_code == 200 and added.json() == {"job_identifier": "rep0000000000001"}
    info = control.get(f"{emu.base_url}/_emulator/jobs/rep0000000000001", timeout=5).json()
    assert (info["kind"], info["dataset"]) == ("reporting", "ticket")
    assert info["steps"] == ["pending", "in_progress", "complete"]


def test_a_fleet_gives_each_workspace_its_reporting_ids(clock: FakeClock) -> None:
    tokens = {"us": "token-us", "eu": "token-eu"}
    with EmulatorFleet(tokens, clock=clock, app_ids={"eu": "eu-app"}, client_ids={"eu": "eu-client"}) as fleet:
        us, eu = fleet.emulators["us"], fleet.emulators["eu"]
        assert (us.app_id, us.client_id) == ("emulator-app", "emulator-client")
        assert (eu.app_id, eu.client_id) == ("eu-app", "eu-client")
        job_id = eu.add_reporting_job()
        headers = {"Authorization": "Bearer token-eu"}
        params = {"app_id": "eu-app", "client_id": "eu-client"}
        url = f"{fleet.base_url('eu')}/export/reporting_data/{job_id}"
        assert requests.get(url, params=params, headers=headers, timeout=5).json()["status"] == "pending"

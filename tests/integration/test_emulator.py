"""The Intercom export API emulator, exercised over real HTTP with requests (as the client will use it)."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from exportwatch_local.emulator import CSV_COLUMNS, SCENARIOS, IntercomEmulator
from support.clock import FakeClock

TOKEN = "test-token"
OCTET = {"Accept": "application/octet-stream"}
JOB_KEYS = {"job_identifier", "status", "download_url", "download_expires_at"}
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
REFERENCE = Path("/work/shared/reference/intercom-data-export-openapi-2.16.json")
SCHEMA_COLUMNS = {
    "company_id", "content_id", "content_title", "content_type", "email", "first_click", "first_completion",
    "first_dismisall", "first_goal_success", "first_hard_bounce", "first_open", "first_reply",
    "first_series_completion", "first_series_disengagement", "first_series_exit", "first_unsubscribe", "name",
    "node_id", "receipt_id", "received_at", "ruleset_id", "ruleset_version_id", "series_id", "series_title",
    "user_external_id", "user_id",
}  # fmt: skip


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[IntercomEmulator]:
    with IntercomEmulator(token=TOKEN, clock=clock) as emulator:
        yield emulator


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        yield session


def status(emu: IntercomEmulator, http: requests.Session, job_id: str) -> requests.Response:
    return http.get(f"{emu.base_url}/export/content/data/{job_id}", timeout=5)


def download(emu: IntercomEmulator, http: requests.Session, job_id: str, **kw: object) -> requests.Response:
    return http.get(f"{emu.base_url}/download/content/data/{job_id}", headers=OCTET, timeout=5, **kw)  # type: ignore[arg-type]


def statuses(emu: IntercomEmulator, http: requests.Session, job_id: str, n: int) -> list[str]:
    out = []
    for _ in range(n):
        resp = status(emu, http, job_id)
        assert resp.status_code in (200, 504)
        out.append(resp.json()["status"])
    return out


def assert_job_model(body: object) -> dict[str, str]:
    assert isinstance(body, dict)
    assert set(body) == JOB_KEYS
    assert all(isinstance(v, str) for v in body.values())
    return body


def assert_error(resp: requests.Response, code: int, err_code: str, message: str | None = None) -> None:
    assert resp.status_code == code
    body = resp.json()
    assert body["type"] == "error.list"
    assert isinstance(body["request_id"], str) and body["request_id"]
    assert body["errors"][0]["code"] == err_code
    if message is not None:
        assert body["errors"][0]["message"] == message


# ---- the normal life of a job ------------------------------------------------------------------------------


def test_completed_progresses_by_status_calls_and_downloads_a_zip_of_csvs(
    emu: IntercomEmulator, http: requests.Session, clock: FakeClock
) -> None:
    job_id = emu.add_job("completed")
    assert len(job_id) == 16 and job_id.isalnum() and job_id == job_id.lower()
    assert emu.job_status(job_id) == "pending"
    first = assert_job_model(status(emu, http, job_id).json())
    assert first == {"job_identifier": job_id, "status": "pending", "download_url": "", "download_expires_at": ""}
    assert statuses(emu, http, job_id, 1) == ["in_progress"]
    done = assert_job_model(status(emu, http, job_id).json())
    assert done["status"] == "completed"
    assert done["download_url"] == f"{emu.base_url}/download/content/data/{job_id}"
    assert done["download_expires_at"] == str(int(clock.now + 2 * 24 * 3600))
    assert statuses(emu, http, job_id, 2) == ["completed", "completed"]  # the last step sticks
    assert emu.job_status(job_id) == "completed"

    resp = http.get(done["download_url"], headers=OCTET, timeout=5)
    assert resp.status_code == 200
    assert resp.content[:4] == b"PK\x03\x04"
    assert int(resp.headers["Content-Length"]) == len(resp.content)
    archive = zipfile.ZipFile(io.BytesIO(resp.content))
    assert archive.testzip() is None
    names = archive.namelist()
    assert any(n.startswith("receipts_") for n in names) and all(n.endswith(".csv") for n in names)
    for name in names:
        header = archive.read(name).decode().splitlines()[0].split(",")
        assert set(header) == SCHEMA_COLUMNS
    receipts = next(n for n in names if n.startswith("receipts_"))
    assert len(archive.read(receipts).decode().splitlines()) == 1 + 20  # default rows
    # Deterministic: the same bytes on every download.
    assert download(emu, http, job_id).content == resp.content


def test_csv_columns_match_the_openapi_schema() -> None:
    assert set(CSV_COLUMNS) == SCHEMA_COLUMNS and len(CSV_COLUMNS) == len(SCHEMA_COLUMNS)
    if REFERENCE.exists():
        spec = json.loads(REFERENCE.read_text())
        assert set(spec["schemas"]["data_export_csv"]["properties"]) == SCHEMA_COLUMNS


def test_rows_option_and_same_bytes_across_emulators(http: requests.Session) -> None:
    bodies = []
    for _ in range(2):
        with IntercomEmulator(token=TOKEN) as emulator:
            job_id = emulator.add_job("completed", job_identifier="fixedjobid000001", rows=500, steps=["completed"])
            bodies.append(download(emulator, http, job_id).content)
    assert bodies[0] == bodies[1]
    archive = zipfile.ZipFile(io.BytesIO(bodies[0]))
    receipts = next(n for n in archive.namelist() if n.startswith("receipts_"))
    assert len(archive.read(receipts).splitlines()) == 501


def test_complete_legacy_spelling_with_gzip_body(emu: IntercomEmulator, http: requests.Session) -> None:
    job_id = emu.add_job("complete_legacy")
    assert statuses(emu, http, job_id, 3) == ["pending", "complete", "complete"]
    model = assert_job_model(status(emu, http, job_id).json())
    assert model["download_url"].endswith(f"/download/content/data/{job_id}") and model["download_expires_at"]
    resp = download(emu, http, job_id)
    assert resp.status_code == 200 and resp.content[:2] == b"\x1f\x8b"
    text = gzip.decompress(resp.content).decode()
    assert set(text.splitlines()[0].split(",")) == SCHEMA_COLUMNS


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [("no_data", ["pending", "no_data", "no_data"]), ("canceled", ["pending", "canceled", "canceled"])],
)
def test_terminal_without_data(
    emu: IntercomEmulator, http: requests.Session, scenario: str, expected: list[str]
) -> None:
    job_id = emu.add_job(scenario)
    assert statuses(emu, http, job_id, 3) == expected
    model = assert_job_model(status(emu, http, job_id).json())
    assert model["download_url"] == "" and model["download_expires_at"] == ""
    assert_error(download(emu, http, job_id), 404, "not_found")


def test_failed_answers_504_with_a_json_job_body(emu: IntercomEmulator, http: requests.Session) -> None:
    job_id = emu.add_job("failed")
    assert [status(emu, http, job_id).status_code for _ in range(2)] == [200, 200]
    resp = status(emu, http, job_id)
    assert resp.status_code == 504
    assert resp.headers["Content-Type"].startswith("application/json")
    assert assert_job_model(resp.json())["status"] == "failed"
    assert emu.job_status(job_id) == "failed"


def test_unknown_status(emu: IntercomEmulator, http: requests.Session) -> None:
    job_id = emu.add_job("unknown_status")
    assert assert_job_model(status(emu, http, job_id).json())["status"] == "archived"
    recovering = emu.add_job("completed", steps=["archived", "completed"])
    assert statuses(emu, http, recovering, 2) == ["archived", "completed"]


# ---- faults on the status call --------------------------------------------------------------------------------


def test_html_504_then_completed(emu: IntercomEmulator, http: requests.Session) -> None:
    job_id = emu.add_job("html_504")
    for _ in range(2):
        resp = status(emu, http, job_id)
        assert resp.status_code == 504
        assert resp.headers["Content-Type"].startswith("text/html")
        assert b"504 Gateway Time-out" in resp.content
    assert statuses(emu, http, job_id, 1) == ["completed"]
    one = emu.add_job("html_504", html_504_count=1)
    assert status(emu, http, one).status_code == 504
    assert status(emu, http, one).status_code == 200


def test_server_errors_cycle_then_completed(emu: IntercomEmulator, http: requests.Session) -> None:
    job_id = emu.add_job("server_errors", error_count=4)
    assert [status(emu, http, job_id).status_code for _ in range(5)] == [500, 502, 503, 500, 200]
    assert status(emu, http, job_id).json()["status"] == "completed"
    default = emu.add_job("server_errors")
    assert [status(emu, http, default).status_code for _ in range(3)] == [500, 502, 200]


def test_not_found(emu: IntercomEmulator, http: requests.Session) -> None:
    job_id = emu.add_job("not_found")
    assert emu.job_status(job_id) is None
    assert_error(status(emu, http, job_id), 404, "not_found", f"Export job not found for identifier: {job_id}")
    assert_error(download(emu, http, job_id), 404, "not_found")
    assert_error(http.post(f"{emu.base_url}/export/cancel/{job_id}", timeout=5), 404, "not_found")


def test_rate_limited_scenario_then_completed(emu: IntercomEmulator, http: requests.Session, clock: FakeClock) -> None:
    job_id = emu.add_job("rate_limited", rate_limit_count=2, reset_in=7)
    for _ in range(2):
        resp = status(emu, http, job_id)
        assert_error(resp, 429, "rate_limit_exceeded")
        assert resp.headers["X-RateLimit-Remaining"] == "0"
        assert resp.headers["X-RateLimit-Reset"] == str(int(clock.now) + 7)
    assert statuses(emu, http, job_id, 1) == ["completed"]


def test_slow_status(emu: IntercomEmulator, http: requests.Session) -> None:
    job_id = emu.add_job("slow_status", delay=0.3, slow_count=1)
    started = time.monotonic()
    assert status(emu, http, job_id).status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert status(emu, http, job_id).status_code == 200
    assert time.monotonic() - started < 0.3
    with pytest.raises(requests.Timeout):
        http.get(f"{emu.base_url}/export/content/data/{emu.add_job('slow_status')}", timeout=0.2)


def test_malformed_bodies_are_not_json(emu: IntercomEmulator, http: requests.Session) -> None:
    job_id = emu.add_job("malformed")
    for _ in range(3):
        resp = status(emu, http, job_id)
        assert resp.status_code == 200
        with pytest.raises(ValueError):
            json.loads(resp.content)
    recovering = emu.add_job("completed", malformed_count=1, steps=["completed"])
    assert status(emu, http, recovering).status_code == 200
    assert statuses(emu, http, recovering, 1) == ["completed"]


def test_wrong_types(emu: IntercomEmulator, http: requests.Session) -> None:
    job_id = emu.add_job("wrong_types")
    bodies = [status(emu, http, job_id).json() for _ in range(3)]
    assert isinstance(bodies[0]["status"], int)
    assert "status" not in bodies[1] and "download_url" not in bodies[1]
    assert isinstance(bodies[2], list)


# ---- faults on the download -----------------------------------------------------------------------------------


def test_expired_is_in_the_past_and_gone(emu: IntercomEmulator, http: requests.Session, clock: FakeClock) -> None:
    job_id = emu.add_job("expired")
    model = assert_job_model(status(emu, http, job_id).json())
    assert model["status"] == "completed" and int(model["download_expires_at"]) < clock.now
    assert_error(download(emu, http, job_id), 404, "not_found")


def test_expiry_follows_the_emulator_clock(emu: IntercomEmulator, http: requests.Session, clock: FakeClock) -> None:
    job_id = emu.add_job("completed", steps=["completed"], expires_in=60)
    expires = int(status(emu, http, job_id).json()["download_expires_at"])
    assert expires == int(clock.now) + 60
    assert download(emu, http, job_id).status_code == 200
    clock.now += 61
    assert_error(download(emu, http, job_id), 404, "not_found")


def test_download_gone(emu: IntercomEmulator, http: requests.Session, clock: FakeClock) -> None:
    job_id = emu.add_job("download_gone")
    model = status(emu, http, job_id).json()
    assert model["status"] == "completed" and int(model["download_expires_at"]) > clock.now
    assert_error(download(emu, http, job_id), 404, "not_found")


def test_download_requires_octet_stream_accept(emu: IntercomEmulator, http: requests.Session) -> None:
    job_id = emu.add_job("completed", steps=["completed"])
    url = f"{emu.base_url}/download/content/data/{job_id}"
    assert http.get(url, timeout=5).status_code == 406  # requests sends Accept: */*
    assert http.get(url, headers={"Accept": "application/json"}, timeout=5).status_code == 406
    assert http.get(url, headers={"Accept": "application/octet-stream;q=1, */*"}, timeout=5).status_code == 200


def test_foreign_url(emu: IntercomEmulator, http: requests.Session) -> None:
    job_id = emu.add_job("foreign_url")
    assert status(emu, http, job_id).json()["download_url"] == f"http://127.0.0.1:9/download/content/data/{job_id}"
    other = emu.add_job("foreign_url", download_origin="https://evil.example")
    assert status(emu, http, other).json()["download_url"].startswith("https://evil.example/download/")


def test_redirect_foreign(emu: IntercomEmulator, http: requests.Session) -> None:
    job_id = emu.add_job("redirect_foreign", redirect_to="http://127.0.0.1:9")
    assert status(emu, http, job_id).json()["download_url"].startswith(emu.base_url)
    resp = download(emu, http, job_id, allow_redirects=False)
    assert resp.status_code == 302
    assert resp.headers["Location"] == f"http://127.0.0.1:9/download/content/data/{job_id}"


def test_truncated_sends_less_than_content_length(emu: IntercomEmulator, http: requests.Session) -> None:
    job_id = emu.add_job("truncated", rows=300)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        download(emu, http, job_id)
    resp = http.get(f"{emu.base_url}/download/content/data/{job_id}", headers=OCTET, stream=True, timeout=5)
    declared = int(resp.headers["Content-Length"])
    received = 0
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in resp.iter_content(1024):
            received += len(chunk)
    assert 0 < received < declared
    assert emu.job_info(job_id)["download_attempts"] == 2  # type: ignore[index]


def test_reset_breaks_the_connection(emu: IntercomEmulator, http: requests.Session) -> None:
    job_id = emu.add_job("reset", size_bytes=4_000_000)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)) as info:
        download(emu, http, job_id)
    assert "reset" in str(info.value).lower()  # an RST, not a clean close
    # The emulator itself keeps serving.
    assert status(emu, http, job_id).status_code == 200


def test_flaky_downloads_recover_with_identical_bytes(emu: IntercomEmulator, http: requests.Session) -> None:
    job_id = emu.add_job("completed", steps=["completed"], flaky_downloads=2)
    for _ in range(2):
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            download(emu, http, job_id)
    good = download(emu, http, job_id)
    assert good.status_code == 200 and zipfile.ZipFile(io.BytesIO(good.content)).testzip() is None
    assert download(emu, http, job_id).content == good.content


def test_large_synthetic_zip_streams_exactly_content_length(emu: IntercomEmulator, http: requests.Session) -> None:
    size = 50 * 1024 * 1024
    job_id = emu.add_job("completed", steps=["completed"], size_bytes=size)
    with download(emu, http, job_id, stream=True) as resp:
        assert resp.status_code == 200 and int(resp.headers["Content-Length"]) == size
        received, first = 0, b""
        for chunk in resp.iter_content(1 << 20):
            if not first:
                first = chunk[:4]
            received += len(chunk)
    assert first == b"PK\x03\x04" and received == size


@pytest.mark.parametrize("body_format", ["zip", "gzip"])
@pytest.mark.parametrize("size", [1000, 65_558, 65_559, 65_564, 400_000])
def test_synthetic_bodies_are_real_archives(
    emu: IntercomEmulator, http: requests.Session, body_format: str, size: int
) -> None:
    job_id = emu.add_job("completed", steps=["completed"], size_bytes=size, body_format=body_format)
    body = download(emu, http, job_id).content
    assert len(body) == size
    if body_format == "zip":
        archive = zipfile.ZipFile(io.BytesIO(body))
        assert archive.testzip() is None
        text = archive.read(archive.namelist()[0])
    else:
        text = gzip.decompress(body)
    assert text.endswith(b"\n") and set(text.split(b"\n")[0].decode().split(",")) == SCHEMA_COLUMNS


def test_smallest_synthetic_bodies(emu: IntercomEmulator, http: requests.Session) -> None:
    # Smaller than the CSV header: the content is a filler line, the archive is still valid.
    for body_format, size in (("zip", 170), ("gzip", 23), ("gzip", 24)):
        job_id = emu.add_job("completed", steps=["completed"], size_bytes=size, body_format=body_format)
        body = download(emu, http, job_id).content
        assert len(body) == size
        if body_format == "zip":
            assert zipfile.ZipFile(io.BytesIO(body)).testzip() is None
        else:
            gzip.decompress(body)


def test_synthetic_size_is_validated(emu: IntercomEmulator) -> None:
    with pytest.raises(ValueError, match="size_bytes"):
        emu.add_job("completed", size_bytes=10)
    with pytest.raises(ValueError, match="size_bytes"):
        emu.add_job("completed", size_bytes=5 * 1024**3)


# ---- auth, errors, create, cancel -------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN])
def test_unauthorized_without_rate_limit_headers(emu: IntercomEmulator, authorization: str | None) -> None:
    job_id = emu.add_job("completed")
    headers = {} if authorization is None else {"Authorization": authorization}
    for resp in (
        requests.get(f"{emu.base_url}/export/content/data/{job_id}", headers=headers, timeout=5),
        requests.get(f"{emu.base_url}/download/content/data/{job_id}", headers={**headers, **OCTET}, timeout=5),
        requests.post(f"{emu.base_url}/export/content/data", headers=headers, timeout=5, json={}),
        requests.post(f"{emu.base_url}/export/cancel/{job_id}", headers=headers, timeout=5),
    ):
        assert_error(resp, 401, "unauthorized", "Access Token Invalid")
        assert not any(h in resp.headers for h in RATE_HEADERS)
    assert emu.job_status(job_id) == "pending"  # nothing advanced


def test_authorized_responses_carry_rate_limit_headers(
    emu: IntercomEmulator, http: requests.Session, clock: FakeClock
) -> None:
    job_id = emu.add_job("completed")
    for resp in (
        status(emu, http, job_id),
        status(emu, http, "nosuchjob0000000"),
        http.get(f"{emu.base_url}/nowhere", timeout=5),
        http.get(f"{emu.base_url}/download/content/data/{job_id}", timeout=5),
    ):
        assert all(h in resp.headers for h in RATE_HEADERS)
        assert int(resp.headers["X-RateLimit-Reset"]) > clock.now
    remaining = [int(status(emu, http, job_id).headers["X-RateLimit-Remaining"]) for _ in range(2)]
    assert remaining[0] == remaining[1] + 1


def test_unknown_path(emu: IntercomEmulator, http: requests.Session) -> None:
    for resp in (
        http.get(f"{emu.base_url}/export/content", timeout=5),
        http.get(f"{emu.base_url}/export/content/data", timeout=5),
        http.delete(f"{emu.base_url}/export/content/data/abc", timeout=5),
    ):
        assert_error(resp, 404, "not_found", "The requested resource does not exist; check your path and try again")


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"created_at_after": 1},
        {"created_at_before": 1},
        {"created_at_after": "1", "created_at_before": 2},
        {"created_at_after": 1.5, "created_at_before": 2},
        {"created_at_after": True, "created_at_before": 2},
        {"created_at_after": 10, "created_at_before": 9},
        [1, 2],
    ],
)
def test_create_validation(emu: IntercomEmulator, http: requests.Session, payload: object) -> None:
    resp = http.post(f"{emu.base_url}/export/content/data", json=payload, timeout=5)
    assert_error(resp, 400, "bad_request")
    assert all(h in resp.headers for h in RATE_HEADERS)


def test_create_invalid_json(emu: IntercomEmulator, http: requests.Session) -> None:
    resp = http.post(f"{emu.base_url}/export/content/data", data=b"{nope", timeout=5)
    assert_error(resp, 400, "bad_request")


def test_one_active_job_then_cancel(emu: IntercomEmulator, http: requests.Session) -> None:
    url = f"{emu.base_url}/export/content/data"
    created = http.post(url, json={"created_at_after": 100, "created_at_before": 100}, timeout=5)
    assert created.status_code == 200
    model = assert_job_model(created.json())
    job_id = model["job_identifier"]
    assert model == {"job_identifier": job_id, "status": "pending", "download_url": "", "download_expires_at": ""}
    assert len(job_id) == 16 and emu.job_status(job_id) == "pending"
    # Scripted jobs do not count as active; an API-created unfinished one does.
    emu.add_job("completed")
    second = http.post(url, json={"created_at_after": 1, "created_at_before": 2}, timeout=5)
    assert_error(second, 429, "rate_limit_exceeded", "Exceeded rate limit of 1 pending message data export jobs")
    assert statuses(emu, http, job_id, 2) == ["pending", "in_progress"]
    assert http.post(url, json={"created_at_after": 1, "created_at_before": 2}, timeout=5).status_code == 429

    canceled = http.post(f"{emu.base_url}/export/cancel/{job_id}", timeout=5)
    assert canceled.status_code == 200
    assert assert_job_model(canceled.json()) == {
        "job_identifier": job_id, "status": "canceled", "download_url": "", "download_expires_at": "",
    }  # fmt: skip
    assert statuses(emu, http, job_id, 2) == ["canceled", "canceled"]
    assert emu.job_status(job_id) == "canceled"
    third = http.post(url, json={"created_at_after": 1, "created_at_before": 2}, timeout=5)
    assert third.status_code == 200
    # Once it finishes, another create is accepted.
    assert statuses(emu, http, third.json()["job_identifier"], 3)[-1] == "completed"
    assert http.post(url, json={"created_at_after": 1, "created_at_before": 2}, timeout=5).status_code == 200


def test_create_scenario_is_scriptable(emu: IntercomEmulator, http: requests.Session) -> None:
    emu.set_create_scenario("no_data")
    job_id = http.post(
        f"{emu.base_url}/export/content/data", json={"created_at_after": 1, "created_at_before": 2}, timeout=5
    ).json()["job_identifier"]
    assert statuses(emu, http, job_id, 2) == ["pending", "no_data"]


def test_set_rate_limit_enforces_a_real_window(emu: IntercomEmulator, http: requests.Session, clock: FakeClock) -> None:
    clock.now = 1_750_000_000.0  # a multiple of 10: the window is [now, now + 10)
    emu.set_rate_limit(2, window_seconds=10)
    job_id = emu.add_job("completed")
    ok = [status(emu, http, job_id) for _ in range(2)]
    assert [r.headers["X-RateLimit-Remaining"] for r in ok] == ["1", "0"]
    limited = status(emu, http, job_id)
    assert_error(limited, 429, "rate_limit_exceeded", "Exceeded rate limit of 2 in 10_seconds")
    assert limited.headers["X-RateLimit-Limit"] == "2"
    assert limited.headers["X-RateLimit-Reset"] == str(int(clock.now) + 10)
    clock.now += 10
    assert status(emu, http, job_id).status_code == 200


# ---- scripting and plumbing ------------------------------------------------------------------------------


def test_requests_are_recorded_with_headers(emu: IntercomEmulator, http: requests.Session) -> None:
    job_id = emu.add_job("completed")
    other = emu.add_job("completed")
    status(emu, http, job_id)
    status(emu, http, other)
    http.get(f"{emu.base_url}/download/content/data/{job_id}", headers=OCTET, timeout=5)
    mine = emu.requests_for(job_id)
    assert [(r.method, r.path) for r in mine] == [
        ("GET", f"/export/content/data/{job_id}"),
        ("GET", f"/download/content/data/{job_id}"),
    ]
    assert mine[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert mine[1].headers["Accept"] == "application/octet-stream"
    assert len(emu.requests) == 3
    # One pooled session, one keep-alive connection.
    assert len({r.client for r in emu.requests}) == 1


def test_add_job_validation(emu: IntercomEmulator) -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        emu.add_job("nope")
    with pytest.raises(ValueError, match="unknown option"):
        emu.add_job("completed", stepz=["completed"])
    with pytest.raises(ValueError, match="steps"):
        emu.add_job("completed", steps=[])
    with pytest.raises(ValueError, match="body_format"):
        emu.add_job("completed", body_format="tar")
    emu.add_job("completed", job_identifier="abc")
    with pytest.raises(ValueError, match="exists"):
        emu.add_job("completed", job_identifier="abc")


def test_every_scenario_can_be_added(emu: IntercomEmulator) -> None:
    for scenario in SCENARIOS:
        assert emu.add_job(scenario)


def test_control_api(emu: IntercomEmulator, http: requests.Session) -> None:
    control = requests.Session()  # no auth on the control API
    created = control.post(
        f"{emu.base_url}/_emulator/jobs",
        json={"scenario": "html_504", "job_identifier": "ctl0000000000001", "html_504_count": 1},
        timeout=5,
    )
    assert created.status_code == 200 and created.json() == {"job_identifier": "ctl0000000000001"}
    assert status(emu, http, "ctl0000000000001").status_code == 504
    assert status(emu, http, "ctl0000000000001").status_code == 200
    info = control.get(f"{emu.base_url}/_emulator/jobs/ctl0000000000001", timeout=5).json()
    assert info["scenario"] == "html_504" and info["status"] == "completed" and info["status_calls"] == 2
    assert control.get(f"{emu.base_url}/_emulator/jobs/unknown", timeout=5).status_code == 404
    recorded = control.get(f"{emu.base_url}/_emulator/requests", timeout=5).json()["requests"]
    assert len(recorded) == 2 and recorded[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert recorded[0]["job_identifier"] == "ctl0000000000001"
    generated = control.post(f"{emu.base_url}/_emulator/jobs", json={}, timeout=5).json()["job_identifier"]
    assert emu.job_status(generated) == "pending"
    assert control.post(f"{emu.base_url}/_emulator/jobs", json={"scenario": "nope"}, timeout=5).status_code == 400
    limited = control.post(f"{emu.base_url}/_emulator/rate_limit", json={"limit": 0}, timeout=5)
    assert limited.status_code == 200
    assert status(emu, http, generated).status_code == 429
    assert len(emu.requests) == 3  # control calls are not recorded


def test_standalone_main_prints_base_url_and_serves() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "exportwatch_local.emulator", "--port", "0", "--token", "T"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        job_id = requests.post(f"{base_url}/_emulator/jobs", json={"scenario": "no_data"}, timeout=5).json()[
            "job_identifier"
        ]
        resp = requests.get(
            f"{base_url}/export/content/data/{job_id}", headers={"Authorization": "Bearer T"}, timeout=5
        )
        assert resp.json()["status"] == "pending"
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert stderr == ""  # quiet: no per-request logging


def test_stop_with_open_keep_alive_connections_is_prompt(http: requests.Session) -> None:
    emulator = IntercomEmulator(token=TOKEN).start()
    job_id = emulator.add_job("slow_status", delay=30)
    status(emulator, http, emulator.add_job("completed"))  # leaves an idle pooled connection open
    started = time.monotonic()
    with pytest.raises(requests.RequestException):
        http.get(f"{emulator.base_url}/export/content/data/{job_id}", timeout=0.2)
    emulator.stop()
    assert time.monotonic() - started < 3
    emulator.stop()  # idempotent

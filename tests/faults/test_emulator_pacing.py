"""The emulator's slow-download options the fault suite relies on (download_rate, download_rate_after,
slow_downloads), over real HTTP. Not a fault test itself: it makes no row in the report."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from exportwatch_local.emulator import IntercomEmulator

TOKEN = "pacing-token"
SIZE = 300_000


@pytest.fixture
def emu() -> Iterator[IntercomEmulator]:
    with IntercomEmulator(token=TOKEN) as em:
        yield em


def fetch(emu: IntercomEmulator, job_id: str) -> tuple[bytes, float]:
    started = time.monotonic()
    resp = requests.get(
        f"{emu.base_url}/download/content/data/{job_id}",
        headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/octet-stream"},
        timeout=10,
    )
    assert resp.status_code == 200
    return resp.content, time.monotonic() - started


def test_throttled_download_is_slow_then_fast_with_identical_bytes(emu: IntercomEmulator) -> None:
    job_id = emu.add_job(
        "completed",
        steps=["completed"],
        size_bytes=SIZE,
        download_rate=200_000,  # the last 100 kB at 200 kB/s: about half a second
        download_rate_after=SIZE - 100_000,
        slow_downloads=1,
    )
    slow, slow_seconds = fetch(emu, job_id)
    fast, fast_seconds = fetch(emu, job_id)

    assert slow == fast and len(slow) == SIZE
    assert 0.4 <= slow_seconds < 5
    assert fast_seconds < 0.4
    info = emu.job_info(job_id)
    assert info is not None and info["download_faults_used"] == {"slow": 1}


def test_unthrottled_jobs_report_no_slow_fault(emu: IntercomEmulator) -> None:
    job_id = emu.add_job("completed", steps=["completed"], rows=5)
    fetch(emu, job_id)
    info = emu.job_info(job_id)
    assert info is not None and info["download_faults_used"] == {}


@pytest.mark.parametrize(
    "options",
    [
        {"download_rate": 0},
        {"download_rate": -1},
        {"download_rate": True},
        {"download_rate": "fast"},
        {"download_rate_after": -1},
        {"slow_downloads": -1},
        {"slow_downloads": 1.5},
    ],
)
def test_pacing_options_are_validated(emu: IntercomEmulator, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        emu.add_job("completed", **options)


def test_stop_cuts_a_slow_download_short() -> None:
    emu = IntercomEmulator(token=TOKEN).start()
    job_id = emu.add_job("completed", steps=["completed"], size_bytes=SIZE, download_rate=1000)  # 5 minutes
    outcome: list[BaseException | bytes] = []

    def download() -> None:
        try:
            outcome.append(fetch(emu, job_id)[0])
        except requests.RequestException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=download)
    reader.start()
    time.sleep(0.3)
    started = time.monotonic()
    emu.stop()
    reader.join(timeout=10)

    assert time.monotonic() - started < 5 and not reader.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], requests.RequestException)

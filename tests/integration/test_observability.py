"""Operations: the job id and request id on every log line, and the cycle's metrics (EMF), from real cycles.

The handler tests invoke functions/poller/app.py as Lambda does (the `app` fixture, tests/integration/conftest.py)
and read its stdout: Powertools JSON log lines and the EMF metrics blob.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from types import ModuleType

import pytest

from exportwatch import observability
from exportwatch.model import Job, from_epoch, iso
from exportwatch.poll import Poller, run_cycle
from exportwatch_local.emulator import IntercomEmulator
from exportwatch_local.localstack import LocalStack
from support.lambda_handler import FUNCTION_ARN, FakeContext, emf_blobs, event, json_lines
from support.tracking import track

HOUR = 3600
JOB_LINE = re.compile(r"^job ([A-Za-z0-9_-]+): ")


def metric_values(points: list[tuple[str, str, float]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for name, _unit, value in points:
        out.setdefault(name, []).append(value)
    return out


# -- metrics ----------------------------------------------------------------------------------------------------


def test_cycle_metrics_measure_what_is_at_risk(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    now = time.time()
    pending = emulator.add_job("completed", steps=["pending"])
    urgent = emulator.add_job("truncated", expires_in=10 * HOUR)  # completed, every download breaks off
    relaxed = emulator.add_job("truncated", expires_in=30 * HOUR)
    done = emulator.add_job("completed", steps=["completed"])
    assert poller.store.track(Job(pending, tracked_at=iso(from_epoch(now - 2 * HOUR)), next_check_at=0))
    track(poller, urgent, relaxed, done)

    first = metric_values(observability.cycle_metrics(run_cycle(poller, all_jobs=True)))

    assert first["JobsDue"] == [4] and first["JobsChecked"] == [4] and first["JobsLeftForNextCycle"] == [0]
    assert first["Export_completed"] == [1] and first["JobErrors"] == [0]
    assert first["BytesCopied"][0] > 0 and len(first["CopySeconds"]) == 1
    [oldest_pending] = first["OldestPendingAge"]
    assert 2 * HOUR - 5 <= oldest_pending <= 2 * HOUR + 60
    [time_left] = first["MostUrgentTimeLeft"]  # the 10 h one, not the 30 h one
    assert 10 * HOUR - 60 <= time_left <= 10 * HOUR
    [just_seen] = first["OldestUncopiedAge"]
    assert 0 <= just_seen <= 5  # first seen completed in this very cycle (stored to the second)

    # Two hours later the same two exports are still not copied: the uncopied-age alarm (>= 1 h) would fire.
    later = time.time() + 2 * HOUR
    poller.clock = lambda: later
    second = metric_values(observability.cycle_metrics(run_cycle(poller, all_jobs=True)))
    [uncopied] = second["OldestUncopiedAge"]
    assert 2 * HOUR - 5 <= uncopied <= 2 * HOUR + 60
    assert second["MostUrgentTimeLeft"][0] <= 8 * HOUR
    assert second["OldestPendingAge"][0] >= 4 * HOUR - 5
    assert "Export_completed" not in second and "CopySeconds" not in second


def test_gauges_are_left_out_when_nothing_is_at_risk(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    track(poller, emulator.add_job("completed", steps=["completed"]))
    names = {name for name, _, _ in observability.cycle_metrics(run_cycle(poller))}
    assert names.isdisjoint({"OldestPendingAge", "MostUrgentTimeLeft", "OldestUncopiedAge"})
    idle = metric_values(observability.cycle_metrics(run_cycle(poller)))
    assert idle["JobsDue"] == [0] and idle["BytesCopied"] == [0]


def test_warnings_are_counted_per_event(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    stuck = emulator.add_job("completed", steps=["pending"])
    assert poller.store.track(Job(stuck, tracked_at=iso(from_epoch(time.time() - 13 * HOUR)), next_check_at=0))
    track(poller, emulator.add_job("truncated", expires_in=HOUR))
    values = metric_values(observability.cycle_metrics(run_cycle(poller, all_jobs=True)))
    assert values["Export_stuck"] == [1] and values["Export_expiring"] == [1]


# -- the job id on every line -----------------------------------------------------------------------------------


def test_job_context_is_per_thread(caplog: pytest.LogCaptureFixture) -> None:
    """Two jobs handled at once never get each other's id; outside a job there is none; explicit ids win."""
    handler = caplog.handler
    observability.install_job_context(handler)
    observability.install_job_context(handler)  # idempotent
    assert sum(isinstance(f, observability.JobContextFilter) for f in handler.filters) == 1
    caplog.set_level(logging.INFO, logger="exportwatch")
    log = logging.getLogger("exportwatch.test")
    barrier = threading.Barrier(2)

    def work(job_id: str) -> None:
        with observability.job_context(job_id):
            barrier.wait(timeout=5)
            for _ in range(20):
                log.info("working on %s", job_id)
                barrier.wait(timeout=5)  # interleave the two threads line by line
        assert observability.current_job() is None

    threads = [threading.Thread(target=work, args=(j,)) for j in ("jobaaa", "jobbbb")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    log.info("between jobs")
    with observability.job_context("outer"):
        log.info("explicit", extra={"job_identifier": "given"})

    records = [r for r in caplog.records if r.name == "exportwatch.test"]
    working = [r for r in records if r.getMessage().startswith("working on ")]
    assert len(working) == 40
    assert all(r.job_identifier == r.getMessage().removeprefix("working on ") for r in working)  # type: ignore[attr-defined]
    between = next(r for r in records if r.getMessage() == "between jobs")
    assert not hasattr(between, "job_identifier")
    explicit = next(r for r in records if r.getMessage() == "explicit")
    assert explicit.job_identifier == "given"  # type: ignore[attr-defined]


def test_every_handler_line_about_a_job_names_it_and_the_request(
    app: ModuleType,
    emulator: IntercomEmulator,
    stack: LocalStack,
    subscriber: str,
    token: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    jobs = [emulator.add_job("completed", steps=["completed"]) for _ in range(6)]
    jobs.append(emulator.add_job("server_errors", error_count=3))  # a retry warning line
    redirected = emulator.add_job("redirect_foreign")  # intercom.py logs the redirect (no id in its text)
    stuck = emulator.add_job("completed", steps=["pending"])
    poller = app._get_poller()
    assert poller.settings.poll_concurrency == 4  # several jobs at once, in pool threads
    track(poller, *jobs, redirected)
    assert poller.store.track(Job(stuck, tracked_at=iso(from_epoch(time.time() - 13 * HOUR)), next_check_at=0))
    context = FakeContext()

    result = app.lambda_handler(event("poller_schedule.json"), context)

    assert result["processed"] == 9 and result["events"] == {"export.completed": 6, "export.stuck": 1}
    out, err = capfd.readouterr()
    assert token not in out and token not in err
    lines = json_lines(out)
    logs = [line for line in lines if "level" in line and "message" in line]
    for line in logs:  # every line: Powertools JSON with the Lambda context
        assert line["service"] == "exportwatch"
        assert line["function_request_id"] == context.aws_request_id and line["function_arn"] == FUNCTION_ARN
    about_jobs = [line for line in logs if "job_identifier" in line]
    named = {m.group(1) for line in about_jobs if (m := JOB_LINE.match(line["message"]))}
    assert {*jobs, stuck} <= named
    for line in about_jobs:
        if match := JOB_LINE.match(line["message"]):
            assert line["job_identifier"] == match.group(1), line  # never another thread's job
    redirect_lines = [line for line in logs if line["message"].startswith("download redirected to ")]
    assert redirect_lines and all(line["job_identifier"] == redirected for line in redirect_lines)
    # Lines that are about no job in particular carry no job id.
    [finished] = [line for line in logs if line["message"] == "poll cycle finished"]
    assert "job_identifier" not in finished and finished["events"] == result["events"]

    [blob] = emf_blobs(lines)
    [directive] = blob["_aws"]["CloudWatchMetrics"]
    names = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert names["OldestPendingAge"] == "Seconds" and names["MostUrgentTimeLeft"] == "Seconds"
    assert names["OldestUncopiedAge"] == "Seconds" and names["Export_stuck"] == "Count"
    assert blob["Export_completed"] == [6] and blob["Export_stuck"] == [1]
    assert blob["OldestPendingAge"][0] >= 13 * HOUR - 5  # the stuck job
    assert directive["Dimensions"] == [["service"]] and blob["service"] == "exportwatch"  # as the alarm reads it

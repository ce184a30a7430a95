"""Fixtures of the fault-injection suite: the per-test harness and the session's reliability report.

Each fault test is marked `@pytest.mark.fault("what is injected")` and takes the `harness` fixture. When the
test ends, its row (fault, runs, jobs, lost, duplicated, outcome) is added to the session's report; when the
session ends and EXPORTWATCH_RELIABILITY_REPORT names a file (`make faults`), the report is written there.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exportwatch.config import Settings
from exportwatch_local.emulator import IntercomEmulator
from exportwatch_local.localstack import LocalStack
from support.foreign import foreign
from support.stack_fixtures import emulator, env, poller, settings, stack, subscriber, token

from .harness import FaultHarness, Row

# The fixtures the harness stands on, shared with tests/integration (tests/support; no conftest imports another).
__all__ = ["emulator", "env", "foreign", "poller", "settings", "stack", "subscriber", "token"]

REPORT_VARIABLE = "EXPORTWATCH_RELIABILITY_REPORT"
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fault(name): the fault a test injects, as the reliability report names it")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


class ReliabilityReport:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.started = time.monotonic()

    def render(self, command: str) -> str:
        def num(value: int | None) -> str:
            return "?" if value is None else str(value)

        lines = [
            "# Reliability report",
            "",
            f"Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by `{command}` "
            f"({len(self.rows)} fault tests in {time.monotonic() - self.started:.0f} s; Python "
            f"{platform.python_version()}). Regenerate with `make faults`; do not edit by hand.",
            "",
            "**Method.** Each row is one test in `tests/faults/`. It tracks jobs in the local Intercom emulator, "
            "scripts one fault (an emulator option; a botocore event hook on the poller's own S3, SNS or "
            "DynamoDB client; a competing lease; a `kill -9`), then drives real poll runs, either `exportwatch poll` "
            "processes or `run_cycle` in-process as the Lambda handler calls it, against moto server over HTTP, "
            "until every job has settled. The numbers are then read from the end state, not from the code under "
            "test: the notifications an SQS queue subscribed to the SNS topic received, the objects under each "
            "job's S3 key (sha256 compared with the bytes the emulator serves), the download requests the emulator "
            "recorded, and each job's table item (final state, `notified_at`, out of the due index, no lease). "
            "moto's item writes are serialized while the suite runs, because DynamoDB's conditional writes are "
            "atomic per item and moto's are not: the races measured are the poller's own. "
            "*runs* counts the poll cycles and `exportwatch` processes the test drove; *lost* counts jobs that "
            "ended without their notification or, for a completed export, without its exact bytes at the final "
            "key; *duplicated* counts jobs notified more than once or downloaded more often than the fault "
            "requires (a download the fault broke is retried once).",
            "",
            "| fault | runs | jobs | lost | duplicated | outcome |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for r in sorted(self.rows, key=_section):
            outcome = r.outcome.replace("|", "\\|")
            lines.append(f"| {r.fault} | {r.runs} | {r.jobs} | {num(r.lost)} | {num(r.duplicated)} | {outcome} |")
        known = [r for r in self.rows if r.lost is not None and r.duplicated is not None]
        passed = sum(r.outcome.startswith("pass") for r in self.rows)
        lines.append(
            f"| **total** | {sum(r.runs for r in self.rows)} | {sum(r.jobs for r in self.rows)} | "
            f"{sum(r.lost or 0 for r in known)} | {sum(r.duplicated or 0 for r in known)} | "
            f"{passed} of {len(self.rows)} pass |"
        )
        return "\n".join(lines) + "\n"


SECTIONS = ("Intercom", "AWS", "Process", "Concurrency")  # the report's order, as in the issue


def _section(row: Row) -> int:
    return next((n for n, name in enumerate(SECTIONS) if row.fault.startswith(name)), len(SECTIONS))


@pytest.fixture(scope="session")
def reliability_report(pytestconfig: pytest.Config) -> Iterator[ReliabilityReport]:
    report = ReliabilityReport()
    yield report
    target = os.environ.get(REPORT_VARIABLE, "").strip()
    if not target or not report.rows:
        return  # plain `pytest`: the committed report is left as it is
    path = Path(target)
    if not path.is_absolute():
        path = pytestconfig.rootpath / path
    command = " ".join(["python -m pytest", *pytestconfig.invocation_params.args])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.render(f"{REPORT_VARIABLE}={target} {command}"), encoding="utf-8")


@pytest.fixture
def harness(
    request: pytest.FixtureRequest,
    reliability_report: ReliabilityReport,
    stack: LocalStack,
    emulator: IntercomEmulator,
    env: dict[str, str],
    settings: Settings,
    subscriber: str,
    token: str,
    tmp_path: Path,
) -> Iterator[FaultHarness]:
    marker = request.node.get_closest_marker("fault")
    assert marker is not None and marker.args, "a fault test needs @pytest.mark.fault('what is injected')"
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    h = FaultHarness(
        fault=str(marker.args[0]).format(**params),
        stack=stack,
        emulator=emulator,
        env=env,
        settings=settings,
        queue_url=subscriber,
        token=token,
        workdir=tmp_path,
    )
    yield h
    reports = request.node.stash.get(_REPORTS, {})
    call = reports.get("call")
    passed = call is not None and call.passed
    failure = "" if passed or call is None else str(call.longrepr).strip().splitlines()[-1][:160]
    reliability_report.rows.append(h.row(request.node.nodeid, passed, failure))

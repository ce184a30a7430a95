"""The workspace on what operators read: every log line about a job, each job's line in `poll --json`, the cycle's
scheduler metrics, and the per-workspace EMF metadata (not a dimension: see observability.py for the cost)."""

from __future__ import annotations

import logging
from datetime import date

import pytest

from exportwatch import observability
from exportwatch.model import from_epoch, iso
from exportwatch.poll import run_cycle
from exportwatch.windows import Span
from support.fakes import LedgerRig

DAY = Span(date(2027, 1, 10), date(2027, 1, 10))


def _values(points: list[tuple[str, str, float]]) -> dict[str, float]:
    return {name: value for name, _, value in points}


def test_a_started_window_is_counted_and_its_job_names_its_workspace() -> None:
    rig = LedgerRig()
    rig.workspace("eu")
    rig.ledger.queue("eu", [DAY], iso(from_epoch(rig.now)))

    summary = run_cycle(rig.poller(), all_jobs=True)

    values = _values(observability.cycle_metrics(summary))
    assert (values["WindowsStarted"], values["WindowsWaiting"], values["WorkspacesHalted"]) == (1, 0, 0)
    [job] = summary.results  # the window's export, checked in the same cycle
    assert job.workspace == "eu" and summary.to_dict()["jobs"][0]["workspace"] == "eu"
    assert observability.workspace_metadata(summary)["eu"]["scheduler"] == "started"


def test_an_idle_cycle_without_workspaces_sends_no_window_metrics() -> None:
    rig = LedgerRig()
    names = {name for name, _, _ in observability.cycle_metrics(run_cycle(rig.poller()))}
    assert names.isdisjoint({"WindowsStarted", "WindowsWaiting", "WindowsSettled", "WorkspaceErrors"})


def test_every_line_logged_about_a_job_names_its_workspace(caplog: pytest.LogCaptureFixture) -> None:
    rig = LedgerRig()
    eu = rig.workspace("eu")
    rig.track("abc", workspace="eu")
    eu.answer("abc", TimeoutError("slow"))  # a logged retry
    handler = caplog.handler
    observability.install_job_context(handler)
    with caplog.at_level(logging.INFO):
        run_cycle(rig.poller(), all_jobs=True)
    about_the_job = [r for r in caplog.records if getattr(r, "job_identifier", None) == "abc"]
    assert about_the_job and all(getattr(r, "workspace", None) == "eu" for r in about_the_job)

"""A job row's `workspace` is read back from the table, so it can hold anything: it never picks a host, a token or
an S3 key unless it is a registered workspace's name, and it never reaches a log line or a result unescaped."""

from __future__ import annotations

import pytest

from exportwatch.archive import archive_folder
from exportwatch.ledger import WorkspaceRecord
from exportwatch.model import Job
from exportwatch.poll import run_cycle
from exportwatch.results import Action
from exportwatch.sources import UnknownWorkspace, WorkspaceSources
from exportwatch.workspaces import Workspace
from support.fakes import FakeSource, Rig

HOSTILE = ["../default", "eu/../../x", "EU", "eu\nINFO forged line", "", "-eu", "e" * 64, "eu#content", "\u202eue"]


class _Registry:
    """Counts lookups: a hostile name must be refused before the registry is asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_workspace(self, name: str) -> WorkspaceRecord | None:
        self.asked.append(name)
        return None

    def workspaces(self) -> list[WorkspaceRecord]:
        return []


def _unusable(config: Workspace) -> FakeSource:
    raise AssertionError(f"no client may be built for {config.name!r}")


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_name_is_refused_before_the_registry_is_asked(name: str) -> None:
    registry = _Registry()
    sources = WorkspaceSources(FakeSource(), registry, _unusable)
    with pytest.raises(UnknownWorkspace) as caught:
        sources.source_for(name)
    assert registry.asked == []
    text = str(caught.value)
    assert "\n" not in text and "\u202e" not in text and len(text) < 200


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_name_never_becomes_a_key_folder(name: str) -> None:
    job = Job(job_identifier="abc", workspace=name, completed_seen_at="2026-11-03T10:00:00Z")
    with pytest.raises(ValueError, match="no valid workspace name"):
        archive_folder("intercom-exports/", job)


@pytest.mark.parametrize("name", ["eu\nINFO forged line", "../default"])
def test_a_job_of_a_hostile_workspace_is_retried_and_nothing_is_sent(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig()
    rig.track("abc", workspace=name)
    rig.serve("abc")

    summary = run_cycle(rig.poller())

    [result] = summary.results
    assert result.action is Action.RETRY and "\n" not in result.detail
    assert rig.source.status_calls == [] and rig.archive.objects == {} and rig.publisher.published == []
    assert all("\n" not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("dataset", ["conv\nersation", "../x", "Conversation", "", "c" * 65])
def test_a_hostile_dataset_read_back_never_reaches_a_notification_or_a_key(dataset: str) -> None:
    from exportwatch.model import JobState
    from exportwatch.notifier import notification_for

    job = Job(
        job_identifier="abc",
        state=JobState.NOT_FOUND,
        kind="reporting",
        dataset=dataset,
        completed_seen_at="2026-11-03T10:00:00Z",
    )
    note = notification_for(job)
    assert note.body["dataset"] is None and "dataset" not in note.attributes
    with pytest.raises(ValueError):
        archive_folder("intercom-exports/", job)

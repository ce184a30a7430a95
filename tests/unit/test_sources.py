"""sources.WorkspaceSources: one client per workspace (host + secret), the registry read at most once a minute, and
the first cycles after an upgrade, while DynamoDB still builds the ledger index."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from exportwatch.ledger import WorkspaceRecord
from exportwatch.sources import UnknownWorkspace, WorkspaceSources
from exportwatch.workspaces import Workspace
from support.clock import FakeClock
from support.fakes import FakeSource

EU = Workspace("eu", "https://api.eu.intercom.io", "exportwatch/eu-token")


class _Registry:
    def __init__(self, *records: WorkspaceRecord, error: ClientError | None = None) -> None:
        self.records = {r.name: r for r in records}
        self.error = error
        self.lookups = 0

    def get_workspace(self, name: str) -> WorkspaceRecord | None:
        self.lookups += 1
        return self.records.get(name)

    def workspaces(self) -> list[WorkspaceRecord]:
        if self.error is not None:
            raise self.error
        return list(self.records.values())


def _error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "Query")


def test_a_client_per_host_and_secret_kept_across_cycles_and_renewed_when_either_changes() -> None:
    registry, clock, made = _Registry(WorkspaceRecord("eu", EU)), FakeClock(0.0), []

    def make(ws: Workspace) -> FakeSource:
        made.append(ws)
        return FakeSource()

    sources = WorkspaceSources(FakeSource(), registry, make, clock=clock)
    first = sources.source_for("eu")
    assert sources.source_for("eu") is first and registry.lookups == 1  # cached for a minute
    registry.records["eu"] = WorkspaceRecord("eu", Workspace("eu", "https://api.au.intercom.io", EU.token_secret))
    clock.now = 61
    moved = sources.source_for("eu")
    assert moved is not first and [w.api_url for w in made] == [EU.api_url, "https://api.au.intercom.io"]
    del registry.records["eu"]
    clock.now = 122
    with pytest.raises(UnknownWorkspace, match="not registered"):
        sources.source_for("eu")


def test_while_the_ledger_index_is_built_default_counts_as_alone() -> None:
    sources = WorkspaceSources(FakeSource(), _Registry(error=_error("ValidationException")), lambda ws: FakeSource())
    assert sources.single() is True


def test_a_missing_table_is_the_cycles_error_not_swallowed() -> None:
    sources = WorkspaceSources(
        FakeSource(), _Registry(error=_error("ResourceNotFoundException")), lambda ws: FakeSource()
    )
    with pytest.raises(ClientError):
        sources.single()


def test_single_is_false_once_a_named_workspace_is_registered() -> None:
    assert (
        WorkspaceSources(FakeSource(), _Registry(WorkspaceRecord("eu", EU)), lambda ws: FakeSource()).single() is False
    )
    only_default = _Registry(WorkspaceRecord("default", None))
    assert WorkspaceSources(FakeSource(), only_default, lambda ws: FakeSource()).single() is True

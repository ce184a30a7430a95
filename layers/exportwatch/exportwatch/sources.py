"""Each workspace's Intercom client: its own host and its own token, never another workspace's.

`default` is the client the environment describes. Any other workspace's configuration is read from its record
(ledger.py), at most once a minute, and its client is kept for the container's life, keyed by host and token secret:
so a workspace keeps its rate-limit gate and its cached token from cycle to cycle, and a workspace whose host or
secret was changed with `workspace add` gets a new client (the old token is never sent to the new host).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from botocore.exceptions import ClientError

from exportwatch.ledger import WorkspaceRecord
from exportwatch.ports import ExportSource, ExportSources
from exportwatch.safetext import one_line
from exportwatch.workspaces import DEFAULT_WORKSPACE, NAME_RE, Workspace

log = logging.getLogger(__name__)
REGISTRY_CACHE_SECONDS = 60.0


class UnknownWorkspace(LookupError):
    """A job names a workspace that is not registered (removed, or never added): its jobs wait, nothing is sent."""

    def __init__(self, name: str) -> None:
        if not NAME_RE.fullmatch(name):  # a row's workspace can hold anything: never echo it as it is
            super().__init__(f"workspace {one_line(repr(name), 80)} is not a workspace name: its jobs never run")
            return
        super().__init__(
            f"workspace {name!r} is not registered (exportwatch workspace add {name} --api-url ... --token-secret ...)"
        )


class _Registry(Protocol):
    def get_workspace(self, name: str) -> WorkspaceRecord | None: ...

    def workspaces(self) -> list[WorkspaceRecord]: ...


class WorkspaceSources:
    """ports.ExportSources over the registry. `make` builds a workspace's client (wiring.build_workspace_source)."""

    def __init__(
        self,
        default: ExportSource,
        registry: _Registry,
        make: Callable[[Workspace], ExportSource],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._default = default
        self._registry = registry
        self._make = make
        self._clock = clock
        self._lock = threading.Lock()
        self._configs: dict[str, tuple[float, Workspace | None]] = {}
        self._clients: dict[tuple[str, str, str], ExportSource] = {}
        self._named: tuple[float, bool] | None = None

    def config(self, name: str) -> Workspace | None:
        """A registered workspace's configuration (None: not registered), read at most once a minute."""
        with self._lock:
            cached = self._configs.get(name)
            if cached is not None and self._clock() - cached[0] < REGISTRY_CACHE_SECONDS:
                return cached[1]
        record = self._registry.get_workspace(name)
        config = None if record is None else record.config
        with self._lock:
            self._configs[name] = (self._clock(), config)
        return config

    def source_for(self, workspace: str) -> ExportSource:
        if workspace == DEFAULT_WORKSPACE:
            return self._default
        if not NAME_RE.fullmatch(workspace):
            raise UnknownWorkspace(workspace)
        config = self.config(workspace)
        if config is None:
            raise UnknownWorkspace(workspace)
        key = (config.name, config.api_url, config.token_secret)
        with self._lock:
            source = self._clients.get(key)
            if source is None:
                source = self._clients[key] = self._make(config)
        return source

    def single(self) -> bool:
        with self._lock:
            if self._named is not None and self._clock() - self._named[0] < REGISTRY_CACHE_SECONDS:
                return not self._named[1]
        try:
            named = any(r.name != DEFAULT_WORKSPACE for r in self._registry.workspaces())
        except ClientError as exc:
            # The ledger index is still being built (the first deploy after an upgrade: DynamoDB answers
            # ValidationException until it is): behave as before workspaces meanwhile. Anything else (a missing
            # table) is the cycle's error, reported as such.
            if exc.response.get("Error", {}).get("Code") != "ValidationException":
                raise
            log.warning("cannot list the workspaces yet (%s); treating default as the only one", exc)
            named = False
        with self._lock:
            self._named = (self._clock(), named)
        return not named


class DefaultOnly:
    """ports.ExportSources with `default` alone (no registry): the unit tests' and a plain Poller's."""

    def __init__(self, default: ExportSource) -> None:
        self._default = default

    def source_for(self, workspace: str) -> ExportSource:
        if workspace != DEFAULT_WORKSPACE:
            raise UnknownWorkspace(workspace)
        return self._default

    def single(self) -> bool:
        return True


class WithDefault:
    """ports.ExportSources whose `default` is the one given (the Poller's `intercom`, which a test may replace after
    wiring built the poller), every other workspace's from `rest`."""

    def __init__(self, default: ExportSource, rest: ExportSources) -> None:
        self._default = default
        self._rest = rest

    def source_for(self, workspace: str) -> ExportSource:
        return self._default if workspace == DEFAULT_WORKSPACE else self._rest.source_for(workspace)

    def single(self) -> bool:
        return self._rest.single()

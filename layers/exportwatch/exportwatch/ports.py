"""The four small interfaces the poll cycle works through, and the S3 adapter behind the archive.

    JobRepository  the job table: due ids, claim (a lease), conditional save, release, quarantine   store.JobStore
    ExportSource   Intercom: a job's status, its download, a new export               intercom.IntercomClient
    ExportSources  each workspace's ExportSource (its own host and token)                   sources.WorkspaceSources
    Ledger         workspaces and windows (the scheduler: schedule.py)                         ledger.LedgerStore
    ArchiveSink    where a finished export is copied                                         S3Archive (below)
    Publisher      where notifications go                                                    notifier.Notifier

The cycle (poll.py) calls only these; what to do with their answers is decided in decide.py, which calls none of
them. The tests drive the cycle with in-memory fakes of all four (tests/support/fakes.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from exportwatch.archive import CopyResult, CopySettings, RawStream, archive_folder, copy_to_s3
from exportwatch.intercom import StatusReport
from exportwatch.ledger import Window, WorkspaceRecord
from exportwatch.model import Job
from exportwatch.notifier import Notification
from exportwatch.reporting import Dataset
from exportwatch.windows import Span, WindowState


class JobRepository(Protocol):
    """The job table. Every save is conditional on holding the job's lease: store.LeaseLost when it was taken over."""

    def due_ids(self, due_by: int | None) -> list[str]:
        """Ids of jobs needing work whose next check is at or before `due_by` (None: all of them)."""
        ...

    def claim(self, job_id: str, owner: str, now: int, lease_seconds: int, due_by: int | None) -> Job | None:
        """Take the lease on a job that still needs work (and is due by `due_by`); None if it cannot be taken."""
        ...

    def save(self, job: Job, owner: str, *, release: bool) -> None:
        """Write the whole job if `owner` still holds its lease (else LeaseLost); `release` drops the lease."""
        ...

    def release(self, job_id: str, owner: str) -> None:
        """Drop `owner`'s lease, changing nothing else."""
        ...

    def quarantine(self, job_id: str, reason: str, now: int) -> bool:
        """Take a row with an unusable id out of the due index for good; True if this call did it."""
        ...

    def get(self, job_id: str) -> Job | None:
        """One job as it is now (consistent read); None if the table has no such job."""
        ...


class DownloadStream(Protocol):
    """An open download: its headers and its raw bytes (requests.Response is one)."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def raw(self) -> RawStream: ...


class ExportSource(Protocol):
    """Intercom's export API, as far as the cycle uses it. Its errors are intercom.py's exceptions."""

    def ensure_token(self) -> None:
        """Resolve the credentials now: a bad secret fails the cycle before any job is touched."""
        ...

    def get_status(self, job_id: str, dataset: str | None = None) -> StatusReport:
        """The job's status: a content export, or (`dataset` given) a reporting export of that dataset."""
        ...

    def download_url_for(self, job_id: str, dataset: str | None = None) -> str:
        """Where the export is documented to be when the job model gives no download_url."""
        ...

    def download(self, url: str) -> AbstractContextManager[DownloadStream]:
        """Open the download as a stream (ForeignOrigin for a URL that is refused, DownloadGone for 404/410)."""
        ...

    def create(self, created_at_after: int, created_at_before: int) -> StatusReport:
        """Start a content export for the inclusive range (ActiveJobExists: the workspace's one slot is taken)."""
        ...

    def enqueue(self, dataset: str, attributes: tuple[str, ...], start_time: int, end_time: int) -> StatusReport:
        """Start a reporting export (ActiveJobExists: the workspace has five pending already)."""
        ...

    def get_datasets(self) -> list[Dataset]:
        """The workspace's reporting datasets and their attributes."""
        ...


class ExportSources(Protocol):
    """Each workspace's ExportSource: its own API host and its own token, never another workspace's."""

    def source_for(self, workspace: str) -> ExportSource:
        """The workspace's source, its token resolved (sources.UnknownWorkspace; ConfigError for a bad secret)."""
        ...

    def single(self) -> bool:
        """True when `default` is the only workspace: a rate limit or a refused token then stops the whole cycle."""
        ...


class Ledger(Protocol):
    """Workspaces and windows (ledger.LedgerStore). Writes under a workspace's lease are conditional on holding it."""

    def due_workspaces(self, due_by: int | None) -> list[str]: ...

    def claim_workspace(
        self, name: str, owner: str, now: int, lease_seconds: int, due_by: int | None
    ) -> WorkspaceRecord | None: ...

    def release_workspace(
        self,
        name: str,
        owner: str,
        next_check_at: int,
        daily_through: date | None,
        reporting_through: dict[str, date] | None = None,
    ) -> None: ...

    def ensure_workspace_state(self, name: str, now: str) -> None: ...

    def make_due(self, name: str) -> None: ...

    def windows(self, workspace: str, lkind: str | None = ...) -> list[Window]:
        """A workspace's windows of one ledger kind ("content", "reporting:<dataset>"; None: all), oldest first."""
        ...

    def get_window(self, key: str) -> Window | None: ...

    def queue(
        self,
        workspace: str,
        spans: list[Span],
        now: str,
        kind: str = ...,
        dataset: str | None = None,
        attributes: tuple[str, ...] = (),
    ) -> int: ...

    def requeue_failed(self, window: Window, now: str) -> bool: ...

    def oldest_queued(self, workspace: str, kind: str = ..., limit: int = 1) -> list[Window]: ...

    def start(self, name: str, owner: str, window: Window, job: Job, now: str) -> None: ...

    def finish(self, name: str, owner: str, window: Window, state: WindowState, job: Job | None, now: str) -> None: ...

    def note_error(self, window: Window, error: str, now: str) -> None: ...

    def clear_active(self, name: str, owner: str, entry: tuple[str, str] | None = None) -> None: ...


class ArchiveSink(Protocol):
    """Where a finished export is kept. A copy either lands whole or raises (and leaves nothing)."""

    @property
    def max_bytes(self) -> int:
        """The largest export one copy takes: a larger Content-Length is refused before a byte is read."""
        ...

    def copy(self, stream: RawStream, job: Job, expected_length: int | None) -> CopyResult:
        """Copy one job's export (its key: archive.object_key, from the job's workspace and day)."""
        ...


class Publisher(Protocol):
    def publish(self, note: Notification) -> str:
        """Publish one notification; returns its message id, raises when it was not published."""
        ...


@dataclass(frozen=True)
class S3Archive:
    """The ArchiveSink in production: archive.copy_to_s3 into
    s3://bucket/{prefix}{workspace}/content/dt=YYYY-MM-DD/<job_id>.<ext> (archive.archive_folder)."""

    s3: Any
    bucket: str
    prefix: str
    settings: CopySettings

    @property
    def max_bytes(self) -> int:
        return self.settings.max_bytes

    def copy(self, stream: RawStream, job: Job, expected_length: int | None) -> CopyResult:
        return copy_to_s3(
            self.s3,
            stream,
            bucket=self.bucket,
            prefix=archive_folder(self.prefix, job),
            job_id=job.job_identifier,
            expected_length=expected_length,
            settings=self.settings,
        )

"""In-memory fakes of the poll cycle's four ports (exportwatch.ports), for unit tests of the cycle.

    FakeRepository  the job table: leases and conditional saves as JobStore keeps them (LeaseLost, claim's re-check)
    FakeSource      Intercom: scripted status answers and downloads per job, every call recorded
    FakeArchive     the archive: bytes kept in a dict, or a scripted failure per job
    FakePublisher   the topic: notifications kept in a list, or a scripted failure per publish

No sockets, no threads of their own, no clock: a test drives time through Poller.clock. Each fake has a hook a
test can use to act "in between" (another poller taking a job over, a publish that fails once).
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from botocore.exceptions import ClientError

from exportwatch.archive import CopyResult, RawStream, archive_folder, sniff
from exportwatch.config import Settings
from exportwatch.intercom import DownloadGone, Outcome, StatusReport
from exportwatch.ledger import Window, WorkspaceRecord, window_key
from exportwatch.model import ArchivedCopy, Job, from_epoch, iso
from exportwatch.notifier import Notification
from exportwatch.poll import Poller
from exportwatch.ports import ExportSource
from exportwatch.reporting import MAX_PENDING, Attribute, Dataset, Kind, family, ledger_kind
from exportwatch.sources import UnknownWorkspace
from exportwatch.store import LeaseLost
from exportwatch.windows import Span, WindowState
from exportwatch.workspaces import Workspace

ZIP_BYTES = b"PK\x03\x04" + b"export" * 100


def settings(**overrides: object) -> Settings:
    """The poller's settings as a deployment with only the required variables gets them (defaults elsewhere)."""
    base = Settings.from_env(
        {
            "JOBS_TABLE": "jobs",
            "EXPORT_BUCKET": "archive",
            "NOTIFY_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:exportwatch",
            "INTERCOM_TOKEN_SECRET": "exportwatch/intercom-token",  # a secret's name, not a secret
        }
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def report(
    job_id: str,
    status: str,
    *,
    expires_at: float | None = None,
    download_url: str = "",
    message: str = "",
) -> StatusReport:
    """A status report as IntercomClient.get_status returns it, for a status word (or "not_found": a 404)."""
    outcomes = {
        "pending": Outcome.RUNNING,
        "in_progress": Outcome.RUNNING,
        "completed": Outcome.COMPLETED,
        "complete": Outcome.COMPLETED,
        "failed": Outcome.FAILED,
        "no_data": Outcome.NO_DATA,
        "canceled": Outcome.CANCELED,
        "not_found": Outcome.NOT_FOUND,
    }
    expires: datetime | None = from_epoch(expires_at) if expires_at is not None else None
    return StatusReport(
        job_identifier=job_id,
        status=status,
        outcome=outcomes[status],
        download_url=download_url,
        download_expires_at=expires,
        http_status=404 if status == "not_found" else 200,
        message=message,
    )


# -- the job table ------------------------------------------------------------------------------------------------


class FakeRepository:
    """Jobs by id, with JobStore's rules: a claim takes a lease on a job that is not settled, not quarantined, not
    leased (or whose lease lapsed) and due by `due_by`; a save needs the lease (else LeaseLost)."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.quarantined: dict[str, str] = {}
        self.saves: list[tuple[str, bool]] = []  # (job id, release) per successful save
        self.claims: list[str] = []
        self.released: list[str] = []
        self.after_claim: Callable[[str], None] | None = None  # runs once a claim succeeds, before it returns
        self.before_save: Callable[[Job, bool], None] | None = None  # runs before each save's lease check
        self._lock = threading.Lock()

    def add(self, job: Job) -> Job:
        self.jobs[job.job_identifier] = replace(job)
        return job

    def get(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        return None if job is None else replace(job)

    def take_over(self, job_id: str, owner: str, until: int = 2**40) -> None:
        """Another poller takes the job's lease (ours lapsed, as it sees it)."""
        with self._lock:
            self.jobs[job_id] = replace(self.jobs[job_id], lease_owner=owner, lease_until=until)

    # JobRepository

    def due_ids(self, due_by: int | None) -> list[str]:
        with self._lock:
            return [
                job_id
                for job_id, job in self.jobs.items()
                if not job.settled
                and job_id not in self.quarantined
                and (due_by is None or (job.next_check_at or 0) <= due_by)
            ]

    def claim(self, job_id: str, owner: str, now: int, lease_seconds: int, due_by: int | None) -> Job | None:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None or job.settled or job_id in self.quarantined:
                return None
            if job.lease_until is not None and job.lease_until >= now:
                return None
            if due_by is not None and (job.next_check_at or 0) > due_by:
                return None
            job = replace(job, lease_owner=owner, lease_until=now + lease_seconds)
            self.jobs[job_id] = job
            self.claims.append(job_id)
        if self.after_claim is not None:
            self.after_claim(job_id)
        return replace(job)

    def save(self, job: Job, owner: str, *, release: bool) -> None:
        if self.before_save is not None:
            self.before_save(job, release)
        with self._lock:
            if self.jobs[job.job_identifier].lease_owner != owner:
                raise LeaseLost(f"lease on job {job.job_identifier} was taken over by another worker")
            if release:
                job.lease_owner, job.lease_until = None, None  # as JobStore.save does
            self.jobs[job.job_identifier] = replace(job)
            self.saves.append((job.job_identifier, release))

    def release(self, job_id: str, owner: str) -> None:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is not None and job.lease_owner == owner:
                self.jobs[job_id] = replace(job, lease_owner=None, lease_until=None)
                self.released.append(job_id)

    def quarantine(self, job_id: str, reason: str, now: int) -> bool:
        with self._lock:
            if job_id in self.quarantined:
                return False
            self.quarantined[job_id] = reason
            return True


# -- Intercom -----------------------------------------------------------------------------------------------------


@dataclass
class FakeDownload:
    headers: dict[str, str]
    raw: RawStream


class _Raw:
    """The raw stream of a download: `read(amt, decode_content=...)` as urllib3's."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, amt: int | None = None, decode_content: bool | None = None) -> bytes:
        return self._data.read(-1 if amt is None else amt)


class FakeSource:
    """Intercom, scripted: `answers[job_id]` is the list of what each status call returns (a StatusReport) or
    raises (an exception), the last one repeated; `files[url]` is a download's bytes or the exception it raises."""

    API = "https://api.intercom.io"

    def __init__(self) -> None:
        self.answers: dict[str, list[StatusReport | Exception]] = {}
        self.files: dict[str, bytes | Exception] = {}
        self.status_calls: list[str] = []
        self.status_datasets: list[str | None] = []  # the dataset of each status call (None: content)
        self.enqueued: list[tuple[str, tuple[str, ...], int, int]] = []
        self.catalogue: list[Dataset] = [  # what get_datasets answers
            Dataset(
                "conversation",
                "Conversation",
                "",
                "conversation.created_at",
                (Attribute("id", "conversation.conversation_id", "Id"), Attribute("c", "conversation.created_at", "C")),
            )
        ]
        self.downloads: list[str] = []
        self.token_error: Exception | None = None
        self.during_status: Callable[[str], None] | None = None  # runs inside each status call
        # create(): each call's range, and what the next calls answer (a StatusReport) or raise (ActiveJobExists,
        # RateLimited, Unauthorized...); unscripted, a new pending export `{create_prefix}{n}`.
        self.created: list[tuple[int, int]] = []
        self.creates: list[StatusReport | Exception] = []
        self.create_prefix = "exp-"

    def answer(self, job_id: str, *answers: StatusReport | Exception) -> None:
        self.answers[job_id] = list(answers)

    # ExportSource

    def ensure_token(self) -> None:
        if self.token_error is not None:
            raise self.token_error

    def get_status(self, job_id: str, dataset: str | None = None) -> StatusReport:
        self.status_calls.append(job_id)
        self.status_datasets.append(dataset)
        if self.during_status is not None:
            self.during_status(job_id)
        script = self.answers[job_id]
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def download_url_for(self, job_id: str, dataset: str | None = None) -> str:
        if dataset is not None:
            return f"{self.API}/download/reporting_data/{job_id}?app_id=fake-app"
        return f"{self.API}/download/content/data/{job_id}"

    @contextmanager
    def download(self, url: str) -> Iterator[FakeDownload]:
        self.downloads.append(url)
        data = self.files.get(url, DownloadGone("the download answered HTTP 404: the file is gone"))
        if isinstance(data, Exception):
            raise data
        yield FakeDownload({"Content-Length": str(len(data))}, _Raw(data))

    def create(self, created_at_after: int, created_at_before: int) -> StatusReport:
        self.created.append((created_at_after, created_at_before))
        if self.creates:
            answer = self.creates.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return report(f"{self.create_prefix}{len(self.created)}", "pending")

    def get_datasets(self) -> list[Dataset]:
        return list(self.catalogue)

    def enqueue(self, dataset: str, attributes: tuple[str, ...], start_time: int, end_time: int) -> StatusReport:
        """A reporting export: recorded in `enqueued`; scripted like create (the same `creates` list)."""
        self.enqueued.append((dataset, attributes, start_time, end_time))
        if self.creates:
            answer = self.creates.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return report(f"{self.create_prefix}r{len(self.enqueued)}", "pending")


# -- the archive --------------------------------------------------------------------------------------------------


class FakeArchive:
    """Objects by key; `failures[job_id]` makes that job's next copy raise (once)."""

    bucket = "archive"
    prefix = "intercom-exports/"

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.objects: dict[str, bytes] = {}
        self.failures: dict[str, Exception] = {}
        self.max_bytes = max_bytes
        self.seconds = 1.5  # what each copy reports having taken

    def copy(self, stream: RawStream, job: Job, expected_length: int | None) -> CopyResult:
        job_id = job.job_identifier
        failure = self.failures.pop(job_id, None)
        if failure is not None:
            raise failure
        data = stream.read(None, decode_content=False)
        kind = sniff(data[:8])
        key = f"{archive_folder(self.prefix, job)}{job_id}.{kind.extension}"
        self.objects[key] = data
        copy = ArchivedCopy(self.bucket, key, len(data), hashlib.sha256(data).hexdigest(), kind.content_type)
        return CopyResult(copy, self.seconds)


# -- the topic ----------------------------------------------------------------------------------------------------


class FakePublisher:
    """Published notifications in order; `fail_next` publishes raise `error`; `before_publish` runs first."""

    def __init__(self) -> None:
        self.published: list[Notification] = []
        self.attempts = 0
        self.fail_next = 0
        self.error: Exception = RuntimeError("SNS is having a bad day")
        self.before_publish: Callable[[Notification], None] | None = None
        self._lock = threading.Lock()

    @property
    def events(self) -> list[tuple[str, str]]:
        return [(n.job_identifier, n.event.value) for n in self.published]

    def publish(self, note: Notification) -> str:
        if self.before_publish is not None:
            self.before_publish(note)
        with self._lock:
            self.attempts += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                raise self.error
            self.published.append(note)
            return f"message-{len(self.published)}"


# -- a poller over the four fakes ---------------------------------------------------------------------------------


@dataclass
class Rig:
    """A Poller whose ports are the fakes above, and a clock the test sets."""

    now: float = 1_800_000_000.0
    settings: Settings = field(default_factory=settings)
    repo: FakeRepository = field(default_factory=FakeRepository)
    source: FakeSource = field(default_factory=FakeSource)
    archive: FakeArchive = field(default_factory=FakeArchive)
    publisher: FakePublisher = field(default_factory=FakePublisher)

    def poller(self) -> Poller:
        return Poller(
            settings=self.settings,
            store=self.repo,
            intercom=self.source,
            notifier=self.publisher,
            archive=self.archive,
            clock=lambda: self.now,
        )

    def track(self, job_id: str, *, age: float = 60.0, **fields: object) -> Job:
        """A watching job tracked `age` seconds ago and due now."""
        job = Job(job_identifier=job_id, tracked_at=iso(from_epoch(self.now - age)), next_check_at=0)
        return self.repo.add(replace(job, **fields))  # type: ignore[arg-type]

    def serve(self, job_id: str, data: bytes = ZIP_BYTES) -> str:
        """Intercom's documented download URL for the job serves `data`."""
        url = self.source.download_url_for(job_id)
        self.source.files[url] = data
        return url


# -- workspaces and windows (issue 10) ----------------------------------------------------------------------------


class FakeSources:
    """ports.ExportSources: one FakeSource per workspace (`default` included when given); `single` is what
    single() answers (True: `default` is alone, so a rate limit or a refused token stops the whole cycle)."""

    def __init__(self, sources: dict[str, FakeSource] | None = None, *, single: bool = False) -> None:
        self.sources: dict[str, FakeSource] = dict(sources or {})
        self.is_single = single
        self.asked: list[str] = []

    def add(self, name: str) -> FakeSource:
        """A new FakeSource for workspace `name`, its created exports named `{name}-{n}` (unique across sources)."""
        source = FakeSource()
        source.create_prefix = f"{name}-"
        self.sources[name] = source
        return source

    def source_for(self, workspace: str) -> ExportSource:
        self.asked.append(workspace)
        source = self.sources.get(workspace)
        if source is None:
            raise UnknownWorkspace(workspace)
        return source

    def single(self) -> bool:
        return self.is_single


def _conditional_failure(operation: str, why: str) -> ClientError:
    """What LedgerStore's transactions raise when a condition fails (nothing was written)."""
    return ClientError(
        {"Error": {"Code": "TransactionCanceledException", "Message": f"Transaction cancelled: {why}"}},
        operation,
    )


@dataclass
class FakeWorkspaceRow:
    """A workspace record: its configuration (None for `default`) and the scheduler's state."""

    config: Workspace | None
    next_check_at: int = 0
    lease_owner: str | None = None
    lease_until: int | None = None
    active_job: str | None = None  # the content family's one slot
    active_window: str | None = None
    daily_through: date | None = None
    # The reporting family's slots (at most reporting.MAX_PENDING): (job id, window key), as ledger's active_reporting
    active_reporting: set[tuple[str, str]] = field(default_factory=set)
    reporting_through: dict[str, date] = field(default_factory=dict)  # how far each dataset's daily schedule queued


@dataclass
class FakeWindowRow:
    """A window record: the Window read back, and what the ledger keeps beside it."""

    window: Window
    size_bytes: int | None = None
    sha256: str | None = None
    queued_at: str | None = None
    updated_at: str | None = None


class FakeLedger:
    """ports.Ledger in memory, with LedgerStore's conditions:

    - claim_workspace: the record exists, its lease is free or lapsed (lease_until < now), and it is due by `due_by`
    - release_workspace, clear_active, note_error, make_due: conditional updates that do nothing when the condition
      fails (the lease is someone else's; the window is not queued; no record)
    - windows are keyed by (workspace, ledger kind, first day): the ledger kind is "content" or
      "reporting:<dataset>" (reporting.ledger_kind); each window keeps its family (`kind`), dataset and attributes
    - start: one transaction (job not tracked yet, window queued, lease ours and a free slot of the window's family:
      content's one `active_job`, or fewer than MAX_PENDING `active_reporting` entries) that tracks the job in
      `repo`, makes the window running and takes the slot; finish: one transaction (window running, lease ours and
      the slot the window's export: `active_job` is its job, or its (job, window key) entry is in active_reporting)
      that records the window's state (archived: s3_uri and the job's api_version) and frees the slot; either raises
      ClientError and writes nothing when a condition fails
    - queue: a window whose key exists is left as it is; oldest_queued: up to `limit` queued windows of the family
      (every dataset of the reporting family together), by first second

    `writes` lists every write that happened, in order; `before_write(operation, workspace)` runs before each
    conditional write (a test takes a lease over there); `fail_on[operation]` makes that call raise (once).
    """

    def __init__(self, repo: FakeRepository | None = None) -> None:
        self.repo = repo if repo is not None else FakeRepository()
        self.workspace_rows: dict[str, FakeWorkspaceRow] = {}
        self.window_rows: dict[str, FakeWindowRow] = {}
        self.writes: list[str] = []
        self.before_write: Callable[[str, str], None] | None = None
        self.fail_on: dict[str, Exception] = {}
        self._lock = threading.RLock()

    # -- test helpers

    def add_workspace(self, ws: Workspace | str) -> FakeWorkspaceRow:
        """A registered workspace (or, by name, a scheduler-state record such as `default`'s), due now."""
        config = None if isinstance(ws, str) else ws
        name = ws if isinstance(ws, str) else ws.name
        row = self.workspace_rows[name] = FakeWorkspaceRow(config=config)
        return row

    def take_over(self, name: str, owner: str, until: int = 2**40) -> None:
        """Another poller takes the workspace's lease (ours lapsed, as it sees it)."""
        with self._lock:
            row = self.workspace_rows[name]
            row.lease_owner, row.lease_until = owner, until

    def row(self, name: str) -> FakeWorkspaceRow:
        return self.workspace_rows[name]

    def window(self, workspace: str, start: date, lkind: str = Kind.CONTENT.value) -> Window:
        """A window by its key: `lkind` "content" or "reporting:<dataset>"."""
        return self.window_rows[window_key(workspace, start, lkind)].window

    def states(self, workspace: str, lkind: str | None = Kind.CONTENT.value) -> list[tuple[str, str]]:
        """(label, state) of a workspace's windows of one ledger kind (None: all), oldest first."""
        return [(w.span.label(), w.state.value) for w in self.windows(workspace, lkind)]

    def record(self, name: str) -> WorkspaceRecord:
        row = self.workspace_rows[name]
        return WorkspaceRecord(
            name=name,
            config=row.config,
            active_job=row.active_job,
            active_window=row.active_window,
            daily_through=row.daily_through,
            next_check_at=row.next_check_at,
            active_reporting=tuple(sorted(row.active_reporting)),
            reporting_through=dict(row.reporting_through),
        )

    def _hook(self, operation: str, workspace: str) -> None:
        failure = self.fail_on.pop(operation, None)
        if failure is not None:
            raise failure
        if self.before_write is not None:
            self.before_write(operation, workspace)

    # -- Ledger: workspaces

    def due_workspaces(self, due_by: int | None) -> list[str]:
        with self._lock:
            return [n for n, r in self.workspace_rows.items() if due_by is None or r.next_check_at <= due_by]

    def claim_workspace(
        self, name: str, owner: str, now: int, lease_seconds: int, due_by: int | None
    ) -> WorkspaceRecord | None:
        self._hook("claim_workspace", name)
        with self._lock:
            row = self.workspace_rows.get(name)
            if row is None or (row.lease_until is not None and row.lease_until >= now):
                return None
            if due_by is not None and row.next_check_at > due_by:
                return None
            row.lease_owner, row.lease_until = owner, now + lease_seconds
            return self.record(name)

    def release_workspace(
        self,
        name: str,
        owner: str,
        next_check_at: int,
        daily_through: date | None,
        reporting_through: dict[str, date] | None = None,
    ) -> None:
        self._hook("release_workspace", name)
        with self._lock:
            row = self.workspace_rows.get(name)
            if row is None or row.lease_owner != owner:
                return
            row.next_check_at = int(next_check_at)
            if daily_through is not None:
                row.daily_through = daily_through
            if reporting_through:  # LedgerStore writes the whole map when it is given and not empty
                row.reporting_through = dict(reporting_through)
            row.lease_owner, row.lease_until = None, None
            self.writes.append(f"release {name}")

    def ensure_workspace_state(self, name: str, now: str) -> None:
        with self._lock:
            if name not in self.workspace_rows:
                self.workspace_rows[name] = FakeWorkspaceRow(config=None)
                self.writes.append(f"ensure {name}")

    def make_due(self, name: str) -> None:
        self._hook("make_due", name)
        with self._lock:
            row = self.workspace_rows.get(name)
            if row is not None:
                row.next_check_at = 0
                self.writes.append(f"make_due {name}")

    # -- Ledger: windows

    def windows(self, workspace: str, lkind: str | None = Kind.CONTENT.value) -> list[Window]:
        with self._lock:
            found = [
                r.window
                for r in self.window_rows.values()
                if r.window.workspace == workspace and (lkind is None or r.window.lkind == lkind)
            ]
        return sorted(found, key=lambda w: (w.lkind, w.span))

    def get_window(self, key: str) -> Window | None:
        with self._lock:
            row = self.window_rows.get(key)
            return None if row is None else row.window

    def queue(
        self,
        workspace: str,
        spans: list[Span],
        now: str,
        kind: str = Kind.CONTENT.value,
        dataset: str | None = None,
        attributes: tuple[str, ...] = (),
    ) -> int:
        queued = 0
        lkind = ledger_kind(kind, dataset)  # InvalidReporting for a reporting window without a valid dataset
        reporting = family(kind) == Kind.REPORTING
        with self._lock:
            for span in spans:
                key = window_key(workspace, span.start, lkind)
                if key in self.window_rows:
                    continue
                window = Window(
                    key=key,
                    workspace=workspace,
                    span=span,
                    state=WindowState.QUEUED,
                    kind=family(kind),
                    dataset=dataset if reporting else None,
                    attributes=tuple(attributes) if reporting else (),
                )
                self.window_rows[key] = FakeWindowRow(window, queued_at=now, updated_at=now)
                self.writes.append(f"queue {workspace} {lkind} {span.label()}")
                queued += 1
        return queued

    def requeue_failed(self, window: Window, now: str) -> bool:
        with self._lock:
            stored = self.window_rows.get(window.key)
            if stored is None or stored.window.state is not WindowState.FAILED:
                return False
            stored.window = replace(stored.window, state=WindowState.QUEUED, round_attempts=0)
            stored.updated_at = now
            self.writes.append(f"requeue {window.workspace} {window.lkind} {window.span.label()}")
            return True

    def oldest_queued(self, workspace: str, kind: str = Kind.CONTENT.value, limit: int = 1) -> list[Window]:
        with self._lock:
            queued = [
                r.window
                for r in self.window_rows.values()
                if r.window.workspace == workspace
                and r.window.kind == family(kind)
                and r.window.state is WindowState.QUEUED
            ]
        return sorted(queued, key=lambda w: (w.span.first_second, w.key))[: max(limit, 0)]

    def start(self, name: str, owner: str, window: Window, job: Job, now: str) -> None:
        self._hook("start", name)
        with self._lock:
            row, stored = self.workspace_rows.get(name), self.window_rows.get(window.key)
            if job.job_identifier in self.repo.jobs:
                raise _conditional_failure("TransactWriteItems", f"job {job.job_identifier} is tracked already")
            if stored is None or stored.window.state is not WindowState.QUEUED:
                raise _conditional_failure("TransactWriteItems", f"window {window.key} is not queued")
            if row is None or row.lease_owner != owner:
                raise _conditional_failure("TransactWriteItems", f"workspace {name}: not our lease")
            reporting = window.kind == Kind.REPORTING
            if reporting and len(row.active_reporting) >= MAX_PENDING:
                raise _conditional_failure("TransactWriteItems", f"workspace {name}: {MAX_PENDING} reporting exports")
            if not reporting and row.active_job is not None:
                raise _conditional_failure("TransactWriteItems", f"workspace {name}: an active content export")
            self.repo.add(job)
            w = stored.window
            stored.window = replace(
                w,
                state=WindowState.RUNNING,
                export_job=job.job_identifier,
                attempts=w.attempts + 1,
                round_attempts=w.round_attempts + 1,
                last_error=None,
            )
            stored.updated_at = now
            if reporting:
                row.active_reporting.add((job.job_identifier, window.key))
            else:
                row.active_job, row.active_window = job.job_identifier, window.key
            self.writes.append(f"start {name} {w.lkind} {w.span.label()} {job.job_identifier}")

    def finish(self, name: str, owner: str, window: Window, state: WindowState, job: Job | None, now: str) -> None:
        self._hook("finish", name)
        with self._lock:
            row, stored = self.workspace_rows.get(name), self.window_rows.get(window.key)
            if stored is None or stored.window.state is not WindowState.RUNNING:
                raise _conditional_failure("TransactWriteItems", f"window {window.key} is not running")
            reporting = window.kind == Kind.REPORTING
            entry = (window.export_job or "", window.key)
            if row is None or row.lease_owner != owner:
                raise _conditional_failure("TransactWriteItems", f"workspace {name}: not our lease")
            if entry not in row.active_reporting if reporting else row.active_job != entry[0]:
                raise _conditional_failure("TransactWriteItems", f"workspace {name}: the slot is not its export")
            w = replace(stored.window, state=state)
            if job is not None and state is WindowState.ARCHIVED:
                w = replace(w, s3_uri=job.s3_uri, api_version=job.api_version or "")
                stored.size_bytes, stored.sha256 = job.size_bytes, job.sha256
            error = None if job is None else job.outcome_reason
            if state in (WindowState.QUEUED, WindowState.FAILED) and error:
                w = replace(w, last_error=error[:500])
            stored.window, stored.updated_at = w, now
            if reporting:
                row.active_reporting.discard(entry)
            else:
                row.active_job, row.active_window = None, None
            self.writes.append(f"finish {name} {w.lkind} {w.span.label()} {state.value}")

    def note_error(self, window: Window, error: str, now: str) -> None:
        self._hook("note_error", window.workspace)
        with self._lock:
            stored = self.window_rows.get(window.key)
            if stored is None or stored.window.state is not WindowState.QUEUED:
                return
            stored.window, stored.updated_at = replace(stored.window, last_error=error[:500]), now
            self.writes.append(f"note_error {window.workspace} {window.lkind} {window.span.label()}")

    def clear_active(self, name: str, owner: str, entry: tuple[str, str] | None = None) -> None:
        self._hook("clear_active", name)
        with self._lock:
            row = self.workspace_rows.get(name)
            if row is None or row.lease_owner != owner:
                return
            if entry is None:
                row.active_job, row.active_window = None, None
                self.writes.append(f"clear_active {name}")
            else:
                row.active_reporting.discard(entry)
                self.writes.append(f"clear_active {name} {entry[0]}|{entry[1]}")


@dataclass
class LedgerRig(Rig):
    """A Rig whose Poller also schedules: a FakeLedger over the same FakeRepository, and FakeSources (`default` is
    the Rig's own source)."""

    sources: FakeSources = field(default_factory=FakeSources)
    ledger: FakeLedger = field(init=False)

    def __post_init__(self) -> None:
        self.ledger = FakeLedger(self.repo)
        self.sources.sources.setdefault("default", self.source)

    def poller(self) -> Poller:
        return replace(super().poller(), sources=self.sources, ledger=self.ledger)

    def workspace(
        self,
        name: str,
        *,
        daily_start: date | None = None,
        window_days: int = 1,
        daily_datasets: tuple[str, ...] = (),
        daily_content: bool | None = None,
        reporting_ids: bool = False,
    ) -> FakeSource:
        """Register workspace `name` on Intercom's EU host (its own secret) and give it a FakeSource. Daily datasets
        (or `reporting_ids`) give it an app_id and a client_id; `daily_start` is then the datasets' first day, and
        the content schedule is daily only with `daily_content` (default: when there are no daily datasets)."""
        ids = reporting_ids or bool(daily_datasets)
        ws = Workspace(
            name=name,
            api_url="https://api.eu.intercom.io",
            token_secret=f"exportwatch/{name}-token",
            daily=daily_start is not None and (not daily_datasets if daily_content is None else daily_content),
            start=daily_start,
            window_days=window_days,
            app_id=f"{name}-app" if ids else None,
            client_id=f"{name}-client" if ids else None,
            daily_datasets=daily_datasets,
        )
        self.ledger.add_workspace(ws)
        return self.sources.add(name)

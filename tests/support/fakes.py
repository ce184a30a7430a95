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
from datetime import datetime

from exportwatch.archive import CopyResult, RawStream, archive_folder, sniff
from exportwatch.config import Settings
from exportwatch.intercom import DownloadGone, Outcome, StatusReport
from exportwatch.model import ArchivedCopy, Job, from_epoch, iso
from exportwatch.notifier import Notification
from exportwatch.poll import Poller
from exportwatch.store import LeaseLost

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
        self.downloads: list[str] = []
        self.token_error: Exception | None = None
        self.during_status: Callable[[str], None] | None = None  # runs inside each status call

    def answer(self, job_id: str, *answers: StatusReport | Exception) -> None:
        self.answers[job_id] = list(answers)

    # ExportSource

    def ensure_token(self) -> None:
        if self.token_error is not None:
            raise self.token_error

    def get_status(self, job_id: str) -> StatusReport:
        self.status_calls.append(job_id)
        if self.during_status is not None:
            self.during_status(job_id)
        script = self.answers[job_id]
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def download_url_for(self, job_id: str) -> str:
        return f"{self.API}/download/content/data/{job_id}"

    @contextmanager
    def download(self, url: str) -> Iterator[FakeDownload]:
        self.downloads.append(url)
        data = self.files.get(url, DownloadGone("the download answered HTTP 404: the file is gone"))
        if isinstance(data, Exception):
            raise data
        yield FakeDownload({"Content-Length": str(len(data))}, _Raw(data))


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

"""Copy a finished export from the Intercom download stream into S3, byte for byte, in flat memory.

boto3's upload_fileobj does the multipart work; we hand it a reader that hashes and counts the bytes as
they pass and refuses to end early. If the stream breaks or comes up short, the reader raises before S3
sees the end of the data, s3transfer aborts the multipart upload, and nothing appears at the final key.

Memory is set by CopySettings alone (part size x parts in flight), never by a header: a Content-Length is only
checked against what arrives, and one above CopySettings.max_bytes (what MAX_PARTS parts can hold) is refused
as malformed before a byte is read.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from boto3.s3.transfer import TransferConfig

from exportwatch.model import ArchivedCopy, Job, parse_iso
from exportwatch.reporting import validate_dataset
from exportwatch.windows import window_span
from exportwatch.workspaces import NAME_RE

MiB = 1024 * 1024
MAX_PARTS = 9_000  # S3 allows 10,000 parts per upload; keep a margin


class RawStream(Protocol):
    def read(self, amt: int | None = ..., decode_content: bool | None = ...) -> bytes: ...


class IncompleteDownload(IOError):
    """The download ended before Content-Length bytes arrived, sent more than it announced or than the copy
    can hold, or broke off. str() is one line without the URL."""


class MalformedDownload(ValueError):
    """The download's headers are not an answer we accept (an unreadable or absurd Content-Length)."""


@dataclass(frozen=True)
class Sniffed:
    extension: str
    content_type: str


ZIP = Sniffed("zip", "application/zip")
GZIP = Sniffed("gz", "application/gzip")
UNKNOWN = Sniffed("bin", "application/octet-stream")


def sniff(head: bytes) -> Sniffed:
    """Decide the format from the first bytes, never from a name: Intercom's docs disagree on ZIP vs gzip."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return ZIP
    if head.startswith(b"\x1f\x8b"):
        return GZIP
    return UNKNOWN


@dataclass(frozen=True)
class CopySettings:
    # Measured in bench/ (RESULTS.md): 8 MiB parts x 4 threads, with s3transfer's read-ahead capped at one part
    # per thread, peak at ~130 MB for a 1 GB export (16 MiB parts with s3transfer's default read-ahead of 10
    # parts peaked at ~285 MB), at the same throughput within the noise.
    part_size: int = 8 * MiB
    max_concurrency: int = 4
    read_size: int = 1 * MiB
    read_ahead_parts: int | None = None  # parts buffered from the stream; None: one per upload thread

    @property
    def max_bytes(self) -> int:
        """The largest export a copy takes: MAX_PARTS parts of part_size (about 70 GiB with 8 MiB parts)."""
        return self.part_size * MAX_PARTS

    def transfer_config(self) -> TransferConfig:
        part = self.part_size
        config = TransferConfig(
            multipart_threshold=part,
            multipart_chunksize=part,
            max_concurrency=self.max_concurrency,
            max_io_queue=4,
            io_chunksize=self.read_size,
            use_threads=True,
        )
        # A download is a non-seekable stream: s3transfer reads parts ahead into memory, 10 by default whatever
        # the concurrency. One per upload thread keeps every thread busy and memory flat.
        config.max_in_memory_upload_chunks = self.read_ahead_parts or self.max_concurrency
        return config


def announced_length(raw: str | None, max_bytes: int) -> int | None:
    """The download's Content-Length as a number, None when absent; MalformedDownload when it is not a plain
    decimal or is above `max_bytes` (a header that large is a lie or an export the copy cannot hold)."""
    if raw is None:
        return None
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        raise MalformedDownload("the download's Content-Length is not a number")
    length = int(text)
    if length > max_bytes:
        raise MalformedDownload(
            f"the download announces {length} bytes (Content-Length), above the {max_bytes}-byte cap of one copy"
        )
    return length


class HashingReader:
    """File-like view of the raw download that computes sha256 and size and enforces Content-Length."""

    def __init__(self, raw: RawStream, expected_length: int | None, head: bytes = b"", max_bytes: int = 0) -> None:
        self._raw = raw
        self._expected = expected_length
        self._max = max_bytes or CopySettings().max_bytes
        self._pending = head
        self.size = 0
        self._sha = hashlib.sha256()

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def read(self, amt: int | None = -1) -> bytes:
        # Fill the request completely unless the stream ends: s3transfer takes a short read as the end of
        # the data, so the end-of-stream check below must run on every short read, not only on b"".
        want = amt if amt is not None and amt >= 0 else 1 << 62
        parts = [self._pending[:want]]
        self._pending = self._pending[want:]
        got = len(parts[0])
        while got < want:
            chunk = self._raw_read(min(want - got, 8 * MiB))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        data = b"".join(parts)
        self.size += len(data)
        self._sha.update(data)
        if self.size > self._max:  # no Content-Length (chunked): the same cap, enforced on what arrives
            raise IncompleteDownload(f"download is larger than the {self._max}-byte cap of one copy")
        if self._expected is not None:
            if self.size > self._expected:
                raise IncompleteDownload(f"download sent more than its Content-Length of {self._expected} bytes")
            if got < want and self.size != self._expected:
                raise IncompleteDownload(f"download ended after {self.size} of {self._expected} bytes (Content-Length)")
        return data

    def _raw_read(self, amt: int) -> bytes:
        # decode_content=False keeps the exact bytes Intercom sent, even under a Content-Encoding header.
        try:
            return self._raw.read(amt, decode_content=False) or b""
        except Exception as exc:  # urllib3's protocol, timeout and TLS errors: their text names the host
            raise IncompleteDownload(f"the download broke off after {self.size} bytes ({type(exc).__name__})") from None


def read_head(raw: RawStream, n: int = 8) -> bytes:
    head = b""
    while len(head) < n:
        chunk = raw.read(n - len(head), decode_content=False)
        if not chunk:
            break
        head += chunk
    return head


def archive_folder(prefix: str, job: Job) -> str:
    """Where a job's export goes: {prefix}{workspace}/content/dt=YYYY-MM-DD/ (a reporting export:
    {prefix}{workspace}/reporting/{dataset}/dt=YYYY-MM-DD/), partitioned for listing by day and for
    Athena (docs/archive.md). The day is the window's first day, else the UTC day the export was first seen
    completed: recorded once, so a retried copy lands on the same key."""
    if not NAME_RE.fullmatch(job.workspace):  # the key's first folder: never a path a row could choose
        raise ValueError(f"job {job.job_identifier} has no valid workspace name")
    day = window_span(job)
    if day is not None:
        dt = day.start.isoformat()
    else:
        seen = parse_iso(job.completed_seen_at) or parse_iso(job.outcome_at) or parse_iso(job.tracked_at)
        dt = (seen or datetime.now(UTC)).date().isoformat()
    if job.reporting:  # {prefix}{workspace}/reporting/{dataset}/dt=...: one folder per dataset, for Athena
        return f"{prefix}{job.workspace}/reporting/{validate_dataset(job.dataset)}/dt={dt}/"
    return f"{prefix}{job.workspace}/content/dt={dt}/"


def object_key(prefix: str, job_id: str, sniffed: Sniffed) -> str:
    # Deterministic: a retried or duplicate copy lands on the same key with the same bytes.
    return f"{prefix}{job_id}.{sniffed.extension}"


@dataclass(frozen=True)
class CopyResult:
    copy: ArchivedCopy
    seconds: float


def copy_to_s3(
    s3: Any,
    raw: RawStream,
    *,
    bucket: str,
    prefix: str,
    job_id: str,
    expected_length: int | None,
    settings: CopySettings | None = None,
) -> CopyResult:
    """Stream `raw` into s3://bucket/prefix<job_id>.<ext>. Raises on a broken or short stream (no object)."""
    settings = settings or CopySettings()
    started = time.monotonic()
    head = read_head(raw)
    kind = sniff(head)
    reader = HashingReader(raw, expected_length, head, max_bytes=settings.max_bytes)
    key = object_key(prefix, job_id, kind)
    s3.upload_fileobj(
        reader,
        bucket,
        key,
        ExtraArgs={"ContentType": kind.content_type, "Metadata": {"job-identifier": job_id}},
        Config=settings.transfer_config(),
    )
    return CopyResult(
        ArchivedCopy(
            bucket=bucket,
            key=key,
            size_bytes=reader.size,
            sha256=reader.sha256,
            content_type=kind.content_type,
        ),
        time.monotonic() - started,
    )

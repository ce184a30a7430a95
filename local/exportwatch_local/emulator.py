"""Local emulator of Intercom's data export API: a real HTTP server for tests, the demo and benchmarks.

It follows the API reference (intercom-export-api.md and the 2.16 OpenAPI excerpt), including the
API's inconsistencies (`complete` vs `completed`, a 504 with a JSON `failed` body vs an HTML edge 504, ZIP vs
gzip bodies), because the client must survive every variant the live API has been seen to produce.

Jobs advance by the number of status calls, never by wall time, so scripted runs are deterministic.
Stdlib only (plus exportwatch.outcomes, itself stdlib only, for Intercom's status words), so it starts fast and
runs anywhere Python does (it is never deployed: exportwatch_local).

Scripting from Python::

    with IntercomEmulator() as emu:
        job_id = emu.add_job("html_504", html_504_count=1)
        ...  # point the client at emu.base_url with token "emulator-token"

Several workspaces (one emulator each, own port and token)::

    with EmulatorFleet({"us": "token-us", "eu": "token-eu"}) as fleet:
        fleet.emulators["eu"].queue_create_scenarios("failed", "completed")
        ...  # fleet.base_url("eu"); afterwards fleet.emulators["us"].tokens_seen() == {"token-us"}

The second export family, reporting datasets (intercom-reporting-export-api.md), is served beside it:
``GET /export/reporting_data/get_datasets`` (the DATASETS catalogue), ``POST /export/reporting_data/enqueue``
(at most 5 pending reporting jobs; content exports keep their own one-active rule), the status
``GET /export/reporting_data/{id}?app_id=..&client_id=..`` and the download
``GET /download/reporting_data/{id}?app_id=..``. A reporting job reuses every scenario and option of a content
job, except that its finished word is ``complete`` (the spec's examples) unless ``steps`` is given explicitly,
and its body is a gzip CSV with the requested attributes as columns by default::

    with IntercomEmulator(app_id="app1", client_id="client1") as emu:
        emu.queue_reporting_scenarios("failed", "completed")  # the first enqueue fails, the next completes
        job_id = emu.add_reporting_job("completed", dataset="conversation")  # or enqueue over HTTP
        ...  # afterwards emu.enqueues lists every enqueue and how it was answered

From another process: ``python -m exportwatch_local.emulator --port 8765 --token T`` and the control API
under ``/_emulator/`` (no auth), see ``IntercomEmulator._control``.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import csv
import gzip
import hashlib
import io
import json
import logging
import math
import secrets
import signal
import socket
import string
import struct
import threading
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Final, Self, cast
from urllib.parse import parse_qs, quote, unquote, urlsplit

from exportwatch.outcomes import FINISHED_OK_STATUSES, HTTP_ANSWERS, RUNNING_STATUSES
from exportwatch_local.loopback import LoopbackHandler, LoopbackServer

__all__ = [
    "CSV_COLUMNS",
    "DATASETS",
    "SCENARIOS",
    "CreateRecord",
    "EmulatorFleet",
    "EnqueueRecord",
    "IntercomEmulator",
    "RecordedRequest",
    "main",
    "start_workspaces",
]

_LOG = logging.getLogger(__name__)

TWO_DAYS: Final = 2 * 24 * 3600
DEFAULT_TOKEN: Final = "emulator-token"  # noqa: S105 - a public placeholder, not a secret
DEFAULT_WORKSPACE: Final = "default"
DEFAULT_APP_ID: Final = "emulator-app"
DEFAULT_CLIENT_ID: Final = "emulator-client"
_CREATE_PATH: Final = "/export/content/data"
_ONE_ACTIVE_MESSAGE: Final = "Exceeded rate limit of 1 pending message data export jobs"
_CONTENT: Final = "content"
_REPORTING: Final = "reporting"
_DATASETS_PATH: Final = "/export/reporting_data/get_datasets"
_ENQUEUE_PATH: Final = "/export/reporting_data/enqueue"
_REPORTING_STATUS_PREFIX: Final = "/export/reporting_data/"
_REPORTING_DOWNLOAD_PREFIX: Final = "/download/reporting_data/"
_MAX_PENDING_REPORTING: Final = 5
_FIVE_PENDING_MESSAGE: Final = "Exceeded rate limit of 5 pending reporting dataset export jobs"
_ID_ALPHABET: Final = string.ascii_lowercase + string.digits
_CHUNK: Final = 256 * 1024
_MAX_REQUEST_BODY: Final = 1 << 20
_JSON: Final = "application/json; charset=utf-8"
_HTML: Final = "text/html; charset=utf-8"

# The data_export_csv schema's properties (spelling kept, `first_dismisall` included), in a reading order.
CSV_COLUMNS: Final[tuple[str, ...]] = (
    "ruleset_id",
    "ruleset_version_id",
    "content_id",
    "content_type",
    "content_title",
    "series_id",
    "series_title",
    "node_id",
    "receipt_id",
    "received_at",
    "user_id",
    "user_external_id",
    "company_id",
    "email",
    "name",
    "first_open",
    "first_click",
    "first_reply",
    "first_completion",
    "first_dismisall",
    "first_unsubscribe",
    "first_hard_bounce",
    "first_goal_success",
    "first_series_completion",
    "first_series_disengagement",
    "first_series_exit",
)


def _dataset(
    dataset_id: str, name: str, description: str, time_attribute: str, attributes: Sequence[tuple[str, str]]
) -> dict[str, object]:
    return {
        "id": dataset_id,
        "name": name,
        "description": description,
        "default_time_attribute_id": f"{dataset_id}.{time_attribute}",
        "attributes": [
            {"id": attr, "qualified_id": f"{dataset_id}.{attr}", "name": label} for attr, label in attributes
        ],
    }


# The reporting datasets the emulator serves from get_datasets (a subset of Intercom's, same shape).
DATASETS: Final[tuple[Mapping[str, object], ...]] = (
    _dataset(
        "conversation",
        "Conversation",
        "Conversation-level data: one row per conversation",
        "created_at",
        (
            ("conversation_id", "Conversation ID"),
            ("created_at", "Conversation started at"),
            ("updated_at", "Last updated at"),
            ("state", "Current conversation state"),
            ("channel", "Channel"),
            ("team_assigned", "Team currently assigned"),
            ("teammate_assigned", "Teammate currently assigned"),
            ("first_response_at", "First response at"),
            ("closed_at", "Last closed at"),
            ("conversation_rating", "Conversation rating"),
        ),
    ),
    _dataset(
        "ticket",
        "Ticket",
        "Ticket-level data: one row per ticket",
        "created_at",
        (
            ("ticket_id", "Ticket ID"),
            ("created_at", "Ticket created at"),
            ("ticket_type", "Ticket type"),
            ("ticket_state", "Ticket state"),
            ("title", "Ticket title"),
            ("resolved_at", "Ticket resolved at"),
        ),
    ),
)
_DATASETS_BY_ID: Final[Mapping[str, Mapping[str, object]]] = {str(d["id"]): d for d in DATASETS}


def _attributes_of(dataset_id: str) -> list[Mapping[str, str]]:
    return cast(list[Mapping[str, str]], _DATASETS_BY_ID[dataset_id]["attributes"])


_COMPLETE: Final = FINISHED_OK_STATUSES  # a download is served
_ACTIVE: Final = RUNNING_STATUSES  # the workspace's one active job
_FAILED_AS_504: Final = HTTP_ANSWERS[504].status  # answered as a 504 with the JSON job model
_NORMAL_STEPS: Final = ("pending", "in_progress", "completed")

# Status-call faults, consumed in this order before the job model is served (a faulted call does not
# advance `steps`). A count of None means "every call".
_STATUS_FAULTS: Final = ("rate_limit_count", "html_504_count", "error_count", "malformed_count", "wrong_types_count")

# Every option add_job accepts, with its default. Scenarios only change defaults, so any fault can be
# combined with any scenario ("completed" with error_count=1 is a job that fails once, then recovers).
_DEFAULTS: Final[Mapping[str, object]] = {
    "steps": list(_NORMAL_STEPS),
    "body_format": "zip",  # "zip" | "gzip"
    "rows": 20,
    "size_bytes": None,  # int: stream a synthetic body of exactly this many bytes instead of `rows`
    "expires_in": float(TWO_DAYS),
    "completed_at": None,  # epoch seconds; pins the completion time (default: first time status is complete)
    "rate_limit_count": 0,
    "reset_in": 1.0,
    "html_504_count": 0,
    "error_count": 0,
    "malformed_count": 0,
    "wrong_types_count": 0,
    "delay": 0.0,  # seconds a status call waits before answering
    "slow_count": None,  # how many status calls are slowed by `delay` (None: all)
    "download_origin": None,  # origin put in download_url instead of base_url
    "redirect_to": None,  # origin the download endpoint 302s to
    # Hostile or odd answers, verbatim (tests of what the client does with what it is told):
    "download_url": None,  # the job model's download_url exactly as given (overrides download_origin)
    "redirect_location": None,  # the download answers 302 with exactly this Location (overrides redirect_to)
    "download_status": None,  # the download answers this HTTP status (e.g. 410, 429) with an error body
    "download_headers": None,  # extra headers on every download answer, e.g. {"Content-Encoding": "gzip"}
    "content_length": None,  # the Content-Length announced for the body instead of its real size (a lie)
    "download_gone": False,
    "flaky_downloads": 0,  # first N download attempts are truncated (None: all)
    "reset_downloads": 0,  # first N download attempts are reset (None: all)
    "download_rate": None,  # bytes/s: throttle the download body (None: full speed), e.g. to kill a copy midway
    "download_rate_after": 0,  # bytes a throttled download sends at full speed before the throttle starts
    "slow_downloads": None,  # how many download attempts are throttled by `download_rate` (None: all)
}

SCENARIOS: Final[Mapping[str, Mapping[str, object]]] = {
    "completed": {},
    "complete_legacy": {"steps": ["pending", "complete"], "body_format": "gzip"},
    "failed": {"steps": ["pending", "in_progress", "failed"]},
    "html_504": {"steps": ["completed"], "html_504_count": 2},
    "server_errors": {"steps": ["completed"], "error_count": 2},
    "not_found": {},
    "no_data": {"steps": ["pending", "no_data"]},
    "canceled": {"steps": ["pending", "canceled"]},
    "expired": {"steps": ["completed"]},  # completed_at is set to more than expires_in ago in add_job
    "download_gone": {"steps": ["completed"], "download_gone": True},
    "rate_limited": {"steps": ["completed"], "rate_limit_count": 1},
    "foreign_url": {"steps": ["completed"], "download_origin": "http://127.0.0.1:9"},
    "redirect_foreign": {"steps": ["completed"], "redirect_to": "http://127.0.0.1:9"},
    "truncated": {"steps": ["completed"], "flaky_downloads": None},
    "reset": {"steps": ["completed"], "reset_downloads": None},
    "slow_status": {"delay": 5.0},
    "malformed": {"malformed_count": None},
    "wrong_types": {"wrong_types_count": None},
    "unknown_status": {"steps": ["archived"]},
}

_HTML_504: Final = (
    b"<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    b"<center><h1>504 Gateway Time-out</h1></center>\r\n</body>\r\n</html>\r\n"
)
_HTML_502: Final = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)


# --------------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One API request as it arrived (control API calls are not recorded)."""

    method: str
    path: str  # path and query as sent
    headers: dict[str, str]  # header names as the client spelled them
    time: float  # by the emulator's clock
    client: str = ""  # "ip:port" of the client socket: equal ports mean a reused keep-alive connection
    job_identifier: str | None = None
    body: bytes = b""

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "path": self.path,
            "headers": dict(self.headers),
            "time": self.time,
            "client": self.client,
            "job_identifier": self.job_identifier,
            "body": self.body.decode("utf-8", "replace"),
        }


@dataclass(frozen=True)
class CreateRecord:
    """One authenticated `POST /export/content/data` and how it was answered (200, 400 or 429 alike)."""

    job_identifier: str | None  # None when refused
    created_at_after: int | None  # None when absent or not an integer (a 400)
    created_at_before: int | None
    status_code: int
    time: float  # by the emulator's clock

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class EnqueueRecord:
    """One authenticated `POST /export/reporting_data/enqueue` and how it was answered (200, 400 or 429 alike).

    A field the body did not carry with the right type reads None (a 400)."""

    job_identifier: str | None  # None when refused
    dataset_id: str | None
    attribute_ids: tuple[str, ...] | None  # None unless an array of strings
    start_time: int | None
    end_time: int | None
    status_code: int
    time: float  # by the emulator's clock

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["attribute_ids"] = None if self.attribute_ids is None else list(self.attribute_ids)
        return data


def _unix_field(payload: object, name: str) -> int | None:
    value = payload.get(name) if isinstance(payload, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_Scenario = tuple[str, dict[str, object]]


@dataclass
class _Job:
    job_identifier: str
    scenario: str
    options: dict[str, object]
    steps: list[str]
    body_format: str
    rows: int
    size_bytes: int | None
    expires_in: float
    reset_in: float
    delay: float
    slow_count: int | None
    download_origin: str | None
    redirect_to: str | None
    download_url: str | None
    redirect_location: str | None
    download_status: int | None
    download_headers: dict[str, str]
    content_length: int | None
    download_gone: bool
    faults: dict[str, int | None]
    flaky_downloads: int | None
    reset_downloads: int | None
    download_rate: float | None = None
    download_rate_after: int = 0
    slow_downloads: int | None = None
    status: str = ""
    completed_at: float | None = None
    created_via_api: bool = False
    canceled: bool = False
    status_calls: int = 0
    step_calls: int = 0
    slow_used: int = 0
    download_attempts: int = 0
    faults_used: dict[str, int] = field(default_factory=dict)
    download_faults_used: dict[str, int] = field(default_factory=dict)
    body: _Body | None = None
    kind: str = _CONTENT  # "content" | "reporting": which family's paths serve it
    dataset: str | None = None  # reporting: the dataset id
    columns: tuple[str, ...] = ()  # reporting: the attribute ids asked for (the CSV header)
    time_range: tuple[int, int] | None = None  # reporting: start_time, end_time


@dataclass
class _Reply:
    code: int
    body: bytes = b""
    content_type: str = _JSON
    headers: dict[str, str] = field(default_factory=dict)
    stream: _Body | None = None
    fault: str | None = None  # "truncate" | "reset" for download bodies
    rate: float | None = None  # bytes/s for a throttled download body (after `rate_after` bytes at full speed)
    rate_after: int = 0


def _dumps(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _json_reply(code: int, payload: object) -> _Reply:
    return _Reply(code, _dumps(payload))


def _error(code: int, err_code: str, message: str) -> _Reply:
    return _json_reply(
        code,
        {
            "type": "error.list",
            "request_id": str(uuid.uuid4()),
            "errors": [{"code": err_code, "message": message}],
        },
    )


def _job_not_found(job_identifier: str) -> _Reply:
    return _error(404, "not_found", f"Export job not found for identifier: {job_identifier}")


def _unknown_resource() -> _Reply:
    return _error(404, "not_found", "The requested resource does not exist; check your path and try again")


def _take(limit: int | None, used: int) -> bool:
    return limit is None or used < limit


# --------------------------------------------------------------------------------------------------------
# Export bodies (deterministic from the job id)
# --------------------------------------------------------------------------------------------------------


def _digest(*parts: object) -> bytes:
    return hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()


def _export_time(job_identifier: str) -> datetime:
    """When the export "ran": fixed per job id, so file names and rows never change between downloads."""
    seconds = 1_704_067_200 + int.from_bytes(_digest("stamp", job_identifier)[:4], "big") % (365 * 86400)
    return datetime.fromtimestamp(seconds, UTC)


def _row(job_identifier: str, index: int, base: int) -> dict[str, str]:
    h = _digest(job_identifier, index)
    n = int.from_bytes(h[:8], "big")
    received = base + index * 37 + h[8] % 30

    def first(byte: int, below: int, after: int) -> str:
        return str(received + after + h[byte] % 600) if h[byte] < below else ""

    in_series = h[9] < 100
    opened = first(11, 170, 60)
    return {
        "ruleset_id": str(10_000 + n % 90_000),
        "ruleset_version_id": str(100_000 + (n >> 17) % 900_000),
        "content_id": str(1_000_000 + (n >> 7) % 9_000_000),
        "content_type": ("email", "post", "chat", "custom_bot", "survey", "tour")[h[10] % 6],
        # A comma in a title makes the CSV writer quote it, as real titles do.
        "content_title": f"Campaign {n % 97}, variant {'ABC'[h[12] % 3]}",
        "series_id": str(5000 + h[13]) if in_series else "-1",
        "series_title": f"Onboarding series {h[13] % 7}" if in_series else "",
        "node_id": str(70_000 + h[14] * 3) if in_series else "",
        "receipt_id": h[16:24].hex(),
        "received_at": str(received),
        "user_id": h[24:30].hex(),
        "user_external_id": f"ext-{int.from_bytes(h[30:32], 'big')}" if h[15] < 200 else "",
        "company_id": str(int.from_bytes(h[26:28], "big")) if h[17] < 150 else "-1",
        "email": f"user{n % 1_000_000}@example.com",
        "name": f"User {n % 1_000_000}",
        "first_open": opened,
        "first_click": first(18, 90, 120) if opened else "",
        "first_reply": first(19, 30, 300) if opened else "",
        "first_completion": first(20, 40, 200) if opened else "",
        "first_dismisall": first(21, 25, 90),
        "first_unsubscribe": first(22, 8, 400),
        "first_hard_bounce": first(23, 5, 5) if not opened else "",
        "first_goal_success": first(25, 35, 800),
        "first_series_completion": first(27, 30, 900) if in_series else "",
        "first_series_disengagement": first(28, 20, 950) if in_series else "",
        "first_series_exit": first(29, 20, 990) if in_series else "",
    }


def _csv_bytes(rows: Sequence[Mapping[str, str]], header: bool = True) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([row[c] for c in CSV_COLUMNS])
    return out.getvalue().encode()


def _zip_of_rows(job_identifier: str, count: int) -> bytes:
    """A ZIP with one CSV per message statistic, like Intercom's UI export; empty statistics are left out."""
    stamp = _export_time(job_identifier)
    suffix = stamp.strftime("%Y%m%d_%H%M%S")
    base = int(stamp.timestamp()) - 86400
    rows = [_row(job_identifier, i, base) for i in range(count)]
    stats = {
        "receipts": rows,
        "open": [r for r in rows if r["first_open"]],
        "click": [r for r in rows if r["first_click"]],
        "reply": [r for r in rows if r["first_reply"]],
        "unsubscribe": [r for r in rows if r["first_unsubscribe"]],
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, selected in stats.items():
            if not selected:
                continue
            info = zipfile.ZipInfo(f"{name}_{suffix}.csv", date_time=stamp.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, _csv_bytes(selected))
    return buf.getvalue()


def _gzip_of_rows(job_identifier: str, count: int) -> bytes:
    base = int(_export_time(job_identifier).timestamp()) - 86400
    rows = [_row(job_identifier, i, base) for i in range(count)]
    return gzip.compress(_csv_bytes(rows), mtime=0)  # mtime=0: identical bytes on every download


def _reporting_value(column: str, h: bytes, start: int, end: int) -> str:
    name = column.rsplit(".", 1)[-1]
    n = int.from_bytes(h[:8], "big")
    if name.endswith("_at"):
        return str(start + n % max(1, end - start + 1))
    if name.endswith("_id"):
        return str(100_000_000 + n % 900_000_000)
    return f"{name} {h[8] % 7}"


def _reporting_csv(job: _Job) -> bytes:
    """The reporting export's CSV: the attribute ids asked for as the header, then `rows` deterministic rows."""
    stamp = int(_export_time(job.job_identifier).timestamp())
    start, end = job.time_range or (stamp - 86400, stamp - 1)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(job.columns)
    for index in range(job.rows):
        writer.writerow([_reporting_value(c, _digest(job.job_identifier, index, c), start, end) for c in job.columns])
    return out.getvalue().encode()


def _reporting_bytes(job: _Job) -> bytes:
    data = _reporting_csv(job)
    if job.body_format == "gzip":
        return gzip.compress(data, mtime=0)
    stamp = _export_time(job.job_identifier)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        info = zipfile.ZipInfo(f"{job.dataset}_{stamp.strftime('%Y%m%d_%H%M%S')}.csv", date_time=stamp.timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, data)
    return buf.getvalue()


class _Body:
    """A download body of known size, produced in chunks so memory stays flat whatever the size."""

    size: int

    def chunks(self) -> Iterator[bytes]:
        raise NotImplementedError


class _BytesBody(_Body):
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def chunks(self) -> Iterator[bytes]:
        view = memoryview(self.data)
        for start in range(0, self.size, _CHUNK):
            yield bytes(view[start : start + _CHUNK])


class _CsvStream:
    """Exactly `size` bytes of CSV: the header, then a ~64 KiB block of rows repeated.

    The bytes after the last whole row that fits are replaced by a `#...#\\n` filler line, so the text
    always ends on a line break. Random access (`read`) keeps generation O(chunk), never O(size).
    """

    def __init__(self, job_identifier: str, size: int) -> None:
        self.size = size
        self._header = _csv_bytes([])
        base = int(_export_time(job_identifier).timestamp()) - 86400
        block = bytearray()
        ends: list[int] = []
        index = 0
        while len(block) < 64 * 1024:
            block += _csv_bytes([_row(job_identifier, index, base)], header=False)
            ends.append(len(block))
            index += 1
        self._block = bytes(block)
        head, period = len(self._header), len(self._block)
        if size < head:
            self._tail = 0
        else:
            whole, rest = divmod(size - head, period)
            k = bisect.bisect_right(ends, rest)
            self._tail = head + whole * period + (ends[k - 1] if k else 0)

    def read(self, pos: int, length: int) -> bytes:
        out = bytearray()
        head, period = len(self._header), len(self._block)
        block = memoryview(self._block)
        p, remaining = pos, length
        while remaining > 0:
            if p < head:
                piece = self._header[p : p + min(remaining, head - p)]
                out += piece
                taken = len(piece)
            else:
                off = (p - head) % period
                taken = min(remaining, period - off)
                out += block[off : off + taken]
            p += taken
            remaining -= taken
        end = pos + length
        if end > self._tail:
            start = max(pos, self._tail)
            out[start - pos :] = b"#" * (end - start)
            if end == self.size:
                out[-1:] = b"\n"
        return bytes(out)

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        for pos in range(0, self.size, chunk_size):
            yield self.read(pos, min(chunk_size, self.size - pos))


def _dos_datetime(moment: datetime) -> tuple[int, int]:
    dos_time = (moment.hour << 11) | (moment.minute << 5) | (moment.second // 2)
    dos_date = ((moment.year - 1980) << 9) | (moment.month << 5) | moment.day
    return dos_time, dos_date


class _StoredZipBody(_Body):
    """A real single-entry ZIP (stored, no compression) of exactly `size` bytes, streamed.

    The CRC is only known after the data, so the entry uses a data descriptor (flag bit 3) and the central
    directory carries the real CRC and sizes; zipfile and unzip read it. No Zip64, so at most 4 GiB.
    """

    def __init__(self, job_identifier: str, size: int) -> None:
        stamp = _export_time(job_identifier)
        self._name = f"receipts_{stamp.strftime('%Y%m%d_%H%M%S')}.csv".encode()
        overhead = self.overhead(len(self._name))
        if size < overhead or size > 0xFFFFFFFF:
            raise ValueError(f"size_bytes for a zip body must be between {overhead} and {0xFFFFFFFF}")
        self.size = size
        self._content = _CsvStream(job_identifier, size - overhead)
        self._time, self._date = _dos_datetime(stamp)

    @staticmethod
    def overhead(name_length: int) -> int:
        # local header + data descriptor + central directory entry + end of central directory
        return 30 + 16 + 46 + 22 + 2 * name_length

    def chunks(self) -> Iterator[bytes]:
        name, n = self._name, self._content.size
        yield struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0x08, 0, self._time, self._date, 0, 0, 0, len(name), 0) + name
        crc = 0
        for chunk in self._content.chunks(_CHUNK):
            crc = zlib.crc32(chunk, crc)
            yield chunk
        descriptor = struct.pack("<IIII", 0x08074B50, crc, n, n)
        central = (
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50, 20, 20, 0x08, 0, self._time, self._date, crc, n, n, len(name), 0, 0, 0, 0, 0, 0,
            )
            + name
        )  # fmt: skip
        end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), 30 + len(name) + n + 16, 0)
        yield descriptor + central + end


class _StoredGzipBody(_Body):
    """A real gzip member of exactly `size` bytes made of stored deflate blocks (cheap to stream)."""

    def __init__(self, job_identifier: str, size: int) -> None:
        if size < 23:
            raise ValueError("size_bytes for a gzip body must be at least 23")
        self.size = size
        target = size - 18  # minus the 10-byte header and 8-byte trailer: data plus 5 bytes per block
        self._blocks = max(1, -(-target // 65540))
        self._content = _CsvStream(job_identifier, target - 5 * self._blocks)

    def chunks(self) -> Iterator[bytes]:
        n, blocks = self._content.size, self._blocks
        yield b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
        share, extra = divmod(n, blocks)  # even split keeps every block within the 65535-byte limit
        crc, pos = 0, 0
        for i in range(blocks):
            length = share + (1 if i < extra else 0)
            data = self._content.read(pos, length)
            pos += length
            crc = zlib.crc32(data, crc)
            yield struct.pack("<BHH", 1 if i == blocks - 1 else 0, length, length ^ 0xFFFF) + data
        yield struct.pack("<II", crc, n & 0xFFFFFFFF)


def _make_body(job: _Job) -> _Body:
    if job.kind == _REPORTING and job.size_bytes is None:
        return _BytesBody(_reporting_bytes(job))
    if job.size_bytes is not None:
        if job.body_format == "gzip":
            return _StoredGzipBody(job.job_identifier, job.size_bytes)
        return _StoredZipBody(job.job_identifier, job.size_bytes)
    if job.body_format == "gzip":
        return _BytesBody(_gzip_of_rows(job.job_identifier, job.rows))
    return _BytesBody(_zip_of_rows(job.job_identifier, job.rows))


# --------------------------------------------------------------------------------------------------------
# Option parsing
# --------------------------------------------------------------------------------------------------------


def _int_opt(name: str, value: object, *, nullable: bool = False, minimum: int = 0) -> int | None:
    if value is None and nullable:
        return None
    # bool is an int subclass; True as a count is always a scripting mistake.
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = "an int" + (" or None" if nullable else "")
        raise ValueError(f"option {name!r} must be {kind} >= {minimum}, got {value!r}")
    return value


def _float_opt(name: str, value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ValueError(f"option {name!r} must be a number >= 0, got {value!r}")
    return float(value)


def _rate_opt(name: str, value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < math.inf:
        raise ValueError(f"option {name!r} must be a number of bytes per second > 0 or None, got {value!r}")
    return float(value)


def _str_opt(name: str, value: object, *, nullable: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise ValueError(f"option {name!r} must be a string, got {value!r}")
    return value


def _headers_opt(name: str, value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"option {name!r} must map header names to strings, got {value!r}")
    return dict(value)


def _build_job(
    scenario: str, job_identifier: str, options: Mapping[str, object], now: float, kind: str = _CONTENT
) -> _Job:
    """A job from a scenario and options; a reporting job's body defaults to gzip and its `completed` steps are
    spelled `complete` (the reporting spec's examples) unless `steps` is given explicitly."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    unknown = sorted(set(options) - set(_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(_DEFAULTS)}")
    family: Mapping[str, object] = {"body_format": "gzip"} if kind == _REPORTING else {}
    merged = {**_DEFAULTS, **family, **SCENARIOS[scenario], **options}
    steps = merged["steps"]
    if not isinstance(steps, list | tuple) or not steps or not all(isinstance(s, str) and s for s in steps):
        raise ValueError(f"option 'steps' must be a non-empty list of status strings, got {steps!r}")
    if kind == _REPORTING and "steps" not in options:
        steps = ["complete" if s == "completed" else s for s in steps]
    body_format = merged["body_format"]
    if body_format not in ("zip", "gzip"):
        raise ValueError(f"option 'body_format' must be 'zip' or 'gzip', got {body_format!r}")
    expires_in = _float_opt("expires_in", merged["expires_in"])
    completed_at = merged["completed_at"]
    if scenario == "expired" and "completed_at" not in options:
        completed_at = now - expires_in - 3600  # finished more than `expires_in` (two days) ago
    if completed_at is not None and (not isinstance(completed_at, int | float) or isinstance(completed_at, bool)):
        raise ValueError(f"option 'completed_at' must be epoch seconds, got {completed_at!r}")
    download_gone = merged["download_gone"]
    if not isinstance(download_gone, bool):
        raise ValueError(f"option 'download_gone' must be a bool, got {download_gone!r}")
    size_bytes = _int_opt("size_bytes", merged["size_bytes"], nullable=True)
    job = _Job(
        job_identifier=job_identifier,
        scenario=scenario,
        options=dict(options),
        steps=[str(s) for s in steps],
        body_format=str(body_format),
        rows=cast(int, _int_opt("rows", merged["rows"], minimum=1)),
        size_bytes=size_bytes,
        expires_in=expires_in,
        reset_in=_float_opt("reset_in", merged["reset_in"]),
        delay=_float_opt("delay", merged["delay"]),
        slow_count=_int_opt("slow_count", merged["slow_count"], nullable=True),
        download_origin=_str_opt("download_origin", merged["download_origin"], nullable=True),
        redirect_to=_str_opt("redirect_to", merged["redirect_to"], nullable=True),
        download_url=_str_opt("download_url", merged["download_url"], nullable=True),
        redirect_location=_str_opt("redirect_location", merged["redirect_location"], nullable=True),
        download_status=_int_opt("download_status", merged["download_status"], nullable=True, minimum=100),
        download_headers=_headers_opt("download_headers", merged["download_headers"]),
        content_length=_int_opt("content_length", merged["content_length"], nullable=True),
        download_gone=download_gone,
        faults={name: _int_opt(name, merged[name], nullable=True) for name in _STATUS_FAULTS},
        flaky_downloads=_int_opt("flaky_downloads", merged["flaky_downloads"], nullable=True),
        reset_downloads=_int_opt("reset_downloads", merged["reset_downloads"], nullable=True),
        download_rate=_rate_opt("download_rate", merged["download_rate"]),
        download_rate_after=cast(int, _int_opt("download_rate_after", merged["download_rate_after"])),
        slow_downloads=_int_opt("slow_downloads", merged["slow_downloads"], nullable=True),
        completed_at=None if completed_at is None else float(completed_at),
        kind=kind,
    )
    if size_bytes is not None:
        job.body = _make_body(job)  # validates the size now rather than at download time
    return job


# --------------------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------------------


class IntercomEmulator(LoopbackServer):
    """Intercom's four data export endpoints plus a scripting API, served on 127.0.0.1.

    One instance is one workspace (`workspace` is only a label): it accepts its own token alone and allows
    one active content export created through the API at a time, as Intercom does per workspace.
    It also serves the reporting family: `app_id` and `client_id` are the workspace's ids that the reporting
    status call must carry (a wrong `app_id` is a 404; `client_id` is required but its value is not checked,
    read it back from `requests`), and at most 5 API-enqueued reporting jobs may be pending at once.
    """

    label = "intercom emulator"
    noun = "the emulator"
    log = _LOG
    request_queue_size = 128  # benchmarks open many pooled connections at once

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        status_delay: float = 0.0,
        open_downloads: bool = False,
        workspace: str = DEFAULT_WORKSPACE,
        app_id: str = DEFAULT_APP_ID,
        client_id: str = DEFAULT_CLIENT_ID,
    ) -> None:
        super().__init__(host, port, _Handler)
        self.token = token
        self.workspace = workspace
        self.app_id = app_id
        self.client_id = client_id
        # A storage host (where a redirect or a presigned URL points): downloads need no token, like S3's.
        self.open_downloads = open_downloads
        self.clock = clock
        self.status_delay = status_delay
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._requests: list[RecordedRequest] = []
        self._create_scenario: _Scenario = ("completed", {})
        self._create_queue: list[_Scenario] = []  # taken one per successful create, before _create_scenario
        self._creates: list[CreateRecord] = []
        self._tokens_seen: set[str] = set()
        self._peak_active = 0
        self._reporting_scenario: _Scenario = ("completed", {})
        self._reporting_queue: list[_Scenario] = []  # taken one per successful enqueue
        self._enqueues: list[EnqueueRecord] = []
        self._peak_pending_reporting = 0
        # Intercom's real limit is per app and workspace; by default only the headers are emulated, so
        # benchmarks are not throttled unless set_rate_limit() asks for it.
        self._rl_limit = 10_000
        self._rl_window = 60.0
        self._rl_enforced = False
        self._rl_start = -1.0
        self._rl_count = 0

    # ---- scripting ------------------------------------------------------------------------------------

    def add_job(self, scenario: str = "completed", job_identifier: str | None = None, **options: object) -> str:
        """Register a job that behaves as `scenario` (see SCENARIOS), with option overrides; returns its id."""
        with self._lock:
            if job_identifier is not None and (
                not job_identifier or "/" in job_identifier or job_identifier in self._jobs
            ):
                raise ValueError(f"job_identifier {job_identifier!r} is empty, has '/', or exists")
            job_id = job_identifier or self._new_id()
            job = _build_job(scenario, job_id, options, self.clock())
            if scenario != "not_found":  # a not_found job is an id nobody registered
                self._register(job)
            return job_id

    def add_reporting_job(
        self,
        scenario: str = "completed",
        job_identifier: str | None = None,
        dataset: str = "conversation",
        **options: object,
    ) -> str:
        """Register a reporting job of `dataset` (every attribute of it, by qualified id) behaving as `scenario`
        (its `completed` is spelled `complete`); served on the reporting paths only. Returns its id."""
        if dataset not in _DATASETS_BY_ID:
            raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(_DATASETS_BY_ID)}")
        with self._lock:
            if job_identifier is not None and (
                not job_identifier or "/" in job_identifier or job_identifier in self._jobs
            ):
                raise ValueError(f"job_identifier {job_identifier!r} is empty, has '/', or exists")
            job_id = job_identifier or self._new_id()
            job = _build_job(scenario, job_id, options, self.clock(), kind=_REPORTING)
            job.dataset = dataset
            job.columns = tuple(a["qualified_id"] for a in _attributes_of(dataset))
            if scenario != "not_found":
                self._register(job)
            return job_id

    def job_status(self, job_identifier: str) -> str | None:
        """The job's current internal status (the last one served, or its first step); None if unknown."""
        with self._lock:
            job = self._jobs.get(job_identifier)
            return None if job is None else job.status

    def job_info(self, job_identifier: str) -> dict[str, object] | None:
        with self._lock:
            job = self._jobs.get(job_identifier)
            return None if job is None else self._info(job)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every API request so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, job_identifier: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._requests if r.job_identifier == job_identifier]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    @property
    def creates(self) -> list[CreateRecord]:
        """A snapshot of every authenticated create so far (the range asked for and the answer), oldest first."""
        with self._lock:
            return list(self._creates)

    def tokens_seen(self) -> set[str]:
        """Every distinct credential presented in an Authorization header, accepted or not (token isolation)."""
        with self._lock:
            return set(self._tokens_seen)

    @property
    def peak_active_exports(self) -> int:
        """The most API-created content jobs active at once, counted at each successful create (1 while the
        rule holds)."""
        with self._lock:
            return self._peak_active

    @property
    def active_exports(self) -> list[str]:
        """Ids of the API-created content jobs active now (pending or in progress as last served)."""
        with self._lock:
            return [j.job_identifier for j in self._jobs.values() if self._counts(j, _CONTENT)]

    @property
    def enqueues(self) -> list[EnqueueRecord]:
        """A snapshot of every authenticated reporting enqueue so far (what was asked and the answer), oldest first."""
        with self._lock:
            return list(self._enqueues)

    @property
    def peak_pending_reporting(self) -> int:
        """The most API-enqueued reporting jobs pending at once, counted at each successful enqueue (<= 5)."""
        with self._lock:
            return self._peak_pending_reporting

    @property
    def pending_reporting(self) -> list[str]:
        """Ids of the API-enqueued reporting jobs pending now (pending or in progress as last served)."""
        with self._lock:
            return [j.job_identifier for j in self._jobs.values() if self._counts(j, _REPORTING)]

    def set_rate_limit(self, limit: int, window_seconds: float = 10.0) -> None:
        """Enforce `limit` API calls per aligned window: the call over it gets a real 429."""
        if limit < 0 or window_seconds <= 0:
            raise ValueError("limit must be >= 0 and window_seconds > 0")
        with self._lock:
            self._rl_limit = limit
            self._rl_window = float(window_seconds)
            self._rl_enforced = True
            self._rl_start = -1.0
            self._rl_count = 0

    def set_create_scenario(self, scenario: str = "completed", **options: object) -> None:
        """How jobs created through `POST /export/content/data` behave from now on."""
        _build_job(scenario, "validation", options, self.clock())
        with self._lock:
            self._create_scenario = (scenario, dict(options))

    def queue_create_scenarios(self, *scenarios: str | tuple[str, Mapping[str, object]]) -> None:
        """Queue how the next successful creates behave, one each in order (a name, or (name, options));
        once the queue is empty creates fall back to set_create_scenario's. E.g. ("failed", "completed"):
        a window's first export fails and its retry completes."""
        parsed = self._checked_scenarios(scenarios)
        with self._lock:
            self._create_queue.extend(parsed)

    @property
    def queued_create_scenarios(self) -> list[str]:
        """Names of the create scenarios still queued, next first."""
        with self._lock:
            return [scenario for scenario, _ in self._create_queue]

    def set_reporting_scenario(self, scenario: str = "completed", **options: object) -> None:
        """How jobs enqueued through `POST /export/reporting_data/enqueue` behave from now on (default
        "completed", whose finished word is `complete` for reporting jobs)."""
        _build_job(scenario, "validation", options, self.clock(), kind=_REPORTING)
        with self._lock:
            self._reporting_scenario = (scenario, dict(options))

    def queue_reporting_scenarios(self, *scenarios: str | tuple[str, Mapping[str, object]]) -> None:
        """Queue how the next successful reporting enqueues behave, one each in order (a name, or (name,
        options)); then set_reporting_scenario's applies. Separate from the content create queue."""
        parsed = self._checked_scenarios(scenarios, kind=_REPORTING)
        with self._lock:
            self._reporting_queue.extend(parsed)

    def _checked_scenarios(
        self, scenarios: tuple[str | tuple[str, Mapping[str, object]], ...], kind: str = _CONTENT
    ) -> list[_Scenario]:
        """Each (name, options) checked by building a job from it: one bad scenario queues nothing."""
        parsed: list[_Scenario] = []
        for item in scenarios:
            scenario, options = (item, {}) if isinstance(item, str) else item
            _build_job(scenario, "validation", options, self.clock(), kind)
            parsed.append((scenario, dict(options)))
        return parsed

    @property
    def queued_reporting_scenarios(self) -> list[str]:
        """Names of the reporting scenarios still queued, next first."""
        with self._lock:
            return [scenario for scenario, _ in self._reporting_queue]

    # ---- internals (callers hold self._lock unless noted) ---------------------------------------------

    def _new_id(self) -> str:
        while True:
            job_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))
            if job_id not in self._jobs:
                return job_id

    @staticmethod
    def _counts(job: _Job, kind: str) -> bool:
        """Whether `job` holds one of the workspace's active slots of family `kind` (API-created and running)."""
        return job.kind == kind and job.created_via_api and job.status in _ACTIVE

    def _register(self, job: _Job) -> None:
        self._set_status(job, job.steps[0])
        self._jobs[job.job_identifier] = job

    def _set_status(self, job: _Job, status: str) -> None:
        job.status = status
        if status in _COMPLETE and job.completed_at is None:
            job.completed_at = self.clock()

    def _expires_at(self, job: _Job) -> float | None:
        return None if job.completed_at is None else job.completed_at + job.expires_in

    def _model(self, job: _Job) -> dict[str, str]:
        url = expires = ""
        expires_at = self._expires_at(job)
        if job.status in _COMPLETE and expires_at is not None:
            origin = job.download_origin or self.base_url
            url = job.download_url or f"{origin}{self._download_path(job)}"
            expires = str(int(expires_at))
        return {
            "job_identifier": job.job_identifier,
            "status": job.status,
            "download_url": url,
            "download_expires_at": expires,
        }

    def _download_path(self, job: _Job) -> str:
        """The download path (and query) of `job`'s family."""
        job_id = quote(job.job_identifier, safe="")
        if job.kind == _REPORTING:
            return f"{_REPORTING_DOWNLOAD_PREFIX}{job_id}?app_id={quote(self.app_id, safe='')}"
        return f"/download/content/data/{job.job_identifier}"

    def _info(self, job: _Job) -> dict[str, object]:
        return {
            "job_identifier": job.job_identifier,
            "kind": job.kind,
            "dataset": job.dataset,
            "scenario": job.scenario,
            "options": job.options,
            "status": job.status,
            "steps": list(job.steps),
            "canceled": job.canceled,
            "created_via_api": job.created_via_api,
            "status_calls": job.status_calls,
            "download_attempts": job.download_attempts,
            "completed_at": job.completed_at,
            "download_expires_at": self._expires_at(job),
            "faults_used": dict(job.faults_used),
            "download_faults_used": dict(job.download_faults_used),
        }

    def _count_call(self) -> tuple[dict[str, str], bool]:
        """Count one authenticated call in the current aligned window: (rate-limit headers, exceeded)."""
        now = self.clock()
        start = math.floor(now / self._rl_window) * self._rl_window
        if start != self._rl_start:
            self._rl_start, self._rl_count = start, 0
        self._rl_count += 1
        headers = {
            "X-RateLimit-Limit": str(self._rl_limit),
            "X-RateLimit-Remaining": str(max(0, self._rl_limit - self._rl_count)),
            "X-RateLimit-Reset": str(math.ceil(start + self._rl_window)),
        }
        return headers, self._rl_enforced and self._rl_count > self._rl_limit

    def _rate_limit_message(self) -> str:
        window = self._rl_window
        shown = str(int(window)) if window.is_integer() else str(window)
        return f"Exceeded rate limit of {self._rl_limit} in {shown}_seconds"

    # ---- HTTP entry points (called by the handler without the lock) ------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _api(self, method: str, path: str, headers: Mapping[str, str], body: bytes, query: str = "") -> _Reply:
        reply = self._authorized_api(method, path, headers, body, query)
        if method == "POST" and path == _CREATE_PATH and reply.code != 401:
            self._record_create(body, reply)
        if method == "POST" and path == _ENQUEUE_PATH and reply.code != 401:
            self._record_enqueue(body, reply)
        return reply

    def _record_enqueue(self, body: bytes, reply: _Reply) -> None:
        try:
            payload: object = json.loads(body or b"null")
        except ValueError:
            payload = None
        fields = payload if isinstance(payload, dict) else {}
        dataset_id = fields.get("dataset_id")
        attribute_ids = fields.get("attribute_ids")
        record = EnqueueRecord(
            job_identifier=str(json.loads(reply.body)["job_identifier"]) if reply.code == 200 else None,
            dataset_id=dataset_id if isinstance(dataset_id, str) else None,
            attribute_ids=(
                tuple(attribute_ids)
                if isinstance(attribute_ids, list) and all(isinstance(a, str) for a in attribute_ids)
                else None
            ),
            start_time=_unix_field(payload, "start_time"),
            end_time=_unix_field(payload, "end_time"),
            status_code=reply.code,
            time=self.clock(),
        )
        with self._lock:
            self._enqueues.append(record)

    def _record_create(self, body: bytes, reply: _Reply) -> None:
        try:
            payload: object = json.loads(body or b"null")
        except ValueError:
            payload = None
        job_id: str | None = None
        if reply.code == 200:
            job_id = str(json.loads(reply.body)["job_identifier"])
        record = CreateRecord(
            job_identifier=job_id,
            created_at_after=_unix_field(payload, "created_at_after"),
            created_at_before=_unix_field(payload, "created_at_before"),
            status_code=reply.code,
            time=self.clock(),
        )
        with self._lock:
            self._creates.append(record)

    def _authorized_api(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, query: str = ""
    ) -> _Reply:
        raw = (headers.get("authorization") or "").strip()
        scheme, _, credential = raw.partition(" ")
        if raw:
            with self._lock:
                # The credential alone for Bearer; any other scheme's whole value, so no token goes unseen.
                self._tokens_seen.add(credential.strip() if scheme.lower() == "bearer" else raw)
        if self.open_downloads and method == "GET" and path.startswith("/download/"):
            return self._route(method, path, headers, body, query)  # no token, no rate window: a storage host
        if scheme.lower() != "bearer" or credential.strip() != self.token:
            return _error(401, "unauthorized", "Access Token Invalid")  # no rate-limit headers, like Intercom
        with self._lock:
            rate_headers, exceeded = self._count_call()
            message = self._rate_limit_message()
        reply = (
            _error(429, "rate_limit_exceeded", message) if exceeded else self._route(method, path, headers, body, query)
        )
        for name, value in rate_headers.items():
            reply.headers.setdefault(name, value)  # a scenario's own 429 keeps its Reset
        return reply

    def _route(self, method: str, path: str, headers: Mapping[str, str], body: bytes, query: str = "") -> _Reply:
        job_id = _job_id_of(path)
        if method == "POST" and path == _CREATE_PATH:
            return self._create(body)
        if method == "GET" and path == _DATASETS_PATH:
            return _json_reply(200, {"type": "list", "data": list(DATASETS)})
        if method == "POST" and path == _ENQUEUE_PATH:
            return self._enqueue(body)
        if job_id is None:
            return _unknown_resource()
        if method == "GET" and path.startswith("/export/content/data/"):
            return self._status(job_id)
        if method == "POST" and path.startswith("/export/cancel/"):
            return self._cancel(job_id)
        if method == "GET" and path.startswith("/download/content/data/"):
            return self._download(job_id, headers.get("accept") or "")
        if method == "GET" and path.startswith(_REPORTING_STATUS_PREFIX):
            return self._reporting_status(job_id, parse_qs(query))
        if method == "GET" and path.startswith(_REPORTING_DOWNLOAD_PREFIX):
            return self._reporting_download(job_id, headers.get("accept") or "", parse_qs(query))
        return _unknown_resource()

    def _create(self, body: bytes) -> _Reply:
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            return _error(400, "bad_request", "Request body is not valid JSON")
        if not isinstance(payload, dict):
            return _error(400, "bad_request", "Request body must be a JSON object")
        for name in ("created_at_after", "created_at_before"):
            value = payload.get(name)
            if value is None:
                return _error(400, "bad_request", f"{name} is required")
            if not isinstance(value, int) or isinstance(value, bool):
                return _error(400, "bad_request", f"{name} must be an integer unix timestamp")
        if payload["created_at_after"] > payload["created_at_before"]:
            return _error(400, "bad_request", "created_at_after must not be later than created_at_before")
        with self._lock:
            # Canceled, failed, no_data and completed jobs are not _ACTIVE: they free the workspace's slot.
            # Reporting jobs have their own limit (_enqueue) and never count here.
            if any(self._counts(j, _CONTENT) for j in self._jobs.values()):
                return _error(429, "rate_limit_exceeded", _ONE_ACTIVE_MESSAGE)
            scenario, options = self._create_queue.pop(0) if self._create_queue else self._create_scenario
            job = _build_job(scenario, self._new_id(), options, self.clock())
            job.created_via_api = True
            self._register(job)
            active = sum(1 for j in self._jobs.values() if self._counts(j, _CONTENT))
            self._peak_active = max(self._peak_active, active)
            return _json_reply(200, self._model(job))

    def _enqueue(self, body: bytes) -> _Reply:
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            return _error(400, "bad_request", "Request body is not valid JSON")
        if not isinstance(payload, dict):
            return _error(400, "bad_request", "Request body must be a JSON object")
        checked = _check_enqueue(payload)
        if isinstance(checked, _Reply):
            return checked
        dataset, columns, time_range = checked
        with self._lock:
            # Only pending/in_progress API-enqueued reporting jobs count; content exports never do.
            if sum(1 for j in self._jobs.values() if self._counts(j, _REPORTING)) >= _MAX_PENDING_REPORTING:
                return _error(429, "rate_limit_exceeded", _FIVE_PENDING_MESSAGE)
            queued = self._reporting_queue.pop(0) if self._reporting_queue else self._reporting_scenario
            job = _build_job(queued[0], self._new_id(), queued[1], self.clock(), kind=_REPORTING)
            job.created_via_api = True
            job.dataset, job.columns, job.time_range = dataset, columns, time_range
            self._register(job)
            pending = sum(1 for j in self._jobs.values() if self._counts(j, _REPORTING))
            self._peak_pending_reporting = max(self._peak_pending_reporting, pending)
            return _json_reply(200, self._model(job))

    def _reporting_status(self, job_id: str, query: Mapping[str, list[str]]) -> _Reply:
        for name in ("app_id", "client_id"):
            if not query.get(name):
                return _error(400, "bad_request", f"{name} is required")
        if query["app_id"][0] != self.app_id:
            return _job_not_found(job_id)  # another workspace's job, as far as this one knows
        return self._status(job_id, _REPORTING)

    def _reporting_download(self, job_id: str, accept: str, query: Mapping[str, list[str]]) -> _Reply:
        if not _accepts_octet_stream(accept):
            return _error(406, "not_acceptable", "Accept header must be application/octet-stream")
        if not query.get("app_id"):
            return _error(400, "bad_request", "app_id is required")
        if query["app_id"][0] != self.app_id:
            return _job_not_found(job_id)
        return self._download(job_id, accept, _REPORTING)

    def _status(self, job_id: str, kind: str = _CONTENT) -> _Reply:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.kind != kind:
                return _job_not_found(job_id)
            job.status_calls += 1
            delay = self.status_delay
            if job.delay > 0 and _take(job.slow_count, job.slow_used):
                job.slow_used += 1
                delay += job.delay
        if delay > 0:
            self._stopping.wait(delay)  # stop() cuts a slow call short
        with self._lock:
            fault = self._status_fault(job)
            if fault is not None:
                return fault
            if not job.canceled:
                self._set_status(job, job.steps[min(job.step_calls, len(job.steps) - 1)])
            job.step_calls += 1
            model = self._model(job)
            # Documented: a job over 12 hours fails and the status call answers 504 with the JSON job model.
            return _json_reply(504 if job.status == _FAILED_AS_504 else 200, model)

    def _status_fault(self, job: _Job) -> _Reply | None:
        for name in _STATUS_FAULTS:
            used = job.faults_used.get(name, 0)
            if not _take(job.faults[name], used):
                continue
            job.faults_used[name] = used + 1
            if name == "rate_limit_count":
                reply = _error(429, "rate_limit_exceeded", self._rate_limit_message())
                reply.headers = {
                    "X-RateLimit-Limit": str(self._rl_limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(math.ceil(self.clock() + job.reset_in)),
                }
                return reply
            if name == "html_504_count":
                return _Reply(504, _HTML_504, _HTML)
            if name == "error_count":
                kind = used % 3
                if kind == 0:
                    return _error(500, "server_error", "Server Error")
                if kind == 1:
                    return _Reply(502, _HTML_502, _HTML)
                return _error(503, "service_unavailable", "Service Unavailable")
            if name == "malformed_count":
                bodies = (f'{{"job_identifier":"{job.job_identifier}","status":"in_prog'.encode(), b"", b"OK")
                return _Reply(200, bodies[used % len(bodies)])
            variants: tuple[object, ...] = (
                {"job_identifier": job.job_identifier, "status": 2, "download_url": None, "download_expires_at": 1},
                {"job_identifier": job.job_identifier},
                [{"job_identifier": job.job_identifier, "status": "completed"}],
            )
            return _json_reply(200, variants[used % len(variants)])
        return None

    def _cancel(self, job_id: str) -> _Reply:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.kind != _CONTENT:  # the reporting family has no cancel endpoint
                return _job_not_found(job_id)
            job.canceled = True
            job.status = "canceled"
            return _json_reply(200, self._model(job))

    def _download(self, job_id: str, accept: str, kind: str = _CONTENT) -> _Reply:
        if not _accepts_octet_stream(accept):
            # Deliberately strict (*/* is refused too): the official SDKs omit this header and fail live.
            return _error(406, "not_acceptable", "Accept header must be application/octet-stream")
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.kind != kind:
                return _job_not_found(job_id)
            job.download_attempts += 1
            expires_at = self._expires_at(job)
            if job.canceled or job.status not in _COMPLETE or expires_at is None:
                return _job_not_found(job_id)
            if self.clock() >= expires_at:
                return _job_not_found(job_id)  # Intercom deletes the file two days after completion
            extra = dict(job.download_headers)
            if job.redirect_location is not None:
                return _Reply(302, b"", _JSON, {**extra, "Location": job.redirect_location})
            if job.redirect_to is not None:
                location = f"{job.redirect_to.rstrip('/')}{self._download_path(job)}"
                return _Reply(302, b"", _JSON, {**extra, "Location": location})
            if job.download_gone:
                return _job_not_found(job_id)
            if job.download_status is not None:
                reply = _error(job.download_status, "download_refused", f"HTTP {job.download_status}")
                reply.headers.update(extra)
                return reply
            fault: str | None = None
            for name, limit in (("reset", job.reset_downloads), ("truncate", job.flaky_downloads)):
                used = job.download_faults_used.get(name, 0)
                if _take(limit, used):
                    job.download_faults_used[name] = used + 1
                    fault = name
                    break
            rate: float | None = None
            if job.download_rate is not None:
                used = job.download_faults_used.get("slow", 0)
                if _take(job.slow_downloads, used):
                    job.download_faults_used["slow"] = used + 1
                    rate = job.download_rate
            body = job.body
        if body is None:
            body = _make_body(job)  # built outside the lock: a big `rows` export takes a moment
            with self._lock:
                job.body = body
        suffix = "zip" if job.body_format == "zip" else "csv.gz"
        headers = {"Content-Disposition": f'attachment; filename="{job_id}.{suffix}"', **extra}
        if job.content_length is not None:
            headers["Content-Length"] = str(job.content_length)
        return _Reply(
            200,
            b"",
            "application/octet-stream",
            headers,
            stream=body,
            fault=fault,
            rate=rate,
            rate_after=job.download_rate_after,
        )

    def _control(self, method: str, path: str, query: str, body: bytes) -> _Reply:
        """Scripting over HTTP for other processes. No auth: it only ever listens on loopback."""
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            return _json_reply(400, {"error": "body is not JSON"})
        if method == "POST" and path in ("/_emulator/jobs", "/_emulator/create_scenario"):
            if not isinstance(payload, dict):
                return _json_reply(400, {"error": "body must be a JSON object"})
            options = {str(k): v for k, v in payload.items()}
            scenario = options.pop("scenario", "completed")
            try:
                if not isinstance(scenario, str):
                    raise ValueError("scenario must be a string")
                if path == "/_emulator/create_scenario":
                    self.set_create_scenario(scenario, **options)
                    return _json_reply(200, {"scenario": scenario})
                job_id = options.pop("job_identifier", None)
                if job_id is not None and not isinstance(job_id, str):
                    raise ValueError("job_identifier must be a string")
                return _json_reply(200, {"job_identifier": self.add_job(scenario, job_id, **options)})
            except ValueError as exc:
                return _json_reply(400, {"error": str(exc)})
        if method == "GET" and path == "/_emulator/jobs":
            with self._lock:
                return _json_reply(200, {"jobs": [self._info(j) for j in self._jobs.values()]})
        if method == "GET" and path.startswith("/_emulator/jobs/"):
            info = self.job_info(unquote(path.removeprefix("/_emulator/jobs/")))
            return _json_reply(404, {"error": "unknown job"}) if info is None else _json_reply(200, info)
        if path == "/_emulator/requests":
            if method == "DELETE":
                self.clear_requests()
                return _json_reply(200, {"requests": []})
            if method == "GET":
                wanted = parse_qs(query).get("job_identifier")
                recorded = self.requests_for(wanted[0]) if wanted else self.requests
                return _json_reply(200, {"requests": [r.to_dict() for r in recorded]})
        if method == "POST" and path == "/_emulator/rate_limit" and isinstance(payload, dict):
            try:
                limit = _int_opt("limit", payload.get("limit"))
                window = _float_opt("window_seconds", payload.get("window_seconds", 10.0))
                self.set_rate_limit(cast(int, limit), window)
            except ValueError as exc:
                return _json_reply(400, {"error": str(exc)})
            return _json_reply(200, {"limit": limit, "window_seconds": window})
        reply = self._control_workspace(method, path, payload)
        if reply is None:
            reply = self._control_reporting(method, path, payload)
        return _json_reply(404, {"error": f"no control endpoint {method} {path}"}) if reply is None else reply

    def _control_workspace(self, method: str, path: str, payload: object) -> _Reply | None:
        """The workspace-level control endpoints: health, the create log, the create-scenario queue."""
        if method == "GET" and path == "/_emulator/health":
            return _json_reply(200, {"ok": True, "base_url": self.base_url, "workspace": self.workspace})
        if method == "GET" and path == "/_emulator/creates":
            with self._lock:
                creates = [c.to_dict() for c in self._creates]
                peak = self._peak_active
            return _json_reply(200, {"creates": creates, "peak_active_exports": peak})
        if method == "POST" and path == "/_emulator/create_scenarios":
            # {"scenarios": ["failed", {"scenario": "completed", "rows": 3}]}: queue_create_scenarios over HTTP.
            items = payload.get("scenarios") if isinstance(payload, dict) else None
            if not isinstance(items, list):
                return _json_reply(400, {"error": 'body must be {"scenarios": [...]}'})
            try:
                queued: list[str | tuple[str, Mapping[str, object]]] = []
                for item in items:
                    options = {str(k): v for k, v in item.items()} if isinstance(item, dict) else {}
                    scenario = options.pop("scenario", "completed") if isinstance(item, dict) else item
                    if not isinstance(scenario, str):
                        raise ValueError("each scenario must be a string or an object with a string 'scenario'")
                    queued.append((scenario, options))
                self.queue_create_scenarios(*queued)
            except ValueError as exc:
                return _json_reply(400, {"error": str(exc)})
            return _json_reply(200, {"queued": self.queued_create_scenarios})
        return None

    def _control_reporting(self, method: str, path: str, payload: object) -> _Reply | None:
        """The reporting family's control endpoints: the enqueue log, its scenario and queue, scripted jobs."""
        if method == "GET" and path == "/_emulator/enqueues":
            with self._lock:
                enqueues = [e.to_dict() for e in self._enqueues]
                peak = self._peak_pending_reporting
            return _json_reply(
                200,
                {
                    "enqueues": enqueues,
                    "peak_pending_reporting": peak,
                    "app_id": self.app_id,
                    "client_id": self.client_id,
                },
            )
        if method != "POST" or path not in (
            "/_emulator/reporting_scenarios",
            "/_emulator/reporting_scenario",
            "/_emulator/reporting_jobs",
        ):
            return None
        try:
            if path == "/_emulator/reporting_scenarios":
                # {"scenarios": ["failed", {"scenario": "completed", "rows": 3}]}: queue_reporting_scenarios.
                items = payload.get("scenarios") if isinstance(payload, dict) else None
                if not isinstance(items, list):
                    raise ValueError('body must be {"scenarios": [...]}')
                self.queue_reporting_scenarios(*(_scenario_item(item) for item in items))
                return _json_reply(200, {"queued": self.queued_reporting_scenarios})
            if not isinstance(payload, dict):
                raise ValueError("body must be a JSON object")
            scenario, options = _scenario_item(payload)
            if path == "/_emulator/reporting_scenario":
                self.set_reporting_scenario(scenario, **options)
                return _json_reply(200, {"scenario": scenario})
            job_id = options.pop("job_identifier", None)
            dataset = options.pop("dataset", "conversation")
            if (job_id is not None and not isinstance(job_id, str)) or not isinstance(dataset, str):
                raise ValueError("job_identifier and dataset must be strings")
            return _json_reply(200, {"job_identifier": self.add_reporting_job(scenario, job_id, dataset, **options)})
        except ValueError as exc:
            return _json_reply(400, {"error": str(exc)})


def _scenario_item(item: object) -> tuple[str, dict[str, object]]:
    """A control-API scenario: a name, or an object with a string "scenario" (default "completed") and options."""
    options = {str(k): v for k, v in item.items()} if isinstance(item, dict) else {}
    scenario = options.pop("scenario", "completed") if isinstance(item, dict) else item
    if not isinstance(scenario, str):
        raise ValueError("each scenario must be a string or an object with a string 'scenario'")
    return scenario, options


def _job_id_of(path: str) -> str | None:
    if path in (_DATASETS_PATH, _ENQUEUE_PATH):
        return None
    prefixes = ("/export/content/data/", "/export/cancel/", "/download/content/data/")
    for prefix in (*prefixes, _REPORTING_STATUS_PREFIX, _REPORTING_DOWNLOAD_PREFIX):
        if path.startswith(prefix):
            rest = path.removeprefix(prefix)
            if rest and "/" not in rest:
                return unquote(rest)
    return None


def _accepts_octet_stream(accept: str) -> bool:
    return "application/octet-stream" in {part.split(";")[0].strip().lower() for part in accept.split(",")}


def _check_enqueue(payload: Mapping[str, object]) -> _Reply | tuple[str, tuple[str, ...], tuple[int, int]]:
    """An enqueue body's (dataset, attribute ids as sent, (start_time, end_time)), or its 400."""
    dataset_id = payload.get("dataset_id")
    if dataset_id is None or dataset_id == "":
        return _error(400, "bad_request", "dataset_id is required")
    if not isinstance(dataset_id, str) or dataset_id not in _DATASETS_BY_ID:
        return _error(400, "bad_request", f"Unknown dataset_id: {dataset_id}")
    attribute_ids = payload.get("attribute_ids")
    if attribute_ids is None:
        return _error(400, "bad_request", "attribute_ids is required")
    if not isinstance(attribute_ids, list):
        return _error(400, "bad_request", "attribute_ids must be an array of attribute ids")
    if not attribute_ids:
        return _error(400, "bad_request", "attribute_ids must not be empty")
    known = {a["qualified_id"] for a in _attributes_of(dataset_id)} | {a["id"] for a in _attributes_of(dataset_id)}
    for attribute in attribute_ids:
        if not isinstance(attribute, str) or attribute not in known:
            return _error(400, "bad_request", f"Unknown attribute_id for dataset {dataset_id}: {attribute}")
    for name in ("start_time", "end_time"):
        value = payload.get(name)
        if value is None:
            return _error(400, "bad_request", f"{name} is required")
        if not isinstance(value, int) or isinstance(value, bool):
            return _error(400, "bad_request", f"{name} must be an integer unix timestamp")
    start, end = cast(int, payload["start_time"]), cast(int, payload["end_time"])
    if start > end:
        return _error(400, "bad_request", "start_time must not be later than end_time")
    return dataset_id, tuple(cast(list[str], attribute_ids)), (start, end)


# --------------------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------------------


class _Pacer:
    """Writes a download body at `rate` bytes/s after `after` bytes at full speed (a slow or stalling link)."""

    def __init__(self, rate: float, after: int, stopping: threading.Event) -> None:
        self._rate = rate
        self._free = after
        self._stopping = stopping
        self._slice = max(1, min(16 * 1024, int(rate / 20)))  # ~20 writes a second keep the pace smooth
        self._paced = 0
        self._started: float | None = None

    def write(self, out: io.BufferedIOBase, data: bytes) -> bool:
        """Write `data` at the pace; False if the emulator began stopping meanwhile."""
        view = memoryview(data)
        if self._free > 0:
            head, view = view[: self._free], view[self._free :]
            out.write(head)
            self._free -= len(head)
        for start in range(0, len(view), self._slice):
            if self._started is None:
                self._started = time.monotonic()
            wait = self._started + self._paced / self._rate - time.monotonic()
            if wait > 0 and self._stopping.wait(wait):
                return False
            piece = view[start : start + self._slice]
            out.write(piece)
            out.flush()
            self._paced += len(piece)
        return True


class _Handler(LoopbackHandler[IntercomEmulator]):
    server_version = "IntercomEmulator/1.0"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        body = self._read_body()
        if body is None:
            return
        parts = urlsplit(self.path)
        emulator = self.owner
        try:
            if parts.path.startswith("/_emulator/"):
                reply = emulator._control(method, parts.path, parts.query, body)
            else:
                emulator._record(
                    RecordedRequest(
                        method=method,
                        path=self.path,
                        headers=dict(self.headers.items()),
                        time=emulator.clock(),
                        client=f"{self.client_address[0]}:{self.client_address[1]}",
                        job_identifier=_job_id_of(parts.path),
                        body=body,
                    )
                )
                lowered = {k.lower(): v for k, v in self.headers.items()}
                reply = emulator._api(method, parts.path, lowered, body, parts.query)
        except Exception:
            _LOG.exception("intercom emulator: failed to handle %s %s", method, self.path)
            reply = _error(500, "server_error", "emulator failure")
        self._write(reply)

    def _read_body(self) -> bytes | None:
        """The whole request body (so keep-alive stays in sync), or None after answering an error."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        raw = self.headers.get("Content-Length")
        if not raw:
            return b""
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0 or length > _MAX_REQUEST_BODY:
            self.close_connection = True
            self._write(_error(400, "bad_request", "invalid or too large Content-Length"))
            return None
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes | None:
        data = bytearray()
        try:
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(data)
                if len(data) + size > _MAX_REQUEST_BODY:
                    raise ValueError("body too large")
                data += self.rfile.read(size)
                self.rfile.readline(1024)
        except ValueError:
            self.close_connection = True
            self._write(_error(400, "bad_request", "invalid chunked body"))
            return None

    def _write(self, reply: _Reply) -> None:
        size = reply.stream.size if reply.stream is not None else len(reply.body)
        announced = reply.headers.get("Content-Length", str(size))
        if announced != str(size):
            self.close_connection = True  # a lying length: end the body with the connection, as a broken server
        self.send_response(reply.code)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", announced)
        for name, value in reply.headers.items():
            if name.lower() != "content-length":
                # Raw UTF-8 on the wire, as a hostile server may send it (http.server only encodes latin-1).
                self.send_header(name, value.encode("utf-8").decode("latin-1"))
        self.end_headers()
        if reply.stream is None:
            if reply.body:
                self.wfile.write(reply.body)
            return
        limit = size if reply.fault is None else size // 2
        pacer = _Pacer(reply.rate, reply.rate_after, self.owner._stopping) if reply.rate else None
        sent = 0
        for chunk in reply.stream.chunks():
            piece = chunk[: limit - sent] if sent + len(chunk) > limit else chunk
            if piece:
                if pacer is None:
                    self.wfile.write(piece)
                elif not pacer.write(self.wfile, piece):
                    self.close_connection = True  # the emulator is stopping: give up on the slow body
                    return
                sent += len(piece)
            if sent >= limit:
                break
        if reply.fault == "truncate":
            self.close_connection = True  # a clean FIN short of Content-Length
        elif reply.fault == "reset":
            self._reset_connection()

    def _reset_connection(self) -> None:
        """Close with SO_LINGER 0 so the kernel sends RST, as a dropped connection mid-download does."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # the makefile() reader holds a reference: without this close() would not close
        self.connection.close()


# --------------------------------------------------------------------------------------------------------
# Several workspaces
# --------------------------------------------------------------------------------------------------------


class EmulatorFleet:
    """One IntercomEmulator per workspace name, each on its own 127.0.0.1 port with its own token."""

    def __init__(
        self,
        tokens: Mapping[str, str],
        host: str = "127.0.0.1",
        clock: Callable[[], float] = time.time,
        status_delay: float = 0.0,
        app_ids: Mapping[str, str] | None = None,
        client_ids: Mapping[str, str] | None = None,
    ) -> None:
        """`app_ids` / `client_ids`: each workspace's reporting ids (a name left out gets the defaults)."""
        if not tokens:
            raise ValueError("an emulator fleet needs at least one workspace")
        self.emulators: dict[str, IntercomEmulator] = {
            name: IntercomEmulator(
                token=token,
                host=host,
                clock=clock,
                status_delay=status_delay,
                workspace=name,
                app_id=(app_ids or {}).get(name, DEFAULT_APP_ID),
                client_id=(client_ids or {}).get(name, DEFAULT_CLIENT_ID),
            )
            for name, token in tokens.items()
        }

    def base_url(self, name: str) -> str:
        return self.emulators[name].base_url

    def start(self) -> Self:
        try:
            for emulator in self.emulators.values():
                emulator.start()
        except BaseException:
            self.stop()  # no half-started fleet: the ones already listening would leak their threads
            raise
        return self

    def stop(self) -> None:
        for emulator in self.emulators.values():
            emulator.stop()  # a no-op for one never started

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_workspaces(tokens: Mapping[str, str], clock: Callable[[], float] = time.time) -> EmulatorFleet:
    """A started EmulatorFleet (stop it, or use it in `with`)."""
    return EmulatorFleet(tokens, clock=clock).start()


# --------------------------------------------------------------------------------------------------------
# Standalone
# --------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m exportwatch_local.emulator",
        description="Local Intercom data export API emulator. Prints its base URL on the first line.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (0 picks a free one; default 8765)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help=f"accepted bearer token (default {DEFAULT_TOKEN})")
    parser.add_argument("--workspace", default=DEFAULT_WORKSPACE, help="workspace label (default: default)")
    parser.add_argument("--status-delay", type=float, default=0.0, help="seconds every status call waits")
    parser.add_argument("--app-id", default=DEFAULT_APP_ID, help=f"workspace app_id (default {DEFAULT_APP_ID})")
    parser.add_argument(
        "--client-id", default=DEFAULT_CLIENT_ID, help=f"workspace client_id (default {DEFAULT_CLIENT_ID})"
    )
    args = parser.parse_args(argv)
    emulator = IntercomEmulator(
        token=args.token,
        host=args.host,
        port=args.port,
        status_delay=args.status_delay,
        workspace=args.workspace,
        app_id=args.app_id,
        client_id=args.client_id,
    )
    emulator.start()
    print(emulator.base_url, flush=True)
    done = threading.Event()
    with contextlib.suppress(ValueError):  # ValueError: not the main thread
        # SIGTERM (how test harnesses and benchmarks stop it) ends as cleanly as Ctrl-C.
        signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

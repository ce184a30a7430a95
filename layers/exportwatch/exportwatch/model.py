"""Records and states shared by the poller, the store, the notifier and the CLI."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

# The enums live with the table that gives each of their members its meaning (outcomes.py); imported from here too.
from exportwatch.outcomes import Event as Event
from exportwatch.outcomes import IntercomStatus as IntercomStatus
from exportwatch.outcomes import JobState as JobState

# Intercom job ids are short lowercase alphanumerics (e.g. "orzzsbd7hk67xyu"). We accept a little more
# (upper case, '-' and '_') so a format change on Intercom's side does not lock users out, but nothing that
# could change the URL path or a log line: no '/', whitespace, control characters, '..' or absurd lengths.
JOB_ID_MAX_LEN = 64
_JOB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_JOB_ID_CHARS_RE = re.compile(r"[A-Za-z0-9_-]+")


class InvalidJobId(ValueError):
    pass


def validate_job_id(value: object) -> str:
    """Return the id if it is a plausible Intercom job id, else raise InvalidJobId with a one-line reason."""
    if not isinstance(value, str):
        raise InvalidJobId(f"job id must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidJobId("job id is empty")
    if len(value) > JOB_ID_MAX_LEN:
        raise InvalidJobId(f"job id is {len(value)} characters long; Intercom ids are at most {JOB_ID_MAX_LEN}")
    if not _JOB_ID_RE.fullmatch(value):
        if _JOB_ID_CHARS_RE.fullmatch(value):  # only the first character is wrong: say which rule that breaks
            raise InvalidJobId(
                f"job id {value!r} must start with a letter or digit (Intercom ids are letters, digits, '-' and '_')"
            )
        raise InvalidJobId(
            f"job id {value!r} has characters Intercom ids never contain (only letters, digits, '-' and '_')"
        )
    return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    """ISO 8601 UTC with a Z suffix, second precision: what notifications and the table carry."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def human_duration(seconds: float) -> str:
    """13.2 h -> '13 hours', 290 s -> '4 minutes': whole units, rounded down, as a person says it."""
    seconds = max(0.0, seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= 2 * size:
            return f"{int(seconds // size)} {unit}s"
    if seconds >= 60:
        return f"{int(seconds // 60)} minute" + ("s" if seconds >= 120 else "")
    return f"{int(seconds)} second" + ("" if 1 <= seconds < 2 else "s")


# The strict form: what the notification contract's times look like (seconds, optional fraction, an offset).
_ISO_STRICT_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})")


def parse_iso(value: object, *, strict: bool = False) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime, or None when absent, not a string or unparsable: the one parser.

    Lenient (the table's times, written with a Z suffix): anything datetime.fromisoformat reads; a time without
    an offset is taken as UTC. `strict` (a notification's times, from a message anyone could publish): only
    YYYY-MM-DDTHH:MM:SS[.fraction] followed by Z or an offset.
    """
    if not isinstance(value, str) or not value:
        return None
    if strict and not _ISO_STRICT_RE.fullmatch(value):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 moved past the calendar's end by its offset
        return None


def human_size(n: int) -> str:
    """1536 -> '1.5 KiB'. Binary units, as S3's console shows them."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class ArchivedCopy:
    """Where a finished export now lives, and what it is."""

    bucket: str
    key: str
    size_bytes: int
    sha256: str
    content_type: str

    @property
    def s3_uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass
class Job:
    """One tracked export job: the item in the job table."""

    job_identifier: str
    state: JobState = JobState.WATCHING
    intercom_status: str | None = None
    tracked_at: str | None = None
    last_checked_at: str | None = None
    next_check_at: int | None = None
    attempts: int = 0
    download_expires_at: str | None = None
    s3_uri: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    content_type: str | None = None
    notified_at: str | None = None
    last_error: str | None = None
    outcome_reason: str | None = None
    outcome_at: str | None = None  # when the outcome was decided: a retried publish carries the same time
    completed_seen_at: str | None = None  # the first check that found the export completed (uncopied age)
    warned_expiring_at: str | None = None  # export.expiring was published (sent at most once)
    warned_stuck_at: str | None = None  # export.stuck was published (sent at most once)
    created_at_after: str | None = None
    created_at_before: str | None = None
    # The workspace whose token and host this job uses (rows written before workspaces existed read as default).
    workspace: str = "default"
    # A ledger window's job (exportwatch backfill / daily): its whole UTC days, both included, and which attempt
    # at the window it is (1 for the first export made for it). None for a job tracked by hand.
    window_start: str | None = None
    window_end: str | None = None
    window_attempt: int | None = None
    window_result: str | None = None  # windows.WindowResult, decided once when the job's state became final
    # The export family: "content" (the content data export; every row written before kinds existed) or
    # "reporting" with its dataset id (reporting.py). api_version: the Intercom-Version the job was made with.
    kind: str = "content"
    dataset: str | None = None
    api_version: str | None = None
    lease_owner: str | None = None
    lease_until: int | None = None
    ttl: int | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def reporting(self) -> bool:
        return self.kind == "reporting"

    @property
    def settled(self) -> bool:
        """Final and notified: nothing left to do for this job."""
        return self.state.is_final and self.notified_at is not None

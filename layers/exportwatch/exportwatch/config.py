"""Configuration from the environment: one settings class per entry point, each reading only what it uses.

  PollerSettings (alias Settings)  the poller Lambda and `exportwatch poll`: every variable
  SlackSettings                    the Slack notifier Lambda: SLACK_WEBHOOK_SECRET
  OperatorSettings                 `exportwatch start` and `cancel`: JOBS_TABLE and the Intercom variables
  StoreSettings                    `exportwatch track` and `list`: JOBS_TABLE

Each entry point validates its settings once, up front, and every problem is collected: one ConfigError lists
them all, one line per variable, each line starting with the variable's name. A misconfigured deployment fails
on its first invocation instead of mid-cycle, and a newcomer sees everything to fix in one run, not one
variable per run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final, TypeVar
from urllib.parse import urlsplit

from exportwatch.reporting import DATASET_RE, REPORTING_ID_RE
from exportwatch.urls import is_loopback_host

DEFAULT_API_URL = "https://api.intercom.io"
DEFAULT_INTERCOM_VERSION = "2.16"
DEFAULT_EXPORT_PREFIX = "intercom-exports/"

_TABLE_RE = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_TOPIC_ARN_RE = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")
_VERSION_RE = re.compile(r"\d+\.\d+|Unstable")
_PREFIX_RE = re.compile(r"[A-Za-z0-9!_.*'()/-]*")
_MAX_PREFIX_LEN = 900
_HOST_RE = re.compile(r"[a-z0-9_.:-]+")  # urlsplit lowercases the host; IPv6 arrives without brackets


class ConfigError(ValueError):
    """Configuration values are missing or bad.

    str() is one line per problem, each starting with its variable's name (a single problem: one line).
    `variable` is the first problem's variable; `problems` lists every (variable, problem) pair.
    """

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problems: tuple[tuple[str, str], ...] = ((variable, problem),)

    @property
    def lines(self) -> list[str]:
        return [f"{variable}: {problem}" for variable, problem in self.problems]

    @classmethod
    def combine(cls, errors: Iterable[ConfigError]) -> ConfigError:
        """One error listing every problem of `errors`, in order (each variable once)."""
        problems: list[tuple[str, str]] = []
        for error in errors:
            problems.extend(p for p in error.problems if p not in problems)
        if not problems:
            raise ValueError("no configuration problems to combine")
        combined = cls(*problems[0])
        combined.problems = tuple(problems)
        combined.args = ("\n".join(combined.lines),)
        return combined


_T = TypeVar("_T")


class _Problems:
    """Runs each check and keeps its ConfigError, so every problem is reported, not only the first."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def check(self, read: Callable[[], _T], fallback: _T) -> _T:
        try:
            return read()
        except ConfigError as exc:
            self.errors.append(exc)
            return fallback

    def raise_any(self) -> None:
        if self.errors:
            raise ConfigError.combine(self.errors)


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


# One reader per variable: each entry point's from_env picks the ones it needs, so a variable is checked the
# same way (and its problem worded the same way) wherever it is read.


def _jobs_table(e: Mapping[str, str]) -> str:
    return _matching(e, "JOBS_TABLE", _TABLE_RE, "a DynamoDB table name")


def _token_secret(e: Mapping[str, str]) -> str:
    return _required(e, "INTERCOM_TOKEN_SECRET")


def _intercom_api_url(e: Mapping[str, str]) -> str:
    return _api_url(e.get("INTERCOM_API_URL") or DEFAULT_API_URL)


def _intercom_version(e: Mapping[str, str]) -> str:
    return _matching(e, "INTERCOM_VERSION", _VERSION_RE, "an Intercom API version like 2.16", DEFAULT_INTERCOM_VERSION)


def _reporting_id(e: Mapping[str, str], name: str) -> str | None:
    """INTERCOM_APP_ID / INTERCOM_CLIENT_ID: the default workspace's ids for the reporting family (optional)."""
    value = e.get(name, "").strip()
    if not value:
        return None
    if not REPORTING_ID_RE.fullmatch(value):
        raise ConfigError(name, "must be 1 to 64 letters, digits, '_' or '-'")
    return value


def _datasets(e: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of dataset ids (empty: none)."""
    raw = e.get(name, "").strip()
    found = tuple(part.strip() for part in raw.split(",") if part.strip())
    for dataset in found:
        if not DATASET_RE.fullmatch(dataset):
            raise ConfigError(name, f"{dataset[:40]!r} is not a dataset id (lowercase letters, digits and '_')")
    return found


def _daily_datasets_usable(settings: PollerSettings) -> None:
    """Daily reporting windows need a first day and the ids the reporting status call requires."""
    if not settings.default_daily_datasets:
        return
    if settings.default_daily_start is None:
        raise ConfigError("DEFAULT_DAILY_DATASETS", "needs DEFAULT_DAILY_START (the first day to archive)")
    if not (settings.intercom_app_id and settings.intercom_client_id):
        raise ConfigError("DEFAULT_DAILY_DATASETS", "needs INTERCOM_APP_ID and INTERCOM_CLIENT_ID")


def _http_timeout(e: Mapping[str, str]) -> float:
    return float(_int(e, "HTTP_TIMEOUT_SECONDS", 30, 1, 900))


@dataclass(frozen=True)
class StoreSettings:
    """`exportwatch track` and `exportwatch list`: the job table, nothing else."""

    jobs_table: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StoreSettings:
        e, p = _env(env), _Problems()
        settings = cls(jobs_table=p.check(lambda: _jobs_table(e), ""))
        p.raise_any()
        return settings


@dataclass(frozen=True)
class OperatorSettings:
    """`exportwatch start` and `exportwatch cancel`: the job table and Intercom (no bucket, no topic)."""

    jobs_table: str
    intercom_token_secret: str
    intercom_api_url: str = DEFAULT_API_URL
    intercom_version: str = DEFAULT_INTERCOM_VERSION
    http_timeout_seconds: float = 30.0
    intercom_app_id: str | None = None
    intercom_client_id: str | None = None

    @property
    def intercom_pool_size(self) -> int:
        return 1  # one command, one request at a time

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        e, p = _env(env), _Problems()
        settings = cls(
            jobs_table=p.check(lambda: _jobs_table(e), ""),
            intercom_token_secret=p.check(lambda: _token_secret(e), ""),
            intercom_api_url=p.check(lambda: _intercom_api_url(e), ""),
            intercom_version=p.check(lambda: _intercom_version(e), ""),
            http_timeout_seconds=p.check(lambda: _http_timeout(e), 0.0),
            intercom_app_id=p.check(lambda: _reporting_id(e, "INTERCOM_APP_ID"), None),
            intercom_client_id=p.check(lambda: _reporting_id(e, "INTERCOM_CLIENT_ID"), None),
        )
        p.raise_any()
        return settings


@dataclass(frozen=True)
class PollerSettings:
    """The poller (the Lambda and `exportwatch poll`): every variable."""

    jobs_table: str
    export_bucket: str
    notify_topic_arn: str
    intercom_token_secret: str
    intercom_api_url: str = DEFAULT_API_URL
    intercom_version: str = DEFAULT_INTERCOM_VERSION
    export_prefix: str = DEFAULT_EXPORT_PREFIX
    poll_interval_seconds: int = 300
    lease_seconds: int = 900
    http_timeout_seconds: float = 30.0
    max_check_delay_seconds: int = 1800
    settled_ttl_days: int = 30
    poll_concurrency: int = 4
    # Early warnings (export.expiring / export.stuck). Intercom deletes a finished export after 48 hours and
    # gives up on a job that runs longer than 12 hours.
    expiry_warning_seconds: int = 12 * 3600
    stuck_after_seconds: int = 12 * 3600
    # The default workspace's daily windows (the template's DefaultDailyStart; None: off), their length, and how
    # many exports a window gets before it is failed (windows.judge).
    default_daily_start: date | None = None
    default_window_days: int = 1
    window_max_attempts: int = 3
    # The default workspace's reporting family: its ids (the status call needs both) and its daily datasets.
    intercom_app_id: str | None = None
    intercom_client_id: str | None = None
    default_daily_datasets: tuple[str, ...] = ()

    @property
    def intercom_pool_size(self) -> int:
        return self.poll_concurrency  # one connection per worker

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PollerSettings:
        e, p = _env(env), _Problems()
        # Each value is read through p.check: a bad one is recorded and a placeholder stands in, so the checks
        # after it still run. The placeholders never escape: raise_any() raises before the object is built.
        settings = cls(
            jobs_table=p.check(lambda: _jobs_table(e), ""),
            export_bucket=p.check(lambda: _matching(e, "EXPORT_BUCKET", _BUCKET_RE, "an S3 bucket name"), ""),
            notify_topic_arn=p.check(lambda: _matching(e, "NOTIFY_TOPIC_ARN", _TOPIC_ARN_RE, "an SNS topic ARN"), ""),
            intercom_token_secret=p.check(lambda: _token_secret(e), ""),
            intercom_api_url=p.check(lambda: _intercom_api_url(e), ""),
            intercom_version=p.check(lambda: _intercom_version(e), ""),
            export_prefix=p.check(lambda: _prefix(e.get("EXPORT_PREFIX", DEFAULT_EXPORT_PREFIX)), ""),
            poll_interval_seconds=60 * p.check(lambda: _int(e, "POLL_INTERVAL_MINUTES", 5, 1, 24 * 60), 0),
            lease_seconds=p.check(lambda: _int(e, "LEASE_SECONDS", 900, 1, 24 * 3600), 0),
            http_timeout_seconds=p.check(lambda: _http_timeout(e), 0.0),
            max_check_delay_seconds=60 * p.check(lambda: _int(e, "MAX_CHECK_DELAY_MINUTES", 30, 1, 12 * 60), 0),
            settled_ttl_days=p.check(lambda: _int(e, "SETTLED_TTL_DAYS", 30, 1, 3650), 0),
            poll_concurrency=p.check(lambda: _int(e, "POLL_CONCURRENCY", 4, 1, 64), 0),
            expiry_warning_seconds=3600 * p.check(lambda: _int(e, "EXPIRY_WARNING_HOURS", 12, 1, 47), 0),
            stuck_after_seconds=3600 * p.check(lambda: _int(e, "STUCK_AFTER_HOURS", 12, 1, 168), 0),
            default_daily_start=p.check(lambda: _day(e, "DEFAULT_DAILY_START"), None),
            default_window_days=p.check(lambda: _int(e, "DEFAULT_WINDOW_DAYS", 1, 1, 31), 0),
            window_max_attempts=p.check(lambda: _int(e, "WINDOW_MAX_ATTEMPTS", 3, 1, 10), 0),
            intercom_app_id=p.check(lambda: _reporting_id(e, "INTERCOM_APP_ID"), None),
            intercom_client_id=p.check(lambda: _reporting_id(e, "INTERCOM_CLIENT_ID"), None),
            default_daily_datasets=p.check(lambda: _datasets(e, "DEFAULT_DAILY_DATASETS"), ()),
        )
        p.check(lambda: _daily_datasets_usable(settings), None)
        p.raise_any()
        return settings


Settings = PollerSettings  # the name every module and test has imported since the first version


SLACK_WEBHOOK_SECRET_VAR: Final = "SLACK_WEBHOOK_SECRET"  # noqa: S105 - a variable name, not a secret


@dataclass(frozen=True)
class SlackSettings:
    """The Slack notifier: the Secrets Manager id of the webhook URL (never the URL itself)."""

    slack_webhook_secret: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SlackSettings:
        e, p = _env(env), _Problems()
        settings = cls(
            slack_webhook_secret=p.check(
                lambda: _required(
                    e, SLACK_WEBHOOK_SECRET_VAR, "not set (the Secrets Manager id of the Slack webhook URL)"
                ),
                "",
            ),
        )
        p.raise_any()
        return settings


def _required(env: Mapping[str, str], name: str, missing: str = "is not set") -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(name, missing)
    return value


def _matching(
    env: Mapping[str, str], name: str, pattern: re.Pattern[str], what: str, default: str | None = None
) -> str:
    value = env.get(name, "").strip() or default
    if value is None:
        raise ConfigError(name, "is not set")
    if not pattern.fullmatch(value):
        # Echo only short values: a long one may be a secret pasted into the wrong variable.
        shown = repr(value) if len(value) <= 80 else f"a {len(value)}-character value"
        raise ConfigError(name, f"{shown} is not {what}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"{raw[:40]!r} is not a whole number") from None
    if not low <= value <= high:
        raise ConfigError(name, f"{value} is outside {low}..{high}")
    return value


def _day(env: Mapping[str, str], name: str) -> date | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        if len(raw) == 10:
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise ConfigError(name, f"{raw[:40]!r} is not a day (YYYY-MM-DD)")


def _api_url(raw: str) -> str:
    name = "INTERCOM_API_URL"
    try:
        parts = urlsplit(raw.strip())
        host = parts.hostname
    except ValueError:  # e.g. "https://[abc": an unbalanced IPv6 literal
        raise ConfigError(name, f"{raw[:80]!r} is not an http(s) URL") from None
    if parts.scheme not in ("https", "http") or not host or not _HOST_RE.fullmatch(host):
        raise ConfigError(name, f"{raw[:80]!r} is not an http(s) URL")
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ConfigError(name, "must be a bare origin like https://api.intercom.io (no path, query or credentials)")
    if parts.scheme == "http" and not is_loopback_host(host):
        # The bearer token would cross the network in clear text; plain http is only for a local emulator.
        raise ConfigError(name, "plain http is allowed only for a loopback emulator; use https")
    try:
        parts.port  # noqa: B018  (validates the port number)
    except ValueError:
        raise ConfigError(name, "has an invalid port") from None
    return f"{parts.scheme}://{parts.netloc}"


def _prefix(raw: str) -> str:
    name = "EXPORT_PREFIX"
    value = raw.strip()
    if not _PREFIX_RE.fullmatch(value) or value.startswith("/") or ".." in value or "//" in value:
        raise ConfigError(name, f"{value[:80]!r} is not a safe S3 key prefix (letters, digits, '/', '-', '_', '.')")
    if value and not value.endswith("/"):
        value += "/"
    if len(value) > _MAX_PREFIX_LEN:
        # S3 keys are at most 1024 bytes and a key is <prefix><job id (<= 64)>.<ext>: every copy would fail.
        raise ConfigError(name, f"is {len(value)} characters long; at most {_MAX_PREFIX_LEN} leave room for the key")
    return value


REGION_VARIABLES = ("AWS_DEFAULT_REGION", "AWS_REGION")


def region_from_env(env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """(variable, region) from AWS_DEFAULT_REGION, else AWS_REGION; None when neither is set.

    botocore reads only AWS_DEFAULT_REGION, while Lambda, the AWS CLI v2 docs and most SDKs also know AWS_REGION:
    a newcomer who sets AWS_REGION alone must not get botocore's NoRegionError.
    """
    e = _env(env)
    for name in REGION_VARIABLES:
        value = e.get(name, "").strip()
        if value:
            return name, value
    return None

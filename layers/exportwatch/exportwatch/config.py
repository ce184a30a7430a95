"""Configuration from the environment, the same for the Lambda and the CLI.

Every value is validated once, up front, and every problem is collected: one ConfigError lists them all, one
line per variable, each line starting with the variable's name. A misconfigured deployment fails on its first
invocation instead of mid-cycle, and a newcomer sees everything to fix in one run, not one variable per run.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

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


@dataclass(frozen=True)
class Settings:
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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        p = _Problems()
        # Each value is read through p.check: a bad one is recorded and a placeholder stands in, so the checks
        # after it still run. The placeholders never escape: raise_any() raises before the object is built.
        settings = cls(
            jobs_table=p.check(lambda: _matching(e, "JOBS_TABLE", _TABLE_RE, "a DynamoDB table name"), ""),
            export_bucket=p.check(lambda: _matching(e, "EXPORT_BUCKET", _BUCKET_RE, "an S3 bucket name"), ""),
            notify_topic_arn=p.check(lambda: _matching(e, "NOTIFY_TOPIC_ARN", _TOPIC_ARN_RE, "an SNS topic ARN"), ""),
            intercom_token_secret=p.check(lambda: _required(e, "INTERCOM_TOKEN_SECRET"), ""),
            intercom_api_url=p.check(lambda: _api_url(e.get("INTERCOM_API_URL") or DEFAULT_API_URL), ""),
            intercom_version=p.check(
                lambda: _matching(
                    e,
                    "INTERCOM_VERSION",
                    _VERSION_RE,
                    "an Intercom API version like 2.16",
                    DEFAULT_INTERCOM_VERSION,
                ),
                "",
            ),
            export_prefix=p.check(lambda: _prefix(e.get("EXPORT_PREFIX", DEFAULT_EXPORT_PREFIX)), ""),
            poll_interval_seconds=60 * p.check(lambda: _int(e, "POLL_INTERVAL_MINUTES", 5, 1, 24 * 60), 0),
            lease_seconds=p.check(lambda: _int(e, "LEASE_SECONDS", 900, 1, 24 * 3600), 0),
            http_timeout_seconds=float(p.check(lambda: _int(e, "HTTP_TIMEOUT_SECONDS", 30, 1, 900), 0)),
            max_check_delay_seconds=60 * p.check(lambda: _int(e, "MAX_CHECK_DELAY_MINUTES", 30, 1, 12 * 60), 0),
            settled_ttl_days=p.check(lambda: _int(e, "SETTLED_TTL_DAYS", 30, 1, 3650), 0),
            poll_concurrency=p.check(lambda: _int(e, "POLL_CONCURRENCY", 4, 1, 64), 0),
            expiry_warning_seconds=3600 * p.check(lambda: _int(e, "EXPIRY_WARNING_HOURS", 12, 1, 47), 0),
            stuck_after_seconds=3600 * p.check(lambda: _int(e, "STUCK_AFTER_HOURS", 12, 1, 168), 0),
        )
        p.raise_any()
        return settings


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(name, "is not set")
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
    if parts.scheme == "http" and not _is_loopback(host):
        # The bearer token would cross the network in clear text; plain http is only for a local emulator.
        raise ConfigError(name, "plain http is allowed only for a loopback emulator; use https")
    try:
        parts.port  # noqa: B018  (validates the port number)
    except ValueError:
        raise ConfigError(name, "has an invalid port") from None
    return f"{parts.scheme}://{parts.netloc}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    e = os.environ if env is None else env
    for name in REGION_VARIABLES:
        value = e.get(name, "").strip()
        if value:
            return name, value
    return None

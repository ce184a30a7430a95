"""Workspaces: who an export belongs to, and the rules a workspace's name, host and token secret follow.

A workspace is one Intercom workspace: its own API host and its own token (a Secrets Manager secret). The one named
`default` is what the environment describes (INTERCOM_API_URL, INTERCOM_TOKEN_SECRET), so a single-workspace setup
needs no registry entry; the others are registered with `exportwatch workspace add` and kept in the jobs table
(ledger.py). Every rule here is checked again when a record is read back: the table can hold anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlsplit

from exportwatch.urls import is_loopback_host

DEFAULT_WORKSPACE = "default"
NAME_RULE = "[a-z0-9][a-z0-9-]{0,62}"
NAME_RE = re.compile(NAME_RULE)
# Intercom's three regional API hosts (US, EU, AU): a workspace's token goes to one of these, or to a loopback
# emulator for local runs, and nowhere else.
INTERCOM_HOSTS = ("api.intercom.io", "api.eu.intercom.io", "api.au.intercom.io")
# A Secrets Manager secret name (letters, digits, /_+=.@-) or its ARN.
SECRET_ID_RE = re.compile(
    r"[A-Za-z0-9/_+=.@-]{1,512}|arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}"
)
MAX_WINDOW_DAYS = 31


class InvalidWorkspace(ValueError):
    """A workspace's name, API URL, token secret or schedule breaks its rule; str() says which and why."""


def _shown(value: str, limit: int = 80) -> str:
    return repr(value) if len(value) <= limit else f"a {len(value)}-character value"


def validate_name(value: object) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        shown = _shown(value) if isinstance(value, str) else type(value).__name__
        raise InvalidWorkspace(
            f"workspace name {shown} must be 1 to 63 lowercase letters, digits and '-', starting with a letter or digit"
        )
    return value


def validate_api_url(value: object) -> str:
    """The workspace's API origin (scheme://host[:port]): Intercom's US, EU or AU host over https, or a loopback
    emulator (plain http allowed only there, as for INTERCOM_API_URL)."""
    if not isinstance(value, str):
        raise InvalidWorkspace("--api-url must be a URL")
    raw = value.strip()
    try:
        parts = urlsplit(raw)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise InvalidWorkspace(f"--api-url {_shown(raw)} is not an http(s) URL") from None
    if parts.scheme not in ("https", "http") or not host or "\\" in raw or not raw.isascii():
        raise InvalidWorkspace(f"--api-url {_shown(raw)} is not an http(s) URL")
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise InvalidWorkspace("--api-url must be a bare origin like https://api.eu.intercom.io (no path or query)")
    if is_loopback_host(host):
        return f"{parts.scheme}://{parts.netloc}"
    if host not in INTERCOM_HOSTS or parts.scheme != "https" or port not in (None, 443):
        raise InvalidWorkspace(
            f"--api-url {_shown(raw)} is not an Intercom API host: use https://{INTERCOM_HOSTS[0]} (US), "
            f"https://{INTERCOM_HOSTS[1]} (EU) or https://{INTERCOM_HOSTS[2]} (AU), or a loopback URL for local runs"
        )
    return f"https://{host}"


def validate_secret_id(value: object) -> str:
    if not isinstance(value, str) or not SECRET_ID_RE.fullmatch(value.strip()):
        raise InvalidWorkspace(
            "--token-secret must be a Secrets Manager secret name or ARN (letters, digits and /_+=.@-), "
            "never the token itself"
        )
    return value.strip()


def validate_window_days(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_WINDOW_DAYS:
        raise InvalidWorkspace(f"--window-days must be a whole number from 1 to {MAX_WINDOW_DAYS}")
    return value


@dataclass(frozen=True)
class Workspace:
    """One workspace's configuration: where its exports come from, and its daily schedule (if any)."""

    name: str
    api_url: str
    token_secret: str
    daily: bool = False
    start: date | None = None  # the first day of the daily schedule
    window_days: int = 1
    # The reporting family (reporting.py): the workspace's ids, and the datasets archived daily from `start`.
    app_id: str | None = None
    client_id: str | None = None
    daily_datasets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.daily or self.daily_datasets) and self.start is None:
            raise InvalidWorkspace("--daily and --daily-dataset need --start YYYY-MM-DD (the first day to archive)")
        if self.daily_datasets and not self.has_reporting_ids:
            raise InvalidWorkspace("--daily-dataset needs the workspace's --app-id and --client-id")

    @property
    def has_reporting_ids(self) -> bool:
        return bool(self.app_id and self.client_id)

    def to_dict(self) -> dict[str, object]:
        """`workspace list --json`: the secret's id, never its value."""
        return {
            "name": self.name,
            "api_url": self.api_url,
            "token_secret": self.token_secret,
            "daily": self.daily,
            "start": None if self.start is None else self.start.isoformat(),
            "window_days": self.window_days,
            "app_id": self.app_id,
            "client_id": self.client_id,
            "daily_datasets": list(self.daily_datasets),
        }

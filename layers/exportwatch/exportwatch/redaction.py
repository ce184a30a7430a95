"""Keeps credentials out of third-party debug logs, for every function of the package.

Our own code never logs the Intercom token or a webhook URL, but botocore logs whole response bodies at DEBUG
(a GetSecretValue answer carries the secret's value) and urllib3 logs request URLs. Whoever fetches a
credential registers it here; the filter then rewrites any record on those loggers that would show it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Final

_REDACTED: Final = "<redacted>"


class _RedactFilter(logging.Filter):
    """Rewrites log records that would show a webhook URL (or its secret path) or a secret's value."""

    _SLACK_PATH = re.compile(r"/(services|triggers|workflows)/[A-Za-z0-9_/-]+")

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, *values: str) -> None:
        with self._lock:
            self._secrets.update(v for v in values if len(v) >= 8)

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "botocore.parsers" and record.args:
            # botocore logs every response body at DEBUG, secrets' values included.
            if any(
                isinstance(a, bytes | str) and (b"SecretString" in _as_bytes(a) or b"SecretBinary" in _as_bytes(a))
                for a in _args(record.args)
            ):
                record.msg, record.args = "Response body: %s", (_REDACTED,)
            return True
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        redacted = self._SLACK_PATH.sub(lambda m: f"/{m.group(1)}/{_REDACTED}", text)
        with self._lock:
            # Longest first: a secret that contains another (a URL and its path) goes whole, leaving no tail.
            for secret in sorted(self._secrets, key=len, reverse=True):
                redacted = redacted.replace(secret, _REDACTED)
        if redacted != text:
            record.msg, record.args = redacted, None
        return True


def _args(args: object) -> Iterable[object]:
    if isinstance(args, tuple):
        return args
    if isinstance(args, Mapping):
        return args.values()
    return (args,)


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "replace")


_REDACT = _RedactFilter()
_REDACT_LOGGERS: Final = ("urllib3.connectionpool", "botocore.parsers", "botocore.endpoint", "botocore.hooks")
_installed = False
_install_lock = threading.Lock()


def install_log_redaction(*secrets: str) -> None:
    """Redact webhook URLs/paths (and `secrets`) from the third-party loggers that could print them at DEBUG."""
    global _installed
    _REDACT.add(*secrets)
    with _install_lock:
        if not _installed:
            for name in _REDACT_LOGGERS:
                logging.getLogger(name).addFilter(_REDACT)
            _installed = True


def uninstall_log_redaction() -> None:
    """Undo install_log_redaction (tests: the filters are process-wide and must not outlive their test)."""
    global _installed
    with _install_lock:
        for name in _REDACT_LOGGERS:
            logging.getLogger(name).removeFilter(_REDACT)
        _installed = False
    _REDACT.clear()

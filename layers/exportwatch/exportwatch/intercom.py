"""Client for Intercom's data export API: status, download, create, cancel.

One pooled requests.Session, a timeout on every call, urllib3's Retry for idempotent GETs hitting
500/502/503 or refused connections. The bearer token is attached per request, and only when the request
goes to the configured API origin: it never rides along on a foreign `download_url` or a redirect.
Redirects are never followed by requests itself for the same reason. Nothing here puts the token, or any
header, into an exception text.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from exportwatch.model import IntercomStatus, from_epoch

log = logging.getLogger(__name__)

MAX_JSON_BYTES = 1 << 20  # a job model is ~200 bytes; anything near this is not one
MAX_REDIRECTS = 3
USER_AGENT = "exportwatch/0.1 (+https://github.com/exportwatch/exportwatch)"


class IntercomError(Exception):
    """Base class. Messages are safe to log: they never contain the token or request headers."""


class TransientError(IntercomError):
    """5xx (including an HTML 504 from Intercom's edge), timeouts, connection errors: retry next cycle."""


class RateLimited(IntercomError):
    def __init__(self, reset_at: float, message: str = "rate limited by Intercom") -> None:
        super().__init__(f"{message}; window resets at {int(reset_at)}")
        self.reset_at = reset_at


class ActiveJobExists(IntercomError):
    """Create answered 429: Intercom allows one active export job per workspace."""


class Unauthorized(IntercomError):
    """401: the token is wrong or revoked. Every call will fail the same way until an operator fixes it."""


class BadRequest(IntercomError):
    pass


class MalformedResponse(IntercomError):
    """The body is not a job model we understand (not JSON, wrong types, unknown status)."""


class ForeignOrigin(IntercomError):
    """A download_url that is not on the API's own origin: the token is never sent there."""


class DownloadGone(IntercomError):
    """The export file is no longer downloadable (404/410): Intercom deleted it."""


class Outcome(StrEnum):
    """What a status call tells us about a job."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    NO_DATA = "no_data"
    CANCELED = "canceled"
    NOT_FOUND = "not_found"


_OUTCOMES: dict[str, Outcome] = {
    IntercomStatus.PENDING: Outcome.RUNNING,
    IntercomStatus.IN_PROGRESS: Outcome.RUNNING,
    IntercomStatus.COMPLETED: Outcome.COMPLETED,
    IntercomStatus.COMPLETE: Outcome.COMPLETED,
    IntercomStatus.FAILED: Outcome.FAILED,
    IntercomStatus.NO_DATA: Outcome.NO_DATA,
    IntercomStatus.CANCELED: Outcome.CANCELED,
}


@dataclass(frozen=True)
class StatusReport:
    job_identifier: str
    status: str  # Intercom's own word, e.g. "complete" or "completed"; "not_found" for a 404
    outcome: Outcome
    download_url: str = ""
    download_expires_at: datetime | None = None
    http_status: int = 200
    message: str = ""  # Intercom's error message, when there was one


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with default ports filled in, for same-origin comparison."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"https": 443, "http": 80}.get(scheme, 0)
    return scheme, (parts.hostname or "").lower(), port


def _clean(text: str, limit: int = 200) -> str:
    """One printable line, bounded: Intercom's messages end up in logs and notifications."""
    flat = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(flat.split())[:limit]


def parse_job(payload: object, expected_id: str | None = None, *, http_status: int = 200) -> StatusReport:
    """Turn a job model into a StatusReport, or raise MalformedResponse saying what is wrong."""
    if not isinstance(payload, dict):
        raise MalformedResponse(f"job model is a {type(payload).__name__}, not an object")
    job_id = payload.get("job_identifier", payload.get("job_identfier", expected_id))  # spec's misspelling
    if not isinstance(job_id, str) or not job_id:
        raise MalformedResponse("job model has no job_identifier string")
    if expected_id is not None and job_id != expected_id:
        raise MalformedResponse(f"asked for job {expected_id} but Intercom answered for {_clean(job_id, 64)}")
    status = payload.get("status")
    if not isinstance(status, str):
        raise MalformedResponse(f"status is {type(status).__name__}, not a string")
    outcome = _OUTCOMES.get(status)
    if outcome is None:
        raise MalformedResponse(f"unknown status {_clean(status, 40)!r}")
    url = payload.get("download_url") or ""
    if not isinstance(url, str):
        raise MalformedResponse("download_url is not a string")
    return StatusReport(
        job_identifier=job_id,
        status=status,
        outcome=outcome,
        download_url=url,
        download_expires_at=_parse_expiry(payload.get("download_expires_at")),
        http_status=http_status,
    )


def _parse_expiry(raw: object) -> datetime | None:
    # Documented as a string of epoch seconds, "" until completion; accept a number too.
    if isinstance(raw, bool):
        raise MalformedResponse("download_expires_at is a boolean")
    if raw in (None, "", 0, "0"):  # 0 is what some clients send for "not set yet"
        return None
    try:
        seconds = float(raw) if isinstance(raw, int | float | str) else None
    except (ValueError, OverflowError):  # OverflowError: an integer too large for a float
        seconds = None
    if seconds is None or not 0 < seconds < 1e11:
        try:
            shown = str(raw)
        except ValueError:  # an integer with more digits than int -> str conversion allows
            shown = type(raw).__name__
        raise MalformedResponse(f"download_expires_at {_clean(shown, 40)!r} is not epoch seconds")
    return from_epoch(seconds)


class RateGate:
    """Shared view of Intercom's rate-limit window, so concurrent workers stop before a 429, not after."""

    def __init__(self, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self._lock = threading.Lock()
        self._remaining: int | None = None
        self._reset_at = 0.0
        self._clock = clock
        self._sleep = sleep

    def observe(self, headers: Any) -> None:
        remaining, reset = headers.get("X-RateLimit-Remaining"), headers.get("X-RateLimit-Reset")
        try:
            with self._lock:
                if remaining is not None:
                    self._remaining = int(remaining)
                if reset is not None:
                    self._reset_at = float(reset)
        except ValueError:
            log.warning("ignoring unparsable rate-limit headers")

    def exhausted_until(self, reset_at: float) -> None:
        with self._lock:
            self._remaining, self._reset_at = 0, max(self._reset_at, reset_at)

    def before_call(self, max_wait: float) -> None:
        """Wait for the window to reset if it is spent and the wait is short; otherwise raise RateLimited."""
        with self._lock:
            if self._remaining is None or self._remaining > 0:
                if self._remaining is not None:
                    self._remaining -= 1
                return
            wait = self._reset_at - self._clock()
        if wait <= 0:
            with self._lock:
                self._remaining = None
            return
        if wait > max_wait:
            raise RateLimited(self._reset_at, "Intercom rate-limit window is spent")
        self._sleep(wait)
        with self._lock:
            self._remaining = None


class IntercomClient:
    def __init__(
        self,
        api_url: str,
        token: Callable[[], str],
        *,
        version: str = "2.16",
        timeout: float = 30.0,
        pool_size: int = 4,
        max_rate_wait: float = 15.0,
        session: requests.Session | None = None,
        gate: RateGate | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._origin = origin(self.api_url)
        self._token = token
        self._version = version
        # Connect fast, read patiently: a status call is small, a download can stall between chunks.
        self._timeout = (min(5.0, timeout), timeout)
        self._max_rate_wait = max_rate_wait
        self.gate = gate or RateGate()
        self.session = session or self._new_session(pool_size)

    @staticmethod
    def _new_session(pool_size: int) -> requests.Session:
        session = requests.Session()
        retry = Retry(
            total=3,
            connect=2,
            read=0,  # a read timeout is reported, not repeated inside one cycle
            status=2,
            status_forcelist=(500, 502, 503),  # never 504 (its body decides) nor 429 (its reset decides)
            allowed_methods=frozenset({"GET"}),
            backoff_factor=0.3,
            respect_retry_after_header=False,
            raise_on_status=False,
            redirect=0,
            raise_on_redirect=False,
        )
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(pool_size, 2), max_retries=retry)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.trust_env = False  # no .netrc credentials or proxy env silently added to calls
        return session

    def close(self) -> None:
        self.session.close()

    def ensure_token(self) -> None:
        """Resolve the token now, so a missing or bad secret fails the cycle at once, before any job is touched."""
        self._token()

    # -- requests -----------------------------------------------------------------------------------------

    def _headers(self, accept: str, own_origin: bool) -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": USER_AGENT}
        if own_origin:  # the token and Intercom's headers go to Intercom's own origin and nowhere else
            headers["Authorization"] = f"Bearer {self._token()}"
            headers["Intercom-Version"] = self._version
        return headers

    def _send(self, method: str, url: str, *, accept: str = "application/json", **kw: Any) -> requests.Response:
        own_origin = origin(url) == self._origin
        if own_origin:  # Intercom's rate window counts only calls to Intercom (not a redirect's other host)
            self.gate.before_call(self._max_rate_wait)
        try:
            resp = self.session.request(
                method,
                url,
                headers=self._headers(accept, own_origin),
                timeout=self._timeout,
                allow_redirects=False,
                stream=True,  # JSON is then read with a size cap, downloads without buffering
                **kw,
            )
        except requests.RequestException as exc:
            if _timed_out(exc):
                raise TransientError(f"{method} {urlsplit(url).path}: Intercom did not answer in time") from None
            raise TransientError(f"{method} {urlsplit(url).path}: {type(exc).__name__}") from None
        if own_origin:
            self.gate.observe(resp.headers)
        return resp

    def _read_json(self, resp: requests.Response) -> object:
        try:
            body = resp.raw.read(MAX_JSON_BYTES + 1, decode_content=True)
        except Exception as exc:  # urllib3 protocol errors: the body broke off
            raise TransientError(f"HTTP {resp.status_code} body could not be read: {type(exc).__name__}") from None
        finally:
            resp.close()
        if len(body) > MAX_JSON_BYTES:
            raise MalformedResponse(f"HTTP {resp.status_code} body is larger than {MAX_JSON_BYTES} bytes")
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise MalformedResponse(f"HTTP {resp.status_code} body is not JSON") from None

    def _error_text(self, resp: requests.Response, payload: object) -> str:
        if isinstance(payload, dict) and isinstance(payload.get("errors"), list) and payload["errors"]:
            first = payload["errors"][0]
            if isinstance(first, dict):
                code, message = first.get("code", ""), first.get("message", "")
                return _clean(f"{code}: {message}" if message else str(code))
        return f"HTTP {resp.status_code}"

    def _raise_for_common(self, resp: requests.Response) -> None:
        code = resp.status_code
        if code == 401:
            raise Unauthorized("Intercom rejected the access token (401): check the INTERCOM_TOKEN_SECRET value")
        if code == 429:
            raise RateLimited(self._reset_at(resp), "rate limited by Intercom (429)")
        if code >= 500:
            raise TransientError(f"Intercom answered HTTP {code}")

    def _reset_at(self, resp: requests.Response) -> float:
        try:
            reset = float(resp.headers["X-RateLimit-Reset"])
        except (KeyError, ValueError):
            reset = time.time() + 10  # windows are 10 s long
        self.gate.exhausted_until(reset)
        return reset

    def _is_json(self, resp: requests.Response) -> bool:
        return "json" in resp.headers.get("Content-Type", "").lower()

    # -- API ----------------------------------------------------------------------------------------------

    def _get(self, url: str, accept: str = "application/json") -> requests.Response:
        """GET that waits out one 429 when its window resets soon (the gate sleeps, or raises RateLimited)."""
        resp = self._send("GET", url, accept=accept)
        if resp.status_code == 429:
            self._reset_at(resp)
            resp.close()
            resp = self._send("GET", url, accept=accept)
        return resp

    def get_status(self, job_id: str) -> StatusReport:
        resp = self._get(f"{self.api_url}/export/content/data/{job_id}")
        code = resp.status_code
        if code == 504 and self._is_json(resp):
            # Intercom documents a failed job (ran over 12 h) as a 504 whose JSON body says "failed".
            payload = self._read_json(resp)
            if isinstance(payload, dict) and payload.get("status") == "failed":
                return parse_job(payload, job_id, http_status=504)
            raise TransientError("Intercom answered HTTP 504")
        if code == 404:
            payload = self._read_json(resp) if self._is_json(resp) else None
            return StatusReport(
                job_id,
                "not_found",
                Outcome.NOT_FOUND,
                http_status=404,
                message=self._error_text(resp, payload),
            )
        if code != 200:
            resp.close()
            self._raise_for_common(resp)
            raise TransientError(f"unexpected HTTP {code} from the status call")
        return parse_job(self._read_json(resp), job_id)

    def create(self, created_at_after: int, created_at_before: int) -> StatusReport:
        resp = self._send(
            "POST",
            f"{self.api_url}/export/content/data",
            json={"created_at_after": created_at_after, "created_at_before": created_at_before},
        )
        payload = self._read_json(resp) if self._is_json(resp) else None
        if resp.status_code == 429:
            text = self._error_text(resp, payload)
            if "pending" in text or "export job" in text:
                raise ActiveJobExists(
                    "Intercom allows one active export job per workspace and one is still running: "
                    "wait for it to finish (exportwatch list) or cancel it"
                )
            self._raise_for_common(resp)
        if resp.status_code == 400:
            raise BadRequest(f"Intercom refused the request: {self._error_text(resp, payload)}")
        if resp.status_code != 200:
            self._raise_for_common(resp)
            raise IntercomError(f"create answered HTTP {resp.status_code}: {self._error_text(resp, payload)}")
        return parse_job(payload)

    def cancel(self, job_id: str) -> StatusReport:
        resp = self._send("POST", f"{self.api_url}/export/cancel/{job_id}")
        payload = self._read_json(resp) if self._is_json(resp) else None
        if resp.status_code == 404:
            return StatusReport(job_id, "not_found", Outcome.NOT_FOUND, http_status=404)
        if resp.status_code != 200:
            self._raise_for_common(resp)
            raise IntercomError(f"cancel answered HTTP {resp.status_code}: {self._error_text(resp, payload)}")
        return parse_job(payload, job_id)

    @contextmanager
    def download(self, url: str) -> Iterator[requests.Response]:
        """Open the export download as a stream. The caller reads `resp.raw` (exact bytes, no decoding).

        Only a URL on the API's own origin is fetched with the token. A redirect to another origin is
        followed without any credentials (like a presigned URL), never with them.
        """
        if origin(url) != self._origin:
            raise ForeignOrigin(
                f"download_url is on {_describe_origin(url)}, not the Intercom API origin "
                f"{_describe_origin(self.api_url)}: refusing to send the token there"
            )
        resp = self._get(url, accept="application/octet-stream")
        try:
            for _ in range(MAX_REDIRECTS):
                if resp.status_code not in (301, 302, 303, 307, 308) or "Location" not in resp.headers:
                    break
                target = urljoin(url, resp.headers["Location"])
                resp.close()
                if urlsplit(target).scheme not in ("http", "https"):
                    raise TransientError("download redirected to a non-http location")
                log.info("download redirected to %s", _describe_origin(target))
                url = target
                resp = self._get(url, accept="application/octet-stream")
            if resp.status_code in (404, 410):
                raise DownloadGone(f"the download answered HTTP {resp.status_code}: the file is gone")
            if resp.status_code != 200:
                self._raise_for_common(resp)
                raise TransientError(f"the download answered HTTP {resp.status_code}")
            yield resp
        finally:
            resp.close()


def _timed_out(exc: requests.RequestException) -> bool:
    """A timeout, however requests reports it: with read retries at 0, urllib3 wraps a read timeout in
    MaxRetryError and requests turns that into a ConnectionError, not a Timeout."""
    if isinstance(exc, requests.Timeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.TimeoutError)


def _describe_origin(url: str) -> str:
    scheme, host, port = origin(url)
    return f"{scheme}://{_clean(host, 100)}:{port}"

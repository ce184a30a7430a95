"""Client for Intercom's data export API: status, download, create, cancel.

One pooled requests.Session, a timeout on every call, urllib3's Retry for idempotent GETs hitting
500/502/503 or refused connections. Every URL goes through urls.resolve first: the decision where a request
goes is made on the URL requests will send, and the bearer token is attached only when that is the configured
API origin. Redirects are followed here, never by requests: once a redirect chain leaves the API origin it never
carries the token again, and every hop but a loopback one must be https. Rate-limit headers count only from the
API origin and are clamped (ratelimit.py). Nothing here puts the token, or any header, into an exception text.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlencode

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from exportwatch.model import from_epoch, validate_job_id
from exportwatch.outcomes import HTTP_ANSWERS, Outcome, outcome_for_status
from exportwatch.ratelimit import RateGate, RateLimitWait, reset_from_headers
from exportwatch.reporting import MAX_PENDING, Dataset, parse_datasets, validate_dataset
from exportwatch.safetext import one_line
from exportwatch.urls import Origin, UnsafeUrl, resolve, resolve_location

__all__ = [
    "ActiveJobExists",
    "BadRequest",
    "DownloadGone",
    "ForeignOrigin",
    "IntercomClient",
    "IntercomError",
    "MalformedResponse",
    "NoReportingIds",
    "Outcome",
    "RateGate",
    "RateLimited",
    "StatusReport",
    "TransientError",
    "Unauthorized",
    "parse_job",
]

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


class NoReportingIds(IntercomError):
    """A reporting export of a workspace without its app_id / client_id: it cannot be asked about, never guessed."""


class ForeignOrigin(IntercomError):
    """A download_url not on the API's own origin, or any URL exportwatch refuses (urls.UnsafeUrl, plain http
    off loopback): nothing is fetched there with the token, and a refused download_url ends the job."""


class DownloadGone(IntercomError):
    """The export file is no longer downloadable (404/410): Intercom deleted it."""


# The status call's answers other than 200 that are outcomes (outcomes.HTTP_ANSWERS); the bodies are read below.
_NOT_FOUND = HTTP_ANSWERS[404]
_FAILED_504 = HTTP_ANSWERS[504]


@dataclass(frozen=True)
class StatusReport:
    job_identifier: str
    status: str  # Intercom's own word, e.g. "complete" or "completed"; "not_found" for a 404
    outcome: Outcome
    download_url: str = ""
    download_expires_at: datetime | None = None
    http_status: int = 200
    message: str = ""  # Intercom's error message, when there was one


def _clean(text: str, limit: int = 200) -> str:
    """One printable line, bounded: Intercom's messages end up in logs and notifications."""
    return one_line(text, limit)


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
    outcome = outcome_for_status(status)
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


_OCTET = "application/octet-stream"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class _Answer:
    resp: requests.Response
    origin: Origin
    own: bool  # from the API origin: only then do its rate-limit headers count
    authorized: bool  # the request carried the token (a 401 without it says nothing about the token)


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
        clock: Callable[[], float] = time.time,
        app_id: str | None = None,
        client_id: str | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._origin = resolve(self.api_url, what="INTERCOM_API_URL").origin
        self._token = token
        self._version = version
        # Connect fast, read patiently: a status call is small, a download can stall between chunks.
        self._timeout = (min(5.0, timeout), timeout)
        self._max_rate_wait = max_rate_wait
        self._clock = clock
        self.gate = gate or RateGate(clock=clock)
        # The workspace's ids for the reporting family (its status call needs both, its download the app_id).
        self.app_id, self.client_id = app_id, client_id
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

    def job_url(self, job_id: str, kind: str = "export/content/data") -> str:
        """An API URL for one job. The id is checked again (it may come from the table) and quoted."""
        return f"{self.api_url}/{kind}/{quote(validate_job_id(job_id), safe='')}"

    def download_url_for(self, job_id: str, dataset: str | None = None) -> str:
        """Where Intercom documents the download when its job model gives no download_url."""
        if dataset is not None:
            return self.job_url(job_id, "download/reporting_data") + "?" + urlencode({"app_id": self._app_id()})
        return self.job_url(job_id, "download/content/data")

    def _app_id(self) -> str:
        if not self.app_id:
            raise NoReportingIds("the workspace has no app_id: reporting exports cannot be checked or downloaded")
        return self.app_id

    def status_url(self, job_id: str, dataset: str | None = None) -> str:
        """The status call's URL: the content family's, or the reporting family's with its two required ids."""
        if dataset is None:
            return self.job_url(job_id)
        if not self.client_id:
            raise NoReportingIds("the workspace has no client_id: reporting exports cannot be checked")
        query = urlencode({"app_id": self._app_id(), "client_id": self.client_id})
        return f"{self.job_url(job_id, 'export/reporting_data')}?{query}"

    # -- requests -----------------------------------------------------------------------------------------

    def _headers(self, accept: str, with_token: bool) -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": USER_AGENT}
        if with_token:  # the token and Intercom's headers go to Intercom's own origin and nowhere else
            headers["Authorization"] = f"Bearer {self._token()}"
            headers["Intercom-Version"] = self._version
        return headers

    def _send(
        self,
        method: str,
        url: str,
        *,
        accept: str = "application/json",
        token: bool = True,
        what: str = "URL",
        body: object = None,
    ) -> _Answer:
        """One request, decided on the URL requests will send. `token`: the caller allows it (it still goes only
        to the API origin)."""
        try:
            target = resolve(url, what=what)
            if target.origin.scheme != "https" and not target.origin.is_loopback:
                raise UnsafeUrl(f"{what} on {target.origin} is plain http (https is required off loopback)")
        except UnsafeUrl as exc:
            raise ForeignOrigin(f"{exc}: refusing to fetch it (the token is never sent there)") from None
        own = target.origin == self._origin
        request = requests.Request(
            method,
            target.url,
            headers=self._headers(accept, with_token := token and own),
            json=body,
        )
        prepared = self.session.prepare_request(request)
        if resolve(prepared.url).origin != target.origin:  # cannot happen; if it ever does, send nothing
            raise ForeignOrigin(f"{what} changed origin when prepared: refusing to fetch it")
        if own:  # Intercom's rate window counts only calls to Intercom (not a redirect's other host)
            try:
                self.gate.before_call(self._max_rate_wait)
            except RateLimitWait as wait:
                raise RateLimited(wait.reset_at, "Intercom rate-limit window is spent") from None
        try:
            resp = self.session.send(prepared, timeout=self._timeout, allow_redirects=False, stream=True)
            if own:
                self.gate.observe(resp.headers)
        except requests.RequestException as exc:
            who = "Intercom" if own else f"the download host {target.origin}"
            raise TransientError(f"{method} {_path(prepared.path_url)}: {_transport_problem(exc, who)}") from None
        finally:
            if own:
                self.gate.after_call()
        return _Answer(resp, target.origin, own, with_token)

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
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise MalformedResponse(f"HTTP {resp.status_code} body is not JSON") from None

    def _error_text(self, resp: requests.Response, payload: object) -> str:
        if isinstance(payload, dict) and isinstance(payload.get("errors"), list) and payload["errors"]:
            first = payload["errors"][0]
            if isinstance(first, dict):
                code, message = first.get("code", ""), first.get("message", "")
                code = code if isinstance(code, str) else ""
                message = message if isinstance(message, str) else ""
                return _clean(f"{code}: {message}" if message else code) or f"HTTP {resp.status_code}"
        return f"HTTP {resp.status_code}"

    def _raise_for_common(self, answer: _Answer) -> None:
        code = answer.resp.status_code
        if not answer.own:  # another host's answer never speaks for Intercom: a transient failure of this job
            if code == 429:
                raise TransientError(f"the download host {answer.origin} answered HTTP 429 (rate limited)")
            return
        if code == 401 and not answer.authorized:
            raise TransientError(
                "Intercom answered 401 to a download hop that left its origin (sent without the token)"
            )
        if code == 401:
            raise Unauthorized("Intercom rejected the access token (401): check the INTERCOM_TOKEN_SECRET value")
        if code == 429:
            raise RateLimited(self._window_spent(answer.resp), "rate limited by Intercom (429)")
        if code >= 500:
            raise TransientError(f"Intercom answered HTTP {code}")

    def _window_spent(self, resp: requests.Response) -> float:
        """A 429 from Intercom: when its window resets (clamped), told to the gate. Returns the reset time."""
        reset = reset_from_headers(resp.headers, self._clock())
        self.gate.exhausted_until(reset)
        return reset

    def _is_json(self, resp: requests.Response) -> bool:
        return "json" in resp.headers.get("Content-Type", "").lower()

    # -- API ----------------------------------------------------------------------------------------------

    def _get(self, url: str, accept: str = "application/json", *, token: bool = True, what: str = "URL") -> _Answer:
        """GET that waits out one 429 from Intercom when its window resets soon (the gate sleeps, or raises
        RateLimited). A 429 from any other host is that host's business: TransientError for this job only."""
        answer = self._send("GET", url, accept=accept, token=token, what=what)
        if answer.resp.status_code == 429:
            answer.resp.close()
            if not answer.own:
                self._raise_for_common(answer)
            self._window_spent(answer.resp)
            answer = self._send("GET", url, accept=accept, token=token, what=what)
        return answer

    def get_status(self, job_id: str, dataset: str | None = None) -> StatusReport:
        """The job's status; `dataset` set: a reporting export of that dataset (its own path and ids)."""
        answer = self._get(self.status_url(job_id, dataset))
        resp, code = answer.resp, answer.resp.status_code
        if code == 504 and self._is_json(resp):
            # Intercom documents a failed job (ran over 12 h) as a 504 whose JSON body says "failed".
            payload = self._read_json(resp)
            if isinstance(payload, dict) and payload.get("status") == _FAILED_504.status:
                return parse_job(payload, job_id, http_status=504)
            raise TransientError("Intercom answered HTTP 504")
        if code == 404:
            payload = self._read_json(resp) if self._is_json(resp) else None
            return StatusReport(
                job_id,
                _NOT_FOUND.status,
                _NOT_FOUND.outcome,
                http_status=404,
                message=self._error_text(resp, payload),
            )
        if code != 200:
            resp.close()
            self._raise_for_common(answer)
            raise TransientError(f"unexpected HTTP {code} from the status call")
        return parse_job(self._read_json(resp), job_id)

    def create(self, created_at_after: int, created_at_before: int) -> StatusReport:
        body = {"created_at_after": created_at_after, "created_at_before": created_at_before}
        return self._start_export(
            "create",
            f"{self.api_url}/export/content/data",
            body,
            ("pending", "export job"),
            "Intercom allows one active export job per workspace and one is still running: "
            "wait for it to finish (exportwatch list) or cancel it",
        )

    def enqueue(self, dataset: str, attributes: tuple[str, ...], start_time: int, end_time: int) -> StatusReport:
        """Start a reporting export of `dataset` (those attributes) for the inclusive range. ActiveJobExists when the
        workspace already has five pending; BadRequest naming what Intercom refused (an unknown dataset/attribute)."""
        body = {
            "dataset_id": validate_dataset(dataset),
            "attribute_ids": list(attributes),
            "start_time": start_time,
            "end_time": end_time,
        }
        return self._start_export(
            "enqueue",
            f"{self.api_url}/export/reporting_data/enqueue",
            body,
            ("pending",),
            f"Intercom allows {MAX_PENDING} pending reporting exports per workspace and has them: wait for one to "
            "finish",
        )

    def _start_export(
        self, what: str, url: str, body: Mapping[str, object], busy_words: tuple[str, ...], busy: str
    ) -> StatusReport:
        """POST a new export (either family): the job model, or ActiveJobExists when a 429 says the workspace's
        slots are taken (its message has one of `busy_words`), BadRequest for a 400, the common errors otherwise."""
        answer = self._send("POST", url, body=body)
        resp = answer.resp
        payload = self._read_json(resp) if self._is_json(resp) else None
        if resp.status_code == 429:
            if any(word in self._error_text(resp, payload) for word in busy_words):
                raise ActiveJobExists(busy)
            self._raise_for_common(answer)
        if resp.status_code == 400:
            raise BadRequest(f"Intercom refused the request: {self._error_text(resp, payload)}")
        if resp.status_code != 200:
            self._raise_for_common(answer)
            raise IntercomError(f"{what} answered HTTP {resp.status_code}: {self._error_text(resp, payload)}")
        return parse_job(payload)

    def get_datasets(self) -> list[Dataset]:
        """The reporting datasets this workspace can export, with their attributes."""
        answer = self._get(f"{self.api_url}/export/reporting_data/get_datasets")
        resp = answer.resp
        if resp.status_code != 200:
            payload = self._read_json(resp) if self._is_json(resp) else None
            self._raise_for_common(answer)
            raise IntercomError(f"get_datasets answered HTTP {resp.status_code}: {self._error_text(resp, payload)}")
        return parse_datasets(self._read_json(resp))

    def cancel(self, job_id: str) -> StatusReport:
        answer = self._send("POST", self.job_url(job_id, "export/cancel"))
        resp = answer.resp
        payload = self._read_json(resp) if self._is_json(resp) else None
        if resp.status_code == 404:
            return StatusReport(
                job_id, _NOT_FOUND.status, _NOT_FOUND.outcome, http_status=404, message=self._error_text(resp, payload)
            )
        if resp.status_code != 200:
            self._raise_for_common(answer)
            raise IntercomError(f"cancel answered HTTP {resp.status_code}: {self._error_text(resp, payload)}")
        return parse_job(payload, job_id)

    @contextmanager
    def download(self, url: str) -> Iterator[requests.Response]:
        """Open the export download as a stream. The caller reads `resp.raw` (exact bytes, no decoding).

        Only a download_url on the API's own origin is fetched, with the token. A redirect to another origin is
        followed without any credentials (like a presigned URL), and no later hop gets them back. A URL that
        urls.resolve refuses, here or in a Location, raises ForeignOrigin before anything is sent there.
        """
        try:
            target = resolve(url, what="download_url")
        except UnsafeUrl as exc:
            raise ForeignOrigin(f"{exc}: refusing to fetch it (the token is never sent there)") from None
        if target.origin != self._origin:
            raise ForeignOrigin(
                f"download_url is on {target.origin}, not the Intercom API origin {self._origin}: "
                "refusing to send the token there"
            )
        current, token = target.url, True
        answer = self._get(current, _OCTET, what="download_url")
        try:
            for _ in range(MAX_REDIRECTS):
                if answer.resp.status_code not in _REDIRECTS or "Location" not in answer.resp.headers:
                    break
                answer.resp.close()
                try:
                    hop = resolve_location(current, answer.resp.headers["Location"])
                except UnsafeUrl as exc:
                    raise ForeignOrigin(f"the download redirected to a URL exportwatch refuses: {exc}") from None
                token = token and hop.origin == self._origin  # once off Intercom's origin, never the token again
                log.info("download redirected to %s", hop.origin)
                current = hop.url
                answer = self._get(current, _OCTET, token=token, what="redirect Location")
            resp = answer.resp
            if resp.status_code in (404, 410):
                raise DownloadGone(f"the download answered HTTP {resp.status_code}: the file is gone")
            if resp.status_code != 200:
                self._raise_for_common(answer)
                raise TransientError(f"the download answered HTTP {resp.status_code}")
            yield resp
        finally:
            answer.resp.close()


def _path(path_url: str) -> str:
    """The request's path without its query, for an error text (a presigned query carries a signature)."""
    return one_line(path_url.split("?", 1)[0], 200)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (args, urllib3's `reason`, __cause__, __context__), each once."""
    todo: list[BaseException] = [exc]
    seen: set[int] = set()
    while todo and len(seen) < 32:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = [a for a in current.args if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            inner.append(reason)
        inner += [e for e in (current.__cause__, current.__context__) if e is not None]
        todo.extend(inner)


def _transport_problem(exc: requests.RequestException, who: str) -> str:
    """What went wrong on the wire, in words: refused and timed out are different problems with different fixes.

    Checked in this order because urllib3's NewConnectionError (a refused connection) subclasses its
    ConnectTimeoutError, and with read retries at 0 a read timeout arrives wrapped in a ConnectionError.
    """
    chain = list(_causes(exc))
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return f"{who} refused the connection (nothing listens there)"
    if any(isinstance(e, urllib3.exceptions.NameResolutionError) for e in chain):
        return f"{who}: the host name does not resolve"
    if any(isinstance(e, requests.exceptions.SSLError | urllib3.exceptions.SSLError) for e in chain):
        return f"{who}: the TLS handshake failed"
    if any(isinstance(e, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError) for e in chain):
        return f"{who} did not answer in time"
    if any(isinstance(e, ConnectionResetError | urllib3.exceptions.ProtocolError) for e in chain):
        return f"{who} broke off the connection"
    return f"{who}: {type(exc).__name__}"

"""Where a URL really goes: one decision, made on the URL the HTTP library will send.

Python has several URL parsers and they disagree on hostile input: for `https://evil.example\\@api.intercom.io/x`
urllib.parse sees the host api.intercom.io while urllib3 (which requests uses to build the request) sees
evil.example. So nothing here decides on the string we were given. A URL is first refused outright if it holds
anything a download URL never needs (see `_problem`), then prepared by requests exactly as a request would be,
and its origin is read from that prepared URL with the parser requests' adapter uses to open the connection
(urllib.parse), cross-checked with urllib3's. The caller compares that origin, and nothing else, with the API's.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.util import parse_url

from exportwatch.safetext import one_line

DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_SHOWN = 100  # characters of a refused host shown in a reason


class UnsafeUrl(ValueError):
    """A URL exportwatch will not fetch. str() is one printable line that names the host part, never a header."""


def is_loopback_host(host: str) -> bool:
    """The one loopback rule: `localhost` or a loopback IP literal (127.0.0.0/8, ::1). Nothing resolves DNS."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str  # lower case, IPv6 without brackets
    port: int

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{one_line(host, _SHOWN)}:{self.port}"


@dataclass(frozen=True)
class Target:
    """A URL as requests will send it, and the origin the connection will be opened to."""

    url: str
    origin: Origin


def _authority(url: str) -> str:
    rest = url[2:] if url.startswith("//") else url.split("://", 1)[1] if "://" in url else ""
    return re.split(r"[/?#]", rest, maxsplit=1)[0]


def _problem(url: str) -> str | None:
    """Why `url` is refused before any parser sees it, or None."""
    if not url.isascii():
        return "holds non-ASCII characters"
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return "holds whitespace or control characters"
    if "\\" in url:
        return "holds a backslash"
    if url.startswith("//"):
        return "is scheme-relative (no http: or https:)"
    scheme = _SCHEME_RE.match(url)
    if scheme is None or scheme.group(1).lower() not in DEFAULT_PORTS or not url[scheme.end() :].startswith("//"):
        return "is not an absolute http(s) URL"
    authority = _authority(url)
    if "@" in authority:
        return "carries credentials (user info before '@')"
    if "%" in authority:
        return "has percent-encoding in its host"
    if not authority or authority.startswith(":"):
        return "has no host"
    return None


def _host_part(url: str) -> str:
    """The host part as written, made printable and short, to name it in a reason."""
    return one_line(_authority(url) or url, _SHOWN)


def resolve(url: object, *, what: str = "URL") -> Target:
    """The Target requests will connect to for `url`, or UnsafeUrl saying why it is refused.

    `what` names the URL in the reason (e.g. "download_url", "redirect Location").
    """
    if not isinstance(url, str) or not url:
        raise UnsafeUrl(f"{what} is empty")
    if (problem := _problem(url)) is not None:
        raise UnsafeUrl(f"{what} on {_host_part(url)!r} {problem}")
    try:
        prepared = requests.Request("GET", url).prepare().url or ""
        split = urlsplit(prepared)  # what requests' adapter reads to pick the connection pool
        host, port = (split.hostname or "").lower(), split.port
        other = parse_url(prepared)  # what built the prepared URL: the two must agree
    except Exception:  # requests' InvalidURL, urllib3's LocationParseError, a bad port: all "not sendable"
        raise UnsafeUrl(f"{what} on {_host_part(url)!r} is not a URL that can be sent") from None
    scheme = split.scheme.lower()
    origin = Origin(scheme, host, port or DEFAULT_PORTS.get(scheme, 0))
    other_host = (other.host or "").strip("[]").lower()
    other_port = other.port or DEFAULT_PORTS.get((other.scheme or "").lower(), 0)
    if not host or (other.scheme or "").lower() != scheme or other_host != host or other_port != origin.port:
        raise UnsafeUrl(f"{what} on {_host_part(url)!r} is read differently by different URL parsers")
    return Target(prepared, origin)


def resolve_location(base: str, location: object) -> Target:
    """The Target of a redirect: `location` (absolute, or relative to `base`) checked before and after joining."""
    if not isinstance(location, str) or not location:
        raise UnsafeUrl("redirect Location is empty")
    if (problem := _problem_for_reference(location)) is not None:
        raise UnsafeUrl(f"redirect Location on {_host_part(location)!r} {problem}")
    return resolve(urljoin(base, location), what="redirect Location")


def _problem_for_reference(location: str) -> str | None:
    """A Location may be relative ("/download/x"); what is refused in it is refused before joining."""
    if _SCHEME_RE.match(location) or location.startswith("//"):
        return _problem(location)
    if not location.isascii() or "\\" in location:
        return "holds non-ASCII characters or a backslash"
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in location):
        return "holds whitespace or control characters"
    return None

"""Fetch feed bytes over HTTP (or from a local file, for the demo). Parsing lives in `parse`.

httpx with timeouts, a size cap, a User-Agent, conditional GET (ETag / Last-Modified), a guard
against requests to private addresses (SSRF), and at most one request every few seconds to arXiv.

The guard sits where the connection is made, not before the request: `PinnedBackend` resolves
the host once, refuses it if any address is not public, and connects to exactly the addresses it
checked — for the first request and for every redirect, each a connection of its own. A DNS
answer that changes between the check and the connection (DNS rebinding) cannot send a request
inside the network. TLS still verifies the certificate for, and sends SNI with, the host name
of the URL (httpcore takes them from the URL, not from the address), and the Host header is the
URL's. Proxy settings from the environment are not used by this client: it connects itself.
"""

from __future__ import annotations

import html
import ipaddress
import math
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpcore
import httpx

from daemon.errors import FetchError

THROTTLED_HOSTS = ("arxiv.org", "export.arxiv.org", "rss.arxiv.org")
# a whole response within this many `ingest.timeout_seconds` (each read within one): a server
# that sends a byte now and then held the ingest for as long as it went on (10 min seen)
TOTAL_TIMEOUTS = 4
FINISH_SECONDS = 0.5  # past the deadline, for the fetch's own check to say so first
STOP_CHECK_SECONDS = 0.2  # how often a fetch in flight looks whether the daemon is stopping


@dataclass(frozen=True)
class Fetched:
    """What a fetch brought back; `content` is None when the server said 304 Not Modified."""

    url: str
    content: bytes | None
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    moved_to: str | None = None  # where every redirect followed was permanent (301, 308)


def expand_url(url: str, when: datetime | date) -> str:
    """Fill `{date}` (YYYY-MM-DD: `when`'s UTC date, or a day) in feed URLs such as the
    Hugging Face daily-papers API."""
    day = when.astimezone(UTC).date() if isinstance(when, datetime) else when
    return url.replace("{date}", day.isoformat())


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchStopped(FetchError):
    """The daemon is stopping: the fetch in flight was left (the next run fetches the feed)."""


class AddressRefused(FetchError):
    """The guard refused a host (it does not resolve, or to a non-public address)."""


class HostUnresolved(AddressRefused):
    """The host's name did not resolve (now: DNS may answer later)."""


Resolver = Callable[[str, int], Iterable[str]]  # (host, port) → IP addresses, as text


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for `host`, in its order, each once."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the last 32 bits are IPv4
# RFC 8215: local NAT64, private (Python knows it as such only from 3.12.4 / 3.11.10 on)
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated (RFC 4291), still routed by some


def is_public(address: IPAddress) -> bool:
    """Public internet addresses only: no private, loopback, link-local, shared, reserved …
    An IPv6 address that carries an IPv4 one (6to4, NAT64, IPv4-compatible or -mapped) is
    public only when that one is too: [2002:7f00:1::] reaches 127.0.0.1 through a 6to4 relay."""
    if not address.is_global or address.is_multicast or address in _LOCAL_NAT64:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and (address in _NAT64 or address in _IPV4_COMPATIBLE):
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None:
            return is_public(inner)
    return True


@dataclass(frozen=True)
class AddressGuard:
    """Resolves a host once and says which addresses may be connected to (SSRF guard)."""

    allow_private: bool = False
    resolve: Resolver = system_resolver
    allowed: Callable[[IPAddress], bool] = is_public

    def addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for `host`; `FetchError` when it does not resolve or
        when any of its addresses is refused (one bad answer refuses the host)."""
        literal = _ip(host)
        if literal is not None:
            found = [str(literal)]
        else:
            try:
                found = list(dict.fromkeys(self.resolve(host, port)))
            except (OSError, UnicodeError) as e:
                why = getattr(e, "strerror", None) or str(e)
                raise HostUnresolved(f"cannot resolve host {host!r}: {why}") from e
            if not found:
                raise HostUnresolved(f"cannot resolve host {host!r}: no address")
        for text in found:
            address = _ip(text)
            if address is None or not (self.allow_private or self.allowed(address)):
                raise AddressRefused(
                    f"refusing to connect to {host!r}: it resolves to the non-public address "
                    f"{text} (set ingest.allow_private_addresses = true to allow it)"
                )
        return found


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def check_address(host: str, guard: AddressGuard | None = None) -> None:
    """Refuse hosts that resolve to private, loopback, link-local or reserved addresses."""
    (guard or AddressGuard()).addresses(host, 0)


class PinnedBackend(httpcore.NetworkBackend):
    """httpcore's network backend, connecting only to addresses the guard resolved and checked.

    httpcore asks it for every new connection (first request, redirects, reconnects) by host
    name; it resolves that name once, checks every address, and opens the TCP connection to the
    checked address itself, so no second DNS answer is ever used."""

    def __init__(self, guard: AddressGuard, inner: httpcore.NetworkBackend | None = None) -> None:
        self.guard = guard
        self.inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        error: httpcore.ConnectError | None = None
        for address in self.guard.addresses(host, port):
            try:
                return self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as e:  # the next address, as a resolver's order says
                error = e
        assert error is not None
        raise error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("feeds are never fetched over a Unix socket")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class PinnedTransport(httpx.HTTPTransport):
    """httpx's transport over a `PinnedBackend` (TLS verification and SNI as usual)."""

    def __init__(
        self,
        guard: AddressGuard,
        *,
        ssl_context: ssl.SSLContext | None = None,
        backend: httpcore.NetworkBackend | None = None,
    ) -> None:
        super().__init__()
        # httpx has no parameter for the network backend: its pool is replaced by an
        # identical one that has ours (tests/daemon/ingest/test_fetch.py would see it fail).
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            network_backend=PinnedBackend(guard, backend),
        )


@dataclass
class Throttle:
    """At most one request per `interval` seconds to the throttled hosts, together."""

    interval: float
    hosts: tuple[str, ...] = THROTTLED_HOSTS
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    _last: float | None = None

    def wait(self, host: str) -> None:
        """Sleep as needed before a request to `host`; the throttled hosts share one budget
        (arXiv's terms count requests to arXiv, whichever of its hosts answers)."""
        if not any(host == h or host.endswith("." + h) for h in self.hosts):
            return
        if self._last is not None:
            delay = self.interval - (self.monotonic() - self._last)
            if delay > 0:
                self.sleep(delay)
        self._last = self.monotonic()


class Fetcher:
    """Fetches feeds with one shared httpx client."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        max_bytes: int,
        throttle: Throttle,
        allow_files: bool = False,
        total_seconds: float = math.inf,
        stopping: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.stopping = stopping or threading.Event()
        self.max_bytes = max_bytes
        self.total_seconds = total_seconds
        self.throttle = throttle
        self.allow_files = allow_files

    def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> Fetched:
        parts = urlsplit(url)
        if parts.scheme == "file" or (not parts.scheme and url.startswith(("/", "."))):
            return self._read_file(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"{url!r} is not an http(s) URL; feeds are fetched over http(s)")
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        self.throttle.wait(parts.hostname)
        deadline = time.monotonic() + self.total_seconds
        if math.isinf(self.total_seconds):
            return self._get(url, headers, deadline)
        # the whole exchange in a thread of its own, waited for until the deadline: a server
        # that sends its headers a byte now and then (each within the read timeout) is not
        # waited for any longer than one that so sends its body; the thread ends by itself
        box: list[Fetched | Exception] = []
        worker = threading.Thread(
            target=_into, args=(box, self._get, url, headers, deadline), daemon=True,
            name="paperwire-fetch",
        )  # fmt: skip
        worker.start()
        until = time.monotonic() + self.total_seconds + FINISH_SECONDS
        while worker.is_alive() and (left := until - time.monotonic()) > 0:
            worker.join(min(left, STOP_CHECK_SECONDS))
            if worker.is_alive() and self.stopping.is_set():  # SIGTERM: not 4 timeouts later
                raise FetchStopped(f"{url}: not fetched, paperwire is stopping")
        if not box:
            raise FetchError(
                f"{url}: no whole response in {self.total_seconds:.0f} s ({TOTAL_TIMEOUTS} × "
                "ingest.timeout_seconds); the server answers too slowly"
            )
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]

    def _get(self, url: str, headers: dict[str, str], deadline: float) -> Fetched:
        try:
            with self.client.stream("GET", url, headers=headers) as resp:
                if resp.status_code == 304:  # with the validators a 200 would have (if any)
                    return Fetched(
                        url=url,
                        content=None,
                        etag=resp.headers.get("etag") or headers.get("If-None-Match"),
                        last_modified=resp.headers.get("last-modified")
                        or headers.get("If-Modified-Since"),
                    )
                if resp.status_code >= 400:
                    raise FetchError(
                        f"{url}: HTTP {resp.status_code} {resp.reason_phrase}"
                        + (" (check the feed URL)" if resp.status_code in (404, 410) else "")
                        + _come_back(resp)
                        + _api_error(resp, deadline)
                    )
                return Fetched(
                    url=url,
                    content=self._body(resp, url, deadline),
                    content_type=resp.headers.get("content-type"),
                    etag=resp.headers.get("etag"),
                    last_modified=resp.headers.get("last-modified"),
                    moved_to=str(resp.url)
                    if resp.history and all(r.status_code in (301, 308) for r in resp.history)
                    else None,
                )
        except httpx.HTTPError as e:
            raise FetchError(f"{url}: {type(e).__name__}: {e}") from e
        except AddressRefused as e:  # refused by the guard, for this URL or a redirect
            raise FetchError(f"{url}: {e}") from e

    def _body(self, resp: httpx.Response, url: str, deadline: float) -> bytes:
        """The response's bytes: at most `max_bytes`, all of them by `deadline`."""
        declared = resp.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError(self._too_big(url))
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise FetchError(self._too_big(url))
            if time.monotonic() > deadline:  # each read in time, but no end to them
                raise FetchError(
                    f"{url}: the server sent {size:,} bytes in {self.total_seconds:.0f} s and "
                    f"was not done ({TOTAL_TIMEOUTS} × ingest.timeout_seconds for a whole "
                    "response); it sends too slowly"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_big(self, url: str) -> str:
        return (
            f"{url}: response larger than ingest.max_bytes = {self.max_bytes}; raise it if needed"
        )

    def _read_file(self, url: str) -> Fetched:
        if not self.allow_files:
            raise FetchError(
                f"{url!r}: local files are not read unless ingest.allow_files = true (demo only)"
            )
        path = Path(urlsplit(url).path if url.startswith("file:") else url)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise FetchError(f"{path}: cannot read feed file: {e.strerror}") from e
        if len(data) > self.max_bytes:
            raise FetchError(self._too_big(url))
        return Fetched(url=url, content=data)


def _come_back(resp: httpx.Response) -> str:
    """What a 429 or 503's Retry-After asks (seconds, or an HTTP date), for the error: the
    admin sees the failure is the server's, for a while."""
    after = " ".join(resp.headers.get("retry-after", "").split())[:40]
    if resp.status_code not in (429, 503) or not (
        after and after.isascii() and after.isprintable()
    ):
        return ""
    when = f"in {int(after):,} s" if after.isdigit() else f"after {after}"
    return f" (the server asks to come back {when}; the next ingest tries again)"


# arXiv's API answers a bad query with HTTP 400 and an Atom error entry saying why
_API_ERROR_BYTES = 65_536
_API_ERROR = re.compile(
    rb"<id>[^<]*arxiv\.org/api/errors[^<]*</id>.*?<summary[^>]*>([^<]{1,500})</summary>", re.S
)


def _api_error(resp: httpx.Response, deadline: float) -> str:
    """The reason an arXiv API error entry in a 400's body gives, for the error ("" if none):
    "HTTP 400 Bad Request" alone did not say which part of the query arXiv refused."""
    if resp.status_code != 400:
        return ""
    head = b""
    try:
        for chunk in resp.iter_bytes():
            head += chunk
            if len(head) >= _API_ERROR_BYTES or time.monotonic() > deadline:
                break
    except httpx.HTTPError:
        return ""
    m = _API_ERROR.search(head[:_API_ERROR_BYTES])
    if m is None:
        return ""
    reason = " ".join(html.unescape(m.group(1).decode("utf-8", "replace")).split())
    if not (reason and reason.isprintable()):
        return ""
    return f": the arXiv API reported an error: {reason}; check the query parameters"


def make_fetcher(
    *,
    timeout: float,
    max_bytes: int,
    user_agent: str,
    min_interval: float,
    allow_private: bool,
    allow_files: bool,
    transport: httpx.BaseTransport | None = None,
    guard: AddressGuard | None = None,
    ssl_context: ssl.SSLContext | None = None,
    stopping: threading.Event | None = None,
) -> Fetcher:
    """A Fetcher whose client connects only to addresses the SSRF guard checked, for every
    request and redirect. `transport` replaces all that (tests that answer without a network);
    `guard` and `ssl_context` are for tests (a resolver of their own, a test CA). A fetch in
    flight is left when `stopping` is set."""
    guard = guard or AddressGuard(allow_private=allow_private)
    client = httpx.Client(
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": user_agent},
        follow_redirects=True,
        max_redirects=5,
        transport=transport or PinnedTransport(guard, ssl_context=ssl_context),
    )
    return Fetcher(
        client,
        max_bytes=max_bytes,
        throttle=Throttle(min_interval),
        allow_files=allow_files,
        total_seconds=TOTAL_TIMEOUTS * timeout,
        stopping=stopping,
    )


def _into(box: list[Fetched | Exception], get: Callable[..., Fetched], *args: object) -> None:
    """`get(*args)`'s result or exception, into `box` (a fetch's thread)."""
    try:
        box.append(get(*args))
    except Exception as e:
        box.append(e)

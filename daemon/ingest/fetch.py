"""Fetch feed bytes over HTTP (or from a local file, for the demo). Parsing lives in `parse`.

httpx with timeouts, a size cap, a User-Agent, conditional GET (ETag / Last-Modified), a guard
against requests to private addresses (SSRF), and at most one request every few seconds to arXiv.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from daemon.errors import FetchError

THROTTLED_HOSTS = ("arxiv.org", "export.arxiv.org", "rss.arxiv.org")


@dataclass(frozen=True)
class Fetched:
    """What a fetch brought back; `content` is None when the server said 304 Not Modified."""

    url: str
    content: bytes | None
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None


def expand_url(url: str, now: datetime) -> str:
    """Fill `{date}` (UTC, YYYY-MM-DD) in feed URLs such as the Hugging Face daily-papers API."""
    return url.replace("{date}", now.astimezone(UTC).date().isoformat())


def check_address(host: str) -> None:
    """Refuse hosts that resolve to private, loopback, link-local or reserved addresses."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as e:
        raise FetchError(f"cannot resolve host {host!r}: {e.strerror}") from e
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if not addr.is_global:
            raise FetchError(
                f"refusing to fetch from {host!r}: it resolves to the non-public address {addr} "
                f"(set ingest.allow_private_addresses = true to allow it)"
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
        allow_private: bool = False,
        allow_files: bool = False,
    ) -> None:
        self.client = client
        self.max_bytes = max_bytes
        self.throttle = throttle
        self.allow_private = allow_private
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
        try:
            with self.client.stream("GET", url, headers=headers) as resp:
                self._check_peer(resp, url)
                if resp.status_code == 304:
                    return Fetched(url=url, content=None, etag=etag, last_modified=last_modified)
                if resp.status_code >= 400:
                    raise FetchError(
                        f"{url}: HTTP {resp.status_code} {resp.reason_phrase}"
                        + (" (check the feed URL)" if resp.status_code in (404, 410) else "")
                    )
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self.max_bytes:
                    raise FetchError(self._too_big(url))
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise FetchError(self._too_big(url))
                    chunks.append(chunk)
                return Fetched(
                    url=url,
                    content=b"".join(chunks),
                    content_type=resp.headers.get("content-type"),
                    etag=resp.headers.get("etag"),
                    last_modified=resp.headers.get("last-modified"),
                )
        except httpx.HTTPError as e:
            raise FetchError(f"{url}: {type(e).__name__}: {e}") from e

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

    def _check_peer(self, resp: httpx.Response, url: str) -> None:
        """The address actually connected to must be public too: a DNS answer that changed
        between the check and the connection (DNS rebinding) is caught before the body is read."""
        if self.allow_private:
            return
        stream = resp.extensions.get("network_stream")
        peer = stream.get_extra_info("server_addr") if stream is not None else None
        if peer and not ipaddress.ip_address(peer[0]).is_global:
            raise FetchError(
                f"{url}: connected to the non-public address {peer[0]}; refused "
                f"(set ingest.allow_private_addresses = true to allow it)"
            )

    def guard_request(self, request: httpx.Request) -> None:
        """httpx request hook: applied to every request, redirects included."""
        if not self.allow_private:
            check_address(request.url.host)


def make_fetcher(
    *,
    timeout: float,
    max_bytes: int,
    user_agent: str,
    min_interval: float,
    allow_private: bool,
    allow_files: bool,
    transport: httpx.BaseTransport | None = None,
) -> Fetcher:
    """A Fetcher whose client checks every request (redirects too) against the SSRF guard."""
    client = httpx.Client(
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": user_agent},
        follow_redirects=True,
        max_redirects=5,
        transport=transport,
    )
    fetcher = Fetcher(
        client,
        max_bytes=max_bytes,
        throttle=Throttle(min_interval),
        allow_private=allow_private,
        allow_files=allow_files,
    )
    client.event_hooks["request"] = [fetcher.guard_request]
    return fetcher

"""The fetcher connects to the address it checked: resolved once, pinned for the connection, on
every redirect; TLS still verifies and names the host of the URL.

Every server here is on 127.0.0.1 and no test reaches outside this machine: where a resolver
answers with a public address, the connection to it is refused by a stand-in for the network
("jail") and recorded. In the tests with their own address policy, 127.0.0.1 plays the public
internet and every other 127.x address the inside of the network.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpcore
import pytest
import trustme

from daemon.errors import FetchError
from daemon.ingest.fetch import AddressGuard, Fetcher, IPAddress, PinnedTransport, make_fetcher
from tests.servers import HttpServer, Reply, Route, http_server

UA = "paperwire-test/1.0 (+tests)"


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with http_server(Reply(404, "not found")) as s:
        yield s


@dataclass
class Answers:
    """A DNS resolver that answers `first` the first time a host is asked, `then` after."""

    first: dict[str, str]
    then: dict[str, str] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def __call__(self, host: str, port: int) -> list[str]:
        seen = host in self.asked
        self.asked.append(host)
        answer = self.then.get(host, self.first[host]) if seen else self.first[host]
        return [answer]


class Jail(httpcore.NetworkBackend):
    """The network as far as these tests go: loopback only; every connection is recorded."""

    def __init__(self) -> None:
        self.inner = httpcore.SyncBackend()
        self.connected: list[tuple[str, int]] = []

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        self.connected.append((host, port))
        if not ipaddress.ip_address(host).is_loopback:
            raise httpcore.ConnectError(f"test jail: no connection to {host} leaves the machine")
        return self.inner.connect_tcp(host, port, timeout, local_address, socket_options)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("no unix sockets")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def only_127_0_0_1(address: IPAddress) -> bool:
    return str(address) == "127.0.0.1"


def _fetcher(
    resolver: Answers,
    jail: Jail,
    allowed: Callable[[IPAddress], bool] = only_127_0_0_1,
    ssl_context: ssl.SSLContext | None = None,
) -> Fetcher:
    guard = AddressGuard(resolve=resolver, allowed=allowed)
    f = make_fetcher(
        timeout=5.0,
        max_bytes=100_000,
        user_agent=UA,
        min_interval=0.0,
        allow_private=False,
        allow_files=False,
        transport=PinnedTransport(guard, ssl_context=ssl_context, backend=jail),
    )
    return f


def _port(server: HttpServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


# --- DNS rebinding ------------------------------------------------------------------------------


def test_a_rebinding_host_never_gets_a_request_inside(
    server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case, with the production fetcher and the system's resolver functions: the
    name is public when checked, then resolves to the inside (the local server). The fetch goes
    to the public address it checked (refused by the test's jail: nothing leaves the machine);
    the inside server receives nothing. Before, it received one GET, then the peer check
    refused the response."""
    server.routes["/f"] = Route(body=b"<rss>internal</rss>")
    port = _port(server)
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.create_connection
    asked: list[str] = []
    connected: list[Any] = []

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            address = "127.0.0.1" if asked else "93.184.216.34"
            asked.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real_getaddrinfo(host, *args, **kwargs)

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        host = str(socket.getaddrinfo(address[0], address[1])[0][4][0])
        connected.append(host)
        if not ipaddress.ip_address(host).is_loopback:
            raise ConnectionRefusedError(f"test jail: no connection to {host} leaves the machine")
        return real_connect((host, address[1]), *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    f = make_fetcher(
        timeout=5.0,
        max_bytes=10_000,
        user_agent=UA,
        min_interval=0.0,
        allow_private=False,
        allow_files=False,
    )
    try:
        with pytest.raises(FetchError):
            f.fetch(f"http://rebind.test:{port}/f")
    finally:
        f.client.close()
    assert server.requests == []
    assert connected == ["93.184.216.34"]
    assert asked == ["rebind.test"]  # resolved once


def test_the_connection_uses_the_first_answer_not_a_later_one(server: HttpServer) -> None:
    server.routes["/f"] = Route(body=b"<rss/>")
    resolver = Answers(first={"feeds.test": "127.0.0.1"}, then={"feeds.test": "127.0.0.9"})
    jail = Jail()
    f = _fetcher(resolver, jail)
    try:
        assert f.fetch(f"http://feeds.test:{_port(server)}/f").content == b"<rss/>"
    finally:
        f.client.close()
    assert resolver.asked == ["feeds.test"]
    assert jail.connected == [("127.0.0.1", _port(server))]
    assert server.seen("/f")[0].headers["host"] == f"feeds.test:{_port(server)}"


def test_a_name_that_resolves_inside_is_refused_before_connecting(server: HttpServer) -> None:
    server.routes["/f"] = Route(body=b"secret")
    resolver = Answers(first={"inside.test": "127.0.0.9"})
    jail = Jail()
    f = _fetcher(resolver, jail)
    try:
        with pytest.raises(FetchError, match=r"non-public address 127\.0\.0\.9") as info:
            f.fetch(f"http://inside.test:{_port(server)}/f")
    finally:
        f.client.close()
    assert "allow_private_addresses" in str(info.value)
    assert f"http://inside.test:{_port(server)}/f" in str(info.value)
    assert jail.connected == []


def test_one_refused_address_among_several_refuses_the_host(server: HttpServer) -> None:
    guard = AddressGuard(
        resolve=lambda host, port: ["127.0.0.1", "127.0.0.9"], allowed=only_127_0_0_1
    )
    with pytest.raises(FetchError, match=r"127\.0\.0\.9"):
        guard.addresses("mixed.test", 80)


# --- redirects ----------------------------------------------------------------------------------


def test_a_redirect_to_a_name_inside_is_refused(server: HttpServer) -> None:
    port = _port(server)
    server.routes["/old"] = Route(status=302, location=f"http://inside.test:{port}/secret")
    server.routes["/secret"] = Route(body=b"secret")
    resolver = Answers(first={"feeds.test": "127.0.0.1", "inside.test": "127.0.0.9"})
    jail = Jail()
    f = _fetcher(resolver, jail)
    try:
        with pytest.raises(FetchError, match=r"'inside\.test'.*127\.0\.0\.9"):
            f.fetch(f"http://feeds.test:{port}/old")
    finally:
        f.client.close()
    assert [r.path for r in server.requests] == ["/old"]
    assert jail.connected == [("127.0.0.1", port)]


def test_a_redirect_to_an_inside_address_is_refused(server: HttpServer) -> None:
    port = _port(server)
    server.routes["/old"] = Route(status=301, location=f"http://127.0.0.9:{port}/secret")
    jail = Jail()
    f = _fetcher(Answers(first={"feeds.test": "127.0.0.1"}), jail)
    try:
        with pytest.raises(FetchError, match=r"127\.0\.0\.9"):
            f.fetch(f"http://feeds.test:{port}/old")
    finally:
        f.client.close()
    assert jail.connected == [("127.0.0.1", port)]


def test_a_redirect_to_a_rebinding_name_is_pinned_too(server: HttpServer) -> None:
    port = _port(server)
    server.routes["/old"] = Route(status=302, location=f"http://rebind.test:{port}/f")
    server.routes["/f"] = Route(body=b"<rss/>")
    resolver = Answers(
        first={"feeds.test": "127.0.0.1", "rebind.test": "127.0.0.1"},
        then={"rebind.test": "127.0.0.9"},
    )
    jail = Jail()
    f = _fetcher(resolver, jail)
    try:
        assert f.fetch(f"http://feeds.test:{port}/old").content == b"<rss/>"
    finally:
        f.client.close()
    assert resolver.asked.count("rebind.test") == 1
    assert {host for host, _ in jail.connected} == {"127.0.0.1"}
    assert server.seen("/f")[0].headers["host"] == f"rebind.test:{port}"


# --- https: SNI and certificate of the URL's host, connection to the checked address -------------


@dataclass
class TlsSeen:
    sni: list[str | None] = field(default_factory=list)
    requests: list[bytes] = field(default_factory=list)


@contextmanager
def tls_server(ca: trustme.CA, hostname: str) -> Iterator[tuple[int, TlsSeen]]:
    """A one-page HTTPS server on 127.0.0.1 with a certificate for `hostname` only."""
    seen = TlsSeen()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(hostname).configure_cert(context)

    def remember(sock: Any, name: str | None, ctx: Any) -> None:
        seen.sni.append(name)

    context.sni_callback = remember
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve() -> None:
        try:
            raw, _ = listener.accept()
        except OSError:
            return
        with raw, context.wrap_socket(raw, server_side=True) as conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            seen.requests.append(data)
            body = b"<rss version='2.0'/>"
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], seen
    finally:
        listener.close()
        thread.join(5)


def test_https_names_the_urls_host_while_connecting_to_the_checked_address() -> None:
    ca = trustme.CA()
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    resolver = Answers(first={"feeds.test": "127.0.0.1"}, then={"feeds.test": "127.0.0.9"})
    jail = Jail()
    with tls_server(ca, "feeds.test") as (port, seen):
        f = _fetcher(resolver, jail, ssl_context=client_context)
        try:
            got = f.fetch(f"https://feeds.test:{port}/feed")
        finally:
            f.client.close()
    assert got.content == b"<rss version='2.0'/>"  # the certificate for feeds.test verified
    assert seen.sni == ["feeds.test"]
    assert f"host: feeds.test:{port}".encode() in seen.requests[0].lower()
    assert jail.connected == [("127.0.0.1", port)]
    assert resolver.asked == ["feeds.test"]


def test_the_default_policy_refuses_every_non_public_address() -> None:
    guard = AddressGuard(resolve=lambda host, port: [])
    for literal in (
        "127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "::1",
        "fe80::1%eth0",
        "100.64.0.1",
        # IPv6 addresses that carry a non-public IPv4 one (security QA: all three passed)
        "::127.0.0.1",  # IPv4-compatible
        "2002:7f00:1::",  # 6to4
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "::ffff:10.0.0.1",  # IPv4-mapped
        "64:ff9b:1::a00:1",  # local-use NAT64 (RFC 8215), whatever the Python patch release
    ):
        with pytest.raises(FetchError, match="non-public"):
            guard.addresses(literal, 80)
    for public in ("93.184.216.34", "2002:5db8:d822::", "64:ff9b::5db8:d822", "2606:4700::1"):
        assert guard.addresses(public, 80) == [public]
    with pytest.raises(FetchError, match="cannot resolve"):
        guard.addresses("nowhere.test", 80)

"""Real local servers for tests (127.0.0.1 only; nothing ever leaves the machine).

Two context managers:

``smtp_server(...)`` → :class:`SmtpServer`
    An aiosmtpd server in a thread, by default with STARTTLS required and a
    ``trustme`` certificate for 127.0.0.1, and AUTH (PLAIN/LOGIN) for the given users,
    allowed only after STARTTLS. Attributes: ``host``, ``port``, ``messages`` (every
    accepted message, in order), ``connections`` (TCP connections clients opened),
    ``ehlos``, ``auth_attempts``, ``ssl_context_trusting_ca`` (a *client* context that
    trusts the test CA), and ``disconnect_all()`` to drop every open connection from the
    server side. ``rcpt_replies`` maps a recipient address to a canned reply such as
    ``"451 4.3.0 try later"``; ``data_reply`` replaces the reply to DATA;
    ``auth_failure_reply(login, password)`` the reply to a failed login (a server that echoes
    what it was sent). Faults on purpose: ``fail(command, action, reply, times=...)`` (see
    :class:`SmtpFault`: reply, reply and close, drop, hang, drop in the middle of DATA) and
    ``commands`` (every command received, with its connection number, in order).

``http_server(...)`` → :class:`HttpServer`
    The one HTTP server of the tests (feeds, Slack webhooks, anything fetched): records every
    request (``requests``, ``seen(path)``) and answers from a programmable queue
    (``reply(status, body, headers)``), fixed ``routes`` (ETag / Last-Modified / 304,
    chunked bodies, lying lengths, redirects), or the files of a ``directory``, falling back
    on 200 ``ok``. ``url`` is its base URL; ``url_for(path)`` adds a path. ``hang()`` makes
    the next request(s) wait for an answer that never comes (until the server stops).
    ``on_request`` is called with each request's path before its answer.

``tcp_proxy(host, port)`` → :class:`TcpProxy`
    A TCP proxy on 127.0.0.1 in front of a real server (PostgreSQL): ``cut()`` closes every
    connection through it and refuses new ones, as a server gone (a host down, a network cut).

Example::

    with smtp_server(users={"alice": "pw"}) as server:
        ...  # connect to server.host:server.port with server.ssl_context_trusting_ca
    assert len(server.messages) == 1
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import socket
import ssl
import sys
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = [
    "CLOSED_PORT",
    "FaultAction",
    "HttpServer",
    "ReceivedMail",
    "RecordedRequest",
    "Reply",
    "Route",
    "SmtpFault",
    "SmtpServer",
    "closed_port_url",
    "free_port",
    "http_server",
    "smtp_server",
    "tcp_proxy",
]

LOCALHOST = "127.0.0.1"
HANG_SECONDS = 3600.0  # "for ever": a hung handler is cancelled or woken when its server stops


# =============================================================================== SMTP


CLOSED_PORT = 1  # nothing listens on 127.0.0.1:1 (tcpmux), as the other tests assume


def closed_port_url(path: str = "/api/query") -> str:
    """A URL on 127.0.0.1 where nothing listens ("no network"). A port bound to 0 and released
    could meanwhile be given to a server another test starts (bind to 0, in another xdist
    worker), which would then answer."""
    return f"http://{LOCALHOST}:{CLOSED_PORT}{path}"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, for a server a test starts later. Taken
    below the system's ephemeral range: a port the system hands out (bind to 0) may meanwhile
    become the source port of any outgoing connection of another test, and the server then
    finds it in use (seen once in a full run)."""
    low = 32768
    with suppress(OSError, ValueError, IndexError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    picker = random.Random()  # the port only: nothing the tests assert depends on it
    for _ in range(200):
        port = picker.randrange(max(1024, low - 12_000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # the range is full: the system's choice
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ReceivedMail:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    connection: int  # 1-based number of the TCP connection it arrived on
    mail_options: tuple[str, ...] = ()  # MAIL FROM's parameters (SIZE=…, SMTPUTF8)

    @property
    def message(self) -> EmailMessage:
        message = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(message, EmailMessage)
        return message


FaultAction = Literal["reply", "close", "drop", "hang", "drop_mid_data"]


@dataclass
class SmtpFault:
    """A misbehaviour on purpose, when the server receives ``command``.

    ``command``: an SMTP verb (``"MAIL"``, ``"RCPT"``, ``"DATA"``, ``"RSET"``, ``"AUTH"``,
    ``"QUIT"``...), ``"CONNECT"`` (instead of the greeting) or ``"END_OF_DATA"`` (after the
    message's final dot, instead of accepting it). ``action``:

    * ``"reply"``: answer ``reply`` and do nothing else (the session keeps its state: a
      ``452`` to DATA leaves the transaction open, as real servers do);
    * ``"close"``: answer ``reply`` (say ``"421 4.3.2 shutting down"``), then close;
    * ``"drop"``: close the connection without a word;
    * ``"hang"``: never answer (the client has to time out);
    * ``"drop_mid_data"`` (DATA only): say 354, read one line of the message, then close.

    ``reply`` may be a function of the command's argument. ``times``: how many commands it
    applies to (``None``: every one from now on).
    """

    command: str
    action: FaultAction = "reply"
    reply: str | Callable[[str | None], str] = ""
    times: int | None = 1

    def text(self, arg: str | None) -> str:
        return self.reply(arg) if callable(self.reply) else self.reply


@dataclass
class SmtpServer:
    host: str
    port: int
    ca: trustme.CA
    ssl_context_trusting_ca: ssl.SSLContext
    messages: list[ReceivedMail] = field(default_factory=list)
    auth_attempts: list[str] = field(default_factory=list)
    commands: list[tuple[int, str]] = field(default_factory=list)  # (connection, verb)
    connections: int = 0
    ehlos: int = 0
    faults: list[SmtpFault] = field(default_factory=list)
    max_connections: int | None = None  # more at once are refused at the greeting (421)
    refused: int = 0  # connections refused so (one more than `max_connections`)
    _controller: Controller | None = None
    _live: set[SMTP] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(
        self,
        command: str,
        action: FaultAction = "reply",
        reply: str | Callable[[str | None], str] = "",
        *,
        times: int | None = 1,
    ) -> None:
        """Misbehave on the next ``times`` ``command``s (see :class:`SmtpFault`)."""
        with self._lock:
            self.faults.append(SmtpFault(command.upper(), action, reply, times))

    def verbs(self, connection: int | None = None) -> list[str]:
        """The commands received (on one connection, if given), in order."""
        with self._lock:
            return [v for c, v in self.commands if connection is None or c == connection]

    def _take(self, command: str) -> SmtpFault | None:
        with self._lock:
            for fault in self.faults:
                if fault.command == command:
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    def _record(self, connection: int, verb: str) -> None:
        with self._lock:
            self.commands.append((connection, verb))

    def disconnect_all(self) -> None:
        """Close every open connection from the server side (and wait for it)."""
        controller = self._controller
        assert controller is not None

        async def close() -> None:
            for proto in list(self._live):
                if proto.transport is not None:
                    proto.transport.close()
            await asyncio.sleep(0.05)

        asyncio.run_coroutine_threadsafe(close(), controller.loop).result(timeout=5)


class _Handler:
    def __init__(
        self, server: SmtpServer, rcpt_replies: Mapping[str, str], data_reply: str | None
    ) -> None:
        self.server = server
        self.rcpt_replies = dict(rcpt_replies)
        self.data_reply = data_reply

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self.server.ehlos += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fault = self.server._take("END_OF_DATA")
        if fault is not None:
            return await self._misbehave(server, fault)
        if self.data_reply is not None:
            return self.data_reply
        content = envelope.original_content or b""
        self.server.messages.append(
            ReceivedMail(
                mail_from=str(envelope.mail_from),
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=content,
                connection=getattr(server, "connection_number", 0),
                mail_options=tuple(envelope.mail_options),
            )
        )
        return "250 Message accepted for delivery"

    async def _misbehave(self, server: SMTP, fault: SmtpFault) -> str:
        """A fault after the final dot: the message is not kept."""
        if fault.action == "hang":
            await asyncio.sleep(HANG_SECONDS)
        transport = server.transport
        if fault.action == "close" and fault.text(None):
            await server.push(fault.text(None))
        if fault.action != "reply" and isinstance(transport, asyncio.WriteTransport):
            transport.abort()  # nothing more reaches the client
        return fault.text(None) or "250 (never seen: the connection is closed)"


class _CountingSMTP(SMTP):
    """Counts TCP connections (a STARTTLS upgrade is not a new connection), records every
    command and misbehaves as the record's faults say."""

    def __init__(self, record: SmtpServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.record = record
        self.connection_number = 0
        for verb, method in list(self._smtp_methods.items()):
            self._smtp_methods[verb] = self._faulty(verb, method)

    def _faulty(
        self, verb: str, method: Callable[[str | None], Awaitable[None]]
    ) -> Callable[[str | None], Awaitable[None]]:
        @functools.wraps(method)
        async def run(arg: str | None) -> None:
            self.record._record(self.connection_number, verb)
            fault = self.record._take(verb)
            if fault is None:
                await method(arg)
            else:
                await self._act(fault, arg)

        return run

    async def _act(self, fault: SmtpFault, arg: str | None) -> None:
        if fault.action == "hang":
            await asyncio.sleep(HANG_SECONDS)
            return
        if fault.action == "drop_mid_data":
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            await self._reader.readuntil(b"\r\n")
        elif fault.action != "drop" and fault.text(arg):
            await self.push(fault.text(arg))
        if fault.action != "reply" and self.transport is not None:
            self.transport.close()
            # read nothing more: the lines already received are not commands to answer
            await asyncio.sleep(HANG_SECONDS)  # cancelled when the connection is lost

    async def _handle_client(self) -> None:
        limit = self.record.max_connections
        if limit is not None and len(self.record._live) > limit:  # this one is one too many
            self.record.refused += 1
            await self.push("421 4.3.2 Too many concurrent connections from this client")
            if self.transport is not None:
                self.transport.close()
            return
        fault = self.record._take("CONNECT")
        if fault is None:
            await super()._handle_client()
            return
        if fault.action == "hang":
            await asyncio.sleep(HANG_SECONDS)
        elif fault.action != "drop" and fault.text(None):
            await self.push(fault.text(None))
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None:  # not the STARTTLS re-entry
            self.record.connections += 1
            self.connection_number = self.record.connections
            self.record._live.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.record._live.discard(self)
        super().connection_lost(error)


class _Controller(Controller):
    def __init__(self, record: SmtpServer, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.record = record

    def factory(self) -> SMTP:
        return _CountingSMTP(self.record, self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # Bound to port 0: learn the real port before aiosmtpd's self-test connects.
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@contextmanager
def smtp_server(
    *,
    users: Mapping[str, str] | None = None,
    tls: Literal["starttls", "implicit", "none"] = "starttls",
    require_starttls: bool = True,
    rcpt_replies: Mapping[str, str] | None = None,
    data_reply: str | None = None,
    auth_failure_reply: Callable[[str, str], str] | None = None,
    smtputf8: bool = False,
    cert_not_after: datetime | None = None,
) -> Iterator[SmtpServer]:
    """Run an SMTP server on 127.0.0.1 (a free port) for the duration of the block.

    ``users``: accepted logins (``None``: no AUTH offered). AUTH is refused before TLS.
    ``tls``: ``"starttls"`` (default, and required unless ``require_starttls=False``),
    ``"implicit"`` (TLS from the first byte, like port 465) or ``"none"``.
    ``auth_failure_reply(login, password)``: the reply to a failed login (default 535).
    ``smtputf8``: offer SMTPUTF8 (RFC 6531: addresses beyond ASCII), as not every server does.
    ``cert_not_after``: the end of the server certificate's validity (in the past: expired).
    """
    ca = trustme.CA()
    cert = ca.issue_cert(LOCALHOST, "localhost", not_after=cert_not_after)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    record = SmtpServer(host=LOCALHOST, port=0, ca=ca, ssl_context_trusting_ca=client_ctx)
    handler = _Handler(record, rcpt_replies or {}, data_reply)
    accounts = dict(users or {})

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        record.auth_attempts.append(login)
        if accounts.get(login) == password:
            return AuthResult(success=True, handled=False)
        reply = auth_failure_reply(login, password) if auth_failure_reply else None
        return AuthResult(success=False, handled=False, message=reply)

    kwargs: dict[str, Any] = {"hostname": LOCALHOST, "port": 0, "enable_SMTPUTF8": smtputf8}
    if tls == "starttls":
        kwargs.update(tls_context=server_ctx, require_starttls=require_starttls)
    elif tls == "implicit":
        kwargs.update(ssl_context=server_ctx)
    if users is not None:
        # aiosmtpd's auth_require_tls only knows STARTTLS: with implicit TLS the whole
        # connection is encrypted already.
        kwargs.update(authenticator=authenticator, auth_require_tls=tls == "starttls")
    controller = _Controller(record, handler, **kwargs)
    controller.start()
    # aiosmtpd opened one connection to check it is up: do not count it.
    record.connections = 0
    record.ehlos = 0
    record.port = controller.port
    record._controller = controller
    try:
        yield record
    finally:
        controller.stop()


# =============================================================================== HTTP


@dataclass(frozen=True)
class Reply:
    """A canned HTTP answer (queued with `HttpServer.reply`)."""

    status: int = 200
    body: str = "ok"
    headers: Mapping[str, str] = field(default_factory=dict)
    hang: bool = False  # read the request, then never answer (until the server stops)


@dataclass
class Route:
    """A resource at a fixed path: served with ETag / Last-Modified (304 to a matching
    If-None-Match / If-Modified-Since), optionally chunked, lying about its length, or
    redirecting."""

    body: bytes = b""
    status: int = 200
    etag: str | None = None
    last_modified: str | None = None
    content_type: str = "application/octet-stream"
    chunked: bool = False  # Transfer-Encoding: chunked, no Content-Length
    declared_length: int | None = None  # lie about Content-Length, send `body`, then close
    location: str | None = None
    drip: float = 0.0  # chunked: 16 bytes, then this many seconds, and so on (a slow server)
    drip_headers: float = 0.0  # the status line and headers a byte at a time, this far apart


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: Mapping[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpServer:
    """The state of the one test HTTP server; see :func:`http_server`.

    A request is answered by, in order: the next queued `reply()`, the `routes` entry for its
    path, a file under `directory` (with Last-Modified and 304), else `default`."""

    def __init__(self, default: Reply, directory: Path | None) -> None:
        self.url = ""
        self.default = default
        self.directory = directory
        self.routes: dict[str, Route] = {}
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        # called with each request's path before it is answered (in the server's thread):
        # something that must happen between a client's request and its answer
        self.on_request: Callable[[str], None] | None = None

    def url_for(self, path: str) -> str:
        return self.url + "/" + path.lstrip("/")

    def reply(
        self, status: int = 200, body: str = "ok", headers: Mapping[str, str] | None = None
    ) -> None:
        """Queue the answer to the next request not yet answered (FIFO)."""
        with self._lock:
            self._queue.append(Reply(status, body, dict(headers or {})))

    def hang(self, times: int = 1) -> None:
        """Queue ``times`` answers that never come: the request is read, then nothing."""
        with self._lock:
            self._queue.extend(Reply(hang=True) for _ in range(times))

    def seen(self, path: str) -> list[RecordedRequest]:
        """The requests for `path`, in order."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _answer(self, request: RecordedRequest) -> Reply | Route:
        if self.on_request is not None:
            self.on_request(request.path)
        with self._lock:
            self.requests.append(request)
            if self._queue:
                return self._queue.popleft()
            if request.path in self.routes:
                return self.routes[request.path]
        if self.directory is not None:
            file = (self.directory / request.path.lstrip("/")).resolve()
            if file.is_file() and self.directory.resolve() in file.parents:
                modified = formatdate(file.stat().st_mtime, usegmt=True)
                return Route(body=file.read_bytes(), last_modified=modified)
            return Route(body=b"not found", status=404)
        return self.default


class _HttpHandler(BaseHTTPRequestHandler):
    """Answers every method from the `HttpServer` state of its class (`state`)."""

    state: HttpServer
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer = self.state._answer(RecordedRequest(self.command, self.path, headers, body))
        if isinstance(answer, Reply) and answer.hang:
            self.state._stopping.wait(HANG_SECONDS)
            self.close_connection = True
        elif isinstance(answer, Reply):  # a Content-Type among its headers replaces text/plain
            types = [v for k, v in answer.headers.items() if k.lower() == "content-type"]
            others = {k: v for k, v in answer.headers.items() if k.lower() != "content-type"}
            content_type = types[0] if types else "text/plain; charset=utf-8"
            self._send(answer.status, answer.body.encode(), content_type, others)
        else:
            self._serve(answer)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def _send(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str]
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self._write(body)

    def _serve(self, route: Route) -> None:
        if route.drip_headers:
            head = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                + b"X-Pad: "
                + (b"x" * 4000)
                + b"\r\nContent-Length: %d\r\n\r\n" % len(route.body)
            )
            for i in range(len(head)):
                self._write(head[i : i + 1])
                if self.close_connection or self.state._stopping.wait(route.drip_headers):
                    return  # the client gave up, or the server stops
            self._write(route.body)
            return
        validators = {
            k: v for k, v in (("ETag", route.etag), ("Last-Modified", route.last_modified)) if v
        }
        if route.status == 200 and self._not_modified(route):
            self._send(304, b"", route.content_type, validators)
            return
        if route.location:
            validators["Location"] = route.location
        if not route.chunked and route.declared_length is None:
            self._send(route.status, route.body, route.content_type, validators)
            return
        self.send_response(route.status)
        self.send_header("Content-Type", route.content_type)
        for name, value in validators.items():
            self.send_header(name, value)
        if route.chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            size = 16 if route.drip else 4096
            for i in range(0, len(route.body), size):
                piece = route.body[i : i + size]
                self._write(b"%x\r\n%s\r\n" % (len(piece), piece))
                if route.drip and (self.close_connection or self.state._stopping.wait(route.drip)):
                    return  # the client gave up, or the server stops
            self._write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(route.declared_length))
        self.close_connection = True
        self.end_headers()
        self._write(route.body)

    def _not_modified(self, route: Route) -> bool:
        inm = self.headers.get("If-None-Match")
        if inm is not None and route.etag is not None:
            return inm == route.etag
        ims = self.headers.get("If-Modified-Since")
        return ims is not None and route.last_modified is not None and ims == route.last_modified

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (size cap)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # a client that gave up on purpose
            return
        super().handle_error(request, client_address)


@contextmanager
def http_server(
    default: Reply | None = None, *, directory: Path | None = None
) -> Iterator[HttpServer]:
    """Run the test HTTP server on 127.0.0.1 (a free port) for the block: it records every
    request and answers from queued replies, fixed routes, or files under `directory`."""
    state = HttpServer(default or Reply(), directory)
    handler = type("Handler", (_HttpHandler,), {"state": state})
    server = _Server((LOCALHOST, 0), handler)
    state.url = f"http://{LOCALHOST}:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="http", daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        state._stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def unresolvable(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    """Name resolution of `host` fails as a DNS outage makes it fail (the other names resolve
    as ever; no query for `host` leaves the machine)."""
    real = socket.getaddrinfo

    def resolver(name: Any, *args: Any, **kwargs: Any) -> Any:
        if name == host:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)


# =============================================================================== TCP


class TcpProxy:
    """See :func:`tcp_proxy`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server((LOCALHOST, 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = False
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # cut: the listener is closed
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._cut:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(src, dst), daemon=True).start()

    def cut(self) -> None:
        """Close every connection through the proxy and refuse new ones (for good)."""
        with self._lock:
            self._cut = True
            sockets, self._sockets = self._sockets, []
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        self._listener.close()
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextmanager
def tcp_proxy(host: str, port: int) -> Iterator[TcpProxy]:
    """A TCP proxy on 127.0.0.1 (a free port) to `host`:`port` for the block."""
    proxy = TcpProxy((host, port))
    try:
        yield proxy
    finally:
        proxy.cut()


def resolves_to_loopback(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    """`host` (Slack's hooks.slack.com) resolves to 127.0.0.1, where a test's server listens
    (or none does, on `CLOSED_PORT`); no query for it leaves the machine."""
    real = socket.getaddrinfo

    def resolver(name: Any, *args: Any, **kwargs: Any) -> Any:
        return real(LOCALHOST if name == host else name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)

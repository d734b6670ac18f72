"""The pages' event loop is never held up by one request: a library being parsed (pyparsing
took a minute for 5 MB of BibTeX, and /healthz waited 56 s) or a write waiting for SQLite's
lock (the digest job's writer holds it) runs in a worker thread while the other pages answer.
A real uvicorn server on 127.0.0.1; the slow part is held by the test, so nothing depends on
the machine's speed."""

from __future__ import annotations

import contextlib
import re
import threading
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from daemon.db.models import ChannelKind
from daemon.library import bounded
from tests.daemon.conftest import BOTH_BACKENDS
from tests.daemon.web.conftest import Console, ConsoleFactory, csrf_of, hold_password_checks


def _page(console: Console, base: str) -> tuple[str, str]:
    app = console.app
    user = app.store.people.add("ada", app.clock(), channels={ChannelKind.EMAIL: "ada@x.org"})
    page = app.links.manage_url(user.id, app.clock())
    return page, csrf_of(httpx.get(page).text)


def _in_thread(fn: Any) -> tuple[threading.Thread, list[httpx.Response]]:
    answers: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answers.append(fn()))
    thread.start()
    return thread, answers


def test_pages_answer_while_a_library_is_being_read(
    live: tuple[Console, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    console, base = live
    page, csrf = _page(console, base)
    reading, release = threading.Event(), threading.Event()
    real = bounded.read_library_bounded  # the worker process's wait, in a worker thread

    def held(*args: Any, **kw: Any) -> Any:
        reading.set()
        release.wait(60)
        return real(*args, **kw)

    monkeypatch.setattr(bounded, "read_library_bounded", held)
    upload, answers = _in_thread(
        lambda: httpx.post(
            f"{page}/import",
            data={"csrf": csrf},
            files={"library": ("ids.txt", b"2608.16590\n")},
            headers={"Origin": base},
            timeout=120,
        )
    )
    try:
        assert reading.wait(60)
        assert httpx.get(f"{base}/healthz", timeout=30).status_code == 200
        assert upload.is_alive() and not answers  # answered while the file was being read
    finally:
        release.set()
        upload.join(120)
    assert answers and answers[0].status_code == 200


def test_pages_answer_while_a_subscriber_waits_for_the_database_lock(
    live: tuple[Console, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    console, base = live
    page, csrf = _page(console, base)
    people = console.app.store.people
    writing = threading.Event()
    real = people.set_follow

    def announced(*args: Any, **kw: Any) -> Any:
        writing.set()
        return real(*args, **kw)

    monkeypatch.setattr(people, "set_follow", announced)
    writer = console.app.store.engine.connect()
    writer.begin()  # BEGIN IMMEDIATE: the lock, as the digest job's writer holds it
    writer.execute(sa.text("UPDATE user SET display_name = 'Ada' WHERE name = 'ada'"))
    follow, answers = _in_thread(
        lambda: httpx.post(
            f"{page}/follow",
            data={"csrf": csrf, "kind": "keyword", "value": "diffusion"},
            headers={"Origin": base},
            timeout=120,
        )
    )
    try:
        assert writing.wait(60)  # the follow is now waiting for the lock the test holds
        # the health check reads beside a writer, and the page is served meanwhile
        assert httpx.get(f"{base}/healthz", timeout=30).status_code == 200
        assert httpx.get(page, timeout=30).status_code == 200
        assert follow.is_alive() and not answers
    finally:
        writer.commit()
        writer.close()
        follow.join(120)
    assert answers and answers[0].status_code == 303
    (user,) = [u for u, _ in console.app.store.people.subscribers()]
    assert [f.value for f in console.app.store.subscriber.follows(user.id)] == ["diffusion"]


def _from(base: str, address: str) -> httpx.Client:
    """A client whose connections come from `address` (any of 127.0.0.0/8 is this machine's):
    another client address, as the server sees it."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base, transport=transport, timeout=180)


def _log_in(client: httpx.Client, name: str, password: str) -> httpx.Response:
    """POST the login form (its double-submit token sent as a browser on loopback sends it:
    httpx keeps a Secure cookie from plain http)."""
    return _log_in_with(client, name, password)


def _log_in_with(
    client: httpx.Client, name: str, password: str, cookie: str = ""
) -> httpx.Response:
    """`_log_in` sending a cookie more (`name=value`), as a browser holding it does."""
    from daemon.web import auth

    data = {"name": name, "password": password, "token": "the-login-token"}
    cookies = "; ".join(c for c in (f"{auth.LOGIN_COOKIE}=the-login-token", cookie) if c)
    return client.post("/admin/login", data=data, headers={"Cookie": cookies})


def _arrivals(monkeypatch: pytest.MonkeyPatch) -> threading.Semaphore:
    """Counts the logins that come to the queue of the password checks (`LoginGate.turn`), as
    they come, before they are admitted or refused."""
    from daemon.web import auth

    arrived, real = threading.Semaphore(0), auth.LoginGate.turn

    @contextlib.asynccontextmanager
    async def counted(self: auth.LoginGate, *args: Any, **kw: Any) -> Any:
        arrived.release()  # no await before the real turn decides: the loop runs nothing else
        async with real(self, *args, **kw) as admitted:
            yield admitted

    monkeypatch.setattr(auth.LoginGate, "turn", counted)
    return arrived


def test_logins_checked_at_the_same_time_still_stop_at_the_limit(
    live: tuple[Console, str],
) -> None:
    # logins are checked in worker threads: the check of the limit and the count of the
    # attempt are one step, or 30 at once would all be tried (second read of this change)
    from concurrent.futures import ThreadPoolExecutor

    _, base = live
    # three real argon2 checks, two at a time: seconds on a loaded machine (httpx's default
    # 5 s timed out in a CI run with the load at 14), so no speed is asked of them
    with httpx.Client(base_url=base, timeout=180) as client:
        page = client.get("/admin/login")
        token = re.search(r'name="token" value="([^"]+)"', page.text)
        assert token

        # the login cookie is Secure: httpx keeps it from plain http, a browser on loopback not
        cookie = "; ".join(f"{k}={v}" for k, v in page.cookies.items())

        def wrong(_: int) -> int:
            data = {"name": "root", "password": "wrong password!", "token": token.group(1)}
            return client.post("/admin/login", data=data, headers={"Cookie": cookie}).status_code

        with ThreadPoolExecutor(max_workers=30) as pool:
            codes = sorted(pool.map(wrong, range(30)))
    # admin.max_failed_logins = 3; the others locked out, or beyond the logins that may wait
    # their turn (`LOGINS_WAITING`: how many depends on how fast the three are checked)
    assert codes.count(401) == 3 and set(codes[3:]) <= {429, 503}


def test_pages_answer_while_many_logins_wait_for_their_password_check(
    live: tuple[Console, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # at most 2 argon2 checks run at once (64 MiB each); the logins waiting their turn wait on
    # the event loop, not in worker threads: 45 at once held all 40 of the pool's threads, and
    # every page served by a thread waited behind them (a flood of logins from many addresses).
    # Beyond `LOGINS_WAITING` waiting, a login is answered at once, 503 with Retry-After: the
    # waiters queued without end before, each a connection held and a check owed (security QA)
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from daemon.web import auth

    _, base = live
    checking, release = hold_password_checks(monkeypatch, hold=120)
    monkeypatch.setattr(
        auth.LoginLimiter, "attempt", lambda self, app, ip, name, device: (None, app.clock())
    )
    admitted = auth.LOGINS_AT_ONCE + auth.LOGINS_WAITING
    # from 15 addresses, 3 logins each: within the share of one (`LOGINS_PER_CLIENT`)
    clients = [_from(base, f"127.0.0.{10 + i}") for i in range(15)]
    assert 45 // len(clients) <= auth.LOGINS_PER_CLIENT
    with contextlib.ExitStack() as stack:
        for client in clients:
            stack.enter_context(client)

        def wrong(i: int) -> httpx.Response:
            return _log_in(clients[i % len(clients)], f"name{i}", "wrong password!")

        with ThreadPoolExecutor(max_workers=45) as pool:
            futures = [pool.submit(wrong, i) for i in range(45)]
            try:
                assert checking.acquire(timeout=60) and checking.acquire(timeout=60)
                with httpx.Client(base_url=base, timeout=30) as other:
                    assert other.get("/healthz").status_code == 200  # a page in a thread
                    assert other.get("/admin/login").status_code == 200
                # the ones beyond the queue are answered while the checks are still held
                done = as_completed(futures, timeout=120)
                busy = [next(done).result() for _ in range(45 - admitted)]
                assert not checking.acquire(blocking=False)  # two checks at once, no more
            finally:
                release.set()
            assert {r.status_code for r in busy} == {503}
            assert all(int(r.headers["Retry-After"]) > 0 for r in busy)
            assert "busy" in busy[0].text and 'name="password"' in busy[0].text
            rest = [f.result() for f in futures if f.result() not in busy]
            assert [r.status_code for r in rest] == [401] * admitted


def test_a_locked_out_address_takes_no_place_among_the_logins_waiting(
    live: tuple[Console, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the lockout was checked once a login had its turn: a locked-out address's logins waited
    # in the queue of the password checks like any, and sixteen of them kept coming answered
    # every other login, an admin's too, 503 "busy" (security QA). They are refused (429) before
    # the queue now, and the admin's login waits its turn
    from concurrent.futures import ThreadPoolExecutor

    from tests.daemon.web.conftest import PASSWORD

    _, base = live
    with _from(base, "127.0.0.2") as attacker, _from(base, "127.0.0.3") as other:
        for _ in range(3):  # admin.max_failed_logins = 3: the attacker's address is locked out
            assert _log_in(attacker, "mallory", "guess").status_code == 401
        assert _log_in(attacker, "mallory", "guess").status_code == 429
        checking, release = hold_password_checks(monkeypatch, hold=120, of="held password")
        arrived = _arrivals(monkeypatch)
        with ThreadPoolExecutor(max_workers=40) as pool, _from(base, "127.0.0.1") as admin:
            held = [pool.submit(_log_in, other, f"name{i}", "held password") for i in range(2)]
            try:
                assert checking.acquire(timeout=60) and checking.acquire(timeout=60)
                assert arrived.acquire(timeout=60) and arrived.acquire(timeout=60)
                # both checks held: the locked-out logins are answered all the same
                locked = [pool.submit(_log_in, attacker, "mallory", "guess") for _ in range(30)]
                codes = [f.result(timeout=60).status_code for f in locked]
                mine = pool.submit(_log_in, admin, "root", PASSWORD)
                assert arrived.acquire(timeout=60)  # the admin's login is in the queue
            finally:
                release.set()
            assert codes == [429] * 30
            assert "Too many failed logins" in locked[0].result().text
            assert mine.result().status_code == 303  # logged in
            assert mine.result().headers["location"] == "/admin/health"
            assert [f.result().status_code for f in held] == [401, 401]


def test_one_address_takes_at_most_its_share_of_the_logins_waiting(
    live: tuple[Console, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # one address not locked out (yet) took every place of the queue (16 waiting and both
    # checks), and every other login was answered 503 "busy" (security QA). An address holds
    # `LOGINS_PER_CLIENT` places at most: its logins beyond them are answered 503 at once, and
    # an admin from another address gets a place
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from daemon.web import auth
    from tests.daemon.web.conftest import PASSWORD

    _, base = live
    share = auth.LOGINS_PER_CLIENT
    checking, release = hold_password_checks(monkeypatch, hold=120, of="held password")
    arrived = _arrivals(monkeypatch)
    with (
        _from(base, "127.0.0.2") as attacker,
        _from(base, "127.0.0.1") as admin,
        ThreadPoolExecutor(max_workers=40) as pool,
    ):

        def guess(i: int) -> Any:
            return pool.submit(_log_in, attacker, f"name{i}", "held password")

        first = [guess(i) for i in range(2)]
        try:
            assert checking.acquire(timeout=60) and checking.acquire(timeout=60)
            more = [guess(i) for i in range(2, 32)]
            for _ in range(32):
                assert arrived.acquire(timeout=60)
            # those beyond its share are answered while the checks are still held
            done = as_completed(more, timeout=120)
            busy = [next(done).result() for _ in range(32 - share)]
            mine = pool.submit(_log_in, admin, "root", PASSWORD)
            assert arrived.acquire(timeout=60)  # the admin's login is in the queue
            assert not checking.acquire(blocking=False)  # the two held are still held
        finally:
            release.set()
        assert {r.status_code for r in busy} == {503}
        assert all(int(r.headers["Retry-After"]) > 0 for r in busy)
        assert mine.result().status_code == 303
        assert mine.result().headers["location"] == "/admin/health"
        admitted = [f.result() for f in first + more if f.result() not in busy]
        assert [r.status_code for r in admitted] == [401] * share


def test_a_browser_where_the_admin_logged_in_before_gets_a_place_in_a_full_queue(
    live: tuple[Console, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # guessers from many addresses (an IPv6 /48 holds 65,536 /64s) could still fill every place
    # of the queue, each within its share: the admin's login was answered 503 'busy'. A browser
    # holding the name's device cookie (which no guesser can make) has `LOGINS_KNOWN` places
    # more (security QA)
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from daemon.web import auth
    from tests.daemon.web.conftest import PASSWORD

    _, base = live
    admin = _from(base, "127.0.0.1")
    first = _log_in(admin, "root", PASSWORD)  # the browser is known for root from now on
    assert first.status_code == 303
    device = f"{auth.DEVICE_COOKIE}={first.cookies[auth.DEVICE_COOKIE]}"
    checking, release = hold_password_checks(monkeypatch, hold=120, of="held password")
    arrived = _arrivals(monkeypatch)
    places = auth.LOGINS_AT_ONCE + auth.LOGINS_WAITING
    guessers = [_from(base, f"127.0.0.{20 + i}") for i in range(places)]  # one login each
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(max_workers=places + 4) as pool:
        stack.callback(admin.close)  # used already: not entered
        for client in guessers:
            stack.enter_context(client)
        held = [
            pool.submit(_log_in, client, f"name{i}", "held password")
            for i, client in enumerate(guessers)
        ]
        try:
            assert checking.acquire(timeout=60) and checking.acquire(timeout=60)
            for _ in range(places):
                assert arrived.acquire(timeout=60)  # every place is taken
            # the same admin from a browser without the cookie: answered at once
            assert _log_in(admin, "root", PASSWORD).status_code == 503
            known = pool.submit(_log_in_with, admin, "root", PASSWORD, device)
            assert arrived.acquire(timeout=60) and arrived.acquire(timeout=60)
        finally:
            release.set()
        assert known.result().status_code == 303
        assert known.result().headers["location"] == "/admin/health"
        assert sorted(f.result().status_code for f in as_completed(held)) == [401] * places


def test_a_body_larger_than_any_form_is_refused_unread(live: tuple[Console, str]) -> None:
    # the pages read a posted form whole into memory before checking its token (unsubscribe,
    # signup, manage): a body above any form's or upload's size is now refused unread
    # (second read)
    import socket

    from daemon.web.pages import MAX_BODY

    _, base = live
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(
            b"POST /unsubscribe/x HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: " + str(MAX_BODY + 1).encode() + b"\r\n\r\n"
        )  # and no body: the answer comes without waiting for it
        assert conn.recv(64).startswith(b"HTTP/1.1 413 ")
    assert httpx.get(f"{base}/healthz", timeout=30).status_code == 200


def _posted_unsent(base: str, path: str, length: int) -> bytes:
    """The start of the answer to a POST of `path` announcing `length` bytes of form and
    sending none of them: given without waiting for the body, or never (the recv times out)."""
    import socket

    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {length}\r\n\r\n".encode()
        )
        return conn.recv(64)


def test_a_form_larger_than_any_subscriber_form_is_refused_unread(
    live: tuple[Console, str],
) -> None:
    # the subscriber pages' forms were read whole up to the console's upload size (21 MB)
    # before their link or token was checked; beyond `FORM_BODY` they are refused unread,
    # whatever the link (security QA)
    from daemon.web.pages import FORM_BODY

    console, base = live
    page, _ = _page(console, base)
    me = page.removeprefix(base)
    for path in (f"{me}/follow", "/manage", "/signup", "/unsubscribe/x", "/f/x"):
        assert _posted_unsent(base, path, FORM_BODY + 1).startswith(b"HTTP/1.1 413 "), path
        assert _posted_unsent(base, path, 20_000_000).startswith(b"HTTP/1.1 413 "), path


def test_the_console_login_and_logout_are_refused_unread_above_their_forms(
    live: tuple[Console, str],
) -> None:
    # read before any session, they were read whole up to the console's upload size (21 MB):
    # anyone could make the server read and parse 21 MB a request (security QA)
    from daemon.web.pages import FORM_BODY, LOGIN_BODY

    _, base = live
    for path, limit in (("/admin/login", LOGIN_BODY), ("/admin/logout", FORM_BODY)):
        assert _posted_unsent(base, path, limit + 1).startswith(b"HTTP/1.1 413 "), path
        assert _posted_unsent(base, path, 20_000_000).startswith(b"HTTP/1.1 413 "), path


def test_a_console_form_without_a_session_is_refused_unread_above_any_console_form(
    live: tuple[Console, str],
) -> None:
    # a form posted without a session is kept for after the login: its body was read up to
    # 1 MB to be kept; a console form is 4 kB at most, and the body is read only up to a
    # subscriber page's form now (security QA)
    from daemon.web.console import KEPT_MAX_BYTES

    _, base = live
    for length in (KEPT_MAX_BYTES + 1, 1_000_000, 20_000_000):
        assert _posted_unsent(base, "/admin/feeds", length).startswith(b"HTTP/1.1 403 ")


def _answer_unsent(base: str, path: str, length: int, headers: str = "") -> str:
    """The whole answer to a multipart POST of `path` announcing `length` bytes and sending
    none of them (the connection closed by the server, or the recv times out)."""
    import socket

    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nOrigin: {base}\r\n{headers}"
            "Content-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {length}\r\n\r\n".encode()
        )
        answer = b""
        while b"</html>" not in answer:
            part = conn.recv(65536)
            if not part:
                break
            answer += part
        return answer.decode()


def test_a_library_announced_above_its_limit_is_refused_unread_saying_the_limit(
    live: tuple[Console, str],
) -> None:
    # above 21 MB the body limit's bare 413 ("This request is too large") came first, where a
    # smaller file too large got the page saying the limit (security QA)
    from daemon.web.subscriber import UPLOAD_BYTES

    console, base = live
    page, _ = _page(console, base)
    for length in (UPLOAD_BYTES + 100_000, 25_000_000):
        answer = _answer_unsent(base, page.removeprefix(base) + "/import", length)
        assert answer.startswith("HTTP/1.1 413 "), answer[:200]
        assert f"larger than {UPLOAD_BYTES // 1_000_000} MB" in answer
    answer = _answer_unsent(base, "/me/forged.link/import", 25_000_000)
    assert answer.startswith("HTTP/1.1 400 ")


@pytest.mark.parametrize("action", ["follow", "settings", "channel", "feedback", "delete"])
def test_a_form_posted_to_a_forged_page_link_is_refused_before_its_body_is_read(
    live: tuple[Console, str], action: str
) -> None:
    # the form was read before the link was checked: a forged link's POST was answered only
    # once its whole body had come (security QA)
    _, base = live
    answer = _posted_unsent(base, f"/me/forged.link/{action}", 50_000)
    assert answer.startswith(b"HTTP/1.1 400 ")


def test_an_unsubscribe_posted_to_a_forged_link_is_refused_before_its_body_is_read(
    live: tuple[Console, str],
) -> None:
    _, base = live
    assert _posted_unsent(base, "/unsubscribe/forged.link", 50_000).startswith(b"HTTP/1.1 400 ")


@BOTH_BACKENDS
def test_two_follows_posted_at_once_stop_at_the_limit(
    live: tuple[Console, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the limit was checked before the follow was stored, outside its transaction: two posts
    # at once at 99 follows both passed it, and the subscriber had 101 (security QA). They
    # reach the store together here: one is stored, the other refused
    from daemon.db.models import FollowKind
    from daemon.db.people import People
    from daemon.web.subscriber import FOLLOWS_MAX

    console, base = live
    page, csrf = _page(console, base)
    people = console.app.store.people
    (user,) = [u for u, _ in people.subscribers()]
    for i in range(FOLLOWS_MAX - 1):
        people.set_follow(user.id, FollowKind.KEYWORD, f"word{i}", muted=False)
    together, real = threading.Barrier(2, timeout=60), People.set_follow

    def at_once(self: People, *args: Any, **kw: Any) -> Any:
        together.wait()
        return real(self, *args, **kw)

    monkeypatch.setattr(People, "set_follow", at_once)

    def follow(word: str) -> httpx.Response:
        data = {"csrf": csrf, "kind": "keyword", "value": word}
        return httpx.post(f"{page}/follow", data=data, headers={"Origin": base}, timeout=120)

    (a, answers_a), (b, answers_b) = (
        _in_thread(lambda: follow("one")),
        _in_thread(lambda: follow("two")),
    )
    a.join(120)
    b.join(120)
    codes = sorted(r.status_code for r in answers_a + answers_b)
    assert codes == [303, 400]
    assert len(console.app.store.subscriber.follows(user.id)) == FOLLOWS_MAX


@pytest.mark.parametrize("path", ["/admin/login", "/admin/logout", "/manage"])
def test_a_client_gone_while_its_form_is_read_is_no_error(
    console_factory: ConsoleFactory, path: str
) -> None:
    # a client that announced a form and went away before sending it made the form's read
    # raise ClientDisconnect: the app raised it again after its 500 page, and uvicorn logged
    # "Exception in ASGI application" with a 40-line traceback, at the request rate of anyone
    # (security QA). It is answered 400 (to no one), and the app returns
    import asyncio
    from collections.abc import MutableMapping

    web = console_factory().daemon.web
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.9", 5000), "server": ("127.0.0.1", 8080),
        "headers": [
            (b"host", b"127.0.0.1:8080"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", b"5000"),
            (b"cookie", b"paperwire_form=t; paperwire_login=t"),
        ],
    }  # fmt: skip
    arriving: list[dict[str, Any]] = [
        {"type": "http.request", "body": b"csrf=t&token=t&name=x", "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return arriving.pop(0) if arriving else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(web(scope, receive, send))  # raised ClientDisconnect before
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400

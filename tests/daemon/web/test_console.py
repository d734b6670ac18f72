"""The console over HTTP (FastAPI's test client, https so the Secure cookies travel): closed
without a session, login with a limit, CSRF on every form, the audit log, and each page's
actions with the validation of the command line. The browser tests are in
test_console_browser.py."""

from __future__ import annotations

import html
import logging
import re
import time
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from daemon import jobs
from daemon.db.digests import NewItem
from daemon.db.models import ChannelKind
from tests.daemon.conftest import (
    BOTH_BACKENDS,
    FEEDS,
    POSTGRES_ONLY,
    pool_exhausted,
    terminate_connections,
)
from tests.daemon.web.conftest import (
    PASSWORD,
    Console,
    ConsoleFactory,
    csrf_of,
    hold_password_checks,
    log_in,
)
from tests.servers import Reply, Route, http_server, unresolvable

HF = (FEEDS / "hf" / "daily_papers_2026-08-20.json").as_uri()
HOOK = "https://hooks.slack.com/services/T0ABC/B0DEF/s3cretToken"
PAGES = ("health", "feeds", "subscribers", "deliveries", "config", "audit")


@pytest.fixture
def console(console_factory: ConsoleFactory) -> Console:
    return console_factory()


@pytest.fixture
def client(console: Console) -> TestClient:
    return TestClient(console.daemon.web, base_url="https://127.0.0.1:8080")


def _audit(console: Console) -> list[tuple[str, str, str]]:
    return [(a.admin, a.action, a.target) for a in console.app.store.admin.audit_log()]


# ---- closed without a session --------------------------------------------------------------------


def test_every_page_is_closed_without_a_session(client: TestClient) -> None:
    for page in (*PAGES, "subscribers/ada", "subscribers/ada/preview"):
        r = client.get(f"/admin/{page}", follow_redirects=False)
        assert r.status_code == 303, page
        assert r.headers["location"] == f"/admin/login?next=%2Fadmin%2F{quote(page, safe='')}"
    for action in ("feeds", "subscribers", "config", "deliveries/retry", "feeds/x/remove"):
        r = client.post(f"/admin/{action}", data={"csrf": "guess"})
        assert r.status_code == 403 and "Not logged in" in r.text, action


def test_with_no_admin_the_console_says_it_is_closed(console_factory: ConsoleFactory) -> None:
    console = console_factory(extra="")
    console.config.write_text(console.config.read_text().replace("root = ", "# root = "))
    text = console.config.read_text().replace("passwords = { # root", "passwords = {} # { root")
    console.config.write_text(text)
    console.app.reload_settings()
    page = TestClient(console.daemon.web, base_url="https://127.0.0.1:8080").get("/admin/login")
    assert "The console is closed" in page.text and "paperwire admin set-password" in page.text


# ---- login ---------------------------------------------------------------------------------------


def test_login_sets_a_strict_cookie_and_logout_ends_the_session(
    console: Console, client: TestClient
) -> None:
    page = client.get("/admin/login")
    assert "<title>Log in · paperwire console</title>" in page.text  # it had none
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token
    r = client.post(
        "/admin/login",
        data={"name": "Root", "password": PASSWORD, "token": token.group(1)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("paperwire_admin="))
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/admin"):
        assert flag in cookie
    health = client.get("/admin/health")
    assert health.status_code == 200 and "Health" in health.text
    csp = health.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script" not in csp  # no script is allowed at all
    assert "<script" not in health.text
    stolen = dict(client.cookies)
    client.post("/admin/logout", data={"csrf": csrf_of(health.text)})
    assert client.get("/admin/health", follow_redirects=False).status_code == 303
    # the old cookie is dead: the session is gone from the database
    replay = TestClient(console.daemon.web, base_url="https://127.0.0.1:8080", cookies=stolen)
    assert replay.get("/admin/health", follow_redirects=False).status_code == 303
    assert [a[1] for a in _audit(console)][:2] == ["logged out", "logged in"]


def test_log_out_after_the_session_ended_goes_to_the_login_page(
    console: Console, client: TestClient
) -> None:
    """The console left open overnight: its session has expired (admin.session_hours), and
    "Log out" said "Form refused … reload the page and try again"."""
    from tests.daemon.conftest import NOW

    csrf = log_in(client)
    clock: Any = console.app.clock
    clock.now = NOW + timedelta(hours=13)  # session_hours = 12
    r = client.post("/admin/logout", data={"csrf": csrf})
    assert r.status_code == 200 and r.url.path == "/admin/login"
    assert "Form refused" not in r.text and "You are logged out." in r.text
    # a live session still needs the form's token to end
    log_in(client)
    refused = client.post("/admin/logout", data={"csrf": "guess"})
    assert refused.status_code == 403 and client.get("/admin/health").url.path == "/admin/health"


def test_the_login_leads_back_to_the_page_asked_for(client: TestClient) -> None:
    """A console page opened without a session (it expired; a bookmark) goes to the login,
    and the login back to that page, through a wrong password too (it went to Health)."""
    r = client.get("/admin/deliveries?state=failed")
    assert (
        r.url.path == "/admin/login"
        and 'name="next" value="/admin/deliveries?state=failed"' in r.text
    )
    token = re.search(r'name="token" value="([^"]+)"', r.text)
    assert token
    form = {"name": "root", "token": token.group(1), "next": "/admin/deliveries?state=failed"}
    wrong = client.post("/admin/login", data={**form, "password": "wrong password!"})
    assert wrong.status_code == 401 and 'value="/admin/deliveries?state=failed"' in wrong.text
    token = re.search(r'name="token" value="([^"]+)"', wrong.text)
    assert token
    done = client.post("/admin/login", data={**form, "token": token.group(1), "password": PASSWORD})
    assert done.url.path == "/admin/deliveries" and done.url.query == b"state=failed"


@pytest.mark.parametrize(
    "then",
    [
        *("https://evil.example/admin/", "//evil.example/admin/", "/admin/logout", "/me/x"),
        *("/admin/../me/x", "/admin/%2e%2e/me/x", "/admin/./../unsubscribe/x"),  # second read
    ],
)
def test_the_login_leads_nowhere_else(client: TestClient, then: str) -> None:
    page = client.get(f"/admin/login?next={quote(then, safe='')}")
    assert 'name="next"' not in page.text
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token
    data = {"name": "root", "password": PASSWORD, "token": token.group(1), "next": then}
    assert client.post("/admin/login", data=data).url.path == "/admin/health"


def test_wrong_passwords_are_refused_then_locked_out(console: Console, client: TestClient) -> None:
    from tests.daemon.conftest import NOW

    def attempt(name: str, password: str) -> Any:
        page = client.get("/admin/login")
        token = re.search(r'name="token" value="([^"]+)"', page.text)
        assert token
        return client.post(
            "/admin/login", data={"name": name, "password": password, "token": token.group(1)}
        )

    for _ in range(3):  # admin.max_failed_logins = 3
        r = attempt("root", "wrong password!")
        assert r.status_code == 401 and "Wrong name or password" in r.text
    locked = attempt("root", PASSWORD)  # even the right password waits now
    assert locked.status_code == 429 and "try again in 15 minute(s)" in locked.text
    assert client.get("/admin/health", follow_redirects=False).status_code == 303
    assert attempt("nobody", "x").status_code == 401  # an unknown name: the same answer
    clock: Any = console.app.clock
    clock.now = NOW + timedelta(minutes=16)
    assert attempt("root", PASSWORD).url.path == "/admin/health"
    actions = [a[1] for a in _audit(console)]
    assert actions.count("login failed") == 4 and "login refused: locked out" in actions


def test_a_password_typed_into_the_name_field_is_not_written_in_the_audit_log(
    console: Console, client: TestClient
) -> None:
    """A failed login was audited with the name as typed, whatever it was: the password typed
    into the name field (a slip of the cursor) stood in the audit log, shown to every admin
    (security QA). A name that is no admin's is written "?" now."""
    page = client.get("/admin/login")
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token

    def attempt(name: str, password: str) -> int:
        data = {"name": name, "password": password, "token": token.group(1)}
        return client.post("/admin/login", data=data).status_code

    assert attempt(PASSWORD, "") == 401  # the password in the name field
    assert attempt("root", "wrong password!") == 401
    for _ in range(3):  # admin.max_failed_logins = 3: locked out, audited once
        attempt(PASSWORD, "")
    log_in_page = client.get("/admin/login")
    assert PASSWORD not in log_in_page.text
    clock: Any = console.app.clock
    clock.now = clock.now + timedelta(minutes=16)
    log_in(client)
    rows = console.app.store.admin.audit_log()
    assert not [r for r in rows if PASSWORD in f"{r.admin} {r.target} {r.detail}"]
    assert ("?", "login failed", "no admin of that name") in [
        (r.admin, r.action, r.detail) for r in rows
    ]
    assert ("root", "login failed") in [(r.admin, r.action) for r in rows]
    assert ("?", "login refused: locked out") in [(r.admin, r.action) for r in rows]
    assert PASSWORD not in client.get("/admin/audit").text


def test_logins_waiting_on_other_event_loops_are_answered(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a TestClient serves each request on an event loop of its own: a login that waited for
    # the two being checked was woken from the other loop's thread, and hung for ever
    from concurrent.futures import ThreadPoolExecutor, wait

    from daemon.web import auth

    checking, release = hold_password_checks(monkeypatch, hold=120)
    page = TestClient(console.daemon.web, base_url="https://127.0.0.1:8080").get("/admin/login")
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token

    def wrong(i: int) -> int:
        client = TestClient(console.daemon.web, base_url="https://127.0.0.1:8080")
        client.cookies.set(auth.LOGIN_COOKIE, page.cookies[auth.LOGIN_COOKIE], path="/admin")
        data = {"name": f"name{i}", "password": "wrong password!", "token": token.group(1)}
        return client.post("/admin/login", data=data).status_code

    pool = ThreadPoolExecutor(max_workers=6)
    try:
        logins = [pool.submit(wrong, i) for i in range(6)]
        assert checking.acquire(timeout=60) and checking.acquire(timeout=60)
        time.sleep(0.5)  # the other four wait for their turn
        assert not checking.acquire(blocking=False)  # two checks at once, no more
    finally:
        release.set()
    done, waiting = wait(logins, timeout=60)
    pool.shutdown(wait=not waiting)
    assert not waiting, f"{len(waiting)} logins never answered"
    assert sorted(f.result() for f in done) == [401] * 6


def test_the_login_form_needs_its_own_token(client: TestClient) -> None:
    client.get("/admin/login")
    r = client.post("/admin/login", data={"name": "root", "password": PASSWORD, "token": "x"})
    assert r.status_code == 403 and "Form refused" in r.text


def test_a_console_opened_over_plain_http_says_where_its_cookies_work(
    console_factory: ConsoleFactory,
) -> None:
    """An https base_url makes the cookies Secure: a browser at a plain http address of the
    machine (not loopback) keeps none, and every login was "Form refused … reload the page and
    try again", which never helped. It says where to open the console instead."""
    console = console_factory(base_url="https://papers.lab.example")
    lan = TestClient(console.daemon.web, base_url="http://192.0.2.7:8080")
    page = lan.get("/admin/login")
    assert "Secure" in page.headers["set-cookie"]
    lan.cookies.clear()  # what a browser does with a Secure cookie over plain http
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token
    r = lan.post("/admin/login", data={"name": "root", "password": PASSWORD,
                                       "token": token.group(1)})  # fmt: skip
    assert r.status_code == 400 and "Form refused" not in r.text
    assert "Open the console at https://papers.lab.example/admin" in r.text
    assert 'value="root"' in r.text  # the name kept
    # at the right address, or with a stale form, the form is refused as before
    stale = TestClient(console.daemon.web, base_url="https://papers.lab.example")
    stale.get("/admin/login")
    r = stale.post("/admin/login", data={"name": "root", "password": PASSWORD, "token": "x"})
    assert r.status_code == 403 and "Form refused" in r.text


def test_two_login_tabs_both_log_in(client: TestClient) -> None:
    """The login page opened in two tabs: the first tab's form was refused, the second had
    replaced the browser's login token."""
    first = re.search(r'name="token" value="([^"]+)"', client.get("/admin/login").text)
    second = re.search(r'name="token" value="([^"]+)"', client.get("/admin/login").text)
    assert first and second
    data = {"name": "root", "password": PASSWORD, "token": first.group(1)}
    assert client.post("/admin/login", data=data).url.path == "/admin/health"


def test_a_console_behind_a_tls_proxy_is_not_told_to_open_itself(
    console_factory: ConsoleFactory,
) -> None:
    """Behind a TLS proxy on another machine (a container's: its X-Forwarded-Proto not
    trusted), the request is plain http at the public name: a login form kept open for more
    than its token's hour said "Open the console at https://papers.lab.example/admin", the
    page it was on, where a reload is what helps."""
    console = console_factory(base_url="https://papers.lab.example")
    proxied = TestClient(console.daemon.web, base_url="http://papers.lab.example",
                         headers={"X-Forwarded-Proto": "https"})  # fmt: skip
    page = proxied.get("/admin/login")
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token
    proxied.cookies.clear()  # the login token's cookie expired (an hour)
    r = proxied.post("/admin/login", data={"name": "root", "password": PASSWORD,
                                           "token": token.group(1)})  # fmt: skip
    assert r.status_code == 403 and "Form refused" in r.text and "Open the console" not in r.text


def test_a_removed_admin_loses_the_session(console: Console, client: TestClient) -> None:
    from daemon.config_file import UNSET, edit

    log_in(client)
    console.app.apply_settings(edit(console.config, {"admin.passwords.root": UNSET}))
    assert client.get("/admin/health", follow_redirects=False).status_code == 303


def test_a_new_password_ends_the_sessions_however_it_was_set(
    console: Console, client: TestClient
) -> None:
    # `admin set-password --print` puts the hash in the file or the environment by hand: the
    # command ends no session then, and an attacker's session must end all the same
    from daemon.config_file import edit
    from daemon.passwords import hash_password

    log_in(client)
    assert client.get("/admin/health", follow_redirects=False).status_code == 200
    same = console.app.settings.admin.passwords["root"]
    console.app.apply_settings(edit(console.config, {"admin.passwords.root": same}))
    assert client.get("/admin/health", follow_redirects=False).status_code == 200  # unchanged
    new = hash_password("another long password")
    console.app.apply_settings(edit(console.config, {"admin.passwords.root": new}))
    assert client.get("/admin/health", follow_redirects=False).status_code == 303


# ---- CSRF ----------------------------------------------------------------------------------------


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(
    console: Console, client: TestClient
) -> None:
    log_in(client)
    for data in ({}, {"csrf": ""}, {"csrf": "forged-token"}):
        r = client.post("/admin/feeds", data={**data, "name": "hf", "url": HF, "action": "add"})
        assert r.status_code == 403 and "CSRF" in r.text
    assert console.app.store.feeds.all() == []
    # another session's token does not do either
    other = TestClient(console.daemon.web, base_url="https://127.0.0.1:8080")
    token = log_in(other)
    r = client.post("/admin/feeds", data={"csrf": token, "name": "hf", "url": HF, "action": "add"})
    assert r.status_code == 403 and console.app.store.feeds.all() == []


# ---- feeds ---------------------------------------------------------------------------------------


def test_feeds_are_checked_test_fetched_added_and_changed(
    console: Console, client: TestClient
) -> None:
    csrf = log_in(client)

    def post(**d: str) -> Any:
        return client.post("/admin/feeds", data={"csrf": csrf, **d})

    for url, rule in (
        ("https://", "has no host"),
        ("https://x y/feed", "contains a space"),
        ("127.0.0.1", "not an http(s) URL"),
        ("file:///nope.xml", "cannot read"),
    ):
        r = post(name="bad", url=url, action="add")
        assert r.status_code == 400 and rule in r.text, url
    tested = post(name="hf", url=HF, action="test")
    assert "15 paper(s), 15 new" in tested.text and console.app.store.feeds.all() == []
    added = post(name="hf", url=HF, action="add")
    assert added.history[0].status_code == 303 and added.url.path == "/admin/feeds"
    assert "Added feed hf: 15 entries (15 new), newest 2026-08-" in added.text
    assert [f.name for f in console.app.store.feeds.all()] == ["hf"]
    # the same feed again (the second request of a double click, the one the browser shows)
    # is the feed added, not "already exists"; another address under its name is refused
    again = post(name="hf", url=HF, action="add")
    assert again.url.path == "/admin/feeds" and "Feed hf is there already, as given." in again.text
    assert "already exists" in post(name="hf", url=HF + "?other", action="add").text
    client.post("/admin/feeds/hf/disable", data={"csrf": csrf})
    assert console.app.store.feeds.all()[0].enabled is False
    # added again while disabled: it says so, not "as given" (second read)
    assert "Feed hf is there already, disabled" in post(name="hf", url=HF, action="add").text
    client.post("/admin/feeds/hf/enable", data={"csrf": csrf})
    r = client.post("/admin/feeds/hf/remove", data={"csrf": csrf, "confirm": "yes"})
    assert "Feed hf removed" in r.text and console.app.store.feeds.all() == []
    assert ("root", "feed added", "hf") in _audit(console)


def test_a_double_click_on_a_feeds_remove_shows_it_removed(
    console: Console, client: TestClient
) -> None:
    """The second request of a double click on a feed's "Remove" got the 404 page "no feed
    named 'nature'", as if the removal had failed; it now goes back to the feeds."""
    csrf = log_in(client)
    console.app.store.feeds.add("nature", "https://www.nature.com/nature.rss", console.app.clock())
    sure = {"csrf": csrf, "confirm": "yes"}
    assert "Feed nature removed" in client.post("/admin/feeds/nature/remove", data=sure).text
    again = client.post("/admin/feeds/nature/remove", data=sure)
    assert again.status_code == 200 and again.url.path == "/admin/feeds"
    assert "nature is not there (removed already)." in again.text
    assert [a for a in _audit(console) if a[1] == "feed removed"] == [
        ("root", "feed removed", "nature")
    ]
    assert client.post("/admin/feeds/nature/disable", data={"csrf": csrf}).status_code == 404


def test_a_feeds_remove_asks_for_the_box_first(console: Console, client: TestClient) -> None:
    """One press of a feed's "Remove" removed it (its papers no longer naming their source),
    where a subscriber's asks for the box "yes, for good" first; a form without the box (a
    keyboard's Enter, a page of before) now removes nothing and says why."""
    csrf = log_in(client)
    feeds = console.app.store.feeds
    feeds.add("nature", "https://www.nature.com/nature.rss", console.app.clock())
    page = client.get("/admin/feeds").text
    assert 'name="confirm" value="yes" id="remove-confirm-nature"' in page
    kept = client.post("/admin/feeds/nature/remove", data={"csrf": csrf})
    assert kept.url.path == "/admin/feeds" and [f.name for f in feeds.all()] == ["nature"]
    assert "Feed nature was not removed: tick “yes, for good” first." in kept.text
    assert [a for a in _audit(console) if a[1] == "feed removed"] == []
    done = client.post("/admin/feeds/nature/remove", data={"csrf": csrf, "confirm": "yes"})
    assert "Feed nature removed" in done.text and feeds.all() == []
    refused = client.post("/admin/feeds/nature/remove", data={"confirm": "yes"})  # no CSRF
    assert refused.status_code == 403


def test_a_feed_whose_test_fetch_fails_can_be_added_anyway(
    console: Console, client: TestClient, tmp_path: Path
) -> None:
    # the console refused any feed whose test fetch failed: a journal's server down for the
    # afternoon could not be added until it was back
    csrf = log_in(client)
    later = (tmp_path / "later.xml").as_uri()  # not there yet: the test fetch fails
    refused = client.post(
        "/admin/feeds", data={"csrf": csrf, "name": "j", "url": later, "action": "add"}
    )
    assert refused.status_code == 400 and "not added: the test fetch failed" in refused.text
    assert 'value="add-unchecked"' in refused.text and console.app.store.feeds.all() == []
    # an error that names the URL itself: the line under the form said it twice ("The test
    # fetch of URL failed: URL: HTTP 404 …")
    with http_server(Reply(404, "not found")) as gone:
        missing = {"csrf": csrf, "name": "g", "url": gone.url_for("/feed.xml"), "action": "add"}
        (said,) = re.findall(
            r'<p class="bad">(.*?)</p>', client.post("/admin/feeds", data=missing).text
        )
    assert html.unescape(said).count(gone.url_for("/feed.xml")) == 1, said
    assert "HTTP 404" in said
    form = {"csrf": csrf, "name": "j", "url": later, "action": "add-unchecked"}
    added = client.post("/admin/feeds", data=form)
    assert added.url.path == "/admin/feeds" and "Added feed j without a test fetch" in added.text
    assert [(f.name, f.url) for f in console.app.store.feeds.all()] == [("j", later)]
    assert "Feed j is there already, as given." in client.post("/admin/feeds", data=form).text
    rss = (FEEDS / "generic" / "plain_rss2_constructed.xml").read_bytes()
    with http_server(Reply(404, "not found")) as server:  # a feed that moved for good
        server.routes["/old.rss"] = Route(status=301, location=server.url_for("/new.rss"))
        server.routes["/new.rss"] = Route(body=rss, content_type="application/rss+xml")
        moved = {"csrf": csrf, "name": "m", "url": server.url_for("/old.rss"), "action": "add"}
        shown = html.unescape(client.post("/admin/feeds", data=moved).text)
    assert f"moved for good to {server.url_for('/new.rss')}: added with that address" in shown
    assert console.app.store.feeds.all()[-1].url == server.url_for("/new.rss")
    taken = client.post("/admin/feeds", data=form | {"url": HF})
    assert taken.status_code == 400 and "feed 'j' already exists" in html.unescape(taken.text)


def test_a_feed_whose_host_does_not_resolve_now_can_be_added_anyway(
    console_factory: ConsoleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "Add anyway" is for a server down right now, but a name that did not resolve (DNS down,
    # no network yet) was refused before any fetch, without the button: no way to add it
    unresolvable(monkeypatch, "feeds.lab.example")
    console = console_factory(allow_private=False)
    client = TestClient(console.daemon.web, base_url="https://127.0.0.1:8080")
    csrf = log_in(client)
    url = "https://feeds.lab.example/rss"
    form = {"csrf": csrf, "name": "lab", "url": url, "action": "add"}
    refused = client.post("/admin/feeds", data=form)
    assert refused.status_code == 400
    assert "cannot resolve host &#39;feeds.lab.example&#39;" in refused.text
    assert 'value="add-unchecked"' in refused.text and console.app.store.feeds.all() == []
    added = client.post("/admin/feeds", data=form | {"action": "add-unchecked"})
    assert "Added feed lab without a test fetch" in added.text
    assert [(f.name, f.url) for f in console.app.store.feeds.all()] == [("lab", url)]
    moved = form | {"url": url + "2", "action": "set-url-unchecked"}
    assert client.post("/admin/feeds", data=moved).status_code == 200
    assert [f.url for f in console.app.store.feeds.all()] == [url + "2"]
    # the address policy still holds: a host inside the network is refused, checked or not
    inside = form | {"name": "in", "url": "http://127.0.0.1/rss", "action": "add-unchecked"}
    kept_out = client.post("/admin/feeds", data=inside)
    assert kept_out.status_code == 400 and "non-public address" in kept_out.text


def test_a_feed_that_moved_gets_its_new_address_from_its_row(
    console: Console, client: TestClient, tmp_path: Path
) -> None:
    # the console could add, disable and remove a feed, not give it a new address: a journal
    # whose site moved lost its counts to a remove and an add
    csrf = log_in(client)
    feeds = console.app.store.feeds
    old = (tmp_path / "old.xml").as_uri()
    feeds.add("j", old, console.app.clock())
    listed = client.get("/admin/feeds").text
    assert 'href="/admin/feeds?edit=j"' in listed
    form = client.get("/admin/feeds?edit=j").text
    assert "A new address for j" in form and f'value="{old}"' in form
    assert 'value="set-url"' in form and 'value="add"' not in form

    def post(**d: str) -> Any:
        return client.post("/admin/feeds", data={"csrf": csrf, "name": "j", **d})

    later = (tmp_path / "later.xml").as_uri()  # not there yet: the test fetch fails
    refused = post(url=later, action="set-url")
    assert refused.status_code == 400 and "not changed: the test fetch failed" in refused.text
    assert 'value="set-url-unchecked"' in refused.text and feeds.all()[0].url == old
    tested = post(url=HF, action="test-new-url")
    assert "15 paper(s), 15 new" in tested.text and feeds.all()[0].url == old
    changed = post(url=HF, action="set-url")
    assert changed.url.path == "/admin/feeds"
    assert f"Feed j now fetches {HF}: 15 entries (15 new)" in html.unescape(changed.text)
    assert [(f.name, f.url) for f in feeds.all()] == [("j", HF)]
    assert f"Feed j fetches {HF}." in html.unescape(post(url=HF, action="set-url").text)
    unchecked = html.unescape(post(url=later, action="set-url-unchecked").text)
    assert f"Feed j now fetches {later}, not fetched yet" in unchecked
    feeds.add("k", HF, console.app.clock())
    taken = post(url=HF, action="set-url-unchecked")
    assert taken.status_code == 400 and "feed 'k' already has the address" in html.unescape(
        taken.text
    )
    assert ("root", "feed address changed", "j") in _audit(console)
    gone = client.post("/admin/feeds", data={"csrf": csrf, "name": "z", "url": HF,
                                             "action": "set-url"})  # fmt: skip
    assert "There is no feed z any more." in gone.text


def test_a_private_feeds_token_stays_out_of_the_console_audit_log(
    console: Console, client: TestClient
) -> None:
    # the console's feed edits wrote a private feed's address whole into the audit log
    csrf = log_in(client)
    first = "http://127.0.0.1:1/feed.xml?key=zot3ro&tag=ml"
    moved = "http://127.0.0.1:1/feed.xml?apikey=ino43ader"
    data = {"csrf": csrf, "name": "z", "url": first, "action": "add-unchecked"}
    assert client.post("/admin/feeds", data=data).url.path == "/admin/feeds"
    data |= {"url": moved, "action": "set-url-unchecked"}
    assert client.post("/admin/feeds", data=data).url.path == "/admin/feeds"
    assert console.app.store.feeds.all()[0].url == moved  # kept whole
    details = " ".join(a.detail for a in console.app.store.admin.audit_log())
    assert "zot3ro" not in details and "ino43ader" not in details, details
    assert "?key=**********&tag=ml" in details
    page = client.get("/admin/audit").text
    assert "zot3ro" not in page and "ino43ader" not in page


# ---- subscribers ---------------------------------------------------------------------------------


def test_subscribers_are_added_edited_paused_and_removed_with_the_cli_rules(
    console: Console, client: TestClient
) -> None:
    csrf = log_in(client)
    people = console.app.store.people

    def add(**d: str) -> Any:
        return client.post("/admin/subscribers", data={"csrf": csrf, "timezone": "UTC", **d})

    refused = add(name="dan", email="dan@").text
    assert "is not an email address" in refused
    # said at the top too: the form is below a list of up to 100 subscribers, out of sight
    assert refused.index('id="refused"') < refused.index('id="subscribers"')
    assert "Not added: email: &#39;dan@&#39; is not an email address" in refused
    assert "is not a valid user name" in add(name="a b", email="ab@lab.example").text
    assert "somewhere to go" in add(name="carol").text
    assert "not a Slack incoming-webhook URL" in add(name="s", slack="https://example.org/x").text
    assert "s3cretToken" not in add(name="s", slack=HOOK.replace("https", "http")).text
    assert (
        "time zone: not a known time zone"
        in add(name="m", email="m@lab.example", timezone="Mars/Base").text
    )
    r = add(name="eve", email="Eve <eve@lab.example>", hour="6")
    assert r.url.path == "/admin/subscribers/eve" and "Added eve" in r.text
    eve = people.get("eve")
    assert (eve.display_name, eve.digest_hour) == ("Eve", 6)
    taken = html.unescape(add(name="eve2", email="EVE@lab.example").text)
    assert "already the email address of user 'eve'" in taken

    def edit(**d: str) -> Any:
        return client.post("/admin/subscribers/eve", data={"csrf": csrf, "timezone": "UTC", **d})

    assert "no channel" in edit(email="").text  # her only channel
    r = edit(email="eve@lab.example", hour="9", slack=HOOK, display_name="Eve L.")
    assert "Saved eve" in r.text and "s3cretToken" not in r.text
    assert people.get("eve").digest_hour == 9
    assert {c.kind for c in people.channels_of(people.get("eve").id)} == {
        ChannelKind.EMAIL,
        ChannelKind.SLACK,
    }
    edit(email="eve@lab.example", hour="9")  # an empty webhook field keeps the webhook
    assert len(people.channels_of(people.get("eve").id)) == 2
    edit(email="eve@lab.example", hour="", remove_slack="yes")
    assert (
        len(people.channels_of(people.get("eve").id)) == 1 and people.get("eve").digest_hour is None
    )

    bad = client.post("/admin/subscribers/eve/follow", data={"csrf": csrf, "value": "  "})
    assert "empty keyword" in bad.text
    client.post("/admin/subscribers/eve/pause", data={"csrf": csrf})
    assert not people.get("eve").active
    client.post("/admin/subscribers/eve/resume", data={"csrf": csrf})
    assert people.get("eve").active
    found = client.get("/admin/subscribers?q=lab.example")
    assert "user-eve" in found.text
    assert "user-eve" not in client.get("/admin/subscribers?q=nobody").text
    kept = client.post("/admin/subscribers/eve/remove", data={"csrf": csrf})
    assert "eve was not removed" in kept.text and people.get("eve")  # not without the box
    client.post("/admin/subscribers/eve/remove", data={"csrf": csrf, "confirm": "yes"})
    assert people.find() == (0, [])
    actions = [a[1] for a in _audit(console)]
    for done in ("user added", "user changed", "user paused", "user resumed", "user removed"):
        assert done in actions


def test_a_channel_paperwire_stopped_says_why_and_starts_again(
    console: Console, client: TestClient
) -> None:
    from sqlmodel import Session

    from daemon.db.models import Channel

    app = console.app
    user = app.store.people.add("ada", app.clock(), channels={ChannelKind.EMAIL: "ada@lab.example"})
    (channel,) = app.store.people.channels_of(user.id)
    with Session(app.store.engine) as s:  # as the delivery job stops one (test_delivery)
        row = s.get_one(Channel, channel.id)
        row.active, row.stopped_reason = False, "its last 3 digests were refused: 550 no user"
        s.add(row)
        s.commit()
    csrf = log_in(client)
    page = client.get("/admin/subscribers/ada").text
    assert "stopped by paperwire" in page and "550 no user" in page
    assert "stopped by the subscriber" not in page
    assert 'aria-label="Start the email channel again"' in page
    r = client.post("/admin/subscribers/ada/start-channel",
                    data={"csrf": csrf, "channel": str(channel.id)})  # fmt: skip
    assert "the email channel starts again" in r.text
    (channel,) = app.store.people.channels_of(user.id)
    assert channel.active and channel.stopped_reason is None
    assert app.store.admin.audit_log()[0].action == "channel started"
    r = client.post("/admin/subscribers/ada/start-channel", data={"csrf": csrf, "channel": "99"})
    assert "no longer there" in r.text


def test_the_audit_log_says_what_an_edit_changed(console: Console, client: TestClient) -> None:
    """The audit log said "ada · user changed · u1200" and nothing more: which of the
    subscriber's settings the admin changed was not recorded. Its detail now names each
    change (a webhook only as set or removed: it is a secret)."""
    csrf = log_in(client)
    console.app.store.people.add(
        "eve", console.app.clock(), channels={ChannelKind.EMAIL: "eve@lab.example"}
    )
    sent = {"csrf": csrf, "display_name": "Eve L.", "email": "eve.l@lab.example",
            "timezone": "Europe/Paris", "hour": "9", "slack": HOOK,
            "frequency": "daily"}  # fmt: skip
    assert "Saved eve" in client.post("/admin/subscribers/eve", data=sent).text
    (entry,) = [a for a in console.app.store.admin.audit_log() if a.action == "user changed"]
    assert entry.detail == (
        "display name: 'eve' → 'Eve L.'; time zone: 'UTC' → 'Europe/Paris'; digest hour: "
        "default → 9; email: eve@lab.example → eve.l@lab.example; Slack webhook: set"
    )
    client.post("/admin/subscribers/eve", data={**sent, "slack": "", "remove_slack": "yes"})
    entry = next(a for a in console.app.store.admin.audit_log() if a.action == "user changed")
    assert entry.detail == "Slack webhook: removed"
    client.post("/admin/subscribers/eve", data={**sent, "slack": ""})
    entry = next(a for a in console.app.store.admin.audit_log() if a.action == "user changed")
    assert entry.detail == "nothing changed"
    assert "s3cretToken" not in client.get("/admin/audit").text


def test_a_save_from_a_page_opened_before_another_change_does_not_undo_it(
    console: Console, client: TestClient
) -> None:
    """Two tabs (or the subscriber on their own page, or a colleague): the admin opened eve's
    page, someone else then changed her address, and the admin saved a new display name from
    the page opened before: the form sent the old address back and undid the change in
    silence. A save from a page older than the stored subscriber is now refused with what
    changed, keeping what the admin typed; Save again applies it knowingly."""
    csrf = log_in(client)
    people = console.app.store.people
    people.add("eve", console.app.clock(), channels={ChannelKind.EMAIL: "eve@lab.example"})
    page = client.get("/admin/subscribers/eve").text
    seen = dict(re.findall(r'name="(seen\.\w+)" value="([^"]*)"', page))
    assert seen["seen.email"] == "eve@lab.example"
    form = {"csrf": csrf, **seen, "email": "eve@lab.example", "timezone": "UTC",
            "frequency": "daily", "weekday": "mon", "display_name": "Eve L."}  # fmt: skip
    # meanwhile, in another tab
    other = {**form, "email": "eve.new@lab.example", "display_name": "eve"}
    assert "Saved eve" in client.post("/admin/subscribers/eve", data=other).text
    r = client.post("/admin/subscribers/eve", data=form)
    assert r.status_code == 409 and "changed since you opened this page" in r.text
    said = html.unescape(r.text)
    assert "(see the audit log): email is now eve.new@lab.example. Your input" in said  # only it
    assert 'name="display_name" value="Eve L."' in r.text  # what the admin typed is kept
    (channel,) = people.channels_of(people.get("eve").id)
    assert channel.address == "eve.new@lab.example" and people.get("eve").display_name == "eve"
    again = dict(re.findall(r'name="(seen\.\w+)" value="([^"]*)"', r.text))
    assert again["seen.email"] == "eve.new@lab.example"
    done = client.post("/admin/subscribers/eve", data={**form, **again})
    assert "Saved eve" in done.text and people.get("eve").display_name == "Eve L."


def test_a_refused_edit_keeps_what_the_admin_typed(console: Console, client: TestClient) -> None:
    """A subscriber's form refused for one field shows the error and keeps every field as
    sent, to be corrected (it showed the stored values: the other changes were to type again)."""
    csrf = log_in(client)
    console.app.store.people.add(
        "eve", console.app.clock(), channels={ChannelKind.EMAIL: "eve@lab.example"}
    )
    sent = {"display_name": "Eve L.", "email": "eve.l@lab.example", "timezone": "Europe/Berln",
            "hour": "9", "max_picks": "12", "frequency": "weekly", "weekday": "fri"}  # fmt: skip
    r = client.post("/admin/subscribers/eve", data={"csrf": csrf, **sent})
    assert r.status_code == 400 and "time zone: not a known time zone" in r.text
    start = r.text.index('id="edit-user"')
    form = r.text[start : r.text.index("</form>", start)]
    for name in ("display_name", "email", "timezone", "max_picks"):
        assert f'name="{name}" value="{sent[name]}"' in form, name
    assert '<option value="9" selected>' in form
    assert '<option value="weekly" selected>' in form and '<option value="fri" selected>' in form
    assert console.app.store.people.get("eve").timezone == "UTC"  # nothing saved
    # the stored values when nothing was refused
    page = client.get("/admin/subscribers/eve").text
    assert 'name="email" value="eve@lab.example"' in page and 'value="UTC"' in page


def test_a_subscriber_whose_stored_address_is_now_refused_can_still_be_edited(
    console: Console, client: TestClient
) -> None:
    """An address taken before the checks refused it (josé@…: a local part that is not ASCII)
    made every save of the form fail, the hour's included: the form sends the stored address
    back, and it was checked again (second read)."""
    csrf = log_in(client)
    console.app.store.people.add(
        "jose", console.app.clock(), channels={ChannelKind.EMAIL: "josé@lab.example"}
    )
    sent = {"csrf": csrf, "email": "josé@lab.example", "timezone": "UTC", "hour": "9"}
    r = client.post("/admin/subscribers/jose", data=sent, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert console.app.store.people.get("jose").digest_hour == 9
    # a new address is checked as ever
    r = client.post("/admin/subscribers/jose", data={**sent, "email": "zoë@@lab.example"})
    assert r.status_code == 400 and "email:" in r.text


def test_a_double_click_on_add_shows_the_subscriber_added(
    console: Console, client: TestClient
) -> None:
    """The second request of a double click is the one the browser shows: it said "user 'eve'
    already exists", as if the add had failed. The same subscriber again, exactly as given,
    leads to its page; anything different is refused as before."""
    csrf = log_in(client)
    form = {"csrf": csrf, "name": "eve", "email": "eve@lab.example", "timezone": "UTC",
            "hour": "6"}  # fmt: skip
    first = client.post("/admin/subscribers", data=form)
    second = client.post("/admin/subscribers", data=form)
    assert first.url.path == second.url.path == "/admin/subscribers/eve"
    assert "eve is there already, as given." in second.text and second.status_code == 200
    assert console.app.store.people.find()[0] == 1
    assert [a[1] for a in _audit(console)].count("user added") == 1
    other = client.post("/admin/subscribers", data={**form, "hour": "7"})
    assert other.status_code == 400 and "already exists" in other.text
    other = client.post("/admin/subscribers", data={**form, "email": "eve@other.example"})
    assert other.status_code == 400 and "already exists" in other.text


def test_a_double_click_on_remove_shows_the_subscriber_removed(
    console: Console, client: TestClient
) -> None:
    """The second request of a double click on "Remove" (the one the browser shows) got the
    404 page "no user named 'eve'; `paperwire users list` shows them", as if the removal had
    failed. It now goes back to the list, which says she is removed."""
    csrf = log_in(client)
    console.app.store.people.add(
        "eve", console.app.clock(), channels={ChannelKind.EMAIL: "eve@lab.example"}
    )
    first = client.post("/admin/subscribers/eve/remove?q=ev", data={"csrf": csrf, "confirm": "yes"})
    assert "Removed eve" in first.text
    again = client.post("/admin/subscribers/eve/remove?q=ev", data={"csrf": csrf, "confirm": "yes"})
    assert again.status_code == 200 and again.url.path == "/admin/subscribers"
    assert again.url.query == b"q=ev" and "eve is not there (removed already)." in again.text
    assert [a for a in _audit(console) if a[1] == "user removed"] == [
        ("root", "user removed", "eve")
    ]
    # any other action on someone not there is still the 404 page
    assert client.post("/admin/subscribers/eve/pause", data={"csrf": csrf}).status_code == 404


def test_the_subscriber_list_is_searched_and_paged(
    console: Console, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from daemon.web import console_people

    monkeypatch.setattr(console_people, "PAGE", 2)
    app = console.app
    for name in ("ann", "bea", "cat", "dan", "eve"):
        app.store.people.add(name, app.clock(), channels={ChannelKind.EMAIL: f"{name}@lab.example"})
    jobs.make_digests(app, app.clock(), force=True)  # a digest made today for each
    log_in(client)

    def shown(url: str) -> list[str]:
        return re.findall(r'<tr id="user-(\w+)"', client.get(url).text)

    assert shown("/admin/subscribers") == ["ann", "bea"]
    page = client.get("/admin/subscribers?page=1").text
    assert re.findall(r'<tr id="user-(\w+)"', page) == ["cat", "dan"]
    assert "page 2 of 3" in page and "page=0" in page and "page=2" in page
    assert shown("/admin/subscribers?page=2") == ["eve"]
    app.store.people.add("fay", app.clock(), channels={ChannelKind.EMAIL: "fay@lab.example"})
    last = client.get("/admin/subscribers?page=2").text  # eve's digest is made, fay's is not
    assert re.findall(r'<tr id="user-(\w+)"', last) == ["eve", "fay"]
    eve, fay = re.findall(r'<td class="next-digest"[^>]*>([^<]*)</td>', last)
    assert eve != fay and eve == re.findall(r'<td class="next-digest"[^>]*>([^<]*)</td>', page)[0]
    assert shown("/admin/subscribers?page=7") == []
    assert "6 subscriber(s)" in client.get("/admin/subscribers?page=7").text
    assert shown("/admin/subscribers?q=E%40LAB") == ["eve"]  # the address, in any case
    assert shown("/admin/subscribers?q=N") == ["ann", "dan"]
    assert "page 1 of" not in client.get("/admin/subscribers?q=n").text  # one page of two


def test_the_subscriber_list_is_sorted_by_name_newest_or_paused_first(
    console: Console, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list had one order, by handle: among 5,000 the admin could not see who joined
    last (a CSV import, a signup) nor who is paused. It is sorted by name (the default),
    newest first or paused first; pages, searches and subscribers opened keep the order."""
    from daemon.web import console_people

    monkeypatch.setattr(console_people, "PAGE", 2)
    app = console.app
    start = app.clock()
    for i, name in enumerate(("cat", "ann", "eve", "bea")):
        app.store.people.add(name, start + timedelta(minutes=i),
                             channels={ChannelKind.EMAIL: f"{name}@lab.example"})  # fmt: skip
    app.store.people.set_subscribed(app.store.people.get("eve").id, False, start)
    log_in(client)

    def shown(url: str) -> list[str]:
        return re.findall(r'<tr id="user-(\w+)"', client.get(url).text)

    assert shown("/admin/subscribers") == ["ann", "bea"]
    assert shown("/admin/subscribers?sort=newest") == ["bea", "eve"]
    assert shown("/admin/subscribers?sort=newest&page=1") == ["ann", "cat"]
    assert shown("/admin/subscribers?sort=paused") == ["eve", "ann"]
    assert shown("/admin/subscribers?sort=newest&q=lab&page=1") == ["ann", "cat"]
    page = client.get("/admin/subscribers?sort=newest&q=lab").text
    assert '<option value="newest" selected>' in page
    assert "q=lab&amp;page=1&amp;sort=newest" in page  # the next page keeps the order
    assert 'href="/admin/subscribers/bea?q=lab&amp;sort=newest"' in page
    assert client.get("/admin/subscribers?sort=nonsense").status_code == 400


def test_a_subscriber_opened_from_a_page_of_a_search_leads_back_there(
    console: Console, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Among 5,000 subscribers the admin searched, went to page 3, opened one, saved a change
    (or removed them): the subscriber's page had no way back but the browser's Back button
    (twice, after a save), and a removal led to the first page of the whole list. The list's
    links carry the search and page; the subscriber's page links back to that place, its
    forms keep it, and a removal goes back there."""
    from daemon.web import console_people

    monkeypatch.setattr(console_people, "PAGE", 2)
    app = console.app
    for name in ("ann", "bea", "cat", "dan", "eve", "fay"):
        app.store.people.add(name, app.clock(), channels={ChannelKind.EMAIL: f"{name}@lab.example"})
    csrf = log_in(client)
    page = client.get("/admin/subscribers?q=lab&page=1").text
    link = re.search(r'<a href="(/admin/subscribers/cat[^"]*)"', page)
    assert link and html.unescape(link[1]) == "/admin/subscribers/cat?q=lab&page=1"
    there = client.get(html.unescape(link[1])).text
    back = re.search(r'<a href="([^"]+)" id="back-to-list">([^<]+)</a>', there)
    assert back and html.unescape(back[1]) == "/admin/subscribers?q=lab&page=1#user-cat"
    assert "page 2" in back[2] and "lab" in back[2]
    form = re.search(r'<form method="post" action="([^"]+)" id="edit-user">', there)
    assert form and html.unescape(form[1]) == "/admin/subscribers/cat?q=lab&page=1"
    saved = client.post(html.unescape(form[1]), data={"csrf": csrf, "email": "cat@lab.example",
                                                      "timezone": "UTC", "hour": "9"})  # fmt: skip
    assert "Saved cat" in saved.text and str(saved.url).endswith(
        "/admin/subscribers/cat?q=lab&page=1"
    )
    assert 'id="back-to-list"' in saved.text
    gone = client.post("/admin/subscribers/cat/remove?q=lab&page=1",
                       data={"csrf": csrf, "confirm": "yes"})  # fmt: skip
    assert gone.url.path == "/admin/subscribers" and gone.url.query == b"q=lab&page=1"
    assert re.findall(r'<tr id="user-(\w+)"', gone.text) == ["dan", "eve"]
    # opened from nowhere (a bookmark): the link is to the whole list
    plain = client.get("/admin/subscribers/dan").text
    back = re.search(r'<a href="([^"]+)" id="back-to-list">', plain)
    assert back and html.unescape(back[1]) == "/admin/subscribers#user-dan"


def test_the_csv_upload_reports_errors_by_line_or_imports_all(
    console: Console, client: TestClient
) -> None:
    csrf = log_in(client)
    bad = "name,email\nada,ada@lab.example\ndan,dan@\n"
    r = client.post("/admin/subscribers/import", data={"csrf": csrf},
                    files={"file": ("lab.csv", bad, "text/csv")})  # fmt: skip
    assert r.status_code == 400 and "line 3: email: &#39;dan@&#39;" in r.text
    assert r.text.index('id="refused"') < r.text.index('id="subscribers"')  # seen at the top
    assert console.app.store.people.find() == (0, [])
    good = "name,email,hour\nada,ada@lab.example,7\nbob,bob@lab.example,\n"
    r = client.post("/admin/subscribers/import", data={"csrf": csrf},
                    files={"file": ("lab.csv", good, "text/csv")})  # fmt: skip
    assert "Imported: 2 added, 0 updated, 0 unchanged" in r.text
    r = client.post("/admin/subscribers/import", data={"csrf": csrf},
                    files={"file": ("lab.csv", good, "text/csv")})  # fmt: skip
    assert "0 added, 0 updated, 2 unchanged" in r.text
    # every address already another's is named at once, each in its own item
    taken = "name,email\ncy,ADA@lab.example\ndee,dee@lab.example\neli,bob@lab.example\n"
    r = client.post("/admin/subscribers/import", data={"csrf": csrf},
                    files={"file": ("lab.csv", taken, "text/csv")})  # fmt: skip
    listed = html.unescape(r.text[r.text.index('id="import-errors"') :])
    assert (
        "<li>line 2: cy: ADA@lab.example is already the email address of user 'ada'</li>" in listed
    )
    assert (
        "<li>line 4: eli: bob@lab.example is already the email address of user 'bob'</li>" in listed
    )
    assert "2 problem(s)" in r.text and console.app.store.people.find()[0] == 2


def test_the_importers_address_opened_by_hand_leads_to_its_form(
    console: Console, client: TestClient
) -> None:
    # a refused import reloaded from the address bar read as the subscriber "import": "Not
    # found: no user named 'import'"
    log_in(client)
    r = client.get("/admin/subscribers/import", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin/subscribers#import-csv"
    assert client.get("/admin/subscribers/nobody").status_code == 404  # others: not found
    console.app.store.people.add(
        "import", console.app.clock(), channels={ChannelKind.EMAIL: "i@lab.example"}
    )
    assert "i@lab.example" in client.get("/admin/subscribers/import").text  # one so named


def test_preview_resend_and_deliveries(console: Console, client: TestClient) -> None:
    app = console.app
    now = app.clock()
    app.store.feeds.add("hf", HF, now)
    jobs.ingest(app, now)
    user = app.store.people.add("ada", now, channels={ChannelKind.EMAIL: "ada@lab.example"})
    csrf = log_in(client)
    preview = client.get("/admin/subscribers/ada/preview")
    assert preview.status_code == 200 and "<!DOCTYPE html>" in preview.text
    assert "script-src" not in preview.headers["content-security-policy"]
    assert app.store.health.counts()["sent"] == 0  # nothing stored or sent
    jobs.digest_and_deliver(app, now, force=True)
    (digest,) = app.store.health.deliveries(user="ada")
    assert digest.state == "sent"
    # its button names the digest for a screen reader (each row's said only "Resend")
    page = client.get("/admin/subscribers/ada").text
    assert f'aria-label="Resend digest {digest.id} (email, ' in page
    # to a channel stopped since: refused, where it was queued and given up at once as
    # "unsubscribed before delivery" (second read)
    (channel,) = app.store.people.channels_of(user.id)
    app.store.people.set_channel_active(user.id, channel.id, False, now)
    r = client.post("/admin/subscribers/ada/resend", data={"csrf": csrf, "digest": str(digest.id)})
    assert "was not resent: its channel is stopped" in r.text
    assert app.store.digests.get(digest.id).state == "sent"
    app.store.people.set_channel_active(user.id, channel.id, True, now)
    r = client.post("/admin/subscribers/ada/resend", data={"csrf": csrf, "digest": str(digest.id)})
    assert f"Digest {digest.id} queued again" in r.text
    assert app.store.digests.get(digest.id).state == "pending"
    pending = client.get("/admin/deliveries?state=pending")
    assert f"digest-{digest.id}" in pending.text
    r = client.post("/admin/deliveries/cancel", data={"csrf": csrf, "id": str(digest.id)})
    assert "1 digest(s) cancelled" in r.text
    assert app.store.digests.get(digest.id).last_error == "cancelled by root"
    r = client.post("/admin/deliveries/retry", data={"csrf": csrf, "id": str(digest.id),
                                                     "state": "failed"})  # fmt: skip
    assert "1 digest(s) due now" in r.text and app.store.digests.get(digest.id).state == "pending"
    other = app.store.digests.create(
        user.id, app.store.people.channels_of(user.id)[0].id, now.date() - timedelta(days=1),
        [NewItem(app.store.papers.find("2608.16590").id, 0.5, "similar", "r")], now,
        cold_start=False,
    )  # fmt: skip
    assert other is not None
    assert "left alone" not in r.text


def test_the_deliveries_page_says_how_many_and_pages_through_them(
    console: Console, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 5,999 failed digests the Deliveries page showed the newest 200 and nothing said
    there were more, nor led to them. It now says which of how many it shows, pages through
    them, and each row's buttons name their digest for a screen reader."""
    from daemon.db.models import Outcome
    from daemon.web import console as console_module

    monkeypatch.setattr(console_module, "DELIVERIES_PAGE", 2)
    app = console.app
    now = app.clock()
    app.store.papers.upsert([_paper_in()], None, now)
    pid = app.store.papers.find("arxiv:2611.00001").id
    for name in ("ann", "bea", "cat", "dan", "eve"):
        user = app.store.people.add(name, now, channels={ChannelKind.EMAIL: f"{name}@lab.example"})
        (channel,) = app.store.people.channels_of(user.id)
        made = app.store.digests.create(
            user.id, channel.id, now.date(), [NewItem(pid, 0.5, "similar", "r")], now,
            cold_start=False,
        )  # fmt: skip
        app.store.digests.finish(made or 0, now, outcome=Outcome.PERMANENT, detail="550")
    log_in(client)

    def shown(url: str) -> tuple[list[str], str]:
        page = client.get(url).text
        return re.findall(r'<td data-label="subscriber"><a [^>]*>(\w+)</a>', page), page

    rows, page = shown("/admin/deliveries?state=failed")
    assert rows == ["eve", "dan"] and "1–2 of 5" in page
    assert 'href="/admin/deliveries?state=failed&amp;page=1"' in page
    assert re.search(r'<button type="submit" aria-label="Retry digest \d+ of eve now">', page)
    rows, page = shown("/admin/deliveries?state=failed&page=2")
    assert rows == ["ann"] and "5–5 of 5" in page and "page=1" in page
    assert shown("/admin/deliveries?state=failed&page=9")[0] == []
    assert client.get("/admin/deliveries?state=failed&page=-1").status_code == 400


def test_retry_and_cancel_on_a_later_page_of_deliveries_go_back_to_that_page(
    console: Console, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deliveries' pages (4131d37): a 'Retry now' or 'Cancel' pressed on page 3 of the
    failed digests led back to page 1 of the list; the admin paged through it again."""
    from daemon.db.models import Outcome
    from daemon.web import console as console_module

    monkeypatch.setattr(console_module, "DELIVERIES_PAGE", 2)
    app = console.app
    now = app.clock()
    app.store.papers.upsert([_paper_in()], None, now)
    pid = app.store.papers.find("arxiv:2611.00001").id
    for name in ("ann", "bea", "cat", "dan", "eve", "fay", "gus"):
        user = app.store.people.add(name, now, channels={ChannelKind.EMAIL: f"{name}@lab.example"})
        (channel,) = app.store.people.channels_of(user.id)
        made = app.store.digests.create(
            user.id, channel.id, now.date(), [NewItem(pid, 0.5, "similar", "r")], now,
            cold_start=False,
        )  # fmt: skip
        if name not in ("ann", "bea", "cat"):  # 3 pending, 4 failed: 2 pages each
            app.store.digests.finish(made or 0, now, outcome=Outcome.PERMANENT, detail="550")
    log_in(client)
    for state, action in (("failed", "retry"), ("pending", "cancel")):
        page = client.get(f"/admin/deliveries?state={state}&page=1").text
        form = re.search(rf'<form class="inline" method="post" action="/admin/deliveries/'
                         rf'{action}">(.*?)</form>', page, re.S)  # fmt: skip
        assert form, page
        data = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form[1]))
        done = client.post(f"/admin/deliveries/{action}", data=data, follow_redirects=False)
        assert done.status_code == 303
        assert done.headers["location"] == f"/admin/deliveries?state={state}&page=1"


@BOTH_BACKENDS
def test_an_outages_failed_digests_are_resent_at_once_each_once(
    console_factory: ConsoleFactory,
) -> None:
    """After an hour of the mail server down the failed list held hundreds of digests, each
    with its own "Retry now". "Resend" queues the outage's again at once, after a box that
    says how many; not those whose channel is stopped or whose subscriber unsubscribed, nor
    again one queued already (a double click); audited once, with the count. The delivery
    run then sends each of them once, to a real SMTP server.

    It took every failed digest kept (digest.keep_days, a year), a subscriber's of last March
    and those an admin cancelled on purpose too: it now takes those made in the last two days
    (RESEND_WITHIN) and never a cancelled one, and says how many it left, and why."""
    from daemon.db.digests import RESEND_WITHIN
    from daemon.db.models import Outcome
    from tests.servers import smtp_server

    with smtp_server(tls="none", require_starttls=False) as server:
        email = (f'[email]\ntransport = "smtp"\nhost = "{server.host}"\n'
                 f'port = {server.port}\nsecurity = "none"\n')  # fmt: skip
        console = console_factory(extra=email)
        app = console.app
        now = app.clock()
        app.store.papers.upsert([_paper_in()], None, now)
        pid = app.store.papers.find("arxiv:2611.00001").id
        people, digests = app.store.people, app.store.digests
        made_at = {"march": now - timedelta(days=250), "older": now - RESEND_WITHIN - timedelta(1),
                   "edge": now - RESEND_WITHIN + timedelta(minutes=1)}  # fmt: skip
        names = [f"u{i:02}" for i in range(24)] + ["edge", "stopped", "gone", "requeued"]
        names += ["march", "older", "cancelled"]
        made = {}
        for name in names:
            at = made_at.get(name, now)
            user = people.add(name, at, channels={ChannelKind.EMAIL: f"{name}@lab.example"})
            (channel,) = people.channels_of(user.id)
            made[name] = digests.create(
                user.id, channel.id, at.date(), [NewItem(pid, 0.5, "similar", "r")], at,
                cold_start=False,
            )  # fmt: skip
            if name == "cancelled":
                continue  # pending: the admin cancels it below
            down = "451 4.3.0 mail server down"  # given up after too many tries
            digests.finish(made[name] or 0, at, outcome=Outcome.TEMPORARY, detail=down)
            if name == "stopped":
                people.set_channel_active(user.id, channel.id, False, now)
        people.set_subscribed(people.get("gone").id, False, now)
        assert digests.retry_now([made["requeued"] or 0], now)  # queued again, alone, before

        client = TestClient(console.daemon.web, base_url="https://127.0.0.1:8080")
        csrf = log_in(client)
        cancel = {"csrf": csrf, "id": str(made["cancelled"])}  # on purpose: never resent
        assert "1 digest(s) cancelled" in client.post("/admin/deliveries/cancel", data=cancel).text
        page = html.unescape(client.get("/admin/deliveries?state=failed").text)
        assert "Resend the 25 digest(s) failed in the last 2 days" in page
        left = ("5 more left failed: 1 cancelled by an admin, 2 made more than 2 days ago, "
                "2 of a stopped channel or an unsubscribed subscriber")  # fmt: skip
        assert left in page
        form = {"csrf": csrf, "state": "failed", "page": "0", "count": "25"}
        kept = client.post("/admin/deliveries/resend-failed", data=form)
        assert "Nothing was resent" in html.unescape(kept.text)
        assert app.store.health.counts()["failed"] == 30
        sure = {**form, "confirm": "yes"}
        done = client.post("/admin/deliveries/resend-failed", data=sure)
        assert done.url.query == b"state=failed"
        assert f"25 failed digest(s) queued again; {left}" in html.unescape(done.text)
        again = client.post("/admin/deliveries/resend-failed", data=sure)  # a double click
        assert f"No failed digest to resend ({left})." in html.unescape(again.text)
        resent = [a for a in app.store.admin.audit_log() if a.action == "failed digests resent"]
        assert [(a.admin, a.detail) for a in resent] == [("root", "25 digest(s)")]
        # the page's count is said again only when it differs, and only as a number: a form
        # of 50,000 characters in that field made a flash cookie no browser keeps
        for count, said in (("24", "(the page said 24: "), ("9" * 50_000, "queued again; 5 more")):
            digests.finish(made["edge"] or 0, now, outcome=Outcome.PERMANENT, detail="550")  # again
            odd = client.post("/admin/deliveries/resend-failed", data={**sure, "count": count})
            assert said in odd.text and len(odd.text) < 20_000
        page = html.unescape(client.get("/admin/deliveries?state=failed").text)
        assert 'id="resend-failed-button"' not in page and f"None to resend at once: {left}" in page

        report = jobs.deliver(app, now)
        assert report.sent == 26 and report.failed == 0, report.errors
        sent_to = sorted(m.rcpt_tos[0] for m in server.messages)
        not_sent = ("stopped", "gone", "march", "older", "cancelled")
        assert sent_to == sorted(f"{n}@lab.example" for n in names if n not in not_sent)
        assert jobs.deliver(app, now).sent == 0  # each once
        assert app.store.health.counts()["failed"] == 5
        # the one an admin wants of those left, by its id: "Retry now" still resends it
        retry = {"csrf": csrf, "state": "failed", "id": str(made["march"])}
        assert "1 digest(s) due now" in client.post("/admin/deliveries/retry", data=retry).text


def test_numbers_that_are_not_ids_and_things_not_there_get_pages_not_errors(
    console: Console, client: TestClient
) -> None:
    """'²' is a digit to `str.isdigit`; 30 digits overflow the database's integer; a page
    number of 25 digits overflowed its offset. Each got a 500 before."""
    app = console.app
    now = app.clock()
    app.store.people.add("ada", now, channels={ChannelKind.EMAIL: "ada@lab.example"})
    csrf = log_in(client)
    huge = "9" * 30
    for digest in ("99999", huge, "²"):
        r = client.post("/admin/subscribers/ada/resend", data={"csrf": csrf, "digest": digest})
        assert r.status_code == 200 and r.url.path == "/admin/subscribers/ada", digest
        text = html.unescape(r.text)
        assert "is not one of ada's" in text or "is not a digest's id" in text
    for action in ("retry", "cancel"):
        for ident in (huge, "²"):
            r = client.post(f"/admin/deliveries/{action}", data={"csrf": csrf, "id": ident})
            assert r.status_code == 200, (action, ident, r.text[:300])
    for path in ("/admin/subscribers", "/admin/audit"):
        for page in ("1" + "0" * 24, "abc", "-1"):
            r = client.get(f"{path}?page={page}")
            assert r.status_code == 400 and "<h1>Bad request</h1>" in r.text, (path, page)
            assert r.headers["content-type"].startswith("text/html")
    form = {"csrf": csrf, "timezone": "UTC", "email": "ada@lab.example", "max_picks": "²"}
    r = client.post("/admin/subscribers/ada", data=form)
    assert r.status_code == 400 and "papers per digest: '²' is not a number" in html.unescape(
        r.text
    )
    missing = client.get("/admin/subscribers/nobody")
    assert missing.status_code == 404 and "<h1>Not found</h1>" in missing.text
    assert "Link not valid" not in missing.text
    nowhere = client.get("/admin/no-such-page")
    assert nowhere.status_code == 404 and "<h1>Page not found</h1>" in nowhere.text


def test_a_bug_gets_a_page_and_the_log_its_traceback(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = TestClient(
        console.daemon.web, base_url="https://127.0.0.1:8080", raise_server_exceptions=False
    )
    log_in(client)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret-detail-xyz")

    monkeypatch.setattr(console.app.store.people, "find", broken)
    r = client.get("/admin/subscribers")
    assert r.status_code == 500 and "<h1>Something went wrong</h1>" in r.text
    assert "RuntimeError" not in r.text and "secret-detail-xyz" not in r.text


# ---- configuration -------------------------------------------------------------------------------


def _config_form(client: TestClient) -> dict[str, str]:
    """Every field of the configuration page as the browser would send it."""
    page = client.get("/admin/config").text
    fields: dict[str, str] = {"csrf": csrf_of(page)}
    for name, value in re.findall(
        r'<input type="text" id="[^"]+" name="([^"]+)" value="([^"]*)"', page
    ):
        fields[name] = html.unescape(value)
    for name, body in re.findall(r'<select id="[^"]+" name="([^"]+)">(.*?)</select>', page):
        chosen = re.search(r"<option selected>([^<]*)</option>", body)
        fields[name] = chosen.group(1) if chosen else ""
    for name in re.findall(r'<input type="password" id="[^"]+" name="([^"]+)"', page):
        fields[name] = ""
    for name, value in re.findall(
        r'<input type="hidden" name="(seen\.[^"]+)" value="([^"]*)"', page
    ):
        fields[name] = html.unescape(value)
    return fields


def test_the_configuration_form_saves_checked_values_and_applies_them(
    console: Console, client: TestClient
) -> None:
    log_in(client)
    page = client.get("/admin/config").text
    for section in ("database", "server", "schedule", "digest", "email", "admin"):
        assert f'id="section-{section}"' in page
    assert "Default local hour of the digest" in page  # the bundled file's comment
    assert "Default: <code>7</code>" in page
    form = _config_form(client)
    assert len(form) > 40
    unchanged = client.post("/admin/config", data=form)
    assert "Nothing changed" in unchanged.text
    before = console.config.read_text()

    form.update({"schedule.digest_cron": "35 * * * *", "schedule.digest_hour": "9"})
    form["email.password"] = "hunter2-secret"
    saved = client.post("/admin/config", data=form)
    assert (
        "Saved and applied: email.password, schedule.digest_cron, schedule.digest_hour"
        in saved.text
    )
    text = console.config.read_text()
    assert "# the digest job's schedule" in text and "# where the links point" in text
    data = tomllib.loads(text)
    assert data["schedule"] == {"digest_cron": "35 * * * *", "digest_hour": 9}
    assert console.config.with_name("paperwire.toml.previous").read_text() == before
    app = console.app
    assert app.settings.schedule.digest_hour == 9  # applied, no restart
    trigger = console.daemon.scheduler.get_job("digest").trigger
    assert {f.name: str(f) for f in trigger.fields}["minute"] == "35"  # rescheduled
    assert (
        "hunter2-secret" not in saved.text
        and "hunter2-secret" not in client.get("/admin/config").text
    )
    # an empty secret field keeps the secret
    client.post("/admin/config", data={**_config_form(client), "digest.max_picks": "5"})
    assert app.settings.email.password.get_secret_value() == "hunter2-secret"
    assert ("root", "config changed", "email.password") in _audit(console)
    assert all("hunter2" not in a.detail for a in app.store.admin.audit_log())


def test_one_configuration_change_is_one_log_line(
    console: Console, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    # a change in the file was logged twice ("settings applied", then "configuration file
    # applied"), and a console save three times: the file watch took the console's file for
    # another change (two loads of one file never compared equal: each is an instance of its
    # own subclass) and applied it again, hooks and all
    from daemon.config_file import edit
    from daemon.scheduler import ConfigWatch

    def applied() -> list[str]:
        lines = [r for r in caplog.records if r.name == "paperwire.daemon"]
        return [f"{r.getMessage()} {getattr(r, 'source', '')}" for r in lines if "appl" in r.msg]

    log_in(client)
    watch = ConfigWatch(console.app)
    with caplog.at_level(logging.INFO, logger="paperwire.daemon"):
        client.post("/admin/config", data={**_config_form(client), "digest.max_picks": "5"})
        watch()  # the daemon's next look at the file: the console applied it already
    assert applied() == ["settings applied console"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="paperwire.daemon"):
        edit(console.config, {"digest.max_picks": 6})  # as an editor would change it
        watch()
    assert applied() == ["settings applied configuration file"]
    assert console.app.settings.digest.max_picks == 6


def test_an_invalid_configuration_is_refused_and_the_file_untouched(
    console: Console, client: TestClient
) -> None:
    log_in(client)
    before = console.config.read_bytes()
    form = _config_form(client)
    form.update({"schedule.digest_hour": "25", "schedule.timezone": "Mars/Base"})
    r = client.post("/admin/config", data=form)
    assert r.status_code == 400 and "Nothing was written" in r.text
    assert "schedule.digest_hour = 25" in r.text and "Mars/Base" in r.text
    assert 'value="Mars/Base"' in r.text  # what was typed stays in the form
    # each problem is also under its field, not only at the top of a page of 60 fields
    field = r.text[r.text.index('id="schedule.timezone"') :]
    assert field.index('id="error-schedule.timezone"') < field.index('class="field"')
    assert 'id="error-schedule.digest_hour"' in r.text
    assert console.config.read_bytes() == before
    form = _config_form(client)
    form["digest.send_empty"] = "maybe"
    refused = client.post("/admin/config", data=form).text
    assert "give true or false" in refused and 'id="error-digest.send_empty"' in refused
    assert console.config.read_bytes() == before


def test_a_refusal_said_as_key_colon_is_under_its_field(
    console: Console, client: TestClient
) -> None:
    """'recommender.options: 'nope' is not an option …' (a check after the file is read,
    written 'key: …', not 'key = …') was at the top of the page only: the field was not
    marked, nor described by it (console QA)."""
    log_in(client)
    before = console.config.read_bytes()
    form = {**_config_form(client), "recommender.options": "{ nope = 1 }"}
    r = client.post("/admin/config", data=form)
    assert r.status_code == 400 and "is not an option of the recommender" in r.text, r.text[-300:]
    field = r.text[r.text.index('id="recommender.options"') :]
    assert 'aria-invalid="true"' in field[: field.index(">")]
    assert 'id="error-recommender.options"' in r.text
    assert console.config.read_bytes() == before


@pytest.mark.parametrize("path", ["/etc/" + "x" * 300 + ".pem", "ca\x00.pem"])
def test_a_ca_file_no_file_system_takes_is_refused_under_its_field(
    console: Console, client: TestClient, path: str
) -> None:
    """A path too long for the file system (a PEM file's text pasted into the field) or with a
    NUL was the 500 page: checking it was a file raised instead of saying it is not one."""
    log_in(client)
    before = console.config.read_bytes()
    form = {**_config_form(client), "email.ca_file": path, "digest.max_picks": "5"}
    r = client.post("/admin/config", data=form)
    assert r.status_code == 400 and "Nothing was written" in r.text, r.text[-300:]
    assert 'id="error-email.ca_file"' in r.text and "is not a file" in r.text
    assert 'name="digest.max_picks" value="5"' in r.text  # the rest of the input is kept
    assert console.config.read_bytes() == before


def test_a_key_file_no_file_system_takes_is_refused(console: Console, client: TestClient) -> None:
    """server.secret_key_file too long for the file system (with no server.secret_key) was the
    500 page: checking for the file raised instead of saying it cannot be made."""
    from daemon.config_file import UNSET, edit

    console.app.apply_settings(edit(console.config, {"server.secret_key": UNSET}))
    log_in(client)
    before = console.config.read_bytes()
    form = {**_config_form(client), "server.secret_key_file": "/tmp/" + "k" * 300}
    r = client.post("/admin/config", data=form)
    assert r.status_code == 400 and "cannot create the link-signing key" in r.text, r.text[-300:]
    assert console.config.read_bytes() == before


@pytest.mark.parametrize(
    ("lockout", "timeout", "backoff", "said"),
    [
        ("inf", "1e309", "inf", "finite number"),  # TOML reads 1e309 as inf
        ("1e300", "1e300", "1e300", "100 years"),  # finite, yet an OverflowError as inf was
    ],
)
def test_a_number_too_large_for_a_date_or_a_wait_is_refused_under_its_field(
    console: Console, client: TestClient, lockout: str, timeout: str, backoff: str, said: str
) -> None:
    """inf passed every '> 0' rule and was written, and 1e300 then passed the rule that
    refused inf: every login was then the 500 page (a lockout window of inf minutes), every
    SMTP send failed (a socket timeout of inf), every retry (a backoff of inf seconds)."""
    log_in(client)
    before = console.config.read_bytes()
    form = _config_form(client)
    form.update({"admin.lockout_minutes": lockout, "email.timeout_seconds": timeout,
                 "delivery.backoff_seconds": backoff, "digest.max_picks": "5"})  # fmt: skip
    r = client.post("/admin/config", data=form)
    assert r.status_code == 400 and "Nothing was written" in r.text, r.text[-300:]
    for key in ("admin.lockout_minutes", "email.timeout_seconds", "delivery.backoff_seconds"):
        assert f'id="error-{key}"' in r.text
    assert said in r.text
    assert 'name="digest.max_picks" value="5"' in r.text
    assert console.config.read_bytes() == before


@pytest.mark.parametrize("agent", ["paperwire (Université de Montréal)", "paperwire 📚"])
def test_a_user_agent_no_http_header_takes_is_refused(
    console: Console, client: TestClient, agent: str
) -> None:
    """ingest.user_agent with an accent (a university's name) or an emoji was saved and
    applied; then every fetch failed: the feeds page's Test was the 500 page (httpx encodes
    a header as ASCII), and so did the ingest's fetch of every feed."""
    log_in(client)
    before = console.config.read_bytes()
    form = {**_config_form(client), "ingest.user_agent": agent, "digest.max_picks": "5"}
    r = client.post("/admin/config", data=form)
    assert r.status_code == 400 and 'id="error-ingest.user_agent"' in r.text, r.text[-300:]
    assert "ASCII" in r.text
    assert 'name="digest.max_picks" value="5"' in r.text
    assert console.config.read_bytes() == before


def test_a_save_from_an_older_page_keeps_what_changed_since(
    console: Console, client: TestClient
) -> None:
    """The page sent back every field, and every one that differed from the file was written:
    a page opened before `config set schedule.digest_hour 9` (or another admin's save) undid
    that change in silence when only digest.max_picks was changed on it. Only the fields
    changed on the page are written; a refused save keeps comparing with what it showed."""
    from daemon.config_file import edit

    log_in(client)
    stale = _config_form(client)  # the page as it was opened: digest_hour 7 (the default)
    console.app.apply_settings(edit(console.config, {"schedule.digest_hour": 9}))
    refused = client.post("/admin/config", data={**stale, "digest.max_picks": "0"})
    assert refused.status_code == 400
    r = client.post("/admin/config", data={**stale, "digest.max_picks": "5"})
    assert "Saved and applied: digest.max_picks." in r.text, r.text[-400:]
    data = tomllib.loads(console.config.read_text())
    assert data["schedule"]["digest_hour"] == 9 and data["digest"]["max_picks"] == 5
    assert console.app.settings.schedule.digest_hour == 9


def test_a_change_refused_for_its_key_file_leaves_the_file_as_it_was(
    console: Console, client: TestClient, tmp_path: Path
) -> None:
    """A key file too short (or in a folder the daemon cannot write) passed the file's checks:
    the file was written, applying it failed (a 500, no audit line), and the daemon would not
    start again on that file."""
    from daemon.config_file import UNSET, edit

    good, short = tmp_path / "good.key", tmp_path / "short.key"
    good.write_text("a-link-signing-key-long-enough")
    short.write_text("abc")
    keyed = {"server.secret_key": UNSET, "server.secret_key_file": str(good)}
    console.app.apply_settings(edit(console.config, keyed))
    log_in(client)
    before, settings = console.config.read_bytes(), console.app.settings
    form = _config_form(client)
    form["server.secret_key_file"] = str(short)
    r = client.post("/admin/config", data=form)
    assert r.status_code == 400 and "the link-signing key is empty or too short" in r.text
    assert console.config.read_bytes() == before and console.app.settings == settings


def test_keys_set_by_the_environment_are_read_only(
    console_factory: ConsoleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAPERWIRE_DIGEST__MAX_PICKS", "4")
    console = console_factory()
    client = TestClient(console.daemon.web, base_url="https://127.0.0.1:8080")
    log_in(client)
    page = client.get("/admin/config").text
    assert "set by the environment variable PAPERWIRE_DIGEST__MAX_PICKS" in page
    assert 'name="digest.max_picks"' not in page
    form = {**_config_form(client), "digest.max_picks": "9"}
    client.post("/admin/config", data=form)
    assert "max_picks" not in console.config.read_text()


def test_restore_the_previous_version(console: Console, client: TestClient) -> None:
    log_in(client)
    original = console.config.read_text()
    client.post("/admin/config", data={**_config_form(client), "digest.max_picks": "3"})
    assert console.app.settings.digest.max_picks == 3
    r = client.post("/admin/config/restore", data={"csrf": _config_form(client)["csrf"]})
    assert "The previous version is back" in r.text
    assert console.config.read_text() == original and console.app.settings.digest.max_picks == 10


# ---- health, audit, metrics ----------------------------------------------------------------------


def test_health_charts_audit_and_metrics(console: Console, client: TestClient) -> None:
    app = console.app
    now = app.clock()
    app.store.feeds.add("hf", HF, now)
    app.store.people.add("ada", now, channels={ChannelKind.EMAIL: "ada@lab.example"})
    report = jobs.ingest(app, now)
    console.daemon.metrics.observe(report, now, now)
    log_in(client)
    health = client.get("/admin/health").text
    for chart in ("chart-papers", "chart-digests", "chart-people"):
        assert f'<svg id="{chart}"' in health
    assert '<rect class="bar"' in health and "15 papers</title>" in health
    assert 'id="next-digest"' in health and "UTC" in health
    assert "Nothing needs a person" in health
    assert "logged in" in client.get("/admin/audit").text
    metrics = client.get("/metrics").text
    assert 'paperwire_feeds_fetched_total{outcome="ok"} 1.0' in metrics
    assert "paperwire_papers_ingested_total 15.0" in metrics
    assert 'paperwire_feeds{state="ok"} 1.0' in metrics and "paperwire_papers 15.0" in metrics


def test_what_needs_a_person_links_to_the_console_page_that_mends_it(
    console: Console, client: TestClient
) -> None:
    """The health page's "Needs a person" said what to do with commands only (`paperwire
    deliveries list --state failed`, `paperwire feeds test …`): the admin in the console had
    to find the page themselves. Each problem now links to its page."""
    from daemon.db.models import Outcome

    app = console.app
    now = app.clock()
    app.store.feeds.add("broken", "https://example.org/feed.xml", now - timedelta(days=3))
    (feed,) = app.store.feeds.all()
    app.store.feeds.record_fetch(feed.id, now - timedelta(hours=1), error="HTTP 404 Not Found")
    ada = app.store.people.add("ada", now, channels={ChannelKind.EMAIL: "ada@lab.example"})
    bob = app.store.people.add("bob", now, channels={ChannelKind.EMAIL: "bob@lab.example"})
    app.store.papers.upsert([_paper_in()], None, now)
    pid = app.store.papers.find("arxiv:2611.00001").id
    made = {}
    for user in (ada, bob):
        (channel,) = app.store.people.channels_of(user.id)
        made[user.name] = app.store.digests.create(
            user.id, channel.id, now.date(), [NewItem(pid, 0.5, "similar", "r")], now,
            cold_start=False,
        )  # fmt: skip
    app.store.digests.postpone(made["ada"] or 0, now, now + timedelta(minutes=5), "SMTP down")
    app.store.digests.finish(made["bob"] or 0, now, outcome=Outcome.PERMANENT, detail="550")
    log_in(client)
    page = client.get("/admin/health").text
    problems = page[page.index('id="problems"') : page.index("</div>", page.index('id="problems"'))]
    for link in ("/admin/feeds", "/admin/deliveries?state=postponed",
                 "/admin/deliveries?state=failed"):  # fmt: skip
        assert f'<a href="{link}">' in problems, link


def _paper_in() -> Any:
    from daemon.ingest.parse import PaperIn

    return PaperIn(key="arxiv:2611.00001", title="A paper", abstract="", authors=(),
                   url="https://arxiv.org/abs/2611.00001", published=None)  # fmt: skip


def test_a_database_out_of_reach_is_an_outage_not_a_bug(
    console: Console, client: TestClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """/healthz and /metrics answered with the 500 "This is a bug" page while the database was
    out of reach (a QA pass on PostgreSQL), and Prometheus lost every counter."""
    app = console.app
    now = app.clock()
    app.store.feeds.add("hf", HF, now)
    console.daemon.metrics.observe(jobs.ingest(app, now), now, now)
    log_in(client)
    assert "paperwire_database_up 1.0" in client.get("/metrics").text
    # the database file goes (a directory where it was): no new connection opens
    db = Path(app.store.engine.url.database or "")
    db.rename(tmp_path / "moved.db")
    db.mkdir()
    app.store.engine.dispose()
    health = client.get("/healthz")
    assert health.status_code == 503 and health.json() == {
        "ok": False,
        "error": "database unavailable",
    }
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "paperwire_database_up 0.0" in metrics.text
    assert "paperwire_papers_ingested_total 15.0" in metrics.text  # the counters still go
    with caplog.at_level(logging.ERROR, logger="paperwire.web"):
        page = client.get("/admin/health")
    assert page.status_code == 503 and "cannot be reached just now" in page.text
    # logged, with its traceback: on SQLite a schema's fault is an OperationalError too
    (record,) = [r for r in caplog.records if r.name == "paperwire.web"]
    assert record.getMessage() == "database error on a page" and record.exc_info
    # a subscriber's page: the route is logged, never the address (its token opens the page)
    caplog.clear()
    manage = app.links.manage_url(1, now).removeprefix(app.links.base_url)
    with caplog.at_level(logging.ERROR, logger="paperwire.web"):
        assert client.get(manage).status_code == 503
    (record,) = [r for r in caplog.records if r.name == "paperwire.web"]
    assert getattr(record, "route", None) == "/me/{token}"
    assert manage.split("/")[-1] not in str(record.__dict__)


def test_an_outage_is_one_traceback_then_one_line_a_page(
    console: Console, client: TestClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # every page asked for while PostgreSQL was down logged the same 110-line traceback (three
    # reloads of a subscriber's page: 330 lines), where the jobs log theirs once (operations QA)
    app = console.app
    ada = app.store.people.add("ada", app.clock(), channels={ChannelKind.EMAIL: "a@example.org"})
    manage = app.links.manage_url(ada.id, app.clock()).removeprefix(app.links.base_url)
    log_in(client)
    assert client.get(manage).status_code == 200
    db = Path(app.store.engine.url.database or "")

    def outage() -> None:
        db.rename(tmp_path / "moved.db")
        db.mkdir()
        app.store.engine.dispose()

    def back() -> None:
        db.rmdir()
        (tmp_path / "moved.db").rename(db)
        app.store.engine.dispose()

    outage()
    with caplog.at_level(logging.ERROR, logger="paperwire.web"):
        for path in (manage, manage, "/admin/health"):
            assert client.get(path).status_code == 503
        back()
        assert client.get(manage).status_code == 200  # the next outage is told in full again
        outage()
        assert client.get(manage).status_code == 503
    records = [r for r in caplog.records if r.name == "paperwire.web"]
    assert [(r.exc_info is not None, getattr(r, "failed_requests", 1)) for r in records] == [
        (True, 1), (False, 2), (False, 3), (True, 1)
    ]  # fmt: skip
    assert [getattr(r, "route", None) for r in records[1:3]] == ["/me/{token}", "/admin/health"]
    assert "unable to open database file" in records[1].error  # type: ignore[attr-defined]


@BOTH_BACKENDS
def test_a_pool_with_no_connection_to_give_is_an_outage_not_a_bug(
    console: Console, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    # the pages counted only OperationalError as the database's: a pool with every connection
    # taken (its TimeoutError, after 30 s) answered "This is a bug" (500), where the ingest
    # counted it the database's (ops QA: one predicate, `database_trouble`)
    app = console.app
    ada = app.store.people.add("ada", app.clock(), channels={ChannelKind.EMAIL: "a@example.org"})
    manage = app.links.manage_url(ada.id, app.clock()).removeprefix(app.links.base_url)
    with caplog.at_level(logging.ERROR, logger="paperwire.web"), pool_exhausted(app.store.engine):
        page = client.get(manage)
    assert page.status_code == 503 and "cannot be reached just now" in page.text
    (record,) = [r for r in caplog.records if r.name == "paperwire.web"]
    assert record.getMessage() == "database error on a page" and record.exc_info
    assert client.get(manage).status_code == 200  # connections to give again


@POSTGRES_ONLY
def test_a_connection_the_server_ended_is_an_outage_for_one_page(
    console: Console, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL restarted (its processes ended, here by pg_terminate_backend): the page whose
    # connection was ended says so (503); the next one opens a new connection
    from daemon.db import engine as engines

    monkeypatch.setattr(engines, "PING_AFTER_IDLE", float("inf"))  # a pooled connection is not
    # checked before use, however long the test took: the page meets the ended one
    app = console.app
    ada = app.store.people.add("ada", app.clock(), channels={ChannelKind.EMAIL: "a@example.org"})
    manage = app.links.manage_url(ada.id, app.clock()).removeprefix(app.links.base_url)
    assert client.get(manage).status_code == 200
    assert terminate_connections(app.store.engine) >= 1
    page = client.get(manage)
    assert page.status_code == 503 and "cannot be reached just now" in page.text
    assert client.get(manage).status_code == 200


def test_a_database_error_that_is_a_bug_is_still_a_bug(
    console: Console, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every database error is not an outage: a value refused, or the driver used wrongly
    # (psycopg's "the cursor is closed", an InterfaceError on a connection that works) is a
    # bug, to be seen as one (500, its traceback logged), not "try again in a few minutes"
    import sqlalchemy as sa

    app = console.app
    ada = app.store.people.add("ada", app.clock(), channels={ChannelKind.EMAIL: "a@example.org"})
    manage = app.links.manage_url(ada.id, app.clock()).removeprefix(app.links.base_url)

    def misused(*args: object, **kwargs: object) -> None:
        raise sa.exc.InterfaceError("SELECT", {}, RuntimeError("the cursor is closed"))

    monkeypatch.setattr(app.store.people, "by_id", misused)
    client = TestClient(console.daemon.web, base_url="https://127.0.0.1:8080",
                        raise_server_exceptions=False)  # fmt: skip
    page = client.get(manage)
    assert page.status_code == 500 and "This is a bug" in page.text


def test_console_pages_escape_feed_text(
    console: Console, client: TestClient, tmp_path: Path
) -> None:
    evil = tmp_path / "evil.xml"
    evil.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
        "<title>&lt;script&gt;alert(1)&lt;/script&gt; Attention</title>"
        "<link>https://example.org/p1</link><guid>https://example.org/p1</guid></item>"
        "</channel></rss>"
    )
    csrf = log_in(client)
    r = client.post("/admin/feeds", data={"csrf": csrf, "name": "evil", "url": evil.as_uri(),
                                          "action": "test"})  # fmt: skip
    assert r.status_code == 200 and "Attention" in r.text
    assert "<script>alert" not in r.text


def test_the_test_fetch_of_an_empty_feed_says_what_feeds_add_says(
    console: Console, client: TestClient, tmp_path: Path
) -> None:
    # the console said "0 paper(s), 0 new." where `feeds add` says why a feed may be empty and
    # what to check (ingest QA)
    empty = tmp_path / "empty.xml"
    empty.write_text('<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
                     "</channel></rss>")  # fmt: skip
    csrf = log_in(client)
    r = client.post("/admin/feeds", data={"csrf": csrf, "name": "empty", "url": empty.as_uri(),
                                          "action": "test"})  # fmt: skip
    summary = re.search(r'<p id="trial-summary">(.*?)</p>', r.text, re.S)
    assert summary and html.unescape(summary.group(1)) == (
        "0 entries: the feed is empty now (check that it is the one you meant)."
    )


def test_a_locked_address_trying_name_after_name_fills_neither_the_audit_log_nor_memory(
    console: Console, client: TestClient
) -> None:
    # refused logins skip argon2, so they come at request speed: each wrote an audit row
    # ("login refused: locked out") and left the limiter an entry for its name, for ever
    page = client.get("/admin/login")
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token

    def attempt(name: str) -> int:
        data = {"name": name, "password": "wrong password!", "token": token.group(1)}
        return client.post("/admin/login", data=data).status_code

    codes = [attempt(f"guess{i}") for i in range(12 + 200)]  # 4 × max_failed_logins (3)
    assert codes[:12] == [401] * 12 and set(codes[12:]) == {429}
    actions = [a[1] for a in _audit(console)]
    assert actions.count("login failed") == 12
    assert actions.count("login refused: locked out") == 1
    # the limiter itself forgets a key once its failures are out of the window
    from daemon.web.auth import LoginLimiter

    limiter = LoginLimiter()
    for i in range(200):
        limiter.attempt(console.app, "192.0.2.1", f"guess{i}")
    assert len(limiter._failures) == 13  # the address, and the 12 names that failed
    clock: Any = console.app.clock
    clock.now = clock.now + timedelta(hours=1)
    limiter.attempt(console.app, "192.0.2.1", "later")
    assert set(limiter._failures) == {("192.0.2.1", "later"), ("192.0.2.1", "")}


def test_an_ipv6_attacker_stepping_through_its_64_is_one_address(console: Console) -> None:
    # a host or a subscriber line holds a whole /64: each new address of it got a fresh count
    # of failed logins, so the lockout never came
    from daemon.web.auth import LoginLimiter

    limiter = LoginLimiter()
    tries = [limiter.attempt(console.app, f"2001:db8:1:2::{i:x}", "root")[0] for i in range(1, 10)]
    assert tries[:3] == [None] * 3  # admin.max_failed_logins = 3
    assert all(locked is not None for locked in tries[3:])
    assert limiter.attempt(console.app, "2001:db8:1:3::1", "root")[0] is None  # another /64
    assert limiter.attempt(console.app, "::ffff:192.0.2.7", "root")[0] is None
    assert limiter.attempt(console.app, "192.0.2.7", "root")[0] is None
    assert limiter.attempt(console.app, "192.0.2.7", "root")[0] is None
    assert limiter.attempt(console.app, "::ffff:192.0.2.7", "root")[0] is not None  # the same


# ---- a form sent after the session ended ---------------------------------------------------------


HIDDEN = r'<input type="hidden" name="([^"]+)" value="([^"]*)">'


def _kept_form(page: str) -> tuple[str, dict[str, list[str]]]:
    """The action and fields of the page's form that sends the kept input."""
    found = re.search(r'action="([^"]+)" id="send-kept"[^>]*>(.*?)</form>', page, re.S)
    assert found, page
    fields: dict[str, list[str]] = {}
    for name, value in re.findall(HIDDEN, found[2]):
        fields.setdefault(html.unescape(name), []).append(html.unescape(value))
    return html.unescape(found[1]), fields


def _log_in_again(
    client: TestClient, page: str, name: str = "root", password: str = PASSWORD
) -> Any:
    """The login form of `page` sent with the right password, its hidden fields as they are."""
    start = page.index('id="login"')
    form = page[start : page.index("</form>", start)]
    data: dict[str, list[str]] = {}
    for field, value in re.findall(HIDDEN, form):
        data.setdefault(html.unescape(field), []).append(html.unescape(value))
    return client.post("/admin/login", data={**data, "name": name, "password": password})


def test_a_form_sent_after_the_session_ended_is_kept_through_the_login(
    console: Console, client: TestClient
) -> None:
    """The console open all day: the admin edits a subscriber after the session expired
    (admin.session_hours) and presses Save. The page said "Not logged in … log in again" and
    the login led to the health page: everything typed was lost. Now the login page keeps the
    form, and after the login one button sends it, with the new session's token."""
    from tests.daemon.conftest import NOW

    old = log_in(client)  # the token of this tab's forms
    people = console.app.store.people
    people.add("eve", NOW, channels={ChannelKind.EMAIL: "eve@lab.example"})
    clock: Any = console.app.clock
    clock.now = NOW + timedelta(hours=13)  # session_hours = 12
    typed = {"display_name": "Eve <Lovelace> & co", "email": "eve.l@lab.example",
             "timezone": "Europe/Paris", "hour": "7", "max_picks": "12",
             "frequency": "daily"}  # fmt: skip
    r = client.post("/admin/subscribers/eve", data={"csrf": old, **typed})
    assert r.status_code == 403 and "Not logged in" in r.text
    assert "was not sent" in r.text and 'id="login"' in r.text
    assert people.get("eve").timezone == "UTC"  # nothing changed yet
    wrong = client.post("/admin/login", data={"name": "root", "password": "nope", "token": "x"})
    assert wrong.status_code == 403  # the login's own token is still needed
    page = _log_in_again(client, r.text)
    assert page.status_code == 200 and "was not sent" in page.text
    action, fields = _kept_form(page.text)
    assert action == "/admin/subscribers/eve"
    assert fields["display_name"] == [typed["display_name"]] and fields["csrf"] != [old]
    assert people.get("eve").timezone == "UTC"  # not sent behind the admin's back
    done = client.post(action, data={k: v[0] for k, v in fields.items()})
    assert done.status_code == 200 and "Saved eve" in done.text
    eve = people.get("eve")
    assert (eve.timezone, eve.digest_hour) == ("Europe/Paris", 7)
    assert eve.display_name == typed["display_name"]
    # a wrong password first: the login page comes back, the form still kept
    clock.now = NOW + timedelta(hours=26)
    feed = {"name": "nature", "url": "https://www.nature.com/nature.rss", "action": "test"}
    r = client.post("/admin/feeds", data={"csrf": csrf_of(done.text), **feed})
    start = r.text.index('id="login"')
    token = re.search(r'name="token" value="([^"]+)"', r.text)
    assert token
    kept = r.text[start : r.text.index("</form>", start)]
    fields_kept = dict(re.findall(r'name="(kept[^"]*)" value="([^"]*)"', kept))
    login = {"name": "root", "password": "wrong", "token": token[1]}
    again = client.post("/admin/login", data={**login, **fields_kept})
    assert again.status_code == 401 and "was not sent" in again.text
    action, fields = _kept_form(_log_in_again(client, again.text).text)
    assert action == "/admin/feeds" and fields["url"] == [feed["url"]]


def test_a_form_of_an_older_session_is_kept_to_send_again(
    console: Console, client: TestClient
) -> None:
    """Two tabs: the session ended and the admin logged in again in one of them; a form of
    the other, sent with the old session's token, was refused ("Form refused … reload the
    page"), its input lost. It is now shown to be sent again with the live session's token."""
    from tests.daemon.conftest import NOW

    old = log_in(client)
    clock: Any = console.app.clock
    clock.now = NOW + timedelta(hours=13)  # session_hours = 12
    log_in(client)  # a new session in the other tab: this tab's token is stale
    feed = {"name": "nature", "url": "https://www.nature.com/nature.rss", "action": "test"}
    r = client.post("/admin/feeds", data={"csrf": old, **feed})
    assert r.status_code == 403 and "was not sent" in r.text
    action, fields = _kept_form(r.text)
    assert action == "/admin/feeds" and fields["name"] == ["nature"]
    assert console.app.store.feeds.all() == []
    # an upload: the file cannot be kept; its field is there to choose it again
    csv = b"name,email\nada,ada@lab.example\n"
    r = client.post("/admin/subscribers/import", data={"csrf": old},
                    files={"file": ("people.csv", csv, "text/csv")})  # fmt: skip
    assert r.status_code == 403 and "Choose the file again" in r.text
    assert 'enctype="multipart/form-data"' in r.text and 'type="file" name="file"' in r.text
    # a form from another site (a forged one: the browser says where it comes from) is never
    # kept, not even to be confirmed: the plain refusals, as before
    for header in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        r = client.post("/admin/feeds", data={"csrf": old, **feed}, headers=header)
        assert r.status_code == 403 and "Form refused" in r.text and "send-kept" not in r.text
    client.cookies.clear()
    forged = {"csrf": old, "confirm": "yes"}
    r = client.post(
        "/admin/subscribers/ada/remove", data=forged, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert r.status_code == 403 and "Not logged in" in r.text and "kept." not in r.text
    ours = {"Origin": "https://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}
    r = client.post("/admin/subscribers/ada/remove", data=forged, headers=ours)
    assert 'name="kept.confirm"' in r.text  # the console's own page: kept
    log_in(client)
    # a form posted to where no login may lead is not offered again
    r = client.post("/admin/logout", data={"csrf": "guess"})
    assert r.status_code == 403 and 'id="send-kept"' not in r.text


def test_ipv4_clients_through_nat64_are_not_one_address(console: Console) -> None:
    # a server reached by IPv4 clients through NAT64 (64:ff9b::a.b.c.d) saw all of them in one
    # /64 once b5d96b6 counted by /64: one lockout for every IPv4 client
    from daemon.web.auth import LoginLimiter, client_key

    assert client_key("64:ff9b::192.0.2.7") == "192.0.2.7"
    limiter = LoginLimiter()
    for i in range(1, 10):
        assert limiter.attempt(console.app, f"64:ff9b::198.51.100.{i}", "root")[0] is None


def test_a_form_of_another_admins_session_is_never_offered_to_send(
    console: Console, client: TestClient
) -> None:
    """The kept forms (21ec6b7) were offered to whoever had a session in that browser: root's
    removal of a subscriber, from a tab of a session root logged out of, was shown to bob
    (logged in since) behind an autofocused 'Send it now' with bob's token, bob named in the
    audit log; and root's form kept by the login page after root's session ended was offered
    to bob when bob logged in there. A form is kept only for the admin whose session made
    its token; one without a session's token is not kept at all."""
    from daemon.config_file import edit
    from daemon.passwords import hash_password
    from tests.daemon.conftest import NOW

    other = "another long password"
    console.app.apply_settings(edit(console.config, {"admin.passwords.bob": hash_password(other)}))
    people = console.app.store.people
    people.add("eve", NOW, channels={ChannelKind.EMAIL: "eve@lab.example"})
    roots = log_in(client)
    client.post("/admin/logout", data={"csrf": roots})
    log_in(client, "bob", other)
    r = client.post("/admin/subscribers/eve/remove", data={"csrf": roots, "confirm": "yes"})
    assert r.status_code == 403 and "Form refused" in r.text and 'id="send-kept"' not in r.text
    # no session's token at all (removed from the page, or a form some page made): not kept
    r = client.post("/admin/subscribers/eve/remove", data={"confirm": "yes"})
    assert r.status_code == 403 and 'id="send-kept"' not in r.text
    # root's session ends; the login page keeps root's form; bob logs in there
    client.cookies.clear()
    roots = log_in(client)
    clock: Any = console.app.clock
    clock.now = NOW + timedelta(hours=13)  # session_hours = 12
    r = client.post("/admin/subscribers/eve/remove", data={"csrf": roots, "confirm": "yes"})
    assert r.status_code == 403 and 'name="kept.confirm"' in r.text
    page = _log_in_again(client, r.text, "bob", other)
    assert page.status_code == 200 and 'id="send-kept"' not in page.text
    assert "another admin" in page.text
    assert people.get("eve").name == "eve"
    # the same page, root logging in: kept for root
    client.cookies.clear()
    roots = log_in(client)
    clock.now = NOW + timedelta(hours=26)
    r = client.post("/admin/subscribers/eve/remove", data={"csrf": roots, "confirm": "yes"})
    action, fields = _kept_form(_log_in_again(client, r.text).text)
    assert action == "/admin/subscribers/eve/remove" and fields["confirm"] == ["yes"]


def test_a_large_body_without_a_session_is_neither_read_nor_echoed_back(
    console: Console, client: TestClient
) -> None:
    """The kept forms (21ec6b7) read the body of every POST to the console without a session
    and wrote its fields back into the login page: 2 MB sent by anyone came back as 2 MB of
    hidden fields (up to the 21 MB any body may have). A console form is a few kilobytes; a
    body above KEPT_MAX_BYTES is not kept: the plain refusal, as before 21ec6b7."""
    from daemon.web import console as console_module

    old = log_in(client)
    client.cookies.clear()
    # five fields of 400 kB (one field above 1 MB is refused by the form parser already)
    big = {"csrf": old, "name": "nature", **{f"f{i}": "x" * 400_000 for i in range(5)}}
    r = client.post("/admin/feeds", data=big, headers={"Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 403 and "Not logged in" in r.text and "kept." not in r.text
    assert len(r.content) < 100_000
    small = {"csrf": old, "name": "nature", "url": "x" * (console_module.KEPT_MAX_BYTES // 2)}
    r = client.post("/admin/feeds", data=small, headers={"Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 403 and 'name="kept.url"' in r.text


def test_a_kept_form_of_the_largest_size_kept_is_sent_through_the_login(
    console: Console, client: TestClient
) -> None:
    """The login is read up to LOGIN_BODY now (21 MB before, without any session): the login
    form carries a kept form again, and a kept form of KEPT_MAX_BYTES, multipart with text
    that the browser encodes again three bytes a byte (é: %C3%A9), still gets through."""
    from daemon.web import console as console_module
    from daemon.web.pages import LOGIN_BODY

    old = log_in(client)
    client.cookies.clear()
    url = "é" * (console_module.KEPT_MAX_BYTES // 2 - 1_000)  # two bytes each in the form
    r = client.post(
        "/admin/feeds",
        data={"csrf": old, "name": "nature", "url": url},
        files={"file": ("x.csv", b"")},  # multipart: the text sent as it is
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert r.status_code == 403 and 'name="kept.url"' in r.text
    again = _log_in_again(client, r.text)
    assert len(again.request.content) > 3 * console_module.KEPT_MAX_BYTES - 10_000
    assert len(again.request.content) < LOGIN_BODY
    action, fields = _kept_form(again.text)
    assert again.status_code == 200 and action == "/admin/feeds" and fields["url"] == [url]


def test_the_two_requests_of_a_double_click_on_remove_at_once_are_one_removal(
    console: Console, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """f9c50ed: the second request of a double click goes back to the list when the first
    removed the subscriber already; but the two requests of a double click run at once, and
    when the second read the subscriber before the first removed them its own removal found
    no one: the 404 page "no user named 'eve'" again, as if the removal had failed."""
    csrf = log_in(client)
    people = console.app.store.people
    people.add("eve", console.app.clock(), channels={ChannelKind.EMAIL: "eve@lab.example"})
    seen = people.get("eve")  # read by the second request, before the first removes eve
    people.remove("eve")
    monkeypatch.setattr(people, "get", lambda name: seen)
    r = client.post("/admin/subscribers/eve/remove?q=ev", data={"csrf": csrf, "confirm": "yes"})
    assert r.status_code == 200 and r.url.path == "/admin/subscribers"
    assert "eve is not there (removed already)." in r.text
    assert [a for a in _audit(console) if a[1] == "user removed"] == []


@BOTH_BACKENDS
def test_paused_first_lists_first_everyone_getting_no_digest_now(
    console: Console, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "Paused first" put first those unsubscribed only: a subscriber paused until a date was
    listed among the others, and shown "subscribed". It now lists first, by name, everyone
    getting no digest now: unsubscribed, or paused until a day still ahead in their own time
    zone (as the digest job reads it), shown "paused until DATE"; then the others by name,
    a page at a time."""
    from datetime import date

    from daemon.jobs.digests import is_paused
    from daemon.web import console_people
    from tests.daemon.conftest import NOW

    clock: Any = console.app.clock
    clock.now = NOW + timedelta(hours=2, minutes=30)  # 10:30 UTC: Kiritimati is on the 28th
    people = console.app.store.people
    kiritimati, pago_pago = "Pacific/Kiritimati", "Pacific/Pago_Pago"  # UTC+14, UTC-11
    for name, zone, until in (
        ("ann", "UTC", None), ("bob", "UTC", None), ("cat", "UTC", date(2026, 12, 24)),
        ("dan", "UTC", date(2026, 11, 20)), ("eve", kiritimati, date(2026, 11, 28)),
        ("fay", "UTC", date(2026, 11, 28)), ("gus", pago_pago, date(2026, 11, 27)),
        ("hal", "UTC", date(2026, 11, 27)),
    ):  # fmt: skip
        people.add(name, NOW, channels={ChannelKind.EMAIL: f"{name}@lab.example"}, timezone=zone)
        if until is not None:
            people.edit(name, NOW, changes={"paused_until": until})
    people.set_subscribed(people.get("bob").id, False, NOW)
    none_now = {"bob", "cat", "fay", "gus"}
    assert {u.name for u, _ in people.find()[1]
            if not u.active or is_paused(u, clock.now)} == none_now  # fmt: skip
    log_in(client)

    def listed(page: int) -> tuple[list[str], str]:
        text = client.get(f"/admin/subscribers?sort=paused&page={page}").text
        return re.findall(r'<tr id="user-(\w+)">', text), text

    names, text = listed(0)
    assert names == ["bob", "cat", "fay", "gus", "ann", "dan", "eve", "hal"]

    def state(name: str) -> str:
        found = re.search(rf'<tr id="user-{name}">.*?data-label="state">(.*?)</td>', text, re.S)
        return found[1] if found else ""

    assert state("cat") == "paused until 2026-12-24" and state("fay") == "paused until 2026-11-28"
    assert state("bob") == "paused" and state("eve") == state("ann") == "subscribed"
    for q, shown in (("ay", ["fay"]), ("an", ["ann", "dan"]), ("u", ["gus"])):  # a search
        found = client.get(f"/admin/subscribers?sort=paused&q={q}").text
        assert re.findall(r'<tr id="user-(\w+)">', found) == shown, q
    monkeypatch.setattr(console_people, "PAGE", 3)  # the pages across the two parts
    assert [listed(n)[0] for n in range(3)] == [
        ["bob", "cat", "fay"],
        ["gus", "ann", "dan"],
        ["eve", "hal"],
    ]


def test_the_audit_of_an_edit_names_a_frequency_and_a_weekday_as_the_page_does(
    console: Console, client: TestClient
) -> None:
    """b2a3044 wrote a change of frequency into the audit log as Python's repr of the enum:
    "frequency: <Frequency.DAILY: 'daily'> → <Frequency.WEEKLY: 'weekly'>; day: default → 2"."""
    csrf = log_in(client)
    console.app.store.people.add(
        "eve", console.app.clock(), channels={ChannelKind.EMAIL: "eve@lab.example"}
    )
    sent = {"csrf": csrf, "display_name": "eve", "email": "eve@lab.example", "timezone": "UTC",
            "frequency": "weekly", "weekday": "wed"}  # fmt: skip
    assert "Saved eve" in client.post("/admin/subscribers/eve", data=sent).text
    (entry,) = [a for a in console.app.store.admin.audit_log() if a.action == "user changed"]
    assert entry.detail == "frequency: daily → weekly; day: none → wed"


def test_back_without_sending_leads_to_the_page_the_kept_form_was_on(
    console: Console, client: TestClient
) -> None:
    """The kept page's 'Back, without sending' (21ec6b7) cut the last part off the form's
    address: a feed's Disable (/admin/feeds/nature/disable) led to /admin/feeds/nature, a
    404 page, and a subscriber's Save (/admin/subscribers/eve?q=ev) to the first page of the
    whole list."""
    from tests.daemon.conftest import NOW

    console.app.store.people.add("eve", NOW, channels={ChannelKind.EMAIL: "eve@lab.example"})
    old = log_in(client)
    clock: Any = console.app.clock
    clock.now = NOW + timedelta(hours=13)  # session_hours = 12
    log_in(client)
    for to, back in (
        ("/admin/feeds/nature/disable", "/admin/feeds"),
        ("/admin/subscribers/eve?q=ev&page=1", "/admin/subscribers/eve?q=ev&page=1"),
        ("/admin/subscribers/eve/pause?q=ev", "/admin/subscribers/eve?q=ev"),
        ("/admin/subscribers/import", "/admin/subscribers"),
        ("/admin/deliveries/retry", "/admin/deliveries"),
        ("/admin/config/restore", "/admin/config"),
    ):
        r = client.post(to, data={"csrf": old, "x": "1"})
        found = re.search(r'<a href="([^"]*)">Back, without sending</a>', r.text)
        assert found and html.unescape(found[1]) == back, (to, found and found[1])
        assert client.get(back).status_code == 200


# ---- a name guessed from many networks -----------------------------------------------------------


def _login_from(
    console: Console, ip: str, password: str, device: str = "", name: str = "root"
) -> Any:
    """A login of `name` from a browser at `ip` holding the device cookie `device` (or none)."""
    from daemon.web import auth

    client = TestClient(console.daemon.web, base_url="https://127.0.0.1:8080", client=(ip, 50000))
    if device:
        client.cookies.set(auth.DEVICE_COOKIE, device, path="/admin")
    page = client.get("/admin/login")
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token
    return client.post(
        "/admin/login", data={"name": name, "password": password, "token": token.group(1)}
    )


def test_a_name_guessed_from_many_networks_is_locked_for_unknown_browsers_only(
    console_factory: ConsoleFactory,
) -> None:
    # each network had its own count (admin.max_failed_logins), so guesses spread over many
    # networks against one name were never stopped: two argon2 checks at a time, all day
    from daemon.web import auth
    from tests.daemon.conftest import NOW

    console = console_factory(extra="max_failed_logins_per_name = 6")
    known = _login_from(console, "198.51.100.1", PASSWORD)
    assert known.url.path == "/admin/health"
    device = known.history[0].cookies[auth.DEVICE_COOKIE]  # set with the session
    cookie = next(c for c in known.history[0].headers.get_list("set-cookie")
                  if c.startswith(auth.DEVICE_COOKIE))  # fmt: skip
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/admin"):
        assert flag in cookie, (flag, cookie)
    assert f"Max-Age={365 * 24 * 3600}" in cookie

    codes = [_login_from(console, f"203.0.113.{i}", "guess!").status_code for i in range(1, 9)]
    assert codes == [401] * 6 + [429] * 2  # one guess a network, six for the name an hour
    refused = _login_from(console, "203.0.113.50", PASSWORD)  # the right one, from elsewhere
    assert refused.status_code == 429 and "browser where you logged in before" in refused.text
    forged = device[:-2] + ("AA" if not device.endswith("AA") else "BB")
    assert _login_from(console, "203.0.113.51", PASSWORD, forged).status_code == 429
    # the admin's browser still logs in, from any network
    assert _login_from(console, "192.0.2.9", PASSWORD, device).url.path == "/admin/health"
    refusals = [a for a in _audit(console) if a[1].startswith("login refused")]
    assert refusals == [("root", "login refused: too many failures for this name", "203.0.113.7")]

    # the device cookie has a limit of its own (admin.max_failed_logins = 3), a network each
    codes = [_login_from(console, f"192.0.2.{i}", "typo!", device).status_code for i in range(3)]
    assert codes == [401] * 3
    assert _login_from(console, "192.0.2.13", PASSWORD, device).status_code == 429
    clock: Any = console.app.clock
    clock.now = NOW + timedelta(minutes=61)  # the hour has passed: unknown browsers again
    assert _login_from(console, "203.0.113.52", PASSWORD).url.path == "/admin/health"


def test_a_new_password_voids_the_device_cookies_of_the_old_one(
    console_factory: ConsoleFactory,
) -> None:
    # each login with a password gave a device cookie of its own, kept for a year whatever
    # the password became: whoever knew an old one held as many cookies as logins, each
    # with its own max_failed_logins, past the name's limit
    from daemon.config_file import edit
    from daemon.web import auth

    console = console_factory(extra="max_failed_logins_per_name = 2")
    old = _login_from(console, "198.51.100.1", PASSWORD)
    device = old.history[0].cookies[auth.DEVICE_COOKIE]
    codes = [_login_from(console, f"203.0.113.{i}", "guess!").status_code for i in range(1, 4)]
    assert codes == [401, 401, 429]  # the name is locked for browsers without its cookie
    assert _login_from(console, "198.51.100.1", "typo!", device).status_code == 401  # its own

    new = "another long password"
    hashed = console.app.settings.admin.passwords["root"]
    console.app.apply_settings(edit(console.config, {"admin.passwords.root": hashed}))
    assert _login_from(console, "198.51.100.2", "typo!", device).status_code == 401  # the same
    console.app.apply_settings(edit(console.config, {"admin.passwords.root": _hash(new)}))
    voided = _login_from(console, "198.51.100.3", new, device)
    assert voided.status_code == 429 and "browser where you logged in before" in voided.text


def _hash(password: str) -> str:
    from daemon.passwords import hash_password

    return hash_password(password)


def test_an_address_shared_with_guessers_does_not_lock_out_a_browser_with_its_device_cookie(
    console_factory: ConsoleFactory,
) -> None:
    # the address limits came first for every browser: whoever shared the admin's address (a
    # NAT, a proxy whose X-Forwarded-For is not trusted) locked the admin's own browser out
    # with 12 wrong logins of any names
    from daemon.web import auth

    console = console_factory()  # max_failed_logins = 3: 12 from one address
    known = _login_from(console, "198.51.100.1", PASSWORD)
    device = known.history[0].cookies[auth.DEVICE_COOKIE]
    codes = [
        _login_from(console, "198.51.100.1", "guess!", name=f"user{i}").status_code
        for i in range(13)
    ]
    assert codes == [401] * 12 + [429]
    assert _login_from(console, "198.51.100.1", PASSWORD).status_code == 429  # no cookie: locked
    assert _login_from(console, "198.51.100.1", PASSWORD, device).url.path == "/admin/health"
    # its typos count against its cookie alone, not against the address for browsers without
    typos = [_login_from(console, "192.0.2.1", "typo!", device).status_code for _ in range(4)]
    assert typos == [401] * 3 + [429]
    assert _login_from(console, "192.0.2.1", "guess!").status_code == 401


@pytest.mark.parametrize(
    ("key", "typed"),
    [("digest.max_picks", "٣٠"), ("admin.lockout_minutes", "١٥"), ("email.port", "２５")],
)
def test_a_number_in_digits_of_another_script_is_refused_on_every_path(
    console: Console, client: TestClient, key: str, typed: str
) -> None:
    """The configuration page took '٣٠' (Arabic-Indic digits) as 30, which Python's int()
    and float() read, and wrote 30; the subscriber's form and a CSV of subscribers refused
    '٣' as 'not a number from 0 to 23', as if it were no number. Every path refuses digits
    other than 0–9, naming the field and saying to write them so."""
    csrf = log_in(client)
    before = console.config.read_bytes()
    r = client.post("/admin/config", data={**_config_form(client), key: typed})
    assert r.status_code == 400 and f'id="error-{key}"' in r.text, r.text[-300:]
    assert f"{key} = &#39;{typed}&#39;: write the number with the digits 0–9" in r.text
    assert console.config.read_bytes() == before

    people = console.app.store.people
    people.add("ada", console.app.clock(), channels={ChannelKind.EMAIL: "ada@lab.example"})
    form = {"csrf": csrf, "email": "ada@lab.example", "timezone": "UTC", "max_picks": "٣٠"}
    r = client.post("/admin/subscribers/ada", data=form)
    assert r.status_code == 400 and "&#39;٣٠&#39;: write the number with the digits 0–9" in r.text
    assert people.get("ada").max_picks is None
    csv = "name,email,hour\nbob,bob@lab.example,٧\n"
    r = client.post("/admin/subscribers/import", data={"csrf": csrf},
                    files={"file": ("lab.csv", csv, "text/csv")})  # fmt: skip
    assert r.status_code == 400
    assert "line 2: hour: &#39;٧&#39;: write the number with the digits 0–9" in r.text
    assert people.find()[0] == 1


def test_a_refused_follow_keeps_what_was_typed_and_marks_its_field(
    console: Console, client: TestClient
) -> None:
    """A follow refused (a name too long) was a redirect to the page with a flash 'author: …':
    the name typed was gone (to type again, not to shorten), its kind back to 'keyword', and
    nothing marked the field. The page comes again with both kept, the field marked invalid
    and described by the error, which names it."""
    csrf = log_in(client)
    people = console.app.store.people
    people.add("ada", console.app.clock(), channels={ChannelKind.EMAIL: "ada@lab.example"})
    long = "Augusta Ada King, Countess of Lovelace " * 6  # 234 characters
    r = client.post("/admin/subscribers/ada/follow", data={"csrf": csrf, "kind": "author",
                                                           "value": long})  # fmt: skip
    assert r.status_code == 400 and "<h1>ada" in r.text
    field = re.search(r'<input type="text" id="f-value"[^>]*>', r.text)
    assert field is not None
    assert f'value="{long.strip()}"' in field[0]
    assert 'aria-invalid="true" aria-describedby="f-error"' in field[0]
    said = re.search(r'id="f-error"[^>]*>([^<]*)<', r.text)
    assert said is not None and said[1].startswith("Keyword or author: ")
    assert '<option value="author" selected>' in r.text
    assert people.signals([people.get("ada").id])[people.get("ada").id].follows == ()
    # its address opened again (a reload from the address bar): her page, not 405
    again = client.get("/admin/subscribers/ada/follow")
    assert again.status_code == 200 and again.url.path == "/admin/subscribers/ada"

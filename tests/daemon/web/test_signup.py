"""Self-signup: closed by default; open, it is double opt-in (a link mailed to the address, a
button on its page), limited to `server.signup_domains`, with the same answer for a known
address (which is mailed a link to its page instead)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from daemon.app import App
from daemon.db.models import ChannelKind
from daemon.settings import ServerSettings
from daemon.web.pages import make_web
from tests.daemon.conftest import NOW, SettingsFactory
from tests.daemon.web.conftest import ask_for


def _app(app_factory: Callable[..., App], make_settings: SettingsFactory, **server: Any) -> App:
    return app_factory(
        make_settings(
            server={
                "base_url": "http://127.0.0.1:8080",
                "secret_key": "test-secret-key-0123",
                **server,
            }
        )
    )


def _mail_bodies(app: App) -> list[str]:
    outbox = Path(app.settings.delivery.outbox_dir)
    return [f.read_text() for f in sorted(outbox.glob("*.eml"))] if outbox.exists() else []


def test_signup_is_closed_by_default(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    app = _app(app_factory, make_settings)
    assert app.settings.server.signup == "closed"
    with TestClient(make_web(app)) as client:
        assert client.get("/signup").status_code == 404
        assert client.post("/signup", data={"email": "a@lab.example"}).status_code == 404
        token = app.links.signup_url("a@lab.example", app.clock()).rsplit("/", 1)[1]
        assert client.post(f"/signup/{token}").status_code == 404
    assert app.store.people.find() == (0, [])


def test_double_opt_in(app_factory: Callable[..., App], make_settings: SettingsFactory) -> None:
    app = _app(app_factory, make_settings, signup="open", signup_domains=["lab.example"])
    with TestClient(make_web(app)) as client:
        assert 'name="email"' in client.get("/signup").text
        refused = ask_for(client, "/signup", {"email": "eve@elsewhere.example"})
        assert refused.status_code == 400
        assert ask_for(client, "/signup", {"email": "not an address"}).status_code == 400
        answer = ask_for(
            client, "/signup", {"email": "grace.h@lab.example"}, follow_redirects=False
        )
        # the answer is a page of its own: a reload of it mails nothing more
        assert answer.status_code == 303 and answer.headers["location"] == "/signup?sent=1"
        for _ in range(2):
            assert 'id="sent"' in client.get(answer.headers["location"]).text
        assert app.store.people.find() == (0, [])  # nothing until the link is confirmed
        (body,) = _mail_bodies(app)
        link = re.search(r"http://127\.0\.0\.1:8080(/signup/[\w.-]+)", body.replace("=\n", ""))
        assert link is not None
        page = client.get(link.group(1))
        assert "grace.h@lab.example" in page.text
        assert app.store.people.find() == (0, [])  # the GET made nobody
        done = client.post(link.group(1))
        assert done.status_code == 200 and "Welcome!" in done.text  # on their own page
        _, ((user, channels),) = app.store.people.find()
        assert user.name == "grace.h" and user.active
        assert [(c.kind, c.address) for c in channels] == [
            (ChannelKind.EMAIL, "grace.h@lab.example")
        ]
        # confirming again makes no second subscriber
        client.post(link.group(1))
        assert app.store.people.find()[0] == 1


def test_a_known_address_gets_the_same_answer(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    app = _app(app_factory, make_settings, signup="open")
    app.store.people.add("ada", app.clock(), channels={ChannelKind.EMAIL: "ada@lab.example"})
    with TestClient(make_web(app)) as client:
        known = ask_for(client, "/signup", {"email": "ada@lab.example"})
        unknown = ask_for(client, "/signup", {"email": "bob@lab.example"})
        assert known.text == unknown.text
    bodies = _mail_bodies(app)
    assert any("/me/" in b for b in bodies) and any("/signup/" in b for b in bodies)


def test_the_signup_link_expires(
    app_factory: Callable[..., App], make_settings: SettingsFactory, clock: Any
) -> None:
    app = _app(app_factory, make_settings, signup="open")
    path = "/signup/" + app.links.signup_url("x@lab.example", clock()).rsplit("/", 1)[1]
    clock.now = clock.now + timedelta(hours=48)
    with TestClient(make_web(app)) as client:
        assert client.post(path).status_code == 400
        assert client.post(path[:-2]).status_code == 400
    assert app.store.people.find() == (0, [])


def test_signup_domains_are_checked() -> None:
    assert ServerSettings(signup_domains="Lab.example, @uni.example").signup_domains == [
        "lab.example",
        "uni.example",
    ]
    with pytest.raises(ValidationError):
        ServerSettings(signup_domains=["not a domain"])
    with pytest.raises(ValidationError):
        ServerSettings(signup="maybe")


def test_a_domain_beyond_ascii_is_one_domain_in_either_form(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    # addresses beyond ASCII are taken since SMTPUTF8 (04ce097), but signup_domains refused
    # 'bücher.example', and 'xn--bcher-kva.example' never matched an address written in Unicode
    assert ServerSettings(signup_domains="Bücher.example").signup_domains == [
        "xn--bcher-kva.example"
    ]
    for listed in ("bücher.example", "xn--bcher-kva.example"):
        app = _app(app_factory, make_settings, signup="open", signup_domains=[listed])
        with TestClient(make_web(app)) as client:
            for address in ("jörg@bücher.example", "jörg@xn--bcher-kva.example"):
                answer = ask_for(client, "/signup", {"email": address}, follow_redirects=False)
                assert answer.status_code == 303, (listed, address)
            refused = ask_for(client, "/signup", {"email": "jörg@bucher.example"})
            assert refused.status_code == 400


def test_a_new_handle_is_the_first_free_one_from_the_address(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    from daemon.web.signup import new_handle

    app = _app(app_factory, make_settings)
    assert new_handle(app, "ada@lab.example") == "ada"
    for name in ("ada", "ada-2", "adam"):
        app.store.people.add(name, NOW, channels={ChannelKind.EMAIL: f"{name}@lab.example"})
    assert new_handle(app, "ada@other.example") == "ada-3"
    assert new_handle(app, "-eve.@lab.example") == "eve"
    # a handle is one user's in any case: "Ada@…" beside "ada" got "Ada", and a 500
    assert new_handle(app, "Ada@other.example") == "Ada-3"
    app.store.people.add(new_handle(app, "ADA@x.example"), NOW,
                         channels={ChannelKind.EMAIL: "ADA@x.example"})  # fmt: skip


def test_a_repeated_confirmation_says_the_account_exists_and_changes_nothing(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    """The confirm link pressed again (or a link of an address that has an account since)
    greeted with "Welcome!" as if the account were new. It says the account exists, and its
    settings stay as they are."""
    app = _app(app_factory, make_settings, signup="open")
    with TestClient(make_web(app)) as client:
        link = app.links.signup_url("grace@lab.example", app.clock()).rsplit("/", 1)[1]
        first = client.post(f"/signup/{link}")
        assert "Welcome!" in first.text
        _, ((user, _),) = app.store.people.find()
        app.store.people.edit(user.name, app.clock(), changes={"digest_hour": 5})
        app.store.people.set_subscribed(user.id, False, app.clock())
        page = client.get(f"/signup/{link}")
        assert "You already have a paperwire digest at grace@lab.example" in page.text
        assert "Yes, subscribe me" not in page.text
        again = client.post(f"/signup/{link}")
        assert again.status_code == 200 and "Welcome!" not in again.text
        assert "You already have an account at this address" in again.text
        assert "nothing was changed" in again.text
        count, ((after, _),) = app.store.people.find()
        assert count == 1 and after.digest_hour == 5 and not after.active
        # an address the admin added after the link was mailed: the same
        other = app.links.signup_url("ada@lab.example", app.clock()).rsplit("/", 1)[1]
        app.store.people.add("ada", app.clock(), channels={ChannelKind.EMAIL: "ada@lab.example"})
        shown = client.post(f"/signup/{other}")
        assert "Welcome!" not in shown.text and "You already have an account" in shown.text
        # signing up again with a known address mails a link saying so, not a welcome
        ask_for(client, "/signup", {"email": "ada@lab.example"})
    (body,) = [b for b in _mail_bodies(app) if "/me/" in b]
    assert "already has a paperwire account" in body.replace("=\n", "")


@pytest.mark.parametrize("path", ["/manage", "/signup"])
def test_a_form_without_its_page_is_refused_and_mails_nothing(
    app_factory: Callable[..., App], make_settings: SettingsFactory, path: str
) -> None:
    """/manage and /signup took any POST: a page of another site could make its readers'
    browsers ask for links and confirmations for any addresses (each counted against their
    network's limit, each a mail to a stranger). Their forms now carry a double-submit token,
    as the console's login form does: without it, or from another site, nothing is done."""
    app = _app(app_factory, make_settings, signup="open")
    app.store.people.add("ada", app.clock(), channels={ChannelKind.EMAIL: "ada@lab.example"})
    web, base = make_web(app), "https://127.0.0.1:8080"  # a browser keeps the Secure cookie
    with TestClient(web, base_url=base) as client, TestClient(web, base_url=base) as other:
        page = client.get(path)
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        cookie = page.cookies.get("paperwire_form")
        assert cookie == token.group(1)
        assert "samesite=strict" in page.headers["set-cookie"].lower()
        email = {"email": "ada@lab.example"}
        tries = [
            other.post(path, data=email),  # another site's page: neither token nor cookie
            other.post(path, data={**email, "csrf": "guessed"}),
            client.post(path, data={**email, "csrf": "guessed"}),  # the cookie, not the token
            client.post(  # both, but the browser says another site sent it
                path,
                data={**email, "csrf": token.group(1)},
                headers={"Origin": "https://evil.example"},
            ),
        ]
        for refused in tries:
            assert refused.status_code == 403
            assert "nothing was done" in refused.text
            assert 'value="ada@lab.example"' in refused.text  # kept, to press again
        assert _mail_bodies(app) == []
        done = client.post(path, data={**email, "csrf": token.group(1)}, follow_redirects=False)
        assert done.status_code == 303
    assert len(_mail_bodies(app)) == 1


@pytest.mark.parametrize("path", ["/manage", "/signup"])
def test_a_browser_that_keeps_no_cookie_is_told_so(
    app_factory: Callable[..., App], make_settings: SettingsFactory, path: str
) -> None:
    """A browser blocking cookies (or a page open past the cookie's day) posts the page's token
    without its cookie. It was told 'Press the button again', which did the same again: a
    loop of 403s saying nothing of the cookie. It is told the form needs this site's cookie."""
    app = _app(app_factory, make_settings, signup="open")
    app.store.people.add("ada", app.clock(), channels={ChannelKind.EMAIL: "ada@lab.example"})
    web, base = make_web(app), "https://127.0.0.1:8080"
    with TestClient(web, base_url=base) as blocking:
        for _ in range(2):  # pressed again: the same answer, the same advice
            page = blocking.get(path)
            token = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert token is not None
            blocking.cookies.clear()  # the browser did not keep it
            refused = blocking.post(path, data={"email": "ada@lab.example", "csrf": token[1]})
            assert refused.status_code == 403
            assert "Press the button again" not in refused.text
            assert "cookie" in refused.text and "127.0.0.1:8080" in refused.text
            assert 'value="ada@lab.example"' in refused.text
            # the address is not what was refused: its field is not marked (/manage marked it
            # for any error, so a screen reader heard 'invalid' on a good address)
            assert "aria-invalid" not in refused.text
    assert _mail_bodies(app) == []

"""daemon.web: GET never changes state, POST does, undo reverts, bad tokens get a clear 400."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from daemon.app import App
from daemon.db.models import ChannelKind, Feedback, User
from daemon.db.rows import UserRow
from daemon.ingest.parse import PaperIn
from daemon.web.links import Links
from daemon.web.pages import make_web

EVIL_TITLE = '<script>alert("pwned")</script> Attention & <b>Diffusion</b>'


@dataclass
class World:
    app: App
    client: TestClient
    user_id: int
    paper_id: int
    evil_paper_id: int


@pytest.fixture
def world(app_factory: Callable[..., App], clock: Callable[[], datetime]) -> Iterator[World]:
    app = app_factory()
    now = clock()
    user = app.store.people.add("ada", now, channels={ChannelKind.EMAIL: "ada@example.org"})
    assert user.id is not None
    app.store.papers.upsert(
        [
            PaperIn(
                key="arxiv:2608.16590",
                title="A plain paper",
                abstract="About things.",
                authors=("Xin Ding",),
                url="https://arxiv.org/abs/2608.16590",
                published=now,
                arxiv_id="2608.16590",
            ),
            PaperIn(
                key="arxiv:2608.17253",
                title=EVIL_TITLE,
                abstract="",
                authors=("Mallory",),
                url="https://arxiv.org/abs/2608.17253",
                published=now,
                arxiv_id="2608.17253",
            ),
        ],
        None,
        now,
    )
    plain = app.store.papers.find("2608.16590")
    evil = app.store.papers.find("2608.17253")
    with TestClient(make_web(app)) as client:
        yield World(app, client, user.id, plain.id, evil.id)


def _path(url: str) -> str:
    return urlsplit(url).path


def _snapshot(app: App) -> dict[str, Any]:
    """Everything a link can change: feedback rows and the user's subscription."""
    with Session(app.store.engine) as s:
        feedback = sorted((f.user_id, f.paper_id, f.value) for f in s.exec(select(Feedback)).all())
        users = sorted((u.id, u.active, u.unsubscribed_at) for u in s.exec(select(User)).all())
    return {"feedback": feedback, "users": users}


def _signals(w: World) -> tuple[list[int], list[int]]:
    sig = w.app.store.people.signals([w.user_id])[w.user_id]
    return [pid for pid, _ in sig.likes], list(sig.dislikes)


def _user(w: World) -> UserRow:
    user = w.app.store.people.by_id(w.user_id)
    assert user is not None
    return user


# ---- like / dislike --------------------------------------------------------------------------


def test_get_like_page_shows_a_post_form_and_changes_nothing(world: World) -> None:
    path = _path(world.app.links.feedback_url("like", world.user_id, world.paper_id))
    before = _snapshot(world.app)
    resp = world.client.get(path)
    assert resp.status_code == 200
    assert '<form method="post"' in resp.text
    assert "A plain paper" in resp.text
    assert "More papers like this one?" in resp.text
    assert resp.headers["cache-control"] == "no-store"
    # following the link twice (mail scanners do) still changes nothing
    assert world.client.get(path).status_code == 200
    assert _snapshot(world.app) == before
    assert _signals(world) == ([], [])


def test_post_like_records_it_and_undo_removes_it(world: World) -> None:
    path = _path(world.app.links.feedback_url("like", world.user_id, world.paper_id))
    resp = world.client.post(path)
    assert resp.status_code == 200
    assert "Thanks" in resp.text
    assert f'action="{path}/undo"' in resp.text
    assert _signals(world) == ([world.paper_id], [])
    # a second press is harmless: still one like
    assert world.client.post(path).status_code == 200
    assert _signals(world) == ([world.paper_id], [])
    with Session(world.app.store.engine) as s:
        assert len(s.exec(select(Feedback)).all()) == 1

    undo = world.client.post(path + "/undo")
    assert undo.status_code == 200
    assert "Undone" in undo.text
    assert _signals(world) == ([], [])


def test_undo_gives_back_the_answer_replaced_and_never_one_given_since(world: World) -> None:
    like = _path(world.app.links.feedback_url("like", world.user_id, world.paper_id))
    dislike = _path(world.app.links.feedback_url("dislike", world.user_id, world.paper_id))
    world.client.post(dislike)
    page = world.client.post(like)  # a dislike turned into a like
    undo = re.search(r'action="([^"]+/undo[^"]*)"', page.text)
    assert undo is not None and _signals(world) == ([world.paper_id], [])
    assert "Undone" in world.client.post(html.unescape(undo.group(1))).text
    assert _signals(world) == ([], [world.paper_id])  # the dislike again, not nothing
    # a stale undo page: the answer changed since (disliked again elsewhere) is kept
    world.client.post(like)
    world.client.post(dislike)
    stale = world.client.post(like + "/undo")
    assert stale.status_code == 200 and "Nothing to undo" in stale.text
    assert _signals(world) == ([], [world.paper_id])
    # `was` is a word, nothing else
    assert world.client.post(like + "/undo?was=7").status_code == 400


def test_like_answers_with_a_redirect_so_reload_and_double_click_do_not_spoil_undo(
    world: World,
) -> None:
    """POST/redirect/GET: the result is a page of its own (a reload or the back button never
    posts again), and a second POST of the same answer (a double click, a reload confirmed)
    leaves an undo that still removes the like (it said "Undone." and kept it)."""
    path = _path(world.app.links.feedback_url("like", world.user_id, world.paper_id))
    first = world.client.post(path, follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == f"{path}/done"
    again = world.client.post(path, follow_redirects=False)  # the second click
    assert again.headers["location"] == f"{path}/done"
    done = world.client.get(again.headers["location"])
    assert done.status_code == 200 and "Thanks" in done.text
    assert world.client.get(f"{path}/done").text == done.text  # a reload: the same, no write
    assert _signals(world) == ([world.paper_id], [])
    undo = re.search(r'action="([^"]+/undo[^"]*)"', done.text)
    assert undo is not None
    undone = world.client.post(html.unescape(undo.group(1)), follow_redirects=False)
    assert undone.status_code == 303
    assert "Undone." in world.client.get(undone.headers["location"]).text
    assert _signals(world) == ([], [])
    # back to the result page after the undo: it no longer says "noted", it asks again
    back = world.client.get(f"{path}/done")
    assert "More papers like this one?" in back.text and _signals(world) == ([], [])


def test_undo_after_a_double_click_gives_back_the_answer_the_page_replaced(world: World) -> None:
    """A double click on "Yes, more like this" for a paper disliked before: the first request
    replaced the dislike, the second (the one the browser shows) replaced nothing, and its
    Undo removed the like instead of giving the dislike back."""
    like = _path(world.app.links.feedback_url("like", world.user_id, world.paper_id))
    dislike = _path(world.app.links.feedback_url("dislike", world.user_id, world.paper_id))
    world.client.post(dislike)
    page = world.client.get(like).text
    field = re.search(r'name="was" value="(-?\d)"', page)
    assert field is not None and field.group(1) == "-1"
    world.client.post(like, data={"was": "-1"})  # the first click
    second = world.client.post(like, data={"was": "-1"})  # the second: the page shown
    undo = re.search(r'action="([^"]+/undo[^"]*)"', second.text)
    assert undo is not None and "was=-1" in undo.group(1)
    world.client.post(html.unescape(undo.group(1)))
    assert _signals(world) == ([], [world.paper_id])  # disliked, as before the clicks
    # a page shown before an answer given elsewhere: what was replaced wins over the page
    world.client.post(like, data={"was": "-1"})
    fresh = world.client.post(dislike, data={"was": "-1"})
    assert "was=1" in fresh.text and _signals(world) == ([], [world.paper_id])
    assert world.client.post(like, data={"was": "5"}).status_code == 400  # a word or nothing


def test_undo_says_what_is_true_after_a_double_click_or_a_new_answer(world: World) -> None:
    """The second request of a double click on Undo (the one the browser shows) said "Nothing
    to undo: your answer has changed since", though the first had undone it; the undo's
    result page, reached again after the same answer was given anew, said "Undone."."""
    path = _path(world.app.links.feedback_url("like", world.user_id, world.paper_id))
    world.client.post(path)
    world.client.post(f"{path}/undo")
    second = world.client.post(f"{path}/undo")  # the double click's second request
    assert "Undone." in second.text and "Nothing to undo" not in second.text
    assert _signals(world) == ([], [])
    world.client.post(path)  # liked again: the undo's page no longer says "Undone."
    back = world.client.get(f"{path}/undone")
    assert "Undone." not in back.text and "Thanks" in back.text
    assert _signals(world) == ([world.paper_id], [])


def test_dislike_works_the_same(world: World) -> None:
    path = _path(world.app.links.feedback_url("dislike", world.user_id, world.paper_id))
    before = _snapshot(world.app)
    page = world.client.get(path)
    assert page.status_code == 200
    assert "Fewer papers like this one?" in page.text
    assert '<form method="post"' in page.text
    assert _snapshot(world.app) == before

    assert world.client.post(path).status_code == 200
    assert _signals(world) == ([], [world.paper_id])
    assert world.client.post(path + "/undo").status_code == 200
    assert _signals(world) == ([], [])


def test_dislike_after_like_replaces_it(world: World) -> None:
    links = world.app.links
    world.client.post(_path(links.feedback_url("like", world.user_id, world.paper_id)))
    world.client.post(_path(links.feedback_url("dislike", world.user_id, world.paper_id)))
    assert _signals(world) == ([], [world.paper_id])


# ---- bad tokens ------------------------------------------------------------------------------


def _bad_tokens(w: World) -> dict[str, str]:
    token = w.app.links.token("like", w.user_id, w.paper_id)
    payload, _, signature = token.rpartition(".")
    forged_sig = signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")
    other = Links("another-installation-secret", "http://127.0.0.1:8080")
    return {
        "truncated": token[:-5],
        "forged signature": f"{payload}.{forged_sig}",
        "other installation": other.token("like", w.user_id, w.paper_id),
        "garbage": "not-a-token",
        "compact, truncated": w.app.links.feedback_token("like", w.user_id, w.paper_id)[:-1],
        "compact, made a dislike": "d"
        + w.app.links.feedback_token("like", w.user_id, w.paper_id)[1:],
    }


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_bad_feedback_token_gives_400_and_changes_nothing(world: World, method: str) -> None:
    before = _snapshot(world.app)
    for label, token in _bad_tokens(world).items():
        for path in (f"/f/{token}", f"/f/{token}/undo"):
            if method == "GET" and path.endswith("/undo"):
                continue
            resp = world.client.request(method, path)
            assert resp.status_code == 400, (label, path)
            assert "Link not valid" in resp.text
            assert "not valid" in resp.text and "cut short or altered" in resp.text, label
    assert _snapshot(world.app) == before


def test_bad_unsubscribe_token_gives_400_and_changes_nothing(world: World) -> None:
    token = world.app.links.token("unsubscribe", world.user_id)
    before = _snapshot(world.app)
    for path in (f"/unsubscribe/{token[:-4]}", f"/unsubscribe/{token[:-4]}/undo"):
        resp = world.client.post(
            path,
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert resp.status_code == 400
        assert "Link not valid" in resp.text
    assert _snapshot(world.app) == before
    assert _user(world).active is True


def test_token_for_another_action_is_refused(world: World) -> None:
    like = world.app.links.token("like", world.user_id, world.paper_id)
    unsub = world.app.links.token("unsubscribe", world.user_id)
    before = _snapshot(world.app)
    resp = world.client.post(f"/unsubscribe/{like}")
    assert resp.status_code == 400
    assert "not valid here" in resp.text
    resp = world.client.post(f"/f/{unsub}")
    assert resp.status_code == 400
    assert "not valid here" in resp.text
    assert _snapshot(world.app) == before


def test_link_of_a_removed_user_is_a_clear_400(world: World) -> None:
    path = _path(world.app.links.feedback_url("like", world.user_id, world.paper_id))
    world.app.store.people.remove("ada")
    resp = world.client.post(path)
    assert resp.status_code == 400
    assert "no longer exists" in resp.text


def test_like_link_of_a_removed_channel_is_refused(world: World) -> None:
    people = world.app.store.people
    email = people.channels_of(world.user_id)[0].id
    like = _path(world.app.links.feedback_url("like", world.user_id, world.paper_id, email))
    people.set_channel(world.user_id, ChannelKind.SLACK, "https://hooks.slack.com/services/T/B/x")
    people.set_channel(world.user_id, ChannelKind.EMAIL, None)  # removed by the admin
    for resp in (world.client.get(like), world.client.post(like)):
        assert resp.status_code == 400 and "no longer among your channels" in resp.text
    assert _signals(world) == ([], [])


def test_link_to_an_unknown_paper_is_a_clear_400(world: World) -> None:
    path = _path(world.app.links.feedback_url("like", world.user_id, 999_999))
    resp = world.client.post(path)
    assert resp.status_code == 400
    assert "no longer stored" in resp.text
    assert _signals(world) == ([], [])


def test_a_scanners_head_request_is_answered_as_the_get_and_changes_nothing(world: World) -> None:
    """Link scanners (Outlook Safe Links, corporate gateways) send HEAD before GET: every link
    of a digest answered 405 Method Not Allowed, which a scanner may take for a dead link.
    HEAD is the GET's answer without its body (RFC 9110 §9.3.2), and as harmless."""
    links = world.app.links
    paths = [
        _path(links.feedback_url("like", world.user_id, world.paper_id)),
        _path(links.feedback_url("dislike", world.user_id, world.paper_id)),
        _path(links.unsubscribe_url(world.user_id)),
        _path(links.manage_url(world.user_id, world.app.clock())),
        "/healthz",
    ]
    before = _snapshot(world.app)
    for path in paths:
        got = world.client.get(path)
        head = world.client.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers.get("cache-control") == got.headers.get("cache-control")
    assert _snapshot(world.app) == before
    assert _signals(world) == ([], []) and _user(world).active is True
    # a forged link: the GET's 400, without a body; a POST-only address: what a GET gets
    assert world.client.head(paths[0] + "x").status_code == 400
    undo = paths[0] + "/undo"
    assert world.client.head(undo, follow_redirects=False).status_code == (
        world.client.get(undo, follow_redirects=False).status_code
    )
    assert _snapshot(world.app) == before


# ---- unsubscribe -----------------------------------------------------------------------------


def test_get_unsubscribe_changes_nothing(world: World) -> None:
    path = _path(world.app.links.unsubscribe_url(world.user_id))
    before = _snapshot(world.app)
    resp = world.client.get(path)
    assert resp.status_code == 200
    assert '<form method="post"' in resp.text
    assert "Stop receiving paperwire digests?" in resp.text
    assert 'id="auto-note"' not in resp.text  # no auto-submit for unsubscribing
    assert _snapshot(world.app) == before
    assert _user(world).active is True


def test_one_click_unsubscribe_and_undo(world: World, clock: Callable[[], datetime]) -> None:
    path = _path(world.app.links.unsubscribe_url(world.user_id))
    resp = world.client.post(
        path,
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 200
    assert "You are unsubscribed." in resp.text
    user = _user(world)
    assert user.active is False
    assert user.unsubscribed_at == clock()
    assert world.app.store.people.subscribers() == []

    undo = world.client.post(path + "/undo")
    assert undo.status_code == 200
    assert "Welcome back." in undo.text
    user = _user(world)
    assert user.active is True
    assert user.unsubscribed_at is None
    assert [u.name for u, _ in world.app.store.people.subscribers()] == ["ada"]


def test_the_unsubscribe_button_answers_with_a_redirect_the_one_click_post_does_not(
    world: World,
) -> None:
    """The page's button gets its result as a page of its own (POST/redirect/GET): after
    "Subscribe again", the back button re-posted the unsubscribe (Chromium's "Confirm form
    resubmission"); now the result page asks the question again. RFC 8058's one-click POST
    gets the page itself: a mail client must get no redirect (§3.2)."""
    path = _path(world.app.links.unsubscribe_url(world.user_id))
    page = world.client.get(path).text
    assert '<input type="hidden" name="from" value="page">' in page
    pressed = world.client.post(path, data={"from": "page"}, follow_redirects=False)
    assert pressed.status_code == 303 and pressed.headers["location"] == f"{path}/done"
    done = world.client.get(f"{path}/done")
    assert "You are unsubscribed." in done.text and f'action="{path}/undo"' in done.text
    assert world.client.get(f"{path}/done").text == done.text  # a reload: the same page
    again = world.client.post(f"{path}/undo", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == f"{path}/again"
    assert "Welcome back." in world.client.get(f"{path}/again").text
    assert _user(world).active is True
    # back to the result page: it says what is true now, and changes nothing
    back = world.client.get(f"{path}/done")
    assert "Stop receiving paperwire digests?" in back.text and _user(world).active is True
    one_click = world.client.post(
        path,
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert one_click.status_code == 200 and "You are unsubscribed." in one_click.text
    assert _user(world).active is False
    # whatever the body's encoding, even one that cannot be read, it unsubscribes
    for content_type in ("multipart/form-data", "text/plain"):
        world.client.post(f"{path}/undo")
        odd = world.client.post(
            path,
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": content_type},
            follow_redirects=False,
        )
        assert odd.status_code == 200 and _user(world).active is False, content_type


def test_the_one_click_answer_reads_the_database_off_the_event_loop(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler became async (to read the body): its page for a one-click POST read the
    subscriber on the event loop, where a slow database (PostgreSQL cut: 10 s to give up)
    held every other request of the web app."""
    import asyncio

    people = world.app.store.people
    (channel,) = people.channels_of(world.user_id)
    path = _path(world.app.links.unsubscribe_url(world.user_id, channel.id))
    on_loop: list[bool] = []

    def reading(name: str) -> Callable[..., Any]:
        real = getattr(people, name)

        def read(*args: Any, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
                on_loop.append(True)
            except RuntimeError:
                on_loop.append(False)
            return real(*args, **kwargs)

        return read

    for name in ("by_id", "channels_of", "set_channel_active"):
        monkeypatch.setattr(people, name, reading(name))
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    r = world.client.post(path, content="List-Unsubscribe=One-Click", headers=form)
    assert r.status_code == 200 and "You are unsubscribed." in r.text
    assert on_loop and not any(on_loop), on_loop


def test_plain_form_post_unsubscribes_too(world: World) -> None:
    path = _path(world.app.links.unsubscribe_url(world.user_id))
    assert world.client.post(path).status_code == 200
    assert _user(world).active is False


# ---- escaping, health ------------------------------------------------------------------------


def test_paper_titles_are_escaped(world: World) -> None:
    links = world.app.links
    path = _path(links.feedback_url("like", world.user_id, world.evil_paper_id))
    for resp in (world.client.get(path), world.client.post(path)):
        assert resp.status_code == 200
        assert '<script>alert("pwned")</script>' not in resp.text
        assert "<b>Diffusion</b>" not in resp.text
        assert "&lt;script&gt;alert(" in resp.text
        assert "&lt;b&gt;Diffusion&lt;/b&gt;" in resp.text
        assert "Attention &amp;" in resp.text


def test_healthz(world: World) -> None:
    resp = world.client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"ok": True, "papers": 2}


def test_unknown_path_is_404(world: World) -> None:
    assert world.client.get("/f").status_code == 404
    assert world.client.get("/admin/no-such-page").status_code == 404  # /admin: the console


def test_a_javascript_paper_link_is_never_made_a_live_link(world: World) -> None:
    """A feed's <link> is untrusted: `javascript:` must not become an href on our origin."""
    world.app.store.papers.upsert(
        [
            PaperIn(
                key="guid:evil-link",
                title="Click me",
                abstract="",
                authors=(),
                url="javascript:fetch('/unsubscribe/x',{method:'POST'})",
                published=None,
            )
        ],
        None,
        world.app.clock(),
    )
    paper = world.app.store.papers.find("guid:evil-link")
    path = _path(world.app.links.feedback_url("like", world.user_id, paper.id))
    for resp in (world.client.get(path), world.client.post(path)):
        assert resp.status_code == 200
        assert "Click me" in resp.text
        assert "javascript:" not in resp.text


def test_paper_titles_show_their_latex_as_the_digest_does(world: World) -> None:
    now = world.app.clock()
    title = r"$\omega$Test: R\'{e}nyi entropies <i>now</i>"
    world.app.store.papers.upsert(
        [PaperIn(key="arxiv:2608.20001", title=title, abstract="", authors=(), url="",
                 published=now, arxiv_id="2608.20001")],
        None,
        now,
    )  # fmt: skip
    paper = world.app.store.papers.find("2608.20001")
    path = _path(world.app.links.feedback_url("like", world.user_id, paper.id))
    for resp in (world.client.get(path), world.client.post(path)):
        assert "ωTest: Rényi entropies" in resp.text
        assert "\\omega" not in resp.text and "<i>now</i>" not in resp.text

"""A subscriber's own page: the manage link (expiry, forgery), /manage (same answer, rate
limits, the mail), every action of the page with its CSRF check, export, deletion."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from daemon.app import App
from daemon.db.digests import NewItem
from daemon.db.models import (
    Channel,
    ChannelKind,
    Digest,
    Feedback,
    Follow,
    FollowKind,
    Paper,
    User,
)
from daemon.db.people import DISLIKE, LIKE
from daemon.ingest.parse import PaperIn
from daemon.web import subscriber
from daemon.web.links import Links
from daemon.web.pages import make_web
from tests.daemon.conftest import NOW, SMTP_LOGIN, SettingsFactory, starttls_email
from tests.daemon.web.conftest import ask_for
from tests.servers import smtp_server

HOOK = "https://hooks.slack.com/services/T0ABC/B0DEF/s3cretToken"


@dataclass
class World:
    app: App
    client: TestClient
    user_id: int
    papers: list[int]
    token: str
    clock: Any

    @property
    def page(self) -> str:
        return f"/me/{self.token}"

    def form(self, **values: str) -> dict[str, str]:
        return {"csrf": self.app.links.form_token(self.token), **values}

    def post(self, action: str, **values: str) -> Any:
        return self.client.post(f"{self.page}/{action}", data=self.form(**values))


@pytest.fixture
def world(app_factory: Callable[..., App], clock: Any) -> Iterator[World]:
    app = app_factory()
    now = clock()
    user = app.store.people.add(
        "ada",
        now,
        channels={ChannelKind.EMAIL: "ada@example.org", ChannelKind.SLACK: HOOK},
        display_name="Ada",
    )
    app.store.papers.upsert(
        [
            PaperIn(
                key="arxiv:2608.16590",
                title="Diffusion & {braces}",
                abstract="About things.",
                authors=("Xin Ding", "Ana Müller"),
                url="https://arxiv.org/abs/2608.16590",
                published=now,
                arxiv_id="2608.16590",
            ),
            PaperIn(
                key="arxiv:2608.17253",
                title="<b>Second</b> paper",
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
    papers = [app.store.papers.find(i).id for i in ("2608.16590", "2608.17253")]
    token = urlsplit(app.links.manage_url(user.id, now)).path.rsplit("/", 1)[1]
    with TestClient(make_web(app)) as client:
        yield World(app, client, user.id, papers, token, clock)


def _rows(app: App, model: Any) -> list[Any]:
    with Session(app.store.engine) as s:
        return list(s.exec(select(model)).all())


def _user(w: World) -> Any:
    user = w.app.store.people.by_id(w.user_id)
    assert user is not None
    return user


# ---- the link --------------------------------------------------------------------------------


def test_the_page_opens_and_a_get_changes_nothing(world: World) -> None:
    world.app.store.people.set_feedback(world.user_id, world.papers[0], LIKE, world.clock())
    before = [_rows(world.app, m) for m in (User, Channel, Feedback, Follow)]
    resp = world.client.get(world.page)
    assert resp.status_code == 200
    assert "Your digest, Ada" in resp.text
    assert "ada@example.org" in resp.text
    assert "hooks.slack.com/services/T0ABC/B0DEF/…" in resp.text
    assert "s3cretToken" not in resp.text
    assert "Diffusion &amp; {braces}" in resp.text
    assert "<script" not in resp.text.lower()
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert [_rows(world.app, m) for m in (User, Channel, Feedback, Follow)] == before


def test_the_link_expires(world: World) -> None:
    days = world.app.settings.server.manage_link_days
    world.clock.now = world.clock.now + timedelta(days=days) - timedelta(seconds=1)
    assert world.client.get(world.page).status_code == 200
    world.clock.now = world.clock.now + timedelta(seconds=1)
    resp = world.client.get(world.page)
    assert resp.status_code == 400
    assert "expired" in resp.text
    assert world.post("settings", hour="3", timezone="UTC").status_code == 400
    assert _user(world).digest_hour is None


def test_forged_and_other_links_do_not_open_the_page(world: World) -> None:
    other = Links("another-installation-secret", "http://127.0.0.1:8080")
    forged = urlsplit(other.manage_url(world.user_id, world.clock())).path
    assert world.client.get(forged).status_code == 400
    like = world.app.links.token("like", world.user_id, world.papers[0])
    assert world.client.get(f"/me/{like}").status_code == 400
    unsubscribe = world.app.links.token("unsubscribe", world.user_id)
    assert world.client.get(f"/me/{unsubscribe}").status_code == 400
    assert world.client.get(world.page[:-3]).status_code == 400
    # and a manage token opens no like or unsubscribe page
    assert world.client.post(f"/f/{world.token}").status_code == 400
    # a link made before this subscriber was added: a former holder's of the id
    before = world.clock() - timedelta(days=1)
    earlier = urlsplit(world.app.links.manage_url(world.user_id, before)).path
    resp = world.client.get(earlier)
    assert resp.status_code == 400 and "no longer exists" in resp.text
    assert world.client.post(f"/unsubscribe/{world.token}").status_code == 400
    assert _user(world).active is True


def test_a_post_without_the_form_token_or_from_another_site_changes_nothing(
    world: World,
) -> None:
    resp = world.client.post(f"{world.page}/settings", data={"hour": "3", "timezone": "UTC"})
    assert resp.status_code == 403
    other = world.app.links.form_token("x" + world.token)
    data = {"csrf": other, "hour": "3", "timezone": "UTC"}
    assert world.client.post(f"{world.page}/settings", data=data).status_code == 403
    resp = world.client.post(
        f"{world.page}/settings",
        data=world.form(hour="3", timezone="UTC"),
        headers={"Origin": "https://evil.example"},
    )
    assert resp.status_code == 403
    assert _user(world).digest_hour is None


# ---- /manage -----------------------------------------------------------------------------------


def _mails(app: App) -> list[Any]:
    outbox = Path(app.settings.delivery.outbox_dir)
    files = sorted(outbox.glob("*.eml")) if outbox.exists() else []
    return [message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]


def test_manage_gives_the_same_answer_and_mails_known_addresses_only(world: World) -> None:
    form = world.client.get("/manage")
    assert form.status_code == 200 and 'name="email"' in form.text
    # its own title: "Your digest" is the page the link opens (two tabs read the same)
    assert "<title>A link to your page · paperwire</title>" in form.text
    assert "<title>Your digest · paperwire</title>" in world.client.get(world.page).text
    known = ask_for(world.client, "/manage", {"email": "ADA@example.org"})
    unknown = ask_for(world.client, "/manage", {"email": "nobody@example.org"})
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text
    mails = _mails(world.app)
    assert len(mails) == 1
    assert mails[0]["To"] == "ADA@example.org"
    body = mails[0].get_content()
    link = re.search(r"http://127\.0\.0\.1:8080(/me/[\w.-]+)", body)
    assert link is not None
    assert world.client.get(link.group(1)).status_code == 200


def test_manage_reads_an_address_as_a_mail_program_shows_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An address copied from a mail's header ("Ada <ada@example.org>"), which the form takes,
    is the subscriber's address: the link is mailed to it, and it counts against that address's
    limit (a name in front is no new address)."""
    assert ask_for(world.client, "/manage", {"email": "Ada L <ada@example.org>"}).status_code == 200
    assert [m["To"] for m in _mails(world.app)] == ["ada@example.org"]
    sent: list[str] = []
    monkeypatch.setattr(
        subscriber, "send_manage_link", lambda app, user, address: sent.append(address)
    )
    for typed in (" <ada@example.org> ", "Ada <ada@EXAMPLE.org>", "A <ada@example.org>"):
        assert ask_for(world.client, "/manage", {"email": typed}).status_code == 200
    assert sent == ["ada@example.org"] * 2  # REQUESTS_PER_ADDRESS, the first one included


def test_a_reload_of_the_answer_to_manage_mails_no_second_link(world: World) -> None:
    """The answer is a page of its own (POST/redirect/GET): reloading it, or coming back to it,
    asks for nothing (the POST was sent again: one more mail each time, up to the limit)."""
    asked = ask_for(world.client, "/manage", {"email": "ada@example.org"}, follow_redirects=False)
    assert asked.status_code == 303 and asked.headers["location"] == "/manage?sent=1"
    for _ in range(3):
        answer = world.client.get(asked.headers["location"])
        assert answer.status_code == 200 and 'id="sent"' in answer.text
    assert len(_mails(world.app)) == 1


@pytest.mark.parametrize(
    ("typed", "says"), [("", "cannot be empty"), ("not-an-email", "is not an email address")]
)
def test_manage_says_a_typo_is_not_an_address(world: World, typed: str, says: str) -> None:
    r = ask_for(world.client, "/manage", {"email": typed})
    assert r.status_code == 400 and says in r.text and 'id="sent"' not in r.text
    assert f'value="{typed}"' in r.text  # kept in the field, to correct
    assert _mails(world.app) == []


def test_manage_is_rate_limited_per_address_and_per_client(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    monkeypatch.setattr(
        subscriber, "send_manage_link", lambda app, user, address: sent.append(address)
    )
    answers = {ask_for(world.client, "/manage", {"email": "ada@example.org"}).text}
    for _ in range(4):
        answers.add(ask_for(world.client, "/manage", {"email": "ada@example.org"}).text)
    assert len(answers) == 1  # the same answer, limited or not
    assert len(sent) == 3  # REQUESTS_PER_ADDRESS
    for i in range(5):
        assert ask_for(world.client, "/manage", {"email": f"x{i}@example.org"}).status_code == 200
    assert ask_for(world.client, "/manage", {"email": "y@example.org"}).status_code == 429
    world.clock.now = world.clock.now + timedelta(hours=1)
    assert ask_for(world.client, "/manage", {"email": "ada@example.org"}).status_code == 200
    assert len(sent) == 4


# ---- the page's actions ------------------------------------------------------------------------


def test_remove_a_like_and_a_dislike(world: World) -> None:
    people = world.app.store.people
    people.set_feedback(world.user_id, world.papers[0], LIKE, world.clock())
    people.set_feedback(world.user_id, world.papers[1], DISLIKE, world.clock())
    resp = world.post("feedback", paper=str(world.papers[0]), value="none")
    assert resp.status_code == 200  # after the redirect
    assert "Your answer on that paper is saved." in resp.text
    assert [(f.paper_id, f.value) for f in _rows(world.app, Feedback)] == [
        (world.papers[1], DISLIKE)
    ]
    world.post("feedback", paper=str(world.papers[1]), value="none")
    assert _rows(world.app, Feedback) == []


def test_history_shows_digests_and_answers_from_there(world: World) -> None:
    (email, _slack) = world.app.store.people.channels_of(world.user_id)
    items = [NewItem(p, 0.5, "similar", "close") for p in world.papers]
    world.app.store.digests.create(
        world.user_id, email.id, world.clock().date(), items, world.clock(), cold_start=False
    )
    page = world.client.get(world.page).text
    assert world.clock().date().isoformat() in page
    assert "&lt;b&gt;Second&lt;/b&gt; paper" in page
    assert page.count("👍 More like this") == 2
    assert "arXiv:2608.16590" in page and 'href="https://arxiv.org/pdf/2608.16590"' in page
    origin = re.search(r'name="from" value="(history-\d+)"', page)
    assert origin, "the recent digests' buttons say which digest they are in"
    answer = world.client.post(
        f"{world.page}/feedback",
        data=world.form(paper=str(world.papers[1]), value="dislike", **{"from": origin[1]}),
        follow_redirects=False,
    )
    assert [(f.paper_id, f.value) for f in _rows(world.app, Feedback)] == [
        (world.papers[1], DISLIKE)
    ]
    # back at the paper answered, its note beside it (web QA: the page jumped to the list's
    # heading, the reader's place lost among 10 digests)
    anchor = f"d{origin[1].removeprefix('history-')}-p{world.papers[1]}"
    assert answer.status_code == 303 and answer.headers["location"].endswith(f"#{anchor}")
    back = world.client.get(answer.headers["location"]).text
    item = back[back.index(f'<li id="{anchor}">') :]
    assert item.index('class="note"') < item.index("</li>")
    assert world.post("feedback", paper="999999", value="like").status_code == 400


def test_a_paper_of_nobody_s_digest_cannot_be_liked_from_the_page(world: World) -> None:
    """The page's buttons answer papers of the subscriber's digests and take back answers
    given; a like posted for any other paper's id was saved, and the page then showed that
    paper: counting through the ids read every stored paper, those made from another
    subscriber's imported library too (their drafts' titles, abstracts, private URLs)."""
    now = world.clock()
    other = world.app.store.people.add("bob", now, channels={ChannelKind.EMAIL: "bob@lab.org"})
    stored = world.app.store.papers.like_library(
        other.id,
        [],
        [
            PaperIn(
                key="library:draft",
                title="Bob's unpublished draft",
                abstract="Not for anyone's eyes yet.",
                authors=("Bob",),
                url="https://docs.example/d/s3cret-share-token",
                published=None,
            )
        ],
        now,
    )
    draft = stored.paper_ids["library:draft"]
    for value in ("like", "dislike"):
        r = world.post("feedback", paper=str(draft), value=value)
        assert r.status_code == 400 and "not one of the buttons" in r.text
        assert "unpublished draft" not in r.text
    assert world.app.store.people.answer(world.user_id, draft) == 0
    export = world.client.get(f"{world.page}/export.json").text
    assert "draft" not in export and "s3cret" not in export
    assert world.post("feedback", paper=str(draft), value="none").status_code == 200  # no-op
    # an id no paper has is answered in the same words: the page tells no id that exists
    # (the second read)
    for value, status in (("like", 400), ("dislike", 400), ("none", 200)):
        r = world.post("feedback", paper=str(draft + 1000), value=value)
        assert r.status_code == status and "no longer stored" not in r.text
        assert status == 200 or "not one of the buttons" in r.text
    # a paper of one of the subscriber's digests is answered, as before, and a paper answered
    # before (an imported like, its Remove) keeps its buttons
    (email, _slack) = world.app.store.people.channels_of(world.user_id)
    world.app.store.digests.create(
        world.user_id, email.id, now.date(), [NewItem(world.papers[0], 0.5, "similar", "close")],
        now, cold_start=False,
    )  # fmt: skip
    assert world.post("feedback", paper=str(world.papers[0]), value="like").status_code == 200
    world.app.store.people.set_feedback(world.user_id, world.papers[1], LIKE, now)
    assert world.post("feedback", paper=str(world.papers[1]), value="dislike").status_code == 200
    assert world.app.store.people.answer(world.user_id, world.papers[0]) == LIKE
    assert world.app.store.people.answer(world.user_id, world.papers[1]) == DISLIKE


def test_follow_mute_and_remove(world: World) -> None:
    world.post("follow", kind="keyword", value="  diffusion   models ", op="follow")
    world.post("follow", kind="author", value="Yann LeCun", op="mute")
    follows = {(f.kind, f.value, f.muted) for f in _rows(world.app, Follow)}
    assert follows == {("keyword", "diffusion models", False), ("author", "Yann LeCun", True)}
    page = world.client.get(world.page).text
    assert "diffusion models" in page and "muted (fewer papers)" in page
    world.post("follow", kind="keyword", value="diffusion models", op="remove")
    assert [(f.kind, f.value) for f in _rows(world.app, Follow)] == [("author", "Yann LeCun")]
    assert world.post("follow", kind="keyword", value="   ", op="follow").status_code == 400
    assert world.post("follow", kind="venue", value="x", op="follow").status_code == 400


def test_a_subscriber_follows_and_mutes_at_most_a_hundred_keywords_and_authors(
    world: World,
) -> None:
    # each keyword followed is searched for in every candidate of the day at the digest run
    # (66 ms for three common words among 3,000): a link's holder posting thousands of follows
    # held up everyone's digests by hours (security QA)
    for i in range(subscriber.FOLLOWS_MAX):
        kind = "keyword" if i % 2 else "author"
        assert world.post("follow", kind=kind, value=f"the of and {i}").status_code == 200
    refused = world.post("follow", kind="keyword", value="one too many")
    assert refused.status_code == 400
    assert "You follow or mute 100 keywords and authors" in refused.text
    assert 'value="one too many"' in refused.text  # kept, to add after a removal
    assert len(_rows(world.app, Follow)) == 100
    # one followed already is muted, and a removal makes room
    assert world.post("follow", kind="keyword", value="the of and 1", op="mute").status_code == 200
    world.post("follow", kind="keyword", value="the of and 3", op="remove")
    assert world.post("follow", kind="keyword", value="one too many").status_code == 200
    follows = {(f.kind, f.value): f.muted for f in _rows(world.app, Follow)}
    assert len(follows) == 100 and follows[("keyword", "the of and 1")] is True
    assert ("keyword", "one too many") in follows and ("keyword", "the of and 3") not in follows


def test_pause_and_start_a_channel(world: World) -> None:
    email, slack = world.app.store.people.channels_of(world.user_id)
    world.post("channel", channel=str(slack.id), op="pause")
    assert [c.active for c in world.app.store.people.channels_of(world.user_id)] == [True, False]
    assert _user(world).active is True
    world.post("channel", channel=str(email.id), op="pause")
    assert _user(world).active is False  # the last one: unsubscribed as a whole
    assert "You are unsubscribed" in world.client.get(world.page).text
    world.post("channel", channel=str(email.id), op="resume")
    assert _user(world).active is True
    assert [c.active for c in world.app.store.people.channels_of(world.user_id)] == [True, False]


def test_a_channel_of_someone_else_cannot_be_paused(world: World) -> None:
    eve = world.app.store.people.add(
        "eve", world.clock(), channels={ChannelKind.EMAIL: "eve@example.org"}
    )
    (channel,) = world.app.store.people.channels_of(eve.id)
    assert world.post("channel", channel=str(channel.id), op="pause").status_code == 400
    assert world.app.store.people.channels_of(eve.id)[0].active is True


def test_a_channel_removed_while_the_page_was_open_is_said_so_not_a_bad_link(
    world: World,
) -> None:
    # the page shown, then the admin removes the Slack channel; its "Pause" button pressed
    _, slack = world.app.store.people.channels_of(world.user_id)
    world.app.store.people.edit("ada", world.clock(), channels={ChannelKind.SLACK: None})
    resp = world.post("channel", channel=str(slack.id), op="pause")
    assert resp.status_code == 400
    assert "Your digest, Ada" in resp.text  # the page, with its channels as they are now
    assert "Link not valid" not in resp.text and "new link" not in resp.text
    assert "no longer one of yours" in resp.text
    assert _user(world).active is True


def test_hour_time_zone_and_picks(world: World) -> None:
    resp = world.post("settings", hour="6", timezone="Europe/Berlin", picks="5")
    assert "delivery settings are updated" in resp.text
    user = _user(world)
    assert (user.digest_hour, user.timezone, user.max_picks) == (6, "Europe/Berlin", 5)
    assert "<option selected>Europe/Berlin</option>" in resp.text
    world.post("settings", hour="", timezone="UTC", picks="")
    user = _user(world)
    assert (user.digest_hour, user.timezone, user.max_picks) == (None, "UTC", None)
    for bad in ({"timezone": "Mars/Olympus"}, {"hour": "24"}, {"picks": "0"}, {"hour": "x"}):
        data = {"hour": "", "timezone": "UTC", "picks": "", **bad}
        assert world.post("settings", **data).status_code == 400
    assert _user(world).timezone == "UTC"


def test_a_time_zone_the_list_lacks_is_shown_chosen_and_kept_by_a_save(world: World) -> None:
    """A zone `paperwire users set --timezone` takes but the list does not name (the system's
    posix/… and right/… copies, "posixrules"): shown chosen, not the list's first one, which a
    browser would send with any save (the subscriber changing only the hour)."""
    world.app.store.people.edit("ada", world.clock(), changes={"timezone": "posix/Europe/Berlin"})
    page = world.client.get(world.page).text
    assert "<option selected>posix/Europe/Berlin</option>" in page
    assert "<option selected>" not in page.replace("<option selected>posix/Europe/Berlin", "")
    world.post("settings", hour="6", timezone="posix/Europe/Berlin")  # what the browser sends
    assert (_user(world).digest_hour, _user(world).timezone) == (6, "posix/Europe/Berlin")


def test_how_often_daily_weekly_pause_and_resume(world: World) -> None:
    base = {"hour": "", "timezone": "UTC", "picks": ""}
    page = world.client.get(world.page).text
    assert "now: daily" in page
    assert 'id="resume"' not in page
    resp = world.post("settings", **base, frequency="weekly", weekday="thu")
    assert "delivery settings are updated" in resp.text
    user = _user(world)
    assert (user.frequency, user.digest_weekday, user.paused_until) == ("weekly", 3, None)
    assert "now: weekly on thu" in resp.text
    assert '<option value="thu" selected>' in resp.text
    today = world.clock().date()
    later = (today + timedelta(days=10)).isoformat()
    resp = world.post("settings", **base, frequency="weekly", weekday="thu", pause_until=later)
    assert _user(world).paused_until == today + timedelta(days=10)
    assert f"paused until {later}" in resp.text
    assert f'value="{later}"' in resp.text
    assert 'id="resume"' in resp.text
    # saving the form again as shown keeps the pause; daily drops the weekday
    world.post("settings", **base, frequency="daily", weekday="thu", pause_until=later)
    user = _user(world)
    assert (user.frequency, user.digest_weekday) == ("daily", None)
    assert user.paused_until == today + timedelta(days=10)
    resp = world.post("settings", **base, frequency="daily", pause_until=later, op="resume")
    assert _user(world).paused_until is None
    assert "now: daily" in resp.text
    # an empty date ends a pause too
    world.post("settings", **base, frequency="daily", pause_until=later)
    world.post("settings", **base, frequency="daily", pause_until="")
    assert _user(world).paused_until is None


def test_how_often_refuses_what_makes_no_sense(world: World) -> None:
    base = {"hour": "", "timezone": "UTC", "picks": ""}
    today = world.clock().date()
    for bad, says in (
        ({"frequency": "hourly"}, "not a frequency"),
        ({"frequency": "weekly", "weekday": ""}, "needs its day"),
        ({"frequency": "weekly", "weekday": "someday"}, "not a day of the week"),
        ({"frequency": "daily", "pause_until": "tomorrow"}, "not a date"),
        ({"frequency": "daily", "pause_until": today.isoformat()}, "not after today"),
    ):
        resp = world.post("settings", **base, **bad)
        assert resp.status_code == 400, bad
        assert says in resp.text, bad
        assert 'id="error"' in resp.text
    user = _user(world)
    assert (user.frequency, user.digest_weekday, user.paused_until) == ("daily", None, None)
    # the form's checks hold for the schedule as for the rest
    resp = world.client.post(
        f"{world.page}/settings", data={**base, "frequency": "weekly", "weekday": "mon"}
    )
    assert resp.status_code == 403
    assert _user(world).frequency == "daily"


def test_refused_settings_keep_what_was_chosen(world: World) -> None:
    """The settings form refused for one field (a pause date already past) shows the error and
    keeps every choice as sent, to be corrected (it showed the stored ones: the weekly day,
    hour and time zone chosen with it were to choose again)."""
    yesterday = (world.clock().date() - timedelta(days=1)).isoformat()
    sent = {"hour": "6", "timezone": "Europe/Berlin", "picks": "12", "frequency": "weekly",
            "weekday": "fri", "pause_until": yesterday}  # fmt: skip
    resp = world.post("settings", **sent)
    assert resp.status_code == 400 and "not after today" in resp.text
    page = resp.text
    assert 'id="hour" name="hour" min="0" max="23" value="6"' in page
    assert 'id="picks" name="picks" min="1" max="100" value="12"' in page
    assert "<option selected>Europe/Berlin</option>" in page
    assert 'value="weekly" checked' in page and '<option value="fri" selected>' in page
    assert f'name="pause_until" value="{yesterday}"' in page
    user = _user(world)
    assert (user.digest_hour, user.timezone, user.frequency) == (None, "UTC", "daily")
    # the stored values otherwise
    page = world.client.get(world.page).text
    assert 'value="daily" checked' in page and "<option selected>UTC</option>" in page


def _marked(page: str) -> list[str]:
    """The ids of the page's fields marked invalid (each pointing at the error)."""
    return re.findall(r'id="([\w-]+)"[^>]*aria-invalid="true" aria-describedby="error"', page)


@pytest.mark.parametrize(
    ("sent", "field"),
    [
        ({"hour": "25"}, "hour"),
        ({"picks": "0"}, "picks"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"frequency": "weekly", "weekday": ""}, "weekday"),
        ({"frequency": "monthly"}, "how-often"),
        ({"pause_until": "2001-01-01"}, "pause-until"),
    ],
)
def test_a_refused_setting_marks_its_field(world: World, sent: dict[str, str], field: str) -> None:
    """The error stood at the top of the page, with nothing to tell which field it was about
    (a screen reader user had to guess): the field is marked and the error links to it."""
    resp = world.post("settings", **{"hour": "", "picks": "", "timezone": "UTC", **sent})
    assert resp.status_code == 400
    assert _marked(resp.text) == [field] and f'<a href="#{field}">To the field</a>' in resp.text


def test_a_channel_paperwire_stopped_says_why_and_starts_again_from_the_page(world: World) -> None:
    # it said "paused", as if the subscriber had paused it, with no word of the refusals
    channel = world.app.store.people.channels_of(world.user_id)[0]
    with Session(world.app.store.engine) as s:  # as the delivery job stops one
        row = s.get_one(Channel, channel.id)
        row.active, row.stopped_reason = False, "its last 3 digests were refused: 550 no user"
        s.add(row)
        s.commit()
    page = world.client.get(world.page).text
    assert (
        f'id="stopped-{channel.id}">stopped by paperwire: its last 3 digests were refused' in page
    )
    assert "550 no user" in page
    world.post("channel", channel=str(channel.id), op="resume")
    channel = world.app.store.people.channels_of(world.user_id)[0]
    assert channel.active and channel.stopped_reason is None


def test_a_refused_follow_keeps_what_was_typed_and_marks_it(world: World) -> None:
    long = "Augusta Ada King, Countess of Lovelace " * 6  # 234 characters: too long a name
    resp = world.post("follow", kind="author", value=long, op="follow")
    assert resp.status_code == 400 and _marked(resp.text) == ["follow-value"]
    assert f'value="{long}"' in resp.text  # to shorten, not to type again
    assert '<option value="author" selected>' in resp.text
    assert _marked(world.client.get(world.page).text) == []  # the page as it is otherwise


def test_a_follow_of_no_kind_keeps_what_was_typed_and_marks_the_kind(world: World) -> None:
    """A kind that is neither keyword nor author (a page of an older version, a tampered
    form) was refused with the word typed gone and no field marked: the kind is marked, the
    word kept."""
    resp = world.post("follow", kind="topic", value="diffusion models", op="follow")
    assert resp.status_code == 400 and "Choose a keyword or an author" in resp.text
    assert _marked(resp.text) == ["follow-kind"]
    assert 'value="diffusion models"' in resp.text
    assert world.app.store.subscriber.follows(world.user_id) == []


def test_a_pause_is_a_date_in_the_subscribers_time_zone(world: World) -> None:
    # 23:30 UTC is already tomorrow in Tokyo: "tomorrow" by UTC is today there
    now = world.clock()
    world.clock.now = now.replace(hour=23, minute=30)
    tomorrow = (world.clock().date() + timedelta(days=1)).isoformat()
    base = {"hour": "", "picks": "", "frequency": "daily", "pause_until": tomorrow}
    assert world.post("settings", **base, timezone="UTC").status_code == 200
    world.post("settings", **base, timezone="UTC", op="resume")
    resp = world.post("settings", **base, timezone="Asia/Tokyo")
    assert resp.status_code == 400
    assert "not after today" in resp.text


# ---- export and deletion -------------------------------------------------------------------------


def test_export_json_holds_everything_and_no_secret(world: World) -> None:
    people = world.app.store.people
    people.set_feedback(world.user_id, world.papers[0], LIKE, world.clock())
    people.set_feedback(world.user_id, world.papers[1], DISLIKE, world.clock())
    people.set_follow(world.user_id, FollowKind.KEYWORD, "diffusion", muted=False)
    email, _ = people.channels_of(world.user_id)
    world.app.store.digests.create(
        world.user_id,
        email.id,
        world.clock().date(),
        [NewItem(world.papers[0], 0.5, "similar", "close")],
        world.clock(),
        cold_start=False,
    )
    (made,) = world.app.store.digests.claim_due(world.clock(), timedelta(minutes=5))
    world.app.store.digests.postpone(made.digest_id, world.clock(), world.clock(), "server busy")
    resp = world.client.get(f"{world.page}/export.json")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    assert "attachment" in resp.headers["Content-Disposition"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "s3cretToken" not in resp.text
    data = json.loads(resp.text)
    assert data["user"]["name"] == "ada" and data["user"]["subscribed"] is True
    assert [c["address"] for c in data["channels"]] == [
        "ada@example.org",
        "hooks.slack.com/services/T0ABC/B0DEF/…",
    ]
    assert {(f["paper"], f["value"]) for f in data["likes_and_dislikes"]} == {
        ("arxiv:2608.16590", "like"),
        ("arxiv:2608.17253", "dislike"),
    }
    assert data["follows"] == [{"kind": "keyword", "value": "diffusion", "muted": False}]
    (digest,) = data["digests"]
    assert digest["channel"] == "ada@example.org"
    assert [p["paper"] for p in digest["papers"]] == ["arxiv:2608.16590"]
    assert digest["last_error"] == "server busy"
    assert [(a["outcome"], a["detail"]) for a in digest["delivery_attempts"]] == [
        ("postponed", "server busy")
    ]


def test_export_bibtex_of_likes(world: World) -> None:
    people = world.app.store.people
    people.set_feedback(world.user_id, world.papers[0], LIKE, world.clock())
    people.set_feedback(world.user_id, world.papers[1], DISLIKE, world.clock())
    resp = world.client.get(f"{world.page}/likes.bib")
    assert resp.status_code == 200
    text = resp.text
    assert text.count("@misc{") == 1
    assert "@misc{arxiv2608_16590," in text
    assert r"title = {{Diffusion \& \{braces\}}}" in text
    assert "author = {Xin Ding and Ana Müller}" in text
    assert "eprint = {2608.16590}" in text and "archivePrefix = {arXiv}" in text
    assert f"year = {{{world.clock().year}}}" in text
    assert "Second" not in text


def test_delete_the_account_after_a_confirm_step(world: World) -> None:
    people = world.app.store.people
    people.set_feedback(world.user_id, world.papers[0], LIKE, world.clock())
    people.set_follow(world.user_id, FollowKind.AUTHOR, "Xin Ding", muted=False)
    email, _ = people.channels_of(world.user_id)
    world.app.store.digests.create(
        world.user_id,
        email.id,
        world.clock().date(),
        [NewItem(world.papers[0], 0.5, "similar", "close")],
        world.clock(),
        cold_start=False,
    )
    confirm = world.client.get(f"{world.page}/delete")
    assert confirm.status_code == 200 and 'id="delete"' in confirm.text
    assert people.by_id(world.user_id) is not None  # the GET deleted nothing
    assert world.client.post(f"{world.page}/delete", data={"confirm": "yes"}).status_code == 403
    resp = world.client.post(
        f"{world.page}/delete", data=world.form(confirm="yes"), follow_redirects=False
    )
    # the answer is a page of its own: a reload or the back button does not post again (it
    # got "Link not valid: this subscriber no longer exists")
    assert resp.status_code == 303 and resp.headers["location"] == f"{world.page}/deleted"
    for _ in range(2):
        done = world.client.get(f"{world.page}/deleted")
        assert done.status_code == 200 and "Your account is deleted." in done.text
    for model in (User, Channel, Feedback, Follow, Digest):
        assert _rows(world.app, model) == []
    assert len(world.app.store.papers.by_ids(world.papers)) == 2  # the papers stay
    assert world.client.get(world.page).status_code == 400


def test_a_double_click_on_delete_shows_the_account_deleted(world: World) -> None:
    """A double click sends the POST twice; the browser shows the second answer, which found
    the account gone: it is the deleted page too, not "Link not valid"."""
    first = world.client.post(
        f"{world.page}/delete", data=world.form(confirm="yes"), follow_redirects=False
    )
    second = world.client.post(
        f"{world.page}/delete", data=world.form(confirm="yes"), follow_redirects=False
    )
    assert first.status_code == second.status_code == 303
    assert second.headers["location"] == f"{world.page}/deleted"
    shown = world.client.get(second.headers["location"])
    assert shown.status_code == 200 and "Your account is deleted." in shown.text
    # without the page's form token it does not get there
    other = world.client.post(f"{world.page}/delete", data={"csrf": "x" * 32, "confirm": "yes"})
    # (the link's page for an account that is no more: "This account was deleted", no more)
    assert other.status_code == 400 and "Your account is deleted." not in other.text
    assert "This account was deleted" in other.text


def test_the_deleted_page_cannot_be_forged(world: World) -> None:
    """The page "Your account is deleted" was at /deleted for anyone: a link on the lab's own
    site telling a subscriber their account was gone, a pretext. It needs the page's link
    now, of an account that is no more."""
    assert world.client.get("/deleted").status_code == 404
    alive = world.client.get(f"{world.page}/deleted", follow_redirects=False)
    assert alive.status_code == 303 and alive.headers["location"] == world.page
    cut = world.client.get(f"{world.page[:-4]}/deleted")
    assert cut.status_code == 400 and "deleted" not in cut.text.lower()


def test_manage_mails_the_link_over_smtp(
    app_factory: Callable[..., App], make_settings: SettingsFactory, clock: Any
) -> None:
    """Through the app's real email transport: STARTTLS and login on a local SMTP server."""
    with smtp_server(users=dict([SMTP_LOGIN])) as smtp:
        settings = make_settings(email=starttls_email(smtp.host, smtp.port))
        app = app_factory(settings, smtp_ssl_context=smtp.ssl_context_trusting_ca)
        app.store.people.add("ada", clock(), channels={ChannelKind.EMAIL: "ada@lab.example"})
        with TestClient(make_web(app)) as client:
            ask_for(client, "/manage", {"email": "ada@lab.example"})
            ask_for(client, "/manage", {"email": "eve@lab.example"})
            (mail,) = smtp.messages
            assert mail.rcpt_tos == ("ada@lab.example",)
            message = mail.message
            assert message["Subject"] == "Your paperwire page"
            assert message["Auto-Submitted"] == "auto-generated"
            link = re.search(r"http://127\.0\.0\.1:8080(/me/[\w.-]+)", message.get_content())
            assert link is not None
            assert "Your digest, ada" in client.get(link.group(1)).text


def test_export_of_a_user_with_a_non_ascii_handle(world: World) -> None:
    zoe = world.app.store.people.add(
        "zoë", world.clock(), channels={ChannelKind.EMAIL: "zoe@example.org"}
    )
    path = urlsplit(world.app.links.manage_url(zoe.id, world.clock())).path
    for export in ("export.json", "likes.bib"):
        resp = world.client.get(f"{path}/{export}")
        assert resp.status_code == 200
        assert 'filename="paperwire-zo_' in resp.headers["Content-Disposition"]
    assert json.loads(world.client.get(f"{path}/export.json").text)["user"]["name"] == "zoë"


@pytest.mark.parametrize("number", ["²", "٣", "9" * 30, "-1", ""])
def test_a_number_that_is_not_one_gets_the_page_again_not_a_server_error(
    world: World, number: str
) -> None:
    """'²' and '٣' are digits to `str.isdigit`; 30 digits overflow the database's integer."""
    for action, values in (
        ("feedback", {"value": "like", "paper": number}),
        ("channel", {"op": "pause", "channel": number}),
        ("settings", {"timezone": "UTC", "hour": number or "x", "frequency": "daily"}),
    ):
        r = world.post(action, **values)
        assert r.status_code == 400, (action, r.status_code, r.text[:300])
        said = ("not one of the buttons", "is not a number from 0 to 23", "the digits 0–9")
        assert any(s in r.text for s in said), r.text[:300]
    assert _rows(world.app, Feedback) == []
    assert all(c.active for c in world.app.store.people.channels_of(world.user_id))


def test_a_pause_ends_within_two_years(world: World) -> None:
    r = world.post("settings", timezone="UTC", frequency="weekly", weekday="sun",
                   pause_until="9999-12-31")  # fmt: skip
    assert r.status_code == 400 and "is more than two years away" in r.text
    assert _user(world).paused_until is None


def test_a_follow_with_a_control_character_is_refused(world: World) -> None:
    r = world.post("follow", kind="keyword", value="naïve\x00null")
    assert r.status_code == 400 and "control character" in r.text
    assert _rows(world.app, Follow) == []


def test_bibtex_escapes_each_special_character_once() -> None:
    from daemon.web.subscriber import _bibtex_escape

    # the backslash's own braces were escaped again: "\\textbackslash\\{\\}"
    assert _bibtex_escape("a\\b {c} 50% $x_1$ ~^") == (
        r"a\textbackslash{}b \{c\} 50\% \$x\_1\$ \textasciitilde{}\textasciicircum{}"
    )


def test_an_address_a_form_posts_to_opened_by_hand_leads_to_its_page(world: World) -> None:
    # a refused form's page reloaded from the address bar (a GET) said only "Method Not
    # Allowed", with no way back (web QA)
    for action in ("settings", "feedback", "import"):
        answer = world.client.get(f"{world.page}/{action}", follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == world.page
    answer = world.client.get("/admin/deliveries/retry", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/deliveries"
    # a POST to a page's address is still refused, and an unknown address still not found
    assert world.client.post(world.page, data=world.form()).status_code == 405
    assert world.client.get(f"{world.page}/nothing-here").status_code in (400, 404)


def test_the_request_limiter_forgets_what_is_out_of_its_window() -> None:
    # /manage and /signup count requests per address: every address ever asked for stayed
    from datetime import timedelta

    from daemon.web.subscriber import REQUEST_WINDOW, RequestLimiter

    limiter = RequestLimiter()
    for i in range(1000):
        assert limiter.allow(f"address:a{i}@lab.example", 3, NOW)
    assert not limiter.allow("client:192.0.2.1", 0, NOW)
    later = NOW + REQUEST_WINDOW + timedelta(seconds=1)
    assert limiter.allow("address:a0@lab.example", 3, later)
    assert set(limiter._seen) == {"address:a0@lab.example"}


def test_an_ipv6_client_stepping_through_its_64_is_one_client(world: World) -> None:
    # the console's logins count an IPv6 address's /64 (b5d96b6); /manage and /signup counted
    # each address: a host holding a /64 asked for links without end, a new address each time
    web = world.client.app

    def ask(host: str, address: str) -> int:
        with TestClient(web, client=(host, 50000)) as client:
            return int(ask_for(client, "/manage", {"email": address}).status_code)

    codes = [
        ask(f"2001:db8:1:2::{i:x}", f"x{i}@example.org")
        for i in range(1, subscriber.REQUESTS_PER_CLIENT + 2)
    ]
    assert codes == [200] * subscriber.REQUESTS_PER_CLIENT + [429]
    assert ask("2001:db8:1:3::1", "y@example.org") == 200  # another /64


def test_the_request_limiter_looks_at_its_keys_once_a_window_not_at_each_request() -> None:
    # 232f487 went through every key at each request to forget the old ones: a flood of new
    # addresses (one request each) made each request's work grow with the keys so far
    from collections import defaultdict, deque
    from datetime import datetime

    from daemon.web.subscriber import REQUEST_WINDOW, RequestLimiter

    class Looked(defaultdict[str, deque[datetime]]):
        times = 0

        def items(self) -> Any:
            Looked.times += 1
            return super().items()

    limiter = RequestLimiter()
    limiter._seen = Looked(deque)
    for i in range(1000):
        limiter.allow(f"address:a{i}@lab.example", 3, NOW + timedelta(seconds=i))
    assert Looked.times == 1
    later = NOW + REQUEST_WINDOW + timedelta(seconds=1)
    assert limiter.allow("address:b@lab.example", 3, later)
    assert Looked.times == 2 and "address:a0@lab.example" not in limiter._seen


def test_unsubscribed_from_everything_the_page_says_so_and_resumes_in_one_click(
    world: World,
) -> None:
    """The digest's "unsubscribe from everything" (a link naming no channel) leaves each
    channel's own switch on: the page showed every channel "receiving" with only "Pause", and
    no way back. It says nothing is received, and one button starts the digests again."""
    old_link = world.app.links.token("unsubscribe", world.user_id)  # names no channel
    world.client.post(f"/unsubscribe/{old_link}", data={"from": "page"})
    assert _user(world).active is False
    page = world.client.get(world.page).text
    channels = page[page.index('id="channels"') : page.index('id="delivery"')]
    assert "receiving" not in channels.replace("not receiving", "")
    assert 'value="pause"' not in channels  # nothing to pause: nothing is sent
    assert "you unsubscribed from all your digests" in channels
    assert 'id="resume-all"' in channels
    assert "ada@example.org" in channels[channels.index('id="resume-all"') - 600 :]
    done = world.post("channel", op="resume-all")
    assert done.status_code == 200 and "Saved: that channel is updated." not in done.text
    assert "Your digests are started again" in done.text
    assert _user(world).active is True
    assert [c.active for c in world.app.store.people.channels_of(world.user_id)] == [True, True]
    again = world.client.get(world.page).text
    assert 'id="resume-all"' not in again and again.count('value="pause"') == 2


def test_starting_the_digests_again_says_when_they_come(world: World) -> None:
    """The note after "Start my digests again" said "the next one comes at your digest
    hour" to a weekly subscriber too, whose next digest comes on their day (or after their
    pause): it says how often they come, as "When and how much" does."""
    user = _user(world)
    world.app.store.people.edit(
        user.name, world.clock(), changes={"frequency": "weekly", "digest_weekday": 0}
    )
    old_link = world.app.links.token("unsubscribe", world.user_id)  # names no channel
    world.client.post(f"/unsubscribe/{old_link}", data={"from": "page"})
    done = world.post("channel", op="resume-all").text
    note = re.search(r'<p class="note" id="note" role="status">(.*?)</p>', done, re.S)
    assert note is not None
    assert "Your digests are started again" in note[1] and "weekly on mon" in note[1]
    assert "the next one comes at your digest hour" not in note[1]


@pytest.mark.parametrize(
    "zone", ["localtime", "Factory", "posixrules", "posix/Factory", "right/Factory"]
)
def test_a_time_zone_of_no_place_is_refused_and_not_offered(world: World, zone: str) -> None:
    """`localtime` (the server's own setting) and `Factory` (the database's placeholder, "-00")
    were taken, and offered in the page's list: a digest hour in them is no hour of the
    subscriber's. Refused, naming what was sent and what to choose instead."""
    world.post("settings", hour="6", timezone="Europe/Berlin")
    resp = world.post("settings", hour="7", timezone=zone)
    assert resp.status_code == 400
    error = re.search(r'<p class="error" id="error" role="alert">(.*?)</p>', resp.text, re.S)
    assert error is not None
    assert f"&#39;{zone}&#39;" in error[1] and "not a time zone of a place" in error[1]
    assert "Europe/Berlin" in error[1] and "UTC" in error[1]
    assert (_user(world).digest_hour, _user(world).timezone) == (6, "Europe/Berlin")
    page = world.client.get(world.page).text
    assert f"<option>{zone}</option>" not in page
    assert "<option>Europe/Kyiv</option>" in page and "<option>Etc/GMT+5</option>" in page


def test_a_stored_time_zone_of_no_place_is_pointed_out_before_a_save(world: World) -> None:
    # a subscriber given `localtime` before such zones were refused (e1da1b3) had every save of
    # the form refused, with no word on the page about it until then (second read)
    world.app.store.people.edit(_user(world).name, world.clock(), changes={"timezone": "localtime"})
    page = world.client.get(world.page).text
    problem = re.search(r'<span class="error" id="timezone-problem">(.*?)</span>', page, re.S)
    assert problem is not None
    assert "&#39;localtime&#39; is not a time zone of a place" in problem[1]
    assert "choose yours" in problem[1]
    world.post("settings", hour="7", timezone="Europe/Berlin")
    assert 'id="timezone-problem"' not in world.client.get(world.page).text


@pytest.mark.parametrize(
    "zone", ["UTC", "Europe/Berlin", "US/Eastern", "EST5EDT", "Etc/GMT+5", "posix/Europe/Berlin"]
)
def test_a_real_time_zone_is_still_taken(zone: str) -> None:
    from daemon.settings import check_timezone

    assert check_timezone(zone) == zone


def _many_likes(world: World, n: int) -> list[int]:
    """`n` papers liked one minute apart, built in bulk; their ids, the oldest like first."""
    start = world.clock() - timedelta(days=30)
    world.app.store.papers.upsert(
        [
            PaperIn(
                key=f"guid:bulk-{i}",
                title=f"Bulk paper number {i:04d}",
                abstract="",
                authors=("Ada",),
                url=f"https://example.org/bulk/{i}",
                published=start,
            )
            for i in range(n)
        ],
        None,
        start,
    )
    with Session(world.app.store.engine) as s:
        ids = {
            p.key: p.id
            for p in s.exec(select(Paper).where(col(Paper.key).startswith("guid:bulk-"))).all()
            if p.id is not None
        }
        papers = [ids[f"guid:bulk-{i}"] for i in range(n)]
        s.add_all(
            Feedback(
                user_id=world.user_id,
                paper_id=p,
                value=LIKE,
                created_at=start + timedelta(minutes=i),
            )
            for i, p in enumerate(papers)
        )
        s.commit()
    return papers


def _likes_shown(html: str) -> list[int]:
    section = html[html.index('<h2 id="likes">') : html.index('<h2 id="import">')]
    return [int(n) for n in re.findall(r"Bulk paper number (\d{4})", section)]


def test_the_likes_are_shown_a_hundred_a_page_newest_first(world: World) -> None:
    """5,000 likes made a 3 MB page: every like was on it. A hundred a page, newest first,
    with links to the older and newer ones; Remove keeps the page, the recent digests' Undo
    still knows a like that is on no page shown."""
    papers = _many_likes(world, 250)
    first = world.client.get(world.page).text
    assert _likes_shown(first) == list(range(249, 149, -1))
    assert "Likes and dislikes 1–100 of 250" in first
    assert f'id="likes-older" href="/me/{world.token}?likes=2#likes"' in first
    assert 'id="likes-newer"' not in first
    second = world.client.get(f"{world.page}?likes=2").text
    assert _likes_shown(second) == list(range(149, 49, -1))
    assert f'id="likes-newer" href="/me/{world.token}?likes=1#likes"' in second
    last = world.client.get(f"{world.page}?likes=3").text
    assert _likes_shown(last) == list(range(49, -1, -1)) and 'id="likes-older"' not in last
    # a page beyond the last, or no number: the nearest page, never an error
    assert _likes_shown(world.client.get(f"{world.page}?likes=99").text) == _likes_shown(last)
    assert _likes_shown(world.client.get(f"{world.page}?likes=x").text) == _likes_shown(first)

    # Remove on page 2 comes back to page 2, one fewer
    origin = re.search(r'name="from" value="(likes-2)"', second)
    assert origin is not None
    removed = world.client.post(
        f"{world.page}/feedback",
        data=world.form(paper=str(papers[100]), value="none", **{"from": origin[1]}),
        follow_redirects=False,
    )
    assert removed.status_code == 303 and "likes=2" in removed.headers["location"]
    back = world.client.get(removed.headers["location"]).text
    assert 100 not in _likes_shown(back) and len(_likes_shown(back)) == 100
    assert "Likes and dislikes 101–200 of 249" in back

    # the oldest like, in a recent digest: "liked" with Undo there, on page 1
    email, _ = world.app.store.people.channels_of(world.user_id)
    world.app.store.digests.create(
        world.user_id, email.id, world.clock().date(),
        [NewItem(papers[0], 0.5, "similar", "close")], world.clock(), cold_start=False,
    )  # fmt: skip
    page = world.client.get(world.page).text
    history = page[page.index('<h2 id="history">') :]
    assert "Bulk paper number 0000" in history and ">Undo</button>" in history
    undo = re.search(r'name="from" value="(history-\d+)"', history)
    assert undo is not None
    world.post("feedback", paper=str(papers[0]), value="none", **{"from": undo[1]})
    assert world.app.store.people.answer(world.user_id, papers[0]) == 0


@pytest.mark.parametrize("signup", ["closed", "open"])
def test_the_links_of_a_deleted_account_say_so_and_how_to_come_back(
    app_factory: Callable[..., App], make_settings: SettingsFactory, clock: Any, signup: str
) -> None:
    """An old digest's links of a deleted account advised asking /manage for a fresh link,
    which never mails a deleted account anything. They say the account is deleted and how to
    subscribe again: sign up (where it is open), or ask the admin."""
    app = app_factory(
        make_settings(
            server={
                "base_url": "http://127.0.0.1:8080",
                "secret_key": "test-secret-key-0123",
                "signup": signup,
            }
        )
    )
    now = app.clock()
    user = app.store.people.add("ada", now, channels={ChannelKind.EMAIL: "ada@example.org"})
    (email,) = app.store.people.channels_of(user.id)
    app.store.papers.upsert(
        [PaperIn(key="guid:p", title="A paper", abstract="", authors=(), url="", published=now)],
        None,
        now,
    )
    paper = app.store.papers.find("guid:p").id
    links = [
        urlsplit(app.links.feedback_url("like", user.id, paper, email.id)).path,
        urlsplit(app.links.feedback_url("dislike", user.id, paper, email.id)).path,
        urlsplit(app.links.unsubscribe_url(user.id, email.id)).path,
        urlsplit(app.links.manage_url(user.id, now)).path,
    ]
    app.store.people.remove("ada")
    with TestClient(make_web(app)) as client:
        answers = [client.get(link) for link in links]
        answers += [client.post(link) for link in links[:3]]
        # the page's link expired too (a digest of months ago): the same, not "ask /manage"
        clock.now = clock.now + timedelta(days=app.settings.server.manage_link_days + 1)
        answers.append(client.get(links[3]))
    for resp in answers:
        assert resp.status_code == 400
        assert "This account was deleted" in resp.text
        assert 'href="/manage"' not in resp.text and "fresh link" not in resp.text
        if signup == "open":
            assert 'href="/signup"' in resp.text
        else:
            assert 'href="/signup"' not in resp.text
            assert "ask the person who runs paperwire" in resp.text
    assert _mails(app) == []

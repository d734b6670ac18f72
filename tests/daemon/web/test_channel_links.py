"""Links name their channel: unsubscribing from an email stops that address only, from Slack
that Slack channel only; the last channel stopped unsubscribes the user; old tokens (no
channel) act on the user as before; RFC 8058 one-click POST works per address; the confirm
pages are honest without JavaScript."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from daemon.app import App
from daemon.db.digests import NewItem
from daemon.db.models import ChannelKind
from daemon.db.rows import ChannelRow
from daemon.ingest.parse import PaperIn
from daemon.jobs.delivery import build_digest
from daemon.web.links import BadLink
from daemon.web.pages import make_web
from notifications.render import render_email, render_slack

HOOK = "https://hooks.slack.com/services/T0ABC/B0DEF/s3cretToken"


@dataclass
class World:
    app: App
    client: TestClient
    user_id: int
    paper_id: int
    email: ChannelRow
    slack: ChannelRow


@pytest.fixture
def world(app_factory: Callable[..., App], clock: Callable[[], datetime]) -> Iterator[World]:
    app = app_factory()
    now = clock()
    user = app.store.people.add(
        "ada", now, channels={ChannelKind.EMAIL: "ada@example.org", ChannelKind.SLACK: HOOK}
    )
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
            )
        ],
        None,
        now,
    )
    paper = app.store.papers.find("2608.16590")
    email, slack = app.store.people.channels_of(user.id)
    assert email.kind == ChannelKind.EMAIL and slack.kind == ChannelKind.SLACK
    with TestClient(make_web(app)) as client:
        yield World(app, client, user.id, paper.id, email, slack)


def _path(url: str) -> str:
    return urlsplit(url).path


def _active(w: World) -> tuple[bool, bool, bool]:
    user = w.app.store.people.by_id(w.user_id)
    assert user is not None
    kinds = {c.kind: c for c in w.app.store.people.channels_of(w.user_id)}
    return user.active, kinds[ChannelKind.EMAIL].active, kinds[ChannelKind.SLACK].active


def _subscribed_channels(w: World) -> list[ChannelKind]:
    """What the digest job sees: active users with their active channels."""
    return [c.kind for _, channels in w.app.store.people.subscribers() for c in channels]


def _digest(w: World, channel: ChannelRow, clock: Callable[[], datetime]) -> int:
    item = NewItem(paper_id=w.paper_id, score=0.5, kind="similar", reason="close")
    digest_id = w.app.store.digests.create(
        w.user_id, channel.id, clock().date(), [item], clock(), cold_start=False
    )
    assert digest_id is not None
    return digest_id


def test_email_unsubscribe_stops_that_address_only(world: World) -> None:
    path = _path(world.app.links.unsubscribe_url(world.user_id, world.email.id))
    page = world.client.get(path)
    assert page.status_code == 200
    assert "Stop the digests to ada@example.org?" in page.text
    assert _active(world) == (True, True, True)  # a GET changes nothing

    done = world.client.post(path)
    assert "No more digests go to ada@example.org." in done.text
    assert _active(world) == (True, False, True)
    assert _subscribed_channels(world) == [ChannelKind.SLACK]

    world.client.post(path + "/undo")
    assert _active(world) == (True, True, True)


def test_slack_unsubscribe_stops_that_channel_only_and_hides_the_webhook(world: World) -> None:
    path = _path(world.app.links.unsubscribe_url(world.user_id, world.slack.id))
    page = world.client.get(path)
    assert "hooks.slack.com/services/T0ABC/B0DEF/…" in page.text
    assert "s3cretToken" not in page.text
    done = world.client.post(path)
    assert "s3cretToken" not in done.text
    assert _active(world) == (True, True, False)
    assert _subscribed_channels(world) == [ChannelKind.EMAIL]


def test_the_last_channel_stopped_unsubscribes_the_user(
    world: World, clock: Callable[[], datetime]
) -> None:
    for channel in (world.email, world.slack):
        world.client.post(_path(world.app.links.unsubscribe_url(world.user_id, channel.id)))
    user = world.app.store.people.by_id(world.user_id)
    assert user is not None and user.active is False and user.unsubscribed_at == clock()
    assert world.app.store.people.subscribers() == []
    # subscribing again from one channel's link starts that channel and the user
    world.client.post(
        _path(world.app.links.unsubscribe_url(world.user_id, world.slack.id)) + "/undo"
    )
    assert _active(world) == (True, False, True)


def test_an_old_token_without_channel_unsubscribes_from_everything(world: World) -> None:
    old = world.app.links.token("unsubscribe", world.user_id)  # as made before channels
    assert world.app.links.read(old).channel_id is None
    page = world.client.get(f"/unsubscribe/{old}")
    assert "Stop receiving paperwire digests?" in page.text
    world.client.post(f"/unsubscribe/{old}")
    user, *_ = _active(world)
    assert user is False
    assert world.app.store.people.subscribers() == []
    world.client.post(f"/unsubscribe/{old}/undo")
    assert _active(world) == (True, True, True)


def test_subscribing_again_after_every_channel_stopped_starts_them_all(world: World) -> None:
    for channel in (world.email, world.slack):
        world.client.post(_path(world.app.links.unsubscribe_url(world.user_id, channel.id)))
    old = world.app.links.token("unsubscribe", world.user_id)
    world.client.post(f"/unsubscribe/{old}/undo")
    assert _active(world) == (True, True, True)


def test_subscribing_again_with_no_channel_left_says_so(world: World) -> None:
    """An old link's "Subscribe again" after the admin removed every channel of the
    unsubscribed subscriber: a page saying there is nowhere to send to, not a server error."""
    old = world.app.links.token("unsubscribe", world.user_id)
    world.client.post(f"/unsubscribe/{old}")
    gone = {ChannelKind.EMAIL: None, ChannelKind.SLACK: None}
    world.app.store.people.edit("ada", world.app.clock(), channels=gone)
    resp = world.client.post(f"/unsubscribe/{old}/undo")
    assert resp.status_code == 409
    assert "no address or channel" in resp.text and "Something went wrong" not in resp.text
    user = world.app.store.people.by_id(world.user_id)
    assert user is not None and user.active is False


def test_old_like_tokens_still_work(world: World) -> None:
    old = world.app.links.token("like", world.user_id, world.paper_id)
    assert world.client.post(f"/f/{old}").status_code == 200
    assert world.app.store.people.signals([world.user_id])[world.user_id].likes


def test_a_channel_of_someone_else_is_refused(world: World, clock: Callable[[], datetime]) -> None:
    eve = world.app.store.people.add("eve", clock(), channels={ChannelKind.EMAIL: "eve@x.org"})
    (eve_email,) = world.app.store.people.channels_of(eve.id)
    forged = world.app.links.unsubscribe_url(world.user_id, eve_email.id)
    resp = world.client.post(_path(forged))
    assert resp.status_code == 400
    assert _active(world) == (True, True, True)
    assert world.app.store.people.channels_of(eve.id)[0].active is True


def test_rfc8058_one_click_post_stops_the_address_of_that_email(
    world: World, clock: Callable[[], datetime]
) -> None:
    digest, channel, _ = build_digest(world.app, _digest(world, world.email, clock))
    out = render_email(
        digest, sender="p@lab.example", recipient=channel.address, message_id_domain="lab.example"
    )
    message = message_from_bytes(out.data, policy=policy.default)
    # RFC 8058 §3.1: announced over https only (this base_url is http); the POST works alike
    assert message["List-Unsubscribe-Post"] is None
    target = str(message["List-Unsubscribe"]).strip("<>")
    assert world.app.links.read(target.rsplit("/", 1)[1]).channel_id == world.email.id
    resp = world.client.post(
        _path(target),
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 200
    assert _active(world) == (True, False, True)


def test_slack_digest_links_name_the_slack_channel(
    world: World, clock: Callable[[], datetime]
) -> None:
    digest, channel, _ = build_digest(world.app, _digest(world, world.slack, clock))
    out = render_slack(digest, webhook_url=channel.address)
    text = str(out.payloads)
    tokens = re.findall(r"/(?:f|unsubscribe|me)/([\w.-]+)", text)
    actions = {world.app.links.read(t).action: world.app.links.read(t) for t in tokens}
    assert set(actions) == {"like", "dislike", "unsubscribe"}
    assert actions["like"].channel_id == world.slack.id
    assert actions["unsubscribe"].channel_id == world.slack.id


def test_a_slack_digest_of_a_subscriber_with_an_email_address_opens_no_account_page(
    world: World, clock: Callable[[], datetime]
) -> None:
    """Its footer carried the subscriber's page link: every reader of the channel could read
    and change the account (the email address, likes, export, deletion). It links to /manage,
    which mails a link to the subscriber's address."""
    digest, channel, _ = build_digest(world.app, _digest(world, world.slack, clock))
    text = str(render_slack(digest, webhook_url=channel.address).payloads)
    assert "/me/" not in text
    assert f"<{world.app.links.base_url}/manage|Manage your digest>" in text


def test_a_slack_digest_of_a_channel_that_is_the_whole_subscriber_opens_its_page(
    world: World, clock: Callable[[], datetime]
) -> None:
    """A lab's channel added as a subscriber of its own (no email): the page is the channel's,
    and /manage could mail it nothing."""
    world.app.store.people.edit("ada", clock(), channels={ChannelKind.EMAIL: None})
    digest, channel, _ = build_digest(world.app, _digest(world, world.slack, clock))
    text = str(render_slack(digest, webhook_url=channel.address).payloads)
    (token,) = re.findall(r"/me/([\w.-]+)", text)
    assert world.app.links.read(token).user_id == world.user_id


def _page_link_of_before(w: World, now: datetime) -> str:
    """The path of a page's link as the versions before this one made it, for email and Slack
    digests alike: ["manage", user, issued_at], without `MANAGE_MARK`."""
    return "/me/" + w.app.links.token("manage", w.user_id, issued_at=int(now.timestamp()))


def test_a_page_link_an_earlier_version_put_in_slack_digests_no_longer_opens_the_account(
    world: World, clock: Callable[[], datetime]
) -> None:
    """61d5c19 left the page's link out of the Slack digests of a subscriber with an email
    address; the digests sent before it keep theirs for `server.manage_link_days`, and every
    reader of the channel could open the account (the address, likes, export, deletion). A
    link of the earlier versions (not told from one they mailed) opens no page of a subscriber
    with both now: it says to ask /manage, which mails a fresh one (200 before, 400 now)."""
    old = _page_link_of_before(world, clock())
    assert world.app.links.read(old.removeprefix("/me/")).unmarked
    page = world.client.get(old)
    assert page.status_code == 400 and "ada@example.org" not in page.text
    assert "made by an earlier version of paperwire" in page.text
    assert 'href="/manage"' in page.text
    for path in (f"{old}/export.json", f"{old}/likes.bib"):
        assert world.client.get(path).status_code == 400, path
    form = {"csrf": world.app.links.form_token(old.removeprefix("/me/"))}
    gone = world.client.post(f"{old}/delete", data=form, headers={"Origin": "http://testserver"})
    assert gone.status_code == 400
    assert world.app.store.people.by_id(world.user_id) is not None
    # the links made now open it (in a mail: the Slack digest leads to /manage)
    fresh = _path(world.app.links.manage_url(world.user_id, clock()))
    assert world.client.get(fresh).status_code == 200


@pytest.mark.parametrize("left", [ChannelKind.SLACK, ChannelKind.EMAIL])
def test_a_page_link_of_an_earlier_version_opens_the_page_of_one_channel_kind(
    world: World, clock: Callable[[], datetime], left: ChannelKind
) -> None:
    """Email only: the link was only ever mailed. Slack only (a lab's channel, a subscriber of
    its own): its digests carry the page's link still, and /manage could mail it nothing."""
    gone = ChannelKind.EMAIL if left == ChannelKind.SLACK else ChannelKind.SLACK
    world.app.store.people.edit("ada", clock(), channels={gone: None})
    old = _page_link_of_before(world, clock())
    page = world.client.get(old)
    assert page.status_code == 200 and "Your digest" in page.text


def test_email_digest_carries_the_manage_link(world: World, clock: Callable[[], datetime]) -> None:
    digest, channel, _ = build_digest(world.app, _digest(world, world.email, clock))
    out = render_email(
        digest, sender="p@lab.example", recipient=channel.address, message_id_domain="lab.example"
    )
    assert out.html is not None and "Manage your digest" in out.html
    link = re.search(r'href="[^"]*/me/([\w.-]+)"', out.html)
    assert link is not None
    assert world.app.links.read(link.group(1)).user_id == world.user_id


def test_like_page_without_javascript_is_honest(world: World) -> None:
    """The page holds no script; it says nothing is saved and shows a button; GET saves
    nothing."""
    url = world.app.links.feedback_url("like", world.user_id, world.paper_id, world.email.id)
    resp = world.client.get(_path(url))
    assert "<script" not in resp.text.lower()
    assert "Saving" not in resp.text
    assert "Nothing is saved until you press the button." in resp.text
    assert re.search(
        r'<form method="post"[^>]*>\s*(<input type="hidden"[^>]*>\s*)*<button type="submit"',
        resp.text,
    )
    assert "script-src" not in resp.headers["Content-Security-Policy"]
    assert not world.app.store.people.signals([world.user_id])[world.user_id].likes


def test_tokens_are_checked(world: World) -> None:
    links = world.app.links
    with pytest.raises(BadLink):
        links.read(links.token("unsubscribe", 1, 2, 3))  # a paper in an unsubscribe token
    for action in ("like", "unsubscribe"):
        token = links.token(action, world.user_id, 1 if action == "like" else None, 9)
        assert links.read(token).channel_id == 9


def test_an_admin_saving_the_same_address_keeps_a_stopped_channel_stopped(
    world: World, clock: Callable[[], datetime]
) -> None:
    world.client.post(_path(world.app.links.unsubscribe_url(world.user_id, world.email.id)))
    people = world.app.store.people
    people.edit(
        "ada",
        clock(),
        changes={"display_name": "Ada L."},
        channels={ChannelKind.EMAIL: "ada@example.org", ChannelKind.SLACK: HOOK},
    )
    assert _active(world) == (True, False, True)
    people.edit("ada", clock(), channels={ChannelKind.EMAIL: "ada@lab.example"})
    assert _active(world) == (True, True, True)  # a new address starts afresh


def test_the_admin_subscribing_again_starts_the_stopped_channels(
    world: World, clock: Callable[[], datetime]
) -> None:
    for channel in (world.email, world.slack):
        world.client.post(_path(world.app.links.unsubscribe_url(world.user_id, channel.id)))
    world.app.store.people.edit("ada", clock(), subscribed=True)  # `users set --subscribe`
    assert _active(world) == (True, True, True)


def test_subscribing_again_from_one_channels_link_after_unsubscribing_as_a_whole_starts_that_one(
    world: World,
) -> None:
    """Unsubscribed as a whole (every channel still switched on, none receiving), then one
    channel's link, then its "Subscribe again": the page says digests go to that channel again,
    and only that one does; the Slack channel stays quiet, as it was."""
    whole = world.app.links.token("unsubscribe", world.user_id)
    world.client.post(f"/unsubscribe/{whole}")
    path = _path(world.app.links.unsubscribe_url(world.user_id, world.email.id))
    world.client.post(path)
    again = world.client.post(path + "/undo")
    assert "Digests go to ada@example.org again." in again.text
    assert _active(world) == (True, True, False)
    assert _subscribed_channels(world) == [ChannelKind.EMAIL]


def test_links_sent_to_an_old_address_do_not_act_on_the_new_one(
    world: World, clock: Callable[[], datetime]
) -> None:
    """An address changed in place kept its channel's id: the unsubscribe and like links of the
    digests sent to the old address (a former colleague's mailbox, a mistyped one) stopped the
    new address's digests and answered for its subscriber. The new address is a new channel;
    the record of what was sent stays, and today's digest is not made again."""
    people = world.app.store.people
    sent = _digest(world, world.email, clock)
    old_unsubscribe = _path(world.app.links.unsubscribe_url(world.user_id, world.email.id))
    old_like = _path(
        world.app.links.feedback_url("like", world.user_id, world.paper_id, world.email.id)
    )
    people.edit("ada", clock(), channels={ChannelKind.EMAIL: "ada@lab.example"})

    assert world.client.post(old_unsubscribe).status_code == 400
    assert world.client.post(old_like).status_code == 400
    assert _active(world) == (True, True, True)
    assert not people.signals([world.user_id])[world.user_id].likes
    (email,) = [c for c in people.channels_of(world.user_id) if c.kind == ChannelKind.EMAIL]
    assert email.address == "ada@lab.example" and email.id != world.email.id
    # the digest made stays recorded, now the new channel's: today's is not made again
    assert world.app.store.digests.get(sent).channel_id == email.id
    assert (
        world.app.store.digests.create(
            world.user_id, email.id, clock().date(), [], clock(), cold_start=False
        )
        is None
    )
    # the new address's own links act on it
    world.client.post(_path(world.app.links.unsubscribe_url(world.user_id, email.id)))
    assert _active(world) == (True, False, True)


def test_an_address_written_in_other_capitals_is_the_same_channel(
    world: World, clock: Callable[[], datetime]
) -> None:
    """'Ada@Example.org' is the mailbox of 'ada@example.org' (paperwire compares addresses so).
    Since a changed address became a new channel, an admin's form or a CSV of subscribers
    writing it in other capitals made a new channel: the unsubscribe links of every digest
    already in that mailbox were refused ('no longer among your channels'), and a channel its
    subscriber had stopped was started again. It is the same channel, its spelling updated."""
    people = world.app.store.people
    old_unsubscribe = _path(world.app.links.unsubscribe_url(world.user_id, world.email.id))
    assert world.client.post(old_unsubscribe).status_code == 200
    assert _active(world) == (True, False, True)
    people.edit(
        "ada", clock(), channels={ChannelKind.EMAIL: "Ada@Example.ORG", ChannelKind.SLACK: HOOK}
    )
    (email,) = [c for c in people.channels_of(world.user_id) if c.kind == ChannelKind.EMAIL]
    assert email.id == world.email.id and email.address == "Ada@Example.ORG"
    assert _active(world) == (True, False, True)  # still stopped, as its subscriber asked
    again = world.client.post(old_unsubscribe + "/undo")  # the old links answer for it
    assert again.status_code == 200 and _active(world) == (True, True, True)


def test_a_changed_address_keeps_its_place_among_the_channels(
    world: World, clock: Callable[[], datetime]
) -> None:
    """A changed address is a new channel (a new id), and a subscriber's channels were listed
    by id: ada's email address, edited, moved below her Slack channel on her page and in the
    console, where it had been above. They are listed by kind, email first."""
    people = world.app.store.people
    for address in ("ada@lab.example", "ada@example.org"):
        people.edit("ada", clock(), channels={ChannelKind.EMAIL: address})
        kinds = [ChannelKind.EMAIL, ChannelKind.SLACK]
        assert [c.kind for c in people.channels_of(world.user_id)] == kinds
        ((_, channels),) = people.find("ada")[1]
        assert [c.kind for c in channels] == kinds
        page = world.client.get(_path(world.app.links.manage_url(world.user_id, clock())))
        assert page.text.index(address) < page.text.index("the Slack channel of webhook")


@pytest.mark.parametrize("removed_first", [True, False])
def test_swapping_slack_for_email_hands_the_digests_to_the_new_channel(
    app_factory: Callable[..., App], clock: Callable[[], datetime], removed_first: bool
) -> None:
    """A channel removed is deleted with its digests. A subscriber's Slack swapped for an email
    address in one change (the console's form, `users set`) lost every digest sent to Slack:
    the record of the papers sent, so that the new address got today's digest again, with the
    same papers, and those of the day before could come again. As a changed address does, the
    new channel takes them over."""
    app, now = app_factory(), clock()
    people = app.store.people
    ada = people.add("ada", now, channels={ChannelKind.SLACK: HOOK})
    (slack,) = people.channels_of(ada.id)
    paper = PaperIn(key="arxiv:1", title="A paper", abstract="", authors=(), url="", published=now)
    app.store.papers.upsert([paper], None, now)
    item = NewItem(app.store.papers.find("arxiv:1").id, 0.5, "similar", "r")
    sent = app.store.digests.create(ada.id, slack.id, now.date(), [item], now, cold_start=False)
    assert sent is not None
    swap = {ChannelKind.SLACK: None, ChannelKind.EMAIL: "ada@lab.example"}
    if not removed_first:
        swap = dict(reversed(swap.items()))
    people.edit("ada", now, channels=swap)
    (email,) = people.channels_of(ada.id)
    assert app.store.digests.get(sent).channel_id == email.id  # deleted before
    assert people.signals([ada.id])[ada.id].sent == {item.paper_id}  # empty before
    assert app.store.digests.create(ada.id, email.id, now.date(), [], now, cold_start=False) is None

"""The pages behind the links in a digest: like, dislike, unsubscribe.

A GET never changes state: mail security scanners follow every link, and some open it in a
headless browser that runs the page's JavaScript. So a link only shows a page with one button,
and the button's POST records the answer: nothing is saved without a person's click, and a
person needs just that one click after the link. Mail clients use the RFC 8058 one-click POST
(`List-Unsubscribe-Post`) on the unsubscribe URL directly.

A like's or dislike's POST answers with a redirect to its result page (POST/redirect/GET): a
reload, a double click or the back button never posts it again.

A link names the channel its digest went to: unsubscribing from an email stops that address
only, from a Slack message that Slack channel only; the pages say which. When the last channel
of a subscriber stops, the subscriber is unsubscribed as a whole. A link made before links
named their channel unsubscribes the subscriber from everything, as it always did.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from daemon.app import App
from daemon.channels import CHANNELS
from daemon.db.models import ChannelKind
from daemon.db.people import DISLIKE, LIKE, NEITHER
from daemon.db.rows import ChannelRow, PaperRow
from daemon.errors import NotFoundError, PaperwireError, SubscriberGone
from daemon.web.links import BadLink, LinkAction
from daemon.web.pages import Pages, see_other
from notifications.render import safe_url


def resolve(app: App, token: str, *expected: str) -> tuple[LinkAction, PaperRow | None]:
    """The link's action, checked; BadLink / NotFoundError become an error page."""
    action = app.links.read(token)
    if action.action not in expected:
        raise BadLink("this link is not valid here")
    if app.store.people.by_id(action.user_id) is None:
        raise SubscriberGone("this subscriber no longer exists")
    if action.paper_id is None:
        return action, None
    rows = app.store.papers.by_ids([action.paper_id])
    if action.paper_id not in rows:
        raise NotFoundError("this paper is no longer stored")
    # feed text is untrusted: a `javascript:` link must never become a live <a href>
    paper = rows[action.paper_id]
    return action, replace(paper, url=safe_url(paper.url) or "")


def hide_webhook(address: str) -> str:
    """A Slack webhook URL as it may be shown: `hooks.slack.com/services/T…/B…/…` (the team and
    hook ids tell two channels apart; the last part is the secret)."""
    parts = address.split("/")
    if len(parts) == 7 and parts[3] == "services":
        return f"{parts[2]}/services/{parts[4]}/{parts[5]}/…"
    return CHANNELS[ChannelKind.SLACK].show(address)


def describe_channel(channel: ChannelRow) -> str:
    """The channel as the pages name it: the email address, or the Slack webhook with its
    secret part hidden."""
    if channel.kind == ChannelKind.EMAIL:
        return channel.address
    return f"the Slack channel of webhook {hide_webhook(channel.address)}"


def link_channel(app: App, action: LinkAction) -> ChannelRow | None:
    """The channel a link names (None for a link made before links named one)."""
    if action.channel_id is None:
        return None
    for channel in app.store.people.channels_of(action.user_id):
        if channel.id == action.channel_id:
            return channel
    raise NotFoundError("this link's address or channel is no longer among your channels")


def resolve_paper(app: App, token: str) -> tuple[LinkAction, PaperRow]:
    action, paper = resolve(app, token, "like", "dislike")
    assert paper is not None  # a like/dislike link always names a paper (links.read)
    link_channel(app, action)  # a channel removed since: its digests' links are refused
    return action, paper


def _link_answer(app: App, token: str) -> tuple[LinkAction, PaperRow, int]:
    """A like or dislike link's action, its paper and the answer it gives (LIKE, DISLIKE)."""
    action, paper = resolve_paper(app, token)
    return action, paper, LIKE if action.action == "like" else DISLIKE


def feedback_routes(app: App, pages: Pages) -> APIRouter:
    router = APIRouter()
    _answer_routes(router, app, pages)
    _unsubscribe_routes(router, app, pages)
    return router


def _answer_routes(router: APIRouter, app: App, pages: Pages) -> None:
    @router.get("/f/{token}")
    def feedback_page(token: str) -> HTMLResponse:
        action, paper = resolve_paper(app, token)
        liking = action.action == "like"
        return pages.render(
            "confirm.html",
            title="More like this" if liking else "Less like this",
            heading="More papers like this one?" if liking else "Fewer papers like this one?",
            button="👍 Yes, more like this" if liking else "👎 Yes, fewer like this",
            note="Nothing is saved until you press the button.",
            paper=paper,
            # the answer as the page found it: a double click's second request (the one the
            # browser shows) finds its own answer already given, and its undo must still
            # give back this one
            was=app.store.people.answer(action.user_id, paper.id),
        )

    @router.post("/f/{token}")
    def feedback(
        token: str, shown: Annotated[int, Form(alias="was", ge=DISLIKE, le=LIKE)] = NEITHER
    ) -> RedirectResponse:
        action, paper, value = _link_answer(app, token)
        before = app.store.people.set_feedback(action.user_id, paper.id, value, app.clock())
        # the answer it replaced (a dislike turned into a like): undo gives it back. The same
        # answer again (a double click, a reload) replaced nothing: the answer the page was
        # shown with, then (the first click replaced it)
        was = shown if before == value else before
        query = f"?was={was}" if was not in (NEITHER, value) else ""
        return see_other(f"/f/{token}/done{query}")

    @router.get("/f/{token}/done")
    def feedback_done(
        token: str, was: Annotated[int, Query(ge=DISLIKE, le=LIKE)] = NEITHER
    ) -> Response:
        action, paper, value = _link_answer(app, token)
        if app.store.people.answer(action.user_id, paper.id) != value:  # undone since
            return see_other(f"/f/{token}")
        return pages.render(
            "done.html",
            title="Thanks",
            heading="Thanks — noted." if value == LIKE else "Got it — fewer like this.",
            paper=paper,
            message="Your next digest takes this into account.",
            undo_url=f"/f/{token}/undo" + (f"?was={was}" if was != NEITHER else ""),
            undo_label="Undo",
        )

    @router.post("/f/{token}/undo")
    def undo_feedback(
        token: str, was: Annotated[int, Query(ge=DISLIKE, le=LIKE)] = NEITHER
    ) -> RedirectResponse:
        action, paper, value = _link_answer(app, token)
        now = app.clock()
        current = app.store.people.set_feedback(action.user_id, paper.id, was, now, only_if=value)
        # answered otherwise since (another link, the page): kept; the answer it gives back
        # there already is an undo done (a double click's second request)
        kept = current not in (value, was)
        return see_other(f"/f/{token}/undone" + ("?kept=1" if kept else ""))

    @router.get("/f/{token}/undone")
    def feedback_undone(token: str, kept: bool = False) -> Response:
        action, paper, value = _link_answer(app, token)
        if not kept and app.store.people.answer(action.user_id, paper.id) == value:
            return see_other(f"/f/{token}/done")  # answered so again since: not undone
        if kept:
            return pages.render("done.html", title="Nothing to undo", heading="Nothing to undo.",
                                paper=paper, message="Your answer on this paper has changed "
                                "since; it stays as it is.")  # fmt: skip
        return pages.render("done.html", title="Undone", heading="Undone.", paper=paper, message="")


def _unsubscribe_routes(router: APIRouter, app: App, pages: Pages) -> None:
    @router.get("/unsubscribe/{token}")
    def unsubscribe_page(token: str) -> HTMLResponse:
        action, _ = resolve(app, token, "unsubscribe")
        channel = link_channel(app, action)
        if channel is None:
            heading, note = "Stop receiving paperwire digests?", "This stops all your digests."
        else:
            where = describe_channel(channel)
            heading = f"Stop the digests to {where}?"
            note = "Your other addresses and channels, if any, keep receiving theirs."
        return pages.render(
            "confirm.html",
            title="Unsubscribe",
            heading=heading,
            note=note,
            button="Unsubscribe",
            paper=None,
            from_page=True,
        )

    @router.post("/unsubscribe/{token}")
    async def unsubscribe(token: str, request: Request) -> Response:
        # Any POST unsubscribes. The page's button ("from=page") gets a redirect to the result
        # (a reload or the back button never posts again); any other POST, such as RFC 8058's
        # one-click ("List-Unsubscribe=One-Click", in whatever encoding), gets the page: a mail
        # client must get no redirect (§3.2). The body is not parsed: nothing in it can fail.
        # a link not valid reads no body: `_unsubscribe` says what is wrong with it
        from_page = _readable(app, token) and await request.body() == b"from=page"
        # it writes, and its page reads: in a worker thread, not on the event loop
        return await run_in_threadpool(_unsubscribe, app, pages, token, from_page)

    @router.get("/unsubscribe/{token}/done")
    def unsubscribed(token: str) -> Response:
        action, _ = resolve(app, token, "unsubscribe")
        channel = link_channel(app, action)
        if not _stopped(app, action, channel):  # subscribed again since
            return see_other(f"/unsubscribe/{token}")
        return _unsubscribed(app, pages, token, action, channel)

    @router.post("/unsubscribe/{token}/undo")
    def resubscribe(token: str) -> Response:
        try:
            _switch(app, token, active=True)
        except (BadLink, NotFoundError):
            raise
        except PaperwireError:  # an old link's subscriber whose channels were all removed since
            return pages.render(
                "error.html",
                409,
                title="Nowhere to send",
                heading="Nowhere to send your digests",
                message="You have no address or channel here anymore: ask the person who runs "
                "paperwire to add one.",
            )
        return see_other(f"/unsubscribe/{token}/again")

    @router.get("/unsubscribe/{token}/again")
    def subscribed_again(token: str) -> Response:
        action, _ = resolve(app, token, "unsubscribe")
        channel = link_channel(app, action)
        if _stopped(app, action, channel):  # unsubscribed again since
            return see_other(f"/unsubscribe/{token}/done")
        message = "" if channel is None else f"Digests go to {describe_channel(channel)} again."
        return pages.render(
            "done.html", title="Subscribed", heading="Welcome back.", paper=None, message=message
        )


def _readable(app: App, token: str) -> bool:
    """Whether `token` is a link of ours (its signature; no database)."""
    try:
        app.links.read(token)
    except BadLink:
        return False
    return True


def _unsubscribe(app: App, pages: Pages, token: str, from_page: bool) -> Response:
    action, channel = _switch(app, token, active=False)
    if from_page:
        return see_other(f"/unsubscribe/{token}/done")
    return _unsubscribed(app, pages, token, action, channel)


def _switch(app: App, token: str, *, active: bool) -> tuple[LinkAction, ChannelRow | None]:
    """What an unsubscribe link stops (or its undo starts again): its channel, or (a link
    naming none) every channel."""
    action, _ = resolve(app, token, "unsubscribe")
    channel = link_channel(app, action)
    if channel is None:
        app.store.people.set_subscribed(action.user_id, active, app.clock())
    else:
        app.store.people.set_channel_active(action.user_id, channel.id, active, app.clock())
    return action, channel


def _stopped(app: App, action: LinkAction, channel: ChannelRow | None) -> bool:
    """Whether what the link stops is stopped now."""
    if channel is not None:
        return not channel.active
    user = app.store.people.by_id(action.user_id)
    return user is not None and not user.active


def _unsubscribed(
    app: App, pages: Pages, token: str, action: LinkAction, channel: ChannelRow | None
) -> HTMLResponse:
    if channel is None:
        message = "You will receive no more digests."
    else:
        message = f"No more digests go to {describe_channel(channel)}."
        user = app.store.people.by_id(action.user_id)
        if user is not None and not user.active:
            message += " That was your last one: you receive no more digests."
    return pages.render(
        "done.html",
        title="Unsubscribed",
        heading="You are unsubscribed.",
        paper=None,
        message=message,
        undo_url=f"/unsubscribe/{token}/undo",
        undo_label="Subscribe again",
    )

"""A subscriber's own page. Subscribers have no password: a signed, expiring link
(`Links.manage_url`, valid `server.manage_link_days`) opens `/me/{token}`, where they see and
change everything about their digest. Every digest carries a fresh link ("Manage your
digest"); `/manage` mails one to an address on request — the same answer whether the address
is known or not, limited per address and per client address.

A GET never changes anything. Each form POST carries a token derived from the link
(`Links.form_token`: the page keeps no session) and is refused without it, or when the browser
says it comes from another site (`Origin`). The link is the key: whoever holds it may change
the digest, so it expires, and a Slack channel's link belongs to whoever reads that channel
(a Slack digest carries it only for a subscriber with no email address: `delivery._manage_url`;
a link of an earlier version, which put it in every Slack digest, no longer opens the page of
a subscriber with an email address and a Slack channel: `UNMARKED_LINK`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import threading
from collections import defaultdict, deque
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, available_timezones

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from daemon.app import App
from daemon.channels import CHANNELS, parse_email
from daemon.checks import (
    OTHER_DIGITS,
    WEEKDAYS,
    as_id,
    check_follow,
    check_frequency,
    check_pause_until,
    check_weekday,
    frequency_text,
    other_digits,
)
from daemon.db.models import ChannelKind, FollowKind
from daemon.db.people import DISLIKE, LIKE, NEITHER
from daemon.db.rows import PaperRow, UserRow
from daemon.errors import NotFoundError, PaperwireError, SubscriberGone
from daemon.library.read import FORMATS
from daemon.settings import check_timezone, is_place_zone
from daemon.web.auth import Forgetting, client_key, cookies_refused, csrf_ok, secure_cookies
from daemon.web.feedback import describe_channel, hide_webhook
from daemon.web.links import BadLink, LinkAction
from daemon.web.pages import SECURITY_HEADERS, Pages, see_other
from notifications.render import safe_url

if TYPE_CHECKING:
    from daemon.library.importer import ImportReport

log = logging.getLogger("paperwire.web")

REQUEST_WINDOW = timedelta(hours=1)
REQUESTS_PER_ADDRESS = 3  # links mailed to one address per hour
REQUESTS_PER_CLIENT = 10  # requests from one client address per hour
HISTORY = 10  # recent digests shown
LIKES_PER_PAGE = 100  # likes and dislikes shown a page (5,000 of them made a 3 MB page)
UPLOAD_BYTES = 5_000_000  # a library file uploaded on the page
# entries of one upload: a real library's 5 MB holds a few thousand (with abstracts); 2 MB of
# titles alone held 100,000, each stored as a paper nobody deletes (`paperwire import` for more)
UPLOAD_ENTRIES = 10_000
UPLOAD_FETCH = 100  # arXiv ids asked per upload: one API request, no waiting on the interval
UPLOADS_AT_ONCE = 2  # files read at once (each in a worker process); the others wait their turn
UPLOAD_WAIT_SECONDS = 30.0  # how long an upload waits for its turn before the "busy" page (503)
UPLOAD_RETRY_AFTER = 60  # seconds, in that page's Retry-After
# files one subscriber may upload an hour: each may store up to 10,000 papers nobody deletes
UPLOADS_PER_HOUR = 10
# keywords and authors one subscriber follows or mutes: each followed keyword is searched for
# in every candidate of the day at the digest run (66 ms for three common words among 3,000)
FOLLOWS_MAX = 100

SECTIONS = ("channels", "delivery", "follows", "likes", "history")  # where a note may go
# or a paper of a recent digest: d<digest id>-p<paper id> (a paper may be in two digests, the
# email's and the Slack message's)
_PAPER_ANCHOR = re.compile(r"d\d{1,18}-p\d{1,18}")
_FROM_DIGEST = re.compile(r"history-(\d{1,18})")
_FROM_LIKES = re.compile(r"likes-(\d{1,9})")  # a page of the likes
DONE = {  # the one-line notes after a change (never text from the request)
    "feedback": "Your answer on that paper is saved.",
    "follow": "Saved: your follows are updated.",
    "channel": "Saved: that channel is updated.",
    # how often ("daily", "weekly on mon", "…, paused until …") is filled in by `me`: a weekly
    # or paused subscriber's next digest does not come at the next digest hour
    "resumed": "Your digests are started again ({often}), at your digest hour: as set under "
    "“When and how much” below.",
    "settings": "Saved: your delivery settings are updated.",
    "welcome": "Welcome! Your first digest comes at your digest hour; like a few papers "
    "in it and the next ones follow your taste.",
    # a sign-up confirmed again, or of an address that has an account since the link was mailed
    "existing": "You already have an account at this address: nothing was changed. This is "
    "your page, with your settings as they were.",
}


class RequestLimiter:
    """Recent requests per key (an address, a client), within `REQUEST_WINDOW`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, deque[datetime]] = defaultdict(deque)
        self._forgetting = Forgetting()

    def allow(self, key: str, limit: int, now: datetime) -> bool:
        """Count one request of `key`; False when it already made `limit` in the window."""
        with self._lock:
            # keys whose requests are all out of the window are forgotten: one a new address
            # asked for (or signed up) was kept for ever
            self._forgetting.sweep(self._seen, now, REQUEST_WINDOW)
            times = self._seen[key]
            while times and times[0] <= now - REQUEST_WINDOW:
                times.popleft()
            if len(times) >= limit:
                return False
            times.append(now)
            return True

    def take_back(self, key: str, now: datetime) -> None:
        """Forget the request `allow` counted at `now` for `key` (one not served after all)."""
        with self._lock, contextlib.suppress(ValueError):  # gone already: out of the window
            self._seen.get(key, deque()).remove(now)


# the /manage and /signup forms, which no link opens, carry a double-submit token (as the
# console's login form): this cookie (SameSite=Strict, HTTP-only) and the same value in the
# form. A page of another site cannot read it, nor make a browser send it with its own post
FORM_COOKIE = "paperwire_form"
FORM_COOKIE_SECONDS = 24 * 3600


class AskingForm:
    """The token of a form no link opens (`/manage`, `/signup`): given with the page, checked
    with the POST."""

    def __init__(self, app: App, request: Request) -> None:
        self.app, self.request = app, request
        # the browser's token, while it has one: a second tab's page must not void the first's
        self.token = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(24)

    def give(self, response: Response) -> Response:
        """The page with its form, and the cookie its token is checked against."""
        response.set_cookie(
            FORM_COOKIE,
            self.token,
            max_age=FORM_COOKIE_SECONDS,
            path="/",
            secure=secure_cookies(self.app),
            httponly=True,
            samesite="strict",
        )
        return response

    def refusal(self, form: Mapping[str, object]) -> str:
        """Why this POST is refused ("" when it is not): another site's, or without the token
        of the page it came from."""
        request = self.request
        if not same_site(self.app, request) or not csrf_ok(
            request.cookies.get(FORM_COOKIE, ""), form.get("csrf")
        ):
            if FORM_COOKIE not in request.cookies and cookies_refused(self.app, request):
                base = str(self.app.settings.server.base_url).rstrip("/")
                return (
                    "Your browser keeps no cookie of this site at this plain http address "
                    f"(server.base_url is {base}): open this page at {base}{request.url.path}."
                )
            if FORM_COOKIE not in request.cookies and form.get("csrf"):
                # the page's token came back without its cookie: pressing again does the same
                host = request.headers.get("host") or urlsplit(str(request.url)).netloc
                return (
                    "Your browser sent back no cookie of this site, and this form needs one "
                    f"(it shows the form came from this page): allow cookies for {host}, or "
                    "reload this page if it was open for more than a day. Nothing was done."
                )
            return (
                "This form was not sent from this page (or the page was open too long): "
                "nothing was done. Press the button again."
            )
        return ""


def same_site(app: App, request: Request) -> bool:
    """False when the browser says the form comes from another site (`Origin`)."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = urlsplit(origin).netloc
        ours = {request.headers.get("host", ""), urlsplit(str(app.settings.server.base_url)).netloc}
        if host not in ours:
            return False
    return True


def client_of(request: Request) -> str:
    """The client a request is counted against: its address, an IPv6 one's /64 (as the
    console's logins: stepping through the addresses of one's /64 got a fresh count each)."""
    return client_key(request.client.host) if request.client else "?"


def send_notice(app: App, address: str, subject: str, text: str) -> None:
    """Mail a short text through the app's email transport. Errors are logged, never shown:
    the page gave its answer already (the same whether the address is known or not)."""
    from notifications.notice import render_notice

    s = app.settings
    try:
        out = render_notice(
            subject,
            text,
            sender=s.email.sender,
            recipient=address,
            message_id_domain=s.email.id_domain,
            now=app.clock(),
        )
        with CHANNELS[ChannelKind.EMAIL].transport(app) as transport:
            transport.send(out)
    except Exception:  # the job boundary of this one message
        log.exception("a message of the subscriber pages could not be mailed")


def send_manage_link(app: App, user: UserRow, address: str, *, signup: bool = False) -> None:
    """Mail a fresh link to the user's page (`signup`: asked for by signing up again)."""
    days = app.settings.server.manage_link_days
    asked = (
        "Someone (we hope you) asked to sign up for paperwire with this address, which "
        "already has a paperwire account: nothing was changed. Here is a link to your page"
        if signup
        else "Someone (we hope you) asked for a link to your paperwire page"
    )
    text = (
        f"Hello {user.display_name or user.name},\n\n"
        f"{asked}, where you see and "
        "change your digest: likes, follows, channels, delivery time, export, deletion.\n\n"
        f"{app.links.manage_url(user.id, app.clock())}\n\n"
        f"The link works for {days} days. If you did not ask for it, ignore this message: "
        "nothing changes unless the link is opened and a button pressed.\n"
    )
    send_notice(app, address, "Your paperwire page", text)


def _file(user: UserRow) -> str:
    """The user's name as it may go into a header's file name (a handle may hold "ë")."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", user.name)


_BIBTEX_SPECIAL = {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _bibtex_escape(text: str) -> str:
    """Text as BibTeX reads it back, in one pass (a backslash's own braces stay braces)."""
    return re.sub(
        r"[\\{}&%$#_~^]",
        lambda m: _BIBTEX_SPECIAL.get(m.group(), "\\" + m.group()),
        " ".join(text.split()),
    )


def bibtex(papers: list[PaperRow]) -> str:
    """BibTeX entries (@misc) of the papers; arXiv ids and DOIs from the paper's key."""
    entries: list[str] = []
    used: set[str] = set()
    for p in papers:
        scheme, _, ident = p.key.partition(":")
        cite = re.sub(r"[^A-Za-z0-9]+", "_", f"{scheme}{ident}").strip("_") or f"paper{p.id}"
        while cite in used:
            cite += "_"
        used.add(cite)
        fields = [("title", "{" + _bibtex_escape(p.title) + "}")]
        if p.authors:
            fields.append(("author", " and ".join(_bibtex_escape(a) for a in p.authors)))
        if p.published_at is not None:
            fields.append(("year", str(p.published_at.year)))
        if scheme == "arxiv":
            fields += [("eprint", ident), ("archivePrefix", "arXiv")]
        elif scheme == "doi":
            fields.append(("doi", _bibtex_escape(ident)))
        url = safe_url(p.url)
        if url:
            fields.append(("url", url.replace("{", "%7B").replace("}", "%7D")))
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
        entries.append(f"@misc{{{cite},\n{body}\n}}\n")
    return "\n".join(entries)


# a page's link made by a version that put it in Slack digests too (links.py: a manage token
# without `MANAGE_MARK`), of a subscriber who also has an email address: every reader of the
# channel could open the account for `server.manage_link_days`
UNMARKED_LINK = (
    "this link was made by an earlier version of paperwire, which put it in Slack digests "
    "too, where others may read it: it no longer opens your page. Ask for a fresh one on the "
    "page /manage (it is mailed to you at once)"
)


class _Page:
    """What every route of the page needs: the link checked, the form checked, the page."""

    def __init__(self, app: App, pages: Pages) -> None:
        self.app, self.pages = app, pages
        self.zones = sorted(z for z in available_timezones() if is_place_zone(z))

    def open_page(self, token: str) -> UserRow:
        try:
            link = self.app.links.read_manage(
                token, self.app.clock(), self.app.settings.server.manage_link_days
            )
        except BadLink:  # expired, say: of an account deleted since, that first ("ask /manage
            # for a fresh one" is no advice for it)
            with contextlib.suppress(BadLink):
                old = self.app.links.read(token)
                if old.action == "manage":
                    self.subscriber_of(old)
            raise
        user = self.subscriber_of(link)
        if link.unmarked and self._in_slack_too(user):
            raise BadLink(UNMARKED_LINK)
        return user

    def _in_slack_too(self, user: UserRow) -> bool:
        """Whether the page's link of `user` went into their Slack digests before this version
        (`LinkAction.unmarked`), where others may read it, and /manage can mail a fresh one: a
        subscriber with an email address and another channel (as `delivery._manage_url`)."""
        kinds = {c.kind for c in self.app.store.people.channels_of(user.id)}
        return ChannelKind.EMAIL in kinds and kinds != {ChannelKind.EMAIL}

    def valid_link(self, token: str) -> bool:
        """Whether `token` opens a page now, as far as the link itself says (no database)."""
        try:
            self.app.links.read_manage(
                token, self.app.clock(), self.app.settings.server.manage_link_days
            )
        except BadLink:
            return False
        return True

    def subscriber_of(self, link: LinkAction) -> UserRow:
        """The subscriber a page's link was made for; SubscriberGone when deleted since."""
        user = self.app.store.people.by_id(link.user_id)
        # a link made before this subscriber was added is a former holder's of the id (SQLite
        # gave a deleted subscriber's id again before migration 0009)
        if (
            user is None
            or link.issued_at is None
            or link.issued_at < int(user.created_at.timestamp())
        ):
            raise SubscriberGone("this subscriber no longer exists")
        return user

    def forbidden(self) -> HTMLResponse:
        return self.pages.render(
            "error.html",
            403,
            title="Not allowed",
            heading="This form cannot be sent from here",
            message="Open your page again from its link and use its buttons.",
        )

    def same_site(self, request: Request) -> bool:
        """False when the browser says the form comes from another site (`Origin`)."""
        return same_site(self.app, request)

    async def checked_form(self, token: str, request: Request) -> dict[str, str] | None:
        """The POSTed form if it carries the page's token and comes from this site. A link
        not valid (forged, expired) reads no body: None, and `open_page` says what is wrong."""
        if not self.same_site(request) or not self.valid_link(token):
            return None
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        if not csrf_ok(self.app.links.form_token(token), values.get("csrf")):
            return None
        return values

    def back(self, token: str, done: str, anchor: str, likes: int = 1) -> RedirectResponse:
        """Back to the page at the section of the change, its note in that section (at the
        top of the page it was out of sight: the browser shows the section), and at the page
        of the likes it was on."""
        page = f"&likes={likes}" if likes > 1 else ""
        return see_other(f"/me/{token}?done={done}&at={anchor}{page}#{anchor}")

    def show(
        self,
        token: str,
        user: UserRow,
        *,
        note: str = "",
        error: str = "",
        status: int = 200,
        sent: dict[str, str] | None = None,
        note_at: str = "",
        invalid: str = "",
        likes_page: int = 1,
    ) -> HTMLResponse:
        """The page; `sent`: the form as it was sent and refused (kept, to correct), and
        `invalid`: the id of its field the `error` is about (marked, and linked from it);
        `likes_page`: which `LIKES_PER_PAGE` of the likes, newest first (beyond the last: the
        last)."""
        people = self.app.store.people
        today = local_today(user.timezone, self.app.clock())
        paused = user.paused_until is not None and user.paused_until > today
        settings = {
            "hour": "" if user.digest_hour is None else str(user.digest_hour),
            "timezone": user.timezone,
            "picks": "" if user.max_picks is None else str(user.max_picks),
            "frequency": user.frequency,
            "weekday": WEEKDAYS[user.digest_weekday or 0],
            "pause_until": user.paused_until.isoformat() if paused and user.paused_until else "",
            **{k: v for k, v in (sent or {}).items() if k != "csrf"},
        }
        if settings["timezone"] not in self.zones:  # the list shows only those
            settings["timezone"] = user.timezone
        channels = [
            {
                "id": c.id,
                "kind": c.kind,
                "where": describe_channel(c),
                "active": c.active,
                "stopped": c.stopped_reason,
            }
            for c in people.channels_of(user.id)
        ]
        # unsubscribed as a whole (an unsubscribe link naming no channel, the admin): each
        # channel's own switch may still be on, yet nothing is sent to any; "Start my digests
        # again" starts the ones `People.set_subscribed` starts (those on, and those paperwire
        # stopped; all of them when none is on)
        all_off = not user.active and any(c["active"] for c in channels)
        resumes = [str(c["where"]) for c in channels if c["active"] or c["stopped"]]
        store = self.app.store.subscriber
        total = store.feedback_count(user.id)
        likes_page = max(1, min(likes_page, -(-total // LIKES_PER_PAGE)))
        first = (likes_page - 1) * LIKES_PER_PAGE
        feedback = [
            (p, safe_url(p.url), value, at)
            for p, value, at in store.feedback(user.id, limit=LIKES_PER_PAGE, offset=first)
        ]
        contents = self.app.store.digests.contents(store.recent_digest_ids(user.id, HISTORY))
        history = sorted(
            contents.values(), key=lambda c: (c.digest.period, c.digest.id), reverse=True
        )
        # the answers on the recent digests' papers, whichever page of the likes shows them
        given = store.answers(user.id, sorted({p.id for c in history for _, p in c.items}))
        return self.pages.render(
            "me.html",
            status,
            title="Your digest",
            token=token,
            csrf=self.app.links.form_token(token),
            user=user,
            channels=channels,
            all_off=all_off,
            resumes=resumes if all_off else [],
            feedback=feedback,
            likes={
                "page": likes_page,
                "first": first + 1,
                "last": first + len(feedback),
                "total": total,
                "older": first + len(feedback) < total,
            },
            given=given,
            follows=self.app.store.subscriber.follows(user.id),
            history=[
                (c.digest, describe_channel(c.channel), [(p, safe_url(p.url)) for _, p in c.items])
                for c in history
            ],
            # a zone the list lacks (set with the command line) is an option too: unlisted,
            # none was chosen and a browser sent the list's first with any save
            zones=self.zones if user.timezone in self.zones else [user.timezone, *self.zones],
            # stored before such zones were refused: a save is refused until another is chosen
            zone_problem=""
            if is_place_zone(user.timezone)
            else f"{user.timezone!r} is not a time zone of a place: choose yours in the list "
            "(a save is refused until then)",
            weekdays=WEEKDAYS,
            often=frequency_text(user.frequency, user.digest_weekday, user.paused_until, today),
            paused=paused,
            settings=settings,
            default_hour=self.app.settings.schedule.digest_hour,
            default_picks=self.app.settings.digest.max_picks,
            note=note,
            note_at=note_at if note_at in SECTIONS or _PAPER_ANCHOR.fullmatch(note_at) else "",
            error=error,
            invalid=invalid,
            days=self.app.settings.server.manage_link_days,
        )


def _request_routes(router: APIRouter, app: App, pages: Pages) -> None:
    limiter = RequestLimiter()

    # ---- asking for a link ------------------------------------------------------------------

    def manage_page(
        request: Request,
        status: int = 200,
        error: str = "",
        address: str = "",
        *,
        invalid: bool = False,
    ) -> Response:
        """`invalid`: the `error` is about the address (its field is marked, and described by
        the error); a refused form token is not."""
        asking = AskingForm(app, request)
        return asking.give(pages.render("manage.html", status, title="A link to your page",
                                        sent=False, error=error, address=address,
                                        invalid=invalid, csrf=asking.token,
                                        signup=app.settings.server.signup == "open"))  # fmt: skip

    @router.get("/manage")
    def manage_form(request: Request, sent: bool = False) -> Response:
        if sent:  # the answer to the POST below, on a page of its own
            return pages.render("manage.html", title="A link to your page", sent=True,
                                days=app.settings.server.manage_link_days)  # fmt: skip
        return manage_page(request)

    @router.post("/manage")
    async def manage_request(request: Request, tasks: BackgroundTasks) -> Response:
        form = await request.form()
        address = str(form.get("email") or "").strip()
        if refused := AskingForm(app, request).refusal(form):
            return manage_page(request, 403, refused, address)
        now = app.clock()
        if not limiter.allow(f"client:{client_of(request)}", REQUESTS_PER_CLIENT, now):
            return pages.render(
                "error.html",
                429,
                title="Too many requests",
                heading="Too many requests",
                message="Too many links were asked for from your network: try again in an hour.",
            )
        try:  # the address itself: "Ada <ada@lab.example>" (copied from a mail) is ada's
            address = parse_email(address)[0]
        except ValueError as e:  # a typo, said as such: the answer below is for addresses
            return manage_page(request, 400, str(e), address, invalid=True)
        if limiter.allow(f"address:{address.lower()}", REQUESTS_PER_ADDRESS, now):
            user = app.store.subscriber.user_by_email(address)
            if user is not None:
                tasks.add_task(send_manage_link, app, user, address)
        # the same answer, known address or not, limited or not; a page of its own (303): a
        # reload must not ask for another link
        return see_other("/manage?sent=1")


def _edit_routes(router: APIRouter, page: _Page) -> None:
    # ---- the page ---------------------------------------------------------------------------

    @router.get("/me/{token}")
    def me(token: str, done: str = "", at: str = "", likes: str = "") -> HTMLResponse:
        user = page.open_page(token)
        likes_page = as_id(likes) or 1  # not a number: the first page
        note = DONE.get(done, "")
        if done == "resumed":
            today = local_today(user.timezone, page.app.clock())
            often = frequency_text(user.frequency, user.digest_weekday, user.paused_until, today)
            note = note.format(often=often)
        return page.show(token, user, note=note, note_at=at, likes_page=likes_page)

    @router.post("/me/{token}/feedback")
    async def set_feedback(token: str, request: Request) -> Response:
        form = await page.checked_form(token, request)
        return await run_in_threadpool(_set_feedback, page, token, form)

    @router.post("/me/{token}/follow")
    async def follow(token: str, request: Request) -> Response:
        form = await page.checked_form(token, request)
        return await run_in_threadpool(_follow, page, token, form)


def _settings_routes(router: APIRouter, page: _Page) -> None:
    @router.post("/me/{token}/channel")
    async def channel(token: str, request: Request) -> Response:
        form = await page.checked_form(token, request)
        return await run_in_threadpool(_channel, page, token, form)

    @router.post("/me/{token}/settings")
    async def settings(token: str, request: Request) -> Response:
        form = await page.checked_form(token, request)
        return await run_in_threadpool(_settings, page, token, form)


class _FieldError(ValueError):
    """A form's value refused, with the id of its field."""

    def __init__(self, field: str, error: ValueError) -> None:
        super().__init__(str(error))
        self.field = field


def _schedule(form: dict[str, str], user: UserRow, zone: str, now: datetime) -> dict[str, object]:
    """How often, from the settings form: `frequency` daily or weekly, `weekday` (mon … sun,
    weekly only), `pause_until` (a date in the user's time zone after today; empty: no pause)
    and the "Resume now" button (`op=resume`). A pause date the page showed (the stored one)
    is kept as it is."""
    frequency = check_frequency(form.get("frequency", "") or user.frequency)
    changes: dict[str, object] = {"frequency": frequency, "digest_weekday": None}
    if frequency == "weekly":
        raw = form.get("weekday", "").strip()
        try:
            if not raw:
                raise ValueError("A weekly digest needs its day of the week: choose one.")
            changes["digest_weekday"] = check_weekday(raw)
        except ValueError as e:
            raise _FieldError("weekday", e) from None
    raw = form.get("pause_until", "").strip()
    if form.get("op") == "resume" or not raw:
        changes["paused_until"] = None
    elif user.paused_until is not None and raw == user.paused_until.isoformat():
        changes["paused_until"] = user.paused_until
    else:
        try:
            changes["paused_until"] = check_pause_until(raw, local_today(zone, now))
        except ValueError as e:
            raise _FieldError("pause-until", e) from None
    return changes


def local_today(zone: str, now: datetime) -> date:
    """The date now in this time zone (UTC's, for a zone that is none)."""
    try:
        return now.astimezone(ZoneInfo(zone)).date()
    except (ValueError, KeyError):
        return now.date()


def _entries(n: int) -> str:
    return "1 entry" if n == 1 else f"{n} entries"


def import_outcome(report: ImportReport) -> tuple[str, str]:
    """The import page's heading and what to do next, as the report is: something liked, in
    full or in part, nothing new (all of it liked already), or nothing at all."""
    from daemon.library.read import WHAT_TO_DO

    failed, already, source = len(report.failed), len(report.already_liked), report.source
    fix = "fix the entries listed below and import the file again"
    if report.liked:
        if not failed:
            return "Your library is imported", ""
        return "Your library is imported in part", (
            f"{_entries(failed)} could not be imported: {fix} (what is liked now stays liked, "
            "and is not imported twice)."
        )
    if already:
        papers = "The one paper" if already == 1 else f"All {already} papers"
        if not failed:
            return "Nothing new to import", (
                f"{papers} of {source} {'was' if already == 1 else 'were'} already among your "
                "likes: nothing changed."
            )
        return "Nothing new to import", (
            f"The papers of {source} that could be read ({already}) were already among your "
            f"likes, and {_entries(failed)} could not be imported: {fix}."
        )
    total = failed + len(report.skipped) + len(report.duplicates)
    if failed:
        return "No paper was imported", (
            f"None of the {_entries(total)} of {source} could be imported: {fix}, or {WHAT_TO_DO}."
        )
    return "No paper was imported", f"No paper to like was found in {source}: {WHAT_TO_DO}."


def _import_routes(router: APIRouter, page: _Page) -> None:
    from daemon.web.auth import LoginGate

    app, pages = page.app, page.pages
    gate = LoginGate(UPLOADS_AT_ONCE)  # uploads waiting hold no worker thread nor memory
    uploads = RequestLimiter()

    @router.post("/me/{token}/import")
    async def import_upload(token: str, request: Request) -> Response:
        """A library file (BibTeX, RIS, CSL JSON, arXiv ids) → likes, with the report. At most
        `UPLOAD_BYTES`; arXiv is asked for at most `UPLOAD_FETCH` papers (one request)."""
        from daemon.ingest.bounded import ParseBudget
        from daemon.library.bounded import read_library_bounded
        from daemon.library.importer import import_library
        from daemon.library.read import LibraryError

        user = page.open_page(token)
        if not page.same_site(request):
            return page.forbidden()
        too_big = (
            f"That file is larger than {UPLOAD_BYTES // 1_000_000} MB: export a part of your "
            "library (a collection), or ask the admin to run `paperwire import` with it."
        )
        length = request.headers.get("content-length", "")
        declared = as_id(length)  # None: not a number, or beyond any upload
        if length and (declared is None or declared > UPLOAD_BYTES + 64_000):
            return page.show(token, user, error=too_big, status=413, invalid="library")
        form = await request.form(max_files=1, max_fields=10)
        csrf = form.get("csrf")
        if not csrf_ok(app.links.form_token(token), csrf if isinstance(csrf, str) else None):
            return page.forbidden()
        upload = form.get("library")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return page.show(
                token, user, error="Choose a file to import.", status=400, invalid="library"
            )
        data = await upload.read(UPLOAD_BYTES + 1)
        if len(data) > UPLOAD_BYTES:
            return page.show(token, user, error=too_big, status=413, invalid="library")
        # a file to read: counted (a submit without one, or one refused for its size, is not)
        counted = app.clock()
        if not uploads.allow(f"user:{user.id}", UPLOADS_PER_HOUR, counted):
            return page.show(token, user, status=429, invalid="library", error=(
                f"You have uploaded {UPLOADS_PER_HOUR} files in the last hour: try again in an "
                "hour, or ask the admin to run `paperwire import` with your file."
            ))  # fmt: skip
        fmt = form.get("format")
        fmt = fmt if isinstance(fmt, str) and fmt in FORMATS else None
        name = upload.filename[:200]
        ing = app.settings.ingest
        budget = ParseBudget(ing.parse_timeout_seconds, ing.parse_memory_mb)
        slot = gate()
        try:  # its turn, waited for a bounded time: every reader busy, a page said nothing
            await asyncio.wait_for(slot.acquire(), UPLOAD_WAIT_SECONDS)
        except TimeoutError:
            uploads.take_back(f"user:{user.id}", counted)  # not one of the hour's uploads
            busy = page.show(token, user, status=503, invalid="library", error=(
                "Busy reading other libraries; try again in a minute. Nothing was imported."
            ))  # fmt: skip
            busy.headers["Retry-After"] = str(UPLOAD_RETRY_AFTER)
            return busy
        try:  # in a worker process under the parse budget (5 MB of BibTeX takes pyparsing a
            # minute, a crafted MB far longer), waited for in a worker thread: the event loop
            # serves every page and /healthz meanwhile
            library = await run_in_threadpool(
                read_library_bounded, data, name=name, fmt=fmt, budget=budget
            )
        except LibraryError as e:
            return page.show(token, user, error=str(e), status=400, invalid="library")
        finally:
            slot.release()
        if len(library.entries) > UPLOAD_ENTRIES:
            return page.show(token, user, status=413, invalid="library", error=(
                f"That file has more than {UPLOAD_ENTRIES:,} entries: export a part of your "
                "library (a collection), or ask the admin to run `paperwire import` with it."
            ))  # fmt: skip
        report = await run_in_threadpool(
            import_library,
            app,
            user.name,
            library,
            app.clock(),
            source=name,
            max_fetch=UPLOAD_FETCH,
        )
        heading, advice = import_outcome(report)
        return pages.render(
            "me_import.html",
            title="Your library",
            token=token,
            report=report,
            user=user,
            heading=heading,
            advice=advice,
        )


def _data_routes(router: APIRouter, page: _Page) -> None:
    app, pages = page.app, page.pages

    @router.get("/me/{token}/export.json")
    def export_json(token: str) -> Response:
        user = page.open_page(token)
        show_address = {
            ChannelKind.EMAIL: lambda a: a,
            ChannelKind.SLACK: hide_webhook,
        }
        data: dict[str, Any] = {
            "exported_at": app.clock().isoformat(),
            **app.store.subscriber.export(user.id, show_address),
        }
        return Response(
            json.dumps(data, indent=2, ensure_ascii=False) + "\n",
            media_type="application/json",
            headers={
                **SECURITY_HEADERS,
                "Content-Disposition": f'attachment; filename="paperwire-{_file(user)}.json"',
            },
        )

    @router.get("/me/{token}/likes.bib")
    def export_bibtex(token: str) -> Response:
        user = page.open_page(token)
        likes = [p for p, value, _ in app.store.subscriber.feedback(user.id) if value > 0]
        return Response(
            bibtex(likes),
            media_type="application/x-bibtex; charset=utf-8",
            headers={
                **SECURITY_HEADERS,
                "Content-Disposition": f'attachment; filename="paperwire-{_file(user)}-likes.bib"',
            },
        )

    @router.get("/me/{token}/delete")
    def delete_page(token: str) -> HTMLResponse:
        page.open_page(token)
        return pages.render(
            "me_delete.html",
            title="Delete your account",
            token=token,
            csrf=app.links.form_token(token),
        )

    @router.post("/me/{token}/delete")
    async def delete(token: str, request: Request) -> Response:
        form = await page.checked_form(token, request)
        return await run_in_threadpool(_delete, page, token, form)


def subscriber_routes(app: App, pages: Pages) -> APIRouter:
    router = APIRouter()
    page = _Page(app, pages)
    _request_routes(router, app, pages)
    _edit_routes(router, page)
    _settings_routes(router, page)
    _import_routes(router, page)
    _data_routes(router, page)
    _deleted_routes(router, page)
    return router


# ---- what the POSTs above do, in a worker thread (they write to the database: a write waits
# for SQLite's lock, which must not hold up the event loop that serves every page)


def _set_feedback(page: _Page, token: str, form: dict[str, str] | None) -> Response:
    app = page.app
    user = page.open_page(token)
    if form is None:
        return page.forbidden()
    value = {"like": LIKE, "dislike": DISLIKE, "none": NEITHER}.get(form.get("value", ""))
    paper_id = as_id(form.get("paper", ""))
    if value is None or paper_id is None:
        return page.show(token, user, error="That answer is not one of the buttons.", status=400)
    if not app.store.subscriber.may_answer(user.id, paper_id):
        # only a paper the page shows: another's id would show that paper on this page; and
        # whether an id is stored at all is not told either (the same words, or nothing to
        # take back)
        if value == NEITHER:
            return page.back(token, "feedback", "likes", 1)
        return page.show(token, user, error="That answer is not one of the buttons.", status=400)
    if paper_id not in app.store.papers.by_ids([paper_id]):  # deleted since the check
        return page.show(token, user, error="That paper is no longer stored.", status=400)
    app.store.people.set_feedback(user.id, paper_id, value, app.clock())
    # from the recent digests: back to the paper answered (its list may be long), else to the
    # likes, where the answer now shows
    origin = form.get("from", "")
    digest = _FROM_DIGEST.fullmatch(origin)
    at = f"d{digest[1]}-p{paper_id}" if digest else ("history" if origin == "history" else "likes")
    likes = _FROM_LIKES.fullmatch(origin)  # the page of the likes it was removed from
    return page.back(token, "feedback", at, int(likes[1]) if likes else 1)


def _follow(page: _Page, token: str, form: dict[str, str] | None) -> Response:
    app = page.app
    user = page.open_page(token)
    if form is None:
        return page.forbidden()
    try:
        kind = FollowKind(form.get("kind", ""))
    except ValueError:
        sent = {"follow_value": form.get("value", "")}  # the word typed, to send again
        return page.show(token, user, error="Choose a keyword or an author.", status=400,
                         sent=sent, invalid="follow-kind")  # fmt: skip
    what = "keyword" if kind == FollowKind.KEYWORD else "author"
    if form.get("op") == "remove":
        app.store.people.remove_follow(user.id, kind, form.get("value", ""))
    else:
        try:
            value = check_follow(form.get("value", ""), what)
        except ValueError as e:
            sent = {"follow_kind": kind.value, "follow_value": form.get("value", "")}
            return page.show(token, user, error=str(e), status=400, sent=sent,
                             invalid="follow-value")  # fmt: skip
        muted = form.get("op") == "mute"
        # the limit checked where the follow is stored, in its transaction: two posts at once
        # both passed a check made before
        if not app.store.people.set_follow(user.id, kind, value, muted=muted, limit=FOLLOWS_MAX):
            sent = {"follow_kind": kind.value, "follow_value": value}
            return page.show(token, user, status=400, sent=sent, invalid="follow-value", error=(
                f"You follow or mute {FOLLOWS_MAX} keywords and authors, as many as a digest "
                "can take: remove one below before adding another."
            ))  # fmt: skip
    return page.back(token, "follow", "follows")


def _channel(page: _Page, token: str, form: dict[str, str] | None) -> Response:
    app = page.app
    user = page.open_page(token)
    if form is None:
        return page.forbidden()
    op, channel_id = form.get("op"), as_id(form.get("channel", ""))
    if op == "resume-all":  # unsubscribed as a whole: start the digests again
        try:
            app.store.people.set_subscribed(user.id, True, app.clock())
        except PaperwireError:  # no channel left (the admin removed them)
            nowhere = "You have no address or channel here anymore: ask the person who runs "
            return page.show(token, user, status=400, error=nowhere + "paperwire to add one.")
        return page.back(token, "resumed", "channels")
    if op not in ("pause", "resume") or channel_id is None:
        return page.show(token, user, error="That is not one of the buttons.", status=400)
    try:
        app.store.people.set_channel_active(user.id, channel_id, op == "resume", app.clock())
    except NotFoundError:  # removed since the page was shown: the page, not "Link not valid"
        return page.show(token, user, status=400, error="That address or channel is no "
                         "longer one of yours (it was removed since the page was shown); the "
                         "list below is what you have now.")  # fmt: skip
    return page.back(token, "channel", "channels")


def _settings(page: _Page, token: str, form: dict[str, str] | None) -> Response:
    app = page.app
    user = page.open_page(token)
    if form is None:
        return page.forbidden()
    changes: dict[str, object] = {}
    invalid = "timezone"  # the field being read: the one an error is about
    try:
        changes["timezone"] = check_timezone(form.get("timezone", "").strip() or "UTC")
        for key, field, top in (("hour", "digest_hour", 23), ("picks", "max_picks", 100)):
            invalid = key
            raw = form.get(key, "").strip()
            low = 0 if key == "hour" else 1
            number = as_id(raw)
            if other_digits(raw):
                raise ValueError(f"{raw!r}: {OTHER_DIGITS}")
            if raw and (number is None or not low <= number <= top):
                raise ValueError(f"{raw!r} is not a number from {low} to {top}")
            changes[field] = number
        invalid = "how-often"
        changes.update(_schedule(form, user, str(changes["timezone"]), app.clock()))
    except ValueError as e:
        invalid = e.field if isinstance(e, _FieldError) else invalid
        return page.show(token, user, error=str(e), status=400, sent=form, invalid=invalid)
    try:
        app.store.people.edit(user.name, app.clock(), changes=changes)
    except PaperwireError as e:
        return page.show(token, user, error=str(e), status=400, sent=form)
    return page.back(token, "settings", "delivery")


def _delete(page: _Page, token: str, form: dict[str, str] | None) -> Response:
    app = page.app
    try:
        user = page.open_page(token)
    except NotFoundError:
        if form is None or form.get("confirm") != "yes":
            raise
        # deleted already: a double click's second POST, whose answer the browser shows
        return see_other(f"/me/{token}/deleted")
    if form is None:
        return page.forbidden()
    if form.get("confirm") != "yes":
        return see_other(f"/me/{token}/delete")
    with contextlib.suppress(PaperwireError):  # removed meanwhile
        app.store.people.remove(user.name)
    # a page of its own (303): a reload or the back button posted again, and the link of an
    # account that is no more got "Link not valid"
    return see_other(f"/me/{token}/deleted")


def _deleted_routes(router: APIRouter, page: _Page) -> None:
    @router.get("/me/{token}/deleted")
    def deleted(token: str) -> Response:
        """The answer to a deletion (it names nobody: the account is gone). With the page's
        link only, of an account that is no more: at an address of its own, anyone could be
        shown "Your account is deleted" on the lab's site."""
        try:
            page.open_page(token)
        except NotFoundError:  # gone: deleted (BadLink, a link not valid, is its own page)
            pass
        else:
            return see_other(f"/me/{token}")
        return page.pages.render(
            "done.html",
            title="Deleted",
            heading="Your account is deleted.",
            paper=None,
            message="Your channels, likes, follows and digests are gone; no more digests come. "
            "The papers themselves stay: they are the feeds', not yours.",
            undo_url=None,
        )

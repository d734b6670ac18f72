"""The console's feeds and subscribers pages: the same checks and stores as the command line
(`daemon.checks`, `daemon.channels`, `daemon.importing`), every change in the audit log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from daemon.app import App
from daemon.channels import CHANNELS, parse_email
from daemon.checks import (
    OTHER_DIGITS,
    WEEKDAYS,
    HostNotResolved,
    as_id,
    check_display_name,
    check_feed_url,
    check_follow,
    check_frequency,
    check_handle,
    check_pause_until,
    check_weekday,
    other_digits,
)
from daemon.db.models import ChannelKind
from daemon.db.people import Subscriber
from daemon.db.rows import ChannelRow, UserRow
from daemon.errors import ImportRefused, NotFoundError, PaperwireError
from daemon.settings import check_timezone, crontab_trigger, shown_url
from daemon.web import auth
from daemon.web.console import Console, PageNumber, Posted, read_form
from daemon.web.pages import MAX_BODY

PAGE = 100  # subscribers per page
_Page = Callable[..., HTMLResponse]  # the feeds page again, with what the form held
# the list's orders: by handle, the newest first, the paused first: those getting no digest now,
# unsubscribed or paused until a day ahead (a wrong one: the 400 page)
Sort = Annotated[Literal["name", "newest", "paused"], Query()]
SORTS = {"name": "by name", "newest": "newest first", "paused": "paused first"}
MAX_UPLOAD = 20_000_000  # bytes of a CSV upload
TOO_LARGE = f"the file is larger than {MAX_UPLOAD // 1_000_000} MB; split it"


def next_digest(app: App, user: UserRow, made_today: bool, now: datetime) -> datetime | None:
    """When the scheduled job will make this subscriber's next digest: the first run of
    `schedule.digest_cron` from their local digest hour on their next delivery day (today's, if
    its digest is not made yet; a weekly subscriber's weekday; after a pause)."""
    from daemon.jobs.digests import next_due

    if not user.active:
        return None
    s = app.settings.schedule
    start = next_due(user, now, s.digest_hour, made=made_today)
    fire: datetime | None = crontab_trigger(s.digest_cron, s.timezone).get_next_fire_time(
        None, start
    )
    return fire


def list_query(q: str = "", page: int = 0, sort: str = "name") -> str:
    """The query of a page of the subscriber list (a search, a page number, an order), for the
    links and forms of a subscriber opened from it: they lead back to the same place."""
    params = {k: v for k, v in (("q", q), ("page", page)) if v}
    if sort != "name":
        params["sort"] = sort
    return f"?{urlencode(params)}" if params else ""


def _at_page(q: str, page: int, sort: str) -> str:
    """The query of another page of the list (page=0 too: "previous" says it)."""
    return "?" + urlencode({"q": q, "page": page, **({"sort": sort} if sort != "name" else {})})


def _back_to_list(q: str, page: int, name: str, sort: str = "name") -> tuple[str, str]:
    """The link from a subscriber's page to the list where they were found, and its text."""
    label = "← Subscribers" + (f" matching “{q}”" if q else "")
    label += (f", page {page + 1}" if page else "") + (f", {SORTS[sort]}" if sort != "name" else "")
    return f"/admin/subscribers{list_query(q, page, sort)}#user-{name}", label


# ---- feeds ---------------------------------------------------------------------------------------


def _feeds_page(console: Console, request: Request, who: auth.Admin, **ctx: Any) -> HTMLResponse:
    app = console.app
    declared = {f.name for f in app.settings.feeds}
    return console.render(
        request,
        who,
        "feeds.html",
        title="Feeds",
        feeds=app.store.feeds.all(),
        declared=declared,
        now=app.clock(),
        **{"name": "", "url": "", "trial": None, "editing": False, **ctx},
    )


def _feed_routes(router: APIRouter, console: Console, admin: Any, posted: Any) -> None:
    app = console.app

    @router.get("/feeds")
    def feeds(request: Request, edit: str = "", who: auth.Admin = admin) -> HTMLResponse:
        # ?edit=NAME: the form above the list holds that feed, to give it a new address
        try:
            feed = app.store.feeds.get(edit) if edit else None
        except NotFoundError:
            feed = None
        if feed is None:
            return _feeds_page(console, request, who)
        return _feeds_page(console, request, who, name=feed.name, url=feed.url, editing=True)

    @router.post("/feeds")
    def add_or_test(request: Request, form: Posted = posted) -> Response:
        return _add_or_test_feed(console, request, form)

    @router.post("/feeds/{name}/{action}")
    def change(name: str, action: str, form: Posted = posted) -> Response:
        feeds = app.store.feeds
        declared = _declared(console, name)
        if declared is not None:
            return declared
        if action == "enable":
            feeds.set_enabled(name, True, app.clock())
        elif action == "disable":
            feeds.set_enabled(name, False, app.clock())
        elif action == "remove":
            if form.text("confirm") != "yes":  # the box the browser requires: nothing undoes this
                return console.back("/admin/feeds", f"Feed {name} was not removed: tick “yes, "
                                    "for good” first.", error=True)  # fmt: skip
            try:
                feeds.remove(name)
            except NotFoundError:  # the second request of a double click: the first removed it
                return console.back("/admin/feeds", f"{name} is not there (removed already).")
        else:
            return console.back("/admin/feeds", f"unknown action {action!r}", error=True)
        console.audit(form.admin.name, f"feed {action}d", name)
        return console.back("/admin/feeds", f"Feed {name} {action}d.")


def _declared(console: Console, name: str) -> Response | None:
    """Back to the feeds, saying so, for a feed of the configuration file (the next ingest
    would undo a change made here); None for the others."""
    if name not in {f.name for f in console.app.settings.feeds}:
        return None
    return console.back(
        "/admin/feeds",
        f"{name} is declared in the configuration file: change it there.",
        error=True,
    )


def _add_or_test_feed(console: Console, request: Request, form: Posted) -> Response:
    """Check the URL, fetch it once; with action=add and a good fetch, add the feed (with
    set-url: give the feed that address)."""
    app = console.app
    name, url, action = form.text("name"), form.text("url"), form.text("action")
    ing = app.settings.ingest
    editing = action in ("test-new-url", "set-url", "set-url-unchecked")

    def page(status: int = 200, **ctx: Any) -> HTMLResponse:
        return _feeds_page(
            console, request, form.admin, status=status, name=name, url=url, editing=editing, **ctx
        )

    try:
        check_handle(name, "feed name")
        check_feed_url(url, allow_files=ing.allow_files, allow_private=ing.allow_private_addresses)
    except HostNotResolved:  # DNS down, or no network: the test fetch says so and offers
        pass  # "Add anyway"; every fetch checks the addresses again
    except ValueError as e:
        return page(400, error=str(e))
    return (_set_feed_url if editing else _add_feed)(console, form, name, url, action, page)


def _add_feed(
    console: Console, form: Posted, name: str, url: str, action: str, page: _Page
) -> Response:
    from daemon.jobs.ingest import try_feed

    app = console.app
    same = [f for f in app.store.feeds.all() if f.name == name and f.url == url]
    if action in ("add", "add-unchecked") and same:
        # the second request of a double click (the one the browser shows): it fetched the
        # feed again and said the name was taken, as if the add had failed
        if not same[0].enabled:  # not the add of a moment ago: an old feed, switched off
            return console.back("/admin/feeds", f"Feed {name} is there already, disabled: "
                                "enable it in its row.", error=True)  # fmt: skip
        return console.back("/admin/feeds", f"Feed {name} is there already, as given.")
    if action in ("add", "add-unchecked"):
        try:  # before the fetch: a name taken is said at once
            app.store.feeds.check_new(name, url)
        except PaperwireError as e:
            return page(400, error=str(e))
    trial = None if action == "add-unchecked" else try_feed(app, url, app.clock())
    if trial is not None and action != "add":
        return page(trial=trial)
    if trial is not None and trial.error:
        # "Add anyway" (the page offers it with the error) adds it without a fetch
        return page(400, error=f"not added: the test fetch failed: {trial.error}", trial=trial)
    moved = trial.moved_to if trial is not None else None
    try:
        app.store.feeds.add(name, moved or url, app.clock())
    except PaperwireError as e:
        return page(400, error=str(e), trial=trial)
    # a private feed's token masked (the feed keeps its address whole)
    console.audit(form.admin.name, "feed added", name, shown_url(moved or url))
    # back to the list (303): reloading the page must not post the feed again
    if trial is None:
        message = f"Added feed {name} without a test fetch: the next ingest fetches it."
    else:
        message = f"Added feed {name}: {trial.summary()}; the next ingest stores the new ones."
        if moved:
            message += f" The server says it moved for good to {moved}: added with that address."
    return console.back("/admin/feeds", message)


def _set_feed_url(
    console: Console, form: Posted, name: str, url: str, action: str, page: _Page
) -> Response:
    """A feed's new address (`paperwire feeds set-url`): fetched once, then set, unless the
    fetch fails (then "Change anyway": set without it)."""
    from daemon.jobs.ingest import try_feed

    app = console.app
    try:
        old = app.store.feeds.get(name)
    except NotFoundError:
        return console.back("/admin/feeds", f"There is no feed {name} any more.", error=True)
    declared = _declared(console, name)
    if declared is not None:
        return declared
    if old.url == url:  # the second request of a double click, or nothing changed
        return console.back("/admin/feeds", f"Feed {name} fetches {url}.")
    trial = None if action == "set-url-unchecked" else try_feed(app, url, app.clock())
    if trial is not None and action == "test-new-url":
        return page(trial=trial)
    if trial is not None and trial.error:
        return page(400, error=f"not changed: the test fetch failed: {trial.error}", trial=trial)
    new = (trial.moved_to if trial is not None else None) or url
    try:
        app.store.feeds.set_url(name, new, app.clock())
    except PaperwireError as e:
        return page(400, error=str(e), trial=trial)
    console.audit(form.admin.name, "feed address changed", name, shown_url(f"{old.url} → {new}"))
    if trial is None:
        message = f"Feed {name} now fetches {new}, not fetched yet: the next ingest fetches it."
    else:
        message = f"Feed {name} now fetches {new}: {trial.summary()}."
        if new != url:
            message += f" The server says {url} moved for good there."
    return console.back("/admin/feeds", message)


# ---- subscribers ---------------------------------------------------------------------------------


@dataclass
class UserForm:
    """A subscriber's form, checked like `users add` / `users set`."""

    values: dict[str, str]
    errors: list[str] = field(default_factory=list)
    channels: dict[ChannelKind, str | None] = field(default_factory=dict)
    changes: dict[str, object] = field(default_factory=dict)


def _read_email(got: UserForm, adding: bool, stored_email: str | None) -> None:
    v = got.values
    if v["email"] and v["email"] == stored_email:  # unchanged: as stored, whatever the checks
        got.channels[ChannelKind.EMAIL] = stored_email  # of today say (an earlier one took it)
    elif v["email"]:
        try:
            address, named = parse_email(v["email"])
            got.channels[ChannelKind.EMAIL] = address
            if adding and not v["display_name"]:
                v["display_name"] = named
        except ValueError as e:
            got.errors.append(f"email: {e}")
    elif not adding:
        got.channels[ChannelKind.EMAIL] = None


def _read_user_form(
    form: Posted, *, adding: bool, now: datetime | None = None, stored_email: str | None = None
) -> UserForm:
    names = (
        *("name", "display_name", "email", "slack", "timezone", "hour", "max_picks"),
        *("frequency", "weekday", "paused_until", "remove_slack"),
    )
    got = UserForm({k: form.text(k) for k in names})
    v = got.values
    if adding:
        _check(got, lambda: check_handle(v["name"]), "name")
    _read_email(got, adding, stored_email)
    if v["slack"]:
        try:
            got.channels[ChannelKind.SLACK] = CHANNELS[ChannelKind.SLACK].check(v["slack"])
        except ValueError as e:
            got.errors.append(f"Slack webhook: {e}")
            v["slack"] = ""  # a secret: the page keeps a good one only, never shows a refused one
    elif form.text("remove_slack"):
        got.channels[ChannelKind.SLACK] = None
    _check(got, lambda: check_timezone(v["timezone"] or "UTC"), "time zone")
    got.changes["timezone"] = v["timezone"] or "UTC"
    got.changes["digest_hour"] = _number(got, v["hour"], "digest hour", 0, 23)
    got.changes["max_picks"] = _number(got, v["max_picks"], "papers per digest", 1, 100)
    if v["display_name"]:
        try:
            got.changes["display_name"] = check_display_name(v["display_name"])
        except ValueError as e:
            got.errors.append(f"display name: {e}")
    if v["frequency"] and now is not None:
        _read_frequency(got, now)
    return got


def _read_frequency(got: UserForm, now: datetime) -> None:
    """Frequency, weekday (weekly only) and pause (a date in the user's zone, after today;
    empty: not paused), as `users set --frequency --weekday --pause-until` checks them."""
    from zoneinfo import ZoneInfo

    v = got.values
    try:
        frequency = check_frequency(v["frequency"])
    except ValueError as e:
        got.errors.append(f"frequency: {e}")
        return
    got.changes["frequency"] = frequency
    got.changes["digest_weekday"] = None
    if frequency == "weekly":
        _check(got, lambda: got.changes.update(digest_weekday=check_weekday(v["weekday"])), "day")
    got.changes["paused_until"] = None
    if v["paused_until"]:
        try:
            today = now.astimezone(ZoneInfo(str(got.changes["timezone"]))).date()
        except (ValueError, KeyError):  # the time zone's own error is reported already
            today = now.date()
        _check(
            got,
            lambda: got.changes.update(paused_until=check_pause_until(v["paused_until"], today)),
            "paused until",
        )


def _check(got: UserForm, check: Any, label: str) -> None:
    try:
        check()
    except ValueError as e:
        got.errors.append(f"{label}: {e}")


def _number(got: UserForm, text: str, label: str, low: int, high: int) -> int | None:
    if not text or text == "default":
        return None
    number = as_id(text)
    if other_digits(text):
        got.errors.append(f"{label}: {text!r}: {OTHER_DIGITS}")
        return None
    if number is None or not low <= number <= high:
        got.errors.append(f"{label}: {text!r} is not a number from {low} to {high}")
        return None
    return number


def _subscribers_page(
    console: Console,
    request: Request,
    who: auth.Admin,
    q: str = "",
    page: int = 0,
    sort: str = "name",
    **ctx: Any,
) -> HTMLResponse:
    app = console.app
    now = app.clock()
    total, shown = app.store.people.find(q, offset=page * PAGE, limit=PAGE, order=sort, now=now)
    made = _made_today(app, shown, now)
    rows = [(u, chans, next_digest(app, u, u.id in made, now)) for u, chans in shown]
    return console.render(
        request,
        who,
        "subscribers.html",
        title="Subscribers",
        rows=rows,
        q=q,
        page=page,
        total=total,
        pages=(total + PAGE - 1) // PAGE,
        show=_show,
        form=ctx.pop("form", {}),
        list_query=list_query(q, page, sort),
        sort=sort,
        sorts=SORTS,
        at_page=lambda n: _at_page(q, n, sort),
        default_hour=app.settings.schedule.digest_hour,
        weekdays=WEEKDAYS,
        pause_shown=lambda user: _pause_shown(user, now),
        **ctx,
    )


def _made_today(app: App, shown: list[Subscriber], now: datetime) -> set[int]:
    """Ids of these users whose digest for their local today exists, or who had one made
    since their local midnight (after a move to a zone ahead: the job makes none more that
    day). For a daily subscriber who moved lately, only the latter: their today's date may
    have had its digest made in a zone ahead, before that day began in theirs (the job makes
    that day's, `_moved_west`)."""
    from daemon.jobs import period_for
    from daemon.jobs.digests import made_since_midnight, moved_lately

    periods = {u.id: period_for(u, now) for u, _ in shown if not moved_lately(u, now)}
    mine = {c.id: u.id for u, chans in shown for c in chans if u.id in periods}
    made = app.store.digests.made(set(periods.values()), mine)
    today = {mine[c] for c, p in made if periods[mine[c]] == p}
    return today | made_since_midnight(app, [u for u, _ in shown if u.id not in today], now)


def _show(channel: ChannelRow) -> str:
    return CHANNELS[channel.kind].show(channel.address)


def _subscriber_page(
    console: Console,
    request: Request,
    who: auth.Admin,
    name: str,
    status: int = 200,
    q: str = "",
    page: int = 0,
    sort: str = "name",
    **ctx: Any,
) -> HTMLResponse:
    app = console.app
    now = app.clock()
    user = app.store.people.get(name)
    channels = app.store.people.channels_of(user.id)
    signals = app.store.people.signals([user.id])[user.id]
    email = next((c.address for c in channels if c.kind == ChannelKind.EMAIL), "")
    stored = _stored_form(user, channels, now)
    # the form as stored, or as the admin sent it when it was refused (kept, to correct)
    shown = {**stored, **ctx.pop("form", {})}
    return console.render(
        request,
        who,
        "subscriber.html",
        status,
        title=user.name,
        user=user,
        channels=channels,
        show=_show,
        signals=signals,
        digests=app.store.health.deliveries(user=name, limit=20),
        next_at=next_digest(app, user, user.id in _made_today(app, [(user, channels)], now), now),
        email=email,
        form=shown,
        has_slack=any(c.kind == ChannelKind.SLACK for c in channels),
        default_hour=app.settings.schedule.digest_hour,
        default_picks=app.settings.digest.max_picks,
        weekdays=WEEKDAYS,
        pause_shown=_pause_shown(user, now),
        errors=ctx.pop("errors", []),
        list_query=list_query(q, page, sort),
        back_to_list=_back_to_list(q, page, user.name, sort),
        seen=stored,
        **ctx,
    )


def _stored_form(user: UserRow, channels: list[ChannelRow], now: datetime) -> dict[str, str]:
    """The subscriber's form as stored (the Slack webhook apart: its field is write-only)."""
    return {
        "display_name": user.display_name,
        "email": next((c.address for c in channels if c.kind == ChannelKind.EMAIL), ""),
        "timezone": user.timezone,
        "hour": "" if user.digest_hour is None else str(user.digest_hour),
        "max_picks": "" if user.max_picks is None else str(user.max_picks),
        "frequency": str(user.frequency),
        "weekday": WEEKDAYS[user.digest_weekday] if user.digest_weekday is not None else "",
        "paused_until": _pause_shown(user, now),
    }


LABELS = {"display_name": "display name", "email": "email", "timezone": "time zone",
          "hour": "digest hour", "max_picks": "papers per digest", "frequency": "frequency",
          "weekday": "day", "paused_until": "paused until"}  # fmt: skip


def _pause_shown(user: UserRow, now: datetime) -> str:
    """The pause's last day as the form shows it: empty once it is over."""
    from daemon.jobs.digests import is_paused

    return user.paused_until.isoformat() if user.paused_until and is_paused(user, now) else ""


def _subscriber_routes(router: APIRouter, console: Console, admin: Any, posted: Any) -> None:
    @router.get("/subscribers")
    def subscribers(
        request: Request,
        q: str = "",
        page: PageNumber = 0,
        sort: Sort = "name",
        who: auth.Admin = admin,
    ) -> HTMLResponse:
        return _subscribers_page(console, request, who, q, page, sort)

    @router.post("/subscribers")
    def add(request: Request, form: Posted = posted) -> Response:
        return _add_user(console, request, form)

    @router.post("/subscribers/import")
    async def import_csv(request: Request, who: auth.Admin = admin) -> Response:
        return await _import_upload(console, request, who)

    @router.get("/subscribers/{name}")
    def subscriber(
        request: Request,
        name: str,
        q: str = "",
        page: PageNumber = 0,
        sort: Sort = "name",
        who: auth.Admin = admin,
    ) -> Response:
        try:
            return _subscriber_page(console, request, who, name, q=q, page=page, sort=sort)
        except NotFoundError:
            if name != "import":
                raise
            # the importer's address opened by hand (a refused import reloaded from the
            # address bar): its form, not "no user named 'import'"
            return RedirectResponse("/admin/subscribers#import-csv", status_code=303)

    # the query of the list the subscriber was opened from (list_query) is kept by each action
    @router.post("/subscribers/{name}")
    def edit(
        request: Request,
        name: str,
        q: str = "",
        page: PageNumber = 0,
        sort: Sort = "name",
        form: Posted = posted,
    ) -> Response:
        return _edit_user(console, request, form, name, q, page, sort)

    @router.get("/subscribers/{name}/follow")
    def follow_reloaded(name: str, who: auth.Admin = admin) -> Response:
        # a refused follow's page (it answers the POST) reloaded from the address bar
        return RedirectResponse(f"/admin/subscribers/{quote(name)}#f-value", status_code=303)

    @router.post("/subscribers/{name}/follow")
    def follow(
        request: Request,
        name: str,
        q: str = "",
        page: PageNumber = 0,
        sort: Sort = "name",
        form: Posted = posted,
    ) -> Response:
        return _follow(console, request, form, name, q, page, sort)

    @router.post("/subscribers/{name}/{action}")
    def act(
        name: str,
        action: str,
        q: str = "",
        page: PageNumber = 0,
        sort: Sort = "name",
        form: Posted = posted,
    ) -> Response:
        return _act(console, form, name, action, list_query(q, page, sort))

    @router.get("/subscribers/{name}/preview")
    def preview(request: Request, name: str, who: auth.Admin = admin) -> Response:
        return _preview(console, request, who, name)


def _add_user(console: Console, request: Request, form: Posted) -> Response:
    app = console.app
    got = _read_user_form(form, adding=True)
    if not got.channels and not got.errors:
        got.errors.append(
            "give an email address or a Slack webhook: a digest needs somewhere to go"
        )
    if not got.errors:
        try:
            app.store.people.add(
                got.values["name"],
                app.clock(),
                channels={k: v for k, v in got.channels.items() if v},
                display_name=str(got.changes.get("display_name", "")),
                timezone=str(got.changes["timezone"]),
                digest_hour=got.changes["digest_hour"],  # type: ignore[arg-type]
            )
        except PaperwireError as e:
            # the second request of a double click (the one the browser shows): the first
            # added it, and "already exists" said the add had failed
            if _there_as_given(app, got):
                name = got.values["name"]
                return console.back(
                    f"/admin/subscribers/{name}", f"{name} is there already, as given."
                )
            got.errors.append(str(e))
    name = got.values["name"]
    if got.errors:
        return _subscribers_page(
            console, request, form.admin, status=400, errors=got.errors, form=got.values
        )
    console.audit(form.admin.name, "user added", name)
    return console.back(f"/admin/subscribers/{name}", f"Added {name}.")


def _there_as_given(app: App, got: UserForm) -> bool:
    """Whether the subscriber of this add, refused by the store, exists exactly as the form
    gives it: its handle, channels, display name, time zone and hour."""
    name = got.values["name"]
    try:
        user = app.store.people.get(name)
    except PaperwireError:  # not there
        return False
    channels = {c.kind: c.address for c in app.store.people.channels_of(user.id)}
    return (
        user.name == name
        and channels == {k: v for k, v in got.channels.items() if v}
        and user.display_name == (str(got.changes.get("display_name", "")) or name)
        and user.timezone == got.changes["timezone"]
        and user.digest_hour == got.changes["digest_hour"]
    )


async def _import_upload(console: Console, request: Request, who: auth.Admin) -> Response:
    """A CSV of subscribers uploaded in `who`'s session (checked before): the size announced
    first, a file above the limit refused unread on this page (the bare 413 of any body above
    `MAX_BODY` before); then the form read and its CSRF token checked."""
    length = request.headers.get("content-length", "")
    declared = as_id(length)  # None: not a number, or beyond any upload
    if length and (declared is None or declared > MAX_BODY):
        return await run_in_threadpool(
            _subscribers_page, console, request, who, status=413, import_errors=[TOO_LARGE]
        )
    form = await read_form(request, who)
    upload = form.form.get("file")
    data = await upload.read(MAX_UPLOAD + 1) if isinstance(upload, UploadFile) else b""
    name = upload.filename or "" if isinstance(upload, UploadFile) else ""
    # in a worker thread: 30,000 rows take seconds, and the event loop serves every page
    return await run_in_threadpool(_import_users, console, request, form, data, name)


def _import_users(
    console: Console, request: Request, form: Posted, data: bytes, filename: str
) -> Response:
    from daemon.importing import read_csv

    app = console.app
    if not data:
        errors = ["choose a CSV file first"]
    elif len(data) > MAX_UPLOAD:
        errors = [TOO_LARGE]
    else:
        try:
            read = read_csv(data.decode("utf-8"))
            errors = read.errors
        except UnicodeDecodeError:
            errors = ["the file is not UTF-8 text (save it as CSV UTF-8)"]
    if not errors:
        try:
            added, updated, same = app.store.people.import_many(read.rows, app.clock())
        except ImportRefused as e:
            errors = e.problems
        except PaperwireError as e:
            errors = [str(e)]
    if errors:
        return _subscribers_page(console, request, form.admin, status=400, import_errors=errors)
    console.audit(form.admin.name, "users imported", filename, f"{added} added, {updated} updated")
    return console.back(
        "/admin/subscribers", f"Imported: {added} added, {updated} updated, {same} unchanged."
    )


def _edit_user(
    console: Console,
    request: Request,
    form: Posted,
    name: str,
    q: str = "",
    page: int = 0,
    sort: str = "name",
) -> Response:
    app = console.app
    user = app.store.people.get(name)
    before = app.store.people.channels_of(user.id)
    stored = [c.address for c in before if c.kind == ChannelKind.EMAIL]
    now_stored = _stored_form(user, before, app.clock())
    # the values the page showed (seen.*): those stored since then would be undone in silence
    seen = {k: form.form.get(f"seen.{k}") for k in now_stored}
    meanwhile = [k for k, v in seen.items() if isinstance(v, str) and v != now_stored[k]]
    if meanwhile:
        # opened before another change (a second tab, a colleague, the subscriber's own page)
        values = {k: form.text(k) for k in (*now_stored, "slack", "remove_slack")}
        now_is = "; ".join(f"{LABELS[k]} is now {now_stored[k] or '(empty)'}" for k in meanwhile)
        error = (f"{name} was changed since you opened this page (see the audit log): "
                 f"{now_is}. Your input is kept below: check it and Save again to apply "
                 "it.")  # fmt: skip
        return _subscriber_page(
            console, request, form.admin, name, 409, q, page, sort, errors=[error], form=values
        )
    got = _read_user_form(
        form, adding=False, now=app.clock(), stored_email=next(iter(stored), None)
    )
    if not got.errors:
        try:
            app.store.people.edit(name, app.clock(), changes=got.changes, channels=got.channels)
        except PaperwireError as e:
            got.errors.append(str(e))
    if got.errors:
        return _subscriber_page(
            console, request, form.admin, name, 400, q, page, sort, errors=got.errors,
            form=got.values,
        )  # fmt: skip
    after = app.store.people.get(name)
    changed = audited_changes(user, before, after, app.store.people.channels_of(after.id))
    console.audit(form.admin.name, "user changed", name, changed)
    back = f"/admin/subscribers/{name}{list_query(q, page, sort)}"
    return console.back(back, f"Saved {name}.")


AUDITED = (
    *(("display_name", "display name"), ("timezone", "time zone"), ("digest_hour", "digest hour")),
    *(("max_picks", "papers per digest"), ("frequency", "frequency")),
    *(("digest_weekday", "day"), ("paused_until", "paused until"), ("active", "subscribed")),
)


def audited_changes(
    old: UserRow, old_channels: list[ChannelRow], new: UserRow, new_channels: list[ChannelRow]
) -> str:
    """What an edit changed, for the audit log (the console's and `users set`'s): each setting
    old → new; the email address; a Slack webhook only as set or removed (it is a secret)."""

    def shown(key: str, value: object) -> str:
        if key == "digest_weekday":  # as the pages name it; none: not weekly
            return WEEKDAYS[value] if isinstance(value, int) else "none"
        if value is None:
            return "default"
        if isinstance(value, StrEnum):  # a frequency: its value, not the enum's repr
            return value.value
        return repr(value) if isinstance(value, str) else str(value)

    said = [
        f"{label}: {shown(key, getattr(old, key))} → {shown(key, getattr(new, key))}"
        for key, label in AUDITED
        if getattr(old, key) != getattr(new, key)
    ]
    for kind, label in ((ChannelKind.EMAIL, "email"), (ChannelKind.SLACK, "Slack webhook")):
        was = {c.address for c in old_channels if c.kind == kind}
        now = {c.address for c in new_channels if c.kind == kind}
        if was == now:
            continue
        if kind == ChannelKind.SLACK:
            said.append(f"{label}: {'set' if now else 'removed'}")
        else:
            said.append(
                f"{label}: {', '.join(sorted(was)) or 'none'} → {', '.join(sorted(now)) or 'none'}"
            )
    return "; ".join(said) or "nothing changed"


def _follow(
    console: Console, request: Request, form: Posted, name: str, q: str, page: int, sort: str
) -> Response:
    from daemon.db.models import FollowKind

    app = console.app
    here = f"/admin/subscribers/{name}{list_query(q, page, sort)}"
    kind = FollowKind.AUTHOR if form.text("kind") == "author" else FollowKind.KEYWORD
    try:
        value = check_follow(form.text("value"), str(kind))
    except ValueError as e:  # the page again, what was typed kept and marked; the field named
        said = f"Keyword or author: {e}"
        typed = {"kind": kind.value, "value": form.text("value"), "error": said}
        return _subscriber_page(console, request, form.admin, name, 400, q=q, page=page,
                                sort=sort, follow=typed)  # fmt: skip
    user = app.store.people.get(name)
    app.store.people.set_follow(user.id, kind, value, muted=form.text("muted") == "yes")
    console.audit(form.admin.name, "follow added", name, f"{kind}: {value}")
    return console.back(here, f"{name} follows {kind} {value!r}.")


def _act(console: Console, form: Posted, name: str, action: str, listed: str = "") -> Response:
    """Pause, resume, remove or resend (`listed`: the query of the list it was opened from)."""
    app = console.app
    try:
        user = app.store.people.get(name)
    except NotFoundError:
        if action != "remove":
            raise
        return _removed_already(console, name, listed)
    here = f"/admin/subscribers/{name}{listed}"
    if action in ("pause", "resume"):
        try:
            app.store.people.set_subscribed(user.id, action == "resume", app.clock())
        except PaperwireError as e:
            return console.back(here, str(e), error=True)
        console.audit(form.admin.name, f"user {action}d", name)
        verb = "resumed" if action == "resume" else "paused"
        return console.back(here, f"{name}: digests {verb}.")
    if action == "start-channel":  # one stopped by paperwire (its digests were refused)
        channel = next((c for c in app.store.people.channels_of(user.id)
                        if str(c.id) == form.text("channel")), None)  # fmt: skip
        if channel is None:
            return console.back(here, "That channel is no longer there.", error=True)
        app.store.people.set_channel_active(user.id, channel.id, True, app.clock())
        console.audit(form.admin.name, "channel started", name, channel.kind.value)
        return console.back(here, f"{name}: the {channel.kind.value} channel starts again.")
    if action == "remove":
        return _remove(console, form, name, here, listed)
    if action == "resend":
        digest = as_id(form.text("digest"))
        if digest is None:
            return console.back(here, f"{form.text('digest')!r} is not a digest's id", error=True)
        return _resend(console, form, user, digest, here)
    return console.back(here, f"unknown action {action!r}", error=True)


def _remove(console: Console, form: Posted, name: str, here: str, listed: str) -> Response:
    if form.text("confirm") != "yes":  # the box the browser requires: nothing undoes this
        return console.back(here, f"{name} was not removed: tick “yes, for good” first.",
                            error=True)  # fmt: skip
    try:
        console.app.store.people.remove(name)
    except NotFoundError:  # the two requests of a double click at once: the other removed them
        return _removed_already(console, name, listed)
    console.audit(form.admin.name, "user removed", name)
    return console.back(
        f"/admin/subscribers{listed}", f"Removed {name} with their likes and digests."
    )


def _removed_already(console: Console, name: str, listed: str) -> Response:
    """The second request of a double click on Remove (the one the browser shows): the first
    removed them, and the 404 page "no user named …" said the removal had failed."""
    return console.back(f"/admin/subscribers{listed}", f"{name} is not there (removed already).")


def _resend(console: Console, form: Posted, user: UserRow, digest_id: int, here: str) -> Response:
    app = console.app
    owner = app.store.digests.owner(digest_id)
    if owner is None or owner[0] != user.id:
        return console.back(here, f"digest {digest_id} is not one of {user.name}'s", error=True)
    channel = next((c for c in app.store.people.channels_of(user.id) if c.id == owner[1]), None)
    if channel is None or not channel.active or not user.active:
        # it would be given up at once, as "unsubscribed before delivery"
        return console.back(here, f"digest {digest_id} was not resent: its channel is stopped "
                            "(start it again first)", error=True)  # fmt: skip
    if not app.store.digests.resend(digest_id, app.clock()):
        return console.back(here, f"digest {digest_id} is already waiting to be sent", error=True)
    console.audit(form.admin.name, "digest resent", user.name, str(digest_id))
    return console.back(here, f"Digest {digest_id} queued again; {console.deliver_now()}.")


def _preview(console: Console, request: Request, who: auth.Admin, name: str) -> Response:
    from daemon.jobs.preview import preview as make_preview

    app = console.app
    try:
        made = make_preview(app, name, app.clock())
    except PaperwireError as e:
        return console.render(
            request, who, "message.html", 400, title="No preview", message=str(e),
            link=f"/admin/subscribers/{name}",
        )  # fmt: skip
    return HTMLResponse(made.html, headers=PREVIEW_HEADERS)


PREVIEW_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # the email as it is: inline styles, no script, images only over https
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src https: data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
}


def people_routes(router: APIRouter, console: Console, admin: Any, posted: Any) -> None:
    _feed_routes(router, console, admin, posted)
    _subscriber_routes(router, console, admin, posted)

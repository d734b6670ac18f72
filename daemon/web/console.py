"""The admin's console under /admin, served by `paperwire run`: login, health (with charts),
deliveries and the audit log here; feeds and subscribers in `console_people`, the
configuration form in `console_config`; sessions, CSRF and the login limit in `auth`.

Pages are plain server-rendered HTML (Jinja2, autoescaped) with inline SVG charts: no script
at all, no external asset, under a Content-Security-Policy that allows neither. Every form is
a POST carrying the session's CSRF token; a GET never changes anything. Every action goes to
the audit log with the admin's name. After an action the browser is sent back to the page it
came from (303) with a one-line message in a short-lived signed cookie.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import unquote, urlencode, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeSerializer
from starlette.datastructures import FormData

from daemon.app import App, link_secret
from daemon.checks import as_id
from daemon.db.digests import RESEND_WITHIN
from daemon.web import auth
from daemon.web.charts import Series, bar_chart
from daemon.web.pages import FORM_BODY, Pages

if TYPE_CHECKING:
    from daemon.scheduler import Daemon

CONSOLE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}
FLASH_COOKIE = "paperwire_flash"
HEALTH_DAYS = 14
STATES = ("pending", "postponed", "failed", "sent", "empty")
DELIVERIES_PAGE = 200  # digests a page of the deliveries list
LOGIN_RETRY_AFTER = 10  # seconds, in the Retry-After of a login refused for too many waiting
# a page of a long list (?page=N, from 0): beyond this no list reaches (a 30-digit page number
# overflowed the database's offset); a wrong one gets the 400 page
PageNumber = Annotated[int, Query(ge=0, le=1_000_000)]


class NotLoggedIn(Exception):
    """No live session: GETs go to the login page, POSTs are refused."""


class BadForm(Exception):
    """A POST without the session's CSRF token."""


@dataclass
class Posted:
    """A POSTed console form, its CSRF token checked."""

    admin: auth.Admin
    form: FormData

    def text(self, name: str) -> str:
        value = self.form.get(name)
        return value.strip() if isinstance(value, str) else ""


@dataclass
class Console:
    """What every console page shares."""

    app: App
    pages: Pages
    daemon: Daemon | None
    limiter: auth.LoginLimiter = field(default_factory=auth.LoginLimiter)

    def _flash_signer(self) -> URLSafeSerializer:
        return URLSafeSerializer(link_secret(self.app.settings), salt="paperwire-console-flash")

    def render(
        self,
        request: Request,
        admin: auth.Admin | None,
        template: str,
        status: int = 200,
        **ctx: Any,
    ) -> HTMLResponse:
        flash = None
        raw = request.cookies.get(FLASH_COOKIE)
        if raw:
            try:
                flash = self._flash_signer().loads(raw)
            except BadSignature:
                flash = None
        html = self.pages.env.get_template(f"console/{template}").render(
            admin=admin, csrf=admin.csrf if admin else "", flash=flash, here=request.url.path,
            **ctx,
        )  # fmt: skip
        response = HTMLResponse(html, status_code=status, headers=CONSOLE_HEADERS)
        if raw:
            auth.clear_cookie(self.app, response, FLASH_COOKIE)
        return response

    def back(self, to: str, message: str, *, error: bool = False) -> RedirectResponse:
        """Back to a page (303) with a one-line message."""
        response = RedirectResponse(to, status_code=303, headers=CONSOLE_HEADERS)
        value = self._flash_signer().dumps([message, error])
        auth.set_cookie(self.app, response, FLASH_COOKIE, value, 60)
        return response

    def audit(self, admin: str, action: str, target: str = "", detail: str = "") -> None:
        self.app.store.admin.audit(self.app.clock(), admin, action, target, detail)

    def deliver_now(self) -> str:
        """Start a delivery run now when the scheduler runs; say when it happens."""
        if self.daemon is None:
            return "they go out at the next delivery run"
        self.daemon.deliver_now()
        return "a delivery run has started"

    def next_runs(self) -> dict[str, datetime | None]:
        """The next run of each scheduled job (empty without the scheduler)."""
        if self.daemon is None:
            return {}
        now = self.app.clock()
        return {
            # a scheduler not started yet has no next_run_time: ask the trigger
            job.id: getattr(job, "next_run_time", None) or job.trigger.get_next_fire_time(None, now)
            for job in self.daemon.scheduler.get_jobs()
        }


def install(web: FastAPI, app: App, pages: Pages, daemon: Daemon | None) -> Console:
    """Mount the console on the web app."""
    from daemon.web.console_config import config_routes
    from daemon.web.console_people import people_routes

    console = Console(app, pages, daemon)

    def admin(request: Request) -> auth.Admin:
        found = auth.current_admin(app, request)
        if found is None:
            raise NotLoggedIn()
        return found

    async def posted(request: Request) -> Posted:
        return await read_form(request, admin(request))  # the session first, then the body

    router = APIRouter(prefix="/admin")
    _login_routes(router, console)
    _watch_routes(router, console, Depends(admin), Depends(posted))
    people_routes(router, console, Depends(admin), Depends(posted))
    config_routes(router, console, Depends(admin), Depends(posted))
    web.include_router(router)
    web.add_exception_handler(NotLoggedIn, _not_logged_in(console))
    web.add_exception_handler(BadForm, _bad_form(console))
    return console


async def read_form(request: Request, who: auth.Admin) -> Posted:
    """The form POSTed in `who`'s session (checked before: its body is read only then), its
    CSRF token checked."""
    form = await request.form()
    if not auth.csrf_ok(who.csrf, form.get("csrf")):
        raise BadForm()
    return Posted(who, form)


def _not_logged_in(console: Console) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        if request.method == "GET":  # the login leads back to the page asked for
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            to = "/admin/login" + (f"?{urlencode({'next': path})}" if _back_to(path) else "")
            return RedirectResponse(to, status_code=303, headers=CONSOLE_HEADERS)
        kept = await _kept_form(request)
        if kept is not None and kept.by:  # the login keeps what was typed, to be sent after it
            return _login_form(console, request, 403, kept=kept, title="Not logged in")
        return console.render(
            request, None, "message.html", 403, title="Not logged in",
            message="Your session has ended or you are not logged in: log in again.",
        )  # fmt: skip

    return handle


def _bad_form(console: Console) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        who = auth.current_admin(console.app, request)
        kept = await _kept_form(request) if who is not None else None
        # a tab of an older session of this admin: send it again; never another admin's form
        if who is not None and kept is not None and auth.csrf_of_admin(who.name, kept.by):
            why = ("This form did not carry your session's CSRF token (a tab of an earlier "
                   "session, or a page from elsewhere). ")  # fmt: skip
            return _send_kept(console, request, who, kept, 403, why)
        return console.render(
            request, None, "message.html", 403, title="Form refused",
            message="This form did not come from your console session (its CSRF token is "
            "missing or stale): nothing was changed. Reload the page and try again.",
        )  # fmt: skip

    return handle


@dataclass
class Kept:
    """A console form that arrived without a live session or with an older session's token:
    where it went and what it held (its CSRF token and files left out), to be sent again."""

    to: str
    fields: list[tuple[str, str]]
    files: list[str] = field(default_factory=list)  # its file fields: a file cannot be kept
    by: str = ""  # whose session made its token (auth.csrf_owner): only they may send it

    def back(self) -> str:
        """The page the form was on: its section's page, or the subscriber's (with the query
        of the list it was opened from)."""
        path, _, query = self.to.partition("?")
        parts = path.split("/")  # "", "admin", section, …
        if len(parts) > 3 and parts[2] == "subscribers" and parts[3] != "import":
            return "/".join(parts[:4]) + (f"?{query}" if query else "")
        return "/".join(parts[:3])

    def note(self) -> str:
        again = " Choose the file again before sending it." if self.files else ""
        return ("Your form was not sent: nothing was changed. What you typed is kept; "
                "check it and send it now." + again)  # fmt: skip


KEPT_FIELD = "kept."  # the login form's hidden copies of a kept form's fields
KEPT_TO = "kept_to"
KEPT_BY = "kept_by"
# a body above this is not kept (nor read to be): a console form is a few kilobytes (the
# configuration's, the largest, 4 kB), an upload of subscribers is asked for again anyway, and
# a request without a session must not get its body read, nor written back into the login page
# (1 MB before: now no more than any subscriber page's form)
KEPT_MAX_BYTES = FORM_BODY


async def _kept_form(request: Request) -> Kept | None:
    """The form of this refused POST, when it is one a login may lead back to and came from
    this site: a form another site made the browser send (a forged one, which SameSite keeps
    without the session) is refused as before, never offered to be sent after a login."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not _back_to(path) or _from_elsewhere(request):
        return None
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > KEPT_MAX_BYTES:
        return None
    try:
        form = await request.form()
    except Exception:  # a body that is no form (or cut short): nothing to keep
        return None
    fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str) and k != "csrf"]
    files = [k for k, v in form.multi_items() if not isinstance(v, str)]
    return Kept(path, fields, files, auth.csrf_owner(form.get("csrf")))


def _from_elsewhere(request: Request) -> bool:
    """Whether the browser says this request comes from another site (Sec-Fetch-Site, or an
    Origin other than the console's own address)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:  # what a browser says (its Origin is "null" under no-referrer)
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return False
    # the host only: behind a TLS proxy this side may see http where the browser is at https
    return urlsplit(origin).netloc != request.url.netloc


def _send_kept(
    console: Console,
    request: Request,
    who: auth.Admin,
    kept: Kept,
    status: int = 200,
    why: str = "Your session had ended. ",
) -> HTMLResponse:
    """The page that sends a kept form with this session's token, once the admin says so."""
    return console.render(
        request, who, "kept.html", status, title="Your form was not sent", kept=kept,
        csrf_now=who.csrf, why=why,
    )  # fmt: skip


def _deliveries_page_of(form: Posted) -> str:
    """The page of the deliveries list a Retry or Cancel was pressed on (its state and page)."""
    state = form.text("state") or "pending"
    page = form.text("page")
    query = {"state": state if state in STATES else "pending"}
    if page.isdigit() and 0 < int(page) <= 1_000_000:  # as PageNumber
        query["page"] = page
    return f"/admin/deliveries?{urlencode(query)}"


# ---- login ---------------------------------------------------------------------------------------


def _login_routes(router: APIRouter, console: Console) -> None:
    app = console.app
    # argon2 a few at a time; the others wait here, not in threads, a bounded number of them
    gate = auth.LoginGate(waiting=auth.LOGINS_WAITING)

    @router.get("")
    def home() -> RedirectResponse:
        return RedirectResponse("/admin/health", status_code=303)

    @router.get("/login")
    def login_page(request: Request, next: str = "") -> HTMLResponse:
        if auth.current_admin(app, request) is not None:
            return console.render(request, None, "message.html", title="Logged in",
                                  message="You are logged in.", link="/admin/health")  # fmt: skip
        return _login_form(console, request, then=next)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        name = str(form.get("name") or "").strip().lower()[:64]  # it goes to the audit log
        password = str(form.get("password") or "")
        then = str(form.get("next") or "")
        kept_to = str(form.get(KEPT_TO) or "")
        kept = None
        if kept_to and _back_to(kept_to):
            fields = [(k.removeprefix(KEPT_FIELD), v) for k, v in form.multi_items()
                      if k.startswith(KEPT_FIELD) and k != f"{KEPT_FIELD}csrf"
                      and isinstance(v, str)]  # fmt: skip
            files = [v for v in form.getlist("kept_files") if isinstance(v, str)]
            kept = Kept(kept_to, fields, files, str(form.get(KEPT_BY) or ""))
        if not auth.csrf_ok(request.cookies.get(auth.LOGIN_COOKIE, ""), form.get("token")):
            if auth.LOGIN_COOKIE not in request.cookies and auth.cookies_refused(app, request):
                # "reload and try again" would never help: say what does
                base = str(app.settings.server.base_url).rstrip("/")
                return _login_form(console, request, 400, "Your browser keeps no cookie of "
                                   "the console at this plain http address (they are Secure: "
                                   f"server.base_url is {base}). Open the console at "
                                   f"{base}/admin.", name, then, kept)  # fmt: skip
            raise BadForm()
        ip = request.client.host if request.client else "?"
        device = auth.device_of(app, request, name)
        locked = console.limiter.locked(app, ip, name, device)
        if locked is not None:  # refused before the queue: a locked-out login takes no place
            return await run_in_threadpool(
                _locked_out, console, request, locked, name, ip, then, kept
            )
        # argon2 and the audit log's write: in a worker thread, not on the event loop
        async with gate.turn(auth.client_key(ip), known=device is not None) as admitted:
            if not admitted:  # too many waiting, or this address holds its share of places:
                # answered at once, nothing checked or counted
                busy = _login_form(console, request, 503, "The console is busy checking "
                                   "other logins: try again in a few seconds.", name, then,
                                   kept)  # fmt: skip
                busy.headers["Retry-After"] = str(LOGIN_RETRY_AFTER)
                return busy
            return await run_in_threadpool(
                _try_login, console, request, name, password, ip, then, kept
            )

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        form = await request.form()
        return await run_in_threadpool(_log_out, console, request, form.get("csrf"))


def _log_out(console: Console, request: Request, csrf: object) -> Response:
    who = auth.current_admin(console.app, request)
    if who is None:  # the session has ended already (expired overnight): nothing to refuse
        response = console.back("/admin/login", "You are logged out.")
        auth.clear_cookie(console.app, response, auth.SESSION_COOKIE)
        return response
    if not auth.csrf_ok(who.csrf, csrf):
        raise BadForm()
    console.audit(who.name, "logged out")
    response = console.back("/admin/login", "You are logged out.")
    auth.close_session(console.app, request, response)
    return response


def _back_to(path: str) -> bool:
    """Whether a login may lead to this path: a console page of this site, none else."""
    route = path.split("?", 1)[0]
    dots = any(part in (".", "..") for part in unquote(route).split("/"))  # /admin/../me/…
    return (
        path.startswith("/admin/")
        and not path.startswith("/admin/log")
        and "\\" not in path
        and not dots
    )


def _login_form(
    console: Console,
    request: Request,
    status: int = 200,
    error: str = "",
    name: str = "",
    then: str = "",
    kept: Kept | None = None,
    title: str = "Log in",
) -> HTMLResponse:
    import secrets

    # the browser's token, while it has one: a second login tab took a new one, and the
    # first tab's form was then refused ("Form refused … reload the page")
    token = request.cookies.get(auth.LOGIN_COOKIE) or secrets.token_urlsafe(24)
    response = console.render(
        request, None, "login.html", status, title=title, token=token, error=error, name=name,
        closed=not console.app.settings.admin.passwords, then=then if _back_to(then) else "",
        kept=kept, kept_field=KEPT_FIELD, kept_to=KEPT_TO, kept_by=KEPT_BY,
    )  # fmt: skip
    auth.set_cookie(console.app, response, auth.LOGIN_COOKIE, token, 3600)
    return response


def _try_login(
    console: Console,
    request: Request,
    name: str,
    password: str,
    ip: str,
    then: str = "",
    kept: Kept | None = None,
) -> Response:
    app, limiter = console.app, console.limiter
    device = auth.device_of(app, request, name)
    locked, attempt = limiter.attempt(app, ip, name, device)
    if locked is not None:
        return _locked_out(console, request, locked, name, ip, then, kept)
    hashed = app.settings.admin.passwords.get(name)  # read once: checked and stamped
    if not name or hashed is None or not auth.check_password(password, hashed):
        if hashed is None:  # an unknown name costs the same time
            auth.check_password(password, None)
        who, detail = _audited(app, name)
        console.audit(who, "login failed", ip, detail)  # counted by `attempt` already
        return _login_form(console, request, 401, "Wrong name or password.", name, then, kept)
    limiter.succeeded(ip, name, attempt, device)
    console.audit(name, "logged in", ip)
    response: Response
    if kept is not None and not auth.csrf_of_admin(name, kept.by):
        # another admin's form (their session ended at this browser): never theirs to send
        response = console.back(
            "/admin/health", "The form kept at the login was another admin's: it was not "
            "sent, and is not offered to you.", error=True,
        )  # fmt: skip
        auth.open_session(app, response, name, hashed)
    elif kept is not None:  # the form the session's end refused: shown, sent when the admin says
        response = HTMLResponse("")
        csrf = auth.open_session(app, response, name, hashed)
        page = _send_kept(console, request, auth.Admin(name, csrf), kept)
        page.raw_headers += [h for h in response.raw_headers if h[0] == b"set-cookie"]
        response = page
    else:
        to = then if _back_to(then) else "/admin/health"
        response = RedirectResponse(to, status_code=303, headers=CONSOLE_HEADERS)
        auth.open_session(app, response, name, hashed)
    auth.clear_cookie(app, response, auth.LOGIN_COOKIE)
    auth.set_device_cookie(app, response, name, hashed)  # this browser is known for `name` now
    return response


def _audited(app: App, name: str) -> tuple[str, str]:
    """Who a refused login is audited as, and the entry's detail: the name typed when it is
    an admin's; "?" for any other, the name not written (it may be a password typed into the
    name field: the audit log showed it to every admin)."""
    if name in app.settings.admin.passwords:
        return name, ""
    return "?", "no admin of that name"


def _locked_out(
    console: Console,
    request: Request,
    locked: auth.Lockout,
    name: str,
    ip: str,
    then: str,
    kept: Kept | None,
) -> HTMLResponse:
    """The login page refusing a locked login; the lockout's first refusal is audited."""
    now = console.app.clock()
    minutes = max(1, math.ceil((locked.until - now).total_seconds() / 60))
    if locked.for_name:
        action = "login refused: too many failures for this name"
        error = (f"Too many failed logins for this name: try again in {minutes} minute(s), or "
                 "from a browser where you logged in before.")  # fmt: skip
    else:
        action = "login refused: locked out"
        error = f"Too many failed logins: try again in {minutes} minute(s)."
    if console.limiter.first_refusal(locked, now):  # once a lockout
        who, detail = _audited(console.app, name)
        console.audit(who, action, ip, detail)
    return _login_form(console, request, 429, error, name, then, kept)


# ---- health, deliveries, audit log ---------------------------------------------------------------


def _watch_routes(router: APIRouter, console: Console, admin: Any, posted: Any) -> None:
    app = console.app

    @router.get("/health")
    def health(request: Request, who: auth.Admin = admin) -> HTMLResponse:
        from daemon.status import feed_outcome, status

        now = app.clock()
        declared = [f.name for f in app.settings.feeds if f.enabled]
        report = status(app.store, now, HEALTH_DAYS, app.settings.schedule, declared)
        return console.render(
            request, who, "health.html", title="Health", report=report, charts=_charts(report),
            outcome=feed_outcome, runs=console.next_runs(), schedule=app.settings.schedule,
            now=now,
        )  # fmt: skip

    @router.get("/deliveries")
    def deliveries(
        request: Request, state: str = "pending", page: PageNumber = 0, who: auth.Admin = admin
    ) -> Response:
        from daemon.db.models import DigestState

        state = state if state in STATES else "pending"
        health = app.store.health
        limit, offset = DELIVERIES_PAGE, page * DELIVERIES_PAGE
        if state == "postponed":
            rows = health.deliveries(postponed_only=True, limit=limit, offset=offset)
        else:
            rows = health.deliveries([DigestState(state)], limit=limit, offset=offset)
        counts = health.counts()
        # the pending list holds the postponed digests too (pending, held back)
        total = counts.get(state, 0) + (counts["postponed"] if state == "pending" else 0)
        # the failed list offers to resend an outage's: how many would go, how many would not
        resendable = app.store.digests.failed_to_resend(app.clock()) if state == "failed" else None
        return console.render(
            request, who, "deliveries.html", title="Deliveries", rows=rows, state=state,
            states=STATES, counts=counts, page=page, total=total, first=page * DELIVERIES_PAGE,
            pages=(total + DELIVERIES_PAGE - 1) // DELIVERIES_PAGE, resendable=resendable,
            resend_days=RESEND_WITHIN.days,
        )  # fmt: skip

    @router.post("/deliveries/retry")
    def retry(form: Posted = posted) -> Response:
        ids = _ids(app, form)
        changed = app.store.digests.retry_now(ids, app.clock())
        console.audit(form.admin.name, "deliveries retried", ",".join(map(str, changed)))
        when = console.deliver_now() if changed else ""
        return console.back(
            _deliveries_page_of(form),
            f"{len(changed)} digest(s) due now; {when}" if changed else "Nothing to retry.",
        )

    @router.post("/deliveries/resend-failed")
    def resend_failed(form: Posted = posted) -> Response:
        return _resend_failed(console, form)

    @router.post("/deliveries/cancel")
    def cancel(form: Posted = posted) -> Response:
        changed = app.store.digests.cancel(_ids(app, form), form.admin.name)
        console.audit(form.admin.name, "deliveries cancelled", ",".join(map(str, changed)))
        return console.back(
            _deliveries_page_of(form),
            f"{len(changed)} digest(s) cancelled." if changed else "Nothing to cancel.",
        )

    @router.get("/audit")
    def audit_log(request: Request, page: PageNumber = 0, who: auth.Admin = admin) -> HTMLResponse:
        rows = app.store.admin.audit_log(limit=100, offset=100 * page)
        return console.render(request, who, "audit.html", title="Audit log", rows=rows,
                              page=page)  # fmt: skip


def _resend_failed(console: Console, form: Posted) -> Response:
    """The failed digests of an outage queued again (made within `RESEND_WITHIN`, not those
    cancelled nor those of a stopped channel), once the box that says how many is ticked;
    audited once, with how many."""
    back = _deliveries_page_of(form)
    shown = as_id(form.text("count"))  # what the page said: a number, or nothing to repeat
    if form.text("confirm") != "yes":  # the box the browser requires
        return console.back(back, "Nothing was resent: tick “yes, resend them” first.",
                            error=True)  # fmt: skip
    now, digests = console.app.clock(), console.app.store.digests
    n = digests.resend_failed(now)
    left = digests.failed_to_resend(now).left()  # "3 more left failed: 2 cancelled by …"
    if not n:  # the second request of a double click: the first queued them
        return console.back(back, f"No failed digest to resend ({left or 'queued again already'})."
                            )  # fmt: skip
    console.audit(form.admin.name, "failed digests resent", "", f"{n} digest(s)")
    differs = (
        f" (the page said {shown}: the failed ones changed meanwhile)"
        if shown is not None and shown != n
        else ""
    )
    return console.back(back, f"{n} failed digest(s) queued again{differs}; "
                        f"{left + '; ' if left else ''}{console.deliver_now()}.")  # fmt: skip


def _ids(app: App, form: Posted) -> list[int]:
    """The digest ids of a deliveries form (`id` fields, or every postponed one)."""
    if form.text("all") == "postponed":
        return [d.id for d in app.store.health.deliveries(postponed_only=True, limit=100_000)]
    ids = (as_id(v) for v in form.form.getlist("id") if isinstance(v, str))
    return [i for i in ids if i is not None]


def _charts(report: Any) -> dict[str, Any]:
    days = [d.day for d in report.days]
    return {
        "papers": bar_chart(
            "New papers per day", days,
            [Series("papers", [d.papers for d in report.days], "#0969da")], ident="chart-papers",
        ),
        "digests": bar_chart(
            "Digests per day", days,
            [
                Series("sent", [d.sent for d in report.days], "#1f883d"),
                Series("failed", [d.failed for d in report.days], "#cf222e"),
                Series("pending", [d.pending for d in report.days], "#8c959f"),
                Series("postponed", [d.postponed for d in report.days], "#bf8700"),
            ],
            ident="chart-digests",
        ),
        "people": bar_chart(
            "Feedback and unsubscribes per day", days,
            [
                Series("likes/dislikes", [d.feedback for d in report.days], "#8250df"),
                Series("unsubscribes", [d.unsubscribes for d in report.days], "#bc4c00"),
            ],
            ident="chart-people",
        ),
    }  # fmt: skip


def local_time(t: datetime | None) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if t else "—"


def ago(t: datetime | None, now: datetime) -> str:
    if t is None:
        return "never"
    seconds = (now - t).total_seconds()
    if seconds < 90:
        return "just now"
    if seconds < 5400:
        return f"{seconds // 60:.0f} min ago"
    if seconds < timedelta(days=2).total_seconds():
        return f"{seconds // 3600:.0f} h ago"
    return f"{seconds // 86400:.0f} days ago"

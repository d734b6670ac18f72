"""The FastAPI app `paperwire run` serves: shared page rendering, security headers, and the
exception handlers that answer with a page, never a traceback or JSON: a bad or stale link, a
console page of something that does not exist (404), an unknown address (404), a query that
is not valid (400), and a bug (500, the traceback in the log)."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from daemon.app import App
from daemon.db.engine import database_trouble
from daemon.errors import NotFoundError, SubscriberGone
from daemon.logs import cause
from daemon.web.links import BadLink
from notifications.render import arxiv_pdf_url, shown_title

if TYPE_CHECKING:
    from daemon.scheduler import Daemon

log = logging.getLogger("paperwire.web")

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    # the pages hold no script at all: a page that needs one to work would pretend to have
    # done something while a reader without JavaScript (or a scanner) sees it undone
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",  # export.json and likes.bib are read as what they are
}


def see_other(path: str) -> RedirectResponse:
    """After a POST, the page of its result (303, a GET, with the pages' headers): reloading
    it or coming back to it never sends the POST again."""
    return RedirectResponse(path, status_code=303, headers=SECURITY_HEADERS)


class Pages:
    """Renders the HTML templates (autoescaped: feed text is untrusted)."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("daemon.web", "templates"),
            autoescape=select_autoescape(default=True),
        )
        # paper titles as the digest shows them: LaTeX as readable Unicode ($\omega$ → ω), and
        # "(untitled)" when nothing readable is left
        self.env.filters["readable"] = shown_title
        self.env.filters["pdf_url"] = arxiv_pdf_url

    def render(self, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(**ctx)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


# No request body beyond this is read: above the largest upload (the console's CSV, 20 MB). The
# pages' forms are read whole into memory before their token is checked, so a gigabyte posted
# to a link's address would have been held whole.
MAX_BODY = 21_000_000
# and beyond this on the subscriber pages (every address but the console's and the library
# upload's): their forms hold a few fields (a follow, the settings, an RFC 8058 one-click);
# a body up to `MAX_BODY` was read there before its link or token was checked
FORM_BODY = 100_000
# the console's login: its few fields and a form kept at the end of a session (at most
# `FORM_BODY`, console.KEPT_MAX_BYTES), whose fields the browser encodes again (%C3%A9 for é:
# up to three bytes a byte). It was read up to `MAX_BODY` without any session; the logout,
# whose form is one field, too
LOGIN_BODY = 4 * FORM_BODY
_UPLOAD = re.compile(r"/me/[^/]+/import")  # its link and declared size checked before reading
# the uploads whose routes refuse a size announced above their limit themselves, unread, with a
# page that says the limit (after the link or the session is checked): the middleware lets
# them through, and counts what is read as for any
_SIZED = re.compile(r"/admin/subscribers/import|/me/[^/]+/import")
_TOO_LARGE = (
    b"<!doctype html><title>Too large</title><p>This request is too large: nothing was read."
)


def body_limit(path: str) -> int:
    """The largest body read for a request of `path`: `MAX_BODY` for the console (but its
    login and logout, read before any session) and the library upload, `FORM_BODY` for every
    other page."""
    if path == "/admin/login":
        return LOGIN_BODY
    if path == "/admin/logout":
        return FORM_BODY
    if path == "/admin" or path.startswith("/admin/") or _UPLOAD.fullmatch(path):
        return MAX_BODY
    return FORM_BODY


class _BodyLimit:
    """ASGI middleware: a body announced above its path's `body_limit` is answered 413 unread;
    one that grows beyond it while read (no Content-Length) ends as a client gone."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit and not _SIZED.fullmatch(scope["path"]):
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [
                        (b"content-type", b"text/html; charset=utf-8"),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _TOO_LARGE})
            return
        read = 0

        async def counted() -> Any:
            nonlocal read
            message = await receive()
            read += len(message.get("body", b""))
            return {"type": "http.disconnect"} if read > limit else message

        await self.app(scope, counted, send)


class _HeadAsGet:
    """ASGI middleware: a HEAD request gets the GET's answer without its body (RFC 9110
    §9.3.2). FastAPI routes a GET route's HEAD nowhere (405): link scanners send HEAD before
    following a digest's links. A GET changes nothing here, so neither does a HEAD."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Any) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)


def make_web(app: App, daemon: Daemon | None = None) -> FastAPI:
    """The web app: the pages behind the digest's links, /healthz; with the daemon (`paperwire
    run`) also the console under /admin and /metrics."""
    from daemon.web.feedback import feedback_routes

    pages = Pages()
    web = FastAPI(title="paperwire", docs_url=None, redoc_url=None, openapi_url=None)
    web.add_middleware(_BodyLimit)
    web.add_middleware(_HeadAsGet)
    _error_pages(web, pages, app)
    _gone(web, pages, app)

    @web.get("/healthz")
    def healthz() -> JSONResponse:
        try:
            papers = app.store.papers.count()
        except SQLAlchemyError:  # an outage, not a bug: a monitor's answer
            return JSONResponse({"ok": False, "error": "database unavailable"}, status_code=503)
        return JSONResponse({"ok": True, "papers": papers})

    web.include_router(feedback_routes(app, pages))
    from daemon.web.subscriber import subscriber_routes

    web.include_router(subscriber_routes(app, pages))
    from daemon.web.signup import signup_routes

    web.include_router(signup_routes(app, pages))
    from daemon.web.console import ago, install, local_time

    pages.env.globals.update(when=local_time, ago=ago)
    install(web, app, pages, daemon)
    if daemon is not None:
        metrics = daemon.metrics

        @web.get("/metrics")
        def prometheus() -> Response:
            from daemon.metrics import CONTENT_TYPE

            return Response(metrics.render(), media_type=CONTENT_TYPE)

    return web


def _page_above(request: Request) -> str | None:
    """The nearest address above the request's that a GET is served at (/me/TOKEN for
    /me/TOKEN/settings, /admin/subscribers for /admin/subscribers/import), or None."""
    path = request.url.path.rstrip("/")
    while path.count("/") > 1:
        path = path.rsplit("/", 1)[0]
        scope = {"type": "http", "path": path, "root_path": "", "method": "GET"}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            return path
    return None


def _gone(web: FastAPI, pages: Pages, app: App) -> None:
    """The page of a link of an account deleted since (`SubscriberGone`): `/manage` mails it
    nothing, so not "ask for a fresh link" (a link not valid) but how to subscribe again."""

    async def gone(request: Request, exc: Exception) -> HTMLResponse:
        return pages.render(
            "error.html",
            400,
            title="This account was deleted",
            heading="This account was deleted",
            message="The paperwire account this link was made for no longer exists: it was "
            "deleted (by its owner, or by the person who runs paperwire) with its likes, "
            "settings and digests. Nothing is sent to it anymore, and no new link to its page "
            "can be mailed.",
            gone=True,
            signup=app.settings.server.signup == "open",
        )

    web.add_exception_handler(SubscriberGone, gone)


class _Outages:
    """The pages' database errors that are the database's trouble (`database_trouble`; any other
    is raised again, to be a bug's page): the first logged with its traceback (on SQLite a schema's
    fault, "no such table", is an OperationalError too, and must not pass for an outage
    unseen), the same one again (the database still down) in one line with the number of
    pages it refused, until the database takes a new connection again."""

    def __init__(self, app: App) -> None:
        self.last, self.count = "", 0
        sa.event.listen(app.store.engine, "connect", self._back)

    def _back(self, *_: Any) -> None:
        self.last, self.count = "", 0

    def log(self, route: str, exc: Exception) -> None:
        if not database_trouble(exc):  # a value refused, a bug: `bug`'s page, and logged
            raise exc
        error = cause(exc)
        self.count = self.count + 1 if error == self.last else 1
        self.last = error
        if self.count == 1:
            log.error("database error on a page", extra={"route": route}, exc_info=exc)
        else:  # its traceback is above
            again = {"route": route, "error": error, "failed_requests": self.count}
            log.error("database error on a page", extra=again)


async def _client_gone(request: Request, exc: Exception) -> Response:
    """A form's client gone before it was sent whole (or it grew beyond `body_limit`): no bug,
    and no traceback in the log (anyone could write one a request); an answer to no one."""
    return Response(status_code=400, headers={"Connection": "close"})


def _error_pages(web: FastAPI, pages: Pages, app: App) -> None:
    """A page for every error, never a traceback or JSON."""
    outages = _Outages(app)

    def page(status: int, heading: str, message: str, **ctx: Any) -> HTMLResponse:
        return pages.render("error.html", status, title=heading, heading=heading, message=message,
                            **ctx)  # fmt: skip

    async def bad_link(request: Request, exc: Exception) -> HTMLResponse:
        return page(400, "Link not valid", str(exc), bad_link=True)

    async def not_found(request: Request, exc: Exception) -> HTMLResponse:
        if request.url.path.startswith("/admin"):  # a subscriber or feed that is not there
            return page(404, "Not found", str(exc))
        return await bad_link(request, exc)  # a paper, a channel no longer there (deleted
        # subscribers: `_gone`)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405 and request.method in ("GET", "HEAD"):
            # an address a form posts to, opened in the address bar (a refused form's page
            # reloaded by Enter): the page the form is on
            above = _page_above(request)
            if above is not None:
                return RedirectResponse(above, status_code=303)
        if exc.status_code == 404:
            response = page(404, "Page not found", "There is no page at this address.")
        else:
            response = page(exc.status_code, HTTPStatus(exc.status_code).phrase, str(exc.detail))
        response.headers.update(exc.headers or {})  # e.g. 405's Allow
        return response

    async def bad_query(request: Request, exc: Exception) -> HTMLResponse:
        assert isinstance(exc, RequestValidationError)
        wrong = "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in exc.errors())
        return page(400, "Bad request", f"The address holds a value that is not valid ({wrong}).")

    async def outage(request: Request, exc: Exception) -> HTMLResponse:
        # the route, not the address: a page's address holds its link's token (a key to it)
        outages.log(getattr(request.scope.get("route"), "path", "?"), exc)
        return page(503, "Not available just now",
                    "The database cannot be reached just now; nothing was changed. Try again in "
                    "a few minutes.")  # fmt: skip

    async def bug(request: Request, exc: Exception) -> HTMLResponse:
        # Starlette raises the exception again after this page is sent: the server logs it
        return page(500, "Something went wrong",
                    "This is a bug; it is in the server's log. Try again later, or tell the person "
                    "who runs paperwire what you did.")  # fmt: skip

    web.add_exception_handler(BadLink, bad_link)
    web.add_exception_handler(NotFoundError, not_found)
    web.add_exception_handler(HTTPException, http_error)
    web.add_exception_handler(RequestValidationError, bad_query)
    # the database out of reach, a connection lost, the pool out of connections
    web.add_exception_handler(SQLAlchemyError, outage)
    web.add_exception_handler(ClientDisconnect, _client_gone)
    web.add_exception_handler(Exception, bug)

"""The FastAPI app `paperwire run` serves: shared page rendering, security headers, and one
exception handler that turns a bad or stale link into a friendly page."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from daemon.app import App
from daemon.errors import NotFoundError
from daemon.web.links import BadLink
from notifications.render import arxiv_pdf_url, shown_title

if TYPE_CHECKING:
    from daemon.scheduler import Daemon

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    # the pages hold no script at all: a page that needs one to work would pretend to have
    # done something while a reader without JavaScript (or a scanner) sees it undone
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


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


def make_web(app: App, daemon: Daemon | None = None) -> FastAPI:
    """The web app: the pages behind the digest's links, /healthz; with the daemon (`paperwire
    run`) also the console under /admin and /metrics."""
    from daemon.web.feedback import feedback_routes

    pages = Pages()
    web = FastAPI(title="paperwire", docs_url=None, redoc_url=None, openapi_url=None)

    async def bad_link(request: Request, exc: Exception) -> HTMLResponse:
        return pages.render(
            "error.html", 400, title="Link not valid", heading="Link not valid", message=str(exc)
        )

    web.add_exception_handler(BadLink, bad_link)
    web.add_exception_handler(NotFoundError, bad_link)

    @web.get("/healthz")
    def healthz() -> JSONResponse:
        return JSONResponse({"ok": True, "papers": app.store.papers.count()})

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

"""The web app behind the links in digests: like, dislike, unsubscribe (FastAPI).

A GET never changes state (mail scanners follow links): it shows a page whose form POSTs. For
likes and dislikes the page submits itself with a line of JavaScript, so it is one click for a
person; an unsubscribe waits for a press of the button, and mail clients use the RFC 8058
one-click POST (`List-Unsubscribe-Post`) on the same URL.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from daemon.app import App
from daemon.errors import NotFoundError
from daemon.links import BadLink, LinkAction
from daemon.store import PaperRow
from notifications.render import safe_url


def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("daemon", "web_templates"),
        autoescape=select_autoescape(default=True),
    )


def make_web(app: App) -> FastAPI:
    env = _templates()
    web = FastAPI(title="paperwire", docs_url=None, redoc_url=None, openapi_url=None)

    def page(name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        html = env.get_template(name).render(**ctx)
        return HTMLResponse(
            html,
            status_code=status,
            headers={
                "Cache-Control": "no-store",
                "X-Frame-Options": "DENY",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                "script-src 'unsafe-inline'; form-action 'self'",
            },
        )

    def bad_link(message: str) -> HTMLResponse:
        return page(
            "error.html", 400, title="Link not valid", heading="Link not valid", message=message
        )

    def resolve(token: str, expected: tuple[str, ...]) -> tuple[LinkAction, PaperRow | None]:
        action = app.links.read(token)
        if action.action not in expected:
            raise BadLink("this link is not valid here")
        if app.store.user_by_id(action.user_id) is None:
            raise NotFoundError("this subscriber no longer exists")
        paper = None
        if action.paper_id is not None:
            rows = app.store.papers_by_ids([action.paper_id])
            if action.paper_id not in rows:
                raise NotFoundError("this paper is no longer stored")
            # feed text is untrusted: a `javascript:` link must never become a live <a href>
            paper = replace(rows[action.paper_id], url=safe_url(rows[action.paper_id].url) or "")
        return action, paper

    @web.get("/healthz")
    def healthz() -> JSONResponse:
        return JSONResponse({"ok": True, "papers": app.store.count_papers()})

    @web.get("/f/{token}")
    def feedback_page(token: str) -> HTMLResponse:
        try:
            action, paper = resolve(token, ("like", "dislike"))
        except (BadLink, NotFoundError) as e:
            return bad_link(str(e))
        liking = action.action == "like"
        return page(
            "confirm.html",
            title="More like this" if liking else "Less like this",
            heading="More papers like this one?" if liking else "Fewer papers like this one?",
            button="👍 Yes, more like this" if liking else "👎 Yes, fewer like this",
            paper=paper,
            autosubmit=True,
        )

    @web.post("/f/{token}")
    def feedback(token: str) -> HTMLResponse:
        try:
            action, paper = resolve(token, ("like", "dislike"))
        except (BadLink, NotFoundError) as e:
            return bad_link(str(e))
        assert paper is not None
        value = 1 if action.action == "like" else -1
        app.store.set_feedback(action.user_id, paper.id, value, app.clock())
        return page(
            "done.html",
            title="Thanks",
            heading="Thanks — noted." if value > 0 else "Got it — fewer like this.",
            paper=paper,
            message="Tomorrow's digest takes this into account.",
            undo_url=f"/f/{token}/undo",
            undo_label="Undo",
        )

    @web.post("/f/{token}/undo")
    def undo_feedback(token: str) -> HTMLResponse:
        try:
            action, paper = resolve(token, ("like", "dislike"))
        except (BadLink, NotFoundError) as e:
            return bad_link(str(e))
        assert paper is not None
        app.store.set_feedback(action.user_id, paper.id, 0, app.clock())
        return page("done.html", title="Undone", heading="Undone.", paper=paper, message="")

    @web.get("/unsubscribe/{token}")
    def unsubscribe_page(token: str) -> HTMLResponse:
        try:
            resolve(token, ("unsubscribe",))
        except (BadLink, NotFoundError) as e:
            return bad_link(str(e))
        return page(
            "confirm.html",
            title="Unsubscribe",
            heading="Stop receiving paperwire digests?",
            button="Unsubscribe",
            paper=None,
            autosubmit=False,
        )

    @web.post("/unsubscribe/{token}")
    async def unsubscribe(token: str, request: Request) -> HTMLResponse:
        await request.body()  # RFC 8058 sends "List-Unsubscribe=One-Click"; any POST will do
        try:
            action, _ = resolve(token, ("unsubscribe",))
        except (BadLink, NotFoundError) as e:
            return bad_link(str(e))
        app.store.set_subscribed(action.user_id, False, app.clock())
        return page(
            "done.html",
            title="Unsubscribed",
            heading="You are unsubscribed.",
            paper=None,
            message="You will receive no more digests.",
            undo_url=f"/unsubscribe/{token}/undo",
            undo_label="Subscribe again",
        )

    @web.post("/unsubscribe/{token}/undo")
    def resubscribe(token: str) -> HTMLResponse:
        try:
            action, _ = resolve(token, ("unsubscribe",))
        except (BadLink, NotFoundError) as e:
            return bad_link(str(e))
        app.store.set_subscribed(action.user_id, True, app.clock())
        return page(
            "done.html", title="Subscribed", heading="Welcome back.", paper=None, message=""
        )

    return web

"""Self-signup (`server.signup = "open"`; closed by default), with double opt-in: `/signup`
takes an address (limited to `server.signup_domains` when set) and mails it a confirmation
link; only that link's page, with a press of its button, makes the subscriber, who then lands
on their own page. The answer is the same whether the address is known or not (a known
address is mailed a link to its page instead), limited per address and per client address
like `/manage`."""

from __future__ import annotations

import re

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse, Response

from daemon.app import App
from daemon.channels import parse_email
from daemon.db.models import ChannelKind
from daemon.errors import NotFoundError, PaperwireError
from daemon.web.pages import Pages, see_other
from daemon.web.subscriber import (
    REQUESTS_PER_ADDRESS,
    REQUESTS_PER_CLIENT,
    AskingForm,
    RequestLimiter,
    client_of,
    send_manage_link,
    send_notice,
)
from notifications.mailbox import ascii_domain

SIGNUP_LINK_HOURS = 48


def domain_allowed(app: App, address: str) -> bool:
    """Whether sign-up is open to the address's domain (`server.signup_domains`, kept in
    ASCII: `jörg@bücher.example` is at `xn--bcher-kva.example`)."""
    domains = app.settings.server.signup_domains
    return not domains or ascii_domain(address.rpartition("@")[2].lower()) in domains


def send_signup_link(app: App, address: str) -> None:
    text = (
        "Hello,\n\n"
        "Someone (we hope you) asked to receive a daily digest of new research papers from "
        "paperwire at this address. To start it, open this link and press its button:\n\n"
        f"{app.links.signup_url(address, app.clock())}\n\n"
        f"The link works for {SIGNUP_LINK_HOURS} hours. If you did not ask for it, ignore this "
        "message: nothing is sent to you unless the link is confirmed.\n"
    )
    send_notice(app, address, "Confirm your paperwire digest", text)


def new_handle(app: App, address: str) -> str:
    """A free user name from the address's local part ("ada.l", "ada.l-2", …)."""
    base = re.sub(r"[^\w.-]+", "-", address.partition("@")[0]).strip(".-")[:56] or "user"
    if not re.match(r"\w", base):
        base = "u" + base
    names = app.store.people.names_from(base)  # lowered
    name, n = base, 1
    while name.lower() in names:
        n += 1
        name = f"{base}-{n}"
    return name


def _closed(app: App, pages: Pages) -> HTMLResponse | None:
    """The page that says sign-up is closed (404), when it is."""
    if app.settings.server.signup == "open":
        return None
    return pages.render(
        "error.html",
        404,
        title="Sign-up is closed",
        heading="Sign-up is closed",
        message="Ask the person who runs paperwire for your lab to add you.",
    )


def signup_routes(app: App, pages: Pages) -> APIRouter:
    router = APIRouter()
    _ask_routes(router, app, pages)
    _confirm_routes(router, app, pages)
    return router


def _ask_routes(router: APIRouter, app: App, pages: Pages) -> None:
    limiter = RequestLimiter()

    def form(
        request: Request,
        status: int = 200,
        error: str = "",
        sent: bool = False,
        address: str = "",
        *,
        invalid: bool = False,
    ) -> Response:
        """`address`: the one typed, kept; `invalid`: the `error` is about it (the field is
        marked, and described by the error)."""
        asking = AskingForm(app, request)
        return asking.give(pages.render(
            "signup.html",
            status,
            title="Subscribe",
            error=error,
            invalid=invalid,
            address=address,
            sent=sent,
            csrf=asking.token,
            domains=app.settings.server.signup_domains,
            hours=SIGNUP_LINK_HOURS,
        ))  # fmt: skip

    @router.get("/signup")
    def signup_form(request: Request, sent: bool = False) -> Response:
        if (shut := _closed(app, pages)) is not None:
            return shut
        # sent: the answer to the POST below, on a page of its own
        return form(request, sent=sent)

    @router.post("/signup")
    async def signup(request: Request, tasks: BackgroundTasks) -> Response:
        if (shut := _closed(app, pages)) is not None:
            return shut
        posted = await request.form()
        raw = str(posted.get("email") or "")
        if refused := AskingForm(app, request).refusal(posted):
            return form(request, 403, error=refused, address=raw.strip())
        try:
            address = parse_email(raw)[0]
        except ValueError as e:
            return form(request, 400, error=str(e), address=raw.strip(), invalid=True)
        if not domain_allowed(app, address):
            refused = "Addresses of that domain cannot sign up here."
            return form(request, 400, error=refused, address=raw.strip(), invalid=True)
        now = app.clock()
        if not limiter.allow(f"client:{client_of(request)}", REQUESTS_PER_CLIENT, now):
            busy = "Too many requests from your network: try again in an hour."
            return form(request, 429, error=busy, address=raw.strip())
        if limiter.allow(f"address:{address.lower()}", REQUESTS_PER_ADDRESS, now):
            user = app.store.subscriber.user_by_email(address)
            if user is None:
                tasks.add_task(send_signup_link, app, address)
            else:  # already subscribed: their page, where they can start their digest again
                tasks.add_task(send_manage_link, app, user, address, signup=True)
        # the same answer, known address or not; a page of its own (303): a reload must not
        # mail another link
        return see_other("/signup?sent=1")


def _confirm_routes(router: APIRouter, app: App, pages: Pages) -> None:
    @router.get("/signup/{token}")
    def confirm_page(token: str) -> Response:
        if (shut := _closed(app, pages)) is not None:
            return shut
        address = app.links.read_signup(token, app.clock(), SIGNUP_LINK_HOURS)
        if app.store.subscriber.user_by_email(address) is not None:  # confirmed before
            return pages.render(
                "confirm.html",
                title="Subscribe",
                heading=f"You already have a paperwire digest at {address}",
                note="Nothing is changed: the button opens your page, with your settings as "
                "they are.",
                button="Open my page",
                paper=None,
            )
        return pages.render(
            "confirm.html",
            title="Subscribe",
            heading=f"Start the paperwire digest for {address}?",
            note="Nothing happens until you press the button.",
            button="Yes, subscribe me",
            paper=None,
        )

    @router.post("/signup/{token}")
    def confirm(token: str) -> Response:
        if (shut := _closed(app, pages)) is not None:
            return shut
        now = app.clock()
        address = app.links.read_signup(token, now, SIGNUP_LINK_HOURS)
        if not domain_allowed(app, address):  # the domains changed since
            raise NotFoundError("addresses of that domain cannot sign up here anymore")
        user = app.store.subscriber.user_by_email(address)
        done = "existing"  # confirmed before, or added since: changed in nothing
        if user is None:
            try:
                user = app.store.people.add(
                    new_handle(app, address), now, channels={ChannelKind.EMAIL: address}
                )
                done = "welcome"
            except PaperwireError:  # confirmed twice at once: the other one made it
                user = app.store.subscriber.user_by_email(address)
                if user is None:
                    raise
        manage = app.links.manage_url(user.id, now).removeprefix(app.links.base_url)
        return see_other(f"{manage}?done={done}")

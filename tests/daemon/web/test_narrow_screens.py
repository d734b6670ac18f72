"""The pages on a phone: at a 375 px wide viewport in a real browser (Debian's Chromium via
Playwright, served by uvicorn on 127.0.0.1), no page is wider than the screen — a subscriber's
own page with a long Slack webhook, the Slack unsubscribe page, and every console page with a
long feed URL and long errors — so every button is reachable without scrolling the page
sideways, nor a table (on a phone a table's rows are blocks, each cell on its own line). The
same pages at 1280 px stay as wide as the window. A bad link's page says where to ask for a
fresh one.

Skipped with the reason shown where Chromium or Playwright is missing, except when
PAPERWIRE_REQUIRE_BROWSER=1 (set by .ci/run): then it fails.

`NARROW_SCREENSHOTS=/tmp/narrow` writes a screenshot of every page at both widths."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from daemon import jobs
from daemon.db.models import ChannelKind
from daemon.jobs.digests import make_digests
from tests.daemon.conftest import FEEDS
from tests.daemon.web.conftest import (
    PASSWORD,
    Console,
)

NARROW, WIDE = 375, 1280
HF = (FEEDS / "hf" / "daily_papers_2026-08-20.json").as_uri()
# a real webhook's shape: team, hook and secret are long and unbroken
HOOK = (
    "https://hooks.slack.com/services/T0123456789ABCDEFGHIJ/B0987654321ZYXWVUTSRQ/"
    "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"
)
LONG_FEED = (
    "https://export.arxiv.org/api/query?search_query=cat:cs.LG+AND+abs:%22diffusion%20models"
    "%22+AND+abs:%22protein%20structure%22&sortBy=submittedDate&sortOrder=descending"
    "&max_results=200"
)
LONG_ERROR = (
    "ConnectError: [Errno -3] Temporary failure in name resolution while fetching "
    "https://hooks.slack.com/services/T0123456789ABCDEFGHIJ/B0987654321ZYXWVUTSRQ/…"
)


def _fill(console: Console) -> dict[str, str]:
    """Realistic data: a fetched feed, a failing one with a long URL, an email subscriber and
    one with email and a long Slack webhook, sent digests and a postponed Slack one. Returns
    the subscribers' pages' paths, by name."""
    app = console.app
    now = app.clock()
    store = app.store
    store.feeds.add("hf", HF, now)
    failing = store.feeds.add("arxiv-diffusion-proteins", LONG_FEED, now, enabled=False)
    store.feeds.record_fetch(failing.id, now, error=LONG_ERROR.replace("hooks.slack", "export"))
    jobs.ingest(app, now)
    ada = store.people.add(
        "ada", now, channels={ChannelKind.EMAIL: "ada.lovelace@analytical-engine.example"}
    )
    bob = store.people.add(
        "bob", now, channels={ChannelKind.EMAIL: "bob.bobson@physics.uni.example"}
    )
    jobs.digest_and_deliver(app, now, force=True)  # by mail, into the outbox
    # the Slack channel after: its digest is made but not sent (no network here), postponed
    store.people.set_channel(ada.id, ChannelKind.SLACK, HOOK)
    make_digests(app, now, users=["ada"], force=True)
    for d in store.health.deliveries(user="ada"):
        if d.kind == ChannelKind.SLACK:
            store.digests.postpone(d.id, now, now + timedelta(hours=1), LONG_ERROR)
    store.admin.audit(now, "root", "feed added", "arxiv-diffusion-proteins", LONG_FEED)
    return {
        name: urlsplit(app.links.manage_url(uid, now)).path
        for name, uid in (("ada", ada.id), ("bob", bob.id))
    }


# the tables whose box is wider than the screen, and scrolls sideways
SCROLLING = (
    "[...document.querySelectorAll('.scroll')].filter(s => s.scrollWidth > s.clientWidth + 1)"
    ".map(s => s.querySelector('table').id || '(table)')"
)


# the buttons and fields lower than a finger's target (WCAG 2.5.8: 24 px; a radio button or a
# box has its label to press too)
SMALL = (
    "[...document.querySelectorAll('button, select, textarea, input:not([type=hidden])"
    ":not([type=radio]):not([type=checkbox])')].filter(e => e.offsetParent !== null"
    " && e.getBoundingClientRect().height < 24)"
    ".map(e => e.tagName + ' ' + (e.id || e.innerText.slice(0, 30)))"
)


def _measure(
    page: Any,
    base: str,
    path: str,
    name: str,
    widths: dict[str, int],
    sideways: list[str],
    small: set[str],
) -> None:
    page.goto(f"{base}{path}")
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size["width"]
    widths[f"{name} @{viewport}"] = width
    if viewport == NARROW:
        sideways += [f"{name}: {table}" for table in page.evaluate(SCROLLING)]
        small.update({f"{name}: {what}" for what in page.evaluate(SMALL)})
    folder = os.environ.get("NARROW_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}-{viewport}.png"), full_page=True)


def test_no_page_is_wider_than_a_phone(live: tuple[Console, str], browser_page: object) -> None:
    from playwright.sync_api import Page, expect

    console, base = live
    app = console.app
    page: Page = browser_page  # type: ignore[assignment]
    own = _fill(console)
    ada = app.store.people.get("ada")
    slack = next(c for c in app.store.people.channels_of(ada.id) if c.kind == ChannelKind.SLACK)
    unsubscribe = urlsplit(app.links.unsubscribe_url(ada.id, slack.id)).path
    subscriber_pages = [
        (own["ada"], "me-slack"),
        (own["bob"], "me-email"),
        (unsubscribe, "unsubscribe-slack"),
        ("/me/not-a-link", "bad-link"),
    ]
    console_pages = [
        ("/admin/health", "health"),
        ("/admin/subscribers", "subscribers"),
        ("/admin/subscribers/ada", "subscriber"),
        ("/admin/feeds", "feeds"),
        ("/admin/deliveries", "deliveries"),
        ("/admin/deliveries?state=sent", "deliveries-sent"),
        ("/admin/config", "config"),
        ("/admin/audit", "audit"),
    ]

    widths: dict[str, int] = {}
    sideways: list[str] = []
    small: set[str] = set()
    page.set_viewport_size({"width": NARROW, "height": 800})
    for path, name in subscriber_pages:
        _measure(page, base, path, name, widths, sideways, small)
    page.goto(f"{base}/admin/login")
    page.fill("#name", "root")
    page.fill("#password", PASSWORD)
    page.click("#submit")
    expect(page).to_have_url(f"{base}/admin/health")
    for width in (NARROW, WIDE):
        page.set_viewport_size({"width": width, "height": 800})
        for path, name in console_pages:
            _measure(page, base, path, name, widths, sideways, small)
    page.set_viewport_size({"width": WIDE, "height": 800})
    for path, name in subscriber_pages:
        _measure(page, base, path, name, widths, sideways, small)

    too_wide = {
        name: width
        for name, width in widths.items()
        if width > int(name.rsplit("@", 1)[1]) + 1  # +1: rounding
    }
    assert too_wide == {}, f"wider than the window (px): {too_wide}; every page: {widths}"
    # on a phone a list's rows are blocks, their cells one under the other: no column (a
    # digest's Resend button, a feed's Remove) is out of sight in a box scrolled sideways
    assert sideways == []
    # on a phone a finger can press each button: the rows' 👍 / 👎 and Remove were 22 px
    # high side by side, the fields 21 px
    assert small == set()

    # the subscriber sees the whole Slack webhook shown and presses its button without
    # scrolling sideways
    page.set_viewport_size({"width": NARROW, "height": 800})
    page.goto(f"{base}{own['ada']}")
    pause = page.locator("#channels + table button", has_text="Pause (unsubscribe)").last
    box = pause.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= NARROW
    expect(page.locator("#channels + table")).to_contain_text("B0987654321ZYXWVUTSRQ/…")
    page.goto(f"{base}{unsubscribe}")
    heading = page.locator("h1")
    expect(heading).to_contain_text("B0987654321ZYXWVUTSRQ/…?")
    box = heading.bounding_box()
    assert box is not None and box["x"] + box["width"] <= NARROW
    # a bad link's page tells how to get a fresh one
    page.goto(f"{base}/me/not-a-link")
    expect(page.locator("a[href='/manage']")).to_be_visible()
    # the console: the CSV file field has its label; a channel's kind is named once
    page.goto(f"{base}/admin/subscribers")
    expect(page.get_by_label("CSV file")).to_have_attribute("id", "import-file")
    page.goto(f"{base}/admin/subscribers/ada")
    expect(page.locator("body")).to_contain_text("slack https://hooks.slack.com/")
    expect(page.locator("body")).not_to_contain_text("slack slack")

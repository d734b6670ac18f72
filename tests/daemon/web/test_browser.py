"""The pages behind the digest's links, in a real browser (Debian's Chromium via Playwright),
served by uvicorn on 127.0.0.1: one click on "More like this" records the like; the unsubscribe
page needs a press of its button; the digest's "Manage your digest" opens the subscriber's page.

Skipped with the reason shown where Chromium or Playwright is missing, except when
PAPERWIRE_REQUIRE_BROWSER=1 (set by .ci/run): then it fails."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from daemon import jobs
from daemon.app import App
from daemon.db.models import ChannelKind
from daemon.web.pages import make_web
from tests.daemon.conftest import FEEDS, SettingsFactory
from tests.daemon.web.conftest import served_on_loopback
from tests.servers import free_port


@pytest.fixture
def served(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> Iterator[tuple[App, str]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    feed = (FEEDS / "arxiv-api" / "2016-10-09_api_search_au_del_maestro.xml").as_uri()
    app = app_factory(
        make_settings(server={"base_url": base}, feeds=[{"name": "maestro", "url": feed}])
    )
    with served_on_loopback(make_web(app), port):
        yield app, base


def test_like_is_one_click_and_unsubscribe_needs_the_button(
    served: tuple[App, str], browser_page: object
) -> None:
    from playwright.sync_api import Page, expect

    app, _ = served
    page: Page = browser_page  # type: ignore[assignment]
    now = app.clock()
    jobs.ingest(app, now)
    user = app.store.people.add("ada", now, channels={ChannelKind.EMAIL: "ada@lab.example"})
    uid = user.id
    paper = app.store.papers.find("1303.6954")

    # a mail scanner opens the link in a headless browser that runs scripts: nothing is saved
    page.goto(app.links.feedback_url("like", uid, paper.id))
    page.wait_for_load_state("networkidle")
    expect(page.locator("#confirm")).to_be_visible()
    page.wait_for_timeout(300)  # a self-submitting page would have posted by now
    assert "/f/" in page.url and page.locator("#done").count() == 0
    assert app.store.people.signals([uid])[uid].likes == ()
    # a person: one click after the link
    page.locator("#confirm").click()
    expect(page.locator("#done")).to_contain_text("Thanks")
    assert [pid for pid, _ in app.store.people.signals([uid])[uid].likes] == [paper.id]

    # undo is one button
    page.locator("#undo").click()
    expect(page.locator("h1")).to_contain_text("Undone")
    assert app.store.people.signals([uid])[uid].likes == ()

    # the unsubscribe page changes nothing until the button is pressed
    page.goto(app.links.unsubscribe_url(uid))
    expect(page.locator("#confirm")).to_be_visible()
    assert app.store.people.get("ada").active
    page.locator("#confirm").click()
    expect(page.locator("#done")).to_contain_text("unsubscribed")
    assert not app.store.people.get("ada").active

    # a forged link gets a clear page, not a crash
    page.goto(app.links.unsubscribe_url(uid)[:-3] + "xyz")
    expect(page.locator("h1")).to_contain_text("Link not valid")


def test_reload_and_back_after_a_like_post_nothing_again(
    served: tuple[App, str], browser_page: object
) -> None:
    """The like's result is a page of its own (POST/redirect/GET): a reload asks for no
    "resubmit the form?" and posts nothing; coming back to it after the undo shows the
    question again; Undo after a reload removes the like (it said "Undone." and kept it)."""
    from playwright.sync_api import Page, expect

    app, _ = served
    page: Page = browser_page  # type: ignore[assignment]
    now = app.clock()
    jobs.ingest(app, now)
    uid = app.store.people.add("ada", now, channels={ChannelKind.EMAIL: "ada@lab.example"}).id
    paper = app.store.papers.find("1303.6954")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

    page.goto(app.links.feedback_url("like", uid, paper.id))
    page.locator("#confirm").click()
    expect(page.locator("#done")).to_contain_text("Thanks")
    page.reload()
    expect(page.locator("#done")).to_contain_text("Thanks")
    assert len(posts) == 1
    page.locator("#undo").click()
    expect(page.locator("h1")).to_contain_text("Undone")
    assert app.store.people.signals([uid])[uid].likes == ()
    page.go_back()  # to the result page: the like is gone, the question is asked again
    expect(page.locator("#confirm")).to_be_visible()
    assert len(posts) == 2 and app.store.people.signals([uid])[uid].likes == ()


def test_manage_link_from_a_digest_change_something_and_export(
    served: tuple[App, str], browser_page: object
) -> None:
    """The digest's "Manage your digest" opens the subscriber's page; a change is saved with
    its button; the export downloads."""
    import json
    import re
    from pathlib import Path

    from playwright.sync_api import Page, expect

    app, _ = served
    page: Page = browser_page  # type: ignore[assignment]
    now = app.clock()
    app.store.people.add("ada", now, channels={ChannelKind.EMAIL: "ada@lab.example"})
    jobs.cycle(app, now)
    (html,) = Path(app.settings.delivery.outbox_dir).glob("*.html")
    link = re.search(r'href="([^"]+/me/[^"]+)"[^>]*>Manage your digest<', html.read_text())
    assert link is not None

    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.goto(link.group(1))
    expect(page.locator("h1")).to_contain_text("Your digest, ada")
    page.locator("#hour").fill("6")
    page.locator("#timezone").select_option("Europe/Berlin")
    page.locator("#save-settings").click()
    expect(page.locator("#note")).to_contain_text("delivery settings are updated")
    # the page comes back at the section saved: its note is there, in sight (it was at the
    # top of the page, out of sight above the section)
    expect(page.locator("#note")).to_be_in_viewport()
    user = app.store.people.get("ada")
    assert (user.digest_hour, user.timezone) == (6, "Europe/Berlin")

    page.locator("#follow-value").fill("quantum")
    page.get_by_role("button", name="Follow", exact=True).click()
    expect(page.locator("#note")).to_contain_text("follows are updated")

    with page.expect_download() as download:
        page.locator("#export-json").click()
    data = json.loads(Path(download.value.path()).read_text())
    assert data["user"]["timezone"] == "Europe/Berlin"
    assert data["follows"] == [{"kind": "keyword", "value": "quantum", "muted": False}]
    assert len(data["digests"]) == 1 and data["digests"][0]["papers"]


def _rgb(css: str) -> tuple[float, float, float]:
    r, g, b = (int(v) for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
    return r / 255, g / 255, b / 255


def _contrast(fore: str, back: str) -> float:
    """WCAG's contrast ratio of two computed colours ("rgb(r, g, b)")."""

    def luminance(css: str) -> float:
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in _rgb(css)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    high, low = sorted((luminance(fore), luminance(back)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_a_digest_email_reads_in_dark_mode(browser_page: object) -> None:
    """In a mail client's dark mode every text of a digest keeps a contrast of at least 4.5
    (WCAG AA): as Apple Mail and Outlook for Mac and phones show it (prefers-color-scheme),
    and as Outlook.com does, which darkens the inline colours of the page itself (marking
    them data-ogsc / data-ogsb) but not those of its classes: the metadata's grey and the
    links' colours were dark on dark."""
    from playwright.sync_api import Page

    from notifications.render import render_email
    from tests.notifications.factories import make_digest, make_pick

    page: Page = browser_page  # type: ignore[assignment]
    picks = (make_pick(1, kind="trending"), make_pick(2, reason="Close to “Graph nets”"))
    digest = make_digest(picks, cold_start=True, manage_url="https://pw.example.org/me/x")
    html = render_email(
        digest, sender="d@pw.example.org", recipient="a@example.org", message_id_domain="x.org"
    ).html
    assert html is not None
    texts = ["h1", "h2 a", ".pick .m", ".pick p:not(.m)", "a.like", "a.dislike", ".footer",
             ".footer a", ".cold-start"]  # fmt: skip
    js = """(selectors) => selectors.map(s => {
        const e = document.querySelector(s); let b = e, bg;
        do { bg = getComputedStyle(b).backgroundColor; b = b.parentElement; }
        while (bg === 'rgba(0, 0, 0, 0)' && b);
        return [s, getComputedStyle(e).color, bg]; })"""

    def low_contrast() -> list[tuple[str, float]]:
        found = page.evaluate(js, texts)
        return [(s, round(_contrast(c, b), 1)) for s, c, b in found if _contrast(c, b) < 4.5]

    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.set_content(html)
        assert low_contrast() == [], scheme
        frame = page.evaluate("getComputedStyle(document.querySelector('.frame')).backgroundColor")
        assert (sum(_rgb(frame)) < 0.5) == (scheme == "dark"), frame
    # Outlook.com's dark mode: inline colours made dark / light and marked, classes left alone
    page.emulate_media(color_scheme="light")
    page.set_content(html)
    page.evaluate("""() => { for (const e of [document.body, document.querySelector('.frame')]) {
        e.style.backgroundColor = '#1f1f1f'; e.style.color = '#e6e6e6';
        e.setAttribute('data-ogsc', ''); e.setAttribute('data-ogsb', ''); } }""")
    assert low_contrast() == []


def test_a_refused_field_of_the_subscribers_pages_is_announced_with_its_error(
    app_factory: Callable[..., App], make_settings: SettingsFactory, browser_page: object
) -> None:
    """On /manage and /signup a refused address ('ada@lab', which the browser takes) had its
    error at the top and nothing on the field: a screen reader on it heard neither that it
    was refused nor why, and /signup's field came back empty. On /me a stored time zone of no
    place was said beside the list, tied to nothing. Each field is now marked invalid and
    described by its error; the address typed is kept."""
    import re

    from playwright.sync_api import Page, expect

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = app_factory(make_settings(server={"base_url": base, "signup": "open"}))
    page: Page = browser_page  # type: ignore[assignment]
    with served_on_loopback(make_web(app), port):
        for path in ("/manage", "/signup"):
            page.goto(base + path)
            page.locator("#email").fill("ada@lab")
            page.locator("button[type=submit]").click()
            expect(page.get_by_role("alert")).to_contain_text("not an email address")
            email = page.locator("#email")
            expect(email).to_have_attribute("aria-invalid", "true")
            expect(email).to_have_accessible_description(re.compile("not an email address"))
            expect(email).to_have_value("ada@lab")

        now = app.clock()
        user = app.store.people.add("ada", now, channels={ChannelKind.EMAIL: "ada@lab.example"})
        app.store.people.edit("ada", now, changes={"timezone": "localtime"})
        page.goto(app.links.manage_url(user.id, now))
        zone = page.locator("#timezone")
        expect(zone).to_have_attribute("aria-invalid", "true")
        expect(zone).to_have_accessible_description(re.compile("not a time zone of a place"))
        expect(page.locator("#hour")).not_to_have_attribute("aria-invalid", "true")


def test_the_manage_form_sends_its_token_from_a_browser(
    served: tuple[App, str], browser_page: object
) -> None:
    """/manage's form carries a double-submit token (a Secure, SameSite=Strict cookie and the
    same value in the form): a browser on the site sends both, and the request is taken."""
    from playwright.sync_api import Page, expect

    app, base = served
    page: Page = browser_page  # type: ignore[assignment]
    app.store.people.add("ada", app.clock(), channels={ChannelKind.EMAIL: "ada@lab.example"})
    page.goto(f"{base}/manage")
    page.fill("#email", "ada@lab.example")
    page.locator("button[type=submit]").click()
    # the answer to a POST taken (a refused one is the form again, 403, and mails nothing)
    expect(page.locator("#sent")).to_be_visible()

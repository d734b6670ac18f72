"""A subscriber's journey in a real browser (Debian's Chromium via Playwright), end to end:
a digest arrives on a local SMTP server (and on a local Slack webhook), "Manage your digest" in
the mail opens their page, a BibTeX library is imported, the digest becomes weekly, the email
channel is stopped while Slack keeps its digest, the data is exported, and the next digest,
on the chosen weekday, goes to Slack only and follows the likes made on the page.

Nothing waits on time: the app's clock is the test's, the jobs are run by the test, and every
browser step waits for the page that the step's button leads to."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon import jobs
from daemon.app import App
from daemon.db.models import ChannelKind
from daemon.web.pages import make_web
from tests.daemon.conftest import FEEDS, ROOT, SMTP_LOGIN, SettingsFactory, starttls_email
from tests.daemon.web.conftest import served_on_loopback
from tests.servers import (
    HttpServer,
    SmtpServer,
    closed_port_url,
    free_port,
    http_server,
    smtp_server,
)

LIBRARY = ROOT / "tests" / "data" / "library" / "small_lab.bib"
HOOK_PATH = "/services/T0001/B0001/sEcReTwEbHoOkToKeN"


@pytest.fixture
def world(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> Iterator[tuple[App, SmtpServer, HttpServer]]:
    port = free_port()
    feed = (FEEDS / "arxiv-api" / "2016-10-09_api_search_au_del_maestro.xml").as_uri()
    with smtp_server(users=dict([SMTP_LOGIN])) as smtp, http_server() as slack:
        settings = make_settings(
            server={"base_url": f"http://127.0.0.1:{port}", "secret_key": "journey-secret-0123"},
            feeds=[{"name": "maestro", "url": feed}],
            ingest={
                "allow_private_addresses": True,
                "allow_files": True,
                "arxiv_min_interval_seconds": 0.0,
                "timeout_seconds": 5.0,
                "arxiv_api_url": closed_port_url(),
            },
            email=starttls_email(smtp.host, smtp.port),
            slack={"transport": "webhook", "min_interval_seconds": 0.0},
            digest={"max_picks": 3, "min_score": 0.0, "max_age_days": 36500},
        )
        app = app_factory(settings, smtp_ssl_context=smtp.ssl_context_trusting_ca)
        with served_on_loopback(make_web(app), port):
            yield app, smtp, slack


def _slack_text(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


def _digest_keys(app: App, user_id: int) -> dict[str, list[str]]:
    """The papers of each of the user's digests, by channel kind and period."""
    ids = app.store.subscriber.recent_digest_ids(user_id, 10)
    out: dict[str, list[str]] = {}
    for c in app.store.digests.contents(ids).values():
        out[f"{c.channel.kind}@{c.digest.period.isoformat()}"] = [p.key for _, p in c.items]
    return out


def test_from_the_mail_to_the_next_digest(
    world: tuple[App, SmtpServer, HttpServer], browser_page: object, clock: Any
) -> None:
    from playwright.sync_api import Page, expect

    app, smtp, slack = world
    page: Page = browser_page  # type: ignore[assignment]
    friday = clock()  # NOW: a Friday, 08:00 UTC, after the default digest hour
    hook = slack.url_for(HOOK_PATH)
    ada = app.store.people.add(
        "ada",
        friday,
        display_name="Ada",
        channels={ChannelKind.EMAIL: "ada@lab.example", ChannelKind.SLACK: hook},
    )

    # ---- the first digest arrives: by mail and on Slack
    first = jobs.cycle(app, friday)
    assert first.delivery.sent == 2
    (mail,) = smtp.messages
    assert mail.rcpt_tos == ("ada@lab.example",)
    assert len(slack.requests) == 1
    html = mail.message.get_body(("html",))
    assert html is not None
    link = re.search(r'href="([^"]+/me/[^"]+)"[^>]*>Manage your digest<', html.get_content())
    assert link is not None, "the mail links to the subscriber's page"
    first_digest = _digest_keys(app, ada.id)
    (sent_first,) = {tuple(v) for v in first_digest.values()}  # the same papers on both

    # ---- "Manage your digest" from the mail opens the page
    page.goto(link.group(1).replace("&amp;", "&"))
    expect(page.locator("h1")).to_contain_text("Your digest, Ada")

    # ---- a like on the page, from the recent digest
    page.locator("#history").locator("xpath=following-sibling::ul[1]").get_by_role(
        "button", name="👍 More like this"
    ).first.click()
    expect(page.locator("#note")).to_contain_text("Your answer on that paper is saved")
    (liked_on_page,) = [p for p, v, _ in app.store.subscriber.feedback(ada.id) if v > 0]
    assert liked_on_page.key == sent_first[0]

    # ---- import a small BibTeX library
    page.locator("#library").set_input_files(str(LIBRARY))
    page.locator("#import-library").click()
    expect(page.locator("#import-done")).to_be_visible()
    expect(page.locator("#import-summary")).to_contain_text("2 paper(s) liked")
    expect(page.locator("#matched")).to_be_visible()
    expect(page.locator("#created")).to_contain_text("schrodinger1935 (line 13)")
    expect(page.locator("#created")).to_contain_text("Die gegenwärtige Situation")
    page.locator("#back").click()
    expect(page.locator("#likes")).to_be_visible()
    expect(page.locator("ul.papers").first).to_contain_text("Luttinger liquid theory")

    # ---- weekly, on Saturdays
    page.locator("#frequency-weekly").check()
    page.locator("#weekday").select_option("sat")
    page.locator("#save-settings").click()
    expect(page.locator("#note")).to_contain_text("delivery settings are updated")
    expect(page.locator("#how-often")).to_contain_text("now: weekly on sat")
    user = app.store.people.get("ada")
    assert (user.frequency, user.digest_weekday) == ("weekly", 5)

    # ---- stop the email channel; Slack goes on
    page.locator("tr", has_text="ada@lab.example").get_by_role(
        "button", name="Pause (unsubscribe)"
    ).click()
    expect(page.locator("#note")).to_contain_text("that channel is updated")
    expect(page.locator("tr", has_text="ada@lab.example")).to_contain_text("paused")
    expect(page.locator("tr", has_text="Slack channel")).to_contain_text("receiving")
    assert app.store.people.get("ada").active

    # ---- export the data
    with page.expect_download() as download:
        page.locator("#export-json").click()
    data = json.loads(Path(download.value.path()).read_text())
    assert (data["user"]["frequency"], data["user"]["digest_weekday"]) == ("weekly", "sat")
    kinds = {c["kind"]: c["active"] for c in data["channels"]}
    assert kinds == {"email": False, "slack": True}
    liked = {e["paper"] for e in data["likes_and_dislikes"] if e["value"] == "like"}
    assert liked == {liked_on_page.key, "arxiv:1005.5383", "doi:10.1007/bf01491891"}
    assert "sEcReTwEbHoOkToKeN" not in json.dumps(data)

    # ---- the next digest: none on Friday evening (weekly), then Saturday's, to Slack only
    made, _ = jobs.digest_and_deliver(app, friday + timedelta(hours=10))
    assert made.created == 0
    saturday = friday + timedelta(days=1)
    made, delivered = jobs.digest_and_deliver(app, saturday)
    assert delivered.sent == 1
    assert len(smtp.messages) == 1, "no mail to the stopped address"
    assert len(slack.requests) == 2
    digests = _digest_keys(app, ada.id)
    second = digests[f"slack@{saturday.date().isoformat()}"]
    assert f"email@{saturday.date().isoformat()}" not in digests
    assert second, "Saturday's digest has papers"
    # the likes are no news to Ada: neither what she liked nor what was sent comes again
    assert not set(second) & (liked | set(sent_first))
    # and the digest says why: close to what she liked
    text = _slack_text(slack.requests[1].json())
    assert "you liked" in text

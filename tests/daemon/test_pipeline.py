"""The whole daily pipeline against real servers on 127.0.0.1: recorded feeds served over HTTP,
an aiosmtpd SMTP server with STARTTLS (trustme certificate) and AUTH, and a local HTTP server
standing in for the Slack incoming webhook. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlmodel import Session, select

from daemon import jobs
from daemon.app import App
from daemon.db.models import ChannelKind, Digest, FollowKind
from daemon.jobs import delivery
from daemon.logs import StructuredFormatter, quiet_libraries
from daemon.web.pages import make_web
from notifications.render import render_slack
from tests.daemon.conftest import (
    BOTH_BACKENDS,
    FEEDS,
    SMTP_LOGIN,
    SettingsFactory,
    starttls_email,
)
from tests.notifications.factories import html_of
from tests.servers import HttpServer, SmtpServer, http_server, smtp_server

pytestmark = BOTH_BACKENDS  # the backend matters here

TESTING_FEED = "2026_recorded_q_testing_s0_m100_cfe7536492ca.status200.xml"
HOOK_PATH = "/services/T0001/B0001/sEcReTwEbHoOkToKeN"


@pytest.fixture
def feed_server() -> Iterator[HttpServer]:
    """Serves tests/data/feeds over HTTP (Last-Modified, and 304 to If-Modified-Since)."""
    with http_server(directory=FEEDS) as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server(users=dict([SMTP_LOGIN])) as server:
        yield server


@pytest.fixture
def slack() -> Iterator[HttpServer]:
    with http_server() as recorder:
        yield recorder


@pytest.fixture
def pipeline(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    feed_server: HttpServer,
    smtp: SmtpServer,
    slack: HttpServer,
) -> App:
    base = feed_server.url
    settings = make_settings(
        email=starttls_email(smtp.host, smtp.port),
        slack={"transport": "webhook", "min_interval_seconds": 0.0},
        feeds=[
            {
                "name": "testing",
                "url": f"{base}/arxiv-api/{TESTING_FEED}",
            },
            {
                "name": "maestro",
                "url": f"{base}/arxiv-api/2016-10-09_api_search_au_del_maestro.xml",
            },
            {"name": "hf", "url": f"{base}/hf/daily_papers_2026-08-20.json"},
            {"name": "hostile", "url": f"{base}/generic/hostile_atom_constructed.xml"},
            {"name": "gone", "url": f"{base}/no/such/feed.xml"},
        ],
    )
    app = app_factory(settings, smtp_ssl_context=smtp.ssl_context_trusting_ca)
    now = app.clock()
    jobs.ingest(app, now)
    store = app.store
    ada = store.people.add(
        "ada", now, display_name="Ada", channels={ChannelKind.EMAIL: "ada@lab.example"}
    )
    grace = store.people.add("grace", now, channels={ChannelKind.SLACK: slack.url_for(HOOK_PATH)})
    store.people.add("nova", now, channels={ChannelKind.EMAIL: "nova@lab.example"})
    hal = store.people.add("hal", now, channels={ChannelKind.EMAIL: "hal@lab.example"})
    store.people.set_follow(
        hal.id, FollowKind.KEYWORD, "safe title", muted=False
    )  # the hostile feed's entry
    for ref in ("2412.16620", "2312.06056", "2302.03287"):  # LLMs and software testing
        store.people.set_feedback(ada.id, store.papers.find(ref).id, 1, now)
    for ref in ("1201.4869", "1005.5383"):  # Luttinger liquids, helium
        store.people.set_feedback(grace.id, store.papers.find(ref).id, 1, now)
    return app


def _mails(smtp: SmtpServer) -> dict[str, EmailMessage]:
    return {m.rcpt_tos[0]: m.message for m in smtp.messages}


def _parts(msg: EmailMessage) -> tuple[str, str]:
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None, "both a text and an HTML part"
    return plain.get_content(), html_of(html)


def test_full_cycle_delivers_by_smtp_and_slack_and_never_twice(
    pipeline: App, smtp: SmtpServer, slack: HttpServer
) -> None:
    app = pipeline
    report = jobs.cycle(app, app.clock())

    # ingest: four good feeds, one 404 that did not stop the others
    assert report.ingest.feeds_failed == 1 and "gone" in report.ingest.errors[0]
    assert report.ingest.papers_new == 0  # already ingested by the fixture: nothing new now

    # four subscribers, four digests, all delivered
    assert report.digests.created == 4
    assert report.delivery.sent == 4 and report.delivery.failed == 0
    mails = _mails(smtp)
    assert set(mails) == {"ada@lab.example", "nova@lab.example", "hal@lab.example"}
    assert smtp.connections == 1, "one SMTP connection for the batch"
    assert smtp.auth_attempts == ["paperwire"]

    ada = mails["ada@lab.example"]
    assert ada["To"].addresses[0].addr_spec == "ada@lab.example"
    assert "digest@lab.example" in ada["From"]
    assert ada["Subject"] and "2026-11-27" in ada["Subject"]
    assert re.fullmatch(r"<[^@>]+@lab\.example>", ada["Message-ID"])
    # RFC 8058 §3.1: one click only over HTTPS; this base_url is plain http (loopback)
    assert ada["List-Unsubscribe-Post"] is None
    unsub = re.fullmatch(r"<(http://127\.0\.0\.1:8080/unsubscribe/[^>]+)>", ada["List-Unsubscribe"])
    assert unsub, ada["List-Unsubscribe"]
    plain, html = _parts(ada)
    assert "/f/" in html and "/unsubscribe/" in html and "/unsubscribe/" in plain
    assert "<script" not in html.lower() and "<script" not in plain.lower()
    assert "javascript:" not in html.lower()
    # the liked papers are not sent back; the picks are about software testing
    assert "arxiv.org/abs/2312.06056" not in plain and "arxiv.org/abs/2412.16620" not in plain
    assert re.search(r"[Tt]est", plain)

    # text from a hostile feed arrives as text: escaped in HTML, no markup of its own
    hal_plain, hal_html = _parts(mails["hal@lab.example"])
    assert "Safe title & more" in hal_plain
    assert "Safe title &amp; more" in hal_html
    body = hal_html[hal_html.index("</head>") :]  # the head holds the digest's own <style>
    assert not re.search(r"<(script|iframe|style)|onerror|onclick", body, re.I)

    nova_plain, _ = _parts(mails["nova@lab.example"])
    assert re.search(r"no likes yet|trending", nova_plain, re.I), "cold start is labelled"

    # Slack: Block Kit within limits, posted to the webhook; the webhook path is a secret
    posts = [r for r in slack.requests if r.method == "POST"]
    assert posts and all(r.path == HOOK_PATH for r in posts)
    for r in posts:
        payload = r.json()
        assert len(payload["blocks"]) <= 50
        assert payload["text"]
        for block in payload["blocks"]:
            text = block.get("text", {}).get("text", "")
            assert len(text) <= 3000
    slack_text = " ".join(str(r.json()) for r in posts)
    assert "Luttinger" in slack_text or "helium" in slack_text.lower() or "Superfluid" in slack_text

    # the same cycle again (late, or on a second machine): nothing new is sent
    again = jobs.cycle(app, app.clock() + timedelta(minutes=30))
    assert again.digests.created == 0 and again.delivery.sent == 0
    assert len(smtp.messages) == 3
    assert len([r for r in slack.requests if r.method == "POST"]) == len(posts)
    assert app.store.digests.counts() == {"sent": 4}


def test_a_failing_channel_does_not_stop_the_others_and_temporary_errors_retry(
    pipeline: App, smtp: SmtpServer, slack: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    quiet_libraries()  # as `setup_logging` does in the daemon
    caplog.set_level(logging.INFO)
    app = pipeline
    now = app.clock()
    smtp_replies: Any = smtp
    # nova's mailbox is temporarily unavailable; the Slack channel is gone for good
    handler_rcpt = smtp_replies._controller.handler
    handler_rcpt.rcpt_replies["nova@lab.example"] = "451 4.3.0 mailbox busy, try later"
    slack.reply(404, "channel_not_found")

    first = jobs.cycle(app, now)
    assert first.delivery.sent == 2  # ada, hal
    assert first.delivery.retrying == 1  # nova: backoff
    assert first.delivery.failed == 1  # grace: permanent, with the reason recorded
    assert any("channel_not_found" in e for e in first.delivery.errors)
    assert HOOK_PATH not in " ".join(first.delivery.errors), "webhook URL is a secret"

    # before the backoff has passed nothing is retried
    assert jobs.deliver(app, now + timedelta(seconds=30)).sent == 0
    handler_rcpt.rcpt_replies.clear()
    later = jobs.deliver(app, now + timedelta(seconds=61))
    assert later.sent == 1
    assert [m.rcpt_tos[0] for m in smtp.messages] == [
        "ada@lab.example",
        "hal@lab.example",
        "nova@lab.example",
    ]
    assert app.store.digests.counts() == {"sent": 3, "failed": 1}
    # the logs said what happened, without the SMTP password or the webhook's secret path
    formatter = StructuredFormatter(as_json=True)
    logged = "\n".join(formatter.format(r) for r in caplog.records)
    assert "delivery failed for good" in logged and "delivery will be retried" in logged
    assert "s3cret-pass" not in logged and "sEcReTwEbHoOkToKeN" not in logged

    # and the next day grace is tried again (the failure was of that digest, not of grace)
    nxt = jobs.cycle(app, now + timedelta(days=1))
    assert nxt.digests.created == 4


def test_links_in_the_digest_work_end_to_end(pipeline: App, smtp: SmtpServer) -> None:
    app = pipeline
    now = app.clock()
    jobs.cycle(app, now)
    ada_msg = _mails(smtp)["ada@lab.example"]
    _, html = _parts(ada_msg)
    like = re.search(r'href="(http://127\.0\.0\.1:8080/f/[^"]+)"', html)
    assert like
    client = TestClient(make_web(app))
    ada = app.store.people.get("ada")
    before = app.store.people.signals([ada.id])[ada.id]
    path = urlsplit(like.group(1)).path
    assert client.get(path).status_code == 200
    assert app.store.people.signals([ada.id])[ada.id].likes == before.likes, "GET changes nothing"
    assert client.post(path).status_code == 200
    assert len(app.store.people.signals([ada.id])[ada.id].likes) == len(before.likes) + 1

    # RFC 8058 one-click unsubscribe, as a mail client would do it
    unsub = re.fullmatch(r"<([^>]+)>", ada_msg["List-Unsubscribe"])
    assert unsub
    resp = client.post(
        urlsplit(unsub.group(1)).path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 200
    tomorrow = jobs.cycle(app, now + timedelta(days=1))
    delivered_to = [m.rcpt_tos[0] for m in smtp.messages]
    assert delivered_to.count("ada@lab.example") == 1, "no digest after unsubscribing"
    assert tomorrow.digests.created == 3


def test_ranking_puts_the_liked_topic_first(pipeline: App) -> None:
    app = pipeline
    report = jobs.make_digests(app, app.clock(), force=True, dry_run=True)
    by_user = {p.user: p for p in report.planned}
    physics = re.compile(r"helium|luttinger|superflu|boson|quantum|lattice|supersolid", re.I)
    grace_titles = [paper.title for paper, _ in by_user["grace"].picks]
    assert grace_titles and all(physics.search(t) for t in grace_titles[:3]), grace_titles
    ada_top = [paper.title for paper, _ in by_user["ada"].picks[:5]]
    assert sum(bool(re.search(r"test", t, re.I)) for t in ada_top) >= 4, ada_top
    assert not any(physics.search(t) for t in ada_top), ada_top
    # each pick says why, naming a liked paper
    _, rec = by_user["grace"].picks[0]
    assert rec.kind == "similar" and "Luttinger" in rec.reason
    # dry run stored nothing
    assert app.store.digests.counts() == {}


def test_second_ingest_uses_conditional_get(pipeline: App, feed_server: HttpServer) -> None:
    report = jobs.ingest(pipeline, pipeline.clock() + timedelta(hours=4))
    assert report.feeds_unchanged == 4 and report.papers_new == 0
    again = [r for r in feed_server.requests[-5:] if "no/such" not in r.path]
    assert again and all(r.headers.get("if-modified-since") for r in again)


def test_sends_nothing_when_nothing_is_worth_sending(
    app_factory: Callable[..., App], make_settings: SettingsFactory, tmp_path: Path
) -> None:
    app = app_factory(make_settings(feeds=[]))
    app.store.people.add("ada", app.clock(), channels={ChannelKind.EMAIL: "ada@lab.example"})
    report = jobs.cycle(app, app.clock())
    assert report.digests.created == 1 and report.digests.empty == 1
    assert report.delivery.sent == 0
    assert not (tmp_path / "outbox").exists() or not list((tmp_path / "outbox").iterdir())

    noted = app_factory(make_settings(feeds=[], digest={"send_empty": True}))
    noted.store.people.add("bob", noted.clock(), channels={ChannelKind.EMAIL: "bob@lab.example"})
    assert jobs.cycle(noted, noted.clock()).delivery.sent == 1


def _split_slack_day(
    app_factory: Callable[..., App], make_settings: SettingsFactory, slack: HttpServer
) -> App:
    """A day whose one subscriber, on Slack with no likes yet, gets 60 picks: a message split
    in several parts."""
    feeds = [
        {"name": "testing", "url": (FEEDS / "arxiv-api" / TESTING_FEED).as_uri()},
        {"name": "hf", "url": (FEEDS / "hf" / "daily_papers_2026-08-20.json").as_uri()},
    ]
    app = app_factory(
        make_settings(
            feeds=feeds,
            slack={"transport": "webhook", "min_interval_seconds": 0.0},
            digest={"max_picks": 60, "min_score": 0.0},
        )
    )
    now = app.clock()
    jobs.ingest(app, now)
    app.store.people.add("grace", now, channels={ChannelKind.SLACK: slack.url_for(HOOK_PATH)})
    return app


def test_a_split_slack_message_resumes_after_the_parts_already_sent(
    app_factory: Callable[..., App], make_settings: SettingsFactory, slack: HttpServer
) -> None:
    app = _split_slack_day(app_factory, make_settings, slack)
    now = app.clock()
    slack.reply(200, "ok")
    slack.reply(500, "internal_error")  # the second part fails for now
    first = jobs.cycle(app, now)
    assert first.delivery.retrying == 1
    sent = [r.json() for r in slack.requests]
    assert len(sent) == 2
    with Session(app.store.engine) as s:
        ((digest_id, error),) = s.exec(select(Digest.id, Digest.last_error)).all()
    digest = delivery.build_digest(app, digest_id or 0)[0]
    parts = len(render_slack(digest, webhook_url="").payloads)
    assert f"(payload 2/{parts}): HTTP 500 internal_error" in str(error)  # it said "1/1"

    later = jobs.deliver(app, now + timedelta(minutes=5))
    assert later.sent == 1
    resent = [r.json() for r in slack.requests[2:]]
    assert resent[0] == sent[1], "the retry starts with the part that failed"
    assert all(p != sent[0] for p in resent), "the part already accepted is not sent again"
    assert app.store.digests.counts() == {"sent": 1}


def test_a_split_slack_part_is_recorded_when_the_database_is_back_within_its_lease(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    slack: HttpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the database out for a moment just after Slack accepted a part: the part was recorded
    # as unsent and went out again at the retry (operations QA, left there; the whole
    # digest's record already insisted while its lease held)
    import time

    import sqlalchemy as sa

    app = _split_slack_day(app_factory, make_settings, slack)
    now = app.clock()
    record = app.store.digests.record_part_sent
    failures = [2, 2]  # the first record of each of the first two parts fails twice

    def database_blip(digest_id: int, parts: int, channel_id: int | None = None) -> bool:
        if parts <= len(failures) and failures[parts - 1]:
            failures[parts - 1] -= 1
            raise sa.exc.OperationalError("UPDATE digest", {}, ConnectionRefusedError())
        return record(digest_id, parts, channel_id)

    def pause(seconds: float) -> None:  # the job's clock moves on, no real time passes
        app.clock.now += timedelta(seconds=seconds)  # type: ignore[attr-defined]

    monkeypatch.setattr(app.store.digests, "record_part_sent", database_blip)
    monkeypatch.setattr(time, "sleep", pause)
    slack.reply(200, "ok")
    report = jobs.cycle(app, now)
    assert report.delivery.sent == 1 and failures == [0, 0]
    sent = [r.json() for r in slack.requests]
    assert len(sent) > 2 and len({json.dumps(p, sort_keys=True) for p in sent}) == len(sent)
    assert app.store.digests.counts() == {"sent": 1}


def test_a_digest_waiting_for_a_retry_is_not_sent_after_an_unsubscribe(
    pipeline: App, smtp: SmtpServer
) -> None:
    """nova's digest fails temporarily; she unsubscribes (the link in yesterday's digest)
    before the retry: the retry must not mail her."""
    app = pipeline
    now = app.clock()
    smtp_any: Any = smtp
    handler_rcpt = smtp_any._controller.handler
    handler_rcpt.rcpt_replies["nova@lab.example"] = "451 4.3.0 mailbox busy, try later"
    first = jobs.cycle(app, now)
    assert first.delivery.retrying == 1
    handler_rcpt.rcpt_replies.clear()
    nova = app.store.people.get("nova")
    app.store.people.set_subscribed(nova.id, False, now + timedelta(seconds=10))
    later = jobs.deliver(app, now + timedelta(seconds=61))
    assert later.sent == 0
    assert "nova@lab.example" not in [m.rcpt_tos[0] for m in smtp.messages]
    assert jobs.deliver(app, now + timedelta(hours=2)).sent == 0  # and never later either


def test_a_wrong_smtp_password_keeps_the_digests_for_later_without_using_up_attempts(
    pipeline: App, smtp: SmtpServer, make_settings: SettingsFactory
) -> None:
    app = pipeline
    now = app.clock()
    wrong = app.settings.model_copy(
        update={"email": app.settings.email.model_copy(update={"password": SecretStr("typo")})}
    )
    broken = dataclasses.replace(app, settings=wrong)  # same database, servers and clock
    first = jobs.cycle(broken, now)
    assert first.delivery.sent == 1  # grace's Slack digest is not held up by the mail server
    assert first.delivery.postponed == 3 and first.delivery.failed == 0
    assert smtp.messages == []
    assert any("535" in e for e in first.delivery.errors)
    # the admin fixes the password; the next run delivers everything, exactly once
    later = jobs.deliver(app, now + timedelta(minutes=2))
    assert later.sent == 3
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == [
        "ada@lab.example",
        "hal@lab.example",
        "nova@lab.example",
    ]
    assert app.store.digests.counts() == {"sent": 4}


def test_a_paper_dated_ahead_is_dated_by_its_ingest(
    app_factory: Callable[..., App], make_settings: SettingsFactory, tmp_path: Path
) -> None:
    # a pubDate of 2099 stayed the "newest" paper of every newcomer's digest (imports/feeds QA)
    rss = tmp_path / "future.xml"
    rss.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        "<item><title>From the future</title><link>https://x.example/f</link>"
        "<pubDate>Mon, 30 Nov 2099 10:00:00 GMT</pubDate></item>"
        "<item><title>Of today</title><link>https://x.example/t</link>"
        "<pubDate>Mon, 30 Nov 2026 10:00:00 GMT</pubDate></item>"
        "</channel></rss>"
    )
    app = app_factory(make_settings(feeds=[{"name": "f", "url": rss.as_uri()}]))
    now = app.clock()
    assert jobs.ingest(app, now).papers_new == 2
    future, today = (app.store.papers.find(f"guid:https://x.example/{k}") for k in "ft")
    assert future.published_at == now
    assert today.published_at is not None and today.published_at.year == 2026


def test_a_feed_of_the_day_reads_the_days_it_missed(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    # Hugging Face's daily papers by {date}: after two days down, the lists of those days were
    # never read, nor the papers that joined a day's list after its last fetch (loop QA)
    from datetime import UTC, datetime

    from tests.servers import Route

    day = (FEEDS / "hf" / "daily_papers_2026-08-20.json").read_bytes()
    with http_server() as hf:
        hf.routes["/hf?date=2026-08-20"] = Route(body=day, content_type="application/json")
        for d in ("2026-08-21", "2026-08-22", "2026-08-23", "2026-08-24"):
            hf.routes[f"/hf?date={d}"] = Route(body=b"[]", content_type="application/json")
        app = app_factory(make_settings(feeds=[{"name": "hf", "url": hf.url + "/hf?date={date}"}]))
        first = datetime(2026, 8, 21, 9, tzinfo=UTC)
        report = jobs.ingest(app, first)  # a new feed: yesterday's list too
        assert report.papers_new > 0 and report.feeds_failed == 0
        assert [r.path for r in hf.requests] == ["/hf?date=2026-08-20", "/hf?date=2026-08-21"]
        hf.requests.clear()
        jobs.ingest(app, first + timedelta(hours=4))  # the same day: today's list alone
        assert [r.path for r in hf.requests] == ["/hf?date=2026-08-21"]
        hf.requests.clear()
        jobs.ingest(app, datetime(2026, 8, 24, 9, tzinfo=UTC))  # down since the 21st
        assert [r.path for r in hf.requests] == [
            f"/hf?date=2026-08-{d}" for d in ("21", "22", "23", "24")
        ]


def test_a_feed_of_the_day_sends_its_validators_to_the_address_they_came_from_only(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    # a {date} feed sent yesterday's ETag / Last-Modified with today's URL: a server that
    # matches them (the same ETag for two empty lists, a Last-Modified later than today's
    # list) answered 304 for a list never read (ingest QA)
    from datetime import UTC, datetime

    from tests.servers import Route

    day = (FEEDS / "hf" / "daily_papers_2026-08-20.json").read_bytes()
    modified = "Thu, 20 Aug 2026 10:00:00 GMT"
    with http_server() as hf:
        for d in ("2026-08-20", "2026-08-21"):
            hf.routes[f"/hf?date={d}"] = Route(
                body=day if d.endswith("20") else b"[]",
                etag=f'"{d}"',
                last_modified=modified,
                content_type="application/json",
            )
        app = app_factory(make_settings(feeds=[{"name": "hf", "url": hf.url + "/hf?date={date}"}]))
        first = datetime(2026, 8, 20, 9, tzinfo=UTC)
        jobs.ingest(app, first)
        jobs.ingest(app, first + timedelta(hours=4))  # the same address: its validators
        jobs.ingest(app, first + timedelta(days=1))  # the day after: none
        jobs.ingest(app, first + timedelta(days=1, hours=4))  # then today's own
    sent = [
        (r.path, r.headers.get("if-none-match"), r.headers.get("if-modified-since"))
        for r in hf.requests
    ]
    assert sent == [
        ("/hf?date=2026-08-19", None, None),  # a new feed: yesterday's list too (a 404 here)
        ("/hf?date=2026-08-20", None, None),
        ("/hf?date=2026-08-20", '"2026-08-20"', modified),
        ("/hf?date=2026-08-20", None, None),  # the day missed, read again without
        ("/hf?date=2026-08-21", None, None),
        ("/hf?date=2026-08-21", '"2026-08-21"', modified),
    ]
    (feed,) = app.store.feeds.all()
    assert feed.etag == '"2026-08-21"' and feed.last_error is None


def test_a_failing_private_feed_is_reported_without_its_token(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the error named the feed by its whole URL: its ?token= (or user:password) went to the
    # log, `paperwire status` and the console's health page (operations QA)
    import logging

    with http_server() as private:  # answers "ok": not a feed
        url = private.url.replace("://", "://lab:hunter2-pass@") + "/atom?token=hunter2-token"
        app = app_factory(make_settings(feeds=[{"name": "lab", "url": url}]))
        with caplog.at_level(logging.WARNING, logger="paperwire.jobs"):
            report = jobs.ingest(app, app.clock())
    assert report.feeds_failed == 1
    (feed,) = app.store.feeds.all()
    said = [report.errors[0], feed.last_error or "", *(r.error for r in caplog.records)]  # type: ignore[attr-defined]
    assert all("token=**********" in s and "lab:**********@" in s for s in said), said
    assert not any("hunter2" in s for s in said)
    # the mask ends where the token does: the error's "URL: reason" keeps its colon
    assert all("token=**********: " in s for s in said), said

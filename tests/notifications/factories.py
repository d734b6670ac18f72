"""Digest/Pick builders and transport helpers shared by the notification tests (import,
don't collect)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from email.message import MIMEPart
from typing import Any

import httpx

from notifications.digest import Digest, Pick
from notifications.render import render_email, render_slack
from notifications.transports.base import EmailOut, SlackOut
from notifications.transports.slack import SlackWebhookTransport
from notifications.transports.smtp import SmtpTransport
from tests.servers import SmtpServer

EVIL_TITLE = "<script>alert(1)</script> Attention & <b>Transformers</b>"
EVIL_ABSTRACT = "We show <img src=x onerror=alert(2)> that a < b & c > d. " + "word " * 150
WEBHOOK = "https://hooks.slack.com/services/T000/B000/SECRETSECRET"


_NON_ASCII_REF = re.compile(r"&#(\d{3,});")


def html_of(part: MIMEPart) -> str:
    """An email's HTML part as its reader's characters: the HTML goes out as 7bit with every
    non-ASCII character written as a character reference (`&#945;` for α); those are
    written back here. Markup escapes (`&lt;`, `&#39;`: ASCII) stay as they were sent."""

    def char(m: re.Match[str]) -> str:
        code = int(m.group(1))
        return chr(code) if code > 127 else m.group(0)

    return _NON_ASCII_REF.sub(char, part.get_content())


def make_pick(i: int = 1, **overrides: Any) -> Pick:
    values: dict[str, Any] = {
        "paper_key": f"arxiv:2611.{i:05d}",
        "title": f"Paper number {i}",
        "url": f"https://arxiv.org/abs/2611.{i:05d}",
        "authors": ("Ada One", "Bo Two", "Cy Three", "Di Four", "Ed Five"),
        "abstract": "A short abstract.",
        "score": 0.873,
        "reason": "close to your like 'Graph nets' (shared: graph, message passing)",
        "like_url": f"https://pw.example.org/f/like?p={i}&t=tok",
        "dislike_url": f"https://pw.example.org/f/dislike?p={i}&t=tok",
        "upvotes": 42,
    }
    values.update(overrides)
    return Pick(**values)


def make_digest(picks: tuple[Pick, ...] | None = None, **overrides: Any) -> Digest:
    values: dict[str, Any] = {
        "digest_id": 17,
        "period": date(2026, 11, 28),
        "recipient_name": "Grace",
        "picks": picks if picks is not None else (make_pick(1), make_pick(2)),
        "unsubscribe_url": "https://pw.example.org/unsubscribe?t=abc",
        "one_click_unsubscribe_url": "https://pw.example.org/unsubscribe/one-click?t=abc",
        "channel_id": 5,
    }
    values.update(overrides)
    return Digest(**values)


def evil_digest() -> Digest:
    return make_digest(
        (
            make_pick(1, title=EVIL_TITLE, abstract=EVIL_ABSTRACT, url="javascript:alert(3)"),
            make_pick(2, like_url="JavaScript:alert(4)", dislike_url="data:text/html,<b>x</b>"),
        )
    )


# ------------------------------------------------------------------ transports

USER = "alice"
PASSWORD = "correct-horse-battery-staple"
SECRET_PATH = "/services/T0000/B0000/XXXXSECRETXXXX"


def email_for(recipient: str, digest: Digest | None = None) -> EmailOut:
    return render_email(
        digest or make_digest(),
        sender="digest@pw.example.org",
        recipient=recipient,
        message_id_domain="pw.example.org",
    )


def transport_for(server: SmtpServer, **overrides: object) -> SmtpTransport:
    kwargs: dict[str, object] = {
        "security": "starttls",
        "username": USER,
        "password": PASSWORD,
        "timeout": 5.0,
        "ssl_context": server.ssl_context_trusting_ca,
    }
    kwargs.update(overrides)
    return SmtpTransport(server.host, server.port, **kwargs)  # type: ignore[arg-type]


@dataclass
class FakeClock:
    """An injected clock: ``sleep`` records and advances time instantly."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def slack_transport(http: httpx.Client, clock: FakeClock) -> SlackWebhookTransport:
    return SlackWebhookTransport(http, sleep=clock.sleep, monotonic=clock.monotonic)


def slack_out(url: str, picks: int = 2) -> SlackOut:
    digest = make_digest(tuple(make_pick(i) for i in range(1, picks + 1)))
    return render_slack(digest, webhook_url=url)


def assert_secret_hidden(exc: BaseException) -> None:
    for text in (str(exc), repr(exc)):
        assert "SECRET" not in text and "/services" not in text
    assert "127.0.0.1/…" in str(exc)

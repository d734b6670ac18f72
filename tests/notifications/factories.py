"""Digest/Pick builders shared by the notification tests (import, don't collect)."""

from __future__ import annotations

from datetime import date
from typing import Any

from notifications.digest import Digest, Pick

EVIL_TITLE = "<script>alert(1)</script> Attention & <b>Transformers</b>"
EVIL_ABSTRACT = "We show <img src=x onerror=alert(2)> that a < b & c > d. " + "word " * 150
WEBHOOK = "https://hooks.slack.com/services/T000/B000/SECRETSECRET"


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

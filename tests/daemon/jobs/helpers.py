"""Helpers for the delivery tests: subscribers with a pending digest each, and every digest's
state."""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, select

from daemon.app import App
from daemon.db.digests import NewItem
from daemon.db.models import ChannelKind, Digest, DigestState
from daemon.ingest.parse import PaperIn
from tests.daemon.conftest import NOW


def users_with_digests(app: App, n: int) -> list[int]:
    """n subscribers, each with a pending digest of one paper; returns the digest ids."""
    app.store.papers.upsert(
        [PaperIn(key="arxiv:1", title="A paper", abstract="", authors=(), url="", published=NOW)],
        None,
        NOW,
    )
    return more_digests(app, n, 0)


def more_digests(app: App, n: int, start: int) -> list[int]:
    """n more subscribers (u{start}…) with a pending digest each (after `users_with_digests`)."""
    pid = app.store.papers.find("arxiv:1").id
    ids = []
    for i in range(start, start + n):
        user = app.store.people.add(f"u{i}", NOW, channels={ChannelKind.EMAIL: f"u{i}@x.org"})
        (channel,) = app.store.people.subscribers([user.name])[0][1]
        digest_id = app.store.digests.create(
            user.id, channel.id, date(2026, 11, 27), [NewItem(pid, 0.5, "similar", "r")], NOW,
            cold_start=False,
        )  # fmt: skip
        assert digest_id is not None
        ids.append(digest_id)
    return ids


def digest_states(app: App) -> dict[int, DigestState]:
    """Every digest's delivery state, by id."""
    with Session(app.store.engine) as s:
        return {d.id or 0: DigestState(d.state) for d in s.exec(select(Digest)).all()}

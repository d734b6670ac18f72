"""Query plans: the reads a day makes go through an index, so they stay a day's size as the
days of digests pile up. SQLite only: its planner takes an index whatever the table's size
(PostgreSQL's scans a small table, whatever the indexes); the indexes are the same on both."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from daemon.app import App
from daemon.db.digests import NewItem
from daemon.db.models import ChannelKind, DigestState
from daemon.ingest.parse import PaperIn
from tests.daemon.conftest import NOW


def test_the_days_reads_of_digests_search_an_index_not_every_digest_ever_made(
    app_factory: Callable[..., App],
) -> None:
    """The digest job's and the health page's reads of digests find today's through an index
    (migration 0007): a scan of the table grows with every day of digests kept."""
    app = app_factory()
    store = app.store
    user = store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
    paper = PaperIn(key="arxiv:1", title="A paper", abstract="", authors=("A. Author",),
                    url="https://example.org/1", published=NOW)  # fmt: skip
    store.papers.upsert([paper], None, NOW)
    item = NewItem(store.papers.find("arxiv:1").id, 0.5, "similar", "r")
    channel = store.people.channels_of(user.id)[0].id
    store.digests.create(user.id, channel, NOW.date(), [item], NOW, cold_start=False)
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM digest" in statement and not statement.startswith("EXPLAIN"):
            statements.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", seen)
    try:
        store.people.signals([user.id], sent_since=NOW - timedelta(days=1))
        store.digests.made({NOW.date()})
        # the digest job's latest digests of the subscribers due (over the longest window),
        # then those of a channel made since the local midnight
        store.digests.last_made([user.id], NOW - timedelta(days=9))
        store.digests.made_since([user.id], NOW - timedelta(days=1))
        store.digests.editions([channel], {NOW.date()})  # of those who moved lately
        store.health.days(NOW.date() - timedelta(days=13), NOW.date())
        store.digests.prune(NOW.date() - timedelta(days=365))
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", seen)
    assert len(statements) >= 6
    with store.engine.connect() as conn:
        for statement, parameters in statements:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            steps = " / ".join(str(row[-1]) for row in plan)
            assert "SCAN digest" not in steps, (statement, steps)
            if "digest.created_at >=" in statement:  # the recent ones only, not all of a user's
                assert "created_at>?" in steps, (statement, steps)
            if "digest.period < ?" in statement:  # the old days only, not every sent digest
                assert "ix_digest_period (period<?)" in steps, (statement, steps)


def _plans(app: App, table: str, reads: Callable[[], object]) -> list[tuple[str, str]]:
    """The SQLite plans of the statements `reads` makes that read `table`."""
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if re.search(rf'FROM "?{table}"?\b', statement) and not statement.startswith("EXPLAIN"):
            statements.append((statement, parameters))

    sa.event.listen(app.store.engine, "before_cursor_execute", seen)
    try:
        reads()
    finally:
        sa.event.remove(app.store.engine, "before_cursor_execute", seen)
    with app.store.engine.connect() as conn:
        return [
            (statement, " / ".join(str(row[-1]) for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters
            ).all()))
            for statement, parameters in statements
        ]  # fmt: skip


def test_a_pending_digests_latest_attempt_is_one_step_of_an_index(
    app_factory: Callable[..., App],
) -> None:
    """Whether a pending digest is postponed (its latest attempt was) was read through every
    postponed attempt ever and each one's later attempts: an hour of a mail server down (12
    attempts a digest) at 100,000 subscribers made the deliveries page 9.9 s. Its latest
    attempt is now one step of the (digest_id, at, id) index (migration 0016)."""
    app = app_factory()
    store, health = app.store, app.store.health
    user = store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
    paper = PaperIn(key="arxiv:1", title="A paper", abstract="", authors=("A. Author",),
                    url="https://example.org/1", published=NOW)  # fmt: skip
    store.papers.upsert([paper], None, NOW)
    item = NewItem(store.papers.find("arxiv:1").id, 0.5, "similar", "r")
    channel = store.people.channels_of(user.id)[0].id
    made = store.digests.create(user.id, channel, NOW.date(), [item], NOW, cold_start=False)
    store.digests.postpone(made or 0, NOW, NOW + timedelta(minutes=5), "connection refused")
    plans = _plans(app, "deliveryattempt", lambda: (
        health.counts(), health.deliveries(postponed_only=True),
        health.deliveries([DigestState.PENDING]),
        health.days(NOW.date() - timedelta(days=13), NOW.date()),
    ))  # fmt: skip
    assert len(plans) >= 4
    for statement, steps in plans:
        reads = [s for s in steps.split(" / ") if "deliveryattempt" in s]
        assert reads, (statement, steps)
        for step in reads:
            assert "INDEX ix_deliveryattempt_digest_at (digest_id=?)" in step, (
                statement, steps,
            )  # fmt: skip


def test_the_subscribers_newest_or_paused_first_are_read_in_order_from_an_index(
    app_factory: Callable[..., App],
) -> None:
    """The console's list "newest first" and "paused first" sorted every subscriber for each
    page (170-400 ms at 100,000 on SQLite); each order is now an index's (migration 0016).
    "Paused first" reads those getting no digest through the indexes of `active` and
    `paused_until` (a few, sorted), then the others in the order of the (active, name) one."""
    app = app_factory()
    people = app.store.people
    for name in ("ada", "bob"):
        people.add(name, NOW, channels={ChannelKind.EMAIL: f"{name}@lab.example"})
    people.set_subscribed(people.get("bob").id, False, NOW)
    for order in ("name", "newest", "paused"):
        plans = _plans(app, "user", functools.partial(
            people.find, "", offset=0, limit=100, order=order, now=NOW
        ))  # fmt: skip
        assert len(plans) == (5 if order == "paused" else 2), order
        for statement, steps in plans:
            assert not re.search(r"SCAN user( /|$)", steps), (order, statement, steps)
            if "ORDER BY" not in statement:
                continue
            if "active = 0 OR" in statement:  # those getting no digest now
                assert steps.startswith("MULTI-INDEX OR / INDEX 1 / SEARCH user USING INDEX "
                                        "ix_user_active_name (active=?)"), steps  # fmt: skip
            else:
                assert "TEMP B-TREE" not in steps, (order, statement, steps)

"""What the delivery job writes to the store: a claim's leases, each outcome with its attempt,
and pooled connections that the server dropped. On SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from daemon.app import App
from daemon.db import engine as db_engine
from daemon.db.models import ChannelKind, DeliveryAttempt, DigestState, Outcome
from daemon.db.rows import DueDelivery
from tests.daemon.conftest import BOTH_BACKENDS, NOW, POSTGRES_ONLY


def _pending(store: Any, n: int) -> list[int]:
    """n subscribers with a pending digest each; returns the digest ids."""
    ids = []
    for i in range(n):
        user = store.people.add(f"p{i}", NOW, channels={ChannelKind.EMAIL: f"p{i}@lab.example"})
        (channel,) = [c for _, cs in store.people.subscribers([f"p{i}"]) for c in cs]
        made = store.digests.create(
            user.id, channel.id, date(2026, 11, 27), [], NOW, cold_start=False,
            empty_state=DigestState.PENDING,
        )  # fmt: skip
        ids.append(made)
    return ids


@BOTH_BACKENDS  # the backend matters here
def test_a_claim_leases_the_first_due_digests_in_id_order(app_factory: Callable[..., App]) -> None:
    store = app_factory().store
    ids = _pending(store, 5)
    store.digests.finish(ids[1], NOW, outcome=Outcome.SENT)
    claimed = store.digests.claim_due(NOW, timedelta(minutes=10), limit=3)
    until = NOW + timedelta(minutes=10)
    assert claimed == [
        DueDelivery(i, attempts=0, parts_sent=0, leased_until=until, created_at=NOW)
        for i in (ids[0], ids[2], ids[3])
    ]
    assert [store.digests.get(i).leased_until for i in ids] == [until, None, until, until, None]


@BOTH_BACKENDS
def test_each_outcome_is_recorded_with_its_attempt(app_factory: Callable[..., App]) -> None:
    app = app_factory()
    store = app.store
    sent, retry, failed = _pending(store, 3)
    store.digests.claim_due(NOW, timedelta(minutes=10))
    later, retry_at = NOW + timedelta(seconds=5), NOW + timedelta(minutes=2)
    store.digests.finish(sent, later, outcome=Outcome.SENT)
    store.digests.finish(retry, later, outcome=Outcome.TEMPORARY, detail="451", retry_at=retry_at)
    store.digests.finish(failed, later, outcome=Outcome.PERMANENT, detail="550")
    rows = {i: store.digests.get(i) for i in (sent, retry, failed)}
    assert {i: (r.state, r.attempts, r.leased_until) for i, r in rows.items()} == {
        sent: (DigestState.SENT, 1, None),
        retry: (DigestState.PENDING, 1, None),
        failed: (DigestState.FAILED, 1, None),
    }
    assert (rows[sent].sent_at, rows[sent].last_error) == (later, None)
    assert (rows[retry].next_attempt_at, rows[retry].last_error) == (retry_at, "451")
    assert (rows[failed].sent_at, rows[failed].last_error) == (None, "550")
    attempts = sa.select(
        DeliveryAttempt.digest_id, DeliveryAttempt.at, DeliveryAttempt.outcome,  # type: ignore[call-overload]
        DeliveryAttempt.detail,
    ).order_by(DeliveryAttempt.digest_id)  # fmt: skip
    with store.engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(attempts)] == [
            (sent, later, "sent", ""),
            (retry, later, "temporary", "451"),
            (failed, later, "permanent", "550"),
        ]


@POSTGRES_ONLY
def test_a_pooled_connection_the_server_dropped_is_replaced(
    app_factory: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections idle in the pool are checked before use (the server restarted, or an idle
    timeout closed them): the next statement runs on a new one."""
    engine = app_factory().store.engine
    monkeypatch.setattr(db_engine, "PING_AFTER_IDLE", 0.0)
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
    other = sa.create_engine(engine.url, isolation_level="AUTOCOMMIT")  # not from the pool
    with other.connect() as admin:
        admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": before})
        # the backend exits on its own time: wait until it has (a fixed pause was a bet on
        # the machine's speed)
        gone = sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
        deadline = time.monotonic() + 60
        while admin.execute(gone, {"pid": before}).scalar() and time.monotonic() < deadline:
            time.sleep(0.01)
    other.dispose()
    with engine.connect() as conn:
        after = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
    assert after != before

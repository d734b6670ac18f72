"""Migration 0019 (digest.edition, user.timezone_changed_at) on a database with digests: every
digest, item and delivery attempt is kept, as edition 0; the key is (user, channel, period,
edition), on SQLite too (its table rebuilt); it goes down again, the editions after the first
deleted with their items and attempts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from daemon.db import make_engine
from daemon.db.engine import downgrade, upgrade
from tests.daemon.conftest import BOTH_BACKENDS, EMPTY_DATABASE

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


def _rows(conn: sa.Connection, sql: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in conn.execute(sa.text(sql))]


def _digest(conn: sa.Connection, period: str, edition: int | None = None) -> None:
    """A digest of ada's channel for `period` (no edition: as revision 0018 writes one)."""
    columns, values = ("", "") if edition is None else (", edition", f", {edition}")
    conn.execute(
        sa.text(
            "INSERT INTO digest (user_id, channel_id, period, cold_start, state, attempts,"
            f" parts_sent, resends, created_at{columns}) SELECT u.id, c.id, :period, false,"
            f" 'sent', 1, 0, 0, :at{values} FROM \"user\" AS u JOIN channel AS c"
            " ON c.user_id = u.id WHERE u.name = 'ada'"
        ),
        {"period": period, "at": NOW},
    )


def _children(conn: sa.Connection, period: str) -> None:
    """An item and a delivery attempt for the digest of `period` made last."""
    last = f"(SELECT max(id) FROM digest WHERE period = '{period}')"
    conn.execute(
        sa.text(
            "INSERT INTO digestitem (digest_id, paper_id, rank, score, kind, reason)"
            f" VALUES ({last}, 7, 1, 0.5, 'content', 'r')"
        )
    )
    conn.execute(
        sa.text(
            "INSERT INTO deliveryattempt (digest_id, at, outcome, detail)"
            f" VALUES ({last}, :at, 'sent', '')"
        ),
        {"at": NOW},
    )


@BOTH_BACKENDS
@EMPTY_DATABASE
def test_digests_are_kept_as_edition_0_and_a_date_may_have_another_edition(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0018")
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    'INSERT INTO "user" (name, display_name, timezone, active, created_at,'
                    " frequency) VALUES ('ada', 'Ada', 'Pacific/Auckland', true, :at, 'daily')"
                ),
                {"at": NOW},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO channel (user_id, kind, address, active) SELECT id, 'email',"
                    " 'ada@lab.example', true FROM \"user\""
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO paper (id, key, title, abstract, authors, url, categories, "
                    "first_seen_at, is_news) VALUES (7, 'k', 'T', '', '[]', "
                    "'https://x.example/7', '[]', :at, true)"
                ),
                {"at": NOW},
            )
            for period in ("2026-10-21", "2026-10-22"):
                _digest(conn, period)
                _children(conn, period)
        upgrade(engine)
        kept = "SELECT id, period, edition, state FROM digest ORDER BY id"
        with engine.connect() as conn:
            before = _rows(conn, kept)
            assert [(str(p), e, st) for _, p, e, st in before] == [
                ("2026-10-21", 0, "sent"),
                ("2026-10-22", 0, "sent"),
            ]
            assert _rows(conn, "SELECT count(*) FROM digestitem") == [(2,)]
            assert _rows(conn, "SELECT count(*) FROM deliveryattempt") == [(2,)]
            assert _rows(conn, 'SELECT timezone_changed_at FROM "user"') == [(None,)]
        with engine.begin() as conn:  # another edition of a date: Los Angeles' Thursday
            _digest(conn, "2026-10-22", edition=1)
            _children(conn, "2026-10-22")
        for edition in (None, 1):  # the same edition twice: refused (as 0018 inserts, too)
            with pytest.raises(IntegrityError), engine.begin() as conn:
                _digest(conn, "2026-10-22", edition)
        with engine.connect() as conn:
            assert _rows(conn, "SELECT count(*) FROM digest") == [(3,)]
        downgrade(engine, "0018")
        with engine.connect() as conn:
            assert _rows(conn, "SELECT id, period, state FROM digest ORDER BY id") == [
                (i, p, st) for i, p, _, st in before
            ]
            assert _rows(conn, "SELECT count(*) FROM digestitem") == [(2,)]
            assert _rows(conn, "SELECT count(*) FROM deliveryattempt") == [(2,)]
        with pytest.raises(IntegrityError), engine.begin() as conn:  # the old key is back
            _digest(conn, "2026-10-22")
        upgrade(engine)  # and up again
        with engine.begin() as conn:
            assert _rows(conn, kept) == before
            # the rebuilt table's foreign keys hold: a user deleted takes their digests along,
            # and the digests their items and attempts
            conn.execute(sa.text('DELETE FROM "user"'))
            for table in ("digest", "digestitem", "deliveryattempt"):
                assert _rows(conn, f"SELECT count(*) FROM {table}") == [(0,)], table
    finally:
        engine.dispose()

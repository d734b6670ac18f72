"""Migration 0005 (delivery frequency) on a database with subscribers: they stay daily and
unpaused; it goes down again cleanly."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from daemon.db import make_engine
from daemon.db.engine import downgrade, upgrade
from tests.daemon.conftest import BOTH_BACKENDS, EMPTY_DATABASE


@BOTH_BACKENDS
@EMPTY_DATABASE
def test_existing_subscribers_stay_daily_and_the_migration_goes_down(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0004")
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    'INSERT INTO "user" (name, display_name, timezone, active, created_at) '
                    "VALUES ('ada', 'Ada', 'Europe/Berlin', true, :at)"
                ),
                {"at": datetime(2026, 11, 1, tzinfo=UTC)},
            )
        upgrade(engine, "0005")
        with engine.connect() as conn:
            row = conn.execute(
                sa.text('SELECT frequency, digest_weekday, paused_until FROM "user"')
            ).one()
        assert tuple(row) == ("daily", None, None)
        downgrade(engine, "0004")
        columns = {c["name"] for c in sa.inspect(engine).get_columns("user")}
        assert "frequency" not in columns and "paused_until" not in columns
        assert "digest_hour" in columns
    finally:
        engine.dispose()

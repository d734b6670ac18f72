"""Ids are never reused (migration 0009): a digest's links name the subscriber and the channel
by id, so a deleted subscriber's links must not open the next newcomer's account. Migrations
0008 (lowered keys) and 0009 (on SQLite, the user and channel tables rebuilt) keep every row,
and every row that refers to them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from daemon.db import make_engine
from daemon.db.engine import downgrade, head_revision, upgrade
from daemon.db.models import ChannelKind
from daemon.db.people import People
from daemon.errors import PaperwireError
from tests.daemon.conftest import BOTH_BACKENDS, EMPTY_DATABASE

NOW = datetime(2026, 11, 30, 9, tzinfo=UTC)


def _rows(conn: sa.Connection, sql: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in conn.execute(sa.text(sql))]


@BOTH_BACKENDS
@EMPTY_DATABASE
def test_the_migrations_keep_every_row_and_ids_are_not_reused_after(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0007")
        with engine.begin() as conn:
            for name, address in (("ada", "Ada@Lab.example"), ("Bob", "bob@lab.example")):
                conn.execute(
                    sa.text(
                        'INSERT INTO "user" (name, display_name, timezone, active, created_at,'
                        " frequency) VALUES (:n, :n, 'UTC', true, :at, 'daily')"
                    ),
                    {"n": name, "at": NOW},
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO channel (user_id, kind, address, active) SELECT id, "
                        "'email', :a, true FROM \"user\" WHERE name = :n"
                    ),
                    {"n": name, "a": address},
                )
            conn.execute(
                sa.text(
                    "INSERT INTO paper (id, key, title, abstract, authors, url, categories, "
                    "first_seen_at, is_news) VALUES (7, 'k', 'T', '', '[]', "
                    "'https://x.example/7', '[]', :at, true)"
                ),
                {"at": NOW},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO feedback (user_id, paper_id, value, created_at) "
                    "SELECT id, 7, 1, :at FROM \"user\" WHERE name = 'Bob'"
                ),
                {"at": NOW},
            )
        upgrade(engine)
        with engine.connect() as conn:
            assert _rows(conn, 'SELECT id, name, name_key FROM "user" ORDER BY id') == [
                (1, "ada", "ada"),
                (2, "Bob", "bob"),
            ]
            assert _rows(conn, "SELECT user_id, address_key FROM channel ORDER BY id") == [
                (1, "ada@lab.example"),
                (2, "bob@lab.example"),
            ]
            assert _rows(conn, "SELECT user_id, paper_id FROM feedback") == [(2, 7)]
        people = People(engine)
        assert people.owner_of(ChannelKind.EMAIL, "ADA@lab.EXAMPLE") == "ada"
        people.remove("bob")  # any case; its channel and like go with it (the cascade holds)
        with engine.connect() as conn:
            assert _rows(conn, "SELECT count(*) FROM channel") == [(1,)]
            assert _rows(conn, "SELECT count(*) FROM feedback") == [(0,)]
        eve = people.add("eve", NOW, channels={ChannelKind.EMAIL: "eve@lab.example"})
        # not Bob's 2; on SQLite a margin above the ids left at the upgrade, for those deleted
        # before it (their links must open nobody's account)
        assert eve.id == (10_003 if engine.dialect.name == "sqlite" else 3)
        with engine.connect() as conn:
            assert _rows(conn, "SELECT max(id) FROM channel") == [(eve.id,)]
    finally:
        engine.dispose()


@EMPTY_DATABASE
def test_rows_that_already_referred_to_nothing_do_not_stop_an_upgrade(db_url: str) -> None:
    # an orphan left by a sqlite3 shell (foreign keys off there) made every `db upgrade` fail
    # after the migration had been committed, and the daemon's start with it (second read)
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0007")
        with engine.connect() as conn:  # as the shell writes: no transaction, no checks
            raw = conn.connection.driver_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys=OFF")
            raw.execute(
                "INSERT INTO channel (user_id, kind, address, active) "
                "VALUES (99, 'email', 'ghost@lab.example', 1)"
            )
            raw.execute("PRAGMA foreign_keys=ON")
        upgrade(engine)
        upgrade(engine)  # at head: nothing to do, nothing checked
        with engine.connect() as conn:
            assert _rows(conn, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
            assert _rows(conn, "SELECT address_key FROM channel") == [("ghost@lab.example",)]
            assert _rows(conn, "PRAGMA foreign_keys") == [(1,)]
    finally:
        engine.dispose()


@BOTH_BACKENDS
def test_going_down_to_the_first_revision_and_up_again_keeps_every_row(db_url: str) -> None:
    # 0008's downgrade rebuilt "user" with foreign keys on: every channel, like and digest
    # went with the old table (second read)
    engine = make_engine(db_url)
    try:
        People(engine).add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
        for revision in ("0007", "0004", "0001"):  # each way down rebuilds tables on SQLite
            downgrade(engine, revision)
            with engine.connect() as conn:
                assert _rows(conn, 'SELECT count(*) FROM "user"') == [(1,)], revision
                assert _rows(conn, "SELECT address FROM channel") == [("ada@lab.example",)]
        upgrade(engine)
        assert People(engine).owner_of(ChannelKind.EMAIL, "ADA@lab.example") == "ada"
    finally:
        engine.dispose()


@BOTH_BACKENDS
@pytest.mark.parametrize("at", ["head", "0011"])
def test_users_an_old_daemon_added_after_the_upgrade_get_their_keys_at_the_next(
    db_url: str, at: str
) -> None:
    # the docs' order: `db upgrade`, then restart; the old daemon adds users meanwhile, with
    # no lowered keys, and twins by case were accepted after (operations QA); the next
    # `db upgrade` fills them whether it is at head or migrates further (from 0011 it did not:
    # 'neo' was added beside 'Neo', and `users show neo` found nobody; upgrade QA)
    engine = make_engine(db_url)
    try:
        if at != "head":
            downgrade(engine, at)
        with engine.begin() as conn:  # as the version before 0008 writes a user
            conn.execute(
                sa.text(
                    'INSERT INTO "user" (name, display_name, timezone, active, created_at,'
                    " frequency) VALUES ('Winnie', 'W', 'UTC', true, :at, 'daily')"
                ),
                {"at": NOW},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO channel (user_id, kind, address, active) SELECT id, 'email', "
                    "'Winnie@Lab.Example', true FROM \"user\" WHERE name = 'Winnie'"
                )
            )
        upgrade(engine)  # at head: `db upgrade` before the new version's start
        people = People(engine)
        assert people.owner_of(ChannelKind.EMAIL, "winnie@lab.example") == "Winnie"
        with pytest.raises(PaperwireError, match="already exists"):
            people.add("winnie", NOW, channels={ChannelKind.EMAIL: "other@lab.example"})
    finally:
        engine.dispose()

"""PostgreSQL's statement timeout (`database.statement_timeout_seconds`): a statement the server
does not finish is cancelled instead of holding a page or a job; the migrations run without it.
On PostgreSQL only (skipped, with the reason shown, when it is not reachable)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from daemon.app import App
from daemon.db import engine as engines
from daemon.db import people
from daemon.settings import DatabaseSettings
from tests.daemon.conftest import POSTGRES_ONLY, SettingsFactory

pytestmark = POSTGRES_ONLY


def _shown(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.exec_driver_sql("SHOW statement_timeout").scalar())


@pytest.fixture
def engine_of(db_url: str) -> Iterator[Callable[..., Engine]]:
    made: list[Engine] = []

    def make(url: str = db_url, *, statement_timeout_seconds: float) -> Engine:
        made.append(engines.make_engine(url, statement_timeout_seconds=statement_timeout_seconds))
        return made[-1]

    yield make
    for engine in made:
        engine.dispose()


def test_the_daemon_s_connections_have_a_statement_timeout(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    # a server that never finished a statement (a lock held, a disk stalled) held the page or
    # the job waiting on it for minutes: no statement timeout was set (ingest QA)
    assert DatabaseSettings().statement_timeout_seconds == 30
    assert _shown(app_factory().store.engine) == "30s"
    none = app_factory(make_settings(database={"statement_timeout_seconds": 0}))
    assert _shown(none.store.engine) == "0"


def test_a_statement_past_the_timeout_is_cancelled(engine_of: Callable[..., Engine]) -> None:
    engine = engine_of(statement_timeout_seconds=0.2)
    with (
        engine.connect() as conn,
        pytest.raises(sa.exc.OperationalError, match="statement timeout"),
    ):
        conn.exec_driver_sql("SELECT pg_sleep(120)")  # the test would take 2 minutes, then fail
    with engine.connect() as conn:  # the connection is fine afterwards
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1


def test_the_url_s_own_statement_timeout_wins(
    db_url: str, engine_of: Callable[..., Engine]
) -> None:
    url = sa.engine.make_url(db_url).update_query_dict({"options": "-c statement_timeout=5s"})
    own = engine_of(url.render_as_string(hide_password=False), statement_timeout_seconds=30)
    assert _shown(own) == "5s"


def test_a_timeout_the_server_sets_for_the_role_is_lifted_where_paperwire_lifts_its_own(
    db_url: str, engine_of: Callable[..., Engine]
) -> None:
    # behind PgBouncer's transaction pooling the session `SET` holds only on the server
    # connection it was sent on (measured with PgBouncer 1.18: '0' once PgBouncer had renewed
    # its server connections, as it does after server_lifetime): docs/operations.md says to set
    # statement_timeout_seconds = 0 and the timeout on the server, ALTER ROLE … IN DATABASE.
    # The migrations and the fit's reads still run without it (`SET LOCAL`, transaction-scoped)
    database = sa.engine.make_url(db_url).database
    engine = engine_of(statement_timeout_seconds=0)
    with engine.connect() as conn:
        role = conn.exec_driver_sql("SELECT current_user").scalar()
        conn.exec_driver_sql(
            f'ALTER ROLE "{role}" IN DATABASE "{database}" SET statement_timeout = \'200ms\''
        )
        conn.commit()
    try:
        engine.dispose()  # new connections: the server's setting is read at their start
        assert _shown(engine) == "200ms"
        with engine.begin() as conn:
            engines.no_statement_timeout(conn)
            conn.exec_driver_sql("SELECT pg_sleep(0.5)")  # past the timeout: not cancelled
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
        assert _shown(engine) == "200ms", "the limit again in the next transaction"
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(
                f'ALTER ROLE "{role}" IN DATABASE "{database}" RESET statement_timeout'
            )
            conn.commit()


def test_the_migrations_run_without_the_statement_timeout(
    engine_of: Callable[..., Engine],
) -> None:
    # a migration rewriting a large table may take minutes: cancelled half-way, it is rolled
    # back and `db upgrade` fails at every start
    engine = engine_of(statement_timeout_seconds=0.2)
    seen: list[str] = []

    def step(cfg: object, revision: str) -> None:
        conn = cfg.attributes["connection"]  # type: ignore[attr-defined]
        conn.exec_driver_sql("SELECT pg_sleep(0.5)")  # past the timeout: not cancelled
        seen.append(str(conn.exec_driver_sql("SHOW statement_timeout").scalar()))

    engines._migrate(engine, step, "head")
    assert seen == ["0"]
    assert _shown(engine) == "200ms", "the limit again after the migration"


def test_the_fit_s_whole_table_reads_run_without_the_statement_timeout(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fit reads every paper and every library: on a large install with the database across
    a network, sending 340 MB of papers takes about 27 s at 100 Mbit (second read: 200,000
    papers), and the timeout counts the sending too. Cancelled, the fit fails, and so does
    every day's digest job. Those reads lift it for their transaction; others keep it."""
    app = app_factory(make_settings(database={"statement_timeout_seconds": 0.2}))
    engine = app.store.engine
    seen: dict[str, str] = {}

    def timeout_of(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "statement_timeout" not in statement:
            with cursor.connection.cursor() as own:
                own.execute("SHOW statement_timeout")
                seen[statement] = str(own.fetchone()[0])

    plain_rows = people._plain_rows  # libraries() reads on the DBAPI cursor: no event

    def plain_rows_seen(conn: sa.Connection, q: Any) -> Iterator[tuple[Any, ...]]:
        seen[str(q)] = str(conn.exec_driver_sql("SHOW statement_timeout").scalar())
        return plain_rows(conn, q)

    monkeypatch.setattr(people, "_plain_rows", plain_rows_seen)
    sa.event.listen(engine, "before_cursor_execute", timeout_of)
    try:
        app.store.papers.all()
        app.store.people.libraries()
        app.store.people.libraries(dated=True)
        whole_reads = dict(seen)
        seen.clear()
        app.store.people.count_feedback()  # any other read keeps the limit
    finally:
        sa.event.remove(engine, "before_cursor_execute", timeout_of)
    assert len(whole_reads) == 3 and set(whole_reads.values()) == {"0"}, whole_reads
    assert seen and set(seen.values()) == {"200ms"}, seen
    assert _shown(engine) == "200ms"

"""PostgreSQL's statement timeout (`database.statement_timeout_seconds`): a statement the server
does not finish is cancelled instead of holding a page or a job; the migrations run without it.
On PostgreSQL only (skipped, with the reason shown, when it is not reachable)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from daemon.app import App
from daemon.db import engine as engines
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

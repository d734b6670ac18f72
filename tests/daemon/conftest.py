"""Fixtures for the daemon's tests: a database on each backend, settings, a fixed clock.

`db_url` is SQLite; tests marked `BOTH_BACKENDS` also run on PostgreSQL (127.0.0.1:5432, a
fresh database per test). Where PostgreSQL is not reachable the PostgreSQL case is skipped with
the reason shown, except when PAPERWIRE_REQUIRE_POSTGRES=1 (set by .ci/run): then it fails.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from daemon.app import App, make_app
from daemon.db import SchemaError, check_schema, make_engine
from daemon.db.engine import upgrade
from daemon.settings import Settings

PG_ADMIN_URL = os.environ.get(
    "PAPERWIRE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_PG = os.environ.get("PAPERWIRE_REQUIRE_POSTGRES") == "1"
ROOT = Path(__file__).resolve().parents[2]
FEEDS = ROOT / "tests" / "data" / "feeds"
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)  # a Friday, 08:00 UTC


def _pg_available() -> str | None:
    try:
        engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as e:
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {type(e).__name__}"


@pytest.fixture(scope="session")
def pg_server() -> str:
    problem = _pg_available()
    if problem:
        if REQUIRE_PG:
            pytest.fail(problem + " (PAPERWIRE_REQUIRE_POSTGRES=1)")
        pytest.skip(problem + "; set PAPERWIRE_TEST_POSTGRES to run these")
    return PG_ADMIN_URL


@contextmanager
def _pg_database(server: str, template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database (empty, or a copy of `template`), dropped afterwards."""
    name = f"paperwire_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    copy = f' TEMPLATE "{template}"' if template else ""
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"{copy}'))
    url = sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with _pg_database(pg_server) as url:
        yield url


@pytest.fixture(scope="session")
def pg_template(pg_server: str) -> Iterator[str]:
    """A PostgreSQL database with the schema at head, copied for each test (CREATE DATABASE
    … TEMPLATE takes a few milliseconds; migrating a new database, a quarter of a second)."""
    with _pg_database(pg_server) as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()  # a template must have no connection when it is copied
        yield str(sa.engine.make_url(url).database)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with the schema at head, copied for each test."""
    path = tmp_path_factory.mktemp("schema") / "paperwire.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


# Run a test (or a module: `pytestmark = BOTH_BACKENDS`) on SQLite and on PostgreSQL. Used where
# the backend matters: the store, the pipeline, delivery claims, migrations. Elsewhere: SQLite.
BOTH_BACKENDS = pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


# Run a test on PostgreSQL only: what SQLite has no counterpart of (a server, its connections).
POSTGRES_ONLY = pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


# A test that needs a database without any schema (migrations from the first one) says so.
EMPTY_DATABASE = pytest.mark.empty_database


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The database under test, with the schema at head (copied from a template) unless the
    test is marked EMPTY_DATABASE: SQLite unless parametrised with BOTH_BACKENDS."""
    empty = request.node.get_closest_marker("empty_database") is not None
    if getattr(request, "param", "sqlite") == "sqlite":
        path = tmp_path / "paperwire.db"
        if not empty:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    if empty:
        yield str(request.getfixturevalue("pg_url"))
        return
    template = request.getfixturevalue("pg_template")
    with _pg_database(request.getfixturevalue("pg_server"), template) as url:
        yield url


SettingsFactory = Callable[..., Settings]
SMTP_LOGIN = ("paperwire", "s3cret-pass")  # the login of `smtp_server(users=…)` in the tests


def starttls_email(host: str, port: int) -> dict[str, Any]:
    """The `[email]` settings for a local `smtp_server(users=dict([SMTP_LOGIN]))`: STARTTLS,
    that login, the lab's sender."""
    return {
        "transport": "smtp",
        "host": host,
        "port": port,
        "security": "starttls",
        "username": SMTP_LOGIN[0],
        "password": SMTP_LOGIN[1],
        "sender": "paperwire <digest@lab.example>",
        "message_id_domain": "lab.example",
    }


@pytest.fixture
def make_settings(tmp_path: Path, db_url: str) -> SettingsFactory:
    """Settings for a test: the database under test, files under tmp_path, loopback allowed.

    Keyword arguments replace whole sections or keys: make_settings(email={...}, feeds=[...]).
    """

    def factory(**sections: Any) -> Settings:
        base: dict[str, Any] = {
            "database": {"url": db_url},
            "server": {
                "base_url": "http://127.0.0.1:8080",
                "secret_key": "test-secret-key-0123",
            },
            "ingest": {
                "allow_private_addresses": True,
                "allow_files": True,
                "arxiv_min_interval_seconds": 0.0,
                "timeout_seconds": 5.0,
            },
            "delivery": {"outbox_dir": str(tmp_path / "outbox"), "backoff_seconds": 60.0},
            # the recorded feeds (tests/data) are older than NOW: their papers are still news
            "digest": {"max_age_days": 36500},
        }
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        return Settings(**base)

    return factory


@pytest.fixture
def clock() -> Callable[[], datetime]:
    """A clock the test can move: clock.now = ...; the app reads it through app.clock()."""

    class Clock:
        now = NOW

        def __call__(self) -> datetime:
            return self.now

    return Clock()


@pytest.fixture
def app_factory(
    make_settings: SettingsFactory, clock: Callable[[], datetime]
) -> Iterator[Callable[..., App]]:
    """Build an App on the test database with the schema upgraded; closed after the test."""
    apps: list[App] = []

    def build(settings: Settings | None = None, **kwargs: Any) -> App:
        app = make_app(settings or make_settings(), clock=clock, **kwargs)
        try:
            check_schema(app.store.engine)  # the usual case: a copy of the template
        except SchemaError:
            upgrade(app.store.engine)
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.close()


@contextmanager
def pool_exhausted(engine: sa.Engine) -> Iterator[None]:
    """`engine`'s pool with no connection to give (a load holding every one of them): the next
    checkout gives up at once with the pool's TimeoutError, as it does after `pool_timeout`
    (30 s). The connections' set-up (the engine's events) is kept; the usual pool is back
    after."""
    usual = engine.pool
    small = sa.pool.QueuePool(
        usual._creator,  # what `Pool.recreate` copies
        pool_size=1,
        max_overflow=0,
        timeout=0,
        dialect=usual._dialect,
        _dispatch=usual.dispatch,
    )
    held = small.connect()
    engine.pool = small
    try:
        yield
    finally:
        engine.pool = usual
        held.close()
        small.dispose()


def terminate_connections(engine: sa.Engine) -> int:
    """PostgreSQL: end every server process of `engine`'s database but the caller's, from
    another connection (`pg_terminate_backend`: what a restart, a failover or an admin does to
    them), each waited for until it is gone (up to a minute). How many were ended."""
    database = engine.url.database
    other = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with other.connect() as conn:
            return len(
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid, 60000) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                ).all()
            )
    finally:
        other.dispose()

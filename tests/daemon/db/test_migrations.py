"""The migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import daemon.db.models  # noqa: F401  (registers the tables)
from daemon.db import make_engine
from daemon.db.engine import SchemaError, _alembic_config, check_schema, head_revision, upgrade
from daemon.ingest.identity import title_key
from tests.daemon.conftest import BOTH_BACKENDS, EMPTY_DATABASE


@BOTH_BACKENDS
@EMPTY_DATABASE
def test_models_and_migrations_agree(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, SQLModel.metadata)
        assert diff == [], "models and migrations differ: write a migration for " + repr(diff)
        check_schema(engine)  # and the upgraded schema is the one the code needs
    finally:
        engine.dispose()


def test_the_head_revision_read_without_alembic_is_alembics() -> None:
    # check_schema reads the head from the migration files' names, so commands start without
    # Alembic: that must agree with what Alembic itself says
    assert head_revision() == ScriptDirectory.from_config(_alembic_config()).get_current_head()


def test_title_keys_of_the_migration_and_of_identity_agree() -> None:
    migration = importlib.import_module("daemon.db.migrations.versions.0003_paper_identity")
    for title in (
        "Attention Is All You Need: Transformers for Sequence Transduction",
        "Schrödinger's Cat: a $\\mathbb{Z}$-Study of Things",
        "Editorial",
        "Observation of excited $\\Omega_c^0$ baryons in $\\Omega_b^- \\to \\Xi_c^+ K^-\\pi^-$",
    ):
        assert migration._title_key(title) == title_key(title)


def test_a_database_a_newer_version_upgraded_is_refused_with_what_to_do(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'newer.db'}")
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        for call in (check_schema, upgrade):  # upgrade: Alembic's traceback before
            with pytest.raises(SchemaError, match="at revision 9999, which this version of"):
                call(engine)
    finally:
        engine.dispose()


def test_a_postgresql_server_that_never_answers_is_given_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a server that takes the connection and says nothing (a host gone behind a proxy, a
    # firewall holding it): `paperwire status` and the daemon's jobs waited for ever, with
    # no line said (operations QA, a proxy that stopped forwarding)
    import socket
    import threading

    import sqlalchemy as sa

    from daemon.db import engine as engines

    monkeypatch.setattr(engines, "CONNECT_TIMEOUT_SECONDS", 2)  # libpq's least
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # the kernel completes the handshake; nobody ever answers
    port = silent.getsockname()[1]
    outcome: list[BaseException | None] = []

    def connect() -> None:
        try:
            engines.make_engine(f"postgresql+psycopg://paperwire@127.0.0.1:{port}/x").connect()
            outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    try:
        worker = threading.Thread(target=connect, daemon=True)
        worker.start()
        worker.join(60)  # 30 times the timeout
        assert outcome, "still waiting for a server that never answers"
        assert isinstance(outcome[0], sa.exc.OperationalError)
        assert "timeout" in str(outcome[0]).lower()
    finally:
        silent.close()
    # a connect_timeout in the URL is the operator's: what the driver is given, not the URL
    # (the URL keeps it whatever make_engine passes besides, and connect_args win over it)
    for query, given in (("?connect_timeout=30&sslmode=disable", "30"), ("?sslmode=disable", 2)):
        asked = _driver_params(f"postgresql+psycopg://u@127.0.0.1:{port}/x{query}")
        assert asked["connect_timeout"] == given and asked["sslmode"] == "disable"


def _driver_params(url: str) -> dict[str, object]:
    """What make_engine's engine gives the driver to connect (it does not connect)."""
    import sqlalchemy as sa

    from daemon.db import engine as engines

    engine = engines.make_engine(url)
    asked: list[dict[str, object]] = []

    @sa.event.listens_for(engine, "do_connect")
    def stop(dialect: object, record: object, args: object, params: dict[str, object]) -> None:
        asked.append(dict(params))
        raise ConnectionAbortedError("not connecting")

    with pytest.raises(ConnectionAbortedError):
        engine.connect()
    engine.dispose()
    return asked[0]


@pytest.mark.postgres
def test_a_postgresql_connection_notices_a_server_gone_within_a_minute(pg_server: str) -> None:
    # an open connection to a host that died waited for the kernel's keepalive, 2 hours,
    # and the job on it held every other job (operations QA, left there)
    from daemon.db import engine as engines

    def parameters(url: str) -> dict[str, str]:
        engine = engines.make_engine(url)
        try:
            with engine.connect() as conn:
                info = conn.connection.driver_connection.info  # type: ignore[union-attr]
                return dict(info.get_parameters())
        finally:
            engine.dispose()

    given = parameters(pg_server)
    assert {k: given.get(k) for k in ("keepalives", "keepalives_idle", "keepalives_interval",
                                      "keepalives_count", "tcp_user_timeout")} == {
        "keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10",
        "keepalives_count": "3", "tcp_user_timeout": "60000"}  # fmt: skip
    separator = "&" if "?" in pg_server else "?"
    assert parameters(f"{pg_server}{separator}keepalives_idle=120")["keepalives_idle"] == "120"


def test_a_database_its_user_may_not_create_tables_in_says_what_to_do(
    pg_url: str, tmp_path: Path
) -> None:
    # docs/operations.md's `createdb paperwire` made a database owned by another role: on
    # PostgreSQL 15 its user may not create tables in the schema public, and `db upgrade`
    # printed a traceback of 120 lines (upgrade QA)
    import uuid

    import sqlalchemy as sa

    from tests.daemon.cli_helpers import write_config
    from tests.daemon.in_process import Runner

    role = f"paperwire_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(sa.text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))  # as PostgreSQL 15
    url = sa.engine.make_url(pg_url).set(username=role, password=None)
    config = write_config(tmp_path)
    text = config.read_text().replace(
        f'url = "sqlite:///{tmp_path / "paperwire.db"}"',
        f'url = "{url.render_as_string(hide_password=False)}"',
    )
    config.write_text(text)
    try:
        done = Runner(config, tmp_path)("db", "upgrade", expect=1)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP ROLE "{role}"'))
        admin.dispose()
    said = " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) <= 3, done.stderr
    assert "permission denied for schema public" in said
    # the command that mends it, with this database's and this role's names (it said
    # `ALTER DATABASE name OWNER TO user`, to be filled in)
    assert f'ALTER DATABASE "{url.database}" OWNER TO "{role}"' in said, said


def test_a_sqlite_database_db_upgrade_creates_is_readable_by_no_other_account(
    tmp_path: Path,
) -> None:
    # it holds every subscriber's address and Slack webhooks (secrets): with the usual umask
    # 022 the file `db upgrade` made, and its -wal, were readable by every account of the host
    import os

    path = tmp_path / "var" / "paperwire.db"
    old = os.umask(0o022)
    try:
        engine = make_engine(f"sqlite:///{path}")
        try:
            upgrade(engine)
            with engine.connect() as conn:  # WAL: the -wal and -shm files exist while open
                conn.exec_driver_sql("SELECT 1")
                made = [p for p in path.parent.iterdir() if p.name.startswith("paperwire.db")]
                assert {p.name for p in made} >= {"paperwire.db", "paperwire.db-wal"}
                modes = {p.name: oct(p.stat().st_mode & 0o777) for p in made}
        finally:
            engine.dispose()
    finally:
        os.umask(old)
    assert set(modes.values()) == {"0o640"}, modes  # no right for others; the group reads


def test_a_sqlite_database_in_a_folder_a_group_shares_stays_the_groups(tmp_path: Path) -> None:
    # the daemon's account and the admins share var/ through a group (umask 002): 2bcbd3a made
    # the file `db upgrade` creates 0600, so the daemon could not open what an admin made
    import os

    path = tmp_path / "shared" / "paperwire.db"
    old = os.umask(0o002)
    try:
        engine = make_engine(f"sqlite:///{path}")
        try:
            upgrade(engine)
        finally:
            engine.dispose()
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == "0o660"

"""The engine (SQLite or PostgreSQL), the schema's migrations, and the base of every store.

Alembic is imported only by the functions that migrate or inspect the schema: the other
commands start without it.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session, SQLModel, create_engine

from daemon.errors import PaperwireError

if TYPE_CHECKING:
    from alembic.config import Config


class SchemaError(PaperwireError):
    """The database schema is missing or older than this code."""


# SQLite: how long a write waits for another process's write lock (a backup, another command)
SQLITE_BUSY_TIMEOUT_MS = 30_000
PING_AFTER_IDLE = 1.0  # seconds in the pool after which a connection is checked before use
# PostgreSQL: a server that takes the connection and never answers (a host gone, a proxy or
# firewall holding it) is given up after this long; libpq's default waits for ever
CONNECT_TIMEOUT_SECONDS = 10
# PostgreSQL: an open connection to a server that is gone (a host down, a network cut) is
# noticed within about a minute, not after the kernel's 2 hours of silence: TCP keepalives
# after 30 s idle, every 10 s, 3 unanswered; data unacknowledged for 60 s ends it too. A job
# waiting on it held every other job (they run one at a time). The URL's own values win.
_PG_KEEPALIVES: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,  # ms
}


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use (the server may have restarted meanwhile) when it
    sat in the pool for a while: not one given back a moment ago. The delivery checks out a
    connection for every message it records; a ping each time (`pool_pre_ping`) was a round
    trip more per message. A dead connection found here is replaced, and the others of the pool
    with it, as `pool_pre_ping` does."""

    @sa.event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE:
            return  # a new connection, or one used a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as e:
            raise sa.exc.InvalidatePoolError(f"{type(e).__name__}: {e}") from e
        if not alive:
            raise sa.exc.InvalidatePoolError("the connection did not answer")


def _statement_timeout(engine: Engine, seconds: float, url: sa.URL) -> None:
    """PostgreSQL: every statement the server has not finished within `seconds` (0: no limit)
    is cancelled ("canceling statement due to statement timeout"), instead of holding the page
    or the job waiting on it. Set on each new connection by a `SET` (some poolers, PgBouncer
    among them, refuse a startup `options` parameter); one in the URL's `options` wins. Under
    PgBouncer's transaction pooling it holds only on the server connection it was sent on:
    docs/operations.md says to set it on the server (ALTER ROLE … IN DATABASE) instead.
    The migrations and the fit's whole-table reads lift it for their transaction
    (`no_statement_timeout`)."""
    options = url.query.get("options", "")
    own = " ".join([options] if isinstance(options, str) else options)
    if not seconds or "statement_timeout" in own:
        return
    milliseconds = max(1, round(seconds * 1000))

    @sa.event.listens_for(engine, "connect")
    def _set_timeout(dbapi_conn: Any, _record: Any) -> None:
        autocommit = dbapi_conn.autocommit
        dbapi_conn.autocommit = True  # a SET of the session, outside any transaction
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET statement_timeout = {milliseconds}")
        dbapi_conn.autocommit = autocommit


def no_statement_timeout(conn: sa.Connection) -> None:
    """No statement timeout until the end of `conn`'s transaction (PostgreSQL): a migration
    rewriting a large table may take minutes, and cancelled it is rolled back whole; the fit
    reads whole tables, and the timeout counts the time the rows take to reach us (340 MB of
    papers over a 100 Mbit link: about 27 s)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")


def make_engine(url: str, *, echo: bool = False, statement_timeout_seconds: float = 0) -> Engine:
    """An engine for `url`; SQLite gets foreign keys and a busy timeout (its file and folder
    are made by `upgrade` only); PostgreSQL a connect timeout, TCP keepalives and a statement
    timeout (0: none)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # hide_parameters: an error's text never carries the values of a statement (a Slack
    # webhook is a secret, an address personal), and errors are logged
    connect_args: dict[str, Any] = {}
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "postgresql":
        defaults = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, **_PG_KEEPALIVES}
        connect_args = {k: v for k, v in defaults.items() if k not in parsed.query}
    engine = create_engine(url, echo=echo, hide_parameters=True, connect_args=connect_args)
    _ping_when_idle(engine)
    if engine.dialect.name == "postgresql":
        _statement_timeout(engine, statement_timeout_seconds, parsed)
    if engine.dialect.name == "sqlite":
        # SQLite: every transaction takes the write lock up front (BEGIN IMMEDIATE), so two
        # workers claiming deliveries are serialised instead of both reading the same rows;
        # WAL lets readers (the web app) go on meanwhile.

        @sa.event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" below issues BEGIN
            dbapi_conn.create_function(SQLITE_LOWER, 1, _lower, deterministic=True)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if not url.startswith("sqlite:///:memory:") and url != "sqlite://":
                cur.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL: a commit survives the process crashing (what delivery records
                # rely on); only a power cut can lose the last ones. No fsync per commit.
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: sa.Connection) -> None:
            # `reading()`: a plain BEGIN, which in WAL mode reads beside a writer
            read = conn.get_execution_options().get(READ_ONLY, False)
            conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")

    return engine


def sqlite_trouble(error: BaseException, path: str) -> tuple[str, str] | None:
    """(what is wrong, what to do) when `error` is the SQLite file at `path` locked by another
    process past the busy timeout, read-only, or on a full disk; None for anything else."""
    import sqlite3

    orig = getattr(error, "orig", None)
    code = getattr(orig, "sqlite_errorname", "") if isinstance(orig, sqlite3.Error) else ""
    if not code.startswith(("SQLITE_BUSY", "SQLITE_READONLY", "SQLITE_FULL", "SQLITE_IOERR")):
        return None
    folder = os.path.dirname(os.path.abspath(path))
    if code.startswith("SQLITE_BUSY"):
        return (f"{path} is locked: another process (another paperwire command, sqlite3) held "
                f"its write lock for {SQLITE_BUSY_TIMEOUT_MS // 1000} s",
                "try again when it is done")  # fmt: skip
    if code.startswith("SQLITE_READONLY"):
        return (f"{path} cannot be written ({orig})",
                f"give the account running paperwire write access to {path} and to {folder}, "
                "where SQLite writes its -wal and -shm files")  # fmt: skip
    # SQLITE_FULL, or SQLITE_IOERR: a -wal or -shm file that could not grow on a full disk
    return (f"{path} cannot be written ({orig})",
            f"free space on the disk of {folder} (`df -h {folder}`), then try again")  # fmt: skip


SQLITE_LOWER = "paperwire_lower"  # `lowered` on SQLite: Python's str.lower, set on every connection


def _lower(text: str | None) -> str | None:
    return None if text is None else text.lower()


class lowered(FunctionElement[str]):
    """`lower(x)` that lowers every letter on both backends: SQLite's own `lower` only knows
    ASCII ("ÉVA" stays "ÉVA"), so there it is Python's `str.lower`, registered on connect."""

    type = sa.String()
    name = "lowered"
    inherit_cache = True


@compiles(lowered)
def _lowered(element: lowered, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(lowered, "sqlite")
def _lowered_sqlite(element: lowered, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{SQLITE_LOWER}({compiler.process(element.clauses, **kw)})"


IN_CHUNK = 10_000  # ids in one IN (…) list (PostgreSQL takes at most 65,535 parameters)
READ_ONLY = "paperwire_read_only"  # execution option: this connection only reads


def in_memory(engine: Engine) -> bool:
    """True for an in-memory SQLite database: one connection (per thread) holds it, so it
    cannot be shared with another thread's connection or another process."""
    url = engine.url
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def database_trouble(error: BaseException) -> bool:
    """Whether `error` is the database's, not the data's nor a bug's: out of reach, restarted,
    locked, full, a statement cancelled (OperationalError), a connection lost (whatever the
    driver calls it: SQLAlchemy marks it invalidated) or the pool out of connections
    (TimeoutError). A value it refused (IntegrityError, DataError) is not, nor an
    InterfaceError on a connection that still works: psycopg's "the cursor is closed" is a bug.
    The one answer of the ingest (the feed is left, not failed), the delivery (a sent digest's
    record is tried again) and the pages (503, not the 500 of a bug)."""
    troubles = (sa.exc.OperationalError, sa.exc.TimeoutError, sa.exc.DisconnectionError)
    invalidated = isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated
    return isinstance(error, troubles) or invalidated


def answers(engine: Engine) -> bool:
    """Whether the database answers a query now (on SQLite without its write lock: a file
    locked by another process's write still answers)."""
    try:
        with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        return False
    return True


def table_of(model: type[SQLModel]) -> sa.Table:
    """The Core table of a SQLModel class, for bulk statements and plain-row reads."""
    table = model.__table__  # type: ignore[attr-defined]  # set by SQLModel's metaclass
    assert isinstance(table, sa.Table)
    return table


class Repository:
    """Base of the stores: each public method opens its own short transaction, so one user's or
    one feed's failure never rolls back another's work."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def reading(self) -> sa.Connection:
        """A connection for reads only. On SQLite it does not take the write lock (every
        other transaction does, up front): it reads the last commit while a writer writes."""
        return self.engine.connect().execution_options(**{READ_ONLY: True})

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session on a `reading()` connection: ORM reads that do not wait for a writer."""
        with self.reading() as conn, Session(conn, expire_on_commit=False) as s:
            yield s


def _alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "daemon.db:migrations")
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema with the Alembic migrations."""
    from alembic import command

    _create_private(engine)
    current = _current_revision(engine)
    _not_newer(current)
    if revision == "head" and current == head_revision():
        _fill_keys(engine)
        return  # nothing else to do (`db upgrade` runs before every start)
    _migrate(engine, command.upgrade, revision)
    if revision == "head":  # rows an old daemon added since an upgrade to 0008 … head - 1
        _fill_keys(engine)


def _create_private(engine: Engine) -> None:
    """A SQLite file about to be created, made first without any right of other accounts
    (SQLite gives its -wal and -shm files the same mode): it holds the subscribers' addresses
    and Slack webhooks, which are secrets, and the usual umask would leave it readable by
    everyone. Its group keeps what the umask gives, as a configuration file's does: in a
    folder shared by a group (umask 002), the daemon's account and the admins' both use it."""
    path = missing_file(engine)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with suppress(FileExistsError):  # made meanwhile: its mode is its maker's
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o660))


def make_private(engine: Engine) -> str:
    """A SQLite database file (and its -wal and -shm) that other accounts may use, made by an
    earlier version (0644 under umask 022, before `_create_private`): their rights are taken
    away, its owner's and group's kept. One line saying what changed, or "" for nothing."""
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:" or path.startswith("file:"):
        return ""
    changed: list[tuple[str, int]] = []
    for name in (path, f"{path}-wal", f"{path}-shm"):
        try:
            mode = os.stat(name).st_mode & 0o7777
        except OSError:  # no -wal nor -shm while nothing has it open
            continue
        if not mode & 0o007:
            continue
        try:
            os.chmod(name, mode & ~0o007)
        except PermissionError:  # another account's file: its owner (or root) must do it
            return (f"{name}: other accounts may read it ({mode & 0o777:04o}) and only its "
                    f"owner can change that: chmod o-rwx {path}*")  # fmt: skip
        changed.append((name, mode))
    if not changed:
        return ""
    name, mode = changed[0]
    also = (
        f" (and {', '.join(n.removeprefix(path) for n, _ in changed[1:])})" if changed[1:] else ""
    )
    return (f"{name}{also}: other accounts could read the database, now no more "
            f"({mode & 0o777:04o} → {mode & 0o770:04o}; owner and group kept)")  # fmt: skip


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to `revision` (no command does: tests, and an operator's last
    resort), as `upgrade` goes: a migration's way down rebuilds tables on SQLite too."""
    from alembic import command

    _migrate(engine, command.downgrade, revision)


def _migrate(engine: Engine, step: Callable[[Config, str], None], revision: str) -> None:
    """Alembic's `step` to `revision` in one transaction, with foreign keys off on SQLite
    (a rebuilt table is dropped, which would delete what refers to it); rolled back when it
    leaves rows referring to nothing that did not before."""
    cfg = _alembic_config()
    with engine.connect() as conn, _foreign_keys_off(conn), conn.begin():
        no_statement_timeout(conn)
        broken = _broken_references(conn)  # rows that already referred to nothing
        cfg.attributes["connection"] = conn
        step(cfg, revision)
        new = [row for row in _broken_references(conn) if row not in broken]
        if new:
            raise SchemaError(
                f"the migration would leave {len(new)} row(s) referring to nothing (first: "
                f"{new[0][0]} row {new[0][1]} → {new[0][2]}); nothing was changed"
            )


def _fill_keys(engine: Engine) -> None:
    """The lowered keys of the users and channels a daemon of the version before 0008 added
    after `db upgrade` (it went on until its restart, and knows no such column)."""
    from daemon.db.models import Channel, User

    with engine.begin() as conn:
        no_statement_timeout(conn)  # every user's row on the first start after an upgrade
        for model, source, key in ((User, "name", "name_key"), (Channel, "address", "address_key")):
            t = table_of(model)
            rows = conn.execute(sa.select(t.c.id, t.c[source]).where(t.c[key].is_(None))).all()
            if rows:
                conn.execute(
                    sa.update(t)
                    .where(t.c.id == sa.bindparam("row"))
                    .values({key: sa.bindparam("lowered")}),
                    [{"row": i, "lowered": str(v).lower()} for i, v in rows],
                )


@contextmanager
def _foreign_keys_off(conn: sa.Connection) -> Iterator[None]:
    """SQLite: foreign keys off while the migrations rebuild tables (dropping the old table
    would delete the rows that refer to it), on again after. The pragma works only outside a
    transaction: it goes to the driver's connection before the migrations' BEGIN."""
    if conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def _broken_references(conn: sa.Connection) -> list[tuple[object, ...]]:
    """SQLite: the rows whose foreign key refers to no row (what foreign keys off could let
    through); PostgreSQL checks them itself."""
    if conn.dialect.name != "sqlite":
        return []
    return [tuple(r) for r in conn.exec_driver_sql("PRAGMA foreign_key_check")]


def schema_revisions(engine: Engine) -> tuple[str | None, str]:
    """(the database's revision, the code's head revision)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, str(head)


def missing_file(engine: Engine) -> str | None:
    """The path of a SQLite database file that does not exist (connecting would create an
    empty file there: a mistyped path would leave one behind), else None."""
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if path and path != ":memory:" and not path.startswith("file:") and not Path(path).exists():
        return path
    return None


def no_database(path: str) -> str:
    """What to do about a SQLite file that is not there. A relative path is read from the
    directory paperwire is started in: started elsewhere, `db upgrade` would make a second,
    empty database there, so that comes last."""
    if Path(path).is_absolute():
        return (
            f"no database at {path}: run `paperwire db upgrade` to create it, or correct "
            "database.url"
        )
    cwd = Path.cwd()
    return (
        f"no database at {cwd / path} (database.url's {path} is relative to the directory "
        f"paperwire is started in, {cwd}): start paperwire in the directory that holds it, or "
        "give database.url an absolute path; `paperwire db upgrade` creates a new, empty one here"
    )


def check_schema(engine: Engine) -> None:
    """Refuse to work on a database whose schema is not the code's (without loading Alembic:
    the revision is one row of `alembic_version`, the head is the newest migration file)."""
    path = missing_file(engine)
    if path:
        raise SchemaError(no_database(path))
    current = _current_revision(engine)
    head = head_revision()
    _not_newer(current)
    if current != head:
        raise SchemaError(
            f"database schema is at revision {current or 'none (empty database)'}, this version "
            f"needs {head}: run `paperwire db upgrade` first"
        )


def _current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        row = conn.execute(sa.text("SELECT version_num FROM alembic_version")).first()
        return str(row[0]) if row else None


MIGRATIONS = Path(__file__).resolve().parent / "migrations" / "versions"


def head_revision() -> str:
    """The newest migration: revisions are numbered files (0001_…, 0002_…) in one line."""
    return _revisions()[-1]


@functools.cache  # the files of this version: read once, not once per check of a command
def _revisions() -> tuple[str, ...]:
    names = sorted(p.name for p in MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))
    if not names:
        raise SchemaError(f"no migrations found in {MIGRATIONS}")
    return tuple(name[:4] for name in names)


def _not_newer(current: str | None) -> None:
    """A database a newer paperwire upgraded: neither `db upgrade` nor any command can use it
    (Alembic's own error was a traceback: "Can't locate revision identified by …")."""
    known = _revisions()
    if current is not None and current not in known:
        raise SchemaError(
            f"database schema is at revision {current}, which this version of paperwire does "
            f"not know (it knows up to {known[-1]}): a newer version upgraded it; run that "
            "version, or restore a backup made before the upgrade"
        )

"""The `paperwire` command: each command parses its arguments and calls one function.

Heavy libraries (SQLAlchemy, pydantic, scikit-learn, Alembic, FastAPI) are imported inside the
commands that use them, so `paperwire --help` and the small commands answer at once (a test
checks that importing this module loads none of them).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from daemon.errors import PaperwireError

if TYPE_CHECKING:
    from datetime import date, datetime

    from sqlalchemy import Engine

    from daemon import jobs
    from daemon.app import App
    from daemon.db.models import ChannelKind
    from daemon.db.rows import ChannelRow, UserRow
    from daemon.library.importer import ImportReport
    from daemon.settings import Settings

cli = typer.Typer(
    help="paperwire: today's new papers, ranked for each subscriber, delivered by email or Slack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
users_cli = typer.Typer(
    help="Add, show, change, import, list and remove subscribers.", no_args_is_help=True
)
feeds_cli = typer.Typer(
    help="Add, test, list, enable, disable, re-address (set-url) and remove feeds.",
    no_args_is_help=True,
)
config_cli = typer.Typer(help="Check, show and change the configuration.", no_args_is_help=True)
db_cli = typer.Typer(help="Create and upgrade the database schema.", no_args_is_help=True)
papers_cli = typer.Typer(help="Find stored papers.", no_args_is_help=True)
cli.add_typer(users_cli, name="users")
cli.add_typer(feeds_cli, name="feeds")
cli.add_typer(config_cli, name="config")
cli.add_typer(db_cli, name="db")
cli.add_typer(papers_cli, name="papers")

UsersOption = Annotated[
    list[str] | None,
    typer.Option("--user", "-u", metavar="NAME", help="Only this user (repeatable)."),
]

# Piped (a timer's mail, `| less`, a file), Rich would fit tables to 80 columns and cut every
# cell short ("2026-…", "postpo…"): as wide as their contents instead, up to PIPED_WIDTH.
PIPED_WIDTH = 200
out = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else PIPED_WIDTH)
err = Console(stderr=True, soft_wrap=True)  # messages: one line each, never cut mid-word


class State:
    config: Path | None = None


_state = State()


@cli.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Configuration file (default: $PAPERWIRE_CONFIG, else config/paperwire.toml).",
        ),
    ] = None,
) -> None:
    _state.config = config


def _settings() -> Settings:
    from daemon.logs import setup_logging
    from daemon.settings import load_settings

    settings = load_settings(_state.config)
    setup_logging(settings.log.level, as_json=settings.log.json_format)
    return settings


@contextmanager
def _open_app(prepare: Callable[[Engine], None] | None = None) -> Iterator[App]:
    """The wired app for one command, closed afterwards. `prepare` (default: the schema
    check) runs on the database first: refused, nothing is left behind (no link key)."""
    from daemon.app import make_app
    from daemon.db import check_schema
    from daemon.settings import config_path

    app = make_app(
        _settings(), config_file=config_path(_state.config), prepare=prepare or check_schema
    )
    try:
        yield app
    finally:
        app.close()


def _who() -> str:
    """Who acts from the command line, for the audit log: cli:<unix user>."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a container)
        return "cli:unknown"


def _audit(app: App, action: str, target: str = "", detail: str = "") -> None:
    """Record a change made from the command line in the audit log the console shows."""
    app.store.admin.audit(app.clock(), _who(), action, target, detail)


# Events the command's own summary reports (once, on stderr): not logged as well.
SUMMARISED = frozenset(
    {
        ("paperwire.jobs", "feed failed"),
        (
            "paperwire.jobs",
            "database error: a feed's papers not stored, it is fetched again by the next run",
        ),
        ("paperwire.jobs", "delivery failed for good"),
        ("paperwire.jobs", "transport unavailable; digests wait"),
        ("paperwire.jobs", "ranking failed"),
    }
)


def _not_summarised(record: logging.LogRecord) -> bool:
    return (record.name, record.msg) not in SUMMARISED


@contextmanager
def _as_error(*kinds: type[Exception]) -> Iterator[None]:
    """These exceptions are the user's input: a one-line error (exit 1), not a traceback."""
    try:
        yield
    except kinds as e:
        raise PaperwireError(str(e)) from None


@contextmanager
def _stoppable(app: App) -> Iterator[None]:
    """A job run from the command line stops as the daemon's does: the first Ctrl-C or SIGTERM
    asks it to stop (the message in flight is finished and recorded, the claims not started
    are given back), a second ends the process at once. Stopped, the command exits 128 + the
    signal, after its summary. (Python's own KeyboardInterrupt ended it at once: a message the
    server had accepted stayed pending and was sent again by the next run.)"""
    import signal

    stopped_by: list[int] = []

    def ask(sig: int, _frame: object) -> None:
        if stopped_by:
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)  # die of it, as a second Ctrl-C expects
            return
        stopped_by.append(sig)
        app.stopping.set()
        err.print(
            "stopping: finishing the work in flight; the next run does the rest "
            "(press Ctrl-C again to end at once)",
            markup=False,
            highlight=False,
        )

    previous = {sig: signal.signal(sig, ask) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stopped_by:
        raise SystemExit(128 + stopped_by[0])


@contextmanager
def _progress() -> Iterator[jobs.Progress]:
    """While a job runs for the command line: a Rich progress bar on a terminal (silent
    otherwise) with the log lines printed above it, not through it; the events the summary
    reports are not logged too."""
    root = logging.getLogger()
    handlers = [h for h in root.handlers if isinstance(h, logging.StreamHandler)]
    for h in handlers:
        h.addFilter(_not_summarised)
    try:
        with _bar() as update:
            yield update
    finally:
        for h in handlers:
            h.removeFilter(_not_summarised)


@contextmanager
def _bar() -> Iterator[jobs.Progress]:
    if not err.is_terminal:
        yield lambda what, done, total: None
        return
    import sys

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("working", total=None)

        def update(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)

        # Rich redirects sys.stderr while the bar is live; the log handler still holds the
        # stream it was made with: point it at the redirected one meanwhile
        swapped = [
            (h, h.setStream(sys.stderr))
            for h in logging.getLogger().handlers
            if isinstance(h, logging.StreamHandler)
        ]
        try:
            yield update
        finally:
            for h, stream in swapped:
                if stream is not None:  # None: it was the same stream
                    h.setStream(stream)


def entry() -> None:
    """The `paperwire` console script: `main`, then a quick exit. Once the output is flushed,
    nothing is left to do, and tearing down an interpreter that loaded SQLAlchemy and pydantic
    takes a fifth of a second of every short command."""
    import contextlib
    import logging
    import os
    import sys

    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BrokenPipeError, ValueError):  # `paperwire … | head`
            stream.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point (`argv`: the arguments, default sys.argv[1:]). PaperwireError (or a
    database that cannot be reached) becomes a one-line message and exit status 1."""
    try:
        cli(args=argv, prog_name="paperwire")
    except PaperwireError as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, markup=True)
        raise SystemExit(1) from None
    except Exception as e:
        trouble = _database_error(e)
        if trouble is None:
            raise
        reason, fix = trouble
        err.print(
            f"[bold red]error:[/] cannot use the database: {escape(reason)}; {escape(fix)}",
            highlight=False,
        )
        raise SystemExit(1) from None


def _database_error(e: Exception) -> tuple[str, str] | None:
    """(what is wrong, what to do) when `e` is the database's (or its URL's) fault, not a bug."""
    from sqlalchemy.exc import DBAPIError, OperationalError  # loaded only when it failed

    from daemon.db.engine import database_trouble
    from daemon.settings import shown_url

    reason = shown_url(" ".join(str(getattr(e, "orig", "")).split()))
    sqlite = _sqlite_trouble(e) if isinstance(e, OperationalError) else None
    if sqlite:  # the file is right, but locked, read-only or on a full disk
        return sqlite
    if isinstance(e, OperationalError):  # database down, wrong credentials, unreadable file
        return reason, "check database.url"
    if database_trouble(e):
        # the pool out of connections (TimeoutError: no `orig`), a connection lost that the
        # driver calls another error (the database restarted): its state just now
        said = reason or shown_url(" ".join(str(e.args[0] if e.args else e).split()))
        return said, "try again (if it goes on, check that the database is up, and database.url)"
    if isinstance(e, DBAPIError) and e.statement is None:
        # refused before any statement: the connection's own parameters (a libpq one in
        # the URL that psycopg cannot read: "bad value for connect_timeout")
        return reason, "check database.url"
    if isinstance(e, DBAPIError) and getattr(e.orig, "sqlstate", "") == "42501":
        # PostgreSQL 15+: only the database's owner may create tables in its schema public
        reason = " ".join(str(e.orig).splitlines()[0].split())  # not the statement after
        return reason, _owner_fix()
    return None


def _sqlite_trouble(e: Exception) -> tuple[str, str] | None:
    """A SQLite file that database.url names rightly but that cannot be used now (they were
    "…; check database.url")."""
    from daemon.db.engine import sqlite_trouble
    from daemon.settings import load_settings

    try:
        url = load_settings(_state.config).database.url
    except Exception:  # no file to name then: the general advice
        return None
    return sqlite_trouble(e, url.removeprefix("sqlite:///"))


def _owner_fix() -> str:
    """What lets the user of database.url create its tables: own the database (PostgreSQL 15+),
    with the names of database.url's database and user when it names both."""
    from sqlalchemy.engine import make_url

    from daemon.settings import load_settings

    try:
        url = make_url(load_settings(_state.config).database.url)
        database, user = url.database, url.username
    except Exception:  # the general advice then
        database = user = None
    if not database or not user:
        return (
            "the user of database.url must own the database: `ALTER DATABASE name OWNER "
            "TO user` (or create it with `createdb -O user name`)"
        )

    def quoted(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    return (
        f"the user of database.url must own the database: as a superuser, `ALTER DATABASE "
        f"{quoted(database)} OWNER TO {quoted(user)};` (or create it with `createdb -O "
        f"{user} {database}`)"
    )


# ---- the daemon and its jobs -------------------------------------------------------------------


@cli.command()
def run() -> None:
    """Start the daemon: scheduled ingest and digests, plus the web app for the links."""
    from daemon.scheduler import serve

    with _open_app() as app:
        app.recommender_config  # noqa: B018  (validates recommender.options before starting)
        s = app.settings
        base = str(s.server.base_url).rstrip("/")

        from daemon.config_file import readable_by_others
        from daemon.db.engine import make_private
        from daemon.settings import config_path

        exposed = readable_by_others(config_path(_state.config))
        private = make_private(app.store.engine)  # a file an earlier version left 0644
        warnings = (s.server.links_elsewhere(), s.server.weak_key(), exposed, private)
        for warning in (*warnings, s.schedule.hours_unreached()):
            if warning:
                logging.getLogger("paperwire.daemon").warning(warning)

        def announce() -> None:
            console = f"{base}/admin" if s.admin.passwords else "closed (no admin yet)"
            listening = f"http://{s.server.host}:{s.server.port}"
            if s.log.json_format:  # every line JSON: the start is a log event too
                logging.getLogger("paperwire.daemon").info(
                    "paperwire running",
                    extra={"listening": listening, "base_url": base, "console": console},
                )
                return
            out.print(
                f"paperwire running on {listening}; the digests' links point to {base}; "
                f"console: {console}; Ctrl-C or SIGTERM stops it",
                markup=False,
            )

        serve(app, announce)


@cli.command()
def ingest() -> None:
    """Fetch every enabled feed once and store the new papers.

    Exit status 1 when every feed failed (one failing among others is reported, and the others
    are stored), or the database did (the feeds it left are fetched again by the next run).
    """
    from daemon import jobs

    with _open_app() as app, _stoppable(app):
        with _progress() as progress:
            try:
                report = jobs.ingest(app, app.clock(), progress=progress)
            except Exception as e:  # the database failed again: what was stored, what is left
                stopped = jobs.stopped_report(e)
                if stopped is not None:
                    _print_ingest(stopped)
                raise
        _print_ingest(report)
    if (report.feeds_failed or report.feeds_left) and not report.feeds_ok + report.feeds_unchanged:
        raise SystemExit(1)


@cli.command()
def digest(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show each user's picks; store and send nothing.")
    ] = False,
    user: UsersOption = None,
) -> None:
    """Rank the window's papers for every subscriber now and deliver their digests.

    Exit status 1 when a transport could deliver nothing (the digests are kept).
    """
    from daemon import jobs

    with _open_app() as app, _stoppable(app):
        user = _check_users(app, user)
        now = app.clock()
        with _progress() as progress:
            if dry_run:
                report = jobs.make_digests(
                    app, now, users=user or None, force=True, dry_run=True, progress=progress
                )
                _print_digests(report, show_picks=True)
                return
            made, delivered = jobs.digest_and_deliver(
                app, now, users=user or None, force=True, progress=progress
            )
        _print_digests(made, show_picks=False)
        _print_delivery(delivered)
    _exit_if_unusable(delivered)


def _check_users(app: App, names: list[str] | None) -> list[str]:
    """--user names must exist (a typo would silently do nothing); their handles as stored
    ("ADA" is ada's, in any case). Those who get no digest now (paused, unsubscribed) are
    named, with what resumes them: the count of digests made alone did not say why."""
    from daemon.jobs import is_paused

    users = [app.store.people.get(name) for name in names or []]
    for user in users:
        why = ""
        if not user.active:
            why = f"is unsubscribed: no digest (`paperwire users set {user.name} --subscribe`"
            why += " resumes it)"
        elif is_paused(user, app.clock()):
            why = f"is paused until {user.paused_until}: no digest before (`paperwire users "
            why += f"set {user.name} --resume` ends the pause)"
        if why:
            err.print(f"{user.name} {why}", markup=False, highlight=False)
    return [user.name for user in users]


@cli.command()
def deliver() -> None:
    """Send the digests that are due (new ones and retries).

    Exit status 1 when a transport could deliver nothing (the digests are kept).
    """
    from daemon import jobs

    with _open_app() as app, _stoppable(app):
        with _progress() as progress:
            report = jobs.deliver_due(app, app.clock(), progress=progress)
        _print_delivery(report)
        _print_waiting(app)
    _exit_if_unusable(report)


@cli.command()
def cycle(
    user: UsersOption = None,
) -> None:
    """Ingest, score and deliver once, for every subscriber, right now.

    Exit status 1 when a transport could deliver nothing (the digests are kept).
    """
    import time

    from daemon import jobs

    with _open_app() as app, _stoppable(app):
        user = _check_users(app, user)
        started = time.perf_counter()
        with _progress() as progress:
            report = jobs.cycle(app, app.clock(), users=user or None, progress=progress)
        _print_cycle(report, time.perf_counter() - started)
        _print_waiting(app)
    _exit_if_unusable(report.delivery)


@cli.command()
def demo(
    outbox: Annotated[
        Path | None, typer.Option(help="Where to leave the digests (default: var/demo/outbox).")
    ] = None,
    serve: Annotated[
        bool,
        typer.Option("--serve", help="Then run the daemon on the demo: the console, the links."),
    ] = False,
) -> None:
    """Ingest the bundled real feed samples into SQLite, add demo subscribers, run one cycle;
    print the console's address and a demo password (`--serve` then runs it)."""
    from daemon.demo import run_demo, serve_demo
    from daemon.settings import config_path

    settings = _settings()
    run_demo(settings, console=out, outbox=outbox, source=config_path(_state.config))
    if serve:
        serve_demo(out)


@cli.command("eval")
def evaluate(
    items: Annotated[Path, typer.Option(help="items.jsonl: {id, title, abstract, authors}.")],
    train: Annotated[Path, typer.Option(help="train.tsv: user<TAB>item (likes the ranker sees).")],
    test: Annotated[Path, typer.Option(help="test.tsv: user<TAB>item (likes to find).")],
    candidates: Annotated[
        Path | None, typer.Option(help="Ids that may be recommended (default: all not in train).")
    ] = None,
    k: Annotated[str, typer.Option(help="Cut-offs, comma-separated.")] = "10,50,100",
    method: Annotated[
        str | None,
        typer.Option(
            help="Rankers, comma-separated, options after ':' — e.g. "
            "'asl-centroid,asl-svm:max_users=300,paperwire' (default: anchors and the daemon's)."
        ),
    ] = None,
    max_users: Annotated[
        int | None, typer.Option(help="Evaluate an even sample of this many users.")
    ] = None,
    max_likes: Annotated[
        int | None,
        typer.Option(
            min=1, help="Keep a random N of each user's training likes (a young install)."
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the --max-likes / --newcomers draws (default 7).")
    ] = None,
    newcomers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Cut only K random users down to --max-likes likes and score only them "
            "(newcomers in a mature install).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    rankings_out: Annotated[
        Path | None, typer.Option(help="Write user<TAB>item<TAB>rank for the top max(k).")
    ] = None,
) -> None:
    """Measure rankers on libraries of liked papers: recall@k, nDCG@k, time per user.

    `paperwire` is the daemon's own recommender (the same code the daily job runs)."""
    from recommender.evaluate import DEFAULT_METHODS, DEFAULT_SEED, DataError, format_table
    from recommender.evaluate import evaluate as run_eval

    for path in (items, train, test, *([candidates] if candidates else [])):
        if not path.is_file():
            raise PaperwireError(f"{path}: no such file")
    try:
        ks = [int(x) for x in k.split(",") if x.strip()]
    except ValueError:
        raise PaperwireError(f"--k {k!r}: give cut-offs like 10,50,100") from None
    if newcomers is not None and max_likes is None:
        raise PaperwireError("--newcomers: give --max-likes too (the likes each newcomer keeps)")
    with _progress() as progress, _as_error(DataError):
        report = run_eval(
            items,
            train,
            test,
            candidates_path=candidates,
            ks=ks,
            methods=method.split(",") if method else list(DEFAULT_METHODS),
            max_users=max_users,
            max_likes=max_likes,
            seed=DEFAULT_SEED if seed is None else seed,
            newcomers=newcomers,
            rankings_out=rankings_out,
            progress=progress,
        )
    if as_json:
        print(report.to_json())
    else:
        print(format_table(report))


# ---- configuration and database --------------------------------------------------------------


@config_cli.command("check")
def config_check() -> None:
    """Validate the configuration file and environment; start nothing."""
    from daemon.app import recommender_config
    from daemon.config_file import readable_by_others
    from daemon.settings import config_path, load_settings

    settings = load_settings(_state.config)
    recommender_config(settings)
    exposed = readable_by_others(config_path(_state.config))
    server = settings.server
    for warning in (
        server.links_elsewhere(),
        server.weak_key(),
        exposed,
        settings.schedule.hours_unreached(),
    ):
        if warning:
            err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    out.print(
        f"[green]ok[/]: {config_path(_state.config)} is valid "
        f"({len(settings.feeds)} configured feed(s), database {_redact_db(settings.database.url)})"
    )


@config_cli.command("show")
def config_show() -> None:
    """Print the effective configuration as JSON, secrets masked."""
    from daemon.settings import load_settings

    settings = load_settings(_state.config)
    data = json.loads(settings.model_dump_json())
    data["database"]["url"] = _redact_db(settings.database.url)
    data["admin"]["passwords"] = dict.fromkeys(data["admin"]["passwords"], "**********")
    out.print_json(data=data)


def _stopped(channel: ChannelRow, why: bool = False) -> str:
    """ " (stopped)" after a stopped channel's address, "" after an active one; stopped by
    paperwire (its digests refused), with the reason when `why`."""
    if channel.active:
        return ""
    if channel.stopped_reason:
        reason = f": {channel.stopped_reason}" if why else ""
        return f" (stopped by paperwire{reason}; `users set --subscribe` starts it again)"
    return " (stopped)"


def _redact_db(url: str) -> str:
    from daemon.settings import shown_database_url

    return shown_database_url(url)


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Create the schema or bring it up to date (Alembic migrations)."""
    from daemon.db.engine import make_private, schema_revisions, upgrade

    with _open_app(prepare=upgrade) as app:  # then the link key, if there is none yet
        private = make_private(app.store.engine)  # a file an earlier version left 0644
        if private:
            out.print(private, markup=False, highlight=False, soft_wrap=True)
        current, _ = schema_revisions(app.store.engine)
        out.print(f"database at revision {current}")


@db_cli.command("status")
def db_status() -> None:
    """Show the database's schema revision and what this version needs; exit status 1 while
    they differ."""
    from daemon.db.engine import (
        head_revision,
        make_engine,
        missing_file,
        no_database,
        schema_revisions,
    )

    db = _settings().database
    engine = make_engine(db.url, statement_timeout_seconds=db.statement_timeout_seconds)
    try:  # only looks: neither the database nor a link key is made
        path = missing_file(engine)
        if path:
            out.print(f"{no_database(path)}; this version needs: {head_revision()}")
            raise typer.Exit(1)
        current, head = schema_revisions(engine)
        out.print(f"database revision: {current or 'none'}; this version needs: {head}")
        if current != head:  # a check a script or a unit can run: exit 1 until upgraded
            out.print("`paperwire db upgrade` brings it there")
            raise typer.Exit(1)
    finally:
        engine.dispose()


@db_cli.command("prune")
def db_prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count the digests that would be deleted.")
    ] = False,
) -> None:
    """Delete the digests of days more than digest.keep_days ago that are done with (sent,
    failed, empty), with their papers and delivery attempts, all of them now. The daemon does
    this after each digest run, at most 120 s a run; pending digests always stay. Stopping it
    midway loses nothing: what is deleted goes 5,000 digests at a time."""
    from daemon import jobs

    with _open_app() as app:
        before = jobs.prune_before(app, app.clock())
        keep = app.settings.digest.keep_days
        if before is None:
            out.print("digest.keep_days is 0: every digest is kept, none is deleted")
            return
        total = app.store.digests.prunable(before)
        if dry_run or not total:
            what = f"{total:,} digests done with from before {before} (keep_days = {keep})"
            out.print(f"{what}: {'would be deleted' if dry_run else 'nothing to delete'}")
            return
        with _progress() as progress:
            pruned = app.store.digests.prune(
                before, progress=lambda n: progress("deleting old digests", n, total)
            )
        _audit(app, "old digests deleted", detail=f"{pruned} from before {before}")
        out.print(f"deleted {pruned:,} digests from before {before} (keep_days = {keep})")


# ---- users, feedback, follows ----------------------------------------------------------------


@users_cli.command("add")
def users_add(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A short handle, e.g. 'ada'.")],
    email: Annotated[str | None, typer.Option(help="Email address for the digest.")] = None,
    slack_webhook: Annotated[
        str | None, typer.Option(help="Slack incoming-webhook URL for the digest.")
    ] = None,
    display_name: Annotated[
        str, typer.Option(help="Name used in greetings (default: from 'Name <address>').")
    ] = "",
    timezone: Annotated[str, typer.Option(help="IANA time zone of the user.")] = "UTC",
    digest_hour: Annotated[
        int | None, typer.Option(min=0, max=23, help="Local hour of the digest (default: config).")
    ] = None,
) -> None:
    """Add a subscriber with an email address and/or a Slack webhook."""
    from daemon.checks import check_display_name, check_handle

    _checked(check_handle, name, "NAME")
    display_name = _checked(check_display_name, display_name, "--display-name")
    if not email and not slack_webhook:
        raise PaperwireError("give --email and/or --slack-webhook: a digest needs somewhere to go")
    channels, named = _check_user_options(email, slack_webhook, timezone)
    with _open_app() as app:
        app.store.people.add(
            name,
            app.clock(),
            channels={k: v for k, v in channels.items() if v},
            display_name=display_name or named,
            timezone=timezone,
            digest_hour=digest_hour,
        )
        _audit(app, "user added", name)
        out.print(f"added user {name}", markup=False)


@users_cli.command("set")
def users_set(
    name: Annotated[str, typer.Argument(metavar="USER", help="The user's handle.")],
    email: Annotated[
        str | None, typer.Option(help="New email address ('' removes the email channel).")
    ] = None,
    slack_webhook: Annotated[
        str | None, typer.Option(help="New Slack webhook URL ('' removes the Slack channel).")
    ] = None,
    display_name: Annotated[str | None, typer.Option(help="Name used in greetings.")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA time zone of the user.")] = None,
    digest_hour: Annotated[
        int | None, typer.Option(min=0, max=23, help="Local hour of the digest.")
    ] = None,
    max_picks: Annotated[
        int | None, typer.Option(min=1, max=100, help="Most papers in one digest.")
    ] = None,
    subscribed: Annotated[
        bool | None,
        typer.Option("--subscribe/--unsubscribe", help="Resume or stop the user's digests."),
    ] = None,
    frequency: Annotated[
        str | None,
        typer.Option(metavar="daily|weekly", help="How often: daily, or weekly (on --weekday)."),
    ] = None,
    weekday: Annotated[
        str | None,
        typer.Option(metavar="mon..sun", help="The day of a weekly digest (its local date)."),
    ] = None,
    pause_until: Annotated[
        str | None,
        typer.Option(
            metavar="YYYY-MM-DD",
            help="No digest before this day (in the user's time zone), then as before.",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="End a pause (--pause-until) now.")
    ] = False,
) -> None:
    """Change a subscriber's channels, time zone, digest hour, size, frequency, pause or
    subscription (all at once or nothing: a subscribed user keeps at least one channel)."""
    from daemon.checks import check_display_name

    options = (email, slack_webhook, display_name, timezone, digest_hour, max_picks, subscribed,
               frequency, weekday, pause_until)  # fmt: skip
    if all(o is None for o in options) and not resume:
        with _open_app() as app:  # names the user as stored ("ADA" is ada), or none found
            name = app.store.people.get(name).name
        raise PaperwireError(f"nothing to change for {name}: give an option (`users set --help`)")
    channels, _ = _check_user_options(email, slack_webhook, timezone)
    if display_name is not None:
        display_name = _checked(check_display_name, display_name, "--display-name")
    if pause_until is not None and resume:
        raise PaperwireError("--pause-until and --resume contradict each other: give one")
    changes: dict[str, object] = {
        key: value
        for key, value in (
            ("display_name", display_name),
            ("timezone", timezone),
            ("digest_hour", digest_hour),
            ("max_picks", max_picks),
        )
        if value is not None
    }
    from daemon.web.console_people import audited_changes

    with _open_app() as app:
        user = app.store.people.get(name)
        before = app.store.people.channels_of(user.id)
        if frequency is not None or weekday is not None or pause_until is not None or resume:
            # a pause's date is the user's local date (in their new zone, if it changes)
            zone = timezone or user.timezone
            changes.update(
                _frequency_changes(user, app.clock(), zone, frequency, weekday, pause_until, resume)
            )
        edited = app.store.people.edit(
            name,
            app.clock(),
            changes=changes,
            channels={kind: address or None for kind, address in channels.items()},
            subscribed=subscribed,
        )
        after = app.store.people.channels_of(edited.id)
        changed = audited_changes(user, before, edited, after)
        _audit(app, "user changed", edited.name, changed)  # the handle as stored ("ADA" is ada)
        out.print(f"updated user {edited.name}", markup=False)


def _frequency_changes(
    user: UserRow,
    now: datetime,
    zone: str,
    frequency: str | None,
    weekday: str | None,
    pause_until: str | None,
    resume: bool,
) -> dict[str, object]:
    """The user's frequency, weekday and pause after `users set`'s options, checked together:
    a weekly digest needs a day (given now, or the one it had), a daily one takes none."""
    from daemon.checks import check_frequency, check_pause_until, check_weekday

    freq = (
        user.frequency if frequency is None else _checked(check_frequency, frequency, "--frequency")
    )
    day = None
    if weekday is not None:
        try:
            day = check_weekday(weekday)
        except ValueError as e:
            raise PaperwireError(f"--weekday: {e}") from None
    changes: dict[str, object] = {"frequency": freq}
    if freq == "weekly":
        changes["digest_weekday"] = day if day is not None else user.digest_weekday
        if changes["digest_weekday"] is None:
            raise PaperwireError("a weekly digest needs its day: add --weekday mon..sun")
    elif day is not None:
        raise PaperwireError(
            f"--weekday is for weekly digests and {user.name}'s are daily: add --frequency weekly"
        )
    else:
        changes["digest_weekday"] = None
    if resume:
        changes["paused_until"] = None
    elif pause_until is not None:
        try:
            changes["paused_until"] = check_pause_until(pause_until, _today(zone, now))
        except ValueError as e:
            raise PaperwireError(f"--pause-until: {e}") from None
    return changes


def _today(zone: str, now: datetime) -> date:
    """The date now in this time zone (UTC's, for a zone edited by hand into the database)."""
    from zoneinfo import ZoneInfo

    try:
        return now.astimezone(ZoneInfo(zone)).date()
    except (ValueError, KeyError):
        return now.date()


def _checked(check: Callable[[str], str], value: str, label: str) -> str:
    """`check(value)`, its ValueError a one-line error naming the input."""
    try:
        return check(value)
    except ValueError as e:
        raise PaperwireError(f"{label}: {e}") from None


def _check_user_options(
    email: str | None, slack_webhook: str | None, timezone: str | None
) -> tuple[dict[ChannelKind, str], str]:
    """The channels given (an empty address: remove that channel), each checked by its kind's
    rule in `daemon.channels`, and the display name in 'Name <address>'; the time zone."""
    from daemon.channels import CHANNELS, parse_email
    from daemon.db.models import ChannelKind
    from daemon.settings import check_timezone

    channels: dict[ChannelKind, str] = {}
    named = ""
    if email:
        channels[ChannelKind.EMAIL], named = _parse(parse_email, email, "--email")
    elif email == "":
        channels[ChannelKind.EMAIL] = ""
    if slack_webhook is not None:
        check = CHANNELS[ChannelKind.SLACK].check
        channels[ChannelKind.SLACK] = (
            _checked(check, slack_webhook, "--slack-webhook") if slack_webhook else ""
        )
    if timezone is not None:
        _checked(check_timezone, timezone, f"--timezone {timezone!r}")
    return channels, named


def _parse(parse: Callable[[str], tuple[str, str]], value: str, label: str) -> tuple[str, str]:
    try:
        return parse(value)
    except ValueError as e:
        raise PaperwireError(f"{label}: {e}") from None


@users_cli.command("list")
def users_list(
    search: Annotated[
        str,
        typer.Option(
            "--search",
            help="Only the users whose handle, display name or email address holds this text "
            "(in any case).",
        ),
    ] = "",
    limit: Annotated[
        int, typer.Option(min=0, help="At most this many users, by name (0: all of them).")
    ] = 100,
    page: Annotated[int, typer.Option(min=1, help="Which page of --limit users to show.")] = 1,
) -> None:
    """List subscribers and where their digests go (webhook URLs shown by host only), by name,
    a page of --limit at a time."""
    from rich.table import Table

    from daemon.channels import CHANNELS
    from daemon.checks import frequency_text

    with _open_app() as app:
        now = app.clock()
        offset = (page - 1) * limit
        total, found = app.store.people.find(search, offset=offset, limit=limit or None)
        if not found:
            _no_users(search, total, page, limit)
            return
        table = Table("name", "channels", "time zone", "hour", "frequency", "subscribed")
        for user, channels in found:
            where = ", ".join(
                escape(CHANNELS[c.kind].show(c.address)) + _stopped(c) for c in channels
            )
            hour = str(user.digest_hour) if user.digest_hour is not None else "default"
            often = frequency_text(
                user.frequency, user.digest_weekday, user.paused_until, _today(user.timezone, now)
            )
            table.add_row(
                escape(user.name),
                where,
                escape(user.timezone),
                hour,
                often,
                "yes" if user.active else "no",
            )
        out.print(table)
    if len(found) < total:
        shown = f"{offset + 1:,}–{offset + len(found):,}"
        more = f"--page {page + 1} for the next, " if offset + len(found) < total else ""
        out.print(f"users {shown} of {total:,}: {more}--limit 0 for all", markup=False)


def _no_users(search: str, total: int, page: int, limit: int) -> None:
    """What `users list` says instead of an empty table: why there is no one to show."""
    if total:  # a page past the last
        pages = -(-total // limit) if limit else 1
        what = f"page {page} is past the last: {total:,} user(s), {pages:,} page(s) of {limit}"
    elif search:
        what = f"no subscriber matches {search!r}"
    else:
        what = _none_yet(
            "subscribers",
            "paperwire users add NAME --email ADDRESS",
            " (many: `paperwire users import FILE.csv`)",
        )
    out.print(what, markup=False, highlight=False)


def _none_yet(what: str, command: str, more: str = "") -> str:
    """The line a list prints instead of an empty table on a new install: the command that
    adds the first one."""
    return f"no {what} yet: add one with `{command}`{more}"


def _no_feeds(declared: Sequence[str]) -> str:
    """The line `feeds list` and `status` print for no feed stored: the configuration file's
    enabled feeds (`declared`) are stored at the next ingest, else how to add one."""
    if declared:
        return (
            f"no feeds stored yet: the configuration file's feeds ({', '.join(declared)}) come in "
            "at the next ingest (`paperwire ingest`, or the daemon's)"
        )
    return _none_yet("feeds", "paperwire feeds add NAME URL")


@users_cli.command("remove")
def users_remove(
    name: Annotated[str, typer.Argument(metavar="USER", help="The user's handle.")],
) -> None:
    """Remove a subscriber with their likes, follows and digests."""
    with _open_app() as app:
        name = app.store.people.get(name).name  # as stored, in any case typed
        app.store.people.remove(name)
        _audit(app, "user removed", name)
        out.print(f"removed user {name}", markup=False)


def _record_feedback(user: str, paper: str, value: int) -> None:
    with _open_app() as app:
        u = app.store.people.get(user)
        p = app.store.papers.find(paper)
        before = app.store.people.set_feedback(u.id, p.id, value, app.clock())
        word = "liked" if value > 0 else "disliked"
        how = ""  # a word replaced is said: the operator may have reversed the reader's own
        if before == value:
            how = f" (already {word})"
        elif before:
            how = f" (was {'liked' if before > 0 else 'disliked'}, now {word})"
        out.print(
            f"{u.name} {'likes' if value > 0 else 'dislikes'} {p.key}: {p.title}{how}",
            highlight=False,
            markup=False,
        )


@cli.command()
def like(
    user: Annotated[str, typer.Argument(metavar="USER", help="The user's handle.")],
    papers: Annotated[
        list[str],
        typer.Argument(
            help="arXiv ids or URLs, keys (arxiv:…), DOIs or paper ids; arXiv ids not stored "
            "yet are fetched from arXiv.",
            metavar="PAPER",
        ),
    ],
) -> None:
    """Record that USER liked each PAPER. Exit status 1 when one could not be liked (the
    others are liked all the same)."""
    from daemon.library.importer import like_papers

    with _open_app() as app:
        report = like_papers(app, user, papers)
    for done in report.liked:
        p = done.paper
        how = (
            " (already liked)"
            if done.already
            else " (was disliked, now liked)"
            if done.was_disliked
            else (" (fetched from arXiv)" if done.fetched else "")
        )
        out.print(f"{report.user} likes {p.key}: {p.title}{how}", highlight=False, markup=False)
    for problem in report.failed:
        err.print(f"[bold red]error:[/] {escape(str(problem))}", highlight=False)
    if report.failed:
        raise SystemExit(1)


@cli.command("import")
def import_library(
    user: Annotated[str, typer.Argument(metavar="USER", help="The user's handle.")],
    file: Annotated[
        str | None,
        typer.Argument(
            metavar="FILE",
            help="BibTeX, RIS, CSL JSON or a text of arXiv ids, URLs or DOIs; - reads stdin.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", help="arxiv, bibtex, ris, csl-json or csv (default: told from the file)."
        ),
    ] = None,
    zotero_library: Annotated[
        str | None, typer.Option(help="Read a Zotero library (its numeric id) instead of FILE.")
    ] = None,
    zotero_key: Annotated[
        str | None,
        typer.Option(envvar="ZOTERO_API_KEY", help="Zotero API key (or $ZOTERO_API_KEY)."),
    ] = None,
    zotero_collection: Annotated[
        str | None, typer.Option(help="Only this collection (its key) of the Zotero library.")
    ] = None,
    zotero_group: Annotated[
        bool, typer.Option("--zotero-group", help="The Zotero library is a group's.")
    ] = False,
) -> None:
    """Import USER's paper library as likes: each entry is matched to a stored paper (arXiv
    id, DOI, title), unknown arXiv ids are fetched from arXiv, the rest stored from the file.

    Running it again changes nothing; entries that cannot be read are listed (exit status 1),
    the others imported. See docs/subscribers.md."""
    from daemon.library.importer import import_source
    from daemon.library.zotero import ZoteroSource

    zotero = None
    if zotero_library is not None:
        zotero = ZoteroSource(zotero_library, zotero_key, zotero_collection, zotero_group)
    with _open_app() as app:
        report = import_source(app, user, file, fmt=fmt, zotero=zotero)
        if report.liked:
            detail = f"{report.liked} paper(s) liked from {report.source} ({report.format})"
            _audit(app, "library imported", report.user, detail)
    _print_import(report)
    if report.failed:
        raise SystemExit(1)


@cli.command()
def dislike(
    user: Annotated[str, typer.Argument(metavar="USER", help="The user's handle.")],
    paper: Annotated[
        str, typer.Argument(metavar="PAPER", help="arXiv id, key (arxiv:…), DOI or paper id.")
    ],
) -> None:
    """Record that USER disliked PAPER (fewer papers like it)."""
    _record_feedback(user, paper, -1)


@cli.command()
def follow(
    user: Annotated[str, typer.Argument(metavar="USER", help="The user's handle.")],
    keyword: Annotated[list[str] | None, typer.Option(help="A keyword (repeatable).")] = None,
    author: Annotated[list[str] | None, typer.Option(help="An author's name (repeatable).")] = None,
    mute: Annotated[bool, typer.Option("--mute", help="See less of these instead.")] = False,
    remove: Annotated[bool, typer.Option("--remove", help="Forget these follows/mutes.")] = False,
) -> None:
    """Follow (or mute) keywords and authors; works from day one, before any like."""
    from daemon.checks import check_follow
    from daemon.db.models import FollowKind

    if not keyword and not author:
        raise PaperwireError("give at least one --keyword or --author")
    keyword = [_checked(check_follow, k, "--keyword") for k in keyword or []]
    author = [_checked(lambda a: check_follow(a, "author"), a, "--author") for a in author or []]
    with _open_app() as app:
        people = app.store.people
        u = people.get(user)
        absent: list[str] = []  # --remove of what the user never followed: a typo, said so
        for kind, values in ((FollowKind.KEYWORD, keyword), (FollowKind.AUTHOR, author)):
            for value in values:
                if remove:
                    if not people.remove_follow(u.id, kind, value):
                        absent.append(f"{kind} {value!r}")
                else:
                    people.set_follow(u.id, kind, value, muted=mute)
        if absent and len(absent) == len(keyword) + len(author):
            raise PaperwireError(f"{u.name} follows or mutes no {' or '.join(absent)}")
        if absent:
            err.print(f"not followed, nothing to forget: {', '.join(absent)}", markup=False)
        verb = "forgot" if remove else ("muted" if mute else "follows")
        out.print(
            f"{u.name} {verb}: {', '.join([*(keyword or []), *(author or [])])}",
            highlight=False,
            markup=False,
        )


@papers_cli.command("search")
def papers_search(
    text: Annotated[
        str, typer.Argument(metavar="TEXT", help="Title words, an author, an arXiv id, key or DOI.")
    ],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 20,
) -> None:
    """Find stored papers by title words, author, or id (newest first)."""
    from rich.table import Table

    if not text.strip():  # would match nothing: not "no stored paper matches ''"
        raise typer.BadParameter(
            "give words of a title, an author's name or an id to search for", param_hint="TEXT"
        )
    with _open_app() as app:
        found = app.store.papers.search(text, limit)
    if not found:
        out.print(f"no stored paper matches {text!r}", markup=False, highlight=False)
        return
    table = Table("id", "key", "date", "title", "authors")
    for p in found:
        date = p.published_at.strftime("%Y-%m-%d") if p.published_at else ""
        authors = ", ".join(p.authors[:3]) + (" et al." if len(p.authors) > 3 else "")
        table.add_row(str(p.id), escape(p.key), date, escape(p.title), escape(authors))
    out.print(table)


# ---- feeds -----------------------------------------------------------------------------------


@feeds_cli.command("add")
def feeds_add(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A short name, e.g. 'arxiv-cs.LG'.")],
    url: Annotated[
        str,
        typer.Argument(
            metavar="URL",
            help="RSS/Atom URL, arXiv API query, or HF daily papers "
            "(https://huggingface.co/api/daily_papers?date={date}).",
        ),
    ],
    no_check: Annotated[
        bool,
        typer.Option(
            "--no-check",
            help="Add it without the test fetch (its server is down, or its name does not "
            "resolve, right now); the next ingest fetches it and `feeds list` shows how that "
            "went.",
        ),
    ] = False,
) -> None:
    """Add a feed (any RSS/Atom feed, an arXiv feed or API query, Hugging Face daily papers).

    The URL is checked as the fetcher will treat it (http/https, a public host) and fetched
    once: the feed is added when it is one ("42 entries (40 new), newest 2026-11-29"), and
    refused, saying why, when it is not (for a web page, the feed its <link rel="alternate">
    names). A feed that moved for good (301) is added with its new address. Nothing is stored
    but the feed; the next ingest stores its papers."""
    from daemon.checks import check_handle
    from daemon.settings import shown_url

    _checked(lambda n: check_handle(n, "feed name"), name, "NAME")
    with _open_app() as app:
        app.store.feeds.check_new(name, url)
        given = url
        url, found = _try_address(app, name, url, no_check, "added")
        if url != given:  # moved for good: is the new address free?
            app.store.feeds.check_new(name, url)
        app.store.feeds.add(name, url, app.clock())
        _audit(app, "feed added", name, shown_url(url))  # a private feed's token masked
        out.print(f"added feed {name}{found}", markup=False, highlight=False)


@feeds_cli.command("set-url")
def feeds_set_url(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The feed's name.")],
    url: Annotated[str, typer.Argument(metavar="URL", help="Its new address.")],
    no_check: Annotated[
        bool,
        typer.Option(
            "--no-check",
            help="Change it without the test fetch; the next ingest fetches it and `feeds "
            "list` shows how that went.",
        ),
    ] = False,
) -> None:
    """Give a feed a new address (its site moved without a redirect, or a query changed).

    The new URL is checked and fetched once, as by `feeds add`; the feed keeps its name, its
    papers and its counts, and its last error and run of failures are forgotten."""
    from daemon.settings import shown_url

    with _open_app() as app:
        _not_declared(app, name)
        old = app.store.feeds.get(name)
        url, found = _try_address(app, name, url, no_check, "changed")
        app.store.feeds.set_url(name, url, app.clock())
        _audit(app, "feed address changed", name, shown_url(f"{old.url} → {url}"))
        out.print(f"feed {name} now fetches {url}{found}", markup=False, highlight=False)


_VERB = {"added": "add", "changed": "change"}


def _try_address(app: App, name: str, url: str, no_check: bool, done: str) -> tuple[str, str]:
    """A feed's address checked as the fetcher will treat it and fetched once (not with
    `no_check`): (the address to keep, what the fetch found, for the admin). A 301 gives the
    new address; a fetch that fails stops the command, saying why."""
    from urllib.parse import urlsplit

    from daemon.checks import HostNotResolved, check_feed_url
    from daemon.jobs.ingest import try_feed

    ing = app.settings.ingest
    policy = {"allow_files": ing.allow_files, "allow_private": ing.allow_private_addresses}
    unresolved = ""
    try:
        check_feed_url(url, **policy)
    except HostNotResolved as e:  # DNS down, or no network: the fetches will check it again
        if not no_check:
            raise PaperwireError(
                f"URL: {e}\n(when you are sure of the address and its name only does not "
                f"resolve right now, {_VERB[done]} it anyway with --no-check)"
            ) from None
        unresolved = f"; {urlsplit(url).hostname} does not resolve now"
    except ValueError as e:
        raise PaperwireError(f"URL: {e}") from None
    if no_check:
        return url, f"\nnot fetched (--no-check){unresolved}: the next ingest fetches it"
    trial = try_feed(app, url, app.clock())
    if trial.error:  # it names the URL
        raise PaperwireError(
            f"feed {name} not {done}: {trial.error}\n(when you are sure of the address and its "
            f"server is only down or out of order right now, {_VERB[done]} it anyway with "
            "--no-check)"
        )
    found = f": {trial.summary()}"
    if trial.moved_to:  # a 301: the old address may stop redirecting one day
        url = trial.moved_to
        found += f"\nthe server says it moved for good to {url}: {done} with that address"
    return url, found


@feeds_cli.command("list")
def feeds_list() -> None:
    """List feeds with their last fetch, the new papers they brought, and their last error."""
    from rich.table import Table

    with _open_app() as app:
        feeds = app.store.feeds.all()
        if not feeds:
            declared = [f.name for f in app.settings.feeds if f.enabled]
            out.print(_no_feeds(declared), markup=False)
            return
        table = Table("name", "url", "enabled", "last ok", "new papers (last / all)", "last error")
        for f in feeds:
            last_ok = f.last_ok_at.strftime("%Y-%m-%d %H:%M") if f.last_ok_at else "never"
            table.add_row(
                escape(f.name),
                escape(f.url),
                "yes" if f.enabled else "no",
                last_ok,
                f"{f.last_new_papers} / {f.papers_seen}",
                escape(f.last_error or ""),
            )
        out.print(table)


@feeds_cli.command("enable")
def feeds_enable(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The feed's name.")],
) -> None:
    """Fetch this feed again at the next ingest."""
    with _open_app() as app:
        _not_declared(app, name)
        app.store.feeds.set_enabled(name, True, app.clock())
        _audit(app, "feed enabled", name)
        out.print(f"enabled feed {name}", markup=False)


@feeds_cli.command("disable")
def feeds_disable(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The feed's name.")],
) -> None:
    """Stop fetching this feed (its papers stay)."""
    with _open_app() as app:
        _not_declared(app, name)
        app.store.feeds.set_enabled(name, False, app.clock())
        _audit(app, "feed disabled", name)
        out.print(f"disabled feed {name}", markup=False)


@feeds_cli.command("remove")
def feeds_remove(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The feed's name.")],
) -> None:
    """Remove a feed (its papers stay)."""
    with _open_app() as app:
        _not_declared(app, name)
        app.store.feeds.remove(name)
        _audit(app, "feed removed", name)
        out.print(f"removed feed {name}", markup=False)


def _not_declared(app: App, name: str) -> None:
    """A feed of the configuration file is changed there: the next ingest would undo it."""
    if name in {f.name for f in app.settings.feeds}:
        raise PaperwireError(
            f"feed {name!r} is declared in the configuration file ([[feeds]]): change or "
            "remove it there"
        )


# ---- printing --------------------------------------------------------------------------------


def _print_ingest(r: jobs.IngestReport) -> None:
    left = r.feeds_left + r.feeds_stopped  # a database error's, or a stop's (Ctrl-C, SIGTERM)
    out.print(
        f"ingest: {r.feeds_ok} feed(s) ok, {r.feeds_unchanged} unchanged, {r.feeds_failed} failed; "
        f"{r.papers_new} new paper(s), {r.papers_known} already known"
        + (f"; {left} feed(s) left for the next run" if left else "")
    )
    for e in r.errors:
        err.print(f"  [yellow]feed failed[/]: {escape(e)}", highlight=False)
    for e in r.database_errors:  # the database's, not the feed's: nothing to mend there
        err.print(f"  [yellow]database error, feed left for the next run[/]: {escape(e)}",
                  highlight=False)  # fmt: skip


# The entries listed as not imported, at most: a file that is no library (a README) had
# every line listed, the summary scrolled away.
SHOWN_PROBLEMS = 20


def _print_import(r: ImportReport) -> None:
    out.print(
        f"import into {r.user} from {r.source} ({r.format}): {r.liked} paper(s) liked — "
        f"{len(r.matched)} matched to stored papers, {len(r.fetched)} fetched from arXiv, "
        f"{len(r.created)} created from the file; {len(r.already_liked)} already liked, "
        f"{len(r.duplicates)} duplicate(s), {len(r.failed)} not imported",
        highlight=False,
        markup=False,
        soft_wrap=True,  # one line, however long the file's path: a report is grepped
    )
    lists = (("matched", r.matched), ("fetched", r.fetched), ("created from the file", r.created),
             ("already liked", r.already_liked))  # fmt: skip
    for label, items in lists:
        if items:
            out.print(f"{label}:", markup=False)
        for item in items:
            line = f"  {item.where}: {item.key} {item.title}"
            out.print(line, highlight=False, markup=False, soft_wrap=True)
    for label, problems in (("duplicates (imported once)", r.duplicates),
                            ("not a paper (not liked)", r.skipped)):  # fmt: skip
        if problems:
            out.print(f"{label}:", markup=False)
        for problem in problems:
            out.print(f"  {problem}", highlight=False, markup=False)
    if r.arxiv_error:
        instead = "; entries were stored from the file" if r.created else ""
        err.print(f"  [yellow]arXiv[/]: {escape(r.arxiv_error)}{instead}")
    if r.failed:
        err.print("[yellow]not imported[/] (fix these entries and import again):")
    # the entries read but not stored first (an id arXiv did not answer for): the ones to mend,
    # not hidden among the "… more" behind a file's unreadable lines
    for problem in [*r.not_found, *r.unreadable][:SHOWN_PROBLEMS]:
        err.print(f"  {escape(str(problem))}", highlight=False)
    if len(r.failed) > SHOWN_PROBLEMS:
        err.print(f"  … and {len(r.failed) - SHOWN_PROBLEMS} more not imported", highlight=False)
    if r.failed and not r.liked and not r.already_liked:  # the wrong file, most likely
        from daemon.library.read import WHAT_TO_DO

        err.print(
            f"nothing was stored: no entry of {escape(r.source)} could be imported (read as "
            f"{r.format}); {WHAT_TO_DO}",
            highlight=False,
        )


def _print_digests(r: jobs.DigestReport, *, show_picks: bool) -> None:
    out.print(
        f"digests: {r.candidates} candidate paper(s); {r.created} digest(s) created "
        f"({r.empty} empty), {r.already} subscriber(s) had theirs already"
    )
    for e in r.failed_users:
        err.print(f"  [red]user failed[/]: {escape(e)}", highlight=False)
    if not show_picks:
        return
    for plan in r.planned:
        out.print(
            f"\n[bold]{escape(plan.user)}[/] ({plan.channel}, {plan.period})", highlight=False
        )
        if not plan.picks:
            out.print("  nothing worth sending today")
        for i, (title, score, why) in enumerate(plan.shown(), 1):
            out.print(f"  {i:2}. {escape(title)}  [dim]{score} — {escape(why)}[/]", highlight=False)


def _print_delivery(r: jobs.DeliveryReport) -> None:
    out.print(
        f"delivery: {r.sent} sent, {r.retrying} to retry, {r.postponed} waiting for the "
        f"transport, {r.failed} failed"
        + (f", {r.released} given back (stopping)" if r.released else "")
    )
    for e in r.errors:
        err.print(f"  [red]delivery failed[/]: {escape(e)}", highlight=False)


def _print_waiting(app: App) -> None:
    """Digests held for later (a retry, or a transport that could deliver nothing) are not
    claimed by a run: say that they wait, and until when."""
    from datetime import UTC

    n, first = app.store.digests.waiting(app.clock())
    if n:
        at = first.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if first else "later"
        out.print(
            f"{n} digest(s) wait for a later try, the first at {at} "
            "(`paperwire deliveries list --state pending`; `deliveries retry` tries now)"
        )


def _exit_if_unusable(r: jobs.DeliveryReport) -> None:
    """A transport that could deliver nothing needs a person: exit status 1."""
    if r.postponed:
        err.print(
            "[bold red]error:[/] a transport could deliver nothing; fix its settings (\\[email], "
            "\\[slack] or delivery.outbox_dir: see the error above), the digests are kept",
            highlight=False,
        )
        raise SystemExit(1)


def _print_cycle(r: jobs.CycleReport, seconds: float) -> None:
    _print_ingest(r.ingest)
    _print_digests(r.digests, show_picks=False)
    _print_delivery(r.delivery)
    out.print(f"cycle took {seconds:.1f} s")


# the admin's commands (status, deliveries, preview, users show/import, feeds test, config
# set/unset, admin) live beside this module and add themselves to the command tree
from daemon import cli_admin as _cli_admin  # noqa: E402


def _one_line_summaries(app: typer.Typer) -> None:
    """Each command's summary in a group's list: its docstring's first paragraph on one line.
    Typer's rich help keeps the docstring's line breaks there ("… (the" / "others are …")."""
    for info in app.registered_commands:
        doc = info.help or inspect.getdoc(info.callback) or ""
        info.short_help = info.short_help or " ".join(doc.split("\n\n")[0].split())
    for group in app.registered_groups:
        if group.typer_instance is not None:
            _one_line_summaries(group.typer_instance)


_one_line_summaries(cli)

__all__ = ["_cli_admin", "cli", "entry", "main"]

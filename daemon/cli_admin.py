"""The admin's commands: `status`, `deliveries`, `preview`, `users show/import`, `feeds test`,
`config set/unset`, `admin set-password/remove/list`. Registered on the command tree of
`daemon.cli` (which imports this module); heavy libraries are imported inside the commands.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from daemon.cli import (
    _audit,
    _checked,
    _no_feeds,
    _none_yet,
    _open_app,
    _print_delivery,
    _progress,
    _state,
    _stoppable,
    _stopped,
    _today,
    _who,
    cli,
    config_cli,
    err,
    feeds_cli,
    out,
    users_cli,
)
from daemon.errors import PaperwireError

if TYPE_CHECKING:
    from datetime import datetime

    from daemon.app import App
    from daemon.db.health import Delivery
    from daemon.settings import Settings
    from daemon.status import Status

deliveries_cli = typer.Typer(
    help="List the digests by delivery state; retry or cancel them.", no_args_is_help=True
)
admin_cli = typer.Typer(help="The console's admins and their passwords.", no_args_is_help=True)
cli.add_typer(deliveries_cli, name="deliveries")
cli.add_typer(admin_cli, name="admin")

STATES = ("pending", "postponed", "sent", "failed", "empty")


def _time(t: datetime | None) -> str:
    from datetime import UTC

    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if t else "—"


# ---- status --------------------------------------------------------------------------------------


@cli.command()
def status(
    days: Annotated[int, typer.Option(min=1, max=90, help="Days of figures to show.")] = 7,
) -> None:
    """Feed health and deliveries by state for the last days, with the last errors.

    Exits 1 when something needs a person: a feed failing for a day, no fetch at all for a
    day longer than the ingest schedule says (the daemon is not running), no feed enabled (or
    the configuration file's not fetched yet), digests held back by a transport that could
    deliver nothing, digests that failed for good today."""
    from daemon.status import status as read_status

    with _open_app() as app:
        declared = [f.name for f in app.settings.feeds if f.enabled]
        report = read_status(app.store, app.clock(), days, app.settings.schedule, declared)
    _print_status(report)
    if report.problems:
        raise SystemExit(1)


def _print_status(s: Status) -> None:
    from rich.table import Table

    from daemon.status import feed_outcome

    feeds = Table("feed", "state", "last fetch", "last ok", "new (last)", "new (all)", "last error")
    for f in s.feeds:
        feeds.add_row(
            escape(f.name),
            feed_outcome(f),
            _time(f.last_fetched_at),
            _time(f.last_ok_at),
            str(f.last_new_papers),
            str(f.papers_seen),
            escape(f.last_error or ""),
        )
    if s.feeds:
        out.print(feeds)
    else:
        out.print(_no_feeds(s.declared), markup=False)
    table = Table(
        "day (UTC)", "papers", "sent", "failed", "pending", "postponed", "empty", "feedback",
        "unsubscribed", title="digests by day", title_justify="left",
    )  # fmt: skip
    for d in s.days:
        table.add_row(
            d.day.isoformat(),
            *(
                str(n)
                for n in (d.papers, d.sent, d.failed, d.pending, d.postponed, d.empty, d.feedback)
            ),
            str(d.unsubscribes),
        )
    out.print(table)
    counts = ", ".join(f"{n} {state}" for state, n in s.counts.items())
    out.print(f"digests now: {counts}")
    for e in s.recent_errors:
        state = "postponed" if e.postponed else e.state  # as `deliveries list` says it
        out.print(
            f"  last error of digest {e.id} ({escape(e.user)}, {e.kind}, {e.period}, {state}): "
            f"{escape(e.last_error or '')}",
            highlight=False,
        )
    if not s.problems:
        out.print("[green]ok[/]: nothing needs a person")
    for p in s.problems:
        err.print(
            f"[bold red]needs a person[/]: {escape(p.what)} — {escape(p.fix)}", highlight=False
        )


# ---- deliveries ----------------------------------------------------------------------------------


@deliveries_cli.command("list")
def deliveries_list(
    state: Annotated[
        str | None, typer.Option(help=f"Only this state: {', '.join(STATES)}.")
    ] = None,
    user: Annotated[str | None, typer.Option(help="Only this user's digests.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many (newest first).")] = 50,
) -> None:
    """Digests newest first, with their state, attempts, next try and last error."""
    from daemon.db.models import DigestState

    if state is not None and state not in STATES:
        raise PaperwireError(f"--state {state!r}: give one of {', '.join(STATES)}")
    with _open_app() as app:
        if user is not None:
            user = app.store.people.get(user).name  # in any case, as `users show` finds it
        if state == "postponed":
            rows = app.store.health.deliveries(user=user, postponed_only=True, limit=limit)
        else:
            states = [DigestState(state)] if state else None
            rows = app.store.health.deliveries(states, user=user, limit=limit)
    if rows:
        _print_deliveries(rows)
    elif state is None and user is None:
        out.print(
            "no digests yet: the daemon makes them at each subscriber's digest hour "
            "(`paperwire digest` makes and sends today's now)",
            markup=False,
        )
    else:
        whose = f" of {user}" if user is not None else ""
        out.print(f"no {state + ' ' if state else ''}digests{whose}", markup=False)


def _print_deliveries(rows: list[Delivery]) -> None:
    from rich.table import Table

    table = Table("id", "user", "channel", "day", "state", "tries", "next try", "sent", "error")
    for d in rows:
        table.add_row(
            str(d.id),
            escape(d.user),
            str(d.kind),
            d.period.isoformat(),
            "postponed" if d.postponed else str(d.state),
            str(d.attempts),
            _time(d.next_attempt_at) if d.state == "pending" else "",
            _time(d.sent_at) if d.sent_at else "",
            escape(d.last_error or ""),
        )
    out.print(table)


IdsArgument = Annotated[
    list[int] | None, typer.Argument(metavar="ID", help="Digest ids (`deliveries list`).")
]
PostponedOption = Annotated[
    bool, typer.Option("--postponed", help="Every digest waiting for its transport.")
]


FailedOption = Annotated[
    bool,
    typer.Option(
        "--failed",
        help="The failed digests of an outage: those made in the last 2 days (from their "
        "first attempt), but those cancelled, of a stopped channel or of a subscriber who "
        "unsubscribed; says how many are left. Older ones: give their ids.",
    ),
]


@deliveries_cli.command("retry")
def deliveries_retry(
    ids: IdsArgument = None,
    postponed: PostponedOption = False,
    failed: FailedOption = False,
) -> None:
    """Make digests due now (pending or failed ones) and deliver what is due.

    Exit status 1 when a transport could still deliver nothing (the digests are kept).
    """
    from daemon import jobs

    with _open_app() as app:
        due = _retry_failed(app) if failed else 0
        if ids or postponed or not failed:
            chosen = _chosen(app, ids, postponed, also="--failed")
            changed = app.store.digests.retry_now(chosen, app.clock())
            _audit(app, "deliveries retried", ",".join(map(str, changed)))
            out.print(f"{len(changed)} digest(s) due now" + _skipped(chosen, changed))
            _none_of_the_ids(ids, changed)
            due += len(changed)
        if due:
            with _stoppable(app):
                with _progress() as progress:
                    report = jobs.deliver_due(app, app.clock(), progress=progress)
                _print_delivery(report)
            if report.postponed:
                raise SystemExit(1)


@deliveries_cli.command("cancel")
def deliveries_cancel(
    ids: IdsArgument = None,
    postponed: PostponedOption = False,
) -> None:
    """Give up pending digests: they are marked failed, 'cancelled by …', and not sent."""
    with _open_app() as app:
        chosen = _chosen(app, ids, postponed)
        who = _who()
        changed = app.store.digests.cancel(chosen, who)
        _audit(app, "deliveries cancelled", ",".join(map(str, changed)))
        skipped = _skipped(chosen, changed, why="not pending: failed, sent, empty")
        out.print(f"{len(changed)} digest(s) cancelled" + skipped)
        _none_of_the_ids(ids, changed)


def _retry_failed(app: App) -> int:
    """The failed digests of an outage due again (the console's "Resend"), audited once with
    the count; says how many, and how many are left and why. Returns how many."""
    from daemon.db.digests import RESEND_WITHIN

    now = app.clock()
    n = app.store.digests.resend_failed(now)
    if n:
        _audit(app, "failed digests resent", "", f"{n} digest(s)")
    left = app.store.digests.failed_to_resend(now).left()
    out.print(
        f"{n} failed digest(s) made in the last {RESEND_WITHIN.days} days due again"
        + (f"; {left} (give their ids to retry one)" if left else "")
    )
    return n


def _chosen(app: App, ids: list[int] | None, postponed: bool, also: str = "") -> list[int]:
    """The ids given, and every postponed digest's with --postponed (or `also`, the command's
    other choice, named in the error when none is given)."""
    chosen = list(ids or [])
    if postponed:
        chosen += [d.id for d in app.store.health.deliveries(postponed_only=True, limit=100_000)]
    if not chosen and not postponed:
        flags = f", --postponed or {also}" if also else " or --postponed"
        raise PaperwireError(f"give digest ids (see `paperwire deliveries list`){flags}")
    return chosen


def _none_of_the_ids(ids: list[int] | None, changed: list[int]) -> None:
    """Exit 1 when ids were given and none of them could be changed (unknown, or done)."""
    if ids and not changed:
        raise SystemExit(1)


def _skipped(chosen: list[int], changed: list[int], why: str = "sent, empty") -> str:
    """The ids left alone, and why (`why`: the states the command does not change)."""
    left = sorted(set(chosen) - set(changed))
    if not left:
        return ""
    return f"; left alone ({why}, being sent or unknown): {', '.join(map(str, left))}"


# ---- users ---------------------------------------------------------------------------------------


@cli.command()
def preview(
    user: Annotated[str, typer.Argument(metavar="USER", help="The user's handle.")],
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the HTML here (default: stdout).")
    ] = None,
    text: Annotated[bool, typer.Option("--text", help="The plain-text part instead.")] = False,
) -> None:
    """Write the digest USER would get today (this week's, from a week of papers, for a weekly
    subscriber) as HTML, without storing or sending it."""
    from daemon.jobs.preview import preview as make_preview

    with _open_app() as app:
        made = make_preview(app, user, app.clock())
    body = made.text if text else made.html
    if output is None:
        sys.stdout.write(body)
        return
    try:  # its links are the subscriber's keys (their page, for manage_link_days)
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        if stat.S_ISREG(os.fstat(fd).st_mode):  # a file there already: its mode too (not
            os.fchmod(fd, 0o600)  # a pipe's nor a device's: /dev/null for everyone)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
    except OSError as e:
        raise PaperwireError(f"--out {output}: cannot write it ({e.strerror or e})") from None
    err.print(
        f"{escape(made.subject)}: {len(made.picks)} paper(s); written to {escape(str(output))}",
        highlight=False,
    )


@users_cli.command("show")
def users_show(
    name: Annotated[str, typer.Argument(metavar="USER", help="The user's handle.")],
) -> None:
    """Everything about one subscriber: settings, channels, follows, likes, last digests."""
    from daemon.channels import CHANNELS
    from daemon.checks import frequency_text

    with _open_app() as app:
        user = app.store.people.get(name)
        channels = app.store.people.channels_of(user.id)
        signals = app.store.people.signals([user.id])[user.id]
        digests = app.store.health.deliveries(user=user.name, limit=10)
        default_hour = app.settings.schedule.digest_hour
        default_picks = app.settings.digest.max_picks
        today = _today(user.timezone, app.clock())
    often = frequency_text(user.frequency, user.digest_weekday, user.paused_until, today)
    hour = f"{user.digest_hour}" if user.digest_hour is not None else f"{default_hour} (default)"
    picks = f"{user.max_picks}" if user.max_picks is not None else f"{default_picks} (default)"
    subscribed = "yes" if user.active else f"no, since {_time(user.unsubscribed_at)} UTC"
    lines = [
        f"user {user.name} — {user.display_name}",
        f"  subscribed: {subscribed}",
        f"  time zone: {user.timezone}; digest hour: {hour}; papers per digest: {picks}",
        f"  frequency: {often}",
        f"  since: {_time(user.created_at)} UTC",
    ]
    lines += [
        f"  {c.kind}: {CHANNELS[c.kind].masked(c.address)}" + _stopped(c, why=True)
        for c in channels
    ] or ["  no channel"]
    for f in signals.follows:
        lines.append(f"  {'mutes' if f.muted else 'follows'} {f.kind}: {f.value}")
    lines.append(f"  likes: {len(signals.likes)}, dislikes: {len(signals.dislikes)}")
    for line in lines:
        out.print(line, markup=False, highlight=False)
    if digests:
        out.print("last digests:", markup=False)
        _print_deliveries(digests)


@users_cli.command("import")
def users_import(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE.csv",
            help="CSV in UTF-8 (',' or ';' between cells) whose first row names the columns: "
            "name, email, slack_webhook, timezone, hour, display_name.",
        ),
    ],
) -> None:
    """Add or update subscribers from a CSV file, all or nothing: every row is checked first
    (errors by line); importing the same file again changes nothing."""
    from daemon.importing import read_csv

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        raise PaperwireError(f"{file}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise PaperwireError(f"{file}: not UTF-8 text ({e}); save it as UTF-8 CSV") from None
    read = read_csv(text)
    for problem in read.errors:
        err.print(f"{escape(str(file))}: {escape(problem)}", highlight=False)
    if read.errors:
        raise PaperwireError(f"{file}: {len(read.errors)} problem(s); nothing imported")
    with _open_app() as app:
        added, updated, same = app.store.people.import_many(read.rows, app.clock())
        _audit(app, "users imported", file.name, f"{added} added, {updated} updated")
    out.print(f"imported {file.name}: {added} added, {updated} updated, {same} unchanged")


# ---- feeds ---------------------------------------------------------------------------------------


@feeds_cli.command("test")
def feeds_test(
    feed: Annotated[str, typer.Argument(metavar="NAME|URL", help="A feed's name, or a URL.")],
    show: Annotated[int, typer.Option(min=0, help="Titles to show.")] = 10,
) -> None:
    """Fetch a feed once and show what it would ingest; store nothing."""
    from daemon.checks import check_feed_url
    from daemon.jobs.ingest import try_feed

    with _open_app() as app:
        known = {f.name: f.url for f in app.store.feeds.all()}
        url = known.get(feed, feed)
        if url == feed and "/" not in feed and ":" not in feed:  # a name, not a URL
            raise PaperwireError(f"no feed named {feed!r}; `paperwire feeds list` shows them")
        ing = app.settings.ingest
        policy = {"allow_files": ing.allow_files, "allow_private": ing.allow_private_addresses}
        _checked(lambda u: check_feed_url(u, **policy), url, "URL")
        trial = try_feed(app, url, app.clock())
    if trial.error:  # it names the URL
        raise PaperwireError(trial.error if url == feed else f"feed {feed}: {trial.error}")
    out.print(
        f"{escape(trial.url)}: {len(trial.papers)} paper(s), {trial.new} new, "
        f"{trial.skipped} skipped (not papers)",
        highlight=False,
    )
    if trial.cut_short:  # broken XML, or more entries than are read
        err.print(f"[yellow]warning[/]: {escape(trial.cut_short)}", highlight=False)
    if trial.too_old:
        err.print(
            f"[yellow]warning[/]: {trial.too_old} paper(s) dated more than {trial.max_age_days} "
            "days ago (digest.max_age_days): not announced as new",
            highlight=False,
        )
    for p in trial.papers[:show]:
        out.print(f"  {escape(p.key)}  {escape(p.title)}", highlight=False)


# ---- configuration -------------------------------------------------------------------------------


def _config_file() -> Path:
    from daemon.settings import config_path

    path = config_path(_state.config)
    if not path.is_file():
        raise PaperwireError(f"{path}: configuration file not found; pass --config FILE")
    return path


# a value may be a negative number ("-1"), not an option
@config_cli.command("set", context_settings={"ignore_unknown_options": True})
def config_set(
    key: Annotated[
        str, typer.Argument(metavar="KEY", help="section.key, e.g. schedule.digest_hour.")
    ],
    value: Annotated[
        str | None,
        typer.Argument(
            metavar="VALUE",
            help="The new value: true/false, a number, text, or a table as TOML writes it "
            "inline, e.g. '{ max_interests = 3 }'. For a secret (email.password, "
            "server.secret_key, database.url) leave it out or give '-': it is asked for "
            "without echo, or read from one line of standard input "
            "(printf '%s\\n' \"$PW\" | paperwire config set email.password -).",
        ),
    ] = None,
) -> None:
    """Change one key of the configuration file, keeping its comments. The new file is
    checked first (nothing is written if it is invalid); the old one is kept as FILE.previous.
    A running daemon applies it within seconds."""
    from daemon.config_file import edit, is_secret, value_of

    path = _config_file()
    admin = key.removeprefix("admin.passwords.")
    if admin != key:  # one admin's hash: not a key `config set` writes (nor asks a secret for)
        raise PaperwireError(
            f"{key}: an admin's password is set with `paperwire admin set-password {admin}` "
            "(it writes the hash)"
        )
    new = value_of(key, _config_value(key, value))
    settings = edit(path, {key: new})
    import tomlkit

    item = tomlkit.item(new)
    if isinstance(new, dict):  # one line, as the value was given
        item = tomlkit.inline_table()
        item.update(new)
    shown = "(secret)" if is_secret(key) else item.as_string()  # as the file writes it
    _record_config("config changed", key, shown)
    out.print(f"{key} = {shown} written to {path}", markup=False, highlight=False)
    _warn_of(key, settings)


def _warn_of(key: str, settings: Settings) -> None:
    """What `config check` warns of, when the key just set is one it concerns."""
    server = settings.server
    concerned = {
        "schedule.digest_cron": settings.schedule.hours_unreached,
        "schedule.timezone": settings.schedule.hours_unreached,
        "server.secret_key": server.weak_key,
        "server.base_url": server.links_elsewhere,
        "server.port": server.links_elsewhere,
        "server.host": server.links_elsewhere,
    }
    warning = concerned[key]() if key in concerned else ""
    if warning:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)


def _config_value(key: str, given: str | None) -> str:
    """The value `config set` writes: as given; for a secret left out (or '-'), asked for
    without echo in a terminal, else one line of standard input; a secret given on the
    command line is written with a warning (the shell's history and `ps` keep it)."""
    from daemon.config_file import is_secret
    from daemon.settings import shown_database_url

    if not is_secret(key):
        if given is None:
            raise PaperwireError(f"{key}: give the value (only a secret's may be left out)")
        return given
    if given is not None and given != "-":
        # a database URL without a password: no warning
        if key != "database.url" or shown_database_url(given) != given:
            err.print(f"[yellow]warning[/]: the value of {key} given on the command line stays "
                      "in the shell's history and is seen in `ps`; leave it out (or give '-') "
                      "to type it unseen or pipe it", highlight=False, soft_wrap=True)  # fmt: skip
        return given
    line = _read_secret(f"Value of {key}")
    if not line:
        raise PaperwireError(f"{key}: no value on standard input (one line is read)")
    return line


def _read_secret(label: str) -> str:
    """A secret typed twice without echo in a terminal, else one line of standard input (its
    line end, \\n or \\r\\n, taken off): `config set`'s and `admin set-password`'s."""
    if sys.stdin.isatty():
        typed: str = typer.prompt(label, hide_input=True, confirmation_prompt=True)
        return typed
    return sys.stdin.readline().rstrip("\r\n")


@config_cli.command("unset")
def config_unset(
    key: Annotated[
        str, typer.Argument(metavar="KEY", help="section.key, e.g. digest.subject_prefix.")
    ],
) -> None:
    """Comment one key out of the configuration file (`# key = value`, where it was): its
    default applies again, and a later `config set` writes the key back there."""
    from daemon.config_file import UNSET, edit, keys

    path = _config_file()
    if key not in {k.key for k in keys()} and not key.startswith("admin.passwords."):
        raise PaperwireError(f"{key}: unknown key; `paperwire config show` lists them")
    edit(path, {key: UNSET})
    _record_config("config unset", key, "")
    out.print(f"{key} removed from {path} (its default applies)", markup=False)


def _record_config(action: str, key: str, detail: str) -> None:
    """The audit entry of a change, when the database can be reached (the file changed in any
    case)."""
    from sqlalchemy.exc import OperationalError

    try:
        with _open_app() as app:
            _audit(app, action, key, detail)
    except PaperwireError as e:
        err.print(f"[yellow]not in the audit log[/]: {escape(str(e))}", highlight=False)
    except OperationalError as e:  # a database.url just set that does not answer (yet)
        reason = escape(" ".join(str(e.orig).split()))
        err.print(f"[yellow]not in the audit log[/]: the database cannot be reached ({reason})",
                  highlight=False)  # fmt: skip


# ---- admins --------------------------------------------------------------------------------------


def _read_password(name: str) -> str:
    """The new password of the admin `name` (asked twice, or one line of standard input)."""
    from daemon.passwords import check_new_password

    password = _read_secret("New password")
    return _checked(lambda p: check_new_password(p, name), password, "password")


@admin_cli.command("set-password")
def admin_set_password(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The admin's login name.")],
    show: Annotated[
        bool,
        typer.Option(
            "--print",
            help="Print the hash for PAPERWIRE_ADMIN__PASSWORDS__NAME instead of writing it.",
        ),
    ] = False,
) -> None:
    """Set an admin's console password (asked twice; or one line on standard input): its
    argon2 hash goes into the configuration file, never the password itself. At least 10
    characters, not holding the admin's name, not one character repeated."""
    from daemon.checks import check_handle
    from daemon.config_file import edit
    from daemon.passwords import hash_password

    login = _checked(lambda n: check_handle(n, "admin name"), name, "NAME").lower()
    hashed = hash_password(_read_password(login), login)
    if show:
        print(f"PAPERWIRE_ADMIN__PASSWORDS__{login.upper()}='{hashed}'")
        return
    settings = edit(_config_file(), {f"admin.passwords.{login}": hashed})
    _end_sessions(login, "admin password set")
    out.print(f"password of admin {login} set; log in at {settings.server.base_url}admin")


@admin_cli.command("remove")
def admin_remove(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The admin's login name.")],
) -> None:
    """Remove an admin: their password leaves the file and their sessions end."""
    from daemon.config_file import UNSET, edit
    from daemon.settings import load_settings

    login = name.lower()
    path = _config_file()
    if login not in load_settings(path).admin.passwords:
        raise PaperwireError(f"no admin named {login!r}; `paperwire admin list` names them")
    settings = edit(path, {f"admin.passwords.{login}": UNSET})
    if login in settings.admin.passwords:  # still set by the environment
        raise PaperwireError(f"admin {login} is set by PAPERWIRE_ADMIN__PASSWORDS__{login.upper()}")
    _end_sessions(login, "admin removed")
    out.print(f"admin {login} removed", markup=False)


@admin_cli.command("list")
def admin_list() -> None:
    """The admins who can log in to the console (names only)."""
    from daemon.settings import load_settings

    settings = load_settings(_state.config)
    # the whole table's variable, or this admin's own (not another admin's: ops's in the
    # environment made root of the file "(environment)" too)
    variables = {var.upper() for var in os.environ}
    whole = "PAPERWIRE_ADMIN__PASSWORDS" in variables
    for login in sorted(settings.admin.passwords):
        own = f"PAPERWIRE_ADMIN__PASSWORDS__{login.upper()}" in variables
        where = "environment" if whole or own else "file"
        out.print(f"{login} ({where})", markup=False)
    if not settings.admin.passwords:
        added = _none_yet("admins", "paperwire admin set-password NAME")
        out.print(f"{added}; the console is closed until then", markup=False)


def _end_sessions(login: str, action: str) -> None:
    try:
        with _open_app() as app:
            app.store.admin.close_sessions_of(login)
            _audit(app, action, login)
    except PaperwireError as e:
        err.print(f"[yellow]sessions not ended[/]: {escape(str(e))}", highlight=False)

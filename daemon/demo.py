"""`paperwire demo`: one real cycle on bundled real feed samples, no network, into var/demo/.

It starts from a fresh SQLite database each time, ingests the samples in config/demo/, adds a few
subscribers (an email reader with likes, a Slack reader with likes, a keyword follower and a
newcomer with nothing yet), runs one full cycle and prints where the digests are. It also writes
var/demo/paperwire.toml with a console admin `demo` and a fresh random password, and prints the
console's address and that password; `paperwire demo --serve` then runs the daemon on it.
"""

from __future__ import annotations

import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from daemon import jobs
from daemon.app import make_app
from daemon.db.engine import upgrade
from daemon.db.models import ChannelKind, FollowKind
from daemon.db.people import LIKE
from daemon.settings import (
    DatabaseSettings,
    FeedSettings,
    Settings,
    config_path,
    load_settings,
)

SAMPLES = Path(__file__).resolve().parent.parent / "config" / "demo"
DEMO_DIR = Path("var/demo")
DEMO_WEBHOOK = "https://hooks.slack.com/services/T000DEMO/B000DEMO/demo-not-a-real-webhook"
DEMO_ADMIN = "demo"


@dataclass(frozen=True)
class DemoUser:
    name: str
    display_name: str
    email: str | None = None
    slack: str | None = None
    likes: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()


DEMO_USERS = (
    DemoUser(
        "ada",
        "Ada (LLMs for software testing)",
        email="ada@example.org",
        likes=("2412.16620", "2312.06056", "2302.03287"),
    ),
    DemoUser(
        "grace",
        "Grace (quantum fluids)",
        slack=DEMO_WEBHOOK,
        likes=("1201.4869", "1005.5383", "1412.6529"),
    ),
    DemoUser(
        "lin",
        "Lin (follows reinforcement learning)",
        email="lin@example.org",
        keywords=("reinforcement learning",),
    ),
    DemoUser("nova", "Nova (new, no likes yet)", email="nova@example.org"),
)


# the bundled samples are recorded feeds, years older than any run: their papers still count
# as news in the demo (`digest.max_age_days`)
DEMO_MAX_AGE_DAYS = 36500


def demo_settings(base: Settings, root: Path) -> Settings:
    """The given settings, pointed at a throw-away SQLite database, file transports and the
    bundled samples."""
    samples = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".json", ".xml"))
    return base.model_copy(
        update={
            "database": DatabaseSettings(url=f"sqlite:///{root / 'paperwire.db'}"),
            "ingest": base.ingest.model_copy(update={"allow_files": True}),
            "digest": base.digest.model_copy(update={"max_age_days": DEMO_MAX_AGE_DAYS}),
            "email": base.email.model_copy(update={"transport": "file"}),
            "slack": base.slack.model_copy(update={"transport": "file"}),
            "delivery": base.delivery.model_copy(update={"outbox_dir": root / "outbox"}),
            "server": base.server.model_copy(update={"secret_key_file": root / "secret.key"}),
            "feeds": tuple(FeedSettings(name=p.stem, url=p.resolve().as_uri()) for p in samples),
        }
    )


def write_demo_config(root: Path, source: Path | None, settings: Settings, password: str) -> Path:
    """var/demo/paperwire.toml: the configuration paperwire was started with (its comments
    kept), pointed at the demo's database, samples and outbox, with the console admin `demo`."""
    import tomlkit

    from daemon.passwords import hash_password

    bundled = Path(__file__).resolve().parent.parent / "config" / "paperwire.toml"
    text = (source if source and source.is_file() else bundled).read_text(encoding="utf-8")
    doc = tomlkit.parse(text)
    admins = tomlkit.inline_table()
    admins.update({DEMO_ADMIN: hash_password(password)})
    overrides: dict[tuple[str, str], object] = {
        ("database", "url"): settings.database.url,
        ("ingest", "allow_files"): True,
        ("digest", "max_age_days"): DEMO_MAX_AGE_DAYS,
        ("email", "transport"): "file",
        ("slack", "transport"): "file",
        ("delivery", "outbox_dir"): str(settings.delivery.outbox_dir),
        ("server", "secret_key_file"): str(settings.server.secret_key_file),
        ("admin", "passwords"): admins,
    }
    for (section, key), value in overrides.items():
        if section not in doc:
            doc[section] = tomlkit.table()
        doc[section][key] = value
    feeds = tomlkit.aot()
    for f in settings.feeds:
        feeds.append(tomlkit.item({"name": f.name, "url": f.url}))
    doc["feeds"] = feeds
    path = root / "paperwire.toml"
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    path.chmod(0o600)
    return path


def serve_demo(console: Console) -> None:
    """`paperwire demo --serve`: the daemon on var/demo/paperwire.toml (the links, the console
    and the jobs) until Ctrl-C."""
    from daemon.scheduler import serve

    path = DEMO_DIR / "paperwire.toml"
    settings = demo_settings(load_settings(path), DEMO_DIR)
    app = make_app(settings, config_file=path)
    try:
        serve(app, lambda: console.print(
            f"paperwire demo running: console {_console_url(settings)} — Ctrl-C stops it",
            highlight=False,
        ))  # fmt: skip
    finally:
        app.close()


def _console_url(settings: Settings) -> str:
    return f"{str(settings.server.base_url).rstrip('/')}/admin"


def run_demo(
    base: Settings,
    *,
    console: Console,
    outbox: Path | None = None,
    source: Path | None = None,
) -> jobs.CycleReport:
    root = DEMO_DIR
    if root.exists():
        shutil.rmtree(root)
    settings = demo_settings(base, root)
    if outbox is not None:
        settings = settings.model_copy(
            update={"delivery": settings.delivery.model_copy(update={"outbox_dir": outbox})}
        )
    started = time.perf_counter()
    app = make_app(settings)
    try:
        upgrade(app.store.engine)
        now = app.clock()
        ingested = jobs.ingest(app, now)
        for u in DEMO_USERS:
            channels = {ChannelKind.EMAIL: u.email or "", ChannelKind.SLACK: u.slack or ""}
            user = app.store.people.add(u.name, now, channels=channels, display_name=u.display_name)
            for ref in u.likes:
                app.store.people.set_feedback(user.id, app.store.papers.find(ref).id, LIKE, now)
            for kw in u.keywords:
                app.store.people.set_follow(user.id, FollowKind.KEYWORD, kw, muted=False)
        digests, delivery = jobs.digest_and_deliver(app, now, force=True)
        seconds = time.perf_counter() - started
        report = jobs.CycleReport(ingest=ingested, digests=digests, delivery=delivery)
        _print(console, report, settings, seconds)
        password = secrets.token_urlsafe(9)
        config = write_demo_config(root, source or config_path(), settings, password)
        _print_subscriber_side(console, settings, config)
        console.print(
            f"\nThe console: [bold]{_console_url(settings)}[/] — name [bold]{DEMO_ADMIN}[/], "
            f"password [bold]{password}[/] (new at every demo). To browse a fresh demo: "
            f"`make demo-serve` (`paperwire demo --serve`); this one: "
            f"`paperwire --config {config} run`.",
            highlight=False,
        )
        return report
    finally:
        app.close()


def _print_subscriber_side(console: Console, settings: Settings, config: Path) -> None:
    """How to try what a subscriber does: a like from the digest, their page, an import."""
    outbox = settings.delivery.outbox_dir
    digest = next(iter(sorted(outbox.glob("*nova*.html"))), None) if outbox.exists() else None
    if digest is None:
        return
    library = SAMPLES / "library.bib"
    console.print(
        "\nWhat a subscriber does, with `make demo-serve` running (the links point at "
        f"{str(settings.server.base_url).rstrip('/')}):\n"
        f"  1. open Nova's digest {digest} in a browser and press “👍 More like this” on a "
        "paper (the page that opens asks for one more press: links never act by themselves);\n"
        "  2. “Manage your digest” at the end of the digest opens Nova's own page: how often "
        "(daily, weekly, a pause), channels, follows, likes, export, deletion;\n"
        f"  3. on that page, “Bring your library” imports {library} (a small BibTeX export) "
        "and shows what was matched and what was stored from the file;\n"
        f"  4. `paperwire --config {config} preview nova --text` shows the digest she would "
        "get now: her likes and her library have changed it.",
        highlight=False,
    )


def _print(console: Console, r: jobs.CycleReport, settings: Settings, seconds: float) -> None:
    console.print(
        f"[bold]paperwire demo[/]: {r.ingest.feeds_ok} bundled feed sample(s), "
        f"{r.ingest.papers_new} papers ingested ({r.ingest.papers_known} duplicates merged); "
        f"{r.digests.created} digest(s) made, {r.delivery.sent} delivered, "
        f"{r.delivery.failed} failed — {seconds:.1f} s"
    )
    for e in r.ingest.errors + r.digests.failed_users + r.delivery.errors:
        console.print(f"  [red]problem[/]: {e}", highlight=False)
    for plan in r.digests.planned:
        table = Table(title=f"{plan.user} ({plan.channel})", title_justify="left", show_lines=False)
        table.add_column("#", justify="right")
        table.add_column("paper")
        table.add_column("score", justify="right")
        table.add_column("why")
        for i, (title, score, why) in enumerate(plan.shown()[:5], 1):
            table.add_row(str(i), title[:70], score, why[:80])
        console.print(table)
    outbox = settings.delivery.outbox_dir
    files = sorted(outbox.glob("*")) if outbox.exists() else []
    console.print(f"\nDigests written to [bold]{outbox}/[/] ({len(files)} files):")
    for kind, pattern in (
        ("email (open in a mail client)", "*.eml"),
        ("HTML preview (open in a browser)", "*.html"),
        ("Slack Block Kit payloads", "*.json"),
    ):
        found = sorted(outbox.glob(pattern))
        if found:
            console.print(
                f"  {kind}: {found[0]}" + (f" (+{len(found) - 1} more)" if len(found) > 1 else "")
            )
    console.print(f"Database: {settings.database.url}")

"""`paperwire demo`: one real cycle on bundled real feed samples, no network, into var/demo/.

It starts from a fresh SQLite database each time, ingests the samples in config/demo/, adds a few
subscribers (an email reader with likes, a Slack reader with likes, a keyword follower and a
newcomer with nothing yet), runs one full cycle and prints where the digests are.
"""

from __future__ import annotations

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
)

SAMPLES = Path(__file__).resolve().parent.parent / "config" / "demo"
DEMO_DIR = Path("var/demo")
DEMO_WEBHOOK = "https://hooks.slack.com/services/T000DEMO/B000DEMO/demo-not-a-real-webhook"


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


def demo_settings(base: Settings, root: Path) -> Settings:
    """The given settings, pointed at a throw-away SQLite database, file transports and the
    bundled samples."""
    samples = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".json", ".xml"))
    return base.model_copy(
        update={
            "database": DatabaseSettings(url=f"sqlite:///{root / 'paperwire.db'}"),
            "ingest": base.ingest.model_copy(update={"allow_files": True}),
            "email": base.email.model_copy(update={"transport": "file"}),
            "slack": base.slack.model_copy(update={"transport": "file"}),
            "delivery": base.delivery.model_copy(update={"outbox_dir": root / "outbox"}),
            "server": base.server.model_copy(update={"secret_key_file": root / "secret.key"}),
            "feeds": tuple(FeedSettings(name=p.stem, url=p.resolve().as_uri()) for p in samples),
        }
    )


def run_demo(base: Settings, *, console: Console, outbox: Path | None = None) -> jobs.CycleReport:
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
        return report
    finally:
        app.close()


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
        for i, (paper, rec) in enumerate(plan.picks[:5], 1):
            table.add_row(str(i), paper.title[:70], f"{rec.score:.2f}", rec.reason[:80])
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

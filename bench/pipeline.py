"""Benchmark: one day of the daemon at lab scale — rank, store and write every digest.

Real paper texts and real libraries (CiteULike-a from ../shared/data): the papers of the
coldstart split's "new" set are today's window, the rest are the stored history, and each
user's training likes are their likes. Digests go through the file transport (the SMTP and
Slack transports are measured by their tests, not here).

    .venv/bin/python -m bench.pipeline --users 1000
    .venv/bin/python -m bench.pipeline --users 1000 --db postgresql+psycopg://postgres@127.0.0.1/bench

Prints one Markdown table row; copy it into bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from daemon import jobs
from daemon.app import make_app
from daemon.db.engine import upgrade
from daemon.db.models import ChannelKind
from daemon.db.people import LIKE
from daemon.ingest.parse import PaperIn
from daemon.settings import Settings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "citeulike-a-dev"
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA, help="a citeulike-a-dev folder")
    ap.add_argument("--users", type=int, default=1000, help="subscribers to simulate")
    ap.add_argument("--db", default="", help="SQLAlchemy URL (default: SQLite in a temp dir)")
    args = ap.parse_args()

    items = [json.loads(line) for line in (args.data / "items.jsonl").open()]
    new_ids = set((args.data / "coldstart" / "candidates.txt").read_text().split())
    likes: dict[str, list[str]] = {}
    for line in (args.data / "coldstart" / "train.tsv").open():
        user, item = line.split()
        likes.setdefault(user, []).append(item)
    users = sorted(likes, key=lambda u: int(u.lstrip("u")))[: args.users]

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database={"url": args.db or f"sqlite:///{tmp}/bench.db"},
            server={"secret_key": "bench-secret-key-0123"},
            delivery={"outbox_dir": f"{tmp}/outbox"},
            digest={"window_hours": 24},
        )
        app = make_app(settings, clock=lambda: NOW)
        upgrade(app.store.engine)

        def paper(it: dict[str, object]) -> PaperIn:
            return PaperIn(
                key=f"citeulike:{it['id']}",
                title=str(it["title"]),
                abstract=str(it["abstract"]),
                authors=tuple(it["authors"]),  # type: ignore[arg-type]
                url=f"https://example.org/{it['id']}",
                published=None,
            )

        t0 = time.perf_counter()
        history = [paper(it) for it in items if it["id"] not in new_ids]
        today = [paper(it) for it in items if it["id"] in new_ids]
        app.store.papers.upsert(history, None, NOW - timedelta(days=3))
        app.store.papers.upsert(today, None, NOW - timedelta(hours=1))
        ids = {p.key: p.id for p in app.store.papers.all()}
        for name in users:
            u = app.store.people.add(name, NOW, channels={ChannelKind.EMAIL: f"{name}@lab.example"})
            for item in likes[name]:
                app.store.people.set_feedback(u.id, ids[f"citeulike:{item}"], LIKE, NOW)
        setup_s = time.perf_counter() - t0

        t1 = time.perf_counter()
        model = jobs.load_recommender(app, NOW)
        fit_s = time.perf_counter() - t1
        assert model.fitted_size
        t2 = time.perf_counter()
        digests = jobs.make_digests(app, NOW, force=True)
        rank_s = time.perf_counter() - t2
        t3 = time.perf_counter()
        sent = jobs.deliver(app, NOW)
        deliver_s = time.perf_counter() - t3
        app.close()

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    backend = "PostgreSQL" if args.db.startswith("postgres") else "SQLite"
    print(
        "| papers | window | users | backend | setup s | fit s | rank+store s | ms/user "
        "| deliver (file) s | digests sent | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {len(history) + len(today)} | {len(today)} | {len(users)} | {backend} "
        f"| {setup_s:.1f} | {fit_s:.1f} | {rank_s:.1f} | {1000 * rank_s / len(users):.1f} "
        f"| {deliver_s:.1f} | {sent.sent} of {digests.created} | {rss_mb:.0f} |"
    )


if __name__ == "__main__":
    main()

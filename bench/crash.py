"""Crash harness: kill delivery in the middle of sending and count what was lost or sent twice.

    .venv/bin/python -m bench.crash                        # SQLite, 2,000 digests, 30 kills
    .venv/bin/python -m bench.crash --db postgresql+psycopg://postgres@127.0.0.1/postgres
    .venv/bin/python -m bench.crash --digests 200 --trials 5          # the CI run (small)

A fresh database gets `--digests` pending digests (one per subscriber). A local SMTP server —
aiosmtpd in another process — records the Message-ID of every message it accepts (a digest's
Message-ID is stable). Then, `--trials` times, a real `paperwire deliver` process is started
and killed with SIGKILL once the server has received a random 1 to digests ÷ (2 × trials)
more messages: by progress, not by time, so each kill lands in the middle of sending on a
fast machine and on a slow one. Between kills the claims of the dead worker are taken over
once their lease runs out (`delivery.lease_seconds`, 10 s here); a worker that finds
nothing to claim meanwhile exits and is started again. Then `--workers` concurrent
`paperwire deliver` processes finish the rest. Counted by Message-ID: digests never received
(lost), received more than once (duplicates), and recorded as sent but never received (a
record that lies).

The guarantee being checked: nothing is lost; a duplicate happens only for a message in flight
when a worker dies (the server accepted it, the worker died before recording it). A worker
sends a big batch on `email.connections` lanes at once (`--connections`, the default 4), so
at most that many are in flight: duplicates ≤ kills × connections; concurrent workers never
send a digest twice.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.daily import database

PAPERWIRE = Path(sys.executable).parent / "paperwire"
MESSAGE_ID = re.compile(rb"^Message-ID:\s*<paperwire-digest-(\d+)-", re.M | re.I)


def _sink(port: int, log_path: str, ready: Any) -> None:
    """The SMTP server process: appends the digest id of each accepted message to a file."""
    from aiosmtpd.controller import Controller

    out = open(log_path, "a", buffering=1)  # noqa: SIM115  (open for the process's life)

    class Record:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            m = MESSAGE_ID.search(envelope.original_content or envelope.content)
            out.write(f"{m.group(1).decode() if m else '?'}\n")
            return "250 OK"

    Controller(Record(), hostname="127.0.0.1", port=port).start()
    ready.set()
    threading.Event().wait()


@contextmanager
def smtp_recorder(log_path: Path) -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_sink, args=(port, str(log_path), ready), daemon=True)
    proc.start()
    ready.wait(30)
    try:
        yield port
    finally:
        proc.kill()
        proc.join()


def prepare(url: str, digests: int) -> None:
    """`digests` subscribers, each with one pending digest of one paper."""
    from daemon.db import Store, make_engine
    from daemon.db.digests import NewDigest, NewItem
    from daemon.db.engine import upgrade
    from daemon.db.models import Channel, User
    from daemon.ingest.parse import PaperIn

    engine = make_engine(url)
    upgrade(engine)
    store = Store(engine)
    now = datetime.now(UTC)
    paper = PaperIn(key="arxiv:1", title="A paper", abstract="", authors=(), url="", published=now)
    store.papers.upsert([paper], None, now)
    pid = store.papers.find("arxiv:1").id
    with engine.begin() as conn:
        conn.execute(sa.insert(getattr(User, "__table__")), [  # noqa: B009
            {"id": i + 1, "name": f"u{i}", "display_name": "", "timezone": "UTC",
             "digest_hour": None, "max_picks": None, "active": True, "unsubscribed_at": None,
             "created_at": now} for i in range(digests)])  # fmt: skip
        conn.execute(sa.insert(getattr(Channel, "__table__")), [  # noqa: B009
            {"id": i + 1, "user_id": i + 1, "kind": "email", "address": f"u{i}@lab.example",
             "active": True} for i in range(digests)])  # fmt: skip
    item = (NewItem(pid, 0.5, "similar", "because"),)
    store.digests.create_many(
        [NewDigest(i + 1, i + 1, date.today(), item, False) for i in range(digests)], now
    )
    engine.dispose()


def _received(log: Path) -> int:
    """Messages the SMTP server has accepted so far (one line each)."""
    return log.read_bytes().count(b"\n")


def counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT state, count(*) FROM digest GROUP BY state")).all()
    engine.dispose()
    return {str(state): int(n) for state, n in rows}


def sent_ids(url: str) -> set[int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        ids = {int(i) for (i,) in conn.execute(sa.text("SELECT id FROM digest WHERE state='sent'"))}
    engine.dispose()
    return ids


def deliver(config: Path, cwd: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERWIRE_")}
    return subprocess.Popen(
        [str(PAPERWIRE), "--config", str(config), "deliver"],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp, database(args.db) as url:
        folder = Path(tmp)
        received_log = folder / "received.txt"
        received_log.touch()
        prepare(url, args.digests)
        with smtp_recorder(received_log) as port:
            config = folder / "paperwire.toml"
            config.write_text(
                f'[database]\nurl = "{url}"\n'
                f'[server]\nsecret_key = "crash"\nsecret_key_file = "{folder / "key"}"\n'
                f'[email]\ntransport = "smtp"\nhost = "127.0.0.1"\nport = {port}\n'
                f'security = "none"\nconnections = {args.connections}\n'
                f"[delivery]\nlease_seconds = {args.lease}\nclaim_batch = {args.claim_batch}\n"
                f'[log]\nlevel = "WARNING"\n'
            )
            started = time.monotonic()
            kills = 0
            # each kill lands after 1–`step` more messages were received: by progress, not by
            # time, so every trial kills a worker in the middle of its sending on any machine
            step = max(1, args.digests // (2 * max(1, args.trials)))
            for _ in range(args.trials):
                target = _received(received_log) + rng.randint(1, step)
                while (
                    counts(url).get("pending", 0)
                    and time.monotonic() < started + args.finish_timeout
                ):
                    proc = deliver(config, folder)
                    while proc.poll() is None and _received(received_log) < target:
                        time.sleep(0.005)
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGKILL)
                        proc.wait()
                        kills += 1
                        break
                    time.sleep(0.5)  # nothing claimable until a dead worker's lease runs out
            # the rest, by concurrent workers, until nothing is pending (leases of the killed
            # workers run out meanwhile)
            deadline = time.monotonic() + args.finish_timeout
            while counts(url).get("pending", 0) and time.monotonic() < deadline:
                workers = [deliver(config, folder) for _ in range(args.workers)]
                for w in workers:
                    w.wait()
                if counts(url).get("pending", 0):
                    time.sleep(1)
            elapsed = time.monotonic() - started
            time.sleep(0.5)  # the recorder's last lines
        received = Counter(int(x) for x in received_log.read_text().split() if x.isdigit())
        recorded = sent_ids(url)
        states = counts(url)
    expected = set(range(1, args.digests + 1))
    return {
        "backend": "PostgreSQL" if args.db else "SQLite",
        "digests": args.digests,
        "kills": kills,
        "workers": args.workers,
        "connections": args.connections,
        "lost": len(expected - set(received)),
        "duplicates": sum(n - 1 for n in received.values() if n > 1),
        "recorded_not_received": len(recorded - set(received)),
        "states": states,
        "seconds": elapsed,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--digests", type=int, default=2000, help="pending digests to deliver")
    ap.add_argument("--trials", type=int, default=30, help="deliver processes killed")
    ap.add_argument("--workers", type=int, default=4, help="concurrent workers that finish")
    ap.add_argument("--lease", type=int, default=10, help="delivery.lease_seconds")
    ap.add_argument("--claim-batch", type=int, default=100, help="delivery.claim_batch")
    ap.add_argument("--connections", type=int, default=4, help="email.connections (lanes)")
    ap.add_argument(
        "--finish-timeout", type=float, default=600, help="seconds for the whole run, at most"
    )
    ap.add_argument("--seed", type=int, default=1, help="of the random kill points")
    ap.add_argument("--db", default="", help="a PostgreSQL server URL (default: SQLite)")
    args = ap.parse_args()
    r = run(args)
    print("| backend | digests | SIGKILLs | finishing workers | lost | duplicates | recorded "
          "sent, never received | states at the end | s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {r['backend']} | {r['digests']} | {r['kills']} | {r['workers']} | {r['lost']} | "
          f"{r['duplicates']} | {r['recorded_not_received']} | {r['states']} | "
          f"{r['seconds']:.0f} |")  # fmt: skip
    ok = (
        r["kills"] == args.trials  # each trial kills mid-sending: half the digests stay for them
        and r["lost"] == 0
        and r["recorded_not_received"] == 0
        and r["duplicates"] <= r["kills"] * r["connections"]
    )
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()

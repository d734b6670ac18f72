"""One realistic day of the daemon at scale, stage by stage, with the daemon's own code.

    .venv/bin/python -m bench.daily --users 100000                  # SQLite in a temp folder
    .venv/bin/python -m bench.daily --users 100000 --db postgresql+psycopg://postgres@127.0.0.1/postgres
    .venv/bin/python -m bench.daily --growth 1000,10000,100000      # the growth table
    .venv/bin/python -m bench.daily --users 20000 --weekly 0.1      # 10 % weekly subscribers
    .venv/bin/python -m bench.daily --users 300 --smoke --weekly 0.1  # the CI smoke run (small)

The day is built in a fresh database with bulk inserts: a history of `--papers` papers (the
real CiteULike-a texts of ../shared/data, reused in blocks when more are asked for, and the
bundled real feed samples), `--users` subscribers whose libraries are real CiteULike
libraries mapped onto those blocks and cut or extended to a heavy-tailed size (5–300 likes),
some with dislikes, followed keywords and authors, a second channel, other time zones and
hours; and `--new` papers first seen today. Then, timed one by one: the fit, making the
digests (rank, select, explain, store), rendering them (HTML + text email, Slack blocks),
delivering them to a local SMTP server (an aiosmtpd sink in another process) with their state
recorded, and parsing the bundled feed samples. Side by side: the bare ranking kernel for every
subscriber (the profile and score products, factors and TF-IDF, and the top k: nothing else),
and, on a sample of users, our scoring called one user at a time and arxiv-sanity-lite's
ranker (a LinearSVC per user), each per user.

Prints the machine (with a Python and a BLAS timing to place it against another) and Markdown
tables; copy them into bench/README.md with the machine line. Also the CPU the SMTP sink used
during each stage: it runs on the same cores as what is measured (an operator's mail server
does not), and aiosmtpd reads each message line by line in Python.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import re
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import scipy.sparse as sp
import sqlalchemy as sa

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "citeulike-a-dev"
# without ../shared (a clone on its own): the 480 CiteULike papers and 3,011 likes the tests use
BUNDLED = Path(__file__).resolve().parents[1] / "tests" / "data" / "citeulike-small" / "fields"
SAMPLES = Path(__file__).resolve().parents[1] / "config" / "demo"
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
ZONES = ("UTC", "Europe/Berlin", "Europe/London", "America/New_York", "America/Los_Angeles",
         "Asia/Tokyo", "Asia/Shanghai", "Australia/Sydney")  # fmt: skip
KEYWORDS = ("network", "protein", "learning", "gene expression", "social", "diffusion")
CHUNK = 20_000  # rows per bulk INSERT


# ---- measuring ----------------------------------------------------------------------------


NOT_COUNTED: set[int] = set()  # processes of the bench itself (the SMTP sink)


def _rss_mb() -> float:
    """Resident memory of this process and its child processes (the delivery workers), not
    counting the bench's own SMTP sink."""
    pids = ["self"]
    for task in Path("/proc/self/task").iterdir():
        try:
            pids += (task / "children").read_text().split()
        except OSError:  # the thread ended
            continue
    total = 0
    for pid in pids:
        if pid != "self" and int(pid) in NOT_COUNTED:
            continue
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1])
        except OSError:  # the process ended
            continue
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def _sink_cpu() -> float:
    """CPU seconds used so far by the bench's own processes (the SMTP sink): they share the
    cores with what is measured."""
    total = 0.0
    for pid in NOT_COUNTED:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # the process ended, or no /proc
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return total


@dataclass
class Stage:
    name: str
    seconds: float = 0.0
    count: int = 0
    unit: str = ""
    peak_mb: float = 0.0
    sink_cpu: float = 0.0  # CPU seconds the bench's SMTP sink used meanwhile

    @property
    def rate(self) -> str:
        return (
            f"{self.count / self.seconds:,.0f} {self.unit}/s" if self.seconds and self.unit else ""
        )


@contextmanager
def measure(stages: list[Stage], name: str, unit: str = "") -> Iterator[Stage]:
    """Wall time of the block and the process's peak resident memory during it."""
    stage = Stage(name, unit=unit)
    stop = threading.Event()
    peak = [_rss_mb()]

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], _rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    sink = _sink_cpu()
    t0 = time.perf_counter()
    try:
        yield stage
    finally:
        stage.seconds = time.perf_counter() - t0
        stage.sink_cpu = _sink_cpu() - sink
        stop.set()
        sampler.join()
        stage.peak_mb = max(peak[0], _rss_mb())
        stages.append(stage)
        print(f"  {name}: {stage.seconds:.1f} s {stage.rate}", flush=True)


# ---- the world ----------------------------------------------------------------------------


@dataclass
class Texts:
    items: list[dict[str, Any]]  # CiteULike papers: id, title, abstract, authors
    libraries: list[list[int]]  # real libraries, as item positions
    new_items: list[int]  # item positions of the coldstart "new" papers
    samples: list[dict[str, Any]] = field(default_factory=list)  # papers of the feed samples


def load_texts(data: Path) -> Texts:
    from daemon.ingest.parse import parse_feed

    items = [json.loads(line) for line in (data / "items.jsonl").open(encoding="utf-8")]
    pos = {str(it["id"]): n for n, it in enumerate(items)}
    libs: dict[str, list[int]] = {}
    cold = data / "coldstart"  # the dataset's layout; the bundled subset: likes.tsv alone
    for line in (cold / "train.tsv" if cold.is_dir() else data / "likes.tsv").open():
        user, item = line.split()
        libs.setdefault(user, []).append(pos[item])
    if cold.is_dir():
        new = [pos[i] for i in (cold / "candidates.txt").read_text().split()]
    else:  # every tenth paper's text for today's papers
        new = list(range(0, len(items), 10))
    samples = []
    for path in sorted(SAMPLES.glob("*.json")) + sorted(SAMPLES.glob("*.xml")):
        for p in parse_feed(path.read_bytes(), url=path.name).papers:
            samples.append({"title": p.title, "abstract": p.abstract, "authors": list(p.authors)})
    return Texts(items, list(libs.values()), new, samples)


def build_day(
    engine: sa.Engine, texts: Texts, users: int, papers: int, new: int, weekly: float = 0.0
) -> dict[str, int]:
    """Fill a fresh database with bulk inserts; returns counts. `weekly`: the share of
    subscribers who get a digest a week (today), with a week of history to rank."""
    from daemon.db.models import Channel, Feedback, Follow, Paper, User

    paper_rows = _papers(texts, papers, new, week=weekly > 0)
    people = _People(texts, papers, weekly)
    for u in range(users):
        people.add(u)
    with engine.begin() as conn:
        for model, rows in ((Paper, paper_rows), (User, people.users),
                            (Channel, people.channels), (Feedback, people.feedback()),
                            (Follow, people.follows)):  # fmt: skip
            table = getattr(model, "__table__")  # noqa: B009  (set by SQLModel's metaclass)
            for start in range(0, len(rows), CHUNK):
                conn.execute(sa.insert(table), rows[start : start + CHUNK])
        if engine.dialect.name == "postgresql":  # ids were given: move the sequences on
            for name in ("paper", "user"):
                quoted = f'"{name}"'
                conn.execute(sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{quoted}', 'id'), "
                    f"(SELECT max(id) FROM {quoted}))"
                ))  # fmt: skip
    return {"papers": papers + new, "new": new, "users": users, "likes": people.likes,
            "weekly": people.weekly}  # fmt: skip


def _papers(texts: Texts, papers: int, new: int, week: bool = False) -> list[dict[str, Any]]:
    """History (ids 1…papers) then today's papers; one in 50 (history) or 10 (today) is from
    the bundled feed samples, the others CiteULike texts. The history was first seen 3 days
    ago; with a `week`, `new` a day in each of the 6 days before today's window and the rest
    8 days ago and before (a weekly subscriber's window holds 7 days of papers)."""
    n_items, samples = len(texts.items), texts.samples
    rows = []
    for i in range(papers):
        src = texts.items[i % n_items] if i % 50 else samples[i // 50 % len(samples)]
        seen = NOW - timedelta(days=3, seconds=i)
        if week:
            day = 1 + i // new  # the first 6 × new papers: days 1 … 6, after the 24 h window
            seen = NOW - (timedelta(days=day, hours=1) if day <= 6 else timedelta(days=8))
            seen -= timedelta(seconds=i % new)
        rows.append(_paper_row(f"bench:h{i}", src, seen))
    for i in range(new):
        if i % 10:
            src = texts.items[texts.new_items[i % len(texts.new_items)]]
        else:
            src = samples[i // 10 % len(samples)]
        rows.append(_paper_row(f"bench:n{i}", src, NOW - timedelta(hours=1, seconds=i)))
    for i, row in enumerate(rows):
        row["id"] = i + 1
    return rows


class _People:
    """Subscribers with real libraries mapped onto the history's blocks of copies."""

    def __init__(self, texts: Texts, papers: int, weekly_share: float = 0.0) -> None:
        self.texts, self.papers = texts, papers
        self.weekly_share, self.weekly = weekly_share, 0  # that share of them: weekly
        self.blocks = max(1, papers // len(texts.items))
        self.rng = random.Random(7)
        self.users: list[dict[str, Any]] = []
        self.channels: list[dict[str, Any]] = []
        self.follows: list[dict[str, Any]] = []
        self._feedback: dict[tuple[int, int], dict[str, Any]] = {}

    @property
    def likes(self) -> int:
        return sum(1 for r in self._feedback.values() if r["value"] > 0)

    def feedback(self) -> list[dict[str, Any]]:
        return list(self._feedback.values())

    def add(self, u: int) -> None:
        uid = u + 1
        zone = ZONES[u % len(ZONES)] if u % 5 == 0 else "UTC"
        # the share spread evenly (0.1: u9, u19, …; 1: everyone)
        weekly = int((u + 1) * self.weekly_share) > int(u * self.weekly_share)
        self.weekly += weekly
        self.users.append({"id": uid, "name": f"u{u}", "display_name": f"User {u}",
                           "timezone": zone, "digest_hour": 6 + u % 4, "max_picks": None,
                           "frequency": "weekly" if weekly else "daily",
                           "digest_weekday": NOW.astimezone(ZoneInfo(zone)).weekday()
                           if weekly else None,
                           "active": True, "unsubscribed_at": None, "created_at": NOW})  # fmt: skip
        self.channels.append({"user_id": uid, "kind": "email", "address": f"u{u}@lab.example",
                              "active": True})  # fmt: skip
        if u % 10 == 3:
            hook = f"https://hooks.slack.example/services/T/B/{u}"
            self.channels.append({"user_id": uid, "kind": "slack", "address": hook,
                                  "active": True})  # fmt: skip
        liked = self._library(u)
        for h in liked:
            self._feedback[(uid, h + 1)] = {"user_id": uid, "paper_id": h + 1, "value": 1,
                                            "created_at": NOW - timedelta(days=10)}  # fmt: skip
        if u % 10 == 5:
            for h in self.rng.sample(range(self.papers), 2):
                self._feedback.setdefault((uid, h + 1), {
                    "user_id": uid, "paper_id": h + 1, "value": -1,
                    "created_at": NOW - timedelta(days=9)})  # fmt: skip
        if u % 10 == 7:  # a popular keyword, and one of their own from a paper they liked
            for word in dict.fromkeys((KEYWORDS[u % len(KEYWORDS)], self._own_keyword(u, liked))):
                if word:
                    self.follows.append({"user_id": uid, "kind": "keyword", "value": word,
                                         "muted": False})  # fmt: skip
        authors = self.texts.items[liked[0] % len(self.texts.items)]["authors"] if liked else []
        if u % 20 == 9 and authors:
            self.follows.append({"user_id": uid, "kind": "author", "value": authors[0],
                                 "muted": False})  # fmt: skip

    def _own_keyword(self, u: int, liked: list[int]) -> str:
        """A word of five letters or more, or two words, of the title of a paper `u` liked:
        subscribers follow keywords of their own (tens of thousands of distinct ones)."""
        if not liked:
            return ""
        title = self.texts.items[liked[-1] % len(self.texts.items)]["title"]
        words = re.findall(r"[A-Za-z][a-z]{4,}", title)
        if not words:
            return ""
        i = u % len(words)
        return (" ".join(words[i : i + 2]) if u % 3 == 0 else words[i]).lower()

    def _library(self, u: int) -> list[int]:
        """History positions: a real library (extended by others) cut to a heavy-tailed size
        (Pareto, 5–300), placed in the user's block of copies."""
        libs = self.texts.libraries
        size = min(300, max(5, int(5 * (1 - self.rng.random()) ** (-1 / 1.1))))
        liked: list[int] = []
        lib = u
        while len(liked) < size:
            liked.extend(libs[lib % len(libs)])
            lib += 7919
        offset = (u // len(libs)) % self.blocks * len(self.texts.items)
        picked = (pos + offset for pos in dict.fromkeys(liked[:size]))
        return [h for h in picked if h < self.papers]


def _paper_row(key: str, src: dict[str, Any], seen: datetime) -> dict[str, Any]:
    return {"key": key, "title": src["title"], "abstract": src.get("abstract") or "",
            "authors": list(src.get("authors") or []), "url": f"https://example.org/{key}",
            "arxiv_id": None, "version": None, "doi": None, "categories": [],
            "upvotes": None, "published_at": seen, "first_seen_at": seen, "is_news": True,
            "feed_id": None}  # fmt: skip


# ---- the SMTP sink ---------------------------------------------------------------------------


def _sink(port: int, count: Any, ready: Any) -> None:
    from aiosmtpd.controller import Controller

    class Count:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with count.get_lock():
                count.value += 1
            return "250 OK"

    controller = Controller(Count(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    threading.Event().wait()


@contextmanager
def smtp_sink() -> Iterator[tuple[int, Any]]:
    """An aiosmtpd server in another process that accepts and counts every message."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    ctx = multiprocessing.get_context("spawn")
    count, ready = ctx.Value("i", 0), ctx.Event()
    proc = ctx.Process(target=_sink, args=(port, count, ready), daemon=True)
    proc.start()
    NOT_COUNTED.add(proc.pid or 0)
    ready.wait(30)
    try:
        yield port, count
    finally:
        proc.kill()
        proc.join()


# ---- one day --------------------------------------------------------------------------------


@contextmanager
def database(url: str) -> Iterator[str]:
    """A fresh database: a file in a temp folder, or a new database on the PostgreSQL server."""
    if not url:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    name = f"paperwire_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run_day(
    args: argparse.Namespace, texts: Texts, users: int
) -> tuple[list[Stage], dict[str, Any]]:
    from daemon import jobs
    from daemon.app import make_app
    from daemon.channels import CHANNELS
    from daemon.db.engine import upgrade
    from daemon.jobs.delivery import digest_of
    from daemon.settings import Settings

    stages: list[Stage] = []
    papers = args.papers or max(10 * args.new, min(users, 100_000))
    info: dict[str, Any] = {}
    side: dict[str, float] = {}
    with (
        database(args.db) as url,
        smtp_sink() as (port, received),
        tempfile.TemporaryDirectory() as tmp,
    ):
        settings = Settings(
            database={"url": url},
            server={"secret_key": "bench-secret-key-0123", "secret_key_file": f"{tmp}/key"},
            email={"transport": "smtp", "host": "127.0.0.1", "port": port, "security": "none"},
            slack={"transport": "file"},
            delivery={"outbox_dir": f"{tmp}/outbox", "workers": args.workers},
            digest={"window_hours": 24},
            log={"level": "WARNING"},  # not a line per message sent on the bench's terminal
        )
        app = make_app(settings, clock=lambda: NOW)
        upgrade(app.store.engine)
        with measure(stages, "build the day (bulk inserts)") as st:
            info.update(build_day(app.store.engine, texts, users, papers, args.new, args.weekly))
            _as_autovacuum_would(app.store.engine)
        with measure(stages, "fit (papers + every library)") as st:
            model = jobs.load_recommender(app, NOW)
            st.count, st.unit = users, "libraries"
        with measure(stages, "make digests: rank, select, explain, store", "digests") as st:
            made = jobs.make_digests(app, NOW, force=True)
            st.count = made.created
        with app.store.engine.connect() as conn:
            ids = [i for (i,) in conn.execute(sa.text("SELECT id FROM digest ORDER BY id"))]
        sample = ids[:: max(1, len(ids) // args.render_sample)][: args.render_sample]
        with measure(stages, "read digests to render (database)", "digests") as st:
            read, papers = [], {}  # as delivery does: 100 read together, each paper once
            for start in range(0, len(sample), 100):
                contents = app.store.digests.contents(sample[start : start + 100], papers)
                read += [digest_of(app, content) for content in contents.values()]
            st.count = len(read)
        with measure(stages, "render (email HTML + text, Slack)", "digests") as st:
            for digest, channel, _ in read:
                CHANNELS[channel.kind].render(app, digest, channel.address)
            st.count = len(read)
        name = f"deliver ({args.workers} worker processes; local SMTP server, file for Slack)"
        with measure(stages, name, "messages") as st:
            sent = jobs.deliver_due(app, NOW)
            st.count = sent.sent
        info.update(created=made.created, sent=sent.sent, received=received.value,
                    failed=sent.failed + sent.retrying + sent.postponed)  # fmt: skip
        with measure(stages, "ingest: parse the feed samples", "entries") as st:
            from daemon.ingest.parse import parse_feed

            feeds = sorted(SAMPLES.glob("*.*"))
            blobs = [p.read_bytes() for p in feeds if p.suffix in (".xml", ".json")]
            n = 0
            for _ in range(args.parse_rounds):
                for blob in blobs:
                    n += len(parse_feed(blob).papers)
            st.count = n
        # the day again as the daemon runs it: digests made and delivered at the same time
        _forget_digests(app.store.engine)
        before = received.value
        with measure(stages, "make + deliver together, as the daemon does", "digests") as st:
            again, delivered = jobs.digest_and_deliver(app, NOW, force=True)
            st.count = delivered.sent
        info.update(together_made=again.created, together_sent=delivered.sent,
                    together_received=received.value - before)  # fmt: skip
        side = (
            bare_kernel(app, model) if args.smoke else side_by_side(app, model, texts, args.sample)
        )
        info.update(side)
        app.close()
    return stages, info


def _forget_digests(engine: sa.Engine) -> None:
    """Delete the day's digests (and their items and attempts) to make them again."""
    from daemon.db.models import DeliveryAttempt, Digest, DigestItem

    with engine.begin() as conn:
        for model in (DeliveryAttempt, DigestItem, Digest):
            conn.execute(sa.delete(getattr(model, "__table__")))  # noqa: B009
    _as_autovacuum_would(engine)


def _as_autovacuum_would(engine: sa.Engine) -> None:
    """PostgreSQL: VACUUM ANALYZE the database, as autovacuum would have done by the next day
    after a history was loaded or a day's digests deleted. A new table has no statistics
    until then: the planner read 1,000 subscribers' likes by a scan of all 2.1 million (120 ms
    a batch, 20 ms with them), and deleted digests stay in the scans until a vacuum."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))


def side_by_side(app: Any, model: Any, texts: Texts, n: int) -> dict[str, float]:
    """ms per user of: the bare kernel, our scoring one user at a time, asl's per-user SVM."""
    from sklearn.svm import LinearSVC

    from daemon.jobs.recommend import to_doc, to_feedback
    from recommender.evaluate import asl_vectorizer
    from recommender.exact import one_blas_thread

    window = app.store.papers.window(NOW - timedelta(hours=24), NOW + timedelta(seconds=1))
    cands = [to_doc(p) for p in window]
    everyone = [u.id for u, _ in app.store.people.subscribers()]
    users = everyone[:: max(1, len(everyone) // n)][:n]
    signals = app.store.people.signals(users)
    fbs = [to_feedback(signals[u]) for u in users]
    out: dict[str, float] = bare_kernel(app, model)
    with one_blas_thread():  # as the digest job ranks
        t0 = time.perf_counter()
        for fb in fbs:
            model.rank(cands, [fb], k=10, now=NOW)
        out["one_at_a_time_ms"] = 1000 * (time.perf_counter() - t0) / len(fbs)
        t0 = time.perf_counter()
        model.rank(cands, fbs, k=10, now=NOW)
        out["batched_ms"] = 1000 * (time.perf_counter() - t0) / len(fbs)
    papers = app.store.papers.all()
    index = {p.id: i for i, p in enumerate(papers)}
    texts_ = [f"{p.title}. {p.abstract} {' '.join(p.authors)}" for p in papers]
    x = asl_vectorizer().fit_transform(texts_).tocsr()
    xc = x[[index[p.id] for p in window]]
    svm_users = users[: max(1, n // 3)]
    t0 = time.perf_counter()
    for u in svm_users:
        y = np.zeros(x.shape[0], dtype=np.int8)
        y[[index[pid] for pid, _ in signals[u].likes]] = 1
        clf = LinearSVC(class_weight="balanced", max_iter=10000, tol=1e-6, C=0.01)
        clf.fit(x, y)
        clf.decision_function(xc)
    out["svm_ms"] = 1000 * (time.perf_counter() - t0) / len(svm_users)
    return out


def bare_kernel(app: Any, model: Any, k: int = 10) -> dict[str, float]:
    """Seconds of the bare ranking kernel for every subscriber, in batches of 1,000 as the
    digest job ranks: the profile products (the liked papers' factors and TF-IDF rows, weighted
    means, normalised), the score products (profiles × the candidates' factors, dense; text
    profiles × the candidates' TF-IDF rows, sparse), their weighted sum and the top k. Nothing
    else: the likes are resolved to table rows and the tables gathered before the clock starts.
    Also the factor product alone (the part measured before the text product was counted).
    Twice: BLAS on one thread, as the digest job ranks (`kernel_s`), and on every core."""
    from daemon.jobs.recommend import to_doc
    from recommender.exact import one_blas_thread

    f = model._fitted
    if f is None or f.factors is None:
        return {}
    groups = []  # daily subscribers rank today's papers, weekly ones (--weekly) the week's
    subscribers = [u for u, _ in app.store.people.subscribers()]
    for frequency, hours in (("daily", 24), ("weekly", 24 + 6 * 24)):
        users = [u.id for u in subscribers if u.frequency == frequency]
        if users:
            since, until = NOW - timedelta(hours=hours), NOW + timedelta(seconds=1)
            window = app.store.papers.window(since, until)
            signals = app.store.people.signals(users)
            liked = [[f.index[str(pid)] for pid, _ in signals[u].likes if str(pid) in f.index]
                     for u in users]  # fmt: skip
            groups.append((model.candidates([to_doc(p) for p in window]), liked))
    out: dict[str, float] = {}
    for key, blas in (("kernel", one_blas_thread()), ("kernel_all_cores", nullcontext())):
        with blas:  # as the job ranks; then as the process runs BLAS
            passes = [_kernel_pass(model, cands, liked, k) for cands, liked in groups]
            out[f"{key}_s"] = sum(whole for whole, _ in passes)
            out[f"{key}_factor_s"] = sum(factor for _, factor in passes)
    return out


def _kernel_pass(model: Any, cands: Any, liked: list[list[int]], k: int) -> tuple[float, float]:
    """`bare_kernel` once: seconds of the whole kernel, and of its factor products alone."""
    from sklearn.preprocessing import normalize

    from recommender.exact import LEFT_BITS, on_grid
    from recommender.selection import _dense_product

    f = model._fitted
    qc, xc_t = cands.cand_factors(), cands.xc_t
    factors = f.factors.astype(np.float64)
    scale = f.singular.astype(np.float64) ** model.config.cf_singular_power
    prior, w = f.profile_prior_likes, f.text_weight
    full = factor_only = 0.0
    for start in range(0, len(liked), 1000):
        batch = [r for r in liked[start : start + 1000] if r]
        rows = np.concatenate([np.asarray(r, dtype=np.int64) for r in batch])
        owner = np.repeat(np.arange(len(batch)), [len(r) for r in batch])
        weight = np.concatenate([np.full(len(r), 1.0 / len(r)) for r in batch])
        mean = sp.csr_matrix((weight, (owner, np.arange(len(rows)))), (len(batch), len(rows)))
        text = f.matrix[rows]  # the tables: every like's TF-IDF row and factors
        frow = f.factor_row[rows]
        learned = factors[np.maximum(frow, 0)]
        predicted = model.predicted_factors(text) / scale
        learned[frow < 0] = predicted[frow < 0]
        n = np.asarray([len(r) for r in batch], dtype=np.float64)[:, None]
        t0 = time.perf_counter()
        fac = normalize(mean @ learned)
        if prior > 0:
            alpha = n / (n + prior)
            fac = alpha * fac + (1 - alpha) * normalize(mean @ predicted)
        scores = on_grid(fac, LEFT_BITS) @ qc.T
        t1 = time.perf_counter()
        np.argpartition(-scores, k, axis=1)[:, :k]  # the top k of the factor scores alone
        t2 = time.perf_counter()
        factor_only += t2 - t0
        if w > 0:  # the text product too, and the top k of the weighted sum (not of the above)
            prof = sp.csr_matrix(normalize(sp.csr_matrix(mean @ text)), dtype=np.float32)
            scores = (1 - w) * scores + w * _dense_product(prof, xc_t)
            np.argpartition(-scores, k, axis=1)[:, :k]
            full += (t1 - t0) + (time.perf_counter() - t2)
        else:
            full += t2 - t0
    return full, factor_only


def machine() -> str:
    """The machine a run's figures come from, and two timings that place it against another:
    a loop of plain Python (dict reads and appends, like the per-subscriber work around the
    kernel) and one batch's factor product (BLAS, like the kernel). Best of three each."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                 if ln.startswith("model name")]  # fmt: skip
        model = names[0] if names else model
    table = {i: i for i in range(1000)}

    def python_loop() -> None:
        out = []
        for i in range(1_000_000):
            out.append(table[i % 1000])

    rng = np.random.default_rng(0)
    profiles = rng.random((1000, 512), dtype=np.float32)
    candidates = rng.random((3000, 512), dtype=np.float32)

    def best_ms(work: Any) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
        return 1000 * min(times)

    py_ms = best_ms(python_loop)
    blas_ms = best_ms(lambda: profiles @ candidates.T)
    return (
        f"machine: {model}, {os.cpu_count()} logical cores, Python {platform.python_version()}; "
        f"1 M dict reads and appends in Python {py_ms:.0f} ms, one batch's factor product "
        f"(1,000 × 512 · 512 × 3,000, float32) {blas_ms:.1f} ms"
    )


def _print_stages(stages: list[Stage], info: dict[str, Any], backend: str) -> None:
    parts = ("fit", "make digests", "deliver", "ingest")  # read + render are inside deliver
    total = sum(s.seconds for s in stages if s.name.startswith(parts))
    daemon = sum(s.seconds for s in stages if s.name.startswith(("fit", "make +", "ingest")))
    print(f"\n{info['users']:,} subscribers, {info['papers']:,} papers ({info['new']:,} new), "
          f"{info['likes']:,} likes, {info['weekly']:,} weekly subscribers — {backend}; "
          f"{info['created']:,} digests made, "
          f"{info['sent']:,} sent ({info['received']:,} received by the server), "
          f"{info['failed']} not sent")  # fmt: skip
    print("\n| stage | s | throughput | peak RSS MB |\n|---|---|---|---|")
    for s in stages:
        print(f"| {s.name} | {s.seconds:.1f} | {s.rate} | {s.peak_mb:,.0f} |")
    peak = max(s.peak_mb for s in stages if not s.name.startswith("build"))
    print(f"| **whole cycle, stage after stage** (fit, make, deliver, ingest) | **{total:.1f}** "
          f"| | {peak:,.0f} |")  # fmt: skip
    print(f"| **whole cycle as the daemon runs it** (fit, make + deliver together, ingest) | "
          f"**{daemon:.1f}** | | {peak:,.0f} |")  # fmt: skip
    for s in stages:
        if s.sink_cpu >= 0.1:
            print(f"\nthe bench's SMTP sink (aiosmtpd, on the same cores) used {s.sink_cpu:.1f} s "
                  f"of CPU during '{s.name}' ({s.sink_cpu / s.seconds:.0%} of a core)")  # fmt: skip
    if "together_sent" in info:
        print(f"\nmade and delivered together: {info['together_made']:,} made, "
              f"{info['together_sent']:,} sent, "
              f"{info['together_received']:,} received")  # fmt: skip
    if "svm_ms" in info:
        b = info["batched_ms"]
        print("\n| ranking, ms per user | ms | × our batched ranking |\n|---|---|---|")
        if "kernel_s" in info:
            users = max(1, info["users"])
            kernel_ms = 1000 * info["kernel_s"] / users
            factor_ms = 1000 * info["kernel_factor_s"] / users
            print(f"| bare kernel: profile and score products (factors + TF-IDF), top-k | "
                  f"{kernel_ms:.3f} | {kernel_ms / b:.2f} |")  # fmt: skip
            print(f"| bare kernel, the factor products alone | {factor_ms:.3f} | "
                  f"{factor_ms / b:.2f} |")  # fmt: skip
        print(f"| paperwire, batched (rank + select + explain) | {b:.3f} | 1 |")
        print(f"| paperwire, one user per call | {info['one_at_a_time_ms']:.3f} | "
              f"{info['one_at_a_time_ms'] / b:.1f} |")  # fmt: skip
        print(f"| arxiv-sanity-lite: LinearSVC per user | {info['svm_ms']:.1f} | "
              f"{info['svm_ms'] / b:.0f} |")  # fmt: skip
    make = next((s for s in stages if s.name.startswith("make digests")), None)
    if make is not None and info.get("kernel_s"):
        print(f"\nmake digests {make.seconds:.1f} s ÷ the bare kernel for every subscriber "
              f"{info['kernel_s']:.2f} s = {make.seconds / info['kernel_s']:.1f}× "
              f"(factor products alone: {info['kernel_factor_s']:.2f} s); BLAS on one thread, "
              f"as the job ranks. On every core: {info['kernel_all_cores_s']:.2f} s = "
              f"{make.seconds / info['kernel_all_cores_s']:.1f}×")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000, help="subscribers (default: 10,000)")
    ap.add_argument("--growth", default="", help="sizes, comma-separated: one day each, a table")
    ap.add_argument("--papers", type=int, default=0, help="history (default: users, ≤ 100,000)")
    ap.add_argument(
        "--new", type=int, default=3000, help="papers first seen today (default: 3,000)"
    )
    ap.add_argument("--db", default="", help="a PostgreSQL server URL (default: SQLite)")
    ap.add_argument(
        "--data",
        type=Path,
        default=None,
        help="the CiteULike-a folder (default: ../shared/data, else the tests' small subset)",
    )
    ap.add_argument("--sample", type=int, default=300, help="users for the side-by-side rows")
    ap.add_argument(
        "--render-sample",
        type=int,
        default=20_000,
        help="digests read and rendered (default: 20,000)",
    )
    ap.add_argument(
        "--parse-rounds",
        type=int,
        default=20,
        help="times the feed samples are parsed (default: 20)",
    )
    ap.add_argument("--workers", type=int, default=2, help="delivery.workers (processes)")
    ap.add_argument("--smoke", action="store_true", help="small and quick: no side-by-side")
    ap.add_argument(
        "--weekly",
        type=float,
        default=0.0,
        help="share of weekly subscribers, due today, who rank a week of papers (default: 0)",
    )
    args = ap.parse_args()
    for name in ("users", "new", "sample", "render_sample", "parse_rounds", "workers"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.smoke:  # CI: every stage runs once, small, no timing asserted
        args.papers, args.new = args.papers or 3000, min(args.new, 300)
        args.render_sample, args.parse_rounds = min(args.render_sample, 100), 1
    if args.data is None:
        args.data = DATA if DATA.is_dir() else BUNDLED
        if args.data == BUNDLED:
            print(f"{DATA} not found: the tests' 480 CiteULike papers ({BUNDLED})", flush=True)
    if not 0 <= args.weekly <= 1:
        ap.error(f"--weekly is a share of the subscribers, 0 … 1, not {args.weekly}")
    if args.weekly and (args.papers or 10 * args.new) < 6 * args.new:
        ap.error(f"--weekly needs a history of 6 days' papers: --papers ≥ {6 * args.new}")
    texts = load_texts(args.data)
    backend = "PostgreSQL" if args.db else "SQLite"
    sizes = [int(s) for s in args.growth.split(",") if s] or [args.users]
    print(machine(), flush=True)
    growth = []
    for users in sizes:
        print(f"— {users:,} subscribers on {backend}", flush=True)
        stages, info = run_day(args, texts, users)
        _print_stages(stages, info, backend)
        growth.append((users, stages))
    print("\nat the end, " + machine(), flush=True)  # a shared host's speed drifts: compare
    if len(growth) > 1:
        names = [s.name for s in growth[0][1]]
        print("\n| stage | " + " | ".join(f"{u:,} users" for u, _ in growth) + " |")
        print("|---|" + "---|" * len(growth))
        for i, name in enumerate(names):
            print(f"| {name} | " + " | ".join(f"{st[i].seconds:.1f} s" for _, st in growth) + " |")


if __name__ == "__main__":
    main()

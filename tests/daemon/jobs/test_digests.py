"""The digest job: subscribers in batches (ranked, stored in one transaction, delivered as they
are made), one query for the digests already made, duplicates left to the unique key."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from daemon import jobs
from daemon.app import App
from daemon.db.digests import NewDigest, NewItem
from daemon.db.models import ChannelKind, Digest, DigestState
from daemon.ingest.parse import PaperIn
from daemon.jobs import digests as digests_job
from daemon.jobs.delivery import build_digest
from daemon.jobs.recommend import corpus_size
from recommender import Recommender
from recommender.state import FORMAT_VERSION
from tests.daemon.conftest import BOTH_BACKENDS, NOW


def _world(app: App, users: int) -> None:
    papers = [
        PaperIn(key=f"arxiv:{n}", title=f"Graph networks {n}", abstract="", authors=(), url="",
                published=NOW)
        for n in range(6)
    ]  # fmt: skip
    app.store.papers.upsert(papers, None, NOW - timedelta(hours=1))
    for i in range(users):
        app.store.people.add(f"u{i}", NOW, channels={ChannelKind.EMAIL: f"u{i}@lab.example"})


@BOTH_BACKENDS
def test_subscribers_go_through_in_batches_and_are_delivered_as_they_are_made(
    app_factory: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = app_factory()
    _world(app, 5)
    monkeypatch.setattr(digests_job, "USER_BATCH", 2)
    sent_after_each_batch: list[int] = []

    def deliver() -> None:
        jobs.deliver(app, NOW)
        sent_after_each_batch.append(app.store.digests.counts().get(DigestState.SENT, 0))

    report = jobs.make_digests(app, NOW, force=True, after_batch=deliver)
    assert report.created == 5 and report.users == 5 and report.failed_users == []
    assert sent_after_each_batch == [2, 4, 5]  # the first two did not wait for the last
    again = jobs.make_digests(app, NOW, force=True)
    assert again.created == 0 and again.already == 5


@BOTH_BACKENDS
def test_a_digest_made_meanwhile_by_another_worker_is_skipped(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory()
    _world(app, 2)
    (ada, ada_chans), (bob, bob_chans) = app.store.people.subscribers()
    pid = app.store.papers.find("arxiv:1").id
    item = (NewItem(pid, 0.5, "similar", "because"),)
    period = date(2026, 11, 27)
    first = app.store.digests.create_many(
        [NewDigest(ada.id, ada_chans[0].id, period, item, False)], NOW
    )
    both = app.store.digests.create_many(
        [
            NewDigest(ada.id, ada_chans[0].id, period, item, False),
            NewDigest(bob.id, bob_chans[0].id, period, (), False),
        ],
        NOW,
    )
    assert list(first) == [(ada.id, ada_chans[0].id)]
    assert list(both) == [(bob.id, bob_chans[0].id)]  # ada's exists: the unique key skips it
    content = app.store.digests.content(first[(ada.id, ada_chans[0].id)])
    assert [i.reason for i, _ in content.items] == ["because"]  # items of the first insert only
    assert app.store.digests.made({period}) == {
        (ada_chans[0].id, period),
        (bob_chans[0].id, period),
    }
    # every column as the ORM would set it (on PostgreSQL the digests go in as arrays)
    with app.store.digests.session() as s:
        rows = s.exec(select(Digest).order_by(col(Digest.user_id))).all()
    assert [(d.user_id, d.channel_id, d.period) for d in rows] == [
        (ada.id, ada_chans[0].id, period),
        (bob.id, bob_chans[0].id, period),
    ]
    assert [(d.state, d.cold_start, d.attempts, d.parts_sent) for d in rows] == [
        (DigestState.PENDING, False, 0, 0),
        (DigestState.EMPTY, False, 0, 0),  # nothing to send
    ]
    assert all(d.created_at == NOW and d.next_attempt_at == NOW for d in rows)
    cold = app.store.digests.create_many(
        [NewDigest(ada.id, ada_chans[0].id, date(2026, 11, 28), item, True)], NOW
    )
    with app.store.digests.session() as s:
        made = s.get(Digest, cold[(ada.id, ada_chans[0].id)])
    assert made is not None and made.cold_start and made.period == date(2026, 11, 28)


@BOTH_BACKENDS
def test_papers_dated_long_before_the_window_are_not_announced_as_new(
    app_factory: Callable[..., App], make_settings: Callable[..., Any]
) -> None:
    """An arXiv API query can return 2010 papers: first seen today, they are not news."""
    app = app_factory(make_settings(digest={"max_age_days": 30}))
    old, fresh, undated = (
        PaperIn(key="arxiv:1001.00001", title="Graph networks of 2010", abstract="", authors=(),
                url="", published=datetime(2010, 1, 4, tzinfo=UTC), arxiv_id="1001.00001"),
        PaperIn(key="arxiv:2611.00002", title="Protein folding kinetics", abstract="",
                authors=(), url="", published=NOW - timedelta(days=29), arxiv_id="2611.00002"),
        PaperIn(key="guid:blog-1", title="Lattice quantum chromodynamics", abstract="", authors=(),
                url="https://blog.example/1", published=None),
    )  # fmt: skip
    app.store.papers.upsert([old, fresh, undated], None, NOW - timedelta(hours=1))
    app.store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
    report = jobs.make_digests(app, NOW, force=True, dry_run=True)
    assert report.too_old == 1 and report.candidates == 2
    (plan,) = report.planned
    assert sorted(p.key for p, _ in plan.picks) == ["arxiv:2611.00002", "guid:blog-1"]
    # undated: judged by when it was first seen (long ago: not in the window at all)
    strict = app_factory(make_settings(digest={"max_age_days": 28}))
    assert jobs.make_digests(strict, NOW, force=True, dry_run=True).candidates == 1


@BOTH_BACKENDS
def test_a_stored_digest_carries_what_the_reader_sees_of_each_paper(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory()
    paper = PaperIn(
        key="arxiv:2611.00042", title=r"$\omega$Test", abstract="", authors=("A. Author",),
        url="https://arxiv.org/abs/2611.00042", published=datetime(2026, 11, 26, 20, tzinfo=UTC),
        arxiv_id="2611.00042", categories=("cs.LG", "stat.ML"), upvotes=5,
    )  # fmt: skip
    app.store.papers.upsert([paper], None, NOW - timedelta(hours=1))
    app.store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
    report = jobs.make_digests(app, NOW, force=True)
    (plan,) = report.planned
    assert plan.digest_id is not None
    digest, _, _ = build_digest(app, plan.digest_id)
    (pick,) = digest.picks
    assert (pick.arxiv_id, pick.category, pick.day) == ("2611.00042", "cs.LG", date(2026, 11, 26))
    assert pick.kind == "trending" and pick.upvotes == 5  # no likes: a filler


def test_a_real_run_keeps_the_picks_of_a_few_digests_a_dry_run_of_all(
    app_factory: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report's picks are for showing: kept for PLANNED_KEPT digests of a real run (memory
    must not grow with the subscribers), for every digest of a dry run; the counts are whole."""
    app = app_factory()
    _world(app, 7)
    monkeypatch.setattr(digests_job, "USER_BATCH", 2)
    monkeypatch.setattr(digests_job, "PLANNED_KEPT", 3)
    dry = jobs.make_digests(app, NOW, force=True, dry_run=True)
    assert len(dry.planned) == 7
    report = jobs.make_digests(app, NOW, force=True)
    assert report.created == 7 and report.users == 7
    assert [p.user for p in report.planned] == ["u0", "u1", "u2"]
    assert all(p.digest_id is not None for p in report.planned)


def _noting_gc(work: Callable[..., Any], seen: list[bool]) -> Callable[..., Any]:
    """`work`, noting in `seen` whether the cycle collector is on at each call."""
    import gc

    def noted(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return work(*args, **kwargs)

    return noted


def test_batches_are_made_without_the_cycle_collector_and_it_is_restored(
    app_factory: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    app = app_factory()
    _world(app, 3)
    monkeypatch.setattr(digests_job, "USER_BATCH", 2)
    during: list[bool] = []  # per batch: the collector on while it is made, and stored
    stored: list[bool] = []
    after: list[bool] = []
    for name, seen in (("_plan_batch", during), ("_store_batch", stored)):
        monkeypatch.setattr(digests_job, name, _noting_gc(getattr(digests_job, name), seen))
    assert gc.isenabled()
    report = jobs.make_digests(
        app, NOW, force=True, after_batch=lambda: after.append(gc.isenabled())
    )
    assert report.created == 3
    assert during == [False, False] and after == [True, True]  # delivery runs with it on
    assert stored == [False, False]  # off between the batches too, not turned on after each
    assert gc.isenabled()
    app.store.people.add("late", NOW, channels={ChannelKind.EMAIL: "late@lab.example"})
    gc.disable()  # a caller that turned it off keeps it off
    try:
        assert jobs.make_digests(app, NOW, force=True, users=["late"]).created == 1
        assert during[-1] is False and not gc.isenabled()
    finally:
        gc.enable()


def test_undated_likes_are_made_once_per_paper() -> None:
    from daemon.db.rows import UserSignals
    from daemon.jobs.recommend import to_feedback
    from recommender import Like

    ada = UserSignals(1, ((7, None), (8, None)), (), (), frozenset())
    bob = UserSignals(2, ((8, None), (9, NOW)), (), (), frozenset())
    shared: dict[int, Like] = {}
    a, b = to_feedback(ada, shared), to_feedback(bob, shared)
    assert a.likes == (Like("7"), Like("8")) and b.likes == (Like("8"), Like("9", NOW))
    assert a.likes[1] is b.likes[0]  # one Like for paper 8
    assert set(shared) == {7, 8}  # a dated like is the user's own
    assert to_feedback(bob) == b  # the same feedback without sharing


@BOTH_BACKENDS
def test_a_paper_liked_after_the_fit_is_ranked_from_its_text(
    app_factory: Callable[..., App], make_settings: Callable[..., Any]
) -> None:
    """A paper stored after the model's fit (no refit: papers and likes grew less than
    `refit_growth`) reaches the ranking as text: a subscriber whose only like it is gets the
    papers close to it, not the cold start's trending ones."""
    app = app_factory(make_settings(recommender={"refit_growth": 100.0}))
    topics = {
        "protein": "protein folding energy landscape of the folded protein chain",
        "graph": "graph neural networks pass messages along the edges of a graph",
    }
    app.store.papers.upsert(
        [PaperIn(key=f"arxiv:{t}{n}", title=f"{t} study {n}", abstract=text, authors=(), url="",
                 published=NOW) for t, text in topics.items() for n in range(3)],
        None, NOW - timedelta(hours=1),
    )  # fmt: skip
    ada = app.store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
    model = jobs.load_recommender(app, NOW)
    late = PaperIn(key="arxiv:late", title="Protein folding", abstract=topics["protein"],
                   authors=(), url="", published=NOW - timedelta(days=9))  # fmt: skip
    app.store.papers.upsert([late], None, NOW - timedelta(days=9))  # not a candidate today
    late_id = app.store.papers.find("arxiv:late").id
    app.store.people.set_feedback(ada.id, late_id, 1, NOW)
    assert not model.knows(str(late_id))
    report = jobs.make_digests(app, NOW, force=True)
    assert jobs.load_recommender(app, NOW) is model  # ranked by the model fitted before
    (planned,) = report.planned
    kinds = {r.kind for _, r in planned.picks}
    assert kinds == {"similar"}
    assert planned.picks[0][0].key.startswith("arxiv:protein")


def test_each_paper_is_looked_up_in_the_model_once_a_run() -> None:
    """The papers liked after the fit are passed to the ranking as text: which they are is
    asked of the model once per paper and run, not once per batch that likes it."""
    asked: list[str] = []

    class FakeModel:  # a fitted model that knows papers 1 and 2 (the real one: recommender)
        def knows(self, doc_id: str) -> bool:
            asked.append(doc_id)
            return doc_id in {"1", "2"}

    model = digests_job._Model(None, NOW)  # type: ignore[arg-type]
    model._model = FakeModel()  # type: ignore[assignment]
    assert model.unknown({1, 2, 3}) == {3}
    assert model.unknown({2, 3, 4}) == {3, 4}
    assert model.unknown(set()) == set()
    assert sorted(asked) == ["1", "2", "3", "4"]


@BOTH_BACKENDS
def test_a_batch_is_stored_by_the_writer_thread_while_the_next_is_ranked(
    app_factory: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store of batch 1 waits until batch 2 is being ranked: made one after the other,
    the job would never get there (the wait times out and the test fails)."""
    import threading

    app = app_factory()
    _world(app, 4)
    monkeypatch.setattr(digests_job, "USER_BATCH", 2)
    second_ranked = threading.Event()
    plan_batch, store_batch = digests_job._plan_batch, digests_job._store_batch
    seen: list[tuple[str, str]] = []

    def plan(*args: Any, **kwargs: Any) -> Any:
        seen.append(("plan", threading.current_thread().name))
        planned = plan_batch(*args, **kwargs)
        if len([s for s in seen if s[0] == "plan"]) == 2:
            second_ranked.set()
        return planned

    def store(*args: Any, **kwargs: Any) -> Any:
        seen.append(("store", threading.current_thread().name))
        if len([s for s in seen if s[0] == "store"]) == 1:
            assert second_ranked.wait(60), "batch 1 was stored before batch 2 was ranked"
        return store_batch(*args, **kwargs)

    monkeypatch.setattr(digests_job, "_plan_batch", plan)
    monkeypatch.setattr(digests_job, "_store_batch", store)
    report = jobs.make_digests(app, NOW, force=True)
    assert report.created == 4 and report.failed_users == []
    assert {name for step, name in seen if step == "store"} == {"paperwire-digest-store_0"}
    assert {name for step, name in seen if step == "plan"} == {threading.current_thread().name}
    assert app.store.digests.counts().get(DigestState.PENDING) == 4


def test_on_sqlite_no_batch_is_read_while_one_is_stored(
    app_factory: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next batch's signals are read before the writer stores a batch, not meanwhile: on
    SQLite each fetched row hands the GIL over, and a read during the inserts took 2.5 times
    as long. Each store lasts a moment longer here, so a read during one would be seen."""
    import threading
    import time

    app = app_factory()
    _world(app, 7)
    monkeypatch.setattr(digests_job, "USER_BATCH", 2)
    lock = threading.Lock()
    storing = [0]
    read_while_storing: list[int] = []  # per signals read: stores in progress
    signals, store_batch = app.store.people.signals, digests_job._store_batch

    def read(ids: Any, **kwargs: Any) -> Any:
        with lock:
            read_while_storing.append(storing[0])
        return signals(ids, **kwargs)

    def store(*args: Any, **kwargs: Any) -> Any:
        with lock:
            storing[0] += 1
        try:
            time.sleep(0.2)
            return store_batch(*args, **kwargs)
        finally:
            with lock:
                storing[0] -= 1

    monkeypatch.setattr(app.store.people, "signals", read)
    monkeypatch.setattr(digests_job, "_store_batch", store)
    report = jobs.make_digests(app, NOW, force=True)
    assert report.created == 7 and report.failed_users == []
    assert read_while_storing == [0, 0, 0, 0]  # four batches, each read once, none meanwhile


def test_ranking_runs_blas_on_one_thread_and_gives_the_others_back(
    app_factory: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between its small products, OpenBLAS's other threads wait spinning on a core that the
    writer thread and the delivery workers need: the job ranks with one, and the process's
    own setting is back afterwards."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from recommender import Recommender

    def blas_threads() -> set[int]:
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}

    if not blas_threads():
        pytest.skip("threadpoolctl finds no BLAS it can limit here (not OpenBLAS / MKL / BLIS)")
    app = app_factory()
    _world(app, 3)
    seen: list[set[int]] = []
    rank = Recommender.rank

    def ranking(self: Recommender, *args: Any, **kwargs: Any) -> Any:
        seen.append(blas_threads())
        return rank(self, *args, **kwargs)

    monkeypatch.setattr(Recommender, "rank", ranking)
    with threadpool_limits(limits=2, user_api="blas"):
        report = jobs.make_digests(app, NOW, force=True)
        assert blas_threads() == {2}
    assert report.created == 3 and seen == [{1}]


@BOTH_BACKENDS
def test_a_batch_that_cannot_be_read_or_ranked_waits_and_the_others_are_made(
    app_factory: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One batch's failure (its signals unreadable, or its ranking) is reported with its
    subscribers' names; the other batches are made, and the next run makes the missing ones."""
    app = app_factory()
    _world(app, 6)
    monkeypatch.setattr(digests_job, "USER_BATCH", 2)
    signals, rank = app.store.people.signals, digests_job._rank
    u = {user.name: user.id for user, _ in app.store.people.subscribers()}

    def unreadable(ids: Any, **kwargs: Any) -> Any:
        if u["u0"] in ids:
            raise OSError("disk I/O error")
        return signals(ids, **kwargs)

    def unrankable(day: Any, users: Any, signals: Any) -> Any:
        if any(user.name == "u5" for user in users):
            raise ValueError("bad model")
        return rank(day, users, signals)

    monkeypatch.setattr(app.store.people, "signals", unreadable)
    monkeypatch.setattr(digests_job, "_rank", unrankable)
    report = jobs.make_digests(app, NOW, force=True)
    assert report.created == 2 and report.users == 6
    assert report.failed_users == [
        "u0: OSError: disk I/O error",
        "u1: OSError: disk I/O error",
        "u4: ValueError: bad model",
        "u5: ValueError: bad model",
    ]
    monkeypatch.undo()
    again = jobs.make_digests(app, NOW, force=True)
    assert again.created == 4 and again.already == 2 and again.failed_users == []


def test_a_failure_to_store_stops_the_job_with_the_error(
    app_factory: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer thread's error reaches the caller (the scheduler logs a failed run); nothing
    is counted as made."""
    app = app_factory()
    _world(app, 3)
    monkeypatch.setattr(digests_job, "USER_BATCH", 2)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk full")

    monkeypatch.setattr(app.store.digests, "create_many", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        jobs.make_digests(app, NOW, force=True)


def test_an_in_memory_database_stores_in_this_thread(tmp_path: Any) -> None:
    """SQLite in memory is one connection per thread: a writer thread would write into another,
    empty, database (and fail: no tables). Its batches are stored at once."""
    from daemon.app import make_app
    from daemon.db.engine import upgrade
    from daemon.settings import Settings

    settings = Settings(
        database={"url": "sqlite://"},
        server={"secret_key": "k" * 16, "secret_key_file": f"{tmp_path}/key"},
    )
    app = make_app(settings, clock=lambda: NOW)
    try:
        upgrade(app.store.engine)
        _world(app, 3)
        assert isinstance(digests_job._writer(app), digests_job._AtOnce)
        assert jobs.make_digests(app, NOW, force=True).created == 3
        assert app.store.digests.counts().get(DigestState.PENDING) == 3
    finally:
        app.close()


@BOTH_BACKENDS
def test_the_first_batch_stored_refreshes_the_statistics_of_the_digests(
    app_factory: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a new database has no statistics of its digests until autovacuum gets to
    them, and plans the delivery's reads for the whole table: the job analyzes them after the
    first batch stored, once a run (SQLite: nothing to do)."""
    import sqlalchemy as sa

    app = app_factory()
    _world(app, 5)
    monkeypatch.setattr(digests_job, "USER_BATCH", 2)
    calls: list[int] = []
    analyze = app.store.digests.analyze

    def counted() -> None:
        calls.append(app.store.digests.counts().get(DigestState.PENDING, 0))
        analyze()

    monkeypatch.setattr(app.store.digests, "analyze", counted)
    rank = digests_job._rank
    failed = [False]

    def first_fails(day: Any, users: Any, signals: Any) -> Any:
        if not failed[0]:
            failed[0] = True
            raise ValueError("bad model")
        return rank(day, users, signals)

    monkeypatch.setattr(digests_job, "_rank", first_fails)
    assert jobs.make_digests(app, NOW, force=True).created == 3
    assert calls == [2]  # once, after the first batch stored (not the one that failed)
    if app.store.engine.dialect.name == "postgresql":
        with app.store.engine.connect() as conn:
            analyzed = conn.execute(
                sa.text(
                    "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL "
                    "AND relname IN ('digest', 'digestitem') ORDER BY relname"
                )
            ).scalars()
            assert list(analyzed) == ["digest", "digestitem"]


def test_a_planned_digest_is_shown_as_its_digest_shows_it() -> None:
    """`digest --dry-run` and the demo printed a filler's raw reason with a score of 0.00 and
    titles with their LaTeX ("$\\omega$Test"), where the digest says "Newest" or "Popular
    this week", shows no score, and reads "ωTest"."""
    from daemon.db.models import ChannelKind as Kind
    from daemon.db.rows import PaperRow
    from daemon.jobs.digests import PlannedDigest
    from recommender.types import Recommendation

    def paper(title: str, upvotes: int | None) -> PaperRow:
        return PaperRow(1, "k", title, "", (), "", None, NOW, upvotes)

    def rec(i: str, score: float, kind: Any, reason: str) -> Recommendation:
        return Recommendation(i, score, kind, reason, None, ())

    picks = (
        (paper("$\\omega$Test", None), rec("1", 0.6312, "similar", "Close to “$\\alpha$”")),
        (paper("Voted", 12), rec("2", 0.0, "trending", "most upvoted")),
        (paper("Unvoted", None), rec("3", 0.0, "trending", "newest")),
    )
    daily = PlannedDigest("ada", Kind.EMAIL, date(2026, 11, 28), picks, None)
    assert daily.shown() == [
        ("ωTest", "0.63", "Close to “α”"),
        ("Voted", "—", "Popular today"),
        ("Unvoted", "—", "Newest"),
    ]
    weekly = PlannedDigest("ada", Kind.EMAIL, date(2026, 11, 28), picks, None, weekly=True)
    assert weekly.shown()[1] == ("Voted", "—", "Popular this week")


@BOTH_BACKENDS
def test_a_model_stored_by_the_version_before_is_refitted_once(
    app_factory: Callable[..., App],
    make_settings: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A state of FORMAT_VERSION 6 (author tokens of a surname's last word: "Le Cun" was "cun",
    PubMed's "Smith J" "j") is refused by `loads`: the first run after the upgrade refits and
    stores a state of this version, which the next process loads without fitting again."""
    app = app_factory(make_settings(recommender={"refit_growth": 100.0}))
    _world(app, 1)
    state = pickle.loads(jobs.load_recommender(app, NOW).dumps())
    assert state["version"] == FORMAT_VERSION == 7
    app.store.models.save(corpus_size(app), pickle.dumps({**state, "version": 6}), NOW)
    app.model_cache = None  # a process started after the upgrade
    fits: list[int] = []
    fit = Recommender.fit

    def counted_fit(self: Recommender, *args: Any) -> None:
        fits.append(1)
        fit(self, *args)

    monkeypatch.setattr(Recommender, "fit", counted_fit)
    refitted = jobs.load_recommender(app, NOW)
    assert len(fits) == 1
    saved = app.store.models.load()
    assert saved is not None and pickle.loads(saved[1])["version"] == 7
    app.model_cache = None  # and the next process
    assert jobs.load_recommender(app, NOW).config == refitted.config
    assert len(fits) == 1  # loaded, not fitted again

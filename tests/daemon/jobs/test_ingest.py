"""The ingest job when the database fails under it: a database error is the database's, not the
feed's; the feeds it left are fetched again by the next run, as if never fetched."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from daemon import jobs
from daemon.app import App
from daemon.db import Store, make_engine
from daemon.db import engine as engines
from tests.daemon.conftest import (
    FEEDS,
    POSTGRES_ONLY,
    SettingsFactory,
    pool_exhausted,
    terminate_connections,
)
from tests.servers import HttpServer, Route, http_server, tcp_proxy

NAMES = ("a", "b", "c")  # fetched in this order (by name)


def _rss(name: str) -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        f"<item><title>Paper of {name}</title><link>https://x.example/{name}</link>"
        "<pubDate>Thu, 26 Nov 2026 10:00:00 GMT</pubDate></item></channel></rss>"
    ).encode()


def _feeds(server: HttpServer) -> list[dict[str, str]]:
    for name in NAMES:
        server.routes[f"/{name}.xml"] = Route(
            body=_rss(name), etag=f'"{name}-1"', content_type="application/rss+xml"
        )
    return [{"name": n, "url": server.url_for(f"/{n}.xml")} for n in NAMES]


class _WriteLock:
    """Another process's write lock on the SQLite file (a backup, a `sqlite3` shell)."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.held = False

    def take(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        self.held = True

    def release(self) -> None:
        if self.held:
            self._conn.execute("ROLLBACK")
            self.held = False

    def close(self) -> None:
        self._conn.close()


@contextmanager
def _locking(app: App) -> Iterator[_WriteLock]:
    lock = _WriteLock(str(app.store.engine.url.database))
    try:
        yield lock
    finally:
        lock.release()
        lock.close()


@pytest.fixture
def quick_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A write waits 50 ms for another's lock, not 30 s (read when a connection is made)."""
    monkeypatch.setattr(engines, "SQLITE_BUSY_TIMEOUT_MS", 50)


def _untouched(store: Store, name: str) -> None:
    feed = store.feeds.get(name)
    assert feed.last_fetched_at is None and feed.last_ok_at is None, "not recorded as fetched"
    assert feed.last_error is None and feed.consecutive_errors == 0, "not the feed's failure"
    assert feed.etag is None and feed.validators_url is None, "validators of nothing stored"


@pytest.mark.usefixtures("quick_busy")
@pytest.mark.parametrize("released_at", ["/b.xml", None], ids=["one-error", "still-locked"])
def test_a_database_error_storing_a_feed_is_the_databases_not_the_feeds(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    caplog: pytest.LogCaptureFixture,
    released_at: str | None,
) -> None:
    # a database error while a feed's papers were stored was recorded as the feed's failure
    # ("feed a failed: OperationalError: database is locked"): the admin went to mend the feed
    # (ingest QA). One error, the database answering: the run goes on with the other feeds;
    # a second one: the run stops, the rest left for the next run
    with http_server() as server:
        app = app_factory(make_settings(feeds=_feeds(server)))
        now = app.clock()
        with _locking(app) as lock:

            def hold_during_a(path: str) -> None:  # between a's fetch and its store
                if path == "/a.xml" and not server.requests:
                    lock.take()
                elif path == released_at:
                    lock.release()

            server.on_request = hold_during_a
            with caplog.at_level(logging.INFO, logger="paperwire.jobs"):
                if released_at:
                    report = jobs.ingest(app, now)
                else:
                    with pytest.raises(sa.exc.OperationalError, match="locked"):
                        jobs.ingest(app, now)
        _untouched(app.store, "a")
        said = [(r.levelname, r.getMessage()) for r in caplog.records]
        assert not [s for s in said if "feed failed" in s[1]], said
        if released_at:
            assert (report.feeds_ok, report.feeds_failed, report.feeds_left) == (2, 0, 1)
            assert report.papers_new == 2 and report.errors == []
            assert len(report.database_errors) == 1 and "a:" in report.database_errors[0]
            assert [r.path for r in server.requests] == ["/a.xml", "/b.xml", "/c.xml"]
            (line,) = [s for s in said if "database" in s[1]]
            assert line[0] == "WARNING"
        else:  # b failed the same way: c is not fetched
            assert [r.path for r in server.requests] == ["/a.xml", "/b.xml"]
            _untouched(app.store, "b")
            _untouched(app.store, "c")
            assert [s for s in said if "database" in s[1]][-1][0] == "ERROR"
        # the next run fetches a again as a feed never fetched: no validators, its paper stored
        server.requests.clear()
        server.on_request = None
        again = jobs.ingest(app, now)
    assert again.feeds_failed == 0 and again.feeds_left == 0
    (first,) = server.seen("/a.xml")
    assert "if-none-match" not in first.headers
    assert app.store.papers.find("guid:https://x.example/a") is not None
    assert app.store.feeds.get("a").etag == '"a-1"'


@pytest.mark.parametrize("fault", ["pool", "misused"])
def test_the_pool_out_of_connections_is_the_databases_and_a_misused_driver_the_feeds(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    # one answer with the delivery and the pages (`database_trouble`): the pool with no
    # connection to give is the database's (the feed left for the next run); an InterfaceError
    # on a connection that works (psycopg's "the cursor is closed") is a bug, the feed's
    # failure to be seen, where the ingest counted every InterfaceError the database's (ops QA)
    with http_server() as server:
        app = app_factory(make_settings(feeds=_feeds(server)))
        upsert = app.store.papers.upsert

        def trouble_on_a(papers: list[object], feed_id: int, now: datetime) -> tuple[int, int]:
            if feed_id != app.store.feeds.get("a").id:
                return upsert(papers, feed_id, now)  # type: ignore[arg-type]
            if fault == "misused":
                raise sa.exc.InterfaceError("INSERT", {}, RuntimeError("the cursor is closed"))
            with pool_exhausted(app.store.engine):
                return upsert(papers, feed_id, now)  # type: ignore[arg-type]

        monkeypatch.setattr(app.store.papers, "upsert", trouble_on_a)
        report = jobs.ingest(app, app.clock())
    if fault == "pool":
        assert (report.feeds_ok, report.feeds_failed, report.feeds_left) == (2, 0, 1)
        _untouched(app.store, "a")
    else:
        assert (report.feeds_ok, report.feeds_failed, report.feeds_left) == (2, 1, 0)
        assert "the cursor is closed" in (app.store.feeds.get("a").last_error or "")


@POSTGRES_ONLY
@pytest.mark.parametrize("ended_at", [("/a.xml",), ("/a.xml", "/b.xml")],
                         ids=["one-error", "again"])  # fmt: skip
def test_a_connection_postgresql_ended_while_a_feed_was_stored_leaves_that_feed_only(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    ended_at: tuple[str, ...],
) -> None:
    # the "go on after one database error" path of the test above, tested on SQLite only (ops
    # QA): here PostgreSQL ends the daemon's connections (a restart, a failover:
    # pg_terminate_backend) between a feed's fetch and its store. One error, the database
    # answering a new connection: the run goes on; a second one: it stops, the rest left
    monkeypatch.setattr(engines, "PING_AFTER_IDLE", float("inf"))  # a pooled connection is
    # not checked before use, however long the fetch took: the store meets the ended one
    with http_server() as server:
        app = app_factory(make_settings(feeds=_feeds(server)))
        now = app.clock()

        def end_connections(path: str) -> None:  # between the feed's fetch and its store
            if path in ended_at:
                assert terminate_connections(app.store.engine) >= 1

        server.on_request = end_connections
        with caplog.at_level(logging.INFO, logger="paperwire.jobs"):
            if len(ended_at) == 1:
                report = jobs.ingest(app, now)
            else:
                with pytest.raises(sa.exc.OperationalError):
                    jobs.ingest(app, now)
        _untouched(app.store, "a")
        said = [(r.levelname, r.getMessage()) for r in caplog.records]
        assert not [s for s in said if "feed failed" in s[1]], said
        database = [s for s in said if "database" in s[1]]
        if len(ended_at) == 1:
            assert (report.feeds_ok, report.feeds_failed, report.feeds_left) == (2, 0, 1)
            assert report.papers_new == 2 and len(report.database_errors) == 1
            assert [r.path for r in server.requests] == ["/a.xml", "/b.xml", "/c.xml"]
            assert [s[0] for s in database] == ["WARNING"]
        else:  # b failed the same way: c is not fetched
            assert [r.path for r in server.requests] == ["/a.xml", "/b.xml"]
            _untouched(app.store, "b")
            _untouched(app.store, "c")
            assert [s[0] for s in database] == ["WARNING", "ERROR"]
            assert database[-1][1].startswith("database error again: ingest stopped")
        # the next run fetches a again as a feed never fetched: its paper stored
        server.requests.clear()
        server.on_request = None
        again = jobs.ingest(app, now)
    assert again.feeds_failed == 0 and again.feeds_left == 0
    (first,) = server.seen("/a.xml")
    assert "if-none-match" not in first.headers
    assert app.store.papers.find("guid:https://x.example/a") is not None
    assert app.store.feeds.get("a").etag == '"a-1"'


@POSTGRES_ONLY
def test_a_database_gone_stops_the_ingest_and_leaves_the_feeds_for_the_next_run(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    db_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # PostgreSQL gone (a host down, a network cut) while a feed was stored: each feed was then
    # fetched and failed in turn, each said to be broken, or the run ended on a traceback that
    # did not say what was left (ingest QA)
    real = sa.engine.make_url(db_url)
    with http_server() as server, tcp_proxy(real.host or "", real.port or 5432) as proxy:
        proxied = real.set(host="127.0.0.1", port=proxy.port)
        settings = make_settings(
            database={"url": proxied.render_as_string(hide_password=False)},
            feeds=_feeds(server),
        )
        app = app_factory(settings)
        server.on_request = lambda path: proxy.cut() if path == "/a.xml" else None
        with (
            caplog.at_level(logging.INFO, logger="paperwire.jobs"),
            pytest.raises(sa.exc.OperationalError),
        ):
            jobs.ingest(app, app.clock())
        assert [r.path for r in server.requests] == ["/a.xml"], "no feed fetched for nothing"
    said = [(r.levelname, r.getMessage(), getattr(r, "feeds_left", None)) for r in caplog.records]
    assert [s for s in said if "database" in s[1]] == [
        ("ERROR", "database out of reach: ingest stopped, the next run fetches the feeds left",
         ["a", "b", "c"]),
    ]  # fmt: skip
    store = Store(make_engine(db_url))
    try:
        for name in NAMES:
            _untouched(store, name)
    finally:
        store.engine.dispose()


@pytest.mark.usefixtures("quick_busy")
def test_a_missed_day_not_stored_for_a_database_error_is_read_again(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
) -> None:
    # a {date} feed's missed day whose papers could not be stored (the database locked) was a
    # warning, then today's list was stored and the feed counted fetched: that day was never
    # read again (ingest QA). A fetch error keeps its warning (test_pipeline's 404 of a new feed)
    day = (FEEDS / "hf" / "daily_papers_2026-08-20.json").read_bytes()
    with http_server() as hf:
        hf.routes["/hf?date=2026-08-20"] = Route(body=day, content_type="application/json")
        hf.routes["/hf?date=2026-08-21"] = Route(body=b"[]", content_type="application/json")
        app = app_factory(make_settings(feeds=[{"name": "hf", "url": hf.url + "/hf?date={date}"}]))
        first = datetime(2026, 8, 21, 9, tzinfo=UTC)  # a new feed: yesterday's list too
        with _locking(app) as lock:

            def hold_during_the_missed_day(path: str) -> None:
                if path.endswith("08-20") and not hf.requests:
                    lock.take()
                elif path.endswith("08-21"):
                    lock.release()  # today's list would be stored

            hf.on_request = hold_during_the_missed_day
            report = jobs.ingest(app, first)
        hf.on_request = None
        assert report.papers_new == 0 and report.feeds_failed == 0 and report.feeds_left == 1
        hf.requests.clear()
        later = jobs.ingest(app, first.replace(hour=13))
    assert [r.path for r in hf.requests] == ["/hf?date=2026-08-20", "/hf?date=2026-08-21"]
    assert later.papers_new > 0 and later.feeds_ok == 1
    assert app.store.feeds.get("hf").last_ok_at is not None


@pytest.mark.usefixtures("quick_busy")
@pytest.mark.parametrize("case", ["one-error", "stopped", "stopped-before-the-digests"])
def test_the_feeds_left_for_a_database_error_are_in_the_metrics(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    # paperwire_feeds_fetched_total counted ok, unchanged and failed: the feeds left for a
    # database error were in none, and a run the database stopped counted nothing at all, not
    # even the feeds it had stored: an operator watching the metrics saw nothing (ops QA)
    from prometheus_client.parser import text_string_to_metric_families

    from daemon import scheduler
    from daemon.metrics import Metrics

    with http_server() as server:
        app = app_factory(make_settings(feeds=_feeds(server)))
        metrics = Metrics(app.store)
        with _locking(app) as lock:
            taken_at, released_at = ("/a.xml", "/b.xml") if case == "one-error" else ("/b.xml", "")

            def hold(path: str) -> None:  # between a feed's fetch and its store
                if path == taken_at:
                    lock.take()
                elif path == released_at:
                    lock.release()

            server.on_request = hold
            if case == "stopped-before-the-digests":  # the digest run fetches the feeds first
                monkeypatch.setattr(scheduler, "_ingest_owed", lambda app, now: True)
                ingest = jobs.ingest

                def ingest_then_unlocked(app: App, now: datetime) -> jobs.IngestReport:
                    try:
                        return ingest(app, now)
                    finally:
                        lock.release()  # the digests are made all the same

                monkeypatch.setattr(jobs, "ingest", ingest_then_unlocked)
                job = "digest"
                scheduler._guarded(job, scheduler._digest_job, app, metrics)()
            else:
                job = "ingest"
                scheduler._guarded(job, jobs.ingest, app, metrics)()
    samples = {
        (s.name, s.labels.get("outcome") or s.labels.get("job")): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }
    fetched = {
        outcome: samples[("paperwire_feeds_fetched_total", outcome)]
        for outcome in ("ok", "unchanged", "failed", "database_error")
    }
    failures = samples[("paperwire_job_failures_total", job)]
    if case == "one-error":  # a left, b and c stored
        assert (fetched, failures) == ({"ok": 2, "unchanged": 0, "failed": 0,
                                        "database_error": 1}, 0)  # fmt: skip
    else:  # a stored; b and c failed to store: left, the ingest stopped
        assert fetched == {"ok": 1, "unchanged": 0, "failed": 0, "database_error": 2}
        assert failures == (1 if job == "ingest" else 0)  # the digests were made all the same

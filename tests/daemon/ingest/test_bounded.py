"""Each feed is parsed in a worker process under a time and memory budget; a feed over budget
is recorded as failed with the reason and the other feeds go on."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest

from daemon import jobs
from daemon.app import App
from daemon.errors import ParseError
from daemon.ingest.bounded import ParseBudget, parse_bounded
from daemon.ingest.parse import parse_feed
from tests.daemon.conftest import FEEDS
from tests.daemon.ingest.helpers import billion_laughs
from tests.servers import Reply, Route, http_server

API = FEEDS / "arxiv-api" / "2026_recorded_q_testing_s0_m100_cfe7536492ca.status200.xml"
HF = FEEDS / "hf" / "daily_papers_2026-08-20.json"
URL = "https://feeds.test/big"


def big_api_feed(copies: int) -> bytes:
    """The recorded 100-entry arXiv API response with its entries repeated `copies` times."""
    text = API.read_text(encoding="utf-8")
    head, rest = text.split("<entry>", 1)
    entries = "<entry>" + rest.rsplit("</entry>", 1)[0] + "</entry>"
    return (head + entries * copies + "</feed>").encode()


# 6,000 entries, 14 MB (under `ingest.max_bytes`): 8.7 s of parsing on the 2-core machine of
# 2026-11-29, 29 times the 0.3 s budget the tests give it. With 1,000 entries (1.6 s) a machine
# five times as fast would have parsed it within the budget, and the tests would fail.
SLOW_COPIES = 60
KILLED = -signal.SIGKILL  # a worker's exit code when it was stopped; 0 when it ran to its end


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every worker process the bounded runs start, to read how each ended: a worker stopped
    while parsing was killed (one that answered exits by itself, or is killed if it has not
    exited yet). No clock is read, so no pass depends on the machine's speed."""
    import daemon.ingest.bounded as bounded

    started: list[Any] = []
    real = bounded._context

    class Recording:
        def __init__(self, ctx: Any) -> None:
            self._ctx = ctx

        def __getattr__(self, name: str) -> Any:
            return getattr(self._ctx, name)

        def Process(self, *args: Any, **kwargs: Any) -> Any:  # multiprocessing's name
            worker = self._ctx.Process(*args, **kwargs)
            started.append(worker)
            return worker

    monkeypatch.setattr(bounded, "_context", lambda: Recording(real()))
    return started


def test_a_feed_parsed_in_the_worker_is_the_feed_parsed_in_process() -> None:
    content = API.read_bytes()
    bounded = parse_bounded(content, url=URL, content_type=None, budget=ParseBudget())
    assert bounded == parse_feed(content, url=URL)


def test_parse_errors_come_back_with_their_message() -> None:
    with pytest.raises(ParseError) as info:
        parse_bounded(billion_laughs(100_000), url=URL, content_type=None, budget=ParseBudget())
    assert URL in str(info.value) and "billion laughs" in str(info.value)


def test_a_parse_over_the_time_budget_is_stopped(workers: list[Any]) -> None:
    content = big_api_feed(SLOW_COPIES)
    with pytest.raises(ParseError) as info:
        parse_bounded(content, url=URL, content_type=None, budget=ParseBudget(seconds=0.3))
    assert [w.exitcode for w in workers] == [KILLED]  # stopped, not waited for
    assert URL in str(info.value)
    assert "longer than 0.3 s" in str(info.value)
    assert "ingest.parse_timeout_seconds" in str(info.value)


def test_a_parse_is_left_as_soon_as_the_daemon_stops(workers: list[Any]) -> None:
    """A SIGTERM to the daemon alone (`docker stop`, `kill PID`) never reached the worker: the
    stop waited for the parse, up to its budget of two minutes, and Docker then killed it."""
    import multiprocessing
    import threading

    from daemon.ingest.fetch import FetchStopped

    stopping = threading.Event()
    threading.Timer(0.2, stopping.set).start()  # SIGTERM while the parse runs
    with pytest.raises(FetchStopped, match="not parsed, paperwire is stopping"):
        parse_bounded(big_api_feed(SLOW_COPIES), url=URL, content_type=None,
                      budget=ParseBudget(seconds=600), stopping=stopping)  # fmt: skip
    assert [w.exitcode for w in workers] == [KILLED]  # left, not waited for (600 s budget)
    assert [p for p in multiprocessing.active_children() if p.name == "paperwire-parse"] == []


def test_a_parse_over_the_memory_budget_is_stopped() -> None:
    content = big_api_feed(25)  # 5.8 MB: needs more than 32 MB (less than 64 MB) to parse
    with pytest.raises(ParseError) as info:
        parse_bounded(content, url=URL, content_type=None, budget=ParseBudget(memory_mb=32))
    assert URL in str(info.value)
    assert "memory budget of 32 MB" in str(info.value)
    assert "ingest.parse_memory_mb" in str(info.value)


def test_the_ingest_job_records_hostile_and_oversized_feeds_and_goes_on(
    app_factory: Callable[..., App],
    make_settings: Callable[..., Any],
    clock: Any,
    workers: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the configured 0.3 s budget is the oversized feed's; the others are given 60 s: within
    # 0.3 s a worker on a loaded machine had to start and parse the ordinary feed, and answer
    # with the billion laughs (a worker 0.4 s slow to start failed all three)
    import sys

    def budget_of_big_only(content: bytes, *, url: str, budget: ParseBudget, **kw: Any) -> Any:
        if not url.endswith("/big.xml"):
            budget = ParseBudget(seconds=60, memory_mb=budget.memory_mb)
        return parse_bounded(content, url=url, budget=budget, **kw)

    # the module, not `jobs.ingest`, the job of that name
    monkeypatch.setattr(sys.modules["daemon.jobs.ingest"], "parse_bounded", budget_of_big_only)
    with http_server(Reply(404, "not found")) as server:
        server.routes["/laughs.xml"] = Route(
            body=billion_laughs(500_000), content_type="application/rss+xml"
        )
        server.routes["/big.xml"] = Route(
            body=big_api_feed(SLOW_COPIES), content_type="application/atom+xml"
        )
        server.routes["/hf.json"] = Route(body=HF.read_bytes(), content_type="application/json")
        settings = make_settings(
            ingest={"parse_timeout_seconds": 0.3},
            feeds=[
                {"name": "laughs", "url": server.url_for("/laughs.xml")},
                {"name": "big", "url": server.url_for("/big.xml")},
                {"name": "hf", "url": server.url_for("/hf.json")},
            ],
        )
        app = app_factory(settings)
        report = jobs.ingest(app, clock())
    # the oversized feed's parse was stopped (feeds go by name: big, hf, laughs); a worker
    # that answered may be killed too, when it had not exited yet
    assert len(workers) == 3 and workers[0].exitcode == KILLED
    assert (report.feeds_ok, report.feeds_failed) == (1, 2)
    assert report.papers_new == 15
    errors = {f.name: f.last_error for f in app.store.feeds.all()}
    assert errors["hf"] is None
    assert errors["laughs"] is not None and "billion laughs" in errors["laughs"]
    assert errors["big"] is not None and "longer than 0.3 s" in errors["big"]
    assert any(e.startswith("big: ") for e in report.errors)


def test_a_test_fetch_is_parsed_under_the_same_budget(
    app_factory: Callable[..., App], make_settings: Callable[..., Any], clock: Any
) -> None:
    # `feeds test`, `feeds add` and the console's Test and Add parsed the feed in the calling
    # process with no budget: in the console, a stranger's feed ran feedparser inside the
    # daemon, its memory and time unbounded
    from daemon.jobs.ingest import try_feed

    with http_server(Reply(404, "not found")) as server:
        server.routes["/big.xml"] = Route(
            body=big_api_feed(25), content_type="application/atom+xml"
        )  # 5.8 MB: more than 32 MB to parse
        app = app_factory(make_settings(ingest={"parse_memory_mb": 32}))
        trial = try_feed(app, server.url_for("/big.xml"), clock())
    assert trial.error is not None and "memory budget of 32 MB" in trial.error
    assert trial.papers == []

"""Parse a feed under a time and memory budget: in a worker process, killed when it runs over.

`parse_feed` refuses what is known to be hostile (entity declarations, deep nesting, non-feeds)
before any parser runs, but feedparser, nh3 and chardet still do unbounded work on whatever
gets through. The ingest job therefore parses each feed in a child process (forked from a
`forkserver` that has the parsing modules loaded, so a parse costs a fork, not an import) whose
address space is limited with ``RLIMIT_AS`` to what it had plus the budget, and which is killed
when it takes longer than the time budget. A feed over budget is a `ParseError` that says which
budget and which setting raises it; the daemon and the other feeds are unharmed.
"""

from __future__ import annotations

import multiprocessing
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from daemon.errors import ParseError
from daemon.ingest.fetch import STOP_CHECK_SECONDS, FetchStopped
from daemon.ingest.parse import ParsedFeed, parse_feed


@dataclass(frozen=True)
class ParseBudget:
    seconds: float = 120.0  # a 20 MB arXiv API response (8,700 entries) parses in ~20 s
    memory_mb: int = 512  # on top of the worker's own size; that response needs ~120 MB


# Imported once in the forkserver: the main script (else every worker would run it again) and
# the parsers.
_PRELOAD = ["__main__", "daemon.ingest.parse"]


def _context() -> Any:
    """The forkserver context (spawn where there is none): never a plain fork of a process
    with threads (the scheduler, the HTTP pool)."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def parse_bounded(
    content: bytes,
    *,
    url: str,
    content_type: str | None,
    budget: ParseBudget,
    stopping: threading.Event | None = None,
) -> ParsedFeed:
    """`parse_feed` in a worker process; `ParseError` when it fails or runs over `budget`,
    `FetchStopped` (the worker killed) as soon as `stopping` is set: a SIGTERM to the daemon
    alone (`docker stop`, `kill PID`) reaches no worker, which may parse for minutes."""
    answer = run_bounded(
        _work,
        (content, url, content_type, budget.memory_mb),
        seconds=budget.seconds,
        name="paperwire-parse",
        stopping=stopping,
    )
    if answer is None:
        if stopping is not None and stopping.is_set():
            raise FetchStopped(f"{url or '<no url>'}: not parsed, paperwire is stopping")
        raise ParseError(
            f"{url or '<no url>'}: parsing took longer than {budget.seconds:g} s and was "
            "stopped; the feed is hostile or far larger than a feed should be "
            "(ingest.parse_timeout_seconds raises the limit)"
        )
    kind, value = answer
    if kind == "ok":
        assert isinstance(value, ParsedFeed)
        return value
    if kind == "died":
        raise ParseError(_died(url, value if isinstance(value, int) else None, budget))
    if kind == "memory":
        raise ParseError(_over_memory(url, budget))
    raise ParseError(str(value))


def run_bounded(
    target: Callable[..., None],
    args: tuple[Any, ...],
    *,
    seconds: float,
    name: str,
    stopping: threading.Event | None = None,
) -> tuple[str, object] | None:
    """`target(conn, *args)` in a worker process (the feeds' parses, the subscribers' library
    files), killed when it outlasts `seconds` or `stopping` is set: None then, else what it
    sent on `conn` (kind, value), or ("died", its exit code) when it ended without a word."""
    ctx = _context()
    reader, writer = ctx.Pipe(duplex=False)
    worker = ctx.Process(target=target, args=(writer, *args), name=name, daemon=True)
    worker.start()
    writer.close()
    try:
        if not _answered(reader, seconds, stopping):
            return None
        try:
            answer: tuple[str, object] = reader.recv()
        except EOFError:
            worker.join(5)
            return "died", worker.exitcode
        return answer
    finally:
        if worker.is_alive():
            worker.kill()
        worker.join()
        reader.close()


def limit_memory(memory_mb: int) -> None:
    """In a worker: its address space limited to what it has plus `memory_mb`."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_size() + memory_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def send_answer(conn: Connection, result: tuple[str, object]) -> None:
    """In a worker: its answer sent (("memory", None) when even that runs out), `conn` closed."""
    try:
        conn.send(result)
    except MemoryError:
        conn.send(("memory", None))
    finally:
        conn.close()


def _answered(reader: Connection, seconds: float, stopping: threading.Event | None) -> bool:
    """Whether the worker answered within `seconds`, looking at `stopping` meanwhile (False as
    soon as it is set)."""
    deadline = time.monotonic() + seconds
    while not reader.poll(max(0.0, min(STOP_CHECK_SECONDS, deadline - time.monotonic()))):
        if (stopping is not None and stopping.is_set()) or time.monotonic() >= deadline:
            return False
    return True


def _died(url: str, exitcode: int | None, budget: ParseBudget) -> str:
    return (
        f"{url or '<no url>'}: the parser stopped without an answer (exit code {exitcode}), "
        f"most likely over its memory budget of {budget.memory_mb} MB; the feed is hostile or "
        "far larger than a feed should be (ingest.parse_memory_mb raises the limit)"
    )


def _over_memory(url: str, budget: ParseBudget) -> str:
    return (
        f"{url or '<no url>'}: parsing needed more than its memory budget of "
        f"{budget.memory_mb} MB and was stopped; the feed is hostile or far larger than a feed "
        "should be (ingest.parse_memory_mb raises the limit)"
    )


def _vm_size() -> int:
    """This process's address space in bytes (Linux), 0 where unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _work(
    conn: Connection, content: bytes, url: str, content_type: str | None, memory_mb: int
) -> None:
    """The worker: limit the address space, parse, send ("ok" | "parse" | "memory", value)."""
    try:
        limit_memory(memory_mb)
        result: tuple[str, object] = ("ok", parse_feed(content, url=url, content_type=content_type))
    except ParseError as e:
        result = ("parse", str(e))
    except MemoryError:
        result = ("memory", None)
    except Exception as e:  # a bug in a parser: reported, never raised in the daemon
        result = ("parse", f"{url or '<no url>'}: the parser failed: {type(e).__name__}: {e}")
    del content
    send_answer(conn, result)

"""Read an uploaded library file under a time and memory budget: in a worker process, killed
when it runs over (the feeds' parse budget, `daemon.ingest.bounded`, `ingest.parse_*`).

Whoever holds a subscriber's link may upload a file. pyparsing (BibTeX) and pylatexenc (its
LaTeX) do work that grows faster than the file on some inputs: one BibTeX entry of 250,000
fields (1 MB) ran for more than five minutes, 0.8 MB of `$a` in a title for 26 s, all of it in
the daemon's process, holding the interpreter every page, job and delivery shares. In a
worker the daemon goes on, and the upload is refused with what to do.
"""

from __future__ import annotations

from multiprocessing.connection import Connection

from daemon.ingest.bounded import ParseBudget, limit_memory, run_bounded, send_answer
from daemon.library.read import Library, LibraryError, read_library


def read_library_bounded(
    data: bytes, *, name: str, fmt: str | None, budget: ParseBudget
) -> Library:
    """`read_library` in a worker process; `LibraryError` when the file cannot be read, or its
    reading runs over `budget`."""
    answer = run_bounded(
        _work, (data, name, fmt, budget.memory_mb), seconds=budget.seconds, name="paperwire-library"
    )
    if answer is None:
        raise LibraryError(
            f"{name}: reading it took longer than {budget.seconds:g} s and was stopped; "
            f"{_WHAT_TO_DO}"
        )
    kind, value = answer
    if kind == "ok":
        assert isinstance(value, Library)
        return value
    if kind in ("memory", "died"):  # died: killed over its address space, most likely
        raise LibraryError(
            f"{name}: reading it needed more than {budget.memory_mb} MB and was stopped; "
            f"{_WHAT_TO_DO}"
        )
    raise LibraryError(str(value))


_WHAT_TO_DO = (
    "export a part of your library (a collection), or ask the admin to run `paperwire import` "
    "with it"
)


def _work(conn: Connection, data: bytes, name: str, fmt: str | None, memory_mb: int) -> None:
    """The worker: limit the address space, read, send ("ok" | "error" | "memory", value)."""
    try:
        limit_memory(memory_mb)
        result: tuple[str, object] = ("ok", read_library(data, name=name, fmt=fmt))
    except LibraryError as e:
        result = ("error", str(e))
    except MemoryError:
        result = ("memory", None)
    except Exception as e:  # a bug in a reader, or a file it chokes on: said, never raised
        result = ("error", f"{name}: cannot be read ({type(e).__name__}: {e}); {_WHAT_TO_DO}")
    del data
    send_answer(conn, result)

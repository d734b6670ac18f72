"""`paperwire import` of a BibTeX library of a few hundred entries into a fresh SQLite database.

    .venv/bin/python -m bench.library [--entries 300] [--db URL]

The library is written from real CiteULike-a papers (titles and abstracts, with their LaTeX;
../shared/data/citeulike-a-dev, else the small sample in tests/data): a third of the entries
with an arXiv id, a third with a DOI, a third with neither. A quarter of the papers are stored
before the import, as if ingested, so they are matched (by arXiv id, DOI or title); the arXiv
ids that are not stored are asked from a local stand-in of the arXiv API that answers with a
recorded empty response (no network: those papers are then created from the file), with no
interval between requests (arXiv's 3 s apply for real: 3 s per 100 unknown ids).

Times the reading of the file, the first import (matching, fetching, storing, liking) and
the second one (reading and matching: it changes nothing), each with the daemon's own code,
and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "citeulike-a-dev" / "items.jsonl"
SMALL = ROOT / "tests" / "data" / "citeulike-small" / "items.jsonl"
RECORDED = ROOT / "tests" / "data" / "feeds" / "arxiv-api"
EMPTY_ANSWER = RECORDED / "2026_recorded_id_0000.0000_s0_m100_8b51d9633a68.status200.xml"
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SURNAMES = ("Smith", "Müller", "Nakamura", "García", "Okafor", "Ivanova", "Chen", "Dubois")


def _papers(n: int) -> list[dict[str, str]]:
    source = SHARED if SHARED.is_file() else SMALL
    items = []
    with source.open(encoding="utf-8") as fh:
        for line in fh:
            item = json.loads(line)
            if len(item.get("title", "")) >= 25:
                items.append(item)
            if len(items) >= n:
                break
    while len(items) < n:  # the small sample: the same papers again, told apart by a number
        base = items[len(items) % max(1, len(items))]
        items.append({**base, "title": f"{base['title']} (part {len(items)})"})
    return items


def _bibtex(items: list[dict[str, str]]) -> str:
    entries = []
    for i, item in enumerate(items):
        author = f"{SURNAMES[i % len(SURNAMES)]}, A. and {SURNAMES[(i + 3) % len(SURNAMES)]}, B."
        fields = [f"  title = {{{item['title']}}}", f"  author = {{{author}}}", "  year = {2012}"]
        if item.get("abstract"):
            fields.append(f"  abstract = {{{item['abstract']}}}")
        if i % 3 == 0:
            fields.append(f"  eprint = {{1{i % 10}{1 + i % 12:02d}.{i:05d}}}")
            fields.append("  archivePrefix = {arXiv}")
        elif i % 3 == 1:
            fields.append(f"  doi = {{10.1000/bench.{i}}}")
        entries.append(f"@article{{paper{i},\n" + ",\n".join(fields) + "\n}\n")
    return "\n".join(entries)


class _EmptyArxiv(BaseHTTPRequestHandler):
    body = EMPTY_ANSWER.read_bytes()
    requests = 0

    def do_GET(self) -> None:
        type(self).requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/atom+xml")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=300, help="entries in the library")
    parser.add_argument("--db", help="database URL (default: SQLite in a temporary folder)")
    args = parser.parse_args()

    from daemon.app import make_app
    from daemon.db.engine import upgrade
    from daemon.db.models import ChannelKind
    from daemon.ingest.parse import PaperIn
    from daemon.library.importer import import_library
    from daemon.library.read import read_library
    from daemon.settings import Settings

    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmptyArxiv)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database={"url": args.db or f"sqlite:///{tmp}/paperwire.db"},
            server={"secret_key": "bench-secret-key-0123"},
            ingest={
                "allow_private_addresses": True,
                "arxiv_min_interval_seconds": 0.0,
                "arxiv_api_url": f"http://127.0.0.1:{server.server_address[1]}/api/query",
            },
        )
        app = make_app(settings, clock=lambda: NOW)
        upgrade(app.store.engine)
        app.store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
        items = _papers(args.entries)
        bib = _bibtex(items).encode()
        library = read_library(bib, name="bench.bib")
        stored = [
            PaperIn(  # a journal's record (DOI) or an arXiv record (matched by its title)
                key=f"doi:10.1000/bench.{i}" if i % 3 == 1 else f"arxiv:2{i % 10}01.{i:05d}",
                title=library.entries[i].title,
                abstract="",
                authors=library.entries[i].authors,
                url=f"https://journal.test/{i}",
                published=NOW,
                doi=f"10.1000/bench.{i}" if i % 3 == 1 else None,
                arxiv_id=None if i % 3 == 1 else f"2{i % 10}01.{i:05d}",
            )
            for i in range(0, len(library.entries), 4)
            if i % 3 != 0
        ]
        app.store.papers.upsert(stored, None, NOW)

        t0 = time.perf_counter()
        library = read_library(bib, name="bench.bib")
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        first = import_library(app, "ada", library, NOW)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        second = import_library(app, "ada", read_library(bib, name="bench.bib"), NOW)
        t_second = time.perf_counter() - t0
        app.close()
    server.shutdown()

    asked = _EmptyArxiv.requests
    print(f"{len(library.entries)} BibTeX entries ({len(bib) / 1000:.0f} kB), {len(stored)} "
          f"papers stored before, {asked} request(s) to the arXiv stand-in\n")  # fmt: skip
    print("| step | seconds | result |")
    print("|---|---|---|")
    print(f"| read (bibtexparser, LaTeX → Unicode) | {t_read:.2f} | "
          f"{len(library.entries)} entries, {len(library.problems)} problems |")  # fmt: skip
    print(f"| first import (match, fetch, store, like) | {t_first:.2f} | "
          f"{len(first.matched)} matched, {len(first.fetched)} fetched, "
          f"{len(first.created)} created, {len(first.duplicates)} duplicates |")  # fmt: skip
    print(f"| second import (read, match: nothing to do) | {t_second:.2f} | "
          f"{len(second.already_liked)} already liked, {second.liked} new |")  # fmt: skip


if __name__ == "__main__":
    main()

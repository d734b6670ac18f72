"""Migration 0014: a DOI stored with the query of its doi.org link (ACS's "?af=r") loses it,
and a paper keyed by a guid that names a DOI (PLOS, Springer) gets it, so the next ingest, whose
parser reads them so, finds the papers it stored before."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from daemon.db import Store, make_engine
from daemon.db.engine import upgrade
from daemon.ingest.parse import parse_feed
from tests.daemon.conftest import BOTH_BACKENDS, EMPTY_DATABASE, FEEDS

JOURNALS = FEEDS / "journals"
AT = datetime(2026, 11, 28, tzinfo=UTC)


def _paper(conn: sa.Connection, key: str, doi: str | None, title: str, url: str = "") -> None:
    conn.execute(
        sa.text(
            "INSERT INTO paper (key, title, abstract, authors, url, doi, categories, "
            "first_seen_at, is_news) VALUES (:key, :title, '', :authors, :url, :doi, '[]', :at, "
            "true)"
        ),
        {"key": key, "doi": doi, "title": title, "url": url, "authors": '["A B"]', "at": AT},
    )


@BOTH_BACKENDS
@EMPTY_DATABASE
def test_journal_papers_stored_before_have_the_doi_the_parser_now_reads(
    db_url: str,
) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0013")
        with engine.begin() as conn:  # what the parser stored before: the query in DOI and key
            _paper(conn, "doi:10.1021/acs.jctc.6c01234?af=r", "10.1021/acs.jctc.6c01234?af=r", "a")
            # a twin already stored under the DOI: it keeps the key, the other gets the DOI
            _paper(conn, "doi:10.1021/twin?af=r", "10.1021/twin?af=r", "b")
            _paper(conn, "doi:10.1021/twin", "10.1021/twin", "c")
            # a "?" that is no URL query, and SICI's "#": part of the DOI
            _paper(conn, "doi:10.1000/what?", "10.1000/what?", "d")
            _paper(conn, "doi:10.1002/(sici)1;2-#", "10.1002/(sici)1;2-#", "e")
            _paper(conn, "guid:x", None, "f")
            # keyed by a guid that names the DOI; "Editorial" is too short to join by title
            _paper(conn, "guid:info:doi/10.1371/journal.pone.0312345", None, "g")
            springer = "https://link.springer.com/10.1007/s10994-026-06789-0"
            _paper(conn, f"guid:{springer}", None, "Editorial", springer)
        upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT title, key, doi FROM paper ORDER BY id"))
            assert [tuple(r) for r in rows] == [
                ("a", "doi:10.1021/acs.jctc.6c01234", "10.1021/acs.jctc.6c01234"),
                ("b", "doi:10.1021/twin?af=r", "10.1021/twin"),
                ("c", "doi:10.1021/twin", "10.1021/twin"),
                ("d", "doi:10.1000/what?", "10.1000/what?"),
                ("e", "doi:10.1002/(sici)1;2-#", "10.1002/(sici)1;2-#"),
                ("f", "guid:x", None),
                ("g", "doi:10.1371/journal.pone.0312345", "10.1371/journal.pone.0312345"),
                ("Editorial", "doi:10.1007/s10994-026-06789-0", "10.1007/s10994-026-06789-0"),
            ]
        # the feeds read again: the papers stored before, not second ones announced anew
        papers = [
            paper
            for name in ("acs_rss2", "plos_atom", "springer_rss2")
            for paper in parse_feed(
                (JOURNALS / f"{name}_constructed.xml").read_bytes(), url="https://j.test/"
            ).papers
        ]
        assert Store(engine).papers.upsert(papers, None, AT) == (0, 3)
    finally:
        engine.dispose()

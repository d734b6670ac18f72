"""Migration 0014: a DOI stored with the query of its doi.org link (ACS's "?af=r") loses it,
so the next ingest, whose parser drops the query, finds the paper it stored before."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa

from daemon.db import Store, make_engine
from daemon.db.engine import upgrade
from daemon.ingest.parse import parse_feed
from tests.daemon.conftest import BOTH_BACKENDS, EMPTY_DATABASE, FEEDS

ACS = FEEDS / "journals" / "acs_rss2_constructed.xml"
AT = datetime(2026, 11, 28, tzinfo=UTC)


def _paper(conn: sa.Connection, key: str, doi: str | None, title: str) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO paper (key, title, abstract, authors, url, doi, categories, "
            "first_seen_at, is_news) VALUES (:key, :title, '', :authors, '', :doi, '[]', :at, "
            "true)"
        ),
        {"key": key, "doi": doi, "title": title, "authors": json.dumps(["A B"]), "at": AT},
    )


@BOTH_BACKENDS
@EMPTY_DATABASE
def test_a_doi_stored_with_its_links_query_is_the_papers_doi_after_the_upgrade(
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
        upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT title, key, doi FROM paper ORDER BY title"))
            assert [tuple(r) for r in rows] == [
                ("a", "doi:10.1021/acs.jctc.6c01234", "10.1021/acs.jctc.6c01234"),
                ("b", "doi:10.1021/twin?af=r", "10.1021/twin"),
                ("c", "doi:10.1021/twin", "10.1021/twin"),
                ("d", "doi:10.1000/what?", "10.1000/what?"),
                ("e", "doi:10.1002/(sici)1;2-#", "10.1002/(sici)1;2-#"),
                ("f", "guid:x", None),
            ]
        # the ACS feed read again: the paper stored before, not a second one announced anew
        papers = parse_feed(ACS.read_bytes(), url="https://pubs.acs.org/feed").papers
        assert Store(engine).papers.upsert(papers, None, AT) == (0, 1)
    finally:
        engine.dispose()

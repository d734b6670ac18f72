"""Migration 0017 (feed.validators_url) on a database with feeds that have validators: a
feed's own address keeps its conditional GET, a `{date}` feed's validators (of some day) are
forgotten; it goes down again cleanly."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from daemon.db import make_engine
from daemon.db.engine import downgrade, upgrade
from tests.daemon.conftest import BOTH_BACKENDS, EMPTY_DATABASE

AT = datetime(2026, 11, 28, tzinfo=UTC)
PLAIN = "https://rss.arxiv.org/rss/cs.LG"
OF_THE_DAY = "https://huggingface.co/api/daily_papers?date={date}"


@BOTH_BACKENDS
@EMPTY_DATABASE
def test_validators_stored_before_are_their_feeds_own_or_forgotten(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0016")
        with engine.begin() as conn:
            for name, url, etag, modified in (
                ("plain", PLAIN, '"v1"', "Thu, 26 Nov 2026 10:00:00 GMT"),
                ("modified-only", PLAIN + "+stat.ML", None, "Thu, 26 Nov 2026 10:00:00 GMT"),
                ("none", PLAIN + "+math.OC", None, None),
                ("hf", OF_THE_DAY, '"2026-11-27"', "Fri, 27 Nov 2026 10:00:00 GMT"),
            ):
                conn.execute(
                    sa.text(
                        "INSERT INTO feed (name, url, enabled, declared, etag, last_modified, "
                        "consecutive_errors, papers_seen, last_new_papers, created_at) VALUES "
                        "(:name, :url, true, false, :etag, :modified, 0, 0, 0, :at)"
                    ),
                    {"name": name, "url": url, "etag": etag, "modified": modified, "at": AT},
                )
        upgrade(engine, "0017")
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT name, etag, last_modified, validators_url FROM feed ORDER BY id")
            )
            assert [tuple(r) for r in rows] == [
                ("plain", '"v1"', "Thu, 26 Nov 2026 10:00:00 GMT", PLAIN),
                ("modified-only", None, "Thu, 26 Nov 2026 10:00:00 GMT", PLAIN + "+stat.ML"),
                ("none", None, None, None),
                ("hf", None, None, None),
            ]
        downgrade(engine, "0016")
        columns = {c["name"] for c in sa.inspect(engine).get_columns("feed")}
        assert "validators_url" not in columns and "etag" in columns
    finally:
        engine.dispose()

"""Log lines: an exception's own words on the line and its traceback below it (JSON: a field),
and no statement's values in a database error."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from daemon.db import make_engine
from daemon.logs import StructuredFormatter


def _failed_record() -> logging.LogRecord:
    """A job failed on a database error, as the scheduler logs it (`log.exception`)."""
    try:
        raise sa.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("port 6543 refused"))
    except sa.exc.OperationalError:
        return logging.LogRecord("paperwire.daemon", logging.ERROR, __file__, 1, "job failed",
                                 None, sys.exc_info())  # fmt: skip


def test_a_failed_job_says_why_and_where() -> None:
    """The line kept only the traceback's last line: SQLAlchemy's 'Background on this error'
    link, not the refused connection (a QA pass on PostgreSQL)."""
    record = _failed_record()
    record.job = "digest"
    text = StructuredFormatter(as_json=False).format(record)
    first, *rest = text.splitlines()
    assert "job failed job=digest" in first and "port 6543 refused" in first
    assert "OperationalError" in first and rest and rest[0].startswith("Traceback")
    data = json.loads(StructuredFormatter(as_json=True).format(_failed_record()))
    assert "port 6543 refused" in data["error"] and data["traceback"].startswith("Traceback")


def test_a_text_line_says_its_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    # on a machine whose TZ is not UTC a text line's time read as local without saying so,
    # while `status` speaks UTC (operations QA)
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        record = logging.LogRecord("paperwire", logging.INFO, __file__, 1, "x", None, None)
        record.created = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC: EDT, UTC-4
        assert (
            StructuredFormatter(as_json=False)
            .format(record)
            .startswith("2026-05-28 16:26:40-0400 INFO")
        )
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_database_error_never_shows_the_values_of_its_statement(tmp_path: Path) -> None:
    """A Slack webhook is a secret and errors are logged: SQLAlchemy printed the parameters."""
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (v TEXT UNIQUE)")
            conn.execute(sa.text("INSERT INTO t VALUES (:v)"), {"v": "https://hooks/sEcReT"})
        with pytest.raises(IntegrityError) as info, engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO t VALUES (:v)"), {"v": "https://hooks/sEcReT"})
        assert "sEcReT" not in str(info.value) and "UNIQUE" in str(info.value)
    finally:
        engine.dispose()

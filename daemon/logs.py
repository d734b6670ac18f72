"""Structured logging: `log.info("event", extra={"key": value})` renders as key=value or JSON.

Secrets never reach a log record: settings hold them as SecretStr, webhook URLs are logged by
host only (`notifications.transports.base.redact_url`), and exception texts from transports
never include them.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class StructuredFormatter(logging.Formatter):
    def __init__(self, *, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
        }
        trace = ""
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            # the exception's own words on the line (SQLAlchemy's last line is a help link),
            # the traceback below it (JSON: a field of its own)
            fields.setdefault("error", one_line(exc))
            trace = self.formatException(record.exc_info)
        if self.as_json:
            base = {
                "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
                "level": record.levelname.lower(),
                "logger": record.name,
                "event": record.getMessage(),
            }
            return json.dumps(base | fields | ({"traceback": trace} if trace else {}),
                              default=str, ensure_ascii=False)  # fmt: skip
        kv = " ".join(f"{k}={_quote(v)}" for k, v in fields.items())
        ts = self.formatTime(record, "%Y-%m-%d %H:%M:%S%z")  # local, with its offset
        line = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}" + (
            f" {kv}" if kv else ""
        )
        return f"{line}\n{trace}" if trace else line


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and its words."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def cause(exc: BaseException) -> str:
    """An error in one line; a database's by the driver's words (SQLAlchemy's add the
    statement and its parameters, which change from one try to the next)."""
    return one_line(getattr(exc, "orig", None) or exc)


def _quote(v: Any) -> str:
    s = str(v)
    return json.dumps(s, ensure_ascii=False) if (" " in s or not s) else s


# Libraries whose INFO lines are noise or would leak secrets: httpx logs every request's full
# URL, and a Slack webhook's URL is its secret; APScheduler announces every job it adds and
# runs (paperwire logs "scheduled" and "job done" itself). Their warnings still show.
QUIET_LIBRARIES = ("httpx", "httpcore", "apscheduler", "mail.log", "alembic")


def quiet_libraries() -> None:
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def setup_logging(level: str = "INFO", *, as_json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(StructuredFormatter(as_json=as_json))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_libraries()

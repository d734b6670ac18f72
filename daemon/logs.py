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
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info).splitlines()[-1]
        if self.as_json:
            base = {
                "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
                "level": record.levelname.lower(),
                "logger": record.name,
                "event": record.getMessage(),
            }
            return json.dumps(base | fields, default=str, ensure_ascii=False)
        kv = " ".join(f"{k}={_quote(v)}" for k, v in fields.items())
        ts = self.formatTime(record, "%Y-%m-%d %H:%M:%S")
        return f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}" + (
            f" {kv}" if kv else ""
        )


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

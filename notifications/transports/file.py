"""Write messages to an outbox directory instead of sending them (the embedded default)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from notifications.transports.base import (
    EmailOut,
    Outgoing,
    SlackOut,
    TransportUnavailable,
)

_MESSAGE_ID = re.compile(r"<paperwire-digest-(\d+)-(\d{4}-\d{2}-\d{2})(?:-c\d+)?(?:-r\d+)?@")
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


def safe_name(text: str, limit: int = 80) -> str:
    """A file-name-safe rendering of ``text`` (an email address, say)."""
    return _UNSAFE.sub("_", text).strip("._")[:limit] or "unknown"


class FileTransport:
    """Write each message into ``outbox`` (created if missing).

    * email → ``<period>-<digest>-<recipient>.eml`` plus ``.html`` (a preview of its html
      part);
    * Slack → ``<period>-<digest>-slack.json`` (the list of payloads; the webhook URL, a
      secret, is not written); a part of a split message, sent alone, its own
      ``<period>-<digest>-slack-2of3.json``.

    Every path written is appended to :attr:`written`. Sending the same digest again
    overwrites its files (writes are atomic: temp file + rename).
    """

    name: str = "file"

    def __init__(self, outbox: Path) -> None:
        self.outbox = Path(outbox)
        self.written: list[Path] = []

    def __repr__(self) -> str:
        return f"FileTransport(outbox={str(self.outbox)!r})"

    def __enter__(self) -> FileTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def send(self, out: Outgoing) -> None:
        """Write ``out`` to the outbox. An OS error (a folder that cannot be made or written,
        a full disk) is the outbox's, not the message's: TransportUnavailable, which a person
        must fix (every waiting digest is kept, and `deliver` exits 1)."""
        try:
            self.outbox.mkdir(parents=True, exist_ok=True)
            if isinstance(out, EmailOut):
                self._write_email(out)
            elif isinstance(out, SlackOut):
                stem = f"{_period(out.period)}-{out.digest_id}-slack"
                if out.parts is not None:  # one part of a split message: each its own file
                    stem += f"-{out.first_part}of{out.parts}"
                data = json.dumps(list(out.payloads), indent=2, ensure_ascii=False) + "\n"
                self._write(f"{stem}.json", data.encode("utf-8"))
            else:
                raise TypeError(f"cannot write {type(out).__name__}")
        except OSError as exc:
            raise TransportUnavailable(
                f"file outbox {self.outbox} cannot be written ({exc.strerror or exc}): fix "
                "delivery.outbox_dir or its permissions",
                permanent=True,
            ) from None

    def _write_email(self, out: EmailOut) -> None:
        digest_id, period = out.digest_id, out.period
        if digest_id is None or period is None:  # fall back on our stable Message-ID
            match = _MESSAGE_ID.search(str(out.message.get("Message-ID", "")))
            digest_part = str(digest_id) if digest_id is not None else None
            period_part = period.isoformat() if period is not None else None
            if match:
                digest_part = digest_part or match.group(1)
                period_part = period_part or match.group(2)
        else:
            digest_part, period_part = str(digest_id), period.isoformat()
        stem = f"{period_part or 'undated'}-{digest_part or 'nodigest'}-{safe_name(out.recipient)}"
        self._write(f"{stem}.eml", out.data)
        html = out.html if out.html is not None else _html_part(out.data)
        if html is not None:
            self._write(f"{stem}.html", html.encode("utf-8"))

    def _write(self, filename: str, data: bytes) -> None:
        target = self.outbox / filename
        fd, tmp = tempfile.mkstemp(dir=self.outbox, prefix=".tmp-", suffix=target.suffix)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.written.append(target)


def _period(period: date | None) -> str:
    return period.isoformat() if period is not None else "undated"


def _html_part(data: bytes) -> str | None:
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(preferencelist=("html",))
    if part is None or not isinstance(part, EmailMessage):
        return None
    content = part.get_content()
    return content if isinstance(content, str) else None

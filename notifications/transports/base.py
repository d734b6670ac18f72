"""The one small interface every transport implements, and its two failure kinds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import urlsplit


def redact_url(url: str) -> str:
    """What may be shown of a URL that carries a secret in its path (a Slack webhook): its
    scheme and host only, ``https://hooks.slack.com/…``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
    if not host:
        return "(url)/…"
    return f"{parts.scheme}://{host}/…" if parts.scheme else f"{host}/…"


class DeliveryError(Exception):
    """A message could not be delivered."""


class TemporaryDeliveryError(DeliveryError):
    """Worth retrying later (network error, 4xx SMTP reply, HTTP 429/5xx)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Never worth retrying (5xx SMTP reply, Slack `invalid_payload`, `channel_not_found`...)."""


class TransportUnavailable(TemporaryDeliveryError):
    """The transport itself cannot deliver anything now (cannot connect, TLS or authentication
    failed): not the message's fault. The caller keeps every waiting message for later without
    counting it as a failed attempt. `permanent` says a person must fix the configuration."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class EmailOut:
    """A rendered email ready to send: the message carries To, From, Subject, Message-ID."""

    message: EmailMessage
    recipient: str
    digest_id: int | None = None  # for file names and logs; optional
    period: date | None = None


@dataclass(frozen=True)
class SlackOut:
    """One or more Slack payloads (split to stay within Slack's limits) for one webhook."""

    webhook_url: str = field(repr=False)  # secret: never logged (kept out of repr)
    payloads: tuple[dict[str, Any], ...]
    digest_id: int
    period: date | None = None  # for file names and logs; optional


Outgoing = EmailOut | SlackOut


class Transport(Protocol):
    """Sends messages of one kind. Use as a context manager around a batch."""

    name: str

    def __enter__(self) -> Transport: ...

    def __exit__(self, *exc: object) -> None: ...

    def send(self, out: Outgoing) -> None:
        """Deliver one message or raise Temporary/PermanentDeliveryError."""
        ...

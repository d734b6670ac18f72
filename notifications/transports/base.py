"""The one small interface every transport implements, and its failure kinds.

The contract with the caller (the delivery job) — what each failure means and what the
caller does with it:

* :class:`TemporaryDeliveryError`: this message could not be delivered now; retry *it* later
  (the caller counts an attempt). ``retry_after``: the server asked for at least that long.
* :class:`PermanentDeliveryError`: this message will never be delivered as it is (an unknown
  mailbox, an address that is not one — :class:`BadAddress` —, a rejected payload); give it
  up with the reason.
* :class:`TransportUnavailable`: not this message's fault — the server is down, hangs,
  drops every connection, or refuses our settings; no message can go now. The caller keeps
  *every* waiting message of the batch for later without counting an attempt.
  ``permanent=True``: a person must fix the configuration (credentials, TLS, sender address).
  Once a transport has raised it, every later ``send`` of the same batch raises it again at
  once, without touching the server (a hung server costs one timeout per batch, not one per
  message); a new batch (``__enter__``/``close``) tries again.

A reply that is the session's fault (SMTP ``421`` closing, ``503`` bad sequence, a dropped
connection) never counts against a message: the transport resets or reconnects and tries
the message once more, and if that fails too it is :class:`TransportUnavailable`.

A Slack webhook that never answers is the exception: one that hangs is an error for the
messages addressed to its server (the first after one timeout, the later ones of the batch at
once, without a request) and never holds up the others. On Slack's own host, where every
incoming webhook is, that is Slack's outage (and so is a 500, 502, 503 or 504 from there):
:class:`ServiceUnreachable` (no attempt counted); on a server of its own (stored before such
URLs were refused), a :class:`TemporaryDeliveryError`.

No exception text carries a secret (a password, a webhook URL's path), even when a server
echoes it back: transports scrub what servers say (:func:`scrub`).
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

HIDDEN = "***"


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


def url_secrets(url: str) -> list[str]:
    """The parts of a URL that must never be shown (a Slack webhook's
    ``/services/T…/B…/X…``): the URL itself, its path and query, the user info, and every
    path segment and query value of four characters or more, as written, decoded and
    encoded — a server may echo any of them back in an error page."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    pieces = [url, parts.path, parts.query, parts.fragment, parts.netloc.rpartition("@")[0]]
    pieces += parts.path.split("/")
    pieces += [p for pair in parts.query.split("&") for p in pair.split("=")]
    forms = {form for p in pieces for form in (p, unquote(p), quote(unquote(p), safe=""))}
    return [form for form in forms if len(form) >= 4]


def password_secrets(password: str | None, username: str | None = None) -> list[str]:
    """A password in every form an SMTP client sends it (AUTH PLAIN and LOGIN are base64)."""
    if not password:
        return []
    raw = [password, " ".join(password.split())]
    if username is not None:
        raw.append(f"\0{username}\0{password}")  # AUTH PLAIN's initial response
    encoded = [base64.b64encode(r.encode("utf-8")).decode("ascii") for r in raw]
    return [form for form in raw[:2] + encoded if form.strip()]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (in any letter case) replaced by ``***``."""
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not ordered:
        return text
    pattern = re.compile("|".join(re.escape(s) for s in ordered), re.IGNORECASE)
    return pattern.sub(HIDDEN, text)


class DeliveryError(Exception):
    """A message could not be delivered."""


class TemporaryDeliveryError(DeliveryError):
    """Worth retrying later (network error, 4xx SMTP reply, HTTP 429/5xx)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Never worth retrying (5xx SMTP reply, Slack `invalid_payload`, `channel_not_found`...)."""


class NotOffered(PermanentDeliveryError):
    """The message needs what the transport does not offer (an address beyond ASCII, and a
    server without SMTPUTF8): nothing was sent and no server refused the address, so it does
    not count toward stopping the channel (`delivery.stop_channel_after`)."""


class MessageRefused(PermanentDeliveryError):
    """The server refused the message as paperwire made it (Slack's ``invalid_blocks``), not
    its address, which works: it does not count toward stopping the channel
    (`delivery.stop_channel_after`)."""


class BadAddress(PermanentDeliveryError, ValueError):
    """The recipient is not an email address we can send to (it may not even be one: a line
    feed and a ``Bcc:`` in it). Raised by rendering and by the SMTP transport, before
    anything is sent."""


class TransportUnavailable(TemporaryDeliveryError):
    """The transport itself cannot deliver anything now (cannot connect, hangs, TLS or
    authentication failed, our sender refused): not the message's fault. The caller keeps
    every waiting message for later without counting it as a failed attempt. `permanent`
    says a person must fix the configuration. See the module docstring."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class ServiceUnreachable(TemporaryDeliveryError):
    """The service every address of the kind goes through (Slack: every incoming webhook is on
    its host) did not answer, could not be reached, or answered that it is in trouble (a 503):
    not this message's fault, nor one address's. Unlike :class:`TransportUnavailable`, the
    batch goes on (messages to other servers); the caller keeps *this* message for later
    without counting an attempt (no sooner than ``retry_after``), and gives it up when its
    digest is too old to be news."""


class TooManyConnections(TransportUnavailable):
    """The server takes no more connections at once for us (Exchange's "432 4.3.2 Concurrent
    connections limit exceeded", "sender thread limit exceeded", a 421 "too many
    connections"), also on a connection that has sent already: this connection's fault, not
    the server's. The caller sends its messages through its other connections, and keeps
    them for later only when it has no other."""


@dataclass(frozen=True)
class EmailOut:
    """A rendered email ready to send: `data` is the message exactly as it goes over SMTP
    (CRLF line ends; To, From, Subject, Message-ID …); `message` reads it back."""

    data: bytes
    recipient: str
    digest_id: int | None = None  # for file names and logs; optional
    period: date | None = None
    html: str | None = None  # its HTML part as rendered (the file transport's preview)

    @classmethod
    def of(cls, message: Message, recipient: str, **fields: Any) -> EmailOut:
        """From a message object (written out with `policy.SMTP`)."""
        return cls(message_bytes(message), recipient, **fields)

    @functools.cached_property
    def message(self) -> EmailMessage:
        """The message parsed back, as a mail client reads it."""
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def header_block(self) -> bytes:
        """The raw header lines (up to the first empty line)."""
        return self.data.split(b"\r\n\r\n", 1)[0]


def message_bytes(message: Message) -> bytes:
    """A message object as sent over SMTP (CRLF line ends)."""
    return message.as_bytes(policy=policy.SMTP)


@dataclass
class Waited:
    """The HTTP 429s a message has waited out in one attempt: the seconds slept and the
    retries. The parts of a message split in payloads share one (`dataclasses.replace` of a
    :class:`SlackOut` keeps it), so the budget of those waits is the message's, not a part's."""

    seconds: float = 0.0
    retries: int = 0


@dataclass(frozen=True)
class SlackOut:
    """One or more Slack payloads (split to stay within Slack's limits) for one webhook."""

    webhook_url: str = field(repr=False)  # secret: never logged (kept out of repr)
    payloads: tuple[dict[str, Any], ...]
    digest_id: int
    period: date | None = None  # for file names and logs; optional
    # the payloads' place in the whole message when they are some of its parts (a retry
    # resumes with the part that failed): their first number, and how many parts in all
    first_part: int = 1
    parts: int | None = None  # None: these payloads are the whole message
    waited: Waited = field(default_factory=Waited, compare=False, repr=False)  # 429s, in all


Outgoing = EmailOut | SlackOut


class Transport(Protocol):
    """Sends messages of one kind. Use as a context manager around a batch."""

    name: str

    def __enter__(self) -> Transport: ...

    def __exit__(self, *exc: object) -> None: ...

    def send(self, out: Outgoing) -> None:
        """Deliver one message or raise Temporary/PermanentDeliveryError."""
        ...

"""A short plain-text email that is not a digest: the subscriber's own link on request (the
page /manage). Same rules as the digests: the recipient must be an email address, no header
value carries a control character."""

from __future__ import annotations

from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from notifications.addresses import (
    email_address,
    header_text,
    needs_smtputf8,
)
from notifications.mailbox import ascii_domain, ascii_mailbox
from notifications.transports.base import EmailOut


def render_notice(
    subject: str,
    text: str,
    *,
    sender: str,
    recipient: str,
    message_id_domain: str,
    now: datetime,
) -> EmailOut:
    """A text/plain UTF-8 message; BadAddress when `recipient` is not an email address."""
    address = email_address(recipient)
    message = EmailMessage()
    message["Subject"] = header_text(subject)
    message["From"] = ascii_mailbox(header_text(sender))  # the domain as IDNA, as in a digest
    message["To"] = address
    message["Date"] = format_datetime(now)
    domain = ascii_domain(header_text(message_id_domain))
    message["Message-ID"] = make_msgid("paperwire", domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content(text)
    if needs_smtputf8(address):  # the address as it is (RFC 6532), never an encoded word
        return EmailOut(message.as_bytes(policy=policy.SMTPUTF8), address)
    return EmailOut.of(message, address)

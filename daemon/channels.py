"""The kinds of channel a digest goes out on. Each kind is one registry entry: how its address
is checked and shown, how a digest is rendered for it, and which transport sends it. Adding a
channel kind means adding an entry here (and its renderer and transport in `notifications`).
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from daemon.db.models import ChannelKind
from notifications.transports.base import redact_url

if TYPE_CHECKING:
    from daemon.app import App
    from notifications.digest import Digest
    from notifications.transports.base import Outgoing, Transport


@dataclass(frozen=True)
class ChannelType:
    kind: ChannelKind
    noun: str  # "email address", "Slack webhook URL"
    check: Callable[[str], str]  # the address, normalised; ValueError says what is wrong
    show: Callable[[str], str]  # the address as it may be shown (secrets hidden), its kind
    # named where the address alone would not say it ("slack https://hooks.slack.com/…")
    masked: Callable[[str], str]  # the address alone, secrets hidden, for a line its kind labels
    render: Callable[[App, Digest, str], Outgoing]  # (app, digest, address) → message
    transport: Callable[[App], AbstractContextManager[Transport]]  # one per batch


# ---- email ------------------------------------------------------------------------------------


ADDRESS_MAX = 400  # characters of "Name <address>" (an address is at most 254)


def parse_email(text: str) -> tuple[str, str]:
    """(the address, normalised; the display name, or "") of `ada@lab.example` or
    `Ada Lovelace <ada@lab.example>`; ValueError says what is wrong. A line break anywhere is
    refused: an address ends up in a mail header."""
    from email_validator import EmailNotValidError, validate_email

    text = text.strip()
    if not text:
        raise ValueError("an email address cannot be empty")
    if len(text) > ADDRESS_MAX:  # before any parsing: a sign-up form is anyone's to fill
        raise ValueError(f"an address of {len(text)} characters is too long")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(f"{text!r} contains a line break or a control character")
    # a display name as people write it ("Zoë Smith", "Dr. Who", "Lovelace, Ada") is quoted
    # for the validator, which takes only ASCII letters and spaces unquoted (RFC 5322)
    name, bracket, rest = text.rpartition("<")
    name = name.strip()
    quoted = text
    if bracket and name and rest.endswith(">") and not any(c in name for c in '"<>\\'):
        quoted = f'"{name}" <{rest}'
    try:
        # beyond ASCII before the @ ("jörg@…") too: sent with SMTPUTF8 when the server
        # speaks it, else that digest fails saying so (`SmtpTransport`)
        valid = validate_email(
            quoted, check_deliverability=False, allow_display_name=True, allow_smtputf8=True
        )
    except EmailNotValidError as e:
        raise ValueError(f"{text!r} is not an email address: {e}") from None
    return valid.normalized, valid.display_name or ""


def _check_email(address: str) -> str:
    return parse_email(address)[0]


def _render_email(app: App, digest: Digest, address: str) -> Outgoing:
    from notifications.render import render_email

    s = app.settings
    return render_email(
        digest,
        sender=s.email.sender,
        recipient=address,
        message_id_domain=s.email.id_domain,
        subject_prefix=s.digest.subject_prefix,
        now=app.clock(),
    )


def _email_transport(app: App) -> AbstractContextManager[Transport]:
    es = app.settings.email
    if es.transport == "file":
        from notifications.transports.file import FileTransport

        return FileTransport(app.settings.delivery.outbox_dir)
    from notifications.transports.smtp import SmtpTransport

    context = app.smtp_ssl_context
    if context is None and es.security != "none":
        try:
            cafile = os.path.expanduser(es.ca_file) if es.ca_file else None  # as checked
            context = ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as e:  # deleted, or not PEM, since the check at start
            from notifications.transports.base import TransportUnavailable

            why = getattr(e, "strerror", None) or e
            raise TransportUnavailable(
                f"email.ca_file = {es.ca_file!r} cannot be used: {why}", permanent=True
            ) from None
    return SmtpTransport(
        es.host,
        es.port,
        security=es.security,
        username=es.username or None,
        password=es.password.get_secret_value() or None,
        timeout=es.timeout_seconds,
        ssl_context=context,
    )


# ---- Slack -------------------------------------------------------------------------------------


_SLACK_HOOK_PATH = re.compile(r"/services/T\w+/B\w+/[\w-]+")


def _check_webhook(address: str) -> str:
    """An incoming-webhook URL of Slack, without the spaces around it; not one of Workflow
    Builder's (it takes variables, not a message). The URL is a secret: the error shows its
    host only."""
    from urllib.parse import urlsplit

    from notifications.transports.slack import (
        SLACK_HOOK_HOSTS,
        WORKFLOW_WEBHOOK,
        is_workflow_webhook,
    )

    address = address.strip()
    if is_workflow_webhook(address):
        raise ValueError(f"{redact_url(address)} {WORKFLOW_WEBHOOK}")
    try:
        parts = urlsplit(address)  # (it drops tabs and line breaks: the check below sees them)
        looks_right = (
            address.isprintable()
            and " " not in address
            and parts.scheme == "https"
            and parts.hostname in SLACK_HOOK_HOSTS
            and parts.port is None
            and not (parts.query or parts.fragment or parts.username)
            and _SLACK_HOOK_PATH.fullmatch(parts.path) is not None
        )
    except ValueError:  # a port that is not a number, a broken IPv6 host
        looks_right = False
    if not looks_right:
        raise ValueError(
            f"{redact_url(address)} is not a Slack incoming-webhook URL; copy it from Slack's "
            "app settings: https://hooks.slack.com/services/T…/B…/…"
        )
    return address


def _render_slack(app: App, digest: Digest, address: str) -> Outgoing:
    from notifications.render import render_slack

    return render_slack(digest, webhook_url=address)


def _slack_transport(app: App) -> AbstractContextManager[Transport]:
    ss = app.settings.slack
    if ss.transport == "file":
        from notifications.transports.file import FileTransport

        return FileTransport(app.settings.delivery.outbox_dir)
    from notifications.transports.slack import SlackWebhookTransport

    return SlackWebhookTransport(app.slack_http, min_interval=ss.min_interval_seconds)


CHANNELS: dict[ChannelKind, ChannelType] = {
    ChannelKind.EMAIL: ChannelType(
        ChannelKind.EMAIL,
        "email address",
        check=_check_email,
        show=lambda address: address,
        masked=lambda address: address,
        render=_render_email,
        transport=_email_transport,
    ),
    ChannelKind.SLACK: ChannelType(
        ChannelKind.SLACK,
        "Slack webhook URL",
        check=_check_webhook,
        show=lambda address: f"slack {redact_url(address)}",
        masked=redact_url,
        render=_render_slack,
        transport=_slack_transport,
    ),
}

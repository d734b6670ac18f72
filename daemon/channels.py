"""The kinds of channel a digest goes out on. Each kind is one registry entry: how its address
is checked and shown, how a digest is rendered for it, and which transport sends it. Adding a
channel kind means adding an entry here (and its renderer and transport in `notifications`).
"""

from __future__ import annotations

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
    show: Callable[[str], str]  # the address as it may be shown (secrets hidden)
    render: Callable[[App, Digest, str], Outgoing]  # (app, digest, address) → message
    transport: Callable[[App], AbstractContextManager[Transport]]  # one per batch


# ---- email ------------------------------------------------------------------------------------


def _check_email(address: str) -> str:
    if "@" not in address or address.strip() != address or not address:
        raise ValueError(f"{address!r} is not an email address")
    return address


def _render_email(app: App, digest: Digest, address: str) -> Outgoing:
    from notifications.render import render_email

    s = app.settings
    return render_email(
        digest,
        sender=s.email.sender,
        recipient=address,
        message_id_domain=s.email.message_id_domain,
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
        context = ssl.create_default_context(cafile=es.ca_file or None)
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


def _check_webhook(address: str) -> str:
    if not address.startswith("https://") or address.strip() != address:
        raise ValueError("a Slack incoming webhook is an https:// URL")
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
        render=_render_email,
        transport=_email_transport,
    ),
    ChannelKind.SLACK: ChannelType(
        ChannelKind.SLACK,
        "Slack webhook URL",
        check=_check_webhook,
        show=lambda address: f"slack {redact_url(address)}",
        render=_render_slack,
        transport=_slack_transport,
    ),
}

"""Transports: each implements one small `send` and declares its limits as attributes."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mypy proves every transport satisfies the Transport protocol
    from notifications.transports.base import Transport
    from notifications.transports.file import FileTransport
    from notifications.transports.slack import SlackWebhookTransport
    from notifications.transports.smtp import SmtpTransport

    def _conforms(
        a: FileTransport, b: SlackWebhookTransport, c: SmtpTransport
    ) -> tuple[Transport, Transport, Transport]:
        return a, b, c

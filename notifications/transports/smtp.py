"""SMTP delivery: one (lazily opened) connection per batch, TLS verified by default."""

from __future__ import annotations

import contextlib
import logging
import smtplib
import ssl
from typing import ClassVar, Literal, Protocol

from notifications.transports.base import (
    DeliveryError,
    EmailOut,
    Outgoing,
    PermanentDeliveryError,
    TemporaryDeliveryError,
    TransportUnavailable,
)

log = logging.getLogger(__name__)

Security = Literal["starttls", "tls", "none"]


class _Secret(Protocol):
    """Anything like pydantic's ``SecretStr``."""

    def get_secret_value(self) -> str: ...


def _reveal(secret: str | _Secret | None) -> str | None:
    if secret is None or isinstance(secret, str):
        return secret
    return secret.get_secret_value()


class SmtpTransport:
    """Send :class:`EmailOut` messages through one SMTP server.

    Use as a context manager around a batch: the connection is opened on the first
    ``send`` and reused for every following message, closed on exit. If the server
    dropped an idle connection it is reopened once.

    ``security``: ``"starttls"`` (submission, port 587), ``"tls"`` (implicit TLS, port
    465) or ``"none"`` (a local relay only). Certificates are verified against the
    system CAs unless ``ssl_context`` says otherwise.

    Errors: 4xx replies, refused connections, timeouts and TLS failures raise
    :class:`TemporaryDeliveryError`; 5xx replies (unknown recipient, message rejected) raise
    :class:`PermanentDeliveryError`. A failure to connect, secure or log in is the server's,
    not the message's: :class:`TransportUnavailable` (``permanent=True`` for bad credentials
    or a missing STARTTLS — a person must fix the configuration). The password never
    appears in an exception message or in ``repr``.
    """

    name: str = "smtp"
    max_recipients_per_message: ClassVar[int] = 1
    max_message_bytes: ClassVar[int] = 10 * 1024 * 1024  # conservative; servers announce SIZE

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: Security = "starttls",
        username: str | None = None,
        password: str | _Secret | None = None,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"security must be 'starttls', 'tls' or 'none', not {security!r}")
        if password is not None and username is None:
            raise ValueError("a password needs a username")
        self.host = host
        self.port = port
        self.security: Security = security
        self.username = username
        self._password = password
        self.timeout = timeout
        self.ssl_context = ssl_context if ssl_context is not None else ssl.create_default_context()
        self.local_hostname = local_hostname
        self._smtp: smtplib.SMTP | None = None
        self.connections_opened = 0

    def __repr__(self) -> str:
        secret = "'***'" if self._password is not None else "None"
        return (
            f"SmtpTransport(host={self.host!r}, port={self.port}, security={self.security!r},"
            f" username={self.username!r}, password={secret})"
        )

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Say QUIT (best effort) and drop the connection."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    # ------------------------------------------------------------------ sending

    def send(self, out: Outgoing) -> None:
        """Send one email; raise Temporary/PermanentDeliveryError on failure."""
        if not isinstance(out, EmailOut):
            raise TypeError(f"{type(self).__name__} sends EmailOut, not {type(out).__name__}")
        reused = self._smtp is not None
        try:
            self._send_once(out)
        except smtplib.SMTPServerDisconnected:
            if not reused:
                raise TemporaryDeliveryError(
                    f"{self._where}: server closed the connection"
                ) from None
            # The server dropped our idle connection: reconnect once and retry.
            log.info("%s: connection dropped, reconnecting", self._where)
            self._discard()
            try:
                self._send_once(out)
            except smtplib.SMTPServerDisconnected:
                self._discard()
                raise TemporaryDeliveryError(
                    f"{self._where}: server closed the connection"
                ) from None

    @property
    def _where(self) -> str:
        return f"SMTP {self.host}:{self.port}"

    def _discard(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def _send_once(self, out: EmailOut) -> None:
        smtp = self._connection()
        try:
            refused = smtp.send_message(out.message, to_addrs=[out.recipient])
        except smtplib.SMTPServerDisconnected:
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (550, b"recipient refused"))
            raise self._reply_error("recipient refused", code, reply) from None
        except smtplib.SMTPResponseException as exc:
            # SMTPSenderRefused, SMTPDataError, ... all carry the server's code.
            if exc.smtp_code == 421:  # service closing: smtplib already closed the socket
                self._discard()
            raise self._reply_error("message refused", exc.smtp_code, exc.smtp_error) from None
        except smtplib.SMTPException as exc:
            self._discard()
            raise TemporaryDeliveryError(f"{self._where}: {type(exc).__name__}") from None
        except OSError as exc:
            self._discard()
            raise TemporaryDeliveryError(f"{self._where}: network error ({exc})") from None
        if refused:  # single recipient: cannot be partially refused, but be thorough
            code, reply = next(iter(refused.values()))
            raise self._reply_error("recipient refused", code, reply)

    def _reply_error(
        self, what: str, code: int, reply: bytes | str
    ) -> TemporaryDeliveryError | PermanentDeliveryError:
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        text = self._scrub(" ".join(text.split()))[:300]
        message = f"{self._where}: {what}: {code} {text}"
        if 400 <= code < 500:
            return TemporaryDeliveryError(message)
        if 500 <= code < 600:
            return PermanentDeliveryError(message)
        return TemporaryDeliveryError(message)  # odd codes: let a later retry decide

    def _scrub(self, text: str) -> str:
        password = _reveal(self._password)
        return text.replace(password, "***") if password else text

    # ------------------------------------------------------------------ connecting

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            try:
                self._smtp = self._connect()
            except DeliveryError as exc:  # the server, not this message: say so
                raise TransportUnavailable(
                    str(exc), permanent=isinstance(exc, PermanentDeliveryError)
                ) from None
        return self._smtp

    def _connect(self) -> smtplib.SMTP:
        opened: list[smtplib.SMTP] = []
        try:
            smtp = self._open(opened)
        except OSError as exc:  # smtplib's and ssl's errors are OSErrors too
            _close_quietly(opened[0] if opened else None)
            raise self._connect_error(exc) from None
        except DeliveryError:
            _close_quietly(opened[0] if opened else None)
            raise
        self.connections_opened += 1
        log.debug("%s: connected (%s)", self._where, self.security)
        return smtp

    def _open(self, opened: list[smtplib.SMTP]) -> smtplib.SMTP:
        """Connect, EHLO, STARTTLS and log in (the connection goes into `opened` at once, so
        the caller can close it whatever fails next)."""
        if self.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host,
                self.port,
                local_hostname=self.local_hostname,
                timeout=self.timeout,
                context=self.ssl_context,
            )
        else:
            smtp = smtplib.SMTP(
                self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout
            )
        opened.append(smtp)
        smtp.ehlo()
        if self.security == "starttls":
            if not smtp.has_extn("starttls"):
                raise PermanentDeliveryError(
                    f"{self._where}: server does not offer STARTTLS (security='starttls')"
                )
            smtp.starttls(context=self.ssl_context)
            smtp.ehlo()
        if self.username is not None:
            smtp.login(self.username, _reveal(self._password) or "")
        return smtp

    def _connect_error(self, exc: OSError) -> DeliveryError:
        """What a failure to connect or log in means: worth retrying, or a configuration
        error a person must fix."""
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return self._reply_error("authentication failed", exc.smtp_code, exc.smtp_error)
        if isinstance(exc, smtplib.SMTPResponseException):
            return self._reply_error("connection refused", exc.smtp_code, exc.smtp_error)
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return PermanentDeliveryError(f"{self._where}: {exc}")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return TemporaryDeliveryError(
                f"{self._where}: TLS certificate verification failed ({exc.verify_message})"
            )
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return TemporaryDeliveryError(f"{self._where}: server closed the connection")
        if isinstance(exc, smtplib.SMTPException):  # e.g. no usable AUTH mechanism
            return PermanentDeliveryError(f"{self._where}: {self._scrub(str(exc))}")
        return TemporaryDeliveryError(
            f"{self._where}: cannot connect ({type(exc).__name__}: {self._scrub(str(exc))})"
        )


def _close_quietly(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        with contextlib.suppress(OSError):
            smtp.close()

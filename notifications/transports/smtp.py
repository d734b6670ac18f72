"""SMTP delivery: one (lazily opened) connection per batch, TLS verified by default, every
server reply classified as the message's fault, the session's, or the server's."""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import smtplib
import ssl
from typing import Literal, Protocol

from notifications.addresses import email_address, needs_smtputf8, shown
from notifications.mailbox import one_mailbox
from notifications.transports.base import (
    DeliveryError,
    EmailOut,
    NotOffered,
    Outgoing,
    PermanentDeliveryError,
    TemporaryDeliveryError,
    TooManyConnections,
    TransportUnavailable,
    password_secrets,
    scrub,
)

log = logging.getLogger(__name__)

# In a header line (split at CRLF): a control character (a lone CR or LF, NUL …; a tab is
# folding) has no place, nor a byte that is not ASCII but in a message sent with SMTPUTF8
# (RFC 6532: UTF-8 headers, the recipient's address), where it must be UTF-8.
_UNSAFE_HEADER_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f-\xff]")
_UNSAFE_UTF8_HEADER_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

# What to change for a certificate that does not verify, by OpenSSL's X509_V_ERR_* code; for
# any other reason (revoked, a bad signature…) the server's certificate itself is at fault.
_PRIVATE_CA = (
    "a private or self-signed CA: set email.ca_file to the PEM file of the CA that signed it"
)
_EXPIRED = "renew the server's certificate, or set this machine's clock right"
_CERT_FIXES = {
    2: _PRIVATE_CA,  # unable to get issuer certificate
    18: _PRIVATE_CA,  # self-signed certificate
    19: _PRIVATE_CA,  # self-signed certificate in certificate chain
    20: _PRIVATE_CA,  # unable to get local issuer certificate
    21: _PRIVATE_CA,  # unable to verify the first certificate
    9: _EXPIRED,  # certificate is not yet valid
    10: _EXPIRED,  # certificate has expired
    62: "set email.host to a name the certificate is for",  # hostname mismatch
    64: "set email.host to a name the certificate is for",  # IP address mismatch
}

Security = Literal["starttls", "tls", "none"]
Fault = Literal["session", "config", "server", "temporary", "permanent"]

QUIT_TIMEOUT = 5.0  # saying goodbye is never worth a long wait
IMPLICIT_TLS_PORT = 465  # submission over TLS from the first byte (RFC 8314): no plain greeting
SESSION_CODES = frozenset({421, 503})  # closing; bad sequence of commands
CONFIG_CODES = frozenset({530, 534, 535, 538})  # auth or encryption required / refused


class _Secret(Protocol):
    """Anything like pydantic's ``SecretStr``."""

    def get_secret_value(self) -> str: ...


def _reveal(secret: str | _Secret | None) -> str | None:
    if secret is None or isinstance(secret, str):
        return secret
    return secret.get_secret_value()


class _Refused(Exception):
    """The server answered a step of the transaction with something other than success."""

    def __init__(self, stage: str, code: int, reply: bytes | str) -> None:
        super().__init__(stage, code)
        self.stage, self.code, self.reply = stage, code, reply


# A server that relays only for senders it knows refuses every recipient elsewhere, with a 5xx
# (Postfix "Relay access denied", Sendmail "Relaying denied", Exim "relay not permitted",
# Exchange "Unable to relay"): a setting to fix, not this address's fault. Not "User unknown in
# relay recipient table" (Postfix): that recipient does not exist.
_RELAY_REFUSED = re.compile(
    r"relay(?:ing)?\s+(?:access\s+)?(?:denied|not\s+permitted|prohibited|refused)"
    r"|unable\s+to\s+relay|(?:not\s+allowed\s+to|do\s+not|does\s+not)\s+relay",
    re.I,
)

# The login's sending quota used up (Gmail "550 5.4.5 Daily user sending quota exceeded",
# Exchange Online "554 5.2.0 …SubmissionQuotaExceededException"), said to RCPT TO or after the
# data: about no message, nothing goes until the quota frees up. Not a recipient's mailbox
# over its quota ("552 5.2.2 user over quota"): that message's fault (and temporary, below).
_SENDING_QUOTA = re.compile(
    r"sending\s+(?:quota|limit)|submission\s*quota|SubmissionQuotaExceeded", re.I
)
# More connections at once than the server takes for this login (Exchange Online: "432 4.3.2
# Concurrent connections limit exceeded", "… STOREDRV.ClientSubmit; sender thread limit
# exceeded", also after the data): this connection's fault, not the message's
_TOO_MANY_CONNECTIONS = re.compile(
    r"concurrent\s+connections?\s+limit|sender\s+thread\s+limit|too\s+many\s+"
    r"(?:concurrent\s+)?(?:connections|sessions)",
    re.I,
)


def classify(stage: str, code: int, reply: bytes | str = "") -> Fault:
    """Whose fault a reply ``code`` to ``stage`` (``"MAIL FROM"``, ``"RCPT TO"``, ``"DATA"``,
    ``"end of data"``) is:

    * ``session`` — 421 (closing), 503 (bad sequence), or a reply that makes no sense: the
      connection is dropped and the message tried once more on a new one;
    * ``config`` — 530/534/535/538 (authentication or TLS required or refused) anywhere, and
      any other 5xx to MAIL FROM but 552 (our sender refused): no message can go until a
      person fixes the settings;
    * ``server`` — a 4xx to MAIL FROM (before any recipient is named, so about no message),
      and the login's sending quota used up or its connections at once (`reply`), whatever
      the step;
    * ``temporary`` / ``permanent`` — 4xx / 5xx about this message (its recipient, its
      content, its size); a 5xx to RCPT TO that refuses to relay (`reply`) is temporary: the
      server will not relay for us until a person sets a login (retried meanwhile); so is a
      552 to RCPT TO (a mailbox full, which is emptied: RFC 5321 §4.5.3.1.10 says to take it
      as temporary), never counted toward stopping the channel.
    """
    if code in SESSION_CODES or not 400 <= code < 600:
        return "session"
    if code in CONFIG_CODES:
        return "config"
    if _SENDING_QUOTA.search(_text(reply)) or _TOO_MANY_CONNECTIONS.search(_text(reply)):
        return "server"
    if stage == "MAIL FROM" and code != 552:  # 552 to MAIL FROM: this message's SIZE
        return "server" if code < 500 else "config"
    if stage == "RCPT TO" and (code == 552 or _RELAY_REFUSED.search(_text(reply))):
        return "temporary"
    return "temporary" if code < 500 else "permanent"


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _timed_out(exc: BaseException | None) -> bool:
    """Whether ``exc`` comes from a timeout (smtplib reports one as a lost connection)."""
    for _ in range(5):
        if exc is None:
            return False
        if isinstance(exc, TimeoutError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class SmtpTransport:
    """Send :class:`EmailOut` messages through one SMTP server.

    Use as a context manager around a batch: the connection is opened on the first
    ``send`` and reused for every following message, closed on exit (QUIT waits at most
    ``QUIT_TIMEOUT`` seconds).

    ``security``: ``"starttls"`` (submission, port 587), ``"tls"`` (implicit TLS, port
    465) or ``"none"`` (a local relay only). Certificates are verified against the
    system CAs unless ``ssl_context`` says otherwise. ``timeout``: seconds any one network
    operation may take (connect, a reply, a write).

    What goes wrong, and what is raised (see ``notifications.transports.base``):

    * the recipient is not an email address, or a header carries a control character:
      :class:`BadAddress` / :class:`PermanentDeliveryError`, before anything is sent;
    * a 4xx / 5xx about the message (its recipient, its content): Temporary / Permanent; the
      session is reset (RSET) so the next message starts clean;
    * 421, 503, a dropped connection: the session's fault — a new connection and one more
      try; if that fails too, :class:`TransportUnavailable`;
    * a login set and no AUTH offered (before STARTTLS, with ``security = "none"``): the
      error says what to set; :class:`TransportUnavailable` with ``permanent=True``;
    * cannot connect, no answer within ``timeout``, TLS or login failed, our sender or our
      settings refused (530 "Must issue a STARTTLS command first"):
      :class:`TransportUnavailable` (``permanent=True`` when a person must fix the
      configuration), and every later ``send`` of the batch raises it again at once.

    The password never appears in an exception message or in ``repr``, even when the
    server echoes it back (also base64-encoded, as AUTH sends it).
    """

    name: str = "smtp"

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
        self._down: TransportUnavailable | None = None  # raised again until the batch ends
        self._senders: dict[tuple[str, ...], str | None] = {}  # From values, parsed once
        self._stage = "connect"
        self.connections_opened = 0

    def __repr__(self) -> str:
        secret = "'***'" if self._password is not None else "None"
        return (
            f"SmtpTransport(host={self.host!r}, port={self.port}, security={self.security!r},"
            f" username={self.username!r}, password={secret})"
        )

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> SmtpTransport:
        self._down = None
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Say QUIT (best effort, briefly) and drop the connection; the next batch starts
        afresh."""
        smtp, self._smtp = self._smtp, None
        self._down = None
        if smtp is None:
            return
        try:
            if smtp.sock is not None:
                smtp.sock.settimeout(min(self.timeout, QUIT_TIMEOUT))
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    # ------------------------------------------------------------------ sending

    def send(self, out: Outgoing) -> None:
        """Send one email; raise Temporary/PermanentDeliveryError or TransportUnavailable."""
        if not isinstance(out, EmailOut):
            raise TypeError(f"{type(self).__name__} sends EmailOut, not {type(out).__name__}")
        if self._down is not None:  # known for this batch: do not wait on the server again
            raise type(self._down)(str(self._down), permanent=self._down.permanent)
        recipient = email_address(out.recipient)
        try:
            sender = self._envelope(out, utf8=needs_smtputf8(recipient))
            self._deliver(sender, recipient, out.data)
        except TransportUnavailable as exc:
            self._down = exc
            raise

    @property
    def _where(self) -> str:
        return f"SMTP {self.host}:{self.port}"

    def _deliver(self, sender: str, recipient: str, data: bytes) -> None:
        """One try, and one more on a new connection if the first failed through the
        session's fault."""
        fault = self._attempt(sender, recipient, data)
        if fault is None:
            return
        log.info("%s: %s; trying once more on a new connection", self._where, fault)
        again = self._attempt(sender, recipient, data)
        if again is not None:
            # a 421 "too many connections" on the new one too: this connection's limit
            down = (
                TooManyConnections if _TOO_MANY_CONNECTIONS.search(again) else TransportUnavailable
            )
            raise down(f"{self._where}: {fault}; on a new connection: {again}")

    def _attempt(self, sender: str, recipient: str, data: bytes) -> str | None:
        """Send once: None if the server accepted the message, a description of the
        session's fault (the connection is dropped), or an exception for anything else."""
        smtp = self._connection()
        try:
            self._transaction(smtp, sender, recipient, data)
        except _Refused as refused:
            return self._refused(smtp, refused)
        except (smtplib.SMTPException, OSError) as exc:  # smtplib reports drops and timeouts
            self._discard()
            if _timed_out(exc):
                raise TransportUnavailable(
                    f"{self._where}: no answer within {self.timeout:g}s ({self._stage})"
                ) from None
            return f"connection lost ({self._stage})"
        return None

    def _transaction(self, smtp: smtplib.SMTP, sender: str, recipient: str, data: bytes) -> None:
        self._stage = "MAIL FROM"
        options = [f"SIZE={len(data)}"] if smtp.has_extn("size") else []
        if needs_smtputf8(recipient):
            if not smtp.has_extn("smtputf8"):  # before MAIL FROM: the session goes on
                raise NotOffered(
                    f"{self._where}: {shown(recipient)} goes beyond ASCII before the @, which "
                    "needs SMTPUTF8, and this server does not offer it: give the subscriber an "
                    "address in ASCII, or send through a server that speaks SMTPUTF8"
                )
            options.append("SMTPUTF8")  # smtplib then sends the commands in UTF-8
        code, reply = smtp.mail(sender, options)
        if code != 250:
            raise _Refused(self._stage, code, reply)
        self._stage = "RCPT TO"
        code, reply = smtp.rcpt(recipient)
        if code not in (250, 251):
            raise _Refused(self._stage, code, reply)
        self._stage = "DATA"
        try:
            code, reply = smtp.data(data)
        except smtplib.SMTPDataError as exc:  # DATA itself refused: no 354
            raise _Refused(self._stage, exc.smtp_code, exc.smtp_error) from None
        if code != 250:
            raise _Refused("end of data", code, reply)

    def _refused(self, smtp: smtplib.SMTP, refused: _Refused) -> str:
        fault = classify(refused.stage, refused.code, refused.reply)
        what = f"{refused.stage}: {refused.code} {self._scrubbed(refused.reply)}".rstrip()
        if fault == "temporary" and refused.code == 552:  # to RCPT TO: a mailbox full
            what += " (the recipient's mailbox is full: retried later)"
        elif fault == "temporary" and refused.code >= 500:  # a refused relay
            what += (
                " (the server does not relay for this sender: set email.username and "
                "email.password, or use a server that relays for this host; retried meanwhile)"
                if self.username is None
                else f" (the server does not relay for the login {self.username!r}: check that "
                "it may send to other domains; retried meanwhile)"
            )
        if fault == "server" and _SENDING_QUOTA.search(_text(refused.reply)):
            what += (
                " (the sending quota of this login is used up: every digest waits for a later run)"
            )
        if fault == "session":
            self._discard()
            return what
        self._reset(smtp)
        message = f"{self._where}: {what}"
        if fault == "config":
            raise TransportUnavailable(f"{message} (check the settings)", permanent=True)
        if fault == "server" and _TOO_MANY_CONNECTIONS.search(_text(refused.reply)):
            raise TooManyConnections(message)
        if fault == "server":
            raise TransportUnavailable(message)
        if fault == "temporary":
            raise TemporaryDeliveryError(message)
        raise PermanentDeliveryError(message)

    def _reset(self, smtp: smtplib.SMTP) -> None:
        """End the failed transaction (RSET) so the next message starts clean; a server that
        does not agree loses the connection (the next message opens a new one)."""
        try:
            code, _ = smtp.rset()
        except (smtplib.SMTPException, OSError) as exc:
            self._discard()
            if _timed_out(exc):
                self._down = TransportUnavailable(
                    f"{self._where}: no answer within {self.timeout:g}s (RSET)"
                )
            return
        if code != 250:
            self._discard()

    def _envelope(self, out: EmailOut, *, utf8: bool = False) -> str:
        """The envelope sender (the From address), once the header lines are checked (`utf8`:
        the message goes with SMTPUTF8, its headers may hold UTF-8)."""
        froms: list[str] = []
        name = ""
        unsafe = _UNSAFE_UTF8_HEADER_BYTES if utf8 else _UNSAFE_HEADER_BYTES
        for line in out.header_block().split(b"\r\n"):
            folded = line[:1] in (b" ", b"\t")  # the header above goes on
            if not folded:
                name = line.split(b":", 1)[0].decode("ascii", "replace")
            if unsafe.search(line) or (utf8 and not _is_utf8(line)):
                raise PermanentDeliveryError(
                    f"{self._where}: the {shown(name)} header contains a control character "
                    f"or a byte that is not ASCII"
                )
            if folded:
                if name.lower() == "from":
                    froms[-1] += line.decode("utf-8")
                continue
            if name.lower() == "from":
                froms.append(line.split(b":", 1)[1].decode("utf-8").strip())
        return self._sender(tuple(froms))

    def _sender(self, froms: tuple[str, ...]) -> str:
        """The one address of the From header (the configured sender): anything else is a
        configuration problem, the same for every message (parsed once per value)."""
        if froms not in self._senders:
            mailbox = one_mailbox(froms[0]) if len(froms) == 1 else None
            self._senders[froms] = mailbox.addr_spec if mailbox else None
        sender = self._senders[froms]
        if sender is None:
            shown_from = shown(froms[0]) if froms else "(none)"
            raise TransportUnavailable(
                f"{self._where}: the sender {shown_from} is not one email address "
                f"(check the settings)",
                permanent=True,
            )
        return sender

    def _discard(self) -> None:
        """Drop the connection without a word (after a timeout QUIT would wait as long)."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def _scrubbed(self, reply: bytes | str) -> str:
        """A server's words, one line, at most 300 characters, with no secret in them."""
        text = _text(reply)
        secrets = password_secrets(_reveal(self._password), self.username)
        return scrub(" ".join(scrub(text, secrets).split()), secrets)[:300]

    # ------------------------------------------------------------------ connecting

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            self._smtp = self._connect()
        return self._smtp

    def _connect(self) -> smtplib.SMTP:
        opened: list[smtplib.SMTP] = []
        self._stage = "connect"
        try:
            smtp = self._open(opened)
        except (OSError, DeliveryError) as exc:  # smtplib's and ssl's errors are OSErrors too
            _close_quietly(opened[0] if opened else None)
            raise self._unavailable(exc) from None
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
        self._stage = "EHLO"
        smtp.ehlo()
        if self.security == "starttls":
            if not smtp.has_extn("starttls"):
                raise TransportUnavailable(
                    f"{self._where}: server does not offer STARTTLS (security = 'starttls'): "
                    "for a relay on this machine or a network you trust, set security = "
                    "'none'; else use the server's submission port (587, or 465 with "
                    "security = 'tls')",
                    permanent=True,
                )
            self._stage = "STARTTLS"
            smtp.starttls(context=self.ssl_context)
            self._stage = "EHLO"
            smtp.ehlo()
        if self.username is not None:
            self._stage = "AUTH"
            if not smtp.has_extn("auth"):
                raise TransportUnavailable(self._no_auth(smtp), permanent=True)
            _log_in(smtp, self.username, _reveal(self._password) or "")
        return smtp

    def _no_auth(self, smtp: smtplib.SMTP) -> str:
        """What to set when we have a login and the server offers no AUTH (smtplib says only
        "SMTP AUTH extension not supported by server.")."""
        if self.security == "none" and smtp.has_extn("starttls"):
            # submission servers offer AUTH only once TLS is on (no password in the clear)
            return (
                f"{self._where}: the server offers AUTH only after STARTTLS, and security = "
                "'none' does not start TLS: set security = 'starttls'"
            )
        return (
            f"{self._where}: the server offers no AUTH (security = {self.security!r}), so "
            f"the login {self.username!r} cannot be used: leave email.username and "
            "email.password empty if it takes mail from this host without one, else check "
            "email.host and email.port (submission: 587, or 465 with security = 'tls')"
        )

    def _unavailable(self, exc: OSError | DeliveryError) -> TransportUnavailable:
        """What a failure to connect, secure or log in means: worth another batch later, or a
        configuration error a person must fix."""
        if isinstance(exc, TransportUnavailable):
            return exc
        if isinstance(exc, DeliveryError):
            return TransportUnavailable(str(exc), permanent=isinstance(exc, PermanentDeliveryError))
        if _timed_out(exc):
            # connected, and no greeting came (smtplib reports that wait as a lost connection);
            # a bare timeout at "connect" is the TCP connection itself: no server answered
            greeting = self._stage == "connect" and isinstance(exc, smtplib.SMTPServerDisconnected)
            if greeting and self.port == IMPLICIT_TLS_PORT and self.security != "tls":
                # the server waits for our TLS handshake while we wait for its greeting
                return TransportUnavailable(
                    f"{self._where}: no greeting within {self.timeout:g}s: port "
                    f"{IMPLICIT_TLS_PORT} speaks TLS from the first byte; set security = "
                    f"'tls' (not {self.security!r})",
                    permanent=True,
                )
            hint = ""
            if greeting and self.security != "tls":
                # the same wait as on 465 above, on a port we cannot know speaks TLS at once
                hint = (
                    ": if this port speaks TLS from the first byte (as 465 does), set "
                    "security = 'tls'"
                )
            elif self._stage == "connect" and not greeting:
                hint = (
                    ": check email.host and email.port, and that no firewall drops the connection"
                )
            return TransportUnavailable(
                f"{self._where}: no answer within {self.timeout:g}s ({self._stage}){hint}"
            )
        if isinstance(exc, smtplib.SMTPResponseException):  # greeting, EHLO, STARTTLS, AUTH
            what = (
                "authentication failed"
                if isinstance(exc, smtplib.SMTPAuthenticationError)
                else f"{self._stage} refused"
            )
            message = f"{self._where}: {what}: {exc.smtp_code} {self._scrubbed(exc.smtp_error)}"
            if exc.smtp_code < 500 and _TOO_MANY_CONNECTIONS.search(_text(exc.smtp_error)):
                return TooManyConnections(message)  # at the greeting: one connection too many
            return TransportUnavailable(message, permanent=exc.smtp_code >= 500)
        return self._unavailable_locally(exc)

    def _unavailable_locally(self, exc: OSError) -> TransportUnavailable:
        """A failure without a reply from the server: TLS, a lost connection, the network."""
        where, stage = self._where, self._stage
        if isinstance(exc, ssl.SSLCertVerificationError):
            fix = _CERT_FIXES.get(exc.verify_code, "")
            return TransportUnavailable(
                f"{where}: TLS certificate verification failed ({exc.verify_message})"
                + (f": {fix}" if fix else ""),
                permanent=True,
            )
        if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return TransportUnavailable(f"{where}: connection closed during the TLS handshake")
        if isinstance(exc, ssl.SSLError) and self.security == "tls" and stage == "connect":
            # our handshake answered with the server's plain-text greeting ("220 …")
            return TransportUnavailable(
                f"{where}: TLS failed ({exc.reason}): the server does not speak TLS from the "
                "first byte (a port such as 25 or 587 speaks plain text, then STARTTLS): set "
                "security = 'starttls', or use its implicit TLS port (465)",
                permanent=True,
            )
        if isinstance(exc, ssl.SSLError):  # e.g. TLS spoken to a plain-text port
            return TransportUnavailable(
                f"{where}: TLS failed ({exc.reason}): check the security setting and the port",
                permanent=True,
            )
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return TransportUnavailable(f"{where}: server closed the connection ({stage})")
        if isinstance(exc, smtplib.SMTPException):  # AUTH not offered, no usable mechanism
            return TransportUnavailable(f"{where}: {self._scrubbed(str(exc))}", permanent=True)
        return TransportUnavailable(
            f"{where}: cannot connect ({type(exc).__name__}: {self._scrubbed(str(exc))})"
        )


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _close_quietly(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        with contextlib.suppress(OSError):
            smtp.close()


def _log_in(smtp: smtplib.SMTP, user: str, password: str) -> None:
    """`smtp.login`, but a login beyond ASCII (a password with an umlaut) goes as AUTH PLAIN in
    UTF-8, as SASL PLAIN is (RFC 4616): smtplib encodes every mechanism's answer as ASCII, and
    raised UnicodeEncodeError, no SMTP error, for it."""
    if user.isascii() and password.isascii():
        smtp.login(user, password)
        return
    smtp.ehlo_or_helo_if_needed()
    if "PLAIN" not in smtp.esmtp_features.get("auth", "").upper().split():
        raise smtplib.SMTPException(
            "the login (email.username or email.password) has characters beyond ASCII, which "
            "only AUTH PLAIN carries, and this server does not offer it"
        )
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
    code, reply = smtp.docmd("AUTH", f"PLAIN {token}")
    if code not in (235, 503):  # 503: logged in already
        raise smtplib.SMTPAuthenticationError(code, reply)

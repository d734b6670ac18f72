"""The SMTP transport against a real aiosmtpd server made to fail on purpose: whose fault each
failure is (the message's, the session's, the server's or the configuration's), that the
session is clean for the next message, and that a hung server costs one timeout per batch.

No test depends on speed: timeouts are short, and the assertions are on what was attempted."""

from __future__ import annotations

import base64
import dataclasses
import smtplib
import socket
from collections.abc import Callable, Iterator
from datetime import datetime
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest

from notifications.transports import smtp
from notifications.transports.base import (
    BadAddress,
    DeliveryError,
    EmailOut,
    PermanentDeliveryError,
    TemporaryDeliveryError,
    TooManyConnections,
    TransportUnavailable,
)
from notifications.transports.smtp import SmtpTransport
from tests.notifications.factories import PASSWORD, USER, email_for, transport_for
from tests.servers import FaultAction, SmtpServer, smtp_server

HANG_TIMEOUT = 0.5  # seconds the transport waits for a reply in the hang tests
SHUTTING_DOWN = "421 4.3.2 Service shutting down, closing transmission channel"


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with smtp_server(users={USER: PASSWORD}) as smtp:
        yield smtp


def send_all(transport: SmtpTransport, recipients: list[str]) -> list[DeliveryError | None]:
    """Send one message to each recipient, as the delivery job does: what each send raised."""
    outcomes: list[DeliveryError | None] = []
    with transport:
        for recipient in recipients:
            try:
                transport.send(email_for(recipient))
            except DeliveryError as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
    return outcomes


def delivered(server: SmtpServer) -> list[str]:
    return [m.rcpt_tos[0] for m in server.messages]


def people(n: int) -> list[str]:
    return [f"reader{i}@example.com" for i in range(n)]


# ------------------------------------------------------------------ the session is reset


def test_a_busy_reply_to_data_resets_the_session_and_the_batch_goes_on(
    server: SmtpServer,
) -> None:
    """The issue's 452 after DATA: the server keeps the transaction open; without RSET the
    next MAIL FROM got "503 nested MAIL command", filed as permanent (10 of 20 given up)."""
    server.fail("DATA", reply="452 4.3.1 Insufficient system storage")
    recipients = people(20)
    first, *rest = send_all(transport_for(server), recipients)
    assert isinstance(first, TemporaryDeliveryError) and "452" in str(first)
    assert not isinstance(first, TransportUnavailable)  # this message: retried later
    assert rest == [None] * 19
    assert delivered(server) == recipients[1:]
    assert server.connections == 1
    verbs = server.verbs(1)
    assert verbs[verbs.index("DATA") + 1] == "RSET"  # the failed transaction was ended


@pytest.mark.parametrize(
    ("command", "reply", "expected"),
    [
        ("RCPT", "451 4.3.0 Mailbox busy", TemporaryDeliveryError),
        ("RCPT", "550 5.1.1 No such user", PermanentDeliveryError),
        ("DATA", "554 5.5.1 Error: no valid recipients", PermanentDeliveryError),
        ("END_OF_DATA", "452 4.3.1 Try again later", TemporaryDeliveryError),
        ("END_OF_DATA", "554 5.7.1 Looks like spam", PermanentDeliveryError),
    ],
)
def test_after_a_refused_message_the_next_one_starts_clean(
    server: SmtpServer, command: str, reply: str, expected: type[DeliveryError]
) -> None:
    server.fail(command, reply=reply)
    first, second = send_all(transport_for(server), people(2))
    assert type(first) is expected and reply.split()[0] in str(first)
    assert second is None
    assert delivered(server) == people(2)[1:]
    assert server.connections == 1 and "RSET" in server.verbs()


@pytest.mark.parametrize(
    "reply",
    [
        "554 5.7.1 <reader0@example.com>: Relay access denied",  # Postfix
        "550 5.7.1 Relaying denied",  # Sendmail
        "550 relay not permitted",  # Exim
        "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain",  # Exchange
    ],
)
def test_a_refused_relay_is_retried_and_says_what_to_set(server: SmtpServer, reply: str) -> None:
    # a server that relays only for logged-in senders refuses every recipient with a 5xx: each
    # digest was given up at once (delivery QA); it is retried now, with what to check
    server.fail("RCPT", reply=reply, times=2)
    outcomes = send_all(transport_for(server), people(2))
    assert all(type(o) is TemporaryDeliveryError for o in outcomes), outcomes
    # logged in (as every transport of these tests): the login is named, not "set one"
    assert "relay" in str(outcomes[0]) and f"the login {USER!r}" in str(outcomes[0])
    server.fail("RCPT", reply=reply)
    (anonymous,) = send_all(transport_for(server, username=None, password=None), people(1))
    assert type(anonymous) is TemporaryDeliveryError and "set email.username" in str(anonymous)


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("RCPT", "550 5.4.5 Daily user sending quota exceeded. q1-20020a05 - gsmtp"),  # Gmail
        ("END_OF_DATA", "550 5.4.5 Daily user sending limit exceeded. - gsmtp"),
        (
            "END_OF_DATA",  # Exchange Online
            "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to "
            "process message due to a permanent exception with message",
        ),
    ],
)
def test_a_sending_quota_used_up_holds_the_batch_and_fails_no_message(
    server: SmtpServer, command: str, reply: str
) -> None:
    # Gmail or Exchange Online refusing every message once the login's daily sending quota is
    # used up (a 5xx to RCPT or after the data): each waiting digest was given up for good,
    # those late in the order every day, and their channels stopped after three days
    server.fail(command, reply=reply, times=None)
    outcomes = send_all(transport_for(server), people(3))
    assert all(type(o) is TransportUnavailable for o in outcomes), outcomes
    first = outcomes[0]
    assert isinstance(first, TransportUnavailable) and not first.permanent
    assert "sending quota" in str(first) and reply.split()[0][:3] in str(first)
    assert server.verbs().count("MAIL") == 1  # the rest of the batch waits, not tried


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("MAIL", "432 4.3.2 Concurrent connections limit exceeded."),
        ("END_OF_DATA", "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded"),
    ],
)
def test_a_connection_more_than_the_server_takes_at_once_is_the_connections_fault(
    server: SmtpServer, command: str, reply: str
) -> None:
    # Exchange Online's answer to a fourth connection at once, after the data too: each message
    # sent on it was retried as its own fault, one attempt used each time (the delivery job
    # lets the other connections send them: tests/daemon/jobs/test_delivery.py)
    server.fail(command, reply=reply, times=None)
    outcomes = send_all(transport_for(server), people(3))
    # said as the connection's limit (the job then sends through its other connections, also
    # when this one has sent already), by the later sends of the batch too
    assert all(type(o) is TooManyConnections for o in outcomes), outcomes
    assert server.verbs().count("MAIL") == 1


def test_a_421_too_many_connections_at_the_greeting_is_the_connections_limit(
    server: SmtpServer,
) -> None:
    server.fail("CONNECT", "close", "421 4.3.2 Too many concurrent connections", times=None)
    (outcome,) = send_all(transport_for(server), people(1))
    assert type(outcome) is TooManyConnections and not outcome.permanent


def test_a_421_not_now_at_the_greeting_is_not_said_to_be_the_connections_limit(
    server: SmtpServer,
) -> None:
    server.fail("CONNECT", "close", "421 4.3.2 Service not available", times=None)
    (outcome,) = send_all(transport_for(server), people(1))
    assert type(outcome) is TransportUnavailable


def test_a_recipients_mailbox_over_its_quota_is_that_messages_fault_and_temporary(
    server: SmtpServer,
) -> None:
    """A full mailbox (552 to RCPT TO) is emptied: RFC 5321 §4.5.3.1.10 says to take a 552
    there as temporary. It was permanent, the digest given up at once and counted toward
    stopping the channel."""
    server.fail("RCPT", reply="552 5.2.2 <reader0@example.com>: user over quota")
    first, second = send_all(transport_for(server), people(2))
    assert type(first) is TemporaryDeliveryError and second is None
    assert "552 5.2.2" in str(first)
    assert server.verbs(1).count("RSET") == 1  # the session is clean for the next message


def test_an_unknown_user_in_the_relay_table_is_still_the_recipients_fault(
    server: SmtpServer,
) -> None:
    reply = (
        "550 5.1.1 <reader0@example.com>: Recipient address rejected: User unknown in relay "
        "recipient table"
    )
    server.fail("RCPT", reply=reply)
    first, second = send_all(transport_for(server), people(2))
    assert type(first) is PermanentDeliveryError and second is None


# ------------------------------------------------------------------ the session's fault


@pytest.mark.parametrize("command", ["MAIL", "RCPT", "DATA", "END_OF_DATA"])
def test_a_421_is_the_sessions_fault_the_message_goes_on_a_new_connection(
    server: SmtpServer, command: str
) -> None:
    server.fail(command, "close", SHUTTING_DOWN)
    assert send_all(transport_for(server), people(3)) == [None, None, None]
    assert delivered(server) == people(3)
    assert server.connections == 2


@pytest.mark.parametrize("command", ["MAIL", "RCPT", "DATA"])
def test_a_503_is_the_sessions_fault_not_the_messages(server: SmtpServer, command: str) -> None:
    server.fail(command, reply="503 5.5.1 Error: bad sequence of commands")
    assert send_all(transport_for(server), people(3)) == [None, None, None]
    assert delivered(server) == people(3)
    assert server.connections == 2


def test_a_connection_dropped_in_the_middle_of_data_is_retried_on_a_new_one(
    server: SmtpServer,
) -> None:
    server.fail("DATA", "drop_mid_data")
    assert send_all(transport_for(server), people(2)) == [None, None]
    assert delivered(server) == people(2)
    assert server.connections == 2


@pytest.mark.parametrize(
    ("command", "action", "reply"),
    [
        ("MAIL", "reply", "503 5.5.1 Error: nested MAIL command"),
        ("RCPT", "close", SHUTTING_DOWN),
        ("DATA", "drop_mid_data", ""),
        ("END_OF_DATA", "drop", ""),
    ],
)
def test_a_session_fault_that_persists_holds_the_batch_not_the_message(
    server: SmtpServer, command: str, action: FaultAction, reply: str
) -> None:
    server.fail(command, action, reply, times=None)
    outcomes = send_all(transport_for(server), people(5))
    assert all(type(o) is TransportUnavailable for o in outcomes), outcomes
    assert not any(isinstance(o, TransportUnavailable) and o.permanent for o in outcomes)
    assert server.messages == []
    assert server.connections == 2  # a try and one retry; the rest of the batch waits


# ------------------------------------------------------------------ the configuration


@pytest.mark.parametrize("username", [None, USER])
def test_a_server_that_demands_starttls_we_do_not_use_is_a_configuration_problem(
    username: str | None,
) -> None:
    """`security = "none"` against "530 Must issue a STARTTLS command first" (or, with a
    login, no AUTH offered before TLS): every digest waits for a person, none is failed."""
    with smtp_server(users={USER: PASSWORD}) as server:
        password = PASSWORD if username else None
        transport = transport_for(server, security="none", username=username, password=password)
        outcomes = send_all(transport, people(3))
        assert all(isinstance(o, TransportUnavailable) and o.permanent for o in outcomes)
        assert "530" in str(outcomes[0]) or "AUTH" in str(outcomes[0])
        assert server.connections == 1  # asked once per batch
        assert server.messages == [] and server.auth_attempts == []


def test_a_server_without_starttls_says_what_to_set() -> None:
    """The default security ("starttls") against a relay that speaks no TLS (a lab's port 25):
    "server does not offer STARTTLS (security='starttls')" named nothing to change."""
    with smtp_server(tls="none") as server:
        transport = transport_for(server, username=None, password=None)
        (outcome,) = send_all(transport, people(1))
    assert isinstance(outcome, TransportUnavailable) and outcome.permanent
    assert "does not offer STARTTLS" in str(outcome)
    assert "set security = 'none'" in str(outcome) and "587" in str(outcome)
    assert server.messages == []


def test_a_login_over_a_plain_connection_to_a_server_that_offers_auth_after_starttls() -> None:
    """`security = "none"` with a login, to a submission server that offers AUTH only once TLS
    is on (as Postfix, Exim, Exchange do): the error was smtplib's "SMTP AUTH extension not
    supported by server.", which names no setting."""
    with smtp_server(users={USER: PASSWORD}, require_starttls=False) as server:
        (outcome,) = send_all(transport_for(server, security="none"), people(1))
    assert isinstance(outcome, TransportUnavailable) and outcome.permanent
    assert "offers AUTH only after STARTTLS" in str(outcome)
    assert "set security = 'starttls'" in str(outcome)


def test_a_login_to_a_server_that_offers_no_auth_at_all_says_what_to_check() -> None:
    with smtp_server(tls="none") as server:
        (outcome,) = send_all(transport_for(server, security="none"), people(1))
    assert isinstance(outcome, TransportUnavailable) and outcome.permanent
    assert "offers no AUTH" in str(outcome)
    assert "leave email.username and email.password empty" in str(outcome)
    assert server.messages == []


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [
        ("553 5.7.1 Sender address rejected: not owned by user alice", True),
        ("550 5.7.1 Sender address rejected: Access denied", True),
        ("530 5.7.0 Authentication required", True),
        ("451 4.3.0 Temporary local problem, try later", False),
    ],
)
def test_a_refused_sender_is_never_the_messages_fault(
    server: SmtpServer, reply: str, permanent: bool
) -> None:
    server.fail("MAIL", reply=reply, times=None)
    outcomes = send_all(transport_for(server), people(3))
    assert all(isinstance(o, TransportUnavailable) for o in outcomes), outcomes
    first = outcomes[0]
    assert isinstance(first, TransportUnavailable) and first.permanent is permanent
    assert reply.split()[0] in str(first)
    assert server.verbs().count("MAIL") == 1  # the rest of the batch was not tried


def test_a_message_over_the_size_limit_is_its_own_fault(server: SmtpServer) -> None:
    server.fail("MAIL", reply="552 5.3.4 Message size exceeds fixed limit")
    first, second = send_all(transport_for(server), people(2))
    assert type(first) is PermanentDeliveryError and "552" in str(first)
    assert second is None


def test_a_sender_that_is_not_one_address_is_a_configuration_problem(
    server: SmtpServer,
) -> None:
    message = email_for("grace@example.com").message
    message.replace_header("From", "paperwire <a@example.org>, other <b@example.org>")
    out = EmailOut.of(message, "grace@example.com")
    with transport_for(server) as transport, pytest.raises(TransportUnavailable) as info:
        transport.send(out)
    assert info.value.permanent and "sender" in str(info.value)
    assert server.connections == 0


# ------------------------------------------------------------------ a server that hangs


def _short_wait_at(monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    """The client waits HANG_TIMEOUT from the step that hangs on, the usual timeout before it:
    with 0.5 s for every step, each step that answers had to answer within 0.5 s, which a
    loaded machine's pause can miss."""
    if command == "CONNECT":  # the greeting is the first thing read
        get_socket: Callable[..., socket.socket] = getattr(smtplib.SMTP, "_get_socket")  # noqa: B009

        def socket_short(self: smtplib.SMTP, *args: Any) -> socket.socket:
            sock = get_socket(self, *args)
            sock.settimeout(HANG_TIMEOUT)
            return sock

        monkeypatch.setattr(smtplib.SMTP, "_get_socket", socket_short)
        return
    send = smtplib.SMTP.send

    def send_then_short(self: smtplib.SMTP, data: str | bytes) -> None:
        text = data if isinstance(data, str) else data.decode("ascii", "replace")
        verb = text.split(" ", 1)[0].strip().upper()
        if verb == command or (command == "END_OF_DATA" and text.endswith("\r\n.\r\n")):
            assert self.sock is not None
            self.sock.settimeout(HANG_TIMEOUT)
        send(self, data)

    monkeypatch.setattr(smtplib.SMTP, "send", send_then_short)


@pytest.mark.parametrize("command", ["CONNECT", "EHLO", "AUTH", "MAIL", "DATA", "END_OF_DATA"])
def test_a_server_that_stops_answering_costs_one_timeout_per_batch(
    server: SmtpServer, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.fail(command, "hang", times=None)
    _short_wait_at(monkeypatch, command)
    transport = transport_for(server, timeout=5.0)
    outcomes = send_all(transport, people(5))
    assert all(type(o) is TransportUnavailable for o in outcomes), outcomes
    first = outcomes[0]
    assert isinstance(first, TransportUnavailable) and not first.permanent
    stage = {"CONNECT": "connect", "MAIL": "MAIL FROM", "END_OF_DATA": "DATA"}.get(command, command)
    assert f"no answer within 5s ({stage})" in str(first)  # the step that hung, not one before
    # the other four were not attempted (no new connection, no second MAIL), and the end of
    # the batch did not wait on the hung server to say goodbye
    assert server.connections == 1
    assert server.verbs().count("MAIL") <= 1
    assert "QUIT" not in server.verbs()
    assert server.messages == []


def test_a_new_batch_tries_the_server_again(server: SmtpServer) -> None:
    server.fail("CONNECT", "hang")
    transport = transport_for(server, timeout=HANG_TIMEOUT)
    assert isinstance(send_all(transport, people(2))[0], TransportUnavailable)
    # a server that answers is given the usual timeout: in 0.5 s a loaded machine's pause
    # made an answered EHLO "no answer" (a pause of 0.6 s failed the test)
    transport.timeout = 5.0
    assert send_all(transport, people(2)) == [None, None]  # the same object, a new batch
    assert server.connections == 2


def test_a_hang_after_a_refused_message_is_noticed_once(
    server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The steps that answer get the usual timeout, the hung RSET alone a short one (it
    never answers, so any will do): one timeout for all made every step up to RCPT answer
    within 0.5 s, and a loaded machine's pause of 0.6 s before "250" to MAIL FROM failed it."""
    rset = smtplib.SMTP.rset

    def rset_soon_given_up(self: smtplib.SMTP) -> tuple[int, bytes]:
        assert self.sock is not None
        self.sock.settimeout(HANG_TIMEOUT)
        return rset(self)

    monkeypatch.setattr(smtplib.SMTP, "rset", rset_soon_given_up)
    server.fail("RCPT", reply="450 4.2.0 Mailbox busy")
    server.fail("RSET", "hang")
    first, *rest = send_all(transport_for(server), people(4))
    assert type(first) is TemporaryDeliveryError  # that message's own answer
    assert all(type(o) is TransportUnavailable for o in rest)
    assert "no answer" in str(rest[0]) and "(RSET)" in str(rest[0])
    assert server.connections == 1 and server.verbs().count("MAIL") == 1


# ------------------------------------------------------------------ addresses and headers

BAD_RECIPIENTS = [
    "victim@example.com\nBcc: evil@example.com",
    "victim@example.com\r\nBcc: evil@example.com",
    "victim@example.com>\r\nRCPT TO:<evil@example.com",
    "victim@example.com\x00",
    "not an address",
    "",
    "Grace <grace@example.com>",
    "grace@@example.com",
]


@pytest.mark.parametrize("recipient", BAD_RECIPIENTS)
def test_a_bad_recipient_is_a_permanent_failure_and_nothing_is_sent(
    server: SmtpServer, recipient: str
) -> None:
    rendered = email_for("grace@example.com")
    out = dataclasses.replace(rendered, recipient=recipient, digest_id=17)
    with transport_for(server) as transport:
        with pytest.raises(BadAddress) as info:
            transport.send(out)
        transport.send(email_for("fine@example.com"))  # the batch goes on
    assert isinstance(info.value, PermanentDeliveryError)
    assert "not a valid email address" in str(info.value)
    assert "\n" not in str(info.value) and "\r" not in str(info.value)
    assert delivered(server) == ["fine@example.com"]
    assert server.verbs().count("RCPT") == 1


def test_a_header_with_a_line_feed_never_reaches_the_server(server: SmtpServer) -> None:
    """A message not made by `render_email`, with the lenient compat32 policy, which lets a
    line feed into a header (and writes it out as a new header line)."""
    message = EmailMessage(policy=policy.compat32)
    message["From"] = "digest@pw.example.org"
    message["To"] = "grace@example.com"
    message["X-Note"] = "hello\r\nBcc: evil@example.com"
    message.set_payload("hello\r\n")
    data = message.as_bytes(policy=policy.SMTP)
    assert b"\r\nBcc: evil" in data  # what would go out
    out = EmailOut(data.replace(b"hello\r\nBcc", b"hello\nBcc"), "grace@example.com")
    with transport_for(server) as transport:
        with pytest.raises(PermanentDeliveryError) as info:
            transport.send(out)
        del message["X-Note"]
        transport.send(EmailOut.of(message, "grace@example.com"))  # without it, it goes
    assert "X-Note" in str(info.value)
    assert delivered(server) == ["grace@example.com"]
    assert "evil" not in server.messages[0].data.decode()


# ------------------------------------------------------------------ secrets


def _plain(login: str, password: str) -> str:
    return base64.b64encode(f"\0{login}\0{password}".encode()).decode()


ECHOES: list[Callable[[str, str], str]] = [
    lambda login, password: f"535 5.7.8 Authentication failed for {login}:{password}",
    lambda login, password: f"535 5.7.8 Bad password {password.upper()}",
    lambda login, password: f"535 5.7.8 Rejected {base64.b64encode(password.encode()).decode()}",
    lambda login, password: f"535 5.7.8 Rejected AUTH PLAIN {_plain(login, password)}",
]


@pytest.mark.parametrize("echo", ECHOES)
def test_the_password_never_appears_even_when_the_server_echoes_it(
    echo: Callable[[str, str], str],
) -> None:
    wrong = "not  the password, hunter2"
    with smtp_server(users={USER: PASSWORD}, auth_failure_reply=echo) as server:
        transport = transport_for(server, password=wrong)
        (outcome,) = send_all(transport, people(1))
    assert isinstance(outcome, TransportUnavailable) and outcome.permanent
    assert "535" in str(outcome)
    text = f"{outcome} {outcome!r}"
    for form in (wrong, " ".join(wrong.split()), "hunter2", "HUNTER2"):
        assert form not in text
    assert base64.b64encode(wrong.encode()).decode() not in text
    assert _plain(USER, wrong) not in text


def test_tls_spoken_to_a_plain_text_port_is_a_configuration_problem() -> None:
    with smtp_server(tls="none") as server:
        transport = transport_for(server, security="tls", username=None, password=None)
        outcomes = send_all(transport, people(2))
    assert all(isinstance(o, TransportUnavailable) and o.permanent for o in outcomes), outcomes
    assert "TLS failed" in str(outcomes[0])
    assert server.connections == 1


def test_implicit_tls_to_a_starttls_port_says_to_set_starttls() -> None:
    """security = "tls" with port 587 (which speaks plain text first, then STARTTLS): the error
    was "TLS failed (WRONG_VERSION_NUMBER): check the security setting and the port", which
    named neither the value to set nor the port that would do."""
    with smtp_server(users={USER: PASSWORD}) as server:
        (outcome,) = send_all(transport_for(server, security="tls"), people(1))
    assert isinstance(outcome, TransportUnavailable) and outcome.permanent
    assert "does not speak TLS from the first byte" in str(outcome)
    assert "set security = 'starttls'" in str(outcome) and "465" in str(outcome)


def test_starttls_to_the_implicit_tls_port_says_to_set_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Port 465 with the default security ("starttls"): the server waits for our TLS
    handshake, we for its greeting. It said "no answer within 30s (connect)" and was not a
    configuration problem: every digest waited a day, then was given up."""
    with smtp_server(tls="implicit") as server:
        monkeypatch.setattr(smtp, "IMPLICIT_TLS_PORT", server.port, raising=False)  # not 465
        transport = transport_for(server, timeout=HANG_TIMEOUT)
        (outcome,) = send_all(transport, people(1))
    assert isinstance(outcome, TransportUnavailable) and outcome.permanent
    assert f"port {server.port} speaks TLS from the first byte; set security = 'tls'" in str(
        outcome
    )


def test_implicit_tls_on_another_port_with_starttls_says_what_to_set() -> None:
    """Implicit TLS on a port other than 465 (a relay's 2465) with security = "starttls": the
    error said "no answer within 0.5s (connect)", nothing about the setting to change."""
    with smtp_server(tls="implicit") as server:
        transport = transport_for(server, timeout=HANG_TIMEOUT)
        (outcome,) = send_all(transport, people(1))
    assert isinstance(outcome, TransportUnavailable)
    assert "if this port speaks TLS from the first byte" in str(outcome)
    assert "set security = 'tls'" in str(outcome)


def test_a_certificate_that_does_not_verify_says_what_to_set(server: SmtpServer) -> None:
    """A self-signed or private CA's certificate (a lab's own relay): "TLS certificate
    verification failed (unable to get local issuer certificate)" named no setting."""
    transport = transport_for(server, ssl_context=None)  # system CAs: the test CA is unknown
    (outcome,) = send_all(transport, people(1))
    assert isinstance(outcome, TransportUnavailable) and outcome.permanent
    assert "set email.ca_file to the PEM file of the CA that signed it" in str(outcome)


def test_an_expired_certificate_is_not_blamed_on_a_missing_ca() -> None:
    """cdeb232 told every certificate that does not verify but a name mismatch to set
    email.ca_file: an expired one (its CA known) too, which no CA file mends."""
    with smtp_server(users={USER: PASSWORD}, cert_not_after=datetime(2020, 1, 1)) as server:
        (outcome,) = send_all(transport_for(server), people(1))
    assert isinstance(outcome, TransportUnavailable) and outcome.permanent
    assert "certificate has expired" in str(outcome)
    assert "renew the server's certificate, or set this machine's clock right" in str(outcome)
    assert "email.ca_file" not in str(outcome)


@pytest.mark.parametrize("port", [2465, 465])
def test_no_tcp_connection_at_all_is_not_taken_for_implicit_tls(
    monkeypatch: pytest.MonkeyPatch, port: int
) -> None:
    """A host or port a firewall drops (no TCP connection within the timeout) was told, after
    cdeb232, to set security = 'tls' if the port speaks TLS at once (on 465: that it does,
    as a configuration error): no server had answered at all."""

    def dropped(*args: object, **kwargs: object) -> None:
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", dropped)  # as smtplib connects
    transport = SmtpTransport("192.0.2.1", port, security="starttls", timeout=HANG_TIMEOUT)
    (outcome,) = send_all(transport, people(1))
    assert isinstance(outcome, TransportUnavailable) and not outcome.permanent
    assert "security = 'tls'" not in str(outcome)
    assert "check email.host and email.port" in str(outcome)


def test_a_login_beyond_ascii_is_sent_in_utf8() -> None:
    """A password with an umlaut (set on the console's configuration page, which took it) made
    smtplib raise UnicodeEncodeError at AUTH, no DeliveryError: each digest failed with
    "'ascii' codec can't encode character" until it was given up. SASL PLAIN is UTF-8 (RFC
    4616): the login is sent so, and a wrong one is still a login refused."""
    with smtp_server(users={"läb": "Passwört-1"}) as srv:
        right = transport_for(srv, username="läb", password="Passwört-1")
        assert send_all(right, people(1)) == [None]
        assert delivered(srv) == ["reader0@example.com"]
        wrong = send_all(transport_for(srv, username="läb", password="Passwort-1"), people(1))
        assert isinstance(wrong[0], TransportUnavailable) and "535" in str(wrong[0])
        assert "Passwort" not in str(wrong[0])

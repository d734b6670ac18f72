"""Transports against real local servers (aiosmtpd + trustme, a local HTTP server)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import date
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from notifications.render import render_slack
from notifications.transports.base import (
    EmailOut,
    PermanentDeliveryError,
    TemporaryDeliveryError,
    TransportUnavailable,
    redact_url,
)
from notifications.transports.file import FileTransport
from notifications.transports.smtp import SmtpTransport
from tests.notifications.factories import (
    EVIL_TITLE,
    PASSWORD,
    SECRET_PATH,
    USER,
    FakeClock,
    assert_secret_hidden,
    email_for,
    make_digest,
    make_pick,
    slack_out,
    slack_transport,
    transport_for,
)
from tests.servers import (
    CLOSED_PORT,
    SmtpServer,
    closed_port_url,
    http_server,
    smtp_server,
)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server(
        users={USER: PASSWORD},
        rcpt_replies={
            "later@example.com": "451 4.3.0 Mailbox busy, try again later",
            "nobody@example.com": "550 5.1.1 No such user",
        },
    ) as server:
        yield server


# ------------------------------------------------------------------------------ SMTP


def test_smtp_batch_uses_one_starttls_connection(smtp: SmtpServer) -> None:
    recipients = [f"user{i}@example.com" for i in range(3)]
    with transport_for(smtp, password=SecretStr(PASSWORD)) as transport:
        for rcpt in recipients:
            transport.send(email_for(rcpt))
        assert transport.connections_opened == 1
    assert len(smtp.messages) == 3
    assert smtp.connections == 1
    assert smtp.ehlos == 2  # before and after STARTTLS, once
    assert smtp.auth_attempts == [USER]
    assert [m.rcpt_tos for m in smtp.messages] == [(r,) for r in recipients]
    assert {m.connection for m in smtp.messages} == {1}
    received = smtp.messages[0].message
    assert received["Message-ID"] == "<paperwire-digest-17-2026-11-28-c5@pw.example.org>"
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received.get_content_type() == "multipart/alternative"


def test_smtp_connection_is_lazy(smtp: SmtpServer) -> None:
    with transport_for(smtp):
        pass
    assert smtp.connections == 0


def test_smtp_wrong_password_is_the_transports_fault_and_secret(smtp: SmtpServer) -> None:
    wrong = "hunter2-not-the-password"
    transport = transport_for(smtp, password=wrong)
    with pytest.raises(TransportUnavailable) as info, transport:
        transport.send(email_for("user@example.com"))
    assert "535" in str(info.value) and info.value.permanent
    for text in (str(info.value), repr(info.value), repr(transport)):
        assert wrong not in text and PASSWORD not in text
    assert "password='***'" in repr(transport)
    assert smtp.messages == []


def test_smtp_rcpt_451_is_temporary_and_550_permanent(smtp: SmtpServer) -> None:
    with transport_for(smtp) as transport:
        with pytest.raises(TemporaryDeliveryError) as temporary:
            transport.send(email_for("later@example.com"))
        assert "451" in str(temporary.value)
        with pytest.raises(PermanentDeliveryError) as permanent:
            transport.send(email_for("nobody@example.com"))
        assert "550" in str(permanent.value)
        transport.send(email_for("fine@example.com"))  # the connection is still usable
    assert [m.rcpt_tos for m in smtp.messages] == [("fine@example.com",)]
    assert smtp.connections == 1


def test_smtp_rejected_data_is_permanent() -> None:
    with smtp_server(users={USER: PASSWORD}, data_reply="554 5.7.1 Looks like spam") as server:
        transport = transport_for(server)
        with pytest.raises(PermanentDeliveryError, match="554"), transport:
            transport.send(email_for("user@example.com"))
        assert server.messages == []


def test_smtp_untrusted_certificate_fails(smtp: SmtpServer) -> None:
    transport = transport_for(smtp, ssl_context=None)  # system CAs: the test CA is unknown
    with pytest.raises(TransportUnavailable, match="certificate verif"), transport:
        transport.send(email_for("user@example.com"))
    assert smtp.messages == []
    assert smtp.auth_attempts == []  # never sent credentials over the untrusted channel


def test_smtp_reconnects_once_when_the_server_dropped_the_connection(smtp: SmtpServer) -> None:
    with transport_for(smtp) as transport:
        transport.send(email_for("one@example.com"))
        smtp.disconnect_all()
        transport.send(email_for("two@example.com"))
        assert transport.connections_opened == 2
    assert [m.connection for m in smtp.messages] == [1, 2]


def test_smtp_implicit_tls() -> None:
    with smtp_server(users={USER: PASSWORD}, tls="implicit") as server:
        with transport_for(server, security="tls") as transport:
            transport.send(email_for("user@example.com"))
        assert len(server.messages) == 1 and server.connections == 1


def test_smtp_starttls_required_but_not_offered_is_permanent() -> None:
    with smtp_server(tls="none") as server:
        transport = transport_for(server, username=None, password=None)
        with pytest.raises(TransportUnavailable, match="STARTTLS") as info, transport:
            transport.send(email_for("user@example.com"))
        assert info.value.permanent
        assert server.messages == []


def test_smtp_plain_relay_without_auth() -> None:
    with smtp_server(tls="none") as server:
        with transport_for(server, security="none", username=None, password=None) as t:
            t.send(email_for("user@example.com"))
        assert len(server.messages) == 1


def test_smtp_connection_refused_is_temporary() -> None:
    transport = SmtpTransport("127.0.0.1", CLOSED_PORT, security="none", timeout=2.0)
    with pytest.raises(TemporaryDeliveryError, match="cannot connect"), transport:
        transport.send(email_for("user@example.com"))


def test_smtp_refuses_slack_messages(smtp: SmtpServer) -> None:
    slack = render_slack(make_digest(), webhook_url="https://hooks.slack.com/x")
    with pytest.raises(TypeError), transport_for(smtp) as transport:
        transport.send(slack)


# ------------------------------------------------------------------------------ Slack


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


def test_slack_posts_every_payload_as_json_one_per_second(
    http: httpx.Client, clock: FakeClock
) -> None:
    with http_server() as server:
        out = slack_out(server.url_for(SECRET_PATH), picks=60)
        assert len(out.payloads) >= 3
        with slack_transport(http, clock) as transport:
            transport.send(out)
        assert [r.path for r in server.requests] == [SECRET_PATH] * len(out.payloads)
        assert [r.json() for r in server.requests] == list(out.payloads)
        assert all(r.method == "POST" for r in server.requests)
        assert server.requests[0].headers["content-type"].startswith("application/json")
    # The fake clock never moves on its own: each payload after the first waits 1 s.
    assert clock.sleeps == [1.0] * (len(out.payloads) - 1)


def test_slack_spacing_is_per_webhook_url(http: httpx.Client, clock: FakeClock) -> None:
    with http_server() as server:
        transport = slack_transport(http, clock)
        first, second = server.url_for("/hook/a"), server.url_for("/hook/b")
        transport.send(slack_out(first, picks=1))
        transport.send(slack_out(second, picks=1))
        assert clock.sleeps == []  # different webhooks do not wait for each other
        clock.now += 0.25
        transport.send(slack_out(first, picks=1))
        assert clock.sleeps == [pytest.approx(0.75)]
        clock.now += 5
        transport.send(slack_out(first, picks=1))
        assert len(clock.sleeps) == 1  # long enough ago: no wait
        assert len(server.requests) == 4


def test_slack_429_honours_retry_after(http: httpx.Client, clock: FakeClock) -> None:
    with http_server() as server:
        server.reply(429, "rate_limited", {"Retry-After": "1"})
        server.reply(200, "ok")
        slack_transport(http, clock).send(slack_out(server.url_for(SECRET_PATH), picks=1))
        assert len(server.requests) == 2
        assert server.requests[0].body == server.requests[1].body
    assert clock.sleeps == [1.0]


def test_slack_429_gives_up_after_a_bound(http: httpx.Client, clock: FakeClock) -> None:
    with http_server() as server:
        for _ in range(10):
            server.reply(429, "rate_limited", {"Retry-After": "2"})
        transport = slack_transport(http, clock)
        with pytest.raises(TemporaryDeliveryError) as info:
            transport.send(slack_out(server.url_for(SECRET_PATH), picks=1))
        assert info.value.retry_after == 2.0
        assert len(server.requests) == transport.max_429_retries + 1
    assert clock.sleeps == [2.0] * transport.max_429_retries
    assert_secret_hidden(info.value)


def test_slack_429_with_long_retry_after_is_not_slept_through(
    http: httpx.Client, clock: FakeClock
) -> None:
    with http_server() as server:
        server.reply(429, "rate_limited", {"Retry-After": "600"})
        with pytest.raises(TemporaryDeliveryError) as info:
            slack_transport(http, clock).send(slack_out(server.url_for(SECRET_PATH), picks=1))
        assert info.value.retry_after == 600.0
        assert len(server.requests) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, "invalid_payload"),
        (400, "no_text"),
        (403, "action_prohibited"),
        (403, "invalid_token"),
        (404, "channel_not_found"),
        (404, "no_service"),
        (410, "channel_is_archived"),
    ],
)
def test_slack_client_errors_are_permanent(
    http: httpx.Client, clock: FakeClock, status: int, body: str
) -> None:
    with http_server() as server:
        server.reply(status, body)
        with pytest.raises(PermanentDeliveryError) as info:
            slack_transport(http, clock).send(slack_out(server.url_for(SECRET_PATH)))
        assert len(server.requests) == 1  # no retry, and the next payload is not sent
    assert body in str(info.value) and str(status) in str(info.value)
    assert_secret_hidden(info.value)


def test_slack_server_error_is_temporary(http: httpx.Client, clock: FakeClock) -> None:
    with http_server() as server:
        server.reply(500, "internal error")
        with pytest.raises(TemporaryDeliveryError) as info:
            slack_transport(http, clock).send(slack_out(server.url_for(SECRET_PATH)))
        assert len(server.requests) == 1
    assert "500" in str(info.value)
    assert_secret_hidden(info.value)


def test_slack_network_error_is_temporary(http: httpx.Client, clock: FakeClock) -> None:
    url = closed_port_url(SECRET_PATH)
    with pytest.raises(TemporaryDeliveryError) as info:
        slack_transport(http, clock).send(slack_out(url))
    assert_secret_hidden(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_slack_logs_never_show_the_webhook(
    http: httpx.Client, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="notifications")
    with http_server() as server:
        server.reply(429, "rate_limited", {"Retry-After": "1"})
        server.reply(200, "ok")
        server.reply(418, "teapot")
        transport = slack_transport(http, clock)
        with pytest.raises(PermanentDeliveryError):
            transport.send(slack_out(server.url_for(SECRET_PATH), picks=60))
    ours = [r for r in caplog.records if r.name.startswith("notifications")]
    assert ours
    assert all("SECRET" not in r.getMessage() for r in ours)


def test_redact_url() -> None:
    assert redact_url("https://hooks.slack.com/services/T/B/X") == "https://hooks.slack.com/…"
    assert redact_url("not a url") == "(url)/…"
    assert redact_url("https://[bad") == "(url)/…"


def test_slack_refuses_email(http: httpx.Client, clock: FakeClock) -> None:
    with pytest.raises(TypeError):
        slack_transport(http, clock).send(email_for("user@example.com"))


# ------------------------------------------------------------------------------ file


def test_file_transport_writes_email_and_html_preview(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    digest = make_digest((make_pick(1, title=EVIL_TITLE), make_pick(2)))
    with FileTransport(outbox) as transport:
        transport.send(email_for("grace@example.com", digest))
    eml = outbox / "2026-11-28-17-grace@example.com.eml"
    html = outbox / "2026-11-28-17-grace@example.com.html"
    assert transport.written == [eml, html]
    parsed = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
    assert isinstance(parsed, EmailMessage)
    assert parsed["Message-ID"] == "<paperwire-digest-17-2026-11-28-c5@pw.example.org>"
    assert parsed.get_body(preferencelist=("plain",)) is not None
    preview = html.read_text("utf-8")
    assert preview.startswith("<!DOCTYPE html>")
    assert "&lt;script&gt;" in preview and "<script>" not in preview
    assert sorted(p.name for p in outbox.iterdir()) == sorted([eml.name, html.name])


def test_file_transport_writes_slack_payloads_without_the_webhook(tmp_path: Path) -> None:
    out = slack_out("https://hooks.slack.com" + SECRET_PATH, picks=60)
    transport = FileTransport(tmp_path)
    transport.send(out)
    (path,) = transport.written
    assert path.name == "2026-11-28-17-slack.json"
    text = path.read_text("utf-8")
    assert json.loads(text) == list(out.payloads)
    assert "SECRET" not in text


def test_file_transport_names_are_safe(tmp_path: Path) -> None:
    rendered = email_for("grace@example.com")
    bare = EmailOut(rendered.data, recipient="../../etc/passwd")  # no id/period
    transport = FileTransport(tmp_path / "box")
    transport.send(bare)
    assert [p.name for p in transport.written] == [
        "2026-11-28-17-etc_passwd.eml",
        "2026-11-28-17-etc_passwd.html",
    ]
    assert all(p.parent == tmp_path / "box" for p in transport.written)


def test_file_transport_overwrites_on_resend(tmp_path: Path) -> None:
    transport = FileTransport(tmp_path)
    transport.send(email_for("a@example.com"))
    transport.send(email_for("a@example.com", make_digest(period=date(2026, 11, 28))))
    assert len({*transport.written}) == 2 and len(list(tmp_path.iterdir())) == 2

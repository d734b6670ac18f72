"""Addresses beyond ASCII before the @ (`jörg@bücher.example`, `用户@例子.广告`): taken when a
subscriber is added, sent with SMTPUTF8 (RFC 6531) when the server offers it, and refused for
that message alone, saying why, when it does not."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_string, policy

import pytest

from daemon.channels import parse_email
from notifications.addresses import email_address
from notifications.notice import render_notice
from notifications.transports.base import PermanentDeliveryError
from tests.notifications.factories import PASSWORD, USER, email_for, transport_for
from tests.servers import smtp_server

JORG = "jörg@bücher.example"
CJK = "用户@例子.广告"


def test_an_address_beyond_ascii_is_taken_when_added() -> None:
    """A lab member `jörg@bücher.example` could not be added at all ("Internationalized
    characters before the @-sign are not supported"), whatever the lab's mail server speaks."""
    assert parse_email(f"Jörg <{JORG}>") == (JORG, "Jörg")
    assert parse_email(CJK)[0] == CJK
    # sent with the domain in ASCII, the part before the @ as it is
    assert email_address(JORG) == "jörg@xn--bcher-kva.example"
    assert email_address(CJK).startswith("用户@xn--")


def test_it_goes_out_with_smtputf8_when_the_server_offers_it() -> None:
    with (
        smtp_server(users={USER: PASSWORD}, smtputf8=True) as server,
        transport_for(server) as smtp,
    ):
        for address in (JORG, CJK, "ada@lab.example"):
            smtp.send(email_for(address))
    jorg, cjk, ada = server.messages
    assert jorg.rcpt_tos == ("jörg@xn--bcher-kva.example",)
    assert "SMTPUTF8" in jorg.mail_options and "SMTPUTF8" in cjk.mail_options
    assert "SMTPUTF8" not in ada.mail_options  # plain addresses as before
    # the address in the To header as it is, in UTF-8 (RFC 6532), as mail clients read it
    for mail, username in ((jorg, "jörg"), (cjk, "用户")):
        read = message_from_string(mail.data.decode("utf-8"), policy=policy.default)
        assert read["To"].addresses[0].username == username
        assert read["To"].addresses[0].display_name == "Grace"
    assert b"\r\nTo: Grace <j\xc3\xb6rg@xn--bcher-kva.example>\r\n" in jorg.data
    assert ada.data.isascii()  # plain addresses as before


def test_without_smtputf8_that_message_alone_fails_and_says_why() -> None:
    with (
        smtp_server(users={USER: PASSWORD}) as server,
        transport_for(server) as smtp,
    ):  # aiosmtpd's default: no SMTPUTF8
        smtp.send(email_for("ada@lab.example"))
        with pytest.raises(PermanentDeliveryError) as info:
            smtp.send(email_for(JORG))
        smtp.send(email_for("bo@lab.example"))
    message = str(info.value)
    assert "'jörg@xn--bcher-kva.example'" in message and "SMTPUTF8" in message
    assert "ASCII" in message  # what to do: another address, or a server that speaks it
    assert [m.rcpt_tos for m in server.messages] == [("ada@lab.example",), ("bo@lab.example",)]
    assert server.connections == 1  # the session went on


def test_the_subscribers_own_link_goes_to_such_an_address_as_it_is() -> None:
    """The mail of /manage wrote the address as `=?utf-8?q?j=C3=B6rg?=@…` (an encoded word,
    which no address may be), and the link reached nobody."""
    out = render_notice(
        "Your link",
        "https://pw.example.org/me/…",
        sender="digest@pw.example.org",
        recipient=JORG,
        message_id_domain="pw.example.org",
        now=datetime(2026, 11, 30, tzinfo=UTC),
    )
    assert b"\r\nTo: j\xc3\xb6rg@xn--bcher-kva.example\r\n" in out.data
    with (
        smtp_server(users={USER: PASSWORD}, smtputf8=True) as server,
        transport_for(server) as smtp,
    ):
        smtp.send(out)
    assert server.messages[0].rcpt_tos == ("jörg@xn--bcher-kva.example",)

"""Checked addresses: the plain ones recognised at once are exactly what email-validator says."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from notifications.addresses import _plain_address, email_address


def validated(address: str) -> str | None:
    """What email-validator makes of `address` with `email_address`'s options (None: refused)."""
    try:
        return validate_email(
            address,
            check_deliverability=False,
            globally_deliverable=False,
            allow_smtputf8=False,
            allow_display_name=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
        ).ascii_email
    except EmailNotValidError:
        return None


PIECES = ["a", "z", "0", "9", "x", "n", "xn", "-", "--", "_", "+", ".", "..", "@", "A", "é",
          "test", "local", "localhost", "arpa", "onion", "postmaster", "Info", "com", "org",
          "a" * 30, "b" * 61, "c" * 62, "d" * 63, " ", "\n"]  # fmt: skip


@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=14))
@settings(max_examples=3000, deadline=None)
def test_a_plain_address_is_one_email_validator_accepts_unchanged(pieces: list[str]) -> None:
    address = "".join(pieces)
    if _plain_address(address):
        assert validated(address) == address


@pytest.mark.parametrize(
    "address",
    [
        "grace@example.com",
        "ada.lovelace+digest@lab.example.org",
        "a_b-c@x-1.example.co",
        "postmaster@example.org",
        f"{'a' * 64}@example.org",
        f"a@{'b' * 63}.example.org",
        f"a@{'b.' * 124}org",  # 254 characters in all
    ],
)
def test_common_addresses_are_plain(address: str) -> None:
    assert _plain_address(address) and email_address(address) == address == validated(address)


@pytest.mark.parametrize(
    "address",
    [
        f"{'a' * 65}@example.org",  # too long before the @
        f"a@{'b' * 64}.example.org",  # a label too long
        f"a@{'b.' * 125}org",  # 256 characters
        "Grace@example.org",  # upper case: email-validator decides
        "grace@Example.org",
        "grace@xn--bcher-kva.example",  # Punycode
        "grace@ab--cd.example",
        "grace@example.test",  # special-use
        "grace@host.localhost",
        ".grace@example.org",
        "gr..ace@example.org",
        "grace@-example.org",
        "grace@example.123",
        "grace@mailhost",  # a local domain without a dot
    ],
)
def test_anything_else_goes_to_email_validator(address: str) -> None:
    assert not _plain_address(address)
    expected = validated(address)
    if expected is None:
        with pytest.raises(ValueError):
            email_address(address)
    else:
        assert email_address(address) == expected

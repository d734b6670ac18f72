"""Addresses are checked by email-validator; the render and the send of one message share the
check (a cache of the last addresses), and a bad address is refused every time."""

from __future__ import annotations

import pytest

from notifications import addresses
from notifications.transports.base import BadAddress


def test_an_address_checked_again_is_not_validated_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    from email_validator import validate_email as validate

    def counted(address: str, **kwargs: object) -> object:
        calls.append(address)
        return validate(address, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(addresses, "validate_email", counted)
    addresses.email_address.cache_clear()
    assert addresses.email_address("Ada@Bücher.example") == "Ada@xn--bcher-kva.example"
    assert addresses.email_address("Ada@Bücher.example") == "Ada@xn--bcher-kva.example"
    assert calls == ["Ada@Bücher.example"]


def test_a_bad_address_is_refused_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    addresses.email_address.cache_clear()
    for _ in range(2):
        with pytest.raises(BadAddress, match="'ada@localhost' is not a valid email address"):
            addresses.email_address("ada@localhost")

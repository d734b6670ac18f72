"""One mailbox, as the email package reads a From header: the rule the settings check
`email.sender` by and the SMTP transport sends by; and a domain in the ASCII form a header
needs. The standard library only (`idna` for a domain beyond ASCII alone): the settings import
it at every command's start."""

from __future__ import annotations

import re
from email import errors, policy
from email.headerregistry import Address, AddressHeader
from functools import lru_cache

# a domain name as a header takes it (a Message-ID's right-hand side, the sender's domain):
# labels of letters, digits and hyphens (neither first nor last), at most 63 characters each
_DOMAIN_NAME = re.compile(r"(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                          r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")  # fmt: skip


def address_header(name: str, value: object) -> AddressHeader | None:
    """A header value as parsed by the email package (whatever the message's policy)."""
    if isinstance(value, AddressHeader):
        return value
    try:
        parsed = policy.SMTP.header_factory(name, str(value))
    except (ValueError, TypeError, IndexError, errors.MessageError):  # "a@": IndexError
        return None
    return parsed if isinstance(parsed, AddressHeader) else None


def one_mailbox(value: object) -> Address | None:
    """The one address of a From header's value, with a user and a domain; else None."""
    if isinstance(value, str):
        return _one_mailbox(value)
    return _only_mailbox(value)


@lru_cache(maxsize=64)  # the configured sender, asked for its domain at every message made
def _one_mailbox(value: str) -> Address | None:
    return _only_mailbox(value)


def _only_mailbox(value: object) -> Address | None:
    header = address_header("From", value)
    found = header.addresses if header is not None else ()
    return found[0] if len(found) == 1 and found[0].username and found[0].domain else None


@lru_cache(maxsize=64)  # the configured sender's and Message-ID's domains
def ascii_domain(domain: str) -> str:
    """A domain as it may go into a header (a Message-ID's, the sender's): its ASCII form
    (IDNA, ``bücher.example`` → ``xn--bcher-kva.example``); as it is when it is ASCII or has
    no such form."""
    if domain.isascii():
        return domain
    import idna  # only for a domain beyond ASCII: not at every command's start

    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        return domain


def is_domain_name(domain: str) -> bool:
    """Whether `domain` is a domain name, beyond ASCII too (as `ascii_domain` writes it)."""
    return _DOMAIN_NAME.fullmatch(ascii_domain(domain)) is not None


@lru_cache(maxsize=16)  # the configured sender: the same in every message
def ascii_mailbox(value: str) -> str:
    """A From value (``Name <local@domain>``, a bare address, ``local@domain (Name)``) as one
    mailbox with its domain in ASCII form (`ascii_domain`); any other value as it is."""
    if value.isascii():
        return value
    mailbox = one_mailbox(value)
    if mailbox is None or mailbox.domain.isascii():
        return value
    return str(Address(mailbox.display_name, mailbox.username, ascii_domain(mailbox.domain)))

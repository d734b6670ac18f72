"""One mailbox, as the email package reads a From header: the rule the settings check
`email.sender` by and the SMTP transport sends by. The standard library only: the settings
import it at every command's start."""

from __future__ import annotations

from email import errors, policy
from email.headerregistry import Address, AddressHeader


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
    header = address_header("From", value)
    found = header.addresses if header is not None else ()
    return found[0] if len(found) == 1 and found[0].username and found[0].domain else None

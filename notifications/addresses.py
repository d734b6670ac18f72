"""What may go into a message header or an SMTP command: checked email addresses and header
text without control characters.

An address is checked with `email-validator` (syntax only: no DNS at send time), the same
check at rendering (`render_email`) and at sending (`SmtpTransport.send`). A bad address is
the message's own fault and never gets better by waiting: :class:`BadAddress`, a permanent
failure. The common plain address (``ada.lovelace@lab.example.org``) is recognised at once
(`_plain_address`); every other one goes through `email-validator`.
"""

from __future__ import annotations

import re

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from notifications.transports.base import BadAddress

# C0 and C1 control characters, DEL, and the Unicode line and paragraph separators: any of
# them in a header could start a new line in some reader (CR, LF, NEL, U+2028...).
HEADER_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def header_text(text: str) -> str:
    """``text`` fit for a header value: every control character becomes a space, runs of
    spaces one space, and the ends are stripped."""
    return " ".join(HEADER_UNSAFE.sub(" ", text).split())


# A subset of what `email-validator` accepts (with the options below) and gives back unchanged:
# a lower-case dot-atom of at most 64 characters before the "@"; lower-case ASCII labels of at
# most 63 characters, none with "--" (no Punycode, no R-LDH label), a letters-only top-level
# domain; at most 254 characters in all. Special-use domains are left to email-validator.
_PLAIN_ADDRESS = re.compile(
    r"[a-z0-9_+-]{1,64}(?:\.[a-z0-9_+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{1,63}"
)
_SPECIAL_USE = re.compile(rf"\.(?:{'|'.join(map(re.escape, SPECIAL_USE_DOMAIN_NAMES))})\Z")


def _plain_address(address: str) -> bool:
    """Whether `address` is one `email_address` would return as it is, known without
    `email-validator` (which took a tenth of rendering a digest email): see `_PLAIN_ADDRESS`."""
    return (
        len(address) <= 254
        and _PLAIN_ADDRESS.fullmatch(address) is not None
        and address.index("@") <= 64
        and "--" not in address[address.index("@") :]
        and _SPECIAL_USE.search(address) is None
    )


def email_address(address: str) -> str:
    """``address`` as it may go into a header and an SMTP command (the domain in ASCII, in
    lower case), or :class:`BadAddress` saying what is wrong with it.

    A bare address only (``grace@example.org``, no display name), ASCII before the ``@``
    (we do not send SMTPUTF8); local domains without a dot (``root@mailhost``) are accepted,
    special-use ones (``localhost``, ``.local``, ``.test``, ``.invalid``) are not.
    """
    if _plain_address(address):
        return address
    try:
        checked = validate_email(
            address,
            check_deliverability=False,  # no DNS here: the server decides deliverability
            globally_deliverable=False,  # a self-hosted relay may deliver to local domains
            allow_smtputf8=False,
            allow_display_name=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
        )
    except EmailNotValidError as exc:
        raise BadAddress(f"{shown(address)} is not a valid email address: {exc}") from None
    ascii_address = checked.ascii_email
    if ascii_address is None:  # cannot happen with allow_smtputf8=False; never send it
        raise BadAddress(f"{shown(address)} needs SMTPUTF8, which is not supported")
    return ascii_address


def shown(address: str, limit: int = 80) -> str:
    """An address as it may appear in an error or a log: quoted, control characters escaped
    (``'victim@example.com\\nBcc: …'``), cut at ``limit`` characters."""
    text = repr(address[:limit])
    return text if len(address) <= limit else text[:-1] + "…" + text[-1]

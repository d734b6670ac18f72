"""What may go into a message header or an SMTP command: checked email addresses and header
text without control characters.

An address is checked with `email-validator` (syntax only: no DNS at send time), the same
check at rendering (`render_email`) and at sending (`SmtpTransport.send`). A bad address is
the message's own fault and never gets better by waiting: :class:`BadAddress`, a permanent
failure.
"""

from __future__ import annotations

import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from notifications.transports.base import BadAddress

# C0 and C1 control characters, DEL, and the Unicode line and paragraph separators: any of
# them in a header could start a new line in some reader (CR, LF, NEL, U+2028...).
HEADER_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def header_text(text: str) -> str:
    """``text`` fit for a header value: every control character becomes a space, runs of
    spaces one space, and the ends are stripped."""
    return " ".join(HEADER_UNSAFE.sub(" ", text).split())


@lru_cache(maxsize=1024)  # the render and the send of one message check the same address
def email_address(address: str) -> str:
    """``address`` as it may go into a header and an SMTP command (the domain in ASCII, in
    lower case), or :class:`BadAddress` saying what is wrong with it.

    A bare address only (``grace@example.org``, no display name). The part before the ``@``
    may go beyond ASCII (``jörg@bücher.example`` → ``jörg@xn--bcher-kva.example``): such a
    message needs a server that speaks SMTPUTF8 (`needs_smtputf8`; the SMTP transport says so
    when it does not). Local domains without a dot (``root@mailhost``) are accepted,
    special-use ones (``localhost``, ``.local``, ``.test``, ``.invalid``) are not. The last
    addresses checked are remembered (a bad one is checked again each time).
    """
    try:
        checked = validate_email(
            address,
            check_deliverability=False,  # no DNS here: the server decides deliverability
            globally_deliverable=False,  # a self-hosted relay may deliver to local domains
            allow_smtputf8=True,
            allow_display_name=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
        )
    except EmailNotValidError as exc:
        raise BadAddress(f"{shown(address)} is not a valid email address: {exc}") from None
    if checked.ascii_email is not None:
        return checked.ascii_email
    # SMTPUTF8 takes the domain in either form: the ASCII one is what every resolver knows
    return f"{checked.local_part}@{checked.ascii_domain}"


def needs_smtputf8(address: str) -> bool:
    """Whether mail to `address` (as `email_address` gives it) needs SMTPUTF8 (RFC 6531)."""
    return not address.isascii()


def shown(address: str, limit: int = 80) -> str:
    """An address as it may appear in an error or a log: quoted, control characters escaped
    (``'victim@example.com\\nBcc: …'``), cut at ``limit`` characters."""
    text = repr(address[:limit])
    return text if len(address) <= limit else text[:-1] + "…" + text[-1]

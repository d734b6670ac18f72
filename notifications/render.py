"""Digest → email (text + html) and Slack Block Kit payloads.

Feed text (titles, authors, abstracts, reasons) is untrusted plain text:

* the HTML template is rendered with autoescape on, so ``<script>`` arrives as text;
* only ``http``/``https`` URLs are ever turned into links (``javascript:`` and friends are
  dropped);
* Slack text escapes mrkdwn's control characters ``&``, ``<``, ``>`` and never lets a title
  break out of a ``<url|title>`` link;
* no header value carries a control character (CR, LF, NUL, U+2028...: they become spaces),
  and the recipient must be an email address (`email-validator`), else :class:`BadAddress`,
  a permanent failure of that message.
"""

from __future__ import annotations

import binascii
import functools
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.charset import Charset
from email.header import Header
from email.utils import format_datetime, formataddr, getaddresses
from functools import cache
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from notifications.addresses import HEADER_UNSAFE, email_address, header_text
from notifications.digest import Digest, Pick
from notifications.transports.base import EmailOut, SlackOut
from notifications.transports.slack import SlackWebhookTransport

__all__ = [
    "COLD_START_NOTE",
    "EMPTY_NOTE",
    "SLACK_MAX_BLOCKS",
    "SLACK_MAX_HEADER_CHARS",
    "SLACK_MAX_SECTION_CHARS",
    "environment",
    "message_id",
    "render_email",
    "render_slack",
    "safe_url",
    "shorten_abstract",
    "shorten_authors",
    "subject_for",
]

COLD_START_NOTE = (
    "You have no likes yet: these are today's most upvoted / newest papers. "
    "Like a few to personalise."
)
EMPTY_NOTE = "Nothing new for you today: no fresh papers matched your interests."
LIKE_LABEL = "👍 More like this"
DISLIKE_LABEL = "👎 Less like this"

ABSTRACT_CHARS = 400
MAX_AUTHORS = 3

# Slack's documented limits (https://api.slack.com/reference/block-kit/blocks), declared
# by the transport that has to live with them.
SLACK_MAX_BLOCKS = SlackWebhookTransport.max_blocks_per_message
SLACK_MAX_SECTION_CHARS = SlackWebhookTransport.max_section_chars
SLACK_MAX_HEADER_CHARS = SlackWebhookTransport.max_header_chars
SLACK_MAX_CONTEXT_ELEMENTS = 10
SLACK_MAX_FALLBACK_CHARS = 3000


# --------------------------------------------------------------------------- helpers


@cache
def environment() -> Environment:
    """The one Jinja2 environment (built on first use): autoescape on for ``.html``."""
    env = Environment(
        loader=PackageLoader("notifications"),
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm", "xml"),
            default_for_string=True,
            default=False,
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wrap"] = wrap
    return env


def _clean(text: str) -> str:
    """Collapse all whitespace (feeds are full of newlines and tabs) and strip."""
    return " ".join(text.split())


# The common case, at once: http(s), a plain host name, a port, a path of URL characters
# (the signed links of a digest, arXiv's pages). Anything else goes through urlsplit.
_PLAIN_URL = re.compile(
    r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~!$&'()*+,;=:@/%?-]*)?"
)


def safe_url(url: str) -> str | None:
    """Return ``url`` if it is an absolute http(s) URL, else None (never link it)."""
    if _PLAIN_URL.fullmatch(url) and url[url.index("/") + 2 :][:1] not in (".", "-", ""):
        return url
    return _checked_url(url)


@functools.lru_cache(maxsize=16384)  # a paper's link recurs in every digest that picks it
def _checked_url(url: str) -> str | None:
    candidate = url.strip()
    if not candidate or HEADER_UNSAFE.search(candidate) or " " in candidate:
        return None
    try:
        parts = urlsplit(candidate)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return candidate


def shorten_authors(authors: Iterable[str], limit: int = MAX_AUTHORS) -> str:
    """``"A, B, C et al."`` when there are more than ``limit`` authors."""
    names = [n for n in (_clean(a) for a in authors) if n]
    if len(names) > limit:
        return ", ".join(names[:limit]) + " et al."
    return ", ".join(names)


def shorten_abstract(text: str, limit: int = ABSTRACT_CHARS) -> str:
    """Cut at a word boundary to at most ``limit`` characters (plus "…")."""
    text = _clean(text)
    if len(text) <= limit:
        return text
    cut = text[: limit + 1]
    space = cut.rfind(" ")
    cut = cut[:space] if space >= limit // 2 else text[:limit]
    return cut.rstrip(" ,;:.-–—") + "…"


def _percent(score: float) -> str:
    return f"{round(max(0.0, min(1.0, score)) * 100)}%"


def _plural(n: int) -> str:
    return f"{n} pick" if n == 1 else f"{n} picks"


def subject_for(digest: Digest, subject_prefix: str = "") -> str:
    """``"Your papers for 2026-11-28 — 8 picks"`` (``"Trending papers ..."`` on cold start)."""
    day = digest.period.isoformat()
    if digest.is_empty:
        core = f"No new papers for {day}"
    elif digest.cold_start:
        core = f"Trending papers for {day} — {_plural(len(digest.picks))}"
    else:
        core = f"Your papers for {day} — {_plural(len(digest.picks))}"
    prefix = _clean(subject_prefix)
    return f"{prefix} {core}" if prefix else core


def message_id(digest: Digest, domain: str) -> str:
    """Stable Message-ID: the same digest always gets the same id (dedup on resend)."""
    return f"<paperwire-digest-{digest.digest_id}-{digest.period.isoformat()}@{domain}>"


@dataclass(frozen=True)
class _PickView:
    """What the templates see of one pick: cleaned, shortened, URLs vetted."""

    title: str
    url: str | None
    authors: str
    abstract: str
    score: str | None
    reason: str
    upvotes: int | None
    like_url: str | None
    dislike_url: str | None


def _view(pick: Pick, cold_start: bool) -> _PickView:
    return _PickView(
        title=_clean(pick.title) or "(untitled)",
        url=safe_url(pick.url),
        authors=shorten_authors(pick.authors),
        abstract=shorten_abstract(pick.abstract),
        score=None if cold_start else _percent(pick.score),
        reason=_clean(pick.reason),
        upvotes=pick.upvotes,
        like_url=safe_url(pick.like_url),
        dislike_url=safe_url(pick.dislike_url),
    )


def _context(digest: Digest) -> dict[str, Any]:
    product = _clean(digest.product_name) or "paperwire"
    return {
        "product": product,
        "recipient_name": _clean(digest.recipient_name),
        "period": digest.period.isoformat(),
        "picks": [_view(p, digest.cold_start) for p in digest.picks],
        "cold_start": digest.cold_start,
        "cold_start_note": COLD_START_NOTE,
        "empty_note": EMPTY_NOTE,
        "like_label": LIKE_LABEL,
        "dislike_label": DISLIKE_LABEL,
        "unsubscribe_url": safe_url(digest.unsubscribe_url),
        "manage_url": safe_url(digest.manage_url) if digest.manage_url else None,
    }


# --------------------------------------------------------------------------- email


def render_email(
    digest: Digest,
    *,
    sender: str,
    recipient: str,
    message_id_domain: str,
    subject_prefix: str = "",
    now: datetime | None = None,
) -> EmailOut:
    """Render a multipart/alternative (text/plain + text/html) digest email.

    ``now`` only sets the Date header (defaults to the current UTC time). A ``recipient``
    that is not an email address raises :class:`BadAddress` (a PermanentDeliveryError);
    every other header value is made safe (control characters become spaces).
    """
    address = email_address(recipient)
    context = _context(digest)
    context["subject"] = subject_for(digest, subject_prefix)
    env = environment()
    text = env.get_template("digest.txt").render(context)
    html = env.get_template("digest.html").render(context)

    domain = header_text(message_id_domain).replace(" ", "")
    # every header value encoded here (RFC 2047 for non-ASCII) and free of control
    # characters (`header_text`): the message is then written out directly (_mime)
    name = header_text(context["recipient_name"])
    headers = [
        ("Subject", _encoded(header_text(context["subject"]))),
        ("From", _mailbox(header_text(sender))),
        ("To", _named(name, address) if name else address),
        ("Date", format_datetime(now or datetime.now(UTC))),
        ("Message-ID", _encoded(header_text(message_id(digest, domain)))),
    ]
    one_click = safe_url(digest.one_click_unsubscribe_url)
    if one_click is not None:
        headers += [
            ("List-Unsubscribe", f"<{quote(one_click, safe=URL_SAFE)}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
    product = header_text(context["product"])
    list_label = re.sub(r"[^A-Za-z0-9-]", "-", product.lower()) or "paperwire"
    headers += [
        ("List-Id", f"{_encoded(product)} digest <{list_label}-digest.{domain}>"),
        ("Auto-Submitted", "auto-generated"),
        ("X-Auto-Response-Suppress", "All"),
    ]
    return EmailOut(
        data=_mime(headers, text, html),
        recipient=address,
        digest_id=digest.digest_id,
        period=digest.period,
        html=html,
    )


CRLF = b"\r\n"
URL_SAFE = ":/?#[]@!$&'()*+,;=%~"  # percent-encode only what a URL header may not hold


def _mime(headers: list[tuple[str, str]], text: str, html: str) -> bytes:
    """A multipart/alternative message (text/plain then text/html, UTF-8, quoted-printable)
    as it goes over SMTP. The boundary starts with "=_", which quoted-printable text can
    never hold (it writes "=" as "=3D"); binascii's C encoder keeps lines within 76
    characters. Written directly: the email package's generator took ten times as long."""
    boundary = f"=_paperwire_{secrets.token_hex(12)}".encode("ascii")
    lines = [f"{name}: {value}" for name, value in headers]
    head = "\r\n".join(
        [
            f'Content-Type: multipart/alternative; boundary="{boundary.decode()}"',
            "MIME-Version: 1.0",
            *lines,
        ]
    )
    out = [head.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii"), CRLF, CRLF]
    for subtype, body in ((b"plain", text), (b"html", html)):
        data = body.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
        out += [
            b"--", boundary, CRLF,
            b"Content-Type: text/", subtype, b'; charset="utf-8"', CRLF,
            b"Content-Transfer-Encoding: quoted-printable", CRLF, CRLF,
            binascii.b2a_qp(data, istext=True).replace(b"\n", CRLF), CRLF,
        ]  # fmt: skip
    out += [b"--", boundary, b"--", CRLF]
    return b"".join(out)


_UTF8 = Charset("utf-8")
ENCODED_WORD_MAX = 75  # RFC 2047: longer text is split over several encoded words


def _encoded(value: str) -> str:
    """A header value as it may be written: ASCII as it is, anything else RFC 2047-encoded
    (one encoded word when it fits, which is twenty times faster than `Header`'s splitting)."""
    if value.isascii():
        return value
    word = _UTF8.header_encode(value)
    return word if len(word) <= ENCODED_WORD_MAX else Header(value, "utf-8").encode()


def _mailbox(value: str) -> str:
    """The configured sender with its display name encoded; a value that is not one address
    is left as it is (the SMTP transport refuses it as a configuration problem)."""
    pairs = getaddresses([value])
    if len(pairs) == 1 and pairs[0][1] and pairs[0][1].isascii():
        return _named(*pairs[0])
    return _encoded(value)


def _named(name: str, address: str) -> str:
    """``Name <address>``, the name quoted as needed or RFC 2047-encoded (in words of at most
    75 characters) when it is not ASCII."""
    if name.isascii():
        return formataddr((name, address))
    return f"{_encoded(name)} <{address}>"


def wrap(text: str, width: int = 72, indent: str = "") -> str:
    """Plain text wrapped at `width` on spaces (a word longer than that keeps its own line),
    lines after the first starting with `indent` — textwrap's job for this one case, without
    its cost (the text digest wraps ten abstracts per message)."""
    words = text.split()
    if not words:
        return ""
    lines: list[str] = []
    line, size = [words[0]], len(words[0])
    for word in words[1:]:
        if size + 1 + len(word) > width:
            lines.append(" ".join(line))
            line, size = [word], len(word)
        else:
            line.append(word)
            size += 1 + len(word)
    lines.append(" ".join(line))
    return ("\n" + indent).join(lines)


# --------------------------------------------------------------------------- slack


def _mrkdwn_escape(text: str, limit: int | None = None) -> str:
    """Escape ``& < >`` for Slack; cut (with "…") so the *escaped* text fits ``limit``.

    Never cuts inside an entity such as ``&amp;``.
    """
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if limit is None or len(escaped) <= limit - 1:
        return escaped
    cut = escaped[: limit - 1]
    amp = cut.rfind("&")  # every "&" starts an entity now: keep it whole or leave it out
    if amp >= 0 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut.rstrip() + "…"


def _slack_url(url: str | None, limit: int = 1000) -> str | None:
    """A URL usable inside ``<url|label>``: http(s) only, no ``| < >``, not absurdly long."""
    if url is None:
        return None
    url = url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    return url if len(url) <= limit else None


def _slack_link(url: str | None, label: str, label_limit: int = 300) -> str:
    """``<url|label>`` with the label escaped and ``|`` removed; plain label if no URL."""
    text = _mrkdwn_escape(label.replace("|", " "), label_limit)
    target = _slack_url(url)
    return f"<{target}|{text}>" if target else text


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _pick_blocks(view: _PickView) -> list[dict[str, Any]]:
    head = [f"*{_slack_link(view.url, view.title)}*"]
    if view.authors:
        head.append(_mrkdwn_escape(view.authors, 300))
    abstract = [_mrkdwn_escape(view.abstract, 1000)] if view.abstract else []
    facts = []
    if view.score is not None:
        facts.append(f"*{view.score}* match")
    if view.reason:
        facts.append(_mrkdwn_escape(view.reason, 400))
    if view.upvotes:
        facts.append(f"▲ {view.upvotes} upvote{'s' if view.upvotes != 1 else ''}")
    tail = [" · ".join(facts)] if facts else []
    text = "\n".join(head + abstract + tail)
    if len(text) > SLACK_MAX_SECTION_CHARS:  # only with very long URLs: drop the abstract
        text = _truncate("\n".join(head + tail), SLACK_MAX_SECTION_CHARS)
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    feedback = [
        {"type": "mrkdwn", "text": _slack_link(url, label)}
        for url, label in ((view.like_url, LIKE_LABEL), (view.dislike_url, DISLIKE_LABEL))
        if _slack_url(url)
    ]
    if feedback:
        blocks.append({"type": "context", "elements": feedback})
    return blocks


def _header(text: str) -> dict[str, Any]:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": _truncate(text, SLACK_MAX_HEADER_CHARS)},
    }


def _section(text: str) -> dict[str, Any]:
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": _truncate(text, SLACK_MAX_SECTION_CHARS)},
    }


def render_slack(digest: Digest, *, webhook_url: str) -> SlackOut:
    """Render Block Kit payloads, split so each stays within Slack's limits.

    The first payload carries the header (and the cold-start note), the last one the
    unsubscribe link; a pick's blocks are never split across two payloads.
    """
    title = subject_for(digest)
    views = [_view(p, digest.cold_start) for p in digest.picks]
    unsubscribe = _slack_url(safe_url(digest.unsubscribe_url))
    product = _mrkdwn_escape(_clean(digest.product_name) or "paperwire", 100)
    footer_elements = [{"type": "mrkdwn", "text": f"Sent by {product}"}]
    manage = _slack_url(safe_url(digest.manage_url)) if digest.manage_url else None
    if manage:
        footer_elements.append({"type": "mrkdwn", "text": f"<{manage}|Manage your digest>"})
    if unsubscribe:
        footer_elements.append({"type": "mrkdwn", "text": f"<{unsubscribe}|Unsubscribe>"})
    footer = {"type": "context", "elements": footer_elements}

    intro: list[dict[str, Any]] = []
    if digest.is_empty:
        intro.append(_section(_mrkdwn_escape(EMPTY_NOTE)))
    elif digest.cold_start:
        intro.append(_section(f"_{_mrkdwn_escape(COLD_START_NOTE)}_"))

    # Group blocks per pick, then pack groups into messages of ≤ SLACK_MAX_BLOCKS blocks,
    # keeping one slot for each message's header and one for the footer.
    groups = [_pick_blocks(v) for v in views]
    budget = SLACK_MAX_BLOCKS - 2
    messages: list[list[dict[str, Any]]] = [list(intro)]
    for group in groups:
        if len(messages[-1]) + len(group) > budget:
            messages.append([])
        messages[-1].extend(group)

    total = len(messages)
    payloads: list[dict[str, Any]] = []
    for index, body in enumerate(messages, start=1):
        heading = title if total == 1 else f"{title} ({index}/{total})"
        blocks = [_header(heading), *body]
        if index == total:
            blocks.append(footer)
        payloads.append({"text": _truncate(heading, SLACK_MAX_FALLBACK_CHARS), "blocks": blocks})
    return SlackOut(
        webhook_url=webhook_url,
        payloads=tuple(payloads),
        digest_id=digest.digest_id,
        period=digest.period,
    )

"""Digest → email (text + html) and Slack Block Kit payloads.

Feed text (titles, authors, abstracts, reasons) is untrusted plain text:

* the HTML template is rendered with autoescape on, so ``<script>`` arrives as text;
* only ``http``/``https`` URLs are ever turned into links (``javascript:`` and friends are
  dropped);
* LaTeX in titles, abstracts and reasons becomes readable Unicode (`readable`, pylatexenc;
  malformed LaTeX falls back to the raw text), once per paper (`_paper_view` is cached);
* Slack text escapes mrkdwn's control characters ``&``, ``<``, ``>``, shows its formatting
  characters (``*``, ``_``, ``~``, backtick) as look-alikes (not within a URL: it stays
  whole), never lets a title break out of a ``<url|title>`` link, and is sent ``verbatim``
  (no "@channel" in it notifies anyone);
* no header value carries a control character (CR, LF, NUL, U+2028...: they become spaces),
  and the recipient must be an email address (`email-validator`), else :class:`BadAddress`,
  a permanent failure of that message.
"""

from __future__ import annotations

import binascii
import functools
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from email.charset import Charset
from email.header import Header
from email.utils import format_datetime, formataddr, getaddresses
from functools import cache
from types import SimpleNamespace
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, select_autoescape
from markupsafe import Markup

from notifications.addresses import (
    HEADER_UNSAFE,
    email_address,
    header_text,
)
from notifications.digest import Digest, Pick
from notifications.latex import converter
from notifications.mailbox import ascii_domain, ascii_mailbox
from notifications.transports.base import EmailOut, SlackOut
from notifications.transports.slack import SlackWebhookTransport

__all__ = [
    "COLD_START_NOTE",
    "EMPTY_NOTE",
    "FILLER_LABEL",
    "NEWEST_LABEL",
    "SLACK_MAX_BLOCKS",
    "SLACK_MAX_HEADER_CHARS",
    "SLACK_MAX_SECTION_CHARS",
    "environment",
    "filler_label",
    "match_cue",
    "message_id",
    "readable",
    "render_email",
    "render_slack",
    "safe_url",
    "shorten_abstract",
    "shorten_authors",
    "shown_title",
    "subject_for",
]

COLD_START_NOTE = (
    "You have no likes yet: these are today's most upvoted / newest papers. "
    "Like a few to personalise."
)
EMPTY_NOTE = "Nothing new for you today: no fresh papers matched your interests."
# a weekly digest's (the week's papers)
WEEKLY_COLD_START_NOTE = COLD_START_NOTE.replace("today's", "this week's")
WEEKLY_EMPTY_NOTE = EMPTY_NOTE.replace("today", "this week")
FILLER_LABEL = "Popular today"  # a filler (too few picks of one's own): no score
NEWEST_LABEL = "Newest"  # a filler nobody upvoted (fillers: most upvoted, then newest)
# A pick learned from likes gets a relative cue, never a raw percentage ("9% match" reads as
# weak): cosines of a profile and a paper; on CiteULike the top 10 of a library score 0.44 /
# 0.53 / 0.63 at the quartiles, so about a third are strong, half good, the rest get no cue
STRONG_MATCH = 0.6
GOOD_MATCH = 0.4
# Slack's buttons; the email templates write the same words as they are (a test checks), not
# as a variable to escape twice in every pick
LIKE_LABEL = "👍 More like this"
DISLIKE_LABEL = "👎 Less like this"

ABSTRACT_CHARS = 400
# Gmail clips a message's HTML after about 102 KB ("[Message clipped]  View entire message"),
# and the footer's Manage and Unsubscribe links with it: an HTML part longer than this, as sent
# (7bit, character references, CRLF), has its abstracts shortened until it fits (`_fitting_html`)
HTML_MAX_BYTES = 100_000
MORE_LINK_BYTES = 50  # what a shortened abstract's link to its paper adds (`paper.html`)
MAX_AUTHORS = 3
CATEGORY_CHARS = 30

# Slack's documented limits (https://api.slack.com/reference/block-kit/blocks), declared
# by the transport that has to live with them.
SLACK_MAX_BLOCKS = SlackWebhookTransport.max_blocks_per_message
SLACK_MAX_SECTION_CHARS = SlackWebhookTransport.max_section_chars
SLACK_MAX_HEADER_CHARS = SlackWebhookTransport.max_header_chars
SLACK_MAX_CONTEXT_ELEMENTS = 10
SLACK_MAX_FALLBACK_CHARS = 3000

T = TypeVar("T")


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
        auto_reload=False,  # the templates ship with the package: no stat() per render
    )
    env.filters["wrap"] = wrap
    # a line made for one reader ("Hi Grace,"): not remembered, so it pushes out no reason
    env.filters["wrap_once"] = wrap.__wrapped__
    env.filters["link"] = link
    env.filters["numbered"] = numbered
    # no globals (range, lipsum, ...): a template sees what it is given, and a render's context
    # is then one dict, not a copy of a ChainMap of globals walked in Python (two per message)
    env.globals.clear()
    return env


@cache
def _template(name: str) -> Template:
    """A template of `environment`, looked up once (not in Jinja's locked cache per message)."""
    return environment().get_template(name)


def numbered(items: Iterable[T]) -> Iterable[tuple[int, T]]:
    """``(1, first), (2, second), ...``: the text digest's numbers without Jinja's ``loop``
    (an object with a lookahead for every pick)."""
    return enumerate(items, 1)


def _clean(text: str) -> str:
    """Collapse all whitespace (feeds are full of newlines and tabs) and strip."""
    return " ".join(text.split())


# The common case, at once: http(s), a plain host name, a port, a path of URL characters
# (the signed links of a digest, arXiv's pages). Anything else goes through urlsplit.
_PLAIN_URL = re.compile(
    r"https?://[A-Za-z0-9][A-Za-z0-9.-]*(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~!$&'()*+,;=:@/%?-]*)?"
)


def safe_url(url: str) -> str | None:
    """Return ``url`` if it is an absolute http(s) URL, else None (never link it)."""
    return url if _PLAIN_URL.fullmatch(url) else _checked_url(url)


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


# what parts names in a Chinese or Japanese list ("张三、李四"), never within one name: a list
# stored as one author (read from a feed before daemon.ingest split it there) shows its names
_EAST_ASIAN_SEPARATORS = re.compile(r"\s*[、，；]\s*")


def shorten_authors(authors: Iterable[str], limit: int = MAX_AUTHORS) -> str:
    """``"A, B, C et al."`` when there are more than ``limit`` authors."""
    names: list[str] = []
    for author in authors:
        pieces = _EAST_ASIAN_SEPARATORS.split(author) if not author.isascii() else (author,)
        names += [n for n in map(_clean, pieces) if n]
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


def _plural(n: int) -> str:
    return f"{n} pick" if n == 1 else f"{n} picks"


def subject_for(digest: Digest, subject_prefix: str = "") -> str:
    """``"Your papers for 2026-11-28 — 8 picks"`` (``"Trending papers ..."`` on cold start,
    ``"New papers ..."`` when none of them was upvoted: from a feed without votes nothing
    trends; ``"… for the week to 2026-11-28 …"`` weekly)."""
    day = f"the week to {digest.period.isoformat()}" if digest.weekly else digest.period.isoformat()
    if digest.is_empty:
        core = f"No new papers for {day}"
    elif digest.cold_start:
        lead = "Trending papers" if any(p.upvotes for p in digest.picks) else "New papers"
        core = f"{lead} for {day} — {_plural(len(digest.picks))}"
    else:
        core = f"Your papers for {day} — {_plural(len(digest.picks))}"
    prefix = _clean(subject_prefix)
    return f"{prefix} {core}" if prefix else core


def message_id(digest: Digest, domain: str) -> str:
    """Stable Message-ID: every try of one sending of a digest gets the same id (a copy the
    server took though its answer was lost, sent again, is dropped by the mailbox as one
    seen), and no other digest ever gets it. A digest's id alone may come again on SQLite
    (the newest row deleted, the next one takes its id); its channel's never does (migration
    0009), and a channel has one digest a period (or another edition of it, after a move to a
    zone behind, made while the first is kept: another id). A digest sent again after it went
    out (an admin's Resend) is a new sending: `-r1`, `-r2` …, or the mailbox would drop the
    copy."""
    period = digest.period.isoformat()
    again = f"-r{digest.resends}" if digest.resends else ""
    return f"<paperwire-digest-{digest.digest_id}-{period}-c{digest.channel_id}{again}@{domain}>"


# a DOI as stored (daemon.ingest.identity: lower case, one word), and what its link keeps
_DOI = re.compile(r"10\.\d{4,9}/[^\s\x00-\x1f\x7f]+")
DOI_SAFE = "/:;()._-"
# arXiv ids as stored (no version): 2611.01234, astro-ph/0601001, math.GT/0309136
_ARXIV_ID = re.compile(r"\d{4}\.\d{4,5}|[a-z-]+(?:\.[A-Z]{2})?/\d{7}")
# what a LaTeX command or math looks like: anything else is plain text, returned as it is
_LATEX_HINT = re.compile(r"\\[A-Za-z'`^\"~=.{}\\&%#_$]|\$")
_LATEX_UNESCAPED = re.compile(r"(?<!\\)([%&#])")  # comments / alignment in LaTeX, text here
_LATEX_REFERENCE = re.compile(r"\s*\\(?:cite[a-zA-Z]*|ref|eqref|label)\*?(?:\[[^]]*\])*\{[^}]*\}")
_LATEX_MARKUP = re.compile(r"\\[A-Za-z]+|[\\${}^_\s]")  # what the converted text may lose
# a super- or subscript in math: one character, or a group without macros (innermost first)
_SCRIPT = re.compile(r"([\^_])\s*(?:\{([^{}\\$^_]*)\}|([A-Za-z0-9*+-]))")
# a macro written straight before a letter beyond ASCII (arXiv's API gives "\mathbfθ" for
# "\mathbf{\theta}"): TeX ends the name at the letter, pylatexenc took both for one unknown
# macro and dropped it ("N(\mathbfθ, I)" read "N(, I)")
_MACRO_BEFORE_UNICODE = re.compile(r"(\\[A-Za-z]+)([^\x00-\x7f])")
# math between dollars as pandoc reads it: $$display$$, or $inline$ opening before a non-space
# and closing after one, not before a digit ("$5 and $10" is money) unless it opens with a
# macro ("$\\sim$100 GPUs", as arXiv abstracts write it); any other dollar is a dollar (the
# last alternative)
_MATH_OR_DOLLAR = re.compile(
    r"(?<!\\)\$\$(.+?)\$\$"
    r"|(?<!\\)\$(?=[^\s$])((?=\\[A-Za-z])[^$]*?[^\s$\\]|[^$]*?[^\s$\\](?=\$(?!\d)))\$"
    r"|(?<!\\)\$"
)
_MACRO_END = re.compile(r"\\[A-Za-z]+$")
_SUPERSCRIPT = dict(zip("0123456789+-=()abcdefghijklmnoprstuvwxyzABDEGHIJKLMNOPRTUVW*",
                        "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻᴬᴮᴰᴱᴳᴴᴵᴶᴷᴸᴹᴺᴼᴾᴿᵀᵁⱽᵂ*",
                        strict=True))  # fmt: skip
_SUBSCRIPT = dict(zip("0123456789+-=()aehijklmnoprstuvx", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ",
                      strict=True))  # fmt: skip
LATEX_MAX_CHARS = 3 * ABSTRACT_CHARS  # of a text converted (the rest is cut off anyway)


def arxiv_pdf_url(arxiv_id: str | None) -> str | None:
    """The PDF of an arXiv paper (None when the id does not look like one)."""
    return (
        f"https://arxiv.org/pdf/{arxiv_id}" if arxiv_id and _ARXIV_ID.fullmatch(arxiv_id) else None
    )


def shown_title(title: str) -> str:
    """A paper's title as digests and pages show it: `readable`, or "(untitled)" when nothing
    readable is left (a title of "$" alone)."""
    return readable(title) or "(untitled)"


@functools.lru_cache(maxsize=16384)  # a reason names a liked title, seen in many digests
def readable(text: str, limit: int = LATEX_MAX_CHARS) -> str:
    """Feed text with its LaTeX as readable Unicode (``$\\omega$Test`` → ``ωTest``,
    ``R\\'{e}nyi`` → ``Rényi``), whitespace collapsed. Text without LaTeX is returned as it is
    (fast); only the first `limit` characters of a longer text are converted. Malformed
    LaTeX never fails: whatever pylatexenc cannot read, the raw text is kept."""
    text = _clean(text)
    if not _LATEX_HINT.search(text):
        return text
    if len(text) > limit:
        space = text.rfind(" ", 0, limit)
        text = text[: space if space > limit // 2 else limit]
    try:
        latex = _LATEX_UNESCAPED.sub(r"\\\1", _LATEX_REFERENCE.sub("", text))
        latex = _MACRO_BEFORE_UNICODE.sub(r"\1{\2}", latex)
        latex = _MATH_OR_DOLLAR.sub(_math_or_dollar, latex)
        out = _clean(converter().latex_to_text(latex))
    except Exception:  # pylatexenc on untrusted text: any failure keeps the raw text
        return text
    # LaTeX that swallows the text (\\verb, \\iffalse …) is worse than the raw text
    return out if len(out) * 2 >= len(_LATEX_MARKUP.sub("", text)) else text


def _math_or_dollar(m: re.Match[str]) -> str:
    display, inline = m.group(1), m.group(2)
    if display is not None:
        return f"$${_scripts(display)}$$"
    return f"${_scripts(inline)}$" if inline is not None else r"\$"


def _scripts(math: str) -> str:
    """Super- and subscripts of a math span as Unicode where every character has one
    (``$10^{-3}$`` → ``10⁻³``, ``H$_2$O`` → ``H₂O``); a longer one that has not, or holds a
    script of its own, keeps its extent in parentheses (``W_{KQ}`` → ``W_(KQ)``, ``e^{-x^2}``
    → ``e^(-x²)``), which pylatexenc would drop with the braces."""
    text = math.replace("^\\prime", "′").replace("^{\\prime}", "′")
    for _ in range(8):  # nested groups, innermost first; deeper nesting stays as LaTeX reads
        text, n = _SCRIPT.subn(_script, text)
        if not n:
            break
    return text


def _script(m: re.Match[str]) -> str:
    mark, body = m.group(1), "".join((m.group(2) or m.group(3) or "").split())
    table = _SUPERSCRIPT if mark == "^" else _SUBSCRIPT
    if not body:
        return ""
    # a script within a script stays apart: 2^{2^n} is 2^(2ⁿ), not 2²ⁿ (which reads as 4ⁿ)
    if all(c in table for c in body):
        after_macro = _MACRO_END.search(m.string, 0, m.start())  # \\sumᵢ would be one name
        return ("{}" if after_macro else "") + "".join(table.get(c, c) for c in body)
    return f"{mark}{body}" if len(body) == 1 else f"{mark}({body})"


def match_cue(score: float, kind: str) -> str | None:
    """A relative cue for a pick learned from likes ("Strong match", "Good match"), or None:
    no cue for a weaker one, a followed match (its reason says why) or a filler."""
    if kind != "similar":
        return None
    if score >= STRONG_MATCH:
        return "Strong match"
    if score >= GOOD_MATCH:
        return "Good match"
    return None


@dataclass(frozen=True)
class _PaperView:
    """What the templates see of a paper: cleaned, LaTeX made readable, shortened, URLs vetted.
    The same in every digest that picks the paper: made once (`_paper_view`)."""

    title: str
    url: str | None  # the abstract page
    pdf_url: str | None  # arXiv papers only
    arxiv_id: str | None
    doi: str | None  # a paper without an arXiv id (a journal's): shown, and linked at doi_url
    doi_url: str | None
    category: str | None
    day: str | None  # ISO date
    authors: str
    abstract: str
    more_url: str | None  # the abstract shortened to fit the message (`_fitting_html`): its page
    upvotes: int | None
    facts: str  # "arXiv:2611.01234 · cs.LG · 2026-11-27 · ▲ 42 upvotes" (plain text)
    html: Markup  # the paper's part of the HTML digest (templates/paper.html)
    text: str  # the paper's part of the text digest, after its number (paper.txt)


@functools.lru_cache(maxsize=8192)  # a paper recurs in every digest that picks it
def _paper_view(
    title: str,
    url: str,
    authors: tuple[str, ...],
    abstract: str,
    upvotes: int | None,
    day: date | None,
    arxiv_id: str | None,
    category: str | None,
    doi: str | None = None,
    abstract_chars: int = ABSTRACT_CHARS,
) -> _PaperView:
    arxiv = arxiv_id if arxiv_id and _ARXIV_ID.fullmatch(arxiv_id) else None
    doi = doi if doi and not arxiv and _DOI.fullmatch(doi) else None
    shown_category = _clean(category)[:CATEGORY_CHARS] or None if category else None
    shown_day = day.isoformat() if day else None
    votes = upvotes if upvotes and upvotes > 0 else None
    facts = [
        f"arXiv:{arxiv}" if arxiv else None,
        f"doi:{doi}" if doi else None,
        shown_category,
        shown_day,
        f"▲ {votes} upvote{'s' if votes != 1 else ''}" if votes else None,
    ]
    page = f"https://arxiv.org/abs/{arxiv}" if arxiv else safe_url(url)
    full = readable(abstract)
    shown = shorten_abstract(full, abstract_chars) if abstract_chars > 0 else ""
    fields: dict[str, Any] = dict(
        title=shown_title(title),
        url=page,
        pdf_url=arxiv_pdf_url(arxiv),
        arxiv_id=arxiv,
        doi=doi,
        doi_url=f"https://doi.org/{quote(doi, safe=DOI_SAFE)}" if doi else None,
        category=shown_category,
        day=shown_day,
        authors=shorten_authors(authors),
        abstract=shown,
        more_url=page if abstract_chars < ABSTRACT_CHARS and shown != full else None,
        upvotes=votes,
        facts=" · ".join(f for f in facts if f),
    )
    paper = SimpleNamespace(**fields)  # `paper.title` an attribute: no AttributeError, then key
    return _PaperView(  # the paper's parts of the digests, rendered once (autoescaped HTML)
        **fields,
        html=Markup(_template("paper.html").render(paper=paper).strip()),
        text=_template("paper.txt").render(paper=paper),
    )


class _PickView(NamedTuple):
    """What the templates see of one pick: its paper, and what is this reader's own (a named
    tuple: ten per message, built at a fifth of a frozen dataclass's cost). The email templates
    unpack it in this order (``{% for paper, cue, label, ... in picks %}``): local names, not
    an attribute lookup through Jinja for every use."""

    paper: _PaperView
    cue: str | None  # "Strong match" / "Good match" (never a percentage)
    label: str | None  # FILLER_LABEL for a filler
    reason: str
    like_url: str | None
    dislike_url: str | None


def filler_label(upvotes: int | None, weekly: bool = False) -> str:
    """What a filler (a pick not learned from likes) shows in place of a reason and a score:
    "Popular today" when it was upvoted, else "Newest" ("this week" in a weekly digest)."""
    label = FILLER_LABEL if upvotes else NEWEST_LABEL
    return label.replace("today", "this week") if weekly else label


def _view(
    pick: Pick, cold_start: bool, weekly: bool = False, abstract_chars: int = ABSTRACT_CHARS
) -> _PickView:
    paper = _paper_view(
        pick.title,
        pick.url,
        pick.authors,
        pick.abstract,
        pick.upvotes,
        pick.day,
        pick.arxiv_id,
        pick.category,
        pick.doi,
        abstract_chars,
    )
    filler = cold_start or pick.kind == "trending"
    label = filler_label(paper.upvotes, weekly) if filler else None
    return _PickView(
        paper,
        None if filler else match_cue(pick.score, pick.kind),  # cue
        label,
        "" if filler else readable(pick.reason),  # reason
        safe_url(pick.like_url),
        safe_url(pick.dislike_url),
    )


def _context(digest: Digest) -> dict[str, Any]:
    product = _clean(digest.product_name) or "paperwire"
    return {
        "product": product,
        "recipient_name": _clean(digest.recipient_name),
        "period": digest.period.isoformat(),
        "picks": [_view(p, digest.cold_start, digest.weekly) for p in digest.picks],
        "cold_start": digest.cold_start,
        "cold_start_note": WEEKLY_COLD_START_NOTE if digest.weekly else COLD_START_NOTE,
        "empty_note": WEEKLY_EMPTY_NOTE if digest.weekly else EMPTY_NOTE,
        "heading": subject_for(digest),  # the subject without `subject_prefix` (mail only)
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
    text = _template("digest.txt").render(context)
    html, html_ascii = _fitting_html(digest, context)

    domain = ascii_domain(header_text(message_id_domain).replace(" ", ""))
    # every header value encoded here (RFC 2047 for non-ASCII) and free of control
    # characters (`header_text`): the message is then written out directly (_mime)
    name = header_text(context["recipient_name"])
    headers = [
        ("Subject", _encoded(header_text(context["subject"]))),
        ("From", _mailbox(ascii_mailbox(header_text(sender)))),
        ("To", _named(name, address) if name else address),
        ("Date", _date(now or datetime.now(UTC))),
        ("Message-ID", _encoded(header_text(message_id(digest, domain)))),
    ]
    one_click = safe_url(digest.one_click_unsubscribe_url)
    if one_click is not None:
        headers.append(("List-Unsubscribe", f"<{quote(one_click, safe=URL_SAFE)}>"))
        if one_click.startswith("https:"):  # RFC 8058 §3.1: one click only over HTTPS
            headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    product = header_text(context["product"])
    list_label = re.sub(r"[^A-Za-z0-9-]", "-", product.lower()) or "paperwire"
    headers += [
        ("List-Id", f"{_encoded(product)} digest <{list_label}-digest.{domain}>"),
        ("Auto-Submitted", "auto-generated"),
        ("Precedence", "bulk"),  # vacation(1) and other responders older than Auto-Submitted
        ("X-Auto-Response-Suppress", "All"),
    ]
    return EmailOut(
        data=_mime(headers, text, html, html_ascii),
        recipient=address,
        digest_id=digest.digest_id,
        period=digest.period,
        html=html,
    )


def _fitting_html(digest: Digest, context: dict[str, Any]) -> tuple[str, bytes]:
    """The HTML part, and as `_ascii_html` writes it, within `HTML_MAX_BYTES` as sent: when the
    picks make it longer, their abstracts are shortened (each ending in "…" and a link to its
    paper; the text part keeps them whole) until it fits, so that Gmail does not clip the
    footer's Manage and Unsubscribe links. Abstracts are the one part of a pick that may be
    cut without losing the pick. A message still too long without them (titles of thousands
    of characters) goes as it is: a digest of more than 30 picks has those links at its top.
    Each try takes the most characters the abstracts' lengths say may fit (`_abstract_chars`),
    fewer each time, so a message is rendered a few times, not once per character."""
    lengths = [len(view.paper.abstract) for view in context["picks"]]
    chars, needed = ABSTRACT_CHARS, 0
    while True:
        html = _template("digest.html").render(context)
        data = _ascii_html(html)
        excess = len(data) + data.count(b"\n") - HTML_MAX_BYTES  # lines end in CRLF when sent
        if excess <= 0 or chars == 0 or not any(lengths):
            return html, data
        needed += excess  # what the last try's estimate fell short by
        chars = _abstract_chars(lengths, needed, chars)
        views = [_view(p, digest.cold_start, digest.weekly, chars) for p in digest.picks]
        context = {**context, "picks": views}


def _abstract_chars(lengths: list[int], needed: int, below: int) -> int:
    """The most characters (fewer than `below`) the abstracts, of `lengths` as first shown, may
    keep for the HTML to lose `needed` bytes: those longer lose what is beyond it but gain a
    link "more" (`MORE_LINK_BYTES`), so cutting just below an abstract's length adds to the
    message. 0 (no abstract at all) when no length does."""
    by_length = Counter(lengths)
    longer = [n for n in lengths if n >= below]
    count, total = len(longer), sum(longer)
    for chars in range(below - 1, 0, -1):
        if total - count * (chars + MORE_LINK_BYTES) >= needed:
            return chars
        count, total = count + by_length[chars], total + chars * by_length[chars]
    return 0


def _ascii_html(html: str) -> bytes:
    """The HTML part as 7bit text: every non-ASCII character a character reference, LF line
    ends (`_mime` sends it so, or quoted-printable when that cannot be)."""
    return _lines(html.encode("ascii", "xmlcharrefreplace"))


CRLF = b"\r\n"
SMTP_LINE_MAX = 998  # octets in a line of a 7bit body, CRLF not counted (RFC 5322)
URL_SAFE = ":/?#[]@!$&'()*+,;=%~"  # percent-encode only what a URL header may not hold


def _mime(
    headers: list[tuple[str, str]], text: str, html: str, html_ascii: bytes | None = None
) -> bytes:
    """A multipart/alternative message (text/plain then text/html, UTF-8) as it goes over
    SMTP. The text is quoted-printable (binascii's C encoder keeps lines within 76
    characters). The HTML is sent as 7bit when it can be: every non-ASCII character written
    as a character reference (`&#8220;`, the same text to any HTML reader), every line within
    SMTP's 998; quoted-printable otherwise. The boundary starts with "=_", which
    quoted-printable text can never hold (it writes "=" as "=3D") and our HTML never does.
    Written directly: the email package's generator took ten times as long. `html_ascii` is
    `_ascii_html(html)` when the caller has it already."""
    # random as the email package's own boundaries are (`random`, not a system call per message:
    # the "=_" keeps it out of the parts, the 96 bits only tell messages apart)
    boundary = f"=_paperwire_{random.getrandbits(96):024x}".encode("ascii")
    lines = [f"{name}: {value}" for name, value in headers]
    head = "\r\n".join(
        [
            f'Content-Type: multipart/alternative; boundary="{boundary.decode()}"',
            "MIME-Version: 1.0",
            *lines,
        ]
    )
    # ASCII but for an address beyond ASCII (RFC 6532: sent with SMTPUTF8), in UTF-8
    out = [head.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8"), CRLF, CRLF]
    for subtype, body in ((b"plain", text), (b"html", html)):
        encoding, data = b"quoted-printable", b""
        if subtype == b"html":
            data = _ascii_html(body) if html_ascii is None else html_ascii
            if _short_lines(data) and not _holds(data, b"=_"):
                encoding = b"7bit"
        if encoding != b"7bit":
            data = binascii.b2a_qp(_lines(body.encode("utf-8")), istext=True)
        out += [
            b"--", boundary, CRLF,
            b"Content-Type: text/", subtype, b'; charset="utf-8"', CRLF,
            b"Content-Transfer-Encoding: ", encoding, CRLF, CRLF,
            data.replace(b"\n", CRLF), CRLF,
        ]  # fmt: skip
    out += [b"--", boundary, b"--", CRLF]
    return b"".join(out)


def _short_lines(data: bytes, limit: int = SMTP_LINE_MAX) -> bool:
    """Whether no line of `data` is longer than `limit` bytes. A line longer than that holds a
    whole block of (limit + 2) // 2 bytes at a multiple of that size: when every such block
    has a line feed (a memchr each), no line is too long; else the lines are measured."""
    step = (limit + 2) // 2
    blocks = range(0, len(data) - step + 1, step)
    if all(data.find(b"\n", start, start + step) >= 0 for start in blocks):
        return True
    return max(map(len, data.split(b"\n"))) <= limit


def _holds(data: bytes, pair: bytes) -> bool:
    """``pair in data`` for two bytes of which the second is rare ("=_" in HTML): a memchr for
    each of those; `in` stops at every "=" of the attributes (twenty times as long)."""
    at = data.find(pair[1:])
    while at != -1:
        if data[at - 1 : at] == pair[:1]:
            return True
        at = data.find(pair[1:], at + 1)
    return False


def _lines(data: bytes) -> bytes:
    """Every line ending (CRLF, CR) as LF: in the encoded bytes, where a search is a memchr
    (an ASCII CR or LF is never part of a UTF-8 sequence or a character reference)."""
    if b"\r" not in data:
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


_UTF8 = Charset("utf-8")
ENCODED_WORD_MAX = 75  # RFC 2047: longer text is split over several encoded words


def _encoded(value: str) -> str:
    """A header value as it may be written: ASCII as it is, anything else RFC 2047-encoded
    (one encoded word when it fits, which is twenty times faster than `Header`'s splitting);
    so is ASCII text that reads as an encoded word (``=?utf-8?q?Admin?=``), which a mail
    client would decode (quotes do not stop every client): it is shown as written."""
    return value if _plain(value) else _encoded_words(value)


def _plain(text: str) -> bool:
    """Whether header text may be written as it is: ASCII, nothing like an encoded word."""
    return text.isascii() and "=?" not in text


@functools.lru_cache(maxsize=1024)  # the subject ("… — 10 picks") recurs in every message
def _encoded_words(value: str) -> str:
    word = _UTF8.header_encode(value)
    return word if len(word) <= ENCODED_WORD_MAX else Header(value, "utf-8").encode()


def _date(now: datetime) -> str:
    """The Date header of a message made at `now` (to the second, as the header has it)."""
    return _date_of_second(now.replace(microsecond=0), now.tzinfo)


@functools.lru_cache(maxsize=4)  # one value for every message made within a second
def _date_of_second(now: datetime, zone: tzinfo | None) -> str:
    """`zone` is part of the key: the same instant elsewhere is another header."""
    return format_datetime(now)


@functools.lru_cache(maxsize=16)  # the configured sender: the same in every message
def _mailbox(value: str) -> str:
    """The configured sender with its display name encoded; a value that is not one address
    is left as it is (the SMTP transport refuses it as a configuration problem)."""
    pairs = getaddresses([value])
    if len(pairs) == 1 and pairs[0][1] and pairs[0][1].isascii():
        return _named(*pairs[0])
    return _encoded(value)


def _named(name: str, address: str) -> str:
    """``Name <address>``, the name quoted as needed or RFC 2047-encoded (in words of at most
    75 characters) when it is not ASCII or reads as an encoded word. An address beyond ASCII
    (SMTPUTF8) is written as it is (RFC 6532): no encoding applies to it."""
    if not _plain(name):
        return f"{_encoded(name)} <{address}>"
    if address.isascii():
        return formataddr((name, address))
    quoted = formataddr((name, "x@x")).removesuffix(" <x@x>")  # formataddr takes ASCII only
    return f"{quoted} <{address}>"


@functools.lru_cache(maxsize=16384)  # a reason ("Why: …") recurs in the digests of many readers
def wrap(text: str, width: int = 72, indent: str = "") -> str:
    """Plain text wrapped at `width` columns on spaces, lines after the first starting with
    `indent` — textwrap's job for this one case, without its cost. East Asian wide characters
    take two columns, and a word of them wider than `width` is cut into pieces (Chinese and
    Japanese are written without spaces); any other word keeps its own line whole (a link)."""
    words = text.split()
    # the usual case: a character is a column (curly quotes too; ten reasons a message)
    plain = text.isascii() or _WIDE.search(text) is None
    if not plain:
        words = [piece for word in words for piece in _pieces(word, width)]
    if not words:
        return ""
    lines: list[str] = []
    line, size = [words[0]], _columns(words[0])
    for word in words[1:]:
        columns = len(word) if plain else _columns(word)
        if size + 1 + columns > width:
            lines.append(" ".join(line))
            line, size = [word], columns
        else:
            line.append(word)
            size += 1 + columns
    lines.append(" ".join(line))
    return ("\n" + indent).join(lines)


TEXT_COLUMNS = 78  # RFC 5322 §2.1.1: a line SHOULD be at most 78 characters


def link(url: str, label: str, indent: str = "") -> str:
    """A link of the text digest: ``label: url`` on one line when it fits `TEXT_COLUMNS`, else
    the URL alone on the line below when it fits there (a URL is never cut, and a mail client
    links it whole); one line still when it is wider than a line anyway."""
    columns = len(url) if url.isascii() else _columns(url)
    if len(indent) + _label_columns(label) + 2 + columns <= TEXT_COLUMNS:
        return f"{indent}{label}: {url}"
    if len(indent) + columns <= TEXT_COLUMNS:
        return f"{indent}{label}:\n{indent}{url}"
    return f"{indent}{label}: {url}"


@functools.lru_cache(maxsize=64)  # a few labels, in every message
def _label_columns(label: str) -> int:
    return _columns(label)


# where East Asian wide characters may be (CJK, Hangul, fullwidth forms, emoji): text without
# any of them is a column a character
_WIDE = re.compile(
    "[\u1100-\u115f\u231a-\u231b\u23e9-\u23fa\u2600-\u27bf\u2b00-\u2bff\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f"
    "\uff00-\uff60\uffe0-\uffe6\U0001f000-\U0001faff\U00020000-\U0003fffd]"
)


def _columns(word: str) -> int:
    if word.isascii() or _WIDE.search(word) is None:
        return len(word)
    return sum(map(_char_columns, word))


def _char_columns(c: str) -> int:
    return 2 if unicodedata.east_asian_width(c) in "WF" else 1


def _pieces(word: str, width: int) -> list[str]:
    if len(word) <= width // 2 or _columns(word) <= width or _WIDE.search(word) is None:
        return [word]
    pieces, piece, size = [], "", 0
    for c in word:
        columns = _char_columns(c)
        if size + columns > width:
            pieces.append(piece)
            piece, size = "", 0
        piece += c
        size += columns
    return [*pieces, piece]


# --------------------------------------------------------------------------- slack


# mrkdwn has no escape for its formatting characters (`*` bold, `_` italic, `~` strike, `` ` ``
# code): in feed text each becomes a look-alike Slack does not read as markup, so that a title
# ("A* search", "~2x faster and ~30% smaller") never ends the bold of its link nor formats
# what follows. An underscore within a word (snake_case, x_i) is no markup: it stays.
_MRKDWN_MARKS = str.maketrans({"*": "∗", "~": "∼", "`": "ˋ"})
_MRKDWN_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
# a URL in feed text ("code: https://www.cs.toronto.edu/~kriz/…") is linked by Slack as it is:
# its characters stay (a look-alike in it links to a page that is not there)
_FEED_URL = re.compile(r"https?://\S+", re.I)


def _look_alikes(text: str) -> str:
    text = text.translate(_MRKDWN_MARKS)
    return _MRKDWN_UNDERSCORE.sub("ˍ", text) if "_" in text else text


def _mrkdwn_escape(text: str, limit: int | None = None, *, urls: bool = True) -> str:
    """Escape ``& < >`` for Slack and make its formatting characters plain look-alikes, except
    within the http(s) URLs of `text` (`urls`: Slack links them); cut (with "…") so the
    *escaped* text fits ``limit``.

    Never cuts inside an entity such as ``&amp;``.
    """
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    kept = list(_FEED_URL.finditer(escaped)) if urls and "://" in escaped else []
    starts = [0, *(m.end() for m in kept)]
    ends = [*(m.start() for m in kept), len(escaped)]
    prose = [_look_alikes(escaped[a:b]) for a, b in zip(starts, ends, strict=True)]
    escaped = "".join(p + m.group(0) for p, m in zip(prose, kept, strict=False)) + prose[-1]
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
    """``<url|label>`` with the label escaped and each ``|`` (which would end the URL's part
    there) shown as "∣"; plain label if no URL."""
    text = _mrkdwn_escape(label.replace("|", "∣"), label_limit, urls=False)  # not linked
    target = _slack_url(url)
    return f"<{target}|{text}>" if target else text


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _cut_mrkdwn(text: str, limit: int) -> str:
    """`text` (mrkdwn) cut with "…" to at most `limit` characters, never within an entity
    (``&amp;``: at most 5 characters) nor a link (``<url|label>``: every ``<`` of our mrkdwn
    starts one)."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&", len(cut) - 4)
    if amp >= 0 and ";" not in cut[amp:]:
        cut = cut[:amp]
    if cut.rfind("<") > cut.rfind(">"):
        cut = cut[: cut.rfind("<")]
    return cut.rstrip() + "…"


@functools.lru_cache(maxsize=8192)  # per paper, like `_paper_view`
def _facts(paper: _PaperView) -> tuple[str, ...]:
    """The paper's identity line in mrkdwn: arXiv id, category, date, PDF link, upvotes."""
    facts = []
    if paper.arxiv_id:
        facts.append(f"arXiv:{paper.arxiv_id}")
    if paper.doi_url:
        facts.append(_slack_link(paper.doi_url, f"doi:{paper.doi}"))
    if paper.category:
        facts.append(_mrkdwn_escape(paper.category))
    if paper.day:
        facts.append(paper.day)
    if paper.pdf_url:
        facts.append(_slack_link(paper.pdf_url, "PDF"))
    if paper.upvotes:
        facts.append(f"▲ {paper.upvotes} upvote{'s' if paper.upvotes != 1 else ''}")
    return tuple(facts)


def _pick_blocks(view: _PickView) -> list[dict[str, Any]]:
    paper = view.paper
    head = [f"*{_slack_link(paper.url, paper.title)}*"]
    if paper.authors:
        head.append(_mrkdwn_escape(paper.authors, 300))
    facts = _facts(paper)
    if facts:
        head.append(" · ".join(facts))
    abstract = [_mrkdwn_escape(paper.abstract, 1000)] if paper.abstract else []
    why = []
    if view.label:
        why.append(f"*{view.label}*")
    if view.cue:
        why.append(f"*{view.cue}*")
    if view.reason:
        why.append(_mrkdwn_escape(view.reason, 400))
    tail = [" · ".join(why)] if why else []
    text = "\n".join(head + abstract + tail)
    if len(text) > SLACK_MAX_SECTION_CHARS:  # only with very long URLs: drop the abstract
        text = _cut_mrkdwn("\n".join(head + tail), SLACK_MAX_SECTION_CHARS)
    # verbatim: feed text is shown as written; Slack's automatic parsing would otherwise turn
    # an "@channel" or "@here" in a title or an abstract into a mention that notifies everyone
    section = {"type": "mrkdwn", "text": text, "verbatim": True}
    blocks: list[dict[str, Any]] = [{"type": "section", "text": section}]
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
    views = [_view(p, digest.cold_start, digest.weekly) for p in digest.picks]
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
        intro.append(_section(_mrkdwn_escape(WEEKLY_EMPTY_NOTE if digest.weekly else EMPTY_NOTE)))
    elif digest.cold_start:
        note = WEEKLY_COLD_START_NOTE if digest.weekly else COLD_START_NOTE
        intro.append(_section(f"_{_mrkdwn_escape(note)}_"))

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

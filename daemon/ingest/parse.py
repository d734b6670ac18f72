"""Feed bytes → papers. Takes bytes, returns data; never touches the network or the database.

CONTRACT (owned by the parsing work): `parse_feed(content, *, url, content_type)` returns a
`ParsedFeed`. Format is detected from the bytes: JSON → Hugging Face daily papers; anything else →
feedparser (RSS 0.9x/1.0/2.0, Atom; arXiv RSS and arXiv API are Atom/RSS with arXiv extensions),
after `xmlsafe` has decoded and checked the bytes (no entity declarations, no deep nesting, a
feed's root element). Text fields are read by their kind (`text`: plain text stays text, HTML
becomes text) and capped. The ingest job runs this under a time and memory budget (`bounded`).
"""

from __future__ import annotations

import calendar
import json
import re
import time
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.sax import SAXException

import feedparser

from daemon.errors import ParseError
from daemon.ingest.identity import (
    ID_PATTERN,
    bare_arxiv_id,
    find_arxiv_ref,
    find_doi,
    paper_key,
)
from daemon.ingest.text import (
    ABSTRACT_MAX,
    AUTHORS_MAX,
    CATEGORIES_MAX,
    CATEGORY_MAX,
    FEED_TITLE_MAX,
    NAME_MAX,
    TITLE_MAX,
    URL_MAX,
    NestingError,
    cap,
    html_text,
    is_name,
    looks_like_markup,
    plain_text,
    reads_as_html,
)
from daemon.ingest.xmlsafe import safe_xml


@dataclass(frozen=True)
class PaperIn:
    """One paper as a feed announced it, normalised.

    `key` is the canonical identity: ``arxiv:<id without version>`` (e.g. ``arxiv:2503.01785``,
    ``arxiv:astro-ph/0601001``) when an arXiv id can be found anywhere in the entry (id, guid, link,
    HF paper id), else ``doi:<lower-cased doi>``, else ``guid:<the feed's guid or link>``.
    """

    key: str
    title: str  # text (never markup: templates escape it), whitespace collapsed, capped
    abstract: str  # text as the title; "" when absent
    authors: tuple[str, ...]  # one person each
    url: str  # the abstract page (https://arxiv.org/abs/<id> for arXiv papers)
    published: datetime | None  # timezone-aware UTC
    arxiv_id: str | None = None
    version: int | None = None  # arXiv version number when the feed gives one
    doi: str | None = None  # lower case
    categories: tuple[str, ...] = ()
    announce_type: str | None = None  # arXiv RSS: new / cross / replace / replace-cross
    upvotes: int | None = None  # Hugging Face daily papers


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    papers: tuple[PaperIn, ...]
    skipped: tuple[str, ...] = field(default=())  # one line per entry skipped, saying why


# arXiv RSS 2.0 description: "arXiv:2203.01250v3 Announce Type: replace-cross \nAbstract: …"
_ANNOUNCE = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*([\w-]+)\s*(?:Abstract:\s*)?", re.I)
# Old arXiv RSS 1.0 title suffix: "Title. (arXiv:1805.06430v2 [nucl-th] UPDATED)"
_RDF_SUFFIX = re.compile(
    rf"\.?\s*\(arXiv:(?:{ID_PATTERN})(?:v(\d+))?\s*\[([^\]]*)\]\s*(UPDATED|CROSS LISTED)?\)\s*$",
    re.I,
)
_RDF_TYPES = {"UPDATED": "replace", "CROSS LISTED": "cross"}
# arXiv lists authors separated by commas; a collaboration comes first, before a colon:
# "LHCb collaboration: R. Aaij, …, et al. (909 additional authors not shown)".
_NAME_SEPARATORS = re.compile(r"\s*[,:;，、；：]\s*")
_ANCHOR = re.compile(r"<a\b[^>]*>(.*?)</a\s*>", re.I | re.S)
_HTML_TYPES = ("text/html", "application/xhtml+xml", "html", "xhtml")
# MathML in an RSS title (Elsevier's, Wiley's: <mml:math …>…</mml:math>), which feedparser does
# not count as HTML: the title showed its tags as text. An opening and a closing tag, each found
# in one linear search (one pattern for the pair took 10 s for 120 KB of "<math>")
_MATH_OPEN = re.compile(r"<(?:[A-Za-z][\w.-]*:)?math\b[^<>]*>")
_MATH_CLOSE = re.compile(r"</(?:[A-Za-z][\w.-]*:)?math\s*>")
MAX_ENTRIES = 10_000  # entries read from one feed (arXiv serves at most 2,000 per request)


def parse_feed(content: bytes, *, url: str = "", content_type: str | None = None) -> ParsedFeed:
    """Parse the bytes of one feed response; raise `ParseError` when they are not a feed.

    In-process and unbounded in time and memory for what got past the checks: the ingest job
    runs it through `daemon.ingest.bounded`, which adds the budget."""
    head = content.removeprefix(b"\xef\xbb\xbf").lstrip()[:1]
    try:
        if head in (b"[", b"{"):
            return _parse_hf(content, url)
        return _parse_xml(content, url, content_type)
    except (RecursionError, NestingError) as exc:  # deeper than any feed: JSON, HTML in a field
        raise _not_a_feed(
            url, f"the document is nested too deeply to be a feed ({exc})", "check the URL"
        ) from exc


# --- helpers -----------------------------------------------------------------------------------


_SLASHED = re.compile(r"\s*(\d{4})/(\d{1,2})/(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*")


def _slashed_date(text: str) -> time.struct_time | None:
    """ "2026/11/28" (and "2026/11/28 10:00:00", taken as UTC), which journal feeds write and
    feedparser read as the first of the month: a paper of the 28th was 27 days old, past
    `digest.max_age_days`, and never in a digest. None for any other text (feedparser's own
    handlers then read it)."""
    m = _SLASHED.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in m.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC).utctimetuple()
    except ValueError:  # 2026/13/45
        return None


feedparser.registerDateHandler(_slashed_date)


def _utc(parsed: object) -> datetime | None:
    if isinstance(parsed, time.struct_time):  # feedparser normalises to UTC
        try:
            return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
        except (OverflowError, ValueError, OSError):  # year 99999 and friends
            return None
    return None


def _iso_utc(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _not_a_feed(url: str, what: str, check: str) -> ParseError:
    return ParseError(f"{url or '<no url>'}: {what}; {check}")


def _url(value: object) -> str:
    """A link as stored: white space removed, empty when longer than any real link."""
    if not isinstance(value, str):
        return ""
    link = "".join(value.split())
    return link if len(link) <= URL_MAX else ""


def _categories(terms: Iterable[object]) -> tuple[str, ...]:
    found = (plain_text(t, CATEGORY_MAX) for t in terms)
    return tuple(dict.fromkeys(t for t in found if t))[:CATEGORIES_MAX]


# --- Hugging Face daily papers (JSON): every field is plain text -------------------------------


def _parse_hf(content: bytes, url: str) -> ParsedFeed:
    try:
        data: object = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _not_a_feed(
            url, f"invalid JSON ({exc})", "check that the URL returns the daily papers API"
        ) from exc
    if isinstance(data, dict) and "jsonfeed.org" in str(data.get("version", "")):
        raise _not_a_feed(
            url,
            "a JSON Feed (jsonfeed.org), which paperwire does not read",
            'use the site\'s RSS or Atom feed (its pages name it in <link rel="alternate">)',
        )
    if isinstance(data, dict) and "error" in data:
        error = plain_text(str(data["error"]), 200)
        raise _not_a_feed(url, f"the API reported an error: {error!r}", "check the URL")
    if not isinstance(data, list) or (
        data and not any(isinstance(i, dict) and isinstance(i.get("paper"), dict) for i in data)
    ):
        raise _not_a_feed(
            url,
            "JSON is not a list of {'paper': {...}} objects",
            "check that the URL is the Hugging Face /api/daily_papers?date=YYYY-MM-DD endpoint",
        )
    papers: list[PaperIn] = []
    skipped: list[str] = []
    for n, item in enumerate(data[:MAX_ENTRIES], 1):
        paper = item.get("paper") if isinstance(item, dict) else None
        if not isinstance(paper, dict):
            skipped.append(f"item {n}: no 'paper' object")
            continue
        result = _hf_paper(item, paper)
        if isinstance(result, str):
            skipped.append(f"item {n}: {result}")
        else:
            papers.append(result)
    if len(data) > MAX_ENTRIES:
        skipped.append(
            f"{len(data) - MAX_ENTRIES:,} items after the first {MAX_ENTRIES:,}: not read"
        )
    return ParsedFeed(
        title="Hugging Face daily papers", papers=tuple(papers), skipped=tuple(skipped)
    )


def _hf_paper(item: Mapping[str, Any], paper: Mapping[str, Any]) -> PaperIn | str:
    """A `PaperIn`, or the reason the item is skipped."""
    raw_id = plain_text(paper.get("id"), 100)
    title = plain_text(paper.get("title") or item.get("title"), TITLE_MAX)
    if not title:
        return f"paper {raw_id or '?'} has no title"
    if not raw_id:
        return f"paper {title[:60]!r} has no id"
    authors = paper.get("authors")
    # every author, "hidden" ones too: the flag is an author's choice not to show the paper
    # on their own profile (Hugging Face's "Show on profile"), not a name the paper lacks
    names = tuple(
        name
        for a in (authors if isinstance(authors, list) else [])[:AUTHORS_MAX]
        if isinstance(a, dict) and (name := plain_text(a.get("name"), NAME_MAX))
    )
    upvotes = paper.get("upvotes")
    arxiv_id, version = bare_arxiv_id(raw_id) or (None, None)
    page = _url(f"https://huggingface.co/papers/{raw_id}")
    return PaperIn(
        key=paper_key(arxiv_id, None, page),
        title=title,
        abstract=plain_text(paper.get("summary") or item.get("summary"), ABSTRACT_MAX),
        authors=names,
        url=f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else page,
        published=_iso_utc(paper.get("publishedAt")) or _iso_utc(item.get("publishedAt")),
        arxiv_id=arxiv_id,
        version=version,
        upvotes=upvotes
        if isinstance(upvotes, int) and not isinstance(upvotes, bool) and 0 <= upvotes < 2**31
        else None,
    )


# --- RSS / Atom (feedparser) -----------------------------------------------------------------

BROKEN_XML = "the feed's XML is broken"


def _parse_xml(content: bytes, url: str, content_type: str | None) -> ParsedFeed:
    # Always bytes: feedparser would fetch a URL or open a path if given a str. Its sanitizer
    # and relative-URI resolution are off: every HTML field goes through `html_text` anyway.
    parsed = feedparser.parse(
        safe_xml(content, url, content_type),
        response_headers={"content-location": url},
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    entries: list[Any] = list(parsed.entries)
    if not entries and not parsed.get("version"):
        why = parsed.get("bozo_exception") or "no RSS/Atom root element"
        raise _not_a_feed(
            url,
            f"not an RSS/Atom feed ({why})",
            "check that the URL points to a feed and not to an HTML page or an error response",
        )
    for e in entries:  # the arXiv API reports errors as a single entry titled "Error"
        if "arxiv.org/api/errors" in str(e.get("id", "")) and e.get("title") == "Error":
            raise ParseError(
                f"{url or '<no url>'}: the arXiv API reported an error: "
                f"{_field(e, 'summary', 500) or e.get('id')}; check the query parameters"
            )
    channel = parsed.feed
    channel_date = _utc(channel.get("updated_parsed")) or _utc(channel.get("published_parsed"))
    papers: list[PaperIn] = []
    skipped: list[str] = []
    for n, e in enumerate(entries[:MAX_ENTRIES], 1):
        result = _entry_paper(e, channel_date, rss=str(parsed.get("version", "")).startswith("rss"))
        if isinstance(result, str):
            skipped.append(f"entry {n}: {result}")
        else:
            papers.append(result)
    if len(entries) > MAX_ENTRIES:
        skipped.append(
            f"{len(entries) - MAX_ENTRIES:,} entries after the first {MAX_ENTRIES:,}: not read"
        )
    if parsed.get("bozo") and isinstance(parsed.get("bozo_exception"), SAXException):
        # malformed XML (cut short, a stray "&"): what came before the fault was read
        fault = parsed.get("bozo_exception")
        skipped.append(f"{BROKEN_XML}: {fault}; entries after it may be lost")
    return ParsedFeed(
        title=_field(channel, "title", FEED_TITLE_MAX), papers=tuple(papers), skipped=tuple(skipped)
    )


def _field(item: Mapping[str, Any], name: str, limit: int, *, rss: bool = False) -> str:
    """A text field by its declared kind: HTML is read as HTML, anything else stays text.
    `rss`: a field of RSS, whose kind feedparser guessed (RSS declares none), and guessed
    text for HTML with a "<" in its words (`reads_as_html`)."""
    detail = item.get(f"{name}_detail")
    kind = detail.get("type") if isinstance(detail, Mapping) else None
    value = item.get(name)
    if isinstance(kind, str) and kind.lower() in _HTML_TYPES:
        return html_text(value, limit)
    if isinstance(value, str) and _MATH_OPEN.search(value) and _MATH_CLOSE.search(value):
        return html_text(value, limit)
    if rss and isinstance(value, str) and reads_as_html(value, limit):
        return html_text(value, limit)
    return plain_text(value, limit)


def _names(raw: str, *, rss: bool, arxiv_list: bool, listed: bool = False) -> list[str]:
    """The people in one author field. An Atom name is text; an RSS author field may hold HTML
    (the old arXiv RSS 1.0 feed: one link per author). An arXiv RSS list is split (one name per
    link, else at commas and a collaboration's colon); "et al. (N additional authors not
    shown)" is nobody. `listed`: a journal's one author field, which may name several people
    (`_people`)."""
    if arxiv_list and (anchors := _ANCHOR.findall(raw)):
        pieces = [html_text(a, NAME_MAX) for a in anchors]
    else:
        limit = NAME_MAX * AUTHORS_MAX if arxiv_list or listed else NAME_MAX
        is_html = rss and looks_like_markup(raw)
        text = html_text(raw, limit) if is_html else plain_text(raw, limit)
        pieces = (
            _NAME_SEPARATORS.split(text)
            if arxiv_list
            else _people(text)
            if listed
            else _EAST_ASIAN_SEPARATORS.split(text)  # one person, unless listed the CJK way
        )
    return [cap(p, NAME_MAX) for p in pieces if is_name(p)]


# A journal's one author field: "A, B, and C", "A; B", bioRxiv's "Kim, S., Okafor, C. N.",
# and Chinese or Japanese lists: "张三、李四", "张三，李四" (fullwidth comma), "张三, 李四"
_LIST_SEPARATORS = re.compile(r"\s*[;；]\s*|\s*[,，、]\s*(?:(?:and|&)\s+)?|\s+(?:and|&)\s+")
_SEMICOLONS = re.compile(r"\s*[;；]\s*(?:(?:and|&)\s+)?")
# what separates names in Chinese and Japanese, and never stands within one name
_EAST_ASIAN_SEPARATORS = re.compile(r"\s*[、，；]\s*")
# initials: "S.", "C. N.", "J.-P.", "SY" (single capitals: "Bo Li" is a name)
_INITIALS = re.compile(r"(?:[A-Z]\.?(?:\s*-\s*|\s+)?){1,4}")
# what follows a name after a comma and looks like initials: "Jane Doe, MD" is no "MD Jane Doe"
_AFTER_NAME = frozenset({"MD", "M.D.", "DO", "D.O.", "RN", "R.N.", "MPH", "II", "III", "IV"})


# ScienceDirect's description: "Publication date: … Source: … Author(s): A, B, C" (no dc:creator);
# only there: another feed's abstract that mentions "Author(s):" is no list of its authors
_SCIENCEDIRECT = "Publication date:"
_AUTHORS_LINE = " Author(s):"


def _people(text: str) -> list[str]:
    """The people one author field names: "Alice Brown, Bob Chen, and Carla Diaz" or
    "A. Brown; B. Chen" are three and two, "Doe, Jane; Roe, Richard" two; bioRxiv's "Kim, S.,
    Okafor, C. N." ("Last, Initials" pairs) is "S. Kim", "C. N. Okafor". Anything else
    ("Smith, John", "Jane Doe", "Doe, Jane and Roe, Richard") stays one field, as it was.
    Chinese, Japanese and Korean names have no space within ("张三, 李四" is two, as are
    "张三、李四" and "张三，李四": those separators only ever part names)."""
    pieces = [p.strip() for p in _LIST_SEPARATORS.split(text) if p.strip()]
    if len(pieces) < 2:
        return [text]
    if _EAST_ASIAN_SEPARATORS.search(text):
        return pieces
    if ";" in text:  # each part is one person, maybe "Last, First" or "Last, Initials"
        return [name for part in _SEMICOLONS.split(text) if part for name in _people(part)]
    lasts, firsts = pieces[::2], pieces[1::2]
    if len(pieces) % 2 == 0 and all(
        _INITIALS.fullmatch(p) and p not in _AFTER_NAME for p in firsts
    ):
        return [f"{initials} {last}" for last, initials in zip(lasts, firsts, strict=True)]
    if all(len(p.split()) >= 2 or _east_asian(p) for p in pieces):
        return pieces
    return [text]


def _east_asian(name: str) -> bool:
    """A name in Chinese, Japanese or Korean (张三, 山田 太郎, 김철수): wide characters (East
    Asian Width W or F) and no Latin letter; recommender.features reads names alike."""
    return (
        not name.isascii()
        and any(unicodedata.east_asian_width(c) in "WF" for c in name)
        and not re.search(r"[A-Za-z]", name)
    )


def _authors(
    e: Mapping[str, Any], *, rss: bool, arxiv: bool, listing: bool = False
) -> tuple[str, ...]:
    """`listing`: an arXiv listing (announce type known), whose Atom feed too lists its
    authors in one dc:creator (the API's Atom has one <author> each)."""
    raw = [a.get("name") for a in e.get("authors") or [] if isinstance(a, dict)]
    # arXiv's dc:creator: everyone in one field
    arxiv_list = (rss or listing) and arxiv and len(raw) == 1
    listed = rss and not arxiv and len(raw) == 1  # a journal's, the same (ACS, bioRxiv)
    names: list[str] = []
    for value in raw[:AUTHORS_MAX]:
        if isinstance(value, str):
            names.extend(_names(value, rss=rss, arxiv_list=arxiv_list, listed=listed))
    return tuple(names[:AUTHORS_MAX])


def _abstract(e: Mapping[str, Any]) -> tuple[str, str | None]:
    """(abstract, announce type). An arXiv RSS 2.0 description is plain text after its
    "arXiv:… Announce Type: …" prefix; any other summary is read by its declared kind."""
    raw = e.get("summary")
    if isinstance(raw, str) and (m := _ANNOUNCE.match(raw)):
        return plain_text(raw[m.end() :], ABSTRACT_MAX), m.group(1).lower()
    contents = e.get("content")
    if "summary_detail" not in e and contents and isinstance(contents[0], Mapping):
        # no summary: feedparser copies the first <content> (Atom, RSS content:encoded) into
        # it without its type, which says HTML (PLOS's and most blogs' Atom feeds)
        return _field(
            {"summary": raw, "summary_detail": contents[0]}, "summary", ABSTRACT_MAX
        ), None
    return _field(e, "summary", ABSTRACT_MAX), None


def _entry_paper(
    e: Mapping[str, Any], channel_date: datetime | None, *, rss: bool
) -> PaperIn | str:
    """A `PaperIn`, or the reason the entry is skipped. `rss`: an RSS feed (arXiv's list its
    authors in one dc:creator; the arXiv API, Atom, has one <author> each)."""
    guid = plain_text(e.get("id"), 10**6) or None
    link = _url(e.get("link")) or None
    label = cap(guid or link or "without id", 200)
    title = _field(e, "title", TITLE_MAX, rss=rss)
    if not guid and not link:
        return f"{title[:60]!r} has no link and no id"
    if not title:
        return f"{label} has no title"
    hrefs = [lk.get("href") for lk in e.get("links") or [] if isinstance(lk, dict)]
    ref = find_arxiv_ref(guid, link, *hrefs)
    arxiv_id, version = ref if ref else (None, None)

    abstract, announce_type = _abstract(e)
    announce_type = plain_text(e.get("arxiv_announce_type"), 30) or announce_type
    categories = [t.get("term") for t in e.get("tags") or [] if isinstance(t, dict)]
    if arxiv_id and (m := _RDF_SUFFIX.search(title)):  # old RSS 1.0 title suffix
        title = title[: m.start()].strip()
        version = version or (int(m.group(1)) if m.group(1) else None)
        categories.insert(0, m.group(2))
        announce_type = announce_type or _RDF_TYPES.get((m.group(3) or "").upper(), "new")
    if announce_type and version is None and isinstance(e.get("summary"), str):
        version = v[1] if (v := find_arxiv_ref(e["summary"][:100])) else None

    doi = find_doi(
        (e.get("arxiv_doi"), e.get("prism_doi"), e.get("dc_identifier")), (guid, link, *hrefs)
    )
    published = (
        _utc(e.get("published_parsed"))
        or _utc(e.get("updated_parsed"))
        or _utc(e.get("created_parsed"))
        # journals' PRISM dates (ISO 8601), which feedparser keeps as text
        or _iso_utc(e.get("prism_publicationdate"))
        or _iso_utc(e.get("prism_coverdate"))
        or (channel_date if arxiv_id else None)  # arXiv RSS 1.0: the channel's dc:date
    )
    page = link or (guid if guid and guid.startswith(("http://", "https://")) else "")
    authors = _authors(e, rss=rss, arxiv=bool(arxiv_id), listing=bool(announce_type))
    line = abstract.rfind(_AUTHORS_LINE)  # ScienceDirect's authors, in the text
    if not authors and line >= 0 and abstract.startswith(_SCIENCEDIRECT):
        listed = abstract[line + len(_AUTHORS_LINE) :].strip()
        names = _people(listed) if listed else []
        authors = tuple(cap(p, NAME_MAX) for p in names if is_name(p))[:AUTHORS_MAX]
        abstract = abstract[:line].rstrip()
    byline = f"by {', '.join(authors)} "  # PLOS's content opens with its authors again
    if authors and abstract.startswith(byline):
        abstract = abstract[len(byline) :]
    return PaperIn(
        key=paper_key(arxiv_id, doi, guid or link or ""),
        title=title,
        abstract=abstract,
        authors=authors,
        url=f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else _url(page),
        published=published,
        arxiv_id=arxiv_id,
        version=version,
        doi=doi,
        categories=_categories(categories),
        announce_type=announce_type,
    )

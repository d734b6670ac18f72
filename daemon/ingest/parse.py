"""Feed bytes → papers. Takes bytes, returns data; never touches the network or the database.

CONTRACT (owned by the parsing work): `parse_feed(content, *, url, content_type)` returns a
`ParsedFeed`. Format is detected from the bytes: JSON → Hugging Face daily papers; anything else →
feedparser (RSS 0.9x/1.0/2.0, Atom; arXiv RSS and arXiv API are Atom/RSS with arXiv extensions).
"""

from __future__ import annotations

import calendar
import html
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import feedparser
import nh3

from daemon.errors import ParseError
from daemon.ingest.identity import ID_PATTERN, bare_arxiv_id, find_arxiv_ref


@dataclass(frozen=True)
class PaperIn:
    """One paper as a feed announced it, normalised.

    `key` is the canonical identity: ``arxiv:<id without version>`` (e.g. ``arxiv:2503.01785``,
    ``arxiv:astro-ph/0601001``) when an arXiv id can be found anywhere in the entry (id, guid, link,
    HF paper id), else ``doi:<lower-cased doi>``, else ``guid:<the feed's guid or link>``.
    """

    key: str
    title: str  # plain text, whitespace collapsed
    abstract: str  # plain text (HTML stripped, whitespace collapsed); "" when absent
    authors: tuple[str, ...]
    url: str  # the abstract page (https://arxiv.org/abs/<id> for arXiv papers)
    published: datetime | None  # timezone-aware UTC
    arxiv_id: str | None = None
    version: int | None = None  # arXiv version number when the feed gives one
    doi: str | None = None
    categories: tuple[str, ...] = ()
    announce_type: str | None = None  # arXiv RSS: new / cross / replace / replace-cross
    upvotes: int | None = None  # Hugging Face daily papers


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    papers: tuple[PaperIn, ...]
    skipped: tuple[str, ...] = field(default=())  # one line per entry skipped, saying why


# arXiv RSS 2.0 description: "arXiv:2203.01250v3 Announce Type: replace-cross \nAbstract: …"
_ANNOUNCE = re.compile(r"^arXiv:\S+\s+Announce Type:\s*([\w-]+)\s*(?:Abstract:\s*)?", re.I)
# Old arXiv RSS 1.0 title suffix: "Title. (arXiv:1805.06430v2 [nucl-th] UPDATED)"
_RDF_SUFFIX = re.compile(
    rf"\.?\s*\(arXiv:(?:{ID_PATTERN})(?:v(\d+))?\s*\[[^\]]*\]\s*(UPDATED|CROSS LISTED)?\)\s*$", re.I
)
_RDF_TYPES = {"UPDATED": "replace", "CROSS LISTED": "cross"}
_WS = re.compile(r"\s+")
# A "<" that starts neither a tag (<b>, </p>, <a href=…>, <br/>) nor a comment/doctype (<!…).
_LONE_LT = re.compile(r"<(?!/?[a-z][a-z0-9-]*(?:\s[^<>]*)?/?>|!)", re.I)


def parse_feed(content: bytes, *, url: str = "", content_type: str | None = None) -> ParsedFeed:
    """Parse the bytes of one feed response; raise `ParseError` when they are not a feed."""
    head = content.removeprefix(b"\xef\xbb\xbf").lstrip()[:1]
    if head in (b"[", b"{"):
        return _parse_hf(content, url)
    return _parse_xml(content, url, content_type)


# --- text helpers ----------------------------------------------------------------------------


def _text(value: object) -> str:
    """Untrusted HTML (or text) → plain text: tags dropped, entities decoded, whitespace collapsed.

    A ``<`` that does not open a real-looking tag is text, not markup: arXiv abstracts are full of
    ``$y(u)<y(v)$`` and an HTML parser would swallow everything after it. Repeated until stable so
    that double-escaped markup (``&amp;lt;script&amp;gt;``) cannot come back as a tag.
    """
    if not isinstance(value, str):
        return ""
    text = value
    for _ in range(5):
        cleaned = html.unescape(nh3.clean(_LONE_LT.sub("&lt;", text), tags=set()))
        if cleaned == text:
            break
        text = cleaned
    else:  # still changing (escaped over and over): stop decoding, keep it inert
        text = nh3.clean(_LONE_LT.sub("&lt;", text), tags=set())
    return _WS.sub(" ", text).strip()


def _utc(parsed: object) -> datetime | None:
    if isinstance(parsed, time.struct_time):  # feedparser normalises to UTC
        return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
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


# --- Hugging Face daily papers (JSON) --------------------------------------------------------


def _parse_hf(content: bytes, url: str) -> ParsedFeed:
    try:
        data: object = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _not_a_feed(
            url, f"invalid JSON ({exc})", "check that the URL returns the daily papers API"
        ) from exc
    if isinstance(data, dict) and "error" in data:
        raise _not_a_feed(url, f"the API reported an error: {data['error']!r}", "check the URL")
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
    for n, item in enumerate(data, 1):
        paper = item.get("paper") if isinstance(item, dict) else None
        if not isinstance(paper, dict):
            skipped.append(f"item {n}: no 'paper' object")
            continue
        result = _hf_paper(item, paper)
        if isinstance(result, str):
            skipped.append(f"item {n}: {result}")
        else:
            papers.append(result)
    return ParsedFeed(
        title="Hugging Face daily papers", papers=tuple(papers), skipped=tuple(skipped)
    )


def _hf_paper(item: Mapping[str, Any], paper: Mapping[str, Any]) -> PaperIn | str:
    """A `PaperIn`, or the reason the item is skipped."""
    raw_id = str(paper.get("id") or "").strip()
    title = _text(paper.get("title") or item.get("title"))
    if not title:
        return f"paper {raw_id or '?'} has no title"
    if not raw_id:
        return f"paper {title[:60]!r} has no id"
    authors = paper.get("authors")
    names = tuple(
        name
        for a in (authors if isinstance(authors, list) else [])
        if isinstance(a, dict) and (name := _text(a.get("name")))
    )
    upvotes = paper.get("upvotes")
    arxiv_id, version = bare_arxiv_id(raw_id) or (None, None)
    page = f"https://huggingface.co/papers/{raw_id}"
    return PaperIn(
        key=f"arxiv:{arxiv_id}" if arxiv_id else f"guid:{page}",
        title=title,
        abstract=_text(paper.get("summary") or item.get("summary")),
        authors=names,
        url=f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else page,
        published=_iso_utc(paper.get("publishedAt")) or _iso_utc(item.get("publishedAt")),
        arxiv_id=arxiv_id,
        version=version,
        upvotes=upvotes if isinstance(upvotes, int) and not isinstance(upvotes, bool) else None,
    )


# --- RSS / Atom (feedparser) -----------------------------------------------------------------


def _parse_xml(content: bytes, url: str, content_type: str | None) -> ParsedFeed:
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    # Always bytes: feedparser would fetch a URL or open a path if given a str.
    parsed = feedparser.parse(content, response_headers=headers)
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
                f"{_text(e.get('summary')) or e.get('id')}; check the query parameters"
            )
    papers: list[PaperIn] = []
    skipped: list[str] = []
    for n, e in enumerate(entries, 1):
        result = _entry_paper(e)
        if isinstance(result, str):
            skipped.append(f"entry {n}: {result}")
        else:
            papers.append(result)
    return ParsedFeed(
        title=_text(parsed.feed.get("title")), papers=tuple(papers), skipped=tuple(skipped)
    )


def _entry_paper(e: Mapping[str, Any]) -> PaperIn | str:
    """A `PaperIn`, or the reason the entry is skipped."""
    guid: str | None = e.get("id") or None
    link: str | None = e.get("link") or None
    label = guid or link or "without id"
    if not guid and not link:
        return f"{_text(e.get('title'))[:60]!r} has no link and no id"
    title = _text(e.get("title"))
    if not title:
        return f"{label} has no title"
    hrefs = [lk.get("href") for lk in e.get("links") or [] if isinstance(lk, dict)]
    ref = find_arxiv_ref(guid, link, *hrefs)
    arxiv_id, version = ref if ref else (None, None)

    announce_type = e.get("arxiv_announce_type") or None
    if arxiv_id and (m := _RDF_SUFFIX.search(title)):  # old RSS 1.0 title suffix
        title = title[: m.start()].strip()
        version = version or (int(m.group(1)) if m.group(1) else None)
        announce_type = announce_type or _RDF_TYPES.get((m.group(2) or "").upper(), "new")
    abstract = _text(e.get("summary"))
    if m := _ANNOUNCE.match(abstract):  # arXiv RSS 2.0 description prefix
        announce_type = announce_type or m.group(1).lower()
        version = version or (v[1] if (v := find_arxiv_ref(abstract[: m.end()])) else None)
        abstract = abstract[m.end() :]

    names = [
        n for a in e.get("authors") or [] if isinstance(a, dict) and (n := _text(a.get("name")))
    ]
    if arxiv_id and len(names) == 1:  # arXiv RSS: one dc:creator, authors separated by commas
        names = [n.strip() for n in names[0].split(",") if n.strip()]
    doi: str | None = (e.get("arxiv_doi") or e.get("prism_doi") or "").strip() or None
    if arxiv_id:
        key, page = f"arxiv:{arxiv_id}", f"https://arxiv.org/abs/{arxiv_id}"
    else:
        key = f"doi:{doi.lower()}" if doi else f"guid:{guid or link}"
        page = link or (guid if guid and guid.startswith(("http://", "https://")) else "")
    tags = [t.get("term") for t in e.get("tags") or [] if isinstance(t, dict)]
    return PaperIn(
        key=key,
        title=title,
        abstract=abstract,
        authors=tuple(names),
        url=page,
        published=_utc(e.get("published_parsed"))
        or _utc(e.get("updated_parsed"))
        or _utc(e.get("created_parsed")),
        arxiv_id=arxiv_id,
        version=version,
        doi=doi,
        categories=tuple(
            dict.fromkeys(t.strip() for t in tags if isinstance(t, str) and t.strip())
        ),
        announce_type=announce_type,
    )

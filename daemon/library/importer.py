"""A subscriber's library → likes: match each entry to a stored paper, fetch what arXiv knows,
create the rest from the file, and like them all in one transaction.

Matching goes through `daemon.ingest.identity` as everywhere else: arXiv id (or key), then
DOI, then normalised title with a shared author. An entry with an arXiv id that matches no
stored paper is asked from the arXiv API (`daemon.ingest.arxiv`: 100 ids a request, arXiv's
request interval); what arXiv cannot give (offline, a DOI-only entry, an error) is stored from
the file's own title, abstract, authors and year, so an import works without a network. Papers
stored this way are not news (they never show up in today's digests) unless they were
published within the digest window.

Importing the same library twice changes nothing the second time (already liked); a broken
entry is reported and the others are imported; nothing is stored for an entry that fails.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

from daemon.errors import NotFoundError
from daemon.ingest.identity import (
    Identity,
    arxiv_ids_in,
    bare_arxiv_id,
    best_match,
    paper_key,
    plausible_id,
    title_key,
)
from daemon.library.read import Entry, Library, LibraryError, Problem, read_library
from daemon.library.zotero import ZoteroSource, read_zotero

if TYPE_CHECKING:
    from daemon.app import App
    from daemon.db.rows import PaperRow
    from daemon.ingest.arxiv import ArxivLookup
    from daemon.ingest.parse import PaperIn


@dataclass(frozen=True)
class Item:
    """One entry of the report: where it is in the file, the paper's key and title."""

    where: str
    key: str
    title: str


@dataclass
class ImportReport:
    """What an import did, entry by entry. The lists are disjoint: an entry is matched,
    fetched or created (and newly liked), already liked, a duplicate, skipped (no paper: a
    volume other entries cross-reference), or not imported."""

    user: str
    source: str
    format: str
    matched: list[Item] = field(default_factory=list)  # a stored paper, now liked
    fetched: list[Item] = field(default_factory=list)  # from the arXiv API, now liked
    created: list[Item] = field(default_factory=list)  # from the file's own fields, now liked
    already_liked: list[Item] = field(default_factory=list)
    duplicates: list[Problem] = field(default_factory=list)  # the same paper as an earlier entry
    unreadable: list[Problem] = field(default_factory=list)  # could not be read
    not_found: list[Problem] = field(default_factory=list)  # read, but nothing to store
    skipped: list[Problem] = field(default_factory=list)  # no paper (a crossref volume)
    arxiv_requests: int = 0
    arxiv_error: str | None = None

    @property
    def liked(self) -> int:
        return len(self.matched) + len(self.fetched) + len(self.created)

    @property
    def failed(self) -> list[Problem]:
        return [*self.unreadable, *self.not_found]


def read_source(
    file: str | None,
    *,
    fmt: str | None = None,
    zotero: ZoteroSource | None = None,
    zotero_endpoint: str = "https://api.zotero.org",
    stdin: BinaryIO | None = None,
) -> tuple[str, Library]:
    """(a name for messages, the library) of a file, `-` (standard input) or Zotero."""
    if zotero is not None:
        if file is not None:
            raise LibraryError("give a FILE or --zotero-library, not both")
        return f"Zotero library {zotero.library_id}", read_zotero(zotero, endpoint=zotero_endpoint)
    if file is None:
        raise LibraryError("give a FILE (or - for standard input) or --zotero-library")
    if file == "-":
        data = (stdin or sys.stdin.buffer).read()
        return "standard input", read_library(data, name="standard input", fmt=fmt)
    path = Path(file)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise LibraryError(f"{file}: cannot read the file ({e.strerror})") from None
    return file, read_library(data, name=file, fmt=fmt)


def import_source(
    app: App,
    user: str,
    file: str | None,
    *,
    fmt: str | None = None,
    zotero: ZoteroSource | None = None,
    stdin: BinaryIO | None = None,
) -> ImportReport:
    """`paperwire import`: read the library (file, `-` or Zotero), then `import_library`."""
    app.store.people.get(user)  # an unknown user fails before anything is read or fetched
    source, library = read_source(
        file,
        fmt=fmt,
        zotero=zotero,
        zotero_endpoint=str(app.settings.ingest.zotero_api_url),
        stdin=stdin,
    )
    return import_library(app, user, library, app.clock(), source=source)


def _identity(e: Entry) -> Identity:
    return Identity(_key(e), e.arxiv_id, e.doi, title_key(e.title), e.authors)


def _key(e: Entry) -> str:
    """The key a paper made from `e` gets: arXiv id, else DOI, else its link, else its title.
    A link to a site's home page (no path, no query) names no paper: two papers giving the
    same journal's site would be one."""
    try:
        parts = urlsplit(e.url)
        page = e.url if parts.path.strip("/") or parts.query else ""
    except ValueError:  # "http://[journal…/1": not a site's home page either, a key as it is
        page = e.url
    fallback = page or "library:" + (title_key(e.title) or " ".join(e.title.casefold().split()))
    return paper_key(e.arxiv_id, e.doi, fallback)


def import_library(
    app: App,
    user: str,
    library: Library,
    now: datetime,
    *,
    source: str = "",
    max_fetch: int | None = None,
) -> ImportReport:
    """Like every paper of `library` for `user`: matched, fetched, or created from the file.
    `max_fetch` bounds the arXiv ids asked from the API (the web page asks one request's
    worth, 100, so an upload never waits on arXiv's request interval); the others are created
    from the file, or reported when the file gives no title — importing again fetches them."""
    u = app.store.people.get(user)
    report = ImportReport(
        u.name,  # as stored: "ADA" is ada's
        source,
        library.format,
        unreadable=list(library.problems),
        skipped=list(library.skipped),
    )
    entries = _without_duplicates(library.entries, report)
    stored = app.store.papers.match([_identity(e) for e in entries])
    matched = [(e, row) for e, row in zip(entries, stored, strict=True) if row is not None]
    unmatched = [e for e, row in zip(entries, stored, strict=True) if row is None]
    wanted = list(dict.fromkeys(e.arxiv_id for e in unmatched if e.arxiv_id))
    later = wanted[max_fetch:] if max_fetch is not None else []
    lookup = _ask_arxiv(app, wanted[: len(wanted) - len(later)])
    lookup.missing.update(
        dict.fromkeys(
            later,
            f"not asked: at most {max_fetch} papers are fetched from arXiv in one import "
            "(import the file again for the next ones)",
        )
    )
    report.arxiv_requests, report.arxiv_error = lookup.requests, lookup.error
    fetched: list[tuple[Entry, PaperIn]] = []
    created: list[tuple[Entry, PaperIn]] = []
    for e in unmatched:
        paper = lookup.found.get(e.arxiv_id) if e.arxiv_id else None
        if paper is not None:
            fetched.append((e, replace(paper, doi=paper.doi or e.doi)))
        elif e.title:
            created.append((e, paper_from_entry(e)))
        else:
            why = lookup.missing.get(e.arxiv_id or "", "not stored")
            report.not_found.append(Problem(e.where, _not_found(e, why)))
    result = app.store.papers.like_library(
        u.id,
        [row.id for _, row in matched],
        [p for _, p in (*fetched, *created)],
        now,
        news=_news(app, now, [p for _, p in fetched]),  # not `created`: its date is the file's
    )
    for e, row in matched:
        item = Item(e.where, row.key, row.title)
        (report.already_liked if row.id in result.already_liked else report.matched).append(item)
    for kind, pairs in ((report.fetched, fetched), (report.created, created)):
        for e, p in pairs:
            item = Item(e.where, p.key, p.title)
            liked_before = result.paper_ids[p.key] in result.already_liked
            (report.already_liked if liked_before else kind).append(item)
    return report


def _news(app: App, now: datetime, fetched: Sequence[PaperIn]) -> set[str]:
    """The keys of the papers fetched from arXiv that are news for everyone: published within
    the digest window (a paper of today's listing liked before the ingest saw it is still sent
    to the others). A paper made from a file's own fields never is: its date is whatever the
    file says, and anyone with a manage link would put their paper in everyone's digest."""
    since = now - timedelta(hours=app.settings.digest.window_hours)
    return {p.key for p in fetched if p.published is not None and since <= p.published <= now}


def _not_found(e: Entry, why: str) -> str:
    if e.arxiv_id:
        return (
            f"arXiv {e.arxiv_id} is not stored and could not be fetched: {why}; "
            "the file gives no title to store it from"
        )
    return f"DOI {e.doi} is not stored, and the file gives no title to store it from"


def _without_duplicates(entries: Sequence[Entry], report: ImportReport) -> list[Entry]:
    """The entries, each paper once: an entry that is the same paper as an earlier one (by
    `same_paper`, as feeds are matched: arXiv id or key, DOI, or title with a shared author)
    is a duplicate, reported, and gives the earlier entry what it lacks — Google Scholar's
    entry of a paper (a title) and arXiv's (its id) are imported once, as the arXiv paper."""
    kept: list[Entry] = []
    index: dict[tuple[str, str], list[int]] = {}  # slot → entries of `kept` that fill it
    for e in entries:
        ident = _identity(e)
        candidates = sorted({i for s in _slots(ident) for i in index.get(s, [])})
        best = best_match(ident, [_identity(kept[i]) for i in candidates])
        if best is None:
            kept.append(e)
            for s in _slots(ident):
                index.setdefault(s, []).append(len(kept) - 1)
            continue
        i = candidates[best]
        first = kept[i]
        merged = _merged(first, e)
        kept[i] = merged
        for s in _slots(_identity(merged)):
            if i not in index.setdefault(s, []):
                index[s].append(i)
        gained = [
            f"{label} {value}"
            for label, value, before in (
                ("arXiv id", merged.arxiv_id, first.arxiv_id),
                ("DOI", merged.doi, first.doi),
            )
            if value and not before
        ]
        kept_ids = f" (its {' and '.join(gained)} {'is' if len(gained) == 1 else 'are'} kept)"
        report.duplicates.append(
            Problem(e.where, f"the same paper as {first.where}" + (kept_ids if gained else ""))
        )
    return kept


def _slots(ident: Identity) -> list[tuple[str, str]]:
    slots = [("key", ident.key), ("arxiv", ident.arxiv_id), ("doi", ident.doi)]
    slots.append(("title", ident.title_key))
    return [(kind, value) for kind, value in slots if value]


def _merged(first: Entry, later: Entry) -> Entry:
    """`first` with what it lacks taken from `later`, the same paper."""
    return replace(
        first,
        arxiv_id=first.arxiv_id or later.arxiv_id,
        doi=first.doi or later.doi,
        title=first.title or later.title,
        abstract=first.abstract or later.abstract,
        authors=first.authors or later.authors,
        year=first.year or later.year,
        url=first.url or later.url,
    )


def _ask_arxiv(app: App, ids: Sequence[str]) -> ArxivLookup:
    from daemon.ingest.arxiv import ArxivLookup, fetch_by_ids

    if not ids:
        return ArxivLookup()
    ing = app.settings.ingest
    return fetch_by_ids(
        app.fetcher,
        ids,
        api_url=str(ing.arxiv_api_url),
        interval=ing.arxiv_min_interval_seconds,
    )


def paper_from_entry(e: Entry) -> PaperIn:
    """A paper from a library entry's own fields (arXiv could not give it, or it is no arXiv
    paper): its link is the arXiv page, else the DOI's, else the file's URL; dated 1 January
    of its year."""
    from daemon.ingest.parse import PaperIn

    if e.arxiv_id:
        url = f"https://arxiv.org/abs/{e.arxiv_id}"
    elif e.doi:
        url = f"https://doi.org/{e.doi}"
    else:
        url = e.url
    return PaperIn(
        key=_key(e),
        title=e.title,
        abstract=e.abstract,
        authors=e.authors,
        url=url,
        published=datetime(e.year, 1, 1, tzinfo=UTC) if e.year else None,
        arxiv_id=e.arxiv_id,
        doi=e.doi,
    )


# ---- `paperwire like USER ID…` ------------------------------------------------------------------


@dataclass(frozen=True)
class Liked:
    ref: str
    paper: PaperRow | PaperIn
    fetched: bool = False
    already: bool = False
    was_disliked: bool = False  # a dislike, now a like


@dataclass
class LikeReport:
    user: str  # the handle as stored (the one given may be in another case)
    liked: list[Liked] = field(default_factory=list)
    failed: list[Problem] = field(default_factory=list)


def like_papers(app: App, user: str, refs: Sequence[str]) -> LikeReport:
    """Like each paper `refs` names (key, arXiv id or URL, DOI, database id); arXiv ids that
    are not stored are fetched from the arXiv API. A ref that names nothing (or cannot be
    fetched) is a failure; the others are liked."""
    u = app.store.people.get(user)
    report = LikeReport(u.name)
    known: list[tuple[str, PaperRow]] = []
    wanted: list[tuple[str, str]] = []  # (ref, arXiv id)
    for ref in refs:
        try:
            known.append((ref, app.store.papers.find(ref)))
            continue
        except NotFoundError as e:
            found = bare_arxiv_id(ref) or next(((i, None) for i in arxiv_ids_in(ref)), None)
            if found is None or not plausible_id(found[0]):  # 9999.99999: no arXiv id
                report.failed.append(Problem(ref, str(e)))
                continue
        wanted.append((ref, found[0]))
    lookup = _ask_arxiv(app, [arxiv_id for _, arxiv_id in wanted])
    fetched: list[tuple[str, PaperIn]] = []
    for ref, arxiv_id in wanted:
        if arxiv_id in lookup.found:
            fetched.append((ref, lookup.found[arxiv_id]))
        else:
            why = lookup.missing.get(arxiv_id, "not found")
            hint = (
                "; run `paperwire ingest` first, or try again when arXiv can be reached"
                if lookup.error
                else ""
            )
            report.failed.append(Problem(ref, f"not stored, and {why}{hint}"))
    now = app.clock()
    result = app.store.papers.like_library(
        u.id,
        [row.id for _, row in known],
        [p for _, p in fetched],
        now,
        news=_news(app, now, [p for _, p in fetched]),
    )
    for ref, row in known:
        already, flipped = row.id in result.already_liked, row.id in result.were_disliked
        report.liked.append(Liked(ref, row, already=already, was_disliked=flipped))
    for ref, p in fetched:
        already = result.paper_ids[p.key] in result.already_liked
        report.liked.append(Liked(ref, p, fetched=True, already=already))
    return report

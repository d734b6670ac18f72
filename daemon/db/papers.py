"""The papers table: every paper ever ingested, by canonical key."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlmodel import Session, col, select

from daemon.db.engine import Repository, no_statement_timeout, table_of
from daemon.db.models import Feedback, Paper
from daemon.db.rows import PaperRow, row_of
from daemon.errors import NotFoundError
from daemon.ingest.identity import Identity, best_match, key_rank, paper_keys, title_key
from daemon.ingest.text import CATEGORIES_MAX

if TYPE_CHECKING:  # parsing (feedparser) is not loaded by commands that only read papers
    from daemon.ingest.parse import PaperIn

POSTGRES_INT_MAX = 2**31 - 1  # PostgreSQL's INTEGER: a larger id is an error, not a miss


class Papers(Repository):
    def upsert(
        self,
        papers: Sequence[PaperIn],
        feed_id: int | None,
        now: datetime,
        *,
        news: bool = True,
    ) -> tuple[int, int]:
        """Store papers, one row per paper whatever the source; returns (new, already known).

        A record joins the stored paper it is the same paper as (`identity.same_paper`: key or
        arXiv id, then DOI, then normalised title) and fills what that row lacks — arXiv id and
        key, DOI, categories, date, abstract, a longer author list, upvotes, version — without
        overwriting better data with worse. A paper already stored keeps its first-seen time
        (a new version or a second feed is not news). `news=False`: new rows are not news
        either (papers from someone's library are no candidates for today's digests)."""
        with self.session() as s:
            rows, new = _upsert(s, papers, feed_id, now, news=lambda p: news)
            s.commit()
        return new, len(rows) - new

    def match(self, idents: Sequence[Identity]) -> list[PaperRow | None]:
        """The stored paper each identity is (`identity.same_paper`: key or arXiv id, then
        DOI, then normalised title with a shared author), or None; in the order given."""
        found: list[PaperRow | None] = []
        with self.read_session() as s:
            for start in range(0, len(idents), _CHUNK):
                chunk = idents[start : start + _CHUNK]
                index = _Index()
                for row in s.exec(select(Paper).where(_candidates(chunk))).all():
                    index.add(row)
                for ident in chunk:
                    hit = index.match(ident)
                    found.append(PaperRow.of(hit) if hit is not None else None)
        return found

    def like_library(
        self,
        user_id: int,
        known: Sequence[int],
        new: Sequence[PaperIn],
        now: datetime,
        *,
        news: Collection[str] = (),
    ) -> LibraryStored:
        """In one transaction: store the `new` papers, then make every paper of `known` (ids)
        and `new` a like of the user. A new paper is news only when its key is in `news` (a
        paper of today's listing fetched from arXiv, liked before the ingest saw it); others
        are not (a library's papers are no candidates for today's digests). A dislike becomes
        a like; a like already given is left as it was (its time too), so storing a library
        twice changes nothing."""

        def is_news(p: PaperIn) -> bool:
            return p.key in news

        with self.session() as s:
            rows, created = _upsert(s, new, None, now, news=is_news)
            s.flush()
            ids = {key: _id_of(row) for key, row in rows.items()}
            wanted = list(dict.fromkeys([*known, *(ids[p.key] for p in new)]))
            given: dict[int, Feedback] = {}
            for start in range(0, len(wanted), _CHUNK):
                part = wanted[start : start + _CHUNK]
                q = select(Feedback).where(
                    Feedback.user_id == user_id, col(Feedback.paper_id).in_(part)
                )
                given.update((fb.paper_id, fb) for fb in s.exec(q).all())
            already: set[int] = set()
            disliked: set[int] = set()
            for paper_id in wanted:
                fb = given.get(paper_id)
                if fb is not None and fb.value > 0:
                    already.add(paper_id)
                elif fb is not None:
                    disliked.add(paper_id)
                    fb.value, fb.created_at = 1, now
                    s.add(fb)
                else:
                    s.add(Feedback(user_id=user_id, paper_id=paper_id, value=1, created_at=now))
            s.commit()
        return LibraryStored(
            paper_ids=ids,
            created=created,
            already_liked=frozenset(already),
            were_disliked=frozenset(disliked),
        )

    def search(self, text: str, limit: int = 20) -> list[PaperRow]:
        """Stored papers for a search: the paper a key, arXiv id, URL or DOI names first, then
        papers with every word in their title or authors, newest first."""
        text = text.strip()
        words = text.split()[:20]
        if not words:
            return []
        found: dict[int, PaperRow] = {}
        try:
            exact = self.find(text)
            found[exact.id] = exact
        except NotFoundError:
            pass
        authors = sa.cast(col(Paper.authors), sa.String)
        conditions = []
        for w in words:
            escaped = json.dumps(w)[1:-1]  # names are stored as JSON: "Schr\u00f6dinger"
            options = [col(Paper.title).icontains(w, autoescape=True)]
            options.append(authors.icontains(w, autoescape=True))
            if escaped != w:
                options.append(authors.icontains(escaped, autoescape=True))
            conditions.append(sa.or_(*options))
        q = (
            select(Paper)
            .where(sa.and_(*conditions))
            .order_by(col(Paper.published_at).desc().nulls_last(), col(Paper.id).desc())
            .limit(limit)
        )
        with self.read_session() as s:
            for row in s.exec(q).all():
                found.setdefault(_id_of(row), PaperRow.of(row))
        return list(found.values())[:limit]

    def count(self) -> int:
        with self.read_session() as s:
            return int(s.exec(select(sa.func.count()).select_from(Paper)).one())

    def all(self) -> list[PaperRow]:
        """Every stored paper, by id (Core rows: the fit reads them all)."""
        paper_t = table_of(Paper)
        with self.engine.connect() as conn:
            no_statement_timeout(conn)  # a whole table, however slow the link
            result = conn.execute(sa.select(*_row_columns()).order_by(paper_t.c.id)).mappings()
            return [_paper_row(r) for r in result]

    def by_ids(self, ids: Iterable[int]) -> dict[int, PaperRow]:
        """Papers by id. Read beside a writer: the digest job asks for the papers liked since
        its model's fit while its writer thread stores the batch before."""
        wanted = list(set(ids))
        if not wanted:
            return {}
        with self.read_session() as s:
            rows = s.exec(select(Paper).where(col(Paper.id).in_(wanted))).all()
            return {r.id: PaperRow.of(r) for r in rows if r.id is not None}

    def window(self, since: datetime, until: datetime) -> list[PaperRow]:
        """Papers first seen in [since, until) that are news (not replacements), by id. Core
        rows of the columns a `PaperRow` has: a week's window (21,000 papers) took 1.8–2.9 s as
        ORM objects, most of it making them, and takes 0.6–0.9 s so."""
        paper_t = table_of(Paper)
        q = (
            sa.select(*_row_columns())
            .where(paper_t.c.first_seen_at >= since, paper_t.c.first_seen_at < until)
            .where(paper_t.c.is_news.is_(True))
            .order_by(paper_t.c.id)
        )
        with self.reading() as conn:
            return [_paper_row(r) for r in conn.execute(q).mappings()]

    def find(self, ref: str) -> PaperRow:
        """A paper by key, arXiv id (any style, with or without version), arXiv URL, DOI or
        database id."""
        ref = ref.strip()
        with self.read_session() as s:
            for key in paper_keys(ref):
                row = s.exec(select(Paper).where(Paper.key == key)).first()
                if row is None and key.startswith("doi:"):  # a DOI of a paper keyed by arXiv
                    row = s.exec(
                        select(Paper).where(Paper.doi == key[4:]).order_by(col(Paper.id))
                    ).first()
                if row is not None:
                    return PaperRow.of(row)
            if ref.isdigit() and int(ref) <= POSTGRES_INT_MAX:
                byid = s.get(Paper, int(ref))
                if byid is not None:
                    return PaperRow.of(byid)
        raise NotFoundError(
            f"no stored paper matches {ref!r}; give an arXiv id (2401.01234), a key "
            f"(arxiv:2401.01234) or a DOI of a paper that was ingested"
        )


def _row_columns() -> list[sa.Column[object]]:
    """The paper table's columns a `PaperRow` holds (Core reads of many papers)."""
    paper_t = table_of(Paper)
    return [paper_t.c[f.name] for f in fields(PaperRow)]


def _paper_row(r: sa.RowMapping) -> PaperRow:
    return row_of(PaperRow, r, authors=tuple(r["authors"]), categories=tuple(r["categories"]))


_CHUNK = 500  # records looked up per query (SQLite allows 32,766 bound values)


@dataclass(frozen=True)
class LibraryStored:
    """What `Papers.like_library` did: the id of each new record's paper (by the record's
    key), how many rows were new, which papers the user had liked already, and which they
    had disliked (now liked)."""

    paper_ids: dict[str, int]
    created: int
    already_liked: frozenset[int]
    were_disliked: frozenset[int] = frozenset()


def _id_of(row: Paper) -> int:
    assert row.id is not None  # flushed
    return row.id


def _upsert(
    s: Session,
    papers: Sequence[PaperIn],
    feed_id: int | None,
    now: datetime,
    *,
    news: Callable[[PaperIn], bool],
) -> tuple[dict[str, Paper], int]:
    """`Papers.upsert` in the session `s`: the row of each distinct key, and how many are new."""
    by_key: dict[str, PaperIn] = {}
    for p in papers:
        by_key.setdefault(p.key, p)
    incoming = list(by_key.values())
    rows: dict[str, Paper] = {}
    new = 0
    index = _Index()
    for start in range(0, len(incoming), _CHUNK):
        chunk = [(p, _identity_in(p)) for p in incoming[start : start + _CHUNK]]
        for row in s.exec(select(Paper).where(_candidates([i for _, i in chunk]))).all():
            index.add(row)
        for p, ident in chunk:
            match = index.match(ident)
            if match is None:
                row = _new_paper(p, feed_id, now, news=news(p))
                new += 1
            else:
                row = match
                index.forget(row)
                _merge(row, p, index)
                if row.feed_id is None and feed_id is not None and not row.is_news:
                    # stored from someone's library (dated by the file, or not fetched from
                    # arXiv), now brought by a feed: news as any paper the feed brings first
                    row.feed_id, row.first_seen_at = feed_id, now
                    row.is_news = news(p) and not _replaces(p)
                    _feed_text(row, p)
            s.add(row)
            index.add(row)
            rows[p.key] = row
    return rows, new


def _identity_in(p: PaperIn) -> Identity:
    return Identity(p.key, p.arxiv_id, p.doi, title_key(p.title), p.authors)


def _identity_of(row: Paper) -> Identity:
    return Identity(row.key, row.arxiv_id, row.doi, row.title_key, tuple(row.authors))


def _candidates(chunk: Sequence[Identity]) -> sa.ColumnElement[bool]:
    """Rows that may be one of `chunk`'s papers: same key, arXiv id, DOI or title key."""
    keys = [i.key for i in chunk]
    ids = [i.arxiv_id for i in chunk if i.arxiv_id]
    dois = [i.doi for i in chunk if i.doi]
    titles = [i.title_key for i in chunk if i.title_key]
    return sa.or_(
        col(Paper.key).in_(keys),
        col(Paper.arxiv_id).in_(ids),
        col(Paper.doi).in_(dois),
        col(Paper.title_key).in_(titles),
    )


class _Index:
    """The rows of one upsert by key, arXiv id, DOI and title key; `identity` picks the match."""

    def __init__(self) -> None:
        # rows are told apart by identity (`id()`): a new row has no database id yet
        self._by: dict[tuple[str, str], dict[int, Paper]] = {}
        self._idents: dict[int, Identity] = {}

    @staticmethod
    def _slots(ident: Identity) -> list[tuple[str, str]]:
        pairs = [("key", ident.key), ("arxiv", ident.arxiv_id), ("doi", ident.doi)]
        pairs.append(("title", ident.title_key))
        return [(kind, value) for kind, value in pairs if value]

    def add(self, row: Paper) -> None:
        ident = self._idents[id(row)] = _identity_of(row)
        for slot in self._slots(ident):
            self._by.setdefault(slot, {})[id(row)] = row

    def forget(self, row: Paper) -> None:
        for slot in self._slots(self._idents.pop(id(row))):
            self._by.get(slot, {}).pop(id(row), None)

    def match(self, ident: Identity) -> Paper | None:
        found: dict[int, Paper] = {}
        for slot in self._slots(ident):
            found.update(self._by.get(slot, {}))
        rows = sorted(found.values(), key=lambda r: (r.id is None, r.id or 0))  # stored first
        best = best_match(ident, [self._idents[id(r)] for r in rows])
        return None if best is None else rows[best]

    def has_key(self, key: str) -> bool:
        return bool(self._by.get(("key", key)))


def _merge(row: Paper, p: PaperIn, index: _Index) -> None:
    """Fill what `row` lacks from `p`; never replace better data with worse."""
    if p.arxiv_id and not row.arxiv_id:
        row.arxiv_id = p.arxiv_id
        row.url = p.url  # the arXiv abstract page, like every arXiv paper's
    if key_rank(p.key) > key_rank(row.key) and not index.has_key(p.key):
        row.key = p.key  # the most specific key it has been seen with (doi: → arxiv:)
    if p.doi and not row.doi:
        row.doi = p.doi
    if p.version is not None and (row.version or 0) < p.version:
        row.version = p.version
    if p.upvotes is not None and (row.upvotes or 0) < p.upvotes:
        row.upvotes = p.upvotes
    if p.abstract and not row.abstract:
        row.abstract = p.abstract
    if len(p.authors) > len(row.authors):  # a truncated list ("et al.") or none at all
        row.authors = list(p.authors)
    if row.published_at is None and p.published is not None:
        row.published_at = p.published
    if not row.url and p.url:
        row.url = p.url
    categories = list(dict.fromkeys([*row.categories, *p.categories]))[:CATEGORIES_MAX]
    if categories != row.categories:
        row.categories = categories


def _feed_text(row: Paper, p: PaperIn) -> None:
    """A paper stored from someone's library, now brought by a feed: the feed's text, not the
    file's. Whoever holds a manage link writes the file; kept, its title and abstract would go
    to every subscriber as today's news of that arXiv id or DOI."""
    row.title, row.title_key = p.title, title_key(p.title)
    row.abstract, row.authors = p.abstract, list(p.authors)
    if p.url:
        row.url = p.url
    if p.published is not None:
        row.published_at = p.published


def _replaces(p: PaperIn) -> bool:
    """An arXiv listing's new version of an older paper: no news."""
    return p.announce_type in ("replace", "replace-cross")


def _new_paper(p: PaperIn, feed_id: int | None, now: datetime, *, news: bool = True) -> Paper:
    return Paper(
        key=p.key,
        title=p.title,
        abstract=p.abstract,
        authors=list(p.authors),
        url=p.url,
        arxiv_id=p.arxiv_id,
        version=p.version,
        doi=p.doi,
        title_key=title_key(p.title),
        categories=list(p.categories),
        upvotes=p.upvotes,
        published_at=p.published,
        first_seen_at=now,
        is_news=news and not _replaces(p),
        feed_id=feed_id,
    )

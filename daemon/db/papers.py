"""The papers table: every paper ever ingested, by canonical key."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlmodel import col, select

from daemon.db.engine import Repository, table_of
from daemon.db.models import Paper
from daemon.db.rows import PaperRow, row_of
from daemon.errors import NotFoundError
from daemon.ingest.identity import Identity, best_match, key_rank, paper_keys, title_key
from daemon.ingest.text import CATEGORIES_MAX

if TYPE_CHECKING:  # parsing (feedparser) is not loaded by commands that only read papers
    from daemon.ingest.parse import PaperIn

POSTGRES_INT_MAX = 2**31 - 1  # PostgreSQL's INTEGER: a larger id is an error, not a miss


class Papers(Repository):
    def upsert(
        self, papers: Sequence[PaperIn], feed_id: int | None, now: datetime
    ) -> tuple[int, int]:
        """Store papers, one row per paper whatever the source; returns (new, already known).

        A record joins the stored paper it is the same paper as (`identity.same_paper`: key or
        arXiv id, then DOI, then normalised title) and fills what that row lacks — arXiv id and
        key, DOI, categories, date, abstract, a longer author list, upvotes, version — without
        overwriting better data with worse. A paper already stored keeps its first-seen time
        (a new version or a second feed is not news)."""
        by_key: dict[str, PaperIn] = {}
        for p in papers:
            by_key.setdefault(p.key, p)
        incoming = list(by_key.values())
        new = 0
        with self.session() as s:
            index = _Index()
            for start in range(0, len(incoming), _CHUNK):
                chunk = [(p, _identity_in(p)) for p in incoming[start : start + _CHUNK]]
                for row in s.exec(select(Paper).where(_candidates(chunk))).all():
                    index.add(row)
                for p, ident in chunk:
                    match = index.match(ident)
                    if match is None:
                        row = _new_paper(p, feed_id, now)
                        new += 1
                    else:
                        row = match
                        index.forget(row)
                        _merge(row, p, index)
                    s.add(row)
                    index.add(row)
            s.commit()
        return new, len(incoming) - new

    def count(self) -> int:
        with self.session() as s:
            return int(s.exec(select(sa.func.count()).select_from(Paper)).one())

    def all(self) -> list[PaperRow]:
        """Every stored paper, by id (Core rows: the fit reads them all)."""
        paper_t = table_of(Paper)
        with self.engine.connect() as conn:
            result = conn.execute(sa.select(paper_t).order_by(paper_t.c.id)).mappings()
            return [
                row_of(PaperRow, r, authors=tuple(r["authors"]), categories=tuple(r["categories"]))
                for r in result
            ]

    def by_ids(self, ids: Iterable[int]) -> dict[int, PaperRow]:
        wanted = list(set(ids))
        if not wanted:
            return {}
        with self.session() as s:
            rows = s.exec(select(Paper).where(col(Paper.id).in_(wanted))).all()
            return {r.id: PaperRow.of(r) for r in rows if r.id is not None}

    def window(self, since: datetime, until: datetime) -> list[PaperRow]:
        """Papers first seen in [since, until) that are news (not replacements), by id."""
        with self.session() as s:
            q = (
                select(Paper)
                .where(col(Paper.first_seen_at) >= since, col(Paper.first_seen_at) < until)
                .where(col(Paper.is_news).is_(True))
                .order_by(col(Paper.id))
            )
            return [PaperRow.of(p) for p in s.exec(q).all()]

    def find(self, ref: str) -> PaperRow:
        """A paper by key, arXiv id (any style, with or without version), arXiv URL, DOI or
        database id."""
        ref = ref.strip()
        with self.session() as s:
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


_CHUNK = 500  # records looked up per query (SQLite allows 32,766 bound values)


def _identity_in(p: PaperIn) -> Identity:
    return Identity(p.key, p.arxiv_id, p.doi, title_key(p.title), p.authors)


def _identity_of(row: Paper) -> Identity:
    return Identity(row.key, row.arxiv_id, row.doi, row.title_key, tuple(row.authors))


def _candidates(chunk: Sequence[tuple[PaperIn, Identity]]) -> sa.ColumnElement[bool]:
    """Rows that may be one of `chunk`'s papers: same key, arXiv id, DOI or title key."""
    keys = [i.key for _, i in chunk]
    ids = [i.arxiv_id for _, i in chunk if i.arxiv_id]
    dois = [i.doi for _, i in chunk if i.doi]
    titles = [i.title_key for _, i in chunk if i.title_key]
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


def _new_paper(p: PaperIn, feed_id: int | None, now: datetime) -> Paper:
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
        is_news=p.announce_type not in ("replace", "replace-cross"),
        feed_id=feed_id,
    )

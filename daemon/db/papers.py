"""The papers table: every paper ever ingested, by canonical key."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlmodel import col, select

from daemon.db.engine import Repository
from daemon.db.models import Paper
from daemon.db.rows import PaperRow
from daemon.errors import NotFoundError
from daemon.ingest.identity import paper_keys

if TYPE_CHECKING:  # parsing (feedparser) is not loaded by commands that only read papers
    from daemon.ingest.parse import PaperIn

POSTGRES_INT_MAX = 2**31 - 1  # PostgreSQL's INTEGER: a larger id is an error, not a miss


class Papers(Repository):
    def upsert(
        self, papers: Sequence[PaperIn], feed_id: int | None, now: datetime
    ) -> tuple[int, int]:
        """Store papers by canonical key; returns (new, already known). A paper already stored
        keeps its first-seen time (a new version or a second feed is not news)."""
        by_key: dict[str, PaperIn] = {}
        for p in papers:
            by_key.setdefault(p.key, p)
        new = 0
        with self.session() as s:
            existing = {
                p.key: p
                for p in s.exec(select(Paper).where(col(Paper.key).in_(list(by_key)))).all()
            }
            for key, p in by_key.items():
                row = existing.get(key)
                if row is None:
                    s.add(_new_paper(p, feed_id, now))
                    new += 1
                    continue
                if p.version is not None and (row.version or 0) < p.version:
                    row.version = p.version
                if p.upvotes is not None and (row.upvotes or 0) < p.upvotes:
                    row.upvotes = p.upvotes
                if not row.abstract and p.abstract:
                    row.abstract = p.abstract
                s.add(row)
            s.commit()
        return new, len(by_key) - new

    def count(self) -> int:
        with self.session() as s:
            return int(s.exec(select(sa.func.count()).select_from(Paper)).one())

    def all(self) -> list[PaperRow]:
        """Every stored paper, by id."""
        with self.session() as s:
            return [PaperRow.of(p) for p in s.exec(select(Paper).order_by(col(Paper.id))).all()]

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
        categories=list(p.categories),
        upvotes=p.upvotes,
        published_at=p.published,
        first_seen_at=now,
        is_news=p.announce_type not in ("replace", "replace-cross"),
        feed_id=feed_id,
    )

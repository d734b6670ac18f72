"""All database I/O of paperwire, in one place.

Every public method opens its own short transaction, so one user's or one feed's failure never
rolls back another's work. Times come in as parameters; this module never reads the clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, create_engine, select

from daemon.errors import NotFoundError, PaperwireError
from daemon.models import (
    Channel,
    DeliveryAttempt,
    Digest,
    DigestItem,
    Feed,
    Feedback,
    Follow,
    ModelState,
    Paper,
    User,
)
from daemon.parse import PaperIn


class SchemaError(PaperwireError):
    """The database schema is missing or older than this code."""


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for `url`; SQLite gets its folder created, foreign keys and a busy timeout."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, echo=echo, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        # SQLite: every transaction takes the write lock up front (BEGIN IMMEDIATE), so two
        # workers claiming deliveries are serialised instead of both reading the same rows;
        # WAL lets readers (the web app) go on meanwhile.

        @sa.event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" below issues BEGIN
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            if not url.startswith("sqlite:///:memory:") and url != "sqlite://":
                cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "daemon:migrations")
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema with the Alembic migrations."""
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def schema_revisions(engine: Engine) -> tuple[str | None, str]:
    """(the database's revision, the code's head revision)."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, str(head)


def check_schema(engine: Engine) -> None:
    current, head = schema_revisions(engine)
    if current != head:
        raise SchemaError(
            f"database schema is at revision {current or 'none (empty database)'}, this version "
            f"needs {head}: run `paperwire db upgrade` first"
        )


@dataclass(frozen=True)
class PaperRow:
    """A stored paper as plain data (detached from any session)."""

    id: int
    key: str
    title: str
    abstract: str
    authors: tuple[str, ...]
    url: str
    published_at: datetime | None
    first_seen_at: datetime
    upvotes: int | None


@dataclass(frozen=True)
class UserSignals:
    user_id: int
    likes: tuple[tuple[int, datetime], ...]  # (paper id, when)
    dislikes: tuple[int, ...]
    follows: tuple[tuple[str, str, bool], ...]  # (kind, value, muted)
    sent: frozenset[int]


@dataclass(frozen=True)
class DueDelivery:
    digest_id: int
    attempts: int
    parts_sent: int = 0
    leased_until: datetime | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class DigestContent:
    digest: Digest
    user: User
    channel: Channel
    items: tuple[tuple[DigestItem, PaperRow], ...]


def _paper_row(p: Paper) -> PaperRow:
    assert p.id is not None
    return PaperRow(
        id=p.id,
        key=p.key,
        title=p.title,
        abstract=p.abstract,
        authors=tuple(p.authors),
        url=p.url,
        published_at=p.published_at,
        first_seen_at=p.first_seen_at,
        upvotes=p.upvotes,
    )


class Store:
    """The database, behind plain methods."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # ---- feeds -------------------------------------------------------------------------------

    def add_feed(self, name: str, url: str, now: datetime, *, enabled: bool = True) -> Feed:
        with self.session() as s:
            if s.exec(select(Feed).where(Feed.name == name)).first():
                raise PaperwireError(
                    f"feed {name!r} already exists; remove it first or pick a name"
                )
            feed = Feed(name=name, url=url, enabled=enabled, created_at=now)
            s.add(feed)
            s.commit()
            return feed

    def ensure_feeds(self, feeds: Iterable[tuple[str, str, bool]], now: datetime) -> int:
        """Make the feeds declared in the configuration match it (by name): add the missing ones,
        update the URL and `enabled` of the others. Returns how many rows changed."""
        changed = 0
        with self.session() as s:
            known = {f.name: f for f in s.exec(select(Feed)).all()}
            for name, url, enabled in feeds:
                row = known.get(name)
                if row is None:
                    s.add(Feed(name=name, url=url, enabled=enabled, created_at=now))
                elif (row.url, row.enabled) != (url, enabled):
                    if row.url != url:  # another address: its validators mean nothing there
                        row.url, row.etag, row.last_modified = url, None, None
                    row.enabled = enabled
                    s.add(row)
                else:
                    continue
                changed += 1
            s.commit()
        return changed

    def list_feeds(self, *, enabled_only: bool = False) -> list[Feed]:
        with self.session() as s:
            q = select(Feed).order_by(col(Feed.name))
            if enabled_only:
                q = q.where(col(Feed.enabled).is_(True))
            return list(s.exec(q).all())

    def remove_feed(self, name: str) -> None:
        with self.session() as s:
            feed = s.exec(select(Feed).where(Feed.name == name)).first()
            if feed is None:
                raise NotFoundError(f"no feed named {name!r}; `paperwire feeds list` shows them")
            s.delete(feed)
            s.commit()

    def set_feed_enabled(self, name: str, enabled: bool) -> None:
        with self.session() as s:
            feed = s.exec(select(Feed).where(Feed.name == name)).first()
            if feed is None:
                raise NotFoundError(f"no feed named {name!r}; `paperwire feeds list` shows them")
            feed.enabled = enabled
            s.add(feed)
            s.commit()

    def record_fetch(
        self,
        feed_id: int,
        now: datetime,
        *,
        error: str | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        papers: int = 0,
    ) -> None:
        with self.session() as s:
            feed = s.get(Feed, feed_id)
            if feed is None:  # removed (`paperwire feeds remove`) while the ingest ran
                return
            feed.last_fetched_at = now
            if error is None:
                feed.last_ok_at = now
                feed.last_error = None
                feed.consecutive_errors = 0
                feed.etag = etag or feed.etag
                feed.last_modified = last_modified or feed.last_modified
                feed.papers_seen += papers
            else:
                feed.last_error = error[:1000]
                feed.consecutive_errors += 1
            s.add(feed)
            s.commit()

    # ---- papers ------------------------------------------------------------------------------

    def upsert_papers(
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
                    s.add(
                        Paper(
                            key=key,
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
                    )
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

    def count_papers(self) -> int:
        with self.session() as s:
            return int(s.exec(select(sa.func.count()).select_from(Paper)).one())

    def count_feedback(self) -> int:
        with self.session() as s:
            return int(s.exec(select(sa.func.count()).select_from(Feedback)).one())

    def all_papers(self) -> list[PaperRow]:
        with self.session() as s:
            return [_paper_row(p) for p in s.exec(select(Paper).order_by(col(Paper.id))).all()]

    def papers_by_ids(self, ids: Iterable[int]) -> dict[int, PaperRow]:
        wanted = list(set(ids))
        if not wanted:
            return {}
        with self.session() as s:
            rows = s.exec(select(Paper).where(col(Paper.id).in_(wanted))).all()
            return {r.id: _paper_row(r) for r in rows if r.id is not None}

    def window_papers(self, since: datetime, until: datetime) -> list[PaperRow]:
        """Papers first seen in [since, until) that are news (not replacements)."""
        with self.session() as s:
            q = (
                select(Paper)
                .where(col(Paper.first_seen_at) >= since, col(Paper.first_seen_at) < until)
                .where(col(Paper.is_news).is_(True))
                .order_by(col(Paper.id))
            )
            return [_paper_row(p) for p in s.exec(q).all()]

    def find_paper(self, ref: str) -> PaperRow:
        """A paper by key, arXiv id (with or without version), arXiv URL, DOI or database id."""
        import re

        ref = ref.strip()
        m = re.search(r"(\d{4}\.\d{4,5}|[a-z\-]+(?:\.[A-Z]{2})?/\d{7})(v\d+)?$", ref)
        candidates = [ref, f"arxiv:{m.group(1)}" if m else "", f"doi:{ref.lower()}"]
        with self.session() as s:
            for c in candidates:
                if c:
                    row = s.exec(select(Paper).where(Paper.key == c)).first()
                    if row is not None:
                        return _paper_row(row)
            if ref.isdigit() and int(ref) < 2**31:  # PostgreSQL's INTEGER: larger is an error
                byid = s.get(Paper, int(ref))
                if byid is not None:
                    return _paper_row(byid)
        raise NotFoundError(
            f"no stored paper matches {ref!r}; give an arXiv id (2401.01234), a key "
            f"(arxiv:2401.01234) or a DOI of a paper that was ingested"
        )

    # ---- users, channels, follows, feedback ---------------------------------------------------

    def add_user(
        self,
        name: str,
        now: datetime,
        *,
        email: str | None = None,
        slack_webhook: str | None = None,
        display_name: str = "",
        timezone: str = "UTC",
        digest_hour: int | None = None,
    ) -> User:
        with self.session() as s:
            if s.exec(select(User).where(User.name == name)).first():
                raise PaperwireError(f"user {name!r} already exists")
            user = User(
                name=name,
                display_name=display_name or name,
                timezone=timezone,
                digest_hour=digest_hour,
                created_at=now,
            )
            s.add(user)
            s.flush()
            assert user.id is not None
            if email:
                s.add(Channel(user_id=user.id, kind="email", address=email))
            if slack_webhook:
                s.add(Channel(user_id=user.id, kind="slack", address=slack_webhook))
            s.commit()
            return user

    def get_user(self, name: str) -> User:
        with self.session() as s:
            user = s.exec(select(User).where(User.name == name)).first()
            if user is None:
                raise NotFoundError(f"no user named {name!r}; `paperwire users list` shows them")
            return user

    def list_users(self) -> list[tuple[User, list[Channel]]]:
        with self.session() as s:
            users = s.exec(select(User).order_by(col(User.name))).all()
            chans = s.exec(select(Channel)).all()
            by_user: dict[int, list[Channel]] = defaultdict(list)
            for c in chans:
                by_user[c.user_id].append(c)
            return [(u, by_user.get(u.id or 0, [])) for u in users]

    def update_user(self, name: str, **changes: object) -> User:
        """Change a user's settings (display_name, timezone, digest_hour, max_picks, active)."""
        with self.session() as s:
            user = s.exec(select(User).where(User.name == name)).first()
            if user is None:
                raise NotFoundError(f"no user named {name!r}; `paperwire users list` shows them")
            for key, value in changes.items():
                setattr(user, key, value)
            s.add(user)
            s.commit()
            return user

    def set_channel(self, user_id: int, kind: str, address: str | None) -> None:
        """Replace the user's channel of this kind ("email" | "slack"); None removes it.

        A changed address is updated in place: deleting the row would cascade to its digests,
        so today's digest would be made and sent again and the record of what was sent lost."""
        with self.session() as s:
            olds = list(
                s.exec(
                    select(Channel)
                    .where(Channel.user_id == user_id, Channel.kind == kind)
                    .order_by(col(Channel.id))
                ).all()
            )
            keep = olds[0] if olds and address else None
            for old in olds:
                if old is not keep:
                    s.delete(old)
            s.flush()
            if keep is not None:
                keep.address, keep.active = str(address), True
                s.add(keep)
            elif address:
                s.add(Channel(user_id=user_id, kind=kind, address=address))
            s.commit()

    def remove_user(self, name: str) -> None:
        with self.session() as s:
            user = s.exec(select(User).where(User.name == name)).first()
            if user is None:
                raise NotFoundError(f"no user named {name!r}; `paperwire users list` shows them")
            s.delete(user)
            s.commit()

    def set_subscribed(self, user_id: int, subscribed: bool, now: datetime) -> None:
        with self.session() as s:
            user = s.get_one(User, user_id)
            user.active = subscribed
            user.unsubscribed_at = None if subscribed else now
            s.add(user)
            s.commit()

    def user_by_id(self, user_id: int) -> User | None:
        with self.session() as s:
            return s.get(User, user_id)

    def set_feedback(self, user_id: int, paper_id: int, value: int, now: datetime) -> None:
        """Record a like (+1) or dislike (-1); the latest word wins; 0 removes it."""
        with self.session() as s:
            row = s.exec(
                select(Feedback).where(Feedback.user_id == user_id, Feedback.paper_id == paper_id)
            ).first()
            if value == 0:
                if row is not None:
                    s.delete(row)
            elif row is None:
                s.add(Feedback(user_id=user_id, paper_id=paper_id, value=value, created_at=now))
            else:
                row.value, row.created_at = value, now
                s.add(row)
            s.commit()

    def set_follow(self, user_id: int, kind: str, value: str, *, muted: bool) -> None:
        with self.session() as s:
            row = s.exec(
                select(Follow).where(
                    Follow.user_id == user_id, Follow.kind == kind, Follow.value == value
                )
            ).first()
            row = row or Follow(user_id=user_id, kind=kind, value=value)
            row.muted = muted
            s.add(row)
            s.commit()

    def remove_follow(self, user_id: int, kind: str, value: str) -> bool:
        with self.session() as s:
            row = s.exec(
                select(Follow).where(
                    Follow.user_id == user_id, Follow.kind == kind, Follow.value == value
                )
            ).first()
            if row is None:
                return False
            s.delete(row)
            s.commit()
            return True

    def signals(self, user_ids: Sequence[int]) -> dict[int, UserSignals]:
        """Likes, dislikes, follows and already-sent papers of the given users, in 4 queries."""
        if not user_ids:
            return {}
        ids = list(user_ids)
        likes: dict[int, list[tuple[int, datetime]]] = defaultdict(list)
        dislikes: dict[int, list[int]] = defaultdict(list)
        follows: dict[int, list[tuple[str, str, bool]]] = defaultdict(list)
        sent: dict[int, set[int]] = defaultdict(set)
        with self.session() as s:
            for fb in s.exec(
                select(Feedback)
                .where(col(Feedback.user_id).in_(ids))
                .order_by(col(Feedback.created_at))
            ).all():
                if fb.value > 0:
                    likes[fb.user_id].append((fb.paper_id, fb.created_at))
                else:
                    dislikes[fb.user_id].append(fb.paper_id)
            for f in s.exec(select(Follow).where(col(Follow.user_id).in_(ids))).all():
                follows[f.user_id].append((f.kind, f.value, f.muted))
            q = (
                select(Digest.user_id, DigestItem.paper_id)
                .join(DigestItem, col(DigestItem.digest_id) == col(Digest.id))
                .where(col(Digest.user_id).in_(ids))
            )
            for uid, pid in s.exec(q).all():
                sent[uid].add(pid)
        return {
            uid: UserSignals(
                user_id=uid,
                likes=tuple(likes[uid]),
                dislikes=tuple(dislikes[uid]),
                follows=tuple(follows[uid]),
                sent=frozenset(sent[uid]),
            )
            for uid in ids
        }

    # ---- digests and deliveries --------------------------------------------------------------

    def subscribers(self, names: Sequence[str] | None = None) -> list[tuple[User, list[Channel]]]:
        """Active users with their active channels (optionally only those named)."""
        with self.session() as s:
            q = select(User).where(col(User.active).is_(True)).order_by(col(User.id))
            if names:
                q = q.where(col(User.name).in_(list(names)))
            users = list(s.exec(q).all())
            ids = [u.id for u in users]
            chans = s.exec(
                select(Channel).where(col(Channel.user_id).in_(ids), col(Channel.active).is_(True))
            ).all()
            by_user: dict[int, list[Channel]] = defaultdict(list)
            for c in chans:
                by_user[c.user_id].append(c)
            return [(u, by_user[u.id or 0]) for u in users]

    def digest_periods(self, user_id: int, period: date) -> set[int]:
        """Channel ids that already have a digest for this user and period."""
        with self.session() as s:
            q = select(Digest.channel_id).where(Digest.user_id == user_id, Digest.period == period)
            return set(s.exec(q).all())

    def create_digest(
        self,
        user_id: int,
        channel_id: int,
        period: date,
        items: Sequence[tuple[int, float, str, str]],
        now: datetime,
        *,
        cold_start: bool,
        empty_state: str = "empty",
    ) -> int | None:
        """Insert the one digest of (user, channel, period) with its items; None if it exists.

        `items` are (paper id, score, kind, reason) in rank order. A digest with no items is
        stored in `empty_state` ("empty": nothing to send; "pending": send a short note)."""
        with self.session() as s:
            digest = Digest(
                user_id=user_id,
                channel_id=channel_id,
                period=period,
                cold_start=cold_start,
                state="pending" if items else empty_state,
                next_attempt_at=now,
                created_at=now,
            )
            s.add(digest)
            try:
                s.flush()
            except IntegrityError:
                s.rollback()
                return None
            assert digest.id is not None
            for rank, (pid, score, kind, reason) in enumerate(items, start=1):
                s.add(
                    DigestItem(
                        digest_id=digest.id,
                        paper_id=pid,
                        rank=rank,
                        score=score,
                        kind=kind,
                        reason=reason,
                    )
                )
            s.commit()
            return digest.id

    def claim_due(self, now: datetime, lease: timedelta, limit: int = 1000) -> list[DueDelivery]:
        """Lease pending digests whose time has come. On PostgreSQL, rows another worker holds
        are skipped (FOR UPDATE SKIP LOCKED); a lease that ran out is claimable again."""
        with self.session() as s:
            q = (
                select(Digest)
                .where(Digest.state == "pending")
                .where(
                    sa.or_(
                        col(Digest.next_attempt_at).is_(None), col(Digest.next_attempt_at) <= now
                    )
                )
                .where(sa.or_(col(Digest.leased_until).is_(None), col(Digest.leased_until) < now))
                .order_by(col(Digest.id))
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            rows = list(s.exec(q).all())
            for d in rows:
                d.leased_until = now + lease
                s.add(d)
            s.commit()
            return [
                DueDelivery(
                    digest_id=d.id or 0,
                    attempts=d.attempts,
                    parts_sent=d.parts_sent,
                    leased_until=d.leased_until,
                    created_at=d.created_at,
                )
                for d in rows
            ]

    def renew_lease(self, digest_id: int, expected: datetime | None, until: datetime) -> bool:
        """Extend our lease on a digest, if it is still ours (nobody re-claimed it after it ran
        out) and still pending. False: leave the digest alone."""
        with self.session() as s:
            result = s.execute(
                sa.update(Digest)
                .where(
                    col(Digest.id) == digest_id,
                    col(Digest.state) == "pending",
                    col(Digest.leased_until) == expected,
                )
                .values(leased_until=until)
            )
            s.commit()
            return bool(getattr(result, "rowcount", 0) == 1)

    def postpone(self, digest_id: int, now: datetime, retry_at: datetime, detail: str) -> None:
        """The transport could not deliver anything (server down, bad credentials): wait and
        retry without counting an attempt against the digest."""
        with self.session() as s:
            d = s.get_one(Digest, digest_id)
            d.leased_until, d.next_attempt_at, d.last_error = None, retry_at, detail
            s.add(d)
            s.add(DeliveryAttempt(digest_id=digest_id, at=now, outcome="postponed", detail=detail))
            s.commit()

    def digest_content(self, digest_id: int) -> DigestContent:
        with self.session() as s:
            digest = s.get_one(Digest, digest_id)
            user = s.get_one(User, digest.user_id)
            channel = s.get_one(Channel, digest.channel_id)
            q = (
                select(DigestItem, Paper)
                .join(Paper, col(Paper.id) == col(DigestItem.paper_id))
                .where(DigestItem.digest_id == digest_id)
                .order_by(col(DigestItem.rank))
            )
            items = tuple((item, _paper_row(paper)) for item, paper in s.exec(q).all())
            return DigestContent(digest=digest, user=user, channel=channel, items=items)

    def finish_delivery(
        self,
        digest_id: int,
        now: datetime,
        *,
        outcome: str,
        detail: str = "",
        retry_at: datetime | None = None,
    ) -> None:
        """Record an attempt: outcome "sent", "temporary" (retry at `retry_at`, or give up when
        None) or "permanent"."""
        with self.session() as s:
            d = s.get_one(Digest, digest_id)
            d.attempts += 1
            d.leased_until = None
            if outcome == "sent":
                d.state, d.sent_at, d.last_error = "sent", now, None
            elif outcome == "temporary" and retry_at is not None:
                d.next_attempt_at, d.last_error = retry_at, detail
            else:
                d.state, d.last_error = "failed", detail
            s.add(d)
            s.add(DeliveryAttempt(digest_id=digest_id, at=now, outcome=outcome, detail=detail))
            s.commit()

    def record_part_sent(self, digest_id: int, parts_sent: int) -> None:
        """Remember that the first `parts_sent` parts of a split message were accepted."""
        with self.session() as s:
            d = s.get_one(Digest, digest_id)
            d.parts_sent = parts_sent
            s.add(d)
            s.commit()

    def delivery_counts(self) -> dict[str, int]:
        with self.session() as s:
            q = select(Digest.state, sa.func.count()).group_by(col(Digest.state))
            return {state: int(n) for state, n in s.exec(q).all()}

    # ---- fitted recommender -------------------------------------------------------------------

    def load_model(self) -> tuple[int, bytes] | None:
        with self.session() as s:
            row = s.exec(select(ModelState).order_by(col(ModelState.id).desc())).first()
            return (row.fitted_size, row.blob) if row else None

    def save_model(self, fitted_size: int, blob: bytes, now: datetime) -> None:
        with self.session() as s:
            for old in s.exec(select(ModelState)).all():
                s.delete(old)
            s.add(ModelState(fitted_size=fitted_size, blob=blob, created_at=now))
            s.commit()

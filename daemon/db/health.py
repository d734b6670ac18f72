"""What the admin watches, read-only: figures per day, deliveries by state with their last
error, and the problems that need a person (`paperwire status`, the console, /metrics).

Days are UTC days. Timestamps are bucketed here rather than in SQL (date functions differ
between SQLite and PostgreSQL); only the rows of the days asked for are read.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from daemon.db.engine import Repository
from daemon.db.models import (
    Channel,
    ChannelKind,
    DeliveryAttempt,
    Digest,
    DigestState,
    Feed,
    Feedback,
    Outcome,
    Paper,
    User,
)

UNSUBSCRIBED_DETAIL = "unsubscribed before delivery"  # daemon.jobs.delivery: not a failure


@dataclass(frozen=True)
class Day:
    """One UTC day's figures."""

    day: date
    papers: int = 0  # first seen that day
    sent: int = 0  # digests for that day, by state
    failed: int = 0
    pending: int = 0
    empty: int = 0
    postponed: int = 0  # digests held back that day by a transport that could deliver nothing
    feedback: int = 0  # likes and dislikes given
    unsubscribes: int = 0


@dataclass(frozen=True)
class Delivery:
    """A digest as the admin sees it."""

    id: int
    user: str
    kind: ChannelKind
    period: date
    state: DigestState
    attempts: int
    next_attempt_at: datetime | None
    sent_at: datetime | None
    last_error: str | None
    postponed: bool  # pending because its transport could deliver nothing at the last try


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _by_day(stamps: Sequence[datetime | None]) -> Counter[date]:
    return Counter(t.astimezone(UTC).date() for t in stamps if t is not None)


class Health(Repository):
    def days(self, first: date, last: date) -> list[Day]:
        """Figures for every UTC day from `first` to `last`, oldest first."""
        since, until = day_start(first), day_start(last + timedelta(days=1))
        with self.session() as s:
            papers = _by_day(
                s.exec(
                    select(Paper.first_seen_at).where(
                        col(Paper.first_seen_at) >= since, col(Paper.first_seen_at) < until
                    )
                ).all()
            )
            feedback = _by_day(
                s.exec(
                    select(Feedback.created_at).where(
                        col(Feedback.created_at) >= since, col(Feedback.created_at) < until
                    )
                ).all()
            )
            unsubscribed = _by_day(
                s.exec(
                    select(User.unsubscribed_at).where(
                        col(User.unsubscribed_at) >= since, col(User.unsubscribed_at) < until
                    )
                ).all()
            )
            states: dict[date, Counter[str]] = defaultdict(Counter)
            q = (
                select(col(Digest.period), col(Digest.state), sa.func.count())
                .where(col(Digest.period) >= first, col(Digest.period) <= last)
                .group_by(col(Digest.period), col(Digest.state))
            )
            for period, state, n in s.exec(q).all():
                states[period][state] = int(n)
            held: dict[date, set[int]] = defaultdict(set)
            q2 = select(DeliveryAttempt.digest_id, DeliveryAttempt.at).where(
                DeliveryAttempt.outcome == Outcome.POSTPONED,
                col(DeliveryAttempt.at) >= since,
                col(DeliveryAttempt.at) < until,
            )
            for digest_id, at in s.exec(q2).all():
                held[at.astimezone(UTC).date()].add(digest_id)
        return [
            Day(
                day=d,
                papers=papers[d],
                sent=states[d][DigestState.SENT],
                failed=states[d][DigestState.FAILED],
                pending=states[d][DigestState.PENDING],
                empty=states[d][DigestState.EMPTY],
                postponed=len(held[d]),
                feedback=feedback[d],
                unsubscribes=unsubscribed[d],
            )
            for d in _days(first, last)
        ]

    def failing_feeds(self, now: datetime, since: timedelta) -> list[str]:
        """Enabled feeds that have failed for at least `since` (no good fetch within it)."""
        cutoff = now - since
        with self.session() as s:
            feeds = s.exec(
                select(Feed)
                .where(col(Feed.enabled).is_(True), col(Feed.last_error).is_not(None))
                .order_by(col(Feed.name))
            ).all()
            return [f.name for f in feeds if (f.last_ok_at or f.created_at) <= cutoff]

    def deliveries(
        self,
        states: Sequence[DigestState] | None = None,
        *,
        user: str | None = None,
        postponed_only: bool = False,
        limit: int = 100,
    ) -> list[Delivery]:
        """Digests, newest first, with their user and channel kind (optionally of some states,
        of one user, or only those held back by an unusable transport)."""
        with self.session() as s:
            q = (
                select(Digest, User.name, Channel.kind)
                .join(User, col(User.id) == col(Digest.user_id))
                .join(Channel, col(Channel.id) == col(Digest.channel_id))
                .order_by(col(Digest.period).desc(), col(Digest.id).desc())
            )
            if states:
                q = q.where(col(Digest.state).in_(list(states)))
            if user is not None:
                q = q.where(User.name == user)
            if postponed_only:
                q = q.where(Digest.state == DigestState.PENDING)
            rows = list(s.exec(q.limit(limit if not postponed_only else None)).all())
            held = _postponed(s, [d.id for d, _, _ in rows if d.state == DigestState.PENDING])
        found = [
            Delivery(
                id=d.id or 0,
                user=name,
                kind=ChannelKind(kind),
                period=d.period,
                state=DigestState(d.state),
                attempts=d.attempts,
                next_attempt_at=d.next_attempt_at,
                sent_at=d.sent_at,
                last_error=d.last_error,
                postponed=(d.id in held),
            )
            for d, name, kind in rows
        ]
        return [d for d in found if d.postponed][:limit] if postponed_only else found

    def failed_since(self, since: datetime) -> list[Delivery]:
        """Digests given up on since `since` (a permanent error, or too many temporary ones),
        not counting those of people who unsubscribed meanwhile."""
        with self.session() as s:
            ids = set(
                s.exec(
                    select(DeliveryAttempt.digest_id).where(
                        col(DeliveryAttempt.at) >= since,
                        col(DeliveryAttempt.outcome).in_([Outcome.PERMANENT, Outcome.TEMPORARY]),
                        col(DeliveryAttempt.detail) != UNSUBSCRIBED_DETAIL,
                    )
                ).all()
            )
        failed = self.deliveries([DigestState.FAILED], limit=10_000) if ids else []
        return [d for d in failed if d.id in ids]

    def known_papers(self, keys: Sequence[str]) -> set[str]:
        """Which of these paper keys are stored already (what a feed test would not add)."""
        found: set[str] = set()
        unique = sorted(set(keys))
        with self.session() as s:
            for start in range(0, len(unique), 1000):
                chunk = unique[start : start + 1000]
                found.update(s.exec(select(Paper.key).where(col(Paper.key).in_(chunk))).all())
        return found

    def counts(self) -> dict[str, int]:
        """How many digests are in each state, with "postponed" apart from "pending"."""
        with self.session() as s:
            q = select(Digest.state, sa.func.count()).group_by(col(Digest.state))
            found = {str(state): int(n) for state, n in s.exec(q).all()}
            pending = s.exec(select(Digest.id).where(Digest.state == DigestState.PENDING)).all()
            held = len(_postponed(s, [i for i in pending if i is not None]))
        counts = {str(state): found.get(str(state), 0) for state in DigestState}
        counts["postponed"] = held
        counts[DigestState.PENDING] -= held
        return counts


def _postponed(s: Session, pending_ids: Sequence[int | None]) -> set[int]:
    """Of these pending digests, those whose latest attempt was postponed."""
    ids = [i for i in pending_ids if i is not None]
    if not ids:
        return set()
    latest: dict[int, tuple[datetime, int, str]] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        q = select(DeliveryAttempt).where(col(DeliveryAttempt.digest_id).in_(chunk))
        for a in s.exec(q).all():
            key = (a.at, a.id or 0, a.outcome)
            if a.digest_id not in latest or key > latest[a.digest_id]:
                latest[a.digest_id] = key
    return {i for i, (_, _, outcome) in latest.items() if outcome == Outcome.POSTPONED}

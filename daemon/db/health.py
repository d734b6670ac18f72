"""What the admin watches, read-only: figures per day, deliveries by state with their last
error, and the problems that need a person (`paperwire status`, the console, /metrics).

Days are UTC days, counted by the database through indexes of the times (migration 0007):
the figures of the days shown cost what those days hold, not what every day before them did.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise

import sqlalchemy as sa
from sqlmodel import Session, col, select

from daemon.db.engine import IN_CHUNK, Repository
from daemon.db.engine import table_of as _table
from daemon.db.models import (
    UNSUBSCRIBED_DETAIL,
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


@dataclass(frozen=True)
class Day:
    """One UTC day's figures."""

    day: date
    papers: int = 0  # first seen that day
    sent: int = 0  # digests for that day, by state
    failed: int = 0
    pending: int = 0
    empty: int = 0
    postponed: int = 0  # pending and held back by a transport that could deliver nothing
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


class Health(Repository):
    def days(self, first: date, last: date) -> list[Day]:
        """Figures for every UTC day from `first` to `last`, oldest first."""
        days = _days(first, last)
        starts = [day_start(d) for d in [*days, last + timedelta(days=1)]]

        def by_day(stamp: sa.Column[datetime]) -> Counter[date]:
            # a count of each day's range of the time's index: the database counts index
            # entries, where grouping by day computed the day of every row (2.1 million
            # likes imported within the days shown: 1.1 s, against 0.2 s so)
            q = sa.select(*[
                sa.select(sa.func.count()).where(stamp >= a, stamp < b).scalar_subquery()
                for a, b in pairwise(starts)
            ])  # fmt: skip
            return Counter(dict(zip(days, s.execute(q).one(), strict=True)))

        with self.read_session() as s:
            papers = by_day(_table(Paper).c.first_seen_at)
            feedback = by_day(_table(Feedback).c.created_at)
            unsubscribed = by_day(_table(User).c.unsubscribed_at)
            states: dict[date, Counter[str]] = defaultdict(Counter)
            q = (
                select(col(Digest.period), col(Digest.state), sa.func.count())
                .where(col(Digest.period) >= first, col(Digest.period) <= last)
                .group_by(col(Digest.period), col(Digest.state))
            )
            for period, state, n in s.exec(q).all():
                states[period][state] = int(n)
            # of each day's pending digests, those held back now (by a transport that could
            # deliver nothing): apart, so that a day's states add up to its digests
            d = _table(Digest).c
            q2 = (
                sa.select(d.period, sa.func.count())
                .where(d.id.in_(_held_back()), d.period >= first, d.period <= last)
                .group_by(d.period)
            )
            held = {day: int(n) for day, n in s.execute(q2)}
        return [
            Day(
                day=d,
                papers=papers[d],
                sent=states[d][DigestState.SENT],
                failed=states[d][DigestState.FAILED],
                pending=states[d][DigestState.PENDING] - held.get(d, 0),
                empty=states[d][DigestState.EMPTY],
                postponed=held.get(d, 0),
                feedback=feedback[d],
                unsubscribes=unsubscribed[d],
            )
            for d in days
        ]

    def failing_feeds(self, now: datetime, since: timedelta) -> list[str]:
        """Enabled feeds that have failed for at least `since` (no good fetch within it)."""
        cutoff = now - since
        with self.read_session() as s:
            feeds = s.exec(
                select(Feed)
                .where(col(Feed.enabled).is_(True), col(Feed.last_error).is_not(None))
                .order_by(col(Feed.name))
            ).all()
            # from its last good fetch, or from when it was enabled again if that is later
            return [
                f.name
                for f in feeds
                if max(f.last_ok_at or f.created_at, f.enabled_at or f.created_at) <= cutoff
            ]

    def deliveries(
        self,
        states: Sequence[DigestState] | None = None,
        *,
        user: str | None = None,
        postponed_only: bool = False,
        with_error: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Delivery]:
        """Digests, newest first, with their user and channel kind (optionally of some states,
        of one user, only those held back by an unusable transport, or only those with an
        error)."""
        with self.read_session() as s:
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
                q = q.where(col(Digest.id).in_(_held_back()))
            if with_error:
                q = q.where(col(Digest.last_error).is_not(None), col(Digest.last_error) != "")
            rows = list(s.exec(q.offset(offset).limit(limit)).all())
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
        return found

    def failed_since(self, since: datetime, causes: int = 3) -> tuple[int, list[tuple[str, int]]]:
        """How many digests were given up on since `since` (a permanent error, or too many
        temporary ones), not counting those of people who unsubscribed meanwhile; and their
        most frequent errors (at most `causes`), each with how many digests it ended. Counted
        by the database: a day of a mail server refusing is thousands of digests."""
        given_up = sa.select(col(DeliveryAttempt.digest_id)).where(
            col(DeliveryAttempt.outcome).in_([Outcome.PERMANENT, Outcome.TEMPORARY]),
            col(DeliveryAttempt.at) >= since,
            col(DeliveryAttempt.detail) != UNSUBSCRIBED_DETAIL,
        )
        failed = (col(Digest.state) == DigestState.FAILED, col(Digest.id).in_(given_up))
        n = sa.func.count()
        with self.read_session() as s:
            total = int(s.exec(select(n).select_from(Digest).where(*failed)).one())
            if not total:
                return 0, []
            q = (
                select(Digest.last_error, n)
                .where(*failed)
                .group_by(col(Digest.last_error))
                .order_by(n.desc(), col(Digest.last_error))
                .limit(causes)
            )
            found = [(error or "(no error recorded)", int(k)) for error, k in s.exec(q).all()]
        return total, found

    def known_papers(self, keys: Sequence[str]) -> set[str]:
        """Which of these paper keys are stored already (what a feed test would not add)."""
        found: set[str] = set()
        unique = sorted(set(keys))
        with self.read_session() as s:
            for start in range(0, len(unique), 1000):
                chunk = unique[start : start + 1000]
                found.update(s.exec(select(Paper.key).where(col(Paper.key).in_(chunk))).all())
        return found

    def counts(self) -> dict[str, int]:
        """How many digests are in each state, with "postponed" apart from "pending"."""
        with self.read_session() as s:
            q = select(Digest.state, sa.func.count()).group_by(col(Digest.state))
            found = {str(state): int(n) for state, n in s.exec(q).all()}
            held = s.execute(sa.select(sa.func.count()).select_from(_held_back().subquery()))
            held_back = int(held.scalar_one())
        counts = {str(state): found.get(str(state), 0) for state in DigestState}
        counts["postponed"] = held_back
        counts[DigestState.PENDING] -= held_back
        return counts


def _held_back(among: Sequence[int] | None = None) -> sa.Select[tuple[int]]:
    """The ids of the pending digests (`among` these, when given) whose latest attempt (by
    time, then id) was postponed: held back by a transport that could deliver nothing. Each
    pending digest's latest attempt is one step of the (digest_id, at, id) index (migration
    0016): the postponed attempts of an outage pile up, twelve an hour a digest."""
    a, d = _table(DeliveryAttempt), _table(Digest)
    latest = (
        sa.select(a.c.outcome)
        .where(a.c.digest_id == d.c.id)
        .order_by(a.c.at.desc(), a.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    q = sa.select(d.c.id).where(
        d.c.state == DigestState.PENDING.value, latest == Outcome.POSTPONED.value
    )
    return q if among is None else q.where(d.c.id.in_(among))


def _postponed(s: Session, pending_ids: Sequence[int | None]) -> set[int]:
    """Of these pending digests, those whose latest attempt was postponed."""
    ids = [i for i in pending_ids if i is not None]
    held: set[int] = set()
    for start in range(0, len(ids), IN_CHUNK):
        held.update(s.execute(_held_back(ids[start : start + IN_CHUNK])).scalars())
    return held

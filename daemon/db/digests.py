"""Digests and their delivery: one digest per (user, channel, period) (and edition, after a
move to a zone behind: `Digest.edition`), which is also the delivery's state machine
(pending → sent | empty | failed), claimed by workers with a lease."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from daemon.db.engine import IN_CHUNK, Repository
from daemon.db.engine import table_of as _table
from daemon.db.models import (
    UNSUBSCRIBED_DETAIL,
    Channel,
    ChannelKind,
    DeliveryAttempt,
    Digest,
    DigestItem,
    DigestState,
    Outcome,
    Paper,
    User,
)
from daemon.db.rows import (
    ChannelRow,
    DigestContent,
    DigestItemRow,
    DigestRow,
    DueDelivery,
    PaperRow,
    UserRow,
    frequency_of,
    row_of,
)

log = logging.getLogger("paperwire.db")

REASON_CHARS = 600  # of why a channel was stopped (the error of its last digest, and a preface)
# "Resend all failed" (console, `deliveries retry --failed`) takes the failed digests made within
# this: an outage's, not a subscriber's digest of months ago (they are kept digest.keep_days)
RESEND_WITHIN = timedelta(days=2)
CANCELLED_BY = "cancelled by "  # the last error of a digest an admin cancelled: "cancelled by ada"


def _insert_ignoring_duplicates(
    s: Session, table: sa.Table, rows: list[dict[str, Any]], now: datetime
) -> Sequence[Any]:
    """INSERT `rows` … ON CONFLICT DO NOTHING on the one-digest-per-(user, channel, period,
    edition) key. Returns (id, user id, channel id) of those inserted."""
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        return _insert_digests_as_arrays(s, table, rows, now)
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        insert = sqlite_insert(table).on_conflict_do_nothing(
            index_elements=["user_id", "channel_id", "period", "edition"]
        )
        returning = insert.returning(table.c.id, table.c.user_id, table.c.channel_id)
        return s.execute(returning, rows).all()
    raise NotImplementedError(f"digests on {dialect}: use SQLite or PostgreSQL")


CLAIM_LIMIT = 100  # digests leased by one claim (the delivery job claims batch after batch)
PRUNE_CHUNK = 5_000  # old digests deleted a transaction (with some 50,000 items)
PRUNE_PAUSE = 0.2  # seconds between two such transactions, for the writers waiting


def _with_email(conn: sa.Connection, user_ids: Collection[int]) -> set[int]:
    """Those of these users who have an email address (a channel of it, on or not)."""
    channel_t, ids = _table(Channel), sorted(set(user_ids))
    found: set[int] = set()
    for start in range(0, len(ids), IN_CHUNK):
        q = sa.select(channel_t.c.user_id).where(
            channel_t.c.user_id.in_(ids[start : start + IN_CHUNK]),
            channel_t.c.kind == ChannelKind.EMAIL.value,
        )
        found.update(conn.execute(q).scalars())
    return found


def _finished(**values: object) -> sa.Update:
    """UPDATE digest: one more attempt, the lease given up, and `values`, for :digest_id."""
    digest_t = _table(Digest)
    return (
        sa.update(digest_t)
        .where(digest_t.c.id == sa.bindparam("digest_id"))
        .values(attempts=digest_t.c.attempts + 1, leased_until=None, **values)
    )


# what `Digests.finish` writes, built once: it runs once for every message sent
_SENT = _finished(state=DigestState.SENT, sent_at=sa.bindparam("now"), last_error=None)
_RETRY = _finished(next_attempt_at=sa.bindparam("retry_at"), last_error=sa.bindparam("detail"))
_FAILED = _finished(state=DigestState.FAILED, last_error=sa.bindparam("detail"))
_ATTEMPT = sa.insert(_table(DeliveryAttempt)).values(
    digest_id=sa.bindparam("digest_id"),
    at=sa.bindparam("now"),
    outcome=sa.bindparam("outcome"),
    detail=sa.bindparam("detail"),
)


def _due_again(now: datetime, *, failed: bool) -> dict[str, object]:
    """The values that make a digest due now (a failed one again from its first attempt)."""
    again: dict[str, object] = {"next_attempt_at": now}
    if failed:
        again.update(state=DigestState.PENDING.value, attempts=0)
    return again


def _cancelled() -> sa.ColumnElement[bool]:
    """Of a digest: an admin cancelled it (its last error says so; see `Digests.cancel`)."""
    last_error = _table(Digest).c.last_error
    return sa.and_(last_error.is_not(None), last_error.startswith(CANCELLED_BY, autoescape=True))


def _stopped() -> sa.ColumnElement[bool]:
    """Of a digest: its channel is stopped or its subscriber unsubscribed (a resend would be
    given up at once)."""
    digest_t, channel_t, user_t = _table(Digest), _table(Channel), _table(User)
    channel_on = sa.select(channel_t.c.id).where(
        channel_t.c.id == digest_t.c.channel_id, channel_t.c.active.is_(True)
    )
    user_on = sa.select(user_t.c.id).where(
        user_t.c.id == digest_t.c.user_id, user_t.c.active.is_(True)
    )
    return sa.not_(sa.and_(channel_on.exists(), user_on.exists()))


def _failed_left(now: datetime) -> list[sa.ColumnElement[bool]]:
    """Why "Resend all failed" leaves a failed digest, in `FailedToResend`'s order: cancelled
    by an admin, made before `RESEND_WITHIN`, of a stopped channel or subscriber."""
    return [_cancelled(), _table(Digest).c.created_at < now - RESEND_WITHIN, _stopped()]


class FailedToResend(NamedTuple):
    """The failed digests "Resend all failed" would queue again, and those it leaves: cancelled
    by an admin, made before `RESEND_WITHIN`, or of a stopped channel or an unsubscribed
    subscriber (each counted once, under the first of these reasons)."""

    due: int
    cancelled: int
    older: int
    stopped: int

    def left(self) -> str:
        """Those left, said for the console and the command line ("" when none)."""
        parts = [
            f"{self.cancelled} cancelled by an admin" if self.cancelled else "",
            f"{self.older} made more than {RESEND_WITHIN.days} days ago" if self.older else "",
            f"{self.stopped} of a stopped channel or an unsubscribed subscriber"
            if self.stopped
            else "",
        ]
        n = self.cancelled + self.older + self.stopped
        return f"{n} more left failed: {', '.join(p for p in parts if p)}" if n else ""


def _with_attempt(update: sa.Update) -> sa.Update:
    """The UPDATE with the attempt's INSERT in a WITH clause: one statement, which PostgreSQL
    runs as one transaction (one round trip to record a message instead of five)."""
    return update.add_cte(_ATTEMPT.cte("attempt"))


_RECORDED = {update: _with_attempt(update) for update in (_SENT, _RETRY, _FAILED)}
# a literal, not a parameter: PostgreSQL uses the partial index of pending digests
# (ix_digest_pending) only where it can see the condition, also in a prepared statement's plan
_IS_PENDING = _table(Digest).c.state == sa.literal_column(f"'{DigestState.PENDING}'")
# done with (sent, failed, empty): "not pending" rather than the three other states, so that
# SQLite reads the old days from the (period, …) index (0.1 ms) instead of every sent digest
# from the state's (340 ms with 2 million digests kept)
_DONE = _table(Digest).c.state != DigestState.PENDING.value


def _done_before(before: date) -> sa.ColumnElement[bool]:
    """The digests `Digests.prune` deletes: of days before `before`, done with."""
    return sa.and_(_table(Digest).c.period < before, _DONE)


class NewItem(NamedTuple):
    """One pick of a digest, in rank order (a named tuple: a million of them for 100,000
    subscribers, built at a third of a frozen dataclass's cost)."""

    paper_id: int
    score: float
    kind: str
    reason: str


@dataclass(frozen=True)
class NewDigest:
    """One digest to store: its picks in rank order (none: an empty digest)."""

    user_id: int
    channel_id: int
    period: date
    items: tuple[NewItem, ...]
    cold_start: bool
    edition: int = 0  # 1, 2 …: another digest of a date made already (`Digest.edition`)


ITEM_ROWS_PER_INSERT = 5000  # digest items per executemany
_ITEM_COLUMNS = ("digest_id", "paper_id", "rank", "score", "kind", "reason")


def _insert_digests_as_arrays(
    s: Session, table: sa.Table, rows: list[dict[str, Any]], now: datetime
) -> Sequence[Any]:
    """PostgreSQL: `rows` inserted by one short statement of six arrays (`unnest`), skipping
    those that exist. SQLAlchemy's multi-row VALUES statement for a batch of 1,000 digests is
    too long for psycopg's statement cache: psycopg parsed it anew each time (44 % of the
    writer thread at 100,000 subscribers). Returns (id, user id, channel id) of those made."""
    arrays = {
        "users": [r["user_id"] for r in rows],
        "channels": [r["channel_id"] for r in rows],
        "periods": [r["period"] for r in rows],
        "editions": [r["edition"] for r in rows],
        "colds": [r["cold_start"] for r in rows],
        "states": [str(r["state"]) for r in rows],
    }
    name = s.get_bind().dialect.identifier_preparer.format_table(table)
    statement = sa.text(
        f"INSERT INTO {name} (user_id, channel_id, period, edition, cold_start, state, attempts,"
        " parts_sent, next_attempt_at, created_at)"
        " SELECT u, c, p, e, cold, st, 0, 0, :now, :now FROM unnest(CAST(:users AS integer[]),"
        " CAST(:channels AS integer[]), CAST(:periods AS date[]), CAST(:editions AS integer[]),"
        " CAST(:colds AS boolean[]), CAST(:states AS varchar[])) AS t(u, c, p, e, cold, st)"
        " ON CONFLICT (user_id, channel_id, period, edition) DO NOTHING"
        " RETURNING id, user_id, channel_id"
    ).bindparams(sa.bindparam("now", type_=table.c.created_at.type))
    return s.execute(statement, {"now": now, **arrays}).all()


def _insert_rows(
    s: Session, table: sa.Table, columns: Sequence[str], rows: Sequence[tuple[object, ...]]
) -> None:
    """INSERT rows given as tuples (values of `columns`), passed to the driver's executemany as
    they are: SQLAlchemy's per-row parameter processing cost as much as the inserts themselves
    (110,000 digest items for 10,000 subscribers). On PostgreSQL, COPY: a third of
    executemany's time. For columns needing no type conversion (numbers, text)."""
    if not rows:
        return
    conn = s.connection()
    if conn.dialect.name == "postgresql":  # in the session's transaction, on its connection
        names = ", ".join(conn.dialect.identifier_preparer.quote(c) for c in columns)
        sql = f"COPY {conn.dialect.identifier_preparer.format_table(table)} ({names}) FROM STDIN"
        raw: Any = conn.connection.dbapi_connection  # psycopg's connection: it has COPY
        with raw.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
        return
    compiled = sa.insert(table).compile(dialect=conn.dialect, column_keys=list(columns))
    params: list[Any]
    if compiled.positional:  # SQLite: "?" in the compiled order of the columns
        assert compiled.positiontup is not None
        order = [columns.index(k) for k in compiled.positiontup]
        in_order = order == list(range(len(columns)))
        params = list(rows) if in_order else [tuple(r[i] for i in order) for r in rows]
    else:  # another driver with named parameters
        params = [dict(zip(columns, r, strict=True)) for r in rows]
    conn.exec_driver_sql(compiled.string, params)


class Digests(Repository):
    def channels_done(self, user_id: int, period: date) -> set[int]:
        """Ids of the user's channels that already have a digest for this period."""
        with self.read_session() as s:
            q = select(Digest.channel_id).where(Digest.user_id == user_id, Digest.period == period)
            return set(s.exec(q).all())

    def made(
        self, periods: Collection[date], channels: Collection[int] | None = None
    ) -> set[tuple[int, date]]:
        """(channel id, period) of every digest already made for these periods (of these
        channels only, when given), in one query."""
        if not periods or (channels is not None and not channels):
            return set()
        with self.read_session() as s:
            q = select(col(Digest.channel_id), col(Digest.period)).where(
                col(Digest.period).in_(periods)
            )
            if channels is not None:
                q = q.where(col(Digest.channel_id).in_(channels))
            return {(c, p) for c, p in s.exec(q).all()}

    def editions(
        self, channels: Collection[int], periods: Collection[date]
    ) -> dict[tuple[int, date], tuple[int, datetime]]:
        """Of these channels' digests for these periods: {(channel id, period): (the next
        edition, when the latest was made, in UTC)}, in one query. For a few channels (those
        of subscribers who moved lately)."""
        if not channels or not periods:
            return {}
        with self.read_session() as s:
            q = (
                select(
                    col(Digest.channel_id),
                    col(Digest.period),
                    sa.func.max(col(Digest.edition)),
                    sa.func.max(col(Digest.created_at)),
                )
                .where(col(Digest.channel_id).in_(channels), col(Digest.period).in_(periods))
                .group_by(col(Digest.channel_id), col(Digest.period))
            )
            return {
                (c, p): (edition + 1, at if at.tzinfo is not None else at.replace(tzinfo=UTC))
                for c, p, edition, at in s.exec(q).all()
            }

    def last_made(self, user_ids: Collection[int], since: datetime) -> dict[int, datetime]:
        """When each of these users' latest digest (any channel) was made, of those made at or
        after `since`: {user id: when, in UTC}. Read from the index of (user, created_at) alone
        (the digest job asks it for every subscriber due, over a week and more of digests)."""
        out: dict[int, datetime] = {}
        ids = sorted(set(user_ids))
        if self.engine.dialect.name == "postgresql":
            return self._last_made_pg(ids, since)
        with self.read_session() as s:
            for start in range(0, len(ids), IN_CHUNK):
                q = (
                    select(col(Digest.user_id), sa.func.max(col(Digest.created_at)))
                    .where(
                        col(Digest.user_id).in_(ids[start : start + IN_CHUNK]),
                        col(Digest.created_at) >= since,
                    )
                    .group_by(col(Digest.user_id))
                )
                for user_id, at in s.exec(q).all():
                    out[user_id] = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        return out

    def _last_made_pg(self, ids: list[int], since: datetime) -> dict[int, datetime]:
        """`last_made` on PostgreSQL: the ids as one array, each user's latest digest found by
        one step back in the index of (user, created_at). The lists of 10,000 ids read every
        digest of each user's window and bound a parameter per id: 100,000 subscribers with 30
        days of digests, a median of 3.33 s a run against 1.05–1.26 s this way (5 runs each,
        alternating; bench/README.md)."""
        q = sa.text(
            "SELECT u.id, (SELECT max(d.created_at) FROM digest AS d"
            " WHERE d.user_id = u.id AND d.created_at >= :since)"
            " FROM unnest(CAST(:ids AS integer[])) AS u(id)"
        )
        out: dict[int, datetime] = {}
        with self.read_session() as s:
            for user_id, at in s.connection().execute(q, {"ids": ids, "since": since}):
                if at is not None:
                    out[user_id] = at.astimezone(UTC)
        return out

    def made_since(
        self, user_ids: Collection[int], since: datetime
    ) -> dict[int, tuple[int, datetime]]:
        """The latest digest made at or after `since` for each channel of these users that has
        one: {channel id: (user id, when, in UTC)}. For a few users (those `last_made` found
        with a digest that recent): the rows are read through the index of (user, created_at),
        and the latest of each channel picked here."""
        out: dict[int, tuple[int, datetime]] = {}
        ids = sorted(set(user_ids))
        with self.read_session() as s:
            for start in range(0, len(ids), IN_CHUNK):
                q = select(
                    col(Digest.channel_id), col(Digest.user_id), col(Digest.created_at)
                ).where(
                    col(Digest.user_id).in_(ids[start : start + IN_CHUNK]),
                    col(Digest.created_at) >= since,
                )
                for channel_id, user_id, at in s.exec(q).all():
                    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
                    if channel_id not in out or out[channel_id][1] < at:
                        out[channel_id] = (user_id, at)
        return out

    def create_many(
        self,
        new: Sequence[NewDigest],
        now: datetime,
        *,
        empty_state: DigestState = DigestState.EMPTY,
    ) -> dict[tuple[int, int], int]:
        """Insert many digests with their items in one transaction, skipping any that exists
        already (another worker made it meanwhile: the unique constraint decides).
        Returns {(user id, channel id): digest id} of those inserted."""
        if not new:
            return {}
        rows = [
            {
                "user_id": n.user_id,
                "channel_id": n.channel_id,
                "period": n.period,
                "edition": n.edition,
                "cold_start": n.cold_start,
                "state": DigestState.PENDING if n.items else empty_state,
                "attempts": 0,
                "parts_sent": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for n in new
        ]
        table = _table(Digest)
        with self.session() as s:
            returned = _insert_ignoring_duplicates(s, table, rows, now)
            created = {(u, c): i for i, u, c in returned}
            items = [
                (
                    created[(n.user_id, n.channel_id)],
                    item.paper_id,
                    rank,
                    item.score,
                    item.kind,
                    item.reason,
                )
                for n in new
                if (n.user_id, n.channel_id) in created
                for rank, item in enumerate(n.items, start=1)
            ]
            for start in range(0, len(items), ITEM_ROWS_PER_INSERT):
                _insert_rows(
                    s,
                    _table(DigestItem),
                    _ITEM_COLUMNS,
                    items[start : start + ITEM_ROWS_PER_INSERT],
                )
            s.commit()
            return created

    def create(
        self,
        user_id: int,
        channel_id: int,
        period: date,
        items: Sequence[NewItem],
        now: datetime,
        *,
        cold_start: bool,
        empty_state: DigestState = DigestState.EMPTY,
    ) -> int | None:
        """Insert the one digest of (user, channel, period) with its items; None if it exists.

        A digest with no items is stored in `empty_state` (EMPTY: nothing to send; PENDING:
        send a short note)."""
        with self.session() as s:
            digest = Digest(
                user_id=user_id,
                channel_id=channel_id,
                period=period,
                cold_start=cold_start,
                state=DigestState.PENDING if items else empty_state,
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
            for rank, item in enumerate(items, start=1):
                s.add(
                    DigestItem(
                        digest_id=digest.id,
                        paper_id=item.paper_id,
                        rank=rank,
                        score=item.score,
                        kind=item.kind,
                        reason=item.reason,
                    )
                )
            s.commit()
            return digest.id

    def get(self, digest_id: int) -> DigestRow:
        with self.read_session() as s:
            return DigestRow.of(s.get_one(Digest, digest_id))

    def owner(self, digest_id: int) -> tuple[int, int] | None:
        """The ids of the user and the channel a digest is for; None when there is no such
        digest."""
        digest_t = _table(Digest)
        with self.engine.connect() as conn:
            q = sa.select(digest_t.c.user_id, digest_t.c.channel_id)
            row = conn.execute(q.where(digest_t.c.id == digest_id)).first()
            return None if row is None else (row.user_id, row.channel_id)

    def contents(
        self, digest_ids: Sequence[int], papers: dict[int, PaperRow] | None = None
    ) -> dict[int, DigestContent]:
        """`content` of many digests in five queries (a delivery batch renders them all), of
        those still there.
        `papers`, when given, is a cache of papers by id kept across calls: a delivery run
        reads each of the day's papers once, not once per digest that picks it."""
        if not digest_ids:
            return {}
        ids = list(digest_ids)
        digest_t, user_t, channel_t = _table(Digest), _table(User), _table(Channel)
        item_t, paper_t = _table(DigestItem), _table(Paper)
        # Core rows, not ORM objects: a delivery batch reads ~1,000 items and papers here, on
        # a connection that reads beside a writer (SQLite: without the write lock, which the
        # digest job's writer and the other delivery workers take to store and record)
        with self.reading() as conn:
            digests = [
                row_of(DigestRow, r._mapping, state=DigestState(r.state))
                for r in conn.execute(sa.select(digest_t).where(digest_t.c.id.in_(ids)))
            ]
            user_ids = list({d.user_id for d in digests})
            channel_ids = list({d.channel_id for d in digests})
            users = {
                r.id: row_of(UserRow, r._mapping, frequency=frequency_of(r.frequency))
                for r in conn.execute(sa.select(user_t).where(user_t.c.id.in_(user_ids)))
            }
            channels = {
                r.id: row_of(ChannelRow, r._mapping, kind=ChannelKind(r.kind))
                for r in conn.execute(sa.select(channel_t).where(channel_t.c.id.in_(channel_ids)))
            }
            others = [c.user_id for c in channels.values() if c.kind != ChannelKind.EMAIL]
            with_email = _with_email(conn, others)
            q = (
                sa.select(
                    item_t.c.digest_id,
                    item_t.c.rank,
                    item_t.c.score,
                    item_t.c.kind,
                    item_t.c.reason,
                    item_t.c.paper_id,
                )
                .where(item_t.c.digest_id.in_(ids))
                .order_by(item_t.c.digest_id, item_t.c.rank)
            )
            rows = conn.execute(q).all()
            # the day's digests pick from a few thousand papers: each is read once per cache
            known = papers if papers is not None else {}
            missing = list({r.paper_id for r in rows} - known.keys())
            for start in range(0, len(missing), IN_CHUNK):
                chunk = missing[start : start + IN_CHUNK]
                for r in conn.execute(sa.select(paper_t).where(paper_t.c.id.in_(chunk))):
                    known[r.id] = row_of(
                        PaperRow,
                        r._mapping,
                        authors=tuple(r.authors),
                        categories=tuple(r.categories or ()),
                    )
            items: dict[int, list[tuple[DigestItemRow, PaperRow]]] = {}
            for r in rows:
                items.setdefault(r.digest_id, []).append(
                    (DigestItemRow(r.rank, r.score, r.kind, r.reason), known[r.paper_id])
                )
            # ended by a commit, not a rollback: psycopg forgets every prepared statement of the
            # connection on a rollback (the recording of each message sent among them)
            conn.commit()
        # a digest whose channel or subscriber was removed (or its channel changed) between
        # these reads is left out: the caller finds it gone
        return {
            d.id: DigestContent(
                digest=d,
                user=users[d.user_id],
                channel=channels[d.channel_id],
                items=tuple(items.get(d.id, ())),
                has_email=d.user_id in with_email,
            )
            for d in digests
            if d.user_id in users and d.channel_id in channels
        }

    def content(self, digest_id: int) -> DigestContent:
        """The digest with its user, channel and picks (in rank order)."""
        with self.read_session() as s:
            digest = s.get_one(Digest, digest_id)
            user = s.get_one(User, digest.user_id)
            channel = s.get_one(Channel, digest.channel_id)
            q = (
                select(DigestItem, Paper)
                .join(Paper, col(Paper.id) == col(DigestItem.paper_id))
                .where(DigestItem.digest_id == digest_id)
                .order_by(col(DigestItem.rank))
            )
            items = tuple(
                (DigestItemRow.of(item), PaperRow.of(paper)) for item, paper in s.exec(q).all()
            )
            others = [] if channel.kind == ChannelKind.EMAIL else [channel.user_id]
            return DigestContent(
                digest=DigestRow.of(digest),
                user=UserRow.of(user),
                channel=ChannelRow.of(channel),
                items=items,
                has_email=bool(_with_email(s.connection(), others)),
            )

    def analyze(self) -> None:
        """PostgreSQL: refresh the planner's statistics of the digests and their items (a
        fraction of a second: ANALYZE reads a sample). Until autovacuum's first analysis of
        them, a new database plans a delivery batch's read for hundreds of thousands of rows
        and compiles it (JIT): 1,150 digests read a second at 100,000 subscribers, 7,360 with
        statistics. The digest job calls it after storing a run's first batch, before the
        delivery reads them. A failure is logged: only the speed depends on it."""
        if self.engine.dialect.name != "postgresql":
            return
        try:
            with self.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE digest, digestitem")
        except sa.exc.SQLAlchemyError as e:
            log.warning("ANALYZE of the digests failed", extra={"error": str(e)})

    def prune(
        self,
        before: date,
        chunk: int = PRUNE_CHUNK,
        stop: Callable[[], bool] | None = None,
        pause: float = PRUNE_PAUSE,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Delete the digests of days before `before` that are done with (sent, failed,
        empty), with their items and delivery attempts (the foreign keys cascade); pending
        ones stay, also one made pending again meanwhile (the state is read again as they are
        deleted). `chunk` digests a transaction, then `pause` seconds: SQLite's busy handler
        polls, and a writer waiting (a click, the console) gets the lock in the gap. None
        begun once `stop()` is true (the next call goes on). `progress(n)`: after each
        transaction, with how many so far. Returns how many."""
        d = _table(Digest)
        done = _done_before(before)
        pruned = 0
        while stop is None or not stop():
            with self.engine.begin() as conn:
                q = sa.select(d.c.id).where(done).limit(chunk)
                ids = list(conn.execute(q).scalars())
                if ids:
                    gone = conn.execute(sa.delete(d).where(d.c.id.in_(ids), _DONE))
                    pruned += gone.rowcount
            if progress is not None:
                progress(pruned)
            if len(ids) < chunk:
                return pruned
            time.sleep(pause)
        return pruned

    def prunable(self, before: date) -> int:
        """How many digests `prune(before)` would delete now."""
        with self.engine.connect() as conn:
            q = sa.select(sa.func.count()).select_from(_table(Digest)).where(_done_before(before))
            return int(conn.execute(q).scalar_one())

    def counts(self) -> dict[DigestState, int]:
        """How many digests are in each state."""
        with self.read_session() as s:
            q = select(Digest.state, sa.func.count()).group_by(col(Digest.state))
            return {DigestState(state): int(n) for state, n in s.exec(q).all()}

    # ---- delivery ----------------------------------------------------------------------------

    def claim_due(
        self, now: datetime, lease: timedelta, limit: int = CLAIM_LIMIT
    ) -> list[DueDelivery]:
        """Lease pending digests whose time has come. On PostgreSQL, rows another worker holds
        are skipped (FOR UPDATE SKIP LOCKED); a lease that ran out is claimable again."""
        digest_t = _table(Digest)
        c = digest_t.c
        until = now + lease
        # Core, one UPDATE for the batch (not one per digest): 4 round trips per claim
        with self.engine.begin() as conn:
            q = (
                sa.select(c.id, c.attempts, c.parts_sent, c.created_at)
                .where(_IS_PENDING)
                .where(sa.or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now))
                .where(sa.or_(c.leased_until.is_(None), c.leased_until < now))
                .order_by(c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            rows = conn.execute(q).all()
            if rows:
                ids = [r.id for r in rows]
                conn.execute(sa.update(digest_t).where(c.id.in_(ids)).values(leased_until=until))
        return [
            DueDelivery(
                digest_id=r.id,
                attempts=r.attempts,
                parts_sent=r.parts_sent,
                leased_until=until,
                created_at=r.created_at,
            )
            for r in rows
        ]

    def renew_leases(
        self, digest_ids: Collection[int], expected: datetime, until: datetime
    ) -> set[int]:
        """Extend our lease (every digest of one claim shares its `leased_until`) on the digests
        still ours — nobody re-claimed them after the lease ran out — and still pending.
        Returns their ids: leave the others alone."""
        if not digest_ids:
            return set()
        with self.session() as s:
            ours = (
                col(Digest.id).in_(list(digest_ids)),
                col(Digest.state) == DigestState.PENDING,
                col(Digest.leased_until) == expected,
            )
            # locked until the update (PostgreSQL; SQLite holds its write lock from BEGIN)
            kept = set(s.exec(select(Digest.id).where(*ours).with_for_update()).all())
            if kept:
                s.execute(
                    sa.update(Digest)
                    .where(col(Digest.id).in_(list(kept)), *ours[1:])
                    .values(leased_until=until)
                )
            s.commit()
            return {i for i in kept if i is not None}

    def release(self, digest_ids: Collection[int], expected: datetime) -> int:
        """Give back claimed digests we did not start (a stop): another worker, or the next run,
        takes them at once instead of waiting for the lease to run out. Returns how many."""
        if not digest_ids:
            return 0
        with self.session() as s:
            result = s.execute(
                sa.update(Digest)
                .where(
                    col(Digest.id).in_(list(digest_ids)),
                    col(Digest.state) == DigestState.PENDING,
                    col(Digest.leased_until) == expected,
                )
                .values(leased_until=None)
            )
            s.commit()
            return int(getattr(result, "rowcount", 0))

    def postpone(self, digest_id: int, now: datetime, retry_at: datetime, detail: str) -> None:
        """The transport could not deliver anything (server down, bad credentials): wait and
        retry without counting an attempt against the digest."""
        with self.session() as s:
            d = s.get(Digest, digest_id)
            if d is None:  # removed meanwhile, with its channel or its subscriber
                log.info("digest removed meanwhile: nothing to record", extra={"digest": digest_id})
                return
            d.leased_until, d.next_attempt_at, d.last_error = None, retry_at, detail
            s.add(d)
            s.add(
                DeliveryAttempt(
                    digest_id=digest_id, at=now, outcome=Outcome.POSTPONED, detail=detail
                )
            )
            s.commit()

    def finish(
        self,
        digest_id: int,
        now: datetime,
        *,
        outcome: Outcome,
        detail: str = "",
        retry_at: datetime | None = None,
    ) -> None:
        """Record an attempt: SENT, TEMPORARY (retry at `retry_at`, or give up when None) or
        PERMANENT. A digest removed meanwhile (with its channel or its subscriber, also while
        it was sent) has nothing left to record: the attempt is not."""
        if outcome == Outcome.SENT:
            update = _SENT
        elif outcome == Outcome.TEMPORARY and retry_at is not None:
            update = _RETRY
        else:
            update = _FAILED
        params = {
            "digest_id": digest_id,
            "now": now,
            "outcome": outcome,
            "detail": detail,
            "retry_at": retry_at,
        }
        try:
            self._record(update, params)
        except IntegrityError:  # the attempt's row names a digest no longer there?
            if self.owner(digest_id) is not None:
                raise
            log.info("digest removed meanwhile: nothing to record", extra={"digest": digest_id})

    def _record(self, update: sa.Update, params: dict[str, object]) -> None:
        # statements built once (compiled once), no read: one short transaction per message
        if self.engine.dialect.name == "postgresql":
            # one statement in autocommit, a transaction of its own: no BEGIN or COMMIT to wait
            # for (the commit and its flush to disk are the same)
            with self.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.execute(_RECORDED[update], params)
            return
        with self.engine.begin() as conn:  # SQLite: no INSERT in a WITH clause
            conn.execute(update, params)
            conn.execute(_ATTEMPT, params)

    def stop_refusing_channel(self, digest_id: int, refusals: int) -> tuple[str, str] | None:
        """Stop the channel of a digest just given up for good when its last `refusals`
        digests (empty ones aside) were all given up for good, while a digest went out through
        another channel of its kind meanwhile: after the refusal before this one (the server
        works, the refusal is this address's; one sent earlier that day says nothing of a
        server refusing everyone since), or on the same day when one refusal stops. Returns
        (the user's name, the reason recorded), or None: nothing stopped. Sending every day to
        a mailbox that does not exist costs the sender's standing with the mail providers."""
        with self.session() as s:
            digest = s.get(Digest, digest_id)
            channel = s.get(Channel, digest.channel_id) if digest is not None else None
            if digest is None or channel is None or not channel.active:
                return None
            recent = s.exec(
                select(
                    col(Digest.id), col(Digest.state), col(Digest.period), col(Digest.parts_sent)
                )
                .where(
                    Digest.channel_id == channel.id,
                    Digest.state != DigestState.EMPTY,
                    # not those of its old address, or from before it was started again
                    col(Digest.id) > (channel.fresh_after_digest or 0),
                )
                .order_by(col(Digest.period).desc(), col(Digest.id).desc())  # editions: newest
                .limit(refusals)
            ).all()
            # a part of a split message accepted (Slack): the address works, its refusal was
            # of the message
            if len(recent) < refusals or any(
                st != DigestState.FAILED or parts for _, st, _, parts in recent
            ):
                return None
            refused = s.exec(
                select(sa.func.count(sa.distinct(col(DeliveryAttempt.digest_id)))).where(
                    col(DeliveryAttempt.digest_id).in_([i for i, _, _, _ in recent]),
                    DeliveryAttempt.outcome == Outcome.PERMANENT,
                    # one not sent because its channel was stopped then: not a refusal
                    col(DeliveryAttempt.detail) != UNSUBSCRIBED_DETAIL,
                )
            ).one()
            # of the day of the refusal before this one, or later (the index of the period)
            meanwhile = [col(Digest.period) >= recent[min(1, len(recent) - 1)][2]]
            if len(recent) > 1:  # and sent after that refusal
                since = s.exec(
                    select(sa.func.max(DeliveryAttempt.at)).where(
                        DeliveryAttempt.digest_id == recent[1][0]
                    )
                ).one()
                meanwhile.append(col(Digest.sent_at) >= since)
            others_got_theirs = s.exec(
                select(Digest.id)
                .join(Channel, col(Channel.id) == col(Digest.channel_id))
                .where(
                    *meanwhile,
                    Digest.state == DigestState.SENT,
                    Channel.kind == channel.kind,
                    Channel.id != channel.id,
                )
                .limit(1)
            ).first()
            if refused < refusals or others_got_theirs is None:
                return None
            reason = f"its last {refusals} digests were refused: {digest.last_error or '?'}"
            channel.active, channel.stopped_reason = False, reason[:REASON_CHARS]
            s.add(channel)
            user = s.get_one(User, channel.user_id)
            s.commit()
            return user.name, channel.stopped_reason

    def record_part_sent(
        self, digest_id: int, parts_sent: int, channel_id: int | None = None
    ) -> bool:
        """Remember that the first `parts_sent` parts of a split message were accepted; with
        `channel_id` (the channel whose address they went to), only while the digest is still
        that channel's. A changed address moves the digest to a new channel whose webhook has
        none of its parts (`people._move_to_new_channel` counts them from 0 again): a count
        recorded over that would skip them there. False: nothing recorded."""
        digest_t = _table(Digest)
        q = sa.update(digest_t).where(digest_t.c.id == digest_id)
        if channel_id is not None:
            q = q.where(digest_t.c.channel_id == channel_id)
        with self.engine.begin() as conn:
            return bool(conn.execute(q.values(parts_sent=parts_sent)).rowcount)

    # ---- the admin's actions (console and `paperwire deliveries`) ----------------------------
    # Kept together at the end of the class: the delivery job above does not use them.

    def retry_now(self, digest_ids: Collection[int], now: datetime) -> list[int]:
        """Make digests due now: pending ones (waiting for a retry or a transport) at once,
        failed ones again from their first attempt. Sent, empty and leased digests are left
        alone. Returns the ids changed."""
        changed: list[int] = []
        with self.session() as s:
            for d in s.exec(select(Digest).where(col(Digest.id).in_(list(digest_ids)))).all():
                leased = d.leased_until is not None and d.leased_until > now
                if leased or d.state not in (DigestState.PENDING, DigestState.FAILED):
                    continue
                for key, value in _due_again(now, failed=d.state == DigestState.FAILED).items():
                    setattr(d, key, value)
                s.add(d)
                changed.append(d.id or 0)
            s.commit()
        return sorted(changed)

    def failed_to_resend(self, now: datetime) -> FailedToResend:
        """How many failed digests `resend_failed` would queue at `now`, and how many it
        leaves, by reason."""
        digest_t = _table(Digest)
        counted: list[sa.ColumnElement[Any]] = []
        before: list[sa.ColumnElement[bool]] = []  # a digest counted once: its first reason
        for reason in _failed_left(now):
            counted.append(sa.func.count().filter(*before, reason))
            before.append(sa.not_(reason))
        q = sa.select(sa.func.count().filter(*before), *counted).where(
            digest_t.c.state == DigestState.FAILED.value
        )
        with self.reading() as conn:
            return FailedToResend(*(int(n or 0) for n in conn.execute(q).one()))

    def resend_failed(self, now: datetime) -> int:
        """The failed digests of an outage due again now, as `retry_now` makes one (from its
        first attempt), in one statement: those made within `RESEND_WITHIN`, but those an admin
        cancelled, and those whose channel is stopped or whose subscriber unsubscribed (the
        delivery would give them up at once). A digest queued again meanwhile is pending, not
        failed: left alone, so the two requests of a double click queue each digest once.
        Returns how many."""
        digest_t = _table(Digest)
        update = (
            sa.update(digest_t)
            .where(digest_t.c.state == DigestState.FAILED.value)
            .where(*(sa.not_(reason) for reason in _failed_left(now)))
            .where(sa.or_(digest_t.c.leased_until.is_(None), digest_t.c.leased_until <= now))
            .values(**_due_again(now, failed=True))
        )
        with self.engine.begin() as conn:
            return int(conn.execute(update).rowcount)

    def cancel(self, digest_ids: Collection[int], by: str) -> list[int]:
        """Give up pending digests (not one being sent: its lease is held), "cancelled by" the
        admin `by` as their last error (which "Resend all failed" reads: it leaves them).
        Returns the ids changed."""
        changed: list[int] = []
        with self.session() as s:
            q = select(Digest).where(
                col(Digest.id).in_(list(digest_ids)), Digest.state == DigestState.PENDING
            )
            for d in s.exec(q).all():
                if d.leased_until is not None:
                    continue
                d.state, d.last_error = DigestState.FAILED, CANCELLED_BY + by
                s.add(d)
                changed.append(d.id or 0)
            s.commit()
        return sorted(changed)

    def resend(self, digest_id: int, now: datetime) -> bool:
        """Send a digest once more: back to pending, due now. A sent one is sent whole again,
        with a Message-ID of its own (`resends`: a mailbox that has the first copy would drop
        one with the same); a failed one goes on from the part not taken (a split Slack
        digest: the parts the channel shows already are not posted twice), with the same
        Message-ID (a copy the server took though its answer was lost is not shown twice).
        False when it is pending already or has nothing to send."""
        with self.session() as s:
            d = s.get_one(Digest, digest_id)
            has_items = s.exec(
                select(DigestItem.id).where(DigestItem.digest_id == digest_id)
            ).first()
            if d.state == DigestState.PENDING or (d.state == DigestState.EMPTY and not has_items):
                return False
            if d.state != DigestState.FAILED:
                d.parts_sent = 0
                d.resends += 1
            d.state, d.attempts = DigestState.PENDING, 0
            d.next_attempt_at, d.leased_until, d.sent_at = now, None, None
            s.add(d)
            s.commit()
            return True

    def waiting(self, now: datetime) -> tuple[int, datetime | None]:
        """Pending digests not due yet (a retry, or a transport that could deliver nothing):
        how many, and when the first is due."""
        with self.read_session() as s:
            q = select(sa.func.count(), sa.func.min(Digest.next_attempt_at)).where(
                Digest.state == DigestState.PENDING, col(Digest.next_attempt_at) > now
            )
            n, first = s.exec(q).one()
            if isinstance(first, datetime) and first.tzinfo is None:  # SQLite: no offset kept
                first = first.replace(tzinfo=UTC)
            return int(n), first

    def sent_between(self, since: datetime, until: datetime) -> list[float]:
        """Seconds from made to sent of the digests sent in [since, until) (delivery latency)."""
        with self.read_session() as s:
            q = select(Digest.created_at, Digest.sent_at).where(
                col(Digest.sent_at) >= since, col(Digest.sent_at) < until
            )
            return [(sent - made).total_seconds() for made, sent in s.exec(q).all() if sent]

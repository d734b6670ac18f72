"""Subscribers: users, their channels, follows and likes/dislikes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from daemon.db.engine import IN_CHUNK, Repository, lowered, no_statement_timeout
from daemon.db.engine import table_of as _table
from daemon.db.models import (
    Channel,
    ChannelKind,
    Digest,
    DigestItem,
    DigestState,
    Feedback,
    Follow,
    FollowKind,
    Frequency,
    User,
)
from daemon.db.rows import ChannelRow, FollowRow, UserRow, UserSignals, frequency_of, row_of
from daemon.errors import ImportRefused, NotFoundError, PaperwireError

LIKE, DISLIKE, NEITHER = 1, -1, 0  # Feedback.value


@dataclass(frozen=True)
class Imported:
    """One subscriber of an import, checked: what the file says about them (None: the file
    does not say; an empty address: no channel of that kind)."""

    name: str
    channels: Mapping[ChannelKind, str]
    timezone: str | None = None
    digest_hour: int | None = None
    display_name: str | None = None
    line: int = 0  # of the file it comes from (0: none), named in an error

    @property
    def where(self) -> str:
        """ "line 7: " when the row has a line, for an error about it."""
        return f"line {self.line}: " if self.line else ""


Subscriber = tuple[UserRow, list[ChannelRow]]


class People(Repository):
    # ---- users -----------------------------------------------------------------------------

    def add(
        self,
        name: str,
        now: datetime,
        *,
        channels: Mapping[ChannelKind, str] | None = None,
        display_name: str = "",
        timezone: str = "UTC",
        digest_hour: int | None = None,
    ) -> UserRow:
        """A new subscriber with a channel per kind given (`{ChannelKind.EMAIL: "a@b.c"}`).
        Refused when an email address is another user's."""
        with self.session() as s:
            twins = _case_twins(s, [name])
            if twins:
                raise PaperwireError(f"user {twins[0]!r} already exists (a handle in any case)")
            if not any((channels or {}).values()):
                raise PaperwireError(
                    f"user {name!r} needs an email address or a Slack webhook: a digest needs "
                    "somewhere to go"
                )
            for kind, address in (channels or {}).items():
                _check_free(s, None, kind, address)
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
            for kind, address in (channels or {}).items():
                if address:
                    s.add(Channel(user_id=user.id, kind=kind, address=address))
            s.commit()
            return UserRow.of(user)

    def get(self, name: str) -> UserRow:
        with self.read_session() as s:
            return UserRow.of(_named(s, name))

    def by_id(self, user_id: int) -> UserRow | None:
        with self.read_session() as s:
            user = s.get(User, user_id)
            return UserRow.of(user) if user is not None else None

    def find(
        self,
        text: str = "",
        *,
        offset: int = 0,
        limit: int | None = 100,
        order: str = "name",
        now: datetime | None = None,
    ) -> tuple[int, list[Subscriber]]:
        """The users whose handle, display name or email address holds `text` (in any case;
        "": every user), by name (`order`: "newest", the newest first; "paused", first those
        getting no digest at `now`: unsubscribed, or paused until a day still ahead in their
        time zone): how many there are, and `limit` of them (None: all) from `offset`, each
        with all their channels (by kind, email first, as `channels_of`). The database filters
        and counts through indexes: a page of the console reads its page, not every
        subscriber."""
        user_t, channel_t = _table(User), _table(Channel)
        match: sa.ColumnElement[bool] = sa.true()
        needle = text.strip().lower()
        if needle:
            email = (
                sa.select(channel_t.c.id)
                .where(
                    channel_t.c.user_id == user_t.c.id,
                    channel_t.c.kind == ChannelKind.EMAIL.value,
                    channel_t.c.address_key.contains(needle, autoescape=True),
                )
                .exists()
            )
            match = sa.or_(
                user_t.c.name_key.contains(needle, autoescape=True),
                lowered(user_t.c.display_name).contains(needle, autoescape=True),
                email,
            )
        with self.reading() as conn:
            count = sa.select(sa.func.count()).select_from(user_t).where(match)
            total = conn.execute(count).scalar_one()
            if order == "paused":
                if now is None:
                    raise ValueError("the paused-first order needs the time (now)")
                rows = _paused_first(conn, match, now, max(offset, 0), limit)
            else:
                by: tuple[sa.ColumnElement[Any], ...] = (user_t.c.name,)
                if order == "newest":
                    by = (user_t.c.created_at.desc(), user_t.c.id.desc())
                q = sa.select(user_t).where(match).order_by(*by)
                rows = list(conn.execute(q.offset(max(offset, 0)).limit(limit)))
            users = [row_of(UserRow, r._mapping, frequency=frequency_of(r.frequency)) for r in rows]
            by_user: dict[int, list[ChannelRow]] = defaultdict(list)
            for start in range(0, len(users), IN_CHUNK):
                ids = [u.id for u in users[start : start + IN_CHUNK]]
                q = sa.select(channel_t).where(channel_t.c.user_id.in_(ids))
                for r in conn.execute(q.order_by(channel_t.c.kind, channel_t.c.id)):
                    channel = row_of(ChannelRow, r._mapping, kind=ChannelKind(r.kind))
                    by_user[r.user_id].append(channel)
        return total, [(u, by_user.get(u.id, [])) for u in users]

    def names_from(self, base: str) -> set[str]:
        """The handles taken among `base` and `base-…`, in any case and lowered (for a new
        handle made from `base`: a handle is one user's in any case)."""
        name = _table(User).c.name_key
        low = base.lower()
        q = sa.select(name).where(sa.or_(name == low, name.startswith(f"{low}-", autoescape=True)))
        with self.reading() as conn:
            return set(conn.execute(q).scalars())

    def update(self, name: str, **changes: object) -> UserRow:
        """Change a user's settings (display_name, timezone, digest_hour, max_picks, active), as
        given: a time zone changed here is not recorded as a move (`edit` records it)."""
        with self.session() as s:
            user = _named(s, name)
            for key, value in changes.items():
                setattr(user, key, value)
            s.add(user)
            s.commit()
            return UserRow.of(user)

    def remove(self, name: str) -> None:
        """Remove a user with everything about them (channels, likes, follows, digests)."""
        with self.session() as s:
            s.delete(_named(s, name))
            s.commit()

    def edit(
        self,
        name: str,
        now: datetime,
        *,
        changes: Mapping[str, object] | None = None,
        channels: Mapping[ChannelKind, str | None] | None = None,
        subscribed: bool | None = None,
    ) -> UserRow:
        """Change a user in one transaction: settings (display_name, timezone, digest_hour,
        max_picks, frequency, digest_weekday, paused_until), channels (an empty address removes
        that kind) and subscription. Nothing changes when the result would leave the user
        subscribed without a channel, give them another user's email address, or make a weekly
        digest without its day (a daily one with a day)."""
        with self.session() as s:
            user = _named(s, name)
            assert user.id is not None
            zone = user.timezone
            for key, value in (changes or {}).items():
                setattr(user, key, value)
            _moved(user, zone, now)
            if _FREQUENCY_KEYS & set(changes or {}):
                user.frequency, user.digest_weekday = _checked_frequency(
                    user.frequency, user.digest_weekday
                )
            if subscribed is not None and subscribed != user.active:
                user.active = subscribed
                user.unsubscribed_at = None if subscribed else now
            s.add(user)
            for kind, address in _removals_last(channels or {}):
                _check_free(s, user.id, kind, address)
                _replace_channel(s, user.id, kind, address or None)
            s.flush()
            if subscribed:
                _start_all_if_none(s, user.id)
                s.flush()
            _check_reachable(s, user)
            s.commit()
            return UserRow.of(user)

    def import_many(self, rows: Sequence[Imported], now: datetime) -> tuple[int, int, int]:
        """Add or update many subscribers in one transaction: (added, updated, unchanged).
        Running it again with the same rows changes nothing; it never subscribes again someone
        who unsubscribed. Refused as a whole (`ImportRefused`, naming every such row) when an email
        address is another user's or a handle is one in another case."""
        names = [r.name for r in rows]
        added = updated = 0
        with self.session() as s:
            users = {u.name: u for u in _users_named(s, names)}
            twins = {t.lower(): t for t in _case_twins(s, [n for n in names if n not in users])}
            problems: dict[int, str] = {}  # every row refused, by its place: said at once
            for i, r in enumerate(rows):
                if r.name not in users and r.name.lower() in twins:
                    problems[i] = (
                        f"{r.where}{r.name}: user {twins[r.name.lower()]!r} already exists (a "
                        "handle in any case)"
                    )
            emails = {
                address.lower(): name
                for address, name in s.exec(
                    select(Channel.address, User.name)
                    .join(User, col(User.id) == col(Channel.user_id))
                    .where(Channel.kind == ChannelKind.EMAIL)
                ).all()
            }
            for i, r in enumerate(rows):
                email = r.channels.get(ChannelKind.EMAIL)
                owner = emails.get(email.lower()) if email else None
                if owner is not None and owner != r.name and i not in problems:
                    problems[i] = (
                        f"{r.where}{r.name}: {email} is already the email address of user {owner!r}"
                    )
            if problems:
                raise ImportRefused([problems[i] for i in sorted(problems)])
            have = _channels_of_users(s, [u.id for u in users.values() if u.id is not None])
            new: list[tuple[User, Imported]] = []
            for r in rows:
                user = users.get(r.name)
                if user is None:
                    user = User(name=r.name, display_name=r.display_name or r.name, created_at=now)
                    new.append((user, r))
                    added += 1
                elif not _import_changes(user, r, have.get(user.id or 0, [])):
                    continue
                else:
                    updated += 1
                zone = user.timezone
                user.timezone = r.timezone or user.timezone
                _moved(user, zone, now)
                user.digest_hour = r.digest_hour if r.digest_hour is not None else user.digest_hour
                user.display_name = r.display_name or user.display_name
                s.add(user)
                if user.id is not None:
                    for kind, address in _removals_last(r.channels):
                        _replace_channel(s, user.id, kind, address or None, have.get(user.id, []))
            s.flush()  # the new users, inserted together (their ids come back in one statement)
            for user, r in new:
                assert user.id is not None
                s.add_all(
                    Channel(user_id=user.id, kind=kind, address=address)
                    for kind, address in r.channels.items()
                    if address
                )
            s.commit()
        return added, updated, len(rows) - added - updated

    def set_subscribed(self, user_id: int, subscribed: bool, now: datetime) -> None:
        """Subscribe (refused without a channel) or unsubscribe a user. Subscribing a user whose
        channels were all stopped one by one (their own links) starts them all again."""
        with self.session() as s:
            user = s.get_one(User, user_id)
            user.active = subscribed
            user.unsubscribed_at = None if subscribed else now
            s.add(user)
            if subscribed:
                _start_all_if_none(s, user_id)
            s.flush()
            _check_reachable(s, user)
            s.commit()

    def set_channel_active(
        self, user_id: int, channel_id: int, active: bool, now: datetime
    ) -> tuple[UserRow, ChannelRow]:
        """Stop or start one channel of a user (the links of a digest act on the channel it went
        to). Stopping the last active channel unsubscribes the user as a whole
        (`unsubscribed_at`); starting a channel of an unsubscribed user subscribes them again
        to that channel: their other channels, switched on but receiving nothing while they
        were unsubscribed as a whole, stop (a channel paperwire stopped stays as it is).
        NotFoundError when the channel is not the user's (anymore)."""
        with self.session() as s:
            channel = s.get(Channel, channel_id)
            if channel is None or channel.user_id != user_id:
                raise NotFoundError("this channel no longer exists")
            user = s.get_one(User, user_id)
            channel.active = active
            channel.stopped_reason = None  # started, or stopped by its subscriber now
            s.add(channel)
            s.flush()
            if active and not user.active:
                user.active, user.unsubscribed_at = True, None
                others = select(Channel).where(
                    Channel.user_id == user_id, Channel.id != channel_id, col(Channel.active)
                )
                for other in s.exec(others).all():
                    other.active = False
                    s.add(other)
            elif not active and user.active:
                q = select(sa.func.count()).select_from(Channel)
                q = q.where(Channel.user_id == user_id, col(Channel.active).is_(True))
                if int(s.exec(q).one()) == 0:
                    user.active, user.unsubscribed_at = False, now
            s.add(user)
            s.commit()
            return UserRow.of(user), ChannelRow.of(channel)

    def channels_of(self, user_id: int) -> list[ChannelRow]:
        """All channels of a user (active or not), by kind (email first), then id: a changed
        address is a new channel (a new id) and keeps its place on the pages."""
        with self.read_session() as s:
            q = select(Channel).where(Channel.user_id == user_id)
            q = q.order_by(col(Channel.kind), col(Channel.id))
            return [ChannelRow.of(c) for c in s.exec(q).all()]

    def subscribers(self, names: Sequence[str] | None = None) -> list[Subscriber]:
        """Active users (by id) with their active channels (optionally only those named)."""
        user_t, channel_t = _table(User), _table(Channel)
        # Core rows: the digest job reads every subscriber here
        with self.engine.connect() as conn:
            q = sa.select(user_t).where(user_t.c.active.is_(True)).order_by(user_t.c.id)
            if names:
                q = q.where(user_t.c.name.in_(list(names)))
            users = [
                row_of(UserRow, r._mapping, frequency=frequency_of(r.frequency))
                for r in conn.execute(q)
            ]
            q = sa.select(channel_t).where(channel_t.c.active.is_(True)).order_by(channel_t.c.id)
            if names:
                q = q.where(channel_t.c.user_id.in_([u.id for u in users]))
            by_user: dict[int, list[ChannelRow]] = defaultdict(list)
            for r in conn.execute(q):
                by_user[r.user_id].append(row_of(ChannelRow, r._mapping, kind=ChannelKind(r.kind)))
            return [(u, by_user.get(u.id, [])) for u in users]

    def set_frequency(
        self,
        user_id: int,
        frequency: Frequency,
        weekday: int | None = None,
        paused_until: date | None = None,
    ) -> UserRow:
        """Set how often the user gets a digest: daily, or weekly on `weekday` (0 = Monday …
        6 = Sunday; required for weekly, refused for daily), and none before `paused_until` (a
        date in the user's time zone; None: not paused). The digest job reads the three
        together; a day holds at most one digest whatever they are."""
        frequency, weekday = _checked_frequency(frequency, weekday)
        with self.session() as s:
            user = s.get(User, user_id)
            if user is None:
                raise NotFoundError(f"no user with id {user_id}")
            user.frequency, user.digest_weekday = frequency, weekday
            user.paused_until = paused_until
            s.add(user)
            s.commit()
            return UserRow.of(user)

    # ---- channels ----------------------------------------------------------------------------

    def set_channel(self, user_id: int, kind: ChannelKind, address: str | None) -> None:
        """Replace the user's channel of this kind; None removes it (refused when that leaves a
        subscribed user without a channel)."""
        with self.session() as s:
            _check_free(s, user_id, kind, address)
            _replace_channel(s, user_id, kind, address)
            s.flush()
            _check_reachable(s, s.get_one(User, user_id))
            s.commit()

    def owner_of(self, kind: ChannelKind, address: str) -> str | None:
        """The name of the user with this address (email: compared ignoring case), if any."""
        with self.read_session() as s:
            owner = _owner(s, kind, address)
            return owner[1] if owner else None

    # ---- feedback and follows ------------------------------------------------------------------

    def set_feedback(
        self,
        user_id: int,
        paper_id: int,
        value: int,
        now: datetime,
        *,
        only_if: int | None = None,
    ) -> int:
        """Record a like (LIKE) or dislike (DISLIKE); the latest word wins; NEITHER removes it.
        Returns the word it replaced (NEITHER for none). With `only_if`, nothing changes unless
        the current word is that one (an undo of an answer changed since)."""
        with self.session() as s:
            row = s.exec(
                select(Feedback).where(Feedback.user_id == user_id, Feedback.paper_id == paper_id)
            ).first()
            before = row.value if row is not None else NEITHER
            if only_if is not None and before != only_if:
                return before
            if value == NEITHER:
                if row is not None:
                    s.delete(row)
            elif row is None:
                s.add(Feedback(user_id=user_id, paper_id=paper_id, value=value, created_at=now))
            else:
                row.value, row.created_at = value, now
                s.add(row)
            s.commit()
            return before

    def answer(self, user_id: int, paper_id: int) -> int:
        """The user's word on the paper: LIKE, DISLIKE or NEITHER."""
        with self.read_session() as s:
            value = s.exec(
                select(Feedback.value).where(
                    Feedback.user_id == user_id, Feedback.paper_id == paper_id
                )
            ).first()
            return NEITHER if value is None else value

    def libraries(self, dated: bool = False) -> dict[int, list[tuple[int, datetime | None]]]:
        """Every user's likes (paper id, and when it was given if `dated`), by user id; users
        without likes are left out. Dated, in the order they were given; else in no order (a
        set). What the recommender's fit reads: one query, no timestamps parsed and no sort of
        millions of rows unless the times are used."""
        fb_t = _table(Feedback)
        out: dict[int, list[tuple[int, datetime | None]]] = defaultdict(list)
        if dated:
            q = (
                sa.select(fb_t.c.user_id, fb_t.c.paper_id, fb_t.c.created_at)
                .where(fb_t.c.value > 0)
                .order_by(fb_t.c.user_id, fb_t.c.created_at, fb_t.c.id)
            )
            with self.engine.connect() as conn:
                no_statement_timeout(conn)  # every like, however slow the link
                for uid, pid, when in conn.execute(q):
                    out[uid].append((pid, when))
            return dict(out)
        # two integers a row, read on the DBAPI cursor itself: SQLAlchemy's result rows cost
        # twice the fetch (2 million likes: 3.4 s against 1.6 s with the grouping, SQLite)
        q = sa.select(fb_t.c.user_id, fb_t.c.paper_id).where(fb_t.c.value > sa.literal_column("0"))
        with self.engine.connect() as conn:
            no_statement_timeout(conn)
            for uid, pid in _plain_rows(conn, q):
                out[uid].append((pid, None))
        return dict(out)

    def count_feedback(self) -> int:
        with self.read_session() as s:
            return int(s.exec(select(sa.func.count()).select_from(Feedback)).one())

    def set_follow(
        self, user_id: int, kind: FollowKind, value: str, *, muted: bool, limit: int | None = None
    ) -> bool:
        """Follow or mute `value`; False (nothing changed) when it is a new one and the user
        follows or mutes `limit` already. The count and the insert are one step: the user's
        row is locked first (PostgreSQL; SQLite's write transactions take turns), so two at
        once cannot both pass the limit."""
        if not value.strip():  # the command line and the console refuse it first
            raise PaperwireError(f"an empty {kind} matches nothing; give a word or a name")
        with self.session() as s:
            s.exec(select(User.id).where(User.id == user_id).with_for_update())
            row = s.exec(
                select(Follow).where(
                    Follow.user_id == user_id, Follow.kind == kind, Follow.value == value
                )
            ).first()
            if row is None and limit is not None:
                count = s.exec(
                    select(sa.func.count()).select_from(Follow).where(Follow.user_id == user_id)
                ).one()
                if count >= limit:
                    return False
            row = row or Follow(user_id=user_id, kind=kind, value=value)
            row.muted = muted
            s.add(row)
            s.commit()
            return True

    def remove_follow(self, user_id: int, kind: FollowKind, value: str) -> bool:
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

    def signals(
        self,
        user_ids: Sequence[int],
        *,
        dated: bool = True,
        sent_since: datetime | None = None,
    ) -> dict[int, UserSignals]:
        """Likes, dislikes, follows and already-sent papers of the given users, in 3 queries
        (per IN_CHUNK users: PostgreSQL takes at most 65,535 parameters in a statement).
        `dated=False`: the likes' times are not read (None), in the same order: the digest job
        needs them only with a recency half-life. `sent_since`: only the papers of digests
        made since then (the digest job's candidates are recent: a year of digests would
        otherwise be read for every subscriber every day)."""
        if not user_ids:
            return {}
        ids = list(user_ids)
        if len(ids) > IN_CHUNK:
            out: dict[int, UserSignals] = {}
            for start in range(0, len(ids), IN_CHUNK):
                chunk = ids[start : start + IN_CHUNK]
                out.update(self.signals(chunk, dated=dated, sent_since=sent_since))
            return out
        likes: dict[int, list[tuple[int, datetime | None]]] = defaultdict(list)
        dislikes: dict[int, list[int]] = defaultdict(list)
        follows: dict[int, list[FollowRow]] = defaultdict(list)
        sent: dict[int, set[int]] = defaultdict(set)
        fb_t, follow_t = _table(Feedback), _table(Follow)
        digest_t, item_t = _table(Digest), _table(DigestItem)
        # Core rows, not ORM objects: the digest job reads every like of a thousand users here
        # (while its writer thread stores the batch before: `reading`)
        with self.reading() as conn:
            at = fb_t.c.created_at if dated else sa.null()  # a time converted per like costs
            q = (
                sa.select(fb_t.c.user_id, fb_t.c.paper_id, fb_t.c.value, at)
                .where(fb_t.c.user_id.in_(ids))
                # each user's likes in the order they were given: by user first, as the
                # user index reads them (PostgreSQL sorts within each user: 7.5 ms for 1,000
                # users' 19,000 likes, 17.5 ms by time across users)
                .order_by(fb_t.c.user_id, fb_t.c.created_at, fb_t.c.id)
            )
            # undated: four integers a row (the time is NULL), read as plain tuples
            rows = conn.execute(q) if dated else _plain_rows(conn, q)
            for uid, pid, value, when in rows:
                if value > 0:
                    likes[uid].append((pid, when))
                else:
                    dislikes[uid].append(pid)
            q = (
                sa.select(follow_t.c.user_id, follow_t.c.kind, follow_t.c.value, follow_t.c.muted)
                .where(follow_t.c.user_id.in_(ids))
                .order_by(follow_t.c.id)
            )
            for uid, kind, value, muted in conn.execute(q):
                follows[uid].append(FollowRow(FollowKind(kind), value, muted))
            recent = [] if sent_since is None else [digest_t.c.created_at >= sent_since]
            # a digest given up on was never read: its papers may be offered again (pending
            # ones count: they are on their way; so does a Slack message given up on after
            # some of its parts went out)
            delivered = sa.or_(
                digest_t.c.state != DigestState.FAILED.value, digest_t.c.parts_sent > 0
            )
            q = (
                sa.select(digest_t.c.user_id, item_t.c.paper_id)
                .join(item_t, item_t.c.digest_id == digest_t.c.id)
                .where(digest_t.c.user_id.in_(ids), delivered, *recent)
            )
            for uid, pid in conn.execute(q):
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


def _plain_rows(conn: sa.Connection, q: sa.ClauseElement) -> Iterator[tuple[Any, ...]]:
    """The rows of a query of integer parameters (ids), read on the DBAPI cursor as plain
    tuples: SQLAlchemy's result rows cost as much as the fetch (the digest job reads the 2.1
    million likes of 100,000 subscribers a thousand users at a time). Values come as the
    driver gives them: integers, and times only when the query converts none (NULL)."""
    sql = str(q.compile(conn.engine, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
        for rows in iter(lambda: cursor.fetchmany(FETCH_ROWS), []):
            yield from rows
    finally:
        cursor.close()


_FREQUENCY_KEYS = {"frequency", "digest_weekday"}
FETCH_ROWS = 10_000  # rows fetched at a time by `_plain_rows`: never all 2 million likes at once


def _checked_frequency(frequency: str, weekday: int | None) -> tuple[Frequency, int | None]:
    try:
        freq = Frequency(frequency)
    except ValueError:
        raise PaperwireError(f"{frequency!r} is not a frequency: daily or weekly") from None
    if freq == Frequency.WEEKLY and (weekday is None or not 0 <= weekday <= 6):
        raise PaperwireError("a weekly digest needs its day of the week (0 = Monday … 6 = Sunday)")
    if freq == Frequency.DAILY and weekday is not None:
        raise PaperwireError("a day of the week is for weekly digests; this one is daily")
    return freq, weekday


def _moved(user: User, zone: str, now: datetime) -> None:
    """Record when a user's time zone changed from `zone` (not one being added): the digest
    job checks the local days of those who moved lately (`jobs.digests._moved_west`)."""
    if user.timezone != zone and user.id is not None:
        user.timezone_changed_at = now


def _named(s: Session, name: str) -> User:
    """The user of this handle; else the one of this handle in another case ("ADA")."""
    user = s.exec(select(User).where(User.name == name)).first()
    if user is None:
        twins = _case_twins(s, [name])
        if len(twins) == 1:
            user = s.exec(select(User).where(User.name == twins[0])).first()
    if user is None:
        raise NotFoundError(f"no user named {name!r}; `paperwire users list` shows them")
    return user


def _case_twins(s: Session, names: Sequence[str]) -> list[str]:
    """The handles of users that are one of `names` in any case (handles added before they
    were compared so may be twins: "ada" and "Ada")."""
    found: list[str] = []
    lowered_names = sorted({n.lower() for n in names})
    for start in range(0, len(lowered_names), IN_CHUNK):
        chunk = lowered_names[start : start + IN_CHUNK]
        found += s.exec(select(User.name).where(col(User.name_key).in_(chunk))).all()
    return sorted(found)


def _users_named(s: Session, names: Sequence[str]) -> list[User]:
    found: list[User] = []
    for start in range(0, len(names), 1000):
        q = select(User).where(col(User.name).in_(list(names[start : start + 1000])))
        found.extend(s.exec(q).all())
    return found


def _channels_of_users(s: Session, user_ids: Sequence[int]) -> dict[int, list[Channel]]:
    """Every channel of these users, by id, read a thousand users at a time."""
    out: dict[int, list[Channel]] = defaultdict(list)
    for start in range(0, len(user_ids), 1000):
        q = select(Channel).where(col(Channel.user_id).in_(list(user_ids[start : start + 1000])))
        for c in s.exec(q.order_by(col(Channel.id))).all():
            out[c.user_id].append(c)
    return out


def _import_changes(user: User, r: Imported, channels: Sequence[Channel]) -> bool:
    """Whether the row says anything new about this existing user (`channels`: all theirs)."""
    if r.timezone is not None and r.timezone != user.timezone:
        return True
    if r.digest_hour is not None and r.digest_hour != user.digest_hour:
        return True
    if r.display_name and r.display_name != user.display_name:
        return True
    have = {ChannelKind(c.kind): c.address for c in channels}
    return any(have.get(kind, "") != (address or "") for kind, address in r.channels.items())


def _removals_last(
    channels: Mapping[ChannelKind, str | None],
) -> list[tuple[ChannelKind, str | None]]:
    """A change's channels, those it removes last: a kind swapped for another (Slack for an
    email address) hands its digests to the channel added (`_replace_channel`)."""
    return sorted(channels.items(), key=lambda kind_address: not kind_address[1])


def _replace_channel(
    s: Session,
    user_id: int,
    kind: ChannelKind,
    address: str | None,
    channels: Sequence[Channel] | None = None,
) -> None:
    """A changed address is a new channel (a new id) that takes over the old one's digests.

    A new id: the links of the digests sent to the old address name the old channel, and
    must not stop the new address's digests or answer for its subscriber (a former
    colleague's mailbox, a mistyped one); naming a channel that is no more, they are refused.
    The digests move to it: deleting them with the old row would cascade, so today's digest
    would be made and sent again and the record of what was sent lost. So do those of a kind
    removed when the subscriber has a channel of another kind without any digest (added in
    the same change: Slack swapped for an email address). A changed address is active; an
    unchanged one keeps its state. `channels`: all the user's, when read already (else they
    are read here)."""
    if channels is None:
        channels = s.exec(select(Channel).where(Channel.user_id == user_id)).all()
    olds = sorted((c for c in channels if c.kind == kind), key=lambda c: c.id or 0)
    keep = olds[0] if olds and address else None
    heir = _heir(s, user_id, kind) if olds and keep is None else None
    for old in olds:
        if old is not keep:
            if heir is not None and old is olds[0]:
                _hand_over(s, old, heir)
            s.delete(old)
    if len(olds) > (keep is not None):
        s.flush()
    if keep is not None:
        if kind == ChannelKind.EMAIL and keep.address_key == str(address).lower():
            # the same mailbox in other capitals (as addresses are compared): the same
            # channel, its links working and its state kept, spelled as now written
            keep.address = str(address)
            s.add(keep)
        elif keep.address != address:
            # a new address is a new start; the same address keeps its state (a channel its
            # subscriber stopped stays stopped when an admin saves the form, or a file is
            # imported)
            _move_to_new_channel(s, keep, str(address))
    elif address:
        s.add(Channel(user_id=user_id, kind=kind, address=address))


def _move_to_new_channel(s: Session, old: Channel, address: str) -> None:
    """Give `old`'s digests to a new, active channel of `address`, and delete `old`."""
    new = Channel(user_id=old.user_id, kind=old.kind, address=address)
    s.add(new)
    s.flush()
    _hand_over(s, old, new)
    s.delete(old)
    s.flush()


def _heir(s: Session, user_id: int, kind: ChannelKind) -> Channel | None:
    """The user's channel of another kind than `kind` that has no digest (one added in this
    change), if any: it takes over the digests of the channel of `kind` removed."""
    s.flush()  # the channels added in this change
    q = select(Channel).where(Channel.user_id == user_id, Channel.kind != kind)
    for other in s.exec(q.order_by(col(Channel.id))).all():
        if s.exec(select(Digest.id).where(Digest.channel_id == other.id).limit(1)).first() is None:
            return other
    return None


def _hand_over(s: Session, old: Channel, new: Channel) -> None:
    """Give `old`'s digests to `new`, a channel without any."""
    s.execute(sa.update(Digest).where(col(Digest.channel_id) == old.id).values(channel_id=new.id))
    # the parts of a split message (Slack) that went to the old address are not in the new
    # one: a digest not sent whole (given up on, or waiting for a retry) goes there from its
    # first part, on a Resend as on a retry
    s.execute(
        sa.update(Digest)
        .where(
            col(Digest.channel_id) == new.id,
            col(Digest.state).in_([DigestState.PENDING, DigestState.FAILED]),
            col(Digest.parts_sent) > 0,
        )
        .values(parts_sent=0)
    )
    # the refusals of the old address do not count toward stopping the new one
    new.fresh_after_digest = s.execute(
        sa.select(sa.func.max(col(Digest.id))).where(col(Digest.channel_id) == new.id)
    ).scalar()
    s.add(new)
    s.flush()


def _owner(s: Session, kind: ChannelKind, address: str) -> tuple[int, str] | None:
    """(id, name) of the user with this address."""
    match = col(Channel.address_key) == address.lower()  # indexed
    if kind != ChannelKind.EMAIL:  # a webhook is compared as it is
        match = sa.and_(match, col(Channel.address) == address)
    q = (
        select(User.id, User.name)
        .join(Channel, col(Channel.user_id) == col(User.id))
        .where(Channel.kind == kind, match)
    )
    row = s.exec(q).first()
    return (int(row[0] or 0), row[1]) if row else None


def _check_free(s: Session, user_id: int | None, kind: ChannelKind, address: str | None) -> None:
    """An email address belongs to one user: two would get each other's digests (and links).
    (A Slack channel may be shared: each webhook post is the user's own.)"""
    if kind != ChannelKind.EMAIL or not address:
        return
    owner = _owner(s, kind, address)
    if owner is not None and owner[0] != user_id:
        raise PaperwireError(f"{address} is already the email address of user {owner[1]!r}")


def _start_all_if_none(s: Session, user_id: int) -> None:
    """Subscribing again a user whose channels were all stopped one by one starts them all;
    a channel paperwire stopped (its digests refused) starts again in any case."""
    channels = s.exec(select(Channel).where(Channel.user_id == user_id)).all()
    none = not any(c.active for c in channels)
    for c in channels:
        if none or c.stopped_reason:
            c.active, c.stopped_reason = True, None
            s.add(c)


def _check_reachable(s: Session, user: User) -> None:
    """A subscribed user always has somewhere for the digest to go (or a channel paperwire
    stopped, its digests refused: the user stays subscribed until it starts again)."""
    if not user.active:
        return
    q = select(sa.func.count()).select_from(Channel)
    q = q.where(
        Channel.user_id == user.id,
        sa.or_(col(Channel.active).is_(True), col(Channel.stopped_reason).is_not(None)),
    )
    if int(s.exec(q).one()) == 0:
        raise PaperwireError(
            f"user {user.name!r} would be subscribed with no channel: give an email address or "
            "a Slack webhook, or unsubscribe them"
        )


def _paused_first(
    conn: sa.Connection,
    match: sa.ColumnElement[bool],
    now: datetime,
    offset: int,
    limit: int | None,
) -> list[sa.Row[Any]]:
    """The users of `match` getting no digest at `now` by name, then the others by name:
    `limit` of them from `offset`. Two reads of an index each (migration 0016), where an
    order by "getting none now" sorted every subscriber for each page."""
    user_t = _table(User)
    paused = _paused_now(conn, now)
    off = sa.or_(user_t.c.active == sa.false(), paused)
    # paused_until is NULL for most: `paused` is NULL then, which is not "not paused"
    on = sa.and_(
        user_t.c.active == sa.true(), sa.or_(user_t.c.paused_until.is_(None), sa.not_(paused))
    )
    first = conn.execute(sa.select(sa.func.count()).select_from(user_t).where(match, off))
    n_off = first.scalar_one()
    rows: list[sa.Row[Any]] = []
    if offset < n_off:
        # sorted after reading them through their indexes: by the name's index, the database
        # would walk every name to find the few getting no digest (`|| ''`: not that index)
        q = sa.select(user_t).where(match, off).order_by(user_t.c.name + "")
        rows += conn.execute(q.offset(offset).limit(limit))
    rest = None if limit is None else limit - len(rows)
    if rest is None or rest > 0:
        q = sa.select(user_t).where(match, on).order_by(user_t.c.name)
        rows += conn.execute(q.offset(max(offset - n_off, 0)).limit(rest))
    return rows


def _paused_now(conn: sa.Connection, now: datetime) -> sa.ColumnElement[bool]:
    """Of a user: paused until a day still ahead in their time zone at `now` (as the digest
    job reads it: today < paused_until). Their today is one of three days around UTC's:
    paused until two days after UTC's today or later, they are; until UTC's today or the next
    day, it depends on their zone, decided here for the few zones of those paused so."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    user_t = _table(User)
    today = now.astimezone(UTC).date()
    edge = (today, today + timedelta(days=1))
    q = sa.select(user_t.c.paused_until, user_t.c.timezone).where(user_t.c.paused_until.in_(edge))
    zones: dict[date, set[str]] = {day: set() for day in edge}
    for until, zone in conn.execute(q.distinct()):
        try:
            local = now.astimezone(ZoneInfo(zone)).date()
        except (ZoneInfoNotFoundError, ValueError):  # as the digest job: UTC then
            local = today
        if local < until:
            zones[until].add(zone)
    until = user_t.c.paused_until
    return sa.or_(
        until >= today + timedelta(days=2),
        *(sa.and_(until == day, user_t.c.timezone.in_(sorted(zones[day]))) for day in edge),
    )

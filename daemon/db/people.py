"""Subscribers: users, their channels, follows and likes/dislikes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from daemon.db.engine import Repository
from daemon.db.models import (
    Channel,
    ChannelKind,
    Digest,
    DigestItem,
    Feedback,
    Follow,
    FollowKind,
    User,
)
from daemon.db.rows import ChannelRow, FollowRow, UserRow, UserSignals
from daemon.errors import NotFoundError, PaperwireError

LIKE, DISLIKE, NEITHER = 1, -1, 0  # Feedback.value

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
        """A new subscriber with a channel per kind given (`{ChannelKind.EMAIL: "a@b.c"}`)."""
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
            for kind, address in (channels or {}).items():
                if address:
                    s.add(Channel(user_id=user.id, kind=kind, address=address))
            s.commit()
            return UserRow.of(user)

    def get(self, name: str) -> UserRow:
        with self.session() as s:
            return UserRow.of(_named(s, name))

    def by_id(self, user_id: int) -> UserRow | None:
        with self.session() as s:
            user = s.get(User, user_id)
            return UserRow.of(user) if user is not None else None

    def all(self) -> list[Subscriber]:
        """Every user (by name) with all their channels."""
        with self.session() as s:
            users = s.exec(select(User).order_by(col(User.name))).all()
            by_user = _channels_by_user(s.exec(select(Channel).order_by(col(Channel.id))).all())
            return [(UserRow.of(u), by_user.get(u.id or 0, [])) for u in users]

    def update(self, name: str, **changes: object) -> UserRow:
        """Change a user's settings (display_name, timezone, digest_hour, max_picks, active)."""
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

    def set_subscribed(self, user_id: int, subscribed: bool, now: datetime) -> None:
        with self.session() as s:
            user = s.get_one(User, user_id)
            user.active = subscribed
            user.unsubscribed_at = None if subscribed else now
            s.add(user)
            s.commit()

    def subscribers(self, names: Sequence[str] | None = None) -> list[Subscriber]:
        """Active users (by id) with their active channels (optionally only those named)."""
        with self.session() as s:
            q = select(User).where(col(User.active).is_(True)).order_by(col(User.id))
            if names:
                q = q.where(col(User.name).in_(list(names)))
            users = list(s.exec(q).all())
            chans = s.exec(
                select(Channel)
                .where(col(Channel.user_id).in_([u.id for u in users]))
                .where(col(Channel.active).is_(True))
                .order_by(col(Channel.id))
            ).all()
            by_user = _channels_by_user(chans)
            return [(UserRow.of(u), by_user.get(u.id or 0, [])) for u in users]

    # ---- channels ----------------------------------------------------------------------------

    def set_channel(self, user_id: int, kind: ChannelKind, address: str | None) -> None:
        """Replace the user's channel of this kind; None removes it.

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

    # ---- feedback and follows ------------------------------------------------------------------

    def set_feedback(self, user_id: int, paper_id: int, value: int, now: datetime) -> None:
        """Record a like (LIKE) or dislike (DISLIKE); the latest word wins; NEITHER removes it."""
        with self.session() as s:
            row = s.exec(
                select(Feedback).where(Feedback.user_id == user_id, Feedback.paper_id == paper_id)
            ).first()
            if value == NEITHER:
                if row is not None:
                    s.delete(row)
            elif row is None:
                s.add(Feedback(user_id=user_id, paper_id=paper_id, value=value, created_at=now))
            else:
                row.value, row.created_at = value, now
                s.add(row)
            s.commit()

    def count_feedback(self) -> int:
        with self.session() as s:
            return int(s.exec(select(sa.func.count()).select_from(Feedback)).one())

    def set_follow(self, user_id: int, kind: FollowKind, value: str, *, muted: bool) -> None:
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

    def signals(self, user_ids: Sequence[int]) -> dict[int, UserSignals]:
        """Likes, dislikes, follows and already-sent papers of the given users, in 3 queries."""
        if not user_ids:
            return {}
        ids = list(user_ids)
        likes: dict[int, list[tuple[int, datetime]]] = defaultdict(list)
        dislikes: dict[int, list[int]] = defaultdict(list)
        follows: dict[int, list[FollowRow]] = defaultdict(list)
        sent: dict[int, set[int]] = defaultdict(set)
        with self.session() as s:
            for fb in s.exec(
                select(Feedback)
                .where(col(Feedback.user_id).in_(ids))
                .order_by(col(Feedback.created_at), col(Feedback.id))
            ).all():
                if fb.value > 0:
                    likes[fb.user_id].append((fb.paper_id, fb.created_at))
                else:
                    dislikes[fb.user_id].append(fb.paper_id)
            for f in s.exec(
                select(Follow).where(col(Follow.user_id).in_(ids)).order_by(col(Follow.id))
            ).all():
                follows[f.user_id].append(FollowRow(FollowKind(f.kind), f.value, f.muted))
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


def _named(s: Session, name: str) -> User:
    user = s.exec(select(User).where(User.name == name)).first()
    if user is None:
        raise NotFoundError(f"no user named {name!r}; `paperwire users list` shows them")
    return user


def _channels_by_user(channels: Sequence[Channel]) -> dict[int, list[ChannelRow]]:
    out: dict[int, list[ChannelRow]] = defaultdict(list)
    for c in channels:
        out[c.user_id].append(ChannelRow.of(c))
    return out

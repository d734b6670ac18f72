"""What the stores return: plain frozen rows, detached from any session.

A row never lazy-loads, never writes back by accident, and its `id` is an `int` (a SQLModel
object's id is `int | None` until it is flushed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any, TypeVar

from daemon.db.models import (
    Channel,
    ChannelKind,
    Digest,
    DigestItem,
    DigestState,
    Feed,
    FollowKind,
    Frequency,
    Paper,
    User,
)


def row_of(cls: type[_R], values: Mapping[Any, Any], **converted: Any) -> _R:
    """A row from a Core result's mapping: the dataclass's fields by name (a column the row does
    not carry is ignored), with `converted` values (enums) given as keyword arguments."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    return cls(**{n: converted[n] if n in converted else values[n] for n in names})


_R = TypeVar("_R")
_FIELDS: dict[type, tuple[str, ...]] = {}


def _id(value: int | None) -> int:
    if value is None:  # only a row read back from the database is turned into a *Row
        raise ValueError("row has no id yet (not flushed)")
    return value


@dataclass(frozen=True)
class FeedRow:
    id: int
    name: str
    url: str
    enabled: bool
    etag: str | None
    last_modified: str | None
    last_fetched_at: datetime | None
    last_ok_at: datetime | None
    last_error: str | None
    consecutive_errors: int
    papers_seen: int  # new papers it brought, in all
    last_new_papers: int  # new papers of the last successful fetch
    created_at: datetime
    enabled_at: datetime | None = None  # when it was last enabled again, if it was
    validators_url: str | None = None  # the address `etag` and `last_modified` came from

    @classmethod
    def of(cls, f: Feed) -> FeedRow:
        return cls(
            id=_id(f.id),
            name=f.name,
            url=f.url,
            enabled=f.enabled,
            etag=f.etag,
            last_modified=f.last_modified,
            last_fetched_at=f.last_fetched_at,
            last_ok_at=f.last_ok_at,
            last_error=f.last_error,
            consecutive_errors=f.consecutive_errors,
            papers_seen=f.papers_seen,
            last_new_papers=f.last_new_papers,
            created_at=f.created_at,
            enabled_at=f.enabled_at,
            validators_url=f.validators_url,
        )


@dataclass(frozen=True)
class PaperRow:
    id: int
    key: str
    title: str
    abstract: str
    authors: tuple[str, ...]
    url: str
    published_at: datetime | None
    first_seen_at: datetime
    upvotes: int | None
    arxiv_id: str | None = None
    categories: tuple[str, ...] = ()  # arXiv's primary category first
    doi: str | None = None  # lower case (daemon.ingest.identity)

    @property
    def day(self) -> datetime:
        """When the paper appeared: submitted / announced, else when it was first seen."""
        return self.published_at or self.first_seen_at

    @classmethod
    def of(cls, p: Paper) -> PaperRow:
        return cls(
            id=_id(p.id),
            key=p.key,
            title=p.title,
            abstract=p.abstract,
            authors=tuple(p.authors),
            url=p.url,
            published_at=p.published_at,
            first_seen_at=p.first_seen_at,
            upvotes=p.upvotes,
            arxiv_id=p.arxiv_id,
            categories=tuple(p.categories),
            doi=p.doi,
        )


def frequency_of(value: str) -> Frequency:
    """A user's frequency; a value edited by hand into the database that is none reads as daily
    (rather than stopping everyone's digests)."""
    try:
        return Frequency(value)
    except ValueError:
        return Frequency.DAILY


@dataclass(frozen=True)
class UserRow:
    id: int
    name: str
    display_name: str
    timezone: str
    digest_hour: int | None  # local hour; None: the configured default
    max_picks: int | None  # None: the configured default
    active: bool
    unsubscribed_at: datetime | None
    created_at: datetime
    frequency: Frequency = Frequency.DAILY
    digest_weekday: int | None = None  # weekly: 0 = Monday … 6 = Sunday
    paused_until: date | None = None  # no digest before this date (the user's local date)
    timezone_changed_at: datetime | None = None  # None: never changed

    @classmethod
    def of(cls, u: User) -> UserRow:
        return cls(
            id=_id(u.id),
            name=u.name,
            display_name=u.display_name,
            timezone=u.timezone,
            digest_hour=u.digest_hour,
            max_picks=u.max_picks,
            active=u.active,
            unsubscribed_at=u.unsubscribed_at,
            created_at=u.created_at,
            frequency=frequency_of(u.frequency),
            digest_weekday=u.digest_weekday,
            paused_until=u.paused_until,
            timezone_changed_at=u.timezone_changed_at,
        )


@dataclass(frozen=True)
class ChannelRow:
    id: int
    user_id: int
    kind: ChannelKind
    address: str  # an email address, or a Slack webhook URL (a secret)
    active: bool
    stopped_reason: str | None = None  # stopped by paperwire: why (its digests refused)

    @classmethod
    def of(cls, c: Channel) -> ChannelRow:
        return cls(
            id=_id(c.id),
            user_id=c.user_id,
            kind=ChannelKind(c.kind),
            address=c.address,
            active=c.active,
            stopped_reason=c.stopped_reason,
        )


@dataclass(frozen=True)
class FollowRow:
    kind: FollowKind
    value: str
    muted: bool


@dataclass(frozen=True)
class DigestRow:
    id: int
    user_id: int
    channel_id: int
    period: date
    cold_start: bool
    state: DigestState
    attempts: int
    parts_sent: int
    resends: int
    next_attempt_at: datetime | None
    leased_until: datetime | None
    sent_at: datetime | None
    last_error: str | None
    created_at: datetime

    @classmethod
    def of(cls, d: Digest) -> DigestRow:
        return cls(
            id=_id(d.id),
            user_id=d.user_id,
            channel_id=d.channel_id,
            period=d.period,
            cold_start=d.cold_start,
            state=DigestState(d.state),
            attempts=d.attempts,
            parts_sent=d.parts_sent,
            resends=d.resends,
            next_attempt_at=d.next_attempt_at,
            leased_until=d.leased_until,
            sent_at=d.sent_at,
            last_error=d.last_error,
            created_at=d.created_at,
        )


@dataclass(frozen=True)
class DigestItemRow:
    rank: int
    score: float
    kind: str  # the recommender's kind: similar | followed | trending
    reason: str

    @classmethod
    def of(cls, i: DigestItem) -> DigestItemRow:
        return cls(rank=i.rank, score=i.score, kind=i.kind, reason=i.reason)


@dataclass(frozen=True)
class UserSignals:
    """Everything a user told us, as the recommender adapter needs it."""

    user_id: int
    likes: tuple[tuple[int, datetime | None], ...]  # (paper id, when: None if not read)
    dislikes: tuple[int, ...]
    follows: tuple[FollowRow, ...]
    sent: frozenset[int]  # papers already in one of their digests


@dataclass(frozen=True)
class DueDelivery:
    """A digest claimed for delivery (leased until `leased_until`). `parts_sent` and
    `channel_id`: as read with the digest's contents, whose address it is sent to."""

    digest_id: int
    attempts: int
    parts_sent: int = 0
    leased_until: datetime | None = None
    created_at: datetime | None = None
    channel_id: int | None = None


@dataclass(frozen=True)
class DigestContent:
    digest: DigestRow
    user: UserRow
    channel: ChannelRow
    items: tuple[tuple[DigestItemRow, PaperRow], ...]
    # the subscriber has an email address (a channel of it, on or not): read for the digests of
    # other channels only (a Slack digest's "Manage your digest" is /manage then)
    has_email: bool = False

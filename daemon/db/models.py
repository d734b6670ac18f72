"""The tables (SQLModel). The schema is created and upgraded by Alembic (daemon/db/migrations);
a test checks that the two agree.

Columns holding one of a few words are plain strings in the database (no native enum types to
migrate) and `StrEnum`s in Python: the rows in `daemon.db.rows` carry the enums."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import JSON, Column, Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pass timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ChannelKind(StrEnum):
    EMAIL = "email"
    SLACK = "slack"


class Frequency(StrEnum):
    """How often a subscriber gets a digest."""

    DAILY = "daily"
    WEEKLY = "weekly"  # on User.digest_weekday


class FollowKind(StrEnum):
    KEYWORD = "keyword"
    AUTHOR = "author"


class DigestState(StrEnum):
    PENDING = "pending"  # to deliver (now, or at next_attempt_at)
    SENT = "sent"
    EMPTY = "empty"  # nothing to send
    FAILED = "failed"  # given up; last_error says why


# the detail of a digest's last attempt when it was not sent because its channel or user had
# been stopped after it was made (daemon.jobs.delivery): given up, but not a failure
UNSUBSCRIBED_DETAIL = "unsubscribed before delivery"


class Outcome(StrEnum):
    """What one delivery attempt came to."""

    SENT = "sent"
    TEMPORARY = "temporary"  # retried later, or given up after too many tries
    PERMANENT = "permanent"  # never worth retrying
    POSTPONED = "postponed"  # the transport was unavailable; not counted as an attempt


def _lowered_copy(source: str) -> Any:
    """The column default of a lowered copy of `source` (Python's `str.lower`, as
    `engine.lowered` on SQLite), for rows inserted through the ORM or in bulk."""

    def default(context: Any) -> str:
        return str(context.get_current_parameters()[source]).lower()

    return default


def _ts(nullable: bool = True, index: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable, index=index)


class Feed(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    url: str
    enabled: bool = True
    # declared in the configuration file ([[feeds]]): disabled when the file no longer
    # declares it (migration 0011)
    declared: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    etag: str | None = None
    last_modified: str | None = None
    # the address the validators came from, the only one they are sent to: a {date} feed's
    # address is another each day (migration 0017)
    validators_url: str | None = None
    last_fetched_at: datetime | None = Field(default=None, sa_column=_ts())
    last_ok_at: datetime | None = Field(default=None, sa_column=_ts())
    # when it was last enabled again: status counts its silence and failure from then
    # (migration 0012)
    enabled_at: datetime | None = Field(default=None, sa_column=_ts())
    last_error: str | None = None
    consecutive_errors: int = 0
    papers_seen: int = 0  # new papers this feed brought, in all
    last_new_papers: int = 0  # new papers of the last successful fetch
    created_at: datetime = Field(sa_column=_ts(nullable=False))


class Paper(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)  # arxiv:<id>, doi:<doi> or guid:<guid>
    title: str
    abstract: str = ""
    authors: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    url: str
    arxiv_id: str | None = Field(default=None, index=True)
    version: int | None = None
    doi: str | None = Field(default=None, index=True)  # lower case (daemon.ingest.identity)
    # the title folded for matching across sources (identity.title_key); None when too short
    title_key: str | None = Field(default=None, index=True)
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    upvotes: int | None = None
    published_at: datetime | None = Field(default=None, sa_column=_ts())
    first_seen_at: datetime = Field(sa_column=_ts(nullable=False, index=True))
    is_news: bool = True  # False when first seen as a replacement of an older paper
    feed_id: int | None = Field(default=None, foreign_key="feed.id", ondelete="SET NULL")


# SQLite: ids never reused (AUTOINCREMENT, migration 0009). Links name a user and a channel by
# id: without it, the next subscriber added after the newest one was deleted took its id, and
# the deleted one's links opened, changed and exported the newcomer's account.
_IDS_NOT_REUSED = {"sqlite_autoincrement": True}


class User(SQLModel, table=True):
    __table_args__ = (
        # the console's list of subscribers, a page at a time (migration 0016): "newest first"
        # read the newest through this index, "paused first" those unsubscribed and those
        # paused until a date ahead through the next two, then the others by name through the
        # second (whose pause is read there too, not in each row skipped to a far page); each
        # sorted every subscriber before (170-400 ms a page at 100,000 on SQLite)
        sa.Index("ix_user_created", "created_at", "id"),
        sa.Index("ix_user_active_name", "active", "name", "paused_until", "timezone"),
        sa.Index("ix_user_paused_until", "paused_until"),
        _IDS_NOT_REUSED,
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)  # a short handle used on the command line
    # `name` lowered: a handle is one user's in any case, found through this index (migration
    # 0008; not unique, as twins added before handles were compared so may exist)
    name_key: str | None = Field(
        default=None, index=True, sa_column_kwargs={"default": _lowered_copy("name")}
    )
    display_name: str = ""
    timezone: str = "UTC"
    digest_hour: int | None = None  # local hour; None: the configured default
    max_picks: int | None = None
    frequency: str = Field(  # Frequency
        default=Frequency.DAILY, sa_column_kwargs={"server_default": Frequency.DAILY.value}
    )
    digest_weekday: int | None = None  # weekly: 0 = Monday … 6 = Sunday; daily: None
    paused_until: date | None = None  # no digest before this local date
    # when `timezone` last changed (migration 0019; None: never): the digest job checks the
    # days of those who moved lately, whose local day may have a date made in the old zone
    timezone_changed_at: datetime | None = Field(default=None, sa_column=_ts())
    active: bool = True
    # indexed, as the other times counted by day (migration 0007): the health page's figures
    # read the days asked for, not every row ever written
    unsubscribed_at: datetime | None = Field(default=None, sa_column=_ts(index=True))
    created_at: datetime = Field(sa_column=_ts(nullable=False))


class Channel(SQLModel, table=True):
    """Where a user's digest goes: an email address or a Slack incoming-webhook URL (secret)."""

    __table_args__ = (sa.UniqueConstraint("user_id", "kind", "address"), _IDS_NOT_REUSED)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    kind: str  # ChannelKind
    address: str
    # `address` lowered: an email address is one user's in any case (migration 0008); kept up
    # to date by `_address_key` below
    address_key: str | None = Field(
        default=None, index=True, sa_column_kwargs={"default": _lowered_copy("address")}
    )
    active: bool = True
    # why paperwire stopped it (migration 0013): its last digests were all refused for good
    # (a mailbox that does not exist, a Slack webhook revoked). None: active, or stopped by
    # the subscriber
    stopped_reason: str | None = None
    # the channel's last digest when its address changed or it started again (migration
    # 0015): refusals up to it were the old address's, or came before the start, and do not
    # count toward stopping it. Kept up to date by `_address_key` below
    fresh_after_digest: int | None = None


@sa.event.listens_for(Channel, "before_update")
def _address_key(mapper: Any, connection: Any, channel: Channel) -> None:
    channel.address_key = channel.address.lower()
    state = sa.inspect(channel)
    started = state.attrs.active.history.deleted == [False] and channel.active
    if state.attrs.address.history.has_changes() or started:
        channel.fresh_after_digest = connection.execute(
            sa.select(sa.func.max(sa.column("id")))
            .select_from(sa.table("digest"))
            .where(sa.column("channel_id") == channel.id)
        ).scalar()


@sa.event.listens_for(User, "before_update")
def _name_key(mapper: Any, connection: Any, user: User) -> None:
    user.name_key = user.name.lower()  # no command renames a user; one that does stays right


class Feedback(SQLModel, table=True):
    """A like (+1) or dislike (-1); the latest word of a user on a paper wins."""

    __table_args__ = (sa.UniqueConstraint("user_id", "paper_id"),)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    paper_id: int = Field(foreign_key="paper.id", ondelete="CASCADE")
    value: int
    created_at: datetime = Field(sa_column=_ts(nullable=False, index=True))


class Follow(SQLModel, table=True):
    """A keyword or author a user follows (muted=False) or wants to see less of (muted=True)."""

    __table_args__ = (sa.UniqueConstraint("user_id", "kind", "value"),)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    kind: str  # FollowKind
    value: str
    muted: bool = False


class Digest(SQLModel, table=True):
    """One per (user, channel, period): a second is another `edition` of that period, after a
    move to a zone behind. It is also the delivery's state machine."""

    __table_args__ = (
        # the one digest of a (user, channel, period), or of an edition of it (migration 0019):
        # a second run, a second machine or a restart after a crash inserts none again
        sa.UniqueConstraint(
            "user_id", "channel_id", "period", "edition", name="uq_digest_period_edition"
        ),
        # the delivery's claims read the pending digests in id order from here, only them; on
        # PostgreSQL, with the index of the state, each claim of 100 fetched and sorted every
        # pending digest, or walked the sent ones (321 messages a second at 100,000
        # subscribers against 476 at 10,000)
        sa.Index(
            "ix_digest_pending",
            "id",
            postgresql_where=sa.text("state = 'pending'"),
            sqlite_where=sa.text("state = 'pending'"),
        ),
        # a day's reads stay a day's size as the digests pile up (migration 0007): the papers
        # each subscriber was sent lately; the digests made for today, and by day and state
        sa.Index("ix_digest_user_created", "user_id", "created_at"),
        sa.Index("ix_digest_period", "period", "state", "channel_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    # no index of its own: the unique (user_id, channel_id, period, edition) index serves
    # lookups by user
    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE")
    channel_id: int = Field(foreign_key="channel.id", ondelete="CASCADE")
    period: date
    # 0; 1, 2 … for a digest of a local day whose date had one made already in a zone ahead,
    # before the subscriber moved (Auckland's Thursday, made on Wednesday in Los Angeles, then
    # Los Angeles' Thursday): daily subscribers only (`jobs.digests._moved_west`)
    edition: int = 0
    cold_start: bool = False
    state: str = Field(default=DigestState.PENDING, index=True)  # DigestState
    attempts: int = 0
    parts_sent: int = 0  # a message split in parts (Slack) resumes after the parts sent
    # Resends of the digest after it went out: each copy gets a Message-ID of its own (a retry
    # of one keeps it), else Gmail drops it as one seen (migration 0018)
    resends: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_column=_ts())
    leased_until: datetime | None = Field(default=None, sa_column=_ts())
    sent_at: datetime | None = Field(default=None, sa_column=_ts())
    last_error: str | None = None
    created_at: datetime = Field(sa_column=_ts(nullable=False))


class DigestItem(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("digest_id", "paper_id"),)
    id: int | None = Field(default=None, primary_key=True)
    # no index of its own: the unique (digest_id, paper_id) index serves lookups by digest_id
    digest_id: int = Field(foreign_key="digest.id", ondelete="CASCADE")
    paper_id: int = Field(foreign_key="paper.id", index=True, ondelete="CASCADE")
    rank: int
    score: float
    kind: str
    reason: str


class DeliveryAttempt(SQLModel, table=True):
    """The record of every try to deliver a digest."""

    __table_args__ = (
        # the attempts of one outcome in a time range (the health page's postponed and failed)
        sa.Index("ix_deliveryattempt_outcome_at", "outcome", "at"),
        # a digest's latest attempt, one step of the index (migration 0016): whether a pending
        # digest is postponed read every attempt of its outage before
        sa.Index("ix_deliveryattempt_digest_at", "digest_id", "at", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    # no index of its own: the (digest_id, at, id) index serves lookups by digest_id
    digest_id: int = Field(foreign_key="digest.id", ondelete="CASCADE")
    at: datetime = Field(sa_column=_ts(nullable=False))
    outcome: str  # Outcome
    detail: str = ""


class ModelState(SQLModel, table=True):
    """The fitted recommender, kept until the corpus has grown enough to refit."""

    id: int | None = Field(default=None, primary_key=True)
    fitted_size: int
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    blob: bytes = Field(sa_column=Column(sa.LargeBinary, nullable=False))


class AuditEntry(SQLModel, table=True):
    """One admin action (console or command line): who, what, on what, when."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=_ts(nullable=False, index=True))
    admin: str  # the console's admin name, or "cli:<unix user>"
    action: str  # "feed added", "config changed", "login failed", …
    target: str = ""  # a user's or feed's name, a config key, a digest id
    detail: str = ""  # never a secret


class AdminSession(SQLModel, table=True):
    """A console login: the cookie holds a random token, the database its SHA-256."""

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True)
    admin: str
    csrf_token: str
    # of the admin's password hash when the session opened: a new password ends the session,
    # however it was set (migration 0010; sessions opened before have "", and end)
    password_stamp: str = Field(default="", sa_column_kwargs={"server_default": ""})
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    expires_at: datetime = Field(sa_column=_ts(nullable=False, index=True))


__all__ = [
    "AdminSession",
    "AuditEntry",
    "Channel",
    "ChannelKind",
    "DeliveryAttempt",
    "Digest",
    "DigestItem",
    "DigestState",
    "Feed",
    "Feedback",
    "Follow",
    "FollowKind",
    "Frequency",
    "ModelState",
    "Outcome",
    "Paper",
    "User",
]

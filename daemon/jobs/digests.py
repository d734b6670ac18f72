"""The digest job: rank the window's papers for every due subscriber and store one digest per
channel and period (the database's unique constraint makes a second run a no-op)."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from operator import itemgetter
from time import monotonic
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.exc import SQLAlchemyError

from daemon.app import App
from daemon.db.digests import NewDigest, NewItem
from daemon.db.engine import in_memory
from daemon.db.models import ChannelKind, DigestState, Frequency
from daemon.db.rows import ChannelRow, PaperRow, UserRow, UserSignals
from daemon.jobs.progress import Progress, no_progress
from daemon.jobs.recommend import load_recommender, to_doc, to_feedback

if TYPE_CHECKING:
    from recommender import Candidates, Like, Recommendation, Recommender

log = logging.getLogger("paperwire.jobs")

Picks = tuple[tuple[PaperRow, "Recommendation"], ...]
T = TypeVar("T")
# a named tuple made without its Python constructor (`NewItem`); recommender.types has the
# same alias, but importing it here would load scikit-learn with every command
_new_tuple = tuple.__new__


@dataclass(frozen=True)
class PlannedDigest:
    user: str
    channel: ChannelKind
    period: date
    picks: Picks
    digest_id: int | None  # None in a dry run, or when it already existed
    weekly: bool = False  # a weekly subscriber's (its fillers are "Popular this week")

    def shown(self) -> list[tuple[str, str, str]]:
        """Each pick as its digest shows it, for a terminal: the title with its LaTeX readable,
        the score ("—" for a filler, which shows none) and the reason (a filler's label:
        "Newest", "Popular this week" …)."""
        from notifications.render import filler_label, readable, shown_title

        return [
            (shown_title(paper.title), "—", filler_label(paper.upvotes, self.weekly))
            if rec.kind == "trending"
            else (shown_title(paper.title), f"{rec.score:.2f}", readable(rec.reason))
            for paper, rec in self.picks
        ]


@dataclass
class DigestReport:
    candidates: int = 0
    users: int = 0
    created: int = 0
    already: int = 0
    empty: int = 0
    too_old: int = 0  # first seen in the window, but dated long before (digest.max_age_days)
    users_due: int = 0  # subscribers whose digest is due now (made already or not)
    failed_users: list[str] = field(default_factory=list)
    # the digests planned, with their picks: all of them in a dry run, the first PLANNED_KEPT
    # in a real run (at 100,000 subscribers they held 0.9 GB; the counts above cover everyone)
    planned: list[PlannedDigest] = field(default_factory=list)


def _aware(t: datetime) -> datetime:
    """A stored time as UTC (SQLite gives them back without a zone)."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _zone(user: UserRow) -> ZoneInfo:
    """The user's time zone; an unknown one (edited database, missing tzdata) falls back to UTC
    with a warning rather than stopping everyone's digests."""
    try:
        return ZoneInfo(user.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown time zone, using UTC", extra={"user": user.name, "tz": user.timezone})
        return ZoneInfo("UTC")


def period_for(user: UserRow, now: datetime) -> date:
    """The period a digest made now is for, as a day in the user's time zone: today for a daily
    subscriber; for a weekly one, the delivery day of the current week (their weekday, today or
    the latest before). A day holds one digest whatever the frequency, so switching between
    daily and weekly never makes two digests for the same day."""
    return _period(user, now.astimezone(_zone(user)).date())


def is_paused(user: UserRow, now: datetime) -> bool:
    """Whether the user asked for no digest on their local today (paused until a later day)."""
    return _paused(user, now.astimezone(_zone(user)).date())


def is_due(user: UserRow, now: datetime, default_hour: int) -> bool:
    """A user's digest is due from their local digest hour on (a late run still catches up the
    same day): every day, or a weekly subscriber's weekday only; never while paused."""
    return _due_at(user, now.astimezone(_zone(user)), default_hour)


# the same on the user's local time (the digest job computes it once per time zone)


def _period(user: UserRow, today: date) -> date:
    if user.frequency == Frequency.WEEKLY:
        return today - timedelta(days=(today.weekday() - _weekday(user)) % 7)
    return today


def _weekday(user: UserRow) -> int:
    return user.digest_weekday if user.digest_weekday is not None else 0  # weekly: Monday


def _paused(user: UserRow, today: date) -> bool:
    return user.paused_until is not None and today < user.paused_until


def _due_at(user: UserRow, local: datetime, default_hour: int) -> bool:
    if _paused(user, local.date()):
        return False
    if user.frequency == Frequency.WEEKLY and local.weekday() != _weekday(user):
        return False
    hour = user.digest_hour if user.digest_hour is not None else default_hour
    return local.hour >= hour


def next_due(user: UserRow, now: datetime, default_hour: int, *, made: bool) -> datetime:
    """From when the user's next digest is due: `now` if it is due and not `made` (the digest
    of their current period exists), else their hour on their next delivery day (the next day,
    or their weekday), not before the end of a pause. Aware, in the user's time zone."""
    zone = _zone(user)
    local = now.astimezone(zone)
    today = local.date()
    weekly = user.frequency == Frequency.WEEKLY
    step = 7 if weekly else 1

    def delivery_day(on_or_after: date) -> date:
        if not weekly:
            return on_or_after
        return on_or_after + timedelta(days=(_weekday(user) - on_or_after.weekday()) % 7)

    day = delivery_day(today)
    if day == today and made:
        day += timedelta(days=step)
    if user.paused_until is not None and day < user.paused_until:
        # a pause stored before pauses were capped may end near date.max: no day after it
        day = delivery_day(min(user.paused_until, date.max - timedelta(days=14)))
    hour = user.digest_hour if user.digest_hour is not None else default_hour
    start = _first_at(day, hour, zone)
    return local if start <= local else start


def _first_at(day: date, hour: int, zone: ZoneInfo) -> datetime:
    """The first time of `day` in `zone` whose hour is `hour` or later (`_due_at`'s test): the
    hour itself, or, when summer time skips it, the end of the time skipped. That is not always
    on the hour: the Chatham Islands go from 02:45 to 03:45, and hour 3 begins at 03:45 (taken
    as 03:00 at the old offset, it was 04:00)."""
    wall = datetime.combine(day, time(hour))
    after = wall.replace(tzinfo=zone).astimezone(UTC)  # the old offset: after the change
    if after.astimezone(zone).replace(tzinfo=None) == wall:
        return after.astimezone(zone)
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)  # the new one: before it
    while after - before > timedelta(seconds=1):  # to the second the clocks went forward
        mid = before + timedelta(seconds=(after - before).total_seconds() // 2)
        if mid.astimezone(zone).replace(tzinfo=None) >= wall:
            after = mid
        else:
            before = mid
    return after.astimezone(zone)


def window_hours(user: UserRow | str, daily_hours: int) -> int:
    """How far back a digest's candidates go (for a user or a `Frequency`):
    `digest.window_hours` for a daily subscriber; a weekly one's covers the six days before too
    (the week, with the same margin)."""
    frequency = user if isinstance(user, str) else user.frequency
    return daily_hours + 6 * 24 if frequency == Frequency.WEEKLY else daily_hours


USER_BATCH = 1000  # subscribers ranked, stored (and, in the daemon, delivered) together
SENT_MARGIN = timedelta(days=1)  # papers of digests older than the window (+ this) are not read
PRUNE_SECONDS = 120  # `prune_digests`: deleting old digests, at most this long a run
PLANNED_KEPT = 1000  # digests of a real run kept with their picks in the report, for showing


@dataclass(frozen=True)
class _Due:
    user: UserRow
    channels: list[ChannelRow]  # the channels still without today's digest
    period: date
    # {channel id: edition} of those whose period had a digest made before the subscriber
    # moved to a zone behind (`_moved_west`); the others get edition 0
    editions: dict[int, int] = field(default_factory=dict)


def make_digests(
    app: App,
    now: datetime,
    *,
    users: Sequence[str] | None = None,
    force: bool = False,
    dry_run: bool = False,
    paused_too: bool = False,
    progress: Progress = no_progress,
    after_batch: Callable[[], object] | None = None,
) -> DigestReport:
    """Rank the window's papers for every due subscriber and store one digest per channel.

    Subscribers go through in batches of USER_BATCH: ranked together, stored in one
    transaction by a writer thread while the next batch is ranked, then `after_batch` runs
    (the daemon delivers there, so the first subscribers do not wait for the last to be
    ranked). `force` makes every selected user due now
    (one-off commands: the digest of their current period, today's or this week's); the
    scheduled job waits for each user's local digest hour (and weekday). A paused user gets
    none, unless `paused_too` (the preview). A dry run computes the picks and stores nothing.

    Daily and weekly subscribers differ in their window (`window_hours`): each window's papers
    are read and prepared for ranking once, with one model for both."""
    s = app.settings
    report = DigestReport()
    with _no_cycle_collection():  # a row per subscriber: hundreds of thousands of objects
        todo = _due(
            app, now, report, users=users, force=force, dry_run=dry_run, paused_too=paused_too
        )
    if not todo:
        return report
    daily = s.digest.window_hours
    floor = now - timedelta(hours=daily) - LONGEST
    starts = {f: now - timedelta(hours=window_hours(f, daily)) for f in Frequency}
    last = _made_lately(app, todo, starts, floor)
    if not force and not dry_run:
        todo = _not_made_today(app, todo, now, last)
        report.already = report.users_due - len(todo)
    by_window: dict[datetime, list[_Due]] = {}
    for d in todo:
        since = _since(starts[d.user.frequency], floor, last.get(d.user.id))
        by_window.setdefault(since, []).append(d)
    model = _Model(app, now)
    oldest = now - timedelta(days=s.digest.max_age_days)
    batches: list[tuple[_Day, list[_Due]]] = []
    for since, due in sorted(by_window.items(), reverse=True):
        window = app.store.papers.window(since, now + timedelta(seconds=1))
        fresh = [p for p in window if _aware(p.day) >= oldest]
        report.too_old = max(report.too_old, len(window) - len(fresh))
        report.candidates = max(report.candidates, len(fresh))
        day = _Day(model, fresh, since)
        batches += [(day, due[i : i + USER_BATCH]) for i in range(0, len(due), USER_BATCH)]
    if report.too_old:
        log.info("old papers not announced as new", extra={"papers": report.too_old})
    done = kept = 0  # subscribers planned; digests planned with their picks, for the report
    # a batch is stored by the writer thread while the next one is ranked (the database's
    # driver and numpy's products run outside the GIL); `after_batch` runs once it is stored
    after_batch = _collecting(after_batch)
    with _writer(app) as writer, _no_cycle_collection():
        stored: Future[_Stored] | None = None
        ahead: Future[dict[int, UserSignals]] | None = None  # the batch's signals, read before
        # SQLite: the next batch's signals are read while the writer is idle, just before it
        # stores a batch. Read while it inserted, they took 2.5 times as long: each fetched row
        # hands the GIL over, and the writer takes it between rows (10.5 s of the job at
        # 100,000 subscribers, 4.8 s read ahead). PostgreSQL: while the writer stores, as the
        # server reads on a core of its own and psycopg fetches the rows at once; read ahead,
        # the stores began later and the job took 9 s longer (82–85 s → 91–95 s).
        read_ahead = app.store.engine.dialect.name == "sqlite"
        first = True
        for i, (day, batch) in enumerate(batches):
            if app.stopping.is_set():  # the daemon is stopping: the next run makes the rest
                break
            progress("digests", done, len(todo))
            # at scale the report counts: memory must not grow with the subscribers
            keep = None if dry_run else max(0, PLANNED_KEPT - kept)
            planned = _plan_batch(day, batch, report, ahead or _read_signals(day, batch), keep)
            kept += len(planned.planned)
            done += len(batch)
            if dry_run:  # every digest planned is shown, none is stored
                report.planned += planned.planned
                continue
            if stored is not None:
                _finish_batch(stored.result(), report, after_batch)
            ahead = _read_signals(*batches[i + 1]) if read_ahead and i + 1 < len(batches) else None
            stored = writer.submit(_store_batch, app, planned, now, first)
            first = first and not planned.new  # a batch that failed to rank stores nothing
        if stored is not None:
            _finish_batch(stored.result(), report, after_batch)
    progress("digests", len(todo), len(todo))
    return report


def prune_before(app: App, now: datetime) -> date | None:
    """The first day whose digests are kept (`digest.keep_days` before `now`, in UTC as the
    digests' days are); None when every day is kept (`keep_days` = 0)."""
    keep = app.settings.digest.keep_days
    return (now.astimezone(UTC) - timedelta(days=keep)).date() if keep else None


def prune_digests(app: App, now: datetime) -> int:
    """Delete the digests of days more than `digest.keep_days` ago (0: none) that are done
    with, with their items and attempts: the database holds a year, not every day ever. At
    most PRUNE_SECONDS a run (SQLite deleted 3,500 digests a second, with 10 items each:
    a day at 100,000 subscribers takes about 30 s, and a long history after an upgrade is
    deleted over several runs without delaying the next), and none once the daemon stops. A
    failure is logged (the next run tries again); returns how many were deleted."""
    before = prune_before(app, now)
    if before is None:
        return 0
    try:
        deadline = monotonic() + PRUNE_SECONDS
        pruned = app.store.digests.prune(
            before, stop=lambda: app.stopping.is_set() or monotonic() > deadline
        )
    except SQLAlchemyError as e:
        log.warning("deleting old digests failed", extra={"error": str(e)})
        return 0
    if pruned:
        log.info("old digests deleted", extra={"digests": pruned, "before": str(before)})
    return pruned


def _writer(app: App) -> Executor:
    """The thread that stores the batches; none (stored at once) for an in-memory SQLite
    database, which another thread's connection would not see."""
    if in_memory(app.store.engine):
        return _AtOnce()
    return ThreadPoolExecutor(1, thread_name_prefix="paperwire-digest-store")


class _AtOnce(Executor):
    """Runs what is submitted at once, in the caller's thread."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        done: Future[T] = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except Exception as e:
            done.set_exception(e)
        return done


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The cyclic garbage collector paused while the subscribers are read and while the batches
    are made. Both allocate hundreds of thousands of objects (rows, likes, picks, rows to
    insert; no reference cycles), and each full collection they trigger walks everything the
    process holds: a fifth of the job's time at 10,000 subscribers. Paused for all the batches,
    not batch by batch: the first collection after a batch walked what it left alive (2.5 s
    of collections at 100,000 subscribers, 0.7 s so). Reference counting still frees the
    objects; a cycle made meanwhile waits for the next collection, after the job."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _collecting(work: Callable[[], object] | None) -> Callable[[], object] | None:
    """`work` run with the cycle collector on, if it is on now (`after_batch`: delivery in
    this process makes messages, connections and errors, cycles among them)."""
    if work is None or not gc.isenabled():
        return work

    def run() -> object:
        gc.enable()
        try:
            return work()
        finally:
            gc.disable()

    return run


def _due(
    app: App,
    now: datetime,
    report: DigestReport,
    *,
    users: Sequence[str] | None,
    force: bool,
    dry_run: bool,
    paused_too: bool,
) -> list[_Due]:
    """The subscribers owed a digest now, with their channels still without one (one query for
    the digests already made, whatever the number of subscribers; one more when some moved to
    another zone lately, `_moved_west`)."""
    hour = app.settings.schedule.digest_hour
    local_now: dict[str, datetime] = {}  # by time zone: a few zones for many subscribers
    subscribers = []
    for u, chans in app.store.people.subscribers(users):
        if not chans:
            continue
        local = local_now.get(u.timezone)
        if local is None:
            local = local_now[u.timezone] = now.astimezone(_zone(u))
        if _due_at(u, local, hour) or (force and (paused_too or not _paused(u, local.date()))):
            subscribers.append((u, chans, _period(u, local.date())))
    done = set() if dry_run else app.store.digests.made({p for _, _, p in subscribers})
    again = _moved_west(app, now, subscribers, done)
    todo = []
    for user, channels, period in subscribers:
        missing = [c for c in channels if (c.id, period) not in done or c.id in again]
        if missing:
            editions = {c.id: again[c.id] for c in missing if c.id in again}
            todo.append(_Due(user, missing, period, editions))
    report.users_due = len(subscribers)
    report.already = len(subscribers) - len(todo)
    return todo


# a move to a zone behind leaves dates made in the old zone ahead of the new one's for two
# days at most (Kiritimati, +14, to Baker Island, -12, is 26 hours); a day more for a late run
MOVED_LATELY = timedelta(days=3)


def moved_lately(user: UserRow, now: datetime) -> bool:
    """Whether a daily subscriber's time zone changed lately: their local today's date may
    have had its digest made in the old zone, before that day began here (`_moved_west`)."""
    changed = user.timezone_changed_at
    return (
        changed is not None and changed >= now - MOVED_LATELY and user.frequency == Frequency.DAILY
    )


def _moved_west(
    app: App,
    now: datetime,
    subscribers: list[tuple[UserRow, list[ChannelRow], date]],
    done: set[tuple[int, date]],
) -> dict[int, int]:
    """{channel id: edition} of the daily subscribers' channels whose local today's date has a
    digest made before their local midnight: made in a zone ahead, before they moved to this
    one (Auckland's Thursday, made on Wednesday in Los Angeles). Their local today is owed its
    digest, another edition of that date (`Digest.edition`), unless one was made since that
    midnight (`_not_made_today`). Read for those whose zone changed lately only, in one query:
    none for those who never moved.

    A weekly subscriber is not owed a second digest of the week: its digest was made, a day
    early by the new zone's clock, and a second would hold the day's papers since."""
    moved = [
        (u, chans, period)
        for u, chans, period in subscribers
        # None for those who never moved: one test each
        if u.timezone_changed_at is not None
        and moved_lately(u, now)
        and any((c.id, period) in done for c in chans)
    ]
    if not moved:
        return {}
    made = app.store.digests.editions(
        {c.id for _, chans, _ in moved for c in chans}, {p for _, _, p in moved}
    )
    again: dict[int, int] = {}
    for user, channels, period in moved:
        midnight = local_midnight(user, now)
        for c in channels:
            edition, at = made.get((c.id, period), (0, now))
            if at < midnight:
                again[c.id] = edition
    return again


# how far back a digest's candidates go at most, beyond `digest.window_hours` (`_since`): a
# weekly window and a day, within what `digest.keep_days` keeps of what was sent
LONGEST = timedelta(days=7)


def _made_lately(
    app: App, todo: list[_Due], starts: dict[Frequency, datetime], floor: datetime
) -> dict[int, datetime]:
    """When each of these subscribers' latest digest (any channel) was made, since `floor` at
    most ({user id: when}). Read from the start of each one's window first (a day or two of
    digests each, and most have one there), then from `floor` for those without one (the few
    back after a pause or days off, and new subscribers): not a week of digests for each."""
    by_start: dict[datetime, list[int]] = {}
    for d in todo:
        by_start.setdefault(starts[d.user.frequency], []).append(d.user.id)
    last: dict[int, datetime] = {}
    for since, ids in by_start.items():
        last.update(app.store.digests.last_made(ids, since))
    older = [d.user.id for d in todo if d.user.id not in last]
    if older:
        last.update(app.store.digests.last_made(older, floor))
    return last


DAY = timedelta(days=1)


def _since(start: datetime, floor: datetime, last: datetime | None) -> datetime:
    """Where the window of a digest made now starts: at `start` (`window_hours` before now),
    or, when the subscriber's `last` digest is older (a day of 25 hours at the end of summer
    time, a run made late the day before, the daemon down, a pause), whole days before `start`,
    back to that digest at least, so that no paper first seen between two of their digests is
    skipped (the papers sent are left out anyway); not before `floor` (LONGEST further back).
    In whole days, a run has a few windows, each read and prepared for ranking once: from the
    hour of each last digest, the catch-up after days off made one per hour of those digests,
    each holding up to a week of papers at once."""
    if last is None or last >= start:
        return start
    return max(start + DAY * ((last - start) // DAY), floor)


def local_midnight(user: UserRow, now: datetime) -> datetime:
    """The start of the user's local today, in UTC."""
    local = now.astimezone(_zone(user))
    return datetime.combine(local.date(), time(), local.tzinfo).astimezone(UTC)


def made_since_midnight(app: App, users: Sequence[UserRow], now: datetime) -> set[int]:
    """Ids of the users with a digest made since their local midnight (a day holds one: the
    digest job makes none more that day, `_not_made_today`)."""
    if not users:
        return set()
    midnight = {u.id: local_midnight(u, now) for u in users}
    made = app.store.digests.last_made(list(midnight), min(midnight.values()))
    return {uid for uid, at in made.items() if at >= midnight[uid]}


def _not_made_today(
    app: App, todo: list[_Due], now: datetime, last: dict[int, datetime]
) -> list[_Due]:
    """`todo` without the channels that had a digest made since midnight in the subscriber's
    time zone. In one zone that digest is today's (its period is made already); after a move to
    a zone ahead (Los Angeles to Auckland, after Los Angeles' digest of Wednesday was made on
    Thursday morning in Auckland) its period is another day, and a second digest that local
    day would follow hours later. `last`: each subscriber's latest digest (`_made_lately`); the
    digests by channel are read for those whose latest is that recent only (a few)."""
    midnight: dict[str, datetime] = {}  # by time zone
    recent: dict[int, datetime] = {}  # user id: their local midnight
    for d in todo:
        at = last.get(d.user.id)
        if at is None:
            continue
        start = midnight.get(d.user.timezone)
        if start is None:
            start = midnight[d.user.timezone] = local_midnight(d.user, now)
        if at >= start:
            recent[d.user.id] = start
    if not recent:
        return todo
    made = app.store.digests.made_since(list(recent), min(recent.values()))
    left = []
    for d in todo:
        start = recent.get(d.user.id)
        if start is None:
            left.append(d)
            continue
        channels = [c for c in d.channels if c.id not in made or made[c.id][1] < start]
        if channels:
            left.append(replace(d, channels=channels))
    return left


class _Model:
    """The fitted model, loaded on first use (a run with no one due never fits) and shared by
    the windows of one run."""

    def __init__(self, app: App, now: datetime) -> None:
        self.app, self.now = app, now
        self._model: Recommender | None = None
        self.likes: dict[int, Like] = {}  # undated likes, one per paper (`to_feedback`)
        self._known: set[int] = set()  # papers looked up in the model, by what it answered
        self._unknown: set[int] = set()

    def get(self) -> Recommender:
        if self._model is None:
            self._model = load_recommender(self.app, self.now)
        return self._model

    def unknown(self, papers: set[int]) -> set[int]:
        """The papers the model does not know (liked after its fit), each looked up once a
        run: the batches' likes are mostly the same papers."""
        model = self.get()
        for pid in papers - self._known - self._unknown:
            (self._known if model.knows(str(pid)) else self._unknown).add(pid)
        return papers & self._unknown


class _Day:
    """What every batch of one window shares: the window's papers, and the model with those
    papers prepared for ranking (made on first use)."""

    def __init__(self, model: _Model, window: list[PaperRow], since: datetime) -> None:
        self.app, self.now, self.model, self.window = model.app, model.now, model, window
        self.since = since  # the window's start
        self.rows = {p.id: p for p in window}
        self._ranking: tuple[Recommender, Candidates] | None = None

    def ranking(self) -> tuple[Recommender, Candidates]:
        if self._ranking is None:
            model = self.model.get()
            self._ranking = model, model.candidates([to_doc(p) for p in self.window])
        return self._ranking


@dataclass
class _Stored:
    """A batch's digests as planned, and the ids of those inserted."""

    new: list[NewDigest]
    planned: list[PlannedDigest]
    created: dict[tuple[int, int], int]


def _read_signals(day: _Day, batch: list[_Due]) -> Future[dict[int, UserSignals]]:
    """The likes, dislikes, follows and recently sent papers of a batch's subscribers, read now
    (or the error reading them raised, for `_plan_batch` to report)."""
    if not day.window:  # nothing to rank
        return _AtOnce().submit(dict)
    users = [d.user for d in batch]
    # papers sent before the window cannot be candidates again
    cfg = day.app.recommender_config
    return _AtOnce().submit(
        day.app.store.people.signals,
        [u.id for u in users],
        dated=bool(cfg.recency_half_life_days or cfg.recency_half_life_likes),
        sent_since=day.since - SENT_MARGIN,
    )


def _plan_batch(
    day: _Day,
    batch: list[_Due],
    report: DigestReport,
    signals: Future[dict[int, UserSignals]],
    keep: int | None = None,
) -> _Stored:
    """Rank a batch of subscribers (`signals`: theirs, `_read_signals`): their digests to
    store, one per channel (none when reading or ranking failed: the batch's subscribers are
    reported and wait for the next run), and the first `keep` of them as planned (None:
    all) for the report."""
    s = day.app.settings
    report.users += len(batch)
    try:
        ranked = _rank(day, [d.user for d in batch], signals.result())
    except Exception as e:  # the job boundary: this batch's subscribers wait, the others go on
        log.exception("ranking failed", extra={"users": len(batch)})
        report.failed_users.extend(f"{d.user.name}: {type(e).__name__}: {e}" for d in batch)
        return _Stored([], [], {})
    rows = day.rows
    min_score, max_picks = s.digest.min_score, s.digest.max_picks
    new: list[NewDigest] = []
    planned: list[PlannedDigest] = []
    for d in batch:
        user = d.user
        recs = [
            r for r in ranked.get(str(user.id), ()) if r.kind == "trending" or r.score >= min_score
        ][: user.max_picks or max_picks]
        picks = tuple([(p, r) for r in recs if (p := rows.get(int(r.doc_id))) is not None])
        cold = bool(picks) and all([r.kind == "trending" for _, r in picks])
        items = tuple([_new_tuple(NewItem, (p.id, r.score, r.kind, r.reason)) for p, r in picks])
        for ch in d.channels:
            if keep is None or len(planned) < keep:
                weekly = user.frequency == Frequency.WEEKLY
                planned.append(PlannedDigest(user.name, ch.kind, d.period, picks, None, weekly))
            edition = d.editions.get(ch.id, 0) if d.editions else 0
            new.append(NewDigest(user.id, ch.id, d.period, items, cold, edition))
    return _Stored(new, planned, {})


def _store_batch(app: App, batch: _Stored, now: datetime, first: bool = False) -> _Stored:
    """Insert a batch's digests (one transaction; on the writer thread). After the run's first
    batch the database refreshes its statistics of the digests (`Digests.analyze`)."""
    empty = DigestState.PENDING if app.settings.digest.send_empty else DigestState.EMPTY
    batch.created = app.store.digests.create_many(batch.new, now, empty_state=empty)
    if first and batch.created:
        app.store.digests.analyze()
    return batch


def _finish_batch(
    batch: _Stored, report: DigestReport, after_batch: Callable[[], object] | None
) -> None:
    """Count a stored batch in the report, then run `after_batch` (the daemon delivers)."""
    created = batch.created
    report.created += len(created)
    report.already += len(batch.new) - len(created)
    report.empty += sum(
        1 for n in batch.new if (n.user_id, n.channel_id) in created and not n.items
    )
    # the batch's planned digests are the first of its new ones: those the report keeps
    report.planned += [
        replace(p, digest_id=created.get((n.user_id, n.channel_id)))
        for p, n in zip(batch.planned, batch.new, strict=False)
    ]
    if after_batch is not None:
        after_batch()


def _rank(
    day: _Day, users: list[UserRow], signals: dict[int, UserSignals]
) -> dict[str, list[Recommendation]]:
    """The recommender's picks for each user (by str(user id)), best first."""
    from recommender.exact import one_blas_thread  # the recommender: when a digest is made

    if not day.window:
        return {}
    app, now = day.app, day.now
    model, candidates = day.ranking()
    # papers the model does not know (liked after its fit) are passed as text
    first = itemgetter(0)  # (paper id, time) → paper id: the likes' ids gathered in C
    referred = set().union(
        *[map(first, sig.likes) for sig in signals.values()],
        *[sig.dislikes for sig in signals.values()],
    )
    known_rows = app.store.papers.by_ids(day.model.unknown(referred))
    k = max([app.settings.digest.max_picks] + [u.max_picks or 0 for u in users])
    feedback = [to_feedback(signals[u.id], day.model.likes) for u in users]
    known = {str(pid): to_doc(p) for pid, p in known_rows.items()}
    # BLAS on one thread: its products here are small and far apart, and between them its
    # other threads wait spinning (OpenBLAS), which held a core the writer thread and, in the
    # daemon, the delivery workers need (100,000 subscribers: 60.7 → 58.9 s, and the process's
    # CPU 93.6 → 72.1 s). Exact products: the thread count changes no bit.
    with one_blas_thread():
        return model.rank(
            candidates,
            feedback,
            k=k,
            now=now,
            known=known,
            keyword_share=app.settings.digest.keyword_share,
        )

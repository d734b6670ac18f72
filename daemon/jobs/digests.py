"""The digest job: rank the window's papers for every due subscriber and store one digest per
channel and period (the database's unique constraint makes a second run a no-op)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from daemon.app import App
from daemon.db.digests import NewItem
from daemon.db.models import ChannelKind, DigestState
from daemon.db.rows import ChannelRow, PaperRow, UserRow
from daemon.jobs.progress import Progress, no_progress
from daemon.jobs.recommend import load_recommender, to_doc, to_feedback

if TYPE_CHECKING:
    from recommender import Recommendation

log = logging.getLogger("paperwire.jobs")

Picks = tuple[tuple[PaperRow, "Recommendation"], ...]


@dataclass(frozen=True)
class PlannedDigest:
    user: str
    channel: ChannelKind
    period: date
    picks: Picks
    digest_id: int | None  # None in a dry run, or when it already existed


@dataclass
class DigestReport:
    candidates: int = 0
    users: int = 0
    created: int = 0
    already: int = 0
    empty: int = 0
    failed_users: list[str] = field(default_factory=list)
    planned: list[PlannedDigest] = field(default_factory=list)


def _zone(user: UserRow) -> ZoneInfo:
    """The user's time zone; an unknown one (edited database, missing tzdata) falls back to UTC
    with a warning rather than stopping everyone's digests."""
    try:
        return ZoneInfo(user.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown time zone, using UTC", extra={"user": user.name, "tz": user.timezone})
        return ZoneInfo("UTC")


def period_for(user: UserRow, now: datetime) -> date:
    """The day (in the user's time zone) a digest made now is for."""
    return now.astimezone(_zone(user)).date()


def is_due(user: UserRow, now: datetime, default_hour: int) -> bool:
    """A user's digest is due from their local digest hour on; a late run still catches up."""
    local = now.astimezone(_zone(user))
    hour = user.digest_hour if user.digest_hour is not None else default_hour
    return local.hour >= hour


def make_digests(
    app: App,
    now: datetime,
    *,
    users: Sequence[str] | None = None,
    force: bool = False,
    dry_run: bool = False,
    progress: Progress = no_progress,
) -> DigestReport:
    """Rank the window's papers for every due subscriber and store one digest per channel.

    `force` makes every selected user due now (one-off commands); the scheduled job waits for
    each user's local digest hour. A dry run computes the picks and stores nothing."""
    s = app.settings
    report = DigestReport()
    subscribers = [
        (u, chans)
        for u, chans in app.store.people.subscribers(users)
        if chans and (force or is_due(u, now, s.schedule.digest_hour))
    ]
    todo = [
        (u, chans)
        for u, chans in subscribers
        if dry_run
        or {c.id for c in chans} - app.store.digests.channels_done(u.id, period_for(u, now))
    ]
    report.already = len(subscribers) - len(todo)
    if not todo:
        return report
    window = app.store.papers.window(
        now - timedelta(hours=s.digest.window_hours), now + timedelta(seconds=1)
    )
    report.candidates = len(window)
    ranked = _rank(app, now, window, [u for u, _ in todo])
    rows = {p.id: p for p in window}
    for i, (user, channels) in enumerate(todo):
        if app.stopping.is_set():  # the daemon is stopping: the next run makes the rest
            break
        progress(f"digest {user.name}", i, len(todo))
        report.users += 1
        try:
            recs = [
                r
                for r in ranked.get(str(user.id), [])
                if r.kind == "trending" or r.score >= s.digest.min_score
            ][: user.max_picks or s.digest.max_picks]
            picks = tuple((rows[int(r.doc_id)], r) for r in recs if int(r.doc_id) in rows)
            cold = bool(picks) and all(r.kind == "trending" for _, r in picks)
            for ch in channels:
                _store_digest(app, report, user, ch, picks, cold, now, dry_run=dry_run)
        except Exception as e:  # the job boundary: one user's failure never stops the others
            report.failed_users.append(f"{user.name}: {type(e).__name__}: {e}")
            log.exception("digest failed", extra={"user": user.name})
    progress("digests", len(todo), len(todo))
    return report


def _rank(
    app: App, now: datetime, window: list[PaperRow], users: list[UserRow]
) -> dict[str, list[Recommendation]]:
    """The recommender's picks for each user (by str(user id)), best first."""
    if not window:
        return {}
    signals = app.store.people.signals([u.id for u in users])
    known_ids = {pid for sig in signals.values() for pid, _ in sig.likes} | {
        pid for sig in signals.values() for pid in sig.dislikes
    }
    known_rows = app.store.papers.by_ids(known_ids)
    k = max([app.settings.digest.max_picks] + [u.max_picks or 0 for u in users])
    return load_recommender(app, now).rank(
        [to_doc(p) for p in window],
        [to_feedback(signals[u.id]) for u in users],
        k=k,
        now=now,
        known={str(pid): to_doc(p) for pid, p in known_rows.items()},
    )


def _store_digest(
    app: App,
    report: DigestReport,
    user: UserRow,
    channel: ChannelRow,
    picks: Picks,
    cold: bool,
    now: datetime,
    *,
    dry_run: bool,
) -> None:
    period = period_for(user, now)
    digest_id = None
    if not dry_run:
        digest_id = app.store.digests.create(
            user.id,
            channel.id,
            period,
            [NewItem(p.id, r.score, r.kind, r.reason) for p, r in picks],
            now,
            cold_start=cold,
            empty_state=DigestState.PENDING
            if app.settings.digest.send_empty
            else DigestState.EMPTY,
        )
        if digest_id is None:
            report.already += 1
            return
        report.created += 1
        report.empty += 0 if picks else 1
    report.planned.append(PlannedDigest(user.name, channel.kind, period, picks, digest_id))

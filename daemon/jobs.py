"""The jobs: ingest, make digests, deliver. Each is an idempotent function of (database, now):
running one twice, late, or on two machines gives the same result. Catch-all handlers live here,
at the job boundary, where they record the failure and go on with the next feed or user."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from daemon.app import App
from daemon.errors import FeedError, PaperwireError
from daemon.fetch import expand_url
from daemon.models import Channel, User
from daemon.parse import parse_feed
from daemon.store import DueDelivery, PaperRow, UserSignals
from notifications.digest import Digest, Pick
from notifications.render import render_email, render_slack
from notifications.transports.base import (
    Outgoing,
    PermanentDeliveryError,
    SlackOut,
    TemporaryDeliveryError,
    Transport,
    TransportUnavailable,
)
from recommender import Recommender
from recommender.types import Doc, Feedback, Like, Recommendation

log = logging.getLogger("paperwire.jobs")

Progress = Callable[[str, int, int], None]  # (what, done, total)


def _no_progress(what: str, done: int, total: int) -> None:
    return None


# ---- ingest --------------------------------------------------------------------------------


@dataclass
class IngestReport:
    feeds_ok: int = 0
    feeds_unchanged: int = 0
    feeds_failed: int = 0
    papers_new: int = 0
    papers_known: int = 0
    errors: list[str] = field(default_factory=list)


def ingest(app: App, now: datetime, *, progress: Progress = _no_progress) -> IngestReport:
    """Fetch, parse and store every enabled feed. One bad feed never stops the others."""
    store = app.store
    store.ensure_feeds(((f.name, f.url, f.enabled) for f in app.settings.feeds), now)
    report = IngestReport()
    feeds = store.list_feeds(enabled_only=True)
    for i, feed in enumerate(feeds):
        assert feed.id is not None
        progress(f"feed {feed.name}", i, len(feeds))
        url = expand_url(feed.url, now)
        try:
            fetched = app.fetcher.fetch(url, etag=feed.etag, last_modified=feed.last_modified)
            if fetched.content is None:
                store.record_fetch(feed.id, now, etag=fetched.etag)
                report.feeds_unchanged += 1
                log.info("feed unchanged", extra={"feed": feed.name})
                continue
            parsed = parse_feed(fetched.content, url=url, content_type=fetched.content_type)
            new, known = store.upsert_papers(parsed.papers, feed.id, now)
            store.record_fetch(
                feed.id,
                now,
                etag=fetched.etag,
                last_modified=fetched.last_modified,
                papers=len(parsed.papers),
            )
            report.feeds_ok += 1
            report.papers_new += new
            report.papers_known += known
            log.info(
                "feed ingested",
                extra={
                    "feed": feed.name,
                    "new": new,
                    "known": known,
                    "skipped": len(parsed.skipped),
                },
            )
        except Exception as e:  # the job boundary: record, go on with the next feed
            message = str(e) if isinstance(e, FeedError) else f"{type(e).__name__}: {e}"
            store.record_fetch(feed.id, now, error=message)
            report.feeds_failed += 1
            report.errors.append(f"{feed.name}: {message}")
            log.warning("feed failed", extra={"feed": feed.name, "error": message})
    progress("feeds", len(feeds), len(feeds))
    return report


# ---- digests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedDigest:
    user: str
    channel: str
    period: date
    picks: tuple[tuple[PaperRow, Recommendation], ...]
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


def _zone(user: User) -> ZoneInfo:
    """The user's time zone; an unknown one (edited database, missing tzdata) falls back to UTC
    with a warning rather than stopping everyone's digests."""
    try:
        return ZoneInfo(user.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown time zone, using UTC", extra={"user": user.name, "tz": user.timezone})
        return ZoneInfo("UTC")


def period_for(user: User, now: datetime) -> date:
    return now.astimezone(_zone(user)).date()


def is_due(user: User, now: datetime, default_hour: int) -> bool:
    """A user's digest is due from their local digest hour on; a late run still catches up."""
    local = now.astimezone(_zone(user))
    hour = user.digest_hour if user.digest_hour is not None else default_hour
    return local.hour >= hour


def _doc(p: PaperRow) -> Doc:
    return Doc(
        id=str(p.id),
        title=p.title,
        abstract=p.abstract,
        authors=p.authors,
        published=p.published_at or p.first_seen_at,
        upvotes=p.upvotes,
    )


def _feedback(sig: UserSignals) -> Feedback:
    follows = sig.follows
    return Feedback(
        user_id=str(sig.user_id),
        likes=tuple(Like(doc_id=str(pid), at=at) for pid, at in sig.likes),
        dislikes=tuple(str(pid) for pid in sig.dislikes),
        keywords=tuple(v for k, v, m in follows if k == "keyword" and not m),
        authors=tuple(v for k, v, m in follows if k == "author" and not m),
        muted_keywords=tuple(v for k, v, m in follows if k == "keyword" and m),
        muted_authors=tuple(v for k, v, m in follows if k == "author" and m),
        exclude=frozenset(str(pid) for pid in sig.sent),
    )


def load_recommender(app: App, now: datetime) -> Recommender:
    """The fitted recommender; refitted when papers + likes grew by `recommender.refit_growth`
    or its options changed. Kept in memory between runs and in the database between processes.

    It learns from the stored papers and from every subscriber's likes (cross-user signals)."""
    store = app.store
    size = store.count_papers() + store.count_feedback()
    limit = 1 + app.settings.recommender.refit_growth

    def usable(fitted_size: int, model: Recommender) -> bool:
        return model.config == app.recommender_config and size <= fitted_size * limit

    if app.model_cache is not None and usable(*app.model_cache):
        return app.model_cache[1]
    saved = store.load_model()
    if saved is not None:
        fitted_size, blob = saved
        try:
            model = Recommender.loads(blob)
        except Exception as e:  # an old or foreign pickle: refit rather than fail the day
            log.warning("stored recommender unreadable; refitting", extra={"error": str(e)})
        else:
            if usable(fitted_size, model):
                app.model_cache = (fitted_size, model)
                return model
    everyone = store.signals([u.id or 0 for u, _ in store.list_users()])
    model = Recommender(app.recommender_config)
    model.fit([_doc(p) for p in store.all_papers()], [_feedback(s) for s in everyone.values()])
    store.save_model(size, model.dumps(), now)
    app.model_cache = (size, model)
    log.info("recommender fitted", extra={"size": size})
    return model


def make_digests(
    app: App,
    now: datetime,
    *,
    users: Sequence[str] | None = None,
    force: bool = False,
    dry_run: bool = False,
    progress: Progress = _no_progress,
) -> DigestReport:
    """Rank the window's papers for every due subscriber and store one digest per channel.

    `force` makes every selected user due now (one-off commands); the scheduled job waits for
    each user's local digest hour. A dry run computes the picks and stores nothing."""
    s = app.settings
    store = app.store
    report = DigestReport()
    subscribers = [
        (u, chans)
        for u, chans in store.subscribers(users)
        if chans and (force or is_due(u, now, s.schedule.digest_hour))
    ]
    todo = [
        (u, chans)
        for u, chans in subscribers
        if dry_run or {c.id for c in chans} - store.digest_periods(u.id or 0, period_for(u, now))
    ]
    report.already = len(subscribers) - len(todo)
    if not todo:
        return report
    window = store.window_papers(
        now - timedelta(hours=s.digest.window_hours), now + timedelta(0, 1)
    )
    report.candidates = len(window)
    rows = {p.id: p for p in window}
    signals = store.signals([u.id or 0 for u, _ in todo])
    known_ids = {pid for sig in signals.values() for pid, _ in sig.likes} | {
        pid for sig in signals.values() for pid in sig.dislikes
    }
    known_rows = store.papers_by_ids(known_ids)
    k = max([s.digest.max_picks] + [u.max_picks or 0 for u, _ in todo])
    ranked: dict[str, list[Recommendation]] = {}
    if window:
        ranked = load_recommender(app, now).rank(
            [_doc(p) for p in window],
            [_feedback(signals[u.id or 0]) for u, _ in todo],
            k=k,
            now=now,
            known={str(pid): _doc(p) for pid, p in known_rows.items()},
        )
    for i, (user, channels) in enumerate(todo):
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


def _store_digest(
    app: App,
    report: DigestReport,
    user: User,
    channel: Channel,
    picks: tuple[tuple[PaperRow, Recommendation], ...],
    cold: bool,
    now: datetime,
    *,
    dry_run: bool,
) -> None:
    period = period_for(user, now)
    label = f"{channel.kind}"
    digest_id = None
    if not dry_run:
        digest_id = app.store.create_digest(
            user.id or 0,
            channel.id or 0,
            period,
            [(p.id, r.score, r.kind, r.reason) for p, r in picks],
            now,
            cold_start=cold,
            empty_state="pending" if app.settings.digest.send_empty else "empty",
        )
        if digest_id is None:
            report.already += 1
            return
        report.created += 1
        report.empty += 0 if picks else 1
    report.planned.append(PlannedDigest(user.name, label, period, picks, digest_id))


# ---- delivery --------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def build_digest(app: App, digest_id: int) -> tuple[Digest, Channel, User]:
    content = app.store.digest_content(digest_id)
    user, links = content.user, app.links
    uid = user.id or 0
    picks = tuple(
        Pick(
            paper_key=paper.key,
            title=paper.title,
            url=paper.url,
            authors=paper.authors,
            abstract=paper.abstract,
            score=item.score,
            reason=item.reason,
            like_url=links.feedback_url("like", uid, paper.id),
            dislike_url=links.feedback_url("dislike", uid, paper.id),
            upvotes=paper.upvotes,
        )
        for item, paper in content.items
    )
    unsubscribe = links.unsubscribe_url(uid)
    digest = Digest(
        digest_id=digest_id,
        period=content.digest.period,
        recipient_name=user.display_name or user.name,
        picks=picks,
        unsubscribe_url=unsubscribe,
        one_click_unsubscribe_url=unsubscribe,
        cold_start=content.digest.cold_start,
    )
    return digest, content.channel, user


def render(app: App, digest: Digest, channel: Channel) -> Outgoing:
    s = app.settings
    if channel.kind == "email":
        return render_email(
            digest,
            sender=s.email.sender,
            recipient=channel.address,
            message_id_domain=s.email.message_id_domain,
            subject_prefix=s.digest.subject_prefix,
            now=app.clock(),
        )
    if channel.kind == "slack":
        return render_slack(digest, webhook_url=channel.address)
    raise PaperwireError(f"unknown channel kind {channel.kind!r}")


def deliver(app: App, now: datetime, *, progress: Progress = _no_progress) -> DeliveryReport:
    """Send every due digest: claimed with a lease, marked sent as soon as the server accepted
    it, retried with exponential backoff on temporary failures, given up on permanent ones."""
    ds = app.settings.delivery
    due = app.store.claim_due(now, timedelta(seconds=ds.lease_seconds))
    report = DeliveryReport()
    batches: dict[str, list[tuple[DueDelivery, Outgoing]]] = {"email": [], "slack": []}
    for d in due:
        try:
            digest, channel, user = build_digest(app, d.digest_id)
            if not (user.active and channel.active):
                # unsubscribed (link or CLI) after the digest was made, e.g. while it waited
                # for a retry: never send it; record why
                app.store.finish_delivery(
                    d.digest_id, now, outcome="permanent", detail="unsubscribed before delivery"
                )
                log.info("digest not sent: unsubscribed", extra={"digest": d.digest_id})
                continue
            batches[channel.kind].append((d, render(app, digest, channel)))
        except Exception as e:  # a digest that cannot be rendered waits; the others go on
            log.exception("digest could not be rendered", extra={"digest": d.digest_id})
            _record_failure(app, report, d.digest_id, d.attempts, e, now)
    done = 0
    for kind, batch in batches.items():
        if not batch:
            continue
        opener = app.email_transport if kind == "email" else app.slack_transport
        finished: set[int] = set()
        try:
            with opener() as transport:
                for d, out in batch:
                    progress(f"deliver {kind}", done, len(due))
                    _deliver_one(app, report, transport, d, out, now)
                    finished.add(d.digest_id)
                    done += 1
        except Exception as e:  # the transport itself failed (cannot connect, log in...)
            unavailable = e if isinstance(e, TransportUnavailable) else TransportUnavailable(str(e))
            waiting = [d for d, _ in batch if d.digest_id not in finished]
            _postpone(app, report, waiting, unavailable, now)
    progress("deliveries", len(due), len(due))
    return report


def _deliver_one(
    app: App,
    report: DeliveryReport,
    transport: Transport,
    d: DueDelivery,
    out: Outgoing,
    now: datetime,
) -> None:
    lease = timedelta(seconds=app.settings.delivery.lease_seconds)
    if not app.store.renew_lease(d.digest_id, d.leased_until, app.clock() + lease):
        # our lease ran out during a long batch and another worker took the digest over
        log.warning("digest left to another worker", extra={"digest": d.digest_id})
        return
    try:
        if isinstance(out, SlackOut) and len(out.payloads) > 1:
            # a message split in parts: each accepted part is recorded, a retry resumes after it
            for part in range(d.parts_sent, len(out.payloads)):
                transport.send(replace(out, payloads=(out.payloads[part],)))
                app.store.record_part_sent(d.digest_id, part + 1)
        else:
            transport.send(out)
    except TransportUnavailable:
        raise  # not this digest's fault: the whole batch waits (see deliver)
    except Exception as e:
        _record_failure(app, report, d.digest_id, d.attempts, e, now)
        return
    _mark_sent(app, d.digest_id, now)
    report.sent += 1
    log.info("digest sent", extra={"digest": d.digest_id, "transport": transport.name})


def _mark_sent(app: App, digest_id: int, now: datetime, tries: int = 3) -> None:
    """The server accepted the message: record it, insisting a little — a digest recorded as
    unsent would be sent again."""
    for attempt in range(1, tries + 1):
        try:
            app.store.finish_delivery(digest_id, now, outcome="sent")
            return
        except Exception:
            if attempt == tries:
                log.critical("sent but not recorded as sent", extra={"digest": digest_id})
                raise
            time.sleep(attempt)


def _postpone(
    app: App,
    report: DeliveryReport,
    waiting: list[DueDelivery],
    error: TransportUnavailable,
    now: datetime,
) -> None:
    """Keep every waiting digest for the next run without counting an attempt; a digest that
    has waited a whole day is given up (yesterday's papers are no longer news)."""
    ds = app.settings.delivery
    detail = f"{type(error).__name__}: {error}"[:500]
    log.error(
        "transport unavailable; digests wait",
        extra={"digests": len(waiting), "error": detail, "fix_config": error.permanent},
    )
    for d in waiting:
        if d.created_at is not None and now - d.created_at > timedelta(days=1):
            app.store.finish_delivery(d.digest_id, now, outcome="temporary", detail=detail)
            report.failed += 1
            report.errors.append(f"digest {d.digest_id}: {detail}")
            continue
        app.store.postpone(d.digest_id, now, now + timedelta(seconds=ds.backoff_seconds), detail)
        report.retrying += 1
    if waiting:
        report.errors.append(f"{len(waiting)} digest(s) wait: {detail}")


def _record_failure(
    app: App, report: DeliveryReport, digest_id: int, attempts: int, error: Exception, now: datetime
) -> None:
    ds = app.settings.delivery
    detail = f"{type(error).__name__}: {error}"[:500]
    permanent = isinstance(error, PermanentDeliveryError)
    if not permanent and attempts + 1 < ds.max_attempts:
        wait = ds.backoff_seconds * (2**attempts)
        if isinstance(error, TemporaryDeliveryError) and error.retry_after:
            wait = max(wait, error.retry_after)
        app.store.finish_delivery(
            digest_id,
            now,
            outcome="temporary",
            detail=detail,
            retry_at=now + timedelta(seconds=wait),
        )
        report.retrying += 1
        log.warning("delivery will be retried", extra={"digest": digest_id, "error": detail})
        return
    app.store.finish_delivery(
        digest_id, now, outcome="permanent" if permanent else "temporary", detail=detail
    )
    report.failed += 1
    report.errors.append(f"digest {digest_id}: {detail}")
    log.error("delivery failed for good", extra={"digest": digest_id, "error": detail})


# ---- the whole cycle -------------------------------------------------------------------------


@dataclass
class CycleReport:
    ingest: IngestReport
    digests: DigestReport
    delivery: DeliveryReport


def cycle(
    app: App,
    now: datetime,
    *,
    users: Sequence[str] | None = None,
    progress: Progress = _no_progress,
) -> CycleReport:
    """Ingest, score and deliver once, for every subscriber now (whatever their digest hour)."""
    return CycleReport(
        ingest=ingest(app, now, progress=progress),
        digests=make_digests(app, now, users=users, force=True, progress=progress),
        delivery=deliver(app, now, progress=progress),
    )

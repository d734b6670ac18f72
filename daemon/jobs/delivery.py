"""The delivery job: send every due digest. Claimed with a lease, marked sent as soon as the
server accepted it, retried with exponential backoff on temporary failures, given up with the
reason recorded on permanent ones; a transport that cannot deliver anything (server down, bad
credentials) keeps every waiting digest for later without using up its attempts."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from daemon.app import App
from daemon.channels import CHANNELS
from daemon.db.models import ChannelKind, Outcome
from daemon.db.rows import ChannelRow, DueDelivery, UserRow
from daemon.jobs.progress import Progress, no_progress
from notifications.digest import Digest, Pick
from notifications.transports.base import (
    Outgoing,
    PermanentDeliveryError,
    SlackOut,
    TemporaryDeliveryError,
    Transport,
    TransportUnavailable,
)

log = logging.getLogger("paperwire.jobs")

MARK_SENT_TRIES = 3  # a digest the server accepted but recorded as unsent would go out twice
GIVE_UP_WAITING = timedelta(days=1)  # yesterday's papers are no longer news
ERROR_CHARS = 500  # of an error kept with the digest


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def build_digest(app: App, digest_id: int) -> tuple[Digest, ChannelRow, UserRow]:
    """The stored digest as plain data for rendering, with signed links for every pick."""
    content = app.store.digests.content(digest_id)
    user, links = content.user, app.links
    picks = tuple(
        Pick(
            paper_key=paper.key,
            title=paper.title,
            url=paper.url,
            authors=paper.authors,
            abstract=paper.abstract,
            score=item.score,
            reason=item.reason,
            like_url=links.feedback_url("like", user.id, paper.id),
            dislike_url=links.feedback_url("dislike", user.id, paper.id),
            upvotes=paper.upvotes,
        )
        for item, paper in content.items
    )
    unsubscribe = links.unsubscribe_url(user.id)
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


def deliver(app: App, now: datetime, *, progress: Progress = no_progress) -> DeliveryReport:
    """Send every due digest, one transport per channel kind."""
    ds = app.settings.delivery
    due = app.store.digests.claim_due(now, timedelta(seconds=ds.lease_seconds))
    report = DeliveryReport()
    batches = _render_all(app, report, due, now)
    done = 0
    for kind, batch in batches.items():
        finished: set[int] = set()
        try:
            with CHANNELS[kind].transport(app) as transport:
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


def _render_all(
    app: App, report: DeliveryReport, due: list[DueDelivery], now: datetime
) -> dict[ChannelKind, list[tuple[DueDelivery, Outgoing]]]:
    """Every claimed digest rendered for its channel, grouped by channel kind."""
    batches: dict[ChannelKind, list[tuple[DueDelivery, Outgoing]]] = {}
    for d in due:
        try:
            digest, channel, user = build_digest(app, d.digest_id)
            if not (user.active and channel.active):
                # unsubscribed (link or CLI) after the digest was made, e.g. while it waited
                # for a retry: never send it; record why
                app.store.digests.finish(
                    d.digest_id,
                    now,
                    outcome=Outcome.PERMANENT,
                    detail="unsubscribed before delivery",
                )
                log.info("digest not sent: unsubscribed", extra={"digest": d.digest_id})
                continue
            out = CHANNELS[channel.kind].render(app, digest, channel.address)
            batches.setdefault(channel.kind, []).append((d, out))
        except Exception as e:  # a digest that cannot be rendered waits; the others go on
            log.exception("digest could not be rendered", extra={"digest": d.digest_id})
            _record_failure(app, report, d.digest_id, d.attempts, e, now)
    return batches


def _deliver_one(
    app: App,
    report: DeliveryReport,
    transport: Transport,
    d: DueDelivery,
    out: Outgoing,
    now: datetime,
) -> None:
    lease = timedelta(seconds=app.settings.delivery.lease_seconds)
    if not app.store.digests.renew_lease(d.digest_id, d.leased_until, app.clock() + lease):
        # our lease ran out during a long batch and another worker took the digest over
        log.warning("digest left to another worker", extra={"digest": d.digest_id})
        return
    try:
        if isinstance(out, SlackOut) and len(out.payloads) > 1:
            # a message split in parts: each accepted part is recorded, a retry resumes after it
            for part in range(d.parts_sent, len(out.payloads)):
                transport.send(replace(out, payloads=(out.payloads[part],)))
                app.store.digests.record_part_sent(d.digest_id, part + 1)
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


def _mark_sent(app: App, digest_id: int, now: datetime, tries: int = MARK_SENT_TRIES) -> None:
    """The server accepted the message: record it, insisting a little — a digest recorded as
    unsent would be sent again."""
    for attempt in range(1, tries + 1):
        try:
            app.store.digests.finish(digest_id, now, outcome=Outcome.SENT)
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
    detail = f"{type(error).__name__}: {error}"[:ERROR_CHARS]
    log.error(
        "transport unavailable; digests wait",
        extra={"digests": len(waiting), "error": detail, "fix_config": error.permanent},
    )
    for d in waiting:
        if d.created_at is not None and now - d.created_at > GIVE_UP_WAITING:
            app.store.digests.finish(d.digest_id, now, outcome=Outcome.TEMPORARY, detail=detail)
            report.failed += 1
            report.errors.append(f"digest {d.digest_id}: {detail}")
            continue
        retry_at = now + timedelta(seconds=ds.backoff_seconds)
        app.store.digests.postpone(d.digest_id, now, retry_at, detail)
        report.retrying += 1
    if waiting:
        report.errors.append(f"{len(waiting)} digest(s) wait: {detail}")


def _record_failure(
    app: App, report: DeliveryReport, digest_id: int, attempts: int, error: Exception, now: datetime
) -> None:
    ds = app.settings.delivery
    detail = f"{type(error).__name__}: {error}"[:ERROR_CHARS]
    permanent = isinstance(error, PermanentDeliveryError)
    if not permanent and attempts + 1 < ds.max_attempts:
        wait = ds.backoff_seconds * (2**attempts)
        if isinstance(error, TemporaryDeliveryError) and error.retry_after:
            wait = max(wait, error.retry_after)
        app.store.digests.finish(
            digest_id,
            now,
            outcome=Outcome.TEMPORARY,
            detail=detail,
            retry_at=now + timedelta(seconds=wait),
        )
        report.retrying += 1
        log.warning("delivery will be retried", extra={"digest": digest_id, "error": detail})
        return
    outcome = Outcome.PERMANENT if permanent else Outcome.TEMPORARY
    app.store.digests.finish(digest_id, now, outcome=outcome, detail=detail)
    report.failed += 1
    report.errors.append(f"digest {digest_id}: {detail}")
    log.error("delivery failed for good", extra={"digest": digest_id, "error": detail})

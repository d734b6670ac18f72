"""The delivery job: send every due digest.

Digests are claimed in small batches with a short lease, which a heartbeat renews while the
batch is being sent, so a dead worker's claims are taken over within about a lease and a
lease never runs out while its message is in flight. The job goes on, batch after batch,
until nothing is due, its time is up (`delivery.max_run_seconds`; the next run resumes), or
the daemon is stopping: then the message in flight is finished and recorded and the claims not
started are given back at once.

A digest is marked sent as soon as the server accepted it, retried with exponential backoff on
temporary failures, and given up with the reason recorded on permanent ones; a transport that
cannot deliver anything (server down, bad credentials, a server that does not answer) keeps
every waiting digest of its kind for later without using up attempts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol

from daemon.app import App
from daemon.channels import CHANNELS
from daemon.db.engine import database_trouble
from daemon.db.models import UNSUBSCRIBED_DETAIL, ChannelKind, Frequency, Outcome
from daemon.db.rows import ChannelRow, DigestContent, DueDelivery, PaperRow, UserRow
from daemon.jobs.progress import Progress, no_progress
from daemon.logs import cause
from daemon.web.links import Links
from notifications.digest import Digest, Pick
from notifications.transports.base import (
    MessageRefused,
    NotOffered,
    Outgoing,
    PermanentDeliveryError,
    ServiceUnreachable,
    SlackOut,
    TemporaryDeliveryError,
    TooManyConnections,
    Transport,
    TransportUnavailable,
)

log = logging.getLogger("paperwire.jobs")

MARK_SENT_PAUSE = 5.0  # at most, between two tries to record a sent digest (its lease holds)
GIVE_UP_WAITING = timedelta(days=1)  # yesterday's papers are no longer news
ERROR_CHARS = 500  # of an error kept with the digest
HEARTBEATS_PER_LEASE = 3  # the lease is renewed this often within its length
MESSAGES_PER_LANE = 25  # a batch opens one more connection per this many messages


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    postponed: int = 0  # waiting for a transport that could not deliver anything
    released: int = 0  # claimed but given back (the daemon is stopping)
    # claimed but left to another delivery process: the relay took no more connections
    left: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: DeliveryReport) -> None:
        """Count another run's figures in (one job may deliver several times)."""
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed
        self.postponed += other.postponed
        self.released += other.released
        self.left += other.left
        self.errors.extend(other.errors)


def build_digest(app: App, digest_id: int) -> tuple[Digest, ChannelRow, UserRow]:
    """The stored digest as plain data for rendering, with signed links for every pick."""
    return digest_of(app, app.store.digests.content(digest_id))


class Scored(Protocol):
    """What a pick says of why it was chosen: a stored digest item or a fresh recommendation."""

    @property
    def score(self) -> float: ...
    @property
    def kind(self) -> str: ...
    @property
    def reason(self) -> str: ...


def pick_of(
    links: Links, user_id: int, channel_id: int | None, paper: PaperRow, why: Scored
) -> Pick:
    """A paper of a digest as the renderers take it, with its signed like/dislike links (they
    name the channel the digest goes to; None: the user's links of old, every channel)."""
    return Pick(
        paper_key=paper.key,
        title=paper.title,
        url=paper.url,
        authors=paper.authors,
        abstract=paper.abstract,
        score=why.score,
        reason=why.reason,
        like_url=links.feedback_url("like", user_id, paper.id, channel_id),
        dislike_url=links.feedback_url("dislike", user_id, paper.id, channel_id),
        upvotes=paper.upvotes,
        kind=why.kind,
        day=paper.day.date(),
        arxiv_id=paper.arxiv_id,
        category=paper.categories[0] if paper.categories else None,
        doi=paper.doi,
    )


def digest_of(app: App, content: DigestContent) -> tuple[Digest, ChannelRow, UserRow]:
    """A digest read from the store, as plain data for rendering, with signed links."""
    user, links, channel_id = content.user, app.links, content.channel.id
    digest_id = content.digest.id
    picks = tuple(pick_of(links, user.id, channel_id, paper, item) for item, paper in content.items)
    unsubscribe = links.unsubscribe_url(user.id, channel_id)  # that address (channel) only
    digest = Digest(
        digest_id=digest_id,
        period=content.digest.period,
        recipient_name=user.display_name or user.name,
        picks=picks,
        unsubscribe_url=unsubscribe,
        one_click_unsubscribe_url=unsubscribe,
        cold_start=content.digest.cold_start,
        weekly=user.frequency == Frequency.WEEKLY,
        manage_url=_manage_url(app, content),
        channel_id=channel_id,
        resends=content.digest.resends,
    )
    return digest, content.channel, user


def _manage_url(app: App, content: DigestContent) -> str:
    """The digest's "Manage your digest" link: the subscriber's page (signed, expiring), but
    in a Slack channel of a subscriber who has an email address the page /manage, which mails
    the page's link there. A Slack channel is read by many: its message opened the account
    (the address, likes, export, deletion) to every reader. A channel that is the whole
    subscriber (a lab's, no email) keeps its page: /manage could mail it nothing."""
    if content.channel.kind != ChannelKind.EMAIL and content.has_email:
        return f"{app.links.base_url}/manage"
    return app.links.manage_url(content.user.id, app.clock())


class _Clock:
    """The job's time: `now` as given, moved on by the time the run has taken, so each attempt
    is recorded at its own time while the job stays a function of its `now`."""

    def __init__(self, app: App, now: datetime) -> None:
        self._app, self._now, self._start = app, now, app.clock()

    def __call__(self) -> datetime:
        return self._now + (self._app.clock() - self._start)


class _Lease:
    """One claim: a batch of digests leased until `until`. A heartbeat renews the lease on the
    digests not yet finished; on exit, the ones never started are given back."""

    def __init__(self, app: App, claimed: list[DueDelivery], clock: _Clock) -> None:
        self._app, self._clock = app, clock
        self._length = timedelta(seconds=app.settings.delivery.lease_seconds)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.until = claimed[0].leased_until if claimed else None
        self._open = {d.digest_id for d in claimed}  # claimed, not finished
        self._started: set[int] = set()
        self._lost: set[int] = set()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
        self.released = 0  # digests given back on exit

    def __enter__(self) -> _Lease:
        if self._open and self.until is not None:
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            unstarted = self._open - self._started - self._lost
        if unstarted and self.until is not None:
            self.released = self._app.store.digests.release(unstarted, self.until)

    def _beat(self) -> None:
        interval = self._length.total_seconds() / HEARTBEATS_PER_LEASE
        failed = 0  # beats failed in a row: an outage is one line, then one for its end
        while not self._stop.wait(interval):
            try:
                self.renew()
            except Exception as e:  # the database hiccuped: the next beat tries again
                if not failed:
                    from sqlalchemy.exc import DBAPIError

                    error = cause(e)
                    # an outage is one line; anything else is a bug, with its traceback
                    log.warning("lease renewal failed", extra={"error": error},
                                exc_info=None if isinstance(e, DBAPIError) else e)  # fmt: skip
                failed += 1
            else:
                if failed:
                    log.info("lease renewal recovered", extra={"failed_beats": failed})
                failed = 0

    def renew(self) -> None:
        with self._lock:
            if not self._open or self.until is None:
                return
            until = self._clock() + self._length
            kept = self._app.store.digests.renew_leases(self._open, self.until, until)
            self._lost |= self._open - kept
            self._open = kept
            self.until = until

    def start(self, digest_id: int) -> bool:
        """True: the digest is still ours, go on and send it."""
        with self._lock:
            if digest_id in self._lost or digest_id not in self._open:
                return False
            self._started.add(digest_id)
            return True

    def finish(self, digest_id: int) -> None:
        with self._lock:
            self._open.discard(digest_id)

    def unstart(self, digest_id: int) -> None:
        """The digest was not sent after all and goes back to the queue (or, if no lane takes
        it again, back to the database when the lease is left)."""
        with self._lock:
            self._started.discard(digest_id)


@dataclass
class _Run:
    """What one delivery run shares between its batches."""

    app: App
    clock: _Clock
    report: DeliveryReport
    progress: Progress
    transports: dict[tuple[ChannelKind, int], Transport] = field(default_factory=dict)
    down: dict[ChannelKind, TransportUnavailable] = field(default_factory=dict)
    waiting: dict[ChannelKind, int] = field(default_factory=dict)  # postponed, said at the end
    # lanes at work in the batch, and those whose connection the server would not take while
    # others had one (a limit of connections at once): not used again in the run
    running: dict[ChannelKind, int] = field(default_factory=dict)
    refused: dict[ChannelKind, set[int]] = field(default_factory=dict)
    worked: dict[ChannelKind, set[int]] = field(default_factory=dict)  # a message answered
    closers: list[Callable[[], object]] = field(default_factory=list)
    # asked once when the server's limit of connections at once refused every lane: another
    # delivery process still delivers (it holds them), so this run leaves its claims to it
    others_deliver: Callable[[], bool] | None = None
    leaving: bool | None = None
    done: int = 0
    papers: dict[int, PaperRow] = field(default_factory=dict)  # read once per run, by id
    lock: threading.Lock = field(default_factory=threading.Lock)  # lanes share the report

    def transport(self, kind: ChannelKind, lane: int = 0) -> Transport:
        """The transport of one lane of a kind, opened on first use and kept for the whole run
        (one SMTP connection for many messages)."""
        with self.lock:
            if (kind, lane) not in self.transports:
                opener = CHANNELS[kind].transport(self.app)
                self.transports[(kind, lane)] = opener.__enter__()
                self.closers.append(lambda: opener.__exit__(None, None, None))
            return self.transports[(kind, lane)]

    def opened(self, kind: ChannelKind, lane: int) -> bool:
        return (kind, lane) in self.transports

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception:  # closing a broken connection: nothing left to lose
                log.debug("closing a transport failed", exc_info=True)


def deliver(
    app: App,
    now: datetime,
    *,
    progress: Progress = no_progress,
    others_deliver: Callable[[], bool] | None = None,
) -> DeliveryReport:
    """Send every due digest: claim a batch, send it, and again, until none is due, the run's
    time is up (`delivery.max_run_seconds`) or the daemon is stopping.

    `others_deliver` (delivery processes, `delivery.workers` > 1): asked when the server's
    limit of connections at once refused every connection of the run; True: another process
    delivers and holds them, so this run gives its claims back for it (`report.left`) and
    ends, where it would keep them waiting for a later run."""
    ds = app.settings.delivery
    run = _Run(app, _Clock(app, now), DeliveryReport(), progress, others_deliver=others_deliver)
    deadline = time.monotonic() + ds.max_run_seconds
    lease = timedelta(seconds=ds.lease_seconds)
    try:
        while not app.stopping.is_set() and time.monotonic() < deadline:
            claimed = app.store.digests.claim_due(run.clock(), lease, limit=ds.claim_batch)
            if not claimed:
                break
            with _Lease(app, claimed, run.clock) as held:
                _deliver_batch(run, held, claimed)
            if run.leaving:
                run.report.left += held.released
                log.info("the server takes no more connections: digests left to the other "
                         "delivery processes", extra={"digests": held.released})  # fmt: skip
                break
            run.report.released += held.released
    finally:
        run.close()
        for kind, n in run.waiting.items():  # one line a kind, however many batches waited
            _say_waiting(run, n, run.down[kind])
    if app.stopping.is_set() and run.report.released:
        log.info("stopping: claims given back", extra={"digests": run.report.released})
    progress("deliveries", run.done, run.done)
    return run.report


def _deliver_batch(run: _Run, held: _Lease, claimed: list[DueDelivery]) -> None:
    for kind, batch in _render_all(run, claimed).items():
        if run.app.stopping.is_set():
            return  # the rest are given back when the lease is left
        queue = _Queue(batch)
        wanted = _lanes(run, kind, len(batch))
        refused = run.refused.get(kind, set())
        lanes = [n for n in range(wanted + len(refused)) if n not in refused][:wanted]
        run.running[kind] = len(lanes)
        if len(lanes) == 1:
            _lane(run, held, kind, lanes[0], queue)
        else:  # a few connections at once: one waits on the server while another works
            with ThreadPoolExecutor(len(lanes), thread_name_prefix=f"deliver-{kind}") as pool:
                for future in [pool.submit(_lane, run, held, kind, n, queue) for n in lanes]:
                    future.result()
        while queue.waiting() and kind not in run.down and not run.app.stopping.is_set():
            # given back by a lane refused when the others had left: one whose connection the
            # server answered takes them (each refused is one fewer; the last says it is down)
            refused = run.refused.get(kind, set())
            kept = sorted(run.worked.get(kind, set()) - refused)
            kept += [n for n in lanes if n not in refused]
            if not kept:
                break  # given back with the lease, for the next batch
            run.running[kind] = 1
            _lane(run, held, kind, kept[0], queue)
        if kind in run.down and not run.leaving:  # leaving: given back with the lease
            _postpone(run, kind, queue.rest(), held)


def _lanes(run: _Run, kind: ChannelKind, messages: int) -> int:
    """Connections used at once for a kind: `email.connections` for email (less those the
    server refused in the run) when the batch is big enough to share (a few messages go
    through one connection); one for the others (Slack's limit is per webhook)."""
    if kind != ChannelKind.EMAIL:
        return 1
    # a connection the server refused while others worked is one fewer for the rest of the run
    wanted = run.app.settings.email.connections - len(run.refused.get(kind, ()))
    return max(1, min(wanted, messages // MESSAGES_PER_LANE))


class _Queue:
    """A batch's messages, taken one at a time by the lanes."""

    def __init__(self, batch: list[tuple[DueDelivery, Outgoing]]) -> None:
        self._items = list(batch)
        self._next = 0
        self._lock = threading.Lock()

    def give_back(self, item: tuple[DueDelivery, Outgoing]) -> None:
        """A message a lane took and could not send (its connection refused): for another."""
        with self._lock:
            self._items.append(item)

    def take(self) -> tuple[DueDelivery, Outgoing] | None:
        with self._lock:
            if self._next >= len(self._items):
                return None
            self._next += 1
            return self._items[self._next - 1]

    def waiting(self) -> bool:
        with self._lock:
            return self._next < len(self._items)

    def rest(self) -> list[DueDelivery]:
        """The messages no lane took (the kind became unavailable), taken now."""
        with self._lock:
            rest, self._next = self._items[self._next :], len(self._items)
        return [d for d, _ in rest]


def _lane(run: _Run, held: _Lease, kind: ChannelKind, lane: int, queue: _Queue) -> None:
    """Send messages of the queue, one after another on one connection, until it is empty,
    the daemon stops, or the kind's transport is found unavailable."""
    try:
        _send_lane(run, held, kind, lane, queue)
    finally:
        with run.lock:
            if lane not in run.refused.get(kind, ()):  # else counted out when refused
                run.running[kind] -= 1


def _send_lane(run: _Run, held: _Lease, kind: ChannelKind, lane: int, queue: _Queue) -> None:
    worked = False  # the server answered a message on this lane's connection
    while not run.app.stopping.is_set() and kind not in run.down:
        item = queue.take()
        if item is None:
            return
        d, out = item
        if not held.start(d.digest_id):
            # our lease ran out and another worker took the digest over
            log.warning("digest left to another worker", extra={"digest": d.digest_id})
            continue
        run.progress(f"deliver {kind}", run.done, run.done + 1)
        given_back = False
        try:
            _deliver_one(run, run.transport(kind, lane), d, out, held)
            if not worked:
                worked = True
                with run.lock:
                    run.worked.setdefault(kind, set()).add(lane)
        except TransportUnavailable as e:  # the server, not this digest: the kind waits
            if _refused_lane(e, worked) and _others_at_work(run, kind, lane):
                # one connection more than the server takes at once ("421 … too many
                # connections"), not the server down: the other lanes send this one's messages
                given_back = True
                held.unstart(d.digest_id)
                queue.give_back(item)
                log.info("a connection refused while others work: one lane fewer this run",
                         extra={"kind": str(kind), "error": _detail(e)})  # fmt: skip
                return
            run.down.setdefault(kind, e)
            if _leaving(run, kind):  # another process holds the connections: it sends them
                given_back = True
                held.unstart(d.digest_id)
                queue.give_back(item)
                return
            _postpone(run, kind, [d], held)
        except Exception as e:  # the transport could not be opened at all
            if run.opened(kind, lane):
                raise  # not the transport's doing: the job boundary records it
            unavailable = TransportUnavailable(f"{type(e).__name__}: {e}")
            run.down.setdefault(kind, unavailable)
            _postpone(run, kind, [d], held)
        finally:
            if not given_back:
                held.finish(d.digest_id)
        with run.lock:
            run.done += 1


def _leaving(run: _Run, kind: ChannelKind) -> bool:
    """Whether the run leaves its claims to another delivery process, the kind found down by
    the server's limit of connections at once (asked once a run)."""
    with run.lock:
        if run.leaving is None:
            limit = isinstance(run.down.get(kind), TooManyConnections)
            run.leaving = limit and run.others_deliver is not None and run.others_deliver()
        return run.leaving


def _refused_lane(error: TransportUnavailable, worked: bool) -> bool:
    """Whether `error` may be one lane's connection refused, not the server down: any
    temporary refusal of a lane that has sent nothing yet (at its greeting: one connection
    more than the server takes), and the server's limit of connections at once even after
    the lane has sent (Exchange's "sender thread limit exceeded" when the others took the
    threads)."""
    if error.permanent:
        return False
    return not worked or isinstance(error, TooManyConnections)


def _others_at_work(run: _Run, kind: ChannelKind, lane: int) -> bool:
    """Whether other lanes of the kind go on sending, or one has sent in the run and is done
    (it takes what is given back when the others are), so `lane` may leave its messages to
    them (its connection refused); if so, it is not used again in the run."""
    with run.lock:
        refused = run.refused.setdefault(kind, set())
        if run.running.get(kind, 0) <= 1 and not run.worked.get(kind, set()) - refused - {lane}:
            return False
        refused.add(lane)
        run.running[kind] -= 1
        return True


def _render_all(
    run: _Run, due: list[DueDelivery]
) -> dict[ChannelKind, list[tuple[DueDelivery, Outgoing]]]:
    """Every claimed digest rendered for its channel, grouped by channel kind."""
    app = run.app
    batches: dict[ChannelKind, list[tuple[DueDelivery, Outgoing]]] = {}
    contents = app.store.digests.contents([d.digest_id for d in due], run.papers)
    for d in due:
        content = contents.get(d.digest_id)
        if content is None:  # removed since the claim, with its channel or its subscriber
            log.info("digest not sent: removed", extra={"digest": d.digest_id})
            continue  # (one whose channel changed meanwhile goes back with the lease)
        try:
            # the count of parts sent read with the channel, not at the claim: an address
            # changed since starts again from the first part (`people._move_to_new_channel`)
            d = replace(d, parts_sent=content.digest.parts_sent, channel_id=content.channel.id)
            digest, channel, user = digest_of(app, content)
            if not (user.active and channel.active):
                # unsubscribed (link or CLI) after the digest was made, e.g. while it waited
                # for a retry: never send it; record why
                app.store.digests.finish(
                    d.digest_id,
                    run.clock(),
                    outcome=Outcome.PERMANENT,
                    detail=UNSUBSCRIBED_DETAIL,
                )
                log.info("digest not sent: unsubscribed", extra={"digest": d.digest_id})
                continue
            out = CHANNELS[channel.kind].render(app, digest, channel.address)
            batches.setdefault(channel.kind, []).append((d, out))
        except PermanentDeliveryError as e:  # e.g. an address that can never receive mail
            _record_failure(run, d.digest_id, d.attempts, e)
        except Exception as e:  # a digest that cannot be rendered waits; the others go on
            log.exception("digest could not be rendered", extra={"digest": d.digest_id})
            _record_failure(run, d.digest_id, d.attempts, e)
    return batches


def _deliver_one(
    run: _Run, transport: Transport, d: DueDelivery, out: Outgoing, held: _Lease
) -> None:
    """Send one digest and record the outcome; TransportUnavailable is for the caller."""
    try:
        if isinstance(out, SlackOut) and len(out.payloads) > 1:
            # a message split in parts: each accepted part is recorded, a retry resumes after it;
            # the parts share the message's budget of 429 waits (`replace` keeps `out.waited`)
            parts = len(out.payloads)
            for part in range(d.parts_sent, parts):
                one = (out.payloads[part],)  # its errors say "payload 2/3", not "1/1"
                transport.send(replace(out, payloads=one, first_part=part + 1, parts=parts))
                if not _record_sent(run, d, held, part=part + 1):
                    return  # the new address's now, from its first part: back with the lease
        else:
            transport.send(out)
    except TransportUnavailable:
        raise  # not this digest's fault: the whole batch waits
    except ServiceUnreachable as e:  # Slack out of reach: no digest's fault, this one waits
        log.warning("delivery waits: the service is out of reach",
                    extra={"digest": d.digest_id, "error": _detail(e)})  # fmt: skip
        _keep_waiting(run, [d], _detail(e), held, e.retry_after)
        return
    except Exception as e:
        _record_failure(run, d.digest_id, d.attempts, e)
        return
    _record_sent(run, d, held)
    with run.lock:
        run.report.sent += 1
    log.info("digest sent", extra={"digest": d.digest_id, "transport": transport.name})


def _record_sent(run: _Run, d: DueDelivery, held: _Lease, part: int | None = None) -> bool:
    """The server accepted the message (or its `part`, of a split Slack message): record it,
    insisting while its lease holds (no other worker can take it meanwhile) — what is recorded
    as unsent would be sent again. Only the database's trouble (`database_trouble`: out of
    reach, locked, a connection lost, the pool out of connections) is waited for, and only
    until the lease held at the first failure ends (the heartbeat renews it): any other error
    would come again. A part is recorded only while the digest is still for the channel it
    went to (its address changed: the new one has none of its parts); False then: the rest
    of the message is not sent to the old address."""
    digests, digest_id = run.app.store.digests, d.digest_id
    attempt, until = 0, held.until
    while True:
        attempt += 1
        try:
            if part is None:
                digests.finish(digest_id, run.clock(), outcome=Outcome.SENT)
            elif not digests.record_part_sent(digest_id, part, d.channel_id):
                log.info("a part sent to an address changed meanwhile: not counted for the "
                         "new one, the rest not sent to the old", extra={"digest": digest_id,
                         "part": part})  # fmt: skip
                return False
            return True
        except Exception as e:
            pause = min(float(attempt), MARK_SENT_PAUSE)
            out_of_time = until is None or run.clock() + timedelta(seconds=pause) >= until
            if out_of_time or not database_trouble(e):
                log.critical("sent but not recorded as sent", extra={"digest": digest_id})
                raise
            if attempt == 1:
                log.warning("sent, not recorded yet: trying again", extra={"digest": digest_id},
                            exc_info=True)  # fmt: skip
            time.sleep(pause)


def _postpone(run: _Run, kind: ChannelKind, waiting: list[DueDelivery], held: _Lease) -> None:
    """Keep every waiting digest of a kind found unavailable for a later run without counting
    an attempt; a digest that has waited a whole day is given up (yesterday's papers are no
    longer news)."""
    _keep_waiting(run, waiting, _detail(run.down[kind]), held)
    with run.lock:
        run.waiting[kind] = run.waiting.get(kind, 0) + len(waiting)


def _keep_waiting(
    run: _Run,
    waiting: list[DueDelivery],
    detail: str,
    held: _Lease,
    retry_after: float | None = None,
) -> None:
    """Keep digests for a later run without counting an attempt (`detail`: why; no sooner
    than `retry_after` seconds, when the server asked), or give up those that have waited a
    whole day."""
    app, report = run.app, run.report
    now = run.clock()
    wait = max(app.settings.delivery.backoff_seconds, retry_after or 0.0)
    retry_at = now + timedelta(seconds=wait)
    for d in waiting:
        held.finish(d.digest_id)
        if d.created_at is not None and now - d.created_at > GIVE_UP_WAITING:
            app.store.digests.finish(d.digest_id, now, outcome=Outcome.TEMPORARY, detail=detail)
            with run.lock:
                report.failed += 1
                report.errors.append(f"digest {d.digest_id}: {detail}")
            continue
        app.store.digests.postpone(d.digest_id, now, retry_at, detail)
        with run.lock:
            report.postponed += 1


def _say_waiting(run: _Run, n: int, error: TransportUnavailable) -> None:
    detail = _detail(error)
    log.error(
        "transport unavailable; digests wait",
        extra={"digests": n, "error": detail, "fix_config": error.permanent},
    )
    run.report.errors.append(f"{n} digest(s) wait: {detail}")


def _detail(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:ERROR_CHARS]


def _record_failure(run: _Run, digest_id: int, attempts: int, error: Exception) -> None:
    app, report = run.app, run.report
    ds = app.settings.delivery
    now = run.clock()
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
        with run.lock:
            report.retrying += 1
        log.warning("delivery will be retried", extra={"digest": digest_id, "error": detail})
        return
    outcome = Outcome.PERMANENT if permanent else Outcome.TEMPORARY
    app.store.digests.finish(digest_id, now, outcome=outcome, detail=detail)
    with run.lock:
        report.failed += 1
        report.errors.append(f"digest {digest_id}: {detail}")
    log.error("delivery failed for good", extra={"digest": digest_id, "error": detail})
    # not a refusal of the address: nothing went out (a server without SMTPUTF8 would stop
    # every such channel), or the message paperwire made was refused (Slack's invalid_blocks)
    if permanent and ds.stop_channel_after and not isinstance(error, NotOffered | MessageRefused):
        _stop_if_refusing(run, digest_id, ds.stop_channel_after)


def _stop_if_refusing(run: _Run, digest_id: int, refusals: int) -> None:
    """Stop the channel of a digest refused for good when its last `refusals` were too (the
    store checks that others of its kind got theirs meanwhile)."""
    stopped = run.app.store.digests.stop_refusing_channel(digest_id, refusals)
    if stopped is None:
        return
    user, reason = stopped
    run.app.store.admin.audit(run.clock(), "paperwire", "channel stopped", user, reason)
    with run.lock:
        run.report.errors.append(f"{user}: channel stopped, {reason}")
    log.warning(
        "channel stopped: its digests are refused (the subscriber's page, the console or "
        "`users set --subscribe` starts it again)",
        extra={"user": user, "digest": digest_id, "refusals": refusals},
    )

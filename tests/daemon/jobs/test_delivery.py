"""The delivery job: batch after batch until nothing is due, leases renewed while sending,
claims given back on a stop, each attempt at its own time. Digests go through the real file
transport, wrapped to run a hook inside `send` (the moment a message is in flight)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from daemon import channels, jobs
from daemon.app import App
from daemon.db.digests import NewItem
from daemon.db.models import ChannelKind, DeliveryAttempt, DigestState
from daemon.ingest.parse import PaperIn
from daemon.jobs import delivery
from notifications import render
from notifications.transports.base import EmailOut, Outgoing
from notifications.transports.file import FileTransport
from notifications.transports.slack import SlackWebhookTransport
from notifications.transports.smtp import SmtpTransport
from tests.daemon.conftest import (
    BOTH_BACKENDS,
    NOW,
    POSTGRES_ONLY,
    SettingsFactory,
    pool_exhausted,
    terminate_connections,
)
from tests.daemon.jobs.helpers import digest_states, more_digests, users_with_digests
from tests.notifications.factories import FakeClock
from tests.servers import (
    CLOSED_PORT,
    FaultAction,
    HttpServer,
    Reply,
    http_server,
    resolves_to_loopback,
    smtp_server,
)

Hook = Callable[[Outgoing], None]


class HookedFileTransport(FileTransport):
    """The real file transport, running `hook` inside each send, before the file is written."""

    def __init__(self, outbox: Path, hook: Hook) -> None:
        super().__init__(outbox)
        self.hook = hook

    def send(self, out: Outgoing) -> None:
        self.hook(out)
        super().send(out)


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Hook]]:
    """Append a function to run it inside every email send of the test."""
    hooks: list[Hook] = []

    def run(out: Outgoing) -> None:
        for h in hooks:
            h(out)

    email = channels.CHANNELS[ChannelKind.EMAIL]
    hooked = dataclasses.replace(
        email,
        transport=lambda app: HookedFileTransport(app.settings.delivery.outbox_dir, run),
    )
    monkeypatch.setitem(channels.CHANNELS, ChannelKind.EMAIL, hooked)
    yield hooks


@BOTH_BACKENDS
def test_one_run_delivers_every_due_digest_batch_after_batch(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    # 7 due, 3 claimed at a time: one run sends all of them (it used to stop at one claim)
    app = app_factory(make_settings(delivery={"claim_batch": 3}))
    ids = users_with_digests(app, 7)
    report = jobs.deliver(app, NOW)
    assert report.sent == 7 and report.released == 0
    assert set(digest_states(app).values()) == {DigestState.SENT}
    assert len(list(app.settings.delivery.outbox_dir.glob("*.eml"))) == len(ids)


@BOTH_BACKENDS
def test_a_stop_finishes_the_message_in_flight_and_gives_the_rest_back(
    app_factory: Callable[..., App], make_settings: SettingsFactory, hook: list[Hook]
) -> None:
    app = app_factory(make_settings(delivery={"claim_batch": 10}))
    users_with_digests(app, 5)
    hook.append(lambda out: app.stopping.set())  # SIGTERM arrives while the first is sent
    report = jobs.deliver(app, NOW)
    assert report.sent == 1 and report.released == 4
    assert sorted(digest_states(app).values()) == [DigestState.PENDING] * 4 + [DigestState.SENT]
    # given back: another worker (or the next run) claims them at once, not after the lease
    app.stopping.clear()
    hook.clear()
    assert jobs.deliver(app, NOW).sent == 4
    assert set(digest_states(app).values()) == {DigestState.SENT}


def test_the_lease_is_renewed_while_a_slow_message_is_being_sent(
    app_factory: Callable[..., App], hook: list[Hook], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A send slower than the lease: the heartbeat keeps the digest ours (with a lease that ran
    out, a second worker would send it again while the first is still sending it)."""
    app = app_factory()
    (digest_id,) = users_with_digests(app, 1)
    monkeypatch.setattr(delivery, "HEARTBEATS_PER_LEASE", 2000)  # a beat every 30 ms
    leases: list[datetime | None] = []

    def slow_server(out: Outgoing) -> None:
        app.clock.now += timedelta(minutes=5)  # type: ignore[attr-defined]  # 5 leases pass
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait (not a timing assertion) for a heartbeat
            leased = app.store.digests.get(digest_id).leased_until
            if leased is not None and leased > NOW + timedelta(minutes=5):
                leases.append(leased)
                return
            time.sleep(0.01)

    hook.append(slow_server)
    assert jobs.deliver(app, NOW).sent == 1
    assert leases, "the lease was not renewed while the message was in flight"
    assert leases[0] == NOW + timedelta(minutes=5) + timedelta(seconds=60)


def test_a_sent_digest_is_recorded_when_the_database_is_back_within_its_lease(
    app_factory: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL cut for 15 s just after the server accepted a message: the job gave up
    # recording it after 3 s ("sent but not recorded as sent"), and the next run sent it
    # again, though its lease kept it ours for 60 s (operations QA, a proxy cut)
    import sqlalchemy as sa

    app = app_factory()
    (digest_id,) = users_with_digests(app, 1)
    finish = app.store.digests.finish
    down_until = NOW + timedelta(seconds=15)
    tries: list[datetime] = []

    def database_down(digest_id: int, at: datetime, **kwargs: object) -> None:
        tries.append(at)
        if at < down_until:
            raise sa.exc.OperationalError("UPDATE digest", {}, ConnectionRefusedError())
        finish(digest_id, at, **kwargs)  # type: ignore[arg-type]

    def pause(seconds: float) -> None:  # the job's clock moves on, no real time passes
        app.clock.now += timedelta(seconds=seconds)  # type: ignore[attr-defined]

    monkeypatch.setattr(app.store.digests, "finish", database_down)
    monkeypatch.setattr(time, "sleep", pause)
    assert jobs.deliver(app, NOW).sent == 1
    assert digest_states(app) == {digest_id: DigestState.SENT}
    assert len(tries) > 3 and tries[-1] < NOW + timedelta(seconds=60)  # within the lease

    # down for longer than the lease: given up before it runs out, as sent but not recorded
    (later,) = more_digests(app, 1, 1)
    down_until = app.clock.now + timedelta(hours=1)  # type: ignore[attr-defined]
    leased_at = app.clock.now  # type: ignore[attr-defined]
    tries.clear()
    with pytest.raises(sa.exc.OperationalError):
        jobs.deliver(app, leased_at)
    assert tries[-1] < leased_at + timedelta(seconds=60)
    assert digest_states(app)[later] == DigestState.PENDING


@pytest.mark.parametrize("kind", ["pool", "connection-lost"])
def test_a_sent_digest_s_record_waits_for_any_trouble_of_the_database(
    app_factory: Callable[..., App], monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # only OperationalError was waited for: a pool with every connection taken (TimeoutError)
    # or a connection lost that the driver called an InterfaceError gave up at once, "sent but
    # not recorded as sent", and the next run sent the digest again; the ingest counted both
    # the database's (ops QA: one predicate, `database_trouble`)
    import sqlalchemy as sa

    app = app_factory()
    (digest_id,) = users_with_digests(app, 1)
    finish = app.store.digests.finish
    tries: list[datetime] = []

    def trouble(digest_id: int, at: datetime, **kwargs: object) -> None:
        tries.append(at)
        if len(tries) == 1 and kind == "pool":
            with pool_exhausted(app.store.engine):
                finish(digest_id, at, **kwargs)  # type: ignore[arg-type]
        elif len(tries) == 1:
            raise sa.exc.InterfaceError("UPDATE digest", {}, RuntimeError("connection already "
                                        "closed"), connection_invalidated=True)  # fmt: skip
        finish(digest_id, at, **kwargs)  # type: ignore[arg-type]

    def pause(seconds: float) -> None:  # the job's clock moves on, no real time passes
        app.clock.now += timedelta(seconds=seconds)  # type: ignore[attr-defined]

    monkeypatch.setattr(app.store.digests, "finish", trouble)
    monkeypatch.setattr(time, "sleep", pause)
    assert jobs.deliver(app, NOW).sent == 1
    assert digest_states(app) == {digest_id: DigestState.SENT}
    assert len(tries) == 2


@POSTGRES_ONLY
def test_a_sent_digest_is_recorded_after_the_server_ended_the_connection(
    app_factory: Callable[..., App], hook: list[Hook], db_url: str
) -> None:
    # PostgreSQL restarted (its processes ended: pg_terminate_backend) while a message was in
    # flight: the record that it was sent is written on a new connection, and it is sent once
    app = app_factory()
    (digest_id,) = users_with_digests(app, 1)
    sent: list[Outgoing] = []

    def server_restarts(out: Outgoing) -> None:
        sent.append(out)
        assert terminate_connections(app.store.engine) >= 1

    hook.append(server_restarts)
    assert jobs.deliver(app, NOW).sent == 1
    assert digest_states(app) == {digest_id: DigestState.SENT}
    hook.clear()
    assert jobs.deliver(app, NOW + timedelta(hours=1)).sent == 0
    assert len(sent) == 1


@pytest.mark.parametrize("fault", ["refused", "misused"])
def test_recording_a_sent_digest_waits_for_the_database_only(
    app_factory: Callable[..., App], monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    # an error that is not the database out of reach comes again: it is not retried (the
    # heartbeat renews the lease, so "while the lease holds" could last for ever; second read)
    import sqlalchemy as sa

    app = app_factory()
    users_with_digests(app, 1)
    tries: list[datetime] = []

    def broken(digest_id: int, at: datetime, **kwargs: object) -> None:
        tries.append(at)
        if fault == "misused":  # psycopg's InterfaceError on a connection that works: a bug
            raise sa.exc.InterfaceError("UPDATE digest", {}, RuntimeError("the cursor is closed"))
        raise sa.exc.IntegrityError("UPDATE digest", {}, ValueError("a lasting fault"))

    monkeypatch.setattr(app.store.digests, "finish", broken)
    monkeypatch.setattr(time, "sleep", lambda seconds: pytest.fail("waited for a lasting fault"))
    with pytest.raises((sa.exc.IntegrityError, sa.exc.InterfaceError)):
        jobs.deliver(app, NOW)
    assert len(tries) == 1


def test_a_mail_server_down_is_one_line_a_run_however_many_batches_wait(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # connection refused: each batch of `claim_batch` logged its own error, twice (the first
    # digest, then the rest): 2,000 ERROR lines an hour at 100,000 subscribers; `paperwire
    # deliver` printed a line per batch (operations QA, SMTP down)
    import logging

    from tests.servers import free_port

    email = {"transport": "smtp", "host": "127.0.0.1", "port": free_port(), "security": "none"}
    app = app_factory(make_settings(email=email, delivery={"claim_batch": 3}))
    users_with_digests(app, 7)
    with caplog.at_level(logging.INFO, logger="paperwire.jobs"):
        report = jobs.deliver(app, NOW)
    assert report.postponed == 7 and report.sent == report.failed == 0
    said = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.getMessage(), getattr(r, "digests", None)) for r in said] == [
        ("transport unavailable; digests wait", 7)
    ]
    assert len(report.errors) == 1 and report.errors[0].startswith("7 digest(s) wait: ")
    assert set(digest_states(app).values()) == {DigestState.PENDING}


def test_each_attempt_is_recorded_at_its_own_time(
    app_factory: Callable[..., App], hook: list[Hook]
) -> None:
    app = app_factory()
    users_with_digests(app, 2)

    def ten_minutes_per_message(out: Outgoing) -> None:
        app.clock.now += timedelta(minutes=10)  # type: ignore[attr-defined]

    hook.append(ten_minutes_per_message)
    jobs.deliver(app, NOW)
    with Session(app.store.engine) as s:
        times = sorted(a.at for a in s.exec(select(DeliveryAttempt)).all())
    assert times == [NOW + timedelta(minutes=10), NOW + timedelta(minutes=20)]


@BOTH_BACKENDS
def test_a_big_batch_goes_out_on_several_connections_exactly_once(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    """60 digests, `email.connections = 3`: up to three SMTP connections send them side by
    side, each message once; then the server starts refusing connections (421): they wait."""
    with smtp_server(tls="none", require_starttls=False) as server:
        email = {"transport": "smtp", "host": server.host, "port": server.port,
                 "security": "none", "connections": 3}  # fmt: skip
        app = app_factory(make_settings(email=email, delivery={"claim_batch": 100}))
        ids = users_with_digests(app, 60)
        report = jobs.deliver(app, NOW)
        assert report.sent == 60 and report.failed == report.postponed == 0
        assert sorted(m.rcpt_tos[0] for m in server.messages) == sorted(
            f"u{i}@x.org" for i in range(60)
        )
        assert 1 <= server.connections <= 3  # lanes open theirs on first use (scheduling)
        assert set(digest_states(app).values()) == {DigestState.SENT}

        more = more_digests(app, 40, start=len(ids))
        server.fail("CONNECT", "reply", "421 4.3.2 not now", times=None)
        later = jobs.deliver(app, NOW)
        assert later.sent == 0 and later.postponed == len(more)
        assert len(server.messages) == 60


@pytest.mark.parametrize(
    ("lane_refused", "command", "too_many"),
    [
        (
            0,
            "CONNECT",
            "421 4.3.2 The maximum number of concurrent server connections has exceeded",
        ),
        (
            2,
            "CONNECT",
            "421 4.3.2 The maximum number of concurrent server connections has exceeded",
        ),
        (1, "MAIL", "432 4.3.2 Concurrent connections limit exceeded."),  # Exchange Online
        (0, "END_OF_DATA", "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded"),
    ],
)
def test_a_connection_more_than_the_server_takes_at_once_holds_nothing_up(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
    lane_refused: int,
    command: str,
    too_many: str,
) -> None:
    """A relay that takes fewer connections at once than `email.connections` (Exchange Online
    takes 3 a mailbox; the default is 4) refuses one more at its greeting: that refusal was
    taken for the server being down, and every digest of the run not yet sent waited for a
    later run, where the same happened again. The refused connection is made to come from
    one lane (a server that refuses every connection stands for the relay's limit)."""
    with (
        smtp_server(tls="none", require_starttls=False) as server,
        smtp_server(tls="none", require_starttls=False) as full,
    ):
        full.fail(command, "close" if command == "CONNECT" else "reply", too_many, times=None)
        email = {"transport": "smtp", "host": server.host, "port": server.port,
                 "security": "none", "connections": 4}  # fmt: skip
        app = app_factory(make_settings(email=email, delivery={"claim_batch": 100}))
        users_with_digests(app, 130)  # a batch of 100 on four lanes, then one of 30 on one
        real = delivery._Run.transport

        def transport(run: delivery._Run, kind: ChannelKind, lane: int = 0) -> Any:
            if lane == lane_refused and (kind, lane) not in run.transports:
                refused = SmtpTransport(full.host, full.port, security="none", timeout=5.0)
                run.transports[(kind, lane)] = refused.__enter__()
            return real(run, kind, lane)

        monkeypatch.setattr(delivery._Run, "transport", transport)
        report = jobs.deliver(app, NOW)
        assert report.sent == 130 and report.postponed == report.failed == 0, report
        assert len(server.messages) == 130 and full.messages == []
        assert set(digest_states(app).values()) == {DigestState.SENT}


@pytest.mark.parametrize(
    ("command", "action", "too_many"),
    [
        ("END_OF_DATA", "reply", "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded"),
        ("MAIL", "reply", "432 4.3.2 Concurrent connections limit exceeded."),
        ("MAIL", "close", "421 4.3.2 Too many concurrent connections from this login"),
    ],
)
def test_a_connection_that_sent_then_hits_the_limit_leaves_its_messages_to_the_others(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    action: FaultAction,
    too_many: str,
) -> None:
    """Exchange's thread or connection limit said to a connection that had sent already (the
    others took the threads meanwhile) was taken for the server down: the whole kind waited,
    every digest of the run not yet sent postponed. Its messages go through the others now,
    and it is one lane fewer for the rest of the run."""
    with (
        smtp_server(tls="none", require_starttls=False) as server,
        smtp_server(tls="none", require_starttls=False) as limited,
    ):

        class LimitedAfterOne(SmtpTransport):
            """Lane 1's connection: one message goes, then the relay's limit is reached."""

            def send(self, out: Outgoing) -> None:
                super().send(out)
                limited.fail(command, action, too_many, times=None)

        email = {"transport": "smtp", "host": server.host, "port": server.port,
                 "security": "none", "connections": 2}  # fmt: skip
        app = app_factory(make_settings(email=email, delivery={"claim_batch": 50}))
        users_with_digests(app, 80)  # a batch of 50 on two lanes, then one of 30 on one
        real = delivery._Run.transport

        def transport(run: delivery._Run, kind: ChannelKind, lane: int = 0) -> Any:
            if lane == 1 and (kind, lane) not in run.transports:
                one = LimitedAfterOne(limited.host, limited.port, security="none", timeout=5.0)
                run.transports[(kind, lane)] = one.__enter__()
            return real(run, kind, lane)

        monkeypatch.setattr(delivery._Run, "transport", transport)
        report = jobs.deliver(app, NOW)
        assert report.sent == 80 and report.postponed == report.failed == 0, report
        assert len(limited.messages) == 1 and len(server.messages) == 79
        assert set(digest_states(app).values()) == {DigestState.SENT}


def test_a_connection_refused_is_one_lane_fewer_for_the_rest_of_the_run(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The relay takes 3 connections at once, `email.connections` is 4: the fourth is refused
    in the first batch, and the next batches go on the three kept open. Each batch's lanes took
    a new number in place of the refused one, so each batch of 100 opened a fourth connection
    again, refused again (the docs and the log say one lane fewer for the rest of the run)."""
    too_many = "421 4.3.2 The maximum number of concurrent server connections has exceeded"
    with (
        smtp_server(tls="none", require_starttls=False) as server,
        smtp_server(tls="none", require_starttls=False) as full,
    ):
        full.fail("CONNECT", "close", too_many, times=None)
        email = {"transport": "smtp", "host": server.host, "port": server.port,
                 "security": "none", "connections": 4}  # fmt: skip
        app = app_factory(make_settings(email=email, delivery={"claim_batch": 100}))
        users_with_digests(app, 300)  # three batches of 100, each big enough for four lanes
        real = delivery._Run.transport
        taken: set[int] = set()  # lanes the relay took a connection of

        def transport(run: delivery._Run, kind: ChannelKind, lane: int = 0) -> Any:
            with run.lock:
                if (kind, lane) not in run.transports and lane not in taken:
                    if len(taken) < 3:
                        taken.add(lane)
                    else:  # one more than the relay takes at once
                        refused = SmtpTransport(full.host, full.port, security="none", timeout=5.0)
                        run.transports[(kind, lane)] = refused.__enter__()
            return real(run, kind, lane)

        monkeypatch.setattr(delivery._Run, "transport", transport)
        report = jobs.deliver(app, NOW)
        assert report.sent == 300 and report.postponed == report.failed == 0, report
        assert len(server.messages) == 300 and full.messages == []
        assert full.connections == 1 and server.connections == 3


def test_a_connection_refused_after_the_others_are_done_is_not_the_server_down(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The refusal of one lane's connection comes when the other lane has sent the rest of
    the batch and left: that lane's connection works, yet the refused one was the last lane
    left, said the server down, and its digest and every later batch of the run waited."""
    too_many = "421 4.3.2 The maximum number of concurrent server connections has exceeded"
    with (
        smtp_server(tls="none", require_starttls=False) as server,
        smtp_server(tls="none", require_starttls=False) as full,
    ):
        full.fail("CONNECT", "close", too_many, times=None)
        email = {"transport": "smtp", "host": server.host, "port": server.port,
                 "security": "none", "connections": 2}  # fmt: skip
        app = app_factory(make_settings(email=email, delivery={"claim_batch": 50}))
        users_with_digests(app, 80)  # a batch of 50 on two lanes, then one of 30 on one
        real_transport, real_lane = delivery._Run.transport, delivery._lane
        left = threading.Event()  # lane 0 has sent the rest of the first batch and left

        def transport(run: delivery._Run, kind: ChannelKind, lane: int = 0) -> Any:
            if lane == 1 and (kind, lane) not in run.transports:
                assert left.wait(30)
                refused = SmtpTransport(full.host, full.port, security="none", timeout=5.0)
                run.transports[(kind, lane)] = refused.__enter__()
            return real_transport(run, kind, lane)

        def lane(run: delivery._Run, *args: Any) -> None:
            real_lane(run, *args)
            left.set()

        monkeypatch.setattr(delivery._Run, "transport", transport)
        monkeypatch.setattr(delivery, "_lane", lane)
        report = jobs.deliver(app, NOW)
        assert report.sent == 80 and report.postponed == report.released == 0, report
        assert len(server.messages) == 80 and full.connections == 1
        assert set(digest_states(app).values()) == {DigestState.SENT}


def test_a_server_refusing_every_lanes_connection_is_down_once_for_the_run(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    # the lanes refused leave their messages to the others; the last one left says the server
    # is down: every digest waits, each lane tried once, and the next batches not at all
    with smtp_server(tls="none", require_starttls=False) as server:
        server.fail("CONNECT", "close", "421 4.3.2 not now", times=None)
        email = {"transport": "smtp", "host": server.host, "port": server.port,
                 "security": "none", "connections": 4}  # fmt: skip
        app = app_factory(make_settings(email=email, delivery={"claim_batch": 100}))
        users_with_digests(app, 160)
        report = jobs.deliver(app, NOW)
        assert report.sent == 0 and report.postponed == 160 and report.failed == 0, report
        assert 1 <= server.connections <= 4 and server.messages == []


def test_a_message_id_is_never_given_to_another_digest(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    """The newest subscriber deleted and added again the same day: SQLite gives the new digest
    row the deleted one's id. Its message must not carry the deleted digest's Message-ID
    (Gmail drops a message whose Message-ID it has seen), while a resend keeps its own."""
    with smtp_server(tls="none", require_starttls=False) as server:
        email = {"transport": "smtp", "host": server.host, "port": server.port,
                 "security": "none"}  # fmt: skip
        app = app_factory(make_settings(email=email))
        (first,) = users_with_digests(app, 1)
        jobs.deliver(app, NOW)
        app.store.people.remove("u0")
        (again,) = more_digests(app, 1, start=0)  # the same address, the same day
        assert again == first  # SQLite: max(id) + 1
        jobs.deliver(app, NOW)
        old, new = (m.message["Message-ID"] for m in server.messages)
        assert old != new
        assert new == render.message_id(delivery.build_digest(app, again)[0], "localhost")


def test_a_resend_of_a_sent_digest_carries_a_new_message_id_and_a_retry_keeps_its_own(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An admin's Resend of a digest that went out carried the Message-ID of the first copy:
    Gmail drops a message whose Message-ID it has seen, so the resend never showed. A retry
    of the same sending keeps its Message-ID (a message the server took but whose answer was
    lost, sent again, is then dropped as the copy it is), and so does the Resend of a digest
    that failed (it goes on with the same sending)."""
    tried: list[str] = []
    send = SmtpTransport.send

    def spy(self: SmtpTransport, out: Outgoing) -> None:
        assert isinstance(out, EmailOut)
        tried.append(str(out.message["Message-ID"]))
        send(self, out)

    monkeypatch.setattr(SmtpTransport, "send", spy)
    with smtp_server(tls="none", require_starttls=False) as server:
        email = {"transport": "smtp", "host": server.host, "port": server.port,
                 "security": "none"}  # fmt: skip
        app = app_factory(make_settings(email=email))
        (digest_id,) = users_with_digests(app, 1)
        assert jobs.deliver(app, NOW).sent == 1
        digests = app.store.digests
        assert digests.resend(digest_id, NOW)  # sent: the admin wants a new copy
        server.fail("END_OF_DATA", reply="451 4.3.0 try again later")
        assert jobs.deliver(app, NOW).retrying == 1
        assert jobs.deliver(app, NOW + timedelta(hours=1)).sent == 1  # the retry
        assert digests.resend(digest_id, NOW + timedelta(hours=2))
        server.fail("RCPT", reply="550 5.1.1 no such user")
        assert jobs.deliver(app, NOW + timedelta(hours=2)).failed == 1
        assert digests.resend(digest_id, NOW + timedelta(hours=3))  # failed: the same sending
        assert jobs.deliver(app, NOW + timedelta(hours=3)).sent == 1
        first, resent, retried, refused, resent_after_refusal = tried
        assert len({first, resent, refused}) == 3  # before: one Message-ID for all five
        assert retried == resent and resent_after_refusal == refused
        assert [str(m.message["Message-ID"]) for m in server.messages] == [first, resent, refused]


@pytest.mark.parametrize(
    ("host", "slacks"), [("hooks.slack.com", True), ("hooks.example.org", False)]
)
def test_slack_out_of_reach_uses_up_no_attempt_and_waits_a_day(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
    host: str,
    slacks: bool,
) -> None:
    """Slack out of reach used up an attempt of each Slack digest in every run: an outage of
    about 5 h (6 hourly runs) failed the day's digests. Every webhook is on Slack's host, so
    that is no digest's fault: they wait, as for a mail server down, and are given up once a
    day old. A webhook on a server of its own (stored before such were refused) is one
    subscriber's server: its failures count, as before."""
    resolves_to_loopback(monkeypatch, host)
    app, ids = _slack_digests(app_factory, make_settings, f"http://{host}:{CLOSED_PORT}")
    runs = [jobs.deliver(app, NOW + timedelta(hours=h)) for h in range(3)]
    if not slacks:  # one subscriber's server: each run uses an attempt, 2 allowed
        assert [(r.retrying, r.failed) for r in runs] == [(2, 0), (0, 2), (0, 0)]
        return
    assert [(r.sent, r.retrying, r.failed, r.postponed) for r in runs] == [(0, 0, 0, 2)] * 3
    assert [app.store.digests.get(i).attempts for i in ids] == [0, 0]
    assert set(digest_states(app).values()) == {DigestState.PENDING}
    assert "network error" in (app.store.digests.get(ids[0]).last_error or "")
    late = jobs.deliver(app, NOW + timedelta(days=1, hours=1))  # a day old: given up
    assert (late.failed, late.postponed) == (2, 0)
    assert set(digest_states(app).values()) == {DigestState.FAILED}


def _slack_digests(
    app_factory: Callable[..., App], make_settings: SettingsFactory, server: str
) -> tuple[App, list[int]]:
    """An app delivering by webhook (2 attempts a digest) and the digests of two subscribers,
    ada and bo, whose webhooks are on `server` (scheme://host:port)."""
    slack = {"transport": "webhook", "min_interval_seconds": 0.0}
    app = app_factory(make_settings(slack=slack, delivery={"max_attempts": 2}))
    app.store.papers.upsert(
        [PaperIn(key="arxiv:1", title="A paper", abstract="", authors=(), url="", published=NOW)],
        None,
        NOW,
    )
    pid = app.store.papers.find("arxiv:1").id
    ids = []
    for name in ("ada", "bo"):
        hook = f"{server}/services/T0/B{name}/XXXX"
        app.store.people.add(name, NOW, channels={ChannelKind.SLACK: hook})
        user, (channel,) = app.store.people.subscribers([name])[0]
        made = app.store.digests.create(
            user.id, channel.id, date(2026, 11, 27), [NewItem(pid, 0.5, "similar", "r")], NOW,
            cold_start=False,
        )  # fmt: skip
        assert made is not None
        ids.append(made)
    return app, ids


def test_slack_answering_503_uses_up_no_attempt_and_waits_as_it_asks(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Slack-wide outage answering 503 (not silence) used up an attempt of each Slack digest
    per run: with 2 attempts, the second run failed the day's digests for good. It is Slack's
    outage as much as silence is: the digests wait without using an attempt, no sooner than
    its Retry-After, and are sent when Slack is back."""
    resolves_to_loopback(monkeypatch, "hooks.slack.com")
    with http_server(Reply(503, "service_unavailable")) as server:
        port = server.url.rsplit(":", 1)[1]
        app, ids = _slack_digests(app_factory, make_settings, f"http://hooks.slack.com:{port}")
        server.reply(503, "service_unavailable", {"Retry-After": "7200"})  # ada's, 2 h
        runs = [jobs.deliver(app, NOW + timedelta(hours=h)) for h in range(4)]
        assert [(r.sent, r.retrying, r.failed, r.postponed) for r in runs] == [
            (0, 0, 0, 2), (0, 0, 0, 1), (0, 0, 0, 2), (0, 0, 0, 2)
        ]  # fmt: skip
        assert [app.store.digests.get(i).attempts for i in ids] == [0, 0]
        assert "HTTP 503 service_unavailable" in (app.store.digests.get(ids[0]).last_error or "")
        server.default = Reply(200, "ok")  # Slack is back
        back = jobs.deliver(app, NOW + timedelta(hours=4))
    assert (back.sent, back.failed) == (2, 0)
    assert set(digest_states(app).values()) == {DigestState.SENT}


@BOTH_BACKENDS
@pytest.mark.parametrize("when", ["while it is sent", "between the claim and the render"])
def test_a_channel_removed_while_its_digest_goes_out_does_not_end_the_run(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
    when: str,
) -> None:
    """Removing a channel deletes its digests, also one a worker has claimed. Recording the
    attempt of a digest no longer there broke the run ("sent but not recorded as sent", the
    attempt's row naming no digest): the digests after it waited for the lease to run out and
    the next run. The removed channel's digest is left alone; the others go on."""
    with http_server() as slack:
        app, (_, bo_digest) = _slack_digests(app_factory, make_settings, slack.url)
        ada = app.store.people.get("ada")
        app.store.people.set_channel(ada.id, ChannelKind.EMAIL, "ada@x.org")
        email = next(c for c in app.store.people.channels_of(ada.id) if c.kind == "email")
        before = app.store.digests.create(
            ada.id, email.id, date(2026, 11, 26), [], NOW, cold_start=False
        )  # her email address has had digests: the Slack channel's are not handed over to it
        assert before is not None

        def remove_slack() -> None:
            app.store.people.set_channel(ada.id, ChannelKind.SLACK, None)

        if when == "while it is sent":
            slack.on_request = lambda path: remove_slack() if "/Bada/" in path else None
        else:
            contents = app.store.digests.contents

            def removed_first(*args: Any, **kwargs: Any) -> Any:
                remove_slack()
                return contents(*args, **kwargs)

            monkeypatch.setattr(app.store.digests, "contents", removed_first)
        report = jobs.deliver(app, NOW)
        assert (report.sent, report.retrying, report.failed) == (
            (2, 0, 0) if when == "while it is sent" else (1, 0, 0)
        )
        assert digest_states(app) == {before: DigestState.EMPTY, bo_digest: DigestState.SENT}
        assert len(slack.seen("/services/T0/Bbo/XXXX")) == 1


def test_the_manage_links_of_a_batch_of_slack_digests_read_the_channels_once(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    """A Slack digest's "Manage your digest" is /manage for a subscriber with an email address
    (it mails the page's link there), else the page's own link. Whether the subscriber has one
    was read for each Slack digest, a query each; it comes with the batch's contents."""
    import sqlalchemy as sa

    with http_server() as slack:
        app, _ = _slack_digests(app_factory, make_settings, slack.url)
        app.store.people.set_channel(app.store.people.get("ada").id, ChannelKind.EMAIL, "a@x.org")
        reads: list[str] = []

        def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            if "FROM channel" in statement:
                reads.append(statement)

        sa.event.listen(app.store.engine, "before_cursor_execute", seen)
        try:
            assert jobs.deliver(app, NOW).sent == 2
        finally:
            sa.event.remove(app.store.engine, "before_cursor_execute", seen)
        base = app.links.base_url
        ada, bo = (str(slack.seen(f"/services/T0/B{n}/XXXX")[0].body) for n in ("ada", "bo"))
    assert f"<{base}/manage|Manage your digest>" in ada
    assert f"<{base}/manage|" not in bo and f"{base}/me/" in bo
    assert len(reads) == 2  # the batch's channels, and which subscribers have an email address


def test_each_part_of_a_split_slack_digest_is_kept_in_the_outbox(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    """The file transport wrote each part of a split Slack message to the same file: only the
    last one was left to read."""
    app = app_factory(make_settings())
    papers = [
        PaperIn(key=f"arxiv:{i}", title=f"Paper {i}", abstract="", authors=(), url="",
                published=NOW)
        for i in range(30)
    ]  # fmt: skip
    app.store.papers.upsert(papers, None, NOW)
    hook = "https://hooks.slack.com/services/T0/B0/XXXX"
    user = app.store.people.add("ada", NOW, channels={ChannelKind.SLACK: hook})
    (channel,) = app.store.people.subscribers([user.name])[0][1]
    items = [NewItem(app.store.papers.find(p.key).id, 0.5, "similar", "r") for p in papers]
    digest_id = app.store.digests.create(
        user.id, channel.id, NOW.date(), items, NOW, cold_start=False
    )
    assert jobs.deliver(app, NOW).sent == 1
    files = sorted(Path(app.settings.delivery.outbox_dir).glob("*-slack*.json"))
    assert [f.name for f in files] == [f"2026-11-27-{digest_id}-slack-{n}of2.json" for n in (1, 2)]
    titles = "".join(f.read_text("utf-8") for f in files)
    assert all(f"*Paper {i}*" in titles for i in range(30))


@pytest.mark.parametrize("bug", [False, True])
def test_a_lease_renewal_failing_through_an_outage_is_one_line_then_its_recovery(
    app_factory: Callable[..., App],
    hook: list[Hook],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    bug: bool,
) -> None:
    # the database out while a message was in flight: "lease renewal failed" with its whole
    # traceback every 20 s for as long as it lasted (known, left by earlier sessions)
    import logging

    import sqlalchemy as sa

    app = app_factory()
    users_with_digests(app, 1)
    monkeypatch.setattr(delivery, "HEARTBEATS_PER_LEASE", 2000)  # a beat every 30 ms
    renew = app.store.digests.renew_leases
    beats: list[str] = []

    def outage(*args: object) -> set[int]:
        beats.append("down" if len(beats) < 4 else "up")
        if beats[-1] == "down" and bug:  # not the database's: a bug, with its traceback
            raise KeyError("refused")
        if beats[-1] == "down":
            raise sa.exc.OperationalError("UPDATE digest", {}, ConnectionRefusedError("refused"))
        return renew(*args)  # type: ignore[arg-type]

    def slow_server(out: Outgoing) -> None:
        deadline = time.monotonic() + 60
        while beats.count("up") < 2 and time.monotonic() < deadline:  # not a timing assertion
            time.sleep(0.01)

    monkeypatch.setattr(app.store.digests, "renew_leases", outage)
    hook.append(slow_server)
    with caplog.at_level(logging.INFO, logger="paperwire.jobs"):
        assert jobs.deliver(app, NOW).sent == 1
    said = [r for r in caplog.records if "lease renewal" in r.getMessage()]
    assert [r.getMessage() for r in said] == ["lease renewal failed", "lease renewal recovered"]
    assert (said[0].exc_info is not None) == bug
    assert "Error: " in said[0].error and "refused" in said[0].error  # type: ignore[attr-defined]
    assert said[1].failed_beats == 4  # type: ignore[attr-defined]


@contextmanager
def _refusing(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    replies: dict[str, str],
    stop_channel_after: int,
) -> Iterator[tuple[Any, App]]:
    """A real SMTP server giving `replies` to those recipients (the others get theirs), and an
    app delivering to it that stops a channel after `stop_channel_after` refusals."""
    with smtp_server(tls="none", require_starttls=False, rcpt_replies=replies) as server:
        email = {"transport": "smtp", "host": server.host, "port": server.port,
                 "security": "none"}  # fmt: skip
        delivery = {"stop_channel_after": stop_channel_after}
        yield server, app_factory(make_settings(email=email, delivery=delivery))


def _day_of_digests(app: App, day: int) -> None:
    """A digest for every subscriber for 2026-11-(26 + day)."""
    pid = app.store.papers.find("arxiv:1").id
    for user, user_channels in app.store.people.subscribers():
        for channel in user_channels:
            app.store.digests.create(
                user.id, channel.id, date(2026, 11, 26) + timedelta(days=day),
                [NewItem(pid, 0.5, "similar", "r")], NOW, cold_start=False,
            )  # fmt: skip


@BOTH_BACKENDS
def test_a_channel_whose_digests_are_refused_for_good_is_stopped(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    """A mailbox that does not exist got its digest every day, refused every day ("550 no such
    user"): mail providers count such sends against the sender. After `stop_channel_after`
    refusals in a row, while others got theirs, the channel is stopped and says why."""
    refused = {"u0@x.org": "550 5.1.1 <u0@x.org>: no such user"}
    with _refusing(app_factory, make_settings, refused, 3) as (server, app):
        users_with_digests(app, 2)  # u0 (refused) and u1, day 1
        for day in (1, 2, 3):
            if day > 1:
                _day_of_digests(app, day)
            report = jobs.deliver(app, NOW + timedelta(days=day - 1))  # each day at 8:00
            assert (report.sent, report.failed) == (1, 1)
            (u0,) = app.store.people.channels_of(app.store.people.get("u0").id)
            assert u0.active == (day < 3), day
        assert u0.stopped_reason is not None and "550 5.1.1" in u0.stopped_reason
        assert any("u0: channel stopped" in e for e in report.errors)
        assert [e.action for e in app.store.admin.audit_log()][:1] == ["channel stopped"]
        _day_of_digests(app, 4)  # none for u0 now
        assert jobs.deliver(app, NOW).sent == 1
        assert [m.rcpt_tos for m in server.messages] == [("u1@x.org",)] * 4
        # the subscriber (their page), or the admin subscribing them again, starts it
        app.store.people.edit("u0", NOW, subscribed=True)
        (u0,) = app.store.people.channels_of(app.store.people.get("u0").id)
        assert u0.active and u0.stopped_reason is None


@BOTH_BACKENDS
def test_refusals_of_an_old_address_or_before_a_start_do_not_count(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    """The refusals of a channel's old address counted toward stopping it: an address given
    after two refusals of a mistyped one was stopped by its own first refusal. So was a channel
    started again after being stopped. Its count starts again at each."""
    refused = {
        address: f"550 5.1.1 <{address}>: no such user"
        for address in ("u0@x.org", "u0@x.orgg", "u0@y.org")
    }
    day = 0
    with _refusing(app_factory, make_settings, refused, 3) as (_, app):

        def next_day() -> bool:
            nonlocal day
            day += 1
            if day > 1:
                _day_of_digests(app, day)
            report = jobs.deliver(app, NOW + timedelta(days=day - 1))
            assert (report.sent, report.failed) == (1, 1), day
            (u0,) = app.store.people.channels_of(app.store.people.get("u0").id)
            return u0.active

        users_with_digests(app, 2)
        assert next_day() and next_day()  # u0@x.org refused twice
        app.store.people.edit("u0", NOW, channels={ChannelKind.EMAIL: "u0@x.orgg"})
        assert next_day() and next_day()  # the new address refused twice: still active
        assert not next_day()  # three times: stopped
        app.store.people.edit("u0", NOW, subscribed=True)  # started again, the same address
        assert next_day() and next_day() and not next_day()
        app.store.people.edit("u0", NOW, channels={ChannelKind.EMAIL: "u0@y.org"})
        app.store.people.edit("u0", NOW, channels={ChannelKind.EMAIL: "u0@y.org"})  # the same
        assert next_day() and next_day() and not next_day()


@BOTH_BACKENDS
def test_an_address_beyond_ascii_through_a_server_without_smtputf8_is_not_stopped(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    """04ce097 fails such a digest for good before MAIL FROM: no server refused the address,
    nothing was sent. Three days of it stopped the channel ("its digests are refused"), which
    stayed stopped once the lab's server spoke SMTPUTF8."""
    with _refusing(app_factory, make_settings, {}, 3) as (server, app):
        users_with_digests(app, 2)
        app.store.people.edit("u0", NOW, channels={ChannelKind.EMAIL: "jörg@x.org"})
        for day in (1, 2, 3, 4):
            if day > 1:
                _day_of_digests(app, day)
            report = jobs.deliver(app, NOW + timedelta(days=day - 1))
            assert (report.sent, report.failed) == (1, 1), day
        assert "SMTPUTF8" in report.errors[0]
        (u0,) = app.store.people.channels_of(app.store.people.get("u0").id)
        assert u0.active and u0.stopped_reason is None
        assert [m.rcpt_tos for m in server.messages] == [("u1@x.org",)] * 4


@pytest.mark.parametrize(("refused", "after"), [(2, 1), (1, 0)])
def test_a_channel_is_not_stopped_when_nobody_gets_theirs_or_when_told_never(
    app_factory: Callable[..., App], make_settings: SettingsFactory, refused: int, after: int
) -> None:
    # every recipient refused (a server that refuses everyone for a reason of its own): the
    # fault is not one address's, and no channel is stopped; nor with stop_channel_after = 0
    replies = {f"u{i}@x.org": "550 5.7.1 policy refusal" for i in range(refused)}
    with _refusing(app_factory, make_settings, replies, after) as (_server, app):
        users_with_digests(app, 2)
        assert jobs.deliver(app, NOW).failed == refused
        for name in ("u0", "u1"):
            (channel,) = app.store.people.channels_of(app.store.people.get(name).id)
            assert channel.active and channel.stopped_reason is None


@BOTH_BACKENDS
def test_a_full_mailbox_is_retried_and_never_stops_the_channel(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    """552 to RCPT TO (mailbox full) was a permanent refusal: the digest given up at once, and
    with stop_channel_after = 1 the channel stopped, while the mailbox is emptied soon."""
    with _refusing(app_factory, make_settings, {}, 1) as (server, app):
        (first, _) = users_with_digests(app, 2)
        server.fail("RCPT", reply="552 5.2.2 <u0@x.org>: mailbox full")  # u0's, sent first
        report = jobs.deliver(app, NOW)
        assert (report.sent, report.retrying, report.failed) == (1, 1, 0)
        assert app.store.digests.get(first).state == DigestState.PENDING
        (u0,) = app.store.people.channels_of(app.store.people.get("u0").id)
        assert u0.active and u0.stopped_reason is None
        assert jobs.deliver(app, NOW + timedelta(days=1)).sent == 1  # emptied: it goes
        assert [m.rcpt_tos for m in server.messages] == [("u1@x.org",), ("u0@x.org",)]


def test_a_digest_not_sent_for_an_unsubscribe_is_no_refusal(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    # a digest given up because its channel was stopped before it went out counted as one
    # refused: a subscriber back from an unsubscribe had their channel stopped at one refusal
    refused = {"u0@x.org": "550 5.1.1 <u0@x.org>: no such user"}
    with _refusing(app_factory, make_settings, refused, 2) as (_server, app):
        users_with_digests(app, 2)
        user = app.store.people.get("u0")
        (channel,) = app.store.people.channels_of(user.id)
        app.store.people.set_channel_active(user.id, channel.id, False, NOW)  # unsubscribed
        assert jobs.deliver(app, NOW).sent == 1  # u0's: "unsubscribed before delivery"
        app.store.people.set_channel_active(user.id, channel.id, True, NOW)  # back
        _day_of_digests(app, 2)
        assert jobs.deliver(app, NOW).failed == 1  # refused once
        (channel,) = app.store.people.channels_of(user.id)
        assert channel.active and channel.stopped_reason is None


@BOTH_BACKENDS
def test_a_server_refusing_everyone_from_midday_stops_no_channel(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    # u1 got its digest in the morning; from noon the server refused every recipient, for a
    # day and more. u0, whose hour came after noon, was stopped: its two refusals were the
    # server's, and "others got theirs" counted u1's morning digest of the first day
    refused = {"u0@x.org": "550 5.1.1 <u0@x.org>: no such user"}  # once the server works
    with _refusing(app_factory, make_settings, refused, 2) as (server, app):
        users_with_digests(app, 0)
        more_digests(app, 1, 1)  # u1, 8:00
        assert jobs.deliver(app, NOW).sent == 1
        # noon: the server refuses everyone, its next three recipients (u0; u1 and u0 next day)
        server.fail("RCPT", reply="554 5.7.1 policy refusal", times=3)
        more_digests(app, 1, 0)  # u0, 14:00
        assert jobs.deliver(app, NOW + timedelta(hours=6)).failed == 1
        _day_of_digests(app, 2)
        assert jobs.deliver(app, NOW + timedelta(days=1)).failed == 2
        for name in ("u0", "u1"):
            (channel,) = app.store.people.channels_of(app.store.people.get(name).id)
            assert channel.active and channel.stopped_reason is None, name
        # the server works again: u1 gets its digests, and u0, refused after that, is stopped
        # (the day after at the latest: on the first, its refusal may come before u1's send)
        for day in (3, 4):
            _day_of_digests(app, day)
            jobs.deliver(app, NOW + timedelta(days=day - 1))
        (u0,) = app.store.people.channels_of(app.store.people.get("u0").id)
        assert not u0.active and u0.stopped_reason is not None


def test_a_slack_channel_that_takes_the_first_part_of_its_digests_is_not_stopped(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    # a long digest split in two: Slack took the first part every day and refused the second
    # (its blocks); the webhook works, yet the channel was stopped after three days, and its
    # subscriber then got nothing at all
    papers = [
        PaperIn(key=f"arxiv:{i}", title=f"Paper {i}", abstract="", authors=(), url="",
                published=NOW)
        for i in range(30)
    ]  # fmt: skip
    with http_server() as slack:
        slack_settings = {"transport": "webhook", "min_interval_seconds": 0.0}
        app = app_factory(make_settings(slack=slack_settings))
        app.store.papers.upsert(papers, None, NOW)
        items = [NewItem(app.store.papers.find(p.key).id, 0.5, "similar", "r") for p in papers]
        hooks = {name: slack.url_for(f"/hooks/{name}") for name in ("ada", "bo")}
        for name, hook in hooks.items():
            app.store.people.add(name, NOW, channels={ChannelKind.SLACK: hook})
        for day in (1, 2, 3):
            for name, replies in (("bo", [200]), ("ada", [200, 400])):
                user, (channel,) = app.store.people.subscribers([name])[0]
                app.store.digests.create(
                    user.id, channel.id, date(2026, 11, 26) + timedelta(days=day),
                    items[: len(replies) * 15], NOW, cold_start=False,
                )  # fmt: skip
                for status in replies:
                    slack.reply(status, "ok" if status == 200 else "invalid_blocks")
                jobs.deliver(app, NOW + timedelta(days=day - 1, hours=len(replies)))
        assert app.store.digests.counts() == {"sent": 3, "failed": 3}
        (ada,) = app.store.people.channels_of(app.store.people.get("ada").id)
        assert ada.active and ada.stopped_reason is None


def test_a_slack_channel_that_refuses_the_message_paperwire_made_is_not_stopped(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    # Slack's invalid_blocks (or invalid_payload) refuses the blocks paperwire made, not the
    # webhook, which works: yet three such days stopped the channel as if it were gone, and
    # its subscriber got nothing more, even once paperwire was mended
    with http_server() as slack:
        app = app_factory(make_settings(slack={"transport": "webhook", "min_interval_seconds": 0}))
        users_with_digests(app, 0)
        pid = app.store.papers.find("arxiv:1").id
        for name in ("ada", "bo"):
            hook = slack.url_for(f"/hooks/{name}")
            app.store.people.add(name, NOW, channels={ChannelKind.SLACK: hook})
        for day in (1, 2, 3):
            for name, status in (("bo", 200), ("ada", 400)):
                user, (channel,) = app.store.people.subscribers([name])[0]
                app.store.digests.create(
                    user.id, channel.id, date(2026, 11, 26) + timedelta(days=day),
                    [NewItem(pid, 0.5, "similar", "r")], NOW, cold_start=False,
                )  # fmt: skip
                slack.reply(status, "ok" if status == 200 else "invalid_blocks")
                jobs.deliver(app, NOW + timedelta(days=day - 1))
        assert app.store.digests.counts() == {"sent": 3, "failed": 3}
        (ada,) = app.store.people.channels_of(app.store.people.get("ada").id)
        assert ada.active and ada.stopped_reason is None


def test_a_subscriber_whose_only_channel_paperwire_stopped_can_still_be_edited(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    # every change to such a subscriber (their own page's settings, the console's Save, `users
    # set --digest-hour`) was refused: "user 'u0' would be subscribed with no channel"
    refused = {"u0@x.org": "550 5.1.1 <u0@x.org>: no such user"}
    with _refusing(app_factory, make_settings, refused, 1) as (_server, app):
        users_with_digests(app, 0)
        more_digests(app, 1, 1)
        assert jobs.deliver(app, NOW).sent == 1
        more_digests(app, 1, 0)
        assert jobs.deliver(app, NOW + timedelta(hours=1)).failed == 1
    people = app.store.people
    (u0,) = people.channels_of(people.get("u0").id)
    assert not u0.active and u0.stopped_reason is not None
    people.edit("u0", NOW, changes={"digest_hour": 9}, channels={ChannelKind.EMAIL: "u0@x.org"})
    assert people.get("u0").digest_hour == 9 and people.get("u0").active
    (u0,) = people.channels_of(people.get("u0").id)
    assert not u0.active and u0.stopped_reason is not None  # still stopped, still said why


def test_a_resent_failed_slack_digest_goes_on_from_the_part_slack_refused(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    # the console's Resend of a split Slack digest that failed at its second part sent the
    # first part again: the channel showed it twice (a sent digest's Resend sends it whole)
    with http_server() as slack:
        app, _, digest_id = _a_slack_digest_of_two_parts(app_factory, make_settings, slack)
        slack.reply(200, "ok")
        slack.reply(400, "invalid_blocks")
        jobs.deliver(app, NOW)
        first, second = (r.json()["blocks"] for r in slack.seen("/hooks/a"))
        assert app.store.digests.counts() == {"failed": 1}

        assert app.store.digests.resend(digest_id, NOW + timedelta(hours=1))
        assert jobs.deliver(app, NOW + timedelta(hours=1)).sent == 1
        assert [r.json()["blocks"] for r in slack.seen("/hooks/a")][2:] == [second]

        # sent: a Resend sends it whole (the admin asks for it again)
        assert app.store.digests.resend(digest_id, NOW + timedelta(hours=2))
        assert jobs.deliver(app, NOW + timedelta(hours=2)).sent == 1
        assert [r.json()["blocks"] for r in slack.seen("/hooks/a")][3:] == [first, second]


@BOTH_BACKENDS
def test_a_failed_slack_digest_resent_to_a_new_webhook_goes_there_whole(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    # a Resend goes on from the part Slack refused (2058d47): the channel shows the parts
    # before it. A new webhook (another channel, the old one removed) showed none of them,
    # and got only the rest: the digest goes there whole
    with http_server() as slack:
        app, user_id, digest_id = _a_slack_digest_of_two_parts(app_factory, make_settings, slack)
        slack.reply(200, "ok")
        slack.reply(404, "no_service")
        jobs.deliver(app, NOW)
        first, second = (r.json()["blocks"] for r in slack.seen("/hooks/a"))
        assert app.store.digests.counts() == {"failed": 1}

        app.store.people.set_channel(user_id, ChannelKind.SLACK, slack.url_for("/hooks/b"))
        assert app.store.digests.resend(digest_id, NOW + timedelta(hours=1))
        assert jobs.deliver(app, NOW + timedelta(hours=1)).sent == 1

        # the same parts; their links (the context blocks) name the new channel, not the old
        def text(blocks: list[dict[str, object]]) -> list[dict[str, object]]:
            return [b for b in blocks if b["type"] != "context"]

        got = [r.json()["blocks"] for r in slack.seen("/hooks/b")]
        assert [text(b) for b in got] == [text(first), text(second)]
        assert got[0] != first


@BOTH_BACKENDS
@pytest.mark.parametrize("when", ["while a part is sent", "between the claim and the render"])
def test_a_webhook_changed_while_its_split_digest_goes_out_gets_every_part(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
    when: str,
) -> None:
    """A changed webhook moves the digests to the new channel, and a digest not sent whole
    goes there from its first part (the new webhook has none). Two races skipped the first
    parts there: the worker recorded the part the old webhook had just taken over the move's
    reset of the count, or it went on from the count it had claimed before the move."""
    with http_server() as slack:
        app, user_id, digest_id = _a_slack_digest_of_two_parts(app_factory, make_settings, slack)
        new_hook = slack.url_for("/hooks/b")

        def change_webhook() -> None:
            app.store.people.set_channel(user_id, ChannelKind.SLACK, new_hook)

        if when == "while a part is sent":  # the first part on its way to the old webhook
            slack.on_request = lambda path: change_webhook() if path == "/hooks/a" else None
            slack.reply(200, "ok")
            report = jobs.deliver(app, NOW)  # the rest is the new webhook's: not sent, kept
            assert (report.sent, report.retrying, report.failed) == (0, 0, 0)
            slack.on_request = None
            digest = app.store.digests.content(digest_id).digest
            assert digest.parts_sent == 0 and digest.state == "pending"  # 1 part before
            # the old webhook got the first part only: the second went there too, and the
            # digest was marked sent, the new webhook getting none (second read)
            assert len(slack.seen("/hooks/a")) == 1
        else:  # the first part went out, the second is retried; the change comes mid-claim
            slack.reply(200, "ok")
            slack.reply(500, "internal_error")
            assert jobs.deliver(app, NOW).retrying == 1
            contents = app.store.digests.contents

            def moved_first(*args: Any, **kwargs: Any) -> Any:
                change_webhook()
                return contents(*args, **kwargs)

            monkeypatch.setattr(app.store.digests, "contents", moved_first)
            assert len(slack.seen("/hooks/a")) == 2
        assert jobs.deliver(app, NOW + timedelta(hours=1)).sent == 1
        assert len(slack.seen("/hooks/b")) == 2  # both parts, where it got the second only


def test_the_429_waits_of_a_split_slack_digest_share_one_budget(
    app_factory: Callable[..., App], make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each part of a split digest went through its own send, each with the whole budget of
    # 30 s and 3 retries for the 429s it waits out: a digest of four parts could hold the run
    # up for two minutes (docs: "30 s in all, per message")
    clock = FakeClock()
    slack = dataclasses.replace(
        channels.CHANNELS[ChannelKind.SLACK],
        transport=lambda app: SlackWebhookTransport(
            app.slack_http, min_interval=0.0, sleep=clock.sleep, monotonic=clock.monotonic
        ),
    )
    monkeypatch.setitem(channels.CHANNELS, ChannelKind.SLACK, slack)
    with http_server() as server:
        app, _, digest_id = _a_slack_digest_of_two_parts(app_factory, make_settings, server)
        for status in (429, 200, 429, 200):
            server.reply(status, "ok" if status == 200 else "rate_limited", {"Retry-After": "20"})
        report = jobs.deliver(app, NOW)
        assert clock.sleeps == [20.0]  # the second 20 s would pass the message's 30 s
        assert report.retrying == 1 and len(server.seen("/hooks/a")) == 3
        assert app.store.digests.content(digest_id).digest.parts_sent == 1


def _a_slack_digest_of_two_parts(
    app_factory: Callable[..., App], make_settings: SettingsFactory, slack: HttpServer
) -> tuple[App, int, int]:
    """ada's pending Slack digest of 30 picks to the webhook /hooks/a (two payloads): the
    app, her id and the digest's."""
    papers = [
        PaperIn(key=f"arxiv:{i}", title=f"Paper {i}", abstract="", authors=(), url="",
                published=NOW)
        for i in range(30)
    ]  # fmt: skip
    app = app_factory(make_settings(slack={"transport": "webhook", "min_interval_seconds": 0.0}))
    app.store.papers.upsert(papers, None, NOW)
    items = [NewItem(app.store.papers.find(p.key).id, 0.5, "similar", "r") for p in papers]
    app.store.people.add("ada", NOW, channels={ChannelKind.SLACK: slack.url_for("/hooks/a")})
    user, (channel,) = app.store.people.subscribers(["ada"])[0]
    digest_id = app.store.digests.create(
        user.id, channel.id, date(2026, 11, 27), items, NOW, cold_start=False
    )
    assert digest_id is not None
    return app, user.id, digest_id

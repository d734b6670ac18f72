"""Delivery in worker processes (`delivery.workers` > 1): real processes, a real aiosmtpd
server on 127.0.0.1, both database backends. Every digest goes out exactly once, while the
digests are still being made, and a dead worker does not hang the run."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from daemon import jobs
from daemon.app import App, make_app
from daemon.db.models import DigestState
from daemon.jobs import workers
from daemon.settings import Settings, load_settings
from tests import servers
from tests.daemon.conftest import BOTH_BACKENDS, NOW, SettingsFactory
from tests.daemon.jobs.helpers import digest_states, more_digests, users_with_digests
from tests.servers import SmtpServer, smtp_server


def _app(
    app_factory: Callable[..., App], make_settings: SettingsFactory, server: SmtpServer
) -> App:
    email = {"transport": "smtp", "host": server.host, "port": server.port, "security": "none"}
    delivery = {"workers": 2, "claim_batch": 5}
    return app_factory(make_settings(email=email, delivery=delivery))


def _recipients(server: SmtpServer) -> list[str]:
    return sorted(m.rcpt_tos[0] for m in server.messages)


@BOTH_BACKENDS
def test_two_workers_send_every_due_digest_exactly_once(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    with smtp_server(tls="none", require_starttls=False) as server:
        app = _app(app_factory, make_settings, server)
        ids = users_with_digests(app, 40)
        report = jobs.deliver_due(app, NOW)
        assert report.sent == 40 and report.failed == report.postponed == 0, report.errors
        assert _recipients(server) == sorted(f"u{i}@x.org" for i in range(40))
        assert set(digest_states(app).values()) == {DigestState.SENT}
        assert len(ids) == 40


@BOTH_BACKENDS
def test_digests_go_out_while_the_others_are_still_being_made(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The making (here: three batches of stored digests) waits after each batch until the
    workers have sent it: it would wait forever if they only started at the end."""
    with smtp_server(tls="none", require_starttls=False) as server:
        app = _app(app_factory, make_settings, server)
        batches: list[list[int]] = []

        def make_in_batches(app_: App, now: datetime, **_: Any) -> jobs.DigestReport:
            for n in range(3):
                made = more_digests(app_, 10, 10 * n) if n else users_with_digests(app_, 10)
                batches.append(made)
                deadline = time.monotonic() + 60
                while len(server.messages) < 10 * (n + 1):
                    assert time.monotonic() < deadline, f"batch {n} was not sent while making"
                    time.sleep(0.05)
            return jobs.DigestReport(created=30)

        monkeypatch.setattr(jobs, "make_digests", make_in_batches)
        made, delivered = jobs.digest_and_deliver(app, NOW, force=True)
        assert made.created == 30 and delivered.sent == 30, delivered.errors
        assert _recipients(server) == sorted(f"u{i}@x.org" for i in range(30))


def test_a_worker_that_dies_is_reported_and_the_other_sends_everything(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    with smtp_server(tls="none", require_starttls=False) as server:
        app = _app(app_factory, make_settings, server)
        users_with_digests(app, 20)
        pool = workers.DeliveryWorkers(app, NOW, 2)
        # worker 0 kills itself as it starts, before it could claim anything (killed by the
        # test after its start, it had claimed a batch if the test was paused meanwhile)
        pool._procs[0] = multiprocessing.get_context("spawn").Process(
            target=signal.raise_signal, args=(signal.SIGKILL,), daemon=True
        )
        with pool:
            report = pool.join()
        assert report.sent == 20
        assert any("delivery worker 0 stopped with exit code" in e for e in report.errors)
        assert _recipients(server) == sorted(f"u{i}@x.org" for i in range(20))


def test_an_in_memory_database_delivers_in_this_process(tmp_path: Any) -> None:
    settings = Settings(
        database={"url": "sqlite://"},
        server={"secret_key": "k" * 16, "secret_key_file": f"{tmp_path}/key"},
        delivery={"workers": 4},
    )
    app = make_app(settings)
    try:
        assert workers.worker_count(app) == 1
    finally:
        app.close()


def test_settings_read_from_a_file_reach_the_workers_unchanged(tmp_path: Any) -> None:
    """The daemon's settings are of a class made for its file; a worker gets the same values
    as plain `Settings` (pickling the former failed: "Can't pickle <class 'abc.Settings'>")."""
    config = tmp_path / "paperwire.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/pw.db"\n'
        f'[server]\nsecret_key_file = "{tmp_path}/key"\n'
        "[delivery]\nworkers = 3\n[email]\nconnections = 2\n"
    )
    settings = load_settings(config)
    copy = pickle.loads(pickle.dumps(workers._picklable(settings)))
    assert type(copy) is Settings
    assert copy.model_dump() == settings.model_dump()
    assert copy.delivery.workers == 3 and copy.email.connections == 2


class _Held:
    """The SMTP server's answers while `on`: each connection's first message at once, its
    second once `release` is set and IN_FLIGHT_PAUSE more (time for a worker to see its
    SIGTERM: STOP_POLL is 0.1 s), any later one LATE_PAUSE after it came (sent only by a
    worker that had not seen the signal by then: the test is slower, not wrong; below the
    30 s SMTP timeout). Nothing waits once `on` is cleared."""

    IN_FLIGHT_PAUSE = 0.5
    LATE_PAUSE = 20.0

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.on, self.release = threading.Event(), threading.Event()
        self.on.set()
        real = servers._Handler.handle_DATA

        async def held(handler: Any, server: Any, session: Any, envelope: Any) -> str:
            n = getattr(server, "connection_number", 0)
            before = sum(m.connection == n for m in handler.server.messages)
            if self.on.is_set() and before == 1:
                while not self.release.is_set():
                    await asyncio.sleep(0.01)
                await asyncio.sleep(self.IN_FLIGHT_PAUSE)
            elif self.on.is_set() and before > 1:
                await asyncio.sleep(self.LATE_PAUSE)
            return await real(handler, server, session, envelope)

        monkeypatch.setattr(servers._Handler, "handle_DATA", held)


def test_sigterm_stops_workers_cleanly_and_nothing_is_lost_or_sent_twice(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """systemd stops the whole process group with SIGTERM: each worker finishes its message in
    flight, records it, gives its other claims back and exits 0; the next run sends the rest.
    Each worker's second message is held by the server until the signal is sent: how much
    was sent before it does not depend on how soon the test sends it."""
    held = _Held(monkeypatch)
    with smtp_server(tls="none", require_starttls=False) as server:
        app = _app(app_factory, make_settings, server)
        ids = users_with_digests(app, 40)
        with workers.DeliveryWorkers(app, NOW, 2) as pool:
            deadline = time.monotonic() + 60
            while not all(pool._sent):  # both are running (a worker still starting dies)
                assert time.monotonic() < deadline, "a worker sent nothing"
                time.sleep(0.01)
            for proc in pool._procs:
                os.kill(proc.pid or 0, signal.SIGTERM)
            held.release.set()
            stopped = pool.join()
            assert [proc.exitcode for proc in pool._procs] == [0, 0]
        held.on.clear()
        assert not stopped.errors
        states = digest_states(app)
        sent = [i for i in ids if states[i] == DigestState.SENT]
        assert len(sent) == stopped.sent == len(server.messages) < len(ids)
        rest = jobs.deliver_due(app, NOW)
        assert stopped.sent + rest.sent == len(ids)
        assert _recipients(server) == sorted(f"u{i}@x.org" for i in range(len(ids)))


def test_a_stop_after_one_worker_is_done_stops_the_other(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C or SIGTERM reaching the daemon alone, while one worker still delivers and the
    other is done (it found nothing due and exited): the one delivering finishes its message
    in flight, gives the rest back and exits, and the daemon's job ends. Before, the stop was a
    multiprocessing Event whose set() waits for every process that ever waited on it to wake;
    the worker that had exited never did, so the daemon hung in set() for ever (`paperwire
    run` and `cycle` never exited), holding the Event's lock, and the other worker, unable to
    read it, delivered on."""
    held = _Held(monkeypatch)
    with smtp_server(tls="none", require_starttls=False) as server:
        app = _app(app_factory, make_settings, server)
        ids = users_with_digests(app, 3)  # one claim of 5: the first worker takes them all
        with workers.DeliveryWorkers(app, NOW, 2) as pool:
            joined: list[jobs.DeliveryReport] = []
            joiner = threading.Thread(target=lambda: joined.append(pool.join()), daemon=True)
            joiner.start()
            deadline = time.monotonic() + 60
            # one worker done and gone, the other's second message held in flight
            while not (
                any(proc.exitcode == 0 for proc in pool._procs) and len(server.messages) == 1
            ):
                assert time.monotonic() < deadline, "no worker left, or nothing sent"
                time.sleep(0.01)
            app.stopping.set()  # what the daemon's signal handler does
            held.release.set()
            joiner.join(60)
            assert joined, "the daemon's job hung on the stop"
            assert [proc.exitcode for proc in pool._procs] == [0, 0]
        held.on.clear()
        stopped = joined[0]
        assert not stopped.errors
        states = digest_states(app)
        sent = [i for i in ids if states[i] == DigestState.SENT]
        assert len(sent) == stopped.sent == len(server.messages) == 2  # the one in flight too
        assert stopped.released == 1  # given back, not left to its lease
        app.stopping.clear()
        assert jobs.deliver_due(app, NOW).sent == 1


_PARENT = """
import datetime, pickle, sys, time
from daemon.app import make_app
from daemon.jobs import workers
app = make_app(pickle.loads(open(sys.argv[1], "rb").read()))
now = datetime.datetime(2026, 11, 27, 9, tzinfo=datetime.UTC)
with workers.DeliveryWorkers(app, now, 2) as pool:
    while not all(p.pid for p in pool._procs):
        time.sleep(0.01)
    print(" ".join(str(p.pid) for p in pool._procs), flush=True)
    time.sleep(600)  # the making goes on: the workers wait for what it stores
"""


def _running(pid: int) -> bool:
    """The process exists and is no zombie (an orphan's end is reaped by whoever adopts it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_workers_of_a_killed_daemon_stop(
    app_factory: Callable[..., App], make_settings: SettingsFactory, tmp_path: Any
) -> None:
    """kill -9 of the daemon while digests are being made: no one says the making is over,
    and its workers polled the database for ever (an operations QA pass: 4 minutes on, until
    they were killed by hand). They see their parent gone and stop."""
    import subprocess
    import sys

    with smtp_server(tls="none", require_starttls=False) as server:
        app = _app(app_factory, make_settings, server)
        settings = tmp_path / "settings.pickle"
        settings.write_bytes(pickle.dumps(workers._picklable(app.settings)))
        parent = subprocess.Popen(
            [sys.executable, "-c", _PARENT, str(settings)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert parent.stdout is not None
            pids = [int(p) for p in parent.stdout.readline().split()]
            assert len(pids) == 2 and all(map(_running, pids))
        finally:
            parent.kill()
            parent.wait()
        deadline = time.monotonic() + 60
        while any(map(_running, pids)):
            assert time.monotonic() < deadline, "the workers outlived their daemon"
            time.sleep(0.1)


@BOTH_BACKENDS
def test_a_worker_refused_by_the_relays_limit_leaves_its_digests_to_the_other(
    app_factory: Callable[..., App],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A relay that takes one connection at once, and two workers: the one refused said the
    server down and kept every digest it claimed waiting for a later run, an hour away, while
    the other sent (100 to 200 of 300 postponed with two connections each). It gives them
    back now, and the other sends them. The first message waits until the relay has refused
    the second worker's connection, so that refusal comes while the first holds its own."""
    real = servers._Handler.handle_DATA

    async def held(handler: Any, server: Any, session: Any, envelope: Any) -> str:
        for _ in range(6000):  # a minute at most: then the assertions below say what went wrong
            if handler.server.refused:
                break
            await asyncio.sleep(0.01)
        return await real(handler, server, session, envelope)

    monkeypatch.setattr(servers._Handler, "handle_DATA", held)
    with smtp_server(tls="none", require_starttls=False) as server:
        server.max_connections = 1
        email = {"transport": "smtp", "host": server.host, "port": server.port,
                 "security": "none", "connections": 1}  # fmt: skip
        delivery = {"workers": 2, "claim_batch": 50}
        app = app_factory(make_settings(email=email, delivery=delivery))
        users_with_digests(app, 300)
        report = jobs.deliver_due(app, NOW)
        assert server.refused >= 1
        assert report.sent == 300 and report.postponed == report.failed == 0, report
        assert report.left >= 1 and report.released == 0
        assert _recipients(server) == sorted(f"u{i}@x.org" for i in range(300))
        assert set(digest_states(app).values()) == {DigestState.SENT}


def _deliver_once_alone(*args: Any) -> None:
    """A worker that starts delivering once the parent counts it as the only one live (it
    found the other dead), or after 20 s: then the assertions say what went wrong."""
    live: workers._Live = args[7]
    for _ in range(2000):
        if live.count.value == 1:
            break
        time.sleep(0.01)
    workers._work(*args)


def test_a_killed_worker_is_not_counted_as_delivering(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> None:
    """A worker killed (SIGKILL, the OOM killer) stayed counted among the workers delivering:
    the other, refused by the relay's limit of connections, left its claims to the dead one
    and stopped, and they waited for the next run unsaid (5 digests left, 15 never claimed).
    The parent takes a dead worker off the count: the one left is the last delivering and
    says the server down as before (20 postponed, none left)."""
    with smtp_server(tls="none", require_starttls=False) as server:
        server.max_connections = 0  # every connection refused: '421 4.3.2 Too many …'
        app = _app(app_factory, make_settings, server)
        users_with_digests(app, 20)
        pool = workers.DeliveryWorkers(app, NOW, 2)
        ctx = multiprocessing.get_context("spawn")
        pool._procs[0] = ctx.Process(
            target=signal.raise_signal, args=(signal.SIGKILL,), daemon=True
        )
        args = getattr(pool._procs[1], "_args")  # noqa: B009 (the worker's own arguments)
        pool._procs[1] = ctx.Process(target=_deliver_once_alone, args=args, daemon=True)
        with pool:
            report = pool.join()
        assert any("delivery worker 0 stopped with exit code" in e for e in report.errors)
        assert server.refused >= 1
        assert report.left == 0 and report.postponed == 20, report
        assert server.messages == []

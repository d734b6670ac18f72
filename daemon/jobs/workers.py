"""Delivery in worker processes (`delivery.workers` > 1), alongside the making of digests.

One Python process sends about 400 messages a second, bound by its one core (rendering,
signing links, recording each message). With `delivery.workers = N` the daemon starts N
processes that run the ordinary delivery job (`deliver`) over and over while the digests are
being made, so each batch goes out as soon as it is stored and the work is spread over the
machine's cores. They share nothing but the database: claims and leases already keep two
workers from sending the same digest, and a worker that dies leaves its claims to be taken
over when their lease ends (docs/reliability.md).

A worker stops when it was told the making is over and a delivery run then found nothing due,
or when the daemon is stopping (the message in flight is finished and recorded, the other
claims are given back). Each sends back its report; the caller gets their sum.

A relay that takes fewer connections at once than the workers open (`workers × connections`)
refuses a worker all of its connections while another holds them: that worker gives its claims
back and stops, and the others send them (it kept them waiting for a later run, an hour away:
100 to 200 of 300 digests in the test). The last worker delivering never leaves, and one that
stops while another has just left runs again, so a claim given back is always taken. A worker
killed unannounced (SIGKILL) is taken off the count by the parent, as one that stopped.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from datetime import datetime
from multiprocessing.context import SpawnProcess
from pathlib import Path
from types import TracebackType
from typing import Any

from daemon.app import App
from daemon.db.engine import in_memory
from daemon.jobs.delivery import DeliveryReport, deliver
from daemon.jobs.progress import Progress, no_progress
from daemon.settings import Settings

log = logging.getLogger("paperwire.jobs")

IDLE_WAIT = 0.2  # seconds a worker waits when nothing is due yet (digests are being made)
STOP_POLL = 0.1  # seconds between a worker's looks at the stop signals
JOIN_POLL = 0.25  # seconds between the parent's looks at its workers
STOP_GRACE = 120.0  # seconds stopping workers get to finish their message and give claims back


def worker_count(app: App) -> int:
    """How many delivery processes to use: `delivery.workers`, or 1 (in this process) when
    the database cannot be shared between processes (SQLite in memory)."""
    wanted = app.settings.delivery.workers
    if wanted > 1 and in_memory(app.store.engine):
        log.warning("delivery.workers ignored: an in-memory database is not shared")
        return 1
    return wanted


class DeliveryWorkers:
    """`count` processes delivering whatever is due until `join()` says nothing more will be
    made (or the daemon stops); used as a context manager around the making of digests."""

    def __init__(
        self, app: App, now: datetime, count: int, *, progress: Progress = no_progress
    ) -> None:
        self._app, self._count, self._progress = app, count, progress
        ctx = multiprocessing.get_context("spawn")  # no threads or sockets copied by fork
        self._done, self._stopping = ctx.Event(), _Flag(ctx.Value("b", 0, lock=False))
        self._sent = ctx.Array("q", count, lock=False)  # messages handled, one slot per worker
        # workers delivering (not stopped or left), and how many times one left its claims
        self._live, self._left = ctx.Value("i", count), ctx.Value("q", 0, lock=False)
        self._counted = ctx.Array("b", [1] * count, lock=False)  # by slot, under _live's lock
        self._results: Any = ctx.Queue()
        self._procs: list[SpawnProcess] = [
            ctx.Process(
                target=_work,
                args=(
                    _picklable(app.settings),
                    app.config_file,
                    now,
                    n,
                    self._done,
                    self._stopping,
                    self._sent,
                    _Live(self._live, self._left, self._counted),
                    self._results,
                ),
                name=f"paperwire-deliver-{n}",
                daemon=True,
            )
            for n in range(count)
        ]

    def __enter__(self) -> DeliveryWorkers:
        for proc in self._procs:
            proc.start()
        log.info("delivery workers started", extra={"workers": self._count})
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if any(p.is_alive() for p in self._procs):  # left early (an error): stop them cleanly
            self._stopping.set()
            for proc in self._procs:
                proc.join(STOP_GRACE)
                if proc.is_alive():
                    proc.kill()
                    proc.join()

    def join(self) -> DeliveryReport:
        """Nothing more will be made: wait for the workers to send what is due, and sum their
        reports. A worker that died is reported (its claims are taken over after their lease)."""
        self._done.set()
        report = DeliveryReport()
        pending = dict(enumerate(self._procs))
        while pending:
            if self._app.stopping.is_set():
                self._stopping.set()
            handled = sum(self._sent)
            self._progress("deliveries", handled, handled)
            try:
                n, part = self._results.get(timeout=JOIN_POLL)
            except Exception:  # queue.Empty: look at the workers again
                for n, proc in list(pending.items()):
                    if not proc.is_alive() and proc.exitcode != 0:
                        del pending[n]
                        # killed (SIGKILL): it delivers no more, nor takes claims left to it
                        _Live(self._live, self._left, self._counted).gone(n)
                        report.errors.append(
                            f"delivery worker {n} stopped with exit code {proc.exitcode}; its "
                            "digests are sent by the next run once their lease has run out"
                        )
                        log.error("delivery worker died", extra={"exit_code": proc.exitcode})
                continue
            pending.pop(n, None)
            report.add(part)
        for proc in self._procs:
            proc.join()
        return report


class _Flag:
    """The stop, as the workers see it: a shared byte they poll, set by the parent. Not a
    multiprocessing Event: its set() waits, holding the Event's lock, for every process
    waiting on it to wake, and a worker that exited while its stop-mirror thread waited never
    does: the daemon hung in set() for ever, and the other worker, unable to take the lock to
    read it, delivered on."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)

    def wait(self, timeout: float) -> bool:
        """Whether it is set, looking every STOP_POLL at most until `timeout` is up."""
        deadline = time.monotonic() + timeout
        while not self.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, STOP_POLL))
        return True


class _Live:
    """What the workers share to hand claims over: how many deliver (`count`), and how many
    times one left its claims to the others (`left`), both read and changed under one lock,
    and which workers are counted (`counted`, by slot): one that died unannounced (SIGKILL,
    the OOM killer) is taken off the count by the parent (`gone`), or the last one delivering
    would leave its claims to it."""

    def __init__(self, count: Any, left: Any, counted: Any) -> None:
        self.count, self.left, self.counted = count, left, counted

    def others_deliver(self) -> bool:
        """Whether another worker still delivers (this one may leave its claims to it)."""
        with self.count.get_lock():
            return bool(self.count.value > 1)

    def leave(self, slot: int) -> bool:
        """This worker has given its claims back: True, it stops (another delivers); False,
        the others stopped meanwhile, and it delivers on (they would never be taken)."""
        with self.count.get_lock():
            self.left.value += 1
            if self.count.value > 1:
                self._uncount(slot)
                return True
            return False

    def stop(self, slot: int, left_before: int) -> bool:
        """Nothing was due: True, this worker stops; False, another left its claims since
        `left_before` (read before the run that found nothing), so it runs again."""
        with self.count.get_lock():
            if self.left.value != left_before:
                return False
            self._uncount(slot)
            return True

    def out(self, slot: int) -> None:
        """Stopped otherwise (the daemon stopping, an error), or found dead: off the count,
        once."""
        with self.count.get_lock():
            self._uncount(slot)

    gone = out

    def _uncount(self, slot: int) -> None:  # under the lock
        if self.counted[slot]:
            self.counted[slot] = 0
            self.count.value -= 1


def _picklable(settings: Settings) -> Settings:
    """The same settings as an instance of `Settings` itself: the daemon's are of a subclass
    made for its configuration file, which another process cannot import."""
    values = {name: getattr(settings, name) for name in Settings.model_fields}
    return Settings.model_construct(_fields_set=settings.model_fields_set, **values)


def _work(
    settings: Settings,
    config_file: Path | None,
    now: datetime,
    slot: int,
    done: Any,
    stopping: _Flag,
    sent: Any,
    live: _Live,
    results: Any,
) -> None:
    """One worker process: deliver until the making is over and nothing is due."""
    # Ctrl-C reaches the whole process group: the daemon decides, and tells us (`stopping`).
    # SIGTERM (systemd stops the whole group): stop as the daemon does, the message in flight
    # finished and recorded, the other claims given back.
    asked_to_stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: asked_to_stop.set())

    from daemon.app import make_app
    from daemon.logs import setup_logging

    setup_logging(settings.log.level, as_json=settings.log.json_format)
    app = make_app(settings, config_file=config_file)

    parent = multiprocessing.parent_process()

    def mirror_stop() -> None:  # any stop, seen by this process's delivery job
        # the daemon killed (kill -9, OOM): no one will say the making is over, and the
        # worker would deliver on, then wait, for ever (seen: an operations QA pass)
        while not (
            stopping.wait(STOP_POLL)
            or asked_to_stop.is_set()
            or (parent is not None and not parent.is_alive())
        ):
            pass
        app.stopping.set()

    threading.Thread(target=mirror_stop, name="stop-mirror", daemon=True).start()
    report = DeliveryReport()
    base = 0

    def progress(_: str, done_: int, __: int) -> None:
        sent[slot] = base + done_

    try:
        while not app.stopping.is_set():
            finished = done.is_set()  # read first: what was made before is due in this run
            left_before = live.left.value
            part = deliver(app, now, progress=progress, others_deliver=live.others_deliver)
            report.add(part)
            handled = part.sent + part.retrying + part.failed + part.postponed + part.released
            base += handled
            sent[slot] = base
            if part.left and live.leave(slot):  # the relay's connections are another's
                break
            if handled == 0 and not part.left:
                if finished and live.stop(slot, left_before):
                    break
                if not finished:
                    stopping.wait(IDLE_WAIT)
    except Exception as e:  # the database went away…: say so, the next run resumes
        log.exception("delivery worker failed")
        report.errors.append(f"delivery worker {slot}: {type(e).__name__}: {e}")
    finally:
        live.out(slot)  # nothing if it left or stopped above
        results.put((slot, report))
        app.close()

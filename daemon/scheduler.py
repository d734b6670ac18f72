"""`paperwire run`: APScheduler 3 says *when*; the web app serves the links, the console and
/metrics; SIGTERM stops both.

Ingest and digest jobs run on cron triggers in the configured time zone. A run missed during
downtime is caught up once at start (coalesce, misfire grace), and the digest job itself is
idempotent and catches up on any user whose local digest hour has passed. The configuration
file is watched: a change (from the console, `paperwire config set`, or an editor) is applied
without a restart, and a new schedule reschedules the jobs (a job running meanwhile finishes).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType

import uvicorn
from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from fastapi import FastAPI

from daemon import jobs
from daemon.app import App
from daemon.db.engine import sqlite_trouble
from daemon.errors import ConfigError, PaperwireError
from daemon.logs import cause
from daemon.metrics import Metrics
from daemon.settings import Settings, crontab_trigger, load_settings, same_settings
from daemon.web.pages import make_web

log = logging.getLogger("paperwire.daemon")

CONFIG_WATCH_SECONDS = 10


def _guarded(
    name: str,
    fn: Callable[[App, datetime], object],
    app: App,
    metrics: Metrics | None = None,
    one_at_a_time: threading.Lock | None = None,
) -> Callable[[], None]:
    """The job `fn` as the scheduler runs it: logged, measured, its failure kept to itself.
    Jobs given one `one_at_a_time` lock wait for each other: ingest, digests and the catch-up
    (a digest run that started during the catch-up's ingest made empty digests)."""

    last_error, failures = "", 0  # the runs in a row that failed with the same error

    def run() -> None:
        with one_at_a_time or contextlib.nullcontext():
            _run()

    def _run() -> None:
        nonlocal last_error, failures
        now = app.clock()
        started = time.monotonic()
        failed = False
        try:
            result = fn(app, now)
            seconds = round(time.monotonic() - started, 1)
            done = {"job": name, "seconds": seconds, "result": _summary(result)}
            log.info("job done", extra=done)
            last_error, failures = "", 0
            if metrics is not None:
                metrics.observe(result, now, app.clock() + timedelta(seconds=1))
        except Exception as e:  # the job boundary: log and wait for the next run
            failed = True
            seconds = round(time.monotonic() - started, 1)
            error = cause(e)
            failures = failures + 1 if error == last_error else 1
            last_error = error
            # a SQLite file locked, read-only or on a full disk: which, and what to do
            trouble = sqlite_trouble(e, app.store.engine.url.database or "")
            fix = {"fix": trouble[1]} if trouble else {}
            stopped = jobs.stopped_report(e)  # an ingest the database stopped: what it did
            if metrics is not None and stopped is not None:
                metrics.observe(stopped, now, app.clock())
            if failures == 1:
                log.exception("job failed", extra={"job": name, "seconds": seconds, **fix})
            else:  # the same again (the database still down): one line, its traceback is above
                again = {"job": name, "seconds": seconds, "error": error, "failed_runs": failures}
                log.error("job failed", extra={**again, **fix})
        finally:
            if metrics is not None:
                metrics.ran(name, time.monotonic() - started, failed=failed)

    return run


def _summary(result: object) -> str:
    if isinstance(result, tuple):  # a job of several parts (the catch-up)
        return " ".join(filter(None, map(_summary, result)))
    if isinstance(result, jobs.IngestReport):
        left = f" left_feeds={result.feeds_left}" if result.feeds_left else ""  # the database's
        stopped = f" stopped_feeds={result.feeds_stopped}" if result.feeds_stopped else ""
        return f"new={result.papers_new} failed_feeds={result.feeds_failed}{left}{stopped}"
    if isinstance(result, jobs.DigestReport):
        return f"digests={result.created} users={result.users}"
    if isinstance(result, jobs.DeliveryReport):
        return (
            f"sent={result.sent} retrying={result.retrying} postponed={result.postponed} "
            f"failed={result.failed}"
        )
    return ""


def _digest_and_deliver(app: App, now: datetime) -> jobs.DeliveryReport:
    delivered = jobs.digest_and_deliver(app, now)[1]
    jobs.prune_digests(app, now)  # then the digests past `digest.keep_days` go
    return delivered


def _digest_job(
    app: App, now: datetime
) -> jobs.DeliveryReport | tuple[jobs.IngestReport, jobs.DeliveryReport]:
    """The scheduled digest run: the feeds first when an ingest run came due since they were
    last fetched. A machine woken from days asleep in the minutes after a digest run's time
    ran that run (late by less than DIGEST_GRACE_SECONDS: not missed, no catch-up) before the
    ingest, and made the day's digests from the papers fetched before the sleep. An ingest
    that fails here is logged and the digests are made all the same."""
    if not _ingest_owed(app, now):
        return _digest_and_deliver(app, now)
    log.info("feeds not fetched since an ingest run was due: fetching them first")
    try:
        ingested = jobs.ingest(app, now)
    except Exception as e:  # the digests owed are made all the same
        log.exception("job failed", extra={"job": "ingest before the digests"})
        ingested = jobs.stopped_report(e) or jobs.IngestReport()  # what it did: in the metrics
    return ingested, _digest_and_deliver(app, now)


def _ingest_owed(app: App, now: datetime) -> bool:
    """Whether a run of `schedule.ingest_cron` came due since the enabled feeds were last
    fetched (a second after, so that a fetch at the run's own time counts as that run)."""
    fetched = [f.last_fetched_at for f in app.store.feeds.all(enabled_only=True)]
    times = [t if t.tzinfo is not None else t.replace(tzinfo=UTC) for t in fetched if t]
    if not times:  # nothing fetched yet: the catch-up at start fetches
        return False
    s = app.settings.schedule
    due = crontab_trigger(s.ingest_cron, s.timezone).get_next_fire_time(
        None, max(times) + timedelta(seconds=1)
    )
    return due is not None and due <= now


def _catch_up(app: App, now: datetime) -> tuple[jobs.IngestReport, jobs.DeliveryReport]:
    """At start: fetch what was missed (conditional GETs make this cheap), then do whatever
    digests are still owed for today. Both reports count in the metrics."""
    ingested = jobs.ingest(app, now)
    return ingested, _digest_and_deliver(app, now)


# A digest run is late by more than this only when the machine slept through it (the daemon
# restarted schedules anew): it is then missed, not run, and `_CatchUpWhenMissed` runs the
# catch-up, which fetches the feeds before making the digests owed. With the whole grace
# (6 hours, longer than the ingest's 4), the woken machine ran the overdue digest run and
# the ingest at once, the digests first: APScheduler runs the latest missed run time of a
# job (coalesce), always within the grace, so no run was missed and no catch-up came.
DIGEST_GRACE_SECONDS = 300


def _digest_grace(grace: int) -> int:
    return min(grace, DIGEST_GRACE_SECONDS)


def make_scheduler(app: App, metrics: Metrics | None = None) -> BackgroundScheduler:
    """The jobs on their schedule; they follow later changes of the settings."""
    sched = app.settings.schedule
    scheduler = BackgroundScheduler(
        timezone=sched.timezone,
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": sched.misfire_grace_seconds,
        },
    )
    tz = sched.timezone
    serial = threading.Lock()  # ingest, digests and the catch-up: one after the other
    scheduler.add_job(
        _guarded("ingest", jobs.ingest, app, metrics, serial),
        crontab_trigger(sched.ingest_cron, tz),
        id="ingest",
        name="ingest feeds",
    )
    # catch up once after downtime: each job only does what is still owed
    catch_up_at = app.clock() + timedelta(seconds=sched.catch_up_delay_seconds)
    digest_trigger = crontab_trigger(sched.digest_cron, tz)
    scheduler.add_job(
        _guarded("digest", _digest_job, app, metrics, serial),
        digest_trigger,
        id="digest",
        name="make and deliver digests",
        misfire_grace_time=_digest_grace(sched.misfire_grace_seconds),
        # a digest run due before the catch-up is the catch-up's: it fetches the feeds first
        # (started at 10:04:58, the 10:05 run made the digests owed from the papers fetched
        # before the downtime)
        next_run_time=digest_trigger.get_next_fire_time(None, catch_up_at + timedelta(seconds=1)),
    )
    scheduler.add_job(
        _guarded("catch-up", _catch_up, app, metrics, serial),
        "date",
        run_date=catch_up_at,
        id="catch-up",
    )
    scheduler.add_listener(_CatchUpWhenMissed(scheduler, app, metrics, serial), EVENT_JOB_MISSED)
    if app.config_file is not None:
        scheduler.add_job(
            ConfigWatch(app),
            "interval",
            seconds=CONFIG_WATCH_SECONDS,
            id="config-watch",
            name="apply a changed configuration file",
        )
    app.settings_hooks.append(lambda old, new: reschedule(scheduler, old, new))
    return scheduler


class _CatchUpWhenMissed:
    """A listener of APScheduler's missed runs: an ingest run missed by more than
    `misfire_grace_seconds`, or a digest run by more than DIGEST_GRACE_SECONDS (the machine
    asleep through it, not restarted: no catch-up at start) starts the catch-up at once.
    Without it the next digest run came first, made the digests owed that day before any feed
    was fetched (empty ones, not sent), and the ingest came up to its interval later."""

    def __init__(
        self,
        scheduler: BackgroundScheduler,
        app: App,
        metrics: Metrics | None,
        serial: threading.Lock,
    ) -> None:
        self.scheduler, self.app, self.metrics, self.serial = scheduler, app, metrics, serial

    def __call__(self, event: JobExecutionEvent) -> None:
        if event.job_id not in ("ingest", "digest"):
            return
        log.warning(
            "run missed, catching up",
            extra={"job": event.job_id, "scheduled": str(event.scheduled_run_time)},
        )
        # the two jobs missed together start one catch-up (the second replaces the first,
        # or finds it running and is skipped)
        self.scheduler.add_job(
            _guarded("catch-up", _catch_up, self.app, self.metrics, self.serial),
            id="catch-up-missed",
            replace_existing=True,
        )


def reschedule(scheduler: BackgroundScheduler, old: Settings, new: Settings) -> None:
    """Put the cron jobs on the new schedule (a job running now finishes first; its next run
    follows the new times)."""
    a, b = old.schedule, new.schedule
    for job_id, before, after in (
        ("ingest", a.ingest_cron, b.ingest_cron),
        ("digest", a.digest_cron, b.digest_cron),
    ):
        if scheduler.get_job(job_id) is None:
            continue
        if (before, a.timezone) != (after, b.timezone):
            scheduler.reschedule_job(job_id, trigger=crontab_trigger(after, b.timezone))
            log.info("rescheduled", extra={"job": job_id, "cron": after, "tz": b.timezone})
        if a.misfire_grace_seconds != b.misfire_grace_seconds:
            grace = b.misfire_grace_seconds
            scheduler.modify_job(
                job_id, misfire_grace_time=_digest_grace(grace) if job_id == "digest" else grace
            )
    if (a.digest_cron, a.timezone) != (b.digest_cron, b.timezone) and (
        warning := b.hours_unreached()
    ):
        log.warning(warning)  # as `run` and `config check` say it


class ConfigWatch:
    """A job that applies the configuration file when it has changed (its size or time)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.seen = self._signature()
        self.refused: tuple[tuple[int, int], str] | None = None  # the file's version, its error

    def _signature(self) -> tuple[int, int] | None:
        try:
            st = self.app.config_file.stat() if self.app.config_file else None
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size) if st else None

    def __call__(self) -> None:
        now = self._signature()
        if now is None or now == self.seen:
            return
        try:
            new = load_settings(self.app.config_file)
            if same_settings(new, self.app.settings):  # the console's, applied already
                self.seen = now
                return
            self.app.apply_settings(new)  # which logs it
        except Exception as e:
            # said once per version of the file and error, not every 10 s; another error for
            # the same file (a key file it names mended, then refused otherwise) is said too
            refused = now, f"{type(e).__name__}: {e}"
            if refused != self.refused:
                if isinstance(e, ConfigError):
                    log.error("configuration not applied", extra={"error": str(e)})
                else:
                    log.exception("configuration not applied")
                self.refused = refused
            return
        self.seen = now


@dataclass
class Daemon:
    """What `paperwire run` runs: the jobs, the web app (links, console, /metrics) and the
    metrics they share."""

    app: App
    scheduler: BackgroundScheduler
    web: FastAPI
    metrics: Metrics

    def deliver_now(self) -> None:
        """Start a delivery run at once (the console's "retry now" and "resend")."""
        self.scheduler.add_job(
            _guarded("deliver", jobs.deliver, self.app, self.metrics),
            id="deliver-now",
            replace_existing=True,
        )


def make_daemon(app: App) -> Daemon:
    metrics = Metrics(app.store)
    scheduler = make_scheduler(app, metrics)
    daemon = Daemon(app, scheduler, FastAPI(), metrics)
    daemon.web = make_web(app, daemon)
    return daemon


def _why_not(e: OSError) -> str:
    """Why the listening address was refused, and which setting to change."""
    if e.errno == errno.EADDRINUSE:
        return (
            "the port is in use (another `paperwire run`?); stop the other process or set "
            "server.port"
        )
    if e.errno == errno.EADDRNOTAVAIL:
        return (
            "no network interface of this machine has that address; set server.host to one "
            "of its own (127.0.0.1: this machine only, behind a reverse proxy; 0.0.0.0: all)"
        )
    if e.errno == errno.EACCES:
        return (
            "a port below 1024 needs root; set server.port to 1024 or more (8080) and let the "
            "reverse proxy take 80 and 443"
        )
    return f"{e.strerror or e}; check server.host and server.port"


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything starts: a port already taken is one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise PaperwireError(f"cannot listen on {host}:{port}: {_why_not(e)}") from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn, with paperwire's stop: the first SIGTERM/SIGINT asks the jobs to stop (the
    message in flight is finished and recorded, the claims not started are given back) and the
    web server to shut down; a second one ends the process at once."""

    def __init__(self, config: uvicorn.Config, app: App) -> None:
        super().__init__(config)
        self.paperwire = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.paperwire.stopping.is_set():
            log.warning("second signal: exiting now", extra={"signal": sig})
            logging.shutdown()
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)  # die of it, as a second Ctrl-C or systemd's kill expect
            return
        self.paperwire.stopping.set()  # set before it is said: the line means it is set
        log.info("stopping: finishing the work in flight", extra={"signal": sig})
        self.should_exit = True


def serve(app: App, announce: Callable[[], None] = lambda: None) -> None:
    """Run the scheduler and the web app until SIGTERM or Ctrl-C (`announce` runs once the
    address is taken)."""
    server = app.settings.server
    sock = _listen(server.host, server.port)
    daemon = make_daemon(app)
    scheduler, web = daemon.scheduler, daemon.web

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        for job in scheduler.get_jobs():
            log.info("scheduled", extra={"job": job.id, "next_run": job.next_run_time})
        try:
            yield
        finally:
            app.stopping.set()
            # a job in flight sees `stopping` between messages, feeds and batches: waiting for
            # it takes seconds, not the rest of its work
            await asyncio.to_thread(scheduler.shutdown, wait=True)
            log.info("scheduler stopped")

    web.router.lifespan_context = lifespan
    # log_config=None: uvicorn's lines (a request's traceback) go through paperwire's own
    # handler, as key=value or JSON like the rest, not uvicorn's plain format
    config = uvicorn.Config(
        web, host=server.host, port=server.port, log_level="warning", access_log=False,
        log_config=None,
    )  # fmt: skip
    announce()
    _Server(config, app).run(sockets=[sock])

"""`paperwire run`: APScheduler 3 says *when*; the web app serves the links; SIGTERM stops both.

Ingest and digest jobs run on cron triggers in the configured time zone. A run missed during
downtime is caught up once at start (coalesce, misfire grace), and the digest job itself is
idempotent and catches up on any user whose local digest hour has passed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from types import FrameType

import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler
from fastapi import FastAPI

from daemon import jobs
from daemon.app import App
from daemon.settings import crontab_trigger
from daemon.web.pages import make_web

log = logging.getLogger("paperwire.daemon")


def _guarded(name: str, fn: Callable[[App, datetime], object], app: App) -> Callable[[], None]:
    def run() -> None:
        now = app.clock()
        try:
            result = fn(app, now)
            log.info("job done", extra={"job": name, "result": _summary(result)})
        except Exception:  # the job boundary: log and wait for the next run
            log.exception("job failed", extra={"job": name})

    return run


def _summary(result: object) -> str:
    if isinstance(result, jobs.IngestReport):
        return f"new={result.papers_new} failed_feeds={result.feeds_failed}"
    if isinstance(result, jobs.DigestReport):
        return f"digests={result.created} users={result.users}"
    if isinstance(result, jobs.DeliveryReport):
        return (
            f"sent={result.sent} retrying={result.retrying} postponed={result.postponed} "
            f"failed={result.failed}"
        )
    return ""


def _digest_and_deliver(app: App, now: datetime) -> jobs.DeliveryReport:
    return jobs.digest_and_deliver(app, now)[1]


def _catch_up(app: App, now: datetime) -> jobs.DeliveryReport:
    """At start: fetch what was missed (conditional GETs make this cheap), then do whatever
    digests are still owed for today."""
    jobs.ingest(app, now)
    return _digest_and_deliver(app, now)


def make_scheduler(app: App) -> BackgroundScheduler:
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
    scheduler.add_job(
        _guarded("ingest", jobs.ingest, app),
        crontab_trigger(sched.ingest_cron, tz),
        id="ingest",
        name="ingest feeds",
    )
    scheduler.add_job(
        _guarded("digest", _digest_and_deliver, app),
        crontab_trigger(sched.digest_cron, tz),
        id="digest",
        name="make and deliver digests",
    )
    # catch up once after downtime: each job only does what is still owed
    scheduler.add_job(
        _guarded("catch-up", _catch_up, app),
        "date",
        run_date=app.clock() + timedelta(seconds=5),
        id="catch-up",
    )
    return scheduler


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
        log.info("stopping: finishing the work in flight", extra={"signal": sig})
        self.paperwire.stopping.set()
        self.should_exit = True


def serve(app: App) -> None:
    """Run the scheduler and the web app until SIGTERM or Ctrl-C."""
    scheduler = make_scheduler(app)
    web = make_web(app)

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
    server = app.settings.server
    config = uvicorn.Config(
        web, host=server.host, port=server.port, log_level="warning", access_log=False
    )
    _Server(config, app).run()

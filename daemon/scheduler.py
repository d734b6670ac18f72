"""`paperwire run`: APScheduler 3 says *when*; the web app serves the links; SIGTERM stops both.

Ingest and digest jobs run on cron triggers in the configured time zone. A run missed during
downtime is caught up once at start (coalesce, misfire grace), and the digest job itself is
idempotent and catches up on any user whose local digest hour has passed.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

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
        return f"sent={result.sent} retrying={result.retrying} failed={result.failed}"
    return ""


def _digest_and_deliver(app: App, now: datetime) -> jobs.DeliveryReport:
    jobs.make_digests(app, now)
    return jobs.deliver(app, now)


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
            scheduler.shutdown(wait=True)
            log.info("scheduler stopped")

    web.router.lifespan_context = lifespan
    server = app.settings.server
    # uvicorn handles SIGTERM (graceful shutdown), then restores the previous handler and raises
    # the signal again; with the default handler the process would die of it (status -15).
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.run(web, host=server.host, port=server.port, log_level="warning", access_log=False)

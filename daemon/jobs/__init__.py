"""The jobs, in the order of the flow: ingest (feeds → papers), digests (papers × people →
ranked picks, one digest per person, channel and day), delivery (digests → messages → inboxes
and channels). Each is an idempotent function of (app, now): running one twice, late, or on two
machines gives the same result. Catch-all handlers live at these job boundaries, where they
record the failure and go on with the next feed, user or digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from daemon.app import App
from daemon.jobs.delivery import DeliveryReport, build_digest, deliver
from daemon.jobs.digests import (
    DigestReport,
    PlannedDigest,
    is_due,
    is_paused,
    make_digests,
    period_for,
    prune_before,
    prune_digests,
    window_hours,
)
from daemon.jobs.ingest import IngestReport, ingest, stopped_report
from daemon.jobs.progress import Progress, no_progress
from daemon.jobs.recommend import load_recommender
from daemon.jobs.workers import DeliveryWorkers, worker_count


@dataclass
class CycleReport:
    ingest: IngestReport
    digests: DigestReport
    delivery: DeliveryReport


def digest_and_deliver(
    app: App,
    now: datetime,
    *,
    users: Sequence[str] | None = None,
    force: bool = False,
    progress: Progress = no_progress,
) -> tuple[DigestReport, DeliveryReport]:
    """Make the digests owed now and deliver them batch by batch as they are made (the first
    subscribers do not wait for the last to be ranked), then whatever else is due (retries).
    With `delivery.workers` > 1, worker processes deliver while this one makes the digests."""
    workers = worker_count(app)
    if workers > 1:
        with DeliveryWorkers(app, now, workers, progress=progress) as deliverers:
            made = make_digests(app, now, users=users, force=force, progress=progress)
            return made, deliverers.join()
    delivered = DeliveryReport()

    def deliver_batch() -> None:
        delivered.add(deliver(app, now))

    made = make_digests(
        app, now, users=users, force=force, progress=progress, after_batch=deliver_batch
    )
    delivered.add(deliver(app, now, progress=progress))
    return made, delivered


def deliver_due(app: App, now: datetime, *, progress: Progress = no_progress) -> DeliveryReport:
    """Send every due digest: in this process, or in `delivery.workers` processes."""
    workers = worker_count(app)
    if workers > 1:
        with DeliveryWorkers(app, now, workers, progress=progress) as deliverers:
            return deliverers.join()
    return deliver(app, now, progress=progress)


def cycle(
    app: App,
    now: datetime,
    *,
    users: Sequence[str] | None = None,
    progress: Progress = no_progress,
) -> CycleReport:
    """Ingest, score and deliver once, for every subscriber now (whatever their digest hour)."""
    ingested = ingest(app, now, progress=progress)
    made, delivered = digest_and_deliver(app, now, users=users, force=True, progress=progress)
    return CycleReport(ingest=ingested, digests=made, delivery=delivered)


__all__ = [
    "CycleReport",
    "DeliveryReport",
    "DigestReport",
    "IngestReport",
    "PlannedDigest",
    "Progress",
    "build_digest",
    "cycle",
    "deliver",
    "deliver_due",
    "digest_and_deliver",
    "ingest",
    "is_due",
    "is_paused",
    "load_recommender",
    "make_digests",
    "no_progress",
    "period_for",
    "prune_before",
    "prune_digests",
    "stopped_report",
    "window_hours",
]

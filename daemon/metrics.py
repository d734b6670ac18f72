"""`/metrics` (Prometheus text format, `prometheus-client`): what this daemon's jobs did since
it started (counters), and the database's state at each scrape (gauges: digests by state,
feeds failing, papers, subscribers). Counters reset when the daemon restarts, as Prometheus
expects; one-off commands (`paperwire cycle`) are not counted here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daemon.db import Store
from daemon.jobs import DeliveryReport, IngestReport

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 48 * 3600)
# a scheduled job's run: a lab's ingest takes seconds, 100,000 subscribers' digests minutes
JOB_BUCKETS = (1, 5, 15, 60, 180, 300, 600, 1800, 3600, 4 * 3600)
JOBS = ("ingest", "digest", "catch-up", "deliver")


class _StoreState(Collector):
    """Gauges read from the database when Prometheus scrapes."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        from sqlalchemy.exc import SQLAlchemyError

        try:  # the database's gauges, or none while it is out of reach: the counters still go
            counts = self.store.health.counts()
            rows = self.store.feeds.all()
            papers = self.store.papers.count()
        except SQLAlchemyError:
            yield GaugeMetricFamily(
                "paperwire_database_up", "1: the database answered this scrape", value=0
            )
            return
        yield GaugeMetricFamily(
            "paperwire_database_up", "1: the database answered this scrape", value=1
        )
        digests = GaugeMetricFamily(
            "paperwire_digests",
            "Digests by delivery state (postponed: held back by a "
            "transport that could deliver nothing)",
            labels=["state"],
        )
        for state, n in counts.items():
            digests.add_metric([state], n)
        yield digests
        feeds = GaugeMetricFamily(
            "paperwire_feeds",
            "Feeds: enabled and fetching fine, failing, disabled",
            labels=["state"],
        )
        feeds.add_metric(["ok"], sum(1 for f in rows if f.enabled and not f.last_error))
        feeds.add_metric(["failing"], sum(1 for f in rows if f.enabled and f.last_error))
        feeds.add_metric(["disabled"], sum(1 for f in rows if not f.enabled))
        yield feeds
        yield GaugeMetricFamily("paperwire_papers", "Papers stored", value=papers)


class Metrics:
    """The daemon's metrics; the scheduler reports each job's result with `observe`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.registry = CollectorRegistry()
        self.feeds_fetched = Counter(
            "paperwire_feeds_fetched",
            "Feed fetches by outcome (ok, unchanged: 304 Not Modified, failed: the feed's "
            "fault, database_error: left for a database error, fetched again by the next run)",
            ["outcome"],
            registry=self.registry,
        )
        self.papers_ingested = Counter(
            "paperwire_papers_ingested",
            "New papers stored by the ingest job",
            registry=self.registry,
        )
        self.deliveries = Counter(
            "paperwire_deliveries",
            "Delivery outcomes (sent; retrying: failed for now; failed: given up; "
            "postponed: the transport could deliver nothing)",
            ["outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "paperwire_delivery_latency_seconds",
            "Time from a digest being made to its being sent",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "paperwire_job_seconds",
            "How long each run of a scheduled job took, by job (failed runs too)",
            ["job"],
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        self.job_failures = Counter(
            "paperwire_job_failures",
            "Runs of a scheduled job that stopped with an error, by job",
            ["job"],
            registry=self.registry,
        )
        for job in JOBS:
            self.job_seconds.labels(job)
            self.job_failures.labels(job)
        for outcome in ("ok", "unchanged", "failed", "database_error"):
            self.feeds_fetched.labels(outcome)
        for outcome in ("sent", "retrying", "failed", "postponed"):
            self.deliveries.labels(outcome)
        self.registry.register(_StoreState(store))

    def observe(self, result: object, started: datetime, finished: datetime) -> None:
        """Count a job's report in (a tuple: each of its reports); for a delivery, the latency
        of each digest it sent."""
        if isinstance(result, tuple):
            for part in result:
                self.observe(part, started, finished)
        elif isinstance(result, IngestReport):
            self.feeds_fetched.labels("ok").inc(result.feeds_ok)
            self.feeds_fetched.labels("unchanged").inc(result.feeds_unchanged)
            self.feeds_fetched.labels("failed").inc(result.feeds_failed)
            self.feeds_fetched.labels("database_error").inc(result.feeds_left)
            self.papers_ingested.inc(result.papers_new)
        elif isinstance(result, DeliveryReport):
            for outcome in ("sent", "retrying", "failed", "postponed"):
                self.deliveries.labels(outcome).inc(getattr(result, outcome))
            for seconds in self.store.digests.sent_between(started, finished):
                self.latency.observe(max(seconds, 0.0))

    def ran(self, job: str, seconds: float, *, failed: bool = False) -> None:
        """Count one run of a scheduled job: its duration, and whether it failed."""
        self.job_seconds.labels(job).observe(seconds)
        if failed:
            self.job_failures.labels(job).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

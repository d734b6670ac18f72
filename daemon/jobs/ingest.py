"""The ingest job: fetch every enabled feed, parse it, store the new papers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

from daemon.app import App
from daemon.db.engine import answers, database_trouble
from daemon.db.rows import FeedRow
from daemon.errors import FeedError
from daemon.ingest.bounded import ParseBudget, parse_bounded
from daemon.ingest.fetch import Fetched, FetchStopped, expand_url
from daemon.ingest.parse import BROKEN_XML, PaperIn, ParsedFeed
from daemon.jobs.progress import Progress, no_progress
from daemon.logs import cause
from daemon.settings import shown_url

log = logging.getLogger("paperwire.jobs")


@dataclass(frozen=True)
class FeedTrial:
    """What one fetch of a feed would ingest (nothing is stored)."""

    url: str  # with {date} filled in
    papers: list[PaperIn]
    new: int  # not stored yet
    skipped: int  # entries that are not papers
    error: str | None = None
    cut_short: str | None = None  # why entries may be missing: broken XML, too many entries
    moved_to: str | None = None  # the server said the feed moved there for good (301, 308)
    too_old: int = 0  # papers dated before digest.max_age_days: never announced as new
    max_age_days: int = 0
    day: date | None = None  # a `{date}` feed's (Hugging Face's daily papers): its list's day

    def summary(self) -> str:
        """What the fetch found, for the admin: "42 entries (40 new), newest 2026-11-29"."""
        entries = len(self.papers) + self.skipped
        if not entries and _arxiv_listing(self.url):
            return (
                "0 entries: an arXiv listing is empty on the days arXiv announces nothing "
                "(Saturdays, Sundays, holidays); it fills at the next announcement"
            )
        if not entries and self.day is not None:
            return (
                f"0 entries: the list of {self.day} is empty so far; papers join a day's list "
                "during that day and after it, and each ingest reads the days since its last"
            )
        if not entries:
            return "0 entries: the feed is empty now (check that it is the one you meant)"
        dates = [p.published for p in self.papers if p.published is not None]
        newest = f", newest {max(dates):%Y-%m-%d}" if dates else ", none dated"
        skipped = f", {self.skipped} skipped (not papers)" if self.skipped else ""
        noun = "entry" if entries == 1 else "entries"
        cut = f"; {self.cut_short}" if self.cut_short else ""
        old = (
            f"; {'all' if self.too_old == len(self.papers) else self.too_old} dated more than "
            f"{self.max_age_days} days ago (digest.max_age_days): not announced as new"
            if self.too_old
            else ""
        )
        return f"{entries} {noun} ({self.new} new{skipped}){newest}{old}{cut}"


def _arxiv_listing(url: str) -> bool:
    """Whether `url` is one of arXiv's daily listings (rss.arxiv.org/rss/cs.LG, …/atom/…,
    arxiv.org/rss/…), not its API."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host == "rss.arxiv.org":
        return True
    listing_hosts = ("arxiv.org", "www.arxiv.org", "export.arxiv.org")
    return host in listing_hosts and parts.path.startswith("/rss/")


def try_feed(app: App, url: str, now: datetime) -> FeedTrial:
    """Fetch and parse a feed once, as the ingest job would (under the same parse budget: the
    console runs it in the daemon), and say what it would bring; store nothing. A failure is
    returned in `error`, not raised."""
    expanded = expand_url(url, now)
    day = now.astimezone(UTC).date() if "{date}" in url else None  # as expand_url reads it
    try:
        fetched = app.fetcher.fetch(expanded)
        assert fetched.content is not None  # no validators sent: never a 304
        parsed = parse_bounded(
            fetched.content, url=expanded, content_type=fetched.content_type, budget=_budget(app)
        )
    except FeedError as e:
        return FeedTrial(expanded, [], 0, 0, str(e))
    known = app.store.health.known_papers([p.key for p in parsed.papers])
    new = len({p.key for p in parsed.papers} - known)
    cut = _cut_short(parsed)
    skipped = len(parsed.skipped) - len(cut)
    moved = _moved(fetched, url)
    max_age = app.settings.digest.max_age_days
    oldest = now - timedelta(days=max_age)
    too_old = sum(1 for p in parsed.papers if p.published is not None and p.published < oldest)
    return FeedTrial(
        expanded,
        list(parsed.papers),
        new,
        skipped,
        cut_short=cut[0] if cut else None,
        moved_to=moved,
        too_old=too_old,
        max_age_days=max_age,
        day=day,
    )


def _moved(fetched: Fetched, feed_url: str) -> str | None:
    """Where a feed's server says it moved for good (301, 308); None for a `{date}` feed,
    whose address is made anew each day: where today's moved is not the feed's."""
    return fetched.moved_to if "{date}" not in feed_url else None


def _budget(app: App) -> ParseBudget:
    """The time and memory a feed's parse may take (`ingest.parse_*`)."""
    ing = app.settings.ingest
    return ParseBudget(seconds=ing.parse_timeout_seconds, memory_mb=ing.parse_memory_mb)


def _cut_short(parsed: ParsedFeed) -> list[str]:
    """The lines of `parsed.skipped` that are no entry but say entries may be missing."""
    return [s for s in parsed.skipped if s.endswith(": not read") or s.startswith(BROKEN_XML)]


@dataclass
class IngestReport:
    feeds_ok: int = 0
    feeds_unchanged: int = 0
    feeds_failed: int = 0
    feeds_left: int = 0  # not stored for a database error: fetched again by the next run
    feeds_stopped: int = 0  # not fetched (or left in flight): the run was asked to stop
    papers_new: int = 0
    papers_known: int = 0
    errors: list[str] = field(default_factory=list)
    database_errors: list[str] = field(default_factory=list)  # "feed: error", the database's


def ingest(app: App, now: datetime, *, progress: Progress = no_progress) -> IngestReport:
    """Fetch, parse and store every enabled feed. One bad feed never stops the others. A
    database error is the database's, not the feed's: the feed is left as it was, for the next
    run; the run goes on after one such error when the database still answers, and stops
    (raising it) when the database does not answer, or fails again."""
    feeds_store = app.store.feeds
    gone = feeds_store.ensure(((f.name, f.url, f.enabled) for f in app.settings.feeds), now)
    if gone:
        log.warning(
            "feeds no longer in the configuration file disabled (`paperwire feeds remove` "
            "deletes them)",
            extra={"feeds": gone},
        )
    report = IngestReport()
    feeds = feeds_store.all(enabled_only=True)
    for i, feed in enumerate(feeds):
        if app.stopping.is_set():  # the daemon is stopping: the next run fetches the rest
            report.feeds_stopped = len(feeds) - i
            break
        progress(f"feed {feed.name}", i, len(feeds))
        try:
            if not _try_one(app, feed, now, report):
                report.feeds_stopped = len(feeds) - i  # this one too: left in flight
                break
        except Exception as e:
            if not database_trouble(e) or _database_failed(app, e, feeds[i:], report):
                setattr(e, _REPORT, report)  # what the run did, for the metrics
                raise
    progress("feeds", len(feeds), len(feeds))
    return report


_REPORT = "paperwire_ingest_report"


def stopped_report(error: BaseException) -> IngestReport | None:
    """The report of the ingest run that `error` stopped (the database failing again or out of
    reach, or a bug): the feeds it stored before, and those it left. None for an error that
    stopped no ingest run."""
    report = getattr(error, _REPORT, None)
    return report if isinstance(report, IngestReport) else None


def _try_one(app: App, feed: FeedRow, now: datetime, report: IngestReport) -> bool:
    """Ingest one feed; its failure is recorded as the feed's, a database error raised. False
    when the run stops there (the daemon stopping)."""
    try:
        _ingest_one(app, feed, now, report)
    except FetchStopped:  # left in flight: not a failure of the feed's
        return False
    except Exception as e:  # the job boundary: record, go on with the next feed
        if app.stopping.is_set():  # cut short by the stop (SIGTERM killed the parser): left
            return False
        if database_trouble(e):
            raise
        message = str(e) if isinstance(e, FeedError) else f"{type(e).__name__}: {e}"
        message = shown_url(message)  # a private feed's ?token= or password is masked
        app.store.feeds.record_fetch(feed.id, now, error=message)
        report.feeds_failed += 1
        report.errors.append(f"{feed.name}: {message}")
        log.warning("feed failed", extra={"feed": feed.name, "error": message})
    return True


def _database_failed(
    app: App, error: Exception, left: Sequence[FeedRow], report: IngestReport
) -> bool:
    """A database error while `left[0]` was ingested: that feed is left as it was, nothing
    recorded (not a failure of the feed's, nor a fetch: the next run fetches it again, and the
    validators of what was not stored are not kept). Whether the run must stop: the database
    does not answer, or this is its second error."""
    said = shown_url(cause(error))
    report.database_errors.append(f"{left[0].name}: {said}")
    again = len(report.database_errors) > 1
    if again or not answers(app.store.engine):
        report.feeds_left += len(left)
        why = "database error again" if again else "database out of reach"
        log.error(
            f"{why}: ingest stopped, the next run fetches the feeds left",
            extra={"feeds_left": [f.name for f in left], "error": said},
        )
        return True
    report.feeds_left += 1
    log.warning(
        "database error: a feed's papers not stored, it is fetched again by the next run",
        extra={"feed": left[0].name, "error": said},
    )
    return False


# a paper dated this far ahead of the ingest is dated by it instead (a feed's 2099 stayed the
# "newest" paper of every digest); a day: a listing's date is the announcement day somewhere
FUTURE_SLACK = timedelta(days=1)


def _not_ahead(papers: Sequence[PaperIn], now: datetime) -> list[PaperIn]:
    ahead = now + FUTURE_SLACK
    return [
        replace(p, published=now) if p.published is not None and p.published > ahead else p
        for p in papers
    ]


# a feed of the day ({date}: Hugging Face's daily papers): the days since its last good fetch
# are read again, the last of them included (papers join a day's list after its last fetch),
# at most this many days back (a daemon down for a month does not read a month of lists)
MISSED_DAYS_MAX = 7


def _missed_days(feed: FeedRow, now: datetime) -> list[date]:
    """The days before today whose list of a `{date}` feed may hold papers not read yet."""
    if "{date}" not in feed.url:
        return []
    today = now.astimezone(UTC).date()
    last = feed.last_ok_at.astimezone(UTC).date() if feed.last_ok_at else today - timedelta(1)
    first = max(last, today - timedelta(days=MISSED_DAYS_MAX))
    return [first + timedelta(days=n) for n in range((today - first).days)]


def _ingest_one(app: App, feed: FeedRow, now: datetime, report: IngestReport) -> None:
    earlier = 0  # new papers of the days missed
    for day in _missed_days(feed, now):
        missed = expand_url(feed.url, day)
        try:  # without validators: they are today's address's
            got = app.fetcher.fetch(missed)
            if got.content is not None:
                new, known, _ = _store(app, feed, missed, got.content, got.content_type, now)
                earlier += new
                report.papers_new += new
                report.papers_known += known
        except FetchStopped:
            raise
        except Exception as e:  # a missed day is a bonus: today's list is what must work
            if database_trouble(e):  # not stored: the feed is left, its missed days read again
                raise
            log.warning(
                "missed day not read",
                extra={"feed": feed.name, "day": str(day), "error": shown_url(str(e))},
            )
    url = expand_url(feed.url, now)
    # validators go to the address they came from only: a {date} feed's are of another day
    ours = feed.validators_url == url
    fetched = app.fetcher.fetch(
        url,
        etag=feed.etag if ours else None,
        last_modified=feed.last_modified if ours else None,
    )
    if moved := _moved(fetched, feed.url):  # followed, and said: it may stop redirecting
        log.warning(
            "feed moved for good: change its address before the old one stops redirecting "
            "(feeds remove, then feeds add with the new one, or its [[feeds]] url)",
            extra={"feed": feed.name, "to": shown_url(moved)},
        )
    if fetched.content is None:
        app.store.feeds.record_fetch(
            feed.id, now, papers=earlier, not_modified=True,
            etag=fetched.etag, last_modified=fetched.last_modified,
        )  # fmt: skip
        report.feeds_unchanged += 1
        log.info("feed unchanged", extra={"feed": feed.name})
        return
    new, known, parsed = _store(app, feed, url, fetched.content, fetched.content_type, now)
    app.store.feeds.record_fetch(
        feed.id,
        now,
        etag=fetched.etag,
        last_modified=fetched.last_modified,
        url=url,
        papers=new + earlier,  # new ones only: a feed fetched six times has not brought more
    )
    report.feeds_ok += 1
    report.papers_new += new
    report.papers_known += known
    log.info(
        "feed ingested",
        extra={"feed": feed.name, "new": new, "known": known, "skipped": len(parsed.skipped)},
    )
    capped = _cut_short(parsed)
    if capped:  # a feed far longer than any real one, or broken: say so, not "skipped=1"
        log.warning("feed cut short", extra={"feed": feed.name, "why": capped[0]})


def _store(
    app: App, feed: FeedRow, url: str, content: bytes, content_type: str | None, now: datetime
) -> tuple[int, int, ParsedFeed]:
    """Parse a fetched feed (bounded in time and memory) and store its papers: (new, known,
    the parsed feed)."""
    parsed = parse_bounded(
        content, url=url, content_type=content_type, budget=_budget(app), stopping=app.stopping
    )
    new, known = app.store.papers.upsert(_not_ahead(parsed.papers, now), feed.id, now)
    return new, known, parsed

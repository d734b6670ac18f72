"""The feeds table: what to fetch, and how each fetch went."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlmodel import Session, col, select

from daemon.db.engine import Repository
from daemon.db.models import Feed
from daemon.db.rows import FeedRow
from daemon.errors import NotFoundError, PaperwireError


class Feeds(Repository):
    def check_new(self, name: str, url: str) -> None:
        """`PaperwireError` when a feed has that name or that address already (checked before
        a test fetch, and again by `add`)."""
        with self.session() as s:
            self._check_new(s, name, url)

    @staticmethod
    def _check_new(s: Session, name: str, url: str) -> None:
        if s.exec(select(Feed).where(Feed.name == name)).first():
            raise PaperwireError(f"feed {name!r} already exists; remove it first or pick a name")
        twin = s.exec(select(Feed).where(Feed.url == url)).first()
        if twin is not None:  # each fetch would bring the same papers twice
            raise PaperwireError(f"feed {twin.name!r} already has the address {url}")

    def add(self, name: str, url: str, now: datetime, *, enabled: bool = True) -> FeedRow:
        with self.session() as s:
            self._check_new(s, name, url)
            feed = Feed(name=name, url=url, enabled=enabled, created_at=now)
            s.add(feed)
            s.commit()
            return FeedRow.of(feed)

    def ensure(self, feeds: Iterable[tuple[str, str, bool]], now: datetime) -> list[str]:
        """Make the feeds declared in the configuration match it (by name): add the missing ones,
        update the URL and `enabled` of the others, and disable those it declared before and no
        longer does. Those are kept, with their history (another configuration, a variable of
        the environment missing, a file half written: declared again, they come back as they
        were); `feeds remove` deletes one. Returns the names of the feeds disabled."""
        with self.session() as s:
            known = {f.name: f for f in s.exec(select(Feed)).all()}
            wanted = set()
            for name, url, enabled in feeds:
                wanted.add(name)
                row = known.get(name)
                if row is None:
                    s.add(Feed(name=name, url=url, enabled=enabled, declared=True, created_at=now))
                elif (row.url, row.enabled, row.declared) != (url, enabled, True):
                    if row.url != url:  # another address: its validators mean nothing there
                        row.url = url
                        _forget_validators(row)
                    _set_enabled(row, enabled, now)
                    row.declared = True
                    s.add(row)
            gone = sorted(n for n, row in known.items() if row.declared and n not in wanted)
            for name in gone:
                row = known[name]
                row.enabled, row.declared = False, False
                s.add(row)
            s.commit()
        return gone

    def set_url(self, name: str, url: str, now: datetime) -> FeedRow:
        """Give a feed a new address (its site moved, without a redirect): its name, papers and
        counts stay; what it knew of the old address goes (the server's validators, the last
        error and the run of failures), and its silence is counted from now (`status`)."""
        with self.session() as s:
            feed = self._named(s, name)
            if feed.url == url:
                return FeedRow.of(feed)
            twin = s.exec(select(Feed).where(Feed.url == url)).first()
            if twin is not None:
                raise PaperwireError(f"feed {twin.name!r} already has the address {url}")
            feed.url = url
            _forget_validators(feed)
            feed.last_error, feed.consecutive_errors = None, 0
            if feed.enabled:
                feed.enabled_at = now
            s.add(feed)
            s.commit()
            return FeedRow.of(feed)

    def get(self, name: str) -> FeedRow:
        """The feed of that name; NotFoundError (saying how to list them) when there is none."""
        with self.read_session() as s:
            return FeedRow.of(self._named(s, name))

    def all(self, *, enabled_only: bool = False) -> list[FeedRow]:
        with self.read_session() as s:
            q = select(Feed).order_by(col(Feed.name))
            if enabled_only:
                q = q.where(col(Feed.enabled).is_(True))
            return [FeedRow.of(f) for f in s.exec(q).all()]

    def remove(self, name: str) -> None:
        with self.session() as s:
            s.delete(self._named(s, name))
            s.commit()

    def set_enabled(self, name: str, enabled: bool, now: datetime) -> None:
        with self.session() as s:
            feed = self._named(s, name)
            _set_enabled(feed, enabled, now)
            s.add(feed)
            s.commit()

    @staticmethod
    def _named(s: Session, name: str) -> Feed:
        feed = s.exec(select(Feed).where(Feed.name == name)).first()
        if feed is None:
            raise NotFoundError(f"no feed named {name!r}; `paperwire feeds list` shows them")
        return feed

    def record_fetch(
        self,
        feed_id: int,
        now: datetime,
        *,
        error: str | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        url: str | None = None,
        papers: int = 0,
        not_modified: bool = False,
    ) -> None:
        """One fetch: its outcome, and on success how many new papers it brought. A fetch that
        brought the feed (a 200) replaces the validators with the ones it came with, `None`
        for one the server no longer sends (kept, it would go with every later request, and
        the server may match it against a feed it no longer describes), and remembers the
        address they came from, `url` (a `{date}` feed's, filled in): they are sent to that
        one only. A 304 (`not_modified`) keeps them, but for one it sends anew (a 304 carries
        the validators a 200 would have)."""
        with self.session() as s:
            feed = s.get(Feed, feed_id)
            if feed is None:  # removed (`paperwire feeds remove`) while the ingest ran
                return
            feed.last_fetched_at = now
            if error is None:
                feed.last_ok_at = now
                feed.last_error = None
                feed.consecutive_errors = 0
                if not not_modified:
                    feed.etag, feed.last_modified = etag, last_modified
                    feed.validators_url = url if etag or last_modified else None
                else:
                    feed.etag = etag or feed.etag
                    feed.last_modified = last_modified or feed.last_modified
                feed.papers_seen += papers
                feed.last_new_papers = papers
            else:
                feed.last_error = error[:1000]
                feed.consecutive_errors += 1
            s.add(feed)
            s.commit()


def _forget_validators(feed: Feed) -> None:
    """The server's validators mean nothing at another address."""
    feed.etag, feed.last_modified, feed.validators_url = None, None, None


def _set_enabled(feed: Feed, enabled: bool, now: datetime) -> None:
    """Switch a feed on or off; one switched on again keeps when (`status` counts its silence
    and failure from then)."""
    if enabled and not feed.enabled:
        feed.enabled_at = now
    feed.enabled = enabled

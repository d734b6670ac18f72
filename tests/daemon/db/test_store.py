"""The store's guarantees: one digest per (user, channel, period), leases that keep two workers
from sending the same digest, papers keyed by identity. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy.exc import NoResultFound

from daemon.app import App
from daemon.db import Store
from daemon.db.digests import NewDigest, NewItem
from daemon.db.models import ChannelKind, DigestState, Outcome
from daemon.db.rows import UserRow
from daemon.errors import NotFoundError, PaperwireError
from daemon.ingest.parse import PaperIn
from tests.daemon.conftest import BOTH_BACKENDS, EMPTY_DATABASE, NOW

pytestmark = BOTH_BACKENDS  # the backend matters here


def _paper(key: str, version: int | None = None, announce: str | None = None) -> PaperIn:
    return PaperIn(
        key=key,
        title=f"Paper {key}",
        abstract="",
        authors=("A. Author",),
        url=f"https://example.org/{key}",
        published=NOW,
        version=version,
        announce_type=announce,
    )


def test_one_digest_per_user_channel_and_period(app_factory: Callable[..., App]) -> None:
    app = app_factory()
    store = app.store
    user = store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
    (channel,) = store.people.subscribers()[0][1]
    store.papers.upsert([_paper("arxiv:1")], None, NOW)
    pid = store.papers.find("arxiv:1").id
    items = [NewItem(pid, 0.5, "similar", "because")]
    first = store.digests.create(
        user.id, channel.id, date(2026, 11, 27), items, NOW, cold_start=False
    )
    again = store.digests.create(
        user.id, channel.id, date(2026, 11, 27), items, NOW, cold_start=False
    )
    assert first is not None and again is None
    assert store.digests.create(
        user.id, channel.id, date(2026, 11, 28), items, NOW, cold_start=False
    )


def test_another_edition_of_a_date_is_made_once_and_a_move_is_recorded_when_made(
    app_factory: Callable[..., App],
) -> None:
    from daemon.db.people import Imported

    store = app_factory().store
    people = store.people
    user = people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
    (channel,) = people.subscribers()[0][1]
    period = date(2026, 11, 27)
    assert store.digests.create(user.id, channel.id, period, [], NOW, cold_start=False)
    # after a move to a zone behind: two runs (two machines) both found edition 0 made
    again = [NewDigest(user.id, channel.id, period, (), False, edition=1)]
    later = NOW + timedelta(hours=20)
    assert list(store.digests.create_many(again, later)) == [(user.id, channel.id)]
    assert store.digests.create_many(again, later) == {}
    assert store.digests.editions({channel.id}, {period}) == {(channel.id, period): (2, later)}
    # the time of a move: recorded by the edits that change the zone, only them
    people.edit("ada", NOW, changes={"display_name": "Ada", "timezone": "UTC"})
    assert people.get("ada").timezone_changed_at is None
    people.edit("ada", NOW, changes={"timezone": "America/Los_Angeles"})
    assert people.get("ada").timezone_changed_at == NOW
    email = {ChannelKind.EMAIL: "ada@lab.example"}
    people.import_many([Imported("ada", email, timezone="America/Los_Angeles")], later)
    assert people.get("ada").timezone_changed_at == NOW
    people.import_many([Imported("ada", email, timezone="Asia/Tokyo")], later)
    assert people.get("ada").timezone_changed_at == later
    people.import_many([Imported("bob", {ChannelKind.EMAIL: "b@lab.example"}, "UTC")], later)
    assert people.get("bob").timezone_changed_at is None  # added: not a move


def test_concurrent_workers_never_claim_the_same_digest(app_factory: Callable[..., App]) -> None:
    app = app_factory()
    store = app.store
    for n in range(20):
        user = store.people.add(f"u{n}", NOW, channels={ChannelKind.EMAIL: f"u{n}@lab.example"})
        (channel,) = [c for u, cs in store.people.subscribers([f"u{n}"]) for c in cs]
        store.digests.create(
            user.id,
            channel.id,
            date(2026, 11, 27),
            [],
            NOW,
            cold_start=False,
            empty_state=DigestState.PENDING,
        )
    claimed: list[list[int]] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        claimed.append(
            [d.digest_id for d in store.digests.claim_due(NOW, timedelta(minutes=10), limit=20)]
        )

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [d for batch in claimed for d in batch]
    assert len(every) == len(set(every)) == 20, claimed
    # a lease that ran out makes the digest claimable again (the worker died)
    assert store.digests.claim_due(NOW + timedelta(minutes=5), timedelta(minutes=10)) == []
    assert len(store.digests.claim_due(NOW + timedelta(minutes=11), timedelta(minutes=10))) == 20


def test_same_paper_twice_is_one_row_and_a_new_version_is_not_news(
    app_factory: Callable[..., App],
) -> None:
    store = app_factory().store
    assert store.papers.upsert(
        [_paper("arxiv:2401.00001", 1), _paper("arxiv:2401.00001", 1)], None, NOW
    ) == (1, 0)
    later = NOW + timedelta(days=3)
    assert store.papers.upsert([_paper("arxiv:2401.00001", 2)], None, later) == (0, 1)
    row = store.papers.find("2401.00001v2")
    assert row.first_seen_at == NOW
    # arXiv's own DOI names the paper too (a paper without that DOI stored: found by its id)
    assert store.papers.find("https://doi.org/10.48550/arXiv.2401.00001").id == row.id
    assert store.papers.find("10.48550/ARXIV.2401.00001v2").id == row.id
    assert store.papers.window(later - timedelta(hours=48), later) == []
    # a replacement of a paper never seen is stored but is not news
    store.papers.upsert([_paper("arxiv:2301.00002", 3, announce="replace")], None, later)
    assert [
        p.key for p in store.papers.window(later - timedelta(hours=1), later + timedelta(1))
    ] == []


@EMPTY_DATABASE
def test_upgrading_a_database_from_the_first_schema_keeps_its_rows(db_url: str) -> None:
    from daemon.db import Store, make_engine
    from daemon.db.engine import schema_revisions, upgrade

    engine = make_engine(db_url)
    upgrade(engine, "0001")
    assert schema_revisions(engine)[0] == "0001"
    with engine.begin() as conn:
        conn.exec_driver_sql(
            'INSERT INTO "user" (name, display_name, timezone, active, created_at) '
            "VALUES ('ada', 'Ada', 'UTC', true, '2026-11-27 08:00:00+00:00')"
        )
    upgrade(engine)
    current, head = schema_revisions(engine)
    assert current == head != "0001"
    assert Store(engine).people.get("ada").display_name == "Ada"
    engine.dispose()


def test_changing_a_channel_address_keeps_its_digests(app_factory: Callable[..., App]) -> None:
    """`users set --email` (same or new address) must not delete the channel's digests: that
    would make and send today's digest a second time and forget which papers were sent."""
    app = app_factory()
    store = app.store
    user = store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
    uid = user.id
    (channel,) = store.people.subscribers()[0][1]
    store.papers.upsert([_paper("arxiv:1")], None, NOW)
    pid = store.papers.find("arxiv:1").id
    period = date(2026, 11, 27)
    assert store.digests.create(
        uid, channel.id, period, [NewItem(pid, 0.5, "similar", "r")], NOW, cold_start=False
    )
    for address in ("ada@lab.example", "ada@new.example"):
        store.people.set_channel(uid, ChannelKind.EMAIL, address)
        (now_channel,) = store.people.subscribers()[0][1]
        assert now_channel.address == address
        assert store.digests.channels_done(uid, period) == {now_channel.id}
        assert store.people.signals([uid])[uid].sent == {pid}
    # the last channel of a subscribed user cannot go: the digest would have nowhere to go
    with pytest.raises(PaperwireError, match="no channel"):
        store.people.set_channel(uid, ChannelKind.EMAIL, None)
    assert store.people.subscribers()[0][1] == [now_channel]
    store.people.set_subscribed(uid, False, NOW)
    store.people.set_channel(uid, ChannelKind.EMAIL, None)
    assert store.people.find()[1][0][1] == []


def test_a_number_too_large_for_an_id_is_not_found_on_every_backend(
    app_factory: Callable[..., App],
) -> None:
    """`paperwire like ada 3000000000`: PostgreSQL raised DataError (integer out of range) and
    SQLite OverflowError for larger numbers, both tracebacks instead of "no stored paper"."""
    app = app_factory()
    for ref in ("3000000000", "99999999999999999999"):
        with pytest.raises(NotFoundError):
            app.store.papers.find(ref)


def test_a_lease_that_ran_out_and_was_taken_over_is_not_renewed(
    app_factory: Callable[..., App],
) -> None:
    store = app_factory().store
    user = store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
    (channel,) = store.people.subscribers()[0][1]
    store.digests.create(
        user.id, channel.id, date(2026, 11, 27), [], NOW, cold_start=False,
        empty_state=DigestState.PENDING,
    )  # fmt: skip
    (first,) = store.digests.claim_due(NOW, timedelta(minutes=10))
    later = NOW + timedelta(minutes=11)  # the first worker is still busy; its lease ran out
    (second,) = store.digests.claim_due(later, timedelta(minutes=10))
    assert first.leased_until is not None and second.leased_until is not None
    renewed = later + timedelta(minutes=10)
    assert store.digests.renew_leases([first.digest_id], first.leased_until, renewed) == set()
    assert store.digests.release([first.digest_id], first.leased_until) == 0
    assert store.digests.renew_leases([second.digest_id], second.leased_until, renewed) == {
        second.digest_id
    }
    # a worker that stops gives back what it did not start: claimable at once
    assert store.digests.claim_due(later, timedelta(minutes=10)) == []
    assert store.digests.release([second.digest_id], renewed) == 1
    (third,) = store.digests.claim_due(later, timedelta(minutes=10))
    assert third.digest_id == second.digest_id


def test_a_feed_address_is_added_once(app_factory: Callable[..., App]) -> None:
    # under two names each fetch stored the same papers twice over (imports/feeds QA)
    store = app_factory().store
    store.feeds.add("cs", "https://a.example/rss", NOW)
    with pytest.raises(PaperwireError, match="feed 'cs' already has the address"):
        store.feeds.add("cs-again", "https://a.example/rss", NOW)
    with pytest.raises(PaperwireError, match="feed 'cs' already exists"):
        store.feeds.add("cs", "https://b.example/rss", NOW)
    assert [f.name for f in store.feeds.all()] == ["cs"]


def test_feeds_declared_in_the_config_follow_it(app_factory: Callable[..., App]) -> None:
    store = app_factory().store
    assert store.feeds.ensure([("cs", "https://a.example/rss", True)], NOW) == []
    (feed,) = store.feeds.all()
    store.feeds.record_fetch(feed.id, NOW, etag='"v1"', last_modified="Thu, 26 Nov 2026")
    store.feeds.ensure([("cs", "https://a.example/rss", True)], NOW)
    assert store.feeds.all()[0].etag == '"v1"'  # nothing changed
    # the admin fixes the URL in the file: the old validators are dropped with the old address
    store.feeds.ensure([("cs", "https://b.example/rss", False)], NOW)
    (feed,) = store.feeds.all()
    assert (feed.url, feed.enabled, feed.etag, feed.last_modified) == (
        "https://b.example/rss",
        False,
        None,
        None,
    )
    # a feed taken out of the file is no longer fetched (it was, on and on), but kept with
    # its history: another configuration or a missing variable must not delete it (second
    # read); declared again, it is as the file says. One added with `feeds add` is the
    # admin's: the file never declared it
    store.feeds.ensure([("cs", "https://b.example/rss", True)], NOW)
    store.feeds.add("mine", "https://c.example/rss", NOW)
    assert store.feeds.ensure([("hf", "https://d.example/rss", True)], NOW) == ["cs"]
    assert sorted(f.name for f in store.feeds.all(enabled_only=True)) == ["hf", "mine"]
    assert sorted(f.name for f in store.feeds.all()) == ["cs", "hf", "mine"]
    assert store.feeds.ensure([], NOW) == ["hf"]  # an empty list disables, deletes nothing
    store.feeds.ensure([("cs", "https://b.example/rss", True)], NOW)
    assert sorted(f.name for f in store.feeds.all(enabled_only=True)) == ["cs", "mine"]
    store.feeds.remove("hf")  # no longer declared: the admin may delete it


def test_an_unknown_time_zone_in_the_database_does_not_stop_the_digests(
    app_factory: Callable[..., App],
) -> None:
    from daemon import jobs

    app = app_factory()
    app.store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
    app.store.people.add("bob", NOW, channels={ChannelKind.EMAIL: "bob@lab.example"})
    app.store.people.update("bob", timezone="Mars/Olympus_Mons")  # edited by hand
    report = jobs.make_digests(app, NOW, force=True)
    assert report.created == 2 and report.failed_users == []


def _four_papers_and_two_readers(store: Store) -> tuple[list[int], UserRow, UserRow]:
    """Four papers (their ids) and two subscribers, ada and bob, without feedback yet."""
    store.papers.upsert([_paper(f"arxiv:{i}") for i in range(1, 5)], None, NOW)
    pid = [store.papers.find(f"arxiv:{i}").id for i in range(1, 5)]
    ada = store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
    bob = store.people.add("bob", NOW, channels={ChannelKind.EMAIL: "bob@lab.example"})
    return pid, ada, bob


def test_libraries_are_every_users_likes_with_times_only_when_asked(
    app_factory: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    import daemon.db.people

    monkeypatch.setattr(daemon.db.people, "FETCH_ROWS", 2)  # the undated read: in several fetches
    store = app_factory().store
    pid, ada, bob = _four_papers_and_two_readers(store)
    store.people.add("eve", NOW, channels={ChannelKind.EMAIL: "eve@lab.example"})  # no likes
    store.people.set_feedback(ada.id, pid[2], 1, NOW + timedelta(minutes=2))
    store.people.set_feedback(ada.id, pid[0], 1, NOW + timedelta(minutes=1))
    store.people.set_feedback(ada.id, pid[1], -1, NOW)  # a dislike is no part of a library
    store.people.set_feedback(bob.id, pid[3], 1, NOW)
    undated = store.people.libraries()
    assert {u: sorted(p for p, _ in likes) for u, likes in undated.items()} == {
        ada.id: sorted([pid[0], pid[2]]),
        bob.id: [pid[3]],
    }
    assert all(at is None for likes in undated.values() for _, at in likes)
    dated = store.people.libraries(dated=True)
    assert [p for p, _ in dated[ada.id]] == [pid[0], pid[2]]  # in the order given
    assert [at for _, at in dated[ada.id]] == [
        NOW + timedelta(minutes=1),
        NOW + timedelta(minutes=2),
    ]


@pytest.mark.parametrize("dated", [False, True])
def test_each_users_likes_come_in_the_order_given_whatever_the_ids(
    app_factory: Callable[..., App], dated: bool
) -> None:
    """A profile sums a user's likes in order (the same bits everywhere): by time given, then
    by id, whatever the order of the papers' or the feedback's ids and the other users'."""
    store = app_factory().store
    pid, ada, bob = _four_papers_and_two_readers(store)
    store.people.set_feedback(bob.id, pid[1], 1, NOW + timedelta(minutes=3))
    store.people.set_feedback(ada.id, pid[3], 1, NOW + timedelta(minutes=2))
    store.people.set_feedback(ada.id, pid[0], 1, NOW + timedelta(minutes=1))
    store.people.set_feedback(bob.id, pid[2], 1, NOW)
    store.people.set_feedback(ada.id, pid[2], 1, NOW + timedelta(minutes=2))  # same time: by id
    signals = store.people.signals([bob.id, ada.id], dated=dated)
    assert [p for p, _ in signals[ada.id].likes] == [pid[0], pid[3], pid[2]]
    assert [p for p, _ in signals[bob.id].likes] == [pid[2], pid[1]]


def test_signals_of_more_users_than_one_statement_takes(
    app_factory: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    import daemon.db.people

    monkeypatch.setattr(daemon.db.people, "IN_CHUNK", 7)  # PostgreSQL: ≤ 65,535 parameters
    app = app_factory()
    store = app.store
    ada = store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
    store.papers.upsert([_paper("arxiv:1")], None, NOW)
    store.people.set_feedback(ada.id, store.papers.find("arxiv:1").id, 1, NOW)
    ids = [*range(ada.id + 1, ada.id + 20), ada.id, *range(ada.id + 20, ada.id + 30)]
    signals = store.people.signals(ids)
    assert list(signals) == ids and len(signals[ada.id].likes) == 1


def test_signals_without_the_times_of_the_likes(app_factory: Callable[..., App]) -> None:
    app = app_factory()
    store = app.store
    ada = store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
    store.papers.upsert([_paper("arxiv:1"), _paper("arxiv:2"), _paper("arxiv:3")], None, NOW)
    first, second, disliked = (store.papers.find(f"arxiv:{i}").id for i in (1, 2, 3))
    store.people.set_feedback(ada.id, second, 1, NOW)
    store.people.set_feedback(ada.id, first, 1, NOW + timedelta(hours=1))
    store.people.set_feedback(ada.id, disliked, -1, NOW)
    dated = store.people.signals([ada.id])[ada.id]
    undated = store.people.signals([ada.id], dated=False)[ada.id]
    assert dated.likes == ((second, NOW), (first, NOW + timedelta(hours=1)))
    assert undated.likes == ((second, None), (first, None))  # the same order, by time
    assert undated.dislikes == dated.dislikes == (disliked,)


def test_signals_read_the_papers_of_recent_digests_only_when_asked(
    app_factory: Callable[..., App],
) -> None:
    """The digest job asks for the papers sent since its window began (older ones cannot be
    candidates again); everyone else sees every paper ever sent."""
    app = app_factory()
    store = app.store
    ada = store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
    (channel,) = store.people.subscribers()[0][1]
    store.papers.upsert([_paper("arxiv:1"), _paper("arxiv:2")], None, NOW)
    old, new = (store.papers.find(f"arxiv:{i}").id for i in (1, 2))
    for days, pid in ((10, old), (0, new)):
        made = NOW - timedelta(days=days)
        item = [NewItem(pid, 0.5, "similar", "r")]
        assert store.digests.create(ada.id, channel.id, made.date(), item, made, cold_start=False)
    assert store.people.signals([ada.id])[ada.id].sent == {old, new}
    since = NOW - timedelta(days=2)
    assert store.people.signals([ada.id], sent_since=since)[ada.id].sent == {new}


def test_the_papers_of_a_digest_given_up_on_are_not_counted_as_sent(
    app_factory: Callable[..., App],
) -> None:
    # a bounced digest was never read: tomorrow's may offer its papers again (QA: they were
    # left out for good, while a pending digest's are on their way)
    store = app_factory().store
    ada = store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
    (channel,) = store.people.subscribers()[0][1]
    store.papers.upsert([_paper("arxiv:1"), _paper("arxiv:2")], None, NOW)
    failed, pending = (store.papers.find(f"arxiv:{i}").id for i in (1, 2))
    for days, pid in ((1, failed), (0, pending)):
        made = NOW - timedelta(days=days)
        item = [NewItem(pid, 0.5, "similar", "r")]
        assert store.digests.create(ada.id, channel.id, made.date(), item, made, cold_start=False)
    bounced = store.digests.claim_due(NOW, timedelta(minutes=5))[0].digest_id
    store.digests.finish(bounced, NOW, outcome=Outcome.PERMANENT, detail="550 no such mailbox")
    assert store.digests.get(bounced).state == DigestState.FAILED
    assert store.people.signals([ada.id])[ada.id].sent == {pending}
    # a Slack message given up on after some of its parts went out was read in part: counted
    store.digests.record_part_sent(bounced, 1)
    assert store.people.signals([ada.id])[ada.id].sent == {failed, pending}


def test_signals_are_read_while_another_connection_writes(
    app_factory: Callable[..., App],
) -> None:
    """The digest job reads the next batch's signals while its writer thread stores the last
    batch: the reading connection neither waits for the write lock (SQLite: a plain BEGIN in
    WAL mode; every other transaction takes the lock up front) nor sees uncommitted rows."""
    app = app_factory()
    store = app.store
    user = store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
    store.papers.upsert([_paper("arxiv:1"), _paper("arxiv:2")], None, NOW)
    first, second = (store.papers.find(k).id for k in ("arxiv:1", "arxiv:2"))
    store.people.set_feedback(user.id, first, 1, NOW)
    signals = _while_another_connection_writes(
        store, user.id, second, lambda: store.people.signals([user.id])
    )
    assert isinstance(signals, dict)
    assert [pid for pid, _ in signals[user.id].likes] == [first]  # not the uncommitted like
    assert {pid for pid, _ in store.people.signals([user.id])[user.id].likes} == {first, second}


def test_digests_and_papers_are_read_while_another_connection_writes(
    app_factory: Callable[..., App],
) -> None:
    """A delivery worker reads its batch's digests, and the digest job the papers liked since
    its fit, while the job's writer thread or another worker recording what it sent holds the
    write lock: neither waits for them."""
    app = app_factory()
    store = app.store
    ada = store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
    (channel,) = store.people.subscribers()[0][1]
    store.papers.upsert([_paper("arxiv:1"), _paper("arxiv:2")], None, NOW)
    first, second = (store.papers.find(k).id for k in ("arxiv:1", "arxiv:2"))
    item = [NewItem(first, 0.5, "similar", "close to what you liked")]
    made = store.digests.create(ada.id, channel.id, NOW.date(), item, NOW, cold_start=False)
    assert made is not None
    contents = _while_another_connection_writes(
        store, ada.id, second, lambda: store.digests.contents([made])
    )
    assert isinstance(contents, dict)
    assert [paper.id for _, paper in contents[made].items] == [first]
    # and the papers liked since the model's fit, which the digest job reads per batch
    papers = _while_another_connection_writes(  # (the like of `second` was committed)
        store, ada.id, first, lambda: store.papers.by_ids([first, second])
    )
    assert isinstance(papers, dict) and set(papers) == {first, second}


def _while_another_connection_writes(
    store: Store, user_id: int, paper_id: int, read: Callable[[], object]
) -> object:
    """What `read` returns in another thread while a connection holds the write lock (SQLite:
    BEGIN IMMEDIATE) with a like of `paper_id` by `user_id` uncommitted (committed after);
    fails if it waited."""
    import sqlalchemy as sa

    with store.engine.connect() as writer, writer.begin():
        writer.execute(
            sa.text(
                "INSERT INTO feedback (user_id, paper_id, value, created_at) VALUES (:u, :p, 1, :t)"
            ),
            {"u": user_id, "p": paper_id, "t": NOW},
        )
        done: list[object] = []
        reader = threading.Thread(target=lambda: done.append(read()))
        reader.start()
        reader.join(60)  # a read that waits is refused after SQLite's 30 s busy timeout
        assert done, "the read waited for the writer"
        return done[0]


def test_find_filters_counts_and_pages_in_the_database(app_factory: Callable[..., App]) -> None:
    people = app_factory().store.people
    email, slack = ChannelKind.EMAIL, ChannelKind.SLACK
    hook = "https://hooks.slack.com/services/T0/B0/x"
    people.add("ada", NOW, channels={email: "ada@lab.example"}, display_name="Ada Lovelace")
    people.add("éva", NOW, channels={email: "EVA@Uni.example"}, display_name="Éva Tardos")
    people.add("bob_1", NOW, channels={slack: hook}, display_name="Bob")
    people.add("pct", NOW, channels={email: "pct@x.example"}, display_name="100% sure")
    people.add("under", NOW, channels={email: "u@x.example"}, display_name="a_b")

    def names(text: str, offset: int = 0, limit: int = 100) -> tuple[int, list[str]]:
        total, found = people.find(text, offset=offset, limit=limit)
        return total, [u.name for u, _ in found]

    everyone = sorted(["ada", "éva", "bob_1", "pct", "under"])
    assert names("") == (5, everyone)
    assert names("", offset=2, limit=2) == (5, everyone[2:4])  # a page, the count of all
    assert names("  LAB.Example ") == (1, ["ada"])  # an email address, in any case
    assert names("eva@uni") == (1, ["éva"])
    assert names("éva t") == (1, ["éva"])  # "Éva Tardos": beyond ASCII too (SQLite included)
    assert names("lovelace") == (1, ["ada"])  # the display name
    assert names("%") == (1, ["pct"])  # LIKE's wildcards are the characters themselves
    assert names("_") == (2, ["bob_1", "under"])
    assert names("hooks.slack") == (0, [])  # a webhook is not searched
    _, ((ada, channels), *_) = people.find("ada")
    assert channels == people.channels_of(ada.id) and channels[0].address == "ada@lab.example"


def test_names_from_a_base_are_the_base_and_its_numbered_ones(
    app_factory: Callable[..., App],
) -> None:
    people = app_factory().store.people
    for name in ("ada", "ada-2", "adam", "ada-x", "a_a-2", "aba-2"):
        people.add(name, NOW, channels={ChannelKind.EMAIL: f"{name}@lab.example"})
    assert people.names_from("ada") == {"ada", "ada-2", "ada-x"}
    assert people.names_from("a_a") == {"a_a-2"}  # "_" is no wildcard: "aba-2" is not one
    assert people.names_from("eve") == set()


def test_health_counts_by_utc_day_and_finds_held_back_digests_in_the_database(
    app_factory: Callable[..., App],
) -> None:
    from daemon.db.models import Outcome

    store = app_factory().store
    day = NOW.date()
    midnight = datetime.combine(day, time(0), tzinfo=UTC)
    last_moment = midnight - timedelta(microseconds=1)  # the day before, in UTC
    store.papers.upsert([_paper("arxiv:1")], None, last_moment)
    store.papers.upsert([_paper("arxiv:2"), _paper("arxiv:3")], None, midnight)
    ids = [store.papers.find(k).id for k in ("arxiv:1", "arxiv:2", "arxiv:3")]
    users = [
        store.people.add(n, NOW, channels={ChannelKind.EMAIL: f"{n}@lab.example"})
        for n in ("ada", "bob", "cy", "dee")
    ]
    store.people.set_feedback(users[0].id, ids[0], 1, last_moment)
    store.people.set_feedback(users[0].id, ids[1], 1, midnight + timedelta(hours=23))
    store.people.set_feedback(users[1].id, ids[1], -1, midnight)
    store.people.set_subscribed(users[2].id, False, midnight)
    digests = [
        store.digests.create(u.id, store.people.channels_of(u.id)[0].id, day,
                             [NewItem(ids[2], 0.5, "similar", "r")], NOW, cold_start=False)
        for u in users
    ]  # fmt: skip
    ada, bob, cy, dee = (d for d in digests if d is not None)
    # ada: held back twice; bob: held back, then a temporary error (no longer held back);
    # cy: held back, then sent
    store.digests.postpone(ada, midnight, NOW, "refused")
    store.digests.postpone(ada, midnight + timedelta(hours=1), NOW, "refused again")
    store.digests.postpone(bob, last_moment, NOW, "refused")
    store.digests.finish(bob, midnight, outcome=Outcome.TEMPORARY, retry_at=NOW)
    store.digests.postpone(cy, midnight, NOW, "refused")
    store.digests.finish(cy, midnight + timedelta(minutes=5), outcome=Outcome.SENT)
    # dee: held back, then a temporary error at the same time: the later attempt (by id) decides
    store.digests.postpone(dee, midnight + timedelta(hours=2), NOW, "refused")
    store.digests.finish(
        dee, midnight + timedelta(hours=2), outcome=Outcome.TEMPORARY, retry_at=NOW
    )

    before, today = store.health.days(day - timedelta(days=1), day)
    assert (before.day, today.day) == (day - timedelta(days=1), day)
    assert (before.papers, today.papers) == (1, 2)
    assert (before.feedback, today.feedback) == (1, 2)
    assert (before.unsubscribes, today.unsubscribes) == (0, 1)
    # the day's digests by state add up to them: of the pending ones, ada's is held back now
    assert (before.postponed, today.postponed) == (0, 1)
    assert (today.pending, today.sent) == (2, 1)
    counts = store.health.counts()
    assert (counts["pending"], counts["postponed"], counts["sent"]) == (2, 1, 1)
    held = store.health.deliveries(postponed_only=True)
    assert [(d.id, d.postponed, d.last_error) for d in held] == [(ada, True, "refused again")]
    listed = {d.id: d.postponed for d in store.health.deliveries()}
    assert listed == {ada: True, bob: False, cy: False, dee: False}
    assert store.health.deliveries(postponed_only=True, limit=0) == []


def test_an_import_moves_a_changed_address_to_a_new_channel_and_adds_new_users_with_theirs(
    app_factory: Callable[..., App],
) -> None:
    from daemon.db.people import Imported

    store = app_factory().store
    people = store.people
    email, slack = ChannelKind.EMAIL, ChannelKind.SLACK
    hook = "https://hooks.slack.com/services/T0/B0/x"
    rows = [
        Imported("ada", {email: "ada@lab.example"}),
        Imported("bob", {email: "bob@lab.example"}),
    ]
    assert people.import_many(rows, NOW) == (2, 0, 0)
    ada, bob = people.get("ada"), people.get("bob")
    (ada_mail,) = people.channels_of(ada.id)
    (bob_mail,) = people.channels_of(bob.id)
    store.papers.upsert([_paper("arxiv:1")], None, NOW)
    item = NewItem(store.papers.find("arxiv:1").id, 0.5, "similar", "r")
    digest = store.digests.create(ada.id, ada_mail.id, NOW.date(), [item], NOW, cold_start=False)
    people.set_channel_active(bob.id, bob_mail.id, False, NOW)
    again = [
        Imported("ada", {email: "ada@new.example", slack: hook}, timezone="Europe/Paris"),
        Imported("bob", {email: "bob@lab.example"}),  # the same: bob's stopped channel stays so
        Imported("cy", {email: "cy@lab.example", slack: hook}, display_name="Cy"),
    ]
    assert people.import_many(again, NOW) == (1, 1, 1)
    mail, hooked = people.channels_of(ada.id)
    # a new channel (the old address's links name the old one), with the old one's digests
    assert (mail.address, mail.active) == ("ada@new.example", True) and mail.id != ada_mail.id
    assert (hooked.kind, hooked.address) == (slack, hook)
    assert store.digests.get(digest or 0).channel_id == mail.id  # kept: not made again
    assert people.get("ada").timezone == "Europe/Paris"
    assert [c.active for c in people.channels_of(bob.id)] == [False]
    cy = people.get("cy")
    assert cy.display_name == "Cy"
    assert [(c.kind, c.address) for c in people.channels_of(cy.id)] == [
        (email, "cy@lab.example"),
        (slack, hook),
    ]
    assert people.import_many([Imported("ada", {email: ""})], NOW) == (0, 1, 0)
    assert [c.kind for c in people.channels_of(ada.id)] == [slack]  # the email removed


def test_an_email_address_is_one_users_in_any_case_beyond_ascii_too(
    app_factory: Callable[..., App],
) -> None:
    people = app_factory().store.people
    people.add("eva", NOW, channels={ChannelKind.EMAIL: "Éva@lab.example"})
    with pytest.raises(PaperwireError, match="already the email address of user 'eva'"):
        people.add("other", NOW, channels={ChannelKind.EMAIL: "éVA@LAB.example"})


def test_prune_deletes_old_digests_done_with_and_theirs_in_chunks(
    app_factory: Callable[..., App],
) -> None:
    from daemon.db.models import Outcome

    store = app_factory().store
    store.papers.upsert([_paper("arxiv:1")], None, NOW)
    item = NewItem(store.papers.find("arxiv:1").id, 0.5, "similar", "r")
    today, old = NOW.date(), NOW.date() - timedelta(days=40)
    made: dict[str, int] = {}
    for name, period in (("sent", old), ("failed", old), ("pending", old), ("empty", old),
                         ("recent", today), ("edge", today - timedelta(days=30))):  # fmt: skip
        user = store.people.add(name, NOW, channels={ChannelKind.EMAIL: f"{name}@lab.example"})
        channel = store.people.channels_of(user.id)[0].id
        items = [] if name == "empty" else [item]
        digest = store.digests.create(user.id, channel, period, items, NOW, cold_start=False)
        assert digest is not None
        made[name] = digest
    for name in ("sent", "recent", "edge"):
        store.digests.finish(made[name], NOW, outcome=Outcome.SENT)
    store.digests.finish(made["failed"], NOW, outcome=Outcome.PERMANENT, detail="550 no such user")
    assert store.digests.get(made["empty"]).state == DigestState.EMPTY

    # no chunk begins once told to stop (the time is up, the daemon stops): the next run goes on
    assert store.digests.prune(today - timedelta(days=30), stop=lambda: True) == 0
    assert store.digests.prunable(today - timedelta(days=30)) == 3
    seen: list[int] = []
    assert store.digests.prune(today - timedelta(days=30), 2, pause=0, progress=seen.append) == 3
    assert seen == [2, 3]
    assert store.digests.prunable(today - timedelta(days=30)) == 0
    left = {name for name, i in made.items() if _exists(store, i)}
    assert left == {"pending", "recent", "edge"}  # pending waits; the day of the edge is kept
    assert store.digests.prune(today - timedelta(days=30)) == 0
    with store.engine.connect() as conn:
        for table in ("digestitem", "deliveryattempt"):
            orphans = conn.exec_driver_sql(
                f"SELECT count(*) FROM {table} WHERE digest_id NOT IN (SELECT id FROM digest)"
            ).scalar_one()
            assert orphans == 0, table
    assert len(store.digests.content(made["recent"]).items) == 1


def _exists(store: Store, digest_id: int) -> bool:
    try:
        store.digests.get(digest_id)
    except NoResultFound:
        return False
    return True


def test_last_made_is_each_users_latest_digest_since_a_time(
    app_factory: Callable[..., App],
) -> None:
    """The digest job's `last_made`: per user, the latest digest of any channel made at or after
    `since`, as an aware UTC time; a user whose digests are all older, or who has none, or an
    id of no one, is left out (PostgreSQL reads it as an array, SQLite in lists of ids)."""
    app = app_factory()
    store = app.store
    store.papers.upsert([_paper("arxiv:1")], None, NOW)
    items = [NewItem(store.papers.find("arxiv:1").id, 0.5, "similar", "because")]
    two = {ChannelKind.EMAIL: "ada@lab.example", ChannelKind.SLACK: "https://hooks.example/a"}
    ada = store.people.add("ada", NOW, channels=two)
    bob = store.people.add("bob", NOW, channels={ChannelKind.EMAIL: "bob@lab.example"})
    cy = store.people.add("cy", NOW, channels={ChannelKind.EMAIL: "cy@lab.example"})
    store.people.add("dee", NOW, channels={ChannelKind.EMAIL: "dee@lab.example"})  # none yet
    made = {
        (ada.id, 0): NOW - timedelta(days=3),
        (ada.id, 1): NOW - timedelta(days=1, hours=2),  # the Slack one, later: ada's latest
        (bob.id, 0): NOW - timedelta(days=1),
        (cy.id, 0): NOW - timedelta(days=8),  # before `since`
    }
    for (uid, nth), at in made.items():
        channel = store.people.channels_of(uid)[nth]
        store.digests.create(uid, channel.id, at.date(), items, at, cold_start=False)
    # bob's second digest, the same day on another period: the later of the two counts
    channel = store.people.channels_of(bob.id)[0]
    store.digests.create(bob.id, channel.id, NOW.date(), items, NOW, cold_start=False)
    since = NOW - timedelta(days=7)
    everyone = [ada.id, bob.id, cy.id, ada.id, 10**6]  # a repeat and an unknown id too
    got = store.digests.last_made(everyone, since)
    assert got == {ada.id: NOW - timedelta(days=1, hours=2), bob.id: NOW}
    assert all(at.utcoffset() == timedelta(0) for at in got.values())
    assert store.digests.last_made([cy.id], NOW - timedelta(days=8)) == {
        cy.id: NOW - timedelta(days=8)
    }
    assert store.digests.last_made([], since) == {}

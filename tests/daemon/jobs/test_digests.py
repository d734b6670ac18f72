"""The digest job: subscribers in batches (ranked, stored in one transaction, delivered as they
are made), one query for the digests already made, duplicates left to the unique key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest

from daemon import jobs
from daemon.app import App
from daemon.db.digests import NewDigest, NewItem
from daemon.db.models import ChannelKind, DigestState
from daemon.ingest.parse import PaperIn
from daemon.jobs import digests as digests_job
from tests.daemon.conftest import BOTH_BACKENDS, NOW


def _world(app: App, users: int) -> None:
    papers = [
        PaperIn(key=f"arxiv:{n}", title=f"Graph networks {n}", abstract="", authors=(), url="",
                published=NOW)
        for n in range(6)
    ]  # fmt: skip
    app.store.papers.upsert(papers, None, NOW - timedelta(hours=1))
    for i in range(users):
        app.store.people.add(f"u{i}", NOW, channels={ChannelKind.EMAIL: f"u{i}@lab.example"})


@BOTH_BACKENDS
def test_subscribers_go_through_in_batches_and_are_delivered_as_they_are_made(
    app_factory: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = app_factory()
    _world(app, 5)
    monkeypatch.setattr(digests_job, "USER_BATCH", 2)
    sent_after_each_batch: list[int] = []

    def deliver() -> None:
        jobs.deliver(app, NOW)
        sent_after_each_batch.append(app.store.digests.counts().get(DigestState.SENT, 0))

    report = jobs.make_digests(app, NOW, force=True, after_batch=deliver)
    assert report.created == 5 and report.users == 5 and report.failed_users == []
    assert sent_after_each_batch == [2, 4, 5]  # the first two did not wait for the last
    again = jobs.make_digests(app, NOW, force=True)
    assert again.created == 0 and again.already == 5


@BOTH_BACKENDS
def test_a_digest_made_meanwhile_by_another_worker_is_skipped(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory()
    _world(app, 2)
    (ada, ada_chans), (bob, bob_chans) = app.store.people.subscribers()
    pid = app.store.papers.find("arxiv:1").id
    item = (NewItem(pid, 0.5, "similar", "because"),)
    period = date(2026, 11, 27)
    first = app.store.digests.create_many(
        [NewDigest(ada.id, ada_chans[0].id, period, item, False)], NOW
    )
    both = app.store.digests.create_many(
        [
            NewDigest(ada.id, ada_chans[0].id, period, item, False),
            NewDigest(bob.id, bob_chans[0].id, period, (), False),
        ],
        NOW,
    )
    assert list(first) == [(ada.id, ada_chans[0].id)]
    assert list(both) == [(bob.id, bob_chans[0].id)]  # ada's exists: the unique key skips it
    content = app.store.digests.content(first[(ada.id, ada_chans[0].id)])
    assert [i.reason for i, _ in content.items] == ["because"]  # items of the first insert only
    assert app.store.digests.made({period}) == {
        (ada_chans[0].id, period),
        (bob_chans[0].id, period),
    }

"""The console's subscriber form sets the delivery frequency, the weekly day and a pause, with
the command line's checks; the page says when the next digest comes."""

from __future__ import annotations

import html
from datetime import UTC, date, datetime
from typing import Any

from fastapi.testclient import TestClient

from daemon import jobs
from daemon.db.models import ChannelKind, Frequency
from tests.daemon.web.conftest import ConsoleFactory, log_in


def test_the_subscriber_form_sets_frequency_day_and_pause(
    console_factory: ConsoleFactory,
) -> None:
    console = console_factory()
    app = console.app
    now = app.clock()  # Friday 27 Nov 2026, 08:00 UTC
    people = app.store.people
    people.add("eve", now, channels={ChannelKind.EMAIL: "eve@lab.example"}, timezone="UTC")
    client = TestClient(console.daemon.web, base_url="https://127.0.0.1:8080")
    csrf = log_in(client)

    def edit(**d: str) -> Any:
        data = {"csrf": csrf, "timezone": "UTC", "email": "eve@lab.example", **d}
        return client.post("/admin/subscribers/eve", data=data)

    page = client.get("/admin/subscribers/eve").text
    assert 'id="e-frequency"' in page and 'id="e-weekday"' in page and 'id="e-paused"' in page
    bad = html.unescape(edit(frequency="monthly").text)
    assert "frequency: 'monthly' is not a frequency" in bad
    bad = html.unescape(edit(frequency="weekly", weekday="someday").text)
    assert "day: 'someday' is not a day of the week" in bad
    bad = html.unescape(edit(frequency="daily", paused_until="2026-11-27").text)
    assert "paused until: 2026-11-27 is not after today" in bad
    assert people.get("eve").frequency == Frequency.DAILY  # nothing saved

    r = edit(frequency="weekly", weekday="mon", paused_until="2026-12-10")
    assert "Saved eve" in r.text
    eve = people.get("eve")
    assert (eve.frequency, eve.digest_weekday, eve.paused_until) == (
        Frequency.WEEKLY, 0, date(2026, 12, 10)
    )  # fmt: skip
    page = client.get("/admin/subscribers/eve").text
    assert "weekly on mon, paused until 2026-12-10" in page
    assert "weekly on mon" in client.get("/admin/subscribers").text
    assert "Preview this week&#39;s digest" in page or "Preview this week's digest" in page
    # the next digest: the first Monday from the end of the pause, 07:00 (the default hour)
    assert "2026-12-14" in page.split('id="next-digest">')[1].split("<")[0]
    edit(frequency="daily", weekday="mon", paused_until="")  # the day is ignored for daily
    eve = people.get("eve")
    assert (eve.frequency, eve.digest_weekday, eve.paused_until) == (Frequency.DAILY, None, None)
    # a form without the frequency fields (an older page) leaves them as they are
    people.set_frequency(eve.id, Frequency.WEEKLY, 4)
    edit(hour="9")
    assert people.get("eve").frequency == Frequency.WEEKLY


def test_the_next_digest_after_a_move_to_a_zone_ahead_is_the_next_local_day(
    console_factory: ConsoleFactory, clock: Any
) -> None:
    console = console_factory()
    app = console.app
    people = app.store.people
    # Los Angeles' digest of Wednesday 21 Oct, made at 07:05 there (Thursday 03:05 in Auckland)
    made_at = datetime(2026, 10, 21, 14, 5, tzinfo=UTC)
    ada = people.add(
        "ada", made_at, channels={ChannelKind.EMAIL: "ada@lab.example"},
        timezone="America/Los_Angeles", digest_hour=7,
    )  # fmt: skip
    ((_, (channel,)),) = people.subscribers(["ada"])
    app.store.digests.create(ada.id, channel.id, date(2026, 10, 21), [], made_at, cold_start=False)
    # at Thursday noon in Auckland ada moves there: the job makes Friday's next (07:05 there)
    clock.now = datetime(2026, 10, 21, 23, 30, tzinfo=UTC)
    people.update("ada", timezone="Pacific/Auckland")
    assert jobs.make_digests(app, clock.now).created == 0
    client = TestClient(console.daemon.web, base_url="https://127.0.0.1:8080")
    log_in(client)
    page = client.get("/admin/subscribers/ada").text
    assert page.split('id="next-digest">')[1].split("<")[0] == "2026-10-22 18:05 UTC"


def test_the_next_digest_after_a_move_to_a_zone_behind_is_that_local_days(
    console_factory: ConsoleFactory, clock: Any
) -> None:
    console = console_factory()
    app = console.app
    people = app.store.people
    # Auckland's digest of Thursday 22 Oct, made at 07:05 there (Wednesday 11:05 in Los Angeles)
    made_at = datetime(2026, 10, 21, 18, 5, tzinfo=UTC)
    ada = people.add(
        "ada", made_at, channels={ChannelKind.EMAIL: "ada@lab.example"},
        timezone="Pacific/Auckland", digest_hour=7,
    )  # fmt: skip
    ((_, (channel,)),) = people.subscribers(["ada"])
    app.store.digests.create(ada.id, channel.id, date(2026, 10, 22), [], made_at, cold_start=False)
    # that Wednesday evening ada moves to Los Angeles: Thursday there gets its digest at 07:05
    clock.now = datetime(2026, 10, 22, 4, 0, tzinfo=UTC)  # 21:00 on Wednesday there
    people.edit("ada", clock.now, changes={"timezone": "America/Los_Angeles"})
    client = TestClient(console.daemon.web, base_url="https://127.0.0.1:8080")
    log_in(client)
    clock.now = datetime(2026, 10, 22, 8, 0, tzinfo=UTC)  # 01:00 on Thursday there
    page = client.get("/admin/subscribers/ada").text
    assert page.split('id="next-digest">')[1].split("<")[0] == "2026-10-22 14:05 UTC"

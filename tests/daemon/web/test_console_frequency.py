"""The console's subscriber form sets the delivery frequency, the weekly day and a pause, with
the command line's checks; the page says when the next digest comes."""

from __future__ import annotations

import html
from datetime import date
from typing import Any

from fastapi.testclient import TestClient

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

"""Delivery frequency: daily (the default), weekly on a weekday, paused until a date — each in
the subscriber's own time zone, one digest per (user, channel, period) whatever the changes.

The job tests run the scheduled digest job every hour (as `schedule.digest_cron` does) over
whole weeks, with `now` as a parameter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from daemon import jobs
from daemon.app import App
from daemon.db.engine import table_of
from daemon.db.models import ChannelKind, Digest, DigestItem, Frequency, Paper, User
from daemon.db.rows import PaperRow, UserRow
from daemon.errors import PaperwireError
from daemon.ingest.parse import PaperIn
from daemon.jobs.digests import next_due
from daemon.jobs.preview import preview
from tests.daemon.conftest import BOTH_BACKENDS

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)
# the week of the end of summer time in Europe (Sunday 25 Oct 2026, 03:00 CEST -> 02:00 CET)
WEEK = datetime(2026, 10, 19, 0, 5, tzinfo=UTC)  # Monday 00:05 UTC, as digest_cron "5 * * * *"


def _user(
    tz: str = "Europe/Berlin",
    frequency: Frequency = Frequency.DAILY,
    weekday: int | None = None,
    paused_until: date | None = None,
    hour: int | None = 7,
) -> UserRow:
    return UserRow(
        id=1,
        name="u",
        display_name="u",
        timezone=tz,
        digest_hour=hour,
        max_picks=None,
        active=True,
        unsubscribed_at=None,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        frequency=frequency,
        digest_weekday=weekday,
        paused_until=paused_until,
    )


# ---- periods, due, next digest (pure functions) ------------------------------------------------


def test_a_weekly_period_is_the_delivery_day_of_the_current_week() -> None:
    sunday = _user(frequency=Frequency.WEEKLY, weekday=SUN)
    # Saturday 24 Oct 23:30 UTC is Sunday 25 Oct 00:30 in Berlin (CET, after the change)
    assert jobs.period_for(sunday, datetime(2026, 10, 24, 21, 30, tzinfo=UTC)) == date(2026, 10, 18)
    assert jobs.period_for(sunday, datetime(2026, 10, 24, 23, 30, tzinfo=UTC)) == date(2026, 10, 25)
    for day in range(25, 32):  # all week long, the period is that Sunday
        at = datetime(2026, 10, day, 12, 0, tzinfo=UTC)
        assert jobs.period_for(sunday, at) == date(2026, 10, 25)
    daily = _user()
    assert jobs.period_for(daily, datetime(2026, 10, 27, 12, 0, tzinfo=UTC)) == date(2026, 10, 27)


def test_a_weekly_digest_is_due_on_its_weekday_from_its_hour_across_daylight_saving() -> None:
    sunday = _user(frequency=Frequency.WEEKLY, weekday=SUN)
    # 25 Oct: 07:00 in Berlin is 06:00 UTC (CET); a week earlier it was 05:00 UTC (CEST)
    assert not jobs.is_due(sunday, datetime(2026, 10, 25, 5, 30, tzinfo=UTC), 9)
    assert jobs.is_due(sunday, datetime(2026, 10, 25, 6, 0, tzinfo=UTC), 9)
    assert jobs.is_due(sunday, datetime(2026, 10, 18, 5, 0, tzinfo=UTC), 9)
    assert jobs.is_due(sunday, datetime(2026, 10, 25, 22, 59, tzinfo=UTC), 9)  # a late run
    assert not jobs.is_due(sunday, datetime(2026, 10, 25, 23, 0, tzinfo=UTC), 9)  # Monday there
    assert not jobs.is_due(sunday, datetime(2026, 10, 21, 12, 0, tzinfo=UTC), 9)  # Wednesday
    default_hour = _user(frequency=Frequency.WEEKLY, weekday=SUN, hour=None)
    assert not jobs.is_due(default_hour, datetime(2026, 10, 25, 7, 0, tzinfo=UTC), 9)
    assert jobs.is_due(default_hour, datetime(2026, 10, 25, 8, 0, tzinfo=UTC), 9)


def test_a_pause_holds_until_its_local_date() -> None:
    paused = _user(paused_until=date(2026, 10, 22))
    assert jobs.is_paused(paused, datetime(2026, 10, 21, 21, 59, tzinfo=UTC))  # 23:59 CEST
    assert not jobs.is_paused(paused, datetime(2026, 10, 21, 22, 0, tzinfo=UTC))  # 22 Oct there
    assert not jobs.is_due(paused, datetime(2026, 10, 21, 12, 0, tzinfo=UTC), 7)
    assert jobs.is_due(paused, datetime(2026, 10, 22, 5, 0, tzinfo=UTC), 7)
    assert not jobs.is_paused(_user(), datetime(2026, 10, 21, 12, 0, tzinfo=UTC))


def test_windows_daily_and_weekly() -> None:
    assert jobs.window_hours(_user(), 48) == 48
    assert jobs.window_hours(_user(frequency=Frequency.WEEKLY, weekday=MON), 48) == 48 + 144
    assert jobs.window_hours(_user(frequency=Frequency.WEEKLY, weekday=MON), 24) == 7 * 24


def test_next_due_follows_the_frequency_the_weekday_and_the_pause() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    wednesday_noon = datetime(2026, 10, 21, 10, 0, tzinfo=UTC)  # 12:00 CEST
    daily = _user()
    assert next_due(daily, wednesday_noon, 9, made=False) == wednesday_noon  # due now
    assert next_due(daily, wednesday_noon, 9, made=True) == datetime(2026, 10, 22, 7, tzinfo=berlin)
    sunday = _user(frequency=Frequency.WEEKLY, weekday=SUN)
    sunday_at = next_due(sunday, wednesday_noon, 9, made=True)
    assert sunday_at == datetime(2026, 10, 25, 7, tzinfo=berlin)
    assert sunday_at.astimezone(UTC) == datetime(2026, 10, 25, 6, tzinfo=UTC)  # CET by then
    paused = _user(frequency=Frequency.WEEKLY, weekday=SUN, paused_until=date(2026, 10, 26))
    assert next_due(paused, wednesday_noon, 9, made=False) == datetime(
        2026, 11, 1, 7, tzinfo=berlin
    )
    paused_daily = _user(paused_until=date(2026, 10, 24))
    assert next_due(paused_daily, wednesday_noon, 9, made=False) == datetime(
        2026, 10, 24, 7, tzinfo=berlin
    )
    # on the weekday itself, before the hour: today at the hour; made (forced early): next week
    early = datetime(2026, 10, 25, 4, 0, tzinfo=UTC)
    assert next_due(sunday, early, 9, made=False) == datetime(2026, 10, 25, 7, tzinfo=berlin)
    assert next_due(sunday, early, 9, made=True) == datetime(2026, 11, 1, 7, tzinfo=berlin)
    # a pause stored before pauses were capped, to the last day there is: no OverflowError
    for frequency, weekday in ((Frequency.WEEKLY, SUN), (Frequency.DAILY, None)):
        endless = _user(frequency=frequency, weekday=weekday, paused_until=date.max)
        assert next_due(endless, wednesday_noon, 9, made=False).year == 9999


def test_next_due_when_summer_time_skips_the_digest_hour_is_the_first_time_it_is_due() -> None:
    # Chatham Islands, 27 Sep 2026: 02:45 (+12:45) -> 03:45 (+13:45), 03:00 never comes; the
    # digest of hour 3 is due from 03:45 (14:00 UTC), not 04:00; Berlin skips 02:00-03:00 whole
    for tz, hour, day, first in (
        ("Pacific/Chatham", 3, date(2026, 9, 27), datetime(2026, 9, 26, 14, 0, tzinfo=UTC)),
        ("Europe/Berlin", 2, date(2026, 3, 29), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        ("Australia/Lord_Howe", 2, date(2026, 10, 4), datetime(2026, 10, 3, 15, 30, tzinfo=UTC)),
    ):
        user = _user(tz=tz, hour=hour)
        the_day_before = first - timedelta(hours=12)
        at = next_due(user, the_day_before, 9, made=True)
        assert (at.date(), at.astimezone(UTC)) == (day, first), tz
        assert jobs.is_due(user, first, 9)
        assert not jobs.is_due(user, first - timedelta(seconds=1), 9)
        assert next_due(user, first - timedelta(hours=1), 9, made=False) == at


# ---- the scheduled job, hour after hour ---------------------------------------------------------


def _papers(app: App, start: datetime, days: int) -> None:
    """One paper first seen every 6 hours from `start` on (at 03:05, 09:05, … when the runs are
    at :05 past the hour: never on a window's edge), each more upvoted than the last."""
    for n in range(days * 4):
        seen = start + timedelta(hours=3 + 6 * n)
        app.store.papers.upsert(
            [
                PaperIn(
                    key=f"arxiv:2610.{n:05d}",
                    # words of its own: no two papers are near-duplicates of each other
                    title=f"Zeta{n}kappa and omicron{n}delta",
                    abstract=f"Lambda{n}sigma meets upsilon{n}gamma.",
                    authors=("A. Author",),
                    url=f"https://arxiv.org/abs/2610.{n:05d}",
                    published=seen,
                    upvotes=n,
                )
            ],
            None,
            seen,
        )


def _add(app: App, name: str, tz: str = "Europe/Berlin", hour: int = 7, **frequency: object) -> int:
    user = app.store.people.add(
        name,
        WEEK - timedelta(days=30),
        channels={ChannelKind.EMAIL: f"{name}@lab.example"},
        timezone=tz,
        digest_hour=hour,
    )
    app.store.people.update(name, max_picks=100)
    if frequency:
        app.store.people.set_frequency(user.id, **frequency)  # type: ignore[arg-type]
    return user.id


def _hours(start: datetime, hours: int) -> Iterator[datetime]:
    for h in range(hours):
        yield start + timedelta(hours=h)


def _digests(app: App) -> dict[str, list[tuple[date, datetime, int]]]:
    """Each user's digests: (period, made at, number of papers), in the order made."""
    digest_t, user_t, item_t = table_of(Digest), table_of(User), table_of(DigestItem)
    items = sa.select(sa.func.count()).where(item_t.c.digest_id == digest_t.c.id)
    q = (
        sa.select(user_t.c.name, digest_t.c.period, digest_t.c.created_at, items.scalar_subquery())
        .join(user_t, user_t.c.id == digest_t.c.user_id)
        .order_by(digest_t.c.created_at, digest_t.c.id)
    )
    out: dict[str, list[tuple[date, datetime, int]]] = {}
    with app.store.engine.connect() as conn:
        for name, period, at, count in conn.execute(q):
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
            out.setdefault(name, []).append((period, at.astimezone(UTC), count))
    return out


def _first_seen(app: App, name: str, period: date) -> list[datetime]:
    paper_t, item_t, digest_t = table_of(Paper), table_of(DigestItem), table_of(Digest)
    user_id = app.store.people.get(name).id
    q = (
        sa.select(paper_t.c.first_seen_at)
        .join(item_t, item_t.c.paper_id == paper_t.c.id)
        .join(digest_t, digest_t.c.id == item_t.c.digest_id)
        .where(digest_t.c.user_id == user_id, digest_t.c.period == period)
        .order_by(paper_t.c.first_seen_at)
    )
    with app.store.engine.connect() as conn:
        return [at if at.tzinfo else at.replace(tzinfo=UTC) for (at,) in conn.execute(q)]


@BOTH_BACKENDS
def test_a_week_of_hourly_runs_gives_weekly_subscribers_one_digest_of_the_weeks_papers(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory()
    _papers(app, WEEK - timedelta(days=9), days=17)  # papers before, during and after the week
    _add(app, "berlin", frequency=Frequency.WEEKLY, weekday=SUN)  # the DST Sunday, 07:00
    _add(app, "newyork", tz="America/New_York", hour=9, frequency=Frequency.WEEKLY, weekday=FRI)
    _add(app, "daily")
    runs = list(_hours(WEEK, 8 * 24))  # Monday 19 Oct 00:05 UTC to Tuesday 27 Oct 00:05
    for now in runs:
        jobs.make_digests(app, now)
    made = _digests(app)
    # exactly one each, at the first hourly run from their hour on their day, in their zone
    sunday_7_cet = datetime(2026, 10, 25, 6, 5, tzinfo=UTC)
    friday_9_edt = datetime(2026, 10, 23, 13, 5, tzinfo=UTC)
    assert [(p, at) for p, at, _ in made["berlin"]] == [(date(2026, 10, 25), sunday_7_cet)]
    assert [(p, at) for p, at, _ in made["newyork"]] == [(date(2026, 10, 23), friday_9_edt)]
    # the daily subscriber: every day at 07:00 Berlin (05:00 UTC, 06:00 from the 25th)
    assert [p for p, _, _ in made["daily"]] == [date(2026, 10, d) for d in range(19, 27)]
    assert [at.hour for _, at, _ in made["daily"]] == [5] * 6 + [6] * 2
    # the weekly digest holds the week's papers: 48 hours + 6 days before it was made
    seen = _first_seen(app, "berlin", date(2026, 10, 25))
    window = timedelta(hours=app.settings.digest.window_hours + 6 * 24)
    assert seen[0] >= sunday_7_cet - window and seen[-1] <= sunday_7_cet
    assert len(seen) == window // timedelta(hours=6)  # every paper of the window
    assert max(count for _, _, count in made["daily"]) <= 48 // 6  # a daily one: 2 days at most
    # running again (a second machine, a restart) at the hours digests were made, and at
    # others, makes nothing more
    made_at = {at for digests in made.values() for _, at, _ in digests}
    for now in sorted(made_at | set(runs[::7])):
        again = jobs.make_digests(app, now)
        assert again.created == 0
    assert _digests(app) == made


@BOTH_BACKENDS
def test_a_paused_subscriber_gets_nothing_until_the_date_then_their_frequency_again(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory()
    _papers(app, WEEK - timedelta(days=3), days=20)
    _add(app, "daily", paused_until=date(2026, 10, 22), frequency=Frequency.DAILY)
    # weekly on Wednesday, paused until Thursday: that Wednesday passes, the next one comes
    _add(app, "weekly", frequency=Frequency.WEEKLY, weekday=WED, paused_until=date(2026, 10, 22))
    for now in _hours(WEEK, 17 * 24):
        jobs.make_digests(app, now)
        # force (the one-off `digest` command) does not override a pause either
        if now.date() < date(2026, 10, 21):
            assert jobs.make_digests(app, now, force=True, dry_run=True).planned == []
    made = _digests(app)
    assert [p for p, _, _ in made["daily"]] == [
        date(2026, 10, 22) + timedelta(days=d) for d in range(14)
    ]
    assert [p for p, _, _ in made["weekly"]] == [date(2026, 10, 28), date(2026, 11, 4)]


@BOTH_BACKENDS
def test_switching_frequency_mid_week_never_makes_two_digests_a_day_nor_stops_them(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory()
    _papers(app, WEEK - timedelta(days=3), days=24)
    uid = _add(app, "ada")  # daily, 07:00 Berlin
    switches = {
        # Monday 19 Oct 10:05 UTC, after the day's digest: weekly on Monday -> next Monday
        datetime(2026, 10, 19, 10, 5, tzinfo=UTC): (Frequency.WEEKLY, MON),
        # Tuesday 27 Oct noon, after Monday's weekly: daily again -> Tuesday's at once
        datetime(2026, 10, 27, 12, 5, tzinfo=UTC): (Frequency.DAILY, None),
        # Thursday 29 Oct 03:05 UTC, before that day's: weekly on Thursday -> that very day
        datetime(2026, 10, 29, 3, 5, tzinfo=UTC): (Frequency.WEEKLY, THU),
        # Thursday 29 Oct noon, after it: daily -> Friday on (Thursday's is not made twice)
        datetime(2026, 10, 29, 12, 5, tzinfo=UTC): (Frequency.DAILY, None),
    }
    for now in _hours(WEEK, 13 * 24):
        if now in switches:
            frequency, weekday = switches[now]
            app.store.people.set_frequency(uid, frequency, weekday)
        jobs.make_digests(app, now)
    periods = [p for p, _, _ in _digests(app)["ada"]]
    assert periods == [
        date(2026, 10, 19),  # daily
        date(2026, 10, 26),  # weekly on Monday (nothing from Tuesday 20 to Sunday 25)
        date(2026, 10, 27),  # daily again: that day's, made late (12:05 UTC)
        date(2026, 10, 28),
        date(2026, 10, 29),  # weekly on Thursday, made that day
        date(2026, 10, 30),  # daily again
        date(2026, 10, 31),
    ]
    assert len(set(periods)) == len(periods)
    # no paper twice: the weekly digest after daily ones leaves out what was sent
    sent = [
        at for p in periods for at in _first_seen(app, "ada", p)
    ]  # first-seen times are unique per paper here
    assert len(sent) == len(set(sent))


@BOTH_BACKENDS
def test_moving_to_a_zone_ahead_gives_no_second_digest_that_local_day(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory()
    _papers(app, WEEK - timedelta(days=3), days=14)
    _add(app, "ada", tz="America/Los_Angeles")  # daily, 07:00
    auckland = ZoneInfo("Pacific/Auckland")
    # Wednesday 21 Oct 07:05 in Los Angeles (14:05 UTC) is Thursday 22 Oct 03:05 in Auckland:
    # Wednesday's digest is made; at Thursday noon there ada moves to Auckland
    moved = datetime(2026, 10, 22, 12, tzinfo=auckland).astimezone(UTC) + timedelta(minutes=5)
    for now in _hours(WEEK, 7 * 24):
        if now == moved:
            app.store.people.edit("ada", now, changes={"timezone": "Pacific/Auckland"})
        jobs.make_digests(app, now)
    made = _digests(app)["ada"]
    assert [p for p, _, _ in made] == [
        date(2026, 10, 18),  # Sunday afternoon in Los Angeles at the first run
        date(2026, 10, 19),
        date(2026, 10, 20),
        date(2026, 10, 21),  # made on Thursday 22 Oct at 03:05 in Auckland
        # not Thursday's too at 12:05: that day in Auckland had its digest
        date(2026, 10, 23),  # Friday 07:05 in Auckland, and every day on
        date(2026, 10, 24),
        date(2026, 10, 25),
        date(2026, 10, 26),
    ]
    made_in_auckland = [at.astimezone(auckland) for _, at, _ in made[3:]]
    assert [at.hour for at in made_in_auckland] == [3, 7, 7, 7, 7]
    assert len({at.date() for at in made_in_auckland}) == len(made_in_auckland)
    sent = [at for p, _, _ in made for at in _first_seen(app, "ada", p)]
    assert len(sent) == len(set(sent))  # no paper twice
    # papers first seen since Wednesday's are not lost: Friday's has them (31 hours' worth)
    assert _first_seen(app, "ada", date(2026, 10, 23))[0] < made[3][1] + timedelta(hours=6)


@BOTH_BACKENDS
def test_moving_to_a_zone_behind_gives_that_local_day_its_digest(
    app_factory: Callable[..., App],
) -> None:
    """Auckland's Thursday digest is made on Wednesday 21 Oct at 18:05 UTC, 11:05 in Los
    Angeles; ada moves there that noon. Los Angeles' Thursday found the date made and got no
    digest (papers were not lost: Friday's had them, 44 hours' worth, 7 papers where a day has
    4). It gets a second edition of that date now."""
    app = app_factory()
    _papers(app, WEEK - timedelta(days=3), days=14)
    _add(app, "ada", tz="Pacific/Auckland")  # daily, 07:00
    los_angeles = ZoneInfo("America/Los_Angeles")
    moved = datetime(2026, 10, 21, 12, tzinfo=los_angeles).astimezone(UTC) + timedelta(minutes=5)
    runs = list(_hours(WEEK, 7 * 24))
    for now in runs:
        if now == moved:
            app.store.people.edit("ada", now, changes={"timezone": "America/Los_Angeles"})
        jobs.make_digests(app, now)
    digests = _digests(app)["ada"]
    made = [at.astimezone(los_angeles) for _, at, _ in digests if at >= moved]
    # one digest every local day in Los Angeles from Thursday on, none twice
    assert [at.date() for at in made] == [date(2026, 10, d) for d in range(22, 26)]
    assert [at.hour for at in made] == [7, 7, 7, 7]
    assert _editions(app, "ada")[-5:] == [
        (date(2026, 10, 22), 0),  # Auckland's, made on Wednesday 11:05 in Los Angeles
        (date(2026, 10, 22), 1),  # Los Angeles'
        (date(2026, 10, 23), 0),
        (date(2026, 10, 24), 0),
        (date(2026, 10, 25), 0),
    ]
    # no paper twice, none lost: each holds those first seen since the one before, a day's
    sent = [at for p in {p for p, _, _ in digests} for at in _first_seen(app, "ada", p)]
    assert len(sent) == len(set(sent))
    # Los Angeles' Thursday: the 20 hours' since Auckland's (a paper every 6 hours), then a day's
    assert [n for _, at, n in digests if at >= moved] == [3, 4, 4, 4]
    # running again (a second machine, a restart after a crash) makes nothing more
    for now in runs[runs.index(moved) :]:
        assert jobs.make_digests(app, now).created == 0
    assert _digests(app)["ada"] == digests


def _editions(app: App, name: str) -> list[tuple[date, int]]:
    """A user's digests as (period, edition), in the order made."""
    digest_t = table_of(Digest)
    q = (
        sa.select(digest_t.c.period, digest_t.c.edition)
        .where(digest_t.c.user_id == app.store.people.get(name).id)
        .order_by(digest_t.c.created_at, digest_t.c.id)
    )
    with app.store.engine.connect() as conn:
        return [(p, e) for p, e in conn.execute(q)]


THURSDAY_IN_AUCKLAND = datetime(2026, 10, 21, 18, 5, tzinfo=UTC)  # 07:05 there, Thursday 22


@BOTH_BACKENDS
@pytest.mark.parametrize(
    ("moves", "thursdays"),
    [
        # west twice in a day: Berlin's Thursday begins after Auckland's digest (Wednesday
        # 22:00 UTC), Los Angeles' after Berlin's (Thursday 05:05 UTC): a digest in each
        pytest.param(
            {19: "Europe/Berlin", 30: "America/Los_Angeles"},
            [(18, 0), (29, 1), (38, 2)],  # hours after Wednesday 00:05 UTC, edition
            id="west-twice",
        ),
        # west, then back before Los Angeles' Thursday: Auckland's Thursday had its digest
        pytest.param(
            {19: "America/Los_Angeles", 21: "Pacific/Auckland"}, [(18, 0)], id="west-and-back"
        ),
    ],
)
def test_moving_twice_in_a_day_gives_each_local_day_where_one_is_one_digest(
    app_factory: Callable[..., App], moves: dict[int, str], thursdays: list[tuple[int, int]]
) -> None:
    app = app_factory()
    _papers(app, WEEK - timedelta(days=3), days=14)
    _add(app, "ada", tz="Pacific/Auckland")  # daily, 07:00
    wednesday = datetime(2026, 10, 21, 0, 5, tzinfo=UTC)
    for now in _hours(WEEK, 5 * 24):
        hour = (now - wednesday) // timedelta(hours=1)
        if hour in moves:
            app.store.people.edit("ada", now, changes={"timezone": moves[hour]})
        jobs.make_digests(app, now)
    digests = _digests(app)["ada"]
    made = [(p, at) for p, at, _ in digests if p == date(2026, 10, 22)]
    assert made[0][1] == THURSDAY_IN_AUCKLAND
    assert [at for _, at in made] == [wednesday + timedelta(hours=h) for h, _ in thursdays]
    editions = [e for p, e in _editions(app, "ada") if p == date(2026, 10, 22)]
    assert editions == [e for _, e in thursdays]
    # in the zone where each was made, a digest a local day, at 07:05 there
    zone = "Pacific/Auckland"
    days: dict[str, list[date]] = {}
    for _, at, _ in digests:
        for h in sorted(moves):
            if wednesday + timedelta(hours=h) <= at:
                zone = moves[h]
        local = at.astimezone(ZoneInfo(zone))
        assert local.hour == 7 or at == WEEK, (zone, local)  # at the first run: late
        days.setdefault(zone, []).append(local.date())
        zone = "Pacific/Auckland"
    assert all(len(d) == len(set(d)) for d in days.values()), days
    sent = [at for p in {p for p, _, _ in digests} for at in _first_seen(app, "ada", p)]
    assert len(sent) == len(set(sent))  # no paper twice


def test_the_days_of_those_who_moved_lately_are_read_apart_by_one_query_and_no_one_elses(
    app_factory: Callable[..., App],
) -> None:
    """The digest job reads the digests made of the subscribers' periods in one query (its
    cost grows with the subscribers); the editions are read for those who moved in the last
    three days only, in one more, and not at all when nobody did."""
    app = app_factory()
    _papers(app, WEEK - timedelta(days=3), days=6)
    for name in ("ada", "bob", "cy"):
        _add(app, name, tz="Pacific/Auckland")  # daily, 07:00
    thursday = THURSDAY_IN_AUCKLAND
    # bob moved four days ago, to Auckland's offset (+13 in October)
    app.store.people.edit("bob", thursday - timedelta(days=4), changes={"timezone": "Etc/GMT-13"})
    jobs.make_digests(app, thursday)  # everyone's Thursday
    reads: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "FROM digest" in statement:
            reads.append(statement)

    sa.event.listen(app.store.engine, "before_cursor_execute", seen)
    try:
        assert jobs.make_digests(app, thursday + timedelta(hours=1)).created == 0
        assert len(reads) == 1  # the periods made: bob moved, but four days ago
        reads.clear()
        app.store.people.edit("cy", thursday, changes={"timezone": "Asia/Tokyo"})  # west
        # 07:05 in Tokyo: its Thursday began after Auckland's digest, which counts for it
        assert jobs.make_digests(app, thursday + timedelta(hours=4)).created == 0
        assert len(reads) == 2 and "max(digest.edition)" in reads[1]
    finally:
        sa.event.remove(app.store.engine, "before_cursor_execute", seen)


@BOTH_BACKENDS
def test_a_weekly_subscriber_moving_to_a_zone_behind_gets_the_next_weeks_digest_only(
    app_factory: Callable[..., App],
) -> None:
    """Weekly on Thursday in Auckland: the week's digest is made on Wednesday 21 Oct 18:05 UTC,
    11:05 in Los Angeles; ada moves there an hour later. Los Angeles' Thursday gets no second
    digest of the week (it would hold the 20 hours' papers since, the day after the week's):
    the next is Thursday 29 Oct, with every paper first seen since the last."""
    app = app_factory()
    _papers(app, WEEK - timedelta(days=3), days=14)
    _add(app, "ada", tz="Pacific/Auckland", frequency=Frequency.WEEKLY, weekday=THU)
    moved = THURSDAY_IN_AUCKLAND + timedelta(hours=1)
    for now in _hours(WEEK, 11 * 24):
        if now == moved:
            app.store.people.edit("ada", now, changes={"timezone": "America/Los_Angeles"})
        jobs.make_digests(app, now)
    made = _digests(app)["ada"]
    thursday_in_los_angeles = datetime(2026, 10, 29, 14, 5, tzinfo=UTC)  # 07:05 PDT
    assert [(p, at) for p, at, _ in made] == [
        (date(2026, 10, 22), THURSDAY_IN_AUCKLAND),
        (date(2026, 10, 29), thursday_in_los_angeles),
    ]
    seen = _first_seen(app, "ada", date(2026, 10, 29))
    assert len(seen) == (thursday_in_los_angeles - THURSDAY_IN_AUCKLAND) // timedelta(hours=6)
    assert seen[0] - THURSDAY_IN_AUCKLAND < timedelta(hours=6)  # none lost between the two


@BOTH_BACKENDS
def test_no_paper_first_seen_between_two_digests_is_skipped_by_a_window_of_a_day(
    app_factory: Callable[..., App], make_settings: Callable[..., Any]
) -> None:
    app = app_factory(make_settings(digest={"window_hours": 24, "max_age_days": 36500}))
    start = WEEK - timedelta(days=1)
    papers = [start + timedelta(hours=2 * n, minutes=25) for n in range(10 * 12)]
    for n, seen in enumerate(papers):  # a paper first seen every two hours
        app.store.papers.upsert(
            [
                PaperIn(
                    key=f"arxiv:2610.{n:05d}",
                    title=f"Zeta{n}kappa and omicron{n}delta",
                    abstract=f"Lambda{n}sigma meets upsilon{n}gamma.",
                    authors=("A. Author",),
                    url=f"https://arxiv.org/abs/2610.{n:05d}",
                    published=seen,
                    upvotes=n,
                )
            ],
            None,
            seen,
        )
    _add(app, "london", tz="Europe/London")  # a day of 25 hours on Sunday 25 Oct
    _add(app, "kathmandu", tz="Asia/Kathmandu")
    _add(app, "weekly", tz="Europe/London", frequency=Frequency.WEEKLY, weekday=MON)
    # the daemon down on Thursday 22 Oct from 05:00 to 12:00 UTC: that day's digests late
    down = (datetime(2026, 10, 22, 5, tzinfo=UTC), datetime(2026, 10, 22, 12, tzinfo=UTC))
    for now in _hours(WEEK, 8 * 24):
        if not down[0] <= now < down[1]:
            jobs.make_digests(app, now)
    made = _digests(app)
    assert [p for p, _, _ in made["london"]] == [date(2026, 10, d) for d in range(19, 27)]
    for name, digests in made.items():
        sent = [at for p, _, _ in digests for at in _first_seen(app, name, p)]
        assert len(sent) == len(set(sent)), name  # none twice
        first, last = digests[0][1], digests[-1][1]
        # and every paper first seen after their first digest, up to their last
        assert sorted(at for at in sent if at > first) == [
            at for at in papers if first < at < last
        ], name


@BOTH_BACKENDS
def test_the_catch_up_after_days_off_reads_a_few_windows_not_one_per_hour_of_the_last_digests(
    app_factory: Callable[..., App],
) -> None:
    """Back after three days off, the subscribers' last digests were made at every hour of the
    day: each hour gave a window of its own, read and prepared for ranking apart (up to a week
    of papers each, all held at once). Whole days back from the window's start, a few windows
    hold them, each reaching back to the last digest of its subscribers at least."""
    app = app_factory()
    now = WEEK + timedelta(days=4, hours=10)
    _papers(app, WEEK - timedelta(days=3), days=8)  # a paper every 6 hours
    last: dict[str, datetime] = {}
    for h in range(30):  # last digests 49 to 78 hours before now, an hour apart
        name = f"u{h}"
        uid = _add(app, name, tz="UTC", hour=0)
        ((_, (channel,)),) = app.store.people.subscribers([name])
        last[name] = now - timedelta(hours=49 + h)
        app.store.digests.create(
            uid, channel.id, last[name].date(), [], last[name], cold_start=False
        )
    starts: list[datetime] = []
    window = app.store.papers.window

    def window_read(since: datetime, until: datetime) -> list[PaperRow]:
        starts.append(since)
        return window(since, until)

    app.store.papers.window = window_read  # type: ignore[method-assign]
    assert jobs.make_digests(app, now).created == 30
    assert len(starts) <= 3, sorted(starts)  # a run has a window a day at most, not one an hour
    seen = sorted(p.first_seen_at for p in window(WEEK - timedelta(days=3), now))
    for name, at in last.items():  # every paper first seen since their last digest
        got = _first_seen(app, name, now.date())
        assert [p for p in got if p > at] == [p for p in seen if p > at], name


def test_three_days_without_digest_runs_give_one_digest_of_every_paper_seen_meanwhile(
    app_factory: Callable[..., App],
) -> None:
    """The digest job did not run from Tuesday to Thursday (the daemon's digests broken while
    `paperwire ingest` went on from cron): on Friday each subscriber gets one digest, not
    three, with the papers first seen since their last one (the 48-hour window alone dropped
    Tuesday's), none sent twice."""
    app = app_factory()
    _papers(app, WEEK - timedelta(days=2), days=8)  # a paper every 6 hours
    zones = ("Pacific/Auckland", "America/Los_Angeles", "Asia/Kathmandu", "Pacific/Chatham")
    for i, tz in enumerate(zones):
        _add(app, f"u{i}", tz=tz)
    off = (datetime(2026, 10, 20, 0, tzinfo=UTC), datetime(2026, 10, 23, 0, tzinfo=UTC))
    for now in _hours(WEEK, 5 * 24):
        if not off[0] <= now < off[1]:
            jobs.make_digests(app, now)
    for i, tz in enumerate(zones):
        made = _digests(app)[f"u{i}"]
        before = [d for d in made if d[1] < off[0]]
        after = [d for d in made if d[1] >= off[1]]
        local_days = [at.astimezone(ZoneInfo(tz)).date() for _, at, _ in after]
        assert len(local_days) == len(set(local_days)), tz  # one a local day after the break
        first_back = after[0]
        seen = _first_seen(app, f"u{i}", first_back[0])
        last_before = before[-1][1]
        expected = (first_back[1] - last_before) // timedelta(hours=6)
        assert abs(len(seen) - expected) <= 1 and seen[0] - last_before < timedelta(hours=6), tz
        sent = [at for p, _, _ in made for at in _first_seen(app, f"u{i}", p)]
        assert len(sent) == len(set(sent)), tz


@BOTH_BACKENDS
def test_one_off_commands_make_a_weekly_subscribers_digest_of_this_week_once(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory()
    _papers(app, WEEK - timedelta(days=9), days=10)
    _add(app, "ada", frequency=Frequency.WEEKLY, weekday=MON)
    wednesday = datetime(2026, 10, 21, 12, 0, tzinfo=UTC)
    first = jobs.make_digests(app, wednesday, force=True)
    assert [p.period for p in first.planned] == [date(2026, 10, 19)]  # this week's period
    assert first.created == 1
    again = jobs.make_digests(app, wednesday + timedelta(hours=3), force=True)
    assert again.created == 0 and again.already == 1
    for now in _hours(wednesday, 5 * 24):  # so the next Monday's is not due before then
        jobs.make_digests(app, now)
    assert [p for p, _, _ in _digests(app)["ada"]] == [date(2026, 10, 19), date(2026, 10, 26)]


@BOTH_BACKENDS
def test_the_preview_of_a_weekly_or_paused_subscriber_shows_their_digest(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory()
    _papers(app, WEEK - timedelta(days=9), days=12)
    uid = _add(app, "ada", frequency=Frequency.WEEKLY, weekday=MON)
    wednesday = datetime(2026, 10, 21, 12, 0, tzinfo=UTC)
    shown = preview(app, "ada", wednesday)
    assert shown.period == date(2026, 10, 19)
    window = timedelta(hours=app.settings.digest.window_hours + 6 * 24)
    assert len(shown.picks) == window // timedelta(hours=6)  # a week of papers, not a day
    assert all(p.first_seen_at >= wednesday - window for p, _ in shown.picks)
    app.store.people.set_frequency(uid, Frequency.DAILY, None, date(2026, 11, 1))
    shown = preview(app, "ada", wednesday)  # paused: what they would get
    assert shown.period == date(2026, 10, 21) and len(shown.picks) == 48 // 6
    assert _digests(app) == {}  # nothing stored


def test_the_store_refuses_a_weekly_digest_without_its_day(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory()
    uid = _add(app, "ada")
    with pytest.raises(PaperwireError, match="day of the week"):
        app.store.people.set_frequency(uid, Frequency.WEEKLY, None)
    with pytest.raises(PaperwireError, match="day of the week"):
        app.store.people.set_frequency(uid, Frequency.WEEKLY, 7)
    with pytest.raises(PaperwireError, match="weekly digests"):
        app.store.people.set_frequency(uid, Frequency.DAILY, MON)
    with pytest.raises(PaperwireError, match="not a frequency"):
        app.store.people.set_frequency(uid, "monthly", None)  # type: ignore[arg-type]
    with pytest.raises(PaperwireError, match="day of the week"):
        app.store.people.edit("ada", WEEK, changes={"frequency": "weekly"})
    row = app.store.people.set_frequency(uid, Frequency.WEEKLY, FRI, date(2027, 1, 4))
    assert (row.frequency, row.digest_weekday, row.paused_until) == (
        "weekly",
        FRI,
        date(2027, 1, 4),
    )
    ((user, _),) = app.store.people.subscribers()
    assert user.frequency is Frequency.WEEKLY and user.paused_until == date(2027, 1, 4)
    app.store.people.update("ada", frequency="fortnightly")  # edited by hand in the database
    ((user, _),) = app.store.people.subscribers()
    assert user.frequency is Frequency.DAILY  # read as daily: the job goes on for everyone

"""daemon.scheduler and the digest timing in daemon.jobs (`paperwire run` as a real process:
tests/daemon/test_admin_cli.py and test_stopping.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from daemon import jobs
from daemon.app import App
from daemon.db.models import ChannelKind
from daemon.db.rows import UserRow
from daemon.ingest.parse import PaperIn
from daemon.scheduler import make_scheduler
from daemon.settings import ScheduleSettings, crontab_trigger

# ---- make_scheduler --------------------------------------------------------------------------


@pytest.fixture
def started(
    app_factory: Callable[..., App], make_settings: Callable[..., Any]
) -> Iterator[tuple[App, BackgroundScheduler]]:
    app = app_factory(
        make_settings(
            schedule={
                "timezone": "Europe/Berlin",
                "ingest_cron": "15 */4 * * *",
                "digest_cron": "5 * * * *",
                "misfire_grace_seconds": 1234,
            }
        )
    )
    scheduler = make_scheduler(app)
    scheduler.start(paused=True)  # jobs get their defaults; nothing runs
    try:
        yield app, scheduler
    finally:
        scheduler.shutdown(wait=False)


def test_scheduler_has_ingest_and_digest_cron_jobs_before_start(
    app_factory: Callable[..., App], make_settings: Callable[..., Any]
) -> None:
    app = app_factory(make_settings(schedule={"timezone": "Asia/Tokyo"}))
    scheduler = make_scheduler(app)
    assert not scheduler.running
    jobs_by_id = {j.id: j for j in scheduler.get_jobs()}
    assert {"ingest", "digest"} <= set(jobs_by_id)
    for job_id in ("ingest", "digest"):
        trigger = jobs_by_id[job_id].trigger
        assert isinstance(trigger, CronTrigger)
        assert str(trigger.timezone) == "Asia/Tokyo"
    assert isinstance(jobs_by_id["catch-up"].trigger, DateTrigger)


def test_jobs_are_coalesced_with_a_misfire_grace(started: tuple[App, BackgroundScheduler]) -> None:
    _, scheduler = started
    by_id = {j.id: j for j in scheduler.get_jobs()}
    for job_id in ("ingest", "digest", "catch-up"):
        job = by_id[job_id]
        assert job.coalesce is True
        # a digest run later than 5 minutes was slept through: missed, the catch-up fetches first
        assert job.misfire_grace_time == (300 if job_id == "digest" else 1234)
        assert job.max_instances == 1


def test_cron_triggers_fire_in_the_configured_time_zone(
    started: tuple[App, BackgroundScheduler],
) -> None:
    _, scheduler = started
    by_id = {j.id: j for j in scheduler.get_jobs()}
    berlin = ZoneInfo("Europe/Berlin")
    # 08:00 UTC on 27 Nov 2026 is 09:00 in Berlin (CET, UTC+1)
    at = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    ingest_next = by_id["ingest"].trigger.get_next_fire_time(None, at.astimezone(berlin))
    # "15 */4" in Berlin: 12:15 Berlin = 11:15 UTC (in UTC it would have been 08:15 UTC)
    assert ingest_next.astimezone(UTC) == datetime(2026, 11, 27, 11, 15, tzinfo=UTC)
    digest_next = by_id["digest"].trigger.get_next_fire_time(None, at.astimezone(berlin))
    assert digest_next.astimezone(UTC) == datetime(2026, 11, 27, 8, 5, tzinfo=UTC)
    assert str(scheduler.timezone) == "Europe/Berlin"


@pytest.mark.parametrize(
    ("cron", "weekdays"),
    [
        ("0 6 * * 1-5", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
        ("0 6 * * 0", {"Sun"}),
        ("0 6 * * 7", {"Sun"}),
        ("0 6 * * 6,0", {"Sat", "Sun"}),
        ("0 6 * * 5-7", {"Fri", "Sat", "Sun"}),
        ("0 6 * * mon-fri", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
        # names from Sunday too (a week of work from Sunday to Thursday)
        ("0 6 * * sun-thu", {"Sun", "Mon", "Tue", "Wed", "Thu"}),
        ("0 6 * * Sun-Sat", {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}),
        ("0 6 * * SUN,wed", {"Sun", "Wed"}),
        ("0 6 * * */2", {"Sun", "Tue", "Thu", "Sat"}),
        ("0 6 * * *", {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}),
    ],
)
def test_crontab_weekdays_mean_what_crontab_means(cron: str, weekdays: set[str]) -> None:
    """crontab numbers weekdays from Sunday = 0 (7 is Sunday too); APScheduler 3 from Monday."""
    trigger = crontab_trigger(cron, "UTC")
    fired: set[str] = set()
    at = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)  # a Sunday
    for _ in range(len(weekdays)):
        at = trigger.get_next_fire_time(None, at)
        assert at is not None
        fired.add(at.strftime("%a"))
        at = at.replace(hour=7)
    assert fired == weekdays
    # and no other day within the week
    assert trigger.get_next_fire_time(None, at).strftime("%a") in weekdays


@pytest.mark.parametrize(
    ("cron", "days"),
    [
        # both restricted: crontab runs on either (the 1st and 15th, and every Monday)
        ("0 6 1,15 * 1", [date(2026, 12, d) for d in (1, 7, 14, 15, 21, 28)]),
        ("0 6 13 * fri", [date(2026, 11, d) for d in (6, 13, 20, 27)]),
        # one of them '*' (or starting with it): the other alone
        ("0 6 1 * *", [date(2026, 12, 1), date(2027, 1, 1)]),
        ("0 6 * * 1", [date(2026, 12, d) for d in (7, 14, 21, 28)]),
        ("0 6 */10 * 1", [date(2026, 12, 21), date(2027, 1, 11)]),  # crontab: both, here
        ("0 6 1 * */2", [date(2026, 12, 1), date(2027, 4, 1)]),  # Tuesday, Thursday
    ],
)
def test_a_crontab_with_a_day_and_a_weekday_runs_on_either_as_crontab_does(
    cron: str, days: list[date]
) -> None:
    """APScheduler's day and day_of_week fields must both match; crontab's either, when neither
    starts with '*'."""
    assert _fired(cron, len(days), since=days[0]) == days


def _fired(cron: str, runs: int, *, since: date) -> list[date]:
    """The days of the first `runs` runs of `cron` (UTC) from the first of `since`'s month."""
    trigger = crontab_trigger(cron, "UTC")
    at = datetime(since.year, since.month, 1, tzinfo=UTC) - timedelta(seconds=1)
    fired = []
    for _ in range(runs):
        at = trigger.get_next_fire_time(None, at + timedelta(seconds=1))
        fired.append(at.date())
    return fired


@pytest.mark.parametrize(
    ("cron", "days"),
    [
        # the first, third or last such weekday of the month (APScheduler's "1st fri" …)
        ("0 6 * * fri#1", [date(2026, 11, 6), date(2026, 12, 4), date(2027, 1, 1)]),
        ("0 6 * * 5#3", [date(2026, 11, 20), date(2026, 12, 18), date(2027, 1, 15)]),
        ("0 6 * * 0#1", [date(2026, 11, 1), date(2026, 12, 6), date(2027, 1, 3)]),
        ("0 6 * * friL", [date(2026, 11, 27), date(2026, 12, 25), date(2027, 1, 29)]),
        ("0 6 * * 1#1,fri#2", [date(2026, 11, d) for d in (2, 13)] + [date(2026, 12, 7)]),
        # with other weekdays: those every week, and the first Friday
        ("0 6 * * mon,fri#1", [date(2026, 11, d) for d in (2, 6, 9, 16, 23, 30)]),
        # with a day of the month: either, as crontab's day and weekday
        ("0 6 13 * fri#1", [date(2026, 11, 6), date(2026, 11, 13), date(2026, 12, 4)]),
        ("0 6 * 12 fri#1", [date(2026, 12, 4), date(2027, 12, 3)]),
    ],
)
def test_a_weekday_of_the_month_runs_on_that_day_only(cron: str, days: list[date]) -> None:
    """'fri#1' (the first Friday, as Quartz and many crons write it) was read as 'fri': every
    Friday. It runs on the first Friday of each month; 'friL' on the last."""
    assert _fired(cron, len(days), since=days[0]) == days


@pytest.mark.parametrize(
    ("cron", "days"),
    [
        # a weekday's full name, in any capitals, is that weekday (as 'fri' and 5)
        ("0 6 * * friday", [date(2026, 12, d) for d in (4, 11, 18, 25)]),
        ("0 6 * * Friday", [date(2026, 12, d) for d in (4, 11, 18, 25)]),
        ("0 6 * * monday-tuesday", [date(2026, 12, d) for d in (1, 7, 8)]),
        ("0 6 * * Friday#1", [date(2026, 12, 4), date(2027, 1, 1)]),
        # and a month's: APScheduler knew 'jan' only ("Invalid month name"), so the validation
        # took "0 6 * * friday" and refused "0 6 1 january *"
        ("0 6 1 january *", [date(2027, 1, 1), date(2028, 1, 1)]),
        ("0 6 1 January,JUL *", [date(2027, 1, 1), date(2027, 7, 1)]),
        ("0 6 1 sept-october *", [date(2027, 9, 1), date(2027, 10, 1)]),
        ("0 6 1 1-feb/1 *", [date(2027, 1, 1), date(2027, 2, 1)]),
    ],
)
def test_a_weekday_or_month_written_in_full_is_that_day_or_month(
    cron: str, days: list[date]
) -> None:
    assert _fired(cron, len(days), since=days[0]) == days
    assert ScheduleSettings(digest_cron=cron).digest_cron == cron  # the check takes it too


@pytest.mark.parametrize(
    ("cron", "said"),
    [
        ("0 6 * janvier *", "month 'janvier' is not 1-12 or a name like 'jan'"),
        ("0 6 * ja *", "month 'ja' is not 1-12 or a name like 'jan'"),
        ("0 6 * * vendredi", "weekday 'vendredi' is not 0-7 or a name like 'mon'"),
    ],
)
def test_a_name_that_is_no_weekday_or_month_is_refused_by_the_check(cron: str, said: str) -> None:
    with pytest.raises(ValueError) as e:
        ScheduleSettings(digest_cron=cron)
    assert said in str(e.value) and "digest_cron" in str(e.value)


@pytest.mark.parametrize(
    ("cron", "said"),
    [
        ("0 6 * * fri#6", "'fri#6': the week of the month after '#' is 1 to 5"),
        ("0 6 * * fri#0", "'fri#0': the week of the month after '#' is 1 to 5"),
        ("0 6 * * mon-fri#1", "'mon-fri#1': '#' and 'L' follow one weekday"),
        ("0 6 * * */2#1", "'*/2#1': '#' and 'L' follow one weekday"),
        ("0 6 */2 * fri#1", "'fri#1' with the day of the month '*/2'"),
        ("0 6 * * fridge", "weekday 'fridge' is not 0-7 or a name like 'mon'"),
    ],
)
def test_a_weekday_of_the_month_that_cannot_be_read_is_refused(cron: str, said: str) -> None:
    with pytest.raises(ValueError) as e:
        crontab_trigger(cron, "UTC")
    assert said in str(e.value)


@pytest.mark.parametrize(
    ("tz", "summer_time_begins"),
    [
        ("Europe/Berlin", date(2026, 3, 29)),  # 02:00 -> 03:00
        ("America/New_York", date(2026, 3, 8)),
        ("America/Santiago", date(2026, 9, 6)),  # 00:00 -> 01:00: the day has no midnight
        ("Australia/Lord_Howe", date(2026, 10, 4)),  # 02:00 -> 02:30
        ("Pacific/Chatham", date(2026, 9, 27)),  # 02:45 -> 03:45
    ],
)
@pytest.mark.parametrize("cron", ["0 0 * * *", "30 0 * * *", "30 2 * * *", "0 12 * * *"])
def test_a_daily_cron_runs_every_local_day_of_a_year_across_summer_time(
    tz: str, summer_time_begins: date, cron: str
) -> None:
    """Run after run, as the scheduler asks (from a microsecond after the last run): a day
    each, none skipped. APScheduler adds a day as 24 hours of UTC: from a run at midnight on
    the day summer time begins it came to 01:00 the next day, past midnight, and went on to
    the day after ("0 0 * * *" in Berlin had no run on 30 March 2026)."""
    zone = ZoneInfo(tz)
    trigger = crontab_trigger(cron, tz)
    run = trigger.get_next_fire_time(None, datetime(2026, 1, 1, tzinfo=zone))
    days: list[date] = []
    while run is not None and run.astimezone(zone).year == 2026:
        local = run.astimezone(zone)
        days.append(local.date())
        # the time of the cron, or (a time summer time skips) just after the skip
        hour, minute = int(cron.split()[1]), int(cron.split()[0])
        assert (hour, minute) <= (local.hour, local.minute) <= (hour + 1, minute), run
        run = trigger.get_next_fire_time(run, run.astimezone(UTC) + timedelta(microseconds=1))
    assert sorted(set(days)) == [date(2026, 1, 1) + timedelta(days=n) for n in range(365)]
    assert summer_time_begins + timedelta(days=1) in days


@pytest.mark.parametrize(
    ("tz", "cron"),
    [
        ("Europe/Berlin", "30 2 * * *"),  # 03:00 -> 02:00 on 25 October
        ("America/New_York", "30 1 * * *"),  # 02:00 -> 01:00 on 1 November
        ("Australia/Lord_Howe", "45 1 * * *"),  # 02:00 -> 01:30 on 5 April
        ("Pacific/Chatham", "0 3 * * *"),  # 03:45 -> 02:45 on 5 April
        ("Europe/Berlin", "30 2 * * sun"),  # a weekly ingest in the repeated hour
    ],
)
def test_a_fixed_time_runs_once_in_the_hour_that_comes_twice(tz: str, cron: str) -> None:
    """When summer time ends, a time in the hour that comes twice ran twice, an hour apart
    (02:30 in Berlin on 25 October: 00:30 and 01:30 UTC); crontab runs a job at a fixed time
    once, at the first."""
    zone = ZoneInfo(tz)
    trigger = crontab_trigger(cron, tz)
    run = trigger.get_next_fire_time(None, datetime(2026, 1, 1, tzinfo=zone))
    days: list[date] = []
    while run is not None and run.astimezone(zone).year == 2026:
        days.append(run.astimezone(zone).date())
        run = trigger.get_next_fire_time(run, run.astimezone(UTC) + timedelta(microseconds=1))
    assert sorted({d for d in days if days.count(d) > 1}) == []  # no day twice
    assert len(days) == (365 if cron.endswith("* * *") else 52)


@pytest.mark.parametrize(
    ("cron", "runs"),
    [
        ("0 * * * *", ["00:00", "01:00", "02:00", "02:00", "03:00"]),  # every hour: both
        ("*/30 2 * * *", ["02:00", "02:30", "02:00", "02:30"]),  # a '*' minute: as crontab
    ],
)
def test_a_cron_every_hour_or_minute_runs_in_both_hours(cron: str, runs: list[str]) -> None:
    """crontab runs a job whose minute or hour is a '*' in the repeated hour again: an hourly
    digest run there is a run like any other."""
    zone = ZoneInfo("Europe/Berlin")
    trigger = crontab_trigger(cron, "Europe/Berlin")
    at = datetime(2026, 10, 25, 0, 0, tzinfo=zone) - timedelta(microseconds=1)
    seen = []
    for _ in runs:
        run = trigger.get_next_fire_time(None, at + timedelta(microseconds=1))
        seen.append(run.astimezone(zone).strftime("%H:%M"))
        at = run.astimezone(UTC)
    assert seen == runs


def test_cron_fields_follow_the_settings(
    app_factory: Callable[..., App], make_settings: Callable[..., Any]
) -> None:
    app = app_factory(
        make_settings(schedule={"ingest_cron": "0 6 * * 1-5", "digest_cron": "30 * * * *"})
    )
    by_id = {j.id: j for j in make_scheduler(app).get_jobs()}
    at = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)  # a Friday
    # next weekday 06:00 UTC after Friday 08:00 is Monday 30 Nov
    assert by_id["ingest"].trigger.get_next_fire_time(None, at) == datetime(
        2026, 11, 30, 6, 0, tzinfo=ZoneInfo("UTC")
    )
    assert by_id["digest"].trigger.get_next_fire_time(None, at) == datetime(
        2026, 11, 27, 8, 30, tzinfo=ZoneInfo("UTC")
    )


def test_the_digest_job_deletes_digests_past_keep_days(
    app_factory: Callable[..., App], make_settings: Callable[..., Any]
) -> None:
    from datetime import timedelta

    from daemon.db.digests import NewItem
    from daemon.db.models import Outcome

    app = app_factory(make_settings(digest={"keep_days": 14}))
    now = app.clock()
    user = app.store.people.add("ada", now, channels={ChannelKind.EMAIL: "ada@lab.example"})
    channel = app.store.people.channels_of(user.id)[0].id
    paper = PaperIn(key="arxiv:1", title="A paper", abstract="", authors=("A. Author",),
                    url="https://example.org/1", published=now)  # fmt: skip
    app.store.papers.upsert([paper], None, now)
    item = NewItem(app.store.papers.find("arxiv:1").id, 0.5, "similar", "r")
    made = {}
    for days in (15, 13):
        period = now.date() - timedelta(days=days)
        made[days] = app.store.digests.create(
            user.id, channel, period, [item], now, cold_start=False
        )
        app.store.digests.finish(made[days] or 0, now, outcome=Outcome.SENT)
    by_id = {j.id: j for j in make_scheduler(app).get_jobs()}
    by_id["digest"].func()  # as the scheduler runs it: make and deliver, then prune
    kept = {d.id for d in app.store.health.deliveries(user="ada")}
    assert made[13] in kept and made[15] not in kept
    old = app.store.digests.create(user.id, channel, now.date() - timedelta(days=20), [item],
                                   now, cold_start=False)  # fmt: skip
    app.store.digests.finish(old or 0, now, outcome=Outcome.SENT)
    app.stopping.set()  # the daemon stops: nothing more is deleted, the next run does it
    assert jobs.prune_digests(app, now) == 0
    app.stopping.clear()
    assert jobs.prune_digests(app, now) == 1


def test_each_job_run_is_timed_in_the_log_and_the_metrics(
    app_factory: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    """A run's duration is in its "job done" / "job failed" line and in
    `paperwire_job_seconds{job}`; a failed run also counts in `paperwire_job_failures{job}`
    and stops nothing (the next run comes)."""
    import logging

    from prometheus_client.parser import text_string_to_metric_families

    from daemon.metrics import Metrics
    from daemon.scheduler import _guarded

    app = app_factory()
    metrics = Metrics(app.store)

    def broken(app: App, now: datetime) -> None:
        raise RuntimeError("feed server on fire")

    with caplog.at_level(logging.INFO, logger="paperwire.daemon"):
        _guarded("ingest", jobs.ingest, app, metrics)()
        _guarded("ingest", jobs.ingest, app, metrics)()
        _guarded("digest", broken, app, metrics)()
    lines = {(r.getMessage(), getattr(r, "job", "")) for r in caplog.records}
    assert lines == {("job done", "ingest"), ("job failed", "digest")}
    assert all(isinstance(getattr(r, "seconds", None), float) for r in caplog.records)
    samples = {
        (s.name, s.labels.get("job")): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }
    assert samples[("paperwire_job_seconds_count", "ingest")] == 2
    assert samples[("paperwire_job_seconds_count", "digest")] == 1
    assert samples[("paperwire_job_seconds_count", "deliver")] == 0  # listed before it runs
    assert samples[("paperwire_job_failures_total", "digest")] == 1
    assert samples[("paperwire_job_failures_total", "ingest")] == 0
    assert samples[("paperwire_job_seconds_sum", "ingest")] >= 0


def test_a_job_failing_the_same_way_again_is_one_line_without_its_traceback(
    app_factory: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    # with PostgreSQL down, every run of every job logged the same 110-line traceback (one
    # outage of an hour at a run a minute: 13,000 lines; operations QA)
    import logging

    import sqlalchemy as sa

    from daemon.metrics import Metrics
    from daemon.scheduler import _guarded

    app = app_factory()
    metrics = Metrics(app.store)
    down = True
    runs = iter(range(100))

    def job(app: App, now: datetime) -> None:
        if down:  # as SQLAlchemy says it: the statement and its parameters change each run
            raise sa.exc.OperationalError(
                "SELECT 1", {"now": next(runs)}, ConnectionRefusedError("connection refused")
            )

    guarded = _guarded("digest", job, app, metrics)
    with caplog.at_level(logging.INFO, logger="paperwire.daemon"):
        for _ in range(3):
            guarded()
        down = False
        guarded()
        down = True
        guarded()
    failed = [r for r in caplog.records if r.getMessage() == "job failed"]
    assert [r.exc_info is not None for r in failed] == [True, False, False, True]
    assert [getattr(r, "failed_runs", 1) for r in failed] == [1, 2, 3, 1]
    assert failed[1].error == "ConnectionRefusedError: connection refused"  # type: ignore[attr-defined]
    assert metrics.job_failures.labels("digest")._value.get() == 4  # each run still counts


def test_a_job_failing_on_a_sqlite_file_it_cannot_write_says_which_and_what_to_do(
    app_factory: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    # a read-only database file (chmod, a read-only mount): the daemon started, and every run
    # logged "job failed … attempt to write a readonly database", naming neither the file nor
    # what to do, as `paperwire` commands do (operations QA)
    import logging

    import sqlalchemy as sa

    from daemon.scheduler import _guarded

    app = app_factory()
    engine = app.store.engine
    if engine.dialect.name != "sqlite":
        pytest.skip("a SQLite file's trouble")

    def read_only(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA query_only = 1")

    engine.dispose()
    sa.event.listen(engine, "connect", read_only)
    with caplog.at_level(logging.INFO, logger="paperwire.daemon"):
        for _ in range(2):
            _guarded("digest", lambda app, now: app.store.admin.audit(now, "a", "b", "c", ""),
                     app)()  # fmt: skip
    failed = [r for r in caplog.records if r.getMessage() == "job failed"]
    path = engine.url.database
    assert [getattr(r, "fix", "") for r in failed] == [
        f"give the account running paperwire write access to {path} and to "
        f"{Path(path or '').parent}, where SQLite writes its -wal and -shm files"
    ] * 2


def test_the_catch_up_counts_its_ingest_in_the_metrics(
    app_factory: Callable[..., App], make_settings: Callable[..., Any]
) -> None:
    # its ingest report was dropped: the feeds it fetched and the papers it stored were not
    # in paperwire_feeds_fetched_total / paperwire_papers_ingested_total (operations QA)
    from prometheus_client.parser import text_string_to_metric_families

    from daemon.metrics import Metrics
    from daemon.scheduler import _catch_up, _guarded
    from tests.daemon.conftest import FEEDS

    sample = FEEDS / "hf" / "daily_papers_2026-08-20.json"
    app = app_factory(make_settings(feeds=[{"name": "hf", "url": sample.as_uri()}]))
    metrics = Metrics(app.store)
    _guarded("catch-up", _catch_up, app, metrics)()
    samples = {
        (s.name, s.labels.get("outcome")): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }
    assert samples[("paperwire_feeds_fetched_total", "ok")] == 1
    assert samples[("paperwire_papers_ingested_total", None)] > 0


# ---- is_due / period_for across time zones ---------------------------------------------------


def _user(tz: str, hour: int | None = None) -> UserRow:
    return UserRow(
        id=1,
        name=tz,
        display_name=tz,
        timezone=tz,
        digest_hour=hour,
        max_picks=None,
        active=True,
        unsubscribed_at=None,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


TOKYO = _user("Asia/Tokyo")
LA = _user("America/Los_Angeles")


def test_is_due_in_each_users_own_time_zone() -> None:
    # 14:00 UTC = 23:00 in Tokyo (27 Nov), 06:00 in Los Angeles (27 Nov, PST)
    now = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)
    assert jobs.is_due(TOKYO, now, default_hour=7)
    assert not jobs.is_due(LA, now, default_hour=7)
    assert jobs.period_for(TOKYO, now) == date(2026, 11, 27)
    assert jobs.period_for(LA, now) == date(2026, 11, 27)
    # one hour later it is 07:00 in Los Angeles: due
    later = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    assert jobs.is_due(LA, later, default_hour=7)


def test_period_is_the_users_local_date() -> None:
    # 22:30 UTC on 27 Nov = 07:30 on 28 Nov in Tokyo, 14:30 on 27 Nov in Los Angeles
    now = datetime(2026, 11, 27, 22, 30, tzinfo=UTC)
    assert jobs.period_for(TOKYO, now) == date(2026, 11, 28)
    assert jobs.period_for(LA, now) == date(2026, 11, 27)
    assert jobs.is_due(TOKYO, now, default_hour=7)
    assert jobs.is_due(LA, now, default_hour=7)
    # just after local midnight in Tokyo, the new day's digest is not due yet
    midnight = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)  # 00:30 on 28 Nov in Tokyo
    assert jobs.period_for(TOKYO, midnight) == date(2026, 11, 28)
    assert not jobs.is_due(TOKYO, midnight, default_hour=7)


def test_users_own_digest_hour_and_daylight_saving() -> None:
    early = _user("America/Los_Angeles", hour=5)
    # in July LA is on PDT (UTC-7): 12:30 UTC = 05:30 local
    july = datetime(2026, 7, 1, 12, 30, tzinfo=UTC)
    assert jobs.is_due(early, july, default_hour=7)
    assert not jobs.is_due(LA, july, default_hour=7)
    # in December (PST, UTC-8) the same UTC instant is 04:30 local
    december = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
    assert not jobs.is_due(early, december, default_hour=7)
    assert jobs.is_due(_user("UTC", hour=0), december, default_hour=23)


def test_digest_job_only_for_users_whose_hour_has_come(
    app_factory: Callable[..., App], clock: Any
) -> None:
    """The scheduled digest job (no force) at 14:00 UTC makes Tokyo's digest only (23:00 there,
    06:00 in LA); at 15:00 UTC LA's (07:00); at 22:30 UTC Tokyo's next day (07:30 on 28 Nov)
    while LA's 27 Nov digest is not made twice."""
    app = app_factory()
    now = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)
    app.store.people.add(
        "tokyo", now, timezone="Asia/Tokyo", channels={ChannelKind.EMAIL: "t@example.org"}
    )
    app.store.people.add(
        "la", now, timezone="America/Los_Angeles", channels={ChannelKind.EMAIL: "l@example.org"}
    )
    app.store.papers.upsert(
        [
            PaperIn(
                key=f"arxiv:2611.0{i:04d}",
                title=f"Diffusion models for topic {i}",
                abstract=f"We study diffusion number {i} and transformers.",
                authors=("A. Author",),
                url=f"https://arxiv.org/abs/2611.0{i:04d}",
                published=now,
                upvotes=10 + i,
            )
            for i in range(5)
        ],
        None,
        now,
    )

    def planned(report: jobs.DigestReport) -> list[tuple[str, date]]:
        return [(p.user, p.period) for p in report.planned]

    first = jobs.make_digests(app, now)
    assert planned(first) == [("tokyo", date(2026, 11, 27))]
    assert first.created == 1

    second = jobs.make_digests(app, datetime(2026, 11, 27, 15, 0, tzinfo=UTC))
    assert planned(second) == [("la", date(2026, 11, 27))]
    assert second.already == 0  # tokyo is past midnight: not due, nothing "already made"

    third = jobs.make_digests(app, datetime(2026, 11, 27, 22, 30, tzinfo=UTC))
    assert planned(third) == [("tokyo", date(2026, 11, 28))]
    assert third.already == 1  # la's digest for its 27 Nov exists


def test_the_digest_job_waits_for_the_catch_up_ingest(
    app_factory: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a restart the catch-up ingests first; a digest run starting meanwhile (its cron
    minute came) made every digest empty, before the day's papers were in (learning-loop QA).
    The jobs are run here by hand, as the scheduler's threads would run them."""

    app = app_factory()
    ingesting, release = threading.Event(), threading.Event()
    order: list[str] = []

    def slow_ingest(app: App, now: datetime) -> jobs.IngestReport:
        order.append("ingest")
        ingesting.set()
        release.wait(60)
        return jobs.IngestReport()

    def digests(app: App, now: datetime, **kw: Any) -> tuple[jobs.DigestReport, Any]:
        order.append("digests")
        return jobs.DigestReport(), jobs.DeliveryReport()

    monkeypatch.setattr(jobs, "ingest", slow_ingest)
    monkeypatch.setattr(jobs, "digest_and_deliver", digests)
    monkeypatch.setattr(jobs, "prune_digests", lambda app, now: None)
    by_id = {j.id: j for j in make_scheduler(app).get_jobs()}
    catch_up = threading.Thread(target=by_id["catch-up"].func)
    catch_up.start()
    assert ingesting.wait(60)
    digest = threading.Thread(target=by_id["digest"].func)
    digest.start()
    digest.join(1.0)
    assert digest.is_alive() and order == ["ingest"]  # waiting, whatever the machine's speed
    release.set()
    catch_up.join(60)
    digest.join(60)
    assert order == ["ingest", "digests", "digests"]


def _recorded_jobs(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], threading.Event]:
    """The ingest and the digests replaced by fakes that write their name, in the order they
    ran, to the list; the event is set by the first digest run."""
    order: list[str] = []
    done = threading.Event()

    def ingest(app: App, now: datetime) -> jobs.IngestReport:
        order.append("ingest")
        return jobs.IngestReport()

    def digests(app: App, now: datetime, **kw: Any) -> tuple[jobs.DigestReport, Any]:
        order.append("digests")
        done.set()
        return jobs.DigestReport(), jobs.DeliveryReport()

    monkeypatch.setattr(jobs, "ingest", ingest)
    monkeypatch.setattr(jobs, "digest_and_deliver", digests)
    monkeypatch.setattr(jobs, "prune_digests", lambda app, now: None)
    return order, done


def test_a_run_missed_while_the_machine_slept_starts_the_catch_up(
    app_factory: Callable[..., App],
    make_settings: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A machine asleep longer than `misfire_grace_seconds` (not restarted: no catch-up at
    start): the missed ingest was dropped and the next digest run came first, making that day's
    digests from the papers fetched before the sleep (empty ones: not sent)."""
    from datetime import timedelta

    order, done = _recorded_jobs(monkeypatch)
    schedule = {"misfire_grace_seconds": 1, "catch_up_delay_seconds": 3600.0}
    app = app_factory(make_settings(schedule=schedule))
    app.clock = lambda: datetime.now(UTC)
    scheduler = make_scheduler(app)
    # paused until the job is moved: started at once, an ingest whose cron time came meanwhile
    # (the wall clock at hh:15 of every fourth hour) ran before the catch-up: two ingests
    scheduler.start(paused=True)
    try:
        # the machine wakes up: the ingest's run time passed 10 minutes ago
        woke = datetime.now(UTC)
        scheduler.modify_job("ingest", next_run_time=woke - timedelta(minutes=10))
        scheduler.resume()
        assert done.wait(60)
        assert order == ["ingest", "digests"]  # the feeds first, then the digests owed
        assert scheduler.get_job("ingest").next_run_time > woke  # and its schedule goes on
    finally:
        scheduler.shutdown(wait=True)


def test_a_digest_run_due_before_the_catch_up_is_left_to_it(
    app_factory: Callable[..., App], make_settings: Callable[..., Any], clock: Any
) -> None:
    """Started at 10:04:58 (the machine back after days off), the digest run of 10:05 came
    before the catch-up of 10:05:03 and made the digests owed from the papers fetched before the
    downtime; the catch-up makes them, after its ingest, and the digest job's next run is 11:05."""
    schedule = {"digest_cron": "5 * * * *", "catch_up_delay_seconds": 5.0}
    for started, catch_up, digest in (
        ((10, 4, 58), (10, 5, 3), (11, 5, 0)),
        ((10, 0, 0), (10, 0, 5), (10, 5, 0)),
    ):
        clock.now = datetime(2026, 11, 30, *started, tzinfo=UTC)
        scheduler = make_scheduler(app_factory(make_settings(schedule=schedule)))
        scheduler.start(paused=True)
        try:
            by_id = {j.id: j for j in scheduler.get_jobs()}
            assert by_id["catch-up"].next_run_time == datetime(2026, 11, 30, *catch_up, tzinfo=UTC)
            assert by_id["digest"].next_run_time == datetime(2026, 11, 30, *digest, tzinfo=UTC)
        finally:
            scheduler.shutdown(wait=False)


def test_a_machine_woken_after_days_asleep_fetches_before_making_the_digests_owed(
    app_factory: Callable[..., App],
    make_settings: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the default grace (6 hours, longer than the ingest's 4-hour interval), APScheduler
    runs the latest run time of each job slept through (coalesce): within the grace, none
    was missed and no catch-up came; the overdue digest run went first, making the digests
    owed from the papers fetched before the sleep. A digest run that late is missed now, and
    the catch-up fetches first."""
    from datetime import timedelta

    order, done = _recorded_jobs(monkeypatch)
    app = app_factory(make_settings(schedule={"catch_up_delay_seconds": 3600.0}))
    app.clock = lambda: datetime.now(UTC)
    woke = datetime.now(UTC)
    # fetched last before the sleep: in the minutes after a digest run's time (late by less
    # than its grace: not missed, no catch-up) the digest run itself fetches first
    feed = app.store.feeds.add("f", "https://lab.example/feed.xml", woke)
    app.store.feeds.record_fetch(feed.id, woke - timedelta(days=3, hours=1))
    scheduler = make_scheduler(app)
    scheduler.start(paused=True)
    try:
        # asleep three days: the digest run was due 50 minutes before the ingest
        scheduler.modify_job("digest", next_run_time=woke - timedelta(days=3, minutes=50))
        scheduler.modify_job("ingest", next_run_time=woke - timedelta(days=3))
        scheduler.resume()
        assert done.wait(60)
        assert order[0] == "ingest", order  # the feeds first, then the digests owed
        assert scheduler.get_job("digest").next_run_time > woke  # and its schedule goes on
    finally:
        scheduler.shutdown(wait=True)


def test_a_digest_run_fetches_first_when_an_ingest_run_came_due_since_the_last_fetch(
    app_factory: Callable[..., App],
    make_settings: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A machine woken in the five minutes after a digest run's time ran that run (not
    missed) before the ingest: the day's digests came from papers fetched days before. Run
    at 11:06 here, on a clock of its own (the test above meets that case only in those five
    minutes of each hour)."""
    from daemon.scheduler import _digest_job, _ingest_owed

    order, _ = _recorded_jobs(monkeypatch)
    app = app_factory(make_settings(schedule={"timezone": "Europe/Berlin"}))  # 15 */4 * * *
    at = datetime(2026, 11, 30, 11, 6, tzinfo=UTC)  # 12:06 in Berlin
    feed = app.store.feeds.add("f", "https://lab.example/feed.xml", at)
    assert not _ingest_owed(app, at)  # never fetched: the catch-up at start fetches
    for fetched, owed in (
        (datetime(2026, 11, 30, 7, 15, 0, tzinfo=UTC), False),  # at 08:15 Berlin, the run's time
        (datetime(2026, 11, 30, 3, 15, 40, tzinfo=UTC), True),  # 04:15: the 08:15 run was due
        (datetime(2026, 11, 27, 9, 0, tzinfo=UTC), True),  # three days asleep
    ):
        app.store.feeds.record_fetch(feed.id, fetched)
        assert _ingest_owed(app, at) == owed, fetched
        order.clear()
        result = _digest_job(app, at)
        assert order == (["ingest", "digests"] if owed else ["digests"]), fetched
        assert isinstance(result, tuple) == owed
    app.store.feeds.set_enabled("f", False, at)  # a disabled feed is not waited for
    assert not _ingest_owed(app, at)
    # an ingest that fails does not stop the digests owed
    app.store.feeds.set_enabled("f", True, at)

    def broken(app: App, now: datetime) -> jobs.IngestReport:
        raise RuntimeError("database down")

    monkeypatch.setattr(jobs, "ingest", broken)
    order.clear()
    _digest_job(app, at)
    assert order == ["digests"]


def test_an_address_not_of_this_machine_is_named_as_the_host_to_change() -> None:
    """`server.host` set to an address no interface of this machine has (192.0.2.1, a
    documentation address): it said "Cannot assign requested address; stop the other process or
    set server.port", sending the admin after a process and a port that are not the trouble."""
    from daemon.errors import PaperwireError
    from daemon.scheduler import _listen
    from tests.servers import free_port

    port = free_port()
    with pytest.raises(PaperwireError) as refused:
        _listen("192.0.2.1", port)
    said = str(refused.value)
    assert said.startswith(f"cannot listen on 192.0.2.1:{port}: ")
    assert "no network interface of this machine has that address" in said
    assert "set server.host" in said
    assert "stop the other process" not in said and "server.port" not in said


def test_the_job_done_line_of_a_stopped_ingest_says_the_feeds_it_left() -> None:
    # the daemon stopping mid-ingest (SIGTERM) leaves the feeds not fetched for the next run:
    # its "job done" line said the database's left feeds only, those of a stop not at all
    from daemon.scheduler import _summary

    stopped = jobs.IngestReport(feeds_ok=1, feeds_stopped=3, papers_new=4)
    assert _summary(stopped) == "new=4 failed_feeds=0 stopped_feeds=3"
    both = jobs.IngestReport(feeds_left=2, feeds_stopped=1)
    assert _summary(both) == "new=0 failed_feeds=0 left_feeds=2 stopped_feeds=1"
    assert _summary(jobs.IngestReport(papers_new=5)) == "new=5 failed_feeds=0"

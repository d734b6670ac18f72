"""How the daemon is doing, for `paperwire status` and the console's health page: each feed's
last fetch, figures per day, deliveries by state with their last errors, and the problems that
need a person (a feed failing for a day, digests held back by an unusable transport, digests
given up today)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from daemon.db import Store
from daemon.db.health import Day, Delivery, day_start
from daemon.db.models import DigestState
from daemon.db.rows import FeedRow
from daemon.settings import ScheduleSettings, crontab_trigger

FAILING_FOR = timedelta(days=1)  # a feed failing this long needs a person
SHOWN_ERRORS = 5
LOOKAHEAD = timedelta(days=8)  # the ingest schedule's gaps are measured over this long


@dataclass(frozen=True)
class Problem:
    what: str  # one line: what is wrong
    fix: str  # what to do
    page: str = ""  # where the console does it
    action: str = ""  # the link's text there


@dataclass(frozen=True)
class Status:
    now: datetime
    feeds: list[FeedRow]
    days: list[Day]  # oldest first, today last
    counts: dict[str, int]  # digests by state, "postponed" apart from "pending"
    postponed: list[Delivery]  # the latest digest held back, if any (how many: counts)
    failed_today: int  # digests given up on today
    failed_causes: list[tuple[str, int]]  # their most frequent errors, with how many each
    recent_errors: list[Delivery]  # pending or failed digests with an error, newest first
    problems: list[Problem]
    declared: list[str] = field(default_factory=list)  # enabled [[feeds]] of the config file


def feed_outcome(feed: FeedRow) -> str:
    """never fetched | ok | failing | disabled."""
    if not feed.enabled:
        return "disabled"
    if feed.last_fetched_at is None:
        return "never fetched"
    return "failing" if feed.last_error else "ok"


def quiet_limit(schedule: ScheduleSettings, now: datetime) -> timedelta:
    """How long with no fetch at all says the daemon is not running: a day more than the
    longest gap between two runs of the ingest schedule."""
    trigger = crontab_trigger(schedule.ingest_cron, schedule.timezone)
    fires: list[datetime] = []
    t = trigger.get_next_fire_time(None, now)
    # over LOOKAHEAD, or longer for a schedule with fewer runs (a fortnight's, a month's): two
    # gaps at least
    while t is not None and (t < now + LOOKAHEAD or len(fires) < 3) and len(fires) < 200:
        fires.append(t)
        # a second later in UTC: on the local clock, the second after the second 02:30 of the
        # night summer time ends is the second after the first, and its next run that 02:30
        t = trigger.get_next_fire_time(t, t.astimezone(UTC) + timedelta(seconds=1))
    gaps = [b - a for a, b in itertools.pairwise(fires)]
    return FAILING_FOR + max(gaps, default=LOOKAHEAD)


def status(
    store: Store,
    now: datetime,
    days: int = 7,
    schedule: ScheduleSettings | None = None,
    declared: Sequence[str] = (),
) -> Status:
    """The report; with the `schedule`, a daemon that has fetched nothing for longer than it
    would (stopped, or not started again) is a problem too. `declared`: the enabled feeds of
    the configuration file ([[feeds]]), which the next ingest stores and enables."""
    today = now.astimezone(UTC).date()
    failing = store.health.failing_feeds(now, FAILING_FOR)
    counts = store.health.counts()
    postponed = store.health.deliveries(postponed_only=True, limit=1) if counts["postponed"] else []
    failed_today, causes = store.health.failed_since(day_start(today))
    # filtered by the database: the newest digests of a day are pending with no error yet
    errors = store.health.deliveries(
        [DigestState.PENDING, DigestState.FAILED], with_error=True, limit=SHOWN_ERRORS
    )
    feeds = store.feeds.all()
    by_name = {f.name: f for f in feeds}
    problems = [
        Problem(
            f"feed {name} has failed since "
            f"{_when(by_name[name].last_ok_at or by_name[name].created_at)}: "
            f"{by_name[name].last_error}",
            f"check its URL (`paperwire feeds test {name}`), or disable it",
            "/admin/feeds",
            "Feeds: test its URL, or disable it",
        )
        for name in failing
    ]
    enabled = [f for f in feeds if f.enabled]
    if not enabled and declared:  # declared, and no ingest since: "add one" is no advice
        problems.append(
            Problem(
                f"no feed fetched yet: the configuration file's feeds ({', '.join(declared)}) "
                "come in at the next ingest, and none has run since they were declared",
                "start the daemon: `paperwire run` (it ingests at once), or ingest now: "
                "`paperwire ingest`",
            )
        )
    elif not enabled:  # "ok: nothing needs a person", and no paper ever came in
        none, fix, action = (
            ("no feed is enabled", "enable one: `paperwire feeds enable NAME`", "enable one")
            if feeds
            else (
                "no feed yet",
                "add one: `paperwire feeds add NAME URL` (or a [[feeds]] entry in the config file)",
                "add one",
            )
        )
        problems.append(
            Problem(
                f"{none}: no paper comes in, so every digest is empty",
                fix,
                "/admin/feeds",
                f"Feeds: {action}",
            )
        )
    if enabled and schedule is not None:
        last = max(_heard_of(f) for f in enabled)
        if now - last > quiet_limit(schedule, now):
            problems.append(
                Problem(
                    f"no feed fetched since {_when(last)}: is `paperwire run` running?",
                    "start it (systemd: `systemctl status paperwire`; its log says why it stopped)",
                )
            )
    if postponed:
        problems.append(
            Problem(
                f"{counts['postponed']} digest(s) wait for a transport that could deliver nothing: "
                f"{postponed[0].last_error}",
                "fix the [email] or [slack] settings (server, login); they are sent at the "
                "next run, or now with `paperwire deliveries retry`",
                "/admin/deliveries?state=postponed",
                "Deliveries: retry every postponed digest now (after fixing the settings)",
            )
        )
    if failed_today:
        shown = "; ".join(error if n == failed_today else f"{n} × {error}" for error, n in causes)
        others = failed_today - sum(n for _, n in causes)
        if others:
            shown += f"; {others} with other errors"
        problems.append(
            Problem(
                f"{failed_today} digest(s) failed for good today: {shown}",
                _failed_fix(causes, others),
                "/admin/deliveries?state=failed",
                "Deliveries: the failed digests, to retry",
            )
        )
    return Status(
        now=now,
        feeds=feeds,
        days=store.health.days(today - timedelta(days=days - 1), today),
        counts=counts,
        postponed=postponed,
        failed_today=failed_today,
        failed_causes=causes,
        recent_errors=errors,
        problems=problems,
        declared=list(declared),
    )


# Slack refusals that are the workspace's rules, not the address: its admins or another channel
SLACK_BARRED = ("action_prohibited", "posting_to_general_channel_denied")


def _failed_fix(causes: list[tuple[str, int]], others: int = 0) -> str:
    """What to do about digests given up on, for the causes seen: a transport that refused
    everything for a day (its settings), a Slack webhook removed in Slack (a new one from its
    subscriber), a channel the workspace's admins restrict (them, or another channel), else
    (and for the `others`, errors beyond the causes named) an address to correct."""
    from notifications.transports.slack import MESSAGE_REFUSED_ERRORS, WEBHOOK_GONE_ERRORS

    said = ["see `paperwire deliveries list --state failed`"]
    errors = [error for error, _ in causes]
    down = [e for e in errors if "TransportUnavailable" in e]
    gone = [e for e in errors if "Slack webhook" in e and any(w in e for w in WEBHOOK_GONE_ERRORS)]
    if down:
        said.append("the mail server or Slack delivered nothing for a day: fix the [email] or "
                    "[slack] settings")  # fmt: skip
    if gone:
        said.append("a webhook answering no_service or channel_not_found was removed in Slack: "
                    "ask its subscriber for a new one")  # fmt: skip
    made = [
        e for e in errors if "Slack webhook" in e and any(w in e for w in MESSAGE_REFUSED_ERRORS)
    ]
    if made:
        said.append("Slack refused a message as paperwire made it (invalid_blocks…): a "
                    "paperwire bug to report, not the address")  # fmt: skip
    barred = [e for e in errors if "Slack webhook" in e and any(w in e for w in SLACK_BARRED)]
    if barred:
        said.append("Slack's workspace restricts posting to a channel (action_prohibited…): "
                    "its subscriber must ask the workspace's admins, or give a webhook for "
                    "another channel")  # fmt: skip
    if len(down) + len(gone) + len(made) + len(barred) < len(errors) or others or not errors:
        said.append("fix the address, then `paperwire deliveries retry ID`")
    return "; ".join(said)


def _heard_of(feed: FeedRow) -> datetime:
    """Its last fetch, or when it was enabled again after a time off if that is later."""
    return max(feed.last_fetched_at or feed.created_at, feed.enabled_at or feed.created_at)


def _when(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

"""The admin's commands on a temporary SQLite database (in this process through `main`, and
as real processes where the process matters: concurrent writers, a taken port, a terminal)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from daemon.db import Store, make_engine
from daemon.db.digests import NewItem
from daemon.db.models import ChannelKind, DigestState, Outcome
from daemon.ingest.parse import PaperIn
from tests.daemon.cli_helpers import PAPERWIRE, write_config
from tests.daemon.conftest import FEEDS
from tests.daemon.in_process import Runner, cli_env, pin_clock
from tests.servers import Reply, Route, free_port, http_server, unresolvable

HF_FILE = FEEDS / "hf" / "daily_papers_2026-08-20.json"
HOOK = "https://hooks.slack.com/services/T0ABC/B0DEF/s3cretToken"


@pytest.fixture
def pw(tmp_path: Path) -> Runner:
    runner = Runner(write_config(tmp_path), tmp_path)
    runner("db", "upgrade")
    return runner


@pytest.fixture
def store(tmp_path: Path, pw: Runner) -> Iterator[Store]:
    engine = make_engine(f"sqlite:///{tmp_path / 'paperwire.db'}")
    yield Store(engine)
    engine.dispose()


def flat(text: str) -> str:
    return " ".join(re.sub(r"[│┃┏┓┗┛┡┩━─╇┳┻╋└┘┌┐├┤┬┴┼]", " ", text).split())


def _smtp_down(config: Path) -> None:
    """The mail server: nothing listens on port 1."""
    text = config.read_text()
    config.write_text(
        text + '\n[email]\ntransport = "smtp"\nhost = "127.0.0.1"\nport = 1\nsecurity = "none"\n'
    )


def _paper(i: int, now: datetime) -> PaperIn:
    return PaperIn(
        key=f"arxiv:2612.{i:05d}",
        title=f"Paper {i} on graph learning",
        abstract="Graphs.",
        authors=("A. Author",),
        url=f"https://arxiv.org/abs/2612.{i:05d}",
        published=now,
    )


# ---- status ------------------------------------------------------------------------------------


def test_status_is_ok_then_names_what_needs_a_person(
    pw: Runner, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a new install: nothing failed, but no paper will ever come in (it said "ok: nothing
    # needs a person"; QA of the operator docs)
    needs = flat(pw("status", expect=1).stderr)
    assert "needs a person: no feed yet: no paper comes in" in needs
    assert "`paperwire feeds add NAME URL`" in needs
    now = datetime.now(UTC)
    pin_clock(monkeypatch, now)  # "failed for good today" is of the test's today
    store.feeds.add("quiet", "https://example.org/quiet.xml", now - timedelta(days=3))
    store.feeds.record_fetch(store.feeds.all()[0].id, now - timedelta(hours=1))
    done = pw("status")
    assert "nothing needs a person" in done.stdout
    store.feeds.remove("quiet")
    # a feed failing for more than a day
    store.feeds.add("broken", "https://example.org/feed.xml", now - timedelta(days=3))
    feed = store.feeds.all()[0]
    store.feeds.record_fetch(feed.id, now - timedelta(hours=1), error="HTTP 404 Not Found")
    # a digest held back by an unusable transport, one given up today
    ada = store.people.add("ada", now, channels={ChannelKind.EMAIL: "ada@lab.example"})
    bob = store.people.add("bob", now, channels={ChannelKind.EMAIL: "bob@lab.example"})
    store.papers.upsert([_paper(1, now)], None, now)
    pid = store.papers.find("arxiv:2612.00001").id
    made = {}
    for user in (ada, bob):
        (channel,) = store.people.channels_of(user.id)
        made[user.name] = store.digests.create(
            user.id, channel.id, now.date(), [NewItem(pid, 0.5, "similar", "r")], now,
            cold_start=False,
        )  # fmt: skip
    store.digests.postpone(made["ada"] or 0, now, now + timedelta(minutes=5), "SMTP down")
    store.digests.finish(made["bob"] or 0, now, outcome=Outcome.PERMANENT, detail="550 no mailbox")

    done = pw("status", expect=1)
    needs = flat(done.stderr)
    assert "needs a person: feed broken has failed since" in needs and "HTTP 404" in needs
    assert "`paperwire feeds test broken`" in needs
    assert "1 digest(s) wait for a transport that could deliver nothing: SMTP down" in needs
    assert "1 digest(s) failed for good today: 550 no mailbox" in needs
    shown = flat(done.stdout)
    assert "1 postponed" in shown and "1 failed" in shown and "broken failing" in shown
    assert "last error of digest" in shown and "550 no mailbox" in shown


def test_status_names_a_daemon_that_fetches_nothing_any_more(pw: Runner, store: Store) -> None:
    # the daemon stopped (or crash-looped) two days ago: feeds fine at their last fetch, no
    # digest failed, and `paperwire status` said "ok: nothing needs a person" (operations QA)
    now = datetime.now(UTC)
    store.feeds.add("cs.LG", "https://example.org/feed.xml", now - timedelta(days=30))
    (feed,) = store.feeds.all()
    store.feeds.record_fetch(feed.id, now - timedelta(hours=20))  # ingest_cron: every 4 h
    assert "nothing needs a person" in pw("status").stdout
    store.feeds.record_fetch(feed.id, now - timedelta(days=2))
    needs = flat(pw("status", expect=1).stderr)
    assert "needs a person: no feed fetched since" in needs and "paperwire run" in needs


def test_status_knows_an_ingest_schedule_of_a_fortnight(store: Store) -> None:
    # ingest_cron "0 6 1,15 * *": two weeks between runs; a daemon that ran on the 15th was
    # "not running" from the 24th on (the gaps were read over the next 8 days only, one run)
    from daemon.settings import ScheduleSettings
    from daemon.status import status

    fortnight = ScheduleSettings(ingest_cron="0 6 1,15 * *")
    now = datetime(2026, 11, 30, 9, tzinfo=UTC)
    store.feeds.add("cs.LG", "https://example.org/feed.xml", now - timedelta(days=60))
    (feed,) = store.feeds.all()
    store.feeds.record_fetch(feed.id, datetime(2026, 11, 15, 6, tzinfo=UTC))  # its last run
    assert status(store, now, 7, fortnight).problems == []
    store.feeds.record_fetch(feed.id, datetime(2026, 11, 1, 6, tzinfo=UTC))  # one run missed
    (problem,) = status(store, now, 7, fortnight).problems
    assert "no feed fetched since" in problem.what


def test_status_knows_a_weekly_ingest_in_the_repeated_hour_of_the_end_of_summer_time(
    store: Store,
) -> None:
    # ingest_cron "30 2 * * sun" in Berlin: 02:30 comes twice on Sunday 25 Oct 2026; the gaps
    # were read one second after each run on the local clock, which went back to the first
    # 02:30 (02:30:01 CEST), so the runs read were 02:30 CET over and over: gaps of 0, and a
    # daemon that ran on the 18th was "not running" from the 19th to the 25th
    from daemon.settings import ScheduleSettings
    from daemon.status import quiet_limit, status

    weekly = ScheduleSettings(timezone="Europe/Berlin", ingest_cron="30 2 * * sun")
    now = datetime(2026, 10, 21, 9, tzinfo=UTC)
    assert quiet_limit(weekly, now) == timedelta(days=8)
    store.feeds.add("cs.LG", "https://example.org/feed.xml", now - timedelta(days=60))
    (feed,) = store.feeds.all()
    store.feeds.record_fetch(feed.id, datetime(2026, 10, 18, 0, 30, tzinfo=UTC))  # its last run
    assert status(store, now, 7, weekly).problems == []


def test_status_counts_a_feed_re_enabled_from_when_it_was_enabled(pw: Runner, store: Store) -> None:
    # every feed disabled for a month, then enabled again: "no feed fetched since …: is
    # `paperwire run` running?" and "feed … has failed since …", exit 1, until the next
    # ingest, up to 4 h later (the feeds kept no time of being enabled; known, left by
    # earlier sessions)
    now = datetime.now(UTC)
    store.feeds.add("cs.LG", "https://example.org/feed.xml", now - timedelta(days=60))
    store.feeds.add("broken", "https://example.org/gone.xml", now - timedelta(days=60))
    ok, broken = sorted(store.feeds.all(), key=lambda f: f.name != "cs.LG")
    store.feeds.record_fetch(ok.id, now - timedelta(days=30))
    store.feeds.record_fetch(broken.id, now - timedelta(days=30), error="HTTP 404 Not Found")
    for name in ("cs.LG", "broken"):
        pw("feeds", "disable", name)
    needs = flat(pw("status", expect=1).stderr)  # nothing to fetch: nothing late, nothing new
    assert "no feed is enabled" in needs and "`paperwire feeds enable NAME`" in needs
    for name in ("cs.LG", "broken"):
        pw("feeds", "enable", name)
    assert "nothing needs a person" in pw("status").stdout
    # and a day (plus the schedule's gap) after enabling them, with no fetch, it is a problem
    later = status_at(store, now + timedelta(days=2))
    assert any("no feed fetched since" in p.what for p in later)
    assert any("feed broken has failed since" in p.what for p in later)
    # a feed the configuration file declares, disabled there and enabled again
    url = "https://example.org/declared.xml"
    store.feeds.ensure([("declared", url, False)], now - timedelta(days=30))
    store.feeds.ensure([("declared", url, True)], now)
    (declared,) = [f for f in store.feeds.all() if f.name == "declared"]
    assert declared.enabled and declared.enabled_at == now


def status_at(store: Store, at: datetime) -> list[Any]:
    from daemon.settings import ScheduleSettings
    from daemon.status import status

    return status(store, at, 7, ScheduleSettings()).problems


# ---- deliver, cycle, deliveries ---------------------------------------------------------------


def test_an_unusable_transport_makes_deliver_and_cycle_fail_and_keeps_the_digest(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    _smtp_down(config)
    pw = Runner(config, tmp_path)
    pw("db", "upgrade")
    pw("feeds", "add", "hf", HF_FILE.as_uri())
    pw("users", "add", "ada", "--email", "ada@lab.example")
    cycled = pw("cycle", expect=1)
    assert "1 waiting for the transport" in cycled.stdout
    assert "fix its settings ([email], [slack] or delivery.outbox_dir" in flat(cycled.stderr)
    assert "1 digest(s) wait for a later try" in cycled.stdout
    # the next deliver has nothing due, and says what waits (it printed "0 sent" and nothing)
    again = pw("deliver")
    assert (
        "0 sent" in again.stdout
        and "1 digest(s) wait for a later try, the first at" in again.stdout
    )
    listed = flat(pw("deliveries", "list", "--state", "postponed").stdout)
    assert "ada email" in listed and "postponed" in listed and "Connection refused" in listed
    # status names its state as the list does (it said "pending")
    assert re.search(r"last error of digest \d+ \(ada, email, [\d-]+, postponed\)",
                     pw("status", expect=1).stdout)  # fmt: skip
    assert "1 digest(s) due now" in pw("deliveries", "retry", "--postponed", expect=1).stdout
    # the admin fixes the configuration; retry now delivers
    pw("config", "set", "email.transport", "file")
    (digest_id,) = re.findall(r"^\D*(\d+)\s", pw("deliveries", "list").stdout, re.M)[:1]
    retried = pw("deliveries", "retry", digest_id)
    assert "1 digest(s) due now" in retried.stdout and "delivery: 1 sent" in retried.stdout
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    assert "sent" in pw("deliveries", "list", "--state", "sent").stdout
    # sent: nothing to do, and exit 1 (the ids given changed nothing)
    assert "left alone" in pw("deliveries", "retry", digest_id, expect=1).stdout
    assert (
        "left alone (not pending: failed, sent, empty, being sent or unknown): 99"
        in pw("deliveries", "cancel", "99", expect=1).stdout
    )


def test_an_outbox_that_cannot_be_written_makes_deliver_fail_and_keeps_the_digest(
    tmp_path: Path,
) -> None:
    """It was a temporary error per digest, and `cycle` exited 0 (a QA pass)."""
    config = write_config(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    pw = Runner(config, tmp_path)
    pw("db", "upgrade")
    pw("config", "set", "delivery.outbox_dir", str(tmp_path / "a-file" / "outbox"))
    pw("feeds", "add", "hf", HF_FILE.as_uri())
    pw("users", "add", "ada", "--email", "ada@lab.example")
    cycled = pw("cycle", expect=1)
    assert "1 waiting for the transport" in cycled.stdout
    assert "cannot be written (Not a directory): fix delivery.outbox_dir" in flat(cycled.stderr)
    assert "postponed" in pw("deliveries", "list", "--state", "postponed").stdout
    pw("config", "set", "delivery.outbox_dir", str(tmp_path / "outbox"))
    assert "delivery: 1 sent" in pw("deliveries", "retry", "--postponed").stdout


def test_cancel_gives_a_pending_digest_up(pw: Runner, store: Store, tmp_path: Path) -> None:
    pw("feeds", "add", "hf", HF_FILE.as_uri())
    pw("ingest")
    pw("users", "add", "ada", "--email", "ada@lab.example")
    now = datetime.now(UTC)
    (channel,) = store.people.find()[1][0][1]
    pid = store.papers.find("2608.16590").id
    digest_id = store.digests.create(
        channel.user_id, channel.id, now.date(), [NewItem(pid, 0.5, "similar", "r")],
        now + timedelta(hours=1), cold_start=False,
    )  # fmt: skip
    assert "1 digest(s) cancelled" in pw("deliveries", "cancel", str(digest_id)).stdout
    # again: it is failed now, which the note left out ("sent, empty, being sent or unknown")
    again = pw("deliveries", "cancel", str(digest_id), expect=1).stdout
    assert f"left alone (not pending: failed, sent, empty, being sent or unknown): {digest_id}" in (
        " ".join(again.split())
    )
    failed = flat(pw("deliveries", "list", "--state", "failed").stdout)
    assert "cancelled by cli:" in failed
    assert "0 sent" in pw("deliver").stdout
    assert not (tmp_path / "outbox").exists() or not list((tmp_path / "outbox").glob("*.eml"))
    assert "give digest ids" in pw("deliveries", "cancel", expect=1).stderr
    # the failed digests of an outage again at once (the console's "Resend"), then delivered;
    # never the one cancelled above, nor one of 10 days ago (it took every failed one kept)
    for days_ago in (0, 10):
        at = now - timedelta(days=days_ago)
        failed_id = store.digests.create(
            channel.user_id, channel.id, at.date() - timedelta(days=1),
            [NewItem(pid, 0.5, "similar", "r")], at, cold_start=False,
        )  # fmt: skip
        store.digests.finish(failed_id or 0, at, outcome=Outcome.PERMANENT, detail="550 no")
    resent = flat(pw("deliveries", "retry", "--failed").stdout)
    assert "1 failed digest(s) made in the last 2 days due again; 2 more left failed: " in resent
    assert "1 cancelled by an admin, 1 made more than 2 days ago" in resent
    assert "delivery: 1 sent" in resent
    again = flat(pw("deliveries", "retry", "--failed").stdout)
    assert "0 failed digest(s) made in the last 2 days due again; 2 more left" in again
    assert "delivery" not in again
    assert store.digests.get(digest_id or 0).state == DigestState.FAILED  # the cancelled one
    assert [e.detail for e in store.admin.audit_log() if e.action == "failed digests resent"] == [
        "1 digest(s)"
    ]
    assert "--postponed or --failed" in pw("deliveries", "retry", expect=1).stderr
    assert "--state 'lost'" in pw("deliveries", "list", "--state", "lost", expect=1).stderr


def test_db_prune_deletes_the_old_digests_done_with_now(
    pw: Runner, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    pw("feeds", "add", "hf", HF_FILE.as_uri())
    pw("ingest")
    pw("users", "add", "ada", "--email", "ada@lab.example")
    now = datetime.now(UTC)
    pin_clock(monkeypatch, now)  # the cutoff is the test's, across midnight too
    (channel,) = store.people.find()[1][0][1]
    item = NewItem(store.papers.find("2608.16590").id, 0.5, "similar", "r")
    made = {}
    for days, sent in ((400, True), (380, True), (370, False), (2, True)):
        day = now.date() - timedelta(days=days)
        digest = store.digests.create(
            channel.user_id, channel.id, day, [item], now, cold_start=False
        )
        assert digest is not None
        if sent:
            store.digests.finish(digest, now, outcome=Outcome.SENT)
        made[days] = digest
    cutoff = now.date() - timedelta(days=365)
    dry = pw("db", "prune", "--dry-run").stdout
    assert f"2 digests done with from before {cutoff} (keep_days = 365): would be deleted" in dry
    assert len(store.digests.counts()) == 2 and sum(store.digests.counts().values()) == 4

    assert f"deleted 2 digests from before {cutoff}" in pw("db", "prune").stdout
    # the pending one stays, and the recent one
    assert store.digests.get(made[370]).state == DigestState.PENDING
    assert store.digests.get(made[2]).state == DigestState.SENT
    assert sum(store.digests.counts().values()) == 2
    assert store.admin.audit_log()[0].action == "old digests deleted"
    assert "nothing to delete" in pw("db", "prune").stdout


def test_a_feed_of_the_configuration_file_is_changed_there(tmp_path: Path) -> None:
    """`feeds remove/disable` said it was done, and the next ingest put the feed back."""
    config = write_config(tmp_path)
    config.write_text(
        config.read_text() + f'\n[[feeds]]\nname = "hf"\nurl = "{HF_FILE.as_uri()}"\n'
    )
    pw = Runner(config, tmp_path)
    pw("db", "upgrade")
    pw("ingest")
    for verb in ("remove", "disable", "enable"):
        refused = pw("feeds", verb, "hf", expect=1)
        assert "declared in the configuration file" in refused.stderr, verb
        assert "Traceback" not in refused.stderr
    assert re.search(r"hf .* yes", flat(pw("feeds", "list").stdout))


def test_status_before_the_first_ingest_names_the_feeds_of_the_configuration_file(
    tmp_path: Path,
) -> None:
    """A new install whose configuration file declares its feeds: they are stored at the first
    ingest. `status` before it said "no feed yet: … add one: `paperwire feeds add NAME URL` (or
    a [[feeds]] entry in the config file)" and `feeds list` "no feeds yet: add one", advice for
    what was done already; what is missing is an ingest (the daemon started)."""
    config = write_config(tmp_path)
    config.write_text(
        config.read_text() + f'\n[[feeds]]\nname = "hf"\nurl = "{HF_FILE.as_uri()}"\n'
    )
    pw = Runner(config, tmp_path)
    pw("db", "upgrade")
    before = pw("status", expect=1)
    needs = flat(before.stderr)
    assert "no feed fetched yet: the configuration file's feeds (hf)" in needs
    assert "`paperwire run`" in needs and "`paperwire ingest`" in needs
    assert "add one" not in needs and "add one" not in before.stdout
    assert "come in at the next ingest" in flat(before.stdout)
    listed = pw("feeds", "list").stdout
    assert "add one" not in listed and "come in at the next ingest" in flat(listed)
    pw("ingest")
    assert "nothing needs a person" in pw("status").stdout


# ---- users, preview, feeds test --------------------------------------------------------------


def test_a_handle_in_another_case_is_the_users_own_everywhere(pw: Runner) -> None:
    """A QA pass: `users show ADA` found ada but listed none of her digests, `deliveries list
    --user ADA` said "no digests", `preview ADA` said she had no channel and `digest --dry-run
    --user ADA` made nothing: the handle as typed went on past the lookup."""
    pw("feeds", "add", "hf", HF_FILE.as_uri())
    pw("ingest")
    pw("users", "add", "ada", "--email", "ada@lab.example")
    pw("digest")
    assert "last digests:" in pw("users", "show", "ADA").stdout
    listed = flat(pw("deliveries", "list", "--user", "ADA").stdout)
    assert "ada email" in listed and "no digests" not in listed
    assert pw("preview", "ADA").stdout.startswith("<!DOCTYPE html>")  # not "no channel"
    assert "ada (email, " in pw("digest", "--dry-run", "--user", "ADA").stdout


def test_a_command_given_a_handle_in_another_case_names_the_stored_handle(
    pw: Runner, store: Store, tmp_path: Path
) -> None:
    """A QA pass: `like ADA …` answered "ADA likes …", `follow ADA` "ADA follows …" (and so
    did dislike, import, users set and users remove, and the audit log named ADA): the lookup
    found ada, but the confirmation echoed the handle as typed."""
    pw("feeds", "add", "hf", HF_FILE.as_uri())
    pw("ingest")
    pw("users", "add", "ada", "--email", "ada@lab.example")
    library = tmp_path / "library.txt"
    library.write_text("2608.16590\n")
    said = {
        "like": pw("like", "ADA", "2608.16590").stdout,
        "dislike": pw("dislike", "Ada", "2608.16590").stdout,
        "follow": pw("follow", "ADA", "--keyword", "agents").stdout,
        "import": pw("import", "ADA", str(library)).stdout,
        "users set": pw("users", "set", "ADA", "--digest-hour", "6").stdout,
    }
    forgot = pw("follow", "ADA", "--keyword", "agents", "--keyword", "robots", "--remove")
    said["follow --remove"] = forgot.stdout
    refused = pw("follow", "ADA", "--keyword", "robots", "--remove", expect=1).stderr
    said["users remove"] = pw("users", "remove", "ADA").stdout
    assert said["like"].startswith("ada likes arxiv:2608.16590")
    assert said["dislike"].startswith("ada dislikes arxiv:2608.16590")
    assert said["follow"].startswith("ada follows: agents")
    assert said["import"].startswith("import into ada from ")
    assert said["users set"].strip() == "updated user ada"
    assert said["follow --remove"].startswith("ada forgot: agents")
    assert "ada follows or mutes no keyword 'robots'" in refused
    assert said["users remove"].strip() == "removed user ada"
    assert not [command for command, text in said.items() if "ADA" in text or "Ada" in text]
    targets = {(row.action, row.target) for row in store.admin.audit_log()}
    assert {("user changed", "ada"), ("user removed", "ada")} <= targets
    assert ("library imported", "ada") in targets
    assert not [t for t in targets if t[1] in ("ADA", "Ada")]


def test_users_show_and_preview(pw: Runner, tmp_path: Path) -> None:
    pw("feeds", "add", "hf", HF_FILE.as_uri())
    pw("ingest")
    pw("users", "add", "ada", "--email", "ada@lab.example", "--slack-webhook", HOOK,
       "--timezone", "Europe/Berlin", "--digest-hour", "6")  # fmt: skip
    pw("follow", "ada", "--keyword", "agents")
    pw("like", "ada", "2608.16590")
    shown = pw("users", "show", "ada").stdout
    assert "time zone: Europe/Berlin; digest hour: 6" in shown
    assert "email: ada@lab.example" in shown and "hooks.slack.com" in shown
    assert "s3cretToken" not in shown  # a webhook URL is a secret
    assert "follows keyword: agents" in shown and "likes: 1" in shown

    html = tmp_path / "preview.html"
    done = pw("preview", "ada", "--out", str(html))
    assert "paper(s); written to" in done.stderr
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "/f/" in page  # the usual one-click links
    # its links open ada's page (change, delete) for weeks: no other account may read it
    assert "/me/" in page and html.stat().st_mode & 0o777 == 0o600
    assert "Zetta" in page or "Co-RL" in page  # picks from the feed
    # --out to what is no file of its own (a pipe; /dev/stdout, /dev/null run by root): its
    # mode is left alone; 492035c made root's `--out /dev/null` a /dev/null for root only
    import threading

    fifo = tmp_path / "preview.fifo"
    os.mkfifo(fifo, 0o666)
    fifo.chmod(0o644)
    read: list[str] = []
    reader = threading.Thread(target=lambda: read.append(fifo.read_text()), daemon=True)
    reader.start()
    pw("preview", "ada", "--out", str(fifo))
    reader.join(60)
    assert read and read[0].startswith("<!DOCTYPE html>")
    assert fifo.stat().st_mode & 0o777 == 0o644
    listed = pw("deliveries", "list").stdout.strip()  # nothing stored or sent
    assert listed.startswith("no digests yet") and "`paperwire digest`" in listed
    assert flat(pw("deliveries", "list", "--user", "ADA", "--state", "failed").stdout) == (
        "no failed digests of ada"
    )
    text = pw("preview", "ada", "--text").stdout
    assert "<" not in text.splitlines()[0] and ("Zetta" in text or "Co-RL" in text)
    assert "no user named 'nobody'" in pw("preview", "nobody", expect=1).stderr
    for where in (tmp_path / "no-such-folder" / "x.html", tmp_path):  # tracebacks before
        refused = pw("preview", "ada", "--out", str(where), expect=1).stderr
        assert f"--out {where}: cannot write it" in " ".join(refused.split())
    pw("users", "set", "ada", "--unsubscribe")
    assert "unsubscribed" in pw("preview", "ada", expect=1).stderr


def test_users_show_names_each_channel_once(pw: Runner) -> None:
    # a QA pass: `users show` printed a Slack channel as "slack: slack https://hooks.slack.com/…"
    pw("users", "add", "ada", "--email", "Ada <ada@lab.example>", "--slack-webhook", HOOK)
    lines = [line.strip() for line in pw("users", "show", "ada").stdout.splitlines()]
    assert "email: ada@lab.example" in lines
    assert "slack: https://hooks.slack.com/…" in lines  # the webhook's host only
    assert not any("T0ABC" in line or "s3cretToken" in line for line in lines)
    # a list of channels of any kind still names the kind beside a webhook
    listed = flat(pw("users", "list").stdout)
    assert "ada@lab.example, slack https://hooks.slack.com/…" in listed


def test_feeds_test_shows_what_would_be_ingested(pw: Runner, tmp_path: Path) -> None:
    done = pw("feeds", "test", HF_FILE.as_uri(), "--show", "2")
    assert "15 paper(s), 15 new" in done.stdout
    assert len(re.findall(r"^\s+arxiv:\d{4}\.\d{5}", done.stdout, re.M)) == 2
    pw("feeds", "add", "hf", HF_FILE.as_uri())
    pw("ingest")
    assert "15 paper(s), 0 new" in pw("feeds", "test", "hf").stdout
    missing = pw("feeds", "test", (tmp_path / "nope.xml").as_uri(), expect=1)
    assert "cannot read feed file" in missing.stderr
    assert "no feed named 'nope'" in pw("feeds", "test", "nope", expect=1).stderr
    assert "not an http(s) URL" in pw("feeds", "test", "ftp://x.org/a", expect=1).stderr
    assert _count_papers(tmp_path) == 15  # the tests stored nothing; the ingest did


def test_feeds_add_fetches_the_feed_once_and_says_what_it_found(tmp_path: Path) -> None:
    # `feeds add` stored any URL that passed the address check: a typo, a journal's web page
    # or a dead server was found only by the next ingest, hours later
    config = write_config(tmp_path)
    config.write_text(
        config.read_text().replace("[ingest]", "[ingest]\nallow_private_addresses = true")
    )
    pw = Runner(config, tmp_path)
    pw("db", "upgrade")
    rss = (FEEDS / "generic" / "plain_rss2_constructed.xml").read_bytes()
    page = (
        b"<!DOCTYPE html><html><head><title>A journal</title><link rel='alternate' "
        b"type='application/rss+xml' href='/feed.xml'></head><body>Hi</body></html>"
    )
    with http_server(Reply(404, "not found")) as server:
        server.routes["/feed.xml"] = Route(body=rss, content_type="application/rss+xml")
        server.routes["/journal"] = Route(body=page, content_type="text/html; charset=utf-8")
        empty = b'<rss version="2.0"><channel><title>e</title></channel></rss>'
        server.routes["/empty.xml"] = Route(body=empty, content_type="text/xml")
        cut = rss[: rss.index(b"</item>") + 7]  # cut after its first item
        server.routes["/cut.xml"] = Route(body=cut, content_type="text/xml")
        added = pw("feeds", "add", "blog", server.url_for("/feed.xml"))
        assert added.stdout.strip() == "added feed blog: 2 entries (2 new), newest 2025-03-01"
        assert (
            "0 entries: the feed is empty now"
            in pw("feeds", "add", "quiet", server.url_for("/empty.xml")).stdout
        )
        # a feed cut short was "2 entries (1 new, 1 skipped (not papers))": the broken XML
        # counted as an entry and was not said
        cut_short = pw("feeds", "add", "cut", server.url_for("/cut.xml")).stdout
        assert " ".join(cut_short.split()).startswith(
            "added feed cut: 1 entry (1 new), newest 2025-03-01; the feed's XML is broken: "
        )
        assert "entries after it may be lost" in cut_short and "skipped" not in cut_short
        tested = pw("feeds", "test", "cut")  # it said "1 skipped (not papers)", and no more
        assert "1 paper(s), 1 new, 0 skipped (not papers)" in tested.stdout
        assert "warning: the feed's XML is broken" in tested.stderr
        for path, why in (
            ("/typo.xml", "HTTP 404 Not Found"),
            ("/journal", f"the page names its feed {server.url_for('/feed.xml')}: add that URL"),
        ):
            refused = " ".join(
                pw("feeds", "add", "bad", server.url_for(path), expect=1).stderr.split()
            )
            assert f"feed bad not added: {server.url_for(path)}: " in refused and why in refused
            assert "add it anyway with --no-check" in refused
        # a feed that moved for good (301) is added with its new address; one that moved for
        # now (302) keeps the address given; one that moved to a feed there already is refused
        server.routes["/old.rss"] = Route(status=301, location=server.url_for("/new.rss"))
        server.routes["/new.rss"] = Route(body=rss, content_type="application/rss+xml")
        server.routes["/today.rss"] = Route(status=302, location=server.url_for("/new.rss"))
        server.routes["/blog.rss"] = Route(status=308, location=server.url_for("/feed.xml"))
        moved = " ".join(pw("feeds", "add", "moved", server.url_for("/old.rss")).stdout.split())
        assert f"moved for good to {server.url_for('/new.rss')}: added with that address" in moved
        assert "moved for good" not in pw("feeds", "add", "t", server.url_for("/today.rss")).stdout
        twin = pw("feeds", "add", "b2", server.url_for("/blog.rss"), expect=1).stderr
        assert f"feed 'blog' already has the address {server.url_for('/feed.xml')}" in twin
        listed = pw("feeds", "list").stdout
        assert "/old.rss" not in listed and "/new.rss" in listed and "/today.rss" in listed
        # a name taken is said before anything is fetched
        before = len(server.requests)
        taken = pw("feeds", "add", "blog", server.url_for("/other.xml"), expect=1).stderr
        assert "feed 'blog' already exists" in taken and len(server.requests) == before
    dead = server.url_for("/feed.xml")  # the server has stopped: nothing answers there
    assert "Connection refused" in pw("feeds", "add", "later", dead + "?x", expect=1).stderr
    unchecked = pw("feeds", "add", "later", dead + "?x", "--no-check").stdout
    assert "added feed later" in unchecked and "the next ingest fetches it" in unchecked
    listed = pw("feeds", "list").stdout
    assert (
        "blog" in listed
        and "cut" in listed
        and "quiet" in listed
        and "later" in listed
        and "bad" not in listed
    )


def test_feeds_add_no_check_takes_a_feed_whose_host_does_not_resolve_now(
    pw: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `--no-check` is for "its server is down right now", but a name that did not resolve (the
    # README's quick start without internet, a DNS outage) was refused by it all the same:
    # "error: URL: cannot resolve host 'rss.arxiv.org'", with no way to add the feed
    unresolvable(monkeypatch, "feeds.lab.example")
    url = "https://feeds.lab.example/rss"
    refused = " ".join(pw("feeds", "add", "lab", url, expect=1).stderr.split())
    assert "cannot resolve host 'feeds.lab.example'" in refused
    assert "add it anyway with --no-check" in refused
    added = pw("feeds", "add", "lab", url, "--no-check").stdout
    assert "added feed lab" in added and "the next ingest fetches it" in added
    assert "feeds.lab.example does not resolve now" in " ".join(added.split())
    moved = pw("feeds", "set-url", "lab", url + "2", "--no-check").stdout
    assert f"feed lab now fetches {url}2" in moved
    # the address policy still holds: a host inside the network is refused, checked or not
    inside = pw("feeds", "add", "inside", "http://127.0.0.1/rss", "--no-check", expect=1).stderr
    assert "non-public address" in inside
    # the ingest fetches it and says why it failed
    assert "cannot resolve host 'feeds.lab.example'" in pw("ingest", expect=1).stderr
    assert "lab" in pw("feeds", "list").stdout


def test_feeds_set_url_gives_a_moved_feed_its_new_address_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    # a site that moved without a redirect: the admin could only remove the feed and add it
    # again, which lost its counts (and its name's history in the audit log)
    config = write_config(tmp_path)
    config.write_text(
        config.read_text().replace("[ingest]", "[ingest]\nallow_private_addresses = true")
    )
    pw = Runner(config, tmp_path)
    pw("db", "upgrade")
    rss = (FEEDS / "generic" / "plain_rss2_constructed.xml").read_bytes()
    with http_server(Reply(404, "not found")) as server:
        server.routes["/old.xml"] = Route(body=rss, content_type="application/rss+xml")
        pw("feeds", "add", "blog", server.url_for("/old.xml"))
        pw("feeds", "add", "other", HF_FILE.as_uri())
        pw("ingest")
        del server.routes["/old.xml"]  # the site moved: the old address is a 404 now
        pw("ingest", expect=None)
        assert "HTTP 404" in pw("feeds", "list").stdout
        before = len(server.requests)
        refused = flat(pw("feeds", "set-url", "blog", server.url_for("/typo.xml"), expect=1).stderr)
        assert f"feed blog not changed: {server.url_for('/typo.xml')}: HTTP 404" in refused
        assert "change it anyway with --no-check" in refused and len(server.requests) > before
        taken = pw("feeds", "set-url", "blog", HF_FILE.as_uri(), expect=1).stderr
        assert f"feed 'other' already has the address {HF_FILE.as_uri()}" in taken
        assert "no feed named 'nope'" in pw("feeds", "set-url", "nope", "x", expect=1).stderr
        server.routes["/new.xml"] = Route(body=rss, content_type="application/rss+xml")
        changed = flat(pw("feeds", "set-url", "blog", server.url_for("/new.xml")).stdout)
        assert changed.startswith(f"feed blog now fetches {server.url_for('/new.xml')}: 2 ")
        with make_engine(f"sqlite:///{tmp_path / 'paperwire.db'}").connect() as conn:
            query = "SELECT url, last_error, consecutive_errors, papers_seen FROM feed WHERE name=?"
            row = conn.exec_driver_sql(query, ("blog",)).one()
            audit = conn.execute(sa.text("SELECT action, detail FROM auditentry")).all()
        assert row == (server.url_for("/new.xml"), None, 0, 2)
        moved = f"{server.url_for('/old.xml')} → {server.url_for('/new.xml')}"
        assert ("feed address changed", moved) in [tuple(a) for a in audit]
    unchecked = pw("feeds", "set-url", "blog", server.url_for("/later.xml"), "--no-check").stdout
    assert "not fetched (--no-check)" in unchecked


def test_a_private_feeds_token_stays_out_of_the_audit_log(tmp_path: Path) -> None:
    # `feeds add` and `feeds set-url` wrote a private feed's address whole into the audit log
    # (Zotero's ?key=, Inoreader's ?token=, a signed URL's sig=), for whoever reads it
    config = write_config(tmp_path)
    config.write_text(
        config.read_text().replace("[ingest]", "[ingest]\nallow_private_addresses = true")
    )
    pw = Runner(config, tmp_path)
    pw("db", "upgrade")
    first = "http://127.0.0.1:1/feed.xml?token=abc123&tag=ml"
    moved = "http://me:hunter2@127.0.0.1:1/feed.xml?sig=s1gn3d&auth=0auth"
    pw("feeds", "add", "zotero", first, "--no-check")
    pw("feeds", "set-url", "zotero", moved, "--no-check")
    with make_engine(f"sqlite:///{tmp_path / 'paperwire.db'}").connect() as conn:
        url = conn.exec_driver_sql("SELECT url FROM feed WHERE name='zotero'").scalar_one()
        audit = [d for (d,) in conn.exec_driver_sql("SELECT detail FROM auditentry")]
    assert url == moved  # the feed keeps its address whole
    details = " ".join(audit)
    for secret in ("abc123", "hunter2", "s1gn3d", "0auth"):
        assert secret not in details, details
    assert "http://127.0.0.1:1/feed.xml?token=**********&tag=ml" in details


def test_feeds_add_says_when_a_feeds_papers_are_too_old_to_be_announced(tmp_path: Path) -> None:
    # a feed whose papers are all dated before digest.max_age_days (a quarterly journal dated
    # by its issue, an archive) was added as "2 entries (2 new)": none would ever reach a digest
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("max_age_days = 36500", "max_age_days = 30"))
    pw = Runner(config, tmp_path)
    pw("db", "upgrade")
    feed = (FEEDS / "generic" / "plain_rss2_constructed.xml").as_uri()  # dated March 2025
    added = " ".join(pw("feeds", "add", "archive", feed).stdout.split())
    assert added == (
        "added feed archive: 2 entries (2 new), newest 2025-03-01; all dated more than 30 days "
        "ago (digest.max_age_days): not announced as new"
    )
    tested = " ".join(pw("feeds", "test", "archive").stderr.split())
    assert "warning: 2 paper(s) dated more than 30 days ago (digest.max_age_days)" in tested


def _count_papers(tmp_path: Path) -> int:
    engine = make_engine(f"sqlite:///{tmp_path / 'paperwire.db'}")
    try:
        return Store(engine).papers.count()
    finally:
        engine.dispose()


# ---- config set / unset ------------------------------------------------------------------------


COMMENTED = """\
# my lab's paperwire
[database]
url = "sqlite:///{db}"  # the lab's database

[server]
secret_key = "cli-test-secret-0123"
secret_key_file = "{key}"

[schedule]
# everyone gets their digest at seven
digest_hour = 7

[delivery]
outbox_dir = "{outbox}"

[log]
level = "WARNING"
"""


def _commented(tmp_path: Path) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text(
        COMMENTED.format(
            db=tmp_path / "paperwire.db", key=tmp_path / "key", outbox=tmp_path / "outbox"
        )
    )
    return path


def test_config_set_keeps_comments_and_the_previous_version(tmp_path: Path) -> None:
    path = _commented(tmp_path)
    before = path.read_text()
    pw = Runner(path, tmp_path)
    pw("db", "upgrade")
    assert "schedule.digest_hour = 9" in pw("config", "set", "schedule.digest_hour", "9").stdout
    after = path.read_text()
    assert after == before.replace("digest_hour = 7", "digest_hour = 9")
    assert "# everyone gets their digest at seven" in after and "# the lab's database" in after
    assert path.with_name("lab.toml.previous").read_text() == before
    # each value echoed as the file writes it (it said True and 'info', Python's way)
    assert (
        "digest.send_empty = true written" in pw("config", "set", "digest.send_empty", "yes").stdout
    )
    options = pw("config", "set", "recommender.options", "{ max_interests = 3 }").stdout
    assert "recommender.options = {max_interests = 3} written" in options
    assert 'log.level = "info" written' in pw("config", "set", "log.level", "info").stdout
    data = tomllib.loads(path.read_text())
    assert data["digest"]["send_empty"] is True
    assert data["recommender"]["options"] == {"max_interests": 3}
    # unset: commented out where it was, under its own comment; set puts it back there (QA:
    # the comment was left above the next key, and the key came back at the section's end)
    pw("config", "unset", "digest.send_empty")
    assert "\n# send_empty = true\n" in path.read_text()
    assert "send_empty" not in tomllib.loads(path.read_text())["digest"]
    pw("config", "unset", "schedule.digest_hour")
    assert "# everyone gets their digest at seven\n# digest_hour = 9\n" in path.read_text()
    pw("config", "set", "schedule.digest_hour", "8")
    assert "# everyone gets their digest at seven\ndigest_hour = 8\n" in path.read_text()
    audit = Store(make_engine(f"sqlite:///{tmp_path / 'paperwire.db'}")).admin.audit_log()
    assert [(a.action, a.target) for a in audit][-1] == ("config changed", "schedule.digest_hour")
    assert audit[-1].detail == "9" and audit[-1].admin.startswith("cli:")


def test_config_set_warns_as_config_check_does(tmp_path: Path) -> None:
    """`config set` of a digest_cron with hours between its runs, a short secret key or a
    base_url on another port of this machine says what `config check`, the console and the
    daemon say of it (it wrote the file and said nothing: the admin learnt of the lost
    digests from the daemon's log, if at all)."""
    path = _commented(tmp_path)
    pw = Runner(path, tmp_path)
    pw("db", "upgrade")
    said = pw("config", "set", "schedule.digest_cron", "5 8 * * *")
    assert "written" in said.stdout
    assert "warning: schedule.digest_cron '5 8 * * *' leaves hours without a run" in flat(
        said.stderr
    )
    said = pw("config", "set", "server.port", "8099")
    assert "points at this machine on port 8080, but paperwire listens on port 8099" in flat(
        said.stderr
    )
    said = pw("config", "set", "server.secret_key", "short")
    assert "server.secret_key is 5 characters long" in flat(said.stderr)
    # a change that concerns none of them repeats none
    assert pw("config", "set", "digest.max_picks", "12").stderr == ""


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("schedule.digest_hour", "25", "schedule.digest_hour = 25: Input should be less than"),
        ("schedule.digest_hour", "seven", "schedule.digest_hour = 'seven': give a whole number"),
        # 7.5 is a number: "give a number" was no help (a QA pass)
        ("schedule.digest_hour", "7.5", "schedule.digest_hour = '7.5': give a whole number"),
        ("delivery.max_attempts", "2.5", "delivery.max_attempts = '2.5': give a whole number"),
        ("admin.lockout_minutes", "soon", "admin.lockout_minutes = 'soon': give a number"),
        ("schedule.digest_cron", "every morning", "not a 5-field crontab expression"),
        ("schedule.timezone", "Mars/Base", "IANA"),
        ("digest.send_empty", "maybe", "give true or false"),
        ("email.transport", "pigeon", "Input should be 'file' or 'smtp'"),
        ("digest.max_pick", "3", "did you mean 'digest.max_picks'"),
        ("recommender.options", "{ max_interest = 3 }", "max_interest"),
        ("feeds.name", "x", "unknown key"),
        # a negative number is a value, not an option ("No such option: -1" before)
        ("ingest.max_bytes", "-1", "ingest.max_bytes = -1: Input should be greater than"),
        ("digest.min_score", "1.5", "digest.min_score = 1.5: Input should be less than"),
        # int() and float() read them; the file (TOML) does not (30 was written)
        ("digest.max_picks", "٣٠", "digest.max_picks = '٣٠': write the number with the digits 0–9"),
    ],
)
def test_config_set_refuses_an_invalid_value_without_touching_the_file(
    tmp_path: Path, key: str, value: str, message: str
) -> None:
    path = _commented(tmp_path)
    before = path.read_bytes()
    stamp = path.stat().st_mtime_ns
    done = Runner(path, tmp_path)("config", "set", key, value, expect=1)
    assert message in " ".join(done.stderr.split()), done.stderr
    assert "Traceback" not in done.stderr
    assert path.read_bytes() == before and path.stat().st_mtime_ns == stamp
    assert not path.with_name("lab.toml.previous").exists()
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


def test_every_integer_key_asks_for_a_whole_number_and_every_float_key_takes_a_fraction(
    tmp_path: Path,
) -> None:
    from daemon.config_file import keys, value_of
    from daemon.errors import ConfigError

    numeric = [k for k in keys() if k.kind in ("int", "float")]
    assert {"int", "float"} <= {k.kind for k in numeric}
    for k in numeric:
        if k.kind == "float":
            assert value_of(k.key, "7.5") == 7.5
            continue
        assert value_of(k.key, "7") == 7
        # "7.0" is the whole number the file takes too (it was refused as none)
        assert value_of(k.key, "7.0") == 7 and isinstance(value_of(k.key, "7.0"), int)
        with pytest.raises(ConfigError) as refused:
            value_of(k.key, "7.5")
        assert str(refused.value) == f"{k.key} = '7.5': give a whole number", k.key
    path = _commented(tmp_path)
    done = Runner(path, tmp_path)("config", "set", "admin.lockout_minutes", "7.5")
    assert done.stdout.startswith("admin.lockout_minutes = 7.5 written to")
    assert tomllib.loads(path.read_text())["admin"]["lockout_minutes"] == 7.5


def test_config_set_refuses_a_link_signing_key_file_too_short(tmp_path: Path) -> None:
    # accepted from the command line: the daemon then said "not applied", and its next start
    # failed on the file (the console checked it when applying; second read)
    path = _commented(tmp_path)
    Runner(path, tmp_path)("config", "unset", "server.secret_key")  # the key file signs
    short = tmp_path / "short.key"
    short.write_text("abc\n")
    before = path.read_bytes()
    done = Runner(path, tmp_path)("config", "set", "server.secret_key_file", str(short), expect=1)
    assert "link-signing key is empty or too short" in " ".join(done.stderr.split())
    assert path.read_bytes() == before and short.read_text() == "abc\n"
    good = tmp_path / "good.key"
    good.write_text("k" * 32)
    Runner(path, tmp_path)("config", "set", "server.secret_key_file", str(good))
    assert str(good) in path.read_text()


def test_config_set_of_a_database_that_does_not_answer_says_what_it_did(tmp_path: Path) -> None:
    """It wrote the file and then said 'error: cannot use the database' (exit 1): the admin
    would think nothing changed, and the next start used the new URL (a QA pass)."""
    path = _commented(tmp_path)
    pw = Runner(path, tmp_path)
    pw("db", "upgrade")
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1
    done = pw("config", "set", "database.url", url)
    assert "database.url = " in done.stdout and "written to" in done.stdout
    assert "not in the audit log: the database cannot be reached" in " ".join(done.stderr.split())
    assert tomllib.loads(path.read_text())["database"]["url"] == url


def test_piped_tables_are_as_wide_as_their_cells(pw: Runner, tmp_path: Path) -> None:
    """`paperwire status | mail …` (no terminal, no COLUMNS): Rich fitted the tables to 80
    columns and cut every day to "2026-…" (a QA pass)."""
    env = {k: v for k, v in cli_env().items() if k not in ("COLUMNS", "TERMINAL_WIDTH")}
    # read before the run: its 3 days show this day whether or not midnight passes meanwhile
    today = datetime.now(UTC).date().isoformat()
    done = subprocess.run(
        [str(PAPERWIRE), "--config", str(pw.config), "status", "--days", "3"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert f" {today} " in done.stdout and "…" not in done.stdout, done.stdout


def test_a_key_set_by_the_environment_is_read_only(tmp_path: Path) -> None:
    path = _commented(tmp_path)
    env = {**cli_env(), "PAPERWIRE_DIGEST__MAX_PICKS": "4"}
    done = subprocess.run(
        [str(PAPERWIRE), "--config", str(path), "config", "set", "digest.max_picks", "9"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "set by the environment variable PAPERWIRE_DIGEST__MAX_PICKS" in done.stderr


def test_a_secret_is_never_echoed(tmp_path: Path) -> None:
    path = _commented(tmp_path)
    pw = Runner(path, tmp_path)
    pw("db", "upgrade")
    done = pw("config", "set", "email.password", "hunter2-secret")
    assert "hunter2-secret" not in done.stdout + done.stderr and "(secret)" in done.stdout
    audit = Store(make_engine(f"sqlite:///{tmp_path / 'paperwire.db'}")).admin.audit_log()
    assert all("hunter2" not in a.detail for a in audit)
    shown = pw("config", "show").stdout
    assert "hunter2-secret" not in shown


def test_a_secret_is_read_from_standard_input_not_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `config set email.password VALUE` was the only way: the password stayed in the shell's
    # history and in `ps` for every account of the machine to read
    path = _commented(tmp_path)
    pw = Runner(path, tmp_path)
    pw("db", "upgrade")
    monkeypatch.setattr(sys, "stdin", io.StringIO("hunter2 piped\n"))
    done = pw("config", "set", "email.password", "-")
    assert "(secret)" in done.stdout and "hunter2" not in done.stdout + done.stderr
    assert "warning" not in done.stderr
    assert tomllib.loads(path.read_text())["email"]["password"] == "hunter2 piped"
    monkeypatch.setattr(sys, "stdin", io.StringIO("hunter3 piped\n"))
    pw("config", "set", "email.password")  # the value left out: the same
    assert tomllib.loads(path.read_text())["email"]["password"] == "hunter3 piped"
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    empty = pw("config", "set", "server.secret_key", "-", expect=1)
    assert "server.secret_key: no value on standard input" in " ".join(empty.stderr.split())
    # on the command line it is still written, with a warning of one line
    given = pw("config", "set", "email.password", "hunter4-given")
    warning = [line for line in given.stderr.splitlines() if line.strip()]
    assert len(warning) == 1 and "shell's history" in warning[0] and "hunter4" not in warning[0]
    # a key that is no secret needs its value
    needed = pw("config", "set", "schedule.digest_hour", expect=1)
    assert "schedule.digest_hour: give the value" in " ".join(needed.stderr.split())


def test_a_secret_is_asked_for_without_echo_in_a_terminal(tmp_path: Path) -> None:
    path = _commented(tmp_path)
    Runner(path, tmp_path)("db", "upgrade")
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(PAPERWIRE), "--config", str(path), "config", "set", "email.password"],
        cwd=tmp_path, env=cli_env(), stdin=follower, stdout=follower, stderr=follower,
    )  # fmt: skip
    os.close(follower)
    shown = b""

    def read() -> bytes:
        ready, _, _ = select.select([leader], [], [], 60)
        assert ready, f"no answer in 60 s: {shown!r}"
        return os.read(leader, 1024)

    try:
        for _ in range(2):  # asked twice, the second time to confirm
            asked = len(shown)
            # click writes "…:", then getpass turns the echo off (dropping what was typed
            # before) and writes " ": the answer goes after that
            while not shown[asked:].endswith(b": "):
                shown += read()
            os.write(leader, b"typed in secret\n")
        with contextlib.suppress(OSError):  # the terminal closes with the process
            while chunk := read():
                shown += chunk
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    assert proc.wait(timeout=120) == 0, shown
    assert b"typed in secret" not in shown and b"(secret) written" in shown, shown
    assert tomllib.loads(path.read_text())["email"]["password"] == "typed in secret"


def test_concurrent_config_sets_never_leave_a_broken_file(tmp_path: Path) -> None:
    """Three `paperwire config set` processes at once, each on its own key: every change lands
    (the lock serialises the writers) and the file is always whole."""
    path = _commented(tmp_path)
    changes = {
        "digest.max_picks": "3",
        "delivery.max_attempts": "4",
        "schedule.digest_hour": "8",
    }

    def run(item: tuple[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PAPERWIRE), "--config", str(path), "config", "set", *item],
            cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=len(changes)) as pool:
        results = list(pool.map(run, changes.items()))
    assert [r.returncode for r in results] == [0] * len(changes), [r.stderr for r in results]
    data = tomllib.loads(path.read_text())
    assert data["digest"]["max_picks"] == 3 and data["delivery"]["max_attempts"] == 4
    assert data["schedule"]["digest_hour"] == 8
    assert "# everyone gets their digest at seven" in path.read_text()


# ---- admins ------------------------------------------------------------------------------------


def test_admin_set_password_writes_an_argon2_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _commented(tmp_path)
    pw = Runner(path, tmp_path)
    pw("db", "upgrade")
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert "at least 10 characters" in pw("admin", "set-password", "root", expect=1).stderr
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse battery\n"))
    pw("admin", "set-password", "Root")
    text = path.read_text()
    assert "correct horse" not in text
    hashed = tomllib.loads(text)["admin"]["passwords"]["root"]
    assert hashed.startswith("$argon2id$")
    from daemon.passwords import verify_password

    assert verify_password("correct horse battery", hashed)
    assert "root (file)" in pw("admin", "list").stdout
    shown = pw("config", "show").stdout
    assert "$argon2" not in shown and '"root": "**********"' in shown
    monkeypatch.setattr(sys, "stdin", io.StringIO("another long password\n"))
    printed = pw("admin", "set-password", "ops", "--print").stdout
    assert printed.startswith("PAPERWIRE_ADMIN__PASSWORDS__OPS='$argon2id$")
    assert "ops" not in tomllib.loads(path.read_text())["admin"]["passwords"]
    pw("admin", "remove", "root")
    assert "no admins" in pw("admin", "list").stdout
    assert "no admin named 'nobody'" in pw("admin", "remove", "nobody", expect=1).stderr


def test_config_set_of_one_admins_password_points_to_admin_set_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A QA pass: `config set admin.passwords.bob` asked for the value without echo (or read
    it from standard input; given, it warned that it stays in the shell's history) and then
    said "unknown key (did you mean 'admin.passwords'?)"."""
    path = _commented(tmp_path)
    pw = Runner(path, tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse battery\n"))
    refused = pw("config", "set", "admin.passwords.bob", "-", expect=1)
    said = " ".join(refused.stderr.split())
    assert "`paperwire admin set-password bob`" in said and "warning" not in said, said
    assert sys.stdin.read() == "correct horse battery\n"  # not asked for
    said = " ".join(pw("config", "set", "admin.passwords.bob", "x", expect=1).stderr.split())
    assert "`paperwire admin set-password bob`" in said and "warning" not in said, said


def test_admin_list_says_where_each_admin_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A QA pass: with one admin in the environment, `admin list` said "(environment)" of
    every admin, those of the file too."""
    path = _commented(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse battery\n"))
    Runner(path, tmp_path)("admin", "set-password", "root")
    monkeypatch.setattr(sys, "stdin", io.StringIO("another long password\n"))
    printed = Runner(path, tmp_path)("admin", "set-password", "ops", "--print").stdout
    var, _, hashed = printed.strip().partition("=")
    env = {**cli_env(), var: hashed.strip("'")}
    done = subprocess.run(
        [str(PAPERWIRE), "--config", str(path), "admin", "list"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.stdout.splitlines() == ["ops (environment)", "root (file)"], done.stdout


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("ada-lovelace-1815", "contains the admin's name"),
        ("MyNameIsADA!", "contains the admin's name"),
        ("aaaaaaaaaaaa", "one character repeated"),
    ],
)
def test_a_password_of_the_admins_name_or_one_repeated_character_is_refused(
    pw: Runner, monkeypatch: pytest.MonkeyPatch, password: str, why: str
) -> None:
    # the rule checked only the length: `ada` could take "ada-lovelace-1815", root
    # "aaaaaaaaaa", the first guesses of anyone
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{password}\n"))
    refused = pw("admin", "set-password", "Ada", expect=1).stderr
    assert why in " ".join(refused.split()), refused
    assert "ada" not in pw("admin", "list").stdout
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse battery\n"))
    pw("admin", "set-password", "Ada")


def test_a_password_piped_with_a_crlf_line_end_is_the_password_without_it(
    pw: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # admin set-password took off "\n" alone (config set, "\r\n"): a line from a file
    # written on Windows was refused as ending with a space
    from daemon.passwords import verify_password

    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse battery\r\n"))
    pw("admin", "set-password", "ada")
    hashed = tomllib.loads(pw.config.read_text())["admin"]["passwords"]["ada"]
    assert verify_password("correct horse battery", hashed)


# ---- real processes: the daemon's port, metrics, and the terminal ------------------------------


def _first_answer(daemon: subprocess.Popen[bytes], url: str) -> httpx.Response | None:
    """The daemon's first answer at `url` once it listens (None: it ended, or 60 s passed)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and daemon.poll() is None:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.2)
    return None


@contextmanager
def _running(config: Path, tmp_path: Path, **outputs: Any) -> Iterator[subprocess.Popen[bytes]]:
    """`paperwire run` as a real process (`outputs`: its stdout and stderr), killed at the
    end if the test did not stop it."""
    daemon = subprocess.Popen([str(PAPERWIRE), "--config", str(config), "run"], cwd=tmp_path,
                              env=cli_env(), **outputs)  # fmt: skip
    try:
        yield daemon
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=10)


def _daemon_config(tmp_path: Path, port: int, log: str) -> Path:
    """A configuration for `paperwire run` on 127.0.0.1:`port` (`log`: the [log] lines), its
    database upgraded."""
    config = write_config(tmp_path)
    config.write_text(
        config.read_text().replace(
            "[server]",
            f'[server]\nport = {port}\nhost = "127.0.0.1"\nbase_url = "http://127.0.0.1:{port}"',
        )
        .replace('level = "WARNING"', log)
    )  # fmt: skip
    config.chmod(0o600)  # it sets server.secret_key: readable by all, `run` warns (one more line)
    Runner(config, tmp_path)("db", "upgrade")
    return config


def test_a_database_file_others_may_read_is_made_private_by_db_upgrade_and_run(
    tmp_path: Path,
) -> None:
    # eb6be4f made a new SQLite file 0640, but one an earlier version made (0644 under umask
    # 022) stayed readable by every account: the subscribers' addresses and Slack webhooks
    import sqlite3

    port = free_port()
    config = _daemon_config(tmp_path, port, 'level = "WARNING"')
    db = tmp_path / "paperwire.db"
    files = [db, db.with_name("paperwire.db-wal"), db.with_name("paperwire.db-shm")]
    db.chmod(0o644)
    reader = sqlite3.connect(db)  # open (WAL): its -wal and -shm exist, made as the file is
    try:
        reader.execute("SELECT * FROM alembic_version").fetchall()
        assert [oct(f.stat().st_mode & 0o777) for f in files] == ["0o644"] * 3
        said = Runner(config, tmp_path)("db", "upgrade").stdout
        assert [oct(f.stat().st_mode & 0o777) for f in files] == ["0o640"] * 3
    finally:
        reader.close()
    lines = [line for line in said.splitlines() if "other accounts" in line]
    assert len(lines) == 1 and str(db) in lines[0] and "0644 → 0640" in lines[0], said
    again = Runner(config, tmp_path)("db", "upgrade").stdout
    assert "other accounts" not in again  # nothing more to say
    # `run` at its start too (here it stops at once: its port is taken)
    db.chmod(0o664)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        run = subprocess.run(
            [str(PAPERWIRE), "--config", str(config), "run"],
            cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert run.returncode == 1 and "the port is in use" in run.stderr
    assert oct(db.stat().st_mode & 0o777) == "0o660"  # the group's rights stay
    assert "0664 → 0660" in run.stderr, run.stderr


def test_with_json_logs_every_line_of_the_daemon_is_json(tmp_path: Path) -> None:
    """uvicorn's own lines (a bad request, a request's traceback) and the start line were
    plain text among the JSON (a QA pass)."""
    port = free_port()
    config = _daemon_config(tmp_path, port, 'level = "INFO"\njson_format = true')
    log = tmp_path / "daemon.log"
    with (
        log.open("w") as stderr,
        _running(config, tmp_path, stdout=stderr, stderr=stderr) as daemon,
    ):
        _first_answer(daemon, f"http://127.0.0.1:{port}/healthz")
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            s.sendall(b"NOT HTTP AT ALL\r\n\r\n")  # uvicorn logs it (a warning)
            s.recv(1024)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # each line JSON, or this fails
    names = {(e["logger"], e["event"]) for e in events}
    assert ("paperwire.daemon", "paperwire running") in names, names
    assert any(e["logger"].startswith("uvicorn") for e in events), names
    start = next(e for e in events if e["event"] == "paperwire running")
    assert start["listening"] == f"http://127.0.0.1:{port}"


def test_run_serves_and_a_second_run_on_its_port_says_so_in_one_line(tmp_path: Path) -> None:
    """`paperwire run` as a real process: /healthz and /metrics answer, a second `run` on the
    taken port fails in one line, SIGTERM stops the first cleanly (exit 0)."""
    port = free_port()
    config = _daemon_config(tmp_path, port, 'level = "INFO"')
    log = tmp_path / "first.log"
    with (
        log.open("w") as stderr,
        _running(config, tmp_path, stdout=subprocess.DEVNULL, stderr=stderr) as first,
    ):
        metrics = _first_answer(first, f"http://127.0.0.1:{port}/metrics")
        assert metrics is not None and metrics.status_code == 200, log.read_text()
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30)
        assert health.status_code == 200 and health.json() == {"ok": True, "papers": 0}
        assert 'paperwire_digests{state="pending"} 0.0' in metrics.text
        assert "paperwire_feeds_fetched_total" in metrics.text
        assert "paperwire_delivery_latency_seconds_bucket" in metrics.text
        second = subprocess.run(
            [str(PAPERWIRE), "--config", str(config), "run"],
            cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in lines[0]
        assert "paperwire running" not in second.stdout
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
    text = log.read_text()
    assert "scheduler stopped" in text  # SIGTERM: a clean stop, exit 0 (above)
    assert "scheduled job=ingest" in text  # paperwire's own line
    for chatter in ("Adding job", "Added job", "Scheduler started", "Running job"):
        assert chatter not in text  # APScheduler's INFO stays below the log level


def _in_a_terminal(args: list[str], cwd: Path) -> str:
    """Run paperwire with its output on a pseudo-terminal (Rich draws its progress bar)."""
    leader, follower = pty.openpty()
    env = {**cli_env(), "TERM": "xterm", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [str(PAPERWIRE), *args], cwd=cwd, env=env, stdin=follower, stdout=follower,
        stderr=follower,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=120) == 0
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))


def test_in_a_terminal_log_lines_and_errors_are_printed_once_and_whole(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace('level = "WARNING"', 'level = "INFO"'))
    pw = Runner(config, tmp_path)
    pw("db", "upgrade")
    pw("feeds", "add", "hf", HF_FILE.as_uri())
    pw("feeds", "add", "gone", (tmp_path / "gone.xml").as_uri(), "--no-check")
    shown = _in_a_terminal(["--config", str(config), "ingest"], tmp_path)
    lines = [line.strip() for line in shown.replace("\r", "\n").splitlines() if line.strip()]
    assert shown.count("cannot read feed file") == 1, shown  # the summary's line, not the log's
    assert any(re.fullmatch(r"feed failed: gone: .*cannot read feed file.*", x) for x in lines)
    ingested = [x for x in lines if "feed ingested" in x]
    assert len(ingested) == 1 and re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4} INFO +paperwire\.jobs: "
        r"feed ingested feed=hf new=15 known=0 skipped=0",
        ingested[0],
    ), shown
    assert any(x.startswith("ingest: 1 feed(s) ok") for x in lines)


def test_config_unset_of_a_secret_leaves_no_trace_and_prose_stays(tmp_path: Path) -> None:
    # unset comments a key out where it was, but a secret commented out is still in the file
    # (second read); a comment that is prose ("# max_picks = how many …") is no key's place
    path = tmp_path / "lab.toml"
    path.write_text(
        COMMENTED.format(db=tmp_path / "p.db", key=tmp_path / "key", outbox=tmp_path / "o")
        + '\n[email]\npassword = "hunter2-smtp"  # the relay\'s\n'
        + "\n[digest]\n# max_picks = how many papers a digest holds\nmax_picks = 5  # ours\n"
    )
    pw = Runner(path, tmp_path)
    pw("config", "unset", "email.password")
    assert "hunter2" not in path.read_text()
    pw("config", "unset", "digest.max_picks")
    assert "\n# max_picks = 5  # ours\n" in path.read_text()
    pw("config", "set", "digest.max_picks", "7")
    text = path.read_text()
    assert "# max_picks = how many papers a digest holds\nmax_picks = 7\n" in text
    assert tomllib.loads(text)["digest"]["max_picks"] == 7


def test_a_secret_written_into_the_file_leaves_it_readable_by_no_other_account(
    tmp_path: Path,
) -> None:
    # `cp config/paperwire.toml my.toml` under umask 022 makes it 0644; `config set
    # email.password` then wrote the SMTP password into a file every account of the machine
    # could read (and into FILE.previous after a change or an unset), and `config check` said ok
    path = _commented(tmp_path)
    path.write_text(path.read_text().replace('secret_key = "cli-test-secret-0123"\n', ""))
    path.chmod(0o644)
    pw = Runner(path, tmp_path)
    pw("config", "set", "schedule.digest_hour", "9")
    assert path.stat().st_mode & 0o777 == 0o644  # nothing secret in it: left as it was
    pw("config", "set", "email.password", "hunter2-smtp")
    previous = path.with_name(path.name + ".previous")
    assert path.stat().st_mode & 0o777 == 0o640
    pw("config", "unset", "email.password")  # FILE.previous now holds it
    assert "hunter2-smtp" in previous.read_text()
    assert previous.stat().st_mode & 0o777 == 0o640
    # a file made readable by hand: `config check` says so, with the command that mends it
    pw("config", "set", "email.password", "hunter2-smtp")
    path.chmod(0o644)
    checked = pw("config", "check")
    assert "sets email.password and every account of this machine may read it" in flat(
        checked.stderr
    )
    assert f"chmod o-rwx {path}" in flat(checked.stderr)
    assert "hunter2" not in checked.stdout + checked.stderr


def test_a_database_password_of_digits_before_a_slash_is_never_shown(tmp_path: Path) -> None:
    # "pw:12/Zq+w==@db": SQLAlchemy connects with the password "12/Zq+w==", but `config show`
    # and `config check` printed it whole (its digits read as a port), and `config set` left
    # the file readable by every account, without a warning (security QA)
    path = _commented(tmp_path)
    path.write_text(path.read_text().replace('secret_key = "cli-test-secret-0123"\n', ""))
    path.chmod(0o644)
    pw = Runner(path, tmp_path)
    url = "postgresql+psycopg://pw:12/Zq+w==@127.0.0.1:1/x"
    done = pw("config", "set", "database.url", url)
    assert "stays in the shell's history" in flat(done.stderr)
    assert path.stat().st_mode & 0o777 == 0o640
    for command in ("show", "check"):
        said = pw("config", command)
        assert "Zq+w" not in said.stdout + said.stderr
        assert "pw:**********@127.0.0.1:1/x" in said.stdout


def test_the_last_delivery_errors_are_found_behind_a_day_of_pending_digests(store: Store) -> None:
    """At 5,000 subscribers the health page's "Last delivery errors" said "None." while the
    cards said 2,200 failed: it looked for errors among the 50 newest pending or failed
    digests only, and today's pending digests (no error yet) were all of them."""
    from daemon.status import status

    now = datetime.now(UTC)
    store.papers.upsert([_paper(1, now)], None, now)
    pid = store.papers.find("arxiv:2612.00001").id
    made = []
    for i in range(60):
        user = store.people.add(f"u{i}", now, channels={ChannelKind.EMAIL: f"u{i}@lab.example"})
        (channel,) = store.people.channels_of(user.id)
        day = now.date() - timedelta(days=1 if i == 0 else 0)
        made.append(store.digests.create(
            user.id, channel.id, day, [NewItem(pid, 0.5, "similar", "r")], now, cold_start=False
        ))  # fmt: skip
    store.digests.finish(made[0] or 0, now, outcome=Outcome.PERMANENT, detail="550 no mailbox")
    report = status(store, now)
    assert [(d.user, d.last_error) for d in report.recent_errors] == [("u0", "550 no mailbox")]


def test_digests_failed_today_are_counted_by_the_database_and_each_cause_named(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 5,000 subscribers the health page took a second: to say "N digest(s) failed for
    good today" it read every failed digest (up to 10,000, then undercounted) into Python. And
    the line named the newest error only: a Slack webhook gone (404 no_service) was hidden
    behind 2,000 refusals of the mail server. Now the database counts them, a few are read,
    and the line names each cause among them."""
    from daemon.db import health
    from daemon.status import status

    built = []

    class Counted(health.Delivery):
        def __post_init__(self) -> None:
            built.append(self.id)

    monkeypatch.setattr(health, "Delivery", Counted)
    now = datetime.now(UTC)
    store.papers.upsert([_paper(1, now)], None, now)
    pid = store.papers.find("arxiv:2612.00001").id
    for i in range(60):
        kind, address = (ChannelKind.SLACK, f"{HOOK}{i}") if i < 2 else (
            ChannelKind.EMAIL, f"u{i}@lab.example")  # fmt: skip
        user = store.people.add(f"u{i}", now, channels={kind: address})
        (channel,) = store.people.channels_of(user.id)
        item = NewItem(pid, 0.5, "similar", "r")
        made = store.digests.create(user.id, channel.id, now.date(), [item], now, cold_start=False)
        error = "Slack webhook hooks.slack.com/…: HTTP 404 no_service" if i < 2 else "SMTP 530"
        store.digests.finish(made or 0, now, outcome=Outcome.PERMANENT, detail=error)
    report = status(store, now)
    report.problems[:] = [p for p in report.problems if "no feed yet" not in p.what]
    (line,) = [p.what for p in report.problems]
    assert line.startswith("60 digest(s) failed for good today: ")
    assert "SMTP 530" in line and "HTTP 404 no_service" in line
    # what to do says what each cause needs: here a webhook removed in Slack (no address to fix)
    (fix,) = [p.fix for p in report.problems]
    assert "removed in Slack: ask its subscriber for a new one" in fix
    assert len(built) <= 2 * 50  # a few read, not every failed digest (twice: status, errors)


def test_a_rewritten_file_keeps_its_group(tmp_path: Path) -> None:
    # a file root or an admin edits for the daemon's account, read through its group (0640,
    # `chgrp paperwire`): f67948b takes others' rights away once a secret is in it, so a file
    # the writer's own group got instead (root:root) was one the daemon could no longer read
    others = [g for g in os.getgroups() if g != os.getegid()]
    group = 54321 if os.geteuid() == 0 else (others[0] if others else None)
    if group is None:
        pytest.skip("this account is in one group only")
    path = _commented(tmp_path)
    os.chown(path, -1, group)
    path.chmod(0o640)
    pw = Runner(path, tmp_path)
    pw("config", "set", "email.password", "hunter2-smtp")
    previous = path.with_name(path.name + ".previous")
    assert (path.stat().st_gid, previous.stat().st_gid) == (group, group)
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_file_root_rewrites_keeps_its_owner(tmp_path: Path) -> None:
    # the daemon's own file (paperwire:paperwire 0600) edited by root with `config set`: it
    # came back root's, 0600, and the daemon could no longer read its configuration
    if os.geteuid() != 0:
        pytest.skip("only root gives a file to another account")
    path = _commented(tmp_path)
    os.chown(path, 54321, 54321)
    path.chmod(0o600)
    Runner(path, tmp_path)("config", "set", "email.password", "hunter2-smtp")
    previous = path.with_name(path.name + ".previous")
    assert (path.stat().st_uid, path.stat().st_gid) == (54321, 54321)
    assert (previous.stat().st_uid, previous.stat().st_gid) == (54321, 54321)
    assert path.stat().st_mode & 0o777 == 0o600


def test_what_to_do_about_digests_failed_today_covers_the_errors_beyond_those_named(
    store: Store,
) -> None:
    """9a1611e: the line names the three most frequent causes and says "N with other errors";
    when those three were a transport down and webhooks removed in Slack, what to do left out
    "fix the address" although the other errors (a mailbox that does not exist) needed it."""
    from daemon.status import status

    now = datetime.now(UTC)
    store.papers.upsert([_paper(1, now)], None, now)
    pid = store.papers.find("arxiv:2612.00001").id
    down = "TransportUnavailable: smtp.lab.example: 530 authentication required"
    gone = "PermanentDeliveryError: Slack webhook hooks.slack.com/…: HTTP 404 no_service"
    archived = (
        "PermanentDeliveryError: Slack webhook hooks.slack.com/…: HTTP 410 channel_is_archived"
    )
    errors = [down] * 4 + [gone] * 3 + [archived] * 2 + ["PermanentDeliveryError: 550 no mailbox"]
    for i, error in enumerate(errors):
        user = store.people.add(f"u{i}", now, channels={ChannelKind.EMAIL: f"u{i}@lab.example"})
        (channel,) = store.people.channels_of(user.id)
        item = NewItem(pid, 0.5, "similar", "r")
        made = store.digests.create(user.id, channel.id, now.date(), [item], now, cold_start=False)
        store.digests.finish(made or 0, now, outcome=Outcome.PERMANENT, detail=error)
    no_feed, problem = status(store, now).problems  # no feed yet, then the digests failed
    assert no_feed.what.startswith("no feed yet")
    assert problem.what.endswith("; 1 with other errors")
    assert "fix the [email] or [slack] settings" in problem.fix
    assert "ask its subscriber for a new one" in problem.fix
    assert "fix the address" in problem.fix
    assert "paperwire bug" not in problem.fix
    # the webhooks gone are among the errors the Slack transport gives up on at once
    from notifications.transports.slack import PERMANENT_SLACK_ERRORS, WEBHOOK_GONE_ERRORS

    assert WEBHOOK_GONE_ERRORS <= PERMANENT_SLACK_ERRORS


@pytest.mark.parametrize(
    ("refused", "fix"),
    [
        # the webhook works, paperwire's blocks did not
        (
            "MessageRefused: Slack webhook hooks.slack.com/…: HTTP 400 invalid_blocks (…)",
            "paperwire bug to report",
        ),
        # the address is right, the workspace's admins restrict posting there (delivery QA)
        (
            "PermanentDeliveryError: Slack webhook hooks.slack.com/…: HTTP 403 action_prohibited",
            "the workspace's admins",
        ),
    ],
)
def test_digests_slack_refused_for_no_fault_of_the_address_say_who_can_mend_it(
    store: Store, refused: str, fix: str
) -> None:
    # status said "fix the address" for both
    from daemon.status import status

    now = datetime.now(UTC)
    store.papers.upsert([_paper(1, now)], None, now)
    pid = store.papers.find("arxiv:2612.00001").id
    user = store.people.add("ada", now, channels={ChannelKind.EMAIL: "ada@lab.example"})
    (channel,) = store.people.channels_of(user.id)
    item = NewItem(pid, 0.5, "similar", "r")
    made = store.digests.create(user.id, channel.id, now.date(), [item], now, cold_start=False)
    store.digests.finish(made or 0, now, outcome=Outcome.PERMANENT, detail=refused)
    problem = status(store, now).problems[-1]
    assert fix in problem.fix and "fix the address" not in problem.fix


def test_an_empty_arxiv_listing_says_arxiv_announces_nothing_that_day() -> None:
    # `feeds add` of an arXiv listing on a Saturday said "check that it is the one you meant"
    from daemon.jobs.ingest import FeedTrial

    for url in ("https://rss.arxiv.org/rss/cs.LG", "https://export.arxiv.org/rss/hep-th"):
        said = FeedTrial(url, [], 0, 0).summary()
        assert "arXiv announces nothing" in said and "Saturdays" in said, url
    for url in ("http://export.arxiv.org/api/query?search_query=cat:cs.LG", "https://lab/rss/"):
        assert "the one you meant" in FeedTrial(url, [], 0, 0).summary(), url


def test_users_set_names_what_it_changed_in_the_audit_log(pw: Runner, store: Store) -> None:
    """docs/admin.md: "An edit of a subscriber names what it changed, old → new". The console's
    did; `users set` wrote "user changed" with nothing more, so the log could not say who
    moved a reader's digest hour, or paused them."""
    pw("users", "add", "carol", "--email", "carol@lab.example", "--timezone", "Europe/Paris")
    pw("users", "set", "carol", "--timezone", "Europe/Berlin", "--max-picks", "5")
    pw("users", "set", "carol", "--email", "c@lab.example", "--slack-webhook",
       "https://hooks.slack.com/services/T0/B0/secretpart")  # fmt: skip
    changed = [e.detail for e in store.admin.audit_log() if e.action == "user changed"]
    assert changed == [
        "email: carol@lab.example → c@lab.example; Slack webhook: set",  # newest first
        "time zone: 'Europe/Paris' → 'Europe/Berlin'; papers per digest: default → 5",
    ]
    assert not any("secretpart" in e.detail for e in store.admin.audit_log())

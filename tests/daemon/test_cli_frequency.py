"""`paperwire users set --frequency/--weekday/--pause-until/--resume`: checked together, with
one-line errors naming the option; `users list` and `users show` say the frequency."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

from tests.daemon.cli_helpers import flat, write_config
from tests.daemon.in_process import Runner

# the command line reads the real clock: a pause a year ahead is in the future, and within
# the two years a pause may last
FAR = (date.today() + timedelta(days=365)).isoformat()


def test_users_set_frequency_weekday_and_pause(tmp_path: Path) -> None:
    pw = Runner(write_config(tmp_path), tmp_path)
    pw("db", "upgrade")
    pw("users", "add", "ada", "--email", "ada@lab.example", "--timezone", "Asia/Tokyo")
    assert re.search(r"ada .* daily.* yes", flat(pw("users", "list").stdout))

    def refused(*args: str) -> str:
        done = pw("users", "set", "ada", *args, expect=1)
        assert "Traceback" not in done.stderr
        return " ".join(done.stderr.split())

    assert "needs its day: add --weekday mon..sun" in refused("--frequency", "weekly")
    assert "'fortnightly' is not a frequency: write daily or weekly" in refused(
        "--frequency", "fortnightly"
    )
    assert "--weekday: 'someday' is not a day of the week" in refused(
        "--frequency", "weekly", "--weekday", "someday"
    )
    assert "--weekday is for weekly digests" in refused("--weekday", "fri")
    assert "--pause-until: 'soon' is not a date: write YYYY-MM-DD" in refused(
        "--pause-until", "soon"
    )
    assert "2001-01-01 is not after today" in refused("--pause-until", "2001-01-01")
    # 9999-12-31 has no delivery day after it (the console's subscriber list failed on it)
    assert "9999-12-31 is more than two years away" in refused("--pause-until", "9999-12-31")
    assert "contradict" in refused("--pause-until", FAR, "--resume")
    listed = flat(pw("users", "list").stdout)
    assert re.search(r"ada .* daily.* yes", listed)  # nothing changed

    pw("users", "set", "ada", "--frequency", "weekly", "--weekday", "Friday")
    assert re.search(r"ada .* weekly on fri.* yes", flat(pw("users", "list").stdout))
    pw("users", "set", "ada", "--weekday", "sun", "--pause-until", FAR)  # still weekly
    listed = flat(pw("users", "list").stdout)
    assert re.search(rf"ada .* weekly on sun, paused until {FAR}.* yes", listed)
    assert f"frequency: weekly on sun, paused until {FAR}" in pw("users", "show", "ada").stdout
    pw("users", "set", "ada", "--resume", "--frequency", "daily")
    listed = flat(pw("users", "list").stdout)
    assert re.search(r"ada .* daily.* yes", listed) and "paused" not in listed
    # other changes and a bad frequency: nothing is written
    refused("--timezone", "Europe/Paris", "--frequency", "hourly")
    assert "Asia/Tokyo" in pw("users", "list").stdout


def test_digest_for_a_named_user_who_gets_none_says_why(tmp_path: Path) -> None:
    """`paperwire digest --user ada` (or `cycle`) for a paused or unsubscribed reader made
    nothing and said only "0 digest(s) created": the admin could not tell a pause from a
    fault. Now one line each says why, and what resumes them."""
    pw = Runner(write_config(tmp_path), tmp_path)
    pw("db", "upgrade")
    pw("users", "add", "ada", "--email", "ada@lab.example")
    pw("users", "add", "bob", "--email", "bob@lab.example")
    pw("users", "set", "ada", "--pause-until", FAR)
    pw("users", "set", "bob", "--unsubscribe")
    for command in ("digest", "cycle"):
        said = " ".join(pw(command, "--user", "ada", "--user", "bob").stderr.split())
        paused = f"ada is paused until {FAR}: no digest before (`paperwire users set ada --resume`"
        assert paused in said
        assert "bob is unsubscribed: no digest (`paperwire users set bob --subscribe`" in said
    pw("users", "set", "ada", "--resume")
    assert "paused" not in pw("digest", "--user", "ada").stderr

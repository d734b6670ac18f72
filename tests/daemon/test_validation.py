"""Validation where input enters, with the bad inputs of issue 9: each is refused with a message
naming the input and what to do, and nothing is stored."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from daemon.channels import CHANNELS, parse_email
from daemon.checks import check_feed_url, check_follow, check_handle
from daemon.db.models import ChannelKind
from daemon.errors import ConfigError
from daemon.settings import load_settings
from notifications.addresses import email_address
from tests.daemon.cli_helpers import write_config
from tests.daemon.conftest import FEEDS
from tests.daemon.in_process import Runner

HF_FILE = FEEDS / "hf" / "daily_papers_2026-08-20.json"
HOOK = "https://hooks.slack.com/services/T0ABC/B0DEF/s3cretToken"


@pytest.fixture
def pw(tmp_path: Path) -> Runner:
    runner = Runner(write_config(tmp_path), tmp_path)
    runner("db", "upgrade")
    return runner


def _rows(tmp_path: Path, query: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'paperwire.db'}")
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query))]
    finally:
        engine.dispose()


def _refused(pw: Runner, *args: str) -> str:
    done = pw(*args, expect=1)
    assert "Traceback" not in done.stderr
    return " ".join(done.stderr.split())


# ---- email addresses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("dan@", "There must be something after the @-sign"),
        ("eve@@lab.example", "invalid characters"),
        ("eve@lab.example\nBcc: all@lab.example", "line break"),
        ("eve@lab.example\r\nBcc: all@lab.example", "line break"),
        ("", "cannot be empty"),
        ("no-at-sign.example", "@-sign"),
        # beyond ASCII before the @ is taken (SMTPUTF8, tests/notifications/test_smtputf8.py),
        # not a malformed one
        ("josé@@lab.example", "invalid characters"),
    ],
)
def test_bad_email_addresses_are_refused(address: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_email(address)


def test_a_very_long_address_is_refused_before_it_is_parsed() -> None:
    """/signup takes anyone's text: a regex over 40,000 spaces took 13 s (a second read)."""
    with pytest.raises(ValueError, match="an address of 500 characters is too long"):
        parse_email("x" * 484 + " <a@lab.example>")  # 500 characters
    assert parse_email(" " * 40_000 + "a@lab.example")[0] == "a@lab.example"  # stripped first


def test_ids_fit_the_id_columns() -> None:
    """PostgreSQL's INTEGER: 99999999999 passed as an id, and the query failed with a 500."""
    from daemon.checks import as_id

    assert as_id("2147483647") == 2**31 - 1
    assert [as_id(t) for t in ("2147483648", "99999999999", "²", "", "-1", "0x1")] == [None] * 6


def test_an_address_is_normalised_and_a_display_name_parsed() -> None:
    assert parse_email("Eve <eve@Lab.Example>") == ("eve@lab.example", "Eve")
    assert parse_email("ada@lab.example") == ("ada@lab.example", "")
    # names as people write them, unquoted: beyond ASCII, with a dot or a comma
    assert parse_email("Zoë Núñez <zoe@lab.example>") == ("zoe@lab.example", "Zoë Núñez")
    assert parse_email(" Dr. Who  <who@lab.example> ") == ("who@lab.example", "Dr. Who")
    assert parse_email("Lovelace, Ada <ada@lab.example>")[1] == "Lovelace, Ada"
    assert parse_email('"Zoë" <zoe@lab.example>') == ("zoe@lab.example", "Zoë")
    assert email_address(parse_email("zoe@bücher.example")[0]) == "zoe@xn--bcher-kva.example"
    with pytest.raises(ValueError, match="angle bracket"):
        parse_email("Ada <ada@lab.example")
    assert CHANNELS[ChannelKind.EMAIL].check("Eve <eve@lab.example>") == "eve@lab.example"


def test_users_add_refuses_bad_addresses_and_stores_nothing(pw: Runner, tmp_path: Path) -> None:
    for address in ("dan@", "eve@@lab.example", "eve@lab.example\nBcc: all@lab.example"):
        msg = _refused(pw, "users", "add", "dan", "--email", address)
        assert "--email" in msg and ("not an email address" in msg or "line break" in msg)
    assert _rows(tmp_path, "select name from user") == []


def test_a_display_name_in_the_address_is_parsed_not_sent_as_the_address(
    pw: Runner, tmp_path: Path
) -> None:
    """'Eve <eve@lab.example>' was stored as the address and sent as `To: eve <Eve>`."""
    pw("users", "add", "eve", "--email", "Eve <eve@lab.example>")
    assert _rows(tmp_path, "select address from channel") == [("eve@lab.example",)]
    assert _rows(tmp_path, "select display_name from user") == [("Eve",)]
    pw("feeds", "add", "hf", HF_FILE.as_uri())
    pw("cycle")
    (eml,) = (tmp_path / "outbox").glob("*.eml")
    assert "To: Eve <eve@lab.example>" in eml.read_text()


def test_one_address_belongs_to_one_user(pw: Runner, tmp_path: Path) -> None:
    pw("users", "add", "ada", "--email", "ada@lab.example")
    msg = _refused(pw, "users", "add", "ada2", "--email", "ADA@lab.example")
    assert "already the email address of user 'ada'" in msg
    pw("users", "add", "bob", "--email", "bob@lab.example")
    msg = _refused(pw, "users", "set", "bob", "--email", "ada@lab.example")
    assert "already the email address of user 'ada'" in msg
    assert sorted(_rows(tmp_path, "select address from channel")) == [
        ("ada@lab.example",),
        ("bob@lab.example",),
    ]
    pw("users", "set", "ada", "--email", "Ada@Lab.example")  # her own address, another case


# ---- user names, channels, follows -------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "   ", "a b", "-ada", "ada;drop", "x" * 65])
def test_user_names_are_handles(name: str) -> None:
    with pytest.raises(ValueError, match="user name"):
        check_handle(name)


def test_a_display_name_is_one_line(pw: Runner, tmp_path: Path) -> None:
    msg = _refused(pw, "users", "add", "eve", "--email", "eve@lab.example",
                   "--display-name", "Eve\r\nBcc: all@lab.example")  # fmt: skip
    assert "--display-name" in msg and "line break" in msg
    assert _rows(tmp_path, "select count(*) from user") == [(0,)]
    pw("users", "add", "eve", "--email", "eve@lab.example", "--display-name", "  Eve   L. ")
    assert "line break" in _refused(pw, "users", "set", "eve", "--display-name", "a\nb")
    assert _rows(tmp_path, "select display_name from user") == [("Eve L.",)]


def test_an_empty_user_name_is_refused(pw: Runner, tmp_path: Path) -> None:
    msg = _refused(pw, "users", "add", "", "--email", "x@lab.example")
    assert "NAME: a user name cannot be empty" in msg
    assert _rows(tmp_path, "select name from user") == []


def test_a_subscribed_user_is_never_left_without_a_channel(pw: Runner, tmp_path: Path) -> None:
    pw("users", "add", "carol", "--email", "carol@lab.example")
    msg = _refused(pw, "users", "set", "carol", "--email", "")
    assert "no channel" in msg and "unsubscribe" in msg
    assert _rows(tmp_path, "select address from channel") == [("carol@lab.example",)]
    # a swap in one command is fine: both changes are made together
    pw("users", "set", "carol", "--email", "", "--slack-webhook", HOOK)
    assert _rows(tmp_path, "select kind from channel") == [("slack",)]
    # unsubscribed, the last channel may go; subscribing again without one is refused
    pw("users", "set", "carol", "--slack-webhook", "", "--unsubscribe")
    assert _rows(tmp_path, "select count(*) from channel") == [(0,)]
    assert "no channel" in _refused(pw, "users", "set", "carol", "--subscribe")
    assert _rows(tmp_path, "select active from user") == [(0,)]


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/services/T0/B0/x",  # not Slack
        "http://hooks.slack.com/services/T0ABC/B0DEF/s3cretToken",  # not https
        "https://hooks.slack.com/",  # no hook
        "https://hooks.slack.com/services/T0ABC/B0DEF/s3cret Token",
        "https://hooks.slack.com.evil.example/services/T0ABC/B0DEF/tok",
        "hooks.slack.com/services/T0ABC/B0DEF/tok",
    ],
)
def test_slack_webhook_urls_must_look_like_webhooks(url: str) -> None:
    with pytest.raises(ValueError, match="not a Slack incoming-webhook URL") as info:
        CHANNELS[ChannelKind.SLACK].check(url)
    assert "T0ABC" not in str(info.value) and "s3cret" not in str(info.value)  # a secret


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T0ABC/B0DEF/s3cret\nToken",
        "https://hooks.slack.com/services/T0ABC/B0DEF/s3cret\tToken",
        "https://hooks.slack.com/serv\r\nices/T0ABC/B0DEF/s3cretToken",
        "\x01https://hooks.slack.com/services/T0ABC/B0DEF/s3cretToken",
    ],
)
def test_a_webhook_url_with_a_line_break_or_control_character_is_refused(url: str) -> None:
    # urlsplit drops tabs and line breaks (and a leading control character) before the
    # check looked at the URL, which was then stored as typed: every digest to it failed
    # for good ("not a usable webhook URL") until paperwire stopped the channel
    with pytest.raises(ValueError, match="not a Slack incoming-webhook URL") as info:
        CHANNELS[ChannelKind.SLACK].check(url)
    assert "s3cret" not in str(info.value)


def test_a_webhook_url_pasted_with_spaces_around_is_kept_without_them() -> None:
    # " https://hooks.slack.com/…" (a copy with the space before it) was accepted as it was,
    # and the transport refuses a URL with a space: every digest failed
    assert CHANNELS[ChannelKind.SLACK].check(f" {HOOK}\n") == HOOK


def test_real_webhook_shapes_are_accepted() -> None:
    check = CHANNELS[ChannelKind.SLACK].check
    for url in (HOOK, "https://hooks.slack-gov.com/services/T0ABC/B0DEF/s3cretToken"):
        assert check(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/workflows/T01ABC/A02DEF/345678/s3cretToken",
        "https://hooks.slack.com/triggers/T01ABC/345678/s3cretToken",
    ],
)
def test_a_workflow_builder_webhook_is_refused_saying_what_to_use(url: str) -> None:
    # a Workflow Builder webhook takes the workflow's variables, not a message: Slack answered
    # 200 to a digest's blocks, the digest was recorded as sent, and the channel showed the
    # workflow's message with empty variables (or nothing at all), every day
    with pytest.raises(ValueError, match="Workflow Builder") as info:
        CHANNELS[ChannelKind.SLACK].check(url)
    assert "incoming webhook" in str(info.value) and "/services/T…/B…/…" in str(info.value)
    assert "s3cret" not in str(info.value) and "T01ABC" not in str(info.value)


@pytest.mark.parametrize("value", ["", "   ", "\n\t"])
def test_empty_follows_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="empty keyword"):
        check_follow(value)


@pytest.mark.parametrize("value", ["naïve\x00null", "a\x7fb", "x\x1by"])
def test_follows_with_a_control_character_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="contains a control character"):
        check_follow(value)
    assert check_follow(" naïve\u00a0 bayes\n") == "naïve bayes"  # spaces: one each


def test_follow_refuses_empty_keywords_and_authors(pw: Runner, tmp_path: Path) -> None:
    pw("users", "add", "ada", "--email", "ada@lab.example")
    assert "--keyword" in _refused(pw, "follow", "ada", "--keyword", "")
    assert "--author" in _refused(pw, "follow", "ada", "--author", "  ")
    assert "--keyword" in _refused(pw, "follow", "ada", "--keyword", "ok", "--keyword", " ")
    assert _rows(tmp_path, "select count(*) from follow") == [(0,)]
    pw("follow", "ada", "--keyword", "  graph   neural  nets ")
    assert _rows(tmp_path, "select value from follow") == [("graph neural nets",)]


# ---- feed URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("https://", "has no host"),
        ("https://arxiv.org/rss/cs LG", "contains a space"),
        ("127.0.0.1", "not an http(s) URL"),
        ("ftp://ftp.example.org/feed.xml", "not an http(s) URL"),
        ("file:///etc/passwd", "ingest.allow_files"),
        ("http://127.0.0.1/feed.xml", "non-public address 127.0.0.1"),
        ("http://[::1]:8080/feed.xml", "non-public address ::1"),
        ("http://10.1.2.3/feed.xml", "non-public address 10.1.2.3"),
        ("http://169.254.169.254/latest/meta-data/", "non-public address"),
        ("http://127.0.0.1:99999/feed", "not a URL"),
    ],
)
def test_bad_feed_urls_are_refused_with_the_rule(url: str, rule: str) -> None:
    with pytest.raises(ValueError) as info:
        check_feed_url(url, allow_files=False, allow_private=False)
    assert rule in str(info.value)


def test_allowances_of_the_fetcher_apply_when_adding() -> None:
    assert check_feed_url("http://127.0.0.1/f.xml", allow_files=False, allow_private=True)
    assert check_feed_url("file:///srv/f.xml", allow_files=True, allow_private=False)


def test_feeds_add_refuses_bad_urls_at_once(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("allow_files = true", "allow_files = false"))
    pw = Runner(config, tmp_path)
    pw("db", "upgrade")
    for url, rule in (
        ("https://", "has no host"),
        ("https://arxiv.org/rss/cs LG", "contains a space"),
        ("127.0.0.1", "not an http(s) URL"),
        ("http://127.0.0.1/feed.xml", "allow_private_addresses"),
        ("file:///etc/passwd", "allow_files"),
    ):
        msg = _refused(pw, "feeds", "add", "bad", url)
        assert "URL:" in msg and rule in msg, (url, msg)
    assert "feed name" in _refused(pw, "feeds", "add", "", HF_FILE.as_uri())
    assert _rows(tmp_path, "select count(*) from feed") == [(0,)]


# ---- environment and log level -----------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("PAPERWIRE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_unknown_environment_variables_are_reported_with_a_suggestion(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "paperwire.toml"
    path.write_text("")
    clean_env.setenv("PAPERWIRE_EMAIL_PASSWORD", "hunter2-secret")  # one underscore
    clean_env.setenv("PAPERWIRE_SHEDULE__DIGEST_HOUR", "6")
    clean_env.setenv("PAPERWIRE_DIGEST__MAXPICKS", "3")
    clean_env.setenv("PAPERWIRE_WHATEVER", "1")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    msg = str(info.value)
    assert "PAPERWIRE_EMAIL_PASSWORD: unknown environment variable" in msg
    assert "did you mean PAPERWIRE_EMAIL__PASSWORD?" in msg
    assert "did you mean PAPERWIRE_SCHEDULE__DIGEST_HOUR?" in msg
    assert "did you mean PAPERWIRE_DIGEST__MAX_PICKS?" in msg
    assert "PAPERWIRE_WHATEVER" in msg and "PAPERWIRE_<SECTION>__<KEY>" in msg
    assert "4 problem(s)" in msg
    assert "hunter2-secret" not in msg


def test_known_environment_variables_pass(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    path = tmp_path / "paperwire.toml"
    path.write_text("")
    clean_env.setenv("PAPERWIRE_CONFIG", str(path))
    clean_env.setenv("PAPERWIRE_EMAIL__PASSWORD", "x")
    clean_env.setenv("PAPERWIRE_ADMIN__PASSWORDS__ADA", "$argon2id$v=19$m=65536,t=3,p=4$x$y")
    clean_env.setenv("PAPERWIRE_TEST_POSTGRES", "postgresql://…")  # the test suite's own
    settings = load_settings()
    assert settings.admin.passwords == {"ada": "$argon2id$v=19$m=65536,t=3,p=4$x$y"}


@pytest.mark.parametrize("level", ["debug", "Info", " warning ", "ERROR"])
def test_the_log_level_is_case_insensitive(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, level: str
) -> None:
    path = tmp_path / "paperwire.toml"
    path.write_text(f'[log]\nlevel = "{level}"\n')
    assert load_settings(path).log.level == level.strip().upper()
    clean_env.setenv("PAPERWIRE_LOG__LEVEL", level.lower())
    assert load_settings(path).log.level == level.strip().upper()


def test_a_bad_log_level_names_the_choices(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    path = tmp_path / "paperwire.toml"
    path.write_text('[log]\nlevel = "loud"\n')
    with pytest.raises(ConfigError, match=r"log\.level = 'LOUD'.*'DEBUG', 'INFO'"):
        load_settings(path)


# ---- CSV import --------------------------------------------------------------------------------


def test_import_reports_every_bad_row_by_line_and_imports_nothing(
    pw: Runner, tmp_path: Path
) -> None:
    csv = tmp_path / "people.csv"
    csv.write_text(
        "name,email,slack_webhook,timezone,hour\n"
        "ada,ada@lab.example,,Europe/Berlin,7\n"
        "dan,dan@,,,\n"
        ",nobody@lab.example,,,\n"
        "eve,eve@@lab.example,,,\n"
        "carol,,,,\n"
        "frank,frank@lab.example,https://example.org/hook,Mars/Base,25\n"
        "ada,ada2@lab.example,,,\n"
        "gus,ADA@lab.example,,,\n"
    )
    done = pw("users", "import", str(csv), expect=1)
    err = done.stderr
    for expected in (
        "line 3: email: 'dan@' is not an email address",
        "line 4: name: a user name cannot be empty",
        "line 5: email: 'eve@@lab.example'",
        "line 6: give an email address or a Slack webhook",
        "line 7: slack_webhook:",
        "line 7: timezone: not a known time zone",
        "line 7: hour: '25' is not an hour",
        "line 8: user 'ada' is already on line 2",
        "line 9: ada@lab.example is already on line 2",
        "nothing imported",
    ):
        assert expected in err, expected
    assert _rows(tmp_path, "select count(*) from user") == [(0,)]


def test_import_refuses_a_column_it_does_not_read_and_names_a_taken_address_by_line(
    pw: Runner, tmp_path: Path
) -> None:
    """A QA pass: 'timezon' was dropped in silence (the user got UTC); a taken address was
    reported without its line; an hour of '²' would have been a traceback."""
    csv = tmp_path / "typo.csv"
    csv.write_text("name,email,timezon,hour\numa,uma@lab.example,Asia/Tokyo,6\n")
    refused = " ".join(pw("users", "import", str(csv), expect=1).stderr.split())
    assert "line 1: 'timezon' is not a column paperwire reads; did you mean 'timezone'?" in refused
    csv.write_text("name,email\nada,ada@lab.example\nAda,other@lab.example\n")
    twins = " ".join(pw("users", "import", str(csv), expect=1).stderr.split())
    assert "line 3: user 'Ada' is already on line 2" in twins  # in any case, in one file too
    csv.write_text("name,email,hour\numa,uma@lab.example,²\n")
    assert "line 2: hour: '²' is not an hour" in pw("users", "import", str(csv), expect=1).stderr
    pw("users", "add", "bob", "--email", "bob@lab.example")
    csv.write_text("name,email\numa,uma@lab.example\nrex,BOB@lab.example\n")
    taken = " ".join(pw("users", "import", str(csv), expect=1).stderr.split())
    assert "line 3: rex: BOB@lab.example is already the email address of user 'bob'" in taken
    assert _rows(tmp_path, "select count(*) from user") == [(1,)]


def test_a_handle_is_one_users_in_any_case(pw: Runner, tmp_path: Path) -> None:
    """'Ada' was added beside 'ada', and `users show ADA` then found neither (a QA pass)."""
    pw("users", "add", "ada", "--email", "ada@lab.example")
    taken = pw("users", "add", "Ada", "--email", "other@lab.example", expect=1).stderr
    assert "user 'ada' already exists (a handle in any case)" in taken
    assert "ada@lab.example" in pw("users", "show", "ADA").stdout
    csv = tmp_path / "twins.csv"
    csv.write_text("name,email\nbo,bo@lab.example\nADA,other@lab.example\n")
    refused = " ".join(pw("users", "import", str(csv), expect=1).stderr.split())
    assert "line 3: ADA: user 'ada' already exists (a handle in any case)" in refused
    assert _rows(tmp_path, "select name from user") == [("ada",)]


def test_import_of_a_file_the_csv_reader_cannot_read_names_the_line(
    pw: Runner, tmp_path: Path
) -> None:
    """A QA pass: a quote left open early in a big file (its cell then runs on past the csv
    module's field limit) was a traceback, `_csv.Error: field larger than field limit`; and a
    row with more cells than the first row names (a display name's comma unquoted) lost the
    extra cells in silence."""
    csv = tmp_path / "open-quote.csv"
    rows = [f"user{i:04d},u{i}@lab.example" for i in range(6000)]
    csv.write_text('name,email\nada,"ada@lab.example\n' + "\n".join(rows) + "\n")
    done = pw("users", "import", str(csv), expect=1)
    assert "Traceback" not in done.stderr
    said = " ".join(done.stderr.split())
    assert "line 2:" in said and "nothing imported" in said
    csv.write_text("name,email,display_name\nada,ada@lab.example,Lovelace, Ada\nbo,bo@x.org,,\n")
    said = " ".join(pw("users", "import", str(csv), expect=1).stderr.split())
    assert "line 2: 4 cells where the first row names 3 columns" in said
    assert "line 3" not in said  # empty cells at the end, as spreadsheets write them: fine
    assert _rows(tmp_path, "select count(*) from user") == [(0,)]


def test_import_of_a_file_with_no_row_under_its_column_names_says_so(
    pw: Runner, tmp_path: Path
) -> None:
    # "0 added, 0 updated, 0 unchanged" for a file of column names alone (the console QA)
    csv = tmp_path / "header.csv"
    csv.write_text("name,email\n\n")
    said = " ".join(pw("users", "import", str(csv), expect=1).stderr.split())
    assert "no subscriber under its first row" in said and "nothing imported" in said


def test_import_reads_the_semicolons_excel_writes_in_europe(pw: Runner, tmp_path: Path) -> None:
    # "'name;email;…' is not a column" before (imports/feeds QA)
    csv = tmp_path / "excel.csv"
    csv.write_text("name;email;timezone;hour\nzoe;Zoë <zoe@lab.example>;Europe/Berlin;7\n")
    assert "1 added, 0 updated, 0 unchanged" in pw("users", "import", str(csv)).stdout
    zoe = "select display_name, timezone, digest_hour from user where name = 'zoe'"
    assert _rows(tmp_path, zoe) == [("Zoë", "Europe/Berlin", 7)]


def test_import_is_idempotent_and_never_resubscribes(pw: Runner, tmp_path: Path) -> None:
    csv = tmp_path / "lab.csv"
    rows = [f"user{i:04d},User {i} <u{i}@lab.example>,,Asia/Tokyo,{i % 24}" for i in range(300)]
    csv.write_text("\ufeffname,email,slack_webhook,timezone,hour\n" + "\n".join(rows) + "\n")
    assert "300 added, 0 updated, 0 unchanged" in pw("users", "import", str(csv)).stdout
    assert _rows(tmp_path, "select count(*) from channel") == [(300,)]
    five = "select display_name, timezone, digest_hour from user where name = 'user0005'"
    assert _rows(tmp_path, five) == [("User 5", "Asia/Tokyo", 5)]
    pw("users", "set", "user0001", "--unsubscribe")
    assert "0 added, 0 updated, 300 unchanged" in pw("users", "import", str(csv)).stdout
    assert _rows(tmp_path, "select active from user where name = 'user0001'") == [(0,)]
    csv.write_text(
        "name,email,slack_webhook,timezone,hour\n"
        f"user0002,,{HOOK},UTC,9\n"  # moves to Slack
        "newbie,newbie@lab.example,,,\n"
    )
    assert "1 added, 1 updated, 0 unchanged" in pw("users", "import", str(csv)).stdout
    assert _rows(
        tmp_path,
        "select c.kind from channel c join user u on u.id = c.user_id where u.name = 'user0002'",
    ) == [("slack",)]


def test_import_names_every_row_whose_name_or_address_is_taken_at_once(
    pw: Runner, tmp_path: Path
) -> None:
    """A file of 6,000 subscribers with three addresses already other users' and a handle
    taken in another case: the import named the first only ("line 3: …; nothing imported"),
    so the admin fixed one line per try, four tries. Every such row is named at once."""
    pw("users", "add", "bob", "--email", "bob@lab.example")
    pw("users", "add", "cy", "--email", "cy@lab.example")
    pw("users", "add", "ada", "--email", "ada@lab.example")
    csv = tmp_path / "people.csv"
    csv.write_text(
        "name,email\numa,uma@lab.example\nrex,BOB@lab.example\nval,val@lab.example\n"
        "sam,cy@lab.example\nADA,ada2@lab.example\n"
    )
    refused = " ".join(pw("users", "import", str(csv), expect=1).stderr.split())
    for said in (
        "line 3: rex: BOB@lab.example is already the email address of user 'bob'",
        "line 5: sam: cy@lab.example is already the email address of user 'cy'",
        "line 6: ADA: user 'ada' already exists (a handle in any case)",
        "3 problem(s); nothing imported",
    ):
        assert said in refused, said
    assert _rows(tmp_path, "select count(*) from user") == [(3,)]

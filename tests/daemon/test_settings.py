"""daemon.settings.load_settings: clear errors naming file/key/value, env overrides, frozen
settings, the default file documents every key, and `paperwire config check`."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from daemon.errors import ConfigError
from daemon.settings import Settings, load_settings
from tests.daemon.conftest import ROOT
from tests.daemon.in_process import Ran, run_paperwire
from tests.timing import LINEAR_LIMIT, growth

DEFAULT_TOML = ROOT / "config" / "paperwire.toml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PAPERWIRE_* variable of the machine running the tests leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("PAPERWIRE_"):
            monkeypatch.delenv(name)


def _write(tmp_path: Path, text: str, name: str = "paperwire.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)


# ---- bad files -------------------------------------------------------------------------------


def test_bad_time_zone_names_file_key_value_and_what_is_allowed(tmp_path: Path) -> None:
    path = _write(tmp_path, '[schedule]\ntimezone = "Mars/Olympus_Mons"\n')
    msg = _error(path)
    assert str(path) in msg
    assert "schedule.timezone" in msg
    assert "Mars/Olympus_Mons" in msg
    assert "IANA" in msg


def test_digest_hour_out_of_range(tmp_path: Path) -> None:
    path = _write(tmp_path, "[schedule]\ndigest_hour = 25\n")
    msg = _error(path)
    assert str(path) in msg
    assert "schedule.digest_hour" in msg
    assert "25" in msg
    assert "less than or equal to 23" in msg


def test_unknown_key_with_a_typo_suggests_the_right_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "[digest]\nmax_pick = 3\n")
    msg = _error(path)
    assert str(path) in msg
    assert "digest.max_pick" in msg
    assert "unknown key" in msg
    assert "did you mean 'max_picks'" in msg


def test_unknown_section_with_a_typo_suggests_the_right_section(tmp_path: Path) -> None:
    path = _write(tmp_path, '[emial]\nsender = "x@example.org"\n')
    msg = _error(path)
    assert "emial" in msg
    assert "did you mean 'email'" in msg


@pytest.mark.parametrize("key", ["ingest_cron", "digest_cron"])
def test_bad_cron_expression(tmp_path: Path, key: str) -> None:
    path = _write(tmp_path, f'[schedule]\n{key} = "every morning"\n')
    msg = _error(path)
    assert str(path) in msg
    assert f"schedule.{key}" in msg
    assert "every morning" in msg
    assert "5-field crontab" in msg


def test_bad_weekday_in_cron(tmp_path: Path) -> None:
    path = _write(tmp_path, '[schedule]\ningest_cron = "0 6 * * 9"\n')
    msg = _error(path)
    assert "schedule.ingest_cron = '0 6 * * 9'" in msg
    assert "weekday '9'" in msg


def test_bad_toml_syntax_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, '[digest]\nmax_picks = 3\nsubject_prefix = "[paperwire\n')
    msg = _error(path)
    assert str(path) in msg
    assert "not valid TOML" in msg
    assert "line 3" in msg


def test_a_file_not_in_utf8_is_a_configuration_error_naming_the_line(tmp_path: Path) -> None:
    # an editor's Latin-1 "é" in a comment, or Windows' UTF-16: a traceback (UnicodeDecodeError)
    # at start, and from the daemon's watch of the file one every 10 s (operations QA)
    path = tmp_path / "paperwire.toml"
    path.write_bytes("[digest]\n# équipe\nmax_picks = 3\n".encode("latin-1"))
    assert _error(path) == f"{path}: not UTF-8 text (line 2); save it as UTF-8"
    path.write_bytes("[digest]\nmax_picks = 3\n".encode("utf-16"))
    assert "not UTF-8 text (line 1)" in _error(path)
    path.write_bytes("[digest]\nmax_picks = 3\n".encode("utf-8-sig"))  # Notepad's BOM
    assert "byte-order mark" in _error(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "paperwire.toml"
    msg = _error(path)
    assert str(path) in msg
    assert "not found" in msg
    assert "--config" in msg


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    path = _write(tmp_path, "[schedule]\ndigest_hour = -1\n[server]\nport = 70000\n")
    msg = _error(path)
    assert "2 problem(s)" in msg
    assert "schedule.digest_hour = -1" in msg
    assert "server.port = 70000" in msg


def test_secrets_are_never_echoed(tmp_path: Path) -> None:
    # a secret of the wrong type: the key is named, the value is not
    path = _write(tmp_path, "[email]\npassword = 987654321\n[server]\nsecret_key = 123456789\n")
    msg = _error(path)
    assert "email.password" in msg
    assert "server.secret_key" in msg
    assert "987654321" not in msg
    assert "123456789" not in msg
    # a valid secret next to a bad key: only the bad key is reported
    path = _write(tmp_path, '[email]\npassword = "hunter2-secret"\nport = "smtp"\n')
    msg = _error(path)
    assert "email.port = 'smtp'" in msg
    assert "hunter2-secret" not in msg
    # a secret under a mistyped key is not echoed either
    path = _write(tmp_path, '[email]\npasword = "hunter2-secret"\n')
    msg = _error(path)
    assert "email.pasword" in msg
    assert "did you mean 'password'" in msg
    assert "hunter2-secret" not in msg


def test_a_rejected_database_url_does_not_echo_its_password(tmp_path: Path) -> None:
    # "postgres://" (Heroku's spelling) is refused; the message must not carry the password
    path = _write(tmp_path, '[database]\nurl = "postgres://lab:hunter2-secret@db.example/pw"\n')
    msg = _error(path)
    assert "database.url = 'postgres://lab:**********@db.example/pw'" in msg
    assert "hunter2-secret" not in msg


def test_a_rejected_feed_url_does_not_echo_its_token(tmp_path: Path) -> None:
    # the value was masked, but the check's message quoted it whole: `config check`, and the
    # daemon's "configuration not applied" line, showed a private feed's token (operations QA)
    path = _write(
        tmp_path,
        '[[feeds]]\nname = "lab"\nurl = "htps://feeds.lab.example/new?token=hunter2-secret"\n'
        '[[feeds]]\nname = "own"\nurl = "ftp://lab:hunter2-secret@feeds.lab.example/new"\n',
    )
    msg = _error(path)
    assert "is not an http(s) URL" in msg
    assert "token=**********" in msg and "lab:**********@" in msg
    assert "hunter2-secret" not in msg


def test_secrets_are_masked_in_repr(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, '[email]\npassword = "hunter2-secret"\n'))
    assert settings.email.password.get_secret_value() == "hunter2-secret"
    assert "hunter2-secret" not in repr(settings)
    assert "hunter2-secret" not in str(settings.model_dump())


# ---- environment -----------------------------------------------------------------------------


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, '[email]\npassword = "from-file"\n[digest]\nmax_picks = 3\n')
    before = load_settings(path)
    assert before.email.password.get_secret_value() == "from-file"
    assert before.digest.max_picks == 3

    monkeypatch.setenv("PAPERWIRE_EMAIL__PASSWORD", "from-env")
    monkeypatch.setenv("PAPERWIRE_DIGEST__MAX_PICKS", "7")
    after = load_settings(path)
    assert after.email.password.get_secret_value() == "from-env"
    assert after.digest.max_picks == 7
    # the other keys of the overridden sections still come from the file / the defaults
    assert after.email.transport == "file"
    assert after.digest.window_hours == 48


def test_bad_environment_value_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "")
    monkeypatch.setenv("PAPERWIRE_DIGEST__MAX_PICKS", "500")
    msg = _error(path)
    assert "digest.max_picks" in msg
    assert "500" in msg
    assert "less than or equal to 100" in msg
    # the value is not in the file the message names: it says where it came from (an admin
    # read the file, found max_picks right or absent there, and was left to guess)
    assert "(set by PAPERWIRE_DIGEST__MAX_PICKS)" in msg
    monkeypatch.delenv("PAPERWIRE_DIGEST__MAX_PICKS")
    path.write_text("[digest]\nmax_picks = 500\n")
    assert "set by" not in _error(path)  # the file's own: no variable named


def test_a_bad_value_from_a_variable_in_lower_case_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the variables are read in any case (paperwire_digest__max_picks sets max_picks), but
    # only one written in capitals was named: the message named the file alone, where the
    # key was right or absent
    path = _write(tmp_path, "[digest]\nmax_picks = 5\n")
    monkeypatch.setenv("paperwire_digest__max_picks", "500")
    msg = _error(path)
    assert "500" in msg
    assert "(set by paperwire_digest__max_picks)" in msg


def test_a_table_or_list_from_the_environment_is_written_as_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the file, `config set` and docs/admin.md write tables in TOML; from the environment
    # only JSON was read, and the TOML form stopped every command with a pydantic traceback
    path = _write(tmp_path, "")
    monkeypatch.setenv("PAPERWIRE_RECOMMENDER__OPTIONS", "{ max_interests = 3 }")
    monkeypatch.setenv("PAPERWIRE_SERVER__SIGNUP_DOMAINS", '["lab.example"]')
    settings = load_settings(path)
    assert settings.recommender.options == {"max_interests": 3}
    assert list(settings.server.signup_domains) == ["lab.example"]


def test_one_recommender_option_from_the_environment_is_read_as_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PAPERWIRE_RECOMMENDER__OPTIONS__MAX_INTERESTS=3 was taken as a key and its value kept as
    # text: "'3' is not an integer ≥ 1" (operator-docs QA)
    path = _write(tmp_path, "[recommender.options]\nmax_interests = 2\n")
    monkeypatch.setenv("PAPERWIRE_RECOMMENDER__OPTIONS__MAX_INTERESTS", "3")
    monkeypatch.setenv("PAPERWIRE_RECOMMENDER__OPTIONS__USE_ABSTRACT", "false")
    monkeypatch.setenv("PAPERWIRE_RECOMMENDER__OPTIONS__MAX_DF", "0.2")
    monkeypatch.setenv("PAPERWIRE_RECOMMENDER__OPTIONS__METHOD", "tfidf-centroid")  # text
    monkeypatch.setenv("PAPERWIRE_RECOMMENDER__OPTIONS__STOP_WORDS", '"english"')
    settings = load_settings(path)
    assert settings.recommender.options == {
        "max_interests": 3,
        "use_abstract": False,
        "max_df": 0.2,
        "method": "tfidf-centroid",
        "stop_words": "english",
    }


def test_a_string_in_a_table_of_options_from_the_environment_stays_a_string(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one option's variable is read as a value in the file (3, false, "english"); a table of
    # them is read as the file reads it, its quoted strings strings: they were read a second
    # time, "[1]" becoming a list, "true" a switch
    path = _write(tmp_path, "[recommender]\nrefit_growth = 0.2\n")
    monkeypatch.setenv(
        "PAPERWIRE_RECOMMENDER__OPTIONS", '{ token_pattern = "[1]", stop_words = "true" }'
    )
    monkeypatch.setenv("PAPERWIRE_RECOMMENDER__OPTIONS__MAX_INTERESTS", "3")
    options = load_settings(path).recommender.options
    assert options == {"token_pattern": "[1]", "stop_words": "true", "max_interests": 3}


def test_an_environment_value_that_is_no_table_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "")
    monkeypatch.setenv("PAPERWIRE_SERVER__SIGNUP_DOMAINS", "lab.example")
    msg = _error(path)
    assert str(path) in msg
    assert "PAPERWIRE_SERVER__SIGNUP_DOMAINS = 'lab.example'" in msg
    assert '["lab.example"]' in msg  # how to write one
    assert "Traceback" not in msg


def test_an_unreadable_table_of_secrets_from_the_environment_is_not_echoed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAPERWIRE_ADMIN__PASSWORDS", "{ada: $argon2id$v=19$hush}")
    msg = _error(_write(tmp_path, ""))
    assert "PAPERWIRE_ADMIN__PASSWORDS" in msg
    assert "hush" not in msg


def test_a_channel_stop_after_more_refusals_than_a_database_counts_is_refused(
    tmp_path: Path,
) -> None:
    # accepted (by `config set` too), it broke the whole delivery run at the first digest
    # refused for good: "OverflowError: Python int too large to convert to SQLite INTEGER"
    msg = _error(_write(tmp_path, "[delivery]\nstop_channel_after = 99999999999999999999\n"))
    assert "delivery.stop_channel_after" in msg and "less than or equal to 1000" in msg


def test_paperwire_config_variable_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "[digest]\nmax_picks = 4\n", name="other.toml")
    monkeypatch.setenv("PAPERWIRE_CONFIG", str(path))
    assert load_settings().digest.max_picks == 4


# ---- frozen ----------------------------------------------------------------------------------


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, "[digest]\nmax_picks = 4\n"))
    with pytest.raises(ValidationError):
        settings.digest.max_picks = 5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.digest = settings.digest  # type: ignore[misc]
    assert settings.digest.max_picks == 4
    hash(settings.schedule)  # frozen sections are hashable


# ---- the default file ------------------------------------------------------------------------


def test_default_file_parses_to_exactly_the_defaults() -> None:
    loaded = load_settings(DEFAULT_TOML)
    defaults = Settings()
    assert loaded.model_dump() == defaults.model_dump()
    # SecretStr compares masked in model_dump: compare the secret values too
    assert loaded.email.password.get_secret_value() == defaults.email.password.get_secret_value()
    assert loaded.server.secret_key.get_secret_value() == ""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):  # tuple[FeedSettings, ...], X | None
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _all_keys(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str, bool]]:
    """(dotted path, key name, is a section) for every field, recursively."""
    for name, info in model.model_fields.items():
        sub = _model_of(info.annotation)
        yield prefix + name, name, sub is not None
        if sub is not None:
            yield from _all_keys(sub, prefix + name + ".")


def test_default_file_documents_every_key() -> None:
    text = DEFAULT_TOML.read_text()
    keys = list(_all_keys(Settings))
    assert len(keys) > 50  # the walk really went into the sections
    missing = []
    for dotted, name, is_section in keys:
        if is_section:
            pattern = rf"^\s*#?\s*\[\[?{re.escape(name)}\]\]?\s*$"
        else:  # `key = value`, possibly commented out (the [[feeds]] example)
            pattern = rf"^\s*#?\s*{re.escape(name)}\s*="
        if not re.search(pattern, text, re.M):
            missing.append(dotted)
    assert missing == [], f"keys not documented in {DEFAULT_TOML}: {missing}"


def test_documented_keys_walk_finds_nested_feed_keys() -> None:
    dotted = {d for d, _, _ in _all_keys(Settings)}
    assert {"feeds.name", "feeds.url", "feeds.enabled", "email.password"} <= dotted


# ---- paperwire config check ------------------------------------------------------------------


def _paperwire(*args: str, cwd: Path) -> Ran:
    return run_paperwire(*args, cwd=cwd)


def test_config_check_accepts_the_default_file() -> None:
    done = _paperwire("--config", str(DEFAULT_TOML), "config", "check", cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "is valid" in done.stdout


def test_config_check_rejects_a_bad_file_naming_the_key(tmp_path: Path) -> None:
    path = _write(
        tmp_path, '[schedule]\ntimezone = "Nowhere/Atlantis"\n[email]\npassword = 31337\n'
    )
    done = _paperwire("--config", str(path), "config", "check", cwd=tmp_path)
    assert done.returncode == 1
    assert "schedule.timezone" in done.stderr
    assert "Nowhere/Atlantis" in done.stderr
    assert "email.password" in done.stderr
    assert "31337" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_config_check_rejects_unknown_recommender_options(tmp_path: Path) -> None:
    path = _write(tmp_path, "[recommender]\noptions = { max_interest = 3 }\n")
    done = _paperwire("--config", str(path), "config", "check", cwd=tmp_path)
    assert done.returncode == 1
    flat = " ".join(done.stderr.split())
    assert "recommender.options" in flat and "max_interest" in flat


def test_config_check_rejects_bad_recommender_values(tmp_path: Path) -> None:
    path = _write(tmp_path, '[recommender]\noptions = { cf_rank = "lots", method = "cf-mapp" }\n')
    done = _paperwire("--config", str(path), "config", "check", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    flat = " ".join(done.stderr.split())
    assert "cf_rank" in flat and "'lots'" in flat
    assert "cf-mapp" in flat and "did you mean 'cf-map'" in flat


def test_an_empty_link_key_file_is_refused_not_used(tmp_path: Path) -> None:
    """An empty key file (a crash between creating and writing it) signed every link with the
    empty key: anyone could forge unsubscribe or like links for any subscriber."""
    from daemon.app import link_secret

    key_file = tmp_path / "secret.key"
    key_file.write_text("\n")
    settings = Settings(server={"secret_key_file": str(key_file)})
    with pytest.raises(ConfigError, match="too short"):
        link_secret(settings)
    key_file.unlink()
    made = link_secret(settings)
    assert len(made) >= 32 and link_secret(settings) == made


def test_a_short_link_key_is_used_and_warned_of(tmp_path: Path) -> None:
    """server.secret_key = "changeme" signed every link in silence: anyone guessing it could
    unsubscribe anyone. It is still used (the links already sent keep working), and `run` and
    `config check` say so (not every command and delivery worker: that was noise)."""
    from daemon.app import _links

    short = Settings(server={"secret_key": "changeme", "secret_key_file": str(tmp_path / "k")})
    links = _links(short)
    assert links.read(links.token("unsubscribe", 1)).user_id == 1  # still the key
    said = short.server.weak_key()
    assert "server.secret_key is 8 characters long" in said and "changeme" not in said
    assert Settings(server={"secret_key": "x" * 16}).server.weak_key() == ""
    assert Settings().server.weak_key() == ""  # a key file, made long
    path = _write(tmp_path, '[server]\nsecret_key = "changeme"\nsecret_key_file = "k"\n')
    checked = run_paperwire("--config", str(path), "config", "check", cwd=tmp_path)
    assert checked.returncode == 0
    assert "server.secret_key is 8 characters long" in " ".join(checked.stderr.split())


def test_a_new_link_key_for_a_database_that_has_sent_digests_is_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """paperwire started in another directory than its relative secret_key_file (its database
    on PostgreSQL, or an absolute path, found all the same) made a new key there in silence:
    every link of the digests already sent (unsubscribe, like, the subscriber's page) stopped
    working. A first key, for a database that has sent nothing, is made without a word."""
    import sqlalchemy as sa

    from daemon.app import App, make_app
    from daemon.db.engine import upgrade
    from tests.daemon.jobs.helpers import users_with_digests

    db = f"sqlite:///{tmp_path / 'paperwire.db'}"

    def app_with_key(key_file: Path) -> App:
        return make_app(Settings(database={"url": db}, server={"secret_key_file": str(key_file)}))

    with caplog.at_level(logging.INFO):
        first = app_with_key(tmp_path / "srv" / "secret.key")
        upgrade(first.store.engine)
        users_with_digests(first, 2)
        first.close()
        assert "link-signing key" not in caplog.text  # nothing sent yet: the first key
        with sa.create_engine(db).begin() as conn:
            conn.execute(sa.text("UPDATE digest SET state = 'sent'"))
        app_with_key(tmp_path / "srv" / "secret.key").close()  # its own key: nothing said
        assert "link-signing key" not in caplog.text
        app_with_key(tmp_path / "home" / "secret.key").close()
    said = " ".join(caplog.text.split())
    assert f"made a new link-signing key in {tmp_path / 'home' / 'secret.key'}" in said
    assert "this database has sent digests" in said and "no longer work" in said


def test_an_unwritable_link_key_file_is_a_clear_error(tmp_path: Path) -> None:
    from daemon.app import link_secret
    from daemon.settings import Settings

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    settings = Settings(server={"secret_key_file": str(blocker / "secret.key")})
    with pytest.raises(ConfigError, match="cannot create the link-signing key"):
        link_secret(settings)


def test_digests_are_kept_a_fortnight_at_least_or_for_ever(tmp_path: Path) -> None:
    assert load_settings(_write(tmp_path, "")).digest.keep_days == 365
    assert load_settings(_write(tmp_path, "[digest]\nkeep_days = 0\n")).digest.keep_days == 0
    assert load_settings(_write(tmp_path, "[digest]\nkeep_days = 14\n")).digest.keep_days == 14
    with pytest.raises(ConfigError, match=r"keep_days = 7: keep at least 14 days.*or 0"):
        load_settings(_write(tmp_path, "[digest]\nkeep_days = 7\n"))
    # a longer window needs longer: a weekly subscriber's 10 + 6 days and a day's margin
    ten_days = "[digest]\nwindow_hours = 240\nkeep_days = {}\n"
    with pytest.raises(ConfigError, match=r"keep at least 19 days .* window_hours = 240"):
        load_settings(_write(tmp_path, ten_days.format(18)))
    assert load_settings(_write(tmp_path, ten_days.format(19))).digest.keep_days == 19


@pytest.mark.parametrize(
    ("sender", "says"),
    [
        ("not an email", "is not one email address"),
        ("", "is not one email address"),
        ("a@", "is not one email address"),
        ("a@b.org, c@d.org", "is not one email address"),
        ("Bob <bob@x.org>\\nBcc: z@y.org", "contains a line break or a control character"),
        # passed the check, and every digest then waited: "the sender '=?utf-8?b?…?=' is not
        # one email address" (a From beyond ASCII before the @ needs SMTPUTF8 for every message)
        ("Отчёт <отчёт@lab.example>", "the part before the @ must be ASCII"),
        # a domain with no ASCII (IDNA) form passed too, and every digest then failed for good
        # ("the 'List-Id' header contains … a byte that is not ASCII")
        ("Lab <digest@lab_ü.example>", "'lab_ü.example' after the @ is not a domain name"),
    ],
)
def test_the_sender_is_one_address(tmp_path: Path, sender: str, says: str) -> None:
    """Every message would fail at the SMTP transport with another sender (a QA pass saved
    'not an email' from the console, and messages went out 'From: not')."""
    msg = _error(_write(tmp_path, f'[email]\nsender = "{sender}"\n'))
    assert "email.sender" in msg and says in msg


@pytest.mark.parametrize(
    "sender",
    ["Zoë <zoe@lab.example>", '\\"Lab, Inc.\\" <x@lab.example>', "Lab <digest@bücher.example>"],
)
def test_a_sender_may_have_any_display_name(tmp_path: Path, sender: str) -> None:
    settings = load_settings(_write(tmp_path, f'[email]\nsender = "{sender}"\n'))
    assert settings.email.sender.endswith(".example>")


def test_an_unknown_recommender_option_is_named_with_the_closest(tmp_path: Path) -> None:
    from daemon.app import recommender_config

    settings = load_settings(_write(tmp_path, "[recommender.options]\ncf_rnak = 64\n"))
    with pytest.raises(ConfigError, match=r"'cf_rnak' is not an option .* did you mean 'cf_rank'"):
        recommender_config(settings)


@pytest.mark.parametrize(
    ("feeds", "says"),
    [
        ('{name = "a", url = "https://x.org/a"}, {name = "a", url = "https://x.org/b"}',
         "the name 'a' is given to more than one feed"),
        ('{name = "a", url = "htp://nowhere"}', "is not an http(s) URL; a feed's address starts"),
        ('{name = "a", url = "https:///path"}', "'https:///path' has no host"),
        ('{name = "a", url = "https://x.org/a b"}', "contains a space"),
        ('{name = "a b", url = "https://x.org/a"}', "is not a valid feed name"),
        ('{name = "a", url = "file:///srv/a.xml"}', "ingest.allow_files = true"),
    ],
)  # fmt: skip
def test_feeds_of_the_file_are_checked_as_feeds_add_checks_them(
    tmp_path: Path, feeds: str, says: str
) -> None:
    """A QA pass: two feeds of one name passed `config check`, then the ingest failed on the
    database's unique name; 'htp://nowhere' failed only at the ingest."""
    secret = '[email]\npassword = "hunter2-secret"\n'
    msg = _error(_write(tmp_path, f"feeds = [{feeds}]\n{secret}"))
    assert says in msg
    # a rule of the whole file said what broke it, not the file's values (its secrets too)
    assert "hunter2" not in msg and "{" not in msg.split(says)[0].split("\n")[-1]


def test_a_ca_file_that_is_not_there_is_named(tmp_path: Path) -> None:
    """It passed, and each delivery failed with a FileNotFoundError naming no file."""
    msg = _error(_write(tmp_path, '[email]\nca_file = "/nonexistent.pem"\n'))
    assert "email.ca_file" in msg and "'/nonexistent.pem' is not a file" in msg


@pytest.mark.parametrize("url", ["sqlite:/nowhere/x.db", "mysql://x", "postgres-ish"])
def test_a_database_url_paperwire_cannot_use_is_refused_at_once(tmp_path: Path, url: str) -> None:
    """'sqlite:/nowhere' was an SQLAlchemy traceback at start, 'mysql://' one for its driver."""
    msg = _error(_write(tmp_path, f'[database]\nurl = "{url}"\n'))
    assert "database.url" in msg and "paperwire runs on SQLite or PostgreSQL" in msg


def test_the_base_url_is_the_root_of_a_host(tmp_path: Path) -> None:
    """Under a path, the pages' own links (/manage, /admin/…) would leave the proxy's path."""
    msg = _error(_write(tmp_path, '[server]\nbase_url = "https://lab.example/papers/"\n'))
    assert "server.base_url" in msg and "not under a path" in msg
    ok = load_settings(_write(tmp_path, '[server]\nbase_url = "https://papers.lab.example/"\n'))
    assert str(ok.server.base_url) == "https://papers.lab.example/"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://lab:pw@db/x", "postgresql://lab:**********@db/x"),
        (
            "postgresql://lab@db/x?sslmode=require&password=pw",
            "postgresql://lab@db/x?sslmode=require&password=**********",
        ),
        (
            "sqlite:////srv/p.db?sslpassword=k&mode=ro",
            "sqlite:////srv/p.db?sslpassword=**********&mode=ro",
        ),
        ("sqlite:///var/paperwire.db", "sqlite:///var/paperwire.db"),
        (  # an error naming the URL: the punctuation after the token is the message's
            "'https://lab/atom?token=t0k': HTTP 404 (https://lab/?key=k), next",
            "'https://lab/atom?token=**********': HTTP 404 (https://lab/?key=**********), next",
        ),
        (  # the name as the driver reads it, percent-decoded
            "postgresql://lab@db/x?%70assword=pw&ssl%6Dode=require",
            "postgresql://lab@db/x?%70assword=**********&ssl%6Dode=require",
        ),
        (  # a private feed's address: a signed URL, an auth parameter (author, design: no)
            "https://lab/feed?auth=a1&sig=s2&Signature=s3&X-Amz-Signature=s4&author=Ann&design=d",
            "https://lab/feed?auth=**********&sig=**********&Signature=**********"
            "&X-Amz-Signature=**********&author=Ann&design=d",
        ),
        (
            "https://u:p4ss@lab/feed?api_key=k1&apikey=k2&secret=s&password=p",
            "https://u:**********@lab/feed?api_key=**********&apikey=**********"
            "&secret=**********&password=**********",
        ),
        (  # an "@" typed raw in the password or the user name: masked to the last one
            "https://u:p@ss@lab/feed and https://me@lab.org:s3cr@t@host/ (alice@lab.org)",
            "https://u:**********@lab/feed and https://me@lab.org:**********@host/ (alice@lab.org)",
        ),
        ("https://lab:8443/@ann.rss", "https://lab:8443/@ann.rss"),  # no user: nothing masked
        (  # a "/" typed raw in the password (base64): SQLAlchemy reads the password to the "@"
            # and connects with it; it was shown whole ("ab/cd", "k9/Zq+w==")
            "postgresql://lab:ab/cd@db/x; https://u:k9/Zq+w==@lab/feed",
            "postgresql://lab:**********@db/x; https://u:**********@lab/feed",
        ),
        (  # a port: left alone (its query's "@" ended a password before)
            "https://lab:8443/feed/@ann (https://lab:8443/x/y@z) https://lab:8443?by=a@b",
            None,
        ),
        (
            "https://lab:443/@ann,https://u:p/w@lab/",
            "https://lab:443/@ann,https://u:**********@lab/",
        ),
    ],
)
def test_a_database_url_is_shown_without_its_password(url: str, shown: str | None) -> None:
    # `config show` printed a password given as a parameter of the URL (security QA)
    from daemon.settings import shown_url

    assert shown_url(url) == (url if shown is None else shown)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # a password of digits before a "/" typed raw (base64: "12/Zq+w=="): SQLAlchemy reads
        # it to the "@" and connects with it; shown_url takes the digits for a port
        ("postgresql+psycopg://pw:12/Zq+w==@db/x", "postgresql+psycopg://pw:**********@db/x"),
        ("postgresql://lab:ab/cd@db/x", "postgresql://lab:**********@db/x"),
        ("postgresql://lab@db:5432/x", None),  # a port, no password
        ("postgresql://lab@db/x?password=pw", "postgresql://lab@db/x?password=**********"),
        ("sqlite:////srv/paperwire.db", None),
    ],
)
def test_a_database_url_is_shown_without_the_password_sqlalchemy_reads(
    url: str, shown: str | None
) -> None:
    # `config show` and `config check` printed "pw:12/Zq+w==@db" whole
    # (security QA)
    from sqlalchemy.engine import make_url

    from daemon.settings import shown_database_url

    assert shown_database_url(url) == (url if shown is None else shown)
    password = make_url(url).password
    assert not password or password not in shown_database_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg//paperwire:s3cretpass@db/x",  # "://" mistyped
        "postgresql+psycopg:/paperwire:s3cretpass@db/x",
        " postgresql://paperwire:s3cretpass@db/x",  # a space before it
    ],
)
def test_a_database_url_sqlalchemy_cannot_read_is_refused_without_its_password(
    tmp_path: Path, url: str
) -> None:
    # the error quoted the value whole: "database.url = 'postgresql+psycopg//paperwire:
    # s3cretpass@db/x': paperwire runs on SQLite or PostgreSQL" (security QA)
    msg = _error(_write(tmp_path, f'[database]\nurl = "{url}"\n'))
    assert "database.url" in msg and "runs on SQLite or PostgreSQL" in msg
    assert "s3cretpass" not in msg and ":**********@db/x" in msg


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (lambda n: "https://lab/atom?token=" + ":" * n + "x", 10_000),  # a web page's <link>
        (lambda n: "https://lab/" + "?a" * n, 10_000),
        (lambda n: "https://u:p/" * n, 2_500),  # no "@": each password read to the next "://"
    ],
)
def test_masking_a_text_takes_time_in_proportion_to_its_length(
    text: Callable[[int], str], size: int
) -> None:
    # every feed error goes through shown_url, and a web page given as a feed is quoted with
    # the feed links its <head> names (200 KB of it): 50,000 colons took 20 s, 200,000 five
    # minutes of the ingest, "?a" repeated as long (each read again from every place)
    from daemon.settings import shown_url

    short, long = text(size), text(4 * size)
    assert growth(lambda: shown_url(short), lambda: shown_url(long)) < LINEAR_LIMIT


@pytest.mark.parametrize(
    ("cron", "warned"),
    [
        ("5 * * * *", False),
        ("*/20 * * * *", False),
        ("59 * * * *", False),
        ("0 8 * * *", True),  # those whose hour is later than 08:00 UTC there: never a digest
        ("5 */2 * * *", True),
        ("5 6-22 * * *", True),
        ("5 * * * 1-5", True),  # none at weekends
    ],
)
def test_a_digest_cron_that_leaves_an_hour_without_a_run_is_a_warning(
    cron: str, warned: bool
) -> None:
    # config/paperwire.toml asked for a run every hour, and nothing said it when not
    for tz in ("UTC", "Europe/Berlin", "Australia/Lord_Howe"):
        said = Settings(schedule={"digest_cron": cron, "timezone": tz}).schedule.hours_unreached()
        assert bool(said) == warned, (cron, tz)
        if warned:
            assert f"schedule.digest_cron {cron!r} leaves hours without a run" in said
            assert "'5 * * * *'" in said


def test_a_base_url_on_this_machine_at_another_port_is_a_warning() -> None:
    # the port changed, not the address: every digest's link reached nothing (imports QA)
    assert Settings().server.links_elsewhere() == ""
    moved = Settings(server={"port": 18301}).server.links_elsewhere()
    assert "points at this machine on port 8080, but paperwire listens on port 18301" in moved
    assert "http://127.0.0.1:18301" in moved
    proxied = {"port": 18301, "base_url": "https://papers.lab.example"}
    assert Settings(server=proxied).server.links_elsewhere() == ""
    assert (
        Settings(
            server={"port": 18301, "base_url": "http://localhost:18301"}
        ).server.links_elsewhere()
        == ""
    )


@pytest.mark.parametrize("domain", ["pw lab.example", "lab.example>", "a@lab.example", "lab_ü"])
def test_a_message_id_domain_that_is_no_domain_is_refused(tmp_path: Path, domain: str) -> None:
    """It passed `config check`, and every digest's Message-ID was then broken ("lab_ü" went
    out as an encoded word, "lab.example>" closed the id early): the threads and duplicates
    that mail clients tell by it were lost."""
    msg = _error(_write(tmp_path, f'[email]\nmessage_id_domain = "{domain}"\n'))
    assert "email.message_id_domain" in msg and "is not a domain name" in msg


def test_a_message_id_domain_beyond_ascii_is_taken() -> None:
    email = Settings(email={"sender": "d@lab.example", "message_id_domain": "bücher.example"})
    assert email.email.id_domain == "bücher.example"  # written as IDNA in the header


def test_the_sender_is_parsed_once_not_at_every_message(monkeypatch: pytest.MonkeyPatch) -> None:
    # every message asked `id_domain`, which parsed email.sender with the email package's
    # header parser: 17 % of rendering a digest (the render regression of bench/README.md)
    from notifications import mailbox

    parsed: list[object] = []
    real = mailbox.address_header

    def counted(name: str, value: object) -> Any:
        parsed.append(value)
        return real(name, value)

    monkeypatch.setattr(mailbox, "address_header", counted)
    email = Settings(email={"sender": "Once <once@parsed-once.example>"}).email
    assert {email.id_domain for _ in range(100)} == {"parsed-once.example"}
    assert len(parsed) <= 1
    # a new sender (the configuration changed while running) is its own
    email = Settings(email={"sender": "Twice <twice@parsed-twice.example>"}).email
    assert email.id_domain == "parsed-twice.example"


def test_the_message_id_domain_is_the_senders_unless_given() -> None:
    # one fixed default ("paperwire.localhost") gave two installations the same Message-ID for
    # the same digest id, channel and day: a mailbox that gets both dropped the second
    email = Settings(email={"sender": "Lab digests <digests@lab.example>"}).email
    assert email.id_domain == "lab.example"
    given = Settings(email={"sender": "digests@lab.example", "message_id_domain": "pw.lab.example"})
    assert given.email.id_domain == "pw.lab.example"
    shipped = load_settings(ROOT / "config" / "paperwire.toml")  # the file a clone starts with
    assert shipped.email.id_domain == "localhost"  # its sender, paperwire@localhost


def test_the_schedule_may_run_on_the_servers_own_clock() -> None:
    # a subscriber's zone must be a place's (e1da1b3), but `[schedule] timezone = "localtime"`
    # (the cron times on the server's clock) worked before that and stopped the daemon at start
    # after the upgrade (second read)
    assert Settings(schedule={"timezone": "localtime"}).schedule.timezone == "localtime"
    with pytest.raises(ValidationError, match="not a known time zone"):
        Settings(schedule={"timezone": "Mars/Base"})


def test_an_empty_outbox_folder_and_an_overlong_subject_prefix_are_refused(
    tmp_path: Path,
) -> None:
    """`outbox_dir = ""` put the outbox in whatever folder the daemon started in, and a subject
    prefix of a thousand characters made a Subject line longer than SMTP's 998 (the console
    QA and the delivery QA)."""
    msg = _error(_write(tmp_path, '[delivery]\noutbox_dir = ""\n'))
    assert "delivery.outbox_dir" in msg and "var/outbox" in msg
    msg = _error(_write(tmp_path, f'[digest]\nsubject_prefix = "{"x" * 201}"\n'))
    assert "digest.subject_prefix" in msg and "200" in msg
    prefix = "[paperwire] "
    settings = load_settings(_write(tmp_path, f'[digest]\nsubject_prefix = "{prefix}"\n'))
    assert settings.digest.subject_prefix == prefix


def test_a_number_of_days_is_at_most_a_hundred_years(tmp_path: Path) -> None:
    # digest.keep_days = 10000000 passed, and the prune's date went before the year 1
    # (OverflowError at every run); the seconds, minutes and hours were capped already
    msg = _error(_write(tmp_path, "[digest]\nkeep_days = 10000000\n"))
    assert "digest.keep_days" in msg and "36,525" in msg
    assert load_settings(_write(tmp_path, "[digest]\nkeep_days = 36525\n")).digest.keep_days


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://lab:p@ss3cret@db.example/x",  # an "@" typed raw in the password
        "postgresql+psycopg://lab:p@ss@w0rd3cret@db.example:5432/x",
    ],
)
def test_a_database_url_with_a_raw_at_sign_is_refused_without_its_password(
    tmp_path: Path, url: str
) -> None:
    """SQLAlchemy reads the password to the first '@' and the rest ('ss3cret@db.example') as
    the host: the driver's error, 'failed to resolve host 'ss3cret@db.example'', showed the
    password's end on the terminal and in the journal. Such a URL never connects: refused at
    the check, saying how to write the '@'."""
    msg = _error(_write(tmp_path, f'[database]\nurl = "{url}"\n'))
    assert "database.url" in msg and "%40" in msg
    assert "ss3cret" not in msg and "w0rd" not in msg
    # written as the message says, it is read and its password is SQLAlchemy's whole
    from sqlalchemy.engine import make_url

    user, _, rest = url.partition(":p")
    password, _, host = rest.rpartition("@")
    fixed = f"{user}:p{password.replace('@', '%40')}@{host}"
    ok = load_settings(_write(tmp_path, f'[database]\nurl = "{fixed}"\n'))
    assert make_url(ok.database.url).host == "db.example"

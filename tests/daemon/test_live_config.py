"""Settings changed while the daemon runs: the watched file is applied (jobs rescheduled), an
invalid one is not (and said once), and what is built from the settings follows them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from daemon.app import App, make_app
from daemon.config_file import edit, keys
from daemon.db.engine import upgrade
from daemon.errors import ConfigError
from daemon.scheduler import ConfigWatch, make_scheduler
from daemon.settings import load_settings
from tests.daemon.web.conftest import write_console_config


@pytest.fixture
def watched(
    tmp_path: Path, db_url: str, clock: Callable[[], datetime]
) -> Iterator[tuple[App, Path]]:
    config = write_console_config(tmp_path, db_url, "http://127.0.0.1:8080")
    app = make_app(load_settings(config), clock=clock, config_file=config)
    upgrade(app.store.engine)
    yield app, config
    app.close()


def test_every_key_has_a_comment_for_the_console_form() -> None:
    assert [k.key for k in keys() if not k.comment] == []


def test_a_changed_file_is_applied_and_the_jobs_rescheduled(
    watched: tuple[App, Path], caplog: pytest.LogCaptureFixture
) -> None:
    app, config = watched
    scheduler = make_scheduler(app)
    scheduler.start(paused=True)
    try:
        watch = ConfigWatch(app)
        watch()  # nothing changed: nothing happens
        assert app.settings.schedule.digest_cron == "5 * * * *"
        edit(config, {"schedule.digest_cron": "35 6 * * *", "schedule.timezone": "Asia/Tokyo"})
        watch()
        assert app.settings.schedule.digest_cron == "35 6 * * *"
        trigger = scheduler.get_job("digest").trigger
        fields = {f.name: str(f) for f in trigger.fields}
        assert (fields["minute"], fields["hour"], str(trigger.timezone)) == (
            "35",
            "6",
            "Asia/Tokyo",
        )

        # a broken file is not applied, and said once
        good = config.read_text()
        config.write_text(good.replace('digest_cron = "35 6 * * *"', 'digest_cron = "soon"'))
        with caplog.at_level(logging.ERROR, logger="paperwire.daemon"):
            watch()
            watch()
        assert [r.msg for r in caplog.records].count("configuration not applied") == 1
        assert app.settings.schedule.digest_cron == "35 6 * * *"
        config.write_text(good.replace("35 6", "50 7"))
        watch()
        assert {f.name: str(f) for f in scheduler.get_job("digest").trigger.fields}["hour"] == "7"
    finally:
        scheduler.shutdown(wait=False)


def test_a_file_that_fails_to_apply_is_said_once_not_every_ten_seconds(
    watched: tuple[App, Path], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an error other than a ConfigError (a non-UTF-8 file's UnicodeDecodeError was one) logged
    # its traceback at every look at the file, every 10 s (operations QA)
    app, config = watched
    watch = ConfigWatch(app)

    def broken(new: object) -> list[str]:
        raise RuntimeError("cannot apply")

    monkeypatch.setattr(app, "apply_settings", broken)
    edit(config, {"digest.max_picks": "3"})
    with caplog.at_level(logging.ERROR, logger="paperwire.daemon"):
        for _ in range(3):
            watch()
    assert [r.msg for r in caplog.records] == ["configuration not applied"]
    assert caplog.records[0].exc_info is not None  # with its traceback, once


def test_a_new_error_for_the_same_file_is_said_too(
    watched: tuple[App, Path], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # said once per version of the file: the key file it names mended, and refused now for
    # another reason (unreadable), the daemon said nothing and ran on the old settings
    app, config = watched
    watch = ConfigWatch(app)
    errors = iter([ConfigError("key file too short")] * 2 + [ConfigError("key file unreadable")])

    def refused(new: object) -> list[str]:
        raise next(errors)

    monkeypatch.setattr(app, "apply_settings", refused)
    edit(config, {"digest.max_picks": "3"})
    with caplog.at_level(logging.ERROR, logger="paperwire.daemon"):
        for _ in range(3):
            watch()
    assert [r.error for r in caplog.records] == ["key file too short", "key file unreadable"]  # type: ignore[attr-defined]


def test_a_file_not_in_utf8_is_a_configuration_error_at_a_change_too(
    watched: tuple[App, Path],
) -> None:
    # an editor's Latin-1 "é" put in the file while the daemon runs: the watch says "not UTF-8
    # text", but the console's Save (and `config set`) answered a UnicodeDecodeError, a 500
    from daemon.config_file import restore_previous

    _, config = watched
    edit(config, {"digest.max_picks": "4"})  # a previous version, kept
    text = config.read_text(encoding="utf-8")
    config.write_bytes(text.replace("[digest]", "# équipe\n[digest]", 1).encode("latin-1"))
    line = text.split("[digest]")[0].count("\n") + 1
    said = rf"not UTF-8 text \(line {line}\)"
    with pytest.raises(ConfigError, match=said):
        edit(config, {"digest.max_picks": "3"})
    with pytest.raises(ConfigError, match=said):
        restore_previous(config)
    assert b"\xe9quipe" in config.read_bytes()  # left as it was


def test_a_change_refused_for_its_key_file_changes_nothing(
    watched: tuple[App, Path], tmp_path: Path
) -> None:
    # a key file too short (or in a folder it cannot write) refused the change, said so ("not
    # applied"), but the settings had been replaced already: the jobs ran on them, the
    # schedule did not follow (operations QA)
    app, config = watched
    watch = ConfigWatch(app)
    before = app.settings
    short = tmp_path / "short.key"
    short.write_text("abc")
    # by hand, in an editor: `edit` (config set, the console) refuses such a file now
    import tomlkit

    doc = tomlkit.parse(config.read_text())
    doc["server"]["secret_key"], doc["server"]["secret_key_file"] = "", str(short)
    doc.setdefault("digest", tomlkit.table())["max_picks"] = 3
    config.write_text(tomlkit.dumps(doc))
    with pytest.raises(ConfigError, match="too short"):  # and edit would not have written it
        edit(config, {"digest.max_picks": 4})
    watch()
    assert app.settings == before and app.settings.digest.max_picks != 3


def test_what_is_built_from_the_settings_follows_them(watched: tuple[App, Path]) -> None:
    app, config = watched
    fetcher = app.fetcher
    links = app.links
    assert app.apply_settings(edit(config, {"digest.max_picks": 4})) == []
    assert app.fetcher is fetcher and app.links is links  # untouched by a digest key
    app.apply_settings(edit(config, {"ingest.timeout_seconds": 7.5}))
    assert app.fetcher is not fetcher  # rebuilt on next use; the old client closes at the end
    app.apply_settings(edit(config, {"server.base_url": "https://papers.lab.example"}))
    assert app.links.unsubscribe_url(1).startswith("https://papers.lab.example/unsubscribe/")
    restart = app.apply_settings(edit(config, {"server.port": 9090}))
    assert restart == ["server.port"]


def test_a_digest_cron_that_leaves_hours_without_a_run_is_a_warning_when_applied(
    watched: tuple[App, Path], caplog: pytest.LogCaptureFixture
) -> None:
    # `run` and `config check` warn of it; a change while the daemon ran said nothing
    app, config = watched
    scheduler = make_scheduler(app)
    scheduler.start(paused=True)
    try:
        watch = ConfigWatch(app)
        with caplog.at_level(logging.WARNING, logger="paperwire.daemon"):
            edit(config, {"schedule.digest_cron": "35 * * * *"})
            watch()
            edit(config, {"schedule.digest_cron": "35 6 * * *"})
            watch()
        said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(said) == 1
        assert "schedule.digest_cron '35 6 * * *' leaves hours without a run" in said[0]
    finally:
        scheduler.shutdown(wait=False)


def test_a_cron_that_never_fires_is_refused_naming_its_key_and_the_old_schedule_kept(
    watched: tuple[App, Path], caplog: pytest.LogCaptureFixture
) -> None:
    # "0 0 30 2 *" (30 February) is five valid fields, but no day matches: taken, the digest
    # job got no next run time, and APScheduler paused it: no digest again, and no error said
    app, config = watched
    scheduler = make_scheduler(app)
    scheduler.start(paused=True)
    try:
        watch = ConfigWatch(app)
        good = config.read_text()
        assert 'digest_cron = "5 * * * *"' in good
        # written by an editor (`edit` refuses it as the console does)
        config.write_text(good.replace('digest_cron = "5 * * * *"', 'digest_cron = "0 0 30 2 *"'))
        with caplog.at_level(logging.ERROR, logger="paperwire.daemon"):
            watch()
        errors = [r.error for r in caplog.records if r.msg == "configuration not applied"]  # type: ignore[attr-defined]
        assert len(errors) == 1
        assert "schedule.digest_cron" in errors[0] and "never" in errors[0]
        assert app.settings.schedule.digest_cron == "5 * * * *"
        job = scheduler.get_job("digest")
        assert {f.name: str(f) for f in job.trigger.fields}["minute"] == "5"
        assert job.next_run_time is not None
    finally:
        scheduler.shutdown(wait=False)

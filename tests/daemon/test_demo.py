"""`paperwire demo`: one real cycle on the bundled samples, then the console's address and a
demo password that opens it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from daemon.app import make_app
from daemon.demo import DEMO_DIR, demo_settings
from daemon.passwords import verify_password
from daemon.scheduler import make_daemon
from daemon.settings import load_settings
from tests.daemon.cli_helpers import write_config
from tests.daemon.in_process import Runner
from tests.daemon.web.conftest import log_in


def test_the_demo_prints_the_console_and_a_password_that_opens_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = Runner(write_config(tmp_path), tmp_path)("demo")
    flat = " ".join(done.stdout.split())
    assert "4 digest(s) made, 4 delivered" in flat
    found = re.search(r"The console: (http://\S+/admin) — name demo, password (\S+) ", flat)
    assert found, flat
    url, password = found.groups()
    assert url == "http://127.0.0.1:8080/admin"
    assert "paperwire demo --serve" in flat
    # how to try the subscriber's side: a like, the page, an import of the demo's library
    assert "“👍 More like this”" in flat and "“Manage your digest”" in flat
    library = re.search(r"imports (\S+library\.bib) ", flat)
    assert library and Path(library.group(1)).is_file()
    digest = re.search(r"open Nova's digest (\S+\.html) ", flat)
    assert digest and "Manage your digest" in (tmp_path / digest.group(1)).read_text()
    assert "paperwire.toml preview nova --text` shows the digest she would get now" in flat

    monkeypatch.chdir(tmp_path)  # the demo's paths are relative to where it ran
    config = DEMO_DIR / "paperwire.toml"
    assert config.stat().st_mode & 0o077 == 0  # it holds a password hash: the owner's only
    settings = load_settings(config)
    assert verify_password(password, settings.admin.passwords["demo"])
    app = make_app(demo_settings(settings, DEMO_DIR), config_file=config)
    try:
        client = TestClient(make_daemon(app).web, base_url="https://127.0.0.1:8080")
        log_in(client, "demo", password)
        health = client.get("/admin/health").text
        assert 'id="count-sent">4<' in health
        subscribers = client.get("/admin/subscribers").text
        for name in ("ada", "grace", "lin", "nova"):
            assert f'id="user-{name}"' in subscribers
        assert "Hi Ada" in client.get("/admin/subscribers/ada/preview").text
    finally:
        app.close()

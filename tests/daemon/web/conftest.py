"""Fixtures of the web tests: Debian's Chromium driven by Playwright (skipped with the reason
where it is missing, except with PAPERWIRE_REQUIRE_BROWSER=1, as in CI), and the console's
daemon (scheduler not running, web app, metrics) built from a real configuration file with one
admin, on the test database and the test's clock."""

from __future__ import annotations

import functools
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from daemon.app import App, make_app
from daemon.db.engine import upgrade
from daemon.passwords import hash_password, verify_password
from daemon.scheduler import Daemon, make_daemon
from daemon.settings import load_settings
from daemon.web.subscriber import FORM_COOKIE
from tests.servers import free_port

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _browser_problem() -> str | None:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture
def browser_page() -> Iterator[object]:
    problem = _browser_problem()
    if problem:
        if os.environ.get("PAPERWIRE_REQUIRE_BROWSER") == "1":
            pytest.fail(problem + " (PAPERWIRE_REQUIRE_BROWSER=1)")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield browser.new_page()
        finally:
            browser.close()


@contextmanager
def served_on_loopback(web: Any, port: int) -> Iterator[None]:
    """A real uvicorn server for `web` (a FastAPI app) on 127.0.0.1:`port`, in a thread, for
    the browser tests; stopped on exit."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # a wait, not a timing assertion: 10 s was one
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


PASSWORD = "correct horse battery"


@functools.cache
def root_hash() -> str:
    return hash_password(PASSWORD)


def write_console_config(
    tmp_path: Path, db_url: str, base_url: str, extra: str = "", allow_private: bool = True
) -> Path:
    path = tmp_path / "paperwire.toml"
    path.write_text(
        f"""# the console's test configuration
[database]
url = "{db_url}"

[server]
# where the links point
base_url = "{base_url}"
secret_key = "console-test-secret"

[schedule]
# the digest job's schedule
digest_cron = "5 * * * *"

[ingest]
allow_private_addresses = {str(allow_private).lower()}
allow_files = true
arxiv_min_interval_seconds = 0.0

[digest]
# the recorded feeds are older than the tests' clock: their papers are still news
max_age_days = 36500

[delivery]
outbox_dir = "{tmp_path / "outbox"}"

[log]
level = "WARNING"

[admin]
passwords = {{ root = "{root_hash()}" }}
max_failed_logins = 3
{extra}"""
    )
    return path


@dataclass
class Console:
    """The daemon under test and its configuration file."""

    daemon: Daemon
    config: Path

    @property
    def app(self) -> App:
        return self.daemon.app


ConsoleFactory = Callable[..., Console]


@pytest.fixture
def console_factory(
    tmp_path: Path, db_url: str, clock: Callable[[], datetime]
) -> Iterator[ConsoleFactory]:
    made: list[Daemon] = []

    def build(
        base_url: str = "https://127.0.0.1:8080", extra: str = "", allow_private: bool = True
    ) -> Console:
        config = write_console_config(tmp_path, db_url, base_url, extra, allow_private)
        app = make_app(load_settings(config), clock=clock, config_file=config)
        upgrade(app.store.engine)
        daemon = make_daemon(app)
        daemon.scheduler.start(paused=True)  # jobs are scheduled; none runs
        made.append(daemon)
        return Console(daemon, config)

    yield build
    for daemon in made:
        daemon.scheduler.shutdown(wait=False)
        daemon.app.close()


@pytest.fixture
def live(console_factory: ConsoleFactory) -> Iterator[tuple[Console, str]]:
    """A console served by uvicorn on 127.0.0.1 for a real browser, and its address."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"  # loopback: Chromium keeps Secure cookies over http
    console = console_factory(base_url=base)
    with served_on_loopback(console.daemon.web, port):
        yield console, base


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def log_in(client: TestClient, name: str = "root", password: str = PASSWORD) -> str:
    """Log in through the form; returns the session's CSRF token."""
    page = client.get("/admin/login")
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token, page.text
    done = client.post(
        "/admin/login", data={"name": name, "password": password, "token": token.group(1)}
    )
    assert done.status_code == 200 and done.url.path == "/admin/health", done.text
    return csrf_of(done.text)


def hold_password_checks(
    monkeypatch: pytest.MonkeyPatch, hold: float, of: str | None = None
) -> tuple[threading.Semaphore, threading.Event]:
    """A fake slow hasher: every login's password check (or only those of the password `of`,
    when given: the others are checked for real) waits (at most `hold` seconds) until the test
    sets the event, and fails; the semaphore counts the checks held."""
    from daemon.web import auth

    checking, release = threading.Semaphore(0), threading.Event()
    real = verify_password  # what `auth` calls

    def held(password: str, hashed: str | None) -> bool:
        if of is not None and password != of:
            return real(password, hashed)
        checking.release()
        release.wait(hold)
        return False

    monkeypatch.setattr(auth, "verify_password", held)
    return checking, release


def ask_for(client: TestClient, path: str, data: dict[str, str], **kw: Any) -> Any:
    """POST the form of `/manage` or `/signup` as its page sends it: with the page's token,
    in the form and in its cookie (Secure: httpx keeps it from a plain http test client)."""
    page = client.get(path)
    token = csrf_of(page.text)
    cookie = f"{FORM_COOKIE}={page.cookies.get(FORM_COOKIE) or ''}"
    return client.post(path, data={**data, "csrf": token}, headers={"Cookie": cookie}, **kw)

"""Screenshots for the docs: the demo's digest email (its HTML part) and a subscriber's page,
rendered by Debian's Chromium through Playwright, saved as docs/img/digest.png and
docs/img/subscriber-page.png.

    .venv/bin/python docs/screenshots.py

It builds the demo's world in a temporary directory (the bundled samples in config/demo/, the
demo's subscribers, one cycle: nothing under var/ is touched, no network), imports
config/demo/library.bib into Ada's likes, serves the web app on 127.0.0.1 for her page and
closes everything when done. Needs Chromium at /usr/bin/chromium (no browser is downloaded),
an emoji font (apt-get install chromium fonts-noto-color-emoji) and the dev dependencies
(playwright).
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import uvicorn

from daemon import jobs
from daemon.app import make_app
from daemon.db.engine import upgrade
from daemon.db.models import ChannelKind, FollowKind
from daemon.db.people import LIKE
from daemon.demo import DEMO_USERS, SAMPLES, demo_settings
from daemon.library.importer import import_library
from daemon.library.read import read_library
from daemon.settings import ServerSettings, Settings
from daemon.web.pages import make_web

IMG = Path(__file__).resolve().parent / "img"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WIDTH = 760
# a fixed time: the same pictures every run (the samples are recorded feeds)
NOW = datetime(2026, 8, 21, 8, 0, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    from playwright.sync_api import sync_playwright

    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = Settings(
            server=ServerSettings(base_url=f"http://127.0.0.1:{port}", secret_key="screenshots")
        )
        app = make_app(demo_settings(base, root), clock=lambda: NOW)
        try:
            upgrade(app.store.engine)
            jobs.ingest(app, NOW)
            users = {}
            for u in DEMO_USERS:
                channels = {ChannelKind.EMAIL: u.email or "", ChannelKind.SLACK: u.slack or ""}
                user = app.store.people.add(
                    u.name, NOW, channels=channels, display_name=u.display_name
                )
                users[u.name] = user
                for ref in u.likes:
                    app.store.people.set_feedback(user.id, app.store.papers.find(ref).id, LIKE, NOW)
                for kw in u.keywords:
                    app.store.people.set_follow(user.id, FollowKind.KEYWORD, kw, muted=False)
            jobs.digest_and_deliver(app, NOW, force=True)
            outbox = app.settings.delivery.outbox_dir
            digest = next(p for p in sorted(outbox.glob("*.html")) if "ada" in p.name)
            library = read_library((SAMPLES / "library.bib").read_bytes(), name="library.bib")
            import_library(app, "ada", library, NOW, source="library.bib", max_fetch=0)

            server = uvicorn.Server(
                uvicorn.Config(make_web(app), host="127.0.0.1", port=port, log_level="warning")
            )
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            deadline = time.monotonic() + 10
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.05)
            try:
                with sync_playwright() as pw:
                    browser = pw.chromium.launch(
                        executable_path=CHROMIUM, args=FLAGS, headless=True
                    )
                    page = browser.new_page(viewport={"width": WIDTH, "height": 1300})
                    page.goto(digest.as_uri())
                    page.screenshot(path=str(IMG / "digest.png"))
                    page.goto(app.links.manage_url(users["ada"].id, NOW))
                    page.wait_for_load_state("load")
                    page.screenshot(path=str(IMG / "subscriber-page.png"))
                    browser.close()
            finally:
                server.should_exit = True
                thread.join(timeout=10)
        finally:
            app.close()
    for name in ("digest.png", "subscriber-page.png"):
        print(f"{IMG / name}: {(IMG / name).stat().st_size // 1000} KB")


if __name__ == "__main__":
    main()

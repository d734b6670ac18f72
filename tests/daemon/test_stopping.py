"""`paperwire run` stopped while it delivers to a mail server that holds a message until the
test lets it go (a real aiosmtpd server): the first SIGTERM ends the run after the message in
flight, with what was sent recorded and the rest given back; a second signal ends the process
at once. What is in flight when the signal comes is held by the test, not timed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from daemon.db import Store, make_engine
from daemon.db.digests import NewItem
from daemon.db.engine import upgrade
from daemon.db.models import ChannelKind
from daemon.ingest.parse import PaperIn
from tests.servers import free_port

PAPERWIRE = Path(sys.executable).parent / "paperwire"
DIGESTS = 12
FREE_MESSAGES = 2  # accepted at once; the next ones wait for `HeldMailbox.release`


class HeldMailbox:
    """aiosmtpd handler: accepts the first `free` messages at once, the others once the test
    sets `release` (never, if it does not: the daemon's stop then waits on the one in flight)."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.release = threading.Event()
        self.started = 0  # messages whose DATA arrived (in flight or accepted)
        self.received: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.started += 1
        if self.started > self.free:
            while not self.release.is_set():  # cancelled when the server stops
                await asyncio.sleep(0.01)
        self.received.extend(envelope.rcpt_tos)
        return "250 OK"


@pytest.fixture
def slow_smtp(request: pytest.FixtureRequest) -> Iterator[tuple[int, HeldMailbox]]:
    mailbox = HeldMailbox(getattr(request, "param", FREE_MESSAGES))
    port = free_port()  # below the ephemeral range, as 9b1bde7 (not bound to 0 and released)
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, mailbox
    finally:
        controller.stop()


def _prepare(tmp_path: Path, smtp_port: int) -> tuple[Path, str]:
    """A configuration and a database with DIGESTS pending digests."""
    db = f"sqlite:///{tmp_path / 'paperwire.db'}"
    port = free_port()
    config = tmp_path / "paperwire.toml"
    config.write_text(
        f"""
[database]
url = "{db}"
[server]
base_url = "http://127.0.0.1:{port}"
port = {port}
secret_key = "stop-test-secret"
[schedule]
ingest_cron = "0 0 1 1 *"
digest_cron = "0 0 1 1 *"
catch_up_delay_seconds = 0.5
[email]
transport = "smtp"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
timeout_seconds = 600  # a held message is not given up while the test runs
[delivery]
claim_batch = 50
"""
    )
    engine = make_engine(db)
    upgrade(engine)
    store = Store(engine)
    now = datetime.now(UTC)
    paper = PaperIn(key="arxiv:1", title="A paper", abstract="", authors=(), url="", published=now)
    store.papers.upsert([paper], None, now)
    pid = store.papers.find("arxiv:1").id
    for i in range(DIGESTS):
        user = store.people.add(f"u{i}", now, channels={ChannelKind.EMAIL: f"u{i}@lab.example"})
        (channel,) = store.people.subscribers([user.name])[0][1]
        store.digests.create(
            user.id, channel.id, date.today(), [NewItem(pid, 0.5, "similar", "r")], now,
            cold_start=False,
        )  # fmt: skip
    engine.dispose()
    return config, db


def _start(
    config: Path, tmp_path: Path, command: str = "run"
) -> tuple[subprocess.Popen[bytes], Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERWIRE_")}
    log = tmp_path / "run.log"
    proc = subprocess.Popen(
        [str(PAPERWIRE), "--config", str(config), *command.split()],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    return proc, log


def _wait_for(predicate: Any, what: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()}")


def _rows(db: str) -> list[tuple[str, Any]]:
    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            return [
                tuple(r) for r in conn.execute(sa.text("SELECT state, leased_until FROM digest"))
            ]
    finally:
        engine.dispose()


def test_sigterm_stops_after_the_message_in_flight(
    tmp_path: Path, slow_smtp: tuple[int, HeldMailbox]
) -> None:
    port, mailbox = slow_smtp
    config, db = _prepare(tmp_path, port)
    proc, log = _start(config, tmp_path)
    try:
        # the catch-up job starts delivering after start; stop it mid-batch, with the third
        # message held in flight until the daemon has said it is stopping
        _wait_for(lambda: mailbox.started > FREE_MESSAGES, "a message in flight", log)
        proc.send_signal(signal.SIGTERM)
        _wait_for(lambda: "stopping" in log.read_text(), "the stop", log)
        mailbox.release.set()
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert code == 0, log.read_text()
    rows = _rows(db)
    sent = [r for r in rows if r[0] == "sent"]
    waiting = [r for r in rows if r[0] == "pending"]
    # what the server accepted is recorded as sent (the one in flight included), the rest wait
    # unclaimed for the next run
    assert len(sent) == len(mailbox.received) == FREE_MESSAGES + 1, log.read_text()
    assert len(waiting) == DIGESTS - len(sent)
    assert all(leased is None for _, leased in waiting), "claims were not given back"
    assert "claims given back" in log.read_text()


@pytest.mark.parametrize(
    ("command", "sig"),
    [
        ("deliver", signal.SIGINT),
        ("cycle", signal.SIGTERM),
        ("deliveries retry " + " ".join(map(str, range(1, DIGESTS + 1))), signal.SIGINT),
    ],
)
def test_a_command_stopped_mid_delivery_records_the_message_in_flight(
    tmp_path: Path, slow_smtp: tuple[int, HeldMailbox], command: str, sig: signal.Signals
) -> None:
    """`paperwire deliver` (or `cycle`, `deliveries retry`) stopped by Ctrl-C or SIGTERM: as
    the daemon, the message in flight is recorded and the rest given back. Before, the first
    Ctrl-C ended it at once: the message the server had accepted stayed pending, the next run
    sent it again, and the claims were held for a lease."""
    port, mailbox = slow_smtp
    config, db = _prepare(tmp_path, port)
    proc, log = _start(config, tmp_path, command)
    try:
        _wait_for(lambda: mailbox.started > FREE_MESSAGES, "a message in flight", log)
        proc.send_signal(sig)
        _wait_for(lambda: "stopping" in log.read_text(), "the stop", log)
        mailbox.release.set()
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert code == 128 + sig, log.read_text()  # stopped, not done: not 0
    rows = _rows(db)
    sent = [r for r in rows if r[0] == "sent"]
    waiting = [r for r in rows if r[0] == "pending"]
    assert len(sent) == len(mailbox.received) == FREE_MESSAGES + 1, log.read_text()
    assert len(waiting) == DIGESTS - len(sent)
    assert all(leased is None for _, leased in waiting), "claims were not given back"
    assert "given back" in log.read_text()


@pytest.mark.parametrize("slow_smtp", [0], indirect=True)  # the first stop never ends
def test_a_second_signal_ends_the_process_at_once(
    tmp_path: Path, slow_smtp: tuple[int, HeldMailbox]
) -> None:
    port, mailbox = slow_smtp
    config, _ = _prepare(tmp_path, port)
    proc, log = _start(config, tmp_path)
    try:
        _wait_for(lambda: mailbox.started >= 1, "a message in flight", log)
        proc.send_signal(signal.SIGTERM)
        _wait_for(lambda: "stopping" in log.read_text(), "the first stop", log)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert code == -signal.SIGTERM, log.read_text()  # died of the second signal
    assert "second signal" in log.read_text()

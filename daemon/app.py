"""Wiring: everything a job needs (store, fetcher, links, transports, clock), built in one place.

The HTTP clients are made on first use: a command that never fetches or posts does not pay
for them (nor for importing httpx)."""

from __future__ import annotations

import functools
import logging
import os
import secrets
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.clock import utcnow
from daemon.db import Store, make_engine
from daemon.errors import ConfigError
from daemon.settings import SHORT_KEY, Settings
from daemon.web.links import Links

log = logging.getLogger("paperwire.daemon")

if TYPE_CHECKING:  # the recommender imports scikit-learn: only load it when ranking
    import httpx
    from sqlalchemy import Engine

    from daemon.ingest.fetch import Fetcher
    from recommender import Recommender, RecommenderConfig


@dataclass
class App:
    """The wired application. Jobs take it and a `now`."""

    settings: Settings
    store: Store
    links: Links
    clock: Callable[[], datetime] = utcnow
    smtp_ssl_context: ssl.SSLContext | None = None
    http_transport: httpx.BaseTransport | None = None  # tests: a transport of their own
    # set on SIGTERM: jobs finish what is in flight, give back what they have not started
    stopping: threading.Event = field(default_factory=threading.Event)
    model_cache: tuple[int, Recommender] | None = None  # (fitted size, model) between runs
    config_file: Path | None = None  # where the settings came from (None: built in code)
    # called with (old, new) when the settings change while running (the scheduler's jobs)
    settings_hooks: list[Callable[[Settings, Settings], None]] = field(default_factory=list)
    _retired: list[Any] = field(default_factory=list)  # clients a running job may still use

    @functools.cached_property
    def fetcher(self) -> Fetcher:
        """The feeds' HTTP client (timeouts, size cap, SSRF guard, arXiv's request budget)."""
        from daemon.ingest.fetch import make_fetcher

        ing = self.settings.ingest
        return make_fetcher(
            timeout=ing.timeout_seconds,
            max_bytes=ing.max_bytes,
            user_agent=ing.user_agent,
            min_interval=ing.arxiv_min_interval_seconds,
            allow_private=ing.allow_private_addresses,
            allow_files=ing.allow_files,
            transport=self.http_transport,
            stopping=self.stopping,
        )

    @functools.cached_property
    def slack_http(self) -> httpx.Client:
        """The HTTP client of Slack webhooks (the transports come from daemon.channels)."""
        import httpx

        return httpx.Client(
            timeout=self.settings.slack.timeout_seconds,
            headers={"User-Agent": self.settings.ingest.user_agent},
            transport=self.http_transport,
        )

    @functools.cached_property
    def recommender_config(self) -> RecommenderConfig:
        """Built on first use (it loads scikit-learn); `paperwire run` and `config check`
        touch it at start so bad options still fail early."""
        return recommender_config(self.settings)

    def apply_settings(self, new: Settings, *, source: str = "configuration file") -> list[str]:
        """Run on new settings without a restart: what is built from them is rebuilt on next
        use (a job already running keeps the client it holds), the links' key and address,
        the log level, and the hooks (the scheduler's jobs). Returns the changed keys that
        only apply at the next start (database, listening address). Logged once, with
        `source` (who changed them: the file edited, the console)."""
        old = self.settings
        links = self.links
        if old.server.base_url != new.server.base_url or _key_changed(old, new):
            # first: a key file that cannot be read or made refuses the whole change
            links = _links(new)
        self.settings, self.links = new, links
        if old.ingest != new.ingest and "fetcher" in self.__dict__:
            self._retired.append(self.__dict__.pop("fetcher").client)
        if old.slack != new.slack and "slack_http" in self.__dict__:
            self._retired.append(self.__dict__.pop("slack_http"))
        if old.recommender != new.recommender:
            self.__dict__.pop("recommender_config", None)
        if old.log != new.log:
            from daemon.logs import setup_logging

            setup_logging(new.log.level, as_json=new.log.json_format)
        for hook in self.settings_hooks:
            hook(old, new)
        restart = [
            f"{section}.{key}"
            for section, keys in (
                ("database", ("url", "echo", "statement_timeout_seconds")),
                ("server", ("host", "port")),
            )
            for key in keys
            if getattr(getattr(old, section), key) != getattr(getattr(new, section), key)
        ]
        log.info(
            "settings applied",
            extra={"source": source, "needs_restart": ",".join(restart) or "nothing"},
        )
        return restart

    def reload_settings(self) -> list[str]:
        """Read the configuration file again and apply it (ConfigError: nothing changes)."""
        from daemon.settings import load_settings

        if self.config_file is None:
            return []
        return self.apply_settings(load_settings(self.config_file))

    def close(self) -> None:
        if "fetcher" in self.__dict__:
            self.fetcher.client.close()
        if "slack_http" in self.__dict__:
            self.slack_http.close()
        for client in self._retired:
            client.close()
        self.store.engine.dispose()


def _key_changed(old: Settings, new: Settings) -> bool:
    return (
        old.server.secret_key.get_secret_value() != new.server.secret_key.get_secret_value()
        or old.server.secret_key_file != new.server.secret_key_file
    )


def link_secret(settings: Settings) -> str:
    """The key that signs links: `server.secret_key`, else one kept in `server.secret_key_file`."""
    return _link_secret(settings)[0]


def _link_secret(settings: Settings) -> tuple[str, bool]:
    """(the key that signs links, whether its file was made just now)."""
    configured = settings.server.secret_key.get_secret_value()
    if configured:
        return configured, False
    path: Path = settings.server.secret_key_file
    if _is_file(path):
        return _kept_key(path), False
    key = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
    except OSError as e:
        raise ConfigError(
            f"{path}: cannot create the link-signing key ({e.strerror}); make the folder "
            f"writable, point server.secret_key_file elsewhere, or set server.secret_key"
        ) from None
    return key, True


def _say_new_key(path: Path, store: Store) -> None:
    """A key file made for a database that has sent digests: their links (unsubscribe, like,
    the subscriber's page) were signed with another key, and no longer work. The usual cause:
    paperwire started in another directory than its relative `secret_key_file` is in (its
    database on PostgreSQL, or given as an absolute path, is found all the same)."""
    import sqlalchemy as sa
    from sqlmodel import col

    from daemon.db.engine import missing_file
    from daemon.db.models import Digest, DigestState

    if missing_file(store.engine):  # no database here: connecting would make an empty one,
        return  # and the command would say to upgrade it, not where the database is
    sent_one = sa.select(col(Digest.id)).where(col(Digest.state) == DigestState.SENT).limit(1)
    try:
        with store.engine.connect() as conn:
            sent = conn.execute(sent_one).first()
    except sa.exc.SQLAlchemyError:  # no schema yet (a first `db upgrade`), or no database
        return
    if sent is None:
        return
    where = path if path.is_absolute() else Path.cwd() / path
    log.warning(
        f"made a new link-signing key in {where}, but this database has sent digests: their "
        "links (unsubscribe, like, the subscriber's page) were signed with another key and no "
        "longer work. If that key exists, stop paperwire, delete this one and start it in the "
        f"directory that holds {path} (a relative server.secret_key_file is read from the "
        "directory paperwire is started in), or set server.secret_key"
    )


def _links(settings: Settings) -> Links:
    """The links made with the settings' key and address."""
    return Links(link_secret(settings), str(settings.server.base_url))


def check_link_secret(settings: Settings) -> None:
    """ConfigError when the link-signing key file the settings name exists and would be refused
    (`link_secret` without its side effect: a missing file is made where the daemon runs)."""
    path: Path = settings.server.secret_key_file
    if not settings.server.secret_key.get_secret_value() and _is_file(path):
        _kept_key(path)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system: no such file; making it says why
        return False


def _kept_key(path: Path) -> str:
    kept = path.read_text().strip()
    if len(kept) < SHORT_KEY:  # e.g. emptied by a crash while it was written: anyone could sign
        raise ConfigError(
            f"{path}: the link-signing key is empty or too short; delete the file to make a "
            f"new one (links in digests already sent stop working) or set server.secret_key"
        )
    return kept


def recommender_config(settings: Settings) -> RecommenderConfig:
    import dataclasses
    import difflib

    from recommender import RecommenderConfig

    known = [f.name for f in dataclasses.fields(RecommenderConfig)]
    for name in settings.recommender.options:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"recommender.options: {name!r} is not an option of the recommender; {hint}"
                "see docs/recommender.md for the allowed options"
            )
    try:
        return RecommenderConfig(**settings.recommender.options)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"recommender.options: {e}; see docs/recommender.md for the allowed options"
        ) from None


def make_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    http_transport: httpx.BaseTransport | None = None,
    smtp_ssl_context: ssl.SSLContext | None = None,
    config_file: Path | None = None,
    prepare: Callable[[Engine], None] | None = None,
) -> App:
    """The app on `settings`. `prepare` runs on the database before the link-signing key is
    read or made (a command's schema check, `db upgrade`): refused, it leaves no key behind,
    as the engine leaves no folder (a command run in the wrong directory left `var/` and a
    new `var/secret.key` there)."""
    store = Store(
        make_engine(
            settings.database.url,
            echo=settings.database.echo,
            statement_timeout_seconds=settings.database.statement_timeout_seconds,
        )
    )
    try:
        if prepare is not None:
            prepare(store.engine)
        key, made = _link_secret(settings)
    except BaseException:
        store.engine.dispose()
        raise
    if made:
        _say_new_key(settings.server.secret_key_file, store)
    return App(
        settings=settings,
        store=store,
        links=Links(key, str(settings.server.base_url)),
        clock=clock,
        smtp_ssl_context=smtp_ssl_context,
        http_transport=http_transport,
        config_file=config_file,
    )

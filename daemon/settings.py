"""Settings: one TOML file, overridable by environment variables, validated once, frozen.

Every key and its default is documented in `config/paperwire.toml`. Precedence, highest first:
environment (`PAPERWIRE_<SECTION>__<KEY>`, e.g. `PAPERWIRE_EMAIL__PASSWORD`), then the TOML file
(`--config`, else `$PAPERWIRE_CONFIG`, else `config/paperwire.toml`), then the defaults below.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote_plus
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from daemon.errors import ConfigError

DEFAULT_CONFIG = Path("config/paperwire.toml")


# a link-signing key shorter than this is warned of (set) or refused (a key file: daemon.app)
SHORT_KEY = 16


# a number of seconds, minutes, hours or days, at most (100 years): 1e300 passed every "> 0"
# rule as inf did, and raised OverflowError as a date, a socket timeout or a wait
DURATION_UNITS = {"_seconds": 1, "_minutes": 60, "_hours": 3600, "_days": 86400}
MAX_DURATION_SECONDS = 100 * 365.25 * 86400


class _Section(BaseModel):
    # inf passed every "> 0" rule: a lockout window, a timeout or a backoff of inf seconds
    # raised OverflowError at its first use (every login, every send, every retry)
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _duration_fits(cls, value: Any, info: ValidationInfo) -> Any:
        unit = next((u for u in DURATION_UNITS if (info.field_name or "").endswith(u)), None)
        if unit is None or isinstance(value, bool) or not isinstance(value, int | float):
            return value
        most = MAX_DURATION_SECONDS / DURATION_UNITS[unit]
        if value > most:
            raise ValueError(f"Input should be at most {most:,.0f} (100 years)")
        return value


class DatabaseSettings(_Section):
    url: str = "sqlite:///var/paperwire.db"
    echo: bool = False
    statement_timeout_seconds: float = Field(default=30.0, ge=0)  # PostgreSQL; 0: none

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(v)
            backend = url.get_backend_name()
        except ArgumentError:
            backend = ""
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(
                "paperwire runs on SQLite or PostgreSQL: write sqlite:///path/to/paperwire.db "
                "or postgresql+psycopg://user@host/dbname"
            )
        if "@" in (url.host or ""):
            # SQLAlchemy reads the password to its first "@" and the rest as the host: such a
            # URL never connects, and the driver's error ("failed to resolve host
            # 'ss3cret@db'") showed the password's end
            raise ValueError(
                "its password holds an '@' typed as it is, which ends the password there: "
                "write each '@' of the password as %40 (p@ss becomes p%40ss)"
            )
        return v


class ServerSettings(_Section):
    base_url: HttpUrl = HttpUrl("http://127.0.0.1:8080")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    secret_key: SecretStr = SecretStr("")
    secret_key_file: Path = Path("var/secret.key")
    manage_link_days: int = Field(default=30, ge=1, le=365)
    signup: Literal["closed", "open"] = "closed"
    signup_domains: list[str] = Field(default_factory=list)

    @field_validator("base_url")
    @classmethod
    def _at_the_root(cls, v: HttpUrl) -> HttpUrl:
        """The pages link to each other from the root ("/manage", "/admin/…"): under a path
        a proxy forwards, those links would leave it."""
        if (v.path or "/") != "/" or v.query or v.fragment:
            raise ValueError(
                "serve paperwire at the root of a host name (e.g. https://papers.lab.example), "
                "not under a path: the pages' own links start at /"
            )
        return v

    def weak_key(self) -> str:
        """A warning when `secret_key` is set but short: anyone who guesses it can sign any
        link. "" otherwise. A short key is still used: the links already sent keep working."""
        key = self.secret_key.get_secret_value()
        if not key or len(key) >= SHORT_KEY:
            return ""
        return (
            f"server.secret_key is {len(key)} characters long: anyone who guesses it can sign "
            f"the digests' links (unsubscribe anyone, answer for them); set at least {SHORT_KEY} "
            "random ones, e.g. from `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            " (links in digests already sent then stop working)"
        )

    def links_elsewhere(self) -> str:
        """A warning when `base_url` names this machine on another port than the one paperwire
        listens on (the port was changed, not the address): the digests' links reach nothing
        there. "" otherwise (a proxy on another host is the normal case)."""
        url = self.base_url
        loopback = url.host in ("127.0.0.1", "localhost", "[::1]", "::1")
        port = url.port or (443 if url.scheme == "https" else 80)
        if (
            not loopback
            or port == self.port
            or self.host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::")
        ):
            return ""
        return (
            f"server.base_url {str(url).rstrip('/')} points at this machine on port {port}, but "
            f"paperwire listens on port {self.port}: the digests' links reach nothing there; "
            f"set server.base_url to the address readers use (e.g. http://127.0.0.1:{self.port})"
        )

    @field_validator("signup_domains", mode="before")
    @classmethod
    def _domains(cls, v: object) -> object:
        """A list of domains; a string (the console's text field) holds them separated by
        commas or spaces. Each is a domain name, compared in lower case and in its ASCII form
        (IDNA: `bücher.example` is kept as `xn--bcher-kva.example`)."""
        if isinstance(v, str):
            v = re.findall(r"[^\s,'\"\[\]]+", v)
        if not isinstance(v, list):
            return v
        from notifications.mailbox import ascii_domain

        out = []
        for item in v:
            domain = ascii_domain(str(item).strip().lower().lstrip("@"))  # bücher → xn--…
            if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", domain):
                raise ValueError(f"{item!r} is not a domain name like 'lab.example'")
            out.append(domain)
        return out


_CRON_CHECK_FROM = datetime(2000, 1, 1, tzinfo=UTC)  # a leap year's start: 29 February too


class ScheduleSettings(_Section):
    timezone: str = "UTC"
    ingest_cron: str = "15 */4 * * *"
    digest_cron: str = "5 * * * *"
    digest_hour: int = Field(default=7, ge=0, le=23)
    misfire_grace_seconds: int = Field(default=6 * 3600, ge=1)
    catch_up_delay_seconds: float = Field(default=5.0, ge=0)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        # the clock the cron times are read on: the server's own (`localtime`) is one too
        return check_timezone(v, place=False)

    @field_validator("ingest_cron", "digest_cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        try:
            trigger = crontab_trigger(v, "UTC")
        except ValueError as e:
            raise ValueError(f"not a 5-field crontab expression ({e}); e.g. '15 */4 * * *'") from e
        # five valid fields may match no day ("0 0 30 2 *"): the job would get no run time,
        # and APScheduler would pause it for good. Crontab has no year: any start date will do
        if trigger.get_next_fire_time(None, _CRON_CHECK_FROM) is None:
            raise ValueError("never fires: no date matches its day and month fields")
        return v

    def hours_unreached(self) -> str:
        """A warning when `digest_cron` leaves more than an hour between two runs (over a week
        from `_CRON_CHECK_FROM`): a subscriber's digest is made at the first run from their
        digest hour in their own time zone, so some come hours late, and one whose hour comes
        after the day's last run gets none that day ('0 8 * * *': none ever for those whose
        hour is later than 08:00 UTC in their zone). "" otherwise."""
        trigger = crontab_trigger(self.digest_cron, self.timezone)
        at, end = _CRON_CHECK_FROM, _CRON_CHECK_FROM + timedelta(days=8)
        longest = timedelta(0)
        while at < end:
            run = trigger.get_next_fire_time(None, at)  # never None: the cron is checked
            longest = max(longest, run - at)
            if longest > timedelta(hours=1):
                return (
                    f"schedule.digest_cron {self.digest_cron!r} leaves hours without a run: "
                    f"each subscriber's digest is made at the first run from their digest hour "
                    f"in their own time zone, so some come hours late, and one whose hour comes "
                    f"after the day's last run gets none that day; run it every hour "
                    f"('5 * * * *')"
                )
            at = run.astimezone(UTC) + timedelta(seconds=1)
        return ""


class IngestSettings(_Section):
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_bytes: int = Field(default=20_000_000, ge=1024)
    user_agent: str = "paperwire/0.1 (self-hosted paper digest; +https://github.com/paperwire)"
    arxiv_min_interval_seconds: float = Field(default=3.0, ge=0)
    allow_private_addresses: bool = False
    allow_files: bool = False
    parse_timeout_seconds: float = Field(default=120.0, gt=0)
    parse_memory_mb: int = Field(default=512, ge=32)
    arxiv_api_url: HttpUrl = HttpUrl("https://export.arxiv.org/api/query")
    zotero_api_url: HttpUrl = HttpUrl("https://api.zotero.org")

    @field_validator("user_agent")
    @classmethod
    def _header(cls, v: str) -> str:
        # the User-Agent header of every fetch: HTTP sends it as ASCII (an accent made every
        # fetch fail, the feeds page's Test a 500)
        bad = next((c for c in v if not " " <= c <= "~"), None)
        if bad is not None:
            raise ValueError(
                f"{bad!r} cannot be sent in an HTTP header: use printable ASCII only "
                "(letters without accents, digits, spaces, punctuation)"
            )
        return v


class FeedSettings(_Section):
    name: str = Field(min_length=1)
    url: str = Field(min_length=1)
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _handle(cls, v: str) -> str:
        from daemon.checks import check_handle

        return check_handle(v, "feed name")

    @field_validator("url")
    @classmethod
    def _fetchable(cls, v: str) -> str:
        """`feeds add`'s check of what can be told without the network (it also resolves
        the host; `ingest.allow_files` is checked with the whole file, `_feeds_fit`)."""
        from daemon.checks import check_feed_url

        return check_feed_url(v, allow_files=True, allow_private=True)


MIN_KEEP_DAYS = 14  # digest.keep_days, at least: a weekly window and its margin, and room


class DigestSettings(_Section):
    window_hours: int = Field(default=48, ge=1)
    max_picks: int = Field(default=10, ge=1, le=100)
    min_score: float = Field(default=0.02, ge=0, le=1)  # scores are within [0, 1]
    send_empty: bool = False
    subject_prefix: str = Field(default="", max_length=200)  # a Subject line stays < 998
    max_age_days: int = Field(default=30, ge=1)
    keyword_share: float = Field(default=0.5, ge=0, le=1)
    keep_days: int = Field(default=365, ge=0)

    @model_validator(mode="after")
    def _keeps_what_was_sent_lately(self) -> DigestSettings:
        # the digest job reads what each subscriber was sent within a weekly window (the
        # window + 6 days) and a day's margin: those digests must still be there
        need = max(MIN_KEEP_DAYS, math.ceil((self.window_hours + 8 * 24) / 24) + 1)
        if 0 < self.keep_days < need:
            raise ValueError(
                f"keep_days = {self.keep_days}: keep at least {need} days of digests with "
                f"window_hours = {self.window_hours} (what a subscriber was sent lately is "
                "never sent again), or 0 to keep them all"
            )
        return self


class RecommenderSettings(_Section):
    refit_growth: float = Field(default=0.2, ge=0)
    options: dict[str, Any] = Field(default_factory=dict)


class EmailSettings(_Section):
    transport: Literal["file", "smtp"] = "file"
    sender: str = "paperwire <paperwire@localhost>"

    @field_validator("sender")
    @classmethod
    def _one_address(cls, value: str) -> str:
        """One mailbox, as the SMTP transport reads the From header to send (else every
        message would fail there, as a configuration problem)."""
        from notifications.mailbox import is_domain_name, one_mailbox

        if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
            raise ValueError(f"{value!r} contains a line break or a control character")
        mailbox = one_mailbox(value)
        if mailbox is None:
            raise ValueError(
                f"{value!r} is not one email address: write e.g. "
                "'paperwire <digests@lab.example>' or 'digests@lab.example'"
            )
        if not mailbox.username.isascii():  # the domain may be (it goes as IDNA)
            raise ValueError(
                f"{value!r}: the part before the @ must be ASCII (mail from it would need "
                "SMTPUTF8 at every server on the way): write e.g. 'Отчёт <digests@lab.example>'"
            )
        if not is_domain_name(mailbox.domain):  # it goes into every From, Message-ID, List-Id
            raise ValueError(
                f"{value!r}: {mailbox.domain!r} after the @ is not a domain name (letters, "
                "digits and hyphens between dots, in any script): write e.g. "
                "'paperwire <digests@lab.example>'"
            )
        return value

    # the right-hand side of every Message-ID; "": the sender's domain (unique to whoever
    # owns it: two installations that both kept one fixed default could give the same id)
    message_id_domain: str = ""

    @field_validator("message_id_domain")
    @classmethod
    def _a_domain(cls, value: str) -> str:
        """Empty, or a domain name (beyond ASCII too: written as IDNA), as a Message-ID's
        right-hand side must be."""
        if not value:
            return value
        from notifications.mailbox import is_domain_name

        if not is_domain_name(value):
            raise ValueError(
                f"{value!r} is not a domain name: write e.g. 'lab.example', or leave it empty "
                "for the sender's domain"
            )
        return value

    @property
    def id_domain(self) -> str:
        """The Message-ID's domain: `message_id_domain`, else the sender's domain."""
        from notifications.mailbox import one_mailbox

        if self.message_id_domain:
            return self.message_id_domain
        mailbox = one_mailbox(self.sender)
        return mailbox.domain if mailbox is not None else "paperwire.localhost"

    host: str = "localhost"
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    password: SecretStr = SecretStr("")
    timeout_seconds: float = Field(default=30.0, gt=0)
    ca_file: str = ""

    @field_validator("ca_file")
    @classmethod
    def _a_file(cls, v: str) -> str:
        try:
            found = not v or Path(v).expanduser().is_file()
        except OSError:  # a name too long for the file system: no such file either
            found = False
        if not found:
            raise ValueError(f"{v!r} is not a file: give the path of a PEM file of CA certificates")
        return v

    connections: int = Field(default=4, ge=1, le=32)


class SlackSettings(_Section):
    transport: Literal["file", "webhook"] = "file"
    min_interval_seconds: float = Field(default=1.0, ge=0)
    timeout_seconds: float = Field(default=15.0, gt=0)


class DeliverySettings(_Section):
    outbox_dir: Path = Path("var/outbox")

    @field_validator("outbox_dir", mode="before")
    @classmethod
    def _a_folder(cls, v: object) -> object:
        if isinstance(v, str) and not v.strip():
            raise ValueError(
                "give a folder for the file transports' messages (the default is var/outbox)"
            )
        return v

    max_attempts: int = Field(default=6, ge=1)
    backoff_seconds: float = Field(default=60.0, ge=0)
    lease_seconds: int = Field(default=60, ge=10)
    claim_batch: int = Field(default=100, ge=1, le=10_000)
    max_run_seconds: float = Field(default=3000.0, gt=0)
    workers: int = Field(default=1, ge=1, le=32)  # delivery processes (daemon/jobs/workers.py)
    # a channel whose last N digests were refused for good is stopped (0: never)
    stop_channel_after: int = Field(default=3, ge=0, le=1000)


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = False

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.strip().upper() if isinstance(v, str) else v


class AdminSettings(_Section):
    # name → argon2 hash of the admin's password (`paperwire admin set-password NAME`)
    passwords: dict[str, str] = Field(default_factory=dict)
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    max_failed_logins: int = Field(default=5, ge=1)
    lockout_minutes: float = Field(default=15.0, gt=0)
    # wrong passwords for one name an hour, from browsers without its device cookie
    max_failed_logins_per_name: int = Field(default=20, ge=1)

    @field_validator("passwords")
    @classmethod
    def _hashes(cls, v: dict[str, str]) -> dict[str, str]:
        """Admin names are case-insensitive (environment variables come lower-cased)."""
        for name, hashed in v.items():
            if not name.strip() or not hashed.startswith("$argon2"):
                raise ValueError(
                    f"the entry of {name!r} is not an argon2 hash; write it with "
                    f"`paperwire admin set-password {name or 'NAME'}`"
                )
        return {name.lower(): hashed for name, hashed in v.items()}


class Settings(BaseSettings):
    """The whole configuration; frozen once loaded."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix="PAPERWIRE_",
        env_nested_delimiter="__",
        toml_file=None,
    )

    database: DatabaseSettings = DatabaseSettings()
    server: ServerSettings = ServerSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    ingest: IngestSettings = IngestSettings()
    digest: DigestSettings = DigestSettings()
    recommender: RecommenderSettings = RecommenderSettings()
    email: EmailSettings = EmailSettings()
    slack: SlackSettings = SlackSettings()
    delivery: DeliverySettings = DeliverySettings()
    log: LogSettings = LogSettings()
    admin: AdminSettings = AdminSettings()
    feeds: tuple[FeedSettings, ...] = ()

    @model_validator(mode="after")
    def _feeds_fit(self) -> Settings:
        names = [f.name for f in self.feeds]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"[[feeds]]: the name {twice[0]!r} is given to more than one feed")
        local = [f.name for f in self.feeds if f.url.startswith("file:")]
        if local and not self.ingest.allow_files:
            raise ValueError(
                f"[[feeds]] {local[0]!r} is a local file: files are read only with "
                "ingest.allow_files = true (meant for the demo and tests)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environment = _EnvironmentSource(settings_cls)
        return (init_settings, environment, TomlConfigSettingsSource(settings_cls))


class _UnreadableVariable(ValueError):
    """A PAPERWIRE_ variable for a table or a list whose value is neither TOML nor JSON."""

    def __init__(self, field: str, value: str) -> None:
        super().__init__(f"{field}: {value!r} is no TOML or JSON value")
        self.field = field
        self.value = value


class _EnvironmentSource(EnvSettingsSource):
    """The PAPERWIRE_ variables; a table or a list is written as in the file (TOML:
    `{ max_interests = 3 }`, `["lab.example"]`, as `config set` takes it) or in JSON."""

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        try:
            return json.loads(value)
        except ValueError:
            pass
        try:
            return toml_value(value)
        except tomllib.TOMLDecodeError:
            raise _UnreadableVariable(field_name, value) from None

    def explode_env_vars(
        self, field_name: str, field: FieldInfo, env_vars: Mapping[str, str | None]
    ) -> dict[str, Any]:
        """A section's entries; one recommender option (PAPERWIRE_RECOMMENDER__OPTIONS__
        MAX_INTERESTS=3) read as a value in the file: 3, false, 0.2, "english"; text that is
        no TOML value (tfidf-centroid) stays text. A table of them (PAPERWIRE_RECOMMENDER__
        OPTIONS='{ … }') is read as the file reads it: its quoted strings stay strings. Any
        other key's type says how to read it."""
        exploded = super().explode_env_vars(field_name, field, env_vars)
        options = exploded.get("options") if field_name == "recommender" else None
        if isinstance(options, dict):
            one = f"{self.env_prefix}{field_name}{self.env_nested_delimiter}options"
            one += self.env_nested_delimiter or ""
            if not self.case_sensitive:
                one = one.lower()
            alone = {name.removeprefix(one) for name in env_vars if name.startswith(one)}
            exploded["options"] = {
                k: _toml_scalar(v) if k in alone else v for k, v in options.items()
            }
        return exploded


def toml_value(text: str) -> Any:
    """`text` read as one value of a TOML file (`3`, `false`, `"a"`, `["a"]`, `{ a = 1 }`);
    any further line would be another key, left out. TOMLDecodeError when it is none."""
    return tomllib.loads(f"value = {text}")["value"]


def _toml_scalar(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return toml_value(value)
    except tomllib.TOMLDecodeError:
        return value


def _unreadable_variable(error: SettingsError) -> str:
    """The problem line of a variable whose table or list could not be read: the variable,
    its value (not when it may hold a secret) and how to write one."""
    cause = error.__cause__
    if not isinstance(cause, _UnreadableVariable):
        return f"  {error}"
    field, value = cause.field.upper(), cause.value
    found = [
        var
        for var, text in os.environ.items()
        if text == value
        and var.upper().startswith(ENV_PREFIX)
        and (var.upper().endswith(f"__{field}") or var.upper() == f"{ENV_PREFIX}{field}")
    ]
    var = found[0] if found else f"{ENV_PREFIX}…{field}"
    section = var.upper().removeprefix(ENV_PREFIX).lower() in _section_models()
    hidden = section or any(s in var.lower() for s in ("password", "secret", "url"))
    shown = "**********" if hidden else repr(value)
    return (
        f"  {var} = {shown}: not a list or table; write it as in the file, e.g. "
        '["lab.example"] or { max_interests = 3 } (TOML), or in JSON'
    )


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class _CronTrigger(CronTrigger):  # type: ignore[misc]
    """APScheduler's cron trigger without its skipped days. It adds a day as 24 hours of UTC:
    from a run at midnight on the day summer time begins it came to 01:00 the next day, past
    midnight, and went on to the day after ('0 0 * * *' in Berlin had no run on 30 March, in
    New York none on 9 March, nor in Santiago on 6 September, which has no midnight). The next
    run is also found on the local clock, as crontab finds it (a time summer time skips: just
    after the skip; a time that comes twice: the first), and the earlier of the two is taken.

    A fixed time in the hour that comes twice when summer time ends runs once, at the first,
    as crontab runs it ('30 2 * * *' in Berlin ran at 00:30 and 01:30 UTC on 25 October); a
    cron whose minute or hour is a '*' ('0 * * * *') runs in both hours, as in crontab."""

    __slots__ = ()

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        fire = self._next(previous_fire_time, now)
        while fire is not None and self._again(fire):  # the first of the two ran, or is past
            fire = self._next(None, fire.astimezone(UTC) + timedelta(microseconds=1))
        return fire

    def _again(self, fire: datetime) -> bool:
        """Whether `fire` is the second time of a local time (the hour that comes twice) of a
        cron at fixed times (neither its minute nor its hour a '*')."""
        fields = {f.name: str(f) for f in self.fields}
        if fields["minute"].startswith("*") or fields["hour"].startswith("*"):
            return False
        wall = fire.astimezone(self.timezone).replace(tzinfo=None)
        first = wall.replace(tzinfo=self.timezone, fold=0).astimezone(UTC)
        return first < fire.astimezone(UTC)

    def _next(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        fire: datetime | None = super().get_next_fire_time(previous_fire_time, now)
        start = now.astimezone(UTC)  # from where APScheduler looks, as it does
        if previous_fire_time is not None:
            start = min(start, previous_fire_time.astimezone(UTC) + timedelta(microseconds=1))
        on_the_clock = copy.copy(self)  # the same fields, read in UTC: no summer time
        on_the_clock.timezone = UTC
        wall: datetime | None = CronTrigger.get_next_fire_time(
            on_the_clock, None, start.astimezone(self.timezone).replace(tzinfo=UTC)
        )
        if wall is None:
            return fire
        at = wall.replace(tzinfo=self.timezone).astimezone(UTC)  # fold 0
        if at >= start and (fire is None or at < fire):
            return at.astimezone(self.timezone)
        return fire


def crontab_trigger(expr: str, timezone: str | None = None) -> CronTrigger | OrTrigger:
    """`CronTrigger.from_crontab` with crontab's weekday numbers (0 or 7 = Sunday, 1 = Monday),
    and crontab's days.

    APScheduler 3 numbers weekdays from Monday = 0 and `from_crontab` passes the field through,
    so "0 6 * * 1-5" would fire Tuesday to Saturday, and its weeks begin on Monday, so
    "sun-thu" was refused (a range backwards); the field is written as a list of names first. Its
    day and weekday fields must both match, where crontab's either does when neither starts
    with '*': "0 6 1,15 * mon" (the 1st, the 15th and every Monday) fired on a Monday that was
    the 1st or the 15th, a few times a year; it is one trigger for each then, the earlier wins.
    A weekday of the month ('fri#1', the first Friday; 'friL', the last) is APScheduler's
    "1st fri" of the day field, a trigger of its own ('fri#1' was read as 'fri': every Friday).
    A month, as a weekday, may be written in full ('january', 'Sept'): APScheduler knew 'jan'
    only, so the check refused "0 6 1 january *" where it took "0 6 * * friday"."""
    fields = expr.split()
    if len(fields) == 5:
        fields[3] = _LETTERS.sub(lambda m: str(_month(m.group())), fields[3])
        expr = " ".join(fields)
    if len(fields) != 5 or fields[4] == "*":
        trigger: CronTrigger = _CronTrigger.from_crontab(expr, timezone=timezone)
        return trigger
    minute, hour, day, month, weekday = fields
    either = not day.startswith("*") and not weekday.startswith("*")
    names, of_month = _crontab_weekdays(weekday)
    if of_month and not either and day != "*":
        raise ValueError(
            f"weekday {weekday!r} with the day of the month {day!r}: a weekday of the month "
            "cannot also be every few days; write the day as '*'"
        )
    triggers: list[CronTrigger] = []
    if either:  # crontab's "either": the days of the month on their own
        triggers.append(_CronTrigger.from_crontab(f"{minute} {hour} {day} {month} *", timezone))
    if names:
        days = "*" if either else day
        triggers.append(
            _CronTrigger.from_crontab(f"{minute} {hour} {days} {month} {names}", timezone)
        )
    if of_month:
        triggers.append(
            _CronTrigger(
                minute=minute, hour=hour, day=",".join(of_month), month=month, timezone=timezone
            )
        )
    return triggers[0] if len(triggers) == 1 else OrTrigger(triggers)


_WEEKDAY_NAMES = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_NTH = ("1st", "2nd", "3rd", "4th", "5th")


def _crontab_weekdays(field: str) -> tuple[str, list[str]]:
    """A crontab weekday field as APScheduler's: the weekdays of every week, as names ('' for
    none), and the weekdays of the month as its day field writes them ('fri#1' → '1st fri',
    'friL' → 'last fri')."""
    days: set[int] = set()
    of_month: list[str] = []
    for part in field.split(","):
        nth = _weekday_of_month(part)
        if nth:
            of_month.append(nth)
            continue
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"weekday step {step_text!r} is not a positive number")
        if span == "*":
            lo, hi = 0, 6
        elif "-" in span:
            first, last = span.split("-", 1)
            lo, hi = _weekday(first), _weekday(last)
            hi = 7 if hi == 0 and lo > 0 else hi  # "5-0", "fri-sun": through Sunday
        else:
            lo = _weekday(span)
            hi = 6 if step else lo
        if hi < lo:
            raise ValueError(f"weekday range {span!r} runs backwards")
        days.update(d % 7 for d in range(lo, hi + 1, step or 1))
    return ",".join(_WEEKDAYS[d] for d in sorted(days)), of_month


_MONTH_NAMES = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)  # fmt: skip
_LETTERS = re.compile(r"[A-Za-z]+")


def _month(text: str) -> int:
    """1-12 of a month's name ('jan', 'January', 'sept'): three letters or more of it."""
    lowered = text.lower()
    for number, name in enumerate(_MONTH_NAMES, start=1):
        if len(lowered) >= 3 and name.startswith(lowered):
            return number
    raise ValueError(f"month {text!r} is not 1-12 or a name like 'jan'")


def _weekday(text: str) -> int:
    """0-7 (0 and 7: Sunday), or a name ('fri', 'Friday'); 'fri#1' was read as 'fri' by its
    first three letters, and so was any word that began as a weekday does."""
    if text.isdigit() and int(text) <= 7:
        return int(text)
    lowered = text.lower()
    for number, name in enumerate(_WEEKDAY_NAMES):
        if len(lowered) >= 3 and name.startswith(lowered):
            return number
    raise ValueError(f"weekday {text!r} is not 0-7 or a name like 'mon'")


def _weekday_of_month(part: str) -> str:
    """'fri#1' → '1st fri', 'friL' → 'last fri' (APScheduler's day field); '' for a part that
    is none ('fri', '1-5', '*/2')."""
    if "#" in part:
        span, _, which = part.partition("#")
    elif len(part) > 1 and part[-1] in "lL":
        span, which = part[:-1], "L"
    else:
        return ""
    if any(c in span for c in "*-/"):
        raise ValueError(
            f"weekday {part!r}: '#' and 'L' follow one weekday, like 'fri#1' (the first "
            "Friday of the month) or 'friL' (the last)"
        )
    name = _WEEKDAYS[_weekday(span) % 7]
    if which.upper() == "L":
        return f"last {name}"
    if not (which.isdigit() and 1 <= int(which) <= 5):
        raise ValueError(
            f"weekday {part!r}: the week of the month after '#' is 1 to 5 ('fri#1': the first "
            "Friday of the month)"
        )
    return f"{_NTH[int(which) - 1]} {name}"


# keys of the zoneinfo database that name no place: a digest hour in them is nobody's hour
NOT_PLACES = {
    "localtime": "the server's own setting (it changes with the machine)",
    "Factory": "the time-zone database's placeholder for a machine not set up yet (“-00”)",
    "posixrules": "the time-zone database's template for rules written out in full",
}
_CHOOSE = "choose your region's IANA name, like 'Europe/Berlin', or 'UTC'"


def is_place_zone(name: str) -> bool:
    """Whether a zoneinfo key names a place's time (or a fixed offset: `UTC`, `Etc/GMT+5`),
    not `localtime`, `Factory`, `posixrules` or their posix/ and right/ copies."""
    return _zone_base(name) not in NOT_PLACES


def _zone_base(name: str) -> str:
    """A zoneinfo key without its posix/ or right/ directory (the same zone's copies)."""
    return name.removeprefix("posix/").removeprefix("right/")


def check_timezone(name: str, *, place: bool = True) -> str:
    """An IANA time zone of a place: any key zoneinfo reads (the page's list lacks some),
    except those that name no place (`NOT_PLACES`; taken when not `place`: the schedule's
    zone may be the server's own, `localtime`)."""
    base = _zone_base(name)
    if place and base in NOT_PLACES:
        raise ValueError(
            f"{name!r} is not a time zone of a place: it is {NOT_PLACES[base]}; {_CHOOSE}"
        )
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        # "not a known time zone" first: the console, the CLI and the CSV import put their
        # label before it ("time zone: not a known time zone: 'Mars/Base'; …")
        raise ValueError(f"not a known time zone: {name!r}; {_CHOOSE}") from e
    return name


def config_path(explicit: str | Path | None = None) -> Path:
    """The config file to read: `--config`, else $PAPERWIRE_CONFIG, else config/paperwire.toml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("PAPERWIRE_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG


ENV_PREFIX = "PAPERWIRE_"
# PAPERWIRE_ variables that are not keys: the file to read, and the test suite's own switches
OTHER_VARIABLES = ("PAPERWIRE_CONFIG",)
TEST_VARIABLES = ("PAPERWIRE_TEST_", "PAPERWIRE_REQUIRE_", "PAPERWIRE_REGEN")


def _section_models() -> dict[str, type[BaseModel] | None]:
    """Each top-level key → its section's model (None: not a section, i.e. `feeds`)."""
    found: dict[str, type[BaseModel] | None] = {}
    for name, info in Settings.model_fields.items():
        ann = info.annotation
        found[name] = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return found


def _env_names() -> dict[str, tuple[str, bool]]:
    """Every variable that sets something → (the dotted key, whether it is a table whose
    entries may be set one by one: PAPERWIRE_ADMIN__PASSWORDS__ADA)."""
    names: dict[str, tuple[str, bool]] = {}
    for section, model in _section_models().items():
        names[f"{ENV_PREFIX}{section.upper()}"] = (section, False)
        for key, info in (model.model_fields if model else {}).items():
            is_table = getattr(info.annotation, "__origin__", None) is dict
            names[f"{ENV_PREFIX}{section.upper()}__{key.upper()}"] = (f"{section}.{key}", is_table)
    return names


def environment_keys(environ: Mapping[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """The keys set by PAPERWIRE_ variables ({dotted key: variable}; a whole section's variable
    names the section), and one line per variable that sets nothing, with a suggestion."""
    env = os.environ if environ is None else environ
    names = _env_names()
    keys: dict[str, str] = {}
    problems: list[str] = []
    for var in sorted(env):
        upper = var.upper()
        if not upper.startswith(ENV_PREFIX) or upper in OTHER_VARIABLES:
            continue
        if upper.startswith(TEST_VARIABLES):
            continue
        if upper in names:
            keys[names[upper][0]] = var
            continue
        head, sep, _ = upper.rpartition("__")
        if sep and head in names and names[head][1]:  # one entry of a table
            keys[names[head][0]] = var
            continue
        bare = [n.removeprefix(ENV_PREFIX) for n in names]
        close = difflib.get_close_matches(upper.removeprefix(ENV_PREFIX), bare, n=1, cutoff=0.7)
        hint = (
            f"did you mean {ENV_PREFIX}{close[0]}?"
            if close
            else "keys are set as PAPERWIRE_<SECTION>__<KEY>, e.g. PAPERWIRE_EMAIL__PASSWORD"
        )
        problems.append(f"  {var}: unknown environment variable ({hint})")
    return keys, problems


def config_text(data: bytes, shown: Path) -> str:
    """A configuration file's bytes as text: UTF-8, else a ConfigError naming the line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:  # an editor's Latin-1 or UTF-16
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(f"{shown}: not UTF-8 text (line {line}); save it as UTF-8") from None


def load_settings(path: str | Path | None = None, *, shown_as: Path | None = None) -> Settings:
    """Read, validate and freeze the settings; raise ConfigError naming the key and the value
    (and any PAPERWIRE_ variable that sets nothing). `shown_as`: the file named in messages
    (a change is checked in a temporary copy before it replaces the file)."""
    file = config_path(path)
    shown = shown_as or file
    if not file.is_file():
        raise ConfigError(
            f"{file}: configuration file not found; pass --config FILE or set PAPERWIRE_CONFIG "
            f"(a commented default is config/paperwire.toml)"
        )
    try:
        data = file.read_bytes()
        tomllib.loads(config_text(data, shown))
    except OSError as e:  # not readable by the user paperwire runs as
        raise ConfigError(f"{shown}: cannot read it ({e.strerror}); check its permissions") from e
    except tomllib.TOMLDecodeError as e:
        bom = " (it starts with a byte-order mark: save it as UTF-8 without BOM)"
        raise ConfigError(
            f"{shown}: not valid TOML: {e}" + (bom if data.startswith(b"\xef\xbb\xbf") else "")
        ) from e
    from_file: type[Settings] = type(
        "Settings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": file}}
    )
    _, env_problems = environment_keys()
    try:
        settings = from_file()
    except ValidationError as e:
        raise ConfigError(describe_errors(shown, e, env_problems)) from None
    except SettingsError as e:  # a variable's table or list that is no TOML or JSON
        lines = [*env_problems, _unreadable_variable(e)]
        raise ConfigError(
            f"{shown}: invalid configuration ({len(lines)} problem(s)):\n" + "\n".join(lines)
        ) from None
    if env_problems:
        raise ConfigError(
            f"{shown}: invalid configuration ({len(env_problems)} problem(s)):\n"
            + "\n".join(env_problems)
        )
    return settings


def same_settings(a: Settings, b: Settings) -> bool:
    """Whether two settings say the same. Not `==`: each `load_settings` makes its own
    subclass (to name its file), and two loads of one file never compared equal."""
    return a.model_dump() == b.model_dump()


def describe_errors(file: Path, error: ValidationError, more: Sequence[str] = ()) -> str:
    """One line per bad key: where, the bad value, and what is allowed (`more`: further lines,
    such as unknown environment variables)."""
    lines = list(more)
    for err in error.errors():
        key = _key_of(err["loc"])
        value = err.get("input")
        variable = ENV_PREFIX + "__".join(str(p) for p in err["loc"]).upper()
        if err["type"] == "extra_forbidden" and any(variable in line for line in more):
            continue  # an unknown environment variable, reported as such above
        if err["type"] == "extra_forbidden":
            hint = _did_you_mean(err["loc"])
            lines.append(f"  {key}: unknown key{hint}; see config/paperwire.toml for every key")
            continue
        msg = shown_url(err["msg"].removeprefix("Value error, "))  # it may quote the value
        if isinstance(value, dict):  # a rule of a section or of the whole file: its message
            lines.append(f"  {key or 'the file'}: {msg}")  # (the values may hold secrets)
            continue
        shown = "(missing)" if err["type"] == "missing" else repr(_redact(key, value))
        lines.append(f"  {key} = {shown}: {msg}{_set_by(err['loc'])}")
    head = f"{file}: invalid configuration ({len(lines)} problem(s)):"
    tail = "  (environment variables PAPERWIRE_<SECTION>__<KEY> override the file)"
    return "\n".join([head, *lines, tail])


def _set_by(loc: tuple[Any, ...]) -> str:
    """ " (set by PAPERWIRE_…)" when the value came from the environment, not the file the
    message names (the key's own variable, or its table's: PAPERWIRE_RECOMMENDER__OPTIONS),
    as it is written: the variables are read in any case (paperwire_digest__max_picks)."""
    written = {name.upper(): name for name in os.environ}
    for n in range(len(loc), 1, -1):
        variable = ENV_PREFIX + "__".join(str(p) for p in loc[:n]).upper()
        if variable in written:  # the capitals' own, if there are both
            return f" (set by {variable if variable in os.environ else written[variable]})"
    return ""


def _key_of(loc: tuple[Any, ...]) -> str:
    """ "digest.max_picks"; a feed by its place in the file, from 1: "[[feeds]] 3.url"."""
    parts = [f"[[{loc[0]}]] {p + 1}" if isinstance(p, int) and i == 1 else str(p)
             for i, p in enumerate(loc)]  # fmt: skip
    if len(parts) > 1 and parts[1].startswith("[["):
        parts = parts[1:]
    return ".".join(parts)


def _redact(key: str, value: Any) -> Any:
    if any(s in key for s in ("password", "secret")):
        return "**********"
    if key == "database.url" and isinstance(value, str):
        return shown_database_url(value)
    return shown_url(value) if isinstance(value, str) else value


# user:PASSWORD@ up to the authority's last "@": one typed raw in the user or the password
# ("me@lab.org:p@ss@host", which the URL's own parser reads no better) is masked whole. A "/"
# typed raw in the password (base64: "k9/Zq+w=="), where no "@" comes before it, is masked to
# the next "@" (SQLAlchemy reads the password so, and connects with it), unless the user is a
# host and the digits a port ("https://lab:8443/@ann.rss"); not past another URL's "://" (a
# text without spaces is then read once, not once from each URL to its end)
_URL_PASSWORD = re.compile(r"(://[^/:\s]*:)(?!\d*(?:[/?#\s]|$))(?:[^/\s]*@|(?:(?!://)[^@\s])*@)")
# one scan of the text whatever it holds (a name has no "?": "?a?a…" read each rest again)
_PARAMETER = re.compile(r"([?&])([^=&#?\s]*)=([^&#\s]*)")
# the punctuation that ends the text around a value (an error's "URL: reason", a quoted 'URL',
# a URL in parentheses): kept after the mask, the text stays whole
_AFTER_VALUE = ":'\",;.)]>"
# a name holding one of these (sslpassword, api_key, access_token), or one of these words alone
# or as a part of it (auth, sig, X-Amz-Signature; not author, design)
_SECRET_NAME = re.compile(
    r"pass|secret|key|token|(?:^|[-_.\s])(?:auth|sig|signature)(?:$|[-_.\s])", re.I
)


def shown_url(text: str) -> str:
    """A URL (or any text) as it may be shown or logged: a password masked, whether it is in
    the URL's user part (user:PASSWORD@host) or a parameter (?password=…, sslpassword=…, a
    private feed's ?token=, ?key=, ?api_key=, ?auth=, a signed URL's sig=)."""
    text = _URL_PASSWORD.sub(r"\1**********@", text)
    return _PARAMETER.sub(_masked_parameter, text)


# database.url's password as SQLAlchemy reads it (`make_url`): from the first ":" of the user
# part to the next "@", whatever it holds; `shown_url` leaves a password of digits before a
# raw "/" ("pw:12/34@db") alone, as it would a port ("https://lab:8443/@ann.rss")
_DSN_PASSWORD = re.compile(r"^(\s*[\w+]+://[^:/]*:)[^@]+@")
# one SQLAlchemy cannot read ("postgresql+psycopg//user:pw@db", "://" mistyped): from its first
# ":" before an "@" to the last "@"
_TYPO_PASSWORD = re.compile(r"^([^:@]*:).*@", re.S)


def shown_database_url(url: str) -> str:
    """`database.url` as it may be shown: `shown_url`, its password masked as SQLAlchemy reads
    it (and connects with it); in a URL it cannot read (a typo the configuration's check
    quotes), whatever may be one."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url)
    except ArgumentError:
        return shown_url(_TYPO_PASSWORD.sub(r"\1**********@", url, count=1))
    return shown_url(_DSN_PASSWORD.sub(r"\1**********@", url, count=1))


def _masked_parameter(m: re.Match[str]) -> str:
    """A URL parameter, its value masked if its name (as the driver reads it: %-decoded, `+`
    a space) says secret."""
    sep, name, value = m.groups()
    if _SECRET_NAME.search(unquote_plus(name)):
        return f"{sep}{name}=**********{value[len(value.rstrip(_AFTER_VALUE)) :]}"
    return m.group(0)


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    model: Any = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if hasattr(model, "model_fields") else None
        if field is None or not isinstance(field.annotation, type):
            return ""
        model = field.annotation
    names = list(getattr(model, "model_fields", {}))
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (allowed: {', '.join(names)})"

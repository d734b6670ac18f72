"""Checks of what people type, applied where it enters (the command line, the console, a CSV
import): handles, follows, feed URLs, delivery frequencies. Each returns the value to store, or
raises ValueError whose message names the value and what to write instead. (Channel addresses
are checked by their kind in `daemon.channels`; time zones by `daemon.settings.check_timezone`.)
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from urllib.parse import urlsplit

HANDLE_MAX = 64
_HANDLE = re.compile(rf"\w[\w.-]{{0,{HANDLE_MAX - 1}}}")
FOLLOW_MAX = 200


ID_MAX = 2**31 - 1  # the id columns are INTEGER: PostgreSQL's 4 bytes
OTHER_DIGITS = "write the number with the digits 0–9"


def other_digits(text: str) -> bool:
    """`text` holds a decimal digit of another script ('٣٠', '３０'): Python's int() and
    float() read '٣٠' as 30, but TOML and the id checks (`as_id`) do not, so every form
    refuses them alike, saying `OTHER_DIGITS` ('²' is no number to any of them)."""
    return any(c.isdecimal() and not c.isascii() for c in text)


def as_id(text: str) -> int | None:
    """A row id or a whole number typed in a form: ASCII digits that fit the id columns (a
    PostgreSQL INTEGER); None for anything else ("", "²" and "٣" are digits to `str.isdigit`,
    99999999999 overflowed on PostgreSQL)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > ID_MAX:
        return None
    return int(text)


def check_handle(name: str, what: str = "user name") -> str:
    """A short handle typed on the command line: letters, digits, '.', '_' and '-'."""
    if not name.strip():
        raise ValueError(f"a {what} cannot be empty; use a short handle like 'ada'")
    if not _HANDLE.fullmatch(name):
        example = "'arxiv-cs.LG' or 'hf_daily'" if what == "feed name" else "'ada' or 'grace.h'"
        raise ValueError(
            f"{name!r} is not a valid {what}: use letters, digits, '.', '_' or '-' "
            f"(at most {HANDLE_MAX}, starting with a letter, a digit or '_'), e.g. {example}"
        )
    return name


def check_follow(value: str, what: str = "keyword") -> str:
    """A keyword or an author's name: not empty, one line."""
    text = " ".join(value.split())
    if not text:
        raise ValueError(f"an empty {what} matches nothing; give a word or a name")
    if _has_space_or_control(text.replace(" ", "")):
        raise ValueError(f"{value!r} contains a control character; give a word or a name")
    if len(text) > FOLLOW_MAX:
        raise ValueError(f"a {what} of {len(text)} characters is too long (at most {FOLLOW_MAX})")
    return text


DISPLAY_NAME_MAX = 100


def check_display_name(text: str) -> str:
    """The name used in greetings and in the digest's To: header: one line, not too long."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(f"{text!r} contains a line break or a control character")
    name = " ".join(text.split())
    if len(name) > DISPLAY_NAME_MAX:
        raise ValueError(f"a display name of {len(name)} characters is too long (at most 100)")
    return name


def _has_space_or_control(text: str) -> bool:
    return any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text)


class HostNotResolved(ValueError):
    """A feed's host whose name does not resolve now: no address to judge (the fetcher checks
    the addresses again at every fetch)."""


def check_feed_url(url: str, *, allow_files: bool, allow_private: bool) -> str:
    """A feed's address, checked as the fetcher will treat it: http(s) with a host that is not
    internal (unless `ingest.allow_private_addresses`), or `file:` only with `ingest.allow_files`.
    The host is resolved to apply the address policy (not with `allow_private`: then nothing
    here needs the network, nor imports the fetcher); `HostNotResolved` when it does not."""
    if not url.strip():
        raise ValueError("a feed URL cannot be empty; e.g. https://rss.arxiv.org/rss/cs.LG")
    if _has_space_or_control(url):
        raise ValueError(f"{url!r} contains a space or a line break; write a space as %20")
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError as e:
        raise ValueError(f"{url!r} is not a URL ({e})") from None
    if parts.scheme == "file":
        if not allow_files:
            raise ValueError(
                f"{url!r}: local files are read only when ingest.allow_files = true "
                "(meant for the demo and tests)"
            )
        if not parts.path or parts.path == "/":
            raise ValueError(f"{url!r} names no file; e.g. file:///srv/feeds/cs.LG.xml")
        return url
    if parts.scheme not in ("http", "https"):
        raise ValueError(
            f"{url!r} is not an http(s) URL; a feed's address starts with https:// "
            "(e.g. https://rss.arxiv.org/rss/cs.LG)"
        )
    if not host:
        raise ValueError(f"{url!r} has no host; e.g. https://rss.arxiv.org/rss/cs.LG")
    if not allow_private:
        from daemon.errors import FetchError
        from daemon.ingest.fetch import HostUnresolved, check_address

        try:
            check_address(host)
        except HostUnresolved as e:
            raise HostNotResolved(str(e)) from None
        except FetchError as e:
            raise ValueError(str(e)) from None
    return url


FREQUENCIES = ("daily", "weekly")  # daemon.db.models.Frequency
# a pause ends within two years (a date as far as 9999-12-31 has no delivery day after it)
MAX_PAUSE_DAYS = 731
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # User.digest_weekday 0 … 6
_WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def check_frequency(text: str) -> str:
    """How often a subscriber gets a digest: 'daily' or 'weekly'."""
    value = text.strip().lower()
    if value not in FREQUENCIES:
        raise ValueError(f"{text!r} is not a frequency: write daily or weekly")
    return value


def check_weekday(text: str) -> int:
    """A day of the week, 'mon' … 'sun' (or the full English name): 0 = Monday … 6 = Sunday."""
    value = text.strip().lower()
    for number, (short, full) in enumerate(zip(WEEKDAYS, _WEEKDAY_NAMES, strict=True)):
        if value in (short, full):
            return number
    raise ValueError(f"{text!r} is not a day of the week: write one of {', '.join(WEEKDAYS)}")


def weekday_name(number: int) -> str:
    return WEEKDAYS[number] if 0 <= number < len(WEEKDAYS) else str(number)


def frequency_text(
    frequency: str, weekday: int | None, paused_until: date | None, today: date | None = None
) -> str:
    """'daily', 'weekly on mon', '…, paused until 2027-01-04' (a pause over by `today` unsaid)."""
    text = f"weekly on {weekday_name(weekday or 0)}" if frequency == "weekly" else "daily"
    if paused_until is not None and (today is None or paused_until > today):
        text += f", paused until {paused_until.isoformat()}"
    return text


def check_pause_until(text: str, today: date) -> date:
    """The day digests start again (YYYY-MM-DD), after `today` (the user's local date) and
    at most MAX_PAUSE_DAYS later."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date: write YYYY-MM-DD, e.g. 2027-01-04") from None
    if day <= today:
        raise ValueError(
            f"{day.isoformat()} is not after today ({today.isoformat()} in the user's time "
            "zone): give the first day digests should come again"
        )
    if (day - today).days > MAX_PAUSE_DAYS:
        latest = today + timedelta(days=MAX_PAUSE_DAYS)
        raise ValueError(
            f"{day.isoformat()} is more than two years away: a pause ends by "
            f"{latest.isoformat()}; to stop the digests for good, unsubscribe instead"
        )
    return day

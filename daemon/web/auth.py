"""Who may use the console: password login (argon2 hashes from `admin.passwords`), sessions,
CSRF tokens, a login rate limit with lockout, and the audit log entry of every action.

- A session is a random token in an HTTP-only, SameSite=Strict cookie scoped to /admin (Secure
  unless the console is served over plain http on a non-loopback address); the database keeps
  only its SHA-256, with the admin's name, a CSRF token and an expiry (`admin.session_hours`).
  A session ends at logout, at expiry, and when its admin is removed or given a new password.
- Every form carries the session's CSRF token; a POST without it is refused (403). The login
  form, before any session, uses a double-submit token (a cookie and the same value in the
  form).
- After `admin.max_failed_logins` wrong passwords for one name from one address (or four times
  that from one address, whatever the names), logins from there wait `admin.lockout_minutes`,
  but for browsers holding the name's device cookie; the password is not even checked meanwhile.
- A login gives the browser a signed device cookie naming its admin (OWASP's "device cookie"
  scheme), kept a year or until the admin's password changes. Wrong passwords from a browser
  holding a valid one for the name are counted per that cookie (`admin.max_failed_logins` in
  the lockout window); those from other browsers count against the name: after
  `admin.max_failed_logins_per_name` within an hour, whatever the addresses, the name logs in
  only from browsers holding its device cookie until the hour has passed. Guesses spread over
  many networks stop, and the admin is not locked out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import secrets
import threading
import weakref
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeSerializer

from daemon.app import App, link_secret
from daemon.db.admin import SessionRow
from daemon.passwords import verify_password

SESSION_COOKIE = "paperwire_admin"
LOGIN_COOKIE = "paperwire_login"
COOKIE_PATH = "/admin"
IP_FACTOR = 4  # one address may fail this many times more, across all names
DEVICE_COOKIE = "paperwire_device"
DEVICE_DAYS = 365  # how long a browser is known for the admin who logged in there
NAME_WINDOW = timedelta(hours=1)  # the window of `admin.max_failed_logins_per_name`


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def secure_cookies(app: App) -> bool:
    """Secure cookies, unless the console's public address is plain http on a non-loopback
    host (a browser would never send them back there)."""
    parts = urlsplit(str(app.settings.server.base_url))
    return parts.scheme == "https" or _loopback(parts.hostname or "")


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cookies_refused(app: App, request: Request) -> bool:
    """Whether this request's browser keeps no cookie of the console: they are Secure (an
    https base_url) and the page was opened over plain http at a non-loopback address. A TLS
    proxy uvicorn does not trust (on another machine) says https in X-Forwarded-Proto: the
    browser is at https there, and keeps them."""
    proxied = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return (
        secure_cookies(app)
        and request.url.scheme == "http"
        and proxied != "https"
        and not _loopback(request.url.hostname or "")
    )


def set_cookie(app: App, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        secure=secure_cookies(app),
        httponly=True,
        samesite="strict",
    )


def clear_cookie(app: App, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, secure=secure_cookies(app), httponly=True, samesite="strict"
    )


@dataclass(frozen=True)
class Admin:
    """The admin of a request, with the CSRF token its forms must carry."""

    name: str
    csrf: str


def current_admin(app: App, request: Request) -> Admin | None:
    """The request's admin, from a live session of an admin who still exists."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    row: SessionRow | None = app.store.admin.find_session(_digest(token), app.clock())
    if row is None or row.admin not in app.settings.admin.passwords:
        return None
    # a new password ends the session, whichever way it was set (the command, the file, the
    # environment): the session names the hash it was opened with
    stamp = password_stamp(app.settings.admin.passwords[row.admin])
    if not hmac.compare_digest(row.password_stamp, stamp):
        return None
    return Admin(row.admin, row.csrf_token)


def password_stamp(password_hash: str) -> str:
    """What a session keeps of its admin's password hash: enough to tell a new one."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32]


def csrf_ok(expected: str, given: object) -> bool:
    return isinstance(given, str) and bool(given) and hmac.compare_digest(expected, given)


def _made_for(name: str) -> str:
    """The part of a session's CSRF token that names its admin (without saying the name)."""
    return hashlib.sha256(f"csrf of {name}".encode()).hexdigest()[:12]


def csrf_owner(given: object) -> str:
    """Whose session made this CSRF token, as `_made_for` says it ("" for none): a form of an
    ended session is offered again only to its own admin, never to the next one."""
    if not isinstance(given, str) or given.count(".") != 1:
        return ""
    made_for, _ = given.split(".")
    return made_for if len(made_for) == 12 else ""


def csrf_of_admin(name: str, owner: str) -> bool:
    """Whether `owner` (csrf_owner of a token) is this admin's."""
    return bool(owner) and hmac.compare_digest(_made_for(name), owner)


def open_session(app: App, response: Response, name: str, password_hash: str) -> str:
    """A session for `name`, who logged in with the password of `password_hash` (the hash
    checked, not read again: the file may have changed meanwhile); returns its CSRF token."""
    # the CSRF token names its admin: a kept form of an ended session is for that admin only
    token, csrf = secrets.token_urlsafe(32), f"{_made_for(name)}.{secrets.token_urlsafe(32)}"
    now = app.clock()
    hours = app.settings.admin.session_hours
    app.store.admin.open_session(
        _digest(token),
        name,
        csrf,
        now,
        now + timedelta(hours=hours),
        password_stamp(password_hash),
    )
    set_cookie(app, response, SESSION_COOKIE, token, int(hours * 3600))
    return csrf


def close_session(app: App, request: Request, response: Response) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        app.store.admin.close_session(_digest(token))
    clear_cookie(app, response, SESSION_COOKIE)


def _device_signer(app: App) -> URLSafeSerializer:
    return URLSafeSerializer(link_secret(app.settings), salt="paperwire-console-device")


def set_device_cookie(app: App, response: Response, name: str, password_hash: str) -> None:
    """Mark this browser as one where `name` logged in with the password of `password_hash`: a
    signed [name, random id, unix time made, the password's stamp], kept `DEVICE_DAYS` (a
    logout leaves it; a new password voids it)."""
    made = int(app.clock().timestamp())
    stamp = _device_stamp(password_hash)
    value = _device_signer(app).dumps([name, secrets.token_urlsafe(16), made, stamp])
    set_cookie(app, response, DEVICE_COOKIE, value, DEVICE_DAYS * 24 * 3600)


def _device_stamp(password_hash: str) -> str:
    """What a device cookie keeps of its admin's password hash: enough to tell a new one."""
    return password_stamp(password_hash)[:16]


def device_of(app: App, request: Request, name: str) -> str | None:
    """The id of this browser's device cookie when it is a valid one for `name`, made in the
    last `DEVICE_DAYS` with the name's password of now; None otherwise (none, forged, another
    name's, too old, of an earlier password: whoever logged in with a password that was then
    changed, many times over, held as many cookies, each with a limit of its own)."""
    raw = request.cookies.get(DEVICE_COOKIE)
    hashed = app.settings.admin.passwords.get(name) if name else None
    if not raw or hashed is None:
        return None
    try:
        payload = _device_signer(app).loads(raw)
    except BadSignature:
        return None
    if not (isinstance(payload, list) and len(payload) == 4):
        return None
    owner, device, made, stamp = payload
    now = app.clock().timestamp()
    fresh = isinstance(made, int) and now - DEVICE_DAYS * 24 * 3600 < made <= now + 300
    same = isinstance(stamp, str) and hmac.compare_digest(stamp, _device_stamp(hashed))
    return device if owner == name and isinstance(device, str) and fresh and same else None


def client_key(ip: str) -> str:
    """The address failed logins are counted by: an IPv6 address's /64 (one subscriber line
    or host holds a whole /64, and stepping through it gave each try a fresh count)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        if address in _NAT64:  # an IPv4 client through NAT64/SIIT: its own address, not the
            # /64 every IPv4 client of the translator shares
            return str(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return ip


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix


class Forgetting:
    """When a limiter forgets the keys whose times are all out of its window: at most once a
    window, not at each request (a look at every key each time, at request speed, grew with
    the keys: what a flood of new addresses or names makes). A key stays two windows at most."""

    def __init__(self) -> None:
        self._last: datetime | None = None

    def sweep(self, times_of: dict[Any, deque[datetime]], now: datetime, window: timedelta) -> None:
        """Drop from `times_of` the keys whose latest time is out of the window, if a window
        has passed since the last sweep (the caller holds its lock)."""
        if self._last is not None and now - self._last < window:
            return
        self._last = now
        for old in [k for k, t in times_of.items() if not t or t[-1] <= now - window]:
            del times_of[old]


@dataclass(frozen=True)
class Lockout:
    """Logins refused until `until`: of an address (`key` is the address), of a name from
    browsers without its device cookie (`for_name`), or of one device cookie."""

    until: datetime
    key: str  # whose lockout it is: what the audit log records once (`first_refusal`)
    for_name: bool = False


# what a login is counted in: (the failures, its key there, the limit, the window)
_Count = tuple[dict[tuple[str, str], deque[datetime]], tuple[str, str], int, timedelta]


class LoginLimiter:
    """Failed logins of browsers without the name's device cookie: per (address, name) and per
    address (an IPv6 address's /64) within the lockout window, per name (`_trust`) within
    `NAME_WINDOW`; of a browser holding it, per that cookie alone (`_trust`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, str], deque[datetime]] = defaultdict(deque)
        # ("device", its id) in the lockout window; ("name", name) in `NAME_WINDOW`
        self._trust: dict[tuple[str, str], deque[datetime]] = defaultdict(deque)
        self._told: set[tuple[str, datetime]] = set()  # (key, end) of lockouts audited
        self._forgetting = Forgetting()
        self._forgetting_trust = Forgetting()

    @staticmethod
    def _recent(
        failures: dict[tuple[str, str], deque[datetime]],
        key: tuple[str, str],
        now: datetime,
        window: timedelta,
    ) -> deque[datetime]:
        """The failures of `key` within the window; a key with none is forgotten (a locked
        address trying a new name each time kept one entry per name for ever)."""
        times = failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - window:
            times.popleft()
        if not times:
            del failures[key]
        return times

    def attempt(
        self, app: App, ip: str, name: str, device: str | None = None
    ) -> tuple[Lockout | None, datetime]:
        """A login of `name` from `ip`, by a browser holding the device cookie `device` for
        that name (`device_of`) or none, about to be checked: (its lockout if such logins are
        locked now, else None; the attempt's time). An attempt let through counts as a failure
        at once, in the same step as the check, so that logins checked at the same time (in
        worker threads) cannot pass the limit together; `succeeded` takes it back."""
        now = app.clock()
        counted = self._counted(app, ip, name, device)
        with self._lock:
            locked = self._locked(app, counted, now)
            if locked is not None:
                return locked, now
            for failures, key, _, _ in counted:
                failures[key].append(now)
        return None, now

    def locked(self, app: App, ip: str, name: str, device: str | None = None) -> Lockout | None:
        """The lockout of such a login if it is locked now, counting nothing: asked before a
        login waits for its password check, so that a locked-out one takes no place there."""
        counted = self._counted(app, ip, name, device)
        with self._lock:
            return self._locked(app, counted, app.clock())

    def _counted(self, app: App, ip: str, name: str, device: str | None) -> list[_Count]:
        """What a login of `name` from `ip` (holding the device cookie `device` or none) is
        counted in: (the failures, its key there, the limit, the window)."""
        s = app.settings.admin
        window = timedelta(minutes=s.lockout_minutes)
        ip = client_key(ip)
        # a browser holding the name's device cookie is counted per that cookie alone: an
        # address it shares with guessers (a NAT, a proxy whose X-Forwarded-For is not
        # trusted) does not lock it out
        if device:
            return [(self._trust, ("device", device), s.max_failed_logins, window)]
        return [
            (self._failures, (ip, name), s.max_failed_logins, window),
            (self._failures, (ip, ""), IP_FACTOR * s.max_failed_logins, window),
            (self._trust, ("name", name), s.max_failed_logins_per_name, NAME_WINDOW),
        ]

    def _locked(self, app: App, counted: list[_Count], now: datetime) -> Lockout | None:
        """The first lockout among `counted` now, or None (the caller holds the lock)."""
        window = timedelta(minutes=app.settings.admin.lockout_minutes)
        self._forgetting.sweep(self._failures, now, window)  # whoever made them
        self._forgetting_trust.sweep(self._trust, now, max(window, NAME_WINDOW))
        for failures, key, limit, span in counted:
            times = self._recent(failures, key, now, span)
            if len(times) >= limit:
                whose = ":".join(key) if failures is self._trust else key[0]
                for_name = failures is self._trust and key[0] == "name"
                return Lockout(times[-1] + span, whose, for_name)
        return None

    def first_refusal(self, locked: Lockout, now: datetime) -> bool:
        """Whether this refusal of a locked login is the first of its lockout: the one the
        audit log records. A locked address refused at request speed, a new name each time,
        wrote a row (and kept a limiter entry) each time."""
        told = (locked.key, locked.until)
        with self._lock:
            self._told = {t for t in self._told if t[1] > now}
            if told in self._told:
                return False
            self._told.add(told)
            return True

    def succeeded(self, ip: str, name: str, attempt: datetime, device: str | None = None) -> None:
        ip = client_key(ip)
        with self._lock:
            self._failures.pop((ip, name), None)
            if device:  # counted against its cookie alone (`attempt`)
                self._trust.pop(("device", device), None)
                return
            with contextlib.suppress(ValueError):  # gone already: out of the window
                self._failures[(ip, "")].remove(attempt)
            with contextlib.suppress(ValueError):  # the name's others stay: an attacker's maybe
                self._trust.get(("name", name), deque()).remove(attempt)


# argon2 as pwdlib hashes (m = 64 MiB each): logins checked at once, whatever arrives; the
# others wait their turn on the event loop (`LoginGate`), holding no worker thread
LOGINS_AT_ONCE = 2
# logins that may wait for their turn; one beyond them is answered at once (503, Retry-After):
# a flood queued without end, each waiter a connection held and a check owed
LOGINS_WAITING = 16
# places (checked or waiting) one client address (`client_key`) may hold: one address beyond
# them is answered at once (503), however few wait; it took every place before, and the logins
# of everyone else, an admin's too, were answered 503 for as long as it kept them full
LOGINS_PER_CLIENT = 4
# places beyond `LOGINS_WAITING` kept for the logins of browsers holding the name's device
# cookie (`device_of`): guessers from many addresses (an IPv6 /48 is 65,536 /64s) may fill the
# queue, not these; nor does the share of an address they share count them
LOGINS_KNOWN = 4
_VERIFYING = threading.BoundedSemaphore(LOGINS_AT_ONCE)  # the same, whatever the event loops


class LoginGate:
    """Where logins wait for their password check: a semaphore of `LOGINS_AT_ONCE` per event
    loop serving the app (uvicorn has one). An asyncio semaphore's waiters belong to one loop:
    shared by the loops of a TestClient (one per request), a login waiting on one was woken
    from another thread and never answered. `turn` also bounds how many may wait, and how
    many places one client may hold."""

    def __init__(self, at_once: int = LOGINS_AT_ONCE, waiting: int | None = None) -> None:
        self._at_once = at_once  # the library uploads' gate has its own number
        self._waiting = waiting  # None: without a bound (the uploads wait a bounded time)
        self._lock = threading.Lock()
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._gates = weakref.WeakKeyDictionary()
        self._queued: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int]
        self._queued = weakref.WeakKeyDictionary()
        self._held: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Counter[str]]
        self._held = weakref.WeakKeyDictionary()  # places of each client (`turn`'s `client`)

    def __call__(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        with self._lock:
            gate = self._gates.get(loop)
            if gate is None:
                gate = self._gates[loop] = asyncio.Semaphore(self._at_once)
            return gate

    @contextlib.asynccontextmanager
    async def turn(self, client: str = "", known: bool = False) -> AsyncIterator[bool]:
        """Wait for a turn and hold it: True; False at once (no turn held) when `waiting`
        others wait already (`LOGINS_KNOWN` more for a `known` browser), or when `client` (if
        named) holds `LOGINS_PER_CLIENT` places, waiting or with their turn (but for a known
        browser)."""
        gate, loop = self(), asyncio.get_running_loop()
        queued = self._queued.get(loop, 0)
        held = self._held.setdefault(loop, Counter())
        bound = (self._waiting or 0) + (LOGINS_KNOWN if known else 0)
        full = self._waiting is not None and gate.locked() and queued >= bound
        if full or (client and not known and held[client] >= LOGINS_PER_CLIENT):
            yield False
            return
        # one loop: no other task runs between these steps
        self._queued[loop], held[client] = queued + 1, held[client] + 1
        try:
            try:
                await gate.acquire()
            finally:
                self._queued[loop] -= 1
            try:
                yield True
            finally:
                gate.release()
        finally:
            held[client] -= 1
            if not held[client]:
                del held[client]


def check_password(password: str, hashed: str | None) -> bool:
    """argon2 verification against an admin's hash (None, an unknown name: the same time)."""
    with _VERIFYING:  # waits only when several event loops serve logins (see `LoginGate`)
        return verify_password(password, hashed)

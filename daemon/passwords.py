"""Admin passwords: argon2 hashes (pwdlib's recommended parameters). The configuration holds
only the hash; `paperwire admin set-password` makes it, the console's login checks it."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pwdlib import PasswordHash

MIN_LENGTH = 10


@functools.cache
def _hasher() -> PasswordHash:
    from pwdlib import PasswordHash

    return PasswordHash.recommended()


def check_new_password(password: str, name: str = "") -> str:
    """The password, if it may be one (of the admin `name`): long enough, not the name nor
    holding it (a name of 3 characters or more, in any case), not one character repeated."""
    if len(password) < MIN_LENGTH:
        raise ValueError(f"a password needs at least {MIN_LENGTH} characters")
    if password != password.strip():
        raise ValueError("a password cannot start or end with a space")
    if len(name) >= 3 and name.lower() in password.lower():
        raise ValueError("a password that contains the admin's name is among the first guessed")
    if len(set(password)) == 1:
        raise ValueError("a password of one character repeated is among the first guessed")
    return password


def hash_password(password: str, name: str = "") -> str:
    return _hasher().hash(check_new_password(password, name))


def verify_password(password: str, hashed: str | None) -> bool:
    """Whether `password` matches `hashed`. With no hash (an unknown admin) a dummy hash is
    checked all the same, so the time taken does not tell which names exist."""
    from pwdlib.exceptions import PwdlibError

    hasher = _hasher()
    try:
        if hashed is None:
            hasher.verify(password, _dummy())
            return False
        return hasher.verify(password, hashed)
    except (PwdlibError, ValueError):  # not a hash we can read
        return False


@functools.cache
def _dummy() -> str:
    return _hasher().hash("paperwire-no-such-admin")

"""The configuration file, edited: `paperwire config set/unset`, `admin set-password`, the
console's configuration page.

A change is checked by the rules paperwire applies at start-up before anything is written; the
file is then rewritten atomically (a temporary file in the same folder, fsync, rename) with
tomlkit, so its comments and the order of its keys survive, and the version before is kept
beside it as FILE.previous. Writers take a lock file first, so two concurrent changes both land
and the file is never half written. A key set by a PAPERWIRE_ environment variable is not
written: the variable would win anyway.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import re
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, SecretStr

from daemon.checks import OTHER_DIGITS, other_digits
from daemon.errors import ConfigError
from daemon.settings import (
    DEFAULT_CONFIG,
    Settings,
    config_text,
    environment_keys,
    load_settings,
    toml_value,
)

BUNDLED = Path(__file__).resolve().parent.parent / DEFAULT_CONFIG  # every key, commented
RESTART_KEYS = frozenset(
    {
        "database.url",
        "database.echo",
        "database.statement_timeout_seconds",
        "server.host",
        "server.port",
    }
)
SECRET_KEYS = frozenset({"server.secret_key", "email.password", "database.url"})
NOT_IN_FORM = frozenset({"admin.passwords"})  # `paperwire admin set-password`


class Unset:
    """The value of a key to remove from the file (its default applies again)."""


UNSET = Unset()
Change = Any  # a TOML value, or UNSET

Kind = Literal["bool", "int", "float", "choice", "table", "text"]


@dataclass(frozen=True)
class Key:
    """One key of the configuration, as the console's form and `config set` see it."""

    key: str  # "schedule.digest_hour"
    section: str
    name: str
    kind: Kind
    choices: tuple[str, ...]
    default: Any
    comment: str  # from the bundled config/paperwire.toml
    secret: bool  # never shown; an empty field keeps it
    restart: bool  # takes effect at the next start


def _kind(annotation: Any) -> tuple[Kind, tuple[str, ...]]:
    if annotation is bool:
        return "bool", ()
    if annotation is int:
        return "int", ()
    if annotation is float:
        return "float", ()
    if get_origin(annotation) is dict:
        return "table", ()
    if get_origin(annotation) is Literal:
        return "choice", tuple(str(a) for a in get_args(annotation))
    return "text", ()


def _default(info: Any) -> Any:
    value = info.get_default(call_default_factory=True)
    if isinstance(value, SecretStr):
        return ""
    return str(value) if isinstance(value, Path) or type(value).__name__ == "HttpUrl" else value


def keys() -> list[Key]:
    """Every key of every section, in the order of the settings (not `[[feeds]]`: the Feeds
    page and `paperwire feeds` manage feeds)."""
    comments = key_comments(BUNDLED.read_text(encoding="utf-8")) if BUNDLED.is_file() else {}
    found = []
    for section, section_info in Settings.model_fields.items():
        model = section_info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for name, info in model.model_fields.items():
            dotted = f"{section}.{name}"
            kind, choices = _kind(info.annotation)
            found.append(
                Key(
                    key=dotted,
                    section=section,
                    name=name,
                    kind=kind,
                    choices=choices,
                    default=_default(info),
                    comment=comments.get(dotted, ""),
                    secret=dotted in SECRET_KEYS or info.annotation is SecretStr,
                    restart=dotted in RESTART_KEYS,
                )
            )
    return found


_SECTION = re.compile(r"^\[([\w.]+)\]\s*$")
_KEY = re.compile(r"^(\w+)\s*=")


def key_comments(text: str) -> dict[str, str]:
    """{"section.key": its comment} from a commented TOML file: the comment lines right above
    each key."""
    found: dict[str, str] = {}
    section, block = "", []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            block.append(line.lstrip("#").strip())
            continue
        if m := _SECTION.match(line):
            section = m.group(1)
        elif (m := _KEY.match(line)) and section:
            found[f"{section}.{m.group(1)}"] = " ".join(b for b in block if b)
        block = []
    return found


def value_of(key: str, text: str) -> Any:
    """A value typed on the command line, as the TOML value of `key`: true/false for a switch,
    a whole number for an integer key, a number for a float one, an inline table `{ a = 1 }`,
    else the text itself."""
    known = {k.key: k for k in keys()}
    if key not in known:
        raise ConfigError(f"{key}: unknown key{_suggest(key, known)}")
    kind = known[key].kind
    if kind in ("int", "float") and other_digits(text):
        raise ConfigError(f"{key} = {text!r}: {OTHER_DIGITS}")
    if kind == "bool":
        word = text.strip().lower()
        if word in ("true", "yes", "on", "1"):
            return True
        if word in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"{key} = {text!r}: give true or false")
    if kind == "int":
        return _whole_number(key, text)
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{key} = {text!r}: give a number") from None
    if kind == "table":
        try:
            return toml_value(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(
                f"{key}: {text!r} is not a TOML table like {{ a = 1 }} ({e})"
            ) from None
    return text


def _whole_number(key: str, text: str) -> int:
    """7, or 7.0 (as the file takes it); 7.5 is a number, but not one these keys take."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if number.is_integer():
        return int(number)
    raise ConfigError(f"{key} = {text!r}: give a whole number")


def _suggest(key: str, known: Mapping[str, Key]) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else "; `paperwire config show` lists them"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer at a time (across processes): a lock file beside the configuration."""
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise ConfigError(f"{lock}: cannot lock the configuration ({e.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _check_writable(changes: Mapping[str, Change]) -> None:
    set_by_env, _ = environment_keys()
    for key in changes:
        for env_key, variable in set_by_env.items():
            if key == env_key or key.startswith(env_key + "."):
                raise ConfigError(
                    f"{key} is set by the environment variable {variable}; the file's value "
                    f"would have no effect: change (or unset) the variable instead"
                )
        if key.split(".")[0] == "feeds":
            raise ConfigError(
                f"{key}: feeds are managed with `paperwire feeds add/remove` or in the file"
            )


def _apply(doc: Any, key: str, value: Change) -> None:
    """Set or remove `section.key` (or `section.table.entry`) in a tomlkit document."""
    import tomlkit

    parts = key.split(".")
    node = doc
    for part in parts[:-1]:
        if part not in node:
            if value is UNSET:
                return
            node[part] = tomlkit.table() if node is doc else tomlkit.inline_table()
        node = node[part]
    container = node.value if isinstance(node, tomlkit.items.Table) else node
    if isinstance(value, dict):  # one line where it was ("options = { … }"), not a new [table]
        inline = tomlkit.inline_table()
        inline.update(value)
        value = inline
    if value is UNSET:
        # a secret goes for good: commented out, it would still be in the file (so does
        # every admin.* key, beside the hashes)
        secret = is_secret(key) or key.startswith("admin.")
        if parts[-1] in node and (secret or not _comment_out(container, parts[-1])):
            del node[parts[-1]]
    elif parts[-1] not in node and _uncomment(container, parts[-1], value):
        return
    else:
        node[parts[-1]] = value


def is_secret(key: str) -> bool:
    """A key whose value is never shown or echoed: a password, the secret key, the database
    URL (it may carry a password), an admin's hash."""
    return key in SECRET_KEYS or key.startswith("admin.passwords")


def _comment_out(container: Any, key: str) -> bool:
    """`key = value` becomes `# key = value` where it was, under its comment (so that a later
    `set` puts it back there). False for what is not one line of its own (a table)."""
    from tomlkit.container import Container
    from tomlkit.items import Comment, SingleKey, Table, Trivia

    index = container._map.get(SingleKey(key)) if isinstance(container, Container) else None
    if not isinstance(index, int):
        return False
    written, item = container.body[index]
    text = item.as_string().strip()
    # one line of its own, under its plain name (not "digest.max_picks = 5" at the top)
    if "\n" in text or isinstance(item, Table) or written.as_string().strip() != key:
        return False
    container.remove(key)  # leaves its place in the body (tomlkit keeps the indices)
    line = f"# {key} = {text}{'  ' + item.trivia.comment if item.trivia.comment else ''}"
    container.body[index] = (None, Comment(Trivia(comment_ws="", comment=line, trail="\n")))
    return True


def _uncomment(container: Any, key: str, value: object) -> bool:
    """Set `key` where the section has it commented out (`# key = value`, as `unset` leaves
    it): the last such line whose rest reads as TOML; prose ("# key = how many …") is not
    one. False when there is none."""
    from tomlkit.container import Container
    from tomlkit.items import Comment, Null

    if not isinstance(container, Container):
        return False
    commented = re.compile(rf"#\s*({re.escape(key)}\s*=.*)")
    for index in reversed(range(len(container.body))):
        k, item = container.body[index]
        found = commented.fullmatch(item.as_string().strip()) if isinstance(item, Comment) else None
        if k is None and found and _reads_as_toml(found.group(1)):
            container.body[index] = (None, Null())
            container._insert_at(index, key, value)
            return True
    return False


def _reads_as_toml(line: str) -> bool:
    try:
        tomllib.loads(line)
    except tomllib.TOMLDecodeError:
        return False
    return True


def edit(path: Path, changes: Mapping[str, Change]) -> Settings:
    """Apply the changes ({"section.key": value or UNSET}) to the file at `path` and return
    the new settings. Nothing is written unless the result is valid."""
    import tomlkit

    _check_writable(changes)
    with _locked(path):
        text = _read(path)
        try:
            doc = tomlkit.parse(text)
        except Exception as e:  # tomlkit's own parse errors
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
        for key, value in changes.items():
            _apply(doc, key, value)
        new_text = tomlkit.dumps(doc)
        return _replace(path, text, new_text)


def secrets_in(text: str) -> list[str]:
    """The secrets a configuration file's text sets itself (not through the environment):
    `email.password`, `server.secret_key`, a password in `database.url`, admins' hashes."""
    from daemon.settings import shown_database_url

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return []
    found = []
    for key in ("email.password", "server.secret_key", "database.url", "admin.passwords"):
        section, name = key.split(".")
        value = doc.get(section, {}).get(name) if isinstance(doc.get(section), dict) else None
        if key == "database.url":
            value = value if isinstance(value, str) and shown_database_url(value) != value else None
        if value:
            found.append(key)
    return found


def readable_by_others(path: Path) -> str:
    """A warning when the configuration file sets a secret and every account of the machine
    may read it; "" otherwise."""
    try:
        mode, text = path.stat().st_mode, config_text(path.read_bytes(), path)
    except (OSError, ConfigError):
        return ""
    held = secrets_in(text)
    if not mode & 0o004 or not held:
        return ""
    return (
        f"{path} sets {', '.join(held)} and every account of this machine may read it: "
        f"`chmod o-rwx {path}` (or put them in the environment, PAPERWIRE_EMAIL__PASSWORD …)"
    )


def _replace(path: Path, old_text: str, new_text: str) -> Settings:
    st = path.stat()
    mode = st.st_mode & 0o777
    if secrets_in(new_text) or secrets_in(old_text):  # both: FILE.previous keeps the old one
        mode &= ~0o007  # a password written into a file every account may read
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(new_text)
            fh.flush()
            os.fsync(fh.fileno())
        _keep_owner(tmp, st.st_uid, st.st_gid)
        os.chmod(tmp, mode)
        settings = load_settings(tmp, shown_as=path)  # the rules of start-up, env included
        from daemon.app import check_link_secret, recommender_config

        recommender_config(settings)
        check_link_secret(settings)  # a key file too short: the next start would fail
        previous = path.with_name(path.name + ".previous")
        fd = os.open(previous, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        _keep_owner(fd, st.st_uid, st.st_gid)
        os.fchmod(fd, mode)  # before its text: a secret is never in a file others may read
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(old_text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _sync_folder(path.parent)
    return settings


def _keep_owner(file: Path | int, uid: int, gid: int) -> None:
    """The new file gets the owner and group of the one it replaces (a file its writer makes
    is the writer's): root editing the daemon's file (paperwire:paperwire 0600), or an admin
    one read by the daemon through its group (0640), once a secret takes the rights of others
    away. The group alone when the writer is not root; left as made when it may not give it."""
    for owner in (uid, -1):
        with contextlib.suppress(OSError):
            if isinstance(file, int):
                os.fchown(file, owner, gid)
            else:
                os.chown(file, owner, gid)
            return


def _sync_folder(folder: Path) -> None:
    """The rename itself survives a power cut once the folder is synced."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def restore_previous(path: Path) -> Settings:
    """Put FILE.previous back (it is validated like any change)."""
    previous = path.with_name(path.name + ".previous")
    if not previous.is_file():
        raise ConfigError(f"{previous}: no previous version kept")
    with _locked(path):
        return _replace(path, _read(path), _read(previous))


def _read(path: Path) -> str:
    """The file's text, in UTF-8 as `load_settings` reads it; a ConfigError if it is not."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the configuration ({e.strerror})") from None
    return config_text(data, path)


__all__ = [
    "UNSET",
    "Key",
    "edit",
    "key_comments",
    "keys",
    "readable_by_others",
    "restore_previous",
    "secrets_in",
    "value_of",
]

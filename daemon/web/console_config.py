"""The console's configuration page: every key of the file as a form grouped by section, with
its comment (from the bundled config/paperwire.toml) and default. Saving goes through
`daemon.config_file.edit` — checked by the start-up rules first, written atomically with its
comments, the previous version kept — and is applied at once (`App.apply_settings`: the
scheduler's jobs move to a new schedule). Secrets are never shown: their field is empty and
an empty field keeps them. A key set by a PAPERWIRE_ variable is shown as such, read-only."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import SecretStr

from daemon.config_file import NOT_IN_FORM, Key, edit, keys, restore_previous, value_of
from daemon.errors import ConfigError
from daemon.settings import Settings, environment_keys
from daemon.web import auth
from daemon.web.console import Console, Posted


def shown(settings: Settings, key: Key) -> str:
    """A key's current value as the form shows it (a secret: empty)."""
    value = getattr(getattr(settings, key.section), key.name)
    if key.secret:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        import tomlkit

        table = tomlkit.inline_table()
        table.update(value)
        return str(table.as_string())
    return str(value)


def _is_set(settings: Settings, key: Key) -> bool:
    value = getattr(getattr(settings, key.section), key.name)
    return bool(value.get_secret_value() if isinstance(value, SecretStr) else value)


def _env_variable(key: str, set_by_env: dict[str, str]) -> str | None:
    for env_key, variable in set_by_env.items():
        if key == env_key or key.startswith(env_key + "."):
            return variable
    return None


def _page(
    console: Console,
    request: Request,
    who: auth.Admin,
    status: int = 200,
    *,
    errors: list[str] | None = None,
    submitted: dict[str, str] | None = None,
    seen: dict[str, str] | None = None,
) -> HTMLResponse:
    app = console.app
    settings = app.settings
    set_by_env, _ = environment_keys()
    # what `config check`, `run` and a reload warn of, for the settings applied now
    warnings = {"schedule.digest_cron": settings.schedule.hours_unreached()}
    fields: list[dict[str, Any]] = []
    for key in keys():
        if key.key in NOT_IN_FORM:
            continue
        value = now = shown(settings, key)
        typed = (submitted or {}).get(key.key)
        own = _errors_of(key, errors or [])
        refused = bool(own)
        if typed is not None and not (key.secret and refused):
            # what was typed, a secret too (in its password field, so that Save sends it
            # again), but a secret refused itself
            value = typed
        fields.append(
            {
                "key": key,
                "value": value,
                "is_set": _is_set(settings, key),
                "env": _env_variable(key.key, set_by_env),
                "default": "" if key.secret else _default(key),
                "errors": own,  # (id, text): under it, each describing it
                "warning": warnings.get(key.key, ""),  # and so does its warning
                # the value the page showed first (a refused save shows it again): a Save
                # writes the fields changed on the page, never one changed elsewhere since
                "seen": (seen or {}).get(key.key, now),
            }
        )
    sections = [(name, list(group)) for name, group in groupby(fields, _section)]
    path = app.config_file
    return console.render(
        request, who, "config.html", status, title="Configuration", sections=sections,
        path=path, previous=path is not None and _previous(path).is_file(),
        errors=errors or [], warnings=[w for w in warnings.values() if w],
        admins=sorted(settings.admin.passwords),
        feeds=[f.name for f in settings.feeds],
    )  # fmt: skip


def _errors_of(key: Key, errors: list[str]) -> list[tuple[str, str]]:
    """The errors about `key` ('schedule.digest_cron = …', a check of it after the file is
    read: 'recommender.options: …', or a rule of its section naming it: 'digest: keep_days =
    3: …'), each with an id of its own: error-KEY, error-KEY-2 …"""
    heads = (f"{key.key} = ", f"{key.key}: ", f"{key.section}: {key.name} = ")
    own = [e for e in errors if e.startswith(heads)]
    return [(f"error-{key.key}" + (f"-{n}" if n > 1 else ""), e) for n, e in enumerate(own, 1)]


def _section(field: dict[str, Any]) -> str:
    return str(field["key"].section)


def _default(key: Key) -> str:
    if isinstance(key.default, bool):
        return "true" if key.default else "false"
    if isinstance(key.default, dict):
        return "{}" if not key.default else str(key.default)
    return str(key.default)


def _previous(path: Path) -> Path:
    return path.with_name(path.name + ".previous")


def _changes(
    console: Console, form: Posted
) -> tuple[dict[str, Any], list[str], dict[str, str], dict[str, str]]:
    """The keys whose field was changed on the page (it differs from the value the page showed,
    else from the current one), parsed; errors; what was typed; what the page showed."""
    settings = console.app.settings
    set_by_env, _ = environment_keys()
    changes: dict[str, Any] = {}
    errors: list[str] = []
    submitted: dict[str, str] = {}
    seen: dict[str, str] = {}
    for key in keys():
        raw = form.form.get(key.key)
        if key.key in NOT_IN_FORM or not isinstance(raw, str):
            continue
        if _env_variable(key.key, set_by_env):
            continue
        text = raw if key.kind == "text" else raw.strip()
        submitted[key.key] = text
        shown_then = form.form.get(f"seen.{key.key}")
        if isinstance(shown_then, str):
            seen[key.key] = shown_then
        before = shown_then if isinstance(shown_then, str) else shown(settings, key)
        if key.kind != "text":
            before = before.strip()
        if (key.secret and text == "") or (not key.secret and text == before):
            continue  # an empty secret is kept; a value not changed here is not rewritten
        try:
            changes[key.key] = value_of(key.key, text)
        except ConfigError as e:
            errors.append(str(e))
    return changes, errors, submitted, seen


def _save(console: Console, request: Request, form: Posted) -> Response:
    app = console.app
    if app.config_file is None:
        return console.back("/admin/config", "No configuration file to write.", error=True)
    changes, errors, submitted, seen = _changes(console, form)
    if errors:
        return _page(
            console, request, form.admin, 400, errors=errors, submitted=submitted, seen=seen
        )
    if not changes:
        return console.back("/admin/config", "Nothing changed.")
    try:
        new = edit(app.config_file, changes)
    except ConfigError as e:  # the file is untouched
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        return _page(
            console, request, form.admin, 400, errors=lines, submitted=submitted, seen=seen
        )
    try:
        restart = app.apply_settings(new, source="console")
    except ConfigError as e:  # refused when applied (the link-signing key file it names):
        restore_previous(app.config_file)  # the file as it was, which the daemon starts on
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        return _page(
            console, request, form.admin, 400, errors=lines, submitted=submitted, seen=seen
        )
    secret = {k.key for k in keys() if k.secret}
    for key, value in changes.items():
        detail = "(secret)" if key in secret else repr(value)
        console.audit(form.admin.name, "config changed", key, detail)
    note = f"; {', '.join(restart)} take(s) effect at the next start" if restart else ""
    return console.back("/admin/config", f"Saved and applied: {', '.join(sorted(changes))}{note}.")


def _restore(console: Console, form: Posted) -> Response:
    app = console.app
    if app.config_file is None:
        return console.back("/admin/config", "No configuration file to write.", error=True)
    try:
        new = restore_previous(app.config_file)
    except ConfigError as e:
        return console.back("/admin/config", str(e).splitlines()[0], error=True)
    try:
        app.apply_settings(new, source="console (previous version restored)")
    except ConfigError as e:  # refused when applied: the file as it was
        restore_previous(app.config_file)
        return console.back("/admin/config", str(e).splitlines()[0], error=True)
    console.audit(form.admin.name, "config restored", str(app.config_file))
    return console.back("/admin/config", "The previous version is back, and applied.")


def config_routes(router: APIRouter, console: Console, admin: Any, posted: Any) -> None:
    @router.get("/config")
    def config(request: Request, who: auth.Admin = admin) -> HTMLResponse:
        return _page(console, request, who)

    @router.post("/config")
    def save(request: Request, form: Posted = posted) -> Response:
        return _save(console, request, form)

    @router.post("/config/restore")
    def restore(form: Posted = posted) -> Response:
        return _restore(console, form)

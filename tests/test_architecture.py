"""The import rules of docs/architecture.md, checked on the source (ast, no imports run)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package (or module prefix) → packages it must never import
RULES: dict[str, tuple[str, ...]] = {
    "recommender": ("daemon", "notifications"),  # pure ranking: plain data in and out
    "notifications": ("daemon", "recommender"),  # digest → messages → transports; no SQL
    "daemon.ingest": ("daemon.db", "daemon.jobs", "daemon.web", "daemon.app", "recommender"),
    "daemon.db": ("daemon.jobs", "daemon.web", "daemon.app", "daemon.cli", "recommender"),
    "daemon.library": ("daemon.jobs", "daemon.web", "daemon.cli", "recommender"),
    # a library file's bytes → entries: no database, no network
    "daemon.library.read": ("daemon.db", "daemon.app", "daemon.ingest.fetch", "httpx"),
}


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _sources(package: str) -> list[Path]:
    base = ROOT.joinpath(*package.split("."))
    return sorted(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]


@pytest.mark.parametrize("package", sorted(RULES))
def test_import_rules(package: str) -> None:
    sources = _sources(package)
    assert sources, package
    broken = [
        f"{_module(path)} imports {name}"
        for path in sources
        for name in sorted(_imports(path))
        for banned in RULES[package]
        if name == banned or name.startswith(banned + ".")
    ]
    assert broken == []


def test_the_rules_catch_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from daemon.db import Store\nimport notifications.render as r\n")
    assert {"daemon.db", "notifications.render"} <= _imports(bad)

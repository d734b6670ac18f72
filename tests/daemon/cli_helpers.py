"""Helpers for tests of the `paperwire` command: a config file on a temporary SQLite database,
the installed script, help output flattened."""

from __future__ import annotations

import re
import sys
from pathlib import Path

PAPERWIRE = Path(sys.executable).parent / "paperwire"  # the venv running the tests


def write_config(tmp_path: Path, db_name: str = "paperwire.db") -> Path:
    path = tmp_path / "paperwire.toml"
    path.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path / db_name}"

[server]
secret_key = "cli-test-secret-0123"
secret_key_file = "{tmp_path / "secret.key"}"

[ingest]
allow_files = true

[digest]
max_age_days = 36500  # the recorded feeds are older than any run

[delivery]
outbox_dir = "{tmp_path / "outbox"}"

[log]
level = "WARNING"
"""
    )
    return path


def flat(text: str) -> str:
    """Help output without Rich's box drawing, whitespace collapsed."""
    return " ".join(re.sub(r"[│╭╮╰╯─┃]", " ", text).split())

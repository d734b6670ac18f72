"""Shared pytest configuration."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    # `pytest --regen-expected` (or env PAPERWIRE_REGEN=1) rewrites the expected-output JSON files
    # under tests/data/expected/ from the current parser instead of comparing against them (used by
    # tests/test_parse.py). Review the diff by eye before committing regenerated files.
    parser.addoption(
        "--regen-expected",
        action="store_true",
        default=False,
        help="rewrite tests/data/expected/*.json from the current code (also: PAPERWIRE_REGEN=1)",
    )

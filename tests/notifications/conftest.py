"""Make the project root importable (``notifications``, ``tests.servers``) under plain
``pytest``: the project is not installed and pytest's rootdir is not on ``sys.path``.
Harmless once pyproject sets ``pythonpath = ["."]``."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

"""Start-up time of the `paperwire` command: `--help` and `users list` on a small database.

    .venv/bin/python -m bench.cli [--runs 11]

Each command runs as a real process (the installed console script) `--runs` times after one
warm-up; prints the median and the range of the wall time, and the target (≤ 0.8 s).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PAPERWIRE = Path(sys.executable).parent / "paperwire"
TARGET_S = 0.8


def _time(args: list[str], cwd: Path, runs: int) -> list[float]:
    times = []
    for n in range(runs + 1):
        t0 = time.perf_counter()
        done = subprocess.run([str(PAPERWIRE), *args], cwd=cwd, capture_output=True, check=False)
        elapsed = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"paperwire {' '.join(args)} failed: {done.stderr.decode()}")
        if n:  # the first run warms the disk cache
            times.append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11, help="timed runs of each command")
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = root / "paperwire.toml"
        config.write_text(
            f'[database]\nurl = "sqlite:///{root / "p.db"}"\n'
            f'[server]\nsecret_key_file = "{root / "secret.key"}"\n'
        )
        base = ["--config", str(config)]
        _time([*base, "db", "upgrade"], root, 0)
        for n in range(20):
            _time([*base, "users", "add", f"u{n}", "--email", f"u{n}@lab.example"], root, 0)
        print("| command | median s | min–max s | target s |\n|---|---|---|---|")
        for args in (["--help"], [*base, "users", "list"]):
            t = _time(args, root, runs)
            shown = " ".join(a for a in args if a not in base)
            print(
                f"| `paperwire {shown}` | {statistics.median(t):.2f} | "
                f"{min(t):.2f}–{max(t):.2f} | ≤ {TARGET_S} |"
            )


if __name__ == "__main__":
    main()

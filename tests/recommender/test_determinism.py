"""The same rankings whatever the BLAS thread count: the whole ranking path (fit and rank, both
methods, explanations) runs in subprocesses with one and with two threads, compared exactly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _start(threads: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, **dict.fromkeys(THREAD_VARS, str(threads)), "PYTHONHASHSEED": "random"}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.recommender.rank_fields"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_rankings_do_not_depend_on_the_blas_thread_count() -> None:
    runs = [_start(1), _start(2)]  # side by side: the two cores run one each
    outputs = []
    for p in runs:
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr.decode()
        outputs.append(stdout.decode())
    one, two = outputs
    lines = one.splitlines()
    assert len(lines) > 8000  # every reader got a digest from every configuration
    names = {line.split(",")[0] for line in lines}
    assert names == {'["cf-map"', '["young"', '["blend"', '["text"'}
    # compared line by line first, so a failure names the first reader that differs
    for a, b in zip(lines, two.splitlines(), strict=True):
        assert a == b

"""The same rankings whatever the BLAS thread count: the whole ranking path (fit and rank, both
methods, explanations) runs in subprocesses with one and with two threads, compared exactly."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

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


def test_one_blas_thread_holds_until_the_last_overlapping_thread_leaves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Threads A and B (the scheduler's jobs, the web server's): A enters, B enters, A leaves,
    B leaves. B still runs on one thread after A left, and the setting before is back after
    both. Plain `threadpool_limits` blocks gave two back when A left and left one for good after
    B (measured with OpenBLAS: bench/README.md). threadpoolctl's limit is replaced by a fake
    that keeps one process-wide count, as OpenBLAS does, and restores what it found: what
    OpenBLAS reports to a thread other than the main one is not reliable (a CI run read one
    thread after the last had left, where the CPU time showed two)."""
    import recommender.exact as exact

    blas = {"threads": 2}

    class FakeLimit:  # threadpoolctl's limit, set when made
        def __init__(self, limits: int) -> None:
            self.found = blas["threads"]
            blas["threads"] = limits

        def restore_original_limits(self) -> None:
            blas["threads"] = self.found

    monkeypatch.setattr(exact, "_limit_blas", FakeLimit)
    b_inside, a_left = threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def a() -> None:
        with exact.one_blas_thread():
            seen["a"] = blas["threads"]
            thread_b.start()
            assert b_inside.wait(60)
        a_left.set()

    def b() -> None:
        with exact.one_blas_thread():
            b_inside.set()
            assert a_left.wait(60)
            seen["b after a left"] = blas["threads"]

    thread_b = threading.Thread(target=b)
    thread_a = threading.Thread(target=a)
    thread_a.start()
    thread_a.join()
    thread_b.join()
    seen["after both"] = blas["threads"]
    assert seen == {"a": 1, "b after a left": 1, "after both": 2}

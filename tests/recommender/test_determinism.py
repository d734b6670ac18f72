"""The same rankings whatever the BLAS thread count: the whole ranking path (fit and rank, both
methods, explanations) runs in subprocesses with one and with two threads, compared exactly."""

from __future__ import annotations

import os
import subprocess
import sys
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


OVERLAP = """
import json, threading
import numpy, scipy.linalg  # the BLAS libraries loaded
from threadpoolctl import threadpool_info, threadpool_limits
from recommender.exact import one_blas_thread

def blas():
    return sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})

def in_thread(work):
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()

seen = {}
in_thread(lambda: threadpool_limits(limits=2, user_api="blas"))
in_thread(lambda: seen.update(before=blas()))
b_inside, a_left = threading.Event(), threading.Event()

def a():
    with one_blas_thread():
        seen["a"] = blas()
        thread_b.start()
        b_inside.wait(30)
    a_left.set()

def b():
    with one_blas_thread():
        b_inside.set()
        a_left.wait(30)
        seen["b after a left"] = blas()

thread_b = threading.Thread(target=b)
in_thread(a)
thread_b.join()
in_thread(lambda: seen.update({"after both": blas()}))
print(json.dumps(seen))
"""


def test_one_blas_thread_holds_until_the_last_overlapping_thread_leaves() -> None:
    """Threads A and B (as the scheduler's jobs and the web server's run): A enters, B enters,
    A leaves, B leaves. B still runs on one thread after A left (plain `threadpool_limits`
    gave two back there, and one for good after B), and the setting before is back after
    both. In a new process, and in threads, not the main one: once the main thread has set a
    count, what OpenBLAS reports to another thread no longer follows (what it runs does)."""
    import json

    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    done = subprocess.run(
        [sys.executable, "-c", OVERLAP], cwd=ROOT, env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    seen = json.loads(done.stdout)
    if seen["before"] != [2]:
        pytest.skip(f"BLAS threads here: {seen['before']}, not two (no BLAS threadpoolctl sees)")
    assert seen == {"before": [2], "a": [1], "b after a left": [1], "after both": [2]}

"""How a cost grows with the input, measured so that the machine's speed cancels out.

A test never asserts seconds: a loaded or slow machine would fail it. It asserts a ratio of
CPU times taken in one run, of the same work on an input and on one 4 times as long: about 4
when the input is read once, 16 when it is read again from each place (quadratic)."""

from __future__ import annotations

import time
from collections.abc import Callable

LINEAR_LIMIT = 10.0  # between linear (4) and quadratic (16) for 4 times the input


def cpu_seconds(work: Callable[[], object]) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def growth(short: Callable[[], object], long: Callable[[], object]) -> float:
    """CPU time of `long` ÷ CPU time of `short` (the least of several: a page fault or a
    collection adds time, never takes it away). `long` runs again only while the ratio looks
    too high, so that a quadratic regression fails in seconds, not minutes."""
    once = min(cpu_seconds(short) for _ in range(5))
    ratio = float("inf")
    for _ in range(3):
        ratio = min(ratio, cpu_seconds(long) / once)
        if ratio < LINEAR_LIMIT:
            break
    return ratio

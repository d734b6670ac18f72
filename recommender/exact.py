"""Dense products that give the same bits on every machine.

A BLAS product sums in an order that depends on its thread count, its CPU kernels and the
shape of the call, so two machines (or one machine with `OPENBLAS_NUM_THREADS=1` and `=2`)
disagree in the last bits, and a ranking that compares such numbers disagrees too.

Here the operands are unit rows rounded to a fixed grid: the rows of the left operand to
multiples of 2^-LEFT_BITS, those of the right operand to multiples of 2^-RIGHT_BITS. Every
product aᵢbᵢ is then a multiple of 2^-(LEFT_BITS + RIGHT_BITS) = 2^-23, and every partial sum
of a row by a row is bounded by Σ|aᵢbᵢ| ≤ ‖a‖‖b‖ < 2 (rounding moves a unit row's norm by at
most √dim · 2^-bits, under 1 % for 512 factors). A multiple of 2^-23 below 2 has at most 24
significant bits, so float32 holds every partial sum exactly: the product is exact, whatever
the order of summation, the blocking, the threads or fused multiply-adds. The rows are
normalised in float64 before rounding, so the rounding itself does not depend on the platform
either (a row would have to fall within ~1e-16 of a grid midpoint).

The grid costs at most 2^-12 per coordinate: scores move by ~1e-4, far below the gaps that
decide a digest, and the eval figures stay within ±0.001 (docs/recommender.md).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from threadpoolctl import get_cached_controller

LEFT_BITS = 11  # profiles, liked papers (the left operand of a product)
RIGHT_BITS = 12  # candidates, topics (the right operand)


def on_grid(x: np.ndarray, bits: int, dtype: type[np.floating] = np.float32) -> np.ndarray:
    """The rows of `x` scaled to unit length (in float64) and rounded to multiples of
    2^-bits; zero rows stay zero."""
    x64 = np.asarray(x, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", x64, x64))
    norms[norms == 0.0] = 1.0
    scale = float(2**bits)
    return np.asarray(np.rint(x64 * (scale / norms)[:, None]) / scale, dtype=dtype)


_blas_lock = threading.Lock()
_blas_users = 0  # threads inside `one_blas_thread`
_blas_limit: Any = None  # the limit they share, restored by the last to leave


def _limit_blas(limits: int) -> Any:
    """threadpoolctl's `threadpool_limits(limits, user_api="blas")`, through its cached
    controller. A new controller looks through every loaded library again: 1.8 ms in the
    digest job's process, once a batch, against 0.015 ms cached. threadpoolctl makes the
    cached one anew after any import, which may have loaded another BLAS."""
    return get_cached_controller().limit(limits=limits, user_api="blas")


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS on one thread while any thread of the process is inside. threadpoolctl's limits are
    process-wide: two overlapping `threadpool_limits` blocks of two threads give the setting
    back in the wrong order (the first to leave restores two threads while the other is still
    inside, the second then restores one for good), which would let a fit's LAPACK calls, whose
    results depend on the thread count, run on two. Here the first to enter sets the limit and
    the last to leave restores what was there before."""
    global _blas_users, _blas_limit
    with _blas_lock:
        if _blas_users == 0:
            _blas_limit = _limit_blas(1)
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limit.restore_original_limits()
                _blas_limit = None

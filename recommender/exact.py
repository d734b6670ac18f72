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

import numpy as np

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

"""Exact per-key sums of float64 values for the aggregates (hospital indices), fast for the usual
values and exact for all.

A sum is kept as eight int64 rows per key, value = H + A·2^-26 + B·2^-52 + Σ_j L_j·2^(32j-96).
A value that is 0 or in [1, 2^31) (costs in yuan, stays in days) is its integer part H and the
two 26-bit halves A, B of its fraction, which are exact because such a double has no bit below
2^-52: three integer additions a value. Any other finite value below 2^64 goes to the five
``ExactSum`` limbs L. Integer sums do not depend on the order of the rows or how they were
batched, and the total is rounded to float64 once (``to_float``), so the result is the exact sum
correctly rounded: the same as ``ExactSum``'s to the last bit, with no Python per value.
The indices' compiled pass (``_cells``) makes the same cut, one row at a time (a test compares).
"""

from __future__ import annotations

import math

import numpy as np

from grouper._util.money import ExactSum

__all__ = ["ROWS", "add_at", "add_by_key", "to_float"]

ROWS = 3 + ExactSum.LIMBS  # H, A, B, then the limbs
_HALF = float(1 << 26)
_LIMIT = float(1 << 31)  # H below this: int64 sums of H hold 2^32 such values


def add_at(into: np.ndarray, key: np.ndarray, x: np.ndarray) -> None:
    """Add each value of ``x`` exactly into column ``key`` of the sums ``into`` (ROWS, m), one
    integer addition a part (``np.add.at``): no array the size of ``into`` per call."""
    x = np.asarray(x, np.float64)
    fast = (x == 0) | ((x >= 1) & (x < _LIMIT))
    if not fast.all():
        slow = ~fast
        limbs = ExactSum.limbs(x[slow])  # a ValueError for a value it cannot hold
        for j in range(ExactSum.LIMBS):
            np.add.at(into[3 + j], key[slow], limbs[j])
        key, x = key[fast], x[fast]
    h = np.floor(x)
    np.add.at(into[0], key, h.astype(np.int64))
    f = (x - h) * _HALF
    if f.any():  # whole numbers (days) have no fraction to add
        hi = np.floor(f)
        np.add.at(into[1], key, hi.astype(np.int64))
        np.add.at(into[2], key, ((f - hi) * _HALF).astype(np.int64))


def add_by_key(into: np.ndarray, key: np.ndarray, sums: np.ndarray) -> None:
    """Add columns of sums (ROWS, n) into ``into`` (ROWS, m) at ``key`` (n values in 0..m-1)."""
    for row in range(ROWS):
        np.add.at(into[row], key, sums[row])


def to_float(sums: np.ndarray) -> np.ndarray:
    """Each column's exact total rounded to the nearest float64 (ties to even): vectorised where
    the limbs are zero (carry A and B into H, then one IEEE addition of two exact doubles, which
    is correctly rounded), exact Python integers for the other columns."""
    h, a, b = sums[0], sums[1], sums[2]
    a = a + (b >> 26)
    b = b & ((1 << 26) - 1)
    h = h + (a >> 26)
    a = a & ((1 << 26) - 1)
    out = h.astype(np.float64) + (a * (1 << 26) + b).astype(np.float64) * 2.0 ** -52
    other = (sums[3:] != 0).any(axis=0) | (h < 0) | (h >= 1 << 53)
    for i in np.flatnonzero(other).tolist():
        col = [int(v) for v in sums[:, i]]
        total = (col[0] << 96) + (col[1] << 70) + (col[2] << 44) + sum(v << (32 * j) for j, v in enumerate(col[3:]))
        out[i] = math.ldexp(float(total), ExactSum.LOW)
    return out

"""Exact money sums: whole fen (cents) summed in int64 and float64 values summed as integer limbs,
so that a total is the same in any row order and however the rows were batched, to the last bit.
Shared by settlement (payment) and the hospital indices (analytics)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

__all__ = ["MONEY_TYPE", "ExactSum", "ExactTotal", "MoneyOverflow", "cent_sums", "cents", "money_array", "money_value",
           "sorted_sum", "with_money"]


class ExactSum:
    """Sums of float64 values that are exact, so independent of order and of how the rows were
    split into batches, files or dataset fragments: each |x| is cut into five 32-bit integer limbs
    at fixed binary positions (2^-96 .. 2^64, so exact for every |x| in 2^-43 .. 2^64, costs and
    stays included), limbs are summed as integers, and the total is rounded to float64 once.
    """

    LIMBS, LOW = 5, -96

    @classmethod
    def limbs(cls, x: np.ndarray) -> np.ndarray:
        """(LIMBS, n) int64 limbs of |x|, signed like x (each |limb| < 2^32): the 53-bit integer
        mantissa shifted into place, bits below 2^-96 dropped."""
        ax = np.abs(x)
        if len(x) and not (ax.max() < 2.0 ** 64):  # also catches inf and NaN
            raise ValueError("values must be finite and below 2^64 to be summed exactly")
        m, e = np.frexp(ax)  # |x| = m * 2^e, m in [0.5, 1)
        mant = np.ldexp(m, 53).astype(np.int64)
        pos = e.astype(np.int64) - 53 - cls.LOW  # where the mantissa's lowest bit sits
        out = np.empty((cls.LIMBS, len(x)), np.int64)
        for j in range(cls.LIMBS):
            t = pos - 32 * j
            out[j] = np.where(t >= 0, np.left_shift(mant, np.clip(t, 0, 63)),
                              np.right_shift(mant, np.clip(-t, 0, 63))) & 0xFFFFFFFF
        return out * np.sign(x).astype(np.int64)

    @classmethod
    def by_key(cls, key: np.ndarray, x: np.ndarray, n_keys: int) -> np.ndarray:
        """(LIMBS, n_keys) int64 limb sums per key. Float bincount is exact here: integers below
        2^32 times fewer than 2^21 rows stay below 2^53."""
        if len(x) >= 1 << 21:
            parts = [cls.by_key(key[i:i + (1 << 20)], x[i:i + (1 << 20)], n_keys) for i in range(0, len(x), 1 << 20)]
            return np.sum(parts, axis=0)
        return np.stack([np.bincount(key, w.astype(np.float64), n_keys) for w in cls.limbs(x)]).astype(np.int64)

    @classmethod
    def to_float(cls, limb_sums: np.ndarray) -> np.ndarray:
        """Round each column's exact total to the nearest float64 (a Python int per key, not per case)."""
        cols = limb_sums.T.tolist()
        return np.array([math.ldexp(float(sum(v << (32 * j) for j, v in enumerate(c))), cls.LOW) for c in cols],
                        np.float64)


def sorted_sum(x: np.ndarray) -> float:
    """A sum that does not depend on the order of the values (they are summed sorted); for the
    small in-memory tables (weights, hospitals)."""
    return float(np.sort(x).sum()) if len(x) else 0.0


def cents(x: np.ndarray) -> np.ndarray:
    """Money rounded to the fen as float whole cents: sums of these are exact in any order."""
    return np.rint(np.asarray(x, float) * 100.0)


_EXACT_CENTS = 2.0 ** 53  # whole cents up to this size are exact in float64
_INT64_ROOM = 2.0 ** 62  # sums stay below this, so int64 never wraps


def cent_sums(key: np.ndarray, x: np.ndarray, size: int, into: np.ndarray, what: str) -> None:
    """Add the whole cents ``x`` per ``key`` to the int64 ``into``, exactly: the same totals in
    any row order, however the rows were batched. Each value is split into 26-bit halves whose
    float sums are exact (batches below 2^26 rows); a value that is not finite or beyond 2^53
    cents, or a total that would not fit in int64, is an error naming ``what``."""
    x = np.asarray(x, np.float64)
    if len(x) and not (np.abs(x) < _EXACT_CENTS).all():
        bad = x[~(np.abs(x) < _EXACT_CENTS)][0]
        raise MoneyOverflow(f"cannot settle {what} exactly: an amount is {bad / 100:g} yuan (not finite, or "
                            f"{_EXACT_CENTS / 100:g} yuan or more)")
    step = 1 << 25
    for a in range(0, len(x), step):
        k, v = key[a:a + step], x[a:a + step]
        approx = np.bincount(k, v, size)
        if not (np.abs(into + approx) < _INT64_ROOM).all():
            raise MoneyOverflow(f"cannot add up {what}: a total reaches {np.max(np.abs(into + approx)) / 100:g} "
                                "yuan, beyond what is summed exactly (int64 fen)")
        hi = np.floor(v / 67_108_864.0)  # 2^26
        lo = v - hi * 67_108_864.0
        into += (np.bincount(k, hi, size).astype(np.int64) << 26) + np.bincount(k, lo, size).astype(np.int64)


class MoneyOverflow(ValueError):
    """A sum that cannot be exact: a value not finite or too large, or a total beyond int64 fen."""


class ExactTotal:
    """An exact running sum of float64 values (``ExactSum`` limbs kept as Python integers), so a
    total is the same whatever the order of the rows and however they were batched. ``what``
    names the total in the error for a value it cannot hold (not finite, or 2^64 and more)."""

    def __init__(self, what: str = "the payments to renormalise"):
        self.what = what
        self.limbs = [0] * ExactSum.LIMBS

    def add(self, x: np.ndarray) -> None:
        if len(x):
            try:
                limbs = ExactSum.limbs(np.asarray(x, float)).sum(axis=1)
            except ValueError:
                bad = x[~(np.abs(x) < 2.0 ** 64)][0]
                raise MoneyOverflow(f"cannot add up {self.what}: a value is {bad:g} (not finite, or 2^64 or more)") \
                    from None
            self.limbs = [a + int(b) for a, b in zip(self.limbs, limbs)]

    def plus(self, other: ExactTotal) -> ExactTotal:
        e = ExactTotal()
        e.limbs = [a + b for a, b in zip(self.limbs, other.limbs)]
        return e

    def value(self) -> float:
        return float(ExactSum.to_float(np.array(self.limbs, dtype=object).reshape(-1, 1))[0])


#: How money is written to files: yuan as an exact decimal with two places (whole fen), so a CSV
#: holds ``37598.98``, never the float ``37598.98190000002``, and Parquet/Arrow a decimal128.
MONEY_TYPE = pa.decimal128(18, 2)


def money_array(values) -> pa.Array:
    """Yuan (float, int or decimal; NaN or null for none) as ``MONEY_TYPE``: rounded to the fen
    half to even, like ``cents``; each fen count goes straight into the decimal's 128-bit
    integer, so no float is ever printed."""
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_decimal(arr.type):
        return arr.cast(MONEY_TYPE)
    x = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
    valid = np.isfinite(x)
    if not (np.abs(x[valid]) < _EXACT_CENTS / 100).all():
        raise MoneyOverflow(f"an amount of {x[valid][np.abs(x[valid]) >= _EXACT_CENTS / 100][0]:g} yuan "
                            "cannot be written in whole fen")
    fen = np.where(valid, np.rint(np.where(valid, x, 0.0) * 100.0), 0.0).astype(np.int64)
    words = np.empty((len(fen), 2), np.int64)  # little-endian int128: low word, then the sign
    words[:, 0], words[:, 1] = fen, fen >> 63
    mask = None if valid.all() else pa.array(valid).buffers()[1]
    return pa.Array.from_buffers(MONEY_TYPE, len(fen), [mask, pa.py_buffer(words.tobytes())],
                                 null_count=int((~valid).sum()))


def with_money(data, names):
    """A table or record batch with each of its columns named in ``names`` written as money
    (``money_array``); others, and names it lacks, as they are. Metadata is kept."""
    if not any(n in data.schema.names for n in names):
        return data
    cols = [money_array(c) if n in names and (pa.types.is_floating(c.type) or pa.types.is_integer(c.type)
                                                 or pa.types.is_decimal(c.type)) else c
            for n, c in zip(data.schema.names, data.columns)]
    fields = [f.with_type(c.type) for f, c in zip(data.schema, cols)]
    schema = pa.schema(fields, metadata=data.schema.metadata)
    if isinstance(data, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(cols, schema=schema)
    return pa.Table.from_arrays(cols, schema=schema)


def money_value(x):
    """One amount for a JSON summary: rounded to the fen (a float whose text is the exact
    decimal), None for a missing one."""
    if x is None:
        return None
    x = float(x)
    return round(x, 2) if math.isfinite(x) else None

"""Per-case columns of grouped cases, shared by the aggregates (weights, indices): which rows
count, numbers as float64, text as integer ids looked up once per distinct value, and one
integer key that orders the weights' cases (``sort_key``), each case's year weight."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc

__all__ = ["as_floats", "equals_mask", "sort_key", "vocabulary_ids", "year_weights"]


def equals_mask(col: pa.Array | pa.ChunkedArray, value: str) -> np.ndarray:
    """Rows equal to ``value`` (nulls never), comparing a dictionary's values once, not each row."""
    if isinstance(col, pa.ChunkedArray):
        return np.concatenate([equals_mask(c, value) for c in col.chunks]) if col.num_chunks else np.zeros(0, bool)
    if pa.types.is_dictionary(col.type):
        hit = pc.fill_null(pc.equal(col.dictionary.cast(pa.string()), value), False)
        return pc.fill_null(pc.take(hit, col.indices), False).to_numpy(zero_copy_only=False)
    return pc.fill_null(pc.equal(col.cast(pa.string()), value), False).to_numpy(zero_copy_only=False)


def as_floats(col) -> np.ndarray:
    """A numeric column as float64, nulls as NaN."""
    return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)


def vocabulary_ids(col: pa.Array, vocab: dict) -> np.ndarray:
    """Each row's id in ``vocab`` (text value -> id, grown as new values appear; a null is the
    value None): the column's dictionary is looked up once per distinct value, never per row."""
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col, null_encoding="encode")
    values = col.dictionary.cast(pa.string()).to_pylist()
    indices = col.indices
    if indices.null_count:
        indices = indices.fill_null(len(values))
        values.append(None)
    ids = np.array([vocab.setdefault(v, len(vocab)) for v in values] or [0], np.int64)
    return ids[indices.to_numpy(zero_copy_only=False)]


def sort_key(rank: np.ndarray, c: np.ndarray, stay: np.ndarray | None, year: np.ndarray | None):
    """(one int64 per case whose order is that of (rank, cost, year, stay), a function giving
    back the four columns from the sorted keys), or None when they do not fit in 63 bits.

    Costs must be whole fen (each cost is exactly the double nearest to some fen / 100, so fen
    order is cost order and fen / 100 gives the cost back bit for bit), stays whole days and
    years a narrow range; each field then takes a few bits, and one integer sort replaces a
    lexsort of four columns. Anything else (a cost of 0.001, a stay of 1.5) returns None."""
    n = len(rank)
    if not n:
        return None
    fen = np.rint(c * 100.0)
    if not (fen.min() >= 0 and fen.max() < 2.0 ** 40) or not np.array_equal(fen / 100.0, c):
        return None
    fields = [(rank.astype(np.int64), int(rank.max()) + 1), (fen.astype(np.int64), int(fen.max()) + 1)]
    y0 = 0
    if year is not None:
        y0 = int(year.min())
        fields.append((year - y0, int(year.max()) - y0 + 1))
    if stay is not None:
        if not (stay.min() >= 0 and stay.max() < 2.0 ** 31) or not np.array_equal(np.rint(stay), stay):
            return None
        fields.append((stay.astype(np.int64), int(stay.max()) + 1))
    bits = [max(int(size - 1).bit_length(), 1) for _, size in fields]
    if sum(bits) > 63:
        return None
    key = np.zeros(n, np.int64)
    for (v, _), b in zip(fields, bits):
        key <<= b
        key |= v

    def unpack(key: np.ndarray) -> tuple:
        out, shift = [], 0
        for b in reversed(bits):
            out.append((key >> shift) & ((1 << b) - 1))
            shift += b
        out.reverse()
        r, f = out[0].astype(np.int32), out[1] / 100.0
        y = out[2] + y0 if year is not None else None
        s = out[-1].astype(np.float64) if stay is not None else None
        return r, f, s, y

    return key, unpack


def year_weights(year: np.ndarray, weights: Mapping[int, float]) -> np.ndarray:
    """Each case's year weight (0.0 for a year without one), looked up once per year."""
    if not len(year):
        return np.zeros(0)
    y0, y1 = int(year.min()), int(year.max())
    if y1 - y0 < 1 << 16:  # a table over the range of years, no sort
        return np.array([float(weights.get(y0 + i, 0.0)) for i in range(y1 - y0 + 1)])[year - y0]
    years, inv = np.unique(year, return_inverse=True)
    return np.array([float(weights.get(int(v), 0.0)) for v in years])[inv]

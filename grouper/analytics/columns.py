"""Per-case columns of grouped cases, shared by the aggregates (weights, indices): which rows
count, numbers as float64, text as integer ids looked up once per distinct value, and one
integer key that orders the weights' cases (``sort_key``), each case's year weight, and dense
ids of id pairs kept across batches (``PairIds``: indices' cells, the audit's departments)."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc

__all__ = ["PairIds", "as_floats", "dictionary_codes", "dictionary_lookup", "equals_mask", "sort_key", "vocabulary_ids", "vocabulary_table",
           "year_weights"]


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


def dictionary_codes(col: pa.Array) -> tuple[np.ndarray, list]:
    """(each row's position in the list of distinct values, as int32; that list, as text with
    None for a null): a column's dictionary (made when it has none), so that a per-value
    lookup table indexed by the positions replaces a per-row comparison or hash."""
    return dictionary_lookup(col, list, {}, None)


def dictionary_lookup(col: pa.Array, per_value, memo: dict, key) -> tuple[np.ndarray, object]:
    """(each row's dictionary position as int32, ``per_value(values)``: a table with an entry per
    distinct value as text, None for a null), the table kept in ``memo[key]`` and reused while
    the batches share a dictionary (a Parquet row group's batches carry the same one)."""
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col, null_encoding="encode")
    indices, dictionary = col.indices, col.dictionary
    nulls = indices.null_count > 0
    last = memo.get(key)
    if last is not None and last[1] == nulls and (last[0] is dictionary or last[0].equals(dictionary)):
        table = last[2]
    else:
        table = per_value(dictionary.cast(pa.string()).to_pylist() + ([None] if nulls else []))
        memo[key] = (dictionary, nulls, table)
    if nulls:
        indices = indices.fill_null(len(dictionary))
    return indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False), table


def vocabulary_ids(col: pa.Array, vocab: dict) -> np.ndarray:
    """Each row's id in ``vocab`` (text value -> id, grown as new values appear; a null is the
    value None): the column's dictionary is looked up once per distinct value, never per row."""
    indices, values = dictionary_codes(col)
    return vocabulary_table(values, vocab)[indices]


def vocabulary_table(values: list, vocab: dict) -> np.ndarray:
    """The ids in ``vocab`` of ``values`` (new ones added), as int64 (at least one entry)."""
    return np.array([vocab.setdefault(v, len(vocab)) for v in values] or [0], np.int64)


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


_NO_TABLE = np.zeros(0, np.int32)


class PairIds:
    """Dense ids of pairs (a, b) of small non-negative integers (vocabulary ids: hospital and
    department, unit and DRG), kept across batches: a direct table of a x b entries while that is small (a gather per row, no hashing
    or sorting), else sorted keys and a binary search over each batch's distinct pairs. New
    pairs get their ids from ``new`` (called with the new pairs' a and b, once per pair)."""

    LIMIT = 1 << 24  # table entries (int32: 64 MiB at most)

    def __init__(self):
        self._known: list[tuple[np.ndarray, ...]] = []  # (a, b, ids) of the pairs known, in chunks
        self.table: np.ndarray | None = None
        self.acap = self.bcap = 0
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # (keys sorted, ids) without a table

    @classmethod
    def of(cls, a: np.ndarray, b: np.ndarray, ids: np.ndarray) -> "PairIds":
        """A table that knows these pairs and their ids."""
        t = cls()
        if len(a):
            t._known = [(a.astype(np.int64), b.astype(np.int64), ids.astype(np.int64))]
            t._resize(int(a.max()) + 1, int(b.max()) + 1)
        return t

    def direct(self) -> tuple[np.ndarray, int, int]:
        """(the direct table, a-capacity, b-capacity) for a compiled lookup ``table[a * bcap + b]``
        (-1: not known), or an empty table with capacity 0 when the pairs are in sorted keys."""
        if self.table is None:
            return _NO_TABLE, 0, 0
        return self.table, self.acap, self.bcap

    def ids(self, a: np.ndarray, b: np.ndarray, new) -> np.ndarray:
        if not len(a):
            return np.zeros(0, np.int64)
        a, b = a.astype(np.int64), b.astype(np.int64)
        amax, bmax = int(a.max()), int(b.max())
        if amax >= self.acap or bmax >= self.bcap:  # grown by half: O(1) a pair, few reallocations
            self._resize(max(self.acap, amax + 1, self.acap * 3 // 2, 16),
                         max(self.bcap, bmax + 1, self.bcap * 3 // 2, 64))
        if self.table is not None:
            idx = a * self.bcap + b
            out = self.table[idx]
            fresh = out < 0
            if fresh.any():
                u = np.unique(idx[fresh])
                self._learn(u // self.bcap, u % self.bcap, new)
                out = self.table[idx]
            return out.astype(np.int64)
        key = (a << 32) | b
        uniq, inv = np.unique(key, return_inverse=True)
        keys, ids = self._sorted
        pos = np.minimum(np.searchsorted(keys, uniq), max(len(keys) - 1, 0))
        hit = keys[pos] == uniq if len(keys) else np.zeros(len(uniq), bool)
        if not hit.all():
            u = uniq[~hit]  # sorted
            self._learn(u >> 32, u & ((1 << 32) - 1), new)
            keys, ids = self._sorted
            pos = np.searchsorted(keys, uniq)
        return ids[pos][inv]

    def _learn(self, a: np.ndarray, b: np.ndarray, new) -> None:
        ids = np.asarray(new(a, b), np.int64)
        self._known.append((a, b, ids))
        if self.table is not None:
            self.table[a * self.bcap + b] = ids
        else:  # merged into the sorted keys: O(pairs known) a batch, no sort of them all
            keys, known = self._sorted
            key = (a << 32) | b
            order = np.argsort(key)
            at = np.searchsorted(keys, key[order])
            self._sorted = np.insert(keys, at, key[order]), np.insert(known, at, ids[order])

    def _resize(self, acap: int, bcap: int) -> None:
        self.acap, self.bcap = acap, bcap
        a, b, ids = (np.concatenate(c) for c in zip(*self._known)) if self._known else (np.zeros(0, np.int64),) * 3
        self._known = [(a, b, ids)] if len(a) else []
        if acap * bcap <= self.LIMIT:
            self.table = np.full(acap * bcap, -1, np.int32)
            self.table[a * bcap + b] = ids
        elif self._sorted is None or self.table is not None:
            self.table = None
            key = (a << 32) | b
            order = np.argsort(key)
            self._sorted = key[order], ids[order]

"""Column readers shared by the aggregates: numbers with absurd values as missing, yes/no flags,
discharge months, and texts as ids (per batch, sorted; or across batches, in order of first sight).
Each reads a column once per distinct value where it can, never per row in Python."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc

__all__ = ["Vocab", "encode", "finite", "flags", "numbers", "unique_small", "yyyymm"]


def encode(col) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct texts, each row's index among them or -1 for null): lookups per value."""
    if isinstance(col, pa.Array):
        col = pa.chunked_array([col])
    if not pa.types.is_dictionary(col.type):
        if not pa.types.is_string(col.type):
            col = pc.cast(col, pa.string())
        col = pc.dictionary_encode(col)
    elif not pa.types.is_string(col.type.value_type):
        col = pc.dictionary_encode(pc.cast(col, pa.string()))
    col = col.unify_dictionaries()
    if col.num_chunks == 0 or len(col) == 0:
        return np.array([], dtype=object), np.full(len(col), -1, np.int64)
    values = np.array(col.chunk(0).dictionary.to_pylist(), dtype=object)
    idx = np.concatenate([c.indices.fill_null(-1).to_numpy(zero_copy_only=False) for c in col.chunks]).astype(np.int64)
    order = np.argsort(values.astype(str), kind="stable")  # sorted: the output never depends on row order
    rank = np.empty(len(values), np.int64)
    rank[order] = np.arange(len(values))
    return values[order], np.where(idx >= 0, rank[np.maximum(idx, 0)], -1)


def finite(x: np.ndarray, limit: float) -> np.ndarray:
    """Values as float64, with NaN for non-finite ones and for any beyond ``limit`` in size
    (settlement: MAX_AMOUNT; no amount, length of stay or weight is that large): they read as
    missing, never as money."""
    x = np.array(x, np.float64)
    x[~(np.abs(x) <= limit)] = np.nan
    return x


def numbers(table: pa.Table, name: str, limit: float) -> np.ndarray:
    """A numeric column as float64: nulls, non-finite and absurd values (beyond ``limit``) are NaN,
    so a case cost of inf or 1e400 is ``no_cost`` (counted), never a high outlier."""
    try:
        return finite(pc.cast(table[name], pa.float64()).to_numpy(zero_copy_only=False), limit)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValueError(f"column {name!r} is not numeric ({str(exc).splitlines()[0]})") from None


def flags(col) -> np.ndarray:
    """A yes/no column (bool, 0/1, 'true'/'1'/...): null and unreadable are no."""
    if pa.types.is_boolean(col.type):
        return pc.fill_null(col, False).to_numpy(zero_copy_only=False).astype(bool)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        return pc.fill_null(pc.not_equal(col, 0), False).to_numpy(zero_copy_only=False).astype(bool)
    text = pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(col, pa.string())))
    yes = pa.array(["1", "true", "yes", "y", "t", "是"])
    return pc.fill_null(pc.is_in(text, value_set=yes), False).to_numpy(zero_copy_only=False).astype(bool)


def yyyymm(col) -> np.ndarray:
    """YYYYMM of a date/timestamp column (or ISO text), -1 where missing or unreadable."""
    t = col.type
    if pa.types.is_null(t):  # a file without the column, beside files with it
        return np.full(len(col), -1, np.int64)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        col = pc.strptime(pc.cast(col, pa.string()), format="%Y-%m-%d", unit="s", error_is_null=True)
    elif not (pa.types.is_date(t) or pa.types.is_timestamp(t)):
        raise ValueError(f"date column: type {t} is not a date")
    ym = pc.add(pc.multiply(pc.year(col), 100), pc.month(col))
    return pc.fill_null(ym, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def unique_small(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(x, return_inverse=True) for integers in a narrow range (months): O(n), no sort."""
    if len(x) == 0:
        return x[:0], np.zeros(0, np.int64)
    lo, hi = int(x.min()), int(x.max())
    if hi - lo > 1_000_000:
        return np.unique(x, return_inverse=True)
    present = np.bincount(x - lo, minlength=hi - lo + 1) > 0
    code = np.cumsum(present) - 1
    return np.flatnonzero(present) + lo, code[x - lo]


class Vocab:
    """Distinct texts (hospitals) numbered in order of first sight, so that ids stay valid while
    batches stream; outputs are sorted by text at the end."""

    def __init__(self):
        self.ids: dict = {}
        self.values: list = []

    def codes(self, values: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Ids of a batch's rows from its (distinct values, index) encoding; -1 for null."""
        ids = []
        for v in values:
            i = self.ids.get(v)
            if i is None:
                i = self.ids[v] = len(self.values)
                self.values.append(v)
            ids.append(i)
        return np.array(ids + [-1], np.int64)[idx]  # idx -1 picks the trailing -1

    def sorted_order(self) -> np.ndarray:
        if not self.values:
            return np.zeros(0, np.int64)
        return np.argsort(np.array(self.values, dtype=object).astype(str), kind="stable")

"""The Arrow boundary: any Arrow-speaking input in, int32 arrays for the kernel out.

Strings stop here. Numeric columns become int32 with a MISSING sentinel; code lists become
(offsets, ids) with one id per code, mapped with ``pyarrow.compute.index_in`` against the
scheme's code dictionary. Dictionary-encoded columns (Parquet read with ``read_dictionary``)
are mapped once per distinct value, never once per row, and never in a Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "CODE_COLUMNS",
    "InputError",
    "NUMERIC_COLUMNS",
    "REQUIRED_COLUMNS",
    "CodeMapper",
    "Encoded",
    "encode_batch",
    "iter_batches",
]

MISSING = -(2**31)
ID_UNKNOWN, ID_EMPTY = -1, -2
NUMERIC_COLUMNS = ("sex", "age", "age_days", "birth_weight")
CODE_COLUMNS = ("dx", "px")
#: Columns without which a batch cannot be grouped. age_days and birth_weight may be absent:
#: only patients aged 0 need them, and those rows then fail validation with a stated reason.
REQUIRED_COLUMNS = ("sex", "age", "dx", "px")
_INT_RE = r"^[+-]?[0-9]{1,10}$"
_INT_DEC_RE = r"^[+-]?[0-9]{1,10}\.0*$"


class InputError(ValueError):
    """Input that cannot be grouped at all (missing column, wrong column type)."""


# ----------------------------------------------------------------------------- sources

def iter_batches(data: Any, batch_size: int | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches from a Table, RecordBatch, RecordBatchReader, an Arrow PyCapsule
    producer (polars, duckdb, nanoarrow...), a pandas DataFrame, a dict of columns or an
    iterable of RecordBatches."""
    if isinstance(data, pa.RecordBatch):
        yield data
        return
    if isinstance(data, pa.Table):
        yield from data.to_batches(max_chunksize=batch_size)
        return
    if isinstance(data, pa.RecordBatchReader):
        yield from data
        return
    if hasattr(data, "__arrow_c_stream__"):
        yield from pa.RecordBatchReader.from_stream(data)
        return
    if hasattr(data, "__arrow_c_array__"):
        yield pa.record_batch(data)
        return
    if type(data).__module__.startswith("pandas") and hasattr(data, "columns"):
        yield from pa.Table.from_pandas(data, preserve_index=False).to_batches(max_chunksize=batch_size)
        return
    if isinstance(data, dict):
        yield from pa.table(data).to_batches(max_chunksize=batch_size)
        return
    if hasattr(data, "__iter__") and not isinstance(data, (str, bytes)):
        for b in data:  # an iterable of record batches (a streaming file reader)
            if not isinstance(b, pa.RecordBatch):
                raise InputError(f"expected record batches, got {type(b).__name__}")
            yield b
        return
    raise InputError(
        f"cannot read cases from {type(data).__name__}: pass a pyarrow Table/RecordBatch/"
        "RecordBatchReader or an object with __arrow_c_stream__ / __arrow_c_array__"
    )


# ----------------------------------------------------------------------------- numbers

def _as_array(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def parse_int_column(name: str, col: pa.Array | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """int32 values (MISSING where absent) and a mask of values that were present but not
    a whole number in int32 range (those are read as MISSING and flagged BAD_NUMBER)."""
    if col is None:
        return np.full(n, MISSING, dtype=np.int32), np.zeros(n, dtype=bool)
    arr = _as_array(col)
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_null(t):
        return np.full(n, MISSING, dtype=np.int32), np.zeros(n, dtype=bool)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        s = pc.utf8_trim_whitespace(arr.cast(pa.string()))
        is_int = pc.match_substring_regex(s, _INT_RE)
        is_dec = pc.match_substring_regex(s, _INT_DEC_RE)
        text = pc.if_else(is_dec, pc.replace_substring_regex(s, r"\.0*$", ""), s)
        ok = pc.or_(is_int, is_dec)
        as_int = pc.if_else(ok, text, pa.scalar(None, pa.string())).cast(pa.int64())
        blank = pc.equal(s, "")
        bad = pc.and_(pc.invert(ok), pc.invert(blank))
        arr = as_int
        bad_np = bad.fill_null(False).to_numpy(zero_copy_only=False)
    elif pa.types.is_floating(t):
        # NaN is how pandas spells a missing number
        f = arr.to_numpy(zero_copy_only=False).astype(np.float64)
        present = ~np.isnan(f)
        integral = present & (np.floor(f) == f) & (np.abs(f) < 2**31)
        out = np.full(n, MISSING, dtype=np.int32)
        out[integral] = f[integral].astype(np.int32)
        return out, present & ~integral
    elif pa.types.is_integer(t):
        arr = arr.cast(pa.int64())
        bad_np = np.zeros(n, dtype=bool)
    else:
        raise InputError(f"column {name!r} has type {t}, expected integers (or text holding them)")
    v = arr.fill_null(MISSING).to_numpy(zero_copy_only=False)
    out_of_range = (v <= MISSING) | (v >= 2**31)
    out_of_range &= np.asarray(arr.is_valid().to_numpy(zero_copy_only=False))
    v = np.where(out_of_range, MISSING, v).astype(np.int32)
    return v, bad_np | out_of_range


# ----------------------------------------------------------------------------- codes

class CodeMapper:
    """Maps code strings to the scheme's int32 ids (-1 unknown, -2 null/empty)."""

    def __init__(self, codes: list[str]):
        self.value_set = pa.array(codes, type=pa.string())

    def _map_values(self, values: pa.Array) -> pa.Array:
        """ids for a flat array of strings (trimmed; unknown -1; null/empty -2)."""
        values = pc.utf8_trim_whitespace(values)
        ids = pc.index_in(values, value_set=self.value_set).fill_null(ID_UNKNOWN)
        empty = pc.equal(pc.utf8_length(values), 0).fill_null(True)
        return pc.if_else(empty, pa.scalar(ID_EMPTY, pa.int32()), ids.cast(pa.int32()))

    def map_flat(self, flat: pa.Array) -> np.ndarray:
        t = flat.type
        if pa.types.is_dictionary(t):
            dic = flat.dictionary
            if not _is_text(dic.type):
                raise TypeError(str(dic.type))
            mapped = self._map_values(_to_string(dic))  # each distinct code mapped once
            ids = pc.take(mapped, flat.indices)
            ids = ids.fill_null(ID_EMPTY)
        elif _is_text(t):
            ids = self._map_values(_to_string(flat))
        elif pa.types.is_null(t):
            ids = pa.array(np.full(len(flat), ID_EMPTY, dtype=np.int32))
        else:
            raise TypeError(str(t))
        return np.ascontiguousarray(ids.to_numpy(zero_copy_only=False), dtype=np.int32)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _to_string(a: pa.Array) -> pa.Array:
    return a if pa.types.is_string(a.type) else a.cast(pa.string())


def _split_joined(values: pa.Array) -> pa.Array:
    """'|'-joined code strings -> lists; a blank string is an empty list, not one empty code."""
    values = _to_string(values)
    blank = pc.equal(pc.utf8_trim_whitespace(values), "")
    values = pc.if_else(blank, pa.scalar(None, pa.string()), values)
    return pc.split_pattern(values, "|")


def encode_code_column(name: str, col, n: int, mapper: CodeMapper) -> tuple[np.ndarray, np.ndarray]:
    """(offsets[n+1], ids[m]) for a list<string> column, or a '|'-joined string column."""
    arr = _as_array(col)
    t = arr.type
    try:
        if pa.types.is_dictionary(t) and _is_text(t.value_type):
            # split each distinct value once, then expand by the indices
            arr = pc.take(_split_joined(arr.dictionary), arr.indices)
            t = arr.type
        elif _is_text(t):
            arr = _split_joined(arr)
            t = arr.type
        elif pa.types.is_null(t):
            return np.zeros(n + 1, dtype=np.int32), np.zeros(0, dtype=np.int32)
        if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
                or pa.types.is_list_view(t) or pa.types.is_large_list_view(t)):
            raise TypeError(str(t))
        if pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
            arr = arr.cast(pa.list_(t.value_type))
        lengths = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if offsets[-1] >= 2**31:
            raise InputError(f"column {name!r}: more than 2^31 codes in one batch; use smaller batches")
        flat = arr.flatten()  # honours slices, skips null lists
        ids = mapper.map_flat(flat)
    except TypeError as exc:
        raise InputError(
            f"column {name!r} has type {t}, expected list<string> (principal first) "
            f"or a '|'-separated string ({exc})"
        ) from None
    return offsets.astype(np.int32), ids


# ----------------------------------------------------------------------------- batches

@dataclass
class Encoded:
    """One batch as the kernel sees it."""

    n: int
    sex: np.ndarray
    age: np.ndarray
    age_days: np.ndarray
    weight: np.ndarray
    dx_off: np.ndarray
    dx_ids: np.ndarray
    px_off: np.ndarray
    px_ids: np.ndarray
    bad_number: np.ndarray  # bool per row


def check_columns(names: Iterable[str], required: Iterable[str] = REQUIRED_COLUMNS) -> None:
    names = set(names)
    missing = [c for c in required if c not in names]
    if missing:
        raise InputError(f"missing required column(s): {', '.join(missing)}")


def encode_batch(batch: pa.RecordBatch, dx: CodeMapper, px: CodeMapper) -> Encoded:
    check_columns(batch.schema.names)
    n = batch.num_rows
    cols = {name: batch.column(name) if name in batch.schema.names else None
            for name in (*NUMERIC_COLUMNS, *CODE_COLUMNS)}
    nums, bad = {}, np.zeros(n, dtype=bool)
    for name in NUMERIC_COLUMNS:
        nums[name], b = parse_int_column(name, cols[name], n)
        bad |= b
    dx_off, dx_ids = encode_code_column("dx", cols["dx"], n, dx)
    px_off, px_ids = encode_code_column("px", cols["px"], n, px)
    return Encoded(n, nums["sex"], nums["age"], nums["age_days"], nums["birth_weight"],
                   dx_off, dx_ids, px_off, px_ids, bad)

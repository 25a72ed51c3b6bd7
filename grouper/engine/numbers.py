"""Numbers at the Arrow boundary: numeric columns (integers, floats, text holding whole numbers)
to int32 with the kernel's MISSING sentinel and a mask of values that were not whole numbers in
int32 range, and the same rule for one Python value (``parse_int``), so a batch and a single case
read numbers alike.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from grouper._util.columns import NUMBER_PATTERN, is_text, small_ascii_texts, to_string
from grouper._util.errors import InputError
from grouper._util.lazy import pc
from grouper.engine.checks import checked
from grouper.engine._kernel import CONSTANTS as K

__all__ = ["MISSING", "INT32_MAX", "as_array", "parse_int", "parse_int_column", "validity"]

MISSING = K["MISSING"]  # the kernel's absent number (engine/_records.pxd)
INT32_MAX = 2**31 - 1


def as_array(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def parse_int_column(name: str, col: pa.Array | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """int32 values (MISSING where absent) and a mask of values that were present but not
    a whole number in int32 range (those are read as MISSING and flagged BAD_NUMBER)."""
    if col is None:
        return np.full(n, MISSING, dtype=np.int32), np.zeros(n, dtype=bool)
    arr = checked(name, as_array(col))
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_null(t):
        return np.full(n, MISSING, dtype=np.int32), np.zeros(n, dtype=bool)
    raw = keep = None
    texts = small_ascii_texts(arr) if is_text(t) else None
    if texts is not None:
        raw, keep, bad = _parse_texts(texts)
    elif is_text(t):
        text = pc.utf8_trim_whitespace(to_string(arr))
        parts = pc.extract_regex(text, NUMBER_PATTERN)  # null where the text is no number
        magnitude = pc.struct_field(parts, "digits").cast(pa.int64())
        value = pc.if_else(pc.equal(pc.struct_field(parts, "sign"), "-"), pc.negate(magnitude), magnitude)
        blank = pc.equal(text, "").fill_null(True)
        bad = pc.and_(parts.is_null(), pc.invert(blank)).to_numpy(zero_copy_only=False)
        arr = value
    elif pa.types.is_floating(t):
        # NaN is how pandas spells a missing number
        f = arr.to_numpy(zero_copy_only=False).astype(np.float64)
        present = ~np.isnan(f)
        with np.errstate(invalid="ignore"):
            integral = present & (np.floor(f) == f) & (np.abs(f) <= INT32_MAX)
        out = np.full(n, MISSING, dtype=np.int32)
        out[integral] = f[integral].astype(np.int32)
        return out, present & ~integral
    elif pa.types.is_integer(t):
        bad = np.zeros(n, dtype=bool)
    else:
        raise InputError(f"column {name!r} has type {t}, expected integers (or text holding them)")
    # range check in the column's own type (a uint64 above 2^63 must not fail a cast); the
    # narrow types (int8/16, uint8/16) always fit, and a column without nulls needs no mask
    if raw is None:
        raw, keep = _int_values(arr)
    limits = np.iinfo(raw.dtype)
    if limits.max > INT32_MAX or limits.min < -INT32_MAX:
        out_of_range = raw > INT32_MAX
        if raw.dtype.kind == "i":
            out_of_range |= raw < -INT32_MAX
        if keep is not None:
            out_of_range &= keep
        keep = ~out_of_range if keep is None else keep & ~out_of_range
        bad = bad | out_of_range
    v = raw.astype(np.int32)  # wraps only where ``keep`` is False, and those become MISSING
    if keep is not None:
        # in int32, not in the column's type: MISSING does not fit an int8 (a null int8 age
        # used to come out as 0, a newborn)
        v[~keep] = MISSING
    return v, bad


def _parse_texts(texts: list) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(int64 values, present or None when all are, not-a-number mask) of a small batch of
    ASCII text, each value by ``parse_int`` (the single-case rule), which reads it as the
    pyarrow.compute path does: whitespace trimmed (Python's ``strip`` and Arrow's
    ``utf8_trim_whitespace`` trim the same ASCII characters), null or blank is absent, anything
    else that is no whole number in int32 range is a bad number."""
    n = len(texts)
    raw = np.zeros(n, np.int64)
    keep = np.zeros(n, bool)
    bad = np.zeros(n, bool)
    for i, v in enumerate(texts):
        if v is not None:
            value, bad[i] = parse_int(v)
            if value is not None:
                raw[i] = value
                keep[i] = True
    return raw, (None if keep.all() else keep), bad


def _int_values(arr: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """An integer array's values (anything where null) and its validity (None without nulls),
    read from its buffers by NumPy: no pyarrow.compute for a small batch (start-up)."""
    if not arr.null_count:
        return arr.to_numpy(zero_copy_only=False), None
    n, off = len(arr), arr.offset
    raw = np.frombuffer(arr.buffers()[1], dtype=arr.type.to_pandas_dtype(), count=off + n)[off:]
    return raw, validity(arr)


def validity(arr: pa.Array) -> np.ndarray:
    """Whether each value of ``arr`` (which has nulls) is present, from its validity bitmap."""
    n, off = len(arr), arr.offset
    return np.unpackbits(np.frombuffer(arr.buffers()[0], np.uint8), count=off + n, bitorder="little")[off:].astype(bool)


def parse_int(value) -> tuple[int | None, bool]:
    """One Python value -> (integer or None, was_bad), by the same rules as
    ``parse_int_column``: whole numbers in int32 range (text per ``NUMBER_PATTERN``)."""
    if type(value) is int and -INT32_MAX <= value <= INT32_MAX:  # the common case, first
        return value, False
    if value is None:
        return None, False
    if isinstance(value, bool):
        return None, True
    if isinstance(value, float):
        if value != value:  # NaN is how pandas spells missing
            return None, False
        if not value.is_integer():
            return None, True
        value = int(value)
    if isinstance(value, int):
        return (value, False) if -INT32_MAX <= value <= INT32_MAX else (None, True)
    text = str(value).strip()
    if text == "":
        return None, False
    m = _NUMBER.match(text)
    if m is None:
        return None, True
    v = int(m["digits"]) * (-1 if m["sign"] == "-" else 1)
    return (v, False) if -INT32_MAX <= v <= INT32_MAX else (None, True)


_NUMBER = re.compile(NUMBER_PATTERN)

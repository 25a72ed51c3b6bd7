"""Checks that make a column safe to hand to Arrow compute functions and NumPy (crafted or
corrupt Arrow data must give a clear error, never a crash): cheap structural validation, full
validation of the slice's text and of dictionaries, index and list-offset ranges checked
vectorised."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from grouper._util.columns import is_text
from grouper._util.errors import CorruptInputError, first_line
from grouper._util.lazy import pc

__all__ = ["check_indices", "check_list", "checked", "corrupt"]


def corrupt(name: str, exc: BaseException) -> CorruptInputError:
    return CorruptInputError(f"column {name!r}: corrupt Arrow data ({first_line(exc)})")


def checked(name: str, arr: pa.Array) -> pa.Array:
    """``arr`` once it is safe to hand to Arrow compute functions and NumPy: its buffers are
    large enough, text values have in-bounds increasing offsets and valid UTF-8, dictionary
    indices are within the dictionary. Flat and dictionary columns only (lists are checked in
    ``encode_code_column``); the cost follows the slice, not the buffers it shares."""
    t = arr.type
    try:
        arr.validate()  # structural: buffer sizes, the last offset (cheap)
        if pa.types.is_dictionary(t):
            arr.dictionary.validate(full=True)  # the distinct values: small
            check_indices(arr)
        elif is_text(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
            arr.validate(full=True)  # this slice's offsets and bytes only
    except (pa.ArrowInvalid, pa.ArrowIndexError) as exc:
        raise corrupt(name, exc) from None
    return arr


def check_indices(arr: pa.DictionaryArray) -> None:
    """Every (non-null) index of ``arr`` is a position in its dictionary."""
    if len(arr) == arr.indices.null_count:
        return
    if arr.indices.null_count:
        lo, hi = (v.as_py() for v in pc.min_max(arr.indices).values())
    else:  # NumPy: a small batch need not load pyarrow.compute (start-up)
        idx = arr.indices.to_numpy()
        lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= len(arr.dictionary):
        raise pa.ArrowIndexError(f"dictionary index out of range (indices {lo}..{hi}, "
                                 f"{len(arr.dictionary)} dictionary values)")


def check_list(name: str, arr: pa.Array) -> np.ndarray | None:
    """The list level of a code column is safe to flatten: offsets that start at or after 0,
    never decrease and end within the values (Arrow's cheap validation checks only the last).
    The values are checked as they are mapped (``CodeMapper.map_flat``). Returns the checked
    offsets of the slice (n + 1 of them) for a list or large list, None for other list types."""
    t = arr.type
    try:
        arr.validate()
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            if not len(arr):
                return np.zeros(1, np.int64)
            width = np.int64 if pa.types.is_large_list(t) else np.int32
            off = np.frombuffer(arr.buffers()[1], dtype=width)[arr.offset:arr.offset + len(arr) + 1]
            if off[0] < 0 or off[-1] > len(arr.values) or (np.diff(off) < 0).any():
                raise pa.ArrowInvalid("list offsets out of order or outside the values")
            return off
        if pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
            arr.validate(full=True)  # rare: views may overlap, Arrow checks each one
    except pa.ArrowInvalid as exc:
        raise corrupt(name, exc) from None
    return None

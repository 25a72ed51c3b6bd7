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

from grouper._util.columns import (CODE_COLUMNS, NUMERIC_COLUMNS, REQUIRED_COLUMNS, check_columns, is_text,
                                   split_codes, split_joined)
from grouper._util.errors import CorruptInputError, InputError
from grouper._util.lazy import pc
from grouper.engine._codes import CodeTable, take_ids
from grouper.engine.checks import check_indices, check_list, checked, corrupt
from grouper.engine._kernel import CONSTANTS as K
from grouper.engine.numbers import MISSING, as_array, parse_int, parse_int_column, validity

__all__ = [
    "CODE_COLUMNS",
    "CorruptInputError",
    "InputError",
    "NUMERIC_COLUMNS",
    "REQUIRED_COLUMNS",
    "CodeMapper",
    "Encoded",
    "Encoder",
    "SingleCase",
    "iter_batches",
]

ID_UNKNOWN, ID_EMPTY = K["ID_UNKNOWN"], K["ID_EMPTY"]  # numbers of the kernel (engine/_records.pxd)


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


# ----------------------------------------------------------------------------- codes

class CodeMapper:
    """Maps code strings to the scheme's int32 ids (-1 unknown, -2 null/blank).

    The hash of the code dictionary is built once (``grouper.engine._codes.CodeTable``) and read
    straight from the Arrow string buffers, so a batch pays only for its own values."""

    def __init__(self, codes: list[str]):
        self.codes = list(codes)
        self.table = CodeTable(codes)
        # the last dictionary mapped and its ids: a Parquet reader hands every batch of a row
        # group the whole row-group dictionary again (a fresh copy of tens of thousands of
        # codes); comparing it with the previous one is a memcmp, mapping it again is hashing
        self._last: tuple[pa.Array, np.ndarray] | None = None

    def map_strings(self, values: pa.Array) -> np.ndarray:
        """ids for a flat utf8 / large_utf8 / string_view array (trimmed; unknown -1; blank -2)."""
        t = values.type
        if pa.types.is_string_view(t):
            try:
                values.validate(full=True)  # views point into other buffers: check before the cast
            except pa.ArrowInvalid as exc:
                raise CorruptInputError(str(exc)) from None
            values = values.cast(pa.string())
            t = values.type
        large = pa.types.is_large_string(t)
        validity, offsets, data = values.buffers()[:3]
        if values.null_count == 0:
            validity = None
        try:  # each value's offsets are checked against the buffers as it is looked up
            return self.table.map_utf8(validity, offsets, data, values.offset, len(values), large)
        except ValueError as exc:
            raise CorruptInputError(str(exc)) from None

    def map_flat(self, flat: pa.Array) -> np.ndarray:
        t = flat.type
        if pa.types.is_dictionary(t):
            if not is_text(t.value_type):
                raise TypeError(str(t))
            mapped = self._map_dictionary(flat.dictionary)  # each distinct code mapped once
            try:
                flat.validate()
                idx = flat.indices
                if idx.null_count:
                    idx = idx.fill_null(len(mapped))
                    mapped = np.append(mapped, np.int32(ID_EMPTY))
                raw = idx.to_numpy(zero_copy_only=False)
                # one compiled pass gathers and checks every index (a negative one is never wrapped)
                ids, bad = take_ids(mapped, raw if raw.dtype == np.int32 else raw.astype(np.int32))
                if bad >= 0 or raw.dtype.itemsize > 4 and (raw != raw.astype(np.int32)).any():
                    check_indices(flat)  # raises, naming the indices' range
                    raise pa.ArrowIndexError(f"dictionary index {raw[bad]} out of range")
            except (pa.ArrowInvalid, pa.ArrowIndexError) as exc:
                raise CorruptInputError(str(exc)) from None
            return ids
        if is_text(t):
            return self.map_strings(flat)
        if pa.types.is_null(t):
            return np.full(len(flat), ID_EMPTY, dtype=np.int32)
        raise TypeError(str(t))

    def _map_dictionary(self, dictionary: pa.Array) -> np.ndarray:
        last = self._last  # one read: another thread may replace it meanwhile
        if last is not None and len(last[0]) == len(dictionary):
            if _same_bytes(last[0], dictionary):  # the usual case, a copy: no validation needed
                return last[1]
            try:  # before comparing: ``equals`` trusts the offsets (the distinct values: cheap)
                dictionary.validate(full=True)
            except pa.ArrowInvalid as exc:
                raise CorruptInputError(str(exc)) from None
            if last[0].equals(dictionary):
                return last[1]
        mapped = self.map_strings(dictionary)
        mapped.flags.writeable = False  # shared between batches
        self._last = (dictionary, mapped)
        return mapped

    def get(self, code) -> int:
        """Id of one code, by the same rules (single-case callers)."""
        if code is None:
            return ID_EMPTY
        return self.table.get(code if isinstance(code, str) else str(code))


def _bitmap(valid: np.ndarray) -> pa.Buffer | None:
    """An Arrow validity bitmap of the bool array ``valid`` (None when every row is valid)."""
    return None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))


def _same_bytes(a: pa.Array, b: pa.Array) -> bool:
    """``b`` is byte for byte ``a`` (type, offset, null count and every buffer): the same array,
    whatever its buffers hold, so what was found of ``a`` holds of ``b``."""
    if a.type != b.type or a.offset != b.offset or a.null_count != b.null_count:
        return False
    ours, theirs = a.buffers(), b.buffers()
    return len(ours) == len(theirs) and all(
        x is None and y is None or x is not None and y is not None and x.equals(y) for x, y in zip(ours, theirs))


def encode_code_column(name: str, col, n: int, mapper: CodeMapper) -> tuple[np.ndarray, np.ndarray]:
    """(offsets[n+1], ids[m]) for a list<string> column, or a '|'-joined string column."""
    arr = as_array(col)
    t = arr.type
    try:
        if pa.types.is_dictionary(t) and is_text(t.value_type):
            checked(name, arr)
            if len(arr.dictionary) <= len(arr):
                # split each distinct value once, then expand by the indices
                arr = pc.take(split_joined(arr.dictionary), arr.indices)
            else:
                # a dictionary larger than the batch (a Parquet row group's, of joined strings
                # that are nearly all distinct): splitting it would cost the row group per batch
                arr = split_joined(arr.dictionary_decode())
            t = arr.type
        elif is_text(t):
            arr = split_joined(checked(name, arr))
            t = arr.type
        elif pa.types.is_null(t):
            return np.zeros(n + 1, dtype=np.int32), np.zeros(0, dtype=np.int32)
        if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
                or pa.types.is_list_view(t) or pa.types.is_large_list_view(t)):
            raise TypeError(str(t))
        raw = check_list(name, arr)
        flat = None
        if raw is not None and (not arr.null_count or not np.diff(raw)[~validity(arr)].any()):
            # NumPy on the slice's checked offsets (null lists, if any, span no values): a small
            # batch need not load pyarrow.compute, which flatten() and list_value_length() do
            # (start-up); the offsets, rebased to the slice's first value, are the kernel's
            if raw[-1] - raw[0] >= 2**31:
                raise InputError(f"column {name!r}: more than 2^31 codes in one batch; use smaller batches")
            offsets = (raw - raw[0]).astype(np.int32)
            flat = arr.values.slice(int(raw[0]), int(raw[-1] - raw[0]))
        else:
            lengths = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False)
            offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            if offsets[-1] >= 2**31:
                raise InputError(f"column {name!r}: more than 2^31 codes in one batch; use smaller batches")
            offsets = offsets.astype(np.int32)
        if flat is None:
            flat = arr.flatten()  # honours slices, skips null lists, logical order for list views
        try:
            ids = mapper.map_flat(flat)
        except CorruptInputError as exc:
            raise CorruptInputError(f"column {name!r}: corrupt Arrow data ({exc})") from None
        if len(ids) != offsets[-1]:
            raise CorruptInputError(f"column {name!r}: list lengths do not add up to its values (corrupt array)")
    except TypeError as exc:
        raise InputError(
            f"column {name!r} has type {t}, expected list<string> (principal first) "
            f"or a '|'-separated string ({exc})"
        ) from None
    return offsets, ids


# ----------------------------------------------------------------------------- batches

@dataclass
class Encoded:
    """One batch as the kernel sees it."""

    n: int
    fields: np.ndarray  # int32[N_FIELDS, n], rows in the kernel's FIELD_* order
    dx_off: np.ndarray
    dx_ids: np.ndarray
    px_off: np.ndarray
    px_ids: np.ndarray
    bad_number: np.ndarray  # bool per row


#: Rows of ``Encoded.fields``, in the kernel's FIELD_* order (read from the kernel; a test checks it).
_FIELD_OF = {"age": "AGE", "age_days": "AGE_DAYS", "birth_weight": "WEIGHT", "los": "LOS",
             "discharge": "DISCHARGE", "dept": "DEPT", "sex": "SEX"}  # input column -> kernel FIELD_*
FIELD_ROWS = tuple(sorted(_FIELD_OF, key=lambda c: K["FIELD_" + _FIELD_OF[c]]))
VALUE_COLUMNS = ("discharge", "dept")  # compared as exact codes, mapped to the scheme's value ids


class Encoder:
    """Turns record batches into kernel input for one compiled scheme."""

    def __init__(self, dx_codes: list[str], px_codes: list[str], values: dict[str, list[str]] | None = None,
                 input_fields: Iterable[str] = ()):
        self.dx = CodeMapper(dx_codes)
        self.px = CodeMapper(px_codes)
        self.values = {k: CodeMapper(list((values or {}).get(k, []))) for k in VALUE_COLUMNS}
        self.required = (*REQUIRED_COLUMNS, *input_fields)
        # discharge/department codes only matter to schemes whose conditions name some; for the
        # others the column is never read (nor decoded from a file). Numbers are always parsed:
        # a bad one is flagged whichever scheme runs, as the reference interpreter does.
        self.columns = tuple(c for c in (*FIELD_ROWS, *CODE_COLUMNS)
                             if c not in VALUE_COLUMNS or self.values[c].codes)
        self._translations: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def translate(self, enc: Encoded, other: "Encoder", batch: pa.RecordBatch) -> Encoded:
        """``enc`` (made by ``other`` from ``batch``) in this scheme's code ids: the strings are
        mapped once for two schemes, the second gets a table lookup (regrouping)."""
        check_columns(batch.schema.names, self.required, self.columns)
        key = id(other)
        if key not in self._translations:
            def table(mine: CodeMapper, theirs: CodeMapper) -> np.ndarray:
                index = {c: i for i, c in enumerate(mine.codes)}
                return np.array([index.get(c, ID_UNKNOWN) for c in theirs.codes] + [0], dtype=np.int32)
            self._translations[key] = (table(self.dx, other.dx), table(self.px, other.px))
        dx_map, px_map = self._translations[key]
        fields = enc.fields
        for row, name in enumerate(FIELD_ROWS):  # discharge/department ids are per scheme
            if name in VALUE_COLUMNS and self.values[name].codes != other.values[name].codes:
                fields = fields.copy() if fields is enc.fields else fields
                fields[row] = self._value_ids(name, batch.column(name) if name in batch.schema.names else None, enc.n)
        return Encoded(enc.n, fields, enc.dx_off, np.where(enc.dx_ids >= 0, dx_map[enc.dx_ids], enc.dx_ids).astype(np.int32),
                       enc.px_off, np.where(enc.px_ids >= 0, px_map[enc.px_ids], enc.px_ids).astype(np.int32),
                       enc.bad_number)

    def encode(self, batch: pa.RecordBatch) -> Encoded:
        names = batch.schema.names
        check_columns(names, self.required, self.columns)
        n = batch.num_rows
        fields = np.empty((len(FIELD_ROWS), n), dtype=np.int32)
        bad = np.zeros(n, dtype=bool)
        name = ""
        try:
            for row, name in enumerate(FIELD_ROWS):
                col = batch.column(name) if name in names and name in self.columns else None
                if col is not None and len(col) != n:
                    raise CorruptInputError(f"column {name!r} has {len(col)} rows, the batch {n}")
                if name in VALUE_COLUMNS:
                    fields[row] = self._value_ids(name, col, n)
                else:
                    fields[row], b = parse_int_column(name, col, n)
                    bad |= b
            name = "dx"
            dx_off, dx_ids = encode_code_column("dx", batch.column("dx"), n, self.dx)
            name = "px"
            px_off, px_ids = encode_code_column("px", batch.column("px"), n, self.px)
        except (pa.ArrowInvalid, pa.ArrowIndexError) as exc:  # past the checks: still no traceback
            raise corrupt(name, exc) from None
        return Encoded(n, fields, dx_off, dx_ids, px_off, px_ids, bad)

    def _value_ids(self, name: str, col, n: int) -> np.ndarray:
        """Ids of discharge/department codes among those the scheme's conditions name
        (-1 another code, MISSING absent). Integer columns are read as their decimal text."""
        if col is None:
            return np.full(n, MISSING, dtype=np.int32)
        arr = checked(name, as_array(col))
        if pa.types.is_dictionary(arr.type):
            if is_text(arr.type.value_type):  # each distinct code mapped once, not once per row
                try:
                    ids = self.values[name].map_flat(arr)
                except CorruptInputError as exc:
                    raise corrupt(name, exc) from None
                return np.where(ids == ID_EMPTY, MISSING, ids).astype(np.int32)
            arr = arr.dictionary_decode()
        t = arr.type
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            v, _ = parse_int_column(name, arr, n)  # the decimal text of each whole number
            arr = pa.Array.from_buffers(pa.int32(), n, [_bitmap(v != MISSING), pa.py_buffer(v)]).cast(pa.string())
        elif pa.types.is_null(t):
            return np.full(n, MISSING, dtype=np.int32)
        elif not is_text(t):
            raise InputError(f"column {name!r} has type {t}, expected text codes")
        try:
            ids = self.values[name].map_strings(arr)
        except CorruptInputError as exc:
            raise corrupt(name, exc) from None
        return np.where(ids == ID_EMPTY, MISSING, ids).astype(np.int32)

    def case_fields(self, **values) -> np.ndarray:
        """int32[N_FIELDS] for one case given as Python values, and whether a number was bad."""
        out = np.empty(len(FIELD_ROWS), dtype=np.int32)
        bad = False
        for row, name in enumerate(FIELD_ROWS):
            v = values.get(name)
            if name in VALUE_COLUMNS:
                if isinstance(v, float) and v.is_integer():
                    v = int(v)
                i = self.values[name].get(v if v is None or isinstance(v, str) else str(v))
                out[row] = MISSING if i == ID_EMPTY else i
            else:
                iv, b = parse_int(v)
                bad |= b
                out[row] = MISSING if iv is None else iv
        return out, bad


class SingleCase:
    """What ``Program.group_values`` (``Grouper.group_one``) calls back for one case given as
    Python values: the code hashes, and the slow paths of ``Encoder.case_fields`` (numbers
    other than a plain int, discharge and department codes), so a single case is read by the
    same rules as a batch."""

    def __init__(self, encoder: Encoder):
        self.dx_get = encoder.dx.table.get
        self.px_get = encoder.px.table.get
        self.parse = parse_int
        self.split_codes = split_codes  # codes joined in one string: the rule of every input path
        self._values = encoder.values

    def value_id(self, name: str, v) -> int:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        i = self._values[name].get(v if isinstance(v, str) else str(v))
        return MISSING if i == ID_EMPTY else i

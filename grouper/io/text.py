"""Text encodings of CSV files: UTF-8 (with or without BOM) and GB18030 (which covers GBK and
GB2312, what HIS and 医保 exports are usually written in), detected or given (``--encoding``).

GB18030 is read without transcoding the file: its multi-byte characters never contain the bytes
of a comma, quote or line break, so Arrow parses the raw bytes as CSV and only the columns
actually read are converted to UTF-8, per column and batch. Columns of ASCII (codes, numbers:
most of a 病案首页) are taken as they are; the others go through a compiled loop without the GIL
(``grouper.io._gb18030``, its tables taken from Python's codec) or, where that is not built,
through Python's codec over one joined block (of their distinct values when those are at most
half). See docs/input-formats.md."""

from __future__ import annotations

import codecs
import functools
import os

import numpy as np
import pyarrow as pa

from grouper._util.errors import InputError
from grouper._util.lazy import pc


@functools.cache
def _compiled():
    """The compiled GB18030 loop (``grouper.io._gb18030``), loaded on first use (1 ms that a run
    reading no GB18030 file need not pay); None without it (a source checkout not yet built:
    Python's codec)."""
    try:
        import grouper.io._gb18030 as module
    except ImportError:  # pragma: no cover
        return None
    return module


def __getattr__(name: str):
    if name == "COMPILED":  # whether the compiled loop is there (loads it)
        return _compiled() is not None
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AUTO", "FAST_ENCODINGS", "TextDecoder", "decode", "detect_encoding", "first_invalid", "normalise_encoding",
           "not_encoded"]

AUTO = "auto"
#: Encodings read by the fast path (raw bytes parsed, columns converted); any other Python codec
#: given with --encoding is transcoded as a whole by Arrow (slower, but read).
FAST_ENCODINGS = ("utf-8", "gb18030")
#: Bytes of the start of a file that detection looks at.
SAMPLE_BYTES = 1 << 20
_SEPARATOR = "\x00"  # joins a column's values for one decode call; never inside GB18030 characters


def normalise_encoding(name: str | None) -> str:
    """'auto' for None/''/'auto'; the codec's canonical name otherwise, with GBK and GB2312 read
    as GB18030 (their superset) and utf-8-sig as utf-8 (a BOM is always skipped). An unknown
    name is an InputError (a usage error)."""
    if not name or name.lower() == AUTO:
        return AUTO
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        raise InputError(f"--encoding {name}: unknown encoding; use utf-8, gb18030 (GBK) or another "
                         "Python codec name") from None
    return {"gbk": "gb18030", "gb2312": "gb18030", "cp936": "gb18030", "utf-8-sig": "utf-8"}.get(canonical, canonical)


def first_invalid(path: str | os.PathLike, encoding: str, start: int = 0) -> tuple[int, int] | None:
    """(byte offset, byte value) of the first byte of ``path`` (from ``start``) that is not valid
    ``encoding``, or None when it all decodes. Read in blocks: for error messages only."""
    decoder = codecs.getincrementaldecoder(encoding)()
    base = start
    with open(path, "rb") as fh:
        fh.seek(start)
        while True:
            block = fh.read(1 << 22)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                offset = base + exc.start - len(decoder.getstate()[0] or b"")
                data = exc.object
                return max(offset, 0), data[exc.start] if exc.start < len(data) else -1
            if not block:
                return None
            base += len(block)


def not_encoded(path, encoding: str, tried: str, where: str = "") -> InputError:
    """The one-line error for a file that is not ``tried`` text: the first invalid byte's offset
    (for ``encoding``), ``where`` (a column), and --encoding."""
    bad = first_invalid(path, encoding)
    offset = f"at byte offset {bad[0]} (0x{bad[1]:02X})" if bad else "in the file"
    return InputError(f"{path}: not {tried} text: invalid byte {offset}{where}; give the file's encoding with "
                      "--encoding (e.g. --encoding gb18030 for GBK, or the codec the exporting system used)")


def detect_encoding(path: str | os.PathLike, sample: bytes) -> tuple[str, bool]:
    """(encoding, decided) from the first bytes of a CSV: a UTF-8 BOM or non-ASCII text that is
    valid UTF-8 decides UTF-8; text that is not UTF-8 but valid GB18030 decides GB18030; an ASCII
    start is read as UTF-8 until a column shows otherwise (``decided`` False). Neither: an
    InputError naming the byte offset."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8", True
    if sample.isascii():
        return "utf-8", False
    final = len(sample) < SAMPLE_BYTES
    for encoding in FAST_ENCODINGS:
        try:
            codecs.getincrementaldecoder(encoding)().decode(sample, final=final)
            return encoding, True
        except UnicodeDecodeError:
            continue
    raise not_encoded(path, "utf-8", "UTF-8 or GB18030/GBK")


class TextDecoder:
    """Turns the raw (binary) text columns of one CSV into UTF-8 strings, batch by batch, for
    ``encoding`` (one of FAST_ENCODINGS). Undecided (an ASCII start), the first non-ASCII column
    decides: valid UTF-8 stays UTF-8, otherwise GB18030. A value that is valid in neither is an
    InputError naming the file, the byte offset and --encoding."""

    def __init__(self, path: str, encoding: str, decided: bool = True):
        self.path, self.encoding, self.decided = path, encoding, decided
        self.dense: set[str] = set()  # columns whose values mostly differ: not worth hashing

    def column(self, values: pa.Array, name: str) -> pa.Array:
        if pa.types.is_string(values.type):
            return values
        if _ascii(values):  # ASCII is UTF-8 as it is: the same buffers, viewed as text
            text = pa.string() if values.type == pa.binary() else pa.large_string()
            return pa.Array.from_buffers(text, len(values), values.buffers(), values.null_count, values.offset)
        if self.encoding == "utf-8":
            try:
                out = values.cast(pa.string())  # validates UTF-8
                self.decided = True
                return out
            except pa.ArrowInvalid:
                if self.decided:
                    raise not_encoded(self.path, "utf-8", "UTF-8", f" (column {name!r})") from None
            self.encoding, self.decided = "gb18030", True
        try:
            out, distinct = _decode(values, self.encoding, name not in self.dense)
            if not distinct:
                self.dense.add(name)
            return out
        except UnicodeDecodeError:
            tried = "GB18030/GBK" if self.encoding == "gb18030" else self.encoding
            raise not_encoded(self.path, self.encoding, tried, f" (column {name!r})") from None


def _ascii(values: pa.Array) -> bool:
    """No byte of the values' data is above 0x7F (numpy over the data buffer, no per-value work)."""
    if len(values) == 0:
        return True
    offsets = np.frombuffer(values.buffers()[1], np.int32 if values.type == pa.binary() else np.int64,
                            len(values) + 1, values.offset * (4 if values.type == pa.binary() else 8))
    data = values.buffers()[2]
    if data is None:
        return True
    chunk = np.frombuffer(data, np.uint8)[offsets[0]:offsets[-1]]
    return not chunk.size or int(chunk.max()) < 0x80


def decode(values: pa.Array, encoding: str, distinct: bool = True) -> pa.Array:
    """Binary ``values`` in ``encoding`` as a UTF-8 string array: with ``distinct``, the
    distinct values decoded when they are at most half of the values, otherwise all values
    joined into one block, decoded in one codec call and cut again at the joins (numpy over the
    UTF-8 bytes). Raises UnicodeDecodeError when a value is not ``encoding``."""
    return _decode(values, encoding, distinct)[0]


def _decode(values: pa.Array, encoding: str, distinct: bool = True) -> tuple[pa.Array, bool]:
    """(``decode``'s result, whether the distinct values were few enough to be worth hashing)."""
    n = len(values)
    if n == 0:
        return pa.array([], pa.string()), distinct
    if distinct and not (encoding == "gb18030" and _compiled() is not None):  # the loop is faster than hashing
        dictionary = pc.dictionary_encode(values)
        if len(dictionary.dictionary) * 2 <= n:
            return pc.take(_decode_all(dictionary.dictionary, encoding), dictionary.indices), True
    return _decode_all(values, encoding), False


@functools.cache
def _gb18030_tables() -> tuple[np.ndarray, np.ndarray]:
    """Code points of every two-byte GB18030 code and every four-byte one of the BMP (0 where
    undefined), taken from Python's codec once (each code alone on a line, all decoded in one
    call), so that the compiled loop reads exactly as the codec does."""
    two_codes = [(lead, trail) for lead in range(0x81, 0xFF) for trail in (*range(0x40, 0x7F), *range(0x80, 0xFF))]
    four_codes = [(0x81 + lin // 12600, 0x30 + lin // 1260 % 10, 0x81 + lin // 10 % 126, 0x30 + lin % 10)
                  for lin in range(39420)]  # 0x81308130 .. 0x8431A439
    two = np.zeros(126 * 191, np.uint32)
    four = np.zeros(len(four_codes), np.uint32)
    for codes, table, index in ((two_codes, two, lambda c: (c[0] - 0x81) * 191 + c[1] - 0x40),
                                (four_codes, four, None)):
        chars = b"\n".join(map(bytes, codes)).decode("gb18030", errors="replace").split("\n")
        assert len(chars) == len(codes)
        for i, (code, ch) in enumerate(zip(codes, chars)):
            if len(ch) == 1 and (ch != "\ufffd" or bytes(code) == "\ufffd".encode("gb18030")):
                table[index(code) if index else i] = ord(ch)
    return two, four


def _fast_gb18030(values: pa.Array) -> pa.Array | None:
    """GB18030 ``values`` (binary) as UTF-8 strings by the compiled loop (grouper.io._gb18030),
    or None when it is not built or a value is not GB18030 (the codec then says where)."""
    _gb18030 = _compiled()
    if _gb18030 is None:
        return None
    wide = values.type == pa.large_binary()
    n = len(values)
    offsets = np.frombuffer(values.buffers()[1], np.int64 if wide else np.int32, n + 1,
                            values.offset * (8 if wide else 4)).astype(np.int64)
    data = values.buffers()[2]
    raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(1, np.uint8)
    out, new = _gb18030.to_utf8(raw, offsets, *_gb18030_tables())
    if out is None:
        return None
    if len(out) >= 2 ** 31:
        text, new = pa.large_string(), new
    else:
        text, new = pa.string(), new.astype(np.int32)
    validity = None
    if values.null_count:
        validity = pc.is_valid(values).buffers()[1]
    return pa.Array.from_buffers(text, n, [validity, pa.py_buffer(new), pa.py_buffer(out)],
                                 values.null_count).cast(pa.string())


def _decode_all(values: pa.Array, encoding: str) -> pa.Array:
    if encoding == "gb18030":
        fast = _fast_gb18030(values)
        if fast is not None:
            return fast
    n = len(values)
    nulls = values.null_count
    filled = values.fill_null(b"") if nulls else values
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, n], pa.int32()), filled),
                            pa.scalar(_SEPARATOR.encode(), pa.binary()))[0].as_py()
    data = np.frombuffer(joined.decode(encoding).encode("utf-8"), np.uint8)
    cut = data == 0
    joins = np.flatnonzero(cut)
    if len(joins) != n - 1:  # a value held the separator itself: decode one by one
        parts = pa.array([None if v is None else v.decode(encoding) for v in filled.to_pylist()], pa.string())
    else:
        offsets = np.empty(n + 1, np.int64 if len(data) >= 2 ** 31 else np.int32)
        offsets[0], offsets[-1] = 0, len(data) - len(joins)
        offsets[1:-1] = joins - np.arange(len(joins))
        parts = pa.Array.from_buffers(pa.string() if offsets.dtype == np.int32 else pa.large_string(), n,
                                      [None, pa.py_buffer(offsets), pa.py_buffer(data[~cut])]).cast(pa.string())
    if nulls:
        parts = pc.if_else(values.is_null(), pa.scalar(None, pa.string()), parts)
    return parts

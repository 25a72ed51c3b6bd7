"""Opening case files: the formats read and written (by extension), input arguments (files,
folders, globs) expanded in order, and CSV / Parquet / Arrow IPC / Excel opened for streaming.

Readers stream, so memory is bounded by the batch size, not the file. Parquet code columns are
read dictionary-encoded, so each distinct code string is mapped once per row group.
"""

from __future__ import annotations

import codecs
import csv
import glob
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.ipc as ipc

from grouper._util.batches import DEFAULT_BATCH
from grouper._util.columns import CODE_COLUMNS
from grouper._util.errors import InputError, first_line
from grouper._util.lazy import pafs, pcsv, pq
from grouper.io.excel import EXCEL_FORMATS, open_excel
from grouper.io.text import (AUTO, FAST_ENCODINGS, SAMPLE_BYTES, TextDecoder, detect_encoding, normalise_encoding,
                             not_encoded)

__all__ = ["DEFAULT_BATCH", "FORMATS", "INPUT_FORMATS", "PIPELINE_DEPTH", "Source", "expand_inputs", "format_of",
           "open_source", "pipeline_depth", "warn_stderr"]

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".arrow": "arrow",
           ".feather": "arrow", ".ipc": "arrow"}
#: What can be read: the formats above and Excel workbooks (grouper.io.excel).
INPUT_FORMATS = {**FORMATS, **EXCEL_FORMATS}
#: Batches read ahead of the grouping, and grouped batches waiting for the writer: the work
#: overlaps (Arrow decodes and encodes files without the GIL) while memory stays bounded.
PIPELINE_DEPTH = 2


def pipeline_depth() -> int:
    """How far reading runs ahead of the grouping and the grouping ahead of the writer:
    PIPELINE_DEPTH batches, each side on a thread of its own, where this process may run on
    several CPUs; 0 (the calling thread reads and writes itself, and Arrow decodes a Parquet
    batch's columns one after the other, not on its thread pool) where it may run on one only
    (``taskset -c 0``, a one-CPU container or job slot). There threads could overlap nothing
    and only switch in and out, through the GIL, between the batches."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return PIPELINE_DEPTH if cpus > 1 else 0


def format_of(path: str | os.PathLike, *, reading: bool = False) -> str:
    """The format of ``path`` by its extension: one that can be written (FORMATS), or with
    ``reading`` one that can be read (INPUT_FORMATS, Excel too). Unknown: a ValueError."""
    known = INPUT_FORMATS if reading else FORMATS
    ext = Path(path).suffix.lower()
    if ext not in known:
        raise ValueError(f"{path}: unknown file type {ext or '(none)'}; use one of {', '.join(sorted(known))}")
    return known[ext]


def warn_stderr(message: str) -> None:
    """The default for ``expand_inputs(warn=...)``: a 'warning:' line on stderr."""
    print(f"warning: {message}", file=sys.stderr)


def expand_inputs(inputs: Iterable[str | os.PathLike], warn: Callable[[str], None] | None = warn_stderr
                  ) -> list[str]:
    """Files in the order given: a directory gives its case files sorted by name, a glob pattern
    its matches sorted. Nothing is skipped silently: each file of a folder that is not read
    (unknown type, hidden such as a partial output, an Excel lock file ~$...) is named through
    ``warn``. Nothing found is an OSError."""
    out: list[str] = []
    for item in map(str, inputs):
        p = Path(item)
        if p.is_file():
            out.append(item)
        elif p.is_dir():
            found, skipped = [], []
            for c in sorted((c for c in p.iterdir() if c.is_file()), key=lambda c: c.name):
                readable = c.suffix.lower() in INPUT_FORMATS and not c.name.startswith((".", "~$"))
                (found if readable else skipped).append(c)
            if skipped and warn is not None:
                warn(f"{item}: skipped {len(skipped)} file(s) that are not case files "
                     f"({'/'.join(sorted(INPUT_FORMATS))}, not hidden): {', '.join(c.name for c in skipped)}")
            if not found:
                raise OSError(f"{item}: no {'/'.join(sorted(INPUT_FORMATS))} files in this folder")
            out += map(str, found)
        elif any(ch in item for ch in "*?["):
            found = sorted(glob.glob(item))
            if not found:
                raise OSError(f"{item}: no files match")
            out += expand_inputs(found, warn)
        else:
            raise OSError(f"{item}: no such file")
    return out


@dataclass
class Source:
    """A readable input: its schema, its batches (the file is opened when they are first read,
    so many inputs cost no memory or handles up front) and, when known, its row count."""

    path: str
    schema: pa.Schema
    read: Callable[[list[str] | None], Iterator[pa.RecordBatch]]  # columns -> batches
    num_rows: int | None
    columns: list[str] | None = None  # read only these (None: all); set before reading

    @property
    def batches(self) -> Iterator[pa.RecordBatch]:
        self.check_unique(self.columns)
        return self.read(self.columns)

    def check_unique(self, columns: Iterable[str] | None = None) -> None:
        """InputError when a column to be read (all of them for None) has a repeated name:
        which of the two is meant cannot be told. Repeated names nobody reads are harmless."""
        names = self.schema.names
        if len(set(names)) == len(names):
            return
        wanted = set(names if columns is None else columns)
        repeated = [f"{c!r} ({names.count(c)} times)" for c in dict.fromkeys(names)
                    if c in wanted and names.count(c) > 1]
        if repeated:
            raise InputError(f"{self.path}: repeated column name(s): {', '.join(repeated)}; each column read "
                             "must have a unique name (rename the others)")


def open_source(path: str | os.PathLike, batch_size: int = DEFAULT_BATCH, filesystem=None, *,
                encoding: str | None = None, sheet: str | None = None) -> Source:
    """Open CSV/Parquet/Arrow/Excel for streaming. Raises OSError/ValueError with a one-line reason.
    ``filesystem``: a ``pyarrow.fs.FileSystem`` holding ``path`` (Parquet only; e.g. S3).
    ``encoding``: of a CSV file (None or 'auto': detected, see grouper.io.text); ``sheet``: of an
    Excel workbook (None: the first). Each applies to its own format only."""
    if filesystem is not None and not isinstance(filesystem, pafs.LocalFileSystem):
        return _open_parquet(str(path), batch_size, filesystem)
    p = Path(path)
    if not p.is_file():
        raise OSError(f"{path}: no such file")
    kind = format_of(p, reading=True)
    try:
        if kind == "csv":
            return _open_csv(p, batch_size, encoding)
        if kind == "excel":
            return Source(str(p), *open_excel(p, batch_size, sheet))
        source = _open_parquet(p, batch_size) if kind == "parquet" else _open_ipc(p)
        source.schema.names  # column names are decoded here, where a bad one names the file
        return source
    except (pa.ArrowInvalid, pa.ArrowIOError, pa.ArrowNotImplementedError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: unreadable {kind} file ({first_line(exc)})") from None


def _open_csv(p: Path, batch_size: int, encoding: str | None = None) -> Source:
    """Every column is read as text: the Arrow boundary parses numbers itself, so a stray
    'abc' in an age column becomes a flagged missing value, not a failed run. The encoding is
    detected (UTF-8 with or without BOM, GB18030/GBK) unless given (grouper.io.text)."""
    enc = normalise_encoding(encoding)
    with open(p, "rb") as fh:
        sample = fh.read(SAMPLE_BYTES)
    decided = True
    if enc == AUTO:
        enc, decided = detect_encoding(p, sample)
    if enc not in FAST_ENCODINGS:
        with open(p, encoding=enc, newline="") as fh:
            header = next(csv.reader(fh), None)
    else:
        text = codecs.getincrementaldecoder(enc)(errors="replace").decode(sample.removeprefix(codecs.BOM_UTF8))
        header = next(csv.reader(io.StringIO(text, newline="")), None)
        if header and any("\ufffd" in h for h in header):
            raise not_encoded(p, enc, "GB18030/GBK" if enc == "gb18030" else "UTF-8", " (header row)")
    if not header:
        raise ValueError(f"{p}: empty CSV file (no header row)")
    schema = pa.schema([(name, pa.string()) for name in header])
    fast = enc in FAST_ENCODINGS
    raw_type = pa.binary() if fast else pa.string()
    # Arrow is given the header as placeholder names (it would decode the real ones as UTF-8)
    keys = [f"c{i}" for i in range(len(header))]

    def batches(columns: list[str] | None) -> Iterator[pa.RecordBatch]:
        decoder = TextDecoder(str(p), enc, decided)
        wanted = set(header if columns is None else columns)
        include = [k for k, name in zip(keys, header) if name in wanted]
        names = dict(zip(keys, header))
        read_options = pcsv.ReadOptions(block_size=max(1 << 20, batch_size * 128), column_names=keys, skip_rows=1,
                                        encoding="utf8" if fast else enc)
        try:
            # quoted values may hold line breaks (a note, an address): without newlines_in_values
            # a block boundary inside one splits the row, so whether a file reads would depend
            # on the batch size (the option costs about 1 % of read time, docs/performance.md)
            for b in pcsv.open_csv(
                    p, read_options=read_options, parse_options=pcsv.ParseOptions(newlines_in_values=True),
                    convert_options=pcsv.ConvertOptions(column_types={k: raw_type for k in include},
                                                        include_columns=include,
                                                        strings_can_be_null=False, quoted_strings_can_be_null=False)):
                cols = b.columns
                if fast:
                    cols = [decoder.column(c, names[k]) for c, k in zip(cols, b.schema.names)]
                yield pa.RecordBatch.from_arrays(cols, names=[names[k] for k in b.schema.names])
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise ValueError(f"{p}: malformed CSV ({first_line(exc)})") from None

    return Source(str(p), schema, batches, None)


def _open_parquet(p: Path | str, batch_size: int, filesystem=None) -> Source:
    """The codes of list code columns are read dictionary-encoded (the leaf 'dx.list.element'),
    in batches of ``batch_size`` rows within one row group at a time: Arrow cannot yet return a
    nested dictionary column that spans row groups as one batch. '|'-joined text code columns
    are read as plain text: their values are nearly all distinct, and as a dictionary every
    batch would carry the whole row group's (a 1 M-row group: 0.8 GB instead of 0.3 GB)."""
    with pq.ParquetFile(p, filesystem=filesystem) as probe:
        paths = [probe.metadata.schema.column(i).path for i in range(probe.metadata.num_columns)]
        dict_cols = [path for path in paths for col in CODE_COLUMNS if path.startswith(col + ".")]
    with pq.ParquetFile(p, read_dictionary=dict_cols or None, filesystem=filesystem) as probe:
        schema, num_rows = probe.schema_arrow, probe.metadata.num_rows

    def batches(columns: list[str] | None) -> Iterator[pa.RecordBatch]:
        try:
            threads = pipeline_depth() > 0  # Arrow's decoding threads: only where there are CPUs for them
            with pq.ParquetFile(p, read_dictionary=dict_cols or None, filesystem=filesystem) as pf:
                for rg in range(pf.num_row_groups):
                    yield from pf.iter_batches(batch_size=batch_size, row_groups=[rg], columns=columns,
                                               use_threads=threads)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise ValueError(f"{p}: corrupt Parquet data ({first_line(exc)})") from None

    return Source(str(p), schema, batches, num_rows)


def _open_ipc(p: Path) -> Source:
    """IPC file format (row count from its footer, memory-mapped) or, failing that, stream format.

    Each batch is fully validated (``validate(full=True)``: offsets, dictionary indices, UTF-8)
    before anything reads it: an IPC file's buffers are taken as they are on disk, and a crafted
    one would otherwise make code read outside them. About 35 ms per million cases of the
    columns read, in the read-ahead thread (docs/performance.md)."""
    try:
        f = ipc.open_file(pa.memory_map(str(p)))
        schema, num_rows = f.schema, sum(f.get_batch(i).num_rows for i in range(f.num_record_batches))
        stream = False
    except pa.ArrowInvalid:
        schema, num_rows, stream = ipc.open_stream(p).schema, None, True

    def batches(columns: list[str] | None) -> Iterator[pa.RecordBatch]:
        try:
            if stream:
                raw = iter(ipc.open_stream(p))
            else:
                f = ipc.open_file(pa.memory_map(str(p)))
                raw = (f.get_batch(i) for i in range(f.num_record_batches))
            for b in raw:
                if columns:
                    b = b.select(columns)
                for name, col in zip(b.schema.names, b.columns):
                    try:
                        col.validate(full=True)
                    except (pa.ArrowInvalid, pa.ArrowIndexError) as exc:
                        raise ValueError(f"{p}: corrupt Arrow data in column {name!r} ({first_line(exc)})") from None
                yield b
        except (pa.ArrowInvalid, pa.ArrowIndexError, OSError) as exc:
            raise ValueError(f"{p}: corrupt Arrow data ({first_line(exc)})") from None

    return Source(str(p), schema, batches, num_rows)


def read_table(path: str | os.PathLike, *, encoding: str | None = None, sheet: str | None = None) -> pa.Table:
    """A small table (weights, hospitals) from CSV/Parquet/Arrow/Excel, all of it."""
    s = open_source(path, encoding=encoding, sheet=sheet)
    return pa.Table.from_batches(list(s.batches), schema=s.schema)

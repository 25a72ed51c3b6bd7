"""Opening case files: the formats read and written (by extension), input arguments (files,
folders, globs) expanded in order, and CSV / Parquet / Arrow IPC opened for streaming.

Readers stream, so memory is bounded by the batch size, not the file. Parquet code columns are
read dictionary-encoded, so each distinct code string is mapped once per row group.
"""

from __future__ import annotations

import csv
import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.ipc as ipc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from grouper._util.batches import DEFAULT_BATCH
from grouper._util.columns import CODE_COLUMNS
from grouper._util.errors import InputError, first_line

__all__ = ["DEFAULT_BATCH", "FORMATS", "PIPELINE_DEPTH", "Source", "expand_inputs", "format_of", "open_source"]

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".arrow": "arrow",
           ".feather": "arrow", ".ipc": "arrow"}
#: Batches read ahead of the grouping, and grouped batches waiting for the writer: the work
#: overlaps (Arrow decodes and encodes files without the GIL) while memory stays bounded.
PIPELINE_DEPTH = 2


def format_of(path: str | os.PathLike) -> str:
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ValueError(f"{path}: unknown file type {ext or '(none)'}; use one of {', '.join(sorted(FORMATS))}")
    return FORMATS[ext]


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[str]:
    """Files in the order given: a directory gives its data files sorted by name (hidden files,
    such as partial outputs, skipped), a glob pattern its matches sorted. Nothing found is an OSError."""
    out: list[str] = []
    for item in map(str, inputs):
        p = Path(item)
        if p.is_file():
            out.append(item)
        elif p.is_dir():
            found = sorted((c for c in p.iterdir() if c.is_file() and c.suffix.lower() in FORMATS
                            and not c.name.startswith(".")), key=lambda c: c.name)
            if not found:
                raise OSError(f"{item}: no {'/'.join(sorted(FORMATS))} files in this folder")
            out += map(str, found)
        elif any(ch in item for ch in "*?["):
            found = sorted(glob.glob(item))
            if not found:
                raise OSError(f"{item}: no files match")
            out += expand_inputs(found)
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


def open_source(path: str | os.PathLike, batch_size: int = DEFAULT_BATCH, filesystem=None) -> Source:
    """Open CSV/Parquet/Arrow for streaming. Raises OSError/ValueError with a one-line reason.
    ``filesystem``: a ``pyarrow.fs.FileSystem`` holding ``path`` (Parquet only; e.g. S3)."""
    if filesystem is not None and not isinstance(filesystem, pafs.LocalFileSystem):
        return _open_parquet(str(path), batch_size, filesystem)
    p = Path(path)
    if not p.is_file():
        raise OSError(f"{path}: no such file")
    kind = format_of(p)
    try:
        if kind == "csv":
            return _open_csv(p, batch_size)
        source = _open_parquet(p, batch_size) if kind == "parquet" else _open_ipc(p)
        source.schema.names  # column names are decoded here, where a bad one names the file
        return source
    except (pa.ArrowInvalid, pa.ArrowIOError, pa.ArrowNotImplementedError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: unreadable {kind} file ({first_line(exc)})") from None


def _open_csv(p: Path, batch_size: int) -> Source:
    """Every column is read as text: the Arrow boundary parses numbers itself, so a stray
    'abc' in an age column becomes a flagged missing value, not a failed run."""
    with open(p, encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh), None)
    if not header:
        raise ValueError(f"{p}: empty CSV file (no header row)")
    schema = pa.schema([(name, pa.string()) for name in header])

    def batches(columns: list[str] | None) -> Iterator[pa.RecordBatch]:
        try:
            # quoted values may hold line breaks (a note, an address): without newlines_in_values
            # a block boundary inside one splits the row, so whether a file reads would depend
            # on the batch size (the option costs about 1 % of read time, docs/performance.md)
            yield from pcsv.open_csv(
                p, read_options=pcsv.ReadOptions(block_size=max(1 << 20, batch_size * 128)),
                parse_options=pcsv.ParseOptions(newlines_in_values=True),
                convert_options=pcsv.ConvertOptions(column_types={f.name: f.type for f in schema},
                                                    include_columns=columns or [],
                                                    strings_can_be_null=False, quoted_strings_can_be_null=False))
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
            with pq.ParquetFile(p, read_dictionary=dict_cols or None, filesystem=filesystem) as pf:
                for rg in range(pf.num_row_groups):
                    yield from pf.iter_batches(batch_size=batch_size, row_groups=[rg], columns=columns)
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


def read_table(path: str | os.PathLike) -> pa.Table:
    """A small table (weights, hospitals) from CSV/Parquet/Arrow, all of it."""
    s = open_source(path)
    return pa.Table.from_batches(list(s.batches), schema=s.schema)

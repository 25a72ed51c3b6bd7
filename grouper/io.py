"""Files in and out: CSV / Parquet / Arrow IPC read batch by batch, outputs written atomically.

Readers stream, so memory is bounded by the batch size, not the file. Parquet code columns are
read dictionary-encoded, so each distinct code string is mapped once per batch. Outputs go to a
temporary file beside the target and are renamed into place only when complete.
"""

from __future__ import annotations

import csv
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from .arrow import CODE_COLUMNS

__all__ = ["Source", "open_source", "write_batches", "FORMATS", "format_of"]

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".arrow": "arrow",
           ".feather": "arrow", ".ipc": "arrow"}
DEFAULT_BATCH = 65_536


def format_of(path: str | os.PathLike) -> str:
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ValueError(f"{path}: unknown file type {ext or '(none)'}; use one of {', '.join(sorted(FORMATS))}")
    return FORMATS[ext]


@dataclass
class Source:
    """A readable input: its schema, its batches (read lazily) and, when known, its row count."""

    path: str
    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    num_rows: int | None


def open_source(path: str | os.PathLike, batch_size: int = DEFAULT_BATCH) -> Source:
    """Open CSV/Parquet/Arrow for streaming. Raises OSError/ValueError with a one-line reason."""
    p = Path(path)
    if not p.is_file():
        raise OSError(f"{path}: no such file")
    kind = format_of(p)
    try:
        if kind == "csv":
            return _open_csv(p, batch_size)
        if kind == "parquet":
            return _open_parquet(p, batch_size)
        return _open_ipc(p)
    except (pa.ArrowInvalid, pa.ArrowIOError, pa.ArrowNotImplementedError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: unreadable {kind} file ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _open_csv(p: Path, batch_size: int) -> Source:
    """Every column is read as text: the Arrow boundary parses numbers itself, so a stray
    'abc' in an age column becomes a flagged missing value, not a failed run."""
    with open(p, encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh), None)
    if not header:
        raise ValueError(f"{p}: empty CSV file (no header row)")
    types = {name: pa.string() for name in header}
    reader = pcsv.open_csv(
        p,
        read_options=pcsv.ReadOptions(block_size=max(1 << 20, batch_size * 128)),
        convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=False,
                                            quoted_strings_can_be_null=False),
    )

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        except pa.ArrowInvalid as exc:
            raise ValueError(f"{p}: malformed CSV ({_first_line(exc)})") from None

    return Source(str(p), reader.schema, batches(), None)


def _open_parquet(p: Path, batch_size: int) -> Source:
    """Code columns are read dictionary-encoded (the leaf of a list column is 'dx.list.element'),
    one row group at a time: Arrow cannot yet return a nested dictionary column that spans
    row groups as one batch."""
    probe = pq.ParquetFile(p)
    paths = [probe.metadata.schema.column(i).path for i in range(probe.metadata.num_columns)]
    dict_cols = [path for path in paths for col in CODE_COLUMNS if path == col or path.startswith(col + ".")]
    pf = pq.ParquetFile(p, read_dictionary=dict_cols or None)

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for rg in range(pf.num_row_groups):
                yield from pf.iter_batches(batch_size=batch_size, row_groups=[rg])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise ValueError(f"{p}: corrupt Parquet data ({_first_line(exc)})") from None

    return Source(str(p), pf.schema_arrow, batches(), pf.metadata.num_rows)


def _open_ipc(p: Path) -> Source:
    try:
        f = ipc.open_file(p)
        return Source(str(p), f.schema, (f.get_batch(i) for i in range(f.num_record_batches)),
                      sum(f.get_batch(i).num_rows for i in range(f.num_record_batches)))
    except pa.ArrowInvalid:
        r = ipc.open_stream(p)
        return Source(str(p), r.schema, iter(r), None)


@contextmanager
def _atomic(path: Path, overwrite: bool):
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: file exists and won't be overwritten without --overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_batches(path: str | os.PathLike, batches: Iterable[pa.RecordBatch], *,
                  overwrite: bool = False, empty_schema: pa.Schema | None = None) -> int:
    """Write batches to CSV/Parquet/Arrow (by extension), all or nothing. Returns rows written.

    ``empty_schema`` is used when there are no batches, so an empty input still gives a
    well-formed (header-only) output."""
    path = Path(path)
    kind = format_of(path)
    rows = 0
    with _atomic(path, overwrite) as tmp:
        writer = None
        try:
            for b in batches:
                if writer is None:
                    writer = _writer(kind, tmp, b.schema)
                writer.write_batch(b) if kind != "parquet" else writer.write_batch(b, row_group_size=1 << 20)
                rows += b.num_rows
            if writer is None:
                writer = _writer(kind, tmp, empty_schema or pa.schema([]))
        finally:
            if writer is not None:
                writer.close()
    return rows


def _writer(kind: str, tmp: str, schema: pa.Schema):
    if kind == "csv":
        return pcsv.CSVWriter(tmp, schema)
    if kind == "parquet":
        return pq.ParquetWriter(tmp, schema, compression="zstd")
    return ipc.new_file(tmp, schema)


@dataclass
class RunSummary:
    """What a grouping run did, for the command line and ``--report``."""

    rows: int
    seconds: float
    status_counts: dict[str, int]
    ruleset: str
    fingerprint: str

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def line(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.status_counts.items() if v)
        return (f"{self.rows} cases in {self.seconds:.3f} s ({self.rows_per_second:,.0f} cases/s) "
                f"under {self.ruleset}: {counts or 'no cases'}")


def group_file(grouper, source: Source, output: str | os.PathLike | None, *, overwrite: bool = False,
               n_threads: int | None = None, keep=()) -> tuple[RunSummary, pa.Table | None]:
    """Stream ``source`` through ``grouper`` into ``output`` (or into memory when None)."""
    import time

    import numpy as np
    import pyarrow.compute as pc

    from .flags import STATUS_LABELS

    from .arrow import check_columns

    check_columns(source.schema.names, grouper.encoder.required)  # fail before any work
    counts = np.zeros(len(STATUS_LABELS), dtype=np.int64)
    label_index = {s: i for i, s in enumerate(STATUS_LABELS)}
    start = time.perf_counter()
    collected: list[pa.RecordBatch] = []

    def counted(batches):
        for b in batches:
            vc = pc.value_counts(b.column("status"))
            for item in vc:
                counts[label_index[item["values"].as_py()]] += item["counts"].as_py()
            yield b

    out_batches = counted(grouper.group_batches(source.batches, n_threads=n_threads, keep=keep))
    if output is None:
        collected = list(out_batches)
        rows = sum(b.num_rows for b in collected)
    else:
        rows = write_batches(output, out_batches, overwrite=overwrite, empty_schema=grouper.output_schema())
    summary = RunSummary(rows, time.perf_counter() - start,
                         {s: int(counts[i]) for i, s in enumerate(STATUS_LABELS)},
                         grouper.compiled.name, grouper.compiled.fingerprint)
    table = None
    if output is None:
        table = pa.Table.from_batches(collected, schema=collected[0].schema if collected else grouper.output_schema())
    return summary, table

"""Outputs, all or nothing: every output goes to a temporary file beside its target and is
renamed into place only when complete (several outputs of one run are published together),
an existing file is never replaced without ``overwrite``, and the debris of killed runs is
swept away. Batches are written by a thread behind the caller (Arrow encodes without the GIL),
with a few batches in flight at most."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.ipc as ipc

from grouper._util.batches import empty_batch
from grouper._util.columns import SMALL_TEXT, is_text
from grouper._util.errors import first_line
from grouper._util.lazy import pc, pcsv, pq
from grouper.io.formats import expand_inputs, format_of, pipeline_depth

__all__ = ["STALE_SECONDS", "XLSX_MAX_ROWS", "OutputSet", "atomic", "check_outputs", "parquet_writer_options",
           "sweep_stale", "table_kind", "write_batches", "write_text"]

#: Rows of one Excel sheet (the header row included): more cannot be opened in Excel.
XLSX_MAX_ROWS = 1_048_576
#: UTF-8 byte order mark: Excel on Chinese Windows reads a CSV without it as GBK (乱码).
BOM = b"\xef\xbb\xbf"

#: A temporary file (or spool folder) whose process no longer runs and that has not changed
#: for this long is debris of a killed run: it is removed at the next write beside it.
STALE_SECONDS = 300
#: Temporary names of the format before the writer's process id was part of them: removed
#: when this old (no process to ask about).
_LEGACY_STALE_SECONDS = 86_400


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid < (1 << 31)  # someone else's process, still running
    return True


def sweep_stale(folder: str | os.PathLike, pattern: "re.Pattern[str]", age: float = STALE_SECONDS) -> int:
    """Remove the entries of ``folder`` whose name ``pattern`` matches, whose writer (the
    pattern's ``pid`` group, when it has one) no longer runs and which have not changed for
    ``age`` seconds. Returns how many were removed; never raises."""
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for e in entries:
        m = pattern.fullmatch(e.name)
        if m is None:
            continue
        pid = m.groupdict().get("pid")
        try:
            if (pid is not None and _pid_alive(int(pid))) or now - e.stat(follow_symlinks=False).st_mtime < age:
                continue
            if e.is_dir(follow_symlinks=False):
                import shutil  # only for a folder left by a killed run (start-up: not imported otherwise)

                shutil.rmtree(e.path)
            else:
                os.unlink(e.path)
            removed += 1
        except OSError:
            continue
    return removed


def _sweep_parts(path: Path) -> None:
    """Temporary files of earlier, killed writes of ``path``."""
    name = re.escape(path.name)
    sweep_stale(path.parent, re.compile(rf"\.{name}\.(?P<pid>\d+)\.[a-z0-9_]{{8}}\.part"))
    sweep_stale(path.parent, re.compile(rf"\.{name}\.[a-z0-9_]{{8}}\.part"), _LEGACY_STALE_SECONDS)


def _exists(path) -> FileExistsError:
    return FileExistsError(f"{path}: file exists and won't be overwritten without --overwrite")


def _same_file(a, b) -> bool:
    try:
        if Path(a).resolve() == Path(b).resolve():
            return True
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def _input_files(inputs) -> list[str]:
    """The files behind input arguments (files, folders, globs) that exist now."""
    out = []
    for item in inputs:
        if item is None:
            continue
        try:
            out += expand_inputs([item])
        except (OSError, ValueError):
            if Path(item).exists():
                out.append(str(item))
    return out


def check_outputs(outputs: Iterable[str | os.PathLike | None], inputs: Iterable[str | os.PathLike | None] = (),
                  *, overwrite: bool = False) -> None:
    """Refuse, before any work, what a command must never write: an output that is one of its
    ``inputs`` (cases, weights, pack, catalogue, ...: the same path, a link to it, or a folder
    or glob holding it) or another of its own outputs, even with ``overwrite``; and without
    ``overwrite`` an output that exists. Publishing re-checks existence atomically."""
    outs = [o for o in outputs if o is not None]
    files = _input_files(inputs)
    for k, out in enumerate(outs):
        for src in files:
            if _same_file(out, src):
                raise ValueError(f"{out}: is also one of the inputs ({src}); choose another output path")
        _refuse_output(out, outs[:k], overwrite)


def _refuse_output(out, earlier: Iterable, overwrite: bool, folder: bool = True) -> None:
    """The checks of one output that ``check_outputs`` and ``OutputSet.add`` share: not one of
    the ``earlier`` outputs, (``folder``) not a folder, its folder not a file, and without
    ``overwrite`` not there."""
    if any(_same_file(out, other) for other in earlier):
        raise ValueError(f"{out}: named as two different outputs; give each its own path")
    parent = next((p for p in Path(out).absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise NotADirectoryError(f"{out}: {parent} is a file, not a folder; choose another output path")
    if folder and Path(out).is_dir():
        raise IsADirectoryError(f"{out}: is a folder; give an output file path")
    if not overwrite and (Path(out).exists() or Path(out).is_symlink()):
        raise _exists(out)


class OutputSet:
    """Outputs written to temporary files beside their targets and published together when
    the block ends without an error (nothing is published otherwise, and the temporary files
    are removed). Without ``overwrite`` each target is created exclusively: ``os.link`` (or,
    where links are unsupported, an ``O_EXCL`` placeholder) fails if another run published it
    first, so of two concurrent runs the later one fails instead of replacing the earlier."""

    def __init__(self, overwrite: bool = False, *, bom: bool = False):
        self.overwrite, self.bom = overwrite, bom  # bom: CSV outputs of the set start with a UTF-8 BOM
        self.tmps: dict[Path, str] = {}

    def add(self, path: str | os.PathLike) -> str:
        """A temporary file for ``path`` (refused when it exists, without ``overwrite``)."""
        path = Path(path)
        # a folder is refused as existing (without overwrite) or when published
        _refuse_output(path, self.tmps, self.overwrite, folder=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        _sweep_parts(path)
        import tempfile  # here, not at the top: a run that writes no file needs none
        fd, tmp = tempfile.mkstemp(".part", f".{path.name}.{os.getpid()}.", path.parent)
        os.close(fd)
        self.tmps[path] = tmp
        return tmp

    def target(self, tmp: str) -> Path:
        return next(p for p, t in self.tmps.items() if t == tmp)

    def publish(self) -> None:
        umask = os.umask(0)
        os.umask(umask)
        done: list[tuple[Path, tuple[int, int]]] = []
        try:
            for path, tmp in self.tmps.items():
                os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make the output private
                st = os.stat(tmp)
                if self.overwrite:
                    os.replace(tmp, path)
                else:
                    _publish_new(tmp, path)
                done.append((path, (st.st_dev, st.st_ino)))
        except BaseException:
            if not self.overwrite:  # take back what this set already published: all or nothing
                for path, ident in done:
                    with contextlib.suppress(OSError):
                        st = os.stat(path)
                        if (st.st_dev, st.st_ino) == ident:
                            os.unlink(path)
            raise
        finally:
            self.discard()

    def discard(self) -> None:
        for tmp in self.tmps.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def __enter__(self) -> "OutputSet":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            self.publish()
            return
        self.discard()
        if isinstance(exc, OSError) and not isinstance(exc, FileExistsError):
            for path, tmp in self.tmps.items():  # an error writing a temporary file names its target
                if tmp in (getattr(exc, "filename", None), getattr(exc, "filename2", None)):
                    raise _write_error(path, exc) from None


def _publish_new(tmp: str, path: Path) -> None:
    """``tmp`` becomes ``path`` only if ``path`` does not exist, atomically."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path}: file exists (written meanwhile by another run?) and won't be "
                              "overwritten without --overwrite") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK,
                             errno.ENOSYS, errno.EACCES):
            raise
        try:  # no hard links here: claim the name exclusively, then move the file onto the claim
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            raise FileExistsError(f"{path}: file exists (written meanwhile by another run?) and won't be "
                                  "overwritten without --overwrite") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _write_error(path, exc: BaseException) -> OSError:
    """An I/O error while writing ``path`` as one line naming it (a full disk, a quota)."""
    reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else first_line(exc)
    err = OSError(f"{path}: cannot write ({reason})")
    err.errno = getattr(exc, "errno", None)
    return err


@contextmanager
def atomic(path: Path, overwrite: bool):
    """One output: a temporary file beside ``path``, published when the block ends (see OutputSet)."""
    with OutputSet(overwrite) as outs:
        yield outs.add(path)


def write_text(path: str | os.PathLike, text: str, *, overwrite: bool = False) -> None:
    """A small text output (JSON), atomically, refusing an existing file without ``overwrite``."""
    with atomic(Path(path), overwrite) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def table_kind(path: str | os.PathLike) -> str:
    """The format of a table output by its extension: csv, parquet, arrow or xlsx."""
    return "xlsx" if Path(path).suffix.lower() == ".xlsx" else format_of(Path(path))


def check_rows(path: str | os.PathLike, rows: int | None) -> None:
    """Refuse, before anything is written, a table too long for the format (an Excel sheet)."""
    if rows is not None and table_kind(path) == "xlsx" and rows + 1 > XLSX_MAX_ROWS:
        raise ValueError(f"{path}: {rows:,} rows do not fit in an Excel sheet (at most {XLSX_MAX_ROWS - 1:,} "
                         "rows under the header); write .csv or .parquet instead")


def write_batches(path: str | os.PathLike, batches: Iterable[pa.RecordBatch], *,
                  overwrite: bool = False, empty_schema: pa.Schema | None = None,
                  into: OutputSet | None = None, bom: bool | None = None, rows: int | None = None) -> int:
    """Write batches to CSV/Parquet/Arrow/Excel (by extension), all or nothing. Returns rows written.

    ``empty_schema`` is used when there are no batches, so an empty input still gives a
    well-formed (header-only) output. CSV has no lists: list columns are written '|'-joined
    (so in .xlsx). ``into``: write into this set's temporary file for ``path``, published with
    the set. ``bom``: a CSV starts with a UTF-8 byte order mark (default: the set's choice).
    ``rows``: the row count when known, so that a table too long for an Excel sheet is refused
    before anything is written (otherwise when the limit is passed, and nothing is published)."""
    path = Path(path)
    kind = table_kind(path)
    check_rows(path, rows)
    bom = (into.bom if into is not None else False) if bom is None else bom
    if into is not None:
        return _write_batches(path, into.add(path), kind, batches, empty_schema, bom)
    with atomic(path, overwrite) as tmp:
        return _write_batches(path, tmp, kind, batches, empty_schema, bom)


def write_table(path: str | os.PathLike, table: pa.Table, *, into: OutputSet) -> int:
    """A whole table into the set ``into``; refused before anything is written when it does not fit."""
    return write_batches(path, table.to_batches(), empty_schema=table.schema, into=into, rows=table.num_rows)


def _refuse_infinite(path: Path, b: pa.RecordBatch) -> None:
    """No command writes an infinite number (an amount of inf yuan is a bug or a bad input that
    got through, never a result)."""
    for name, col in zip(b.schema.names, b.columns):
        if pa.types.is_floating(col.type) and len(col) > col.null_count and pc.any(pc.is_inf(col)).as_py():
            raise ValueError(f"{path}: column {name!r} would hold an infinite value; nothing was written")


def _write_batches(path: Path, tmp: str, kind: str, batches: Iterable[pa.RecordBatch],
                   empty_schema: pa.Schema | None, bom: bool = False) -> int:
    rows = 0
    it = iter(batches)

    def write(w, b: pa.RecordBatch) -> None:
        w.write_batch(b) if kind != "parquet" else w.write_batch(b, row_group_size=1 << 20)

    def writing(fn, *args):  # the writer's own failures (disk full) name the output, not the temporary file
        try:
            return fn(*args)
        except OSError as exc:  # pyarrow's I/O errors are OSErrors too
            raise _write_error(path, exc) from None

    writer = None
    depth = pipeline_depth()
    try:
        # one writer thread, fed in order: while it encodes and compresses batch k, this
        # thread makes batch k+1 (the work inside ``batches``); at most ``depth`` wait. On one
        # CPU (depth 0) this thread writes each batch itself.
        with ThreadPoolExecutor(1, thread_name_prefix="drg-write") if depth else _Inline() as pool:
            pending: deque = deque()
            try:
                for b in it:
                    _refuse_infinite(path, b)
                    if kind in ("csv", "xlsx"):
                        b = _joined_lists(b)
                    if kind == "xlsx" and rows + b.num_rows + 1 > XLSX_MAX_ROWS:
                        check_rows(path, rows + b.num_rows)
                    elif kind == "arrow":
                        b = _plain_dictionaries(b)
                    if writer is None:
                        writer = writing(_writer, kind, tmp, b.schema, bom)
                    pending.append(pool.submit(writing, write, writer, b))
                    rows += b.num_rows
                    while len(pending) > depth:
                        pending.popleft().result()
                while pending:
                    pending.popleft().result()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        if writer is None:
            schema = empty_schema or pa.schema([])
            plain = {"csv": _joined_lists, "xlsx": _joined_lists, "arrow": _plain_dictionaries}.get(kind)
            writer = writing(_writer, kind, tmp, plain(empty_batch(schema)).schema if plain else schema, bom)
    except BaseException:
        close = getattr(it, "close", None)
        if close is not None:  # stop the producer (and its read-ahead thread) now, not at garbage collection
            with contextlib.suppress(Exception):
                close()
        raise
    finally:
        if writer is not None:
            w, writer = writer, None
            writing(w.close)
    return rows


class _Inline:
    """The writer 'thread' of a one-CPU process: each job runs when submitted, its outcome kept
    in a Future as a pool's would be."""

    def __enter__(self) -> "_Inline":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def submit(self, fn, *args) -> Future:
        f: Future = Future()
        try:
            f.set_result(fn(*args))
        except BaseException as exc:  # raised where the pool's would be: at .result()
            f.set_exception(exc)
        return f

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        return None


def _joined_lists(b: pa.RecordBatch) -> pa.RecordBatch:
    if not any(pa.types.is_list(t) or pa.types.is_large_list(t) for t in b.schema.types):
        return b
    cols = [pc.binary_join(c.cast(pa.list_(pa.string())), "|") if pa.types.is_list(c.type)
            or pa.types.is_large_list(c.type) else c for c in b.columns]
    return pa.RecordBatch.from_arrays(cols, names=b.schema.names).replace_schema_metadata(b.schema.metadata)


def _plain_type(t: pa.DataType) -> pa.DataType:
    """``t`` with every dictionary type (also inside lists and structs) replaced by its values' type."""
    if pa.types.is_dictionary(t):
        return _plain_type(t.value_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        item = t.value_field.with_type(_plain_type(t.value_type))
        return pa.list_(item) if pa.types.is_list(t) else pa.large_list(item)
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_plain_type(f.type)) for f in t])
    return t


def _plain_dictionaries(b: pa.RecordBatch) -> pa.RecordBatch:
    """Dictionary columns decoded, for an Arrow IPC file: the file format allows one dictionary
    per column (no replacement), every batch brings its own (``reason``, kept columns) and
    deltas are beyond many readers (polars), so the file holds their values."""
    types = [_plain_type(t) for t in b.schema.types]
    if types == b.schema.types:
        return b
    schema = pa.schema([f.with_type(t) for f, t in zip(b.schema, types)], metadata=b.schema.metadata)
    return pa.RecordBatch.from_arrays([c if c.type == t else _decoded(c, t) for c, t in zip(b.columns, types)],
                                      schema=schema)


def _decoded(c: pa.Array, t: pa.DataType) -> pa.Array:
    """``c`` cast to its plain type ``t``; a small dictionary column of text through Python's
    values (the same array), as ``cast`` would load pyarrow.compute (start-up, a 1-row file)."""
    if pa.types.is_dictionary(c.type) and is_text(t) and len(c) <= SMALL_TEXT:
        return pa.array(c.to_pylist(), t)
    return c.cast(t)


class _BomCsvWriter:
    """A CSV writer whose file starts with the UTF-8 byte order mark."""

    def __init__(self, tmp: str, schema: pa.Schema):
        self.sink = pa.OSFile(tmp, "wb")
        self.sink.write(BOM)
        self.writer = pcsv.CSVWriter(self.sink, schema)

    def write_batch(self, b: pa.RecordBatch) -> None:
        self.writer.write_batch(b)

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            self.sink.close()


def _writer(kind: str, tmp: str, schema: pa.Schema, bom: bool = False):
    if kind == "xlsx":
        from grouper.io.xlsx import XlsxWriter

        return XlsxWriter(tmp, schema)
    if kind == "csv":
        return _BomCsvWriter(tmp, schema) if bom else pcsv.CSVWriter(tmp, schema)
    if kind == "parquet":
        return pq.ParquetWriter(tmp, schema, **parquet_writer_options(schema))
    return ipc.new_file(tmp, schema)


def parquet_writer_options(schema: pa.Schema) -> dict:
    """``pq.ParquetWriter`` keyword arguments for output of ``schema``, the same for every Parquet
    output (``drg group``'s file, the parts of a dataset run): zstd; min/max statistics only for
    plain columns (ids, numbers, dates: those of dictionary-encoded text cost more than the rest
    of the write together and help no query). case_id is an identifier, one distinct value per
    row: a Parquet dictionary of it is hashed and then abandoned at the page-size limit, so it is
    written without one (integer ids as deltas, which sequential ids shrink to almost nothing)."""
    options: dict = {"compression": "zstd",
                     "write_statistics": [f.name for f in schema if not pa.types.is_dictionary(f.type)]}
    if "case_id" in schema.names:
        options["use_dictionary"] = [p for p in _leaf_paths(schema) if p != "case_id"]
        if pa.types.is_integer(schema.field("case_id").type):
            options["column_encoding"] = {"case_id": "DELTA_BINARY_PACKED"}
    return options


def _leaf_paths(schema: pa.Schema) -> list[str]:
    """Parquet column paths of ``schema`` ('dx.list.element' for a list column), which is how
    per-column writer options name nested columns; taken from an empty file written in memory."""
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_batches([], schema), sink)
    meta = pq.read_metadata(pa.BufferReader(sink.getvalue()))
    return [meta.schema.column(i).path for i in range(meta.num_columns)]

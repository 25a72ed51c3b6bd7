"""Files in and out: CSV / Parquet / Arrow IPC read batch by batch, outputs written atomically.

Readers stream, so memory is bounded by the batch size, not the file. Parquet code columns are
read dictionary-encoded, so each distinct code string is mapped once per row group. A run is a
pipeline: a thread reads ahead, the caller groups, a thread writes behind (Arrow decodes and
encodes without the GIL), with a few batches in flight at most. Outputs go to a temporary file
beside the target and are renamed into place only when complete.
``group_files`` is what ``drg group`` runs: several inputs into one output, column mapping,
the wide 病案首页 layout, a JSON report, a data-quality threshold and a progress line.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import glob
import json
import os
import re
import tempfile
import time
import tomllib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, TextIO, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.ipc as ipc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from grouper._util.version import __version__
from grouper._util.columns import CODE_COLUMNS, check_columns
from grouper._util.errors import CorruptInputError, InputError
from grouper._util.batches import empty_batch

__all__ = ["Source", "open_source", "write_batches", "FORMATS", "format_of", "expand_inputs", "load_mapping",
           "group_file", "group_files", "RunSummary", "CANONICAL_COLUMNS", "WIDE_LAYOUTS", "MappingError",
           "prefetch", "check_outputs", "OutputSet", "write_text", "sweep_stale"]

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".arrow": "arrow",
           ".feather": "arrow", ".ipc": "arrow"}
DEFAULT_BATCH = 65_536
#: Batches read ahead of the grouping, and grouped batches waiting for the writer: the work
#: overlaps (Arrow decodes and encodes files without the GIL) while memory stays bounded.
PIPELINE_DEPTH = 2
T = TypeVar("T")
#: Column names the grouper reads; ``--map`` / ``--map-file`` may only name these.
CANONICAL_COLUMNS = ("case_id", "sex", "age", "age_days", "birth_weight", "dx", "px", "los", "discharge", "dept")
#: Wide hospital exports (病案首页 / 医保结算清单): one column per code. ``dx``/``px`` name the
#: principal column and the prefix of the numbered others (``qtzdbm1``..``qtzdbmN``, read in
#: numeric order); the rest rename one column each. Names match case-insensitively, with
#: full-width brackets read as ASCII ones. See docs/input-formats.md.
WIDE_LAYOUTS = {
    "pinyin": {"dx": ("zyzdbm", "qtzdbm"), "px": ("zyssbm", "qtssbm"), "case_id": "bah", "sex": "xb", "age": "nl",
               "age_days": "bzyzsnl", "birth_weight": "xsecsz", "los": "sjzyts", "discharge": "lyfs",
               "dept": "cykb"},
    "chinese": {"dx": ("主要诊断编码", "其他诊断编码"),
                "px": ("主要手术操作编码", "其他手术操作编码"),
                "case_id": "病案号", "sex": "性别", "age": "年龄", "age_days": "年龄(天)",
                "birth_weight": "新生儿出生体重", "los": "实际住院天数", "discharge": "离院方式",
                "dept": "出院科别"},
}
LAYOUTS = ("auto", "canonical", "wide")


class MappingError(InputError):
    """A bad ``--map`` / ``--map-file`` (a usage error, exit 2 on the command line)."""


def format_of(path: str | os.PathLike) -> str:
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ValueError(f"{path}: unknown file type {ext or '(none)'}; use one of {', '.join(sorted(FORMATS))}")
    return FORMATS[ext]


# ----------------------------------------------------------------------------- inputs

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
            raise ValueError(f"{p}: malformed CSV ({_first_line(exc)})") from None

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
            raise ValueError(f"{p}: corrupt Parquet data ({_first_line(exc)})") from None

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
                        raise ValueError(f"{p}: corrupt Arrow data in column {name!r} ({_first_line(exc)})") from None
                yield b
        except (pa.ArrowInvalid, pa.ArrowIndexError, OSError) as exc:
            raise ValueError(f"{p}: corrupt Arrow data ({_first_line(exc)})") from None

    return Source(str(p), schema, batches, num_rows)


# ----------------------------------------------------------------------------- column mapping

def load_mapping(pairs: Mapping[str, str] | Iterable[str] = (), map_file: str | os.PathLike | None = None
                 ) -> dict[str, str]:
    """canonical -> source column from ``canonical=source`` pairs (or a dict) over a TOML
    file's ``[columns]`` table; the pairs win. Unknown canonical names raise MappingError."""
    mapping: dict[str, str] = {}
    if map_file is not None:
        try:
            doc = tomllib.loads(Path(map_file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise MappingError(f"{map_file}: unreadable mapping file ({_first_line(exc)})") from None
        cols = doc.get("columns")
        if not isinstance(cols, dict) or not all(isinstance(v, str) for v in cols.values()):
            raise MappingError(f'{map_file}: needs a [columns] table of canonical = "source column" lines')
        mapping.update(cols)
    if isinstance(pairs, Mapping):
        mapping.update(pairs)
    else:
        for pair in pairs:
            canonical, eq, source = pair.partition("=")
            if not eq or not canonical.strip() or not source.strip():
                raise MappingError(f"--map {pair!r}: expected canonical=source, e.g. dx=zd")
            mapping[canonical.strip()] = source.strip()
    unknown = sorted(set(mapping) - set(CANONICAL_COLUMNS))
    if unknown:
        raise MappingError(f"unknown column name(s) to map: {', '.join(unknown)}; "
                           f"valid: {', '.join(CANONICAL_COLUMNS)}")
    return mapping


def _norm(name: str) -> str:
    return name.strip().lower().replace("（", "(").replace("）", ")")


@dataclass
class ColumnPlan:
    """How one input's columns become canonical ones, worked out once from its schema and then
    applied to every batch by renaming and (wide layout) list building; never per row."""

    rename: dict[str, list[str]] = field(default_factory=dict)  # source column -> canonical names
    drop: set[str] = field(default_factory=set)  # input columns a mapped or built column replaces
    lists: dict[str, list[str]] = field(default_factory=dict)  # dx/px -> wide code columns
    layout: str | None = None  # WIDE_LAYOUTS key when the wide layout is read

    def apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if not (self.rename or self.drop or self.lists):
            return batch
        names, cols = [], []
        for name, col in zip(batch.schema.names, batch.columns):
            if name in self.rename:
                names += self.rename[name]
                cols += [col] * len(self.rename[name])
            elif name not in self.drop:
                names.append(name)
                cols.append(col)
        for canonical, sources in self.lists.items():
            names.append(canonical)
            cols.append(code_list(batch, sources))
        return pa.RecordBatch.from_arrays(cols, names=names)

    def schema(self, schema: pa.Schema) -> pa.Schema:
        return self.apply(empty_batch(schema)).schema


def read_columns(schema: pa.Schema, plan: "ColumnPlan", wanted: Iterable[str]) -> list[str]:
    """The input columns worth reading: those that become a ``wanted`` canonical column (directly,
    through the mapping or as part of a wide code list). Columns nobody uses are never decoded."""
    wanted = set(wanted)
    list_sources = {c for sources in plan.lists.values() for c in sources}
    out = []
    for name in schema.names:
        if name in list_sources or (name in plan.rename and wanted & set(plan.rename[name])) or (
                name in wanted and name not in plan.drop and name not in plan.rename):
            out.append(name)
    return out


def plan_columns(schema: pa.Schema, mapping: Mapping[str, str] | None = None, layout: str = "auto",
                 path: str = "input") -> ColumnPlan:
    """The plan for one input: ``mapping`` first, then (``layout`` wide, or auto with no dx
    column but a recognised principal diagnosis) the wide layout for what is left."""
    names = schema.names
    plan = ColumnPlan()
    for canonical, source in (mapping or {}).items():
        if source not in names:
            raise InputError(f"{path}: --map {canonical}={source}: no column {source!r} in this input")
        plan.rename.setdefault(source, []).append(canonical)
        plan.drop.add(canonical)
    have = (set(names) - set(plan.rename)) | set(plan.drop)  # canonical names present after mapping
    by_norm = {_norm(n): n for n in reversed(names)}
    style = next((k for k, v in WIDE_LAYOUTS.items() if _norm(v["dx"][0]) in by_norm), None)
    if layout == "wide" and style is None:
        raise InputError(f"{path}: --layout wide needs a principal-diagnosis column "
                         f"({' or '.join(v['dx'][0] for v in WIDE_LAYOUTS.values())})")
    if style is None or layout == "canonical" or (layout == "auto" and "dx" in have):
        return plan
    plan.layout = style
    for canonical, source in WIDE_LAYOUTS[style].items():
        if canonical in (mapping or {}):
            continue
        if isinstance(source, tuple):
            principal, prefix = _norm(source[0]), re.compile(re.escape(_norm(source[1])) + r"(\d+)")
            numbered = sorted((int(m[1]), n) for n in names if (m := prefix.fullmatch(_norm(n))))
            plan.lists[canonical] = ([by_norm[principal]] if principal in by_norm else []) + [n for _, n in numbered]
            plan.drop.add(canonical)
        elif canonical not in have and _norm(source) in by_norm:
            plan.rename.setdefault(by_norm[_norm(source)], []).append(canonical)
    return plan


def code_list(batch: pa.RecordBatch, columns: list[str]) -> pa.Array:
    """list<string> of the given code columns row by row, in column order, blanks dropped.
    Vectorised: the columns are concatenated once and the kept cells taken in row order."""
    n, k = batch.num_rows, len(columns)
    if k == 0:
        return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.string()))
    values = pa.concat_arrays([_text(batch.column(c)) for c in columns])  # column-major
    filled = pc.not_equal(pc.utf8_trim_whitespace(values), "").fill_null(False)
    keep = filled.to_numpy(zero_copy_only=False).reshape(k, n).T  # (row, column)
    rows, cols = np.nonzero(keep)  # row-major order: principal first within each row
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(keep.sum(axis=1), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values.take(pa.array(cols * n + rows)))


def _text(col: pa.Array) -> pa.Array:
    return col if col.type == pa.string() else col.cast(pa.string())


# ----------------------------------------------------------------------------- outputs

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
    import shutil

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
        for other in outs[:k]:
            if _same_file(out, other):
                raise ValueError(f"{out}: named as two different outputs; give each its own path")
        if Path(out).is_dir():
            raise IsADirectoryError(f"{out}: is a folder; give an output file path")
        if not overwrite and (Path(out).exists() or Path(out).is_symlink()):
            raise _exists(out)


class OutputSet:
    """Outputs written to temporary files beside their targets and published together when
    the block ends without an error (nothing is published otherwise, and the temporary files
    are removed). Without ``overwrite`` each target is created exclusively: ``os.link`` (or,
    where links are unsupported, an ``O_EXCL`` placeholder) fails if another run published it
    first, so of two concurrent runs the later one fails instead of replacing the earlier."""

    def __init__(self, overwrite: bool = False):
        self.overwrite = overwrite
        self.tmps: dict[Path, str] = {}

    def add(self, path: str | os.PathLike) -> str:
        """A temporary file for ``path`` (refused when it exists, without ``overwrite``)."""
        path = Path(path)
        if any(_same_file(path, p) for p in self.tmps):
            raise ValueError(f"{path}: named as two different outputs; give each its own path")
        if not self.overwrite and (path.exists() or path.is_symlink()):
            raise _exists(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _sweep_parts(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".part", dir=path.parent)
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
    reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else _first_line(exc)
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


def write_batches(path: str | os.PathLike, batches: Iterable[pa.RecordBatch], *,
                  overwrite: bool = False, empty_schema: pa.Schema | None = None,
                  into: OutputSet | None = None) -> int:
    """Write batches to CSV/Parquet/Arrow (by extension), all or nothing. Returns rows written.

    ``empty_schema`` is used when there are no batches, so an empty input still gives a
    well-formed (header-only) output. CSV has no lists: list columns are written '|'-joined.
    ``into``: write into this set's temporary file for ``path``, published with the set."""
    path = Path(path)
    kind = format_of(path)
    if into is not None:
        return _write_batches(path, into.add(path), kind, batches, empty_schema)
    with atomic(path, overwrite) as tmp:
        return _write_batches(path, tmp, kind, batches, empty_schema)


def _refuse_infinite(path: Path, b: pa.RecordBatch) -> None:
    """No command writes an infinite number (an amount of inf yuan is a bug or a bad input that
    got through, never a result)."""
    for name, col in zip(b.schema.names, b.columns):
        if pa.types.is_floating(col.type) and len(col) > col.null_count and pc.any(pc.is_inf(col)).as_py():
            raise ValueError(f"{path}: column {name!r} would hold an infinite value; nothing was written")


def _write_batches(path: Path, tmp: str, kind: str, batches: Iterable[pa.RecordBatch],
                   empty_schema: pa.Schema | None) -> int:
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
    try:
        # one writer thread, fed in order: while it encodes and compresses batch k, this
        # thread makes batch k+1 (the work inside ``batches``); at most PIPELINE_DEPTH wait
        with ThreadPoolExecutor(1, thread_name_prefix="drg-write") as pool:
            pending: deque = deque()
            try:
                for b in it:
                    _refuse_infinite(path, b)
                    if kind == "csv":
                        b = _joined_lists(b)
                    elif kind == "arrow":
                        b = _plain_dictionaries(b)
                    if writer is None:
                        writer = writing(_writer, kind, tmp, b.schema)
                    pending.append(pool.submit(writing, write, writer, b))
                    rows += b.num_rows
                    while len(pending) > PIPELINE_DEPTH:
                        pending.popleft().result()
                while pending:
                    pending.popleft().result()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        if writer is None:
            schema = empty_schema or pa.schema([])
            plain = {"csv": _joined_lists, "arrow": _plain_dictionaries}.get(kind)
            writer = writing(_writer, kind, tmp, plain(empty_batch(schema)).schema if plain else schema)
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


def prefetch(items: Iterable[T], depth: int = PIPELINE_DEPTH) -> Iterator[T]:
    """``items`` produced by a background thread, up to ``depth`` ahead, in order.

    Reading a file is mostly Arrow decoding with the GIL released, so it overlaps the caller's
    work on the previous batch. Errors are raised here, where the failing item would have been;
    the source is closed (by the thread that ran it) when the consumer stops early."""
    it = iter(items)
    end = object()
    with ThreadPoolExecutor(1, thread_name_prefix="drg-read") as pool:
        ahead = deque(pool.submit(next, it, end) for _ in range(max(1, depth)))
        try:
            while True:
                item = ahead.popleft().result()
                if item is end:
                    return
                ahead.append(pool.submit(next, it, end))
                yield item
        finally:
            for f in ahead:
                f.cancel()
            close = getattr(it, "close", None)
            if close is not None:
                pool.submit(close).result()


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
    return pa.RecordBatch.from_arrays([c if c.type == t else c.cast(t) for c, t in zip(b.columns, types)],
                                      schema=schema)


def _writer(kind: str, tmp: str, schema: pa.Schema):
    if kind == "csv":
        return pcsv.CSVWriter(tmp, schema)
    if kind == "parquet":
        # min/max statistics of dictionary-encoded text columns cost more than the rest of the
        # write together and help no query; keep them for plain columns (ids, numbers, dates).
        # case_id is an identifier, one distinct value per row: a Parquet dictionary of it is
        # hashed and then abandoned at the page-size limit, so it is written without one
        # (integer ids as deltas, which sequential ids shrink to almost nothing).
        stats = [f.name for f in schema if not pa.types.is_dictionary(f.type)]
        options: dict = {}
        if "case_id" in schema.names:
            case_id = schema.field("case_id")
            options["use_dictionary"] = [p for p in _leaf_paths(schema) if p != "case_id"]
            if pa.types.is_integer(case_id.type):
                options["column_encoding"] = {"case_id": "DELTA_BINARY_PACKED"}
        return pq.ParquetWriter(tmp, schema, compression="zstd", write_statistics=stats, **options)
    return ipc.new_file(tmp, schema)


def _leaf_paths(schema: pa.Schema) -> list[str]:
    """Parquet column paths of ``schema`` ('dx.list.element' for a list column), which is how
    per-column writer options name nested columns; taken from an empty file written in memory."""
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_batches([], schema), sink)
    meta = pq.read_metadata(pa.BufferReader(sink.getvalue()))
    return [meta.schema.column(i).path for i in range(meta.num_columns)]

"""Grouping a partitioned Parquet dataset into a folder of part files, one task per piece (a
file, or a run of row groups of a big one), on a Dask cluster or a local process pool.

Dask is used as a scheduler of files, not through its DataFrame: each task streams its piece
through the kernel with one thread and writes its own part file, so every piece keeps its row
order and no row ever crosses the network. The compiled ruleset is shipped once per worker.

A run is resumable: each finished piece leaves a small marker beside the output, written after
its part file is renamed into place, so rerunning the same call skips what is complete and a
crash midway loses at most the pieces that were in flight. ``_manifest.json`` in the output
folder records every piece (rows in, rows out, status counts, ruleset fingerprint)."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import json
import os
import posixpath
import socket
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from grouper._util.batches import conform, empty_batch, unified_schema
from grouper._util.errors import first_line
from grouper._util.version import __version__
from grouper._util.columns import check_columns
from grouper._util.errors import InputError
from grouper.engine import OUTPUT_COLUMNS, STATUS_LABELS, BatchCounts, Flag, RunSummary, output_columns
from grouper.io import (CANONICAL_COLUMNS, DEFAULT_BATCH, ColumnPlan, check_outputs, load_mapping,
                        parquet_writer_options, plan_columns, read_columns, write_text)
from grouper.rulesets import DEFAULT_RULESET
from grouper.scale.fragments import (DEFAULT_SPLIT_ROWS, PARQUET_SUFFIXES, TMP_TAG, fragment_listing, inspect_fragments,
                                     read_json, remove_file, resolve_filesystem, row_group_runs, write_json)
from grouper.scale.tasks import map_fragments

__all__ = ["MANIFEST", "DatasetResult", "group_dataset"]

#: The run's record in the output folder; names starting with '_' or '.' are skipped by
#: Parquet dataset readers (pyarrow, Dask, Spark), so the folder reads as the grouped cases only.
MANIFEST = "_manifest.json"
PROGRESS = "_progress"  # one marker per finished piece
_MANIFEST_FORMAT = "drg-grouper dataset manifest 1"
_TMP_TAG = TMP_TAG


# ----------------------------------------------------------------------------- one piece

@dataclass(frozen=True)
class _Piece:
    """One task: a run of row groups of one file, written to one part file."""

    index: int
    fragment: str
    output: str  # relative to the output folder
    row_groups: tuple[int, int]  # [first, stop)
    row_offset: int  # rows before this piece in the whole input (row numbers when no case_id)
    rows: int
    size: int
    mtime_ns: int | None
    dict_cols: tuple[str, ...]
    columns: tuple[str, ...]
    plan: ColumnPlan

    def source(self) -> dict:
        return {"fragment": self.fragment, "row_groups": list(self.row_groups), "rows": self.rows,
                "size": self.size, "mtime_ns": self.mtime_ns}


@dataclass
class _Job:
    """What every task needs, shipped once per worker: the grouper (compiled arrays) and options."""

    grouper: Any
    src_fs: pafs.FileSystem
    dst_fs: pafs.FileSystem
    dst: str
    keep: list[str]
    target: pa.Schema
    batch_size: int
    run_key: dict
    writer_options: dict = field(default_factory=dict)
    columns: tuple[str, ...] = OUTPUT_COLUMNS  # result columns


_MALLOC_CHECKED = False


def _tune_malloc() -> None:
    """Dask starts its workers with MALLOC_TRIM_THRESHOLD_ set, and any such setting turns off
    glibc's adaptive mmap threshold: every array over 128 KiB (a batch's result columns) is then
    a fresh mmap, page-faulted in and unmapped again. Measured here, grouping tasks ran about
    25 % slower that way. Blocks up to 32 MiB (glibc's own adaptive ceiling) come from the heap
    again; the trim threshold, and so memory returned to the system, is left as configured.
    Nothing is changed without that variable, or when MALLOC_MMAP_THRESHOLD_ is set too."""
    global _MALLOC_CHECKED
    if _MALLOC_CHECKED:
        return
    _MALLOC_CHECKED = True
    if "MALLOC_TRIM_THRESHOLD_" in os.environ and "MALLOC_MMAP_THRESHOLD_" not in os.environ \
            and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to tune
            ctypes.CDLL("libc.so.6").mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD


def _group_piece(piece: _Piece, job: _Job) -> dict:
    """Group one piece into ``job.dst/piece.output`` (temporary name, renamed when complete),
    then leave its marker. Bad data is reported in the returned row (retrying cannot help);
    other errors (I/O, a lost connection) propagate so that the scheduler retries the task."""
    _tune_malloc()
    t0 = time.perf_counter()
    row = {"fragment": piece.fragment, "row_groups": list(piece.row_groups), "output": piece.output,
           "rows_in": 0, "rows_out": 0, "status": {}, "fingerprint": job.grouper.compiled.fingerprint,
           "state": "failed", "seconds": 0.0, "worker": f"{socket.gethostname()}:{os.getpid()}"}
    fs = job.dst_fs
    final = posixpath.join(job.dst, piece.output)
    tmp = posixpath.join(posixpath.dirname(final), f".{posixpath.basename(final)}{_TMP_TAG}{uuid.uuid4().hex[:8]}.tmp")
    counts = BatchCounts()
    try:
        fs.create_dir(posixpath.dirname(final), recursive=True)
        with job.src_fs.open_input_file(piece.fragment) as fh, \
                pq.ParquetFile(fh, read_dictionary=list(piece.dict_cols) or None) as pf, \
                pq.ParquetWriter(tmp, job.target, filesystem=fs, **job.writer_options) as writer:
            offset = piece.row_offset
            for rg in range(*piece.row_groups):
                for b in pf.iter_batches(batch_size=job.batch_size, row_groups=[rg], columns=list(piece.columns),
                                         use_threads=False):
                    out = job.grouper.group_batch(piece.plan.apply(b), n_threads=1, keep=job.keep, row_offset=offset,
                                                  columns=job.columns)
                    out = conform(out, job.target)
                    writer.write_batch(out, row_group_size=1 << 20)
                    counts.add(out)
                    offset += b.num_rows
                    row["rows_in"] += b.num_rows
                    row["rows_out"] += out.num_rows
        if row["rows_in"] != piece.rows or row["rows_out"] != row["rows_in"]:
            raise InputError(f"read {row['rows_in']} rows where the file's metadata says {piece.rows}: "
                             "it changed while being grouped")
        fs.move(tmp, final)
    except (InputError, ValueError, pa.ArrowNotImplementedError) as exc:  # ArrowInvalid is a ValueError
        remove_file(fs, tmp)
        msg = first_line(exc)
        row["error"] = msg if msg.startswith(piece.fragment) else f"{piece.fragment}: {msg}"
        row["seconds"] = round(time.perf_counter() - t0, 6)
        return row
    except BaseException:
        remove_file(fs, tmp)
        raise
    row.update(state="complete", status=counts.status, seconds=round(time.perf_counter() - t0, 6))
    marker = {"run": job.run_key, "source": piece.source(), "output_bytes": fs.get_file_info(final).size,
              "row": row, "mdc": counts.mdc, "drg": counts.drg, "flags": counts.flag_counts()}
    write_json(fs, posixpath.join(job.dst, PROGRESS, piece.output + ".json"), marker)
    return row

# ----------------------------------------------------------------------------- the run

@dataclass
class DatasetResult:
    """What ``group_dataset`` did: the ``summary`` (as ``drg group`` reports it), the
    ``manifest`` document, and the pieces that ``failed`` (rerun to retry just those)."""

    summary: RunSummary
    manifest: dict
    failed: list[dict] = field(default_factory=list)
    resumed: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def parts(self) -> list[str]:
        """Output part files in input order (read them in this order to get the input's order)."""
        return [r["output"] for r in self.manifest["fragments"]]

    def line(self) -> str:
        """One line for people: cases and status counts, rate of the pieces grouped in this run."""
        s, frags = self.summary, self.manifest["fragments"]
        new = sum(r.get("rows_out", 0) for r in frags if r.get("state") == "complete" and not r.get("resumed"))
        counts = ", ".join(f"{k} {v}" for k, v in s.status_counts.items() if v) or "no cases"
        done = []
        if new or not self.resumed:
            done.append(f"{new} grouped in {s.seconds:.3f} s ({new / s.seconds if s.seconds > 0 else 0:,.0f} cases/s)")
        if self.resumed:
            done.append(f"{self.resumed} parts already complete")
        text = f"{s.rows} cases in {len(frags)} parts under {s.ruleset}: {counts}; {', '.join(done)}"
        return text + (f"; {len(self.failed)} parts FAILED" if self.failed else "")


def group_dataset(src, dst: str | os.PathLike, ruleset: Any = DEFAULT_RULESET, client=None, *,
                  workers: int | None = None, filesystem: pafs.FileSystem | None = None,
                  dst_filesystem: pafs.FileSystem | None = None, keep: Sequence[str] | bool = (),
                  mapping: Mapping[str, str] | Iterable[str] = (), map_file: str | os.PathLike | None = None,
                  layout: str = "auto", batch_size: int = DEFAULT_BATCH, split_rows: int | None = DEFAULT_SPLIT_ROWS,
                  overwrite: bool = False, retries: int = 2, report: str | os.PathLike | None = None,
                  max_error_rate: float | None = None, progress: TextIO | None = None,
                  names: bool = False) -> DatasetResult:
    """Group the Parquet dataset ``src`` into the folder ``dst``, one task per piece, on the
    Dask ``client`` or (without one) a pool of ``workers`` local processes.

    ``src``: a folder, glob, file, URI or a list of them (see ``list_fragments``), on
    ``filesystem`` when given (any ``pyarrow.fs.FileSystem``, S3-compatible storage included);
    ``dst`` likewise on ``dst_filesystem``. ``ruleset``: a name, path, Ruleset or Grouper.
    Each input file becomes ``dst/<its folder>/part-<name>.parquet`` (files over ``split_rows``
    rows with several row groups: ``part-<name>-00000.parquet``, ... at row-group boundaries),
    rows in input order; the parts read in manifest order are exactly what ``drg group`` writes
    for the files in listing order. ``keep``, ``mapping``/``map_file``, ``layout`` and
    ``batch_size`` are ``drg group``'s; so is ``names``: the name columns (mdc_name, adrg_name,
    drg_name), left out by default as from every Parquet output of ``drg group``.

    Rerunning with the same arguments skips the pieces already complete; ``overwrite`` starts
    afresh; a folder holding another run (other ruleset or options) or other files is refused.
    Pieces whose data is bad are reported in ``result.failed`` (the others are still written);
    tasks lost with a worker or failing on I/O are retried ``retries`` times."""
    from grouper.engine import Grouper

    t0 = time.perf_counter()
    g = ruleset if isinstance(ruleset, Grouper) else Grouper(ruleset)
    if layout not in ("auto", "canonical", "wide"):
        raise ValueError(f"layout {layout!r}: use one of auto, canonical, wide")
    if split_rows is not None and split_rows < 1:
        raise ValueError("split_rows must be at least 1 (or None: one task per file)")
    columns_map = load_mapping(mapping, map_file)
    src_fs, frags, roots = fragment_listing(src, filesystem)
    dst_fs, dst_path = resolve_filesystem(dst, dst_filesystem)
    dst_path = dst_path.rstrip("/") or "/"
    if src_fs.equals(dst_fs):  # outputs must never become inputs of a rerun, nor inputs be overwritten
        for path in roots + [p for p, _ in frags]:
            if _inside(dst_path, path) or _inside(path, dst_path):
                raise ValueError(f"{dst}: the output folder overlaps the input {path}")

    files = inspect_fragments(src_fs, [p for p, _ in frags])
    plans = [plan_columns(f["schema"], columns_map, layout, f["path"]) for f in files]
    schemas = [plan.schema(f["schema"]) for plan, f in zip(plans, files)]
    if keep is True:
        from grouper.engine import OUTPUT_COLUMNS

        keep = [c for c in schemas[0].names if c not in OUTPUT_COLUMNS]
    keep = list(keep)
    for f, schema in zip(files, schemas):  # fail before any work, naming the file
        try:
            check_columns(schema.names, g.encoder.required)
            check_columns(schema.names, keep)
        except InputError as exc:
            raise InputError(f"{f['path']}: {exc}") from None
    columns = output_columns(names)
    outs: dict[pa.Schema, pa.Schema] = {}
    for f, schema in zip(files, schemas):  # also refuses unusable column types, before any work
        if schema not in outs:
            try:
                outs[schema] = g.group_batch(empty_batch(schema), keep=keep, columns=columns).schema
            except InputError as exc:
                raise InputError(f"{f['path']}: {exc}") from None
    hint = {} if names else g.names_metadata  # as drg group's
    target = unified_schema([outs[s] for s in schemas], {**g.metadata, **hint})
    run_key = {"grouper_version": __version__, "ruleset": g.compiled.name, "fingerprint": g.compiled.fingerprint,
               "keep": keep, "mapping": columns_map, "layout": layout, "split_rows": split_rows, "names": names}
    pieces = _pieces(files, [rel for _, rel in frags], plans, {*CANONICAL_COLUMNS, *keep}, split_rows)

    if report is not None:  # never one of the inputs, even with overwrite
        check_outputs([report], [p for p, _ in frags] if isinstance(src_fs, pafs.LocalFileSystem) else [],
                      overwrite=True)
    # the output folder: new, empty, or holding this run (resume) or an older one (overwrite)
    old, resuming = _prepare_dst(dst_fs, dst_path, run_key, overwrite, dst)
    if report is not None:  # an existing report is replaced only when overwriting or resuming
        check_outputs([report], overwrite=overwrite or resuming)
    current = {p.output for p in pieces}
    for stale in old - current:  # parts of an earlier run over other inputs: not part of this dataset
        remove_file(dst_fs, posixpath.join(dst_path, stale))
        remove_file(dst_fs, posixpath.join(dst_path, PROGRESS, stale + ".json"))
    rows: list[dict | None] = [None] * len(pieces)
    extra: list[dict | None] = [None] * len(pieces)
    if not overwrite:
        for i, done in enumerate(_completed(dst_fs, dst_path, pieces, run_key)):
            if done is not None:
                rows[i] = {**done["row"], "resumed": True}
                extra[i] = done
    resumed = sum(r is not None for r in rows)
    manifest = {"format": _MANIFEST_FORMAT, "grouper_version": __version__,
                "ruleset": {"name": g.compiled.name, "version": g.compiled.version,
                            "fingerprint": g.compiled.fingerprint},
                "source": [os.fspath(s) for s in ([src] if isinstance(src, (str, os.PathLike)) else src)],
                "run": run_key, "state": "running", "rows_in": 0, "rows_out": 0,
                "status": dict.fromkeys(STATUS_LABELS, 0), "seconds": None, "fragments": []}

    def pending(p: _Piece) -> dict:
        return {"fragment": p.fragment, "row_groups": list(p.row_groups), "output": p.output, "state": "pending"}

    def save(final: bool = False) -> None:
        manifest["fragments"] = [r if r is not None else pending(p) for r, p in zip(rows, pieces)]
        done = [r for r in rows if r is not None and r["state"] == "complete"]
        manifest["rows_in"] = sum(r["rows_in"] for r in done)
        manifest["rows_out"] = sum(r["rows_out"] for r in done)
        manifest["status"] = {s: sum(r["status"].get(s, 0) for r in done) for s in STATUS_LABELS}
        if final:
            manifest["state"] = "complete" if len(done) == len(pieces) else "incomplete"
            manifest["seconds"] = round(time.perf_counter() - t0, 6)
        write_json(dst_fs, posixpath.join(dst_path, MANIFEST), manifest)

    save()
    todo = [p for p, r in zip(pieces, rows) if r is None]
    job = _Job(g, src_fs, dst_fs, dst_path, keep, target, batch_size, run_key, parquet_writer_options(target), columns)
    last_save = [time.perf_counter()]
    bar = _Bar(progress, len(pieces), resumed, sum(r["rows_in"] for r in rows if r is not None))

    def arrived(k: int, value) -> None:
        p = todo[k]
        if isinstance(value, BaseException):
            value = {**pending(p), "state": "failed", "rows_in": 0, "rows_out": 0, "status": {},
                     "error": f"{p.fragment}: {type(value).__name__}: {first_line(value)}"}
        rows[p.index] = value
        bar.update(value.get("rows_out", 0))
        if time.perf_counter() - last_save[0] > 2.0:  # readable progress, without a write per piece
            save()
            last_save[0] = time.perf_counter()

    try:
        map_fragments(_group_piece, todo, client=client, workers=workers, shared=job, retries=retries,
                      errors="return", on_result=arrived)
    finally:
        bar.close()
        save(final=True)
        _sweep(dst_fs, dst_path)
    for i, p in enumerate(pieces):  # counts of this run's pieces from their markers
        if extra[i] is None and rows[i] is not None and rows[i]["state"] == "complete":
            extra[i] = read_json(dst_fs, posixpath.join(dst_path, PROGRESS, p.output + ".json")) or {}
    failed = [r for r in rows if r is None or r["state"] != "complete"]
    summary = _summary(g, manifest, extra, [p for p, _ in frags], dst, time.perf_counter() - t0, max_error_rate)
    if report is not None:
        doc = {**summary.report(), "parts": len(pieces), "resumed": resumed,
               "failed": [{"fragment": r["fragment"], "error": r.get("error", "")} for r in failed]}
        write_text(report, json.dumps(doc, ensure_ascii=False, indent=2) + "\n", overwrite=True)
    return DatasetResult(summary, manifest, failed, resumed)


def _inside(path: str, root: str) -> bool:
    path, root = path.rstrip("/") or "/", root.rstrip("/") or "/"
    return path == root or path.startswith(root if root.endswith("/") else root + "/")


def _pieces(files: list[dict], rels: list[str], plans: list[ColumnPlan], wanted: set[str],
            split_rows: int | None) -> list[_Piece]:
    pieces, offset = [], 0
    for f, rel, plan in zip(files, rels, plans):
        groups = f["row_groups"]
        runs = row_group_runs(groups, split_rows)
        folder, name = posixpath.split(rel)
        stem = name[: -len(s)] if (s := next((x for x in PARQUET_SUFFIXES if name.lower().endswith(x)), "")) else name
        columns = tuple(read_columns(f["schema"], plan, wanted))
        for k, (a, b) in enumerate(runs):
            out = f"part-{stem}.parquet" if len(runs) == 1 else f"part-{stem}-{k:05d}.parquet"
            rows = sum(groups[a:b])
            pieces.append(_Piece(len(pieces), f["path"], posixpath.join(folder, out), (a, b), offset, rows,
                                 f["size"], f["mtime_ns"], f["dict_cols"], columns, plan))
            offset += rows
    seen: dict[str, str] = {}
    for p in pieces:
        if seen.setdefault(p.output, p.fragment) != p.fragment:
            raise ValueError(f"{p.fragment}: would be written to {p.output} like {seen[p.output]}; "
                             "give the inputs as one folder or glob, or rename one")
    return pieces


def _prepare_dst(fs: pafs.FileSystem, dst: str, run_key: dict, overwrite: bool, shown) -> tuple[set[str], bool]:
    """Check the output folder; return the part files an earlier run there recorded and whether
    this run resumes it (same ruleset and options, no overwrite)."""
    info = fs.get_file_info(dst)
    if info.type == pafs.FileType.File:
        raise FileExistsError(f"{shown}: is a file; the output of a dataset run is a folder")
    if info.type == pafs.FileType.NotFound:
        fs.create_dir(dst, recursive=True)
        return set(), False
    old = read_json(fs, posixpath.join(dst, MANIFEST))
    if old is None or old.get("format") != _MANIFEST_FORMAT:
        if fs.get_file_info(pafs.FileSelector(dst, recursive=False)):
            raise FileExistsError(f"{shown}: folder is not empty and holds no {MANIFEST} of an earlier run; "
                                  "give a new or empty folder")
        return set(), False
    if old.get("run") != run_key and not overwrite:
        r = old.get("run") or {}
        raise FileExistsError(f"{shown}: holds a run under {r.get('ruleset')} ({str(r.get('fingerprint'))[:12]}) "
                              f"with other options; use --overwrite (overwrite=True) or another folder")
    parts = {r["output"] for r in old.get("fragments", []) if isinstance(r, dict) and "output" in r}
    if overwrite:
        for part in parts:
            remove_file(fs, posixpath.join(dst, part))
        try:
            fs.delete_dir(posixpath.join(dst, PROGRESS))
        except (OSError, pa.ArrowException):
            pass
        return set(), False
    return parts, True


def _completed(fs: pafs.FileSystem, dst: str, pieces: list[_Piece], run_key: dict) -> list[dict | None]:
    """The markers of pieces an earlier run finished with the same ruleset, options and input
    file (size, modification time) and whose part file is still there, whole."""
    def check(p: _Piece) -> dict | None:
        m = read_json(fs, posixpath.join(dst, PROGRESS, p.output + ".json"))
        if m is None or m.get("run") != run_key or m.get("source") != p.source():
            return None
        info = fs.get_file_info(posixpath.join(dst, p.output))
        return m if info.type == pafs.FileType.File and info.size == m.get("output_bytes") else None

    if not pieces:
        return []
    with cf.ThreadPoolExecutor(min(16, len(pieces))) as ex:
        return list(ex.map(check, pieces))


def _sweep(fs: pafs.FileSystem, dst: str) -> None:
    """Remove temporary files that workers killed midway left behind."""
    try:
        infos = fs.get_file_info(pafs.FileSelector(dst, recursive=True, allow_not_found=True))
    except (OSError, pa.ArrowException):
        return
    for info in infos:
        name = posixpath.basename(info.path)
        if info.type == pafs.FileType.File and name.startswith(".") and _TMP_TAG in name and name.endswith(".tmp"):
            remove_file(fs, info.path)


def _summary(g, manifest: dict, extra: list, inputs: list[str], dst, seconds: float,
             max_error_rate: float | None) -> RunSummary:
    mdc: dict[str, int] = {}
    drg: dict[str, int] = {}
    flags: dict[str, int] = {f.name: 0 for f in Flag}
    for e in extra:
        for into, part in ((mdc, (e or {}).get("mdc", {})), (drg, (e or {}).get("drg", {})),
                           (flags, (e or {}).get("flags", {}))):
            for k, v in part.items():
                into[k] = into.get(k, 0) + v
    return RunSummary(manifest["rows_out"], seconds, dict(manifest["status"]), g.compiled.name,
                      g.compiled.fingerprint, g.compiled.version, dict(sorted(mdc.items())), dict(sorted(drg.items())),
                      flags, inputs, os.fspath(dst), max_error_rate)


class _Bar:
    """'parts done / total, rows' on a terminal line, redrawn at most five times a second."""

    def __init__(self, stream: TextIO | None, total: int, done: int, rows: int):
        self.stream, self.total, self.done, self.rows, self.new = stream, total, done, rows, 0
        self.start, self.shown, self.width = time.perf_counter(), 0.0, 0

    def update(self, rows: int | None) -> None:
        """One more part done, with its row count (None where a task's result does not say)."""
        self.done += 1
        self.rows += rows or 0
        self.new += rows or 0
        now = time.perf_counter()
        if self.stream is None or (now - self.shown < 0.2 and self.done < self.total):
            return
        self.shown = now
        rate = self.new / max(now - self.start, 1e-9)
        text = f"{self.done}/{self.total} parts"
        if rows is not None:
            text += f"  {self.rows:,} rows  {rate:,.0f} rows/s"
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def close(self) -> None:
        if self.stream is not None and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()

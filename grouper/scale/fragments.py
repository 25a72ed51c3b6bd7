"""Which files a dataset is: sources (folders, globs, files, URIs) listed on one pyarrow
filesystem in a stable order, each file's footer read once, and big files cut at row-group
boundaries, so that every task gets a piece of about the same size."""

from __future__ import annotations

import concurrent.futures as cf
import fnmatch
import json
import os
import posixpath
import uuid
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from grouper._util.errors import first_line
from grouper.engine import CODE_COLUMNS

__all__ = ["DEFAULT_SPLIT_ROWS", "PARQUET_SUFFIXES", "fragment_listing", "inspect_fragments", "list_fragments",
           "resolve_filesystem", "row_group_runs"]

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
DEFAULT_SPLIT_ROWS = 1 << 22  # files larger than this are split at row-group boundaries
_MAGIC = set("*?[")


def resolve_filesystem(path: str | os.PathLike, filesystem: pafs.FileSystem | None = None
                       ) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path on it): ``filesystem`` as given, a URI's (``s3://bucket/x``,
    ``file:///x``, any scheme pyarrow knows), or the local one with the path made absolute."""
    s = os.fspath(path)
    if filesystem is not None:
        return filesystem, s
    if "://" in s:
        try:
            return pafs.FileSystem.from_uri(s)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
            raise ValueError(f"{s}: {first_line(exc)}") from None
    return pafs.LocalFileSystem(), os.path.abspath(s)


def list_fragments(src: str | os.PathLike | Sequence[str | os.PathLike],
                   filesystem: pafs.FileSystem | None = None) -> list[str]:
    """The Parquet files of ``src`` in a stable order: a folder's files (recursively, partition
    folders included) sorted by path, a glob's matches (``*``, ``?``, ``[..]`` within a name,
    ``**`` across folders) sorted, a file itself; several sources in the order given.

    Files are those ending .parquet/.pq/.parq; names starting with '.' or '_' (temporary files,
    ``_SUCCESS`` markers, this package's manifests) are skipped, as dataset readers do. Paths are
    on ``filesystem`` (or the URI's, or local absolute paths). Nothing found is an OSError."""
    return [path for path, _ in fragment_listing(src, filesystem)[1]]


def fragment_listing(src, filesystem=None) -> tuple[pafs.FileSystem, list[tuple[str, str]], list[str]]:
    """(filesystem, [(path, path relative to its source root)], the folders given as sources)."""
    items = [src] if isinstance(src, (str, os.PathLike)) else list(src)
    if not items:
        raise OSError("no input given")
    fs, out, roots = None, [], []
    for item in items:
        item_fs, path = resolve_filesystem(item, filesystem)
        if fs is None:
            fs = item_fs
        elif not fs.equals(item_fs):
            raise ValueError(f"{os.fspath(item)}: all inputs must be on one filesystem")
        root, found = _expand(fs, path, os.fspath(item))
        if fs.get_file_info(path).type == pafs.FileType.Directory:
            roots.append(path)
        out += [(p, posixpath.relpath(p, root) if root else p) for p in found]
    return fs, out, roots


def _expand(fs: pafs.FileSystem, path: str, shown: str) -> tuple[str, list[str]]:
    parts = path.split("/")
    magic = next((i for i, p in enumerate(parts) if _MAGIC & set(p)), None)
    if magic is not None:
        root = "/".join(parts[:magic]) or ("/" if path.startswith("/") else "")
        pattern = parts[magic:]
        found = sorted(p for p in _listing(fs, root)
                       if _glob_match(posixpath.relpath(p, root).split("/") if root else p.split("/"), pattern))
        if not found:
            raise OSError(f"{shown}: no files match")
        return root, found
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        return posixpath.dirname(path), [path]
    if info.type == pafs.FileType.Directory:
        found = sorted(p for p in _listing(fs, path) if p.lower().endswith(PARQUET_SUFFIXES))
        if not found:
            raise OSError(f"{shown}: no Parquet files ({'/'.join(PARQUET_SUFFIXES)}) in this folder")
        return path, found
    raise OSError(f"{shown}: no such file or folder")


def _listing(fs: pafs.FileSystem, root: str) -> list[str]:
    """Every file under ``root``, hidden ones ('.' or '_' in any name below it) left out."""
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except (OSError, pa.ArrowInvalid):
        return []
    out = []
    for info in infos:
        rel = posixpath.relpath(info.path, root) if root else info.path
        if info.type == pafs.FileType.File and not any(n[:1] in "._" for n in rel.split("/")):
            out.append(info.path)
    return out


def _glob_match(names: list[str], pattern: list[str]) -> bool:
    """Path components against pattern components: fnmatch within a name, '**' any depth."""
    if not pattern:
        return not names
    if pattern[0] == "**":
        return any(_glob_match(names[i:], pattern[1:]) for i in range(len(names) + 1))
    return bool(names) and fnmatch.fnmatchcase(names[0], pattern[0]) and _glob_match(names[1:], pattern[1:])


# ----------------------------------------------------------------------------- footers and splitting

def _inspect(fs: pafs.FileSystem, path: str) -> dict:
    """One footer read: schema (code columns as dictionaries, as they will be read), rows per
    row group, and the file's size and modification time (to recognise it on a rerun)."""
    try:
        info = fs.get_file_info(path)
        with fs.open_input_file(path) as fh:
            md = pq.read_metadata(fh)
            leaves = [md.schema.column(i).path for i in range(md.num_columns)]
            dict_cols = tuple(p for p in leaves for c in CODE_COLUMNS if p == c or p.startswith(c + "."))
            schema = pq.ParquetFile(fh, metadata=md, read_dictionary=list(dict_cols) or None).schema_arrow
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise ValueError(f"{path}: unreadable Parquet file ({first_line(exc)})") from None
    return {"path": path, "schema": schema, "row_groups": [md.row_group(i).num_rows for i in range(md.num_row_groups)],
            "size": info.size, "mtime_ns": info.mtime_ns, "dict_cols": dict_cols}


def inspect_fragments(fs: pafs.FileSystem, paths: list[str]) -> list[dict]:
    """The footers of ``paths`` (schema, rows per row group, size, modification time; see
    ``_inspect``), read concurrently: on object storage each is a round trip."""
    if len(paths) == 1:
        return [_inspect(fs, paths[0])]
    with cf.ThreadPoolExecutor(min(16, len(paths))) as ex:
        return list(ex.map(lambda p: _inspect(fs, p), paths))


def row_group_runs(groups: list[int], split_rows: int | None) -> list[tuple[int, int]]:
    """The [first, stop) row-group runs of a file with ``groups`` rows per row group: the whole
    file, or, when it has several row groups and more than ``split_rows`` rows, runs of at least
    ``split_rows`` rows (the last one possibly fewer)."""
    runs = [(0, len(groups))]
    if split_rows is not None and len(groups) > 1 and sum(groups) > split_rows:
        runs, start, acc = [], 0, 0
        for i, n in enumerate(groups):
            acc += n
            if acc >= split_rows:
                runs.append((start, i + 1))
                start, acc = i + 1, 0
        if start < len(groups):
            runs.append((start, len(groups)))
    return runs


# ----------------------------------------------------------------------------- small files on any filesystem

#: part of every temporary name, so debris of killed workers can be swept
TMP_TAG = ".drg-"


def remove_file(fs: pafs.FileSystem, path: str) -> None:
    try:
        fs.delete_file(path)
    except (OSError, pa.ArrowException):
        pass


def write_json(fs: pafs.FileSystem, path: str, doc: dict) -> None:
    """All or nothing: a reader sees the old document or the new one, never half of one (on
    any pyarrow filesystem, object storage included: ``grouper.io`` writes local files only)."""
    tmp = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}{TMP_TAG}{uuid.uuid4().hex[:8]}.tmp")
    fs.create_dir(posixpath.dirname(path), recursive=True)
    with fs.open_output_stream(tmp) as out:
        out.write((json.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode())
    fs.move(tmp, path)


def read_json(fs: pafs.FileSystem, path: str) -> dict | None:
    try:
        with fs.open_input_stream(path) as fh:
            doc = json.loads(fh.read().decode())
        return doc if isinstance(doc, dict) else None
    except (OSError, ValueError, pa.ArrowException):
        return None

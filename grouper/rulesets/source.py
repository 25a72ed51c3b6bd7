"""Where a scheme's files are and what identifies them, without parsing them: the content key
``load_ruleset`` caches a Ruleset under (``ruleset_source``) and the stat stamp that key is
remembered under (``ruleset_stamp``). Apart from the loader so that a run served from the
compiled cache imports neither the loader nor the data model (start-up)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from grouper.rulesets.cache import CACHE_FORMAT, code_hash, file_stamp, module_files
from grouper.rulesets.registry import find_ruleset
from grouper.rulesets.tables import FILES, read_files

__all__ = ["LOADER_MODULES", "ruleset_source", "ruleset_stamp"]

#: The modules whose code turns the files into a Ruleset: part of the disk-cache key.
LOADER_MODULES = ("rulesets.model", "rulesets.tables", "rulesets.loader", "rulesets.conditions", "rulesets.source",
                  "rulesets.errors")


def ruleset_stamp(name_or_path: str | os.PathLike, modules: tuple[str, ...] = LOADER_MODULES) -> tuple[str, str | None]:
    """(folder, stat stamp of every file the loader reads and of ``modules``' files), the stamp
    None while one of them has just changed (``cache.file_stamp``): what a content key of them
    is remembered under (``cache.stamped_key``), so a run that finds them as they were need not
    read and hash their bytes (5 MB, 8 ms for a national scheme)."""
    folder = find_ruleset(name_or_path).resolve()
    code = module_files(modules)
    return str(folder), file_stamp(None if code is None else [*(folder / name for name in FILES), *code])


def ruleset_source(name_or_path: str | os.PathLike) -> tuple[str, str | None]:
    """(folder, content key) of a ruleset without parsing it: the key ``load_ruleset`` caches
    it under (every byte of every file read, the folder, the loader's code; None when the
    loader's code cannot be hashed). Keys a cache of what is derived from the ruleset (the
    compiled arrays) so a hit needs no parsing at all."""
    folder, _files, key = _source(name_or_path)
    return str(folder), key if code_hash(LOADER_MODULES) else None


def _source(name_or_path: str | os.PathLike) -> tuple[Path, dict[str, bytes], str]:
    folder = find_ruleset(name_or_path).resolve()
    files = read_files(folder)
    code = code_hash(LOADER_MODULES)
    h = hashlib.sha256(json.dumps([CACHE_FORMAT, str(folder), code]).encode())
    for name in sorted(files):
        h.update(b"\0%s\0%d\0" % (name.encode(), len(files[name])))
        h.update(files[name])
    return folder, files, h.hexdigest()

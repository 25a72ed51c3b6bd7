"""The compiled arrays of a ruleset, from memory or the verified disk cache (``rulesets.cache``),
and the stand-in for a Ruleset that is parsed only when something needs its tables."""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING

from grouper.engine.compile import CompiledRuleset, compile_ruleset
from grouper.rulesets import LOADER_MODULES, code_hash, disk_cached, ruleset_source, ruleset_stamp, stamped_key

if TYPE_CHECKING:
    from grouper.rulesets import Ruleset

__all__ = ["LazyRuleset", "compiled_from_files", "compiled_ruleset"]

_COMPILED: dict[str, CompiledRuleset] = {}  # by fingerprint or by file key


def _remember(key: str, compiled: CompiledRuleset) -> None:
    if len(_COMPILED) >= 8:  # bounded: a process rarely uses many schemes
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[key] = compiled


def compiled_ruleset(rs: Ruleset) -> CompiledRuleset:
    """The compiled arrays of ``rs``, from the on-disk cache when this very code built them
    before: keyed by the ruleset's fingerprint (every byte its loader read) and the sha256 of
    the loader, compiler and kernel modules' files, so neither a table edit nor a rebuilt kernel
    is ever served stale. Compiling takes about 0.1 s, a cache hit a few ms (a CLI run)."""
    fp = rs.fingerprint
    if fp not in _COMPILED:
        code = code_hash((*LOADER_MODULES, "engine.compile", "engine.compiled", "engine.tables", "engine._kernel"))
        key = hashlib.sha256(json.dumps(["compiled-2", fp, code]).encode()).hexdigest()
        _remember(fp, disk_cached(key if code else None, lambda: compile_ruleset(rs), CompiledRuleset,
                                  valid=lambda c: c.fingerprint == fp))
    return _COMPILED[fp]


def compiled_from_files(ruleset: str | os.PathLike) -> tuple[CompiledRuleset, Ruleset]:
    """The compiled arrays of the ruleset named or at ``ruleset``, and the Ruleset (loaded lazily
    on a cache hit). The cache key is the ruleset's file content (``ruleset_source``: every byte,
    the folder, the loader's code) and the compiler and kernel modules' files, so a hit reads
    only the files' bytes and the cached arrays: the tables are parsed on a miss, or when
    something asks the Ruleset for more than its path and fingerprint (``explain``). Files whose
    stat stamp is as when their key was last computed are not even read (``stamped_key``)."""
    modules = (*LOADER_MODULES, "engine.compile", "engine.compiled", "engine.tables", "engine._kernel")
    folder, stamp = ruleset_stamp(ruleset, modules)

    def content_key() -> str | None:
        _, source = ruleset_source(folder)
        code = code_hash(modules)
        return hashlib.sha256(json.dumps(["compiled-files-1", source, code]).encode()).hexdigest() \
            if source and code else None

    # files found as they were (their stat stamp) give the key their content gave: no hashing
    key = stamped_key(stamp, content_key)
    if key is not None and key in _COMPILED:
        compiled = _COMPILED[key]
        return compiled, LazyRuleset(folder, compiled.fingerprint)
    loaded: list[Ruleset] = []

    def build() -> CompiledRuleset:
        loaded.append(load_ruleset(folder))
        return compile_ruleset(loaded[0])

    compiled = disk_cached(key, build, CompiledRuleset)
    if key is not None:
        _remember(key, compiled)
    return compiled, (loaded[0] if loaded else LazyRuleset(folder, compiled.fingerprint))


def load_ruleset(path: str) -> Ruleset:
    """``grouper.rulesets.load_ruleset``, imported when a Ruleset is needed: a cache hit loads
    neither the loader nor the data model (start-up)."""
    from grouper.rulesets.loader import load_ruleset as load

    return load(path)


class LazyRuleset:
    """Stands in for the Ruleset on unpickled Groupers; loads (and checks) it on first use."""

    def __init__(self, path: str, fingerprint: str):
        self.path, self.fingerprint, self._rs = path, fingerprint, None

    def __getattr__(self, name):
        if self._rs is None:
            rs = load_ruleset(self.path)
            if rs.fingerprint != self.fingerprint:
                raise RuntimeError(f"ruleset at {self.path} changed since this grouper was compiled")
            self._rs = rs
        return getattr(self._rs, name)

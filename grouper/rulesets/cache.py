"""The content-keyed, verified disk cache of loaded and compiled schemes.

Parsing a scheme's tables takes most of a second and compiling it a tenth; a CLI run should not
pay that each time. Entries are keyed by content (every byte read and the code that read it),
checked against their header's sha256 before unpickling, bounded, and written atomically.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from pathlib import Path

__all__ = ["CACHE_FORMAT", "CACHE_MAX_BYTES", "CACHE_MAX_ENTRIES", "cache_dir", "cache_evict", "cache_read",
           "cache_write", "code_hash", "disk_cached", "file_stamp", "module_files", "stamped_key"]


def module_files(modules: tuple[str, ...]) -> list[str] | None:
    """The files of the named ``grouper`` modules (sources or built extensions), None when one
    has none (then nothing is cached on disk). Found without importing them: a run served from
    the cache need not load the loader and the data model (start-up)."""
    import importlib.util
    import sys

    files = []
    for name in modules:
        module = sys.modules.get(f"grouper.{name}")
        try:
            origin = module.__file__ if module is not None else importlib.util.find_spec(f"grouper.{name}").origin
        except (ImportError, AttributeError, ValueError):
            return None
        if not isinstance(origin, str):
            return None
        files.append(origin)
    return files


@functools.lru_cache(maxsize=None)
def code_hash(modules: tuple[str, ...]) -> str | None:
    """sha256 of the files of the named ``grouper`` modules (sources or built extensions) and
    the package version; None when one cannot be read (then nothing is cached on disk)."""
    from grouper._util.version import __version__

    files = module_files(modules)
    if files is None:
        return None
    h = hashlib.sha256(__version__.encode())
    for name, path in zip(modules, files):
        h.update(b"\0" + name.encode() + b"\0")
        try:
            h.update(Path(path).read_bytes())
        except OSError:
            return None
    return h.hexdigest()


# ---- stat stamps: a content key remembered for files whose stat says they are as they were

#: Nanoseconds a file must have been left alone before its stat stands for its content: a change
#: within the file system's timestamp granularity of the stat could leave every field as it was.
SETTLED_NS = 2 * 10**9
STAMP_SUFFIX = ".drgs"
STAMP_MAX_ENTRIES = 64


def file_stamp(paths) -> str | None:
    """A digest of what ``stat`` says of each of ``paths`` (or that it is absent): size,
    modification and inode-change times in ns, inode and device. None where that may not
    stand for the content: not POSIX (``st_ctime`` is then no change time), a file changed in
    the last ``SETTLED_NS``, an error. Any write, ``utime`` (``cp -p``, ``rsync -t``: a
    same-size edit with its mtime restored) or rename sets the change time, which no user can
    set back; so equal stamps mean the same bytes, as sure as hashing them (issue 18)."""
    if os.name != "posix" or paths is None:
        return None
    import time

    settled = time.time_ns() - SETTLED_NS
    h = hashlib.sha256(b"drg stamp 1\0")
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            h.update(b"absent\0%s\0" % os.fsencode(p))
            continue
        except (OSError, ValueError, TypeError):
            return None
        if st.st_ctime_ns >= settled or st.st_mtime_ns >= settled:
            return None  # changed just now, or dated in the future
        h.update(b"%s\0%d %d %d %d %d\0" % (os.fsencode(p), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino,
                                            st.st_dev))
    return h.hexdigest()


def stamped_key(stamp: str | None, compute):
    """The content key of the files ``stamp`` (``file_stamp``) describes: remembered in the cache
    folder under the stamp, or ``compute()`` (which must read the files after the stamp was
    taken, so a change in between gives the next stamp another value) and remembered."""
    if stamp is None or os.environ.get("DRG_NO_CACHE") == "1":
        return compute()
    folder = cache_dir()
    path = folder / f"{stamp}{STAMP_SUFFIX}"
    key = cache_read(path, stamp)
    if isinstance(key, str):
        return key
    key = compute()
    if key is not None:
        cache_write(folder, path, stamp, key)
    return key


# ---- the on-disk cache: content-keyed, verified, bounded, written atomically

CACHE_FORMAT = "ruleset-cache-2"
CACHE_MAGIC = b"drg-grouper cache 2\n"
CACHE_SUFFIX = ".drgc"
#: Bounds of the cache folder: the most recently used entries are kept. A bundled scheme
#: takes two entries (ruleset about 5.5 MB, compiled arrays about 4 MB).
CACHE_MAX_ENTRIES = 32
CACHE_MAX_BYTES = 256 * 2**20
_LEGACY = re.compile(r"[0-9a-f]{32}-.+\.pkl")  # ruleset-cache-1 files
_TEMP_PREFIX = ".drgc-"
_TEMP_MAX_AGE_S = 3600  # a temporary file older than this was left by a killed writer


def cache_dir() -> Path:
    """The cache folder: ``$DRG_CACHE_DIR``, default ``~/.cache/drg-grouper``."""
    return Path(os.environ.get("DRG_CACHE_DIR") or Path.home() / ".cache" / "drg-grouper")


def disk_cached(key: str | None, load, kind: type | None = None, valid=None):
    """``load()``'s result (an instance of ``kind``, by default a Ruleset), kept under the cache
    folder by ``key`` (None: not cached); also used by ``core`` for compiled rulesets.

    An entry is a header (its key, the sha256 and size of the payload) and a pickled payload.
    It is unpickled only when the header names this key, the payload's hash matches and the file
    belongs to this user and is writable by no one else; anything else (absent, truncated,
    corrupt, another format, another key, ``valid(obj)`` false) is ignored and rebuilt.
    Writes go to a temporary file renamed into place, so readers and concurrent writers only
    ever see whole entries; the folder keeps the ``CACHE_MAX_ENTRIES`` most recently used."""
    if kind is None:
        from grouper.rulesets.model import Ruleset

        kind = Ruleset
    if key is None or os.environ.get("DRG_NO_CACHE") == "1":
        return load()
    folder = cache_dir()
    path = folder / f"{key}{CACHE_SUFFIX}"
    obj = cache_read(path, key)
    if isinstance(obj, kind) and (valid is None or valid(obj)):
        return obj
    obj = load()
    cache_write(folder, path, key, obj)
    return obj


def cache_read(path: Path, key: str):
    import pickle

    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
                return None  # someone else could have written it
            data = fh.read()
        if not data.startswith(CACHE_MAGIC):
            return None
        end = data.index(b"\n", len(CACHE_MAGIC))
        head = json.loads(data[len(CACHE_MAGIC):end])
        payload = memoryview(data)[end + 1:]
        if (not isinstance(head, dict) or head.get("key") != key or head.get("size") != len(payload)
                or head.get("sha256") != hashlib.sha256(payload).hexdigest()):
            return None
        obj = pickle.loads(payload)
    except Exception:  # absent, unreadable, truncated or corrupt: rebuilt by the caller
        return None
    try:
        os.utime(path)  # most recently used: the last to be evicted
    except OSError:
        pass
    return obj


def cache_write(folder: Path, path: Path, key: str, obj) -> None:
    import pickle

    tmp = None
    try:  # best effort: a read-only home only costs the next process a second
        payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        head = json.dumps({"key": key, "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest(),
                           "type": type(obj).__name__}).encode()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        import tempfile  # here: a cache hit writes nothing (start-up)
        fd, tmp = tempfile.mkstemp(".tmp", _TEMP_PREFIX, folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(CACHE_MAGIC + head + b"\n")
            fh.write(payload)
        os.replace(tmp, path)
        tmp = None
        cache_evict(folder)
    except (OSError, pickle.PicklingError):
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def cache_evict(folder: Path, max_entries: int | None = None, max_bytes: int | None = None) -> None:
    """Remove the least recently used entries beyond the bounds, old-format entries and the
    temporary files of killed writers. Only this cache's own file names are touched."""
    import time

    max_entries = CACHE_MAX_ENTRIES if max_entries is None else max_entries
    max_bytes = CACHE_MAX_BYTES if max_bytes is None else max_bytes
    entries, stamps, now = [], [], time.time()
    for p in folder.iterdir():
        try:
            st = p.stat()
        except OSError:
            continue
        name = p.name
        if name.endswith(CACHE_SUFFIX):
            entries.append((st.st_mtime, st.st_size, p))
        elif name.endswith(STAMP_SUFFIX):
            stamps.append((st.st_mtime, p))
        elif _LEGACY.fullmatch(name) or (name.startswith(_TEMP_PREFIX) and now - st.st_mtime > _TEMP_MAX_AGE_S):
            _unlink(p)
    stamps.sort(key=lambda e: e[0], reverse=True)
    for _, p in stamps[STAMP_MAX_ENTRIES:]:  # tiny files, most recently used kept
        _unlink(p)
    entries.sort(key=lambda e: e[0], reverse=True)
    total = 0
    for i, (_, size, p) in enumerate(entries):
        total += size
        if i >= max_entries or (i > 0 and total > max_bytes):
            _unlink(p)


def _unlink(p: Path) -> None:
    try:
        p.unlink()
    except OSError:  # another process removed it first
        pass

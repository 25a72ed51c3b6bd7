"""``mkstemp``: ``tempfile.mkstemp`` without importing tempfile.

tempfile brings shutil, random, bz2 and lzma: 4-5 ms of a one-row `drg group`, which needs one
temporary name for its output (and one for a new cache entry).
"""

from __future__ import annotations

import errno
import os

__all__ = ["mkstemp"]

_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"  # those of tempfile's names


def mkstemp(folder: str | os.PathLike, prefix: str = "", suffix: str = "") -> tuple[int, str]:
    """(open descriptor, absolute path) of a new empty file, mode 0600, named ``prefix`` + 8
    random ``[a-z0-9_]`` + ``suffix`` in ``folder``: what ``tempfile.mkstemp(suffix, prefix,
    folder)`` gives, names included (patterns that sweep the debris of killed writers rely on
    them)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(10_000):  # mkstemp's number of tries
        name = os.path.join(folder, prefix + "".join(_NAME_CHARS[b % len(_NAME_CHARS)] for b in os.urandom(8))
                            + suffix)
        try:
            fd = os.open(name, flags, 0o600)
        except FileExistsError:
            continue
        return fd, os.path.abspath(name)
    raise FileExistsError(errno.EEXIST, f"no free temporary file name in {folder}")

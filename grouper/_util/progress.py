"""Progress of long work on a terminal: the one progress line every command shows.

A command makes one ``Progress`` (only when stderr is a terminal, or ``--progress``) and makes it
current with ``reporting(bar)``; the loops that read cases call ``advance(rows)``, which does
nothing when no bar is current, so library calls stay silent. The total is known for Parquet and
Arrow (their row counts) and estimated for CSV from the file size and the bytes per row of its
first megabyte (``estimate_rows``)."""

from __future__ import annotations

import contextvars
import os
import time
from contextlib import contextmanager
from typing import Iterable, TextIO

__all__ = ["Progress", "advance", "estimate_rows", "reporting", "total_rows"]

_CURRENT: contextvars.ContextVar["Progress | None"] = contextvars.ContextVar("drg_progress", default=None)


class Progress:
    """A carriage-return line on a terminal: rows, rows/s and, when the total is known, percent
    and ETA; redrawn at most five times a second, erased by ``close``."""

    def __init__(self, stream: TextIO, total: int | None, what: str = "rows"):
        self.stream, self.total, self.what = stream, total, what
        self.start, self.shown, self.width, self.rows = time.perf_counter(), 0.0, 0, 0

    def update(self, rows: int) -> None:
        self.rows = rows
        now = time.perf_counter()
        if now - self.shown < 0.2:
            return
        self.shown, rate = now, rows / max(now - self.start, 1e-9)
        text = f"{rows:,} {self.what}  {rate:,.0f} {self.what}/s"
        if self.total:
            eta = max(self.total - rows, 0) / rate if rate else 0
            text += f"  {min(rows / self.total, 1):.0%}  ETA {int(eta) // 60}:{int(eta) % 60:02d}"
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def advance(self, rows: int) -> None:
        self.update(self.rows + rows)

    def close(self) -> None:
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


@contextmanager
def reporting(bar: "Progress | None"):
    """Make ``bar`` the current progress line for the block (None: silent) and close it after."""
    token = _CURRENT.set(bar)
    try:
        yield bar
    finally:
        _CURRENT.reset(token)
        if bar is not None:
            bar.close()


def advance(rows: int) -> None:
    """``rows`` more done, on the current progress line if there is one."""
    bar = _CURRENT.get()
    if bar is not None:
        bar.advance(rows)


def estimate_rows(path: str | os.PathLike, sample: int = 1 << 20) -> int | None:
    """Rows of a CSV file, estimated from its size and the line breaks of its first ``sample``
    bytes (exact for a file that short); None when it cannot be read."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(sample)
    except OSError:
        return None
    lines = head.count(b"\n") + (0 if head.endswith(b"\n") or not head else 1)
    if len(head) >= size:
        return max(lines - 1, 0)
    return int(size * max(lines, 1) / max(len(head), 1))


def total_rows(counts: Iterable[int | None]) -> int | None:
    """The sum of known counts; None when any is unknown."""
    counts = list(counts)
    return None if any(c is None for c in counts) else sum(counts)

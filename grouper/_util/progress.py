"""Progress of long work on a terminal."""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """A carriage-return line on a terminal: rows, rows/s and, when the total is known, the ETA."""

    def __init__(self, stream: TextIO, total: int | None):
        self.stream, self.total, self.start, self.shown, self.width = stream, total, time.perf_counter(), 0.0, 0

    def update(self, rows: int) -> None:
        now = time.perf_counter()
        if now - self.shown < 0.2:
            return
        self.shown, rate = now, rows / max(now - self.start, 1e-9)
        text = f"{rows:,} rows  {rate:,.0f} rows/s"
        if self.total:
            eta = max(self.total - rows, 0) / rate if rate else 0
            text += f"  {rows / self.total:.0%}  ETA {int(eta) // 60}:{int(eta) % 60:02d}"
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def close(self) -> None:
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()

"""What a grouping run did: counts of grouped batches by status, MDC, DRG and flag bit, added
up with vector operations, and the run summary that ``drg group`` prints and reports."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc
from grouper._util.version import __version__
from grouper.engine._codes import count_indices
from grouper.engine.status import STATUS_LABELS, Flag

__all__ = ["BatchCounts", "RunSummary"]


@dataclass
class RunSummary:
    """What a grouping run did, for the command line and ``--report``."""

    rows: int
    seconds: float
    status_counts: dict[str, int]
    ruleset: str
    fingerprint: str
    ruleset_version: str = ""
    mdc_counts: dict[str, int] = field(default_factory=dict)
    drg_counts: dict[str, int] = field(default_factory=dict)
    flag_counts: dict[str, int] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    output: str | None = None
    max_error_rate: float | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    @property
    def error_rate(self) -> float:
        """Share of rows that are invalid or ungroupable (0 for no rows)."""
        bad = self.status_counts.get("invalid", 0) + self.status_counts.get("ungroupable", 0)
        return bad / self.rows if self.rows else 0.0

    @property
    def breach(self) -> str | None:
        """One line when the error rate exceeds ``max_error_rate`` (``drg group`` exits 3), else None."""
        if self.max_error_rate is None or self.error_rate <= self.max_error_rate:
            return None
        bad = round(self.error_rate * self.rows)
        return (f"{bad} of {self.rows} cases ({self.error_rate:.2%}) are invalid or ungroupable, "
                f"above --max-error-rate {self.max_error_rate:g}")

    def line(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.status_counts.items() if v)
        return (f"{self.rows} cases in {self.seconds:.3f} s ({self.rows_per_second:,.0f} cases/s) "
                f"under {self.ruleset}: {counts or 'no cases'}")

    def report(self) -> dict:
        """The ``--report`` document (plain JSON types)."""
        return {
            "grouper_version": __version__,
            "ruleset": {"name": self.ruleset, "version": self.ruleset_version, "fingerprint": self.fingerprint},
            "inputs": self.inputs, "output": self.output,
            "rows": self.rows, "seconds": round(self.seconds, 6),
            "rows_per_second": round(self.rows_per_second, 1) if self.seconds > 0 else None,
            "error_rate": self.error_rate, "max_error_rate": self.max_error_rate,
            "status": self.status_counts, "mdc": self.mdc_counts, "drg": self.drg_counts, "flags": self.flag_counts,
        }


class BatchCounts:
    """Per-status / MDC / DRG / flag-bit counts of grouped batches, added up with vector ops
    (used by ``drg group`` and by each task of ``scale.group_dataset``)."""

    def __init__(self):
        self.status = dict.fromkeys(STATUS_LABELS, 0)
        self.mdc: dict[str, int] = {}
        self.drg: dict[str, int] = {}
        self.bits = [(f.name, int(f)) for f in Flag]
        self.flags = np.zeros(len(self.bits), np.int64)
        self._dictionaries: dict[str, tuple] = {}  # column -> (buffer key, dictionary, its values)

    def add(self, b: pa.RecordBatch) -> None:
        for name, into in (("status", self.status), ("mdc", self.mdc), ("drg", self.drg)):
            col = b.column(name)
            if pa.types.is_dictionary(col.type) and col.null_count == 0:
                # the grouper's output: count dictionary positions, then name the used ones
                idx = col.indices.to_numpy()
                d = col.dictionary
                n = count_indices(idx, len(d)) if idx.dtype == np.int32 else np.bincount(idx, minlength=len(d))
                used = np.flatnonzero(n)
                # a few used values by scalar, many from the dictionary's values read once (no
                # pyarrow.compute: its import is a tenth of a small run)
                values = [d[i].as_py() for i in used.tolist()] if len(used) <= 64 else self._values(name, d, used)
                counts = n[used].tolist()
            else:
                vc = pc.value_counts(col)  # one entry per distinct value
                values, counts = vc.field("values").to_pylist(), vc.field("counts").to_pylist()
            for v, c in zip(values, counts):
                into[v] = into.get(v, 0) + c
        flags = b.column("flags").to_numpy(zero_copy_only=False)
        flagged = flags[flags != 0]  # few rows: each bit is counted over those only
        if flagged.size:
            self.flags += [np.count_nonzero(flagged & bit) for _, bit in self.bits]

    def _values(self, name: str, d: pa.Array, used: np.ndarray) -> list:
        """The values of ``d`` at ``used``. Every batch of the grouper brings the same dictionary
        (the same buffers): its values are read into Python once and kept with it."""
        key = (len(d), d.offset, *(None if x is None else x.address for x in d.buffers()))
        kept = self._dictionaries.get(name)
        if kept is None or kept[0] != key:
            kept = (key, d, d.to_pylist())  # ``d`` kept: its buffers, the key's addresses, stay alive
            self._dictionaries[name] = kept
        values = kept[2]
        return [values[i] for i in used.tolist()]

    def flag_counts(self) -> dict[str, int]:
        return {name: int(c) for (name, _), c in zip(self.bits, self.flags)}

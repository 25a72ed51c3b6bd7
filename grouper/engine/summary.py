"""What a grouping run did: counts of grouped batches by status, MDC, DRG and flag bit, added
up with vector operations, and the run summary that ``drg group`` prints and reports."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc
from grouper._util.version import __version__
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

    def add(self, b: pa.RecordBatch) -> None:
        for name, into in (("status", self.status), ("mdc", self.mdc), ("drg", self.drg)):
            col = b.column(name)
            if pa.types.is_dictionary(col.type) and col.null_count == 0:
                # the grouper's output: count dictionary positions, then name the used ones
                n = np.bincount(col.indices.to_numpy(), minlength=len(col.dictionary))
                used = np.flatnonzero(n)
                d = col.dictionary
                # a few used values by scalar (no pyarrow.compute for a small run: start-up)
                values = [d[i].as_py() for i in used.tolist()] if len(used) <= 64 else d.take(used).to_pylist()
                counts = n[used].tolist()
            else:
                vc = pc.value_counts(col)  # one entry per distinct value
                values, counts = vc.field("values").to_pylist(), vc.field("counts").to_pylist()
            for v, c in zip(values, counts):
                into[v] = into.get(v, 0) + c
        flags = b.column("flags").to_numpy(zero_copy_only=False)
        if flags.any():
            self.flags += [np.count_nonzero(flags & bit) for _, bit in self.bits]

    def flag_counts(self) -> dict[str, int]:
        return {name: int(c) for (name, _), c in zip(self.bits, self.flags)}

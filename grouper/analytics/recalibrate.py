"""Recalibration experiments: two weight sets side by side, on the same cases.

A bureau that recalibrates asks three things before it publishes: which groups move (per DRG,
absolute and relative change of RW), what the new weights cost (total weight Σ n·RW under each
set on the same cases, the budget impact at a fixed base rate), and whom they move (each
hospital's CMI and total weight under each set). A side is either a weights table (e.g. last
year's published weights) or a trimming rule computed from the cases themselves. The cases are
read once: each batch feeds a ``CostSample`` (when a side is computed) and ``IndexCells``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import pyarrow as pa

from grouper._util.lazy import pc
from grouper.analytics.indices import IndexCells
from grouper.analytics.weights import CostSample, WeightOptions, compare_weights
from grouper.io import DEFAULT_BATCH

__all__ = ["Recalibration", "recalibrate", "recalibrate_files"]


@dataclass
class Recalibration:
    comparison: pa.Table  # drg, rw_a, rw_b, change, relative_change, cases, total_weight_a/_b
    hospitals: pa.Table  # hospital, cases, cmi_a, cmi_b, cmi_change, total_weight_a/_b/_change
    weights_a: pa.Table
    weights_b: pa.Table
    excluded: dict[str, int]  # rows of the cases left out of the counts, by reason

    def budget(self) -> dict[str, float]:
        """Total weight under each set on the same cases, and the relative change."""
        a = pc.sum(self.comparison["total_weight_a"]).as_py() or 0.0
        b = pc.sum(self.comparison["total_weight_b"]).as_py() or 0.0
        return {"total_weight_a": a, "total_weight_b": b, "change": b - a,
                "relative_change": (b - a) / a if a else None}


Side = pa.Table | WeightOptions


def recalibrate(cells: IndexCells, a: Side, b: Side, sample: CostSample | None = None) -> Recalibration:
    """Compare sides ``a`` and ``b`` (weights tables, or ``WeightOptions`` computed on ``sample``)
    over the cases in ``cells``."""
    tables = []
    for side in (a, b):
        if isinstance(side, WeightOptions):
            if sample is None:
                raise ValueError("a side computed from the cases needs their CostSample")
            side = sample.weights(side).table
        if not {"drg", "rw"} <= set(side.column_names):
            raise ValueError("a weights table needs columns drg and rw")
        tables.append(side)
    wa, wb = (_weights(t) for t in tables)
    drgs, cases, _ = cells.drg_counts()
    counts = dict(zip(drgs.to_pylist(), cases.tolist()))
    comparison = compare_weights(tables[0], tables[1], counts)
    # both sides over the same cases: those whose DRG both sides weigh
    ta, excluded = cells.indices(_restricted(wa, wb))
    tb, _ = cells.indices(_restricted(wb, wa))
    hospitals = pa.table({
        "hospital": ta["hospital"], "cases": ta["cases"],
        "cmi_a": ta["cmi"], "cmi_b": tb["cmi"], "cmi_change": pc.subtract(tb["cmi"], ta["cmi"]),
        "total_weight_a": ta["total_weight"], "total_weight_b": tb["total_weight"],
        "total_weight_change": pc.subtract(tb["total_weight"], ta["total_weight"]),
    })
    return Recalibration(comparison, hospitals, tables[0], tables[1], excluded)


def _weights(t: pa.Table) -> dict[str, float]:
    return {d: w for d, w in zip(t["drg"].to_pylist(), t["rw"].to_pylist()) if w is not None}


def _restricted(w: Mapping[str, float], other: Mapping[str, float]) -> dict[str, float]:
    """``w`` on the DRGs both sides weigh, so that a hospital's CMI compares like with like."""
    return {d: v for d, v in w.items() if d in other}


def recalibrate_files(grouper, inputs, a: Side, b: Side, *, hospital: str = "hospital_id",
                      cost: str = "total_cost", los: str = "los", discharge: str = "discharge",
                      batch_size: int = DEFAULT_BATCH, regroup: bool = False) -> Recalibration:
    """Stream case files once through the grouper and compare the two sides on them."""
    from grouper.analytics.grouped import grouped_batches

    computed = any(isinstance(s, WeightOptions) for s in (a, b))
    cells = IndexCells(hospital=hospital, cost=cost, los=los, discharge=discharge)
    sample = CostSample(cost=cost, los=los) if computed else None
    for batch in grouped_batches(grouper, inputs, [hospital, cost, los, discharge],
                                 columns=("status", "adrg", "drg") if computed else ("status", "drg"),
                                 batch_size=batch_size, what="the recalibration", regroup=regroup):
        cells.add(batch)
        if sample is not None:
            sample.add(batch)
    return recalibrate(cells, a, b, sample)

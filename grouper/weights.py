"""Relative weights (相对权重, RW) from grouped cases with costs, and the quality of a grouping.

RW_g = trimmed mean cost of DRG g / trimmed mean cost of all cases (CHS-DRG technical
specification; formulas and the worked example in the project's domain notes, section 2).
Trimming is per DRG and selectable, because no single national rule exists: ``none``,
``iqr:k`` (Tukey fences on linear-interpolated quartiles), ``sdlog:k`` (mean ± k SD of ln cost),
``pct:lo-hi`` (percentiles). Several years can be weighted (e.g. 1:2:7, oldest to newest).
Groups with fewer than ``min_cases`` kept cases are flagged ``thin`` and take the pooled weight
of their ADRG when the pool is big enough. Weights are renormalised so that the base data's CMI
is exactly 1. Everything is vectorised: one sort, then per-group reductions with NumPy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["WeightOptions", "WeightResult", "compute_weights", "renormalize", "compare_weights", "attach_weights"]


@dataclass(frozen=True)
class WeightOptions:
    trim: str = "iqr:1.5"
    min_cases: int = 5  # fewer kept cases: flagged thin, pooled at ADRG level where possible
    year_weights: Mapping[int, float] = field(default_factory=dict)  # {2022: 1, 2023: 2, 2024: 7}
    cv_max: float = 1.0  # quality: a group is stable when n > stable_min_n and CV <= cv_max
    stable_min_n: int = 5
    renormalize: bool = True

    def trim_rule(self) -> tuple[str, tuple[float, ...]]:
        m = re.fullmatch(r"(none)|(iqr|sdlog):([0-9.]+)|pct:([0-9.]+)-([0-9.]+)", self.trim)
        if not m:
            raise ValueError(f"trim {self.trim!r}: use none, iqr:K, sdlog:K or pct:LO-HI")
        if m[1]:
            return "none", ()
        if m[2]:
            return m[2], (float(m[3]),)
        lo, hi = float(m[4]), float(m[5])
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"trim {self.trim!r}: percentiles must satisfy 0 <= LO < HI <= 100")
        return "pct", (lo, hi)


@dataclass
class WeightResult:
    table: pa.Table  # drg, adrg, n, n_trimmed, mean_cost, rw, cv, mean_los, stable, flags
    mean_cost: float  # the overall (trimmed, year-weighted) mean cost per case
    riv: float  # 1 - SSW/SST over the kept cases
    excluded: dict[str, int]  # rows left out before trimming, by reason

    def weights(self) -> dict[str, float]:
        return dict(zip(self.table["drg"].to_pylist(), self.table["rw"].to_pylist()))


def _col(table: pa.Table, name: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise ValueError(f"no column {name!r} in the grouped data")
    col = table.column(name)
    return col.cast(pa.string()) if pa.types.is_dictionary(col.type) else col


def _codes(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(int codes per row, distinct values): dictionary indices, never a string per row."""
    if name not in table.column_names:
        raise ValueError(f"no column {name!r} in the grouped data")
    col = table.column(name)
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    col = col.unify_dictionaries() if isinstance(col, pa.ChunkedArray) else pa.chunked_array([col])
    if col.num_chunks == 0:
        return np.zeros(0, np.int64), np.array([], dtype=object)
    values = np.array(col.chunk(0).dictionary.cast(pa.string()).to_pylist(), dtype=object)
    idx = np.concatenate([c.indices.fill_null(-1).to_numpy(zero_copy_only=False) for c in col.chunks]).astype(np.int64)
    order = np.argsort(values.astype(str), kind="stable")  # codes in sorted-value order: row order never matters
    rank = np.empty(len(values), np.int64)
    rank[order] = np.arange(len(values))
    return np.where(idx >= 0, rank[np.maximum(idx, 0)], -1), values[order]


def _quantiles(sorted_vals: np.ndarray, starts: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    """Per-group quantile with linear interpolation (numpy's default) on group-sorted values."""
    pos = q * (counts - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, counts - 1)
    frac = pos - lo
    return sorted_vals[starts + lo] * (1 - frac) + sorted_vals[starts + hi] * frac


def compute_weights(table: pa.Table, options: WeightOptions = WeightOptions(), *, drg: str = "drg",
                    adrg: str = "adrg", cost: str = "total_cost", los: str | None = "los",
                    year: str | None = None, status: str = "status") -> WeightResult:
    """Weights from grouped cases (the output of ``Grouper.group`` with cost columns kept)."""
    kind, params = options.trim_rule()
    n_rows = table.num_rows
    st_idx, st_values = _codes(table, status)
    keep = st_idx == (list(st_values).index("grouped") if "grouped" in st_values else -2)
    excluded = {"not_grouped": int((~keep).sum())}
    c = pc.cast(_col(table, cost), pa.float64()).to_numpy(zero_copy_only=False)
    missing = np.isnan(c) & keep
    excluded["missing_cost"] = int(missing.sum())
    nonpos = (c <= 0) & keep & ~missing
    excluded["non_positive_cost"] = int(nonpos.sum())
    keep &= ~missing & ~nonpos
    stay = None
    if los is not None and los in table.column_names:
        stay = pc.cast(_col(table, los), pa.float64()).to_numpy(zero_copy_only=False)
        bad_los = keep & ~(stay > 0)
        excluded["non_positive_or_missing_los"] = int(bad_los.sum())
        keep &= ~bad_los
    w = np.ones(n_rows)
    if options.year_weights:
        if year is None:
            raise ValueError("year_weights given without a year column")
        y = pc.cast(_col(table, year), pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)
        years, inv = np.unique(y, return_inverse=True)  # a lookup per distinct year
        w = np.array([float(options.year_weights.get(int(v), 0.0)) for v in years])[inv]
        other_year = keep & (w == 0)
        excluded["year_without_weight"] = int(other_year.sum())
        keep &= ~other_year

    d_idx, d_values = _codes(table, drg)
    a_idx, a_values = _codes(table, adrg) if adrg in table.column_names else (d_idx, d_values)
    d_idx, a_idx = d_idx[keep], a_idx[keep]
    c, w = c[keep], w[keep]
    stay = stay[keep] if stay is not None else None
    used, gid = np.unique(d_idx, return_inverse=True)  # integer work; names looked up per group
    names = d_values[used] if len(used) else np.array([], dtype=object)
    adrgs = a_idx
    # one sort (group, cost, weight): every sum below then runs in the same order whatever the
    # row order of the input, so results do not depend on it even in the last bit
    order = np.lexsort((w, c, gid))
    gid, c, w, adrgs = gid[order], c[order], w[order], adrgs[order]
    stay = stay[order] if stay is not None else None
    gid_s, c_s = gid, c
    counts = np.bincount(gid_s, minlength=len(names))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))

    lo = np.full(len(names), -np.inf)
    hi = np.full(len(names), np.inf)
    if kind == "iqr":
        q1, q3 = _quantiles(c_s, starts, counts, 0.25), _quantiles(c_s, starts, counts, 0.75)
        lo, hi = q1 - params[0] * (q3 - q1), q3 + params[0] * (q3 - q1)
    elif kind == "pct":
        lo, hi = _quantiles(c_s, starts, counts, params[0] / 100), _quantiles(c_s, starts, counts, params[1] / 100)
    elif kind == "sdlog":
        lc = np.log(c)
        n = np.bincount(gid, minlength=len(names))
        mu = np.bincount(gid, lc, len(names)) / n
        var = np.bincount(gid, (lc - mu[gid]) ** 2, len(names)) / np.maximum(n - 1, 1)
        sd = np.sqrt(var)
        # compared in log space, with a hair of tolerance: equal costs must stay in
        inside = np.abs(lc - mu[gid]) <= params[0] * sd[gid] + 1e-9
    if kind != "sdlog":  # a relative hair of tolerance: a cost equal to a fence stays in at any scale
        tol = 1e-12 * np.abs(c)
        inside = (c >= lo[gid] - tol) & (c <= hi[gid] + tol)
    # a rule that would trim a whole (tiny) group away keeps it untrimmed instead
    emptied = np.flatnonzero((np.bincount(gid[inside], minlength=len(names)) == 0) & (np.bincount(gid, minlength=len(names)) > 0))
    inside |= np.isin(gid, emptied)

    n_all = np.bincount(gid, minlength=len(names))
    g_in, c_in, w_in = gid[inside], c[inside], w[inside]
    n_in = np.bincount(g_in, minlength=len(names))
    wsum = np.bincount(g_in, w_in, len(names))
    mean_g = np.bincount(g_in, w_in * c_in, len(names)) / np.where(wsum > 0, wsum, 1)
    var_g = np.bincount(g_in, w_in * (c_in - mean_g[g_in]) ** 2, len(names)) / np.where(wsum > 0, wsum, 1)
    cv = np.sqrt(var_g) / np.where(mean_g > 0, mean_g, 1)  # population SD, as the worked example
    overall = float((w_in * c_in).sum() / w_in.sum()) if len(c_in) else float("nan")
    rw = mean_g / overall
    mean_los = (np.bincount(g_in, w_in * stay[inside], len(names)) / np.where(wsum > 0, wsum, 1)
                if stay is not None else np.full(len(names), np.nan))

    # thin groups take their ADRG's pooled weight where the pool is large enough
    flags = [["untrimmed_all_outside"] if i in set(emptied.tolist()) else [] for i in range(len(names))]
    first = np.unique(gid, return_index=True)[1]  # the ADRG of each DRG: that of its first case
    adrg_of = {int(g): a_values[adrgs[i]] for g, i in zip(gid[first], first)}
    adrg_names, agid = np.unique([adrg_of[i] for i in range(len(names))], return_inverse=True)
    a_n = np.bincount(agid[g_in], minlength=len(adrg_names))
    a_w = np.bincount(agid[g_in], w_in, len(adrg_names))
    a_mean = np.bincount(agid[g_in], w_in * c_in, len(adrg_names)) / np.where(a_w > 0, a_w, 1)
    for i in np.flatnonzero(n_in < options.min_cases):
        flags[i].append("thin")
        if a_n[agid[i]] >= options.min_cases:
            rw[i] = a_mean[agid[i]] / overall
            flags[i].append("pooled_adrg")
    if options.renormalize:
        rw = renormalize(rw, n_in)

    # grouping quality: RIV over kept cases (year-weighted sums of squares)
    sst = float((w_in * (c_in - overall) ** 2).sum())
    ssw = float((w_in * (c_in - mean_g[g_in]) ** 2).sum())
    riv = 1 - ssw / sst if sst > 0 else float("nan")
    stable = (n_in > options.stable_min_n) & (cv <= options.cv_max)
    for i in np.flatnonzero(~stable):
        flags[i].append("unstable")
    out = pa.table({
        "drg": pa.array(names.astype(object).tolist(), pa.string()),
        "adrg": pa.array([adrg_of[i] for i in range(len(names))], pa.string()),
        "n": pa.array(n_in.astype(np.int64)),
        "n_trimmed": pa.array((n_all - n_in).astype(np.int64)),
        "mean_cost": pa.array(np.round(mean_g, 2)),
        "rw": pa.array(np.round(rw, 4)),
        "cv": pa.array(np.round(cv, 4)),
        "mean_los": pa.array(np.round(mean_los, 2)),
        "stable": pa.array(stable),
        "flags": pa.array([";".join(f) for f in flags], pa.string()),
    })
    return WeightResult(out, overall, riv, excluded)


def renormalize(rw: np.ndarray, n: np.ndarray) -> np.ndarray:
    """RW' = RW · Σn / Σ(n·RW): the case-weighted mean weight (the base data's CMI) becomes 1, so
    policy adjustments (uplifts, caps, pooling) do not leak the budget."""
    rw, n = np.asarray(rw, float), np.asarray(n, float)
    total = (n * rw).sum()
    return rw * n.sum() / total if total > 0 else rw


def attach_weights(grouped: pa.Table, weights: Mapping[str, float] | pa.Table, *, drg: str = "drg") -> pa.Table:
    """``grouped`` with an ``rw`` column (null where the DRG has no weight, e.g. 0000 or QY)."""
    if isinstance(weights, pa.Table):
        weights = dict(zip(weights["drg"].to_pylist(), weights["rw"].to_pylist()))
    col = grouped.column(drg).combine_chunks()
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    values = pa.array([weights.get(v) for v in col.dictionary.to_pylist()], pa.float64())  # once per DRG
    return grouped.append_column("rw", pc.take(values, col.indices))


def compare_weights(a: pa.Table, b: pa.Table, counts: Mapping[str, int] | None = None) -> pa.Table:
    """Per DRG: rw under a and b, change and relative change; with case ``counts``, the total
    weight (budget) under each. A recalibration experiment in one table."""
    wa = dict(zip(a["drg"].to_pylist(), a["rw"].to_pylist()))
    wb = dict(zip(b["drg"].to_pylist(), b["rw"].to_pylist()))
    drgs = sorted(set(wa) | set(wb))
    ra = np.array([wa.get(d, np.nan) for d in drgs])
    rb = np.array([wb.get(d, np.nan) for d in drgs])
    cols = {"drg": drgs, "rw_a": ra, "rw_b": rb, "change": rb - ra, "relative_change": (rb - ra) / ra}
    if counts is not None:
        n = np.array([counts.get(d, 0) for d in drgs], float)
        cols["cases"] = n
        cols["total_weight_a"] = np.nan_to_num(ra) * n
        cols["total_weight_b"] = np.nan_to_num(rb) * n
    return pa.table(cols)


def weights_from_files(grouper, inputs, options: WeightOptions = WeightOptions(), *, cost: str = "total_cost",
                       los: str | None = "los", year: str | None = None, batch_size: int = 65_536) -> WeightResult:
    """Group case files (CSV/Parquet/Arrow, streamed) and compute weights from them. Only the
    status, ADRG and DRG (dictionary indices) and the cost/LOS/year columns are kept in memory."""
    from .io import CANONICAL_COLUMNS, expand_inputs, open_source, plan_columns, read_columns

    parts = []
    for path in expand_inputs(inputs):
        s = open_source(path, batch_size=batch_size)
        plan = plan_columns(s.schema, None, "auto", s.path)
        names = plan.schema(s.schema).names
        extra = [c for c in (cost, los, year) if c and c in names]
        if cost not in names:
            raise ValueError(f"{path}: no cost column {cost!r} (choose it with --cost-column)")
        if year and year not in names:
            raise ValueError(f"{path}: no year column {year!r}")
        s.columns = read_columns(s.schema, plan, {*CANONICAL_COLUMNS, *extra})
        for b in s.batches:
            parts.append(grouper.group_batch(plan.apply(b), columns=("status", "adrg", "drg"), keep=extra))
    table = pa.Table.from_batches(parts) if parts else pa.table({"status": [], "adrg": [], "drg": [], cost: []})
    return compute_weights(table, options, cost=cost, los=los if los in table.column_names else None, year=year)

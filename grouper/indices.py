"""Hospital evaluation indices over grouped cases: CMI, cost and time consumption, risk mortality.

The indices of the CHS-DRG hospital evaluation (医疗服务能力、效率与安全评价). For a hospital h
and a DRG g, with n cases, e and t the hospital's mean cost and length of stay in g, and E and T
the means of g over every hospital in the data (the peer / regional means):

- DRG count (DRG 组数): groups with at least one case, the breadth of services;
- total weight TW = Σ_g RW_g·n_g and CMI = TW / Σ_g n_g, how heavy the case mix is;
- cost consumption index (费用消耗指数) Σ_g (e_g/E_g)·n_g / Σ_g n_g and time consumption index
  (时间消耗指数), the same with t and T: 1 is the regional level for the same case mix, below 1
  cheaper or shorter;
- low- and mid-low-risk mortality (低风险 / 中低风险组死亡率): deaths among the cases of the DRGs
  whose base-period mortality is low (``risk_tiers``); deaths there suggest avoidable harm.

Which cases count: only status ``grouped``, with a cost, a length of stay >= 0 and a DRG that has a
weight. Other rows are left out and counted by reason, each under the first reason that applies,
in the order of ``EXCLUSION_REASONS``. Hospitals, departments and DRGs become integer codes and
every sum is an ``np.bincount``: no Python loop per case (one per distinct DRG, for the weights).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["EXCLUSION_REASONS", "TIERS", "hospital_indices", "risk_tiers"]

TIERS = ("low", "mid-low", "mid-high", "high")
EXCLUSION_REASONS = ("not_grouped", "null_cost", "null_or_negative_los", "no_weight")


def _text(col) -> pa.Array:
    """A text column (dictionary-encoded and chunked, as the grouper writes it) as one string array."""
    arr = pc.cast(col, pa.string())
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _codes(col) -> tuple[pa.Array, np.ndarray]:
    """(sorted distinct values, each row's position among them): keys for np.bincount.
    Sorted so that the output does not depend on the order of the rows."""
    enc = pc.dictionary_encode(_text(col), null_encoding="encode")
    order = pc.array_sort_indices(enc.dictionary).to_numpy()
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return enc.dictionary.take(order), rank[enc.indices.to_numpy(zero_copy_only=False)]


def _deaths(col, death_codes: Sequence[str]) -> np.ndarray:
    """Discharge status (离院方式) in ``death_codes`` ('5' = 死亡); missing is not a death."""
    codes = pa.array([str(c) for c in death_codes], pa.string())
    return pc.is_in(_text(col), value_set=codes).to_numpy(zero_copy_only=False)


def _grouped(table: pa.Table, status: str) -> np.ndarray:
    return pc.fill_null(pc.equal(_text(table[status]), "grouped"), False).to_numpy(zero_copy_only=False)


def _numbers(col) -> np.ndarray:
    return pc.cast(col, pa.float64()).to_numpy()  # nulls become NaN


def risk_tiers(table: pa.Table, *, drg: str = "drg", discharge: str = "discharge",
               death_codes: Sequence[str] = ("5",), status: str | None = "status",
               cuts: Sequence[float] = (-1.0, 0.0, 1.0), ddof: int = 0,
               zero_death_tier: str = "low") -> pa.Table:
    """Each DRG's mortality m = deaths / cases over the base data, its z-score and risk tier.

    z = (ln m - mean(ln m)) / sd(ln m) over the DRGs with deaths: group mortality is heavily
    skewed, its logarithm is not. ``ddof=0`` is the population sd (the CHS-DRG evaluation's
    choice; 1 gives the sample sd); when the sd is 0 (one DRG with deaths, or all equal) z is 0.
    Tiers: z < cuts[0] low, < cuts[1] mid-low, < cuts[2] mid-high, else high. DRGs without deaths
    have no z (no logarithm) and go to ``zero_death_tier``: a tier name, or "exclude" for none.
    Only rows with status 'grouped' count (``status=None``: every row).
    Columns: drg, cases, deaths, mortality, z, tier.
    """
    if zero_death_tier not in (*TIERS, "exclude"):
        raise ValueError(f"zero_death_tier must be one of {TIERS} or 'exclude', not {zero_death_tier!r}")
    if len(cuts) != 3 or list(cuts) != sorted(cuts):
        raise ValueError(f"cuts must be three increasing z values, not {cuts!r}")
    if status is not None:
        table = table.filter(_grouped(table, status))
    labels, g = _codes(table[drg])
    cases = np.bincount(g, minlength=len(labels))
    deaths = np.bincount(g, _deaths(table[discharge], death_codes), len(labels)).astype(np.int64)
    mortality = deaths / np.maximum(cases, 1)
    pos = deaths > 0
    z = np.full(len(labels), np.nan)
    if pos.any():
        lm = np.log(mortality[pos])
        sd = lm.std(ddof=ddof) if pos.sum() > ddof else 0.0
        z[pos] = (lm - lm.mean()) / sd if sd > 0 else 0.0
    tier = np.array(TIERS, object)[np.digitize(np.nan_to_num(z), cuts)]
    tier[~pos] = None if zero_death_tier == "exclude" else zero_death_tier
    return pa.table({"drg": labels, "cases": cases, "deaths": deaths, "mortality": mortality,
                     "z": pa.array(z, mask=~pos), "tier": pa.array(tier, pa.string())})


def hospital_indices(table: pa.Table, weights: Mapping[str, float], *, hospital: str = "hospital_id",
                     drg: str = "drg", cost: str = "total_cost", los: str = "los",
                     discharge: str = "discharge", death_codes: Sequence[str] = ("5",),
                     status: str = "status", department: str | None = None,
                     tiers: pa.Table | None = None) -> tuple[pa.Table, dict[str, int]]:
    """The evaluation indices of every hospital (or hospital x department, with ``department``).

    ``table``: grouped cases (``Grouper.group(data, keep=[hospital, cost, los, discharge, ...])``);
    ``weights``: RW per DRG code. E and T are the means of each DRG over all hospitals in
    ``table`` after the exclusions (for a department too: its peers are every hospital); a DRG
    whose cases all have cost (or stay) 0 gives ratio 1. ``tiers``: a ``risk_tiers`` table of
    the base period; by default computed from the cases that count here, with its defaults. DRGs
    missing from ``tiers`` are in no tier.

    Returns ``(indices, excluded)``: one row per unit, sorted, with columns hospital
    [department] cases drg_count total_weight cmi cost_index time_index, and for the low and
    mid-low tiers {low,midlow}_risk_{cases,deaths,mortality} (mortality null without such cases);
    and the rows left out, by reason (``EXCLUSION_REASONS``: each row under its first reason).
    """
    drgs, g = _codes(table[drg])
    w = np.array([weights.get(code) for code in drgs.to_pylist()], np.float64)  # None -> NaN
    c, t = _numbers(table[cost]), _numbers(table[los])
    bad = (~_grouped(table, status), np.isnan(c), ~(t >= 0), np.isnan(w[g]))
    excluded, keep = {}, np.ones(table.num_rows, bool)
    for reason, rows in zip(EXCLUSION_REASONS, bad):
        excluded[reason] = int((keep & rows).sum())
        keep &= ~rows
    kept = table.filter(keep)
    g, c, t = g[keep], c[keep], t[keep]

    hospitals, u = _codes(kept[hospital])
    width = 1
    if department is not None:
        departments, d = _codes(kept[department])
        width = max(len(departments), 1)
        u = u * width + d  # lexicographic: hospital, then department
    units, u = np.unique(u, return_inverse=True)
    n_units, n_drgs = len(units), len(drgs)
    cases = np.bincount(u, minlength=n_units)
    per_case = np.maximum(cases, 1)
    out = {"hospital": hospitals.take(units // width)}
    if department is not None:
        out["department"] = departments.take(units % width)
    total_weight = np.bincount(u, w[g], n_units)
    out |= {"cases": cases, "drg_count": np.bincount(np.unique(u * n_drgs + g) // n_drgs, minlength=n_units),
            "total_weight": total_weight, "cmi": total_weight / per_case}
    drg_cases = np.maximum(np.bincount(g, minlength=n_drgs), 1)
    for name, x in (("cost_index", c), ("time_index", t)):
        peer = (np.bincount(g, x, n_drgs) / drg_cases)[g]  # E_g or T_g, per case
        ratio = np.divide(x, peer, out=np.ones_like(x), where=peer > 0)
        out[name] = np.bincount(u, ratio, n_units) / per_case  # Σ_g (e/E)·n = Σ_cases x/E

    if tiers is None:
        tiers = risk_tiers(kept, drg=drg, discharge=discharge, death_codes=death_codes, status=None)
    dead = _deaths(kept[discharge], death_codes)
    tier_of = _text(tiers["tier"])
    for prefix, tier in (("low_risk", "low"), ("midlow_risk", "mid-low")):
        members = _text(tiers["drg"]).filter(pc.fill_null(pc.equal(tier_of, tier), False))
        inside = pc.is_in(drgs, value_set=members).to_numpy(zero_copy_only=False)[g]
        n = np.bincount(u, inside, n_units).astype(np.int64)
        k = np.bincount(u, inside & dead, n_units).astype(np.int64)
        out |= {f"{prefix}_cases": n, f"{prefix}_deaths": k,
                f"{prefix}_mortality": pa.array(k / np.maximum(n, 1), mask=n == 0)}
    return pa.table(out), excluded


def indices_from_files(grouper, inputs, weights, *, hospital: str = "hospital_id", cost: str = "total_cost",
                       los: str = "los", discharge: str = "discharge", department: str | None = None,
                       death_codes=("5",), batch_size: int = 65_536):
    """Group case files (streamed) and compute the indices; keeps only the columns needed."""
    from .io import CANONICAL_COLUMNS, expand_inputs, open_source, plan_columns, read_columns

    need = [c for c in (hospital, cost, los, discharge, department) if c]
    parts = []
    for path in expand_inputs(inputs):
        s = open_source(path, batch_size=batch_size)
        plan = plan_columns(s.schema, None, "auto", s.path)
        names = plan.schema(s.schema).names
        missing = [c for c in need if c not in names]
        if missing:
            raise ValueError(f"{path}: missing column(s) for the indices: {', '.join(missing)}")
        s.columns = read_columns(s.schema, plan, {*CANONICAL_COLUMNS, *need})
        for b in s.batches:
            parts.append(grouper.group_batch(plan.apply(b), columns=("status", "drg"), keep=need))
    table = pa.Table.from_batches(parts)
    return hospital_indices(table, weights, hospital=hospital, cost=cost, los=los, discharge=discharge,
                            death_codes=death_codes, department=department)


def cmi_shift(table: pa.Table, weights_a, weights_b, *, hospital: str = "hospital_id", **kw) -> pa.Table:
    """A recalibration experiment per hospital: CMI and total weight under two weight sets
    (e.g. two trimming rules, or two years), and the change."""
    a, _ = hospital_indices(table, weights_a, hospital=hospital, **kw)
    b, _ = hospital_indices(table, weights_b, hospital=hospital, **kw)
    return pa.table({
        "hospital": a["hospital"], "cases": a["cases"],
        "cmi_a": a["cmi"], "cmi_b": b["cmi"], "cmi_change": pc.subtract(b["cmi"], a["cmi"]),
        "total_weight_a": a["total_weight"], "total_weight_b": b["total_weight"],
        "total_weight_change": pc.subtract(b["total_weight"], a["total_weight"]),
    })

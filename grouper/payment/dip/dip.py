"""DIP (按病种分值付费): catalogue from historical cases, scores, point values, outliers, settlement.

The method of the national technical specification (医保办发〔2020〕50号, 2.0: 医保办发〔2024〕9号)
as the project's domain notes (section 5) describe it; docs/dip.md is the user's guide.

- Catalogue: every principal diagnosis (亚目) x principal procedure combination in the base data;
  those with at least ``core_min_n`` cases are core groups (核心病种), the rest are pooled into
  comprehensive groups (综合病种) by ICD-10 category x treatment type, and where a pool is still
  thinner than ``comprehensive_min_n``, by ICD-10 chapter x treatment type (``grouper.dip_keys``).
- Score: RW_i = m_i / M times ``score_scale``, the means being year means weighted 1:2:7 (oldest
  to newest) over the years each group has cases; costs may be trimmed per group first.
- Point values: budget PV_b = year-weighted annual cost / Σ(score x year-weighted cases);
  settlement PV_s = (fund budget / fund payout ratio) / Σ points of the settled cases.
- Per case: x = cost / the group's mean cost (same hospital level, or region) in the newest base
  year; x < low_x pays score·x, x > high_x pays score·((x − high_x) + 1), x > extreme_x is flagged
  for expert review; points = that score x level coefficient (1 for 基层病种); amount = points x PV.

Money is summed in fen and points in 1e-4 units as integers, so every total, and therefore every
case's amount, is the same whatever the row order. Work is vectorised per batch (NumPy and
pyarrow.compute); code strings are handled once per distinct value.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper.payment.dip.keys import (
    BAD_COST,
    ICD10_CHAPTERS,
    NO_COST,
    NO_LEVEL,
    SETTLED,
    STATUSES,
    TREATMENT_TYPES,
    Assigner,
    BaseCases,
    Columns,
    ProcedureTypes,
    Vocab,
    batches,
    chapter_of,
    column,
    diagnosis_parts,
    file_batches,
    numbers,
    text_ids,
)

__all__ = ["DipParams", "Columns", "Catalogue", "ProcedureTypes", "build_catalogue", "catalogue_from_files",
           "assign", "assign_files", "settle", "settle_table", "settle_files", "Settlement",
           "settlement_point_value", "STATUSES", "ASSIGN_STATUSES", "CASE_TYPES", "GROUP_TYPES", "TREATMENT_TYPES"]

CASE_TYPES = ("normal", "low", "high", "extreme")  # 正常, 费用超低, 费用超高, 极端异常 (expert review)
GROUP_TYPES = ("core", "comprehensive", "comprehensive_chapter")
_MAX_AMOUNT = 1e12  # payment_pack.MAX_AMOUNT: no case costs more (yuan)
_UNIT = 10_000  # points are kept to 4 decimals and summed as integers of 1e-4 points
DEFAULT_COLUMNS = Columns()


def _num(v, key: str, *, lo: float | None = None, lo_open: bool = False, hi: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{key}: expected a number, got {v!r}")
    if lo is not None and (v < lo or (lo_open and v == lo)) or hi is not None and v > hi:
        rng = f"{'>' if lo_open else '>='} {lo}" if hi is None else f"between {lo} and {hi}"
        raise ValueError(f"{key}: {v!r} must be {rng}")
    return float(v)


@dataclass(frozen=True)
class DipParams:
    """The ``[dip]`` table of a payment pack; every number is local ([L] in the domain notes).
    Construction validates; errors name the key (``dip.low_x``)."""

    score_scale: float = 1000.0
    core_min_n: int = 15
    comprehensive_min_n: int | None = None  # None: the same as core_min_n
    year_weights: tuple[float, ...] | Mapping[int, float] = (1.0, 2.0, 7.0)  # oldest -> newest, or {year: w}
    trim: str = "none"  # per group before the means: none, iqr:K, sdlog:K, pct:LO-HI
    low_x: float = 0.5
    high_x: float = 2.0
    extreme_x: float = 5.0
    extreme_payment: str = "high"  # high: paid as a high outlier until reviewed; score; hold: no points yet
    outlier_base: str = "level_mean"  # or group_mean: the denominator of x
    fund_budget: float | None = None
    fund_ratio: float | None = None
    point_value: float | None = None  # a fixed settlement point value instead of PV_s
    special_review_cap: float = 0.005
    level_coef: Mapping[str, float] | str = "derived"  # table, "derived" (from the catalogue) or "none"
    basic_groups: tuple[str, ...] = ()  # 基层病种: catalogue group keys paid with coefficient 1

    def __post_init__(self):
        k = "dip."
        from grouper.payment.pack import MAX_AMOUNT, MAX_FACTOR, MAX_RATE

        _num(self.score_scale, k + "score_scale", lo=0, lo_open=True, hi=MAX_RATE)
        for name in ("core_min_n", "comprehensive_min_n"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{k}{name}: expected a whole number >= 1, got {v!r}")
        yw = self.year_weights
        if isinstance(yw, Mapping):
            if not yw:
                raise ValueError(f"{k}year_weights: empty")
            for y, w in yw.items():
                if isinstance(y, bool) or not isinstance(y, int):
                    raise ValueError(f"{k}year_weights: year {y!r} is not a whole number")
                _num(w, f"{k}year_weights.{y}", lo=0, lo_open=True, hi=MAX_FACTOR)
        elif isinstance(yw, (list, tuple)) and yw:
            for i, w in enumerate(yw):
                _num(w, f"{k}year_weights[{i}]", lo=0, lo_open=True, hi=MAX_FACTOR)
            object.__setattr__(self, "year_weights", tuple(float(w) for w in yw))
        else:
            raise ValueError(f"{k}year_weights: expected a list of weights (oldest to newest) "
                             "or a year -> weight table")
        from grouper.analytics.weights import WeightOptions

        try:
            WeightOptions(trim=self.trim).trim_rule()
        except ValueError as exc:
            raise ValueError(f"{k}trim: {exc}") from None
        low = _num(self.low_x, k + "low_x", lo=0, lo_open=True)
        high = _num(self.high_x, k + "high_x", lo=1, hi=MAX_FACTOR)
        _num(self.extreme_x, k + "extreme_x", lo=high, hi=MAX_FACTOR)
        if low > 1:
            raise ValueError(f"{k}low_x: {low} must be <= 1")
        for name, allowed in (("extreme_payment", ("high", "score", "hold")),
                              ("outlier_base", ("level_mean", "group_mean"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{k}{name}: {getattr(self, name)!r}, expected one of {', '.join(allowed)}")
        for name, hi in (("fund_budget", MAX_AMOUNT), ("point_value", MAX_RATE)):
            if getattr(self, name) is not None:
                _num(getattr(self, name), k + name, lo=0, lo_open=True, hi=hi)
        if self.fund_ratio is not None:
            _num(self.fund_ratio, k + "fund_ratio", lo=0, lo_open=True, hi=1)
        _num(self.special_review_cap, k + "special_review_cap", lo=0, hi=1)
        if isinstance(self.level_coef, str):
            if self.level_coef not in ("derived", "none"):
                raise ValueError(f"{k}level_coef: {self.level_coef!r}, expected a table, \"derived\" or \"none\"")
        elif isinstance(self.level_coef, Mapping):
            for lv, c in self.level_coef.items():
                _num(c, f"{k}level_coef.{lv}", lo=0, lo_open=True, hi=MAX_FACTOR)
        else:
            raise ValueError(f"{k}level_coef: expected a table of level = coefficient")
        if isinstance(self.basic_groups, str) or not all(isinstance(g, str) for g in self.basic_groups):
            raise ValueError(f"{k}basic_groups: expected a list of catalogue group keys")
        object.__setattr__(self, "basic_groups", tuple(self.basic_groups))

    @classmethod
    def from_mapping(cls, d: Mapping, prefix: str = "dip") -> DipParams:
        """From a pack's ``[dip]`` table (TOML: year tables have string keys); unknown keys are errors."""
        if not isinstance(d, Mapping):
            raise ValueError(f"{prefix}: expected a table")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{prefix}.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
        kw = dict(d)
        if isinstance(kw.get("year_weights"), Mapping):
            try:
                kw["year_weights"] = {int(y): w for y, w in kw["year_weights"].items()}
            except ValueError:
                raise ValueError(f"{prefix}.year_weights: years must be whole numbers") from None
        if isinstance(kw.get("level_coef"), Mapping):
            kw["level_coef"] = dict(kw["level_coef"])
        try:
            return cls(**kw)
        except ValueError as exc:
            raise ValueError(str(exc).replace("dip.", f"{prefix}.", 1)) from None

    def weights_for(self, present: Iterable[int]) -> dict[int, float]:
        """Year -> weight for the years present: a list aligns its last weight with the newest
        year (the one before, the one before that, ...); older years get no weight."""
        present = sorted(set(present))
        if isinstance(self.year_weights, Mapping):
            return {y: float(self.year_weights.get(y, 0.0)) for y in present}
        newest, tw = (present[-1] if present else 0), self.year_weights
        return {y: (tw[len(tw) - 1 - (newest - y)] if newest - y < len(tw) else 0.0) for y in present}


# ----------------------------------------------------------------------------- the catalogue

def _group_quantile(sorted_vals, starts, counts, q):
    pos = q * (counts - 1)
    lo = np.floor(pos).astype(np.int64)
    frac = pos - lo
    return sorted_vals[starts + lo] * (1 - frac) + sorted_vals[starts + np.minimum(lo + 1, counts - 1)] * frac


def _trim_mask(gid: np.ndarray, cost: np.ndarray, trim: str, ngroups: int) -> np.ndarray:
    """Cases inside their group's fences (the trimming rules of ``grouper.weights``); a group the
    rule would empty keeps all its cases."""
    from grouper.analytics.weights import WeightOptions

    kind, params = WeightOptions(trim=trim).trim_rule()
    if kind == "none" or not len(gid):
        return np.ones(len(gid), bool)
    counts = np.bincount(gid, minlength=ngroups)
    if kind == "sdlog":
        lc = np.log(cost)
        mu = np.bincount(gid, lc, ngroups) / np.maximum(counts, 1)
        sd = np.sqrt(np.bincount(gid, (lc - mu[gid]) ** 2, ngroups) / np.maximum(counts - 1, 1))
        inside = np.abs(lc - mu[gid]) <= params[0] * sd[gid] + 1e-9
    else:
        order = np.lexsort((cost, gid))
        s, starts = cost[order], np.concatenate(([0], np.cumsum(counts)[:-1]))
        nz = counts > 0
        lo, hi = np.full(ngroups, -np.inf), np.full(ngroups, np.inf)
        qa, qb = (0.25, 0.75) if kind == "iqr" else (params[0] / 100, params[1] / 100)
        a, b = _group_quantile(s, starts[nz], counts[nz], qa), _group_quantile(s, starts[nz], counts[nz], qb)
        if kind == "iqr":
            a, b = a - params[0] * (b - a), b + params[0] * (b - a)
        lo[nz], hi[nz] = a, b
        tol = 1e-12 * np.abs(cost)
        inside = (cost >= lo[gid] - tol) & (cost <= hi[gid] + tol)
    emptied = (np.bincount(gid[inside], minlength=ngroups) == 0) & (counts > 0)
    return inside | emptied[gid]


def _weighted_mean(n: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Σ_y w_y·mean_y / Σ_y w_y over the years with cases (rows: groups, cols: years), in yuan."""
    has = n > 0
    means = np.where(has, s / np.maximum(n, 1), 0.0)
    wsum = (has * w).sum(axis=1)
    return np.where(wsum > 0, (means * w).sum(axis=1) / np.where(wsum > 0, wsum, 1), np.nan) / 100


def build_catalogue(data, params: DipParams = DipParams(), *, procedure_types: ProcedureTypes,
                    columns: Columns = DEFAULT_COLUMNS) -> Catalogue:
    """The catalogue from base-period cases (a Table, RecordBatch or iterable of batches)."""
    base = BaseCases(columns, keep_cases=params.trim != "none")
    for b in batches(data):
        base.add(b)
    return _catalogue(base, params, procedure_types)


def catalogue_from_files(inputs, params: DipParams = DipParams(), *, procedure_types: ProcedureTypes,
                         columns: Columns = DEFAULT_COLUMNS, batch_size: int = 65_536) -> Catalogue:
    """The catalogue from case files (CSV/Parquet/Arrow, streamed; only the needed columns read).
    Memory follows the distinct (亚目, procedure, year, level) cells, unless costs are trimmed."""
    base = BaseCases(columns, keep_cases=params.trim != "none")
    need = [columns.cost] + ([columns.year] if columns.year else [])
    for b in file_batches(inputs, need, [columns.level], batch_size, "the DIP catalogue", columns.dx, columns.px):
        base.add(b)
    return _catalogue(base, params, procedure_types)


def _catalogue(base: BaseCases, params: DipParams, types: ProcedureTypes) -> Catalogue:
    """Everything from the cells of ``BaseCases``: groups, year-weighted means, scores, level
    means of the newest year and the budget point value; per case only for trimming."""
    c = base.cells()
    excluded = dict(base.excluded)
    if isinstance(params.year_weights, Mapping) and not base.cols.year:
        raise ValueError("dip.year_weights names years but no year column was given")
    present = np.unique(c["year"])
    wmap = params.weights_for(present.tolist())
    yw = np.array([wmap[int(y)] for y in present])
    yi = np.searchsorted(present, c["year"])
    weighted = yw[yi] > 0 if len(yi) else np.zeros(0, bool)
    excluded["year_without_weight"] = int(c["n"][~weighted].sum())
    if not weighted.any():
        raise ValueError("no usable base cases for the DIP catalogue (excluded: "
                         + ", ".join(f"{k} {v}" for k, v in excluded.items() if v) + ")")
    cell_ids = np.flatnonzero(weighted)
    pdx4, px, lvl, yi, n = c["pdx4"][cell_ids], c["px"][cell_ids], c["lvl"][cell_ids], yi[cell_ids], c["n"][cell_ids]
    fen = c["fen"][cell_ids]
    ncells = len(c["code"])
    for k in ("code", "pdx4", "px", "lvl", "year", "n", "fen"):
        del c[k]  # only the per-case arrays of trimming are still needed
    # per distinct 亚目 / procedure: category, chapter, treatment type
    _, cat_str, _ = diagnosis_parts(base.pdx4.array())
    cats = Vocab()
    cat_of = cats.ids(cat_str)
    chap_of_cat = chapter_of(cats.array())
    ptype = np.append(types.classify(base.px.array()), 0)  # index -1 (no procedure): 保守治疗
    row_type = ptype[px]
    # core: 亚目 x procedure with enough cases; the rest by category, then chapter, x treatment type
    npx = len(base.px) + 1
    key = pdx4.astype(np.int64) * npx + (px + 1)
    ukey, kidx = np.unique(key, return_inverse=True)
    core = np.bincount(kidx, n, len(ukey)) >= params.core_min_n
    in_core = core[kidx]
    comp_code = cat_of[pdx4] * 4 + row_type
    del key
    ucomp, cidx = np.unique(comp_code[~in_core], return_inverse=True)
    comp_ok = np.bincount(cidx, n[~in_core], len(ucomp)) >= (params.comprehensive_min_n or params.core_min_n)
    chap_code = chap_of_cat[cat_of[pdx4]].astype(np.int64) * 4 + row_type
    to_chap = np.zeros(len(kidx), bool)
    to_chap[~in_core] = ~comp_ok[cidx]
    uchap = np.unique(chap_code[to_chap])
    # group id per cell: core groups, then comprehensive, then chapter ones
    core_keys = ukey[core]
    ncore, ncomp = len(core_keys), int(comp_ok.sum())
    gid = np.empty(len(kidx), np.int64)
    gid[in_core] = (np.cumsum(core) - 1)[kidx[in_core]]
    sel = ~in_core & ~to_chap
    gid[sel] = ncore + (np.cumsum(comp_ok) - 1)[np.searchsorted(ucomp, comp_code[sel])]
    gid[to_chap] = ncore + ncomp + np.searchsorted(uchap, chap_code[to_chap])
    ng = ncore + ncomp + len(uchap)
    # optional trimming per group (per case), then the kept cases per cell
    n_in, fen_in = n, fen
    if "case_cell" in c:
        where = np.full(ncells, -1, np.int64)
        where[cell_ids] = np.arange(len(cell_ids))
        cell = where[c["case_cell"]]
        used = cell >= 0
        cell, cf = cell[used], c["case_fen"][used]
        inside = _trim_mask(gid[cell], cf / 100, params.trim, ng)
        n_in = np.bincount(cell[inside], minlength=len(cell_ids))
        fen_in = np.bincount(cell[inside], cf[inside].astype(np.float64), len(cell_ids))
    ny = len(present)
    n_gy, s_gy = _cell_sums(gid * ny + yi, n_in, fen_in, ng * ny)
    n_gy, s_gy = n_gy.reshape(ng, ny), s_gy.reshape(ng, ny)
    m = _weighted_mean(n_gy, s_gy, yw)
    big_m = float(_weighted_mean(n_gy.sum(0, keepdims=True), s_gy.sum(0, keepdims=True), yw)[0])
    rw = m / big_m
    score = np.round(rw * params.score_scale, 4)
    newest = yi == yi.max()  # 上一年度: the newest year with weight
    last_n, last_s = _cell_sums(gid[newest], n_in[newest], fen_in[newest], ng)
    last_mean = np.where(last_n > 0, last_s / np.maximum(last_n, 1) / 100, np.nan)
    nl = max(len(base.levels), 1)
    lv = newest & (lvl >= 0)
    n_gl, s_gl = (a.reshape(ng, nl) for a in _cell_sums(gid[lv] * nl + lvl[lv], n_in[lv], fen_in[lv], ng * nl))
    # budget point value: weighted annual cost over Σ score x weighted annual cases (all cases)
    n_all, s_all = (a.reshape(ng, ny) for a in _cell_sums(gid * ny + yi, n, fen, ng * ny))
    has_y = n_all.sum(0) > 0
    wy = yw * has_y / (yw * has_y).sum()
    pv_b = float((s_all.sum(0) * wy).sum() / 100 / (score * (n_all * wy).sum(1)).sum())

    # describe the groups
    core_p, core_x = core_keys // npx, core_keys % npx - 1
    comp_codes = ucomp[comp_ok]
    chap_labels = np.array([lab for _, lab in ICD10_CHAPTERS], dtype=object)
    px_str = np.array([*base.px.values, None], dtype=object)
    pdx_str, cat_names = np.array(base.pdx4.values, dtype=object), np.array(cats.values, dtype=object)
    ttypes = np.array(TREATMENT_TYPES, dtype=object)
    sub4 = np.concatenate([pdx_str[core_p], [None] * (ng - ncore)])
    category = np.concatenate([cat_names[cat_of[core_p]], cat_names[comp_codes // 4], [None] * len(uchap)])
    chapter = np.concatenate([chap_labels[chap_of_cat[cat_of[core_p]]], chap_labels[chap_of_cat[comp_codes // 4]],
                              chap_labels[uchap // 4]])
    procedure = np.concatenate([px_str[core_x], [None] * (ng - ncore)])
    treatment = np.concatenate([ttypes[ptype[core_x]], ttypes[comp_codes % 4], ttypes[uchap % 4]])
    gtype = np.repeat(np.array(GROUP_TYPES, dtype=object), [ncore, ncomp, len(uchap)])
    group = [f"{d}+{p}" if p else d for d, p in zip(sub4[:ncore], procedure[:ncore])] + \
        [f"{k}:{t}" for k, t in zip(category[ncore:ncore + ncomp], treatment[ncore:ncore + ncomp])] + \
        [f"{k}:{t}" for k, t in zip(chapter[ncore + ncomp:], treatment[ncore + ncomp:])]
    n_g = np.bincount(gid, n, ng).astype(np.int64)
    cols = {
        "group": pa.array(group, pa.string()), "group_type": pa.array(gtype, pa.string()),
        "pdx4": pa.array(sub4, pa.string()), "category": pa.array(category, pa.string()),
        "chapter": pa.array(chapter, pa.string()), "procedure": pa.array(procedure, pa.string()),
        "treatment_type": pa.array(treatment, pa.string()),
        "n": pa.array(n_g), "n_trimmed": pa.array(n_g - np.bincount(gid, n_in, ng).astype(np.int64)),
        "mean_cost": pa.array(np.round(m, 2)), "rw": pa.array(np.round(rw, 6)), "score": pa.array(score),
        "last_mean": pa.array(np.round(last_mean, 2), mask=np.isnan(last_mean)),
    }
    for j, name in enumerate(base.levels.values):
        lm = s_gl[:, j] / np.maximum(n_gl[:, j], 1) / 100
        cols[f"level_n_{name}"] = pa.array(n_gl[:, j].astype(np.int64))
        cols[f"level_mean_{name}"] = pa.array(np.round(lm, 2), mask=n_gl[:, j] == 0)
    table = pa.table(cols)
    order = pc.sort_indices(pa.table({"t": pa.array(np.repeat([0, 1, 2], [ncore, ncomp, len(uchap)])),
                                      "g": table["group"]}), [("t", "ascending"), ("g", "ascending")])
    info = {"mean_cost": round(big_m, 2), "budget_point_value": pv_b, "score_scale": params.score_scale,
            "years": {str(int(y)) if base.cols.year else "all": float(w) for y, w in zip(present, yw)},
            "core_min_n": params.core_min_n, "comprehensive_min_n": params.comprehensive_min_n or params.core_min_n,
            "trim": params.trim, "cases": int(n.sum()), "rows_read": base.rows, "excluded": excluded,
            "missing_level": int(n[lvl < 0].sum()) if base.cols.level else None,
            "groups": {t: int(v) for t, v in zip(GROUP_TYPES, (ncore, ncomp, len(uchap)))},
            "ruleset": types.source}
    return Catalogue(table.take(order), info)


def _cell_sums(idx: np.ndarray, n: np.ndarray, fen: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(cases, fen sum) per index; sums of whole fen in float64 are exact below 2**53."""
    return np.rint(np.bincount(idx, n, size)).astype(np.int64), np.bincount(idx, fen, size)


@dataclass
class Catalogue:
    """A DIP catalogue: one row per group (``table``) and how it was built (``info``); saved as
    Parquet (with ``info`` in the metadata), CSV or Arrow and loaded back with ``load``. The
    lookup arrays that assignment uses are built here, once."""

    table: pa.Table
    info: dict = field(default_factory=dict)

    REQUIRED = ("group", "group_type", "pdx4", "category", "chapter", "procedure", "treatment_type", "n",
                "mean_cost", "score", "last_mean")

    def __post_init__(self):
        missing = [c for c in self.REQUIRED if c not in self.table.column_names]
        if missing:
            raise ValueError(f"not a DIP catalogue: missing column(s) {', '.join(missing)}")
        t = self.table
        # text as lists; a blank cell (how CSV writes a null) is a null
        text = {c: [v if v not in ("", None) else None for v in pc.cast(t[c], pa.string()).to_pylist()]
                for c in self.REQUIRED[:7]}
        bad = sorted({v for v in text["group_type"] if v not in GROUP_TYPES}, key=str) + \
            sorted({v for v in text["treatment_type"] if v not in TREATMENT_TYPES}, key=str)
        if bad:
            raise ValueError(f"DIP catalogue: unknown group or treatment type(s) {bad}")
        if None in text["group"] or len(set(text["group"])) != t.num_rows:
            raise ValueError("DIP catalogue: group keys are missing or not unique")
        self.groups = pa.array(text["group"], pa.string())
        self.score = self._floats("score")
        if np.isnan(self.score).any():
            raise ValueError("DIP catalogue: missing scores")
        mean, last = self._floats("mean_cost"), self._floats("last_mean")
        self.last_mean = np.where(np.isnan(last), mean, last)  # no case in the newest year: the weighted mean
        self.levels = [c[len("level_mean_"):] for c in t.column_names if c.startswith("level_mean_")]
        lm = np.column_stack([self._floats(f"level_mean_{lv}") for lv in self.levels] + [self.last_mean])
        self.level_mean = np.where(np.isnan(lm), self.last_mean[:, None], lm)  # last column: no level
        gtype = np.array(text["group_type"], dtype=object)
        self.group_type = np.array([GROUP_TYPES.index(v) for v in gtype] + [-1], np.int64)  # [-1]: none
        ttype = np.array([TREATMENT_TYPES.index(v) for v in text["treatment_type"]], np.int64)
        for kind, col in (("core", "pdx4"), ("comprehensive", "category"), ("comprehensive_chapter", "chapter")):
            if any(text[col][g] is None for g in np.flatnonzero(gtype == kind)):
                raise ValueError(f"DIP catalogue: a {kind} group without {col}")
        # core: (亚目 index, procedure index + 1 or 0 for none) as one sorted int64 code
        core = np.flatnonzero(gtype == "core")
        pdx4 = [text["pdx4"][g] for g in core]
        pxs = [text["procedure"][g] for g in core]
        self.core_pdx4 = pa.array(sorted(set(pdx4)), pa.string())
        self.core_px = pa.array(sorted({p for p in pxs if p is not None}), pa.string())
        pdx_i = pc.index_in(pa.array(pdx4, pa.string()), value_set=self.core_pdx4).to_numpy(zero_copy_only=False)
        px_i = pc.index_in(pa.array(pxs, pa.string()), value_set=self.core_px).fill_null(-1)
        px_i = px_i.to_numpy(zero_copy_only=False)
        codes = pdx_i.astype(np.int64) * (len(self.core_px) + 1) + px_i.astype(np.int64) + 1
        if len(np.unique(codes)) != len(codes):
            raise ValueError("DIP catalogue: two core groups with the same 亚目 and procedure")
        order = np.argsort(codes)
        self.core_codes, self.core_gid = codes[order], core[order]
        comp = np.flatnonzero(gtype == "comprehensive")
        cats = [text["category"][g] for g in comp]
        self.comp_categories = pa.array(sorted(set(cats)), pa.string())
        cat_i = pc.index_in(pa.array(cats, pa.string()), value_set=self.comp_categories).to_numpy(zero_copy_only=False)
        self.comp_table = np.full(len(self.comp_categories) * 4, -1, np.int64)
        self.comp_table[cat_i.astype(np.int64) * 4 + ttype[comp]] = comp
        labels = [lab for _, lab in ICD10_CHAPTERS]
        self.chap_table = np.full(len(labels) * 4, -1, np.int64)
        for g in np.flatnonzero(gtype == "comprehensive_chapter"):
            if text["chapter"][g] not in labels:
                raise ValueError(f"DIP catalogue: unknown ICD-10 chapter {text['chapter'][g]!r} "
                                 f"in group {text['group'][g]}")
            self.chap_table[labels.index(text["chapter"][g]) * 4 + ttype[g]] = g

    def _floats(self, name: str) -> np.ndarray:
        v, bad = numbers(self.table[name])
        if bad.any():
            raise ValueError(f"DIP catalogue: unreadable numbers in column {name!r}")
        return v

    def level_coefficients(self) -> dict[str, float]:
        """级别系数 derived from the catalogue: per level, Σ_g n_gL·mean_gL / Σ_g n_gL·mean_g over the
        groups with cases of that level in the newest base year (a cost index of the level
        against the regional group means); rounded to 4 decimals."""
        out = {}
        for j, lv in enumerate(self.levels):
            n, _ = numbers(self.table[f"level_n_{lv}"])
            n = np.nan_to_num(n)
            lm, _ = numbers(self.table[f"level_mean_{lv}"])
            ok = (n > 0) & ~np.isnan(lm)
            denom = (n[ok] * self.last_mean[ok]).sum()
            if denom > 0:
                out[lv] = round(float((n[ok] * lm[ok]).sum() / denom), 4)
        return out

    def save(self, path, *, overwrite: bool = False) -> None:
        from grouper.io import write_batches

        meta = {b"dip.info": json.dumps(self.info, ensure_ascii=False).encode()}
        t = self.table.replace_schema_metadata({**(self.table.schema.metadata or {}), **meta})
        write_batches(path, t.to_batches(), overwrite=overwrite, empty_schema=t.schema)

    @classmethod
    def load(cls, path) -> Catalogue:
        from grouper.io import open_source

        s = open_source(path)
        t = pa.Table.from_batches(list(s.batches), schema=s.schema)
        meta = (s.schema.metadata or {}).get(b"dip.info")
        try:
            return cls(t, json.loads(meta) if meta else {})
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


# ----------------------------------------------------------------------------- assignment

#: Statuses of ``assign`` (no costs are read there): the first five of STATUSES, "assigned" first.
ASSIGN_STATUSES = ("assigned", *STATUSES[1:5])
_TEXT = pa.dictionary(pa.int32(), pa.string())
_ASSIGNED = pa.schema([("case_id", pa.string()), *((k, _TEXT) for k in ("status", "group", "group_type")),
                       ("score", pa.float64())])


def _assigned(a: Assigner, b: pa.RecordBatch, cat: Catalogue, columns: Columns, row: int, counts: np.ndarray):
    status, gid = a(b)
    counts += np.bincount(status, minlength=len(ASSIGN_STATUSES))
    return pa.RecordBatch.from_pydict({
        "case_id": _case_ids(b, columns, row), "status": _labels(ASSIGN_STATUSES, status),
        "group": _dict(cat.groups, gid), "group_type": _dict(pa.array(GROUP_TYPES), cat.group_type[gid]),
        "score": _floats_or_null(np.append(cat.score, np.nan)[gid])})


def assign(data, catalogue: Catalogue, *, procedure_types: ProcedureTypes, columns: Columns = DEFAULT_COLUMNS) -> pa.Table:
    """Per case, in input order: case_id (or row number), status, group, group type and score."""
    a, out, row = Assigner(catalogue, procedure_types, columns), [], 0
    counts = np.zeros(len(ASSIGN_STATUSES), np.int64)
    for b in batches(data):
        out.append(_assigned(a, b, catalogue, columns, row, counts))
        row += b.num_rows
    return pa.Table.from_batches(out) if out else _ASSIGNED.empty_table()


def assign_files(inputs, catalogue: Catalogue, output, *, procedure_types: ProcedureTypes,
                 columns: Columns = DEFAULT_COLUMNS, overwrite: bool = False, batch_size: int = 65_536) -> dict[str, int]:
    """``assign`` streamed from case files into ``output``; returns the count per status."""
    from grouper.io import check_outputs, write_batches

    check_outputs([output], [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs, overwrite=overwrite)
    a = Assigner(catalogue, procedure_types, columns)
    counts = np.zeros(len(ASSIGN_STATUSES), np.int64)

    def out():
        row = 0
        for b in file_batches(inputs, [], [columns.case_id], batch_size, "DIP assignment", columns.dx, columns.px,
                              columns.case_id):
            yield _assigned(a, b, catalogue, columns, row, counts)
            row += b.num_rows

    write_batches(output, out(), overwrite=overwrite, empty_schema=_ASSIGNED)
    return {k: int(v) for k, v in zip(ASSIGN_STATUSES, counts)}


def _case_ids(b: pa.RecordBatch, cols: Columns, row: int):
    return b.column(cols.case_id) if cols.case_id in b.schema.names else pa.array(np.arange(row, row + b.num_rows))


def _labels(names, codes) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, np.int32)), pa.array(names, pa.string()))


def _dict(values: pa.Array, idx: np.ndarray) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(idx.astype(np.int32), mask=idx < 0), values)


def _floats_or_null(v: np.ndarray) -> pa.Array:
    return pa.array(v, pa.float64(), mask=np.isnan(v))


# ----------------------------------------------------------------------------- settlement

def settlement_point_value(fund_budget: float, fund_ratio: float, total_points: float) -> float:
    """PV_s = (fund available for DIP / fund payout ratio) / total points (unrounded)."""
    if not total_points > 0:
        raise ValueError("no points to divide the fund by (no settled case)")
    return fund_budget / fund_ratio / total_points


@dataclass
class Settlement:
    point_value: float
    point_value_source: str  # "computed" (PV_s from the fund) or "fixed"
    total_points: float
    hospitals: pa.Table
    summary: dict
    cases: pa.Table | None = None  # per case, when not written to a file


_ACC = ("cases", "settled", *CASE_TYPES, "points", "amount", "fund", "total_cost", "margin")


class _Settler:
    """Per-case points and amounts, batch by batch, and the per-hospital totals (integers)."""

    def __init__(self, cat: Catalogue, params: DipParams, types: ProcedureTypes, cols: Columns):
        self.cat, self.p, self.cols = cat, params, cols
        self.assign = Assigner(cat, types, cols)
        self.use_coef = params.level_coef != "none"
        if params.outlier_base == "level_mean" and not cat.levels:
            raise ValueError("dip.outlier_base = \"level_mean\" but the catalogue has no level means (it was built "
                             "without a hospital level column); use \"group_mean\"")
        self.coef = (cat.level_coefficients() if params.level_coef == "derived" else
                     dict(params.level_coef) if isinstance(params.level_coef, Mapping) else {})
        basic = set(params.basic_groups)
        self.basic = np.append(pc.is_in(cat.groups, value_set=pa.array(sorted(basic), pa.string())).to_numpy(
            zero_copy_only=False), False)
        self.basic_unknown = sorted(basic - set(cat.groups.to_pylist()))
        self.levels, self.hospitals = Vocab(), Vocab()
        self.acc = {k: np.zeros(1, np.int64) for k in _ACC}  # index 0: rows without a hospital
        self.pairs: set[tuple[int, int]] = set()
        self.status_n = np.zeros(len(STATUSES), np.int64)
        self.units = 0  # Σ points in 1e-4 units
        self.missing_share = 0
        self.row = 0

    def _level_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Per level id (+ a last entry for none): catalogue level column and coefficient."""
        col = [self.cat.levels.index(v) if v in self.cat.levels else len(self.cat.levels) for v in self.levels.values]
        coef = []
        for v in self.levels.values:
            if self.use_coef and v not in self.coef:
                src = "dip.level_coef" if isinstance(self.p.level_coef, Mapping) else "the catalogue (derived)"
                raise ValueError(f"hospital level {v!r} has no level coefficient in {src}; "
                                 f"levels there: {', '.join(self.coef) or 'none'}")
            coef.append(self.coef.get(v, 1.0) if self.use_coef else 1.0)
        return np.array(col + [len(self.cat.levels)], np.int64), np.array(coef + [1.0])

    def compute(self, batch: pa.RecordBatch) -> dict:
        c, p, cat = self.cols, self.p, self.cat
        n = batch.num_rows
        status, gid = self.assign(batch)
        cost, _ = numbers(column(batch, c.cost, "cost"))  # unreadable, not finite: missing
        cost[~(np.abs(cost) <= _MAX_AMOUNT)] = np.nan  # an absurd cost (beyond MAX_AMOUNT yuan) too
        has_level = bool(c.level) and c.level in batch.schema.names
        if self.use_coef and not has_level:
            raise ValueError(f"no hospital level column {c.level!r}, needed for the level coefficients "
                             "(or set dip.level_coef = \"none\")")
        lvl = text_ids(batch.column(c.level), self.levels) if has_level else np.full(n, -1, np.int64)
        ok = status == SETTLED
        for code, bad in ((NO_COST, np.isnan(cost)), (BAD_COST, cost <= 0), (NO_LEVEL, (lvl < 0) & self.use_coef)):
            status[ok & bad] = code
            ok &= ~bad
        lcol, lcoef = self._level_tables()
        col = lcol[lvl] if p.outlier_base == "level_mean" else np.full(n, len(cat.levels))
        g = np.where(ok, gid, 0)
        denom = cat.level_mean[g, col] if len(cat.score) else np.ones(n)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(ok, cost / denom, np.nan)
        ctype = np.select([x > p.extreme_x, x > p.high_x, x < p.low_x], [3, 2, 1], 0).astype(np.int8)
        factor = np.select([ctype == 1, ctype == 2], [x, x - p.high_x + 1], 1.0)
        if p.extreme_payment == "high":
            factor = np.where(ctype == 3, x - p.high_x + 1, factor)
        elif p.extreme_payment == "hold":
            factor = np.where(ctype == 3, np.nan, factor)
        score = np.where(ok, np.append(cat.score, np.nan)[np.where(ok, gid, -1)], np.nan)
        coef = np.where(self.basic[np.where(ok, gid, -1)], 1.0, lcoef[lvl])
        case_score = np.round(score * factor, 4)
        points = np.round(score * factor * coef, 4)
        units = np.where(np.isnan(points), 0, np.rint(np.nan_to_num(points) * _UNIT)).astype(np.int64)
        return {"status": status, "gid": gid, "cost": cost, "lvl": lvl, "x": x, "ctype": ctype, "score": score,
                "case_score": case_score, "coef": np.where(ok, coef, np.nan), "points": points, "units": units,
                "ok": ok}

    def output(self, batch: pa.RecordBatch, r: dict, pv: float) -> pa.RecordBatch:
        c, n = self.cols, batch.num_rows
        amount = np.round(r["points"] * pv, 2)
        if c.patient_share:
            share, _ = numbers(column(batch, c.patient_share, "patient share"))
            fund = np.round(np.maximum(amount - share, 0), 2)
            self.missing_share += int((r["ok"] & np.isnan(share)).sum())
        elif self.p.fund_ratio is not None:
            fund = np.round(amount * self.p.fund_ratio, 2)
        else:
            fund = np.full(n, np.nan)
        margin = np.round(amount - r["cost"], 2)
        has_h = bool(c.hospital) and c.hospital in batch.schema.names
        h = text_ids(batch.column(c.hospital), self.hospitals) if has_h else np.full(n, -1, np.int64)
        self._accumulate(h + 1, r, amount, fund, margin)
        cid = _case_ids(batch, c, self.row)
        self.row += n
        ok = r["ok"]
        cols = {
            "case_id": cid,
            "hospital_id": pc.take(self.hospitals.array(), pa.array(h, mask=h < 0)),
            "hospital_level": pc.take(self.levels.array(), pa.array(r["lvl"], mask=r["lvl"] < 0)),
            "status": _labels(STATUSES, r["status"]),
            "group": _dict(self.cat.groups, np.where(ok, r["gid"], -1)),
            "group_type": _dict(pa.array(GROUP_TYPES), self.cat.group_type[np.where(ok, r["gid"], -1)]),
            "score": _floats_or_null(r["score"]),
            "x": _floats_or_null(np.round(r["x"], 4)),
            "case_type": _dict(pa.array(CASE_TYPES), np.where(ok, r["ctype"], -1)),
            "case_score": _floats_or_null(r["case_score"]),
            "level_coef": _floats_or_null(r["coef"]),
            "points": _floats_or_null(r["points"]),
            "amount": _floats_or_null(amount),
            "fund": _floats_or_null(fund),
            "total_cost": _floats_or_null(r["cost"]),
            "margin": _floats_or_null(margin),
        }
        return pa.RecordBatch.from_pydict(cols)

    def _accumulate(self, h: np.ndarray, r: dict, amount, fund, margin) -> None:
        size = len(self.hospitals) + 1
        for k, v in self.acc.items():
            if len(v) < size:
                self.acc[k] = np.concatenate([v, np.zeros(size - len(v), np.int64)])
        ok = r["ok"]
        fen = lambda v: np.where(ok & ~np.isnan(v), np.rint(np.nan_to_num(v) * 100), 0)
        adds = {"cases": np.ones(len(h)), "settled": ok, "points": r["units"], "amount": fen(amount),
                "fund": fen(fund), "total_cost": fen(r["cost"]), "margin": fen(margin)}
        for t, name in enumerate(CASE_TYPES):
            adds[name] = ok & (r["ctype"] == t)
        for k, w in adds.items():
            self.acc[k][:size] += np.rint(np.bincount(h, np.asarray(w, np.float64), size)).astype(np.int64)
        self.status_n += np.bincount(r["status"], minlength=len(STATUSES))
        nl = len(self.levels) + 1
        self.pairs.update(divmod(int(v), nl) for v in np.unique(h * nl + r["lvl"] + 1))

    def hospital_table(self) -> pa.Table:
        a = self.acc
        ids = [None] + self.hospitals.values
        lv_names = [None] + self.levels.values
        levels: dict[int, list[str]] = {}
        for hi, li in self.pairs:
            if lv_names[li] is not None:
                levels.setdefault(hi, []).append(lv_names[li])
        keep = np.flatnonzero(a["cases"] > 0)
        order = sorted(keep, key=lambda i: (ids[i] is None, ids[i] or ""))
        cap = self.p.special_review_cap
        settled, review = a["settled"][order], a["extreme"][order]
        return pa.table({
            "hospital_id": pa.array([ids[i] for i in order], pa.string()),
            "hospital_level": pa.array(["/".join(sorted(levels.get(i, []))) or None for i in order], pa.string()),
            "cases": a["cases"][order], "settled": settled, "not_settled": a["cases"][order] - settled,
            **{t: a[t][order] for t in CASE_TYPES},
            "points": a["points"][order] / _UNIT,
            **{k: a[k][order] / 100 for k in ("amount", "fund", "total_cost", "margin")},
            "review_cases": review,
            "review_share": np.where(settled > 0, review / np.maximum(settled, 1), 0.0),
            "review_cap_cases": np.floor(settled * cap + 1e-9).astype(np.int64),
            "review_over_cap": review > np.floor(settled * cap + 1e-9),
        })


def _pv(params: DipParams, point_value: float | None, units: int | None) -> tuple[float, str]:
    from grouper.payment.pack import MAX_RATE

    fixed = point_value if point_value is not None else params.point_value
    if fixed is not None:
        return _num(fixed, "point_value", lo=0, lo_open=True, hi=MAX_RATE), "fixed"
    missing = [k for k in ("fund_budget", "fund_ratio") if getattr(params, k) is None]
    if missing:
        raise ValueError(f"dip.{missing[0]} is needed for the settlement point value (or give dip.point_value)")
    pv = settlement_point_value(params.fund_budget, params.fund_ratio, (units or 0) / _UNIT)
    if not pv <= MAX_RATE:
        raise ValueError(f"settlement point value {pv:g} (dip.fund_budget / dip.fund_ratio / {(units or 0) / _UNIT:g} "
                         f"points) is above the bound {MAX_RATE:g}: too few points for the fund")
    return pv, "computed"


def settle(batches: Callable[[], Iterable[pa.RecordBatch]], catalogue: Catalogue, params: DipParams, *,
           procedure_types: ProcedureTypes, columns: Columns = DEFAULT_COLUMNS, point_value: float | None = None,
           sink: Callable[[Iterator[pa.RecordBatch]], object] | None = None) -> Settlement:
    """Settle cases under DIP. ``batches()`` is called once, or twice when the point value is
    computed from the fund (the first pass only adds up points). Per-case batches go to ``sink``
    (e.g. a file writer) or into ``Settlement.cases``."""
    s = _Settler(catalogue, params, procedure_types, columns)
    units = None
    if point_value is None and params.point_value is None:
        units = sum(int(s.compute(b)["units"].sum()) for b in batches())
    pv, source = _pv(params, point_value, units)
    s.units = 0

    def per_case():
        for b in batches():
            r = s.compute(b)
            s.units += int(r["units"].sum())
            yield s.output(b, r, pv)

    if sink is not None:
        sink(per_case())
        cases = None
    else:
        out = list(per_case())
        cases = pa.Table.from_batches(out) if out else None
    hosp = s.hospital_table()
    tot = {k: int(v.sum()) for k, v in s.acc.items()}
    summary = {
        "point_value": pv, "point_value_source": source, "fund_budget": params.fund_budget,
        "fund_ratio": params.fund_ratio, "total_points": tot["points"] / _UNIT, "cases": tot["cases"],
        "statuses": {k: int(v) for k, v in zip(STATUSES, s.status_n)},
        "case_types": {t: tot[t] for t in CASE_TYPES},
        **{k: tot[k] / 100 for k in ("amount", "fund", "total_cost", "margin")},
        "review_cases": tot["extreme"], "special_review_cap": params.special_review_cap,
        "hospitals_over_review_cap": int(pc.sum(hosp["review_over_cap"].cast(pa.int64())).as_py() or 0),
        "level_coefficients": s.coef if s.use_coef else "none",
        "level_coefficient_source": "none" if not s.use_coef else
        ("pack" if isinstance(params.level_coef, Mapping) else "derived from the catalogue"),
        "basic_groups_not_in_catalogue": s.basic_unknown,
        "cases_without_patient_share": s.missing_share if columns.patient_share else None,
        "catalogue": {k: catalogue.info.get(k) for k in ("mean_cost", "budget_point_value", "groups")},
    }
    return Settlement(pv, source, tot["points"] / _UNIT, hosp, summary, cases)


def settle_table(data, catalogue: Catalogue, params: DipParams, **kw) -> Settlement:
    """``settle`` on an in-memory Table/RecordBatch; the per-case table is ``.cases``."""
    return settle(lambda: batches(data), catalogue, params, **kw)


def settle_files(inputs, catalogue: Catalogue, params: DipParams, output, *, procedure_types: ProcedureTypes,
                 columns: Columns = DEFAULT_COLUMNS, point_value: float | None = None, overwrite: bool = False,
                 batch_size: int = 65_536) -> Settlement:
    """Settle case files (streamed, read twice when PV_s is computed) into ``output``."""
    from grouper.io import check_outputs, expand_inputs, write_batches

    files = expand_inputs(inputs)
    check_outputs([output], files, overwrite=overwrite)
    need = [columns.cost] + ([columns.patient_share] if columns.patient_share else []) + \
        ([columns.level] if params.level_coef != "none" and columns.level else [])
    optional = [columns.case_id, columns.hospital, columns.level]
    empty = pa.schema([("case_id", pa.string()), ("hospital_id", pa.string()), ("hospital_level", pa.string()),
                       *((k, _TEXT) for k in ("status", "group", "group_type")),
                       *((k, pa.float64()) for k in ("score", "x")), ("case_type", _TEXT),
                       *((k, pa.float64()) for k in ("case_score", "level_coef", "points", "amount", "fund",
                                                      "total_cost", "margin"))])
    return settle(lambda: file_batches(files, need, optional, batch_size, "DIP settlement", columns.dx, columns.px,
                                       columns.case_id),
                  catalogue, params, procedure_types=procedure_types, columns=columns, point_value=point_value,
                  sink=lambda it: write_batches(output, it, overwrite=overwrite, empty_schema=empty))

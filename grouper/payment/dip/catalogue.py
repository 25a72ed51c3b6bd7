"""DIP (按病种分值付费) catalogue: the ``[dip]`` parameters, and groups with scores built from
historical cases.

The method of the national technical specification (医保办发〔2020〕50号, 2.0: 医保办发〔2024〕9号)
as the project's domain notes (section 5) describe it; docs/dip.md is the user's guide.

- Catalogue: every principal diagnosis (亚目) x principal procedure combination in the base data;
  those with at least ``core_min_n`` cases are core groups (核心病种), the rest are pooled into
  comprehensive groups (综合病种) by ICD-10 category x treatment type, and where a pool is still
  thinner than ``comprehensive_min_n``, by ICD-10 chapter x treatment type (``keys``).
- Score: RW_i = m_i / M times ``score_scale``, the means being year means weighted 1:2:7 (oldest
  to newest) over the years each group has cases; costs may be trimmed per group first (the
  rules of ``grouper.analytics.TrimRule``, the same as the DRG weights').
- Budget point value: PV_b = year-weighted annual cost / Σ(score x year-weighted cases).

Money is summed in fen as integers, so every total is the same whatever the row order. Reading
and writing catalogue files is the job of ``grouper.jobs.dip``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc
from grouper.analytics import TrimRule, trim_mask
from grouper.payment.dip.keys import (
    DEFAULT_COLUMNS,
    ICD10_CHAPTERS,
    TREATMENT_TYPES,
    BaseCases,
    DipColumns,
    ProcedureTypes,
    Vocab,
    batches,
    chapter_of,
    diagnosis_parts,
    numbers,
)

__all__ = ["DipParams", "Catalogue", "build_catalogue", "catalogue_from_base", "check_number", "GROUP_TYPES"]

GROUP_TYPES = ("core", "comprehensive", "comprehensive_chapter")


def check_number(v, key: str, *, lo: float | None = None, lo_open: bool = False, hi: float | None = None) -> float:
    """``v`` as a float when it is a finite number in range; else a ValueError naming ``key``."""
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

        check_number(self.score_scale, k + "score_scale", lo=0, lo_open=True, hi=MAX_RATE)
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
                check_number(w, f"{k}year_weights.{y}", lo=0, lo_open=True, hi=MAX_FACTOR)
        elif isinstance(yw, (list, tuple)) and yw:
            for i, w in enumerate(yw):
                check_number(w, f"{k}year_weights[{i}]", lo=0, lo_open=True, hi=MAX_FACTOR)
            object.__setattr__(self, "year_weights", tuple(float(w) for w in yw))
        else:
            raise ValueError(f"{k}year_weights: expected a list of weights (oldest to newest) "
                             "or a year -> weight table")
        try:
            TrimRule.parse(self.trim)
        except ValueError as exc:
            raise ValueError(f"{k}trim: {exc}") from None
        low = check_number(self.low_x, k + "low_x", lo=0, lo_open=True)
        high = check_number(self.high_x, k + "high_x", lo=1, hi=MAX_FACTOR)
        check_number(self.extreme_x, k + "extreme_x", lo=high, hi=MAX_FACTOR)
        if low > 1:
            raise ValueError(f"{k}low_x: {low} must be <= 1")
        for name, allowed in (("extreme_payment", ("high", "score", "hold")),
                              ("outlier_base", ("level_mean", "group_mean"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{k}{name}: {getattr(self, name)!r}, expected one of {', '.join(allowed)}")
        for name, hi in (("fund_budget", MAX_AMOUNT), ("point_value", MAX_RATE)):
            if getattr(self, name) is not None:
                check_number(getattr(self, name), k + name, lo=0, lo_open=True, hi=hi)
        if self.fund_ratio is not None:
            check_number(self.fund_ratio, k + "fund_ratio", lo=0, lo_open=True, hi=1)
        check_number(self.special_review_cap, k + "special_review_cap", lo=0, hi=1)
        if isinstance(self.level_coef, str):
            if self.level_coef not in ("derived", "none"):
                raise ValueError(f"{k}level_coef: {self.level_coef!r}, expected a table, \"derived\" or \"none\"")
        elif isinstance(self.level_coef, Mapping):
            for lv, c in self.level_coef.items():
                check_number(c, f"{k}level_coef.{lv}", lo=0, lo_open=True, hi=MAX_FACTOR)
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

def _weighted_mean(n: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Σ_y w_y·mean_y / Σ_y w_y over the years with cases (rows: groups, cols: years), in yuan."""
    has = n > 0
    means = np.where(has, s / np.maximum(n, 1), 0.0)
    wsum = (has * w).sum(axis=1)
    return np.where(wsum > 0, (means * w).sum(axis=1) / np.where(wsum > 0, wsum, 1), np.nan) / 100


def build_catalogue(data, params: DipParams = DipParams(), *, procedure_types: ProcedureTypes,
                    columns: DipColumns = DEFAULT_COLUMNS) -> Catalogue:
    """The catalogue from base-period cases (a Table, RecordBatch or iterable of batches)."""
    base = BaseCases(columns, keep_cases=params.trim != "none")
    for b in batches(data):
        base.add(b)
    return catalogue_from_base(base, params, procedure_types)


def catalogue_from_base(base: BaseCases, params: DipParams, types: ProcedureTypes) -> Catalogue:
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
        inside = trim_mask(gid[cell], cf / 100, TrimRule.parse(params.trim), ng)
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
    Parquet (with ``info`` in the metadata), CSV or Arrow and loaded back by ``grouper.jobs.dip``
    (``save_catalogue``, ``load_catalogue``). The lookup arrays that assignment uses are built
    here, once."""

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

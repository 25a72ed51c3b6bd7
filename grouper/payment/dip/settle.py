"""DIP (按病种分值付费) settlement: per case the cost ratio, case type, points and amount; the
settlement point value; per-hospital totals.

- Point value: settlement PV_s = (fund budget / fund payout ratio) / Σ points of the settled
  cases, or a fixed one.
- Per case: x = cost / the group's mean cost (same hospital level, or region) in the newest base
  year; x < low_x pays score·x, x > high_x pays score·((x − high_x) + 1), x > extreme_x is flagged
  for expert review; points = that score x level coefficient (1 for 基层病种); amount = points x PV.

Money is summed in fen and points in 1e-4 units as integers, so every total, and therefore every
case's amount, is the same whatever the row order. Work is vectorised per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc
from grouper.payment.dip.assign import TEXT, Assigner, case_ids, dict_array, floats_or_null, labels
from grouper.payment.dip.catalogue import GROUP_TYPES, Catalogue, DipParams, check_number
from grouper.payment.dip.keys import (
    BAD_COST,
    DEFAULT_COLUMNS,
    NO_COST,
    NO_LEVEL,
    SETTLED,
    STATUSES,
    DipColumns,
    ProcedureTypes,
    Vocab,
    batches,
    column,
    numbers,
    text_ids,
)

__all__ = ["DipSettlement", "settle", "settle_table", "settlement_point_value", "DIP_CASE_TYPES", "SETTLED_SCHEMA"]

#: Case types of settlement: 正常, 费用超低, 费用超高, 极端异常 (expert review).
DIP_CASE_TYPES = ("normal", "low", "high", "extreme")
_MAX_AMOUNT = 1e12  # payment_pack.MAX_AMOUNT: no case costs more (yuan)
_UNIT = 10_000  # points are kept to 4 decimals and summed as integers of 1e-4 points
#: The per-case output's columns (the schema of an empty output file).
SETTLED_SCHEMA = pa.schema([("case_id", pa.string()), ("hospital_id", pa.string()), ("hospital_level", pa.string()),
                            *((k, TEXT) for k in ("status", "group", "group_type")),
                            *((k, pa.float64()) for k in ("score", "x")), ("case_type", TEXT),
                            *((k, pa.float64()) for k in ("case_score", "level_coef", "points", "amount", "fund",
                                                           "total_cost", "margin"))])


def settlement_point_value(fund_budget: float, fund_ratio: float, total_points: float) -> float:
    """PV_s = (fund available for DIP / fund payout ratio) / total points (unrounded)."""
    if not total_points > 0:
        raise ValueError("no points to divide the fund by (no settled case)")
    return fund_budget / fund_ratio / total_points


@dataclass
class DipSettlement:
    point_value: float
    point_value_source: str  # "computed" (PV_s from the fund) or "fixed"
    total_points: float
    hospitals: pa.Table
    summary: dict
    cases: pa.Table | None = None  # per case, when not written to a file


_ACC = ("cases", "settled", *DIP_CASE_TYPES, "points", "amount", "fund", "total_cost", "margin")


class _Settler:
    """Per-case points and amounts, batch by batch, and the per-hospital totals (integers)."""

    def __init__(self, cat: Catalogue, params: DipParams, types: ProcedureTypes, cols: DipColumns):
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
        cid = case_ids(batch, c, self.row)
        self.row += n
        ok = r["ok"]
        cols = {
            "case_id": cid,
            "hospital_id": pc.take(self.hospitals.array(), pa.array(h, mask=h < 0)),
            "hospital_level": pc.take(self.levels.array(), pa.array(r["lvl"], mask=r["lvl"] < 0)),
            "status": labels(STATUSES, r["status"]),
            "group": dict_array(self.cat.groups, np.where(ok, r["gid"], -1)),
            "group_type": dict_array(pa.array(GROUP_TYPES), self.cat.group_type[np.where(ok, r["gid"], -1)]),
            "score": floats_or_null(r["score"]),
            "x": floats_or_null(np.round(r["x"], 4)),
            "case_type": dict_array(pa.array(DIP_CASE_TYPES), np.where(ok, r["ctype"], -1)),
            "case_score": floats_or_null(r["case_score"]),
            "level_coef": floats_or_null(r["coef"]),
            "points": floats_or_null(r["points"]),
            "amount": floats_or_null(amount),
            "fund": floats_or_null(fund),
            "total_cost": floats_or_null(r["cost"]),
            "margin": floats_or_null(margin),
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
        for t, name in enumerate(DIP_CASE_TYPES):
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
            **{t: a[t][order] for t in DIP_CASE_TYPES},
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
        return check_number(fixed, "point_value", lo=0, lo_open=True, hi=MAX_RATE), "fixed"
    missing = [k for k in ("fund_budget", "fund_ratio") if getattr(params, k) is None]
    if missing:
        raise ValueError(f"dip.{missing[0]} is needed for the settlement point value (or give dip.point_value)")
    pv = settlement_point_value(params.fund_budget, params.fund_ratio, (units or 0) / _UNIT)
    if not pv <= MAX_RATE:
        raise ValueError(f"settlement point value {pv:g} (dip.fund_budget / dip.fund_ratio / {(units or 0) / _UNIT:g} "
                         f"points) is above the bound {MAX_RATE:g}: too few points for the fund")
    return pv, "computed"


def settle(batches: Callable[[], Iterable[pa.RecordBatch]], catalogue: Catalogue, params: DipParams, *,
           procedure_types: ProcedureTypes, columns: DipColumns = DEFAULT_COLUMNS, point_value: float | None = None,
           sink: Callable[[Iterator[pa.RecordBatch]], object] | None = None) -> DipSettlement:
    """Settle cases under DIP. ``batches()`` is called once, or twice when the point value is
    computed from the fund (the first pass only adds up points). Per-case batches go to ``sink``
    (e.g. a file writer) or into ``DipSettlement.cases``."""
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
        "case_types": {t: tot[t] for t in DIP_CASE_TYPES},
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
    return DipSettlement(pv, source, tot["points"] / _UNIT, hosp, summary, cases)


def settle_table(data, catalogue: Catalogue, params: DipParams, **kw) -> DipSettlement:
    """``settle`` on an in-memory Table/RecordBatch; the per-case table is ``.cases``."""
    return settle(lambda: batches(data), catalogue, params, **kw)

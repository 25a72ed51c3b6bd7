"""What a DRG settlement is given and checks once: the input columns by role, the case types and
settle statuses, the weights and hospital tables, the quality rules and the provisional rates."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np
import pyarrow as pa

from grouper._util.errors import InputError
from grouper._util.lazy import pc
from grouper._util.money import sorted_sum
from grouper._util.readers import encode, finite, flags, numbers
from grouper.payment.drg.waterfall import sharing_adjustment
from grouper.payment.pack import MAX_AMOUNT, MAX_RATE, MIN_MEAN_COST, PaymentPack

DRG_CASE_TYPES = ("normal", "high", "low", "short_stay", "special_review", "per_diem", "ungroupable", "ambiguous",
                  "invalid")
#: the case types in Chinese, for people (reports, tables)
DRG_CASE_TYPE_NAMES_ZH = {"normal": "正常病例", "high": "高倍率", "low": "低倍率", "short_stay": "短住院/死亡/转院",
                          "special_review": "特例单议", "per_diem": "床日/按项目 (非DRG)", "ungroupable": "无法入组 0000",
                          "ambiguous": "歧义组 QY", "invalid": "校验不通过"}
NORMAL, HIGH, LOW, SHORT, SPECIAL, PER_DIEM, UNGROUPABLE, AMBIGUOUS, INVALID = range(len(DRG_CASE_TYPES))
#: why a row was not settled; each row gets the first reason that applies, in this order
SETTLE_STATUSES = ("settled", "returned", "unknown_status", "no_cost", "no_los", "no_weight", "no_patient_share")
SETTLED, RETURNED, UNKNOWN_STATUS, NO_COST, NO_LOS, NO_WEIGHT, NO_SHARE = range(len(SETTLE_STATUSES))
GROUP_STATUS = ("grouped", "ungroupable", "ambiguous", "invalid")


@dataclass(frozen=True)
class DrgColumns:
    """Input column names by role (the command line's ``--column ROLE=NAME``)."""

    case_id: str = "case_id"
    hospital: str = "hospital_id"
    level: str = "hospital_level"
    insurance_type: str = "insurance_type"
    cost: str = "total_cost"
    patient_share: str = "patient_share"
    los: str = "los"
    discharge: str = "discharge"
    date: str = "discharge_date"
    referred: str = "referred_from_primary"
    status: str = "status"
    drg: str = "drg"

    @classmethod
    def roles(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass
class DrgSettlement:
    """What a settlement returns: the per-case, hospital and month tables and the summary."""

    cases: pa.Table | None  # one row per input row, in order (None when streamed to a file)
    hospitals: pa.Table  # one row per hospital, sorted
    months: pa.Table  # pre-settlement per hospital and discharge month
    summary: dict = field(default_factory=dict)


PASS_THROUGH = ("case_id", "hospital", "drg", "status")


def need_column(table: pa.Table, name: str, why: str) -> None:
    if name not in table.column_names:
        raise InputError(f"no column {name!r} in the cases ({why})")


def uses_insurance_type(pack: PaymentPack) -> bool:
    return bool(pack.rate.by_insurance_type or pack.fund.fund_ratio_by_insurance_type
                or any(isinstance(v, dict) for v in pack.rate.by_level.values()))


def needed_columns(pack: PaymentPack, cols: DrgColumns) -> list[tuple[str, str]]:
    """(column, why) of every case column a settlement under ``pack`` cannot do without."""
    need = [(cols.cost, "cost of each case"), (cols.hospital, "hospital of each case")]
    if uses_insurance_type(pack):
        need.append((cols.insurance_type, "the pack sets values by insurance type"))
    if pack.per_diem.enabled or pack.short_stay.enabled:
        need.append((cols.los, "per-diem and short-stay rules read the length of stay"))
    if pack.fund.patient_share in ("column", "column_ratio"):
        need.append((cols.patient_share, f"fund.patient_share = {pack.fund.patient_share!r}"))
    ss = pack.short_stay
    if ss.enabled and (ss.death_within_days is not None or ss.transfer_within_days is not None):
        need.append((cols.discharge, "short-stay death/transfer rules read the discharge status"))
    if pack.special_review.enabled and pack.special_review.application_column:
        need.append((pack.special_review.application_column, "special_review.application_column"))
    if pack.knobs.referral.enabled:
        need.append((cols.referred, "knobs.referral reads whether the case was referred from primary care"))
    return need


def uses_level(pack: PaymentPack) -> bool:
    return bool(pack.rate.by_level or pack.coefficients.by_level or pack.per_diem.bed_day_rate_by_level
                or (pack.knobs.referral.enabled and pack.knobs.referral.levels))


def value_lookup(values: np.ndarray, table: dict, default: float) -> np.ndarray:
    """Per distinct value, the table's number (default when absent); one entry more for null."""
    return np.array([float(table.get(v, default)) for v in values] + [default], float)


def _amounts(col) -> np.ndarray:
    """A weights-table column as float64, absurd values (beyond MAX_AMOUNT) as NaN."""
    return finite(pc.cast(col, pa.float64()).to_numpy(), MAX_AMOUNT)


def needs_alos(pack: PaymentPack) -> bool:
    ss = pack.short_stay
    return ss.enabled and (ss.los_ratio_below is not None or ss.method == "prorate")


class Weights:
    """The weights table, checked once; per batch, rw / mean_cost / mean_los per distinct DRG."""

    def __init__(self, weights: pa.Table, pack: PaymentPack):
        need = ["drg", "rw"]
        if pack.outlier.base == "group_mean_cost" or pack.outlier.overall_mean_cost == "weights":
            need.append("mean_cost")
        if needs_alos(pack):
            need.append("mean_los")
        if pack.outlier.overall_mean_cost == "weights":
            need.append("n")
        missing = [c for c in need if c not in weights.column_names]
        if missing:
            raise ValueError(f"weights table: missing column(s) {', '.join(missing)} (the pack needs them)")
        keys = pc.cast(weights["drg"], pa.string())
        if pc.count_distinct(keys).as_py() != len(keys):
            raise ValueError("weights table: a DRG appears more than once")
        self.keys = keys.combine_chunks()
        self.cols = {c: _amounts(weights[c]) if c in weights.column_names else np.full(len(keys), np.nan)
                     for c in ("rw", "mean_cost", "mean_los")}
        cbar = pack.outlier.overall_mean_cost
        if cbar == "weights":
            rw, mc, n = (_amounts(weights[c]) for c in ("rw", "mean_cost", "n"))
            ok = ~(np.isnan(rw) | np.isnan(mc) | np.isnan(n))
            den = sorted_sum(n[ok] * rw[ok])
            if not den > 0:
                raise ValueError("weights table: cannot derive the overall mean cost (no rows with n, rw and mean_cost)")
            cbar = sorted_sum(n[ok] * mc[ok]) / den  # the cost of one unit of weight
            if not MIN_MEAN_COST <= cbar <= MAX_RATE:
                raise ValueError(f"weights table: the overall mean cost per unit of weight (Σ n·mean_cost / Σ n·rw) "
                                 f"is {cbar:g}, outside {MIN_MEAN_COST:g}..{MAX_RATE:g}")
        self.cbar = float(cbar)

    def lookup(self, drg_values: np.ndarray) -> dict[str, np.ndarray]:
        """rw, mean_cost, mean_los per distinct DRG (NaN where the weights lack it; last: null DRG)."""
        pos = pc.index_in(pa.array(drg_values.tolist(), pa.string()), value_set=self.keys)
        pos = pos.to_numpy(zero_copy_only=False)
        out = {}
        ok = ~np.isnan(pos)
        for c, col in self.cols.items():
            v = np.full(len(drg_values) + 1, np.nan)
            v[:-1][ok] = col[pos[ok].astype(np.int64)]
            out[c] = v
        return out


def _hospital_key(hospitals: pa.Table | None) -> str | None:
    if hospitals is None:
        return None
    key = next((c for c in ("hospital_id", "hospital") if c in hospitals.column_names), None)
    if key is None:
        raise ValueError("hospital table: no hospital_id (or hospital) column")
    k = pc.cast(hospitals[key], pa.string())
    if pc.count_distinct(k).as_py() != len(k) or k.null_count:
        raise ValueError(f"hospital table: {key} must be unique and not empty")
    return key


class Hospitals:
    """The hospital table (optional), checked once: its rows by hospital, the level column, and
    (``knobs``) each quality rule's indicator per table row, computed from the table alone."""

    def __init__(self, hospitals: pa.Table | None):
        self.table = hospitals
        self.key = _hospital_key(hospitals)
        self.keys = pc.cast(hospitals[self.key], pa.string()).combine_chunks() if hospitals is not None else None
        self.levels = None  # (sorted level values, each table row's index)
        if hospitals is not None:
            lc = next((c for c in ("level", "hospital_level") if c in hospitals.column_names), None)
            if lc is not None:
                self.levels = encode(hospitals[lc])
        self.rules: list | None = None

    def knobs(self, pack: PaymentPack) -> None:
        """Read what the knobs need from the table, once; errors name the missing column."""
        if self.rules is None:
            self.rules = quality_rules(pack, self.table)
            sharing_adjustment(pack, np.zeros(1), self, np.array([], dtype=object))  # its checks, before any output

    def rows(self, hosp_values: np.ndarray) -> np.ndarray:
        """Row of the hospital table for each hospital (-1: not in the table)."""
        if self.table is None:
            return np.full(len(hosp_values), -1, np.int64)
        pos = pc.index_in(pa.array(hosp_values.tolist(), pa.string()), value_set=self.keys)
        return pc.fill_null(pos, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def quality_rules(pack: PaymentPack, hospitals: pa.Table | None) -> list:
    """(rule, indicator per hospital-table row) for each quality rule."""
    kq = pack.knobs.quality
    if not kq.enabled:
        return []
    if hospitals is None:
        raise ValueError("knobs.quality is enabled: give the hospital table (--hospitals)")
    rules = []
    for r in kq.rules:
        if r.column not in hospitals.column_names:
            raise ValueError(f"hospital table: no column {r.column!r} (knobs.quality rule {r.name!r})")
        if r.test == "flag":
            ind = flags(hospitals[r.column])
        else:
            v = numbers(hospitals, r.column, MAX_AMOUNT)
            ok = ~np.isnan(v)
            if r.test in ("above_mean", "below_mean"):
                if r.weight_column:
                    if r.weight_column not in hospitals.column_names:
                        raise ValueError(f"hospital table: no column {r.weight_column!r} (rule {r.name!r})")
                    wt = numbers(hospitals, r.weight_column, MAX_AMOUNT)
                    ok &= wt >= 0
                    mean = sorted_sum(wt[ok] * v[ok]) / sorted_sum(wt[ok]) if sorted_sum(wt[ok]) > 0 else np.nan
                else:
                    mean = sorted_sum(v[ok]) / ok.sum() if ok.any() else np.nan
                ind = ok & ((v > mean) if r.test == "above_mean" else (v < mean))
            else:
                k = math.ceil(r.share * ok.sum() - 1e-9)
                srt = np.sort(v[ok])
                if k == 0:
                    ind = np.zeros(len(v), bool)
                elif r.test == "top_share":
                    ind = ok & (v >= srt[-k])
                else:
                    ind = ok & (v <= srt[k - 1])
        rules.append((r, np.asarray(ind, bool)))
    return rules


def case_rates(pack: PaymentPack, base: float, level_values, level, ins_values, ins) -> tuple[np.ndarray, np.ndarray]:
    """Provisional rate per case: by_level[level][type] > by_level[level] > by_insurance_type[type] > base.
    Returns the rates and which cases fell back to the base because their level or insurance
    type was missing while the pack sets rates by it (counted, not an error)."""
    r = pack.rate
    grid = np.full((len(level_values) + 1, len(ins_values) + 1), base)  # last row/column: null
    for j, t in enumerate(ins_values):
        if t in r.by_insurance_type:
            grid[:, j] = r.by_insurance_type[t]
    for i, lv in enumerate(level_values):
        v = r.by_level.get(lv)
        if isinstance(v, dict):
            for j, t in enumerate(ins_values):
                if t in v:
                    grid[i, j] = v[t]
        elif v is not None:
            grid[i, :] = v
    fallback = np.zeros(len(level), bool)  # the pack sets rates by a key this case lacks
    if r.by_level:
        fallback |= level < 0
    if r.by_insurance_type or any(isinstance(v, dict) for v in r.by_level.values()):
        fallback |= ins < 0
    return grid[level, ins], fallback

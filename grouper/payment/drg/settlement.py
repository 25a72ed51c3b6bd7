"""DRG settlement (结算) of grouped cases under a payment pack, with value-based policy knobs.

Per case (domain notes 3.3-3.7): the payment standard P = RW x r x k_h x knob factor; the case
type (normal, high or low outlier, short stay, special review, per diem, ungroupable, ambiguous,
invalid) and its payment by the pack's formulas; the fund's part and the patient's; the
hospital's margin (payment - cost). Per hospital: totals, cases by type, surplus kept / overspend
borne (结余留用、超支不补, optionally shared), monthly pre-settlement with a reserve held back and the
year-end clearance, and the effect in yuan of each knob, as a waterfall: pack rate without knobs
-> referral uplift -> each quality rule -> renormalisation -> surplus/overspend sharing.

Every amount is ``s x a + c``: ``a`` scales with the rate (DRG-priced amounts), ``c`` does not
(FFS and bed-day amounts). Renormalisation therefore solves one linear equation for the rate
scale s.

Memory is bounded: the cases are read twice, one batch at a time, and nothing per case stays in
memory but the special-review candidates. Pass 1 gathers what needs the whole year: the hospitals, the special-review (特例单议) candidates
(only those rows: scope, cost ratio, case id, row number, and their two possible amounts), and
the totals renormalisation solves for. Pass 2 prices every case, hands the per-case batches on
in input order and adds up the hospital and monthly tables. With the payment standard as outlier
base and renormalisation on, the case types move with s; the DRG-priced rows are then spooled to
a temporary file in pass 1 and the fixed-point iteration re-reads that file, not the input.
Totals are exact (integer limbs, whole cents), so results do not depend on the order of the rows
or on how they are split into batches and files, not even in the last bit. Everything is
vectorised; Python loops run per batch and per distinct DRG, hospital, level or rule, never per
case. Rows that cannot be settled keep their row with a ``settle_status`` and are counted.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper._util.errors import CorruptInputError, InputError
from grouper.analytics.indices import ExactSum
from grouper.payment.pack import MAX_AMOUNT, MAX_RATE, MIN_MEAN_COST, PaymentPack

__all__ = ["CASE_TYPES", "SETTLE_STATUSES", "CaseFiles", "Columns", "SettlementResult", "settle", "settle_batches",
           "settle_files"]

CASE_TYPES = ("normal", "high", "low", "short_stay", "special_review", "per_diem", "ungroupable", "ambiguous",
              "invalid")
NORMAL, HIGH, LOW, SHORT, SPECIAL, PER_DIEM, UNGROUPABLE, AMBIGUOUS, INVALID = range(len(CASE_TYPES))
#: why a row was not settled; each row gets the first reason that applies, in this order
SETTLE_STATUSES = ("settled", "returned", "unknown_status", "no_cost", "no_los", "no_weight", "no_patient_share")
SETTLED, RETURNED, UNKNOWN_STATUS, NO_COST, NO_LOS, NO_WEIGHT, NO_SHARE = range(len(SETTLE_STATUSES))
GROUP_STATUS = ("grouped", "ungroupable", "ambiguous", "invalid")
DEFAULT_BATCH = 65_536


@dataclass(frozen=True)
class Columns:
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
class SettlementResult:
    cases: pa.Table | None  # one row per input row, in order (None when streamed to a file)
    hospitals: pa.Table  # one row per hospital, sorted
    months: pa.Table  # pre-settlement per hospital and discharge month
    summary: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- column helpers

def _encode(col) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct texts, each row's index among them or -1 for null): lookups per value."""
    if isinstance(col, pa.Array):
        col = pa.chunked_array([col])
    if not pa.types.is_dictionary(col.type):
        if not pa.types.is_string(col.type):
            col = pc.cast(col, pa.string())
        col = pc.dictionary_encode(col)
    elif not pa.types.is_string(col.type.value_type):
        col = pc.dictionary_encode(pc.cast(col, pa.string()))
    col = col.unify_dictionaries()
    if col.num_chunks == 0 or len(col) == 0:
        return np.array([], dtype=object), np.full(len(col), -1, np.int64)
    values = np.array(col.chunk(0).dictionary.to_pylist(), dtype=object)
    idx = np.concatenate([c.indices.fill_null(-1).to_numpy(zero_copy_only=False) for c in col.chunks]).astype(np.int64)
    order = np.argsort(values.astype(str), kind="stable")  # sorted: the output never depends on row order
    rank = np.empty(len(values), np.int64)
    rank[order] = np.arange(len(values))
    return values[order], np.where(idx >= 0, rank[np.maximum(idx, 0)], -1)


def _finite(x: np.ndarray) -> np.ndarray:
    """Values as float64, with NaN for non-finite ones and for any beyond MAX_AMOUNT in size
    (no amount, length of stay or weight is that large): they read as missing, never as money."""
    x = np.array(x, np.float64)
    x[~(np.abs(x) <= MAX_AMOUNT)] = np.nan
    return x


def _numbers(table: pa.Table, name: str) -> np.ndarray:
    """A numeric column as float64: nulls, non-finite and absurd values (beyond MAX_AMOUNT) are NaN,
    so a case cost of inf or 1e400 is ``no_cost`` (counted), never a high outlier."""
    try:
        return _finite(pc.cast(table[name], pa.float64()).to_numpy(zero_copy_only=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValueError(f"column {name!r} is not numeric ({str(exc).splitlines()[0]})") from None


def _flags(col) -> np.ndarray:
    """A yes/no column (bool, 0/1, 'true'/'1'/...): null and unreadable are no."""
    if pa.types.is_boolean(col.type):
        return pc.fill_null(col, False).to_numpy(zero_copy_only=False).astype(bool)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        return pc.fill_null(pc.not_equal(col, 0), False).to_numpy(zero_copy_only=False).astype(bool)
    text = pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(col, pa.string())))
    yes = pa.array(["1", "true", "yes", "y", "t", "是"])
    return pc.fill_null(pc.is_in(text, value_set=yes), False).to_numpy(zero_copy_only=False).astype(bool)


def _month(col) -> np.ndarray:
    """YYYYMM of a date/timestamp column (or ISO text), -1 where missing or unreadable."""
    t = col.type
    if pa.types.is_null(t):  # a file without the column, beside files with it
        return np.full(len(col), -1, np.int64)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        col = pc.strptime(pc.cast(col, pa.string()), format="%Y-%m-%d", unit="s", error_is_null=True)
    elif not (pa.types.is_date(t) or pa.types.is_timestamp(t)):
        raise ValueError(f"date column: type {t} is not a date")
    ym = pc.add(pc.multiply(pc.year(col), 100), pc.month(col))
    return pc.fill_null(ym, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _unique_small(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(x, return_inverse=True) for integers in a narrow range (months): O(n), no sort."""
    if len(x) == 0:
        return x[:0], np.zeros(0, np.int64)
    lo, hi = int(x.min()), int(x.max())
    if hi - lo > 1_000_000:
        return np.unique(x, return_inverse=True)
    present = np.bincount(x - lo, minlength=hi - lo + 1) > 0
    code = np.cumsum(present) - 1
    return np.flatnonzero(present) + lo, code[x - lo]


def _month_labels(months: np.ndarray) -> pa.Array:
    """"YYYY-MM" text of sorted distinct YYYYMM values (-1, missing, is null)."""
    return pa.array([f"{m // 100:04d}-{m % 100:02d}" if m >= 0 else None for m in months], pa.string())


def _month_text(ym: np.ndarray, months: np.ndarray | None = None) -> pa.DictionaryArray:
    """YYYYMM (-1 missing) as "YYYY-MM" text, built once per distinct month. ``months``: the
    sorted distinct months of the whole input, so that every batch shares one dictionary."""
    if months is None:
        months, inv = _unique_small(ym)
    else:
        inv = np.searchsorted(months, ym)
    return pa.DictionaryArray.from_arrays(pa.array(inv.astype(np.int32), mask=ym < 0), _month_labels(months))


def _sum(x: np.ndarray) -> float:
    """A sum that does not depend on the order of the values (they are summed sorted); for the
    small in-memory tables (weights, hospitals)."""
    return float(np.sort(x).sum()) if len(x) else 0.0


def _cents(x: np.ndarray) -> np.ndarray:
    """Money rounded to the fen as float whole cents: sums of these are exact in any order."""
    return np.rint(np.asarray(x, float) * 100.0)


_EXACT_CENTS = 2.0 ** 53  # whole cents up to this size are exact in float64
_INT64_ROOM = 2.0 ** 62  # sums stay below this, so int64 never wraps


def _cent_sums(key: np.ndarray, x: np.ndarray, size: int, into: np.ndarray, what: str) -> None:
    """Add the whole cents ``x`` per ``key`` to the int64 ``into``, exactly: the same totals in
    any row order, however the rows were batched. Each value is split into 26-bit halves whose
    float sums are exact (batches below 2^26 rows); a value that is not finite or beyond 2^53
    cents, or a total that would not fit in int64, is an error naming ``what``."""
    x = np.asarray(x, np.float64)
    if len(x) and not (np.abs(x) < _EXACT_CENTS).all():
        bad = x[~(np.abs(x) < _EXACT_CENTS)][0]
        raise _Overflow(f"cannot settle {what} exactly: an amount is {bad / 100:g} yuan (not finite, or "
                        f"{_EXACT_CENTS / 100:g} yuan or more)")
    step = 1 << 25
    for a in range(0, len(x), step):
        k, v = key[a:a + step], x[a:a + step]
        approx = np.bincount(k, v, size)
        if not (np.abs(into + approx) < _INT64_ROOM).all():
            raise _Overflow(f"cannot add up {what}: a total reaches {np.max(np.abs(into + approx)) / 100:g} yuan, "
                            "beyond what is summed exactly (int64 fen)")
        hi = np.floor(v / 67_108_864.0)  # 2^26
        lo = v - hi * 67_108_864.0
        into += (np.bincount(k, hi, size).astype(np.int64) << 26) + np.bincount(k, lo, size).astype(np.int64)


def _lookup(values: np.ndarray, table: dict, default: float) -> np.ndarray:
    """Per distinct value, the table's number (default when absent); one entry more for null."""
    return np.array([float(table.get(v, default)) for v in values] + [default], float)


class _Exact:
    """An exact running sum of float64 values (``ExactSum`` limbs kept as Python integers), so a
    total is the same whatever the order of the rows and however they were batched. ``what``
    names the total in the error for a value it cannot hold (not finite, or 2^64 and more)."""

    def __init__(self, what: str = "the payments to renormalise"):
        self.what = what
        self.limbs = [0] * ExactSum.LIMBS

    def add(self, x: np.ndarray) -> None:
        if len(x):
            try:
                limbs = ExactSum.limbs(np.asarray(x, float)).sum(axis=1)
            except ValueError:
                bad = x[~(np.abs(x) < 2.0 ** 64)][0]
                raise _Overflow(f"cannot add up {self.what}: a value is {bad:g} (not finite, or 2^64 or more)") \
                    from None
            self.limbs = [a + int(b) for a, b in zip(self.limbs, limbs)]

    def plus(self, other: _Exact) -> _Exact:
        e = _Exact()
        e.limbs = [a + b for a, b in zip(self.limbs, other.limbs)]
        return e

    def value(self) -> float:
        return float(ExactSum.to_float(np.array(self.limbs, dtype=object).reshape(-1, 1))[0])


class _Overflow(ValueError):
    pass


class _Vocab:
    """Distinct texts (hospitals) numbered in order of first sight, so that ids stay valid while
    batches stream; outputs are sorted by text at the end."""

    def __init__(self):
        self.ids: dict = {}
        self.values: list = []

    def codes(self, values: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Ids of a batch's rows from its (distinct values, index) encoding; -1 for null."""
        ids = []
        for v in values:
            i = self.ids.get(v)
            if i is None:
                i = self.ids[v] = len(self.values)
                self.values.append(v)
            ids.append(i)
        return np.array(ids + [-1], np.int64)[idx]  # idx -1 picks the trailing -1

    def sorted_order(self) -> np.ndarray:
        if not self.values:
            return np.zeros(0, np.int64)
        return np.argsort(np.array(self.values, dtype=object).astype(str), kind="stable")


# ----------------------------------------------------------------------------- fixed inputs: weights, hospitals

def _needs_alos(pack: PaymentPack) -> bool:
    ss = pack.short_stay
    return ss.enabled and (ss.los_ratio_below is not None or ss.method == "prorate")


class _Weights:
    """The weights table, checked once; per batch, rw / mean_cost / mean_los per distinct DRG."""

    def __init__(self, weights: pa.Table, pack: PaymentPack):
        need = ["drg", "rw"]
        if pack.outlier.base == "group_mean_cost" or pack.outlier.overall_mean_cost == "weights":
            need.append("mean_cost")
        if _needs_alos(pack):
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
        self.cols = {c: _finite(pc.cast(weights[c], pa.float64()).to_numpy()) if c in weights.column_names
                     else np.full(len(keys), np.nan) for c in ("rw", "mean_cost", "mean_los")}
        cbar = pack.outlier.overall_mean_cost
        if cbar == "weights":
            rw, mc, n = (_finite(pc.cast(weights[c], pa.float64()).to_numpy()) for c in ("rw", "mean_cost", "n"))
            ok = ~(np.isnan(rw) | np.isnan(mc) | np.isnan(n))
            den = _sum(n[ok] * rw[ok])
            if not den > 0:
                raise ValueError("weights table: cannot derive the overall mean cost (no rows with n, rw and mean_cost)")
            cbar = _sum(n[ok] * mc[ok]) / den  # the cost of one unit of weight
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


class _Hospitals:
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
                self.levels = _encode(hospitals[lc])
        self.rules: list | None = None

    def knobs(self, pack: PaymentPack) -> None:
        """Read what the knobs need from the table, once; errors name the missing column."""
        if self.rules is None:
            self.rules = _quality_rules(pack, self.table)
            _sharing(pack, np.zeros(1), self, np.array([], dtype=object))  # its checks, before any output

    def rows(self, hosp_values: np.ndarray) -> np.ndarray:
        """Row of the hospital table for each hospital (-1: not in the table)."""
        if self.table is None:
            return np.full(len(hosp_values), -1, np.int64)
        pos = pc.index_in(pa.array(hosp_values.tolist(), pa.string()), value_set=self.keys)
        return pc.fill_null(pos, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _quality_rules(pack: PaymentPack, hospitals: pa.Table | None) -> list:
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
            ind = _flags(hospitals[r.column])
        else:
            v = _numbers(hospitals, r.column)
            ok = ~np.isnan(v)
            if r.test in ("above_mean", "below_mean"):
                if r.weight_column:
                    if r.weight_column not in hospitals.column_names:
                        raise ValueError(f"hospital table: no column {r.weight_column!r} (rule {r.name!r})")
                    wt = _numbers(hospitals, r.weight_column)
                    ok &= wt >= 0
                    mean = _sum(wt[ok] * v[ok]) / _sum(wt[ok]) if _sum(wt[ok]) > 0 else np.nan
                else:
                    mean = _sum(v[ok]) / ok.sum() if ok.any() else np.nan
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


def _rates(pack: PaymentPack, base: float, level_values, level, ins_values, ins) -> tuple[np.ndarray, np.ndarray]:
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


# ----------------------------------------------------------------------------- preparation (per batch)

@dataclass
class _Prep:
    n: int
    kind: np.ndarray  # 0 grouped, 1 ungroupable, 2 ambiguous, 3 invalid, -1 other
    rw: np.ndarray
    base_cost: np.ndarray  # C̄_g
    alos: np.ndarray
    cost: np.ndarray
    los: np.ndarray
    share: np.ndarray
    rate: np.ndarray  # provisional rate per case (yuan per unit of weight)
    coef: np.ndarray  # k_h
    unit: np.ndarray  # RW x rate x k_h (the payment standard before knobs and scale)
    hid: np.ndarray  # hospital id in the run's vocabulary, -1 for null
    status: np.ndarray  # settle status (independent of the rate)
    per_diem: np.ndarray  # bool
    per_diem_amount: np.ndarray
    short: np.ndarray  # bool: a short-stay trigger fired
    applied: np.ndarray | None  # special-review application flags
    fund_ratio: np.ndarray | None
    cbar: float  # C̄ of the H1 add-on
    priced: np.ndarray  # DRG-priced rows: grouped, settled, not per diem
    rows: np.ndarray  # row numbers in the whole input
    case_id: pa.ChunkedArray
    month: np.ndarray | None = None  # YYYYMM, -1 missing; None without a date column
    level: np.ndarray | None = None  # index into level_values, -1 unknown
    level_values: np.ndarray | None = None
    fallback: np.ndarray | None = None  # rate fell back to the base (level/insurance type missing)
    referral: np.ndarray | None = None  # referral factor per case
    referral_hits: int = 0
    quality: list = field(default_factory=list)  # per quality rule: factor per case
    table: pa.Table | None = None


def _need(table: pa.Table, name: str, why: str) -> None:
    if name not in table.column_names:
        raise InputError(f"no column {name!r} in the cases ({why})")


def _uses_insurance_type(pack: PaymentPack) -> bool:
    return bool(pack.rate.by_insurance_type or pack.fund.fund_ratio_by_insurance_type
                or any(isinstance(v, dict) for v in pack.rate.by_level.values()))


def needed_columns(pack: PaymentPack, cols: Columns) -> list[tuple[str, str]]:
    """(column, why) of every case column a settlement under ``pack`` cannot do without."""
    need = [(cols.cost, "cost of each case"), (cols.hospital, "hospital of each case")]
    if _uses_insurance_type(pack):
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


def _uses_level(pack: PaymentPack) -> bool:
    return bool(pack.rate.by_level or pack.coefficients.by_level or pack.per_diem.bed_day_rate_by_level
                or (pack.knobs.referral.enabled and pack.knobs.referral.levels))


class _Run:
    """What one settlement knows before and between the passes."""

    def __init__(self, pack: PaymentPack, weights: pa.Table, hospitals: pa.Table | None, cols: Columns):
        self.pack, self.cols = pack, cols
        self.weights = _Weights(weights, pack)
        self.hosp = _Hospitals(hospitals)
        self.vocab = _Vocab()
        self.base = float("nan")  # provisional base rate, once known
        self.fixed = pack.outlier.base == "group_mean_cost"  # case types independent of rate and knobs
        sr = pack.special_review
        self.review = sr.enabled and sr.cap > 0
        self.level_seen = False  # any level at all (the pack may need one)

    def prepare(self, table: pa.Table, row0: int) -> _Prep:
        """Everything about a batch of cases that does not depend on the rest of the input."""
        pack, cols = self.pack, self.cols
        n = table.num_rows
        if cols.status not in table.column_names or cols.drg not in table.column_names:
            raise ValueError(f"the cases are not grouped: no {cols.status!r}/{cols.drg!r} column "
                             "(group them first, or give raw cases with a ruleset)")
        for name, why in needed_columns(pack, cols):
            _need(table, name, why)
        st_values, st = _encode(table[cols.status])
        kind_of = np.array([GROUP_STATUS.index(v) if v in GROUP_STATUS else -1 for v in st_values] + [-1], np.int64)
        kind = kind_of[st]

        drg_values, d = _encode(table[cols.drg])
        w = self.weights.lookup(drg_values)
        rw, base_cost, alos = w["rw"][d], w["mean_cost"][d], w["mean_los"][d]
        cost = _numbers(table, cols.cost)

        hosp_values, hosp = _encode(table[cols.hospital])
        hid = self.vocab.codes(hosp_values, hosp)
        trow = self.hosp.rows(hosp_values)
        if cols.level in table.column_names:
            level_values, level = _encode(table[cols.level])
        elif self.hosp.levels is not None:
            level_values, idx = self.hosp.levels
            per_h = np.append(np.where(trow >= 0, idx[np.maximum(trow, 0)], -1), -1)
            level = per_h[hosp]
        else:
            level_values, level = np.array([], dtype=object), np.full(n, -1, np.int64)
        self.level_seen |= len(level_values) > 0
        ins_values, ins = np.array([], object), np.full(n, -1, np.int64)
        if _uses_insurance_type(pack):
            ins_values, ins = _encode(table[cols.insurance_type])

        needs_los = pack.per_diem.enabled or pack.short_stay.enabled
        los = _numbers(table, cols.los) if needs_los else np.full(n, np.nan)
        share = np.full(n, np.nan)
        if pack.fund.patient_share in ("column", "column_ratio"):
            share = _numbers(table, cols.patient_share)

        rate, fallback = _rates(pack, self.base, level_values, level, ins_values, ins)

        # hospital coefficient k_h: by hospital id, else by level, else default
        co = pack.coefficients
        k_h = _lookup(hosp_values, co.by_hospital, np.nan)[hosp]
        k_l = _lookup(level_values, co.by_level, co.default)[level]
        coef = np.where(np.isnan(k_h), k_l, k_h)

        # settle status: the first reason that applies, in the order of SETTLE_STATUSES
        status = np.full(n, SETTLED, np.int8)
        unusual = {1: pack.unusual.ungroupable, 2: pack.unusual.ambiguous, 3: pack.unusual.invalid}
        for k, rule in unusual.items():
            if rule.method == "return":
                status[kind == k] = RETURNED
        status[kind < 0] = UNKNOWN_STATUS
        status[(status == SETTLED) & ~(cost >= 0)] = NO_COST
        grouped = (kind == 0) & (status == SETTLED)
        if needs_los:
            status[grouped & ~(los >= 0)] = NO_LOS
            grouped &= status == SETTLED

        # out of scope: per diem (no weight needed)
        pd = pack.per_diem
        per_diem = np.zeros(n, bool)
        per_diem_amount = np.zeros(n)
        if pd.enabled:
            prefixes = np.array([any(str(v).startswith(x) for x in pd.drg_prefixes) for v in drg_values] + [False])
            long_ = prefixes[d] | ((los >= pd.los_max_excl) if pd.los_max_excl is not None else False)
            short_ = ((los <= pd.los_min_excl) if pd.los_min_excl is not None else np.zeros(n, bool)) & ~long_
            per_diem = grouped & (long_ | short_)
            bed = _lookup(level_values, pd.bed_day_rate_by_level, pd.bed_day_rate or np.nan)[level]
            by_bed = np.where(short_, pd.short_method == "bed_day", pd.method == "bed_day")
            # a bed-day stay of 0 days (same-day discharge) counts as one day
            per_diem_amount = np.where(per_diem, np.where(by_bed, bed * np.maximum(los, 1), cost), 0.0)
        priced = grouped & ~per_diem
        need_mean = pack.outlier.base == "group_mean_cost"
        status[priced & (~(rw > 0) | (need_mean & ~(base_cost > 0)))] = NO_WEIGHT
        priced &= status == SETTLED

        # short stay / early death / transfer triggers
        ss = pack.short_stay
        short = np.zeros(n, bool)
        if ss.enabled:
            if ss.los_ratio_below is not None:
                short |= los < ss.los_ratio_below * alos  # false where the group has no ALOS
            if ss.death_within_days is not None or ss.transfer_within_days is not None:
                dis = pc.cast(table[cols.discharge], pa.string())
                for codes, days in ((ss.death_codes, ss.death_within_days),
                                    (ss.transfer_codes, ss.transfer_within_days)):
                    if days is not None:
                        hit = pc.fill_null(pc.is_in(dis, value_set=pa.array(list(codes))), False)
                        short |= hit.to_numpy(zero_copy_only=False) & (los <= days)
            short &= priced
            if ss.method == "prorate":  # pro rata needs the group's ALOS
                status[short & ~(alos > 0)] = NO_WEIGHT
                priced &= status == SETTLED
                short &= priced
        if pack.fund.patient_share in ("column", "column_ratio"):
            status[(status == SETTLED) & ~(share >= 0)] = NO_SHARE
        priced &= status == SETTLED
        per_diem &= status == SETTLED
        short &= status == SETTLED

        applied = None
        sr = pack.special_review
        if sr.enabled and sr.application_column:
            applied = _flags(table[sr.application_column])
        fund_ratio = None
        if pack.fund.patient_share == "ratio":
            fr = pack.fund
            fund_ratio = _lookup(ins_values, fr.fund_ratio_by_insurance_type, fr.fund_ratio)[ins]
        month = None
        if pack.settlement.monthly and cols.date in table.column_names:
            month = _month(table[cols.date])

        unit = np.where(priced, rw * rate * coef, 0.0)
        rows = np.arange(row0, row0 + n, dtype=np.int64)
        case_id = table[cols.case_id] if cols.case_id in table.column_names else pa.chunked_array(
            [pa.array(rows)])  # no ids: row numbers (then ties follow row order)
        p = _Prep(n, kind, rw, base_cost, alos, cost, los, share, rate, coef, np.nan_to_num(unit), hid, status,
                  per_diem, per_diem_amount, short, applied, fund_ratio, self.weights.cbar, priced, rows, case_id,
                  month, level, level_values, fallback, table=table)

        # knob factors per case: referral uplift, then each quality rule's hospital factor
        self.hosp.knobs(pack)
        kr = pack.knobs.referral
        if kr.enabled:
            hit = _flags(table[cols.referred]) & priced & (np.nan_to_num(rw) >= kr.min_rw)
            if kr.levels:
                ok = np.array([v in kr.levels for v in level_values] + [False])
                hit &= ok[level]
            p.referral = np.where(hit, 1.0 + kr.uplift, 1.0)
            p.referral_hits = int(hit.sum())
        for rule, ind in self.hosp.rules:
            per_h = np.append(np.where(trow >= 0, ind[np.maximum(trow, 0)], False), False)
            p.quality.append(np.where(per_h, 1.0 + rule.delta, 1.0)[hosp])
        return p


def _factors(p: _Prep) -> list[np.ndarray]:
    """The knob factor per case after each waterfall step before renormalisation: no knobs,
    then the referral uplift (when on), then each quality rule in order."""
    factor = np.ones(p.n)
    out = [factor]
    factor = factor * (p.referral if p.referral is not None else 1.0)
    if p.referral is not None:
        out.append(factor)
    for q in p.quality:
        factor = factor * q
        out.append(factor)
    return out


# ----------------------------------------------------------------------------- pricing

@dataclass
class _Priced:
    """One evaluation: types and amounts ``s x (factor x a1 + a2) + c``; ``rate_based`` rows are
    DRG-priced (their amount is a fund amount on a fund basis)."""

    types: np.ndarray
    a1: np.ndarray
    a2: np.ndarray
    c: np.ndarray
    rate_based: np.ndarray

    def take(self, idx: np.ndarray) -> _Priced:
        return _Priced(self.types[idx], self.a1[idx], self.a2[idx], self.c[idx], self.rate_based[idx])


def _rows(p: _Prep, idx: np.ndarray) -> _Prep:
    """The fields ``_money`` reads, for some rows only."""
    return replace(p, n=len(idx), status=p.status[idx], cost=p.cost[idx], share=p.share[idx],
                   fund_ratio=None if p.fund_ratio is None else p.fund_ratio[idx])


def _classify(p: _Prep, pack: PaymentPack, factor: np.ndarray, s: float, chosen: np.ndarray | None = None) -> _Priced:
    """Case types and amounts at rate scale ``s`` with knob ``factor``; ``chosen`` marks the rows
    special review took (the selection needs the whole input, see ``_Candidates``). Thresholds
    depend on s and factor only when the outlier base is the payment standard."""
    o = pack.outlier
    n = p.n
    types = np.full(n, -1, np.int8)
    a1 = np.zeros(n)
    a2 = np.zeros(n)
    c = np.zeros(n)
    rb = np.zeros(n, bool)  # priced by the rate
    settled = p.status == SETTLED
    returned = p.status == RETURNED
    # the grouper could not place these: FFS x discount, or returned for correction
    for k, (code, rule) in {1: (UNGROUPABLE, pack.unusual.ungroupable), 2: (AMBIGUOUS, pack.unusual.ambiguous),
                            3: (INVALID, pack.unusual.invalid)}.items():
        rows = (p.kind == k) & (settled | returned)
        types[rows] = code
        if rule.method == "ffs":
            c[rows & settled] = p.cost[rows & settled] * rule.discount
    types[p.per_diem] = PER_DIEM
    c[p.per_diem] = p.per_diem_amount[p.per_diem]

    priced = p.priced
    std = p.unit * factor * s  # P per case (0 off the priced rows)
    base = p.base_cost if o.base == "group_mean_cost" else std
    H = o.high_multiple(np.nan_to_num(p.rw))
    high_thr = H * base
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(base > 0, p.cost / base, np.inf)
    high = priced & (p.cost >= high_thr)
    short = priced & p.short & ~high
    low = priced & ~high & ~short & (p.cost <= o.low_multiple * base)
    normal = priced & ~high & ~short & ~low
    types[normal] = NORMAL
    a1[normal] = p.unit[normal]
    rb[normal] = True
    types[high] = HIGH
    rb[high] = o.high_method != "H2"
    if o.high_method == "H1":  # r x [RW + (cost - H x base) / C̄]: the add-on is not scaled by k_h or knobs
        a1[high] = p.unit[high]
        a2[high] = p.rate[high] * (p.cost[high] - high_thr[high]) / p.cbar
    elif o.high_method == "H2":  # alpha x cost (FFS after review)
        c[high] = o.h2_alpha * p.cost[high]
    else:  # H3: P x [(cost / base - H) + 1]
        a1[high] = p.unit[high] * (ratio[high] - H[high] + 1)
    types[short] = SHORT
    rb[short] = pack.short_stay.method == "prorate"
    if pack.short_stay.method == "prorate":  # min(P, P x LOS / ALOS)
        a1[short] = p.unit[short] * np.minimum(1.0, p.los[short] / p.alos[short])
    else:
        c[short] = p.cost[short]
    types[low] = LOW
    rb[low] = o.low_method == "L2"
    if o.low_method == "L1":
        c[low] = p.cost[low]
    else:  # L2: P x cost / base
        a1[low] = p.unit[low] * ratio[low]
    q = _Priced(types, a1, a2, c, rb)
    if chosen is not None:
        _special(q, p, pack, chosen)
    return q


def _special(q: _Priced, p: _Prep, pack: PaymentPack, chosen: np.ndarray) -> None:
    """Special review (特例单议) takes these rows: paid ffs_ratio x cost, not by the rate."""
    q.types[chosen] = SPECIAL
    q.rate_based[chosen] = False
    q.a1[chosen] = q.a2[chosen] = 0.0
    q.c[chosen] = pack.special_review.ffs_ratio * p.cost[chosen]


def _candidates(p: _Prep, pack: PaymentPack, factor, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Special-review candidates (DRG-priced, cost >= k x base, or applied for) and every row's
    cost ratio, the same numbers ``_classify`` computes."""
    sr = pack.special_review
    base = p.base_cost if pack.outlier.base == "group_mean_cost" else p.unit * factor * s
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(base > 0, p.cost / base, np.inf)
    cand = p.priced & (p.applied if p.applied is not None else (ratio >= sr.min_cost_ratio))
    return cand, ratio


def _money(p: _Prep, pack: PaymentPack, q: _Priced, factor: np.ndarray, s: float):
    """(payment, fund, patient share) per case, unrounded; NaN off the settled rows."""
    amount = s * (factor * q.a1 + q.a2) + q.c
    method = pack.fund.patient_share
    settled = p.status == SETTLED
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "column":
            def split(pay):
                return pay - p.share
        elif method == "column_ratio":
            def split(pay):
                return np.where(p.cost > 0, pay * (1 - p.share / p.cost), pay)
        else:
            def split(pay):
                return pay * p.fund_ratio
        if pack.basis == "fund":  # DRG-priced amounts are the fund's; the patient's share comes on top
            if method == "ratio":
                pay_rb = amount / p.fund_ratio
            else:
                pay_rb = amount + p.share
            payment = np.where(q.rate_based, pay_rb, amount)
            fund = np.where(q.rate_based, amount, split(amount))
        else:
            payment = amount
            fund = split(amount)
    payment = np.where(settled, payment, np.nan)
    fund = np.where(settled, fund, np.nan)
    return payment, fund, payment - fund


def _target(p: _Prep, pack: PaymentPack, q: _Priced, factor, s: float) -> np.ndarray:
    """What renormalisation adds up per case: the payment, or the fund's part on a fund basis."""
    pay, fund, _ = _money(p, pack, q, factor, s)
    return fund if pack.basis == "fund" else pay


class _Candidates:
    """Special-review candidates of one pricing (knob step, rate scale), gathered batch by batch:
    only the candidate rows are kept (scope, cost ratio, case id, row number). The cap needs the
    whole input, so the totals asked for in ``evals`` ((step, s) pairs) are summed exactly over
    the other settled rows, and each candidate's amount is kept both ways (taken by special
    review or not) until ``select`` knows which."""

    def __init__(self, evals: Iterable[tuple[int, float]] = ()):
        self.scope, self.ratio, self.rows, self.ids = [], [], [], []
        self.evals = list(evals)
        self.rest = [_Exact() for _ in self.evals]
        self.as_type = [[] for _ in self.evals]
        self.as_special = [[] for _ in self.evals]

    def add(self, p: _Prep, pack: PaymentPack, cand: np.ndarray, ratio: np.ndarray, scope: np.ndarray,
            q: _Priced | None = None, factors: list | None = None) -> None:
        idx = np.flatnonzero(cand)
        self.scope.append(scope[idx])
        self.ratio.append(ratio[idx])
        self.rows.append(p.rows[idx])
        ids = p.case_id.take(pa.array(idx))
        if pa.types.is_dictionary(ids.type):
            ids = pc.cast(ids, ids.type.value_type)
        self.ids.append(ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids)
        if not self.evals:
            return
        sub, qs = _rows(p, idx), q.take(idx)
        _special(qs, sub, pack, np.ones(len(idx), bool))
        rest = (p.status == SETTLED) & ~cand
        for j, (k, s) in enumerate(self.evals):
            x = _target(p, pack, q, factors[k], s)
            self.rest[j].add(x[rest])
            self.as_type[j].append(x[idx])
            self.as_special[j].append(_target(sub, pack, qs, factors[k][idx], s))

    def select(self, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows taken, sorted; which kept candidates were taken): per scope at most ``allowed``,
        highest cost ratio first, ties by case id, then row, so the choice does not depend on
        row order or batching."""
        rows = np.concatenate(self.rows) if self.rows else np.zeros(0, np.int64)
        if len(rows) == 0:
            return rows, np.zeros(0, bool)
        scope = np.concatenate(self.scope)
        ids = self.ids
        if len({a.type for a in ids}) > 1:
            ids = [pc.cast(a, pa.string()) for a in ids]
        t = pa.table({"scope": scope, "ratio": np.concatenate(self.ratio), "case_id": pa.chunked_array(ids),
                      "row": rows})
        order = pc.sort_indices(t, [("scope", "ascending"), ("ratio", "descending"), ("case_id", "ascending"),
                                    ("row", "ascending")]).to_numpy()
        sc = scope[order]
        first = np.r_[0, np.flatnonzero(np.diff(sc)) + 1]
        rank = np.arange(len(sc)) - np.repeat(first, np.diff(np.r_[first, len(sc)]))
        taken = np.zeros(len(rows), bool)
        taken[order[rank < allowed[sc]]] = True
        return np.sort(rows[taken]), taken

    def totals(self, taken: np.ndarray) -> list[_Exact]:
        """The exact total of each eval, once ``select`` has said which candidates were taken."""
        out = []
        for j in range(len(self.evals)):
            e = self.rest[j].plus(_Exact())
            if len(taken):
                e.add(np.where(taken, np.concatenate(self.as_special[j]), np.concatenate(self.as_type[j])))
            out.append(e)
        return out


def _in_batch(chosen: np.ndarray | None, p: _Prep) -> np.ndarray | None:
    """The rows of a sorted row-number array that fall in this batch, as a mask."""
    if chosen is None:
        return None
    mask = np.zeros(p.n, bool)
    if p.n:
        lo, hi = np.searchsorted(chosen, [p.rows[0], p.rows[-1] + 1])
        mask[chosen[lo:hi] - p.rows[0]] = True
    return mask


class _Spool:
    """The DRG-priced rows of pass 1, written to a temporary Arrow file: with the payment
    standard as outlier base the case types move with the rate scale, and each step of its
    fixed point re-reads this (about 100 bytes per priced case) instead of the input."""

    NUM = ("rw", "alos", "cost", "los", "share", "rate", "unit", "fund_ratio", "factor")

    #: spool folders of runs that were killed (their process is gone): removed by the next run
    STALE = re.compile(r"drg-settle-(?P<pid>\d+)-[a-z0-9_]{8}")

    def __init__(self):
        from grouper.io import sweep_stale

        sweep_stale(tempfile.gettempdir(), self.STALE)
        self.dir = tempfile.mkdtemp(prefix=f"drg-settle-{os.getpid()}-")
        self.path = Path(self.dir) / "priced.arrow"
        self.writer = None
        self.schema = None

    def add(self, p: _Prep, factor: np.ndarray) -> None:
        i = np.flatnonzero(p.priced)
        cols = {name: (getattr(p, name) if name != "factor" else factor) for name in self.NUM}
        cols["fund_ratio"] = p.fund_ratio if p.fund_ratio is not None else np.full(p.n, np.nan)
        arrays = {k: pa.array(v[i]) for k, v in cols.items()}
        arrays["short"] = pa.array(p.short[i])
        arrays["applied"] = pa.array(p.applied[i] if p.applied is not None else np.zeros(len(i), bool))
        arrays["hid"] = pa.array(p.hid[i])
        arrays["row"] = pa.array(p.rows[i])
        ids = p.case_id.take(pa.array(i))
        if pa.types.is_dictionary(ids.type):
            ids = pc.cast(ids, ids.type.value_type)
        arrays["case_id"] = ids.combine_chunks()  # one type in every batch (see ``_conform``)
        b = pa.RecordBatch.from_pydict(arrays)
        if self.writer is None:
            self.schema = b.schema
            self.writer = pa.ipc.new_file(str(self.path), b.schema)
        self.writer.write_batch(b)

    def close_writer(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def batches(self, applied: bool, ratio: bool, cbar: float) -> Iterator[tuple[_Prep, np.ndarray]]:
        """The spooled rows as small preparations of priced rows, with their final knob factor."""
        if self.schema is None:
            return
        with pa.OSFile(str(self.path)) as f:  # read, not memory-mapped: memory stays bounded
            reader = pa.ipc.open_file(f)
            for i in range(reader.num_record_batches):
                yield self._prep(reader.get_batch(i), applied, ratio, cbar)

    @staticmethod
    def _prep(b: pa.RecordBatch, applied: bool, ratio: bool, cbar: float) -> tuple[_Prep, np.ndarray]:
        v = {k: b.column(k).to_numpy(zero_copy_only=False) for k in b.schema.names if k != "case_id"}
        n = b.num_rows
        p = _Prep(n, np.zeros(n, np.int64), v["rw"], np.full(n, np.nan), v["alos"], v["cost"], v["los"], v["share"],
                  v["rate"], np.ones(n), v["unit"], v["hid"], np.full(n, SETTLED, np.int8), np.zeros(n, bool),
                  np.zeros(n), v["short"].astype(bool), v["applied"].astype(bool) if applied else None,
                  v["fund_ratio"] if ratio else None, cbar, np.ones(n, bool), v["row"],
                  pa.chunked_array([b.column("case_id")]))
        return p, v["factor"]

    def remove(self) -> None:
        self.close_writer()
        shutil.rmtree(self.dir, ignore_errors=True)


# ----------------------------------------------------------------------------- the passes

def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    """A batch as a table with every column of ``schema`` (all the inputs together), one type
    per column: null where this input lacks the column, cast where its type differs."""
    if batch.schema.names == schema.names and batch.schema.types == schema.types:
        return pa.Table.from_batches([batch])
    have = dict(zip(batch.schema.names, batch.columns))
    cols = []
    for f in schema:
        c = have.get(f.name)
        cols.append(pa.nulls(batch.num_rows, f.type) if c is None else c if c.type == f.type else c.cast(f.type))
    return pa.Table.from_arrays(cols, schema=pa.schema(list(schema)))


def _unified_schema(schemas: Iterable[pa.Schema]) -> pa.Schema:
    """The columns of several inputs together, in order of first appearance; a column whose
    type differs between inputs becomes text."""
    types: dict[str, pa.DataType] = {}
    for s in schemas:
        for f in s:
            if f.name not in types or pa.types.is_null(types[f.name]):
                types[f.name] = f.type
            elif f.type != types[f.name] and not pa.types.is_null(f.type):
                types[f.name] = pa.string()
    return pa.schema(list(types.items()))


PASS_THROUGH = ("case_id", "hospital", "drg", "status")


class _Pass1:
    """Pass 1: what needs the whole input. Hospitals (the run's vocabulary), their levels, the
    discharge months, DRG-priced cases per special-review scope, the special-review candidates of
    each pricing that needs them, the totals renormalisation solves for, the sum of the weights,
    and whether pass-through dictionaries change between batches."""

    def __init__(self, run: _Run, steps_before: int):
        pack = run.pack
        self.run = run
        renorm = pack.rate.renormalize
        self.last = steps_before - 1
        knobs_target = renorm == "knobs"
        # special-review candidates, and the totals to solve for: with C̄_g as outlier base one
        # classification serves every step; with P as base each step at the pack rate has its own
        self.cands: dict = {}
        if run.fixed:
            evals = [(self.last, 0.0), (self.last, 1.0)] if renorm != "none" else []
            if knobs_target:
                evals.append((0, 1.0))
            if run.review or evals:
                self.cands[None] = _Candidates(evals)
        else:
            for k in range(steps_before):
                ev = [(k, 0.0), (k, 1.0)] if (renorm != "none" and k == self.last) else []
                if knobs_target and k == 0:
                    ev.append((0, 1.0))
                if run.review or ev:
                    self.cands[k] = _Candidates(ev)
        self.spool = _Spool() if (renorm != "none" and not run.fixed) else None
        self.fixed_part = _Exact()  # settled rows outside DRG pricing: the same at any rate scale
        self.weight = _Exact("the weights of the cases")
        self.priced_n: dict[int, int] = {}
        self.level_pairs: set = set()
        self.months: set = set()
        self.dicts: dict[str, list] = {}  # role -> [first dictionary, changes]
        self.n = 0

    def add(self, p: _Prep) -> None:
        run, pack, cols = self.run, self.run.pack, self.run.cols
        self.n += p.n
        self.weight.add(p.rw[(p.kind == 0) & ~np.isnan(p.rw)])
        slot = p.hid + 1
        scope = _scope(p, pack)
        cnt = np.bincount(scope[p.priced])
        for a in np.flatnonzero(cnt).tolist():
            self.priced_n[a] = self.priced_n.get(a, 0) + int(cnt[a])
        nl = len(p.level_values)
        pairs = np.flatnonzero(np.bincount(slot * (nl + 1) + np.where(p.level >= 0, p.level, nl)))
        names = list(p.level_values) + [None]
        self.level_pairs.update((int(k // (nl + 1)), names[k % (nl + 1)]) for k in pairs.tolist())
        if p.month is not None:
            self.months.update(_unique_small(p.month)[0].tolist())
        for role in PASS_THROUGH:
            c = p.table[getattr(cols, role)] if getattr(cols, role) in p.table.column_names else None
            if c is not None and pa.types.is_dictionary(c.type) and c.num_chunks:
                d = c.chunk(0).dictionary
                seen = self.dicts.setdefault(role, [d, False])
                seen[1] |= c.num_chunks > 1 or not d.equals(seen[0])
        if not self.cands and self.spool is None:
            return
        factors = _factors(p)
        q_last = None
        for key, cd in self.cands.items():
            k = self.last if key is None else key
            q = _classify(p, pack, factors[k], 1.0) if cd.evals else None
            if k == self.last:
                q_last = q
            cand, ratio = _candidates(p, pack, factors[k], 1.0)
            if not run.review:
                cand = np.zeros(p.n, bool)
            cd.add(p, pack, cand, ratio, scope, q, factors)
        if self.spool is not None:  # the rows outside DRG pricing pay the same at any rate scale
            other = (p.status == SETTLED) & ~p.priced
            self.fixed_part.add(_target(p, pack, q_last, factors[self.last], 1.0)[other])
            self.spool.add(p, factors[self.last])

    def allowed(self) -> np.ndarray:
        """Special-review cap per scope slot: floor(cap x DRG-priced cases)."""
        size = len(self.run.vocab.values) + 1
        denom = np.zeros(size, np.int64)
        for a, b in self.priced_n.items():
            denom[a] = b
        return np.floor(self.run.pack.special_review.cap * denom + 1e-9).astype(np.int64)


def _scope(p: _Prep, pack: PaymentPack) -> np.ndarray:
    return p.hid + 1 if pack.special_review.scope == "hospital" else np.zeros(p.n, np.int64)


def _spool_pass(run: _Run, spool: _Spool, s: float, allowed: np.ndarray, evals: bool):
    """One read of the spooled priced rows with case types at rate scale ``s``: the special-review
    rows taken there and, with ``evals``, the (scale 0, scale 1) totals of those rows."""
    pack = run.pack
    sr = pack.special_review
    cd = _Candidates([(0, 0.0), (0, 1.0)] if evals else [])
    for sp, f in spool.batches(sr.enabled and sr.application_column is not None,
                               pack.fund.patient_share == "ratio", run.weights.cbar):
        cand, ratio = _candidates(sp, pack, f, s)
        if not run.review:
            cand = np.zeros(sp.n, bool)
        cd.add(sp, pack, cand, ratio, _scope(sp, pack), _classify(sp, pack, f, s) if evals else None, [f])
    rows, taken = cd.select(allowed)
    return rows, (cd.totals(taken) if evals else None)


def _solve(run: _Run, one: _Pass1, target: float, totals: dict, allowed: np.ndarray) -> float:
    """The rate scale s at which the total (payment, or fund on a fund basis) equals ``target``.
    Amounts are affine in s for fixed case types; with the payment standard as outlier base the
    types move with s, so the fit is repeated until s settles (the residual is reported), each
    time over the spooled priced rows."""
    last = one.last
    t0, t1 = totals[(last, 0.0)], totals[(last, 1.0)]
    s = 1.0
    for it in range(50):
        if it:
            try:
                _, (a, b) = _spool_pass(run, one.spool, s, allowed, True)
            except _Overflow:  # the fixed point runs away: amounts of 2^64 yuan and more
                raise ValueError(f"renormalisation: the rate scale does not settle (at scale {s:.3g} the case "
                                 "types move so that the payments grow without bound); no rate meets the "
                                 "target with the payment standard as outlier base") from None
            # exact: the spooled rows plus the part that does not move, one sum over every settled row
            t0, t1 = a.plus(one.fixed_part).value(), b.plus(one.fixed_part).value()
        if t1 == t0:
            raise ValueError("renormalisation: no settled case is paid by the rate, so no rate meets the target")
        s_new = (target - t0) / (t1 - t0)
        if not s_new > 0:
            raise ValueError(f"renormalisation: the target {target:,.2f} is below the payments that do not scale "
                             f"with the rate ({t0:,.2f}: FFS, bed-day, special review)")
        done = run.fixed or abs(s_new - s) <= 1e-13 * s_new
        s = s_new
        if done:
            break
    return s


class _Pass2:
    """Pass 2: each batch priced at every waterfall step, the per-case output batch, and the
    sums per hospital slot and per (hospital, month) in whole cents (exact in any order)."""

    def __init__(self, run: _Run, steps: list, s: float, presettle_step: int, out_types: dict, months: np.ndarray):
        self.run, self.steps, self.s, self.presettle_step = run, steps, s, presettle_step
        self.out_types = out_types
        # sorted distinct discharge months of the input (-1: none): one dictionary for every
        # batch's month column, and the columns of the (hospital, month) pre-settlement grid
        self.months = months if len(months) else np.array([-1], np.int64)
        self.month_values = months if (months >= 0).any() else None
        lo, hi = int(self.months[0]), int(self.months[-1])
        self.month_lo, self.month_lut = (lo, None) if hi - lo > 1_000_000 else \
            (lo, np.zeros(hi - lo + 1, np.int64))
        if self.month_lut is not None:
            self.month_lut[self.months - lo] = np.arange(len(self.months))
        ns = self.nslots = len(run.vocab.values) + 1
        self.m = np.zeros((3, ns * len(self.months)), np.int64)  # cases, pre-settled payment, pre-settled fund (fen)
        self.cases = np.zeros(ns, np.int64)
        self.settled = np.zeros(ns, np.int64)
        self.types = np.zeros((ns, len(CASE_TYPES)), np.int64)
        # sums in whole fen, int64: exact in any order (float sums beyond 2^53 fen are not)
        self.money = {k: np.zeros(ns, np.int64) for k in ("cost", "payment", "fund_payment", "patient_share",
                                                          "presettled")}
        self.step_pay = np.zeros((len(steps), ns), np.int64)
        self.status = np.zeros(len(SETTLE_STATUSES), np.int64)
        self.fallback = self.no_month = self.referral = self.negative = 0

    def add(self, p: _Prep) -> pa.RecordBatch:
        run, pack = self.run, self.run.pack
        if len(run.vocab.values) + 1 != self.nslots:
            raise ValueError("the input changed between the two passes (a hospital appeared in the second)")
        factors = _factors(p)
        results = []
        q = None
        for name, k, sc, chosen in self.steps:
            if q is None or not run.fixed:  # with C̄_g as base the types are the same at every step
                q = _classify(p, pack, factors[k], sc, _in_batch(chosen, p))
            pay, fund, share = _money(p, pack, q, factors[k], sc)
            results.append((_cents(pay), _cents(fund), _cents(share)))
        pay_c, fund_c, share_c = results[-1]
        factor = factors[self.steps[-1][1]]
        settled = p.status == SETTLED
        cost_c = _cents(p.cost)
        slot = p.hid + 1
        ns = self.nslots

        def by_h(x, into, what):
            _cent_sums(slot[settled], x[settled], ns, into, what)

        self.cases += np.bincount(slot, minlength=ns)
        self.settled += np.bincount(slot[settled], minlength=ns)
        typed = q.types >= 0
        self.types += np.bincount(slot[typed] * len(CASE_TYPES) + q.types[typed],
                                  minlength=ns * len(CASE_TYPES)).reshape(ns, len(CASE_TYPES))
        for key, x in (("cost", cost_c), ("payment", pay_c), ("fund_payment", fund_c), ("patient_share", share_c)):
            by_h(x, self.money[key], f"the {key.replace('_', ' ')} per hospital")
        for i, (pay_i, _, _) in enumerate(results):
            by_h(pay_i, self.step_pay[i], "the payment per hospital")
        pre_pay, pre_fund, _ = results[self.presettle_step]
        by_h(pre_fund, self.money["presettled"], "the pre-settled fund per hospital")
        self.status += np.bincount(p.status, minlength=len(SETTLE_STATUSES))
        self.fallback += int((p.fallback & p.priced).sum())
        if p.month is not None:
            self.no_month += int(((p.month < 0) & settled).sum())
        self.referral += p.referral_hits
        self.negative += int((fund_c[settled] < 0).sum())
        # pre-settlement per (hospital, discharge month) of the settled rows; -1: no date
        ym = p.month[settled] if p.month is not None else np.full(int(settled.sum()), -1, np.int64)
        mi = self.month_lut[ym - self.month_lo] if self.month_lut is not None else np.searchsorted(self.months, ym)
        key = slot[settled] * len(self.months) + mi
        size = self.m.shape[1]
        self.m[0] += np.bincount(key, minlength=size)
        _cent_sums(key, pre_pay[settled], size, self.m[1], "the monthly payment")
        _cent_sums(key, pre_fund[settled], size, self.m[2], "the monthly fund payment")
        return self._output(p, q, factor, pay_c, fund_c, share_c, cost_c, settled)

    def _output(self, p, q, factor, pay_c, fund_c, share_c, cost_c, settled) -> pa.RecordBatch:
        cols, s = self.run.cols, self.s
        priced = p.priced
        std = np.where(priced & np.isin(q.types, (NORMAL, HIGH, LOW, SHORT, SPECIAL)), p.unit * factor * s, np.nan)
        margin_c = np.where(settled, pay_c - cost_c, np.nan)

        def money(x):
            return pa.array(x / 100.0, pa.float64(), mask=np.isnan(x))

        def maybe(x, mask):
            return pa.array(np.where(mask, np.nan, x), pa.float64(), mask=mask)

        def passed(role):
            c = p.table[getattr(cols, role)]
            t = self.out_types.get(role, c.type)
            return (c if c.type == t else c.cast(t)).combine_chunks()

        types = pa.DictionaryArray.from_arrays(pa.array(q.types.astype(np.int32), mask=q.types < 0),
                                               pa.array(CASE_TYPES))
        st = pa.DictionaryArray.from_arrays(pa.array(p.status.astype(np.int32)), pa.array(SETTLE_STATUSES))
        out = {
            "case_id": passed("case_id") if cols.case_id in p.table.column_names else pa.array(p.rows),
            "hospital": passed("hospital"),
            "drg": passed("drg"),
            "status": passed("status"),
            "settle_status": st,
            "case_type": types,
            "rw": maybe(p.rw, np.isnan(p.rw)),
            "rate": maybe(np.round(p.rate * s, 4), ~priced),
            "coefficient": maybe(p.coef, ~priced),
            "knob_factor": maybe(np.round(factor, 6), ~priced),
            "payment_standard": money(_cents(std)),
            "cost": maybe(p.cost, np.isnan(p.cost)),
            "payment": money(pay_c),
            "fund_payment": money(fund_c),
            "patient_share": money(share_c),
            "margin": money(margin_c),
        }
        if self.month_values is not None:
            out["month"] = _month_text(p.month, self.month_values)
        return pa.RecordBatch.from_pydict(out)

    def hospital_table(self, one: _Pass1) -> tuple[pa.Table, dict, dict]:
        """(one row per hospital, sorted by id with the null hospital last; totals; knob effects)."""
        run, pack = self.run, self.run.pack
        nh = len(run.vocab.values)
        order = run.vocab.sorted_order()
        perm = np.r_[order + 1, 0]  # slot of each output row: the hospitals sorted, then null
        hosp_values = np.array(run.vocab.values, dtype=object)[order]
        cases, settled = self.cases[perm], self.settled[perm]
        present = cases > 0
        hs = {"hospital": pa.array([str(v) for v in hosp_values] + [None], pa.string())}
        hs["level"] = _level_per_hospital(one.level_pairs, perm)
        hs["cases"] = cases
        hs["settled"] = settled
        hs["not_settled"] = cases - settled
        types = self.types[perm]
        for code, name in enumerate(CASE_TYPES):
            hs[f"n_{name}"] = types[:, code]
        tot = {k: self.money[k][perm] for k in ("cost", "payment", "fund_payment", "patient_share")}
        margin = tot["payment"] - tot["cost"]
        adj, sharing_missing = _sharing(pack, margin, run.hosp, hosp_values)
        for k, v in tot.items():
            hs[k] = v / 100
        hs["margin"] = margin / 100
        hs["surplus"] = np.maximum(margin, 0) / 100
        hs["overspend"] = np.maximum(-margin, 0) / 100
        hs["sharing_adjustment"] = adj / 100
        hs["surplus_kept"] = np.where(margin > 0, margin + adj, 0) / 100
        hs["overspend_borne"] = np.where(margin < 0, -margin - adj, 0) / 100
        final_fund = tot["fund_payment"] + adj
        # monthly pre-settlement at the provisional rate, reserve held back until clearance
        pre = self.money["presettled"][perm]
        reserve = np.rint(pre * pack.settlement.reserve_pct)
        hs["presettled_fund"] = pre / 100
        hs["reserve_withheld"] = reserve / 100
        hs["paid_monthly"] = (pre - reserve) / 100
        hs["final_fund"] = final_fund / 100
        hs["clearance"] = (final_fund - (pre - reserve)) / 100
        # the waterfall of knob effects on the hospital's payment
        step_pay = self.step_pay[:, perm]
        effects = {self.steps[i][0]: step_pay[i] - step_pay[i - 1] for i in range(1, len(self.steps))}
        effects["sharing"] = adj
        for name, v in effects.items():
            hs[f"effect_{name}"] = v / 100
        counts = {"rate_fallback_to_base": self.fallback, "settled_without_month": self.no_month}
        if pack.knobs.referral.enabled:
            counts["referral_uplifted_cases"] = self.referral
        if run.hosp.rules:
            trow = np.append(run.hosp.rows(hosp_values), -1)
            hs["quality_factor"] = np.prod([np.where(np.where(trow >= 0, ind[np.maximum(trow, 0)], False),
                                                     1.0 + r.delta, 1.0) for r, ind in run.hosp.rules], axis=0)
            counts["hospitals_without_quality_data"] = int((trow[:nh] < 0).sum())
        counts["hospitals_without_sharing_data"] = sharing_missing
        table = pa.table({k: (v.filter(pa.array(present)) if isinstance(v, pa.Array) else np.asarray(v)[present])
                          for k, v in hs.items()})
        totals = {"cost": float(tot["cost"].sum() / 100), "payment": float(tot["payment"].sum() / 100),
                  "fund_payment": float(tot["fund_payment"].sum() / 100),
                  "patient_share": float(tot["patient_share"].sum() / 100),
                  "margin": float(margin.sum() / 100),
                  "sharing_adjustment": float(adj.sum() / 100),
                  "presettled_fund": float(pre.sum() / 100), "reserve_withheld": float(reserve.sum() / 100),
                  "final_fund": float(final_fund.sum() / 100),
                  "negative_fund_cases": self.negative}
        extra = {"knob_effects": {k: float(v.sum() / 100) for k, v in effects.items()}, "counts": counts,
                 "hospitals": int(present.sum()),
                 "case_types": {name: int(types[:, code].sum()) for code, name in enumerate(CASE_TYPES)}}
        return table, totals, extra

    def months_table(self) -> pa.Table:
        """Pre-settlement per hospital and discharge month (month null without a date column),
        sorted by hospital (null last) and month."""
        run, pack = self.run, self.run.pack
        order = run.vocab.sorted_order()
        nh = len(order)
        rank = np.empty(nh + 1, np.int64)
        rank[order + 1] = np.arange(nh)
        rank[0] = nh  # the null hospital sorts last
        nm = len(self.months)
        used = np.flatnonzero(self.m[0] > 0)
        sl, ym = used // nm, self.months[used % nm]
        srt = np.lexsort((ym, rank[sl]))
        used, sl, ym = used[srt], sl[srt], ym[srt]
        name = np.empty(nh + 1, dtype=object)
        name[1:] = [str(v) for v in run.vocab.values]
        name[0] = None
        fund = self.m[2, used]
        reserve = np.rint(fund * pack.settlement.reserve_pct)
        return pa.table({
            "hospital": pa.array(name[sl].tolist(), pa.string()),
            "month": _month_text(ym).dictionary_decode(),
            "cases": self.m[0, used].astype(np.int64),
            "payment": self.m[1, used] / 100, "fund_payment": fund / 100,
            "reserve_withheld": reserve / 100, "paid": (fund - reserve) / 100,
        })


def _level_per_hospital(pairs: set, perm: np.ndarray) -> pa.Array:
    """A hospital's level when all its cases agree, else "mixed" (null when unknown)."""
    seen: dict[int, set] = {}
    for slot, name in pairs:
        seen.setdefault(slot, set()).add(name)
    out = []
    for slot in perm.tolist():
        names = seen.get(slot, {None})
        out.append("mixed" if len(names) > 1 else next(iter(names)))
    return pa.array(out, pa.string())


def _sharing(pack: PaymentPack, margin_cents: np.ndarray, hosp: _Hospitals, hosp_values):
    """Year-end adjustment per hospital (cents): - (1 - kept) x surplus, or + shared x overspend."""
    ks = pack.knobs.sharing
    if not ks.enabled:
        return np.zeros(len(margin_cents)), 0
    nh = len(hosp_values)
    kept = np.full(nh + 1, ks.surplus_kept)
    shared = np.full(nh + 1, ks.overspend_shared)
    missing = 0
    if ks.quality_column or ks.readmission_column:
        hospitals = hosp.table
        if hospitals is None:
            raise ValueError("knobs.sharing reads hospital conditions: give the hospital table (--hospitals)")
        row = hosp.rows(hosp_values)
        missing = int((row < 0).sum())
        for colname, arr, other in ((ks.quality_column, kept, ks.surplus_kept_quality_fails),
                                    (ks.readmission_column, shared, ks.overspend_shared_readmissions_rose)):
            if colname is None:
                continue
            if colname not in hospitals.column_names:
                raise ValueError(f"hospital table: no column {colname!r} (knobs.sharing)")
            flag = _flags(hospitals[colname])
            per_h = np.where(row >= 0, flag[np.maximum(row, 0)], False)
            if colname == ks.quality_column:  # quality held -> surplus_kept; otherwise the other share
                present = row >= 0
                arr[:nh] = np.where(present & ~per_h, other, arr[:nh])
            else:  # readmissions rose -> the other share
                arr[:nh] = np.where(per_h, other, arr[:nh])
    adj = np.where(margin_cents > 0, -np.rint((1 - kept) * margin_cents), np.rint(shared * -margin_cents))
    adj = np.where(margin_cents == 0, 0.0, adj)
    return adj, missing


# ----------------------------------------------------------------------------- the run

def settle_batches(batches: Callable[[], Iterable[pa.RecordBatch]], pack: PaymentPack, weights: pa.Table,
                   hospitals: pa.Table | None = None, *, columns: Columns = Columns(),
                   schema: pa.Schema | None = None,
                   sink: Callable[[Iterator[pa.RecordBatch]], object] | None = None,
                   plain_dictionaries: bool = False, require_rows: bool = False) -> SettlementResult:
    """Settle grouped cases streamed as ``batches()``, a function returning a fresh iterable of
    RecordBatches on every call. It is called twice (pass 1: year totals and special review;
    pass 2: per case), and once more first when the rate is budget / the data's own total
    weight and pass 1 already needs the rate (renormalisation, or the payment standard as
    outlier base with special review). ``schema``: the columns of all the inputs together
    (default: the first batch's); a batch lacking one reads it as null. Per-case batches go to
    ``sink`` in input order, or into ``SettlementResult.cases``. ``plain_dictionaries`` decodes
    pass-through columns whose dictionary changes between batches (for Arrow IPC files)."""
    run = _Run(pack, weights, hospitals, columns)
    renorm = pack.rate.renormalize
    fixed_schema = [schema]

    def stream() -> Iterator[_Prep]:
        row = 0
        for b in batches():
            if fixed_schema[0] is None:
                fixed_schema[0] = b.schema
            p = run.prepare(_conform(b, fixed_schema[0]), row)
            row += p.n
            yield p

    # the provisional base rate: known now, or after a pass over the weights of the data
    from_data = pack.rate.value is None and pack.rate.expected_weight == "data"
    pass1_prices = renorm != "none" or (not run.fixed and run.review)
    data_weight = None
    if from_data and pass1_prices:  # pass 0
        w = _Exact("the weights of the cases")
        for p in stream():
            w.add(p.rw[(p.kind == 0) & ~np.isnan(p.rw)])
        data_weight = w.value()
    if not from_data or data_weight is not None:
        run.base = pack.rate.base(data_weight)

    # waterfall steps at the pack rate: no knobs, referral, each quality rule
    steps_before = 1 + pack.knobs.referral.enabled + (len(pack.knobs.quality.rules) if pack.knobs.quality.enabled
                                                      else 0)
    one = _Pass1(run, steps_before)
    try:
        for p in stream():
            one.add(p)
        if one.spool is not None:
            one.spool.close_writer()
        if require_rows and one.n == 0:
            raise ValueError("no cases in the input")
        if _uses_level(pack) and not run.level_seen and one.n:
            raise ValueError(f"the pack sets values by hospital level but there is no level: no column "
                             f"{columns.level!r} in the cases and no level column in the hospital table")
        if pack.rate.expected_weight == "data":
            data_weight = one.weight.value()
        if math.isnan(run.base):
            run.base = pack.rate.base(data_weight)

        # special review per pricing, and the totals at the pack rate
        allowed = one.allowed()
        chosen, totals = {}, {}
        for key, cd in one.cands.items():
            rows, taken = cd.select(allowed)
            chosen[key] = rows if run.review else None
            totals[key] = dict(zip(cd.evals, (e.value() for e in cd.totals(taken))))

        # the rate scale s
        target = None
        s = 1.0
        if renorm != "none":  # "knobs": the total without knobs at the pack rate
            target = pack.rate.budget if renorm == "budget" else totals[None if run.fixed else 0][(0, 1.0)]
            s = _solve(run, one, target, totals[None if run.fixed else one.last], allowed)
            if not run.fixed and run.review:  # special review at the final scale
                chosen["renormalisation"] = _spool_pass(run, one.spool, s, allowed, False)[0]
    finally:
        if one.spool is not None:
            one.spool.remove()

    # the waterfall: pack rate, no knobs -> + referral -> + each quality rule -> renormalised
    steps = [("base", 0, 1.0)]
    if pack.knobs.referral.enabled:
        steps.append(("referral", len(steps), 1.0))
    presettle_step = len(steps) - 1  # monthly pre-settlement: per-case rules at the provisional rate
    run.hosp.knobs(pack)  # (an input without rows never read it)
    for rule, _ in run.hosp.rules:
        steps.append((f"quality_{rule.name}", len(steps), 1.0))
    if renorm != "none":
        steps.append(("renormalisation", one.last, s))
    if not run.review:
        steps = [(*x, None) for x in steps]
    elif run.fixed:
        steps = [(*x, chosen[None]) for x in steps]
    else:
        steps = [(*x, chosen[x[0] if x[0] == "renormalisation" else x[1]]) for x in steps]

    out_types = {}
    for role in PASS_THROUGH:  # one dictionary per column in an IPC file: decode where it changes
        d = one.dicts.get(role)
        name = getattr(columns, role)
        if plain_dictionaries and d is not None and d[1]:
            out_types[role] = fixed_schema[0].field(name).type.value_type
    two = _Pass2(run, steps, s, presettle_step, out_types, np.array(sorted(one.months), np.int64))

    def per_case() -> Iterator[pa.RecordBatch]:
        rows = 0
        for p in stream():
            rows += p.n
            yield two.add(p)
        if rows != one.n:  # raised inside the writer: no output file is left behind
            raise ValueError(f"the input changed between the two passes ({one.n} rows, then {rows})")

    if sink is not None:
        sink(per_case())
        case_table = None
    else:
        case_table = pa.Table.from_batches(list(per_case()))
    hosp_table, totals_out, extra = two.hospital_table(one)
    summary = {
        "pack": {"name": pack.name, "region": pack.region, "year": pack.year, "illustrative": pack.illustrative,
                 "basis": pack.basis, "path": pack.path},
        "rows": one.n,
        "settle_status": {name: int(two.status[code]) for code, name in enumerate(SETTLE_STATUSES)},
        "case_types": extra["case_types"], "hospitals": extra["hospitals"],
        "rate": {"provisional_base": run.base, "expected_weight_from_data": data_weight, "scale": s,
                 "final_base": run.base * s, "overall_mean_cost": run.weights.cbar, "renormalize": renorm,
                 "target": target},
        "totals": totals_out, "knob_effects": extra["knob_effects"], "counts": extra["counts"],
        "passes": 2 + (from_data and pass1_prices),
    }
    if target is not None:
        achieved = totals_out["fund_payment"] if pack.basis == "fund" else totals_out["payment"]
        summary["rate"]["achieved"] = achieved
        summary["rate"]["residual"] = achieved - target
    return SettlementResult(case_table, hosp_table, two.months_table(), summary)


def settle(cases: pa.Table, pack: PaymentPack, weights: pa.Table, hospitals: pa.Table | None = None, *,
           columns: Columns = Columns(), batch_size: int = DEFAULT_BATCH) -> SettlementResult:
    """Settle grouped ``cases`` (the grouper's output with cost and the other columns kept) under
    ``pack`` with the weights table of ``drg weights`` (drg, rw, mean_cost, mean_los, n). The
    same two passes as the files, over the table's batches of ``batch_size`` rows."""
    if isinstance(cases, pa.RecordBatch):
        cases = pa.Table.from_batches([cases])
    parts = cases.to_batches(max_chunksize=batch_size) or [
        pa.RecordBatch.from_arrays([pa.array([], f.type) for f in cases.schema], schema=cases.schema)]
    return settle_batches(lambda: iter(parts), pack, weights, hospitals, columns=columns, schema=cases.schema)


# ----------------------------------------------------------------------------- files

def read_table(path) -> pa.Table:
    """A small table (weights, hospitals) from CSV/Parquet/Arrow, all of it."""
    from grouper.io import open_source

    s = open_source(path)
    return pa.Table.from_batches(list(s.batches), schema=s.schema)


def case_columns(pack: PaymentPack, cols: Columns) -> list[str]:
    """The input columns a settlement under ``pack`` may read (besides status and DRG)."""
    names = [cols.case_id, cols.hospital, cols.level, cols.insurance_type, cols.cost, cols.patient_share, cols.los,
             cols.discharge, cols.date, cols.referred]
    if pack.special_review.application_column:
        names.append(pack.special_review.application_column)
    return names


class CaseFiles:
    """Case files as a re-readable stream of grouped batches holding only the columns settlement
    needs. Files with status and DRG columns are read as they are; raw case files are grouped
    with ``grouper`` (a Grouper, or a function returning one) on the way, on every read."""

    def __init__(self, inputs, pack: PaymentPack, cols: Columns = Columns(), grouper=None, *,
                 batch_size: int = DEFAULT_BATCH):
        from grouper.io import CANONICAL_COLUMNS, expand_inputs, open_source, plan_columns, read_columns
        from grouper._util.batches import empty_batch

        want = case_columns(pack, cols)
        self.parts = []  # (source, plan or None for grouped files, keep)
        schemas = []
        seen: set[str] = set()  # columns of any file (a file without one reads it as null)
        for path in expand_inputs(inputs):
            s = open_source(path, batch_size=batch_size)
            names = s.schema.names
            seen.update(plan_columns(s.schema, None, "auto", s.path).schema(s.schema).names)
            if cols.status in names and cols.drg in names:
                s.columns = [c for c in names if c in {cols.status, cols.drg, *want}]
                self.parts.append((s, None, None))
                schemas.append(pa.schema([s.schema.field(c) for c in s.columns]))
            else:
                if grouper is None:
                    raise ValueError(f"{path}: not grouped (no {cols.status!r}/{cols.drg!r} columns) "
                                     "and no ruleset given")
                if not hasattr(grouper, "group_batch"):  # a factory: the ruleset is compiled only when needed
                    grouper = grouper()
                plan = plan_columns(s.schema, None, "auto", s.path)
                planned = plan.schema(s.schema)
                keep = [c for c in dict.fromkeys(want) if c in planned.names and c not in ("case_id",)]
                s.columns = read_columns(s.schema, plan, {*CANONICAL_COLUMNS, *keep})
                self.parts.append((s, plan, keep))
                try:
                    schemas.append(grouper.group_batch(empty_batch(planned), columns=("case_id", "status", "drg"),
                                                       keep=keep).schema)
                except InputError as exc:
                    raise InputError(f"{path}: {exc}") from None
        files = [s.path for s, _, _ in self.parts]
        for name, why in needed_columns(pack, cols):  # before any work
            if name not in seen:
                where = files[0] if len(files) == 1 else f"{files[0]} and the {len(files) - 1} other input file(s)"
                raise InputError(f"{where}: no column {name!r} in the cases ({why})")
        self.grouper = grouper
        self.schema = _unified_schema(schemas)
        self.info = {"grouped_here": 0, "pre_grouped": 0, "files": [s.path for s, _, _ in self.parts]}

    def __call__(self) -> Iterator[pa.RecordBatch]:
        from grouper.io import prefetch

        rows = 0
        info = {"grouped_here": 0, "pre_grouped": 0}
        for s, plan, keep in self.parts:
            for b in prefetch(s.batches):
                if plan is not None:
                    try:
                        b = self.grouper.group_batch(plan.apply(b), columns=("case_id", "status", "drg"),
                                                     keep=keep, row_offset=rows)
                    except (InputError, CorruptInputError) as exc:
                        raise type(exc)(f"{s.path}: {exc}") from None
                    info["grouped_here"] += b.num_rows
                else:
                    info["pre_grouped"] += b.num_rows
                rows += b.num_rows
                yield b
        self.info.update(info)


def settle_files(inputs, pack: PaymentPack, weights_path, output, *, hospitals_path=None, summary=None,
                 months=None, json_path=None, report=None, grouper=None, columns: Columns = Columns(),
                 overwrite: bool = False, batch_size: int = DEFAULT_BATCH) -> SettlementResult:
    """What ``drg settle`` runs: stream the case files twice (grouping raw files on the way),
    write the per-case output batch by batch, in input order and atomically, and optionally the
    hospital summary, the monthly table, a JSON summary and a report. The result has no
    ``cases`` table (they are in ``output``). Existing files are refused before any work
    unless ``overwrite``."""
    import json
    import time

    from grouper.io import OutputSet, check_outputs, format_of, write_batches

    check_outputs([output, summary, months, json_path, report], [*_as_list(inputs), weights_path, hospitals_path,
                                                                 pack.path or None], overwrite=overwrite)
    for o in (output, summary, months):
        if o is not None:
            format_of(o)
    t0 = time.perf_counter()
    weights = read_table(weights_path)
    hospitals = read_table(hospitals_path) if hospitals_path is not None else None
    source = CaseFiles(inputs, pack, columns, grouper, batch_size=batch_size)
    with OutputSet(overwrite) as outs:  # every output published together at the end, or none
        r = settle_batches(source, pack, weights, hospitals, columns=columns, schema=source.schema,
                           sink=lambda it: write_batches(output, it, into=outs),
                           plain_dictionaries=format_of(output) == "arrow", require_rows=True)
        r.summary["input"] = source.info
        r.summary["seconds"] = time.perf_counter() - t0
        for path, t in ((summary, r.hospitals), (months, r.months)):
            if path is not None:
                write_batches(path, t.to_batches(), empty_schema=t.schema, into=outs)
        if json_path is not None:
            Path(outs.add(json_path)).write_text(
                json.dumps(r.summary, ensure_ascii=False, indent=2, default=_jsonable) + "\n", encoding="utf-8")
        if report is not None:
            from grouper.report.pages import write_settlement_report

            write_settlement_report(r, outs.add(report), overwrite=True)  # replaces the set's temporary file
    return r


def _as_list(inputs) -> list:
    return [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return str(v)

"""Payment packs: the payment rules of one region and year, as a validated TOML file.

National documents fix the grouping; almost every number of the payment (rates, coefficients,
outlier multiples, sharing ratios) is local and changes yearly, so none of it is in code. A pack
is read once, checked key by key, and becomes frozen dataclasses that ``grouper.settlement``
evaluates. A bad pack is refused with ``PackError`` naming the file and the dotted key
(``outlier.high_bands[1]``), because the person editing it needs to find the line, not a
traceback. The format is documented key by key in ``rules/payment/README.md``; the bundled
``illustrative-2024`` pack holds the worked-example numbers of the domain notes and is
labelled illustrative. ``[dip]`` belongs to the DIP module and is passed through untouched.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

__all__ = [
    "Coefficients",
    "Fund",
    "Knobs",
    "Outlier",
    "PackError",
    "PaymentPack",
    "PerDiem",
    "QualityKnob",
    "QualityRule",
    "Rate",
    "ReferralKnob",
    "Settlement",
    "SharingKnob",
    "ShortStay",
    "SpecialReview",
    "Unusual",
    "UnusualRule",
    "available_packs",
    "load_pack",
    "parse_pack",
]


#: Upper bounds of a pack's numbers (README "Bounds"). Money is settled in whole fen in int64
#: (at most 9.2e18 fen): a budget or any amount up to MAX_AMOUNT yuan (1e14 fen) leaves room
#: for 90,000 of them in one sum. Rates are per unit of weight or per bed day; factors are
#: coefficients, outlier multiples and ratios. Every number must be finite.
MAX_AMOUNT = 1e12
MAX_RATE = 1e8
MAX_FACTOR = 1e3
#: The smallest C̄ (overall mean cost per unit of weight, a denominator): one fen.
MIN_MEAN_COST = 0.01


class PackError(ValueError):
    """A payment pack that cannot be used; the message names the file and the dotted key."""

    def __init__(self, file: str, key: str, problem: str):
        self.file, self.key, self.problem = file, key, problem
        super().__init__(f"{file}: {key}: {problem}" if key else f"{file}: {problem}")


# ----------------------------------------------------------------------------- the pack

@dataclass(frozen=True)
class Rate:
    """Base rate (yuan per unit of weight): ``value``, or ``budget / expected_weight`` (费率法).
    ``expected_weight = "data"`` takes Σ RW over the settled cases. ``by_level`` /
    ``by_insurance_type`` give absolute rates that override the base for matching cases
    (``by_level`` entries may themselves be tables by insurance type). ``renormalize``: "none";
    "budget" scales every rate so the year's total (payment, or fund on a fund basis) equals the
    budget; "knobs" scales it so the value-based knobs move money between hospitals without
    changing the total."""

    value: float | None = None
    budget: float | None = None
    expected_weight: float | str | None = None
    by_insurance_type: dict[str, float] = field(default_factory=dict)
    by_level: dict[str, float | dict[str, float]] = field(default_factory=dict)
    renormalize: str = "none"

    def base(self, data_weight: float | None = None) -> float:
        """The provisional base rate r: the value, or the budget over the expected total weight."""
        if self.value is not None:
            return self.value
        w = data_weight if self.expected_weight == "data" else self.expected_weight
        if w is None or not w > 0:
            raise ValueError("rate: expected_weight = \"data\" but the data hold no weight to divide the budget by")
        if not self.budget / w <= MAX_RATE:
            raise ValueError(f"rate: budget / expected_weight = {self.budget / w:g} yuan per unit of weight "
                             f"(expected_weight {w:g}), above the bound {MAX_RATE:g}")
        return self.budget / w


@dataclass(frozen=True)
class Coefficients:
    """Hospital coefficient k_h (成本/等级/差异系数): by hospital id, else by level, else default."""

    default: float = 1.0
    by_level: dict[str, float] = field(default_factory=dict)
    by_hospital: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Outlier:
    """High/low outlier triggers and payment formulas (domain notes 3.4-3.6)."""

    base: str = "group_mean_cost"  # what H and L multiply: C̄_g, or the case's payment standard P
    high_bands: tuple[tuple[float, float], ...] = ((1.0, 3.0), (2.0, 2.0), (math.inf, 1.5))  # (RW <= upper, H)
    low_multiple: float = 0.4
    high_method: str = "H1"  # H1 add-on above the threshold, H2 alpha x cost, H3 DIP-style
    h2_alpha: float = 1.0
    low_method: str = "L1"  # L1 cost (FFS), L2 P x cost / base
    overall_mean_cost: float | str = "weights"  # C̄ of the H1 add-on; "weights": Σn·mean_cost / Σn·rw

    def high_multiple(self, rw):
        """H for each weight: the first band whose upper bound is >= RW."""
        import numpy as np

        uppers = np.array([u for u, _ in self.high_bands])
        mults = np.array([m for _, m in self.high_bands])
        return mults[np.minimum(np.searchsorted(uppers, rw, side="left"), len(mults) - 1)]


@dataclass(frozen=True)
class UnusualRule:
    method: str = "ffs"  # "ffs": paid cost x discount; "return": not settled, sent back for correction
    discount: float = 1.0


@dataclass(frozen=True)
class Unusual:
    """Cases the grouper could not place: 0000 (ungroupable), QY (ambiguous), invalid records."""

    ungroupable: UnusualRule = UnusualRule()
    ambiguous: UnusualRule = UnusualRule()
    invalid: UnusualRule = UnusualRule("return")


@dataclass(frozen=True)
class ShortStay:
    """Short stays, early deaths and transfers: min(P, P x LOS / ALOS_g) ("prorate") or cost ("ffs")."""

    enabled: bool = False
    los_ratio_below: float | None = None  # LOS < ratio x ALOS_g
    death_within_days: int | None = None  # died with LOS <= n
    transfer_within_days: int | None = None  # transferred with LOS <= n
    death_codes: tuple[str, ...] = ("5",)
    transfer_codes: tuple[str, ...] = ("2", "3")
    method: str = "prorate"


@dataclass(frozen=True)
class PerDiem:
    """Cases outside DRG payment (very long or very short stays, psychiatric, rehabilitation care),
    paid by bed day (rate x LOS) or FFS."""

    enabled: bool = False
    los_min_excl: int | None = None  # LOS <= this: out of scope, paid by short_method
    los_max_excl: int | None = None  # LOS >= this: out of scope, paid by method
    drg_prefixes: tuple[str, ...] = ()  # DRG codes starting so: out of scope, paid by method
    method: str = "bed_day"
    short_method: str = "ffs"
    bed_day_rate: float | None = None
    bed_day_rate_by_level: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SpecialReview:
    """特例单议: candidates with cost >= min_cost_ratio x base (or flagged in a column), capped at
    ``cap`` of the DRG cases of each hospital (or the region), highest cost ratio first; paid ffs_ratio x cost."""

    enabled: bool = False
    cap: float = 0.05
    scope: str = "hospital"
    min_cost_ratio: float = 3.0
    application_column: str | None = None
    ffs_ratio: float = 1.0


@dataclass(frozen=True)
class Settlement:
    """Monthly pre-settlement (月度预结) holds back ``reserve_pct`` for year-end clearance (年度清算)."""

    reserve_pct: float = 0.05
    monthly: bool = True


@dataclass(frozen=True)
class Fund:
    """How the fund's part is split off: "column" fund = payment - patient share (from the cases);
    "column_ratio" fund = payment x (1 - share / cost) (the FFS fund ratio); "ratio" fund = payment x
    a fixed ratio (by insurance type where given)."""

    patient_share: str = "column"
    fund_ratio: float | None = None
    fund_ratio_by_insurance_type: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class QualityRule:
    """One quality-linked weight factor: (1 + delta) for hospitals meeting ``test`` on ``column``."""

    name: str
    column: str
    test: str  # above_mean | below_mean | top_share | bottom_share | flag
    delta: float
    share: float | None = None
    weight_column: str | None = None  # weights of the regional mean (e.g. low_risk_cases)


@dataclass(frozen=True)
class QualityKnob:
    enabled: bool = False
    rules: tuple[QualityRule, ...] = ()


@dataclass(frozen=True)
class ReferralKnob:
    """Weight uplift for complex cases referred up from primary care."""

    enabled: bool = False
    uplift: float = 0.10
    min_rw: float = 0.0
    levels: tuple[str, ...] = ()  # receiving hospital levels (empty: all)


@dataclass(frozen=True)
class SharingKnob:
    """Year-end sharing of a hospital's surplus / overspend (结余留用、合理超支分担)."""

    enabled: bool = False
    surplus_kept: float = 1.0
    surplus_kept_quality_fails: float = 1.0
    quality_column: str | None = None
    overspend_shared: float = 0.0
    overspend_shared_readmissions_rose: float = 0.0
    readmission_column: str | None = None


@dataclass(frozen=True)
class Knobs:
    quality: QualityKnob = QualityKnob()
    referral: ReferralKnob = ReferralKnob()
    sharing: SharingKnob = SharingKnob()


@dataclass(frozen=True)
class PaymentPack:
    name: str
    region: str
    year: int
    illustrative: bool
    description: str
    basis: str  # total_cost | fund
    rate: Rate
    coefficients: Coefficients = Coefficients()
    outlier: Outlier = Outlier()
    unusual: Unusual = Unusual()
    short_stay: ShortStay = ShortStay()
    per_diem: PerDiem = PerDiem()
    special_review: SpecialReview = SpecialReview()
    settlement: Settlement = Settlement()
    fund: Fund = Fund()
    knobs: Knobs = Knobs()
    dip: dict = field(default_factory=dict)  # the DIP module's table, untouched
    path: str = ""

    def with_knobs(self, **changes) -> PaymentPack:
        """A copy with knob sections replaced (``quality=QualityKnob(...)``...), for experiments."""
        from dataclasses import replace

        return replace(self, knobs=replace(self.knobs, **changes))


# ----------------------------------------------------------------------------- reading

class _Table:
    """One TOML table being read: typed getters that name the dotted key on error, and a final
    check that no key was left unread (a typo must not silently fall back to a default)."""

    def __init__(self, file: str, key: str, data: Any):
        self.file, self.key = file, key
        if not isinstance(data, dict):
            self.fail("", f"must be a table, not {_kind(data)}")
        self.data, self.seen = data, set()

    def where(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def fail(self, name: str, problem: str):
        raise PackError(self.file, self.where(name) if name else self.key, problem)

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str, default=None):
        self.seen.add(name)
        return self.data.get(name, default)

    def sub(self, name: str, required: bool = False) -> _Table:
        self.seen.add(name)
        if name not in self.data:
            if required:
                self.fail(name, "missing table")
            return _Table(self.file, self.where(name), {})
        return _Table(self.file, self.where(name), self.data[name])

    def number(self, name: str, default=None, *, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False, required: bool = False, integer: bool = False, inf: bool = False):
        self.seen.add(name)
        if name not in self.data:
            if required:
                self.fail(name, "missing")
            return default
        return _number(self, name, self.data[name], lo=lo, hi=hi, lo_open=lo_open, integer=integer, inf=inf)

    def text(self, name: str, default=None, *, choices=None, required: bool = False):
        self.seen.add(name)
        if name not in self.data:
            if required:
                self.fail(name, "missing")
            return default
        v = self.data[name]
        if not isinstance(v, str):
            self.fail(name, f"must be text, not {_kind(v)}")
        if choices is not None and v not in choices:
            self.fail(name, f"{v!r} is not one of {', '.join(map(repr, choices))}")
        return v

    def flag(self, name: str, default: bool = False) -> bool:
        self.seen.add(name)
        v = self.data.get(name, default)
        if not isinstance(v, bool):
            self.fail(name, f"must be true or false, not {_kind(v)}")
        return v

    def texts(self, name: str, default=()) -> tuple[str, ...]:
        self.seen.add(name)
        v = self.data.get(name, list(default))
        if not isinstance(v, list):
            self.fail(name, f"must be a list of text, not {_kind(v)}")
        for i, x in enumerate(v):
            if not isinstance(x, str) or not x:
                self.fail(f"{name}[{i}]", f"must be non-empty text, not {_kind(x)}")
        return tuple(v)

    def numbers_by_name(self, name: str, *, lo: float = 0.0, lo_open: bool = True,
                        hi: float | None = None) -> dict[str, float]:
        """A table of name = number (rates, coefficients by level or hospital)."""
        t = self.sub(name)
        return {k: t.number(k, lo=lo, lo_open=lo_open, hi=hi) for k in list(t.data)}

    def done(self) -> None:
        unknown = [k for k in self.data if k not in self.seen]
        if unknown:
            self.fail(unknown[0], "unknown key" + (f" (known here: {', '.join(sorted(self.seen))})" if self.seen else ""))


def _kind(v) -> str:
    return {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list",
            dict: "a table"}.get(type(v), type(v).__name__)


def _number(t: _Table, name: str, v, *, lo=None, hi=None, lo_open=False, integer=False, inf=False):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        t.fail(name, f"must be a number, not {_kind(v)}")
    if isinstance(v, float) and math.isnan(v):
        t.fail(name, "must be a number, not nan")
    if isinstance(v, float) and math.isinf(v) and not (inf and v > 0):
        t.fail(name, f"must be finite, not {v}")
    if integer and not (isinstance(v, int) or float(v).is_integer()):
        t.fail(name, f"must be a whole number, not {v}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        t.fail(name, f"must be {'>' if lo_open else '>='} {lo:g}, not {v:g}")
    if hi is not None and v > hi:
        t.fail(name, f"must be <= {hi:g}, not {v:g}")
    return int(v) if integer else float(v)


def _rate(t: _Table) -> Rate:
    value = t.number("value", lo=0, lo_open=True, hi=MAX_RATE)
    budget = t.number("budget", lo=0, lo_open=True, hi=MAX_AMOUNT)
    ew = t.raw("expected_weight")
    if ew is not None and ew != "data":
        ew = _number(t, "expected_weight", ew, lo=0, lo_open=True, hi=MAX_AMOUNT)
        if budget is not None and not budget / ew <= MAX_RATE:
            t.fail("expected_weight", f"budget / expected_weight = {budget / ew:g} yuan per unit of weight, "
                                      f"above the bound {MAX_RATE:g}")
    if value is None and budget is None:
        t.fail("value", "give the rate as value = yuan per unit of weight, or budget and expected_weight")
    if value is not None and budget is None and ew is not None:
        t.fail("expected_weight", "only meaningful with budget")
    if budget is not None and value is None and ew is None:
        t.fail("expected_weight", "missing: the rate is budget / expected_weight (a number, or \"data\")")
    by_level = {}
    lv = t.sub("by_level")
    for k in list(lv.data):
        v = lv.data[k]
        by_level[k] = lv.numbers_by_name(k, hi=MAX_RATE) if isinstance(v, dict) else \
            lv.number(k, lo=0, lo_open=True, hi=MAX_RATE)
    lv.done()
    renorm = t.text("renormalize", "none", choices=("none", "budget", "knobs"))
    if renorm == "budget" and budget is None:
        t.fail("renormalize", "\"budget\" needs rate.budget")
    out = Rate(value, budget, ew, t.numbers_by_name("by_insurance_type", hi=MAX_RATE), by_level, renorm)
    t.done()
    return out


def _coefficients(t: _Table) -> Coefficients:
    out = Coefficients(t.number("default", 1.0, lo=0, lo_open=True, hi=MAX_FACTOR),
                       t.numbers_by_name("by_level", hi=MAX_FACTOR), t.numbers_by_name("by_hospital", hi=MAX_FACTOR))
    t.done()
    return out


def _outlier(t: _Table) -> Outlier:
    d = Outlier()
    bands = t.raw("high_bands", [list(b) for b in d.high_bands])
    if not isinstance(bands, list) or not bands:
        t.fail("high_bands", "must be a non-empty list of [rw_upper, multiple] pairs")
    parsed = []
    for i, b in enumerate(bands):
        key = f"high_bands[{i}]"
        if not isinstance(b, list) or len(b) != 2:
            t.fail(key, "must be a pair [rw_upper, multiple]")
        upper = _number(t, key, b[0], lo=0, lo_open=True, inf=True)
        mult = _number(t, key, b[1], lo=0, lo_open=True, hi=MAX_FACTOR)
        if parsed and upper <= parsed[-1][0]:
            t.fail(key, f"RW upper bounds must increase ({upper:g} after {parsed[-1][0]:g})")
        parsed.append((upper, mult))
    if parsed[-1][0] != math.inf:
        t.fail(f"high_bands[{len(parsed) - 1}]", "the last band must be open: [inf, multiple]")
    low = t.number("low_multiple", d.low_multiple, lo=0)
    if low >= min(m for _, m in parsed):
        t.fail("low_multiple", f"must be below every high multiple ({low:g} >= {min(m for _, m in parsed):g})")
    mean = t.raw("overall_mean_cost", d.overall_mean_cost)
    if mean != "weights":
        mean = _number(t, "overall_mean_cost", mean, lo=MIN_MEAN_COST, hi=MAX_RATE)
    out = Outlier(t.text("base", d.base, choices=("group_mean_cost", "payment_standard")), tuple(parsed), low,
                  t.text("high_method", d.high_method, choices=("H1", "H2", "H3")),
                  t.number("h2_alpha", d.h2_alpha, lo=0, lo_open=True, hi=1.0),
                  t.text("low_method", d.low_method, choices=("L1", "L2")), mean)
    t.done()
    return out


def _unusual_rule(t: _Table, default: UnusualRule) -> UnusualRule:
    out = UnusualRule(t.text("method", default.method, choices=("ffs", "return")),
                      t.number("discount", default.discount, lo=0, hi=1.0))
    t.done()
    return out


def _unusual(t: _Table) -> Unusual:
    d = Unusual()
    out = Unusual(*(_unusual_rule(t.sub(k), getattr(d, k)) for k in ("ungroupable", "ambiguous", "invalid")))
    t.done()
    return out


def _short_stay(t: _Table) -> ShortStay:
    d = ShortStay()
    out = ShortStay(t.flag("enabled"), t.number("los_ratio_below", lo=0, lo_open=True, hi=1.0),
                    t.number("death_within_days", lo=0, integer=True),
                    t.number("transfer_within_days", lo=0, integer=True),
                    t.texts("death_codes", d.death_codes), t.texts("transfer_codes", d.transfer_codes),
                    t.text("method", d.method, choices=("prorate", "ffs")))
    if out.enabled and out.los_ratio_below is None and out.death_within_days is None and out.transfer_within_days is None:
        t.fail("enabled", "true but no trigger: give los_ratio_below, death_within_days or transfer_within_days")
    t.done()
    return out


def _per_diem(t: _Table) -> PerDiem:
    d = PerDiem()
    out = PerDiem(t.flag("enabled"), t.number("los_min_excl", lo=0, integer=True),
                  t.number("los_max_excl", lo=1, integer=True), t.texts("drg_prefixes"),
                  t.text("method", d.method, choices=("bed_day", "ffs")),
                  t.text("short_method", d.short_method, choices=("bed_day", "ffs")),
                  t.number("bed_day_rate", lo=0, lo_open=True, hi=MAX_RATE),
                  t.numbers_by_name("bed_day_rate_by_level", hi=MAX_RATE))
    if out.los_min_excl is not None and out.los_max_excl is not None and out.los_min_excl >= out.los_max_excl:
        t.fail("los_max_excl", f"must be above los_min_excl ({out.los_max_excl} <= {out.los_min_excl})")
    uses_bed_day = (out.method == "bed_day" and (out.los_max_excl is not None or out.drg_prefixes)) or (
        out.short_method == "bed_day" and out.los_min_excl is not None)
    if out.enabled and uses_bed_day and out.bed_day_rate is None:
        t.fail("bed_day_rate", "missing: bed-day payment needs a rate (yuan per day)")
    t.done()
    return out


def _special_review(t: _Table) -> SpecialReview:
    d = SpecialReview()
    col = t.text("application_column")
    out = SpecialReview(t.flag("enabled"), t.number("cap", d.cap, lo=0, hi=1.0),
                        t.text("scope", d.scope, choices=("hospital", "region")),
                        t.number("min_cost_ratio", d.min_cost_ratio, lo=0, lo_open=True, hi=MAX_FACTOR), col,
                        t.number("ffs_ratio", d.ffs_ratio, lo=0, lo_open=True, hi=1.0))
    t.done()
    return out


def _settlement(t: _Table) -> Settlement:
    out = Settlement(t.number("reserve_pct", 0.05, lo=0, hi=1.0), t.flag("monthly", True))
    t.done()
    return out


def _fund(t: _Table) -> Fund:
    method = t.text("patient_share", "column", choices=("column", "column_ratio", "ratio"))
    out = Fund(method, t.number("fund_ratio", lo=0, hi=1.0),
               t.numbers_by_name("fund_ratio_by_insurance_type", lo=0, lo_open=False))
    if any(v > 1 for v in out.fund_ratio_by_insurance_type.values()):
        t.fail("fund_ratio_by_insurance_type", "ratios must be <= 1")
    if method == "ratio" and out.fund_ratio is None:
        t.fail("fund_ratio", "missing: patient_share = \"ratio\" needs fund_ratio (the fund's share, 0..1)")
    t.done()
    return out


TESTS = ("above_mean", "below_mean", "top_share", "bottom_share", "flag")


def _quality(t: _Table) -> QualityKnob:
    enabled = t.flag("enabled")
    raw = t.raw("rules", [])
    if not isinstance(raw, list):
        t.fail("rules", "must be a list of tables ([[knobs.quality.rules]])")
    rules = []
    for i, r in enumerate(raw):
        rt = _Table(t.file, t.where(f"rules[{i}]"), r)
        test = rt.text("test", required=True, choices=TESTS)
        share = rt.number("share", lo=0, lo_open=True, hi=1.0)
        if test in ("top_share", "bottom_share") and share is None:
            rt.fail("share", f"missing: test {test!r} needs the share of hospitals (0..1)")
        rules.append(QualityRule(rt.text("name", f"rule{i + 1}"), rt.text("column", required=True), test,
                                 rt.number("delta", required=True, lo=-1, lo_open=True, hi=MAX_FACTOR), share,
                                 rt.text("weight_column")))
        rt.done()
    if enabled and not rules:
        t.fail("rules", "knob enabled but no rules")
    t.done()
    return QualityKnob(enabled, tuple(rules))


def _referral(t: _Table) -> ReferralKnob:
    d = ReferralKnob()
    out = ReferralKnob(t.flag("enabled"), t.number("uplift", d.uplift, lo=-1, lo_open=True, hi=MAX_FACTOR),
                       t.number("min_rw", d.min_rw, lo=0, hi=MAX_FACTOR), t.texts("levels"))
    t.done()
    return out


def _sharing(t: _Table) -> SharingKnob:
    d = SharingKnob()
    out = SharingKnob(t.flag("enabled"), t.number("surplus_kept", d.surplus_kept, lo=0, hi=1.0),
                      t.number("surplus_kept_quality_fails", d.surplus_kept_quality_fails, lo=0, hi=1.0),
                      t.text("quality_column"), t.number("overspend_shared", d.overspend_shared, lo=0, hi=1.0),
                      t.number("overspend_shared_readmissions_rose", d.overspend_shared_readmissions_rose,
                               lo=0, hi=1.0), t.text("readmission_column"))
    if out.surplus_kept_quality_fails != out.surplus_kept and out.quality_column is None:
        t.fail("quality_column", "missing: surplus_kept_quality_fails needs the hospital column saying quality held")
    if out.overspend_shared_readmissions_rose != out.overspend_shared and out.readmission_column is None:
        t.fail("readmission_column", "missing: overspend_shared_readmissions_rose needs the hospital column "
                                     "saying readmissions rose")
    t.done()
    return out


def parse_pack(data: dict, file: str = "<pack>") -> PaymentPack:
    """A pack from parsed TOML (a dict); raises PackError naming ``file`` and the key."""
    top = _Table(file, "", data)
    p = top.sub("pack", required=True)
    name = p.text("name", required=True)
    head = dict(region=p.text("region", required=True), year=p.number("year", required=True, integer=True,
                                                                        lo=1900, hi=2200),
                illustrative=p.flag("illustrative"), description=p.text("description", ""),
                basis=p.text("basis", "total_cost", choices=("total_cost", "fund")))
    p.done()
    k = top.sub("knobs")
    knobs = Knobs(_quality(k.sub("quality")), _referral(k.sub("referral")), _sharing(k.sub("sharing")))
    k.done()
    dip = top.raw("dip", {})
    if not isinstance(dip, dict):
        top.fail("dip", f"must be a table, not {_kind(dip)}")
    pack = PaymentPack(
        name=name, **head, rate=_rate(top.sub("rate", required=True)),
        coefficients=_coefficients(top.sub("hospital_coefficients")), outlier=_outlier(top.sub("outlier")),
        unusual=_unusual(top.sub("unusual")), short_stay=_short_stay(top.sub("short_stay")),
        per_diem=_per_diem(top.sub("per_diem")), special_review=_special_review(top.sub("special_review")),
        settlement=_settlement(top.sub("settlement")), fund=_fund(top.sub("fund")), knobs=knobs, dip=dip, path=file)
    if pack.basis == "fund" and pack.fund.patient_share == "ratio" and (
            pack.fund.fund_ratio == 0 or 0 in pack.fund.fund_ratio_by_insurance_type.values()):
        top.fail("fund.fund_ratio", "must be above 0 on a fund basis (the payment is the fund amount / ratio)")
    top.done()
    return pack


def _payment_dirs() -> list[Path]:
    from grouper.rulesets import rules_dirs

    return [d / "payment" for d in rules_dirs() if (d / "payment").is_dir()]


def available_packs() -> dict[str, Path]:
    """Bundled (and $DRG_RULES_PATH) packs by name: ``<rules dir>/payment/<name>.toml``."""
    found: dict[str, Path] = {}
    for d in _payment_dirs():
        for f in sorted(d.glob("*.toml")):
            found.setdefault(f.stem, f)
    return found


def load_pack(name_or_path: str | os.PathLike) -> PaymentPack:
    """Read and validate a pack file (a path, or the name of a bundled pack)."""
    p = Path(name_or_path)
    if not p.is_file():
        found = available_packs().get(str(name_or_path))
        if found is None:
            raise PackError(str(name_or_path), "", "no such file and no bundled pack of that name "
                            f"(bundled: {', '.join(available_packs()) or 'none'})")
        p = found
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PackError(str(p), "", f"not valid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PackError(str(p), "", f"unreadable ({exc})") from None
    return parse_pack(data, str(p))

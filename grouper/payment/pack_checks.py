"""Reading a payment pack's TOML tables with checks: typed getters that name the file and the
dotted key of any bad value, one reader per table of the pack (``[rate]``, ``[outlier]``,
``[knobs.quality]``, ...), and a final check that no key was left unread. ``pack.parse_pack``
puts the tables together."""

from __future__ import annotations

import math
from typing import Any

from grouper.payment.pack_model import (MAX_AMOUNT, MAX_FACTOR, MAX_RATE, MIN_MEAN_COST, Coefficients, Fund,
                                  Outlier, PackError, PerDiem, QualityKnob, QualityRule, Rate, ReferralKnob,
                                  Settlement, SharingKnob, ShortStay, SpecialReview, Unusual, UnusualRule)


class Table:
    """One TOML table being read: typed getters that name the dotted key on error, and a final
    check that no key was left unread (a typo must not silently fall back to a default)."""

    def __init__(self, file: str, key: str, data: Any):
        self.file, self.key = file, key
        if not isinstance(data, dict):
            self.fail("", f"must be a table, not {kind(data)}")
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

    def sub(self, name: str, required: bool = False) -> Table:
        self.seen.add(name)
        if name not in self.data:
            if required:
                self.fail(name, "missing table")
            return Table(self.file, self.where(name), {})
        return Table(self.file, self.where(name), self.data[name])

    def number(self, name: str, default=None, *, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False, required: bool = False, integer: bool = False, inf: bool = False):
        self.seen.add(name)
        if name not in self.data:
            if required:
                self.fail(name, "missing")
            return default
        return number(self, name, self.data[name], lo=lo, hi=hi, lo_open=lo_open, integer=integer, inf=inf)

    def text(self, name: str, default=None, *, choices=None, required: bool = False):
        self.seen.add(name)
        if name not in self.data:
            if required:
                self.fail(name, "missing")
            return default
        v = self.data[name]
        if not isinstance(v, str):
            self.fail(name, f"must be text, not {kind(v)}")
        if choices is not None and v not in choices:
            self.fail(name, f"{v!r} is not one of {', '.join(map(repr, choices))}")
        return v

    def flag(self, name: str, default: bool = False) -> bool:
        self.seen.add(name)
        v = self.data.get(name, default)
        if not isinstance(v, bool):
            self.fail(name, f"must be true or false, not {kind(v)}")
        return v

    def texts(self, name: str, default=()) -> tuple[str, ...]:
        self.seen.add(name)
        v = self.data.get(name, list(default))
        if not isinstance(v, list):
            self.fail(name, f"must be a list of text, not {kind(v)}")
        for i, x in enumerate(v):
            if not isinstance(x, str) or not x:
                self.fail(f"{name}[{i}]", f"must be non-empty text, not {kind(x)}")
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


def kind(v) -> str:
    return {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list",
            dict: "a table"}.get(type(v), type(v).__name__)


def number(t: Table, name: str, v, *, lo=None, hi=None, lo_open=False, integer=False, inf=False):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        t.fail(name, f"must be a number, not {kind(v)}")
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


def rate(t: Table) -> Rate:
    value = t.number("value", lo=0, lo_open=True, hi=MAX_RATE)
    budget = t.number("budget", lo=0, lo_open=True, hi=MAX_AMOUNT)
    ew = t.raw("expected_weight")
    if ew is not None and ew != "data":
        ew = number(t, "expected_weight", ew, lo=0, lo_open=True, hi=MAX_AMOUNT)
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


def coefficients(t: Table) -> Coefficients:
    out = Coefficients(t.number("default", 1.0, lo=0, lo_open=True, hi=MAX_FACTOR),
                       t.numbers_by_name("by_level", hi=MAX_FACTOR), t.numbers_by_name("by_hospital", hi=MAX_FACTOR))
    t.done()
    return out


def outlier(t: Table) -> Outlier:
    d = Outlier()
    bands = t.raw("high_bands", [list(b) for b in d.high_bands])
    if not isinstance(bands, list) or not bands:
        t.fail("high_bands", "must be a non-empty list of [rw_upper, multiple] pairs")
    parsed = []
    for i, b in enumerate(bands):
        key = f"high_bands[{i}]"
        if not isinstance(b, list) or len(b) != 2:
            t.fail(key, "must be a pair [rw_upper, multiple]")
        upper = number(t, key, b[0], lo=0, lo_open=True, inf=True)
        mult = number(t, key, b[1], lo=0, lo_open=True, hi=MAX_FACTOR)
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
        mean = number(t, "overall_mean_cost", mean, lo=MIN_MEAN_COST, hi=MAX_RATE)
    out = Outlier(t.text("base", d.base, choices=("group_mean_cost", "payment_standard")), tuple(parsed), low,
                  t.text("high_method", d.high_method, choices=("H1", "H2", "H3")),
                  t.number("h2_alpha", d.h2_alpha, lo=0, lo_open=True, hi=1.0),
                  t.text("low_method", d.low_method, choices=("L1", "L2")), mean)
    t.done()
    return out


def _unusual_rule(t: Table, default: UnusualRule) -> UnusualRule:
    out = UnusualRule(t.text("method", default.method, choices=("ffs", "return")),
                      t.number("discount", default.discount, lo=0, hi=1.0))
    t.done()
    return out


def unusual(t: Table) -> Unusual:
    d = Unusual()
    out = Unusual(*(_unusual_rule(t.sub(k), getattr(d, k)) for k in ("ungroupable", "ambiguous", "invalid")))
    t.done()
    return out


def short_stay(t: Table) -> ShortStay:
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


def per_diem(t: Table) -> PerDiem:
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


def special_review(t: Table) -> SpecialReview:
    d = SpecialReview()
    col = t.text("application_column")
    out = SpecialReview(t.flag("enabled"), t.number("cap", d.cap, lo=0, hi=1.0),
                        t.text("scope", d.scope, choices=("hospital", "region")),
                        t.number("min_cost_ratio", d.min_cost_ratio, lo=0, lo_open=True, hi=MAX_FACTOR), col,
                        t.number("ffs_ratio", d.ffs_ratio, lo=0, lo_open=True, hi=1.0))
    t.done()
    return out


def settlement(t: Table) -> Settlement:
    out = Settlement(t.number("reserve_pct", 0.05, lo=0, hi=1.0), t.flag("monthly", True))
    t.done()
    return out


def fund(t: Table) -> Fund:
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


def quality(t: Table) -> QualityKnob:
    enabled = t.flag("enabled")
    raw = t.raw("rules", [])
    if not isinstance(raw, list):
        t.fail("rules", "must be a list of tables ([[knobs.quality.rules]])")
    rules = []
    for i, r in enumerate(raw):
        rt = Table(t.file, t.where(f"rules[{i}]"), r)
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


def referral(t: Table) -> ReferralKnob:
    d = ReferralKnob()
    out = ReferralKnob(t.flag("enabled"), t.number("uplift", d.uplift, lo=-1, lo_open=True, hi=MAX_FACTOR),
                       t.number("min_rw", d.min_rw, lo=0, hi=MAX_FACTOR), t.texts("levels"))
    t.done()
    return out


def sharing(t: Table) -> SharingKnob:
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

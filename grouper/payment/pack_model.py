"""What a payment pack holds, as frozen dataclasses, and the bounds every pack number must keep.

Payment packs: the payment rules of one region and year, as a validated TOML file.

National documents fix the grouping; almost every number of the payment (rates, coefficients,
outlier multiples, sharing ratios) is local and changes yearly, so none of it is in code. A pack
is read once, checked key by key, and becomes frozen dataclasses that ``grouper.payment.drg``
evaluates. A bad pack is refused with ``PackError`` naming the file and the dotted key
(``outlier.high_bands[1]``), because the person editing it needs to find the line, not a
traceback. The format is documented key by key in ``rules/payment/README.md``; the bundled
``illustrative-2024`` pack holds the worked-example numbers of the domain notes and is
labelled illustrative. ``[dip]`` belongs to the DIP module and is passed through untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


__all__ = ["MAX_AMOUNT", "MAX_FACTOR", "MAX_RATE", "MIN_MEAN_COST", "Coefficients", "Fund", "Knobs", "Outlier", "PackError", "PaymentPack", "PerDiem", "QualityKnob", "QualityRule", "Rate", "ReferralKnob",
           "Settlement", "SharingKnob", "ShortStay", "SpecialReview", "Unusual", "UnusualRule"]


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

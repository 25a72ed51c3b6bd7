"""The knob waterfall, coded once: the ordered steps from the pack rate without knobs, through
the referral uplift and each quality rule, to renormalisation and the year-end sharing of surplus
and overspend. Pricing, the totals and the report's effect columns all follow this list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from grouper._util.readers import flags
from grouper.payment.pack import PaymentPack

if TYPE_CHECKING:
    from grouper.payment.drg.cases import Prep
    from grouper.payment.drg.inputs import Hospitals


#: The kinds of waterfall step, in the order every run takes them: (kind, what the step adds).
#: A run's steps (``waterfall``) are these, leaving out the knobs the pack does not use.
WATERFALL = (
    ("base", "the pack rate without knobs"),
    ("referral", "the referral uplift of the cases referred from primary care (knobs.referral)"),
    ("quality", "each quality rule's factor for the hospitals that meet it, in the pack's order (knobs.quality)"),
    ("renormalisation", "the rate scaled so the total meets its target (rate.renormalize)"),
    ("sharing", "the year-end sharing of surplus and overspend (knobs.sharing)"),
)
KNOBS = ("base", "referral", "quality")  # the steps that change the knob factor per case


@dataclass(frozen=True, eq=False)  # compared by identity: two quality rules may share a name
class Step:
    """One step of a run's waterfall. ``name`` is its hospital-table column ``effect_<name>`` and
    its key in the summary's ``knob_effects`` (the effect: the payment at this step minus the
    payment at the step before; the base step has none)."""

    name: str
    kind: str  # one of WATERFALL's kinds
    rule: int | None = None  # kind "quality": the rule's place among the pack's quality rules

    @property
    def knob(self) -> bool:
        """Changes the knob factor per case (priced at the pack rate)."""
        return self.kind in KNOBS

    @property
    def per_case(self) -> bool:
        """Priced case by case (sharing is per hospital, at year end)."""
        return self.kind != "sharing"


def waterfall(pack: PaymentPack) -> list[Step]:
    """The steps of a settlement under ``pack``, in order."""
    steps = [Step("base", "base")]
    if pack.knobs.referral.enabled:
        steps.append(Step("referral", "referral"))
    kq = pack.knobs.quality
    for i, r in enumerate(kq.rules if kq.enabled else ()):
        steps.append(Step(f"quality_{r.name}", "quality", i))
    if pack.rate.renormalize != "none":
        steps.append(Step("renormalisation", "renormalisation"))
    steps.append(Step("sharing", "sharing"))
    return steps


def knob_steps(steps: list[Step]) -> list[Step]:
    """The steps at the pack rate, each adding a knob factor (the first: none)."""
    return [x for x in steps if x.knob]


def presettle_step(steps: list[Step]) -> Step:
    """The step monthly pre-settlement pays at: the per-case rules at the provisional rate,
    before the hospital-level knobs (quality) and renormalisation."""
    return [x for x in steps if x.kind in ("base", "referral")][-1]


def knob_factors(p: Prep, steps: list[Step]) -> dict[Step, np.ndarray]:
    """The knob factor per case after each knob step: no knobs, then the referral uplift (when
    on), then each quality rule in order."""
    factor = np.ones(p.n)
    out = {}
    for st in steps:
        if st.kind == "referral":
            factor = factor * p.referral
        elif st.kind == "quality":
            factor = factor * p.quality[st.rule]
        elif st.kind != "base":
            continue
        out[st] = factor
    return out


def sharing_adjustment(pack: PaymentPack, margin_cents: np.ndarray, hosp: Hospitals, hosp_values):
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
            flag = flags(hospitals[colname])
            per_h = np.where(row >= 0, flag[np.maximum(row, 0)], False)
            if colname == ks.quality_column:  # quality held -> surplus_kept; otherwise the other share
                present = row >= 0
                arr[:nh] = np.where(present & ~per_h, other, arr[:nh])
            else:  # readmissions rose -> the other share
                arr[:nh] = np.where(per_h, other, arr[:nh])
    adj = np.where(margin_cents > 0, -np.rint((1 - kept) * margin_cents), np.rint(shared * -margin_cents))
    adj = np.where(margin_cents == 0, 0.0, adj)
    return adj, missing

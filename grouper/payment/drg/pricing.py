"""Pricing one batch: case types and amounts ``s x (factor x a1 + a2) + c`` at a rate scale s and
a knob factor (``classify``), and the payment, fund and patient share they come to (``amounts``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from grouper.payment.drg.cases import Prep
from grouper.payment.drg.inputs import (AMBIGUOUS, HIGH, INVALID, LOW, NORMAL, PER_DIEM, RETURNED, SETTLED, SHORT,
                                        SPECIAL, UNGROUPABLE)
from grouper.payment.pack import PaymentPack


@dataclass
class Priced:
    """One evaluation: types and amounts ``s x (factor x a1 + a2) + c``; ``rate_based`` rows are
    DRG-priced (their amount is a fund amount on a fund basis)."""

    types: np.ndarray
    a1: np.ndarray
    a2: np.ndarray
    c: np.ndarray
    rate_based: np.ndarray

    def take(self, idx: np.ndarray) -> Priced:
        return Priced(self.types[idx], self.a1[idx], self.a2[idx], self.c[idx], self.rate_based[idx])


def rows_of(p: Prep, idx: np.ndarray) -> Prep:
    """The fields ``amounts`` reads, for some rows only."""
    return replace(p, n=len(idx), status=p.status[idx], cost=p.cost[idx], share=p.share[idx],
                   fund_ratio=None if p.fund_ratio is None else p.fund_ratio[idx])


def classify(p: Prep, pack: PaymentPack, factor: np.ndarray, s: float, chosen: np.ndarray | None = None) -> Priced:
    """Case types and amounts at rate scale ``s`` with knob ``factor``; ``chosen`` marks the rows
    special review took (the selection needs the whole input, see ``Candidates``). Thresholds
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
    q = Priced(types, a1, a2, c, rb)
    if chosen is not None:
        take_special(q, p, pack, chosen)
    return q


def take_special(q: Priced, p: Prep, pack: PaymentPack, chosen: np.ndarray) -> None:
    """Special review (特例单议) takes these rows: paid ffs_ratio x cost, not by the rate."""
    q.types[chosen] = SPECIAL
    q.rate_based[chosen] = False
    q.a1[chosen] = q.a2[chosen] = 0.0
    q.c[chosen] = pack.special_review.ffs_ratio * p.cost[chosen]


def amounts(p: Prep, pack: PaymentPack, q: Priced, factor: np.ndarray, s: float):
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


def target_amounts(p: Prep, pack: PaymentPack, q: Priced, factor, s: float) -> np.ndarray:
    """What renormalisation adds up per case: the payment, or the fund's part on a fund basis."""
    pay, fund, _ = amounts(p, pack, q, factor, s)
    return fund if pack.basis == "fund" else pay

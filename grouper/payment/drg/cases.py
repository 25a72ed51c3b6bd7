"""Per batch, everything about the cases that does not depend on the rest of the input: their
group status, weight, rate, hospital coefficient, settle status, per-diem and short-stay triggers
and knob factors (``Prep``), within what one settlement knows (``Run``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc
from grouper._util.readers import Vocab, encode, flags, numbers, yyyymm
from grouper.payment.drg.inputs import (GROUP_STATUS, NO_COST, NO_LOS, NO_SHARE, NO_WEIGHT, RETURNED, SETTLED,
                                        UNKNOWN_STATUS, DrgColumns, Hospitals, Weights, case_rates, need_column,
                                        needed_columns, uses_insurance_type, value_lookup)
from grouper.payment.pack import MAX_AMOUNT, PaymentPack


@dataclass
class Prep:
    """One batch of cases, read and looked up: the numbers pricing needs, per case."""

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


class Run:
    """What one settlement knows before and between the passes."""

    def __init__(self, pack: PaymentPack, weights: pa.Table, hospitals: pa.Table | None, cols: DrgColumns):
        self.pack, self.cols = pack, cols
        self.weights = Weights(weights, pack)
        self.hosp = Hospitals(hospitals)
        self.vocab = Vocab()
        self.base = float("nan")  # provisional base rate, once known
        self.fixed = pack.outlier.base == "group_mean_cost"  # case types independent of rate and knobs
        sr = pack.special_review
        self.review = sr.enabled and sr.cap > 0
        self.level_seen = False  # any level at all (the pack may need one)

    def prepare(self, table: pa.Table, row0: int) -> Prep:
        """Everything about a batch of cases that does not depend on the rest of the input."""
        pack, cols = self.pack, self.cols
        n = table.num_rows
        if cols.status not in table.column_names or cols.drg not in table.column_names:
            raise ValueError(f"the cases are not grouped: no {cols.status!r}/{cols.drg!r} column "
                             "(group them first, or give raw cases with a ruleset)")
        for name, why in needed_columns(pack, cols):
            need_column(table, name, why)
        st_values, st = encode(table[cols.status])
        kind_of = np.array([GROUP_STATUS.index(v) if v in GROUP_STATUS else -1 for v in st_values] + [-1], np.int64)
        kind = kind_of[st]

        drg_values, d = encode(table[cols.drg])
        w = self.weights.lookup(drg_values)
        rw, base_cost, alos = w["rw"][d], w["mean_cost"][d], w["mean_los"][d]
        cost = numbers(table, cols.cost, MAX_AMOUNT)

        hosp_values, hosp = encode(table[cols.hospital])
        hid = self.vocab.codes(hosp_values, hosp)
        trow = self.hosp.rows(hosp_values)
        if cols.level in table.column_names:
            level_values, level = encode(table[cols.level])
        elif self.hosp.levels is not None:
            level_values, idx = self.hosp.levels
            per_h = np.append(np.where(trow >= 0, idx[np.maximum(trow, 0)], -1), -1)
            level = per_h[hosp]
        else:
            level_values, level = np.array([], dtype=object), np.full(n, -1, np.int64)
        self.level_seen |= len(level_values) > 0
        ins_values, ins = np.array([], object), np.full(n, -1, np.int64)
        if uses_insurance_type(pack):
            ins_values, ins = encode(table[cols.insurance_type])

        needs_los = pack.per_diem.enabled or pack.short_stay.enabled
        los = numbers(table, cols.los, MAX_AMOUNT) if needs_los else np.full(n, np.nan)
        share = np.full(n, np.nan)
        if pack.fund.patient_share in ("column", "column_ratio"):
            share = numbers(table, cols.patient_share, MAX_AMOUNT)

        rate, fallback = case_rates(pack, self.base, level_values, level, ins_values, ins)

        # hospital coefficient k_h: by hospital id, else by level, else default
        co = pack.coefficients
        k_h = value_lookup(hosp_values, co.by_hospital, np.nan)[hosp]
        k_l = value_lookup(level_values, co.by_level, co.default)[level]
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
            bed = value_lookup(level_values, pd.bed_day_rate_by_level, pd.bed_day_rate or np.nan)[level]
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
            applied = flags(table[sr.application_column])
        fund_ratio = None
        if pack.fund.patient_share == "ratio":
            fr = pack.fund
            fund_ratio = value_lookup(ins_values, fr.fund_ratio_by_insurance_type, fr.fund_ratio)[ins]
        month = None
        if pack.settlement.monthly and cols.date in table.column_names:
            month = yyyymm(table[cols.date])

        unit = np.where(priced, rw * rate * coef, 0.0)
        rows = np.arange(row0, row0 + n, dtype=np.int64)
        case_id = table[cols.case_id] if cols.case_id in table.column_names else pa.chunked_array(
            [pa.array(rows)])  # no ids: row numbers (then ties follow row order)
        p = Prep(n, kind, rw, base_cost, alos, cost, los, share, rate, coef, np.nan_to_num(unit), hid, status,
                 per_diem, per_diem_amount, short, applied, fund_ratio, self.weights.cbar, priced, rows, case_id,
                 month, level, level_values, fallback, table=table)

        # knob factors per case: referral uplift, then each quality rule's hospital factor
        self.hosp.knobs(pack)
        kr = pack.knobs.referral
        if kr.enabled:
            hit = flags(table[cols.referred]) & priced & (np.nan_to_num(rw) >= kr.min_rw)
            if kr.levels:
                ok = np.array([v in kr.levels for v in level_values] + [False])
                hit &= ok[level]
            p.referral = np.where(hit, 1.0 + kr.uplift, 1.0)
            p.referral_hits = int(hit.sum())
        for rule, ind in self.hosp.rules:
            per_h = np.append(np.where(trow >= 0, ind[np.maximum(trow, 0)], False), False)
            p.quality.append(np.where(per_h, 1.0 + rule.delta, 1.0)[hosp])
        return p

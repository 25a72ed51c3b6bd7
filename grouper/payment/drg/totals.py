"""Pass 2 of a settlement: every batch priced at each waterfall step, the per-case output, and
the exact sums per hospital and per (hospital, month) that become the hospital and month tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from grouper._util.money import cent_sums, cents
from grouper._util.readers import unique_small
from grouper.payment.drg.cases import Prep, Run
from grouper.payment.drg.gather import Pass1
from grouper.payment.drg.inputs import DRG_CASE_TYPES, HIGH, LOW, NORMAL, SETTLE_STATUSES, SETTLED, SHORT, SPECIAL
from grouper.payment.drg.pricing import amounts, classify
from grouper.payment.drg.special_review import in_batch
from grouper.payment.drg.waterfall import Step, knob_factors, knob_steps, presettle_step, sharing_adjustment


def _month_labels(months: np.ndarray) -> pa.Array:
    """"YYYY-MM" text of sorted distinct YYYYMM values (-1, missing, is null)."""
    return pa.array([f"{m // 100:04d}-{m % 100:02d}" if m >= 0 else None for m in months], pa.string())


def month_text(ym: np.ndarray, months: np.ndarray | None = None) -> pa.DictionaryArray:
    """YYYYMM (-1 missing) as "YYYY-MM" text, built once per distinct month. ``months``: the
    sorted distinct months of the whole input, so that every batch shares one dictionary."""
    if months is None:
        months, inv = unique_small(ym)
    else:
        inv = np.searchsorted(months, ym)
    return pa.DictionaryArray.from_arrays(pa.array(inv.astype(np.int32), mask=ym < 0), _month_labels(months))


class Pass2:
    """Pass 2: each batch priced at every waterfall step, the per-case output batch, and the
    sums per hospital slot and per (hospital, month) in whole cents (exact in any order)."""

    def __init__(self, run: Run, steps: list[Step], s: float, chosen: dict, out_types: dict, months: np.ndarray):
        self.run, self.steps, self.s, self.chosen = run, steps, s, chosen  # chosen: special-review rows per step
        self.knobs = knob_steps(steps)
        self.priced = [x for x in steps if x.per_case]  # priced per case: every step but the year-end sharing
        self.presettle = presettle_step(steps)
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
        self.types = np.zeros((ns, len(DRG_CASE_TYPES)), np.int64)
        # sums in whole fen, int64: exact in any order (float sums beyond 2^53 fen are not)
        self.money = {k: np.zeros(ns, np.int64) for k in ("cost", "payment", "fund_payment", "patient_share",
                                                          "presettled")}
        self.step_pay = np.zeros((len(self.priced), ns), np.int64)
        self.status = np.zeros(len(SETTLE_STATUSES), np.int64)
        self.fallback = self.no_month = self.referral = self.negative = 0

    def add(self, p: Prep) -> pa.RecordBatch:
        run, pack = self.run, self.run.pack
        if len(run.vocab.values) + 1 != self.nslots:
            raise ValueError("the input changed between the two passes (a hospital appeared in the second)")
        factors = knob_factors(p, self.knobs)
        results = {}
        q = factor = None
        for st in self.priced:  # renormalisation: every knob, at the rate scale s
            factor = factors[st if st.knob else self.knobs[-1]]
            sc = self.s if st.kind == "renormalisation" else 1.0
            if q is None or not run.fixed:  # with C̄_g as base the types are the same at every step
                q = classify(p, pack, factor, sc, in_batch(self.chosen[st], p))
            pay, fund, share = amounts(p, pack, q, factor, sc)
            results[st] = (cents(pay), cents(fund), cents(share))
        pay_c, fund_c, share_c = results[self.priced[-1]]
        settled = p.status == SETTLED
        cost_c = cents(p.cost)
        slot = p.hid + 1
        ns = self.nslots

        def by_h(x, into, what):
            cent_sums(slot[settled], x[settled], ns, into, what)

        self.cases += np.bincount(slot, minlength=ns)
        self.settled += np.bincount(slot[settled], minlength=ns)
        typed = q.types >= 0
        self.types += np.bincount(slot[typed] * len(DRG_CASE_TYPES) + q.types[typed],
                                  minlength=ns * len(DRG_CASE_TYPES)).reshape(ns, len(DRG_CASE_TYPES))
        for key, x in (("cost", cost_c), ("payment", pay_c), ("fund_payment", fund_c), ("patient_share", share_c)):
            by_h(x, self.money[key], f"the {key.replace('_', ' ')} per hospital")
        for i, st in enumerate(self.priced):
            by_h(results[st][0], self.step_pay[i], "the payment per hospital")
        pre_pay, pre_fund, _ = results[self.presettle]
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
        cent_sums(key, pre_pay[settled], size, self.m[1], "the monthly payment")
        cent_sums(key, pre_fund[settled], size, self.m[2], "the monthly fund payment")
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
                                               pa.array(DRG_CASE_TYPES))
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
            "payment_standard": money(cents(std)),
            "cost": maybe(p.cost, np.isnan(p.cost)),
            "payment": money(pay_c),
            "fund_payment": money(fund_c),
            "patient_share": money(share_c),
            "margin": money(margin_c),
        }
        if self.month_values is not None:
            out["month"] = month_text(p.month, self.month_values)
        return pa.RecordBatch.from_pydict(out)

    def hospital_table(self, one: Pass1) -> tuple[pa.Table, dict, dict]:
        """(one row per hospital, sorted by id with the null hospital last; totals; knob effects)."""
        run, pack = self.run, self.run.pack
        nh = len(run.vocab.values)
        order = run.vocab.sorted_order()
        perm = np.r_[order + 1, 0]  # slot of each output row: the hospitals sorted, then null
        hosp_values = np.array(run.vocab.values, dtype=object)[order]
        cases, settled = self.cases[perm], self.settled[perm]
        present = cases > 0
        hs = {"hospital": pa.array([str(v) for v in hosp_values] + [None], pa.string())}
        hs["level"] = level_per_hospital(one.level_pairs, perm)
        hs["cases"] = cases
        hs["settled"] = settled
        hs["not_settled"] = cases - settled
        types = self.types[perm]
        for code, name in enumerate(DRG_CASE_TYPES):
            hs[f"n_{name}"] = types[:, code]
        tot = {k: self.money[k][perm] for k in ("cost", "payment", "fund_payment", "patient_share")}
        margin = tot["payment"] - tot["cost"]
        adj, sharing_missing = sharing_adjustment(pack, margin, run.hosp, hosp_values)
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
        effects = {st.name: step_pay[i] - step_pay[i - 1] for i, st in enumerate(self.priced) if i}
        for st in self.steps:
            if not st.per_case:
                effects[st.name] = adj
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
                 "case_types": {name: int(types[:, code].sum()) for code, name in enumerate(DRG_CASE_TYPES)}}
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
            "month": month_text(ym).dictionary_decode(),
            "cases": self.m[0, used].astype(np.int64),
            "payment": self.m[1, used] / 100, "fund_payment": fund / 100,
            "reserve_withheld": reserve / 100, "paid": (fund - reserve) / 100,
        })


def level_per_hospital(pairs: set, perm: np.ndarray) -> pa.Array:
    """A hospital's level when all its cases agree, else "mixed" (null when unknown)."""
    seen: dict[int, set] = {}
    for slot, name in pairs:
        seen.setdefault(slot, set()).add(name)
    out = []
    for slot in perm.tolist():
        names = seen.get(slot, {None})
        out.append("mixed" if len(names) > 1 else next(iter(names)))
    return pa.array(out, pa.string())

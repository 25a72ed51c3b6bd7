"""Pass 1 of a settlement: what needs the whole input before any case can be priced for good."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from grouper._util.money import ExactTotal
from grouper._util.readers import unique_small
from grouper.payment.drg.cases import Prep, Run
from grouper.payment.drg.inputs import PASS_THROUGH, SETTLED
from grouper.payment.drg.pricing import classify, target_amounts
from grouper.payment.drg.renormalise import Spool
from grouper.payment.drg.special_review import Candidates, find_candidates, review_scope
from grouper.payment.drg.waterfall import Step, knob_factors


class Pass1:
    """Pass 1: what needs the whole input. Hospitals (the run's vocabulary), their levels, the
    discharge months, DRG-priced cases per special-review scope, the special-review candidates of
    each pricing that needs them, the totals renormalisation solves for, the sum of the weights,
    and whether pass-through dictionaries change between batches."""

    def __init__(self, run: Run, knobs: list[Step]):
        pack = run.pack
        self.run = run
        renorm = pack.rate.renormalize
        self.knobs = knobs
        self.base, self.last = knobs[0], knobs[-1]  # no knobs; every knob at the pack rate
        knobs_target = renorm == "knobs"
        # special-review candidates, and the totals to solve for: with C̄_g as outlier base one
        # classification serves every step; with P as base each step at the pack rate has its own
        self.cands: dict = {}
        if run.fixed:
            evals = [(self.last, 0.0), (self.last, 1.0)] if renorm != "none" else []
            if knobs_target:
                evals.append((self.base, 1.0))
            if run.review or evals:
                self.cands[None] = Candidates(evals)
        else:
            for k in knobs:
                ev = [(k, 0.0), (k, 1.0)] if (renorm != "none" and k is self.last) else []
                if knobs_target and k is self.base:
                    ev.append((self.base, 1.0))
                if run.review or ev:
                    self.cands[k] = Candidates(ev)
        self.spool = Spool() if (renorm != "none" and not run.fixed) else None
        self.fixed_part = ExactTotal()  # settled rows outside DRG pricing: the same at any rate scale
        self.weight = ExactTotal("the weights of the cases")
        self.priced_n: dict[int, int] = {}
        self.level_pairs: set = set()
        self.months: set = set()
        self.dicts: dict[str, list] = {}  # role -> [first dictionary, changes]
        self.n = 0

    def add(self, p: Prep) -> None:
        run, pack, cols = self.run, self.run.pack, self.run.cols
        self.n += p.n
        self.weight.add(p.rw[(p.kind == 0) & ~np.isnan(p.rw)])
        slot = p.hid + 1
        scope = review_scope(p, pack)
        cnt = np.bincount(scope[p.priced])
        for a in np.flatnonzero(cnt).tolist():
            self.priced_n[a] = self.priced_n.get(a, 0) + int(cnt[a])
        nl = len(p.level_values)
        pairs = np.flatnonzero(np.bincount(slot * (nl + 1) + np.where(p.level >= 0, p.level, nl)))
        names = list(p.level_values) + [None]
        self.level_pairs.update((int(k // (nl + 1)), names[k % (nl + 1)]) for k in pairs.tolist())
        if p.month is not None:
            self.months.update(unique_small(p.month)[0].tolist())
        for role in PASS_THROUGH:
            c = p.table[getattr(cols, role)] if getattr(cols, role) in p.table.column_names else None
            if c is not None and pa.types.is_dictionary(c.type) and c.num_chunks:
                d = c.chunk(0).dictionary
                seen = self.dicts.setdefault(role, [d, False])
                seen[1] |= c.num_chunks > 1 or not d.equals(seen[0])
        if not self.cands and self.spool is None:
            return
        factors = knob_factors(p, self.knobs)
        q_last = None
        for key, cd in self.cands.items():
            k = self.last if key is None else key
            q = classify(p, pack, factors[k], 1.0) if cd.evals else None
            if k is self.last:
                q_last = q
            cand, ratio = find_candidates(p, pack, factors[k], 1.0)
            if not run.review:
                cand = np.zeros(p.n, bool)
            cd.add(p, pack, cand, ratio, scope, q, factors)
        if self.spool is not None:  # the rows outside DRG pricing pay the same at any rate scale
            other = (p.status == SETTLED) & ~p.priced
            self.fixed_part.add(target_amounts(p, pack, q_last, factors[self.last], 1.0)[other])
            self.spool.add(p, factors[self.last])

    def allowed(self) -> np.ndarray:
        """Special-review cap per scope slot: floor(cap x DRG-priced cases)."""
        size = len(self.run.vocab.values) + 1
        denom = np.zeros(size, np.int64)
        for a, b in self.priced_n.items():
            denom[a] = b
        return np.floor(self.run.pack.special_review.cap * denom + 1e-9).astype(np.int64)

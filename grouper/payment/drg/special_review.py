"""Special review (特例单议): the candidates of each pricing, gathered batch by batch, and the
choice under the cap, which needs the whole input and must not depend on row order."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc
from grouper._util.money import ExactTotal
from grouper.payment.drg.cases import Prep
from grouper.payment.drg.inputs import SETTLED
from grouper.payment.drg.pricing import Priced, rows_of, take_special, target_amounts
from grouper.payment.pack import PaymentPack


def find_candidates(p: Prep, pack: PaymentPack, factor, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Special-review candidates (DRG-priced, cost >= k x base, or applied for) and every row's
    cost ratio, the same numbers ``classify`` computes."""
    sr = pack.special_review
    base = p.base_cost if pack.outlier.base == "group_mean_cost" else p.unit * factor * s
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(base > 0, p.cost / base, np.inf)
    cand = p.priced & (p.applied if p.applied is not None else (ratio >= sr.min_cost_ratio))
    return cand, ratio


def review_scope(p: Prep, pack: PaymentPack) -> np.ndarray:
    """The special-review cap's scope of each case: its hospital slot, or 0 for the whole region."""
    return p.hid + 1 if pack.special_review.scope == "hospital" else np.zeros(p.n, np.int64)


class Candidates:
    """Special-review candidates of one pricing (knob step, rate scale), gathered batch by batch:
    only the candidate rows are kept (scope, cost ratio, case id, row number). The cap needs the
    whole input, so the totals asked for in ``evals`` ((step, s) pairs) are summed exactly over
    the other settled rows, and each candidate's amount is kept both ways (taken by special
    review or not) until ``select`` knows which."""

    def __init__(self, evals: Iterable[tuple[int, float]] = ()):
        self.scope, self.ratio, self.rows, self.ids = [], [], [], []
        self.evals = list(evals)
        self.rest = [ExactTotal() for _ in self.evals]
        self.as_type = [[] for _ in self.evals]
        self.as_special = [[] for _ in self.evals]

    def add(self, p: Prep, pack: PaymentPack, cand: np.ndarray, ratio: np.ndarray, scope: np.ndarray,
            q: Priced | None = None, factors: list | None = None) -> None:
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
        sub, qs = rows_of(p, idx), q.take(idx)
        take_special(qs, sub, pack, np.ones(len(idx), bool))
        rest = (p.status == SETTLED) & ~cand
        for j, (k, s) in enumerate(self.evals):
            x = target_amounts(p, pack, q, factors[k], s)
            self.rest[j].add(x[rest])
            self.as_type[j].append(x[idx])
            self.as_special[j].append(target_amounts(sub, pack, qs, factors[k][idx], s))

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

    def totals(self, taken: np.ndarray) -> list[ExactTotal]:
        """The exact total of each eval, once ``select`` has said which candidates were taken."""
        out = []
        for j in range(len(self.evals)):
            e = self.rest[j].plus(ExactTotal())
            if len(taken):
                e.add(np.where(taken, np.concatenate(self.as_special[j]), np.concatenate(self.as_type[j])))
            out.append(e)
        return out


def in_batch(chosen: np.ndarray | None, p: Prep) -> np.ndarray | None:
    """The rows of a sorted row-number array that fall in this batch, as a mask."""
    if chosen is None:
        return None
    mask = np.zeros(p.n, bool)
    if p.n:
        lo, hi = np.searchsorted(chosen, [p.rows[0], p.rows[-1] + 1])
        mask[chosen[lo:hi] - p.rows[0]] = True
    return mask

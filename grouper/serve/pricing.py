"""Weight and expected payment of one grouped case, for the service's optional ``payment`` object.

The payment layer's single-case quote (``grouper.payment.drg.CaseQuoter``: the same pack rules,
case types and rounding as ``drg settle``, at the pack's provisional rate and without special
review, which need a whole year of cases) prices the case; one quoter per weights table and
pack, built at start-up so that a pack unfit for single cases stops the service there. A case without a cost
is priced as a typical case of its group (cost = the group's mean cost), and one without a length
of stay as a typical stay (the group's mean LOS): what a coder wants to see before the bill is
final; the answer says so (``cost_assumed``, ``los_assumed``)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import pyarrow as pa

from grouper.io import read_table
from grouper.payment.drg import CaseQuoter
from grouper.payment.pack import PaymentPack, load_pack

__all__ = ["Pricing", "WeightsTable", "case_payment", "load_pricing", "load_weights"]


@dataclass(frozen=True)
class WeightsTable:
    """A weights table of ``drg weights`` (drg, rw, mean_cost, mean_los, n) and its rows by DRG."""

    table: pa.Table
    by_drg: dict[str, dict]
    source: str
    quoters: dict = field(default_factory=dict, compare=False, repr=False)  # id(pack) -> (pack, CaseQuoter)

    def quoter(self, pack: PaymentPack) -> CaseQuoter:
        """The single-case quoter of this table under ``pack`` (built once)."""
        held = self.quoters.get(id(pack))
        if held is None or held[0] is not pack:
            held = self.quoters[id(pack)] = (pack, CaseQuoter(self.table, pack))
        return held[1]

    def rw(self, drg: str) -> float | None:
        return (self.by_drg.get(drg) or {}).get("rw")


@dataclass(frozen=True)
class Pricing:
    """What the service prices with: per ruleset name its weights, and the pack (or None)."""

    weights: dict[str, WeightsTable]
    pack: PaymentPack | None


def load_weights(path: str | os.PathLike) -> WeightsTable:
    """Read a weights table (CSV/Parquet/...); a table without drg and rw is a ValueError."""
    t = read_table(path)
    missing = [c for c in ("drg", "rw") if c not in t.column_names]
    if missing:
        raise ValueError(f"{path}: not a weights table (missing column(s) {', '.join(missing)})")
    by_drg = {}
    for r in t.to_pylist():
        if r.get("drg") is not None:  # the numbers as numbers, whatever the file's column types
            by_drg[str(r["drg"])] = {k: _number(r.get(k)) for k in ("rw", "mean_cost", "mean_los", "n")}
    return WeightsTable(t, by_drg, str(path))


def load_pricing(weights: dict[str, str | os.PathLike], pack: str | os.PathLike | None) -> Pricing:
    pricing = Pricing({name: load_weights(p) for name, p in weights.items()}, load_pack(pack) if pack else None)
    if pricing.pack is not None:
        for table in pricing.weights.values():  # refused now (start-up), not per request
            table.quoter(pricing.pack)
    return pricing


def _fen(x) -> int | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else int(round(x * 100))


def case_payment(result: dict, case: dict, weights: WeightsTable | None, pack: PaymentPack | None) -> dict | None:
    """The ``payment`` object of one result: RW (with weights), and with a pack too the payment
    standard, case type and expected payment in fen. None when no weights are configured."""
    if weights is None:
        return None
    drg = result["drg"]
    out: dict = {"rw": weights.rw(drg), "weights": weights.source}
    if pack is None:
        return out
    row = weights.by_drg.get(drg) or {}
    cost = case.get("cost")
    assumed = cost is None
    if assumed:
        cost = row.get("mean_cost")
    los = _number(case.get("los"))
    los_assumed = los is None
    if los_assumed:  # a typical stay of the group
        los = row.get("mean_los")
    extra = {k: str(case[k]) for k in ("hospital_level", "insurance_type") if case.get(k) is not None}
    q = weights.quoter(pack).quote(
        result, cost=cost, los=None if los is None else int(round(los)),
        patient_share=float(case.get("patient_share") or 0.0),
        discharge=None if case.get("discharge") is None else str(case["discharge"]), **extra)
    out.update({
        "pack": q.pack, "illustrative": bool(getattr(pack, "illustrative", False)),
        "settle_status": q.settle_status, "case_type": q.case_type, "case_type_name": q.case_type_name,
        "rate": None if q.rate_fen is None else q.rate_fen / 100, "coefficient": q.coefficient,
        "payment_standard_fen": q.payment_standard_fen, "expected_payment_fen": q.payment_fen,
        "fund_payment_fen": q.fund_payment_fen, "margin_fen": q.margin_fen, "note": q.note,
        "cost_fen": _fen(cost), "cost_assumed": assumed, "los": los, "los_assumed": los_assumed,
    })
    return out


def _number(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None

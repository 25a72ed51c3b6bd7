"""Weight and expected payment of one grouped case, for the service's optional ``payment`` object.

Today this settles the one case alone with the DRG settlement of ``grouper.payment.drg`` (the
same pack rules, case types and rounding as ``drg settle``); ``case_payment`` is the one place
to point at a single-case payment API of the payment layer once it exists. A case without a cost
is priced as a typical case of its group (cost = the group's mean cost), and one without a length
of stay as a typical stay (the group's mean LOS): what a coder wants to see before the bill is
final; the answer says so (``cost_assumed``, ``los_assumed``)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import pyarrow as pa

from grouper.io import read_table
from grouper.payment.drg import DRG_CASE_TYPE_NAMES_ZH, settle
from grouper.payment.pack import PaymentPack, load_pack

__all__ = ["Pricing", "WeightsTable", "case_payment", "load_pricing", "load_weights"]


@dataclass(frozen=True)
class WeightsTable:
    """A weights table of ``drg weights`` (drg, rw, mean_cost, mean_los, n) and its rows by DRG."""

    table: pa.Table
    by_drg: dict[str, dict]
    source: str

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
    return Pricing({name: load_weights(p) for name, p in weights.items()}, load_pack(pack) if pack else None)


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
    cols = {"case_id": ["1"], "hospital_id": ["-"]}
    for k in ("hospital_level", "insurance_type"):  # absent, not null: settle cannot encode an all-null column
        if case.get(k) is not None:
            cols[k] = pa.array([case[k]], pa.string())
    table = pa.table({
        **cols,
        "total_cost": pa.array([cost], pa.float64()),
        "patient_share": pa.array([case.get("patient_share") or 0.0], pa.float64()),
        "los": pa.array([los], pa.float64()),
        "discharge": pa.array([None if case.get("discharge") is None else str(case["discharge"])], pa.string()),
        "status": [result["status"]], "drg": [drg],
    })
    r = settle(table, pack, weights.table).cases.to_pylist()[0]
    ctype = r["case_type"]
    out.update({
        "pack": pack.name, "illustrative": bool(getattr(pack, "illustrative", False)),
        "settle_status": r["settle_status"], "case_type": ctype,
        "case_type_name": DRG_CASE_TYPE_NAMES_ZH.get(ctype, "") if ctype else "",
        "rate": r["rate"], "coefficient": r["coefficient"],
        "payment_standard_fen": _fen(r["payment_standard"]), "expected_payment_fen": _fen(r["payment"]),
        "fund_payment_fen": _fen(r["fund_payment"]), "cost_fen": _fen(cost), "cost_assumed": assumed,
        "los": los, "los_assumed": los_assumed,
    })
    return out


def _number(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None

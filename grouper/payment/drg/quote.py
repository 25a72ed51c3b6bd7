"""One case's weight and payment, for a coder checking a case before it is submitted.

``CaseQuoter(weights, pack).quote(result, cost=...)`` settles the single case with the very
``settle`` that settles a year's batch, so the two cannot disagree on a case. What only a batch
can decide is left out on purpose and said so: the rate is the pack's provisional rate (a
``renormalize`` setting needs the whole year), and special review (特例单议), a share of a
hospital's cases, is never taken for one case. The engine does not import this layer:
``Grouper.group_one(..., quote=quoter)`` calls ``quoter.quote`` duck-typed.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace
from typing import Any

import pyarrow as pa

from grouper.io import read_table
from grouper.payment.drg.inputs import DRG_CASE_TYPE_NAMES_ZH, Weights
from grouper.payment.drg.run import settle
from grouper.payment.pack import PaymentPack, load_pack

__all__ = ["CaseQuoter", "Quote"]


@dataclass(frozen=True)
class Quote:
    """What one case is worth under a pack: money in fen (int), None where it does not apply
    (a case sent back for correction has no payment; an ungroupable case no weight)."""

    drg: str | None
    rw: float | None  # the DRG's relative weight (None: the weights table lacks the DRG)
    case_type: str | None  # normal, high, low, short_stay, per_diem, ungroupable, ambiguous, invalid
    case_type_name: str  # the case type in Chinese (正常病例, 高倍率 ...)
    settle_status: str  # settled, returned, no_weight, no_cost ...
    rate_fen: int | None  # yuan per unit of weight, in fen
    payment_standard_fen: int | None  # RW x rate x coefficient
    payment_fen: int | None  # the expected payment for this case
    fund_payment_fen: int | None  # payment - the patient's share
    margin_fen: int | None  # payment - cost (结余 > 0, 超支 < 0)
    pack: str = ""
    note: str = ""
    coefficient: float | None = None  # the pack's coefficient applied to this case (hospital level ...)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        """Lines for a person (Chinese), as ``drg explain`` prints them."""
        def yuan(f: int | None) -> str:
            return "—" if f is None else f"{f // 100:,}.{f % 100:02d} 元" if f >= 0 else f"-{yuan(-f)}"

        rw = "—" if self.rw is None else f"{self.rw:g}"
        lines = [f"支付测算（{self.pack}）: DRG {self.drg or '—'} 权重 RW {rw}; 病例类型 {self.case_type_name}",
                 f"  费率 {yuan(self.rate_fen)}/RW; 支付标准 {yuan(self.payment_standard_fen)}; "
                 f"预计支付 {yuan(self.payment_fen)}; 基金支付 {yuan(self.fund_payment_fen)}; "
                 f"结余 {yuan(self.margin_fen)}"]
        if self.note:
            lines.append(f"  说明: {self.note}")
        return "\n".join(lines)


#: why a case is not priced, for people (the settlement's settle_status)
_NOT_SETTLED_ZH = {"returned": "退回修改", "unknown_status": "分组状态不明", "no_cost": "缺总费用",
                   "no_los": "缺住院天数", "no_weight": "权重表中没有该 DRG", "no_patient_share": "缺个人负担"}


def _fen(v) -> int | None:
    """Yuan (as the settlement table writes them, whole fen) -> int fen; None stays None."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return int(round(float(v) * 100))


class CaseQuoter:
    """Quotes single cases under one weights table and payment pack (both checked once, here).

    ``weights``: a table or a file from ``drg weights`` (drg, rw, mean_cost, mean_los, n);
    ``pack``: a ``PaymentPack``, or a pack name or file (``rules/payment``)."""

    def __init__(self, weights: pa.Table | str | os.PathLike, pack: PaymentPack | str | os.PathLike):
        self.weights = weights if isinstance(weights, pa.Table) else read_table(weights)
        full = pack if isinstance(pack, PaymentPack) else load_pack(pack)
        self.pack = full
        self.note = ""
        if full.rate.expected_weight == "data" and full.rate.value is None:
            raise ValueError("单病例测算需要方案给定的费率：该支付方案的 rate.expected_weight = \"data\" 要由全年数据求得")
        if full.rate.renormalize != "none":
            self.note = f"按预结算费率测算（方案的 renormalize = {full.rate.renormalize} 需全年数据，年终清算时费率会调整）"
        # one case alone: the provisional rate, and no special review (a share of a hospital's cases)
        self._pack = replace(full, rate=replace(full.rate, renormalize="none"),
                             special_review=replace(full.special_review, enabled=False))
        Weights(self.weights, self._pack)  # the table has what the pack needs: say so now, not per case

    @staticmethod
    def _row(**values) -> pa.Table:
        cost = values.pop("cost")
        row = {"case_id": "case", "hospital_id": values.pop("hospital_id", None) or "H", "total_cost": cost,
               "patient_share": values.pop("patient_share", 0.0), "discharge": values.pop("discharge", None) or "1"}
        row.update(values)
        types = {"los": pa.int64(), "total_cost": pa.float64(), "patient_share": pa.float64()}
        return pa.table({k: pa.array([v], types.get(k, pa.string() if isinstance(v, str) or v is None else None))
                         for k, v in row.items()})

    def quote(self, result, *, cost: float, los: int | None = None, patient_share: float = 0.0,
              discharge: str | None = None, hospital_id: str | None = None, **columns) -> Quote:
        """The payment of one grouped case. ``result`` is anything with ``status`` and ``drg``
        (``GroupResult``, a dict, a row); ``cost`` the case's total cost in yuan, ``los`` its
        length of stay in days, ``patient_share`` the patient's FFS share (fund = payment -
        share), ``discharge`` the 离院方式 code; other columns the pack reads (hospital_level,
        insurance_type ...) by name."""
        get = result.get if isinstance(result, dict) else lambda k: getattr(result, k)
        status, drg = get("status"), get("drg")
        row = self._row(status=status, drg=drg, cost=cost, los=los, patient_share=patient_share,
                        discharge=discharge, hospital_id=hospital_id, **columns)
        c = settle(row, self._pack, self.weights).cases.to_pylist()[0]
        kind = c["case_type"]
        return Quote(drg=drg, rw=c["rw"], case_type=kind,
                     case_type_name=DRG_CASE_TYPE_NAMES_ZH[kind] if kind in DRG_CASE_TYPE_NAMES_ZH else
                     f"未结算（{_NOT_SETTLED_ZH.get(c['settle_status'], c['settle_status'])}）",
                     settle_status=c["settle_status"], rate_fen=_fen(c["rate"]),
                     payment_standard_fen=_fen(c["payment_standard"]), payment_fen=_fen(c["payment"]),
                     fund_payment_fen=_fen(c["fund_payment"]), margin_fen=_fen(c["margin"]),
                     pack=self.pack.name, note=self.note, coefficient=c["coefficient"])

"""A one-file HTML report of a `drg settle` run: what the pack is, where the money went (cases by
type, hospital margins), what each value-based knob did per hospital, and the monthly
pre-settlement. Non-ASCII hospital names appear in the plots as "#k", their row in the table.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from grouper.payment.drg import DRG_CASE_TYPE_NAMES_ZH, DRG_CASE_TYPES
from grouper.report._html import SETTLEMENT_CSS, cells_html, figures_html, num, page_head, write_page
from grouper.report._plots import png, pyplot_for

__all__ = ["write_settlement_report"]

SETTLE_LIMIT = 300  # rows of the hospital table


def write_settlement_report(result, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write an HTML report of ``result`` (a ``grouper.payment.drg.DrgSettlement``) to ``path`` atomically.
    Needs matplotlib (RuntimeError otherwise); an existing file is refused unless ``overwrite``."""
    plt = pyplot_for("the settlement report")
    rows = sorted(result.hospitals.to_pylist(), key=lambda r: (-(r["payment"] or 0), str(r["hospital"])))
    for i, r in enumerate(rows, 1):
        r["no"], r["label"] = i, _label(r["hospital"], i)
    effects = [c for c in result.hospitals.column_names if c.startswith("effect_")]

    def build() -> str:
        figures = [("医院结余/超支 / Hospital margin (payment - cost)", _margins(plt, rows)),
                   ("病例类型 / Cases by type per hospital", _types(plt, rows)),
                   ("政策旋钮的影响 / Effect of each knob per hospital (yuan)", _effects(plt, rows, effects)),
                   ("月度预结算 / Monthly pre-settlement (fund)", _months(plt, result.months))]
        return _document(result, rows, effects, [(t, f) for t, f in figures if f])
    return write_page(path, overwrite, build)


def _label(name, i: int) -> str:
    s = "" if name is None else str(name)
    return s if s and s.isascii() and len(s) <= 12 else f"#{i}"


def _margins(plt, rows: list[dict], limit: int = 60) -> str | None:
    if not rows:
        return None
    shown = sorted(rows, key=lambda r: r["margin"])
    if len(shown) > limit:  # the largest overspends and surpluses
        shown = shown[:limit // 2] + shown[-limit // 2:]
    fig, ax = plt.subplots(figsize=(10, max(3, 0.18 * len(shown) + 1)))
    m = np.array([r["margin"] for r in shown]) / 1e4
    ax.barh(range(len(shown)), m, color=np.where(m >= 0, "#55a868", "#c44e52"))
    ax.set_yticks(range(len(shown)), [r["label"] for r in shown], fontsize=7)
    ax.axvline(0, color="#444", lw=0.8)
    ax.set_xlabel("margin, 10,000 yuan (green: surplus kept, red: overspend borne)")
    return png(plt, fig)


def _types(plt, rows: list[dict], limit: int = 40) -> str | None:
    shown = rows[:limit]
    if not shown:
        return None
    fig, ax = plt.subplots(figsize=(10, max(3, 0.2 * len(shown) + 1)))
    left = np.zeros(len(shown))
    for t in DRG_CASE_TYPES:
        share = np.array([r[f"n_{t}"] / max(r["cases"], 1) for r in shown])
        if share.any():
            ax.barh(range(len(shown)), share, left=left, label=t)
            left += share
    ax.set_yticks(range(len(shown)), [r["label"] for r in shown], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("share of the hospital's cases" + (f" ({limit} largest hospitals)" if len(rows) > limit else ""))
    ax.set_xlim(0, 1)
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    return png(plt, fig)


def _effects(plt, rows: list[dict], effects: list[str], limit: int = 40) -> str | None:
    used = [e for e in effects if any(r[e] for r in rows)]
    if not used or not rows:
        return None
    shown = sorted(rows, key=lambda r: -sum(abs(r[e]) for e in used))[:limit]
    fig, ax = plt.subplots(figsize=(10, max(3, 0.22 * len(shown) + 1)))
    h = 0.8 / len(used)
    for j, e in enumerate(used):
        ax.barh(np.arange(len(shown)) + j * h, [r[e] / 1e4 for r in shown], height=h, label=e[len("effect_"):])
    ax.set_yticks(np.arange(len(shown)) + 0.4 - h / 2, [r["label"] for r in shown], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="#444", lw=0.8)
    ax.set_xlabel("effect on the hospital's payment, 10,000 yuan (steps of the waterfall)")
    ax.legend(fontsize=7)
    return png(plt, fig)


def _months(plt, months: pa.Table) -> str | None:
    if months.num_rows == 0 or months["month"].null_count == months.num_rows:
        return None
    t = months.group_by("month").aggregate([("fund_payment", "sum"), ("reserve_withheld", "sum")]).sort_by("month")
    labels = t["month"].to_pylist()
    fig, ax = plt.subplots(figsize=(10, 3.2))
    x = np.arange(len(labels))
    ax.bar(x, np.array(t["fund_payment_sum"].to_pylist()) / 1e4, color="#4c72b0", label="pre-settled fund")
    ax.bar(x, np.array(t["reserve_withheld_sum"].to_pylist()) / 1e4, color="#dd8452", label="reserve withheld")
    ax.set_xticks(x, [str(v) for v in labels], rotation=45, fontsize=7)
    ax.set_ylabel("10,000 yuan")
    ax.legend(fontsize=8)
    return png(plt, fig)


def _document(result, rows: list[dict], effects: list[str], figures: list[tuple[str, str]]) -> str:
    s = result.summary
    pk, rate, tot = s["pack"], s["rate"], s["totals"]
    title = f"DRG 结算报告 / DRG settlement: {pk['name']} ({pk['region']}, {pk['year']})"
    banner = ("<p class=warn>示例支付包：数字仅为示例，并非任何统筹区的规定。 / ILLUSTRATIVE pack: the numbers are "
              "examples, not a region's rules.</p>" if pk["illustrative"] else "")
    money = lambda v: num(v, ",.2f")  # noqa: E731
    key = [["口径 / basis", pk["basis"]],
           ["费率（预结算）/ provisional rate", money(rate["provisional_base"]) + " 元/RW"],
           ["费率（清算）/ final rate", money(rate["final_base"]) + f" 元/RW (renormalize: {rate['renormalize']}, "
                                                                    f"scale {rate['scale']:.6f})"],
           ["病例 / cases", f"{s['rows']:,}"], ["医院 / hospitals", f"{s['hospitals']:,}"],
           ["总费用 / total cost", money(tot["cost"])], ["支付 / payment", money(tot["payment"])],
           ["基金支付 / fund", money(tot["fund_payment"])], ["个人负担 / patient share", money(tot["patient_share"])],
           ["结余(+)/超支(-) / margin", money(tot["margin"])],
           ["预结算基金 / pre-settled fund", money(tot["presettled_fund"])],
           ["预留金 / reserve withheld", money(tot["reserve_withheld"])],
           ["清算后基金 / final fund", money(tot["final_fund"])]]
    if rate.get("target") is not None:
        key.append(["目标 / renormalisation target", f"{money(rate['target'])} (residual {money(rate['residual'])})"])
    status = [[k, f"{v:,}"] for k, v in s["settle_status"].items()]
    types = [[t, DRG_CASE_TYPE_NAMES_ZH.get(t, ""), f"{s['case_types'][t]:,}",
              f"{s['case_types'][t] / s['rows']:.2%}" if s["rows"] else "–"] for t in DRG_CASE_TYPES]
    knobs = [[k, money(v)] for k, v in s["knob_effects"].items()]
    counts = [[k, f"{v:,}"] for k, v in s.get("counts", {}).items()]
    head = (["#", "医院 / hospital", "级别 / level", "病例 / cases", "未结算 / not settled", "高倍率 / high",
             "低倍率 / low", "费用 / cost", "支付 / payment", "基金 / fund", "结余/超支 / margin",
             "分担调整 / sharing", "清算 / clearance"] + [e[len("effect_"):] for e in effects])
    table = [[r["no"], r["hospital"], r["level"] or "–", f"{r['cases']:,}", f"{r['not_settled']:,}", f"{r['n_high']:,}",
              f"{r['n_low']:,}", money(r["cost"]), money(r["payment"]), money(r["fund_payment"]),
              (money(r["margin"]), "lo" if r["margin"] >= 0 else "hi"), money(r["sharing_adjustment"]),
              money(r["clearance"])] + [money(r[e]) for e in effects] for r in rows[:SETTLE_LIMIT]]
    more = len(rows) - SETTLE_LIMIT
    imgs = figures_html(figures)
    return f"""{page_head(title, SETTLEMENT_CSS)}{banner}
<h2>关键数字 / Key numbers</h2>{cells_html(["指标 / measure", "值 / value"], key)}
<h2>结算状态 / Settle status</h2>{cells_html(["状态 / status", "病例 / rows"], status)}
<h2>病例类型 / Case types</h2>{cells_html(["type", "类型", "病例 / cases", "占比 / share"], types)}
<h2>政策旋钮合计 / Knob effects, all hospitals</h2>
<p class=note>依次计算：无旋钮 → 转诊加成 → 各质量规则 → 重新标化 → 结余/超支分担。 / Computed as a waterfall: no knobs
→ referral uplift → each quality rule → renormalisation → surplus/overspend sharing.</p>{cells_html(["knob", "元 / yuan"], knobs)}
<h3>计数 / Counts</h3>{cells_html(["", ""], counts)}
{imgs}
<h2>医院 / Hospitals (by payment)</h2>{cells_html(head, table)}
{f"<p class=note>另有 {more} 家未列出 / and {more} more</p>" if more > 0 else ""}
</body></html>
"""

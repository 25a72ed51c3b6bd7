"""A one-file HTML report of the hospital indices (CMI, cost and time consumption indices,
low-risk mortality), and the hospital part the weights report shares with it.

A name that is not ASCII is shown in the plots as its row number "#k" of the hospital table.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from grouper.report._html import cells_html, figures_html, num, page_head, table_html, write_page
from grouper.report._plots import STABLE, UNSTABLE, ascii_label, col_of, place_labels, png, pyplot_for

__all__ = ["write_indices_report"]

UNITS_LIMIT = 300  # rows of the hospital table
BARS_LIMIT = 40  # hospitals in the low-risk mortality chart


def hospital_figures(plt, units: list[dict]) -> list[tuple[str, str | None]]:
    """The three hospital plots: CMI against each consumption index, low-risk mortality."""
    return [
        ("医院 CMI 与费用消耗指数 / Hospital CMI vs cost consumption index",
         _cmi_index(plt, units, "cost_index", "cost consumption index")),
        ("医院 CMI 与时间消耗指数 / Hospital CMI vs time consumption index",
         _cmi_index(plt, units, "time_index", "time consumption index")),
        ("低风险组死亡率 / Low-risk group mortality per hospital", _low_risk(plt, units)),
    ]


def write_indices_report(indices, path: str | os.PathLike, *, title: str = "", overwrite: bool = False) -> Path:
    """Write an HTML report of the hospital indices alone (``hospital_indices`` output, or its
    ``(table, excluded)`` pair): CMI against the cost and time indices, low-risk mortality, and
    the hospital table, so the hospitals that stand out can be seen at a glance."""
    plt = pyplot_for("the indices report")
    excluded = None
    if isinstance(indices, tuple):
        indices, excluded = indices
    units = numbered_units(indices)
    by_department = "department" in indices.column_names

    def build() -> str:
        figures = hospital_figures(plt, units)
        head_title = title or "医院 DRG 评价指标报告 / Hospital evaluation indices"
        imgs = figures_html(figures)
        return "\n".join([page_head(head_title), units_summary(units, excluded, by_department), imgs,
                          units_table(units, by_department), "</body></html>\n"])
    return write_page(path, overwrite, build)


def units_summary(units: list[dict], units_excluded: dict | None, by_department: bool) -> str:
    """Key numbers of the hospital indices and the rows they left out."""
    deaths, cases = _regional_low_risk(units)
    ukey = [["单位数 / units" + ("（医院×科室 / hospital × department）" if by_department else "（医院 / hospitals）"),
             f"{len(units):,}"],
            ["病例 / cases", f"{sum(u['cases'] for u in units):,}"],
            ["地区低风险组死亡率 / regional low-risk mortality",
             f"{deaths / cases:.3%} ({deaths:,}/{cases:,})" if cases else "–"]]
    out = f"<h3>医院指标 / Hospital indices</h3>{table_html(['指标 / measure', '值 / value'], ukey)}"
    if units_excluded:
        out += ("<h3>指标计算剔除的记录 / Rows left out of the indices</h3>"
                + table_html(["原因 / reason", "记录 / rows"], [[k, f"{v:,}"] for k, v in units_excluded.items()]))
    return out


def units_table(units: list[dict], by_department: bool) -> str:
    """The hospital table, in CMI order, with outlying indices shaded."""
    deaths, cases = _regional_low_risk(units)
    regional = deaths / cases if cases else None
    head = (["#", "医院 / hospital"] + (["科室 / department"] if by_department else [])
            + ["病例 / cases", "DRG 组数 / DRGs", "总权重 / total weight", "CMI", "费用消耗指数 / cost index",
               "时间消耗指数 / time index", "低风险 病例/死亡 / low-risk cases/deaths", "低风险死亡率 / low-risk mortality",
               "中低风险 病例/死亡 / mid-low cases/deaths", "中低风险死亡率 / mid-low mortality"])

    def mort(v):
        if v is None:
            return "–"
        return (f"{v:.2%}", "hi" if regional is not None and v > regional else "")

    rows = [[u["no"], u["hospital"]] + ([u.get("department")] if by_department else [])
            + [f"{u['cases']:,}", u["drg_count"], num(u["total_weight"], ",.1f"), num(u["cmi"], ".4f"),
               _index_cell(u["cost_index"]), _index_cell(u["time_index"]),
               f"{u['low_risk_cases']:,}/{u['low_risk_deaths']}", mort(u["low_risk_mortality"]),
               f"{u['midlow_risk_cases']:,}/{u['midlow_risk_deaths']}", num(u["midlow_risk_mortality"], ".2%")]
            for u in units[:UNITS_LIMIT]]
    more = len(units) - UNITS_LIMIT
    return ("<h2>医院指标（按 CMI 排序）/ Hospitals by CMI</h2>"
            "<p class=note>消耗指数 ≥ 1.10 标红、≤ 0.90 标蓝；低风险组死亡率高于地区水平标红。“#”为图中非 ASCII "
            "名称的编号。 / Indices ≥ 1.10 shaded red, ≤ 0.90 blue; low-risk mortality above the regional "
            "rate red. Plots show a name that is not ASCII as its number #.</p>"
            + cells_html(head, rows)
            + (f"<p class=note>另有 {more} 个单位未列出 / and {more} more units</p>" if more > 0 else ""))


def numbered_units(indices: pa.Table) -> list[dict]:
    """Rows of the indices table, numbered in CMI order (the order of the HTML table), each with
    a plot label: its name when ASCII, else "#k"."""
    rows = indices.to_pylist()
    rows.sort(key=lambda r: (-(r["cmi"] if r["cmi"] is not None and r["cmi"] == r["cmi"] else -np.inf),
                             str(r["hospital"]), str(r.get("department"))))
    for k, r in enumerate(rows, 1):
        name = str(r["hospital"]) + (f"/{r['department']}" if r.get("department") is not None else "")
        r["no"], r["name"], r["label"] = k, name, ascii_label(name, f"#{k}")
    return rows


def _index_cell(v, fmt: str = ".3f"):
    if v is None or not np.isfinite(v):
        return "–"
    return (format(v, fmt), "hi" if v >= 1.1 else ("lo" if v <= 0.9 else ""))


def _extremes(x: np.ndarray, y: np.ndarray, k: int) -> list[int]:
    """Indices of the k points farthest from (1, 1), each axis in units of its spread."""
    sx = np.std(x) or 1.0
    sy = np.std(y) or 1.0
    d = ((x - 1) / sx) ** 2 + ((y - 1) / sy) ** 2
    return list(np.argsort(-d)[:k])


def _cmi_index(plt, units: list[dict], key: str, name: str) -> str | None:
    rows = [u for u in units if u["cmi"] is not None and u[key] is not None
            and np.isfinite(u["cmi"]) and np.isfinite(u[key])]
    if not rows:
        return None
    x, y = col_of(rows, "cmi"), col_of(rows, key)
    cases = col_of(rows, "cases")
    size = 15 + 285 * np.sqrt(cases / max(cases.max(), 1))
    label = range(len(rows)) if len(rows) <= 15 else _extremes(x, y, 10)
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.axvline(1, color="grey", lw=1, ls="--")
    ax.axhline(1, color="grey", lw=1, ls="--")
    ax.scatter(x, y, s=size, color=STABLE, alpha=0.55, edgecolors="white", linewidths=0.5)
    pad_x = max(np.ptp(np.append(x, 1)) * 0.12, 0.02)
    pad_y = max(np.ptp(np.append(y, 1)) * 0.12, 0.02)
    ax.set(xlim=(min(x.min(), 1) - pad_x, max(x.max(), 1) + pad_x),
           ylim=(min(y.min(), 1) - pad_y, max(y.max(), 1) + pad_y),
           xlabel="CMI (case mix index)", ylabel=f"{name} (1 = regional level for the same DRGs)")
    corner = {"transform": ax.transAxes, "fontsize": 8, "color": "#777777"}
    what = "cost" if key == "cost_index" else "stay"
    ax.text(0.01, 0.99, f"simpler cases, higher {what}", va="top", ha="left", **corner)
    ax.text(0.99, 0.99, f"complex cases, higher {what}", va="top", ha="right", **corner)
    ax.text(0.01, 0.01, f"simpler cases, lower {what}", va="bottom", ha="left", **corner)
    ax.text(0.99, 0.01, f"complex cases, lower {what}", va="bottom", ha="right", **corner)
    ax.set_title(f"{len(rows)} units; point area ~ cases (max {int(cases.max()):,})"
                 + ("" if len(rows) <= 15 else "; labelled: the 10 farthest from (1, 1)"), fontsize=9)
    place_labels(fig, ax, [(x[i], y[i], rows[i]["label"]) for i in label])
    return png(plt, fig)


def _regional_low_risk(units: list[dict]) -> tuple[int, int]:
    return (sum(u["low_risk_deaths"] or 0 for u in units), sum(u["low_risk_cases"] or 0 for u in units))


def _low_risk(plt, units: list[dict]) -> str | None:
    rows = [u for u in units if (u.get("low_risk_cases") or 0) > 0]
    if not rows:
        return None
    deaths, cases = _regional_low_risk(rows)
    regional = deaths / cases
    if len(rows) > BARS_LIMIT:  # the units with most deaths above the regional rate, not 1 death in 6 cases
        excess = lambda u: u["low_risk_deaths"] - regional * u["low_risk_cases"]
        rows = sorted([u for u in rows if excess(u) > 0] or rows, key=lambda u: (-excess(u), u["no"]))
    shown = sorted(rows[:BARS_LIMIT], key=lambda u: (u["low_risk_mortality"], u["low_risk_deaths"], -u["no"]))
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(shown) + 1.6))
    colors = [UNSTABLE if u["low_risk_mortality"] > regional else STABLE for u in shown]
    ax.barh([u["label"] for u in shown], [100 * u["low_risk_mortality"] for u in shown], color=colors)
    for yy, u in enumerate(shown):
        ax.text(100 * u["low_risk_mortality"], yy, f" {u['low_risk_deaths']}/{u['low_risk_cases']:,}",
                va="center", fontsize=7)
    ax.axvline(100 * regional, color="black", lw=1, ls="--",
               label=f"regional {100 * regional:.2f}% ({deaths}/{cases:,})")
    ax.set_xlabel("deaths per 100 cases in low-risk DRGs (%)")
    ax.margins(x=0.15)
    ax.tick_params(axis="y", labelsize=8)
    total = sum((u.get("low_risk_cases") or 0) > 0 for u in units)
    more = (f"\n{len(shown)} of {total} units shown: those with most deaths above the regional rate"
            if total > len(shown) else "")
    ax.set_title(f"bar labels: deaths / low-risk cases; orange: above the regional rate{more}", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    return png(plt, fig)

"""A one-file HTML report of relative weights: which groups are heavy, which are unstable or
thin, how well the grouping separates costs (RIV) and, with the hospital indices, which
hospitals stand out (the hospital part is the indices report's).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from grouper.analytics.weights import WEIGHT_FLAG_NAMES_ZH
from grouper.report._html import cells_html, figures_html, num, page_head, table_html, write_page
from grouper.report._plots import (STABLE, THIN, UNSTABLE, ascii_label, col_of, finite, place_labels, plain_log,
                                   png, pyplot_for, wide)
from grouper.report.indices import hospital_figures, numbered_units, units_summary, units_table

__all__ = ["write_weights_report"]

RIV_GUIDE = 0.70  # CHS-DRG: a grouping with RIV >= 0.70 separates costs well
WEIGHTS_TOP = 20  # rows of the highest-RW table
FLAGGED_LIMIT = 100  # rows of the unstable / thin groups table
# Domain labels: the flags analytics.weights sets on a group, in Chinese; belongs beside that code.


def write_weights_report(result, path: str | os.PathLike, *, indices=None, title: str = "",
                         trim: str | None = None, overwrite: bool = False) -> Path:
    """Write an HTML report of ``result`` (a ``weights.WeightResult``) to ``path`` atomically.

    ``indices``: the table of ``indices.hospital_indices`` (or the ``(table, excluded)`` pair it
    returns), for the hospital plots and table; ``trim``: the trimming rule the weights were
    computed with (``WeightOptions.trim``), shown in words. An existing file is refused unless
    ``overwrite``. Needs matplotlib (RuntimeError otherwise)."""
    plt = pyplot_for("the weights report")
    indices_excluded = None
    if isinstance(indices, tuple):  # hospital_indices(...) passed as it comes
        indices, indices_excluded = indices
    groups = result.table.to_pylist()
    units = numbered_units(indices) if indices is not None else None

    def build() -> str:  # run once the existing file is refused, so before any plotting
        figures = [
            ("相对权重分布 / Distribution of relative weights (RW)", _rw_hist(plt, groups)),
            ("组内变异系数 / Within-group CV vs number of cases", _cv_scatter(plt, groups)),
            ("相对权重与平均住院日 / RW vs mean length of stay", _rw_los(plt, groups)),
        ]
        if units:
            figures += hospital_figures(plt, units)
        return _document(result, groups, units, indices_excluded, [(t, f) for t, f in figures if f],
                         title=title, trim=trim, by_department=indices is not None
                         and "department" in indices.column_names)
    return write_page(path, overwrite, build)


def _kind(r: dict) -> str:
    flags = (r["flags"] or "").split(";")
    return "thin" if "thin" in flags else ("stable" if r["stable"] else "unstable")


def _rw_hist(plt, groups: list[dict]) -> str | None:
    """Stacked by stability, so one sees where the unreliable weights sit."""
    rw = col_of(groups, "rw")
    ok = finite(rw) & (rw > 0)
    if not ok.any():
        return None
    log = wide(rw[ok])
    lo, hi = rw[ok].min(), rw[ok].max()
    bins = np.geomspace(lo, hi * 1.0001, 41) if log else np.linspace(lo, hi * 1.0001, 41)
    kinds = np.array([_kind(r) for r in groups])
    fig, ax = plt.subplots(figsize=(8, 4))
    parts = [(k, c) for k, c in (("stable", STABLE), ("unstable", UNSTABLE), ("thin", THIN))
             if (ok & (kinds == k)).any()]
    ax.hist([rw[ok & (kinds == k)] for k, _ in parts], bins=bins, stacked=True, color=[c for _, c in parts],
            label=[f"{k} ({int((ok & (kinds == k)).sum())} DRGs)" for k, _ in parts])
    ax.axvline(1, color="black", lw=1, ls="--", label="RW = 1 (mean case)")
    med = float(np.median(rw[ok]))
    ax.axvline(med, color="grey", lw=1, ls=":", label=f"median {med:.2f}")
    if log:
        ax.set_xscale("log")
        plain_log(ax.xaxis, lo, hi)
    ax.set(xlabel="relative weight (RW)" + (", log scale" if log else ""), ylabel="DRGs",
           title=f"{int(ok.sum())} DRGs, RW {lo:.3g} to {hi:.3g}")
    ax.legend(fontsize=8)
    return png(plt, fig)


def _scatter_by_kind(ax, x, y, ok, kinds) -> None:
    """One point series per group kind (stable, unstable, thin), with its count in the legend."""
    for k, c, m in (("stable", STABLE, "o"), ("unstable", UNSTABLE, "o"), ("thin", THIN, "^")):
        sel = ok & (kinds == k)
        if sel.any():
            ax.scatter(x[sel], y[sel], s=16, color=c, marker=m, alpha=0.8, label=f"{k} ({int(sel.sum())})",
                       edgecolors="none")


def _cv_scatter(plt, groups: list[dict], label: int = 8) -> str | None:
    n, cv = col_of(groups, "n"), col_of(groups, "cv")
    ok = finite(n, cv) & (n > 0)
    if not ok.any():
        return None
    kinds = np.array([_kind(r) for r in groups])
    fig, ax = plt.subplots(figsize=(8, 5))
    _scatter_by_kind(ax, n, cv, ok, kinds)
    ax.axhline(1, color="#c44e52", lw=1, ls="--", label="CV = 1")
    ax.set_xscale("log")
    # the highest CVs among the groups large enough to matter (thin ones are unstable anyway)
    cand = np.flatnonzero(ok & (kinds != "thin"))
    ax.set(xlabel="cases kept after trimming (log scale)", ylabel="coefficient of variation (CV) of cost",
           ylim=(0, max(1.1, float(np.nanmax(cv[ok])) * 1.08)))
    plain_log(ax.xaxis, n[ok].min(), n[ok].max() * 1.5)
    ax.legend(fontsize=8, loc="upper right")
    place_labels(fig, ax, [(n[i], cv[i], ascii_label(str(groups[i]["drg"]), "?"))
                           for i in sorted(cand, key=lambda i: -cv[i])[:label]])
    return png(plt, fig)


def _rw_los(plt, groups: list[dict]) -> str | None:
    """Weight against stay, with the log-log trend: far above it are expensive short stays
    (procedures, devices), far below cheap long ones."""
    rw, los = col_of(groups, "rw"), col_of(groups, "mean_los")
    ok = finite(rw, los) & (rw > 0) & (los > 0)
    if not ok.any():
        return None
    kinds = np.array([_kind(r) for r in groups])
    fig, ax = plt.subplots(figsize=(8, 5.5))
    _scatter_by_kind(ax, los, rw, ok, kinds)
    fit = ok & (kinds != "thin")
    labels = []
    if fit.sum() >= 3 and np.ptp(np.log(los[fit])) > 0:
        b, a = np.polyfit(np.log(los[fit]), np.log(rw[fit]), 1)
        xs = np.geomspace(los[fit].min(), los[fit].max(), 50)
        ax.plot(xs, np.exp(a) * xs ** b, color="black", lw=1, ls=":", label=f"trend (RW ~ LOS^{b:.2f})")
        resid = np.log(rw) - (a + b * np.log(np.where(ok, los, 1)))
        idx = np.flatnonzero(fit)
        picks = list(idx[np.argsort(-resid[idx])][:5]) + list(idx[np.argsort(resid[idx])][:3])
        labels = [(los[i], rw[i], ascii_label(str(groups[i]["drg"]), "?")) for i in dict.fromkeys(picks)]
    ax.axhline(1, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log(ax.xaxis, los[ok].min() / 1.1, los[ok].max() * 1.1)
    plain_log(ax.yaxis, rw[ok].min() / 1.1, rw[ok].max() * 1.1)
    ax.set(xlabel="mean length of stay, days (log scale)", ylabel="relative weight (RW, log scale)",
           title="labelled: farthest above and below the trend (non-thin groups)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8, loc="upper left")
    place_labels(fig, ax, labels, fontsize=7)
    return png(plt, fig)


def _flags_text(flags: str) -> str:
    parts = [f for f in (flags or "").split(";") if f]
    return "; ".join(f"{f} {WEIGHT_FLAG_NAMES_ZH.get(f, '')}".strip() for f in parts)


def _trim_text(trim: str | None) -> str:
    if not trim:
        return "未说明 / not given"
    from grouper.analytics import WeightOptions
    try:
        kind, p = WeightOptions(trim=trim).trim_rule()
    except ValueError:
        return trim
    g = lambda v: f"{v:g}"
    return {
        "none": "none：不截尾 / no trimming",
        "iqr": f"{trim}：每组 Q1 − {g(p[0])}×IQR 至 Q3 + {g(p[0])}×IQR 之外的病例剔除 / "
               f"per DRG, Tukey fences at {g(p[0])} IQR",
        "sdlog": f"{trim}：每组 ln(费用) 均值 ± {g(p[0])} 倍标准差之外剔除 / per DRG, mean ± {g(p[0])} SD of ln(cost)",
        "pct": f"{trim}：每组 P{g(p[0])} 至 P{g(p[-1])} 之外剔除 / per DRG, outside percentiles "
               f"{g(p[0])} to {g(p[-1])}",
    }[kind]


def _group_row(r: dict) -> list:
    return [r["drg"], r["adrg"], f"{r['n']:,}", f"{r['n_trimmed']:,}", num(r["mean_cost"], ",.2f"),
            num(r["rw"], ".4f"), (num(r["cv"], ".3f"), "hi" if (r["cv"] or 0) > 1 else ""),
            num(r["mean_los"], ".1f"), _flags_text(r["flags"])]


GROUP_HEAD = ["DRG", "ADRG", "病例 / cases", "截尾 / trimmed", "平均费用 / mean cost", "RW", "CV",
              "平均住院日 / mean LOS", "标记 / flags"]


def _document(result, groups: list[dict], units: list[dict] | None, units_excluded: dict | None,
                figures: list[tuple[str, str]], *, title: str, trim: str | None, by_department: bool) -> str:
    kept = sum(r["n"] for r in groups)
    trimmed = sum(r["n_trimmed"] for r in groups)
    kinds = [_kind(r) for r in groups]
    flag_counts = {f: sum(f in (r["flags"] or "").split(";") for r in groups) for f in WEIGHT_FLAG_NAMES_ZH}
    riv = result.riv
    if riv is None or not np.isfinite(riv):
        riv_text, riv_cls = "–", ""
    else:
        ok = riv >= RIV_GUIDE
        riv_text = (f"{riv:.4f}（{'达到' if ok else '低于'} 0.70 参考值 / "
                    f"{'meets' if ok else 'below'} the 0.70 guide）")
        riv_cls = "ok" if ok else "hi"
    key = [["DRG 组数 / groups", f"{len(groups):,}"],
           ["稳定组 / stable groups", f"{kinds.count('stable'):,}"],
           ["不稳定组 / unstable groups (not thin)", f"{kinds.count('unstable'):,}"],
           ["病例过少组 / thin groups", f"{kinds.count('thin'):,}"
            + (f"（其中 {flag_counts['pooled_adrg']} 个取 ADRG 合并权重 / pooled at ADRG）"
               if flag_counts["pooled_adrg"] else "")],
           ["CV > 1 的组 / groups with CV > 1", f"{sum((r['cv'] or 0) > 1 for r in groups):,}"],
           ["入选病例 / cases kept", f"{kept:,}"],
           ["截尾剔除 / cases trimmed", f"{trimmed:,}" + (f" ({trimmed / (kept + trimmed):.2%})" if kept + trimmed else "")],
           ["截尾规则 / trimming rule", _trim_text(trim)],
           ["总体例均费用 / overall mean cost per case", num(result.mean_cost, ",.2f")],
           ["RIV（变异减少系数 / reduction in variance）", (riv_text, riv_cls)]]
    excluded = [[f"{reason}", f"{count:,}"] for reason, count in result.excluded.items()]
    imgs = figures_html(figures)
    top = sorted(groups, key=lambda r: (-(r["rw"] or 0), r["drg"]))[:WEIGHTS_TOP]
    flagged = sorted((r for r in groups if r["flags"]), key=lambda r: (-r["n"], -(r["cv"] or 0), r["drg"]))
    more = len(flagged) - FLAGGED_LIMIT
    flagged_more = f"<p class=note>另有 {more} 组未列出 / and {more} more groups</p>" if more > 0 else ""
    head_title = title or "DRG 相对权重与医院指标报告"
    parts = [f"""{page_head(head_title)}
<p class=note>相对权重与分组质量{"、医院评价指标" if units else ""} / Relative weights and grouping quality
{"and hospital evaluation indices" if units else ""}</p>
<h2>关键数字 / Key numbers</h2>{cells_html(["指标 / measure", "值 / value"], key)}
<h3>计算前剔除的记录 / Rows left out before trimming</h3>{table_html(["原因 / reason", "记录 / rows"], excluded)}"""]
    if units is not None:
        parts.append(units_summary(units, units_excluded, by_department))
    parts.append(imgs)
    parts.append(f"<h2>相对权重最高的 {len(top)} 组 / The {len(top)} highest-weight groups</h2>"
                 + cells_html(GROUP_HEAD, [_group_row(r) for r in top]))
    parts.append(f"<h2>不稳定或病例过少的组 / Unstable and thin groups ({len(flagged)})</h2>"
                 "<p class=note>按病例数从多到少：病例多而不稳定的组最值得关注。CV &gt; 1 标为红色。 / "
                 "Most cases first: a large unstable group matters most. CV &gt; 1 shaded.</p>"
                 + cells_html(GROUP_HEAD, [_group_row(r) for r in flagged[:FLAGGED_LIMIT]]) + flagged_more)
    if units is not None:
        parts.append(units_table(units, by_department))
    parts.append("</body></html>\n")
    return "\n".join(parts)

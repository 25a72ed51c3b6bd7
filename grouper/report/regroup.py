"""A one-file HTML report of a regrouping run (``regroup``'s summary and migration matrix).

Meant for the person who has to explain a scheme change: who moves where (MDC flow heatmap,
largest DRG-to-DRG moves), how many fall out of grouping and why (status classes, principal
diagnoses), and, with costs, what happens to weights and each hospital's CMI. Everything is
embedded (PNG as base64), so the file can be mailed or archived alone. Plot labels stay ASCII
(default fonts may lack Chinese glyphs); Chinese appears only in the HTML text.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc
from grouper.engine import STATUS_LABELS, STATUS_NAMES_ZH
from grouper.analytics.regroup import SPLIT_READS_ZH
from grouper.report._html import CODES_CSS, esc, figures_html, page_head, table_html, write_page
from grouper.report._plots import png, pyplot_for

__all__ = ["write_regroup_report"]

LIST_LIMIT = 80  # codes shown of the new / vanished groups
# Domain labels: what a split reads (the keys of the summary's moves_into_splits, set by
# analytics.regroup), in Chinese; belongs beside that code.


def write_regroup_report(summary: dict, matrix: pa.Table, path: str | os.PathLike, *,
                         overwrite: bool = False) -> Path:
    """Write the report to ``path`` atomically (an existing file is refused unless ``overwrite``)."""
    plt = pyplot_for("the regrouping report")

    def build() -> str:  # run once the existing file is refused, so before any plotting
        figures = [
            ("MDC 流向 / MDC flow (from-MDC rows × to-MDC columns)", _mdc_heatmap(plt, matrix)),
            ("最大的 DRG 迁移 / Largest DRG-to-DRG moves", _drg_moves(plt, matrix)),
            ("分组状态 / Status classes under each version", _status_bars(plt, summary)),
            ("医院 CMI 前后对比 / Hospital CMI before vs after", _cmi_scatter(plt, summary)),
            ("相对权重分布 / Distribution of relative weights (RW) per DRG", _rw_hist(plt, summary)),
        ]
        return _document(summary, [(t, f) for t, f in figures if f])
    return write_page(path, overwrite, build)


def _level(matrix: pa.Table, level: str) -> list[dict]:
    return matrix.filter(pc.equal(matrix["level"], level)).to_pylist()


def _mdc_heatmap(plt, matrix: pa.Table) -> str | None:
    """Counts of from-MDC x to-MDC on a log scale: the diagonal is who stays, the rest who moves."""
    from matplotlib.colors import LogNorm
    rows = _level(matrix, "mdc")
    if not rows:
        return None
    short = lambda m: "none" if m == "0000" else m.removeprefix("MDC")  # noqa: E731
    a = sorted({r["from"] for r in rows})
    b = sorted({r["to"] for r in rows})
    grid = np.zeros((len(a), len(b)))
    for r in rows:
        grid[a.index(r["from"]), b.index(r["to"])] = r["cases"]
    fig, ax = plt.subplots(figsize=(max(6, 0.36 * len(b) + 2), max(5, 0.34 * len(a) + 1.5)))
    im = ax.imshow(np.ma.masked_equal(grid, 0), cmap="viridis", norm=LogNorm(vmin=1, vmax=max(grid.max(), 2)))
    ax.set_xticks(range(len(b)), [short(m) for m in b], fontsize=8)
    ax.set_yticks(range(len(a)), [short(m) for m in a], fontsize=8)
    ax.set_xlabel("MDC after (to)")
    ax.set_ylabel("MDC before (from)")
    for i, j in zip(*np.nonzero(grid >= max(grid.sum() / 1000, 1))):  # cells with >= 0.1% of the cases
        r, g, b_, _ = im.cmap(im.norm(grid[i, j]))
        ax.text(j, i, f"{int(grid[i, j]):,}", ha="center", va="center", fontsize=6.5,
                color="black" if 0.3 * r + 0.6 * g + 0.1 * b_ > 0.5 else "white")
    fig.colorbar(im, ax=ax, shrink=0.8, label="cases (log scale)")
    return png(plt, fig)


def _drg_moves(plt, matrix: pa.Table, n: int = 20) -> str | None:
    moves = [r for r in _level(matrix, "drg") if r["from"] != r["to"]]
    moves = sorted(moves, key=lambda r: -r["cases"])[:n][::-1]  # largest on top
    if not moves:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(moves) + 1.2))
    ax.barh([f"{r['from']} → {r['to']}" for r in moves], [r["cases"] for r in moves], color="#4c72b0")
    for y, r in enumerate(moves):
        ax.text(r["cases"], y, f" {r['cases']:,}", va="center", fontsize=8)
    ax.set_xlabel("cases")
    ax.margins(x=0.12)
    ax.tick_params(axis="y", labelsize=8)
    return png(plt, fig)


def _statuses(summary: dict) -> list[str]:
    seen = set(summary["from"].get("status_counts", {})) | set(summary["to"].get("status_counts", {}))
    return [s for s in STATUS_LABELS if s in seen] + sorted(seen - set(STATUS_LABELS))


def _status_bars(plt, summary: dict) -> str | None:
    """Log scale: grouped is ~95% and the classes that matter would vanish on a linear one."""
    labels = _statuses(summary)
    if not labels:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for k, side in enumerate(("from", "to")):
        counts = [summary[side]["status_counts"].get(s, 0) for s in labels]
        xs = [i + (k - 0.5) * 0.38 for i in range(len(labels))]
        ax.bar(xs, counts, width=0.38, label=summary[side]["ruleset"], color=("#8c8c8c", "#dd8452")[k])
        for x, c in zip(xs, counts):
            if c:
                ax.text(x, c, f"{c / summary['rows']:.1%}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yscale("log")
    ax.set_ylabel("cases (log scale)")
    ax.legend()
    return png(plt, fig)


def _cmi_pairs(summary: dict) -> list[tuple[str, float, float]]:
    return [(h, v["from"], v["to"]) for h, v in summary.get("hospital_cmi", {}).items()
            if v.get("from") is not None and v.get("to") is not None]


def _cmi_scatter(plt, summary: dict, label: int = 10) -> str | None:
    pairs = _cmi_pairs(summary)
    if not pairs:
        return None
    fig, ax = plt.subplots(figsize=(7, 6))
    xs, ys = [p[1] for p in pairs], [p[2] for p in pairs]
    lo, hi = min(xs + ys) * 0.95, max(xs + ys) * 1.05
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--", label="unchanged")
    ax.scatter(xs, ys, s=18, color="#4c72b0")
    movers = sorted(pairs, key=lambda p: -abs(p[2] - p[1]))[:label]
    span, last = hi - lo, float("-inf")
    for h, x, y in sorted(movers, key=lambda p: p[2]):  # labels lower right, in the empty half, stacked
        last = max(y - 0.05 * span, last + 0.035 * span)
        ax.annotate(f"{h} ({y - x:+.3f})", (x, y), xytext=(x + 0.08 * span, last), va="center", fontsize=7,
                    arrowprops=dict(arrowstyle="-", lw=0.5, color="grey"))
    ax.set(xlim=(lo, hi + 0.15 * span), ylim=(lo, hi), xlabel=f"CMI under {summary['from']['ruleset']}",
           ylabel=f"CMI under {summary['to']['ruleset']}")
    ax.legend(loc="upper left")
    return png(plt, fig)


def _rw_hist(plt, summary: dict) -> str | None:
    w = summary.get("weights") or {}
    values = {side: list((w.get(side) or {}).values()) for side in ("from", "to")}
    if not any(values.values()):
        return None
    fig, ax = plt.subplots(figsize=(7, 3.8))
    bins = np.histogram_bin_edges(values["from"] + values["to"], bins=40)
    for side, color in (("from", "#8c8c8c"), ("to", "#dd8452")):
        ax.hist(values[side], bins=bins, histtype="stepfilled", alpha=0.5, color=color,
                label=f"{summary[side]['ruleset']} ({len(values[side])} DRGs)")
    ax.set(xlabel="relative weight (RW)", ylabel="DRGs")
    ax.legend()
    return png(plt, fig)


def _codes(codes: list[str]) -> str:
    """A truncated list: a scheme change can add or drop hundreds of groups."""
    if not codes:
        return "<p class=note>无 / none</p>"
    rest = len(codes) - LIST_LIMIT
    more = f" … 另有 {rest} 个 / and {rest} more" if rest > 0 else ""
    return f"<p class=codes>{esc(' '.join(codes[:LIST_LIMIT]) + more)}</p>"


def _document(s: dict, figures: list[tuple[str, str]]) -> str:
    f, t, rows = s["from"], s["to"], s["rows"]
    statuses = _statuses(s)
    key = [["MDC 变化 / MDC changed", f"{s['share_mdc_changed']:.2%}"],
           ["ADRG 变化 / ADRG changed", f"{s['share_adrg_changed']:.2%}"],
           ["DRG 变化 / DRG changed", f"{s['share_drg_changed']:.2%}"],
           ["新增组 / new groups", len(s["new_groups"])], ["消失组 / vanished groups", len(s["vanished_groups"])]]
    status = [[f"{st} {STATUS_NAMES_ZH.get(st, '')}"] + [
        f"{side['status_counts'].get(st, 0):,} ({side['status_rates'].get(st, 0):.2%})" for side in (f, t)]
        for st in statuses]
    pdx = "".join(f"<h3>变为 {esc(st)} {esc(STATUS_NAMES_ZH.get(st, ''))} 的病例的主要诊断</h3>"
                  + table_html(["主要诊断 / principal dx", "病例 / cases"], list(m.items()))
                  for st, m in s.get("top_principal_dx_of_cases_leaving_grouped", {}).items())
    cmi = sorted(_cmi_pairs(s), key=lambda p: -abs(p[2] - p[1]))[:10]
    imgs = figures_html(figures)
    seconds = f"{s['seconds']:.2f} s" + (f" ({s['rows_per_second']:,.0f} 例/秒)" if s.get("rows_per_second") else "")
    return f"""{page_head(f"DRG 版本迁移报告 {f['ruleset']} → {t['ruleset']}", CODES_CSS,
                          heading="DRG 分组版本迁移报告 / Regrouping report")}
{table_html(["", "原版本 / from", "新版本 / to"], [
        ["分组方案 / ruleset", f["ruleset"], t["ruleset"]], ["版本 / version", f["version"], t["version"]],
        ["指纹 / fingerprint", f["fingerprint"], t["fingerprint"]]])}
<p>病例数 / cases: <b>{rows:,}</b> · 用时 / run time: {esc(seconds)}</p>
<h2>关键数字 / Key numbers</h2>{table_html(["指标 / measure", "值 / value"], key)}
<h2>分组状态 / Status classes</h2>{table_html(["状态 / status", f["ruleset"], t["ruleset"]], status)}
<h3>状态迁移 / Status moves</h3>{table_html(["from", "to", "病例 / cases"],
                                          [[m["from"], m["to"], f"{m['cases']:,}"] for m in s["status_moves"]])}
{imgs}
<h2>未能入组的病例 / Cases that become ambiguous or ungroupable</h2>{pdx or "<p class=note>无 / none</p>"}
<h2>最大的迁移 / Largest moves</h2>{table_html(["from", "to", "病例 / cases", "占比 / share"], [
        [m["from"], m["to"], f"{m['cases']:,}", f"{m['cases'] / rows:.2%}"] for m in s["largest_drg_moves"]])}
{"<h2>CMI 变化最大的医院 / Hospitals whose CMI moves most</h2>" + table_html(
        ["医院 / hospital", "from", "to", "变化 / change"],
        [[h, f"{x:.4f}", f"{y:.4f}", f"{y - x:+.4f}"] for h, x, y in cmi]) if cmi else ""}
<h2>新增组 / New groups ({len(s["new_groups"])})</h2>{_codes(s["new_groups"])}
<h2>消失组 / Vanished groups ({len(s["vanished_groups"])})</h2>{_codes(s["vanished_groups"])}
{_version_section(s)}
</body></html>
"""


def _version_section(s: dict) -> str:
    """What the new version itself adds: groups defined in one version only, cases moving into
    groups split by age, procedure lists (robot surgery), ...; not-grouped cases per MDC."""
    if "moves_into_splits" not in s:
        return ""
    f, t, rows = s["from"]["ruleset"], s["to"]["ruleset"], s["rows"]
    splits = table_html(["拆分条件 / split reads", "迁入病例 / cases moving in", "占比 / share", "主要 DRG / top DRGs"], [
        [f"{k} {SPLIT_READS_ZH.get(k, '')}".strip(), f"{v['cases']:,}", f"{v['share']:.2%}",
         ", ".join(f"{d['drg']} ({d['cases']:,})" for d in v["top"][:8])] for k, v in s["moves_into_splits"].items()])
    ng = s["not_grouped_by_mdc"]
    mdcs = sorted({m for side in ng.values() for per in side.values() for m in per})
    cols = [(side, st) for st in ("ungroupable", "ambiguous") for side in ("from", "to")]
    by_mdc = table_html(["MDC"] + [f"{STATUS_NAMES_ZH.get(st, st)} {f if side == 'from' else t}" for side, st in cols],
                        [[m if m != "0000" else "0000 (无 MDC / no MDC)"]
                         + [f"{ng.get(side, {}).get(st, {}).get(m, 0):,}" for side, st in cols] for m in mdcs])
    return f"""<h2>版本变化 / What changes with the version</h2>
<p>仅 {esc(t)} 有的 DRG / DRGs only in {esc(t)}: <b>{len(s["drgs_only_in_to"])}</b>,
迁入病例 / cases moving into them: <b>{s["cases_into_drgs_only_in_to"]:,}</b>
({s["cases_into_drgs_only_in_to"] / rows if rows else 0:.2%});
仅 {esc(f)} 有的 DRG / DRGs only in {esc(f)}: <b>{len(s["drgs_only_in_from"])}</b></p>
<h3>迁入按拆分条件 / Cases moving into DRGs by what their split reads</h3>{splits}
<h3>未入组病例按 MDC / Cases not grouped, by MDC (MDC 内失败 such as X000 keep their MDC)</h3>{by_mdc}
<h3>仅 {esc(t)} 有的 DRG / DRGs only in {esc(t)}</h3>{_codes(s["drgs_only_in_to"])}
<h3>仅 {esc(f)} 有的 DRG / DRGs only in {esc(f)}</h3>{_codes(s["drgs_only_in_from"])}"""

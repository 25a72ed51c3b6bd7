"""A one-file HTML report of a regrouping run (``regroup``'s summary and migration matrix).

Meant for the person who has to explain a scheme change: who moves where (MDC flow heatmap,
largest DRG-to-DRG moves), how many fall out of grouping and why (status classes, principal
diagnoses), and, with costs, what happens to weights and each hospital's CMI. Everything is
embedded (PNG as base64), so the file can be mailed or archived alone. Plot labels stay ASCII
(default fonts may lack Chinese glyphs); Chinese appears only in the HTML text.
matplotlib is imported lazily: the grouper itself does not need it.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper.engine import STATUS_LABELS, STATUS_NAMES_ZH
from grouper.io import atomic

__all__ = ["write_regroup_report"]

LIST_LIMIT = 80  # codes shown of the new / vanished groups
esc = html.escape


def write_regroup_report(summary: dict, matrix: pa.Table, path: str | os.PathLike, *,
                         overwrite: bool = False) -> Path:
    """Write the report to ``path`` atomically (an existing file is refused unless ``overwrite``)."""
    plt = _pyplot()
    path = Path(path)
    with atomic(path, overwrite) as tmp:  # refuses before any plotting
        figures = [
            ("MDC 流向 / MDC flow (from-MDC rows × to-MDC columns)", _mdc_heatmap(plt, matrix)),
            ("最大的 DRG 迁移 / Largest DRG-to-DRG moves", _drg_moves(plt, matrix)),
            ("分组状态 / Status classes under each version", _status_bars(plt, summary)),
            ("医院 CMI 前后对比 / Hospital CMI before vs after", _cmi_scatter(plt, summary)),
            ("相对权重分布 / Distribution of relative weights (RW) per DRG", _rw_hist(plt, summary)),
        ]
        Path(tmp).write_text(_document(summary, [(t, f) for t, f in figures if f]), encoding="utf-8")
    return path


def _pyplot_for(what: str):
    """matplotlib's pyplot, or a RuntimeError saying that ``what`` needs the report extra."""
    try:
        return _pyplot()
    except RuntimeError:
        raise RuntimeError(f"{what} needs matplotlib: pip install 'drg-grouper[report]'") from None


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("the regrouping report needs matplotlib: pip install 'drg-grouper[report]'") from None
    matplotlib.use("Agg")  # no display needed, and none is touched
    import matplotlib.pyplot as plt
    return plt


def _png(plt, fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


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
    return _png(plt, fig)


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
    return _png(plt, fig)


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
    return _png(plt, fig)


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
    return _png(plt, fig)


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
    return _png(plt, fig)


def _table(head: list[str], rows: list[list]) -> str:
    th = "".join(f"<th>{esc(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>" if rows else "<p class=note>无 / none</p>"


def _codes(codes: list[str]) -> str:
    """A truncated list: a scheme change can add or drop hundreds of groups."""
    if not codes:
        return "<p class=note>无 / none</p>"
    rest = len(codes) - LIST_LIMIT
    more = f" … 另有 {rest} 个 / and {rest} more" if rest > 0 else ""
    return f"<p class=codes>{esc(' '.join(codes[:LIST_LIMIT]) + more)}</p>"


# One page frame for every report: the base style plus each report's own classes.
BASE_CSS = """body{font-family:"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;max-width:1100px;margin:2em auto;
color:#222} table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:3px 9px;
text-align:left} th{background:#f2f2f2} img{max-width:100%;display:block} .note{color:#888}"""
SHADES_CSS = "td.hi{background:#fbe3d6} td.lo{background:#dcebf7} td.ok{background:#e2f0d9}"
CODES_CSS = ".codes{font-family:monospace;line-height:1.6} code{font-size:.85em}"
SETTLEMENT_CSS = ".warn{background:#fff3cd;padding:.5em} td.hi{background:#fbe3d6} td.lo{background:#e2f0d9}"


def _head(title: str, css: str = SHADES_CSS, *, heading: str | None = None) -> str:
    """The page up to its <h1> (``heading``, by default the title)."""
    return (f'<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">\n<title>{esc(title)}</title>\n'
            f"<style>{BASE_CSS}\n{css}</style></head><body>\n<h1>{esc(heading or title)}</h1>")


def _figures_html(figures) -> str:
    """Each (title, PNG as base64) as a heading and an embedded image; missing plots left out."""
    return "".join(f"<h2>{esc(t)}</h2><img src=\"data:image/png;base64,{png}\" alt=\"{esc(t)}\">"
                   for t, png in figures if png)


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
                  + _table(["主要诊断 / principal dx", "病例 / cases"], list(m.items()))
                  for st, m in s.get("top_principal_dx_of_cases_leaving_grouped", {}).items())
    cmi = sorted(_cmi_pairs(s), key=lambda p: -abs(p[2] - p[1]))[:10]
    imgs = _figures_html(figures)
    seconds = f"{s['seconds']:.2f} s" + (f" ({s['rows_per_second']:,.0f} 例/秒)" if s.get("rows_per_second") else "")
    return f"""{_head(f"DRG 版本迁移报告 {f['ruleset']} → {t['ruleset']}", CODES_CSS,
                      heading="DRG 分组版本迁移报告 / Regrouping report")}
{_table(["", "原版本 / from", "新版本 / to"], [
        ["分组方案 / ruleset", f["ruleset"], t["ruleset"]], ["版本 / version", f["version"], t["version"]],
        ["指纹 / fingerprint", f["fingerprint"], t["fingerprint"]]])}
<p>病例数 / cases: <b>{rows:,}</b> · 用时 / run time: {esc(seconds)}</p>
<h2>关键数字 / Key numbers</h2>{_table(["指标 / measure", "值 / value"], key)}
<h2>分组状态 / Status classes</h2>{_table(["状态 / status", f["ruleset"], t["ruleset"]], status)}
<h3>状态迁移 / Status moves</h3>{_table(["from", "to", "病例 / cases"],
                                      [[m["from"], m["to"], f"{m['cases']:,}"] for m in s["status_moves"]])}
{imgs}
<h2>未能入组的病例 / Cases that become ambiguous or ungroupable</h2>{pdx or "<p class=note>无 / none</p>"}
<h2>最大的迁移 / Largest moves</h2>{_table(["from", "to", "病例 / cases", "占比 / share"], [
        [m["from"], m["to"], f"{m['cases']:,}", f"{m['cases'] / rows:.2%}"] for m in s["largest_drg_moves"]])}
{"<h2>CMI 变化最大的医院 / Hospitals whose CMI moves most</h2>" + _table(
        ["医院 / hospital", "from", "to", "变化 / change"],
        [[h, f"{x:.4f}", f"{y:.4f}", f"{y - x:+.4f}"] for h, x, y in cmi]) if cmi else ""}
<h2>新增组 / New groups ({len(s["new_groups"])})</h2>{_codes(s["new_groups"])}
<h2>消失组 / Vanished groups ({len(s["vanished_groups"])})</h2>{_codes(s["vanished_groups"])}
{_version_section(s)}
</body></html>
"""


SPLIT_LABELS_ZH = {"age": "年龄", "birth weight": "出生体重", "CC/MCC": "并发症或合并症 CC/MCC"}


def _version_section(s: dict) -> str:
    """What the new version itself adds: groups defined in one version only, cases moving into
    groups split by age, procedure lists (robot surgery), ...; not-grouped cases per MDC."""
    if "moves_into_splits" not in s:
        return ""
    f, t, rows = s["from"]["ruleset"], s["to"]["ruleset"], s["rows"]
    splits = _table(["拆分条件 / split reads", "迁入病例 / cases moving in", "占比 / share", "主要 DRG / top DRGs"], [
        [f"{k} {SPLIT_LABELS_ZH.get(k, '')}".strip(), f"{v['cases']:,}", f"{v['share']:.2%}",
         ", ".join(f"{d['drg']} ({d['cases']:,})" for d in v["top"][:8])] for k, v in s["moves_into_splits"].items()])
    ng = s["not_grouped_by_mdc"]
    mdcs = sorted({m for side in ng.values() for per in side.values() for m in per})
    cols = [(side, st) for st in ("ungroupable", "ambiguous") for side in ("from", "to")]
    by_mdc = _table(["MDC"] + [f"{STATUS_NAMES_ZH.get(st, st)} {f if side == 'from' else t}" for side, st in cols],
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


# ----------------------------------------------------------------------------- weights and indices report
# A second one-file report: relative weights (which groups are heavy, which are unstable) and,
# with the hospital indices, which hospitals stand out. Same conventions as above: PNGs embedded
# as base64, ASCII in the plots (a name that is not ASCII is shown there as its row number "#k"
# of the hospital table), Chinese only in the HTML, every text escaped, written atomically.

__all__ += ["write_weights_report", "write_indices_report", "write_recalibration_report"]

RIV_GUIDE = 0.70  # CHS-DRG: a grouping with RIV >= 0.70 separates costs well
WEIGHTS_TOP = 20  # rows of the highest-RW table
FLAGGED_LIMIT = 100  # rows of the unstable / thin groups table
UNITS_LIMIT = 300  # rows of the hospital table
BARS_LIMIT = 40  # hospitals in the low-risk mortality chart
FLAG_NAMES_ZH = {"thin": "病例过少", "pooled_adrg": "取 ADRG 合并权重", "unstable": "不稳定",
                 "untrimmed_all_outside": "全部落在截尾界外，未截尾"}
_STABLE, _UNSTABLE, _THIN = "#4c72b0", "#dd8452", "#9a9a9a"


def write_weights_report(result, path: str | os.PathLike, *, indices=None, title: str = "",
                         trim: str | None = None, overwrite: bool = False) -> Path:
    """Write an HTML report of ``result`` (a ``weights.WeightResult``) to ``path`` atomically.

    ``indices``: the table of ``indices.hospital_indices`` (or the ``(table, excluded)`` pair it
    returns), for the hospital plots and table; ``trim``: the trimming rule the weights were
    computed with (``WeightOptions.trim``), shown in words. An existing file is refused unless
    ``overwrite``. Needs matplotlib (RuntimeError otherwise)."""
    plt = _pyplot_for("the weights report")
    path = Path(path)
    indices_excluded = None
    if isinstance(indices, tuple):  # hospital_indices(...) passed as it comes
        indices, indices_excluded = indices
    groups = result.table.to_pylist()
    units = _units(indices) if indices is not None else None
    with atomic(path, overwrite) as tmp:  # refuses before any plotting
        figures = [
            ("相对权重分布 / Distribution of relative weights (RW)", _w_rw_hist(plt, groups)),
            ("组内变异系数 / Within-group CV vs number of cases", _w_cv_scatter(plt, groups)),
            ("相对权重与平均住院日 / RW vs mean length of stay", _w_rw_los(plt, groups)),
        ]
        if units:
            figures += _hospital_figures(plt, units)
        text = _w_document(result, groups, units, indices_excluded, [(t, f) for t, f in figures if f],
                           title=title, trim=trim, by_department=indices is not None
                           and "department" in indices.column_names)
        Path(tmp).write_text(text, encoding="utf-8")
    return path


def _hospital_figures(plt, units: list[dict]) -> list[tuple[str, str | None]]:
    """The three hospital plots: CMI against each consumption index, low-risk mortality."""
    return [
        ("医院 CMI 与费用消耗指数 / Hospital CMI vs cost consumption index",
         _w_cmi_index(plt, units, "cost_index", "cost consumption index")),
        ("医院 CMI 与时间消耗指数 / Hospital CMI vs time consumption index",
         _w_cmi_index(plt, units, "time_index", "time consumption index")),
        ("低风险组死亡率 / Low-risk group mortality per hospital", _w_low_risk(plt, units)),
    ]


def write_indices_report(indices, path: str | os.PathLike, *, title: str = "", overwrite: bool = False) -> Path:
    """Write an HTML report of the hospital indices alone (``hospital_indices`` output, or its
    ``(table, excluded)`` pair): CMI against the cost and time indices, low-risk mortality, and
    the hospital table, so the hospitals that stand out can be seen at a glance."""
    plt = _pyplot_for("the indices report")
    path = Path(path)
    excluded = None
    if isinstance(indices, tuple):
        indices, excluded = indices
    units = _units(indices)
    by_department = "department" in indices.column_names
    with atomic(path, overwrite) as tmp:
        figures = _hospital_figures(plt, units)
        head_title = title or "医院 DRG 评价指标报告 / Hospital evaluation indices"
        imgs = _figures_html(figures)
        Path(tmp).write_text("\n".join([_head(head_title), _units_summary(units, excluded, by_department), imgs,
                                         _units_table(units, by_department), "</body></html>\n"]), encoding="utf-8")
    return path


def write_recalibration_report(comparison: pa.Table, shift: pa.Table | None, path: str | os.PathLike, *,
                               labels: tuple[str, str] = ("a", "b"), title: str = "",
                               overwrite: bool = False) -> Path:
    """Write an HTML report of a recalibration experiment: two weight sets side by side
    (``weights.compare_weights``), their budget impact, and each hospital's CMI under both
    (``indices.cmi_shift``)."""
    plt = _pyplot_for("the recalibration report")
    path = Path(path)
    rows = comparison.to_pylist()
    a, b = labels
    with atomic(path, overwrite) as tmp:
        figures = [(f"各组权重 {a} 与 {b} / RW under {a} vs {b}", _r_scatter(plt, rows, a, b)),
                   ("权重变化最大的组 / Largest relative changes", _r_changes(plt, rows))]
        if shift is not None:
            figures.append((f"医院 CMI 变化 / Change of each hospital's CMI ({a} → {b})",
                            _r_cmi(plt, shift.to_pylist(), a, b)))
        key = [["两边都有权重的组 / groups in both", f"{sum(r['rw_a'] is not None and r['rw_b'] is not None for r in rows):,}"],
               [f"仅 {a} / only in {a}", f"{sum(r['rw_b'] is None for r in rows):,}"],
               [f"仅 {b} / only in {b}", f"{sum(r['rw_a'] is None for r in rows):,}"]]
        if "cases" in comparison.column_names:
            ta, tb = (float(np.nansum(_col_of(rows, k))) for k in ("total_weight_a", "total_weight_b"))
            key += [[f"总权重 {a} / total weight {a}", f"{ta:,.1f}"], [f"总权重 {b} / total weight {b}", f"{tb:,.1f}"],
                    ["预算影响（总权重变化）/ budget impact (change in total weight)",
                     f"{tb - ta:+,.1f}" + (f" ({(tb - ta) / ta:+.2%})" if ta else "")]]
        moved = sorted((r for r in rows if r["relative_change"] is not None and np.isfinite(r["relative_change"])),
                       key=lambda r: (-abs(r["relative_change"]), r["drg"]))[:WEIGHTS_TOP * 2]
        table = _table(["DRG", f"RW {a}", f"RW {b}", "变化 / change", "相对变化 / relative"]
                       + (["病例 / cases"] if "cases" in comparison.column_names else []),
                       [[r["drg"], _num(r["rw_a"], ".4f"), _num(r["rw_b"], ".4f"), _num(r["change"], "+.4f"),
                         _num(r["relative_change"], "+.2%")] + ([f"{int(r['cases']):,}"] if "cases" in r else [])
                        for r in moved])
        parts = [_head(title or f"权重重算对比 / Recalibration: {a} vs {b}"),
                 f"<h2>关键数字 / Key numbers</h2>{_table(['指标 / measure', '值 / value'], key)}",
                 _figures_html(figures),
                 f"<h2>相对变化最大的组 / Groups that move most</h2>{table}"]
        if shift is not None:
            srt = sorted(shift.to_pylist(), key=lambda r: (-abs(r["cmi_change"] or 0), str(r["hospital"])))
            parts.append("<h2>CMI 变化最大的医院 / Hospitals whose CMI moves most</h2>" + _table(
                ["医院 / hospital", "病例 / cases", f"CMI {a}", f"CMI {b}", "变化 / change", "总权重变化 / total weight change"],
                [[r["hospital"], f"{r['cases']:,}", _num(r["cmi_a"], ".4f"), _num(r["cmi_b"], ".4f"),
                  _num(r["cmi_change"], "+.4f"), _num(r["total_weight_change"], "+,.1f")] for r in srt[:UNITS_LIMIT]]))
        parts.append("</body></html>\n")
        Path(tmp).write_text("\n".join(parts), encoding="utf-8")
    return path


def _r_scatter(plt, rows: list[dict], a: str, b: str) -> str | None:
    x, y = _col_of(rows, "rw_a"), _col_of(rows, "rw_b")
    ok = _finite(x, y) & (x > 0) & (y > 0)
    if not ok.any():
        return None
    fig, ax = plt.subplots(figsize=(6.5, 6))
    ax.scatter(x[ok], y[ok], s=9, alpha=0.6, color=_STABLE)
    lo, hi = min(x[ok].min(), y[ok].min()), max(x[ok].max(), y[ok].max())
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--", label="no change")
    if _wide(np.r_[x[ok], y[ok]]):
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(f"RW ({_ascii(a, 'a')})")
    ax.set_ylabel(f"RW ({_ascii(b, 'b')})")
    ax.legend(loc="upper left")
    return _png(plt, fig)


def _r_changes(plt, rows: list[dict], n: int = 25) -> str | None:
    rel = [(r["drg"], r["relative_change"]) for r in rows
           if r["relative_change"] is not None and np.isfinite(r["relative_change"])]
    rel = sorted(rel, key=lambda t: (-abs(t[1]), t[0]))[:n][::-1]
    if not rel:
        return None
    fig, ax = plt.subplots(figsize=(7, max(3, 0.28 * len(rel) + 1)))
    ax.barh([_ascii(d, "?") for d, _ in rel], [100 * v for _, v in rel],
            color=[_UNSTABLE if v > 0 else _STABLE for _, v in rel])
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("relative change of RW (%)")
    return _png(plt, fig)


def _r_cmi(plt, units: list[dict], a: str, b: str, label: int = 8) -> str | None:
    """CMI change against CMI: who gains and who loses, and whether it follows the case mix."""
    x, y = _col_of(units, "cmi_a"), _col_of(units, "cmi_b")
    ok = _finite(x, y)
    if not ok.any():
        return None
    d = y - x
    fig, ax = plt.subplots(figsize=(7, 5))
    n = _col_of(units, "cases")
    ax.scatter(x[ok], d[ok], s=10 + 60 * n[ok] / max(n[ok].max(), 1), alpha=0.6,
               color=np.where(d[ok] >= 0, _UNSTABLE, _STABLE))
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    idx = np.flatnonzero(ok)
    top = idx[np.argsort(-np.abs(d[ok]), kind="stable")[:label]]
    _place_labels(fig, ax, [(x[i], d[i], _ascii(str(units[i]["hospital"]), f"#{i + 1}")) for i in top])
    ax.set_xlabel(f"CMI ({_ascii(a, 'a')})")
    ax.set_ylabel(f"CMI change ({_ascii(b, 'b')} - {_ascii(a, 'a')})")
    return _png(plt, fig)


def _units_summary(units: list[dict], units_excluded: dict | None, by_department: bool) -> str:
    """Key numbers of the hospital indices and the rows they left out."""
    deaths, cases = _regional_low_risk(units)
    ukey = [["单位数 / units" + ("（医院×科室 / hospital × department）" if by_department else "（医院 / hospitals）"),
             f"{len(units):,}"],
            ["病例 / cases", f"{sum(u['cases'] for u in units):,}"],
            ["地区低风险组死亡率 / regional low-risk mortality",
             f"{deaths / cases:.3%} ({deaths:,}/{cases:,})" if cases else "–"]]
    out = f"<h3>医院指标 / Hospital indices</h3>{_table(['指标 / measure', '值 / value'], ukey)}"
    if units_excluded:
        out += ("<h3>指标计算剔除的记录 / Rows left out of the indices</h3>"
                + _table(["原因 / reason", "记录 / rows"], [[k, f"{v:,}"] for k, v in units_excluded.items()]))
    return out


def _units_table(units: list[dict], by_department: bool) -> str:
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
            + [f"{u['cases']:,}", u["drg_count"], _num(u["total_weight"], ",.1f"), _num(u["cmi"], ".4f"),
               _index_cell(u["cost_index"]), _index_cell(u["time_index"]),
               f"{u['low_risk_cases']:,}/{u['low_risk_deaths']}", mort(u["low_risk_mortality"]),
               f"{u['midlow_risk_cases']:,}/{u['midlow_risk_deaths']}", _num(u["midlow_risk_mortality"], ".2%")]
            for u in units[:UNITS_LIMIT]]
    more = len(units) - UNITS_LIMIT
    return ("<h2>医院指标（按 CMI 排序）/ Hospitals by CMI</h2>"
            "<p class=note>消耗指数 ≥ 1.10 标红、≤ 0.90 标蓝；低风险组死亡率高于地区水平标红。“#”为图中非 ASCII "
            "名称的编号。 / Indices ≥ 1.10 shaded red, ≤ 0.90 blue; low-risk mortality above the regional "
            "rate red. Plots show a name that is not ASCII as its number #.</p>"
            + _cells(head, rows)
            + (f"<p class=note>另有 {more} 个单位未列出 / and {more} more units</p>" if more > 0 else ""))


def _units(indices: pa.Table) -> list[dict]:
    """Rows of the indices table, numbered in CMI order (the order of the HTML table), each with
    a plot label: its name when ASCII, else "#k"."""
    rows = indices.to_pylist()
    rows.sort(key=lambda r: (-(r["cmi"] if r["cmi"] is not None and r["cmi"] == r["cmi"] else -np.inf),
                             str(r["hospital"]), str(r.get("department"))))
    for k, r in enumerate(rows, 1):
        name = str(r["hospital"]) + (f"/{r['department']}" if r.get("department") is not None else "")
        r["no"], r["name"], r["label"] = k, name, _ascii(name, f"#{k}")
    return rows


def _ascii(text: str, fallback: str) -> str:
    """A plot label: ASCII only (default fonts may lack other glyphs), no mathtext."""
    return text.replace("$", r"\$") if text.isascii() and text.isprintable() else fallback


def _finite(*xs) -> np.ndarray:
    ok = np.ones(len(xs[0]), bool)
    for x in xs:
        ok &= np.isfinite(x)
    return ok


def _col_of(rows: list[dict], key: str) -> np.ndarray:
    return np.array([np.nan if r.get(key) is None else r[key] for r in rows], float)


def _kind(r: dict) -> str:
    flags = (r["flags"] or "").split(";")
    return "thin" if "thin" in flags else ("stable" if r["stable"] else "unstable")


def _plain_log(axis, lo: float, hi: float) -> None:
    """A log axis with plain numbers at 1-2-5 steps (the default 2x10^-1 labels collide)."""
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter
    steps = [m * 10.0 ** e for e in range(-4, 7) for m in (1, 2, 5)]
    ticks = [t for t in steps if lo <= t <= hi]
    if len(ticks) > 9:
        ticks = [t for t in ticks if str(t).lstrip("0.").startswith("1")]  # decades only
    if len(ticks) >= 2:
        axis.set_major_locator(FixedLocator(ticks))
        axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_formatter(NullFormatter())


def _place_labels(fig, ax, points: list[tuple[float, float, str]], fontsize: float = 7.5) -> None:
    """Label points without labels covering each other: each label takes the first of a few
    offsets around its point whose box is free, with a leader line when it had to move away."""
    renderer = fig.canvas.get_renderer()
    offsets = [(5, 4), (5, -11), (-5, 4), (-5, -11), (8, 16), (8, -22), (-8, 16), (-8, -22),
               (14, 28), (14, -34), (-14, 28), (-14, -34), (24, 0), (-24, 0), (20, 42), (20, -48)]
    taken = []
    for x, y, text in points:
        for k, (dx, dy) in enumerate(offsets):
            far = k >= 4
            a = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                            ha="left" if dx > 0 else "right", va="bottom" if dy >= 0 else "top",
                            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "grey"} if far else None)
            box = a.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(b) for b in taken) or k == len(offsets) - 1:
                taken.append(box)
                break
            a.remove()


def _wide(x: np.ndarray, ratio: float = 20.0) -> bool:
    x = x[np.isfinite(x) & (x > 0)]
    return len(x) > 1 and x.max() / x.min() > ratio


def _w_rw_hist(plt, groups: list[dict]) -> str | None:
    """Stacked by stability, so one sees where the unreliable weights sit."""
    rw = _col_of(groups, "rw")
    ok = _finite(rw) & (rw > 0)
    if not ok.any():
        return None
    log = _wide(rw[ok])
    lo, hi = rw[ok].min(), rw[ok].max()
    bins = np.geomspace(lo, hi * 1.0001, 41) if log else np.linspace(lo, hi * 1.0001, 41)
    kinds = np.array([_kind(r) for r in groups])
    fig, ax = plt.subplots(figsize=(8, 4))
    parts = [(k, c) for k, c in (("stable", _STABLE), ("unstable", _UNSTABLE), ("thin", _THIN))
             if (ok & (kinds == k)).any()]
    ax.hist([rw[ok & (kinds == k)] for k, _ in parts], bins=bins, stacked=True, color=[c for _, c in parts],
            label=[f"{k} ({int((ok & (kinds == k)).sum())} DRGs)" for k, _ in parts])
    ax.axvline(1, color="black", lw=1, ls="--", label="RW = 1 (mean case)")
    med = float(np.median(rw[ok]))
    ax.axvline(med, color="grey", lw=1, ls=":", label=f"median {med:.2f}")
    if log:
        ax.set_xscale("log")
        _plain_log(ax.xaxis, lo, hi)
    ax.set(xlabel="relative weight (RW)" + (", log scale" if log else ""), ylabel="DRGs",
           title=f"{int(ok.sum())} DRGs, RW {lo:.3g} to {hi:.3g}")
    ax.legend(fontsize=8)
    return _png(plt, fig)


def _scatter_by_kind(ax, x, y, ok, kinds) -> None:
    """One point series per group kind (stable, unstable, thin), with its count in the legend."""
    for k, c, m in (("stable", _STABLE, "o"), ("unstable", _UNSTABLE, "o"), ("thin", _THIN, "^")):
        sel = ok & (kinds == k)
        if sel.any():
            ax.scatter(x[sel], y[sel], s=16, color=c, marker=m, alpha=0.8, label=f"{k} ({int(sel.sum())})",
                       edgecolors="none")


def _w_cv_scatter(plt, groups: list[dict], label: int = 8) -> str | None:
    n, cv = _col_of(groups, "n"), _col_of(groups, "cv")
    ok = _finite(n, cv) & (n > 0)
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
    _plain_log(ax.xaxis, n[ok].min(), n[ok].max() * 1.5)
    ax.legend(fontsize=8, loc="upper right")
    _place_labels(fig, ax, [(n[i], cv[i], _ascii(str(groups[i]["drg"]), "?"))
                            for i in sorted(cand, key=lambda i: -cv[i])[:label]])
    return _png(plt, fig)


def _w_rw_los(plt, groups: list[dict]) -> str | None:
    """Weight against stay, with the log-log trend: far above it are expensive short stays
    (procedures, devices), far below cheap long ones."""
    rw, los = _col_of(groups, "rw"), _col_of(groups, "mean_los")
    ok = _finite(rw, los) & (rw > 0) & (los > 0)
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
        labels = [(los[i], rw[i], _ascii(str(groups[i]["drg"]), "?")) for i in dict.fromkeys(picks)]
    ax.axhline(1, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log(ax.xaxis, los[ok].min() / 1.1, los[ok].max() * 1.1)
    _plain_log(ax.yaxis, rw[ok].min() / 1.1, rw[ok].max() * 1.1)
    ax.set(xlabel="mean length of stay, days (log scale)", ylabel="relative weight (RW, log scale)",
           title="labelled: farthest above and below the trend (non-thin groups)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8, loc="upper left")
    _place_labels(fig, ax, labels, fontsize=7)
    return _png(plt, fig)


def _extremes(x: np.ndarray, y: np.ndarray, k: int) -> list[int]:
    """Indices of the k points farthest from (1, 1), each axis in units of its spread."""
    sx = np.std(x) or 1.0
    sy = np.std(y) or 1.0
    d = ((x - 1) / sx) ** 2 + ((y - 1) / sy) ** 2
    return list(np.argsort(-d)[:k])


def _w_cmi_index(plt, units: list[dict], key: str, name: str) -> str | None:
    rows = [u for u in units if u["cmi"] is not None and u[key] is not None
            and np.isfinite(u["cmi"]) and np.isfinite(u[key])]
    if not rows:
        return None
    x, y = _col_of(rows, "cmi"), _col_of(rows, key)
    cases = _col_of(rows, "cases")
    size = 15 + 285 * np.sqrt(cases / max(cases.max(), 1))
    label = range(len(rows)) if len(rows) <= 15 else _extremes(x, y, 10)
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.axvline(1, color="grey", lw=1, ls="--")
    ax.axhline(1, color="grey", lw=1, ls="--")
    ax.scatter(x, y, s=size, color=_STABLE, alpha=0.55, edgecolors="white", linewidths=0.5)
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
    _place_labels(fig, ax, [(x[i], y[i], rows[i]["label"]) for i in label])
    return _png(plt, fig)


def _regional_low_risk(units: list[dict]) -> tuple[int, int]:
    return (sum(u["low_risk_deaths"] or 0 for u in units), sum(u["low_risk_cases"] or 0 for u in units))


def _w_low_risk(plt, units: list[dict]) -> str | None:
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
    colors = [_UNSTABLE if u["low_risk_mortality"] > regional else _STABLE for u in shown]
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
    return _png(plt, fig)


def _cells(head: list[str], rows: list[list]) -> str:
    """Like ``_table``, but a cell may be ``(value, css class)`` to shade it."""
    def td(c):
        v, cls = c if isinstance(c, tuple) else (c, "")
        return f"<td class={cls}>{esc(str(v))}</td>" if cls else f"<td>{esc(str(v))}</td>"
    th = "".join(f"<th>{esc(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(td(c) for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>" if rows else "<p class=note>无 / none</p>"


def _num(v, fmt: str) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, fmt)


def _flags_text(flags: str) -> str:
    parts = [f for f in (flags or "").split(";") if f]
    return "; ".join(f"{f} {FLAG_NAMES_ZH.get(f, '')}".strip() for f in parts)


def _trim_text(trim: str | None) -> str:
    if not trim:
        return "未说明 / not given"
    from grouper.analytics.weights import WeightOptions
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
    return [r["drg"], r["adrg"], f"{r['n']:,}", f"{r['n_trimmed']:,}", _num(r["mean_cost"], ",.2f"),
            _num(r["rw"], ".4f"), (_num(r["cv"], ".3f"), "hi" if (r["cv"] or 0) > 1 else ""),
            _num(r["mean_los"], ".1f"), _flags_text(r["flags"])]


GROUP_HEAD = ["DRG", "ADRG", "病例 / cases", "截尾 / trimmed", "平均费用 / mean cost", "RW", "CV",
              "平均住院日 / mean LOS", "标记 / flags"]


def _index_cell(v, fmt: str = ".3f"):
    if v is None or not np.isfinite(v):
        return "–"
    return (format(v, fmt), "hi" if v >= 1.1 else ("lo" if v <= 0.9 else ""))


def _w_document(result, groups: list[dict], units: list[dict] | None, units_excluded: dict | None,
                figures: list[tuple[str, str]], *, title: str, trim: str | None, by_department: bool) -> str:
    kept = sum(r["n"] for r in groups)
    trimmed = sum(r["n_trimmed"] for r in groups)
    kinds = [_kind(r) for r in groups]
    flag_counts = {f: sum(f in (r["flags"] or "").split(";") for r in groups) for f in FLAG_NAMES_ZH}
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
           ["总体例均费用 / overall mean cost per case", _num(result.mean_cost, ",.2f")],
           ["RIV（变异减少系数 / reduction in variance）", (riv_text, riv_cls)]]
    excluded = [[f"{reason}", f"{count:,}"] for reason, count in result.excluded.items()]
    imgs = _figures_html(figures)
    top = sorted(groups, key=lambda r: (-(r["rw"] or 0), r["drg"]))[:WEIGHTS_TOP]
    flagged = sorted((r for r in groups if r["flags"]), key=lambda r: (-r["n"], -(r["cv"] or 0), r["drg"]))
    more = len(flagged) - FLAGGED_LIMIT
    flagged_more = f"<p class=note>另有 {more} 组未列出 / and {more} more groups</p>" if more > 0 else ""
    head_title = title or "DRG 相对权重与医院指标报告"
    parts = [f"""{_head(head_title)}
<p class=note>相对权重与分组质量{"、医院评价指标" if units else ""} / Relative weights and grouping quality
{"and hospital evaluation indices" if units else ""}</p>
<h2>关键数字 / Key numbers</h2>{_cells(["指标 / measure", "值 / value"], key)}
<h3>计算前剔除的记录 / Rows left out before trimming</h3>{_table(["原因 / reason", "记录 / rows"], excluded)}"""]
    if units is not None:
        parts.append(_units_summary(units, units_excluded, by_department))
    parts.append(imgs)
    parts.append(f"<h2>相对权重最高的 {len(top)} 组 / The {len(top)} highest-weight groups</h2>"
                 + _cells(GROUP_HEAD, [_group_row(r) for r in top]))
    parts.append(f"<h2>不稳定或病例过少的组 / Unstable and thin groups ({len(flagged)})</h2>"
                 "<p class=note>按病例数从多到少：病例多而不稳定的组最值得关注。CV &gt; 1 标为红色。 / "
                 "Most cases first: a large unstable group matters most. CV &gt; 1 shaded.</p>"
                 + _cells(GROUP_HEAD, [_group_row(r) for r in flagged[:FLAGGED_LIMIT]]) + flagged_more)
    if units is not None:
        parts.append(_units_table(units, by_department))
    parts.append("</body></html>\n")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- settlement report
# A one-file report of a `drg settle` run: what the pack is, where the money went (cases by type,
# hospital margins), what each value-based knob did per hospital, and the monthly pre-settlement.
# Same conventions as above: PNGs embedded, ASCII in plots (non-ASCII hospital names become "#k",
# their row in the table), Chinese only in the HTML, every text escaped, written atomically.

__all__ += ["write_settlement_report"]

SETTLE_LIMIT = 300  # rows of the hospital table
SETTLE_TYPES_ZH = {"normal": "正常病例", "high": "高倍率", "low": "低倍率", "short_stay": "短住院/死亡/转院",
                   "special_review": "特例单议", "per_diem": "床日/按项目 (非DRG)", "ungroupable": "无法入组 0000",
                   "ambiguous": "歧义组 QY", "invalid": "校验不通过"}


def write_settlement_report(result, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write an HTML report of ``result`` (a ``settlement.SettlementResult``) to ``path`` atomically.
    Needs matplotlib (RuntimeError otherwise); an existing file is refused unless ``overwrite``."""
    plt = _pyplot_for("the settlement report")
    path = Path(path)
    rows = sorted(result.hospitals.to_pylist(), key=lambda r: (-(r["payment"] or 0), str(r["hospital"])))
    for i, r in enumerate(rows, 1):
        r["no"], r["label"] = i, _s_label(r["hospital"], i)
    effects = [c for c in result.hospitals.column_names if c.startswith("effect_")]
    with atomic(path, overwrite) as tmp:
        figures = [("医院结余/超支 / Hospital margin (payment - cost)", _s_margins(plt, rows)),
                   ("病例类型 / Cases by type per hospital", _s_types(plt, rows)),
                   ("政策旋钮的影响 / Effect of each knob per hospital (yuan)", _s_effects(plt, rows, effects)),
                   ("月度预结算 / Monthly pre-settlement (fund)", _s_months(plt, result.months))]
        Path(tmp).write_text(_s_document(result, rows, effects, [(t, f) for t, f in figures if f]), encoding="utf-8")
    return path


def _s_label(name, i: int) -> str:
    s = "" if name is None else str(name)
    return s if s and s.isascii() and len(s) <= 12 else f"#{i}"


def _s_margins(plt, rows: list[dict], limit: int = 60) -> str | None:
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
    return _png(plt, fig)


def _s_types(plt, rows: list[dict], limit: int = 40) -> str | None:
    from grouper.payment.drg.settlement import CASE_TYPES

    shown = rows[:limit]
    if not shown:
        return None
    fig, ax = plt.subplots(figsize=(10, max(3, 0.2 * len(shown) + 1)))
    left = np.zeros(len(shown))
    for t in CASE_TYPES:
        share = np.array([r[f"n_{t}"] / max(r["cases"], 1) for r in shown])
        if share.any():
            ax.barh(range(len(shown)), share, left=left, label=t)
            left += share
    ax.set_yticks(range(len(shown)), [r["label"] for r in shown], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("share of the hospital's cases" + (f" ({limit} largest hospitals)" if len(rows) > limit else ""))
    ax.set_xlim(0, 1)
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    return _png(plt, fig)


def _s_effects(plt, rows: list[dict], effects: list[str], limit: int = 40) -> str | None:
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
    return _png(plt, fig)


def _s_months(plt, months: pa.Table) -> str | None:
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
    return _png(plt, fig)


def _s_document(result, rows: list[dict], effects: list[str], figures: list[tuple[str, str]]) -> str:
    from grouper.payment.drg.settlement import CASE_TYPES

    s = result.summary
    pk, rate, tot = s["pack"], s["rate"], s["totals"]
    title = f"DRG 结算报告 / DRG settlement: {pk['name']} ({pk['region']}, {pk['year']})"
    banner = ("<p class=warn>示例支付包：数字仅为示例，并非任何统筹区的规定。 / ILLUSTRATIVE pack: the numbers are "
              "examples, not a region's rules.</p>" if pk["illustrative"] else "")
    money = lambda v: _num(v, ",.2f")  # noqa: E731
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
    types = [[t, SETTLE_TYPES_ZH.get(t, ""), f"{s['case_types'][t]:,}",
              f"{s['case_types'][t] / s['rows']:.2%}" if s["rows"] else "–"] for t in CASE_TYPES]
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
    imgs = _figures_html(figures)
    return f"""{_head(title, SETTLEMENT_CSS)}{banner}
<h2>关键数字 / Key numbers</h2>{_cells(["指标 / measure", "值 / value"], key)}
<h2>结算状态 / Settle status</h2>{_cells(["状态 / status", "病例 / rows"], status)}
<h2>病例类型 / Case types</h2>{_cells(["type", "类型", "病例 / cases", "占比 / share"], types)}
<h2>政策旋钮合计 / Knob effects, all hospitals</h2>
<p class=note>依次计算：无旋钮 → 转诊加成 → 各质量规则 → 重新标化 → 结余/超支分担。 / Computed as a waterfall: no knobs
→ referral uplift → each quality rule → renormalisation → surplus/overspend sharing.</p>{_cells(["knob", "元 / yuan"], knobs)}
<h3>计数 / Counts</h3>{_cells(["", ""], counts)}
{imgs}
<h2>医院 / Hospitals (by payment)</h2>{_cells(head, table)}
{f"<p class=note>另有 {more} 家未列出 / and {more} more</p>" if more > 0 else ""}
</body></html>
"""

"""The audit report (智能审核报告), laid out like what an auditor works from: per screen the
hospital league table (value, expected, peer median, percentile, z, p, flag), the peer
distribution with the top hospitals marked, the explanation of each flag, and the top cases
behind them with their explanations; then the case edits by code with an example each.
Department screens (``dept_*``) list (hospital, department) rows, their strips are per level;
the lifting-diagnosis screen lists (hospital, code) rows.

Plot labels stay ASCII; a hospital name that is not ASCII is shown as its rank "#k".
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc
from grouper.report._html import esc, cells_html, num, page_head, table_html, write_page
from grouper.report._plots import STABLE, UNSTABLE, ascii_label, png, pyplot_for

__all__ = ["write_audit_report"]

TABLE_ROWS = 15  # hospitals per league table
CASES_SHOWN = 8  # cases per flagged (or top) hospital
NO_STRIP = {"lifting_dx"}  # screens without a peer strip: rates of different codes are not comparable
CSS = "td.hi{background:#fbe3d6} td.lo{background:#dcebf7} .msg{font-size:.9em}"


def write_audit_report(hospitals: pa.Table, samples: pa.Table, counts: dict, path: str | os.PathLike, *,
                       title: str = "智能审核报告 / audit report", overwrite: bool = False,
                       edit_names: dict | None = None, screen_codes: dict | None = None) -> Path:
    """``hospitals``: the league table (audit HOSPITAL_SCHEMA); ``samples``: findings kept for the
    report (a few per code and hospital); ``counts``: findings per code."""
    plt = pyplot_for("the audit report")
    screen_codes = screen_codes or {}

    def build() -> str:
        parts = [page_head(title, CSS),
                 "<p class=note>统计筛查：医院与同级医院（不含自身）或全区病例组合（按ADRG间接标化）比较；"
                 "单侧检验 p 值低于 alpha/医院数 时标记（Bonferroni），噪声误标任何医院的概率不超过 alpha。"
                 "病例审核：规则见 rules/audit/edits.toml。合成数据的标签列不参与审核。</p>"]
        for screen in dict.fromkeys(hospitals["screen"].to_pylist()):
            t = hospitals.filter(pc.equal(hospitals["screen"], screen)).sort_by("rank")
            if screen in NO_STRIP:  # only the rows shown: a province has ~10^5-10^6 (hospital, code) rows
                shown = np.arange(t.num_rows) < TABLE_ROWS
                t = t.filter(pa.array(shown | t["flagged"].to_numpy(zero_copy_only=False).astype(bool)))
            parts.append(_screen(plt, screen, t.to_pylist(), samples, screen_codes.get(screen)))
        parts.append("<h2>病例审核规则 / case edits</h2>")
        rows = []
        for code, k in sorted(counts.items()):
            ex = samples.filter(pc.equal(samples["code"], code))
            rows.append([code, (edit_names or {}).get(code, ""), k, ex["message"][0].as_py() if ex.num_rows else ""])
        parts.append(table_html(["规则", "说明", "病例数", "示例"], rows))
        return "\n".join(parts) + "</body></html>\n"

    return write_page(path, overwrite, build)


def _screen(plt, screen: str, h: list[dict], samples: pa.Table, case_code: str | None) -> str:
    name = h[0]["screen_name"] if h else screen
    out = [f"<h2>{esc(name)} / {esc(screen)}</h2>"]
    flagged = [r for r in h if r["flagged"]]
    out.append(f"<p>标记医院 {len(flagged)} 家：{esc('、'.join(r['hospital'] for r in flagged) or '无')}</p>")
    dept = any(r.get("department") is not None for r in h)
    item = any(r.get("item") is not None for r in h)
    rows = []
    for r in h[:TABLE_ROWS]:
        cls = "hi" if r["flagged"] else ""
        rows.append([r["rank"], (r["hospital"], cls), *([r["department"]] if dept else []),
                     *([r["item"]] if item else []), r["peer"], r["cases"], num(r["observed"], ".0f"),
                     num(r["expected"], ".1f"), num(r["value"], ".4f"), num(r["expected_value"], ".4f"),
                     num(r["peer_median"], ".4f"), num(r["percentile"], ".0f"), num(r["z"], ".2f"),
                     num(r["p_value"], ".2g"), ("是" if r["flagged"] else "", cls)])
    out.append(cells_html(["排名", "医院", *(["科室"] if dept else []), *(["项目"] if item else []), "同级", "病例",
                           "观察数", "期望数", "指标值", "期望值", "同级中位数", "同级百分位", "z", "p", "标记"], rows))
    explained = [r["message"] for r in flagged if r.get("message")]
    if explained:
        out.append("<ul class=msg>" + "".join(f"<li>{esc(m)}</li>" for m in explained[:TABLE_ROWS]) + "</ul>")
        if len(explained) > TABLE_ROWS:
            out.append(f"<p class=note>另有 {len(explained) - TABLE_ROWS} 条标记，见医院表（--hospitals）的 message 列</p>")
    img = None if screen in NO_STRIP else _distribution(plt, screen, h)
    if img:
        out.append(f'<img src="data:image/png;base64,{img}" alt="{esc(screen)} peer distribution">')
    if dept and case_code:
        out.append("<p class=note>病例按医院列于医院级筛查；某科室的病例：审核结果（-o）按 row 回查输入的科室列</p>")
    elif case_code:
        top = flagged or h[:1]
        for r in top[:5]:
            match = pc.and_(pc.equal(samples["code"], case_code), pc.equal(samples["hospital"], r["hospital"]))
            if item and r.get("item"):  # the cases of that code (kept ones: a few per code and hospital)
                match = pc.and_(match, pc.equal(samples["item"], r["item"]))
            ex = samples.filter(match).slice(0, CASES_SHOWN)
            if not ex.num_rows and item and r.get("item") and r["flagged"]:
                out.append(f"<p class=note>{esc(r['hospital'])} {esc(r['item'])} 的病例：审核结果（-o）中 "
                           f"code={esc(case_code)}、item={esc(r['item'])}、hospital={esc(r['hospital'])} 的行</p>")
            if ex.num_rows:
                out.append(f"<h3>{esc(r['hospital'])}{esc(' ' + r['item'] if item and r.get('item') else '')} "
                           f"的病例 / cases</h3>")
                out.append(table_html(["行", "病例号", "评分", "说明"], [[x["row"], x["case_id"], num(x["score"], ".1f"),
                                                                    x["message"]] for x in ex.to_pylist()]))
    return "\n".join(out)


def _distribution(plt, screen: str, h: list[dict]) -> str | None:
    """The hospitals' values (those with enough cases) as a strip per peer group, flagged in orange."""
    pts = [r for r in h if r["value"] is not None and np.isfinite(r["value"]) and r["percentile"] is not None
           and np.isfinite(r["percentile"])]
    if len(pts) < 2:
        return None
    if screen.startswith("dept_"):  # one strip per level ("二级/R02" -> "二级"), not per department
        pts = [{**r, "peer": r["peer"].split("/")[0]} for r in pts]
    peers = list(dict.fromkeys(r["peer"] for r in pts))
    fig, ax = plt.subplots(figsize=(8, 0.7 + 0.6 * len(peers)))
    for i, p in enumerate(peers):
        grp = [r for r in pts if r["peer"] == p]
        x = np.array([r["value"] for r in grp])
        jitter = (np.arange(len(grp)) % 5 - 2) * 0.06
        colour = [UNSTABLE if r["flagged"] else STABLE for r in grp]
        ax.scatter(x, i + jitter, c=colour, s=22)
        for r, xv, yv in zip(grp, x, i + jitter):
            if r["rank"] <= 3 or (r["flagged"] and r["rank"] <= 10):
                label = r["hospital"] + (f"/{r['department']}" if r.get("department") else "")
                ax.annotate(ascii_label(label, f"#{r['rank']}"), (xv, yv), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
    ax.set_yticks(range(len(peers)), [ascii_label(p, f"peer {i + 1}") for i, p in enumerate(peers)])
    ax.set_xlabel(f"{screen} value per hospital (orange: flagged)")
    return png(plt, fig)

"""A one-file HTML report of a recalibration experiment: two weight sets side by side, their
budget impact, and each hospital's CMI under both; for deciding whether new weights are adopted.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from grouper.report._html import figures_html, num, page_head, table_html, write_page
from grouper.report._plots import STABLE, UNSTABLE, ascii_label, col_of, finite, place_labels, png, pyplot_for, wide
from grouper.report.indices import UNITS_LIMIT

__all__ = ["write_recalibration_report"]

MOVED_LIMIT = 40  # rows of the groups-that-move table (twice the weights report's highest-RW table)


def write_recalibration_report(comparison: pa.Table, shift: pa.Table | None, path: str | os.PathLike, *,
                               labels: tuple[str, str] = ("a", "b"), title: str = "",
                               overwrite: bool = False) -> Path:
    """Write an HTML report of a recalibration experiment: two weight sets side by side
    (``weights.compare_weights``), their budget impact, and each hospital's CMI under both
    (``indices.cmi_shift``)."""
    plt = pyplot_for("the recalibration report")
    rows = comparison.to_pylist()
    a, b = labels

    def build() -> str:
        figures = [(f"各组权重 {a} 与 {b} / RW under {a} vs {b}", _scatter(plt, rows, a, b)),
                   ("权重变化最大的组 / Largest relative changes", _changes(plt, rows))]
        if shift is not None:
            figures.append((f"医院 CMI 变化 / Change of each hospital's CMI ({a} → {b})",
                            _cmi(plt, shift.to_pylist(), a, b)))
        key = [["两边都有权重的组 / groups in both", f"{sum(r['rw_a'] is not None and r['rw_b'] is not None for r in rows):,}"],
               [f"仅 {a} / only in {a}", f"{sum(r['rw_b'] is None for r in rows):,}"],
               [f"仅 {b} / only in {b}", f"{sum(r['rw_a'] is None for r in rows):,}"]]
        if "cases" in comparison.column_names:
            ta, tb = (float(np.nansum(col_of(rows, k))) for k in ("total_weight_a", "total_weight_b"))
            key += [[f"总权重 {a} / total weight {a}", f"{ta:,.1f}"], [f"总权重 {b} / total weight {b}", f"{tb:,.1f}"],
                    ["预算影响（总权重变化）/ budget impact (change in total weight)",
                     f"{tb - ta:+,.1f}" + (f" ({(tb - ta) / ta:+.2%})" if ta else "")]]
        moved = sorted((r for r in rows if r["relative_change"] is not None and np.isfinite(r["relative_change"])),
                       key=lambda r: (-abs(r["relative_change"]), r["drg"]))[:MOVED_LIMIT]
        table = table_html(["DRG", f"RW {a}", f"RW {b}", "变化 / change", "相对变化 / relative"]
                           + (["病例 / cases"] if "cases" in comparison.column_names else []),
                           [[r["drg"], num(r["rw_a"], ".4f"), num(r["rw_b"], ".4f"), num(r["change"], "+.4f"),
                             num(r["relative_change"], "+.2%")] + ([f"{int(r['cases']):,}"] if "cases" in r else [])
                            for r in moved])
        parts = [page_head(title or f"权重重算对比 / Recalibration: {a} vs {b}"),
                 f"<h2>关键数字 / Key numbers</h2>{table_html(['指标 / measure', '值 / value'], key)}",
                 figures_html(figures),
                 f"<h2>相对变化最大的组 / Groups that move most</h2>{table}"]
        if shift is not None:
            srt = sorted(shift.to_pylist(), key=lambda r: (-abs(r["cmi_change"] or 0), str(r["hospital"])))
            parts.append("<h2>CMI 变化最大的医院 / Hospitals whose CMI moves most</h2>" + table_html(
                ["医院 / hospital", "病例 / cases", f"CMI {a}", f"CMI {b}", "变化 / change", "总权重变化 / total weight change"],
                [[r["hospital"], f"{r['cases']:,}", num(r["cmi_a"], ".4f"), num(r["cmi_b"], ".4f"),
                  num(r["cmi_change"], "+.4f"), num(r["total_weight_change"], "+,.1f")] for r in srt[:UNITS_LIMIT]]))
        parts.append("</body></html>\n")
        return "\n".join(parts)
    return write_page(path, overwrite, build)


def _scatter(plt, rows: list[dict], a: str, b: str) -> str | None:
    x, y = col_of(rows, "rw_a"), col_of(rows, "rw_b")
    ok = finite(x, y) & (x > 0) & (y > 0)
    if not ok.any():
        return None
    fig, ax = plt.subplots(figsize=(6.5, 6))
    ax.scatter(x[ok], y[ok], s=9, alpha=0.6, color=STABLE)
    lo, hi = min(x[ok].min(), y[ok].min()), max(x[ok].max(), y[ok].max())
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--", label="no change")
    if wide(np.r_[x[ok], y[ok]]):
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(f"RW ({ascii_label(a, 'a')})")
    ax.set_ylabel(f"RW ({ascii_label(b, 'b')})")
    ax.legend(loc="upper left")
    return png(plt, fig)


def _changes(plt, rows: list[dict], n: int = 25) -> str | None:
    rel = [(r["drg"], r["relative_change"]) for r in rows
           if r["relative_change"] is not None and np.isfinite(r["relative_change"])]
    rel = sorted(rel, key=lambda t: (-abs(t[1]), t[0]))[:n][::-1]
    if not rel:
        return None
    fig, ax = plt.subplots(figsize=(7, max(3, 0.28 * len(rel) + 1)))
    ax.barh([ascii_label(d, "?") for d, _ in rel], [100 * v for _, v in rel],
            color=[UNSTABLE if v > 0 else STABLE for _, v in rel])
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("relative change of RW (%)")
    return png(plt, fig)


def _cmi(plt, units: list[dict], a: str, b: str, label: int = 8) -> str | None:
    """CMI change against CMI: who gains and who loses, and whether it follows the case mix."""
    x, y = col_of(units, "cmi_a"), col_of(units, "cmi_b")
    ok = finite(x, y)
    if not ok.any():
        return None
    d = y - x
    fig, ax = plt.subplots(figsize=(7, 5))
    n = col_of(units, "cases")
    ax.scatter(x[ok], d[ok], s=10 + 60 * n[ok] / max(n[ok].max(), 1), alpha=0.6,
               color=np.where(d[ok] >= 0, UNSTABLE, STABLE))
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    idx = np.flatnonzero(ok)
    top = idx[np.argsort(-np.abs(d[ok]), kind="stable")[:label]]
    place_labels(fig, ax, [(x[i], d[i], ascii_label(str(units[i]["hospital"]), f"#{i + 1}")) for i in top])
    ax.set_xlabel(f"CMI ({ascii_label(a, 'a')})")
    ax.set_ylabel(f"CMI change ({ascii_label(b, 'b')} - {ascii_label(a, 'a')})")
    return png(plt, fig)

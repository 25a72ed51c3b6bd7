"""matplotlib for the reports, imported only when a plot is drawn (the grouper itself does not
need it), and the plot helpers they share: a figure as an embedded PNG, ASCII labels, log axes,
labels that do not cover each other.

Plot labels stay ASCII (default fonts may lack Chinese glyphs); Chinese appears only in the HTML.
"""

from __future__ import annotations

import base64
import io

import numpy as np

# The colours of the plots, named by what they mark in the weights report (blue, orange, grey).
STABLE, UNSTABLE, THIN = "#4c72b0", "#dd8452", "#9a9a9a"


def pyplot_for(what: str):
    """matplotlib's pyplot, or a RuntimeError saying that ``what`` needs the report extra."""
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError(f"{what} needs matplotlib: pip install 'drg-grouper[report]'") from None
    matplotlib.use("Agg")  # no display needed, and none is touched
    import matplotlib.pyplot as plt
    return plt


def png(plt, fig) -> str:
    """The figure as a base64 PNG (closed afterwards)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def ascii_label(text: str, fallback: str) -> str:
    """A plot label: ASCII only (default fonts may lack other glyphs), no mathtext."""
    return text.replace("$", r"\$") if text.isascii() and text.isprintable() else fallback


def finite(*xs) -> np.ndarray:
    ok = np.ones(len(xs[0]), bool)
    for x in xs:
        ok &= np.isfinite(x)
    return ok


def col_of(rows: list[dict], key: str) -> np.ndarray:
    return np.array([np.nan if r.get(key) is None else r[key] for r in rows], float)


def wide(x: np.ndarray, ratio: float = 20.0) -> bool:
    x = x[np.isfinite(x) & (x > 0)]
    return len(x) > 1 and x.max() / x.min() > ratio


def plain_log(axis, lo: float, hi: float) -> None:
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


def place_labels(fig, ax, points: list[tuple[float, float, str]], fontsize: float = 7.5) -> None:
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

"""Trimming of cost outliers per group, shared by the DRG weights and the DIP catalogue.

Both compute group means from costs with the outliers of each group left out, and both must
trim the same way, so the rule and its fences live here once: ``none``, ``iqr:K`` (Tukey fences
on linear-interpolated quartiles), ``sdlog:K`` (mean ± K SD of ln cost), ``pct:LO-HI``
(percentiles). A group the rule would empty keeps all its cases.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

__all__ = ["TrimRule", "group_quantiles", "keep_emptied", "trim_mask"]


class TrimRule(NamedTuple):
    """A parsed trimming rule: ``kind`` (none, iqr, sdlog, pct) and its numbers."""

    kind: str
    params: tuple[float, ...]

    @classmethod
    def parse(cls, trim: str) -> TrimRule:
        m = re.fullmatch(r"(none)|(iqr|sdlog):([0-9.]+)|pct:([0-9.]+)-([0-9.]+)", trim)
        if not m:
            raise ValueError(f"trim {trim!r}: use none, iqr:K, sdlog:K or pct:LO-HI")
        if m[1]:
            return cls("none", ())
        if m[2]:
            return cls(m[2], (float(m[3]),))
        lo, hi = float(m[4]), float(m[5])
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"trim {trim!r}: percentiles must satisfy 0 <= LO < HI <= 100")
        return cls("pct", (lo, hi))

    def fences(self, sorted_vals: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) fence per group of group-sorted values (iqr and pct; -inf/inf otherwise;
        NaN for a group without cases)."""
        G = len(counts)
        if self.kind not in ("iqr", "pct"):
            return np.full(G, -np.inf), np.full(G, np.inf)
        qs = (0.25, 0.75) if self.kind == "iqr" else (self.params[0] / 100, self.params[1] / 100)
        q_lo, q_hi = (group_quantiles(sorted_vals, starts, counts, q) for q in qs)
        if self.kind == "iqr":
            return q_lo - self.params[0] * (q_hi - q_lo), q_hi + self.params[0] * (q_hi - q_lo)
        return q_lo, q_hi

    def inside(self, g: np.ndarray, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, G: int) -> np.ndarray:
        """Cases inside their group's fences (``lo``/``hi`` from ``fences``; sdlog computes its own
        from the cases given, which must hold whole groups)."""
        if self.kind == "sdlog":
            lx = np.log(x)
            n = np.bincount(g, minlength=G)
            mu = np.bincount(g, lx, G) / np.maximum(n, 1)
            sd = np.sqrt(np.bincount(g, (lx - mu[g]) ** 2, G) / np.maximum(n - 1, 1))
            # compared in log space, with a hair of tolerance: equal costs must stay in
            return np.abs(lx - mu[g]) <= self.params[0] * sd[g] + 1e-9
        # a relative hair of tolerance: a cost equal to a fence stays in at any scale
        tol = 1e-12 * np.abs(x)
        return (x >= lo[g] - tol) & (x <= hi[g] + tol)


def group_quantiles(sorted_vals: np.ndarray, starts: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    """Per-group quantile with linear interpolation (numpy's default) on group-sorted values."""
    out = np.full(len(counts), np.nan)
    has = counts > 0  # a group without cases in this block has no quantile
    pos = q * (counts[has] - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, counts[has] - 1)
    frac = pos - lo
    out[has] = sorted_vals[starts[has] + lo] * (1 - frac) + sorted_vals[starts[has] + hi] * frac
    return out


def keep_emptied(g: np.ndarray, inside: np.ndarray, G: int) -> tuple[np.ndarray, np.ndarray]:
    """(``inside`` with every case of a group the rule would trim away whole, those groups): a
    rule that would empty a (tiny) group keeps it untrimmed instead."""
    emptied = (np.bincount(g[inside], minlength=G) == 0) & (np.bincount(g, minlength=G) > 0)
    return inside | emptied[g], emptied


def trim_mask(gid: np.ndarray, cost: np.ndarray, rule: TrimRule, G: int) -> np.ndarray:
    """Cases inside their group's fences, for cases in any order (``gid``: group per case)."""
    if rule.kind == "none" or not len(gid):
        return np.ones(len(gid), bool)
    lo = hi = None
    if rule.kind != "sdlog":
        counts = np.bincount(gid, minlength=G)
        order = np.lexsort((cost, gid))
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        lo, hi = rule.fences(cost[order], starts, counts)
    return keep_emptied(gid, rule.inside(gid, cost, lo, hi, G), G)[0]

"""The second pass of an audit: the provider screens (统计筛查), bucket by bucket.

Per case (vectorised per bucket): split admissions (分解住院: the same patient back within the
pack's window, scored by relatedness), low-standard admissions (低标入院), over-long stays
(超长住院), deaths in low-risk groups (低风险组死亡), patient shares far above peers (转嫁费用).
Each count is kept per hospital and per (hospital, department) unit; the league table built from
them (``League.hospitals``, in ``league.py``) compares them with peers: each screen's count
against what its peers (hospitals of the same level, itself left out) or the region's case mix
(severity: indirect standardisation by ADRG) make expected, with a one-sided p-value; a hospital
is flagged when p < alpha / (hospitals screened), so the chance that noise alone flags any
hospital in a screen is at most alpha (Bonferroni). Beside these there: severity drift between
discharge periods (严重程度漂移), secondary diagnoses that alone lift cases far more often than in
the region (升组次要诊断), a severity share far below same-level peers (推诿), and each screen
again per department.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa

from grouper.audit.collect import Collector
from grouper.audit.edits import FINDING_SCHEMA
from grouper.audit.league import DEPT_PREFIX, HOSPITAL_SCHEMA, SCREENS, League, _div, _fit, screen_name

__all__ = ["CASE_CODES", "DEPT_PREFIX", "SCREENS", "screen_name", "HOSPITAL_SCHEMA", "Screens"]

CASE_CODES = {"split": "AS01", "low_standard": "AS02", "long_stay": "AS03", "low_risk_death": "AS04",
              "cost_shift": "AS05"}
_EPOCH = np.datetime64("1970-01-01")


class Screens(League):
    """``cases(buckets)`` yields the per-case findings; ``hospitals()`` is the league table."""

    def __init__(self, col: Collector, dx_names: dict | None = None):
        self.col, pk = col, col.pack
        self.pk = pk
        self.dx_names = dx_names or {}
        nh, npeer, nd = len(col.hosp.names), len(col.peer.names), len(col.drg.names)
        reg = _fit(col.drg_region.a, 1, nd)[0]
        overall = _div(reg[:, 1].sum(), reg[:, 3].sum())
        self.weight = _div(_div(reg[:, 1], reg[:, 3]), overall)
        self.mortality = _div(reg[:, 2], reg[:, 0])
        pd = _fit(col.peer_drg.a, npeer, nd)
        self.mean_cost = _div(pd[..., 1], pd[..., 0])
        self.mean_los = _div(pd[..., 2], pd[..., 0])
        ns = _fit(col.peer_drg_share.a, npeer, nd)[..., 0]
        self.mean_ratio = _div(pd[..., 3], ns)
        nu = len(col.unit_hosp)
        self.n, self.un = np.zeros(nh), np.zeros(nu)
        keys = ("split", "low_standard", "long_stay", "low_risk_death", "low_risk_cases", "low_risk_expected",
                "share_cases", "excess_sum", "excess_sq", "cost_shift")
        self.counts = {k: np.zeros(nh) for k in keys}
        self.ucounts = {k: np.zeros(nu) for k in keys}
        self.split_pairs = 0
        self._h = self._u = np.zeros(0, np.int64)

    def _add(self, name: str, idx, w=1.0) -> None:
        """Count cases ``idx`` (indices or a mask of the bucket) with weights ``w`` per hospital and
        per department unit."""
        h, u = self._h[idx], self._u[idx]
        w = np.broadcast_to(np.asarray(w, float), h.shape)
        self.counts.setdefault(name, np.zeros(len(self.n)))
        self.counts[name] += np.bincount(h, w, minlength=len(self.n))
        ok = u >= 0
        if ok.any():
            self.ucounts.setdefault(name, np.zeros(len(self.un)))
            self.ucounts[name] += np.bincount(u[ok], w[ok], minlength=len(self.un))

    # ------------------------------------------------------------------ cases
    def cases(self, buckets: list[Path]) -> Iterator[pa.Table]:
        for path in buckets:
            with pa.memory_map(str(path)) as src:
                t = pa.ipc.open_file(src).read_all()
            if t.num_rows:
                yield self._bucket(t)

    def _bucket(self, t: pa.Table) -> pa.Table:
        pk, c = self.pk, {n: t[n].to_numpy() for n in t.column_names if n != "case_id"}
        h, peer, drg = c["hospital"], c["peer"], c["drg"]
        self._h, self._u = h, c["unit"]
        los, cost = c["los"], c["cost"]
        self.n += np.bincount(h, minlength=len(self.n))
        if (self._u >= 0).any():
            self.un += np.bincount(self._u[self._u >= 0], minlength=len(self.un))
        out = []
        # split admissions: each patient's stays in admission order; each stay against the three
        # before it (another stay may fall between the two halves), the best-scoring one kept
        order = np.lexsort((c["row"], c["discharge"], c["admit"], c["pkey"]))
        best = np.zeros(len(order))
        first_gap = np.full(len(order), np.inf)  # days since the patient's last discharge (any stay)
        best_a = np.full(len(order), -1)
        for lag in (1, 2, 3):
            a, b = order[:-lag], order[lag:]
            gap = c["admit"][b].astype(np.int64) - c["discharge"][a]
            cand = ((c["pkey"][a] == c["pkey"][b]) & (gap >= 0) & (gap <= pk.split_windows[-1]) & ~c["planned"][b]
                    & (c["admit"][a] > -(2**31)) & (c["admit"][b] > -(2**31)))
            same_adrg = c["adrg"][a] == c["adrg"][b]
            sc = np.where(cand, np.round(0.6 * same_adrg + 0.3 * (~same_adrg & (c["mdc"][a] == c["mdc"][b]))
                                         + 0.2 * (h[a] == h[b]) + 0.1 * (los[a] <= pk.short_first_stay)
                                         + 0.1 * (gap <= pk.split_windows[0]), 6), 0.0)
            better = sc > best[b]
            best[b[better]] = sc[better]
            best_a[b[better]] = a[better]
            back = cand & (gap < first_gap[b])
            first_gap[b[back]] = gap[back]
        for w in pk.split_windows:  # 二次入院: any unplanned readmission within w days
            self._add(f"readmit_{w}", first_gap <= w)
        fb = np.flatnonzero((best >= pk.split_min_score) & (best_a >= 0))
        fa = best_a[fb]
        score = best[fb]
        gap = c["admit"][fb].astype(np.int64) - c["discharge"][fa]
        same_adrg = c["adrg"][fa] == c["adrg"][fb]
        related = np.where(same_adrg, "同一ADRG", np.where(c["mdc"][fa] == c["mdc"][fb], "同一MDC", "不同MDC"))
        self.split_pairs += len(fb)
        self._add("split", fb)
        if len(fb):
            names, drgs = np.array(self.col.hosp.names, object), np.array(self.col.drg.names, object)
            d1 = (_EPOCH + c["discharge"][fa].astype("timedelta64[D]")).astype(str)
            msg = [f"同一患者于 {x} 自 {ha} 出院（住院 {int(l)} 天，{g1}）后 {int(gp)} 天再次入院 {hb}（{g2}），"
                   f"{rel}，疑似分解住院（评分 {sc:.1f}）"
                   for x, ha, l, g1, gp, hb, g2, rel, sc in zip(d1, names[h[fa]], los[fa], drgs[drg[fa]], gap,
                                                                names[h[fb]], drgs[drg[fb]], related, score)]
            out.append(self._findings(t, fb, "split", score, msg))
        ok = drg < len(self.weight)
        mc = np.where(ok, self.mean_cost[peer, np.minimum(drg, len(self.weight) - 1)], np.nan)
        ml = np.where(ok, self.mean_los[peer, np.minimum(drg, len(self.weight) - 1)], np.nan)
        w = self.weight[drg]
        low = (w < pk.low_max_weight) & (los <= pk.low_max_los) & (cost < pk.low_max_cost_ratio * mc)
        self._case_screen(t, out, h, low, "low_standard", lambda i: (
            f"低权重组 {self.col.drg.names[drg[i]]}（权重 {w[i]:.2f}）住院 {int(los[i])} 天，费用 {cost[i]:.0f} 元，"
            f"为同级医院该组均值的 {cost[i] / mc[i]:.0%}，疑似低标入院"))
        long = (los >= pk.long_min_days) | (los > pk.long_los_ratio * ml)
        self._case_screen(t, out, h, long, "long_stay", lambda i: (
            f"住院 {int(los[i])} 天，为同级医院 {self.col.drg.names[drg[i]]} 平均住院日 {ml[i]:.1f} 天的 "
            f"{los[i] / ml[i]:.1f} 倍，超长住院"))
        m = self.mortality[drg]
        low_risk = m < self.pk.death_max_group_mortality
        self._add("low_risk_cases", low_risk)
        self._add("low_risk_expected", low_risk, m[low_risk])
        self._case_screen(t, out, h, low_risk & c["death"], "low_risk_death", lambda i: (
            f"低风险组 {self.col.drg.names[drg[i]]}（全区病死率 {m[i]:.2%}）病例死亡"))
        ratio = c["share"] / np.where(cost > 0, cost, np.nan)
        mr = np.where(ok, self.mean_ratio[peer, np.minimum(drg, len(self.weight) - 1)], np.nan)
        excess = ratio - mr
        has = np.isfinite(excess)
        self._add("share_cases", has)
        self._add("excess_sum", has, excess[has])
        self._add("excess_sq", has, excess[has] ** 2)
        self._case_screen(t, out, h, has & (excess > pk.share_min_excess), "cost_shift", lambda i: (
            f"个人负担 {c['share'][i]:.0f} 元，占费用 {ratio[i]:.0%}，高于同级医院 {self.col.drg.names[drg[i]]} "
            f"均值 {mr[i]:.0%}"))
        return pa.concat_tables(out) if out else FINDING_SCHEMA.empty_table()

    def _case_screen(self, t, out, h, mask, screen, message) -> None:
        idx = np.flatnonzero(mask)
        self._add(screen, idx)
        if len(idx):
            out.append(self._findings(t, idx, screen, np.ones(len(idx)), [message(i) for i in idx]))

    def _findings(self, t, idx, screen, score, msg) -> pa.Table:
        sel = pa.array(idx)
        names = np.array(self.col.hosp.names, object)[t["hospital"].take(sel).to_numpy()]
        return pa.table({"row": t["row"].take(sel), "case_id": t["case_id"].take(sel),
                         "hospital": pa.array(names.tolist(), pa.string()),
                         "code": pa.array([CASE_CODES[screen]] * len(idx), pa.string()),
                         "severity": pa.array(["warning"] * len(idx), pa.string()),
                         "item": pa.array([screen] * len(idx), pa.string()), "score": pa.array(score, pa.float64()),
                         "message": pa.array(msg, pa.string())}, schema=FINDING_SCHEMA)

    # ------------------------------------------------------------------ hospitals

"""The second pass of an audit: the provider screens (统计筛查), bucket by bucket.

Per case (vectorised per bucket): split admissions (分解住院: the same patient back within the
pack's window, scored by relatedness), low-standard admissions (低标入院), over-long stays
(超长住院), deaths in low-risk groups (低风险组死亡), patient shares far above peers (转嫁费用).
Per hospital: each screen's count against what its peers (hospitals of the same level, itself
left out) or the region's case mix (severity: indirect standardisation by ADRG) make expected,
with a one-sided p-value; a hospital is flagged when p < alpha / (hospitals screened), so the
chance that noise alone flags any hospital in a screen is at most alpha (Bonferroni).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa

from grouper.audit.collect import Collector
from grouper.audit.edits import FINDING_SCHEMA
from grouper.audit.stats import normal_upper, peer_percentile, poisson_upper

__all__ = ["CASE_CODES", "SCREENS", "screen_name", "HOSPITAL_SCHEMA", "Screens"]

SCREENS = {"coding_quality": "病案质量（有错误级审核问题的病例比例）", "upcoding": "高套分组（CC/MCC 比例）", "split": "分解住院（二次入院）", "low_standard": "低标入院",
           "long_stay": "超长住院", "low_risk_death": "低风险组死亡", "cost_shift": "转嫁费用（个人负担比例）"}
CASE_CODES = {"split": "AS01", "low_standard": "AS02", "long_stay": "AS03", "low_risk_death": "AS04",
              "cost_shift": "AS05"}
HOSPITAL_SCHEMA = pa.schema([("screen", pa.string()), ("screen_name", pa.string()), ("hospital", pa.string()),
                             ("peer", pa.string()), ("cases", pa.int64()), ("observed", pa.float64()),
                             ("expected", pa.float64()), ("value", pa.float64()), ("expected_value", pa.float64()),
                             ("peer_median", pa.float64()), ("percentile", pa.float64()), ("z", pa.float64()),
                             ("p_value", pa.float64()), ("flagged", pa.bool_()), ("rank", pa.int32())])
_EPOCH = np.datetime64("1970-01-01")


def screen_name(screen: str) -> str:
    """The Chinese name of a screen (``readmit_<days>``: the 二次入院 rate within that many days)."""
    if screen.startswith("readmit_"):
        return f"二次入院率（{screen[8:]}天内，非计划）"
    return SCREENS[screen]


def _fit(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.zeros((rows, cols) + a.shape[2:])
    r, c = min(rows, a.shape[0]), min(cols, a.shape[1])
    out[:r, :c] = a[:r, :c]
    return out


def _div(a, b):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


class Screens:
    """``cases(buckets)`` yields the per-case findings; ``hospitals()`` is the league table."""

    def __init__(self, col: Collector):
        self.col, pk = col, col.pack
        self.pk = pk
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
        self.n = np.zeros(nh)
        self.counts = {k: np.zeros(nh) for k in ("split", "low_standard", "long_stay", "low_risk_death",
                                                 "low_risk_cases", "low_risk_expected", "share_cases",
                                                 "excess_sum", "excess_sq", "cost_shift")}
        self.split_pairs = 0

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
        los, cost = c["los"], c["cost"]
        np.add.at(self.n, h, 1)
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
            np.add.at(self.counts.setdefault(f"readmit_{w}", np.zeros(len(self.n))), h[first_gap <= w], 1)
        fb = np.flatnonzero((best >= pk.split_min_score) & (best_a >= 0))
        fa = best_a[fb]
        score = best[fb]
        gap = c["admit"][fb].astype(np.int64) - c["discharge"][fa]
        same_adrg = c["adrg"][fa] == c["adrg"][fb]
        related = np.where(same_adrg, "同一ADRG", np.where(c["mdc"][fa] == c["mdc"][fb], "同一MDC", "不同MDC"))
        self.split_pairs += len(fb)
        np.add.at(self.counts["split"], h[fb], 1)
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
        np.add.at(self.counts["low_risk_cases"], h[low_risk], 1)
        np.add.at(self.counts["low_risk_expected"], h[low_risk], m[low_risk])
        self._case_screen(t, out, h, low_risk & c["death"], "low_risk_death", lambda i: (
            f"低风险组 {self.col.drg.names[drg[i]]}（全区病死率 {m[i]:.2%}）病例死亡"))
        ratio = c["share"] / np.where(cost > 0, cost, np.nan)
        mr = np.where(ok, self.mean_ratio[peer, np.minimum(drg, len(self.weight) - 1)], np.nan)
        excess = ratio - mr
        has = np.isfinite(excess)
        np.add.at(self.counts["share_cases"], h[has], 1)
        np.add.at(self.counts["excess_sum"], h[has], excess[has])
        np.add.at(self.counts["excess_sq"], h[has], excess[has] ** 2)
        self._case_screen(t, out, h, has & (excess > pk.share_min_excess), "cost_shift", lambda i: (
            f"个人负担 {c['share'][i]:.0f} 元，占费用 {ratio[i]:.0%}，高于同级医院 {self.col.drg.names[drg[i]]} "
            f"均值 {mr[i]:.0%}"))
        return pa.concat_tables(out) if out else FINDING_SCHEMA.empty_table()

    def _case_screen(self, t, out, h, mask, screen, message) -> None:
        idx = np.flatnonzero(mask)
        np.add.at(self.counts[screen], h[idx], 1)
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
    def hospitals(self) -> pa.Table:
        col, pk = self.col, self.pk
        nh = len(col.hosp.names)
        peer = np.array([col.hosp_peer.get(i, 0) for i in range(nh)])
        errors = _fit(col.coding_errors.a, nh, 1)[:, 0, 0]
        parts = [self._rate("coding_quality", peer, errors, self.n), self._upcoding(peer)]
        for screen in ("split", *(f"readmit_{w}" for w in pk.split_windows), "low_standard", "long_stay"):
            parts.append(self._rate(screen, peer, self.counts.get(screen, np.zeros(nh)), self.n))
        lr = self.counts["low_risk_cases"]
        parts.append(self._table("low_risk_death", peer, lr, self.counts["low_risk_death"],
                                 self.counts["low_risk_expected"], rank_on_excess=True))
        if col.has_share:
            parts.append(self._cost_shift(peer))
        return pa.concat_tables(parts)

    def _upcoding(self, peer) -> pa.Table:
        nh, na = len(self.col.hosp.names), len(self.col.adrg.names)
        g = _fit(self.col.hosp_adrg.a, nh, na)
        n_ha, s_ha = g[..., 0], g[..., 1]
        n_a, s_a = n_ha.sum(0), s_ha.sum(0)
        rest = n_a[None, :] - n_ha
        p = _div(s_a[None, :] - s_ha, rest)  # the other hospitals' share, per ADRG
        use = rest > 0
        p = np.where(use, p, 0.0)
        e = (n_ha * p * use).sum(1)
        v = (n_ha * p * (1 - p) * use).sum(1)
        o = (s_ha * use).sum(1)
        return self._table("upcoding", peer, (n_ha * use).sum(1), o, e, var=v, rank_on_excess=True)

    def _rate(self, screen, peer, o, n) -> pa.Table:
        o_peer = np.array([o[peer == q].sum() for q in peer])
        n_peer = np.array([n[peer == q].sum() for q in peer])
        rate = _div(o_peer - o, n_peer - n)
        region = _div(o.sum() - o, n.sum() - n)
        rate = np.where(np.isfinite(rate), rate, region)
        return self._table(screen, peer, n, o, n * np.nan_to_num(rate))

    def _cost_shift(self, peer) -> pa.Table:
        n = self.counts["share_cases"]
        s, q = self.counts["excess_sum"], self.counts["excess_sq"]
        sd = np.sqrt(max(_div(q.sum(), n.sum()) - _div(s.sum(), n.sum()) ** 2, 1e-12))
        mean = _div(s, n)
        z = mean / (sd / np.sqrt(np.maximum(n, 1)))
        return self._table("cost_shift", peer, n, self.counts["cost_shift"], np.zeros_like(n), value=mean,
                           expected_value=np.zeros_like(n), z=z)

    def _table(self, screen, peer, n, o, e, *, var=None, value=None, expected_value=None, z=None,
               rank_on_excess: bool = False) -> pa.Table:
        """One screen's rows: the percentile is of the value among peers, or (standardised screens,
        ``rank_on_excess``) of the value over its expectation from the case mix."""
        pk = self.pk
        value = _div(o, n) if value is None else value
        expected_value = _div(e, n) if expected_value is None else expected_value
        if z is None:
            z = _div(o - e, np.sqrt(var if var is not None else e))
            pval = normal_upper(np.where(np.isfinite(z), z, -np.inf)) if var is not None else poisson_upper(o, e)
            if var is not None:  # continuity correction for a count
                pval = normal_upper(np.where(np.isfinite(z), _div(o - e - 0.5, np.sqrt(var)), -np.inf))
        else:
            pval = normal_upper(np.where(np.isfinite(z), z, -np.inf))
        screened = n >= pk.min_cases
        m = max(1, int(screened.sum()))
        flagged = screened & (pval < pk.alpha / m) & (np.nan_to_num(value) > np.nan_to_num(expected_value))
        if screen == "cost_shift":  # practical significance: a mean excess share worth an audit
            flagged &= np.nan_to_num(value) >= pk.share_min_mean_excess
        else:
            flagged &= o >= pk.min_ratio * e
        v = np.nan_to_num(value - expected_value if rank_on_excess else value, nan=-np.inf)
        pct = np.where(screened, peer_percentile(np.where(screened, v, -np.inf), peer), np.nan)
        med = np.array([np.median(value[(peer == q) & screened]) if ((peer == q) & screened).any() else np.nan
                        for q in peer])
        rank_key = np.where(screened, np.nan_to_num(z, nan=-np.inf), -np.inf)
        rank = np.empty(len(n), np.int32)
        rank[np.argsort(-rank_key, kind="stable")] = np.arange(1, len(n) + 1)
        nh = len(n)
        return pa.table({"screen": [screen] * nh, "screen_name": [screen_name(screen)] * nh,
                         "hospital": self.col.hosp.names[:nh], "peer": [self.col.peer.names[q] for q in peer],
                         "cases": n.astype(np.int64), "observed": o, "expected": e, "value": value,
                         "expected_value": expected_value, "peer_median": med, "percentile": pct, "z": z,
                         "p_value": pval, "flagged": flagged, "rank": rank}, schema=HOSPITAL_SCHEMA)

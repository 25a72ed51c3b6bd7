"""The league table of an audit (one row per screen and hospital, or department, or code): each
screen's count against what peers (hospitals of the same level, itself left out) or the region's
case mix (indirect standardisation by ADRG) make expected, with a one-sided p-value, the peers'
median and the percentile; flagged when p < alpha / (units screened) and the excess matters in
practice; a Chinese explanation naming the codes for every flag. The counts come from the
first pass (``collect``) and the per-case pass (``screens``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from grouper.audit.collect import Grid, Pairs, period_label
from grouper.audit.stats import normal_upper, peer_percentile, poisson_upper

__all__ = ["DEPT_PREFIX", "HOSPITAL_SCHEMA", "SCREENS", "League", "screen_name"]

SCREENS = {"coding_quality": "病案质量（有错误级审核问题的病例比例）", "upcoding": "高套分组（CC/MCC 比例）", "split": "分解住院（二次入院）", "low_standard": "低标入院",
           "long_stay": "超长住院", "low_risk_death": "低风险组死亡", "cost_shift": "转嫁费用（个人负担比例）",
           "drift": "严重程度漂移（标化 CC/MCC 比例同比上升）", "lifting_dx": "升组次要诊断（唯一升组依据的诊断频率）",
           "avoidance": "推诿（标化 CC/MCC 比例低于同级）"}
DEPT_PREFIX = "dept_"  # department-level rows: the same screen per (hospital, department)
HOSPITAL_SCHEMA = pa.schema([("screen", pa.string()), ("screen_name", pa.string()), ("hospital", pa.string()),
                             ("peer", pa.string()), ("cases", pa.int64()), ("observed", pa.float64()),
                             ("expected", pa.float64()), ("value", pa.float64()), ("expected_value", pa.float64()),
                             ("peer_median", pa.float64()), ("percentile", pa.float64()), ("z", pa.float64()),
                             ("p_value", pa.float64()), ("flagged", pa.bool_()), ("rank", pa.int32()),
                             ("department", pa.string()), ("item", pa.string()), ("message", pa.string())])


def screen_name(screen: str) -> str:
    """The Chinese name of a screen (``readmit_<days>``: the 二次入院 rate within that many days;
    ``dept_<screen>``: that screen per department)."""
    if screen.startswith(DEPT_PREFIX):
        return "科室：" + screen_name(screen[len(DEPT_PREFIX):])
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


class _Axis:
    """What a screen compares: hospitals, or (hospital, department) units. ``peer``: the peer
    group of each unit (hospital: its level; department: level and department code);
    ``fallback``: a wider group used when a unit has no peers (department: the same code at any
    level; hospital: all)."""

    def __init__(self, prefix: str, hospital: list, department: list | None, peer: np.ndarray, peer_label: list,
                 fallback: np.ndarray):
        self.prefix, self.hospital, self.department = prefix, hospital, department
        self.peer, self.peer_label, self.fallback = peer, peer_label, fallback

    def label(self, i: int) -> str:
        return self.hospital[i] + (f" {self.department[i] or '（未填）'}科室" if self.department is not None else "")


class _Std:
    """A standardised severity count: per unit totals (n, o, e, v, v_est) and per (unit, ADRG)
    pair its excess and cases, sorted by unit so that one unit's pairs are a slice."""

    def __init__(self, u, a, ex, cases):
        order = np.argsort(u, kind="stable")
        self.u, self.a, self.ex, self.cases = u[order], a[order], ex[order], cases[order]
        self.n = self.o = self.e = self.v = self.v_est = np.zeros(0)

    def of(self, i: int) -> slice:
        return slice(int(np.searchsorted(self.u, i, "left")), int(np.searchsorted(self.u, i, "right")))

    def per_pair(self, per_unit: np.ndarray) -> np.ndarray:
        return per_unit[self.u]


class League:
    """``hospitals()``: the league table, from the collector's totals (``self.col``) and the
    per-case counts of the second pass (``self.counts`` per hospital, ``self.ucounts`` per unit)."""

    def axes(self) -> tuple[_Axis, _Axis | None]:
        """The hospital axis, and the department axis when the input had a department column."""
        col = self.col
        nh = len(col.hosp.names)
        peer = np.array([col.hosp_peer.get(i, 0) for i in range(nh)], np.int64)
        hax = _Axis("", col.hosp.names[:nh], None, peer, [col.peer.names[q] for q in peer], np.zeros(nh, np.int64))
        if not col.unit_hosp:
            return hax, None
        uh, ud = np.array(col.unit_hosp, np.int64), np.array(col.unit_dept, np.int64)
        _, upeer = np.unique(np.c_[peer[uh], ud], axis=0, return_inverse=True)
        dnames = [col.dept.names[d] for d in ud]
        uax = _Axis(DEPT_PREFIX, [col.hosp.names[i] for i in uh], dnames, upeer.reshape(-1).astype(np.int64),
                    [f"{col.peer.names[peer[i]]}/{d or '-'}" for i, d in zip(uh, dnames)], ud)
        return hax, uax

    def hospitals(self) -> pa.Table:
        col = self.col
        nh, nu = len(col.hosp.names), len(col.unit_hosp)
        hax, uax = self.axes()
        parts = self._screens(hax, self.counts, self.n, _fit(col.coding_errors.a, nh, 1)[:, 0, 0], col.hosp_adrg,
                              col.period_adrg, lifting=True)
        if uax is not None:  # the same screens per (hospital, department)
            parts += self._screens(uax, self.ucounts, self.un, _fit(col.unit_errors.a, nu, 1)[:, 0, 0], col.unit_adrg,
                                   col.period_unit_adrg, lifting=False)
        return pa.concat_tables(parts)

    def _screens(self, axis: _Axis, counts: dict, n: np.ndarray, errors: np.ndarray, adrg_sums, period_sums: dict,
                 lifting: bool) -> list[pa.Table]:
        """Every screen over one axis (hospitals, or (hospital, department) units), in report order;
        the lifting screen (per hospital and code) on the hospital axis only."""
        pk = self.pk
        parts = [self._rate("coding_quality", axis, errors, n), self._upcoding(axis, adrg_sums)]
        upcoders = self.last_flagged
        for screen in ("split", *(f"readmit_{w}" for w in pk.split_windows), "low_standard", "long_stay"):
            parts.append(self._rate(screen, axis, counts.get(screen, np.zeros(len(n))), n))
        parts.append(self._table("low_risk_death", axis, counts["low_risk_cases"], counts["low_risk_death"],
                                 counts["low_risk_expected"], rank_on_excess=True))
        if self.col.has_share:
            parts.append(self._cost_shift(axis, counts))
        drift = self._drift(axis, period_sums)
        if drift:  # a unit whose severity rose is no reference for avoidance either
            upcoders = upcoders | self.last_flagged
        parts += drift
        if lifting:
            parts.append(self._lifting(axis))
        parts.append(self._avoidance(axis, adrg_sums, upcoders))
        return parts

    def _standardised(self, pairs, axis: _Axis, by_peer: bool, exclude: np.ndarray | None = None) -> "_Std":
        """Per unit: cases, severe cases, expected, variance (and that of the expectation) in ADRGs
        with a CC/MCC split, the expected share per ADRG from the other units (``by_peer``: of the
        same peer group, falling back to all others where the peers have no case of the ADRG).
        ``pairs``: (unit, ADRG) sums of (cases, severe), sparse (a dense grid is converted)."""
        nu = len(axis.hospital)
        if isinstance(pairs, Grid):
            pairs = Pairs.of_grid(pairs.a)
        u, a, vals = pairs.items()
        inside = u < nu
        u, a, vals = u[inside], a[inside], vals[inside]
        n, s = vals[:, 0], vals[:, 1]
        na = int(a.max(initial=-1)) + 1
        keep = np.ones(nu, bool) if exclude is None or not by_peer else ~exclude
        k = keep[u]  # units in ``exclude`` (flagged for upcoding) are no reference: their excess would
        # make honest peers look deficient
        n_a, s_a = np.bincount(a, n * k, minlength=na), np.bincount(a, s * k, minlength=na)
        rest = n_a[a] - n * k
        p = _div(s_a[a] - s * k, rest)  # the other units' share, per ADRG
        use = rest > 0
        if by_peer:
            g, ginv = np.unique(axis.peer[u].astype(np.int64) * (na + 1) + a, return_inverse=True)
            ginv = ginv.reshape(-1)
            npg, spg = np.bincount(ginv, n * k, minlength=len(g)), np.bincount(ginv, s * k, minlength=len(g))
            prest = npg[ginv] - n * k
            p = np.where(prest > 0, _div(spg[ginv] - s * k, prest), p)
            rest = np.where(prest > 0, prest, rest)
        p = np.where(use, p, 0.0)
        w = use.astype(float)
        out = _Std(u, a, (s - n * p) * w, n * w)
        out.n = np.bincount(u, n * w, minlength=nu)
        out.o = np.bincount(u, s * w, minlength=nu)
        out.e = np.bincount(u, n * p * w, minlength=nu)
        out.v = np.bincount(u, n * p * (1 - p) * w, minlength=nu)
        # the variance of the expectation itself (each p estimated from the other units' cases)
        out.v_est = np.bincount(u, n ** 2 * p * (1 - p) * np.where(use, _div(1.0, rest), 0.0), minlength=nu)
        return out

    def _top_adrgs(self, std: "_Std", i: int, excess: np.ndarray | None = None, sign: float = 1.0) -> str:
        """The three ADRGs of unit ``i`` with the largest excess (``sign`` -1: deficit)."""
        at = std.of(i)
        x = sign * (std.ex if excess is None else excess)[at]
        top = np.argsort(-x, kind="stable")[:3]
        return "、".join(f"{self.col.adrg.names[std.a[at][t]]}（{x[t] * sign:+.1f} 例）" for t in top if x[t] > 0)

    def _upcoding(self, axis: _Axis, grid) -> pa.Table:
        st = self._standardised(grid, axis, False)
        n, o, e = st.n, st.o, st.e
        return self._table("upcoding", axis, n, o, e, var=st.v, rank_on_excess=True, explain=lambda i: (
            f"CC/MCC 比例 {o[i] / n[i]:.1%}，按全区各 ADRG 比例标化的期望为 {e[i] / n[i]:.1%}（多 {o[i] - e[i]:.0f} 例），"
            f"主要在 {self._top_adrgs(st, i)}；可疑高套分组，病例见 AE95"))

    def _avoidance(self, axis: _Axis, grid, upcoders: np.ndarray) -> pa.Table:
        """推诿: fewer severe (CC/MCC) cases within the same ADRGs than same-level peers have (those
        flagged for upcoding or drift left out of the reference); the lower tail of the standardised count
        (continuity-corrected normal, with the variance of the peers' shares)."""
        st = self._standardised(grid, axis, True, upcoders)
        n, o, e = st.n, st.o, st.e
        sd = np.sqrt(st.v + st.v_est)
        z = _div(e - o, sd)
        pval = normal_upper(np.where(np.isfinite(z), _div(e - o - 0.5, sd), -np.inf))
        return self._table("avoidance", axis, n, o, e, z=z, pval=pval, lower=True,
                           floor=e >= self.pk.avoid_min_ratio * o, explain=lambda i: (
                               f"同一 ADRG 内 CC/MCC 病例比例 {o[i] / n[i]:.1%}，低于同级医院比例标化的期望 "
                               f"{e[i] / n[i]:.1%}（少 {e[i] - o[i]:.0f} 例），主要在 {self._top_adrgs(st, i, sign=-1.0)}；"
                               f"可能推诿重症（高费用）患者，或漏编并发症/合并症"))

    def _drift(self, axis: _Axis, grids: dict) -> list[pa.Table]:
        """严重程度漂移: the last discharge period against the one before, each standardised by the
        other units' share per ADRG in that period; expected: the current period's standardised
        count plus the previous period's excess share (so a unit that always codes more severely
        than the region is not flagged, only one whose excess grew)."""
        size = {q: g.total() for q, g in grids.items()}
        periods = [q for q in sorted(grids) if size[q] >= self.pk.drift_min_period_share * max(size.values())]
        if len(periods) < 2:
            return []
        q0, q1 = periods[-2:]
        s0, s1 = self._standardised(grids[q0], axis, False), self._standardised(grids[q1], axis, False)
        n0, o0, e0, v0, w0 = s0.n, s0.o, s0.e, s0.v, s0.v_est
        n1, o1, e1, v1, w1 = s1.n, s1.o, s1.e, s1.v, s1.v_est
        d0 = _div(o0 - e0, n0)
        expected = e1 + n1 * np.nan_to_num(d0)
        var = v1 + w1 + (v0 + w0) * np.nan_to_num(_div(n1, n0)) ** 2
        change = _div(o1 - expected, n1)
        per = self.pk.drift_period
        l0, l1 = period_label(q0, per), period_label(q1, per)

        def grown(i):  # per ADRG: this period's excess beyond the earlier excess share
            return self._top_adrgs(s1, i, s1.ex - s1.cases * np.nan_to_num(s1.per_pair(d0)))
        return [self._table("drift", axis, n1, o1, expected, var=var, rank_on_excess=True,
                            screened=np.minimum(n0, n1) >= self.pk.min_cases,
                            floor=np.nan_to_num(change) >= self.pk.drift_min_change, item=f"{l0}→{l1}", explain=lambda i: (
                                f"{l1} 标化 CC/MCC 比例较 {l0} 上升 {change[i]:.1%}（{l0}: {o0[i] / n0[i]:.1%}，"
                                f"期望 {e0[i] / n0[i]:.1%}；{l1}: {o1[i] / n1[i]:.1%}，期望 {e1[i] / n1[i]:.1%}），"
                                f"上升主要在 {grown(i)}；病例见 AE95"))]

    def _lifting(self, axis: _Axis) -> pa.Table:
        """升组次要诊断: per hospital and code, the cases that code alone lifts into a CC/MCC split
        (AE95) against the other hospitals' rate of that code per ADRG, applied to this hospital's
        ADRG mix (indirect standardisation); Poisson upper tail, Bonferroni over hospitals x codes."""
        col, pk = self.col, self.pk
        nh, na, nc = len(axis.hospital), len(col.adrg.names), len(col.lift_code.names)
        kh, kj, kv = col.lifts.items()
        if not len(kh) or nh == 0:
            return HOSPITAL_SCHEMA.empty_table()
        n_ha = _fit(col.hosp_adrg.a, nh, na)[..., 0]
        n_a = n_ha.sum(0)
        rest = n_a[None, :] - n_ha
        wt = _div(n_ha, rest)
        wt = np.where(rest > 0, wt, 0.0)
        key = np.c_[kh, kj >> 20, kj & (2**20 - 1)]  # hospital, ADRG, code
        cnt = kv[:, 0]
        lac = np.bincount(key[:, 1] * nc + key[:, 2], cnt, minlength=na * nc).reshape(na, nc)
        e = wt @ lac  # sum_a n_ha L_ac / rest_a, minus the hospital's own lifts below
        e -= np.bincount(key[:, 0] * nc + key[:, 2], wt[key[:, 0], key[:, 1]] * cnt, minlength=nh * nc).reshape(nh, nc)
        e = np.where(e < 1e-9, 0.0, e)  # the own lifts taken back out leave rounding, not a count
        counted = rest[key[:, 0], key[:, 1]] > 0  # ADRGs only this hospital has give no expectation
        flat = key[:, 0] * nc + key[:, 2]
        o = np.bincount(flat[counted], cnt[counted], minlength=nh * nc).reshape(nh, nc)
        # the other hospitals' lifts in the ADRGs this one has: the expectation rests on them
        r = ((n_ha > 0) & (rest > 0)).astype(float) @ lac
        r -= o
        r = np.maximum(r, 0.0)
        # under equal rates, the hospital's count given every lift of the code in the same ADRGs
        # (its own included) is binomial with mean sum_a n_ha L_ac / N_a; its upper tail is bounded
        # by the Poisson's of that mean, which stays honest where few lifts elsewhere make the
        # leave-one-out expectation uncertain (or zero: a code no other hospital uses)
        pooled = np.where(rest > 0, _div(n_ha, n_a[None, :]), 0.0) @ lac
        n = (n_ha * (rest > 0)).sum(1)
        hi, ci = np.nonzero(o > 0)
        screened_h = n >= pk.min_cases
        tests = max(1, int(screened_h.sum()) * nc)
        rate = _div(o, n[:, None])
        # peers: hospitals of the same level, screened; the percentile and median of the code's rate
        pct, med = np.full(len(hi), np.nan), np.full(len(hi), np.nan)
        for q in np.unique(axis.peer):
            members = np.flatnonzero((axis.peer == q) & screened_h)
            rows = np.flatnonzero(axis.peer[hi] == q)
            if not len(members) or not len(rows):
                continue
            vq = np.nan_to_num(rate[members])  # members x codes
            keyed = np.sort((np.arange(nc)[None, :] * 10.0 + vq).ravel())
            mine = ci[rows] * 10.0 + np.nan_to_num(rate[hi[rows], ci[rows]])
            at_or_below = np.searchsorted(keyed, mine, "right") - np.searchsorted(keyed, ci[rows] * 10.0, "left")
            pct[rows] = np.where(screened_h[hi[rows]], 100.0 * at_or_below / len(members), np.nan)
            med[rows] = np.median(vq, axis=0)[ci[rows]]
        oo, ee, rr = o[hi, ci], e[hi, ci], r[hi, ci]
        pval = poisson_upper(oo, np.nan_to_num(pooled[hi, ci]))
        z = _div(oo - ee, np.sqrt(ee + _div(ee ** 2, np.maximum(rr, 1.0))))
        codes = [col.lift_code.names[c] for c in ci]

        def explain(i):
            h, c = hi[i], ci[i]
            at = np.flatnonzero((key[:, 0] == h) & (key[:, 2] == c))
            by = sorted(zip(cnt[at].astype(int).tolist(), key[at, 1].tolist()), reverse=True)[:3]
            code = codes[i]
            return (f"次要诊断 {code} {self.dx_names.get(code, '')} 在 {axis.hospital[h]} 是 {oo[i]:.0f} 例病例进入 "
                    "CC/MCC 细分组的唯一依据，" + (f"按全区同 ADRG 比例期望 {ee[i]:.1f} 例（{oo[i] / ee[i]:.1f} 倍）"
                                                  if ee[i] > 0 else "全区其他医院同 ADRG 未见此诊断升组") + "，"
                    f"主要在 {'、'.join(f'{col.adrg.names[a]}（{k} 例）' for k, a in by)}；请核查该诊断的病历依据，病例见 AE95")

        sub = _Axis("", [axis.hospital[h] for h in hi], None, axis.peer[hi], [axis.peer_label[h] for h in hi],
                    np.zeros(len(hi), np.int64))
        return self._table("lifting_dx", sub, n[hi], oo, ee, z=z, pval=pval, by_p=True,
                           screened=screened_h[hi], tests=tests,
                           floor=(oo >= pk.lift_min_ratio * ee) & (oo >= pk.lift_min_cases), item=codes,
                           percentile=pct, peer_median=med, explain=explain)

    def _rate(self, screen, axis: _Axis, o, n) -> pa.Table:
        """A count against the peers' rate (itself left out). The p-value is conditional on all
        events of the unit and its peers (o + r): under equal rates the unit's part is binomial
        with p = n / (n + peers' cases), its upper tail bounded by the Poisson's of that mean; so
        a small peer group with few events (an uncertain rate) does not make noise significant."""
        peer = axis.peer
        o_peer, n_peer = np.bincount(peer, o)[peer], np.bincount(peer, n)[peer]
        r, rest = o_peer - o, n_peer - n
        if axis.department is not None:  # the same department at any level
            fb = axis.fallback
            o_fb, n_fb = np.bincount(fb, o)[fb], np.bincount(fb, n)[fb]
            none = ~(rest > 0)
            r, rest = np.where(none, o_fb - o, r), np.where(none, n_fb - n, rest)
        none = ~(rest > 0)
        r, rest = np.where(none, o.sum() - o, r), np.where(none, n.sum() - n, rest)  # the region
        rate = _div(r, rest)
        pval = poisson_upper(o, np.nan_to_num((o + r) * _div(n, n + rest)))
        e = n * np.nan_to_num(rate)
        return self._table(screen, axis, n, o, e, z=_div(o - e, np.sqrt(e)), pval=pval)

    def _cost_shift(self, axis: _Axis, counts: dict) -> pa.Table:
        n = counts["share_cases"]
        s, q = counts["excess_sum"], counts["excess_sq"]
        sd = np.sqrt(max(_div(q.sum(), n.sum()) - _div(s.sum(), n.sum()) ** 2, 1e-12))
        mean = _div(s, n)
        z = mean / (sd / np.sqrt(np.maximum(n, 1)))
        return self._table("cost_shift", axis, n, counts["cost_shift"], np.zeros_like(n), value=mean,
                           expected_value=np.zeros_like(n), z=z,
                           floor=np.nan_to_num(mean) >= self.pk.share_min_mean_excess)

    def _table(self, screen, axis: _Axis, n, o, e, *, var=None, value=None, expected_value=None, z=None, pval=None,
               rank_on_excess: bool = False, lower: bool = False, floor=None, screened=None, tests=None, item=None,
               percentile=None, peer_median=None, explain=None, by_p: bool = False) -> pa.Table:
        """One screen's rows: the percentile is of the value among peers, or (standardised screens,
        ``rank_on_excess``) of the value over its expectation from the case mix; ``lower``: a
        deficit is suspicious (the percentile is of the deficit). ``floor``: the practical
        significance a flag needs besides p (default observed >= min_ratio x expected);
        ``tests``: the Bonferroni count (default the units screened); ``by_p``: ranked by p, not z
        (where rare events make z meaningless)."""
        pk = self.pk
        peer = axis.peer
        value = _div(o, n) if value is None else value
        expected_value = _div(e, n) if expected_value is None else expected_value
        if z is None:
            z = _div(o - e, np.sqrt(var if var is not None else e))
            pval = normal_upper(np.where(np.isfinite(z), z, -np.inf)) if var is not None else poisson_upper(o, e)
            if var is not None:  # continuity correction for a count
                pval = normal_upper(np.where(np.isfinite(z), _div(o - e - 0.5, np.sqrt(var)), -np.inf))
        elif pval is None:
            pval = normal_upper(np.where(np.isfinite(z), z, -np.inf))
        screened = n >= pk.min_cases if screened is None else screened
        m = max(1, int(screened.sum())) if tests is None else tests
        above = np.nan_to_num(expected_value) > np.nan_to_num(value) if lower else \
            np.nan_to_num(value) > np.nan_to_num(expected_value)
        flagged = screened & (pval < pk.alpha / m) & above
        flagged &= o >= pk.min_ratio * e if floor is None else floor
        if percentile is None:
            v = expected_value - value if lower else (value - expected_value if rank_on_excess else value)
            v = np.nan_to_num(v, nan=-np.inf)
            percentile = np.where(screened, peer_percentile(np.where(screened, v, -np.inf), peer), np.nan)
        if peer_median is None:  # once per peer group
            peer_median = np.full(len(n), np.nan)
            for q in np.unique(peer):
                at = peer == q
                if (at & screened).any():
                    peer_median[at] = np.median(value[at & screened])
        # z rounded: sums taken in another order (other batches or buckets) must not reorder ties
        rank_key = np.where(screened, np.round(np.nan_to_num(z, nan=-np.inf), 9), -np.inf)
        second = np.zeros(len(n))
        if by_p:
            rank_key, second = np.where(screened, np.round(-np.log10(np.maximum(pval, 1e-300)), 9), -np.inf), rank_key
        rank = np.empty(len(n), np.int32)
        nh = len(n)
        items = item if isinstance(item, list) else [item] * nh
        many = axis.department is not None or isinstance(item, list)  # several rows per hospital
        if many:  # ties by name, not by the order units were met in (which depends on the batches)
            by = np.lexsort((np.array([x or "" for x in items], object).astype(str),
                             np.array(axis.department or [""] * nh, object).astype(str),
                             np.array(axis.hospital[:nh], object).astype(str), -second, -rank_key))
        else:
            by = np.argsort(-rank_key, kind="stable")
        rank[by] = np.arange(1, len(n) + 1)
        message = [None] * nh
        for i in np.flatnonzero(flagged).tolist():
            detail = explain(i) if explain is not None else (
                f"指标值 {value[i]:.4f}，期望 {expected_value[i]:.4f}（观察 {o[i]:.0f}，期望 {e[i]:.1f}）")
            message[i] = (f"{axis.label(i)} {screen_name(axis.prefix + screen)}：{detail}；同级百分位 "
                          f"{percentile[i]:.0f}，" + (f"z={z[i]:.2f}，" if np.isfinite(z[i]) else "") + f"p={pval[i]:.2g}")
        self.last_flagged = flagged  # in unit order (the table may be sorted by name below)
        t = pa.table({"screen": [axis.prefix + screen] * nh, "screen_name": [screen_name(axis.prefix + screen)] * nh,
                         "hospital": axis.hospital[:nh], "peer": axis.peer_label[:nh],
                         "cases": n.astype(np.int64), "observed": o, "expected": e, "value": value,
                         "expected_value": expected_value, "peer_median": peer_median, "percentile": percentile,
                         "z": z, "p_value": pval, "flagged": flagged, "rank": rank,
                         "department": axis.department if axis.department is not None else [None] * nh,
                         "item": items, "message": message}, schema=HOSPITAL_SCHEMA)
        return t.sort_by([("hospital", "ascending"), ("department", "ascending"), ("item", "ascending")]) if many else t


"""Hospital evaluation indices over grouped cases: CMI, cost and time consumption, risk mortality.

The indices of the CHS-DRG hospital evaluation (医疗服务能力、效率与安全评价). For a hospital h
and a DRG g, with n cases, e and t the hospital's mean cost and length of stay in g, and E and T
the means of g over every hospital in the data (the peer / regional means):

- DRG count (DRG 组数): groups with at least one case, the breadth of services;
- total weight TW = Σ_g RW_g·n_g and CMI = TW / Σ_g n_g, how heavy the case mix is;
- cost consumption index (费用消耗指数) Σ_g (e_g/E_g)·n_g / Σ_g n_g and time consumption index
  (时间消耗指数), the same with t and T: 1 is the regional level for the same case mix, below 1
  cheaper or shorter;
- low- and mid-low-risk mortality (低风险 / 中低风险组死亡率): deaths among the cases of the DRGs
  whose base-period mortality is low (``risk_tiers``); deaths there suggest avoidable harm.

Which cases count: only status ``grouped``, with a cost, a length of stay >= 0 and a DRG that has a
weight. Other rows are left out and counted by reason, each under the first reason that applies,
in the order of ``EXCLUSION_REASONS``. Hospitals, departments and DRGs become integer codes (one
lookup per distinct value), and one compiled pass over each batch (``_cells``) finds each row's
(unit, DRG) cell in tables kept across batches and adds its case, death, cost and stay into the
cell as integers (``exact``'s parts): no Python and no sort per case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc
from grouper._util.money import ExactSum
from grouper.io import DEFAULT_BATCH
from grouper.analytics import _cells, exact
from grouper.analytics.columns import PairIds, as_floats, dictionary_lookup, equals_mask, vocabulary_table

__all__ = ["EXCLUSION_REASONS", "TIERS", "IndexCells", "hospital_indices", "risk_tiers"]

TIERS = ("low", "mid-low", "mid-high", "high")
EXCLUSION_REASONS = ("not_grouped", "null_cost", "null_or_negative_los", "no_weight")
_NONE64, _NONE32 = np.zeros(0, np.int64), np.zeros(0, np.int32)  # no department column
_HOT, _LIMBS = 8, 2 * ExactSum.LIMBS  # int64 per cell: cases, deaths, 2 x H A B (one cache line); the limbs


def _cell_rows(cap: int, width: int, old: np.ndarray | None = None) -> np.ndarray:
    """Zeroed (cap, width) int64 cell rows starting on a 64-byte boundary (a hot row is one cache
    line), ``old``'s rows copied in."""
    buf = np.zeros(cap * width + 8, np.int64)
    start = (-buf.ctypes.data % 64) // 8
    rows = buf[start:start + cap * width].reshape(cap, width)
    if old is not None:
        rows[:len(old)] = old
    return rows


def _text(col) -> pa.Array:
    """A text column (dictionary-encoded and chunked, as the grouper writes it) as one string array."""
    arr = pc.cast(col, pa.string())
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _codes(col) -> tuple[pa.Array, np.ndarray]:
    """(sorted distinct values, each row's position among them): keys for np.bincount.
    Sorted so that the output does not depend on the order of the rows."""
    enc = pc.dictionary_encode(_text(col), null_encoding="encode")
    order = pc.array_sort_indices(enc.dictionary).to_numpy()
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return enc.dictionary.take(order), rank[enc.indices.to_numpy(zero_copy_only=False)]


def _deaths(col, death_codes: Sequence[str]) -> np.ndarray:
    """Discharge status (离院方式) in ``death_codes`` ('5' = 死亡); missing is not a death."""
    codes = pa.array([str(c) for c in death_codes], pa.string())
    return pc.is_in(_text(col), value_set=codes).to_numpy(zero_copy_only=False)


def risk_tiers(table: pa.Table, *, drg: str = "drg", discharge: str = "discharge",
               death_codes: Sequence[str] = ("5",), status: str | None = "status",
               cuts: Sequence[float] = (-1.0, 0.0, 1.0), ddof: int = 0,
               zero_death_tier: str = "low") -> pa.Table:
    """Each DRG's mortality m = deaths / cases over the base data, its z-score and risk tier.

    z = (ln m - mean(ln m)) / sd(ln m) over the DRGs with deaths: group mortality is heavily
    skewed, its logarithm is not. ``ddof=0`` is the population sd (the CHS-DRG evaluation's
    choice; 1 gives the sample sd); when the sd is 0 (one DRG with deaths, or all equal) z is 0.
    Tiers: z < cuts[0] low, < cuts[1] mid-low, < cuts[2] mid-high, else high. DRGs without deaths
    have no z (no logarithm) and go to ``zero_death_tier``: a tier name, or "exclude" for none.
    Only rows with status 'grouped' count (``status=None``: every row).
    Columns: drg, cases, deaths, mortality, z, tier.
    """
    _check_tier_options(cuts, zero_death_tier)
    if status is not None:
        table = table.filter(equals_mask(table[status], "grouped"))
    labels, g = _codes(table[drg])
    cases = np.bincount(g, minlength=len(labels))
    deaths = np.bincount(g, _deaths(table[discharge], death_codes), len(labels)).astype(np.int64)
    return _tiers(labels, cases, deaths, cuts=cuts, ddof=ddof, zero_death_tier=zero_death_tier)


def _check_tier_options(cuts, zero_death_tier) -> None:
    if zero_death_tier not in (*TIERS, "exclude"):
        raise ValueError(f"zero_death_tier must be one of {TIERS} or 'exclude', not {zero_death_tier!r}")
    if len(cuts) != 3 or list(cuts) != sorted(cuts):
        raise ValueError(f"cuts must be three increasing z values, not {cuts!r}")


def _tiers(labels: pa.Array, cases: np.ndarray, deaths: np.ndarray, *, cuts=(-1.0, 0.0, 1.0), ddof: int = 0,
           zero_death_tier: str = "low") -> pa.Table:
    """The tier table from per-DRG counts (see ``risk_tiers``)."""
    _check_tier_options(cuts, zero_death_tier)
    mortality = deaths / np.maximum(cases, 1)
    pos = deaths > 0
    z = np.full(len(labels), np.nan)
    if pos.any():
        lm = np.log(mortality[pos])
        sd = lm.std(ddof=ddof) if pos.sum() > ddof else 0.0
        z[pos] = (lm - lm.mean()) / sd if sd > 0 else 0.0
    tier = np.array(TIERS, object)[np.digitize(np.nan_to_num(z), cuts)]
    tier[~pos] = None if zero_death_tier == "exclude" else zero_death_tier
    return pa.table({"drg": labels, "cases": np.asarray(cases, np.int64), "deaths": deaths, "mortality": mortality,
                     "z": pa.array(z, mask=~pos), "tier": pa.array(tier, pa.string())})


def hospital_indices(table: pa.Table, weights: Mapping[str, float], *, hospital: str = "hospital_id",
                     drg: str = "drg", cost: str = "total_cost", los: str = "los",
                     discharge: str = "discharge", death_codes: Sequence[str] = ("5",),
                     status: str = "status", department: str | None = None,
                     tiers: pa.Table | None = None) -> tuple[pa.Table, dict[str, int]]:
    """The evaluation indices of every hospital (or hospital x department, with ``department``).

    ``table``: grouped cases (``Grouper.group(data, keep=[hospital, cost, los, discharge, ...])``);
    ``weights``: RW per DRG code. E and T are the means of each DRG over all hospitals in
    ``table`` after the exclusions (for a department too: its peers are every hospital); a DRG
    whose cases all have cost (or stay) 0 gives ratio 1. ``tiers``: a ``risk_tiers`` table of
    the base period; by default computed from the cases that count here, with its defaults. DRGs
    missing from ``tiers`` are in no tier.

    Returns ``(indices, excluded)``: one row per unit, sorted, with columns hospital
    [department] cases drg_count total_weight cmi cost_index time_index, and for the low and
    mid-low tiers {low,midlow}_risk_{cases,deaths,mortality} (mortality null without such cases);
    and the rows left out, by reason (``EXCLUSION_REASONS``: each row under its first reason).
    """
    cells = IndexCells(hospital=hospital, drg=drg, cost=cost, los=los, discharge=discharge,
                       death_codes=death_codes, status=status, department=department)
    return cells.add(table).indices(weights, tiers)


class IndexCells:
    """Per (hospital[, department], DRG) cell: cases, deaths and exact sums of cost and stay.

    Every index is a function of these cells, so case files (or dataset fragments) are reduced
    one batch at a time and memory follows the number of cells, never the number of cases; cells
    from different fragments add up exactly (``merge``), giving the same indices to the last bit.
    """

    def __init__(self, *, hospital: str = "hospital_id", drg: str = "drg", cost: str = "total_cost",
                 los: str = "los", discharge: str = "discharge", death_codes: Sequence[str] = ("5",),
                 status: str = "status", department: str | None = None):
        self.columns = dict(hospital=hospital, drg=drg, cost=cost, los=los, discharge=discharge, status=status,
                            department=department)
        self.death_codes = tuple(str(c) for c in death_codes)
        self.units: dict[tuple, int] = {}  # (hospital, department) -> id
        self.drgs: dict[str, int] = {}
        self.excluded = dict.fromkeys(EXCLUSION_REASONS[:3], 0)
        self._hospitals: dict = {}
        self._departments: dict = {}
        self._unit_of = PairIds()  # (hospital id, department id) -> unit id
        self._cell_of = PairIds()  # (unit id, DRG id) -> cell id, in order of first appearance
        self._keys = np.zeros(0, np.int64)  # per cell: unit id << 24 | DRG id
        self._hot = _cell_rows(0, _HOT)  # per cell: cases, deaths, H A B of cost, of stay (exact.add_at)
        self._limbs = _cell_rows(0, _LIMBS)  # per cell: the limbs of cost, of stay
        self._cells = 0
        self._rows = 0
        self._tables: dict = {}  # per column: the last batch's dictionary and its lookup table

    def add(self, data: pa.Table | pa.RecordBatch) -> "IndexCells":
        """Add the rows of a table or batch of grouped cases."""
        for b in data.to_batches() if isinstance(data, pa.Table) else [data]:
            self._add_batch(b)
        if isinstance(data, pa.Table) and data.num_rows == 0:
            self._need(data.schema.names)
        return self

    def _need(self, names) -> None:
        missing = [c for c in self.columns.values() if c and c not in names]
        if missing:
            raise ValueError(f"missing column(s) for the indices: {', '.join(missing)}")

    def _add_batch(self, b: pa.RecordBatch) -> None:
        """One compiled pass over the batch (``_cells.scan``); the rows of units or cells not yet
        known come back, their pairs are learnt once (``PairIds``) and they are added then."""
        k = self.columns
        self._need(b.schema.names)
        c, t = as_floats(b.column(k["cost"])), as_floats(b.column(k["los"]))
        status, grouped = self._lookup(b, "status", lambda values: np.array([v == "grouped" for v in values] or [0],
                                                                           np.uint8))
        hosp, hosp_id = self._lookup(b, "hospital", partial(vocabulary_table, vocab=self._hospitals))
        dept, dept_id = (self._lookup(b, "department", partial(vocabulary_table, vocab=self._departments))
                         if k["department"] else (None, None))
        drg, drg_id = self._lookup(b, "drg", partial(vocabulary_table, vocab=self.drgs))
        if len(self.drgs) >= 1 << 24:
            raise ValueError("more than 16 million distinct DRG codes")
        discharge, dead_of = self._dead_of(b.column(k["discharge"]))
        excluded, bad = np.zeros(3, np.int64), np.full(2, -1, np.int64)
        missed = np.empty(b.num_rows, np.int64)
        m = _cells.scan(grouped, status, c, t, hosp_id, hosp, *((dept_id, dept, True) if dept is not None else
                                                               (_NONE64, _NONE32, False)),
                        drg_id, drg, dead_of, discharge, *self._unit_of.direct(), *self._cell_of.direct(),
                        self._hot, self._limbs, missed, excluded, bad)
        if m:  # kept rows of units or cells not in the tables yet
            rows = missed[:m]
            h = hosp_id[hosp[rows]]
            unit = self._unit_of.ids(h, dept_id[dept[rows]] if dept is not None else np.zeros_like(h),
                                     self._new_units)
            cell = self._cell_ids(unit, drg_id[drg[rows]])
            _cells.add_rows(rows, cell, c, t, dead_of, discharge, self._hot, self._limbs, bad)
        for reason, v in zip(EXCLUSION_REASONS, excluded.tolist()):
            self.excluded[reason] += v
        self._rows += b.num_rows - int(excluded.sum())
        for name, x, row in ((k["cost"], c, bad[0]), (k["los"], t, bad[1])):
            if row >= 0:
                try:
                    ExactSum.limbs(x[row:row + 1])
                except ValueError as exc:
                    raise ValueError(f"column {name!r}: {exc}") from None

    def _lookup(self, b: pa.RecordBatch, column: str, per_value) -> tuple[np.ndarray, np.ndarray]:
        """(each row's dictionary position, ``per_value`` of the positions' values: a vocabulary
        id, or a flag), kept while the batches share a dictionary. A text column's values are
        all looked up (a value seen only in left-out rows gets an id that no cell uses)."""
        return dictionary_lookup(b.column(self.columns[column]), per_value, self._tables, column)

    def _dead_of(self, col) -> tuple[np.ndarray, np.ndarray]:
        """(dictionary positions, a death flag per position) of a dictionary column; (empty, a
        flag per row) of another (one set lookup a row, cheaper than encoding it)."""
        if pa.types.is_dictionary(col.type):
            return dictionary_lookup(col, lambda values: np.array([v in self.death_codes for v in values] or [0],
                                                                  np.uint8), self._tables, "discharge")
        return _NONE32, _deaths(col, self.death_codes).view(np.uint8)

    def _new_units(self, h: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Unit ids of new (hospital id, department id) pairs, once per pair."""
        names_h = {v: key for key, v in self._hospitals.items()}
        names_d = {v: key for key, v in self._departments.items()}
        return np.array([self.units.setdefault((names_h[a], names_d.get(b)), len(self.units))
                         for a, b in zip(h.tolist(), d.tolist())], np.int64)

    def _cell_ids(self, unit: np.ndarray, drg: np.ndarray) -> np.ndarray:
        """Each row's cell id, new cells added (zero sums) in order of first appearance."""
        def new_cells(u: np.ndarray, g: np.ndarray) -> np.ndarray:
            ids = np.arange(self._cells, self._cells + len(u), dtype=np.int64)
            self._cells += len(u)
            if self._cells > len(self._keys):  # grow by doubling: amortised O(1) a cell
                cap = max(2 * len(self._keys), self._cells, 1 << 16)
                self._keys = np.resize(self._keys, cap)
                self._hot, self._limbs = (_cell_rows(cap, a.shape[1], a) for a in (self._hot, self._limbs))
            self._keys[ids] = (u << 24) | g
            return ids

        return self._cell_of.ids(unit, drg, new_cells)

    def __getstate__(self) -> dict:
        """Pickled (e.g. returned by a Dask task) with the cells in use only, without the lookup
        tables: they are rebuilt from the cells when unpickled."""
        state = dict(self.__dict__)
        m = self._cells
        state.update(_keys=self._keys[:m].copy(), _hot=self._hot[:m].copy(), _limbs=self._limbs[:m].copy(),
                     _unit_of=None, _cell_of=None, _tables={})
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        m = self._cells
        self._hot, self._limbs = (_cell_rows(m, a.shape[1], a) for a in (self._hot, self._limbs))
        self._cell_of = PairIds.of(self._keys[:m] >> 24, self._keys[:m] & ((1 << 24) - 1), np.arange(m))
        known = [(self._hospitals[h], self._departments[d] if self.columns["department"] else 0, u)
                 for (h, d), u in self.units.items()
                 if h in self._hospitals and (not self.columns["department"] or d in self._departments)]
        self._unit_of = PairIds.of(*(np.array(c, np.int64) for c in zip(*known))) if known else PairIds()

    def _reduced(self) -> tuple[np.ndarray, ...]:
        """The cells: keys (unit id << 24 | DRG id), cases, deaths, exact cost and stay sums; in
        order of first appearance, so only integer sums and an order-free final step use it."""
        m = self._cells
        hot, limbs = self._hot[:m], self._limbs[:m]
        return (self._keys[:m], hot[:, 0], hot[:, 1], np.concatenate([hot[:, 2:5], limbs[:, :5]], axis=1).T,
                np.concatenate([hot[:, 5:8], limbs[:, 5:]], axis=1).T)

    def merge(self, other: "IndexCells") -> "IndexCells":
        """Add another set of cells (e.g. from another dataset fragment); exact."""
        if other.columns["department"] != self.columns["department"] and (other.columns["department"] is None
                                                                             or self.columns["department"] is None):
            raise ValueError("cannot merge cells with and without departments")
        m = other._cells
        key, hot, limbs = other._keys[:m], other._hot[:m], other._limbs[:m]
        unit_map = np.array([self.units.setdefault(u, len(self.units)) for u in
                             sorted(other.units, key=other.units.get)] or [0], np.int64)
        drg_map = np.array([self.drgs.setdefault(d, len(self.drgs)) for d in
                            sorted(other.drgs, key=other.drgs.get)] or [0], np.int64)
        if len(key):
            cell = self._cell_ids(unit_map[key >> 24], drg_map[key & ((1 << 24) - 1)])
            np.add.at(self._hot, cell, hot)
            np.add.at(self._limbs, cell, limbs)
        for reason, v in other.excluded.items():
            self.excluded[reason] = self.excluded.get(reason, 0) + v
        self._rows += other._rows
        return self

    def drg_counts(self) -> tuple[pa.Array, np.ndarray, np.ndarray]:
        """(DRG codes sorted, cases, deaths) over every cell."""
        key, n, deaths, _, _ = self._reduced()
        names = np.array(sorted(self.drgs, key=self.drgs.get) or [""], dtype=object)
        g = key & ((1 << 24) - 1)
        return _per_drg(names, g, n, deaths)

    def indices(self, weights: Mapping[str, float], tiers: pa.Table | None = None) -> tuple[pa.Table, dict[str, int]]:
        """The indices of every unit (see ``hospital_indices``) and the exclusions by reason."""
        m = self._cells
        key, hot, limbs = self._keys[:m], self._hot[:m], self._limbs[:m]
        drg_names = sorted(self.drgs, key=self.drgs.get)
        w_by_id = np.array([np.nan if weights.get(d) is None else float(weights.get(d)) for d in drg_names] or [np.nan])
        g_id = key & ((1 << 24) - 1)
        has_w = ~np.isnan(w_by_id[g_id]) if len(key) else np.zeros(0, bool)
        excluded = dict(self.excluded)
        excluded["no_weight"] = int(hot[~has_w, 0].sum())
        kept = np.flatnonzero(has_w)
        key, g_id = key[kept], g_id[kept]

        # units in sorted order (hospital, then department; missing last), DRGs in sorted code order
        unit_names = sorted(self.units, key=self.units.get)
        order_u = sorted(range(len(unit_names)), key=lambda i: tuple((v is None, v or "") for v in unit_names[i]))
        urank = np.empty(max(len(unit_names), 1), np.int64)
        urank[order_u] = np.arange(len(order_u))
        used_u = np.unique(urank[key >> 24]) if len(key) else np.zeros(0, np.int64)
        u_of_rank = np.full(max(len(unit_names), 1), -1, np.int64)
        u_of_rank[used_u] = np.arange(len(used_u))
        u = u_of_rank[urank[key >> 24]] if len(key) else np.zeros(0, np.int64)
        sorted_units = [unit_names[order_u[r]] for r in used_u.tolist()]
        by_code = sorted(range(len(drg_names)), key=lambda i: (drg_names[i] is None, drg_names[i] or ""))
        drg_sorted = np.array([drg_names[i] for i in by_code], dtype=object)
        grank = np.zeros(max(len(drg_names), 1), np.int64)
        grank[by_code] = np.arange(len(by_code))
        g = grank[g_id] if len(key) else np.zeros(0, np.int64)
        n_units, n_drgs = len(sorted_units), len(drg_sorted)
        # one canonical order of the cells (unit, DRG; one key each): every float sum below runs in it
        order = np.argsort(u * n_drgs + g)
        u, g, kept = u[order], g[order], kept[order]
        hot, limbs = np.take(hot, kept, axis=0), np.take(limbs, kept, axis=0)  # whole rows, then column views
        n, deaths = hot[:, 0], hot[:, 1]
        cl = np.concatenate([hot[:, 2:5], limbs[:, :5]], axis=1).T
        tl = np.concatenate([hot[:, 5:8], limbs[:, 5:]], axis=1).T
        cost_cell, los_cell = exact.to_float(cl), exact.to_float(tl)
        drg_cases = np.bincount(g, n, n_drgs).astype(np.int64)
        drg_cost = _exact_by(g, cl, n_drgs)
        drg_los = _exact_by(g, tl, n_drgs)

        cases = np.bincount(u, n, n_units).astype(np.int64)
        per_case = np.maximum(cases, 1)
        out = {"hospital": pa.array([s[0] for s in sorted_units], pa.string())}
        if self.columns["department"] is not None:
            out["department"] = pa.array([s[1] for s in sorted_units], pa.string())
        w = w_by_id[g_id[order]] if len(key) else np.zeros(0)
        total_weight = _weight_sums(u, w, n, n_units)
        out |= {"cases": cases, "drg_count": np.bincount(u, minlength=n_units).astype(np.int64),
                "total_weight": total_weight, "cmi": total_weight / per_case}
        for name, cell_sum, drg_sum in (("cost_index", cost_cell, drg_cost), ("time_index", los_cell, drg_los)):
            peer = drg_sum / np.maximum(drg_cases, 1)  # E_g or T_g
            ratio = np.divide(cell_sum, peer[g], out=n.astype(np.float64), where=peer[g] > 0)  # Σ_cases x / E_g
            out[name] = np.bincount(u, ratio, n_units) / per_case

        if tiers is None:
            tiers = _tiers(*_per_drg(drg_sorted, g, n, deaths))
        tier_of = _text(tiers["tier"])
        for prefix, tier in (("low_risk", "low"), ("midlow_risk", "mid-low")):
            members = _text(tiers["drg"]).filter(pc.fill_null(pc.equal(tier_of, tier), False))
            inside = pc.is_in(pa.array(drg_sorted.tolist(), pa.string()), value_set=members).to_numpy(zero_copy_only=False)[g]
            k = np.bincount(u, n * inside, n_units).astype(np.int64)
            d = np.bincount(u, deaths * inside, n_units).astype(np.int64)
            out |= {f"{prefix}_cases": k, f"{prefix}_deaths": d,
                    f"{prefix}_mortality": pa.array(d / np.maximum(k, 1), mask=k == 0)}
        return pa.table(out), excluded


def _weight_sums(u: np.ndarray, w: np.ndarray, n: np.ndarray, n_units: int) -> np.ndarray:
    """Σ RW × cases per unit. Weights with at most four decimals (as ``drg weights`` writes them)
    are summed as whole ten-thousandths, exactly, so a total reads 950.7849, not the float noise
    950.7849000000004 of adding the binary fractions; other weights are summed as floats."""
    scaled = w * 10_000
    whole = np.round(scaled)
    if len(w) and np.all(np.abs(scaled - whole) <= 1e-6 * np.maximum(1.0, np.abs(whole))) \
            and float(np.abs(whole) @ n) < 2.0 ** 53:
        return np.bincount(u, whole * n, n_units) / 10_000  # integers below 2^53: exact in float64
    return np.bincount(u, w * n, n_units)


def _exact_by(g: np.ndarray, sums: np.ndarray, n: int) -> np.ndarray:
    """Exact per-group totals of cell sums (int64 additions), rounded once."""
    out = np.zeros((sums.shape[0], n), np.int64)
    exact.add_by_key(out, g, sums)
    return exact.to_float(out)


def _per_drg(names: np.ndarray, g: np.ndarray, n: np.ndarray, deaths: np.ndarray):
    """(DRG codes, cases, deaths) of the DRGs that have cells, codes sorted."""
    cases = np.bincount(g, n, len(names)).astype(np.int64)
    dead = np.bincount(g, deaths, len(names)).astype(np.int64)
    used = np.flatnonzero(cases > 0)
    labels = np.asarray(names, dtype=object)[used]
    order = sorted(range(len(labels)), key=lambda i: (labels[i] is None, labels[i] or ""))
    return pa.array(labels[order].tolist(), pa.string()), cases[used][order], dead[used][order]


def indices_from_files(grouper, inputs, weights, *, hospital: str = "hospital_id", cost: str = "total_cost",
                       los: str = "los", discharge: str = "discharge", department: str | None = None,
                       death_codes=("5",), batch_size: int = DEFAULT_BATCH, tiers: pa.Table | None = None,
                       regroup: bool = False):
    """Group case files (streamed) and compute the indices; see ``cells_from_files``."""
    return cells_from_files(grouper, inputs, hospital=hospital, cost=cost, los=los, discharge=discharge,
                            department=department, death_codes=death_codes,
                            batch_size=batch_size, regroup=regroup).indices(weights, tiers)


def cells_from_files(grouper, inputs, *, hospital: str = "hospital_id", cost: str = "total_cost",
                     los: str = "los", discharge: str = "discharge", department: str | None = None,
                     death_codes=("5",), batch_size: int = DEFAULT_BATCH, filesystem=None,
                     regroup: bool = False) -> IndexCells:
    """Stream case files through the grouper into ``IndexCells``: each batch is reduced to its
    cells before the next is read, so memory follows hospitals x DRGs, not the number of cases."""
    from grouper.analytics.grouped import grouped_batches

    cells = IndexCells(hospital=hospital, cost=cost, los=los, discharge=discharge, department=department,
                       death_codes=death_codes)
    need = [c for c in (hospital, cost, los, discharge, department) if c]
    for b in grouped_batches(grouper, inputs, need, columns=("status", "drg"), batch_size=batch_size,
                             what="the indices", filesystem=filesystem, regroup=regroup):
        cells.add(b)
    return cells


def cmi_shift(table: pa.Table, weights_a, weights_b, *, hospital: str = "hospital_id", **kw) -> pa.Table:
    """A recalibration experiment per hospital: CMI and total weight under two weight sets
    (e.g. two trimming rules, or two years), and the change."""
    a, _ = hospital_indices(table, weights_a, hospital=hospital, **kw)
    b, _ = hospital_indices(table, weights_b, hospital=hospital, **kw)
    return pa.table({
        "hospital": a["hospital"], "cases": a["cases"],
        "cmi_a": a["cmi"], "cmi_b": b["cmi"], "cmi_change": pc.subtract(b["cmi"], a["cmi"]),
        "total_weight_a": a["total_weight"], "total_weight_b": b["total_weight"],
        "total_weight_change": pc.subtract(b["total_weight"], a["total_weight"]),
    })

"""Relative weights (相对权重, RW) from grouped cases with costs, and the quality of a grouping.

RW_g = trimmed mean cost of DRG g / trimmed mean cost of all cases (CHS-DRG technical
specification; formulas and the worked example in the project's domain notes, section 2).
Trimming is per DRG and selectable, because no single national rule exists: ``none``,
``iqr:k`` (Tukey fences on linear-interpolated quartiles), ``sdlog:k`` (mean ± k SD of ln cost),
``pct:lo-hi`` (percentiles); the rule is ``trimming.TrimRule``, shared with the DIP catalogue. Several years can be weighted (e.g. 1:2:7, oldest to newest).
Groups with fewer than ``min_cases`` kept cases are flagged ``thin`` and take the pooled weight
of their ADRG when the pool is big enough. Weights are renormalised so that the base data's CMI
is exactly 1. Everything is vectorised: one sort, then per-group reductions with NumPy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc
from grouper.analytics.columns import as_floats, equals_mask, sort_key, vocabulary_ids, year_weights
from grouper.analytics.trimming import TrimRule, keep_emptied
from grouper.io import DEFAULT_BATCH

__all__ = ["CostSample", "WeightOptions", "WeightResult", "compute_weights", "renormalize", "compare_weights",
           "attach_weights", "weights_from_files", "sample_files"]


#: the group flags in Chinese, for people (reports, tables)
WEIGHT_FLAG_NAMES_ZH = {"thin": "病例过少", "pooled_adrg": "取 ADRG 合并权重", "unstable": "不稳定",
                        "untrimmed_all_outside": "全部落在截尾界外，未截尾"}


@dataclass(frozen=True)
class WeightOptions:
    trim: str = "iqr:1.5"
    min_cases: int = 5  # fewer kept cases: flagged thin, pooled at ADRG level where possible
    year_weights: Mapping[int, float] = field(default_factory=dict)  # {2022: 1, 2023: 2, 2024: 7}
    cv_max: float = 1.0  # quality: a group is stable when n > stable_min_n and CV <= cv_max
    stable_min_n: int = 5
    renormalize: bool = True

    def trim_rule(self) -> TrimRule:
        """The parsed ``trim`` (a ``(kind, params)`` pair); a bad rule is a ValueError."""
        return TrimRule.parse(self.trim)


@dataclass
class WeightResult:
    table: pa.Table  # drg, adrg, n, n_trimmed, mean_cost, rw, cv, mean_los, stable, flags
    mean_cost: float  # the overall (trimmed, year-weighted) mean cost per case
    riv: float  # 1 - SSW/SST over the kept cases
    excluded: dict[str, int]  # rows left out before trimming, by reason

    def weights(self) -> dict[str, float]:
        return dict(zip(self.table["drg"].to_pylist(), self.table["rw"].to_pylist()))


def _column(batch: pa.RecordBatch, name: str) -> pa.Array:
    if name not in batch.schema.names:
        raise ValueError(f"no column {name!r} in the grouped data")
    return batch.column(name)


class CostSample:
    """What the weights need of each grouped case, kept compact: a DRG id (int32), the cost,
    the length of stay and the year, about 24 bytes a case and no string per case. Batches are
    added one at a time (rows that cannot count are counted by reason and dropped at once), and
    samples from several files or dataset fragments merge exactly: the weights depend only on
    the multiset of cases, never on their order or on how they were split. Beyond ``spill_rows``
    cases (default ``SPILL_ROWS``) the cases go to bucket files in a temporary folder (under
    ``spill_dir``), so memory stays bounded; the weights are the same either way.
    """

    def __init__(self, *, drg: str = "drg", adrg: str = "adrg", cost: str = "total_cost",
                 los: str | None = "los", year: str | None = None, status: str = "status",
                 spill_rows: int | None = None, spill_dir: str | os.PathLike | None = None):
        self.columns = dict(drg=drg, adrg=adrg, cost=cost, los=los, year=year, status=status)
        self.spill_rows = SPILL_ROWS if spill_rows is None else spill_rows
        self.spill_dir = spill_dir
        self._spill = None  # a temporary folder of bucket files once the cases were spilled
        self._in_memory = 0
        self.drgs: dict[str, int] = {}  # DRG code -> id
        self.adrg_of: dict[str, str] = {}
        self._known = np.zeros(0, bool)  # per DRG id: its ADRG is known (grown by _known_ids)
        self._sorted = False
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.has_los: bool | None = None
        self.excluded = {"not_grouped": 0, "missing_cost": 0, "non_positive_cost": 0}

    def add(self, data: pa.Table | pa.RecordBatch) -> "CostSample":
        """Add the rows of a table or batch (grouped output with the cost columns kept)."""
        batches = data.to_batches() if isinstance(data, pa.Table) else [data]
        for b in batches:
            self._add_batch(b)
        if isinstance(data, pa.Table) and data.num_rows == 0 and self.has_los is None:
            self._check(data.schema.names)
        return self

    def _check(self, names) -> bool:
        k = self.columns
        for c in (k["status"], k["drg"], k["cost"]) + ((k["year"],) if k["year"] else ()):
            if c not in names:
                raise ValueError(f"no column {c!r} in the grouped data")
        has_los = bool(k["los"]) and k["los"] in names
        if self.has_los is None:
            self.has_los = has_los
            if has_los:
                self.excluded["non_positive_or_missing_los"] = 0
        elif self.has_los != has_los:
            raise ValueError(f"length of stay column {k['los']!r} is in some inputs but not in others")
        return has_los

    def _add_batch(self, b: pa.RecordBatch) -> None:
        k = self.columns
        has_los = self._check(b.schema.names)
        keep = equals_mask(_column(b, k["status"]), "grouped")
        self.excluded["not_grouped"] += int((~keep).sum())
        c = as_floats(_column(b, k["cost"]))
        missing = np.isnan(c) & keep
        nonpos = keep & ~missing & (c <= 0)
        self.excluded["missing_cost"] += int(missing.sum())
        self.excluded["non_positive_cost"] += int(nonpos.sum())
        keep &= ~missing & ~nonpos
        stay = None
        if has_los:
            stay = as_floats(b.column(k["los"]))
            bad = keep & ~(stay > 0)
            self.excluded["non_positive_or_missing_los"] += int(bad.sum())
            keep &= ~bad
        rows = np.flatnonzero(keep)
        drg = _column(b, k["drg"]).take(pa.array(rows))
        if drg.null_count:
            raise ValueError("grouped rows without a DRG code")
        gid = vocabulary_ids(drg, self.drgs).astype(np.int32)
        self._learn_adrgs(b, rows, gid)
        year = None
        if k["year"]:
            year = pc.cast(b.column(k["year"]), pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)[rows]
        self._append((gid, c[rows], stay[rows] if stay is not None else None, year))

    def _learn_adrgs(self, b: pa.RecordBatch, rows: np.ndarray, gid: np.ndarray) -> None:
        """The ADRG of each DRG (that of its first case), looked up once per new DRG: a batch
        whose DRGs are all known costs one pass over its ids, no sort."""
        fresh = ~self._known_ids()[gid] if len(gid) else np.zeros(0, bool)
        if not fresh.any():
            return
        at = np.flatnonzero(fresh)
        uniq, first = np.unique(gid[at], return_index=True)
        names = {v: key for key, v in self.drgs.items()}
        col = b.column(self.columns["adrg"]) if self.columns["adrg"] in b.schema.names else None
        for g, j in zip(uniq.tolist(), at[first].tolist()):
            v = col[int(rows[j])].as_py() if col is not None else None
            self.adrg_of[names[g]] = str(v) if v is not None else names[g]
        self._known[uniq] = True

    def _known_ids(self) -> np.ndarray:
        """The per-DRG-id 'ADRG known' marks, grown to every DRG id met so far."""
        if len(self._known) < len(self.drgs):
            self._known = np.concatenate([self._known, np.zeros(len(self.drgs) - len(self._known), bool)])
        return self._known

    def merge(self, other: "CostSample") -> "CostSample":
        """Add another sample's cases (e.g. from another dataset fragment)."""
        if other.has_los is not None and self.has_los is not None and other.has_los != self.has_los:
            raise ValueError("cannot merge samples with and without a length of stay")
        remap = np.array([self.drgs.setdefault(d, len(self.drgs)) for d in other.drgs] or [0], np.int32)
        for d, a in other.adrg_of.items():
            self.adrg_of.setdefault(d, a)
        self._known_ids()[[self.drgs[d] for d in other.adrg_of]] = True
        for gid, c, stay, year in other._all_parts():
            self._append((remap[gid] if len(gid) else gid, c, stay, year))
        for key, v in other.excluded.items():
            self.excluded[key] = self.excluded.get(key, 0) + v
        if self.has_los is None:
            self.has_los = other.has_los
        return self

    @property
    def cases(self) -> int:
        return self._in_memory + (self._spilled_rows if self._spill is not None else 0)

    # --- storage: parts in memory, spilled to bucket files beyond ``spill_rows`` cases

    def _append(self, part: tuple) -> None:
        self.parts.append(part)
        self._in_memory += len(part[0])
        self._sorted = False
        if self.spill_rows and self._in_memory > self.spill_rows:
            self._flush()

    def _flush(self) -> None:
        """Move the parts in memory to bucket files (DRG id modulo BUCKETS): every DRG's cases
        end up in one bucket, and the weights are then computed one bucket at a time."""
        import tempfile

        if self._spill is None:
            self._spill = tempfile.TemporaryDirectory(prefix="drg-weights-", dir=self.spill_dir)
            self._spilled_rows = 0
        parts, self.parts = self.parts, []
        while parts:  # about CHUNK rows at a time: one pass by bucket, each bucket file opened once
            take = max(1, int(np.searchsorted(np.cumsum([len(p[0]) for p in parts]), CHUNK, side="right")))
            group, parts = parts[:take], parts[take:]
            gid = np.concatenate([p[0] for p in group])
            bucket = (gid % BUCKETS).astype(np.uint8)  # a stable sort of bytes is a radix sort
            order = np.argsort(bucket, kind="stable")
            bounds = np.searchsorted(bucket[order], np.arange(BUCKETS + 1))
            rec = np.zeros(len(gid), SPILL_DTYPE)  # in bucket order, column by column (a gather of
            rec["g"] = gid[order]  # whole records would copy them one at a time)
            for name, i in (("c", 1), ("s", 2), ("y", 3)):
                if group[0][i] is not None:
                    rec[name] = np.concatenate([p[i] for p in group])[order]
            del group
            for k in np.flatnonzero(np.diff(bounds)):
                with open(os.path.join(self._spill.name, f"{k:03d}.bin"), "ab") as fh:
                    rec[bounds[k]:bounds[k + 1]].tofile(fh)
            self._spilled_rows += len(gid)
        self.parts, self._in_memory, self._sorted = [], 0, False

    def _bucket(self, k: int) -> tuple:
        path = os.path.join(self._spill.name, f"{k:03d}.bin")
        rec = np.fromfile(path, SPILL_DTYPE) if os.path.exists(path) else np.zeros(0, SPILL_DTYPE)
        return (rec["g"].copy(), rec["c"].copy(), rec["s"].copy() if self.has_los else None,
                rec["y"].copy() if self.columns["year"] else None)

    def _all_parts(self):
        yield from self.parts
        if self._spill is not None:
            for k in range(BUCKETS):
                yield self._bucket(k)

    def __getstate__(self) -> dict:
        """Pickled (e.g. returned by a Dask task) with every case in memory: a spill folder is
        local to its machine."""
        state = dict(self.__dict__)
        if self._spill is not None:
            state["parts"] = list(self._all_parts())
            state["_in_memory"] = sum(len(p[0]) for p in state["parts"])
            state["_spill"], state["_sorted"] = None, False
        return state

    def _names(self) -> tuple[np.ndarray, np.ndarray]:
        """(DRG codes sorted, each stored DRG id's rank among them)."""
        names_by_id = np.array(sorted(self.drgs, key=self.drgs.get), dtype=object)
        order_names = np.argsort(names_by_id.astype(str), kind="stable")
        rank = np.zeros(max(len(names_by_id), 1), np.int32)
        rank[order_names] = np.arange(len(names_by_id))
        return names_by_id[order_names], rank

    @staticmethod
    def _sorted_block(gid, c, stay, year, rank) -> tuple:
        """The cases sorted by (DRG rank, cost, year, stay): one int64 sort when the four fit in
        one key (``sort_key``), else a lexsort one column at a time; the same order either way."""
        packed = sort_key(rank[gid] if len(gid) else gid, c, stay, year)
        if packed is not None:
            key, unpack = packed
            del packed
            key.sort()
            r, c, stay, year = unpack(key)
            inverse = np.zeros(len(rank), np.int32)  # rank -> stored DRG id
            inverse[rank] = np.arange(len(rank), dtype=np.int32)
            return inverse[r], c, stay, year
        keys = [k for k in (stay, year, c) if k is not None] + [rank[gid] if len(gid) else gid]
        order = np.lexsort(keys)
        del keys
        return tuple(col[order] if col is not None else None for col in (gid, c, stay, year))

    def _blocks(self, rank):
        """Sorted blocks of whole DRGs: all the cases in memory (kept sorted for the next call,
        one copy), or one spilled bucket at a time."""
        if self._spill is None:
            if len(self.parts) != 1 or not self._sorted:
                cols = [np.concatenate([p[i] for p in self.parts]) if self.parts and self.parts[0][i] is not None
                        else None for i in range(4)]
                if not self.parts:
                    cols[0], cols[1] = np.zeros(0, np.int32), np.zeros(0)
                self.parts = []
                self.parts = [self._sorted_block(*cols, rank)]
                self._sorted = True
            yield self.parts[0]
            return
        self._flush()
        for k in range(BUCKETS):
            yield self._sorted_block(*self._bucket(k), rank)

    def weights(self, options: WeightOptions = WeightOptions()) -> WeightResult:
        """The weights of the cases added so far."""
        rule = options.trim_rule()
        if options.year_weights and self.columns["year"] is None:
            raise ValueError("year_weights given without a year column")
        names, rank = self._names()
        G = len(names)
        stats = _Stats(G)
        excluded = dict(self.excluded)
        if options.year_weights:
            excluded["year_without_weight"] = 0
        for gid, c, stay, year in self._blocks(rank):
            w = None
            if options.year_weights:
                w = year_weights(year, options.year_weights)
                ok = w > 0
                excluded["year_without_weight"] += int((~ok).sum())
                if not ok.all():
                    gid, c, w = gid[ok], c[ok], w[ok]
                    stay = stay[ok] if stay is not None else None
            g = rank[gid] if len(gid) else np.zeros(0, np.int32)
            stats.add(g, c, w, stay, rule)
        used = np.flatnonzero(stats.counts)  # DRGs whose every case was left out drop out here
        adrgs = np.array([self.adrg_of.get(d, d) for d in names[used]], dtype=object)
        return _finish(names[used], adrgs, stats.take(used), stay_known=bool(self.has_los), options=options,
                       excluded=excluded)


def compute_weights(table: pa.Table, options: WeightOptions = WeightOptions(), *, drg: str = "drg",
                    adrg: str = "adrg", cost: str = "total_cost", los: str | None = "los",
                    year: str | None = None, status: str = "status") -> WeightResult:
    """Weights from grouped cases (the output of ``Grouper.group`` with cost columns kept)."""
    options.trim_rule()
    sample = CostSample(drg=drg, adrg=adrg, cost=cost, los=los, year=year, status=status)
    return sample.add(table).weights(options)


CHUNK = 1 << 20  # rows per step of the per-group passes: temporaries stay this size
SPILL_ROWS = 1 << 22  # cases a CostSample keeps in memory (about 85 MB) before it spills them to disk
BUCKETS = 64  # spill files; a DRG's cases all go to one (DRG id modulo BUCKETS)
SPILL_DTYPE = np.dtype([("g", "<i4"), ("c", "<f8"), ("s", "<f8"), ("y", "<i8")])


def _chunks(starts: np.ndarray, counts: np.ndarray, n: int):
    """Row ranges of about CHUNK rows that hold whole groups (a group bigger than CHUNK alone)."""
    ends = starts + counts
    lo = 0
    while lo < n:
        k = np.searchsorted(ends, lo + CHUNK, side="right")  # groups ending within the chunk
        hi = int(ends[k - 1]) if k > 0 and ends[k - 1] > lo else int(ends[np.searchsorted(ends, lo, side="right")])
        yield lo, hi
        lo = hi


class _Stats:
    """Per-DRG sums of the kept (inside the fences) cases. Each DRG's cases arrive in one sorted
    block, so every sum runs in the same order whatever order the cases came in or however they
    were split or spilled: results are identical to the last bit."""

    FIELDS = ("counts", "n_in", "wsum", "csum", "lsum", "ssw", "emptied")

    def __init__(self, G: int):
        self.G = G
        for f in self.FIELDS:
            setattr(self, f, np.zeros(G))

    def add(self, gid, c, w, stay, rule: TrimRule) -> None:
        """One sorted block (whole DRGs): fences, then the sums, CHUNK rows at a time."""
        G = self.G
        counts = np.bincount(gid, minlength=G)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        lo, hi = rule.fences(c, starts, counts)
        self.counts += counts
        for s, e in _chunks(starts, counts, len(c)):
            g, x = gid[s:e], c[s:e]
            wx = w[s:e] if w is not None else np.ones(e - s)
            inside, emptied = keep_emptied(g, rule.inside(g, x, lo, hi, G), G)
            self.emptied[emptied] = 1
            g, x, wx = g[inside], x[inside], wx[inside]
            self.n_in += np.bincount(g, minlength=G)
            self.wsum += np.bincount(g, wx, G)
            self.csum += np.bincount(g, wx * x, G)
            if stay is not None:
                self.lsum += np.bincount(g, wx * stay[s:e][inside], G)
            mean = self.csum / np.where(self.wsum > 0, self.wsum, 1)  # final for this chunk's groups
            self.ssw += np.bincount(g, wx * (x - mean[g]) ** 2, G)

    def take(self, idx: np.ndarray) -> "_Stats":
        out = _Stats(len(idx))
        for f in self.FIELDS:
            setattr(out, f, getattr(self, f)[idx])
        return out


def _finish(names, adrg_names, st: _Stats, *, stay_known: bool, options: WeightOptions, excluded) -> WeightResult:
    """Weights, pooling, renormalisation and quality from the per-DRG sums."""
    G = len(names)
    n_in = st.n_in.astype(np.int64)
    W = np.where(st.wsum > 0, st.wsum, 1)
    mean_g = st.csum / W
    cv = np.sqrt(st.ssw / W) / np.where(mean_g > 0, mean_g, 1)  # population SD, as the worked example
    total_w = st.wsum.sum()
    overall = float(st.csum.sum() / total_w) if total_w > 0 else float("nan")
    rw = mean_g / overall
    mean_los = st.lsum / W if stay_known else np.full(G, np.nan)

    # thin groups take their ADRG's pooled weight where the pool is large enough
    flags = [["untrimmed_all_outside"] if st.emptied[i] else [] for i in range(G)]
    adrg_list, agid = np.unique(adrg_names.astype(str), return_inverse=True) if G else (np.array([]), np.zeros(0, np.int64))
    a_n = np.bincount(agid, n_in, len(adrg_list))
    a_w = np.bincount(agid, st.wsum, len(adrg_list))
    a_mean = np.bincount(agid, st.csum, len(adrg_list)) / np.where(a_w > 0, a_w, 1)
    for i in np.flatnonzero(n_in < options.min_cases):
        flags[i].append("thin")
        if a_n[agid[i]] >= options.min_cases:
            rw[i] = a_mean[agid[i]] / overall
            flags[i].append("pooled_adrg")
    if options.renormalize:
        rw = renormalize(rw, n_in)

    # grouping quality: RIV = 1 - SSW/SST over kept cases (year-weighted), SST = SSW + SSB
    ssw_total = float(st.ssw.sum())
    sst = ssw_total + float((st.wsum * (mean_g - overall) ** 2).sum())
    riv = 1 - ssw_total / sst if sst > 0 else float("nan")
    stable = (n_in > options.stable_min_n) & (cv <= options.cv_max)
    for i in np.flatnonzero(~stable):
        flags[i].append("unstable")
    out = pa.table({
        "drg": pa.array(names.astype(object).tolist(), pa.string()),
        "adrg": pa.array(adrg_names.astype(object).tolist(), pa.string()),
        "n": pa.array(n_in),
        "n_trimmed": pa.array((st.counts - n_in).astype(np.int64)),
        "mean_cost": pa.array(np.round(mean_g, 2)),
        "rw": pa.array(np.round(rw, 4)),
        "cv": pa.array(np.round(cv, 4)),
        "mean_los": pa.array(np.round(mean_los, 2)),
        "stable": pa.array(stable),
        "flags": pa.array([";".join(f) for f in flags], pa.string()),
    })
    return WeightResult(out, overall, riv, excluded)


def renormalize(rw: np.ndarray, n: np.ndarray) -> np.ndarray:
    """RW' = RW · Σn / Σ(n·RW): the case-weighted mean weight (the base data's CMI) becomes 1, so
    policy adjustments (uplifts, caps, pooling) do not leak the budget."""
    rw, n = np.asarray(rw, float), np.asarray(n, float)
    total = (n * rw).sum()
    return rw * n.sum() / total if total > 0 else rw


def attach_weights(grouped: pa.Table, weights: Mapping[str, float] | pa.Table, *, drg: str = "drg") -> pa.Table:
    """``grouped`` with an ``rw`` column (null where the DRG has no weight, e.g. 0000 or QY)."""
    if isinstance(weights, pa.Table):
        weights = dict(zip(weights["drg"].to_pylist(), weights["rw"].to_pylist()))
    col = grouped.column(drg).combine_chunks()
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    values = pa.array([weights.get(v) for v in col.dictionary.to_pylist()], pa.float64())  # once per DRG
    return grouped.append_column("rw", pc.take(values, col.indices))


def compare_weights(a: pa.Table, b: pa.Table, counts: Mapping[str, int] | None = None) -> pa.Table:
    """Per DRG: rw under a and b, change and relative change; with case ``counts``, the total
    weight (budget) under each. A recalibration experiment in one table."""
    wa = dict(zip(a["drg"].to_pylist(), a["rw"].to_pylist()))
    wb = dict(zip(b["drg"].to_pylist(), b["rw"].to_pylist()))
    drgs = sorted(set(wa) | set(wb))
    ra = np.array([np.nan if wa.get(d) is None else wa[d] for d in drgs], float)
    rb = np.array([np.nan if wb.get(d) is None else wb[d] for d in drgs], float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = (rb - ra) / ra

    def col(x):  # a DRG missing on one side: null, not NaN
        return pa.array(x, pa.float64(), mask=np.isnan(x))

    cols = {"drg": pa.array(drgs, pa.string()), "rw_a": col(ra), "rw_b": col(rb), "change": col(rb - ra),
            "relative_change": col(rel)}
    if counts is not None:
        n = np.array([counts.get(d, 0) for d in drgs], float)
        cols["cases"] = n.astype(np.int64)
        cols["total_weight_a"] = np.nan_to_num(ra) * n
        cols["total_weight_b"] = np.nan_to_num(rb) * n
    return pa.table(cols)


def weights_from_files(grouper, inputs, options: WeightOptions = WeightOptions(), *, cost: str = "total_cost",
                       los: str | None = "los", year: str | None = None, batch_size: int = DEFAULT_BATCH,
                       regroup: bool = False) -> WeightResult:
    """Weights of case files (streamed; grouped files as they are unless ``regroup``)."""
    return sample_files(grouper, inputs, cost=cost, los=los, year=year, batch_size=batch_size,
                        regroup=regroup).weights(options)


def sample_files(grouper, inputs, *, cost: str = "total_cost", los: str | None = "los", year: str | None = None,
                 batch_size: int = DEFAULT_BATCH, filesystem=None, regroup: bool = False) -> CostSample:
    """Stream case files through the grouper into a ``CostSample``: each batch is grouped and
    reduced to a DRG id, cost, stay and year per case before the next is read."""
    from grouper.analytics.grouped import grouped_batches

    sample = CostSample(cost=cost, los=los, year=year)
    for b in grouped_batches(grouper, inputs, [cost] + ([year] if year else []), optional=[los] if los else [],
                             columns=("status", "adrg", "drg"), batch_size=batch_size, what="the weights",
                             filesystem=filesystem, regroup=regroup):
        sample.add(b)
    return sample

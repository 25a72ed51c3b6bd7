"""The first pass of an audit: each grouped batch reduced to a few numeric columns per case,
written to bucket files by a hash of the patient id (every stay of a patient lands in one
bucket, so split admissions are found one bucket at a time, in bounded memory), and the running
totals the screens compare against (per hospital and ADRG, per peer group and DRG)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc
from grouper.analytics.columns import PairIds

__all__ = ["Collector", "Grid", "Interner", "Pairs", "patient_hash", "period_of", "period_label"]

SLIM = pa.schema([("row", pa.int64()), ("case_id", pa.string()), ("pkey", pa.uint64()), ("hospital", pa.int32()),
                  ("peer", pa.int32()), ("drg", pa.int32()), ("adrg", pa.int32()), ("mdc", pa.int32()),
                  ("severe", pa.bool_()), ("admit", pa.int32()), ("discharge", pa.int32()), ("los", pa.float64()),
                  ("cost", pa.float64()), ("share", pa.float64()), ("death", pa.bool_()), ("planned", pa.bool_()),
                  ("unit", pa.int32())])
_MIX = np.uint64(0x9E3779B97F4A7C15)
_BYTE_KEYS = np.random.default_rng(20251).integers(1, 2**63, 256, dtype=np.uint64) | np.uint64(1)


class Interner:
    """Strings to small integer ids, once per distinct value of a batch (never per case)."""

    def __init__(self):
        self.ids: dict = {}
        self.names: list = []

    def encode(self, arr) -> np.ndarray:
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if not pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_encode()
        lut = np.array([self.id_of(v) for v in arr.dictionary.cast(pa.string()).to_pylist()] + [self.id_of(None)],
                       np.int32)
        idx = arr.indices.fill_null(len(lut) - 1).to_numpy(zero_copy_only=False).astype(np.int64)
        return lut[idx]

    def id_of(self, v) -> int:
        key = "" if v is None else v
        if key not in self.ids:
            self.ids[key] = len(self.names)
            self.names.append(key)
        return self.ids[key]


class Grid:
    """Running sums over (row id, column id) pairs, growing with the ids."""

    def __init__(self, fields: int):
        self.a = np.zeros((8, 8, fields))

    def add(self, i: np.ndarray, j: np.ndarray, values: np.ndarray) -> None:
        if not len(i):
            return
        ni, nj = max(self.a.shape[0], int(i.max()) + 1), max(self.a.shape[1], int(j.max()) + 1)
        if (ni, nj) != self.a.shape[:2]:
            grown = np.zeros((ni * 2, nj * 2, self.a.shape[2]))
            grown[: self.a.shape[0], : self.a.shape[1]] = self.a
            self.a = grown
        flat = i.astype(np.int64) * self.a.shape[1] + j
        size = self.a.shape[0] * self.a.shape[1]
        for f in range(self.a.shape[2]):
            self.a[:, :, f] += np.bincount(flat, weights=values[:, f], minlength=size).reshape(self.a.shape[:2])


class Pairs:
    """Running sums over the (row id, column id) pairs that occur, kept sparse: (hospital,
    department) units x ADRGs or periods x hospitals x ADRGs would be mostly empty as a grid
    (thousands of units x hundreds of ADRGs). The rows of the batches (one sort) when a million are pending, or as many as the sums hold."""

    def __init__(self, fields: int):
        self.fields = fields
        self.keys = np.zeros(0, np.int64)
        self.vals = np.zeros((0, fields))
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.pending_rows = 0

    @staticmethod
    def _sum(keys: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i, j = keys >> 32, keys & 0xFFFFFFFF
        ni, nj = int(i.max(initial=0)) + 1, int(j.max(initial=0)) + 1
        if ni * nj <= 8 * len(keys) + 4096:  # a dense count is cheaper than a sort
            flat = i * nj + j
            sums = np.stack([np.bincount(flat, vals[:, f], minlength=ni * nj) for f in range(vals.shape[1])], axis=1)
            hit = np.flatnonzero(np.bincount(flat, minlength=ni * nj))
            return (hit // nj) << 32 | hit % nj, sums[hit]
        u, inv = np.unique(keys, return_inverse=True)
        inv = inv.reshape(-1)
        return u, np.stack([np.bincount(inv, vals[:, f], minlength=len(u)) for f in range(vals.shape[1])], axis=1)

    def add(self, i: np.ndarray, j: np.ndarray, values: np.ndarray) -> None:
        if not len(i):
            return
        self.pending.append((i.astype(np.int64) << 32 | j.astype(np.int64),
                             np.asarray(values, float).reshape(len(i), -1)))
        self.pending_rows += len(i)
        if self.pending_rows > max(1_000_000, len(self.keys)):  # one sort per million rows
            self._merge()

    def _merge(self) -> None:
        if self.pending:
            self.keys, self.vals = self._sum(np.concatenate([self.keys, *(k for k, _ in self.pending)]),
                                             np.concatenate([self.vals, *(v for _, v in self.pending)]))
            self.pending, self.pending_rows = [], 0

    def items(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row ids, column ids, sums) of every pair, by row then column."""
        self._merge()
        return (self.keys >> 32).astype(np.int64), (self.keys & 0xFFFFFFFF).astype(np.int64), self.vals

    def total(self, col: int = 0) -> float:
        self._merge()
        return float(self.vals[:, col].sum()) if len(self.vals) else 0.0

    @classmethod
    def of_grid(cls, a: np.ndarray) -> "Pairs":
        """The non-empty cells (first field > 0) of a dense grid."""
        out = cls(a.shape[2])
        i, j = np.nonzero(a[..., 0] > 0)
        out.keys, out.vals = i.astype(np.int64) << 32 | j, a[i, j]
        return out


def patient_hash(col) -> np.ndarray:
    """A 64-bit hash of each patient id (integers mixed, text hashed byte by byte, vectorised)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_integer(col.type):
        v = col.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64).view(np.uint64)
        with np.errstate(over="ignore"):
            return (v + np.uint64(1)) * _MIX ^ ((v * _MIX) >> np.uint64(29))
    s = col.cast(pa.string()).fill_null("")
    off = np.frombuffer(s.buffers()[1], np.int32)[s.offset: s.offset + len(s) + 1].astype(np.int64)
    data = np.frombuffer(s.buffers()[2], np.uint8) if s.buffers()[2] is not None else np.zeros(0, np.uint8)
    data = data[off[0]: off[-1]]
    off = off - off[0]
    pos = np.arange(len(data)) - np.repeat(off[:-1], np.diff(off))
    with np.errstate(over="ignore"):
        w = _BYTE_KEYS[(data.astype(np.int64) + 31 * pos) % 256] * (pos.astype(np.uint64) + np.uint64(1))
        out = np.zeros(len(s), np.uint64)
        nonempty = np.diff(off) > 0
        if len(data):
            out[nonempty] = np.add.reduceat(w, off[:-1][nonempty])
        return out * _MIX + np.diff(off).astype(np.uint64)


def _days(batch: pa.RecordBatch, name: str, n: int) -> np.ndarray:
    if name not in batch.schema.names:
        return np.full(n, -(2**31), np.int32)
    col = batch.column(name)
    if not pa.types.is_date32(col.type):
        col = pc.cast(pc.cast(col, pa.timestamp("s"), safe=False), pa.date32()) if not pa.types.is_date(
            col.type) else pc.cast(col, pa.date32())
    return pc.cast(col, pa.int32()).fill_null(-(2**31)).to_numpy(zero_copy_only=False)


def period_of(days: np.ndarray, period: str) -> np.ndarray:
    """A period number per discharge day (days since 1970; the missing marker gives -1): year,
    half, quarter or month, numbered so that later periods have larger numbers."""
    ok = days > -(2**31)
    month = (np.where(ok, days, 0).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64))  # since 1970-01
    per = {"year": 12, "half": 6, "quarter": 3, "month": 1}[period]
    return np.where(ok, month // per, -1)


def period_label(p: int, period: str) -> str:
    """``2025``, ``2025H2``, ``2025Q3``, ``2025-07``."""
    if period == "year":
        return str(1970 + p)
    if period == "month":
        return f"{1970 + p // 12}-{p % 12 + 1:02d}"
    k = 2 if period == "half" else 4
    return f"{1970 + p // k}{'H' if k == 2 else 'Q'}{p % k + 1}"


def _floats(batch: pa.RecordBatch, name: str | None, n: int) -> np.ndarray:
    if name is None or name not in batch.schema.names:
        return np.full(n, np.nan)
    return pc.cast(batch.column(name), pa.float64(), safe=False).to_numpy(zero_copy_only=False)


class Collector:
    """Pass one: ``add(batch, grouped, row_offset)`` per batch; then the bucket files and totals."""

    def __init__(self, workdir: str | os.PathLike, pack, buckets: int = 16, *, hospital: str = "hospital_id",
                 death_codes: tuple[str, ...] = ("5",)):
        self.dir = Path(workdir)
        self.pack, self.buckets, self.hospital, self.death_codes = pack, buckets, hospital, death_codes
        self.hosp, self.peer, self.drg, self.adrg, self.mdc = (Interner() for _ in range(5))
        self.hosp_adrg = Grid(2)  # cases in split ADRGs, of which in the CC/MCC split
        self.peer_drg = Grid(5)  # cases, cost sum, los sum, share-ratio sum, share-ratio square sum
        self.peer_drg_share = Grid(1)  # cases with a patient share
        self.drg_region = Grid(4)  # (0, drg): cases, cost sum, deaths, cases with a cost
        self.hosp_peer: dict[int, int] = {}
        self.coding_errors = Grid(1)  # (hospital, 0): cases with at least one error-severity edit
        # severity drift: per discharge period, (hospital, ADRG) / (unit, ADRG) like hosp_adrg
        self.period_adrg: dict[int, Pairs] = {}
        self.period_unit_adrg: dict[int, Pairs] = {}
        # lifting secondary diagnoses: (hospital, ADRG, code id) -> cases that code alone lifted (AE95)
        self.lift_code = Interner()
        self.lifts = Pairs(1)  # row: hospital, column: ADRG << 20 | code id
        # departments: a unit is one (hospital, department) pair
        self.dept = Interner()
        self.unit_of = PairIds()  # (hospital id, department id) -> unit id
        self.unit_hosp: list[int] = []
        self.unit_dept: list[int] = []
        self.unit_adrg = Pairs(2)
        self.unit_errors = Grid(1)
        self.rows = 0
        self.has_share = False
        self.writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}

    def path(self, b: int) -> Path:
        return self.dir / f"bucket-{b:04d}.arrow"

    def units(self, hosp: np.ndarray, dept: np.ndarray) -> np.ndarray:
        """The unit id of each (hospital, department) pair; pairs not met before get the next
        ids, in (hospital, department) order."""
        def new(h: np.ndarray, d: np.ndarray) -> np.ndarray:
            ids = np.arange(len(self.unit_hosp), len(self.unit_hosp) + len(h))
            self.unit_hosp.extend(h.tolist())
            self.unit_dept.extend(d.tolist())
            return ids

        return self.unit_of.ids(hosp, dept, new).astype(np.int32)

    def add(self, batch: pa.RecordBatch, grouped: pa.RecordBatch, row_offset: int,
            error_rows: np.ndarray | None = None, lifts: tuple[np.ndarray, pa.Array] | None = None) -> None:
        """One batch: ``error_rows`` are the batch's rows (0-based in the batch) with an error edit;
        ``lifts`` the (rows, codes) of its AE95 findings (the code alone lifting the case)."""
        n = batch.num_rows
        names = batch.schema.names
        pk = self.pack
        # without a hospital (or peer) column every case is of one hospital (one peer group), "-"
        hosp = self.hosp.encode(batch.column(self.hospital)) if self.hospital in names else \
            np.full(n, self.hosp.id_of("-"), np.int32)
        peer = self.peer.encode(batch.column(pk.peer_column)) if pk.peer_column in names else \
            np.full(n, self.peer.id_of("-"), np.int32)
        drg_s = grouped.column("drg").cast(pa.string())
        drg, adrg, mdc = (it.encode(grouped.column(c)) for it, c in ((self.drg, "drg"), (self.adrg, "adrg"),
                                                                      (self.mdc, "mdc")))
        grouped_ok = pc.equal(grouped.column("status").cast(pa.string()), "grouped").fill_null(False)
        ok = grouped_ok.to_numpy(zero_copy_only=False)
        split_adrg = pc.match_substring_regex(drg_s, "[135]$").fill_null(False).to_numpy(zero_copy_only=False) & ok
        severe = pc.match_substring_regex(drg_s, "[13]$").fill_null(False).to_numpy(zero_copy_only=False) & ok
        cost, los = _floats(batch, "total_cost", n), _floats(batch, "los", n)
        share = _floats(batch, pk.share_column, n)
        self.has_share |= bool(np.isfinite(share).any())
        death = (pc.is_in(batch.column("discharge").cast(pa.string()), pa.array(list(self.death_codes)))
                 .fill_null(False).to_numpy(zero_copy_only=False)) if "discharge" in names else np.zeros(n, bool)
        pdx = pc.list_element(batch.column("dx"), 0) if pa.types.is_list(batch.column("dx").type) else \
            pc.list_element(pc.split_pattern(batch.column("dx"), "|"), 0)
        pdx = pdx.cast(pa.string()) if not pa.types.is_dictionary(pdx.type) else pdx.dictionary_decode()
        planned = np.zeros(n, bool)
        for prefix in pk.planned_dx:
            planned |= pc.starts_with(pdx, prefix).fill_null(False).to_numpy(zero_copy_only=False)
        case_id = batch.column("case_id").cast(pa.string()) if "case_id" in names else \
            pa.array(np.arange(row_offset, row_offset + n)).cast(pa.string())
        pkey = patient_hash(batch.column("patient_id")) if "patient_id" in names else \
            np.arange(row_offset, row_offset + n).astype(np.uint64) * _MIX
        has_dept = pk.dept_column in names
        unit = self.units(hosp, self.dept.encode(batch.column(pk.dept_column))) if has_dept else \
            np.full(n, -1, np.int32)
        slim = pa.RecordBatch.from_arrays([
            pa.array(np.arange(row_offset, row_offset + n, dtype=np.int64)), case_id, pa.array(pkey),
            pa.array(hosp), pa.array(peer), pa.array(drg), pa.array(adrg), pa.array(mdc), pa.array(severe),
            pa.array(_days(batch, "admit_date", n)), pa.array(_days(batch, "discharge_date", n)), pa.array(los),
            pa.array(cost), pa.array(share), pa.array(death), pa.array(planned), pa.array(unit, pa.int32())],
            schema=SLIM)
        self._write(slim, (pkey % np.uint64(self.buckets)).astype(np.int64))
        # running totals: grouped cases only
        o = np.flatnonzero(ok)
        self.hosp_adrg.add(hosp[split_adrg], adrg[split_adrg],
                           np.c_[np.ones(int(split_adrg.sum())), severe[split_adrg]])
        ratio = share / cost
        has = ok & np.isfinite(cost) & (cost > 0)
        r = np.where(has & np.isfinite(ratio), ratio, 0.0)
        w = has & np.isfinite(ratio)
        self.peer_drg.add(peer[has], drg[has], np.c_[np.ones(int(has.sum())), cost[has], np.nan_to_num(los[has]),
                                                     r[has], r[has] ** 2 * w[has]])
        self.peer_drg_share.add(peer[w], drg[w], np.ones((int(w.sum()), 1)))
        self.drg_region.add(np.zeros(len(o), np.int64), drg[o], np.c_[np.ones(len(o)), np.where(has[o], cost[o], 0),
                                                                         death[o], has[o]])
        u, first = np.unique(hosp, return_index=True)
        for hh, pp in zip(u.tolist(), peer[first].tolist()):  # per distinct hospital
            self.hosp_peer.setdefault(hh, pp)
        if error_rows is not None and len(error_rows):
            er = np.unique(error_rows)
            e = hosp[er]
            self.coding_errors.add(e, np.zeros(len(e), np.int64), np.ones((len(e), 1)))
            if has_dept:
                self.unit_errors.add(unit[er], np.zeros(len(er), np.int64), np.ones((len(er), 1)))
        sv = np.c_[np.ones(int(split_adrg.sum())), severe[split_adrg]]
        if has_dept:
            self.unit_adrg.add(unit[split_adrg], adrg[split_adrg], sv)
        per = period_of(_days(batch, "discharge_date", n), pk.drift_period)[split_adrg]
        for q in np.unique(per[per >= 0]).tolist():  # a few periods per batch
            at = per == q
            self.period_adrg.setdefault(q, Pairs(2)).add(hosp[split_adrg][at], adrg[split_adrg][at], sv[at])
            if has_dept:
                self.period_unit_adrg.setdefault(q, Pairs(2)).add(unit[split_adrg][at], adrg[split_adrg][at], sv[at])
        if lifts is not None and len(lifts[0]):
            r = lifts[0]
            code = self.lift_code.encode(lifts[1]).astype(np.int64)
            self.lifts.add(hosp[r], adrg[r].astype(np.int64) << 20 | code, np.ones(len(r)))
        self.rows += n

    def _write(self, slim: pa.RecordBatch, bucket: np.ndarray) -> None:
        order = np.argsort(bucket, kind="stable")
        counts = np.bincount(bucket, minlength=self.buckets)
        sorted_ = slim.take(pa.array(order))
        start = 0
        for b, c in enumerate(counts):
            if c:
                w = self.writers.get(b)
                if w is None:
                    w = self.writers[b] = pa.ipc.new_file(str(self.path(b)), SLIM)
                w.write_batch(sorted_.slice(start, c))
            start += c

    def close(self) -> list[Path]:
        for w in self.writers.values():
            w.close()
        return [self.path(b) for b in sorted(self.writers)]

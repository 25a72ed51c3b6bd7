"""Renormalisation: the rate scale s at which the total meets its target, and the spool of
DRG-priced rows that its fixed point re-reads when the case types move with s."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc
from grouper._util.money import MoneyOverflow
from grouper.io import sweep_stale
from grouper.payment.drg.cases import Prep, Run
from grouper.payment.drg.inputs import SETTLED
from grouper.payment.drg.pricing import classify
from grouper.payment.drg.special_review import Candidates, find_candidates, review_scope

if TYPE_CHECKING:
    from grouper.payment.drg.gather import Pass1


class Spool:
    """The DRG-priced rows of pass 1, written to a temporary Arrow file: with the payment
    standard as outlier base the case types move with the rate scale, and each step of its
    fixed point re-reads this (about 100 bytes per priced case) instead of the input."""

    NUM = ("rw", "alos", "cost", "los", "share", "rate", "unit", "fund_ratio", "factor")

    #: spool folders of runs that were killed (their process is gone): removed by the next run
    STALE = re.compile(r"drg-settle-(?P<pid>\d+)-[a-z0-9_]{8}")

    def __init__(self):
        sweep_stale(tempfile.gettempdir(), self.STALE)
        self.dir = tempfile.mkdtemp(prefix=f"drg-settle-{os.getpid()}-")
        self.path = Path(self.dir) / "priced.arrow"
        self.writer = None
        self.schema = None

    def add(self, p: Prep, factor: np.ndarray) -> None:
        i = np.flatnonzero(p.priced)
        cols = {name: (getattr(p, name) if name != "factor" else factor) for name in self.NUM}
        cols["fund_ratio"] = p.fund_ratio if p.fund_ratio is not None else np.full(p.n, np.nan)
        arrays = {k: pa.array(v[i]) for k, v in cols.items()}
        arrays["short"] = pa.array(p.short[i])
        arrays["applied"] = pa.array(p.applied[i] if p.applied is not None else np.zeros(len(i), bool))
        arrays["hid"] = pa.array(p.hid[i])
        arrays["row"] = pa.array(p.rows[i])
        ids = p.case_id.take(pa.array(i))
        if pa.types.is_dictionary(ids.type):
            ids = pc.cast(ids, ids.type.value_type)
        arrays["case_id"] = ids.combine_chunks()  # one type in every batch (see ``conform``)
        b = pa.RecordBatch.from_pydict(arrays)
        if self.writer is None:
            self.schema = b.schema
            self.writer = pa.ipc.new_file(str(self.path), b.schema)
        self.writer.write_batch(b)

    def close_writer(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def batches(self, applied: bool, ratio: bool, cbar: float) -> Iterator[tuple[Prep, np.ndarray]]:
        """The spooled rows as small preparations of priced rows, with their final knob factor."""
        if self.schema is None:
            return
        with pa.OSFile(str(self.path)) as f:  # read, not memory-mapped: memory stays bounded
            reader = pa.ipc.open_file(f)
            for i in range(reader.num_record_batches):
                yield self._prep(reader.get_batch(i), applied, ratio, cbar)

    @staticmethod
    def _prep(b: pa.RecordBatch, applied: bool, ratio: bool, cbar: float) -> tuple[Prep, np.ndarray]:
        v = {k: b.column(k).to_numpy(zero_copy_only=False) for k in b.schema.names if k != "case_id"}
        n = b.num_rows
        p = Prep(n, np.zeros(n, np.int64), v["rw"], np.full(n, np.nan), v["alos"], v["cost"], v["los"], v["share"],
                 v["rate"], np.ones(n), v["unit"], v["hid"], np.full(n, SETTLED, np.int8), np.zeros(n, bool),
                 np.zeros(n), v["short"].astype(bool), v["applied"].astype(bool) if applied else None,
                 v["fund_ratio"] if ratio else None, cbar, np.ones(n, bool), v["row"],
                 pa.chunked_array([b.column("case_id")]))
        return p, v["factor"]

    def remove(self) -> None:
        self.close_writer()
        shutil.rmtree(self.dir, ignore_errors=True)


def spool_pass(run: Run, spool: Spool, s: float, allowed: np.ndarray, evals: bool):
    """One read of the spooled priced rows with case types at rate scale ``s``: the special-review
    rows taken there and, with ``evals``, the (scale 0, scale 1) totals of those rows."""
    pack = run.pack
    sr = pack.special_review
    cd = Candidates([(0, 0.0), (0, 1.0)] if evals else [])
    for sp, f in spool.batches(sr.enabled and sr.application_column is not None,
                               pack.fund.patient_share == "ratio", run.weights.cbar):
        cand, ratio = find_candidates(sp, pack, f, s)
        if not run.review:
            cand = np.zeros(sp.n, bool)
        cd.add(sp, pack, cand, ratio, review_scope(sp, pack), classify(sp, pack, f, s) if evals else None, [f])
    rows, taken = cd.select(allowed)
    return rows, (cd.totals(taken) if evals else None)


def solve_scale(run: Run, one: Pass1, target: float, totals: dict, allowed: np.ndarray) -> float:
    """The rate scale s at which the total (payment, or fund on a fund basis) equals ``target``.
    Amounts are affine in s for fixed case types; with the payment standard as outlier base the
    types move with s, so the fit is repeated until s settles (the residual is reported), each
    time over the spooled priced rows."""
    last = one.last
    t0, t1 = totals[(last, 0.0)], totals[(last, 1.0)]
    s = 1.0
    for it in range(50):
        if it:
            try:
                _, (a, b) = spool_pass(run, one.spool, s, allowed, True)
            except MoneyOverflow:  # the fixed point runs away: amounts of 2^64 yuan and more
                raise ValueError(f"renormalisation: the rate scale does not settle (at scale {s:.3g} the case "
                                 "types move so that the payments grow without bound); no rate meets the "
                                 "target with the payment standard as outlier base") from None
            # exact: the spooled rows plus the part that does not move, one sum over every settled row
            t0, t1 = a.plus(one.fixed_part).value(), b.plus(one.fixed_part).value()
        if t1 == t0:
            raise ValueError("renormalisation: no settled case is paid by the rate, so no rate meets the target")
        s_new = (target - t0) / (t1 - t0)
        if not s_new > 0:
            raise ValueError(f"renormalisation: the target {target:,.2f} is below the payments that do not scale "
                             f"with the rate ({t0:,.2f}: FFS, bed-day, special review)")
        done = run.fixed or abs(s_new - s) <= 1e-13 * s_new
        s = s_new
        if done:
            break
    return s

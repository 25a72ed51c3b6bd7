"""pytest-benchmark suite: the four ways into the grouper, on a smaller workload.

``pytest benchmarks/ --benchmark-disable`` runs each function once, as a quick smoke test;
``pytest benchmarks/ --benchmark-enable`` times them (one call = the whole workload; divide
by ``extra_info["cases"]`` for per-case cost). Assertions check results, never time.
"""

from __future__ import annotations

import numpy as np
import pytest

import grouper
from grouper.engine.reference import ReferenceGrouper
from workload import build_table, cases, records

N_BATCH = 100_000
N_ONE = 2_000


@pytest.fixture(scope="module")
def g():
    return grouper.Grouper("chs-drg-1.1", n_threads=1)


@pytest.fixture(scope="module")
def table():
    return build_table(N_BATCH)


@pytest.fixture(scope="module")
def recs(table):
    return records(table, N_ONE)


def test_kernel_preencoded(benchmark, g, table):
    enc = g.encoder.encode(table.combine_chunks().to_batches()[0])
    n = enc.n
    out = (np.empty(n, np.int8), np.empty(n, np.int32), np.empty(n, np.int32),
           np.empty(n, np.int32), np.empty(n, np.int8), np.empty(n, np.int32))
    out[0].fill(-1)
    benchmark.extra_info["cases"] = n
    benchmark(g._program.group_batch, enc.fields, enc.dx_off, enc.dx_ids, enc.px_off, enc.px_ids, *out)
    assert (out[0] >= 0).all()  # every row got a status


def test_group_from_strings(benchmark, g, table):
    benchmark.extra_info["cases"] = table.num_rows
    out = benchmark(g.group, table, n_threads=1)
    assert out.num_rows == table.num_rows
    assert out.column("case_id").equals(table.column("case_id"))


def test_group_one(benchmark, g, recs):
    benchmark.extra_info["cases"] = len(recs)
    out = benchmark(lambda: [g.group_one(**r) for r in recs])
    assert len(out) == len(recs)


def test_reference(benchmark, g, recs):
    ref = ReferenceGrouper(g.ruleset)
    cs = cases(recs)
    benchmark.extra_info["cases"] = len(cs)
    out = benchmark.pedantic(lambda: [ref.group(c) for c in cs], rounds=3, warmup_rounds=1)
    kernel = [g.group_one(**r) for r in recs[:200]]
    assert [(r.mdc, r.adrg, r.drg) for r in out[:200]] == [(k.mdc, k.adrg, k.drg) for k in kernel]

"""DIP benchmarks in CI on a small province: they must work; times are not judged.

``pytest benchmarks/test_bench_dip.py --benchmark-enable`` times the in-process catalogue build
and settlement of 50,000 synthetic cases (one call = all of them)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from bench_dip import main

from grouper.payment.dip import DipParams, ProcedureTypes, build_catalogue, settle_table
from grouper.analytics.synth import SynthSpec, generate

N = 50_000


@pytest.fixture(scope="module")
def province():
    return pa.Table.from_batches(list(generate(SynthSpec(N, hospitals=50, seed=2))))


@pytest.fixture(scope="module")
def types():
    return ProcedureTypes.from_ruleset("chs-drg-1.1")


def test_catalogue_build(benchmark, province, types):
    benchmark.extra_info["cases"] = N
    cat = benchmark(build_catalogue, province, DipParams(), procedure_types=types)
    assert cat.info["cases"] == N


def test_settle(benchmark, province, types):
    benchmark.extra_info["cases"] = N
    cat = build_catalogue(province, DipParams(), procedure_types=types)
    params = DipParams(fund_budget=1.2e9, fund_ratio=0.7)
    s = benchmark(settle_table, province, cat, params, procedure_types=types)
    assert s.cases.num_rows == N and s.summary["statuses"]["settled"] == N


def test_dip_benchmark_script_runs(tmp_path):
    r = main(["--cases", "20000", "--dir", str(tmp_path)])
    assert r["drg dip settle"]["seconds"] > 0 and (tmp_path / "dip-hospitals.csv").exists()

"""Smoke test of bench_kernel.py: both workloads run in child processes; outputs are compared."""

import json

import bench_kernel
from grouper.analytics.synth import SynthSpec, write_synthetic


def test_bench_kernel_runs_this_tree(tmp_path, capsys):
    province = tmp_path / "province.parquet"
    write_synthetic(SynthSpec(3000, ruleset="chs-drg-1.1"), province)
    out = tmp_path / "k.json"
    bench_kernel.main(["--province", str(province), "--cases", "3000", "--repeat", "1",
                       "--ruleset", "chs-drg-1.1", "--json", str(out)])
    doc = json.loads(out.read_text())
    assert doc["identical"] == {"province": True, "reference": True}
    assert doc["info"]["province"]["cases"] == 3000 and doc["best_1t_s"]["reference"]["this"] > 0
    assert "province" in capsys.readouterr().out

"""The regroup benchmark runs in CI on a small province: it must work; its times are not judged."""

from bench_regroup import main


def test_regroup_benchmark_runs(tmp_path):
    r = main(["--cases", "20000", "--dir", str(tmp_path)])
    assert r["regroup"] > 0 and (tmp_path / "summary.json").exists()

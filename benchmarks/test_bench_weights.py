"""The weights/indices benchmark runs in CI on a small province: it must work; times are not judged."""

from bench_weights import main


def test_weights_benchmark_runs(tmp_path):
    r = main(["--cases", "20000", "--dir", str(tmp_path)])
    assert r["weights"][0] > 0 and (tmp_path / "indices.csv").exists()

"""The distributed benchmark's quick mode runs in CI: every run must agree; times are not judged."""

from bench_distributed import main


def test_distributed_quick_mode_runs(tmp_path):
    results = main(["--quick", "--dir", str(tmp_path), "--workers", "2"])
    assert results["cases"] == 40_000 and results["files"] == 2
    assert len(results["runs"]) >= 3 and all(r["cases_per_s"] > 0 for r in results["runs"].values())

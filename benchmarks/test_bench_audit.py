"""The audit benchmark runs in CI on a small province: it must work; times are not judged."""

from bench_audit import main


def test_audit_benchmark_runs(tmp_path):
    r = main(["--cases", "30000", "--dir", str(tmp_path), "--buckets", "4"])
    assert r["audit"][0] > 0 and r["group"][0] > 0
    assert set(r["answers"]) >= {"AS01", "upcoding", "split", "low_standard"}
    assert (tmp_path / "flags.parquet").exists() and (tmp_path / "audit.html").exists()

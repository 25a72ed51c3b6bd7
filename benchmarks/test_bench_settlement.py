"""The settlement benchmark runs in CI on a small province: it must work; times are not judged."""

from bench_settlement import main


def test_settlement_benchmark_runs(tmp_path):
    r = main(["--cases", "20000", "--dir", str(tmp_path)])
    assert r["settle_raw"][0] > 0 and r["settle_grouped"][1] > 0
    assert (tmp_path / "settled.parquet").exists() and (tmp_path / "hospitals.csv").exists()


def test_settlement_benchmark_knobs_and_payment_standard_variant_runs(tmp_path):
    r = main(["--cases", "20000", "--dir", str(tmp_path), "--knobs", "--outlier-base", "payment_standard"])
    assert r["settle_raw"][0] > 0 and r["settle_grouped"][1] > 0
    text = (tmp_path / "pack_variant.toml").read_text(encoding="utf-8")
    assert 'base = "payment_standard"' in text and 'renormalize = "knobs"' in text
    assert (tmp_path / "hospitals_knobs.parquet").exists()

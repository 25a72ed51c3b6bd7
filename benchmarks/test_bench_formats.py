"""The formats benchmark runs in CI on small files: it must work; times are not judged."""

from bench_formats import main


def test_formats_benchmark_runs(tmp_path):
    r = main(["--quick", "--repeats", "1", "--dir", str(tmp_path)])
    assert r["rows"] == 20_000 and r["grouping"]["ratio"] > 0 and r["all"]["gb18030_s"] > 0
    assert r["xlsx"]["rows"] == 5_000 and r["xlsx"]["read_s"] > 0
    assert r["bytes"]["gb18030"] < r["bytes"]["utf-8"]  # Chinese text: 2 bytes a character, not 3

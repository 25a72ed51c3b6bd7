"""The end-to-end benchmark's quick mode runs in CI: it must work; its times are not judged."""

from bench_end_to_end import main


def test_end_to_end_quick_mode_runs(tmp_path):
    results = main(["--quick", "--dir", str(tmp_path)])
    assert results["cases"] == 100_000
    assert results["threads_1"]["cases_per_s"] > 0 and results["reference_cases_per_s"] > 0

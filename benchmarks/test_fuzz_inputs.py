"""The corrupt-input fuzz check of issue 18 runs in CI in its quick form: crafted corruptions and
a few byte-flipped files through drg group / regroup / settle and the API; none may crash."""

from fuzz_inputs import run


def test_corrupt_inputs_never_crash(tmp_path):
    summary = run(seeds=10, workdir=str(tmp_path))
    assert summary["worker_exit"] == 0, summary["problems"]
    assert summary["problems"] == []
    assert summary["cases"] >= 30 and summary["cli_failed_cleanly"] >= 50

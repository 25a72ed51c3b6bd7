"""The load test of ``drg serve`` runs in CI in its quick form: it must work, with no errors and no
5xx on fuzzed bodies; times are not judged."""

from bench_serve import main


def test_serve_load_test_runs_without_errors():
    r = main(["--quick"])
    assert r["single"]["requests"] > 0 and r["single"]["errors"] == 0
    assert r["batch"]["requests"] > 0 and r["batch"]["errors"] == 0
    f = r["fuzz"]
    assert f["5xx"] == 0 and f["transport"] == 0 and f["4xx"] > 0

"""The aggregation benchmark runs on a tiny province: it must work; times are not judged."""

import importlib.util

import bench_aggregate
from bench_aggregate import main


def test_aggregate_benchmark_runs(tmp_path, capsys):
    r = main(["--cases", "3000", "--dir", str(tmp_path), "--repeat", "1", "--department"])
    out = capsys.readouterr().out
    if importlib.util.find_spec("duckdb") is None:  # nothing to compare with: said, nothing run
        assert r == {} and "duckdb is not installed" in out
        return
    assert {"weights/duckdb", "indices/duckdb", "weights/this", "indices_dept/this"} <= set(r["runs"])
    assert (tmp_path / "indices_duckdb.csv").exists() and "/ duckdb" in out and "DuckDB agrees" in out
    assert (tmp_path / "weights_this.csv").exists() and (tmp_path / "departments_this.csv").exists()


def test_without_duckdb_or_a_baseline_it_says_so_and_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench_aggregate, "has_duckdb", lambda python: False)
    assert main(["--cases", "3000", "--dir", str(tmp_path)]) == {}
    assert "duckdb is not installed" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())

"""The aggregation step of `drg weights` and `drg indices` on grouped cases, against DuckDB
doing the same aggregation and, optionally, against a baseline tree, in one run.

    python benchmarks/bench_aggregate.py [--cases 2000000] [--dir DIR] [--baseline TREE] [--repeat 3]
                                         [--department] [--json FILE]

A synthetic province (`drg synth`, 200 hospitals, CHS-DRG 1.1) is grouped once with `drg group
--keep hospital_id,total_cost,los,discharge,dept`; then `drg weights` (iqr:1.5) and `drg indices`
(with those weights) read the grouped file as it is (no --regroup), each in a fresh process,
and the same aggregation runs in DuckDB, also in a fresh process: for the weights the per-DRG
quartiles, Tukey fences and trimmed count, mean, population SD and mean stay; for the indices
the (hospital, DRG) cells, the DRG peer means and per hospital the cases, DRG count, total
weight, CMI and cost and time indices (no risk tiers: DuckDB does a little less). ``--baseline``
is a checkout with its own ``.venv`` (``.venv/bin/python``): its commands run alternately with
this tree's (A B A B ...) and their outputs must be byte-identical. Each configuration reports
the best wall time of ``--repeat`` runs, the CPU seconds of that run (all threads; on a shared
machine the steadier number), peak RSS, and the ratio to DuckDB; then how DuckDB's numbers agree
with ours (kept cases per DRG, mean costs, indices). The load average is printed.
Reports only; never fails on time. Without DuckDB installed (``pip install duckdb``, or the
``bench`` extra) it says so and skips the DuckDB rows; with no DuckDB and no baseline there is
nothing to compare, and it exits 0 with that message.
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "benchmarks"))
from bench_end_to_end import PEAK_KB  # noqa: E402  (the child's own peak memory)
from bench_compare import run  # noqa: E402  (fresh process: seconds, peak RSS MiB, CPU seconds)

RULESET = "chs-drg-1.1"
KEEP = ("hospital_id", "total_cost", "los", "discharge", "dept")

# DuckDB in a fresh process: the same rows counted, the same aggregates, written as CSV.
DUCK_CHILD = PEAK_KB + r"""
import resource, sys, duckdb
what, src, out, weights = sys.argv[1:5]
con = duckdb.connect()
if what == "weights":
    sql = f'''
    WITH c AS (SELECT drg, adrg, total_cost AS x, los FROM read_parquet('{src}')
               WHERE status = 'grouped' AND total_cost > 0 AND los > 0),
    q AS (SELECT drg, quantile_cont(x, 0.25) AS q1, quantile_cont(x, 0.75) AS q3 FROM c GROUP BY drg),
    f AS (SELECT drg, q1 - 1.5 * (q3 - q1) AS lo, q3 + 1.5 * (q3 - q1) AS hi FROM q),
    k AS (SELECT c.drg, any_value(c.adrg) AS adrg, count(*) AS n_all,
                 count(*) FILTER (WHERE x BETWEEN lo AND hi) AS n,
                 avg(x) FILTER (WHERE x BETWEEN lo AND hi) AS mean_cost,
                 stddev_pop(x) FILTER (WHERE x BETWEEN lo AND hi) AS sd,
                 avg(los) FILTER (WHERE x BETWEEN lo AND hi) AS mean_los
          FROM c JOIN f USING (drg) GROUP BY c.drg)
    SELECT drg, adrg, n, n_all - n AS n_trimmed, mean_cost,
           mean_cost / (SELECT sum(mean_cost * n) / sum(n) FROM k) AS rw, sd / mean_cost AS cv, mean_los
    FROM k ORDER BY drg'''
else:
    sql = f'''
    WITH c AS (SELECT hospital_id AS h, drg, total_cost AS x, los AS t, discharge = '5' AS dead
               FROM read_parquet('{src}') WHERE status = 'grouped' AND total_cost IS NOT NULL AND los >= 0),
    w AS (SELECT drg, rw FROM read_csv('{weights}', types = {{'drg': 'VARCHAR'}})),
    cell AS (SELECT h, drg, count(*) AS n, sum(x) AS sx, sum(t) AS st, sum(dead::INT) AS d
             FROM c JOIN w USING (drg) GROUP BY h, drg),
    peer AS (SELECT drg, sum(sx) / sum(n) AS e, sum(st) / sum(n) AS tt FROM cell GROUP BY drg)
    SELECT h AS hospital, sum(n) AS cases, count(*) AS drg_count, sum(rw * n) AS total_weight,
           sum(rw * n) / sum(n) AS cmi,
           sum(CASE WHEN e > 0 THEN sx / e ELSE n END) / sum(n) AS cost_index,
           sum(CASE WHEN tt > 0 THEN st / tt ELSE n END) / sum(n) AS time_index, sum(d) AS deaths
    FROM cell JOIN peer USING (drg) JOIN w USING (drg) GROUP BY h ORDER BY h'''
con.execute(f"COPY ({sql}) TO '{out}' (HEADER)")
r = resource.getrusage(resource.RUSAGE_SELF)
print("MAXRSS_KB", peak_kb(), r.ru_utime + r.ru_stime, file=sys.stderr)
"""


def run_duck(python: str, *args: str):
    """(seconds, peak RSS MiB, CPU seconds) of the DuckDB child."""
    return run(python, list(args), None, child=DUCK_CHILD, name="duckdb")


def has_duckdb(python: str) -> bool:
    import subprocess

    if python == sys.executable:
        return importlib.util.find_spec("duckdb") is not None
    return subprocess.run([python, "-c", "import duckdb"], capture_output=True).returncode == 0


def grouped_province(d: Path, cases: int, python: str) -> Path:
    """The grouped synthetic province of ``cases`` cases in ``d`` (made once, by this tree)."""
    src, out = d / f"province_{cases}.parquet", d / f"grouped_{cases}.parquet"
    if not src.exists():
        run(python, ["synth", "--cases", str(cases), "--hospitals", "200", "--year", "2025", "--seed", "1",
                     "-r", RULESET, "-o", str(src)], None)
    if not out.exists():
        run(python, ["group", str(src), "-r", RULESET, *(x for c in KEEP for x in ("--keep", c)), "-o", str(out)],
            None)
    return out


def agreement(d: Path) -> str:
    """How this tree's weights and indices agree with DuckDB's (a check of the comparison itself)."""
    import pyarrow.csv as pv

    def rows(path: Path, key: str) -> dict:
        t = pv.read_csv(path, convert_options=pv.ConvertOptions(column_types={key: "string"}))
        return {r[key]: r for r in t.to_pylist()}

    a, b = rows(d / "weights_this.csv", "drg"), rows(d / "weights_duckdb.csv", "drg")
    same_n = sum(a[g]["n"] == b[g]["n"] for g in a if g in b)
    mean = max((abs(float(a[g]["mean_cost"]) - b[g]["mean_cost"]) for g in a if g in b), default=0.0)
    ia, ib = rows(d / "indices_this.csv", "hospital"), rows(d / "indices_duckdb.csv", "hospital")
    worst = max((abs(ia[h][c] - ib[h][c]) for h in ia if h in ib for c in ("cmi", "cost_index", "time_index")),
                default=0.0)
    return (f"DuckDB agrees: kept cases per DRG equal for {same_n} of {len(a)} DRGs ({len(b)} in DuckDB), mean cost "
            f"within {mean:.3f} yuan (ours is rounded to the fen); {len(ia)} hospitals ({len(ib)}), CMI and cost "
            f"and time indices within {worst:.1e}")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=2_000_000)
    ap.add_argument("--dir", type=Path, help="where to put the files (default: a temporary folder)")
    ap.add_argument("--baseline", type=Path, help="a checkout with its own .venv, run alternately with this tree")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--department", action="store_true", help="indices by hospital and department as well")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    this = sys.executable
    duck = has_duckdb(this)
    if not duck:
        print("duckdb is not installed (pip install duckdb, or the 'bench' extra): no DuckDB comparison")
        if a.baseline is None:
            print("and no --baseline: nothing to compare, nothing run")
            return {}
    d = Path(a.dir or tempfile.mkdtemp(prefix="drg-aggregate-"))
    d.mkdir(parents=True, exist_ok=True)
    src = grouped_province(d, a.cases, this)
    installs = {"this": this} | ({"baseline": str(a.baseline.resolve() / ".venv/bin/python")} if a.baseline else {})

    def commands(tag: str) -> dict[str, list[str]]:
        w = d / f"weights_{tag}.csv"
        cmds = {"weights": ["weights", str(src), "-r", RULESET, "-o", str(w),
                            "--summary", str(d / f"summary_{tag}.json"), "--overwrite"],
                "indices": ["indices", str(src), "-r", RULESET, "-w", str(d / "weights_this.csv"),
                            "-o", str(d / f"indices_{tag}.csv"), "--overwrite"]}
        if a.department:
            cmds["indices_dept"] = cmds["indices"][:-3] + ["--department-column", "dept", "-o",
                                                            str(d / f"departments_{tag}.csv"), "--overwrite"]
        return cmds

    best: dict[tuple[str, str], tuple[float, float, float]] = {}
    loads = [load()]
    for _ in range(max(1, a.repeat)):
        for tag, python in installs.items():  # A B A B: both under the same load
            for name, args in commands(tag).items():
                r = run(python, args, None)
                if (name, tag) not in best or r[0] < best[name, tag][0]:
                    best[name, tag] = r
        if duck:
            for name in ("weights", "indices"):
                r = run_duck(this, name, str(src), str(d / f"{name}_duckdb.csv"), str(d / "weights_this.csv"))
                if (name, "duckdb") not in best or r[0] < best[name, "duckdb"][0]:
                    best[name, "duckdb"] = r
        loads.append(load())

    same = {}
    if a.baseline:
        for name in ("weights", "summary", "indices", *(["departments"] if a.department else [])):
            ext = "json" if name == "summary" else "csv"
            same[name] = filecmp.cmp(d / f"{name}_this.{ext}", d / f"{name}_baseline.{ext}", shallow=False)

    print(f"{a.cases:,} synthetic cases (200 hospitals, {RULESET}), grouped file read as it is; "
          f"fresh process per run, best of {a.repeat}")
    print(f"load average (1, 5, 15 min) before and after each round: {' | '.join(loads)}; CPUs: {os.cpu_count()}")
    print(f"{'command':<14}{'install':<10}{'seconds':>9}{'CPU s':>8}{'peak MiB':>10}{'/ duckdb':>10}"
          f"{'/ this':>8}")
    for (name, tag), (t, m, cpu) in sorted(best.items()):
        ref = best.get((name, "duckdb"))
        mine = best.get((name, "this"))
        print(f"{name:<14}{tag:<10}{t:>9.2f}{cpu:>8.2f}{m:>10,.0f}"
              f"{(f'{t / ref[0]:.2f}x' if ref else '-'):>10}{(f'{t / mine[0]:.2f}x' if mine else '-'):>8}")
    if same:
        print("outputs byte-identical to the baseline: "
              + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in same.items()))
    if duck:
        print(agreement(d))
    result = {"cases": a.cases, "load": loads, "same_as_baseline": same,
              "runs": {f"{n}/{t}": {"seconds": v[0], "peak_mib": v[1], "cpu_seconds": v[2]}
                       for (n, t), v in best.items()}}
    if a.json:
        a.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()

"""DIP at provincial scale: time and peak memory of `drg dip catalogue`, `drg dip assign` and
`drg dip settle` on a synthetic province, each in a fresh process, in one run.

    python benchmarks/bench_dip.py [--cases 10000000] [--dir DIR] [--quick] [--json FILE]

The province is `drg synth` data (one year, 200 hospitals of three levels); the catalogue is
built from it and the same cases are then settled under a [dip] table with the numbers of the
illustrative pack (PV_s computed from the fund, so the input is read twice). Reports only;
never fails on time.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_end_to_end import province  # noqa: E402  (fresh process, peak RSS)
from bench_end_to_end import run_cli as run

PACK = """[dip]
score_scale = 1000
core_min_n = 15
year_weights = [1, 2, 7]
low_x = 0.5
high_x = 2.0
extreme_x = 5.0
fund_budget = 1.2e9
fund_ratio = 0.70
outlier_base = "level_mean"
special_review_cap = 0.005

[dip.level_coef]
"三级" = 1.05
"二级" = 1.0
"一级" = 0.95
"""


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10_000_000)
    ap.add_argument("--dir", type=Path, help="where to put the files (default: a temporary folder)")
    ap.add_argument("--quick", action="store_true", help="100,000 cases (smoke run)")
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args(argv)
    n = 100_000 if a.quick else a.cases
    d = Path(a.dir or tempfile.mkdtemp(prefix="drg-dip-"))
    d.mkdir(parents=True, exist_ok=True)
    src, t_synth = province(d, n)
    pack = d / "dip-pack.toml"
    pack.write_text(PACK, encoding="utf-8")
    cat, out = d / "dip-catalogue.parquet", d / "dip-settled.parquet"
    steps = {
        "drg dip catalogue": run("dip", "catalogue", str(src), "-o", str(cat), "--overwrite"),
        "drg dip assign": run("dip", "assign", str(src), "-c", str(cat), "-o", str(d / "dip-assigned.parquet"),
                              "--overwrite"),
        "drg dip settle": run("dip", "settle", str(src), "-c", str(cat), "-p", str(pack), "-o", str(out),
                              "--by-hospital", str(d / "dip-hospitals.csv"), "--overwrite"),
    }
    assert pq.ParquetFile(out).metadata.num_rows == n
    groups = pq.ParquetFile(cat).metadata.num_rows
    print(f"{n:,} synthetic cases (200 hospitals, {src.stat().st_size / 2**20:,.0f} MiB Parquet"
          + (f", synthesised in {t_synth:.1f} s" if not math.isnan(t_synth) else "") + f"); {groups:,} DIP groups; "
          "each command in a fresh process\n")
    print(f"{'command':<20}{'seconds':>9}{'CPU s':>8}{'cases/s':>14}{'peak RSS MiB':>14}")
    results = {"cases": n, "groups": groups}
    for name, (t, m, *cpu) in steps.items():  # run_cli: (seconds, peak RSS MiB[, CPU seconds])
        cpu_s = cpu[0] if cpu else float("nan")
        print(f"{name:<20}{t:>9.1f}{cpu_s:>8.1f}{n / t:>14,.0f}{m:>14,.0f}")
        results[name] = {"seconds": t, "cpu_seconds": cpu_s, "cases_per_s": n / t, "peak_rss_mib": m}
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()

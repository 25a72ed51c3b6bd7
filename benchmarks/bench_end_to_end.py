"""End to end, as a bureau runs it: synthetic province -> Parquet -> `drg group` -> Parquet.

    python benchmarks/bench_end_to_end.py [--cases 5000000] [--dir DIR] [--keep] [--quick]

Synthesises the province with `drg synth`, then times `drg group` Parquet -> Parquet in a fresh
process at one thread and at all threads (cases/s and the child's peak RSS), and, in the same run,
the pure-Python reference interpreter on a 20,000-case sample of the same file, and prints the
ratios. Reports only; never fails on time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

# The child runs the real command line and reports its own peak memory on exit.
CHILD = """
import resource, sys
from grouper.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def run_cli(*args: str) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one `drg` command in a fresh process."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"drg {' '.join(args)} failed:\n{p.stderr}")
    kb = next(int(line.split()[1]) for line in p.stderr.splitlines() if line.startswith("MAXRSS_KB"))
    return seconds, kb / 1024


def province(folder: Path, cases: int) -> tuple[Path, float]:
    """The synthetic province of ``cases`` cases in ``folder`` (made once; seconds it took, or nan)."""
    src = folder / f"province_{cases}.parquet"
    if src.exists():
        return src, float("nan")
    seconds, _ = run_cli("synth", "--cases", str(cases), "--hospitals", "200", "--year", "2025", "--seed", "1",
                         "-o", str(src))
    return src, seconds


def reference_rate(path: Path, n: int) -> float:
    import grouper
    from grouper.reference import Case, ReferenceGrouper

    rows = pq.ParquetFile(path).read_row_group(0).slice(0, n).to_pylist()
    ref = ReferenceGrouper(grouper.load_ruleset("chs-drg-1.1"))
    cases = [Case(r["sex"], r["age"], r["age_days"], r["birth_weight"], r["dx"], r["px"]) for r in rows]
    ref.group(cases[0])  # warm the code sets
    t0 = time.perf_counter()
    for c in cases:
        ref.group(c)
    return len(cases) / (time.perf_counter() - t0)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=5_000_000)
    ap.add_argument("--dir", type=Path, help="where to put the files (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the files")
    ap.add_argument("--quick", action="store_true", help="100,000 cases, 2,000 reference cases (smoke run)")
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args(argv)
    n = 100_000 if a.quick else a.cases
    n_ref = 2_000 if a.quick else 20_000
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    folder = Path(a.dir or tempfile.mkdtemp(prefix="drg-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    src, t_synth = province(folder, n)
    results = {"cases": n, "synth_seconds": t_synth, "file_mib": src.stat().st_size / 2**20}
    for t in sorted({1, threads}):
        out = folder / f"grouped_{t}.parquet"
        secs, rss = run_cli("group", str(src), "-o", str(out), "--threads", str(t), "--overwrite")
        assert pq.ParquetFile(out).metadata.num_rows == n
        results[f"threads_{t}"] = {"seconds": secs, "cases_per_s": n / secs, "peak_rss_mib": rss}
        if not a.keep:
            out.unlink()
    results["reference_cases_per_s"] = reference_rate(src, n_ref)
    if not a.keep and a.dir is None:
        src.unlink()
    ref = results["reference_cases_per_s"]
    print(f"machine: {platform.processor() or platform.machine()}, {threads} CPUs usable, Python {platform.python_version()}")
    print(f"province: {n:,} synthetic cases, {results['file_mib']:.0f} MiB Parquet, synthesised in {t_synth:.1f} s\n")
    print(f"{'run':<38}{'cases/s':>14}{'peak RSS MiB':>14}{'x reference':>13}")
    for t in sorted({1, threads}):
        r = results[f"threads_{t}"]
        print(f"{'drg group Parquet->Parquet, ' + str(t) + ' thread(s)':<38}{r['cases_per_s']:>14,.0f}"
              f"{r['peak_rss_mib']:>14,.0f}{r['cases_per_s'] / ref:>13,.0f}")
    print(f"{'reference interpreter (in process)':<38}{ref:>14,.0f}{'':>14}{1:>13}")
    one = results["threads_1"]["cases_per_s"]
    print(f"\ntargets (one core): >= 2 M cases/s end to end: {'met' if one >= 2e6 else 'NOT met'} "
          f"({one / 1e6:.2f} M); >= 1,000x the reference: {'met' if one / ref >= 1000 else 'NOT met'} ({one / ref:,.0f}x)")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()

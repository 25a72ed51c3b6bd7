"""End to end, as a bureau runs it: synthetic province -> Parquet -> `drg group` -> Parquet.

    python benchmarks/bench_end_to_end.py [--cases 5000000] [--dir DIR] [--keep] [--quick] [--repeat 3]

Synthesises the province with `drg synth`, then times `drg group` Parquet -> Parquet in a fresh
process: one kernel thread with the whole process pinned to one CPU (what one core can do), one
kernel thread unpinned (reading and writing overlap on other cores) and all threads. For each it
reports cases/s, the CPU time the child used (so "cores busy" = CPU time / wall time) and its peak
RSS; each is the best of --repeat runs, the one least disturbed by other load. In the same run
the pure-Python reference interpreter groups a 20,000-case sample of the same file, for the ratios.
Reports only; never fails on time.
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

# The child runs the real command line and reports its peak memory and CPU time (all threads).
#: A child's own peak memory: the high-water mark of its address space (``VmHWM``). Not
#: ``ru_maxrss``: Linux carries the parent's high-water mark across ``exec``, so every child of a
#: benchmark that had built a 2 M-case province in memory reported the parent's size.
PEAK_KB = """
def peak_kb():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:  # not Linux
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""

CHILD = PEAK_KB + """
import resource, sys
from grouper.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    r = resource.getrusage(resource.RUSAGE_SELF)
    print("MAXRSS_KB", peak_kb(), r.ru_utime + r.ru_stime, file=sys.stderr)
"""


def run_cli(*args: str, cpu: int | None = None) -> tuple[float, float, float]:
    """(seconds, peak RSS in MiB, CPU seconds) of one `drg` command in a fresh process, pinned
    to CPU ``cpu`` when given (Linux)."""
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, preexec_fn=pin)
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"drg {' '.join(args)} failed:\n{p.stderr}")
    line = next(line.split() for line in p.stderr.splitlines() if line.startswith("MAXRSS_KB"))
    return seconds, int(line[1]) / 1024, float(line[2])


def province(folder: Path, cases: int) -> tuple[Path, float]:
    """The synthetic province of ``cases`` cases in ``folder`` (made once; seconds it took, or nan)."""
    src = folder / f"province_{cases}.parquet"
    if src.exists():
        return src, float("nan")
    seconds, _, _ = run_cli("synth", "--cases", str(cases), "--hospitals", "200", "--year", "2025", "--seed", "1",
                            "-o", str(src))
    return src, seconds


def reference_rate(path: Path, n: int) -> float:
    import grouper
    from grouper.engine.reference import Case, ReferenceGrouper

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
    ap.add_argument("--repeat", type=int, default=3, help="runs of each configuration; the best is kept")
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args(argv)
    n = 100_000 if a.quick else a.cases
    n_ref = 2_000 if a.quick else 20_000
    repeat = 1 if a.quick else max(1, a.repeat)
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    threads = len(cpus) if cpus else os.cpu_count() or 1
    folder = Path(a.dir or tempfile.mkdtemp(prefix="drg-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    src, t_synth = province(folder, n)
    results = {"cases": n, "synth_seconds": t_synth, "file_mib": src.stat().st_size / 2**20, "repeat": repeat}
    # (key, label, kernel threads, CPU to pin to); runs interleaved so that load hits all alike
    configs = [("threads_1_pinned", "1 thread, pinned to one CPU", 1, cpus[0])] if cpus else []
    configs += [(f"threads_{t}", f"{t} thread(s)", t, None) for t in sorted({1, threads})]
    runs: dict[str, list] = {key: [] for key, *_ in configs}
    for _ in range(repeat):
        for key, _, t, cpu in configs:
            out = folder / f"grouped_{key}.parquet"
            runs[key].append(run_cli("group", str(src), "-o", str(out), "--threads", str(t), "--overwrite", cpu=cpu))
            assert pq.ParquetFile(out).metadata.num_rows == n
            if not a.keep:
                out.unlink()
    for key, *_ in configs:
        secs, rss, cpu_s = min(runs[key])
        results[key] = {"seconds": secs, "cases_per_s": n / secs, "peak_rss_mib": rss, "cpu_seconds": cpu_s,
                        "cores_busy": cpu_s / secs}
    results["reference_cases_per_s"] = reference_rate(src, n_ref)
    if not a.keep and a.dir is None:
        src.unlink()
    ref = results["reference_cases_per_s"]
    print(f"machine: {platform.processor() or platform.machine()}, {threads} CPUs usable, Python {platform.python_version()}")
    print(f"province: {n:,} synthetic cases, {results['file_mib']:.0f} MiB Parquet, synthesised in {t_synth:.1f} s; "
          f"best of {repeat} run(s), each in a fresh process\n")
    print(f"{'drg group Parquet->Parquet':<36}{'cases/s':>12}{'cores busy':>12}{'peak RSS MiB':>14}{'x reference':>13}")
    for key, label, *_ in configs:
        r = results[key]
        print(f"{label:<36}{r['cases_per_s']:>12,.0f}{r['cores_busy']:>12.2f}{r['peak_rss_mib']:>14,.0f}"
              f"{r['cases_per_s'] / ref:>13,.0f}")
    print(f"{'reference interpreter (in process)':<36}{ref:>12,.0f}{1:>12.2f}{'':>14}{1:>13}")
    one = results.get("threads_1_pinned", results["threads_1"])["cases_per_s"]
    print(f"\ntargets (one core: the pinned run): >= 2 M cases/s end to end: {'met' if one >= 2e6 else 'NOT met'} "
          f"({one / 1e6:.2f} M); >= 1,000x the reference: {'met' if one / ref >= 1000 else 'NOT met'} ({one / ref:,.0f}x)")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()

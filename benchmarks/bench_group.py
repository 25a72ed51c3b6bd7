"""Throughput of every way into the grouper, measured in one run on one workload.

    python benchmarks/bench_group.py [--cases N] [--threads T] [--quick] [--json FILE]

Measures (a) the kernel on pre-encoded ids, (b) ``Grouper.group`` from an in-memory Arrow
table of strings, (c) ``group_one`` per case and (d) the pure-Python reference interpreter,
each as the best of a few repeats, and prints them against the targets. It reports and
never fails on time: timings depend on the machine, so judging them is left to the reader.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import grouper  # noqa: E402
from grouper.engine.grouper import default_threads  # noqa: E402
from grouper.engine.reference import ReferenceGrouper  # noqa: E402
from workload import best, build_table, cases, records  # noqa: E402

RULESET = "chs-drg-1.1"
TARGETS = {"kernel_1t": 10e6, "group_1t": 1e6, "group_one_us": 20.0}  # one thread




def kernel_runner(g: grouper.Grouper, table: pa.Table, threads: int):
    """A closure running only the kernel over ids encoded beforehand (outputs preallocated)."""
    enc = g.encoder.encode(table.combine_chunks().to_batches()[0])
    n = enc.n
    out = (np.empty(n, np.int8), np.empty(n, np.int32), np.empty(n, np.int32),
           np.empty(n, np.int32), np.empty(n, np.int8), np.empty(n, np.int32))

    def run():
        if threads == 1:
            g._program.group_batch(enc.fields, enc.dx_off, enc.dx_ids, enc.px_off, enc.px_ids, *out)
        else:  # slices on the grouper's thread pool, as Grouper.group runs them
            g._kernel(enc, out, threads)
    return run, out


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "usable_cpus": default_threads(),
            "python": platform.python_version(), "numpy": np.__version__, "pyarrow": pa.__version__,
            "grouper": grouper.__version__, "platform": platform.platform()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, help="cases in the batch workload (default 1,000,000)")
    ap.add_argument("--threads", type=int, default=default_threads(), help="threads for the multi-thread run")
    ap.add_argument("--quick", action="store_true", help="small workload (20,000 cases), for a smoke run")
    ap.add_argument("--json", metavar="FILE", help="also write the numbers here")
    a = ap.parse_args(argv)
    n = a.cases or (20_000 if a.quick else 1_000_000)
    n_one = min(n, 20_000)
    n_ref = min(n, 1_000 if a.quick else 5_000)
    reps = 3 if a.quick else 5

    t0 = time.perf_counter()
    g = grouper.Grouper(RULESET, n_threads=1)
    table = build_table(n)
    recs = records(table, n_one)
    ref_cases = cases(recs[:n_ref])
    ref = ReferenceGrouper(g.ruleset)
    print(f"workload: {n:,} cases ({table.nbytes / 2**20:.0f} MiB in Arrow), built in "
          f"{time.perf_counter() - t0:.1f}s", flush=True)

    rates: dict[str, float] = {}
    run1, out1 = kernel_runner(g, table, 1)
    run1()  # warm-up (page faults, caches)
    rates["kernel_1t"] = n / best(run1, reps)
    if a.threads > 1:
        runT, _ = kernel_runner(g, table, a.threads)
        runT()
        rates[f"kernel_{a.threads}t"] = n / best(runT, reps)

    result = g.group(table, n_threads=1)  # warm-up, and a check that nothing is dropped
    if result.num_rows != n or not np.array_equal(result.column("flags").to_numpy(), out1[5]):
        raise SystemExit("group() disagrees with the kernel run; not a valid benchmark")
    rates["group_1t"] = n / best(lambda: g.group(table, n_threads=1), max(2, reps - 2))
    if a.threads > 1:
        rates[f"group_{a.threads}t"] = n / best(lambda: g.group(table, n_threads=a.threads), max(2, reps - 2))

    one = g.group_one
    t_one = best(lambda: [one(**r) for r in recs], 3)
    rates["group_one"] = n_one / t_one
    one_us = t_one / n_one * 1e6
    lat = np.empty(n_one)  # per-call latency: the percentiles a single-request service sees
    clock = time.perf_counter_ns
    for i, r in enumerate(recs):
        t0 = clock()
        one(**r)
        lat[i] = clock() - t0
    p50, p99 = (float(x) / 1e3 for x in np.percentile(lat, [50, 99]))

    ref.group(ref_cases[0])
    t_ref = best(lambda: [ref.group(c) for c in ref_cases], 2)
    rates["reference"] = n_ref / t_ref

    m = machine()
    print(f"machine: {m['cpu']}, {m['logical_cpus']} logical CPUs ({m['usable_cpus']} usable); "
          f"Python {m['python']}, numpy {m['numpy']}, pyarrow {m['pyarrow']}, grouper {m['grouper']}")
    sizes = {"group_one": n_one, "reference": n_ref}
    what = {"kernel": "kernel on pre-encoded ids", "group": "Grouper.group, Arrow strings",
            "group_one": "group_one, per case", "reference": "reference interpreter"}
    print(f"\n{'measurement':<38}{'cases':>11}{'cases/s':>15}{'us/case':>10}{'x reference':>13}")
    for key, rate in rates.items():
        base, _, thr = key.rpartition("_") if key[-1] == "t" else (key, "", "")
        label = what[base] + (f" ({thr[:-1]} thr)" if thr else "")
        print(f"{label:<38}{sizes.get(key, n):>11,}{rate:>15,.0f}{1e6 / rate:>10.3f}"
              f"{rate / rates['reference']:>12,.0f}x")

    checks = [("kernel, 1 thread", f"{rates['kernel_1t'] / 1e6:.1f} M cases/s", ">= 10 M cases/s",
               rates["kernel_1t"] >= TARGETS["kernel_1t"]),
              ("group from strings, 1 thread", f"{rates['group_1t'] / 1e6:.2f} M cases/s", ">= 1 M cases/s",
               rates["group_1t"] >= TARGETS["group_1t"]),
              ("group_one latency", f"{one_us:.1f} us", "<= 20 us", one_us <= TARGETS["group_one_us"])]
    print(f"\ngroup_one latency per call over {n_one:,} cases: p50 {p50:.2f} us, p99 {p99:.2f} us")
    print("\ntargets (one thread):")
    for name, got, want, ok in checks:
        print(f"  {name:<30}{got:>18}   target {want:<18}{'met' if ok else 'NOT met'}")
    if a.quick:
        print("  (--quick: small workload, fixed costs weigh more; use the full run to judge targets)")

    if a.json:
        doc = {"cases": n, "group_one_cases": n_one, "reference_cases": n_ref, "threads": a.threads,
               "cases_per_s": rates, "group_one_us": one_us,
               "group_one_p50_us": p50, "group_one_p99_us": p99, "machine": m,
               "ratios_vs_reference": {k: v / rates["reference"] for k, v in rates.items()},
               "targets": {name: {"value": got, "target": want, "met": ok} for name, got, want, ok in checks}}
        Path(a.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nwrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Grouping speed under every bundled ruleset, measured in one run on one workload.

    python benchmarks/bench_rulesets.py [--cases N]
    python benchmarks/bench_rulesets.py --provinces chs-drg-2.0 chs-drg-3.0 [--cases N] [--threads T]

Local (city) schemes add predicates (length of stay, discharge status, department), alternative
ADRG rules and retries; this shows what they cost against the national scheme: the kernel on
pre-encoded ids and ``Grouper.group`` from strings, one thread, best of five, with the ratio to
chs-drg-1.1. Reports only; never fails on time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import grouper  # noqa: E402
from workload import best, build_table  # noqa: E402




def provinces(names: list[str], n: int, threads: int, rounds: int = 7) -> None:
    """Each ruleset on a synthetic province drawn from its own lists (``drg synth``, seed 1):
    the kernel on pre-encoded ids, ``Grouper.group`` from the Parquet table, and ``drg group``
    end to end (read Parquet, group, write Parquet; one process). The rulesets are timed in
    turn, round after round, and each keeps its best time: on a shared machine a burst of
    other load then hits both alike instead of one."""
    import os
    import subprocess
    import tempfile
    import time

    import pyarrow.parquet as pq

    drg = str(Path(sys.executable).with_name("drg"))
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            src, dst = os.path.join(tmp, f"{name}.parquet"), os.path.join(tmp, f"{name}-out.parquet")
            subprocess.run([drg, "synth", "-n", str(n), "--hospitals", "100", "--seed", "1", "-r", name,
                            "-o", src], check=True, capture_output=True)
            table = pq.read_table(src)
            g = grouper.Grouper(name, n_threads=threads)
            enc = g.encoder.encode(table.combine_chunks().to_batches()[0])
            out = (np.empty(n, np.int8), np.empty(n, np.int32), np.empty(n, np.int32), np.empty(n, np.int32),
                   np.empty(n, np.int8), np.empty(n, np.int32))
            cli = [drg, "group", src, "-o", dst, "--overwrite", "--ruleset", name, "--threads", str(threads)]
            subprocess.run(cli, check=True, capture_output=True)  # warm the compiled-ruleset cache
            runs[name] = {
                "kernel": (lambda g=g, enc=enc, out=out: g._kernel(enc, out, threads)),  # slices on its pool
                "group": lambda g=g, table=table: g.group(table, n_threads=threads),
                "drg group": lambda cli=cli: subprocess.run(cli, check=True, capture_output=True),
                "out": out,
            }
        best_t = {(name, what): float("inf") for name in names for what in ("kernel", "group", "drg group")}
        for _ in range(rounds):
            for what in ("kernel", "group", "drg group"):
                for name in names:
                    t0 = time.perf_counter()
                    runs[name][what]()
                    best_t[name, what] = min(best_t[name, what], time.perf_counter() - t0)
    base = names[0]
    print(f"{n:,} synthetic cases per ruleset (drg synth --seed 1, each from its own lists); "
          f"{threads} thread(s); best of {rounds} interleaved rounds; ratios to {base}\n")
    print(f"{'ruleset':<14}{'kernel cases/s':>16}{'ratio':>7}{'group cases/s':>15}{'ratio':>7}"
          f"{'drg group cases/s':>19}{'ratio':>7}{'grouped':>9}")
    for name in names:
        rates = [n / best_t[name, w] for w in ("kernel", "group", "drg group")]
        ratios = [best_t[base, w] / best_t[name, w] for w in ("kernel", "group", "drg group")]
        grouped = float(np.mean(runs[name]["out"][0] == 0))
        print(f"{name:<14}{rates[0]:>16,.0f}{ratios[0]:>7.2f}{rates[1]:>15,.0f}{ratios[1]:>7.2f}"
              f"{rates[2]:>19,.0f}{ratios[2]:>7.2f}{grouped:>9.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=500_000)
    ap.add_argument("--provinces", nargs="+", metavar="RULESET",
                    help="instead: these rulesets, each on a synthetic province of its own "
                         "(e.g. chs-drg-2.0 chs-drg-3.0); the first is the baseline")
    ap.add_argument("--threads", type=int, default=1, help="threads for --provinces (default 1)")
    a = ap.parse_args()
    n = a.cases
    if a.provinces:
        provinces(a.provinces, n, a.threads)
        return
    table = build_table(n)
    batch = table.combine_chunks().to_batches()[0]
    rows = []
    for name in sorted(grouper.available_rulesets()):
        g = grouper.Grouper(name, n_threads=1)
        enc = g.encoder.encode(batch)
        out = (np.empty(n, np.int8), np.empty(n, np.int32), np.empty(n, np.int32), np.empty(n, np.int32),
               np.empty(n, np.int8), np.empty(n, np.int32))
        k = best(lambda: g._program.group_batch(enc.fields, enc.dx_off, enc.dx_ids, enc.px_off, enc.px_ids, *out))
        s = best(lambda: g.group(table, n_threads=1), 3)
        grouped = float(np.mean(out[0] == 0))
        rows.append((name, n / k, n / s, grouped))
    base = {r[0]: r for r in rows}["chs-drg-1.1"]
    print(f"{n:,} cases resampled from the 1.1 reference cases; one thread; best of several runs\n")
    print(f"{'ruleset':<16}{'kernel cases/s':>16}{'vs 1.1':>8}{'group cases/s':>16}{'vs 1.1':>8}{'grouped':>9}")
    for name, k, s, grouped in rows:
        print(f"{name:<16}{k:>16,.0f}{k / base[1]:>8.2f}{s:>16,.0f}{s / base[2]:>8.2f}{grouped:>9.1%}")


if __name__ == "__main__":
    main()

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




def provinces(names: list[str], n: int, threads: int) -> None:
    """Each ruleset on a synthetic province drawn from its own lists (``drg synth``, seed 1):
    the kernel on pre-encoded ids, ``Grouper.group`` from the Parquet table, and ``drg group``
    end to end (read Parquet, group, write Parquet; one process, best of three)."""
    import os
    import subprocess
    import tempfile

    import pyarrow.parquet as pq

    drg = str(Path(sys.executable).with_name("drg"))
    rows = []
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
            k = best(lambda: g._program.group_batch(enc.fields, enc.dx_off, enc.dx_ids, enc.px_off, enc.px_ids,
                                                    *out, threads))
            s = best(lambda: g.group(table, n_threads=threads), 3)

            def end_to_end():
                subprocess.run([drg, "group", src, "-o", dst, "--overwrite", "--ruleset", name,
                                "--threads", str(threads)], check=True, capture_output=True)

            end_to_end()  # warm the compiled-ruleset cache
            e = best(end_to_end, 3)
            rows.append((name, n / k, n / s, n / e, float(np.mean(out[0] == 0))))
    base = rows[0]
    print(f"{n:,} synthetic cases per ruleset (drg synth --seed 1, each from its own lists); "
          f"{threads} thread(s); best of several runs; ratios to {base[0]}\n")
    print(f"{'ruleset':<14}{'kernel cases/s':>16}{'ratio':>7}{'group cases/s':>15}{'ratio':>7}"
          f"{'drg group cases/s':>19}{'ratio':>7}{'grouped':>9}")
    for name, k, s, e, grouped in rows:
        print(f"{name:<14}{k:>16,.0f}{k / base[1]:>7.2f}{s:>15,.0f}{s / base[2]:>7.2f}"
              f"{e:>19,.0f}{e / base[3]:>7.2f}{grouped:>9.1%}")


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
        k = best(lambda: g._program.group_batch(enc.fields, enc.dx_off, enc.dx_ids, enc.px_off, enc.px_ids, *out, 1))
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

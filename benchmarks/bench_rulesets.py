"""Grouping speed under every bundled ruleset, measured in one run on one workload.

    python benchmarks/bench_rulesets.py [--cases N]

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




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=500_000)
    n = ap.parse_args().cases
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

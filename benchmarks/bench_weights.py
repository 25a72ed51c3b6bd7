"""Weights and hospital indices at provincial scale: time and peak memory of `drg weights` and
`drg indices` on a synthetic province, each in a fresh process, in one run.

    python benchmarks/bench_weights.py [--cases 20000000] [--dir DIR]

Reports only; never fails on time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_end_to_end import province, run_cli as run  # noqa: E402  (fresh process, peak RSS)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=20_000_000)
    ap.add_argument("--dir", type=Path)
    a = ap.parse_args(argv)
    d = Path(a.dir or tempfile.mkdtemp(prefix="drg-weights-"))
    d.mkdir(parents=True, exist_ok=True)
    src, _ = province(d, a.cases)
    tw, mw = run("weights", str(src), "-o", str(d / "weights.csv"), "--overwrite")
    ti, mi = run("indices", str(src), "-w", str(d / "weights.csv"), "-o", str(d / "indices.csv"), "--overwrite")
    print(f"{a.cases:,} synthetic cases (200 hospitals), each command in a fresh process\n")
    print(f"{'command':<14}{'seconds':>9}{'cases/s':>14}{'peak RSS MiB':>14}")
    for name, t, m in (("drg weights", tw, mw), ("drg indices", ti, mi)):
        print(f"{name:<14}{t:>9.1f}{a.cases / t:>14,.0f}{m:>14,.0f}")
    return {"weights": (tw, mw), "indices": (ti, mi)}


if __name__ == "__main__":
    main()

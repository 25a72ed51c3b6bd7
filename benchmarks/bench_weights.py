"""Weights, hospital indices and recalibration at provincial scale: time and peak memory of
`drg weights`, `drg indices` and `drg recalibrate` (published weights against sdlog:3 weights
computed from the same cases) on a synthetic province, each in a fresh process, in one run.

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
    tw, mw, *_ = run("weights", str(src), "-o", str(d / "weights.csv"), "--overwrite")
    ti, mi, *_ = run("indices", str(src), "-w", str(d / "weights.csv"), "-o", str(d / "indices.csv"), "--overwrite")
    tr, mr, *_ = run("recalibrate", str(src), "-a", str(d / "weights.csv"), "-b", "sdlog:3", "-o", str(d / "cmp.csv"),
                 "--by-hospital", str(d / "cmp_hospitals.csv"), "--overwrite")
    print(f"{a.cases:,} synthetic cases (200 hospitals), each command in a fresh process\n")
    print(f"{'command':<16}{'seconds':>9}{'cases/s':>14}{'peak RSS MiB':>14}")
    for name, t, m in (("drg weights", tw, mw), ("drg indices", ti, mi), ("drg recalibrate", tr, mr)):
        print(f"{name:<16}{t:>9.1f}{a.cases / t:>14,.0f}{m:>14,.0f}")
    return {"weights": (tw, mw), "indices": (ti, mi), "recalibrate": (tr, mr)}


if __name__ == "__main__":
    main()

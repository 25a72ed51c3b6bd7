"""Regrouping cost: `drg regroup` (two rulesets, one pass) against two separate `drg group` runs.

    python benchmarks/bench_regroup.py [--cases 5000000] [--dir DIR]

Synthesises a province, then times, each in a fresh process and in one run: `drg group` under
the source and the target ruleset, and `drg regroup` from one to the other. Reports only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_end_to_end import province, run_cli  # noqa: E402


def drg(*args: str) -> float:
    """Seconds of one `drg` command in a fresh process."""
    return run_cli(*args)[0]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=5_000_000)
    ap.add_argument("--from", dest="src_rs", default="chs-drg-1.1")
    ap.add_argument("--to", dest="dst_rs", default="chs-drg-2.0")
    ap.add_argument("--dir", type=Path)
    a = ap.parse_args(argv)
    d = Path(a.dir or tempfile.mkdtemp(prefix="drg-regroup-"))
    d.mkdir(parents=True, exist_ok=True)
    src, _ = province(d, a.cases)
    t_from = drg("group", str(src), "-o", str(d / "from.parquet"), "-r", a.src_rs, "-t", "1", "--overwrite")
    t_to = drg("group", str(src), "-o", str(d / "to.parquet"), "-r", a.dst_rs, "-t", "1", "--overwrite")
    t_both = drg("regroup", str(src), "--from", a.src_rs, "--to", a.dst_rs, "-o", str(d / "both.parquet"), "-t", "1",
                 "--matrix", str(d / "matrix.parquet"), "--summary", str(d / "summary.json"), "--overwrite")
    print(f"{a.cases:,} synthetic cases, one thread, each command in a fresh process\n")
    print(f"drg group   {a.src_rs:<14} {t_from:6.2f} s")
    print(f"drg group   {a.dst_rs:<14} {t_to:6.2f} s")
    print(f"drg regroup {a.src_rs} -> {a.dst_rs}  {t_both:6.2f} s  = {t_both / max(t_from, t_to):.2f} x the slower "
          f"single run, {t_both / (t_from + t_to):.2f} x the two runs")
    return {"from": t_from, "to": t_to, "regroup": t_both}


if __name__ == "__main__":
    main()

"""Smart audit at provincial scale, measured against known answers.

    python benchmarks/bench_audit.py [--cases 1000000] [--dir DIR] [--buckets N] [--json OUT]

Synthesises a province of 50 hospitals with misconduct planted at three of them (H0008, H0022,
H0040: upcoded MCC secondary diagnoses, split admissions, low-standard admissions; `drg synth
--inject`). Then, each in a fresh process: `drg group` of the file (the baseline of the same run)
and `drg audit` with findings, league table and report. Prints seconds, peak RSS, the ratio
audit/group, and against the hidden labels: split-admission recall and precision (per case),
low-standard-admission case recall and precision, and the rank of the three hospitals in each
screen. It reports only, and never fails on time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_end_to_end import run_cli as run  # one command in a fresh process, with its peak RSS

BAD = ("H0008", "H0022", "H0040")


def measure(province: Path, flags: Path, hospitals: Path) -> dict:
    """Recall / precision per case screen and the planted hospitals' ranks per hospital screen."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    labels = pq.read_table(province, columns=["_label_split", "_label_lowstd", "_label_upcode"])
    found = pq.read_table(flags, columns=["row", "code"])
    out = {}
    for code, label in (("AS01", "_label_split"), ("AS02", "_label_lowstd")):
        lab = labels[label].to_numpy(zero_copy_only=False)
        rows = np.unique(found.filter(pc.equal(found["code"], code))["row"].to_numpy())
        tp = int(lab[rows].sum())
        out[code] = {"labelled": int(lab.sum()), "flagged": len(rows), "recall": tp / max(int(lab.sum()), 1),
                     "precision": tp / max(len(rows), 1)}
    h = pcsv.read_csv(hospitals)
    for screen in ("upcoding", "split", "low_standard"):
        s = h.filter(pc.equal(h["screen"], screen))
        rank = dict(zip(s["hospital"].to_pylist(), s["rank"].to_pylist()))
        out[screen] = {"ranks": [rank[b] for b in BAD],
                       "flagged": sorted(s.filter(s["flagged"])["hospital"].to_pylist())}
    for screen in ("long_stay", "low_risk_death", "cost_shift"):
        s = h.filter(pc.equal(h["screen"], screen))
        out[screen] = {"flagged": sorted(s.filter(s["flagged"])["hospital"].to_pylist())}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path)
    ap.add_argument("--buckets", type=int, default=None, help="default: drg audit's own choice")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    folder = a.dir or Path(tempfile.mkdtemp(prefix="bench-audit-"))
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"province-{a.cases}-{a.seed}.parquet"
    if not p.exists():
        inject = [x for k in ("upcode", "split", "lowstd") for x in ("--inject", f"{k}={','.join(BAD)}")]
        run("synth", "-n", str(a.cases), "--hospitals", "50", "--seed", str(a.seed), "-o", str(p), *inject)
    r = {"cases": a.cases}
    r["group"] = run("group", str(p), "-o", str(folder / "grouped.parquet"), "--overwrite")
    r["audit"] = run("audit", str(p), "-o", str(folder / "flags.parquet"), "--hospitals", str(folder / "h.csv"),
                     "--report", str(folder / "audit.html"), "--workdir", str(folder), "--overwrite",
                     *(["--buckets", str(a.buckets)] if a.buckets else []))
    r["ratio_audit_group"] = r["audit"][0] / r["group"][0]
    r["answers"] = measure(p, folder / "flags.parquet", folder / "h.csv")
    for k in ("group", "audit"):
        s, mib, cpu = r[k]
        print(f"{k:6s} {s:8.1f} s  {a.cases / s:12,.0f} cases/s  peak RSS {mib:8.0f} MiB  CPU {cpu:.1f} s")
    print(f"audit / group time: {r['ratio_audit_group']:.2f}")
    print(json.dumps(r["answers"], indent=1))
    if a.json:
        a.json.write_text(json.dumps(r, indent=1), encoding="utf-8")
    return r


if __name__ == "__main__":
    main()

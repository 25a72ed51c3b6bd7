"""DRG settlement at provincial scale: time and peak memory of `drg settle` on a synthetic province.

    python benchmarks/bench_settlement.py [--cases 10000000] [--dir DIR] [--quick] [--pack PACK]
        [--knobs] [--outlier-base payment_standard]

Synthesises the province (200 hospitals) and its weights once. Then it runs, each in a fresh
process: `drg settle` on the raw file (grouping included), `drg group` keeping the settlement
columns, and `drg settle` on that grouped file. It prints seconds, CPU seconds, cases/s and the
child's peak RSS. Settlement streams: it reads its input twice, in bounded memory.

The pack is the bundled illustrative one (its numbers are examples). `--knobs` switches on
every value-based knob, with `renormalize = "knobs"`, and writes a hospital table for them.
`--outlier-base payment_standard` makes the case types move with the rate scale; with
renormalisation, the rate scale is then found over a spool of the priced cases. It reports
only, and never fails on time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_end_to_end import province  # the synthetic province, made once
from bench_end_to_end import (
    run_cli as run,  # one command in a fresh process, with its peak RSS
)

KEEP = ("hospital_id", "hospital_level", "insurance_type", "total_cost", "patient_share", "los", "discharge",
        "discharge_date", "referred_from_primary")


def variant(folder: Path, pack: str, knobs: bool, outlier_base: str | None) -> tuple[str, list[str]]:
    """The pack to run (a changed copy of ``pack`` when asked) and the extra arguments it needs."""
    if not knobs and outlier_base is None:
        return pack, []
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from grouper.payment.pack import available_packs

    path = Path(pack) if Path(pack).is_file() else available_packs()[pack]
    text = path.read_text(encoding="utf-8")
    extra = []
    if knobs:  # the illustrative pack's knob sections, switched on; knobs move money, not the total
        text = text.replace("enabled = false", "enabled = true").replace('renormalize = "none"',
                                                                       'renormalize = "knobs"')
        rng = np.random.default_rng(1)
        n = 200
        hospitals = folder / "hospitals_knobs.parquet"
        pq.write_table(pa.table({"hospital_id": [f"H{i:04d}" for i in range(1, n + 1)],
                                 "satisfaction": rng.integers(60, 100, n).astype(float),
                                 "low_risk_mortality": rng.uniform(0, 0.01, n),
                                 "low_risk_cases": rng.integers(0, 500, n),
                                 "quality_ok": rng.random(n) > 0.3, "readmissions_rose": rng.random(n) > 0.7}),
                       hospitals)
        extra = ["--hospitals", str(hospitals)]
    if outlier_base is not None:
        text = text.replace('base = "group_mean_cost"', f'base = "{outlier_base}"')
    out = folder / "pack_variant.toml"
    out.write_text(text, encoding="utf-8")
    return str(out), extra


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10_000_000)
    ap.add_argument("--dir", type=Path, help="where to put the files (default: a temporary folder)")
    ap.add_argument("--quick", action="store_true", help="100,000 cases (smoke run)")
    ap.add_argument("--pack", default="illustrative-2024", help="payment pack (file or bundled name)")
    ap.add_argument("--knobs", action="store_true", help="every knob on, renormalize = \"knobs\"")
    ap.add_argument("--outlier-base", choices=("group_mean_cost", "payment_standard"),
                    help="override the pack's outlier base")
    a = ap.parse_args(argv)
    n = 100_000 if a.quick else a.cases
    d = Path(a.dir or tempfile.mkdtemp(prefix="drg-settle-"))
    d.mkdir(parents=True, exist_ok=True)
    src, _ = province(d, n)
    weights = d / f"weights_{n}.parquet"
    if not weights.exists():
        run("weights", str(src), "-o", str(weights))
    pack, extra = variant(d, a.pack, a.knobs, a.outlier_base)
    settle = ["--pack", pack, "-w", str(weights), "--by-hospital", str(d / "hospitals.csv"), "--overwrite", *extra]
    results = {"cases": n}
    results["settle_raw"] = run("settle", str(src), "-o", str(d / "settled.parquet"), *settle)
    keep = [x for k in KEEP for x in ("--keep", k)]
    results["group"] = run("group", str(src), "-o", str(d / "grouped.parquet"), *keep, "--overwrite")
    results["settle_grouped"] = run("settle", str(d / "grouped.parquet"), "-o", str(d / "settled2.parquet"), *settle)
    what = a.pack + (", knobs on" if a.knobs else "") + (f", outlier base {a.outlier_base}" if a.outlier_base else "")
    print(f"{n:,} synthetic cases (200 hospitals), pack {what}, each command in a fresh process\n")
    print(f"{'command':<44}{'seconds':>9}{'CPU s':>8}{'cases/s':>14}{'peak RSS MiB':>14}")
    for name, key in (("drg settle, raw cases (grouping included)", "settle_raw"),
                      ("drg group --keep (settlement columns)", "group"),
                      ("drg settle, pre-grouped file", "settle_grouped")):
        t, m, *cpu = results[key]  # CPU seconds where the runner reports them (a loaded machine)
        print(f"{name:<44}{t:>9.1f}{(cpu[0] if cpu else float('nan')):>8.1f}{n / t:>14,.0f}{m:>14,.0f}")
    return results


if __name__ == "__main__":
    main()

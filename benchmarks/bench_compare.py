"""This tree against a baseline install (the previous commit, another layout), in one run.

    python benchmarks/bench_compare.py --baseline ../base [--cases 2000000] [--repeat 3] [--dir DIR]

``--baseline`` is a checkout with its own ``.venv`` (``make .venv/.installed-stamp`` there). One
synthetic province is made once (by this tree); then every command below runs in a fresh
process under each install in turn (A B A B ...), pinned to one CPU, and the best of
``--repeat`` runs is kept: ``drg group`` (one kernel thread), ``weights``, ``indices``,
``settle`` (raw cases, grouping included), ``dip settle`` and ``regroup``. Each tree's own
``bench_group.py --cases 200000`` gives the in-process kernel, ``Grouper.group`` and ``group_one``
rates. Prints seconds and the ratio baseline/this (above 1: this tree is faster). Reports only;
never fails on time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "benchmarks"))
from bench_dip import PACK  # noqa: E402  (a pack with a [dip] table)
from bench_end_to_end import CHILD  # noqa: E402  (the command line, reporting peak memory)


def run(python: str, args: list[str], cpu: int | None) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one command in a fresh process, pinned to ``cpu``."""
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    env = {**os.environ, "DRG_CACHE_DIR": os.environ.get("DRG_CACHE_DIR", "")}
    t0 = time.perf_counter()
    p = subprocess.run([python, "-c", CHILD, *args], capture_output=True, text=True, preexec_fn=pin, env=env)
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{python}: drg {' '.join(args)} failed:\n{p.stderr[-2000:]}")
    line = next(x.split() for x in p.stderr.splitlines() if x.startswith("MAXRSS_KB"))
    return seconds, int(line[1]) / 1024


def in_process(python: str, tree: Path) -> dict:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    subprocess.run([python, str(tree / "benchmarks" / "bench_group.py"), "--cases", "200000", "--threads", "1",
                    "--json", str(out)], check=True, capture_output=True, preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    return json.loads(out.read_text())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", type=Path, required=True, help="checkout with its own .venv")
    ap.add_argument("--cases", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    installs = {"baseline": (str(a.baseline.resolve() / ".venv/bin/python"), a.baseline.resolve()),
                "this": (str(HERE / ".venv/bin/python"), HERE)}
    d = Path(a.dir or tempfile.mkdtemp(prefix="drg-compare-"))
    d.mkdir(parents=True, exist_ok=True)
    n = a.cases
    src = d / f"province_{n}.parquet"
    py_this = installs["this"][0]
    if not src.exists():
        run(py_this, ["synth", "--cases", str(n), "--hospitals", "200", "--year", "2025", "--seed", "1",
                      "-o", str(src)], None)
    weights = d / "weights.parquet"
    if not weights.exists():
        run(py_this, ["weights", str(src), "-o", str(weights)], None)
    catalogue = d / "catalogue.parquet"
    if not catalogue.exists():
        run(py_this, ["dip", "catalogue", str(src), "-o", str(catalogue)], None)
    dip_pack = d / "dip-pack.toml"
    dip_pack.write_text(PACK, encoding="utf-8")
    commands = {
        "drg group -t 1": ["group", str(src), "-o", str(d / "g.parquet"), "-t", "1", "--overwrite"],
        "drg weights": ["weights", str(src), "-o", str(d / "w.parquet"), "--overwrite"],
        "drg indices": ["indices", str(src), "-w", str(weights), "-o", str(d / "i.csv"), "--overwrite"],
        "drg settle (raw)": ["settle", str(src), "--pack", "illustrative-2024", "-w", str(weights),
                             "-o", str(d / "s.parquet"), "--overwrite"],
        "drg dip settle": ["dip", "settle", str(src), "-c", str(catalogue), "-p", str(dip_pack),
                           "-o", str(d / "ds.parquet"), "--overwrite"],
        "drg regroup": ["regroup", str(src), "-o", str(d / "r.parquet"), "--overwrite"],
    }
    for python, _tree in installs.values():  # warm-up: each install fills its compiled-ruleset cache
        run(python, commands["drg group -t 1"], cpu=0)
    best: dict[str, dict[str, tuple[float, float]]] = {k: {} for k in commands}
    for _ in range(a.repeat):
        for name, args in commands.items():
            for who, (python, _tree) in installs.items():
                t, m = run(python, args, cpu=0)
                if who not in best[name] or t < best[name][who][0]:
                    best[name][who] = (t, m)
    rates = {who: in_process(python, tree) for who, (python, tree) in installs.items()}
    print(f"{n:,} synthetic cases, each command in a fresh process pinned to one CPU, best of {a.repeat}\n")
    print(f"{'command':<22}{'baseline s':>12}{'this s':>10}{'ratio':>8}{'RSS base':>10}{'RSS this':>10}")
    for name, r in best.items():
        (tb, mb), (tt, mt) = r["baseline"], r["this"]
        print(f"{name:<22}{tb:>12.2f}{tt:>10.2f}{tb / tt:>8.2f}{mb:>10.0f}{mt:>10.0f}")
    print(f"\n{'in process, cases/s':<22}{'baseline':>12}{'this':>10}{'ratio':>8}   (ratio this/baseline)")
    for key in rates["this"]["cases_per_s"]:
        vb, vt = rates["baseline"]["cases_per_s"].get(key), rates["this"]["cases_per_s"][key]
        if vb:
            print(f"{key:<22}{vb:>12,.0f}{vt:>10,.0f}{vt / vb:>8.2f}")
    if a.json:
        a.json.write_text(json.dumps({"cases": n, "commands": best, "in_process": rates}, indent=2))


if __name__ == "__main__":
    main()

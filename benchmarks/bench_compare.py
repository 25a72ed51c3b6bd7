"""This tree against a baseline install (the previous commit, another layout), in one run.

    python benchmarks/bench_compare.py --baseline ../base [--cases 2000000] [--repeat 3] [--dir DIR]

``--baseline`` is a checkout with its own ``.venv`` (``make .venv/.installed-stamp`` there). One
synthetic province is made once (by this tree); then every command below runs in a fresh
process under each install in turn (A B A B ...), pinned to one CPU, and the best of
``--repeat`` runs is kept: ``drg group`` on a 1-row file (start-up), ``drg group`` (one kernel
thread), ``weights``, ``indices``, ``settle`` (raw cases, grouping included), ``dip settle`` and
``regroup`` (``--only`` picks some, by the names printed). This tree's ``bench_group.py --cases
200000``, run by each install's Python, gives the in-process kernel, ``Grouper.group`` and
``group_one`` rates and group_one's p50/p99 latency. Prints seconds (wall, and the CPU seconds of
that run: on a shared machine CPU time is the steadier), and the ratio baseline/this (above 1:
this tree is faster). With ``drg group -t 1`` it also times pyarrow alone reading that
command's input columns and writing its output file, the same bytes (``ARROW_CHILD``), pinned
likewise, and gives the ratio of this tree to it. Reports only; never fails on time. The kernel alone on two case mixes:
``bench_kernel.py``.
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
from bench_end_to_end import CHILD, PEAK_KB  # noqa: E402  (the command line, reporting peak memory)


#: pyarrow alone doing the I/O of ``drg group -t 1``: read the grouper's input columns of the
#: province as the grouper reads them (code lists as dictionaries), then write the grouper's
#: output table (loaded first from its output file; that load's CPU is left out of the CPU
#: seconds, not of the wall time) with the grouper's Parquet options, one row group per batch of
#: 65,536 rows: the same file, byte for byte. Arguments: input, grouped file, output, columns.
ARROW_CHILD = PEAK_KB + """
import resource, sys
import pyarrow as pa
import pyarrow.parquet as pq
src, grouped, out, cols = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
cpu = lambda: (lambda r: r.ru_utime + r.ru_stime)(resource.getrusage(resource.RUSAGE_SELF))
t = pq.read_table(src, columns=cols, read_dictionary=["dx.list.element", "px.list.element"])
c0 = cpu()
o = pq.read_table(grouped)
o = pa.Table.from_batches(o.to_batches(max_chunksize=65536), o.schema)
loaded = cpu() - c0
plain = [f.name for f in o.schema if not pa.types.is_dictionary(f.type)]
with pq.ParquetWriter(out, o.schema, compression="zstd", write_statistics=plain,
                      use_dictionary=[c for c in o.column_names if c != "case_id"],
                      column_encoding={"case_id": "DELTA_BINARY_PACKED"}) as w:
    for b in o.to_batches():
        w.write_batch(b, row_group_size=1 << 20)
r = resource.getrusage(resource.RUSAGE_SELF)
print("MAXRSS_KB", peak_kb(), cpu() - loaded, file=sys.stderr)
"""
#: The columns ``drg group`` reads from the province under chs-drg-2.0 (``Encoder.columns``).
GROUP_INPUTS = "case_id,age,age_days,birth_weight,los,sex,dx,px"


def run(python: str, args: list[str], cpu: int | None, child: str = CHILD, name: str = "drg") -> tuple[float, float, float]:
    """(seconds, peak RSS MiB, CPU seconds) of one command in a fresh process, pinned to ``cpu``:
    ``child`` (by default ``drg ARGS``) reports its own peak RSS and CPU on a MAXRSS_KB line."""
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    env = {**os.environ, "DRG_CACHE_DIR": os.environ.get("DRG_CACHE_DIR", "")}
    t0 = time.perf_counter()
    # run outside any checkout: ``python -c`` puts the working folder first on sys.path, and a
    # baseline run from this tree's root would import this tree's package instead of its own
    p = subprocess.run([python, "-c", child, *args], capture_output=True, text=True, preexec_fn=pin, env=env,
                       cwd=tempfile.gettempdir())
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{python}: {name} {' '.join(args)} failed:\n{p.stderr[-2000:]}")
    line = next(x.split() for x in p.stderr.splitlines() if x.startswith("MAXRSS_KB"))
    return seconds, int(line[1]) / 1024, float(line[2])


def in_process(python: str) -> dict:
    """This tree's bench_group.py run by ``python`` (so both installs run the same measurement)."""
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    subprocess.run([python, str(HERE / "benchmarks" / "bench_group.py"), "--cases", "200000", "--threads", "1",
                    "--json", str(out)], check=True, capture_output=True, preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    return json.loads(out.read_text())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", type=Path, required=True, help="checkout with its own .venv")
    ap.add_argument("--cases", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--only", help="comma-separated commands to run (names as printed; default all)")
    ap.add_argument("--no-in-process", action="store_true", help="skip the bench_group.py rates")
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
    one_row = d / "one_row.parquet"
    if not one_row.exists():
        import pyarrow.parquet as pq

        pq.write_table(pq.read_table(src).slice(0, 1), one_row)
    commands = {
        "drg group 1 row": ["group", str(one_row), "-o", str(d / "g1.parquet"), "--overwrite"],
        "drg group -t 1": ["group", str(src), "-o", str(d / "g.parquet"), "-t", "1", "--overwrite"],
        "drg weights": ["weights", str(src), "-o", str(d / "w.parquet"), "--overwrite"],
        "drg indices": ["indices", str(src), "-w", str(weights), "-o", str(d / "i.csv"), "--overwrite"],
        "drg settle (raw)": ["settle", str(src), "--pack", "illustrative-2024", "-w", str(weights),
                             "-o", str(d / "s.parquet"), "--overwrite"],
        "drg dip settle": ["dip", "settle", str(src), "-c", str(catalogue), "-p", str(dip_pack),
                           "-o", str(d / "ds.parquet"), "--overwrite"],
        "drg regroup": ["regroup", str(src), "-o", str(d / "r.parquet"), "--overwrite"],
    }
    if a.only:
        names = [x.strip() for x in a.only.split(",")]
        unknown = [x for x in names if x not in commands]
        if unknown:
            raise SystemExit(f"--only: unknown command(s) {unknown}; known: {list(commands)}")
        commands = {k: v for k, v in commands.items() if k in names}
    for python, _tree in installs.values():  # warm-up: each install fills its compiled-ruleset cache
        run(python, ["group", str(one_row), "-o", str(d / "g1.parquet"), "--overwrite"], cpu=0)
    best: dict[str, dict[str, tuple[float, float, float]]] = {k: {} for k in commands}
    for _ in range(a.repeat):
        for name, args in commands.items():
            for who, (python, _tree) in installs.items():
                t, m, c = run(python, args, cpu=0)
                if who not in best[name] or t < best[name][who][0]:
                    best[name][who] = (t, m, c)
    arrow = None
    if "drg group -t 1" in commands:  # pyarrow alone doing the same I/O, best of as many runs
        args = [str(src), str(d / "g.parquet"), str(d / "arrow.parquet"), GROUP_INPUTS]
        for _ in range(a.repeat):
            r = run(py_this, args, cpu=0, child=ARROW_CHILD, name="pyarrow alone")
            arrow = r if arrow is None or r[0] < arrow[0] else arrow
    rates = {} if a.no_in_process else {who: in_process(python) for who, (python, _tree) in installs.items()}
    load = os.getloadavg()[0]
    print(f"{n:,} synthetic cases, each command in a fresh process pinned to one CPU, best of {a.repeat} "
          f"(wall; CPU s of that run beside it); load average at the end {load:.1f}\n")
    print(f"{'command':<22}{'baseline s':>12}{'this s':>10}{'ratio':>8}{'CPU base':>10}{'CPU this':>10}"
          f"{'RSS base':>10}{'RSS this':>10}")
    for name, r in best.items():
        (tb, mb, cb), (tt, mt, ct) = r["baseline"], r["this"]
        print(f"{name:<22}{tb:>12.3f}{tt:>10.3f}{tb / tt:>8.2f}{cb:>10.3f}{ct:>10.3f}{mb:>10.0f}{mt:>10.0f}")
    if arrow is not None:
        t, m, c = arrow
        tt, _, ct = best["drg group -t 1"]["this"]
        same = (d / "arrow.parquet").read_bytes() == (d / "g.parquet").read_bytes()
        print(f"{'pyarrow alone, I/O':<22}{'':>12}{t:>10.3f}{'':>8}{'':>10}{c:>10.3f}{'':>10}{m:>10.0f}"
              f"   drg group -t 1 / pyarrow alone: {tt / t:.2f} wall, {ct / c:.2f} CPU "
              f"({'the same file' if same else 'NOT the same file'})")
    if rates:
        print(f"\n{'in process, cases/s':<22}{'baseline':>12}{'this':>10}{'ratio':>8}   (ratio this/baseline)")
        for key in rates["this"]["cases_per_s"]:
            vb, vt = rates["baseline"]["cases_per_s"].get(key), rates["this"]["cases_per_s"][key]
            if vb:
                print(f"{key:<22}{vb:>12,.0f}{vt:>10,.0f}{vt / vb:>8.2f}")
        for key in ("group_one_p50_us", "group_one_p99_us"):
            vb, vt = rates["baseline"][key], rates["this"][key]
            print(f"{key:<22}{vb:>12.2f}{vt:>10.2f}{vb / vt:>8.2f}   (us; ratio baseline/this)")
    if a.json:
        a.json.write_text(json.dumps({"cases": n, "commands": best, "pyarrow_alone": arrow, "in_process": rates},
                                     indent=2))


if __name__ == "__main__":
    main()

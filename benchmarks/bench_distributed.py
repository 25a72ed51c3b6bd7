"""One process against all cores: a synthetic province in several Parquet files, grouped by
`drg group` in one process and by grouper.scale on a local pool and a Dask LocalCluster.

    python benchmarks/bench_distributed.py [--cases 50000000] [--files 8] [--workers N]
                                           [--dir DIR] [--keep] [--quick] [--json FILE]

`drg synth` writes the files (one per seed, in parallel). Then, each in a fresh process where
it is the command line: `drg group FILES -o one.parquet` at one thread (the baseline) and at
all threads; `drg group DIR -o out/ --workers N`; and, in this process, `group_dataset` on a
LocalCluster of N single-threaded workers (cluster start-up timed apart). Every run must give
the same status and DRG counts. Prints cases/s, the speed-up over one process at one kernel
thread, and for the dataset runs the rate of one task on one core (rows over summed task
time, from the manifest): what each added core contributes while I/O keeps up. Reports only;
never fails on time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_cli(*args: str) -> float:
    """Seconds of one `drg` command in a fresh process."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "grouper.cli", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"drg {' '.join(args)} failed:\n{p.stderr}")
    return seconds


def province(folder: Path, cases: int, files: int, workers: int) -> tuple[list[Path], float]:
    """``files`` synthetic files adding up to ``cases`` (made once; seconds it took, or nan)."""
    sizes = [cases // files + (k < cases % files) for k in range(files)]
    paths = [folder / f"province-{k:03d}.parquet" for k in range(files)]
    todo = [(p, n, k) for k, (p, n) in enumerate(zip(paths, sizes)) if not p.exists()]
    if not todo:
        return paths, float("nan")
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:  # each `drg synth` is one single-threaded process
        list(pool.map(lambda a: run_cli("synth", "--cases", str(a[1]), "--hospitals", "200", "--year", "2025",
                                        "--seed", str(a[2] + 1), "-o", str(a[0])), todo))
    return paths, time.perf_counter() - t0


def task_rate(dst: Path) -> float:
    """Cases/s of one worker on one core: rows over the summed time of the tasks (manifest)."""
    pieces = json.loads((dst / "_manifest.json").read_text())["fragments"]
    return sum(p["rows_out"] for p in pieces) / sum(p["seconds"] for p in pieces)


def counts(report: Path) -> tuple[dict, dict]:
    doc = json.loads(report.read_text())
    return doc["status"], doc["drg"]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=50_000_000)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--workers", type=int, default=None, help="default: every CPU this process may use")
    ap.add_argument("--dir", type=Path, help="where to put the files (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic files")
    ap.add_argument("--quick", action="store_true", help="40,000 cases in 2 files (smoke run)")
    ap.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster run")
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args(argv)
    n, k = (40_000, 2) if a.quick else (a.cases, a.files)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = a.workers or cpus
    folder = Path(a.dir or tempfile.mkdtemp(prefix="drg-bench-dist-"))
    src = folder / f"province_{n}_{k}"
    src.mkdir(parents=True, exist_ok=True)
    paths, t_synth = province(src, n, k, workers)
    results: dict = {"cases": n, "files": k, "workers": workers, "cpus": cpus, "synth_seconds": t_synth,
                     "input_mib": sum(p.stat().st_size for p in paths) / 2**20, "runs": {}}
    runs = results["runs"]
    reference = None

    def record(name: str, seconds: float, report: Path, **extra) -> None:
        nonlocal reference
        got = counts(report)
        if reference is None:
            reference = got
        elif got != reference:
            raise SystemExit(f"{name}: status/DRG counts differ from the one-process run")
        runs[name] = {"seconds": seconds, "cases_per_s": n / seconds, **extra}

    work = folder / "out"
    for t in sorted({1, cpus}):
        out = work / f"one_{t}.parquet"
        cpu0 = children_cpu()
        secs = run_cli("group", *map(str, paths), "-o", str(out), "--threads", str(t), "--overwrite",
                       "--summary", str(work / "r.json"))
        record(f"drg group, one process, {t} thread(s)", secs, work / "r.json", cpu_s=children_cpu() - cpu0)
        out.unlink()
    cpu0 = children_cpu()
    secs = run_cli("group", str(src), "-o", str(work / "pool"), "--workers", str(workers), "--overwrite",
                   "--summary", str(work / "r.json"))
    record(f"drg group --workers {workers} (process pool)", secs, work / "r.json",
           task_cases_per_s=task_rate(work / "pool"), cpu_s=children_cpu() - cpu0)
    shutil.rmtree(work / "pool")
    if not a.no_dask:
        from distributed import Client, LocalCluster

        import grouper
        from grouper.scale import group_dataset

        g = grouper.Grouper()
        t0, cpu0 = time.perf_counter(), children_cpu()
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                          silence_logs=40) as cluster, Client(cluster) as client:
            client.wait_for_workers(workers)
            t_start = time.perf_counter() - t0
            t1 = time.perf_counter()
            r = group_dataset(src, work / "dask", g, client, overwrite=True, report=work / "r.json")
            secs = time.perf_counter() - t1
        assert r.ok, r.failed
        record(f"group_dataset, Dask LocalCluster of {workers}", secs, work / "r.json", cluster_start_s=t_start,
               task_cases_per_s=task_rate(work / "dask"), cpu_s=children_cpu() - cpu0)  # workers' CPU, start-up too
        shutil.rmtree(work / "dask")
    shutil.rmtree(work, ignore_errors=True)
    if not a.keep:
        shutil.rmtree(src)
        if a.dir is None:
            shutil.rmtree(folder, ignore_errors=True)

    base = runs["drg group, one process, 1 thread(s)"]["cases_per_s"]
    print(f"machine: {platform.processor() or platform.machine()}, {cpus} CPUs usable, "
          f"Python {platform.python_version()}")
    print(f"province: {n:,} synthetic cases in {k} Parquet files, {results['input_mib']:.0f} MiB, "
          f"synthesised in {t_synth:.1f} s\n")
    print(f"{'run':<48}{'seconds':>9}{'CPU s':>8}{'cases/s':>13}{'speed-up':>10}{'per task, 1 core':>18}")
    for name, r in runs.items():
        r["speedup"] = r["cases_per_s"] / base
        task = f"{r['task_cases_per_s']:,.0f}" if "task_cases_per_s" in r else ""
        print(f"{name:<48}{r['seconds']:>9.2f}{r['cpu_s']:>8.1f}{r['cases_per_s']:>13,.0f}{r['speedup']:>9.2f}x"
              f"{task:>18}")
    last = next(reversed(runs.values()))
    if "cluster_start_s" in last:
        print(f"\n(Dask cluster start-up, not included above: {last['cluster_start_s']:.1f} s; "
              "the process-pool and one-process runs include their own start-up)")
    print("status and DRG counts identical in every run")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()

"""Corrupt Arrow inputs must give a clear error, never a crash: the red-team check of issue 18.

Writes crafted Arrow IPC files (string offsets out of order or past the data, list offsets
out of order, corrupt dictionaries, dictionary indices out of range, invalid UTF-8, in the code
columns, in number columns and in pass-through columns) and valid files with random bytes
flipped, then runs ``drg group``, ``drg regroup`` and ``drg settle`` on each, and the Python API
(``Grouper.group`` on the same arrays in memory, ``group_batch(encoded=...)`` with stray ids).
Every run must end with exit code 0, 1 or 2, one ``Error: <file>: ...`` line and no traceback
when it fails, and no ``.part`` file left behind; a crafted corruption must fail (exit 1, or a
``ValueError`` from the API).

The cases run in a child process (the CLI through click's test runner), so a segmentation
fault is seen as the child dying, with the case it was running named::

    .venv/bin/python benchmarks/fuzz_inputs.py                 # crafted cases + 200 byte-flip seeds
    .venv/bin/python benchmarks/fuzz_inputs.py --seeds 2000    # more random files
    .venv/bin/python benchmarks/fuzz_inputs.py --quick         # what benchmarks/test_fuzz_inputs.py runs

Under AddressSanitizer (not in CI: a separate build, several times slower), reads just outside
a buffer that do not crash are found too. Build the extensions with ASAN into a folder of their
own (the editable install stays as it is) and preload ASAN's runtime into the uninstrumented
Python interpreter; the child process inherits both::

    CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" LDFLAGS="-fsanitize=address" \\
        .venv/bin/python -m pip install --no-deps -t /tmp/drg-asan .
    LD_PRELOAD="$(gcc -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0 PYTHONPATH=/tmp/drg-asan \\
        .venv/bin/python benchmarks/fuzz_inputs.py --seeds 500

(pyarrow itself is not instrumented: ASAN then checks the grouper's own Cython code, where
issue 18's reads out of bounds were, ``fnv1a`` in ``_codes`` and ``severity`` in ``_kernel``.)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

CODES = b"C61.x00I10.x00E11.900"  # three codes, 7 bytes each
WEIGHTS_CSV = "drg,rw,mean_cost,mean_los,n\nMA19,1.2,12000,6,30\nRC19,0.9,9000,5,30\n"


def _strings(offsets, data: bytes = CODES, large: bool = False) -> pa.Array:
    """A utf8 array straight from buffers: nothing checks the offsets here."""
    width = np.int64 if large else np.int32
    return pa.Array.from_buffers(pa.large_string() if large else pa.string(), len(offsets) - 1,
                                 [None, pa.py_buffer(np.array(offsets, width).tobytes()), pa.py_buffer(data)])


def _lists(offsets, child: pa.Array) -> pa.Array:
    """A list array from buffers with its offsets taken as they are (Arrow's own construction
    checks only the last one)."""
    return pa.Array.from_buffers(pa.list_(child.type), len(offsets) - 1,
                                 [None, pa.py_buffer(np.array(offsets, np.int32).tobytes())], children=[child])


def base(n: int = 4) -> dict[str, pa.Array]:
    """Valid columns for ``n`` cases, enough for group, regroup and settle."""
    return {
        "case_id": pa.array([str(i) for i in range(n)]),
        "hospital_id": pa.array(["H1"] * n),
        "sex": pa.array([1] * n, pa.int8()),
        "age": pa.array([65] * n, pa.int16()),
        "dx": pa.array([["C61.x00", "I10.x00"]] * n, pa.list_(pa.string())),
        "px": pa.array([["60.5x02"]] * n, pa.list_(pa.string())),
        "los": pa.array([5] * n, pa.int32()),
        "discharge": pa.array(["1"] * n),
        "total_cost": pa.array([10000.0] * n),
        "patient_share": pa.array([2000.0] * n),
    }


#: Crafted cases whose corruption is in a column CHS-DRG 1.1 does not read (it reads no discharge
#: status) or only passes through: ``drg group`` without ``--keep`` of it and the API may
#: succeed; a command that reads the column must fail.
NOT_READ_BY_GROUPER = {"text_discharge_offsets_bad", "hospital_offsets_bad"}


def crafted() -> dict[str, dict[str, pa.Array]]:
    """name -> columns, each with one corruption that once crashed or could crash a reader."""
    two = lambda **over: {**base(2), **over}  # noqa: E731
    idx = lambda values: pa.array(values, pa.int32())  # noqa: E731
    text = pa.array(["C61.x00", "I10.x00"])
    return {
        # issue 18: only the last child offset was checked, then CodeTable._map read at -1e8
        "list_child_offsets_negative": two(dx=_lists([0, 2, 4], _strings([0, -100_000_000, 3, 2, 7]))),
        "list_child_offsets_decreasing": two(dx=_lists([0, 2, 4], _strings([0, 7, 3, 14, 21]))),
        "list_child_large_offsets_negative": two(dx=_lists([0, 2, 4], _strings([0, -(2**40), 3, 2, 7], large=True))),
        "list_offsets_decreasing": two(dx=_lists([0, 3, 2], _strings([0, 7, 14, 21]))),
        # '|'-joined text: pyarrow's utf8 trim ran over the bad offsets first
        "joined_offsets_negative": two(dx=_strings([0, -100_000_000, 7])),
        "joined_offsets_past_data": two(dx=_strings([0, 7, 7]), px=_strings([0, 3, 2])),
        # a dictionary with bad offsets, flat and as list elements; indices out of range
        "dictionary_offsets_past_data": two(dx=pa.DictionaryArray.from_arrays(idx([0, 1]), _strings([0, 100_000_000, 7]))),
        "list_dictionary_offsets_bad": two(dx=_lists([0, 1, 2], pa.DictionaryArray.from_arrays(
            idx([0, 1]), _strings([0, 14, 7])))),
        "dictionary_index_past_end": two(dx=pa.DictionaryArray.from_arrays(idx([0, 5]), text, safe=False)),
        "dictionary_index_negative": two(dx=pa.DictionaryArray.from_arrays(idx([0, -1]), text, safe=False)),
        "list_dictionary_index_past_end": two(dx=_lists([0, 1, 2], pa.DictionaryArray.from_arrays(
            idx([0, 9]), text, safe=False))),
        # numbers and pass-through columns are read too
        "text_age_offsets_bad": two(age=_strings([0, 6, 4], b"6570")),
        "dictionary_sex_index_bad": two(sex=pa.DictionaryArray.from_arrays(idx([0, 7]), pa.array(["1", "2"]), safe=False)),
        "text_discharge_offsets_bad": two(discharge=_strings([0, 5_000, 2], b"15")),
        "hospital_offsets_bad": two(hospital_id=_strings([0, -100_000_000, 2], b"H1")),
        # not memory errors, but text that Arrow refuses to parse
        "invalid_utf8_codes": two(dx=_strings([0, 7, 9], b"C61.x00\xff\xfe")),
        "invalid_utf8_age": two(age=_strings([0, 2, 4], b"6\xff70")),
    }


def write_ipc(path: Path, cols: dict[str, pa.Array]) -> None:
    batch = pa.RecordBatch.from_arrays(list(cols.values()), names=list(cols))
    with ipc.new_file(str(path), batch.schema) as w:
        w.write_batch(batch)


def flipped(valid: bytes, seed: int) -> bytes:
    """``valid`` with 1-8 random bytes of its body replaced (the 8-byte magic and the footer
    length kept, so that most files still open and their buffers are what gets read)."""
    rng = random.Random(seed)
    data = bytearray(valid)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(8, len(data) - 10)
        data[i] = rng.choice([0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)])
    return bytes(data)


# ----------------------------------------------------------------------------- child process

def _cli_case(path: Path, out_dir: Path, weights: Path) -> list[dict]:
    from click.testing import CliRunner

    from grouper.cli.main import main

    runs = {
        "group": ["group", str(path), "-o", str(out_dir / "grouped.parquet"), "--keep", "hospital_id"],
        "regroup": ["regroup", str(path), "-o", str(out_dir / "regrouped.parquet")],
        "settle": ["settle", str(path), "-p", "illustrative-2024", "-w", str(weights), "-o",
                   str(out_dir / "settled.parquet")],
    }
    results = []
    for command, args in runs.items():
        r = CliRunner().invoke(main, [*args, "--overwrite"])
        error = r.output.strip().splitlines()[-1] if r.exit_code and r.output.strip() else ""
        results.append({"command": command, "exit": r.exit_code, "error": error,
                        "exception": None if r.exception is None or isinstance(r.exception, SystemExit)
                        else f"{type(r.exception).__name__}: {r.exception}",
                        "parts": sorted(p.name for p in out_dir.iterdir() if p.name.endswith(".part"))})
    return results


def _api_case(cols: dict[str, pa.Array]) -> dict:
    import grouper

    g = grouper.Grouper("chs-drg-1.1", n_threads=1)
    batch = pa.RecordBatch.from_arrays(list(cols.values()), names=list(cols))
    try:
        g.group(batch, keep=["hospital_id"])
        return {"exception": None}
    except ValueError as exc:  # InputError and CorruptInputError are ValueErrors
        return {"exception": f"{type(exc).__name__}: {exc}", "clean": True}
    except Exception as exc:  # noqa: BLE001 - reported, the parent judges
        return {"exception": f"{type(exc).__name__}: {exc}", "clean": False}


def _encoded_cases() -> list[dict]:
    """``group_batch(encoded=...)`` with ids outside the scheme's code lists."""
    import grouper

    g = grouper.Grouper("chs-drg-1.1", n_threads=1)
    batch = pa.RecordBatch.from_pydict({"sex": [1, 1], "age": [65, 70], "dx": [["C61.x00"], ["I10.x00"]],
                                        "px": [[], []]})
    out = []
    for name, change in (("dx_id_past_end", ("dx_ids", 10**8)), ("dx_id_negative", ("dx_ids", -(10**8))),
                         ("px_id_past_end", ("px_ids", len(g.compiled.px_codes))),
                         ("dx_id_int64", ("dx_ids", None))):
        enc = g.encoder.encode(batch)
        field, value = change
        ids = getattr(enc, field).copy()
        if value is None:
            ids = ids.astype(np.int64)
        else:
            if not len(ids):
                ids = np.zeros(1, np.int32)
                setattr(enc, field[:2] + "_off", np.array([0, 1, 1], np.int32))
            ids[0] = value
        setattr(enc, field, ids)
        try:
            g.group_batch(batch, encoded=enc)
            out.append({"case": name, "exception": None})
        except ValueError as exc:
            out.append({"case": name, "exception": f"{type(exc).__name__}: {exc}", "clean": True})
    return out


def worker(spec_path: str) -> None:
    """Child: run every case listed in the spec, one JSON line each (flushed: the parent sees
    the last case started if this process dies)."""
    spec = json.loads(Path(spec_path).read_text())
    weights = Path(spec["weights"])
    for case in spec["cases"]:
        print(json.dumps({"start": case["name"]}), flush=True)
        path = Path(case["path"])
        out_dir = path.with_suffix(".out")
        out_dir.mkdir(exist_ok=True)
        row = {"name": case["name"], "kind": case["kind"], "cli": _cli_case(path, out_dir, weights)}
        if case["kind"] == "crafted":
            with ipc.open_file(str(path)) as f:  # the same buffers, in memory: the API path
                b = f.get_batch(0)
            row["api"] = _api_case(dict(zip(b.schema.names, b.columns)))
        print(json.dumps(row), flush=True)
    if spec.get("encoded"):
        for r in _encoded_cases():
            print(json.dumps({"name": r["case"], "kind": "encoded", "api": r}), flush=True)
    print(json.dumps({"done": True}), flush=True)


# ----------------------------------------------------------------------------- parent

def problems(row: dict) -> list[str]:
    """What is wrong with one case's outcome (empty when it is as it should be)."""
    out = []
    for r in row.get("cli", []):
        where = f"{row['name']} / drg {r['command']}"
        if r["exit"] not in (0, 1, 2):
            out.append(f"{where}: exit code {r['exit']}")
        if r["exception"]:
            out.append(f"{where}: uncaught {r['exception']}")
        if r["parts"]:
            out.append(f"{where}: left {r['parts']}")
        if r["exit"] and not r["error"].startswith("Error:"):
            out.append(f"{where}: no one-line error: {r['error']!r}")
        elif r["exit"] and row["kind"] == "crafted" and ".arrow" not in r["error"]:
            out.append(f"{where}: error line does not name the file: {r['error']!r}")
        must_fail = row["kind"] == "crafted" and (
            r["command"] == "settle" or row["name"] not in NOT_READ_BY_GROUPER
            or (row["name"] == "hospital_offsets_bad" and r["command"] == "group"))  # --keep hospital_id
        if must_fail and r["exit"] != 1:
            out.append(f"{where}: a corrupt file must fail with exit 1, got {r['exit']} {r['error']!r}")
    api = row.get("api")
    if api is not None:
        if api["exception"] is not None and not api.get("clean"):
            out.append(f"{row['name']} / API: not a ValueError: {api['exception']}")
        if row["kind"] in ("crafted", "encoded") and row["name"] not in NOT_READ_BY_GROUPER and api["exception"] is None:
            out.append(f"{row['name']} / API: corrupt input accepted")
    return out


def run(seeds: int = 200, crafted_only: bool = False, workdir: str | None = None, verbose: bool = False) -> dict:
    """Write the cases, run them in a child process, judge them. Returns a summary dict with
    ``problems`` (a list of strings, empty when everything held)."""
    tmp = Path(workdir or tempfile.mkdtemp(prefix="drg-fuzz-"))
    tmp.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, cols in crafted().items():
        path = tmp / f"{name}.arrow"
        write_ipc(path, cols)
        cases.append({"name": name, "kind": "crafted", "path": str(path)})
    if not crafted_only:
        valid = tmp / "valid.arrow"
        cols = base(64)
        cols["dx"] = pa.DictionaryArray.from_arrays(pa.array(np.arange(64) % 3, pa.int32()),
                                                    pa.array(["C61.x00|I10.x00", "I10.x00", "E11.900"]))
        write_ipc(valid, cols)
        data = valid.read_bytes()
        for seed in range(seeds):
            path = tmp / f"flip{seed:05d}.arrow"
            path.write_bytes(flipped(data, seed))
            cases.append({"name": path.stem, "kind": "flipped", "path": str(path)})
    weights = tmp / "weights.csv"
    weights.write_text(WEIGHTS_CSV)
    spec = tmp / "spec.json"
    spec.write_text(json.dumps({"cases": cases, "weights": str(weights), "encoded": True}))
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.run([sys.executable, __file__, "--worker", str(spec)], capture_output=True, text=True, env=env)
    rows, started, done = [], None, False
    for line in proc.stdout.splitlines():
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "start" in doc:
            started = doc["start"]
        elif doc.get("done"):
            done = True
        else:
            rows.append(doc)
            started = None
    found = [p for row in rows for p in problems(row)]
    if not done:
        found.append(f"the worker died (exit code {proc.returncode}) while running case {started!r}: "
                     + (proc.stderr.strip().splitlines() or [""])[-1])
    failed = sum(1 for row in rows for r in row.get("cli", []) if r["exit"])
    if verbose:
        for row in rows:
            for r in row.get("cli", []):
                print(f"{row['name']:<36} {r['command']:<8} exit {r['exit']}  {r['error'][:110]}")
            if "api" in row:
                print(f"{row['name']:<36} API      {row['api']['exception'] or 'ok'}"[:160])
    return {"cases": len(rows), "cli_runs": sum(len(r.get("cli", [])) for r in rows), "cli_failed_cleanly": failed,
            "worker_exit": proc.returncode, "problems": found, "dir": str(tmp)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=200, help="valid files with random bytes flipped")
    ap.add_argument("--quick", action="store_true", help="the crafted cases and 10 seeds")
    ap.add_argument("--dir", help="work folder (default: a new temporary one)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every run's outcome")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return {}
    summary = run(10 if args.quick else args.seeds, workdir=args.dir, verbose=args.verbose)
    print(f"{summary['cases']} inputs, {summary['cli_runs']} command runs ({summary['cli_failed_cleanly']} "
          f"refused with a message); problems: {len(summary['problems'])}")
    for p in summary["problems"]:
        print("  " + p)
    return summary


if __name__ == "__main__":
    sys.exit(1 if main().get("problems") else 0)

"""Where one CPU's time goes in ``drg group`` Parquet -> Parquet, stage by stage (issue 16).

    taskset -c 0 .venv/bin/python benchmarks/bench_stages.py province.parquet [--repeat 3] [-r RULESET]

The command's own sequence (``jobs.group``: planned batches, ``Grouper.group_batch``, the run's
counts, the Parquet writer with ``parquet_writer_options``, one row group a batch) run on one
thread, each stage timed by CPU seconds (``time.process_time``): reading Parquet, encoding
(numbers parsed, code strings mapped to ids: ``Encoder.encode``), the kernel (``Grouper._kernel``),
the output columns (the rest of ``group_batch``, and conforming to the output schema), the counts
(``BatchCounts.add``) and writing. Start-up (imports, the compiled ruleset) is not in it. Best of
``--repeat`` for each stage. It only uses what older trees have too, so another install's Python
can run this file on the same input: run both alternately for an A/B
(``docs/performance.md``, issue 16). Reports only; never fails on time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("read", "encode", "kernel", "columns", "counts", "write")


def stages(src: str | os.PathLike, out: str | os.PathLike, ruleset: str) -> dict[str, float]:
    """CPU seconds of each stage of one grouping of ``src`` into ``out`` (see the module doc)."""
    import pyarrow.parquet as pq

    from grouper._util.batches import conform, empty_batch, unified_schema
    from grouper.engine import BatchCounts, Grouper
    from grouper.engine.inputs import Encoder
    from grouper.io import CaseSource
    from grouper.io.write import parquet_writer_options
    from grouper.jobs.group import names_hint, result_columns

    clock = time.process_time
    g = Grouper(ruleset, n_threads=1)
    acc = dict.fromkeys(STAGES, 0.0)
    encode, kernel = Encoder.encode, type(g)._kernel

    def timed_encode(self, b):
        t = clock()
        try:
            return encode(self, b)
        finally:
            acc["encode"] += clock() - t

    def timed_kernel(self, *args):
        t = clock()
        try:
            return kernel(self, *args)
        finally:
            acc["kernel"] += clock() - t

    source = CaseSource.open(src)
    columns = result_columns(out)
    target = unified_schema([g.group_batch(empty_batch(source.schema), columns=columns).schema],
                            {**g.metadata, **names_hint(g, columns)})
    counts, writer, done = BatchCounts(), None, 0
    Encoder.encode, type(g)._kernel = timed_encode, timed_kernel
    try:
        batches = iter(source.read({"case_id", *g.encoder.columns}, ahead=0))
        while True:
            t = clock()
            b = next(batches, None)
            acc["read"] += clock() - t
            if b is None:
                break
            t = clock()
            o = g.group_batch(b, n_threads=1, row_offset=done, columns=columns)
            o = conform(o, target).replace_schema_metadata(target.metadata)
            done += o.num_rows
            acc["columns"] += clock() - t  # less the encoding and the kernel, below
            t = clock()
            counts.add(o)
            acc["counts"] += clock() - t
            t = clock()
            if writer is None:
                writer = pq.ParquetWriter(out, o.schema, **parquet_writer_options(o.schema))
            writer.write_batch(o, row_group_size=1 << 20)
            acc["write"] += clock() - t
        t = clock()
        if writer is not None:
            writer.close()
        acc["write"] += clock() - t
    finally:
        Encoder.encode, type(g)._kernel = encode, kernel
    acc["columns"] -= acc["encode"] + acc["kernel"]
    return acc


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input", type=Path, help="a case file in Parquet (e.g. from drg synth)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("-r", "--ruleset", default="chs-drg-2.0")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="drg-stages-") as d:
        for _ in range(a.repeat):
            for k, v in stages(a.input, Path(d) / "out.parquet", a.ruleset).items():
                best[k] = min(best.get(k, v), v)
    best["total"] = sum(best[k] for k in STAGES)
    print(f"{a.input.name}, {a.ruleset}, one thread, CPU s per stage, best of {a.repeat}; "
          f"load average {os.getloadavg()[0]:.1f}; {sys.executable}")
    print("  ".join(f"{k} {best[k]:.3f}" for k in (*STAGES, "total")))
    if a.json:
        a.json.write_text(json.dumps(best, indent=2))
    return best


if __name__ == "__main__":
    main()

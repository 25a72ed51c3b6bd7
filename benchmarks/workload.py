"""A realistic benchmark workload, shared by ``bench_group.py`` and ``test_bench_group.py``.

Rows are resampled (fixed seed) from the sample cases shipped with the tests, so the code
mix, list lengths and missing values look like real discharge records, and every run of
every benchmark groups the same cases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from grouper.engine.reference import Case

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "chs-drg-1.1"
SOURCES = ("golden_random.csv", "sample.csv")
NUMERIC = ("sex", "age", "age_days", "birth_weight", "los")
CODES = ("discharge", "dept")  # read by local schemes
SEED = 20240601


def best(fn, repeats: int = 5, clock=None) -> float:
    """Best time of ``repeats`` calls: the least disturbed by other load. ``clock`` is wall time
    by default (``time.perf_counter``); ``time.thread_time`` leaves out the time other processes
    held the CPU (their cache pollution still counts)."""
    import time

    clock = clock or time.perf_counter
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times)


def load_pool() -> pa.Table:
    """The source rows: numbers as int32 (null where blank), dx/px as list<string>."""
    types = {c: pa.int32() for c in NUMERIC} | {c: pa.string() for c in ("dx", "px", *CODES)}
    parts = []
    for name in SOURCES:
        t = pv.read_csv(DATA / name, convert_options=pv.ConvertOptions(
            column_types=types, include_columns=[*NUMERIC, *CODES, "dx", "px"]))
        cols = {c: t.column(c).cast(pa.int32()) for c in NUMERIC} | {c: t.column(c) for c in CODES}
        for c in ("dx", "px"):  # a blank cell is an empty list, not one empty code
            cols[c] = pa.array([s.split("|") if s else [] for s in t.column(c).to_pylist()],
                               pa.list_(pa.string()))
        parts.append(pa.table(cols))
    return pa.concat_tables(parts)


def build_table(n: int, seed: int = SEED) -> pa.Table:
    """``n`` cases drawn with replacement from the pool, as one contiguous Arrow table."""
    pool = load_pool()
    idx = np.random.default_rng(seed).integers(0, pool.num_rows, n)
    t = pool.take(pa.array(idx)).combine_chunks()
    case_id = pc.cast(pa.array(np.arange(1, n + 1, dtype=np.int64)), pa.string())
    return t.add_column(0, "case_id", case_id)


def records(table: pa.Table, n: int | None = None) -> list[dict]:
    """The first ``n`` rows as keyword dicts for ``Grouper.group_one``."""
    t = table.select([*NUMERIC, *CODES, "dx", "px"])
    return t.slice(0, n).to_pylist() if n is not None else t.to_pylist()


def cases(recs: list[dict]) -> list[Case]:
    """The same rows as reference-interpreter ``Case`` objects."""
    return [Case(**r) for r in recs]

"""Property tests of the audit's vectorised pieces against plain Python."""

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from grouper.audit import load_edits, run_edits
from grouper.audit.collect import patient_hash
from grouper.rulesets import load_ruleset

CODES = ["J18.900", "I10.x00x002", "E11.900", "W01.x00", "O80.000", "N40.x00", ""]
RS = load_ruleset("chs-drg-2.0")
EDITS = load_edits()

lists = st.lists(st.lists(st.sampled_from(CODES), max_size=6), min_size=1, max_size=30)


@settings(max_examples=60, deadline=None)
@given(lists, st.integers(0, 5))
def test_duplicates_and_pdx_edits_match_plain_python(dx, start):
    batch = pa.RecordBatch.from_pydict({"sex": [1] * len(dx), "age": [50] * len(dx), "dx": dx,
                                        "px": [[] for _ in dx]})
    start = min(start, len(dx) - 1)
    part = batch.slice(start)  # sliced batches (offsets not at 0) must give the same answer
    found = run_edits(part, None, EDITS, RS, row_offset=start).to_pylist()
    dup = {r["row"] for r in found if r["code"] == "AE90"}
    ext = {r["row"] for r in found if r["code"] == "AE01"}
    male_o = {r["row"] for r in found if r["code"] == "AE03"}
    rows = range(start, len(dx))
    assert dup == {i for i in rows if len([c for c in dx[i] if c]) > len({c for c in dx[i] if c})}
    assert ext == {i for i in rows if dx[i] and dx[i][0] == "W01.x00"}
    assert male_o == {i for i in rows if "O80.000" in dx[i]}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=12), min_size=1, max_size=40), st.integers(0, 10))
def test_patient_hash_depends_on_the_value_only(ids, start):
    start = min(start, len(ids) - 1)
    whole = patient_hash(pa.array(ids))
    sliced = patient_hash(pa.array(ids).slice(start))
    assert (whole[start:] == sliced).all()
    by_value = {}
    for v, h in zip(ids, whole):
        assert by_value.setdefault(v, h) == h
    ints = patient_hash(pa.array(np.arange(len(ids), dtype=np.int64)))
    assert len(set(ints.tolist())) == len(ids)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 30), st.integers(0, 5)), max_size=200),
       st.integers(1, 50))
def test_sparse_pairs_sum_like_a_grid(rows, chunk):
    """Pairs (the sparse (unit, ADRG) sums) agree with the dense Grid, however the rows come."""
    from grouper.audit.collect import Grid, Pairs
    grid, pairs = Grid(2), Pairs(2)
    for k in range(0, len(rows), chunk):
        part = np.array(rows[k:k + chunk], np.int64).reshape(-1, 3)
        vals = np.c_[np.ones(len(part)), part[:, 2]]
        grid.add(part[:, 0], part[:, 1], vals)
        pairs.add(part[:, 0], part[:, 1], vals)
    i, j, v = pairs.items()
    dense = np.zeros_like(grid.a)
    dense[i, j] = v
    assert np.array_equal(dense, grid.a)
    assert pairs.total() == len(rows) and (np.diff(i * 1000 + j) > 0).all()


def test_normal_tail_matches_math_erfc():
    import math
    from grouper.audit.stats import normal_upper
    z = np.r_[np.linspace(-8, 12, 401), np.inf, -np.inf, np.nan]
    got = normal_upper(z)
    want = [0.5 * math.erfc(v / math.sqrt(2)) if np.isfinite(v) else (0.0 if v > 0 else 1.0) for v in z]
    assert np.allclose(got, want, rtol=2e-7, atol=0)

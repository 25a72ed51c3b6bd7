"""The compiled per-case pass of the indices (``analytics._cells``) against a plain Python
computation of the same cells: exclusion reasons, table lookups, counts and the exact integer
sums of ``exact.add_at``, on random rows with nulls, unknown pairs, and values of every size."""

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grouper._util.money import ExactSum
from grouper.analytics import _cells, exact
from grouper.analytics.indices import IndexCells

# the usual values (whole fen, whole days, fractions in [1, 2^31)) and any others the limbs hold
usual = st.one_of(st.integers(0, 10 ** 9).map(lambda f: f / 100), st.integers(0, 3000).map(float),
                  st.floats(1, 2.0 ** 31, exclude_max=True))
other = st.one_of(st.floats(-1e12, 1e12).filter(lambda v: v == 0 or abs(v) > 1e-12), st.floats(2.0 ** 31, 2.0 ** 63),
                  st.just(-0.0), st.just(math.nan))
value = st.one_of(usual, usual, other)
row = st.tuples(st.integers(0, 3),  # status entry: 0 grouped, 1 another status, 2 null
                value, value,  # cost, stay
                st.integers(0, 4), st.integers(0, 2), st.integers(0, 5),  # hospital, department, DRG entries
                st.integers(0, 2))  # discharge entry


def plain(rows, grouped, hosp_id, dept_id, drg_id, dead_of, units, cells, m):
    """What the pass must do, one row at a time in Python with ``exact.add_at`` for the sums."""
    excluded, missed, kept = [0, 0, 0], [], []
    for i, (s, c, t, h, d, g, k) in enumerate(rows):
        if not grouped[s]:
            excluded[0] += 1
        elif c != c:
            excluded[1] += 1
        elif not t >= 0:
            excluded[2] += 1
        else:
            cell = cells.get((units.get((hosp_id[h], dept_id[d])), drg_id[g]))
            (missed if cell is None else kept).append((i, cell))
    n, dead = np.zeros(m, np.int64), np.zeros(m, np.int64)
    sums = [np.zeros((exact.ROWS, m), np.int64) for _ in range(2)]
    for i, cell in kept:
        n[cell] += 1
        dead[cell] += dead_of[rows[i][6]]
        for j, into in zip((1, 2), sums):
            exact.add_at(into, np.array([cell]), np.array([rows[i][j]]))
    return excluded, [i for i, _ in missed], n, dead, sums


def table(pairs, acap, bcap):
    t = np.full(acap * bcap, -1, np.int32)
    for (a, b), v in pairs.items():
        t[a * bcap + b] = v
    return t


@settings(max_examples=200, deadline=None)
@given(st.lists(row, max_size=200), st.data())
def test_the_pass_equals_the_plain_computation(rows, data):
    grouped = np.array([1, 0, 0, 1], np.uint8)  # entry 3: a second spelling of 'grouped'
    hosp_id, dept_id = np.array([0, 1, 2, 3, 7]), np.array([0, 1, 4])  # 7, 4: beyond the tables
    drg_id, dead_of = np.array([0, 1, 2, 3, 4, 9]), np.array([0, 1, 0], np.uint8)
    known_units = data.draw(st.dictionaries(st.tuples(st.integers(0, 3), st.integers(0, 1)), st.integers(0, 5)))
    units = dict(known_units)
    m = 8
    known_cells = data.draw(st.dictionaries(st.tuples(st.integers(0, 5), st.integers(0, 4)), st.integers(0, m - 1)))
    by_department = data.draw(st.booleans())
    if not by_department:
        units = {(h, 0): u for (h, d), u in units.items() if d == 0}
        dept_id = np.array([0, 0, 0])
    excluded, missed, n, dead, sums = plain(rows, grouped, hosp_id, dept_id, drg_id, dead_of, units, known_cells, m)

    col = [np.array([r[j] for r in rows], dtype) for j, dtype in enumerate(
        (np.int32, np.float64, np.float64, np.int32, np.int32, np.int32, np.int32))]
    hot, limbs = np.zeros((m, 8), np.int64), np.zeros((m, 10), np.int64)
    got_excluded, bad, out = np.zeros(3, np.int64), np.full(2, -1, np.int64), np.empty(len(rows), np.int64)
    k = _cells.scan(grouped, col[0], col[1], col[2], hosp_id, col[3], dept_id, col[4], by_department, drg_id,
                    col[5], dead_of, col[6], table(units, 4, 2), 4, 2, table(known_cells, 6, 5), 6, 5, hot, limbs,
                    out, got_excluded, bad)
    assert got_excluded.tolist() == excluded and out[:k].tolist() == missed and bad.tolist() == [-1, -1]
    assert hot[:, 0].tolist() == n.tolist() and hot[:, 1].tolist() == dead.tolist()
    for j, want in enumerate(sums):
        got = np.concatenate([hot[:, 2 + 3 * j:5 + 3 * j], limbs[:, 5 * j:5 + 5 * j]], axis=1).T
        assert np.array_equal(got, want)

    # the missed rows, given cells, added by add_rows: as by the plain computation
    cell = np.array(data.draw(st.lists(st.integers(0, m - 1), min_size=k, max_size=k)), np.int64)
    _cells.add_rows(out[:k], cell, col[1], col[2], dead_of, col[6], hot, limbs, bad)
    for i, c in zip(out[:k].tolist(), cell.tolist()):
        n[c] += 1
        dead[c] += dead_of[rows[i][6]]
        for j, into in zip((1, 2), sums):
            exact.add_at(into, np.array([c]), np.array([rows[i][j]]))
    assert hot[:, 0].tolist() == n.tolist() and hot[:, 1].tolist() == dead.tolist()
    for j, want in enumerate(sums):
        got = np.concatenate([hot[:, 2 + 3 * j:5 + 3 * j], limbs[:, 5 * j:5 + 5 * j]], axis=1).T
        assert np.array_equal(got, want)


def test_death_flags_per_row_and_values_it_cannot_hold():
    """An empty ``discharge``: ``dead_of`` is a flag per row. Infinite or 2^64 values are not
    added and their first rows come back in ``bad``; the rest of the row is added."""
    cost = np.array([5.0, np.inf, 2.5, 2.0 ** 64])
    los = np.array([1.0, 2.0, np.inf, 3.0])
    hot, limbs = np.zeros((1, 8), np.int64), np.zeros((1, 10), np.int64)
    bad = np.full(2, -1, np.int64)
    _cells.add_rows(np.arange(4), np.zeros(4, np.int64), cost, los, np.array([1, 0, 1, 1], np.uint8),
                    np.zeros(0, np.int32), hot, limbs, bad)
    assert bad.tolist() == [1, 2] and hot[0, :2].tolist() == [4, 3]
    assert exact.to_float(np.concatenate([hot[:, 2:5], limbs[:, :5]], axis=1).T).tolist() == [7.5]
    assert exact.to_float(np.concatenate([hot[:, 5:8], limbs[:, 5:]], axis=1).T).tolist() == [6.0]
    with pytest.raises(ValueError, match="cells must be"):
        _cells.add_rows(np.arange(0), np.zeros(0, np.int64), cost, los, np.zeros(1, np.uint8),
                        np.zeros(0, np.int32), hot, np.zeros((1, 5), np.int64), bad)


text = st.one_of(st.none(), st.sampled_from(["H1", "H2", "H3"]))
case = st.tuples(st.sampled_from(["grouped", "grouped", "grouped", "ungroupable", None]),
                 st.one_of(st.none(), st.sampled_from(["A11", "B22", "X99"])),  # X99: no weight
                 text, st.one_of(st.none(), usual, other), st.one_of(st.none(), usual, st.integers(-2, 40).map(float)),
                 st.sampled_from(["1", "5", None]), st.sampled_from(["K1", "K2", None]))


@settings(max_examples=100, deadline=None)
@given(st.lists(case, min_size=1, max_size=120), st.lists(st.integers(1, 119), max_size=3), st.booleans(),
       st.booleans())
def test_cells_equal_a_plain_computation_of_them(rs, cuts, by_dept, encoded):
    """Whole IndexCells, batch after batch, dictionary-encoded columns or plain text: each cell's
    cases, deaths and cost and stay sums (exact, rounded once: fsum) and the exclusions."""
    names = ["status", "drg", "hospital_id", "total_cost", "los", "discharge", "dept"]
    cols = dict(zip(names, map(list, zip(*rs))))
    t = pa.table({k: pa.array(v, pa.string() if k in ("status", "drg", "hospital_id", "discharge", "dept")
                              else pa.float64()) for k, v in cols.items()})
    if encoded:
        t = pa.table({k: t[k].dictionary_encode() if k != "total_cost" and k != "los" else t[k] for k in names})
    cells = IndexCells(department="dept" if by_dept else None)
    bounds = sorted({0, len(rs), *(c for c in cuts if c < len(rs))})
    for a, b in zip(bounds, bounds[1:]):
        cells.add(t.slice(a, b - a))
    want, excluded = {}, [0, 0, 0]
    for s, g, h, c, los, dis, d in rs:
        if s != "grouped":
            excluded[0] += 1
        elif c is None or c != c:  # NaN: as a null
            excluded[1] += 1
        elif los is None or not los >= 0:
            excluded[2] += 1
        else:
            w = want.setdefault((h, d if by_dept else None, g), [0, 0, [], []])
            w[0] += 1
            w[1] += dis == "5"
            w[2].append(c)
            w[3].append(los)
    assert [cells.excluded[r] for r in ("not_grouped", "null_cost", "null_or_negative_los")] == excluded
    key, n, dead, cl, tl = cells._reduced()
    units, drgs = sorted(cells.units, key=cells.units.get), sorted(cells.drgs, key=cells.drgs.get)
    got = {(*units[k >> 24], drgs[k & ((1 << 24) - 1)]): [int(a), int(b), x, y]
           for k, a, b, x, y in zip(key.tolist(), n, dead, exact.to_float(cl), exact.to_float(tl))}
    assert got == {k: [a, b, math.fsum(x), math.fsum(y)] for k, (a, b, x, y) in want.items()}
    assert cells._rows == sum(n)


def test_a_position_outside_its_table_is_an_error_not_a_read_beyond_it():
    one = np.zeros(1, np.int64)
    flags = np.ones(1, np.uint8)
    for bad in range(5):  # status, hospital, department, DRG, discharge
        pos = [np.zeros(3, np.int32) for _ in range(5)]
        pos[bad][1] = 1 if bad != 1 else -1
        with pytest.raises(ValueError, match="row 1: a dictionary index outside"):
            _cells.scan(flags, pos[0], np.ones(3), np.ones(3), one, pos[1], one, pos[2], True, one, pos[3], flags,
                        pos[4], np.zeros(1, np.int32), 1, 1, np.zeros(1, np.int32), 1, 1,
                        np.zeros((1, 8), np.int64), np.zeros((1, 10), np.int64), np.empty(3, np.int64),
                        np.zeros(3, np.int64), np.full(2, -1, np.int64))


def test_limbs_are_those_of_exact_sum():
    """The kernel's five limbs are ``ExactSum.limbs``, bit for bit."""
    x = np.array([0.5, -3.25, 2.0 ** 40 + 0.5, -(2.0 ** 63), 1e-12, 5e-324, 2.0 ** 31])
    hot, limbs = np.zeros((len(x), 8), np.int64), np.zeros((len(x), 10), np.int64)
    _cells.add_rows(np.arange(len(x)), np.arange(len(x)), x, np.zeros(len(x)), np.zeros(len(x), np.uint8),
                    np.zeros(0, np.int32), hot, limbs, np.full(2, -1, np.int64))
    assert np.array_equal(limbs[:, :5].T, ExactSum.limbs(x)) and not hot[:, 2:].any()

"""Exact per-key sums (``analytics.exact``): the exact sum rounded once, whatever the values,
their order or how they were split, and equal to ``ExactSum`` to the last bit."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from grouper._util.money import ExactSum
from grouper.analytics import exact

# the usual values (whole fen, whole days, fractions of yuan in [1, 2^31)) and any others
usual = st.one_of(st.integers(0, 10 ** 9).map(lambda f: f / 100), st.integers(0, 3000).map(float),
                  st.floats(1, 2.0 ** 31, exclude_max=True))
other = st.one_of(st.floats(-1e12, 1e12).filter(lambda v: v == 0 or abs(v) > 1e-12), st.floats(2.0 ** 31, 2.0 ** 60))
def sums(key, x, n=4):
    out = np.zeros((exact.ROWS, n), np.int64)
    exact.add_at(out, key, x)
    return out


pairs = st.lists(st.tuples(st.integers(0, 3), st.one_of(usual, usual, other)), min_size=1, max_size=80)


@settings(max_examples=300, deadline=None)
@given(pairs, st.integers(0, 80))
def test_sums_are_the_exact_sum_rounded_once_in_any_split(pairs, cut):
    key = np.array([k for k, _ in pairs])
    x = np.array([v for _, v in pairs])
    want = [math.fsum(x[key == k]) for k in range(4)]  # fsum: the exact sum, rounded once
    assert exact.to_float(sums(key, x)).tolist() == want
    assert want == ExactSum.to_float(ExactSum.by_key(key, x, 4)).tolist()
    row_by_row = np.zeros((exact.ROWS, 4), np.int64)
    exact.add_at(row_by_row, key[:cut], x[:cut])  # values added in place, in two calls
    exact.add_at(row_by_row, key[cut:], x[cut:])
    assert exact.to_float(row_by_row).tolist() == want
    # two parts added into one, the second's keys renumbered: the same totals
    a = sums(key[:cut], x[:cut])
    b = sums(3 - key[cut:], x[cut:])
    into = np.zeros((exact.ROWS, 4), np.int64)
    exact.add_by_key(into, np.arange(4), a)
    exact.add_by_key(into, 3 - np.arange(4), b)
    assert exact.to_float(into).tolist() == want


def test_large_batches_stay_exact():
    rng = np.random.default_rng(7)
    x = np.rint(rng.uniform(1, 2.0 ** 31, (1 << 22) + 5)) - rng.integers(0, 2, (1 << 22) + 5) * 0.75
    key = rng.integers(0, 3, len(x))
    got = exact.to_float(sums(key, x, 3)).tolist()
    assert got == [math.fsum(x[key == k]) for k in range(3)]


def test_a_value_that_cannot_be_summed_exactly_is_an_error():
    import pytest

    for bad in (np.inf, np.nan, 2.0 ** 64):
        with pytest.raises(ValueError, match="finite"):
            exact.add_at(np.zeros((exact.ROWS, 1), np.int64), np.zeros(2, np.int64), np.array([1.5, bad]))

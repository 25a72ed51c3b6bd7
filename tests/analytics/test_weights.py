"""Relative weights: the worked example of the domain notes, invariants, exclusions, pooling."""

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grouper.analytics.weights import WeightOptions, attach_weights, compare_weights, compute_weights, renormalize

# Worked example (domain notes 2.4): three groups of 6 cases, one 30,000 outlier in A. The notes
# give only the results; these inputs were reconstructed to reproduce them: A's fences 5,075-7,075,
# trimmed sums A 29,400 (5 cases), B 70,000, C 204,000, and CVs (population SD) 0.07-0.10.
A = [5200, 5800, 5900, 6100, 6400, 30000]
MB, MC = 70000 / 6, 34000.0
B = [MB + d for d in (1500, -1500, 1100, -1100, 789.4935, -789.4935)]
C = [MC + d for d in (4000, -4000, 3600, -3600, 2391.6522, -2391.6522)]


def grouped(groups: dict[str, list[float]], extra: dict | None = None) -> pa.Table:
    drg = [g for g, costs in groups.items() for _ in costs]
    cost = [c for costs in groups.values() for c in costs]
    cols = {"drg": drg, "adrg": [d[:3] for d in drg], "status": ["grouped"] * len(drg),
            "total_cost": cost, "los": [5] * len(drg)}
    cols.update(extra or {})
    return pa.table(cols)


def test_worked_example_of_the_domain_notes():
    r = compute_weights(grouped({"AA11": A, "BB11": B, "CC11": C}), WeightOptions(trim="iqr:1.5", min_cases=3))
    w = r.weights()
    assert (w["AA11"], w["BB11"], w["CC11"]) == (0.3295, 0.6537, 1.9051)
    assert round(r.mean_cost, 2) == 17847.06
    assert round(r.riv, 3) == 0.970
    t = r.table.to_pylist()
    assert [row["n_trimmed"] for row in t] == [1, 0, 0]
    assert all(0.06 <= row["cv"] <= 0.10 for row in t)
    n = np.array([row["n"] for row in t])
    rw = np.array([row["mean_cost"] for row in t]) / r.mean_cost  # unrounded weights
    assert round(float((n * rw).sum() / n.sum()), 4) == 1.0  # CMI of the base data
    # a +10 % policy uplift on C raises the CMI to 1.0672; renormalising restores 1
    up = rw * np.array([1, 1, 1.1])
    assert round(float((n * up).sum() / n.sum()), 4) == 1.0672
    assert list(np.round(renormalize(up, n), 4)) == [0.3087, 0.6125, 1.9636]


def test_trimming_variants():
    t = grouped({"AA11": A})
    assert compute_weights(t, WeightOptions(trim="none", min_cases=1)).table["n_trimmed"][0].as_py() == 0
    assert compute_weights(t, WeightOptions(trim="iqr:1.5", min_cases=1)).table["n_trimmed"][0].as_py() == 1
    assert compute_weights(t, WeightOptions(trim="sdlog:1", min_cases=1)).table["n_trimmed"][0].as_py() >= 1
    pct = compute_weights(grouped({"AA11": list(range(1, 101))}), WeightOptions(trim="pct:5-95", min_cases=1))
    assert pct.table["n_trimmed"][0].as_py() == 10
    with pytest.raises(ValueError, match="trim"):
        compute_weights(t, WeightOptions(trim="tukey"))


def test_exclusions_are_counted():
    t = pa.table({"drg": ["AA11"] * 6 + ["BB11"] * 6, "adrg": ["AA1"] * 6 + ["BB1"] * 6,
                  "status": ["grouped"] * 10 + ["ungroupable", "invalid"],
                  "total_cost": pa.array(A[:4] + [None, -5.0] + B[:4] + [1.0, 2.0], pa.float64()),
                  "los": [5] * 12})
    r = compute_weights(t, WeightOptions(trim="none", min_cases=1))
    assert r.excluded == {"not_grouped": 2, "missing_cost": 1, "non_positive_cost": 1,
                          "non_positive_or_missing_los": 0}
    assert sum(r.table["n"].to_pylist()) == 8


def test_thin_groups_are_flagged_and_pooled_at_adrg_level():
    t = grouped({"AA11": [1000.0] * 10, "AA13": [3000.0, 3100.0], "BB11": [2000.0] * 10})
    r = compute_weights(t, WeightOptions(trim="none", min_cases=5))
    rows = {row["drg"]: row for row in r.table.to_pylist()}
    assert rows["AA13"]["flags"].startswith("thin;pooled_adrg")
    pooled = (10 * 1000 + 3000 + 3100) / 12  # AA13 takes its ADRG's pooled mean cost
    assert rows["AA13"]["rw"] / rows["AA11"]["rw"] == pytest.approx(pooled / 1000, rel=1e-3)
    n = np.array([row["n"] for row in rows.values()])
    rw = np.array([row["rw"] for row in rows.values()])
    assert abs((n * rw).sum() / n.sum() - 1) < 1e-3  # renormalised after pooling


def test_year_weights_1_2_7():
    t = grouped({"AA11": [100.0, 200.0, 300.0], "BB11": [100.0, 100.0, 100.0]},
                {"year": [2022, 2023, 2024, 2022, 2023, 2024]})
    r = compute_weights(t, WeightOptions(trim="none", min_cases=1, year_weights={2022: 1, 2023: 2, 2024: 7}),
                        year="year")
    mean_a = (100 * 1 + 200 * 2 + 300 * 7) / 10
    assert r.table["mean_cost"][0].as_py() == pytest.approx(mean_a)


def test_attach_and_compare():
    t = grouped({"AA11": A, "BB11": B, "CC11": C})
    r = compute_weights(t, WeightOptions(min_cases=3))
    with_rw = attach_weights(t, r.table)
    assert with_rw["rw"].to_pylist()[:1] == [0.3295]
    other = compute_weights(t, WeightOptions(trim="none", min_cases=3))
    cmp = compare_weights(r.table, other.table, {"AA11": 6, "BB11": 6, "CC11": 6})
    assert cmp.column_names[:5] == ["drg", "rw_a", "rw_b", "change", "relative_change"]
    assert cmp["rw_b"][0].as_py() > cmp["rw_a"][0].as_py()  # untrimmed A keeps its outlier


# any floats, or whole fen (the usual money: the weights then sort on one packed integer key)
costs = st.one_of(st.lists(st.floats(100, 100_000, allow_nan=False), min_size=2, max_size=30),
                  st.lists(st.integers(10_000, 10_000_000).map(lambda f: f / 100), min_size=2, max_size=30))


@settings(max_examples=60, deadline=None)
@given(groups=st.dictionaries(st.sampled_from(["AA11", "AA13", "BB11", "CC15"]), costs, min_size=1),
       scale=st.floats(0.01, 100), seed=st.integers(0, 2**31), trim=st.sampled_from(["none", "iqr:1.5", "sdlog:2", "pct:5-95"]))
def test_invariants(groups, scale, seed, trim):
    opts = WeightOptions(trim=trim, min_cases=2)
    t = grouped(groups)
    base = compute_weights(t, opts)
    scaled = compute_weights(t.set_column(3, "total_cost", pa.array([c * scale for c in t["total_cost"].to_pylist()])), opts)
    np.testing.assert_allclose(base.table["rw"].to_numpy(), scaled.table["rw"].to_numpy(), atol=1.5e-4)
    perm = np.random.default_rng(seed).permutation(t.num_rows)
    shuffled = compute_weights(t.take(pa.array(perm)), opts)
    assert shuffled.table.equals(base.table)
    n, rw = base.table["n"].to_numpy(), base.table["rw"].to_numpy()
    if n.sum():
        assert abs((n * rw).sum() / n.sum() - 1) < 1e-3 * max(1, len(n))


def test_weights_command_on_a_synthetic_province(tmp_path, synth_province):
    import json

    from click.testing import CliRunner

    from grouper.cli.main import main

    src = synth_province(20_000, hospitals=5, seed=2)
    out, summ = tmp_path / "w.csv", tmp_path / "w.json"
    r = CliRunner().invoke(main, ["weights", str(src), "-o", str(out), "--summary", str(summ), "--trim", "sdlog:3",
                                  "--report", str(tmp_path / "w.html")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "w.html").read_text(encoding="utf-8").count("data:image/png;base64,") >= 3
    import pyarrow.csv as pcsv

    assert pcsv.read_csv(out).column_names[:7] == ["drg", "drg_name", "adrg", "n", "n_trimmed", "mean_cost", "rw"]
    s = json.loads(summ.read_text())
    assert 0.3 < s["riv"] < 1 and s["groups"] > 100 and s["excluded"]["not_grouped"] >= 0
    bad = CliRunner().invoke(main, ["weights", str(src), "-o", str(tmp_path / "x.csv"), "--cost-column", "nope"])
    assert bad.exit_code == 2 and "nope" in bad.stderr  # a missing column is a usage error
    assert CliRunner().invoke(main, ["weights", str(src), "-o", str(tmp_path / "y.csv"), "--trim", "x"]).exit_code == 2


@settings(max_examples=40, deadline=None)
@given(groups=st.dictionaries(st.sampled_from(["AA11", "AA13", "BB11", "CC15"]), costs, min_size=1),
       cuts=st.lists(st.integers(1, 100), max_size=3), trim=st.sampled_from(["none", "iqr:1.5", "pct:5-95"]))
def test_samples_merged_from_parts_equal_the_whole(groups, cuts, trim):
    from grouper.analytics.weights import CostSample

    t = grouped(groups)
    opts = WeightOptions(trim=trim, min_cases=2)
    bounds = sorted({0, t.num_rows, *(c for c in cuts if c < t.num_rows)})
    parts = [CostSample().add(t.slice(a, b - a)) for a, b in zip(bounds, bounds[1:])]
    merged = parts[-1]  # merge in another order than the rows came in
    for p in parts[:-1]:
        merged.merge(p)
    assert merged.cases == t.num_rows
    whole = compute_weights(t, opts)
    got = merged.weights(opts)
    assert got.table.equals(whole.table) and got.excluded == whole.excluded and got.riv == whole.riv or (
        np.isnan(got.riv) and np.isnan(whole.riv))


@settings(max_examples=40, deadline=None)
@given(groups=st.dictionaries(st.sampled_from(["AA11", "AA13", "BB11", "CC15"]), costs, min_size=1),
       chunk=st.integers(1, 40), trim=st.sampled_from(["none", "iqr:1.5", "sdlog:2", "pct:5-95"]))
def test_chunked_passes_give_the_same_weights(groups, chunk, trim):
    import grouper.analytics.weights as gw

    t = grouped(groups)
    opts = WeightOptions(trim=trim, min_cases=2)
    whole = compute_weights(t, opts)
    old, gw.CHUNK = gw.CHUNK, chunk  # whole groups per chunk, whatever its size
    try:
        small = compute_weights(t, opts)
    finally:
        gw.CHUNK = old
    assert small.table.equals(whole.table) and small.excluded == whole.excluded


@settings(max_examples=40, deadline=None)
@given(groups=st.dictionaries(st.sampled_from(["AA11", "AA13", "BB11", "CC15"]), costs, min_size=1),
       spill=st.integers(1, 30), trim=st.sampled_from(["none", "iqr:1.5", "sdlog:2", "pct:5-95"]))
def test_spilling_to_disk_gives_the_same_weights(groups, spill, trim):
    import pickle

    from grouper.analytics.weights import CostSample

    t = grouped(groups, {"year": [2023 + i % 2 for i in range(sum(map(len, groups.values())))]})
    for opts in (WeightOptions(trim=trim, min_cases=2), WeightOptions(trim=trim, min_cases=2,
                                                                       year_weights={2023: 1, 2024: 3})):
        whole = CostSample(year="year").add(t).weights(opts)
        half = t.num_rows // 2
        spilled = CostSample(year="year", spill_rows=spill).add(t.slice(0, half))
        other = CostSample(year="year", spill_rows=spill).add(t.slice(half))
        spilled.merge(pickle.loads(pickle.dumps(other)))  # a spilled sample travels with its cases
        assert spilled.cases == t.num_rows
        got = spilled.weights(opts)
        assert got.table.equals(whole.table) and got.excluded == whole.excluded and got.riv == whole.riv or (
            np.isnan(got.riv) and np.isnan(whole.riv))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n=st.integers(0, 60), with_stay=st.booleans(), with_year=st.booleans(), fen=st.booleans())
def test_the_packed_sort_orders_like_a_lexsort_of_the_four_columns(data, n, with_stay, with_year, fen):
    from grouper.analytics.columns import sort_key
    from grouper.analytics.weights import CostSample

    ids = st.integers(0, 5)  # few distinct values: many ties, so the later keys decide
    gid = np.array(data.draw(st.lists(ids, min_size=n, max_size=n)), np.int32)
    cents = data.draw(st.lists(st.sampled_from([1, 99, 100, 12345, 12346, 2 ** 39]), min_size=n, max_size=n))
    c = np.array(cents, float) / 100.0 if fen else np.array(cents, float) / 100.0 + 1e-3
    stay = np.array(data.draw(st.lists(st.sampled_from([1.0, 2.0, 30.0, 2.0 ** 12]), min_size=n, max_size=n))) \
        if with_stay else None
    year = np.array(data.draw(st.lists(st.sampled_from([2023, 2024, 2025]), min_size=n, max_size=n)), np.int64) \
        if with_year else None
    rank = np.array(data.draw(st.permutations(range(6))), np.int32)
    assert (sort_key(rank[gid], c, stay, year) is not None) == (fen and n > 0)  # whole fen: the packed key
    got = CostSample._sorted_block(gid, c, stay, year, rank)
    order = np.lexsort([k for k in (stay, year, c) if k is not None] + [rank[gid]])
    for a, b in zip(got, (gid, c, stay, year)):
        if b is None:
            assert a is None
        else:
            assert a.dtype == b.dtype and a.tobytes() == b[order].tobytes()  # bit for bit

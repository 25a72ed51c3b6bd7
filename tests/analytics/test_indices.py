"""Hospital evaluation indices: the spec's worked example, hand-checked risk tiers, invariants
(Hypothesis), exclusions, the department breakdown and a 50k-case synthetic province."""

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import grouper
from grouper.analytics.columns import PairIds
from grouper.analytics.indices import EXCLUSION_REASONS, TIERS, IndexCells, hospital_indices, risk_tiers

TEXT = ("status", "drg", "hospital_id", "discharge", "dept")


def cases(rows):
    """(hospital, drg, cost, los, discharge[, dept]) tuples -> a table shaped like the grouper's
    output: status 'grouped' and the text columns dictionary-encoded."""
    names = ["hospital_id", "drg", "total_cost", "los", "discharge", "dept"][:len(rows[0])]
    cols = {"status": ["grouped"] * len(rows), **dict(zip(names, map(list, zip(*rows))))}
    return pa.table({k: pa.array(v).dictionary_encode() if k in TEXT else pa.array(v) for k, v in cols.items()})


def expand(*groups):
    """(count, hospital, drg, cost, los[, discharge]) -> that many identical rows."""
    return [(h, d, c, t, *(rest or ("1",))) for n, h, d, c, t, *rest in groups for _ in range(n)]


def region_weights(table):
    """RW per DRG as the region's mean cost of the DRG over its overall mean (grouped rows)."""
    ok = table.filter(pc.equal(pc.cast(table["status"], pa.string()), "grouped"))
    drg = pc.cast(ok["drg"], pa.string()).to_numpy(zero_copy_only=False)
    cost = pc.cast(ok["total_cost"], pa.float64()).to_numpy()
    return {d: cost[drg == d].mean() / cost.mean() for d in np.unique(drg)}


def assert_same(a: pa.Table, b: pa.Table):
    assert a.schema == b.schema and a.num_rows == b.num_rows
    for name in a.schema.names:
        if pa.types.is_floating(a.schema.field(name).type):
            x, y = (pc.fill_null(t[name], math.nan).to_numpy() for t in (a, b))
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)
            assert a[name].null_count == b[name].null_count
        else:
            assert a[name].to_pylist() == b[name].to_pylist(), name


def one(table, unit):
    return next(r for r in table.to_pylist() if r["hospital"] == unit)


# --- (1) the worked example ---------------------------------------------------------------------

def test_worked_example_of_the_spec():
    # The spec publishes only the outputs (230 cases, TW 292.4, CMI 1.2713, cost index 0.9963,
    # time index 1.0217); these inputs were RECONSTRUCTED to reproduce them. Hospital A has
    # 100 / 80 / 50 cases in G1 / G2 / G3 (RW 0.8, 1.2, 2.328: TW = 80 + 96 + 116.4 = 292.4).
    # Peer hospital B moves the regional means away from A's: cost ratios e/E = 4900/5000,
    # 9000/9000, 10230/10000 -> (98 + 80 + 51.15) / 230 = 0.996304; LOS ratios t/T = 10.2/10,
    # 8/8, 5.3/5 -> (102 + 80 + 53) / 230 = 1.021739 (whole days: 10.2 = 80 x 10 + 20 x 11).
    rows = expand((80, "A", "G1", 4900.0, 10), (20, "A", "G1", 4900.0, 11),
                  (80, "B", "G1", 5100.0, 10), (20, "B", "G1", 5100.0, 9),
                  (80, "A", "G2", 9000.0, 8), (30, "B", "G2", 9000.0, 8),
                  (35, "A", "G3", 10230.0, 5), (15, "A", "G3", 10230.0, 6),
                  (35, "B", "G3", 9770.0, 5), (15, "B", "G3", 9770.0, 4))
    out, excluded = hospital_indices(cases(rows), {"G1": 0.8, "G2": 1.2, "G3": 2.328})
    a = one(out, "A")
    assert (a["cases"], a["drg_count"]) == (230, 3)
    assert a["total_weight"] == pytest.approx(292.4, abs=1e-9)
    assert round(a["cmi"], 4) == 1.2713
    assert round(a["cost_index"], 4) == 0.9963
    assert round(a["time_index"], 4) == 1.0217
    assert excluded == dict.fromkeys(EXCLUSION_REASONS, 0)


def test_total_weight_of_four_decimal_weights_has_no_float_noise():
    # 0.1 + 0.2 is 0.30000000000000004 in floats; RWs as `drg weights` writes them (four decimals)
    # are summed as whole ten-thousandths: the total is the decimal sum, read back as written
    rows = expand((1, "A", "G1", 100.0, 3), (1, "A", "G2", 100.0, 3), (3, "B", "G3", 100.0, 3))
    out, _ = hospital_indices(cases(rows), {"G1": 0.1, "G2": 0.2, "G3": 1.6717})
    assert repr(one(out, "A")["total_weight"]) == "0.3"
    assert repr(one(out, "B")["total_weight"]) == "5.0151"
    # weights with more decimals are summed as floats, as before
    out, _ = hospital_indices(cases(rows), {"G1": 0.1, "G2": 0.2, "G3": 1 / 3})
    assert one(out, "B")["total_weight"] == pytest.approx(1.0)


# --- (2) risk tiers by hand ---------------------------------------------------------------------

# mortality 1 %, 2 %, 4 %, 8 % (ln m evenly spaced by ln 2) and a DRG without deaths; H1 holds
# A and Z, H2 holds B, C and D
BASE = cases(expand((99, "H1", "A", 1.0, 1), (1, "H1", "A", 1.0, 1, "5"),
                    (98, "H2", "B", 1.0, 1), (2, "H2", "B", 1.0, 1, "5"),
                    (96, "H2", "C", 1.0, 1), (4, "H2", "C", 1.0, 1, "5"),
                    (92, "H2", "D", 1.0, 1), (8, "H2", "D", 1.0, 1, "5"),
                    (50, "H1", "Z", 1.0, 1)))


def test_risk_tiers_by_hand():
    rt = {r["drg"]: r for r in risk_tiers(BASE).to_pylist()}
    assert [rt[d]["cases"] for d in "ABCDZ"] == [100, 100, 100, 100, 50]
    assert [rt[d]["deaths"] for d in "ABCDZ"] == [1, 2, 4, 8, 0]
    assert rt["C"]["mortality"] == 0.04
    # ln m = ln 0.01 + k ln 2, k = 0..3: mean at k = 1.5, population sd = ln 2 * sqrt(1.25)
    for k, d in enumerate("ABCD"):
        assert rt[d]["z"] == pytest.approx((k - 1.5) / math.sqrt(1.25))
    assert [rt[d]["tier"] for d in "ABCD"] == list(TIERS)
    assert rt["Z"]["z"] is None and rt["Z"]["tier"] == "low"  # no deaths: low by default
    # sample sd (ddof=1): sqrt(5/3) instead of sqrt(5/4)
    z1 = {r["drg"]: r["z"] for r in risk_tiers(BASE, ddof=1).to_pylist()}
    assert z1["A"] == pytest.approx(-1.5 / math.sqrt(5 / 3))


def test_zero_death_tier_variants_and_that_they_do_not_move_z():
    z = {r["drg"]: r["z"] for r in risk_tiers(BASE).to_pylist()}
    for option, expected in (("exclude", None), ("mid-high", "mid-high"), ("high", "high")):
        rt = {r["drg"]: r for r in risk_tiers(BASE, zero_death_tier=option).to_pylist()}
        assert rt["Z"]["tier"] == expected
        assert {d: r["z"] for d, r in rt.items()} == z
    with pytest.raises(ValueError, match="zero_death_tier"):
        risk_tiers(BASE, zero_death_tier="none")


def test_tier_boundaries_belong_to_the_upper_tier():
    # cuts placed exactly on the z of A, B and C (the same floating-point values, so ties are
    # exact; z = +-1 from real data rarely is): each of them moves one tier up
    z = {r["drg"]: r["z"] for r in risk_tiers(BASE).to_pylist()}
    moved = {r["drg"]: r["tier"] for r in risk_tiers(BASE, cuts=(z["A"], z["B"], z["C"])).to_pylist()}
    assert [moved[d] for d in "ABCD"] == ["mid-low", "mid-high", "high", "high"]
    nudged = (np.nextafter(z["A"], 1), np.nextafter(z["B"], 1), np.nextafter(z["C"], 1))
    back = {r["drg"]: r["tier"] for r in risk_tiers(BASE, cuts=nudged).to_pylist()}
    assert [back[d] for d in "ABCD"] == ["low", "mid-low", "mid-high", "high"]
    with pytest.raises(ValueError, match="cuts"):
        risk_tiers(BASE, cuts=(1.0, 0.0, -1.0))


def test_low_and_midlow_mortality_per_hospital():
    out, _ = hospital_indices(BASE, dict.fromkeys("ABCDZ", 1.0))
    h1, h2 = one(out, "H1"), one(out, "H2")
    assert (h1["low_risk_cases"], h1["low_risk_deaths"]) == (150, 1)  # A (low) and Z (no deaths)
    assert h1["low_risk_mortality"] == pytest.approx(1 / 150)
    assert (h1["midlow_risk_cases"], h1["midlow_risk_mortality"]) == (0, None)
    assert (h2["low_risk_cases"], h2["low_risk_mortality"]) == (0, None)
    assert (h2["midlow_risk_cases"], h2["midlow_risk_deaths"], h2["midlow_risk_mortality"]) == (100, 2, 0.02)
    # base-period tiers passed in: DRGs without deaths left out of every tier
    out, _ = hospital_indices(BASE, dict.fromkeys("ABCDZ", 1.0), tiers=risk_tiers(BASE, zero_death_tier="exclude"))
    assert one(out, "H1")["low_risk_cases"] == 100 and one(out, "H1")["low_risk_mortality"] == 0.01


# --- (3) invariants -----------------------------------------------------------------------------

WEIGHTS = {"D1": 0.5, "D2": 1.0, "D3": 1.7, "D4": 3.2}
row = st.tuples(st.sampled_from(["H1", "H2", "H3"]), st.sampled_from(sorted(WEIGHTS)),
                st.floats(100, 1e5), st.integers(0, 30), st.sampled_from(["1", "1", "5"]))
rows = st.lists(row, min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(rows, st.data())
def test_permuting_rows_changes_nothing(rs, data):
    order = data.draw(st.permutations(range(len(rs))))
    assert_same(hospital_indices(cases(rs), WEIGHTS)[0], hospital_indices(cases([rs[i] for i in order]), WEIGHTS)[0])


@settings(max_examples=60, deadline=None)
@given(rows, st.floats(1e-3, 1e3))
def test_scaling_all_costs_changes_nothing(rs, k):
    scaled = [(h, d, c * k, t, s) for h, d, c, t, s in rs]
    assert_same(hospital_indices(cases(rs), WEIGHTS)[0], hospital_indices(cases(scaled), WEIGHTS)[0])


@settings(max_examples=60, deadline=None)
@given(rows)
def test_region_cmi_with_region_weights(rs):
    table = cases(rs)
    rw = region_weights(table)
    region, _ = hospital_indices(cases([("ALL", *r[1:]) for r in rs]), rw)
    expected = sum(rw[d] for _, d, *_ in rs) / len(rs)
    assert region["cmi"][0].as_py() == pytest.approx(expected)
    assert expected == pytest.approx(1.0)  # Σ n·(mean cost of g / mean cost) / Σ n
    assert region["cost_index"][0].as_py() == pytest.approx(1.0)
    assert region["time_index"][0].as_py() == pytest.approx(1.0)
    hospitals, _ = hospital_indices(table, rw)  # case-weighted hospital CMIs average to the region's
    n = hospitals["cases"].to_numpy()
    assert (hospitals["cmi"].to_numpy() * n).sum() / n.sum() == pytest.approx(expected)


@settings(max_examples=60, deadline=None)
@given(rows, st.integers(1, 3))
def test_a_hospital_at_the_region_mean_has_indices_one(rs, k):
    means = {}
    for _, d, c, t, _ in rs:
        means.setdefault(d, []).append((c, t))
    mean = [("MEAN", d, float(np.mean([c for c, _ in v])), float(np.mean([t for _, t in v])), "1")
            for d, v in means.items() for _ in range(k)]
    out, _ = hospital_indices(cases([(h, d, c, float(t), s) for h, d, c, t, s in rs] + mean), WEIGHTS)
    m = one(out, "MEAN")
    assert m["cost_index"] == pytest.approx(1.0) and m["time_index"] == pytest.approx(1.0)
    assert m["drg_count"] == len(means) and m["cases"] == k * len(means)


# --- (4)-(6) on a synthetic province ------------------------------------------------------------

@pytest.fixture(scope="module")
def province(synth_table):
    data = synth_table(50_000, hospitals=15, seed=3, ruleset="chs-drg-1.1")
    return grouper.Grouper("chs-drg-1.1").group(data, keep=["hospital_id", "total_cost", "los", "discharge", "dept"])


def test_exclusions_are_counted(province):
    n = province.num_rows
    i = np.arange(n)
    null_cost, null_los, neg_los = i % 97 == 0, i % 89 == 0, i % 83 == 0
    table = province.set_column(province.schema.get_field_index("total_cost"), "total_cost",
                                pa.array(province["total_cost"].to_numpy(), mask=null_cost))
    los = np.where(neg_los, -1, table["los"].to_numpy())
    table = table.set_column(table.schema.get_field_index("los"), "los", pa.array(los, pa.int32(), mask=null_los))
    drg = pc.cast(province["drg"], pa.string()).to_numpy(zero_copy_only=False)
    weights = region_weights(province)
    dropped = max(weights, key=lambda d: (drg == d).sum())  # the commonest DRG loses its weight
    del weights[dropped]

    out, excluded = hospital_indices(table, weights)
    not_grouped = pc.cast(province["status"], pa.string()).to_numpy(zero_copy_only=False) != "grouped"
    no_weight = drg == dropped
    expected, left = {}, np.ones(n, bool)
    for reason, bad in zip(EXCLUSION_REASONS, (not_grouped, null_cost, null_los | neg_los, no_weight)):
        expected[reason] = int((left & bad).sum())  # each row under its first reason only
        left &= ~bad
    assert excluded == expected
    assert all(v > 0 for v in excluded.values())  # ungroupable rows are real grouper output
    assert pc.sum(out["cases"]).as_py() == n - sum(excluded.values()) == left.sum()


def test_departments_add_up_to_hospitals(province):
    rw = region_weights(province)
    hosp, _ = hospital_indices(province, rw)
    dept, excluded = hospital_indices(province, rw, department="dept")
    assert excluded == hospital_indices(province, rw)[1]
    assert dept.column_names[:2] == ["hospital", "department"] and dept.num_rows > hosp.num_rows
    for h in hosp.to_pylist():
        part = dept.filter(pc.equal(dept["hospital"], h["hospital"]))
        for col in ("cases", "low_risk_cases", "low_risk_deaths", "midlow_risk_cases"):
            assert pc.sum(part[col]).as_py() == h[col]
        assert pc.sum(part["total_weight"]).as_py() == pytest.approx(h["total_weight"])
        assert pc.max(part["drg_count"]).as_py() <= h["drg_count"]


def test_synthetic_province_is_plausible(province):
    out, excluded = hospital_indices(province, region_weights(province))
    assert out.num_rows == 15 and excluded["not_grouped"] == pc.sum(pc.not_equal(
        pc.cast(province["status"], pa.string()), "grouped")).as_py()
    for col, lo, hi in (("cmi", 0.3, 3), ("cost_index", 0.5, 2), ("time_index", 0.5, 2)):
        values = out[col].to_numpy()
        assert ((lo < values) & (values < hi)).all(), (col, values)
    assert 0 < pc.min(out["drg_count"]).as_py() and pc.max(out["drg_count"]).as_py() <= 628
    for prefix in ("low_risk", "midlow_risk"):
        m = out[f"{prefix}_mortality"].drop_null().to_numpy()
        assert len(m) and ((0 <= m) & (m < 0.2)).all()
    tiers = risk_tiers(province)
    assert set(tiers["tier"].to_pylist()) == set(TIERS)
    assert pc.sum(tiers["cases"]).as_py() == province.num_rows - excluded["not_grouped"]


def test_weights_then_indices_commands(tmp_path, synth_province):
    from click.testing import CliRunner

    from grouper.cli.main import main

    src = synth_province(20_000, hospitals=6, seed=4, ruleset="chs-drg-1.1")
    runner = CliRunner()
    assert runner.invoke(main, ["weights", "-r", "chs-drg-1.1", str(src), "-o", str(tmp_path / "w.csv")]).exit_code == 0
    r = runner.invoke(main, ["indices", "-r", "chs-drg-1.1", str(src), "-w", str(tmp_path / "w.csv"), "-o", str(tmp_path / "i.parquet"),
                             "--department-column", "dept"])
    assert r.exit_code == 0, r.output
    import pyarrow.parquet as pq

    t = pq.read_table(tmp_path / "i.parquet")
    assert {"hospital", "department", "cmi", "cost_index", "time_index", "low_risk_mortality"} <= set(t.column_names)
    assert sum(t["cases"].to_pylist()) + 100 > 19_900  # every grouped case is counted once
    bad = runner.invoke(main, ["indices", "-r", "chs-drg-1.1", str(src), "-w", str(tmp_path / "w.csv"), "-o", str(tmp_path / "x.csv"),
                               "--hospital-column", "nope"])
    assert bad.exit_code == 2 and "nope" in bad.stderr  # a missing column is a usage error


def test_cmi_shift_between_two_weight_sets():
    from grouper.analytics.indices import cmi_shift

    t = pa.table({"hospital_id": ["H1", "H1", "H2"], "drg": ["AA11", "BB11", "BB11"], "status": ["grouped"] * 3,
                  "total_cost": [100.0, 200.0, 300.0], "los": [3, 4, 5], "discharge": ["1", "1", "1"]})
    s = cmi_shift(t, {"AA11": 1.0, "BB11": 1.0}, {"AA11": 2.0, "BB11": 1.0})
    rows = {r["hospital"]: r for r in s.to_pylist()}
    assert rows["H1"]["cmi_change"] == pytest.approx(0.5) and rows["H2"]["cmi_change"] == pytest.approx(0.0)
    assert rows["H1"]["total_weight_b"] == pytest.approx(3.0)


# --- (7) exact sums and partial aggregation ----------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(-1e12, 1e12).filter(lambda v: v == 0 or abs(v) > 1e-12)),
                min_size=1, max_size=80))
def test_exact_sums_are_correctly_rounded(pairs):
    from grouper._util.money import ExactSum

    key = np.array([k for k, _ in pairs])
    x = np.array([v for _, v in pairs])
    got = ExactSum.to_float(ExactSum.by_key(key, x, 4))
    assert got.tolist() == [math.fsum(x[key == k]) for k in range(4)]  # fsum: the exact sum, rounded once


@settings(max_examples=40, deadline=None)
@given(rows, st.lists(st.integers(1, 59), max_size=4), st.booleans())
def test_cells_merged_from_parts_equal_the_whole_exactly(rs, cuts, by_dept):
    from grouper.analytics.indices import IndexCells

    table = cases([(*r, f"D{i % 2}") for i, r in enumerate(rs)])
    dept = "dept" if by_dept else None
    whole = IndexCells(department=dept).add(table).indices(WEIGHTS)
    bounds = sorted({0, len(rs), *(c for c in cuts if c < len(rs))})
    parts = [IndexCells(department=dept).add(table.slice(a, b - a)) for a, b in zip(bounds, bounds[1:])]
    merged = parts[0]
    for p in parts[1:]:
        merged.merge(p)
    got = merged.indices(WEIGHTS)
    assert got[1] == whole[1] and got[0].equals(whole[0])  # bit for bit, not approximately
    shuffled = hospital_indices(table.take(pa.array(np.random.default_rng(len(rs)).permutation(len(rs)))),
                                WEIGHTS, department=dept)
    assert shuffled[0].equals(whole[0])


def test_an_infinite_cost_is_an_error_naming_the_column():
    t = cases([("H1", "D1", float("inf"), 3, "1")])
    with pytest.raises(ValueError, match="total_cost.*finite"):
        hospital_indices(t, WEIGHTS)


@settings(max_examples=40, deadline=None)
@given(rows, st.lists(st.integers(1, 59), max_size=4), st.booleans())
def test_cells_found_without_a_direct_table_are_the_same(rs, cuts, by_dept):
    """Beyond ``PairIds.LIMIT`` entries the cells are found by binary search: same indices."""
    import grouper.analytics.indices as gi

    table = cases([(*r, f"D{i % 3}") for i, r in enumerate(rs)])
    dept = "dept" if by_dept else None
    whole = gi.IndexCells(department=dept).add(table).indices(WEIGHTS)
    old, PairIds.LIMIT = PairIds.LIMIT, 1
    try:
        bounds = sorted({0, len(rs), *(c for c in cuts if c < len(rs))})
        cells = gi.IndexCells(department=dept)
        for a, b in zip(bounds, bounds[1:]):  # batch after batch: pairs learnt as they come
            cells.add(table.slice(a, b - a))
        got = cells.indices(WEIGHTS)
    finally:
        PairIds.LIMIT = old
    assert got[1] == whole[1] and got[0].equals(whole[0])


def test_cells_learnt_batch_by_batch_as_the_tables_grow():
    """Hospitals and DRGs beyond the first table's size arrive late: the tables grow, same indices."""
    rng = np.random.default_rng(5)
    rs = [(f"H{int(h):02d}", f"D{int(d)}", float(c), int(t), "5" if c > 9e4 else "1")
          for h, d, c, t in zip(np.minimum(rng.integers(0, 40, 400), np.arange(400) // 8),
                                np.minimum(rng.integers(1, 30, 400), 1 + np.arange(400) // 12),
                                np.round(rng.uniform(100, 1e5, 400), 2), rng.integers(0, 30, 400))]
    table = cases([(*r, f"K{i % 25}") for i, r in enumerate(rs)])
    for dept in (None, "dept"):
        whole = hospital_indices(table, WEIGHTS, department=dept)
        cells = IndexCells(department=dept)
        for a in range(0, 400, 7):
            cells.add(table.slice(a, 7))
        got = cells.indices(WEIGHTS)
        assert got[1] == whole[1] and got[0].equals(whole[0])


@settings(max_examples=30, deadline=None)
@given(rows, st.integers(1, 59), st.booleans())
def test_pickled_cells_carry_on_exactly(rs, cut, by_dept):
    """Cells travel (e.g. from a Dask worker) with only the cells in use, and go on taking batches."""
    import pickle

    table = cases([(*r, f"D{i % 3}") for i, r in enumerate(rs)])
    dept = "dept" if by_dept else None
    whole = IndexCells(department=dept).add(table).indices(WEIGHTS)
    first = IndexCells(department=dept).add(table.slice(0, cut))
    data = pickle.dumps(first)
    assert len(data) < 20_000  # not the 64 K cells reserved
    again = pickle.loads(data).add(table.slice(cut))
    got = again.indices(WEIGHTS)
    assert got[1] == whole[1] and got[0].equals(whole[0])
    assert len(again.units) == len(whole[0]) or not len(whole[0])

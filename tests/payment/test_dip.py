"""DIP (按病种分值付费): the worked example of the domain notes (5.7) as an exact test, multi-year
weighting, code keys, the comprehensive and chapter fallbacks, outliers, level coefficients,
settlement invariants (Hypothesis: per case independent of row order), bad input and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import tomllib
from click.testing import CliRunner
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from grouper.cli.main import main
from grouper.jobs.dip import load_catalogue, save_catalogue
from grouper.payment.dip import (
    DIP_CASE_TYPES,
    Catalogue,
    DipColumns,
    DipParams,
    ProcedureTypes,
    assign,
    build_catalogue,
    diagnosis_parts,
    principal_codes,
    settle_table,
    settlement_point_value,
)

from conftest import ROOT

TYPES = ProcedureTypes(["51.2300", "51.2200", "47.0900"])  # a small operating-room list for hand-made data


def table(rows, **extra) -> pa.Table:
    """(dx, px, cost, level, hospital) tuples -> a case table; dx/px are '|'-joined text."""
    cols = {"dx": [r[0] for r in rows], "px": [r[1] for r in rows],
            "total_cost": pa.array([r[2] for r in rows], pa.float64()),
            "hospital_level": [r[3] for r in rows], "hospital_id": [r[4] for r in rows]}
    cols.update(extra)
    return pa.table(cols)


def rep(n, dx, px, cost, level="三级", hospital="H1"):
    return [(dx, px, cost, level, hospital)] * n


def rows_of(cat: Catalogue) -> dict[str, dict]:
    return {r["group"]: r for r in cat.table.to_pylist()}


# --- the worked example (domain notes 5.7) ------------------------------------------------------

def example_catalogue() -> Catalogue:
    # base data reconstructed so that m_i = 12,000 for K80.1 + 51.2300 and M = 10,000
    base = table(rep(15, "K80.100x001", "51.2300", 12000.0) + rep(15, "J18.900", "", 8000.0))
    return build_catalogue(base, DipParams(), procedure_types=TYPES)


def test_worked_example_of_the_domain_notes():
    cat = example_catalogue()
    k80 = rows_of(cat)["K80.1+51.2300"]
    assert cat.info["mean_cost"] == 10000.0
    assert (k80["mean_cost"], k80["rw"], k80["score"]) == (12000.0, 1.2, 1200.0)  # 1,200 points (x1000)
    assert k80["group_type"] == "core" and k80["treatment_type"] == "相关手术"
    pv = settlement_point_value(1.2e9, 0.70, 180e6)  # (1.2 billion / 0.70) / 180 M points
    assert round(pv, 4) == 9.5238
    params = DipParams(fund_budget=1.2e9, fund_ratio=0.70, level_coef={"三级": 1.05})
    cases = table(rep(1, "K80.1", "51.2300", 11000.0) + rep(1, "K80.1", "51.2300", 30000.0)
                  + rep(1, "K80.1", "51.2300", 5000.0))
    s = settle_table(cases, cat, params, procedure_types=TYPES, point_value=pv)
    out = s.cases.to_pylist()
    assert [r["x"] for r in out] == [0.9167, 2.5, 0.4167]
    assert [r["case_type"] for r in out] == ["normal", "high", "low"]
    assert [r["case_score"] for r in out] == [1200.0, 1800.0, 500.0]  # (0.5 + 1) x 1,200; 0.4167 x 1,200
    assert [r["level_coef"] for r in out] == [1.05] * 3
    assert [r["amount"] for r in out] == [12000.0, 18000.0, 5000.0]  # the unrounded PV gives these exactly
    assert [r["margin"] for r in out] == [1000.0, -12000.0, 0.0]  # the high case: hospital bears 12,000
    assert [r["fund"] for r in out] == [8400.0, 12600.0, 3500.0]  # no patient-share column: x fund_ratio
    # with the rounded point value the amounts would be off by a fen: the engine keeps PV unrounded
    assert round(1200 * 1.05 * 9.5238, 2) != 12000.0


def test_point_values():
    cat = example_catalogue()
    # budget PV: annual cost over Σ score x cases = (15 x 12,000 + 15 x 8,000) / (15 x 1,200 + 15 x 800)
    assert cat.info["budget_point_value"] == pytest.approx(300000 / 30000)
    params = DipParams(fund_budget=1.2e9, fund_ratio=0.70, level_coef={"三级": 1.05})
    cases = table(rep(3, "K80.1", "51.2300", 11000.0) + rep(2, "J18.9", "", 8000.0))
    s = settle_table(cases, cat, params, procedure_types=TYPES)
    points = 3 * 1260 + 2 * 840
    assert s.point_value_source == "computed" and s.total_points == points
    assert s.point_value == 1.2e9 / 0.70 / points
    assert sum(r["amount"] for r in s.cases.to_pylist()) == pytest.approx(1.2e9 / 0.70, abs=0.01 * 5)
    with pytest.raises(ValueError, match="dip.fund_budget"):
        settle_table(cases, cat, DipParams(), procedure_types=TYPES)
    with pytest.raises(ValueError, match="no settled case"):
        settlement_point_value(1.0, 1.0, 0)


# --- scores over several years ----------------------------------------------------------------------

def test_multi_year_weights_1_2_7():
    years = [2022] * 2 + [2023] * 2 + [2024] * 2 + [2022, 2023, 2024]
    rows = (rep(2, "K80.1", "51.2300", 0) + rep(2, "K80.1", "51.2300", 0) + rep(2, "K80.1", "51.2300", 0)
            + rep(3, "J18.9", "", 0))
    costs = [1000, 1200, 2000, 2000, 3000, 3400, 500, 800, 900]
    t = table([(d, p, c, lv, h) for (d, p, _, lv, h), c in zip(rows, costs)], year=years)
    cat = build_catalogue(t, DipParams(core_min_n=1), procedure_types=TYPES, columns=DipColumns(year="year"))
    g = rows_of(cat)
    m_k80 = 0.1 * 1100 + 0.2 * 2000 + 0.7 * 3200  # oldest -> newest
    m_j18 = 0.1 * 500 + 0.2 * 800 + 0.7 * 900
    big_m = 0.1 * (2700 / 3) + 0.2 * (4800 / 3) + 0.7 * (7300 / 3)  # yearly means over all cases
    assert g["K80.1+51.2300"]["mean_cost"] == round(m_k80, 2)
    assert g["J18.9"]["mean_cost"] == round(m_j18, 2)
    assert cat.info["mean_cost"] == round(big_m, 2)
    assert g["K80.1+51.2300"]["score"] == round(m_k80 / big_m * 1000, 4)
    assert g["K80.1+51.2300"]["last_mean"] == 3200.0  # the newest year's mean: the outlier denominator
    assert cat.info["years"] == {"2022": 1.0, "2023": 2.0, "2024": 7.0}


def test_year_weights_align_to_the_newest_year_and_other_years_are_counted():
    p = DipParams()
    assert p.weights_for([2021, 2022, 2023, 2024]) == {2021: 0.0, 2022: 1.0, 2023: 2.0, 2024: 7.0}
    assert p.weights_for([2023, 2024]) == {2023: 2.0, 2024: 7.0}
    assert p.weights_for([2020, 2024]) == {2020: 0.0, 2024: 7.0}  # by calendar, not by rank
    # a group seen in some years only: its weights are renormalised over those years
    t = table(rep(2, "K80.1", "51.2300", 100.0) + rep(1, "K80.1", "51.2300", 400.0) + rep(1, "J18.9", "", 50.0),
              year=[2021, 2023, 2024, 2021])
    cat = build_catalogue(t, DipParams(core_min_n=1), procedure_types=TYPES, columns=DipColumns(year="year"))
    assert cat.info["excluded"]["year_without_weight"] == 2  # 2021 is four years back: counted, not used
    assert rows_of(cat)["K80.1+51.2300"]["mean_cost"] == round((2 * 100 + 7 * 400) / 9, 2)
    mapped = build_catalogue(t, DipParams(core_min_n=1, year_weights={2023: 1, 2024: 1}), procedure_types=TYPES,
                             columns=DipColumns(year="year"))
    assert rows_of(mapped)["K80.1+51.2300"]["mean_cost"] == 250.0
    with pytest.raises(ValueError, match="no year column"):
        build_catalogue(t, DipParams(year_weights={2024: 1}), procedure_types=TYPES)


def test_years_from_dates_and_text():
    t = table(rep(4, "K80.1", "51.2300", 100.0),
              discharge_date=pa.array(["2023-05-01", "2024-01-02", "2024/12/31", "soon"]))
    cat = build_catalogue(t, DipParams(core_min_n=1), procedure_types=TYPES,
                          columns=DipColumns(year="discharge_date"))
    assert cat.info["excluded"]["missing_year"] == 1 and cat.info["years"] == {"2023": 2.0, "2024": 7.0}


# --- keys -----------------------------------------------------------------------------------------

def test_principal_diagnosis_at_subcategory_level():
    codes = ["K80.100x001", "K80.1", "K801", "k80.1 ", "C61.x00", "K80", "80.1", "KK0.1", "I10.x00x002"]
    sub4, cat, ok = diagnosis_parts(pc.utf8_trim_whitespace(pa.array(codes)))
    assert sub4.to_pylist() == ["K80.1", "K80.1", "K80.1", "K80.1", "C61.x", "K80", None, None, "I10.x"]
    assert cat.to_pylist()[:6] == ["K80"] * 4 + ["C61", "K80"]
    assert ok.tolist() == [True] * 6 + [False, False, True]


@pytest.mark.parametrize("col", [
    pa.array([["K80.1", "E11.9"], [], None, [" "], ["J18.9"]]),
    pa.array(["K80.1|E11.9", "", None, " |x", "J18.9"]),
    pa.array(["K80.1|E11.9", "", None, " |x", "J18.9"]).dictionary_encode(),
    pa.ListArray.from_arrays(pa.array([0, 2, 2, 2, 3, 4]), pa.DictionaryArray.from_arrays(
        pa.array([0, 1, 2, 3]), pa.array(["K80.1", "E11.9", " ", "J18.9"]))),
])
def test_principal_code_of_every_layout(col):
    idx, values = principal_codes(col, "dx")
    got = [values[int(i)].as_py() if i >= 0 else None for i in idx]
    assert got == ["K80.1", None, None, None, "J18.9"]  # blank or missing principal: none


def test_treatment_types_come_from_one_classification():
    t = table(rep(1, "K80.1", "51.2300", 1.0) + rep(1, "K80.1", "88.7600", 1.0) + rep(1, "K80.1", "99.2900", 1.0)
              + rep(1, "K80.1", "", 1.0))
    cat = build_catalogue(t, DipParams(core_min_n=1), procedure_types=TYPES)
    types = {r["procedure"]: r["treatment_type"] for r in cat.table.to_pylist()}
    assert types == {"51.2300": "相关手术", "88.7600": "诊断性操作", "99.2900": "治疗性操作", None: "保守治疗"}
    bundled = ProcedureTypes.from_ruleset("chs-drg-1.1")  # the ruleset's operating-room list
    assert bundled.classify(pa.array(["51.2300", "88.7600", "96.0400"])).tolist() == [3, 1, 2]


# --- core, comprehensive and chapter groups -----------------------------------------------------------

def fallback_catalogue() -> Catalogue:
    base = table(rep(15, "K80.1", "51.2300", 1000.0)  # core
                 + rep(3, "K80.0", "51.2200", 3000.0) + rep(12, "K80.2", "51.2300", 2000.0)  # pooled: K80 surgery
                 + rep(2, "K81.0", "51.2200", 5000.0)  # too few in K81: chapter K00-K93 x surgery
                 + rep(1, "J18.9", "", 700.0))  # too few: chapter J00-J99 conservative
    return build_catalogue(base, DipParams(), procedure_types=TYPES)


def test_core_comprehensive_and_chapter_groups():
    cat = fallback_catalogue()
    g = rows_of(cat)
    assert list(g) == ["K80.1+51.2300", "K80:相关手术", "J00-J99:保守治疗", "K00-K93:相关手术"]
    assert [r["group_type"] for r in g.values()] == ["core", "comprehensive", "comprehensive_chapter",
                                                     "comprehensive_chapter"]
    assert g["K80:相关手术"]["n"] == 15 and g["K80:相关手术"]["mean_cost"] == (3 * 3000 + 12 * 2000) / 15
    assert g["K00-K93:相关手术"]["n"] == 2 and g["J00-J99:保守治疗"]["n"] == 1
    assert cat.info["groups"] == {"core": 1, "comprehensive": 1, "comprehensive_chapter": 2}
    # settlement-time assignment: a known key, an unseen combination of a pooled category, an unseen
    # category of a known chapter, an unknown chapter x type, no principal diagnosis, a bad code
    cases = table([("K80.100", "51.2300", 1.0, "三级", "H1"), ("K80.9", "51.2300", 1.0, "三级", "H1"),
                   ("K83.0", "47.0900", 1.0, "三级", "H1"), ("A01.0", "", 1.0, "三级", "H1"),
                   ("", "51.2300", 1.0, "三级", "H1"), ("123", "", 1.0, "三级", "H1"),
                   ("K80.1", "x1", 1.0, "三级", "H1")])
    a = assign(cases, cat, procedure_types=TYPES).to_pylist()
    assert [r["group"] for r in a] == ["K80.1+51.2300", "K80:相关手术", "K00-K93:相关手术", None, None, None, None]
    assert [r["status"] for r in a] == ["assigned"] * 3 + ["no_group", "no_principal_dx", "invalid_principal_dx",
                                                           "invalid_principal_px"]


def test_assignment_reproduces_the_catalogue_on_its_own_base_data(synth_table):
    base = synth_table(20_000, hospitals=20, seed=3)
    types = ProcedureTypes.from_ruleset("chs-drg-1.1")
    cat = build_catalogue(base, DipParams(), procedure_types=types)
    a = assign(base, cat, procedure_types=types)
    assert a.num_rows == base.num_rows and set(a["status"].to_pylist()) == {"assigned"}
    counts = dict(zip(*np.unique(pc.cast(a["group"], pa.string()).to_numpy(zero_copy_only=False), return_counts=True)))
    assert {g: counts.get(g, 0) for g in cat.table["group"].to_pylist()} == dict(
        zip(cat.table["group"].to_pylist(), cat.table["n"].to_pylist()))
    n = np.array(cat.table["n"].to_pylist())
    types_ = np.array(cat.table["group_type"].to_pylist())
    assert (n[types_ == "core"] >= 15).all() and (n[types_ == "comprehensive"] >= 15).all()
    assert cat.info["cases"] == base.num_rows


def test_trimming_before_the_means():
    base = table(rep(15, "K80.1", "51.2300", 1000.0) + rep(1, "K80.1", "51.2300", 90000.0))
    plain = rows_of(build_catalogue(base, DipParams(), procedure_types=TYPES))["K80.1+51.2300"]
    trimmed = rows_of(build_catalogue(base, DipParams(trim="iqr:1.5"), procedure_types=TYPES))["K80.1+51.2300"]
    assert (plain["n_trimmed"], trimmed["n_trimmed"], trimmed["n"]) == (0, 1, 16)
    assert trimmed["mean_cost"] == 1000.0 and plain["mean_cost"] == pytest.approx((15000 + 90000) / 16, abs=0.01)


# --- outliers, levels, hospitals -------------------------------------------------------------------------

def level_catalogue() -> Catalogue:
    base = table(rep(10, "K80.1", "51.2300", 12000.0, "三级") + rep(10, "K80.1", "51.2300", 8000.0, "二级")
                 + rep(20, "J18.9", "", 5000.0, "二级"))
    return build_catalogue(base, DipParams(), procedure_types=TYPES)


def test_level_means_and_derived_level_coefficients():
    cat = level_catalogue()
    k80 = rows_of(cat)["K80.1+51.2300"]
    assert (k80["level_mean_三级"], k80["level_mean_二级"], k80["last_mean"]) == (12000.0, 8000.0, 10000.0)
    # 三级: 10 x 12,000 / (10 x 10,000); 二级: (10 x 8,000 + 20 x 5,000) / (10 x 10,000 + 20 x 5,000)
    assert cat.level_coefficients() == {"三级": 1.2, "二级": 0.9}


@pytest.mark.parametrize("base,expect", [("level_mean", [0.5, 1.0]), ("group_mean", [0.6, 1.2])])
def test_outlier_denominator_is_configurable(base, expect):
    cat = level_catalogue()
    cases = table(rep(1, "K80.1", "51.2300", 6000.0, "三级") + rep(1, "K80.1", "51.2300", 12000.0, "三级"))
    s = settle_table(cases, cat, DipParams(outlier_base=base, point_value=1.0), procedure_types=TYPES)
    assert s.cases["x"].to_pylist() == expect


def test_outlier_boundaries_and_extreme_cases():
    cat = example_catalogue()  # K80.1+51.2300: score 1,200, mean 12,000
    costs = [6000.0, 5999.0, 24000.0, 60000.0, 60012.0]  # x = 0.5, <0.5, 2.0, 5.0, >5
    cases = table([("K80.1", "51.2300", c, "三级", "H1") for c in costs])
    base = dict(point_value=1.0, level_coef="none")
    s = settle_table(cases, cat, DipParams(**base), procedure_types=TYPES)
    assert s.cases["case_type"].to_pylist() == ["normal", "low", "normal", "high", "extreme"]
    assert s.cases["case_score"].to_pylist() == [1200.0, 599.9, 1200.0, 4800.0, round(1200 * (5.001 - 1), 4)]
    held = settle_table(cases, cat, DipParams(extreme_payment="hold", **base), procedure_types=TYPES)
    assert held.cases["points"].to_pylist()[4] is None and held.cases["case_type"].to_pylist()[4] == "extreme"
    plain = settle_table(cases, cat, DipParams(extreme_payment="score", **base), procedure_types=TYPES)
    assert plain.cases["points"].to_pylist()[4] == 1200.0


def test_basic_groups_are_paid_at_coefficient_one():
    cat = example_catalogue()
    cases = table(rep(1, "J18.9", "", 8000.0, "三级") + rep(1, "K80.1", "51.2300", 12000.0, "三级"))
    params = DipParams(point_value=1.0, level_coef={"三级": 1.05}, basic_groups=("J18.9", "Z99.9"))
    s = settle_table(cases, cat, params, procedure_types=TYPES)
    assert s.cases["level_coef"].to_pylist() == [1.0, 1.05]
    assert s.cases["points"].to_pylist() == [800.0, 1260.0]
    assert s.summary["basic_groups_not_in_catalogue"] == ["Z99.9"]


def test_levels_without_a_coefficient_are_errors_and_missing_levels_a_status():
    cat = example_catalogue()
    with pytest.raises(ValueError, match="'二级'.*dip.level_coef"):
        settle_table(table(rep(1, "J18.9", "", 8000.0, "二级")), cat,
                     DipParams(point_value=1.0, level_coef={"三级": 1.05}), procedure_types=TYPES)
    s = settle_table(table(rep(1, "J18.9", "", 8000.0, None)), cat,
                     DipParams(point_value=1.0, level_coef={"三级": 1.05}), procedure_types=TYPES)
    assert s.cases["status"].to_pylist() == ["missing_level"]
    s = settle_table(table(rep(1, "J18.9", "", 8000.0, None)), cat, DipParams(point_value=1.0, level_coef="none"),
                     procedure_types=TYPES)
    assert s.cases["status"].to_pylist() == ["settled"]


def test_hospital_totals_review_cap_and_patient_share():
    cat = example_catalogue()
    rows = rep(198, "K80.1", "51.2300", 12000.0, "三级", "H1") + rep(1, "K80.1", "51.2300", 90000.0, "三级", "H1") \
        + rep(2, "J18.9", "", 8000.0, "三级", "H2")
    share = [1000.0] * 198 + [50000.0, 20000.0, None]
    params = DipParams(point_value=10.0, level_coef={"三级": 1.0})
    s = settle_table(table(rows, self_pay=share), cat, params, procedure_types=TYPES,
                     columns=DipColumns(patient_share="self_pay"))
    h = {r["hospital_id"]: r for r in s.hospitals.to_pylist()}
    # 1 review case of 199: over the 5‰ cap (0.995 cases allowed)
    assert h["H1"]["extreme"] == 1 and h["H1"]["review_cap_cases"] == 0 and h["H1"]["review_over_cap"]
    assert h["H1"]["points"] == 198 * 1200 + 1200 * (7.5 - 2 + 1)
    assert h["H1"]["amount"] == 10 * h["H1"]["points"]
    fund = s.cases["fund"].to_pylist()
    assert fund[0] == 12000 - 1000 and fund[198] == 78000 - 50000 and fund[199] == 0.0 and fund[200] is None
    assert s.summary["cases_without_patient_share"] == 1
    assert h["H2"]["margin"] == 2 * (8000 - 8000) and h["H2"]["hospital_level"] == "三级"
    assert s.summary["review_cases"] == 1 and s.summary["hospitals_over_review_cap"] == 1


# --- invariants -------------------------------------------------------------------------------------------

POOL = [("K80.1", "51.2300"), ("K80.2", "51.2300"), ("K80.1", ""), ("J18.9", ""), ("J18.0", "99.2900"),
        ("K81.0", "51.2200"), ("", ""), ("E11.9", "88.7600")]
case_rows = st.lists(st.tuples(st.integers(0, len(POOL) - 1),
                               st.one_of(st.none(), st.floats(-100, 200000, allow_nan=False)),
                               st.sampled_from(["三级", "二级", "一级"]), st.sampled_from(["H1", "H2", "H3"])),
                     min_size=1, max_size=60)


def _cases(rows, ids=None):
    return table([(POOL[i][0], POOL[i][1], c, lv, h) for i, c, lv, h in rows],
                 case_id=list(range(len(rows))) if ids is None else ids)


@pytest.fixture(scope="module")
def synth_catalogue():
    rows = [(d, p, 1000.0 + 37 * k, lv, "H1") for k, (d, p) in enumerate(POOL[:6] * 6)
            for lv in ("三级", "二级", "一级")]
    return build_catalogue(table(rows), DipParams(core_min_n=10), procedure_types=TYPES)


@settings(max_examples=100, deadline=None)
@given(rows=case_rows, seed=st.integers(0, 2**32 - 1))
def test_settlement_per_case_is_independent_of_row_order(synth_catalogue, rows, seed):
    params = DipParams(fund_budget=1e6, fund_ratio=0.7)
    perm = np.random.default_rng(seed).permutation(len(rows))
    try:
        a = settle_table(_cases(rows), synth_catalogue, params, procedure_types=TYPES)
    except ValueError as exc:  # no or too few points to share the fund over: the same in any order
        assert "no settled case" in str(exc) or "too few points for the fund" in str(exc)
        with pytest.raises(ValueError) as again:
            settle_table(_cases([rows[i] for i in perm], perm.tolist()), synth_catalogue, params,
                         procedure_types=TYPES)
        assert str(again.value) == str(exc)
        return
    b = settle_table(_cases([rows[i] for i in perm], perm.tolist()), synth_catalogue, params, procedure_types=TYPES)
    assert a.point_value == b.point_value and a.total_points == b.total_points
    ra = a.cases.to_pylist()
    assert b.cases.to_pylist() == [ra[i] for i in perm]  # every field of every case, exactly
    assert a.hospitals.to_pylist() == b.hospitals.to_pylist()
    assert a.cases.num_rows == len(rows)  # one row per case, none dropped
    st_counts = a.summary["statuses"]
    assert sum(st_counts.values()) == len(rows)
    assert sum(a.summary["case_types"].values()) == st_counts["settled"]


@settings(max_examples=50, deadline=None)
@given(rows=case_rows)
def test_points_times_point_value_is_the_fund_over_the_ratio(synth_catalogue, rows):
    params = DipParams(fund_budget=1e6, fund_ratio=0.7)
    try:
        s = settle_table(_cases(rows), synth_catalogue, params, procedure_types=TYPES)
    except ValueError as exc:  # nothing (or too little) to share the fund over: no point value to check
        assume("no settled case" not in str(exc) and "too few points for the fund" not in str(exc))
        raise
    assert s.total_points * s.point_value == pytest.approx(1e6 / 0.7, rel=1e-12)
    settled = s.summary["statuses"]["settled"]
    assert abs(s.summary["amount"] - 1e6 / 0.7) <= 0.005 * settled + 1e-6  # each amount rounded to the fen


# --- parameters ---------------------------------------------------------------------------------------------

def test_params_from_the_illustrative_pack():
    doc = tomllib.loads((ROOT / "rules" / "payment" / "illustrative-2024.toml").read_text(encoding="utf-8"))
    p = DipParams.from_mapping(doc["dip"])
    assert (p.score_scale, p.core_min_n, p.year_weights, p.low_x, p.high_x, p.extreme_x) == \
        (1000, 15, (1.0, 2.0, 7.0), 0.5, 2.0, 5.0)
    assert (p.fund_budget, p.fund_ratio, p.outlier_base, p.special_review_cap) == (1.2e9, 0.70, "level_mean", 0.005)
    assert p.level_coef == {"三级": 1.05, "二级": 1.0, "一级": 0.95}


@pytest.mark.parametrize("table_,key", [
    ({"low_x": -1}, "dip.low_x"), ({"high_x": "2"}, "dip.high_x"), ({"extreme_x": 1.5}, "dip.extreme_x"),
    ({"fund_ratio": 1.5}, "dip.fund_ratio"), ({"core_min_n": 0}, "dip.core_min_n"), ({"colour": 1}, "dip.colour"),
    ({"year_weights": [1, -2]}, "dip.year_weights[1]"), ({"year_weights": {"x": 1}}, "dip.year_weights"),
    ({"level_coef": {"三级": 0}}, "dip.level_coef.三级"), ({"outlier_base": "mean"}, "dip.outlier_base"),
    ({"trim": "tukey"}, "dip.trim"), ({"basic_groups": "J18.9"}, "dip.basic_groups"),
])
def test_bad_params_name_the_key(table_, key):
    with pytest.raises(ValueError, match=key.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        DipParams.from_mapping(table_)


# --- bad input ------------------------------------------------------------------------------------------------

def test_base_rows_that_cannot_be_used_are_counted():
    t = table(rep(15, "K80.1", "51.2300", 1000.0) + [("", "", 5.0, "三级", "H1"), ("9x", "", 5.0, "三级", "H1"),
                                                      ("K80.1", "zz", 5.0, "三级", "H1"),
                                                      ("K80.1", "", None, "三级", "H1"), ("K80.1", "", 0.0, "三级", "H1")])
    cat = build_catalogue(t, DipParams(), procedure_types=TYPES)
    ex = cat.info["excluded"]
    assert {k: v for k, v in ex.items() if v} == {"no_principal_dx": 1, "invalid_principal_dx": 1,
                                                  "invalid_principal_px": 1, "missing_cost": 1, "non_positive_cost": 1}
    assert cat.info["rows_read"] == cat.info["cases"] + sum(ex.values())
    text = pa.table({"dx": ["K80.1"] * 16, "px": ["51.2300"] * 16, "total_cost": ["1000"] * 15 + ["abc"]})
    assert build_catalogue(text, DipParams(), procedure_types=TYPES).info["excluded"]["unreadable_cost"] == 1
    with pytest.raises(ValueError, match="no cost column 'total_cost'"):
        build_catalogue(t.drop(["total_cost"]), DipParams(), procedure_types=TYPES)
    with pytest.raises(ValueError, match="no usable base cases"):
        build_catalogue(table(rep(3, "", "", 1.0)), DipParams(), procedure_types=TYPES)


def test_settlement_keeps_every_row_with_a_status():
    cat = example_catalogue()
    cases = table([("K80.1", "51.2300", None, "三级", "H1"), ("K80.1", "51.2300", -5.0, "三级", "H1"),
                   ("A01.0", "", 100.0, "三级", "H1"), ("K80.1", "51.2300", 12000.0, "三级", None)])
    s = settle_table(cases, cat, DipParams(point_value=1.0, level_coef="none"), procedure_types=TYPES)
    assert s.cases["status"].to_pylist() == ["missing_cost", "non_positive_cost", "no_group", "settled"]
    assert s.cases["amount"].to_pylist() == [None, None, None, 1200.0]
    h = s.hospitals.to_pylist()
    assert [(r["hospital_id"], r["cases"], r["settled"]) for r in h] == [("H1", 3, 0), (None, 1, 1)]


def test_catalogue_round_trips_through_parquet_and_csv(tmp_path):
    cat = fallback_catalogue()
    cases = table([("K80.1", "51.2300", 900.0, "三级", "H1"), ("K80.9", "51.2300", 2500.0, "三级", "H1"),
                   ("J18.0", "", 700.0, "三级", "H1"), ("K81.0", "51.2200", 5000.0, "三级", "H1")])
    params = DipParams(point_value=2.0, level_coef="derived")
    want = settle_table(cases, cat, params, procedure_types=TYPES).cases.to_pylist()
    for name in ("c.parquet", "c.csv", "c.arrow"):
        save_catalogue(cat, tmp_path / name)
        back = load_catalogue(tmp_path / name)
        assert back.table.num_rows == cat.table.num_rows
        assert settle_table(cases, back, params, procedure_types=TYPES).cases.to_pylist() == want
    assert load_catalogue(tmp_path / "c.parquet").info == json.loads(json.dumps(cat.info))
    pq.write_table(cat.table.drop(["score"]), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="missing column.*score"):
        load_catalogue(tmp_path / "bad.parquet")


# --- command line ---------------------------------------------------------------------------------------------

def write_csv(path: Path, rows, header="case_id,dx,px,total_cost,hospital_level,hospital_id,discharge_date"):
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows), encoding="utf-8")


def test_cli_catalogue_assign_settle(tmp_path):
    base = [(i, "K80.100x001|E11.9", "51.2300", 12000, "三级", "H1", "2024-03-01") for i in range(15)] + \
        [(100 + i, "J18.900", "", 8000, "三级", "H1", "2024-05-01") for i in range(15)]
    write_csv(tmp_path / "base.csv", base)
    cases = [(1, "K80.1", "51.2300", 11000, "三级", "H1", "2025-01-01"),
             (2, "K80.1", "51.2300", 30000, "三级", "H1", "2025-01-01"),
             (3, "K80.1", "51.2300", 5000, "三级", "H2", "2025-01-01"),
             (4, "", "", 5000, "三级", "H2", "2025-01-01")]
    write_csv(tmp_path / "cases.csv", cases)
    pack = tmp_path / "pack.toml"
    pack.write_text('[dip]\nfund_budget = 1.2e9\nfund_ratio = 0.70\n[dip.level_coef]\n"三级" = 1.05\n',
                    encoding="utf-8")
    r = CliRunner()
    res = r.invoke(main, ["dip", "catalogue", str(tmp_path / "base.csv"), "-o", str(tmp_path / "cat.parquet"),
                          "--summary", str(tmp_path / "cat.json"), "--ruleset", "chs-drg-1.1"])
    assert res.exit_code == 0, res.output
    assert "2 DIP groups (2 core" in res.output and "of years 2024" in res.output
    assert json.loads((tmp_path / "cat.json").read_text())["mean_cost"] == 10000.0
    res = r.invoke(main, ["dip", "settle", str(tmp_path / "cases.csv"), "-c", str(tmp_path / "cat.parquet"),
                          "-p", str(pack), "-o", str(tmp_path / "out.csv"), "--by-hospital", str(tmp_path / "h.csv"),
                          "--summary", str(tmp_path / "t.json"), "--point-value", str(1.2e9 / 0.7 / 180e6)])
    assert res.exit_code == 0, res.output
    out = pcsv.read_csv(tmp_path / "out.csv").to_pylist()
    assert [r["amount"] for r in out[:3]] == [12000.0, 18000.0, 5000.0]
    assert out[3]["status"] == "no_principal_dx" and len(out) == 4
    hosp = pcsv.read_csv(tmp_path / "h.csv").to_pylist()
    assert [(h["hospital_id"], h["amount"]) for h in hosp] == [("H1", 30000.0), ("H2", 5000.0)]
    t = json.loads((tmp_path / "t.json").read_text())
    assert t["point_value_source"] == "fixed" and t["statuses"]["no_principal_dx"] == 1
    res = r.invoke(main, ["dip", "assign", str(tmp_path / "cases.csv"), "-c", str(tmp_path / "cat.parquet"),
                          "-o", str(tmp_path / "a.parquet")])
    assert res.exit_code == 0, res.output
    assert pq.read_table(tmp_path / "a.parquet")["group"].to_pylist() == ["K80.1+51.2300"] * 3 + [None]
    # the bundled illustrative pack: PV_s from its fund
    res = r.invoke(main, ["dip", "settle", str(tmp_path / "cases.csv"), "-c", str(tmp_path / "cat.parquet"),
                          "-p", "illustrative-2024", "-o", str(tmp_path / "out2.parquet")])
    assert res.exit_code == 0, res.output
    assert "(computed)" in res.output


def test_cli_errors(tmp_path):
    write_csv(tmp_path / "base.csv", [(1, "K80.1", "51.2300", 100, "三级", "H1", "2024-01-01")],
              header="case_id,dx,px,cost,hospital_level,hospital_id,discharge_date")
    r = CliRunner()
    res = r.invoke(main, ["dip", "catalogue", str(tmp_path / "base.csv"), "-o", str(tmp_path / "c.parquet")])
    assert res.exit_code == 2 and "missing column(s) for the DIP catalogue: total_cost" in res.output
    res = r.invoke(main, ["dip", "catalogue", str(tmp_path / "base.csv"), "-o", str(tmp_path / "c.parquet"),
                          "--cost-column", "cost", "--core-min-n", "1"])
    assert res.exit_code == 0, res.output
    pack = tmp_path / "p.toml"
    pack.write_text("[dip]\nlow_x = 3\n", encoding="utf-8")
    res = r.invoke(main, ["dip", "settle", str(tmp_path / "base.csv"), "-c", str(tmp_path / "c.parquet"),
                          "-p", str(pack), "-o", str(tmp_path / "o.csv")])
    assert res.exit_code == 1 and "dip.low_x" in res.output
    pack.write_text("[rate]\nvalue = 1\n", encoding="utf-8")
    res = r.invoke(main, ["dip", "settle", str(tmp_path / "base.csv"), "-c", str(tmp_path / "c.parquet"),
                          "-p", str(pack), "-o", str(tmp_path / "o.csv")])
    assert res.exit_code == 1 and "no [dip] table" in res.output
    res = r.invoke(main, ["dip", "catalogue", str(tmp_path / "base.csv"), "-o", str(tmp_path / "c2.parquet"),
                          "--cost-column", "cost", "--year-weights", "2024:x"])
    assert res.exit_code == 2 and "--year-weights" in res.output


def test_files_of_mixed_layouts_settle_into_one_output(tmp_path):
    from grouper.jobs.dip import dip_settle_files

    cat = example_catalogue()
    pq.write_table(pa.table({"case_id": [7, 8], "dx": [["K80.1", "E11.9"], ["J18.9"]], "px": [["51.2300"], []],
                             "total_cost": [11000.0, 8000.0], "hospital_level": ["三级", "三级"],
                             "hospital_id": ["H1", "H2"]}), tmp_path / "a.parquet")
    # a wide 病案首页 export: bah, zyzdbm, qtzdbm1, zyssbm; costs as text
    (tmp_path / "b.csv").write_text("bah,zyzdbm,qtzdbm1,zyssbm,total_cost,hospital_level,hospital_id\n"
                                    "B1,K80.100x001,E11.9,51.2300,30000,三级,H1\nB2,,,,100,三级,H1\n", encoding="utf-8")
    s = dip_settle_files([tmp_path / "a.parquet", tmp_path / "b.csv"], cat, DipParams(point_value=10.0),
                         tmp_path / "out.parquet", procedure_types=TYPES)
    out = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [r["case_id"] for r in out] == ["7", "8", "B1", "B2"]  # int and text ids: all read as text
    assert [r["status"] for r in out] == ["settled", "settled", "settled", "no_principal_dx"]
    assert [r["case_score"] for r in out] == [1200.0, 800.0, 1800.0, None]
    assert s.summary["cases"] == 4
    with pytest.raises(ValueError, match="b.csv: missing column.*total_cost"):
        (tmp_path / "b.csv").write_text("bah,zyzdbm\nB1,K80.1\n", encoding="utf-8")
        dip_settle_files([tmp_path / "a.parquet", tmp_path / "b.csv"], cat, DipParams(point_value=10.0),
                         tmp_path / "out2.parquet", procedure_types=TYPES)
    assert not (tmp_path / "out2.parquet").exists()  # checked before anything was written


def test_level_mean_base_needs_level_means():
    base = pa.table({"dx": ["K80.1"] * 15, "px": ["51.2300"] * 15, "total_cost": [1000.0] * 15})
    cat = build_catalogue(base, DipParams(), procedure_types=TYPES)
    assert cat.levels == [] and cat.info["missing_level"] == 15
    with pytest.raises(ValueError, match="no level means"):
        settle_table(base, cat, DipParams(point_value=1.0, level_coef="none"), procedure_types=TYPES)
    s = settle_table(base, cat, DipParams(point_value=1.0, level_coef="none", outlier_base="group_mean"),
                     procedure_types=TYPES)
    assert s.cases["points"].to_pylist() == [1000.0] * 15


def test_case_types_are_documented():
    doc = (ROOT / "docs" / "dip.md").read_text(encoding="utf-8")
    for name in (*DIP_CASE_TYPES, "no_principal_dx", "invalid_principal_px", "no_group", "missing_level"):
        assert f"`{name}`" in doc


# --- infinite money (issue 18, item 6) -----------------------------------------------------------

@pytest.mark.parametrize("key,value,message", [
    ("score_scale", float("inf"), "dip.score_scale: expected a number"),
    ("score_scale", 1e300, "dip.score_scale: 1e+300 must be between"),
    ("fund_budget", float("inf"), "dip.fund_budget: expected a number"),
    ("fund_budget", 1e308, "dip.fund_budget: 1e+308 must be between"),
    ("point_value", 1e300, "dip.point_value: 1e+300 must be between"),
    ("level_coef", {"三级": float("inf")}, "dip.level_coef.三级: expected a number"),
    ("level_coef", {"三级": 1e9}, "dip.level_coef.三级: 1000000000.0 must be between"),
    ("year_weights", [1, 2, 1e300], "dip.year_weights[2]: 1e+300 must be between"),
    ("high_x", 1e300, "dip.high_x: 1e+300 must be between"),
])
def test_dip_keys_refuse_non_finite_and_absurd_numbers(key, value, message):
    with pytest.raises(ValueError) as e:
        DipParams.from_mapping({key: value})
    assert message in str(e.value)


def test_dip_costs_that_are_not_finite_are_no_cost_and_point_values_are_bounded():
    cat = example_catalogue()
    params = DipParams(fund_budget=1.2e9, fund_ratio=0.70, level_coef={"三级": 1.05})
    cases = table(rep(1, "K80.1", "51.2300", float("inf")) + rep(1, "K80.1", "51.2300", float("nan"))
                  + rep(1, "K80.1", "51.2300", 1e300) + rep(1, "K80.1", "51.2300", 11000.0))
    s = settle_table(cases, cat, params, procedure_types=TYPES, point_value=9.5)
    out = s.cases.to_pylist()
    assert [r["status"] for r in out] == ["missing_cost"] * 3 + ["settled"]  # not a high (or extreme) case
    assert out[3]["amount"] == 1200 * 1.05 * 9.5 and out[0]["amount"] is None
    for pv in (float("inf"), 1e300):  # --point-value: no settlement at an absurd point value
        with pytest.raises(ValueError, match="point_value"):
            settle_table(cases, cat, params, procedure_types=TYPES, point_value=pv)
    tiny = DipParams(fund_budget=1e12, fund_ratio=1e-9 + 1e-12, level_coef={"三级": 1.05})
    with pytest.raises(ValueError, match="above the bound"):  # PV_s = 1e21 / 1,260 points
        settle_table(cases, cat, tiny, procedure_types=TYPES)

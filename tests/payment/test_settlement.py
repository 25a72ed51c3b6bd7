"""DRG settlement: the worked examples of the domain notes (3.7) as exact tests, every case type,
the value-based knobs, renormalisation and order independence as properties, errors and counts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv  # noqa: F401  (pa.csv)
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from grouper.cli.main import main
from grouper.payment.pack import (
    Fund,
    QualityKnob,
    QualityRule,
    Rate,
    ReferralKnob,
    SharingKnob,
    SpecialReview,
    load_pack,
)
from grouper.jobs.settle import settle_files
from grouper.payment.drg import DrgColumns, settle, settle_batches

PACK = load_pack("illustrative-2024")
# the examples' groups: RW, C̄_g and an average stay
WEIGHTS = pa.table({"drg": ["FR25", "HH11", "ES21", "TR19"], "adrg": ["FR2", "HH1", "ES2", "TR1"],
                    "rw": [0.8, 2.5, 1.5, 1.2], "mean_cost": [8000.0, 25000.0, 15000.0, 12000.0],
                    "mean_los": [7.0, 10.0, 8.0, 30.0], "n": [100, 100, 100, 100]})


def cases(**cols) -> pa.Table:
    """Grouped cases with defaults: one hospital, grouped, 7-day stays, discharged home."""
    n = len(next(iter(cols.values())))
    base = {"case_id": [f"c{i}" for i in range(n)], "hospital_id": ["H1"] * n, "status": ["grouped"] * n,
            "los": [7] * n, "discharge": ["1"] * n}
    base.update(cols)
    return pa.table(base)


def one(table: pa.Table, i: int = 0) -> dict:
    return table.slice(i, 1).to_pylist()[0]


# ----------------------------------------------------------------------------- worked examples (3.7)

def test_example_1_normal_case():
    r = settle(cases(drg=["FR25"], total_cost=[7200.0], patient_share=[1900.0]), PACK, WEIGHTS)
    c = one(r.cases)
    assert c["case_type"] == "normal" and c["settle_status"] == "settled"
    assert (c["payment_standard"], c["payment"], c["fund_payment"], c["margin"]) == (8400.0, 8400.0, 6500.0, 1200.0)
    assert c["rate"] == 10_500.0 and c["patient_share"] == 1900.0


def test_example_2_high_outlier_h1_h2_h3():
    t = cases(drg=["HH11"], total_cost=[68000.0], patient_share=[9000.0])
    c = one(settle(t, PACK, WEIGHTS).cases)  # threshold 2 x 25,000 = 50,000; add-on 1.8 RW
    assert c["case_type"] == "high" and c["payment_standard"] == 26250.0
    assert (c["payment"], c["fund_payment"], c["margin"]) == (45150.0, 36150.0, -22850.0)
    h2 = replace(PACK, outlier=replace(PACK.outlier, high_method="H2", h2_alpha=1.0))
    c = one(settle(t, h2, WEIGHTS).cases)
    assert (c["payment"], c["fund_payment"]) == (68000.0, 59000.0)
    h3 = replace(PACK, outlier=replace(PACK.outlier, high_method="H3"))
    assert one(settle(t, h3, WEIGHTS).cases)["payment"] == 45150.0  # 26,250 x (68/25 - 2 + 1)


def test_example_3_low_outlier_l1_l2():
    t = cases(drg=["FR25"], total_cost=[2600.0], patient_share=[700.0])  # threshold 0.4 x 8,000 = 3,200
    c = one(settle(t, PACK, WEIGHTS).cases)
    assert c["case_type"] == "low" and (c["payment"], c["fund_payment"]) == (2600.0, 1900.0)
    l2 = replace(PACK, outlier=replace(PACK.outlier, low_method="L2"))
    c = one(settle(t, l2, WEIGHTS).cases)
    assert (c["payment"], c["fund_payment"]) == (2730.0, 2030.0)


def test_thresholds_are_inclusive_and_can_use_the_payment_standard():
    t = cases(drg=["HH11", "FR25", "FR25"], total_cost=[50000.0, 3200.0, 3201.0], patient_share=[0.0] * 3)
    assert settle(t, PACK, WEIGHTS).cases["case_type"].to_pylist() == ["high", "low", "normal"]
    # base = payment standard: thresholds 2 x 26,250 and 0.4 x 8,400 = 3,360
    ps = replace(PACK, outlier=replace(PACK.outlier, base="payment_standard"))
    assert settle(t, ps, WEIGHTS).cases["case_type"].to_pylist() == ["normal", "low", "low"]


# ----------------------------------------------------------------------------- rates and coefficients

def test_rate_by_insurance_type_and_level_and_hospital_coefficients():
    rate = Rate(value=10_000.0, by_insurance_type={"职工": 12_000.0},
                by_level={"一级": 8_000.0, "三级": {"居民": 9_500.0}})
    pack = replace(PACK, rate=rate, coefficients=replace(PACK.coefficients, by_level={"二级": 0.9},
                                                         by_hospital={"H3": 1.1}))
    t = cases(drg=["FR25"] * 5, total_cost=[7000.0] * 5, patient_share=[0.0] * 5,
              hospital_id=["H1", "H1", "H2", "H3", "H4"], hospital_level=["三级", "三级", "一级", "二级", "二级"],
              insurance_type=["职工", "居民", "职工", "居民", None])
    r = settle(t, pack, WEIGHTS)
    assert r.cases["rate"].to_pylist() == [12_000.0, 9_500.0, 8_000.0, 10_000.0, 10_000.0]
    assert r.cases["coefficient"].to_pylist() == [1.0, 1.0, 1.0, 1.1, 0.9]
    assert r.cases["payment"].to_pylist() == [9600.0, 7600.0, 6400.0, 8800.0, 7200.0]
    assert r.summary["counts"]["rate_fallback_to_base"] == 1  # the case without insurance type
    missing = t.drop_columns(["insurance_type"])
    with pytest.raises(ValueError, match="no column 'insurance_type'.*insurance type"):
        settle(missing, pack, WEIGHTS)


def test_expected_weight_from_the_data():
    pack = replace(PACK, rate=Rate(budget=84_000.0, expected_weight="data"))
    t = cases(drg=["FR25", "HH11", "XX99"], total_cost=[7000.0, 30000.0, 100.0], patient_share=[0.0] * 3)
    r = settle(t, pack, WEIGHTS)
    assert r.summary["rate"]["provisional_base"] == 84_000.0 / 3.3  # XX99 has no weight
    assert r.cases["settle_status"].to_pylist() == ["settled", "settled", "no_weight"]


# ----------------------------------------------------------------------------- the other case types

def test_ungroupable_ambiguous_and_invalid_cases():
    t = cases(drg=["0000", "BQY", "0000", "FR25"], status=["ungroupable", "ambiguous", "invalid", "grouped"],
              total_cost=[1000.0, 2000.0, 3000.0, 7200.0], patient_share=[100.0, 200.0, 300.0, 1900.0])
    r = settle(t, PACK, WEIGHTS)
    rows = r.cases.to_pylist()
    assert [x["case_type"] for x in rows] == ["ungroupable", "ambiguous", "invalid", "normal"]
    assert [x["settle_status"] for x in rows] == ["settled", "settled", "returned", "settled"]
    assert [x["payment"] for x in rows] == [700.0, 1400.0, None, 8400.0]  # FFS x 0.7; invalid sent back
    assert rows[2]["fund_payment"] is None and r.summary["settle_status"]["returned"] == 1
    h = one(r.hospitals)
    assert (h["n_ungroupable"], h["n_ambiguous"], h["n_invalid"], h["settled"], h["not_settled"]) == (1, 1, 1, 3, 1)
    assert h["payment"] == 700.0 + 1400.0 + 8400.0 and h["cost"] == 1000.0 + 2000.0 + 7200.0


def test_per_diem_short_stay_and_special_review():
    t = cases(drg=["FR25", "TR19", "FR25", "FR25", "FR25"], los=[75, 20, 1, 2, 1],
              discharge=["1", "1", "5", "1", "1"], total_cost=[20000.0, 9000.0, 5000.0, 5000.0, 5000.0],
              patient_share=[0.0] * 5)
    r = settle(t, PACK, WEIGHTS)
    rows = r.cases.to_pylist()
    # LOS >= 60 and psychiatric (T) cases by bed day at 450; a death on day 1 pro rata 8,400 x 1/7;
    # LOS 2 < 0.3 x 7 is short too; a 1-day stay at home is short as well
    assert [x["case_type"] for x in rows] == ["per_diem", "per_diem", "short_stay", "short_stay", "short_stay"]
    assert [x["payment"] for x in rows[:4]] == [75 * 450.0, 20 * 450.0, 1200.0, 2400.0]
    assert rows[0]["payment_standard"] is None and rows[2]["payment_standard"] == 8400.0
    # special review: candidates cost >= 5 x C̄_g, at most 5 % of the hospital's DRG cases, highest first
    n = 50
    costs = [8000.0] * (n - 4) + [41000.0, 60000.0, 45000.0, 39000.0]
    t = cases(drg=["FR25"] * n, total_cost=costs, patient_share=[0.0] * n)
    r = settle(t, PACK, WEIGHTS)
    types = r.cases["case_type"].to_pylist()
    # 39,000 < 40,000 is no candidate; floor(0.05 x 50) = 2 allowed: 60,000 and 45,000, not 41,000
    assert types[-4:] == ["high", "special_review", "special_review", "high"]
    assert r.cases["payment"].to_pylist()[-3] == 60000.0
    off = replace(PACK, special_review=replace(PACK.special_review, cap=0.02))  # floor(1.0) = 1
    assert settle(t, off, WEIGHTS).cases["case_type"].to_pylist()[-4:] == ["high", "special_review", "high", "high"]


def test_special_review_by_application_column():
    pack = replace(PACK, special_review=SpecialReview(enabled=True, cap=0.5, application_column="applied",
                                                      ffs_ratio=0.9))
    t = cases(drg=["FR25"] * 4, total_cost=[9000.0, 30000.0, 7000.0, 20000.0], patient_share=[0.0] * 4,
              applied=[True, True, False, True])
    r = settle(t, pack, WEIGHTS)
    assert r.cases["case_type"].to_pylist() == ["normal", "special_review", "normal", "special_review"]
    assert r.cases["payment"].to_pylist()[1] == 27000.0


# ----------------------------------------------------------------------------- fund and patient share

def test_fund_methods_and_fund_basis():
    t = cases(drg=["FR25", "FR25"], total_cost=[7200.0, 2600.0], patient_share=[1800.0, 650.0],
              insurance_type=["职工", "居民"])
    ratio = replace(PACK, fund=Fund("column_ratio"))  # fund = P x (1 - 1,800/7,200) = 8,400 x 0.75
    assert settle(t, ratio, WEIGHTS).cases["fund_payment"].to_pylist() == [6300.0, 1950.0]
    fixed = replace(PACK, fund=Fund("ratio", 0.6, {"职工": 0.8}))
    r = settle(t, fixed, WEIGHTS)
    assert r.cases["fund_payment"].to_pylist() == [6720.0, 1560.0]
    assert r.cases["patient_share"].to_pylist() == [1680.0, 1040.0]
    # fund basis: the rate prices the fund's part; the patient's share comes on top; FFS stays total
    fb = replace(PACK, basis="fund")
    r = settle(t, fb, WEIGHTS)
    assert r.cases["fund_payment"].to_pylist() == [8400.0, 1950.0]
    assert r.cases["payment"].to_pylist() == [10200.0, 2600.0]
    assert r.cases["margin"].to_pylist() == [3000.0, 0.0]


# ----------------------------------------------------------------------------- unsettled rows, errors

def test_rows_that_cannot_be_settled_keep_their_row_and_are_counted():
    t = cases(drg=["FR25", "ZZ99", "FR25", "FR25", "FR25", None], status=["grouped"] * 5 + ["weird"],
              total_cost=pa.array([7200.0, 5000.0, None, 7200.0, -1.0, 10.0]),
              patient_share=pa.array([1900.0, 0.0, 0.0, None, 0.0, 0.0]),
              los=pa.array([7, 7, 7, 7, 7, None]))
    r = settle(t, PACK, WEIGHTS)
    assert r.cases.num_rows == 6 and r.cases["case_id"].to_pylist() == t["case_id"].to_pylist()
    assert r.cases["settle_status"].to_pylist() == ["settled", "no_weight", "no_cost", "no_patient_share",
                                                    "no_cost", "unknown_status"]
    assert r.cases["payment"].null_count == 5
    s = r.summary["settle_status"]
    assert sum(s.values()) == 6 and s["no_cost"] == 2 and s["unknown_status"] == 1
    assert one(r.hospitals)["not_settled"] == 5
    t2 = cases(drg=["FR25"], total_cost=[7200.0], patient_share=[0.0], los=pa.array([None], pa.int64()))
    assert settle(t2, PACK, WEIGHTS).cases["settle_status"].to_pylist() == ["no_los"]


def test_clear_errors_for_missing_columns():
    t = cases(drg=["FR25"], total_cost=[7200.0], patient_share=[0.0])
    with pytest.raises(ValueError, match="no column 'total_cost'"):
        settle(t.drop_columns(["total_cost"]), PACK, WEIGHTS)
    with pytest.raises(ValueError, match="not grouped: no 'status'/'drg'"):
        settle(t.drop_columns(["drg"]), PACK, WEIGHTS)
    with pytest.raises(ValueError, match="no column 'patient_share'"):
        settle(t.drop_columns(["patient_share"]), PACK, WEIGHTS)
    with pytest.raises(ValueError, match="weights table: missing column\\(s\\) mean_cost"):
        settle(t, PACK, WEIGHTS.drop_columns(["mean_cost"]))
    with pytest.raises(ValueError, match="column 'total_cost' is not numeric"):
        settle(t.set_column(t.schema.get_field_index("total_cost"), "total_cost", pa.array(["a lot"])), PACK, WEIGHTS)
    renamed = t.rename_columns(["bah" if c == "case_id" else "zfy" if c == "total_cost" else c for c in t.column_names])
    r = settle(renamed, PACK, WEIGHTS, columns=DrgColumns(case_id="bah", cost="zfy"))
    assert one(r.cases)["payment"] == 8400.0 and one(r.cases)["case_id"] == "c0"


# ----------------------------------------------------------------------------- knobs

HOSPITALS = pa.table({"hospital_id": ["H1", "H2", "H3", "H4"], "level": ["三级", "三级", "二级", "二级"],
                      "low_risk_mortality": [0.002, 0.010, 0.001, None], "low_risk_cases": [500, 300, 200, 0],
                      "satisfaction": [90.0, 80.0, 85.0, 70.0], "quality_ok": [True, False, True, True],
                      "readmissions_rose": [False, False, True, False]})


def knob_cases() -> pa.Table:
    h = ["H1", "H1", "H2", "H2", "H3", "H4"]
    return cases(hospital_id=h, drg=["FR25", "HH11", "FR25", "HH11", "FR25", "FR25"],
                 total_cost=[6000.0, 20000.0, 9000.0, 30000.0, 9000.0, 7000.0], patient_share=[0.0] * 6,
                 referred_from_primary=[False, True, False, True, False, False])


def test_quality_knob_factors_and_their_effect_per_hospital():
    rules = (QualityRule("mortality", "low_risk_mortality", "above_mean", -0.05, weight_column="low_risk_cases"),
             QualityRule("satisfaction", "satisfaction", "top_share", 0.03, share=0.25))
    pack = PACK.with_knobs(quality=QualityKnob(True, rules))
    r = settle(knob_cases(), pack, WEIGHTS, HOSPITALS)
    # weighted mean mortality (0.002x500 + 0.010x300 + 0.001x200)/1000 = 0.0042: H2 above -> 0.95;
    # top 25 % of 4 hospitals in satisfaction = 1 hospital: H1 -> 1.03
    h = {x["hospital"]: x for x in r.hospitals.to_pylist()}
    assert {k: v["quality_factor"] for k, v in h.items()} == {"H1": 1.03, "H2": 0.95, "H3": 1.0, "H4": 1.0}
    assert r.cases["knob_factor"].to_pylist() == [1.03, 1.03, 0.95, 0.95, 1.0, 1.0]
    assert h["H1"]["effect_quality_satisfaction"] == round(0.03 * (8400 + 26250), 2)
    assert h["H2"]["effect_quality_mortality"] == round(-0.05 * (8400 + 26250), 2)
    assert h["H3"]["effect_quality_mortality"] == 0.0
    base = settle(knob_cases(), PACK, WEIGHTS, HOSPITALS).hospitals
    effects = [c for c in r.hospitals.column_names if c.startswith("effect_")]
    total = sum(np.array(r.hospitals[c].to_pylist()) for c in effects)
    assert np.allclose(np.array(r.hospitals["payment"].to_pylist()) - base["payment"].to_numpy(), total)
    with pytest.raises(ValueError, match="give the hospital table"):
        settle(knob_cases(), pack, WEIGHTS)


def test_referral_uplift_for_complex_referred_cases():
    pack = PACK.with_knobs(referral=ReferralKnob(True, 0.15, min_rw=1.0, levels=("三级",)))
    r = settle(knob_cases(), pack, WEIGHTS, HOSPITALS)
    assert r.cases["knob_factor"].to_pylist() == [1.0, 1.15, 1.0, 1.15, 1.0, 1.0]
    assert r.cases["payment_standard"].to_pylist()[1] == 30187.5  # 2.5 x 10,500 x 1.15
    assert r.summary["knob_effects"]["referral"] == round(2 * 0.15 * 26250, 2)
    assert r.summary["counts"]["referral_uplifted_cases"] == 2
    with pytest.raises(ValueError, match="no column 'referred_from_primary'"):
        settle(knob_cases().drop_columns(["referred_from_primary"]), pack, WEIGHTS, HOSPITALS)


def test_surplus_and_overspend_sharing():
    pack = PACK.with_knobs(sharing=SharingKnob(True, 0.5, 0.0, "quality_ok", 0.3, 0.0, "readmissions_rose"))
    r = settle(knob_cases(), pack, WEIGHTS, HOSPITALS)
    h = {x["hospital"]: x for x in r.hospitals.to_pylist()}
    # H1 surplus 8,650 keeps half; H2 (quality failed) has an overspend 4,350, 30 % shared;
    # H3 overspend 600 but readmissions rose: nothing shared; H4 surplus 1,400, quality held: half
    assert (h["H1"]["margin"], h["H1"]["sharing_adjustment"], h["H1"]["surplus_kept"]) == (8650.0, -4325.0, 4325.0)
    assert (h["H2"]["margin"], h["H2"]["sharing_adjustment"], h["H2"]["overspend_borne"]) == (-4350.0, 1305.0, 3045.0)
    assert (h["H3"]["sharing_adjustment"], h["H3"]["overspend_borne"]) == (0.0, 600.0)
    assert h["H4"]["sharing_adjustment"] == -700.0 and h["H4"]["effect_sharing"] == -700.0
    assert h["H1"]["final_fund"] == h["H1"]["fund_payment"] - 4325.0
    plain = settle(knob_cases(), PACK, WEIGHTS, HOSPITALS).hospitals.to_pylist()
    assert plain[0]["surplus_kept"] == 8650.0 and plain[1]["overspend_borne"] == 4350.0  # 结余留用、超支不补


def test_renormalisation_keeps_knobs_budget_neutral():
    rules = (QualityRule("satisfaction", "satisfaction", "top_share", 0.03, share=0.5),)
    knobs = PACK.with_knobs(quality=QualityKnob(True, rules),
                            referral=ReferralKnob(True, 0.10))
    plain = settle(knob_cases(), PACK, WEIGHTS, HOSPITALS).summary["totals"]["payment"]
    leak = settle(knob_cases(), knobs, WEIGHTS, HOSPITALS).summary["totals"]["payment"]
    assert leak > plain
    neutral = replace(knobs, rate=replace(knobs.rate, renormalize="knobs"))
    r = settle(knob_cases(), neutral, WEIGHTS, HOSPITALS)
    assert abs(r.summary["totals"]["payment"] - plain) <= 6 * 0.005
    assert r.summary["rate"]["scale"] < 1
    eff = r.summary["knob_effects"]
    assert set(eff) == {"referral", "quality_satisfaction", "renormalisation", "sharing"}
    assert abs(sum(eff.values()) - (r.summary["totals"]["payment"] - plain)) < 0.01


def test_monthly_presettlement_reserve_and_clearance():
    import datetime as dt

    t = cases(drg=["FR25", "FR25", "HH11"], total_cost=[7200.0, 7000.0, 20000.0], patient_share=[1900.0, 0.0, 0.0],
              discharge_date=[dt.date(2024, 1, 5), dt.date(2024, 1, 30), dt.date(2024, 2, 2)])
    # provisional rate 10,500 each month; at year end the rate is scaled to meet the budget
    pack = replace(PACK, rate=Rate(value=10_500.0, budget=45_000.0, renormalize="budget"))
    r = settle(t, pack, WEIGHTS)
    m = r.months.to_pylist()
    assert [(x["month"], x["cases"]) for x in m] == [("2024-01", 2), ("2024-02", 1)]
    assert m[0]["fund_payment"] == 6500.0 + 8400.0 and m[0]["reserve_withheld"] == 745.0  # 5 %
    assert m[0]["paid"] == 14900.0 - 745.0
    h = one(r.hospitals)
    assert h["presettled_fund"] == 14900.0 + 26250.0 and h["reserve_withheld"] == 745.0 + 1312.5
    assert h["payment"] == pytest.approx(45_000.0, abs=0.015)  # renormalised to the budget at year end
    assert h["clearance"] == round(h["final_fund"] - h["paid_monthly"], 2)
    assert r.cases["month"].to_pylist() == ["2024-01", "2024-01", "2024-02"]


# ----------------------------------------------------------------------------- properties

DRGS = ["FR25", "HH11", "ES21", "TR19", "NO99"]


@st.composite
def case_tables(draw):
    n = draw(st.integers(1, 60))
    pick = lambda xs: st.lists(st.sampled_from(xs), min_size=n, max_size=n)
    drg = draw(pick(DRGS))
    status = draw(pick(["grouped"] * 8 + ["ungroupable", "ambiguous", "invalid"]))
    cost = draw(st.lists(st.floats(100, 200_000, allow_nan=False), min_size=n, max_size=n))
    share = [round(c * f, 2) for c, f in zip(cost, draw(st.lists(st.floats(0, 0.4), min_size=n, max_size=n)))]
    return pa.table({
        "case_id": [f"k{i:03d}" for i in range(n)], "hospital_id": draw(pick(["H1", "H2", "H3"])),
        "hospital_level": draw(pick(["二级", "三级"])), "status": status, "drg": drg,
        "total_cost": [round(c, 2) for c in cost], "patient_share": share,
        "los": draw(st.lists(st.integers(1, 90), min_size=n, max_size=n)),
        "discharge": draw(pick(["1", "1", "1", "2", "5"])),
        "referred_from_primary": draw(st.lists(st.booleans(), min_size=n, max_size=n)),
    })


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case_tables(), st.floats(0.5, 3.0), st.sampled_from(["total_cost", "fund"]),
       st.sampled_from(["H1", "H2", "H3"]), st.sampled_from(["L1", "L2"]))
def test_all_knobs_off_renormalised_total_equals_the_budget(t, factor, basis, high, low):
    pack = replace(PACK, basis=basis, outlier=replace(PACK.outlier, high_method=high, low_method=low))
    first = settle(t, pack, WEIGHTS).summary["totals"]
    spent = first["fund_payment"] if basis == "fund" else first["payment"]
    budget = round(abs(spent) * factor, 2) + 1.0
    renorm = replace(pack, rate=replace(pack.rate, renormalize="budget", budget=budget))
    try:
        r = settle(t, renorm, WEIGHTS)
    except ValueError as exc:  # all paid by FFS, or the budget is below the FFS part
        assume("renormalisation" not in str(exc))
        raise
    tot = r.summary["totals"]
    got = tot["fund_payment"] if basis == "fund" else tot["payment"]
    settled = r.summary["settle_status"]["settled"]
    assert abs(got - budget) <= 0.005 * settled + 1e-9 * budget
    assert r.summary["rate"]["residual"] == pytest.approx(got - budget)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case_tables(), st.randoms(use_true_random=False), st.booleans())
def test_settlement_does_not_depend_on_row_order(t, rnd, knobs):
    pack = replace(PACK, rate=replace(PACK.rate, renormalize="budget", budget=2e6),
                   special_review=replace(PACK.special_review, cap=0.2, min_cost_ratio=2.0))
    if knobs:
        pack = pack.with_knobs(referral=ReferralKnob(True, 0.12),
                               quality=QualityKnob(True, (QualityRule("s", "satisfaction", "top_share", 0.03,
                                                                       share=0.34),)),
                               sharing=SharingKnob(True, 0.5, overspend_shared=0.3))
    hosp = pa.table({"hospital_id": ["H1", "H2", "H3"], "satisfaction": [1.0, 2.0, 3.0]})
    order = list(range(t.num_rows))
    rnd.shuffle(order)
    try:
        a = settle(t, pack, WEIGHTS, hosp)
    except ValueError as exc:
        assume("renormalisation" not in str(exc))
        raise
    b = settle(t.take(pa.array(order)), pack, WEIGHTS, hosp)
    assert b.cases.equals(a.cases.take(pa.array(order)))
    assert b.hospitals.equals(a.hospitals) and b.months.equals(a.months)
    assert b.summary["totals"] == a.summary["totals"]


# ----------------------------------------------------------------------------- files and the command line

@pytest.fixture(scope="module")
def province(tmp_path_factory, synth_province):
    """The province, its weights and every file the tests write, in one folder of the module."""
    import shutil

    import grouper
    from grouper.analytics.weights import WeightOptions, weights_from_files

    d = tmp_path_factory.mktemp("settle")
    shutil.copyfile(synth_province(20_000, hospitals=12, seed=5, ruleset="chs-drg-1.1"), d / "p.parquet")
    w = weights_from_files(grouper.Grouper("chs-drg-1.1"), [d / "p.parquet"], WeightOptions())
    pq.write_table(w.table, d / "w.parquet")
    return d


def test_raw_and_pre_grouped_inputs_settle_the_same(province, grouper11):
    d = province
    raw = settle_files([d / "p.parquet"], PACK, d / "w.parquet", d / "a.parquet", grouper=grouper11)
    grouped = grouper11.group(pq.read_table(d / "p.parquet"), keep=["hospital_id", "hospital_level", "total_cost",
                                                                   "patient_share", "los", "discharge",
                                                                   "discharge_date", "insurance_type"])
    pq.write_table(grouped, d / "g.parquet")
    pre = settle_files([d / "g.parquet"], PACK, d / "w.parquet", d / "b.parquet")
    # streamed: no per-case table in memory; raw files are grouped again on the second pass
    assert raw.cases is None and raw.summary["rows"] == 20_000 and pq.read_metadata(d / "a.parquet").num_rows == 20_000
    assert raw.summary["input"]["grouped_here"] == 20_000 and raw.summary["passes"] == 2
    assert pre.summary["input"]["pre_grouped"] == 20_000
    cols = ["case_type", "payment", "fund_payment", "margin"]
    assert pq.read_table(d / "a.parquet", columns=cols).equals(pq.read_table(d / "b.parquet", columns=cols))
    s = raw.summary["case_types"]
    assert s["normal"] > 15_000 and s["high"] > 0 and s["low"] > 0 and s["per_diem"] > 0 and s["special_review"] > 0
    assert sum(raw.summary["settle_status"].values()) == 20_000
    with pytest.raises(ValueError, match="not grouped .* no ruleset"):
        settle_files([d / "p.parquet"], PACK, d / "w.parquet", d / "c.parquet")


def test_cli_settle_writes_every_output(province):
    d = province
    hosp = pa.table({"hospital_id": [f"H{i:04d}" for i in range(1, 13)], "satisfaction": list(range(12)),
                     "quality_ok": [True] * 12, "readmissions_rose": [False] * 12,
                     "low_risk_mortality": [0.001] * 12, "low_risk_cases": [10] * 12})
    pq.write_table(hosp, d / "hosp.parquet")
    pack = d / "knobs.toml"
    text = Path(PACK.path).read_text(encoding="utf-8")
    pack.write_text(text.replace("enabled = false", "enabled = true")
                    .replace('renormalize = "none"', 'renormalize = "knobs"'), encoding="utf-8")
    args = ["settle", str(d / "p.parquet"), "--pack", str(pack), "-w", str(d / "w.parquet"),
            "-o", str(d / "cli.parquet"), "--hospitals", str(d / "hosp.parquet"), "--by-hospital", str(d / "h.csv"),
            "--months", str(d / "m.csv"), "--summary", str(d / "run.json"), "--report", str(d / "r.html"), "-r", "chs-drg-1.1"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "20000 cases under illustrative-2024: 20000 settled" in r.output
    out = pq.read_table(d / "cli.parquet")
    assert out.num_rows == 20_000 and out["case_id"].to_pylist() == list(range(1, 20_001))
    assert pc.max(out["knob_factor"]).as_py() > 1
    import json

    s = json.loads((d / "run.json").read_text(encoding="utf-8"))
    assert set(s["knob_effects"]) >= {"referral", "quality_low_risk_mortality", "quality_satisfaction",
                                      "renormalisation", "sharing"}
    assert (d / "h.csv").read_text(encoding="utf-8").count("\n") == 13 and (d / "r.html").stat().st_size > 10_000
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "won't be overwritten" in again.output
    bad = CliRunner().invoke(main, args[:8] + ["--column", "price=zfy", "--overwrite"])
    assert bad.exit_code == 2 and "ROLE=NAME" in bad.output
    gone = CliRunner().invoke(main, args[:8] + ["--column", "cost=zfy", "--overwrite"])
    assert gone.exit_code == 2 and "no column 'zfy'" in gone.output


# ----------------------------------------------------------------------------- streaming (two passes)

def plain(t: pa.Table) -> pa.Table:
    """Dictionary columns decoded: per-batch dictionaries may differ, the values may not."""
    return pa.table({n: c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c
                     for n, c in zip(t.column_names, t.columns)})


@st.composite
def packs(draw):
    pack = replace(PACK, basis=draw(st.sampled_from(["total_cost", "fund"])),
                   outlier=replace(PACK.outlier, base=draw(st.sampled_from(["group_mean_cost", "payment_standard"])),
                                   high_method=draw(st.sampled_from(["H1", "H2", "H3"])),
                                   low_method=draw(st.sampled_from(["L1", "L2"]))),
                   special_review=replace(PACK.special_review, cap=draw(st.sampled_from([0.0, 0.1, 0.3])),
                                          min_cost_ratio=draw(st.sampled_from([1.5, 3.0])),
                                          scope=draw(st.sampled_from(["hospital", "region"]))),
                   rate=replace(PACK.rate, renormalize=draw(st.sampled_from(["none", "budget", "knobs"])),
                                budget=draw(st.sampled_from([4e5, 2e6]))))
    if draw(st.booleans()):
        pack = pack.with_knobs(referral=ReferralKnob(True, 0.12),
                               quality=QualityKnob(True, (QualityRule("s", "satisfaction", "top_share", 0.03,
                                                                       share=0.34),)),
                               sharing=SharingKnob(True, 0.5, overspend_shared=0.3))
    return pack


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case_tables(), packs(), st.integers(1, 25), st.booleans())
def test_the_result_does_not_depend_on_how_the_rows_are_batched(t, pack, size, dated):
    """Each pass sees the cases one batch at a time; any batching gives the same result to the
    last bit: case types (special review included), amounts, every table and the summary."""
    if dated:
        import datetime as dt

        t = t.append_column("discharge_date", pa.array([dt.date(2024, 1 + i % 12, 1) if i % 5 else None
                                                        for i in range(t.num_rows)]))
    hosp = pa.table({"hospital_id": ["H1", "H2", "H3"], "satisfaction": [1.0, 2.0, 3.0]})
    try:
        whole = settle(t, pack, WEIGHTS, hosp)
    except ValueError as exc:  # the budget is below the FFS part, or nothing is DRG-priced
        assume("renormalisation" not in str(exc))
        raise
    parts = settle(t, pack, WEIGHTS, hosp, batch_size=size)
    assert parts.cases.equals(whole.cases)
    assert parts.hospitals.equals(whole.hospitals) and parts.months.equals(whole.months)
    assert parts.summary == whole.summary


def test_each_input_batch_is_read_twice_and_per_case_batches_go_out_in_order():
    t = cases(drg=["FR25", "HH11", "FR25", "ES21"] * 5, total_cost=[7200.0, 68000.0, 2600.0, 15000.0] * 5,
              patient_share=[0.0] * 20)
    calls = []

    def batches():
        calls.append(1)
        return iter(t.to_batches(max_chunksize=3))

    out = []
    r = settle_batches(batches, PACK, WEIGHTS, sink=lambda it: out.extend(it))
    assert len(calls) == 2 and r.cases is None and r.summary["passes"] == 2
    assert [b.num_rows for b in out] == [3] * 6 + [2]
    assert pa.Table.from_batches(out).equals(settle(t, PACK, WEIGHTS).cases)
    # a rate from the data's own weight, needed in pass 1 by renormalisation: one pass more
    pack = replace(PACK, rate=Rate(budget=2e5, expected_weight="data", renormalize="budget"))
    calls.clear()
    r = settle_batches(batches, pack, WEIGHTS, sink=lambda it: list(it))
    assert len(calls) == 3 and r.summary["passes"] == 3
    assert r.summary["rate"]["expected_weight_from_data"] == pytest.approx(5 * (0.8 + 2.5 + 0.8 + 1.5))


def test_special_review_ties_are_broken_by_case_id_in_any_batching():
    # twelve candidates with the same cost ratio, ids in scrambled order: the cap (floor(0.2 x 40)
    # = 8) takes the eight smallest ids whatever the batches and the order of the rows
    ids = [f"c{i:02d}" for i in range(40)]
    rnd = np.random.default_rng(3)
    costs = [8000.0] * 28 + [48000.0] * 12
    t = cases(case_id=ids, drg=["FR25"] * 40, total_cost=costs, patient_share=[0.0] * 40)
    t = t.take(rnd.permutation(40))
    pack = replace(PACK, special_review=replace(PACK.special_review, cap=0.2))
    for size in (1, 5, 7, 40):
        r = settle(t, pack, WEIGHTS, batch_size=size)
        taken = sorted(pc.filter(r.cases["case_id"], pc.equal(r.cases["case_type"], "special_review")).to_pylist())
        assert taken == [f"c{i:02d}" for i in range(28, 36)]


def test_payment_standard_renormalisation_iterates_over_a_spool_that_is_removed(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    rnd = np.random.default_rng(11)
    n = 400
    t = cases(case_id=[f"k{i:04d}" for i in range(n)], hospital_id=rnd.choice(["H1", "H2", "H3"], n).tolist(),
              drg=rnd.choice(["FR25", "HH11", "ES21"], n).tolist(), total_cost=rnd.lognormal(9.3, 0.8, n).round(2),
              patient_share=np.zeros(n), los=rnd.integers(1, 20, n))
    pack = replace(PACK, outlier=replace(PACK.outlier, base="payment_standard"),
                   special_review=replace(PACK.special_review, cap=0.05, min_cost_ratio=2.0),
                   rate=replace(PACK.rate, renormalize="budget", budget=4.5e6))
    whole = settle(t, pack, WEIGHTS)
    parts = settle(t, pack, WEIGHTS, batch_size=37)
    assert plain(parts.cases).equals(plain(whole.cases)) and parts.summary == whole.summary
    assert whole.summary["case_types"]["special_review"] > 0
    assert abs(whole.summary["rate"]["residual"]) <= 0.005 * n and whole.summary["rate"]["scale"] != 1.0
    assert list(tmp_path.iterdir()) == []  # the spool of priced rows is gone


def test_arrow_output_with_dictionaries_changing_between_row_groups(tmp_path):
    # a pre-grouped Parquet file whose dictionary columns differ per row group: an Arrow IPC
    # file holds one dictionary per column, so those columns are written decoded
    t = cases(hospital_id=["H1", "H2"] * 3 + ["H3"] * 4, drg=["FR25"] * 5 + ["HH11"] * 5,
              total_cost=[7200.0] * 10, patient_share=[0.0] * 10)
    enc = t.set_column(t.schema.get_field_index("hospital_id"), "hospital_id", t["hospital_id"].dictionary_encode())
    with pq.ParquetWriter(tmp_path / "g.parquet", enc.schema) as w:
        for part in (t.slice(0, 6), t.slice(6)):  # dictionaries [H1, H2], then [H3]
            w.write_table(part.set_column(1, "hospital_id", part["hospital_id"].combine_chunks().dictionary_encode()))
    pq.write_table(WEIGHTS, tmp_path / "w.parquet")
    settle_files([tmp_path / "g.parquet"], PACK, tmp_path / "w.parquet", tmp_path / "out.arrow")
    settle_files([tmp_path / "g.parquet"], PACK, tmp_path / "w.parquet", tmp_path / "out.parquet")
    from pyarrow import feather

    a, b = feather.read_table(tmp_path / "out.arrow"), pq.read_table(tmp_path / "out.parquet")
    assert a["hospital"].type == pa.string() and plain(a).equals(plain(b))
    assert a["hospital"].to_pylist() == t["hospital_id"].to_pylist()


def test_several_files_stream_like_their_concatenation(tmp_path):
    # a Parquet file in row groups, a CSV file (all text, no patient share column: those rows
    # are not settled) and the same cases in memory give the same settlement
    rnd = np.random.default_rng(5)
    n = 300
    t = cases(case_id=[f"k{i:04d}" for i in range(n)], hospital_id=rnd.choice(["H1", "H2", "H3"], n).tolist(),
              drg=rnd.choice(["FR25", "HH11", "ES21", "TR19"], n).tolist(),
              total_cost=rnd.lognormal(9.3, 0.9, n).round(2), patient_share=rnd.uniform(0, 500, n).round(2),
              los=rnd.integers(1, 80, n))
    pq.write_table(t.slice(0, 200), tmp_path / "a.parquet", row_group_size=64)
    import pyarrow.csv as pcsv

    pcsv.write_csv(t.slice(200).drop_columns(["patient_share"]), tmp_path / "b.csv")
    pq.write_table(WEIGHTS, tmp_path / "w.parquet")
    r = settle_files([tmp_path / "a.parquet", tmp_path / "b.csv"], PACK, tmp_path / "w.parquet",
                     tmp_path / "out.parquet", batch_size=50, months=tmp_path / "m.csv", summary=tmp_path / "h.csv")
    text = t.cast(pa.schema([(f.name, pa.string()) for f in t.schema]))  # the CSV file makes every column text
    share = pa.concat_arrays([text["patient_share"].combine_chunks().slice(0, 200), pa.nulls(100, pa.string())])
    mem = settle(text.set_column(text.schema.get_field_index("patient_share"), "patient_share", share), PACK, WEIGHTS)
    from grouper.jobs.outputs import SETTLE_MONEY, with_money  # files hold amounts as exact decimals

    assert plain(pq.read_table(tmp_path / "out.parquet")).equals(plain(with_money(mem.cases, SETTLE_MONEY)))
    assert r.hospitals.equals(mem.hospitals) and r.months.equals(mem.months)
    assert r.summary["settle_status"]["no_patient_share"] == 100 == mem.summary["settle_status"]["no_patient_share"]


def test_memory_does_not_grow_with_the_number_of_cases(tmp_path):
    """Pass 2 writes each batch and keeps only sums; pass 1 keeps only the special-review
    candidates. Peak NumPy memory (traced) for 4x the cases stays about the same."""
    import tracemalloc

    pq.write_table(WEIGHTS, tmp_path / "w.parquet")

    def peak(n: int) -> int:
        rnd = np.random.default_rng(n)
        t = pa.table({"case_id": np.arange(n), "hospital_id": rnd.choice([f"H{i}" for i in range(20)], n),
                      "status": ["grouped"] * n, "drg": rnd.choice(["FR25", "HH11", "ES21"], n),
                      "total_cost": rnd.lognormal(9.3, 0.6, n).round(2), "patient_share": np.zeros(n),
                      "los": rnd.integers(1, 30, n), "discharge": ["1"] * n})
        pq.write_table(t, tmp_path / f"c{n}.parquet", row_group_size=4096)
        del t
        pack = replace(PACK, rate=replace(PACK.rate, renormalize="knobs"))  # totals in pass 1 too
        tracemalloc.start()
        settle_files([tmp_path / f"c{n}.parquet"], pack, tmp_path / "w.parquet", tmp_path / f"o{n}.parquet",
                     batch_size=4096)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(40_000), peak(160_000)
    assert large < 1.5 * small, (small, large)  # holding every case: about 4x (15 MB -> 57 MB)


# ----------------------------------------------------------------------------- infinite money (issue 18, item 6)

@pytest.mark.parametrize("cost", [float("inf"), float("-inf"), float("nan"), "1e400", "inf", "NaN", 1e300])
def test_a_non_finite_or_absurd_cost_is_no_cost_not_a_high_outlier(cost):
    col = pa.array([cost, "7200"] if isinstance(cost, str) else [cost, 7200.0])
    r = settle(cases(drg=["FR25", "FR25"], total_cost=col, patient_share=[100.0, 1900.0]), PACK, WEIGHTS)
    first, second = one(r.cases, 0), one(r.cases, 1)
    assert first["settle_status"] == "no_cost" and first["case_type"] is None and first["payment"] is None
    assert second["settle_status"] == "settled" and second["payment"] == 8400.0
    assert r.summary["settle_status"]["no_cost"] == 1
    assert r.summary["totals"]["payment"] == 8400.0


def test_infinite_weights_read_as_no_weight():
    w = WEIGHTS.set_column(2, "rw", pa.array([float("inf"), 2.5, 1.5, 1.2]))
    r = settle(cases(drg=["FR25"], total_cost=[7200.0], patient_share=[1900.0]), PACK, w)
    assert one(r.cases)["settle_status"] == "no_weight"


def test_hospital_sums_beyond_2_53_cents_are_exact_in_any_order():
    # beyond 2^53 fen float sums depend on the order of the rows; int64 fen sums do not
    costs = [1e12] * 100 + [0.01] * 50  # yuan: the largest amount a case may have, and one fen
    n = len(costs)
    t = cases(drg=["FR25"] * n, status=["ungroupable"] * n, total_cost=costs, patient_share=[0.0] * n)
    rng = np.random.default_rng(3)
    totals = set()
    for order in [np.arange(n), np.arange(n)[::-1], *(rng.permutation(n) for _ in range(4))]:
        r = settle(t.take(pa.array(order)), PACK, WEIGHTS)
        h = r.hospitals.to_pylist()[0]
        totals.add((h["cost"], h["payment"], r.summary["totals"]["cost"], r.summary["totals"]["payment"]))
    assert len(totals) == 1
    assert next(iter(totals))[0] == (100 * 10**14 + 50) / 100  # exact in fen, then yuan


def test_a_total_that_would_not_fit_in_int64_fen_is_an_error():
    n = 50_000  # 1e14 fen each: together beyond 2^62 fen
    t = cases(drg=["FR25"] * n, status=["ungroupable"] * n, total_cost=[1e12] * n, patient_share=[0.0] * n)
    with pytest.raises(ValueError, match="cannot add up"):
        settle(t, PACK, WEIGHTS)


def test_no_output_file_holds_an_infinite_number(tmp_path):
    from grouper.io import write_batches

    bad = pa.table({"payment": [1.0, float("inf")]})
    with pytest.raises(ValueError, match="'payment' would hold an infinite value"):
        write_batches(tmp_path / "x.parquet", bad.to_batches())
    assert list(tmp_path.iterdir()) == []


def test_settle_command_with_infinite_costs_exits_0_with_finite_money(tmp_path):
    (tmp_path / "w.csv").write_text("drg,rw,mean_cost,mean_los,n\nFR25,0.8,8000,7,10\n")
    (tmp_path / "c.csv").write_text("case_id,status,drg,total_cost,patient_share,los,discharge,hospital_id\n"
                                    "1,grouped,FR25,inf,100,7,1,H1\n2,grouped,FR25,1e400,100,7,1,H1\n"
                                    "3,grouped,FR25,7200,1900,7,1,H1\n")
    r = CliRunner().invoke(main, ["settle", "-r", "chs-drg-1.1", str(tmp_path / "c.csv"), "-p", "illustrative-2024", "-w",
                                  str(tmp_path / "w.csv"), "-o", str(tmp_path / "o.parquet"),
                                  "--by-hospital", str(tmp_path / "h.csv"), "--summary", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    out = pq.read_table(tmp_path / "o.parquet")
    assert out["settle_status"].to_pylist() == ["no_cost", "no_cost", "settled"]
    for t in (out, pa.csv.read_csv(tmp_path / "h.csv")):
        for c in t.columns:
            if pa.types.is_floating(c.type):
                assert all(v is None or np.isfinite(v) for v in c.to_pylist())
    import json

    def numbers(v):
        if isinstance(v, dict):
            return [x for u in v.values() for x in numbers(u)]
        if isinstance(v, list):
            return [x for u in v for x in numbers(u)]
        return [v] if isinstance(v, float) else []

    assert all(np.isfinite(numbers(json.loads((tmp_path / "s.json").read_text()))))

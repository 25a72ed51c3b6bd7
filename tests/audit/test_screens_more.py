"""The screens beyond the first ones, each against known answers planted by ``synth --inject``:
severity drift between discharge periods, secondary diagnoses that alone lift cases far more
often than in the region, avoidance (推诿) and the department-level screens; and each leaves the
hospitals without a planted answer alone."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from grouper.analytics.synth_inject import parse_injection
from grouper.audit import parse_audit_pack
from grouper.audit.collect import period_label, period_of
from grouper.audit.run import audit_table
from grouper.engine import Grouper

DRIFT, LIFT, AVOID = ("H0008", "H0022"), ("H0040", "H0017"), ("H0033", "H0006")  # 三级 and 二级 each
HALF = parse_audit_pack({"drift": {"period": "half"}})


@pytest.fixture(scope="module")
def g20():
    return Grouper("chs-drg-2.0")


@pytest.fixture(scope="module")
def planted(synth_table, g20):
    inj = (parse_injection(f"drift={','.join(DRIFT)}"), parse_injection(f"lift={','.join(LIFT)}"),
           parse_injection(f"avoid={','.join(AVOID)}"))
    t = synth_table(100_000, seed=0, inject=inj)
    found, result = audit_table(t, g20, pack=HALF)
    return t, found, result


def screen(result, name):
    h = result.hospitals
    return h.filter(pc.equal(h["screen"], name))


def flagged(result, name):
    s = screen(result, name)
    return s.filter(s["flagged"])


def test_drift_flags_the_hospitals_whose_severity_rose(planted):
    d = screen(planted[2], "drift")
    assert set(d["item"].to_pylist()) == {"2025H1→2025H2"}
    top = d.sort_by("rank")["hospital"].to_pylist()[:2]
    assert sorted(top) == sorted(DRIFT)
    f = flagged(planted[2], "drift")
    assert sorted(f["hospital"].to_pylist()) == sorted(DRIFT)
    for r in f.to_pylist():
        assert r["value"] - r["expected_value"] >= 0.03 and "2025H2" in r["message"] and "2025H1" in r["message"]


def test_drift_needs_two_periods(planted, g20):
    """One year of discharges, compared by year: no second period, no drift rows (the stray
    discharges of 1 January next year are no period: min_period_share)."""
    t = planted[0].slice(0, 20_000)
    _, result = audit_table(t, g20)
    assert "drift" not in set(result.hospitals["screen"].to_pylist())


def test_lifting_code_is_found_at_the_planted_hospitals_only(planted):
    f = flagged(planted[2], "lifting_dx")
    assert sorted(set(f["hospital"].to_pylist())) == sorted(LIFT)
    codes = set(f["item"].to_pylist())
    assert len(codes) == 1  # the one planted code
    code = codes.pop()
    lab = planted[0]["_label_lift"]
    assert {dx[-1] for dx in planted[0].filter(lab)["dx"].to_pylist()} == {code}  # the code added last
    ranks = screen(planted[2], "lifting_dx").sort_by("rank").to_pylist()
    assert {(r["hospital"], r["item"]) for r in ranks[:2]} == {(h, code) for h in LIFT}
    for r in f.to_pylist():
        assert code in r["message"] and "唯一依据" in r["message"] and r["observed"] >= 2 * r["expected"]
    # the cases behind the flag: the AE95 findings naming that code at that hospital
    found = planted[1]
    behind = found.filter(pc.and_(pc.equal(found["code"], "AE95"), pc.equal(found["item"], code)))
    at = pc.is_in(behind["hospital"], pa.array(LIFT))
    assert pc.sum(at).as_py() >= sum(r["observed"] for r in f.to_pylist())


def test_avoidance_flags_hospitals_with_fewer_severe_cases_than_peers(planted):
    a = screen(planted[2], "avoidance")
    assert sorted(a.sort_by("rank")["hospital"].to_pylist()[:2]) == sorted(AVOID)
    f = flagged(planted[2], "avoidance")
    assert sorted(f["hospital"].to_pylist()) == sorted(AVOID)
    for r in f.to_pylist():
        assert r["value"] < r["expected_value"] and r["percentile"] >= 75 and "推诿" in r["message"]


def test_drift_and_lifting_hospitals_are_no_reference_for_avoidance(planted):
    """The planted upcoders (drift, lift) are flagged for upcoding and left out of the peers'
    shares, so their honest peers do not look deficient."""
    up = set(flagged(planted[2], "upcoding")["hospital"].to_pylist())
    assert up & set(DRIFT + LIFT)
    assert not set(flagged(planted[2], "avoidance")["hospital"].to_pylist()) & (set(DRIFT + LIFT) | up)


def test_department_rows_read_the_dept_column_and_flag_one_department(synth_table, g20):
    """Every case of one department (the third largest of the largest hospital) stays five
    times longer: that department alone is flagged for long stays."""
    t = synth_table(60_000, seed=2)
    hosp, dept = t["hospital_id"].cast(pa.string()), t["dept"]
    big = max(pc.value_counts(hosp).to_pylist(), key=lambda x: x["counts"])["values"]
    counts = pc.value_counts(dept.filter(pc.equal(hosp, big))).to_pylist()
    d = sorted(counts, key=lambda x: -x["counts"])[2]["values"]
    at = pc.and_(pc.equal(hosp, big), pc.equal(dept, d))
    assert pc.sum(at).as_py() >= 100
    los = pc.if_else(at, pc.multiply(t["los"], 5), t["los"])
    t = t.set_column(t.schema.get_field_index("los"), "los", los)
    _, result = audit_table(t, g20)
    f = flagged(result, "dept_long_stay")
    assert list(zip(f["hospital"].to_pylist(), f["department"].to_pylist())) == [(big, d)]
    row = f.to_pylist()[0]
    assert row["peer"].endswith("/" + d) and f"{d}科室" in row["message"] and "超长住院" in row["message"]
    mine = screen(result, "dept_long_stay").filter(pc.equal(screen(result, "dept_long_stay")["hospital"], big))
    assert mine.num_rows > 10  # its other departments are there, unflagged


def test_without_a_department_column_there_are_no_department_rows(synth_table, g20):
    t = synth_table(20_000, hospitals=10, seed=5).drop_columns(["dept"])
    _, result = audit_table(t, g20)
    screens = set(result.hospitals["screen"].to_pylist())
    assert screens and not any(s.startswith("dept_") for s in screens)
    assert result.hospitals.filter(pc.is_valid(result.hospitals["department"])).num_rows == 0


def test_another_department_column_from_the_pack(synth_table, g20):
    t = synth_table(20_000, hospitals=10, seed=5)
    t = t.append_column("科室", t["dept"]).drop_columns(["dept"])
    _, result = audit_table(t, g20, pack=parse_audit_pack({"department": {"column": "科室"}}))
    assert "dept_upcoding" in set(result.hospitals["screen"].to_pylist())


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_new_screens_flag_nothing_without_injection(synth_table, g20, seed):
    """The null for the new screens (drift by half year included), hospital and department rows:
    over four seeds x 12 new screens, at most one flags anyone in a seed (each promises at most
    alpha = 0.05, Bonferroni)."""
    _, result = audit_table(synth_table(60_000, seed=seed), g20, pack=HALF)
    h = result.hospitals
    new = pc.or_(pc.starts_with(h["screen"], "dept_"), pc.is_in(h["screen"], pa.array(["drift", "lifting_dx",
                                                                                        "avoidance"])))
    assert {"drift", "lifting_dx", "avoidance", "dept_drift", "dept_upcoding"} <= set(h["screen"].to_pylist())
    got = h.filter(pc.and_(new, h["flagged"]))
    assert len(set(got["screen"].to_pylist())) <= 1, got.select(["screen", "hospital", "department", "message"]).to_pylist()


def test_every_flag_explains_itself_in_chinese(planted):
    h = planted[2].hospitals
    f = h.filter(h["flagged"])
    assert f.num_rows and all(m and any("\u4e00" <= ch <= "\u9fff" for ch in m) for m in f["message"].to_pylist())
    assert h.filter(pc.invert(h["flagged"]))["message"].null_count == h.num_rows - f.num_rows


def test_periods_from_discharge_days():
    days = (np.array(["2024-12-31", "2025-01-01", "2025-07-01", "2025-10-15"], "datetime64[D]")
            .astype(np.int64).astype(np.int32))
    days = np.r_[days, np.int32(-(2**31))]
    for period, labels in (("year", ["2024", "2025", "2025", "2025"]), ("half", ["2024H2", "2025H1", "2025H2", "2025H2"]),
                           ("quarter", ["2024Q4", "2025Q1", "2025Q3", "2025Q4"]),
                           ("month", ["2024-12", "2025-01", "2025-07", "2025-10"])):
        p = period_of(days, period)
        assert p[-1] == -1 and [period_label(int(x), period) for x in p[:-1]] == labels
        assert (np.diff(p[:-1]) >= 0).all()

"""Payment packs: the bundled illustrative pack, and invalid packs refused naming file and key."""

from __future__ import annotations

import copy
import math

import pytest
import tomllib
from click.testing import CliRunner

from grouper.cli.main import main
from grouper.payment.pack import PackError, available_packs, load_pack, parse_pack

from conftest import ROOT

PACK = ROOT / "rules" / "payment" / "illustrative-2024.toml"


@pytest.fixture(scope="module")
def raw() -> dict:
    return tomllib.loads(PACK.read_text(encoding="utf-8"))


def test_bundled_pack_is_found_by_name_and_labelled_illustrative():
    assert available_packs()["illustrative-2024"].name == "illustrative-2024.toml"
    p = load_pack("illustrative-2024")
    assert p.illustrative and "illustrative" in p.region and p.year == 2024 and p.basis == "total_cost"
    assert p.rate.base() == 10_500.0  # 2.1e9 / 200,000, domain notes 3.7
    assert p.outlier.overall_mean_cost == 10_000.0 and p.coefficients.default == 1.0
    assert p.outlier.high_bands[-1] == (math.inf, 2.0) and p.outlier.low_multiple == 0.4
    assert (p.outlier.high_method, p.outlier.low_method) == ("H1", "L1")
    assert p.special_review.cap == 0.05 and p.settlement.reserve_pct == 0.05
    assert not (p.knobs.quality.enabled or p.knobs.referral.enabled or p.knobs.sharing.enabled)
    assert [r.delta for r in p.knobs.quality.rules] == [-0.05, 0.03]


def test_dip_table_passes_through_untouched(raw):
    p = load_pack(PACK)
    assert p.dip == raw["dip"]
    assert p.dip["score_scale"] == 1000 and p.dip["year_weights"] == [1, 2, 7]
    assert p.dip["special_review_cap"] == 0.005 and p.dip["level_coef"] == {"三级": 1.05, "二级": 1.0, "一级": 0.95}
    # anything under [dip] is the DIP module's business: not validated here
    data = {**raw, "dip": {"anything": {"nested": [1, "x"]}}}
    assert parse_pack(data).dip == {"anything": {"nested": [1, "x"]}}


def test_high_bands_pick_the_first_band_that_holds_the_weight():
    import numpy as np

    p = load_pack(PACK)
    assert list(p.outlier.high_multiple(np.array([0.3, 1.0, 1.2, 2.0, 2.5, 40.0]))) == [3, 3, 2.5, 2.5, 2, 2]


def set_key(data: dict, dotted: str, value) -> dict:
    d = copy.deepcopy(data)
    *path, last = dotted.split(".")
    node = d
    for k in path:
        node = node.setdefault(k, {})
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return d


DELETE = object()

BAD = [
    ("outlier.hihg_method", "H2", "outlier.hihg_method: unknown key"),
    ("rate.budget", "lots", "rate.budget: must be a number, not text"),
    ("outlier.high_method", "H4", "outlier.high_method: 'H4' is not one of"),
    ("outlier.high_bands", [[1.0, 3.0], [1.0, 2.0], [math.inf, 1.5]], "outlier.high_bands[1]: RW upper bounds must increase"),
    ("outlier.high_bands", [[1.0, 3.0], [2.0, 2.0]], "outlier.high_bands[1]: the last band must be open"),
    ("outlier.high_bands", [[1.0, 3.0], [2.0, -2.0], [math.inf, 1.5]], "outlier.high_bands[1]: must be > 0"),
    ("outlier.high_bands", [[1.0, 3.0], 2.0], "outlier.high_bands[1]: must be a pair"),
    ("outlier.low_multiple", 2.5, "outlier.low_multiple: must be below every high multiple"),
    ("special_review.cap", 1.5, "special_review.cap: must be <= 1"),
    ("hospital_coefficients.by_level", {"三级": -1.0}, "hospital_coefficients.by_level.三级: must be > 0"),
    ("rate.by_insurance_type", {"职工": "high"}, "rate.by_insurance_type.职工: must be a number"),
    ("settlement.reserve_pct", True, "settlement.reserve_pct: must be a number, not true/false"),
    ("short_stay.enabled", "yes", "short_stay.enabled: must be true or false"),
    ("per_diem.bed_day_rate", DELETE, "per_diem.bed_day_rate: missing"),
    ("unusual.ambiguous.method", "guess", "unusual.ambiguous.method: 'guess' is not one of"),
    ("fund.patient_share", "ratio", "fund.fund_ratio: missing"),
    ("knobs.referral.uplift", -1.5, "knobs.referral.uplift: must be > -1"),
    ("knobs.sharing.surplus_kept", 1.2, "knobs.sharing.surplus_kept: must be <= 1"),
    ("pack.year", 2024.5, "pack.year: must be a whole number"),
    ("pack.basis", "cash", "pack.basis: 'cash' is not one of"),
    ("dip", 3, "dip: must be a table"),
]


@pytest.mark.parametrize("key,value,message", BAD, ids=[b[2].split(":")[0] for b in BAD])
def test_invalid_packs_name_the_file_and_the_key(raw, key, value, message):
    with pytest.raises(PackError) as e:
        parse_pack(set_key(raw, key, value), "region.toml")
    assert str(e.value).startswith("region.toml: ") and message in str(e.value)


def test_rate_must_be_given_one_way(raw):
    no_rate = set_key(set_key(raw, "rate.budget", DELETE), "rate.expected_weight", DELETE)
    with pytest.raises(PackError, match=r"rate.value: give the rate"):
        parse_pack(no_rate, "x.toml")
    with pytest.raises(PackError, match=r"rate.value: must be > 0, not -1"):
        parse_pack(set_key(no_rate, "rate.value", -1), "x.toml")
    with pytest.raises(PackError, match="rate.expected_weight: missing"):
        parse_pack(set_key(raw, "rate.expected_weight", DELETE), "x.toml")
    with pytest.raises(PackError, match="rate.renormalize: \"budget\" needs rate.budget"):
        parse_pack(set_key(set_key(no_rate, "rate.value", 9000.0), "rate.renormalize", "budget"), "x.toml")
    p = parse_pack(set_key(raw, "rate.expected_weight", "data"), "x.toml")
    assert p.rate.base(150_000.0) == 14_000.0
    with pytest.raises(PackError, match="pack: missing table"):
        parse_pack({k: v for k, v in raw.items() if k != "pack"}, "x.toml")


def test_quality_rules_are_checked_one_by_one(raw):
    rules = copy.deepcopy(raw["knobs"]["quality"]["rules"])
    del rules[0]["column"]
    with pytest.raises(PackError, match=r"knobs.quality.rules\[0\].column: missing"):
        parse_pack(set_key(raw, "knobs.quality.rules", rules), "x.toml")
    rules = copy.deepcopy(raw["knobs"]["quality"]["rules"])
    del rules[1]["share"]
    with pytest.raises(PackError, match=r"knobs.quality.rules\[1\].share: missing"):
        parse_pack(set_key(raw, "knobs.quality.rules", rules), "x.toml")
    rules[1]["share"], rules[1]["colour"] = 0.1, "red"
    with pytest.raises(PackError, match=r"knobs.quality.rules\[1\].colour: unknown key"):
        parse_pack(set_key(raw, "knobs.quality.rules", rules), "x.toml")


def test_unreadable_files_are_pack_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[pack\nname = 1", encoding="utf-8")
    with pytest.raises(PackError, match=r"bad.toml: not valid TOML"):
        load_pack(bad)
    with pytest.raises(PackError, match="no such file and no bundled pack"):
        load_pack(tmp_path / "missing.toml")


def test_cli_refuses_an_invalid_pack_with_one_line(tmp_path):
    text = PACK.read_text(encoding="utf-8").replace("high_bands = [[1.0, 3.0], [2.0, 2.5], [inf, 2.0]]",
                                                    "high_bands = [[1.0, 3.0], [0.5, 2.5], [inf, 2.0]]")
    pack = tmp_path / "mine.toml"
    pack.write_text(text, encoding="utf-8")
    (tmp_path / "w.csv").write_text("drg,rw\nFR25,0.8\n")
    (tmp_path / "c.csv").write_text("case_id,status,drg\n1,grouped,FR25\n")
    r = CliRunner().invoke(main, ["settle", str(tmp_path / "c.csv"), "--pack", str(pack), "-w",
                                  str(tmp_path / "w.csv"), "-o", str(tmp_path / "o.csv")])
    assert r.exit_code == 1
    assert f"{pack}: outlier.high_bands[1]: RW upper bounds must increase" in r.output
    assert not (tmp_path / "o.csv").exists()


# ----------------------------------------------------------------------------- infinite money (issue 18, item 6)

INF = math.inf
ABSURD = [
    ("rate.value", INF, "rate.value: must be finite"),
    ("rate.value", 1e12, "rate.value: must be <= 1e+08"),
    ("rate.budget", INF, "rate.budget: must be finite"),
    ("rate.budget", 1e308, "rate.budget: must be <= 1e+12"),
    ("rate.budget", math.nan, "rate.budget: must be a number, not nan"),
    ("rate.expected_weight", 1e-300, "rate.expected_weight: budget / expected_weight = "),
    ("rate.expected_weight", INF, "rate.expected_weight: must be finite"),
    ("rate.by_insurance_type", {"职工": INF}, "rate.by_insurance_type.职工: must be finite"),
    ("rate.by_level", {"三级": {"职工": 1e300}}, "rate.by_level.三级.职工: must be <= 1e+08"),
    ("hospital_coefficients.default", INF, "hospital_coefficients.default: must be finite"),
    ("hospital_coefficients.by_level", {"三级": INF}, "hospital_coefficients.by_level.三级: must be finite"),
    ("hospital_coefficients.by_hospital", {"H1": 1e9}, "hospital_coefficients.by_hospital.H1: must be <= 1000"),
    ("outlier.high_bands", [[1.0, INF], [INF, 2.0]], "outlier.high_bands[0]: must be finite"),
    ("outlier.high_bands", [[-INF, 3.0], [INF, 2.0]], "outlier.high_bands[0]: must be finite"),
    ("outlier.overall_mean_cost", 1e-300, "outlier.overall_mean_cost: must be >= 0.01"),
    ("outlier.overall_mean_cost", INF, "outlier.overall_mean_cost: must be finite"),
    ("per_diem.bed_day_rate", INF, "per_diem.bed_day_rate: must be finite"),
    ("per_diem.bed_day_rate_by_level", {"三级": 1e200}, "per_diem.bed_day_rate_by_level.三级: must be <= 1e+08"),
    ("special_review.min_cost_ratio", INF, "special_review.min_cost_ratio: must be finite"),
    ("knobs.referral.uplift", INF, "knobs.referral.uplift: must be finite"),
    ("knobs.referral.min_rw", 1e300, "knobs.referral.min_rw: must be <= 1000"),
    ("short_stay.death_within_days", INF, "short_stay.death_within_days: must be finite"),
]


@pytest.mark.parametrize("key,value,message", ABSURD, ids=[f"{a[0]}={a[1]!r}" for a in ABSURD])
def test_non_finite_and_absurd_numbers_are_refused_with_the_key(raw, key, value, message):
    with pytest.raises(PackError) as e:
        parse_pack(set_key(raw, key, value), "region.toml")
    assert str(e.value).startswith("region.toml: ") and message in str(e.value)


def test_quality_delta_must_be_finite(raw):
    rules = copy.deepcopy(raw["knobs"]["quality"]["rules"])
    rules[0]["delta"] = INF
    with pytest.raises(PackError, match=r"knobs\.quality\.rules\[0\]\.delta: must be finite"):
        parse_pack(set_key(raw, "knobs.quality.rules", rules), "x.toml")


def test_expected_weight_from_the_data_may_not_make_an_absurd_rate(raw):
    p = parse_pack(set_key(raw, "rate.expected_weight", "data"), "x.toml")
    assert p.rate.base(200_000.0) == 10_500.0
    with pytest.raises(ValueError, match="above the bound"):
        p.rate.base(1e-9)


@pytest.mark.parametrize("line", ["value = inf", "budget = inf", "budget = 1e308", "expected_weight = 1e-300"])
def test_settle_refuses_an_infinite_pack_instead_of_paying_inf(tmp_path, line):
    key, _, v = line.partition(" = ")
    text = PACK.read_text(encoding="utf-8").replace("budget = 2.1e9 ", "budget = 2.1e9\n" if key != "budget"
                                                    else "budget = " + v + "\n#")
    if key == "value":
        text = text.replace("[rate]\n", "[rate]\nvalue = inf\n")
    if key == "expected_weight":
        text = text.replace("expected_weight = 200000.0", "expected_weight = 1e-300")
    pack = tmp_path / "inf.toml"
    pack.write_text(text, encoding="utf-8")
    (tmp_path / "w.csv").write_text("drg,rw,mean_cost,mean_los,n\nFR25,0.8,8000,7,10\n")
    (tmp_path / "c.csv").write_text("case_id,status,drg,total_cost,patient_share,los,discharge\n1,grouped,FR25,7000,100,7,1\n")
    r = CliRunner().invoke(main, ["settle", str(tmp_path / "c.csv"), "--pack", str(pack), "-w",
                                  str(tmp_path / "w.csv"), "-o", str(tmp_path / "o.csv")])
    assert r.exit_code == 1, r.output
    assert f"{pack}: rate.{key}:" in r.output
    assert not (tmp_path / "o.csv").exists()

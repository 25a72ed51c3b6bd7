"""Golden cases of the reference groupers: 100 % agreement on status class, MDC, ADRG, DRG.

The fixtures are copies of the reference cases shipped with each scheme (1.1 sample: 30
real-shaped records; golden_random and golden_edge: 2,000 each, the edge files covering every
ADRG's entry lists, exclusion-table hits, ambiguous groups and bad sex/age/weight).
"""

import functools

import pytest

import grouper
from grouper.engine.reference import Case

from conftest import DATA, EXPECTED_STATUS, read_cases

FILES = [("chs-drg-1.1", "sample"), ("chs-drg-1.1", "golden_random"), ("chs-drg-1.1", "golden_edge"),
         ("chs-drg-2.0", "golden_random"), ("chs-drg-2.0", "golden_edge"),
         ("chs-drg-3.0", "golden_random"), ("chs-drg-3.0", "golden_edge"),
         ("changzhou-2022", "golden"), ("zhejiang-2022", "golden"), ("anyang-2021", "golden")]


@functools.cache
def get_grouper(ruleset):
    return grouper.Grouper(ruleset)


def expected(ruleset, name):
    rows = read_cases(DATA / ruleset / f"{name}_expected.csv").to_pylist()
    return [(r["case_id"], EXPECTED_STATUS[r["status_code"]], r["mdc"], r["adrg"], r["drg"]) for r in rows]


@pytest.mark.parametrize("ruleset,name", FILES)
def test_kernel_matches_reference_grouper(ruleset, name):
    g = get_grouper(ruleset)
    out = g.group(read_cases(DATA / ruleset / f"{name}.csv"))
    got = list(zip(*(out.column(c).to_pylist() for c in ("case_id", "status", "mdc", "adrg", "drg"))))
    exp = expected(ruleset, name)
    assert len(got) == len(exp)
    mismatches = [(g, e) for g, e in zip(got, exp) if g != e]
    assert not mismatches, f"{len(mismatches)} of {len(exp)} differ, first: {mismatches[:3]}"


@pytest.mark.parametrize("ruleset,name", FILES)
def test_reference_interpreter_matches_reference_grouper(ruleset, name):
    ref = get_grouper(ruleset).reference
    cases = read_cases(DATA / ruleset / f"{name}.csv").to_pylist()
    got = []
    for r in cases:
        res = ref.group(Case.from_raw(r["sex"], r["age"], r["age_days"], r["birth_weight"], r["dx"], r["px"],
                                      r["los"], r["discharge"], r["dept"]))
        got.append((r["case_id"], res.status.label, res.mdc, res.adrg, res.drg))
    assert got == expected(ruleset, name)


@pytest.mark.parametrize("ruleset,name,classes", [
    ("chs-drg-1.1", "golden_edge", {"grouped", "invalid", "ungroupable"}),
    ("chs-drg-2.0", "golden_edge", {"grouped", "invalid", "ungroupable", "ambiguous"}),
    ("chs-drg-3.0", "golden_edge", {"grouped", "ungroupable", "ambiguous"}),
    ("changzhou-2022", "golden", {"grouped", "invalid", "ungroupable", "ambiguous"}),
])
def test_edge_file_exercises_every_status_class(ruleset, name, classes):
    out = get_grouper(ruleset).group(read_cases(DATA / ruleset / f"{name}.csv"))
    assert set(out.column("status").to_pylist()) == classes


def test_ambiguous_results_carry_the_mdc_letter():
    out = get_grouper("chs-drg-2.0").group(read_cases(DATA / "chs-drg-2.0" / "golden_edge.csv"))
    qy = [r for r in out.to_pylist() if r["status"] == "ambiguous"]
    assert len(qy) == 217 and {r["drg"] for r in qy} >= {"MQY", "PQY"}
    for row in qy:
        assert row["adrg"] == "QY" and row["drg"].endswith("QY") and row["mdc"] == "MDC" + row["drg"][0]


def test_local_schemes_use_their_own_codes_and_inputs():
    """Five-character codes, bare ADRG results, LOS/discharge splits, retry with one procedure."""
    anyang = get_grouper("anyang-2021").group(read_cases(DATA / "anyang-2021" / "golden.csv"))
    assert any(len(d) == 5 for d in anyang.column("drg").to_pylist())
    cz = get_grouper("changzhou-2022")
    bare = cz.group_one(sex=1, age=40, dx=["C61.x00"], px=["37.5100"], los=3)  # heart transplant, no split
    assert (bare.adrg, bare.drg) == ("AA1", "AA1")
    ru = [cz.group_one(sex=1, age=50, dx=["Z51.101"], los=d, discharge="1").drg for d in (5, 20, 45, 70)]
    assert ru[:3] == ["RU10", "RU12", "RU14"] and ru[3] == "RU1"
    no_los = cz.group_one(sex=1, age=50, dx=["Z51.101"])
    assert no_los.status == "invalid" and "住院天数" in no_los.reason

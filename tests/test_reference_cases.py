"""Golden cases of the reference groupers: 100 % agreement on status class, MDC, ADRG, DRG.

The fixtures are copies of the reference cases shipped with each scheme (1.1 sample: 30
real-shaped records; golden_random and golden_edge: 2,000 each, the edge files covering every
ADRG's entry lists, exclusion-table hits, ambiguous groups and bad sex/age/weight).
"""

import functools

import pytest

import grouper
from grouper.reference import Case

from conftest import DATA, EXPECTED_STATUS, read_cases

FILES = [("chs-drg-1.1", "sample"), ("chs-drg-1.1", "golden_random"), ("chs-drg-1.1", "golden_edge"),
         ("chs-drg-2.0", "golden_random"), ("chs-drg-2.0", "golden_edge")]


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
        res = ref.group(Case.from_raw(r["sex"], r["age"], r["age_days"], r["birth_weight"], r["dx"], r["px"]))
        got.append((r["case_id"], res.status.label, res.mdc, res.adrg, res.drg))
    assert got == expected(ruleset, name)


@pytest.mark.parametrize("ruleset,classes", [
    ("chs-drg-1.1", {"grouped", "invalid", "ungroupable"}),
    ("chs-drg-2.0", {"grouped", "invalid", "ungroupable", "ambiguous"}),
])
def test_edge_file_exercises_every_status_class(ruleset, classes):
    out = get_grouper(ruleset).group(read_cases(DATA / ruleset / "golden_edge.csv"))
    assert set(out.column("status").to_pylist()) == classes


def test_ambiguous_results_carry_the_mdc_letter():
    out = get_grouper("chs-drg-2.0").group(read_cases(DATA / "chs-drg-2.0" / "golden_edge.csv"))
    qy = [r for r in out.to_pylist() if r["status"] == "ambiguous"]
    assert len(qy) == 217 and {r["drg"] for r in qy} >= {"MQY", "PQY"}
    for row in qy:
        assert row["adrg"] == "QY" and row["drg"].endswith("QY") and row["mdc"] == "MDC" + row["drg"][0]

"""Golden cases of the national reference grouper: 100 % agreement on status class, MDC, ADRG, DRG.

The fixtures are copies of the reference cases shipped with the scheme (sample: 30 real-shaped
records; golden_random and golden_edge: 2,000 each, the latter covering every ADRG's entry lists,
exclusion-table hits and bad sex/age/weight).
"""

import pytest

from grouper.reference import Case

from conftest import DATA, EXPECTED_STATUS, read_cases

FILES = ["sample", "golden_random", "golden_edge"]


def expected(name):
    rows = read_cases(DATA / "chs-drg-1.1" / f"{name}_expected.csv").to_pylist()
    return [(r["case_id"], EXPECTED_STATUS[r["status_code"]], r["mdc"], r["adrg"], r["drg"]) for r in rows]


@pytest.mark.parametrize("name", FILES)
def test_kernel_matches_reference_grouper(grouper11, name):
    out = grouper11.group(read_cases(DATA / "chs-drg-1.1" / f"{name}.csv"))
    got = list(zip(*(out.column(c).to_pylist() for c in ("case_id", "status", "mdc", "adrg", "drg"))))
    exp = expected(name)
    assert len(got) == len(exp)
    mismatches = [(g, e) for g, e in zip(got, exp) if g != e]
    assert not mismatches, f"{len(mismatches)} of {len(exp)} differ, first: {mismatches[:3]}"


@pytest.mark.parametrize("name", FILES)
def test_reference_interpreter_matches_reference_grouper(grouper11, name):
    ref = grouper11.reference
    cases = read_cases(DATA / "chs-drg-1.1" / f"{name}.csv").to_pylist()
    got = []
    for r in cases:
        res = ref.group(Case.from_raw(r["sex"], r["age"], r["age_days"], r["birth_weight"], r["dx"], r["px"]))
        got.append((r["case_id"], res.status.label, res.mdc, res.adrg, res.drg))
    assert got == expected(name)


def test_edge_file_exercises_every_status_class(grouper11):
    out = grouper11.group(read_cases(DATA / "chs-drg-1.1" / "golden_edge.csv"))
    assert set(out.column("status").to_pylist()) == {"grouped", "invalid", "ungroupable"}

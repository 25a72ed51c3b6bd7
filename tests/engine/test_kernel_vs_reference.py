"""Differential tests: the compiled kernel agrees with the reference interpreter on every field.

Hypothesis generates whole schemes (every predicate of the vocabulary, nested and/or/not, CC/MCC
with exclusion tables in both counting scopes, trauma regions, combination labels, ambiguous-group
tests at every position) and awkward cases (unknown, empty, null and padded codes; missing,
negative and out-of-range numbers; newborns). Both the batch path (Arrow -> kernel) and the
single-case path (group_one) are compared with the reference, field by field.
"""

import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grouper
from grouper.engine.status import CC_LABELS, CcLevel, Status
from grouper.engine.reference import Case, ReferenceGrouper

from conftest import DATA, read_cases
from factory import cases, schemes, write_scheme


def reference_rows(ref: ReferenceGrouper, case_dicts):
    out = []
    for c in case_dicts:
        r = ref.group(Case(**c))
        out.append((Status(r.status).label, r.mdc, r.adrg, r.drg,
                    None if r.cc_level == CcLevel.NOT_COMPUTED else CC_LABELS[CcLevel(r.cc_level)], r.flags,
                    r.reason.label))
    return out


def to_table(case_dicts):
    return pa.table({
        "sex": pa.array([c["sex"] for c in case_dicts], pa.int32()),
        "age": pa.array([c["age"] for c in case_dicts], pa.int32()),
        "age_days": pa.array([c["age_days"] for c in case_dicts], pa.int32()),
        "birth_weight": pa.array([c["birth_weight"] for c in case_dicts], pa.int32()),
        "dx": pa.array([c["dx"] for c in case_dicts], pa.list_(pa.string())),
        "px": pa.array([c["px"] for c in case_dicts], pa.list_(pa.string())),
        "los": pa.array([c.get("los") for c in case_dicts], pa.int32()),
        "discharge": pa.array([c.get("discharge") for c in case_dicts], pa.string()),
        "dept": pa.array([c.get("dept") for c in case_dicts], pa.string()),
    })


def batch_rows(table: pa.Table):
    cols = ("status", "mdc", "adrg", "drg", "cc_level", "flags", "reason_code")
    return list(zip(*(table.column(c).to_pylist() for c in cols)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=schemes(), case_list=st.lists(cases, min_size=1, max_size=40))
def test_kernel_equals_reference_on_generated_schemes(spec, case_list):
    with tempfile.TemporaryDirectory() as tmp:
        rs = grouper.load_ruleset(write_scheme(Path(tmp) / "scheme", spec))
        g = grouper.Grouper(rs, n_threads=2)
        expected = reference_rows(ReferenceGrouper(rs), case_list)
        assert batch_rows(g.group(to_table(case_list))) == expected
        singles = [g.group_one(**c) for c in case_list]
        assert [(r.status, r.mdc, r.adrg, r.drg, r.cc_level, r.flags, r.reason_code) for r in singles] == expected


@settings(max_examples=60, deadline=None)
@given(case_list=st.lists(cases, min_size=1, max_size=60), seed=st.integers(0, 2**32 - 1))
def test_kernel_equals_reference_on_the_national_scheme(grouper11, case_list, seed):
    """Random cases built from codes the 1.1 lists actually use, so groups are reached."""
    rng = np.random.default_rng(seed)
    dx_pool = [c for c in grouper11.compiled.dx_codes[:: 37]]
    px_pool = [c for c in grouper11.compiled.px_codes[:: 13]]
    for c in case_list:
        c["dx"] = [str(rng.choice(dx_pool)) if x not in (None, "") and rng.random() < 0.8 else x for x in c["dx"]]
        c["px"] = [str(rng.choice(px_pool)) if x not in (None, "") and rng.random() < 0.8 else x for x in c["px"]]
    assert batch_rows(grouper11.group(to_table(case_list))) == reference_rows(grouper11.reference, case_list)


def test_thread_count_does_not_change_results(grouper11):
    table = read_cases(DATA / "chs-drg-1.1" / "golden_edge.csv")
    big = pa.concat_tables([table] * 10)
    one = grouper11.group(big, n_threads=1)
    for n in (2, 3, 8):
        assert grouper11.group(big, n_threads=n).equals(one)


@settings(max_examples=25, deadline=None)
@given(spec=schemes(), case_list=st.lists(cases, min_size=50, max_size=200), threads=st.integers(2, 6))
def test_thread_invariance_on_generated_schemes(spec, case_list, threads):
    with tempfile.TemporaryDirectory() as tmp:
        g = grouper.Grouper(grouper.load_ruleset(write_scheme(Path(tmp) / "s", spec)))
        t = to_table(case_list)
        assert g.group(t, n_threads=threads).equals(g.group(t, n_threads=1))


def test_fail_retry_takes_the_first_secondary_procedure_that_groups(tmp_path):
    """A case that groups under no rule is regrouped with each secondary procedure alone, in order."""
    from factory import DX, PX

    spec = {"mdcs": [{"code": "MDCA", "entry": {"const": True}, "list": DX[:1], "adrgs": [
        {"code": "AB1", "entry": {"op": "and", "args": [{"pred": "has_px"}, {"pred": "ppx_in", "list": "px"}]},
         "lists": {"dx": DX[:1], "px": [PX[2], PX[3]]}, "drgs": [("AB11", {"pred": "ppx_in", "list": "AB1.px2"}),
                                                           ("AB13", {"const": True})]},
    ]}], "cc": {}, "excl": {}, "valid_or": PX, "engine": {"cc_scope": "secondary", "fail_retry": "each_secondary_px_alone"}}
    spec["mdcs"][0]["adrgs"][0]["lists"]["px2"] = [PX[3]]
    rs = grouper.load_ruleset(write_scheme(tmp_path / "retry", spec))
    g = grouper.Grouper(rs)
    case = dict(sex=1, age=40, dx=[DX[0]], px=[PX[0], PX[1], PX[2], PX[3]])
    assert g.group_one(**case).drg == "AB13"  # PX[1] alone fails; PX[2] alone groups first (AB13)
    assert ReferenceGrouper(rs).group(Case(**case)).drg == "AB13"
    case["px"] = [PX[0], PX[3], PX[2]]
    assert g.group_one(**case).drg == "AB11" == ReferenceGrouper(rs).group(Case(**case)).drg
    assert g.group_one(**{**case, "px": [PX[0], PX[1]]}).status == "ungroupable"
    assert g.group_one(**{**case, "px": [PX[0]]}).status == "ungroupable"  # one procedure: no retry


def _without_summaries(compiled):
    """The compiled arrays with every list node's summary bit cleared (field b = 0): the kernel
    then loops over the case's codes for ``any_dx_in`` / ``sdx_in`` / ``any_px_in`` / ``spx_in``."""
    from grouper.engine import _kernel

    named = {f: getattr(compiled, f) for f in (*_kernel.ARRAYS, *_kernel.NONE_CODES, "params")}
    cond = compiled.cond.copy()
    cond["b"][np.isin(cond["op"], [_kernel.CONSTANTS[k] for k in (
        "OP_ANY_DX_IN", "OP_SDX_IN", "OP_ANY_PX_IN", "OP_SPX_IN")])] = 0
    return _kernel.Program({**named, "cond": cond})


def _kernel_rows(program, g, table):
    enc = g.encoder.encode(table.combine_chunks().to_batches()[0])
    k = enc.n
    res = (np.empty(k, np.int8), np.empty(k, np.int32), np.empty(k, np.int32), np.empty(k, np.int32),
           np.empty(k, np.int8), np.empty(k, np.int32), np.empty(k, np.uint8))
    program.group_batch(enc.fields, enc.dx_off, enc.dx_ids, enc.px_off, enc.px_ids, *res)
    return [r.tolist() for r in res]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=schemes(), case_list=st.lists(cases, min_size=1, max_size=40))
def test_summary_bits_equal_the_loops_over_the_codes(spec, case_list):
    """A list node read from the case's summary words gives what the loop over its codes gives
    (principal excluded for sdx_in, from the principal procedure on for any_px_in, after it for
    spx_in), with unknown, empty and padded codes; so does the fail-retry path."""
    with tempfile.TemporaryDirectory() as tmp:
        g = grouper.Grouper(grouper.load_ruleset(write_scheme(Path(tmp) / "scheme", spec)))
        t = to_table(case_list)
        assert _kernel_rows(g._program, g, t) == _kernel_rows(_without_summaries(g.compiled), g, t)


def _national_cases(g, seed: int, n: int = 300):
    """``n`` random cases of the scheme's own codes (many ungroupable), as a table."""
    rng = np.random.default_rng(seed)
    dx, px = g.compiled.dx_codes, g.compiled.px_codes
    rows = [dict(sex=int(rng.integers(1, 3)), age=int(rng.integers(0, 90)), age_days=int(rng.integers(0, 60)),
                 birth_weight=int(rng.integers(0, 4000)),
                 dx=[str(dx[i]) for i in rng.integers(0, len(dx), rng.integers(1, 9))],
                 px=[None if rng.random() < 0.1 else str(px[i]) for i in rng.integers(0, len(px), rng.integers(0, 5))])
            for _ in range(n)]
    return to_table(rows)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_summary_bits_equal_the_loops_on_the_national_schemes(grouper11, seed):
    """Random cases of real codes under chs-drg-1.1 and (through the same table) every list node."""
    t = _national_cases(grouper11, seed)
    assert _kernel_rows(grouper11._program, grouper11, t) == _kernel_rows(_without_summaries(grouper11.compiled),
                                                                          grouper11, t)


def _without_mdc_skip(compiled):
    """The kernel evaluating the entry rule of every MDC its prefilters allow."""
    from grouper.engine import _kernel

    return _kernel.Program(compiled, skip_mdc=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=schemes(), case_list=st.lists(cases, min_size=1, max_size=40))
def test_mdc_skip_changes_nothing(spec, case_list):
    """Skipping the entry rule of an MDC whose ADRGs the prefilters all rule out (and deciding
    R_NO_ADRG after the walk) gives what evaluating it gives: every field, reason included,
    with the ambiguous-group rules and the fail-retry path of generated schemes."""
    with tempfile.TemporaryDirectory() as tmp:
        g = grouper.Grouper(grouper.load_ruleset(write_scheme(Path(tmp) / "scheme", spec)))
        t = to_table(case_list)
        assert _kernel_rows(g._program, g, t) == _kernel_rows(_without_mdc_skip(g.compiled), g, t)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_mdc_skip_changes_nothing_on_the_national_schemes(grouper11, seed):
    """Random cases of real codes under chs-drg-1.1: many ungroupable, so the deferred entry
    rules decide the reason."""
    t = _national_cases(grouper11, seed)
    assert _kernel_rows(grouper11._program, grouper11, t) == _kernel_rows(_without_mdc_skip(grouper11.compiled),
                                                                          grouper11, t)


def test_some_code_prefilters_let_two_codes_meet_two_lists(tmp_path):
    """An entry "some code in A and some code in B" holds for two codes, one in each list: the
    any-code prefilters keep one conjunct's list, not the lists' intersection (MDC entry on
    diagnoses, ADRG entry on procedures, as transplant pairs are written)."""
    from factory import DX, NAMED_DX, PX

    pair = {"op": "and", "args": [{"pred": "any_px_in", "list": "px"}, {"pred": "any_px_in", "list": "px2"}]}
    spec = {"mdcs": [{"code": "MDCA", "list": [DX[0]],
                      "entry": {"op": "and", "args": [{"pred": "any_dx_in", "list": "mdc_dx"},
                                                      {"pred": "any_dx_in", "list": NAMED_DX}]},
                      "adrgs": [{"code": "AB1", "entry": pair, "lists": {"dx": DX[:1], "px": [PX[0]], "px2": [PX[1]]},
                                 "drgs": [("AB19", {"const": True})]},
                                {"code": "AC1", "entry": {"const": True}, "lists": {"dx": DX[:1]},
                                 "drgs": [("AC19", {"const": True})]}]}],
            "named": {NAMED_DX: [DX[1]]}, "cc": {}, "excl": {}, "valid_or": PX, "engine": {"cc_scope": "secondary"}}
    rs = grouper.load_ruleset(write_scheme(tmp_path / "pairs", spec))
    g, ref = grouper.Grouper(rs), ReferenceGrouper(rs)
    for dx, px, drg in [([DX[0], DX[1]], [PX[0], PX[1]], "AB19"), ([DX[1], DX[0]], [PX[1], PX[0]], "AB19"),
                        ([DX[0], DX[1]], [PX[0]], "AC19"), ([DX[0]], [PX[0], PX[1]], "0000")]:
        case = dict(sex=1, age=40, dx=dx, px=px)
        assert g.group_one(**case).drg == ref.group(Case(**case)).drg == drg

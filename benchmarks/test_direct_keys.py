"""The direct-lookup study (direct_keys.py): the proof's claim holds on the kernel, and a key is
proven only where every condition on its path is decided by it."""

import sys
import tempfile
from pathlib import Path

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grouper
from grouper.analytics.synth import SynthSpec, write_synthetic

import direct_keys

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from factory import ALL_DX, DX, PX, cases, schemes, write_scheme  # noqa: E402

#: valid input (the lookup is tried only there), with the ages, weights and stays rules test
valid_cases = st.fixed_dictionaries({
    "sex": st.sampled_from([1, 2]), "age": st.sampled_from([0, 1, 14, 15, 17, 65, 70]),
    "age_days": st.sampled_from([0, 1, 28, 29, 365]), "birth_weight": st.sampled_from([1499, 1500, 2000, 2500]),
    "dx": st.lists(st.sampled_from(ALL_DX), min_size=1, max_size=6),
    "px": st.lists(st.sampled_from(PX), max_size=4),
    "los": st.sampled_from([1, 5, 7, 8, 30, 31, 61]),
    "discharge": st.sampled_from([None, "1", "2", "5"]), "dept": st.sampled_from([None, "ICU", "03"]),
})


def _table(case_dicts):
    ints = ("sex", "age", "age_days", "birth_weight", "los")
    cols = {k: pa.array([c.get(k) for c in case_dicts], pa.int32()) for k in ints}
    cols |= {k: pa.array([c.get(k) for c in case_dicts], pa.string()) for k in ("discharge", "dept")}
    cols |= {k: pa.array([c[k] for c in case_dicts], pa.list_(pa.string())) for k in ("dx", "px")}
    return pa.table(cols)


def _study(g, table, max_facts):
    c = g.compiled
    facts, res = direct_keys.choose_facts(direct_keys.Proof(c), max_facts, 0.0)
    enc = g.encoder.encode(table.combine_chunks().to_batches()[0])
    return direct_keys.served(c, res, facts, enc, direct_keys.kernel_outputs(g, enc)), facts, res


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=schemes(), valid=st.lists(valid_cases, min_size=20, max_size=60), odd=st.lists(cases, max_size=10),
       max_facts=st.integers(0, 2))
def test_proven_keys_reach_their_adrg_on_generated_schemes(spec, valid, odd, max_facts):
    """Every generated case whose key is proven groups, in the kernel, to the proven ADRG (and
    the split the study computes): the proof covers every predicate, both CC scopes, the
    fail-retry setting, ambiguous-group rules at every position and the any-code MDC filters."""
    with tempfile.TemporaryDirectory() as tmp:
        g = grouper.Grouper(grouper.load_ruleset(write_scheme(Path(tmp) / "s", spec)), n_threads=1)
        doc, _, _ = _study(g, _table(valid + odd), max_facts)
        assert doc["disagree"] == 0


def test_proven_keys_reach_their_adrg_on_the_national_scheme(tmp_path):
    province = tmp_path / "p.parquet"
    write_synthetic(SynthSpec(3000, ruleset="chs-drg-1.1"), province)
    import pyarrow.parquet as pq

    g = grouper.Grouper("chs-drg-1.1", n_threads=1)
    doc, facts, _ = _study(g, pq.read_table(province), 3)
    assert doc["disagree"] == 0 and len(facts) == 3
    assert doc["served"] > 0.5  # the check above is not vacuous


def test_a_key_with_an_undecided_condition_is_not_proven(tmp_path):
    """AB1 also needs age >= 18: keys through it are not proven (nor those behind it), while a
    principal diagnosis that only AC1 takes is proven for every procedure key."""
    spec = {"mdcs": [{"code": "MDCA", "entry": {"const": True}, "list": DX[:3], "adrgs": [
        {"code": "AB1", "entry": {"op": "and", "args": [{"pred": "pdx_in", "list": "dx"},
                                                         {"pred": "age_years_ge", "value": 18}]},
         "lists": {"dx": [DX[0]], "px": []}, "drgs": [("AB19", {"const": True})]},
        {"code": "AC1", "entry": {"pred": "pdx_in", "list": "dx"},
         "lists": {"dx": [DX[0], DX[1]], "px": []}, "drgs": [("AC19", {"const": True})]},
    ]}], "cc": {}, "excl": {}, "valid_or": PX, "engine": {"cc_scope": "secondary", "fail_retry": "none"}}
    rs = grouper.load_ruleset(write_scheme(tmp_path / "tiny", spec))
    c = grouper.Grouper(rs).compiled
    res, _ = direct_keys.Proof(c).run([])
    dx_id = {code: i for i, code in enumerate(c.dx_codes)}
    ab1 = next(j for j, rec in enumerate(c.adrg) if c.adrg_codes[rec["code"]] == "AB1")
    ac1 = next(j for j, rec in enumerate(c.adrg) if c.adrg_codes[rec["code"]] == "AC1")
    assert (res[c.dx_class[dx_id[DX[0]]]] == -1).all()  # AB1's age test decides, for every px key
    assert (res[c.dx_class[dx_id[DX[1]]]] == ac1).all()
    assert (res[c.dx_class[dx_id[DX[2]]]] == -1).all()  # no ADRG: left to the walk
    assert not (res == ab1).any()
    # the age test as a fact: proven both ways
    age = next(i for i, n in enumerate(c.cond) if n["op"] == grouper.engine.compile.K["OP_AND"])
    res, _ = direct_keys.Proof(c).run([age])
    assert (res[c.dx_class[dx_id[DX[0]]], :, 1] == ab1).all()
    assert (res[c.dx_class[dx_id[DX[0]]], :, 0] == ac1).all()
    cases_ = [dict(sex=1, age=a, dx=[DX[0]], px=[]) for a in (17, 40)] + [dict(sex=1, age=40, dx=[DX[1]], px=[PX[0]])]
    g = grouper.Grouper(rs, n_threads=1)
    doc, _, _ = _study(g, _table(cases_), 1)
    assert doc["disagree"] == 0 and doc["served"] == 1.0
    assert [g.group_one(**k).adrg for k in cases_] == ["AC1", "AB1", "AC1"]

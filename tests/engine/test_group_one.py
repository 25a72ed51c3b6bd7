"""``Grouper.group_one`` reads a case in one compiled call (``Program.group_values``): it must
read every kind of Python value exactly as the batch path's rules do (``Encoder.case_fields``
for numbers and discharge/department codes, ``CodeMapper.get`` for codes), and give the same
result as grouping the same case as a one-row table."""

import array

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

import grouper
from grouper.engine.grouper import _BAD_NUMBER
from grouper.engine.inputs import CodeMapper

CODES = ["I21.000", "K35.800", "O80.000", "S06.000", "J18.900", "E11.900", "I10.x00", "N18.500",
         "36.0600", "47.0901", "79.3500", "88.7201", "99.9999", " I21.000 ", "", "XYZ", "  "]
numbers = st.one_of(st.none(), st.integers(-5, 200), st.integers(-2**40, 2**40), st.booleans(),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1.0, 28.0, 2500.0, -3.0]),
                    st.sampled_from(["", " 45 ", "12a", "+7", "-0", "3.5", "1e3", "２"]))
code = st.one_of(st.sampled_from(CODES), st.none(), st.integers(0, 99))
codes = st.one_of(st.lists(code, max_size=6), st.lists(code, max_size=6).map(tuple),
                  st.lists(st.sampled_from(CODES), max_size=5).map("|".join),
                  st.lists(st.sampled_from(CODES[:5]), min_size=65, max_size=80))


def old_path(g: grouper.Grouper, sex, age, age_days, birth_weight, los, discharge, dept, dx, px):
    """The values read one by one by the encoder's rules, then the kernel's one-case call."""
    fields, bad = g.encoder.case_fields(sex=sex, age=age, age_days=age_days, birth_weight=birth_weight,
                                        los=los, discharge=discharge, dept=dept)

    def ids(cs, mapper: CodeMapper):
        if isinstance(cs, str):
            cs = cs.split("|") if cs.strip() else ()
        return array.array("i", [mapper.get(c) for c in cs])

    out = list(g._program.group_one(fields, ids(dx, g.encoder.dx), ids(px, g.encoder.px)))
    if bad:
        out[5] |= _BAD_NUMBER
    return tuple(out)


@settings(max_examples=300, deadline=None)
@given(sex=numbers, age=numbers, age_days=numbers, weight=numbers, los=numbers, dx=codes, px=codes,
       discharge=st.one_of(st.none(), st.sampled_from(["1", "2", "5", "9", 2, 5.0, 5.5, ""])),
       dept=st.one_of(st.none(), st.sampled_from(["A01", "B", 3, ""])))
def test_group_one_reads_values_as_the_batch_rules_do(grouper11, sex, age, age_days, weight, los, dx, px,
                                                      discharge, dept):
    args = (sex, age, age_days, weight, los, discharge, dept, dx, px)
    got = grouper11._program.group_values(*args, grouper11._one)
    assert got == old_path(grouper11, *args)
    r = grouper11.group_one(sex=sex, age=age, age_days=age_days, birth_weight=weight, dx=dx, px=px, los=los,
                            discharge=discharge, dept=dept)
    assert r.flags == got[5] and r.drg == grouper11.compiled.drg_codes[got[3]]


def test_group_one_equals_a_one_row_table_and_reuses_results(grouper11):
    case = {"sex": 1, "age": 67, "age_days": None, "birth_weight": None, "dx": ["I21.000", "I10.x00", "N18.500"],
            "px": ["36.0600"], "los": 9}
    table = pa.table({k: pa.array([v], pa.list_(pa.string()) if k in ("dx", "px") else pa.int32())
                      for k, v in case.items()})
    row = grouper11.group(table).to_pylist()[0]
    r = grouper11.group_one(**case)
    assert {k: row[k] for k in ("status", "mdc", "adrg", "drg", "cc_level", "flags", "drg_name")} == \
        {k: getattr(r, k) for k in ("status", "mdc", "adrg", "drg", "cc_level", "flags", "drg_name")}
    assert grouper11.group_one(**case) is r  # an immutable result, built once per outcome
    assert grouper11.group_one(**{**case, "age": "abc"}).flags & _BAD_NUMBER


def test_group_one_takes_any_iterable_of_codes(grouper11):
    a = grouper11.group_one(sex=1, age=40, dx=["K35.800"], px=[])
    assert grouper11.group_one(sex=1, age=40, dx=iter(["K35.800"]), px=iter(())) == a
    assert grouper11.group_one(sex=1, age=40, dx=(c for c in ["K35.800"]), px="") == a


def test_group_one_on_a_scheme_with_discharge_and_department_codes():
    """A local scheme whose rules read discharge/department codes: the value ids match."""
    seen = 0
    for name in ("anyang-2021", "changzhou-2022", "zhejiang-2022"):
        g = grouper.Grouper(name)
        if not any(g.compiled.values.values()):
            continue
        seen += 1
        for v in [*next(v for v in g.compiled.values.values() if v)[:3], None, "zz", 1.0]:
            args = (1, 50, None, None, 5, v, v, ["I21.000"], [])
            assert g._program.group_values(*args, g._one) == old_path(g, *args)
    assert seen

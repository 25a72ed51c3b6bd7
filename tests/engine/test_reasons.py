"""Every case that does not group says where grouping stopped (issue 14, "reasons for every
ungrouped case"): one hand-built scheme reaches each reason code, and the kernel (batch and
single case), the reference interpreter and the output's text columns all say the same."""

import grouper
import pyarrow as pa
import pytest

from grouper.engine.reference import Case, ReferenceGrouper
from grouper.engine.status import Reason

from factory import DX, PX, write_scheme

SPEC = {
    "mdcs": [
        # MDCB: sex-mismatch rule before its entry (pre_qy), else entered on its diagnoses
        {"code": "MDCB", "entry": {"pred": "pdx_in", "list": "mdc_dx"}, "list": [DX[5]],
         "pre_qy": ("BQY", {"op": "and", "args": [{"pred": "pdx_in", "list": "mdc_dx"}, {"pred": "sex_eq", "value": 2}]}),
         "adrgs": [{"code": "BA1", "entry": {"pred": "pdx_in", "list": "dx"}, "lists": {"dx": [DX[5]]},
                    "drgs": [("BA11", {"const": True})]}]},
        {"code": "MDCA", "entry": {"pred": "pdx_in", "list": "mdc_dx"}, "list": DX[:5],
         "qy_rule": {"pred": "sex_eq", "value": 2}, "qy_after": "AZ1",
         "adrgs": [
             {"code": "AB1", "entry": {"op": "and", "args": [{"pred": "pdx_in", "list": "dx"},
                                                           {"pred": "ppx_in", "list": "px"}]},
              "lists": {"dx": [DX[0]], "px": [PX[2]]}, "drgs": [("AB11", {"const": True})]},
             {"code": "AC1", "entry": {"pred": "pdx_in", "list": "dx"}, "lists": {"dx": [DX[1]]},
              "drgs": [("AC11", {"pred": "age_years_gt", "value": 60})]},
             {"code": "AX0", "entry": {"pred": "pdx_in", "list": "dx"}, "lists": {"dx": [DX[2]]},
              "drgs": [("AX00", {"const": True})]},
             {"code": "AZ1", "entry": {"pred": "pdx_in", "list": "dx"}, "lists": {"dx": [DX[3]]},
              "drgs": [("AZ11", {"const": True})]},
         ]},
    ],
    "cc": {}, "excl": {}, "valid_or": PX,
    "engine": {"cc_scope": "secondary", "fail_adrgs": ["AX0"]},
}

CASES = [  # (case, reason, status)
    (dict(sex=1, age=40, dx=[DX[0]], px=[PX[2]]), Reason.NONE, "grouped"),
    (dict(sex=1, age=40, dx=[DX[9]]), Reason.NO_MDC, "ungroupable"),
    (dict(sex=1, age=40, dx=[DX[0]]), Reason.NO_ADRG, "ungroupable"),  # AB1 needs its procedure
    (dict(sex=1, age=40, dx=[DX[0]], px=[PX[3]]), Reason.PX_NO_ADRG, "ungroupable"),
    (dict(sex=1, age=40, dx=[DX[1]]), Reason.NO_DRG, "ungroupable"),  # AC1 held, AC11 needs age > 60
    (dict(sex=1, age=40, dx=[DX[2]]), Reason.MDC_FAIL, "ungroupable"),
    (dict(sex=2, age=40, dx=[DX[4]]), Reason.QY, "ambiguous"),  # after AZ1, the MDC's QY rule
    (dict(sex=2, age=40, dx=[DX[5]]), Reason.QY_PRE, "ambiguous"),
    (dict(sex=1, age=None, dx=[DX[0]]), Reason.INVALID, "invalid"),
]


@pytest.fixture(scope="module")
def scheme(tmp_path_factory):
    rs = grouper.load_ruleset(write_scheme(tmp_path_factory.mktemp("reasons") / "s", SPEC))
    return grouper.Grouper(rs), ReferenceGrouper(rs)


@pytest.mark.parametrize("case,reason,status", CASES, ids=[r.name for _, r, _ in CASES])
def test_each_reason_is_reached_by_kernel_and_reference(scheme, case, reason, status):
    g, ref = scheme
    one = g.group_one(**case)
    assert (one.status, one.reason_code) == (status, reason.label)
    r = ref.group(Case(**case))
    assert (r.status.label, r.reason) == (status, reason)
    if reason is not Reason.NONE:
        assert one.reason.startswith(reason.text) and reason.text


def test_batch_output_carries_reason_code_and_text(scheme):
    g, _ = scheme
    t = pa.table({"sex": [c["sex"] for c, _, _ in CASES], "age": [c["age"] for c, _, _ in CASES],
                  "dx": [c["dx"] for c, _, _ in CASES], "px": [c.get("px", []) for c, _, _ in CASES],
                  "los": [5] * len(CASES), "discharge": ["1"] * len(CASES), "dept": ["x"] * len(CASES)})
    out = g.group(t).to_pydict()
    assert out["reason_code"] == [r.label for _, r, _ in CASES]
    assert out["reason"][0] is None  # grouped, no flags: no text
    for text, (_, r, _) in zip(out["reason"][1:], CASES[1:]):
        assert text.startswith(r.text)
    # the invalid case's text goes on with the failed check
    assert "年龄（岁）缺失" in out["reason"][-1]
    # the fail rule's flag message is not repeated after the reason that says it
    assert out["reason"][5] == Reason.MDC_FAIL.text

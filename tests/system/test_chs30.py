"""CHS-DRG 3.0: the new predicates at their boundaries, fail rules inside an MDC (X00 / X000),
scheme-wide named lists, and what status, flags and explain say about a 3.0 case."""

import functools
import subprocess
import sys

import pyarrow as pa
import pytest

import grouper
from grouper.engine.status import Flag, Reason
from grouper.engine.reference import Case, ReferenceGrouper
from grouper.rulesets import RulesetError

from conftest import DATA, ROOT, read_cases
from factory import DX, PX, write_scheme



def one_split_scheme(tree, **extra):
    """MDCA -> AB1 (principal DX[0]) -> AB11 when ``tree`` holds, else AB19."""
    spec = {"mdcs": [{"code": "MDCA", "entry": {"const": True}, "list": DX[:1], "adrgs": [
        {"code": "AB1", "entry": {"pred": "pdx_in", "list": "dx"}, "lists": {"dx": DX[:1], "px": PX[:2]},
         "drgs": [("AB11", tree), ("AB19", {"const": True})]}]}],
        "cc": {}, "excl": {}, "valid_or": PX, **extra}
    return spec


def both(tmp_path, spec, **case):
    """The DRG from the kernel (single case and batch) and from the reference; they must agree."""
    rs = grouper.load_ruleset(write_scheme(tmp_path / "s", spec))
    g = grouper.Grouper(rs)
    case = {"sex": 1, "age": 40, "age_days": None, "birth_weight": None, "dx": [DX[0]], "px": [], "los": 5,
            "discharge": "1", "dept": "03", **case}
    one = g.group_one(**case)
    ints = {k: pa.array([case[k]], pa.int32()) for k in ("sex", "age", "age_days", "birth_weight", "los")}
    codes = {k: pa.array([case[k]], pa.list_(pa.string())) for k in ("dx", "px")}
    table = pa.table({**ints, **codes, "discharge": [case["discharge"]], "dept": [case["dept"]]})
    batch = g.group(table).to_pylist()[0]
    ref = ReferenceGrouper(rs).group(Case(**case))
    assert one.drg == batch["drg"] == ref.drg and one.flags == batch["flags"] == ref.flags
    return one.drg


@pytest.mark.parametrize("tree,case,hit", [
    ({"pred": "age_years_ge", "value": 70}, {"age": 69}, False),
    ({"pred": "age_years_ge", "value": 70}, {"age": 70}, True),
    ({"pred": "age_years_le", "value": 6}, {"age": 6}, True),
    ({"pred": "age_years_le", "value": 6}, {"age": 7}, False),
    ({"pred": "age_days_lt", "value": 29}, {"age": 0, "age_days": 28, "birth_weight": 3000}, True),
    ({"pred": "age_days_lt", "value": 29}, {"age": 0, "age_days": 29}, False),
    ({"pred": "age_days_ge", "value": 29}, {"age": 0, "age_days": 28, "birth_weight": 3000}, False),
    ({"pred": "age_days_ge", "value": 29}, {"age": 0, "age_days": 29}, True),
    ({"pred": "age_days_ge", "value": 29}, {"age": 1}, False),  # age in days absent: false
    ({"pred": "weight_le", "value": 1499}, {"age": 0, "age_days": 3, "birth_weight": 1499}, True),
    ({"pred": "weight_le", "value": 1499}, {"age": 0, "age_days": 3, "birth_weight": 1500}, False),
    ({"pred": "weight_le", "value": 1499}, {"age": 0, "age_days": 3, "birth_weight": 0}, False),  # needs non-zero
    ({"pred": "weight_gt", "value": 1499}, {"age": 0, "age_days": 3, "birth_weight": 1499}, False),
    ({"pred": "weight_gt", "value": 1499}, {"age": 0, "age_days": 3, "birth_weight": 1500}, True),
    ({"pred": "n_px_in_ge", "list": "px", "value": 2}, {"px": [PX[0]]}, False),
    ({"pred": "n_px_in_ge", "list": "px", "value": 2}, {"px": [PX[0], PX[1]]}, True),
    ({"pred": "n_px_in_ge", "list": "px", "value": 2}, {"px": [PX[1], PX[4], PX[0]]}, True),
    ({"pred": "n_px_in_ge", "list": "px", "value": 2}, {"px": [PX[0], PX[0]]}, False),  # same code twice
    ({"pred": "n_px_in_ge", "list": "px", "value": 2}, {"px": [PX[0], PX[4], PX[0]]}, False),
    ({"pred": "n_px_in_ge", "list": "px", "value": 1}, {"px": [PX[4]]}, False),
    ({"pred": "n_px_in_ge", "list": "px", "value": 0}, {"px": []}, True),
])
def test_new_predicates_at_their_boundaries(tmp_path, tree, case, hit):
    assert both(tmp_path, one_split_scheme(tree), **case) == ("AB11" if hit else "AB19")


def test_scheme_wide_named_list_is_found_from_any_rule(tmp_path):
    spec = one_split_scheme({"pred": "any_px_in", "list": "OP_ROBOT"}, named={"OP_ROBOT": [PX[5]]})
    assert both(tmp_path, spec, px=[PX[0], PX[5]]) == "AB11"
    assert both(tmp_path, spec, px=[PX[0], PX[4]]) == "AB19"


def placeholder_scheme(fail: bool):
    """MDCB (principal DX[0]) has BB1 (needs PX[0]) and the placeholder B00; MDCC, later, would
    take the same principal."""
    b00 = {"code": "B00", "entry": {"const": True}, "lists": {}, "drgs": [("B000", {"const": True})]}
    bb1 = {"code": "BB1", "entry": {"op": "and", "args": [{"pred": "has_px"}, {"pred": "ppx_in", "list": "px"}]},
           "lists": {"dx": DX[:1], "px": PX[:1]}, "drgs": [("BB19", {"const": True})]}
    cc1 = {"code": "CC1", "entry": {"const": True}, "lists": {}, "drgs": [("CC19", {"const": True})]}
    return {"mdcs": [
        {"code": "MDCC", "entry": {"pred": "pdx_in", "list": "mdc_dx"}, "list": DX[:2], "adrgs": [cc1]},
        {"code": "MDCB", "entry": {"pred": "pdx_in", "list": "mdc_dx"}, "list": DX[:1], "adrgs": [bb1, b00]},
    ], "eval_order": [2, 1],  # MDCB first although listed second: the order is data
        "cc": {}, "excl": {}, "valid_or": PX,
        "engine": {"cc_scope": "secondary", **({"fail_adrgs": ["B00"]} if fail else {})}}


def test_placeholder_fails_inside_its_mdc_and_does_not_fall_through(tmp_path):
    rs = grouper.load_ruleset(write_scheme(tmp_path / "fail", placeholder_scheme(True)))
    g, ref = grouper.Grouper(rs), ReferenceGrouper(rs)
    hit = g.group_one(sex=1, age=40, dx=[DX[0]], px=[PX[0]])
    assert (hit.status, hit.mdc, hit.drg, hit.flags) == ("grouped", "MDCB", "BB19", 0)
    r = g.group_one(sex=1, age=40, dx=[DX[0]], px=[PX[1]])
    assert (r.status, r.mdc, r.adrg, r.drg) == ("ungroupable", "MDCB", "B00", "B000")
    assert r.flags == Flag.MDC_FAIL and "占位组" in r.reason
    rr = ref.group(Case(sex=1, age=40, dx=[DX[0]], px=[PX[1]]))
    assert (rr.status.label, rr.mdc, rr.adrg, rr.drg, rr.flags) == ("ungroupable", "MDCB", "B00", "B000", Flag.MDC_FAIL)
    # a principal no MDC takes: a different flag and reason
    none = g.group_one(sex=1, age=40, dx=[DX[5]])
    assert (none.status, none.mdc, none.flags, none.reason_code) == ("ungroupable", "0000", 0, "no_mdc")
    assert r.reason_code == "mdc_fail" and none.reason == Reason.NO_MDC.text
    assert "没有 MDC 接受" in g.explain(sex=1, age=40, dx=[DX[5]]).text()
    # the same placeholder without the switch is an ordinary group
    plain = grouper.Grouper(grouper.load_ruleset(write_scheme(tmp_path / "plain", placeholder_scheme(False))))
    assert plain.group_one(sex=1, age=40, dx=[DX[0]], px=[PX[1]]).status == "grouped"


def test_fail_adrgs_must_name_existing_rules(tmp_path):
    spec = placeholder_scheme(True)
    spec["engine"]["fail_adrgs"] = ["B99"]
    with pytest.raises(RulesetError, match="fail_adrgs names unknown ADRG rule 'B99'"):
        grouper.load_ruleset(write_scheme(tmp_path / "bad", spec))


# ------------------------------------------------------------------ the bundled 3.0 scheme

@functools.cache
def g30():
    return grouper.Grouper("chs-drg-3.0")


def test_30_tables_as_the_workbook_says():
    rs = g30().ruleset
    assert [m.code for m in rs.mdcs][:3] == ["MDCA", "MDCP", "MDCZ"] and rs.mdcs[-1].code == "MDCY"
    assert sum(m.qy_rule is not None for m in rs.mdcs) == 21
    fail = rs.engine["fail_adrgs"]
    assert len(fail) == 24 and all(rs.mdcs[[m.code for m in rs.mdcs].index(rs.adrgs[a].mdc)].adrgs[-1] == a for a in fail)
    assert "O00" in fail  # sort 18 in the workbook, evaluated last
    assert len(rs.resolve_list("OP_ARB", "GB4").codes) == 5 and len(rs.resolve_list("DI_OBD", "OB1").codes) == 793
    assert {f"17.7200x00{i}" for i in range(1, 7)} <= set(rs.px_names)


def test_30_explain_names_the_age_rule_robot_code_and_list():
    g = g30()
    age = g.explain(sex=1, age=6, dx=["N48.803", "J44.802"], px=["54.6301", "01.5200"])
    assert age.result.drg == "MJ1D" and "年龄 6 岁 <= 6 岁" in age.text()
    robot = g.explain(sex=2, age=7, dx=["C18.600", "I82.800x009", "T81.000x026", "T58.x00", "I21.104", "M53.100"],
                      px=["48.6300x001", "17.4200"])
    assert robot.result.drg == "GB40" and "17.4200 腹腔镜机器人援助操作 在列表 OP_ARB 中" in robot.text()
    obd = g.explain(sex=2, age=30, dx=["A34.x00"], px=["74.0x00", "38.8609"])  # no MCC: the list decides
    assert obd.result.drg == "OB11" and "主要诊断 A34.x00 产科破伤风 在列表 DI_OBD 中" in obd.text()
    mcc = g.explain(sex=2, age=87, dx=["O23.505", "Z60.200x001", "T09.000x011", "S14.100x731", "A15.508"],
                    px=["74.4x01", "69.4900x005", "74.0x00x001"])
    assert mcc.result.drg == "OB11" and "选定: MCC: S14.100x731" in mcc.text()


def test_30_placeholder_fail_is_reported_and_explained():
    g = g30()
    case = dict(sex=2, age=0, age_days=7, birth_weight=999,
                dx=["D32.000x021", "Q04.500", "K62.822", "Z46.800x002", "J44.807", "I49.805"])
    r = g.group_one(**case)
    assert (r.status, r.mdc, r.adrg, r.drg) == ("ungroupable", "MDCP", "P00", "P000")
    assert Flag.MDC_FAIL in Flag(r.flags)
    text = g.explain(**case).text()
    assert "无法入组: 已进入 MDCP" in text and "P00 / P000" in text


def test_30_edge_file_has_fails_of_both_kinds():
    out = g30().group(read_cases(DATA / "chs-drg-3.0" / "golden_edge.csv")).to_pylist()
    fails = [r for r in out if r["status"] == "ungroupable"]
    inside = [r for r in fails if r["mdc"] != "0000"]
    assert inside and all(r["drg"].endswith("000") and r["flags"] & Flag.MDC_FAIL for r in inside)
    assert all(not r["flags"] & Flag.MDC_FAIL and r["adrg"] == "00" for r in fails if r["mdc"] == "0000")


def test_import_tool_moves_placeholders_last_and_lists_them(tmp_path):
    """tools/import_tables.py on a source whose placeholder is not last (the workbook's O00)."""
    import csv
    import json

    src = tmp_path / "src"
    write_scheme(src, placeholder_scheme(False))
    rows = list(csv.DictReader(open(src / "mdc.csv", encoding="utf-8")))
    for r in rows:
        if r["mdc"] == "MDCB":
            r["adrg_order"] = "B00|BB1"
    with open(src / "mdc.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    drg = list(csv.DictReader(open(src / "drg.csv", encoding="utf-8")))
    for r in drg:
        r["split_rule_tree"] = r["split_rule"]
    with open(src / "drg.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(drg[0]))
        w.writeheader()
        w.writerows(drg)
    (src / "scheme.json").write_text(json.dumps({"placeholder_result": "X000 (adrg X00)"}), encoding="utf-8")
    mdc = (src / "mdc.csv").read_text(encoding="utf-8").replace("name MDCB", "x").replace("name MDCC", "x")
    (src / "mdc.csv").write_text(mdc, encoding="utf-8")
    dst = tmp_path / "dst"
    subprocess.run([sys.executable, str(ROOT / "tools" / "import_tables.py"), str(src), str(dst),
                    "--name", "t", "--version", "1"], check=True)
    rs = grouper.load_ruleset(dst)
    assert rs.engine["fail_adrgs"] == ["B00"]
    assert next(m for m in rs.mdcs if m.code == "MDCB").adrgs == ("BB1", "B00")
    r = grouper.Grouper(rs).group_one(sex=1, age=40, dx=[DX[0]], px=[PX[1]])
    assert (r.status, r.drg) == ("ungroupable", "B000")

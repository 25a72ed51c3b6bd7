"""``drg explain`` for a coder (issue 14): each rule tried that did not hold says the first
condition that did not, in Chinese, with codes shown with their dictionary names; warnings name
the code they are about; a case that did not group says where grouping stopped."""

import json

from click.testing import CliRunner

from grouper.cli.main import main


def test_failed_rules_name_the_first_condition_with_code_names(grouper11):
    e = grouper11.explain(sex=1, age=40, dx=["K22.301"], px=["99.9999"])
    text = e.text()
    # MDCP is tried first and fails on the principal diagnosis, named from dx_dict.csv
    assert "MDC MDCP 新生儿及其他围产期新生儿疾病 未入组: 主要诊断 K22.301 食管破裂 不在列表 mdc_dx 中" in text
    # a surgical ADRG of MDCG fails on the procedure, which the dictionary does not know
    assert "ADRG GB1 食管、胃、十二指肠大手术 不符: 主要手术操作 99.9999（不在手术操作字典中） 不在列表 px 中" in text
    steps = e.as_dict()["steps"]
    failed = [s for s in steps if s["step"] in ("mdc", "adrg", "drg") and not s["matched"]]
    assert failed and all(s.get("because") for s in failed)


def test_warnings_name_the_offending_code(grouper11):
    e = grouper11.explain(sex=1, age=40, dx=["K22.301", "NOT.A.CODE", ""], px=["", "99.9999"])
    assert e.warnings == ["其他诊断 NOT.A.CODE 不在方案的诊断字典中", "其他诊断第 3 项为空，已忽略",
                          "主要手术操作第 1 项为空，已忽略", "其他手术操作 99.9999 不在方案的手术操作字典中"]
    assert all(f"警告: {w}" in e.text() for w in e.warnings)


def test_ungrouped_case_says_where_grouping_stopped(grouper11):
    e = grouper11.explain(sex=1, age=40, dx=["Z99.999"])
    assert e.result.reason_code == "no_mdc"
    assert "没有 MDC 接受该病例" in e.text() and "主要诊断 Z99.999（不在诊断字典中） 不在列表 mdc_dx 中" in e.text()
    assert e.text().count("没有 MDC 接受该病例") == 1  # said once, not again under 原因/提示


def test_cli_explain_prices_the_case(tmp_path):
    w = tmp_path / "w.csv"
    w.write_text("drg,rw,mean_cost,mean_los,n\nGZ15,0.8,8000,7,100\n", encoding="utf-8")
    args = ["explain", "-r", "chs-drg-1.1", "--sex", "1", "--age", "40", "--dx", "K22.301", "--los", "7",
            "-w", str(w), "--pack", "illustrative-2024", "--cost", "7200", "--patient-share", "1900"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "病例类型 正常病例" in r.output and "预计支付 8,400.00 元" in r.output and "基金支付 6,500.00 元" in r.output
    r = CliRunner().invoke(main, [*args, "--json"])
    pay = json.loads(r.output)["payment"]
    assert (pay["payment_fen"], pay["case_type"], pay["rw"]) == (840_000, "normal", 0.8)
    r = CliRunner().invoke(main, args[:-6])  # weights without a pack
    assert r.exit_code == 2 and "--pack" in r.output

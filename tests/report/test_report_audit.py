"""The audit report: league table, peer plot and the flagged hospital's cases, escaped."""

import pyarrow as pa

from grouper.audit import FINDING_SCHEMA, HOSPITAL_SCHEMA
from grouper.report.audit import write_audit_report


def test_report_marks_the_flagged_hospital_and_shows_its_cases(tmp_path):
    rows = []
    for i, (h, peer, v) in enumerate([("H1", "三级", 0.4), ("H2", "三级", 0.2), ("<H3>", "二级", 0.21),
                                      ("H4", "二级", 0.19)]):
        rows.append(dict(screen="split", screen_name="分解住院（二次入院）", hospital=h, peer=peer, cases=1000,
                         observed=v * 1000, expected=200.0, value=v, expected_value=0.2, peer_median=0.2,
                         percentile=100.0 if i in (0, 2) else 50.0, z=9.0 - i, p_value=1e-9 if i == 0 else 0.3,
                         flagged=i == 0, rank=i + 1))
    hospitals = pa.Table.from_pylist(rows, schema=HOSPITAL_SCHEMA)
    samples = pa.Table.from_pylist([dict(row=7, case_id="c7", hospital="H1", code="AS01", severity="warning",
                                         item="split", score=0.9, message="同一患者…疑似分解住院 <b>")],
                                   schema=FINDING_SCHEMA)
    out = write_audit_report(hospitals, samples, {"AS01": 1}, tmp_path / "a.html", screen_codes={"split": "AS01"},
                             edit_names={"AS01": "分解住院"})
    page = out.read_text(encoding="utf-8")
    assert "标记医院 1 家：H1" in page and "class=hi>H1" in page
    assert "疑似分解住院 &lt;b&gt;" in page and "&lt;H3&gt;" in page
    assert "data:image/png;base64" in page


def test_empty_audit_report(tmp_path):
    out = write_audit_report(HOSPITAL_SCHEMA.empty_table(), FINDING_SCHEMA.empty_table(), {}, tmp_path / "e.html")
    assert "病例审核规则" in out.read_text(encoding="utf-8")


def test_report_lists_departments_codes_and_the_explanations(tmp_path):
    rows = []
    for i, (h, d) in enumerate([("H1", "R02"), ("H1", "E01"), ("H2", "R02")]):
        rows.append(dict(screen="dept_split", screen_name="科室：分解住院（二次入院）", hospital=h, peer=f"三级/{d}",
                         cases=500, observed=20.0 - i, expected=5.0, value=0.04, expected_value=0.01, peer_median=0.01,
                         percentile=100.0, z=6.0 - i, p_value=1e-8, flagged=i == 0, rank=i + 1, department=d,
                         message="H1 R02科室 科室：分解住院（二次入院）：<说明>" if i == 0 else None))
    rows.append(dict(screen="lifting_dx", screen_name="升组次要诊断", hospital="H1", peer="三级", cases=900,
                     observed=40.0, expected=4.0, value=0.04, expected_value=0.004, peer_median=0.004, percentile=100.0,
                     z=18.0, p_value=1e-20, flagged=True, rank=1, item="J96.000", message="次要诊断 J96.000 …"))
    hospitals = pa.Table.from_pylist(rows, schema=HOSPITAL_SCHEMA)
    out = write_audit_report(hospitals, FINDING_SCHEMA.empty_table(), {}, tmp_path / "d.html",
                             screen_codes={"dept_split": "AS01", "lifting_dx": "AE95"})
    page = out.read_text(encoding="utf-8")
    assert "<th>科室</th>" in page and "R02" in page and "&lt;说明&gt;" in page
    assert "<th>项目</th>" in page and "J96.000" in page and "item=J96.000" in page

"""Excel workbooks as case files: the first sheet or --sheet NAME, numbers and dates typed, the
wide 病案首页 layout detected as for CSV, and folders holding .xlsx read (any other file in
a folder named, never skipped silently)."""

from __future__ import annotations

import datetime

import pyarrow as pa
import pytest

import grouper
from grouper._util.errors import InputError
from grouper.io import CaseInputs, CaseSource, expand_inputs, open_source
from grouper.jobs.group import group_files

from exports import write_csv, write_xlsx


@pytest.fixture(scope="module")
def g():
    return grouper.Grouper("chs-drg-1.1")


def _read(path, **kw) -> pa.Table:
    s = CaseSource.open(path, **kw)
    return pa.Table.from_batches(list(s.read(None)), schema=s.schema)


def test_xlsx_first_sheet_typed_and_wide_layout(tmp_path):
    s = CaseSource.open(write_xlsx(tmp_path / "export.xlsx"))
    assert s.plan.layout == "chinese" and s.num_rows == 30
    t = pa.Table.from_batches(list(s.read(None)), schema=s.schema)
    assert t.schema.field("age").type == pa.int64()  # whole numbers typed as integers, not 65.0
    assert t.schema.field("住院总费用").type == pa.int64()
    assert t.schema.field("出院日期").type in (pa.timestamp("ms"), pa.date32(), pa.timestamp("us"))
    assert t["出院日期"][0].as_py().date() == datetime.date(2024, 1, 1)
    assert t.schema.field("dx").type == pa.list_(pa.string())
    assert t["dx"][0].as_py() == ["K22.301", "K11.901", "E11.900", "I10.x05"]


def test_xlsx_groups_like_the_csv_export(g, tmp_path):
    a = group_files(g, [write_xlsx(tmp_path / "export.xlsx")], keep=["姓名"])[1]
    b = group_files(g, [write_csv(tmp_path / "export.csv", "utf-8")], keep=["姓名"])[1]
    cols = ["status", "drg", "姓名"]
    assert a.select(cols).equals(b.select(cols)) and a.num_rows == 30
    assert a["case_id"].cast(pa.string()).equals(b["case_id"])


def test_sheet_by_name_and_unknown_sheet(g, tmp_path):
    book = write_xlsx(tmp_path / "two.xlsx", first="汇总")
    with pytest.raises(InputError, match="missing required column"):  # the first sheet is the summary
        group_files(g, [book])
    assert _read(book, sheet="病案首页").num_rows == 30
    assert group_files(g, CaseInputs([book], sheet="病案首页"))[0].rows == 30
    with pytest.raises(InputError, match=r"no sheet '病历' \(--sheet\); the workbook has: '汇总', '病案首页'"):
        open_source(book, sheet="病历")


def test_not_a_workbook_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="bad.xlsx: unreadable Excel workbook") as e:
        open_source(bad)
    assert "\n" not in str(e.value)


def test_folder_with_xlsx_reads_it_and_names_every_skipped_file(g, tmp_path):
    """Before: a folder of .xlsx exports was 'no .csv/.parquet files', the workbooks skipped."""
    write_xlsx(tmp_path / "a.xlsx")
    write_csv(tmp_path / "b.csv", "gbk")
    for name in ("readme.txt", "~$a.xlsx", ".partial.csv"):
        (tmp_path / name).write_text("x")
    warnings = []
    files = expand_inputs([tmp_path], warn=warnings.append)
    assert files == [str(tmp_path / "a.xlsx"), str(tmp_path / "b.csv")]
    assert len(warnings) == 1
    for name in ("readme.txt", "~$a.xlsx", ".partial.csv", "3 file(s)"):
        assert name in warnings[0]
    summary, table = group_files(g, [tmp_path])
    assert summary.rows == 60
    assert table["drg"].slice(0, 30).equals(table["drg"].slice(30))


def test_folder_warning_goes_to_stderr_by_default(tmp_path, capsys):
    write_xlsx(tmp_path / "a.xlsx")
    (tmp_path / "notes.docx").write_text("x")
    assert expand_inputs([tmp_path]) == [str(tmp_path / "a.xlsx")]
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and "notes.docx" in err and err.count("\n") == 1

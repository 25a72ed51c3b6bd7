"""Hospital exports as people send them, written inside the tests from tests/data (no binary
fixtures in the repository): the 30 cases of chs-drg-1.1/sample.csv as a wide 病案首页 with
Chinese column names and Chinese text, as a CSV in any encoding or as an .xlsx workbook."""

from __future__ import annotations

import csv
import datetime
import io
from pathlib import Path

from conftest import DATA

SAMPLE = DATA / "chs-drg-1.1" / "sample.csv"
DEPTS = ["普通外科", "心血管内科", "呼吸内科", "骨科", "妇产科", "儿科·新生儿"]  # '·' is 2 bytes in GBK, not 3
NAMES = ["张三", "李四", "王五", "赵六", "钱七", "孙八", "周九", "吴十", "郑一", "欧阳娜娜"]


def export_rows(n_dx: int = 15, n_px: int = 6) -> tuple[list[str], list[list]]:
    """(header, rows) of the sample cases in the Chinese wide layout, with a patient name, a
    department name, a discharge date and a cost (for `drg weights`)."""
    with open(SAMPLE, encoding="utf-8") as fh:
        cases = list(csv.DictReader(fh))
    header = ["病案号", "姓名", "性别", "年龄", "年龄（天）", "新生儿出生体重", "出院科别", "实际住院天数", "离院方式",
              "出院日期", "住院总费用", "主要诊断编码", *(f"其他诊断编码{i}" for i in range(1, n_dx + 1)),
              "主要手术操作编码", *(f"其他手术操作编码{i}" for i in range(1, n_px + 1))]
    rows = []
    for i, c in enumerate(cases):
        dx = [x for x in c["dx"].split("|") if x]
        px = [x for x in c["px"].split("|") if x]
        dx += [""] * (1 + n_dx - len(dx))
        px += [""] * (1 + n_px - len(px))
        rows.append([c["case_id"], NAMES[i % len(NAMES)], c["sex"], c["age"], c["age_days"], c["birth_weight"],
                     DEPTS[i % len(DEPTS)], c["los"], c["discharge"], datetime.date(2024, 1 + i % 12, 1 + i % 28),
                     1000 + 137 * i, *dx, *px])
    return header, rows


def write_csv(path: Path, encoding: str = "gbk") -> Path:
    header, rows = export_rows()
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    w.writerows([[v.isoformat() if isinstance(v, datetime.date) else v for v in r] for r in rows])
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def write_xlsx(path: Path, sheet: str = "病案首页", first: str | None = None) -> Path:
    """The export as a workbook (xlsxwriter, a test-only dependency): numbers as numbers, the
    discharge date as a date cell; ``first`` puts an unrelated sheet of that name before it."""
    import xlsxwriter

    header, rows = export_rows()
    with xlsxwriter.Workbook(str(path)) as wb:
        if first is not None:
            wb.add_worksheet(first).write_row(0, 0, ["说明", "本表为汇总"])
        ws = wb.add_worksheet(sheet)
        date = wb.add_format({"num_format": "yyyy-mm-dd"})
        ws.write_row(0, 0, header)
        for r, row in enumerate(rows, start=1):
            for c, v in enumerate(row):
                if isinstance(v, datetime.date):
                    ws.write_datetime(r, c, datetime.datetime(v.year, v.month, v.day), date)
                elif header[c] in ("性别", "年龄", "年龄（天）", "新生儿出生体重", "实际住院天数", "住院总费用") and str(v).strip():
                    ws.write_number(r, c, float(v))
                elif str(v) != "":
                    ws.write_string(r, c, str(v))
    return path

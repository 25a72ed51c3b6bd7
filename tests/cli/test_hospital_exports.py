"""README's walk-through on the files hospitals and bureaus send: a GBK CSV and an .xlsx export of
the wide 病案首页 (written here from tests/data), grouped and weighted through `drg`, a folder of
both, and the shared input options (--encoding, --sheet, --map, --layout) of every command."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from grouper.cli.main import main

from exports import SAMPLE, write_csv, write_xlsx

READERS = ["group", "regroup", "weights", "indices", "recalibrate", "settle", "dip catalogue", "dip assign",
           "dip settle", "audit"]


def drg(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def expected(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "ref.parquet"
    r = drg("group", SAMPLE, "-r", "chs-drg-1.1", "-o", out)
    assert r.exit_code == 0, r.output
    return pq.read_table(out)


@pytest.mark.parametrize("kind", ["gbk.csv", "gb18030.csv", "utf-8-sig.csv", "xlsx"])
def test_walk_through_groups_a_hospital_export(tmp_path, expected, kind):
    src = write_xlsx(tmp_path / "病案首页.xlsx") if kind == "xlsx" else \
        write_csv(tmp_path / "病案首页.csv", kind.removesuffix(".csv"))
    out = tmp_path / "grouped.parquet"
    r = drg("group", src, "-r", "chs-drg-1.1", "-o", out, "--keep", "姓名")
    assert r.exit_code == 0, r.output
    assert "wide 病案首页 layout" in r.stderr
    t = pq.read_table(out)
    assert t["drg"].equals(expected["drg"]) and t["status"].equals(expected["status"])
    assert t["姓名"][9].as_py() == "欧阳娜娜"


def test_walk_through_weights_from_a_folder_of_exports(tmp_path):
    folder = tmp_path / "2024"
    folder.mkdir()
    write_csv(folder / "一月.csv", "gbk")
    write_xlsx(folder / "二月.xlsx")
    (folder / "说明.docx").write_text("x")
    out = tmp_path / "weights.csv"
    r = drg("weights", folder, "-r", "chs-drg-1.1", "-o", out, "--cost-column", "住院总费用", "--min-cases", "2")
    assert r.exit_code == 0, r.output
    assert "warning:" in r.stderr and "说明.docx" in r.stderr
    w = pcsv.read_csv(out)
    assert sum(w["n"].to_pylist()) + sum(w["n_trimmed"].to_pylist()) <= 60 and w.num_rows > 0


def test_gbk_export_with_a_wrong_encoding_is_a_one_line_usage_error(tmp_path):
    src = write_csv(tmp_path / "export.csv", "gbk")
    r = drg("group", src, "--encoding", "utf-8", "-o", tmp_path / "o.parquet")
    assert r.exit_code == 2 and "byte offset 0 (0xB2)" in r.output and "--encoding" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize("args, message", [
    (["--encoding", "klingon"], "--encoding klingon: unknown encoding"),
    (["--sheet", "病历"], "no sheet '病历' (--sheet)"),
    (["--map", "diagnosis=zd"], "unknown column name(s) to map: diagnosis"),
])
def test_bad_input_options_exit_2(tmp_path, args, message):
    r = drg("group", write_xlsx(tmp_path / "x.xlsx"), *args, "-o", tmp_path / "o.parquet")
    assert r.exit_code == 2 and message in r.output, r.output


def test_missing_column_through_the_cli_names_the_closest(tmp_path):
    src = tmp_path / "his.csv"
    src.write_text("case_id,Sex,age,dx,px\n1,1,65,C61.x00,60.5x02\n", encoding="gbk")
    r = drg("group", src, "-o", tmp_path / "o.parquet")
    assert r.exit_code == 2
    assert "sex <- 'Sex' (--map sex=Sex)" in r.output and "columns found (5): case_id, Sex, age, dx, px" in r.output
    r = drg("group", src, "--map", "sex=Sex", "-o", tmp_path / "o.parquet")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("command", READERS)
def test_every_command_that_reads_cases_takes_the_same_input_options(command):
    text = drg(*command.split(), "--help").output
    for option in ("INPUT...", "--map CANONICAL=SOURCE", "--map-file", "--layout", "--encoding", "--sheet"):
        assert option in text, (command, option)
    assert "Reading cases" not in text  # the vocabulary is explained once, in `drg --help`


def test_top_level_help_explains_the_input_vocabulary_once():
    text = drg("--help").output
    assert text.count("--encoding") == 1 and text.count("--sheet") == 1 and "GB18030" in text
    for command in READERS:
        assert command.split()[0] in text


def test_encoding_and_sheet_are_refused_with_workers(tmp_path):
    r = drg("group", SAMPLE, "--encoding", "gbk", "--workers", "2", "-o", tmp_path / "out")
    assert r.exit_code == 2 and "--encoding do not apply with --workers" in r.output
    pq.write_table(pa.table({"x": [1]}), tmp_path / "p.parquet")
    r = drg("weights", tmp_path / "p.parquet", "--map", "dx=x", "--workers", "2", "-o", tmp_path / "w.csv")
    assert r.exit_code == 2 and "--map/--map-file do not apply" in r.output

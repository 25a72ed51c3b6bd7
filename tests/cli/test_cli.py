"""The ``drg`` command line, driven through click's CliRunner: exit codes, one-line errors,
and outputs that match the national reference grouper."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import grouper
from grouper.cli.main import main
from grouper.engine.grouper import OUTPUT_COLUMNS

from conftest import DATA as TEST_DATA, ROOT

DATA = TEST_DATA / "chs-drg-1.1"
RULES = ROOT / "rules" / "chs-drg-1.1"
HEADER = "case_id,sex,age,age_days,birth_weight,dept,los,discharge,dx,px\n"
STATUS = {"SUCCESS": "grouped", "CHECK_FAILED": "invalid", "FAIL": "ungroupable"}
PROSTATE = {"sex": 1, "age": 65, "dx": ["C61.x00"], "px": ["60.5x02"]}


def read_text_csv(path: Path) -> pa.Table:
    with open(path, encoding="utf-8") as fh:
        names = [n.strip('"') for n in fh.readline().strip().split(",")]
    return pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
        column_types={c: pa.string() for c in names}, strings_can_be_null=False))


def expected(name: str) -> list[tuple]:
    exp = read_text_csv(DATA / f"{name}_expected.csv")
    return [(c, STATUS[s], m, a, d) for c, s, m, a, d in zip(
        *(exp[k].to_pylist() for k in ("case_id", "status_code", "mdc", "adrg", "drg")))]


def got(table: pa.Table) -> list[tuple]:
    return list(zip(table["case_id"].cast(pa.string()).to_pylist(),
                    *(table[k].to_pylist() for k in ("status", "mdc", "adrg", "drg"))))


@pytest.fixture(scope="module")
def g():
    # builds (and caches) the compiled ruleset once, so each CLI call below is quick
    return grouper.Grouper("chs-drg-1.1")


@pytest.fixture
def runner(monkeypatch, g):
    monkeypatch.delenv("DRG_RULES_PATH", raising=False)
    return CliRunner()


#: Commands that group; this file's cases are CHS-DRG 1.1 cases (tests/data/chs-drg-1.1), so they
#: run under chs-drg-1.1 unless a test names a ruleset (test_default_ruleset_is_the_national_current).
_GROUPING = {"group", "explain"}


def invoke(runner, *args, **kw):
    args = [str(a) for a in args]
    if args and args[0] in _GROUPING and not {"-r", "--ruleset", "--help", "-h"} & set(args):
        args += ["-r", "chs-drg-1.1"]
    return runner.invoke(main, args, **kw)


def test_default_ruleset_is_the_national_current(tmp_path):
    out = tmp_path / "o.parquet"
    result = CliRunner().invoke(main, ["group", str(DATA / "sample.csv"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert pq.read_schema(out).metadata[b"drg.ruleset"].startswith(b"chs-drg-2.0")
    assert "[default: chs-drg-2.0]" in " ".join(CliRunner().invoke(main, ["group", "--help"]).stdout.split())
    regroup_help = " ".join(CliRunner().invoke(main, ["regroup", "--help"]).stdout.split())
    assert "[default: chs-drg-2.0]" in regroup_help and "[default: chs-drg-3.0]" in regroup_help


def one_line_error(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error:")
    assert "Traceback" not in result.output
    return lines[0]


def usage_error(result) -> str:
    """The one 'Error:' line of a usage error (exit 2; click prints the usage line above it)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


# ----------------------------------------------------------------------------- group

@pytest.mark.parametrize("name", ["sample", "golden_random", "golden_edge"])
@pytest.mark.parametrize("ext", [".csv", ".parquet"])
def test_group_reference_files_match_expected(runner, tmp_path, name, ext):
    out = tmp_path / f"{name}{ext}"
    result = invoke(runner, "group", DATA / f"{name}.csv", "-o", out)
    assert result.exit_code == 0, result.output
    assert result.exception is None
    table = pq.read_table(out) if ext == ".parquet" else read_text_csv(out)
    names = [c for c in OUTPUT_COLUMNS if c.endswith("_name")]  # in CSV, not in Parquet
    assert table.column_names == [c for c in OUTPUT_COLUMNS if ext == ".csv" or c not in names]
    assert got(table) == expected(name)
    n = len(expected(name))
    assert f"{n} cases" in result.stderr
    if ext == ".parquet":
        md = pq.read_schema(out).metadata
        assert md[b"drg.ruleset"] == b"chs-drg-1.1" and md[b"drg.names"] == b"drg groups -r chs-drg-1.1"


def test_group_parquet_input(runner, tmp_path):
    src = read_text_csv(DATA / "golden_edge.csv")
    split = lambda col: [s.split("|") if s.strip() else [] for s in col.to_pylist()]  # noqa: E731
    src = src.set_column(src.schema.get_field_index("dx"), "dx", pa.array(split(src["dx"]), pa.list_(pa.string())))
    src = src.set_column(src.schema.get_field_index("px"), "px", pa.array(split(src["px"]), pa.list_(pa.string())))
    pq.write_table(src, tmp_path / "edge.parquet")
    out = tmp_path / "edge_out.csv"
    result = invoke(runner, "group", tmp_path / "edge.parquet", "-o", out)
    assert result.exception is None, repr(result.exception)
    assert result.exit_code == 0, result.output
    assert got(read_text_csv(out)) == expected("golden_edge")


def test_group_malformed_rows_are_invalid_rows_in_order(runner, tmp_path):
    src = tmp_path / "messy.csv"
    src.write_text(HEADER
                   + "a1,1,65,,,,,,C61.x00,60.5x02\n"
                   + "a2,,65,,,,,,C61.x00,60.5x02\n"      # empty sex
                   + "a3,1,abc,,,,,,C61.x00,60.5x02\n"    # text in age
                   + "a4,1,65,,,,,,,60.5x02\n"            # empty dx
                   + "a5,1,65,,,,,,C61.x00,60.5x02\n")
    out = tmp_path / "messy_out.csv"
    result = invoke(runner, "group", src, "-o", out)
    assert result.exit_code == 0, result.output
    rows = read_text_csv(out).to_pylist()
    assert [r["case_id"] for r in rows] == ["a1", "a2", "a3", "a4", "a5"]
    assert [r["status"] for r in rows] == ["grouped", "invalid", "invalid", "invalid", "grouped"]
    assert rows[0]["drg"] == rows[4]["drg"] == "MA19"
    flags = [grouper.engine.grouper.Flag(int(r["flags"])) for r in rows]
    assert grouper.engine.grouper.Flag.SEX_INVALID in flags[1]
    assert grouper.engine.grouper.Flag.BAD_NUMBER in flags[2] and grouper.engine.grouper.Flag.AGE_MISSING in flags[2]
    assert grouper.engine.grouper.Flag.NO_DIAGNOSIS in flags[3]
    assert all(r["reason"] for r in rows[1:4])
    assert "grouped 2, invalid 3" in result.stderr


def test_group_prints_a_table_without_output(runner):
    result = invoke(runner, "group", DATA / "sample.csv", "--limit", "5")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["case_id", "status", "mdc", "adrg", "drg"]
    assert lines[1].split()[:5] == ["22058878", "grouped", "MDCG", "GZ1", "GZ13"]
    assert len(lines) == 1 + 5 + 1 and lines[-1].startswith("... 25 more rows")
    assert "30 cases" in result.stderr


def test_group_keep_and_threads(runner, tmp_path):
    out = tmp_path / "kept.csv"
    result = invoke(runner, "group", DATA / "sample.csv", "-o", out, "--keep", "dept", "--keep", "los",
                    "-t", "1", "--batch-size", "7")
    assert result.exit_code == 0, result.output
    table = read_text_csv(out)
    assert table.column_names == [*OUTPUT_COLUMNS, "dept", "los"]
    assert table["los"].to_pylist() == read_text_csv(DATA / "sample.csv")["los"].to_pylist()
    assert got(table) == expected("sample")


@pytest.mark.parametrize("col", ["sex", "age", "dx", "px"])
def test_group_missing_required_column_exits_2(runner, tmp_path, col):
    src = read_text_csv(DATA / "sample.csv").drop_columns([col])
    path = tmp_path / f"no_{col}.csv"
    pcsv.write_csv(src, path)
    out = tmp_path / "out.csv"
    result = invoke(runner, "group", path, "-o", out)
    assert result.exit_code == 2, result.output
    assert "missing required column" in result.stderr and col in result.stderr
    assert not out.exists()


def test_group_nonexistent_input_exits_1(runner, tmp_path):
    result = invoke(runner, "group", tmp_path / "nope.csv", "-o", tmp_path / "out.csv")
    assert result.exit_code == 1
    assert "nope.csv" in one_line_error(result)
    assert not (tmp_path / "out.csv").exists()


def test_group_corrupt_parquet_exits_1(runner, tmp_path):
    bad = tmp_path / "junk.parquet"
    bad.write_bytes(b"PAR1" + b"\x13" * 500)
    result = invoke(runner, "group", bad)
    assert result.exit_code == 1
    assert "junk.parquet" in one_line_error(result)


def test_group_broken_csv_exits_1(runner, tmp_path):
    bad = tmp_path / "broken.csv"
    bad.write_text(HEADER + "1,1,65,,,,,,C61.x00,60.5x02,surplus\n")
    result = invoke(runner, "group", bad, "-o", tmp_path / "out.csv")
    assert result.exit_code == 1
    assert "broken.csv" in one_line_error(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.csv"]


def test_group_unknown_ruleset_exits_1(runner, tmp_path):
    result = invoke(runner, "group", DATA / "sample.csv", "-r", "chs-drg-9.9", "-o", tmp_path / "o.csv")
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "chs-drg-9.9" in line and "no such ruleset" in line
    assert not (tmp_path / "o.csv").exists()


def test_group_existing_output_without_overwrite_exits_1(runner, tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("precious\n")
    result = invoke(runner, "group", DATA / "sample.csv", "-o", out)
    assert result.exit_code == 1
    assert "--overwrite" in one_line_error(result)
    assert out.read_text() == "precious\n"
    result = invoke(runner, "group", DATA / "sample.csv", "-o", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert got(read_text_csv(out)) == expected("sample")


def test_group_unknown_output_type_exits_1(runner, tmp_path):
    result = invoke(runner, "group", DATA / "sample.csv", "-o", tmp_path / "out.txt")
    assert result.exit_code == 1
    assert "unknown file type" in one_line_error(result)


# ----------------------------------------------------------------------------- rulesets

@pytest.fixture
def broken_rules(tmp_path) -> tuple[Path, str]:
    """A copy of the bundled ruleset whose drg.csv lacks a DRG that adrg.csv orders."""
    folder = tmp_path / "rules" / "chs-drg-broken"
    shutil.copytree(RULES, folder)
    lines = (folder / "drg.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    victim = next(i for i, ln in enumerate(lines) if ln.startswith("AB19,"))
    assert "AB19" in (folder / "adrg.csv").read_text(encoding="utf-8")
    del lines[victim]
    (folder / "drg.csv").write_text("".join(lines), encoding="utf-8")
    return folder, "AB19"


def test_broken_ruleset_folder_exits_1_with_one_line(runner, tmp_path, broken_rules):
    folder, drg = broken_rules
    result = invoke(runner, "group", DATA / "sample.csv", "-r", folder, "-o", tmp_path / "o.csv")
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "adrg.csv" in line or "drg.csv" in line
    assert drg in line
    assert not (tmp_path / "o.csv").exists()

    result = invoke(runner, "validate-ruleset", folder)
    assert result.exit_code == 1
    line = one_line_error(result)
    assert ("adrg.csv" in line or "drg.csv" in line) and drg in line


def test_rulesets_lists_bundled_ruleset(runner):
    result = invoke(runner, "rulesets")
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.stdout.splitlines() if ln[2:].startswith("chs-drg-1.1 "))
    assert "26 MDC" in line and "376 ADRG" in line and "628 DRG" in line
    assert grouper.Grouper("chs-drg-1.1").compiled.fingerprint[:16] in line


def test_rulesets_json(runner):
    result = invoke(runner, "rulesets", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    entry = next(r for r in rows if r["name"] == "chs-drg-1.1")
    assert (entry["mdc"], entry["adrg"], entry["drg"]) == (26, 376, 628)
    assert entry["version"] == "1.1"
    assert len(entry["fingerprint"]) == 64


def test_rulesets_reports_a_broken_ruleset_on_the_path(runner, monkeypatch, broken_rules):
    folder, drg = broken_rules
    monkeypatch.setenv("DRG_RULES_PATH", str(folder.parent))
    result = invoke(runner, "rulesets")
    assert result.exit_code == 0, result.output
    broken = next(ln for ln in result.stdout.splitlines() if ln[2:].startswith("chs-drg-broken"))
    assert "BROKEN" in broken and drg in broken
    assert any(ln[2:].startswith("chs-drg-1.1 ") and "628 DRG" in ln for ln in result.stdout.splitlines())
    rows = json.loads(invoke(runner, "rulesets", "--json").stdout)
    status = {r["name"]: "error" in r for r in rows}
    assert status["chs-drg-broken"] is True and status["chs-drg-1.1"] is False and status["chs-drg-2.0"] is False


def test_validate_bundled_ruleset(runner):
    result = invoke(runner, "validate-ruleset", RULES)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: chs-drg-1.1")
    assert "26 MDC, 376 ADRG, 628 DRG" in result.stdout


def test_validate_ruleset_needs_a_folder(runner, tmp_path):
    result = invoke(runner, "validate-ruleset", tmp_path / "missing")
    assert result.exit_code == 2


# ----------------------------------------------------------------------------- explain

def test_explain_json_argument_prints_final_drg(runner):
    result = invoke(runner, "explain", json.dumps(PROSTATE))
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert "MA19" in last and "MDCM" in last


def test_explain_with_options(runner):
    result = invoke(runner, "explain", "--sex", "1", "--age", "65", "--dx", "C61.x00", "--px", "60.5x02")
    assert result.exit_code == 0, result.output
    assert "DRG MA19" in result.stdout
    assert result.stdout == invoke(runner, "explain", json.dumps(PROSTATE)).stdout


def test_explain_json_output(runner):
    result = invoke(runner, "explain", "--json", json.dumps(PROSTATE))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {"ruleset", "result", "steps"} <= set(doc)
    assert doc["result"]["drg"] == "MA19" and doc["result"]["status"] == "grouped"
    assert doc["ruleset"].startswith("chs-drg-1.1")
    assert any(s["step"] == "drg" and s.get("matched") and s["drg"] == "MA19" for s in doc["steps"])
    one = grouper.Grouper("chs-drg-1.1").group_one(**PROSTATE)
    assert doc["result"] == json.loads(json.dumps(one.as_dict()))


def test_explain_from_stdin_and_invalid_case(runner):
    case = {"sex": 1, "age": "abc", "dx": "C61.x00", "px": ""}
    result = invoke(runner, "explain", "--json", "-", input=json.dumps(case))
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)["result"]
    assert r["status"] == "invalid" and r["drg"] == "0000"
    flags = grouper.engine.grouper.Flag(r["flags"])
    assert grouper.engine.grouper.Flag.BAD_NUMBER in flags and grouper.engine.grouper.Flag.AGE_MISSING in flags


@pytest.mark.parametrize("args", [
    ["{not json"],
    ["[1, 2]"],
    [json.dumps({**PROSTATE, "colour": "red"})],
    ["--sex", "1", "--age", "65"],
])
def test_explain_usage_errors_exit_2(runner, args):
    result = invoke(runner, "explain", *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_explain_unknown_ruleset_exits_1(runner):
    result = invoke(runner, "explain", "-r", "nope-1.0", json.dumps(PROSTATE))
    assert result.exit_code == 1
    assert "nope-1.0" in one_line_error(result)


# ----------------------------------------------------------------------------- help

@pytest.mark.parametrize("cmd", [[], ["group"], ["explain"], ["rulesets"], ["validate-ruleset"]])
def test_help(runner, cmd):
    result = invoke(runner, *cmd, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    short = invoke(runner, *cmd, "-h")
    assert short.exit_code == 0 and short.stdout == result.stdout


def test_version(runner):
    result = invoke(runner, "--version")
    assert result.exit_code == 0
    assert grouper.__version__ in result.stdout


# ----------------------------------------------------------------------------- other schemes

STATUS = {"SUCCESS": "grouped", "CHECK_FAILED": "invalid", "FAIL": "ungroupable", "QY": "ambiguous"}


@pytest.mark.parametrize("ruleset,name", [("chs-drg-2.0", "golden_edge"), ("changzhou-2022", "golden"),
                                          ("zhejiang-2022", "golden"), ("anyang-2021", "golden")])
def test_group_other_schemes_from_the_reference_csv_format(runner, tmp_path, ruleset, name):
    data = DATA.parent / ruleset
    out = tmp_path / "out.csv"
    result = invoke(runner, "group", data / f"{name}.csv", "-o", out, "--ruleset", ruleset)
    assert result.exit_code == 0, result.output
    exp = read_text_csv(data / f"{name}_expected.csv").to_pylist()
    assert got(read_text_csv(out)) == [(r["case_id"], STATUS[r["status_code"]], r["mdc"], r["adrg"], r["drg"])
                                       for r in exp]
    assert f"under {ruleset}" in result.stderr


def test_scheme_that_reads_los_needs_the_column(runner, tmp_path):
    src = read_text_csv(DATA.parent / "changzhou-2022" / "golden.csv").drop_columns(["los"])
    pcsv.write_csv(src, tmp_path / "no_los.csv")
    result = invoke(runner, "group", tmp_path / "no_los.csv", "-o", tmp_path / "o.csv", "--ruleset", "changzhou-2022")
    assert result.exit_code == 2 and "los" in result.stderr
    # the national scheme does not read it
    assert invoke(runner, "group", tmp_path / "no_los.csv", "-o", tmp_path / "o2.csv").exit_code == 0


# ----------------------------------------------------------------------------- several inputs, report, mapping

WIDE = DATA.parent / "wide_sample.csv"


def test_group_several_files_folders_and_globs_in_order(runner, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i, name in enumerate(["sample", "golden_edge", "sample"]):  # names sort in this order
        shutil.copy(DATA / f"{name}.csv", folder / f"{i:02d}_{name}.csv")
    (folder / "README.txt").write_text("not data")
    want = expected("sample") + expected("golden_edge") + expected("sample")
    for args in ([folder], [folder / "*.csv"], sorted(folder.glob("*.csv"))):
        out = tmp_path / "out.parquet"
        result = invoke(runner, "group", *args, "-o", out, "--overwrite", "--batch-size", "7")
        assert result.exit_code == 0, result.output
        assert got(pq.read_table(out)) == want
        assert f"{len(want)} cases" in result.stderr
    result = invoke(runner, "group", DATA / "sample.csv", folder / "00_sample.csv", "--limit", "100")
    assert result.exit_code == 0 and result.stdout.count("22058878") == 2


def test_group_mixed_formats_batch_boundaries_keep_row_order(runner, tmp_path):
    """A Parquet file (integer case ids, lists) between two CSVs, 7 rows per batch."""
    src = read_text_csv(DATA / "sample.csv")
    split = lambda col: pa.array([s.split("|") if s else [] for s in col.to_pylist()],  # noqa: E731
                                 pa.list_(pa.string()))
    src = src.set_column(0, "case_id", src["case_id"].cast(pa.int64()))
    src = src.set_column(src.schema.get_field_index("dx"), "dx", split(src["dx"]))
    src = src.set_column(src.schema.get_field_index("px"), "px", split(src["px"]))
    pq.write_table(src, tmp_path / "mid.parquet", row_group_size=11)
    out = tmp_path / "out.csv"
    result = invoke(runner, "group", DATA / "golden_random.csv", tmp_path / "mid.parquet", DATA / "sample.csv",
                    "-o", out, "--batch-size", "7")
    assert result.exit_code == 0, result.output
    assert got(read_text_csv(out)) == expected("golden_random") + expected("sample") + expected("sample")


def test_group_missing_one_of_several_inputs_exits_1(runner, tmp_path):
    for missing in (tmp_path / "nope.csv", tmp_path / "*.parquet"):
        result = invoke(runner, "group", DATA / "sample.csv", missing, "-o", tmp_path / "out.csv")
        assert result.exit_code == 1
        assert str(missing) in one_line_error(result)
    assert list(tmp_path.iterdir()) == []


def test_group_inputs_must_share_required_columns(runner, tmp_path):
    pcsv.write_csv(read_text_csv(DATA / "sample.csv").drop_columns(["sex"]), tmp_path / "no_sex.csv")
    result = invoke(runner, "group", DATA / "sample.csv", tmp_path / "no_sex.csv", "-o", tmp_path / "o.csv")
    assert result.exit_code == 2
    assert "no_sex.csv" in result.stderr and "sex" in result.stderr
    assert not (tmp_path / "o.csv").exists()


def test_group_report(runner, g, tmp_path):
    out, report = tmp_path / "o.csv", tmp_path / "r.json"
    result = invoke(runner, "group", DATA / "golden_edge.csv", "-o", out, "--summary", report)
    assert result.exit_code == 0, result.output
    doc = json.loads(report.read_text(encoding="utf-8"))
    rows = read_text_csv(out).to_pylist()
    assert doc["rows"] == len(rows) == 2000
    for key in ("status", "mdc", "drg"):
        assert sum(doc[key].values()) == doc["rows"]
    assert {k: v for k, v in doc["status"].items() if v} == {
        s: sum(r["status"] == s for r in rows) for s in {r["status"] for r in rows}}
    assert doc["drg"]["0000"] == 172 and doc["status"] == {"grouped": 1828, "invalid": 105, "ungroupable": 67,
                                                           "ambiguous": 0}
    assert doc["ruleset"]["fingerprint"] == g.compiled.fingerprint and doc["ruleset"]["name"] == "chs-drg-1.1"
    assert doc["inputs"] == [str(DATA / "golden_edge.csv")] and doc["output"] == str(out)
    assert set(doc["flags"]) == {f.name for f in grouper.engine.grouper.Flag}
    # an existing report is refused before any work, and kept
    result = invoke(runner, "group", DATA / "sample.csv", "-o", tmp_path / "o2.csv", "--summary", report)
    assert result.exit_code == 1 and "--overwrite" in one_line_error(result)
    assert not (tmp_path / "o2.csv").exists() and json.loads(report.read_text())["rows"] == 2000


@pytest.mark.parametrize("rate,code", [("0.05", 3), ("0.0859", 3), ("0.086", 0), ("0.1", 0), ("1", 0)])
def test_group_max_error_rate(runner, tmp_path, rate, code):
    out, report = tmp_path / "o.parquet", tmp_path / "r.json"
    result = invoke(runner, "group", DATA / "golden_edge.csv", "-o", out, "--max-error-rate", rate,
                    "--summary", report)
    assert result.exit_code == code, result.output
    assert got(pq.read_table(out)) == expected("golden_edge")  # written either way
    assert json.loads(report.read_text())["max_error_rate"] == float(rate)
    lines = result.stderr.splitlines()
    assert lines[0].startswith("2000 cases")
    if code == 3:
        assert lines[1:] == [f"Error: 172 of 2000 cases (8.60%) are invalid or ungroupable, "
                             f"above --max-error-rate {float(rate):g}"]
    else:
        assert len(lines) == 1


def test_group_max_error_rate_is_checked(runner):
    result = invoke(runner, "group", DATA / "sample.csv", "--max-error-rate", "1.5")
    assert result.exit_code == 2
    help_text = " ".join(invoke(runner, "group", "--help").stdout.split())
    assert "3 output written but the share of invalid/ungroupable cases is above --max-error-rate" in help_text


def _local_export(tmp_path) -> Path:
    t = read_text_csv(DATA / "sample.csv")
    path = tmp_path / "local.csv"
    pcsv.write_csv(t.rename_columns(["bh", "xb", "nl", "age_days", "birth_weight", "dept", "los", "discharge",
                                     "zd", "ss"]), path)
    return path


def test_group_map_options(runner, tmp_path):
    src = _local_export(tmp_path)
    result = invoke(runner, "group", src, "-o", tmp_path / "a.csv", "--map", "case_id=bh", "--map", "sex=xb",
                    "--map", "age=nl", "--map", "dx=zd", "--map", "px=ss")
    assert result.exit_code == 0, result.output
    assert got(read_text_csv(tmp_path / "a.csv")) == expected("sample")
    mapping = tmp_path / "map.toml"
    mapping.write_text('# 本院导出\n[columns]\ncase_id = "bh"\nsex = "xb"\nage = "nl"\ndx = "zd"\npx = "wrong"\n',
                       encoding="utf-8")
    result = invoke(runner, "group", src, "-o", tmp_path / "b.csv", "--map-file", mapping, "--map", "px=ss")
    assert result.exit_code == 0, result.output
    assert got(read_text_csv(tmp_path / "b.csv")) == expected("sample")


@pytest.mark.parametrize("args,msg", [
    (["--map", "diagnosis=zd"], "valid: case_id, sex, age, age_days, birth_weight, dx, px, los, discharge, dept"),
    (["--map", "dx"], "canonical=source"),
    (["--map", "dx=nothere"], "no column 'nothere'"),
    (["--map-file", "missing.toml"], "missing.toml"),
])
def test_group_bad_mapping_exits_2(runner, tmp_path, args, msg):
    result = invoke(runner, "group", _local_export(tmp_path), "-o", tmp_path / "o.csv", *args)
    assert result.exit_code == 2, result.output
    assert msg in result.stderr
    assert not (tmp_path / "o.csv").exists()


def _wide_expected() -> list[tuple]:
    by_id = {row[0]: row for row in expected("sample")}
    return [by_id[i] for i in read_text_csv(WIDE)["bah"].to_pylist()]


def test_group_wide_layout_explicit_and_detected(runner, tmp_path):
    result = invoke(runner, "group", WIDE, "-o", tmp_path / "a.csv", "--layout", "wide")
    assert result.exit_code == 0, result.output
    assert got(read_text_csv(tmp_path / "a.csv")) == _wide_expected()
    assert "wide" not in result.stderr  # asked for, so not announced
    result = invoke(runner, "group", WIDE, "-o", tmp_path / "b.parquet")
    assert result.exit_code == 0, result.output
    assert got(pq.read_table(tmp_path / "b.parquet")) == _wide_expected()
    first = result.stderr.splitlines()[0]
    assert "wide 病案首页 layout" in first and "pinyin" in first
    result = invoke(runner, "group", WIDE, "--layout", "canonical")
    assert result.exit_code == 2 and "missing required column" in result.stderr
    result = invoke(runner, "group", DATA / "sample.csv", "--layout", "wide")
    assert result.exit_code == 2 and "principal-diagnosis column" in result.stderr


def test_group_wide_layout_with_a_map_for_a_local_name(runner, tmp_path):
    t = read_text_csv(WIDE)
    pcsv.write_csv(t.rename_columns(["xingbie" if n == "xb" else n for n in t.column_names]), tmp_path / "w.csv")
    result = invoke(runner, "group", tmp_path / "w.csv", "-o", tmp_path / "o.csv", "--map", "sex=xingbie")
    assert result.exit_code == 0, result.output
    assert got(read_text_csv(tmp_path / "o.csv")) == _wide_expected()


def test_group_progress_only_on_a_terminal(runner, tmp_path):
    result = invoke(runner, "group", DATA / "sample.csv", "-o", tmp_path / "a.csv")
    assert result.exit_code == 0
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("30 cases in ")
    assert "\r" not in result.stderr
    result = invoke(runner, "group", DATA / "sample.csv", "-o", tmp_path / "b.csv", "--progress")
    assert result.exit_code == 0 and "rows/s" in result.stderr and "\r" in result.stderr
    result = invoke(runner, "group", DATA / "sample.csv", "-o", tmp_path / "c.csv", "--no-progress")
    assert result.exit_code == 0 and "\r" not in result.stderr


# ----------------------------------------------------------------------------- issue 18

def test_group_keep_of_output_column_names_renames_them_and_report_counts_the_grouper(runner, tmp_path):
    """--keep status --keep drg of a file that has them (an older grouping): the output's status
    and drg are this grouping's, the input's come as input_status / input_drg, and the report
    counts the grouper's column (the case groups to MA19; the input said invalid/ZZ99)."""
    src = tmp_path / "regroup-me.csv"
    src.write_text("case_id,sex,age,dx,px,status,drg\n1,1,65,C61.x00,60.5x02,invalid,ZZ99\n", encoding="utf-8")
    out, report = tmp_path / "out.csv", tmp_path / "report.json"
    result = invoke(runner, "group", src, "-o", out, "--keep", "status", "--keep", "drg", "--summary", report)
    assert result.exit_code == 0, result.output
    table = read_text_csv(out)
    assert table.column_names == [*OUTPUT_COLUMNS, "input_status", "input_drg"]
    row = table.to_pylist()[0]
    assert (row["status"], row["drg"], row["input_status"], row["input_drg"]) == ("grouped", "MA19", "invalid", "ZZ99")
    doc = json.loads(report.read_text(encoding="utf-8"))
    assert doc["status"]["grouped"] == 1 and doc["status"]["invalid"] == 0 and doc["drg"] == {"MA19": 1}
    assert "grouped 1" in result.stderr


def test_group_keep_whose_new_name_is_taken_exits_2(runner, tmp_path):
    src = tmp_path / "both.csv"
    src.write_text("sex,age,dx,px,status,input_status\n1,65,C61.x00,,invalid,x\n", encoding="utf-8")
    result = invoke(runner, "group", src, "--keep", "status", "--keep", "input_status")
    assert "both.csv: keep 'input_status': its output name 'input_status' is already used" in usage_error(result)


def _write_duplicate_columns(path: Path, names: list[str]) -> None:
    rows = {"sex": 1, "age": 65, "dx": "C61.x00", "px": "60.5x02", "": "x"}
    if path.suffix == ".csv":
        path.write_text(",".join(names) + "\n" + ",".join(str(rows.get(n, 70)) for n in names) + "\n",
                        encoding="utf-8")
        return
    t = pa.Table.from_arrays([pa.array([rows.get(n, 70)]) for n in names], names=names)
    if path.suffix == ".parquet":
        pq.write_table(t, path)
    else:
        with pa.ipc.new_file(str(path), t.schema) as w:
            w.write_table(t)


@pytest.mark.parametrize("ext", [".csv", ".parquet", ".arrow"])
@pytest.mark.parametrize("names, repeated", [
    (["sex", "age", "dx", "px", "age"], "age"),
    (["sex", "age", "dx", "px", "dx"], "dx"),
    (["sex", "age", "age_days", "dx", "px", "age_days"], "age_days"),  # optional, read when present
])
def test_group_repeated_column_names_exit_2_naming_file_and_column(runner, tmp_path, ext, names, repeated):
    src = tmp_path / f"dup{ext}"
    _write_duplicate_columns(src, names)
    out = tmp_path / "out.parquet"
    result = invoke(runner, "group", src, "-o", out)
    line = usage_error(result)
    assert f"dup{ext}" in line and f"repeated column name(s): '{repeated}' (2 times)" in line
    assert not out.exists() and not list(tmp_path.glob(".*.part"))


@pytest.mark.parametrize("command", ["regroup", "weights"])
def test_other_commands_refuse_repeated_columns_they_read(runner, tmp_path, command):
    src = tmp_path / "dup.csv"
    _write_duplicate_columns(src, ["sex", "age", "dx", "px", "age", "total_cost"])
    result = invoke(runner, command, src, "-o", tmp_path / "o.parquet")
    line = usage_error(result)
    assert "dup.csv" in line and "'age' (2 times)" in line


def test_two_empty_headers_group_but_keep_all_refuses_them(runner, tmp_path):
    src = tmp_path / "export.csv"
    src.write_text("sex,age,dx,px,,\n1,65,C61.x00,60.5x02,a,b\n", encoding="utf-8")
    result = invoke(runner, "group", src)  # columns nobody reads may share a name
    assert result.exit_code == 0, result.output
    result = invoke(runner, "group", src, "--keep-all")
    assert "export.csv: repeated column name(s): '' (2 times)" in usage_error(result)


def test_arrow_dictionary_index_out_of_range_exits_1(runner, tmp_path):
    dx = pa.DictionaryArray.from_arrays(pa.array([0, 5], pa.int32()), pa.array(["C61.x00", "I10.x00"]), safe=False)
    b = pa.record_batch({"sex": [1, 1], "age": [65, 70], "dx": dx, "px": ["", ""]})
    src = tmp_path / "idx.arrow"
    with pa.ipc.new_file(str(src), b.schema) as w:
        w.write_batch(b)
    out = tmp_path / "out.parquet"
    result = invoke(runner, "group", src, "-o", out)
    assert result.exit_code == 1, result.output
    assert "idx.arrow: corrupt Arrow data in column 'dx'" in one_line_error(result)
    assert "out of bounds" in one_line_error(result)
    assert not out.exists() and not list(tmp_path.glob(".*.part"))


@pytest.mark.parametrize("case, field", [
    ({"sex": 1, "age": 65, "dx": [1, 2]}, "dx"),
    ({"sex": 1, "age": 65, "dx": ["C61.x00"], "px": 5}, "px"),
    ({"sex": [1], "age": 65, "dx": ["C61.x00"]}, "sex"),
    ({"sex": 1, "age": {"years": 65}, "dx": ["C61.x00"]}, "age"),
    ({"sex": 1, "age": 65, "dx": ["C61.x00"], "dept": [1]}, "dept"),
])
def test_explain_wrongly_typed_json_exits_2_naming_the_field(runner, case, field):
    result = invoke(runner, "explain", json.dumps(case))
    assert f"case field '{field}'" in usage_error(result)

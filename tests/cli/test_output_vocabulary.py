"""Outputs of every command (issue 14): one vocabulary (-o tables, --summary JSON, --report
HTML, --by-hospital, --bom, --overwrite, --progress), all outputs checked before any work and
published together, money as exact decimals, DRG names beside codes, .xlsx and BOM CSV,
grouped inputs used as they are, Ctrl-C exit 130 without leftovers, progress on a terminal."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import grouper.io.write as gio
from grouper._util.money import MONEY_TYPE, money_array
from grouper._util.progress import Progress
from grouper.cli.main import main

from conftest import DATA

Y24 = DATA / "snapshot" / "cases_2024.parquet"
Y23 = DATA / "snapshot" / "cases_2023.parquet"
R = ["-r", "chs-drg-1.1"]
AMOUNT = re.compile(r"-?\d+\.\d\d")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("w") / "w.parquet"
    r = run("weights", Y24, *R, "-o", out)
    assert r.exit_code == 0, r.output
    return out


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


# ----------------------------------------------------------------------------- one vocabulary

def test_summary_is_json_and_tables_are_by_hospital_in_every_command(tmp_path, weights_file):
    r = run("settle", Y24, *R, "-p", "illustrative-2024", "-w", weights_file, "-o", tmp_path / "c.csv",
            "--by-hospital", tmp_path / "h.csv", "--summary", tmp_path / "s.json")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "s.json").read_text())["rows"] == 3000
    assert pcsv.read_csv(tmp_path / "h.csv").num_rows > 1
    # the old meaning of settle --summary (a table) is refused before any work, naming the new option
    r = run("settle", Y24, *R, "-p", "illustrative-2024", "-w", weights_file, "-o", tmp_path / "c2.csv",
            "--summary", tmp_path / "h2.csv")
    assert r.exit_code == 2 and "--by-hospital" in r.output
    assert not (tmp_path / "c2.csv").exists()
    # drg group's JSON summary is --summary; --report is HTML everywhere, and group has none
    r = run("group", DATA / "chs-drg-1.1" / "sample.csv", *R, "-o", tmp_path / "g.csv", "--report", tmp_path / "r.json")
    assert r.exit_code == 2 and "--summary" in r.output
    r = run("group", DATA / "chs-drg-1.1" / "sample.csv", *R, "-o", tmp_path / "g.csv", "--summary", tmp_path / "r.json")
    assert r.exit_code == 0 and json.loads((tmp_path / "r.json").read_text())["rows"] == 30


def test_year_weights_have_one_syntax(tmp_path):
    r = run("weights", Y23, Y24, *R, "-o", tmp_path / "w.csv", "--year-column", "year", "--year-weights", "2023=1,2024=3")
    assert r.exit_code == 0, r.output
    r = run("dip", "catalogue", Y23, Y24, *R, "-o", tmp_path / "c.parquet", "--year-column", "year",
            "--year-weights", "2023=1,2024=3")
    assert r.exit_code == 0, r.output
    for cmd in (["weights", Y24, *R, "-o", tmp_path / "w2.csv", "--year-column", "year"],
                ["dip", "catalogue", Y24, *R, "-o", tmp_path / "c2.parquet"]):
        r = run(*cmd, "--year-weights", "2023=one")
        assert r.exit_code == 2 and "YEAR=WEIGHT" in r.output, r.output


def test_every_writing_command_has_the_shared_output_options():
    for cmd in (["group"], ["regroup"], ["weights"], ["indices"], ["recalibrate"], ["settle"],
                ["dip", "catalogue"], ["dip", "assign"], ["dip", "settle"], ["audit"], ["synth"]):
        text = CliRunner().invoke(main, [*cmd, "--help"]).output
        for opt in ("--overwrite", "--bom", "--progress / --no-progress"):
            assert opt in text, (cmd, opt)


# ----------------------------------------------------------------------------- safe outputs

def test_two_options_naming_the_same_path_are_refused_before_any_work(tmp_path, weights_file):
    out = tmp_path / "same.csv"
    for args in (["weights", Y24, *R, "-o", out, "--summary", out],
                 ["indices", Y24, *R, "-w", weights_file, "-o", out, "--report", out],
                 ["settle", Y24, *R, "-p", "illustrative-2024", "-w", weights_file, "-o", out, "--months", out]):
        r = run(*args)
        assert r.exit_code == 1 and "named as two different outputs" in r.output, r.output
    assert list(tmp_path.iterdir()) == []


def test_an_output_under_a_file_is_refused_before_any_work(tmp_path, weights_file):
    (tmp_path / "afile").write_text("")
    r = run("weights", Y24, *R, "-o", tmp_path / "w.csv", "--summary", tmp_path / "afile" / "s.json")
    assert r.exit_code == 1 and "is a file, not a folder" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize("command", ["weights", "indices", "recalibrate", "settle"])
def test_a_command_failing_at_its_last_output_writes_none(tmp_path, weights_file, monkeypatch, command):
    # before: weights/indices wrote their table, then failed on the report or summary
    import grouper.report as report

    def broken(*a, **k):
        raise OSError("the report could not be drawn")

    for name in ("write_weights_report", "write_indices_report", "write_recalibration_report",
                 "write_settlement_report"):
        monkeypatch.setattr(report, name, broken)
    out, side = tmp_path / "table.csv", tmp_path / "side.csv"
    args = {"weights": ["weights", Y24, *R, "-o", out, "--summary", side],
            "indices": ["indices", Y24, *R, "-w", weights_file, "-o", out],
            "recalibrate": ["recalibrate", Y24, *R, "-a", weights_file, "-b", "iqr:2", "-o", out,
                            "--by-hospital", side],
            "settle": ["settle", Y24, *R, "-p", "illustrative-2024", "-w", weights_file, "-o", out,
                       "--by-hospital", side]}[command]
    r = run(*args, "--report", tmp_path / "r.html")
    assert r.exit_code == 1 and "could not be drawn" in r.output, r.output
    assert list(tmp_path.iterdir()) == []  # no table, no summary, no temporary file


def test_dip_outputs_are_published_together(tmp_path, monkeypatch):
    import grouper.jobs.dip as jd

    def broken(*a, **k):
        raise OSError("disk gone")

    monkeypatch.setattr(jd, "save_catalogue", broken)
    r = run("dip", "catalogue", Y24, *R, "-o", tmp_path / "c.parquet", "--summary", tmp_path / "s.json")
    assert r.exit_code == 1 and list(tmp_path.iterdir()) == []


def _wait_for(pred, seconds: float = 60) -> None:
    end = time.time() + seconds
    while not pred():
        if time.time() > end:
            raise AssertionError("the run did not start")
        time.sleep(0.01)


def _as_a_terminal_starts_it() -> None:
    """The child's Ctrl-C as a shell's foreground job has it: SIGINT handled by default and not
    blocked, whatever this test process inherited or was left with (an exec keeps both)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _interrupt(args, started, tmp_path) -> subprocess.CompletedProcess:
    """Run ``drg args`` in its own process group, send it SIGINT (as a terminal's Ctrl-C does, to
    every process of the group) once ``started()``, and return how it ended."""
    drg = Path(sys.executable).with_name("drg")
    p = subprocess.Popen([str(drg), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True, env={**os.environ, "DRG_CACHE_DIR": str(tmp_path / "cache")},
                         preexec_fn=_as_a_terminal_starts_it)
    try:
        _wait_for(lambda: started() or p.poll() is not None)
        os.killpg(p.pid, signal.SIGINT)  # at once: a 300 k-case run may end within a few tenths of a second
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    return subprocess.CompletedProcess(args, p.returncode, out, err)


def test_ctrl_c_exits_130_with_one_line_and_leaves_nothing(tmp_path, synth_province):
    # a million cases (about 0.7 s of writing after start-up): room for the signal to arrive mid-run
    src = synth_province(1_000_000, hospitals=20, seed=11)
    out = tmp_path / "out"
    out.mkdir()
    r = _interrupt(["group", src, "-o", out / "g.csv", "--summary", out / "s.json", "--batch-size", "4096"],
                   lambda: any(out.iterdir()), tmp_path)
    if r.returncode == 0:
        pytest.fail(f"the run finished before it was interrupted: give it more cases\n{r.stderr[-500:]}")
    assert r.returncode == 130, r.stderr
    assert r.stderr.strip() == "interrupted (Ctrl-C)"
    assert list(out.iterdir()) == []  # no output, no temporary file


def test_ctrl_c_of_workers_prints_no_child_traceback(tmp_path, synth_province):
    src = synth_province(300_000, hospitals=20, seed=11)
    out = tmp_path / "parts"
    r = _interrupt(["group", src, "-o", out, "--workers", "2", "--batch-size", "4096"],
                   lambda: (out / "_manifest.json").exists(), tmp_path)
    assert r.returncode in (130, 0), r.stderr
    assert "Traceback" not in r.stderr and "Exception" not in r.stderr, r.stderr
    if r.returncode == 130:
        assert r.stderr.strip() == "interrupted (Ctrl-C)"


# ----------------------------------------------------------------------------- money, names

def test_money_is_written_as_exact_decimals():
    a = money_array([37598.98190000002, 0.1 + 0.2, -12.5, float("nan"), None])
    assert a.type == MONEY_TYPE
    sink = io.BytesIO()
    pcsv.write_csv(pa.table({"x": a}), sink)
    assert sink.getvalue().decode().splitlines()[1:] == ["37598.98", "0.30", "-12.50", "", ""]


def test_settlement_files_hold_amounts_in_fen(tmp_path, weights_file):
    r = run("settle", Y24, *R, "-p", "illustrative-2024", "-w", weights_file, "-o", tmp_path / "c.csv",
            "--by-hospital", tmp_path / "h.parquet", "--months", tmp_path / "m.csv")
    assert r.exit_code == 0, r.output
    cases = pcsv.read_csv(tmp_path / "c.csv", convert_options=pcsv.ConvertOptions(
        column_types={c: pa.string() for c in ("payment", "fund_payment", "margin", "cost")}))
    for c in ("payment", "fund_payment", "margin", "cost"):
        values = [v for v in cases[c].to_pylist() if v]
        assert values and all(AMOUNT.fullmatch(v) for v in values), (c, values[:5])
    hosp = pq.read_table(tmp_path / "h.parquet")
    assert hosp.schema.field("payment").type == MONEY_TYPE and hosp.schema.field("margin").type == MONEY_TYPE
    # the totals are the sums of the per-case amounts in fen
    assert pc.sum(hosp["payment"]).as_py() == sum(__import__("decimal").Decimal(v) for v in cases["payment"].to_pylist() if v)


def test_dip_and_weights_amounts_and_names(tmp_path, synth_province):
    r = run("weights", Y24, *R, "-o", tmp_path / "w.csv")
    assert r.exit_code == 0, r.output
    text = (tmp_path / "w.csv").read_text(encoding="utf-8").splitlines()
    head = text[0].replace('"', "").split(",")
    assert head[:3] == ["drg", "drg_name", "adrg"]
    w = pcsv.read_csv(tmp_path / "w.csv", convert_options=pcsv.ConvertOptions(column_types={"mean_cost": pa.string()}))
    assert all(AMOUNT.fullmatch(v) for v in w["mean_cost"].to_pylist())
    assert all(name for name in w["drg_name"].to_pylist())  # every DRG of the ruleset has its Chinese name
    r = run("dip", "catalogue", Y24, *R, "-o", tmp_path / "cat.parquet")
    assert r.exit_code == 0, r.output
    r = run("dip", "settle", Y24, *R, "-c", tmp_path / "cat.parquet", "-p", "illustrative-2024",
            "-o", tmp_path / "d.parquet", "--by-hospital", tmp_path / "dh.csv", "--summary", tmp_path / "ds.json")
    assert r.exit_code == 0, r.output
    d = pq.read_table(tmp_path / "d.parquet")
    assert d.schema.field("amount").type == MONEY_TYPE and d.schema.field("total_cost").type == MONEY_TYPE


# ----------------------------------------------------------------------------- CSV with BOM, Excel

def test_bom_starts_csv_outputs_only_when_asked(tmp_path):
    assert run("weights", Y24, *R, "-o", tmp_path / "plain.csv").exit_code == 0
    assert run("weights", Y24, *R, "-o", tmp_path / "bom.csv", "--bom").exit_code == 0
    plain, bom = (tmp_path / "plain.csv").read_bytes(), (tmp_path / "bom.csv").read_bytes()
    assert not plain.startswith(b"\xef\xbb\xbf")
    assert bom == b"\xef\xbb\xbf" + plain
    assert pcsv.read_csv(tmp_path / "bom.csv").column_names[:2] == ["drg", "drg_name"]  # the BOM is not in a name
    r = run("group", DATA / "chs-drg-1.1" / "sample.csv", *R, "-o", tmp_path / "g.csv", "--bom")
    assert r.exit_code == 0 and (tmp_path / "g.csv").read_bytes().startswith(b"\xef\xbb\xbf\"case_id\"")


def _sheet(path: Path) -> str:
    with zipfile.ZipFile(path) as z:
        return z.read("xl/worksheets/sheet1.xml").decode("utf-8")


def test_xlsx_output_keeps_text_numbers_and_chinese(tmp_path):
    r = run("weights", Y24, *R, "-o", tmp_path / "w.xlsx")
    assert r.exit_code == 0, r.output
    sheet = _sheet(tmp_path / "w.xlsx")
    assert "<t>drg_name</t>" in sheet and re.search(r"<t>[\u4e00-\u9fff]", sheet)  # Chinese names as text
    rows = re.findall(r'<row r="(\d+)"', sheet)
    r2 = run("weights", Y24, *R, "-o", tmp_path / "w.csv")
    assert r2.exit_code == 0
    assert len(rows) == pcsv.read_csv(tmp_path / "w.csv").num_rows + 1
    # a text that looks like a formula stays text
    gio.write_batches(tmp_path / "f.xlsx", pa.table({"a": ["=1+1"], "n": [2.5]}).to_batches())
    s = _sheet(tmp_path / "f.xlsx")
    assert "<t>=1+1</t>" in s and "<f>" not in s and "<v>2.5</v>" in s


def test_xlsx_longer_than_a_sheet_is_refused_before_writing(tmp_path, monkeypatch):
    t = pa.table({"n": pa.array(range(gio.XLSX_MAX_ROWS), pa.int64())})  # + the header: one row too many
    with pytest.raises(ValueError, match="do not fit in an Excel sheet"):
        gio.write_batches(tmp_path / "big.xlsx", t.to_batches(), rows=t.num_rows)
    assert list(tmp_path.iterdir()) == []
    # a stream whose length is not known beforehand fails when the limit is passed, and publishes nothing
    monkeypatch.setattr(gio, "XLSX_MAX_ROWS", 101)
    small = pa.table({"n": pa.array(range(60), pa.int64())})
    with pytest.raises(ValueError, match="do not fit in an Excel sheet"):
        gio.write_batches(tmp_path / "s.xlsx", iter([*small.to_batches(), *small.to_batches()]))
    assert list(tmp_path.iterdir()) == []
    assert gio.write_batches(tmp_path / "ok.xlsx", iter([*small.to_batches(), *small.slice(0, 40).to_batches()])) == 100


def test_group_to_xlsx_refuses_too_many_rows_before_reading(tmp_path, synth_province, monkeypatch):
    monkeypatch.setattr(gio, "XLSX_MAX_ROWS", 1000)
    r = run("group", synth_province(2000, seed=2), "-o", tmp_path / "g.xlsx")
    assert r.exit_code == 1 and "do not fit in an Excel sheet" in r.output
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- grouped inputs

def test_aggregates_take_grouped_files_as_they_are(tmp_path):
    g = tmp_path / "grouped.parquet"
    r = run("group", Y24, *R, "-o", g, "--keep", "total_cost", "--keep", "los", "--keep", "hospital_id",
            "--keep", "discharge")
    assert r.exit_code == 0, r.output
    assert run("weights", Y24, *R, "-o", tmp_path / "raw.csv").exit_code == 0
    assert run("weights", g, *R, "-o", tmp_path / "pre.csv").exit_code == 0
    assert (tmp_path / "raw.csv").read_bytes() == (tmp_path / "pre.csv").read_bytes()
    # the file's own DRGs are used: rewrite one DRG code and only that group moves
    t = pq.read_table(g)
    drg = t["drg"].cast(pa.string())
    t = t.set_column(t.schema.get_field_index("drg"), "drg", pc.if_else(pc.equal(drg, "IZ25"), "IZ23", drg))
    pq.write_table(t, tmp_path / "edited.parquet")
    assert run("weights", tmp_path / "edited.parquet", *R, "-o", tmp_path / "ed.csv").exit_code == 0
    assert "IZ25" not in pcsv.read_csv(tmp_path / "ed.csv")["drg"].to_pylist()
    # --regroup regroups them: the raw columns are needed then
    r = run("weights", g, *R, "-o", tmp_path / "re.csv", "--regroup")
    assert r.exit_code == 2 and "missing column" in r.output
    r = run("indices", g, *R, "-w", tmp_path / "raw.csv", "-o", tmp_path / "i.csv")
    assert r.exit_code == 0, r.output
    r2 = run("indices", Y24, *R, "-w", tmp_path / "raw.csv", "-o", tmp_path / "i2.csv")
    assert r2.exit_code == 0 and (tmp_path / "i.csv").read_bytes() == (tmp_path / "i2.csv").read_bytes()


# ----------------------------------------------------------------------------- progress

def test_progress_line_shows_rows_rate_percent_and_eta():
    s = FakeTty()
    bar = Progress(s, 1000)
    bar.shown = -1.0
    bar.update(250)
    line = s.getvalue()
    assert line.startswith("\r250 rows") and "rows/s" in line and "25%" in line and "ETA" in line
    bar.close()
    assert s.getvalue().endswith("\r")


def test_commands_show_progress_only_on_a_terminal(tmp_path, monkeypatch, weights_file):
    import grouper._util.progress as prog

    monkeypatch.setattr(prog.time, "perf_counter", iter(range(0, 10_000)).__next__)  # every update is drawn
    tty = FakeTty()
    monkeypatch.setattr(sys, "stderr", tty)
    from grouper.cli._common import progress_stream

    assert progress_stream(None) is tty and progress_stream(False) is None
    from grouper.engine import Grouper
    from grouper.jobs.indices import indices_job

    indices_job([Y24], weights_file, Grouper("chs-drg-1.1"), tmp_path / "i.csv", progress=tty)
    text = tty.getvalue()
    assert "3,000 rows" in text and "100%" in text and "ETA" in text
    # not a terminal: nothing but the result line
    r = run("indices", Y24, *R, "-w", weights_file, "-o", tmp_path / "i2.csv")
    assert r.exit_code == 0 and "\r" not in r.output


def test_weights_and_indices_on_workers_show_files_done(tmp_path, weights_file):
    """--workers runs report each finished file: '2/2 parts' (the per-file tasks do not stream rows)."""
    two = tmp_path / "in"
    two.mkdir()
    t = pq.read_table(Y24)
    pq.write_table(t.slice(0, 1500), two / "a.parquet")
    pq.write_table(t.slice(1500), two / "b.parquet")
    r = run("weights", two, *R, "--workers", "1", "-o", tmp_path / "w.csv", "--progress")
    assert r.exit_code == 0, r.output
    assert "\r2/2 parts" in r.output
    r = run("indices", two, *R, "-w", weights_file, "--workers", "1", "-o", tmp_path / "i.csv", "--progress")
    assert r.exit_code == 0, r.output
    assert "\r2/2 parts" in r.output
    r = run("indices", two, *R, "-w", weights_file, "--workers", "1", "-o", tmp_path / "i2.csv")
    assert r.exit_code == 0 and "\r" not in r.output  # not a terminal, not asked: silent


def test_csv_totals_are_estimated_from_the_file_size(tmp_path):
    from grouper._util.progress import estimate_rows

    f = tmp_path / "c.csv"
    f.write_text("a,b\n" + "".join(f"{i},x\n" for i in range(100_000)))
    assert estimate_rows(f) is not None and abs(estimate_rows(f) - 100_000) < 5_000
    f.write_text("a,b\n1,2\n3,4\n")
    assert estimate_rows(f) == 2


def test_group_progress_on_a_csv_shows_percent_from_the_file_size(tmp_path, monkeypatch, synth_province):
    import grouper._util.progress as prog

    src = tmp_path / "cases.csv"
    t = pq.read_table(synth_province(5000, seed=4))
    for c in ("dx", "px"):
        t = t.set_column(t.schema.get_field_index(c), c, pc.binary_join(t[c].cast(pa.list_(pa.string())), "|"))
    pcsv.write_csv(t, src)
    monkeypatch.setattr(prog.time, "perf_counter", iter(range(0, 10_000)).__next__)
    r = run("group", src, "-o", tmp_path / "g.parquet", "--progress", "--batch-size", "1000")
    assert r.exit_code == 0, r.output
    assert "\r5,000 rows" in r.output and "100%  ETA" in r.output  # the total of a CSV is estimated


def test_settled_cases_name_their_drg(tmp_path, weights_file):
    r = run("settle", Y24, *R, "-p", "illustrative-2024", "-w", weights_file, "-o", tmp_path / "c.parquet")
    assert r.exit_code == 0, r.output
    t = pq.read_table(tmp_path / "c.parquet")
    assert t.column_names[t.column_names.index("drg") + 1] == "drg_name"
    from grouper.engine import Grouper

    g = Grouper("chs-drg-1.1")
    row = t.slice(0, 1).to_pylist()[0]
    assert row["drg_name"] == g.group_one(**{k: v for k, v in pq.read_table(Y24).slice(0, 1).to_pylist()[0].items()
                                            if k in ("sex", "age", "age_days", "birth_weight", "dx", "px")}).drg_name


def test_an_unknown_table_format_is_refused_before_any_work(tmp_path, weights_file, monkeypatch):
    import grouper.analytics.grouped as grouped

    def no_reading(*a, **k):
        raise AssertionError("the cases were read before the outputs were checked")

    monkeypatch.setattr(grouped, "grouped_batches", no_reading)
    for args in (["weights", Y24, *R, "-o", tmp_path / "w.txt"],
                 ["indices", Y24, *R, "-w", weights_file, "-o", tmp_path / "i.txt"],
                 ["recalibrate", Y24, *R, "-a", weights_file, "-b", "iqr:2", "-o", tmp_path / "c.csv",
                  "--by-hospital", tmp_path / "h.txt"]):
        r = run(*args)
        assert r.exit_code == 1 and "unknown file type .txt" in r.output, r.output
    assert list(tmp_path.iterdir()) == []


def test_synth_shows_progress_and_writes_a_bom_when_asked(tmp_path, monkeypatch):
    import grouper._util.progress as prog
    from grouper.analytics.synth import SynthSpec, write_synthetic

    monkeypatch.setattr(prog.time, "perf_counter", iter(range(0, 10_000)).__next__)  # every update is drawn
    tty = FakeTty()
    out = tmp_path / "p.csv"
    assert write_synthetic(SynthSpec(5_000, 5, 2025, 1, "chs-drg-2.0"), out, bom=True, progress=tty) == 5_000
    assert "5,000 rows" in tty.getvalue() and "100%" in tty.getvalue()
    assert out.read_bytes()[:3] == b"\xef\xbb\xbf"
    r = run("synth", "-n", "100", "-o", tmp_path / "q.csv")  # not a terminal: no progress line
    assert r.exit_code == 0 and "\r" not in r.output and (tmp_path / "q.csv").read_bytes()[:3] != b"\xef\xbb\xbf"

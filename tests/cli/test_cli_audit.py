"""``drg audit``: findings, league table and report written together; bad input refused cleanly."""

import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from click.testing import CliRunner

from grouper.cli.main import main

INJECT = ["--inject", "split=H0002,H0005", "--inject", "upcode=H0002,H0005"]


def province(tmp_path):
    p = tmp_path / "p.parquet"
    r = CliRunner().invoke(main, ["synth", "-n", "20000", "--hospitals", "10", "--seed", "3", "-o", str(p), *INJECT])
    assert r.exit_code == 0, r.output
    return p


def test_audit_writes_findings_hospitals_and_report(tmp_path):
    p = province(tmp_path)
    out, hosp, rep = tmp_path / "flags.parquet", tmp_path / "h.csv", tmp_path / "audit.html"
    r = CliRunner().invoke(main, ["audit", str(p), "-o", str(out), "--hospitals", str(hosp), "--report", str(rep),
                                  "--buckets", "4"])
    assert r.exit_code == 0, r.output
    assert "flagged hospitals" in r.output and "H0002" in r.output
    f = pq.read_table(out)
    assert {"row", "case_id", "hospital", "code", "severity", "message"} <= set(f.column_names)
    assert pc.sum(pc.equal(f["code"], "AS01")).as_py() > 0
    h = pcsv.read_csv(hosp)
    assert set(h["screen"].to_pylist()) >= {"upcoding", "split", "low_standard", "avoidance", "lifting_dx",
                                             "dept_upcoding", "dept_split"}  # synth writes a dept column
    assert {"department", "item", "message"} <= set(h.column_names)
    flagged = h.filter(h["flagged"]).to_pylist()
    assert flagged and all(r["message"] and r["hospital"] in r["message"] for r in flagged)
    page = rep.read_text(encoding="utf-8")
    assert "分解住院" in page and "H0002" in page and "data:image/png;base64" in page


def test_bad_pack_fails_with_one_line_and_no_outputs(tmp_path):
    p = province(tmp_path)
    pack = tmp_path / "a.toml"
    pack.write_text("[split]\nwindows = [30, 15]\n", encoding="utf-8")
    out = tmp_path / "flags.parquet"
    r = CliRunner().invoke(main, ["audit", str(p), "-o", str(out), "--pack", str(pack)])
    assert r.exit_code == 1 and "split.windows" in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_missing_dx_column_is_a_usage_error(tmp_path):
    import pyarrow as pa
    p = tmp_path / "x.parquet"
    pq.write_table(pa.table({"sex": [1], "age": [40]}), p)
    r = CliRunner().invoke(main, ["audit", str(p), "-o", str(tmp_path / "f.parquet")])
    assert r.exit_code == 2 and "dx" in r.output
    assert not (tmp_path / "f.parquet").exists()


def test_existing_output_refused_without_overwrite(tmp_path):
    p = province(tmp_path)
    out = tmp_path / "flags.parquet"
    out.write_text("keep", encoding="utf-8")
    r = CliRunner().invoke(main, ["audit", str(p), "-o", str(out)])
    assert r.exit_code == 1 and out.read_text(encoding="utf-8") == "keep"


def test_minimal_and_empty_inputs(tmp_path):
    """Only the grouper's columns (no hospital, patient, dates, cost): the edits still run and
    the screens treat the file as one hospital; an empty file gives empty outputs."""
    import pyarrow as pa
    small = tmp_path / "min.parquet"
    pq.write_table(pa.table({"sex": [1, 2], "age": [40, 50], "dx": [["J18.900", "A02.100"], ["W01.x00"]],
                             "px": [[], []]}), small)
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"sex": pa.array([], pa.int8()), "age": pa.array([], pa.int16()),
                             "dx": pa.array([], pa.list_(pa.string())), "px": pa.array([], pa.list_(pa.string()))}),
                   empty)
    for src, codes in ((small, {"AE01", "AE95"}), (empty, set())):
        out, hosp, rep = (tmp_path / f"{src.stem}{x}" for x in (".parquet.flags.parquet", ".h.csv", ".html"))
        r = CliRunner().invoke(main, ["audit", str(src), "-o", str(out), "--hospitals", str(hosp),
                                      "--report", str(rep)])
        assert r.exit_code == 0, r.output
        assert set(pq.read_table(out)["code"].to_pylist()) == codes
        assert rep.exists() and hosp.exists()

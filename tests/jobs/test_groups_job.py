"""``drg groups`` (issue 14): a scheme's MDCs, ADRGs and DRGs with names, and weights when given,
as a terminal table or a file; the counts agree with the scheme's own description."""

import pyarrow.csv as pcsv
from click.testing import CliRunner

import grouper
from grouper.cli.main import main
from grouper.jobs.groups import groups_table
from grouper.rulesets import describe


def test_every_drg_of_the_scheme_is_listed_with_names():
    rs = grouper.load_ruleset("chs-drg-1.1")
    t = groups_table(rs)
    rows = t.to_pylist()
    real = [r for r in rows if r["kind"] == "group"]
    d = describe(rs)
    assert len({r["drg"] for r in real}) == d["drg"] and len({r["adrg"] for r in real}) == d["adrg"]
    assert len({r["mdc"] for r in rows}) == d["mdc"]
    gz15 = next(r for r in rows if r["drg"] == "GZ15")
    assert (gz15["mdc"], gz15["mdc_name"], gz15["adrg"], gz15["adrg_name"]) == (
        "MDCG", "消化系统疾病及功能障碍", "GZ1", "其他消化系统诊断")
    assert gz15["drg_name"] == "其他消化系统诊断，不伴并发症或合并症"
    assert all(r["drg_name"] and r["mdc_name"] for r in rows)
    # every DRG the compiled scheme can write (but "no result") has a row
    compiled = grouper.Grouper(rs).compiled
    assert set(compiled.drg_codes) - {"0000"} <= {r["drg"] for r in rows}


def test_ambiguous_and_fail_groups_are_marked():
    rows = groups_table(grouper.load_ruleset("chs-drg-3.0")).to_pylist()
    p000 = next(r for r in rows if r["drg"] == "P000")
    assert p000["kind"] == "fail" and p000["adrg_name"]
    assert any(r["drg"] == "PQY" and r["kind"] == "ambiguous" for r in rows)


def test_cli_prints_or_writes_with_weights(tmp_path):
    w = tmp_path / "w.csv"
    w.write_text("drg,rw,n\nGZ15,0.8,120\nGZ13,1.1,40\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["groups", "-r", "chs-drg-1.1", "-w", str(w)])
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if " GZ15 " in x)
    assert "其他消化系统诊断，不伴并发症或合并症" in line and "0.8" in line and "120" in line
    out = tmp_path / "groups.csv"
    r = CliRunner().invoke(main, ["groups", "-r", "chs-drg-1.1", "-w", str(w), "-o", str(out)])
    assert r.exit_code == 0, r.output
    t = pcsv.read_csv(out)
    assert t.column_names[-2:] == ["rw", "n"]
    rw = dict(zip(t["drg"].to_pylist(), t["rw"].to_pylist()))
    assert rw["GZ15"] == 0.8 and rw["AA19"] is None
    r = CliRunner().invoke(main, ["groups", "-r", "chs-drg-1.1", "-o", str(out)])
    assert r.exit_code != 0 and "exists" in r.output  # no --overwrite: refused, file kept
    assert pcsv.read_csv(out).num_rows == t.num_rows

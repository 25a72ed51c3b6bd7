"""Regrouping from 1.1 to 2.0: per-case results equal two separate runs; matrix and summary add up."""

import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import grouper
from grouper.cli.main import main
from grouper.jobs.group import group_file
from grouper.io import open_source
from grouper.jobs.regroup import regroup

from conftest import DATA


@pytest.fixture(scope="module")
def province(synth_province):
    return synth_province(30_000, hospitals=12, seed=5)


@pytest.fixture(scope="module")
def both():
    return grouper.Grouper("chs-drg-1.1"), grouper.Grouper("chs-drg-2.0")


def single(g, path):
    _, table = group_file(g, open_source(path), None)
    return table


@pytest.mark.parametrize("source", ["province", "edge"])
def test_per_case_results_equal_two_separate_runs(tmp_path, both, province, source):
    path = province if source == "province" else DATA / "chs-drg-2.0" / "golden_edge.csv"
    g1, g2 = both
    out = tmp_path / "rg.parquet"
    r = regroup([path], g1, g2, out, matrix=tmp_path / "m.csv", summary=tmp_path / "s.json")
    t = pq.read_table(out)
    a, b = single(g1, path), single(g2, path)
    assert t.num_rows == a.num_rows == r.rows
    for c in ("status", "mdc", "adrg", "drg", "cc_level"):
        assert t[f"from_{c}"].to_pylist() == a[c].to_pylist(), c
        assert t[f"to_{c}"].to_pylist() == b[c].to_pylist(), c
    # the matrix adds up to the rows at every level, and agrees with the per-case pairs
    m = r.matrix
    for level in ("status", "mdc", "adrg", "drg"):
        assert pc.sum(m.filter(pc.equal(m["level"], level))["cases"]).as_py() == t.num_rows
    pairs = {}
    for f, to in zip(t["from_drg"].to_pylist(), t["to_drg"].to_pylist()):
        pairs[(f, to)] = pairs.get((f, to), 0) + 1
    drg = m.filter(pc.equal(m["level"], "drg"))
    assert dict(zip(zip(drg["from"].to_pylist(), drg["to"].to_pylist()), drg["cases"].to_pylist())) == pairs
    s = json.loads((tmp_path / "s.json").read_text())
    changed = sum(n for (f, to), n in pairs.items() if f != to) / t.num_rows
    assert s["share_drg_changed"] == pytest.approx(changed)
    assert sum(s["to"]["status_counts"].values()) == t.num_rows


def test_summary_has_weights_cmi_and_group_changes(tmp_path, both, province):
    g1, g2 = both
    r = regroup([province], g1, g2, tmp_path / "rg.parquet")
    s = r.summary
    assert s["to"]["status_rates"].get("ambiguous", 0) > 0  # 2.0 has ambiguous groups, 1.1 none
    assert "ambiguous" not in s["from"]["status_rates"]
    assert s["new_groups"] and s["vanished_groups"]
    drg = r.matrix.filter(pc.equal(r.matrix["level"], "drg")).to_pylist()
    for side in ("from", "to"):  # renormalised on the cases kept after trimming: about 1 over all
        w = s["weights"][side]
        n = {}
        for row in drg:
            if row[side] in w:
                n[row[side]] = n.get(row[side], 0) + row["cases"]
        assert all(v > 0 for v in w.values())
        assert sum(n[d] * w[d] for d in n) / sum(n.values()) == pytest.approx(1.0, rel=0.01)
    assert s["weight_options"]["trim"] == "iqr:1.5"
    t = pq.read_table(tmp_path / "rg.parquet")
    assert len(s["hospital_cmi"]) == 12 and all(0.2 < v["from"] < 5 for v in s["hospital_cmi"].values())
    assert t.schema.metadata[b"drg.regroup_to"].startswith(b"chs-drg-2.0 2.0")


def test_regroup_command(tmp_path, province):
    runner = CliRunner()
    args = ["regroup", str(province), "--from", "chs-drg-1.1", "--to", "chs-drg-2.0", "-o", str(tmp_path / "o.parquet"),
            "--matrix", str(tmp_path / "m.parquet"), "--summary", str(tmp_path / "s.json"),
            "--report", str(tmp_path / "r.html")]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "DRG changed for" in result.stderr
    assert pq.read_table(tmp_path / "m.parquet").column_names == ["level", "from", "from_name", "to", "to_name", "cases"]
    assert json.loads((tmp_path / "s.json").read_text())["weight_options"]["trim"] == "iqr:1.5"
    trimmed = runner.invoke(main, [*args, "--overwrite", "--trim", "pct:1-99", "--min-cases", "10"])
    assert trimmed.exit_code == 0 and json.loads((tmp_path / "s.json").read_text())["weight_options"] == {
        "trim": "pct:1-99", "min_cases": 10}
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "chs-drg-2.0" in html and html.count("data:image/png;base64,") >= 4
    again = runner.invoke(main, args)
    assert again.exit_code == 1 and "won't be overwritten" in again.stderr
    bad = runner.invoke(main, ["regroup", str(province), "--to", "chs-drg-9", "-o", str(tmp_path / "x.csv")])
    assert bad.exit_code == 1 and "chs-drg-9" in bad.stderr
    table = pq.read_table(province).drop_columns(["px"])
    pq.write_table(table, tmp_path / "nopx.parquet")
    missing = runner.invoke(main, ["regroup", str(tmp_path / "nopx.parquet"), "-o", str(tmp_path / "y.csv")])
    assert missing.exit_code == 2 and "px" in missing.stderr


def test_convert_codes_maps_old_codes_and_reports_unmapped(tmp_path, both):
    g1, g2 = both
    rs = g2.ruleset
    old, new = next((a, b) for a, b in rs.dx_map.items() if a != b and b in g2.compiled.dx_codes)
    t = pa.table({"case_id": ["1", "2", "3"], "sex": [1, 1, 2], "age": [50, 60, 70],
                  "dx": [[old], [new, "NOT.A.CODE"], []], "px": [[], [], []]})
    src = tmp_path / "old.parquet"
    pq.write_table(t, src)
    r = regroup([src], g1, g2, tmp_path / "o.parquet", convert_codes=True)
    out = pq.read_table(tmp_path / "o.parquet")
    converted_alone = g2.group_one(sex=1, age=50, dx=[new])
    assert out["to_drg"].to_pylist()[0] == converted_alone.drg
    assert r.summary["unmapped_codes"]["dx"]["top"] == {"NOT.A.CODE": 1}
    assert r.summary["principal_dx_unknown"] == 0  # after conversion every principal is known
    unconverted = regroup([src], g1, g2, tmp_path / "u.parquet")
    assert unconverted.summary["principal_dx_unknown"] == int(old not in g2.compiled.dx_codes)
    with pytest.raises(ValueError, match="no code mapping"):
        regroup([src], g1, grouper.Grouper("anyang-2021"), tmp_path / "x.parquet", convert_codes=True)


def test_codes_of_another_edition_get_a_clear_warning(tmp_path):
    t = pa.table({"sex": [1, 2, 1], "age": [40, 50, 60], "dx": [["X1"], ["X2"], ["X3"]], "px": [[], [], []]})
    src = tmp_path / "other.parquet"
    pq.write_table(t, src)
    r = CliRunner().invoke(main, ["regroup", str(src), "-o", str(tmp_path / "o.csv")])
    assert r.exit_code == 0 and "another edition" in r.stderr and "--convert-codes" in r.stderr


def test_version_changes_20_to_30_agree_with_the_per_case_results(tmp_path):
    """2.0 -> 3.0 on the 3.0 edge cases (fails inside MDCP, QY, age and robot splits): every new
    summary figure recomputed from the per-case output and the two schemes' tables."""
    g20, g30 = grouper.Grouper("chs-drg-2.0"), grouper.Grouper("chs-drg-3.0")
    src = DATA / "chs-drg-3.0" / "golden_edge.csv"
    out = tmp_path / "both.parquet"
    res = regroup([src], g20, g30, out, summary=tmp_path / "s.json", report=tmp_path / "r.html")
    s = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    t = pq.read_table(out).to_pylist()

    # not grouped, by MDC: the X000-style fails keep their MDC, a case no MDC took has 0000
    expected = {}
    for r in t:
        if r["to_status"] != "grouped":
            key = (r["to_status"], r["to_mdc"])
            expected[key] = expected.get(key, 0) + 1
    got = {(st, m): n for st, per in s["not_grouped_by_mdc"]["to"].items() for m, n in per.items()}
    assert got == expected
    assert got[("ungroupable", "MDCP")] == 7  # the edge file's fails inside MDCP
    assert all(r["to_drg"] == "P000" for r in t if r["to_status"] == "ungroupable" and r["to_mdc"] == "MDCP")

    # DRGs defined in one version only, from the tables
    def published(g):
        fail = set(g.ruleset.engine.get("fail_adrgs", ()))
        return {code for rule, code in g.ruleset.drgs if rule not in fail}
    assert s["drgs_only_in_to"] == sorted(published(g30) - published(g20))
    assert s["drgs_only_in_from"] == sorted(published(g20) - published(g30))
    assert "BV1E" in s["drgs_only_in_to"] and not any(d.endswith("000") for d in s["drgs_only_in_to"])
    only_to = set(s["drgs_only_in_to"])
    assert s["cases_into_drgs_only_in_to"] == sum(
        1 for r in t if r["from_drg"] != r["to_drg"] and r["to_drg"] in only_to)

    # cases moving into DRGs whose split reads age / the robot list
    def moved_into(test):
        return sum(1 for r in t if r["from_drg"] != r["to_drg"] and test(r["to_drg"]))
    age = s["moves_into_splits"]["age"]
    assert age["cases"] == moved_into(lambda d: d[-1] in "CDEFGH") > 0  # 3.0's age-split suffixes
    robot = s["moves_into_splits"]["any_px_in OP_ARB"]
    assert robot["cases"] == moved_into(lambda d: d.endswith("0") and not d.endswith("000")) > 0
    assert sum(d["cases"] for d in robot["top"]) <= robot["cases"]
    assert res.rows == len(t)

    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "What changes with the version" in html and "any_px_in OP_ARB" in html and "MDCP" in html

# ----------------------------------------------------------------------------- issue 18 leftovers

def test_keep_of_output_column_names_is_renamed_and_the_summary_counts_the_grouper(tmp_path, both):
    """--keep of a file regrouped before (from_status, to_drg, ...): every kept column with a
    name of regroup's output comes as input_<name>; the results, the matrix and the summary are
    this run's (the case is grouped under both rulesets; the input says invalid/ZZ99)."""
    src = tmp_path / "again.csv"
    src.write_text("case_id,sex,age,dx,px,from_status,to_drg,from_drg,status,hospital_id\n"
                   "7,1,65,C61.x00,60.5x02,invalid,ZZ99,ZZ99,old,H1\n", encoding="utf-8")
    out, summ, mat = tmp_path / "o.csv", tmp_path / "s.json", tmp_path / "m.csv"
    keep = ["case_id", "from_status", "to_drg", "from_drg", "status", "hospital_id"]
    r = CliRunner().invoke(main, ["regroup", str(src), "-o", str(out), "--summary", str(summ), "--matrix", str(mat),
                                  "--from", "chs-drg-1.1", "--to", "chs-drg-2.0",
                                  *(a for c in keep for a in ("--keep", c))])
    assert r.exit_code == 0, r.output
    t = pcsv.read_csv(out, convert_options=pcsv.ConvertOptions(strings_can_be_null=False,
                                                                   column_types={"case_id": pa.string()}))
    results = [f"{side}_{c}" for side in ("from", "to") for c in ("status", "mdc", "adrg", "drg", "cc_level")]
    assert t.column_names == ["case_id", *results, "input_from_status", "input_to_drg", "input_from_drg",
                              "status", "hospital_id"]
    g1, g2 = both
    row = t.to_pylist()[0]
    want = (g1.group_one(sex=1, age=65, dx=["C61.x00"], px=["60.5x02"]),
            g2.group_one(sex=1, age=65, dx=["C61.x00"], px=["60.5x02"]))
    assert (row["case_id"], row["from_status"], row["from_drg"], row["to_drg"]) == (
        "7", "grouped", want[0].drg, want[1].drg)
    assert (row["input_from_status"], row["input_to_drg"], row["input_from_drg"], row["status"]) == (
        "invalid", "ZZ99", "ZZ99", "old")
    s = json.loads(summ.read_text(encoding="utf-8"))
    assert s["from"]["status_counts"] == {"grouped": 1}
    drg = [m for m in pcsv.read_csv(mat).to_pylist() if m["level"] == "drg"]
    assert drg == [{"level": "drg", "from": want[0].drg, "from_name": want[0].drg_name, "to": want[1].drg,
                    "to_name": want[1].drg_name, "cases": 1}]


def test_keep_whose_new_name_is_also_kept_exits_2_naming_the_file(tmp_path):
    src = tmp_path / "both.csv"
    src.write_text("sex,age,dx,px,to_drg,input_to_drg\n1,65,C61.x00,,ZZ99,x\n", encoding="utf-8")
    out = tmp_path / "o.parquet"
    r = CliRunner().invoke(main, ["regroup", str(src), "-o", str(out), "--keep", "to_drg", "--keep", "input_to_drg"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "both.csv: keep 'input_to_drg': its output name 'input_to_drg' is already used by kept column " \
           "'to_drg'" in r.stderr
    assert not out.exists()
    alone = CliRunner().invoke(main, ["regroup", str(src), "-o", str(out), "--keep", "input_to_drg"])
    assert alone.exit_code == 0 and pq.read_table(out)["input_to_drg"].to_pylist() == ["x"]

"""Recalibration experiments: two weight sets side by side on the same cases, by library and CLI."""

import json

import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
from click.testing import CliRunner

from grouper.cli.main import main
from grouper.analytics.indices import IndexCells
from grouper.analytics.recalibrate import recalibrate
from grouper.analytics.weights import CostSample, WeightOptions


def cases():
    """H1: 3 cases of AA11 and one BB11; H2: one AA11 and three BB11 (one without a cost)."""
    rows = [("H1", "AA11", 1000.0), ("H1", "AA11", 1100.0), ("H1", "AA11", 900.0), ("H1", "BB11", 3000.0),
            ("H2", "AA11", 1000.0), ("H2", "BB11", 3100.0), ("H2", "BB11", 2900.0), ("H2", "BB11", None)]
    h, d, c = map(list, zip(*rows))
    return pa.table({"hospital_id": h, "drg": d, "adrg": [x[:3] for x in d], "status": ["grouped"] * len(h),
                     "total_cost": pa.array(c, pa.float64()), "los": [5] * len(h), "discharge": ["1"] * len(h)})


def weights(**rw):
    return pa.table({"drg": list(rw), "rw": list(rw.values())})


def test_two_weight_tables_side_by_side():
    r = recalibrate(IndexCells().add(cases()), weights(AA11=0.5, BB11=1.5), weights(AA11=0.6, BB11=1.5, CC11=2.0))
    cmp = {row["drg"]: row for row in r.comparison.to_pylist()}
    assert cmp["AA11"]["change"] == pytest.approx(0.1) and cmp["AA11"]["relative_change"] == pytest.approx(0.2)
    assert cmp["CC11"]["rw_a"] is None and cmp["CC11"]["cases"] == 0  # a new group: null on side a
    assert (cmp["AA11"]["cases"], cmp["BB11"]["cases"]) == (4, 3)  # the case without a cost is left out
    budget = r.budget()
    assert budget["total_weight_a"] == pytest.approx(4 * 0.5 + 3 * 1.5)
    assert budget["change"] == pytest.approx(4 * 0.1)
    h = {row["hospital"]: row for row in r.hospitals.to_pylist()}
    assert h["H1"]["cmi_a"] == pytest.approx((3 * 0.5 + 1.5) / 4) and h["H1"]["cmi_change"] == pytest.approx(0.3 / 4)
    assert h["H2"]["cmi_change"] == pytest.approx(0.1 / 3)
    assert r.excluded["null_cost"] == 1


def test_two_trimming_rules_on_the_cases_themselves():
    t = cases()
    r = recalibrate(IndexCells().add(t), WeightOptions(trim="none", min_cases=1),
                    WeightOptions(trim="iqr:1.5", min_cases=1), CostSample().add(t))
    # both sides renormalised on the same cases: the budget does not move, hospitals may
    assert r.budget()["change"] == pytest.approx(0, abs=1e-3)
    assert r.weights_a.num_rows == r.weights_b.num_rows == 2
    with pytest.raises(ValueError, match="CostSample"):
        recalibrate(IndexCells().add(t), WeightOptions(), weights(AA11=1.0))


def test_recalibrate_command(tmp_path, synth_province):
    src = synth_province(20_000, hospitals=6, seed=5)
    run = CliRunner().invoke
    assert run(main, ["weights", str(src), "-o", str(tmp_path / "w.csv")]).exit_code == 0
    r = run(main, ["recalibrate", str(src), "-a", str(tmp_path / "w.csv"), "-b", "sdlog:2", "-o",
                   str(tmp_path / "cmp.csv"), "--by-hospital", str(tmp_path / "h.csv"), "--summary",
                   str(tmp_path / "s.json"), "--report", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    cmp = pcsv.read_csv(tmp_path / "cmp.csv")
    assert cmp.column_names[:6] == ["drg", "drg_name", "rw_a", "rw_b", "change", "relative_change"] and cmp.num_rows > 100
    assert pcsv.read_csv(tmp_path / "h.csv").num_rows == 6
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["budget"]["total_weight_a"] > 0 and "no_weight" in s["excluded"]
    assert (tmp_path / "r.html").read_text(encoding="utf-8").count("data:image/png;base64,") == 3
    bad = run(main, ["recalibrate", str(src), "-a", "nonsense", "-b", "none", "-o", str(tmp_path / "x.csv")])
    assert bad.exit_code == 2 and "neither a weights file nor a trimming rule" in bad.output


def test_indices_report(tmp_path, synth_province):
    src = synth_province(10_000, hospitals=5, seed=6)
    run = CliRunner().invoke
    assert run(main, ["weights", str(src), "-o", str(tmp_path / "w.csv")]).exit_code == 0
    r = run(main, ["indices", str(src), "-w", str(tmp_path / "w.csv"), "-o", str(tmp_path / "i.csv"),
                   "--report", str(tmp_path / "i.html")])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "i.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 3 and "H0001" in html and "CMI" in html

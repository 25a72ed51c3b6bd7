"""The weights report: one self-contained HTML file, real PNGs, key numbers, escaping, atomic."""

import base64
import dataclasses
import re
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import grouper
from grouper.analytics.indices import hospital_indices
from grouper.report import write_weights_report
from grouper.analytics.weights import WeightOptions, compute_weights


@pytest.fixture
def matplotlib():
    """The reports draw with matplotlib (the report extra): a test that draws skips without it;
    the one that checks the error without it runs either way."""
    return pytest.importorskip("matplotlib")


IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def grouped(synth_table):
    prov = synth_table(20_000, hospitals=12, seed=3, ruleset="chs-drg-1.1")
    return grouper.Grouper("chs-drg-1.1").group(prov, keep=["hospital_id", "total_cost", "los", "discharge", "dept"])


@pytest.fixture(scope="module")
def result(grouped):
    return compute_weights(grouped, WeightOptions())


@pytest.fixture(scope="module")
def indices(grouped, result):
    return hospital_indices(grouped, result.weights())


def pngs(text: str) -> list[bytes]:
    return [base64.b64decode(p) for p in IMG.findall(text)]


@pytest.mark.usefixtures("matplotlib")
def test_report_with_indices(tmp_path, result, indices):
    table = indices[0]
    path = write_weights_report(result, tmp_path / "w.html", indices=table, title="省级权重 2025", trim="iqr:1.5")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert '<meta charset="utf-8">' in text and "省级权重 2025" in text
    images = pngs(text)
    assert len(images) >= 6 and all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in images)
    assert f"<td>{result.table.num_rows:,}</td>" in text  # group count
    assert f"{result.riv:.4f}" in text and "0.70" in text
    assert f"{result.mean_cost:,.2f}" in text
    kept, trimmed = pc.sum(result.table["n"]).as_py(), pc.sum(result.table["n_trimmed"]).as_py()
    assert f"{kept:,}" in text and f"{trimmed:,}" in text and "Tukey" in text
    for reason, count in result.excluded.items():
        assert f"<td>{reason}</td><td>{count:,}</td>" in text
    top = max(result.table.to_pylist(), key=lambda r: r["rw"])
    assert f"<td>{top['drg']}</td>" in text and f"{top['rw']:.4f}" in text
    assert "unstable" in text  # the flagged groups table
    for h in table["hospital"].to_pylist():
        assert f"<td>{h}</td>" in text
    best = max(table.to_pylist(), key=lambda r: r["cmi"])
    assert f"<td>1</td><td>{best['hospital']}</td>" in text  # sorted by CMI, highest first
    assert "Hospitals by CMI" in text


@pytest.mark.usefixtures("matplotlib")
def test_report_without_indices(tmp_path, result):
    text = write_weights_report(result, tmp_path / "w.html").read_text(encoding="utf-8")
    images = pngs(text)
    assert len(images) >= 3 and all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in images)
    assert "Hospitals by CMI" not in text and f"{result.riv:.4f}" in text
    assert "not given" in text  # no trimming rule passed


@pytest.mark.usefixtures("matplotlib")
def test_indices_pair_departments_and_names_that_are_not_ascii(tmp_path, grouped, result):
    """hospital_indices' (table, excluded) pair as it comes; Chinese and '$' names do not reach the
    plots (numbered there), yet appear, escaped, in the HTML."""
    names = {"H0001": "市第一人民医院", "H0002": "A$B$ hospital", "H0003": "x_{y}^2 $\\alpha"}
    hid = pc.cast(grouped["hospital_id"], pa.string())
    renamed = grouped.set_column(grouped.column_names.index("hospital_id"), "hospital_id",
                                 pa.array([names.get(h, h) for h in hid.to_pylist()]))
    table, excluded = hospital_indices(renamed, result.weights(), department="dept")
    text = write_weights_report(result, tmp_path / "w.html", indices=(table, excluded)).read_text(encoding="utf-8")
    assert len(pngs(text)) >= 6
    assert "市第一人民医院" in text and "科室 / department" in text and "Rows left out of the indices" in text
    assert "and 200 more units" in text  # 500 hospital x department rows, 300 listed


@pytest.mark.usefixtures("matplotlib")
def test_refuses_to_overwrite(tmp_path, result):
    path = tmp_path / "w.html"
    path.write_text("keep me", encoding="utf-8")
    with pytest.raises(FileExistsError):
        write_weights_report(result, path)
    assert path.read_text(encoding="utf-8") == "keep me"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    write_weights_report(result, path, overwrite=True)
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@pytest.mark.usefixtures("matplotlib")
def test_text_is_escaped(tmp_path, result, indices):
    table = indices[0]
    hosp = table["hospital"].to_pylist()
    table = table.set_column(0, "hospital", pa.array(["a&b<i>"] + hosp[1:]))
    drg = result.table["drg"].to_pylist()
    top = drg.index(max(result.table.to_pylist(), key=lambda r: r["rw"])["drg"])
    drg[top] = "<b>X</b>"
    bad = dataclasses.replace(result, table=result.table.set_column(0, "drg", pa.array(drg)))
    text = write_weights_report(bad, tmp_path / "w.html", indices=table, title="<script>alert(1)</script>",
                                trim="<i>mine</i>").read_text(encoding="utf-8")
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "a&b<i>" not in text and "a&amp;b&lt;i&gt;" in text
    assert "<b>X</b>" not in text and "&lt;b&gt;X&lt;/b&gt;" in text
    assert "<i>mine</i>" not in text and "&lt;i&gt;mine&lt;/i&gt;" in text


@pytest.mark.usefixtures("matplotlib")
def test_tiny_inputs(tmp_path):
    """One hospital, two groups of a few cases, no length of stay: nothing to plot crashes."""
    t = pa.table({"drg": ["AA11"] * 3 + ["BB11"] * 2, "adrg": ["AA1"] * 3 + ["BB1"] * 2,
                  "status": ["grouped"] * 5, "total_cost": [100.0, 120, 110, 900, 1000],
                  "los": [1.0, 2, 1, 5, 6], "hospital_id": ["H"] * 5, "discharge": ["1"] * 5})
    r = compute_weights(t, WeightOptions(min_cases=1), los=None)
    idx = hospital_indices(t, r.weights())
    text = write_weights_report(r, tmp_path / "w.html", indices=idx, trim="pct:5-95").read_text(encoding="utf-8")
    assert all(p.startswith(b"\x89PNG") for p in pngs(text)) and "<td>2</td>" in text
    empty = compute_weights(t.slice(0, 0), WeightOptions())
    text = write_weights_report(empty, tmp_path / "e.html").read_text(encoding="utf-8")
    assert pngs(text) == [] and "<td>0</td>" in text


def test_clear_error_without_matplotlib(tmp_path, result, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(RuntimeError, match=r"pip install 'drg-grouper\[report\]'"):
        write_weights_report(result, tmp_path / "w.html")
    assert not (tmp_path / "w.html").exists()

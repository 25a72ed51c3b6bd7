"""The regrouping HTML report: one self-contained file, real PNGs, no crash without costs, atomic."""

import base64
import re
import sys

import pytest

import grouper
from grouper.jobs.regroup import regroup
from grouper.report import write_regroup_report

from conftest import DATA


@pytest.fixture
def matplotlib():
    """The reports draw with matplotlib (the report extra): a test that draws skips without it;
    the one that checks the error without it runs either way."""
    return pytest.importorskip("matplotlib")


IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def both():
    return grouper.Grouper("chs-drg-1.1"), grouper.Grouper("chs-drg-2.0")


@pytest.fixture(scope="module")
def province(tmp_path_factory, both, synth_province):
    """A small province with costs and hospitals, regrouped once for the module."""
    d = tmp_path_factory.mktemp("report")
    return regroup([synth_province(20_000, hospitals=12, seed=3)], *both, d / "rg.parquet")


@pytest.fixture(scope="module")
def edge(tmp_path_factory, both):
    """Reference cases: no cost or hospital column, and invalid inputs."""
    d = tmp_path_factory.mktemp("report_edge")
    return regroup([DATA / "chs-drg-2.0" / "golden_edge.csv"], *both, d / "rg.parquet")


def pngs(text: str) -> list[bytes]:
    return [base64.b64decode(p) for p in IMG.findall(text)]


@pytest.mark.usefixtures("matplotlib")
def test_report_with_costs_and_hospitals(tmp_path, province):
    s = province.summary
    assert "weights" in s and "hospital_cmi" in s
    path = write_regroup_report(s, province.matrix, tmp_path / "r.html")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert '<meta charset="utf-8">' in text and "迁移报告" in text
    for side in ("from", "to"):
        assert s[side]["ruleset"] in text and s[side]["fingerprint"] in text
    for key in ("share_mdc_changed", "share_adrg_changed", "share_drg_changed"):
        assert f"{s[key]:.2%}" in text
    assert f"<td>{len(s['new_groups'])}</td>" in text and f"<td>{len(s['vanished_groups'])}</td>" in text
    assert f"{s['rows']:,}" in text
    rate = s["to"]["status_rates"]["grouped"]
    assert f"{rate:.2%}" in text
    images = pngs(text)
    assert len(images) == 5 and all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in images)
    move = s["largest_drg_moves"][0]
    assert f"<td>{move['from']}</td><td>{move['to']}</td>" in text
    assert "CMI" in text


@pytest.mark.usefixtures("matplotlib")
def test_report_without_costs(tmp_path, edge):
    s = edge.summary
    assert "weights" not in s and "hospital_cmi" not in s
    text = write_regroup_report(s, edge.matrix, tmp_path / "r.html").read_text(encoding="utf-8")
    images = pngs(text)
    assert len(images) == 3 and all(p.startswith(b"\x89PNG") for p in images)
    assert "Hospitals whose CMI" not in text and "invalid" in text
    assert f"{s['share_drg_changed']:.2%}" in text


@pytest.mark.usefixtures("matplotlib")
def test_refuses_to_overwrite(tmp_path, edge):
    path = tmp_path / "r.html"
    path.write_text("keep me", encoding="utf-8")
    with pytest.raises(FileExistsError):
        write_regroup_report(edge.summary, edge.matrix, path)
    assert path.read_text(encoding="utf-8") == "keep me"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    write_regroup_report(edge.summary, edge.matrix, path, overwrite=True)
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@pytest.mark.usefixtures("matplotlib")
def test_text_is_escaped(tmp_path, edge):
    s = dict(edge.summary, new_groups=["<script>x</script>"])
    s["from"] = dict(s["from"], ruleset="a&b<i>")
    text = write_regroup_report(s, edge.matrix, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "a&b<i>" not in text and "a&amp;b&lt;i&gt;" in text


def test_clear_error_without_matplotlib(tmp_path, edge, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(RuntimeError, match=r"pip install 'drg-grouper\[report\]'"):
        write_regroup_report(edge.summary, edge.matrix, tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()

"""Whole-output snapshots of every command on fixed inputs: a refactor must not change one byte.

Each command of the README walk-through runs through the real CLI on committed inputs (the
30-case sample, the wide export and two small synthetic years under ``tests/data/snapshot/``), and
every table, JSON summary and HTML report it writes is compared with ``tests/snapshots/``.
Only what legitimately varies between runs is taken out first: timings, temporary paths, the
ruleset fingerprint (it has its own tests) and the pictures inside HTML reports (matplotlib's
bytes change with its version; the tables and text around them are kept).

Regenerate after a *deliberate* change of output with ``DRG_UPDATE_SNAPSHOTS=1 pytest
tests/system/test_snapshots.py`` and review the diff of ``tests/snapshots/`` like any other change.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from grouper.cli.main import main

from conftest import TESTS

HERE = TESTS  # tests/: data/ and snapshots/
DATA = HERE / "data"
INPUTS = DATA / "snapshot"
SNAPSHOTS = HERE / "snapshots"
UPDATE = os.environ.get("DRG_UPDATE_SNAPSHOTS") == "1"

# JSON keys whose values vary from run to run (timings, where the run happened) or are pinned elsewhere.
_VOLATILE_KEY = re.compile(r"second|elapsed|timing|duration|time_s|rate_per|per_s|cases_per|started|"
                           r"finished|created|generated|fingerprint|path|file|host|python|platform")


REPO = str(HERE.parent)


def _paths(text: str, tmp: str) -> str:
    """Paths differ between checkouts and runs: name them by role."""
    return text.replace(tmp, "<tmp>").replace(REPO, "<repo>")


def _scrub_json(value, tmp: str):
    if isinstance(value, dict):
        return {k: ("<volatile>" if _VOLATILE_KEY.search(k) else _scrub_json(v, tmp)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_json(v, tmp) for v in value]
    if isinstance(value, str):
        return _paths(value, tmp)
    return value


def _render_table(table: pa.Table) -> str:
    """A table as CSV text plus its schema: types and values are both pinned."""
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    meta = {k: ("<volatile>" if _VOLATILE_KEY.search(k) else v) for k, v in sorted(meta.items())}
    head = "\n".join(f"# {f.name}: {f.type}" for f in table.schema) + "\n"
    head += "".join(f"# meta {k} = {v}\n" for k, v in meta.items())
    sink = pa.BufferOutputStream()
    plain = table.replace_schema_metadata(None)
    # CSV cannot carry lists or dictionaries: render them through their Python values.
    cols = []
    for name, col in zip(plain.column_names, plain.columns):
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            col = pa.array(["|".join(map(str, v)) if v is not None else None for v in col.to_pylist()], pa.string())
        elif pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        cols.append(col)
    pcsv.write_csv(pa.table(cols, names=plain.column_names), sink)
    return head + sink.getvalue().to_pybytes().decode()


def _render(path: Path, tmp: str) -> str:
    suffix = path.suffix
    if suffix == ".json":
        return json.dumps(_scrub_json(json.loads(path.read_text(encoding="utf-8")), tmp),
                          ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    if suffix == ".html":
        text = _paths(path.read_text(encoding="utf-8"), tmp)
        text = re.sub(r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=]+", "data:image", text)
        text = re.sub(r"<svg.*?</svg>", "<svg/>", text, flags=re.S)
        text = re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?", "<time>", text)
        text = re.sub(r"[0-9a-f]{64}", "<sha256>", text)
        text = re.sub(r"[\d,.]+ ?(例/秒|cases/s)", "<speed>", text)
        text = re.sub(r"\d+(\.\d+)? ?(s|ms|秒)\b", "<dur>", text)
        return text
    if suffix == ".parquet":
        return _render_table(pq.read_table(path))
    if suffix == ".csv":
        return _paths(path.read_text(encoding="utf-8"), tmp)
    if suffix == ".txt":
        text = _paths(path.read_text(encoding="utf-8"), tmp)
        return re.sub(r"[\d.,]+ ?(M |k )?(cases/s|s\b|µs)", "<speed>", text)
    raise AssertionError(f"no renderer for {path.name}")


SAMPLE = DATA / "chs-drg-1.1" / "sample.csv"
Y23, Y24 = INPUTS / "cases_2023.parquet", INPUTS / "cases_2024.parquet"
R = ["-r", "chs-drg-1.1"]

# (snapshot name, command line); {o} is the output folder, outputs are the files it names.
COMMANDS: list[tuple[str, list[str]]] = [
    ("group_sample", ["group", str(SAMPLE), *R, "-o", "{o}/grouped.csv", "--summary", "{o}/summary.json"]),
    ("group_sample_print", ["group", str(SAMPLE), *R, "--limit", "40"]),
    ("group_wide", ["group", str(DATA / "wide_sample.csv"), *R, "-o", "{o}/grouped.parquet"]),
    ("group_province", ["group", str(Y24), *R, "-o", "{o}/grouped.parquet", "--keep", "hospital_id",
                        "--summary", "{o}/summary.json"]),
    ("group_province_20", ["group", str(Y24), "-r", "chs-drg-2.0", "-o", "{o}/grouped.csv"]),
    ("regroup", ["regroup", str(Y24), "--from", "chs-drg-1.1", "--to", "chs-drg-2.0", "-o", "{o}/both.parquet",
                 "--matrix", "{o}/matrix.csv", "--summary", "{o}/summary.json", "--report", "{o}/regroup.html"]),
    ("weights", ["weights", str(Y23), str(Y24), *R, "-o", "{o}/weights.csv", "--trim", "iqr:1.5",
                 "--min-cases", "5", "--summary", "{o}/summary.json", "--report", "{o}/weights.html"]),
    ("weights_years", ["weights", str(Y23), str(Y24), *R, "-o", "{o}/weights.parquet", "--trim", "sdlog:2",
                       "--year-column", "year", "--year-weights", "2023=1,2024=3"]),
    ("indices", ["indices", str(Y24), *R, "-w", "{w}", "-o", "{o}/hospitals.csv", "--report", "{o}/indices.html"]),
    ("indices_dept", ["indices", str(Y24), *R, "-w", "{w}", "-o", "{o}/departments.csv",
                      "--department-column", "dept"]),
    ("recalibrate", ["recalibrate", str(Y24), *R, "-a", "{w}", "-b", "sdlog:2", "-o", "{o}/per_drg.csv",
                     "--by-hospital", "{o}/hospitals.csv", "--summary", "{o}/summary.json",
                     "--report", "{o}/recalibrate.html"]),
    ("settle", ["settle", str(Y24), *R, "-p", "illustrative-2024", "-w", "{w}", "-o", "{o}/cases.parquet",
                "--by-hospital", "{o}/hospitals.csv", "--months", "{o}/months.csv", "--summary", "{o}/run.json",
                "--report", "{o}/settle.html"]),
    ("dip_catalogue", ["dip", "catalogue", str(Y23), str(Y24), *R, "-o", "{o}/catalogue.parquet",
                       "-p", "illustrative-2024", "--summary", "{o}/summary.json"]),
    ("dip_settle", ["dip", "settle", str(Y24), *R, "-c", "{c}", "-p", "illustrative-2024",
                    "-o", "{o}/cases.parquet", "--by-hospital", "{o}/hospitals.csv", "--summary", "{o}/totals.json"]),
    ("explain", ["explain", "--sex", "1", "--age", "65", "--dx", "C61.x00|I10.x00x002", "--px", "60.5x02", *R]),
    ("explain_json", ["explain", '{"sex": 2, "age": 88, "dx": ["K22.301", "K11.901"], "px": ["96.0800x005"]}',
                      *R, "--json"]),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run every command once (in order: weights and the catalogue feed later commands)."""
    root = tmp_path_factory.mktemp("snap")
    runner = CliRunner()
    done: dict[str, tuple[Path, object]] = {}
    weights = catalogue = None
    for name, argv in COMMANDS:
        out = root / name
        out.mkdir()
        args = [a.replace("{o}", str(out)).replace("{w}", str(weights)).replace("{c}", str(catalogue)) for a in argv]
        res = runner.invoke(main, args, catch_exceptions=False)
        assert res.exit_code == 0, (name, res.output)
        (out / "stdout.txt").write_text(res.stdout, encoding="utf-8")
        if name == "weights":
            weights = out / "weights.csv"
        if name == "dip_catalogue":
            catalogue = out / "catalogue.parquet"
        done[name] = (out, res)
    return root, done


def _artifacts(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_file())


@pytest.mark.parametrize("name", [n for n, _ in COMMANDS])
def test_snapshot(runs, name):
    root, done = runs
    out, _ = done[name]
    want_dir = SNAPSHOTS / name
    produced = {p.name + ".snap": _render(p, str(root)) for p in _artifacts(out)}
    if UPDATE:
        want_dir.mkdir(parents=True, exist_ok=True)
        for old in want_dir.glob("*.snap"):
            old.unlink()
        for fname, text in produced.items():
            (want_dir / fname).write_text(text, encoding="utf-8")
    expected = {p.name: p.read_text(encoding="utf-8") for p in sorted(want_dir.glob("*.snap"))}
    assert sorted(produced) == sorted(expected), f"{name}: the set of output files changed"
    for fname, text in produced.items():
        assert text == expected[fname], f"{name}/{fname} differs from tests/snapshots/{name}/{fname}"


def test_synth_is_pinned(tmp_path):
    """The generator itself: the same seed gives the same cases (the inputs above came from it)."""
    out = tmp_path / "s.parquet"
    res = CliRunner().invoke(main, ["synth", "-n", "300", "--hospitals", "5", "--seed", "3", *R, "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = _render_table(pq.read_table(out))
    want = SNAPSHOTS / "synth_300.snap"
    if UPDATE:
        want.write_text(text, encoding="utf-8")
    assert text == want.read_text(encoding="utf-8")

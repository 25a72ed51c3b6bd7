"""A cases file without a column a command needs (issue 18 leftover): every command stops before
any work with exit 2 (a usage error, as for `drg group`) and one line that names the file and
the column, whichever command reads it and whichever column it is. (`drg settle` reads a
column that only some of its files have as null in the others; none having it is the error.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from grouper.cli.main import main


@pytest.fixture(scope="module")
def prov(tmp_path_factory, synth_province) -> Path:
    """A small synthetic province (every column), its weights and a DIP catalogue."""
    d = tmp_path_factory.mktemp("missing")
    shutil.copyfile(synth_province(600, hospitals=3, seed=11), d / "p.parquet")
    for args in (["weights", d / "p.parquet", "-o", d / "w.csv"],
                 ["dip", "catalogue", d / "p.parquet", "-o", d / "cat.parquet", "--core-min-n", "5"]):
        r = CliRunner().invoke(main, [str(a) for a in args])
        assert r.exit_code == 0, r.output
    return d


COMMANDS = {
    "weights": ["weights", "{f}", "-o", "{o}/o.csv"],
    "indices": ["indices", "{f}", "-w", "{d}/w.csv", "-o", "{o}/o.csv"],
    "recalibrate": ["recalibrate", "{f}", "-a", "{d}/w.csv", "-b", "iqr:1.5", "-o", "{o}/o.csv"],
    "settle": ["settle", "{f}", "-p", "illustrative-2024", "-w", "{d}/w.csv", "-o", "{o}/o.parquet"],
    "dip catalogue": ["dip", "catalogue", "{f}", "-o", "{o}/o.parquet"],
    "dip assign": ["dip", "assign", "{f}", "-c", "{d}/cat.parquet", "-o", "{o}/o.parquet"],
    "dip settle": ["dip", "settle", "{f}", "-c", "{d}/cat.parquet", "-p", "illustrative-2024", "-o", "{o}/o.parquet"],
}
CASES = [  # (command, a column it needs)
    *((c, "dx") for c in COMMANDS),  # grouping (DRG) or assigning (DIP) reads the diagnoses
    ("weights", "total_cost"), ("indices", "total_cost"), ("indices", "hospital_id"), ("indices", "los"),
    ("recalibrate", "total_cost"), ("recalibrate", "hospital_id"), ("recalibrate", "discharge"),
    ("settle", "total_cost"), ("settle", "hospital_id"), ("settle", "los"), ("settle", "discharge"),
    ("dip catalogue", "total_cost"), ("dip settle", "total_cost"), ("dip settle", "hospital_level"),
]


@pytest.mark.parametrize("command, column", CASES)
def test_a_missing_column_exits_2_naming_the_file_and_the_column(prov, tmp_path, command, column):
    good = tmp_path / "complete.parquet"  # a complete file first: the message names the one that lacks it
    bad = tmp_path / f"without-{column}.parquet"
    table = pq.read_table(prov / "p.parquet")
    pq.write_table(table, good)
    pq.write_table(table.drop_columns([column]), bad)
    out = tmp_path / "out"
    args = [a.format(f=good, d=prov, o=out) for a in COMMANDS[command]]
    if command == "settle":  # settle reads a column missing from one of its files as null there
        args[args.index(str(good))] = str(bad)
    else:
        args.insert(args.index(str(good)) + 1, str(bad))
    out.mkdir()
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and (r.exception is None or isinstance(r.exception, SystemExit))
    error = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert len(error) == 1 and f"without-{column}.parquet" in error[0] and column in error[0], r.stderr
    assert not list(out.iterdir())  # stopped before writing anything


def test_settle_names_the_files_when_none_has_the_column(prov, tmp_path):
    table = pq.read_table(prov / "p.parquet").drop_columns(["total_cost"])
    pq.write_table(table.slice(0, 300), tmp_path / "jan.parquet")
    pq.write_table(table.slice(300), tmp_path / "feb.parquet")
    r = CliRunner().invoke(main, ["settle", str(tmp_path / "jan.parquet"), str(tmp_path / "feb.parquet"),
                                  "-p", "illustrative-2024", "-w", str(prov / "w.csv"), "-o", str(tmp_path / "o.csv")])
    assert r.exit_code == 2, r.output
    assert f"{tmp_path / 'jan.parquet'} and the 1 other input file(s): no column 'total_cost' in the cases " \
           "(cost of each case)" in r.stderr

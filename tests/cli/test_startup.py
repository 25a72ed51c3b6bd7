"""Start-up: ``drg`` imports only what the command it runs needs. ``drg --help`` lists every
command without importing one; ``drg group`` on a small file loads none of the modules of the
other commands nor the optional libraries it does not use. Behaviour, not timing: each run is
a fresh interpreter whose ``sys.modules`` is read at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from grouper.cli._common import DrgGroup
from grouper.cli.main import COMMANDS, main

from conftest import DATA

#: Modules that `drg group` never needs for Parquet, CSV or Arrow files: the other commands'
#: layers, Excel, pandas, plotting, Dask and the web stack.
NOT_FOR_GROUP = ("grouper.cli.analytics", "grouper.cli.audit", "grouper.cli.dip", "grouper.cli.rulesets",
                 "grouper.cli.serve", "grouper.cli.settle", "grouper.analytics", "grouper.audit", "grouper.payment",
                 "grouper.report", "grouper.scale", "grouper.serve", "grouper.io.xlsx", "fastexcel", "openpyxl",
                 "pandas", "matplotlib", "dask", "distributed", "fastapi", "uvicorn", "jinja2")

_RUN = """
import json, sys
sys.argv = ["drg", *json.loads(sys.argv[1])]
from grouper.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def drg_modules(*args: str, cwd=None) -> tuple[str, set[str]]:
    """Run ``drg args`` in a fresh interpreter: (its stdout before the report, the modules it imported)."""
    p = subprocess.run([sys.executable, "-c", _RUN, json.dumps(list(args))], capture_output=True, text=True,
                       cwd=cwd, timeout=300, env={**os.environ, "COLUMNS": "80"})  # help laid out at 80 columns
    assert p.returncode == 0, p.stderr
    out, _, report = p.stdout.rstrip("\n").rpartition("\n")
    doc = json.loads(report)
    assert doc["code"] in (0, None), p.stderr
    return out, set(doc["modules"])


def loaded(modules: set[str], names) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


@pytest.fixture(scope="module")
def one_row(tmp_path_factory) -> dict[str, str]:
    """A one-case file in each format that `drg group` reads without an optional library."""
    folder = tmp_path_factory.mktemp("one")
    lines = (DATA / "chs-drg-1.1" / "sample.csv").read_text(encoding="utf-8").splitlines()[:2]
    csv = folder / "one.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    table = pa.table({"case_id": ["1"], "sex": [1], "age": [65], "dx": [["C61.x00"]], "px": [["60.5x02"]]})
    pq.write_table(table, folder / "one.parquet")
    with pa.ipc.new_file(folder / "one.arrow", table.schema) as w:
        w.write_table(table)
    return {k: str(folder / f"one.{k}") for k in ("csv", "parquet", "arrow")}


@pytest.fixture(scope="module")
def cached11():
    """chs-drg-1.1 compiled in the cache by its files (as `drg` asks for it by name), so that the runs
    below are cache hits: a miss parses the tables (the loader, the data model, the TOML parser)."""
    from grouper.engine import Grouper

    return Grouper("chs-drg-1.1")


@pytest.mark.parametrize("source, target", [("parquet", "parquet"), ("csv", "csv"), ("arrow", "arrow"),
                                            ("parquet", None)])
def test_drg_group_imports_only_what_it_needs(one_row, tmp_path, cached11, source, target):
    args = ["group", one_row[source], "-r", "chs-drg-1.1"]
    if target is not None:
        args += ["-o", str(tmp_path / f"out.{target}")]
    out, modules = drg_modules(*args)
    assert loaded(modules, NOT_FOR_GROUP) == []
    assert "grouper.cli.group" in modules and "grouper.engine.grouper" in modules  # it did run
    # pyarrow.compute (60-90 ms) and numpy.ma (8-10 ms, which pa.array imports on NumPy input)
    # are not needed for a small file of any of these formats, nor the TOML parser on a cache hit,
    # the reference interpreter and explanations;
    # pyarrow.parquet (and pyarrow.fs, 13 ms) only where a Parquet file is read or written
    assert loaded(modules, ("pyarrow.compute", "numpy.ma", "tomllib", "grouper.engine.reference",
                            "grouper.engine.explain", "grouper.rulesets.model",
                            "grouper.rulesets.loader", "grouper.rulesets.conditions", "grouper.io._gb18030")) == []
    assert ("pyarrow.parquet" in modules) == ("parquet" in (source, target))
    assert ("pyarrow.fs" in modules) == ("parquet" in (source, target))
    assert ("pyarrow.csv" in modules) == ("csv" in (source, target))
    if target is None:
        assert "MA19" in out  # the table printed for people
    else:
        assert (tmp_path / f"out.{target}").stat().st_size > 0


def test_a_small_columnar_file_is_grouped_without_pyarrow_compute(tmp_path):
    """pyarrow.compute's import is a third of a 1-row run's CPU: a small Parquet/Arrow batch of list
    codes and integers (nulls included) is read, grouped, counted and written without it, and gives
    what the in-process grouper gives."""
    from grouper.engine import Grouper

    table = pa.table({"case_id": ["1", "2"], "sex": pa.array([1, 2], pa.int8()), "age": [65, 0],
                      "age_days": pa.array([None, 10], pa.int32()), "birth_weight": pa.array([None, 3100]),
                      "dx": [["C61.x00"], ["P07.100"]], "px": [["60.5x02"], []]})
    src = tmp_path / "two.parquet"
    pq.write_table(table, src)
    _, modules = drg_modules("group", str(src), "-r", "chs-drg-1.1", "-o", str(tmp_path / "out.parquet"))
    assert "pyarrow.compute" not in modules
    got = pq.read_table(tmp_path / "out.parquet")
    want = Grouper("chs-drg-1.1").group(table)
    for c in got.column_names:
        assert got[c].to_pylist() == want[c].to_pylist(), c


def test_a_small_csv_file_is_grouped_without_pyarrow_compute(tmp_path):
    """A small CSV batch (numbers as text, '|'-joined codes, blanks and a bad number) is read by
    Python's string methods and gives what the in-process grouper gives from the same table."""
    from grouper.engine import Grouper

    src = tmp_path / "three.csv"
    src.write_text("case_id,sex,age,age_days,birth_weight,los,dx,px\n"
                   "1,1, 65 ,,,12,C61.x00|I10.x00,60.5x02\n"
                   "2,2,0,10,3100,abc,P07.100,\n"
                   "3,1,+070.0,,,3,\"K35.800,I10.x00\",\n", encoding="utf-8")
    _, modules = drg_modules("group", str(src), "-r", "chs-drg-1.1", "-o", str(tmp_path / "out.csv"))
    assert loaded(modules, ("pyarrow.compute", "numpy.ma")) == []
    got = pa_csv.read_csv(tmp_path / "out.csv", convert_options=pa_csv.ConvertOptions(
        column_types={"case_id": pa.string(), "flags": pa.int32()}, strings_can_be_null=True))
    text = {c: pa.string() for c in ("case_id", "sex", "age", "age_days", "birth_weight", "los", "dx", "px")}
    table = pa_csv.read_csv(src, convert_options=pa_csv.ConvertOptions(column_types=text))
    want = Grouper("chs-drg-1.1").group(table)
    assert got["flags"].to_pylist()[1] != 0  # los 'abc' flagged
    for c in ("case_id", "status", "mdc", "adrg", "drg", "cc_level", "flags", "reason_code", "reason"):
        assert got[c].to_pylist() == want[c].to_pylist(), c


def test_help_lists_every_command_and_imports_none():
    out, modules = drg_modules("--help")
    listed = _listed(out)
    assert listed == {name: short for name, (_, _, short) in COMMANDS.items()}
    assert loaded(modules, ("grouper.cli.group", "grouper.engine", "grouper.rulesets", "grouper.io", "numpy",
                            "pyarrow")) == []


def test_version_imports_no_engine():
    out, modules = drg_modules("--version")
    assert "drg-grouper, version" in out
    assert loaded(modules, ("grouper.engine", "numpy", "pyarrow")) == []


def _listed(help_text: str) -> dict[str, str]:
    """The 'Commands:' section of a help text: name -> short help (one line each)."""
    section = help_text.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    rows = [line.split(None, 1) for line in section.splitlines()]
    assert all(line.startswith("  ") and not line.startswith("   ") for line in section.splitlines()), section
    return {name: short for name, short in rows}


def test_every_registered_command_loads_under_its_name():
    ctx = click.Context(main)
    for name, (module, attribute, short) in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name, (name, module, attribute)
        assert command.short_help == short
        assert len(short) <= 80 - 6 - max(map(len, COMMANDS)), f"{name}: short help wraps at 80 columns"
    assert main.list_commands(ctx) == sorted(COMMANDS)
    assert main.get_command(ctx, "no-such-command") is None


def test_help_reads_the_same_before_and_after_the_commands_load():
    fresh = click.group(cls=DrgGroup, lazy=COMMANDS)(lambda: None)
    before = CliRunner().invoke(fresh, ["--help"], terminal_width=80).output
    for name in COMMANDS:
        fresh.get_command(click.Context(fresh), name)
    assert set(fresh.commands) == set(COMMANDS)
    assert CliRunner().invoke(fresh, ["--help"], terminal_width=80).output == before
    assert set(_listed(before)) == set(COMMANDS)


def test_subcommand_help_and_unknown_command():
    runner = CliRunner()
    result = runner.invoke(main, ["dip", "--help"])
    assert result.exit_code == 0 and "catalogue" in result.output
    result = runner.invoke(main, ["no-such-command"])
    assert result.exit_code == 2 and "No such command" in result.output

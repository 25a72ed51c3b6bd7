"""`drg group` writes the name columns (mdc_name, adrg_name, drg_name) where people read the
output (CSV, Excel, the printed table) and leaves them out of Parquet and Arrow files, whose
metadata says where they are: one join with `drg groups` on `drg` gives exactly the names that
`--names` writes."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from grouper._util.columns import NAME_COLUMNS
from grouper.cli.main import main
from grouper.engine.grouper import OUTPUT_COLUMNS

from conftest import DATA

CASES = DATA / "snapshot" / "cases_2024.parquet"  # a small synthetic province: every status occurs
SLIM = [c for c in OUTPUT_COLUMNS if c not in NAME_COLUMNS]


def drg(*args) -> None:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output


def text(table: pa.Table) -> pa.Table:
    return table.cast(pa.schema([(f.name, pa.string()) for f in table.schema]))


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, grouper11) -> dict:
    folder = tmp_path_factory.mktemp("slim")
    runs = {"parquet": [], "parquet_names": ["--names"], "arrow": [], "csv": [], "csv_no_names": ["--no-names"]}
    out = {}
    for name, extra in runs.items():
        path = folder / f"{name}.{name.split('_')[0]}"
        drg("group", CASES, "-r", "chs-drg-1.1", "-o", path, "--keep", "hospital_id", *extra)
        out[name] = path
    drg("groups", "-r", "chs-drg-1.1", "-o", folder / "groups.parquet")
    out["groups"] = folder / "groups.parquet"
    return out


def test_columnar_outputs_leave_the_names_out_and_say_where_they_are(outputs):
    slim, named = pq.read_table(outputs["parquet"]), pq.read_table(outputs["parquet_names"])
    assert slim.column_names == [*SLIM, "hospital_id"]
    assert named.column_names == [*OUTPUT_COLUMNS, "hospital_id"]
    assert text(slim).equals(text(named.drop_columns(list(NAME_COLUMNS))))  # the rest is the same
    assert slim.schema.metadata[b"drg.names"] == b"drg groups -r chs-drg-1.1"
    assert b"drg.names" not in named.schema.metadata
    assert ipc.open_file(outputs["arrow"]).schema.names == [*SLIM, "hospital_id"]


def test_csv_keeps_the_names_unless_told(outputs):
    header = lambda p: pcsv.read_csv(p).column_names  # noqa: E731
    assert header(outputs["csv"]) == [*OUTPUT_COLUMNS, "hospital_id"]
    assert header(outputs["csv_no_names"]) == [*SLIM, "hospital_id"]


def test_one_join_with_drg_groups_gives_the_names(outputs):
    slim = text(pq.read_table(outputs["parquet"], columns=["case_id", "status", "drg"]))
    named = text(pq.read_table(outputs["parquet_names"], columns=["case_id", *NAME_COLUMNS]))
    groups = pq.read_table(outputs["groups"], columns=["drg", *NAME_COLUMNS])
    assert len(set(groups["drg"].to_pylist())) == groups.num_rows  # drg is a key of the groups table
    joined = slim.join(groups, "drg", join_type="left outer", use_threads=False).sort_by("case_id")
    named = named.sort_by("case_id")
    assert set(slim["status"].to_pylist()) >= {"grouped", "ungroupable"}
    for c in NAME_COLUMNS:  # codes without a group (0000) have no name: empty in one, absent in the other
        assert [v or "" for v in joined[c].to_pylist()] == [v or "" for v in named[c].to_pylist()], c

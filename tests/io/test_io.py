"""File I/O: atomic writes, CSV / Parquet / Arrow inputs that group the same, streaming in
order across batches, one-line errors (never a crash) for broken files; several inputs,
column mapping, the wide 病案首页 layout, the run report and the progress line."""

from __future__ import annotations

import json
import os
import random
import re
import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import grouper
from grouper.engine.grouper import OUTPUT_COLUMNS
from grouper.jobs.group import result_columns
from grouper.engine.status import Flag
from grouper.io import (CANONICAL_COLUMNS, CaseSource, MappingError, code_list, expand_inputs, format_of, load_mapping,
                        open_source, plan_columns, write_batches)
from grouper.jobs.group import group_file, group_files

from conftest import DATA as TEST_DATA, read_cases as read_text_csv, split_codes

DATA = TEST_DATA / "chs-drg-1.1"
GOLDEN = DATA / "golden_random.csv"
KEY = ["case_id", "status", "mdc", "adrg", "drg", "cc_level", "flags", "reason"]
HEADER = "case_id,sex,age,age_days,birth_weight,dept,los,discharge,dx,px\n"




def replace(table: pa.Table, name: str, arr) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, arr)


def keys(table: pa.Table) -> list[tuple]:
    table = table.set_column(0, "case_id", table["case_id"].cast(pa.string()))
    return list(zip(*(table.column(c).to_pylist() for c in KEY)))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def small_batches(n_batches: int = 3, rows: int = 4) -> list[pa.RecordBatch]:
    return [pa.record_batch({"a": list(range(i * rows, (i + 1) * rows)), "b": ["x"] * rows})
            for i in range(n_batches)]


@pytest.fixture(scope="module")
def g():
    return grouper.Grouper("chs-drg-1.1")


@pytest.fixture(scope="module")
def golden() -> pa.Table:
    return read_text_csv(GOLDEN)


@pytest.fixture(scope="module")
def from_csv(g) -> pa.Table:
    summary, table = group_file(g, open_source(GOLDEN), None)
    assert summary.rows == table.num_rows == 2000
    return table


@pytest.fixture(scope="module")
def parquet_files(tmp_path_factory, golden) -> dict[str, Path]:
    """The golden cases as Parquet: code lists, dictionary code lists, dictionary joined text."""
    d = tmp_path_factory.mktemp("parquet")
    lists = replace(replace(golden, "dx", pa.array(split_codes(golden["dx"]), pa.list_(pa.string()))),
                    "px", pa.array(split_codes(golden["px"]), pa.list_(pa.string())))
    D = pa.list_(pa.dictionary(pa.int32(), pa.string()))
    dict_lists = replace(replace(golden, "dx", pa.array(split_codes(golden["dx"]), D)),
                         "px", pa.array(split_codes(golden["px"]), D))
    dict_joined = replace(replace(golden, "dx", pc.dictionary_encode(golden["dx"])),
                          "px", pc.dictionary_encode(golden["px"]))
    files = {}
    for name, table in {"lists": lists, "dict_lists": dict_lists, "dict_joined": dict_joined}.items():
        files[name] = d / f"{name}.parquet"
        pq.write_table(table, files[name], row_group_size=500)
    assert pq.ParquetFile(files["dict_lists"]).schema_arrow.field("dx").type.value_type == pa.dictionary(
        pa.int32(), pa.string())
    return files


# ----------------------------------------------------------------------------- write_batches

@pytest.mark.parametrize("ext", [".csv", ".parquet", ".arrow"])
def test_write_refuses_existing_file_without_overwrite(tmp_path, ext):
    out = tmp_path / f"out{ext}"
    out.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="out"):
        write_batches(out, small_batches())
    assert out.read_bytes() == b"keep me"
    assert leftovers(tmp_path) == [out.name]


@pytest.mark.parametrize("ext,read", [
    (".csv", lambda p: pcsv.read_csv(p)),
    (".parquet", lambda p: pq.read_table(p)),
    (".arrow", lambda p: ipc.open_file(p).read_all()),
])
def test_write_with_overwrite_replaces_file(tmp_path, ext, read):
    out = tmp_path / f"out{ext}"
    out.write_bytes(b"old contents")
    assert write_batches(out, small_batches(), overwrite=True) == 12
    back = read(out)
    assert back["a"].to_pylist() == list(range(12))
    assert back["b"].to_pylist() == ["x"] * 12
    assert leftovers(tmp_path) == [out.name]


@pytest.mark.parametrize("ext", [".csv", ".parquet", ".arrow"])
def test_failing_generator_leaves_no_file_and_no_part(tmp_path, ext):
    def broken():
        yield from small_batches(2)
        raise RuntimeError("source died")

    out = tmp_path / "sub" / f"out{ext}"
    with pytest.raises(RuntimeError, match="source died"):
        write_batches(out, broken())
    assert not out.exists()
    assert leftovers(out.parent) == []
    assert not any(p.name.endswith(".part") for p in tmp_path.rglob("*"))


def test_failing_generator_keeps_the_old_file_when_overwriting(tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("previous run\n")

    def broken():
        yield small_batches(1)[0]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_batches(out, broken(), overwrite=True)
    assert out.read_text() == "previous run\n"
    assert leftovers(tmp_path) == ["out.csv"]


def test_write_without_batches_uses_empty_schema(tmp_path):
    schema = pa.schema([("case_id", pa.string()), ("drg", pa.string())])
    out = tmp_path / "empty.csv"
    assert write_batches(out, iter(()), empty_schema=schema) == 0
    assert out.read_text().splitlines() == ['"case_id","drg"']


def test_unknown_output_extension_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown file type"):
        write_batches(tmp_path / "out.txt", small_batches())
    with pytest.raises(ValueError, match="none"):
        format_of("noext")
    assert format_of("x.PQ") == "parquet" and format_of("x.feather") == "arrow"
    assert leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- inputs agree

def test_csv_input_matches_reference(from_csv):
    exp = read_text_csv(DATA / "golden_random_expected.csv")
    status = {"SUCCESS": "grouped", "CHECK_FAILED": "invalid", "FAIL": "ungroupable"}
    assert from_csv["case_id"].to_pylist() == exp["case_id"].to_pylist()
    assert from_csv["status"].to_pylist() == [status[s] for s in exp["status_code"].to_pylist()]
    assert from_csv["drg"].to_pylist() == exp["drg"].to_pylist()


@pytest.mark.parametrize("kind", ["lists", "dict_lists", "dict_joined"])
def test_parquet_input_groups_like_csv(g, parquet_files, from_csv, kind):
    source = open_source(parquet_files[kind])
    assert source.num_rows == 2000
    summary, table = group_file(g, source, None)
    assert summary.rows == 2000
    assert keys(table) == keys(from_csv)


N_SMALL = 350  # rows streamed 7 at a time (each batch pays a fixed cost, so keep it modest)


def test_parquet_small_batches_keep_order(g, tmp_path, golden, from_csv):
    part = golden.slice(0, N_SMALL)
    L = pa.list_(pa.string())
    part = replace(replace(part, "dx", pa.array(split_codes(part["dx"]), L)),
                   "px", pa.array(split_codes(part["px"]), L))
    path = tmp_path / "part.parquet"
    pq.write_table(part, path, row_group_size=100)
    source = open_source(path, batch_size=7)
    batches = list(g.group_batches(source.batches))
    assert len(batches) >= N_SMALL // 7
    assert all(b.num_rows <= 7 for b in batches)
    assert keys(pa.Table.from_batches(batches)) == keys(from_csv)[:N_SMALL]


def test_arrow_ipc_input_small_batches_keep_order(g, tmp_path, golden, from_csv):
    path = tmp_path / "golden.arrow"
    part = golden.slice(0, N_SMALL)
    with ipc.new_file(path, part.schema) as w:
        for b in part.to_batches(max_chunksize=7):
            w.write_batch(b)
    source = open_source(path)
    assert source.num_rows == N_SMALL
    batches = list(g.group_batches(source.batches))
    assert len(batches) == N_SMALL // 7
    assert keys(pa.Table.from_batches(batches)) == keys(from_csv)[:N_SMALL]


def test_arrow_stream_input(g, tmp_path, golden, from_csv):
    path = tmp_path / "golden.ipc"
    with ipc.new_stream(path, golden.schema) as w:
        w.write_table(golden, max_chunksize=300)
    summary, table = group_file(g, open_source(path), None)
    assert keys(table) == keys(from_csv)


def test_big_csv_streams_in_several_batches_in_order(g, tmp_path, golden, from_csv):
    """A CSV larger than one read block arrives in several batches; row order holds across them."""
    body = GOLDEN.read_text(encoding="utf-8").split("\n", 1)[1]
    if not body.endswith("\n"):
        body += "\n"
    copies = max(2, (3 << 20) // len(body.encode()) + 1)
    path = tmp_path / "big.csv"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(HEADER)
        for _ in range(copies):
            fh.write(body)
    source = open_source(path, batch_size=7)
    batches = list(g.group_batches(source.batches))
    assert len(batches) >= 2
    table = pa.Table.from_batches(batches)
    assert table.num_rows == 2000 * copies
    assert keys(table) == keys(from_csv) * copies


def test_group_file_to_parquet_and_csv_outputs(g, tmp_path, from_csv):
    for ext, read in ((".parquet", pq.read_table), (".csv", read_text_csv)):
        out = tmp_path / f"out{ext}"
        summary, table = group_file(g, open_source(GOLDEN), out)
        assert table is None and summary.rows == 2000
        assert summary.status_counts["grouped"] + summary.status_counts["ungroupable"] == 2000
        back = read(out)
        assert back["drg"].to_pylist() == from_csv["drg"].to_pylist()
        assert back["case_id"].cast(pa.string()).to_pylist() == from_csv["case_id"].to_pylist()
    md = pq.read_schema(tmp_path / "out.parquet").metadata
    assert md[b"drg.ruleset_fingerprint"] == g.compiled.fingerprint.encode()
    with pytest.raises(FileExistsError):
        group_file(g, open_source(GOLDEN), tmp_path / "out.csv")
    assert sorted(leftovers(tmp_path)) == ["out.csv", "out.parquet"]


def test_group_file_keep_column(g, golden):
    summary, table = group_file(g, open_source(GOLDEN), None, keep=["dept", "los"])
    assert table["los"].to_pylist() == golden["los"].to_pylist()
    assert table.column_names[-2:] == ["dept", "los"]


def test_missing_column_fails_before_writing(g, tmp_path):
    src = tmp_path / "no_px.csv"
    src.write_text("case_id,sex,age,dx\n1,1,65,C61.x00\n")
    out = tmp_path / "out.csv"
    with pytest.raises(grouper.InputError, match="px"):
        group_file(g, open_source(src), out)
    assert leftovers(tmp_path) == ["no_px.csv"]


# ----------------------------------------------------------------------------- broken files

def test_missing_input_and_unknown_type(tmp_path):
    with pytest.raises(OSError, match="no_such.csv"):
        open_source(tmp_path / "no_such.csv")
    other = tmp_path / "cases.txt"
    other.write_text(HEADER)
    with pytest.raises(ValueError, match="unknown file type"):
        open_source(other)


def _group_all(g, path):
    return group_file(g, open_source(path), None)


def test_random_bytes_parquet_is_a_clean_error(g, tmp_path):
    bad = tmp_path / "noise.parquet"
    bad.write_bytes(random.Random(7).randbytes(4096))
    with pytest.raises((ValueError, OSError), match="noise.parquet"):
        _group_all(g, bad)


@pytest.mark.parametrize("keep_fraction", [0.0, 0.3, 0.9, 0.999])
def test_truncated_parquet_is_a_clean_error(g, tmp_path, parquet_files, keep_fraction):
    data = parquet_files["lists"].read_bytes()
    bad = tmp_path / "truncated.parquet"
    bad.write_bytes(data[: int(len(data) * keep_fraction)])
    with pytest.raises((ValueError, OSError), match="truncated.parquet"):
        _group_all(g, bad)


def test_parquet_with_corrupt_pages_is_a_clean_error(g, tmp_path, parquet_files):
    """Footer intact, data pages zeroed: the error surfaces while streaming, still with the path."""
    data = bytearray(parquet_files["lists"].read_bytes())
    footer_len = struct.unpack("<I", bytes(data[-8:-4]))[0]
    footer_start = len(data) - 8 - footer_len
    data[4:footer_start] = bytes(footer_start - 4)
    bad = tmp_path / "zeroed.parquet"
    bad.write_bytes(bytes(data))
    with pytest.raises((ValueError, OSError), match="zeroed.parquet"):
        _group_all(g, bad)


def test_not_an_arrow_file(g, tmp_path):
    bad = tmp_path / "noise.arrow"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises((ValueError, OSError), match="noise.arrow"):
        _group_all(g, bad)


@pytest.mark.parametrize("line", [
    "2,1,65,,,,,,C61.x00,60.5x02,EXTRA",
    "2,1,65",
    '2,1,65,,,,,,"C61.x00,60.5x02',
])
def test_structurally_broken_csv_line(g, tmp_path, line):
    src = tmp_path / "broken.csv"
    src.write_text(HEADER + "1,1,65,,,,,,C61.x00,60.5x02\n" + line + "\n3,2,40,,,,,,C61.x00,\n")
    with pytest.raises(ValueError, match=r"broken\.csv.*(CSV|columns)"):
        _group_all(g, src)


def test_broken_csv_line_after_first_block_leaves_no_output(g, tmp_path):
    """The bad line is only met while streaming: still a ValueError, and no partial output."""
    body = GOLDEN.read_text(encoding="utf-8").split("\n", 1)[1].rstrip("\n") + "\n"
    src = tmp_path / "late.csv"
    with open(src, "w", encoding="utf-8") as fh:
        fh.write(HEADER)
        for _ in range((2 << 20) // len(body.encode()) + 1):
            fh.write(body)
        fh.write("9,1,65,too,many,fields,,,,,,,\n")
    assert src.stat().st_size > 2 << 20
    out = tmp_path / "out" / "late_out.csv"
    with pytest.raises(ValueError, match=r"late\.csv"):
        group_file(g, open_source(src), out)
    assert not out.exists()
    assert not any(p.name.endswith(".part") for p in tmp_path.rglob("*"))


def test_csv_that_is_not_utf8(g, tmp_path):
    src = tmp_path / "latin.csv"
    src.write_bytes(HEADER.encode() + "1,1,65,,,,,,C61.x00,60.5x02\n".encode() + b"2,1,65,,,\xff\xfe,,,C61.x00,\n")
    with pytest.raises(ValueError, match="latin.csv"):
        _group_all(g, src)


def test_empty_file_is_an_error(g, tmp_path):
    src = tmp_path / "nothing.csv"
    src.write_bytes(b"")
    with pytest.raises(ValueError, match="nothing.csv.*empty"):
        open_source(src)


@pytest.mark.parametrize("ext", [".csv", ".parquet"])
def test_header_only_csv_gives_header_only_output(g, tmp_path, ext):
    src = tmp_path / "header.csv"
    src.write_text(HEADER)
    out = tmp_path / f"out{ext}"
    summary, _ = group_file(g, open_source(src), out)
    assert summary.rows == 0
    if ext == ".csv":
        lines = out.read_text().splitlines()
        assert lines == [",".join(f'"{c}"' for c in OUTPUT_COLUMNS)]
    else:
        back = pq.read_table(out)
        assert back.num_rows == 0
        assert back.column_names == list(result_columns(out)) != list(OUTPUT_COLUMNS)  # names left out
    assert summary.status_counts == {"grouped": 0, "invalid": 0, "ungroupable": 0, "ambiguous": 0}
    assert "no cases" in summary.line()
    assert sorted(os.listdir(tmp_path)) == sorted(["header.csv", out.name])


def test_header_only_csv_in_memory(g, tmp_path):
    src = tmp_path / "header.csv"
    src.write_text(HEADER)
    _, table = group_file(g, open_source(src), None)
    assert table.num_rows == 0
    assert table.column_names[: len(OUTPUT_COLUMNS)] == list(OUTPUT_COLUMNS)


def test_csv_with_bom_and_crlf(g, tmp_path):
    src = tmp_path / "excel.csv"
    src.write_bytes(("\ufeff" + HEADER + "7,1,65,,,,,,C61.x00,60.5x02\n").replace("\n", "\r\n").encode())
    _, table = group_file(g, open_source(src), None)
    assert table.to_pylist()[0]["case_id"] == "7"
    assert (table["status"][0].as_py(), table["drg"][0].as_py()) == ("grouped", "MA19")


# ----------------------------------------------------------------------------- several inputs

SAMPLE = DATA / "sample.csv"
WIDE = DATA.parent / "wide_sample.csv"


def test_expand_inputs_files_folders_globs(tmp_path):
    for name in ("b.csv", "a.parquet", "c.arrow", "notes.txt", ".a.csv.x.part"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "z.csv").write_text("x")
    folder = [str(tmp_path / n) for n in ("a.parquet", "b.csv", "c.arrow")]
    assert expand_inputs([tmp_path]) == folder  # sorted by name, hidden/other files and subfolders skipped
    assert expand_inputs([str(tmp_path / "*.csv"), SAMPLE]) == [str(tmp_path / "b.csv"), str(SAMPLE)]
    assert expand_inputs([SAMPLE, tmp_path / "sub", SAMPLE]) == [str(SAMPLE), str(tmp_path / "sub" / "z.csv"),
                                                                 str(SAMPLE)]
    for bad, msg in ((tmp_path / "nope.csv", "no such file"), (tmp_path / "*.json", "no files match")):
        with pytest.raises(OSError, match=msg):
            expand_inputs([SAMPLE, bad])
    (tmp_path / "empty").mkdir()
    with pytest.raises(OSError, match="no .* files"):
        expand_inputs([tmp_path / "empty"])


def _as_parquet(src: Path, dst: Path, int_ids: bool = True, row_group_size: int = 10) -> Path:
    t = read_text_csv(src)
    t = replace(replace(t, "dx", pa.array(split_codes(t["dx"]), pa.list_(pa.string()))),
                "px", pa.array(split_codes(t["px"]), pa.list_(pa.string())))
    if int_ids:
        t = replace(t, "case_id", t["case_id"].cast(pa.int64()))
    pq.write_table(t, dst, row_group_size=row_group_size)
    return dst


def test_several_inputs_of_different_formats_unify_case_id(g, tmp_path, from_csv):
    """CSV case ids are text, Parquet ones integers: the output holds them all as text, in order."""
    pq_path = _as_parquet(SAMPLE, tmp_path / "sample.parquet")
    _, alone = group_file(g, open_source(SAMPLE), None)
    out = tmp_path / "all.arrow"
    summary, _ = group_files(g, [SAMPLE, pq_path, GOLDEN], out, batch_size=7)
    back = ipc.open_file(out).read_all()
    assert back.schema.field("case_id").type == pa.string()
    assert keys(back) == keys(alone) + keys(alone) + keys(from_csv)
    assert summary.rows == back.num_rows == 30 + 30 + 2000
    assert summary.inputs == [str(SAMPLE), str(pq_path), str(GOLDEN)]
    # the same formats alone keep their type
    _, ints = group_files(g, [pq_path, pq_path], None)
    assert ints.schema.field("case_id").type == pa.int64() and ints.num_rows == 60


def test_row_numbers_continue_across_inputs_without_case_id(g, tmp_path):
    t = read_text_csv(SAMPLE).drop_columns(["case_id"])
    pcsv.write_csv(t.slice(0, 10), tmp_path / "a.csv")
    pcsv.write_csv(t.slice(10), tmp_path / "b.csv")
    _, table = group_files(g, [tmp_path / "a.csv", tmp_path / "b.csv"], None, batch_size=7)
    assert table["case_id"].to_pylist() == list(range(30))


def test_every_input_needs_the_columns_before_any_work(g, tmp_path):
    pcsv.write_csv(read_text_csv(SAMPLE).drop_columns(["px"]), tmp_path / "no_px.csv")
    out = tmp_path / "out.csv"
    with pytest.raises(grouper.InputError, match=r"no_px\.csv: missing required column.*px"):
        group_files(g, [SAMPLE, tmp_path / "no_px.csv"], out)
    with pytest.raises(grouper.InputError, match=r"no_px\.csv: .*px"):
        group_files(g, [SAMPLE, tmp_path / "no_px.csv"], None, layout="canonical", keep=True)
    assert not out.exists()
    with pytest.raises(ValueError, match="also one of the inputs"):
        group_files(g, [SAMPLE], SAMPLE, overwrite=True)


def test_report_counts_are_consistent(g, tmp_path):
    edge = DATA / "golden_edge.csv"
    out, report = tmp_path / "o.parquet", tmp_path / "r.json"
    summary, _ = group_files(g, [edge, SAMPLE], out, report=report, batch_size=300)
    doc = json.loads(report.read_text(encoding="utf-8"))
    table = pq.read_table(out)
    assert doc["rows"] == table.num_rows == 2030
    for col, key in (("status", "status"), ("mdc", "mdc"), ("drg", "drg")):
        vc = {d["values"]: d["counts"] for d in pc.value_counts(table[col]).to_pylist()}
        assert {k: v for k, v in doc[key].items() if v} == vc
        assert sum(doc[key].values()) == doc["rows"]
    flags = table["flags"].to_numpy()
    assert doc["flags"] == {f.name: int(((flags & int(f)) != 0).sum()) for f in Flag}
    assert doc["flags"]["SEX_INVALID"] > 0 and doc["status"]["invalid"] == 105
    assert doc["ruleset"] == {"name": "chs-drg-1.1", "version": "1.1", "fingerprint": g.compiled.fingerprint}
    assert doc["grouper_version"] == grouper.__version__
    assert doc["inputs"] == [str(edge), str(SAMPLE)] and doc["output"] == str(out)
    assert doc["seconds"] > 0 and doc["rows_per_second"] > 0
    assert doc["error_rate"] == pytest.approx(172 / 2030) == summary.error_rate
    assert sorted(leftovers(tmp_path)) == ["o.parquet", "r.json"]
    with pytest.raises(FileExistsError, match="r.json"):  # before any work: the output is left alone
        group_files(g, [SAMPLE], tmp_path / "o2.csv", report=report)
    assert sorted(leftovers(tmp_path)) == ["o.parquet", "r.json"]


def test_breach_only_above_the_threshold(g):
    edge = DATA / "golden_edge.csv"
    assert group_files(g, [edge], None)[0].breach is None
    assert group_files(g, [edge], None, max_error_rate=0.1)[0].breach is None
    line = group_files(g, [edge], None, max_error_rate=0.05)[0].breach
    assert line == "172 of 2000 cases (8.60%) are invalid or ungroupable, above --max-error-rate 0.05"
    assert group_files(g, [SAMPLE], None, max_error_rate=0)[0].breach is None


def test_progress_line_only_when_asked(g, tmp_path):
    import io as _io

    buf = _io.StringIO()
    pq_path = _as_parquet(SAMPLE, tmp_path / "s.parquet")
    group_files(g, [pq_path], None, progress=buf)
    text = buf.getvalue()
    assert re.search(r"\r\d+ rows  [\d,]+ rows/s  \d+%  ETA \d+:\d\d", text), text
    assert text.endswith("\r") and "\n" not in text  # the line is cleared, nothing scrolls
    buf = _io.StringIO()
    group_files(g, [SAMPLE], None, progress=buf)  # CSV: the total estimated from the file size
    assert "rows/s" in buf.getvalue() and "100%  ETA" in buf.getvalue()


# ----------------------------------------------------------------------------- mapping

def test_load_mapping(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text('[columns]\ndx = "zd"\nsex = "xb"\n', encoding="utf-8")
    assert load_mapping(["sex=gender", " px = ss "], f) == {"dx": "zd", "sex": "gender", "px": "ss"}
    assert load_mapping({"age": "nl"}) == {"age": "nl"}
    with pytest.raises(MappingError, match="valid: " + ", ".join(CANONICAL_COLUMNS)):
        load_mapping(["diagnosis=zd"])
    for bad in ("dx", "dx=", "=zd"):
        with pytest.raises(MappingError, match="canonical=source"):
            load_mapping([bad])
    f.write_text('dx = "zd"\n', encoding="utf-8")
    with pytest.raises(MappingError, match=r"\[columns\]"):
        load_mapping((), f)
    f.write_text('[columns\n', encoding="utf-8")
    with pytest.raises(MappingError, match="unreadable"):
        load_mapping((), f)


def test_mapped_columns_group_like_canonical_ones(g, tmp_path):
    t = read_text_csv(SAMPLE)
    local = t.rename_columns(["bh", "gender", "age", "age_days", "birth_weight", "dept", "los", "discharge",
                              "zd", "ss"])
    pcsv.write_csv(local, tmp_path / "local.csv")
    _, want = group_file(g, open_source(SAMPLE), None)
    _, got = group_files(g, [tmp_path / "local.csv"], None,
                         mapping=["case_id=bh", "sex=gender", "dx=zd", "px=ss"], keep=["age"])
    assert keys(got) == keys(want)
    assert got["age"].to_pylist() == t["age"].to_pylist()
    with pytest.raises(grouper.InputError, match="no column 'zdx'"):
        group_files(g, [tmp_path / "local.csv"], None, mapping=["dx=zdx"])


def test_a_mapping_wins_over_a_column_of_the_canonical_name(g, tmp_path):
    t = read_text_csv(SAMPLE)
    t = t.append_column("sex2", t["sex"]).set_column(1, "sex", pa.array(["9"] * 30))
    pcsv.write_csv(t, tmp_path / "two_sexes.csv")
    _, plain = group_files(g, [tmp_path / "two_sexes.csv"], None)
    assert set(plain["status"].to_pylist()) == {"invalid"}
    _, mapped = group_files(g, [tmp_path / "two_sexes.csv"], None, mapping={"sex": "sex2"})
    assert set(mapped["status"].to_pylist()) == {"grouped"}


# ----------------------------------------------------------------------------- wide layout

def test_wide_layout_builds_code_lists_in_numeric_order_skipping_blanks():
    src = open_source(WIDE)
    plan = plan_columns(src.schema)
    assert plan.layout == "pinyin"
    assert plan.lists["dx"] == ["zyzdbm"] + [f"qtzdbm{i}" for i in range(1, 16)]
    assert plan.lists["px"] == ["zyssbm"] + [f"qtssbm{i}" for i in range(1, 7)]
    batch = plan.apply(next(src.batches))
    sample = {r["case_id"]: r for r in read_text_csv(SAMPLE).to_pylist()}
    for row in batch.to_pylist():
        want = sample[row["case_id"]]
        assert row["dx"] == split_codes(pa.array([want["dx"]]))[0]
        assert row["px"] == split_codes(pa.array([want["px"]]))[0]
        for c in ("sex", "age", "age_days", "birth_weight", "dept", "los", "discharge"):
            assert row[c] == want[c]
    assert plan_columns(src.schema, layout="canonical").layout is None


def test_case_source_plans_checks_and_reads_only_the_planned_columns_wanted(tmp_path):
    s = CaseSource.open(WIDE, batch_size=4)
    assert s.plan.layout == "pinyin" and s.path == str(WIDE) and s.num_rows is None  # CSV: unknown
    assert {"dx", "px", "sex", "case_id"} <= set(s.schema.names) and "xb" not in s.schema.names
    assert s.check(["dx", "sex"], ["los", "no_such"]) == ["los"]
    with pytest.raises(grouper.InputError, match=re.escape(f"{WIDE}: missing required column(s): cost")):
        s.check(["dx", "cost"])
    with pytest.raises(grouper.InputError, match=re.escape(f"{WIDE}: missing column(s) for weights: cost")):
        s.check(["dx", "cost"], what="weights")
    assert "xb" in s.input_columns({"sex"}) and "nl" not in s.input_columns({"sex"})  # nl: age
    batches = list(s.read({"dx", "sex"}))
    assert batches and all(b.schema.names[0] == "sex" and b.schema.names[-2:] == ["dx", "px"]
                           and "age" not in b.schema.names for b in batches)  # wide code columns kept
    assert pa.Table.from_batches(batches)["dx"].to_pylist() == \
        pa.Table.from_batches(list(s.read({"dx"}, ahead=0)))["dx"].to_pylist()
    with pytest.raises(grouper.InputError, match=re.escape(f"{WIDE}: boom")):
        with s.named_errors():
            raise grouper.InputError("boom")

    repeated = tmp_path / "repeated.csv"
    repeated.write_text("sex,age,dx,px,age\n1,30,A00,,31\n", encoding="utf-8")
    s = CaseSource.open(repeated)
    with pytest.raises(grouper.InputError, match="repeated column name"):
        s.read({"age"})  # refused when asked, before anything is read
    assert list(s.read({"sex"}))[0].num_rows == 1  # a repeated column nobody reads is harmless


def test_case_source_each_opens_files_one_at_a_time_and_open_all_opens_every_one_first(tmp_path):
    good, bad = tmp_path / "a.csv", tmp_path / "b.parquet"
    good.write_text(HEADER + "1,1,30,,,,,,A00,\n", encoding="utf-8")
    bad.write_bytes(b"not parquet")
    each = CaseSource.each([tmp_path])
    assert next(each).path == str(good)
    with pytest.raises(ValueError, match="unreadable parquet"):
        next(each)
    with pytest.raises(ValueError, match="unreadable parquet"):
        CaseSource.open_all([good, bad])


def test_case_source_stops_its_read_ahead_thread_when_the_reader_is_closed():
    import threading

    reader = CaseSource.open(GOLDEN, batch_size=50).read(None)
    next(reader)
    reader.close()
    assert not any(t.name.startswith("drg-read") for t in threading.enumerate())


def test_code_list_edge_cases():
    b = pa.record_batch({"a": pa.array(["X", None, " ", "Y"]), "b": pa.array([None, "Z", "W", ""]),
                         "c": pa.array([1, None, 3, None], pa.int64())})
    assert code_list(b, ["a", "b", "c"]).to_pylist() == [["X", "1"], ["Z"], ["W", "3"], ["Y"]]
    assert code_list(b, []).to_pylist() == [[], [], [], []]
    assert code_list(b.slice(1, 2), ["a", "b"]).to_pylist() == [["Z"], ["W"]]


def _wide_expected(g) -> list[tuple]:
    _, table = group_file(g, open_source(SAMPLE), None)
    ids = read_text_csv(WIDE)["bah"].to_pylist()
    by_id = dict(zip(table["case_id"].to_pylist(), keys(table)))
    return [by_id[i] for i in ids]


def test_wide_layout_groups_like_the_original_rows(g, tmp_path):
    want = _wide_expected(g)
    messages = []
    for layout in ("auto", "wide"):
        _, got = group_files(g, [WIDE], None, layout=layout, log=messages.append)
        assert keys(got) == want
    assert len(messages) == 1 and "wide" in messages[0] and "--layout canonical" in messages[0]  # auto only
    # Chinese headers, upper-case / full-width variants of the names, as Parquet
    zh = {"bah": "病案号", "xb": "性别", "nl": "年龄", "bzyzsnl": "年龄（天）", "xsecsz": "新生儿出生体重",
          "cykb": "出院科别", "sjzyts": "实际住院天数", "lyfs": "离院方式", "zyzdbm": "主要诊断编码",
          "zyssbm": "主要手术操作编码"}
    t = read_text_csv(WIDE)
    names = [zh.get(n) or n.replace("qtzdbm", "其他诊断编码").replace("qtssbm", "其他手术操作编码")
             for n in t.column_names]
    pq.write_table(t.rename_columns(names), tmp_path / "zh.parquet", row_group_size=4)
    _, got = group_files(g, [tmp_path / "zh.parquet"], None, batch_size=3)
    assert keys(got) == want
    pcsv.write_csv(t.rename_columns([n.upper() for n in t.column_names]), tmp_path / "upper.csv")
    _, got = group_files(g, [tmp_path / "upper.csv", WIDE], None)
    assert keys(got) == want + want


def test_wide_layout_errors(g, tmp_path):
    with pytest.raises(grouper.InputError, match="missing required column.*dx"):
        group_files(g, [WIDE], None, layout="canonical")
    with pytest.raises(grouper.InputError, match="--layout wide needs a principal-diagnosis column"):
        group_files(g, [SAMPLE], None, layout="wide")
    _, got = group_files(g, [SAMPLE], None)  # a dx column: auto stays canonical
    assert got.num_rows == 30


def test_wide_output_to_csv_joins_kept_lists(g, tmp_path):
    out = tmp_path / "o.csv"
    group_files(g, [WIDE], out, keep=["dx", "px"])
    back = read_text_csv(out)
    sample = {r["case_id"]: r for r in read_text_csv(SAMPLE).to_pylist()}
    assert back["dx"].to_pylist() == [sample[str(i)]["dx"] for i in back["case_id"].to_pylist()]
    assert back["px"].to_pylist()[5] == ""  # 22084737: no procedure


# ----------------------------------------------------------------------------- issue 18

def test_csv_quoted_values_with_line_breaks_read_at_any_batch_size(g, tmp_path):
    """Quoted fields holding line breaks (a note, an address) are one value wherever a read
    block ends: the file reads whole at every batch size (item 5: "Expected 6 columns, got 1")."""
    n = 30_000  # about 2.4 MB: several 1 MB read blocks, their boundaries inside quoted values
    path = tmp_path / "notes.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("case_id,sex,age,dx,px,note\n")
        for i in range(n):
            fh.write(f'{i},1,65,"C61.x00|I10.x00",60.5x02,"first line {i}\nsecond line, with a comma\r\nthird"\n')
    expected_note = lambda i: f"first line {i}\nsecond line, with a comma\r\nthird"  # noqa: E731
    for batch_size in (1, 997, 9_000, 20_000, 65_536):
        summary, table = group_files(g, [path], None, keep=["note"], batch_size=batch_size)
        assert summary.rows == n, batch_size
        assert table["case_id"].to_pylist() == [str(i) for i in range(n)]
        assert set(table["drg"].to_pylist()) == {"MA19"}
        notes = table["note"].to_pylist()
        assert notes[0] == expected_note(0) and notes[-1] == expected_note(n - 1) and len(set(notes)) == n


def test_parquet_text_codes_in_one_big_row_group_stream_in_batch_size_slices(g, tmp_path, golden, from_csv):
    """'|'-joined text codes come as plain text batches of --batch-size rows, whatever the row
    group: a dictionary would carry the whole row group's distinct values into every batch
    (item 10: 1.1 GB for 1 M-row groups). List code columns keep their dictionary elements."""
    text = tmp_path / "text.parquet"
    pq.write_table(golden, text, row_group_size=len(golden))
    source = open_source(text, batch_size=300)
    source.columns = ["case_id", "sex", "age", "age_days", "birth_weight", "dx", "px"]
    batches = list(source.batches)
    assert [b.num_rows for b in batches] == [300] * 6 + [200]
    assert all(b.schema.field("dx").type == pa.string() for b in batches)
    summary, table = group_files(g, [text], None, batch_size=300)
    assert keys(table) == keys(from_csv)
    lists = tmp_path / "lists.parquet"
    pq.write_table(replace(golden, "dx", pa.array(split_codes(golden["dx"]), pa.list_(pa.string()))), lists,
                   row_group_size=len(golden))
    b = next(iter(open_source(lists, batch_size=300).batches))
    assert b.num_rows == 300 and pa.types.is_dictionary(b.schema.field("dx").type.value_type)


def test_stored_dictionary_text_codes_larger_than_the_batch(g, tmp_path, golden, from_csv, parquet_files):
    """A file that stores joined text codes as a dictionary (read back as one) in a big row
    group: each batch carries the row group's whole dictionary, and is split row by row
    instead of splitting that dictionary again per batch; the results are the same."""
    path = tmp_path / "dict_joined_one_group.parquet"
    pq.write_table(pq.read_table(parquet_files["dict_joined"]), path, row_group_size=len(golden))
    source = open_source(path, batch_size=64)
    first = next(iter(source.batches))
    assert pa.types.is_dictionary(first.schema.field("dx").type) and len(first["dx"].dictionary) > 64
    summary, table = group_files(g, [path], None, batch_size=64)
    assert keys(table) == keys(from_csv)


@pytest.mark.parametrize("ext", [".csv", ".parquet", ".arrow"])
def test_repeated_column_names_are_an_input_error_naming_file_and_column(g, tmp_path, ext):
    t = pa.Table.from_arrays([pa.array(["1"]), pa.array(["65"]), pa.array(["C61.x00"]), pa.array([""]),
                              pa.array(["70"]), pa.array(["x"]), pa.array(["y"])],
                             names=["sex", "age", "dx", "px", "age", "note", "note"])
    def write(table, path):
        if ext == ".csv":
            pcsv.write_csv(table, path)
        elif ext == ".parquet":
            pq.write_table(table, path)
        else:
            with ipc.new_file(str(path), table.schema) as w:
                w.write_table(table)

    path = tmp_path / f"dup{ext}"
    write(t, path)
    with pytest.raises(grouper.InputError, match=rf"dup\{ext}: repeated column name\(s\): 'age' \(2 times\)"):
        group_files(g, [path], None)
    with pytest.raises(grouper.InputError, match=r"repeated column name\(s\): 'age' \(2 times\), 'note' \(2 times\)"):
        list(open_source(path).batches)  # reading every column
    fine = t.select([0, 1, 2, 3, 5, 6])  # only 'note' repeats: nobody reads it
    path2 = tmp_path / f"notes{ext}"
    write(fine, path2)
    summary, table = group_files(g, [path2], None)
    assert table["drg"].to_pylist() == [g.group_one(sex=1, age=65, dx=["C61.x00"]).drg]
    with pytest.raises(grouper.InputError, match=r"'note' \(2 times\)"):
        group_files(g, [path2], None, keep=["note"])


# ----------------------------------------------------------------------------- issue 18 leftovers

def _as_text(table: pa.Table) -> list[tuple]:
    """Rows as text whatever the format kept of the types (CSV: all text, no nulls)."""
    def text(v):
        return "" if v is None else str(v)
    return [tuple(text(v) for v in row.values()) for row in table.to_pylist()]


_READ_BACK = {".parquet": pq.read_table, ".arrow": lambda p: ipc.open_file(p).read_all(), ".csv": read_text_csv}


@pytest.mark.parametrize("ext", [".parquet", ".csv", ".arrow"])
def test_batches_with_different_dictionaries_write_to_every_format(g, tmp_path, ext):
    """A CSV and its Parquet copy (a dictionary-encoded hospital_id, one row group per case)
    read one case per batch: each batch's ``reason`` and kept hospital_id come with their own
    dictionary. An Arrow IPC file allows one dictionary per column (no replacement): the run
    used to stop with 'Dictionary replacement detected'. Every format now reads back equal to
    grouping the concatenated input."""
    csv = tmp_path / "cases.csv"
    csv.write_text("case_id,sex,age,dx,px,hospital_id\n"
                   "1,1,65,C61.x00|NOT.A.CODE,60.5x02,H1\n"  # unknown secondary code: a reason
                   "2,1,65,C61.x00,60.5x02,H2\n"  # no reason: another dictionary
                   "3,1,abc,C61.x00,60.5x02,H1\n"  # a bad number: a third
                   "4,1,65,NOT.A.CODE,,H3\n", encoding="utf-8")
    t = read_text_csv(csv)
    parquet = tmp_path / "copy.parquet"
    pq.write_table(t.set_column(5, "hospital_id", t["hospital_id"].dictionary_encode()), parquet, row_group_size=1)
    out = tmp_path / f"out{ext}"
    summary, _ = group_files(g, [csv, parquet], out, batch_size=1, keep=["hospital_id"])
    back = _READ_BACK[ext](out)
    expected = g.group(pa.concat_tables([t, t]), keep=["hospital_id"])
    expected = expected.select([*result_columns(out), "hospital_id"])  # columnar files: no name columns
    assert back.column_names == expected.column_names and summary.rows == back.num_rows == 8
    assert _as_text(back) == _as_text(expected)
    assert len({r[back.column_names.index("reason")] for r in _as_text(back)}) == 4  # the dictionaries did differ


@pytest.mark.parametrize("ext", [".parquet", ".csv", ".arrow"])
def test_write_batches_takes_a_new_dictionary_in_every_batch(tmp_path, ext):
    def batch(values, indices):
        return pa.record_batch({"n": list(range(len(indices))),
                                "d": pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), values)})

    batches = [batch(["a", "b"], [0, 1, None]), batch(["c"], [0]), batch(["b", "a", "c"], [2, 1, 0])]
    out = tmp_path / f"out{ext}"
    assert write_batches(out, batches) == 7
    back = _READ_BACK[ext](out)
    assert back["d"].to_pylist() == ["a", "b", None if ext != ".csv" else "", "c", "c", "a", "b"]

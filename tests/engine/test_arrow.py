"""The Arrow boundary: every accepted input shape groups the same, bad values are flagged
per row, unusable inputs raise InputError, and output rows keep input order."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import grouper
from grouper.engine.inputs import InputError
from grouper.engine.status import CHECK_FLAGS, Flag

from conftest import DATA as TEST_DATA, read_cases as read_text_csv, split_codes

DATA = TEST_DATA / "chs-drg-1.1"
INPUT_COLUMNS = ["case_id", "sex", "age", "age_days", "birth_weight", "dept", "los", "discharge", "dx", "px"]
KEY = ["status", "mdc", "adrg", "drg", "cc_level", "flags", "reason"]
STATUS = {"SUCCESS": "grouped", "CHECK_FAILED": "invalid", "FAIL": "ungroupable"}
N_GOLDEN = 200




def with_columns(table: pa.Table, **cols) -> pa.Table:
    for name, arr in cols.items():
        if name in table.column_names:
            table = table.set_column(table.schema.get_field_index(name), name, arr)
        else:
            table = table.append_column(name, arr)
    return table


def keys(table: pa.Table) -> list[tuple]:
    return list(zip(*(table.column(c).to_pylist() for c in KEY)))


def case_table(n: int = 1, **cols) -> pa.Table:
    """n copies of a valid case (male, 65, prostate cancer + prostatectomy -> MA19), with overrides."""
    base = {
        "sex": pa.array([1] * n, pa.int64()),
        "age": pa.array([65] * n, pa.int64()),
        "dx": pa.array([["C61.x00"]] * n, pa.list_(pa.string())),
        "px": pa.array([["60.5x02"]] * n, pa.list_(pa.string())),
    }
    base.update(cols)
    return pa.table(base)


def row(g, **cols) -> dict:
    out = g.group(case_table(**cols))
    assert out.num_rows == 1
    return out.to_pylist()[0]


@pytest.fixture(scope="module")
def g():
    return grouper.Grouper("chs-drg-1.1")


@pytest.fixture(scope="module")
def golden() -> pa.Table:
    return read_text_csv(DATA / "golden_random.csv").slice(0, N_GOLDEN).combine_chunks()


@pytest.fixture(scope="module")
def golden_lists(golden) -> pa.Table:
    L = pa.list_(pa.string())
    return with_columns(golden, dx=pa.array(split_codes(golden["dx"]), L),
                        px=pa.array(split_codes(golden["px"]), L))


@pytest.fixture(scope="module")
def baseline(g, golden) -> pa.Table:
    return g.group(golden)


# ----------------------------------------------------------------------------- the baseline is right

def test_baseline_matches_reference_grouper(baseline):
    exp = read_text_csv(DATA / "golden_random_expected.csv").slice(0, N_GOLDEN)
    assert baseline.num_rows == N_GOLDEN
    assert baseline["case_id"].to_pylist() == exp["case_id"].to_pylist()
    got = list(zip(*(baseline[c].to_pylist() for c in ("status", "mdc", "adrg", "drg"))))
    want = [(STATUS[s], m, a, d) for s, m, a, d in zip(*(exp[c].to_pylist() for c in
                                                          ("status_code", "mdc", "adrg", "drg")))]
    assert got == want
    assert {"grouped", "ungroupable"} <= set(baseline["status"].to_pylist())


# ----------------------------------------------------------------------------- code column shapes

def _lists_as(type_):
    return lambda golden, col: pa.array(split_codes(golden[col]), type_)


CODE_SHAPES = {
    "list<string>": _lists_as(pa.list_(pa.string())),
    "large_list<large_string>": _lists_as(pa.large_list(pa.large_string())),
    "list<dictionary<int32,string>>": _lists_as(pa.list_(pa.dictionary(pa.int32(), pa.string()))),
    "joined string": lambda golden, col: golden[col],
    "joined large_string": lambda golden, col: golden[col].cast(pa.large_string()),
    "joined dictionary<int32,string>": lambda golden, col: pc.dictionary_encode(golden[col]),
}
if hasattr(pa, "string_view"):
    CODE_SHAPES["list<string_view>"] = _lists_as(pa.list_(pa.string_view()))
    CODE_SHAPES["joined string_view"] = lambda golden, col: golden[col].cast(pa.string_view())


@pytest.mark.parametrize("shape", list(CODE_SHAPES))
def test_code_column_shapes_group_identically(g, golden, baseline, shape):
    make = CODE_SHAPES[shape]
    table = with_columns(golden, dx=make(golden, "dx"), px=make(golden, "px"))
    out = g.group(table)
    assert out["case_id"].to_pylist() == baseline["case_id"].to_pylist()
    assert keys(out) == keys(baseline)


def test_mixed_code_shapes(g, golden, baseline):
    table = with_columns(golden, dx=CODE_SHAPES["list<dictionary<int32,string>>"](golden, "dx"),
                         px=CODE_SHAPES["joined dictionary<int32,string>"](golden, "px"))
    assert keys(g.group(table)) == keys(baseline)


@pytest.mark.parametrize("shape", list(CODE_SHAPES))
def test_encode_batch_gives_same_ids_for_every_shape(g, golden, shape):
    ref = g.encoder.encode(golden.to_batches()[0])
    make = CODE_SHAPES[shape]
    batch = with_columns(golden, dx=make(golden, "dx"), px=make(golden, "px")).combine_chunks().to_batches()[0]
    enc = g.encoder.encode(batch)
    assert enc.n == N_GOLDEN
    for f in ("dx_off", "dx_ids", "px_off", "px_ids", "fields", "bad_number"):
        np.testing.assert_array_equal(getattr(enc, f), getattr(ref, f), err_msg=f)
    assert enc.dx_off.dtype == np.int32 and enc.dx_ids.dtype == np.int32
    assert len(enc.dx_off) == N_GOLDEN + 1 and enc.dx_off[-1] == len(enc.dx_ids)
    # every golden code is in the scheme's dictionary, bar none empty
    assert (enc.dx_ids >= -1).all()


_LIST_VIEW_SCRIPT = """
import json, sys
import pyarrow as pa, pyarrow.csv as pcsv
import grouper
path, n = sys.argv[1], int(sys.argv[2])
names = open(path, encoding="utf-8").readline().strip().split(",")
t = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
    column_types={c: pa.string() for c in names}, strings_can_be_null=False)).slice(0, n)
lv = pa.list_view(pa.string())
split = lambda col: [s.split("|") if s.strip() else [] for s in col.to_pylist()]
t = t.set_column(t.schema.get_field_index("dx"), "dx", pa.array(split(t["dx"]), lv))
t = t.set_column(t.schema.get_field_index("px"), "px", pa.array(split(t["px"]), lv))
out = grouper.Grouper("chs-drg-1.1").group(t)
print(json.dumps([out[c].to_pylist() for c in sys.argv[3:]]))
"""


def test_list_view_code_columns_group_like_lists(baseline):
    """list_view input is accepted by encode_code_column; it must give the same groups.

    Run in a child process: a wrong encoding can crash the interpreter inside the kernel."""
    proc = subprocess.run([sys.executable, "-c", _LIST_VIEW_SCRIPT, str(DATA / "golden_random.csv"),
                           str(N_GOLDEN), *KEY], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"child exited {proc.returncode}: {proc.stderr[-2000:]}"
    cols = json.loads(proc.stdout)
    assert list(zip(*cols)) == keys(baseline)


# ----------------------------------------------------------------------------- batching and order

def test_chunked_table_keeps_rows_and_order(g, golden_lists, baseline):
    table = pa.concat_tables([golden_lists.slice(0, 37), golden_lists.slice(37, 100),
                              golden_lists.slice(137, 1), golden_lists.slice(138)])
    assert table["dx"].num_chunks == 4
    out = g.group(table)
    assert out.num_rows == N_GOLDEN
    assert out["case_id"].to_pylist() == golden_lists["case_id"].to_pylist()
    assert keys(out) == keys(baseline)


def test_table_with_differently_chunked_columns(g, golden_lists, baseline):
    cols = {}
    for i, name in enumerate(golden_lists.column_names):
        arr = golden_lists[name].combine_chunks()
        cut = 20 + 30 * i  # every column split at another row
        cols[name] = pa.chunked_array([arr.slice(0, cut), arr.slice(cut)])
    out = g.group(pa.table(cols))
    assert out["case_id"].to_pylist() == golden_lists["case_id"].to_pylist()
    assert keys(out) == keys(baseline)


def test_group_batches_small_batches_stream_in_order(g, golden_lists, baseline):
    batches = list(g.group_batches(golden_lists, batch_size=16))
    assert len(batches) == -(-N_GOLDEN // 16)
    assert all(b.num_rows <= 16 for b in batches)
    out = pa.Table.from_batches(batches)
    assert out["case_id"].to_pylist() == golden_lists["case_id"].to_pylist()
    assert keys(out) == keys(baseline)


@pytest.mark.parametrize("shape", ["list<string>", "list<dictionary<int32,string>>", "joined string",
                                   "joined dictionary<int32,string>"])
def test_sliced_record_batch(g, golden, baseline, shape):
    make = CODE_SHAPES[shape]
    batch = with_columns(golden, dx=make(golden, "dx"), px=make(golden, "px")).combine_chunks().to_batches()[0]
    sliced = batch.slice(50, 100)
    assert sliced.column("dx").offset == 50
    out = g.group(sliced)
    assert out.num_rows == 100
    assert out["case_id"].to_pylist() == golden["case_id"].to_pylist()[50:150]
    assert keys(out) == keys(baseline)[50:150]


def test_record_batch_reader_input(g, golden_lists, baseline):
    reader = pa.RecordBatchReader.from_batches(golden_lists.schema, golden_lists.to_batches(max_chunksize=64))
    out = g.group(reader)
    assert out["case_id"].to_pylist() == golden_lists["case_id"].to_pylist()
    assert keys(out) == keys(baseline)


class StreamOnly:
    """Exposes nothing but the Arrow PyCapsule stream protocol (like polars, duckdb...)."""

    def __init__(self, table: pa.Table):
        self._table = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self._table.__arrow_c_stream__(requested_schema)


def test_arrow_c_stream_producer_input(g, golden_lists, baseline):
    src = StreamOnly(pa.Table.from_batches(golden_lists.to_batches(max_chunksize=50)))
    assert not isinstance(src, (pa.Table, pa.RecordBatch, pa.RecordBatchReader))
    out = g.group(src)
    assert out["case_id"].to_pylist() == golden_lists["case_id"].to_pylist()
    assert keys(out) == keys(baseline)


def test_dict_of_columns_input(g, golden_lists, baseline):
    out = g.group({c: golden_lists[c] for c in golden_lists.column_names})
    assert keys(out) == keys(baseline)


def test_unsupported_input_object_raises_input_error(g):
    with pytest.raises(InputError):
        g.group(42)
    with pytest.raises(InputError, match="record batches"):
        g.group([{"sex": 1}])


def test_empty_input_gives_empty_output_with_output_schema(g, golden_lists):
    out = g.group(golden_lists.slice(0, 0))
    assert out.num_rows == 0
    assert out.column_names == list(grouper.engine.grouper.OUTPUT_COLUMNS)


def test_thread_count_does_not_change_results(g, golden_lists, baseline):
    assert keys(g.group(golden_lists, n_threads=1)) == keys(baseline)
    assert keys(g.group(golden_lists, n_threads=4)) == keys(baseline)


# ----------------------------------------------------------------------------- numeric columns

def _ints(col, type_):
    return pa.array([int(v) if v.strip() else None for v in col.to_pylist()], type_)


def test_numeric_column_types_group_identically(g, golden_lists, baseline):
    ages = [int(a) for a in golden_lists["age"].to_pylist()]
    assert max(ages) < 128
    weights = [float(v) if v else float("nan") for v in golden_lists["birth_weight"].to_pylist()]
    assert any(np.isnan(weights)) and not all(np.isnan(weights))
    table = with_columns(
        golden_lists,
        sex=_ints(golden_lists["sex"], pa.int8()),
        age=_ints(golden_lists["age"], pa.int8()),
        age_days=_ints(golden_lists["age_days"], pa.int64()),
        birth_weight=pa.array(weights, pa.float64()),  # NaN is missing, as pandas writes it
    )
    assert keys(g.group(table)) == keys(baseline)


def test_numbers_as_text_with_spaces_and_decimals(g, golden_lists, baseline):
    pad = lambda col: pa.array([f"  {v}\t" if v else " " for v in col.to_pylist()], pa.string())  # noqa: E731
    table = with_columns(golden_lists, sex=pad(golden_lists["sex"]), age=pad(golden_lists["age"]),
                         age_days=pa.array([f"{v}.0" for v in golden_lists["age_days"].to_pylist()]),
                         birth_weight=pad(golden_lists["birth_weight"]))
    assert keys(g.group(table)) == keys(baseline)


def test_float_and_dictionary_numbers(g, golden_lists, baseline):
    table = with_columns(golden_lists,
                         age=pa.array([float(a) for a in golden_lists["age"].to_pylist()], pa.float64()),
                         sex=pc.dictionary_encode(golden_lists["sex"]),
                         age_days=_ints(golden_lists["age_days"], pa.int32()).cast(pa.float32()))
    assert keys(g.group(table)) == keys(baseline)


def test_text_in_age_is_invalid_row_not_failed_batch(g):
    out = g.group(case_table(3, age=pa.array(["65", "abc", "65"]))).to_pylist()
    assert [r["status"] for r in out] == ["grouped", "invalid", "grouped"]
    assert out[0]["drg"] == out[2]["drg"] == "MA19"
    flags = Flag(out[1]["flags"])
    assert Flag.BAD_NUMBER in flags and Flag.AGE_MISSING in flags
    assert out[1]["drg"] == "0000" and out[1]["cc_level"] is None
    assert "数值字段不是整数" in out[1]["reason"] and "年龄" in out[1]["reason"]


@pytest.mark.parametrize("age", [pa.array([1.5], pa.float64()), pa.array(["1.5"]), pa.array([" 64.9 "])])
def test_fractional_age_is_bad_number(g, age):
    r = row(g, age=age)
    assert r["status"] == "invalid"
    assert Flag.BAD_NUMBER in Flag(r["flags"]) and Flag.AGE_MISSING in Flag(r["flags"])


@pytest.mark.parametrize("age", [
    pa.array([2**31], pa.int64()), pa.array([2**40], pa.int64()), pa.array([-(2**31)], pa.int64()),
    pa.array([-(2**31) - 1], pa.int64()), pa.array([2**31], pa.uint32()), pa.array([3e9], pa.float64()),
    pa.array(["3000000000"]), pa.array(["99999999999"]), pa.array(["-2147483648"]),
], ids=lambda a: f"{a.type}:{a[0].as_py()}")
def test_huge_age_is_bad_number(g, age):
    r = row(g, age=age)
    assert r["status"] == "invalid"
    assert Flag.BAD_NUMBER in Flag(r["flags"]) and Flag.AGE_MISSING in Flag(r["flags"])


def test_huge_uint64_age_is_bad_number(g):
    """Beyond int64 range: must be flagged per row like any other huge number, not fail the batch."""
    r = row(g, age=pa.array([2**63 + 1], pa.uint64()))
    assert r["status"] == "invalid"
    assert Flag.BAD_NUMBER in Flag(r["flags"])


def test_bad_number_in_unused_field_warns_but_groups(g):
    r = row(g, age_days=pa.array([2**40], pa.int64()))
    assert (r["status"], r["drg"]) == ("grouped", "MA19")
    assert Flag(r["flags"]) == Flag.BAD_NUMBER
    assert r["reason"] == "数值字段不是整数（按缺失处理）"


def test_boundary_int32_values_are_numbers(g):
    r = row(g, age=pa.array([2**31 - 1], pa.int64()))
    assert r["status"] == "invalid"
    assert Flag(r["flags"]) & CHECK_FLAGS == Flag.AGE_OUT_OF_RANGE
    assert Flag.BAD_NUMBER not in Flag(r["flags"])


def test_age_with_plus_sign_is_a_number(g):
    """'+65' matches the boundary's own integer pattern ([+-]?digits); it must read as 65."""
    out = g.group(case_table(2, age=pa.array(["+65", "65"]))).to_pylist()
    assert [(r["status"], r["drg"], r["flags"]) for r in out] == [("grouped", "MA19", 0)] * 2


@pytest.mark.parametrize("text", ["1e2", "00000000065", "\uff16\uff15", "1_000"])
def test_numeric_text_reads_the_same_in_group_and_group_one(g, text):
    """The batch path and the single-case path must read one numeric string the same way."""
    batch = row(g, age=pa.array([text]))
    one = g.group_one(sex=1, age=text, dx=["C61.x00"], px=["60.5x02"])
    assert (batch["status"], batch["drg"], batch["flags"]) == (one.status, one.drg, one.flags)


def test_missing_numbers_are_missing_not_bad(g):
    out = g.group(case_table(4, age=pa.array([None, float("nan"), 65.0, None], pa.float64()),
                             age_days=pa.array([None, "", " ", "12"]))).to_pylist()
    assert [r["status"] for r in out] == ["invalid", "invalid", "grouped", "invalid"]
    for r in (out[0], out[1], out[3]):
        assert Flag(r["flags"]) == Flag.AGE_MISSING
    assert out[2]["flags"] == 0


def test_optional_numeric_columns_may_be_absent(g):
    out = g.group(case_table(2, age=pa.array([65, 0]))).to_pylist()
    assert (out[0]["status"], out[0]["drg"]) == ("grouped", "MA19")
    assert out[1]["status"] == "invalid"
    assert Flag.AGE_DAYS_MISSING in Flag(out[1]["flags"])


# ----------------------------------------------------------------------------- code values

@pytest.mark.parametrize("dx", [
    pa.array([None], pa.list_(pa.string())),
    pa.array([[]], pa.list_(pa.string())),
    pa.array([None], pa.string()),
    pa.array([""], pa.string()),
    pa.array(["   "], pa.string()),
    pa.array([[""]], pa.list_(pa.string())),
    pa.array([None], pa.null()),
], ids=["null list", "empty list", "null text", "empty text", "blank text", "list of empty", "null type"])
def test_no_diagnosis_is_invalid(g, dx):
    r = row(g, dx=dx)
    assert r["status"] == "invalid"
    assert Flag.NO_DIAGNOSIS in Flag(r["flags"])
    assert (r["mdc"], r["adrg"], r["drg"], r["cc_level"]) == ("0000", "00", "0000", None)
    assert "没有主要诊断" in r["reason"]


@pytest.mark.parametrize("dx,px", [
    (pa.array([["C61.x00", ""]]), pa.array([["60.5x02"]])),
    (pa.array([["C61.x00", None]]), pa.array([["60.5x02"]])),
    (pa.array([["C61.x00"]]), pa.array([["60.5x02", " "]])),
    (pa.array(["C61.x00|"]), pa.array(["60.5x02"])),
    (pa.array(["C61.x00"]), pa.array(["60.5x02||"])),
    (pa.array([["C61.x00", ""]], pa.list_(pa.dictionary(pa.int32(), pa.string()))), pa.array([["60.5x02"]])),
])
def test_empty_code_after_principal_warns_and_groups(g, dx, px):
    r = row(g, dx=dx, px=px)
    assert (r["status"], r["drg"]) == ("grouped", "MA19")
    assert Flag(r["flags"]) == Flag.EMPTY_CODE
    assert r["reason"] == "诊断/手术操作列表中的空代码已忽略"


def test_unknown_codes_are_flagged_with_reasons(g):
    L = pa.list_(pa.string())
    out = g.group(case_table(
        3,
        dx=pa.array([["XXX.999"], ["C61.x00", "XXX.999"], ["C61.x00"]], L),
        px=pa.array([["60.5x02"], ["60.5x02"], ["60.5x02", "99.9999x999"]], L),
    )).to_pylist()
    assert Flag(out[0]["flags"]) == Flag.UNKNOWN_PDX
    assert out[0]["status"] == "ungroupable" and out[0]["drg"] == "0000"
    assert Flag(out[1]["flags"]) == Flag.UNKNOWN_SDX
    assert (out[1]["status"], out[1]["drg"]) == ("grouped", "MA19")
    assert Flag(out[2]["flags"]) == Flag.UNKNOWN_PX
    assert out[2]["status"] == "grouped"
    for r, word in zip(out, ("主要诊断", "其他诊断", "手术操作")):
        assert r["reason"] and word in r["reason"] and "字典" in r["reason"]


def test_unknown_codes_in_dictionary_columns(g):
    D = pa.list_(pa.dictionary(pa.int32(), pa.string()))
    r = row(g, dx=pa.array([["XXX.999", "C61.x00"]], D), px=pa.array([["99.9999x999"]], D))
    assert Flag(r["flags"]) == Flag.UNKNOWN_PDX | Flag.UNKNOWN_PX


@pytest.mark.parametrize("dx,px", [
    (pa.array([[" C61.x00 ", "\tI10.x00x002"]]), pa.array([["60.5x02  "]])),
    (pa.array([" C61.x00 | I10.x00x002 "]), pa.array([" 60.5x02"])),
    (pa.array([" C61.x00 |I10.x00x002"]).dictionary_encode(), pa.array(["60.5x02\t"]).dictionary_encode()),
])
def test_whitespace_around_codes_is_trimmed(g, dx, px):
    clean = row(g, dx=pa.array([["C61.x00", "I10.x00x002"]]), px=pa.array([["60.5x02"]]))
    padded = row(g, dx=dx, px=px)
    assert clean["status"] == "grouped" and clean["flags"] == 0
    assert {k: padded[k] for k in KEY} == {k: clean[k] for k in KEY}


# ----------------------------------------------------------------------------- unusable input

@pytest.mark.parametrize("col", ["sex", "age", "dx", "px"])
def test_missing_required_column_raises(g, golden_lists, col):
    table = golden_lists.drop_columns([col])
    with pytest.raises(InputError, match=rf"\b{col}\b"):
        g.group(table)
    with pytest.raises(grouper.InputError, match=rf"\b{col}\b"):
        g.encoder.encode(table.to_batches()[0])


@pytest.mark.parametrize("col,arr", [
    ("age", pa.array([0], pa.timestamp("s"))),
    ("sex", pa.array([True], pa.bool_())),
    ("age", pa.array([[65]], pa.list_(pa.int64()))),
    ("dx", pa.array([7], pa.int64())),
    ("dx", pa.array([[7]], pa.list_(pa.int64()))),
    ("px", pa.array([b"60.5x02"], pa.binary())),
    ("px", pa.array([{"a": "60.5x02"}])),
], ids=lambda x: str(x.type) if isinstance(x, pa.Array) else x)
def test_wrong_column_type_raises(g, col, arr):
    with pytest.raises(InputError, match=rf"\b{col}\b"):
        g.group(case_table(**{col: arr}))


def test_input_error_is_a_value_error():
    assert issubclass(grouper.InputError, ValueError)


# ----------------------------------------------------------------------------- output columns

def test_row_numbers_as_case_id_continue_across_batches(g, golden_lists, baseline):
    table = golden_lists.drop_columns(["case_id"])
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=30))
    out = g.group(reader)
    assert out["case_id"].to_pylist() == list(range(N_GOLDEN))
    assert pa.types.is_integer(out.schema.field("case_id").type)
    assert keys(out) == keys(baseline)
    streamed = list(g.group_batches(table, batch_size=64))
    assert [b.column("case_id")[0].as_py() for b in streamed] == [0, 64, 128, 192]


def test_keep_passes_columns_through(g, golden_lists):
    out = g.group(golden_lists, keep=["dept"])
    assert out.column_names == [*grouper.engine.grouper.OUTPUT_COLUMNS, "dept"]
    assert out["dept"].to_pylist() == golden_lists["dept"].to_pylist()
    everything = g.group(golden_lists, keep=True)
    assert set(everything.column_names) == set(grouper.engine.grouper.OUTPUT_COLUMNS) | {
        "sex", "age", "age_days", "birth_weight", "dept", "los", "discharge", "dx", "px"}
    assert everything["dx"].to_pylist() == golden_lists["dx"].to_pylist()
    with pytest.raises(InputError, match="no_such_column"):
        g.group(golden_lists, keep=["no_such_column"])


def test_output_schema_and_metadata(g, golden_lists):
    out = g.group(golden_lists)
    md = out.schema.metadata
    assert md[b"drg.ruleset_fingerprint"] == g.compiled.fingerprint.encode()
    assert md[b"drg.ruleset"] == b"chs-drg-1.1"
    assert out.column_names == list(grouper.engine.grouper.OUTPUT_COLUMNS)
    assert out.schema.field("flags").type == pa.int32()
    assert g.output_schema().metadata[b"drg.ruleset_fingerprint"] == g.compiled.fingerprint.encode()
    names = out.to_pylist()[0]
    assert names["drg_name"] and names["mdc_name"] and names["adrg_name"]


# ----------------------------------------------------------------------------- batch == one case

@pytest.mark.parametrize("name,n", [("golden_random", N_GOLDEN), ("golden_edge", 2000)])
def test_group_equals_group_one_case_by_case(g, name, n):
    table = read_text_csv(DATA / f"{name}.csv").slice(0, n)
    out = g.group(table)
    fields = ("status", "mdc", "adrg", "drg", "cc_level", "flags")
    statuses = set()
    for case, got in zip(table.to_pylist(), out.to_pylist()):
        one = g.group_one(case["sex"], case["age"], case["age_days"], case["birth_weight"],
                          case["dx"], case["px"])
        assert tuple(got[f] for f in fields) == tuple(getattr(one, f) for f in fields), case["case_id"]
        assert (got["reason"] or "") == one.reason
        statuses.add(one.status)
    assert "grouped" in statuses and "ungroupable" in statuses
    if name == "golden_edge":
        assert "invalid" in statuses


def test_group_one_accepts_lists_and_joined_text(g):
    a = g.group_one(sex=1, age=65, dx=["C61.x00", "I10.x00x002"], px=["60.5x02"])
    b = g.group_one(sex="1", age=" 65 ", dx="C61.x00|I10.x00x002", px="60.5x02")
    assert a == b
    assert a.status == "grouped" and a.mdc == "MDCM"
    batch = row(g, dx=pa.array([["C61.x00", "I10.x00x002"]]))
    assert (batch["status"], batch["mdc"], batch["adrg"], batch["drg"], batch["flags"]) == (
        a.status, a.mdc, a.adrg, a.drg, a.flags)


# --- NumPy paths for small batches (no pyarrow.compute at start-up) give what the compute paths give


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-(2**40), 2**40)), min_size=1, max_size=40),
       st.integers(0, 5), st.sampled_from(["int8", "int16", "int32", "int64", "uint32", "uint64"]))
def test_int_values_by_numpy_equal_fill_null_and_is_valid(values, cut, kind):
    from grouper.engine.numbers import _int_values

    t = pa.from_numpy_dtype(np.dtype(kind))
    lo, hi = np.iinfo(np.dtype(kind)).min, np.iinfo(np.dtype(kind)).max
    arr = pa.array([v if v is None or lo <= v <= hi else None for v in values], t).slice(min(cut, len(values) - 1))
    raw, keep = _int_values(arr)
    want_keep = arr.is_valid().to_numpy(zero_copy_only=False)
    if keep is None:
        assert want_keep.all()
    else:
        assert (keep == want_keep).all()
    want = arr.fill_null(0).to_numpy(zero_copy_only=False)
    assert (raw[want_keep] == want[want_keep]).all() and raw.dtype == want.dtype


def _reasons_by_arrow(flags, reason):
    """The ``reason`` column as it was built by Arrow: the keys' ``dictionary_encode`` (first
    appearance order, hashing), the texts, a NumPy mask where the key is 0."""
    from grouper.engine.status import describe_reason

    key = (reason.astype(np.int64) << 32) | flags.view(np.uint32)
    enc = pa.array(key).dictionary_encode()
    texts = pa.array([describe_reason(k >> 32, k & 0xFFFFFFFF) for k in enc.dictionary.to_pylist()], pa.string())
    return pa.DictionaryArray.from_arrays(enc.indices.to_numpy(), texts, mask=key == 0)


@pytest.mark.parametrize("n", [0, 1, 5, 4096, 4097, 20000, 70000])
def test_reasons_encoded_as_arrow_encodes_them(n):
    import grouper.engine.grouper as gm

    rng = np.random.default_rng(n)
    flags = rng.choice(np.array([0, 0, 0, 1, 512, 1024, 8192, -(2**31)], np.int32), n)
    reason = rng.choice(np.array([0, 0, 2, 3, 4, 255], np.uint8), n)
    got = gm._reasons(flags, reason)
    assert got.equals(_reasons_by_arrow(flags, reason))  # same dictionary, same indices, same nulls
    got.validate(full=True)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(-(2**31), 2**31 - 1), st.integers(0, 255)), max_size=300))
def test_reasons_first_appearance_equals_arrow_on_any_keys(rows):
    import grouper.engine.grouper as gm

    flags = np.array([f for f, _ in rows], np.int32)
    reason = np.array([r for _, r in rows], np.uint8)
    assert gm._reasons(flags, reason).equals(_reasons_by_arrow(flags, reason))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(-3, 12), max_size=200), st.sampled_from([np.int8, np.uint8, np.int32]),
       st.sampled_from([-1, 0, 3]))
def test_output_column_indices_equal_take_with_a_mask(idx, dtype, null):
    """``_encode`` (one compiled pass) gives the array ``np.take`` + ``from_arrays(mask=)`` gave;
    an index beyond the table is an error, never a wrapped read."""
    import grouper.engine.grouper as gm

    values = pa.array(["a", "b", "c", "d", "e", "f", "g"])
    pos = np.array([6, 0, 5, 1, 4, 2, 3, 0, 1, 2], np.int32)  # 10 result ids onto 7 values
    lo = np.iinfo(dtype).min
    idx = np.array([max(i, lo) for i in idx], dtype)
    if (idx >= len(pos)).any():
        with pytest.raises(ValueError, match="beyond"):
            gm._encode((values, pos), idx, null)
        return
    mask = (idx < 0) | (idx == null)
    want = pa.DictionaryArray.from_arrays(np.take(pos, np.where(mask, 0, idx)), values, mask=mask)
    got = gm._encode((values, pos), idx, null)
    assert got.equals(want) and got.null_count == int(mask.sum())
    got.validate(full=True)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(-2, 9), max_size=200), st.sampled_from([np.int8, np.int32]))
def test_take_ids_equals_take_and_refuses_out_of_range(idx, dtype):
    from grouper.engine._codes import take_ids

    table = np.arange(100, 108, dtype=np.int32)
    idx = np.array(idx, dtype)
    ids, bad = take_ids(table, idx)
    wrong = np.flatnonzero((idx < 0) | (idx >= len(table)))
    if wrong.size:
        assert ids is None and bad == wrong[0]
    else:
        assert bad == -1 and ids.dtype == np.int32 and (ids == np.take(table, idx)).all()


@pytest.mark.parametrize("list_type", [pa.list_(pa.string()), pa.large_list(pa.string())])
@pytest.mark.parametrize("offset, length", [(0, 5), (1, 3), (2, 0), (4, 1)])
def test_list_codes_of_a_slice_are_read_from_its_own_offsets(g, list_type, offset, length):
    dx = [["C61.x00", "I10.x00"], ["K35.800"], ["I10.x00"], ["C61.x00"], ["I10.x00", "E11.900", "K35.800"]]
    px = [["60.5x02"], [], [], ["60.5x02"], []]
    t = pa.table({"sex": [1] * 5, "age": [65] * 5, "dx": pa.array(dx, list_type), "px": pa.array(px, list_type)})
    out = g.group(t.slice(offset, length)).to_pylist()
    one = [g.group_one(sex=1, age=65, dx=d, px=p) for d, p in zip(dx[offset:offset + length], px[offset:offset + length])]
    assert [(r["status"], r["drg"], r["flags"]) for r in out] == [(r.status, r.drg, r.flags) for r in one]


_ASCII_TEXT = st.one_of(st.none(), st.text(alphabet=" \t\n\x0b\x0c\r\x1c\x1f+-.0123456789xe|,;A", max_size=14),
                        st.integers(-2**40, 2**40).map(str), st.integers(-2**40, 2**40).map(lambda i: f" {i}.00 "))


@settings(max_examples=300, deadline=None)
@given(st.lists(_ASCII_TEXT, max_size=12), st.sampled_from(["", "\u3000", "\u00a0", "；", "，", "é"]))
def test_small_text_batches_read_alike_by_python_and_by_pyarrow_compute(texts, other):
    """A small batch of ASCII text is read by Python's string methods (start-up: no
    pyarrow.compute); the numbers it parses, the ones it flags and the code lists it splits are
    those of the pyarrow.compute path of larger batches (non-ASCII batches take that path)."""
    import grouper._util.columns as cm
    from grouper.engine.numbers import parse_int_column

    if other and texts:  # one value not ASCII: the whole batch by pyarrow.compute
        texts = [*texts[:-1], f"{texts[-1] or ''}{other}1"]
    arr = pa.array(texts, pa.string())
    assert (cm.small_ascii_texts(arr) is not None) == (not other or not texts)
    by_python = parse_int_column("age", arr, len(arr)), cm.split_joined(arr)
    try:
        cm.SMALL_TEXT, saved = -1, cm.SMALL_TEXT  # every batch by pyarrow.compute
        by_compute = parse_int_column("age", arr, len(arr)), cm.split_joined(arr)
    finally:
        cm.SMALL_TEXT = saved
    (v1, bad1), lists1 = by_python
    (v2, bad2), lists2 = by_compute
    assert v1.tolist() == v2.tolist() and bad1.tolist() == bad2.tolist()
    assert lists1.type == lists2.type and lists1.to_pylist() == lists2.to_pylist()


def test_null_code_lists_that_span_no_values_are_read_without_pyarrow_compute(g):
    """Blank joined codes (a case without procedures) are null lists: their offsets span no
    values, so the list is read from its offsets alone; a null list over values is skipped."""
    from grouper.engine.inputs import CodeMapper, encode_code_column

    mapper = CodeMapper(["C61.x00", "I10.x00"])
    nulls = pa.array([["C61.x00"], None, ["I10.x00", "X"], None], pa.list_(pa.string()))
    off, ids = encode_code_column("dx", nulls, 4, mapper)
    assert off.tolist() == [0, 1, 1, 3, 3] and ids.tolist() == [0, 1, -1]
    # the same nulls over values (offsets 0 1 2 4 5, the second and last entries null)
    spanning = pa.ListArray.from_buffers(
        pa.list_(pa.string()), 4, [pa.py_buffer(np.packbits([1, 0, 1, 0], bitorder="little")),
                                   pa.py_buffer(np.array([0, 1, 2, 4, 5], np.int32))],
        null_count=2, children=[pa.array(["C61.x00", "I10.x00", "I10.x00", "X", "C61.x00"])])
    off, ids = encode_code_column("dx", spanning, 4, mapper)
    assert off.tolist() == [0, 1, 1, 3, 3] and ids.tolist() == [0, 1, -1]

"""The grouping pipeline: read-ahead and write-behind threads, the per-row-group dictionary
mapping, columns a scheme ignores, integer parsing fast paths, and the Parquet output layout."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import grouper
from grouper.engine.inputs import ID_EMPTY, ID_UNKNOWN, MISSING, CodeMapper, parse_int, parse_int_column
from grouper.engine.status import Flag
from grouper._util.columns import NAME_COLUMNS
from grouper.jobs.group import group_files
from grouper.io import prefetch, write_batches


@pytest.fixture(scope="module")
def g():
    return grouper.Grouper("chs-drg-1.1", n_threads=1)


def cases(n: int, start: int = 0, **over) -> pa.Table:
    cols = {"case_id": pa.array(np.arange(start, start + n), pa.int64()), "sex": [1] * n, "age": [65] * n,
            "dx": [["C61.x00", "I10.x00"]] * n, "px": [["60.5x02"] if i % 2 else [] for i in range(n)]}
    cols.update(over)
    return pa.table(cols)


def plain(t: pa.Table) -> pa.Table:
    """Values as a reader sees them: dictionary columns decoded (batches differ in dictionaries)."""
    return pa.table({n: c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c
                     for n, c in zip(t.column_names, t.columns)}).combine_chunks()


# ----------------------------------------------------------------------------- prefetch

def test_prefetch_keeps_order_and_raises_where_the_source_failed():
    def source():
        yield from range(5)
        raise ValueError("boom")

    got = []
    with pytest.raises(ValueError, match="boom"):
        for x in prefetch(source(), depth=2):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]


def test_prefetch_runs_the_source_in_another_thread_and_closes_it_on_early_stop():
    closed, threads = threading.Event(), set()

    def source():
        try:
            for i in range(100):
                threads.add(threading.get_ident())
                yield i
        finally:
            closed.set()

    it = prefetch(source(), depth=3)
    assert [next(it), next(it)] == [0, 1]
    it.close()
    assert closed.is_set() and threading.get_ident() not in threads


def test_prefetch_of_nothing():
    assert list(prefetch(iter(()))) == []


# ----------------------------------------------------------------------------- writing

def test_an_error_in_the_writer_thread_leaves_no_file(tmp_path):
    out = tmp_path / "o.parquet"
    a = pa.record_batch({"x": [1, 2]})
    b = pa.record_batch({"x": ["not", "ints"]})  # the writer refuses a different schema
    with pytest.raises(Exception):
        write_batches(out, iter([a, a, a, b, a]))
    assert list(tmp_path.iterdir()) == []


def test_parquet_output_case_id_without_dictionary_and_as_deltas(g, tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(cases(5000), src, row_group_size=1000)
    out = tmp_path / "o.parquet"
    group_files(g, [src], out, batch_size=700)
    meta = pq.ParquetFile(out).metadata
    by_path = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in range(meta.num_columns)}
    assert not by_path["case_id"].has_dictionary_page and "DELTA_BINARY_PACKED" in by_path["case_id"].encodings
    assert by_path["drg"].has_dictionary_page
    got = pq.read_table(out)  # a Parquet output leaves the names out and says where they are
    assert plain(got).equals(plain(g.group(cases(5000)).drop_columns(list(NAME_COLUMNS))))
    assert got.schema.metadata == {**g.output_schema().metadata, b"drg.names": b"drg groups -r chs-drg-1.1"}


def test_kept_list_columns_stay_dictionary_encoded_in_parquet(g, tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(cases(300), src)
    out = tmp_path / "o.parquet"
    group_files(g, [src], out, keep=["dx"])
    col = pq.ParquetFile(out).metadata.row_group(0)
    paths = {col.column(i).path_in_schema: col.column(i) for i in range(col.num_columns)}
    assert paths["dx.list.element"].has_dictionary_page
    assert pq.read_table(out)["dx"].to_pylist() == cases(300)["dx"].to_pylist()


def test_many_small_batches_through_the_pipeline_keep_order_and_counts(g, tmp_path):
    src = tmp_path / "in.parquet"
    t = cases(10_000, sex=[1, 2, 9, None] * 2500)
    pq.write_table(t, src, row_group_size=3000)
    summary, table = group_files(g, [src], None, batch_size=257)
    assert table["case_id"].to_pylist() == list(range(10_000))
    assert plain(table).equals(plain(g.group(t)))
    statuses = table["status"].cast(pa.string()).to_pylist()
    assert summary.status_counts == {k: statuses.count(k) for k in summary.status_counts}
    assert sum(summary.drg_counts.values()) == 10_000


@pytest.fixture
def one_cpu(monkeypatch):
    """This process as if it may run on one CPU only (``taskset -c 0``): reading and writing on
    the calling thread. Threads started meanwhile are collected."""
    import grouper.io.formats as formats

    monkeypatch.setattr(formats.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    started = []
    start = threading.Thread.start

    def record(self):
        started.append(self.name)
        return start(self)

    monkeypatch.setattr(threading.Thread, "start", record)
    return started


def test_on_one_cpu_the_pipeline_reads_and_writes_without_threads_and_writes_the_same_file(g, tmp_path, one_cpu):
    from grouper.io import pipeline_depth

    src = tmp_path / "in.parquet"
    pq.write_table(cases(6000, sex=[1, 2, 9, None] * 1500), src, row_group_size=2500)
    threaded = tmp_path / "threaded.parquet"
    with pytest.MonkeyPatch.context() as m:  # several CPUs: the read-ahead and writer threads
        import grouper.io.formats as formats

        m.setattr(formats.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
        assert pipeline_depth() == 2
        s_threaded, _ = group_files(g, [src], threaded, batch_size=700)
    assert any(n.startswith("drg-read") for n in one_cpu) and any(n.startswith("drg-write") for n in one_cpu)
    one_cpu.clear()
    assert pipeline_depth() == 0
    inline = tmp_path / "inline.parquet"
    s_inline, _ = group_files(g, [src], inline, batch_size=700)
    assert one_cpu == []  # no thread started: not to read, not to write, not for the kernel
    assert inline.read_bytes() == threaded.read_bytes()
    assert s_inline.status_counts == s_threaded.status_counts and s_inline.drg_counts == s_threaded.drg_counts


def test_on_one_cpu_an_error_in_the_writer_leaves_no_file_and_stops_the_input(tmp_path, one_cpu):
    out = tmp_path / "o.parquet"
    a = pa.record_batch({"x": [1, 2]})
    b = pa.record_batch({"x": ["not", "ints"]})  # the writer refuses a different schema
    made = []

    def batches():
        try:
            for x in (a, a, b, a, a):
                made.append(x)
                yield x
        finally:
            made.append("closed")

    with pytest.raises(Exception):
        write_batches(out, batches())
    assert list(tmp_path.iterdir()) == [] and one_cpu == []
    assert made[-1] == "closed" and len(made) == 4  # nothing made after the failed batch


# ----------------------------------------------------------------------------- encoding

def test_dictionary_mapping_is_reused_only_for_an_equal_dictionary():
    m = CodeMapper(["A01", "B02", "C03"])

    def column(values, idx):
        return pa.DictionaryArray.from_arrays(pa.array(idx, pa.int32()), pa.array(values))

    assert m.map_flat(column(["C03", "A01"], [0, 1, 1])).tolist() == [2, 0, 0]
    assert m.map_flat(column(["C03", "A01"], [1, 0])).tolist() == [0, 2]  # equal copy: reused
    assert m.map_flat(column(["A01", "X"], [1, 0, None])).tolist() == [ID_UNKNOWN, 0, ID_EMPTY]
    assert m.map_flat(column(["C03", "A01"], [0])).tolist() == [2]


def test_a_byte_identical_dictionary_reuses_the_mapping_and_any_other_is_mapped_afresh():
    m = CodeMapper(["A01", "B02", "C03"])
    first = pa.array(["C03", "A01", "B02"])
    mapped = m._map_dictionary(first)
    copy = pa.concat_arrays([pa.array(["C03", "A01", "B02"])])  # other buffers, the same bytes
    assert m._map_dictionary(copy) is mapped
    for other in (pa.array(["C03", "A01", "X"]), pa.array(["Z", "C03", "A01", "B02"]).slice(1),
                  pa.array(["C03", None, "B02"]), pa.array(["C03", "A01", "B02"], pa.large_string())):
        assert m._map_dictionary(other).tolist() == [m.get(c) for c in other.to_pylist()]


def test_a_scheme_without_department_conditions_never_reads_the_column(g):
    assert "dept" not in g.encoder.columns and "discharge" not in g.encoder.columns
    assert "los" in g.encoder.columns  # a bad length of stay is still flagged
    weird = pa.array([[1]] * 4, pa.list_(pa.int8()))  # not a department code at all
    out = g.group(cases(4, dept=weird, discharge=weird))
    assert out["drg"].to_pylist() == g.group(cases(4))["drg"].to_pylist()
    zj = grouper.Grouper("zhejiang-2022")
    assert "dept" in zj.encoder.columns
    with pytest.raises(grouper.InputError, match="dept"):
        zj.group(cases(4, dept=weird, los=[3] * 4, discharge=["1"] * 4))


def _value_ids_decoded(enc, name, col, n):
    """Discharge/department ids as they were read before: a dictionary decoded, numbers as the
    decimal text of Python ints, every row's string looked up."""
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        v, _ = parse_int_column(name, col, n)
        col = pa.array(np.where(v == MISSING, None, v.astype(object)), pa.int64()).cast(pa.string())
    ids = enc.values[name].map_strings(col)
    return np.where(ids == ID_EMPTY, MISSING, ids).astype(np.int32)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["1", " 2", "5", "", "9", "A01", "1.0", "+1"])), min_size=1,
                max_size=60),
       st.sampled_from(["text", "dictionary", "int", "float"]), st.integers(0, 3))
def test_discharge_and_department_ids_equal_reading_every_row(values, kind, cut):
    """A dictionary column's codes are mapped once per distinct value and a number column's
    text built without Python objects: the same ids as decoding and reading every row."""
    enc = grouper.Grouper("changzhou-2022").encoder
    assert enc.values["discharge"].codes
    if kind == "text":
        col = pa.array(values, pa.string())
    elif kind == "dictionary":
        col = pa.array(values, pa.string()).dictionary_encode()
    else:
        nums = [None if v is None or not v.strip().lstrip("+").isdigit() else int(v) for v in values]
        col = pa.array(nums, pa.int64() if kind == "int" else pa.float64())
    col = col.slice(min(cut, len(values) - 1))
    n = len(col)
    assert enc._value_ids("discharge", col, n).tolist() == _value_ids_decoded(enc, "discharge", col, n).tolist()


INT_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(INT_TYPES), st.data())
def test_integer_columns_parse_like_single_values(t, data):
    info = np.iinfo(t.to_pandas_dtype())
    values = data.draw(st.lists(st.one_of(st.none(), st.integers(int(info.min), int(info.max)),
                                          st.sampled_from([int(info.min), int(info.max), 0])), max_size=40))
    arr = pa.array(values, t)
    v, bad = parse_int_column("age", arr, len(values))
    for x, got, was_bad in zip(values, v.tolist(), bad.tolist()):
        want, want_bad = parse_int(x)
        assert (got, was_bad) == (MISSING if want is None else want, want_bad)
    sliced = arr.slice(1)
    v2, bad2 = parse_int_column("age", sliced, len(sliced))
    assert v2.tolist() == v.tolist()[1:] and bad2.tolist() == bad.tolist()[1:]


@pytest.mark.parametrize("t", [pa.int8(), pa.int16(), pa.uint8(), pa.uint16()])
def test_a_null_in_a_narrow_integer_column_is_missing_not_zero(g, t):
    v, bad = parse_int_column("age", pa.array([None, 5], t), 2)
    assert v.tolist() == [MISSING, 5] and bad.tolist() == [False, False]
    out = g.group(cases(2, age=pa.array([None, 65], t)))
    assert out["status"].to_pylist() == ["invalid", "grouped"]
    assert out["flags"][0].as_py() & int(Flag.AGE_MISSING)


@pytest.mark.parametrize("threads", [2, 3, 7])
def test_kernel_threads_split_a_batch_without_changing_results(g, threads):
    from conftest import DATA, read_cases

    golden = read_cases(DATA / "chs-drg-1.1" / "golden_random.csv")
    idx = np.random.default_rng(7).integers(0, golden.num_rows, 30_011)  # uneven slices
    big = golden.take(pa.array(idx))
    one = g.group(big, n_threads=1)
    many = g.group(big, n_threads=threads)
    assert plain(many).equals(plain(one))

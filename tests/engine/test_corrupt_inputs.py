"""Corrupt Arrow input is an error, never a crash (issue 18, item 2).

Arrays are built straight from buffers, so nothing on the way checks them: string offsets out
of order or outside the data, list offsets out of order, corrupt dictionaries, indices out of
range, invalid UTF-8, and ``group_batch(encoded=...)`` ids outside the scheme's code lists.
The command-line checks run ``drg`` in a child process: before the fix these were segmentation
faults (exit -11), which would take a test process down with them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import grouper
from grouper.engine._codes import CodeTable
from grouper.engine.inputs import ID_EMPTY, CorruptInputError

CODES = b"C61.x00I10.x00E11.900"


def strings(offsets, data: bytes = CODES, large: bool = False) -> pa.Array:
    width = np.int64 if large else np.int32
    return pa.Array.from_buffers(pa.large_string() if large else pa.string(), len(offsets) - 1,
                                 [None, pa.py_buffer(np.array(offsets, width).tobytes()), pa.py_buffer(data)])


def lists(offsets, child: pa.Array) -> pa.Array:
    return pa.Array.from_buffers(pa.list_(child.type), len(offsets) - 1,
                                 [None, pa.py_buffer(np.array(offsets, np.int32).tobytes())], children=[child])


def batch(**over) -> pa.RecordBatch:
    cols = {"case_id": pa.array(["1", "2"]), "hospital_id": pa.array(["H1", "H1"]),
            "sex": pa.array([1, 1], pa.int8()), "age": pa.array([65, 70], pa.int16()),
            "dx": pa.array([["C61.x00", "I10.x00"]] * 2), "px": pa.array([["60.5x02"], []]),
            "los": pa.array([5, 6], pa.int32()), "total_cost": pa.array([10000.0, 9000.0]),
            "patient_share": pa.array([2000.0, 1000.0]),
            "discharge": pa.array(["1", "1"])}  # settle checks the columns its pack needs first
    cols.update(over)
    return pa.RecordBatch.from_arrays(list(cols.values()), names=list(cols))


def idx(values) -> pa.Array:
    return pa.array(values, pa.int32())


TEXT = pa.array(["C61.x00", "I10.x00"])
#: name -> (the corrupt column, a batch with that one corruption in a column the grouper reads)
CORRUPT = {
    # the file: only the last child offset was checked; CodeTable._map read at -1e8
    "list child offsets negative": ("dx", lambda: batch(dx=lists([0, 2, 4], strings([0, -100_000_000, 3, 2, 7])))),
    "list child offsets decreasing": ("dx", lambda: batch(dx=lists([0, 2, 4], strings([0, 7, 3, 14, 21])))),
    "large_string child offsets": ("dx", lambda: batch(dx=lists([0, 2, 4], strings([0, -(2**40), 3, 2, 7],
                                                                                     large=True)))),
    "list offsets decreasing": ("dx", lambda: batch(dx=lists([0, 3, 2], strings([0, 7, 14, 21])))),
    "joined text offsets": ("dx", lambda: batch(dx=strings([0, -100_000_000, 7]))),
    "dictionary offsets": ("dx", lambda: batch(dx=pa.DictionaryArray.from_arrays(
        idx([0, 1]), strings([0, 100_000_000, 7])))),
    "list<dictionary> offsets": ("dx", lambda: batch(dx=lists([0, 1, 2], pa.DictionaryArray.from_arrays(
        idx([0, 1]), strings([0, 14, 7]))))),
    "dictionary index past the end": ("dx", lambda: batch(dx=pa.DictionaryArray.from_arrays(
        idx([0, 5]), TEXT, safe=False))),
    "dictionary index negative": ("dx", lambda: batch(dx=pa.DictionaryArray.from_arrays(
        idx([-1, 0]), TEXT, safe=False))),
    "list<dictionary> index": ("px", lambda: batch(px=lists([0, 1, 2], pa.DictionaryArray.from_arrays(
        idx([0, 9]), TEXT, safe=False)))),
    "text age offsets": ("age", lambda: batch(age=strings([0, 6, 4], b"6570"))),
    "dictionary sex index": ("sex", lambda: batch(sex=pa.DictionaryArray.from_arrays(
        idx([0, 7]), pa.array(["1", "2"]), safe=False))),
    "invalid UTF-8 in joined codes": ("dx", lambda: batch(dx=strings([0, 7, 9], b"C61.x00\xff\xfe"))),
    "invalid UTF-8 in an age": ("age", lambda: batch(age=strings([0, 2, 4], b"6\xff70"))),
}


@pytest.fixture(scope="module")
def g():
    return grouper.Grouper("chs-drg-1.1", n_threads=1)


@pytest.mark.parametrize("name", list(CORRUPT))
def test_corrupt_arrays_raise_a_clear_error_naming_the_column(g, name):
    column, make = CORRUPT[name]
    b = make()
    with pytest.raises(CorruptInputError, match=f"column '{column}': corrupt Arrow data"):
        g.group(b)
    with pytest.raises(ValueError):  # the API's promise: a ValueError, for any entry point
        list(g.group_batches(pa.Table.from_batches([b]), batch_size=1))


def test_a_sliced_batch_checks_only_its_own_values(g):
    # rows 0 and 1 have bad string offsets; a slice of rows 2-3 reads only good ones
    dx = lists([0, 1, 2, 3, 4], strings([0, 99, 7, 14, 21]))
    b = pa.RecordBatch.from_pydict({"sex": [1] * 4, "age": [65] * 4, "dx": dx, "px": [[]] * 4})
    with pytest.raises(CorruptInputError):
        g.group(b)
    with pytest.raises(CorruptInputError):
        g.group(b.slice(1, 2))
    assert g.group(b.slice(2, 2))["drg"].to_pylist() == g.group(pa.RecordBatch.from_pydict(
        {"sex": [1] * 2, "age": [65] * 2, "dx": [["I10.x00"], ["E11.900"]], "px": [[]] * 2}))["drg"].to_pylist()


def test_code_table_checks_every_value_offsets():
    t = CodeTable(["C61.x00", "I10.x00"])
    offsets = np.array([0, 7, 14], np.int32)
    assert t.map_utf8(None, offsets, CODES, 0, 2, False).tolist() == [0, 1]
    for bad in ([0, -1, 14], [0, 14, 7], [0, 7, 100]):
        with pytest.raises(ValueError, match="out of order or outside the data buffer"):
            t.map_utf8(None, np.array(bad, np.int32), CODES, 0, 2, False)
    with pytest.raises(ValueError, match="offsets buffer too short"):
        t.map_utf8(None, offsets, CODES, 1, 2, False)
    with pytest.raises(ValueError, match="validity bitmap too short"):
        t.map_utf8(b"", offsets, CODES, 0, 2, False)
    # a null value's offsets are never read
    assert t.map_utf8(bytes([0b10]), np.array([-9, 0, 7], np.int32), CODES, 0, 2, False).tolist() == [ID_EMPTY, 0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-30, 40), min_size=2, max_size=8), st.booleans())
def test_any_child_offsets_group_or_raise_never_crash(offsets, joined):
    """Arbitrary string offsets over a 21-byte buffer: valid ones group like the same codes
    built by pyarrow; anything else raises CorruptInputError."""
    g = grouper.Grouper("chs-drg-1.1", n_threads=1)
    offsets = [0, *offsets[1:]]
    n = len(offsets) - 1
    valid = all(0 <= a <= b <= len(CODES) for a, b in zip(offsets, offsets[1:]))
    try:
        child = strings(offsets)
    except pa.ArrowInvalid:  # pyarrow's own construction refused it (its last offset): not our case
        return
    if joined:
        dx = child
        rows = n
    else:
        dx = lists([0, n], child)
        rows = 1
    b = pa.RecordBatch.from_pydict({"sex": [1] * rows, "age": [65] * rows, "dx": dx, "px": [[]] * rows})
    if not valid:
        with pytest.raises(CorruptInputError):
            g.group(b)
        return
    values = [CODES[a:b].decode() for a, b in zip(offsets, offsets[1:])]
    clean = pa.RecordBatch.from_pydict({"sex": [1] * rows, "age": [65] * rows,
                                        "dx": values if joined else [values], "px": [[]] * rows})
    assert g.group(b).to_pylist() == g.group(clean).to_pylist()


# ----------------------------------------------------------------------------- encoded ids

def test_encoded_ids_are_range_checked(g):
    b = pa.RecordBatch.from_pydict({"sex": [1, 1], "age": [65, 70], "dx": [["C61.x00"], ["I10.x00"]],
                                    "px": [["60.5x02"], []]})
    assert g.group_batch(b, encoded=g.encoder.encode(b)).equals(g.group_batch(b))
    for field, value in (("dx_ids", 10**8), ("dx_ids", -(10**8)), ("px_ids", len(g.compiled.px_codes)),
                         ("dx_ids", len(g.compiled.dx_codes))):
        enc = g.encoder.encode(b)
        ids = getattr(enc, field).copy()
        ids[0] = value
        setattr(enc, field, ids)
        with pytest.raises(ValueError, match=f"encoded {field[:2]} ids must lie in -2\\.\\."):
            g.group_batch(b, encoded=enc)
    enc = g.encoder.encode(b)
    enc.dx_ids = enc.dx_ids.astype(np.int64)
    with pytest.raises(ValueError, match="1-d int32"):
        g.group_batch(b, encoded=enc)
    enc = g.encoder.encode(b.slice(0, 1))
    with pytest.raises(ValueError, match="encoded batch has 1 rows, the record batch 2"):
        g.group_batch(b, encoded=enc)


# ----------------------------------------------------------------------------- files, CLI

def drg(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grouper.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def write_ipc(path: Path, b: pa.RecordBatch) -> Path:
    with ipc.new_file(str(path), b.schema) as w:
        w.write_batch(b)
    return path


@pytest.mark.parametrize("command", ["group", "regroup", "settle"])
def test_crafted_arrow_file_is_a_one_line_error_not_a_segfault(tmp_path, command):
    bad = write_ipc(tmp_path / "crafted.arrow", CORRUPT["list child offsets negative"][1]())
    (tmp_path / "w.csv").write_text("drg,rw,mean_cost,mean_los,n\nMA19,1.2,12000,6,30\n")
    extra = {"group": [], "regroup": [], "settle": ["-p", "illustrative-2024", "-w", "w.csv"]}[command]
    r = drg(command, bad.name, "-o", "out.parquet", *extra, cwd=tmp_path)
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(
        "Error: crafted.arrow: corrupt Arrow data in column 'dx'")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["crafted.arrow", "w.csv"])  # no .part, no output


def test_settle_of_a_grouped_arrow_file_with_a_corrupt_pass_through_column(tmp_path):
    b = pa.RecordBatch.from_pydict({"case_id": ["1", "2"], "status": ["grouped"] * 2, "drg": ["MA19"] * 2,
                                    "total_cost": [1.0, 2.0], "patient_share": [0.0, 0.0], "los": [3, 4],
                                    "discharge": ["1", "1"]})
    b = b.append_column("hospital_id", strings([0, -100_000_000, 2], b"H1"))
    write_ipc(tmp_path / "grouped.arrow", b)
    (tmp_path / "w.csv").write_text("drg,rw,mean_cost,mean_los,n\nMA19,1.2,12000,6,30\n")
    r = drg("settle", "grouped.arrow", "-p", "illustrative-2024", "-w", "w.csv", "-o", "s.parquet", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "grouped.arrow: corrupt Arrow data in column 'hospital_id'" in r.stderr
    assert not list(tmp_path.glob(".*.part")) and not (tmp_path / "s.parquet").exists()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=6), max_size=40, unique=True))
def test_code_table_maps_each_code_to_its_position(codes):
    """ASCII and not (each code's bytes found from its characters or its UTF-8): every code,
    read from an Arrow string array as well, is its position; a repeated code is refused."""
    t = CodeTable(codes)
    arr = pa.array(codes, pa.string())
    validity, offsets, data = arr.buffers()
    got = t.map_utf8(None, offsets, data if data is not None else b"", 0, len(codes), False).tolist()
    blank = [not c.strip(" \t\n\r\v\f\u00a0\u3000") for c in codes]
    trimmed = [c.strip(" \t\n\r\v\f\u00a0\u3000") for c in codes]
    for i, c in enumerate(codes):
        want = ID_EMPTY if blank[i] else codes.index(trimmed[i]) if trimmed[i] in codes else -1
        assert got[i] == want and t.get(c) == want, (c, got[i], want)
        if c == trimmed[i]:
            assert want == i
    if codes:
        with pytest.raises(ValueError, match="duplicate code"):
            CodeTable([*codes, codes[0]])

"""Grouping a partitioned Parquet dataset on a local process pool and on a Dask LocalCluster:
the parts, read in manifest order, must be exactly what ``drg group`` writes for the files in
listing order; reruns resume; bad pieces are reported; a worker killed midway changes nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import grouper
import grouper.engine.grouper
from grouper.cli.main import main
from grouper.scale import MANIFEST, group_dataset, list_fragments, map_fragments
from grouper.jobs.group import group_files

from conftest import ROOT

RECIPES = ROOT / "docs" / "distributed.md"


# ----------------------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def g():
    return grouper.Grouper("chs-drg-1.1")


@pytest.fixture(scope="module")
def province(synth_table) -> pa.Table:
    """24,000 synthetic cases (dictionary-encoded dx/px lists, as `drg synth` writes them)."""
    return synth_table(24_000, hospitals=20, year=2025, seed=7, ruleset="chs-drg-1.1")


def write_dataset(folder: Path, table: pa.Table, sizes: list[int], row_group: int = 2_000,
                  names=None) -> list[Path]:
    """Split ``table`` into files of ``sizes`` rows with small row groups (so files split)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, start = [], 0
    for k, n in enumerate(sizes):
        path = folder / (names[k] if names else f"f{k:02d}.parquet")
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.slice(start, n), path, row_group_size=row_group)
        paths.append(path)
        start += n
    return paths


def plain(t: pa.Table) -> pa.Table:
    """Dictionary columns decoded: dictionaries differ by batch; the values must not."""
    cols = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in t.columns]
    return pa.Table.from_arrays(cols, names=t.column_names).combine_chunks()


def read_parts(dst: Path, result=None) -> pa.Table:
    manifest = json.loads((dst / MANIFEST).read_text())
    parts = [r["output"] for r in manifest["fragments"]]
    if result is not None:
        assert parts == result.parts
    return pa.concat_tables([pq.read_table(dst / p) for p in parts])


def assert_same(got: pa.Table, expected: pa.Table) -> None:
    assert got.schema.equals(expected.schema, check_metadata=True)
    assert got.num_rows == expected.num_rows
    assert plain(got).equals(plain(expected))


def expected_of(g, paths, **kw) -> pa.Table:
    """What `drg group` writes to Parquet for these files in this order (no name columns)."""
    _, table = group_files(g, [str(p) for p in paths], names=False, **kw)
    return table


# ----------------------------------------------------------------------------- group_batch

def test_group_batch_is_the_pure_engine_function(g, province):
    batch = province.slice(0, 3_000).to_batches()[0]
    out = grouper.group_batch(batch, g)
    assert out.equals(g.group_batch(batch, n_threads=1))
    assert out.num_rows == batch.num_rows
    assert out.column("case_id").equals(batch.column("case_id"))
    by_name = grouper.group_batch(batch, "chs-drg-1.1", dictionary=False, keep=["hospital_id"])
    assert not any(pa.types.is_dictionary(t) for t in by_name.schema.types[:-1])
    assert by_name.column("drg").to_pylist() == out.column("drg").to_pylist()
    assert by_name.schema.metadata == out.schema.metadata
    # a ruleset name is compiled once per process, then reused for every batch
    first = grouper.engine.grouper._ENGINE_GROUPERS["chs-drg-1.1"]
    assert grouper.group_batch(batch.slice(0, 5), "chs-drg-1.1").num_rows == 5
    assert grouper.engine.grouper._ENGINE_GROUPERS["chs-drg-1.1"] is first


# ----------------------------------------------------------------------------- listing

def test_list_fragments_folders_globs_files_and_filesystems(tmp_path, province):
    t = province.slice(0, 10)
    for rel in ["year=2024/b.parquet", "year=2024/a.parquet", "year=2025/a.pq", "top.parquet",
                "_SUCCESS", ".part.parquet", "_tmp/x.parquet", "notes.csv"]:
        (tmp_path / "ds" / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(t, tmp_path / "ds" / rel)
    root = str(tmp_path / "ds")
    want = [f"{root}/top.parquet", f"{root}/year=2024/a.parquet", f"{root}/year=2024/b.parquet",
            f"{root}/year=2025/a.pq"]
    assert list_fragments(root) == want
    assert list_fragments(f"file://{root}") == want
    assert list_fragments(f"{root}/year=*/a.*") == [want[1], want[3]]
    assert list_fragments(f"{root}/**/*.parquet") == want[:3]
    assert list_fragments([f"{root}/year=2025", f"{root}/top.parquet"]) == [want[3], want[0]]
    sub = pafs.SubTreeFileSystem(root, pafs.LocalFileSystem())
    assert list_fragments("year=2024", filesystem=sub) == ["year=2024/a.parquet", "year=2024/b.parquet"]
    assert list_fragments("*/a.*", filesystem=sub) == ["year=2024/a.parquet", "year=2025/a.pq"]
    with pytest.raises(OSError, match="no such file or folder"):
        list_fragments(tmp_path / "nothing")
    with pytest.raises(OSError, match="no files match"):
        list_fragments(f"{root}/*.arrow")
    with pytest.raises(OSError, match="no Parquet files"):
        list_fragments(_empty_dir(tmp_path))
    with pytest.raises(ValueError, match="would be written to part-a.parquet"):  # two files, one part name
        group_dataset([f"{root}/year=2024", f"{root}/year=2025"], tmp_path / "o", "chs-drg-1.1", workers=1)


def _empty_dir(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir(exist_ok=True)
    (tmp_path / "empty" / "readme.txt").write_text("no data")
    return tmp_path / "empty"


# ----------------------------------------------------------------------------- map_fragments

def _pid_and_shared(item, shared):
    return item * 10, os.getpid(), id(shared), len(grouper.engine.cached._COMPILED), shared.compiled.fingerprint


def _flaky(item, folder):
    """Fails the first time it sees an item (a transient error), then succeeds."""
    mark = Path(folder) / f"seen-{item}"
    if not mark.exists():
        mark.write_text("")
        raise OSError(f"transient failure on {item}")
    return item


def _die_once(item, folder):
    """Kills its whole worker process the first time item 2 runs: the pool must recover."""
    mark = Path(folder) / "died"
    if item == 2 and not mark.exists():
        mark.write_text("")
        os._exit(1)
    return item


def _bad(item):
    if item == 1:
        raise ValueError("bad item")
    return item


def test_map_fragments_local_pool_ships_the_grouper_once(g):
    got = map_fragments(_pid_and_shared, list(range(8)), workers=2, shared=g)
    assert [r[0] for r in got] == [i * 10 for i in range(8)]  # results in fragment order
    per_process = {(pid, obj) for _, pid, obj, _, _ in got}
    assert len({pid for pid, _ in per_process}) == len(per_process) <= 2  # one copy per process
    assert {r[3] for r in got} == {0}  # workers unpickled the compiled arrays: nothing compiled
    assert {r[4] for r in got} == {g.compiled.fingerprint}


def test_map_fragments_retries_and_reports(tmp_path):
    assert map_fragments(_flaky, [1, 2, 3], workers=2, shared=str(tmp_path)) == [1, 2, 3]
    assert map_fragments(_die_once, list(range(5)), workers=2, shared=str(tmp_path)) == list(range(5))
    assert (tmp_path / "died").exists()
    out = map_fragments(_bad, [0, 1, 2], workers=1, retries=0, errors="return")
    assert out[0] == 0 and out[2] == 2 and isinstance(out[1], ValueError)
    with pytest.raises(ValueError, match="bad item"):
        map_fragments(_bad, [0, 1, 2], workers=1, retries=0)
    seen = []
    map_fragments(_bad, [0, 2], workers=1, on_result=lambda i, v: seen.append((i, v)))
    assert sorted(seen) == [(0, 0), (1, 2)]
    assert map_fragments(_bad, [], workers=1) == []


# ----------------------------------------------------------------------------- group_dataset, local pool

def test_group_dataset_equals_drg_group_on_the_concatenation(tmp_path, g, province):
    paths = write_dataset(tmp_path / "src", province, [9_000, 5_000, 10_000])
    dst = tmp_path / "out"
    r = group_dataset(tmp_path / "src", dst, g, workers=2, split_rows=4_000, keep=["hospital_id", "total_cost"])
    assert r.ok and r.resumed == 0
    assert r.parts == ["part-f00-00000.parquet", "part-f00-00001.parquet", "part-f00-00002.parquet",
                       "part-f01-00000.parquet", "part-f01-00001.parquet",
                       "part-f02-00000.parquet", "part-f02-00001.parquet", "part-f02-00002.parquet"]
    expected = expected_of(g, paths, keep=["hospital_id", "total_cost"])
    assert_same(read_parts(dst, r), expected)
    m = json.loads((dst / MANIFEST).read_text())
    assert m["state"] == "complete" and m["rows_in"] == m["rows_out"] == 24_000
    assert m["ruleset"]["fingerprint"] == g.compiled.fingerprint
    assert sum(f["rows_in"] for f in m["fragments"]) == 24_000
    for f in m["fragments"]:
        assert f["rows_in"] == f["rows_out"] == sum(f["status"].values())
        assert f["fingerprint"] == g.compiled.fingerprint and f["state"] == "complete"
    assert m["status"] == r.summary.status_counts
    counts = dict(zip(*np.unique(plain(expected)["drg"].to_numpy(zero_copy_only=False), return_counts=True)))
    assert r.summary.drg_counts == {k: int(v) for k, v in counts.items()}
    assert not [p for p in dst.rglob("*") if p.name.startswith(".")]  # no temporary debris
    # the folder reads as one dataset (manifest and markers are hidden from readers)
    assert pq.read_table(dst).num_rows == 24_000


def test_row_numbers_and_mixed_types_follow_drg_group(tmp_path, g, province):
    """Without case_id, row numbers run on across files; a column typed differently in two
    files becomes text in every part, as `drg group` does over several inputs."""
    t = province.drop_columns(["case_id"])
    a = write_dataset(tmp_path / "src", t, [3_000, 3_000], names=["a.parquet", "b.parquet"])
    r = group_dataset(tmp_path / "src", tmp_path / "out", g, workers=1, split_rows=1_000)
    assert r.ok
    got = read_parts(tmp_path / "out", r)
    assert got["case_id"].to_pylist() == list(range(6_000))
    assert_same(got, expected_of(g, a))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    pq.write_table(province.slice(0, 100), mixed / "1.parquet")
    text_ids = province["case_id"].slice(100, 100).cast(pa.string())
    pq.write_table(province.slice(100, 100).set_column(0, "case_id", text_ids), mixed / "2.parquet")
    r = group_dataset(mixed, tmp_path / "out2", g, workers=1)
    got = read_parts(tmp_path / "out2", r)
    assert got.schema.field("case_id").type == pa.string()
    assert_same(got, expected_of(g, [mixed / "1.parquet", mixed / "2.parquet"]))


def test_rerun_resumes_and_refuses_foreign_folders(tmp_path, g, province):
    paths = write_dataset(tmp_path / "src", province, [6_000, 6_000, 6_000])
    dst = tmp_path / "out"
    first = group_dataset(tmp_path / "src", dst, g, workers=2)
    stamps = {p.name: p.stat().st_mtime_ns for p in dst.glob("part-*")}
    # a crash midway: one part and its marker never got written
    (dst / "part-f01.parquet").unlink()
    (dst / "_progress" / "part-f01.parquet.json").unlink()
    # and one input changed since
    pq.write_table(province.slice(18_000, 6_000), paths[2], row_group_size=2_000)
    again = group_dataset(tmp_path / "src", dst, g, workers=2)
    assert again.ok and again.resumed == 1
    assert [f.get("resumed", False) for f in again.manifest["fragments"]] == [True, False, False]
    assert (dst / "part-f00.parquet").stat().st_mtime_ns == stamps["part-f00.parquet"]  # untouched
    assert_same(read_parts(dst, again), expected_of(g, paths))
    assert again.summary.status_counts == {k: v for k, v in again.manifest["status"].items()}
    assert first.summary.rows == again.summary.rows == 18_000
    # a complete run reruns as a no-op
    assert group_dataset(tmp_path / "src", dst, g, workers=1).resumed == 3
    # another ruleset or other options: refused unless overwrite, which redoes everything
    with pytest.raises(FileExistsError, match="another folder"):
        group_dataset(tmp_path / "src", dst, "chs-drg-2.0", workers=1)
    with pytest.raises(FileExistsError, match="another folder"):
        group_dataset(tmp_path / "src", dst, g, workers=1, keep=["dept"])
    r = group_dataset(tmp_path / "src", dst, "chs-drg-2.0", workers=2, overwrite=True)
    assert r.ok and r.resumed == 0 and r.manifest["ruleset"]["name"] == "chs-drg-2.0"
    assert_same(read_parts(dst, r), expected_of(grouper.Grouper("chs-drg-2.0"), paths))
    # fewer inputs than last time: the old run's extra part is removed, not left in the dataset
    paths[1].unlink()
    r = group_dataset(tmp_path / "src", dst, "chs-drg-2.0", workers=1)
    assert sorted(p.name for p in dst.glob("part-*")) == ["part-f00.parquet", "part-f02.parquet"]
    # folders that hold something else, and outputs inside the inputs
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        group_dataset(tmp_path / "src", tmp_path / "other", g, workers=1)
    with pytest.raises(ValueError, match="overlaps"):
        group_dataset(tmp_path / "src", tmp_path / "src" / "grouped", g, workers=1)


def corrupt(path: Path, row_group: int) -> None:
    """Scramble the middle of one row group's dx pages: the footer still reads, the data not."""
    col = next(c for c in (pq.read_metadata(path).row_group(row_group).column(i) for i in range(5, 30))
               if c.path_in_schema.startswith("dx"))
    data = bytearray(path.read_bytes())
    start = col.dictionary_page_offset or col.data_page_offset
    for k in range(start + 40, start + col.total_compressed_size // 2):
        data[k] = (data[k] * 7 + 13) % 256
    path.write_bytes(bytes(data))


def test_bad_pieces_are_reported_and_retried_on_rerun(tmp_path, g, province):
    paths = write_dataset(tmp_path / "src", province, [4_000, 4_000, 4_000])
    good = paths[1].read_bytes()
    corrupt(paths[1], 1)
    dst = tmp_path / "out"
    r = group_dataset(tmp_path / "src", dst, g, workers=2, retries=1, report=tmp_path / "report.json")
    assert not r.ok and len(r.failed) == 1
    assert r.failed[0]["fragment"] == str(paths[1])
    assert r.failed[0]["error"].startswith(f"{paths[1]}: ") and "Corrupt" in r.failed[0]["error"]
    assert not (dst / "part-f01.parquet").exists()
    assert not [p for p in dst.rglob("*") if p.name.startswith(".")]  # its half-written part is gone
    m = json.loads((dst / MANIFEST).read_text())
    assert m["state"] == "incomplete" and m["rows_out"] == 8_000
    assert [f["state"] for f in m["fragments"]] == ["complete", "failed", "complete"]
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["rows"] == 8_000 and rep["failed"][0]["fragment"] == str(paths[1])
    paths[1].write_bytes(good)  # fixed: the rerun does only that file
    r = group_dataset(tmp_path / "src", dst, g, workers=2, report=tmp_path / "report.json")
    assert r.ok and r.resumed == 2
    assert_same(read_parts(dst, r), expected_of(g, paths))
    # unusable columns are usage errors found before any work, naming the file
    table = pq.read_table(paths[1])
    pq.write_table(table.drop_columns(["sex"]), paths[1])
    with pytest.raises(grouper.InputError, match=re.escape(f"{paths[1]}: missing required column(s): sex")):
        group_dataset(tmp_path / "src", tmp_path / "out3", g, workers=1)
    pq.write_table(table.set_column(table.schema.get_field_index("dx"), "dx", pa.array(np.arange(4_000))), paths[1])
    with pytest.raises(grouper.InputError, match=re.escape(f"{paths[1]}: column 'dx' has type int64")):
        group_dataset(tmp_path / "src", tmp_path / "out3", g, workers=1)
    assert not (tmp_path / "out3").exists()


def test_pyarrow_filesystems(tmp_path, g, province):
    """Any pyarrow FileSystem on either side (here SubTree ones standing in for object storage)."""
    paths = write_dataset(tmp_path / "lake" / "cases", province, [3_000, 2_000])
    lake = pafs.SubTreeFileSystem(str(tmp_path / "lake"), pafs.LocalFileSystem())
    outfs = pafs.SubTreeFileSystem(str(tmp_path / "results"), pafs.LocalFileSystem())
    r = group_dataset("cases", "grouped/2025", g, workers=1, filesystem=lake, dst_filesystem=outfs)
    assert r.ok and [f["fragment"] for f in r.manifest["fragments"]] == ["cases/f00.parquet", "cases/f01.parquet"]
    assert_same(read_parts(tmp_path / "results" / "grouped" / "2025", r), expected_of(g, paths))


def test_malloc_is_tuned_only_under_dask_style_environments(monkeypatch):
    """Dask's MALLOC_TRIM_THRESHOLD_ turns off glibc's adaptive mmap threshold; tasks then set a
    32 MiB one, once per process, and touch nothing in other environments."""
    import grouper.scale.dataset as dist

    calls = []

    class Libc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr(dist.ctypes, "CDLL", lambda name: Libc())
    for env, want in [({}, []), ({"MALLOC_TRIM_THRESHOLD_": "65536", "MALLOC_MMAP_THRESHOLD_": "1"}, []),
                      ({"MALLOC_TRIM_THRESHOLD_": "65536"}, [(-3, 32 << 20)])]:
        monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
        monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setattr(dist, "_MALLOC_CHECKED", False)
        calls.clear()
        dist._tune_malloc()
        dist._tune_malloc()
        assert calls == (want if sys.platform.startswith("linux") else [])


# ----------------------------------------------------------------------------- command line

def test_cli_workers_and_errors(tmp_path, g, province):
    paths = write_dataset(tmp_path / "src", province, [5_000, 5_000])
    runner = CliRunner()
    res = runner.invoke(main, ["group", "-r", "chs-drg-1.1", str(tmp_path / "src"), "-o", str(tmp_path / "out"), "--workers", "2",
                               "--keep", "dept", "--summary", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "10000 cases in 2 parts under chs-drg-1.1" in res.stderr
    ref = runner.invoke(main, ["group", "-r", "chs-drg-1.1", *map(str, paths), "-o", str(tmp_path / "one.parquet"), "--keep", "dept"])
    assert ref.exit_code == 0, ref.output
    assert_same(read_parts(tmp_path / "out"), pq.read_table(tmp_path / "one.parquet"))
    assert json.loads((tmp_path / "r.json").read_text())["rows"] == 10_000
    again = runner.invoke(main, ["group", "-r", "chs-drg-1.1", str(tmp_path / "src"), "-o", str(tmp_path / "out"), "--workers", "1",
                                 "--keep", "dept", "--summary", str(tmp_path / "r.json")])
    assert again.exit_code == 0 and "2 parts already complete" in again.stderr
    for args, msg in [([], "name it with -o DIR"),
                      (["-o", str(tmp_path / "x"), "-t", "2"], "--threads does not apply"),
                      (["-o", str(tmp_path / "x"), "--scheduler", "tcp://127.0.0.1:1"], "not both")]:
        res = runner.invoke(main, ["group", "-r", "chs-drg-1.1", str(tmp_path / "src"), "--workers", "1", *args])
        assert res.exit_code == 2 and msg in res.stderr, res.output
    res = runner.invoke(main, ["group", "-r", "chs-drg-1.1", str(paths[0]), "-o", str(tmp_path / "out")])
    assert res.exit_code == 2 and "is a folder" in res.stderr
    pq.write_table(pq.read_table(paths[1]), paths[1], row_group_size=2_000)
    corrupt(paths[1], 1)
    res = runner.invoke(main, ["group", "-r", "chs-drg-1.1", str(tmp_path / "src"), "-o", str(tmp_path / "out4"), "--workers", "2"])
    assert res.exit_code == 1
    assert "failed: " + str(paths[1]) in res.stderr and "1 of 2 parts failed" in res.stderr
    assert "rerun the same command" in res.stderr
    res = runner.invoke(main, ["group", "-r", "chs-drg-1.1", str(tmp_path / "src"), "-o", str(tmp_path / "out5"), "--workers", "1",
                               "--map", "sex=nope"])
    assert res.exit_code == 2 and "no column 'nope'" in res.stderr


# ----------------------------------------------------------------------------- Dask

@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=40) as c, distributed.Client(c) as client:
        yield client


def test_dask_local_cluster_equals_drg_group(tmp_path, g, province, cluster):
    paths = write_dataset(tmp_path / "src", province, [7_000, 9_000, 8_000])
    r = group_dataset(tmp_path / "src", tmp_path / "out", g, cluster, split_rows=5_000)
    assert r.ok and len(r.parts) == 6
    assert_same(read_parts(tmp_path / "out", r), expected_of(g, paths))
    # the compiled ruleset was shipped, never compiled on a worker
    assert set(cluster.run(lambda: len(grouper.engine.cached._COMPILED)).values()) == {0}
    got = map_fragments(_pid_and_shared, list(range(6)), client=cluster, shared=g)
    assert [x[0] for x in got] == [i * 10 for i in range(6)]
    assert len({(pid, obj) for _, pid, obj, _, _ in got}) <= 2
    # the command line, on the same cluster
    res = CliRunner().invoke(main, ["group", "-r", "chs-drg-1.1", str(tmp_path / "src"), "-o", str(tmp_path / "cli"),
                                    "--scheduler", cluster.scheduler.address])
    assert res.exit_code == 0, res.output
    assert_same(read_parts(tmp_path / "cli"), expected_of(g, paths))


def test_dask_worker_killed_midway_changes_nothing(tmp_path, g, province):
    """SIGKILL the worker while it writes the big file's part: the scheduler reruns that task
    elsewhere, and the output is still exactly `drg group`'s."""
    distributed = pytest.importorskip("distributed")
    sizes = [6_000] * 3 + [240_000] + [6_000] * 4
    paths = write_dataset(tmp_path / "src", pa.concat_tables([province] * 11), sizes, row_group=300_000)
    dst = tmp_path / "out"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=50) as c, distributed.Client(c) as client:
        pids = client.run(os.getpid)
        box: dict = {}
        run = threading.Thread(target=lambda: box.update(r=group_dataset(tmp_path / "src", dst, g, client)))
        run.start()
        deadline = time.monotonic() + 120
        while not list(dst.glob(".part-f03.parquet.drg-*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.005)
        where = client.run_on_scheduler(lambda dask_scheduler: [
            ts.processing_on.address for ts in dask_scheduler.tasks.values()
            if ts.key.endswith("-3") and ts.processing_on is not None])
        assert len(where) == 1, "the big piece should be running now"
        os.kill(pids[where[0]], signal.SIGKILL)
        run.join(180)
        assert not run.is_alive()
        assert pids[where[0]] not in client.run(os.getpid).values()  # it died; its nanny started another
    r = box["r"]
    assert r.ok and r.resumed == 0
    assert [f["state"] for f in r.manifest["fragments"]] == ["complete"] * 8
    assert r.manifest["fragments"][3]["worker"] != f"{os.uname().nodename}:{pids[where[0]]}"  # redone elsewhere
    assert_same(read_parts(dst, r), expected_of(g, paths))
    assert not [p for p in dst.rglob("*") if p.name.startswith(".")]  # the dead worker's temp file is gone


# ----------------------------------------------------------------------------- engine recipes (opt-in)

def recipe(name: str) -> str:
    """The code block after ``<!-- recipe: name -->`` in docs/distributed.md: the test runs the
    documented code itself, so the docs cannot drift from what works."""
    text = RECIPES.read_text(encoding="utf-8")
    m = re.search(rf"<!-- recipe: {name} -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert m, f"no {name} recipe in {RECIPES}"
    return m.group(1)


def recipe_input(folder: Path, province: pa.Table) -> list[Path]:
    return write_dataset(folder / "province", province.slice(0, 6_000), [2_000, 2_000, 2_000])


@pytest.mark.spark
def test_spark_map_in_arrow_recipe(tmp_path, g, province, monkeypatch):
    pytest.importorskip("pyspark")
    paths = recipe_input(tmp_path, province)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)  # Spark's Python workers: this environment
    scope: dict = {}
    exec(compile(recipe("spark"), "spark-recipe", "exec"), scope)
    scope["spark"].stop()
    got = pq.read_table(tmp_path / "grouped").sort_by("case_id")
    expected = plain(expected_of(g, paths)).sort_by("case_id")
    assert got.column_names == expected.column_names
    for name in expected.column_names:
        assert got[name].cast(expected[name].type).to_pylist() == expected[name].to_pylist(), name


@pytest.mark.ray
def test_ray_map_batches_recipe(tmp_path, g, province, monkeypatch):
    ray = pytest.importorskip("ray")
    paths = recipe_input(tmp_path, province)
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(recipe("ray"), "ray-recipe", "exec"), {})
    finally:
        ray.shutdown()
    got = pq.read_table(tmp_path / "grouped").sort_by("case_id")
    expected = plain(expected_of(g, paths)).sort_by("case_id")
    assert got.column_names == expected.column_names
    for name in expected.column_names:
        assert got[name].cast(expected[name].type).to_pylist() == expected[name].to_pylist(), name


# ----------------------------------------------------------------------------- aggregates

def test_partitioned_weights_and_indices_equal_the_single_process_results_exactly(tmp_path, g, province, cluster):
    from grouper.scale import indices_dataset, weights_dataset
    from grouper.analytics.indices import indices_from_files
    from grouper.analytics.weights import WeightOptions, weights_from_files

    paths = write_dataset(tmp_path / "src", province, [7_000, 9_000, 8_000])
    opts = WeightOptions(trim="iqr:1.5", min_cases=3)
    single = weights_from_files(g, paths, opts)
    on_dask = weights_dataset(tmp_path / "src", g, opts, cluster)
    assert on_dask.table.equals(single.table) and on_dask.excluded == single.excluded
    assert on_dask.riv == single.riv and on_dask.mean_cost == single.mean_cost
    rw = single.weights()
    one, excluded = indices_from_files(g, paths, rw, department="dept")
    many, excluded2 = indices_dataset(tmp_path / "src", rw, g, cluster, department="dept")
    assert many.equals(one) and excluded2 == excluded  # bit for bit: exact cell sums
    # the local process pool, reading through a pyarrow filesystem
    lake = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    pooled = weights_dataset("src", g, opts, workers=2, filesystem=lake)
    assert pooled.table.equals(single.table)
    assert indices_dataset("src", rw, g, workers=2, filesystem=lake, department="dept")[0].equals(one)


def test_weights_and_indices_commands_with_workers(tmp_path, province):
    write_dataset(tmp_path / "src", province, [5_000, 6_000])
    run = CliRunner().invoke
    assert run(main, ["weights", "-r", "chs-drg-1.1", str(tmp_path / "src"), "-o", str(tmp_path / "w1.csv")]).exit_code == 0
    r = run(main, ["weights", "-r", "chs-drg-1.1", str(tmp_path / "src"), "-o", str(tmp_path / "w2.csv"), "--workers", "2"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "w1.csv").read_bytes() == (tmp_path / "w2.csv").read_bytes()
    for k, extra in ((1, []), (2, ["--workers", "2"])):
        r = run(main, ["indices", "-r", "chs-drg-1.1", str(tmp_path / "src"), "-w", str(tmp_path / "w1.csv"), "-o",
                       str(tmp_path / f"i{k}.csv"), *extra])
        assert r.exit_code == 0, r.output
    assert (tmp_path / "i1.csv").read_bytes() == (tmp_path / "i2.csv").read_bytes()


# ----------------------------------------------------------------------------- workers dying at start-up

_STARTUP_KILLER = '''
import os, sys
# test hook (issue 18 item 4): spawned pool workers die at interpreter start, before they read
# the job from their pipe; DRG_TEST_KILL_WORKERS=N kills the first N of them (a marker file each)
if any("spawn_main" in a for a in getattr(sys, "orig_argv", ())) and os.environ.get("DRG_TEST_KILL_WORKERS"):
    folder, n = os.environ["DRG_TEST_KILL_DIR"], int(os.environ["DRG_TEST_KILL_WORKERS"])
    for k in range(n):
        try:
            os.close(os.open(os.path.join(folder, f"killed-{k}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        os._exit(1)
'''


def _run_with_dying_workers(tmp_path, kills: int, *args) -> subprocess.CompletedProcess:
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(_STARTUP_KILLER)
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
           "DRG_TEST_KILL_WORKERS": str(kills), "DRG_TEST_KILL_DIR": str(marks)}
    drg = Path(sys.executable).with_name("drg")
    try:  # the guard: before the fix the parent blocked forever writing the job into a dead pipe
        return subprocess.run([str(drg), "group", *args], env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("drg group --workers hung after a worker died at start-up")


def test_workers_dying_at_startup_neither_hang_nor_traceback(tmp_path, g, province):
    paths = write_dataset(tmp_path / "src", province, [3_000, 3_000, 3_000])
    res = _run_with_dying_workers(tmp_path, 1, str(tmp_path / "src"), "-o", str(tmp_path / "out"), "--workers", "2",
                                  "-r", "chs-drg-1.1")
    assert (tmp_path / "marks" / "killed-0").exists()  # a worker did die
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr and "9000 cases in 3 parts" in res.stderr
    assert_same(read_parts(tmp_path / "out"), expected_of(g, paths))
    # every start fails: a bounded number of restarts, then a clear error and exit 1
    res = _run_with_dying_workers(tmp_path, 1000, str(tmp_path / "src"), "-o", str(tmp_path / "out2"),
                                  "--workers", "2")
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert "worker processes died" in res.stderr and "3 of 3 parts failed" in res.stderr

"""Writing outputs (issue 18, items 8 and 9): no command writes over one of its inputs or over
another of its outputs, publishing never replaces a file another run wrote meanwhile, outputs
of one run are published together, debris of killed runs is swept, a full disk is one line."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv  # noqa: F401  (pa.csv)
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import grouper.io.write as gio
from grouper.cli.main import main

from conftest import DATA

CSV = DATA / "chs-drg-1.1" / "golden_random.csv"


@pytest.fixture(scope="module")
def prov(tmp_path_factory, synth_province) -> Path:
    """A small synthetic province, its weights and a DIP catalogue, in one folder."""
    d = tmp_path_factory.mktemp("outputs")
    shutil.copyfile(synth_province(3_000, hospitals=4, seed=3), d / "p.parquet")
    r = CliRunner().invoke(main, ["weights", str(d / "p.parquet"), "-o", str(d / "w.parquet")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["dip", "catalogue", str(d / "p.parquet"), "-o", str(d / "cat.parquet"),
                                  "--core-min-n", "5"])
    assert r.exit_code == 0, r.output
    return d


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


# ----------------------------------------------------------------------------- outputs over inputs (item 8)

def _cases(prov: Path) -> list[list[str]]:
    """(command line, the file it must not touch) for every command that writes."""
    p, w, cat = str(prov / "p.parquet"), str(prov / "w.parquet"), str(prov / "cat.parquet")
    o = str(prov / "new-out.parquet")
    return [
        (["settle", p, "-p", "illustrative-2024", "-w", w, "-o", p, "--overwrite"], p),
        (["settle", p, "-p", "illustrative-2024", "-w", w, "-o", o, "--by-hospital", w, "--overwrite"], w),
        (["regroup", p, "-o", p, "--overwrite"], p),
        (["regroup", p, "-o", o, "--matrix", p, "--overwrite"], p),
        (["group", p, "-o", o, "--summary", p, "--overwrite"], p),
        (["group", str(prov), "-o", o, "--summary", w, "--overwrite"], w),  # a folder holding the input
        (["group", p, "-o", str(prov / "parts"), "--workers", "1", "--summary", p, "--overwrite"], p),
        (["weights", p, "-o", p, "--overwrite"], p),
        (["indices", p, "-w", w, "-o", w, "--overwrite"], w),
        (["recalibrate", p, "-a", w, "-b", "iqr:2", "-o", o, "--by-hospital", w, "--overwrite"], w),
        (["dip", "catalogue", p, "-o", p, "--overwrite"], p),
        (["dip", "assign", p, "-c", cat, "-o", cat, "--overwrite"], cat),
        (["dip", "settle", p, "-c", cat, "-p", "illustrative-2024", "-o", o, "--by-hospital", cat, "--overwrite"], cat),
    ]


def test_no_command_writes_over_one_of_its_inputs(prov):
    before = {f: f.read_bytes() for f in prov.iterdir()}
    for args, victim in _cases(prov):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 1, (args, r.output)
        assert "is also one of the inputs" in r.output and victim in r.output, (args, r.output)
        assert "Traceback" not in r.output
    assert {f: f.read_bytes() for f in prov.iterdir()} == before  # nothing changed, nothing added
    link = prov / "link.parquet"  # a symbolic link to an input is that input
    link.symlink_to(prov / "p.parquet")
    try:
        r = CliRunner().invoke(main, ["group", str(prov / "p.parquet"), "-o", str(link), "--overwrite"])
        assert r.exit_code == 1 and "is also one of the inputs" in r.output
    finally:
        link.unlink()


def test_two_outputs_of_one_command_may_not_be_the_same_file(prov, tmp_path):
    o = str(tmp_path / "o.parquet")
    r = CliRunner().invoke(main, ["regroup", str(prov / "p.parquet"), "-o", o, "--matrix", o])
    assert r.exit_code == 1 and "two different outputs" in r.output
    r = CliRunner().invoke(main, ["settle", str(prov / "p.parquet"), "-p", "illustrative-2024",
                                  "-w", str(prov / "w.parquet"), "-o", o, "--months", o, "--overwrite"])
    assert r.exit_code == 1 and "two different outputs" in r.output
    assert not Path(o).exists()
    with pytest.raises(ValueError, match="two different outputs"):
        gio.check_outputs([o, str(tmp_path / "." / "o.parquet")])


# ----------------------------------------------------------------------------- concurrent runs (item 8)

def test_a_file_written_meanwhile_by_another_run_is_never_replaced(tmp_path):
    target = tmp_path / "out.csv"
    table = pa.table({"x": [1, 2, 3]})

    def batches():  # another run publishes the same target while this one is writing
        yield table.to_batches()[0]
        target.write_text("the other run\n")
        yield table.to_batches()[0]

    with pytest.raises(FileExistsError, match="written meanwhile by another run"):
        gio.write_batches(target, batches())
    assert target.read_text() == "the other run\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temporary file left
    gio.write_batches(target, table.to_batches(), overwrite=True)  # --overwrite replaces it
    assert pa.csv.read_csv(target).equals(table)


def test_of_two_concurrent_runs_writing_one_new_file_exactly_one_succeeds(prov, tmp_path):
    out = tmp_path / "grouped.parquet"
    drg = Path(sys.executable).with_name("drg")
    runs = [subprocess.Popen([str(drg), "group", str(prov / "p.parquet"), "-o", str(out), "--keep", k],
                             stderr=subprocess.PIPE, text=True) for k in ("hospital_id", "total_cost")]
    codes = []
    for r in runs:
        _, err = r.communicate(timeout=120)
        codes.append((r.returncode, err))
    assert sorted(c for c, _ in codes) == [0, 1], codes  # before: both 0, the later replacing the earlier
    loser = next(err for c, err in codes if c == 1)
    assert "won't be overwritten" in loser and "Traceback" not in loser
    winner = ("hospital_id", "total_cost")[[c for c, _ in codes].index(0)]
    assert winner in pq.read_schema(out).names  # the file is the successful run's, whole
    assert [p.name for p in tmp_path.iterdir()] == ["grouped.parquet"]


def test_exclusive_publishing_where_hard_links_are_unsupported(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(gio.os, "link", no_links)
    target = tmp_path / "out.csv"
    a, b = gio.OutputSet(), gio.OutputSet()
    Path(a.add(target)).write_text("a\n")
    Path(b.add(target)).write_text("b\n")
    a.publish()
    with pytest.raises(FileExistsError, match="written meanwhile"):
        b.publish()
    assert target.read_text() == "a\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_a_set_is_published_whole_or_not_at_all(tmp_path):
    (tmp_path / "b.json").write_text("someone else's\n")
    outs = gio.OutputSet()
    Path(outs.add(tmp_path / "a.json")).write_text("a\n")
    with pytest.raises(FileExistsError):
        outs.add(tmp_path / "b.json")
    outs.discard()
    c = gio.OutputSet()
    Path(c.add(tmp_path / "a.json")).write_text("a\n")
    Path(c.add(tmp_path / "c.json")).write_text("c\n")
    (tmp_path / "c.json").write_text("meanwhile\n")  # c.json is taken before the set is published
    with pytest.raises(FileExistsError):
        c.publish()
    assert not (tmp_path / "a.json").exists()  # taken back: all or nothing
    assert (tmp_path / "c.json").read_text() == "meanwhile\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json", "c.json"]


# ----------------------------------------------------------------------------- debris (item 9)

def test_stale_partial_files_of_killed_runs_are_swept(tmp_path):
    dead, target = _dead_pid(), tmp_path / "out.csv"
    stale = tmp_path / f".out.csv.{dead}.abcd1234.part"
    fresh = tmp_path / f".out.csv.{dead}.efgh5678.part"  # touched recently: maybe still being written
    alive = tmp_path / f".out.csv.{os.getpid()}.ijkl9012.part"  # its writer runs
    legacy = tmp_path / ".out.csv.mnop3456.part"  # the old name without a pid, a day old
    other = tmp_path / f".other.csv.{dead}.qrst7890.part"  # another target's
    for f in (stale, fresh, alive, legacy, other):
        f.write_text("partial")
    for f in (stale, alive, other):
        _age(f, 3600)
    _age(legacy, 2 * 86_400)
    gio.write_batches(target, pa.table({"x": [1]}).to_batches())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, alive.name, other.name, "out.csv"])
    assert not list(tmp_path.glob(f".out.csv.{os.getpid()}.*.part"))[1:]  # this run left only the live one


def test_killed_settle_spool_folders_are_swept(tmp_path, monkeypatch):
    from grouper.payment.drg.renormalise import Spool

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = _dead_pid()
    stale = tmp_path / f"drg-settle-{dead}-abcd1234"
    (stale / "x").mkdir(parents=True)
    (stale / "priced.arrow").write_bytes(b"\0" * 100)
    _age(stale, 3600)
    mine = tmp_path / f"drg-settle-{os.getpid()}-efgh5678"
    mine.mkdir()
    _age(mine, 3600)
    s = Spool()
    try:
        assert Path(s.dir).name.startswith(f"drg-settle-{os.getpid()}-")
        assert not stale.exists() and mine.exists()
    finally:
        s.remove()


def test_a_failed_regroup_publishes_nothing(prov, tmp_path, monkeypatch):
    import grouper.analytics.regroup as rg

    def boom(*a, **k):
        raise OSError("killed while summarising")

    monkeypatch.setattr(rg, "_summary", boom)
    r = CliRunner().invoke(main, ["regroup", str(prov / "p.parquet"), "-o", str(tmp_path / "o.parquet"),
                                  "--matrix", str(tmp_path / "m.parquet"), "--summary", str(tmp_path / "s.json")])
    assert r.exit_code == 1 and "killed while summarising" in r.output
    assert list(tmp_path.iterdir()) == []  # not the table without its matrix and summary


_FULL_DISK = """
import errno, sys
import grouper.io.write as gio

class FullDisk:  # a writer whose disk fills up at its third batch
    n = 0
    def write_batch(self, *a, **k):
        FullDisk.n += 1
        if FullDisk.n > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
    def close(self):
        pass

gio._writer = lambda kind, tmp, schema, *rest: FullDisk()
from grouper.cli.main import main
main(sys.argv[1:])
"""


def test_a_full_disk_is_one_line_naming_the_file(prov, tmp_path):
    # in a process of its own: the stray 'Exception ignored in: <generator object prefetch>'
    # traceback was printed when the interpreter finalised the reader left open
    out = tmp_path / "grouped.csv"
    r = subprocess.run([sys.executable, "-c", _FULL_DISK, "group", str(prov / "p.parquet"), "-o", str(out),
                        "--batch-size", "200"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "DRG_CACHE_DIR": os.environ.get("DRG_CACHE_DIR", str(tmp_path))})
    assert r.returncode == 1
    assert r.stderr.strip() == f"Error: {out}: cannot write (No space left on device)"  # no traceback at all
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_writing_a_json_output_names_it(tmp_path, monkeypatch):
    real = Path.write_text

    def full(self, *a, **k):
        if self.name.endswith(".part"):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", full)
    out = tmp_path / "grouped.parquet"
    r = CliRunner().invoke(main, ["group", str(CSV), "-o", str(out), "--summary", str(tmp_path / "r.json")])
    assert r.exit_code == 1 and f"{tmp_path / 'r.json'}: cannot write (No space left on device)" in r.output
    assert list(tmp_path.iterdir()) == []  # the report failed: the output is not published either


def test_temporary_names_are_those_of_tempfile(tmp_path, monkeypatch):
    """``_util.tempfiles.mkstemp`` (tempfile is not imported at start-up): a new file, 0600, named
    as tempfile.mkstemp names them (what the sweeps match), never one that exists."""
    import re
    import stat

    from grouper._util.tempfiles import mkstemp

    fd, path = mkstemp(tmp_path, ".out.csv.123.", ".part")
    os.close(fd)
    assert os.path.isabs(path) and Path(path).parent == tmp_path
    assert re.fullmatch(r"\.out\.csv\.123\.[a-z0-9_]{8}\.part", Path(path).name)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and os.path.getsize(path) == 0
    taken = iter([b"\0" * 8, b"\0" * 8, b"\1" * 8])  # the first name twice: the second try is refused
    monkeypatch.setattr(os, "urandom", lambda n: next(taken))
    first = mkstemp(tmp_path, "x", "")
    second = mkstemp(tmp_path, "x", "")
    for fd, _ in (first, second):
        os.close(fd)
    assert Path(first[1]).name == "xaaaaaaaa" and Path(second[1]).name == "xbbbbbbbb"

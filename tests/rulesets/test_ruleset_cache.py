"""The ruleset fingerprint covers everything the loader reads, and the on-disk caches are keyed by
content, verified before use, bounded and written atomically (issue 18, item 1)."""

import os
import pickle
import shutil
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grouper
from grouper.engine import cached as core
from grouper.rulesets import RulesetError, load_ruleset
from grouper.rulesets import cache as cache_mod
from grouper.rulesets import loader as mod
from grouper.rulesets import source as source_mod
from grouper.rulesets import tables

from conftest import RULES
from factory import DX, PX, schemes, write_scheme

CASE = dict(sex=1, age=50, dx=["Z51.101"], los=90, discharge="1")  # RU1, no LOS split holds


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache folder, and a fresh process's view of it (no in-memory caches)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("DRG_CACHE_DIR", str(folder))
    monkeypatch.delenv("DRG_NO_CACHE", raising=False)
    monkeypatch.setattr(mod, "_CACHE", {})
    monkeypatch.setattr(core, "_COMPILED", {})
    return folder


def new_process():
    """What a new process sees: only the disk cache."""
    mod._CACHE.clear()
    core._COMPILED.clear()


@pytest.fixture(scope="module")
def changzhou(tmp_path_factory):
    src = tmp_path_factory.mktemp("cz") / "changzhou"
    shutil.copytree(RULES / "changzhou-2022", src)
    return src


def replace_in(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == count, (old, text.count(old))
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.mark.parametrize("old,new,field,expected", [
    # no_split_result: a case no LOS split takes gets the ADRG rule's own result
    (",RU1,RU1\n", ",RU1,RU9\n", "drg", "RU9"),
    # adrg_code: the ADRG reported for the rule
    (",RU1,RU1\n", ",RU7,RU1\n", "adrg", "RU7"),
])
def test_city_scheme_edit_of_adrg_columns_is_never_served_stale(cache, changzhou, tmp_path, old, new, field,
                                                                  expected):
    folder = tmp_path / "cz"
    shutil.copytree(changzhou, folder)
    before = grouper.Grouper(folder)
    assert getattr(before.group_one(**CASE), field) == "RU1"
    new_process()

    replace_in(folder / "adrg.csv", old, new)
    after = grouper.Grouper(folder)
    assert after.ruleset.fingerprint != before.ruleset.fingerprint
    assert getattr(after.group_one(**CASE), field) == expected
    out = after.group({"sex": [1], "age": [50], "dx": [["Z51.101"]], "px": [[]], "los": [90],
                       "discharge": ["1"]})
    assert out.column(field).to_pylist() == [expected]
    assert out.schema.metadata[b"drg.ruleset_fingerprint"] == after.ruleset.fingerprint.encode()
    assert out.schema.metadata[b"drg.ruleset_fingerprint"] != before.metadata[b"drg.ruleset_fingerprint"]
    assert expected in after.explain(**CASE).text()  # kernel and reference agree


@pytest.fixture
def small(tmp_path):
    return write_scheme(tmp_path / "small", SPEC)


SPEC = {
    "mdcs": [{
        "code": "MDCA", "entry": {"pred": "pdx_in", "list": "mdc_dx"}, "list": DX[:4],
        "regions": {DX[0]: "head", DX[1]: "chest"}, "qy_rule": {"pred": "trauma_regions_ge", "value": 2,
                                                               "list": "mdc_dx"}, "qy_after": "",
        "adrgs": [
            {"code": "AB1", "report": "AB1", "nosplit": "AB1", "entry": {"pred": "pdx_in", "list": "dx"},
             "lists": {"dx": DX[:2], "px": PX[:2]}, "labels": {PX[0]: "1", PX[1]: "2"},
             "drgs": [("AB11", {"pred": "has_mcc"}), ("AB13", {"pred": "dept_in", "values": ["ICU"]})]},
            {"code": "AC1", "report": "AC1", "nosplit": "", "entry": {"pred": "any_px_in", "list": "px"},
             "lists": {"dx": DX[2:4], "px": PX[2:4]}, "drgs": [("AC19", {"const": True})]},
        ],
    }],
    "cc": {DX[4]: ("MCC", "1"), DX[5]: ("CC", "2")}, "excl": {DX[0]: "1"}, "valid_or": PX[:3],
}


@pytest.fixture(params=["fresh", "settled"])
def settled(request, monkeypatch):
    """Files as just written (their stat stamp is not trusted yet: hashed every time), or as if
    left alone long ago (the key is remembered under the stat stamp, cache.file_stamp)."""
    if request.param == "settled":
        monkeypatch.setattr(cache_mod, "SETTLED_NS", -10**18)
    return request.param == "settled"


def test_same_size_edit_with_mtime_restored_is_seen(cache, small, settled):
    """cp -p / rsync -t: same size, same mtime, other content."""
    first = load_ruleset(small)
    g = grouper.Grouper(small)
    path = small / "drg.csv"
    st_before = path.stat()
    replace_in(path, "name AB11", "name AB12")
    os.utime(path, ns=(st_before.st_atime_ns, st_before.st_mtime_ns))
    assert path.stat().st_size == st_before.st_size and path.stat().st_mtime_ns == st_before.st_mtime_ns
    for fresh in (False, True):  # the same process, then a new one with the disk cache
        if fresh:
            new_process()
        again = load_ruleset(small)
        assert again.drgs[("AB1", "AB11")].name == "name AB12"
        assert again.fingerprint != first.fingerprint
        assert grouper.Grouper(small).compiled.drg_names != g.compiled.drg_names


def test_settled_files_are_found_by_their_stamp_without_reading_them(cache, small, monkeypatch):
    """A second run over files left as they were takes the compiled arrays' key from their stat
    stamp: no file of the ruleset is read; while a file has just changed there is no stamp."""
    assert mod.ruleset_stamp(small)[1] is None  # just written: hashed each time
    monkeypatch.setattr(cache_mod, "SETTLED_NS", -10**18)
    folder, stamp = mod.ruleset_stamp(small)
    assert stamp is not None and folder == str(small.resolve())
    first = grouper.Grouper(small)
    assert len(list(cache.glob(f"*{cache_mod.STAMP_SUFFIX}"))) == 1
    new_process()

    def unread(*args):
        raise AssertionError("read although its stamp is remembered")

    monkeypatch.setattr(source_mod, "read_files", unread)
    again = grouper.Grouper(small)
    assert again.compiled.fingerprint == first.compiled.fingerprint
    assert again.group_one(sex=1, age=40, dx=[DX[2]], px=[PX[2]]).drg == "AC19"
    path = small / "mdc.csv"
    for change in (lambda: path.write_bytes(path.read_bytes()), lambda: os.chmod(path, 0o600)):
        before, st = cache_mod.file_stamp([path]), path.stat()
        time.sleep(0.05)  # beyond the file system's timestamp granularity (what SETTLED_NS allows for)
        change()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # the old times put back: ctime moved on
        assert path.stat().st_size == st.st_size and cache_mod.file_stamp([path]) != before
    monkeypatch.setenv("DRG_NO_CACHE", "1")  # no disk memory at all: read and hashed
    new_process()
    with pytest.raises(AssertionError, match="read although"):
        grouper.Grouper(small)


def test_stamp_files_are_bounded(cache, monkeypatch):
    monkeypatch.setattr(cache_mod, "STAMP_MAX_ENTRIES", 2)
    for i in range(4):
        assert cache_mod.stamped_key(f"{i:064x}", lambda: f"key{i}") == f"key{i}"
    assert len(list(cache.glob(f"*{cache_mod.STAMP_SUFFIX}"))) == 2
    assert cache_mod.stamped_key(f"{3:064x}", lambda: "recomputed") == "key3"  # the newest kept


def test_cache_hit_serves_the_same_ruleset_and_program(cache, small):
    first = grouper.Grouper(small)
    entries = sorted(cache.glob("*.drgc"))
    assert len(entries) == 2  # the ruleset and its compiled arrays
    new_process()
    again = grouper.Grouper(small)
    assert again.ruleset.fingerprint == first.ruleset.fingerprint
    assert again.compiled.drg_codes == first.compiled.drg_codes
    assert sorted(cache.glob("*.drgc")) == entries  # read, not rewritten under other names


class _Bomb:
    """Unpickling this writes a marker file: a cache payload must never get that far."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage", "bare-pickle", "other-key",
                                    "rehashed-other-object"])
def test_corrupt_or_tampered_cache_file_is_ignored_and_rebuilt(cache, small, tmp_path, damage):
    expected = grouper.Grouper(small).group_one(sex=1, age=40, dx=[DX[0]]).drg
    marker = tmp_path / "marker"
    entries = list(cache.glob("*.drgc"))
    assert len(entries) == 2  # the ruleset and its compiled arrays
    for entry in entries:
        data = entry.read_bytes()
        assert data.startswith(cache_mod.CACHE_MAGIC)
        if damage == "truncate":
            data = data[: len(data) // 2]
        elif damage == "flip":  # one bit of the payload
            data = data[:-100] + bytes([data[-100] ^ 1]) + data[-99:]
        elif damage == "empty":
            data = b""
        elif damage == "garbage":
            data = os.urandom(4096)
        elif damage == "bare-pickle":  # a pickle with no header
            data = pickle.dumps(_Bomb(marker))
        elif damage == "other-key":  # a whole, valid entry of another key
            other = pickle.dumps("x")
            data = cache_mod.CACHE_MAGIC + cache_mod.json.dumps(
                {"key": "0" * 64, "size": len(other), "sha256": cache_mod.hashlib.sha256(other).hexdigest()}).encode() \
                + b"\n" + other
        elif damage == "rehashed-other-object":  # right key and hash, but not what was asked for
            other = pickle.dumps({"not": "a ruleset"})
            key = entry.name[: -len(cache_mod.CACHE_SUFFIX)]
            data = cache_mod.CACHE_MAGIC + cache_mod.json.dumps(
                {"key": key, "size": len(other), "sha256": cache_mod.hashlib.sha256(other).hexdigest()}).encode() \
                + b"\n" + other
        entry.write_bytes(data)
    new_process()
    assert grouper.Grouper(small).group_one(sex=1, age=40, dx=[DX[0]]).drg == expected
    assert not marker.exists()
    for entry in cache.glob("*.drgc"):  # rebuilt: whole, verified entries again
        key = entry.name[: -len(cache_mod.CACHE_SUFFIX)]
        assert cache_mod.cache_read(entry, key) is not None


def test_cache_file_of_another_user_or_group_writable_is_not_trusted(cache, small):
    load_ruleset(small)
    (entry,) = [e for e in cache.glob("*.drgc")]
    key = entry.name[: -len(cache_mod.CACHE_SUFFIX)]
    assert cache_mod.cache_read(entry, key) is not None
    entry.chmod(0o666)
    assert cache_mod.cache_read(entry, key) is None


def test_cache_folder_is_bounded_and_swept(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "CACHE_MAX_ENTRIES", 3)
    cache.mkdir(parents=True)
    legacy = cache / ("ab" * 16 + "-0.1.0.pkl")
    legacy.write_bytes(b"old format")
    stale_tmp = cache / ".drgc-dead.tmp"
    stale_tmp.write_bytes(b"left by a killed writer")
    os.utime(stale_tmp, (1, 1))
    fresh_tmp = cache / ".drgc-live.tmp"  # another process is writing it right now
    fresh_tmp.write_bytes(b"")
    unrelated = cache / "notes.txt"
    unrelated.write_text("not ours")
    loaded = []
    for i in range(5):
        folder = write_scheme(tmp_path / f"s{i}", SPEC)
        replace_in(folder / "ruleset.toml", 'version = "0"', f'version = "{i}"')
        loaded.append(load_ruleset(folder))
    entries = list(cache.glob("*.drgc"))
    assert len(entries) == 3
    assert len({r.fingerprint for r in loaded}) == 5
    assert not legacy.exists() and not stale_tmp.exists()
    assert fresh_tmp.exists() and unrelated.exists()
    mod._CACHE.clear()
    assert load_ruleset(tmp_path / "s4").version == "4"  # the newest entry survived
    monkeypatch.setattr(cache_mod, "CACHE_MAX_BYTES", 1)  # a size cap keeps only the newest entry
    cache_mod.cache_evict(cache)
    assert len(list(cache.glob("*.drgc"))) == 1


def test_concurrent_writers_and_readers_see_only_whole_entries(cache, small):
    rs = load_ruleset(small)
    cache.mkdir(parents=True, exist_ok=True)
    key = "f" * 64
    path = cache / f"{key}{cache_mod.CACHE_SUFFIX}"
    bad, stop = [], threading.Event()

    def write():
        for _ in range(15):
            cache_mod.cache_write(cache, path, key, rs)

    def read():
        while not stop.is_set():
            got = cache_mod.cache_read(path, key)
            if got is not None and got.fingerprint != rs.fingerprint:
                bad.append(got)

    readers = [threading.Thread(target=read) for _ in range(2)]
    writers = [threading.Thread(target=write) for _ in range(4)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert not bad
    assert cache_mod.cache_read(path, key).fingerprint == rs.fingerprint
    assert not list(cache.glob(".drgc-*"))  # no temporary file left behind


def test_unwritable_cache_folder_only_costs_the_cache(tmp_path, monkeypatch, small):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DRG_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(mod, "_CACHE", {})
    assert load_ruleset(small).counts()["drg"] == 3
    assert grouper.Grouper(small).group_one(sex=1, age=40, dx=[DX[2]], px=[PX[2]]).drg == "AC19"


# ---------------------------------------------------------------- the fingerprint covers every byte

def _table_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".csv")


def _add_optional_tables(folder: Path) -> None:
    (folder / "named_lists.csv").write_text(f"list,code\nMDCA.extra,{DX[6]}\n", encoding="utf-8")
    (folder / "dx_map.csv").write_text(f"from_code,to_code\nX00.000,{DX[0]}\n", encoding="utf-8")
    (folder / "px_map.csv").write_text(f"from_code,to_code\n99.00,{PX[0]}\n", encoding="utf-8")


def _fingerprint(folder: Path) -> str | None:
    try:
        return mod._Loader(folder).load().fingerprint
    except RulesetError:
        return None  # refused: an edit can then never be served stale


def _substitute(data: bytes, offset: int, new: int) -> bytes:
    return data[:offset] + bytes([new]) + data[offset + 1:]


def test_every_byte_of_every_table_is_covered(small):
    """A fixed sweep: each byte of each table of a small scheme (every table the loader reads,
    the optional ones too) replaced by a printable non-blank character either changes the
    fingerprint or makes the loader refuse the folder.

    What parsing normalises away keeps the fingerprint, by design: whitespace around a cell,
    a byte-order mark, CRLF versus LF, CSV quoting of a field that needs none, the order of
    columns, missing trailing cells (read as empty), and in ruleset.toml comments and layout."""
    _add_optional_tables(small)
    base = _fingerprint(small)
    assert base is not None
    files = _table_files(small)
    assert {p.name for p in files} == set(tables.SCHEMA) | set(tables.OPTIONAL)
    kept = []
    for path in files:
        data = path.read_bytes()
        for offset in range(len(data)):
            new = ord("Z") if data[offset] != ord("Z") else ord("Y")
            path.write_bytes(_substitute(data, offset, new))
            if _fingerprint(small) == base:
                kept.append((path.name, offset, data[max(0, offset - 10):offset + 10]))
        path.write_bytes(data)
    assert kept == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(spec=schemes(), where=st.tuples(st.integers(0, 10**6), st.floats(0, 1, exclude_max=True)),
       new=st.sampled_from([c for c in range(33, 127)]))
def test_any_single_byte_edit_of_any_table_changes_the_fingerprint(tmp_path_factory, spec, where, new):
    folder = write_scheme(tmp_path_factory.mktemp("s"), spec)
    base = _fingerprint(folder)
    assert base is not None
    files = _table_files(folder)
    path = files[where[0] % len(files)]
    data = path.read_bytes()
    offset = int(where[1] * len(data))
    if data[offset] == new:
        return
    path.write_bytes(_substitute(data, offset, new))
    assert _fingerprint(folder) != base


@pytest.mark.parametrize("old,new", [
    ('version = "0"', 'version = "1"'),
    ('name = "generated"', 'name = "generated"\ntitle = "another title"'),
    ('cc_scope = "secondary"', 'cc_scope = "all"'),
    ('fields = ["los", "discharge", "dept"]', 'fields = ["dept", "los", "discharge"]'),
    ("require_los = false", "require_los = false\nmax_age_years = 120"),
])
def test_every_manifest_value_is_covered(small, old, new):
    base = _fingerprint(small)
    replace_in(small / "ruleset.toml", old, new)
    assert _fingerprint(small) != base


def test_what_parsing_normalises_away_keeps_the_fingerprint(small):
    base = _fingerprint(small)
    path = small / "drg.csv"
    text = path.read_text(encoding="utf-8")
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").replace("name AB11", "  name AB11 ").encode())
    (small / "ruleset.toml").write_text("# a comment\n" + (small / "ruleset.toml").read_text())
    assert _fingerprint(small) == base

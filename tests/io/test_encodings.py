"""CSV encodings as hospitals and bureaus export them: GBK / GB18030 (detected or given with
--encoding), UTF-8 with and without BOM; a file in neither is a one-line error naming the byte
offset and --encoding. Each file groups exactly like the UTF-8 original."""

from __future__ import annotations

import pyarrow as pa
import pytest

import grouper
from grouper._util.errors import InputError
from grouper.io import CaseInputs, CaseSource, normalise_encoding, open_source
from grouper.io.text import decode, detect_encoding
from grouper.jobs.group import group_files

from exports import DEPTS, NAMES, write_csv


@pytest.fixture(scope="module")
def g():
    return grouper.Grouper("chs-drg-1.1")


def _read(path, **kw) -> pa.Table:
    s = CaseSource.open(path, **kw)
    return pa.Table.from_batches(list(s.read(None)), schema=s.schema)


@pytest.fixture(scope="module")
def utf8_table(tmp_path_factory):
    return _read(write_csv(tmp_path_factory.mktemp("u") / "utf8.csv", "utf-8"))


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig", "utf-8"])
def test_chinese_exports_read_in_every_encoding(tmp_path, utf8_table, encoding):
    table = _read(write_csv(tmp_path / f"{encoding}.csv", encoding))
    assert table.equals(utf8_table)
    assert set(table["dept"].to_pylist()) == set(DEPTS)
    assert table["姓名"].to_pylist()[:len(NAMES)] == NAMES
    assert table.schema.field("dx").type == pa.list_(pa.string())


def test_gbk_file_used_to_fail_with_a_utf8_decode_error(tmp_path):
    """The failure first: a GBK file read as UTF-8 (what the reader did) cannot be decoded."""
    src = write_csv(tmp_path / "gbk.csv", "gbk")
    with pytest.raises(UnicodeDecodeError):
        src.read_text(encoding="utf-8")
    with pytest.raises(InputError, match=r"not UTF-8 text: invalid byte at byte offset 0 \(0xB2\) \(header row\)"):
        _read(src, encoding="utf-8")


@pytest.mark.parametrize("encoding", ["gbk", "GB18030", "cp936", "gb2312"])
def test_encoding_option_names_the_gb_family(tmp_path, utf8_table, encoding):
    assert normalise_encoding(encoding) == "gb18030"
    assert _read(write_csv(tmp_path / "x.csv", "gbk"), encoding=encoding).equals(utf8_table)


def test_explicit_other_codec_is_read_through_arrow(tmp_path, utf8_table):
    assert _read(write_csv(tmp_path / "big5.csv", "utf-16"), encoding="utf-16").equals(utf8_table)


def test_unknown_encoding_name_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="--encoding klingon: unknown encoding"):
        open_source(write_csv(tmp_path / "x.csv", "gbk"), encoding="klingon")


def test_neither_utf8_nor_gb18030_names_the_byte_offset(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_bytes(b"case_id,sex,age,dx,px\n1,1,65,C61.x00,\n2,1,65,\xff\xff,\n")
    with pytest.raises(InputError) as e:
        open_source(src)
    msg = str(e.value)
    assert "bad.csv" in msg and "byte offset 45 (0xFF)" in msg and "--encoding" in msg and "\n" not in msg


def test_gbk_after_an_ascii_first_megabyte_is_still_detected(g, tmp_path):
    """Detection looks at the first 1 MB; a GBK value further down switches the reader to GB18030
    (the earlier rows were ASCII, the same in both)."""
    row = "1,1,65,,,,,,C61.x00,60.5x02\n"
    body = row * (2_000_000 // len(row)) + "2,1,65,,,骨科,,,C61.x00,60.5x02\n"
    src = tmp_path / "late.csv"
    src.write_bytes(("case_id,sex,age,age_days,birth_weight,dept,los,discharge,dx,px\n" + body).encode("gbk"))
    table = _read(src)
    assert table["dept"][-1].as_py() == "骨科"
    summary, out = group_files(g, [src])
    assert summary.rows == table.num_rows and out["drg"][-1].as_py() == "MA19"


def test_utf8_then_gbk_in_one_file_is_refused(tmp_path):
    """UTF-8 decided by the first megabyte, a GBK row after it: an error, not mojibake."""
    head = "a,b\n" + "骨科,1\n" * 200_000
    src = tmp_path / "mixed.csv"
    src.write_bytes(head.encode() + "骨科,2\n".encode("gbk"))
    with pytest.raises(InputError, match=f"not UTF-8 text: invalid byte at byte offset {len(head.encode())} "
                                         r"\(0xB9\) \(column 'a'\).*--encoding"):
        _read(src)


def test_detection_of_samples():
    assert detect_encoding("x", b"\xef\xbb\xbfa,b\n") == ("utf-8", True)
    assert detect_encoding("x", b"a,b\n1,2\n") == ("utf-8", False)
    assert detect_encoding("x", "科室\n".encode()) == ("utf-8", True)
    assert detect_encoding("x", "科室\n".encode("gbk")) == ("gb18030", True)


def test_decode_paths_agree():
    """Few distinct values (decoded once each), many (one joined block), a value holding the
    joining NUL, nulls: the same strings as decoding each value."""
    words = ["骨科", "普通外科", "", "儿科·新生儿", "a\x00b", "𠀀字"]  # 𠀀: a four-byte GB18030 character
    for values in (words * 10, [f"{w}{i}" for i, w in enumerate(words * 10)], words + [None]):
        raw = pa.array([None if v is None else v.encode("gb18030") for v in values], pa.binary())
        assert decode(raw, "gb18030").to_pylist() == values
        assert decode(raw.slice(2), "gb18030").to_pylist() == values[2:]


def test_gbk_export_groups_like_the_utf8_one(g, tmp_path):
    gbk, u8 = write_csv(tmp_path / "gbk.csv", "gbk"), write_csv(tmp_path / "u8.csv", "utf-8")
    a = group_files(g, CaseInputs([gbk], encoding="gbk"), keep=["姓名"])[1]
    b = group_files(g, [u8], keep=["姓名"])[1]
    assert a.equals(b) and a.num_rows == 30 and a["status"].to_pylist().count("grouped") > 20


def test_compiled_gb18030_reads_every_character_like_pythons_codec():
    """The compiled loop (tables taken from Python's codec) against the codec itself: every
    BMP character (two- and four-byte codes) and supplementary ones, in values of every length."""
    from grouper.io.text import COMPILED, _fast_gb18030

    assert COMPILED  # built with the package (setup.py); the codec is only a fallback
    chars = [chr(c) for c in range(0x80, 0x10000) if not 0xD800 <= c < 0xE000] + ["𠀀", "😀", "\U0010FFFF"]
    values = ["".join(chars[i:i + k]) for k, i in zip(range(1, 4000), range(0, len(chars), 17))]
    values += ["ASCII only", "", "混合 text 123", *chars]
    raw = pa.array([v.encode("gb18030") for v in values], pa.binary())
    assert _fast_gb18030(raw).to_pylist() == values
    assert _fast_gb18030(raw.slice(5, 100)).to_pylist() == values[5:105]


@pytest.mark.parametrize("bad", [b"\x80", b"\xff", b"\x81", b"\x81\x30", b"\x81\x30\x81", b"\x81\x7f", b"\x81\xff",
                                 b"\x84\x31\xa5\x30", b"\xe4\x30\x81\x30", b"\x81\x30\x20\x30", "骨".encode("gbk")[:1]])
def test_compiled_gb18030_refuses_what_the_codec_refuses(bad):
    from grouper.io.text import _fast_gb18030

    with pytest.raises(UnicodeDecodeError):
        (b"x" + bad).decode("gb18030")
    raw = pa.array([b"ok", b"x" + bad, b"fine"], pa.binary())
    assert _fast_gb18030(raw) is None
    with pytest.raises(UnicodeDecodeError):
        decode(raw, "gb18030")

"""Column names and joined codes as exports write them: a missing column names the columns that
were found and the closest one (``Sex`` for sex, ``性别`` through the layout names), and codes
joined with ',' ';' '；' or '，' in one field group like '|'-joined ones (one rule, in
grouper._util.columns, for the kernel's input, the reference interpreter and single cases)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, strategies as st

import grouper
from grouper._util.columns import CODE_SEPARATORS, closest_column, split_codes, split_joined
from grouper._util.errors import InputError
from grouper.engine.reference import Case, ReferenceGrouper
from grouper.io import CaseSource
from grouper.jobs.group import group_files

HEADER = "case_id,{sex},age,age_days,birth_weight,dept,los,discharge,{dx},px\n"
ROW = '1,1,65,,,,,,"C61.x00{sep}I10.x00",60.5x02\n'


@pytest.fixture(scope="module")
def g():
    return grouper.Grouper("chs-drg-1.1")


@pytest.mark.parametrize("sex, dx, hint", [
    ("Sex", "dx", "sex <- 'Sex' (--map sex=Sex)"),
    (" SEX ", "dx", "sex <- ' SEX ' (--map sex= SEX )"),
    ("性别", "dx", "sex <- '性别' (--map sex=性别)"),
    ("sex", "DX", "dx <- 'DX' (--map dx=DX)"),
    ("sex", "diagnoses", None),
])
def test_missing_column_lists_found_columns_and_the_closest(g, tmp_path, sex, dx, hint):
    src = tmp_path / "cases.csv"
    src.write_text(HEADER.format(sex=sex, dx=dx) + ROW.format(sep="|"))
    with pytest.raises(InputError) as e:
        group_files(g, [src])
    msg = str(e.value)
    assert "\n" not in msg and str(src) in msg and "missing required column(s): " in msg
    assert f"columns found (10): case_id, {sex}, age, age_days" in msg
    assert (hint in msg) if hint else ("closest" not in msg)


def test_a_chinese_principal_diagnosis_column_is_suggested_for_dx(tmp_path):
    src = tmp_path / "cases.csv"
    src.write_text("case_id,性别,年龄,主要诊断代码\n1,1,65,C61.x00\n")
    with pytest.raises(InputError, match=r"missing column\(s\) for grouping: sex, age, dx; closest: sex <- '性别' "
                                         r"\(--map sex=性别\), age <- '年龄' .*dx <- '主要诊断代码'"):
        CaseSource.open(src).check(["sex", "age", "dx"], what="grouping")


def test_closest_column():
    assert closest_column("sex", ["Sex", "sex_code"]) == "Sex"
    assert closest_column("dx", ["zd", "主要诊断编码"], ["主要诊断编码"]) == "主要诊断编码"
    assert closest_column("los", ["case_id", "cost"]) is None


@pytest.mark.parametrize("sep", [",", ";", "；", "，", "|", " | ", ", "])
def test_codes_joined_with_any_separator_group_the_same(g, tmp_path, sep):
    """Before: 'C61.x00,I10.x00' was one unknown principal diagnosis (ungroupable)."""
    src = tmp_path / "cases.csv"
    src.write_text(HEADER.format(sex="sex", dx="dx") + ROW.format(sep=sep), encoding="utf-8")
    _, t = group_files(g, [src])
    assert (t["status"][0].as_py(), t["drg"][0].as_py()) == ("grouped", "MA19")
    assert g.group_one(sex=1, age=65, dx=f"C61.x00{sep}I10.x00", px="60.5x02").drg == "MA19"
    ref = ReferenceGrouper(g.ruleset).group(Case.from_raw(sex="1", age="65", dx=f"C61.x00{sep}I10.x00", px="60.5x02"))
    assert ref.drg == "MA19"


@given(st.lists(st.lists(st.sampled_from(["A01.000", "B02.100", "60.5x02", "K22.301"]), max_size=4), max_size=20),
       st.sampled_from(list(CODE_SEPARATORS)))
def test_split_joined_and_split_codes_agree(lists, sep):
    texts = [sep.join(codes) for codes in lists]
    arrow = split_joined(pa.array(texts, pa.string())).to_pylist()
    assert [x or [] for x in arrow] == [split_codes(t) for t in texts] == [list(c) for c in lists]

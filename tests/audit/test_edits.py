"""Case edits: each edit fires on a case that breaks it and stays quiet on one that does not."""

import pyarrow as pa
import pytest

from grouper.audit import load_edits, run_edits
from grouper.audit.edits import parse_edits
from grouper.engine import Grouper
from grouper.rulesets import load_ruleset

RULESET = "chs-drg-2.0"


@pytest.fixture(scope="module")
def audit_kit():
    return Grouper(RULESET), load_ruleset(RULESET), load_edits()


def case(dx, px=(), sex=1, age=50):
    return dict(case_id=f"c{len(dx)}", sex=sex, age=age, age_days=None, birth_weight=None,
                dx=list(dx), px=list(px), los=5)


def codes_of(kit, *cases):
    g, rs, edits = kit
    batch = pa.Table.from_pylist(list(cases)).to_batches()[0]
    found = run_edits(batch, g.group_batch(batch), edits, rs, grouper=g)
    return [(r["row"], r["code"], r["item"]) for r in found.to_pylist()], found


# (edit, a case that triggers it, a case that does not) -- the second differs in one field only
EDIT_CASES = [
    ("AE01", case(["W01.x00", "S72.000"]), case(["S72.000", "W01.x00"])),
    ("AE02", case(["G01*", "A02.100"]), case(["A02.203+G01*"])),
    ("AE03", case(["O80.000"], sex=1), case(["O80.000"], sex=2, age=30)),
    ("AE04", case(["C53.000"], sex=1), case(["C53.000"], sex=2)),
    ("AE05", case(["N40.x00"], sex=2), case(["N40.x00"], sex=1)),
    ("AE06", case(["J18.900", "P07.000"], age=40), case(["J18.900", "P07.000"], age=0)),
    ("AE07", case(["J18.900", "Z38.000"], age=5), case(["J18.900", "Z38.000"], age=0)),
    ("AE08", case(["R54.x00"], age=45), case(["R54.x00"], age=80)),
    ("AE09", case(["N40.x00"], ["68.4100"], sex=1), case(["N80.000"], ["68.4100"], sex=2)),
    ("AE10", case(["C53.000"], ["60.2100"], sex=2), case(["N40.x00"], ["60.2100"], sex=1)),
    ("AE90", case(["J18.900", "I10.x00x002", "I10.x00x002"]), case(["J18.900", "I10.x00x002"])),
    ("AE91", case(["N40.x00"], ["60.2100", "60.2100"]), case(["N40.x00"], ["60.2100"])),
    ("AE95", case(["J18.900", "A02.100"]), case(["J18.900", "A02.100", "A00.100x001"])),
]


@pytest.mark.parametrize("code,bad,good", EDIT_CASES, ids=[c[0] for c in EDIT_CASES])
def test_edit_fires_only_on_the_bad_case(audit_kit, code, bad, good):
    found, table = codes_of(audit_kit, bad, good)
    rows = {r for r, c, _ in found if c == code}
    assert rows == {0}, found
    msg = [m for m, c in zip(table["message"].to_pylist(), table["code"].to_pylist()) if c == code][0]
    item = [i for _, c, i in found if c == code][0]
    assert item in msg and any("\u4e00" <= ch <= "\u9fff" for ch in msg)  # Chinese, names the code


def test_every_table_edit_has_a_case():
    assert {e.code for e in load_edits().edits} <= {c[0] for c in EDIT_CASES}


def test_edits_never_change_the_group(audit_kit):
    g, rs, edits = audit_kit
    batch = pa.Table.from_pylist([c for _, b, gd in EDIT_CASES for c in (b, gd)]).to_batches()[0]
    before = g.group_batch(batch)
    run_edits(batch, before, edits, rs, grouper=g)
    assert g.group_batch(batch).column("drg").equals(before.column("drg"))


def test_only_cc_names_the_lifting_code_and_the_lower_group(audit_kit):
    found, table = codes_of(audit_kit, case(["J18.900", "A02.100", "I10.x00x002"]))
    row = [r for r in table.to_pylist() if r["code"] == "AE95"]
    assert len(row) == 1 and row[0]["item"] == "A02.100"
    assert "ES31" in row[0]["message"] and "ES35" in row[0]["message"]


def test_joined_text_codes_are_read_like_lists(audit_kit):
    g, rs, edits = audit_kit
    batch = pa.RecordBatch.from_pydict({"sex": [1], "age": [50], "dx": ["W01.x00|S72.000"], "px": [""]})
    assert "AE01" in run_edits(batch, None, edits, rs)["code"].to_pylist()


@pytest.mark.parametrize("doc,key", [
    ({"edit": [{"code": "X", "severity": "fatal", "scope": "dx", "ranges": ["A00-A01"], "message": "{code}"}]},
     "severity"),
    ({"edit": [{"code": "X", "severity": "error", "scope": "dx", "ranges": ["B-A"], "message": "{code}"}]},
     "ranges"),
    ({"edit": [{"code": "X", "severity": "error", "scope": "dx", "message": "{code}"}]}, "ranges or a pattern"),
    ({"edit": [{"code": "X", "severity": "error", "scope": "dx", "ranges": ["A00-A01"], "message": "{code}",
                "sexx": 1}]}, "sexx"),
    ({"edit": [{"code": "X", "severity": "error", "scope": "dx", "ranges": ["A00-A01"], "message": "no code"}]},
     "message"),
])
def test_bad_edit_tables_are_refused_naming_the_key(doc, key):
    with pytest.raises(ValueError, match=key):
        parse_edits(doc, "e.toml")

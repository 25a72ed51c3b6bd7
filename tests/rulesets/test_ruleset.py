"""Loading and validating rulesets: identity, fingerprint, and refusal of broken tables."""

import csv
import shutil
from pathlib import Path

import pytest

import grouper
from grouper.rulesets import RulesetError, available_rulesets, load_ruleset

from conftest import RULES


def test_bundled_national_scheme_has_its_published_size(ruleset11):
    assert (ruleset11.name, ruleset11.version) == ("chs-drg-1.1", "1.1")
    assert ruleset11.counts() == {"mdc": 26, "adrg": 376, "drg": 628}
    assert len(ruleset11.cc) == 21246 and len(ruleset11.pdx_excl) == 28302
    assert [m.code for m in ruleset11.mdcs[:4]] == ["MDCA", "MDCP", "MDCY", "MDCZ"]
    assert len(ruleset11.fingerprint) == 64


def test_registry_finds_bundled_ruleset_and_rules_path(tmp_path, monkeypatch):
    assert "chs-drg-1.1" in available_rulesets()
    shutil.copytree(RULES / "chs-drg-1.1", tmp_path / "my-scheme")
    monkeypatch.setenv("DRG_RULES_PATH", str(tmp_path))
    assert available_rulesets()["my-scheme"] == tmp_path / "my-scheme"


def test_unknown_name_is_refused_with_the_known_ones():
    with pytest.raises(RulesetError, match="no such ruleset.*chs-drg-1.1"):
        load_ruleset("chs-drg-9.9")


@pytest.fixture
def copy11(tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(RULES / "chs-drg-1.1", dst)
    return dst


def edit(folder: Path, fname: str, fn):
    """Rewrite one table: fn(rows) -> rows (rows are lists, header first)."""
    path = folder / fname
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    rows = fn(rows)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def test_fingerprint_is_stable_and_follows_content(copy11, ruleset11):
    assert load_ruleset(copy11).fingerprint == ruleset11.fingerprint  # same content, other path
    edit(copy11, "cc_mcc.csv", lambda rows: rows[:-1])
    assert load_ruleset(copy11).fingerprint != ruleset11.fingerprint


def test_missing_list_is_refused(copy11):
    # every row of AA1's procedure list removed: its entry rule names a list that no longer exists
    edit(copy11, "adrg_px.csv", lambda rows: [r for r in rows if r[0] != "AA1"])
    with pytest.raises(RulesetError) as e:
        load_ruleset(copy11)
    assert e.value.file == "adrg.csv" and e.value.line == 2 and "AA1" in str(e.value) and "'px'" in str(e.value)


def test_dangling_drg_is_refused(copy11):
    edit(copy11, "drg.csv", lambda rows: rows + [["ZZ99", "孤立组", "ZZ9", '{"const":true}']])
    with pytest.raises(RulesetError, match=r"drg.csv: DRG ZZ99 names unknown ADRG 'ZZ9'"):
        load_ruleset(copy11)


def test_drg_missing_from_table_is_refused(copy11):
    edit(copy11, "drg.csv", lambda rows: [r for r in rows if r[0] != "GZ13"])
    with pytest.raises(RulesetError, match=r"adrg.csv line \d+: ADRG GZ1: drg_order names unknown DRG 'GZ13'"):
        load_ruleset(copy11)


def test_duplicate_eval_order_is_refused(copy11):
    def dup(rows):
        rows[2][2] = rows[1][2]  # MDCP gets MDCA's eval_order
        return rows
    edit(copy11, "mdc.csv", dup)
    with pytest.raises(RulesetError, match=r"mdc.csv line 3: eval_order 1 used twice \(MDCA and MDCP\)"):
        load_ruleset(copy11)


@pytest.mark.parametrize("fname,mutate,message", [
    ("mdc_dx.csv", lambda rows: rows + [["MDCB", "not-a-code", ""]], r"mdc_dx.csv line \d+: malformed code 'not-a-code'"),
    ("cc_mcc.csv", lambda rows: rows + [["A01.000", "XCC", "1"]], r"level must be MCC or CC"),
    ("adrg.csv", lambda rows: [rows[0], [*rows[1][:4], '{"pred":"pdx_in"}', rows[1][5]], *rows[2:]],
     r"adrg.csv line 2: column entry_rule: predicate pdx_in takes \['list'\]"),
    ("adrg.csv", lambda rows: [rows[0], [*rows[1][:4], '{"pred":"moon_phase"}', rows[1][5]], *rows[2:]],
     r"unknown predicate 'moon_phase'"),
    ("adrg.csv", lambda rows: [rows[0], [*rows[1][:4], '{"op":"and"', rows[1][5]], *rows[2:]], r"invalid JSON"),
    ("adrg.csv", lambda rows: [rows[0], [*rows[1][:5], ""], *rows[2:]], r"ADRG AA1 has an empty drg_order"),
    ("adrg.csv", lambda rows: rows + [rows[1]], r"duplicate ADRG 'AA1'"),
    ("mdc.csv", lambda rows: [rows[0], [*rows[1][:4], rows[1][4] + "|GZ1", *rows[1][5:]], *rows[2:]],
     r"MDC MDCA: ADRG GZ1 belongs to MDCG"),
    ("mdc.csv", lambda rows: [rows[0], [*rows[1][:5], "XX1", *rows[1][6:]], *rows[2:]], r"qy_after 'XX1'"),
    ("mdc.csv", lambda rows: [[c if c != "adrg_order" else "adrgs" for c in rows[0]], *rows[1:]],
     r"mdc.csv line 1: missing column\(s\): adrg_order"),
])
def test_broken_tables_are_refused_with_file_line_and_problem(copy11, fname, mutate, message):
    edit(copy11, fname, mutate)
    with pytest.raises(RulesetError, match=message):
        load_ruleset(copy11)


def test_empty_entry_list_is_refused(copy11):
    # an explicitly qualified list that exists for no owner
    def rule(rows):
        rows[1][4] = '{"pred":"pdx_in","list":"MDCQ.mdc_dx"}'
        return rows
    edit(copy11, "adrg.csv", rule)
    edit(copy11, "mdc_dx.csv", lambda rows: [r for r in rows if r[0] != "MDCQ"])
    with pytest.raises(RulesetError, match="MDCQ"):
        load_ruleset(copy11)


def test_missing_file_and_bad_manifest(copy11):
    (copy11 / "cc_exclusion.csv").unlink()
    with pytest.raises(RulesetError, match="cc_exclusion.csv: file is missing"):
        load_ruleset(copy11)
    shutil.copy(RULES / "chs-drg-1.1" / "cc_exclusion.csv", copy11)
    (copy11 / "ruleset.toml").write_text('name = "x"\nversion = "1"\n[engine]\ncc_scope = "some"\n')
    with pytest.raises(RulesetError, match="cc_scope must be"):
        load_ruleset(copy11)


def test_edited_copy_reloads_when_files_change(copy11):
    first = load_ruleset(copy11)
    edit(copy11, "drg.csv", lambda rows: [rows[0], [rows[1][0], "新名字", *rows[1][2:]], *rows[2:]])
    second = load_ruleset(copy11)
    assert second.drgs[("AA1", "AA19")].name == "新名字" and second.fingerprint != first.fingerprint


def test_grouper_accepts_name_path_and_ruleset(copy11, ruleset11):
    for spec in ("chs-drg-1.1", copy11, ruleset11):
        assert grouper.Grouper(spec).compiled.fingerprint == ruleset11.fingerprint


def test_disk_cache_serves_the_same_ruleset_and_follows_edits(copy11, tmp_path, monkeypatch):
    from grouper.rulesets import loader as mod

    monkeypatch.setenv("DRG_CACHE_DIR", str(tmp_path / "cache"))
    first = load_ruleset(copy11)
    assert list((tmp_path / "cache").glob("*.drgc"))
    mod._CACHE.clear()
    again = load_ruleset(copy11)  # from the disk cache
    assert again.fingerprint == first.fingerprint and again.counts() == first.counts()
    edit(copy11, "drg.csv", lambda rows: [rows[0], [rows[1][0], "改名", *rows[1][2:]], *rows[2:]])
    mod._CACHE.clear()
    assert load_ruleset(copy11).drgs[("AA1", "AA19")].name == "改名"


def test_default_and_next_rulesets_are_the_schemes_their_manifests_say():
    """The default is the national scheme most regions run today, the regroup target the next one."""
    from grouper.rulesets import DEFAULT_RULESET, NEXT_RULESET, STATUSES

    by_status = {}
    for name in grouper.available_rulesets():
        by_status.setdefault(grouper.load_ruleset(name).status, []).append(name)
    assert set(by_status) <= set(STATUSES)
    assert by_status["national-current"] == [DEFAULT_RULESET] == ["chs-drg-2.0"]
    assert by_status["national-next"] == [NEXT_RULESET] == ["chs-drg-3.0"]
    assert by_status["historic"] == ["chs-drg-1.1"]
    assert grouper.Grouper().compiled.name == DEFAULT_RULESET


def test_published_group_counts_leave_fail_placeholders_out():
    counts = grouper.load_ruleset("chs-drg-3.0").counts()
    assert counts == {"mdc": 26, "adrg": 492, "drg": 825}  # the workbook's own figures
    assert grouper.load_ruleset("chs-drg-2.0").counts() == {"mdc": 26, "adrg": 409, "drg": 634}


def test_unknown_status_is_refused(tmp_path):
    import shutil

    folder = tmp_path / "x"
    shutil.copytree(RULES / "chs-drg-1.1", folder)
    toml = folder / "ruleset.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('status = "historic"', 'status = "current"'),
                    encoding="utf-8")
    with pytest.raises(grouper.RulesetError, match="status must be one of"):
        grouper.load_ruleset(folder)


def test_drg_rulesets_shows_status_and_default():
    from click.testing import CliRunner

    from grouper.cli.main import main

    res = CliRunner().invoke(main, ["rulesets"])
    assert res.exit_code == 0, res.output
    line = {ln[2:].split()[0]: ln for ln in res.output.splitlines() if ln[2:3].strip()}
    assert line["chs-drg-2.0"].startswith("* ") and "national-current" in line["chs-drg-2.0"]
    assert "national-next" in line["chs-drg-3.0"] and "492 ADRG" in line["chs-drg-3.0"]
    assert "historic" in line["chs-drg-1.1"] and not line["chs-drg-1.1"].startswith("*")

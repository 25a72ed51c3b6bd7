"""Ruleset settings and condition values that do not fit the kernel's fields are refused when the
ruleset is loaded, with the file and key (issue 18, item 7); ``drg validate-ruleset`` runs the
compile step too and reports its errors as messages."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import grouper
from grouper.engine import compile as compile_module
from grouper.rulesets import loader as mod
from grouper.cli.main import main
from grouper.rulesets import RulesetError, load_ruleset

from conftest import DATA
from factory import DX, PX, write_scheme
from test_ruleset_cache import SPEC


@pytest.fixture(autouse=True)
def _no_cache(monkeypatch):
    monkeypatch.setattr(mod, "_CACHE", {})


@pytest.fixture
def small(tmp_path):
    return write_scheme(tmp_path / "small", SPEC)


def set_validation(folder: Path, line: str) -> None:
    toml = folder / "ruleset.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + line + "\n", encoding="utf-8")


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize("setting,message", [
    ("sex_values = [1, 40]", r"validation.sex_values: 40 is outside 0..30"),
    ("sex_values = [-1, 2]", r"validation.sex_values: -1 is outside 0..30"),
    ("sex_values = [true, 2]", r"validation.sex_values must be a list of integers"),
    ("max_age_years = 99999999999999", r"validation.max_age_years = 99999999999999: must be an integer in "
                                       r"0..2147483647"),
    ("max_age_years = 2147483648", r"validation.max_age_years = 2147483648"),
    ("newborn_max_age_days = -1", r"validation.newborn_max_age_days = -1"),
    ("newborn_max_age_days = true", r"validation.newborn_max_age_days = true"),
])
def test_settings_that_overflow_are_refused_with_file_and_key(small, tmp_path, setting, message):
    set_validation(small, setting)
    with pytest.raises(RulesetError, match=message) as e:
        load_ruleset(small)
    assert e.value.file == "ruleset.toml"
    result = run("validate-ruleset", small)
    assert result.exit_code == 1 and "ruleset.toml" in result.output and "ok:" not in result.output
    result = run("group", DATA / "sample.csv", "-r", small, "-o", tmp_path / "o.csv")
    assert result.exit_code == 1 and "ruleset.toml" in result.output
    assert not (tmp_path / "o.csv").exists()


def test_widest_settings_that_fit_are_accepted(small):
    set_validation(small, "sex_values = [0, 30]\nmax_age_years = 2147483647\nnewborn_max_age_days = 2147483647")
    g = grouper.Grouper(small)
    assert g.group_one(sex=30, age=2147483647, dx=[DX[2]], px=[PX[2]]).drg == "AC19"
    assert g.group_one(sex=1, age=40, dx=[DX[2]], px=[PX[2]]).status == "invalid"


INPUT = '[input]\nfields = ["los", "discharge", "dept"]\n'


@pytest.mark.parametrize("text", ['name = 5\nversion = "1"\n', 'name = "x"\nversion = true\n',
                                  'name = "x"\nversion = "1"\ntitle = 3\n', 'name = "x"\nversion = "1"\nengine = 1\n',
                                  'name = "x"\nversion = "1"\nvalidation = "strict"\n'])
def test_wrongly_typed_manifest_is_refused(small, text):
    (small / "ruleset.toml").write_text('name = "x"\nversion = 1\ntitle = "t"\n' + INPUT, encoding="utf-8")
    assert load_ruleset(small).version == "1"  # the same without the wrong type loads
    (small / "ruleset.toml").write_text(text + INPUT, encoding="utf-8")
    with pytest.raises(RulesetError, match="must be") as e:
        load_ruleset(small)
    assert e.value.file == "ruleset.toml"
    assert run("validate-ruleset", small).exit_code == 1


def _dept_split(folder: Path, n: int) -> list[str]:
    """AB13's split reads n distinct department codes."""
    codes = [f"D{i:03d}" for i in range(n)]
    path = folder / "drg.csv"
    text = path.read_text(encoding="utf-8")
    old = json.dumps({"pred": "dept_in", "values": ["ICU"]}).replace('"', '""')
    new = json.dumps({"pred": "dept_in", "values": codes}).replace('"', '""')
    assert text.count(old) == 1
    path.write_text(text.replace(old, new), encoding="utf-8")
    return codes


def test_more_than_64_department_codes_are_refused_with_file_and_line(small):
    _dept_split(small, 65)
    with pytest.raises(RulesetError, match=r"AB1: the conditions name more than 64 distinct dept codes") as e:
        load_ruleset(small)
    assert e.value.file == "drg.csv" and e.value.line == 3
    result = run("validate-ruleset", small)
    assert result.exit_code == 1 and "drg.csv line 3" in result.output


def test_64_department_codes_work(small):
    codes = _dept_split(small, 64)
    g = grouper.Grouper(small)
    for dept, drg in ((codes[0], "AB13"), (codes[63], "AB13"), ("ICU", "AB1")):
        assert g.group_one(sex=1, age=40, dx=[DX[0]], dept=dept).drg == drg


def test_more_than_64_trauma_regions_are_refused(small):
    with open(small / "mdc_dx.csv", "a", encoding="utf-8") as fh:
        for i in range(65):
            fh.write(f"MDCA,K{i:02d}.000,region{i}\n")
    with pytest.raises(RulesetError, match=r"mdc.csv line 2: MDCA: list 'mdc_dx' has more than 64 trauma regions"):
        load_ruleset(small)


def test_validate_ruleset_reports_compile_errors_as_messages(small, monkeypatch):
    def broken(self):
        raise ValueError("a value the kernel cannot hold")

    monkeypatch.setattr(compile_module._Compiler, "compile", broken)
    result = run("validate-ruleset", small)
    assert result.exit_code == 1
    assert "small: does not compile: a value the kernel cannot hold" in result.output


def test_validate_ruleset_builds_the_kernel_program(small, monkeypatch):
    """What `drg group` would build is built: a setting the kernel refuses fails validation."""
    def refuse(self):
        raise OverflowError("value too large to convert to int")

    monkeypatch.setattr(compile_module.CompiledRuleset, "program", refuse)
    result = run("validate-ruleset", small)
    assert result.exit_code == 1 and "does not compile: value too large" in result.output

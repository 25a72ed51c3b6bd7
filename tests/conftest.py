"""Shared fixtures: the bundled 1.1 ruleset and its grouper are loaded once per session, and so is
each synthetic province a test asks for (``synth_province`` / ``synth_table``), built once per spec.

The tests live in one folder per package (tests/engine/, tests/io/, ...) without ``__init__.py``:
pytest puts this folder on ``sys.path``, so ``from conftest import DATA`` and ``from factory import
...`` work from every folder; test file names must therefore be unique across folders."""

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

import grouper

TESTS = Path(__file__).parent  # tests/: data/, snapshots/ and the test folders (one per package)
DATA = TESTS / "data"
RULES = TESTS.parent / "rules"
ROOT = TESTS.resolve().parent  # the repository (docs/, rules/, tools/)
EXPECTED_STATUS = {"SUCCESS": "grouped", "CHECK_FAILED": "invalid", "FAIL": "ungroupable", "QY": "ambiguous"}


def read_cases(path: Path) -> pa.Table:
    """A reference-case CSV with every column as text, the way `drg group` reads it."""
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().strip().split(",")
    return pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
        column_types={c: pa.string() for c in header}, strings_can_be_null=False))


def split_codes(col) -> list[list[str]]:
    """'|'-joined code text -> lists (a blank cell is an empty list)."""
    return [s.split("|") if s.strip() else [] for s in col.to_pylist()]


@pytest.fixture(scope="session")
def ruleset11():
    return grouper.load_ruleset("chs-drg-1.1")


@pytest.fixture(scope="session")
def grouper11(ruleset11):
    return grouper.Grouper(ruleset11)


@pytest.fixture(scope="session")
def synth_province(tmp_path_factory):
    """``synth_province(cases, hospitals=, year=, seed=, ruleset=)`` (the fields and defaults of
    ``SynthSpec``) -> the Parquet file ``write_synthetic`` writes for that spec. Each distinct spec
    is written once per session, in one session folder, and shared by every test that asks for it:
    read it, never write beside it or over it (copy it into the test's own folder for that)."""
    from grouper.analytics.synth import SynthSpec, write_synthetic

    folder = tmp_path_factory.mktemp("synth")
    made: dict[SynthSpec, Path] = {}

    def province(cases: int, **fields) -> Path:
        spec = SynthSpec(cases, **fields)
        if spec not in made:
            path = folder / f"{spec.ruleset}-{spec.cases}-h{spec.hospitals}-{spec.year}-s{spec.seed}.parquet"
            write_synthetic(spec, path)
            made[spec] = path
        return made[spec]

    return province


@pytest.fixture(scope="session")
def synth_table():
    """``synth_table(cases, hospitals=, year=, seed=, ruleset=)`` -> the Arrow table of the batches
    ``generate`` yields for that spec (dictionary-encoded dx/px lists, as ``drg synth`` writes them),
    built once per distinct spec and shared for the session (Arrow tables are immutable)."""
    from grouper.analytics.synth import SynthSpec, generate

    made: dict[SynthSpec, pa.Table] = {}

    def table(cases: int, **fields) -> pa.Table:
        spec = SynthSpec(cases, **fields)
        if spec not in made:
            made[spec] = pa.Table.from_batches(list(generate(spec)))
        return made[spec]

    return table


@pytest.fixture(autouse=True, scope="session")
def _ruleset_cache_in_tmp(tmp_path_factory):
    """Keep the on-disk ruleset cache of the test run out of the user's home."""
    import os

    os.environ["DRG_CACHE_DIR"] = str(tmp_path_factory.mktemp("drg-cache"))

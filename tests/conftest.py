"""Shared fixtures: the bundled 1.1 ruleset and its grouper are loaded once per session."""

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


@pytest.fixture(autouse=True, scope="session")
def _ruleset_cache_in_tmp(tmp_path_factory):
    """Keep the on-disk ruleset cache of the test run out of the user's home."""
    import os

    os.environ["DRG_CACHE_DIR"] = str(tmp_path_factory.mktemp("drg-cache"))

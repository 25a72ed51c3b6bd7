"""The files a scheme consists of and how one CSV table is read: the columns each table must
have, the bytes of every file the loader reads, and rows kept with their line numbers so that
an error can name the file and line a bureau must fix."""

from __future__ import annotations

import csv
import io
import json
import operator
from pathlib import Path
from typing import Iterable

from grouper.rulesets.errors import RulesetError

__all__ = ["FILES", "OPTIONAL", "SCHEMA", "Table", "read_files"]

#: Tables and the columns each must have (a table may have more; the fingerprint covers all).
SCHEMA = {
    "mdc.csv": ["mdc", "mdc_name", "eval_order", "entry_rule", "adrg_order", "qy_after", "qy_rule"],
    "mdc_dx.csv": ["mdc", "dx_code", "trauma_region"],
    "adrg.csv": ["adrg", "adrg_name", "mdc", "section", "entry_rule", "drg_order"],
    "adrg_dx.csv": ["adrg", "list", "dx_code"],
    "adrg_px.csv": ["adrg", "list", "px_code", "label"],
    "drg.csv": ["drg", "drg_name", "adrg", "split_rule"],
    "cc_mcc.csv": ["dx_code", "level", "excl_table"],
    "cc_exclusion.csv": ["pdx_code", "excl_table"],
    "or_procedures.csv": ["px_code", "px_name"],
    "dx_dict.csv": ["dx_code", "dx_name"],
    "px_dict.csv": ["px_code", "px_name"],
}
OPTIONAL = {"named_lists.csv": ["list", "code"], "qy_rules.csv": ["mdc", "qy_drg", "rule"],
             "dx_map.csv": ["from_code", "to_code"], "px_map.csv": ["from_code", "to_code"]}

#: Every file the loader reads (tables it does not know are never opened).
FILES = ("ruleset.toml", *SCHEMA, *OPTIONAL)


def read_files(folder: Path) -> dict[str, bytes]:
    """The bytes of every file of ``folder`` that the loader reads; absent ones are left out."""
    out: dict[str, bytes] = {}
    for name in FILES:
        try:
            out[name] = (folder / name).read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise RulesetError(name, None, f"unreadable: {exc.strerror or exc}") from None
    return out

class Table:
    """Rows of one CSV file with their line numbers, for error messages."""

    def __init__(self, files: dict[str, bytes], fname: str, columns: Iterable[str], required: bool = True):
        self.fname = fname
        self.header: list[str] = []
        self.rows: list[tuple[int, dict[str, str]]] = []
        data = files.get(fname)
        self.present = data is not None
        if not self.present:
            if required:
                raise RulesetError(fname, None, "file is missing")
            return
        try:
            reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""))
            self.header = list(reader.fieldnames or [])
            missing = [c for c in columns if c not in self.header]
            if missing:
                raise RulesetError(fname, 1, f"missing column(s): {', '.join(missing)}")
            for row in reader:
                if None in row:
                    raise RulesetError(fname, reader.line_num, "more fields than the header")
                clean = {k: (v or "").strip() for k, v in row.items()}
                self.rows.append((reader.line_num, clean))
        except UnicodeDecodeError as exc:
            raise RulesetError(fname, None, f"not UTF-8 ({exc.reason})") from None
        except csv.Error as exc:
            raise RulesetError(fname, None, f"malformed CSV: {exc}") from None

    def canonical(self) -> str:
        """Normalised content for the fingerprint: every column of the file (the ones the loader
        reads and any others, by name: their order does not matter), each row's values as the
        loader sees them (stripped), rows in file order. JSON, so the encoding is injective."""
        cols = sorted(set(self.header))
        get = operator.itemgetter(*cols) if len(cols) > 1 else lambda r: tuple(r[c] for c in cols)
        return json.dumps([self.fname, cols, [get(r) for _, r in self.rows]], ensure_ascii=False,
                          separators=(",", ":"))

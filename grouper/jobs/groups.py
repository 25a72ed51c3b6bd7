"""``drg groups``: a scheme's MDCs, ADRGs and DRGs with their names (and weights), as a table.

One row per DRG a case can be reported under, in the scheme's evaluation order: its MDC and ADRG
with names, the section (surgical / medical ...), and with a weights table its RW. An ADRG with
several alternative rules (AH1_1, AH1_2) is listed once; the ambiguous (QY) and placeholder fail
groups are listed too, marked in ``kind``, so every code the grouper can write has a name here.
"""

from __future__ import annotations

import os

import pyarrow as pa

from grouper.io import read_table, write_batches
from grouper.rulesets import Ruleset

__all__ = ["GROUP_COLUMNS", "groups_table", "groups_job"]

_FAIL_NAME = "无法入组（MDC 内占位组）"
GROUP_COLUMNS = ("mdc", "mdc_name", "adrg", "adrg_name", "section", "drg", "drg_name", "kind")


def groups_table(rs: Ruleset, weights: pa.Table | None = None) -> pa.Table:
    """The scheme's groups (see the module); ``rw`` (and ``n`` where the table has it) from
    ``weights`` (``drg weights`` output: drg, rw ...), null for a DRG the table lacks."""
    fail = set(rs.engine["fail_adrgs"])
    rows: list[dict] = []
    seen: set[tuple[str, str]] = set()

    def add(m, adrg, adrg_name, section, drg, drg_name, kind):
        if (adrg, drg) not in seen:
            seen.add((adrg, drg))
            rows.append(dict(zip(GROUP_COLUMNS, (m.code, m.name, adrg, adrg_name, section, drg, drg_name, kind))))

    for m in sorted(rs.mdcs, key=lambda m: m.eval_order):
        if m.pre_qy_rule is not None:
            add(m, "QY", "歧义组", "", m.pre_qy_drg, f"{m.name}歧义组", "ambiguous")
        for code in m.adrgs:
            a = rs.adrgs[code]
            kind = "fail" if code in fail else "group"
            name = a.name or (_FAIL_NAME if kind == "fail" else "")
            for d in a.drgs:
                add(m, a.report_code, name, a.section, d, rs.drgs[(a.code, d)].name or name, kind)
            if a.no_split_result:
                add(m, a.report_code, name, a.section, a.no_split_result, name, kind)
        if m.qy_rule is not None:
            add(m, "QY", "歧义组", "", m.code[3] + "QY", f"{m.name}歧义组", "ambiguous")
    table = pa.Table.from_pylist(rows, schema=pa.schema([(c, pa.string()) for c in GROUP_COLUMNS]))
    if weights is not None:
        if "drg" not in weights.column_names or "rw" not in weights.column_names:
            raise ValueError("weights table: needs columns drg and rw (the output of `drg weights`)")
        keys = [str(k) for k in weights["drg"].to_pylist()]
        for col in ("rw", "n"):
            if col in weights.column_names:
                by = dict(zip(keys, weights[col].to_pylist()))
                table = table.append_column(col, pa.array([by.get(d) for d in table["drg"].to_pylist()],
                                                          weights[col].type))
    return table


def groups_job(rs: Ruleset, output: str | os.PathLike | None = None, weights: str | os.PathLike | None = None, *,
               overwrite: bool = False) -> pa.Table:
    """``groups_table`` of ``rs`` (with the weights file when given), written to ``output``
    (CSV, Parquet ... by extension) when given."""
    table = groups_table(rs, read_table(weights) if weights else None)
    if output is not None:
        write_batches(output, table.to_batches(), overwrite=overwrite, empty_schema=table.schema)
    return table

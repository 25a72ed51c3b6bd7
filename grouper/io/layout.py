"""How an input's columns become the canonical case columns: ``--map`` / ``--map-file``, the
wide 病案首页 layout (one column per code) and the plan that applies both to every batch, so
the engine only ever sees canonical names. See docs/input-formats.md."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pyarrow as pa

from grouper._util.batches import empty_batch
from grouper._util.errors import InputError, first_line
from grouper._util.lazy import pc

__all__ = ["CANONICAL_COLUMNS", "LAYOUTS", "WIDE_LAYOUTS", "ColumnPlan", "MappingError", "code_list", "column_aliases",
           "load_mapping",
           "plan_columns", "read_columns"]

#: Column names the grouper reads; ``--map`` / ``--map-file`` may only name these.
CANONICAL_COLUMNS = ("case_id", "sex", "age", "age_days", "birth_weight", "dx", "px", "los", "discharge", "dept")
#: Wide hospital exports (病案首页 / 医保结算清单): one column per code. ``dx``/``px`` name the
#: principal column and the prefix of the numbered others (``qtzdbm1``..``qtzdbmN``, read in
#: numeric order); the rest rename one column each. Names match case-insensitively, with
#: full-width brackets read as ASCII ones. See docs/input-formats.md.
WIDE_LAYOUTS = {
    "pinyin": {"dx": ("zyzdbm", "qtzdbm"), "px": ("zyssbm", "qtssbm"), "case_id": "bah", "sex": "xb", "age": "nl",
               "age_days": "bzyzsnl", "birth_weight": "xsecsz", "los": "sjzyts", "discharge": "lyfs",
               "dept": "cykb"},
    "chinese": {"dx": ("主要诊断编码", "其他诊断编码"),
                "px": ("主要手术操作编码", "其他手术操作编码"),
                "case_id": "病案号", "sex": "性别", "age": "年龄", "age_days": "年龄(天)",
                "birth_weight": "新生儿出生体重", "los": "实际住院天数", "discharge": "离院方式",
                "dept": "出院科别"},
}
LAYOUTS = ("auto", "canonical", "wide")


def column_aliases() -> dict[str, list[str]]:
    """canonical column -> its names in the wide layouts (the principal column for dx/px), for
    the closest-match hint of a missing-column error (``性别`` for sex, ``主要诊断编码`` for dx)."""
    out: dict[str, list[str]] = {}
    for layout in WIDE_LAYOUTS.values():
        for canonical, source in layout.items():
            out.setdefault(canonical, []).append(source[0] if isinstance(source, tuple) else source)
    return out


class MappingError(InputError):
    """A bad ``--map`` / ``--map-file`` (a usage error, exit 2 on the command line)."""


def load_mapping(pairs: Mapping[str, str] | Iterable[str] = (), map_file: str | os.PathLike | None = None
                 ) -> dict[str, str]:
    """canonical -> source column from ``canonical=source`` pairs (or a dict) over a TOML
    file's ``[columns]`` table; the pairs win. Unknown canonical names raise MappingError."""
    mapping: dict[str, str] = {}
    if map_file is not None:
        import tomllib  # only with a mapping file (start-up)

        try:
            doc = tomllib.loads(Path(map_file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise MappingError(f"{map_file}: unreadable mapping file ({first_line(exc)})") from None
        cols = doc.get("columns")
        if not isinstance(cols, dict) or not all(isinstance(v, str) for v in cols.values()):
            raise MappingError(f'{map_file}: needs a [columns] table of canonical = "source column" lines')
        mapping.update(cols)
    if isinstance(pairs, Mapping):
        mapping.update(pairs)
    else:
        for pair in pairs:
            canonical, eq, source = pair.partition("=")
            if not eq or not canonical.strip() or not source.strip():
                raise MappingError(f"--map {pair!r}: expected canonical=source, e.g. dx=zd")
            mapping[canonical.strip()] = source.strip()
    unknown = sorted(set(mapping) - set(CANONICAL_COLUMNS))
    if unknown:
        raise MappingError(f"unknown column name(s) to map: {', '.join(unknown)}; "
                           f"valid: {', '.join(CANONICAL_COLUMNS)}")
    return mapping


def _norm(name: str) -> str:
    return name.strip().lower().replace("（", "(").replace("）", ")")


@dataclass
class ColumnPlan:
    """How one input's columns become canonical ones, worked out once from its schema and then
    applied to every batch by renaming and (wide layout) list building; never per row."""

    rename: dict[str, list[str]] = field(default_factory=dict)  # source column -> canonical names
    drop: set[str] = field(default_factory=set)  # input columns a mapped or built column replaces
    lists: dict[str, list[str]] = field(default_factory=dict)  # dx/px -> wide code columns
    layout: str | None = None  # WIDE_LAYOUTS key when the wide layout is read

    def apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if not (self.rename or self.drop or self.lists):
            return batch
        names, cols = [], []
        for name, col in zip(batch.schema.names, batch.columns):
            if name in self.rename:
                names += self.rename[name]
                cols += [col] * len(self.rename[name])
            elif name not in self.drop:
                names.append(name)
                cols.append(col)
        for canonical, sources in self.lists.items():
            names.append(canonical)
            cols.append(code_list(batch, sources))
        return pa.RecordBatch.from_arrays(cols, names=names)

    def schema(self, schema: pa.Schema) -> pa.Schema:
        return self.apply(empty_batch(schema)).schema


def read_columns(schema: pa.Schema, plan: "ColumnPlan", wanted: Iterable[str]) -> list[str]:
    """The input columns worth reading: those that become a ``wanted`` canonical column (directly,
    through the mapping or as part of a wide code list). Columns nobody uses are never decoded."""
    wanted = set(wanted)
    list_sources = {c for sources in plan.lists.values() for c in sources}
    out = []
    for name in schema.names:
        if name in list_sources or (name in plan.rename and wanted & set(plan.rename[name])) or (
                name in wanted and name not in plan.drop and name not in plan.rename):
            out.append(name)
    return out


def plan_columns(schema: pa.Schema, mapping: Mapping[str, str] | None = None, layout: str = "auto",
                 path: str = "input") -> ColumnPlan:
    """The plan for one input: ``mapping`` first, then (``layout`` wide, or auto with no dx
    column but a recognised principal diagnosis) the wide layout for what is left."""
    names = schema.names
    plan = ColumnPlan()
    for canonical, source in (mapping or {}).items():
        if source not in names:
            raise InputError(f"{path}: --map {canonical}={source}: no column {source!r} in this input")
        plan.rename.setdefault(source, []).append(canonical)
        plan.drop.add(canonical)
    have = (set(names) - set(plan.rename)) | set(plan.drop)  # canonical names present after mapping
    by_norm = {_norm(n): n for n in reversed(names)}
    style = next((k for k, v in WIDE_LAYOUTS.items() if _norm(v["dx"][0]) in by_norm), None)
    if layout == "wide" and style is None:
        raise InputError(f"{path}: --layout wide needs a principal-diagnosis column "
                         f"({' or '.join(v['dx'][0] for v in WIDE_LAYOUTS.values())})")
    if style is None or layout == "canonical" or (layout == "auto" and "dx" in have):
        return plan
    plan.layout = style
    for canonical, source in WIDE_LAYOUTS[style].items():
        if canonical in (mapping or {}):
            continue
        if isinstance(source, tuple):
            principal, prefix = _norm(source[0]), re.compile(re.escape(_norm(source[1])) + r"(\d+)")
            numbered = sorted((int(m[1]), n) for n in names if (m := prefix.fullmatch(_norm(n))))
            plan.lists[canonical] = ([by_norm[principal]] if principal in by_norm else []) + [n for _, n in numbered]
            plan.drop.add(canonical)
        elif canonical not in have and _norm(source) in by_norm:
            plan.rename.setdefault(by_norm[_norm(source)], []).append(canonical)
    return plan


def code_list(batch: pa.RecordBatch, columns: list[str]) -> pa.Array:
    """list<string> of the given code columns row by row, in column order, blanks dropped.
    Vectorised: the columns are concatenated once and the kept cells taken in row order."""
    n, k = batch.num_rows, len(columns)
    if k == 0:
        return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.string()))
    values = pa.concat_arrays([_text(batch.column(c)) for c in columns])  # column-major
    filled = pc.not_equal(pc.utf8_trim_whitespace(values), "").fill_null(False)
    keep = filled.to_numpy(zero_copy_only=False).reshape(k, n).T  # (row, column)
    rows, cols = np.nonzero(keep)  # row-major order: principal first within each row
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(keep.sum(axis=1), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values.take(pa.array(cols * n + rows)))


def _text(col: pa.Array) -> pa.Array:
    return col if col.type == pa.string() else col.cast(pa.string())

"""What ``drg settle`` runs on files: the case files as a re-readable stream (grouping raw files
on the way), the per-case output written in order, the tables, the JSON summary and the report."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from grouper._util.batches import empty_batch
from grouper._util.errors import InputError
from grouper._util.progress import advance, reporting
from grouper.io import (CANONICAL_COLUMNS, DEFAULT_BATCH, CaseSource, OutputSet, check_outputs, read_table,
                        table_kind, write_batches, write_table)
from grouper.jobs.outputs import SETTLE_MONEY, case_progress, code_names, with_money, with_names
from grouper.payment.drg import DrgColumns, DrgSettlement, needed_columns, settle_batches
from grouper.payment.pack import PaymentPack


def _unified_schema(schemas: Iterable[pa.Schema]) -> pa.Schema:
    """The columns of several inputs together, in order of first appearance; a column whose
    type differs between inputs becomes text."""
    types: dict[str, pa.DataType] = {}
    for s in schemas:
        for f in s:
            if f.name not in types or pa.types.is_null(types[f.name]):
                types[f.name] = f.type
            elif f.type != types[f.name] and not pa.types.is_null(f.type):
                types[f.name] = pa.string()
    return pa.schema(list(types.items()))


def case_columns(pack: PaymentPack, cols: DrgColumns) -> list[str]:
    """The input columns a settlement under ``pack`` may read (besides status and DRG)."""
    names = [cols.case_id, cols.hospital, cols.level, cols.insurance_type, cols.cost, cols.patient_share, cols.los,
             cols.discharge, cols.date, cols.referred]
    if pack.special_review.application_column:
        names.append(pack.special_review.application_column)
    return names


class CaseFiles:
    """Case files as a re-readable stream of grouped batches holding only the columns settlement
    needs. Files with status and DRG columns are read as they are; raw case files are grouped
    with ``grouper`` (a Grouper, or a function returning one) on the way, on every read."""

    def __init__(self, inputs, pack: PaymentPack, cols: DrgColumns = DrgColumns(), grouper=None, *,
                 batch_size: int = DEFAULT_BATCH):
        want = case_columns(pack, cols)
        self.parts = []  # (source, the columns read, keep: None for grouped files, read as they are)
        schemas = []
        seen: set[str] = set()  # columns of any file (a file without one reads it as null)
        for s in CaseSource.each(inputs, batch_size=batch_size):
            names = s.source.schema.names
            seen.update(s.schema.names)
            if cols.status in names and cols.drg in names:
                s = CaseSource(s.source)  # unplanned
                columns = s.input_columns({cols.status, cols.drg, *want})
                self.parts.append((s, columns, None))
                schemas.append(pa.schema([s.source.schema.field(c) for c in columns]))
            else:
                if grouper is None:
                    raise ValueError(f"{s.path}: not grouped (no {cols.status!r}/{cols.drg!r} columns) "
                                     "and no ruleset given")
                if not hasattr(grouper, "group_batch"):  # a factory: the ruleset is compiled only when needed
                    grouper = grouper()
                keep = [c for c in dict.fromkeys(want) if c in s.schema.names and c not in ("case_id",)]
                self.parts.append((s, {*CANONICAL_COLUMNS, *keep}, keep))
                with s.named_errors():
                    schemas.append(grouper.group_batch(empty_batch(s.schema), columns=("case_id", "status", "drg"),
                                                       keep=keep).schema)
        files = [s.path for s, _, _ in self.parts]
        for name, why in needed_columns(pack, cols):  # before any work
            if name not in seen:
                where = files[0] if len(files) == 1 else f"{files[0]} and the {len(files) - 1} other input file(s)"
                raise InputError(f"{where}: no column {name!r} in the cases ({why})")
        self.grouper = grouper
        self.recorded = {(s.source.schema.metadata or {}).get(b"drg.ruleset") for s, _, keep in self.parts
                         if keep is None}  # the rulesets grouped files say they were grouped under
        self.schema = _unified_schema(schemas)
        self.info = {"grouped_here": 0, "pre_grouped": 0, "files": files}

    def __call__(self) -> Iterator[pa.RecordBatch]:
        rows = 0
        info = {"grouped_here": 0, "pre_grouped": 0}
        for s, columns, keep in self.parts:
            for b in s.read(columns):  # the next batch is read while this one is grouped
                if keep is not None:
                    with s.named_errors():
                        b = self.grouper.group_batch(b, columns=("case_id", "status", "drg"), keep=keep,
                                                     row_offset=rows)
                    info["grouped_here"] += b.num_rows
                else:
                    info["pre_grouped"] += b.num_rows
                rows += b.num_rows
                advance(b.num_rows)
                yield b
        self.info.update(info)


def _drg_names(source: CaseFiles, grouper, cols: DrgColumns) -> dict[str, str]:
    """Names of the DRG codes settled: those of the ruleset the grouped inputs record, when they
    agree on one; otherwise (raw inputs, or grouped files that do not say) those of ``grouper``
    (``--ruleset``)."""
    from grouper.engine import Grouper

    recorded = {r for r in source.recorded if r}
    if len(recorded) == 1 and None not in source.recorded and source.grouper is None:
        try:
            return code_names(Grouper(next(iter(recorded)).decode()).compiled)
        except Exception:  # a ruleset this installation does not have: names from --ruleset
            pass
    g = source.grouper if source.grouper is not None else grouper
    if g is None:
        return {}
    if not hasattr(g, "group_batch"):
        g = g()
    return code_names(g.compiled)


def settle_files(inputs, pack: PaymentPack, weights_path, output, *, hospitals_path=None, summary=None,
                 months=None, json_path=None, report=None, grouper=None, columns: DrgColumns = DrgColumns(),
                 overwrite: bool = False, batch_size: int = DEFAULT_BATCH, bom: bool = False,
                 progress=None) -> DrgSettlement:
    """What ``drg settle`` runs: stream the case files twice (grouping raw files on the way),
    write the per-case output batch by batch, in input order and atomically, and optionally the
    hospital summary, the monthly table, a JSON summary and a report. The result has no
    ``cases`` table (they are in ``output``). Existing files are refused before any work
    unless ``overwrite``. Amounts are written as exact decimals (yuan with two places, whole
    fen: ``jobs.outputs.SETTLE_MONEY``); ``bom`` starts CSV outputs with a UTF-8 byte order mark."""
    check_outputs([output, summary, months, json_path, report], [*_as_list(inputs), weights_path, hospitals_path,
                                                                 pack.path or None], overwrite=overwrite)
    for o in (output, summary, months):
        if o is not None:
            table_kind(o)
    t0 = time.perf_counter()
    weights = read_table(weights_path)
    hospitals = read_table(hospitals_path) if hospitals_path is not None else None
    source = CaseFiles(inputs, pack, columns, grouper, batch_size=batch_size)
    names = _drg_names(source, grouper, columns)
    with OutputSet(overwrite, bom=bom) as outs, reporting(case_progress(progress, _as_list(inputs), passes=2)):
        r = settle_batches(source, pack, weights, hospitals, columns=columns, schema=source.schema,
                           sink=lambda it: write_batches(
                               output, (with_names(with_money(b, SETTLE_MONEY), names, columns.drg, "drg_name")
                                        if names else with_money(b, SETTLE_MONEY) for b in it), into=outs),
                           plain_dictionaries=table_kind(output) == "arrow", require_rows=True)
        r.summary["input"] = source.info
        r.summary["seconds"] = time.perf_counter() - t0
        for path, t in ((summary, r.hospitals), (months, r.months)):
            if path is not None:
                write_table(path, with_money(t, SETTLE_MONEY), into=outs)
        if json_path is not None:
            Path(outs.add(json_path)).write_text(
                json.dumps(r.summary, ensure_ascii=False, indent=2, default=_jsonable) + "\n", encoding="utf-8")
        if report is not None:
            from grouper.report import write_settlement_report

            write_settlement_report(r, outs.add(report), overwrite=True)  # replaces the set's temporary file
    return r


def _as_list(inputs) -> list:
    return [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return str(v)

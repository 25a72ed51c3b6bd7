"""``drg dip catalogue | assign | settle``: case files read -> DIP computed (``grouper.payment.dip``)
-> result files written. Files are streamed batch by batch with only the needed columns read;
every input is checked before anything is written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc
from grouper.io import (DEFAULT_BATCH, CaseInputs, CaseSource, OutputSet, check_outputs, read_table, write_batches,
                        write_table)
from grouper._util.progress import advance, reporting
from grouper.jobs.outputs import DIP_MONEY, case_progress, check_tables, with_money
from grouper.payment.dip import (
    ASSIGN_STATUSES,
    ASSIGNED_SCHEMA,
    DEFAULT_COLUMNS,
    SETTLED_SCHEMA,
    Assigner,
    BaseCases,
    Catalogue,
    DipColumns,
    DipParams,
    DipSettlement,
    ProcedureTypes,
    assigned_batch,
    catalogue_from_base,
    settle,
)

__all__ = ["dip_catalogue_files", "dip_catalogue_job", "dip_assign_files", "dip_settle_files", "dip_settle_job",
           "save_catalogue", "load_catalogue", "file_batches"]


def file_batches(inputs, need: list[str], optional: list[str], batch_size: int, what: str,
                 dx: str = "dx", px: str = "px", case_id: str = "case_id") -> Iterator[pa.RecordBatch]:
    """Batches of the case files with only dx/px, ``need`` and whichever of ``optional`` exist,
    after the wide-layout plan of ``grouper.io``. Every file is checked before any is read (a
    missing column is an error naming the file); ``case_id`` is read as text when the files
    disagree on its type, so their rows can go to one output."""
    files = []
    for s in CaseSource.each(inputs, batch_size=batch_size):
        want = {dx, px, *need, *s.check([dx, px, *need], [c for c in optional if c], what=what)}
        files.append((s, want, s.schema.field(case_id).type if case_id in s.schema.names else None))
    mixed = len({t for *_, t in files if t is not None}) > 1
    for s, want, _ in files:
        for b in s.read(want, ahead=0):
            b = b.select([c for c in b.schema.names if c in want])
            if mixed and case_id in b.schema.names:
                i = b.schema.get_field_index(case_id)
                b = b.set_column(i, case_id, pc.cast(b.column(i), pa.string()))
            advance(b.num_rows)
            yield b


def save_catalogue(catalogue: Catalogue, path, *, overwrite: bool = False, into: OutputSet | None = None) -> None:
    """A catalogue to Parquet (with its ``info`` in the metadata), CSV or Arrow (into the set
    ``into`` when given, published with it)."""
    meta = {b"dip.info": json.dumps(catalogue.info, ensure_ascii=False).encode()}
    t = catalogue.table.replace_schema_metadata({**(catalogue.table.schema.metadata or {}), **meta})
    if into is not None:
        write_table(path, t, into=into)
        return
    write_batches(path, t.to_batches(), overwrite=overwrite, empty_schema=t.schema, rows=t.num_rows)


def load_catalogue(path) -> Catalogue:
    """A catalogue saved by ``save_catalogue`` (or any table with its columns)."""
    t = read_table(path)
    meta = (t.schema.metadata or {}).get(b"dip.info")
    try:
        return Catalogue(t, json.loads(meta) if meta else {})
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def dip_catalogue_files(inputs, params: DipParams = DipParams(), *, procedure_types: ProcedureTypes,
                        columns: DipColumns = DEFAULT_COLUMNS, batch_size: int = DEFAULT_BATCH) -> Catalogue:
    """The catalogue from case files (CSV/Parquet/Arrow, streamed; only the needed columns read).
    Memory follows the distinct (亚目, procedure, year, level) cells, unless costs are trimmed."""
    base = BaseCases(columns, keep_cases=params.trim != "none")
    need = [columns.cost] + ([columns.year] if columns.year else [])
    for b in file_batches(inputs, need, [columns.level], batch_size, "the DIP catalogue", columns.dx, columns.px):
        base.add(b)
    return catalogue_from_base(base, params, procedure_types)


def dip_assign_files(inputs, catalogue: Catalogue, output, *, procedure_types: ProcedureTypes,
                     columns: DipColumns = DEFAULT_COLUMNS, overwrite: bool = False,
                     batch_size: int = DEFAULT_BATCH, bom: bool = False) -> dict[str, int]:
    """``assign`` streamed from case files into ``output``; returns the count per status."""
    check_outputs([output], [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs, overwrite=overwrite)
    a = Assigner(catalogue, procedure_types, columns)
    counts = np.zeros(len(ASSIGN_STATUSES), np.int64)

    def out():
        row = 0
        for b in file_batches(inputs, [], [columns.case_id], batch_size, "DIP assignment", columns.dx, columns.px,
                              columns.case_id):
            yield assigned_batch(a, b, catalogue, columns, row, counts)
            row += b.num_rows

    write_batches(output, out(), overwrite=overwrite, empty_schema=ASSIGNED_SCHEMA, bom=bom)
    return {k: int(v) for k, v in zip(ASSIGN_STATUSES, counts)}


def dip_settle_files(inputs, catalogue: Catalogue, params: DipParams, output, *, procedure_types: ProcedureTypes,
                     columns: DipColumns = DEFAULT_COLUMNS, point_value: float | None = None,
                     overwrite: bool = False, batch_size: int = DEFAULT_BATCH,
                     into: OutputSet | None = None) -> DipSettlement:
    """Settle case files (streamed, read twice when PV_s is computed) into ``output`` (into the
    set ``into`` when given, published with it); amounts as exact decimals (``DIP_MONEY``)."""
    files = CaseInputs.of(inputs).expand()
    check_outputs([output], files, overwrite=overwrite)
    money = (*DIP_MONEY, columns.cost)
    need = [columns.cost] + ([columns.patient_share] if columns.patient_share else []) + \
        ([columns.level] if params.level_coef != "none" and columns.level else [])
    optional = [columns.case_id, columns.hospital, columns.level]
    return settle(lambda: file_batches(files, need, optional, batch_size, "DIP settlement", columns.dx, columns.px,
                                       columns.case_id),
                  catalogue, params, procedure_types=procedure_types, columns=columns, point_value=point_value,
                  sink=lambda it: write_batches(output, (with_money(b, money) for b in it), overwrite=overwrite,
                                                empty_schema=with_money(SETTLED_SCHEMA.empty_table(), money).schema,
                                                into=into))


def dip_catalogue_job(inputs, params: DipParams, output, *, ruleset: str, year_column: str | None = None,
                      cost: str = "total_cost", level: str = "hospital_level", summary=None,
                      overwrite: bool = False, bom: bool = False, progress=None) -> tuple[Catalogue, str | None]:
    """``drg dip catalogue``: the catalogue of ``inputs`` saved to ``output`` (+ ``summary`` JSON);
    without ``year_column``, ``discharge_date`` when every input has it. Returns the catalogue and
    the year column used."""
    files = CaseInputs.of(inputs).expand()
    check_outputs([output, summary], files, overwrite=overwrite)
    check_tables(output)
    if year_column is None:
        has = [("discharge_date" in CaseSource.open(f, **files.options()).schema.names) for f in files]
        year_column = "discharge_date" if all(has) else None
    types = ProcedureTypes.from_ruleset(ruleset)
    with reporting(case_progress(progress, files)):
        cat = dip_catalogue_files(files, params, procedure_types=types,
                                  columns=DipColumns(cost=cost, level=level, year=year_column))
    with OutputSet(overwrite, bom=bom) as outs:  # published together at the end, or none
        save_catalogue(cat, output, into=outs)
        if summary:
            Path(outs.add(summary)).write_text(json.dumps(cat.info, ensure_ascii=False, indent=2) + "\n",
                                               encoding="utf-8")
    return cat, year_column


def dip_settle_job(inputs, catalogue: Catalogue, params: DipParams, output, *, procedure_types: ProcedureTypes,
                   columns: DipColumns = DEFAULT_COLUMNS, point_value: float | None = None, summary=None,
                   totals=None, overwrite: bool = False, bom: bool = False, progress=None) -> DipSettlement:
    """``drg dip settle``: ``dip_settle_files`` plus the per-hospital ``summary`` table and the
    ``totals`` JSON, all published together at the end, or none."""
    check_outputs([output, summary, totals], CaseInputs.of(inputs).expand(warn=None), overwrite=overwrite)
    check_tables(output, summary)
    passes = 1 if point_value is not None or params.point_value is not None else 2
    with OutputSet(overwrite, bom=bom) as outs, reporting(case_progress(progress, inputs, passes)):
        r = dip_settle_files(inputs, catalogue, params, output, procedure_types=procedure_types, columns=columns,
                             point_value=point_value, overwrite=overwrite, into=outs)
        if summary:
            write_table(summary, with_money(r.hospitals, (*DIP_MONEY, columns.cost)), into=outs)
        if totals:
            Path(outs.add(totals)).write_text(json.dumps(r.summary, ensure_ascii=False, indent=2) + "\n",
                                              encoding="utf-8")
    return r

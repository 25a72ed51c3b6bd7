"""``drg regroup``: case files grouped under two scheme versions, written as one set (per-case
results, migration matrix, summary JSON, HTML report) that is published whole or not at all."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import pyarrow as pa

from grouper._util.progress import advance, reporting
from grouper.analytics.regroup import Regrouping, RegroupResult
from grouper.engine import Grouper
from grouper.io import DEFAULT_BATCH, CaseInputs, CaseSource, OutputSet, check_outputs, write_batches, write_table
from grouper.jobs.outputs import case_progress, check_tables, code_names
from grouper.report import write_regroup_report

__all__ = ["regroup"]


def regroup(inputs: Iterable[str | os.PathLike], g_from: Grouper, g_to: Grouper, output: str | os.PathLike, *,
            matrix: str | os.PathLike | None = None, summary: str | os.PathLike | None = None,
            overwrite: bool = False, batch_size: int = DEFAULT_BATCH, report: str | os.PathLike | None = None,
            bom: bool = False, progress=None, **options) -> RegroupResult:
    """Group ``inputs`` under ``g_from`` and ``g_to``; write per-case results to ``output``, the
    migration matrix to ``matrix``, the summary JSON to ``summary`` and the HTML ``report``, as
    one set: all are written to temporary files and published together at the end, so a run
    that fails or is killed leaves none of them. ``options`` go to ``analytics.regroup.Regrouping``
    (n_threads, keep, cost_column, hospital_column, top, convert_codes, weight_options)."""
    paths = CaseInputs.of(inputs).expand()  # with the inputs' read options (encoding, sheet, mapping)
    check_outputs([output, matrix, summary, report], paths, overwrite=overwrite)
    check_tables(output, matrix)
    sources = CaseSource.open_all(paths, batch_size=batch_size)
    run = Regrouping(sources, g_from, g_to, **options)
    bar = case_progress(progress, paths)
    with OutputSet(overwrite, bom=bom) as outs, reporting(bar):
        write_batches(output, _ticking(run.batches()), into=outs)
        result = run.result()
        if matrix is not None:
            write_table(matrix, matrix_with_names(result.matrix, g_from, g_to), into=outs)
        if summary is not None:
            Path(outs.add(summary)).write_text(json.dumps(result.summary, ensure_ascii=False, indent=2) + "\n",
                                               encoding="utf-8")
        if report is not None:  # replaces the set's temporary file
            write_regroup_report(result.summary, result.matrix, outs.add(report), overwrite=True)
    return result


def matrix_with_names(matrix: pa.Table, g_from: Grouper, g_to: Grouper) -> pa.Table:
    """The migration matrix with from_name / to_name: each code's name at its level (mdc, adrg,
    drg) in the scheme it belongs to."""
    if matrix.num_rows == 0 or "level" not in matrix.column_names:
        return matrix
    names = {(side, level): code_names(g.compiled, level) for side, g in (("from", g_from), ("to", g_to))
             for level in ("mdc", "adrg", "drg")}
    levels = matrix["level"].to_pylist()
    for side in ("from", "to"):
        values = [None if c is None else names.get((side, lv), {}).get(str(c))
                  for lv, c in zip(levels, matrix[side].to_pylist())]
        matrix = matrix.add_column(matrix.column_names.index(side) + 1, f"{side}_name", pa.array(values, pa.string()))
    return matrix


def _ticking(batches):
    for b in batches:
        advance(b.num_rows)
        yield b

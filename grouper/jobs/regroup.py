"""``drg regroup``: case files grouped under two scheme versions, written as one set (per-case
results, migration matrix, summary JSON, HTML report) that is published whole or not at all."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from grouper.analytics.regroup import Regrouping, RegroupResult
from grouper.engine import Grouper
from grouper.io import DEFAULT_BATCH, CaseInputs, CaseSource, OutputSet, check_outputs, write_batches
from grouper.report import write_regroup_report

__all__ = ["regroup"]


def regroup(inputs: Iterable[str | os.PathLike], g_from: Grouper, g_to: Grouper, output: str | os.PathLike, *,
            matrix: str | os.PathLike | None = None, summary: str | os.PathLike | None = None,
            overwrite: bool = False, batch_size: int = DEFAULT_BATCH, report: str | os.PathLike | None = None,
            **options) -> RegroupResult:
    """Group ``inputs`` under ``g_from`` and ``g_to``; write per-case results to ``output``, the
    migration matrix to ``matrix``, the summary JSON to ``summary`` and the HTML ``report``, as
    one set: all are written to temporary files and published together at the end, so a run
    that fails or is killed leaves none of them. ``options`` go to ``analytics.regroup.Regrouping``
    (n_threads, keep, cost_column, hospital_column, top, convert_codes, weight_options)."""
    paths = CaseInputs.of(inputs).expand()  # with the inputs' read options (encoding, sheet, mapping)
    check_outputs([output, matrix, summary, report], paths, overwrite=overwrite)
    sources = CaseSource.open_all(paths, batch_size=batch_size)
    run = Regrouping(sources, g_from, g_to, **options)
    with OutputSet(overwrite) as outs:
        write_batches(output, run.batches(), into=outs)
        result = run.result()
        if matrix is not None:
            write_batches(matrix, result.matrix.to_batches(), empty_schema=result.matrix.schema, into=outs)
        if summary is not None:
            Path(outs.add(summary)).write_text(json.dumps(result.summary, ensure_ascii=False, indent=2) + "\n",
                                               encoding="utf-8")
        if report is not None:  # replaces the set's temporary file
            write_regroup_report(result.summary, result.matrix, outs.add(report), overwrite=True)
    return result

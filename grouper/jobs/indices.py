"""``drg indices``: hospital (and department) indices from case files and a weights table,
written as a table with an optional HTML report, published together."""

from __future__ import annotations

import os
from typing import Iterable

import pyarrow as pa

from grouper._util.progress import reporting
from grouper.analytics.indices import indices_from_files
from grouper.engine import Grouper
from grouper.io import OutputSet, check_outputs, read_table, write_table
from grouper.jobs.outputs import case_progress, check_tables

__all__ = ["indices_job"]


def indices_job(inputs: Iterable[str | os.PathLike], weights_file: str | os.PathLike, g: Grouper,
                output: str | os.PathLike, *, report: str | os.PathLike | None = None, overwrite: bool = False,
                workers: int | None = None, client=None, regroup: bool = False, bom: bool = False, progress=None,
                **columns) -> tuple[pa.Table, dict]:
    """Indices of ``inputs`` under ``g`` with the weights of ``weights_file`` (drg, rw) into
    ``output`` (+ ``report``), published together at the end or none; ``columns`` name the
    hospital, cost, los, discharge, department columns and the death codes
    (``analytics.indices.indices_from_files``). Grouped inputs are used as they are unless ``regroup``."""
    inputs = list(inputs)
    check_outputs([output, report], [*inputs, weights_file], overwrite=overwrite)
    check_tables(output)
    wt = read_table(weights_file)
    weights = dict(zip(wt["drg"].to_pylist(), wt["rw"].cast(pa.float64()).to_pylist()))
    if workers is not None or client is not None:
        from grouper.scale import indices_dataset

        table, excluded = indices_dataset(inputs, weights, g, client, workers=workers, progress=progress,
                                           **columns)
    else:
        with reporting(case_progress(progress, inputs)):
            table, excluded = indices_from_files(g, inputs, weights, regroup=regroup, **columns)
    with OutputSet(overwrite, bom=bom) as outs:
        write_table(output, table, into=outs)
        if report:
            from grouper.report import write_indices_report

            write_indices_report((table, excluded), outs.add(report), overwrite=True,
                                 title=f"{g.compiled.name} 医院评价指标 / hospital indices")
    return table, excluded

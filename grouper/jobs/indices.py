"""``drg indices``: hospital (and department) indices from case files and a weights table,
written as a table with an optional HTML report."""

from __future__ import annotations

import os
from typing import Iterable

import pyarrow as pa

from grouper.analytics.indices import indices_from_files
from grouper.engine import Grouper
from grouper.io import read_table, write_batches

__all__ = ["indices_job"]


def indices_job(inputs: Iterable[str | os.PathLike], weights_file: str | os.PathLike, g: Grouper,
                output: str | os.PathLike, *, report: str | os.PathLike | None = None, overwrite: bool = False,
                workers: int | None = None, client=None, **columns) -> tuple[pa.Table, dict]:
    """Indices of ``inputs`` under ``g`` with the weights of ``weights_file`` (drg, rw) into
    ``output`` (+ ``report``); ``columns`` name the hospital, cost, los, discharge, department
    columns and the death codes (``analytics.indices.indices_from_files``)."""
    wt = read_table(weights_file)
    weights = dict(zip(wt["drg"].to_pylist(), wt["rw"].to_pylist()))
    if workers is not None or client is not None:
        from grouper.scale import indices_dataset

        table, excluded = indices_dataset(list(inputs), weights, g, client, workers=workers, **columns)
    else:
        table, excluded = indices_from_files(g, inputs, weights, **columns)
    write_batches(output, table.to_batches(), overwrite=overwrite, empty_schema=table.schema)
    if report:
        from grouper.report import write_indices_report

        write_indices_report((table, excluded), report, overwrite=overwrite,
                             title=f"{g.compiled.name} 医院评价指标 / hospital indices")
    return table, excluded

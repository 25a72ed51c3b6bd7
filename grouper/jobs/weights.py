"""``drg weights``: relative weights from case files (in one process, or a dataset on workers),
written as a table with an optional JSON summary and HTML report, published together."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from grouper._util.progress import reporting
from grouper.analytics import WeightOptions, WeightResult, weights_from_files
from grouper.engine import Grouper
from grouper.io import OutputSet, check_outputs, write_table
from grouper.jobs.outputs import WEIGHTS_MONEY, case_progress, check_tables, code_names, with_money, with_names

__all__ = ["weights_job"]


def weights_job(inputs: Iterable[str | os.PathLike], g: Grouper, opts: WeightOptions, output: str | os.PathLike, *,
                summary: str | os.PathLike | None = None, report: str | os.PathLike | None = None,
                trim: str | None = None, overwrite: bool = False, cost: str = "total_cost", los: str = "los",
                year: str | None = None, workers: int | None = None, client=None, regroup: bool = False,
                bom: bool = False, progress=None) -> WeightResult:
    """Weights of ``inputs`` under ``g`` into ``output`` (+ ``summary`` JSON, + ``report`` HTML),
    all published together at the end or none; with ``workers`` or a Dask ``client``, one task
    per Parquet file, merged exactly. Grouped inputs are used as they are unless ``regroup``.
    The table names each DRG (drg_name) and writes mean_cost as an exact decimal."""
    inputs = list(inputs)
    check_outputs([output, summary, report], inputs, overwrite=overwrite)
    check_tables(output)
    if workers is not None or client is not None:
        from grouper.scale import weights_dataset

        r = weights_dataset(inputs, g, opts, client, workers=workers, cost=cost, los=los, year=year,
                            progress=progress)
    else:
        with reporting(case_progress(progress, inputs)):
            r = weights_from_files(g, inputs, opts, cost=cost, los=los, year=year, regroup=regroup)
    table = with_money(with_names(r.table, code_names(g.compiled)), WEIGHTS_MONEY)
    with OutputSet(overwrite, bom=bom) as outs:
        write_table(output, table, into=outs)
        if summary:
            Path(outs.add(summary)).write_text(
                json.dumps({"ruleset": g.compiled.name, "fingerprint": g.compiled.fingerprint, "trim": trim,
                            "mean_cost": round(r.mean_cost, 2), "riv": r.riv, "groups": r.table.num_rows,
                            "excluded": r.excluded}, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        if report:
            from grouper.report import write_weights_report

            write_weights_report(r, outs.add(report), title=f"{g.compiled.name} weights", trim=trim, overwrite=True)
    return r

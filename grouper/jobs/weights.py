"""``drg weights``: relative weights from case files (in one process, or a dataset on workers),
written as a table with an optional JSON summary and HTML report."""

from __future__ import annotations

import json
import os
from typing import Iterable

from grouper.analytics import WeightOptions, WeightResult, weights_from_files
from grouper.engine import Grouper
from grouper.io import write_batches, write_text

__all__ = ["weights_job"]


def weights_job(inputs: Iterable[str | os.PathLike], g: Grouper, opts: WeightOptions, output: str | os.PathLike, *,
                summary: str | os.PathLike | None = None, report: str | os.PathLike | None = None,
                trim: str | None = None, overwrite: bool = False, cost: str = "total_cost", los: str = "los",
                year: str | None = None, workers: int | None = None, client=None) -> WeightResult:
    """Weights of ``inputs`` under ``g`` into ``output`` (+ ``summary`` JSON, + ``report`` HTML);
    with ``workers`` or a Dask ``client``, one task per Parquet file, merged exactly."""
    if workers is not None or client is not None:
        from grouper.scale import weights_dataset

        r = weights_dataset(list(inputs), g, opts, client, workers=workers, cost=cost, los=los, year=year)
    else:
        r = weights_from_files(g, inputs, opts, cost=cost, los=los, year=year)
    write_batches(output, r.table.to_batches(), overwrite=overwrite, empty_schema=r.table.schema)
    if report:
        from grouper.report import write_weights_report

        write_weights_report(r, report, title=f"{g.compiled.name} weights", trim=trim, overwrite=overwrite)
    if summary:
        write_text(summary, json.dumps({"ruleset": g.compiled.name, "fingerprint": g.compiled.fingerprint,
                                        "trim": trim, "mean_cost": r.mean_cost, "riv": r.riv,
                                        "groups": r.table.num_rows, "excluded": r.excluded},
                                       ensure_ascii=False, indent=2) + "\n", overwrite=overwrite)
    return r

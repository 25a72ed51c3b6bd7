"""``drg recalibrate``: two weight sets side by side on the same cases, written as the per-DRG
comparison with optional hospital table, JSON summary and HTML report."""

from __future__ import annotations

import json
import os
from typing import Iterable

from grouper.analytics.recalibrate import recalibrate_files
from grouper.engine import Grouper
from grouper.io import write_batches, write_text

__all__ = ["recalibrate_job"]


def recalibrate_job(inputs: Iterable[str | os.PathLike], g: Grouper, a, b, output: str | os.PathLike, *,
                    labels: tuple[str, str], hospitals: str | os.PathLike | None = None,
                    summary: str | os.PathLike | None = None, report: str | os.PathLike | None = None,
                    overwrite: bool = False, **columns):
    """Compare side ``a`` with side ``b`` (each a weights table or ``WeightOptions`` computed from
    the cases) over ``inputs``; ``labels`` name the sides in the summary and the report."""
    r = recalibrate_files(g, inputs, a, b, **columns)
    write_batches(output, r.comparison.to_batches(), overwrite=overwrite, empty_schema=r.comparison.schema)
    if hospitals:
        write_batches(hospitals, r.hospitals.to_batches(), overwrite=overwrite, empty_schema=r.hospitals.schema)
    budget = r.budget()
    if summary:
        write_text(summary, json.dumps({"a": labels[0], "b": labels[1], "ruleset": g.compiled.name,
                                        "fingerprint": g.compiled.fingerprint, "budget": budget,
                                        "excluded": r.excluded}, ensure_ascii=False, indent=2) + "\n",
                   overwrite=overwrite)
    if report:
        from grouper.report import write_recalibration_report

        write_recalibration_report(r.comparison, r.hospitals, report, labels=labels, overwrite=overwrite)
    return r

"""``drg recalibrate``: two weight sets side by side on the same cases, written as the per-DRG
comparison with optional hospital table, JSON summary and HTML report, published together."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from grouper._util.progress import reporting
from grouper.analytics.recalibrate import recalibrate_files
from grouper.engine import Grouper
from grouper.io import OutputSet, check_outputs, write_table
from grouper.jobs.outputs import case_progress, check_tables, code_names, with_names

__all__ = ["recalibrate_job"]


def recalibrate_job(inputs: Iterable[str | os.PathLike], g: Grouper, a, b, output: str | os.PathLike, *,
                    labels: tuple[str, str], hospitals: str | os.PathLike | None = None,
                    summary: str | os.PathLike | None = None, report: str | os.PathLike | None = None,
                    overwrite: bool = False, regroup: bool = False, bom: bool = False, progress=None, **columns):
    """Compare side ``a`` with side ``b`` (each a weights table or ``WeightOptions`` computed from
    the cases) over ``inputs``; ``labels`` name the sides in the summary and the report. Every
    output is published at the end, together, or none."""
    inputs = list(inputs)
    check_outputs([output, hospitals, summary, report], inputs, overwrite=overwrite)
    check_tables(output, hospitals)
    with reporting(case_progress(progress, inputs)):
        r = recalibrate_files(g, inputs, a, b, regroup=regroup, **columns)
    budget = r.budget()
    with OutputSet(overwrite, bom=bom) as outs:
        write_table(output, with_names(r.comparison, code_names(g.compiled)), into=outs)
        if hospitals:
            write_table(hospitals, r.hospitals, into=outs)
        if summary:
            Path(outs.add(summary)).write_text(
                json.dumps({"a": labels[0], "b": labels[1], "ruleset": g.compiled.name,
                            "fingerprint": g.compiled.fingerprint, "budget": budget, "excluded": r.excluded},
                           ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        if report:
            from grouper.report import write_recalibration_report

            write_recalibration_report(r.comparison, r.hospitals, outs.add(report), labels=labels, overwrite=True)
    return r

"""``drg audit``: case files audited in one streaming run into the findings file, the hospital
league table and an HTML report, published together (nothing is left behind on failure)."""

from __future__ import annotations

import os
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa

from grouper.audit import (BUILTIN_NAMES, CASE_CODES, DEPT_PREFIX, SCREENS, FINDING_SCHEMA, HOSPITAL_SCHEMA, AuditResult, AuditRun, load_audit_pack,
                           load_edits)
from grouper._util.progress import advance, reporting
from grouper.io import DEFAULT_BATCH, CaseInputs, CaseSource, OutputSet, check_outputs, write_batches
from grouper.jobs.outputs import case_progress

__all__ = ["audit_job"]

SAMPLES = 12  # findings kept per code and hospital for the report
BUCKET_ROWS = 250_000  # stays per bucket file when the number of buckets is chosen from the input size


def _keep_top(t: pa.Table, k: int) -> pa.Table:
    """At most ``k`` findings per (code, hospital), the highest scores first."""
    if t.num_rows == 0:
        return t
    t = t.sort_by([("code", "ascending"), ("hospital", "ascending"), ("score", "descending"), ("row", "ascending")])
    code = t["code"].to_numpy(zero_copy_only=False)
    hosp = t["hospital"].fill_null("").to_numpy(zero_copy_only=False)
    new = np.r_[True, (code[1:] != code[:-1]) | (hosp[1:] != hosp[:-1])]
    start = np.maximum.accumulate(np.where(new, np.arange(len(new)), 0))
    return t.filter(pa.array(np.arange(len(new)) - start < k))


def audit_job(inputs: Iterable[str | os.PathLike], grouper, output: str | os.PathLike, *,
              hospitals: str | os.PathLike | None = None, report: str | os.PathLike | None = None,
              pack: str | os.PathLike | None = None, edits: str | os.PathLike | None = None,
              overwrite: bool = False, buckets: int | None = None, workdir: str | None = None,
              hospital_column: str = "hospital_id", batch_size: int = DEFAULT_BATCH,
              death_codes: tuple[str, ...] = ("5",), bom: bool = False, progress=None) -> AuditResult:
    """Audit ``inputs`` under ``grouper``: findings (one row per finding) into ``output``, the
    league table (one row per screen and hospital) into ``hospitals``, the HTML ``report``."""
    audit_pack, edit_set = load_audit_pack(pack), load_edits(edits)
    paths = CaseInputs.of(inputs).expand()  # files, folders, globs with their read options
    check_outputs([output, hospitals, report], [*paths, pack, edits], overwrite=overwrite)
    sources = CaseSource.open_all(paths, batch_size=batch_size)
    optional = ["case_id", *grouper.encoder.columns, "patient_id", hospital_column, audit_pack.peer_column,
                "admit_date", "discharge_date", "los", "total_cost", audit_pack.share_column, "discharge",
                audit_pack.dept_column]
    for s in sources:  # fail before any work
        s.check(grouper.encoder.required, list(dict.fromkeys(optional)), what="the audit")
    readers = [s.read(set(grouper.encoder.required) | {c for c in optional if c in s.schema.names})
               for s in sources]
    if buckets is None:  # about 250,000 stays per bucket when the inputs tell their size (not CSV)
        sizes = [s.num_rows for s in sources]
        buckets = 16 if None in sizes else min(4096, max(16, -(-sum(sizes) // BUCKET_ROWS)))
    run = AuditRun(grouper, pack=audit_pack, edits=edit_set, buckets=buckets, workdir=workdir,
                   hospital=hospital_column, death_codes=death_codes)
    samples: list[pa.Table] = []

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for s, reader in zip(sources, readers):
                for b in reader:
                    with s.named_errors():
                        yield b
                    advance(b.num_rows)
        finally:
            for reader in readers:
                reader.close()

    def found() -> Iterator[pa.RecordBatch]:
        for t in run.findings(batches()):
            samples.append(_keep_top(t, SAMPLES))
            if len(samples) > 8:  # bounded: at most about 9 x (codes x hospitals x SAMPLES) rows
                samples[:] = [_keep_top(pa.concat_tables(samples), SAMPLES)]
            yield from t.combine_chunks().to_batches()

    outs = OutputSet(overwrite, bom=bom)
    try:
        with reporting(case_progress(progress, paths)):
            write_batches(output, found(), empty_schema=FINDING_SCHEMA, into=outs)
    except BaseException:
        outs.discard()
        raise
    result = run.result
    with outs:
        if hospitals is not None:
            write_batches(hospitals, result.hospitals.to_batches(), empty_schema=HOSPITAL_SCHEMA, into=outs)
        if report is not None:
            from grouper.report.audit import write_audit_report

            kept = _keep_top(pa.concat_tables(samples), SAMPLES) if samples else FINDING_SCHEMA.empty_table()
            tmp = outs.add(report)
            write_audit_report(result.hospitals, kept, result.counts, tmp, overwrite=True,
                               title=f"{grouper.compiled.name} 智能审核报告 / audit report",
                               edit_names={**{e.code: e.message.split("{")[0].strip() for e in edit_set.edits},
                                           **BUILTIN_NAMES, **{c: SCREENS[s] for s, c in CASE_CODES.items()}},
                               screen_codes={"upcoding": "AE95", "drift": "AE95", "lifting_dx": "AE95", **CASE_CODES,
                                             **{f"{DEPT_PREFIX}{k}": v for k, v in CASE_CODES.items()},
                                             f"{DEPT_PREFIX}upcoding": "AE95", f"{DEPT_PREFIX}drift": "AE95"})
    return result

"""An audit from start to end, streaming: every batch grouped and edited (findings out at once)
and reduced into patient-hashed bucket files; then the screens bucket by bucket; then the
hospital league table. Memory holds one batch, or one bucket, at a time."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import pyarrow as pa

from grouper.audit.collect import Collector
from grouper.audit.edits import FINDING_SCHEMA, EditSet, load_edits, run_edits
from grouper.audit.pack import AuditPack, load_audit_pack
from grouper.audit.screens import Screens

__all__ = ["AuditResult", "audit_batches", "audit_table"]


@dataclass
class AuditResult:
    rows: int
    hospitals: pa.Table
    counts: dict = field(default_factory=dict)  # findings per code
    seconds: float = 0.0


def audit_batches(batches: Iterable[pa.RecordBatch], grouper, *, pack: AuditPack | None = None,
                  edits: EditSet | None = None, emit: Callable[[pa.Table], None] = lambda t: None,
                  buckets: int = 16, workdir: str | None = None, hospital: str = "hospital_id",
                  death_codes: tuple[str, ...] = ("5",)) -> AuditResult:
    """Audit ``batches`` (cases with dx, px, sex, age, and for the screens hospital, patient,
    dates, los, cost, discharge): ``emit`` receives each table of findings as it is made."""
    t0 = time.perf_counter()
    pack = pack or load_audit_pack()
    edits = edits or load_edits()
    rs = grouper.ruleset
    counts: dict[str, int] = {}

    def out(t: pa.Table) -> None:
        if t.num_rows:
            vc = t["code"].value_counts()
            for code, k in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
                counts[code] = counts.get(code, 0) + k
            emit(t)

    with tempfile.TemporaryDirectory(prefix="drg-audit-", dir=workdir) as tmp:
        col = Collector(tmp, pack, buckets, hospital=hospital, death_codes=death_codes)
        offset = 0
        for batch in batches:
            grouped = grouper.group_batch(batch, columns=("status", "mdc", "adrg", "drg", "cc_level"))
            out(run_edits(batch, grouped, edits, rs, grouper=grouper, row_offset=offset))
            col.add(batch, grouped, offset)
            offset += batch.num_rows
        files = col.close()
        screens = Screens(col)
        for t in screens.cases(files):
            out(t)
        hospitals = screens.hospitals()
    return AuditResult(offset, hospitals, counts, time.perf_counter() - t0)


def audit_table(cases, grouper, **options) -> tuple[pa.Table, AuditResult]:
    """In memory, for a table that fits: (every finding, the result)."""
    found: list[pa.Table] = []
    if isinstance(cases, pa.Table):
        cases = cases.to_batches()
    result = audit_batches(cases, grouper, emit=found.append, **options)
    return (pa.concat_tables(found) if found else FINDING_SCHEMA.empty_table()), result

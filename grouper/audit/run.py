"""An audit from start to end, streaming: every batch grouped and edited (findings out at once)
and reduced into patient-hashed bucket files; then the screens bucket by bucket; then the
hospital league table. Memory holds one batch, or one bucket, at a time."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import pyarrow as pa

from grouper._util.lazy import pc
from grouper.audit.collect import Collector
from grouper.audit.edits import FINDING_SCHEMA, ONLY_CC, EditSet, load_edits, run_edits
from grouper.audit.pack import AuditPack, load_audit_pack
from grouper.audit.screens import Screens

__all__ = ["AuditResult", "AuditRun", "audit_batches", "audit_table"]


@dataclass
class AuditResult:
    rows: int
    hospitals: pa.Table  # HOSPITAL_SCHEMA: one row per screen and hospital
    counts: dict = field(default_factory=dict)  # findings per code
    seconds: float = 0.0
    split_pairs: int = 0


class AuditRun:
    """``findings(batches)`` yields tables of findings as they are made; ``result`` is set when
    the generator is exhausted. Bucket files live in a temporary folder under ``workdir``."""

    def __init__(self, grouper, *, pack: AuditPack | None = None, edits: EditSet | None = None, buckets: int = 16,
                 workdir: str | None = None, hospital: str = "hospital_id", death_codes: tuple[str, ...] = ("5",)):
        if buckets < 1:
            raise ValueError("buckets must be >= 1")
        self.grouper, self.pack, self.edits = grouper, pack or load_audit_pack(), edits or load_edits()
        self.buckets, self.workdir, self.hospital, self.death_codes = buckets, workdir, hospital, death_codes
        self.result: AuditResult | None = None

    def findings(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.Table]:
        t0 = time.perf_counter()
        g, counts = self.grouper, {}

        def counted(t: pa.Table) -> pa.Table:
            vc = t["code"].value_counts()
            for code, k in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
                counts[code] = counts.get(code, 0) + k
            return t

        with tempfile.TemporaryDirectory(prefix="drg-audit-", dir=self.workdir) as tmp:
            col = Collector(tmp, self.pack, self.buckets, hospital=self.hospital, death_codes=self.death_codes)
            offset = 0
            for batch in batches:
                grouped = g.group_batch(batch, columns=("status", "mdc", "adrg", "drg", "cc_level"))
                found = run_edits(batch, grouped, self.edits, g.ruleset, grouper=g, row_offset=offset,
                                  hospital_column=self.hospital)
                if found.num_rows:
                    yield counted(found)
                errors = found.filter(pc.equal(found["severity"], "error"))["row"].to_numpy() - offset
                lifted = found.filter(pc.equal(found["code"], ONLY_CC))
                col.add(batch, grouped, offset, errors, (lifted["row"].to_numpy() - offset, lifted["item"]))
                offset += batch.num_rows
            screens = Screens(col, g.ruleset.dx_names)
            for t in screens.cases(col.close()):
                if t.num_rows:
                    yield counted(t)
            hospitals = screens.hospitals()
        self.result = AuditResult(offset, hospitals, dict(sorted(counts.items())), time.perf_counter() - t0,
                                  screens.split_pairs)


def audit_batches(batches: Iterable[pa.RecordBatch], grouper, *, emit: Callable[[pa.Table], None] = lambda t: None,
                  **options) -> AuditResult:
    """Audit ``batches`` (cases with dx, px, sex, age; for the screens hospital, patient, dates,
    los, cost, discharge): ``emit`` receives each table of findings as it is made."""
    run = AuditRun(grouper, **options)
    for t in run.findings(batches):
        emit(t)
    return run.result


def audit_table(cases, grouper, **options) -> tuple[pa.Table, AuditResult]:
    """In memory, for a table that fits: (every finding, the result)."""
    found: list[pa.Table] = []
    if isinstance(cases, pa.Table):
        cases = cases.to_batches()
    result = audit_batches(cases, grouper, emit=found.append, **options)
    return (pa.concat_tables(found) if found else FINDING_SCHEMA.empty_table()), result

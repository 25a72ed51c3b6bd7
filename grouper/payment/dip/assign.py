"""DIP (按病种分值付费) assignment: cases to the groups of a catalogue, batch by batch, and the
per-case output columns that assignment and settlement share.

The core key (亚目 x procedure) first, else category x treatment type, else chapter x treatment
type (``keys``); string work is per distinct code, rows take the results by integer index.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc
from grouper.payment.dip.catalogue import GROUP_TYPES, Catalogue
from grouper.payment.dip.keys import (
    BAD_PDX,
    BAD_PPX,
    CONSERVATIVE,
    DEFAULT_COLUMNS,
    NO_GROUP,
    NO_PDX,
    SETTLED,
    STATUSES,
    DipColumns,
    Memo,
    ProcedureTypes,
    batches,
    chapter_of,
    column,
    diagnosis_parts,
    principal_codes,
    procedure_parts,
)

__all__ = ["Assigner", "assign", "assigned_batch", "ASSIGN_STATUSES", "ASSIGNED_SCHEMA", "TEXT", "case_ids",
           "labels", "dict_array", "floats_or_null"]


class Assigner:
    """Cases -> catalogue groups, batch by batch: the core key (亚目 x procedure), else category x
    treatment type, else chapter x treatment type. String work is per distinct code; ``cat`` is
    a ``Catalogue`` (its lookup arrays)."""

    def __init__(self, cat: Catalogue, types: ProcedureTypes, cols: DipColumns):
        self.cat, self.types, self.cols = cat, types, cols
        self._dx = Memo(self._dx_info)
        self._px = Memo(self._px_info)

    def _dx_info(self, values):
        sub4, category, ok = diagnosis_parts(values)
        pdx = pc.index_in(sub4, value_set=self.cat.core_pdx4).fill_null(-1).to_numpy(zero_copy_only=False)
        ci = pc.index_in(category, value_set=self.cat.comp_categories).fill_null(-1).to_numpy(zero_copy_only=False)
        chap = np.where(ok, chapter_of(pc.if_else(ok, category, "A00")), -1)
        return pdx.astype(np.int64), ci.astype(np.int64), chap.astype(np.int64), ok

    def _px_info(self, values):
        px = pc.index_in(values, value_set=self.cat.core_px).fill_null(-1).to_numpy(zero_copy_only=False)
        return px.astype(np.int64), self.types.classify(values).astype(np.int64), procedure_parts(values)

    def __call__(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        """(status, group index or -1) per row."""
        c, cat = self.cols, self.cat
        di, dv = principal_codes(column(batch, c.dx, "diagnosis"), c.dx)
        pi, pv = principal_codes(column(batch, c.px, "procedure"), c.px)
        pdx, ci, chap, d_ok = (np.append(a, f)[di] for a, f in zip(self._dx(dv), (-1, -1, -1, True)))
        px, ptype, p_ok = (np.append(a, f)[pi] for a, f in zip(self._px(pv), (-1, CONSERVATIVE, True)))
        status = np.select([di < 0, ~d_ok, ~p_ok], [NO_PDX, BAD_PDX, BAD_PPX], SETTLED).astype(np.int8)
        gid = np.full(len(di), -1, np.int64)
        if len(cat.core_codes):  # core: the 亚目 and the procedure (or none) must both be in the catalogue
            code = pdx * (len(cat.core_px) + 1) + px + 1
            pos = np.minimum(np.searchsorted(cat.core_codes, code), len(cat.core_codes) - 1)
            hit = (pdx >= 0) & ((pi < 0) | (px >= 0)) & (cat.core_codes[pos] == code)
            gid[hit] = cat.core_gid[pos[hit]]
        comp = np.append(cat.comp_table, -1)[np.where(ci >= 0, ci * 4 + ptype, -1)]
        gid = np.where(gid < 0, comp, gid)
        chapg = np.append(cat.chap_table, -1)[np.where(chap >= 0, chap * 4 + ptype, -1)]
        gid = np.where((gid < 0) & (status == SETTLED), chapg, gid)
        gid[status != SETTLED] = -1
        status[(status == SETTLED) & (gid < 0)] = NO_GROUP
        return status, gid


#: Statuses of ``assign`` (no costs are read there): the first five of STATUSES, "assigned" first.
ASSIGN_STATUSES = ("assigned", *STATUSES[1:5])
TEXT = pa.dictionary(pa.int32(), pa.string())
ASSIGNED_SCHEMA = pa.schema([("case_id", pa.string()), *((k, TEXT) for k in ("status", "group", "group_type")),
                             ("score", pa.float64())])


def assigned_batch(a: Assigner, b: pa.RecordBatch, cat: Catalogue, columns: DipColumns, row: int,
                   counts: np.ndarray) -> pa.RecordBatch:
    """One batch assigned (``row``: the first row's number; ``counts`` per status grow)."""
    status, gid = a(b)
    counts += np.bincount(status, minlength=len(ASSIGN_STATUSES))
    return pa.RecordBatch.from_pydict({
        "case_id": case_ids(b, columns, row), "status": labels(ASSIGN_STATUSES, status),
        "group": dict_array(cat.groups, gid), "group_type": dict_array(pa.array(GROUP_TYPES), cat.group_type[gid]),
        "score": floats_or_null(np.append(cat.score, np.nan)[gid])})


def assign(data, catalogue: Catalogue, *, procedure_types: ProcedureTypes,
           columns: DipColumns = DEFAULT_COLUMNS) -> pa.Table:
    """Per case, in input order: case_id (or row number), status, group, group type and score."""
    a, out, row = Assigner(catalogue, procedure_types, columns), [], 0
    counts = np.zeros(len(ASSIGN_STATUSES), np.int64)
    for b in batches(data):
        out.append(assigned_batch(a, b, catalogue, columns, row, counts))
        row += b.num_rows
    return pa.Table.from_batches(out) if out else ASSIGNED_SCHEMA.empty_table()


def case_ids(b: pa.RecordBatch, cols: DipColumns, row: int):
    return b.column(cols.case_id) if cols.case_id in b.schema.names else pa.array(np.arange(row, row + b.num_rows))


def labels(names, codes) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, np.int32)), pa.array(names, pa.string()))


def dict_array(values: pa.Array, idx: np.ndarray) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(idx.astype(np.int32), mask=idx < 0), values)


def floats_or_null(v: np.ndarray) -> pa.Array:
    return pa.array(v, pa.float64(), mask=np.isnan(v))

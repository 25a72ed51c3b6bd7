"""Grouping while reading, for aggregates: case files in, only the grouped columns an
aggregate needs out (weights, indices, recalibration, settlement of raw case files)."""

from __future__ import annotations

from typing import Iterator

import pyarrow as pa
import pyarrow.fs as pafs

from grouper._util.errors import CorruptInputError, InputError
from grouper.io import DEFAULT_BATCH, expand_inputs, open_source, plan_columns, prefetch, read_columns

__all__ = ["grouped_batches"]


def grouped_batches(grouper, inputs, keep: list[str], *, optional: list[str] = (), columns=("status", "drg"),
                    batch_size: int = DEFAULT_BATCH, what: str = "this computation",
                    filesystem=None) -> Iterator[pa.RecordBatch]:
    """Group case files batch by batch for an aggregate (weights, indices, settlement), reading
    only the grouper's columns and ``keep`` (required: a missing one is an error naming the file)
    plus whichever of ``optional`` the file has; only ``columns`` of the result are built."""
    remote = filesystem is not None and not isinstance(filesystem, pafs.LocalFileSystem)
    for path in list(inputs) if remote else expand_inputs(inputs):
        s = open_source(path, batch_size=batch_size, filesystem=filesystem)
        plan = plan_columns(s.schema, None, "auto", s.path)
        names = plan.schema(s.schema).names
        missing = [c for c in dict.fromkeys([*grouper.encoder.required, *keep]) if c not in names]
        if missing:
            raise InputError(f"{path}: missing column(s) for {what}: {', '.join(missing)}")
        present = list(dict.fromkeys([*keep, *(c for c in optional if c in names)]))
        s.columns = read_columns(s.schema, plan, {*grouper.encoder.columns, *present})  # no case_id: not needed
        for b in prefetch(s.batches):  # the next batch is read while this one is grouped
            try:
                out = grouper.group_batch(plan.apply(b), columns=columns, keep=present)
            except (InputError, CorruptInputError) as exc:
                raise type(exc)(f"{path}: {exc}") from None
            yield out


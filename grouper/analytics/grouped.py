"""Grouping while reading, for aggregates: case files in, only the grouped columns an
aggregate needs out (weights, indices, recalibration, settlement of raw case files)."""

from __future__ import annotations

from typing import Iterator

import pyarrow as pa

from grouper.io import DEFAULT_BATCH, CaseSource

__all__ = ["grouped_batches"]


def grouped_batches(grouper, inputs, keep: list[str], *, optional: list[str] = (), columns=("status", "drg"),
                    batch_size: int = DEFAULT_BATCH, what: str = "this computation",
                    filesystem=None) -> Iterator[pa.RecordBatch]:
    """Group case files batch by batch for an aggregate (weights, indices, settlement), reading
    only the grouper's columns and ``keep`` (required: a missing one is an error naming the file)
    plus whichever of ``optional`` the file has; only ``columns`` of the result are built."""
    for s in CaseSource.each(inputs, batch_size=batch_size, filesystem=filesystem):
        present = list(dict.fromkeys([*keep, *s.check([*grouper.encoder.required, *keep], optional, what=what)]))
        for b in s.read({*grouper.encoder.columns, *present}):  # no case_id: not needed
            with s.named_errors():  # the next batch is read while this one is grouped
                out = grouper.group_batch(b, columns=columns, keep=present)
            yield out

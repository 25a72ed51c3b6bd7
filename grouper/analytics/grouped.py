"""Grouped cases for aggregates: case files in, only the grouped columns an aggregate needs out
(weights, indices, recalibration). A file that is already grouped (it has the grouper's output
columns, e.g. from ``drg group --keep ...``) is read as it is; raw case files, and every file
when ``regroup`` is asked for, are grouped while reading."""

from __future__ import annotations

from typing import Iterator

import pyarrow as pa

from grouper._util.progress import advance
from grouper.io import DEFAULT_BATCH, CaseSource

__all__ = ["grouped_batches", "is_grouped"]


def is_grouped(names, columns=("status", "drg")) -> bool:
    """Whether a file with these column ``names`` carries the grouper's output ``columns``."""
    return all(c in names for c in columns)


def grouped_batches(grouper, inputs, keep: list[str], *, optional: list[str] = (), columns=("status", "drg"),
                    batch_size: int = DEFAULT_BATCH, what: str = "this computation",
                    filesystem=None, regroup: bool = False) -> Iterator[pa.RecordBatch]:
    """Grouped batches of case files for an aggregate (weights, indices, recalibration): only
    ``columns`` of the grouper's result plus ``keep`` (required: a missing one is an error
    naming the file) and whichever of ``optional`` the file has. A file that already has
    ``columns`` is taken as grouped (its own status/DRG, read as they are) unless ``regroup``:
    regrouping a grouped file silently would replace the codes a hospital submitted."""
    for s in CaseSource.each(inputs, batch_size=batch_size, filesystem=filesystem):
        if not regroup and is_grouped(s.source.schema.names, columns):
            s = CaseSource(s.source)  # as it is: no column plan for a grouper's output
            present = list(dict.fromkeys([*keep, *s.check([*columns, *keep], optional, what=what)]))
            wanted = list(dict.fromkeys([*columns, *present]))
            for b in s.read(wanted):
                advance(b.num_rows)
                yield b.select(wanted)
            continue
        present = list(dict.fromkeys([*keep, *s.check([*grouper.encoder.required, *keep], optional, what=what)]))
        for b in s.read({*grouper.encoder.columns, *present}):  # no case_id: not needed
            with s.named_errors():  # the next batch is read while this one is grouped
                out = grouper.group_batch(b, columns=columns, keep=present)
            advance(out.num_rows)  # the command's progress line, when it shows one
            yield out

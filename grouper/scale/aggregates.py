"""Weights and indices of a partitioned dataset, computed where the data is: each task groups one
file and returns its partial result (a CostSample of the kept cases, or IndexCells), and the
driver merges them. Both merge exactly, so the result is bit-identical to the single-process
computation over the same files (tests/test_distributed.py), whatever the number of workers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from grouper.io import DEFAULT_BATCH
from grouper.rulesets import DEFAULT_RULESET
from grouper.scale.fragments import fragment_listing
from grouper.scale.tasks import map_fragments

__all__ = ["cells_dataset", "indices_dataset", "sample_dataset", "weights_dataset"]


@dataclass
class _AggJob:
    grouper: Any
    filesystem: pafs.FileSystem | None
    options: dict
    batch_size: int


def _sample_fragment(path: str, job: _AggJob):
    from grouper.analytics import sample_files

    return sample_files(job.grouper, [path], batch_size=job.batch_size, filesystem=job.filesystem, **job.options)


def _cells_fragment(path: str, job: _AggJob):
    from grouper.analytics.indices import cells_from_files

    return cells_from_files(job.grouper, [path], batch_size=job.batch_size, filesystem=job.filesystem, **job.options)


def _aggregate(fn, src, ruleset, client, workers, filesystem, options, batch_size, progress=None):
    """Run ``fn`` per file and merge the partial results (CostSample or IndexCells) in file order;
    ``progress`` (a text stream or None) gets a 'files done / total' line as tasks finish."""
    from grouper.scale.dataset import _Bar

    from grouper.engine import Grouper

    g = ruleset if isinstance(ruleset, Grouper) else Grouper(ruleset)
    fs, files, _ = fragment_listing(src, filesystem)
    local = isinstance(fs, pafs.LocalFileSystem)
    job = _AggJob(g, None if local else fs, options, batch_size)
    bar = _Bar(progress, len(files), 0, 0)
    try:
        parts = map_fragments(fn, [p for p, _ in files], client, workers, shared=job,
                              on_result=lambda i, value: bar.update(None))
    finally:
        bar.close()
    total = parts[0]
    for p in parts[1:]:
        total.merge(p)
    return total


def sample_dataset(src, ruleset: Any = DEFAULT_RULESET, client=None, *, workers: int | None = None,
                   filesystem: pafs.FileSystem | None = None, cost: str = "total_cost", los: str | None = "los",
                   year: str | None = None, batch_size: int = DEFAULT_BATCH, progress=None):
    """The ``weights.CostSample`` of a Parquet dataset, one task per file (see ``weights_dataset``)."""
    return _aggregate(_sample_fragment, src, ruleset, client, workers, filesystem,
                      {"cost": cost, "los": los, "year": year}, batch_size, progress)


def weights_dataset(src, ruleset: Any = DEFAULT_RULESET, options=None, client=None, *, workers: int | None = None,
                    filesystem: pafs.FileSystem | None = None, cost: str = "total_cost", los: str | None = "los",
                    year: str | None = None, batch_size: int = DEFAULT_BATCH, progress=None):
    """Relative weights of a partitioned Parquet dataset (``src`` as in ``list_fragments``): each
    task groups one file and keeps its kept cases' DRG, cost and stay (about 20 bytes a case,
    returned to the driver, which spills them to disk beyond ``weights.SPILL_ROWS``); the samples
    merge exactly. Equal to ``weights.weights_from_files`` over the same files, to the last bit."""
    from grouper.analytics import WeightOptions

    sample = sample_dataset(src, ruleset, client, workers=workers, filesystem=filesystem, cost=cost, los=los,
                            year=year, batch_size=batch_size, progress=progress)
    return sample.weights(options if options is not None else WeightOptions())


def cells_dataset(src, ruleset: Any = DEFAULT_RULESET, client=None, *, workers: int | None = None,
                  filesystem: pafs.FileSystem | None = None, hospital: str = "hospital_id",
                  cost: str = "total_cost", los: str = "los", discharge: str = "discharge",
                  department: str | None = None, death_codes: Sequence[str] = ("5",),
                  batch_size: int = DEFAULT_BATCH, progress=None):
    """The ``indices.IndexCells`` of a Parquet dataset, one task per file: each task returns only
    its (hospital, DRG) cells, so nothing per case crosses the network."""
    opts = {"hospital": hospital, "cost": cost, "los": los, "discharge": discharge, "department": department,
            "death_codes": tuple(death_codes)}
    return _aggregate(_cells_fragment, src, ruleset, client, workers, filesystem, opts, batch_size, progress)


def indices_dataset(src, weights: Mapping[str, float], ruleset: Any = DEFAULT_RULESET, client=None, *,
                    workers: int | None = None, filesystem: pafs.FileSystem | None = None, tiers=None, **kw):
    """Hospital indices of a partitioned Parquet dataset: ``(table, excluded)`` as
    ``indices.hospital_indices``, equal to the single-process result to the last bit."""
    cells = cells_dataset(src, ruleset, client, workers=workers, filesystem=filesystem, **kw)
    return cells.indices(weights, tiers)

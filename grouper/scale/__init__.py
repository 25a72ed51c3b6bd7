"""Scale-out: datasets cut into fragments, run as tasks on a process pool or Dask, with retries.

``list_fragments`` and ``map_fragments`` are the reusable halves: any picklable per-file function
(an aggregation, a check) can run over a dataset the way ``group_dataset`` and the aggregates do.
Dask is optional and imported only when a client is used, never by importing this package.

Other subpackages import from here, never from the modules inside."""

from grouper.scale.aggregates import cells_dataset, indices_dataset, sample_dataset, weights_dataset
from grouper.scale.dataset import MANIFEST, DatasetResult, group_dataset
from grouper.scale.fragments import PARQUET_SUFFIXES, list_fragments, resolve_filesystem
from grouper.scale.tasks import SchedulerError, WorkersDied, dask_client, map_fragments

__all__ = ["list_fragments", "map_fragments", "group_dataset", "DatasetResult", "resolve_filesystem",
           "MANIFEST", "PARQUET_SUFFIXES", "weights_dataset", "sample_dataset", "indices_dataset", "cells_dataset",
           "WorkersDied", "SchedulerError", "dask_client"]

"""Record-batch helpers shared by reading, grouping and writing: an empty batch of a schema
(to learn an output schema before any data), one schema for the batches of several inputs, and
the batch size every reader uses unless told otherwise (the command line's default too)."""

from __future__ import annotations

import pyarrow as pa

__all__ = ["DEFAULT_BATCH", "conform", "empty_batch", "unified_schema"]

#: Rows per batch read from a case file (``--batch-size``): memory is bounded by it, not the file.
DEFAULT_BATCH = 65_536


def empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)


def unified_schema(schemas: list[pa.Schema], metadata) -> pa.Schema:
    """Output schema every input's batches are cast to: a column whose type differs between
    inputs (case_id as text in a CSV, integers in a Parquet file) becomes text."""
    first = schemas[0]
    fields = [f if all(s.field(i).type == f.type for s in schemas) else pa.field(f.name, pa.string())
              for i, f in enumerate(first)]
    return pa.schema(fields, metadata=metadata)


def conform(b: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    if b.schema.types == schema.types:
        return b
    cols = [c if c.type == f.type else c.cast(f.type) for c, f in zip(b.columns, schema)]
    return pa.RecordBatch.from_arrays(cols, schema=schema)

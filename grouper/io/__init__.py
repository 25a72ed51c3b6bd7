"""Case files in and result files out: formats, column mapping and the wide 病案首页 layout,
one way to read case files (``CaseSource``), atomic all-or-nothing writes. Knows nothing of
grouping (``lint-imports`` checks it).

Other subpackages import from here, never from the modules inside."""

from grouper.io.cases import CaseInputs, CaseSource, prefetch
from grouper.io.formats import (DEFAULT_BATCH, FORMATS, INPUT_FORMATS, Source, expand_inputs, format_of, open_source,
                                pipeline_depth, read_table)
from grouper.io.text import normalise_encoding
from grouper.io.layout import (CANONICAL_COLUMNS, LAYOUTS, WIDE_LAYOUTS, ColumnPlan, MappingError, code_list,
                               load_mapping, plan_columns, read_columns)
from grouper.io.write import (XLSX_MAX_ROWS, OutputSet, atomic, check_outputs, parquet_writer_options, sweep_stale,
                               table_kind, write_batches, write_table, write_text)

__all__ = ["CANONICAL_COLUMNS", "DEFAULT_BATCH", "FORMATS", "INPUT_FORMATS", "LAYOUTS", "WIDE_LAYOUTS", "CaseInputs",
           "CaseSource", "ColumnPlan", "normalise_encoding",
           "MappingError", "OutputSet", "Source", "atomic", "check_outputs", "code_list", "expand_inputs", "format_of",
           "load_mapping", "open_source", "parquet_writer_options", "pipeline_depth", "plan_columns", "prefetch",
           "read_columns",
           "read_table", "sweep_stale", "table_kind", "write_batches", "write_table", "write_text", "XLSX_MAX_ROWS"]

"""Case files in and result files out: formats, column mapping and the wide 病案首页 layout,
atomic all-or-nothing writes. Knows nothing of grouping (``lint-imports`` checks it).

Other subpackages import from here, never from the modules inside."""

from grouper.io.cases import (CANONICAL_COLUMNS, DEFAULT_BATCH, FORMATS, LAYOUTS, ColumnPlan, MappingError, OutputSet,
                              Source, atomic, check_outputs, code_list, expand_inputs, format_of, load_mapping,
                              open_source, plan_columns, prefetch, read_columns, sweep_stale, write_batches, write_text)

__all__ = ["CANONICAL_COLUMNS", "DEFAULT_BATCH", "FORMATS", "LAYOUTS", "ColumnPlan", "MappingError", "OutputSet", "Source",
           "atomic", "check_outputs", "code_list", "expand_inputs", "format_of", "load_mapping", "open_source",
           "plan_columns", "prefetch", "read_columns", "sweep_stale", "write_batches", "write_text"]

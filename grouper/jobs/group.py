"""``drg group``: case files, folders and globs in order, grouped into one output file with an
optional JSON report and a progress line."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, TextIO

import pyarrow as pa

from grouper._util.batches import conform, empty_batch, unified_schema
from grouper._util.columns import NAME_COLUMNS
from grouper._util.progress import Progress, estimate_rows, total_rows
from grouper.engine import OUTPUT_COLUMNS, BatchCounts, RunSummary, output_columns
from grouper.io import (DEFAULT_BATCH, LAYOUTS, CaseInputs, CaseSource, OutputSet, Source, check_outputs, load_mapping,
                        table_kind, write_batches)

__all__ = ["group_file", "group_files", "names_hint", "result_columns"]


def result_columns(output: str | os.PathLike | None, names: bool | None = None) -> tuple[str, ...]:
    """The result columns of ``drg group`` into ``output``: all of them (OUTPUT_COLUMNS) for
    people (CSV, Excel, a table in memory or printed: output None); without the name columns
    (NAME_COLUMNS) in a columnar file (Parquet, Arrow), where one join with ``drg groups`` gives
    them. ``names`` True or False decides instead of the format (``--names/--no-names``)."""
    if names is None:
        names = output is None or table_kind(output) in ("csv", "xlsx")
    return output_columns(names)


def names_hint(grouper, columns) -> dict[bytes, bytes]:
    """Schema metadata of an output whose ``columns`` leave the names out: where to find them."""
    return {} if any(c in columns for c in NAME_COLUMNS) else grouper.names_metadata


def group_files(grouper, inputs: Iterable[str | os.PathLike], output: str | os.PathLike | None = None, *,
                overwrite: bool = False, n_threads: int | None = None, keep=(), batch_size: int = DEFAULT_BATCH,
                mapping: Mapping[str, str] | Iterable[str] = (), map_file: str | os.PathLike | None = None,
                layout: str = "auto", report: str | os.PathLike | None = None, max_error_rate: float | None = None,
                progress: TextIO | None = None, log: Callable[[str], None] | None = None,
                encoding: str | None = None, sheet: str | None = None, bom: bool = False,
                names: bool | None = None) -> tuple[RunSummary, pa.Table | None]:
    """``drg group``: files, folders and glob patterns in order into one ``output`` (in memory
    when None), with column ``mapping``, the wide ``layout``, a JSON ``report``, a ``progress``
    line, ``summary.breach`` set when the error rate is above ``max_error_rate`` and ``bom``
    starting a CSV output with a UTF-8 byte order mark. ``names``: the name columns, by default
    only where people read the output (``result_columns``). ``inputs`` given as ``CaseInputs``
    bring their read options; the keyword arguments win over them."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    inputs = CaseInputs.of(inputs)
    columns = load_mapping(mapping, map_file)
    paths = inputs.expand()
    check_outputs([output, report], [*paths, map_file or inputs.map_file], overwrite=overwrite)
    sources = CaseSource.open_all(paths, columns or None, layout, batch_size=batch_size, encoding=encoding,
                                  sheet=sheet)
    layout = paths.options(layout=layout)["layout"]
    wide = sorted({s.plan.layout for s in sources if s.plan.layout})
    if wide and layout == "auto" and log is not None:
        n = sum(1 for s in sources if s.plan.layout)
        log(f"no dx column: reading {n} of {len(sources)} input(s) as the wide 病案首页 layout "
            f"({', '.join(wide)} column names); --layout canonical turns this off")
    return _run(grouper, sources, output, overwrite=overwrite, n_threads=n_threads, keep=keep,
                report=report, max_error_rate=max_error_rate, progress=progress, bom=bom, names=names)


def group_file(grouper, source: Source, output: str | os.PathLike | None, *, overwrite: bool = False,
               n_threads: int | None = None, keep=(), names: bool | None = None) -> tuple[RunSummary, pa.Table | None]:
    """Stream one opened ``source`` through ``grouper`` into ``output`` (or into memory when None)."""
    return _run(grouper, [CaseSource(source)], output, overwrite=overwrite, n_threads=n_threads, keep=keep,
                names=names)


def _run(grouper, sources: list[CaseSource], output, *, overwrite=False, n_threads=None, keep=(), report=None,
         max_error_rate=None, progress=None, bom=False, names=None) -> tuple[RunSummary, pa.Table | None]:
    schemas = [s.schema for s in sources]
    columns = result_columns(output, names)
    if keep is True:  # every other column of the first input, which the others must have too
        keep = [c for c in schemas[0].names if c not in OUTPUT_COLUMNS]
    outs = []
    for s, schema in zip(sources, schemas):  # fail before any work
        s.check(grouper.encoder.required, ["case_id", *grouper.encoder.columns])
        s.check(keep)
        with s.named_errors():
            outs.append(grouper.group_batch(empty_batch(schema), keep=keep, columns=columns).schema)
    hint = names_hint(grouper, columns)
    target = unified_schema(outs, {**grouper.metadata, **hint})
    check_outputs([output, report], [s.path for s in sources], overwrite=overwrite)
    wanted = {"case_id", *grouper.encoder.columns, *keep}  # columns the scheme ignores stay undecoded
    readers = [s.read(wanted) for s in sources]  # every file's columns checked, none read yet
    totals = [s.num_rows for s in sources]
    bar = None
    if progress is not None:  # a CSV's rows are estimated from its size
        bar = Progress(progress, total_rows(n if n is not None else estimate_rows(s.path) for s, n in zip(sources, totals)))
    counts = BatchCounts()
    start = time.perf_counter()
    done = 0

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal done
        try:
            for s, reader in zip(sources, readers):
                for b in reader:  # the next batch is read while this one is grouped
                    with s.named_errors():
                        out = grouper.group_batch(b, n_threads=n_threads, keep=keep, row_offset=done, columns=columns)
                    out = conform(out, target)
                    if hint:
                        out = out.replace_schema_metadata(target.metadata)
                    counts.add(out)
                    done += out.num_rows
                    if bar is not None:
                        bar.update(done)
                    yield out
        finally:  # a stopped run stops its read-ahead thread now, not when the readers are collected
            for reader in readers:
                reader.close()

    outs = OutputSet(overwrite, bom=bom)  # the output and the report are published together
    try:
        if output is None:
            collected = list(batches())
        else:
            write_batches(output, batches(), empty_schema=target, into=outs,
                          rows=None if None in totals else sum(totals))
    except BaseException:
        outs.discard()
        raise
    finally:
        if bar is not None:
            bar.close()
    summary = RunSummary(done, time.perf_counter() - start, counts.status, grouper.compiled.name,
                         grouper.compiled.fingerprint, grouper.compiled.version, dict(sorted(counts.mdc.items())),
                         dict(sorted(counts.drg.items())),
                         counts.flag_counts(),
                         [s.path for s in sources], None if output is None else str(output), max_error_rate)
    with outs:
        if report is not None:
            Path(outs.add(report)).write_text(json.dumps(summary.report(), ensure_ascii=False, indent=2) + "\n",
                                              encoding="utf-8")
    table = pa.Table.from_batches(collected, schema=target) if output is None else None
    return summary, table

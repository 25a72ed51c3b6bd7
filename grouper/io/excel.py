"""Excel workbooks (.xlsx, .xlsm, .xls) as case files, read with fastexcel (calamine, in Rust)
straight into Arrow: the first sheet unless one is named (``--sheet``), the first row as the
header, numbers and dates typed by their cells. See docs/input-formats.md."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa

from grouper._util.errors import InputError, first_line
from grouper._util.lazy import pc

__all__ = ["EXCEL_FORMATS", "open_excel"]

EXCEL_FORMATS = {".xlsx": "excel", ".xlsm": "excel", ".xls": "excel"}


def open_excel(p: Path, batch_size: int, sheet: str | None = None
               ) -> tuple[pa.Schema, Callable[[list[str] | None], Iterator[pa.RecordBatch]], int]:
    """(schema, batches, rows) of one sheet of workbook ``p``, loaded whole when opened (a sheet is at most
    1,048,576 rows) and then handed out in batches of ``batch_size`` rows. Columns of whole
    numbers (Excel stores every number as a float) become int64, so ages and ids read as 65,
    not 65.0."""
    import fastexcel

    try:
        book = fastexcel.read_excel(str(p))
        names = book.sheet_names
        if sheet is not None and sheet not in names:
            raise InputError(f"{p}: no sheet {sheet!r} (--sheet); the workbook has: {', '.join(map(repr, names))}")
        table = pa.Table.from_batches([book.load_sheet(sheet if sheet is not None else 0).to_arrow()])
    except fastexcel.FastExcelError as exc:
        raise ValueError(f"{p}: unreadable Excel workbook ({first_line(exc)})") from None
    table = pa.Table.from_arrays([_whole(c) for c in table.columns],
                                 schema=pa.schema([pa.field(f.name, _whole_type(f.type, c), True)
                                                   for f, c in zip(table.schema, table.columns)]))
    table = table.combine_chunks()

    def batches(columns: list[str] | None) -> Iterator[pa.RecordBatch]:
        t = table if columns is None else table.select(columns)
        yield from t.to_batches(max_chunksize=batch_size)

    return table.schema, batches, table.num_rows


def _is_whole(col: pa.ChunkedArray) -> bool:
    if not pa.types.is_floating(col.type) or col.null_count == len(col):
        return False
    x = pc.drop_null(col).to_numpy()
    return bool(np.all(np.isfinite(x)) and np.all(x == np.round(x)) and np.all(np.abs(x) < 2 ** 53))


def _whole(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return col.cast(pa.int64()) if _is_whole(col) else col


def _whole_type(t: pa.DataType, col: pa.ChunkedArray) -> pa.DataType:
    return pa.int64() if _is_whole(col) else t

"""Excel (.xlsx) output, written row by row with xlsxwriter in constant-memory mode (each row is
flushed to a temporary file as it is written, so memory does not grow with the table).

Cells keep their types: text as text (never read as a formula, even when it starts with '='),
numbers as numbers (money, a decimal, with two places shown), dates as dates, booleans as
booleans; a missing value, NaN included, is an empty cell. The caller refuses a table longer
than a sheet (``write.XLSX_MAX_ROWS``) before writing."""

from __future__ import annotations

import datetime as dt
import math

import pyarrow as pa

__all__ = ["XlsxWriter"]


class XlsxWriter:
    """The ``write_batch``/``close`` interface of the Arrow writers, for one sheet named 'data'."""

    def __init__(self, path: str, schema: pa.Schema):
        import xlsxwriter

        self.book = xlsxwriter.Workbook(path, {"constant_memory": True, "nan_inf_to_errors": False})
        self.sheet = self.book.add_worksheet("data")
        self.formats = {"money": self.book.add_format({"num_format": "0.00"}),
                        "date": self.book.add_format({"num_format": "yyyy-mm-dd"}),
                        "datetime": self.book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})}
        bold = self.book.add_format({"bold": True})
        for j, name in enumerate(schema.names):
            self.sheet.write_string(0, j, name, bold)
        self.cells = [self._cell(f.type) for f in schema]
        self.row = 1

    def _cell(self, t: pa.DataType):
        """How one column's values are written."""
        if pa.types.is_dictionary(t):
            t = t.value_type
        s = self.sheet
        if pa.types.is_boolean(t):
            return lambda r, c, v: s.write_boolean(r, c, v)
        if pa.types.is_decimal(t):
            fmt = self.formats["money"] if t.scale == 2 else None
            return lambda r, c, v: s.write_number(r, c, float(v), fmt)
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            def number(r, c, v):
                if math.isfinite(v):
                    s.write_number(r, c, v)
            return number
        if pa.types.is_date(t):
            return lambda r, c, v: s.write_datetime(r, c, dt.datetime(v.year, v.month, v.day), self.formats["date"])
        if pa.types.is_timestamp(t):
            return lambda r, c, v: s.write_datetime(r, c, v.replace(tzinfo=None), self.formats["datetime"])
        return lambda r, c, v: s.write_string(r, c, str(v))

    def write_batch(self, b: pa.RecordBatch) -> None:
        cols = [c.to_pylist() for c in b.columns]
        cells = self.cells
        r = self.row
        for values in zip(*cols):
            for j, v in enumerate(values):
                if v is not None:
                    cells[j](r, j, v)
            r += 1
        self.row = r

    def close(self) -> None:
        self.book.close()

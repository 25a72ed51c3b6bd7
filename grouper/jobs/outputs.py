"""What the jobs share when they write: the money columns of each table (written as exact
decimals, ``grouper._util.money.with_money``) and the DRG name put next to each DRG code."""

from __future__ import annotations

import pyarrow as pa

from grouper._util.money import money_value, with_money

__all__ = ["DIP_MONEY", "SETTLE_MONEY", "WEIGHTS_MONEY", "case_progress", "check_tables", "code_names", "json_money", "with_money", "with_names"]

#: Amounts in yuan of each table a job writes: decimal128(18, 2) in every format.
WEIGHTS_MONEY = ("mean_cost",)
SETTLE_MONEY = ("payment_standard", "cost", "payment", "fund_payment", "patient_share", "margin", "surplus",
                "overspend", "sharing_adjustment", "surplus_kept", "overspend_borne", "presettled_fund",
                "reserve_withheld", "paid_monthly", "final_fund", "clearance", "paid", "effect_sharing")
DIP_MONEY = ("amount", "fund", "margin")


def code_names(compiled, level: str = "drg") -> dict[str, str]:
    """Code -> Chinese name of one level (mdc, adrg, drg) of a compiled ruleset."""
    codes, names = getattr(compiled, f"{level}_codes"), getattr(compiled, f"{level}_names")
    out: dict[str, str] = {}
    for c, n in zip(codes, names):
        out.setdefault(c, n)
    return out


def with_names(table, names: dict[str, str], code: str = "drg", name: str | None = None):
    """``table`` (a table or record batch) with a ``name`` column (default ``<code>_name``) of each
    row's code looked up in ``names`` (null when unknown) right after the ``code`` column;
    unchanged without it. A dictionary-encoded code column gets a dictionary-encoded name column,
    looked up once per distinct code."""
    if code not in table.schema.names:
        return table
    name = name or f"{code}_name"
    if name in table.schema.names:
        return table
    col = table.column(code)
    if not pa.types.is_dictionary(col.type):
        values = [None if c is None else names.get(str(c)) for c in col.to_pylist()]
        out = pa.array(values, pa.string())
    else:
        chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
        out = pa.chunked_array([pa.DictionaryArray.from_arrays(
            c.indices, pa.array([names.get(str(v)) for v in c.dictionary.to_pylist()], pa.string())) for c in chunks],
            pa.dictionary(pa.int32(), pa.string()))
        if isinstance(table, pa.RecordBatch):
            out = out.combine_chunks() if out.num_chunks != 1 else out.chunk(0)
    i = table.schema.names.index(code) + 1
    if isinstance(table, pa.RecordBatch):
        cols = [*table.columns[:i], out, *table.columns[i:]]
        fields = [*table.schema][:i] + [pa.field(name, out.type)] + [*table.schema][i:]
        return pa.RecordBatch.from_arrays(cols, schema=pa.schema(fields, metadata=table.schema.metadata))
    return table.add_column(i, name, out)


def json_money(d: dict, keys) -> dict:
    """``d`` with the amounts under ``keys`` rounded to the fen (the text is the exact decimal)."""
    return {k: (money_value(v) if k in keys and isinstance(v, (int, float)) else v) for k, v in d.items()}


def check_tables(*paths) -> None:
    """Before any work: each table output (None: not asked for) has a known format."""
    from grouper.io import table_kind

    for p in paths:
        if p is not None:
            table_kind(p)


def case_progress(stream, inputs, passes: int = 1):
    """The progress line of a job reading the case files ``inputs`` ``passes`` times (None when
    ``stream`` is None: silent). Its total is the files' row counts (Parquet, Arrow) or the CSV
    estimate from the file size; unknown (no percent) when a file cannot tell."""
    if stream is None:
        return None
    from grouper._util.progress import Progress, estimate_rows, total_rows
    from grouper.io import expand_inputs, format_of, open_source

    def rows(path):
        try:
            return estimate_rows(path) if format_of(path, reading=True) == "csv" else open_source(path).num_rows
        except (OSError, ValueError):
            return None

    try:
        total = total_rows(rows(p) for p in expand_inputs(inputs, warn=None))  # skipped files: named once, by the job
    except (OSError, ValueError):
        total = None
    return Progress(stream, None if total is None else total * passes)

"""The case schema every layer reads: column names, the number and code text rules, and the
checks and conversions of single columns that reading and grouping share."""

from __future__ import annotations

from typing import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from grouper._util.errors import InputError

__all__ = ["CODE_COLUMNS", "CODE_WHITESPACE", "NUMBER_PATTERN", "NUMERIC_COLUMNS", "REQUIRED_COLUMNS",
           "check_columns", "is_text", "split_joined", "to_string"]

NUMERIC_COLUMNS = ("sex", "age", "age_days", "birth_weight")
CODE_COLUMNS = ("dx", "px")
#: Columns without which a batch cannot be grouped. age_days and birth_weight may be absent:
#: only patients aged 0 need them, and those rows then fail validation with a stated reason.
REQUIRED_COLUMNS = ("sex", "age", "dx", "px")
#: A whole number written as text: optional sign, ASCII digits (leading zeros allowed), an
#: optional all-zero fraction ("65", "+65", "065", "65.0"). Anything else is not a number.
#: ``engine.reference.parse_int`` applies the same pattern, so both paths read text alike.
NUMBER_PATTERN = r"^(?P<sign>[+-]?)0*(?P<digits>[0-9]{1,10})(?:\.0*)?$"
#: Whitespace trimmed around codes (also by ``engine._codes.CodeTable`` and the reference).
CODE_WHITESPACE = " \t\n\r\v\f\u00a0\u3000"


def check_columns(names: Iterable[str], required: Iterable[str] = REQUIRED_COLUMNS,
                  optional: Iterable[str] = ()) -> None:
    """Every ``required`` column is in ``names``, and neither they nor the ``optional`` ones
    (read when present) appear more than once: a repeated name is ambiguous, not a choice."""
    names = list(names)
    have = set(names)
    missing = [c for c in dict.fromkeys(required) if c not in have]
    if missing:
        raise InputError(f"missing required column(s): {', '.join(missing)}")
    if len(have) < len(names):
        counts = {c: names.count(c) for c in dict.fromkeys([*required, *optional]) if c in have}
        repeated = [f"{c!r} ({k} times)" for c, k in counts.items() if k > 1]
        if repeated:
            raise InputError(f"repeated column name(s): {', '.join(repeated)}; each column read must "
                             "have a unique name (rename the others)")


def is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def to_string(a: pa.Array) -> pa.Array:
    return a if pa.types.is_string(a.type) else a.cast(pa.string())


def split_joined(values: pa.Array) -> pa.Array:
    """'|'-joined code strings -> lists; a blank string is an empty list, not one empty code."""
    values = to_string(values)
    blank = pc.equal(pc.utf8_trim_whitespace(values), "")
    values = pc.if_else(blank, pa.scalar(None, pa.string()), values)
    return pc.split_pattern(values, "|")

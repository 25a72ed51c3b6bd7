"""The case schema every layer reads: column names, the number and code text rules, and the
checks and conversions of single columns that reading and grouping share."""

from __future__ import annotations

import difflib
import re
from typing import Iterable, Mapping

import numpy as np
import pyarrow as pa

from grouper._util.errors import InputError
from grouper._util.lazy import pc

__all__ = ["CODE_COLUMNS", "CODE_SEPARATORS", "CODE_WHITESPACE", "NAME_COLUMNS", "NUMBER_PATTERN", "NUMERIC_COLUMNS",
           "REQUIRED_COLUMNS", "SMALL_TEXT", "check_columns", "closest_column", "is_text", "missing_columns",
           "small_ascii_texts", "split_codes", "split_joined", "to_string"]

NUMERIC_COLUMNS = ("sex", "age", "age_days", "birth_weight")
CODE_COLUMNS = ("dx", "px")
#: Columns without which a batch cannot be grouped. age_days and birth_weight may be absent:
#: only patients aged 0 need them, and those rows then fail validation with a stated reason.
REQUIRED_COLUMNS = ("sex", "age", "dx", "px")
#: A whole number written as text: optional sign, ASCII digits (leading zeros allowed), an
#: optional all-zero fraction ("65", "+65", "065", "65.0"). Anything else is not a number.
#: ``engine.reference.parse_int`` applies the same pattern, so both paths read text alike.
NUMBER_PATTERN = r"^(?P<sign>[+-]?)0*(?P<digits>[0-9]{1,10})(?:\.0*)?$"
#: Separators of several codes written in one text field: '|' (this project's own), and the
#: ',' ';' '；' '，' of hospital exports. No diagnosis or procedure code contains one.
CODE_SEPARATORS = "|,;；，"
_SEPARATOR_CLASS = "[" + re.escape(CODE_SEPARATORS) + "]"
_SEPARATOR_RE = re.compile(_SEPARATOR_CLASS)
#: Result columns that spell out the code beside them (mdc -> mdc_name, ...): written for people
#: (CSV, Excel, the printed table) and left out of columnar outputs (Parquet, Arrow) unless asked
#: for (``drg group --names``): they held half of such a file and half its write time, for what
#: one join with ``drg groups`` gives.
NAME_COLUMNS = ("mdc_name", "adrg_name", "drg_name")
#: Rows of a text column up to which it is read as Python strings (``small_ascii_texts``).
SMALL_TEXT = 4096
#: Whitespace trimmed around codes (also by ``engine._codes.CodeTable`` and the reference).
CODE_WHITESPACE = " \t\n\r\v\f\u00a0\u3000"


def check_columns(names: Iterable[str], required: Iterable[str] = REQUIRED_COLUMNS,
                  optional: Iterable[str] = (), aliases: Mapping[str, Iterable[str]] | None = None) -> None:
    """Every ``required`` column is in ``names``, and neither they nor the ``optional`` ones
    (read when present) appear more than once: a repeated name is ambiguous, not a choice.
    A missing one is an InputError listing the columns found and the closest of them
    (``missing_columns``)."""
    names = list(names)
    have = set(names)
    missing = [c for c in dict.fromkeys(required) if c not in have]
    if missing:
        raise InputError("missing required column(s): " + missing_columns(missing, names, aliases))
    if len(have) < len(names):
        counts = {c: names.count(c) for c in dict.fromkeys([*required, *optional]) if c in have}
        repeated = [f"{c!r} ({k} times)" for c, k in counts.items() if k > 1]
        if repeated:
            raise InputError(f"repeated column name(s): {', '.join(repeated)}; each column read must "
                             "have a unique name (rename the others)")


def closest_column(wanted: str, names: Iterable[str], aliases: Iterable[str] = ()) -> str | None:
    """The column of ``names`` most likely meant for ``wanted``: the same name in another case
    or with spaces around it (``Sex`` for sex), one named like an alias of it (``性别``, a name
    of the wide 病案首页 layouts), else the most similar name (difflib, 0.75 or closer)."""
    names = list(names)
    fold = {n.strip().casefold(): n for n in reversed(names)}
    for key in (wanted.casefold(), *(a.strip().casefold() for a in aliases)):
        if key in fold:
            return fold[key]
    for key in (wanted.casefold(), *(a.strip().casefold() for a in aliases)):
        near = difflib.get_close_matches(key, list(fold), n=1, cutoff=0.75)
        if near:
            return fold[near[0]]
    return None


def missing_columns(missing: Iterable[str], names: Iterable[str],
                    aliases: Mapping[str, Iterable[str]] | None = None, shown: int = 40) -> str:
    """'sex, dx; closest: sex <- 'Sex' (--map sex=Sex); columns found (12): case_id, Sex, ...':
    the text after 'missing column(s)' in every such error, so a user sees what is there."""
    names = list(names)
    hints = []
    for c in missing:
        near = closest_column(c, names, (aliases or {}).get(c, ()))
        if near is not None:
            hints.append(f"{c} <- {near!r} (--map {c}={near})")
    found = ", ".join(names[:shown]) + (f", ... ({len(names) - shown} more)" if len(names) > shown else "")
    return (", ".join(missing) + (f"; closest: {', '.join(hints)}" if hints else "")
            + f"; columns found ({len(names)}): {found or 'none'}")


def is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def to_string(a: pa.Array) -> pa.Array:
    return a if pa.types.is_string(a.type) else a.cast(pa.string())


def split_codes(text: str) -> list[str]:
    """One field of joined codes -> the codes (``split_joined`` for one Python string, as the
    reference interpreter and ``explain`` read it); blank -> no codes."""
    return _SEPARATOR_RE.split(text) if text.strip() else []


def small_ascii_texts(values: pa.Array) -> list[str | None] | None:
    """The values of a text array as Python strings when it is small (``SMALL_TEXT``) and all
    ASCII, else None. Such a batch is read by Python's own string methods, which on ASCII text
    do what the pyarrow.compute functions used for larger ones do (trimming, splitting, the
    number pattern), so a one-row CSV file need not load pyarrow.compute (start-up)."""
    if len(values) > SMALL_TEXT:
        return None
    texts = values.to_pylist()
    return texts if all(v is None or v.isascii() for v in texts) else None


def split_joined(values: pa.Array) -> pa.Array:
    """Joined code strings -> lists, split at any of CODE_SEPARATORS ('|', ',', ';', '；', '，');
    a blank string is a null list (no codes), not one empty code."""
    texts = small_ascii_texts(values)
    if texts is not None:  # Python's strip and split: the same lists, without pyarrow.compute
        return pa.array([None if v is None or not v.strip() else _SEPARATOR_RE.split(v) for v in texts],
                        pa.list_(pa.string()))
    values = to_string(values)
    others = _other_separators(values)
    blank = pc.equal(pc.utf8_trim_whitespace(values), "")
    values = pc.if_else(blank, pa.scalar(None, pa.string()), values)
    return pc.split_pattern_regex(values, _SEPARATOR_CLASS) if others else pc.split_pattern(values, "|")


def _other_separators(values: pa.Array) -> bool:
    """Whether any value may hold a separator other than '|' (then the slower regex split is
    used): one numpy pass over the text bytes for ',' ';' and 0xBC, the middle byte of both
    full-width ones in UTF-8 (a false alarm costs only the slower split)."""
    if len(values) == 0 or values.buffers()[2] is None:
        return False
    offsets = np.frombuffer(values.buffers()[1], np.int32)[values.offset:values.offset + len(values) + 1]
    data = np.frombuffer(values.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
    return bool((data == 0x2C).any() or (data == 0x3B).any() or (data == 0xBC).any())

"""DIP (按病种分值付费) group keys: reading cases, their codes per distinct value, catalogue lookup.

A DIP group is the principal diagnosis at 亚目 level (ICD-10 医保版: the 3-character category plus
the first subcategory character, ``K80.1``) combined with the principal procedure (ICD-9-CM-3
医保版, the code as coded); a case without a procedure is in the conservative (保守治疗) group of its
diagnosis. Rare combinations are pooled by ICD-10 category x treatment type and, where even that
is thin, by ICD-10 chapter x treatment type (医保办发〔2020〕50号 technical specification; see
docs/dip.md). The only classification of procedures is in :class:`ProcedureTypes`.

Everything here runs on the distinct values of a batch (Arrow dictionaries); rows take the
results by integer index, so there is no Python work per case. ``BaseCases`` reduces base-period
cases to the cells the catalogue is built from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc

__all__ = ["TREATMENT_TYPES", "CONSERVATIVE", "DIAGNOSTIC", "THERAPEUTIC", "SURGERY", "DIAGNOSTIC_CHAPTERS",
           "ICD10_CHAPTERS", "ProcedureTypes", "principal_codes", "diagnosis_parts", "procedure_parts",
           "chapter_of", "Vocab", "Memo", "numbers", "years", "text_ids", "DipColumns", "DEFAULT_COLUMNS",
           "column", "batches", "BaseCases", "STATUSES"]

#: Per-case status of assignment and settlement (an int8 code per case; the label by index).
STATUSES = ("settled", "no_principal_dx", "invalid_principal_dx", "invalid_principal_px", "no_group",
            "missing_cost", "non_positive_cost", "missing_level")
(SETTLED, NO_PDX, BAD_PDX, BAD_PPX, NO_GROUP, NO_COST, BAD_COST, NO_LEVEL) = range(len(STATUSES))

#: Treatment types of the comprehensive groups (综合病种), in this order (the int codes below).
TREATMENT_TYPES = ("保守治疗", "诊断性操作", "治疗性操作", "相关手术")
CONSERVATIVE, DIAGNOSTIC, THERAPEUTIC, SURGERY = 0, 1, 2, 3
#: ICD-9-CM-3 chapters whose codes are diagnostic when not operating-room procedures: 87-88
#: diagnostic radiology, 89 interview/evaluation/examination, 90-91 microscopic examination.
DIAGNOSTIC_CHAPTERS = frozenset(range(87, 92))

#: ICD-10 chapters (GB/T 14396-2016, which 医保版 ICD-10 follows): first category and label. A
#: category belongs to the last chapter starting at or before it.
ICD10_CHAPTERS = (("A00", "A00-B99"), ("C00", "C00-D48"), ("D50", "D50-D89"), ("E00", "E00-E90"),
                  ("F00", "F00-F99"), ("G00", "G00-G99"), ("H00", "H00-H59"), ("H60", "H60-H95"),
                  ("I00", "I00-I99"), ("J00", "J00-J99"), ("K00", "K00-K93"), ("L00", "L00-L99"),
                  ("M00", "M00-M99"), ("N00", "N00-N99"), ("O00", "O00-O99"), ("P00", "P00-P96"),
                  ("Q00", "Q00-Q99"), ("R00", "R00-R99"), ("S00", "S00-T98"), ("U00", "U00-U99"),
                  ("V01", "V01-Y98"), ("Z00", "Z00-Z99"))
_LETTERS = pa.array([chr(c) for c in range(ord("A"), ord("Z") + 1)])
_CHAPTER_STARTS = np.array([(ord(s[0]) - 65) * 100 + int(s[1:]) for s, _ in ICD10_CHAPTERS])


class ProcedureTypes:
    """Treatment type of a principal procedure. Operating-room procedures (the ruleset's
    ``or_procedures.csv``, the CHS-DRG valid OR list) are 相关手术; other codes of ICD-9-CM-3
    chapters 87-91 are 诊断性操作; every other procedure is 治疗性操作; no procedure is 保守治疗."""

    def __init__(self, or_codes: Iterable[str], source: str = ""):
        self.source = source  # the ruleset it came from (recorded in a catalogue's information)
        self.or_codes = pa.array(sorted({c.strip() for c in or_codes}), pa.string())

    @classmethod
    def from_ruleset(cls, name_or_path: str) -> ProcedureTypes:
        from grouper.rulesets import GLOBAL, load_ruleset

        rs = load_ruleset(name_or_path)
        lst = rs.lists.get((GLOBAL, "VALID_OR"))
        return cls(lst.codes if lst else (), str(name_or_path))

    def classify(self, codes: pa.Array) -> np.ndarray:
        """int8 treatment type per (trimmed) procedure code."""
        is_or = pc.is_in(codes, value_set=self.or_codes).fill_null(False).to_numpy(zero_copy_only=False)
        chapter = _two_digits(codes)
        diag = np.isin(chapter, list(DIAGNOSTIC_CHAPTERS))
        return np.where(is_or, SURGERY, np.where(diag, DIAGNOSTIC, THERAPEUTIC)).astype(np.int8)


def _two_digits(codes: pa.Array) -> np.ndarray:
    """Leading two digits of each code as an int (-1 when the code does not start with two)."""
    ok = pc.match_substring_regex(codes, r"^[0-9]{2}").fill_null(False)
    head = pc.if_else(ok, pc.utf8_slice_codeunits(codes, 0, 2), pa.scalar("-1"))
    return pc.cast(head, pa.int32()).to_numpy(zero_copy_only=False)


def _as_array(col) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def principal_codes(col, name: str) -> tuple[np.ndarray, pa.Array]:
    """The first code of each row: (row -> index into ``values``, -1 when there is none, and
    ``values``, trimmed strings that may repeat). Accepts ``list<string>``, ``list<dictionary>``,
    '|'-joined text and dictionary-encoded text; a blank or null first code counts as none, as
    in the grouper. The work is on the dictionary when there is one."""
    arr = _as_array(col)
    n, t = len(arr), arr.type
    if pa.types.is_null(t):
        return np.full(n, -1, np.int64), pa.array([], pa.string())
    if pa.types.is_dictionary(t) and _is_text(t.value_type):
        values = pc.replace_substring_regex(arr.dictionary.cast(pa.string()), r"\|.*", "")
        idx = arr.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    elif _is_text(t):
        enc = pc.dictionary_encode(pc.replace_substring_regex(arr.cast(pa.string()), r"\|.*", ""))
        values, idx = enc.dictionary, enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) \
            or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        has = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False) > 0
        if pa.types.is_list(t) or pa.types.is_large_list(t):  # keeps the child's dictionary as it is
            first = arr.values.take(pa.array(arr.offsets.to_numpy(zero_copy_only=False)[:-1][has]))
        else:
            first = pc.list_slice(arr, 0, 1).flatten()
        vt = first.type
        if pa.types.is_dictionary(vt) and _is_text(vt.value_type):
            values, sub = first.dictionary.cast(pa.string()), first.indices
        elif _is_text(vt) or pa.types.is_null(vt):
            enc = pc.dictionary_encode(first.cast(pa.string()))
            values, sub = enc.dictionary, enc.indices
        else:
            raise ValueError(f"column {name!r} has type {t}: expected codes as list<string> or '|'-joined text")
        idx = np.full(n, -1, np.int64)
        idx[has] = sub.fill_null(-1).to_numpy(zero_copy_only=False)
    else:
        raise ValueError(f"column {name!r} has type {t}: expected codes as list<string> or '|'-joined text")
    values = pc.utf8_trim_whitespace(values)
    blank = pc.equal(values, "").fill_null(True).to_numpy(zero_copy_only=False)
    if blank.any():
        idx = np.where((idx >= 0) & blank[np.maximum(idx, 0)], -1, idx)
    return idx, values


def chapter_of(category: pa.Array) -> np.ndarray:
    """ICD-10 chapter index (into ICD10_CHAPTERS) of valid 3-character categories such as 'K80'."""
    letter = pc.index_in(pc.utf8_slice_codeunits(category, 0, 1), value_set=_LETTERS).fill_null(0)
    digits = pc.cast(pc.utf8_slice_codeunits(category, 1, 3), pa.int32())
    code = letter.to_numpy(zero_copy_only=False) * 100 + digits.to_numpy(zero_copy_only=False)
    return np.maximum(np.searchsorted(_CHAPTER_STARTS, code, side="right") - 1, 0).astype(np.int16)


def diagnosis_parts(values: pa.Array) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """Per trimmed principal-diagnosis code: (亚目 such as 'K80.1', category 'K80', valid).

    With or without the dot and with local extensions alike (K80.100x001, K80.1, K801 give K80.1);
    a category-only code (K80) is its own 亚目; the placeholder x of 医保版 codes stays lower case
    (C61.x00 gives C61.x). Valid: a letter, two digits, then a digit, x or nothing."""
    v = pc.replace_substring(pc.utf8_upper(values), ".", "")
    valid = pc.match_substring_regex(v, r"^[A-Z][0-9]{2}([0-9X]|$)").fill_null(False)
    cat = pc.utf8_slice_codeunits(v, 0, 3)
    sub = pc.replace_substring(pc.utf8_slice_codeunits(v, 3, 4), "X", "x")
    sub4 = pc.if_else(pc.equal(sub, ""), cat, pc.binary_join_element_wise(cat, sub, "."))
    none = pa.scalar(None, pa.string())
    return pc.if_else(valid, sub4, none), pc.if_else(valid, cat, none), valid.to_numpy(zero_copy_only=False)


def procedure_parts(values: pa.Array) -> np.ndarray:
    """Per trimmed principal-procedure code: valid (starts with the two digits of an ICD-9-CM-3
    chapter). The code itself is the key, as coded: 医保版 extensions are distinct procedures."""
    return _two_digits(values) >= 0


class Vocab:
    """Strings <-> dense ids that grow across batches; lookups are one ``index_in`` per call."""

    def __init__(self, values: Iterable[str] = ()):
        self.values: list[str] = list(dict.fromkeys(values))
        self._arr = pa.array(self.values, pa.string())

    def __len__(self) -> int:
        return len(self.values)

    def lookup(self, strings: pa.Array) -> np.ndarray:
        """int64 id per string, -1 for null or unknown strings."""
        return pc.index_in(strings, value_set=self._arr).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)

    def ids(self, strings: pa.Array) -> np.ndarray:
        """Like ``lookup`` but unknown non-null strings are added first."""
        out = self.lookup(strings)
        new = (out < 0) & pc.is_valid(strings).to_numpy(zero_copy_only=False)
        if new.any():
            self.values += [s for s in dict.fromkeys(strings.filter(pa.array(new)).to_pylist())]
            self._arr = pa.array(self.values, pa.string())
            out = self.lookup(strings)
        return out

    def array(self) -> pa.Array:
        return self._arr


class Memo:
    """The result of a per-distinct-value function for the last dictionary seen: batches of one
    Parquet row group share their dictionary, so it is worked out once per row group."""

    def __init__(self, fn):
        self.fn, self._key, self._val = fn, None, None

    def __call__(self, values: pa.Array):
        if self._key is None or len(self._key) != len(values) or not self._key.equals(values):
            self._key, self._val = values, self.fn(values)
        return self._val


def text_ids(col, vocab: Vocab) -> np.ndarray:
    """Vocabulary id per row of a text-like column (trimmed; blank and null -> -1); numbers are
    read as their text. Dictionary columns are mapped once per distinct value."""
    arr = _as_array(col)
    if pa.types.is_null(arr.type):
        return np.full(len(arr), -1, np.int64)
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr)
    values = pc.utf8_trim_whitespace(arr.dictionary.cast(pa.string()))
    values = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
    table = np.append(vocab.ids(values), -1)  # index -1 (a null row) -> -1
    return table[arr.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)]


_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def numbers(col) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values with NaN where missing or unreadable, mask of unreadable values). Text is
    read as a plain decimal number ('12000', ' 1.5e4 '); anything else is unreadable, not a guess."""
    arr = _as_array(col)
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_null(arr.type):
        return np.full(len(arr), np.nan), np.zeros(len(arr), bool)
    if _is_text(arr.type):
        s = pc.utf8_trim_whitespace(arr.cast(pa.string()))
        ok = pc.match_substring_regex(s, _NUMBER)
        bad = pc.and_(pc.invert(ok), pc.not_equal(s, "")).fill_null(False).to_numpy(zero_copy_only=False)
        vals = pc.cast(pc.if_else(ok, s, pa.scalar(None, pa.string())), pa.float64())
    elif pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type):
        vals, bad = pc.cast(arr, pa.float64()), np.zeros(len(arr), bool)
    else:
        raise ValueError(f"type {arr.type}: expected numbers")
    out = vals.to_numpy(zero_copy_only=False).astype(np.float64)
    bad |= ~np.isfinite(out) & ~np.isnan(out)
    out[~np.isfinite(out)] = np.nan
    return out, bad


def years(col) -> np.ndarray:
    """int32 year per row (-1 when missing or unreadable) from a year, a date/timestamp, or text
    starting with a four-digit year ('2024', '2024-07-01')."""
    arr = _as_array(col)
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    t = arr.type
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        y = pc.year(arr)
    elif pa.types.is_integer(t):
        y = arr
    elif pa.types.is_floating(t):
        whole = pc.equal(pc.floor(arr), arr)
        y = pc.if_else(whole, pc.cast(pc.floor(arr), pa.int64(), safe=False), pa.scalar(None, pa.int64()))
    elif _is_text(t):
        s = pc.utf8_trim_whitespace(arr.cast(pa.string()))
        ok = pc.match_substring_regex(s, r"^[0-9]{4}($|[^0-9])")
        y = pc.cast(pc.if_else(ok, pc.utf8_slice_codeunits(s, 0, 4), pa.scalar(None, pa.string())), pa.int32())
    elif pa.types.is_null(t):
        return np.full(len(arr), -1, np.int32)
    else:
        raise ValueError(f"type {t}: expected a year, a date or text such as 2024-07-01")
    out = pc.cast(y, pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)
    return np.where((out >= 1900) & (out <= 2200), out, -1).astype(np.int32)


# ----------------------------------------------------------------------------- reading cases

@dataclass(frozen=True)
class DipColumns:
    """Names of the input columns DIP reads (``year``: none means one period; ``level``,
    ``hospital``, ``patient_share`` optional where the computation allows)."""

    dx: str = "dx"
    px: str = "px"
    cost: str = "total_cost"
    level: str | None = "hospital_level"
    hospital: str | None = "hospital_id"
    year: str | None = None
    patient_share: str | None = None
    case_id: str = "case_id"


DEFAULT_COLUMNS = DipColumns()


def column(batch: pa.RecordBatch, name: str, what: str) -> pa.Array:
    """A required column, or an error naming it and the columns there are."""
    if name not in batch.schema.names:
        raise ValueError(f"no {what} column {name!r} (columns: {', '.join(batch.schema.names)})")
    return batch.column(name)


def batches(data) -> Iterator[pa.RecordBatch]:
    """Batches of a Table, a RecordBatch or an iterable of batches."""
    if isinstance(data, pa.Table):
        yield from data.to_batches()
    elif isinstance(data, pa.RecordBatch):
        yield data
    else:
        yield from data


_LV, _YR, _ID = 1 << 10, 1 << 9, 1 << 20  # packing of a cell code: levels, years since 1899, vocabulary ids


class BaseCases:
    """Base-period cases reduced, as they stream in, to cells (亚目, procedure, year, level) with a
    case count and a cost sum in fen: the catalogue needs nothing else, so memory follows the
    number of distinct cells, not of cases. With ``keep_cases`` (trimming needs each cost) every
    case's cell code and cost are kept too. Excluded rows are only counted, by reason."""

    def __init__(self, cols: DipColumns, keep_cases: bool = False):
        self.cols, self.keep_cases = cols, keep_cases
        self.pdx4, self.px, self.levels = Vocab(), Vocab(), Vocab()
        self._dx = Memo(self._dx_info)
        self._px = Memo(lambda v: (self.px.ids(v), procedure_parts(v)))
        self._cells: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending = self._merged = 0
        self._cases: list[tuple[np.ndarray, np.ndarray]] = []
        self.excluded = dict.fromkeys(("no_principal_dx", "invalid_principal_dx", "invalid_principal_px",
                                       "missing_cost", "unreadable_cost", "non_positive_cost"), 0)
        if cols.year:
            self.excluded["missing_year"] = 0
        self.rows = 0

    def _dx_info(self, values):
        sub4, _, ok = diagnosis_parts(values)
        return self.pdx4.ids(sub4), ok

    def add(self, batch: pa.RecordBatch) -> None:
        c = self.cols
        n = batch.num_rows
        self.rows += n
        di, dv = principal_codes(column(batch, c.dx, "diagnosis"), c.dx)
        pi, pv = principal_codes(column(batch, c.px, "procedure"), c.px)
        d_id, d_ok = self._dx(dv)
        p_id, p_ok = self._px(pv)
        cost, unreadable = numbers(column(batch, c.cost, "cost"))
        lvl = text_ids(batch.column(c.level), self.levels) if c.level and c.level in batch.schema.names \
            else np.full(n, -1, np.int64)
        yr = years(column(batch, c.year, "year")) if c.year else np.full(n, 1899, np.int32)
        reasons = [("no_principal_dx", di < 0), ("invalid_principal_dx", ~np.append(d_ok, True)[di]),
                   ("invalid_principal_px", ~np.append(p_ok, True)[pi]), ("unreadable_cost", unreadable),
                   ("missing_cost", np.isnan(cost)), ("non_positive_cost", cost <= 0)]
        if c.year:
            reasons.append(("missing_year", yr < 0))
        keep = np.ones(n, bool)
        for name, bad in reasons:  # each row counted once, under its first reason
            self.excluded[name] += int((bad & keep).sum())
            keep &= ~bad
        if max(len(self.pdx4), len(self.px) + 1) >= _ID or len(self.levels) + 1 >= _LV:
            raise ValueError("more than a million distinct principal diagnoses or procedures, or a thousand "
                             "hospital levels: not DIP base data")
        pdx4, px = np.append(d_id, -1)[di][keep], np.append(p_id, -1)[pi][keep]
        code = ((pdx4 * _ID + px + 1) * _YR + (yr[keep].astype(np.int64) - 1899)) * _LV + lvl[keep] + 1
        fen = np.rint(cost[keep] * 100).astype(np.int64)
        cells, inv = np.unique(code, return_inverse=True)
        self._cells.append((cells, np.bincount(inv, minlength=len(cells)), np.bincount(inv, fen, len(cells))))
        self._pending += len(cells)
        if self._pending > 2 * self._merged + (1 << 20):  # amortised: merge when the unmerged part doubles
            self._merge()
        if self.keep_cases:
            self._cases.append((code, fen))

    def _merge(self) -> None:
        if len(self._cells) > 1:
            codes, counts, sums = (np.concatenate(p) for p in zip(*self._cells))
            cells, inv = np.unique(codes, return_inverse=True)
            self._cells = [(cells, np.bincount(inv, counts, len(cells)).astype(np.int64),
                            np.bincount(inv, sums, len(cells)))]
        self._pending = self._merged = len(self._cells[0][0]) if self._cells else 0

    def cells(self) -> dict[str, np.ndarray]:
        """The cells: code, pdx4 id, px id (-1: none), year (1899: no year column), level id (-1:
        none), n, fen sum (float, exact below 2**53); with ``keep_cases`` also ``case_cell`` (the
        cell of every kept case) and ``case_fen``."""
        self._merge()
        code, n, s = self._cells[0] if self._cells else (np.zeros(0, np.int64),) * 3
        rest = code // _LV
        out = {"code": code, "lvl": (code % _LV - 1).astype(np.int32), "year": (rest % _YR + 1899).astype(np.int32),
               "px": ((rest // _YR) % _ID - 1).astype(np.int32), "pdx4": (rest // _YR // _ID).astype(np.int32),
               "n": np.asarray(n, np.int64), "fen": np.asarray(s, np.float64)}
        del rest
        if self.keep_cases:
            case_code = np.concatenate([c for c, _ in self._cases]) if self._cases else np.zeros(0, np.int64)
            out["case_cell"] = np.searchsorted(code, case_code)
            out["case_fen"] = np.concatenate([f for _, f in self._cases]) if self._cases else np.zeros(0, np.int64)
            self._cases = []
        return out

"""Case edits (病案首页 / 结算清单 checks a coder can fix): table-driven code checks from
``rules/audit/edits.toml``, duplicate codes, and the secondary diagnosis that alone lifts a case
into its CC/MCC split (found by regrouping the case without it).

Everything is vectorised over an Arrow batch: each code test is evaluated once per distinct code
of the batch's dictionary and spread to the cases through the dictionary indices; the regroup of
AE95 is one grouper call over every (case, candidate diagnosis) pair of the batch. Edits never
change the group: they are findings reported beside it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc
from grouper.rulesets import rules_dirs

__all__ = ["BUILTIN_NAMES", "Edit", "EditSet", "FINDING_SCHEMA", "SEVERITIES", "load_edits", "run_edits"]

SEVERITIES = ("error", "warning", "info")
SCOPES = ("pdx", "sdx", "dx", "px")
#: One row per finding: the input row (0-based, over all inputs), case id, hospital, the edit or
#: screen code, its severity, the code (or screen) it names, a score and the Chinese message.
FINDING_SCHEMA = pa.schema([("row", pa.int64()), ("case_id", pa.string()), ("hospital", pa.string()),
                            ("code", pa.string()),
                            ("severity", pa.string()), ("item", pa.string()), ("score", pa.float64()),
                            ("message", pa.string())])
DUPLICATE_DX, DUPLICATE_PX, ONLY_CC = "AE90", "AE91", "AE95"
BUILTIN_NAMES = {DUPLICATE_DX: "诊断重复填写", DUPLICATE_PX: "手术操作重复填写",
                 ONLY_CC: "唯一使病例进入 CC/MCC 细分组的次要诊断（需核实病历记录）"}


@dataclass(frozen=True)
class Edit:
    code: str
    severity: str
    scope: str
    message: str
    ranges: tuple[tuple[str, str], ...] = ()
    pattern: str | None = None
    sex: int | None = None
    age_min: float | None = None
    age_max: float | None = None

    def matches(self, code: str) -> bool:
        """Whether one code falls in the edit's ranges / pattern (the demographic test is apart)."""
        width = 2 if self.scope == "px" else 3
        head = code[:width].upper()
        hit_range = any(lo <= head <= hi for lo, hi in self.ranges) if self.ranges else True
        hit_pattern = re.fullmatch(self.pattern, code) is not None if self.pattern else True
        return hit_range and hit_pattern


@dataclass(frozen=True)
class EditSet:
    version: str
    edits: tuple[Edit, ...]
    path: str
    #: per scope, code -> bits of the edits it matches (filled as codes are met; not compared)
    cache: dict = field(default_factory=dict, compare=False, repr=False)


def _fail(path, key: str, problem: str):
    raise ValueError(f"{path}: {key}: {problem}")


def parse_edits(doc: dict, path: str = "<edits>") -> EditSet:
    """An EditSet from parsed TOML; a bad or unknown key is a ValueError naming file and key."""
    known = {"code", "severity", "scope", "message", "ranges", "pattern", "sex", "age_min", "age_max"}
    edits, seen = [], set()
    for extra in set(doc) - {"version", "edit"}:
        _fail(path, extra, "unknown key")
    for i, e in enumerate(doc.get("edit", [])):
        key = f"edit[{i}]"
        if not isinstance(e, dict):
            _fail(path, key, "must be a table")
        for extra in set(e) - known:
            _fail(path, f"{key}.{extra}", "unknown key")
        code = e.get("code")
        if not isinstance(code, str) or not code or code in seen:
            _fail(path, f"{key}.code", "missing, not text or repeated")
        seen.add(code)
        if e.get("severity") not in SEVERITIES:
            _fail(path, f"{key}.severity", f"must be one of {', '.join(SEVERITIES)}")
        if e.get("scope") not in SCOPES:
            _fail(path, f"{key}.scope", f"must be one of {', '.join(SCOPES)}")
        if not isinstance(e.get("message"), str) or "{code}" not in e["message"]:
            _fail(path, f"{key}.message", "must be text naming {code}")
        ranges = []
        for r in e.get("ranges", []):
            lo, sep, hi = str(r).partition("-")
            if not sep or not lo or lo > hi:
                _fail(path, f"{key}.ranges", f"{r!r} is not a range LO-HI")
            ranges.append((lo.upper(), hi.upper()))
        pattern = e.get("pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                _fail(path, f"{key}.pattern", f"not a regular expression ({exc})")
        if not ranges and pattern is None:
            _fail(path, key, "needs ranges or a pattern")
        sex = e.get("sex")
        if sex not in (None, 1, 2):
            _fail(path, f"{key}.sex", "must be 1 or 2")
        for a in ("age_min", "age_max"):
            if a in e and (not isinstance(e[a], (int, float)) or isinstance(e[a], bool) or e[a] < 0):
                _fail(path, f"{key}.{a}", "must be a number >= 0")
        edits.append(Edit(code, e["severity"], e["scope"], e["message"], tuple(ranges), pattern, sex,
                          e.get("age_min"), e.get("age_max")))
    return EditSet(str(doc.get("version", "")), tuple(edits), path)


def load_edits(path: str | Path | None = None) -> EditSet:
    """The bundled edit table (``rules/audit/edits.toml``) or the one at ``path``."""
    if path is None:
        found = [d / "audit" / "edits.toml" for d in rules_dirs() if (d / "audit" / "edits.toml").is_file()]
        if not found:
            raise ValueError("no audit/edits.toml in the rules folders")
        path = found[0]
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: unreadable edit table ({exc})") from None
    return parse_edits(doc, str(path))


# ------------------------------------------------------------------ batches
class _Codes:
    """A code list column flattened once: distinct codes, per-element ids, parent rows, positions."""

    def __init__(self, col: pa.Array, memo: dict | None = None):
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = pc.split_pattern(col, "|")
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        flat = pc.list_flatten(col)
        self.parent = pc.list_parent_indices(col).to_numpy().astype(np.int64)
        if not pa.types.is_dictionary(flat.type):
            flat = flat.dictionary_encode() if len(flat) else pa.DictionaryArray.from_arrays(
                pa.array([], pa.int32()), pa.array([], pa.string()))
        self.flat = flat
        self.real = None  # per element: a non-blank code (set with the edit bits)
        memo = memo if memo is not None else {}
        last = memo.get("dictionary")
        if last is not None and last[0].equals(flat.dictionary):  # batches of one file share it
            self.values, self.memo = last[1], last[2]
        else:
            self.values = [None if v is None else v.strip() for v in flat.dictionary.cast(pa.string()).to_pylist()]
            self.memo = {}
            memo["dictionary"] = (flat.dictionary, self.values, self.memo)
        self.ids = flat.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        starts = np.r_[0, np.flatnonzero(np.diff(self.parent)) + 1] if len(self.parent) else np.zeros(0, np.int64)
        first = np.zeros(len(self.parent), np.int64)
        first[starts] = starts
        np.maximum.accumulate(first, out=first)
        self.position = np.arange(len(self.parent)) - first

    def mask(self, test) -> np.ndarray:
        """Per element: ``test(code)`` evaluated once per distinct code (nulls and blanks False)."""
        per = np.array([bool(v) and test(v) for v in self.values] + [False], bool)
        return per[self.ids]

    def bits(self, edits: tuple[Edit, ...], cache: dict) -> np.ndarray:
        """Per element: bit i set when the code matches ``edits[i]``; bit 62 for a real (non-blank)
        code. Each code is tested once per run (``cache``), each batch costs a lookup per distinct code."""
        def of(v):
            b = cache.get(v)
            if b is None:
                b = cache[v] = sum(1 << i for i, e in enumerate(edits) if e.matches(v)) | (1 << 62)
            return b
        per = self.memo.get("bits")
        if per is None:
            per = self.memo["bits"] = np.array([of(v) if v else 0 for v in self.values] + [0], np.int64)
        return per[self.ids]


def _num(batch: pa.RecordBatch, name: str, n: int) -> np.ndarray:
    if name not in batch.schema.names:
        return np.full(n, np.nan)
    return pc.cast(batch.column(name), pa.float64(), safe=False).to_numpy(zero_copy_only=False)


def _findings(rows: np.ndarray, ids: tuple, code: str, severity: str, items: list,
              messages: list, score: float = 1.0, row_offset: int = 0) -> pa.Table:
    case_id, hospital = ids
    sel = pa.array(rows, pa.int64())
    return pa.table({"row": pa.array(rows + row_offset, pa.int64()), "case_id": case_id.take(sel).cast(pa.string()),
                     "hospital": hospital.take(sel),
                     "code": pa.repeat(pa.scalar(code), len(rows)),
                     "severity": pa.repeat(pa.scalar(severity), len(rows)),
                     "item": pa.array(items, pa.string()), "score": pa.array(np.full(len(rows), score)),
                     "message": pa.array(messages, pa.string())}, schema=FINDING_SCHEMA)


def _from_distinct(codes: _Codes, hit: np.ndarray, fmt) -> tuple[np.ndarray, list, list]:
    """Rows, codes and messages of the hit elements, each message formatted once per distinct code."""
    idx = np.flatnonzero(hit)
    ids = codes.ids[idx]
    uniq, inv = np.unique(ids, return_inverse=True)
    item = [codes.values[i] for i in uniq]
    take = pa.array(inv.astype(np.int64))
    return (codes.parent[idx], pa.array(item, pa.string()).take(take),
            pa.array([fmt(c) for c in item], pa.string()).take(take))


def run_edits(batch: pa.RecordBatch, result: pa.RecordBatch | None, edits: EditSet, ruleset, *,
              grouper=None, row_offset: int = 0, hospital_column: str = "hospital_id") -> pa.Table:
    """The findings of every edit on ``batch`` (cases with ``dx``, ``px``, ``sex``, ``age``), one row
    per finding; ``result`` (the grouper's output for the batch) and ``grouper`` enable AE95."""
    n = batch.num_rows
    names = batch.schema.names
    case_id = batch.column("case_id") if "case_id" in names else pa.array(np.arange(n) + row_offset)
    case_id = case_id.combine_chunks() if isinstance(case_id, pa.ChunkedArray) else case_id
    hospital = batch.column(hospital_column).cast(pa.string()) if hospital_column in names else \
        pa.nulls(n, pa.string())
    ids = (case_id, hospital.combine_chunks() if isinstance(hospital, pa.ChunkedArray) else hospital)
    sex, age = _num(batch, "sex", n), _num(batch, "age", n)
    dx = _Codes(batch.column("dx"), edits.cache.setdefault("dx-dictionary", {}))
    px = _Codes(batch.column("px"), edits.cache.setdefault("px-dictionary", {})) if "px" in names else None
    out = []
    for codes, scope_px in ((dx, False), (px, True)):
        if codes is None or not len(codes.ids):
            continue
        own = tuple(e for e in edits.edits if (e.scope == "px") == scope_px)
        cache = edits.cache.setdefault("px" if scope_px else "dx", {})
        bits = codes.bits(own, cache)
        codes.real = (bits & (1 << 62)) != 0
        for i, e in enumerate(own):
            idx = np.flatnonzero(bits & (1 << i))  # sparse: the demographic tests run on the hits only
            if e.scope == "pdx":
                idx = idx[codes.position[idx] == 0]
            elif e.scope == "sdx":
                idx = idx[codes.position[idx] > 0]
            rows = codes.parent[idx]
            keep = np.ones(len(idx), bool)
            if e.sex is not None:
                keep &= sex[rows] == e.sex
            if e.age_min is not None:
                keep &= age[rows] >= e.age_min
            if e.age_max is not None:
                keep &= age[rows] < e.age_max
            idx = idx[keep]
            if len(idx):
                hit = np.zeros(len(codes.ids), bool)
                hit[idx] = True
                names_of = ruleset.px_names if scope_px else ruleset.dx_names
                r, item, msg = _from_distinct(codes, hit, lambda c, e=e, nm=names_of: e.message.format(
                    code=c, name=nm.get(c, "")).replace("  ", " ").strip())
                out.append(_findings(r, ids, e.code, e.severity, item, msg, row_offset=row_offset))
    for codes, code, what in ((dx, DUPLICATE_DX, "诊断"), (px, DUPLICATE_PX, "手术操作")):
        if codes is None or not len(codes.ids):
            continue
        key = codes.parent * (len(codes.values) + 2) + codes.ids + 1  # one int64 key sorts faster than lexsort
        order = np.argsort(key, kind="stable")
        same = (np.diff(codes.parent[order]) == 0) & (np.diff(codes.ids[order]) == 0) & (codes.ids[order][1:] >= 0)
        hit = np.zeros(len(codes.ids), bool)
        hit[order[1:][same]] = True
        hit &= codes.real
        if hit.any():
            nm = ruleset.dx_names if codes is dx else ruleset.px_names
            r, item, msg = _from_distinct(codes, hit, lambda c, nm=nm, what=what: f"{what} {c} {nm.get(c, '')} 重复填写")
            out.append(_findings(r, ids, code, "warning", item, msg, row_offset=row_offset))
    if result is not None and grouper is not None:
        out.append(_only_cc(batch, result, dx, ruleset, grouper, ids, row_offset))
    return pa.concat_tables(out) if out else FINDING_SCHEMA.empty_table()


def _only_cc(batch, result, dx: _Codes, ruleset, grouper, ids, row_offset: int) -> pa.Table:
    """AE95: every secondary diagnosis of a CC/MCC-split case that is in the scheme's CC table is
    removed in turn (one grouper call for all pairs); where the DRG changes, that code alone
    lifted the case into its split."""
    cc = pc.fill_null(pc.is_in(result.column("cc_level").cast(pa.string()), pa.array(["CC", "MCC"])), False)
    split = pc.fill_null(pc.match_substring_regex(result.column("drg").cast(pa.string()), "[13]$"), False)
    case_ok = pc.and_(cc, split).to_numpy(zero_copy_only=False)
    cand = dx.mask(lambda c: c in ruleset.cc) & (dx.position > 0) & case_ok[dx.parent]
    k = np.flatnonzero(cand)
    if not len(k):
        return FINDING_SCHEMA.empty_table()
    rows = dx.parent[k]
    # the dx list of each pair without its candidate element, built from flat indices
    starts = np.r_[0, np.flatnonzero(np.diff(dx.parent)) + 1]
    row_start = np.full(batch.num_rows + 1, len(dx.parent), np.int64)
    row_start[dx.parent[starts]] = starts
    row_len = np.bincount(dx.parent, minlength=batch.num_rows)
    lens = row_len[rows] - 1
    off = np.zeros(len(k) + 1, np.int64)
    np.cumsum(lens, out=off[1:])
    local = np.arange(off[-1]) - np.repeat(off[:-1], lens)
    pos = np.repeat(dx.position[k], lens)
    flat_idx = np.repeat(row_start[rows], lens) + local + (local >= pos)
    values = dx.flat.take(pa.array(flat_idx))
    sub = batch.take(pa.array(rows))
    cols = [pa.ListArray.from_arrays(pa.array(off.astype(np.int32)), values) if nm == "dx" else sub.column(nm)
            for nm in sub.schema.names]
    again = grouper.group_batch(pa.RecordBatch.from_arrays(cols, names=sub.schema.names), columns=("drg",))
    before = result.column("drg").cast(pa.string()).take(pa.array(rows))
    after = again.column("drg").cast(pa.string())
    changed = pc.fill_null(pc.not_equal(before, after), False).to_numpy(zero_copy_only=False)
    if not changed.any():
        return FINDING_SCHEMA.empty_table()
    sel = pa.array(changed)
    item_ids = dx.ids[k[changed]]
    uniq, inv = np.unique(item_ids, return_inverse=True)
    take = pa.array(inv.astype(np.int64))
    items = pa.array([dx.values[i] for i in uniq], pa.string()).take(take)
    named = pa.array([f"{dx.values[i]} {ruleset.dx_names.get(dx.values[i], '')}" for i in uniq], pa.string()).take(take)
    msgs = pc.binary_join_element_wise("次要诊断 ", named, " 是本病例进入 ", before.filter(sel),
                                       "（伴合并症/并发症）的唯一依据，去掉后分入 ", after.filter(sel),
                                       "；请核实病历中的诊断依据", "")
    return _findings(rows[changed], ids, ONLY_CC, "info", items, msgs, row_offset=row_offset)

"""``Grouper``: the public object that groups cases (compile + Arrow boundary + kernel).

``group`` takes any Arrow-speaking table and returns one output row per input row, in
order; ``group_batches`` streams; ``group_one`` serves single requests without Arrow;
``explain`` replays one case through the reference interpreter for a person to read.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import pyarrow as pa

from grouper._util.columns import NAME_COLUMNS
from grouper._util.version import __version__
from grouper.engine.inputs import (ID_EMPTY, Encoded, Encoder, InputError, SingleCase, check_columns, iter_batches,
                                   parse_int)
from grouper.engine.compiled import CompiledRuleset
from grouper.engine.status import CC_LABELS, REASON_LABELS, STATUS_LABELS, CcLevel, Flag, Reason, Status, describe_reason
from grouper.engine.cached import LazyRuleset, compiled_from_files, compiled_ruleset
from grouper.engine._codes import dictionary_indices, first_appearance
from grouper.rulesets import DEFAULT_RULESET

if TYPE_CHECKING:  # imported where used: a grouping run never explains (start-up, 2-3 ms)
    from grouper.engine.explain import Explanation
    from grouper.engine.reference import Case, ReferenceGrouper
    from grouper.rulesets import Ruleset

__all__ = ["Grouper", "GroupResult", "default_threads", "kept_name", "kept_names", "OUTPUT_COLUMNS",
           "output_columns"]

OUTPUT_COLUMNS = ("case_id", "status", "mdc", "adrg", "drg", "cc_level", "mdc_name", "adrg_name",
                  "drg_name", "flags", "reason_code", "reason")


def output_columns(names: bool = True) -> tuple[str, ...]:
    """The result columns: all of them, or without the name columns (``NAME_COLUMNS``), which a
    columnar output leaves to one join with ``drg groups`` (``names_metadata`` says so)."""
    return OUTPUT_COLUMNS if names else tuple(c for c in OUTPUT_COLUMNS if c not in NAME_COLUMNS)


#: Prefix of a kept input column that has an output column's name (``keep=["status"]`` gives
#: ``input_status``): the grouper's result is never replaced by a column of the input.
KEPT_PREFIX = "input_"


def kept_name(column: str, outputs: Sequence[str] = OUTPUT_COLUMNS) -> str:
    """The output name of kept input ``column``: itself, or ``input_<name>`` for the name of one
    of ``outputs`` (a command's result columns). ``case_id`` is the output's case_id already and
    keeps its name."""
    return KEPT_PREFIX + column if column in outputs and column != "case_id" else column


def kept_names(keep: Sequence[str], columns: Sequence[str],
               outputs: Sequence[str] = OUTPUT_COLUMNS) -> dict[str, str]:
    """input column -> output name for ``keep`` beside the result ``columns`` (named by
    ``kept_name`` against ``outputs``); a clash with another output is an InputError."""
    names: dict[str, str] = {}
    taken = {c: c for c in columns}
    for c in dict.fromkeys(keep):
        if c == "case_id" and "case_id" in columns:
            continue  # the output's case_id is this column
        out = kept_name(c, outputs)
        if out in taken:
            by = "an output column" if taken[out] == out and out in columns else f"kept column {taken[out]!r}"
            raise InputError(f"keep {c!r}: its output name {out!r} is already used by {by}; keep one of them")
        taken[out] = c
        names[c] = out
    return names
_BAD_NUMBER = int(Flag.BAD_NUMBER)
_CC_TEXT = {int(lv): CC_LABELS.get(lv) for lv in CcLevel}  # NOT_COMPUTED: None
_MIN_SLICE = 4096  # cases per kernel thread; smaller batches are grouped by one thread
_RESULTS_KEPT = 65536  # distinct group_one outcomes kept per grouper (then the cache starts over)


def _is_ruleset(obj) -> bool:
    """Whether ``obj`` is a loaded Ruleset: never, while the data model is not even imported (a
    grouper made from a name or folder does not import it: start-up)."""
    model = sys.modules.get("grouper.rulesets.model")
    return model is not None and isinstance(obj, model.Ruleset)


def default_threads() -> int:
    """CPUs this process may run on (cgroup/affinity aware), the kernel's default."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        n = os.cpu_count() or 1
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        n = min(n, int(env))
    return max(1, n)


@dataclass(frozen=True)
class GroupResult:
    """The outcome of one case, as ``group_one`` returns it."""

    status: str
    mdc: str
    adrg: str
    drg: str
    cc_level: str | None
    flags: int
    mdc_name: str = ""
    adrg_name: str = ""
    drg_name: str = ""
    reason: str = ""  # the reason's text, then the flags' messages ('' when grouped cleanly)
    reason_code: str | None = None  # where grouping stopped (Reason label), None when grouped
    payment: Any = None  # the quoter's answer (``grouper.payment.drg.Quote``) when one was given

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        if self.payment is None:
            del out["payment"]
        else:
            out["payment"] = self.payment.as_dict()
        return out


class Grouper:
    """Groups cases under one ruleset. Thread-safe; picklable (ships compiled arrays)."""

    def __init__(self, ruleset: Ruleset | str | os.PathLike = DEFAULT_RULESET, n_threads: int | None = None):
        if _is_ruleset(ruleset):
            self.ruleset, compiled = ruleset, compiled_ruleset(ruleset)
        else:  # by name or folder: the files key the cache, so a hit parses no table
            compiled, self.ruleset = compiled_from_files(ruleset)
        self._setup(compiled, n_threads)

    def _setup(self, compiled: CompiledRuleset, n_threads: int | None) -> None:
        self.compiled = compiled
        self.n_threads = n_threads or default_threads()
        self._program = compiled.program()
        self.encoder = Encoder(compiled.dx_codes, compiled.px_codes, compiled.values, compiled.input_fields)
        # output columns are dictionary-encoded: result index -> (unique values, their position)
        self._tables = {k: _dictionary(getattr(compiled, k)) for k in (
            "mdc_codes", "mdc_names", "adrg_codes", "adrg_names", "drg_codes", "drg_names")}
        self._status = _dictionary(STATUS_LABELS)
        self._reason_codes = _dictionary([lb or "" for lb in REASON_LABELS])
        self._cc = _dictionary([CC_LABELS[CcLevel.NONE], CC_LABELS[CcLevel.CC], CC_LABELS[CcLevel.MCC]])
        self._reference: ReferenceGrouper | None = None
        self._one = SingleCase(self.encoder)
        self._results: dict[tuple, GroupResult] = {}  # group_one: outcome indices -> its result
        self._pool: ThreadPoolExecutor | None = None  # kernel threads beyond the caller's
        self._pool_key = (0, 0)  # (its size, the process that made it: a fork child needs its own)
        self._pool_lock = threading.Lock()
        self.metadata = {
            b"drg.ruleset": compiled.name.encode(),
            b"drg.ruleset_version": compiled.version.encode(),
            b"drg.ruleset_fingerprint": compiled.fingerprint.encode(),
            b"drg.grouper_version": __version__.encode(),
        }
        #: schema metadata of an output without the name columns: where the names are
        self.names_metadata = {b"drg.names": f"drg groups -r {compiled.name}".encode()}

    def __reduce__(self):
        return (_restore, (self.compiled, self.ruleset.path, self.n_threads))

    def __repr__(self) -> str:
        return f"Grouper({self.compiled.name!r}, fingerprint={self.compiled.fingerprint[:12]}, n_threads={self.n_threads})"

    # ------------------------------------------------------------------ batches
    def group(self, data: Any, *, n_threads: int | None = None, keep: Sequence[str] | bool = ()) -> pa.Table:
        """Group every case of ``data``; one output row per input row, in input order.

        ``keep`` names input columns to pass through (``True`` keeps them all)."""
        batches = list(self.group_batches(data, n_threads=n_threads, keep=keep))
        return pa.Table.from_batches(batches, schema=batches[0].schema if batches else self.output_schema())

    def output_schema(self) -> pa.Schema:
        """Schema of an output with no pass-through columns (case_id typed as text)."""
        text = pa.dictionary(pa.int32(), pa.string())
        types = {"case_id": pa.string(), "flags": pa.int32()}
        return pa.schema([(c, types.get(c, text)) for c in OUTPUT_COLUMNS], metadata=self.metadata)

    def group_batches(self, data: Any, *, n_threads: int | None = None, keep: Sequence[str] | bool = (),
                      batch_size: int | None = None) -> Iterator[pa.RecordBatch]:
        """Stream: one output batch per input batch, so memory stays bounded."""
        offset = 0
        for batch in iter_batches(data, batch_size):
            yield self.group_batch(batch, n_threads=n_threads, keep=keep, row_offset=offset)
            offset += batch.num_rows

    def group_batch(self, batch: pa.RecordBatch, *, n_threads: int | None = None,
                    keep: Sequence[str] | bool = (), row_offset: int = 0, encoded=None,
                    columns: Sequence[str] = OUTPUT_COLUMNS) -> pa.RecordBatch:
        """Group one RecordBatch: the pure function distributed engines call. ``encoded`` is the
        batch already in this scheme's ids (``Encoder.encode``/``translate``), when at hand;
        ``columns`` picks output columns (building fewer is cheaper). A kept column with an output
        column's name is written as ``input_<name>`` (``keep=True`` leaves those out)."""
        if keep is True:
            keep = [c for c in batch.schema.names if c not in OUTPUT_COLUMNS]
        kept = kept_names(keep, columns)
        check_columns(batch.schema.names, [*keep], ["case_id"])
        if encoded is not None:
            self._check_encoded(encoded, batch.num_rows)
        enc = encoded if encoded is not None else self.encoder.encode(batch)
        n = enc.n
        status = np.empty(n, np.int8)
        mdc = np.empty(n, np.int32)
        adrg = np.empty(n, np.int32)
        drg = np.empty(n, np.int32)
        cc = np.empty(n, np.int8)
        flags = np.empty(n, np.int32)
        reason = np.empty(n, np.uint8)
        self._kernel(enc, (status, mdc, adrg, drg, cc, flags, reason), n_threads or self.n_threads)
        if enc.bad_number.any():  # rare: no per-row pass when no number was bad
            flags[enc.bad_number] |= _BAD_NUMBER
        if "case_id" in batch.schema.names:
            case_id = batch.column("case_id")
        else:
            case_id = _numbers(np.arange(row_offset, row_offset + n, dtype=np.int64))
        t = self._tables
        build = {
            "case_id": lambda: case_id,
            "status": lambda: _encode(self._status, status),
            "mdc": lambda: _encode(t["mdc_codes"], mdc),
            "adrg": lambda: _encode(t["adrg_codes"], adrg),
            "drg": lambda: _encode(t["drg_codes"], drg),
            "cc_level": lambda: _encode(self._cc, cc),  # negative: not computed
            "mdc_name": lambda: _encode(t["mdc_names"], mdc),
            "adrg_name": lambda: _encode(t["adrg_names"], adrg),
            "drg_name": lambda: _encode(t["drg_names"], drg),
            "flags": lambda: _numbers(flags),
            "reason_code": lambda: _encode(self._reason_codes, reason, null=Reason.NONE),
            "reason": lambda: _reasons(flags, reason),
        }
        cols = {c: build[c]() for c in columns}
        for c, out in kept.items():
            cols[out] = batch.column(c)
        return pa.RecordBatch.from_pydict(cols).replace_schema_metadata(self.metadata)

    def _check_encoded(self, enc: Encoded, n: int) -> None:
        """A caller's ``encoded`` batch is safe for the kernel: shapes agree with the batch and
        every code id is a position in this scheme's code lists (or unknown/empty). The kernel
        checks offsets itself; ids it uses as indices, so a stray one would read out of bounds."""
        from grouper.engine._kernel import CONSTANTS

        if enc.n != n:
            raise ValueError(f"encoded batch has {enc.n} rows, the record batch {n}")
        fields = np.asarray(enc.fields)
        if fields.dtype != np.int32 or fields.shape != (CONSTANTS["N_FIELDS"], n):
            raise ValueError(f"encoded fields must be int32[{CONSTANTS['N_FIELDS']}, {n}], "
                             f"got {fields.dtype}{list(fields.shape)}")
        if np.shape(enc.bad_number) != (n,):
            raise ValueError(f"encoded bad_number must have {n} entries")
        for what, ids, size in (("dx", enc.dx_ids, len(self.compiled.dx_codes)),
                                ("px", enc.px_ids, len(self.compiled.px_codes))):
            ids = np.asarray(ids)
            if ids.dtype != np.int32 or ids.ndim != 1:
                raise ValueError(f"encoded {what} ids must be a 1-d int32 array, got {ids.dtype}{list(ids.shape)}")
            if ids.size and (ids.min() < ID_EMPTY or ids.max() >= size):
                raise ValueError(f"encoded {what} ids must lie in {ID_EMPTY}..{size - 1} (this scheme's "
                                 f"{size} codes), got {ids.min()}..{ids.max()}")

    def _kernel(self, enc, out: tuple[np.ndarray, ...], n_threads: int) -> None:
        """The kernel over one batch; with several threads each takes a contiguous slice (the
        results are the same for any split). The kernel releases the GIL and runs one thread;
        the helpers are pool threads that sleep when idle (OpenMP's workers, which the kernel
        once used, spin for milliseconds after every parallel region, and in the read-group-write
        pipeline that spinning takes the cores the reader and writer need)."""
        n = enc.n
        k = max(1, min(n_threads, n // _MIN_SLICE))

        def part(a: int, b: int) -> None:
            fields = enc.fields if k == 1 else np.ascontiguousarray(enc.fields[:, a:b])
            self._program.group_batch(fields, enc.dx_off[a:b + 1], enc.dx_ids, enc.px_off[a:b + 1], enc.px_ids,
                                      *(o[a:b] for o in out))

        if k == 1:
            part(0, n)
            return
        bounds = [n * j // k for j in range(k + 1)]
        pool = self._kernel_pool(k - 1)
        futures = [pool.submit(part, a, b) for a, b in pairwise(bounds[1:])]
        try:
            part(bounds[0], bounds[1])  # the calling thread takes the first slice
        finally:
            for f in futures:  # all slices finish before the outputs are read (or an error raised)
                f.result()

    def _kernel_pool(self, workers: int) -> ThreadPoolExecutor:
        with self._pool_lock:
            size, pid = self._pool_key
            if size < workers or pid != os.getpid():
                if self._pool is not None and pid == os.getpid():
                    self._pool.shutdown(wait=False)
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="drg-kernel")
                self._pool_key = (workers, os.getpid())
            return self._pool

    # ------------------------------------------------------------------ one case
    def group_one(self, sex=None, age=None, age_days=None, birth_weight=None,
                  dx: Sequence[str] | str = (), px: Sequence[str] | str = (), los=None, discharge=None,
                  dept=None, *, quote=None, cost=None, patient_share=0.0) -> GroupResult:
        """Group a single case given as Python values; no Arrow round trip (low latency).

        ``quote``: an object with ``quote(result, cost=, los=, patient_share=, discharge=)``
        (``grouper.payment.drg.CaseQuoter(weights, pack)``); with it and ``cost`` (yuan) the
        result's ``payment`` holds the case's RW, case type and payment (fen). The engine does
        not import the payment layer: the quoter is passed in."""
        # one compiled call reads the values, maps the codes and groups (``Program.group_values``);
        # results are immutable, so one object per distinct outcome is built and then reused
        out = self._program.group_values(sex, age, age_days, birth_weight, los, discharge, dept, dx, px, self._one)
        result = self._results.get(out)
        if result is None:
            st, m, a, d, cc, fl, why = out
            c = self.compiled
            result = GroupResult(STATUS_LABELS[st], c.mdc_codes[m], c.adrg_codes[a], c.drg_codes[d],
                                 _CC_TEXT[cc], fl, c.mdc_names[m], c.adrg_names[a], c.drg_names[d],
                                 describe_reason(why, fl), REASON_LABELS[why])
            if len(self._results) >= _RESULTS_KEPT:
                self._results.clear()
            self._results[out] = result
        return self._quoted(result, quote, cost, los, patient_share, discharge)

    @staticmethod
    def _quoted(result: GroupResult, quote, cost, los, patient_share, discharge) -> GroupResult:
        if quote is None:
            return result
        if cost is None:
            raise InputError("a payment quote needs the case's total cost (cost=...)")
        los_v, _ = parse_int(los)
        q = quote.quote(result, cost=float(cost), los=los_v, patient_share=float(patient_share or 0.0),
                        discharge=None if discharge is None else str(discharge))
        return GroupResult(**{**result.__dict__, "payment": q})

    def explain(self, case: Case | dict | None = None, *, quote=None, cost=None, patient_share=0.0,
                **fields) -> Explanation:
        """Why a case lands where it does: the reference interpreter's decision path, with names
        (``grouper.engine.explain``); with ``quote`` and ``cost`` also its payment (as ``group_one``).

        The kernel's result is attached and must agree with the reference; a disagreement is
        a bug and raises instead of explaining the wrong thing."""
        from grouper.engine.explain import Explanation, build_steps, code_warnings
        from grouper.engine.reference import Case

        if case is None:
            case = fields
        if isinstance(case, dict):
            cost = case.get("cost", cost)
            patient_share = case.get("patient_share", patient_share)
        if isinstance(case, dict):
            _check_case_types(case)
            raw = {k: case.get(k) for k in ("sex", "age", "age_days", "birth_weight", "los", "discharge", "dept")}
            case = Case.from_raw(dx=case.get("dx") or (), px=case.get("px") or (), **raw)
        ref = self.reference.group(case, trace=True)
        result = self.group_one(case.sex, case.age, case.age_days, case.birth_weight, case.dx, case.px,
                                case.los, case.discharge, case.dept)
        if case.bad_number:
            result = GroupResult(**{**result.as_dict(), "flags": result.flags | Flag.BAD_NUMBER,
                                    "reason": describe_reason(ref.reason, result.flags | Flag.BAD_NUMBER)})
        if ((Status(ref.status).label, ref.mdc, ref.adrg, ref.drg, ref.reason.label)
                != (result.status, result.mdc, result.adrg, result.drg, result.reason_code)):
            raise AssertionError(f"kernel and reference disagree on this case: {result} vs {ref}")
        rs = self.ruleset
        result = self._quoted(result, quote, cost, case.los, patient_share, case.discharge)
        return Explanation(result, build_steps(ref.trace, case, rs), f"{rs.name} ({rs.version})",
                           code_warnings(case, rs), result.payment)

    @property
    def reference(self) -> ReferenceGrouper:
        if self._reference is None:
            from grouper.engine.reference import ReferenceGrouper

            self._reference = ReferenceGrouper(self.ruleset)
        return self._reference


def _check_case_types(case: dict) -> None:
    """InputError naming the field when a case given as a mapping (JSON) has a value of the
    wrong kind: codes must be text (a list, principal first, or '|'-separated), the other
    fields a number or text. A wrong *value* (age "abc") is data, flagged as usual."""
    def kind(v) -> str:  # as the JSON a person typed says it
        name = {bool: "boolean", int: "number", float: "number", dict: "object", list: "list", tuple: "list"}
        try:
            text = json.dumps(v, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(v)
        return f"{name.get(type(v), type(v).__name__)} {text}"

    for k in ("dx", "px"):
        v = case.get(k)
        if v is None or isinstance(v, str):
            continue
        bad = (v,) if not isinstance(v, (list, tuple)) else [c for c in v if c is not None and not isinstance(c, str)]
        if bad:
            raise InputError(f"case field {k!r}: expected a list of code strings (principal first) or a "
                             f"'|'-separated string, got {kind(bad[0])}"
                             + (" in the list" if isinstance(v, (list, tuple)) else ""))
    for k in ("sex", "age", "age_days", "birth_weight", "los", "discharge", "dept"):
        v = case.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, str))):
            raise InputError(f"case field {k!r}: expected a number or text, got {kind(v)}")


def _dictionary(values: Sequence[str]) -> tuple[pa.Array, np.ndarray]:
    """(unique values, position of each input value among them): a dictionary for outputs."""
    uniq, pos = np.unique(np.array(values, dtype=object), return_inverse=True)
    return pa.array(list(uniq), pa.string()), pos.astype(np.int32)


_TEXT_DICT = pa.dictionary(pa.int32(), pa.string())


def _encode(table: tuple[pa.Array, np.ndarray], idx: np.ndarray, null: int = -1) -> pa.Array:
    """Result indices -> a dictionary-encoded string column (no strings copied per row), null
    where an index is negative or equals ``null``. One compiled pass gives the indices and the
    validity bitmap (``_codes.dictionary_indices``)."""
    values, pos = table
    indices, validity, nulls = dictionary_indices(pos, idx, null)
    return _dictionary_array(len(idx), indices, validity, nulls, values)


def _numbers(values: np.ndarray) -> pa.Array:
    """An int32/int64 column without nulls on the NumPy array's own memory (``pa.array`` would
    import numpy.ma to look for a mask)."""
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def _dictionary_array(n: int, indices: np.ndarray, validity: np.ndarray | None, nulls: int,
                      values: pa.Array) -> pa.DictionaryArray:
    """A dictionary column from its int32 indices and packed validity bits, as they are (they
    are in range by construction: no bounds pass, no NumPy mask to convert)."""
    buffers = [None if validity is None else pa.py_buffer(validity), pa.py_buffer(indices)]
    return pa.DictionaryArray.from_buffers(_TEXT_DICT, n, buffers, values, null_count=nulls)


def _reasons(flags: np.ndarray, reason: np.ndarray) -> pa.Array:
    """Each row's reason text and flag messages, built once per distinct (reason, flags) pair:
    the pairs in order of first appearance (the encoding Arrow's ``dictionary_encode`` gives),
    found by a compiled hash (``_codes.first_appearance``), null where both are 0."""
    distinct, indices, validity, nulls = first_appearance(np.ascontiguousarray(flags, np.int32),
                                                          np.ascontiguousarray(reason, np.uint8))
    texts = pa.array([describe_reason(k >> 32, k & 0xFFFFFFFF) for k in distinct], pa.string())
    return _dictionary_array(len(indices), indices, validity, nulls, texts)


def _restore(compiled: CompiledRuleset, path: str, n_threads: int) -> Grouper:
    g = Grouper.__new__(Grouper)
    g._setup(compiled, n_threads)
    g.ruleset = LazyRuleset(path, compiled.fingerprint)  # loaded only if explain() is called
    return g


_ENGINE_GROUPERS: dict[str, Grouper] = {}


def group_batch(batch: pa.RecordBatch, grouper: Grouper | Ruleset | str | os.PathLike, *, n_threads: int = 1,
                dictionary: bool = True, **kw) -> pa.RecordBatch:
    """Group one RecordBatch: the pure per-batch function for other engines (Spark
    ``mapInArrow``, Ray ``map_batches``, Dask). One output row per input row, in order.

    One kernel thread by default: engines already run one task per core, and more would
    oversubscribe. ``grouper`` may be a ruleset name or path, compiled once per process (an
    executor then never receives the compiled arrays at all). ``dictionary=False`` decodes the
    dictionary-encoded text columns, for engines whose schemas have no dictionary type (Spark).
    Other keywords (``keep``, ``columns``, ``row_offset``) are ``Grouper.group_batch``'s."""
    if not isinstance(grouper, Grouper):
        key = grouper.fingerprint if _is_ruleset(grouper) else os.fspath(grouper)
        if key not in _ENGINE_GROUPERS:
            _ENGINE_GROUPERS[key] = Grouper(grouper)
        grouper = _ENGINE_GROUPERS[key]
    out = grouper.group_batch(batch, n_threads=n_threads, **kw)
    if dictionary:
        return out
    cols = [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in out.columns]
    return pa.RecordBatch.from_arrays(cols, names=out.schema.names).replace_schema_metadata(out.schema.metadata)

"""Grouping what a request sent: JSON cases (checked against the bounds, grouped one by one
with ``Grouper.group_one``, explained on request, priced when configured) and Arrow streams (the
batch path: ``Grouper.group`` on the whole table). Bad input raises ``RequestError`` with the
HTTP status and a one-line message; nothing here answers a 500 for anything a client sent."""

from __future__ import annotations

import json
import math
import re

import pyarrow as pa
from pydantic import TypeAdapter, ValidationError

from grouper.engine import STATUS_NAMES_ZH, CorruptInputError, Flag, Grouper, InputError, describe_flags
from grouper.serve.pricing import case_payment
from grouper.serve.schemas import CaseIn
from grouper.serve.service import Service

__all__ = ["ENCODER", "RequestError", "group_arrow", "group_json", "one_line", "parse_json", "shown"]

_CASE = TypeAdapter(CaseIn)
_FIELDS = ("sex", "age", "age_days", "birth_weight", "los", "discharge", "dept")
_SCALAR, _CODES, _MONEY, _LABEL = range(4)  # the kinds of CaseIn's fields, for _plain_case
_KINDS = {"case_id": _SCALAR, "sex": _SCALAR, "age": _SCALAR, "age_days": _SCALAR, "birth_weight": _SCALAR,
          "dx": _CODES, "px": _CODES, "los": _SCALAR, "discharge": _SCALAR, "dept": _SCALAR, "cost": _MONEY,
          "patient_share": _MONEY, "hospital_level": _LABEL, "insurance_type": _LABEL}
_SURROGATE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_REASONS = [(int(f), f.name, describe_flags(f)) for f in Flag if f.value and (f.value & (f.value - 1)) == 0]


_PLAIN = re.compile(r"[\w.\-]+")  # shown as it is; anything else is quoted
MAX_SHOWN = 40  # characters of a client's text echoed in a message
MAX_MESSAGE = 1000


def shown(text: object, limit: int = MAX_SHOWN, quote: bool = False) -> str:
    """A client's text (a field or ruleset name, a content type) as an error message may echo
    it: plain names as they are (unless ``quote``), anything else quoted and escaped like
    Python's repr (no line break or control character gets through), at most ``limit``
    characters of it."""
    text = str(text)
    if len(text) <= limit and not quote and _PLAIN.fullmatch(text):
        return text
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def _bounded(p):
    """A location part of pydantic's detail (a field name may be any text the client sent)."""
    return p[:MAX_SHOWN] + "..." if isinstance(p, str) and len(p) > MAX_SHOWN else p


def one_line(message: str) -> str:
    """The last guard of every error message: one line of printable text, bounded in length."""
    if not message.isprintable():
        message = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "..."


class RequestError(Exception):
    """A client error: HTTP ``status`` and a one-line message (plus pydantic's ``detail`` when given)."""

    def __init__(self, status: int, message: str, detail: list | None = None):
        message = one_line(message)
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"{text} is out of range for a number")
    return v


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)  # json.loads(s, **these), built once
ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))  # as Starlette's JSONResponse


def parse_json(body: bytes) -> object:
    """The JSON document of a body (strict: no NaN/Infinity, no number that overflows), or a 400."""
    try:
        text = body.decode("utf-8")
        if text.startswith("\ufeff"):  # as json.loads says it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        return _DECODER.decode(text)
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"the body is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise RequestError(400, f"the body is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:
        raise RequestError(400, f"the body is not valid JSON: {exc}") from None


def _codes(v) -> list:
    if isinstance(v, str):
        return v.split("|") if v.strip() else []
    return [c for c in v if c is not None]


def _plain_case(item: object) -> dict | None:
    """The case as ``CaseIn.model_validate(item).model_dump()`` gives it, for the plain shapes a
    hospital system sends (every value exactly str, int, float or null, codes as short strings,
    money in bounds), without building a model; None for anything else, which pydantic then
    decides and words the errors of. The tests check that both agree wherever this answers."""
    if type(item) is not dict:
        return None
    out = {k: None for k in _KINDS}
    for k, v in item.items():
        kind = _KINDS.get(k)
        t = type(v)
        if kind is None:
            return None
        if kind == _SCALAR:
            if not (v is None or t is int or t is float or (t is str and len(v) <= 64)):
                return None
            out[k] = v
        elif kind == _CODES:
            if t is str and len(v) <= 4096:
                out[k] = v
            elif t is list and all(c is None or (type(c) is str and len(c) <= 32) for c in v):
                out[k] = list(v)
            else:
                return None
        elif kind == _MONEY:
            if not (v is None or ((t is int or t is float) and 0 <= v <= 1e9)):
                return None
            out[k] = None if v is None else float(v)
        elif v is None or (t is str and len(v) <= 32):  # _LABEL
            out[k] = v
        else:
            return None
    for k in ("dx", "px"):
        if out[k] is None:
            out[k] = []
    return out


def _validate(doc: object, max_cases: int, max_codes: int, plain: bool = True) -> tuple[list[dict], bool]:
    """(cases as ``CaseIn.model_dump`` gives them, whether one case was sent as an object) or a 413/422."""
    single = isinstance(doc, dict)
    items = [doc] if single else doc
    if not isinstance(items, list):
        raise RequestError(422, f"expected a case (JSON object) or a list of cases, got {type(doc).__name__}")
    if not items:
        raise RequestError(422, "the list of cases is empty")
    if len(items) > max_cases:
        raise RequestError(413, f"{len(items)} cases in one request; at most {max_cases} "
                                "(send more as an Arrow stream, or in several requests)")
    cases = []
    for i, item in enumerate(items):
        where = "" if single else f"case {i}: "
        c = _plain_case(item) if plain else None
        if c is None:  # anything but the plain shapes: pydantic decides, and words its errors
            try:
                c = _CASE.validate_python(item).model_dump()
            except ValidationError as exc:
                errs = exc.errors(include_url=False, include_context=False, include_input=False)
                raise RequestError(422, where + _message(errs[0]),
                                   [{**e, "loc": ([] if single else [i]) + [_bounded(p) for p in e["loc"]]}
                                    for e in errs]) from None
        for k in ("dx", "px"):
            n = len(_codes(c[k]))
            if n > max_codes:
                raise RequestError(422, f"{where}{k}: {n} codes; at most {max_codes} per case")
        cases.append(c)
    return cases, single


_EXPECTED = {"dx": "a list of code strings (principal first) or one '|'-separated text of at most 4096 characters",
             "px": "a list of code strings (principal first) or one '|'-separated text of at most 4096 characters",
             "cost": "a number from 0 to 1e9 (yuan)", "patient_share": "a number from 0 to 1e9 (yuan)",
             "hospital_level": "text of at most 32 characters", "insurance_type": "text of at most 32 characters"}


def _message(err: dict) -> str:
    """One line for pydantic's first error: the field and what it takes, without the names of
    the union's members pydantic puts in the location."""
    loc = [p for p in err["loc"]]
    field = shown(loc[0]) if loc else "case"
    if err["type"] == "extra_forbidden":
        return f"{field}: not a case field (fields: {', '.join(CaseIn.model_fields)})"
    if not loc:
        return f"case: {err['msg']} (expected a JSON object with the case fields)"
    if field in _EXPECTED:
        where = f"{field}[{loc[1]}]" if field in ("dx", "px") and len(loc) > 2 and isinstance(loc[1], int) else field
        return f"{where}: expected {_EXPECTED[field]}"
    return f"{field}: expected a number or text of at most 64 characters, or null"


def _severity(explanation, g: Grouper, level: str | None) -> dict | None:
    """Which diagnoses set the CC level (the MCC ones for MCC, the CC ones for CC), with names,
    and which were excluded by the principal diagnosis."""
    step = next((s for s in explanation.steps if s["step"] == "severity"), None)
    if step is None:
        return None
    names = g.ruleset.dx_names

    def named(codes):
        return [{"code": c, "name": names.get(c, "")} for c in codes]

    decided = step["mcc"] if level == "MCC" else step["cc"] if level == "CC" else []
    return {"cc_level": step["cc_level"], "decided_by": named(decided), "mcc": named(step["mcc"]),
            "cc": named(step["cc"]), "excluded": named(step["excluded"])}


def _result(svc: Service, name: str, g: Grouper, case: dict, explain: bool) -> dict:
    fields = {k: case[k] for k in _FIELDS}
    dx, px = _codes(case["dx"]), _codes(case["px"])
    try:
        if explain:
            e = g.explain({**fields, "dx": dx, "px": px})
            r = e.result
        else:
            r = g.group_one(dx=dx, px=px, **fields)
    except InputError as exc:
        raise RequestError(422, str(exc)) from None
    flags = int(r.flags)
    out = {"case_id": case["case_id"], "ruleset": name, "status": r.status, "status_name": STATUS_NAMES_ZH[r.status],
           "mdc": r.mdc, "mdc_name": r.mdc_name, "adrg": r.adrg, "adrg_name": r.adrg_name, "drg": r.drg,
           "drg_name": r.drg_name, "cc_level": r.cc_level, "flags": flags,
           "reasons": [{"flag": f, "message": m} for bit, f, m in _REASONS if flags & bit] if flags else []}
    pay = case_payment(out, case, svc.pricing.weights.get(name), svc.pricing.pack)
    if pay is not None:
        out["payment"] = pay
    if explain:
        out["explain"] = {"steps": e.steps, "text": e.text(), "severity": _severity(e, g, r.cc_level)}
    return out


def group_json(svc: Service, name: str, body: bytes, explain: bool) -> object:
    """The answer to a JSON body: one result object for one case, a list for a list."""
    g = svc.grouper(name)
    # a lone surrogate (JSON "\ud800") is text pydantic refuses: such bodies go to pydantic whole
    cases, single = _validate(parse_json(body), svc.config.max_cases, svc.config.max_codes,
                              plain=_SURROGATE.search(body) is None)
    results = [_result(svc, name, g, c, explain) for c in cases]
    return results[0] if single else results


def group_arrow(svc: Service, g: Grouper, body: bytes) -> memoryview:
    """The answer to an Arrow IPC stream body: the grouper's output table as an IPC stream (a
    view of Arrow's buffer, sent without another copy)."""
    try:
        table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError) as exc:
        raise RequestError(400, f"the body is not an Arrow IPC stream: {str(exc).splitlines()[0]}") from None
    if table.num_rows > svc.config.max_arrow_cases:
        raise RequestError(413, f"{table.num_rows} cases in one request; at most {svc.config.max_arrow_cases}")
    try:
        out = g.group(table, n_threads=svc.config.threads)
    except (InputError, CorruptInputError) as exc:
        raise RequestError(422, str(exc)) from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise RequestError(422, f"cannot group this table: {str(exc).splitlines()[0]}") from None
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, out.schema) as w:
        w.write_table(out)
    return memoryview(sink.getvalue())

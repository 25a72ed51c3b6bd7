"""The condition vocabulary of rule tables: one place that says which trees are well formed.

A condition is a JSON tree: ``{"op": "and"|"or", "args": [...]}``, ``{"op": "not", "arg": ...}``,
``{"const": true|false}`` or a predicate ``{"pred": NAME, ...params}``. The loader checks shapes
here, the compiler lowers the same predicates to kernel opcodes, and the reference interpreter
evaluates them directly; a predicate missing from any of the three is caught by the tests that
walk ``PREDICATES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

__all__ = ["PREDICATES", "Predicate", "check_shape", "predicates"]


@dataclass(frozen=True)
class Predicate:
    params: tuple[str, ...]  # required keys besides "pred"
    kind: str = ""  # "dx" or "px" for list predicates: which code universe the list holds
    doc: str = ""
    field: str = ""  # optional input field it reads (los, discharge, dept): the scheme needs that column


def _cmp(field: str, op: str, doc: str) -> Predicate:
    return Predicate(("value",), doc=f"{doc} {op} value", field=field if field in OPTIONAL_FIELDS else "")


#: Input fields that only some schemes read; a scheme that reads one needs its column.
OPTIONAL_FIELDS = ("los", "discharge", "dept")


PREDICATES: dict[str, Predicate] = {
    # diagnoses
    "pdx_in": Predicate(("list",), "dx", "principal (first) diagnosis in list"),
    "any_dx_in": Predicate(("list",), "dx", "any diagnosis, principal included, in list"),
    "sdx_in": Predicate(("list",), "dx", "some secondary diagnosis (positions 2..n) in list"),
    "n_dx_gt": Predicate(("value",), doc="more than value diagnoses in total"),
    "any_dx_prefix": Predicate(("prefix",), doc="some diagnosis of the scheme's dictionary starts with prefix"),
    "trauma_regions_ge": Predicate(("value", "list"), "dx",
                                   "diagnoses found in list span >= value distinct body regions"),
    "has_mcc": Predicate((), doc="some counted diagnosis is an MCC not excluded by the principal"),
    "has_cc": Predicate((), doc="some counted diagnosis is a CC not excluded by the principal"),
    # procedures
    "has_px": Predicate((), doc="at least one procedure"),
    "ppx_in": Predicate(("list",), "px", "principal (first) procedure in list"),
    "any_px_in": Predicate(("list",), "px", "any procedure in list"),
    "spx_in": Predicate(("list",), "px", "some secondary procedure (positions 2..n) in list"),
    "px_label_present": Predicate(("label",), doc="some procedure of the owner's px list carries label"),
    "n_px_gt": Predicate(("value",), doc="more than value procedures in total"),
    "n_px_in_ge": Predicate(("list", "value"), "px",
                            "at least value DISTINCT procedure codes of the case are in list"),
    # demographics (a missing value makes every comparison false)
    "sex_eq": Predicate(("value",), doc="sex equals value (1 male, 2 female)"),
    "age_years_eq": _cmp("age", "==", "age in years"),
    "age_years_lt": _cmp("age", "<", "age in years"),
    "age_years_le": _cmp("age", "<=", "age in years"),
    "age_years_gt": _cmp("age", ">", "age in years"),
    "age_years_ge": _cmp("age", ">=", "age in years"),
    "age_days_known": Predicate((), doc="age in days is present"),
    "age_days_lt": _cmp("age_days", "<", "age in days"),
    "age_days_le": _cmp("age_days", "<=", "age in days"),
    "age_days_gt": _cmp("age_days", ">", "age in days"),
    "age_days_ge": _cmp("age_days", ">=", "age in days"),
    "weight_known": Predicate((), doc="birth weight present and non-zero"),
    "weight_lt": _cmp("weight", "<", "non-zero birth weight (g)"),
    "weight_le": _cmp("weight", "<=", "non-zero birth weight (g)"),
    "weight_gt": _cmp("weight", ">", "non-zero birth weight (g)"),
    "weight_ge": _cmp("weight", ">=", "non-zero birth weight (g)"),
    # local (city) schemes
    "los_eq": _cmp("los", "==", "length of stay (days)"),
    "los_lt": _cmp("los", "<", "length of stay (days)"),
    "los_le": _cmp("los", "<=", "length of stay (days)"),
    "los_gt": _cmp("los", ">", "length of stay (days)"),
    "los_ge": _cmp("los", ">=", "length of stay (days)"),
    "discharge_in": Predicate(("values",), doc="discharge status (离院方式) code is one of values", field="discharge"),
    "dept_in": Predicate(("values",), doc="department code is one of values (exact strings)", field="dept"),
}

#: Numeric comparison predicates: name -> (field, comparator).
COMPARISONS: dict[str, tuple[str, str]] = {
    name: (field, name.rsplit("_", 1)[1])
    for name in PREDICATES
    for field in ("age_years", "age_days", "weight", "los")
    if name.startswith(field + "_") and name.rsplit("_", 1)[1] in ("eq", "lt", "le", "gt", "ge")
}


def check_shape(tree: object, depth: int = 0) -> None:
    """Raise ValueError naming the first malformed node of a condition tree."""
    if depth > 64:
        raise ValueError("condition nested deeper than 64 levels")
    if not isinstance(tree, dict):
        raise ValueError(f"condition must be an object, got {tree!r}")
    if "const" in tree:
        if set(tree) != {"const"} or not isinstance(tree["const"], bool):
            raise ValueError(f"malformed constant {tree!r}")
        return
    if "op" in tree:
        op = tree["op"]
        if op in ("and", "or"):
            args = tree.get("args")
            if set(tree) != {"op", "args"} or not isinstance(args, list) or not args:
                raise ValueError(f"'{op}' needs a non-empty 'args' list: {tree!r}")
            for a in args:
                check_shape(a, depth + 1)
            return
        if op == "not":
            if set(tree) != {"op", "arg"}:
                raise ValueError(f"'not' needs exactly one 'arg': {tree!r}")
            check_shape(tree["arg"], depth + 1)
            return
        raise ValueError(f"unknown operator {op!r}")
    name = tree.get("pred")
    if name not in PREDICATES:
        raise ValueError(f"unknown predicate {name!r}")
    spec = PREDICATES[name]
    extra = set(tree) - {"pred", *spec.params}
    missing = [p for p in spec.params if p not in tree]
    if missing or extra:
        raise ValueError(f"predicate {name} takes {list(spec.params)}, got {sorted(set(tree) - {'pred'})}")
    if "value" in spec.params and (not isinstance(tree["value"], int) or isinstance(tree["value"], bool)):
        raise ValueError(f"predicate {name}: value must be an integer")
    if "value" in spec.params and not -(2**31) < tree["value"] < 2**31:
        raise ValueError(f"predicate {name}: value out of range")
    for key in ("list", "label", "prefix"):
        if key in spec.params and (not isinstance(tree[key], str) or not tree[key]):
            raise ValueError(f"predicate {name}: {key} must be a non-empty string")
    if "values" in spec.params:
        v = tree["values"]
        if not (isinstance(v, list) and v and all(isinstance(x, str) and x.strip() == x and x for x in v)):
            raise ValueError(f"predicate {name}: values must be a non-empty list of trimmed strings")


def predicates(tree: dict) -> Iterator[dict]:
    """Every predicate node of a (well-formed) tree, depth first."""
    if "pred" in tree:
        yield tree
    elif tree.get("op") in ("and", "or"):
        for a in tree["args"]:
            yield from predicates(a)
    elif tree.get("op") == "not":
        yield from predicates(tree["arg"])

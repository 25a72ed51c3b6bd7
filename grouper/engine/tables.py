"""Tables of the compiled ruleset besides the records (``grouper.engine.compile``): per-code rows
kept once per class of codes with equal rows, the summary bits of the list nodes, and the MDC
prefilter by age."""

from __future__ import annotations

import numpy as np


__all__ = ["age_prefilter", "classes", "summary_bits"]


def classes(tables: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rows equal in every table of ``tables`` (same length) share a class: (class id per row,
    uint16, classes numbered in order of first appearance; each table cut to one row per class)."""
    n = len(next(iter(tables.values())))
    key = np.concatenate([np.ascontiguousarray(t).reshape(n, -1).view(np.uint8).reshape(n, -1)
                          for t in tables.values()], axis=1)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    if len(first) > 65535:
        raise ValueError(f"{len(first)} distinct rows of {', '.join(tables)}: more than 65,535 classes")
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(first), np.int64)
    rank[order] = np.arange(len(first))
    rows = first[order]
    return (rank[inverse.reshape(n)].astype(np.uint16),
            {k: np.ascontiguousarray(t[rows]) for k, t in tables.items()})


def summary_bits(nodes: list[tuple[int, int, int, int]], ops: set[int], sets: np.ndarray, n: int) -> np.ndarray:
    """Per code id (``n`` of them), the word of summary bits: bit b for the b-th distinct list (in
    node order, at most 64) that a node with an opcode in ``ops`` tests (its row of ``sets``);
    such nodes get b + 1 in their field ``b``, in place. Lists beyond 64 keep b = 0: the kernel
    loops over the case's codes for them."""
    bit: dict[int, int] = {}
    for i, (op, a, b, c) in enumerate(nodes):
        if op not in ops:
            continue
        if a not in bit and len(bit) < 64:
            bit[a] = len(bit)
        if a in bit:
            nodes[i] = (op, a, bit[a] + 1, c)
    out = np.zeros(n, dtype=np.uint64)
    for row, b in bit.items():
        member = np.unpackbits(sets[row].view(np.uint8), bitorder="little")[:n].astype(np.uint64)
        out |= member << np.uint64(b)
    return out


def _ages(tree: dict, ages: np.ndarray) -> np.ndarray | None:
    """Which of ``ages`` ``tree`` can hold for, from its age comparisons alone (``and``: all of
    its constraining parts, ``or``: any branch, when every branch constrains); None when it does
    not constrain the age. Only ever a necessary condition."""
    from grouper.rulesets.conditions import COMPARISONS  # compiling only: a cache hit never loads it (start-up)

    name = tree.get("pred")
    if name is not None:
        field, cmp = COMPARISONS.get(name, ("", ""))
        if field != "age_years":
            return None
        v = tree["value"]
        return {"eq": ages == v, "lt": ages < v, "le": ages <= v, "gt": ages > v, "ge": ages >= v}[cmp]
    if tree.get("op") == "and":
        parts = [m for m in (_ages(a, ages) for a in tree["args"]) if m is not None]
        return np.logical_and.reduce(parts) if parts else None
    if tree.get("op") == "or":
        parts = [_ages(a, ages) for a in tree["args"]]
        return None if any(m is None for m in parts) else np.logical_or.reduce(parts)
    return None


#: ages with a row of their own in the age prefilter; older cases share the last row (every MDC)
AGE_ROWS = 256


def age_prefilter(trees: list[dict], max_age: int) -> np.ndarray:
    """Bit i of row a: MDC i (of at most 64) may be entered by a case aged a years, for the ages
    0..min(max_age, AGE_ROWS - 1) that pass validation; one more row, every bit set, serves older
    ages. MDCP's rules open with ``age == 0``, so most cases skip it."""
    ages = np.arange(min(max_age, AGE_ROWS - 1) + 1)
    out = np.zeros(len(ages) + 1, dtype=np.uint64)
    for i, tree in enumerate(trees):
        ok = _ages(tree, ages)
        out[:-1][ok if ok is not None else slice(None)] |= np.uint64(1) << np.uint64(i)
    out[-1] = np.uint64(2**64 - 1)
    return out

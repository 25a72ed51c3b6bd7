"""Per-code tables of the compiled ruleset, kept once per class of codes with equal rows
(``grouper.engine.compile``): the class arrays and the summary bits of the list nodes."""

from __future__ import annotations

import numpy as np

__all__ = ["classes", "summary_bits"]


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

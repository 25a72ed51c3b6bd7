"""The compiled program as text, for a person debugging the compiler or a scheme.

``CompiledRuleset.dump()`` (and ``drg compile RULESET --dump``) print what the kernel will
evaluate, decoded from the flat arrays themselves rather than from the tables: each MDC, ADRG
and DRG record in evaluation order with its condition tree, opcodes by name, code sets as their
owner/list and codes, result ids as codes and names. What the prefilters decide alone is said so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from grouper.engine._kernel import CONSTANTS as K

if TYPE_CHECKING:
    from grouper.engine.compiled import CompiledRuleset

__all__ = ["dump_program"]

_OPS = {v: k[3:].lower() for k, v in K.items() if k.startswith("OP_")}
_FIELDS = {v: k[6:].lower() for k, v in K.items() if k.startswith("FIELD_") and k != "N_FIELDS"}
_CMPS = {K["CMP_EQ"]: "==", K["CMP_LT"]: "<", K["CMP_LE"]: "<=", K["CMP_GT"]: ">", K["CMP_GE"]: ">="}
_DX_OPS = {K["OP_PDX_IN"], K["OP_ANY_DX_IN"], K["OP_SDX_IN"]}
_PX_OPS = {K["OP_PPX_IN"], K["OP_ANY_PX_IN"], K["OP_SPX_IN"]}
_SHOWN_CODES = 8  # codes printed per set; the count says how many there are


class _Decoder:
    def __init__(self, c: CompiledRuleset):
        self.c = c
        self.set_names = {(key[0], row): "/".join(str(k) or "GLOBAL" for k in key[1:])
                          for key, row in c.set_keys.items()}

    def codes(self, kind: str, row: int) -> str:
        sets = self.c.dx_sets if kind == "dx" else self.c.px_sets
        table = self.c.dx_codes if kind == "dx" else self.c.px_codes
        ids = np.flatnonzero(np.unpackbits(sets[row].view(np.uint8), bitorder="little")[:len(table)])
        return f"{self.set_names.get((kind, row), f'{kind} set {row}')} {self.listed(kind, ids)}"

    def listed(self, kind: str, ids: np.ndarray) -> str:
        table = self.c.dx_codes if kind == "dx" else self.c.px_codes
        shown = ", ".join(table[i] for i in ids[:_SHOWN_CODES]) + (", ..." if len(ids) > _SHOWN_CODES else "")
        return f"[{len(ids)}: {shown}]"

    def prefiltered(self, by_pdx: np.ndarray, by_ppx: np.ndarray, bit: int) -> str:
        """What decides an entry the prefilters decide alone: its bit in the rows of the
        principal diagnosis / procedure ids (the last row, none or unknown, left out)."""
        parts = []
        for kind, table in (("dx", by_pdx), ("px", by_ppx)):
            col = table[:-1, bit >> 6] if table.ndim == 2 else table[:-1]
            ids = np.flatnonzero((col >> np.uint64(bit & 63)) & np.uint64(1))
            if len(ids) < len(col):
                parts.append(f"principal {kind} in {self.listed(kind, ids)}")
        return "prefilter: " + (" and ".join(parts) or "any case")

    def values(self, field: int, low: int, high: int) -> str:
        mask = (low & 0xFFFFFFFF) | ((high & 0xFFFFFFFF) << 32)
        names = self.c.values.get(_FIELDS.get(field, ""), [])
        return ", ".join(v for i, v in enumerate(names) if mask >> i & 1)

    def node(self, i: int) -> str:
        op, a, b, v = (int(x) for x in self.c.cond[i])
        name = _OPS.get(op, f"op{op}")
        if op in (K["OP_AND"], K["OP_OR"]):
            return f"{name}(" + ", ".join(self.node(int(j)) for j in self.c.cond_args[a:a + b]) + ")"
        if op == K["OP_NOT"]:
            return f"not({self.node(a)})"
        if op in _DX_OPS:
            return f"{name}({self.codes('dx', a)})"
        if op in _PX_OPS:
            return f"{name}({self.codes('px', a)})"
        if op == K["OP_N_PX_IN_GE"]:
            return f"{name}({self.codes('px', a)}, {b})"
        if op in (K["OP_N_DX_GT"], K["OP_N_PX_GT"], K["OP_SEX_EQ"]):
            return f"{name}({a})"
        if op == K["OP_CMP"]:
            return f"{_FIELDS.get(a, a)} {_CMPS.get(b, b)} {v}"
        if op == K["OP_KNOWN"]:
            return f"known({_FIELDS.get(a, a)})"
        if op == K["OP_VALUE_IN"]:
            return f"{_FIELDS.get(a, a)} in ({self.values(a, b, v)})"
        if op == K["OP_TRAUMA_GE"]:
            return f"{name}(region map {a}, {b})"
        return name  # true, false, has_mcc, has_cc, has_px

    def cond(self, i: int, exact: str = "") -> str:
        return exact if i < 0 else f"#{i} {self.node(i)}"


def dump_program(c: CompiledRuleset) -> str:
    """Text of ``c``: header and settings, then MDC -> ADRG -> DRG records in evaluation order."""
    d = _Decoder(c)
    drg = lambda i: f"{c.drg_codes[i]} {c.drg_names[i]}".rstrip()  # noqa: E731
    lines = [f"compiled {c.name} {c.version} (fingerprint {c.fingerprint[:12]})",
             f"arrays: {len(c.cond)} condition nodes, {len(c.dx_sets)} dx sets, {len(c.px_sets)} px sets, "
             f"{len(c.dx_codes)} dx codes, {len(c.px_codes)} px codes, {c.nbytes:,} bytes",
             "params: " + ", ".join(f"{k}={v}" for k, v in sorted(c.params.items()))]
    pdx_rows, ppx_rows = c.by_code("adrg_by_pdx"), c.by_code("adrg_by_ppx")
    for pos, m in enumerate(c.mdc):  # position = bit in the MDC prefilters
        mi = int(m["code"])
        lines.append(f"MDC {c.mdc_codes[mi]} {c.mdc_names[mi]}".rstrip())
        if m["pre_cond"] >= 0:
            lines.append(f"  before entry, ambiguous if {d.cond(int(m['pre_cond']))} -> "
                         f"{c.mdc_codes[int(m['pre_mdc'])]} {drg(int(m['pre_drg']))}")
        lines.append(f"  entry: {d.cond(int(m['entry_cond']), d.prefiltered(c.by_code('mdc_by_pdx'), c.by_code('mdc_by_ppx'), pos))}")
        for j in range(int(m["adrg_start"]), int(m["adrg_end"])):
            if m["qy_cond"] >= 0 and j == m["adrg_start"] + m["qy_pos"]:
                lines.append(f"  ambiguous if {d.cond(int(m['qy_cond']))} -> {drg(int(m['qy_drg']))}")
            a = c.adrg[j]
            ai = int(a["code"])
            fail = " (fail rule: ungroupable)" if a["status"] == K["ST_UNGROUPABLE"] else ""
            lines.append(f"  ADRG {c.adrg_codes[ai]} {c.adrg_names[ai]}{fail}".rstrip())
            lines.append(f"    entry: {d.cond(int(a['entry_cond']), d.prefiltered(pdx_rows, ppx_rows, j))}")
            for s in c.split[int(a["split_start"]):int(a["split_end"])]:
                lines.append(f"    DRG {drg(int(s['drg']))}: {d.cond(int(s['cond']))}")
            if a["nosplit_drg"] >= 0:
                lines.append(f"    no split holds -> {drg(int(a['nosplit_drg']))}")
        if m["qy_cond"] >= 0 and m["adrg_start"] + m["qy_pos"] >= m["adrg_end"]:
            lines.append(f"  ambiguous if {d.cond(int(m['qy_cond']))} -> {drg(int(m['qy_drg']))}")
    return "\n".join(lines) + "\n"

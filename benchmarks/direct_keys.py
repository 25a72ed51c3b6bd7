"""Which share of cases a *proven* direct lookup would serve, per bundled ruleset (issue 16).

    python benchmarks/direct_keys.py [--cases 200000] [--ruleset NAME ...] [--max-facts 6]
                                     [--json FILE]

The idea studied: skip the kernel's MDC -> ADRG condition walk for a case whose key (class of
the principal diagnosis, class of the principal procedure or "none", and the values of a few
whole conditions the study picks, the "facts") is proven to reach one ADRG first. The proof walks
the compiled records as the kernel does (MDC order and prefilters, ambiguous-group rules before
the entry and at their place among the ADRGs, the any-code MDC filters), evaluating every
condition in three values (true / false / undecided) from the key alone; a key is proven only
when every condition the walk could evaluate before that ADRG is decided by it. The DRG split
would still be evaluated per case, and a case whose ADRG gives no result would walk in full (so
the fail-retry path is untouched).

For each ruleset this reports the facts picked, the proven share of keys, the size of the table
the kernel would need (a default per dx class and fact bits, plus exceptions by px key), and on
a ``drg synth`` province and the resampled reference cases: the share of cases the lookup would
serve (valid input, proven key, and the ADRG gives a result). Every served case is checked
against the kernel's actual result (MDC, ADRG and DRG); a disagreement is an error. The facts
are evaluated here by a vectorised NumPy reading of the compiled condition nodes (``Facts``).

Not built into the kernel: a prototype (key, facts, hashed exceptions, proof in the compiler)
served 68 % (2.0) and 85 % (1.1) of province cases with identical outputs, but was slower than
the walk (docs/performance.md, issue 16): the facts are the walk's own costly conditions, and
the table is large because the principal procedure's class matters for most keys.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import grouper
from grouper.engine.compile import K

_F, _T, _U = 0, 1, 2  # three-valued condition results


def _member(sets: np.ndarray, row: int, cls: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Per class: _T when every code of the class is in set ``row``, _F when none is, _U mixed."""
    bits = np.unpackbits(sets[row].view(np.uint8), bitorder="little")[:len(cls)]
    count = np.bincount(cls, weights=bits, minlength=len(total))
    return np.where(count == 0, _F, np.where(count == total, _T, _U)).astype(np.int8)


class Proof:
    """Three-valued walk of the compiled records for every key (see the module docstring)."""

    def __init__(self, c):
        self.c = c
        n_dx, n_px = len(c.dx_codes), len(c.px_codes)
        self.nD, n_pc = len(c.mdc_by_pdx), len(c.mdc_by_ppx)
        self.NP = n_pc + 1  # px classes, then "no procedure"
        self.dcls = c.dx_class[:n_dx].astype(np.int64)
        self.pcls = c.px_class[:n_px].astype(np.int64)
        self.dtot = np.bincount(self.dcls, minlength=self.nD)
        self.ptot = np.bincount(self.pcls, minlength=n_pc)
        prow = np.arange(self.NP)
        prow[-1] = c.px_class[n_px]  # the kernel's prefilter row without a procedure
        self.prow = prow
        self.none = np.zeros(self.NP, bool)
        self.none[-1] = True
        self.any_dx_none = int(c.mdc_by_anydx[c.dx_class[n_dx]])
        self.ppx_mdc = c.mdc_by_ppx[prow]
        self.ppx_any = c.mdc_by_anypx[prow] | c.mdc_by_anypx[c.px_class[n_px]]
        self.adrg_ppx = c.adrg_by_ppx[prow]
        self.dx_memo: dict[int, np.ndarray] = {}
        self.px_memo: dict[int, np.ndarray] = {}
        # px sets the conditions read: with the prefilter rows, what tells two px keys apart
        px_rows = sorted({int(n["a"]) for n in c.cond
                          if n["op"] in (K["OP_PPX_IN"], K["OP_ANY_PX_IN"], K["OP_N_PX_IN_GE"])})
        sig = np.stack([self.px_member(r) for r in px_rows] + [self.none.astype(np.int8)], axis=1)
        self.px_group = np.unique(sig, axis=0, return_inverse=True)[1].reshape(-1).astype(np.uint64)
        self.weight_d = self.dtot.astype(float)
        self.weight_p = np.append(self.ptot.astype(float), float(n_px))

    def dx_member(self, row: int) -> np.ndarray:
        if row not in self.dx_memo:
            self.dx_memo[row] = _member(self.c.dx_sets, row, self.dcls, self.dtot)
        return self.dx_memo[row]

    def px_member(self, row: int) -> np.ndarray:
        if row not in self.px_memo:  # "no procedure": in no set
            self.px_memo[row] = np.append(_member(self.c.px_sets, row, self.pcls, self.ptot), np.int8(_F))
        return self.px_memo[row]

    def run(self, facts: list[int]) -> tuple[np.ndarray, dict[int, float]]:
        """res[D, P, f]: the ADRG record (-1: not proven) for dx class D, px key P, fact bits f;
        and, per condition node, the weight of the keys it left undecided."""
        res = np.full((self.nD, self.NP, 1 << len(facts)), -1, np.int32)
        blame: dict[int, float] = {}
        for d in range(self.nD):
            self._walk_dx(d, facts, res[d], blame)
        return res, blame

    def _walk_dx(self, d: int, facts: list[int], out: np.ndarray, blame: dict[int, float]) -> None:
        c = self.c
        pdx_mdc = int(c.mdc_by_pdx[d])
        a_pdx = c.adrg_by_pdx[d]
        # px keys that this dx class cannot tell apart share one walk
        any_px = self.ppx_any & c.mdc_by_pdx[d] if c.params["use_anypx"] else np.zeros(self.NP, np.uint64)
        cols = [self.px_group, self.ppx_mdc & c.mdc_by_pdx[d], any_px, *(self.adrg_ppx & a_pdx).T]
        order = np.lexsort(cols[::-1])
        sorted_cols = np.stack([col[order] for col in cols])
        first = np.ones(self.NP, bool)
        first[1:] = (sorted_cols[:, 1:] != sorted_cols[:, :-1]).any(axis=0)
        rep = order[first]
        inverse = np.empty(self.NP, np.int64)
        inverse[order] = np.cumsum(first) - 1
        nf = 1 << len(facts)
        L = len(rep) * nf
        P = np.repeat(rep, nf)
        fbits = np.tile(np.arange(nf), len(rep))
        none = self.none[P]
        weight = self.weight_d[d] * np.bincount(inverse, weights=self.weight_p)[np.repeat(np.arange(len(rep)), nf)]
        fact_bit = {n: k for k, n in enumerate(facts)}
        memo: dict[int, np.ndarray] = {}
        cond, args = c.cond, c.cond_args

        def const(v):
            return np.full(L, v, np.int8)

        def tv(node: int) -> np.ndarray:
            if node in memo:
                return memo[node]
            op, a, b = int(cond[node]["op"]), int(cond[node]["a"]), int(cond[node]["b"])
            if node in fact_bit:  # evaluated per case by the kernel: its bit in the key
                r = ((fbits >> fact_bit[node]) & 1).astype(np.int8)
            elif op in (K["OP_AND"], K["OP_OR"]):
                stop = _F if op == K["OP_AND"] else _T
                some = np.zeros(L, bool)
                every = np.ones(L, bool)
                for i in range(a, a + b):
                    v = tv(int(args[i]))
                    some |= v == stop
                    every &= v == 1 - stop
                r = np.where(some, stop, np.where(every, 1 - stop, _U)).astype(np.int8)
            elif op == K["OP_NOT"]:
                v = tv(a)
                r = np.where(v == _U, _U, 1 - v).astype(np.int8)
            elif op in (K["OP_TRUE"], K["OP_FALSE"]):
                r = const(_T if op == K["OP_TRUE"] else _F)
            elif op == K["OP_PDX_IN"]:
                r = const(self.dx_member(a)[d])
            elif op == K["OP_ANY_DX_IN"]:  # the principal is one of the diagnoses
                r = const(_T if self.dx_member(a)[d] == _T else _U)
            elif op == K["OP_N_DX_GT"]:  # at least the principal counts
                r = const(_T if a < 1 else _U)
            elif op == K["OP_HAS_PX"]:
                r = np.where(none, _F, _T).astype(np.int8)
            elif op == K["OP_PPX_IN"]:
                r = self.px_member(a)[P]
            elif op == K["OP_ANY_PX_IN"]:
                r = np.where(none, _F, np.where(self.px_member(a)[P] == _T, _T, _U)).astype(np.int8)
            elif op == K["OP_SPX_IN"]:
                r = np.where(none, _F, _U).astype(np.int8)
            elif op == K["OP_N_PX_GT"]:
                r = np.where(none, _T if 0 > a else _F, _T if a < 1 else _U).astype(np.int8)
            elif op == K["OP_N_PX_IN_GE"]:
                r = np.where(none, _T if 0 >= b else _F, _T if b <= 0 else _U).astype(np.int8)
            else:  # age, sex, weight, stay, discharge, department, secondary codes, CC/MCC, trauma
                r = const(_U)
            memo[node] = r
            return r

        result = np.full(L, -1, np.int32)
        pending = np.ones(L, bool)

        def undecided(mask: np.ndarray, node: int = -1) -> None:
            nonlocal pending
            pending &= ~mask
            if node >= 0 and mask.any():
                blame[node] = blame.get(node, 0.0) + float(weight[mask].sum())

        for i in range(len(c.mdc)):
            md = c.mdc[i]
            maybe = np.zeros(L, bool)  # the any-code filters may drop this MDC for some cases
            if i < 64:
                if not (pdx_mdc >> i) & 1:
                    continue
                bit = np.uint64(1) << np.uint64(i)
                active = pending & ((self.ppx_mdc[P] & bit) != 0)
                if c.params["use_anydx"] and not ((int(c.mdc_by_anydx[d]) | self.any_dx_none) >> i) & 1:
                    maybe[:] = True
                if c.params["use_anypx"]:
                    kept = (self.ppx_any[P] & bit) != 0
                    active &= ~(none & ~kept)  # no procedure: the filter is exact
                    maybe |= ~none & ~kept
            else:
                active = pending.copy()
            if not active.any():
                continue
            pc, ec = int(md["pre_cond"]), int(md["entry_cond"])
            pre = tv(pc) if pc >= 0 else const(_F)
            entry = tv(ec) if ec >= 0 else const(_T)
            active &= ~((pre == _F) & (entry == _F))  # the MDC gives nothing, filtered or not
            undecided(active & (pre == _T))  # an ambiguous-group result: left to the walk
            undecided(active & (pre == _U), pc)
            undecided(active & (pre == _F) & (entry == _U), ec)
            undecided(active & (pre == _F) & (entry == _T) & maybe)
            walk = active & pending
            start, end = int(md["adrg_start"]), int(md["adrg_end"])
            qy_at = start + int(md["qy_pos"]) if md["qy_cond"] >= 0 else -1
            for j in range(start, end + 1):
                if not walk.any():
                    break
                if j == qy_at:  # the ambiguous-group test at its place among the ADRGs
                    q = tv(int(md["qy_cond"]))
                    undecided(walk & (q == _T))
                    undecided(walk & (q == _U), int(md["qy_cond"]))
                    walk &= pending
                if j == end or not (int(a_pdx[j >> 6]) >> (j & 63)) & 1:
                    continue
                cand = walk & (((self.adrg_ppx[P, j >> 6] >> np.uint64(j & 63)) & np.uint64(1)) != 0)
                if not cand.any():
                    continue
                ec = int(c.adrg[j]["entry_cond"])
                e = tv(ec) if ec >= 0 else const(_T)
                hit = cand & (e == _T)
                result[hit] = j
                pending &= ~hit
                undecided(cand & (e == _U), ec)
                walk &= pending
            # cases still walking here got nothing from this MDC: on to the next
        result[pending] = -1  # no ADRG on the first walk: left to the walk (and its retry)
        out[:] = result.reshape(len(rep), nf)[inverse]


def choose_facts(proof: Proof, max_facts: int, share: float) -> tuple[list[int], np.ndarray]:
    """Greedy: the condition that leaves the most keys undecided (weighted by the codes in their
    classes) becomes the next fact, while it blocks at least ``share`` of them; (facts, res)."""
    facts: list[int] = []
    total = float(proof.weight_d.sum() * proof.weight_p.sum())
    while True:
        res, blame = proof.run(facts)
        if len(facts) >= max_facts:
            return facts, res
        cands = [(w, -n) for n, w in blame.items() if n not in facts and w >= share * total * (1 << len(facts))]
        if not cands:
            return facts, res
        facts.append(-max(cands)[1])


def table_size(res: np.ndarray) -> int:
    """Entries the kernel would keep: a default per (dx class, fact bits) plus an exception for
    every px key whose entry differs from it."""
    n_dx, n_p, n_f = res.shape
    exceptions = 0
    for d in range(n_dx):
        for f in range(n_f):
            exceptions += n_p - int(np.unique(res[d, :, f], return_counts=True)[1].max())
    return n_dx * n_f + exceptions


class Facts:
    """Compiled condition nodes evaluated over a batch of encoded cases at once, as the kernel's
    ``eval_leaf`` / ``eval_cond`` read them (conditions are pure: no short-circuit needed)."""

    def __init__(self, c, fields, dx_off, dx_ids, px_off, px_ids):
        self.c = c
        self.fields = np.asarray(fields)
        self.n = n = self.fields.shape[1]
        self.dx_off, self.dx = np.asarray(dx_off, np.int64), np.asarray(dx_ids)
        self.px_off, self.px = np.asarray(px_off, np.int64), np.asarray(px_ids)
        self.dx_case = np.repeat(np.arange(n), np.diff(self.dx_off))
        self.px_case = np.repeat(np.arange(n), np.diff(self.px_off))
        self.dx_pos = np.arange(len(self.dx_case)) - self.dx_off[:-1][self.dx_case]
        self.dx = self.dx[:len(self.dx_case)]
        self.px = self.px[:len(self.px_case)]
        empty = K["ID_EMPTY"]
        self.ndx = np.bincount(self.dx_case[self.dx != empty], minlength=n)
        self.npx = np.bincount(self.px_case[self.px != empty], minlength=n)
        has_dx = np.diff(self.dx_off) > 0
        self.pdx = np.where(has_dx, self.dx[np.minimum(self.dx_off[:-1], max(len(self.dx) - 1, 0))]
                            if len(self.dx) else empty, empty)
        self.ppx_at = np.full(n, -1, np.int64)  # index into px of the principal procedure
        nonempty = np.nonzero(self.px != empty)[0]
        cases, first = np.unique(self.px_case[nonempty], return_index=True)
        self.ppx_at[cases] = nonempty[first]
        self.ppx = np.where(self.ppx_at >= 0, self.px[np.maximum(self.ppx_at, 0)] if len(self.px) else empty,
                            empty)
        self.memo: dict[int, np.ndarray] = {}
        self._severity()

    def _in(self, sets: np.ndarray, row: int, ids: np.ndarray) -> np.ndarray:
        ok = ids >= 0
        safe = np.where(ok, ids, 0)
        return ok & ((sets[row, safe >> 6] >> (safe & 63).astype(np.uint64)) & np.uint64(1) != 0)

    def _any(self, mask: np.ndarray, case: np.ndarray) -> np.ndarray:
        return np.bincount(case[mask], minlength=self.n) > 0

    def _distinct(self, mask: np.ndarray, case: np.ndarray, value: np.ndarray) -> np.ndarray:
        pairs = np.unique(np.stack([case[mask], value[mask]]), axis=1)
        return np.bincount(pairs[0], minlength=self.n)

    def _severity(self) -> None:
        c = self.c
        pdx_ok = self.pdx >= 0
        ptab = np.where(pdx_ok, c.pdx_table[c.cc_class[np.where(pdx_ok, self.pdx, 0)]], -1)
        ids = self.dx
        use = (ids >= 0) & (self.dx_pos >= (0 if c.params["cc_all"] else 1))
        cls = c.cc_class[np.where(use, ids, 0)]
        level = np.where(use, c.cc_level[cls], 0)
        excluded = (ptab[self.dx_case] >= 0) & (c.cc_table[cls] == ptab[self.dx_case])
        level = np.where(excluded, 0, level)
        self.has_mcc = self._any((level & 2) != 0, self.dx_case)
        self.has_cc = self._any((level & 1) != 0, self.dx_case)

    def _field(self, f: int) -> np.ndarray:
        if f == K["FIELD_WEIGHT"]:
            w = self.fields[f]
            return np.where(w <= 0, K["MISSING"], w)
        return self.fields[f if f <= K["FIELD_DEPT"] else K["FIELD_DEPT"]]

    def node(self, i: int) -> np.ndarray:
        if i in self.memo:
            return self.memo[i]
        c = self.c
        op, a, b, cv = (int(x) for x in c.cond[i])
        if op in (K["OP_AND"], K["OP_OR"]):
            vals = [self.node(int(c.cond_args[j])) for j in range(a, a + b)]
            r = np.logical_and.reduce(vals) if op == K["OP_AND"] else np.logical_or.reduce(vals)
            r = np.broadcast_to(r, (self.n,)) if vals else np.full(self.n, op == K["OP_AND"])
        elif op == K["OP_NOT"]:
            r = ~self.node(a)
        elif op in (K["OP_TRUE"], K["OP_FALSE"]):
            r = np.full(self.n, op == K["OP_TRUE"])
        elif op == K["OP_PDX_IN"]:
            r = self._in(c.dx_sets, a, self.pdx)
        elif op == K["OP_PPX_IN"]:
            r = self._in(c.px_sets, a, self.ppx)
        elif op == K["OP_HAS_MCC"]:
            r = self.has_mcc
        elif op == K["OP_HAS_CC"]:
            r = self.has_cc
        elif op == K["OP_N_DX_GT"]:
            r = self.ndx > a
        elif op in (K["OP_HAS_PX"], K["OP_N_PX_GT"]):
            r = self.npx > (0 if op == K["OP_HAS_PX"] else a)
        elif op in (K["OP_ANY_PX_IN"], K["OP_SPX_IN"]):  # entries before the principal are empty
            mask = self._in(c.px_sets, a, self.px)
            if op == K["OP_SPX_IN"]:
                mask &= np.arange(len(self.px)) > self.ppx_at[self.px_case]
            r = self._any(mask, self.px_case)
        elif op in (K["OP_ANY_DX_IN"], K["OP_SDX_IN"]):
            mask = self._in(c.dx_sets, a, self.dx)
            if op == K["OP_SDX_IN"]:
                mask &= self.dx_pos >= 1
            r = self._any(mask, self.dx_case)
        elif op == K["OP_N_PX_IN_GE"]:
            r = self._distinct(self._in(c.px_sets, a, self.px), self.px_case, self.px) >= b
        elif op == K["OP_SEX_EQ"]:
            r = self.fields[K["FIELD_SEX"]] == a
        elif op == K["OP_CMP"]:
            v = self._field(a)
            cmp = {K["CMP_EQ"]: np.equal, K["CMP_LT"]: np.less, K["CMP_LE"]: np.less_equal,
                   K["CMP_GT"]: np.greater, K["CMP_GE"]: np.greater_equal}[b]
            r = (v != K["MISSING"]) & cmp(v, cv)
        elif op == K["OP_KNOWN"]:
            r = self._field(a) != K["MISSING"]
        elif op == K["OP_VALUE_IN"]:
            v = self._field(a)
            mask = (b & 0xFFFFFFFF) | ((cv & 0xFFFFFFFF) << 32)
            ok = (v >= 0) & (v < 64)
            r = ok & (((np.uint64(mask) >> np.where(ok, v, 0).astype(np.uint64)) & np.uint64(1)) != 0)
        elif op == K["OP_TRAUMA_GE"]:
            ids = self.dx
            region = np.where(ids >= 0, c.regions[a, np.where(ids >= 0, ids, 0)], -1) if len(ids) else ids
            r = self._distinct(region >= 0, self.dx_case, region) >= b
        else:
            raise NotImplementedError(f"opcode {op}")
        self.memo[i] = np.asarray(r, bool)
        return self.memo[i]


def served(c, res: np.ndarray, facts: list[int], enc, out: dict) -> dict:
    """Per case: the entry its key gives; which cases the lookup would serve; and the check of
    each served case against the kernel's result (``out``: status, mdc, adrg, drg arrays)."""
    ev = Facts(c, enc.fields, enc.dx_off, enc.dx_ids, enc.px_off, enc.px_ids)
    n = ev.n
    d = c.dx_class[np.where(ev.pdx >= 0, ev.pdx, len(c.dx_codes))]
    p = np.where(ev.ppx_at < 0, len(c.mdc_by_ppx), c.px_class[np.where(ev.ppx >= 0, ev.ppx, len(c.px_codes))])
    bits = np.zeros(n, np.int64)
    for k, node in enumerate(facts):
        bits |= ev.node(node).astype(np.int64) << k
    entry = res[d, p, bits]
    usable = (out["status"] != K["ST_INVALID"]) & (ev.pdx >= 0) & ((ev.ppx_at < 0) | (ev.ppx >= 0))
    entry = np.where(usable, entry, -1)
    adrg_mdc = np.repeat(c.mdc["code"], c.mdc["adrg_end"] - c.mdc["adrg_start"])
    drg = np.full(n, -1, np.int64)
    for j in np.unique(entry[entry >= 0]):
        rec = c.adrg[j]
        idx = np.nonzero(entry == j)[0]
        got = np.full(len(idx), -1, np.int64)
        for s in range(int(rec["split_start"]), int(rec["split_end"])):
            hold = ev.node(int(c.split[s]["cond"]))[idx] & (got < 0)
            got[hold] = int(c.split[s]["drg"])
        got[got < 0] = int(rec["nosplit_drg"])
        drg[idx] = got
    serve = (entry >= 0) & (drg >= 0)
    j = np.where(serve, entry, 0)
    expect = {"status": c.adrg["status"][j], "mdc": adrg_mdc[j], "adrg": c.adrg["code"][j], "drg": drg}
    wrong = np.zeros(n, bool)
    for k, v in expect.items():
        wrong |= serve & (np.asarray(out[k]) != v)
    return {"cases": n, "valid": float(usable.mean()), "proven": float((entry >= 0).mean()),
            "served": float(serve.mean()), "disagree": int(wrong.sum()),
            "no_procedure": float((ev.ppx_at < 0).mean())}


def kernel_outputs(g, enc) -> dict:
    k = enc.n
    res = (np.empty(k, np.int8), np.empty(k, np.int32), np.empty(k, np.int32), np.empty(k, np.int32),
           np.empty(k, np.int8), np.empty(k, np.int32))
    g._program.group_batch(enc.fields, enc.dx_off, enc.dx_ids, enc.px_off, enc.px_ids, *res)
    return dict(zip(("status", "mdc", "adrg", "drg", "cc", "flags"), res))


def study(ruleset: str, workloads: dict, max_facts: int, share: float) -> dict:
    """The proof and the shares for one ruleset; ``workloads``: name -> Arrow table."""
    g = grouper.Grouper(ruleset, n_threads=1)
    c = g.compiled
    t0 = time.process_time()
    proof = Proof(c)
    facts, res = choose_facts(proof, max_facts, share)
    seconds = time.process_time() - t0
    from grouper.engine.dump import dump_program

    text = dump_program(c)
    described = []
    for node in facts:
        line = next((ln.strip() for ln in text.splitlines() if f"#{node} " in ln), f"#{node}")
        described.append(line[:160])
    doc = {"ruleset": ruleset, "facts": described, "proof_cpu_s": seconds,
           "dx_classes": int(res.shape[0]), "px_keys": int(res.shape[1]),
           "proven_keys": float((res >= 0).mean()), "table_entries": table_size(res), "workloads": {}}
    for name, table in workloads.items():
        batch = table.combine_chunks().to_batches()[0]
        enc = g.encoder.encode(batch)
        doc["workloads"][name] = served(c, res, facts, enc, kernel_outputs(g, enc))
    return doc


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ruleset", action="append", help="repeatable (default: every bundled ruleset)")
    ap.add_argument("--cases", type=int, default=200_000)
    ap.add_argument("--max-facts", type=int, default=6)
    ap.add_argument("--fact-share", type=float, default=0.01,
                    help="a condition becomes a fact when it leaves this share of the keys undecided")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import pyarrow.parquet as pq
    from grouper.analytics.synth import SynthSpec, write_synthetic
    from grouper.rulesets.registry import available_rulesets
    from workload import build_table

    names = a.ruleset or sorted(available_rulesets())
    reference = build_table(a.cases)
    docs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            province = Path(tmp) / f"{name}.parquet"
            write_synthetic(SynthSpec(a.cases, hospitals=200, seed=1, ruleset=name), province)
            cols = ["sex", "age", "age_days", "birth_weight", "los", "discharge", "dept", "dx", "px"]
            docs.append(study(name, {"province": pq.read_table(province, columns=cols),
                                     "reference": reference.select(cols)}, a.max_facts, a.fact_share))
            d = docs[-1]
            print(f"{name}: {len(d['facts'])} facts, proof {d['proof_cpu_s']:.1f} CPU s, "
                  f"{d['dx_classes']} dx classes x {d['px_keys']} px keys x {2 ** len(d['facts'])} fact values, "
                  f"proven {d['proven_keys']:.1%} of keys, table {d['table_entries']:,} entries", flush=True)
            for f in d["facts"]:
                print(f"    fact {f}")
            for w, r in d["workloads"].items():
                print(f"    {w:<10}{r['cases']:>9,} cases: valid {r['valid']:.1%}, key proven {r['proven']:.1%}, "
                      f"served {r['served']:.1%} (no procedure {r['no_procedure']:.1%}); "
                      f"disagreements with the kernel: {r['disagree']}")
    if a.json:
        a.json.write_text(json.dumps({"load": os.getloadavg(), "rulesets": docs}, indent=2))
    bad = [d["ruleset"] for d in docs if any(r["disagree"] for r in d["workloads"].values())]
    if bad:
        raise SystemExit(f"the proof's claim disagrees with the kernel on {', '.join(bad)}")


if __name__ == "__main__":
    main()

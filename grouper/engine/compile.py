"""Compile a ``Ruleset`` into flat NumPy arrays that the Cython kernel evaluates.

The decision structure, in the spirit of scikit-learn's histogram-GBDT predictor:

* ``cond`` (records op, a, b, c) and ``cond_args``: every condition tree lowered to nodes;
  identical subtrees are stored once.
* ``dx_sets`` / ``px_sets``: one bitset row per code list, indexed by code id.
* ``regions``: per region-carrying list, the body region of each diagnosis id (-1 none).
* ``cc_class``, then ``cc_level`` / ``cc_table`` / ``pdx_table`` / ``dx_bits`` by class: CC/MCC
  level and exclusion tables of each diagnosis, and its *summary bits*: bit b set when the code is
  in the b-th of the (at most 64) lists that ``any_dx_in`` / ``sdx_in`` nodes test; ``px_bits``
  likewise by ``px_class`` for ``any_px_in`` / ``spx_in``. The kernel ORs a case's words once
  (it reads the class of each code anyway), so such a node is one bit test instead of a loop over
  the case's codes; its field ``b`` holds the bit + 1 (0: no bit, the kernel loops).
* ``mdc`` / ``adrg`` / ``split`` records: the MDC -> ADRG -> DRG order with condition roots.
* ``dx_class`` / ``px_class``, then the prefilter rows by class: which MDCs and ADRGs a principal
  code allows. Codes share a class when all their rows are equal (about 300 diagnosis and 1,600
  procedure classes among 33 k and 14 k codes), so the tables the kernel reads per case fit in
  cache (a few hundred KiB instead of 3.3 MiB per-code rows).
* code dictionaries (``dx_codes``, ``px_codes``) and result code tables with names.

A ``CompiledRuleset`` is plain data: picklable, and rebuilt in well under a second.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import numpy as np

import grouper.engine._kernel as _kernel
from grouper.engine.compiled import CompiledRuleset
from grouper.engine.tables import age_prefilter, classes, summary_bits
from grouper.rulesets import RulesetError

if TYPE_CHECKING:  # the data model is imported by what builds a Ruleset, not by a cache hit (start-up)
    from grouper.rulesets import Ruleset

__all__ = ["CompiledRuleset", "compile_ruleset", "COND_DTYPE", "MDC_DTYPE", "ADRG_DTYPE", "SPLIT_DTYPE"]

K = _kernel.CONSTANTS
COND_DTYPE = _kernel.COND_DTYPE
MDC_DTYPE = _kernel.MDC_DTYPE
ADRG_DTYPE = _kernel.ADRG_DTYPE
SPLIT_DTYPE = _kernel.SPLIT_DTYPE

_LIST_OPS = {
    "pdx_in": "OP_PDX_IN", "any_dx_in": "OP_ANY_DX_IN", "sdx_in": "OP_SDX_IN",
    "ppx_in": "OP_PPX_IN", "any_px_in": "OP_ANY_PX_IN", "spx_in": "OP_SPX_IN",
}
_PLAIN_OPS = {"has_mcc": "OP_HAS_MCC", "has_cc": "OP_HAS_CC", "has_px": "OP_HAS_PX"}
_VALUE_OPS = {"n_dx_gt": "OP_N_DX_GT", "n_px_gt": "OP_N_PX_GT", "sex_eq": "OP_SEX_EQ"}
_FIELDS = {"age_years": "FIELD_AGE", "age_days": "FIELD_AGE_DAYS", "weight": "FIELD_WEIGHT", "los": "FIELD_LOS"}
_VALUE_FIELDS = {"discharge_in": "discharge", "dept_in": "dept"}
_KNOWN = {"age_days_known": "FIELD_AGE_DAYS", "weight_known": "FIELD_WEIGHT"}
#: list opcodes read from the case's summary words (kind: the "any code" and the "secondary" form)
_SUMMARY_OPS = {"dx": ("OP_ANY_DX_IN", "OP_SDX_IN"), "px": ("OP_ANY_PX_IN", "OP_SPX_IN")}


class _Compiler:
    def __init__(self, rs: Ruleset):
        self.rs = rs
        self.dx_codes = rs.dx_universe
        self.px_codes = rs.px_universe
        self.dx_id = {c: i for i, c in enumerate(self.dx_codes)}
        self.px_id = {c: i for i, c in enumerate(self.px_codes)}
        self.nodes: list[tuple[int, int, int, int]] = []
        self.args: list[int] = []
        self.memo: dict[str, int] = {}
        self.sets: dict[str, dict[tuple, int]] = {"dx": {}, "px": {}}
        self.set_rows: dict[str, list[tuple[str, ...]]] = {"dx": [], "px": []}
        self.values: dict[str, dict[str, int]] = {"discharge": {}, "dept": {}}
        self.region_maps: dict[tuple, int] = {}
        self.region_rows: list[dict[str, int]] = []

    # -- code lists
    def _set(self, kind: str, key: tuple, codes: tuple[str, ...]) -> int:
        table = self.sets[kind]
        if key not in table:
            table[key] = len(self.set_rows[kind])
            self.set_rows[kind].append(codes)
        return table[key]

    def _bitsets(self, kind: str) -> np.ndarray:
        ids = self.dx_id if kind == "dx" else self.px_id
        words = (len(ids) + 63) // 64
        rows = self.set_rows[kind]
        out = np.zeros((len(rows), max(words, 1)), dtype=np.uint64)
        for r, codes in enumerate(rows):
            idx = np.fromiter((ids[c] for c in codes), dtype=np.uint64, count=len(codes))
            np.bitwise_or.at(out[r], (idx >> np.uint64(6)).astype(np.intp),
                             np.left_shift(np.uint64(1), idx & np.uint64(63)))
        return out

    # -- conditions
    def node(self, tree: dict, owner: str) -> int:
        key = self._key(tree, owner)
        if key in self.memo:
            return self.memo[key]
        if "const" in tree:
            rec = (K["OP_TRUE"] if tree["const"] else K["OP_FALSE"], 0, 0, 0)
        elif tree.get("op") in ("and", "or"):
            children = [self.node(a, owner) for a in tree["args"]]
            rec = self._factored(children) if tree["op"] == "or" else None
            if rec is None:
                rec = self._junction(K["OP_AND"] if tree["op"] == "and" else K["OP_OR"], children)
        elif tree.get("op") == "not":
            rec = (K["OP_NOT"], self.node(tree["arg"], owner), 0, 0)
        else:
            rec = self._pred(tree, owner)
        self.nodes.append(rec)
        self.memo[key] = len(self.nodes) - 1
        return self.memo[key]

    def _junction(self, op: int, children: list[int]) -> tuple[int, int, int, int]:
        start = len(self.args)
        self.args.extend(children)
        return (op, start, len(children), 0)

    def _factored(self, children: list[int]) -> tuple[int, int, int, int] | None:
        """``or(and(x, a...), and(x, b...))`` as ``and(x, or(and(a...), and(b...)))`` (the same
        truth value): a case for which ``x`` is false (``age == 0`` opens both rules of MDCP's
        ambiguous test) is decided by one test, not one per branch. None when not of that form."""
        if len(children) < 2:
            return None
        parts = []
        for ch in children:
            op, start, n, _ = self.nodes[ch]
            if op != K["OP_AND"] or n < 2:
                return None
            parts.append(self.args[start:start + n])
        first = parts[0][0]
        if any(p[0] != first for p in parts):
            return None
        rests = []
        for p in parts:
            if len(p) == 2:
                rests.append(p[1])
            else:
                self.nodes.append(self._junction(K["OP_AND"], p[1:]))
                rests.append(len(self.nodes) - 1)
        self.nodes.append(self._junction(K["OP_OR"], rests))
        return self._junction(K["OP_AND"], [first, len(self.nodes) - 1])

    def _key(self, tree: dict, owner: str) -> str:
        """Identity of a subtree after list names are resolved (so equal lists share nodes)."""

        def norm(t):
            if "pred" in t:
                t = dict(t)
                if "list" in t:
                    lst = self.rs.resolve_list(t["list"], owner)
                    t["list"] = [lst.owner, lst.name]
                if "label" in t:
                    t["label"] = [self.rs.resolve_list("px", owner).owner, t["label"]]
                return t
            if "args" in t:
                return {"op": t["op"], "args": [norm(a) for a in t["args"]]}
            if "arg" in t:
                return {"op": t["op"], "arg": norm(t["arg"])}
            return t

        return json.dumps(norm(tree), sort_keys=True)

    def _pred(self, p: dict, owner: str) -> tuple[int, int, int, int]:
        name = p["pred"]
        if name in _LIST_OPS:
            lst = self.rs.resolve_list(p["list"], owner)
            kind = "dx" if name.endswith("dx_in") else "px"
            return (K[_LIST_OPS[name]], self._set(kind, (lst.owner, lst.name), lst.codes), 0, 0)
        if name == "any_dx_prefix":
            codes = self.rs.dx_prefix_list(p["prefix"])
            return (K["OP_ANY_DX_IN"], self._set("dx", ("", "prefix", p["prefix"]), codes), 0, 0)
        if name == "px_label_present":
            lst = self.rs.resolve_list("px", owner)
            codes = self.rs.px_label_list(p["label"], owner)
            row = self._set("px", (lst.owner, lst.name, "label", p["label"]), codes)
            return (K["OP_ANY_PX_IN"], row, 0, 0)
        if name in _PLAIN_OPS:
            return (K[_PLAIN_OPS[name]], 0, 0, 0)
        if name in _VALUE_OPS:
            return (K[_VALUE_OPS[name]], p["value"], 0, 0)
        if name in _KNOWN:
            return (K["OP_KNOWN"], K[_KNOWN[name]], 0, 0)
        from grouper.rulesets.conditions import COMPARISONS  # compiling only (start-up)

        if name in COMPARISONS:
            fld, cmp = COMPARISONS[name]
            return (K["OP_CMP"], K[_FIELDS[fld]], K["CMP_" + cmp.upper()], p["value"])
        if name in _VALUE_FIELDS:
            fld = _VALUE_FIELDS[name]
            ids = self.values[fld]
            mask = 0
            for v in p["values"]:
                ids.setdefault(v, len(ids))
                if ids[v] >= 64:
                    raise ValueError(f"more than 64 distinct {fld} codes in the scheme's conditions")
                mask |= 1 << ids[v]
            low, high = mask & 0xFFFFFFFF, mask >> 32
            as_i32 = lambda x: x - (1 << 32) if x >= 1 << 31 else x  # noqa: E731  (bit pattern)
            return (K["OP_VALUE_IN"], K["FIELD_" + fld.upper()], as_i32(low), as_i32(high))
        if name == "n_px_in_ge":
            lst = self.rs.resolve_list(p["list"], owner)
            return (K["OP_N_PX_IN_GE"], self._set("px", (lst.owner, lst.name), lst.codes), p["value"], 0)
        if name == "trauma_regions_ge":
            lst = self.rs.resolve_list(p["list"], owner)
            key = (lst.owner, lst.name)
            if key not in self.region_maps:
                names = sorted(set(lst.regions.values()))
                if len(names) > 64:
                    raise ValueError(f"list {key} has more than 64 trauma regions")
                number = {n: i for i, n in enumerate(names)}
                self.region_maps[key] = len(self.region_rows)
                self.region_rows.append({c: number[r] for c, r in lst.regions.items()})
            return (K["OP_TRAUMA_GE"], self.region_maps[key], p["value"], 0)
        raise NotImplementedError(f"predicate {name!r} has no kernel opcode")  # guarded by tests

    # -- prefilters
    #: which prefilter kinds a predicate constrains: principal dx/procedure, or some dx/procedure
    _KINDS = {"pdx_in": ("pdx", "anydx"), "any_dx_in": ("anydx",), "sdx_in": ("anydx",),
              "any_dx_prefix": ("anydx",), "ppx_in": ("ppx", "anypx"), "any_px_in": ("anypx",),
              "spx_in": ("anypx",), "px_label_present": ("anypx",), "n_px_in_ge": ("anypx",)}

    def _necessary(self, tree: dict, owner: str, kind: str) -> frozenset[str] | None:
        """Codes that the principal dx ('pdx'), principal procedure ('ppx'), some dx ('anydx')
        or some procedure ('anypx') must be among for ``tree`` to hold; None when the tree does
        not constrain it. Only ever a necessary condition: the full tree is still evaluated for
        the cases it lets through."""
        name = tree.get("pred")
        if name is not None:
            if kind not in self._KINDS.get(name, ()):
                return None
            if name == "n_px_in_ge" and tree["value"] < 1:  # holds for every case
                return None
            if name == "any_dx_prefix":
                return frozenset(self.rs.dx_prefix_list(tree["prefix"]))
            if name == "px_label_present":
                return frozenset(self.rs.px_label_list(tree["label"], owner))
            return frozenset(self.rs.resolve_list(tree["list"], owner).codes)
        if tree.get("op") == "and":
            sets = [s for s in (self._necessary(a, owner, kind) for a in tree["args"]) if s is not None]
            if not sets:
                return None
            if kind in ("pdx", "ppx"):  # the one principal code is in every conjunct's set
                return frozenset.intersection(*sets)
            # "some code in A and some code in B" may be two codes: each set alone is necessary
            return min(sets, key=len)
        if tree.get("op") == "or":
            sets = [self._necessary(a, owner, kind) for a in tree["args"]]
            return None if any(s is None for s in sets) else frozenset.union(*sets)
        return None

    @staticmethod
    def _exact(tree: dict) -> bool:
        """True when the prefilters alone decide ``tree``: it is pdx_in/ppx_in lists joined by
        ``and``, plus has_px only where a ppx_in already implies it; or it is constant true."""
        if tree.get("const") is True:
            return True
        parts = tree["args"] if tree.get("op") == "and" else [tree]
        preds = [p.get("pred") for p in parts]
        if not all(p in ("pdx_in", "ppx_in", "has_px") for p in preds):
            return False
        return "has_px" not in preds or "ppx_in" in preds

    def _prefilter(self, trees: list[tuple[dict, str]], kind: str, ids: dict[str, int]) -> np.ndarray:
        """Bit i of row r: item i may match when the principal code has id r (last row: none)."""
        words = max(1, (len(trees) + 63) // 64)
        out = np.zeros((len(ids) + 1, words), dtype=np.uint64)
        for i, (tree, owner) in enumerate(trees):
            bit = np.uint64(1) << np.uint64(i & 63)
            need = self._necessary(tree, owner, kind)
            if need is None:
                out[:, i >> 6] |= bit
            else:
                out[[ids[c] for c in need], i >> 6] |= bit
        return out

    # -- whole scheme
    def compile(self) -> CompiledRuleset:
        rs = self.rs
        mdc_codes = [m.code for m in rs.mdcs]
        mdc_names = [m.name for m in rs.mdcs]
        adrg_codes: list[str] = []
        adrg_names: list[str] = []
        drg_codes: list[str] = []
        drg_names: list[str] = []
        adrg_index: dict[str, int] = {}
        drg_index: dict[str, int] = {}

        def result(codes, names, index, code, name):
            if code not in index:
                index[code] = len(codes)
                codes.append(code)
                names.append(name)
            return index[code]

        mdc_recs, adrg_recs, split_recs = [], [], []
        fail_rules = set(rs.engine["fail_adrgs"])  # their result is a FAIL inside their MDC
        rs_names = {m.code: m.name for m in rs.mdcs}
        for mi, m in enumerate(rs.mdcs):
            start = len(adrg_recs)
            for a_code in m.adrgs:
                a = rs.adrgs[a_code]
                s0 = len(split_recs)
                for d in a.drgs:
                    drg = rs.drgs[(a.code, d)]
                    split_recs.append((self.node(drg.split_rule, a.code),
                                       result(drg_codes, drg_names, drg_index, d, drg.name)))
                entry = -1 if self._exact(a.entry_rule) else self.node(a.entry_rule, a.code)
                nosplit = result(drg_codes, drg_names, drg_index, a.no_split_result, a.name) if a.no_split_result else -1
                adrg_recs.append((entry, s0, len(split_recs),
                                  result(adrg_codes, adrg_names, adrg_index, a.report_code, a.name), nosplit,
                                  K["ST_UNGROUPABLE"] if a.code in fail_rules else K["ST_GROUPED"]))
            qy_cond, qy_pos, qy_drg, pre = -1, -1, -1, (-1, -1, -1)
            qy_adrg = result(adrg_codes, adrg_names, adrg_index, "QY", "歧义组") if (
                m.qy_rule is not None or m.pre_qy_rule is not None) else -1
            if m.qy_rule is not None:
                qy_cond = self.node(m.qy_rule, m.code)
                qy_pos = m.adrgs.index(m.qy_after) + 1 if m.qy_after else 0
                qy_drg = result(drg_codes, drg_names, drg_index, m.code[3] + "QY", f"{m.name}歧义组")
            if m.pre_qy_rule is not None:
                letter_mdc = "MDC" + m.pre_qy_drg[0]
                pre = (self.node(m.pre_qy_rule, m.code), mdc_codes.index(letter_mdc),
                       result(drg_codes, drg_names, drg_index, m.pre_qy_drg, f"{rs_names[letter_mdc]}歧义组"))
            exact = mi < 64 and m.pre_qy_rule is None and self._exact(m.entry_rule)
            entry = -1 if exact else self.node(m.entry_rule, m.code)
            mdc_recs.append((entry, qy_cond, qy_pos, start, len(adrg_recs), mi, qy_adrg, qy_drg, *pre))
        mdc_codes.append("0000")
        mdc_names.append("")
        adrg_codes.append("00")
        adrg_names.append("")
        drg_codes.append("0000")
        drg_names.append("")

        n_dx = len(self.dx_codes)
        cc_level = np.zeros(n_dx, dtype=np.int8)
        cc_table = np.full(n_dx, -1, dtype=np.int32)
        pdx_table = np.full(n_dx, -1, dtype=np.int32)
        tables: dict[str, int] = {}
        for code, (level, table) in rs.cc.items():
            i = self.dx_id[code]
            cc_level[i] = sum({"CC": 1, "MCC": 2}[lv] for lv in level.split("+"))  # bit 1 CC, bit 2 MCC
            if table:  # "": excluded by no principal
                cc_table[i] = tables.setdefault(table, len(tables))
        for code, table in rs.pdx_excl.items():
            pdx_table[self.dx_id[code]] = tables.setdefault(table, len(tables))
        regions = np.full((len(self.region_rows), n_dx), -1, dtype=np.int8)
        for r, mapping in enumerate(self.region_rows):
            for code, region in mapping.items():
                regions[r, self.dx_id[code]] = region

        # later MDCs are never filtered; an MDC with a rule tested before its entry may be
        # reached through either rule
        mdc_trees = [(m.entry_rule if m.pre_qy_rule is None else {"op": "or", "args": [m.entry_rule, m.pre_qy_rule]},
                      m.code) for m in rs.mdcs[:64]]
        adrg_trees = [(rs.adrgs[a].entry_rule, a) for m in rs.mdcs for a in m.adrgs]
        prefilters = {
            "mdc_by_pdx": self._prefilter(mdc_trees, "pdx", self.dx_id)[:, 0].copy(),
            "mdc_by_ppx": self._prefilter(mdc_trees, "ppx", self.px_id)[:, 0].copy(),
            # MDCs entered on "some diagnosis / procedure in a list": one word per code, OR-ed
            # over the case's codes (cheap); used only where it rules out more than the above
            "mdc_by_anydx": self._prefilter(mdc_trees, "anydx", self.dx_id)[:, 0].copy(),
            "mdc_by_anypx": self._prefilter(mdc_trees, "anypx", self.px_id)[:, 0].copy(),
            "adrg_by_pdx": self._prefilter(adrg_trees, "pdx", self.dx_id),
            "adrg_by_ppx": self._prefilter(adrg_trees, "ppx", self.px_id),
            # ADRGs entered on "some procedure in a list" (transplant pairs, ventilation hours):
            # per word, OR-ed over the case's procedures (about one a case) where the walk reads it
            "adrg_by_anypx": self._prefilter(adrg_trees, "anypx", self.px_id),
        }
        use_any = {k: bool(prefilters[f"mdc_by_p{k}"][-1] & ~prefilters[f"mdc_by_any{k}"][-1]) for k in ("dx", "px")}
        dx_sets, px_sets = self._bitsets("dx"), self._bitsets("px")
        dx_bits = summary_bits(self.nodes, {K[o] for o in _SUMMARY_OPS["dx"]}, dx_sets, len(self.dx_codes))
        px_bits = np.append(summary_bits(self.nodes, {K[o] for o in _SUMMARY_OPS["px"]}, px_sets, len(self.px_codes)),
                            np.uint64(0))  # last row: no procedure. (After every node is made: it sets their b.)
        dx_class, dx_rows = classes({k: prefilters[k] for k in ("mdc_by_pdx", "mdc_by_anydx", "adrg_by_pdx")})
        use_any["adrg_px"] = bool((prefilters["adrg_by_ppx"][-1] & ~prefilters["adrg_by_anypx"][-1]).any())
        px_class, px_rows = classes({**{k: prefilters[k] for k in ("mdc_by_ppx", "mdc_by_anypx", "adrg_by_ppx",
                                                                    "adrg_by_anypx")},
                                      "px_bits": px_bits})
        cc_class, cc_rows = classes({"cc_level": cc_level, "cc_table": cc_table, "pdx_table": pdx_table,
                                      "dx_bits": dx_bits})

        v = rs.validation
        sex_mask = 0
        for s in v["sex_values"]:
            if not 0 <= s <= 30:
                raise ValueError(f"sex value {s} outside 0..30 is not supported")
            sex_mask |= 1 << s
        return CompiledRuleset(
            name=rs.name, version=rs.version, fingerprint=rs.fingerprint,
            cond=np.array(self.nodes, dtype=COND_DTYPE),
            cond_args=np.array(self.args, dtype=np.int32),
            dx_sets=dx_sets, px_sets=px_sets, regions=regions,
            mdc_by_age=age_prefilter([t for t, _ in mdc_trees], v["max_age_years"]),
            cc_class=cc_class, **cc_rows,
            mdc=np.array(mdc_recs, dtype=MDC_DTYPE), adrg=np.array(adrg_recs, dtype=ADRG_DTYPE),
            split=np.array(split_recs, dtype=SPLIT_DTYPE), dx_class=dx_class, px_class=px_class,
            **dx_rows, **px_rows,
            params={"sex_mask": sex_mask, "newborn_days": v["newborn_max_age_days"],
                    "max_age": v["max_age_years"], "cc_all": rs.engine["cc_scope"] == "all",
                    "require_los": v["require_los"], "fail_retry": rs.engine["fail_retry"] != "none",
                    "use_anydx": use_any["dx"], "use_anypx": use_any["px"], "use_adrg_anypx": use_any["adrg_px"]},
            input_fields=rs.input_fields,
            values={k: list(ids) for k, ids in self.values.items()},
            dx_codes=self.dx_codes, px_codes=self.px_codes,
            mdc_codes=mdc_codes, mdc_names=mdc_names, adrg_codes=adrg_codes, adrg_names=adrg_names,
            drg_codes=drg_codes, drg_names=drg_names,
            set_keys={(k, *key): row for k in ("dx", "px") for key, row in self.sets[k].items()},
        )


def compile_ruleset(rs: Ruleset) -> CompiledRuleset:
    """Lower a validated ruleset to the kernel's flat arrays. A setting or value that does not
    fit the kernel's fields (the loader refuses those it knows of) is a RulesetError too."""
    try:
        compiled = _Compiler(rs).compile()
        compiled.program()  # the kernel takes every array and setting: no surprise at group time
        return compiled
    except (ValueError, OverflowError, TypeError, NotImplementedError) as exc:
        raise RulesetError(os.path.basename(rs.path) or rs.name, None, f"does not compile: {exc}") from None

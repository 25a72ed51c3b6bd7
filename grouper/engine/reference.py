"""A direct, readable interpreter of the rule tables: the oracle the kernel is tested against.

It walks the ``Ruleset`` (not the compiled arrays) one case at a time, in plain Python, in the
order the scheme documents: validation, CC/MCC, then MDC -> ADRG -> DRG, first match wins.
It is also what ``Grouper.explain`` uses to tell a person why a case landed where it did.
Slow on purpose: clarity over speed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from grouper._util.columns import CODE_WHITESPACE, split_codes
from grouper.engine.numbers import parse_int
from grouper.engine.status import CHECK_FLAGS, CcLevel, Flag, Reason, Status
from grouper.rulesets import Ruleset

__all__ = ["Case", "Result", "ReferenceGrouper", "parse_int"]

NO_MDC, NO_ADRG, NO_DRG = "0000", "00", "0000"


@dataclass
class Case:
    sex: int | None = None
    age: int | None = None
    age_days: int | None = None
    birth_weight: int | None = None
    dx: Sequence[str | None] = ()
    px: Sequence[str | None] = ()
    los: int | None = None
    discharge: str | None = None  # codes compared as exact (trimmed) strings
    dept: str | None = None
    bad_number: bool = False  # set by parsing when a numeric field held non-numeric text

    @classmethod
    def from_raw(cls, sex=None, age=None, age_days=None, birth_weight=None, dx=(), px=(), los=None,
                 discharge=None, dept=None) -> "Case":
        """Build from loosely typed values (CSV strings, '|'-joined code lists)."""
        vals, bad = {}, False
        for k, v in (("sex", sex), ("age", age), ("age_days", age_days), ("birth_weight", birth_weight),
                     ("los", los)):
            vals[k], b = parse_int(v)
            bad |= b
        if isinstance(dx, str):
            dx = split_codes(dx)
        if isinstance(px, str):
            px = split_codes(px)
        codes = {}
        for k, v in (("discharge", discharge), ("dept", dept)):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                iv, _ = parse_int(v)
                v = None if iv is None else str(iv)
            codes[k] = v
        return cls(dx=list(dx or []), px=list(px or []), bad_number=bad, **vals, **codes)


@dataclass
class Result:
    status: Status
    mdc: str = NO_MDC
    adrg: str = NO_ADRG
    drg: str = NO_DRG
    cc_level: CcLevel = CcLevel.NOT_COMPUTED
    flags: int = 0
    trace: list[dict] = field(default_factory=list)
    reason: Reason = Reason.NONE  # the step where grouping stopped (the kernel's R_* code)


class _Ctx:
    """The facts about one case that predicates read."""

    def __init__(self, rs: Ruleset, case: Case, dx: list[str], px: list[str]):
        self.rs = rs
        self.sex = case.sex
        self.age = case.age
        self.age_days = case.age_days
        w = case.birth_weight
        self.weight = w if (w is not None and w > 0) else None  # weight predicates need non-zero
        self.dx, self.px = dx, px
        self.los = case.los
        self.discharge = (case.discharge or "").strip(CODE_WHITESPACE)
        self.dept = (case.dept or "").strip(CODE_WHITESPACE)
        self.mcc: list[str] = []
        self.cc: list[str] = []
        self.excluded: list[str] = []
        self.reached = Reason.NO_MDC  # deepest step reached so far (Reason order)

    def reach(self, step: Reason) -> None:
        self.reached = max(self.reached, step)


class ReferenceGrouper:
    def __init__(self, ruleset: Ruleset):
        self.rs = ruleset
        self._sets: dict[tuple[str, str], frozenset[str]] = {}
        self._known_codes: tuple[set[str], set[str]] | None = None

    def _set(self, name: str, owner: str) -> frozenset[str]:
        key = (name, owner)
        if key not in self._sets:
            self._sets[key] = frozenset(self.rs.resolve_list(name, owner).codes)
        return self._sets[key]

    # ------------------------------------------------------------------ public
    def group(self, case: Case, trace: bool = False) -> Result:
        rs = self.rs
        flags = Flag(0)
        if case.bad_number:
            flags |= Flag.BAD_NUMBER
        dx, px, f = self._codes(case)
        flags |= f
        flags |= self._validate(case, dx)
        steps: list[dict] = []
        if flags & CHECK_FLAGS:
            if trace:
                steps.append({"step": "validation", "failed": [m.name for m in Flag if m & flags & CHECK_FLAGS]})
            return Result(Status.INVALID, flags=int(flags), trace=steps, reason=Reason.INVALID)

        ctx = _Ctx(rs, case, dx, px)
        self._severity(ctx)
        cc_level = CcLevel.MCC if ctx.mcc else CcLevel.CC if ctx.cc else CcLevel.NONE
        if trace:
            steps.append({"step": "severity", "mcc": list(ctx.mcc), "cc": list(ctx.cc),
                          "excluded": list(ctx.excluded), "cc_level": cc_level.name})

        result = self._mdcs(ctx, steps, trace)
        if result is None and rs.engine["fail_retry"] == "each_secondary_px_alone" and len(px) >= 2:
            for p in px[1:]:  # regroup with each secondary procedure alone, diagnoses unchanged
                if trace:
                    steps.append({"step": "retry", "px": p})
                ctx.px = [p]
                result = self._mdcs(ctx, steps, trace)
                if result is not None:
                    break
        if result is None:
            reason = ctx.reached
            if reason == Reason.NO_ADRG and px:
                reason = Reason.PX_NO_ADRG
            if trace:
                steps.append({"step": "fail", "mdc": NO_MDC, "reason": reason.label, "why": [reason.text]})
            return Result(Status.UNGROUPABLE, cc_level=cc_level, flags=int(flags), trace=steps, reason=reason)
        status, mdc_code, adrg_code, drg_code, reason = result
        if status == Status.UNGROUPABLE:  # a fail rule inside the MDC (X00 placeholder)
            flags |= Flag.MDC_FAIL
            if trace:
                steps.append({"step": "fail", "mdc": mdc_code, "adrg": adrg_code, "drg": drg_code,
                              "why": [f"已进入 {mdc_code}，其 ADRG 均不符合，占位组 {adrg_code} / {drg_code} 判为无法入组"]})
        return Result(status, mdc_code, adrg_code, drg_code, cc_level, int(flags), steps, reason)

    def _mdcs(self, ctx: _Ctx, steps: list[dict], trace: bool) -> tuple | None:
        """MDC -> ADRG -> DRG, first match wins; None when nothing matches."""
        rs = self.rs
        for mdc in rs.mdcs:
            why: list[str] = []
            if mdc.pre_qy_rule is not None:
                hit = self._eval(mdc.pre_qy_rule, mdc.code, ctx, why)
                if trace:
                    steps.append({"step": "qy", "mdc": mdc.code, "matched": hit, "why": why, "before_entry": True})
                if hit:
                    return Status.AMBIGUOUS, "MDC" + mdc.pre_qy_drg[0], "QY", mdc.pre_qy_drg, Reason.QY_PRE
                why = []
            why_not: list = []
            ok = self._eval(mdc.entry_rule, mdc.code, ctx, why, why_not if trace else None)
            if trace:
                steps.append({"step": "mdc", "mdc": mdc.code, "matched": ok, "why": why, **_failed(ok, why_not)})
            if not ok:
                continue
            ctx.reach(Reason.NO_ADRG)
            qy_pos = (mdc.adrgs.index(mdc.qy_after) + 1 if mdc.qy_after else 0) if mdc.qy_rule else -1
            for i in range(len(mdc.adrgs) + 1):
                if i == qy_pos:
                    why = []
                    hit = self._eval(mdc.qy_rule, mdc.code, ctx, why)
                    if trace:
                        steps.append({"step": "qy", "mdc": mdc.code, "matched": hit, "why": why})
                    if hit:
                        return Status.AMBIGUOUS, mdc.code, "QY", mdc.code[3] + "QY", Reason.QY
                if i == len(mdc.adrgs):
                    break
                adrg = rs.adrgs[mdc.adrgs[i]]
                why, why_not = [], []
                ok = self._eval(adrg.entry_rule, adrg.code, ctx, why, why_not if trace else None)
                if trace:
                    steps.append({"step": "adrg", "adrg": adrg.code, "matched": ok, "why": why, **_failed(ok, why_not)})
                if not ok:
                    continue
                for d in adrg.drgs:
                    why, why_not = [], []
                    ok = self._eval(rs.drgs[(adrg.code, d)].split_rule, adrg.code, ctx, why, why_not if trace else None)
                    if trace:
                        steps.append({"step": "drg", "drg": d, "matched": ok, "why": why, **_failed(ok, why_not)})
                    if ok:
                        return self._result(adrg, mdc.code, d)
                if adrg.no_split_result:  # no split holds: the rule's own result, else the next rule
                    if trace:
                        steps.append({"step": "drg", "drg": adrg.no_split_result, "matched": True,
                                      "why": ["no split holds: the ADRG rule's own result"]})
                    return self._result(adrg, mdc.code, adrg.no_split_result)
                ctx.reach(Reason.NO_DRG)  # the ADRG held but gave no result: on to the next ADRG
        return None

    def _result(self, adrg, mdc_code: str, drg_code: str) -> tuple:
        """(status, mdc, adrg, drg, reason): GROUPED, or UNGROUPABLE for the scheme's fail rules
        (engine.fail_adrgs: the X00 placeholders)."""
        if adrg.code in self.rs.engine["fail_adrgs"]:
            return Status.UNGROUPABLE, mdc_code, adrg.report_code, drg_code, Reason.MDC_FAIL
        return Status.GROUPED, mdc_code, adrg.report_code, drg_code, Reason.NONE

    # ------------------------------------------------------------------ steps
    def _codes(self, case: Case) -> tuple[list[str], list[str], Flag]:
        """Trim codes. The principal diagnosis is the first element: if that is empty the case
        has none (invalid). Empty codes elsewhere are dropped and flagged."""
        flags = Flag(0)
        dx_raw = [(c or "").strip(CODE_WHITESPACE) for c in case.dx]
        px_raw = [(c or "").strip(CODE_WHITESPACE) for c in case.px]
        principal = dx_raw[0] if dx_raw else ""
        secondary = [c for c in dx_raw[1:] if c]
        px = [c for c in px_raw if c]
        if len(secondary) != len(dx_raw[1:]) or len(px) != len(px_raw):
            flags |= Flag.EMPTY_CODE
        dx_known, px_known = self._known()
        if principal and principal not in dx_known:
            flags |= Flag.UNKNOWN_PDX
        if any(c not in dx_known for c in secondary):
            flags |= Flag.UNKNOWN_SDX
        if any(c not in px_known for c in px):
            flags |= Flag.UNKNOWN_PX
        dx = [principal, *secondary] if principal else []
        return dx, px, flags

    def _known(self) -> tuple[set[str], set[str]]:
        if self._known_codes is None:
            self._known_codes = (set(self.rs.dx_universe), set(self.rs.px_universe))
        return self._known_codes

    def _validate(self, case: Case, dx: list[str]) -> Flag:
        v = self.rs.validation
        f = Flag(0)
        if case.sex not in v["sex_values"]:
            f |= Flag.SEX_INVALID
        if case.age is None:
            f |= Flag.AGE_MISSING
        elif case.age < 0 or case.age > v["max_age_years"]:
            f |= Flag.AGE_OUT_OF_RANGE
        elif case.age == 0:
            if case.age_days is None:
                f |= Flag.AGE_DAYS_MISSING
            elif case.age_days < 0:
                f |= Flag.AGE_DAYS_OUT_OF_RANGE
            elif case.age_days <= v["newborn_max_age_days"] and case.birth_weight is None:
                f |= Flag.WEIGHT_MISSING
        if case.birth_weight is not None and case.birth_weight < 0:
            f |= Flag.WEIGHT_OUT_OF_RANGE
        if not dx:
            f |= Flag.NO_DIAGNOSIS
        if v["require_los"] and (case.los is None or case.los < 0):
            f |= Flag.LOS_INVALID
        return f

    def _severity(self, ctx: _Ctx) -> None:
        """CC/MCC among the counted diagnoses, minus those the principal's table excludes."""
        rs = self.rs
        ptable = rs.pdx_excl.get(ctx.dx[0])
        counted = ctx.dx if rs.engine["cc_scope"] == "all" else ctx.dx[1:]
        for c in counted:
            if c not in rs.cc:
                continue
            level, table = rs.cc[c]
            if ptable is not None and table == ptable:
                ctx.excluded.append(c)
                continue
            levels = level.split("+")
            if "MCC" in levels:
                ctx.mcc.append(c)
            if "CC" in levels:
                ctx.cc.append(c)

    # ------------------------------------------------------------------ conditions
    def _eval(self, tree: dict, owner: str, ctx: _Ctx, why: list[str], why_not: list | None = None) -> bool:
        """``tree`` on the case; ``why`` gets what held, ``why_not`` (when given) the first
        condition that did not hold: a leaf, ``{"none_of": [...]}`` for an or, ``{"not": tree}``."""
        if "const" in tree:
            if not tree["const"] and why_not is not None:
                why_not.append(tree)
            return tree["const"]
        op = tree.get("op")
        if op == "and":
            return all(self._eval(a, owner, ctx, why, why_not) for a in tree["args"])
        if op == "or":
            sub: list | None = [] if why_not is not None else None
            if any(self._eval(a, owner, ctx, why, sub) for a in tree["args"]):
                return True
            if why_not is not None:
                why_not.append({"none_of": sub})
            return False
        if op == "not":
            held = self._eval(tree["arg"], owner, ctx, [])
            if held and why_not is not None:
                why_not.append({"not": tree["arg"]})
            return not held
        hit = self._pred(tree, owner, ctx, why)
        if not hit and why_not is not None:
            why_not.append(tree)
        return hit

    def _pred(self, p: dict, owner: str, ctx: _Ctx, why: list[str]) -> bool:
        rs, name = self.rs, p["pred"]

        def codes_in(codes: Sequence[str], what: str) -> bool:
            lst = self._set(p["list"], owner)
            hit = next((c for c in codes if c in lst), None)
            if hit is not None:  # the code with its dictionary name, as a coder reads it
                name = (rs.px_names if "手术" in what else rs.dx_names).get(hit)
                why.append(f"{what} {hit}{' ' + name if name else ''} 在列表 {p['list']} 中")
            return hit is not None

        if name == "pdx_in":
            return codes_in(ctx.dx[:1], "主要诊断")
        if name == "any_dx_in":
            return codes_in(ctx.dx, "诊断")
        if name == "sdx_in":
            return codes_in(ctx.dx[1:], "其他诊断")
        if name == "ppx_in":
            return codes_in(ctx.px[:1], "主要手术操作")
        if name == "any_px_in":
            return codes_in(ctx.px, "手术操作")
        if name == "spx_in":
            return codes_in(ctx.px[1:], "其他手术操作")
        if name == "any_dx_prefix":
            hit = next((c for c in ctx.dx if c.startswith(p["prefix"]) and c in self._known()[0]), None)
            if hit is not None:
                why.append(f"诊断 {hit} 以 {p['prefix']} 开头")
            return hit is not None
        if name in ("discharge_in", "dept_in"):
            value = ctx.discharge if name == "discharge_in" else ctx.dept
            if value in p["values"]:
                why.append(f"{name[:-3]} {value} in {p['values']}")
            return value in p["values"]
        if name == "has_px":
            return len(ctx.px) > 0
        if name == "px_label_present":
            labelled = set(rs.px_label_list(p["label"], owner))
            hit = next((c for c in ctx.px if c in labelled), None)
            if hit is not None:
                why.append(f"手术操作 {hit} 带组合标记 {p['label']}")
            return hit is not None
        if name == "n_dx_gt":
            return len(ctx.dx) > p["value"]
        if name == "n_px_gt":
            return len(ctx.px) > p["value"]
        if name == "n_px_in_ge":
            lst = self._set(p["list"], owner)
            hits = sorted({c for c in ctx.px if c in lst})  # distinct codes: a repeated code counts once
            if len(hits) >= p["value"]:
                why.append(f"{len(hits)} 个不同手术操作在列表 {p['list']} 中 ({', '.join(hits)}) >= {p['value']}")
            return len(hits) >= p["value"]
        if name == "trauma_regions_ge":
            regions = rs.resolve_list(p["list"], owner).regions
            found = {regions[c] for c in ctx.dx if c in regions}
            if len(found) >= p["value"]:
                why.append("创伤部位: " + ", ".join(sorted(found)))
            return len(found) >= p["value"]
        if name in ("has_mcc", "has_cc"):
            found = ctx.mcc if name == "has_mcc" else ctx.cc
            if found:
                why.append(f"{'MCC' if name == 'has_mcc' else 'CC'}: {', '.join(found)}")
            return bool(found)
        if name == "sex_eq":
            if ctx.sex == p["value"]:
                why.append(f"性别 = {p['value']}")
            return ctx.sex == p["value"]
        if name == "age_days_known":
            return ctx.age_days is not None
        if name == "weight_known":
            return ctx.weight is not None
        from grouper.rulesets.conditions import COMPARISONS

        field_name, cmp = COMPARISONS[name]
        value = {"age_years": ctx.age, "age_days": ctx.age_days, "weight": ctx.weight, "los": ctx.los}[field_name]
        if value is None:
            return False
        v = p["value"]
        hit = {"eq": value == v, "lt": value < v, "le": value <= v, "gt": value > v, "ge": value >= v}[cmp]
        if hit:
            what, unit = _FIELD_ZH[field_name]
            why.append(f"{what} {value}{unit} {_CMP_SIGN[cmp]} {v}{unit}")
        return hit


def _failed(ok: bool, why_not: list) -> dict:
    """The trace's ``failed`` entry: the first condition that did not hold (a rule tree)."""
    return {} if ok or not why_not else {"failed": why_not[0]}


#: how explain names a compared field, and the comparison signs
_FIELD_ZH = {"age_years": ("年龄", " 岁"), "age_days": ("日龄", " 天"), "weight": ("出生体重", " 克"),
             "los": ("住院天数", " 天")}
_CMP_SIGN = {"eq": "=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}

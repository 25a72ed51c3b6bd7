"""``Explanation``: one case's decision path in words a coder acts on.

Built from the reference interpreter's trace (``ReferenceGrouper.group(trace=True)``): for each
rule tried, whether it held, and for one that did not, the first condition that did not hold,
in Chinese, with every code shown with its dictionary name (``K22.301 食管穿孔``). Warnings name
the codes they are about (unknown code X, empty code at position n). Kept apart from
``grouper.py`` so that the grouping object stays about grouping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from grouper.engine.reference import _CMP_SIGN, _FIELD_ZH, Case
from grouper.engine.status import STATUS_NAMES_ZH, Flag, describe_flags

__all__ = ["Explanation", "build_steps", "code_warnings"]


@dataclass
class Explanation:
    """The decision path of one case: ``as_dict()`` for machines, ``text()`` for people.
    ``payment`` is the quoter's answer when weights and a payment pack were given."""

    result: Any  # GroupResult
    steps: list[dict] = field(default_factory=list)
    ruleset: str = ""
    warnings: list[str] = field(default_factory=list)
    payment: Any = None

    def as_dict(self) -> dict[str, Any]:
        out = {"ruleset": self.ruleset, "result": self.result.as_dict(), "steps": self.steps,
               "warnings": self.warnings}
        if self.payment is not None:
            out["payment"] = self.payment.as_dict()
        return out

    def text(self) -> str:
        r = self.result
        lines = [f"方案 {self.ruleset}"]
        lines += [f"警告: {w}" for w in self.warnings]
        said = set(_CODE_FLAG_TEXTS) if self.warnings else set()  # printed already (warnings name the codes)
        for s in self.steps:
            kind = s["step"]
            if kind == "validation":
                lines.append("校验不通过: " + "; ".join(s["messages"]))
                said.update(s["messages"])
            elif kind == "severity":
                lines.append("并发症/合并症: "
                             + f"MCC {', '.join(s['mcc']) or '无'}; CC {', '.join(s['cc']) or '无'}"
                             + (f"; 被主诊断排除 {', '.join(s['excluded'])}" if s["excluded"] else "")
                             + f" -> {s['cc_level']}")
            elif kind == "mdc" and s["matched"]:
                lines.append(f"MDC {s['mdc']} {s.get('name', '')} 入组: {'; '.join(s['why']) or '条件成立'}")
            elif kind == "mdc":
                lines.append(f"  MDC {s['mdc']} {s.get('name', '')} 未入组{_because(s)}")
            elif kind == "qy":
                why = f": {'; '.join(s['why'])}" if s["matched"] and s["why"] else ""
                lines.append(f"  歧义组检查 {s['mdc']}: {'成立' if s['matched'] else '不成立'}{why}")
            elif kind == "adrg":
                why = f": {'; '.join(s['why'])}" if s["matched"] and s["why"] else _because(s)
                lines.append(f"  ADRG {s['adrg']} {s.get('name', '')} {'入组' if s['matched'] else '不符'}{why}")
            elif kind == "drg":
                why = f": {'; '.join(s['why'])}" if s["matched"] and s["why"] else _because(s)
                lines.append(f"    DRG {s['drg']} {s.get('name', '')} {'选定' if s['matched'] else '条件不成立'}{why}")
            elif kind == "retry":
                lines.append(f"重新分组: 仅以其他手术操作 {s['px']} 为主要手术操作")
            elif kind == "fail":
                lines.append("无法入组: " + "; ".join(s["why"]))
                said.update(s["why"])
        lines.append(f"结果: {STATUS_NAMES_ZH[r.status]} MDC {r.mdc} ADRG {r.adrg} DRG {r.drg} "
                     f"{r.drg_name}".rstrip())
        rest = [t for t in (r.reason or "").split("; ") if t and t not in said]
        if rest:
            lines.append(f"原因/提示: {'; '.join(rest)}")
        if self.payment is not None:
            lines.append(self.payment.text())
        return "\n".join(lines)


#: flag messages that ``code_warnings`` says code by code
_CODE_FLAG_TEXTS = [describe_flags(f) for f in (Flag.UNKNOWN_PDX, Flag.UNKNOWN_SDX, Flag.UNKNOWN_PX, Flag.EMPTY_CODE)]


def _because(step: dict) -> str:
    return f": {step['because']}" if step.get("because") else ""


class _Names:
    """Codes with their dictionary names, for messages."""

    def __init__(self, rs):
        self.dx, self.px = rs.dx_names, rs.px_names

    def d(self, code: str) -> str:
        name = self.dx.get(code)
        return f"{code} {name}" if name else f"{code}（不在诊断字典中）"

    def p(self, code: str) -> str:
        name = self.px.get(code)
        return f"{code} {name}" if name else f"{code}（不在手术操作字典中）"


def _codes(codes, show) -> str:
    return "、".join(show(c) for c in codes)


def failed_text(tree: dict, case: Case, dx: list[str], px: list[str], names: _Names) -> str:
    """The first condition that did not hold, for a person: what the case has, against what."""
    if "none_of" in tree:
        return "以下条件均不成立: " + "；".join(failed_text(t, case, dx, px, names) for t in tree["none_of"])
    if "not" in tree:
        return f"规则要求不成立的条件成立了（{_leaf_name(tree['not'])}）"
    if "const" in tree:
        return "该规则恒不成立"
    p, lst = tree.get("pred"), tree.get("list", "")
    if p == "pdx_in":
        return f"主要诊断 {names.d(dx[0])} 不在列表 {lst} 中" if dx else "无主要诊断"
    if p in ("any_dx_in", "sdx_in"):
        codes = dx if p == "any_dx_in" else dx[1:]
        what = "诊断" if p == "any_dx_in" else "其他诊断"
        return f"{what} {_codes(codes, names.d)} 均不在列表 {lst} 中" if codes else f"无{what}"
    if p == "ppx_in":
        return f"主要手术操作 {names.p(px[0])} 不在列表 {lst} 中" if px else f"无手术操作（需要列表 {lst} 中的主要手术操作）"
    if p in ("any_px_in", "spx_in"):
        codes = px if p == "any_px_in" else px[1:]
        what = "手术操作" if p == "any_px_in" else "其他手术操作"
        return f"{what} {_codes(codes, names.p)} 均不在列表 {lst} 中" if codes else f"无{what}（需要列表 {lst} 中的）"
    if p == "has_px":
        return "无手术操作"
    if p in ("has_mcc", "has_cc"):
        return f"无 {'MCC' if p == 'has_mcc' else 'CC'}"
    if p == "n_dx_gt":
        return f"诊断数 {len(dx)} 不大于 {tree['value']}"
    if p == "n_px_gt":
        return f"手术操作数 {len(px)} 不大于 {tree['value']}"
    if p == "n_px_in_ge":
        return f"列表 {lst} 中的不同手术操作少于 {tree['value']} 个"
    if p == "trauma_regions_ge":
        return f"列表 {lst} 中的创伤部位少于 {tree['value']} 个"
    if p == "any_dx_prefix":
        return f"没有以 {tree['prefix']} 开头的诊断"
    if p == "px_label_present":
        return f"没有带组合标记 {tree['label']} 的手术操作"
    if p == "sex_eq":
        return f"性别 {case.sex if case.sex is not None else '缺失'} 不是 {tree['value']}"
    if p in ("discharge_in", "dept_in"):
        what, value = ("离院方式", case.discharge) if p == "discharge_in" else ("科室", case.dept)
        return f"{what} {value or '缺失'} 不在 {', '.join(map(str, tree['values']))} 中"
    if p == "age_days_known":
        return "日龄缺失"
    if p == "weight_known":
        return "出生体重缺失"
    from grouper.rulesets.conditions import COMPARISONS

    if p in COMPARISONS:
        fname, cmp = COMPARISONS[p]
        what, unit = _FIELD_ZH[fname]
        value = {"age_years": case.age, "age_days": case.age_days, "los": case.los,
                 "weight": case.birth_weight if case.birth_weight and case.birth_weight > 0 else None}[fname]
        if value is None:
            return f"{what}缺失（需要 {_CMP_SIGN[cmp]} {tree['value']}{unit}）"
        return f"{what} {value}{unit} 不满足 {_CMP_SIGN[cmp]} {tree['value']}{unit}"
    return f"条件 {_leaf_name(tree)} 不成立"


def _leaf_name(tree: dict) -> str:
    """A short name of a condition (for one that held where it must not)."""
    if "pred" in tree:
        args = [str(tree[k]) for k in ("list", "value", "prefix", "label") if k in tree]
        return tree["pred"] + (f"({', '.join(args)})" if args else "")
    if "op" in tree:
        inner = tree.get("args") or [tree.get("arg")]
        return f"{tree['op']}({', '.join(_leaf_name(t) for t in inner if t)})"
    return str(tree.get("const"))


def code_warnings(case: Case, rs) -> list[str]:
    """One message per odd code, naming it: unknown codes, empty entries (by position)."""
    out = []
    names = _Names(rs)
    for what, codes, known in (("诊断", case.dx, names.dx), ("手术操作", case.px, names.px)):
        for i, c in enumerate(codes):
            code = (c or "").strip()
            role = ("主要" if i == 0 else "其他") + what
            if not code:
                if what == "诊断" and i == 0:
                    continue  # no principal diagnosis: a failed check, said by validation
                out.append(f"{role}第 {i + 1} 项为空，已忽略")
            elif code not in known:
                out.append(f"{role} {code} 不在方案的{what}字典中")
    if case.bad_number:
        out.append(describe_flags(Flag.BAD_NUMBER))
    return out


def build_steps(trace: list[dict], case: Case, rs) -> list[dict]:
    """The trace with names added, and a ``because`` text for each rule that did not hold."""
    names = {m.code: m.name for m in rs.mdcs}
    names.update({a.code: a.name for a in rs.adrgs.values()})
    names.update({d.code: d.name for d in rs.drgs.values()})
    names.update({a.no_split_result: a.name for a in rs.adrgs.values() if a.no_split_result})
    code_names = _Names(rs)
    dx = [c.strip() for c in case.dx if c and c.strip()]
    if case.dx and not (case.dx[0] or "").strip():
        dx = []
    px = [c.strip() for c in case.px if c and c.strip()]
    steps = []
    for s in trace:
        s = dict(s)
        if s["step"] == "retry":
            px = [s["px"]]
        code = s.get("mdc") if s["step"] == "mdc" else s.get("adrg") or s.get("drg")
        if code in names and s["step"] != "qy":
            s["name"] = names[code]
        if s["step"] == "validation":
            s["messages"] = [describe_flags(Flag[f]) for f in s["failed"]]
        if "failed" in s and s["step"] != "validation":
            s["because"] = failed_text(s["failed"], case, dx, px, code_names)
        steps.append(s)
    return steps

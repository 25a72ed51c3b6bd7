"""The data model of a grouping scheme: what the loader builds and the compiler and the
reference interpreter read (MDC -> ADRG -> DRG rules, named code lists, CC tables).

Plain frozen dataclasses, so a validated scheme pickles into the disk cache and ships to workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from grouper.rulesets import conditions
from grouper.rulesets.errors import RulesetError

__all__ = ["GLOBAL", "Adrg", "CodeList", "Drg", "Mdc", "Ruleset", "RulesetError"]

GLOBAL = ""  # owner of scheme-wide lists such as VALID_OR


@dataclass(frozen=True)
class Mdc:
    code: str
    name: str
    eval_order: int
    entry_rule: dict
    adrgs: tuple[str, ...]
    qy_after: str  # ADRG after which the ambiguous-group test sits; "" = before the first
    qy_rule: dict | None  # None: no ambiguous-group test in this MDC
    pre_qy_rule: dict | None = None  # qy_rules.csv: tested before the entry rule
    pre_qy_drg: str = ""  # its result DRG (e.g. "MQY"); the reported MDC is "MDC" + its letter


@dataclass(frozen=True)
class Adrg:
    """An ADRG rule. Local schemes may give one ADRG several alternative rules (AH1_1, AH1_2):
    ``code`` is the rule's id, ``report_code`` the ADRG reported (AH1)."""

    code: str
    name: str
    mdc: str
    section: str
    entry_rule: dict
    drgs: tuple[str, ...]
    report_code: str = ""
    no_split_result: str = ""  # result when no DRG split holds; "" = go on with the next ADRG rule

    def __post_init__(self):
        if not self.report_code:
            object.__setattr__(self, "report_code", self.code)


@dataclass(frozen=True)
class Drg:
    code: str
    name: str
    adrg: str  # the ADRG rule it belongs to; (adrg, code) is the key
    split_rule: dict


@dataclass(frozen=True)
class CodeList:
    """A named code list: ``owner`` is an MDC, an ADRG or GLOBAL; ``kind`` dx or px."""

    owner: str
    name: str
    kind: str
    codes: tuple[str, ...]  # first-occurrence order, duplicates removed
    labels: dict[str, str] = field(default_factory=dict)  # px combination labels
    regions: dict[str, str] = field(default_factory=dict)  # trauma body regions


@dataclass(frozen=True, eq=False)
class Ruleset:
    """A validated scheme: plain Python data, the input of both compiler and reference."""

    name: str
    version: str
    title: str
    path: str
    fingerprint: str
    engine: dict
    validation: dict
    input_fields: tuple[str, ...]  # optional input columns the scheme needs (los, discharge, dept)
    mdcs: tuple[Mdc, ...]  # in evaluation order
    adrgs: dict[str, Adrg]  # by rule id
    drgs: dict[tuple[str, str], Drg]  # by (ADRG rule, DRG code)
    lists: dict[tuple[str, str], CodeList]
    cc: dict[str, tuple[str, str]]  # dx code -> (level "MCC"/"CC"/"MCC+CC", exclusion table; "" none)
    pdx_excl: dict[str, str]  # principal dx code -> its exclusion table
    dx_names: dict[str, str]
    px_names: dict[str, str]
    status: str = "local"  # one of STATUSES
    dx_map: dict[str, str] = field(default_factory=dict)  # optional code conversion (other edition -> this one)
    px_map: dict[str, str] = field(default_factory=dict)

    # ---- list resolution shared by the compiler and the reference interpreter ----
    def resolve_list(self, name: str, owner: str) -> CodeList:
        """The list a condition means by ``name`` when written in ``owner``'s rule.

        Unqualified names are looked up at the owner (an ADRG, or an MDC for its rules), then
        among the scheme-wide named lists (``named_lists.csv`` rows without ``OWNER.``);
        ``mdc_dx`` in an ADRG rule means the ADRG's MDC list; ``VALID_OR`` is scheme-wide;
        ``OWNER.name`` is an explicit reference to another owner's list.
        """
        key = _list_key(name, owner, self.adrgs)
        if key not in self.lists and "." not in name and (GLOBAL, name) in self.lists:
            key = (GLOBAL, name)  # a scheme-wide named list (named_lists.csv without OWNER.)
        if key not in self.lists and f"{key[0]}.{key[1]}" in self.validation["allow_empty_lists"]:
            return CodeList(key[0], key[1], "any", ())  # declared empty on purpose: matches nothing
        return self.lists[key]

    def px_label_list(self, label: str, owner: str) -> tuple[str, ...]:
        """Codes of the owner's ``px`` list that carry combination label ``label``."""
        lst = self.resolve_list("px", owner)
        return tuple(c for c in lst.codes if lst.labels.get(c) == label)

    def dx_prefix_list(self, prefix: str) -> tuple[str, ...]:
        """Codes of the scheme's diagnosis universe that start with ``prefix``."""
        return tuple(c for c in self.dx_universe if c.startswith(prefix))

    @cached_property
    def dx_universe(self) -> list[str]:
        """Every diagnosis code the scheme knows: dictionary plus codes used by rules."""
        codes = set(self.dx_names)
        codes.update(self.cc)
        codes.update(self.pdx_excl)
        for lst in self.lists.values():
            if lst.kind == "dx":
                codes.update(lst.codes)
        return sorted(codes)

    @cached_property
    def px_universe(self) -> list[str]:
        codes = set(self.px_names)
        for lst in self.lists.values():
            if lst.kind == "px":
                codes.update(lst.codes)
        return sorted(codes)

    def counts(self) -> dict[str, int]:
        """Groups as the scheme publishes them: fail placeholders (engine.fail_adrgs) are rules,
        not groups, and are not counted."""
        fail = set(self.engine.get("fail_adrgs", ()))
        return {"mdc": len(self.mdcs),
                "adrg": len({a.report_code for a in self.adrgs.values() if a.code not in fail}),
                "drg": len({code for rule, code in self.drgs if rule not in fail})}

    @cached_property
    def fields(self) -> frozenset[str]:
        """Optional input fields (los, discharge, dept) the scheme's conditions read."""
        trees = [m.entry_rule for m in self.mdcs] + [m.qy_rule for m in self.mdcs if m.qy_rule]
        trees += [m.pre_qy_rule for m in self.mdcs if m.pre_qy_rule]
        trees += [a.entry_rule for a in self.adrgs.values()] + [d.split_rule for d in self.drgs.values()]
        return frozenset(conditions.PREDICATES[p["pred"]].field for t in trees
                         for p in conditions.predicates(t) if conditions.PREDICATES[p["pred"]].field)

    def __repr__(self) -> str:  # the tables are large; show identity only
        c = self.counts()
        return (
            f"Ruleset({self.name!r}, version={self.version!r}, mdc={c['mdc']}, "
            f"adrg={c['adrg']}, drg={c['drg']}, fingerprint={self.fingerprint[:12]})"
        )


def _list_key(name: str, owner: str, adrgs: dict) -> tuple[str, str]:
    if name == "VALID_OR":
        return (GLOBAL, name)
    if "." in name:
        o, n = name.split(".", 1)
        return (o, n)
    if name == "mdc_dx" and owner in adrgs:
        return (adrgs[owner].mdc, name)
    return (owner, name)

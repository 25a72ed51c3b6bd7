"""Write small grouping schemes as ruleset folders, and Hypothesis strategies for them.

The property tests generate whole schemes (MDC/ADRG/DRG structure, condition trees over the
full vocabulary, CC/MCC and exclusion tables, trauma regions, ambiguous-group tests, scheme-wide
named lists, MDC evaluation orders that differ from the file order, and fail rules inside an MDC
such as the 3.0 workbook's X00 / X000 placeholders) and cases,
then check that the compiled kernel and the reference interpreter agree on every field.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from hypothesis import strategies as st

DX = [f"{c}{n:02d}.{k}00" for c, n, k in [("A", 1, 0), ("A", 1, 1), ("B", 2, 0), ("C", 3, 0), ("D", 4, 0),
                                          ("E", 5, 0), ("F", 6, 0), ("G", 7, 0), ("H", 8, 0), ("J", 9, 0)]]
DX_DAGGER = "A18.300x009+K93.0*"
PX = [f"{n:02d}.{k}000" for n, k in [(1, 0), (1, 1), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0)]]
ALL_DX = DX + [DX_DAGGER]
UNKNOWN_DX, UNKNOWN_PX = "Z99.999", "99.9999"


def write_scheme(folder: Path, spec: dict) -> Path:
    """Materialise ``spec`` (see ``schemes()``) as a ruleset folder."""
    folder.mkdir(parents=True, exist_ok=True)
    engine = spec.get("engine", {"cc_scope": "secondary"})
    (folder / "ruleset.toml").write_text(
        f'name = "{spec.get("name", "generated")}"\nversion = "0"\n\n[engine]\n'
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in engine.items())
        + '\n[input]\nfields = ["los", "discharge", "dept"]\n'
        + f'\n[validation]\nrequire_los = {"true" if spec.get("require_los") else "false"}\n',
        encoding="utf-8",
    )

    def table(name, header, rows):
        with open(folder / name, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)

    j = lambda t: json.dumps(t) if t is not None else ""  # noqa: E731
    mdc_rows, mdc_dx, adrg_rows, adrg_dx, adrg_px, drg_rows = [], [], [], [], [], []
    order = spec.get("eval_order") or list(range(1, len(spec["mdcs"]) + 1))
    for i, m in enumerate(spec["mdcs"]):
        mdc_rows.append([m["code"], f"name {m['code']}", order[i], j(m["entry"]),
                         "|".join(a["code"] for a in m["adrgs"]), m.get("qy_after", ""), j(m.get("qy_rule"))])
        for code in m["list"]:
            mdc_dx.append([m["code"], code, m.get("regions", {}).get(code, "")])
        for a in m["adrgs"]:
            adrg_rows.append([a["code"], f"name {a['code']}", m["code"], "medical", j(a["entry"]),
                              "|".join(d for d, _ in a["drgs"]), a.get("report", ""), a.get("nosplit", "")])
            for lname, codes in a["lists"].items():
                for code in codes:
                    if lname.startswith("dx"):
                        adrg_dx.append([a["code"], lname, code])
                    else:
                        adrg_px.append([a["code"], lname, code, a.get("labels", {}).get(code, "") if lname == "px" else ""])
            for d, tree in a["drgs"]:
                drg_rows.append([d, f"name {d}", a["code"], j(tree)])  # (ADRG rule, DRG) is the key
    table("mdc.csv", ["mdc", "mdc_name", "eval_order", "entry_rule", "adrg_order", "qy_after", "qy_rule"], mdc_rows)
    table("qy_rules.csv", ["mdc", "qy_drg", "rule", "note"],
          [[m["code"], m["pre_qy"][0], j(m["pre_qy"][1]), ""] for m in spec["mdcs"] if m.get("pre_qy")])
    table("mdc_dx.csv", ["mdc", "dx_code", "trauma_region"], mdc_dx)
    table("adrg.csv", ["adrg", "adrg_name", "mdc", "section", "entry_rule", "drg_order", "adrg_code",
                       "no_split_result"], adrg_rows)
    table("adrg_dx.csv", ["adrg", "list", "dx_code"], adrg_dx)
    table("adrg_px.csv", ["adrg", "list", "px_code", "label"], adrg_px)
    table("drg.csv", ["drg", "drg_name", "adrg", "split_rule"], drg_rows)
    cc_rows = [[c, lv, t] for c, (lv, t) in spec["cc"].items()]
    cc_rows += [[c, "CC" if lv == "MCC" else "MCC", t] for c, (lv, t) in spec["cc"].items() if c in spec.get("cc_both", ())]
    table("cc_mcc.csv", ["dx_code", "level", "excl_table"], cc_rows)
    table("cc_exclusion.csv", ["pdx_code", "excl_table"], [[c, t] for c, t in spec["excl"].items()])
    table("or_procedures.csv", ["px_code", "px_name"], [[c, "op"] for c in spec["valid_or"]])
    table("dx_dict.csv", ["dx_code", "dx_name"], [[c, "dx"] for c in ALL_DX])
    table("px_dict.csv", ["px_code", "px_name"], [[c, "px"] for c in PX])
    table("named_lists.csv", ["list", "code"], [[n, c] for n, codes in spec.get("named", {}).items() for c in codes])
    return folder


# ------------------------------------------------------------------ strategies

#: scheme-wide named lists (named_lists.csv rows without OWNER.), as the 3.0 workbook's OP_ARB
NAMED_DX, NAMED_PX = "DI_NAMED", "OP_NAMED"


def _subset(codes):
    return st.lists(st.sampled_from(codes), min_size=1, max_size=len(codes), unique=True)


def _trees(context: str, has_labels: bool):
    """Condition trees valid in ``context`` ('mdc', 'adrg' or 'drg')."""
    lists_dx = ["mdc_dx", NAMED_DX] if context == "mdc" else ["dx", "mdc_dx", NAMED_DX]
    lists_px = ["VALID_OR", NAMED_PX] if context == "mdc" else ["px", "VALID_OR", NAMED_PX]
    small = st.sampled_from([0, 1, 2, 3])
    leaves = [
        st.builds(lambda p, lst: {"pred": p, "list": lst},
                  st.sampled_from(["pdx_in", "any_dx_in", "sdx_in"]), st.sampled_from(lists_dx)),
        st.builds(lambda p, lst: {"pred": p, "list": lst},
                  st.sampled_from(["ppx_in", "any_px_in", "spx_in"]), st.sampled_from(lists_px)),
        st.sampled_from([{"pred": p} for p in ("has_px", "has_mcc", "has_cc", "age_days_known", "weight_known")]),
        st.builds(lambda p, v: {"pred": p, "value": v}, st.sampled_from(["n_dx_gt", "n_px_gt"]), small),
        st.builds(lambda v: {"pred": "sex_eq", "value": v}, st.sampled_from([1, 2])),
        st.builds(lambda p, v: {"pred": p, "value": v},
                  st.sampled_from([f"age_years_{c}" for c in ("eq", "lt", "le", "gt", "ge")]),
                  st.sampled_from([0, 1, 6, 7, 14, 17, 65, 70])),
        st.builds(lambda p, v: {"pred": p, "value": v},
                  st.sampled_from([f"age_days_{c}" for c in ("lt", "le", "gt", "ge")]), st.sampled_from([0, 28, 29])),
        st.builds(lambda p, v: {"pred": p, "value": v},
                  st.sampled_from(["weight_lt", "weight_le", "weight_gt", "weight_ge"]),
                  st.sampled_from([1499, 1500, 2000, 2500])),
        st.builds(lambda lst, v: {"pred": "n_px_in_ge", "list": lst, "value": v},
                  st.sampled_from(lists_px), st.sampled_from([0, 1, 2, 3])),
        st.builds(lambda v: {"pred": "trauma_regions_ge", "value": v, "list": "mdc_dx"}, st.sampled_from([1, 2, 3])),
        st.sampled_from([{"const": True}, {"const": False}]),
        st.builds(lambda v: {"pred": "any_dx_prefix", "prefix": v}, st.sampled_from(["A", "A01.", "C03.0", "A18.3"])),
        st.builds(lambda p, v: {"pred": p, "value": v},
                  st.sampled_from([f"los_{c}" for c in ("eq", "lt", "le", "gt", "ge")]), st.sampled_from([0, 5, 7, 30])),
        st.builds(lambda v: {"pred": "discharge_in", "values": v},
                  st.lists(st.sampled_from(["1", "2", "5"]), min_size=1, max_size=3, unique=True)),
        st.builds(lambda v: {"pred": "dept_in", "values": v},
                  st.lists(st.sampled_from(["ICU", "03"]), min_size=1, max_size=2, unique=True)),
    ]
    if has_labels and context != "mdc":
        leaves.append(st.builds(lambda v: {"pred": "px_label_present", "label": v}, st.sampled_from(["1", "2"])))
    leaf = st.one_of(*leaves)
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.builds(lambda op, args: {"op": op, "args": args}, st.sampled_from(["and", "or"]),
                      st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda a: {"op": "not", "arg": a}, inner),
        ),
        max_leaves=5,
    )


def _entries(has_labels: bool):
    """ADRG entry rules: half the shapes real schemes use most, half anything."""
    typical = st.sampled_from([
        {"pred": "pdx_in", "list": "dx"},
        {"op": "and", "args": [{"pred": "has_px"}, {"pred": "ppx_in", "list": "px"}]},
        {"op": "and", "args": [{"pred": "pdx_in", "list": "dx"}, {"pred": "has_px"}, {"pred": "ppx_in", "list": "px"}]},
        {"pred": "any_px_in", "list": "px"},
    ])
    return st.one_of(typical, _trees("adrg", has_labels))


@st.composite
def schemes(draw) -> dict:
    n_mdc = draw(st.integers(1, 3))
    mdc_letters = draw(st.lists(st.sampled_from("ABCDEFGH"), min_size=n_mdc, max_size=n_mdc, unique=True))
    mdcs = []
    for letter in mdc_letters:
        n_adrg = draw(st.integers(1, 3))
        adrgs = []
        for k in range(n_adrg):
            code = f"{letter}{'BCRSTUVW'[k]}1"
            alternatives = draw(st.sampled_from([1, 1, 2]))  # an ADRG with two alternative entry rules
            px_list = draw(_subset(PX))
            with_labels = len(px_list) >= 2 and draw(st.booleans())
            labels = {c: draw(st.sampled_from(["1", "2"])) for c in px_list} if with_labels else {}
            if labels and "1" not in labels.values():
                labels[px_list[0]] = "1"
            if labels and "2" not in labels.values():
                labels[px_list[-1]] = "2"
            lists = {"dx": draw(_subset(ALL_DX)), "px": px_list}
            n_drg = draw(st.integers(1, 3))
            drgs = [(f"{code}{d}", draw(_trees("drg", bool(labels)))) for d in (1, 3, 5)[:n_drg]]
            if draw(st.booleans()):
                drgs[-1] = (drgs[-1][0], {"const": True})
            nosplit = code if draw(st.booleans()) else ""
            if nosplit and draw(st.booleans()):
                drgs = []  # the rule always returns the bare ADRG code
            for alt in range(alternatives):
                rule = code if alternatives == 1 else f"{code}_{alt + 1}"
                entry = draw(_entries(bool(labels)))
                adrgs.append({"code": rule, "report": code, "nosplit": nosplit, "entry": entry,
                              "lists": lists, "labels": labels, "drgs": drgs})
        if draw(st.booleans()):  # a placeholder last in the MDC: its result is a FAIL inside the MDC
            adrgs.append({"code": f"{letter}00", "report": "", "nosplit": "", "entry": {"const": True},
                          "lists": {}, "labels": {}, "drgs": [(f"{letter}000", {"const": True})], "fail": True})
        mdc_list = draw(_subset(ALL_DX))
        regions = {c: draw(st.sampled_from(["head", "chest", "limb"])) for c in mdc_list}
        qy = draw(st.booleans())
        pre = draw(st.booleans()) and draw(st.booleans())
        mdcs.append({
            "pre_qy": (draw(st.sampled_from(mdc_letters)) + "QY", draw(_trees("mdc", False))) if pre else None,
            "code": f"MDC{letter}", "entry": draw(_trees("mdc", False)), "list": mdc_list, "regions": regions,
            "adrgs": adrgs,
            "qy_rule": draw(_trees("mdc", False)) if qy else None,
            "qy_after": draw(st.sampled_from([""] + [a["code"] for a in adrgs])) if qy else "",
        })
    cc_codes = draw(st.lists(st.sampled_from(ALL_DX), unique=True, max_size=6))
    cc = {c: (draw(st.sampled_from(["MCC", "CC"])), draw(st.sampled_from(["1", "2", "3"]))) for c in cc_codes}
    excl_codes = draw(st.lists(st.sampled_from(ALL_DX), unique=True, max_size=6))
    excl = {c: draw(st.sampled_from(["1", "2", "3"])) for c in excl_codes}
    engine = {"cc_scope": draw(st.sampled_from(["secondary", "all"])),
              "fail_retry": draw(st.sampled_from(["none", "each_secondary_px_alone"]))}
    fail = [a["code"] for m in mdcs for a in m["adrgs"] if a.get("fail")]
    if fail:
        engine["fail_adrgs"] = fail
    return {"mdcs": mdcs, "cc": cc, "excl": excl, "valid_or": draw(_subset(PX)),
            "eval_order": draw(st.permutations(range(1, len(mdcs) + 1))),
            "named": {NAMED_DX: draw(_subset(ALL_DX)), NAMED_PX: draw(_subset(PX))},
            "cc_both": draw(st.lists(st.sampled_from(cc_codes), unique=True)) if cc_codes else [],
            "require_los": draw(st.booleans()), "engine": engine}


_dx_item = st.one_of(st.sampled_from(ALL_DX), st.sampled_from([UNKNOWN_DX, "", None, f" {DX[0]} "]))
_px_item = st.one_of(st.sampled_from(PX), st.sampled_from([UNKNOWN_PX, "", None]))

cases = st.fixed_dictionaries({
    "sex": st.sampled_from([None, 0, 1, 2, 3]),
    "age": st.sampled_from([None, -1, 0, 1, 6, 7, 14, 15, 17, 65, 69, 70, 150, 151]),
    "age_days": st.sampled_from([None, -3, 0, 1, 28, 29, 365]),
    "birth_weight": st.sampled_from([None, -1, 0, 1499, 1500, 1999, 2000, 2500]),
    "dx": st.lists(_dx_item, max_size=6),
    # half the time few distinct codes, repeated: n_px_in_ge counts a repeated code once
    "px": st.one_of(st.lists(_px_item, max_size=5), st.lists(st.sampled_from(PX[:3]), min_size=2, max_size=5)),
    "los": st.sampled_from([None, -1, 0, 5, 7, 8, 30, 31, 61]),
    "discharge": st.sampled_from([None, "", "1", "2", "5", "9", " 5 "]),
    "dept": st.sampled_from([None, "", "ICU", "icu", "03"]),
})

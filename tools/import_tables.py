"""Convert a scheme from the neutral table layout it was published in into a ruleset folder.

    python tools/import_tables.py SRC DST --name chs-drg-2.0 --version 2.0 --title "..."

A maintainer's tool, run once per scheme; the package never reads SRC. It keeps the codes,
lists, orders and conditions as they are and only reshapes: it drops columns that repeat what a
condition tree says, adds the MDC names of the NHSA documents, writes the ambiguous-group test as
the `qy_rule` condition (from a source `qy_rule`, or from `qy_enabled`, whose test the national
2.0 README defines as "a valid principal procedure"), canonicalises JSON and line endings, and
writes `ruleset.toml` from the source's `scheme.json` switches. Provenance notes are written by
hand into the folder's README.md.

Schemes with placeholder ADRGs (scheme.json `placeholder_result`, the CHS-DRG 3.0 workbook's
`X00` / `X000` rows: an always-true rule whose result is a FAIL inside its MDC) get those rules
moved to the end of their MDC's order (the workbook evaluates them last whatever their sort
number) and listed in `[engine] fail_adrgs`. A placeholder is an ADRG rule reported as the MDC's
letter followed by `00`. Named lists are copied as written: `OWNER.name`, or a bare name (`DI_OBD`,
`OP_ARB`) for a scheme-wide list; ADRG lists keep the source's set ids as list names.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
from pathlib import Path

# MDC names from the NHSA CHS-DRG technical specification (the same 26 in 1.1 and 2.0).
MDC_NAMES = {
    "MDCA": "先期分组疾病及相关操作", "MDCB": "神经系统疾病及功能障碍", "MDCC": "眼疾病及功能障碍",
    "MDCD": "头颈、耳、鼻、口、咽疾病及功能障碍", "MDCE": "呼吸系统疾病及功能障碍",
    "MDCF": "循环系统疾病及功能障碍", "MDCG": "消化系统疾病及功能障碍", "MDCH": "肝、胆、胰疾病及功能障碍",
    "MDCI": "肌肉、骨骼疾病及功能障碍", "MDCJ": "皮肤、皮下组织及乳腺疾病及功能障碍",
    "MDCK": "内分泌、营养、代谢疾病及功能障碍", "MDCL": "肾脏及泌尿系统疾病及功能障碍",
    "MDCM": "男性生殖系统疾病及功能障碍", "MDCN": "女性生殖系统疾病及功能障碍", "MDCO": "妊娠、分娩及产褥期",
    "MDCP": "新生儿及其他围产期新生儿疾病", "MDCQ": "血液、造血器官及免疫疾病和功能障碍",
    "MDCR": "骨髓增生疾病和功能障碍，低分化肿瘤", "MDCS": "感染及寄生虫病（全身性或不明确部位的）",
    "MDCT": "精神疾病及功能障碍", "MDCU": "酒精/药物使用及其引起的器质性精神功能障碍",
    "MDCV": "创伤、中毒及药物毒性反应", "MDCW": "烧伤", "MDCX": "影响健康因素及其他就医情况",
    "MDCY": "HIV感染疾病及相关操作", "MDCZ": "多发严重创伤",
}
VALID_PRINCIPAL_PROCEDURE = {"op": "and", "args": [{"pred": "has_px"}, {"pred": "ppx_in", "list": "VALID_OR"}]}
COPIED = ["mdc_dx.csv", "adrg_dx.csv", "adrg_px.csv", "cc_mcc.csv", "cc_exclusion.csv", "or_procedures.csv",
          "dx_dict.csv", "px_dict.csv", "named_lists.csv", "dx_map.csv", "px_map.csv"]


OPTIONAL = {"named_lists.csv", "dx_map.csv", "px_map.csv"}  # left out when the source has no rows
PROVENANCE = ["sets.csv", "quirks.jsonl", "workbook_rules.txt"]  # set index, interpretations, rule text


def read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def write(path: Path, cols: list[str], rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([r.get(c, "") for c in cols])


def canon(text: str) -> str:
    return json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":")) if text else ""


def placeholders(adrg: list[dict], scheme: dict) -> list[str]:
    """ADRG rule ids of the scheme's placeholder rules (reported as '<MDC letter>00')."""
    if not scheme.get("placeholder_result"):
        return []
    return [r["adrg"] for r in adrg
            if re.fullmatch(r"[A-Z]00", r.get("adrg_code") or r["adrg"]) and r["mdc"] == "MDC" + (r.get("adrg_code") or r["adrg"])[0]]


def convert(src: Path, dst: Path, name: str, version: str, title: str) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    scheme = json.loads((src / "scheme.json").read_text(encoding="utf-8")) if (src / "scheme.json").is_file() else {}
    adrg = read(src / "adrg.csv")
    fail = placeholders(adrg, scheme)
    mdc = read(src / "mdc.csv")
    for r in mdc:
        r["mdc_name"] = MDC_NAMES[r["mdc"]]
        r["entry_rule"] = canon(r["entry_rule"])
        if r.get("qy_rule"):
            r["qy_rule"] = canon(r["qy_rule"])
        elif r.get("qy_enabled") == "1":
            r["qy_rule"] = canon(json.dumps(VALID_PRINCIPAL_PROCEDURE))
        else:
            r["qy_rule"] = ""
        order = [a for a in r["adrg_order"].split("|") if a]
        r["adrg_order"] = "|".join([a for a in order if a not in fail] + [a for a in order if a in fail])
    write(dst / "mdc.csv", ["mdc", "mdc_name", "eval_order", "entry_rule", "adrg_order", "qy_after", "qy_rule"], mdc)

    for r in adrg:
        r["entry_rule"] = canon(r["entry_rule"])
    cols = ["adrg", "adrg_name", "mdc", "section", "entry_rule", "drg_order"]
    cols += [c for c in ("adrg_code", "no_split_result") if c in adrg[0]]
    write(dst / "adrg.csv", cols, adrg)

    drg = read(src / "drg.csv")
    for r in drg:
        r["split_rule"] = canon(r["split_rule_tree"])
    write(dst / "drg.csv", ["drg", "drg_name", "adrg", "split_rule"], drg)

    if (src / "qy_rules.csv").is_file() and read(src / "qy_rules.csv"):
        qy = read(src / "qy_rules.csv")
        for r in qy:
            r["rule"] = canon(r["rule"])
        write(dst / "qy_rules.csv", ["mdc", "qy_drg", "rule", "note"], qy)

    for f in PROVENANCE:  # documentation only: the loader does not read them
        if (src / f).is_file():
            text = (src / f).read_text(encoding="utf-8-sig").replace("\r\n", "\n")
            (dst / f).write_text(text, encoding="utf-8")

    for f in COPIED:
        if (src / f).is_file() and (f not in OPTIONAL or len(read(src / f)) > 0):  # required tables even if empty
            shutil.copyfile(src / f, dst / f)
            text = (dst / f).read_text(encoding="utf-8-sig").replace("\r\n", "\n")
            (dst / f).write_text(text, encoding="utf-8")

    engine = {"cc_scope": "all" if scheme.get("cc_counts_principal") else "secondary"}
    if scheme.get("fail_retry"):
        engine["fail_retry"] = scheme["fail_retry"]
    if fail:
        engine["fail_adrgs"] = fail
    fields = [f for f in ("los", "discharge", "dept") if f in scheme.get("split_fields_used", [])]
    lines = [
        "# Manifest of a grouping scheme: identity and the engine switches its tables rely on.",
        "# The tables beside this file are the scheme; nothing scheme-specific lives in code.",
        f'name = "{name}"', f'version = "{version}"', f'title = "{title}"', "", "[engine]",
        *(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in engine.items()),
    ]
    if fields:
        lines += ["", "[input]", "# optional input columns this scheme reads", f"fields = {json.dumps(fields)}"]
    if scheme.get("los_required"):
        lines += ["", "[validation]", "# a case without a length of stay is invalid input", "require_los = true"]
    (dst / "ruleset.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    convert(a.src, a.dst, a.name, a.version, a.title or a.name)


if __name__ == "__main__":
    main()

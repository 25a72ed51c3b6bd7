"""Load, validate and fingerprint a grouping scheme stored as plain tables.

A scheme is a folder (``rules/<name>/``): ``ruleset.toml`` plus CSV tables. Everything the
grouper does comes from these tables; this module only reads them, checks that they hold
together, and gives them a content fingerprint. It knows nothing about Arrow or the kernel.
Errors name the file, the line and the problem, because a bureau editing a table needs to
find its mistake, not a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from grouper.rulesets import conditions
from grouper.rulesets.cache import code_hash, disk_cached
from grouper.rulesets.model import GLOBAL, Adrg, CodeList, Drg, Mdc, Ruleset, RulesetError
from grouper.rulesets.registry import STATUSES
from grouper.rulesets.source import LOADER_MODULES, _source, ruleset_source, ruleset_stamp
from grouper.rulesets.tables import OPTIONAL, SCHEMA, Table, read_files

__all__ = ["LOADER_MODULES", "load_ruleset", "ruleset_source", "ruleset_stamp"]

#: Shape of a 医保版 ICD-10 code, dagger/asterisk pairs written as one string
#: (``A18.300x009+K93.0*``).
#: Group codes are opaque strings of up to 8 characters (4 nationally, 5 in some cities: BV11B).
DRG_CODE_RE = re.compile(r"[A-Z][A-Z0-9]{1,7}")
DX_CODE_RE = re.compile(
    r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Za-z]{1,12})?(\+[A-Z][0-9][0-9A-Z](\.[0-9A-Za-z]{0,12})?\*)?$"
)
#: Shape of a 医保版 ICD-9-CM-3 code (``37.5100``, ``00.5500x008``, ``48.0x03``).
PX_CODE_RE = re.compile(r"^[0-9]{2}(\.[0-9A-Za-z]{1,12})?$")

_CACHE: dict[str, Ruleset] = {}  # small: a process rarely uses many schemes
_CACHE_SIZE = 8

def load_ruleset(name_or_path: str | os.PathLike) -> Ruleset:
    """Load and validate a ruleset by registry name (``"chs-drg-1.1"``) or folder path.

    Parsing the tables takes most of a second, so a validated ruleset is also kept on disk
    (``$DRG_CACHE_DIR``, default ``~/.cache/drg-grouper``; ``DRG_NO_CACHE=1`` turns it off),
    keyed by the sha256 of every byte of every file the loader reads (about 4 ms for 5 MB),
    the folder and the loader's own code: any edit reloads from the tables, whatever the
    files' sizes and modification times say. The loader parses exactly the bytes it hashed."""
    folder, files, key = _source(name_or_path)
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = disk_cached(key if code_hash(LOADER_MODULES) else None, lambda: _Loader(folder, files).load())
    return _CACHE[key]


_ENGINE_DEFAULTS = {"cc_scope": "secondary", "fail_retry": "none", "fail_adrgs": []}
_VALIDATION_DEFAULTS = {"sex_values": [1, 2], "newborn_max_age_days": 28, "max_age_years": 150,
                        "require_los": False, "allow_empty_lists": []}
FAIL_RETRY = ("none", "each_secondary_px_alone")

# Widths of what the kernel stores (engine/_records.pxd, engine/_kernel.pyx); wider settings are refused.
INT32_MAX = 2**31 - 1  # ages, day limits and condition values are int32
MAX_SEX_VALUE = 30  # valid sex codes are bits of an int32 mask
MAX_FIELD_VALUES = 64  # distinct codes of one value field (discharge, dept) in conditions: a 64-bit mask
MAX_TRAUMA_REGIONS = 64  # distinct body regions of one list: a 64-bit mask (int8 region ids)


class _Loader:
    def __init__(self, folder: Path, files: dict[str, bytes] | None = None):
        self.folder = folder
        self.files = read_files(folder) if files is None else files

    def load(self) -> Ruleset:
        manifest = self._manifest()
        t = {f: Table(self.files, f, cols) for f, cols in SCHEMA.items()}
        t.update({f: Table(self.files, f, cols, required=False) for f, cols in OPTIONAL.items()})

        dx_names = self._dictionary(t["dx_dict.csv"], "dx_code", "dx_name", DX_CODE_RE)
        px_names = self._dictionary(t["px_dict.csv"], "px_code", "px_name", PX_CODE_RE)
        drgs = self._drgs(t["drg.csv"])
        adrgs = self._adrgs(t["adrg.csv"], drgs)
        for a in manifest["engine"]["fail_adrgs"]:
            if a not in adrgs:
                raise RulesetError("ruleset.toml", None, f"engine.fail_adrgs names unknown ADRG rule {a!r}")
        mdcs = self._mdcs(t["mdc.csv"], adrgs)
        mdcs = self._pre_qy(t["qy_rules.csv"], mdcs)
        lists = self._lists(t, adrgs, mdcs)
        cc, pdx_excl = self._cc(t["cc_mcc.csv"], t["cc_exclusion.csv"])

        rs = Ruleset(
            name=manifest["name"],
            version=str(manifest["version"]),
            title=manifest.get("title", manifest["name"]),
            status=manifest.get("status", "local"),
            path=str(self.folder),
            fingerprint=self._fingerprint(manifest, t),
            engine=manifest["engine"],
            validation=manifest["validation"],
            input_fields=manifest["input_fields"],
            mdcs=tuple(sorted(mdcs.values(), key=lambda m: m.eval_order)),
            adrgs=adrgs,
            drgs=drgs,
            lists=lists,
            cc=cc,
            pdx_excl=pdx_excl,
            dx_names=dx_names,
            px_names=px_names,
            dx_map=self._code_map(t["dx_map.csv"], DX_CODE_RE),
            px_map=self._code_map(t["px_map.csv"], PX_CODE_RE),
        )
        self._check_conditions(rs, t)
        undeclared = sorted(rs.fields - set(manifest["input_fields"]))
        if undeclared:
            raise RulesetError("ruleset.toml", None, f"conditions read {', '.join(undeclared)}: "
                               "declare it in [input] fields (the scheme then needs that input column)")
        if rs.validation["require_los"] and "los" not in manifest["input_fields"]:
            raise RulesetError("ruleset.toml", None, "validation.require_los needs 'los' in [input] fields")
        return rs

    # -- manifest
    def _manifest(self) -> dict:
        import tomllib  # here: a run served from the compiled cache never parses a manifest

        try:
            m = tomllib.loads(self.files["ruleset.toml"].decode("utf-8"))
        except (KeyError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise RulesetError("ruleset.toml", None, f"unreadable: {exc}") from None
        for key in ("name", "version"):
            if not m.get(key):
                raise RulesetError("ruleset.toml", None, f"missing key '{key}'")
        if not isinstance(m["name"], str) or not isinstance(m["version"], (str, int)) or isinstance(
                m["version"], bool) or not isinstance(m.get("title", ""), str):
            raise RulesetError("ruleset.toml", None, "name and title must be strings, version a string or integer")
        if m.get("status", "local") not in STATUSES:
            raise RulesetError("ruleset.toml", None, f"status must be one of {', '.join(STATUSES)}")
        for key in ("engine", "validation", "input"):
            if not isinstance(m.get(key, {}), dict):
                raise RulesetError("ruleset.toml", None, f"[{key}] must be a table")
        engine = {**_ENGINE_DEFAULTS, **m.get("engine", {})}
        if engine["cc_scope"] not in ("secondary", "all"):
            raise RulesetError(
                "ruleset.toml", None, f"engine.cc_scope must be 'secondary' or 'all', not {engine['cc_scope']!r}"
            )
        if engine["fail_retry"] not in FAIL_RETRY:
            raise RulesetError("ruleset.toml", None, f"engine.fail_retry must be one of {', '.join(FAIL_RETRY)}")
        fa = engine["fail_adrgs"]
        if not (isinstance(fa, list) and all(isinstance(x, str) and x for x in fa)):
            raise RulesetError("ruleset.toml", None, "engine.fail_adrgs must list ADRG rule ids")
        engine["fail_adrgs"] = sorted(fa)
        unknown = set(engine) - set(_ENGINE_DEFAULTS)
        if unknown:
            raise RulesetError("ruleset.toml", None, f"unknown engine key(s): {', '.join(sorted(unknown))}")
        validation = {**_VALIDATION_DEFAULTS, **m.get("validation", {})}
        unknown = set(validation) - set(_VALIDATION_DEFAULTS)
        if unknown:
            raise RulesetError("ruleset.toml", None, f"unknown validation key(s): {', '.join(sorted(unknown))}")
        for key in ("newborn_max_age_days", "max_age_years"):  # int32 in the kernel
            v = validation[key]
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= INT32_MAX:
                raise RulesetError("ruleset.toml", None,
                                   f"validation.{key} = {json.dumps(v, default=str)}: must be an integer in 0..{INT32_MAX}")
        ael = validation["allow_empty_lists"]
        if not (isinstance(ael, list) and all(isinstance(x, str) and "." in x for x in ael)):
            raise RulesetError("ruleset.toml", None, "validation.allow_empty_lists must list OWNER.name strings")
        validation["allow_empty_lists"] = sorted(ael)
        if not isinstance(validation["require_los"], bool):
            raise RulesetError("ruleset.toml", None, "validation.require_los must be true or false")
        fields = m.get("input", {}).get("fields", [])
        if not (isinstance(fields, list) and set(fields) <= set(conditions.OPTIONAL_FIELDS)):
            raise RulesetError("ruleset.toml", None,
                               f"input.fields must list some of {', '.join(conditions.OPTIONAL_FIELDS)}")
        m["input_fields"] = tuple(fields)
        sv = validation["sex_values"]
        if not (isinstance(sv, list) and sv and all(isinstance(v, int) and not isinstance(v, bool) for v in sv)):
            raise RulesetError("ruleset.toml", None, "validation.sex_values must be a list of integers")
        for v in sv:  # the kernel keeps the valid codes as bits of a 32-bit mask
            if not 0 <= v <= MAX_SEX_VALUE:
                raise RulesetError("ruleset.toml", None,
                                   f"validation.sex_values: {v} is outside 0..{MAX_SEX_VALUE}")
        m["engine"], m["validation"] = engine, validation
        return m

    # -- tables
    @staticmethod
    def _dictionary(tab: Table, code_col: str, name_col: str, rx: re.Pattern) -> dict[str, str]:
        out: dict[str, str] = {}
        for line, r in tab.rows:
            code = r[code_col]
            if not rx.match(code):
                raise RulesetError(tab.fname, line, f"malformed code {code!r}")
            if code in out:
                raise RulesetError(tab.fname, line, f"duplicate code {code!r}")
            out[code] = r[name_col]
        return out

    @staticmethod
    def _code_map(tab: Table, rx: re.Pattern) -> dict[str, str]:
        out: dict[str, str] = {}
        for line, r in tab.rows:
            src, dst = r["from_code"], r["to_code"]
            if not src or not rx.match(dst):
                raise RulesetError(tab.fname, line, f"malformed mapping {src!r} -> {dst!r}")
            if src in out and out[src] != dst:
                raise RulesetError(tab.fname, line, f"code {src!r} mapped twice")
            out[src] = dst
        return out

    @staticmethod
    def _json(tab: Table, line: int, col: str, text: str) -> dict:
        try:
            tree = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RulesetError(tab.fname, line, f"column {col}: invalid JSON ({exc.msg})") from None
        try:
            conditions.check_shape(tree)
        except ValueError as exc:
            raise RulesetError(tab.fname, line, f"column {col}: {exc}") from None
        return tree

    def _drgs(self, tab: Table) -> dict[tuple[str, str], Drg]:
        out: dict[tuple[str, str], Drg] = {}
        for line, r in tab.rows:
            code = r["drg"]
            if not DRG_CODE_RE.fullmatch(code):
                raise RulesetError(tab.fname, line, f"malformed DRG code {code!r}")
            if (r["adrg"], code) in out:
                raise RulesetError(tab.fname, line, f"duplicate DRG {code!r} for ADRG {r['adrg']}")
            out[(r["adrg"], code)] = Drg(code, r["drg_name"], r["adrg"],
                                         self._json(tab, line, "split_rule", r["split_rule"]))
        return out

    def _adrgs(self, tab: Table, drgs: dict[tuple[str, str], Drg]) -> dict[str, Adrg]:
        out: dict[str, Adrg] = {}
        lines: dict[str, int] = {}
        for line, r in tab.rows:
            code = r["adrg"]
            if not re.fullmatch(r"[A-Z0-9_.-]{1,16}", code):
                raise RulesetError(tab.fname, line, f"malformed ADRG rule id {code!r}")
            if code in out:
                raise RulesetError(tab.fname, line, f"duplicate ADRG {code!r}")
            report = r.get("adrg_code", "") or code
            nosplit = r.get("no_split_result", "")
            for what, value in (("adrg_code", report), ("no_split_result", nosplit)):
                if value and not DRG_CODE_RE.fullmatch(value):
                    raise RulesetError(tab.fname, line, f"ADRG {code}: malformed {what} {value!r}")
            order = tuple(x for x in r["drg_order"].split("|") if x)
            if not order and not nosplit:
                raise RulesetError(tab.fname, line, f"ADRG {code} has an empty drg_order and no no_split_result")
            if len(set(order)) != len(order):
                raise RulesetError(tab.fname, line, f"ADRG {code}: drg_order lists a DRG twice")
            for d in order:
                if (code, d) not in drgs:
                    owners = [a for a, c in drgs if c == d]
                    where = f"it belongs to ADRG {owners[0]} in drg.csv" if owners else "not in drg.csv"
                    raise RulesetError(tab.fname, line, f"ADRG {code}: drg_order names unknown DRG {d!r} ({where})")
            out[code] = Adrg(code, r["adrg_name"], r["mdc"], r["section"],
                             self._json(tab, line, "entry_rule", r["entry_rule"]), order, report, nosplit)
            lines[code] = line
        for d in drgs.values():
            if d.adrg not in out:
                raise RulesetError("drg.csv", None, f"DRG {d.code} names unknown ADRG {d.adrg!r} (dangling DRG)")
            if d.code not in out[d.adrg].drgs:
                raise RulesetError("adrg.csv", lines[d.adrg], f"ADRG {d.adrg}: DRG {d.code} is missing from drg_order")
        return out

    def _mdcs(self, tab: Table, adrgs: dict[str, Adrg]) -> dict[str, Mdc]:
        out: dict[str, Mdc] = {}
        orders: dict[int, str] = {}
        owner: dict[str, str] = {}
        for line, r in tab.rows:
            code = r["mdc"]
            if not re.fullmatch(r"MDC[A-Z]", code):
                raise RulesetError(tab.fname, line, f"malformed MDC code {code!r}")
            if code in out:
                raise RulesetError(tab.fname, line, f"duplicate MDC {code!r}")
            try:
                order = int(r["eval_order"])
            except ValueError:
                raise RulesetError(tab.fname, line, f"eval_order {r['eval_order']!r} is not an integer") from None
            if order in orders:
                raise RulesetError(tab.fname, line, f"eval_order {order} used twice ({orders[order]} and {code})")
            orders[order] = code
            seq = tuple(x for x in r["adrg_order"].split("|") if x)
            if not seq:
                raise RulesetError(tab.fname, line, f"MDC {code} has an empty adrg_order")
            for a in seq:
                if a not in adrgs:
                    raise RulesetError(tab.fname, line, f"MDC {code}: adrg_order names unknown ADRG {a!r}")
                if adrgs[a].mdc != code:
                    raise RulesetError(tab.fname, line, f"MDC {code}: ADRG {a} belongs to {adrgs[a].mdc} in adrg.csv")
                if a in owner:
                    raise RulesetError(tab.fname, line, f"ADRG {a} is ordered in both {owner[a]} and {code}")
                owner[a] = code
            qy_after = r["qy_after"]
            if qy_after and qy_after not in seq:
                raise RulesetError(tab.fname, line, f"MDC {code}: qy_after {qy_after!r} is not in its adrg_order")
            qy_rule = self._json(tab, line, "qy_rule", r["qy_rule"]) if r["qy_rule"] else None
            out[code] = Mdc(code, r["mdc_name"], order, self._json(tab, line, "entry_rule", r["entry_rule"]),
                            seq, qy_after, qy_rule)
        for a in adrgs.values():
            if a.mdc not in out:
                raise RulesetError("adrg.csv", None, f"ADRG {a.code} names unknown MDC {a.mdc!r}")
            if a.code not in owner:
                raise RulesetError("mdc.csv", None, f"ADRG {a.code} is in no MDC's adrg_order")
        return out

    def _pre_qy(self, tab: Table, mdcs: dict[str, Mdc]) -> dict[str, Mdc]:
        """Ambiguous-group rules tested at an MDC's place before its entry rule (qy_rules.csv)."""
        from dataclasses import replace

        seen: set[str] = set()
        for line, r in tab.rows:
            code, drg = r["mdc"], r["qy_drg"]
            if code not in mdcs:
                raise RulesetError(tab.fname, line, f"unknown MDC {code!r}")
            if code in seen:
                raise RulesetError(tab.fname, line, f"MDC {code} has more than one rule")
            seen.add(code)
            if not re.fullmatch(r"[A-Z][A-Z0-9]{1,7}", drg) or "MDC" + drg[0] not in mdcs:
                raise RulesetError(tab.fname, line, f"qy_drg {drg!r} must start with the letter of an MDC of the scheme")
            mdcs[code] = replace(mdcs[code], pre_qy_rule=self._json(tab, line, "rule", r["rule"]), pre_qy_drg=drg)
        return mdcs

    def _lists(self, t: dict[str, Table], adrgs: dict, mdcs: dict) -> dict[tuple[str, str], CodeList]:
        acc: dict[tuple[str, str], dict] = {}

        def add(key, kind, code, tab, line, label="", region=""):
            rx = DX_CODE_RE if kind == "dx" else PX_CODE_RE if kind == "px" else None
            if rx is not None and not rx.match(code):
                raise RulesetError(tab.fname, line, f"malformed code {code!r}")
            if rx is None and not (DX_CODE_RE.match(code) or PX_CODE_RE.match(code)):
                raise RulesetError(tab.fname, line, f"malformed code {code!r}")
            e = acc.setdefault(key, {"kind": kind, "codes": {}, "labels": {}, "regions": {}})
            if code not in e["codes"]:  # first occurrence wins (order and label)
                e["codes"][code] = None
                if label:
                    e["labels"][code] = label
                if region:
                    e["regions"][code] = region

        tab = t["mdc_dx.csv"]
        for line, r in tab.rows:
            if r["mdc"] not in mdcs:
                raise RulesetError(tab.fname, line, f"unknown MDC {r['mdc']!r}")
            add((r["mdc"], "mdc_dx"), "dx", r["dx_code"], tab, line, region=r["trauma_region"])
        for fname, col, kind in (("adrg_dx.csv", "dx_code", "dx"), ("adrg_px.csv", "px_code", "px")):
            tab = t[fname]
            for line, r in tab.rows:
                if r["adrg"] not in adrgs:
                    raise RulesetError(fname, line, f"unknown ADRG {r['adrg']!r}")
                # dx, dx2, px, ... or a set id of the scheme's own (DI_BB2, OP1_AC1)
                if not re.fullmatch(r"[a-z]+[0-9]*|[A-Z][A-Z0-9_]*", r["list"]):
                    raise RulesetError(fname, line, f"malformed list name {r['list']!r}")
                if r["list"].islower() and not r["list"].startswith(kind):
                    raise RulesetError(fname, line, f"list {r['list']!r} in {fname} must be named {kind}, {kind}2, ...")
                add((r["adrg"], r["list"]), kind, r[col], tab, line, label=r.get("label", ""))
        tab = t["or_procedures.csv"]
        for line, r in tab.rows:
            add((GLOBAL, "VALID_OR"), "px", r["px_code"], tab, line)
        tab = t["named_lists.csv"]
        for line, r in tab.rows:
            # OWNER.name, or a scheme-wide list name (DI_OBD, OP_ARB) that rules write unqualified
            if not re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)?", r["list"]) or r["list"] in ("VALID_OR", "mdc_dx"):
                raise RulesetError(tab.fname, line, f"named list {r['list']!r} must be OWNER.name or a scheme-wide name")
            o, n = r["list"].split(".", 1) if "." in r["list"] else (GLOBAL, r["list"])
            add((o, n), "any", r["code"], tab, line)
        return {
            k: CodeList(k[0], k[1], e["kind"], tuple(e["codes"]), e["labels"], e["regions"])
            for k, e in acc.items()
        }

    @staticmethod
    def _cc(cc_tab: Table, ex_tab: Table):
        cc: dict[str, tuple[str, str]] = {}
        for line, r in cc_tab.rows:
            code = r["dx_code"]
            if not DX_CODE_RE.match(code):
                raise RulesetError(cc_tab.fname, line, f"malformed code {code!r}")
            if r["level"] not in ("MCC", "CC"):
                raise RulesetError(cc_tab.fname, line, f"level must be MCC or CC, not {r['level']!r}")
            # an empty excl_table: no principal diagnosis excludes this CC/MCC
            if code in cc:
                # a code listed as both MCC and CC (same exclusion table) counts as both
                old_level, old_table = cc[code]
                if old_level == r["level"] or "+" in old_level or old_table != r["excl_table"]:
                    raise RulesetError(cc_tab.fname, line, f"duplicate code {code!r}")
                cc[code] = ("MCC+CC", old_table)
                continue
            cc[code] = (r["level"], r["excl_table"])
        pdx: dict[str, str] = {}
        for line, r in ex_tab.rows:
            code = r["pdx_code"]
            if not DX_CODE_RE.match(code):
                raise RulesetError(ex_tab.fname, line, f"malformed code {code!r}")
            if not r["excl_table"]:
                raise RulesetError(ex_tab.fname, line, "empty excl_table")
            if code in pdx:
                raise RulesetError(ex_tab.fname, line, f"duplicate code {code!r}")
            pdx[code] = r["excl_table"]
        return cc, pdx

    def _check_conditions(self, rs: Ruleset, t: dict[str, Table]) -> None:
        """Every list a condition names exists, is non-empty and holds the right kind."""

        field_values: dict[str, set[str]] = {}

        def check(tree: dict, owner: str, fname: str, key_col: str, drg: str = ""):
            line = next((ln for ln, r in t[fname].rows if r[key_col] == owner and (not drg or r["drg"] == drg)), None)
            for pred in conditions.predicates(tree):
                spec = conditions.PREDICATES[pred["pred"]]
                if "values" in spec.params and spec.field:
                    seen = field_values.setdefault(spec.field, set())
                    seen.update(pred["values"])
                    if len(seen) > MAX_FIELD_VALUES:
                        raise RulesetError(fname, line, f"{owner}: the conditions name more than {MAX_FIELD_VALUES} "
                                           f"distinct {spec.field} codes (the kernel holds at most "
                                           f"{MAX_FIELD_VALUES} per field)")
                try:
                    if "list" in spec.params:
                        lst = rs.resolve_list(pred["list"], owner)
                        if spec.kind and lst.kind not in (spec.kind, "any"):
                            raise KeyError(f"list {pred['list']!r} holds {lst.kind} codes, {pred['pred']} needs {spec.kind}")
                        if not lst.codes and f"{lst.owner}.{lst.name}" not in rs.validation["allow_empty_lists"]:
                            raise KeyError(f"list {pred['list']!r} is empty")
                        if pred["pred"] == "trauma_regions_ge" and not lst.regions:
                            raise KeyError(f"list {pred['list']!r} has no trauma regions")
                        if pred["pred"] == "trauma_regions_ge" and len(set(lst.regions.values())) > MAX_TRAUMA_REGIONS:
                            raise KeyError(f"list {pred['list']!r} has more than {MAX_TRAUMA_REGIONS} trauma regions")
                    if pred["pred"] == "px_label_present" and not rs.px_label_list(pred["label"], owner):
                        raise KeyError(f"no procedure of the px list carries label {pred['label']!r}")
                    if pred["pred"] == "any_dx_prefix" and not rs.dx_prefix_list(pred["prefix"]):
                        raise KeyError(f"no diagnosis of the dictionary starts with {pred['prefix']!r}")
                except KeyError as exc:
                    msg = exc.args[0] if isinstance(exc.args[0], str) and " " in exc.args[0] else (
                        f"condition names list {pred.get('list')!r}, which does not exist for {owner}")
                    raise RulesetError(fname, line, f"{owner}: {msg}") from None

        for m in rs.mdcs:
            check(m.entry_rule, m.code, "mdc.csv", "mdc")
            if m.qy_rule is not None:
                check(m.qy_rule, m.code, "mdc.csv", "mdc")
            if m.pre_qy_rule is not None:
                check(m.pre_qy_rule, m.code, "qy_rules.csv", "mdc")
        for a in rs.adrgs.values():
            check(a.entry_rule, a.code, "adrg.csv", "adrg")
        for d in rs.drgs.values():
            check(d.split_rule, d.adrg, "drg.csv", "adrg", d.code)

    @staticmethod
    def _fingerprint(manifest: dict, t: dict[str, Table]) -> str:
        """sha256 of everything the loader read: the whole manifest (with the defaults filled in)
        and every column of every table present, as parsed (see ``Table.canonical``). Not a
        list of the columns some version of the loader happens to use: a column it reads is
        always covered. Only what parsing normalises away keeps it: surrounding whitespace of
        a cell, a BOM, line endings and CSV quoting, column order, missing trailing cells."""
        h = hashlib.sha256(_FINGERPRINT_FORMAT.encode())
        h.update(b"\0" + json.dumps(manifest, sort_keys=True, ensure_ascii=False, default=str,
                                     separators=(",", ":")).encode())
        for fname in sorted(f for f in t if t[f].present):  # absent optional tables add nothing
            h.update(b"\0" + t[fname].canonical().encode())
        return h.hexdigest()


_FINGERPRINT_FORMAT = "drg-ruleset-fingerprint-2"

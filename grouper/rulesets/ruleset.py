"""Load, validate and fingerprint a grouping scheme stored as plain tables.

A scheme is a folder (``rules/<name>/``): ``ruleset.toml`` plus CSV tables. Everything the
grouper does comes from these tables; this module only reads them, checks that they hold
together, and gives them a content fingerprint. It knows nothing about Arrow or the kernel.
Errors name the file, the line and the problem, because a bureau editing a table needs to
find its mistake, not a traceback.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import operator
import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

from grouper.rulesets import conditions

__all__ = [
    "Adrg",
    "Drg",
    "Mdc",
    "Ruleset",
    "RulesetError",
    "available_rulesets",
    "load_ruleset",
    "rules_dirs",
]

#: Shape of a 医保版 ICD-10 code, dagger/asterisk pairs written as one string
#: (``A18.300x009+K93.0*``).
#: Group codes are opaque strings of up to 8 characters (4 nationally, 5 in some cities: BV11B).
DRG_CODE_RE = re.compile(r"[A-Z][A-Z0-9]{1,7}")
DX_CODE_RE = re.compile(
    r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Za-z]{1,12})?(\+[A-Z][0-9][0-9A-Z](\.[0-9A-Za-z]{0,12})?\*)?$"
)
#: Shape of a 医保版 ICD-9-CM-3 code (``37.5100``, ``00.5500x008``, ``48.0x03``).
PX_CODE_RE = re.compile(r"^[0-9]{2}(\.[0-9A-Za-z]{1,12})?$")

GLOBAL = ""  # owner of scheme-wide lists such as VALID_OR


class RulesetError(ValueError):
    """A ruleset folder that cannot be used; the message names file, line and problem."""

    def __init__(self, file: str, line: int | None, problem: str):
        self.file, self.line, self.problem = file, line, problem
        where = f"{file} line {line}" if line else file
        super().__init__(f"{where}: {problem}")


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


# --------------------------------------------------------------------------- finding

def rules_dirs() -> list[Path]:
    """Folders searched for rulesets by name: $DRG_RULES_PATH entries, then the bundled ones."""
    dirs = [Path(p) for p in os.environ.get("DRG_RULES_PATH", "").split(os.pathsep) if p]
    here = Path(__file__).resolve().parents[1]  # the grouper package
    dirs.append(here / "rules")  # installed wheel: rules/ is packaged as grouper/rules
    dirs.append(here.parent / "rules")  # source checkout / editable install
    return [d for d in dirs if d.is_dir()]


def available_rulesets() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in rules_dirs():
        for sub in sorted(d.iterdir()):
            if (sub / "ruleset.toml").is_file():
                found.setdefault(sub.name, sub)
    return found


def _find(name_or_path: str | os.PathLike) -> Path:
    p = Path(name_or_path)
    if (p / "ruleset.toml").is_file():
        return p
    found = available_rulesets()
    if str(name_or_path) in found:
        return found[str(name_or_path)]
    known = ", ".join(found) or "none"
    raise RulesetError(
        str(name_or_path), None, f"no such ruleset (not a folder with ruleset.toml; known: {known})"
    )


#: Tables and the columns each must have (a table may have more; the fingerprint covers all).
_SCHEMA = {
    "mdc.csv": ["mdc", "mdc_name", "eval_order", "entry_rule", "adrg_order", "qy_after", "qy_rule"],
    "mdc_dx.csv": ["mdc", "dx_code", "trauma_region"],
    "adrg.csv": ["adrg", "adrg_name", "mdc", "section", "entry_rule", "drg_order"],
    "adrg_dx.csv": ["adrg", "list", "dx_code"],
    "adrg_px.csv": ["adrg", "list", "px_code", "label"],
    "drg.csv": ["drg", "drg_name", "adrg", "split_rule"],
    "cc_mcc.csv": ["dx_code", "level", "excl_table"],
    "cc_exclusion.csv": ["pdx_code", "excl_table"],
    "or_procedures.csv": ["px_code", "px_name"],
    "dx_dict.csv": ["dx_code", "dx_name"],
    "px_dict.csv": ["px_code", "px_name"],
}
_OPTIONAL = {"named_lists.csv": ["list", "code"], "qy_rules.csv": ["mdc", "qy_drg", "rule"],
             "dx_map.csv": ["from_code", "to_code"], "px_map.csv": ["from_code", "to_code"]}

#: What a scheme is to its users (``status`` in ruleset.toml; ``drg rulesets`` shows it).
STATUSES = {"national-current": "国家现行版", "national-next": "国家新版（待实施）",
            "local": "地方版", "historic": "国家旧版"}
#: The scheme a command uses when none is named: the national version most regions run today
#: (its ruleset.toml says ``status = "national-current"``; a test keeps the two in step), and
#: the one a bureau regroups into next.
DEFAULT_RULESET = "chs-drg-2.0"
NEXT_RULESET = "chs-drg-3.0"

_CACHE: dict[str, Ruleset] = {}  # small: a process rarely uses many schemes
_CACHE_SIZE = 8

#: Every file the loader reads (tables it does not know are never opened).
_FILES = ("ruleset.toml", *_SCHEMA, *_OPTIONAL)
#: The modules whose code turns the files into a Ruleset: part of the disk-cache key.
_LOADER_MODULES = ("rulesets.ruleset", "rulesets.conditions")


def load_ruleset(name_or_path: str | os.PathLike) -> Ruleset:
    """Load and validate a ruleset by registry name (``"chs-drg-1.1"``) or folder path.

    Parsing the tables takes most of a second, so a validated ruleset is also kept on disk
    (``$DRG_CACHE_DIR``, default ``~/.cache/drg-grouper``; ``DRG_NO_CACHE=1`` turns it off),
    keyed by the sha256 of every byte of every file the loader reads (about 4 ms for 5 MB),
    the folder and the loader's own code: any edit reloads from the tables, whatever the
    files' sizes and modification times say. The loader parses exactly the bytes it hashed."""
    folder = _find(name_or_path).resolve()
    files = _read_files(folder)
    code = _code_hash(_LOADER_MODULES)
    h = hashlib.sha256(json.dumps([_CACHE_FORMAT, str(folder), code]).encode())
    for name in sorted(files):
        h.update(b"\0%s\0%d\0" % (name.encode(), len(files[name])))
        h.update(files[name])
    key = h.hexdigest()
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = _disk_cached(key if code else None, lambda: _Loader(folder, files).load())
    return _CACHE[key]


def _read_files(folder: Path) -> dict[str, bytes]:
    """The bytes of every file of ``folder`` that the loader reads; absent ones are left out."""
    out: dict[str, bytes] = {}
    for name in _FILES:
        try:
            out[name] = (folder / name).read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise RulesetError(name, None, f"unreadable: {exc.strerror or exc}") from None
    return out


@functools.lru_cache(maxsize=None)
def _code_hash(modules: tuple[str, ...]) -> str | None:
    """sha256 of the files of the named ``grouper`` modules (sources or built extensions) and
    the package version; None when one cannot be read (then nothing is cached on disk)."""
    import importlib

    from grouper._util.version import __version__

    h = hashlib.sha256(__version__.encode())
    for name in modules:
        try:
            h.update(b"\0" + name.encode() + b"\0")
            h.update(Path(importlib.import_module(f"grouper.{name}").__file__).read_bytes())
        except (OSError, TypeError, ImportError):
            return None
    return h.hexdigest()


# ---- the on-disk cache: content-keyed, verified, bounded, written atomically

_CACHE_FORMAT = "ruleset-cache-2"
_CACHE_MAGIC = b"drg-grouper cache 2\n"
_CACHE_SUFFIX = ".drgc"
#: Bounds of the cache folder: the most recently used entries are kept. A bundled scheme
#: takes two entries (ruleset about 5.5 MB, compiled arrays about 4 MB).
CACHE_MAX_ENTRIES = 32
CACHE_MAX_BYTES = 256 * 2**20
_LEGACY = re.compile(r"[0-9a-f]{32}-.+\.pkl")  # ruleset-cache-1 files
_TEMP_PREFIX = ".drgc-"
_TEMP_MAX_AGE_S = 3600  # a temporary file older than this was left by a killed writer


def cache_dir() -> Path:
    """The cache folder: ``$DRG_CACHE_DIR``, default ``~/.cache/drg-grouper``."""
    return Path(os.environ.get("DRG_CACHE_DIR") or Path.home() / ".cache" / "drg-grouper")


def _disk_cached(key: str | None, load, kind: type | None = None, valid=None):
    """``load()``'s result (an instance of ``kind``, by default a Ruleset), kept under the cache
    folder by ``key`` (None: not cached); also used by ``core`` for compiled rulesets.

    An entry is a header (its key, the sha256 and size of the payload) and a pickled payload.
    It is unpickled only when the header names this key, the payload's hash matches and the file
    belongs to this user and is writable by no one else; anything else (absent, truncated,
    corrupt, another format, another key, ``valid(obj)`` false) is ignored and rebuilt.
    Writes go to a temporary file renamed into place, so readers and concurrent writers only
    ever see whole entries; the folder keeps the ``CACHE_MAX_ENTRIES`` most recently used."""
    kind = kind or Ruleset
    if key is None or os.environ.get("DRG_NO_CACHE") == "1":
        return load()
    folder = cache_dir()
    path = folder / f"{key}{_CACHE_SUFFIX}"
    obj = _cache_read(path, key)
    if isinstance(obj, kind) and (valid is None or valid(obj)):
        return obj
    obj = load()
    _cache_write(folder, path, key, obj)
    return obj


def _cache_read(path: Path, key: str):
    import pickle

    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
                return None  # someone else could have written it
            data = fh.read()
        if not data.startswith(_CACHE_MAGIC):
            return None
        end = data.index(b"\n", len(_CACHE_MAGIC))
        head = json.loads(data[len(_CACHE_MAGIC):end])
        payload = memoryview(data)[end + 1:]
        if (not isinstance(head, dict) or head.get("key") != key or head.get("size") != len(payload)
                or head.get("sha256") != hashlib.sha256(payload).hexdigest()):
            return None
        obj = pickle.loads(payload)
    except Exception:  # absent, unreadable, truncated or corrupt: rebuilt by the caller
        return None
    try:
        os.utime(path)  # most recently used: the last to be evicted
    except OSError:
        pass
    return obj


def _cache_write(folder: Path, path: Path, key: str, obj) -> None:
    import pickle
    import tempfile

    tmp = None
    try:  # best effort: a read-only home only costs the next process a second
        payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        head = json.dumps({"key": key, "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest(),
                           "type": type(obj).__name__}).encode()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=_TEMP_PREFIX, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(_CACHE_MAGIC + head + b"\n")
            fh.write(payload)
        os.replace(tmp, path)
        tmp = None
        _cache_evict(folder)
    except (OSError, pickle.PicklingError):
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _cache_evict(folder: Path, max_entries: int | None = None, max_bytes: int | None = None) -> None:
    """Remove the least recently used entries beyond the bounds, old-format entries and the
    temporary files of killed writers. Only this cache's own file names are touched."""
    import time

    max_entries = CACHE_MAX_ENTRIES if max_entries is None else max_entries
    max_bytes = CACHE_MAX_BYTES if max_bytes is None else max_bytes
    entries, now = [], time.time()
    for p in folder.iterdir():
        try:
            st = p.stat()
        except OSError:
            continue
        name = p.name
        if name.endswith(_CACHE_SUFFIX):
            entries.append((st.st_mtime, st.st_size, p))
        elif _LEGACY.fullmatch(name) or (name.startswith(_TEMP_PREFIX) and now - st.st_mtime > _TEMP_MAX_AGE_S):
            _unlink(p)
    entries.sort(key=lambda e: e[0], reverse=True)
    total = 0
    for i, (_, size, p) in enumerate(entries):
        total += size
        if i >= max_entries or (i > 0 and total > max_bytes):
            _unlink(p)


def _unlink(p: Path) -> None:
    try:
        p.unlink()
    except OSError:  # another process removed it first
        pass


# --------------------------------------------------------------------------- loading

class _Table:
    """Rows of one CSV file with their line numbers, for error messages."""

    def __init__(self, files: dict[str, bytes], fname: str, columns: Iterable[str], required: bool = True):
        self.fname = fname
        self.header: list[str] = []
        self.rows: list[tuple[int, dict[str, str]]] = []
        data = files.get(fname)
        self.present = data is not None
        if not self.present:
            if required:
                raise RulesetError(fname, None, "file is missing")
            return
        try:
            reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""))
            self.header = list(reader.fieldnames or [])
            missing = [c for c in columns if c not in self.header]
            if missing:
                raise RulesetError(fname, 1, f"missing column(s): {', '.join(missing)}")
            for row in reader:
                if None in row:
                    raise RulesetError(fname, reader.line_num, "more fields than the header")
                clean = {k: (v or "").strip() for k, v in row.items()}
                self.rows.append((reader.line_num, clean))
        except UnicodeDecodeError as exc:
            raise RulesetError(fname, None, f"not UTF-8 ({exc.reason})") from None
        except csv.Error as exc:
            raise RulesetError(fname, None, f"malformed CSV: {exc}") from None

    def canonical(self) -> str:
        """Normalised content for the fingerprint: every column of the file (the ones the loader
        reads and any others, by name: their order does not matter), each row's values as the
        loader sees them (stripped), rows in file order. JSON, so the encoding is injective."""
        cols = sorted(set(self.header))
        get = operator.itemgetter(*cols) if len(cols) > 1 else lambda r: tuple(r[c] for c in cols)
        return json.dumps([self.fname, cols, [get(r) for _, r in self.rows]], ensure_ascii=False,
                          separators=(",", ":"))


_ENGINE_DEFAULTS = {"cc_scope": "secondary", "fail_retry": "none", "fail_adrgs": []}
_VALIDATION_DEFAULTS = {"sex_values": [1, 2], "newborn_max_age_days": 28, "max_age_years": 150,
                        "require_los": False, "allow_empty_lists": []}
FAIL_RETRY = ("none", "each_secondary_px_alone")

# Widths of what the kernel stores (cext/_records.pxd, cext/_kernel.pyx); wider settings are refused.
INT32_MAX = 2**31 - 1  # ages, day limits and condition values are int32
MAX_SEX_VALUE = 30  # valid sex codes are bits of an int32 mask
MAX_FIELD_VALUES = 64  # distinct codes of one value field (discharge, dept) in conditions: a 64-bit mask
MAX_TRAUMA_REGIONS = 64  # distinct body regions of one list: a 64-bit mask (int8 region ids)


class _Loader:
    def __init__(self, folder: Path, files: dict[str, bytes] | None = None):
        self.folder = folder
        self.files = _read_files(folder) if files is None else files

    def load(self) -> Ruleset:
        manifest = self._manifest()
        t = {f: _Table(self.files, f, cols) for f, cols in _SCHEMA.items()}
        t.update({f: _Table(self.files, f, cols, required=False) for f, cols in _OPTIONAL.items()})

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
    def _dictionary(tab: _Table, code_col: str, name_col: str, rx: re.Pattern) -> dict[str, str]:
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
    def _code_map(tab: _Table, rx: re.Pattern) -> dict[str, str]:
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
    def _json(tab: _Table, line: int, col: str, text: str) -> dict:
        try:
            tree = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RulesetError(tab.fname, line, f"column {col}: invalid JSON ({exc.msg})") from None
        try:
            conditions.check_shape(tree)
        except ValueError as exc:
            raise RulesetError(tab.fname, line, f"column {col}: {exc}") from None
        return tree

    def _drgs(self, tab: _Table) -> dict[tuple[str, str], Drg]:
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

    def _adrgs(self, tab: _Table, drgs: dict[tuple[str, str], Drg]) -> dict[str, Adrg]:
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

    def _mdcs(self, tab: _Table, adrgs: dict[str, Adrg]) -> dict[str, Mdc]:
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

    def _pre_qy(self, tab: _Table, mdcs: dict[str, Mdc]) -> dict[str, Mdc]:
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

    def _lists(self, t: dict[str, _Table], adrgs: dict, mdcs: dict) -> dict[tuple[str, str], CodeList]:
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
    def _cc(cc_tab: _Table, ex_tab: _Table):
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

    def _check_conditions(self, rs: Ruleset, t: dict[str, _Table]) -> None:
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
    def _fingerprint(manifest: dict, t: dict[str, _Table]) -> str:
        """sha256 of everything the loader read: the whole manifest (with the defaults filled in)
        and every column of every table present, as parsed (see ``_Table.canonical``). Not a
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


def describe(rs: Ruleset) -> dict[str, Any]:
    """Identity and size of a ruleset, as listed by ``drg rulesets``."""
    return {"name": rs.name, "version": rs.version, "title": rs.title, "status": rs.status,
            "default": rs.name == DEFAULT_RULESET, "fingerprint": rs.fingerprint, **rs.counts(), "path": rs.path}

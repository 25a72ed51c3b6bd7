"""Where schemes are found by name, what they are to their users (status), which one a
command uses by default, and their one-line description for ``drg rulesets``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grouper.rulesets.errors import RulesetError

if TYPE_CHECKING:
    from grouper.rulesets.model import Ruleset

__all__ = ["DEFAULT_RULESET", "NEXT_RULESET", "STATUSES", "available_rulesets", "describe", "find_ruleset",
           "rules_dirs"]

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


def find_ruleset(name_or_path: str | os.PathLike) -> Path:
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

#: What a scheme is to its users (``status`` in ruleset.toml; ``drg rulesets`` shows it).
STATUSES = {"national-current": "国家现行版", "national-next": "国家新版（待实施）",
            "local": "地方版", "historic": "国家旧版"}
#: The scheme a command uses when none is named: the national version most regions run today
#: (its ruleset.toml says ``status = "national-current"``; a test keeps the two in step), and
#: the one a bureau regroups into next.
DEFAULT_RULESET = "chs-drg-2.0"
NEXT_RULESET = "chs-drg-3.0"


def describe(rs: Ruleset) -> dict[str, Any]:
    """Identity and size of a ruleset, as listed by ``drg rulesets``."""
    return {"name": rs.name, "version": rs.version, "title": rs.title, "status": rs.status,
            "default": rs.name == DEFAULT_RULESET, "fingerprint": rs.fingerprint, **rs.counts(), "path": rs.path}

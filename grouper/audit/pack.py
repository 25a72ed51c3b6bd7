"""Audit packs: the thresholds of the provider screens as a validated TOML file
(``rules/audit/default.toml`` bundled). Like payment packs, every key is type- and range-checked,
an unknown key is refused (a typo must not fall back to a default), and the error names the file
and the dotted key."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from grouper.rulesets import rules_dirs

__all__ = ["PERIODS", "AuditPack", "AuditPackError", "load_audit_pack", "parse_audit_pack"]

#: drift periods, from the discharge date: the last two in the data are compared
PERIODS = ("year", "half", "quarter", "month")


class AuditPackError(ValueError):
    def __init__(self, file: str, key: str, problem: str):
        super().__init__(f"{file}: {key}: {problem}" if key else f"{file}: {problem}")


@dataclass(frozen=True)
class AuditPack:
    name: str
    description: str
    alpha: float
    min_cases: int
    min_ratio: float
    peer_column: str
    split_windows: tuple[int, ...]
    short_first_stay: int
    split_min_score: float
    planned_dx: tuple[str, ...]
    low_max_weight: float
    low_max_los: int
    low_max_cost_ratio: float
    long_min_days: int
    long_los_ratio: float
    death_max_group_mortality: float
    share_column: str
    share_min_excess: float
    share_min_mean_excess: float
    drift_period: str = "year"
    drift_min_change: float = 0.03
    drift_min_period_share: float = 0.25
    lift_min_ratio: float = 2.0
    lift_min_cases: int = 10
    avoid_min_ratio: float = 1.2
    dept_column: str = "dept"
    path: str = ""


class _Table:
    def __init__(self, file: str, key: str, data):
        if not isinstance(data, dict):
            raise AuditPackError(file, key, "must be a table")
        self.file, self.key, self.data, self.seen = file, key, data, set()

    def fail(self, name: str, problem: str):
        raise AuditPackError(self.file, f"{self.key}.{name}" if self.key else name, problem)

    def sub(self, name: str) -> "_Table":
        self.seen.add(name)
        return _Table(self.file, name, self.data.get(name, {}))

    def number(self, name: str, default, lo: float, hi: float, integer: bool = False):
        self.seen.add(name)
        v = self.data.get(name, default)
        if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)):
            self.fail(name, f"must be {'an integer' if integer else 'a number'}")
        if not lo <= v <= hi:
            self.fail(name, f"{v} is outside [{lo}, {hi}]")
        return v

    def text(self, name: str, default: str) -> str:
        self.seen.add(name)
        v = self.data.get(name, default)
        if not isinstance(v, str) or not v:
            self.fail(name, "must be non-empty text")
        return v

    def choice(self, name: str, default: str, options: tuple[str, ...]) -> str:
        self.seen.add(name)
        v = self.data.get(name, default)
        if v not in options:
            self.fail(name, f"must be one of {', '.join(options)}")
        return v

    def list(self, name: str, default: list, kind: type) -> list:
        self.seen.add(name)
        v = self.data.get(name, default)
        if not isinstance(v, list) or not all(isinstance(x, kind) and not isinstance(x, bool) for x in v):
            self.fail(name, f"must be a list of {kind.__name__}")
        return v

    def done(self):
        extra = sorted(set(self.data) - self.seen)
        if extra:
            self.fail(extra[0], "unknown key")


def parse_audit_pack(doc: dict, file: str = "<audit pack>") -> AuditPack:
    top = _Table(file, "", doc)
    p, s, sp, lo, ls, d, cs, dr, lf, av, dp = (top.sub(k) for k in (
        "pack", "significance", "split", "low_standard", "long_stay", "death", "cost_shift", "drift", "lifting_dx",
        "avoidance", "department"))
    windows = sp.list("windows", [15, 30], int)
    if not windows or any(w < 1 or w > 365 for w in windows) or windows != sorted(set(windows)):
        sp.fail("windows", "must be increasing day counts in [1, 365]")
    pack = AuditPack(
        name=p.text("name", "custom"), description=p.text("description", "-"),
        alpha=s.number("alpha", 0.05, 1e-9, 0.5), min_cases=s.number("min_cases", 30, 1, 10**9, True),
        min_ratio=s.number("min_ratio", 1.2, 1, 100),
        peer_column=s.text("peer_column", "hospital_level"),
        split_windows=tuple(windows), short_first_stay=sp.number("short_first_stay", 3, 0, 365, True),
        split_min_score=sp.number("min_score", 0.8, 0, 1), planned_dx=tuple(sp.list("planned_dx", [], str)),
        low_max_weight=lo.number("max_weight", 0.6, 0, 100), low_max_los=lo.number("max_los", 3, 0, 365, True),
        low_max_cost_ratio=lo.number("max_cost_ratio", 0.5, 0, 10),
        long_min_days=ls.number("min_days", 60, 1, 10**5, True), long_los_ratio=ls.number("los_ratio", 3.0, 1, 100),
        death_max_group_mortality=d.number("max_group_mortality", 0.005, 0, 1),
        share_column=cs.text("share_column", "patient_share"), share_min_excess=cs.number("min_excess", 0.1, 0, 1),
        share_min_mean_excess=cs.number("min_mean_excess", 0.02, 0, 1),
        drift_period=dr.choice("period", "year", PERIODS), drift_min_change=dr.number("min_change", 0.03, 0, 1),
        drift_min_period_share=dr.number("min_period_share", 0.25, 0, 1),
        lift_min_ratio=lf.number("min_ratio", 2.0, 1, 1000), lift_min_cases=lf.number("min_cases", 10, 1, 10**9, True),
        avoid_min_ratio=av.number("min_ratio", 1.2, 1, 100), dept_column=dp.text("column", "dept"),
        path=file)
    for t in (p, s, sp, lo, ls, d, cs, dr, lf, av, dp, top):
        t.done()
    return pack


def load_audit_pack(name_or_path: str | os.PathLike | None = None) -> AuditPack:
    """The pack at a path, or a bundled one by name (``rules/audit/<name>.toml``; None: default)."""
    path = Path(name_or_path) if name_or_path is not None else None
    if path is None or not path.is_file():
        name = "default" if name_or_path is None else str(name_or_path)
        found = [d / "audit" / f"{name}.toml" for d in rules_dirs() if (d / "audit" / f"{name}.toml").is_file()]
        if not found or name == "edits":
            raise AuditPackError(str(name_or_path), "", "no such file and no bundled audit pack of that name")
        path = found[0]
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise AuditPackError(str(path), "", f"not valid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditPackError(str(path), "", f"unreadable ({exc})") from None
    return parse_audit_pack(doc, str(path))

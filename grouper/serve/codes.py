"""Diagnosis and procedure code search for autocomplete: one index per ruleset, built once at
start-up from the ruleset's dictionaries (dx_dict.csv, px_dict.csv), answered without a scan
of Python objects per entry (prefix by bisection, name substring by ``str.find`` on one text)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from grouper.rulesets import Ruleset

__all__ = ["CodeIndex"]

KINDS = ("dx", "px")


class _Dictionary:
    """One dictionary: codes sorted for prefix search, names joined for substring search."""

    def __init__(self, names: dict[str, str]):
        self.codes = sorted(names)
        self.names = [names[c] for c in self.codes]
        self.upper = [c.upper() for c in self.codes]
        # the names, one per line; starts[i] is where name i begins in the text
        self.text = "\n".join(self.names)
        self.starts = []
        pos = 0
        for n in self.names:
            self.starts.append(pos)
            pos += len(n) + 1

    def by_code(self, q: str, limit: int) -> list[int]:
        q = q.upper()
        lo = bisect_left(self.upper, q)
        hi = bisect_right(self.upper, q + "\uffff")
        return list(range(lo, min(hi, lo + limit)))

    def by_name(self, q: str, limit: int, seen: set[int]) -> list[int]:
        out = []
        at = self.text.find(q)
        while at >= 0 and len(out) < limit:
            i = bisect_right(self.starts, at) - 1
            if i not in seen:
                out.append(i)
                seen.add(i)
            at = self.text.find(q, self.starts[i + 1] if i + 1 < len(self.starts) else len(self.text))
        return out


class CodeIndex:
    """Code and name search over one ruleset's diagnosis and procedure dictionaries."""

    def __init__(self, rs: Ruleset):
        self.dicts = {"dx": _Dictionary(rs.dx_names), "px": _Dictionary(rs.px_names)}

    def search(self, q: str, kind: str | None = None, limit: int = 20) -> list[dict]:
        """Codes starting with ``q`` first (case-insensitive), then names containing it."""
        q = q.strip()
        if not q:
            return []
        out: list[dict] = []
        for k in (kind,) if kind else KINDS:
            d = self.dicts[k]
            for i in d.by_code(q, limit - len(out)):
                out.append({"kind": k, "code": d.codes[i], "name": d.names[i]})
        for k in (kind,) if kind else KINDS:
            if len(out) >= limit:
                break
            d = self.dicts[k]
            codes = {r["code"] for r in out if r["kind"] == k}  # already found by code
            for i in d.by_name(q, limit - len(out) + len(codes), set()):
                if d.codes[i] not in codes and len(out) < limit:
                    out.append({"kind": k, "code": d.codes[i], "name": d.names[i]})
        return out

    def name(self, kind: str, code: str) -> str:
        d = self.dicts[kind]
        i = bisect_left(d.codes, code)
        return d.names[i] if i < len(d.codes) and d.codes[i] == code else ""

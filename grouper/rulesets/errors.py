"""``RulesetError``, apart from the data model: the modules a cache hit runs (registry, tables,
source) raise it without importing the model's dataclasses (start-up)."""

from __future__ import annotations

__all__ = ["RulesetError"]


class RulesetError(ValueError):
    """A ruleset folder that cannot be used; the message names file, line and problem."""

    def __init__(self, file: str, line: int | None, problem: str):
        self.file, self.line, self.problem = file, line, problem
        where = f"{file} line {line}" if line else file
        super().__init__(f"{where}: {problem}")

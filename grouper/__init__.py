"""drg-grouper: an exact, fast CHS-DRG grouper over Apache Arrow.

    >>> import grouper
    >>> g = grouper.Grouper("chs-drg-1.1")
    >>> g.group_one(sex=1, age=65, dx=["C61.x00"], px=["60.5x02"]).drg
    'MA19'

The public names are imported on first use (PEP 562): ``import grouper`` (and so every
``grouper.<sub>`` import, the ``drg`` command's included) does not load the engine, NumPy or
Arrow compute until a name that needs them is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from grouper._util.lazy import lazy_attributes
from grouper._util.version import __version__

if TYPE_CHECKING:  # for type checkers and editors; at run time __getattr__ imports them
    from grouper._util.errors import CorruptInputError, InputError
    from grouper.engine import Grouper, GroupResult, group_batch
    from grouper.rulesets import Ruleset, RulesetError, available_rulesets, load_ruleset

#: public name -> the module that defines it, imported when the name is first used
_LAZY = {
    "InputError": "grouper._util.errors", "CorruptInputError": "grouper._util.errors",
    "Grouper": "grouper.engine", "GroupResult": "grouper.engine", "group_batch": "grouper.engine",
    "Ruleset": "grouper.rulesets", "RulesetError": "grouper.rulesets", "available_rulesets": "grouper.rulesets",
    "load_ruleset": "grouper.rulesets",
}

__all__ = ["Grouper", "GroupResult", "group_batch", "InputError", "CorruptInputError", "Ruleset", "RulesetError", "available_rulesets",
           "load_ruleset", "__version__"]


__getattr__ = lazy_attributes(globals(), _LAZY)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

"""drg-grouper: an exact, fast CHS-DRG grouper over Apache Arrow.

    >>> import grouper
    >>> g = grouper.Grouper("chs-drg-1.1")
    >>> g.group_one(sex=1, age=65, dx=["C61.x00"], px=["60.5x02"]).drg
    'MA19'
"""

from grouper._util.errors import CorruptInputError, InputError
from grouper._util.version import __version__
from grouper.engine import Grouper, GroupResult, group_batch
from grouper.rulesets import Ruleset, RulesetError, available_rulesets, load_ruleset

__all__ = ["Grouper", "GroupResult", "group_batch", "InputError", "CorruptInputError", "Ruleset", "RulesetError", "available_rulesets",
           "load_ruleset", "__version__"]

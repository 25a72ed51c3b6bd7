"""Rule tables as plain data: the model, loading with validation and fingerprint, the condition
vocabulary, the registry of bundled and local schemes, the verified disk cache."""

from grouper.rulesets.cache import cache_dir, code_hash, disk_cached, stamped_key
from grouper.rulesets.loader import LOADER_MODULES, load_ruleset, ruleset_source, ruleset_stamp
from grouper.rulesets.model import GLOBAL, Adrg, CodeList, Drg, Mdc, Ruleset, RulesetError
from grouper.rulesets.registry import (DEFAULT_RULESET, NEXT_RULESET, STATUSES, available_rulesets, describe,
                                       rules_dirs)

__all__ = ["DEFAULT_RULESET", "GLOBAL", "LOADER_MODULES", "NEXT_RULESET", "STATUSES", "Adrg", "CodeList", "Drg",
           "Mdc", "Ruleset", "RulesetError", "available_rulesets", "cache_dir", "code_hash", "describe",
           "disk_cached", "load_ruleset", "rules_dirs", "ruleset_source", "ruleset_stamp", "stamped_key"]

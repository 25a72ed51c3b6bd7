"""Rule tables as plain data: the model, loading with validation and fingerprint, the condition
vocabulary, the registry of bundled and local schemes, the verified disk cache.

The data model and the loader are imported on first use of their names (PEP 562): a run that
finds its compiled scheme in the cache parses no table and needs neither (start-up)."""

from grouper._util.lazy import lazy_attributes
from grouper.rulesets.cache import cache_dir, code_hash, disk_cached, stamped_key
from grouper.rulesets.errors import RulesetError
from grouper.rulesets.registry import (DEFAULT_RULESET, NEXT_RULESET, STATUSES, available_rulesets, describe,
                                       rules_dirs)
from grouper.rulesets.source import LOADER_MODULES, ruleset_source, ruleset_stamp

__all__ = ["DEFAULT_RULESET", "GLOBAL", "LOADER_MODULES", "NEXT_RULESET", "STATUSES", "Adrg", "CodeList", "Drg",
           "Mdc", "Ruleset", "RulesetError", "available_rulesets", "cache_dir", "code_hash", "describe",
           "disk_cached", "load_ruleset", "rules_dirs", "ruleset_source", "ruleset_stamp", "stamped_key"]

_LAZY = {"GLOBAL": "grouper.rulesets.model", "Adrg": "grouper.rulesets.model", "CodeList": "grouper.rulesets.model",
         "Drg": "grouper.rulesets.model", "Mdc": "grouper.rulesets.model", "Ruleset": "grouper.rulesets.model",
         "load_ruleset": "grouper.rulesets.loader"}


__getattr__ = lazy_attributes(globals(), _LAZY)

"""The grouping engine: rule tables compiled to flat arrays, the Cython kernel that evaluates them
over Arrow batches, the reference interpreter that checks it, and the ``Grouper`` API.

Other subpackages import the engine's public names from here. Modules inside the engine import
the exact module they need (never this package), so the order below is only that of their
dependencies: constants and statuses, the Arrow boundary, the compiler, the API. The reference
interpreter and the explanation are imported on first use of their names (``_LAZY``).
"""

from grouper._util.lazy import lazy_attributes
from grouper.engine.status import (CC_LABELS, CHECK_FLAGS, STATUS_LABELS, STATUS_NAMES_ZH, CcLevel, Flag, Reason,
                                   Status, describe_flags, describe_reason)
from grouper.engine.inputs import (CODE_COLUMNS, CorruptInputError, Encoded, Encoder, InputError, check_columns,
                                   iter_batches)
from grouper.engine.compile import CompiledRuleset, compile_ruleset
from grouper.engine.summary import BatchCounts, RunSummary
from grouper.engine.grouper import (OUTPUT_COLUMNS, output_columns, Grouper, GroupResult, default_threads, group_batch, kept_name,
                                    kept_names)

#: Imported on first use (PEP 562): a grouping run neither explains nor replays cases (start-up).
_LAZY = {"Case": "grouper.engine.reference", "ReferenceGrouper": "grouper.engine.reference",
         "Explanation": "grouper.engine.explain"}


__getattr__ = lazy_attributes(globals(), _LAZY)


__all__ = [
    "CC_LABELS", "CHECK_FLAGS", "CODE_COLUMNS", "OUTPUT_COLUMNS", "output_columns", "STATUS_LABELS", "STATUS_NAMES_ZH",
    "BatchCounts", "Case", "CcLevel", "CompiledRuleset", "CorruptInputError", "Encoded", "Encoder", "Explanation",
    "Flag", "GroupResult", "Grouper", "InputError", "Reason", "ReferenceGrouper", "RunSummary", "Status",
    "check_columns", "compile_ruleset", "default_threads", "describe_flags", "describe_reason", "group_batch",
    "iter_batches",
    "kept_name", "kept_names",
]

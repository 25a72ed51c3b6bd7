"""DRG settlement: payment standards, case types, the knob waterfall, year-end clearance.

The modules, in the order a settlement uses them: ``inputs`` (columns, case types, the weights
and hospital tables), ``cases`` (per-batch preparation), ``waterfall`` (the knob steps),
``pricing`` (case types and amounts), ``special_review``, ``renormalise`` (the rate scale),
``gather`` (pass 1), ``totals`` (pass 2: hospital and month tables) and ``run`` (the passes);
``quote`` prices one case with the same code (``CaseQuoter``)."""

from grouper.payment.drg.inputs import (DRG_CASE_TYPE_NAMES_ZH, DRG_CASE_TYPES, SETTLE_STATUSES, DrgColumns,
                                        DrgSettlement, needed_columns)
from grouper.payment.drg.run import settle, settle_batches
from grouper.payment.drg.quote import CaseQuoter, Quote
from grouper.payment.drg.waterfall import WATERFALL, Step

__all__ = ["DRG_CASE_TYPE_NAMES_ZH", "DRG_CASE_TYPES", "SETTLE_STATUSES", "WATERFALL", "CaseQuoter", "DrgColumns",
           "DrgSettlement", "Quote", "Step",
           "needed_columns", "settle", "settle_batches"]

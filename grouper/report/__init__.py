"""Self-contained HTML reports, one module per report; matplotlib is imported only when a plot is drawn."""

from grouper.report.indices import write_indices_report
from grouper.report.recalibration import write_recalibration_report
from grouper.report.regroup import write_regroup_report
from grouper.report.settlement import write_settlement_report
from grouper.report.weights import write_weights_report

__all__ = ["write_indices_report", "write_recalibration_report", "write_regroup_report",
           "write_settlement_report", "write_weights_report"]

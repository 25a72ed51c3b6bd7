"""The ``drg`` command line: option parsing and exit codes only; each command calls one job.

Exit codes: 0 finished (ungroupable and invalid cases are data, reported per row);
1 runtime, I/O or ruleset error (one-line reason on stderr); 2 usage error, including a
missing required input column or a bad column mapping; 3 (``group --max-error-rate``) the
output was written but too many cases are invalid or ungroupable; 130 interrupted (Ctrl-C),
nothing written.

Outputs, the same in every command: tables are ``-o`` (format from the extension: .csv,
.parquet, .arrow, .xlsx), ``--summary`` is always a JSON file, ``--report`` always an HTML page;
``--overwrite``, ``--bom`` and ``--progress/--no-progress`` mean the same everywhere.
"""

from __future__ import annotations

import click

from grouper._util.version import __version__
from grouper.cli._common import INPUT_HELP, DrgGroup

#: Every ``drg`` command: name -> (module, its click command, short help for ``drg --help``).
#: A command's module is imported only when it runs (or its own --help is asked for), so that
#: ``drg group`` does not load the settlement, audit, DIP or web modules, and ``drg --help``
#: loads none: its list is made from here (the commands carry the same short help when loaded).
COMMANDS = {
    "group": ("grouper.cli.group", "group", "Group case files into one output, one row per case."),
    "explain": ("grouper.cli.group", "explain", "Show why one case lands in its group (and its price)."),
    "rulesets": ("grouper.cli.rulesets", "rulesets", "List the rulesets this installation knows."),
    "groups": ("grouper.cli.rulesets", "groups", "List a scheme's MDCs, ADRGs and DRGs with their names."),
    "validate-ruleset": ("grouper.cli.rulesets", "validate_ruleset",
                         "Check a ruleset folder's tables, then compile it."),
    "compile": ("grouper.cli.rulesets", "compile_command", "Compile a ruleset as the grouper would; say what it holds."),
    "synth": ("grouper.cli.rulesets", "synth", "Write a SYNTHETIC province of cases (no real patients)."),
    "regroup": ("grouper.cli.analytics", "regroup", "Regroup cases into another ruleset: who moves where."),
    "weights": ("grouper.cli.analytics", "weights", "Relative weights (RW) per DRG from case files with costs."),
    "indices": ("grouper.cli.analytics", "indices", "Hospital indices: CMI, cost and time indices, mortality."),
    "recalibrate": ("grouper.cli.analytics", "recalibrate", "Compare two weight sets on the same cases."),
    "settle": ("grouper.cli.settle", "settle", "DRG settlement of cases under a payment pack."),
    "dip": ("grouper.cli.dip", "dip", "DIP (按病种分值付费): catalogue, assign, settle."),
    "audit": ("grouper.cli.audit", "audit", "Audit cases: coding edits and provider screens (智能审核)."),
    "serve": ("grouper.cli.serve", "serve", "Serve grouping over HTTP, with a web page for coders."),
}


@click.group(cls=DrgGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=INPUT_HELP)
@click.version_option(__version__, prog_name="drg-grouper")
def main() -> None:
    """drg-grouper: group inpatient cases into CHS-DRG groups, exactly and fast.

    
    Outputs, the same in every command:
      -o FILE            a table: .csv, .parquet, .arrow or .xlsx (by extension)
      --summary FILE     a JSON summary;  --report FILE  an HTML report
      --by-hospital FILE the per-hospital table (recalibrate, settle, dip settle)
      --overwrite        replace existing outputs (never an input, never one path twice)
      --bom              CSV with a UTF-8 BOM, for Excel on Chinese Windows
      --progress/--no-progress   progress on stderr (default: on a terminal)
      --year-weights     YEAR=WEIGHT,... e.g. 2022=1,2023=2,2024=7
    Amounts are exact decimals (yuan, 2 places). A failed or interrupted (Ctrl-C: exit 130)
    command leaves none of its outputs.
    """


if __name__ == "__main__":  # pragma: no cover
    main()

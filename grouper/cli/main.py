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
from grouper.cli import analytics, audit, dip, group, rulesets, serve, settle
from grouper.cli._common import INPUT_HELP, DrgGroup


@click.group(cls=DrgGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=INPUT_HELP)
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


for command in (group.group, group.explain, rulesets.rulesets, rulesets.groups, rulesets.validate_ruleset, rulesets.compile_command,
                rulesets.synth,
                analytics.regroup, analytics.weights, analytics.indices, analytics.recalibrate, settle.settle,
                dip.dip, audit.audit, serve.serve):
    main.add_command(command)

if __name__ == "__main__":  # pragma: no cover
    main()

"""``drg group`` (files, or a dataset on workers) and ``drg explain`` (one case, why)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from grouper._util.batches import DEFAULT_BATCH
from grouper.cli._common import (RULESET_HELP, command_errors, dask_client, input_options, make_grouper,
                                 output_options, plain_inputs_only, progress_stream)
from grouper.rulesets import DEFAULT_RULESET


@click.command()
@click.option("-o", "--output", type=click.Path(),
              help="Output file; format from the extension (.csv, .parquet, .arrow, .xlsx). "
                   "Without it, a readable table is printed. With --workers/--scheduler: an output FOLDER.")
@click.option("-r", "--ruleset", default=DEFAULT_RULESET, show_default=True, help=RULESET_HELP)
@click.option("-t", "--threads", type=click.IntRange(min=1), default=None,
              help="Kernel threads (default: the CPUs this process may use).")
@click.option("--keep", multiple=True, metavar="COL", help="Input column to copy to the output (repeatable); "
              "one named like an output column (status, drg, ...) is written as input_<name>.")
@click.option("--keep-all", is_flag=True, help="Copy every input column (of the first input) to the output, "
              "except those named like output columns.")
@click.option("--names/--no-names", default=None,
              help="Write the name columns (mdc_name, adrg_name, drg_name). Default: in CSV and Excel "
                   "outputs and the printed table, not in Parquet or Arrow files, whose metadata names "
                   "the ruleset: `drg groups -r RULESET` lists the names by drg.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH, show_default=True,
              help="Rows per batch; memory use follows this, not the file size.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="Rows shown when printing a table (no --output).")
@click.option("--summary", type=click.Path(dir_okay=False),
              help="JSON summary: counts per status, MDC, DRG and flag, ruleset, timing.")
@click.option("--report", "old_report", hidden=True, type=click.Path(dir_okay=False))
@click.option("--max-error-rate", type=click.FloatRange(0, 1), metavar="R",
              help="Exit 3 (output still written) when more than this share (0..1) of cases "
                   "is invalid or ungroupable.")
@click.option("--workers", type=click.IntRange(min=1), metavar="N",
              help="Group a Parquet dataset with N local processes, one kernel thread each, one task per "
                   "file (big files: per run of row groups). -o is then a folder of part-<file>.parquet "
                   "files in input order, with _manifest.json; rerunning resumes, skipping finished parts.")
@click.option("--scheduler", metavar="ADDRESS",
              help="Like --workers, on the Dask cluster at ADDRESS (e.g. tcp://host:8786); every worker "
                   "needs drg-grouper installed and the inputs and -o folder reachable. Needs drg-grouper[dask].")
@output_options
@input_options
def group(inputs, output, ruleset, threads, keep, keep_all, names, batch_size, limit, summary, old_report,
          max_error_rate, workers, scheduler, overwrite, bom, progress):
    """Group the cases of INPUT... (files, folders, glob patterns: see `drg --help`) into one
    output, in order.

    Input columns: sex (1 male, 2 female), age (years), age_days, birth_weight (g),
    dx and px (principal first; list<string> or text joined with | , ;), case_id optional.
    One output row per input row, in input order: case_id, status, mdc, adrg, drg, cc_level,
    flags, reason_code and reason (Chinese), and in CSV/Excel (or with --names) the names.

    Exit codes: 0 done; 1 runtime or I/O error; 2 usage error (bad option, missing column);
    3 output written but the share of invalid/ungroupable cases is above --max-error-rate.

    With --workers N or --scheduler ADDRESS, INPUT... are Parquet files, folders (searched
    recursively), globs or URIs (s3://...), and -o names an output folder; a part that fails
    is reported (exit 1) and rerunning the same command retries only the unfinished parts
    (--overwrite regroups every part instead).
    """
    from grouper.jobs.group import group_files

    if old_report is not None:
        raise click.UsageError("--report is the HTML report in every command and drg group has none; "
                               "its JSON summary is --summary")
    report = summary
    if workers is not None or scheduler is not None:
        return _group_dataset(inputs, output, ruleset, threads, overwrite, keep, keep_all, batch_size, report,
                              max_error_rate, progress, workers, scheduler, bom, names)
    if output is not None and Path(output).is_dir():
        raise click.UsageError(f"-o {output}: is a folder; folders are written with --workers or --scheduler")
    g = make_grouper(ruleset, threads)
    with command_errors():
        summary, table = group_files(
            g, inputs, output, overwrite=overwrite, keep=True if keep_all else keep, batch_size=batch_size,
            report=report, max_error_rate=max_error_rate, progress=progress_stream(progress),
            log=lambda msg: click.echo(msg, err=True), bom=bom, names=names)
    if table is not None:
        click.echo(format_table(table, limit))
    click.echo(summary.line(), err=True)
    if summary.breach:
        click.echo(f"Error: {summary.breach}", err=True)
        sys.exit(3)



def _group_dataset(inputs, output, ruleset, threads, overwrite, keep, keep_all, batch_size, report, max_error_rate,
                   progress, workers, scheduler, bom=False, names=None):
    """``drg group --workers/--scheduler``: grouper.scale.group_dataset into a folder."""
    from grouper.scale import group_dataset

    plain_inputs_only(inputs)
    if bom:
        raise click.UsageError("--bom applies to CSV outputs; --workers/--scheduler write Parquet parts")
    if workers is not None and scheduler is not None:
        raise click.UsageError("give --workers (local processes) or --scheduler (a Dask cluster), not both")
    if output is None:
        raise click.UsageError("--workers/--scheduler write a folder of part files: name it with -o DIR")
    if threads is not None:
        raise click.UsageError("--threads does not apply with --workers/--scheduler: "
                               "each worker runs one kernel thread")
    g = make_grouper(ruleset, None)
    with dask_client(scheduler) as client, command_errors():
        result = group_dataset(
            list(inputs), output, g, client, workers=workers, keep=True if keep_all else keep,
            mapping=inputs.mapping, map_file=inputs.map_file, layout=inputs.layout, batch_size=batch_size,
            overwrite=overwrite, report=report, max_error_rate=max_error_rate, progress=progress_stream(progress),
            names=bool(names))
    click.echo(result.line(), err=True)
    if result.failed:
        for row in result.failed[:10]:
            click.echo(f"failed: {row.get('error') or row['fragment']}", err=True)
        raise click.ClickException(f"{len(result.failed)} of {len(result.manifest['fragments'])} parts failed "
                                   f"(the others are in {output}); rerun the same command to retry only those")
    if result.summary.breach:
        click.echo(f"Error: {result.summary.breach}", err=True)
        sys.exit(3)



def format_table(table, limit: int, columns=("case_id", "status", "mdc", "adrg", "drg", "cc_level", "drg_name",
                                             "reason")) -> str:
    """A plain aligned table of ``columns`` (the main output columns by default), for people."""
    cols = [c for c in columns if c in table.column_names]
    rows = table.slice(0, limit).select(cols).to_pylist()
    cells = [[("" if r[c] is None else str(r[c])) for c in cols] for r in rows]

    def width(s: str) -> int:  # CJK characters take two columns in a terminal
        return sum(2 if ord(ch) > 0x2E80 else 1 for ch in s)

    widths = [max([width(c)] + [width(row[i]) for row in cells]) for i, c in enumerate(cols)]
    pad = lambda s, w: s + " " * (w - width(s))  # noqa: E731
    lines = ["  ".join(pad(c, w) for c, w in zip(cols, widths)).rstrip()]
    lines += ["  ".join(pad(v, w) for v, w in zip(row, widths)).rstrip() for row in cells]
    if table.num_rows > limit:
        lines.append(f"... {table.num_rows - limit} more rows (use --output to write them all)")
    return "\n".join(lines)


@click.command()
@click.argument("case_json", required=False)
@click.option("-r", "--ruleset", default=DEFAULT_RULESET, show_default=True, help=RULESET_HELP)
@click.option("--sex", help="1 male, 2 female.")
@click.option("--age", help="Age in whole years.")
@click.option("--age-days", help="Age in days (needed when age is 0).")
@click.option("--birth-weight", help="Birth weight in grams (newborns).")
@click.option("--dx", help="Diagnoses, principal first, '|'-separated.")
@click.option("--px", default="", help="Procedures, principal first, '|'-separated.")
@click.option("--los", help="Length of stay in days (schemes that read it).")
@click.option("--discharge", help="Discharge status code (schemes that read it).")
@click.option("--dept", help="Department code (schemes that read it).")
@click.option("-w", "--weights", "weights_file", type=click.Path(exists=True, dir_okay=False),
              help="Weights table from `drg weights`: with --pack and --cost, also price the case.")
@click.option("--pack", help="Payment pack (name in rules/payment or a .toml file) for the price.")
@click.option("--cost", type=float, help="The case's total cost in yuan (for the price).")
@click.option("--patient-share", type=float, default=0.0, show_default=True,
              help="The patient's FFS share in yuan (fund payment = payment - share).")
@click.option("--json", "as_json", is_flag=True, help="Print the decision path as JSON.")
def explain(case_json, ruleset, sex, age, age_days, birth_weight, dx, px, los, discharge, dept, weights_file, pack,
            cost, patient_share, as_json):
    """Show why one case lands in its group: for each rule tried, the first condition that did
    not hold, with code names; with --weights, --pack and --cost also its RW, case type
    (normal / high / low outlier ...) and expected payment.

    Give the case as JSON (CASE_JSON, or '-' to read it from stdin), e.g.
    '{"sex": 1, "age": 65, "dx": ["C61.x00"], "px": ["60.5x02"], "cost": 12000}', or with the options.
    """
    if case_json is not None:
        text = sys.stdin.read() if case_json == "-" else case_json
        try:
            case = json.loads(text)
        except json.JSONDecodeError as exc:
            raise click.UsageError(f"CASE_JSON is not valid JSON: {exc.msg}") from None
        if not isinstance(case, dict):
            raise click.UsageError("CASE_JSON must be a JSON object")
    else:
        if dx is None:
            raise click.UsageError("give the case as CASE_JSON or with --dx (and --sex, --age, ...)")
        case = {"sex": sex, "age": age, "age_days": age_days, "birth_weight": birth_weight, "dx": dx, "px": px,
                "los": los, "discharge": discharge, "dept": dept}
    unknown = set(case) - {"case_id", "sex", "age", "age_days", "birth_weight", "dx", "px", "dept", "los", "discharge",
                           "cost", "patient_share"}
    if unknown:
        raise click.UsageError(f"unknown case field(s): {', '.join(sorted(unknown))}")
    cost = case.pop("cost", cost)
    patient_share = case.pop("patient_share", patient_share)
    quoter = None
    if weights_file or pack:
        if not (weights_file and pack):
            raise click.UsageError("pricing a case needs both --weights and --pack")
        if cost is None:
            raise click.UsageError("pricing a case needs its total cost (--cost, or \"cost\" in CASE_JSON)")
        from grouper.payment.drg.quote import CaseQuoter

        with command_errors():
            quoter = CaseQuoter(weights_file, pack)
    g = make_grouper(ruleset, 1)
    with command_errors():  # a wrongly typed field is a usage error (2), named
        e = g.explain(case, quote=quoter, cost=cost, patient_share=patient_share)
    if as_json:
        click.echo(json.dumps(e.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(e.text())

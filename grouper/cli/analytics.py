"""``drg regroup``, ``drg weights``, ``drg indices`` and ``drg recalibrate``."""

from __future__ import annotations

from pathlib import Path

import click

from grouper.cli._common import (RULESET_HELP, YEAR_WEIGHTS_HELP, check_outputs, command_errors, dask_client,
                                 input_options, make_grouper, output_options, parallel_options, parse_year_weights,
                                 plain_inputs_only, progress_stream, regroup_option)
from grouper.rulesets import DEFAULT_RULESET, NEXT_RULESET


@click.command()
@click.option("--from", "from_", default=DEFAULT_RULESET, show_default=True, help="Ruleset the data was grouped under.")
@click.option("--to", "to", default=NEXT_RULESET, show_default=True, help="Ruleset to regroup into.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Per-case results under both rulesets (.parquet, .csv or .arrow).")
@click.option("--matrix", type=click.Path(dir_okay=False),
              help="Migration matrix table: level, from, from_name, to, to_name, cases.")
@click.option("--summary", type=click.Path(dir_okay=False), help="Summary JSON (changes, status rates, weights, CMI).")
@click.option("-t", "--threads", type=click.IntRange(min=1), default=None, help="Kernel threads.")
@click.option("--keep", multiple=True, metavar="COL",
              help="Input column to copy to the output (repeatable); one named like an output column "
                   "(from_status, to_drg, ...) is written as input_<name>.")
@click.option("--cost-column", default="total_cost", show_default=True,
              help="Cost column: when present, relative weights under each version are computed.")
@click.option("--hospital-column", default="hospital_id", show_default=True,
              help="Hospital column: when present with costs, each hospital's CMI under each version.")
@click.option("--report", type=click.Path(dir_okay=False),
              help="HTML report with plots (MDC flows, largest DRG moves, status classes, hospital CMI).")
@click.option("--trim", default="iqr:1.5", show_default=True,
              help="Trimming of the weights computed under each version (see `drg weights`).")
@click.option("--min-cases", type=click.IntRange(min=1), default=5, show_default=True,
              help="Thin-group threshold of those weights.")
@click.option("--convert-codes", is_flag=True,
              help="Convert codes through the target ruleset's mapping tables first (exports coded in "
                   "another edition); codes without a mapping are counted in the summary.")
@output_options
@input_options
def regroup(inputs, from_, to, output, matrix, summary, threads, keep, cost_column, hospital_column,
            report, trim, min_cases, convert_codes, overwrite, bom, progress):
    """Regroup INPUTS from one ruleset to another in one pass: both results per case, the
    migration matrix and a summary of who moves where."""
    from grouper.jobs.regroup import regroup as run
    from grouper.analytics import WeightOptions

    opts = WeightOptions(trim=trim, min_cases=min_cases)
    try:
        opts.trim_rule()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--trim") from None
    check_outputs([output, matrix, summary, report], inputs, overwrite)
    g_from, g_to = make_grouper(from_, threads), make_grouper(to, threads)
    with command_errors(RuntimeError):
        r = run(inputs, g_from, g_to, output, matrix=matrix, summary=summary, report=report, overwrite=overwrite,
                keep=keep, cost_column=cost_column, hospital_column=hospital_column, convert_codes=convert_codes,
                weight_options=opts, bom=bom, progress=progress_stream(progress))
    s = r.summary
    click.echo(f"{r.rows} cases regrouped {g_from.compiled.name} -> {g_to.compiled.name} in {r.seconds:.2f} s: "
               f"DRG changed for {s['share_drg_changed']:.1%}, ADRG for {s['share_adrg_changed']:.1%}; "
               f"status under {g_to.compiled.name}: "
               + ", ".join(f"{k} {v:.2%}" for k, v in s["to"]["status_rates"].items()), err=True)
    if s["principal_dx_unknown_share"] > 0.2 and not convert_codes:
        click.echo(f"warning: {s['principal_dx_unknown_share']:.0%} of principal diagnoses are unknown to both "
                   "rulesets: the export may be coded in another edition (try --convert-codes)", err=True)


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Weights table: drg, drg_name, adrg, n, n_trimmed, mean_cost (exact, 2 places), rw, cv, mean_los, "
                   "stable, flags.")
@click.option("-r", "--ruleset", default=DEFAULT_RULESET, show_default=True, help=RULESET_HELP)
@click.option("--trim", default="iqr:1.5", show_default=True, help="none, iqr:K (Tukey), sdlog:K or pct:LO-HI.")
@click.option("--min-cases", type=click.IntRange(min=1), default=5, show_default=True,
              help="Groups with fewer kept cases are flagged thin and take their ADRG's pooled weight.")
@click.option("--cost-column", default="total_cost", show_default=True)
@click.option("--los-column", default="los", show_default=True)
@click.option("--year-column", default=None, help="Column with the case's year, for --year-weights.")
@click.option("--year-weights", default=None, metavar="Y=W,...", help=YEAR_WEIGHTS_HELP + ".")
@click.option("--summary", type=click.Path(dir_okay=False), help="JSON with RIV, mean cost and exclusions.")
@click.option("--report", type=click.Path(dir_okay=False),
              help="HTML report with plots (RW distribution, CV by group, RW vs LOS).")
@regroup_option
@parallel_options
@output_options
@input_options
def weights(inputs, output, ruleset, trim, min_cases, cost_column, los_column, year_column, year_weights,
            summary, report, regroup, workers, scheduler, overwrite, bom, progress):
    """Relative weights (RW) per DRG from case files with costs: trimmed group mean cost over the
    trimmed overall mean, renormalised so that the base data's CMI is 1; CV, RIV, stability."""
    from grouper.analytics import WeightOptions
    from grouper.jobs.weights import weights_job

    yw = parse_year_weights(year_weights) or {}
    if yw and year_column is None:
        raise click.UsageError("--year-weights needs --year-column (the column with each case's year)")
    _parallel_regroup(regroup, workers, scheduler)
    opts = WeightOptions(trim=trim, min_cases=min_cases, year_weights=yw)
    try:
        opts.trim_rule()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--trim") from None
    check_outputs([output, summary, report], inputs, overwrite)
    if workers is not None or scheduler is not None:
        plain_inputs_only(inputs, columns=True)
    g = make_grouper(ruleset, None)
    with dask_client(scheduler) as client, command_errors(RuntimeError):
        r = weights_job(inputs, g, opts, output, summary=summary, report=report, trim=trim, overwrite=overwrite,
                        cost=cost_column, los=los_column, year=year_column, workers=workers, client=client,
                        regroup=regroup, bom=bom, progress=progress_stream(progress))
    kept = sum(r.table["n"].to_pylist())
    trimmed = sum(r.table["n_trimmed"].to_pylist())
    click.echo(f"{r.table.num_rows} DRG weights from {kept} cases ({trimmed} trimmed, {trim}); RIV {r.riv:.3f}; "
               f"excluded: " + ", ".join(f"{k} {v}" for k, v in r.excluded.items()), err=True)


@click.command()
@click.option("-w", "--weights", "weights_file", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Weights table from `drg weights` (drg, rw).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Indices table.")
@click.option("-r", "--ruleset", default=DEFAULT_RULESET, show_default=True, help=RULESET_HELP)
@click.option("--hospital-column", default="hospital_id", show_default=True)
@click.option("--department-column", default=None, help="Also break down by department.")
@click.option("--cost-column", default="total_cost", show_default=True)
@click.option("--los-column", default="los", show_default=True)
@click.option("--discharge-column", default="discharge", show_default=True)
@click.option("--death-code", multiple=True, default=("5",), show_default=True, help="Discharge codes meaning death.")
@click.option("--report", type=click.Path(dir_okay=False),
              help="HTML report with plots: CMI vs cost and time indices, low-risk mortality, the hospital table.")
@regroup_option
@parallel_options
@output_options
@input_options
def indices(inputs, weights_file, output, ruleset, hospital_column, department_column, cost_column, los_column,
            discharge_column, death_code, report, regroup, workers, scheduler, overwrite, bom, progress):
    """Hospital indices: cases, DRG count, total weight, CMI, cost and time consumption indices,
    low-risk and mid-low-risk group mortality (risk tiers from the data's own group mortality)."""
    from grouper.jobs.indices import indices_job

    _parallel_regroup(regroup, workers, scheduler)
    check_outputs([output, report], [*inputs, weights_file], overwrite)
    if workers is not None or scheduler is not None:
        plain_inputs_only(inputs, columns=True)
    g = make_grouper(ruleset, None)
    with dask_client(scheduler) as client, command_errors(KeyError, RuntimeError):
        table, excluded = indices_job(inputs, weights_file, g, output, report=report, overwrite=overwrite,
                                      workers=workers, client=client, regroup=regroup, bom=bom,
                                      progress=progress_stream(progress), hospital=hospital_column, cost=cost_column,
                                      los=los_column, discharge=discharge_column, department=department_column,
                                      death_codes=tuple(death_code))
    click.echo(f"indices for {table.num_rows} units written to {output}; excluded rows: "
               + ", ".join(f"{k} {v}" for k, v in excluded.items()), err=True)


def _side(value: str, min_cases: int):
    """A recalibration side: a weights file when the path exists, else a trimming rule."""
    from grouper.analytics import WeightOptions
    from grouper.io import read_table

    if Path(value).is_file():
        try:
            return read_table(value)
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"{value}: {exc}") from None
    opts = WeightOptions(trim=value, min_cases=min_cases)
    try:
        opts.trim_rule()
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a weights file nor a trimming rule "
                                 "(none, iqr:K, sdlog:K, pct:LO-HI)") from None
    return opts


@click.command()
@click.option("-a", "side_a", required=True, metavar="WEIGHTS|TRIM",
              help="Side a: a weights table (from `drg weights`, e.g. last year's) or a trimming rule computed "
                   "from INPUT (none, iqr:K, sdlog:K, pct:LO-HI).")
@click.option("-b", "side_b", required=True, metavar="WEIGHTS|TRIM", help="Side b, the same way.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Per-DRG comparison table: drg, drg_name, rw_a, rw_b, change, relative_change, cases, "
                   "total_weight_a, total_weight_b.")
@click.option("--by-hospital", "hospitals", type=click.Path(dir_okay=False),
              help="Per-hospital table: CMI and total weight under a and b.")
@click.option("--hospitals", "old_hospitals", hidden=True, type=click.Path(dir_okay=False))
@click.option("--summary", type=click.Path(dir_okay=False), help="JSON: budget impact and exclusions.")
@click.option("--report", type=click.Path(dir_okay=False), help="HTML report with plots.")
@click.option("-r", "--ruleset", default=DEFAULT_RULESET, show_default=True, help=RULESET_HELP)
@click.option("--min-cases", type=click.IntRange(min=1), default=5, show_default=True,
              help="For a side computed from INPUT: thin-group threshold, as in `drg weights`.")
@click.option("--hospital-column", default="hospital_id", show_default=True)
@click.option("--cost-column", default="total_cost", show_default=True)
@click.option("--los-column", default="los", show_default=True)
@click.option("--discharge-column", default="discharge", show_default=True)
@regroup_option
@output_options
@input_options
def recalibrate(inputs, side_a, side_b, output, hospitals, old_hospitals, summary, report, ruleset, min_cases,
                hospital_column, cost_column, los_column, discharge_column, regroup, overwrite, bom, progress):
    """A recalibration experiment: two weight sets (files, or trimming rules computed from the
    cases) side by side on the same cases: per-DRG change, budget impact (total weight under each)
    and each hospital's CMI shift. The cases are read once."""
    from grouper.jobs.recalibrate import recalibrate_job

    if old_hospitals is not None:  # the earlier spelling of --by-hospital
        if hospitals is not None:
            raise click.UsageError("give --by-hospital once (--hospitals is its old spelling)")
        hospitals = old_hospitals
    check_outputs([output, hospitals, summary, report],
                   [*inputs, *(v for v in (side_a, side_b) if Path(v).exists())], overwrite)
    a, b = _side(side_a, min_cases), _side(side_b, min_cases)
    g = make_grouper(ruleset, None)
    with command_errors(KeyError, RuntimeError):
        r = recalibrate_job(inputs, g, a, b, output, labels=(side_a, side_b), hospitals=hospitals, summary=summary,
                            report=report, overwrite=overwrite, hospital=hospital_column, cost=cost_column,
                            los=los_column, discharge=discharge_column, regroup=regroup, bom=bom,
                            progress=progress_stream(progress))
        budget = r.budget()
    rel = budget["relative_change"]
    click.echo(f"{r.comparison.num_rows} DRGs compared; total weight {budget['total_weight_a']:,.1f} -> "
               f"{budget['total_weight_b']:,.1f}" + (f" ({rel:+.2%})" if rel is not None else "")
               + f"; {r.hospitals.num_rows} hospitals", err=True)


def _parallel_regroup(regroup: bool, workers, scheduler) -> None:
    """--regroup is not carried to --workers/--scheduler tasks (they use grouped files as they are)."""
    if regroup and (workers is not None or scheduler is not None):
        raise click.UsageError("--regroup does not apply with --workers/--scheduler; regroup with "
                               "`drg group --workers` first")

"""``drg dip catalogue | assign | settle``."""

from __future__ import annotations

from pathlib import Path

import click

from grouper.cli._common import (YEAR_WEIGHTS_HELP, check_outputs, command_errors, input_options, output_options,
                                 parse_year_weights, progress_stream, refuse_table_as_summary)
from grouper.rulesets import DEFAULT_RULESET


@click.group("dip")
def dip():
    """DIP (按病种分值付费): build a catalogue of groups and scores from historical cases, assign
    cases to it, settle cases under a payment pack's [dip] table. See docs/dip.md."""


DIP_RULESET_HELP = ("Ruleset whose operating-room procedure list (or_procedures.csv) marks procedures as "
                    "相关手术 (name or folder).")


def _dip_pack(pack: str | None) -> dict:
    """The [dip] table of a payment pack: a TOML file or the name of a bundled pack."""
    from grouper.payment.pack import load_dip_table

    try:
        return load_dip_table(pack)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _dip_params(table: dict, **overrides):
    from grouper.payment.dip import DipParams

    try:
        return DipParams.from_mapping({**table, **{k: v for k, v in overrides.items() if v is not None}})
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@dip.command("catalogue")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Catalogue table (.parquet keeps the build information; .csv, .arrow).")
@click.option("-p", "--pack", help="Payment pack (TOML file or bundled name) whose [dip] table gives the "
                                   "defaults; the options below win.")
@click.option("-r", "--ruleset", default=DEFAULT_RULESET, show_default=True, help=DIP_RULESET_HELP)
@click.option("--year-column", default=None,
              help="Column with the year or discharge date of each case [default: discharge_date when every "
                   "input has it, otherwise all cases are one period].")
@click.option("--year-weights", default=None, metavar="Y=W,...",
              help=YEAR_WEIGHTS_HELP + "; or weights alone, 1,2,7, aligned to the newest year "
                   "[default: the pack's, else 1,2,7].")
@click.option("--core-min-n", type=click.IntRange(min=1), default=None,
              help="Cases a 亚目 x procedure combination needs to be a core group [default: 15].")
@click.option("--comprehensive-min-n", type=click.IntRange(min=1), default=None,
              help="Cases a category x treatment-type pool needs before falling back to the chapter "
                   "[default: --core-min-n].")
@click.option("--scale", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Score scale: score = RW x scale [default: 1000].")
@click.option("--trim", default=None, help="Trim costs per group before the means: none, iqr:K, sdlog:K, "
                                           "pct:LO-HI [default: none].")
@click.option("--cost-column", default="total_cost", show_default=True)
@click.option("--level-column", default="hospital_level", show_default=True,
              help="Hospital level, for the level means (outlier denominators, derived level coefficients).")
@click.option("--summary", type=click.Path(dir_okay=False), help="JSON with the build information.")
@output_options
@input_options
def dip_catalogue(inputs, output, pack, ruleset, year_column, year_weights, core_min_n, comprehensive_min_n,
                  scale, trim, cost_column, level_column, summary, overwrite, bom, progress):
    """Build a DIP catalogue from historical cases: core groups (亚目 x principal procedure with
    enough cases), comprehensive groups (category, then chapter, x treatment type) for the rest,
    scores from year-weighted mean costs, level means and the budget point value."""
    from grouper.jobs.dip import dip_catalogue_job

    check_outputs([output, summary], [*inputs, pack if pack and Path(pack).is_file() else None], overwrite)
    params = _dip_params(_dip_pack(pack), year_weights=parse_year_weights(year_weights, bare=True), core_min_n=core_min_n,
                         comprehensive_min_n=comprehensive_min_n, score_scale=scale, trim=trim)
    with command_errors(ruleset=lambda: ruleset):
        cat, year_column = dip_catalogue_job(inputs, params, output, ruleset=ruleset, year_column=year_column,
                                             cost=cost_column, level=level_column, summary=summary,
                                             overwrite=overwrite, bom=bom, progress=progress_stream(progress))
    i = cat.info
    g = i["groups"]
    click.echo(f"{sum(g.values())} DIP groups ({g['core']} core, {g['comprehensive']} comprehensive, "
               f"{g['comprehensive_chapter']} by chapter) from {i['cases']} cases"
               + (f" of years {', '.join(i['years'])}" if year_column else " (one period)")
               + f"; mean cost {i['mean_cost']:,.2f}, budget point value {i['budget_point_value']:.4f}; excluded: "
               + (", ".join(f"{k} {v}" for k, v in i["excluded"].items() if v) or "none"), err=True)


@dip.command("assign")
@click.option("-c", "--catalogue", "catalogue_file", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Catalogue from `drg dip catalogue`.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Per case, in order: case_id, status, group, group_type, score.")
@click.option("-r", "--ruleset", default=None, help=DIP_RULESET_HELP + " [default: the catalogue's, else " + DEFAULT_RULESET + "]")
@output_options
@input_options
def dip_assign(inputs, catalogue_file, output, ruleset, overwrite, bom, progress):
    """Assign cases to the groups of a DIP catalogue (no payment)."""
    from grouper._util.progress import reporting
    from grouper.jobs.dip import dip_assign_files, load_catalogue
    from grouper.jobs.outputs import case_progress
    from grouper.payment.dip import ProcedureTypes

    check_outputs([output], [*inputs, catalogue_file], overwrite)
    with command_errors(ruleset=lambda: ruleset):
        cat = load_catalogue(catalogue_file)
        ruleset = ruleset or cat.info.get("ruleset") or DEFAULT_RULESET
        with reporting(case_progress(progress_stream(progress), inputs)):
            counts = dip_assign_files(inputs, cat, output, procedure_types=ProcedureTypes.from_ruleset(ruleset),
                                      overwrite=overwrite, bom=bom)
    click.echo(f"{sum(counts.values())} cases: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v), err=True)


@dip.command("settle")
@click.option("-c", "--catalogue", "catalogue_file", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Catalogue from `drg dip catalogue`.")
@click.option("-p", "--pack", required=True, help="Payment pack (TOML file or bundled name) with a [dip] table.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Per case, in order: group, score, x, case type, points, amount, fund, margin (.parquet/.csv/.arrow).")
@click.option("--by-hospital", "by_hospital", type=click.Path(dir_okay=False),
              help="Per-hospital table: points, amount, fund, cost, margin, cases by type, review cases "
                   "against the 特例单议 cap.")
@click.option("--summary", type=click.Path(dir_okay=False),
              help="JSON: point value, totals, counts by status and case type, level coefficients used.")
@click.option("--totals", hidden=True, type=click.Path(dir_okay=False))
@click.option("--point-value", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Use this point value instead of PV_s = (fund_budget / fund_ratio) / total points.")
@click.option("-r", "--ruleset", default=None, help=DIP_RULESET_HELP + " [default: the catalogue's, else " + DEFAULT_RULESET + "]")
@click.option("--cost-column", default="total_cost", show_default=True)
@click.option("--hospital-column", default="hospital_id", show_default=True)
@click.option("--level-column", default="hospital_level", show_default=True)
@click.option("--patient-share-column", default=None,
              help="Patient's share per case: fund = amount - share (else amount x dip.fund_ratio).")
@output_options
@input_options
def dip_settle(inputs, catalogue_file, pack, output, by_hospital, summary, totals, point_value, ruleset, cost_column,
               hospital_column, level_column, patient_share_column, overwrite, bom, progress):
    """Settle cases under DIP: group, score, cost ratio x and case type (low < dip.low_x, high >
    dip.high_x, extreme > dip.extreme_x for review), points with the level coefficient, amount =
    points x point value, fund and margin; per-hospital totals with --summary."""
    from grouper.jobs.dip import dip_settle_job, load_catalogue
    from grouper.payment.dip import DipColumns, ProcedureTypes

    refuse_table_as_summary(summary, "--by-hospital")
    if totals is not None:  # the earlier spelling of --summary
        if summary is not None:
            raise click.UsageError("give --summary once (--totals is its old spelling)")
        summary = totals
    params = _dip_params(_dip_pack(pack))
    check_outputs([output, by_hospital, summary], [*inputs, catalogue_file, pack if Path(pack).is_file() else None],
                   overwrite)
    with command_errors(ruleset=lambda: ruleset):
        cat = load_catalogue(catalogue_file)
        ruleset = ruleset or cat.info.get("ruleset") or DEFAULT_RULESET
        cols = DipColumns(cost=cost_column, hospital=hospital_column, level=level_column,
                          patient_share=patient_share_column)
        r = dip_settle_job(inputs, cat, params, output, procedure_types=ProcedureTypes.from_ruleset(ruleset),
                           columns=cols, point_value=point_value, summary=by_hospital, totals=summary,
                           overwrite=overwrite, bom=bom, progress=progress_stream(progress))
    s = r.summary
    not_settled = {k: v for k, v in s["statuses"].items() if k != "settled" and v}
    click.echo(f"{s['cases']} cases: {s['statuses']['settled']} settled"
               + (" (not settled: " + ", ".join(f"{k} {v}" for k, v in not_settled.items()) + ")" if not_settled else "")
               + "; " + ", ".join(f"{k} {v}" for k, v in s["case_types"].items())
               + f"; point value {r.point_value:.4f} ({r.point_value_source}); points {s['total_points']:,.1f}; "
               f"amount {s['amount']:,.2f}; review cases {s['review_cases']} "
               f"({s['hospitals_over_review_cap']} hospitals over the cap)", err=True)

"""``drg settle``: DRG settlement under a payment pack."""

from __future__ import annotations

from pathlib import Path

import click

from grouper.cli._common import (RULESET_HELP, check_outputs, command_errors, input_options, make_grouper,
                                 output_options, progress_stream, refuse_table_as_summary)
from grouper.rulesets import DEFAULT_RULESET


@click.command()
@click.option("-p", "--pack", required=True,
              help="Payment pack: a TOML file, or the name of a bundled one (e.g. illustrative-2024).")
@click.option("-w", "--weights", "weights_file", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Weights table from `drg weights` (drg, rw, mean_cost, mean_los, n).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Per-case settlement (.parquet/.csv/.arrow), one row per input row, in order.")
@click.option("--hospitals", "hospitals_file", type=click.Path(exists=True, dir_okay=False),
              help="Hospital table (hospital_id or hospital, optional level, and the columns the pack's knobs "
                   "read, e.g. the output of `drg indices` plus satisfaction).")
@click.option("--by-hospital", "by_hospital", type=click.Path(dir_okay=False),
              help="Per-hospital settlement table: totals, cases by type, surplus/overspend, "
                   "pre-settlement, reserve, clearance, knob effects.")
@click.option("--months", type=click.Path(dir_okay=False),
              help="Monthly pre-settlement table per hospital and discharge month.")
@click.option("--summary", type=click.Path(dir_okay=False),
              help="JSON run summary: counts by status and type, totals, rate, renormalisation, knob effects.")
@click.option("--json", "json_file", hidden=True, type=click.Path(dir_okay=False))
@click.option("--report", type=click.Path(dir_okay=False), help="HTML report with plots.")
@click.option("-r", "--ruleset", default=DEFAULT_RULESET, show_default=True,
              help=RULESET_HELP + " Used only for inputs that are not grouped yet (no status/drg columns).")
@click.option("-t", "--threads", type=click.IntRange(min=1), default=None, help="Kernel threads (grouping).")
@click.option("--column", "column_map", multiple=True, metavar="ROLE=NAME",
              help="Read a role from another column, e.g. --column cost=zfy (repeatable). Roles: "
                   "case_id, hospital, level, insurance_type, cost, patient_share, los, discharge, date, "
                   "referred, status, drg.")
@output_options
@input_options
def settle(inputs, pack, weights_file, output, hospitals_file, by_hospital, months, summary, json_file, report,
           ruleset, threads, column_map, overwrite, bom, progress):
    """DRG settlement of INPUT... under a payment pack: per case the payment standard, case type,
    payment, fund and patient share and the hospital's margin; per hospital the totals, surplus
    kept / overspend borne, monthly pre-settlement with the reserve and year-end clearance, and
    the effect of each value-based knob.

    INPUT are grouped files (with status and drg columns, e.g. from `drg group --keep ...`) or raw
    case files, grouped here under --ruleset. Rows that cannot be settled keep their row with a
    settle_status and are counted. The input is read twice, in bounded memory (raw files are
    grouped on each read). Exit codes: 0 done; 1 invalid pack or I/O error; 2 usage error,
    including a case file without a column the pack needs.
    """
    from grouper.payment.pack import PackError, load_pack
    from grouper.jobs.settle import settle_files
    from grouper.payment.drg import DrgColumns

    refuse_table_as_summary(summary, "--by-hospital")
    if json_file is not None:  # the earlier spelling of --summary
        if summary is not None:
            raise click.UsageError("give --summary once (--json is its old spelling)")
        summary = json_file
    roles = {}
    for item in column_map:
        role, sep, name = item.partition("=")
        if not sep or not name or role not in DrgColumns.roles():
            raise click.BadParameter(f"{item!r}: use ROLE=NAME with ROLE one of {', '.join(DrgColumns.roles())}",
                                     param_hint="--column")
        roles[role] = name
    try:
        p = load_pack(pack)
    except PackError as exc:
        raise click.ClickException(str(exc)) from None
    check_outputs([output, by_hospital, months, summary, report],
                   [*inputs, weights_file, hospitals_file, pack if Path(pack).is_file() else p.path], overwrite)
    if p.illustrative:
        click.echo(f"warning: pack {p.name} is ILLUSTRATIVE: its numbers are examples, not a region's rules",
                   err=True)
    with command_errors(KeyError, RuntimeError):
        r = settle_files(inputs, p, weights_file, output, hospitals_path=hospitals_file, summary=by_hospital,
                         months=months, json_path=summary, report=report, columns=DrgColumns(**roles),
                         grouper=lambda: make_grouper(ruleset, threads), overwrite=overwrite, bom=bom,
                         progress=progress_stream(progress))
    s = r.summary
    st, tot = s["settle_status"], s["totals"]
    not_settled = {k: v for k, v in st.items() if k != "settled" and v}
    click.echo(f"{s['rows']} cases under {p.name}: {st['settled']} settled"
               + (" (not settled: " + ", ".join(f"{k} {v}" for k, v in not_settled.items()) + ")" if not_settled else "")
               + "; types: " + ", ".join(f"{k} {v}" for k, v in s["case_types"].items() if v)
               + f"; payment {tot['payment']:,.2f}, fund {tot['fund_payment']:,.2f}, margin {tot['margin']:,.2f}; "
               f"rate {s['rate']['final_base']:,.2f}/RW; {s['hospitals']} hospitals; {s['seconds']:.1f} s", err=True)

"""``drg audit``: case edits and provider screens (智能审核) in one streaming run."""

from __future__ import annotations

import click

from grouper.cli._common import RULESET_HELP, command_errors, input_options, make_grouper, output_options, progress_stream
from grouper.rulesets import DEFAULT_RULESET


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Findings, one row per finding (.parquet, .csv or .arrow): row, case_id, hospital, code, "
                   "severity, item, score, message (Chinese).")
@click.option("--hospitals", type=click.Path(dir_okay=False),
              help="Hospital league table, one row per screen and hospital (department, code): value, expected, "
                   "peer median, percentile, z, p-value, flagged, rank, department, item, message (Chinese).")
@click.option("--report", type=click.Path(dir_okay=False),
              help="HTML report: league table and peer distribution per screen, top cases with explanations.")
@click.option("--pack", default=None, metavar="TOML",
              help="Audit pack with the screens' thresholds (a file or a bundled name; default: rules/audit/default.toml).")
@click.option("--edits", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Edit table (default: the bundled rules/audit/edits.toml).")
@click.option("-r", "--ruleset", default=DEFAULT_RULESET, show_default=True, help=RULESET_HELP)
@click.option("--hospital-column", default="hospital_id", show_default=True)
@click.option("--death-code", multiple=True, default=("5",), show_default=True, help="Discharge codes meaning death.")
@click.option("--buckets", type=click.IntRange(1, 4096), default=None,
              help="Patient-hashed bucket files for the split-admission screen; memory holds one bucket "
                   "(cases / buckets stays). Default: about 250,000 stays each (16 when the size is unknown).")
@click.option("--workdir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder for the temporary bucket files (default: the system's temporary folder).")
@output_options
@input_options
def audit(inputs, output, hospitals, report, pack, edits, ruleset, hospital_column, death_code, buckets, workdir,
          overwrite, bom, progress):
    """Audit INPUT...: case edits (coding checks, the secondary diagnosis that alone lifts a case into
    its CC/MCC split) and provider screens (split admissions, severity upcoding, low-standard
    admissions, over-long stays, low-risk deaths, cost shifting, severity drift between discharge
    periods, secondary diagnoses lifting cases far above the region, avoidance of severe cases)
    against peers of the same level, per hospital and, with a department column (dept), per
    department. Edits never change the group."""
    from grouper.audit import AuditPackError
    from grouper.jobs.audit import audit_job

    g = make_grouper(ruleset, None)
    with command_errors(AuditPackError, RuntimeError):
        r = audit_job(inputs, g, output, hospitals=hospitals, report=report, pack=pack, edits=edits,
                      overwrite=overwrite, buckets=buckets, workdir=workdir, hospital_column=hospital_column,
                      death_codes=tuple(death_code), bom=bom, progress=progress_stream(progress))
    h = r.hospitals.filter(r.hospitals["flagged"])
    flagged = {}
    for s, hosp, dept, item in zip(*(h[c].to_pylist() for c in ("screen", "hospital", "department", "item"))):
        flagged.setdefault(s, []).append(hosp + (f"/{dept}" if dept is not None else "")
                                         + (f":{item}" if item is not None and s == "lifting_dx" else ""))
    shown = {s: v[:8] + ([f"... (+{len(v) - 8})"] if len(v) > 8 else []) for s, v in flagged.items()}
    click.echo(f"{r.rows} cases audited in {r.seconds:.1f} s: {sum(r.counts.values())} findings ("
               + ", ".join(f"{k} {v}" for k, v in r.counts.items()) + "); flagged hospitals: "
               + ("; ".join(f"{s} {', '.join(v)}" for s, v in shown.items()) or "none"), err=True)

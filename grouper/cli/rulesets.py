"""``drg rulesets``, ``drg groups``, ``drg validate-ruleset``, ``drg compile`` and ``drg synth``: the
schemes and trying them."""

from __future__ import annotations

import json

import click

from grouper.cli._common import RULESET_HELP, check_outputs, output_options, progress_stream
from grouper.rulesets import DEFAULT_RULESET, NEXT_RULESET, STATUSES, RulesetError, available_rulesets, describe, load_ruleset


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def rulesets(as_json):
    """List the rulesets this installation knows: name, status (national current / next, local,
    historic), version, group counts and fingerprint; * marks the default."""
    rows = []
    for name, path in available_rulesets().items():
        try:
            rows.append(describe(load_ruleset(path)))
        except RulesetError as exc:
            rows.append({"name": name, "path": str(path), "error": str(exc)})
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        if "error" in r:
            click.echo(f"  {r['name']:<16} BROKEN: {r['error']}")
        else:
            mark = "*" if r["default"] else " "
            click.echo(f"{mark} {r['name']:<16} {r['status']:<16} version {r['version']:<5} {r['mdc']} MDC "
                       f"{r['adrg']:>3} ADRG {r['drg']:>4} DRG  sha256 {r['fingerprint'][:16]}  "
                       f"{STATUSES[r['status']]}  {r['path']}")
    click.echo(f"* default when no --ruleset is given ({DEFAULT_RULESET}); regroup goes to {NEXT_RULESET} "
               "unless --to says otherwise")


@click.command()
@click.option("-r", "--ruleset", default=DEFAULT_RULESET, show_default=True, help=RULESET_HELP)
@click.option("-w", "--weights", "weights_file", type=click.Path(exists=True, dir_okay=False),
              help="Weights table from `drg weights`: adds each DRG's rw (and n).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the table (.csv, .parquet or .arrow) instead of printing it.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def groups(ruleset, weights_file, output, overwrite):
    """List a scheme's MDCs, ADRGs and DRGs with their names (and weights): one row per DRG, in
    evaluation order; ambiguous (QY) and placeholder fail groups marked in `kind`."""
    from grouper.cli.group import format_table
    from grouper.jobs.groups import GROUP_COLUMNS, groups_job

    check_outputs([output], [weights_file], overwrite)
    try:
        rs = load_ruleset(ruleset)
    except RulesetError as exc:
        raise click.ClickException(f"ruleset {ruleset}: {exc}") from None
    try:
        table = groups_job(rs, output, weights_file, overwrite=overwrite)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if output is None:
        click.echo(format_table(table, table.num_rows, (*GROUP_COLUMNS, "rw", "n")))
    rows = [r for r in table.select(["mdc", "adrg", "drg", "kind"]).to_pylist() if r["kind"] == "group"]
    n = {k: len({r[k] for r in rows}) for k in ("mdc", "adrg", "drg")}
    click.echo(f"{rs.name} ({rs.version}): {n['mdc']} MDC, {n['adrg']} ADRG, {n['drg']} DRG"
               + (f" -> {output}" if output else ""), err=True)


@click.command("validate-ruleset")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
def validate_ruleset(path):
    """Check a ruleset folder: tables, references, orders, codes, conditions; then compile it."""
    from grouper.engine import compile_ruleset

    try:
        rs = load_ruleset(path)
        compiled = compile_ruleset(rs)
    except RulesetError as exc:
        raise click.ClickException(str(exc)) from None
    d = describe(rs)
    click.echo(f"ok: {d['name']} version {d['version']}: {d['mdc']} MDC, {d['adrg']} ADRG, {d['drg']} DRG; "
               f"{len(compiled.cond)} condition nodes, {compiled.nbytes / 1e6:.1f} MB compiled; "
               f"sha256 {d['fingerprint']}")


@click.command("compile")
@click.argument("ruleset")
@click.option("--dump", is_flag=True, help="Print the compiled program: MDC, ADRG and DRG records in "
              "evaluation order with their condition trees, decoded to codes and names (for debugging).")
def compile_command(ruleset, dump):
    """Compile RULESET (a registry name or a folder) as the grouper would, and say what it holds."""
    from grouper.engine import compile_ruleset

    try:
        compiled = compile_ruleset(load_ruleset(ruleset))
    except RulesetError as exc:
        raise click.ClickException(str(exc)) from None
    if dump:
        click.echo(compiled.dump(), nl=False)
        return
    click.echo(f"{compiled.name} version {compiled.version}: {len(compiled.mdc)} MDC, {len(compiled.adrg)} ADRG "
               f"and {len(compiled.split)} DRG records, {len(compiled.cond)} condition nodes, "
               f"{compiled.nbytes / 1e6:.1f} MB compiled; sha256 {compiled.fingerprint}")


@click.command()
@click.option("-n", "--cases", type=click.IntRange(min=0), required=True, help="Number of cases.")
@click.option("--hospitals", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--year", type=click.IntRange(1900, 2200), default=2025, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same file.")
@click.option("-r", "--ruleset", default=DEFAULT_RULESET, show_default=True, help=RULESET_HELP)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Output file (.parquet, .csv, .arrow or .xlsx).")
@click.option("--inject", multiple=True, metavar="KIND=H0001,...[@RATE]",
              help="Plant labelled misconduct at these hospitals (repeatable): upcode (an MCC secondary "
                   "diagnosis added, default rate 0.2), split (a stay cut into discharge and readmission, 0.1), "
                   "lowstd (low-weight 1-2 day low-cost admissions, 0.1), drift (as upcode, July-December "
                   "discharges only, 0.2), lift (one fixed MCC code added, 0.05), avoid (CC/MCC secondary "
                   "diagnoses taken off cases, 0.3); labels in _label_<kind> columns.")
@output_options
def synth(cases, hospitals, year, seed, ruleset, output, inject, overwrite, bom, progress):
    """Write a SYNTHETIC province of discharge records (no real patients) for trying the grouper.

    Hospitals of three levels, a skewed realistic case mix drawn from the ruleset's own lists,
    secondary diagnoses with CC/MCC, newborns, length of stay, cost with outliers, deaths and
    readmissions. The file's metadata marks it synthetic. --inject plants labelled misconduct at
    chosen hospitals (hidden _label_* columns), to measure `drg audit` against.
    """
    import time

    from grouper.analytics.synth import SynthSpec, write_synthetic
    from grouper.analytics.synth_inject import parse_injection

    try:
        injections = tuple(parse_injection(i) for i in inject)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--inject") from None
    check_outputs([output], [], overwrite)
    t0 = time.perf_counter()
    try:
        rows = write_synthetic(SynthSpec(cases, hospitals, year, seed, ruleset, injections), output, overwrite=overwrite,
                               bom=bom, progress=progress_stream(progress))
    except RulesetError as exc:
        raise click.ClickException(f"ruleset {ruleset}: {exc}") from None
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    secs = time.perf_counter() - t0
    click.echo(f"{rows} synthetic cases written to {output} in {secs:.1f} s", err=True)

"""The ``drg`` command line. Parses options and calls one library function per command.

Exit codes: 0 finished (ungroupable and invalid cases are data, reported per row);
1 runtime, I/O or ruleset error (one-line reason on stderr); 2 usage error, including a
missing required input column or a bad column mapping; 3 (``group --max-error-rate``) the
output was written but too many cases are invalid or ungroupable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .arrow import InputError
from .ruleset import RulesetError, available_rulesets, describe, load_ruleset

RULESET_HELP = "Ruleset name (see `drg rulesets`) or path to a ruleset folder."


def _grouper(ruleset: str, threads: int | None):
    from .core import Grouper

    try:
        return Grouper(ruleset, n_threads=threads)
    except RulesetError as exc:
        raise click.ClickException(f"ruleset {ruleset}: {exc}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="drg-grouper")
def main() -> None:
    """drg-grouper: group inpatient cases into CHS-DRG groups, exactly and fast."""


@main.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Output file; format from the extension (.csv, .parquet, .arrow). "
                   "Without it, a readable table is printed.")
@click.option("-r", "--ruleset", default="chs-drg-1.1", show_default=True, help=RULESET_HELP)
@click.option("-t", "--threads", type=click.IntRange(min=1), default=None,
              help="Kernel threads (default: the CPUs this process may use).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output (and report) file.")
@click.option("--keep", multiple=True, metavar="COL", help="Input column to copy to the output (repeatable).")
@click.option("--keep-all", is_flag=True, help="Copy every input column (of the first input) to the output.")
@click.option("--batch-size", type=click.IntRange(min=1), default=65_536, show_default=True,
              help="Rows per batch; memory use follows this, not the file size.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="Rows shown when printing a table (no --output).")
@click.option("--map", "maps", multiple=True, metavar="CANONICAL=SOURCE",
              help="Read a canonical column from another input column, e.g. --map dx=zd (repeatable).")
@click.option("--map-file", type=click.Path(exists=True, dir_okay=False),
              help='TOML file with a [columns] table of canonical = "source" lines; --map wins.')
@click.option("--layout", type=click.Choice(["auto", "canonical", "wide"]), default="auto", show_default=True,
              help="wide: a 病案首页/结算清单 export with one column per code (zyzdbm, qtzdbm1..N, ...); "
                   "auto: wide when there is no dx column but a principal-diagnosis column.")
@click.option("--report", type=click.Path(dir_okay=False),
              help="Write a JSON summary: counts per status, MDC, DRG and flag, ruleset, timing.")
@click.option("--max-error-rate", type=click.FloatRange(0, 1), metavar="R",
              help="Exit 3 (output still written) when more than this share (0..1) of cases "
                   "is invalid or ungroupable.")
@click.option("--progress/--no-progress", default=None,
              help="Progress line on stderr (default: only when stderr is a terminal).")
def group(inputs, output, ruleset, threads, overwrite, keep, keep_all, batch_size, limit, maps, map_file,
          layout, report, max_error_rate, progress):
    """Group the cases of INPUT... (CSV, Parquet or Arrow IPC files, folders, glob patterns)
    into one output, in order.

    Input columns: sex (1 male, 2 female), age (years), age_days, birth_weight (g),
    dx and px (principal first; list<string> or '|'-separated text), case_id optional.
    One output row per input row, in input order.

    Exit codes: 0 done; 1 runtime or I/O error; 2 usage error (bad option, missing column);
    3 output written but the share of invalid/ungroupable cases is above --max-error-rate.
    """
    from .io import group_files

    g = _grouper(ruleset, threads)
    try:
        summary, table = group_files(
            g, inputs, output, overwrite=overwrite, keep=True if keep_all else keep, batch_size=batch_size,
            mapping=maps, map_file=map_file, layout=layout, report=report, max_error_rate=max_error_rate,
            progress=sys.stderr if (sys.stderr.isatty() if progress is None else progress) else None,
            log=lambda msg: click.echo(msg, err=True))
    except InputError as exc:
        raise click.UsageError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if table is not None:
        click.echo(format_table(table, limit))
    click.echo(summary.line(), err=True)
    if summary.breach:
        click.echo(f"Error: {summary.breach}", err=True)
        sys.exit(3)


def format_table(table, limit: int) -> str:
    """A plain aligned table of the main output columns, for people."""
    cols = [c for c in ("case_id", "status", "mdc", "adrg", "drg", "cc_level", "drg_name", "reason")
            if c in table.column_names]
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


@main.command()
@click.argument("case_json", required=False)
@click.option("-r", "--ruleset", default="chs-drg-1.1", show_default=True, help=RULESET_HELP)
@click.option("--sex", help="1 male, 2 female.")
@click.option("--age", help="Age in whole years.")
@click.option("--age-days", help="Age in days (needed when age is 0).")
@click.option("--birth-weight", help="Birth weight in grams (newborns).")
@click.option("--dx", help="Diagnoses, principal first, '|'-separated.")
@click.option("--px", default="", help="Procedures, principal first, '|'-separated.")
@click.option("--los", help="Length of stay in days (schemes that read it).")
@click.option("--discharge", help="Discharge status code (schemes that read it).")
@click.option("--dept", help="Department code (schemes that read it).")
@click.option("--json", "as_json", is_flag=True, help="Print the decision path as JSON.")
def explain(case_json, ruleset, sex, age, age_days, birth_weight, dx, px, los, discharge, dept, as_json):
    """Show why one case lands in its group.

    Give the case as JSON (CASE_JSON, or '-' to read it from stdin), e.g.
    '{"sex": 1, "age": 65, "dx": ["C61.x00"], "px": ["60.5x02"]}', or with the options.
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
    unknown = set(case) - {"case_id", "sex", "age", "age_days", "birth_weight", "dx", "px", "dept", "los", "discharge"}
    if unknown:
        raise click.UsageError(f"unknown case field(s): {', '.join(sorted(unknown))}")
    g = _grouper(ruleset, 1)
    e = g.explain(case)
    if as_json:
        click.echo(json.dumps(e.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(e.text())


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def rulesets(as_json):
    """List the rulesets this installation knows (name, version, fingerprint, group counts)."""
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
            click.echo(f"{r['name']:<16} BROKEN: {r['error']}")
        else:
            click.echo(f"{r['name']:<16} version {r['version']:<6} {r['mdc']} MDC {r['adrg']} ADRG "
                       f"{r['drg']} DRG  sha256 {r['fingerprint'][:16]}  {r['path']}")


@main.command("validate-ruleset")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
def validate_ruleset(path):
    """Check a ruleset folder: tables, references, orders, codes, conditions; then compile it."""
    from .compile import compile_ruleset

    try:
        rs = load_ruleset(path)
        compiled = compile_ruleset(rs)
    except RulesetError as exc:
        raise click.ClickException(str(exc)) from None
    d = describe(rs)
    click.echo(f"ok: {d['name']} version {d['version']}: {d['mdc']} MDC, {d['adrg']} ADRG, {d['drg']} DRG; "
               f"{len(compiled.cond)} condition nodes, {compiled.nbytes / 1e6:.1f} MB compiled; "
               f"sha256 {d['fingerprint']}")


@main.command()
@click.option("-n", "--cases", type=click.IntRange(min=0), required=True, help="Number of cases.")
@click.option("--hospitals", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--year", type=click.IntRange(1900, 2200), default=2025, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same file.")
@click.option("-r", "--ruleset", default="chs-drg-1.1", show_default=True, help=RULESET_HELP)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Output file (.parquet, .csv or .arrow).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def synth(cases, hospitals, year, seed, ruleset, output, overwrite):
    """Write a SYNTHETIC province of discharge records (no real patients) for trying the grouper.

    Hospitals of three levels, a skewed realistic case mix drawn from the ruleset's own lists,
    secondary diagnoses with CC/MCC, newborns, length of stay, cost with outliers, deaths and
    readmissions. The file's metadata marks it synthetic.
    """
    import time

    from .synth import SynthSpec, write_synthetic

    t0 = time.perf_counter()
    try:
        rows = write_synthetic(SynthSpec(cases, hospitals, year, seed, ruleset), output, overwrite=overwrite)
    except RulesetError as exc:
        raise click.ClickException(f"ruleset {ruleset}: {exc}") from None
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    secs = time.perf_counter() - t0
    click.echo(f"{rows} synthetic cases written to {output} in {secs:.1f} s", err=True)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--from", "from_", default="chs-drg-1.1", show_default=True, help="Ruleset the data was grouped under.")
@click.option("--to", "to", default="chs-drg-2.0", show_default=True, help="Ruleset to regroup into.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Per-case results under both rulesets (.parquet, .csv or .arrow).")
@click.option("--matrix", type=click.Path(dir_okay=False), help="Migration matrix: level, from, to, cases.")
@click.option("--summary", type=click.Path(dir_okay=False), help="Summary JSON (changes, status rates, weights, CMI).")
@click.option("-t", "--threads", type=click.IntRange(min=1), default=None, help="Kernel threads.")
@click.option("--keep", multiple=True, metavar="COL", help="Input column to copy to the output (repeatable).")
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
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def regroup(inputs, from_, to, output, matrix, summary, threads, keep, cost_column, hospital_column,
            report, trim, min_cases, convert_codes, overwrite):
    """Regroup INPUTS from one ruleset to another in one pass: both results per case, the
    migration matrix and a summary of who moves where."""
    from .regroup import regroup as run
    from .weights import WeightOptions

    opts = WeightOptions(trim=trim, min_cases=min_cases)
    try:
        opts.trim_rule()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--trim") from None
    g_from, g_to = _grouper(from_, threads), _grouper(to, threads)
    if report is not None and Path(report).exists() and not overwrite:
        raise click.ClickException(f"{report}: file exists and won't be overwritten without --overwrite")
    try:
        r = run(inputs, g_from, g_to, output, matrix=matrix, summary=summary, overwrite=overwrite,
                keep=keep, cost_column=cost_column, hospital_column=hospital_column, convert_codes=convert_codes,
                weight_options=opts)
        if report is not None:
            from .report import write_regroup_report

            write_regroup_report(r.summary, r.matrix, report, overwrite=overwrite)
    except InputError as exc:
        raise click.UsageError(str(exc)) from None
    except (OSError, ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    s = r.summary
    click.echo(f"{r.rows} cases regrouped {g_from.compiled.name} -> {g_to.compiled.name} in {r.seconds:.2f} s: "
               f"DRG changed for {s['share_drg_changed']:.1%}, ADRG for {s['share_adrg_changed']:.1%}; "
               f"status under {g_to.compiled.name}: "
               + ", ".join(f"{k} {v:.2%}" for k, v in s["to"]["status_rates"].items()), err=True)
    if s["principal_dx_unknown_share"] > 0.2 and not convert_codes:
        click.echo(f"warning: {s['principal_dx_unknown_share']:.0%} of principal diagnoses are unknown to both "
                   "rulesets: the export may be coded in another edition (try --convert-codes)", err=True)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Weights table (.csv/.parquet): drg, adrg, n, n_trimmed, mean_cost, rw, cv, mean_los, stable, flags.")
@click.option("-r", "--ruleset", default="chs-drg-1.1", show_default=True, help=RULESET_HELP)
@click.option("--trim", default="iqr:1.5", show_default=True, help="none, iqr:K (Tukey), sdlog:K or pct:LO-HI.")
@click.option("--min-cases", type=click.IntRange(min=1), default=5, show_default=True,
              help="Groups with fewer kept cases are flagged thin and take their ADRG's pooled weight.")
@click.option("--cost-column", default="total_cost", show_default=True)
@click.option("--los-column", default="los", show_default=True)
@click.option("--year-column", default=None, help="Column with the case's year, for --year-weights.")
@click.option("--year-weights", default=None, metavar="Y=W,...", help="E.g. 2022=1,2023=2,2024=7 (oldest to newest).")
@click.option("--summary", type=click.Path(dir_okay=False), help="JSON with RIV, mean cost and exclusions.")
@click.option("--report", type=click.Path(dir_okay=False),
              help="HTML report with plots (RW distribution, CV by group, RW vs LOS).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def weights(inputs, output, ruleset, trim, min_cases, cost_column, los_column, year_column, year_weights,
            summary, report, overwrite):
    """Relative weights (RW) per DRG from case files with costs: trimmed group mean cost over the
    trimmed overall mean, renormalised so that the base data's CMI is 1; CV, RIV, stability."""
    from .io import _atomic, write_batches
    from .weights import WeightOptions, weights_from_files

    try:
        yw = {int(k): float(v) for k, v in (p.split("=") for p in year_weights.split(","))} if year_weights else {}
    except ValueError:
        raise click.BadParameter("use YEAR=WEIGHT,... e.g. 2022=1,2023=2,2024=7", param_hint="--year-weights") from None
    opts = WeightOptions(trim=trim, min_cases=min_cases, year_weights=yw)
    try:
        opts.trim_rule()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--trim") from None
    g = _grouper(ruleset, None)
    try:
        r = weights_from_files(g, inputs, opts, cost=cost_column, los=los_column, year=year_column)
        write_batches(output, r.table.to_batches(), overwrite=overwrite, empty_schema=r.table.schema)
        if report:
            from .report import write_weights_report

            write_weights_report(r, report, title=f"{g.compiled.name} weights", trim=trim, overwrite=overwrite)
        if summary:
            with _atomic(Path(summary), overwrite) as tmp:
                Path(tmp).write_text(json.dumps({"ruleset": g.compiled.name, "fingerprint": g.compiled.fingerprint,
                                                 "trim": trim, "mean_cost": r.mean_cost, "riv": r.riv,
                                                 "groups": r.table.num_rows, "excluded": r.excluded},
                                                ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    except InputError as exc:
        raise click.UsageError(str(exc)) from None
    except (OSError, ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    kept = sum(r.table["n"].to_pylist())
    trimmed = sum(r.table["n_trimmed"].to_pylist())
    click.echo(f"{r.table.num_rows} DRG weights from {kept} cases ({trimmed} trimmed, {trim}); RIV {r.riv:.3f}; "
               f"excluded: " + ", ".join(f"{k} {v}" for k, v in r.excluded.items()), err=True)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-w", "--weights", "weights_file", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Weights table from `drg weights` (drg, rw).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Indices table (.csv/.parquet).")
@click.option("-r", "--ruleset", default="chs-drg-1.1", show_default=True, help=RULESET_HELP)
@click.option("--hospital-column", default="hospital_id", show_default=True)
@click.option("--department-column", default=None, help="Also break down by department.")
@click.option("--cost-column", default="total_cost", show_default=True)
@click.option("--los-column", default="los", show_default=True)
@click.option("--discharge-column", default="discharge", show_default=True)
@click.option("--death-code", multiple=True, default=("5",), show_default=True, help="Discharge codes meaning death.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def indices(inputs, weights_file, output, ruleset, hospital_column, department_column, cost_column, los_column,
            discharge_column, death_code, overwrite):
    """Hospital indices: cases, DRG count, total weight, CMI, cost and time consumption indices,
    low-risk and mid-low-risk group mortality (risk tiers from the data's own group mortality)."""
    from .indices import indices_from_files
    from .io import open_source, write_batches

    g = _grouper(ruleset, None)
    try:
        wt = pa_table(open_source(weights_file))
        weights = dict(zip(wt["drg"].to_pylist(), wt["rw"].to_pylist()))
        table, excluded = indices_from_files(g, inputs, weights, hospital=hospital_column, cost=cost_column,
                                             los=los_column, discharge=discharge_column,
                                             department=department_column, death_codes=tuple(death_code))
        write_batches(output, table.to_batches(), overwrite=overwrite, empty_schema=table.schema)
    except InputError as exc:
        raise click.UsageError(str(exc)) from None
    except (OSError, ValueError, KeyError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"indices for {table.num_rows} units written to {output}; excluded rows: "
               + ", ".join(f"{k} {v}" for k, v in excluded.items()), err=True)


def pa_table(source):
    """All batches of an opened source as one table (small files: a weights table)."""
    import pyarrow as pa

    return pa.Table.from_batches(list(source.batches), schema=source.schema)


if __name__ == "__main__":  # pragma: no cover
    main()

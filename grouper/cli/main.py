"""The ``drg`` command line. Parses options and calls one library function per command.

Exit codes: 0 finished (ungroupable and invalid cases are data, reported per row);
1 runtime, I/O or ruleset error (one-line reason on stderr); 2 usage error, including a
missing required input column or a bad column mapping; 3 (``group --max-error-rate``) the
output was written but too many cases are invalid or ungroupable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import click

from grouper._util.version import __version__
from grouper._util.errors import InputError
from grouper.rulesets import (DEFAULT_RULESET, NEXT_RULESET, STATUSES, RulesetError, available_rulesets, describe,
                      load_ruleset)

RULESET_HELP = "Ruleset name (see `drg rulesets`) or path to a ruleset folder."


@contextmanager
def _command_errors(*also: type[Exception], ruleset: Callable[[], str] | None = None):
    """A command's failures as exit codes: a missing input column or a bad mapping is a usage
    error (2); a broken ruleset (named by ``ruleset()`` when given), I/O or bad data, and the
    exception types in ``also``, one line and exit 1."""
    try:
        yield
    except InputError as exc:
        raise click.UsageError(str(exc)) from None
    except RulesetError as exc:
        if ruleset is None:
            raise click.ClickException(str(exc)) from None
        raise click.ClickException(f"ruleset {ruleset()}: {exc}") from None
    except (OSError, ValueError, *also) as exc:
        raise click.ClickException(str(exc)) from None


def _check_outputs(outputs, inputs=(), overwrite: bool = False) -> None:
    """Refuse, before any work, an output that is one of the command's inputs or another of its
    outputs (even with --overwrite), or that exists without --overwrite (grouper.io.cases.check_outputs)."""
    from grouper.io import check_outputs

    try:
        check_outputs(outputs, inputs, overwrite=overwrite)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def _grouper(ruleset: str, threads: int | None):
    from grouper.engine import Grouper

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
@click.option("-o", "--output", type=click.Path(),
              help="Output file; format from the extension (.csv, .parquet, .arrow). "
                   "Without it, a readable table is printed. With --workers/--scheduler: an output FOLDER.")
@click.option("-r", "--ruleset", default=DEFAULT_RULESET, show_default=True, help=RULESET_HELP)
@click.option("-t", "--threads", type=click.IntRange(min=1), default=None,
              help="Kernel threads (default: the CPUs this process may use).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output (and report) file; with "
              "--workers/--scheduler, regroup every part instead of resuming.")
@click.option("--keep", multiple=True, metavar="COL", help="Input column to copy to the output (repeatable); "
              "one named like an output column (status, drg, ...) is written as input_<name>.")
@click.option("--keep-all", is_flag=True, help="Copy every input column (of the first input) to the output, "
              "except those named like output columns.")
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
@click.option("--workers", type=click.IntRange(min=1), metavar="N",
              help="Group a Parquet dataset with N local processes, one kernel thread each, one task per "
                   "file (big files: per run of row groups). -o is then a folder of part-<file>.parquet "
                   "files in input order, with _manifest.json; rerunning resumes, skipping finished parts.")
@click.option("--scheduler", metavar="ADDRESS",
              help="Like --workers, on the Dask cluster at ADDRESS (e.g. tcp://host:8786); every worker "
                   "needs drg-grouper installed and the inputs and -o folder reachable. Needs drg-grouper[dask].")
def group(inputs, output, ruleset, threads, overwrite, keep, keep_all, batch_size, limit, maps, map_file,
          layout, report, max_error_rate, progress, workers, scheduler):
    """Group the cases of INPUT... (CSV, Parquet or Arrow IPC files, folders, glob patterns)
    into one output, in order.

    Input columns: sex (1 male, 2 female), age (years), age_days, birth_weight (g),
    dx and px (principal first; list<string> or '|'-separated text), case_id optional.
    One output row per input row, in input order.

    Exit codes: 0 done; 1 runtime or I/O error; 2 usage error (bad option, missing column);
    3 output written but the share of invalid/ungroupable cases is above --max-error-rate.

    With --workers N or --scheduler ADDRESS, INPUT... are Parquet files, folders (searched
    recursively), globs or URIs (s3://...), and -o names an output folder; a part that fails
    is reported (exit 1) and rerunning the same command retries only the unfinished parts.
    """
    from grouper.jobs.group import group_files

    if workers is not None or scheduler is not None:
        return _group_dataset(inputs, output, ruleset, threads, overwrite, keep, keep_all, batch_size, maps,
                              map_file, layout, report, max_error_rate, progress, workers, scheduler)
    if output is not None and Path(output).is_dir():
        raise click.UsageError(f"-o {output}: is a folder; folders are written with --workers or --scheduler")
    g = _grouper(ruleset, threads)
    with _command_errors():
        summary, table = group_files(
            g, inputs, output, overwrite=overwrite, keep=True if keep_all else keep, batch_size=batch_size,
            mapping=maps, map_file=map_file, layout=layout, report=report, max_error_rate=max_error_rate,
            progress=sys.stderr if (sys.stderr.isatty() if progress is None else progress) else None,
            log=lambda msg: click.echo(msg, err=True))
    if table is not None:
        click.echo(format_table(table, limit))
    click.echo(summary.line(), err=True)
    if summary.breach:
        click.echo(f"Error: {summary.breach}", err=True)
        sys.exit(3)


@contextmanager
def _dask_client(scheduler: str | None):
    """A Dask client for --scheduler ADDRESS (None without it), closed when the block ends."""
    if scheduler is None:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise click.ClickException("--scheduler needs Dask: pip install 'drg-grouper[dask]'") from None
    try:
        client = Client(scheduler, timeout="30s")
    except (OSError, ValueError, TimeoutError) as exc:
        raise click.ClickException(f"--scheduler {scheduler}: cannot connect ({exc})") from None
    try:
        yield client
    finally:
        client.close()


def _parallel_options(f):
    """--workers / --scheduler for the aggregate commands (weights, indices)."""
    f = click.option("--scheduler", metavar="ADDRESS",
                     help="Run one task per Parquet file of INPUT on this Dask scheduler and merge the partial "
                          "results (exactly equal to one process).")(f)
    return click.option("--workers", type=click.IntRange(min=1), default=None,
                        help="Run one task per Parquet file of INPUT on N local processes, partial results merged "
                             "(exactly equal to one process).")(f)


def _group_dataset(inputs, output, ruleset, threads, overwrite, keep, keep_all, batch_size, maps, map_file,
                   layout, report, max_error_rate, progress, workers, scheduler):
    """``drg group --workers/--scheduler``: grouper.scale.distributed.group_dataset into a folder."""
    from grouper.scale.distributed import group_dataset

    if workers is not None and scheduler is not None:
        raise click.UsageError("give --workers (local processes) or --scheduler (a Dask cluster), not both")
    if output is None:
        raise click.UsageError("--workers/--scheduler write a folder of part files: name it with -o DIR")
    if threads is not None:
        raise click.UsageError("--threads does not apply with --workers/--scheduler: "
                               "each worker runs one kernel thread")
    g = _grouper(ruleset, None)
    with _dask_client(scheduler) as client, _command_errors():
        result = group_dataset(
            list(inputs), output, g, client, workers=workers, keep=True if keep_all else keep, mapping=maps,
            map_file=map_file, layout=layout, batch_size=batch_size, overwrite=overwrite, report=report,
            max_error_rate=max_error_rate,
            progress=sys.stderr if (sys.stderr.isatty() if progress is None else progress) else None)
    click.echo(result.line(), err=True)
    if result.failed:
        for row in result.failed[:10]:
            click.echo(f"failed: {row.get('error') or row['fragment']}", err=True)
        raise click.ClickException(f"{len(result.failed)} of {len(result.manifest['fragments'])} parts failed "
                                   f"(the others are in {output}); rerun the same command to retry only those")
    if result.summary.breach:
        click.echo(f"Error: {result.summary.breach}", err=True)
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
    with _command_errors():  # a wrongly typed field is a usage error (2), named
        e = g.explain(case)
    if as_json:
        click.echo(json.dumps(e.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(e.text())


@main.command()
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


@main.command("validate-ruleset")
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


@main.command("compile")
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


@main.command()
@click.option("-n", "--cases", type=click.IntRange(min=0), required=True, help="Number of cases.")
@click.option("--hospitals", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--year", type=click.IntRange(1900, 2200), default=2025, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same file.")
@click.option("-r", "--ruleset", default=DEFAULT_RULESET, show_default=True, help=RULESET_HELP)
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

    from grouper.analytics.synth import SynthSpec, write_synthetic

    _check_outputs([output], [], overwrite)
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
@click.option("--from", "from_", default=DEFAULT_RULESET, show_default=True, help="Ruleset the data was grouped under.")
@click.option("--to", "to", default=NEXT_RULESET, show_default=True, help="Ruleset to regroup into.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Per-case results under both rulesets (.parquet, .csv or .arrow).")
@click.option("--matrix", type=click.Path(dir_okay=False), help="Migration matrix: level, from, to, cases.")
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
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def regroup(inputs, from_, to, output, matrix, summary, threads, keep, cost_column, hospital_column,
            report, trim, min_cases, convert_codes, overwrite):
    """Regroup INPUTS from one ruleset to another in one pass: both results per case, the
    migration matrix and a summary of who moves where."""
    from grouper.analytics.regroup import regroup as run
    from grouper.analytics.weights import WeightOptions

    opts = WeightOptions(trim=trim, min_cases=min_cases)
    try:
        opts.trim_rule()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--trim") from None
    _check_outputs([output, matrix, summary, report], inputs, overwrite)
    g_from, g_to = _grouper(from_, threads), _grouper(to, threads)
    with _command_errors(RuntimeError):
        r = run(inputs, g_from, g_to, output, matrix=matrix, summary=summary, report=report, overwrite=overwrite,
                keep=keep, cost_column=cost_column, hospital_column=hospital_column, convert_codes=convert_codes,
                weight_options=opts)
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
@click.option("-r", "--ruleset", default=DEFAULT_RULESET, show_default=True, help=RULESET_HELP)
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
@_parallel_options
def weights(inputs, output, ruleset, trim, min_cases, cost_column, los_column, year_column, year_weights,
            summary, report, overwrite, workers, scheduler):
    """Relative weights (RW) per DRG from case files with costs: trimmed group mean cost over the
    trimmed overall mean, renormalised so that the base data's CMI is 1; CV, RIV, stability."""
    from grouper.io import write_batches, write_text
    from grouper.analytics.weights import WeightOptions, weights_from_files

    try:
        yw = {int(k): float(v) for k, v in (p.split("=") for p in year_weights.split(","))} if year_weights else {}
    except ValueError:
        raise click.BadParameter("use YEAR=WEIGHT,... e.g. 2022=1,2023=2,2024=7", param_hint="--year-weights") from None
    opts = WeightOptions(trim=trim, min_cases=min_cases, year_weights=yw)
    try:
        opts.trim_rule()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--trim") from None
    _check_outputs([output, summary, report], inputs, overwrite)
    g = _grouper(ruleset, None)
    with _dask_client(scheduler) as client, _command_errors(RuntimeError):
        if workers is not None or client is not None:
            from grouper.scale.distributed import weights_dataset

            r = weights_dataset(list(inputs), g, opts, client, workers=workers, cost=cost_column, los=los_column,
                                year=year_column)
        else:
            r = weights_from_files(g, inputs, opts, cost=cost_column, los=los_column, year=year_column)
        write_batches(output, r.table.to_batches(), overwrite=overwrite, empty_schema=r.table.schema)
        if report:
            from grouper.report.pages import write_weights_report

            write_weights_report(r, report, title=f"{g.compiled.name} weights", trim=trim, overwrite=overwrite)
        if summary:
            write_text(summary, json.dumps({"ruleset": g.compiled.name, "fingerprint": g.compiled.fingerprint,
                                            "trim": trim, "mean_cost": r.mean_cost, "riv": r.riv,
                                            "groups": r.table.num_rows, "excluded": r.excluded},
                                           ensure_ascii=False, indent=2) + "\n", overwrite=overwrite)
    kept = sum(r.table["n"].to_pylist())
    trimmed = sum(r.table["n_trimmed"].to_pylist())
    click.echo(f"{r.table.num_rows} DRG weights from {kept} cases ({trimmed} trimmed, {trim}); RIV {r.riv:.3f}; "
               f"excluded: " + ", ".join(f"{k} {v}" for k, v in r.excluded.items()), err=True)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-w", "--weights", "weights_file", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Weights table from `drg weights` (drg, rw).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Indices table (.csv/.parquet).")
@click.option("-r", "--ruleset", default=DEFAULT_RULESET, show_default=True, help=RULESET_HELP)
@click.option("--hospital-column", default="hospital_id", show_default=True)
@click.option("--department-column", default=None, help="Also break down by department.")
@click.option("--cost-column", default="total_cost", show_default=True)
@click.option("--los-column", default="los", show_default=True)
@click.option("--discharge-column", default="discharge", show_default=True)
@click.option("--death-code", multiple=True, default=("5",), show_default=True, help="Discharge codes meaning death.")
@click.option("--report", type=click.Path(dir_okay=False),
              help="HTML report with plots: CMI vs cost and time indices, low-risk mortality, the hospital table.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@_parallel_options
def indices(inputs, weights_file, output, ruleset, hospital_column, department_column, cost_column, los_column,
            discharge_column, death_code, report, overwrite, workers, scheduler):
    """Hospital indices: cases, DRG count, total weight, CMI, cost and time consumption indices,
    low-risk and mid-low-risk group mortality (risk tiers from the data's own group mortality)."""
    from grouper.analytics.indices import indices_from_files
    from grouper.io import open_source, write_batches

    _check_outputs([output, report], [*inputs, weights_file], overwrite)
    g = _grouper(ruleset, None)
    with _dask_client(scheduler) as client, _command_errors(KeyError, RuntimeError):
        wt = pa_table(open_source(weights_file))
        weights = dict(zip(wt["drg"].to_pylist(), wt["rw"].to_pylist()))
        kw = dict(hospital=hospital_column, cost=cost_column, los=los_column, discharge=discharge_column,
                  department=department_column, death_codes=tuple(death_code))
        if workers is not None or client is not None:
            from grouper.scale.distributed import indices_dataset

            table, excluded = indices_dataset(list(inputs), weights, g, client, workers=workers, **kw)
        else:
            table, excluded = indices_from_files(g, inputs, weights, **kw)
        write_batches(output, table.to_batches(), overwrite=overwrite, empty_schema=table.schema)
        if report:
            from grouper.report.pages import write_indices_report

            write_indices_report((table, excluded), report, overwrite=overwrite,
                                 title=f"{g.compiled.name} 医院评价指标 / hospital indices")
    click.echo(f"indices for {table.num_rows} units written to {output}; excluded rows: "
               + ", ".join(f"{k} {v}" for k, v in excluded.items()), err=True)


def _side(value: str, min_cases: int):
    """A recalibration side: a weights file when the path exists, else a trimming rule."""
    from grouper.io import open_source
    from grouper.analytics.weights import WeightOptions

    if Path(value).is_file():
        try:
            return pa_table(open_source(value))
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"{value}: {exc}") from None
    opts = WeightOptions(trim=value, min_cases=min_cases)
    try:
        opts.trim_rule()
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a weights file nor a trimming rule "
                                 "(none, iqr:K, sdlog:K, pct:LO-HI)") from None
    return opts


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-a", "side_a", required=True, metavar="WEIGHTS|TRIM",
              help="Side a: a weights table (from `drg weights`, e.g. last year's) or a trimming rule computed "
                   "from INPUT (none, iqr:K, sdlog:K, pct:LO-HI).")
@click.option("-b", "side_b", required=True, metavar="WEIGHTS|TRIM", help="Side b, the same way.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Per-DRG comparison (.csv/.parquet): drg, rw_a, rw_b, change, relative_change, cases, "
                   "total_weight_a, total_weight_b.")
@click.option("--hospitals", type=click.Path(dir_okay=False),
              help="Per-hospital CMI and total weight under a and b (.csv/.parquet).")
@click.option("--summary", type=click.Path(dir_okay=False), help="JSON: budget impact and exclusions.")
@click.option("--report", type=click.Path(dir_okay=False), help="HTML report with plots.")
@click.option("-r", "--ruleset", default=DEFAULT_RULESET, show_default=True, help=RULESET_HELP)
@click.option("--min-cases", type=click.IntRange(min=1), default=5, show_default=True,
              help="For a side computed from INPUT: thin-group threshold, as in `drg weights`.")
@click.option("--hospital-column", default="hospital_id", show_default=True)
@click.option("--cost-column", default="total_cost", show_default=True)
@click.option("--los-column", default="los", show_default=True)
@click.option("--discharge-column", default="discharge", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def recalibrate(inputs, side_a, side_b, output, hospitals, summary, report, ruleset, min_cases, hospital_column,
                cost_column, los_column, discharge_column, overwrite):
    """A recalibration experiment: two weight sets (files, or trimming rules computed from the
    cases) side by side on the same cases: per-DRG change, budget impact (total weight under each)
    and each hospital's CMI shift. The cases are read once."""
    from grouper.io import write_batches, write_text
    from grouper.analytics.recalibrate import recalibrate_files

    _check_outputs([output, hospitals, summary, report],
                   [*inputs, *(v for v in (side_a, side_b) if Path(v).exists())], overwrite)
    a, b = _side(side_a, min_cases), _side(side_b, min_cases)
    g = _grouper(ruleset, None)
    with _command_errors(KeyError, RuntimeError):
        r = recalibrate_files(g, inputs, a, b, hospital=hospital_column, cost=cost_column, los=los_column,
                              discharge=discharge_column)
        write_batches(output, r.comparison.to_batches(), overwrite=overwrite, empty_schema=r.comparison.schema)
        if hospitals:
            write_batches(hospitals, r.hospitals.to_batches(), overwrite=overwrite, empty_schema=r.hospitals.schema)
        budget = r.budget()
        if summary:
            write_text(summary, json.dumps({"a": side_a, "b": side_b, "ruleset": g.compiled.name,
                                            "fingerprint": g.compiled.fingerprint, "budget": budget,
                                            "excluded": r.excluded}, ensure_ascii=False, indent=2) + "\n",
                       overwrite=overwrite)
        if report:
            from grouper.report.pages import write_recalibration_report

            write_recalibration_report(r.comparison, r.hospitals, report, labels=(side_a, side_b), overwrite=overwrite)
    rel = budget["relative_change"]
    click.echo(f"{r.comparison.num_rows} DRGs compared; total weight {budget['total_weight_a']:,.1f} -> "
               f"{budget['total_weight_b']:,.1f}" + (f" ({rel:+.2%})" if rel is not None else "")
               + f"; {r.hospitals.num_rows} hospitals", err=True)

@main.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-p", "--pack", required=True,
              help="Payment pack: a TOML file, or the name of a bundled one (e.g. illustrative-2024).")
@click.option("-w", "--weights", "weights_file", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Weights table from `drg weights` (drg, rw, mean_cost, mean_los, n).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Per-case settlement (.parquet/.csv/.arrow), one row per input row, in order.")
@click.option("--hospitals", "hospitals_file", type=click.Path(exists=True, dir_okay=False),
              help="Hospital table (hospital_id or hospital, optional level, and the columns the pack's knobs "
                   "read, e.g. the output of `drg indices` plus satisfaction).")
@click.option("--summary", type=click.Path(dir_okay=False),
              help="Per-hospital settlement (.csv/.parquet): totals, cases by type, surplus/overspend, "
                   "pre-settlement, reserve, clearance, knob effects.")
@click.option("--months", type=click.Path(dir_okay=False),
              help="Monthly pre-settlement per hospital and discharge month (.csv/.parquet).")
@click.option("--json", "json_file", type=click.Path(dir_okay=False),
              help="JSON run summary: counts by status and type, totals, rate, renormalisation, knob effects.")
@click.option("--report", type=click.Path(dir_okay=False), help="HTML report with plots.")
@click.option("-r", "--ruleset", default=DEFAULT_RULESET, show_default=True,
              help=RULESET_HELP + " Used only for inputs that are not grouped yet (no status/drg columns).")
@click.option("-t", "--threads", type=click.IntRange(min=1), default=None, help="Kernel threads (grouping).")
@click.option("--column", "column_map", multiple=True, metavar="ROLE=NAME",
              help="Read a role from another column, e.g. --column cost=zfy (repeatable). Roles: "
                   "case_id, hospital, level, insurance_type, cost, patient_share, los, discharge, date, "
                   "referred, status, drg.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def settle(inputs, pack, weights_file, output, hospitals_file, summary, months, json_file, report, ruleset, threads,
           column_map, overwrite):
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
    from grouper.payment.drg.settlement import Columns, settle_files

    roles = {}
    for item in column_map:
        role, sep, name = item.partition("=")
        if not sep or not name or role not in Columns.roles():
            raise click.BadParameter(f"{item!r}: use ROLE=NAME with ROLE one of {', '.join(Columns.roles())}",
                                     param_hint="--column")
        roles[role] = name
    try:
        p = load_pack(pack)
    except PackError as exc:
        raise click.ClickException(str(exc)) from None
    _check_outputs([output, summary, months, json_file, report],
                   [*inputs, weights_file, hospitals_file, pack if Path(pack).is_file() else p.path], overwrite)
    if p.illustrative:
        click.echo(f"warning: pack {p.name} is ILLUSTRATIVE: its numbers are examples, not a region's rules",
                   err=True)
    with _command_errors(KeyError, RuntimeError):
        r = settle_files(inputs, p, weights_file, output, hospitals_path=hospitals_file, summary=summary,
                         months=months, json_path=json_file, report=report, columns=Columns(**roles),
                         grouper=lambda: _grouper(ruleset, threads), overwrite=overwrite)
    s = r.summary
    st, tot = s["settle_status"], s["totals"]
    not_settled = {k: v for k, v in st.items() if k != "settled" and v}
    click.echo(f"{s['rows']} cases under {p.name}: {st['settled']} settled"
               + (" (not settled: " + ", ".join(f"{k} {v}" for k, v in not_settled.items()) + ")" if not_settled else "")
               + "; types: " + ", ".join(f"{k} {v}" for k, v in s["case_types"].items() if v)
               + f"; payment {tot['payment']:,.2f}, fund {tot['fund_payment']:,.2f}, margin {tot['margin']:,.2f}; "
               f"rate {s['rate']['final_base']:,.2f}/RW; {s['hospitals']} hospitals; {s['seconds']:.1f} s", err=True)


@main.group("dip")
def dip_group():
    """DIP (按病种分值付费): build a catalogue of groups and scores from historical cases, assign
    cases to it, settle cases under a payment pack's [dip] table. See docs/dip.md."""


DIP_RULESET_HELP = ("Ruleset whose operating-room procedure list (or_procedures.csv) marks procedures as "
                    "相关手术 (name or folder).")


def _dip_pack(pack: str | None) -> dict:
    """The [dip] table of a payment pack: a TOML file or the name of a bundled pack."""
    import tomllib

    from grouper.rulesets import rules_dirs

    if pack is None:
        return {}
    path = Path(pack)
    if not path.is_file():
        found = [d / "payment" / f"{pack}.toml" for d in rules_dirs() if (d / "payment" / f"{pack}.toml").is_file()]
        if not found:
            raise click.ClickException(f"{pack}: no such pack file and no bundled pack of that name")
        path = found[0]
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise click.ClickException(f"{path}: unreadable pack ({exc})") from None
    if not isinstance(doc.get("dip"), dict):
        raise click.ClickException(f"{path}: no [dip] table")
    return doc["dip"]


def _dip_params(table: dict, **overrides):
    from grouper.payment.dip.dip import DipParams

    try:
        return DipParams.from_mapping({**table, **{k: v for k, v in overrides.items() if v is not None}})
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _year_weights(text: str | None):
    """'2022:1,2023:2,2024:7' (or '=') -> {year: w}; '1,2,7' -> (1, 2, 7), oldest to newest."""
    if not text:
        return None
    try:
        parts = [p.replace("=", ":").split(":") for p in text.split(",")]
        if all(len(p) == 1 for p in parts):
            return tuple(float(p[0]) for p in parts)
        return {int(y): float(w) for y, w in parts}
    except ValueError:
        raise click.BadParameter("use YEAR:WEIGHT,... (2022:1,2023:2,2024:7) or weights oldest to newest (1,2,7)",
                                 param_hint="--year-weights") from None


@dip_group.command("catalogue")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Catalogue table (.parquet keeps the build information; .csv, .arrow).")
@click.option("-p", "--pack", help="Payment pack (TOML file or bundled name) whose [dip] table gives the "
                                   "defaults; the options below win.")
@click.option("-r", "--ruleset", default=DEFAULT_RULESET, show_default=True, help=DIP_RULESET_HELP)
@click.option("--year-column", default=None,
              help="Column with the year or discharge date of each case [default: discharge_date when every "
                   "input has it, otherwise all cases are one period].")
@click.option("--year-weights", default=None, metavar="Y:W,...",
              help="2022:1,2023:2,2024:7, or 1,2,7 aligned to the newest year [default: the pack's, else 1,2,7].")
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
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def dip_catalogue(inputs, output, pack, ruleset, year_column, year_weights, core_min_n, comprehensive_min_n,
                  scale, trim, cost_column, level_column, summary, overwrite):
    """Build a DIP catalogue from historical cases: core groups (亚目 x principal procedure with
    enough cases), comprehensive groups (category, then chapter, x treatment type) for the rest,
    scores from year-weighted mean costs, level means and the budget point value."""
    from grouper.payment.dip.dip import Columns, ProcedureTypes, catalogue_from_files
    from grouper.io import expand_inputs, open_source, write_text

    _check_outputs([output, summary], [*inputs, pack if pack and Path(pack).is_file() else None], overwrite)
    params = _dip_params(_dip_pack(pack), year_weights=_year_weights(year_weights), core_min_n=core_min_n,
                         comprehensive_min_n=comprehensive_min_n, score_scale=scale, trim=trim)
    with _command_errors(ruleset=lambda: ruleset):
        files = expand_inputs(inputs)
        if year_column is None:
            has = [("discharge_date" in open_source(f).schema.names) for f in files]
            year_column = "discharge_date" if all(has) else None
        types = ProcedureTypes.from_ruleset(ruleset)
        cat = catalogue_from_files(files, params, procedure_types=types,
                                   columns=Columns(cost=cost_column, level=level_column, year=year_column))
        cat.save(output, overwrite=overwrite)
        if summary:
            write_text(summary, json.dumps(cat.info, ensure_ascii=False, indent=2) + "\n", overwrite=overwrite)
    i = cat.info
    g = i["groups"]
    click.echo(f"{sum(g.values())} DIP groups ({g['core']} core, {g['comprehensive']} comprehensive, "
               f"{g['comprehensive_chapter']} by chapter) from {i['cases']} cases"
               + (f" of years {', '.join(i['years'])}" if year_column else " (one period)")
               + f"; mean cost {i['mean_cost']:,.2f}, budget point value {i['budget_point_value']:.4f}; excluded: "
               + (", ".join(f"{k} {v}" for k, v in i["excluded"].items() if v) or "none"), err=True)


@dip_group.command("assign")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-c", "--catalogue", "catalogue_file", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Catalogue from `drg dip catalogue`.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Per case, in order: case_id, status, group, group_type, score.")
@click.option("-r", "--ruleset", default=None, help=DIP_RULESET_HELP + " [default: the catalogue's, else " + DEFAULT_RULESET + "]")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def dip_assign(inputs, catalogue_file, output, ruleset, overwrite):
    """Assign cases to the groups of a DIP catalogue (no payment)."""
    from grouper.payment.dip.dip import Catalogue, ProcedureTypes, assign_files

    _check_outputs([output], [*inputs, catalogue_file], overwrite)
    with _command_errors(ruleset=lambda: ruleset):
        cat = Catalogue.load(catalogue_file)
        ruleset = ruleset or cat.info.get("ruleset") or DEFAULT_RULESET
        counts = assign_files(inputs, cat, output, procedure_types=ProcedureTypes.from_ruleset(ruleset),
                              overwrite=overwrite)
    click.echo(f"{sum(counts.values())} cases: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v), err=True)


@dip_group.command("settle")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-c", "--catalogue", "catalogue_file", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Catalogue from `drg dip catalogue`.")
@click.option("-p", "--pack", required=True, help="Payment pack (TOML file or bundled name) with a [dip] table.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Per case, in order: group, score, x, case type, points, amount, fund, margin (.parquet/.csv/.arrow).")
@click.option("--summary", type=click.Path(dir_okay=False),
              help="Per hospital (.csv/.parquet): points, amount, fund, cost, margin, cases by type, review cases "
                   "against the 特例单议 cap.")
@click.option("--totals", type=click.Path(dir_okay=False),
              help="JSON: point value, totals, counts by status and case type, level coefficients used.")
@click.option("--point-value", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Use this point value instead of PV_s = (fund_budget / fund_ratio) / total points.")
@click.option("-r", "--ruleset", default=None, help=DIP_RULESET_HELP + " [default: the catalogue's, else " + DEFAULT_RULESET + "]")
@click.option("--cost-column", default="total_cost", show_default=True)
@click.option("--hospital-column", default="hospital_id", show_default=True)
@click.option("--level-column", default="hospital_level", show_default=True)
@click.option("--patient-share-column", default=None,
              help="Patient's share per case: fund = amount - share (else amount x dip.fund_ratio).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def dip_settle(inputs, catalogue_file, pack, output, summary, totals, point_value, ruleset, cost_column,
               hospital_column, level_column, patient_share_column, overwrite):
    """Settle cases under DIP: group, score, cost ratio x and case type (low < dip.low_x, high >
    dip.high_x, extreme > dip.extreme_x for review), points with the level coefficient, amount =
    points x point value, fund and margin; per-hospital totals with --summary."""
    from grouper.payment.dip.dip import Catalogue, Columns, ProcedureTypes, settle_files
    from grouper.io import write_batches, write_text

    params = _dip_params(_dip_pack(pack))
    _check_outputs([output, summary, totals], [*inputs, catalogue_file, pack if Path(pack).is_file() else None],
                   overwrite)
    with _command_errors(ruleset=lambda: ruleset):
        cat = Catalogue.load(catalogue_file)
        ruleset = ruleset or cat.info.get("ruleset") or DEFAULT_RULESET
        cols = Columns(cost=cost_column, hospital=hospital_column, level=level_column,
                       patient_share=patient_share_column)
        r = settle_files(inputs, cat, params, output, procedure_types=ProcedureTypes.from_ruleset(ruleset),
                         columns=cols, point_value=point_value, overwrite=overwrite)
        if summary:
            write_batches(summary, r.hospitals.to_batches(), overwrite=overwrite, empty_schema=r.hospitals.schema)
        if totals:
            write_text(totals, json.dumps(r.summary, ensure_ascii=False, indent=2) + "\n", overwrite=overwrite)
    s = r.summary
    not_settled = {k: v for k, v in s["statuses"].items() if k != "settled" and v}
    click.echo(f"{s['cases']} cases: {s['statuses']['settled']} settled"
               + (" (not settled: " + ", ".join(f"{k} {v}" for k, v in not_settled.items()) + ")" if not_settled else "")
               + "; " + ", ".join(f"{k} {v}" for k, v in s["case_types"].items())
               + f"; point value {r.point_value:.4f} ({r.point_value_source}); points {s['total_points']:,.1f}; "
               f"amount {s['amount']:,.2f}; review cases {s['review_cases']} "
               f"({s['hospitals_over_review_cap']} hospitals over the cap)", err=True)


def pa_table(source):
    """All batches of an opened source as one table (small files: a weights table)."""
    import pyarrow as pa

    return pa.Table.from_batches(list(source.batches), schema=source.schema)


if __name__ == "__main__":  # pragma: no cover
    main()

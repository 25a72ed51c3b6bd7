"""What every ``drg`` command shares: turning failures into exit codes, refusing outputs before
any work, making a grouper, the --workers/--scheduler options."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import click

from grouper._util.errors import InputError

RULESET_HELP = "Ruleset name (see `drg rulesets`) or path to a ruleset folder."


@contextmanager
def command_errors(*also: type[Exception], ruleset: Callable[[], str] | None = None):
    """A command's failures as exit codes: a missing input column or a bad mapping is a usage
    error (2); a broken ruleset (named by ``ruleset()`` when given), I/O or bad data, and the
    exception types in ``also``, one line and exit 1."""
    from grouper.rulesets import RulesetError  # here, not at the top: `drg --help` loads no ruleset code

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


def check_outputs(outputs, inputs=(), overwrite: bool = False) -> None:
    """Refuse, before any work, an output that is one of the command's inputs or another of its
    outputs (even with --overwrite), or that exists without --overwrite (grouper.io.cases.check_outputs)."""
    from grouper.io import check_outputs as io_check_outputs

    try:
        io_check_outputs(outputs, inputs, overwrite=overwrite)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def make_grouper(ruleset: str, threads: int | None):
    from grouper.engine import Grouper
    from grouper.rulesets import RulesetError

    try:
        return Grouper(ruleset, n_threads=threads)
    except RulesetError as exc:
        raise click.ClickException(f"ruleset {ruleset}: {exc}") from None



@contextmanager
def dask_client(scheduler: str | None):
    """A Dask client for --scheduler ADDRESS (None without it), closed when the block ends."""
    from grouper.scale import SchedulerError
    from grouper.scale import dask_client as scale_dask_client

    try:
        with scale_dask_client(scheduler) as client:
            yield client
    except SchedulerError as exc:
        raise click.ClickException(f"--scheduler {exc}") from None


def parallel_options(f):
    """--workers / --scheduler for the aggregate commands (weights, indices)."""
    f = click.option("--scheduler", metavar="ADDRESS",
                     help="Run one task per Parquet file of INPUT on this Dask scheduler and merge the partial "
                          "results (exactly equal to one process).")(f)
    return click.option("--workers", type=click.IntRange(min=1), default=None,
                        help="Run one task per Parquet file of INPUT on N local processes, partial results merged "
                             "(exactly equal to one process).")(f)


#: The input vocabulary, shown once: in ``drg --help`` (main's epilog) and in README's "Input files".
INPUT_HELP = """\b
Reading cases: every command that reads case files (group, regroup, weights, indices,
recalibrate, settle, dip catalogue | assign | settle, audit) takes the same inputs and options:
  INPUT...                 files, folders and glob patterns, read in the order given: CSV,
                           Parquet, Arrow IPC/Feather, Excel (.xlsx/.xlsm/.xls). A folder gives
                           its case files sorted by name; every other file in it is named in a
                           warning on stderr, never skipped silently.
  --map CANONICAL=SOURCE   read a canonical column (sex, age, dx, px, ...) from another column,
                           e.g. --map dx=zd (repeatable); --map-file F: a TOML [columns] table.
  --layout auto|canonical|wide
                           wide: a 病案首页/结算清单 export with one column per code (zyzdbm,
                           qtzdbm1..N or 主要诊断编码, 其他诊断编码1..N, ...); auto (default):
                           wide when there is no dx column but a principal-diagnosis column.
  --encoding NAME          of CSV files: auto (default) detects UTF-8 (with or without BOM) and
                           GB18030/GBK; or any codec name (gbk, gb18030, utf-8, big5, ...).
  --sheet NAME             of Excel workbooks (default: the first sheet).
Codes in one text field may be joined with | , ; ； or ，."""


def input_options(f):
    """INPUT... and the input options of every command that reads cases (INPUT_HELP), handed
    to the command as one ``inputs`` argument: ``grouper.io.CaseInputs`` (paths + mapping,
    layout, encoding, sheet), which the jobs pass on to ``CaseSource``. A bad mapping or an
    unknown encoding is a usage error (exit 2) before any work."""
    import functools

    @functools.wraps(f)
    def command(*args, inputs, maps, map_file, layout, encoding, sheet, **kwargs):
        from grouper.io import CaseInputs, load_mapping, normalise_encoding

        try:
            mapping = load_mapping(maps, map_file)
            normalise_encoding(encoding)
        except InputError as exc:
            raise click.UsageError(str(exc)) from None
        return f(*args, inputs=CaseInputs(inputs, mapping, layout, encoding=encoding, sheet=sheet, map_file=map_file),
                 **kwargs)

    see = " See `drg --help`."
    for decorator in reversed([
            click.argument("inputs", nargs=-1, required=True, metavar="INPUT..."),
            click.option("--map", "maps", multiple=True, metavar="CANONICAL=SOURCE",
                         help="Read a canonical column from another column (repeatable)." + see),
            click.option("--map-file", type=click.Path(exists=True, dir_okay=False),
                         help='TOML [columns] table of canonical = "source" lines; --map wins.'),
            click.option("--layout", type=click.Choice(["auto", "canonical", "wide"]), default="auto",
                         metavar="LAYOUT", show_default=True,
                         help="auto, canonical or wide (a 病案首页 export, one column per code)." + see),
            click.option("--encoding", metavar="NAME", default=None,
                         help="CSV encoding [default: detect UTF-8 or GB18030/GBK]." + see),
            click.option("--sheet", metavar="NAME", default=None, help="Excel sheet [default: the first]."),
    ]):
        command = decorator(command)
    return command


def plain_inputs_only(inputs, how: str = "--workers/--scheduler", columns: bool = False) -> None:
    """Refuse read options that a distributed run (Parquet files read by workers) does not apply:
    --encoding and --sheet, and with ``columns`` also --map/--map-file and --layout."""
    given = [o for o, v in (("--encoding", inputs.encoding), ("--sheet", inputs.sheet)) if v]
    if columns:
        given += [o for o, v in (("--map/--map-file", inputs.mapping), ("--layout", inputs.layout != "auto")) if v]
    if given:
        raise click.UsageError(f"{' and '.join(given)} do not apply with {how}: those read Parquet files")

# ----------------------------------------------------------------------------- one output vocabulary
# Every command: tables are -o (and named secondary tables: --matrix, --by-hospital, --months),
# --summary is always a JSON file, --report always an HTML page; --overwrite, --bom and
# --progress/--no-progress mean the same everywhere; --year-weights has one syntax.

def output_options(f):
    """--overwrite, --bom and --progress/--no-progress, shared by every command that writes."""
    f = click.option("--progress/--no-progress", default=None,
                     help="Progress line on stderr: rows, rate, percent and ETA (default: only when stderr "
                          "is a terminal).")(f)
    f = click.option("--bom", is_flag=True,
                     help="Start CSV outputs with a UTF-8 byte order mark, so that Excel on Chinese Windows "
                          "shows 中文 (-o result.xlsx writes an Excel sheet instead).")(f)
    return click.option("--overwrite", is_flag=True, help="Replace existing output files.")(f)


def regroup_option(f):
    """--regroup, for the aggregates that accept grouped files (weights, indices, recalibrate)."""
    return click.option("--regroup", is_flag=True,
                        help="Regroup inputs that are already grouped (they have status and drg columns) "
                             "under --ruleset; without it their own groups are used as they are.")(f)


def progress_stream(progress: bool | None):
    """Where progress goes: stderr when asked, or by default when stderr is a terminal; else None."""
    import sys

    return sys.stderr if (sys.stderr.isatty() if progress is None else progress) else None


YEAR_WEIGHTS_HELP = "YEAR=WEIGHT,... oldest to newest, e.g. 2022=1,2023=2,2024=7"


def parse_year_weights(text: str | None, *, bare: bool = False):
    """``--year-weights``: 'YEAR=WEIGHT,...' -> {year: weight} (':' is read as '=' too); with
    ``bare`` also weights alone, oldest to newest ('1,2,7' -> (1.0, 2.0, 7.0)), aligned to the
    newest years by the caller. A bad text is a usage error naming the syntax."""
    if not text:
        return None
    try:
        parts = [p.strip().replace(":", "=").split("=") for p in text.split(",")]
        if bare and all(len(p) == 1 for p in parts):
            out = tuple(float(p[0]) for p in parts)
        else:
            out = {int(y): float(w) for y, w in parts}
        values = out.values() if isinstance(out, dict) else out
        if any(not (w >= 0) for w in values) or not any(w > 0 for w in values):
            raise ValueError
        return out
    except ValueError:
        raise click.BadParameter(f"{text!r}: use {YEAR_WEIGHTS_HELP}" + (" (or weights alone, 1,2,7)" if bare else ""),
                                 param_hint="--year-weights") from None


def refuse_table_as_summary(summary, table_option: str) -> None:
    """--summary is JSON in every command: a table path given to it (the old spelling of some
    commands) is refused, naming the option that writes the table now."""
    from pathlib import Path

    if summary is not None and Path(summary).suffix.lower() in (".csv", ".parquet", ".pq", ".arrow", ".feather",
                                                                 ".ipc", ".xlsx"):
        raise click.UsageError(f"--summary {summary}: --summary is the JSON summary in every command; "
                               f"write the per-hospital table with {table_option}")


class DrgGroup(click.Group):
    """The ``drg`` command group: Ctrl-C (SIGINT) ends any command with one line and exit 130;
    the command's outputs are temporary files until the end, so nothing is left behind.

    ``lazy`` (name -> (module, attribute, short help)) names commands whose module is imported
    only when the command is looked up (click's lazy-loading pattern): the command list in
    ``--help`` is made from the short helps, importing nothing, and a loaded command is given
    the same short help so that both lists read alike."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx, cmd_name: str):
        if cmd_name not in self.commands and cmd_name in self.lazy:
            import importlib

            module, attribute, short_help = self.lazy[cmd_name]
            command = getattr(importlib.import_module(module), attribute)
            command.short_help = short_help
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx, formatter) -> None:
        """The command list of --help: loaded commands' own short help, the others' from ``lazy``."""
        names = [n for n in self.list_commands(ctx) if n in self.lazy or not self.commands[n].hidden]
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(n, self.commands[n].get_short_help_str(limit) if n in self.commands else self.lazy[n][2])
                for n in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("\ninterrupted (Ctrl-C)", err=True)
            raise click.exceptions.Exit(130) from None

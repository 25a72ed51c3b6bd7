"""What every ``drg`` command shares: turning failures into exit codes, refusing outputs before
any work, making a grouper, the --workers/--scheduler options."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import click

from grouper._util.errors import InputError
from grouper.rulesets import RulesetError

RULESET_HELP = "Ruleset name (see `drg rulesets`) or path to a ruleset folder."


@contextmanager
def command_errors(*also: type[Exception], ruleset: Callable[[], str] | None = None):
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

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
    the command's outputs are temporary files until the end, so nothing is left behind."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("\ninterrupted (Ctrl-C)", err=True)
            raise click.exceptions.Exit(130) from None

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

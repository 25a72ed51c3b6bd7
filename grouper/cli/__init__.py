"""The ``drg`` command line: option parsing and exit codes only."""

from grouper.cli.main import main

__all__ = ["main"]

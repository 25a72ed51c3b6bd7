"""The ``drg`` command line: option parsing and exit codes only."""

try:
    from grouper.cli.main import main
except KeyboardInterrupt:  # Ctrl-C while the command is still starting: one line and 130, as later
    import sys

    sys.stderr.write("\ninterrupted (Ctrl-C)\n")
    raise SystemExit(130) from None

__all__ = ["main"]

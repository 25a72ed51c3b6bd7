"""Bundled grouping schemes, one folder each (installed as ``grouper.rules``)."""

"""``pc``: pyarrow.compute, imported on its first use (``pq``, ``pafs``: pyarrow.parquet, pyarrow.fs).

Its import (about 60-90 ms: its generated function wrappers, dateutil) was a third of the CPU of
`drg group` on a one-row file, which reads, groups and writes small batches without it. Modules
write ``from grouper._util.lazy import pc`` where they would ``import pyarrow.compute as pc``.
Not ``importlib.util.LazyLoader``: that would put a lazy module into ``sys.modules`` for the
whole process, which is the embedding application's, not ours.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class _LazyModule:
    """Attribute access imports the module once, then reads from it."""

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}{'' if self._module is None else ' (loaded)'}>"


pc = _LazyModule("pyarrow.compute")
#: pyarrow.parquet and pyarrow.fs (which it imports, with the S3/GCS/HDFS bindings and ssl): about
#: 13 ms, needed by a run that reads or writes Parquet only (not by a CSV one).
pq = _LazyModule("pyarrow.parquet")
pafs = _LazyModule("pyarrow.fs")
#: pyarrow.csv: for CSV files only.
pcsv = _LazyModule("pyarrow.csv")


def lazy_attributes(namespace: dict, table: dict[str, str]):
    """A package's ``__getattr__`` (PEP 562): each name of ``table`` (name -> module) imported on
    first use and kept in ``namespace`` (the package's globals), so later look-ups skip this.
    The packages' public names stay where users find them, and a run imports only what it uses."""

    def __getattr__(name: str):
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__

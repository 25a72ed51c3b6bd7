"""Case files as every command reads them, in one sequence: open the file, plan its columns
(``--map``, the wide layout), check the planned columns before any work (an error names the
file), then read only the columns needed as planned batches, a thread reading ahead
(``prefetch``) while the caller groups the batch before."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cached_property
from typing import Iterable, Iterator, Mapping, TypeVar

import pyarrow as pa

from grouper._util.columns import check_columns, missing_columns
from grouper._util.errors import CorruptInputError, InputError
from grouper._util.lazy import pafs
from grouper.io.formats import (DEFAULT_BATCH, PIPELINE_DEPTH, Source, expand_inputs, open_source, pipeline_depth,
                                warn_stderr)
from grouper.io.layout import ColumnPlan, column_aliases, plan_columns, read_columns

__all__ = ["CaseInputs", "CaseSource", "prefetch"]

T = TypeVar("T")


class CaseInputs(tuple):
    """Input arguments (files, folders, globs) together with how to read them: the column
    ``mapping`` (canonical -> source, from --map/--map-file), the ``layout``, a CSV ``encoding``
    and an Excel ``sheet``. Every command builds one from its input options; ``CaseSource.each``
    / ``open_all`` read with them, so layers in between pass ``inputs`` on untouched."""

    mapping: dict[str, str]
    layout: str
    encoding: str | None
    sheet: str | None
    map_file: str | None

    def __new__(cls, items: Iterable[str | os.PathLike] = (), mapping: Mapping[str, str] | None = None,
                layout: str = "auto", *, encoding: str | None = None, sheet: str | None = None,
                map_file: str | None = None) -> "CaseInputs":
        self = super().__new__(cls, items)
        self.mapping, self.layout, self.encoding, self.sheet, self.map_file = (
            dict(mapping or {}), layout, encoding, sheet, map_file)
        return self

    def expand(self, warn=warn_stderr) -> "CaseInputs":
        """The files behind the arguments (``expand_inputs``), with the same options."""
        return CaseInputs(expand_inputs(self, warn), self.mapping, self.layout, encoding=self.encoding,
                          sheet=self.sheet, map_file=self.map_file)

    @classmethod
    def of(cls, inputs: Iterable[str | os.PathLike] | str | os.PathLike) -> "CaseInputs":
        """``inputs`` as they are when already CaseInputs, else with the default options."""
        if isinstance(inputs, CaseInputs):
            return inputs
        return cls([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)

    def options(self, mapping=None, layout: str = "auto", encoding=None, sheet=None) -> dict:
        """Keyword arguments for ``CaseSource.open``: those given (not None; a layout other than
        'auto') win over this object's."""
        return {"mapping": self.mapping if mapping is None else mapping,
                "layout": self.layout if layout == "auto" else layout,
                "encoding": encoding if encoding is not None else self.encoding,
                "sheet": sheet if sheet is not None else self.sheet}


class CaseSource:
    """One case file on its way in: the opened ``source``, its column ``plan`` and ``schema``,
    the columns it has once planned (what checks and empty-batch probes look at).

    ``CaseSource.open(path, mapping, layout)`` (or ``open_all`` / ``each`` for input arguments),
    then ``check(required, optional)`` before any work, then ``read(columns)`` for the batches.
    ``named_errors()`` names the file in the errors of work on its batches (grouping them).
    ``encoding`` (CSV) and ``sheet`` (Excel) say how to read; ``open_all`` / ``each`` take them,
    the mapping and the layout from ``CaseInputs`` when not given."""

    def __init__(self, source: Source, plan: ColumnPlan | None = None):
        self.source = source
        self.plan = ColumnPlan() if plan is None else plan

    @classmethod
    def open(cls, path: str | os.PathLike, mapping: Mapping[str, str] | None = None, layout: str = "auto", *,
             batch_size: int = DEFAULT_BATCH, filesystem=None, encoding: str | None = None,
             sheet: str | None = None) -> "CaseSource":
        """Open ``path`` (see ``open_source``) and plan its columns (see ``plan_columns``)."""
        source = open_source(path, batch_size=batch_size, filesystem=filesystem, encoding=encoding, sheet=sheet)
        return cls(source, plan_columns(source.schema, mapping, layout, source.path))

    @classmethod
    def open_all(cls, paths: Iterable[str | os.PathLike], mapping: Mapping[str, str] | None = None,
                 layout: str = "auto", *, batch_size: int = DEFAULT_BATCH, filesystem=None,
                 encoding: str | None = None, sheet: str | None = None) -> list["CaseSource"]:
        """Every file of ``paths`` opened (an unreadable one fails before any is planned), then planned."""
        o = CaseInputs.of(paths).options(mapping, layout, encoding, sheet)
        sources = [open_source(p, batch_size=batch_size, filesystem=filesystem, encoding=o["encoding"],
                               sheet=o["sheet"]) for p in paths]
        return [cls(s, plan_columns(s.schema, o["mapping"], o["layout"], s.path)) for s in sources]

    @classmethod
    def each(cls, inputs: Iterable[str | os.PathLike], mapping: Mapping[str, str] | None = None,
             layout: str = "auto", *, batch_size: int = DEFAULT_BATCH, filesystem=None,
             encoding: str | None = None, sheet: str | None = None) -> Iterator["CaseSource"]:
        """The files behind input arguments (files, folders, globs; on a remote ``filesystem`` the
        paths as given), each opened and planned only when the one before is done with."""
        o = CaseInputs.of(inputs).options(mapping, layout, encoding, sheet)
        remote = filesystem is not None and not isinstance(filesystem, pafs.LocalFileSystem)
        for path in list(inputs) if remote else expand_inputs(inputs):
            yield cls.open(path, batch_size=batch_size, filesystem=filesystem, **o)

    @property
    def path(self) -> str:
        return self.source.path

    @property
    def num_rows(self) -> int | None:
        """Rows in the file, when its format tells without reading it (not CSV)."""
        return self.source.num_rows

    @cached_property
    def schema(self) -> pa.Schema:
        """The columns once planned: canonical names, wide code columns as dx/px lists."""
        return self.plan.schema(self.source.schema)

    def check(self, required: Iterable[str] = (), optional: Iterable[str] = (), *,
              what: str | None = None) -> list[str]:
        """Before any work: every ``required`` column is there once planned, and neither they nor
        the ``optional`` ones (read when present) appear twice; otherwise an InputError naming the
        file ('missing column(s) for ``what``' when ``what`` says what needs them). Returns the
        ``optional`` columns present."""
        names = self.schema.names
        if what is not None:
            missing = [c for c in dict.fromkeys(required) if c not in names]
            if missing:
                raise InputError(f"{self.path}: missing column(s) for {what}: "
                                 + missing_columns(missing, names, column_aliases()))
        with self.named_errors():
            check_columns(names, required, optional, column_aliases())
        return [c for c in dict.fromkeys(optional) if c in names]

    def input_columns(self, columns: Iterable[str]) -> list[str]:
        """The file's columns that become the canonical ``columns`` (see ``read_columns``)."""
        return read_columns(self.source.schema, self.plan, columns)

    def read(self, columns: Iterable[str] | None = None, *, ahead: int | None = None
             ) -> Iterator[pa.RecordBatch]:
        """The planned batches holding the canonical ``columns`` (None: every column): only the
        file's columns that become one are decoded. A repeated one is an InputError raised here,
        before anything is read; the file is opened at the first batch. A thread reads ``ahead``
        batches in advance (0: none, the caller's thread reads; None: ``pipeline_depth()``, none
        on one CPU)."""
        if ahead is None:
            ahead = pipeline_depth()
        source = self.source
        source.columns = None if columns is None else self.input_columns(columns)
        return self._planned(source.batches, ahead)  # .batches checks the columns now

    def _planned(self, batches: Iterator[pa.RecordBatch], ahead: int) -> Iterator[pa.RecordBatch]:
        it = prefetch(batches, ahead) if ahead else batches
        try:
            for b in it:
                yield self.plan.apply(b)
        finally:
            close = getattr(it, "close", None)
            if close is not None:  # stop the read-ahead thread now, not at garbage collection
                close()

    @contextmanager
    def named_errors(self):
        """An InputError or CorruptInputError raised in the block names this file."""
        try:
            yield
        except (InputError, CorruptInputError) as exc:
            raise type(exc)(f"{self.path}: {exc}") from None


def prefetch(items: Iterable[T], depth: int = PIPELINE_DEPTH) -> Iterator[T]:
    """``items`` produced by a background thread, up to ``depth`` ahead, in order.

    Reading a file is mostly Arrow decoding with the GIL released, so it overlaps the caller's
    work on the previous batch. Errors are raised here, where the failing item would have been;
    the source is closed (by the thread that ran it) when the consumer stops early."""
    it = iter(items)
    end = object()
    with ThreadPoolExecutor(1, thread_name_prefix="drg-read") as pool:
        ahead = deque(pool.submit(next, it, end) for _ in range(max(1, depth)))
        try:
            while True:
                item = ahead.popleft().result()
                if item is end:
                    return
                ahead.append(pool.submit(next, it, end))
                yield item
        finally:
            for f in ahead:
                f.cancel()
            close = getattr(it, "close", None)
            if close is not None:
                pool.submit(close).result()


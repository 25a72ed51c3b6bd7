"""Code-version conversion: rewrite diagnosis and procedure codes through a scheme's mapping
tables (``dx_map.csv`` / ``px_map.csv``) before grouping, for exports coded in another edition.

Each distinct code string of a batch is looked up once; codes the table does not know are kept
as they are (the grouper then reports them per row if it does not know them either) and counted,
so a run can say which codes could not be converted.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from grouper._util.columns import CODE_WHITESPACE, split_joined
from grouper._util.lazy import pc

__all__ = ["CodeConverter"]


class CodeConverter:
    def __init__(self, dx_map: dict[str, str], px_map: dict[str, str]):
        if not dx_map and not px_map:
            raise ValueError("the ruleset has no code mapping tables (dx_map.csv / px_map.csv)")
        self.maps = {"dx": dx_map, "px": px_map}
        self.unmapped: dict[str, dict[str, int]] = {"dx": {}, "px": {}}

    def convert(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch with its dx/px columns converted (as list<string>)."""
        cols = dict(zip(batch.schema.names, batch.columns))
        for name in ("dx", "px"):
            if name in cols and self.maps[name]:
                cols[name] = self._convert_column(name, cols[name])
        return pa.RecordBatch.from_pydict(cols, metadata=batch.schema.metadata)

    def _convert_column(self, name: str, col: pa.Array) -> pa.Array:
        t = col.type
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
            col = split_joined(col.cast(pa.string()) if pa.types.is_dictionary(t) else col)
        if pa.types.is_large_list(col.type):
            col = col.cast(pa.list_(col.type.value_type))
        values = col.values
        if pa.types.is_dictionary(values.type):
            values = values.cast(pa.string())
        elif not pa.types.is_string(values.type):
            values = values.cast(pa.string())
        enc = pc.dictionary_encode(values)  # each distinct code once
        mapping, unmapped = self.maps[name], self.unmapped[name]
        converted = []
        for code in enc.dictionary.to_pylist():
            key = code.strip(CODE_WHITESPACE) if code is not None else None
            if key and key not in mapping:
                unmapped[key] = unmapped.get(key, 0)  # counted by rows below
            converted.append(mapping.get(key, code) if key else code)
        new_dict = pa.array(converted, pa.string())
        idx = enc.indices
        missing = np.array([bool(c and c.strip(CODE_WHITESPACE) not in mapping) for c in enc.dictionary.to_pylist()])
        if missing.any():
            counts = np.bincount(idx.fill_null(0).to_numpy(zero_copy_only=False)[idx.is_valid().to_numpy(zero_copy_only=False)],
                                 minlength=len(missing))
            for i in np.flatnonzero(missing):
                key = enc.dictionary[i].as_py().strip(CODE_WHITESPACE)
                unmapped[key] += int(counts[i])
        new_values = pc.take(new_dict, idx)
        return pa.ListArray.from_arrays(col.offsets, new_values, mask=col.is_null())

    def report(self, top: int = 20) -> dict:
        out = {}
        for name, m in self.unmapped.items():
            out[name] = {"distinct": len(m), "occurrences": sum(m.values()),
                         "top": dict(sorted(m.items(), key=lambda kv: -kv[1])[:top])}
        return out

"""Type stub of the compiled ``grouper.engine._kernel`` (see ``_kernel.pyx``)."""

from typing import Any, Final, Mapping

import numpy as np
import numpy.typing as npt

#: Every number declared in ``_records.pxd``: ``MISSING``, ``ID_*``, ``ST_*``, ``F_*``, ``CC_*``,
#: ``OP_*``, ``FIELD_*``, ``N_FIELDS``, ``CMP_*``.
CONSTANTS: Final[dict[str, int]]
#: NumPy dtypes of the record structs (``CondNode``, ``MdcRec``, ``AdrgRec``, ``SplitRec``).
COND_DTYPE: Final[np.dtype[np.void]]
MDC_DTYPE: Final[np.dtype[np.void]]
ADRG_DTYPE: Final[np.dtype[np.void]]
SPLIT_DTYPE: Final[np.dtype[np.void]]
#: The arrays ``Program`` reads by name: name -> (dtype name or record kind, dimensions).
ARRAYS: Final[dict[str, tuple[str, int]]]
#: The settings ``Program`` reads from ``params``.
PARAMS: Final[tuple[str, ...]]
#: The "no result" code ids ``Program`` reads by name.
NONE_CODES: Final[tuple[str, str, str]]

_I8 = npt.NDArray[np.int8]
_I32 = npt.NDArray[np.int32]

class Program:
    """Typed views of one compiled ruleset (a ``CompiledRuleset``, or a mapping holding the
    ``ARRAYS``, ``params`` and ``NONE_CODES`` by name); each array's dtype and shape are checked
    and a wrong one raises ValueError naming the field."""

    def __init__(self, compiled: Any | Mapping[str, Any]) -> None: ...
    def group_batch(self, fields: _I32, dx_off: _I32, dx_ids: _I32, px_off: _I32, px_ids: _I32,
                    status: _I8, mdc: _I32, adrg: _I32, drg: _I32, cc: _I8, flags: _I32,
                    reason: Any = None) -> None:
        """Group n cases (``fields`` int32[N_FIELDS, n]) into the caller's output arrays; one
        thread, GIL released. ``reason`` (optional uint8[n]) gets each case's R_* code."""
    def group_one(self, fields: _I32 | Any, dx: _I32 | Any, px: _I32 | Any) -> tuple[int, int, int, int, int, int, int]:
        """One case -> (status, mdc, adrg, drg, cc, flags, reason) indices and codes."""
    def group_values(self, sex: Any, age: Any, age_days: Any, birth_weight: Any, los: Any, discharge: Any,
                     dept: Any, dx: Any, px: Any, one: Any) -> tuple[int, int, int, int, int, int, int]:
        """One case given as Python values (``Grouper.group_one``'s) -> the same indices and
        reason code; ``one`` is an ``inputs.SingleCase`` (code hashes, number and value-code rules)."""
    def check_offsets(self, off: _I32) -> bool:
        """True when offsets never decrease."""

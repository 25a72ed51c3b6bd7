"""Type stub of the compiled ``grouper.engine._codes`` (see ``_codes.pyx``)."""

from typing import Iterable, Sequence

import numpy as np
import numpy.typing as npt

class CodeTable:
    """Hash of a code dictionary: code string -> its position in the list given."""

    @property
    def size(self) -> int: ...
    def __init__(self, codes: Sequence[str] | Iterable[str]) -> None: ...
    def get(self, code: str) -> int:
        """Id of one code: its position, -1 (ID_UNKNOWN) unknown, -2 (ID_EMPTY) blank."""
    def map_utf8(self, validity: object, offsets: object, data: object, offset: int, length: int,
                 large: bool) -> npt.NDArray[np.int32]:
        """ids (int32[length]) of an Arrow utf8 / large_utf8 array given by its buffers; a corrupt
        array raises ValueError."""
    def __reduce__(self) -> tuple[type[CodeTable], tuple[list[str]]]: ...

def take_ids(table: npt.NDArray[np.int32], idx: npt.NDArray[np.int8] | npt.NDArray[np.uint8] | npt.NDArray[np.int32]
             ) -> tuple[npt.NDArray[np.int32] | None, int]:
    """(``table[idx]``, -1), or (None, the row of the first index outside ``table``)."""
def dictionary_indices(pos: npt.NDArray[np.int32],
                       idx: npt.NDArray[np.int8] | npt.NDArray[np.uint8] | npt.NDArray[np.int32], null: int
                       ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint8] | None, int]:
    """(indices ``pos[idx]``, validity bitmap or None, null count); null where ``idx`` is
    negative or ``null``; an index beyond ``pos`` raises ValueError."""
def first_appearance(flags: npt.NDArray[np.int32], reason: npt.NDArray[np.uint8]
                     ) -> tuple[list[int], npt.NDArray[np.int32], npt.NDArray[np.uint8] | None, int]:
    """Distinct ``reason << 32 | flags`` keys in first-appearance order, each row's position
    among them, the validity bitmap (null where the key is 0) and null count."""
def count_indices(idx: npt.NDArray[np.int32], size: int) -> npt.NDArray[np.int64]:
    """Rows per dictionary index 0..size-1; one outside raises ValueError."""

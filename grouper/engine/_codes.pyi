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

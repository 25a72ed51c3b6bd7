import numpy as np

def to_utf8(data: np.ndarray, offsets: np.ndarray, two: np.ndarray, four: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray] | tuple[None, int]: ...

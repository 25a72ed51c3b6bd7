"""Type stub of the compiled ``grouper.analytics._cells`` (see ``_cells.pyx``)."""

import numpy as np

def scan(grouped: np.ndarray, status: np.ndarray, cost: np.ndarray, los: np.ndarray, hospital_id: np.ndarray,
         hospital: np.ndarray, department_id: np.ndarray, department: np.ndarray, by_department: bool,
         drg_id: np.ndarray, drg: np.ndarray, dead_of: np.ndarray, discharge: np.ndarray, units: np.ndarray,
         unit_a: int, unit_b: int, cells: np.ndarray, cell_a: int, cell_b: int, hot: np.ndarray,
         limbs: np.ndarray, missed: np.ndarray, excluded: np.ndarray, bad: np.ndarray) -> int:
    """Add one batch's kept rows into their (unit, DRG) cells; the number of rows written to
    ``missed`` (unit or cell not in the tables: nothing of theirs added)."""
def add_rows(rows: np.ndarray, cell: np.ndarray, cost: np.ndarray, los: np.ndarray, dead_of: np.ndarray,
             discharge: np.ndarray, hot: np.ndarray, limbs: np.ndarray, bad: np.ndarray) -> None:
    """Add the kept rows ``rows`` into the cells ``cell`` (one a row)."""

"""The compiled ruleset: plain data (NumPy arrays, code tables, settings) that the kernel reads.

Apart from the compiler (``grouper.engine.compile``, which lowers a ``Ruleset`` into it): a run
served from the compiled cache unpickles this and needs neither the compiler nor the rules'
data model. Its fields are described in ``grouper.engine.compile``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import grouper.engine._kernel as _kernel

__all__ = ["CLASS_OF", "CompiledRuleset"]

#: which class array indexes each per-class table
CLASS_OF = {"mdc_by_pdx": "dx_class", "mdc_by_anydx": "dx_class", "adrg_by_pdx": "dx_class",
           "mdc_by_ppx": "px_class", "mdc_by_anypx": "px_class", "adrg_by_ppx": "px_class",
           "adrg_by_anypx": "px_class",
           "cc_level": "cc_class", "cc_table": "cc_class", "pdx_table": "cc_class", "dx_bits": "cc_class",
           "px_bits": "px_class"}

_JOINED = ("dx_codes", "px_codes")  # code lists pickled as one string each (CompiledRuleset.__getstate__)


@dataclass
class CompiledRuleset:
    name: str
    version: str
    fingerprint: str
    cond: np.ndarray
    cond_args: np.ndarray
    dx_sets: np.ndarray
    px_sets: np.ndarray
    regions: np.ndarray
    cc_class: np.ndarray  # uint16[n_dx]: CC class of each diagnosis (rows of the next three)
    cc_level: np.ndarray  # int8[cc classes]: bit 1 CC, bit 2 MCC
    cc_table: np.ndarray  # int32[cc classes]: exclusion table the code belongs to (-1 none)
    pdx_table: np.ndarray  # int32[cc classes]: exclusion table of the code as principal (-1 none)
    dx_bits: np.ndarray  # uint64[cc classes]: summary bits (lists of any_dx_in / sdx_in nodes holding the code)
    mdc: np.ndarray
    adrg: np.ndarray
    split: np.ndarray
    dx_class: np.ndarray  # uint16[n_dx + 1]: prefilter class of each dx id (last: none or unknown)
    px_class: np.ndarray  # uint16[n_px + 1]: same for procedures
    mdc_by_pdx: np.ndarray  # uint64[dx classes]: MDCs (bit = eval position) a principal dx allows
    mdc_by_ppx: np.ndarray  # uint64[px classes]: same by principal procedure
    mdc_by_anydx: np.ndarray  # uint64[dx classes]: same by any diagnosis (OR over the case's)
    mdc_by_anypx: np.ndarray  # uint64[px classes]: same by any procedure
    adrg_by_pdx: np.ndarray  # uint64[dx classes, words]: ADRG records a principal dx allows
    adrg_by_ppx: np.ndarray  # uint64[px classes, words]
    adrg_by_anypx: np.ndarray  # uint64[px classes, words]: ADRG records some procedure allows (OR over the case's)
    mdc_by_age: np.ndarray  # uint64[max_age + 1]: MDCs a case of that age (years) may enter
    px_bits: np.ndarray  # uint64[px classes]: summary bits for any_px_in / spx_in (last class: none, 0)
    params: dict
    dx_codes: list[str]  # id -> code
    px_codes: list[str]
    mdc_codes: list[str]  # result code tables; the last entry is the "none" code
    mdc_names: list[str]
    adrg_codes: list[str]
    adrg_names: list[str]
    drg_codes: list[str]
    drg_names: list[str]
    input_fields: tuple[str, ...] = ()  # optional input columns the scheme needs
    values: dict = field(default_factory=dict)  # "discharge"/"dept" -> codes whose position is their id
    set_keys: dict = field(default_factory=dict)  # (kind, owner, list) -> row, for inspection

    def program(self) -> "_kernel.Program":
        """The kernel object holding typed views of these arrays (read by name, checked)."""
        return _kernel.Program(self)

    def __getstate__(self) -> dict:
        """Pickled with each code list as one joined string: unpickling a national scheme's 47 k
        codes one string at a time took 2-3 ms of every cache hit (start-up)."""
        state = dict(self.__dict__)
        for k in _JOINED:
            codes = state[k]
            if codes and not any("\n" in c for c in codes):  # codes never hold one; if they did, as they are
                state[k] = ("\n".join(codes),)
        return state

    def __setstate__(self, state: dict) -> None:
        for k in _JOINED:
            if isinstance(state.get(k), tuple):
                state[k] = state[k][0].split("\n")
        self.__dict__.update(state)

    @property
    def none_mdc(self) -> int:
        """Id of the "no result" MDC code (the last of the table); likewise ADRG and DRG."""
        return len(self.mdc_codes) - 1

    @property
    def none_adrg(self) -> int:
        return len(self.adrg_codes) - 1

    @property
    def none_drg(self) -> int:
        return len(self.drg_codes) - 1

    def dump(self) -> str:
        """The compiled program as text, for debugging: the settings, then each MDC, ADRG and DRG
        record in evaluation order with its condition tree decoded to predicates and codes."""
        from grouper.engine.dump import dump_program

        return dump_program(self)

    def by_code(self, name: str) -> np.ndarray:
        """Table ``name`` expanded to one row per code id (prefilters: plus the last row, none or
        unknown), as the kernel reads it through the class arrays; for inspection and tests."""
        kind = CLASS_OF[name]
        return getattr(self, name)[getattr(self, kind)]

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f).nbytes for f in _kernel.ARRAYS)

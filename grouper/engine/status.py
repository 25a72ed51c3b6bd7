"""Per-row status classes and flag bits, with their human-readable meanings.

The kernel writes a status byte and a flag bitmask per case; the numbers are fixed here and
mirrored in ``cext/_records.pxd`` (a test checks the two agree). Check bits make a case
invalid input; warning bits never change the group, they say what was odd about the input.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from functools import lru_cache

__all__ = ["CcLevel", "Flag", "Status", "CHECK_FLAGS", "describe_flags"]


class Status(IntEnum):
    GROUPED = 0  # SUCCESS in the national reference grouper
    INVALID = 1  # CHECK_FAILED: failed the pre-grouping checks
    UNGROUPABLE = 2  # FAIL: no MDC/ADRG/DRG rule matched (0000)
    AMBIGUOUS = 3  # QY: ambiguous group (歧义组)

    @property
    def label(self) -> str:
        return _STATUS_LABELS[self]


_STATUS_LABELS = {
    Status.GROUPED: "grouped",
    Status.INVALID: "invalid",
    Status.UNGROUPABLE: "ungroupable",
    Status.AMBIGUOUS: "ambiguous",
}
STATUS_LABELS = [_STATUS_LABELS[s] for s in Status]
STATUS_NAMES_ZH = {"grouped": "分组成功", "invalid": "信息校验不通过", "ungroupable": "无法入组", "ambiguous": "歧义组"}


class CcLevel(IntEnum):
    NOT_COMPUTED = -1  # invalid input: severity not evaluated
    NONE = 0
    CC = 1
    MCC = 2


CC_LABELS = {CcLevel.NONE: "none", CcLevel.CC: "CC", CcLevel.MCC: "MCC"}


class Flag(IntFlag):
    # checks: any of these makes the case invalid input
    SEX_INVALID = 1 << 0
    AGE_MISSING = 1 << 1
    AGE_OUT_OF_RANGE = 1 << 2
    AGE_DAYS_MISSING = 1 << 3
    AGE_DAYS_OUT_OF_RANGE = 1 << 4
    WEIGHT_MISSING = 1 << 5
    WEIGHT_OUT_OF_RANGE = 1 << 6
    NO_DIAGNOSIS = 1 << 7
    # warnings: reported, grouping goes on
    UNKNOWN_PDX = 1 << 8
    UNKNOWN_SDX = 1 << 9
    UNKNOWN_PX = 1 << 10
    EMPTY_CODE = 1 << 11
    BAD_NUMBER = 1 << 12
    # check, for schemes that require a length of stay
    LOS_INVALID = 1 << 13
    # an ungroupable case that a fail rule inside its MDC decided (the 3.0 workbook's X00 / X000
    # placeholder), as opposed to one that no MDC's rules gave a result (mdc 0000, no such flag)
    MDC_FAIL = 1 << 14


CHECK_FLAGS = (
    Flag.SEX_INVALID | Flag.AGE_MISSING | Flag.AGE_OUT_OF_RANGE | Flag.AGE_DAYS_MISSING
    | Flag.AGE_DAYS_OUT_OF_RANGE | Flag.WEIGHT_MISSING | Flag.WEIGHT_OUT_OF_RANGE | Flag.NO_DIAGNOSIS
    | Flag.LOS_INVALID
)

FLAG_MESSAGES = {
    Flag.SEX_INVALID: "sex is not one of the scheme's codes (1 male, 2 female)",
    Flag.AGE_MISSING: "age (years) missing",
    Flag.AGE_OUT_OF_RANGE: "age (years) out of range",
    Flag.AGE_DAYS_MISSING: "age in days missing for a patient aged 0",
    Flag.AGE_DAYS_OUT_OF_RANGE: "age in days negative",
    Flag.WEIGHT_MISSING: "birth weight missing for a newborn",
    Flag.WEIGHT_OUT_OF_RANGE: "birth weight negative",
    Flag.NO_DIAGNOSIS: "no principal diagnosis",
    Flag.UNKNOWN_PDX: "principal diagnosis not in the scheme's dictionary",
    Flag.UNKNOWN_SDX: "secondary diagnosis not in the scheme's dictionary",
    Flag.UNKNOWN_PX: "procedure not in the scheme's dictionary",
    Flag.EMPTY_CODE: "empty code in a diagnosis/procedure list ignored",
    Flag.BAD_NUMBER: "a numeric field is not a whole number (read as missing)",
    Flag.LOS_INVALID: "length of stay missing or negative (the scheme requires it)",
    Flag.MDC_FAIL: "已进入该 MDC，但其 ADRG 均不符合：由该 MDC 的占位组（X00 / X000）判为无法入组",
}


_MESSAGES = [(int(bit), msg) for bit, msg in FLAG_MESSAGES.items()]


@lru_cache(maxsize=4096)
def describe_flags(flags: int) -> str:
    """``'; '``-joined messages of the set bits, in bit order ('' when none)."""
    flags = int(flags)
    return "; ".join(msg for bit, msg in _MESSAGES if flags & bit)

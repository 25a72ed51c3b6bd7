"""Per-row status classes and flag bits, with their human-readable meanings.

The kernel writes a status byte and a flag bitmask per case; the numbers are declared once, in
``engine/_records.pxd``, and read here from the compiled kernel (``_kernel.CONSTANTS``). Check
bits make a case invalid input; warning bits never change the group, they say what was odd
about the input.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from functools import lru_cache

from grouper.engine._kernel import CONSTANTS as K

__all__ = ["CcLevel", "Flag", "Reason", "Status", "CHECK_FLAGS", "describe_flags", "describe_reason"]


class Status(IntEnum):
    GROUPED = K["ST_GROUPED"]  # SUCCESS in the national reference grouper
    INVALID = K["ST_INVALID"]  # CHECK_FAILED: failed the pre-grouping checks
    UNGROUPABLE = K["ST_UNGROUPABLE"]  # FAIL: no MDC/ADRG/DRG rule matched (0000)
    AMBIGUOUS = K["ST_AMBIGUOUS"]  # QY: ambiguous group (歧义组)

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


class Reason(IntEnum):
    """Where grouping stopped for a case that did not group (the kernel's per-case reason byte).

    The deepest step reached over every MDC tried: an MDC counts as entered once its entry rule
    held, an ADRG once its entry rule held. NONE for a grouped case."""

    NONE = K["R_NONE"]
    INVALID = K["R_INVALID"]
    NO_MDC = K["R_NO_MDC"]
    NO_ADRG = K["R_NO_ADRG"]
    PX_NO_ADRG = K["R_PX_NO_ADRG"]
    NO_DRG = K["R_NO_DRG"]
    MDC_FAIL = K["R_MDC_FAIL"]
    QY_PRE = K["R_QY_PRE"]
    QY = K["R_QY"]

    @property
    def label(self) -> str | None:
        """The ``reason_code`` column's value (None for a grouped case)."""
        return None if self is Reason.NONE else self.name.lower()

    @property
    def text(self) -> str:
        return REASON_TEXTS[self]


#: what each reason says to a coder (Chinese); the output's ``reason`` column starts with it
REASON_TEXTS = {
    Reason.NONE: "",
    Reason.INVALID: "信息校验不通过，未分组",
    Reason.NO_MDC: "没有 MDC 接受该病例：所有 MDC 的入组规则均不成立（主要诊断不属于任何 MDC）",
    Reason.NO_ADRG: "已进入 MDC，但其中没有 ADRG 的入组规则成立（主要诊断不符合该 MDC 的任何 ADRG）",
    Reason.PX_NO_ADRG: "已进入 MDC，但其中没有 ADRG 的入组规则成立：病例有手术/操作，主要手术/操作不是该 MDC 内 ADRG 的有效手术/操作",
    Reason.NO_DRG: "已进入 ADRG，但其 DRG 细分条件均不成立，且该 ADRG 没有默认结果",
    Reason.MDC_FAIL: "已进入该 MDC，但其 ADRG 均不符合：由该 MDC 的占位组（X00 / X000）判为无法入组",
    Reason.QY_PRE: "歧义组：MDC 入组前检验的歧义组（QY）规则成立",
    Reason.QY: "歧义组：已进入 MDC，其歧义组（QY）规则成立",
}
REASON_LABELS = [Reason(i).label if i in Reason._value2member_map_ else None for i in range(256)]


class CcLevel(IntEnum):
    NOT_COMPUTED = K["CC_NOT_COMPUTED"]  # invalid input: severity not evaluated
    NONE = K["CC_NONE"]
    CC = K["CC_CC"]
    MCC = K["CC_MCC"]


CC_LABELS = {CcLevel.NONE: "none", CcLevel.CC: "CC", CcLevel.MCC: "MCC"}


class Flag(IntFlag):
    # checks: any of these makes the case invalid input
    SEX_INVALID = K["F_SEX_INVALID"]
    AGE_MISSING = K["F_AGE_MISSING"]
    AGE_OUT_OF_RANGE = K["F_AGE_OUT_OF_RANGE"]
    AGE_DAYS_MISSING = K["F_AGE_DAYS_MISSING"]
    AGE_DAYS_OUT_OF_RANGE = K["F_AGE_DAYS_OUT_OF_RANGE"]
    WEIGHT_MISSING = K["F_WEIGHT_MISSING"]
    WEIGHT_OUT_OF_RANGE = K["F_WEIGHT_OUT_OF_RANGE"]
    NO_DIAGNOSIS = K["F_NO_DIAGNOSIS"]
    # warnings: reported, grouping goes on
    UNKNOWN_PDX = K["F_UNKNOWN_PDX"]
    UNKNOWN_SDX = K["F_UNKNOWN_SDX"]
    UNKNOWN_PX = K["F_UNKNOWN_PX"]
    EMPTY_CODE = K["F_EMPTY_CODE"]
    BAD_NUMBER = K["F_BAD_NUMBER"]
    # check, for schemes that require a length of stay
    LOS_INVALID = K["F_LOS_INVALID"]
    # an ungroupable case that a fail rule inside its MDC decided (the 3.0 workbook's X00 / X000
    # placeholder), as opposed to one that no MDC's rules gave a result (mdc 0000, no such flag)
    MDC_FAIL = K["F_MDC_FAIL"]


CHECK_FLAGS = (
    Flag.SEX_INVALID | Flag.AGE_MISSING | Flag.AGE_OUT_OF_RANGE | Flag.AGE_DAYS_MISSING
    | Flag.AGE_DAYS_OUT_OF_RANGE | Flag.WEIGHT_MISSING | Flag.WEIGHT_OUT_OF_RANGE | Flag.NO_DIAGNOSIS
    | Flag.LOS_INVALID
)

#: what each flag says to a coder (Chinese); batch outputs give them per distinct flag value, so
#: they name no code: `drg explain` and `group_one(...).explain` name the offending codes
FLAG_MESSAGES = {
    Flag.SEX_INVALID: "性别不是本方案的代码（1 男，2 女）",
    Flag.AGE_MISSING: "年龄（岁）缺失",
    Flag.AGE_OUT_OF_RANGE: "年龄（岁）超出范围",
    Flag.AGE_DAYS_MISSING: "0 岁患者缺少年龄（天）",
    Flag.AGE_DAYS_OUT_OF_RANGE: "年龄（天）为负数",
    Flag.WEIGHT_MISSING: "新生儿缺少出生体重",
    Flag.WEIGHT_OUT_OF_RANGE: "出生体重为负数",
    Flag.NO_DIAGNOSIS: "没有主要诊断",
    Flag.UNKNOWN_PDX: "主要诊断不在本方案的诊断字典中",
    Flag.UNKNOWN_SDX: "其他诊断不在本方案的诊断字典中",
    Flag.UNKNOWN_PX: "手术操作不在本方案的手术操作字典中",
    Flag.EMPTY_CODE: "诊断/手术操作列表中的空代码已忽略",
    Flag.BAD_NUMBER: "数值字段不是整数（按缺失处理）",
    Flag.LOS_INVALID: "住院天数缺失或为负数（本方案需要住院天数）",
    Flag.MDC_FAIL: "已进入该 MDC，但其 ADRG 均不符合：由该 MDC 的占位组（X00 / X000）判为无法入组",
}


_MESSAGES = [(int(bit), msg) for bit, msg in FLAG_MESSAGES.items()]
_SAID_BY_REASON = {int(Reason.MDC_FAIL): int(Flag.MDC_FAIL)}  # flag messages a reason already says


@lru_cache(maxsize=4096)
def describe_flags(flags: int) -> str:
    """``'; '``-joined messages of the set bits, in bit order ('' when none)."""
    flags = int(flags)
    return "; ".join(msg for bit, msg in _MESSAGES if flags & bit)


@lru_cache(maxsize=4096)
def describe_reason(reason: int, flags: int) -> str:
    """The ``reason`` column: the reason's text, then the flags' messages (a flag the reason
    already says is not repeated); '' for a grouped case with no flags."""
    reason, flags = int(reason), int(flags) & ~_SAID_BY_REASON.get(int(reason), 0)
    head = REASON_TEXTS[Reason(reason)] if reason in Reason._value2member_map_ else f"reason {reason}"
    return "; ".join(t for t in (head, describe_flags(flags)) if t)

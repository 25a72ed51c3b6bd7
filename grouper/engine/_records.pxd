# Record layouts of the compiled decision structure, and the one source of the engine's numbers.
# The NumPy dtypes in grouper.engine.compile are derived from these structs (see _kernel.pyx), and
# the Python side (engine.status Flag/Status/CcLevel, engine.inputs MISSING/ID_*, engine.compile
# opcodes) reads these constants from _kernel.CONSTANTS, so neither can drift.
from libc.stdint cimport int8_t, int32_t, uint64_t

cdef enum:
    MISSING = -2147483648  # INT32_MIN: a numeric input that is absent
    ID_UNKNOWN = -1        # a code not in the scheme's dictionary
    ID_EMPTY = -2          # a null or empty code inside a list

# status classes (grouper.engine.status.Status)
cdef enum:
    ST_GROUPED = 0
    ST_INVALID = 1
    ST_UNGROUPABLE = 2
    ST_AMBIGUOUS = 3

# flag bits (grouper.engine.status.Flag)
cdef enum:
    F_SEX_INVALID = 1
    F_AGE_MISSING = 2
    F_AGE_OUT_OF_RANGE = 4
    F_AGE_DAYS_MISSING = 8
    F_AGE_DAYS_OUT_OF_RANGE = 16
    F_WEIGHT_MISSING = 32
    F_WEIGHT_OUT_OF_RANGE = 64
    F_NO_DIAGNOSIS = 128
    F_UNKNOWN_PDX = 256
    F_UNKNOWN_SDX = 512
    F_UNKNOWN_PX = 1024
    F_EMPTY_CODE = 2048
    F_BAD_NUMBER = 4096     # set by the Arrow boundary (a numeric field that is not a whole number)
    F_LOS_INVALID = 8192
    F_MDC_FAIL = 16384      # a fail rule inside an MDC decided the case (X00 / X000 placeholder)
    F_CHECKS = 8447     # the bits that make a case invalid input

# why a case did not group: the deepest step grouping reached (grouper.engine.status.Reason).
# Kernel and reference interpreter record the same step: an MDC counts as entered once its
# entry rule held, an ADRG once its entry rule held; over every MDC (and fail_retry attempt)
# the deepest step wins.
cdef enum:
    R_NONE = 0          # grouped
    R_INVALID = 1       # failed the pre-grouping checks (the flags say which)
    R_NO_MDC = 2        # no MDC's entry rule held (nor an ambiguous-group rule)
    R_NO_ADRG = 3       # an MDC was entered, none of its ADRG rules held; no procedure
    R_PX_NO_ADRG = 4    # an MDC was entered, none of its ADRG rules held; the case has procedures
    R_NO_DRG = 5        # an ADRG rule held, none of its DRG splits, and it has no result of its own
    R_MDC_FAIL = 6      # a fail rule inside the MDC decided the case (X00 / X000 placeholder)
    R_QY_PRE = 7        # an ambiguous-group rule tested before an MDC's entry rule held (QY)
    R_QY = 8            # an MDC's ambiguous-group rule held, at its place among the ADRGs (QY)

# CC/MCC level of a case (grouper.engine.status.CcLevel)
cdef enum:
    CC_NOT_COMPUTED = -1    # invalid input: severity not evaluated
    CC_NONE = 0
    CC_CC = 1
    CC_MCC = 2

# condition opcodes (grouper.engine.compile lowers predicates to these)
cdef enum:
    OP_FALSE = 0
    OP_TRUE = 1
    OP_AND = 2          # a = first child slot in cond_args, b = number of children
    OP_OR = 3
    OP_NOT = 4          # a = child node
    OP_PDX_IN = 10      # a = dx set
    OP_ANY_DX_IN = 11
    OP_SDX_IN = 12
    OP_N_DX_GT = 13     # a = value
    OP_TRAUMA_GE = 14   # a = region map, b = value
    OP_HAS_MCC = 15
    OP_HAS_CC = 16
    OP_HAS_PX = 20
    OP_PPX_IN = 21      # a = px set
    OP_ANY_PX_IN = 22
    OP_SPX_IN = 23
    OP_N_PX_GT = 24     # a = value
    OP_N_PX_IN_GE = 25  # a = px set, b = value: distinct procedure codes in the set >= value
    OP_SEX_EQ = 30      # a = value
    OP_CMP = 31         # a = field, b = comparator, c = value
    OP_KNOWN = 32       # a = field
    OP_VALUE_IN = 33    # a = field (discharge, dept), b | c << 32 = bitmask of value ids

cdef enum:
    FIELD_AGE = 0
    FIELD_AGE_DAYS = 1
    FIELD_WEIGHT = 2
    FIELD_LOS = 3
    FIELD_DISCHARGE = 4  # value ids of the scheme's discharge codes (-1 other, MISSING absent)
    FIELD_DEPT = 5
    FIELD_SEX = 6
    N_FIELDS = 7         # rows of the per-case input matrix, indexed by FIELD_*

cdef enum:
    CMP_EQ = 0
    CMP_LT = 1
    CMP_LE = 2
    CMP_GT = 3
    CMP_GE = 4

cdef packed struct CondNode:
    int32_t op
    int32_t a
    int32_t b
    int32_t c

cdef packed struct MdcRec:
    int32_t entry_cond   # -1: the prefilter decides the entry exactly (nothing to evaluate)
    int32_t qy_cond      # -1: no ambiguous-group test
    int32_t qy_pos       # test before the ADRG at this offset of the MDC's range
    int32_t adrg_start   # range into the ADRG records, evaluation order
    int32_t adrg_end
    int32_t code         # index into the MDC code table
    int32_t qy_adrg      # result codes when the QY test holds
    int32_t qy_drg
    int32_t pre_cond     # -1: none; else an ambiguous-group rule tested before the entry rule
    int32_t pre_mdc      # its result codes (the MDC may differ from this one's: MDCN -> MQY)
    int32_t pre_drg

cdef packed struct AdrgRec:
    int32_t entry_cond   # -1: the prefilter decides the entry exactly
    int32_t split_start  # range into the split records, DRG order
    int32_t split_end
    int32_t code
    int32_t nosplit_drg  # -1: no split holds -> continue with the next ADRG
    int32_t status       # ST_GROUPED, or ST_UNGROUPABLE for a fail rule (X00 placeholder)

cdef packed struct SplitRec:
    int32_t cond
    int32_t drg

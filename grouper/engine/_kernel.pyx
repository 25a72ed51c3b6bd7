# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Evaluate a compiled grouping scheme over cases given as int32 ids and offsets.

Private module (``grouper.engine._kernel``). ``Program(compiled)`` holds typed views of the flat
arrays made by ``grouper.engine.compile``, read by name and checked; ``group_batch`` loops over
cases with the GIL released (single-threaded: ``Grouper`` runs slices of a batch on its own
thread pool), and ``group_one`` runs the same per-case function for a single case without any
array set-up. No Python object is touched per case. ``CONSTANTS`` exposes the numbers declared
in ``_records.pxd`` (their one source) to the Python side.
"""

from libc.stdint cimport int8_t, int32_t, uint8_t, uint16_t, uint32_t, uint64_t
from _records cimport *  # record layouts and constants shared with grouper.compile

from cpython cimport array
import array
from collections.abc import Mapping

import numpy as np

cdef extern from *:
    """
    #if defined(_MSC_VER)
    #include <intrin.h>
    static __inline int drg_ctz64(unsigned __int64 x) { unsigned long i; _BitScanForward64(&i, x); return (int)i; }
    #else
    static inline int drg_ctz64(unsigned long long x) { return __builtin_ctzll(x); }
    #endif
    """
    int drg_ctz64(uint64_t x) nogil  # index of the lowest set bit; x must be non-zero


cdef struct Model:
    const CondNode* cond
    const int32_t* cond_args
    const uint64_t* dx_sets
    const uint64_t* px_sets
    int32_t dx_words
    int32_t px_words
    const int8_t* regions
    int32_t n_dx_codes
    const uint16_t* cc_class  # by dx id: the row of the three tables below
    const int8_t* cc_level
    const int32_t* cc_table
    const int32_t* pdx_table
    const uint64_t* dx_bits   # by CC class: summary bits (lists of any_dx_in / sdx_in holding the code)
    const CcRow* cc_rows      # by CC class: the four above in one record
    const uint64_t* px_bits   # by px class: the same for any_px_in / spx_in
    const MdcRec* mdc
    int32_t n_mdc
    const AdrgRec* adrg
    const SplitRec* split
    int32_t sex_mask       # bit v set: sex value v (0..30) is valid
    int32_t newborn_days
    int32_t max_age
    bint cc_all            # CC/MCC counted over all diagnoses, principal included
    int32_t none_mdc
    int32_t none_adrg
    int32_t none_drg
    # prefilters: rows by the class of the principal dx / px id (dx_class, px_class; their
    # last entry: none or unknown); a clear bit means that MDC / ADRG cannot match, so its
    # condition is not evaluated. Codes with equal rows share a class: the rows fit in cache.
    const uint16_t* dx_class
    const uint32_t* dx_classes  # by dx id: dx_class | cc_class << 16 (one load for a code's two classes)
    const uint16_t* px_class
    const uint64_t* mdc_by_pdx
    const uint64_t* mdc_by_ppx
    const uint64_t* mdc_by_anydx
    const uint64_t* mdc_by_anypx
    const uint64_t* mdc_by_age  # by age in years (a valid case's; the last row for older ones): MDCs it may enter
    int32_t age_rows
    bint use_anydx          # some MDC is entered on "any diagnosis in a list": OR the case's rows
    bint use_anypx
    const uint64_t* adrg_by_pdx
    const uint64_t* adrg_by_ppx
    const uint64_t* adrg_by_anypx  # NULL: no ADRG is entered on "some procedure in a list"
    int32_t adrg_words
    int32_t n_px_codes
    uint64_t mdc_bits       # bits of the MDCs that exist (a prefilter row may have more set)
    bint require_los        # a case without a length of stay is invalid input
    bint fail_retry         # an ungroupable case is regrouped with each secondary procedure alone
    bint skip_mdc           # skip the entry rule of an MDC whose ADRGs are all ruled out (group_mdc)


cdef struct CcRow:            # one CC class's row, read with one load (built by Program)
    uint64_t bits             # summary bits of the lists holding the class's codes (dx_bits)
    int32_t table             # its exclusion table (cc_table)
    int32_t ptable            # the table it excludes as a principal diagnosis (pdx_table)
    int32_t level             # 0 none, 1 CC, 2 MCC (cc_level)


cdef struct CaseCtx:
    int32_t sex
    int32_t age
    int32_t age_days
    int32_t weight          # MISSING unless > 0 (weight predicates need a non-zero weight)
    int32_t los
    int32_t discharge
    int32_t dept
    const int32_t* dx       # raw list; ID_EMPTY entries after the first are skipped
    int32_t ndx_raw
    int32_t ndx             # diagnoses that count (non-empty)
    const int32_t* px
    int32_t npx_raw
    int32_t npx
    int32_t ppx             # position of the principal (first non-empty) procedure, -1 none
    bint has_mcc
    bint has_cc
    # summary bits (engine.tables.summary_bits): the lists that some code of the case is in
    uint64_t dx_any         # any diagnosis
    uint64_t dx_sdx         # a secondary diagnosis (positions after the first)
    uint64_t px_any         # any procedure (from the principal one on)
    uint64_t px_spx         # a procedure after the principal one
    uint64_t mdc_anydx      # the MDCs that some diagnosis of the case allows (when use_anydx)
    int32_t pdx_row         # prefilter class of the principal diagnosis


cdef struct Outcome:          # filled in place (a returned copy of mixed-size fields stalls on
    int32_t mdc               # store forwarding)
    int32_t adrg
    int32_t drg
    int32_t flags
    int8_t status
    int8_t cc
    uint8_t reason          # R_*: the step where grouping stopped (R_NONE when grouped)


cdef inline bint in_set(const uint64_t* sets, int32_t words, int32_t row, int32_t code) noexcept nogil:
    if code < 0:
        return False
    return (sets[<Py_ssize_t>row * words + (code >> 6)] >> (code & 63)) & 1


cdef inline bint compare(int32_t v, int32_t cmp, int32_t ref) noexcept nogil:
    if v == MISSING:
        return False
    if cmp == CMP_EQ:
        return v == ref
    if cmp == CMP_LT:
        return v < ref
    if cmp == CMP_LE:
        return v <= ref
    if cmp == CMP_GT:
        return v > ref
    return v >= ref


cdef inline int32_t field_value(const CaseCtx* c, int32_t f) noexcept nogil:
    if f == FIELD_AGE:
        return c.age
    elif f == FIELD_AGE_DAYS:
        return c.age_days
    elif f == FIELD_WEIGHT:
        return c.weight
    elif f == FIELD_LOS:
        return c.los
    elif f == FIELD_DISCHARGE:
        return c.discharge
    return c.dept


cdef int32_t n_px_in(const Model* m, const CaseCtx* c, int32_t row) noexcept nogil:
    """Distinct procedure codes of the case in px set ``row`` (a code listed twice counts once)."""
    cdef int32_t i, j, k, found = 0
    cdef bint seen
    for i in range(c.npx_raw):
        k = c.px[i]
        if not in_set(m.px_sets, m.px_words, row, k):
            continue
        seen = False
        for j in range(i):
            if c.px[j] == k:
                seen = True
                break
        if not seen:
            found += 1
    return found


cdef inline bint eval_leaf(const Model* m, const CaseCtx* c, const CondNode* n) noexcept nogil:
    """A predicate node; one if/elif chain over the opcode, which Cython turns into a C switch."""
    cdef int32_t op = n.op, i, k, r
    cdef uint64_t seen
    if op == OP_PDX_IN:
        return in_set(m.dx_sets, m.dx_words, n.a, c.dx[0])
    elif op == OP_PPX_IN:
        return c.ppx >= 0 and in_set(m.px_sets, m.px_words, n.a, c.px[c.ppx])
    elif op == OP_HAS_MCC:
        return c.has_mcc
    elif op == OP_HAS_CC:
        return c.has_cc
    elif op == OP_N_DX_GT:
        return c.ndx > n.a
    elif op == OP_HAS_PX:
        return c.npx > 0
    elif op == OP_TRUE:
        return True
    elif op == OP_FALSE:
        return False
    elif op == OP_ANY_PX_IN or op == OP_SPX_IN:
        if n.b > 0:  # a summary bit (b - 1)
            return ((c.px_any if op == OP_ANY_PX_IN else c.px_spx) >> (n.b - 1)) & 1
        if c.ppx < 0:
            return False
        k = c.ppx if op == OP_ANY_PX_IN else c.ppx + 1
        for i in range(k, c.npx_raw):
            if in_set(m.px_sets, m.px_words, n.a, c.px[i]):
                return True
        return False
    elif op == OP_ANY_DX_IN or op == OP_SDX_IN:
        if n.b > 0:
            return ((c.dx_any if op == OP_ANY_DX_IN else c.dx_sdx) >> (n.b - 1)) & 1
        k = 0 if op == OP_ANY_DX_IN else 1
        for i in range(k, c.ndx_raw):
            if in_set(m.dx_sets, m.dx_words, n.a, c.dx[i]):
                return True
        return False
    elif op == OP_N_PX_GT:
        return c.npx > n.a
    elif op == OP_N_PX_IN_GE:
        return n_px_in(m, c, n.a) >= n.b
    elif op == OP_SEX_EQ:
        return c.sex == n.a
    elif op == OP_CMP:
        return compare(field_value(c, n.a), n.b, n.c)
    elif op == OP_KNOWN:
        return field_value(c, n.a) != MISSING
    elif op == OP_VALUE_IN:
        k = field_value(c, n.a)
        if k < 0 or k >= 64:
            return False
        return ((<uint64_t>(<uint32_t>n.b) | (<uint64_t>(<uint32_t>n.c) << 32)) >> k) & 1
    elif op == OP_TRAUMA_GE:
        seen = 0
        for i in range(c.ndx_raw):
            k = c.dx[i]
            if k >= 0:
                r = m.regions[<Py_ssize_t>n.a * m.n_dx_codes + k]
                if r >= 0:
                    seen |= (<uint64_t>1) << r
        k = 0
        while seen:
            seen &= seen - 1
            k += 1
        return k >= n.b
    return False


cdef bint eval_cond(const Model* m, const CaseCtx* c, int32_t node) noexcept nogil:
    """A condition tree. and/or evaluate leaf children inline and recurse only into subtrees."""
    cdef const CondNode* n = &m.cond[node]
    cdef const CondNode* ch
    cdef int32_t i
    cdef bint v
    if n.op == OP_AND or n.op == OP_OR:
        for i in range(n.a, n.a + n.b):
            ch = &m.cond[m.cond_args[i]]
            if ch.op == OP_AND or ch.op == OP_OR or ch.op == OP_NOT:
                v = eval_cond(m, c, m.cond_args[i])
            else:
                v = eval_leaf(m, c, ch)
            if v != (n.op == OP_AND):
                return v
        return n.op == OP_AND
    if n.op == OP_NOT:
        return not eval_cond(m, c, n.a)
    return eval_leaf(m, c, n)


cdef int32_t validate(const Model* m, CaseCtx* c, int32_t weight_raw) noexcept nogil:
    cdef int32_t f = 0
    if c.sex < 0 or c.sex > 30 or not ((m.sex_mask >> c.sex) & 1):
        f |= F_SEX_INVALID
    if c.age == MISSING:
        f |= F_AGE_MISSING
    elif c.age < 0 or c.age > m.max_age:
        f |= F_AGE_OUT_OF_RANGE
    elif c.age == 0:
        if c.age_days == MISSING:
            f |= F_AGE_DAYS_MISSING
        elif c.age_days < 0:
            f |= F_AGE_DAYS_OUT_OF_RANGE
        elif c.age_days <= m.newborn_days and weight_raw == MISSING:
            f |= F_WEIGHT_MISSING
    if weight_raw != MISSING and weight_raw < 0:
        f |= F_WEIGHT_OUT_OF_RANGE
    if c.ndx_raw == 0 or c.dx[0] == ID_EMPTY:
        f |= F_NO_DIAGNOSIS
    if m.require_los and (c.los == MISSING or c.los < 0):
        f |= F_LOS_INVALID
    return f


cdef inline void cc_add(const CcRow* r, int32_t ptab, bint* mcc, bint* cc) noexcept nogil:
    """Add the CC/MCC level of one diagnosis (its CC class row) unless the principal's table excludes it."""
    if r.level == 0 or (ptab >= 0 and r.table == ptab):
        return
    if r.level & 2:
        mcc[0] = True
    if r.level & 1:
        cc[0] = True


cdef int32_t scan_codes(const Model* m, CaseCtx* c) noexcept nogil:
    """One pass over each code list: count the codes that count, find the principal procedure,
    flag odd codes, and (used only for a valid case) the CC/MCC level, the summary bits, the
    principal's prefilter class and the MDCs that some diagnosis allows."""
    cdef int32_t f = 0, i, k, ndx = 0, npx = 0, ppx = -1, ptab = -1
    cdef uint32_t v
    cdef uint64_t sdx = 0, dx0 = 0, spx = 0, px0 = 0
    cdef uint64_t anydx = m.mdc_by_anydx[m.dx_class[m.n_dx_codes]]  # the 'no code' row
    cdef bint mcc = False, cc = False
    cdef const CcRow* r
    c.pdx_row = m.dx_class[m.n_dx_codes]
    if c.ndx_raw > 0:
        k = c.dx[0]
        if k >= 0:
            ndx = 1
            v = m.dx_classes[k]
            c.pdx_row = v & 0xFFFF
            anydx |= m.mdc_by_anydx[v & 0xFFFF]
            r = &m.cc_rows[v >> 16]
            ptab = r.ptable
            dx0 = r.bits
            if m.cc_all:
                cc_add(r, ptab, &mcc, &cc)
        elif k != ID_EMPTY:
            ndx = 1
            if k == ID_UNKNOWN:
                f |= F_UNKNOWN_PDX
    for i in range(1, c.ndx_raw):
        k = c.dx[i]
        if k < 0:
            if k == ID_EMPTY:
                f |= F_EMPTY_CODE
                continue
            ndx += 1
            if k == ID_UNKNOWN:
                f |= F_UNKNOWN_SDX
            continue
        ndx += 1
        v = m.dx_classes[k]
        anydx |= m.mdc_by_anydx[v & 0xFFFF]
        r = &m.cc_rows[v >> 16]
        sdx |= r.bits
        cc_add(r, ptab, &mcc, &cc)
    c.ndx = ndx
    c.has_mcc = mcc
    c.has_cc = cc
    c.dx_sdx = sdx
    c.dx_any = sdx | dx0
    c.mdc_anydx = anydx
    for i in range(c.npx_raw):
        k = c.px[i]
        if k == ID_EMPTY:
            f |= F_EMPTY_CODE
            continue
        npx += 1
        if k == ID_UNKNOWN:
            f |= F_UNKNOWN_PX
        if ppx < 0:
            ppx = i
            if k >= 0:
                px0 = m.px_bits[m.px_class[k]]
        elif k >= 0:
            spx |= m.px_bits[m.px_class[k]]
    c.npx = npx
    c.ppx = ppx
    c.px_spx = spx
    c.px_any = spx | px0
    return f


cdef void px_summary(const Model* m, CaseCtx* c) noexcept nogil:
    """The case's procedure summary bits: the principal procedure's and those after it (for a
    regrouping with one procedure; ``scan_codes`` computes them for the case itself)."""
    cdef int32_t i, k
    cdef uint64_t spx = 0
    c.px_any = 0
    c.px_spx = 0
    if c.ppx < 0:
        return
    for i in range(c.ppx + 1, c.npx_raw):
        k = c.px[i]
        if k >= 0:
            spx |= m.px_bits[m.px_class[k]]
    c.px_spx = spx
    k = c.px[c.ppx]
    c.px_any = spx | (m.px_bits[m.px_class[k]] if k >= 0 else 0)


cdef inline uint64_t any_px_word(const Model* m, const CaseCtx* c, int32_t w) noexcept nogil:
    """Word ``w`` of the ADRG records that some procedure of the case allows (and 'no procedure')."""
    cdef uint64_t word = m.adrg_by_anypx[<Py_ssize_t>m.px_class[m.n_px_codes] * m.adrg_words + w]
    cdef int32_t i
    for i in range(c.npx_raw):
        if c.px[i] >= 0:
            word |= m.adrg_by_anypx[<Py_ssize_t>m.px_class[c.px[i]] * m.adrg_words + w]
    return word


cdef bint group_in_mdc(const Model* m, const CaseCtx* c, const MdcRec* md, const uint64_t* a_pdx,
                       const uint64_t* a_ppx, Outcome* o) noexcept nogil:
    """ADRGs of one MDC in order, skipping those the prefilter rules out; QY at its place."""
    cdef int32_t j = md.adrg_start, end = md.adrg_end, s
    cdef int32_t qy_at = md.adrg_start + md.qy_pos if md.qy_cond >= 0 else -1
    cdef uint64_t word
    cdef const AdrgRec* ad
    while True:
        while j < end:  # jump to the next candidate ADRG record
            word = a_pdx[j >> 6] & a_ppx[j >> 6]
            if word and m.adrg_by_anypx != NULL:
                word &= any_px_word(m, c, j >> 6)
            word >>= (j & 63)
            if word:
                j += drg_ctz64(word)
                break
            j = (j | 63) + 1
        if j > end:
            j = end
        if qy_at >= 0 and qy_at <= j:
            if eval_cond(m, c, md.qy_cond):
                o.status = ST_AMBIGUOUS
                o.mdc = md.code
                o.adrg = md.qy_adrg
                o.drg = md.qy_drg
                o.reason = R_QY
                return True
            qy_at = -1
        if j >= end:
            return False
        ad = &m.adrg[j]
        if ad.entry_cond < 0 or eval_cond(m, c, ad.entry_cond):
            for s in range(ad.split_start, ad.split_end):
                if m.cond[m.split[s].cond].op == OP_TRUE or eval_cond(m, c, m.split[s].cond):
                    o.status = ad.status
                    o.mdc = md.code
                    o.adrg = ad.code
                    o.drg = m.split[s].drg
                    if ad.status == ST_UNGROUPABLE:
                        o.flags |= F_MDC_FAIL
                    o.reason = R_MDC_FAIL if ad.status == ST_UNGROUPABLE else R_NONE
                    return True
            if ad.nosplit_drg >= 0:
                o.status = ad.status
                o.mdc = md.code
                o.adrg = ad.code
                o.drg = ad.nosplit_drg
                if ad.status == ST_UNGROUPABLE:
                    o.flags |= F_MDC_FAIL
                o.reason = R_MDC_FAIL if ad.status == ST_UNGROUPABLE else R_NONE
                return True
            if o.reason < R_NO_DRG:  # the ADRG held but gave no result: on to the next ADRG
                o.reason = R_NO_DRG
        j += 1


cdef inline bint has_candidate(const Model* m, const CaseCtx* c, const MdcRec* md, const uint64_t* a_pdx,
                               const uint64_t* a_ppx) noexcept nogil:
    """Whether the ADRG prefilters leave some ADRG record of the MDC to evaluate."""
    cdef int32_t j = md.adrg_start, end = md.adrg_end, w
    cdef uint64_t word
    while j < end:
        w = j >> 6
        word = a_pdx[w] & a_ppx[w]
        if word and m.adrg_by_anypx != NULL:
            word &= any_px_word(m, c, w)
        word >>= (j & 63)
        if end - j < 64:  # the MDC's last word: records beyond the MDC do not count
            word &= ((<uint64_t>1) << (end - j)) - 1
        if word:
            return True
        j = (j | 63) + 1
    return False


cdef inline bint group_mdc(const Model* m, const CaseCtx* c, const MdcRec* md, const uint64_t* a_pdx,
                           const uint64_t* a_ppx, Outcome* o, bint* deferred) noexcept nogil:
    """One MDC at its place in the order: ambiguous-group rule, entry rule, then its ADRGs.
    An MDC without an ambiguous rule whose ADRGs the prefilters all rule out can only give
    R_NO_ADRG: its entry rule is evaluated only where that could change the reason, and after
    the walk (``deferred`` set: the caller evaluates it if no MDC gives a result)."""
    if md.pre_cond >= 0 and eval_cond(m, c, md.pre_cond):
        o.status = ST_AMBIGUOUS
        o.mdc = md.pre_mdc
        o.adrg = md.qy_adrg
        o.drg = md.pre_drg
        o.reason = R_QY_PRE
        return True
    if m.skip_mdc and deferred != NULL and md.qy_cond < 0 and not has_candidate(m, c, md, a_pdx, a_ppx):
        if o.reason < R_NO_ADRG:
            deferred[0] = True
        return False
    if md.entry_cond >= 0 and not eval_cond(m, c, md.entry_cond):
        return False
    if o.reason < R_NO_ADRG:
        o.reason = R_NO_ADRG
    return group_in_mdc(m, c, md, a_pdx, a_ppx, o)


cdef inline uint64_t any_code_mask(const uint64_t* table, const uint16_t* cls, int32_t none_row,
                                   const int32_t* ids, int32_t n) noexcept nogil:
    """OR of the rows of a case's known codes' classes (and of 'no code'): the MDCs that some
    code of the case allows."""
    cdef uint64_t mask = table[cls[none_row]]
    cdef int32_t i
    for i in range(n):
        if ids[i] >= 0:
            mask |= table[cls[ids[i]]]
    return mask


cdef bint group_mdcs(const Model* m, const CaseCtx* c, Outcome* o) noexcept nogil:
    """MDCs in evaluation order, only those the prefilters allow; True when a result is set."""
    cdef int32_t i, pdx_row, ppx_row
    cdef uint64_t mdc_ok, skipped
    cdef bint deferred
    cdef const uint64_t* a_pdx
    cdef const uint64_t* a_ppx
    # prefilter rows: the classes of the principal codes' ids (the last entry when unknown/absent)
    pdx_row = c.pdx_row
    ppx_row = m.px_class[m.n_px_codes]
    if c.ppx >= 0 and c.px[c.ppx] >= 0:
        ppx_row = m.px_class[c.px[c.ppx]]
    mdc_ok = m.mdc_by_pdx[pdx_row] & m.mdc_by_ppx[ppx_row] & m.mdc_by_age[c.age if c.age < m.age_rows else m.age_rows - 1] & m.mdc_bits
    if m.use_anydx:
        mdc_ok &= c.mdc_anydx
    if m.use_anypx:
        mdc_ok &= any_code_mask(m.mdc_by_anypx, m.px_class, m.n_px_codes, c.px, c.npx_raw)
    a_pdx = m.adrg_by_pdx + <Py_ssize_t>pdx_row * m.adrg_words
    a_ppx = m.adrg_by_ppx + <Py_ssize_t>ppx_row * m.adrg_words
    skipped = 0
    while mdc_ok:  # bit = position in the evaluation order
        i = drg_ctz64(mdc_ok)
        mdc_ok &= mdc_ok - 1
        deferred = False
        if group_mdc(m, c, &m.mdc[i], a_pdx, a_ppx, o, &deferred):
            return True
        if deferred:
            skipped |= (<uint64_t>1) << i
    for i in range(64, m.n_mdc):  # beyond 64 MDCs nothing is prefiltered (nor skipped)
        if group_mdc(m, c, &m.mdc[i], a_pdx, a_ppx, o, NULL):
            return True
    while skipped and o.reason < R_NO_ADRG:  # no result: did a skipped MDC's entry rule hold?
        i = drg_ctz64(skipped)
        skipped &= skipped - 1
        if m.mdc[i].entry_cond < 0 or eval_cond(m, c, m.mdc[i].entry_cond):
            o.reason = R_NO_ADRG
    return False


cdef void group_case(const Model* m, CaseCtx* c, int32_t weight_raw, Outcome* o) noexcept nogil:
    cdef CaseCtx alone
    cdef int32_t k
    o.mdc = m.none_mdc
    o.adrg = m.none_adrg
    o.drg = m.none_drg
    o.cc = CC_NOT_COMPUTED
    o.reason = R_NO_MDC
    o.flags = scan_codes(m, c) | validate(m, c, weight_raw)
    if o.flags & F_CHECKS:
        o.status = ST_INVALID
        o.reason = R_INVALID
        return
    o.cc = CC_MCC if c.has_mcc else (CC_CC if c.has_cc else CC_NONE)
    if group_mdcs(m, c, o):
        return
    if m.fail_retry and c.npx >= 2:
        # regroup with each secondary procedure alone, in order; diagnoses unchanged
        alone = c[0]
        alone.npx_raw = 1
        alone.npx = 1
        alone.ppx = 0
        for k in range(c.ppx + 1, c.npx_raw):
            if c.px[k] == ID_EMPTY:
                continue
            alone.px = c.px + k
            px_summary(m, &alone)
            if group_mdcs(m, &alone, o):
                return
    o.status = ST_UNGROUPABLE
    if o.reason == R_NO_ADRG and c.npx > 0:
        o.reason = R_PX_NO_ADRG


cdef inline void fill_ctx(CaseCtx* c, const int32_t* f, Py_ssize_t stride,
                          const int32_t* dx, int32_t ndx, const int32_t* px, int32_t npx) noexcept nogil:
    """Case fields from column ``f`` of the input matrix (rows FIELD_*, ``stride`` apart)."""
    c.sex = f[FIELD_SEX * stride]
    c.age = f[FIELD_AGE * stride]
    c.age_days = f[FIELD_AGE_DAYS * stride]
    c.weight = f[FIELD_WEIGHT * stride]
    if c.weight <= 0:
        c.weight = MISSING
    c.los = f[FIELD_LOS * stride]
    c.discharge = f[FIELD_DISCHARGE * stride]
    c.dept = f[FIELD_DEPT * stride]
    c.dx = dx
    c.ndx_raw = ndx
    c.px = px
    c.npx_raw = npx


cdef inline void group_row(const Model* m, Py_ssize_t i, Py_ssize_t n, const int32_t* fields,
                           const int32_t* dx_off, const int32_t* dx_ids, const int32_t* px_off,
                           const int32_t* px_ids, int8_t* status, int32_t* mdc, int32_t* adrg,
                           int32_t* drg, int8_t* cc, int32_t* flags, uint8_t* reason) noexcept nogil:
    """Case i of a batch, in its own stack frame."""
    cdef CaseCtx c
    cdef Outcome o
    fill_ctx(&c, fields + i, n, dx_ids + dx_off[i], dx_off[i + 1] - dx_off[i],
             px_ids + px_off[i], px_off[i + 1] - px_off[i])
    group_case(m, &c, fields[FIELD_WEIGHT * n + i], &o)
    status[i] = o.status
    mdc[i] = o.mdc
    adrg[i] = o.adrg
    drg[i] = o.drg
    cc[i] = o.cc
    flags[i] = o.flags
    if reason != NULL:
        reason[i] = o.reason


#: What ``Program`` reads from a compiled ruleset, by name: (dtype name or record, dimensions).
#: The record dtypes are filled in below, once they are derived from the structs.
ARRAYS = {
    "cond": ("COND", 1), "cond_args": ("int32", 1), "dx_sets": ("uint64", 2), "px_sets": ("uint64", 2),
    "regions": ("int8", 2), "cc_class": ("uint16", 1), "cc_level": ("int8", 1), "cc_table": ("int32", 1),
    "pdx_table": ("int32", 1), "dx_bits": ("uint64", 1), "px_bits": ("uint64", 1), "mdc": ("MDC", 1), "adrg": ("ADRG", 1), "split": ("SPLIT", 1),
    "dx_class": ("uint16", 1), "px_class": ("uint16", 1),
    "mdc_by_pdx": ("uint64", 1), "mdc_by_ppx": ("uint64", 1), "mdc_by_anydx": ("uint64", 1),
    "mdc_by_anypx": ("uint64", 1), "adrg_by_pdx": ("uint64", 2), "adrg_by_ppx": ("uint64", 2),
    "adrg_by_anypx": ("uint64", 2), "mdc_by_age": ("uint64", 1),
}
#: Settings ``Program`` reads from the compiled ruleset's ``params`` mapping.
PARAMS = ("use_anydx", "use_anypx", "use_adrg_anypx", "sex_mask", "newborn_days", "max_age", "cc_all", "require_los", "fail_retry")
#: Result code ids of "no result", read by name (``CompiledRuleset`` derives them from its code tables).
NONE_CODES = ("none_mdc", "none_adrg", "none_drg")


def _field(source, str name):
    """``source.name``, or ``source[name]`` for a mapping of named arrays."""
    if isinstance(source, Mapping):
        try:
            return source[name]
        except KeyError:
            raise ValueError(f"compiled program has no field {name!r}") from None
    try:
        return getattr(source, name)
    except AttributeError:
        raise ValueError(f"compiled program has no field {name!r}") from None


def _array(source, str name):
    """Array ``name`` of ``source``, checked against ``ARRAYS``: dtype, dimensions, C order."""
    kind, ndim = ARRAYS[name]
    want = _RECORDS[kind] if kind in _RECORDS else np.dtype(kind)
    arr = _field(source, name)
    got = getattr(arr, "dtype", None)
    shape = list(getattr(arr, "shape", ()))
    if not isinstance(arr, np.ndarray) or got != want or arr.ndim != ndim:
        raise ValueError(f"compiled field {name!r} must be a {ndim}-d {kind} array, got "
                         f"{got if got is not None else type(arr).__name__}{shape}")
    if not arr.flags.c_contiguous:
        raise ValueError(f"compiled field {name!r} must be C-contiguous")
    return arr


cdef inline int32_t _number(object v, object one, bint* bad) except? -1:
    """A whole number in int32 range as the kernel reads it (MISSING when absent or bad); a plain
    int is taken here, anything else by ``one.parse`` (the rules of ``inputs.parse_int``)."""
    if v is None:
        return MISSING
    if type(v) is int and -2147483647 <= v <= 2147483647:
        return <int32_t>v
    iv, b = one.parse(v)
    if b:
        bad[0] = True
    return MISSING if iv is None else <int32_t>iv


cdef int _code_ids(object codes, object get, int32_t* out) except -1:
    """ids of a case's code list (None: empty; text by ``get``, other values as their text)."""
    cdef Py_ssize_t i = 0
    for code in codes:
        if code is None:
            out[i] = ID_EMPTY
        elif type(code) is str:
            out[i] = get(code)
        else:
            out[i] = get(str(code))
        i += 1
    return 0


cdef int32_t _max(const uint16_t[::1] a) noexcept:
    """Largest entry of a class array (-1 when empty): every class must be a row of its tables."""
    cdef Py_ssize_t i
    cdef int32_t top = -1
    for i in range(a.shape[0]):
        if a[i] > top:
            top = a[i]
    return top


cdef class Program:
    """Typed views of one compiled ruleset: ``Program(compiled)`` reads the arrays named in
    ``ARRAYS`` (attributes of a ``CompiledRuleset``, or keys of a mapping), its ``params`` and
    the ``NONE_CODES``, checking each array's dtype and shape. ``skip_mdc=False`` evaluates the
    entry rule of every MDC the prefilters allow (for tests: the skip must change nothing)."""

    cdef Model m
    cdef const CondNode[::1] cond
    cdef const int32_t[::1] cond_args
    cdef const uint64_t[:, ::1] dx_sets
    cdef const uint64_t[:, ::1] px_sets
    cdef const int8_t[:, ::1] regions
    cdef const uint16_t[::1] cc_class
    cdef const uint16_t[::1] dx_class
    cdef const uint16_t[::1] px_class
    cdef object dx_classes_arr  # owned: dx_class | cc_class << 16 by dx id
    cdef const uint32_t[::1] dx_classes
    cdef const int8_t[::1] cc_level
    cdef const int32_t[::1] cc_table
    cdef const int32_t[::1] pdx_table
    cdef const uint64_t[::1] dx_bits
    cdef const uint64_t[::1] px_bits
    cdef object cc_rows_arr     # owned: the CC class rows as records
    cdef const CcRow[::1] cc_rows
    cdef const MdcRec[::1] mdc
    cdef const AdrgRec[::1] adrg
    cdef const SplitRec[::1] split
    cdef const uint64_t[::1] mdc_by_pdx
    cdef const uint64_t[::1] mdc_by_ppx
    cdef const uint64_t[::1] mdc_by_anydx
    cdef const uint64_t[::1] mdc_by_anypx
    cdef const uint64_t[::1] mdc_by_age
    cdef const uint64_t[:, ::1] adrg_by_pdx
    cdef const uint64_t[:, ::1] adrg_by_ppx
    cdef const uint64_t[:, ::1] adrg_by_anypx
    cdef int8_t dummy_i8[1]
    cdef int32_t dummy_i32[1]
    cdef uint16_t dummy_u16[1]
    cdef uint64_t dummy_u64[1]
    cdef int32_t empty_case[1]

    def __init__(self, compiled, bint skip_mdc=True):
        a = {name: _array(compiled, name) for name in ARRAYS}
        params = _field(compiled, "params")
        try:
            p = {k: params[k] for k in PARAMS}
        except (KeyError, TypeError) as exc:
            raise ValueError(f"compiled params lack {exc}") from None
        none = [_field(compiled, k) for k in NONE_CODES]
        cdef int sex_mask = p["sex_mask"], newborn_days = p["newborn_days"], max_age = p["max_age"]
        cdef int none_mdc = none[0], none_adrg = none[1], none_drg = none[2]
        cdef bint cc_all = p["cc_all"], require_los = p["require_los"], fail_retry = p["fail_retry"]
        cdef bint use_anydx = p["use_anydx"], use_anypx = p["use_anypx"], use_adrg_anypx = p["use_adrg_anypx"]
        self.cond = a["cond"]
        self.cond_args = a["cond_args"]
        self.dx_sets = a["dx_sets"]
        self.px_sets = a["px_sets"]
        self.regions = a["regions"]
        self.cc_class = a["cc_class"]
        self.dx_class = a["dx_class"]
        self.px_class = a["px_class"]
        self.cc_level = a["cc_level"]
        self.cc_table = a["cc_table"]
        self.pdx_table = a["pdx_table"]
        self.dx_bits = a["dx_bits"]
        self.px_bits = a["px_bits"]
        self.mdc = a["mdc"]
        self.adrg = a["adrg"]
        self.split = a["split"]
        self.mdc_by_pdx = a["mdc_by_pdx"]
        self.mdc_by_ppx = a["mdc_by_ppx"]
        self.mdc_by_anydx = a["mdc_by_anydx"]
        self.mdc_by_anypx = a["mdc_by_anypx"]
        self.mdc_by_age = a["mdc_by_age"]
        self.adrg_by_pdx = a["adrg_by_pdx"]
        self.adrg_by_ppx = a["adrg_by_ppx"]
        self.adrg_by_anypx = a["adrg_by_anypx"]
        n_dx = self.regions.shape[1]
        if (self.dx_class.shape[0] != n_dx + 1
                or self.mdc_by_anydx.shape[0] != self.mdc_by_pdx.shape[0]
                or self.adrg_by_pdx.shape[0] != self.mdc_by_pdx.shape[0]
                or self.mdc_by_anypx.shape[0] != self.mdc_by_ppx.shape[0]
                or self.adrg_by_ppx.shape[0] != self.mdc_by_ppx.shape[0]
                or self.adrg_by_pdx.shape[1] != self.adrg_by_ppx.shape[1]
                or self.adrg_by_anypx.shape[0] != self.mdc_by_ppx.shape[0]
                or self.adrg_by_anypx.shape[1] != self.adrg_by_ppx.shape[1]
                or self.adrg_by_pdx.shape[1] * 64 < self.adrg.shape[0]
                or self.px_class.shape[0] < 1
                or self.px_bits.shape[0] != self.mdc_by_ppx.shape[0]
                or _max(self.dx_class) >= self.mdc_by_pdx.shape[0]
                or _max(self.px_class) >= self.mdc_by_ppx.shape[0]):
            raise ValueError("prefilter tables do not fit the code dictionaries")
        if self.mdc_by_age.shape[0] < 1 or self.mdc_by_age[self.mdc_by_age.shape[0] - 1] != ~(<uint64_t>0):
            raise ValueError("compiled field 'mdc_by_age' must end with a row of every MDC (the older ages)")
        if self.cc_class.shape[0] != n_dx:
            raise ValueError(f"compiled field 'cc_class' must have {n_dx} entries (one per diagnosis code), "
                             f"got {self.cc_class.shape[0]}")
        for name in ("cc_table", "pdx_table", "dx_bits"):
            if a[name].shape[0] != self.cc_level.shape[0]:
                raise ValueError(f"compiled field {name!r} must have {self.cc_level.shape[0]} entries (one per "
                                 f"CC class, as 'cc_level'), got {a[name].shape[0]}")
        if _max(self.cc_class) >= self.cc_level.shape[0]:
            raise ValueError("compiled field 'cc_class' names a class beyond 'cc_level'")
        summary_ops = (OP_ANY_DX_IN, OP_SDX_IN, OP_ANY_PX_IN, OP_SPX_IN)
        cond_b = a["cond"]["b"]
        if np.any(np.isin(a["cond"]["op"], summary_ops) & ((cond_b < 0) | (cond_b > 64))):
            raise ValueError("a list node's summary bit (field b) must be 0 (none) or 1..64")
        self.dummy_i8[0] = -1
        self.dummy_u64[0] = 0
        self.dummy_i32[0] = -1
        self.dummy_u16[0] = 0
        self.empty_case[0] = ID_EMPTY
        m = &self.m
        m.cond = &self.cond[0]
        m.cond_args = &self.cond_args[0] if self.cond_args.shape[0] else NULL
        m.dx_sets = &self.dx_sets[0, 0] if self.dx_sets.shape[0] else self.dummy_u64
        m.px_sets = &self.px_sets[0, 0] if self.px_sets.shape[0] else self.dummy_u64
        m.dx_words = self.dx_sets.shape[1]
        m.px_words = self.px_sets.shape[1]
        m.regions = &self.regions[0, 0] if self.regions.shape[0] else self.dummy_i8
        m.n_dx_codes = self.regions.shape[1]
        m.cc_class = &self.cc_class[0] if n_dx else self.dummy_u16
        m.cc_level = &self.cc_level[0] if self.cc_level.shape[0] else self.dummy_i8
        m.cc_table = &self.cc_table[0] if self.cc_table.shape[0] else self.dummy_i32
        m.pdx_table = &self.pdx_table[0] if self.pdx_table.shape[0] else self.dummy_i32
        m.dx_bits = &self.dx_bits[0] if self.dx_bits.shape[0] else self.dummy_u64
        rows = np.zeros(max(1, self.cc_level.shape[0]), CC_ROW_DTYPE)
        rows["level"][:self.cc_level.shape[0]] = self.cc_level
        rows["table"][:self.cc_level.shape[0]] = self.cc_table
        rows["ptable"][:self.cc_level.shape[0]] = self.pdx_table
        rows["bits"][:self.cc_level.shape[0]] = self.dx_bits
        self.cc_rows_arr = rows
        self.cc_rows = rows
        m.cc_rows = &self.cc_rows[0]
        m.px_bits = &self.px_bits[0]
        m.dx_class = &self.dx_class[0]
        both = np.asarray(self.dx_class).astype(np.uint32)
        both[:n_dx] |= np.asarray(self.cc_class).astype(np.uint32) << 16
        self.dx_classes_arr = both
        self.dx_classes = both
        m.dx_classes = &self.dx_classes[0]
        m.px_class = &self.px_class[0]
        m.mdc = &self.mdc[0]
        m.n_mdc = self.mdc.shape[0]
        m.adrg = &self.adrg[0]
        m.split = &self.split[0]
        m.sex_mask = sex_mask
        m.newborn_days = newborn_days
        m.max_age = max_age
        m.cc_all = cc_all
        m.require_los = require_los
        m.fail_retry = fail_retry
        m.skip_mdc = skip_mdc
        m.none_mdc = none_mdc
        m.none_adrg = none_adrg
        m.none_drg = none_drg
        m.mdc_by_pdx = &self.mdc_by_pdx[0]
        m.mdc_by_ppx = &self.mdc_by_ppx[0]
        m.mdc_by_anydx = &self.mdc_by_anydx[0]
        m.mdc_by_anypx = &self.mdc_by_anypx[0]
        m.mdc_by_age = &self.mdc_by_age[0]
        m.age_rows = self.mdc_by_age.shape[0]
        m.use_anydx = use_anydx
        m.use_anypx = use_anypx
        m.adrg_by_pdx = &self.adrg_by_pdx[0, 0]
        m.adrg_by_ppx = &self.adrg_by_ppx[0, 0]
        m.adrg_by_anypx = &self.adrg_by_anypx[0, 0] if use_adrg_anypx else NULL
        m.adrg_words = self.adrg_by_pdx.shape[1]
        m.n_px_codes = self.px_class.shape[0] - 1
        m.mdc_bits = ~(<uint64_t>0) if m.n_mdc >= 64 else ((<uint64_t>1) << m.n_mdc) - 1

    def group_batch(self, const int32_t[:, ::1] fields, const int32_t[::1] dx_off, const int32_t[::1] dx_ids,
                    const int32_t[::1] px_off, const int32_t[::1] px_ids,
                    int8_t[::1] status, int32_t[::1] mdc, int32_t[::1] adrg, int32_t[::1] drg,
                    int8_t[::1] cc, int32_t[::1] flags, uint8_t[::1] reason=None):
        """Group n cases into the caller's output arrays. ``fields`` is int32[N_FIELDS, n]
        (rows FIELD_*: age, age_days, weight, los, discharge id, dept id, sex; MISSING absent).
        ``reason`` (optional, uint8[n]) receives each case's R_* code: where grouping stopped.
        One thread; the GIL is released, so threads may each group a slice."""
        cdef Py_ssize_t n = fields.shape[1], i
        cdef const Model* m = &self.m
        cdef const int32_t* empty = self.empty_case
        if fields.shape[0] != N_FIELDS:
            raise ValueError(f"fields must have {N_FIELDS} rows")
        if (status.shape[0] != n or mdc.shape[0] != n or adrg.shape[0] != n or drg.shape[0] != n
                or cc.shape[0] != n or flags.shape[0] != n or (reason is not None and reason.shape[0] != n)):
            raise ValueError("all per-case arrays must have the same length")
        if dx_off.shape[0] != n + 1 or px_off.shape[0] != n + 1:
            raise ValueError("offset arrays must have n + 1 entries")
        if n == 0:
            return
        if dx_off[n] > dx_ids.shape[0] or px_off[n] > px_ids.shape[0] or dx_off[0] < 0 or px_off[0] < 0:
            raise ValueError("offsets point outside the id arrays")
        if not (self.check_offsets(dx_off) and self.check_offsets(px_off)):
            raise ValueError("offsets must not decrease")
        cdef const int32_t* fp = &fields[0, 0]
        cdef const int32_t* dop = &dx_off[0]
        cdef const int32_t* pop = &px_off[0]
        cdef const int32_t* dxp = &dx_ids[0] if dx_ids.shape[0] else empty
        cdef const int32_t* pxp = &px_ids[0] if px_ids.shape[0] else empty
        cdef int8_t* stp = &status[0]
        cdef int32_t* mdp = &mdc[0]
        cdef int32_t* adrp = &adrg[0]
        cdef int32_t* drp = &drg[0]
        cdef int8_t* ccp = &cc[0]
        cdef int32_t* flp = &flags[0]
        cdef uint8_t* rsp = &reason[0] if reason is not None else NULL
        with nogil:
            for i in range(n):
                group_row(m, i, n, fp, dop, dxp, pop, pxp, stp, mdp, adrp, drp, ccp, flp, rsp)

    def group_one(self, const int32_t[::1] fields, const int32_t[::1] dx, const int32_t[::1] px):
        """One case (``fields`` int32[N_FIELDS]) -> (status, mdc, adrg, drg, cc, flags, reason)."""
        cdef CaseCtx c
        cdef Outcome o
        cdef const int32_t* empty = self.empty_case
        if fields.shape[0] != N_FIELDS:
            raise ValueError(f"fields must have {N_FIELDS} entries")
        fill_ctx(&c, &fields[0], 1, &dx[0] if dx.shape[0] else empty, dx.shape[0],
                 &px[0] if px.shape[0] else empty, px.shape[0])
        with nogil:
            group_case(&self.m, &c, fields[FIELD_WEIGHT], &o)
        return o.status, o.mdc, o.adrg, o.drg, o.cc, o.flags, o.reason

    def group_values(self, sex, age, age_days, birth_weight, los, discharge, dept, dx, px, one):
        """One case given as Python values -> (status, mdc, adrg, drg, cc, flags, reason), the
        whole single-case path in one call (``Grouper.group_one``). ``one`` holds the Python side:
        ``one.dx_get`` / ``one.px_get`` (code text -> id), ``one.parse(v)`` -> (int or None, bad)
        for numbers other than a plain int, ``one.value_id(field_name, v)`` for a discharge or
        department code. The same rules as ``Encoder.case_fields`` and ``CodeMapper.get``; a
        number that is not a whole number sets F_BAD_NUMBER."""
        cdef CaseCtx c
        cdef Outcome o
        cdef int32_t weight_raw
        cdef bint bad = False
        cdef int32_t dx_buf[64]
        cdef int32_t px_buf[64]
        cdef int32_t* dxp = dx_buf
        cdef int32_t* pxp = px_buf
        cdef array.array dx_big = None, px_big = None
        cdef Py_ssize_t ndx, npx
        c.sex = _number(sex, one, &bad)
        c.age = _number(age, one, &bad)
        c.age_days = _number(age_days, one, &bad)
        weight_raw = _number(birth_weight, one, &bad)
        c.weight = MISSING if weight_raw <= 0 else weight_raw
        c.los = _number(los, one, &bad)
        c.discharge = MISSING if discharge is None else one.value_id("discharge", discharge)
        c.dept = MISSING if dept is None else one.value_id("dept", dept)
        if isinstance(dx, str):  # joined codes: the one splitting rule of every input path
            dx = one.split_codes(dx)
        if isinstance(px, str):
            px = one.split_codes(px)
        if type(dx) is not list and type(dx) is not tuple:
            dx = list(dx)
        if type(px) is not list and type(px) is not tuple:
            px = list(px)
        ndx = len(dx)
        npx = len(px)
        if ndx > 64:
            dx_big = array.array("i", bytes(4 * ndx))
            dxp = <int32_t*>dx_big.data.as_ints
        if npx > 64:
            px_big = array.array("i", bytes(4 * npx))
            pxp = <int32_t*>px_big.data.as_ints
        _code_ids(dx, one.dx_get, dxp)
        _code_ids(px, one.px_get, pxp)
        c.dx = dxp if ndx else self.empty_case
        c.ndx_raw = <int32_t>ndx
        c.px = pxp if npx else self.empty_case
        c.npx_raw = <int32_t>npx
        group_case(&self.m, &c, weight_raw, &o)
        if bad:
            o.flags |= F_BAD_NUMBER
        return o.status, o.mdc, o.adrg, o.drg, o.cc, o.flags, o.reason

    def check_offsets(self, const int32_t[::1] off):
        """True when offsets never decrease (a malformed list column would break this)."""
        cdef Py_ssize_t i
        cdef bint ok = True
        with nogil:
            for i in range(1, off.shape[0]):
                if off[i] < off[i - 1]:
                    ok = False
                    break
        return ok


cdef CondNode _cond_proto[1]
cdef MdcRec _mdc_proto[1]
cdef AdrgRec _adrg_proto[1]
cdef SplitRec _split_proto[1]
cdef CcRow _ccrow_proto[1]
COND_DTYPE = np.asarray(<CondNode[:1]> _cond_proto).dtype
MDC_DTYPE = np.asarray(<MdcRec[:1]> _mdc_proto).dtype
ADRG_DTYPE = np.asarray(<AdrgRec[:1]> _adrg_proto).dtype
SPLIT_DTYPE = np.asarray(<SplitRec[:1]> _split_proto).dtype
CC_ROW_DTYPE = np.asarray(<CcRow[:1]> _ccrow_proto).dtype
_RECORDS = {"COND": COND_DTYPE, "MDC": MDC_DTYPE, "ADRG": ADRG_DTYPE, "SPLIT": SPLIT_DTYPE}

CONSTANTS = {
    "MISSING": MISSING, "ID_UNKNOWN": ID_UNKNOWN, "ID_EMPTY": ID_EMPTY,
    "ST_GROUPED": ST_GROUPED, "ST_INVALID": ST_INVALID, "ST_UNGROUPABLE": ST_UNGROUPABLE,
    "ST_AMBIGUOUS": ST_AMBIGUOUS,
    "F_SEX_INVALID": F_SEX_INVALID, "F_AGE_MISSING": F_AGE_MISSING,
    "F_AGE_OUT_OF_RANGE": F_AGE_OUT_OF_RANGE, "F_AGE_DAYS_MISSING": F_AGE_DAYS_MISSING,
    "F_AGE_DAYS_OUT_OF_RANGE": F_AGE_DAYS_OUT_OF_RANGE, "F_WEIGHT_MISSING": F_WEIGHT_MISSING,
    "F_WEIGHT_OUT_OF_RANGE": F_WEIGHT_OUT_OF_RANGE, "F_NO_DIAGNOSIS": F_NO_DIAGNOSIS,
    "F_UNKNOWN_PDX": F_UNKNOWN_PDX, "F_UNKNOWN_SDX": F_UNKNOWN_SDX, "F_UNKNOWN_PX": F_UNKNOWN_PX,
    "F_EMPTY_CODE": F_EMPTY_CODE, "F_BAD_NUMBER": F_BAD_NUMBER, "F_LOS_INVALID": F_LOS_INVALID,
    "F_CHECKS": F_CHECKS,
    "R_NONE": R_NONE, "R_INVALID": R_INVALID, "R_NO_MDC": R_NO_MDC, "R_NO_ADRG": R_NO_ADRG,
    "R_PX_NO_ADRG": R_PX_NO_ADRG, "R_NO_DRG": R_NO_DRG, "R_MDC_FAIL": R_MDC_FAIL, "R_QY_PRE": R_QY_PRE,
    "R_QY": R_QY,
    "CC_NOT_COMPUTED": CC_NOT_COMPUTED, "CC_NONE": CC_NONE, "CC_CC": CC_CC, "CC_MCC": CC_MCC,
    "OP_FALSE": OP_FALSE, "OP_TRUE": OP_TRUE, "OP_AND": OP_AND, "OP_OR": OP_OR, "OP_NOT": OP_NOT,
    "OP_PDX_IN": OP_PDX_IN, "OP_ANY_DX_IN": OP_ANY_DX_IN, "OP_SDX_IN": OP_SDX_IN,
    "OP_N_DX_GT": OP_N_DX_GT, "OP_TRAUMA_GE": OP_TRAUMA_GE, "OP_HAS_MCC": OP_HAS_MCC,
    "OP_HAS_CC": OP_HAS_CC, "OP_HAS_PX": OP_HAS_PX, "OP_PPX_IN": OP_PPX_IN,
    "OP_ANY_PX_IN": OP_ANY_PX_IN, "OP_SPX_IN": OP_SPX_IN, "OP_N_PX_GT": OP_N_PX_GT,
    "OP_N_PX_IN_GE": OP_N_PX_IN_GE, "F_MDC_FAIL": F_MDC_FAIL,
    "OP_SEX_EQ": OP_SEX_EQ, "OP_CMP": OP_CMP, "OP_KNOWN": OP_KNOWN, "OP_VALUE_IN": OP_VALUE_IN,
    "FIELD_AGE": FIELD_AGE, "FIELD_AGE_DAYS": FIELD_AGE_DAYS, "FIELD_WEIGHT": FIELD_WEIGHT,
    "FIELD_LOS": FIELD_LOS, "FIELD_DISCHARGE": FIELD_DISCHARGE, "FIELD_DEPT": FIELD_DEPT,
    "FIELD_SEX": FIELD_SEX, "N_FIELDS": N_FIELDS,
    "CMP_EQ": CMP_EQ, "CMP_LT": CMP_LT, "CMP_LE": CMP_LE, "CMP_GT": CMP_GT, "CMP_GE": CMP_GE,
}

# cython: language_level=3
"""The per-case pass of the hospital indices (``analytics.indices.IndexCells``), without the GIL.

One loop over a batch does what took a dozen NumPy passes: each row's exclusion reason (status
not grouped, no cost, no or a negative stay), its (unit, DRG) cell through the direct tables of
``PairIds``, and the additions into the cell: case, death, and the exact integer parts of cost
and stay, as ``analytics.exact.add_at`` cuts them (H, A, B for 0 and [1, 2^31), else the five
``ExactSum`` limbs). Integer additions only, so the sums do not depend on the order of the
rows. Text columns arrive as dictionary positions with a small table per distinct value (its
vocabulary id, whether it is 'grouped', whether it is a death), looked up per row here.
Rows whose unit or cell is not yet in the tables are handed back (``scan``'s ``missed``):
Python learns their pairs once, then ``add_rows`` adds them."""

cimport cython
from libc.math cimport fabs, frexp, ldexp
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t

cdef double HALF = 67108864.0  # 2^26: A and B, the two halves of a fraction's 52 bits
cdef double LIMIT = 2147483648.0  # 2^31: H below this
cdef double BIG = 18446744073709551616.0  # 2^64: limbs hold |x| below this
cdef int LIMBS = 5
cdef uint64_t MASK = (<uint64_t>1 << 32) - 1  # a limb: 32 bits
cdef int LOW = -96  # the lowest limb's lowest bit: 2^LOW (ExactSum.LOW)
cdef enum:
    BLOCK = 64  # rows whose cells are looked up (and their lines prefetched) before they are added

cdef extern from *:
    void __builtin_prefetch(const void* p, int rw, int locality) noexcept nogil


cdef inline bint _add(int64_t* hab, int64_t* limbs, double x) noexcept nogil:
    """Add x exactly: into H, A, B (``hab[0:3]``) or the limbs (``limbs[0:5]``); False (nothing
    added) for a value the limbs cannot hold: not finite, or |x| >= 2^64. Pointers, not
    memoryviews: a memoryview passed per call is reference-counted, atomically, per call."""
    cdef double f, ax, m
    cdef int64_t h, hi, mant, t
    cdef int e, j
    cdef uint64_t u
    if x == 0:
        return True
    if x >= 1 and x < LIMIT:  # no bit below 2^-52: H, A and B are exact
        h = <int64_t>x
        f = (x - <double>h) * HALF
        hi = <int64_t>f
        hab[0] += h
        hab[1] += hi
        hab[2] += <int64_t>((f - <double>hi) * HALF)
        return True
    ax = fabs(x)
    if not (ax < BIG):
        return False
    m = frexp(ax, &e)  # |x| = m * 2^e, m in [0.5, 1)
    mant = <int64_t>ldexp(m, 53)
    for j in range(LIMBS):
        t = e - 53 - LOW - 32 * j  # where the mantissa's lowest bit sits in limb j
        if t >= 0:
            u = (<uint64_t>mant) << (t if t < 63 else 63)
        else:
            u = (<uint64_t>mant) >> (-t if -t < 63 else 63)
        if x < 0:
            limbs[j] -= <int64_t>(u & MASK)
        else:
            limbs[j] += <int64_t>(u & MASK)
    return True


cdef inline void _case(int64_t* hot, int64_t* limbs, Py_ssize_t i, double cost, double los, uint8_t dead,
                       int64_t* bad) noexcept nogil:
    """One kept row into its cell: ``hot`` its 8 counts and sums, ``limbs`` its 10 limbs."""
    hot[0] += 1
    hot[1] += dead
    if not _add(hot + 2, limbs, cost) and bad[0] < 0:
        bad[0] = i
    if not _add(hot + 5, limbs + LIMBS, los) and bad[1] < 0:
        bad[1] = i


cdef int _check(int64_t[:, ::1] hot, int64_t[:, ::1] limbs) except -1:
    if hot.shape[1] != 8 or limbs.shape[1] != 2 * LIMBS or hot.shape[0] > limbs.shape[0]:
        raise ValueError("cells must be (m, 8) and (m, 10) int64")
    return 0


@cython.boundscheck(False)
@cython.wraparound(False)
def scan(const uint8_t[::1] grouped, const int32_t[::1] status, const double[::1] cost, const double[::1] los,
         const int64_t[::1] hospital_id, const int32_t[::1] hospital,
         const int64_t[::1] department_id, const int32_t[::1] department, bint by_department,
         const int64_t[::1] drg_id, const int32_t[::1] drg, const uint8_t[::1] dead_of,
         const int32_t[::1] discharge, const int32_t[::1] units, int64_t unit_a, int64_t unit_b,
         const int32_t[::1] cells, int64_t cell_a, int64_t cell_b, int64_t[:, ::1] hot, int64_t[:, ::1] limbs,
         int64_t[::1] missed, int64_t[::1] excluded, int64_t[::1] bad):
    """Add one batch's rows into their cells; returns how many rows were written to ``missed``
    (kept rows whose unit or cell the tables do not hold: nothing of theirs is added).

    Per row: ``grouped[status[i]]``, cost and stay (NaN for null), the vocabulary ids
    ``hospital_id[hospital[i]]`` (``department_id[department[i]]`` when ``by_department``, else
    0) and ``drg_id[drg[i]]``, the death flag ``dead_of[discharge[i]]`` (``dead_of[i]`` when
    ``discharge`` is empty). ``units``: the unit of
    (hospital, department) at ``h * unit_b + d`` for h < unit_a, d < unit_b, -1 unknown;
    ``cells`` the same of (unit, DRG). ``excluded`` (3) counts the rows left out by their first
    reason: not grouped, null cost, null or negative stay. The cells: ``hot`` (m, 8) cases,
    deaths, cost H A B, stay H A B (one cache line a cell: the rows hit cells at random);
    ``limbs`` (m, 10) the cost's and the stay's limbs. ``bad`` (2): the first row whose cost,
    and whose stay, cannot be summed exactly (-1 none; its other parts are added). A position
    outside its table (a corrupt dictionary column) raises ValueError, never reads beyond it."""
    cdef Py_ssize_t i, start, end, rows = status.shape[0], m = 0, corrupt = -1
    cdef int64_t h, d, g, u, c
    cdef int64_t cell[BLOCK]
    cdef double x, t
    cdef int64_t b[2]
    cdef bint by_position = discharge.shape[0] > 0
    _check(hot, limbs)
    cdef int64_t* hp = &hot[0, 0]
    cdef int64_t* lp = &limbs[0, 0]
    b[0] = bad[0]
    b[1] = bad[1]
    with nogil:
        start = 0
        while start < rows:
            end = start + BLOCK if start + BLOCK < rows else rows
            for i in range(start, end):  # the cells of a block of rows, each prefetched
                cell[i - start] = -1
                if not (<size_t>status[i] < <size_t>grouped.shape[0]):
                    corrupt = i
                    break
                if not grouped[status[i]]:
                    excluded[0] += 1
                    continue
                x = cost[i]
                if x != x:
                    excluded[1] += 1
                    continue
                t = los[i]
                if not (t >= 0):
                    excluded[2] += 1
                    continue
                if not (<size_t>hospital[i] < <size_t>hospital_id.shape[0] and <size_t>drg[i] < <size_t>drg_id.shape[0]
                        and (not by_department or <size_t>department[i] < <size_t>department_id.shape[0])
                        and <size_t>(discharge[i] if by_position else i) < <size_t>dead_of.shape[0]):
                    corrupt = i
                    break
                h = hospital_id[hospital[i]]
                d = department_id[department[i]] if by_department else 0
                g = drg_id[drg[i]]
                u = units[h * unit_b + d] if h < unit_a and d < unit_b else -1
                c = cells[u * cell_b + g] if 0 <= u < cell_a and g < cell_b else -1
                if c < 0:
                    missed[m] = i
                    m += 1
                    continue
                cell[i - start] = c
                __builtin_prefetch(hp + 8 * c, 1, 1)
            if corrupt >= 0:
                break
            for i in range(start, end):  # then added, the cache lines on their way
                c = cell[i - start]
                if c >= 0:
                    _case(hp + 8 * c, lp + 2 * LIMBS * c, i, cost[i], los[i],
                          dead_of[discharge[i]] if by_position else dead_of[i], b)
            start = end
    if corrupt >= 0:
        raise ValueError(f"row {corrupt}: a dictionary index outside its dictionary (a corrupt column)")
    bad[0] = b[0]
    bad[1] = b[1]
    return m


@cython.boundscheck(False)
@cython.wraparound(False)
def add_rows(const int64_t[::1] rows, const int64_t[::1] cell, const double[::1] cost, const double[::1] los,
             const uint8_t[::1] dead_of, const int32_t[::1] discharge, int64_t[:, ::1] hot, int64_t[:, ::1] limbs,
             int64_t[::1] bad):
    """Add rows ``rows`` (kept, e.g. ``scan``'s missed rows) into the cells ``cell`` (one a row);
    ``bad`` as for ``scan``."""
    cdef Py_ssize_t k, i
    cdef int64_t c
    cdef int64_t b[2]
    cdef bint by_position = discharge.shape[0] > 0
    _check(hot, limbs)
    cdef int64_t* hp = &hot[0, 0]
    cdef int64_t* lp = &limbs[0, 0]
    b[0] = bad[0]
    b[1] = bad[1]
    with nogil:
        for k in range(rows.shape[0]):
            i = rows[k]
            c = cell[k]
            _case(hp + 8 * c, lp + 2 * LIMBS * c, i, cost[i], los[i],
                  dead_of[discharge[i]] if by_position else dead_of[i], b)
    bad[0] = b[0]
    bad[1] = b[1]

# cython: language_level=3
"""GB18030 (GBK, GB2312) to UTF-8 for the values of one text column, without the GIL.

Python's codec decodes about 50 MB/s; this loop does a table lookup per character. The tables
are built once from Python's own codec (``grouper.io.text``), so both read every byte alike;
a byte sequence the codec refuses is refused here too (the caller then lets the codec raise
its error)."""

import numpy as np

cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline Py_ssize_t _put(uint8_t* out, Py_ssize_t o, uint32_t cp) noexcept nogil:
    if cp < 0x80:
        out[o] = <uint8_t>cp
        return o + 1
    if cp < 0x800:
        out[o] = <uint8_t>(0xC0 | (cp >> 6))
        out[o + 1] = <uint8_t>(0x80 | (cp & 0x3F))
        return o + 2
    if cp < 0x10000:
        out[o] = <uint8_t>(0xE0 | (cp >> 12))
        out[o + 1] = <uint8_t>(0x80 | ((cp >> 6) & 0x3F))
        out[o + 2] = <uint8_t>(0x80 | (cp & 0x3F))
        return o + 3
    out[o] = <uint8_t>(0xF0 | (cp >> 18))
    out[o + 1] = <uint8_t>(0x80 | ((cp >> 12) & 0x3F))
    out[o + 2] = <uint8_t>(0x80 | ((cp >> 6) & 0x3F))
    out[o + 3] = <uint8_t>(0x80 | (cp & 0x3F))
    return o + 4


@cython.boundscheck(False)
@cython.wraparound(False)
def to_utf8(const uint8_t[::1] data, const int64_t[::1] offsets, const uint32_t[::1] two,
            const uint32_t[::1] four):
    """(UTF-8 bytes, int64 offsets) of the values ``data[offsets[i]:offsets[i+1]]``, or
    (None, byte position) at the first byte that is not GB18030. ``two``: code point of each
    two-byte code, index (lead - 0x81) * 191 + (trail - 0x40), 0 if undefined; ``four``: of
    each four-byte code of the BMP by its linear index; supplementary planes are computed."""
    cdef Py_ssize_t n = offsets.shape[0] - 1
    cdef Py_ssize_t i, p, end, o = 0
    cdef int64_t lin
    cdef uint32_t cp, b1, b2, b3, b4
    cdef Py_ssize_t bad = -1
    size = (offsets[n] - offsets[0]) * 3 // 2 + 4
    out_arr = np.empty(size, np.uint8)
    new_arr = np.empty(n + 1, np.int64)
    cdef uint8_t[::1] out = out_arr
    cdef int64_t[::1] new = new_arr
    with nogil:
        new[0] = 0
        for i in range(n):
            p = offsets[i]
            end = offsets[i + 1]
            while p < end:
                b1 = data[p]
                if b1 < 0x80:
                    out[o] = <uint8_t>b1
                    o += 1
                    p += 1
                    continue
                if b1 == 0x80 or b1 == 0xFF or p + 1 >= end:
                    bad = p
                    break
                b2 = data[p + 1]
                if 0x30 <= b2 <= 0x39:
                    if p + 3 >= end:
                        bad = p
                        break
                    b3 = data[p + 2]
                    b4 = data[p + 3]
                    if b3 < 0x81 or b3 > 0xFE or b4 < 0x30 or b4 > 0x39:
                        bad = p
                        break
                    lin = (((<int64_t>(b1 - 0x81) * 10 + (b2 - 0x30)) * 126 + (b3 - 0x81)) * 10 + (b4 - 0x30))
                    if lin < four.shape[0]:
                        cp = four[lin]
                    elif b1 >= 0x90 and b1 <= 0xE3:
                        lin = lin - 189000  # linear index of 0x90308130
                        cp = <uint32_t>(0x10000 + lin) if lin <= 0xFFFFF else 0
                    else:
                        cp = 0
                    if cp == 0:
                        bad = p
                        break
                    o = _put(&out[0], o, cp)
                    p += 4
                    continue
                if b2 < 0x40 or b2 == 0x7F or b2 == 0xFF:
                    bad = p
                    break
                cp = two[(b1 - 0x81) * 191 + (b2 - 0x40)]
                if cp == 0:
                    bad = p
                    break
                o = _put(&out[0], o, cp)
                p += 2
            if bad >= 0:
                break
            new[i + 1] = o
    if bad >= 0:
        return None, bad
    return out_arr[:o], new_arr

# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""String -> id lookup for code columns, read straight from Arrow string buffers.

Private module (``grouper.engine._codes``). A ``CodeTable`` is an open-addressing hash of a scheme's
code dictionary, built once. ``map_utf8`` maps an Arrow utf8 / large_utf8 array (its validity,
offsets and data buffers) to int32 ids without the GIL: surrounding whitespace trimmed, unknown
codes -1, null or blank -2, and each value's offsets checked against the buffers (a corrupt
array raises ValueError, never reads out of bounds). Building the table once matters: ``pyarrow.compute.index_in``
rebuilds its hash of the 35k-code dictionary on every call, about 1 ms per batch.

The other direction too, one pass over a batch each: ids gathered through a dictionary's ids
(``take_ids``), the kernel's result ids as output dictionary indices with their validity bitmap
(``dictionary_indices``), the reason column's keys in first-appearance order
(``first_appearance``) and dictionary indices counted (``count_indices``).
"""

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp
from _records cimport ID_EMPTY, ID_UNKNOWN  # the kernel's code ids (one source)

import numpy as np

ctypedef fused offset_t:
    int32_t
    int64_t



cdef inline uint64_t fnv1a(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef uint64_t h = 14695981039346656037ULL
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ p[i]) * 1099511628211ULL
    return h


cdef inline bint is_space_at(const uint8_t* p, Py_ssize_t n, Py_ssize_t i, Py_ssize_t* width) noexcept nogil:
    """Whitespace trimmed from codes: ASCII blanks, NBSP (C2 A0), ideographic space (E3 80 80)."""
    cdef uint8_t b = p[i]
    if b == 32 or (9 <= b <= 13):
        width[0] = 1
        return True
    if b == 0xC2 and i + 1 < n and p[i + 1] == 0xA0:
        width[0] = 2
        return True
    if b == 0xE3 and i + 2 < n and p[i + 1] == 0x80 and p[i + 2] == 0x80:
        width[0] = 3
        return True
    return False


cdef inline bint is_space_before(const uint8_t* p, Py_ssize_t start, Py_ssize_t end, Py_ssize_t* width) noexcept nogil:
    cdef uint8_t b = p[end - 1]
    if b == 32 or (9 <= b <= 13):
        width[0] = 1
        return True
    if b == 0xA0 and end - 2 >= start and p[end - 2] == 0xC2:
        width[0] = 2
        return True
    if b == 0x80 and end - 3 >= start and p[end - 2] == 0x80 and p[end - 3] == 0xE3:
        width[0] = 3
        return True
    return False


cdef class CodeTable:
    """Hash of a code dictionary: code string -> its position in the list given."""

    cdef bytes blob
    cdef const uint8_t* data
    cdef int64_t[::1] starts
    cdef int32_t[::1] slots
    cdef uint64_t mask
    cdef readonly int32_t size

    def __init__(self, codes):
        # one join and one encode, the ends by a typed loop: building the two tables of a
        # national scheme (47 k codes) in Python objects took 8-10 ms of a 1-row `drg group`
        cdef list texts = list(codes)
        cdef Py_ssize_t n = len(texts), j
        cdef int64_t end = 0
        text = "".join(texts)
        self.blob = text.encode("utf-8")
        self.size = n
        self.data = <const uint8_t*> self.blob
        starts = np.zeros(n + 1, dtype=np.int64)
        cdef int64_t[::1] ends = starts
        ascii = len(self.blob) == len(text)  # then each code's bytes are its characters
        for j in range(n):
            end += len(<str> texts[j]) if ascii else len((<str> texts[j]).encode("utf-8"))
            ends[j + 1] = end
        self.starts = starts
        cap = 16
        while cap < 2 * max(1, n):
            cap *= 2
        self.slots = np.full(cap, -1, dtype=np.int32)
        self.mask = cap - 1
        cdef int32_t i
        for i in range(self.size):
            if self._find(self.data + self.starts[i], self.starts[i + 1] - self.starts[i], True, i) != i:
                raise ValueError(f"duplicate code {codes[i]!r}")

    cdef inline int32_t _find(self, const uint8_t* p, Py_ssize_t n, bint insert, int32_t value) noexcept nogil:
        cdef uint64_t h = fnv1a(p, n) & self.mask
        cdef int32_t k
        cdef int64_t s, ln
        while True:
            k = self.slots[h]
            if k < 0:
                if insert:
                    self.slots[h] = value
                    return value
                return ID_UNKNOWN
            s = self.starts[k]
            ln = self.starts[k + 1] - s
            if ln == n and memcmp(self.data + s, p, n) == 0:
                return k
            h = (h + 1) & self.mask

    cdef inline int32_t lookup(self, const uint8_t* p, Py_ssize_t n) noexcept nogil:
        cdef Py_ssize_t start = 0, end = n, w = 0
        while start < end and is_space_at(p, end, start, &w):
            start += w
        while end > start and is_space_before(p, start, end, &w):
            end -= w
        if end == start:
            return ID_EMPTY
        return self._find(p + start, end - start, False, 0)

    def get(self, str code):
        """Id of one code (same trimming rules); for single-case callers and tests."""
        b = code.encode("utf-8")
        return self.lookup(<const uint8_t*> b, len(b))

    def map_utf8(self, validity, offsets, data, Py_ssize_t offset, Py_ssize_t length, bint large):
        """ids (int32[length]) for an Arrow utf8 (``large`` False) or large_utf8 array given by
        its buffers and slice offset.

        The buffers are not trusted: an array from a file or another library may be corrupt
        (a crafted IPC file, a C-stream producer's bug). Every value's offsets are checked
        (0 <= start <= end <= data length) in the same pass, so a bad array raises ValueError
        instead of reading outside its buffers; the check costs two comparisons per value."""
        cdef int32_t[::1] out = np.empty(length, dtype=np.int32)
        cdef const uint8_t[::1] vbits
        cdef const uint8_t[::1] chars
        cdef const uint8_t* vp = NULL
        cdef const uint8_t* cp
        cdef uint8_t empty_byte = 0
        cdef int64_t nbytes = 0
        cdef Py_ssize_t bad
        cdef const int32_t[::1] off32
        cdef const int64_t[::1] off64
        if offset < 0 or length < 0:
            raise ValueError("negative array offset or length")
        if length == 0:
            return np.asarray(out)
        if validity is not None:
            vbits = memoryview(validity).cast("B")
            if vbits.shape[0] < (offset + length + 7) // 8:
                raise ValueError("validity bitmap too short for the array")
            vp = &vbits[0]
        if data is not None and len(data):
            chars = memoryview(data).cast("B")
            cp = &chars[0]
            nbytes = chars.shape[0]
        else:
            cp = &empty_byte
        if offsets is None:
            raise ValueError("string array without an offsets buffer")
        if large:
            off64 = np.frombuffer(offsets, dtype=np.int64)
            if off64.shape[0] < offset + length + 1:
                raise ValueError("offsets buffer too short")
            bad = self._map(off64, vp, cp, nbytes, offset, out)
        else:
            off32 = np.frombuffer(offsets, dtype=np.int32)
            if off32.shape[0] < offset + length + 1:
                raise ValueError("offsets buffer too short")
            bad = self._map(off32, vp, cp, nbytes, offset, out)
        if bad >= 0:
            raise ValueError(f"string offsets of value {bad} are out of order or outside the data buffer")
        return np.asarray(out)

    cdef Py_ssize_t _map(self, const offset_t[::1] offs, const uint8_t* vp, const uint8_t* cp, int64_t nbytes,
                         Py_ssize_t offset, int32_t[::1] out) noexcept:
        """The lookup loop, for 32- and 64-bit string offsets alike. Returns the index of the
        first value whose offsets are not 0 <= start <= end <= nbytes (-1 when all are), and
        looks nothing up from there on. Null values are not read, so their offsets are not checked."""
        cdef Py_ssize_t i, j
        cdef int64_t a, b
        cdef Py_ssize_t bad = -1
        with nogil:
            for i in range(out.shape[0]):
                j = offset + i
                if vp != NULL and not ((vp[j >> 3] >> (j & 7)) & 1):
                    out[i] = ID_EMPTY
                else:
                    a = offs[j]
                    b = offs[j + 1]
                    if a < 0 or b < a or b > nbytes:
                        bad = i
                        break
                    out[i] = self.lookup(cp + a, b - a)
        return bad

    def __reduce__(self):
        codes = [self.blob[self.starts[i]:self.starts[i + 1]].decode("utf-8") for i in range(self.size)]
        return (CodeTable, (codes,))


# ----------------------------------------------------------------------------- ids -> output columns
# The other direction: the kernel's per-row result ids become the int32 indices (and validity
# bitmap) of dictionary-encoded output columns, in one pass over the batch, without the int8 ->
# int64 index casts of ``np.take`` or the bool-mask -> bitmap conversion of ``pa.array(mask=)``.

ctypedef fused index_t:
    int8_t
    uint8_t
    int32_t


def take_ids(const int32_t[::1] table, const index_t[::1] idx):
    """int32 ``table[idx]``: a code column's ids from its dictionary's ids and the dictionary
    indices. Returns (ids, -1) when every index is a position in ``table``, else (None, the row
    of the first that is not); a negative index is never wrapped."""
    cdef Py_ssize_t i, n = idx.shape[0], bad = -1
    cdef Py_ssize_t size = table.shape[0]
    cdef int32_t[::1] out = np.empty(n, dtype=np.int32)
    cdef Py_ssize_t k
    with nogil:
        for i in range(n):
            k = idx[i]
            if k < 0 or k >= size:
                bad = i
                break
            out[i] = table[k]
    if bad >= 0:
        return None, bad
    return np.asarray(out), -1


def dictionary_indices(const int32_t[::1] pos, const index_t[::1] idx, int null):
    """(indices int32[n], validity bitmap or None, null count) of an output column whose row
    ``i`` is the dictionary value at ``pos[idx[i]]``, null where ``idx[i]`` is negative or equals
    ``null`` (pass -1 for none beyond the negatives); a null row's index is 0. An index beyond
    ``pos`` raises ValueError (the kernel's ids are positions in its lists)."""
    cdef Py_ssize_t i, n = idx.shape[0], nulls = 0, bad = -1
    cdef Py_ssize_t size = pos.shape[0]
    cdef int32_t[::1] out = np.empty(n, dtype=np.int32)
    cdef uint8_t[::1] bits = np.empty((n + 7) // 8, dtype=np.uint8)
    cdef Py_ssize_t k
    cdef uint8_t byte = 0
    with nogil:
        for i in range(n):
            k = idx[i]
            if k < 0 or k == null:
                out[i] = 0
                nulls += 1
            elif k >= size:
                bad = i
                break
            else:
                out[i] = pos[k]
                byte |= <uint8_t> (1 << (i & 7))
            if (i & 7) == 7:  # a byte of the bitmap at a time
                bits[i >> 3] = byte
                byte = 0
        if bad < 0 and n & 7:
            bits[n >> 3] = byte
    if bad >= 0:
        raise ValueError(f"result id {idx[bad]} of row {bad} is beyond the {size} values of its column")
    return np.asarray(out), (np.asarray(bits) if nulls else None), nulls


def first_appearance(const int32_t[::1] flags, const uint8_t[::1] reason):
    """The ``reason`` column's encoding: each row's key ``reason << 32 | flags`` (uint32 bits),
    its distinct keys in order of first appearance (a list of ints) and each row's position
    among them (int32[n]), with the validity bitmap (null where the key is 0: grouped cleanly)
    and null count. The same dictionary and indices as Arrow's ``dictionary_encode`` of the
    keys; an open-addressing hash, so a batch whose every row is flagged costs no sort."""
    cdef Py_ssize_t i, n = flags.shape[0], nulls = 0
    cdef int32_t[::1] out = np.empty(n, dtype=np.int32)
    cdef uint8_t[::1] bits = np.empty((n + 7) // 8, dtype=np.uint8)
    cdef uint8_t byte = 0
    cdef Py_ssize_t cap = 64
    while cap < 2 * n:
        cap *= 2
    cdef int32_t[::1] slots = np.full(cap, -1, dtype=np.int32)
    cdef uint64_t[::1] keys = np.empty(max(n, 1), dtype=np.uint64)
    cdef uint64_t mask = cap - 1, key, h
    cdef int32_t distinct = 0, s
    with nogil:
        for i in range(n):
            key = (<uint64_t> reason[i] << 32) | <uint32_t> flags[i]
            h = (key * 11400714819323198485ULL) >> 17
            while True:
                h &= mask
                s = slots[h]
                if s < 0:
                    slots[h] = distinct
                    keys[distinct] = key
                    s = distinct
                    distinct += 1
                    break
                if keys[s] == key:
                    break
                h += 1
            out[i] = s
            if key == 0:
                nulls += 1
            else:
                byte |= <uint8_t> (1 << (i & 7))
            if (i & 7) == 7:
                bits[i >> 3] = byte
                byte = 0
        if n & 7:
            bits[n >> 3] = byte
    return (np.asarray(keys[:distinct]).tolist(), np.asarray(out), np.asarray(bits) if nulls else None, nulls)


def count_indices(const int32_t[::1] idx, Py_ssize_t size):
    """int64[size]: how many rows hold each dictionary index (``np.bincount`` without its cast
    of the indices to int64). An index outside 0..size-1 raises ValueError."""
    cdef int64_t[::1] out = np.zeros(size, dtype=np.int64)
    cdef Py_ssize_t i, n = idx.shape[0], bad = -1
    cdef int32_t k
    with nogil:
        for i in range(n):
            k = idx[i]
            if k < 0 or k >= size:
                bad = i
                break
            out[k] += 1
    if bad >= 0:
        raise ValueError(f"dictionary index {idx[bad]} of row {bad} outside its {size} values")
    return np.asarray(out)

"""Dictionary codes by hashing: dense codes of string or integer ids in order of first
appearance, the sorted order of the distinct ids, and the distinct strings rebuilt.

Every distinct id is kept as its *key*: the first 16 bytes as two big-endian words (zero
padded), the byte length and, for ids longer than 16 bytes, the position of the remaining
bytes in a tail store. Equal keys mean equal ids, so the hash table compares keys, not row
bytes, and keys order exactly as the bytes do (lexicographic, a prefix before the longer id).
Integer ids use the first word only (the value with its sign bit flipped, so that unsigned
order is numeric order).

The table and the key arrays are passed in and out, so one table can code a column chunk by
chunk (Arrow chunks are coded where they lie, never concatenated). ``string_keys`` gives the
key of every row of a string array (``kernels.grouping`` groups rows by it). All hash
arithmetic stays below 2**64, so the kernels also run as plain Python
(``NUMBA_DISABLE_JIT=1``) without overflow warnings.
"""

import numpy as np

from rxrisk.kernels._jit import ngjit

# key columns
K_HI = 0  # bytes 0..7, big-endian
K_LO = 1  # bytes 8..15, big-endian
K_LEN = 2  # length in bytes
K_TAIL = 3  # start of bytes 16.. in the tail store

SHORT = 16  # ids up to this many bytes live entirely in the key words

_M32 = 0xFFFFFFFF
_C1 = 0x9E3779B1
_C2 = 0x85EBCA77
_C3 = 0xC2B2AE3D
_C4 = 0x27D4EB2F
_C5 = 0x165667B1


@ngjit
def _fold(x):
    """Mix a 64-bit value into 32 bits (products of 32-bit halves stay below 2**64)."""
    m = np.uint64(_M32)
    a = (x & m) * np.uint64(_C1) ^ (x >> np.uint64(32)) * np.uint64(_C2)
    return (a ^ (a >> np.uint64(31))) & m


@ngjit
def key_hash(hi, lo, length):
    """32-bit hash of a key (as uint64)."""
    m = np.uint64(_M32)
    h = _fold(hi) * np.uint64(_C3) ^ _fold(lo) * np.uint64(_C4) ^ (length & m) * np.uint64(_C5)
    h = (h ^ (h >> np.uint64(32))) & m
    h = h * np.uint64(_C1)
    return (h ^ (h >> np.uint64(29))) & m


@ngjit
def _byte(data, u):
    """``data[u]`` as uint64; unsigned indexing (no negative-index wraparound) lets the
    compiler merge neighbouring byte loads."""
    return np.uint64(data[u])


@ngjit
def key_word(data, s, e):
    """Bytes ``s .. e - 1`` (at most 8) as a big-endian word, zero padded on the right."""
    n = e - s
    u = np.uint64(s) if n > 0 else np.uint64(0)
    one = np.uint64(1)
    if n >= 8:
        # positions as uint64 values, not literals: one compile of ``_byte``
        return (
            (_byte(data, u) << np.uint64(56))
            | (_byte(data, u + one) << np.uint64(48))
            | (_byte(data, u + np.uint64(2)) << np.uint64(40))
            | (_byte(data, u + np.uint64(3)) << np.uint64(32))
            | (_byte(data, u + np.uint64(4)) << np.uint64(24))
            | (_byte(data, u + np.uint64(5)) << np.uint64(16))
            | (_byte(data, u + np.uint64(6)) << np.uint64(8))
            | _byte(data, u + np.uint64(7))
        )
    w = np.uint64(0)
    for j in range(n):
        w |= _byte(data, u + np.uint64(j)) << np.uint64(56 - 8 * j)
    return w


@ngjit
def string_keys(offsets, data, hi, lo, length, n_chunks):
    """Key of every row of one string array without nulls (``hi``, ``lo``, ``length`` are
    outputs, one per row). Returns the longest length.

    A plain loop: a few nanoseconds per row are not worth threads, and a ``prange`` here
    cost a second of compile time on the first run. ``n_chunks`` is unused (kept for the
    callers)."""
    n = hi.shape[0]
    top = 0
    for i in range(n):
        s = np.int64(offsets[i])
        e = np.int64(offsets[i + 1])
        hi[i] = key_word(data, s, e)
        lo[i] = key_word(data, s + 8, e)
        length[i] = np.uint64(e - s)
        if e - s > top:
            top = e - s
    return top


@ngjit
def _tail_equal(data, s, n, tails, t):
    for j in range(n):
        if data[s + j] != tails[t + j]:
            return False
    return True


@ngjit
def _grown(table, keys, nd):
    """A table of twice the size holding codes ``0 .. nd - 1``."""
    size = table.shape[0] * 2
    mask = np.uint64(size - 1)
    out = np.full(size, -1, np.int32)
    for c in range(nd):
        slot = np.intp(key_hash(keys[c, K_HI], keys[c, K_LO], keys[c, K_LEN]) & mask)
        while out[slot] >= 0:
            slot = np.intp((np.uint64(slot) + np.uint64(1)) & mask)
        out[slot] = c
    return out


@ngjit
def code_strings(offsets, data, null, codes, out0, table, keys, tails, state):
    """Code the rows of one string chunk; return the (possibly grown) table.

    Parameters
    ----------
    offsets : int32 or int64 array (n + 1), data : uint8 array
        Arrow string buffers of the chunk (offsets index ``data`` directly).
    null : bool array (n)
    codes : int32 array, output: ``codes[out0 + i]`` is row i's code, -1 for null.
    table : int32 array, power-of-two size, -1 for empty slots.
    keys : uint64 array (capacity, 4), the key of each code (see module doc).
    tails : uint8 array, bytes 16.. of the long distinct ids.
    state : int64 array [number of codes, bytes used in ``tails``], updated.
    """
    n = null.shape[0]
    nd = state[0]
    used = state[1]
    mask = np.uint64(table.shape[0] - 1)
    for i in range(n):
        if null[i]:
            codes[out0 + i] = -1
            continue
        s = offsets[i]
        e = offsets[i + 1]
        length = np.uint64(e - s)
        hi = key_word(data, np.int64(s), np.int64(e))
        lo = key_word(data, np.int64(s + 8), np.int64(e))
        slot = np.intp(key_hash(hi, lo, length) & mask)
        while True:
            c = table[slot]
            if c < 0:
                table[slot] = nd
                keys[nd, K_HI] = hi
                keys[nd, K_LO] = lo
                keys[nd, K_LEN] = length
                keys[nd, K_TAIL] = np.uint64(used)
                if e - s > SHORT:
                    for j in range(s + SHORT, e):
                        tails[used] = data[j]
                        used += 1
                codes[out0 + i] = nd
                nd += 1
                if 2 * nd > table.shape[0]:
                    table = _grown(table, keys, nd)
                    mask = np.uint64(table.shape[0] - 1)
                break
            if keys[c, K_HI] == hi and keys[c, K_LO] == lo and keys[c, K_LEN] == length:
                if e - s <= SHORT or _tail_equal(
                    data, s + SHORT, e - s - SHORT, tails, np.intp(keys[c, K_TAIL])
                ):
                    codes[out0 + i] = c
                    break
            slot = np.intp((np.uint64(slot) + np.uint64(1)) & mask)
    state[0] = nd
    state[1] = used
    return table


@ngjit
def code_integers(values, null, codes, out0, table, keys, state):
    """Code the rows of one int64 chunk; return the (possibly grown) table.

    Same arrays as :func:`code_strings`; the key is the value with its sign bit flipped.
    """
    n = null.shape[0]
    nd = state[0]
    mask = np.uint64(table.shape[0] - 1)
    sign = np.uint64(1) << np.uint64(63)
    zero = np.uint64(0)
    for i in range(n):
        if null[i]:
            codes[out0 + i] = -1
            continue
        hi = np.uint64(values[i]) ^ sign
        slot = np.intp(key_hash(hi, zero, zero) & mask)
        while True:
            c = table[slot]
            if c < 0:
                table[slot] = nd
                keys[nd, K_HI] = hi
                keys[nd, K_LO] = zero
                keys[nd, K_LEN] = zero
                keys[nd, K_TAIL] = zero
                codes[out0 + i] = nd
                nd += 1
                if 2 * nd > table.shape[0]:
                    table = _grown(table, keys, nd)
                    mask = np.uint64(table.shape[0] - 1)
                break
            if keys[c, K_HI] == hi:
                codes[out0 + i] = c
                break
            slot = np.intp((np.uint64(slot) + np.uint64(1)) & mask)
    state[0] = nd
    return table


@ngjit
def packed_sort_keys(keys, nd):
    """One uint64 per key that sorts like the key, with the code in its low bits.

    Only the nibbles that differ between keys are kept (in order of significance: the high
    word, the low word, then ``min(length, 17)``), followed by the code. Returns an empty
    array when they do not fit in 64 bits (the caller then sorts another way), and the
    number of code bits.
    """
    code_bits = 1
    while (1 << code_bits) < nd:
        code_bits += 1
    if nd == 0:
        return np.zeros(0, np.uint64), code_bits
    first_hi = keys[0, K_HI]
    first_lo = keys[0, K_LO]
    first_len = min(keys[0, K_LEN], np.uint64(SHORT + 1))
    vary_hi = np.uint64(0)
    vary_lo = np.uint64(0)
    vary_len = np.uint64(0)
    for c in range(nd):
        vary_hi |= keys[c, K_HI] ^ first_hi
        vary_lo |= keys[c, K_LO] ^ first_lo
        vary_len |= min(keys[c, K_LEN], np.uint64(SHORT + 1)) ^ first_len
    # fields: (word 0 = hi, 1 = lo, 2 = length), shift, width
    field_word = np.zeros(34, np.intp)
    field_shift = np.zeros(34, np.uint64)
    field_width = np.zeros(34, np.uint64)
    nf = 0
    bits = 0
    for w in range(2):
        vary = vary_hi if w == 0 else vary_lo
        for nib in range(15, -1, -1):
            if (vary >> np.uint64(4 * nib)) & np.uint64(15):
                field_word[nf] = w
                field_shift[nf] = np.uint64(4 * nib)
                field_width[nf] = np.uint64(4)
                nf += 1
                bits += 4
    if vary_len:
        field_word[nf] = 2
        field_shift[nf] = np.uint64(0)
        field_width[nf] = np.uint64(5)
        nf += 1
        bits += 5
    if bits + code_bits > 64:
        return np.zeros(0, np.uint64), code_bits
    out = np.empty(nd, np.uint64)
    for c in range(nd):
        p = np.uint64(0)
        for f in range(nf):
            w = field_word[f]
            if w == 0:
                v = keys[c, K_HI]
            elif w == 1:
                v = keys[c, K_LO]
            else:
                v = min(keys[c, K_LEN], np.uint64(SHORT + 1))
            width = field_width[f]
            p = (p << width) | ((v >> field_shift[f]) & ((np.uint64(1) << width) - np.uint64(1)))
        out[c] = (p << np.uint64(code_bits)) | np.uint64(c)
    return out, code_bits


@ngjit
def _long_less(keys, tails, a, b):
    """Whether long id ``a`` sorts before long id ``b`` (same first 16 bytes)."""
    la = np.intp(keys[a, K_LEN]) - SHORT
    lb = np.intp(keys[b, K_LEN]) - SHORT
    ta = np.intp(keys[a, K_TAIL])
    tb = np.intp(keys[b, K_TAIL])
    for j in range(min(la, lb)):
        x = tails[ta + j]
        y = tails[tb + j]
        if x != y:
            return x < y
    return la < lb


@ngjit
def order_long_ids(keys, tails, order):
    """Sort, in place, the runs of ``order`` (sorted by the first 16 bytes and
    ``min(length, 17)``) whose ids are longer than 16 bytes and share those bytes."""
    n = order.shape[0]
    g0 = 0
    while g0 < n:
        a = order[g0]
        g1 = g0 + 1
        if keys[a, K_LEN] > SHORT:
            while (
                g1 < n
                and keys[order[g1], K_LEN] > SHORT
                and keys[order[g1], K_HI] == keys[a, K_HI]
                and keys[order[g1], K_LO] == keys[a, K_LO]
            ):
                g1 += 1
            # insertion sort of the run (stable; runs are short for real ids)
            for p in range(g0 + 1, g1):
                x = order[p]
                q = p - 1
                while q >= g0 and _long_less(keys, tails, x, order[q]):
                    order[q + 1] = order[q]
                    q -= 1
                order[q + 1] = x
        g0 = g1


@ngjit
def key_strings(keys, tails, order):
    """The ids of ``order`` rebuilt as Arrow string buffers: (offsets int64, data uint8).

    ``keys`` needs the ``K_TAIL`` column only when an id is longer than ``SHORT`` bytes."""
    n = order.shape[0]
    offsets = np.empty(n + 1, np.int64)
    total = 0
    offsets[0] = 0
    for p in range(n):
        total += np.intp(keys[order[p], K_LEN])
        offsets[p + 1] = total
    data = np.empty(total, np.uint8)
    for p in range(n):
        c = order[p]
        s = offsets[p]
        length = np.intp(keys[c, K_LEN])
        for j in range(min(length, SHORT)):
            w = keys[c, K_HI] if j < 8 else keys[c, K_LO]
            data[s + j] = np.uint8((w >> np.uint64(8 * (7 - j % 8))) & np.uint64(255))
        if length > SHORT:
            t = np.intp(keys[c, K_TAIL])
            for j in range(SHORT, length):
                data[s + j] = tails[t + j - SHORT]
    return offsets, data

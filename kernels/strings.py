"""Byte-level scans of Arrow string buffers: blank detection and claim-id matching.

Strings arrive as (offsets int64[n + 1], data uint8, null bool[n]); "trimmed" means without
surrounding space, tab, CR and LF (SPEC 1.1), and a trimmed-empty string counts as null.
"""

import numpy as np

from rxrisk.kernels._jit import ngjit

# Polynomial hash modulo an odd number below 2**54, in int64: h * 257 never overflows, so the
# same code runs compiled and as plain Python (NUMBA_DISABLE_JIT=1) without overflow warnings.
_HASH_MOD = (1 << 54) - 33


@ngjit
def _is_space(b):
    return b == 32 or b == 9 or b == 13 or b == 10


@ngjit
def trimmed_bounds(offsets, data, null, i):
    """Start and end (exclusive) of row ``i`` without surrounding whitespace; (0, 0) if null."""
    if null[i]:
        return 0, 0
    s = offsets[i]
    e = offsets[i + 1]
    while s < e and _is_space(data[s]):
        s += 1
    while e > s and _is_space(data[e - 1]):
        e -= 1
    return s, e


@ngjit
def blank_rows(offsets, data, null):
    """True where a row is null or only whitespace."""
    n = null.shape[0]
    out = np.empty(n, np.bool_)
    for i in range(n):
        s, e = trimmed_bounds(offsets, data, null, i)
        out[i] = e <= s
    return out


@ngjit
def _hash(data, s, e):
    h = np.int64(0)
    for j in range(s, e):
        h = (h * np.int64(257) + np.int64(data[j]) + np.int64(1)) % np.int64(_HASH_MOD)
    return h


@ngjit
def _same(data, s1, e1, s2, e2):
    if e1 - s1 != e2 - s2:
        return False
    for j in range(e1 - s1):
        if data[s1 + j] != data[s2 + j]:
            return False
    return True


@ngjit
def hash_ids(offsets, data, null, include, row_bits):
    """Sort keys of the included rows: ``64 - row_bits`` bits of the trimmed id's hash above
    the row number in the low ``row_bits`` bits; plus the trimmed bounds of every row.

    Sorting the keys groups equal ids together, in input order within a group.
    """
    n = null.shape[0]
    starts = np.zeros(n, np.int64)
    ends = np.zeros(n, np.int64)
    count = 0
    for i in range(n):
        s, e = trimmed_bounds(offsets, data, null, i)
        starts[i] = s
        ends[i] = e
        if include[i] and e > s:
            count += 1
    keys = np.empty(count, np.uint64)
    shift = np.uint64(row_bits)
    # keep the hash bits that fit above the row number (all of them when row_bits <= 10)
    hash_mask = np.int64((1 << (64 - row_bits)) - 1) if row_bits > 10 else np.int64(-1)
    k = 0
    for i in range(n):
        if include[i] and ends[i] > starts[i]:
            h = _hash(data, starts[i], ends[i]) & hash_mask
            keys[k] = (np.uint64(h) << shift) | np.uint64(i)
            k += 1
    return keys, starts, ends


@ngjit
def match_sorted_ids(keys, row_bits, starts, ends, data, is_reversal, is_candidate):
    """Reversal matching and first-occurrence de-duplication over sorted keys (SPEC 1.5).

    Within each run of equal hash bits the actual strings are compared, so hash collisions
    never merge different ids. Returns ``(reversed_, duplicate)`` bool arrays over all rows:
    ``reversed_`` marks candidates whose id equals a reversal's id; ``duplicate`` marks
    candidates, not reversed, whose id appeared on an earlier candidate row.
    """
    n = starts.shape[0]
    reversed_ = np.zeros(n, np.bool_)
    duplicate = np.zeros(n, np.bool_)
    m = keys.shape[0]
    row_mask = np.uint64((1 << row_bits) - 1)
    hash_mask = ~row_mask
    done = np.zeros(0, np.bool_)
    g0 = 0
    while g0 < m:
        g1 = g0 + 1
        hb = keys[g0] & hash_mask
        while g1 < m and (keys[g1] & hash_mask) == hb:
            g1 += 1
        size = g1 - g0
        if size == 1:
            g0 = g1
            continue
        if done.shape[0] < size:
            done = np.zeros(size, np.bool_)
        for a in range(size):
            done[a] = False
        # partition the run by actual string; rows come in input order
        for a in range(size):
            if done[a]:
                continue
            ra = np.int64(keys[g0 + a] & row_mask)
            has_reversal = False
            for b in range(a, size):
                rb = np.int64(keys[g0 + b] & row_mask)
                if not done[b] and _same(data, starts[ra], ends[ra], starts[rb], ends[rb]):
                    if is_reversal[rb]:
                        has_reversal = True
            first = True
            for b in range(a, size):
                rb = np.int64(keys[g0 + b] & row_mask)
                if done[b] or not _same(data, starts[ra], ends[ra], starts[rb], ends[rb]):
                    continue
                done[b] = True
                if not is_candidate[rb]:
                    continue
                if has_reversal:
                    reversed_[rb] = True
                elif first:
                    first = False
                else:
                    duplicate[rb] = True
        g0 = g1
    return reversed_, duplicate

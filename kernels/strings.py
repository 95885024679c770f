"""Byte-level scans of Arrow string buffers: blank detection and claim-id matching.

Strings arrive as (offsets int64[n + 1], data uint8, null bool[n]); "trimmed" means without
surrounding space, tab, CR and LF, and a trimmed-empty string counts as null.
"""

import numpy as np

from rxrisk.kernels._jit import ngjit

# Two polynomial hashes (different bases) modulo the Mersenne prime 2**31 - 1, joined into 62
# bits. Every product stays below 2**62, so the same code runs compiled and as plain Python
# (NUMBA_DISABLE_JIT=1) without overflow warnings; the reduction is two folds, not a division;
# and the low bits are as well spread as the high ones (a single polynomial hash of similar
# ids like "RX000000000123" collides far too often in its low bits).
_P = 2147483647  # 2**31 - 1
_B1 = 1000003
_B2 = 65599


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
    """True where a row is null or only whitespace (a plain loop: not worth threads)."""
    n = null.shape[0]
    out = np.empty(n, np.bool_)
    for i in range(n):
        s, e = trimmed_bounds(offsets, data, null, i)
        out[i] = e <= s
    return out


@ngjit
def _mod_p(x):
    """x mod 2**31 - 1 for 0 <= x < 2**62."""
    p = np.int64(_P)
    x = (x & p) + (x >> np.int64(31))
    x = (x & p) + (x >> np.int64(31))
    return x - p if x >= p else x


@ngjit
def _hash(data, s, e):
    h1 = np.int64(0)
    h2 = np.int64(0)
    for j in range(s, e):
        c = np.int64(data[j]) + np.int64(1)
        h1 = _mod_p(h1 * np.int64(_B1) + c)
        h2 = _mod_p(h2 * np.int64(_B2) + c)
    return (h1 << np.int64(31)) | h2


@ngjit
def _same(data, s1, e1, s2, e2):
    if e1 - s1 != e2 - s2:
        return False
    for j in range(e1 - s1):
        if data[s1 + j] != data[s2 + j]:
            return False
    return True


@ngjit
def hash_ids(offsets, data, null, include, row0, row_bits, keys):
    """Write the sort keys of one chunk's included rows into ``keys``, in row order.

    Key = ``64 - row_bits`` bits of the trimmed id's hash above the global row number
    ``row0 + i``; rows not included or with a blank id get no key. Sorting the keys groups
    equal ids together, in input order within a group. ``offsets`` index ``data`` directly
    (Arrow buffers, int32 or int64, no rebasing). Returns the number of keys written.
    """
    n = null.shape[0]
    shift = np.uint64(row_bits)
    # keep the hash bits that fit above the row number (all 62 of them when row_bits <= 2)
    hash_mask = np.int64((1 << (64 - row_bits)) - 1) if row_bits >= 2 else np.int64(-1)
    k = 0
    for i in range(n):
        if include[i]:
            s, e = trimmed_bounds(offsets, data, null, i)
            if e > s:
                h = _hash(data, s, e) & hash_mask
                keys[k] = (np.uint64(h) << shift) | np.uint64(row0 + i)
                k += 1
    return k


@ngjit
def collision_runs(keys, row_bits):
    """Runs of two or more keys with equal hash bits in sorted ``keys``.

    Returns
    -------
    rows : int64 array, the rows of those runs, run after run (input order within a run).
    run_start : int64 array, where each run starts in ``rows`` (plus the end).
    """
    m = keys.shape[0]
    row_mask = np.uint64((1 << row_bits) - 1)
    hash_mask = ~row_mask
    n_rows = 0
    n_runs = 0
    g0 = 0
    while g0 < m:
        g1 = g0 + 1
        while g1 < m and (keys[g1] & hash_mask) == (keys[g0] & hash_mask):
            g1 += 1
        if g1 - g0 > 1:
            n_rows += g1 - g0
            n_runs += 1
        g0 = g1
    rows = np.empty(n_rows, np.int64)
    run_start = np.empty(n_runs + 1, np.int64)
    k = 0
    r = 0
    g0 = 0
    while g0 < m:
        g1 = g0 + 1
        while g1 < m and (keys[g1] & hash_mask) == (keys[g0] & hash_mask):
            g1 += 1
        if g1 - g0 > 1:
            run_start[r] = k
            r += 1
            for j in range(g0, g1):
                rows[k] = np.int64(keys[j] & row_mask)
                k += 1
        g0 = g1
    run_start[n_runs] = n_rows
    return rows, run_start


@ngjit
def match_runs(run_start, offsets, data, null, is_reversal, is_candidate):
    """Reversal matching and first-occurrence de-duplication within hash runs.

    Arrays are local to the rows of the runs (``collision_runs``), in run order, input order
    within a run. Within a run the actual trimmed strings are compared, so hash collisions
    never merge different ids. Returns ``(reversed_, duplicate)``: ``reversed_`` marks
    candidates whose id equals a reversal's id; ``duplicate`` marks candidates, not
    reversed, whose id appeared on an earlier candidate row.
    """
    n = null.shape[0]
    reversed_ = np.zeros(n, np.bool_)
    duplicate = np.zeros(n, np.bool_)
    done = np.zeros(n, np.bool_)
    for r in range(run_start.shape[0] - 1):
        g0 = run_start[r]
        g1 = run_start[r + 1]
        for a in range(g0, g1):
            if done[a]:
                continue
            sa, ea = trimmed_bounds(offsets, data, null, a)
            has_reversal = False
            for b in range(a, g1):
                sb, eb = trimmed_bounds(offsets, data, null, b)
                if not done[b] and is_reversal[b] and _same(data, sa, ea, sb, eb):
                    has_reversal = True
            first = True
            for b in range(a, g1):
                sb, eb = trimmed_bounds(offsets, data, null, b)
                if done[b] or not _same(data, sa, ea, sb, eb):
                    continue
                done[b] = True
                if not is_candidate[b]:
                    continue
                if has_reversal:
                    reversed_[b] = True
                elif first:
                    first = False
                else:
                    duplicate[b] = True
    return reversed_, duplicate


@ngjit
def hash_strings(offsets, data, null, out):
    """Write into ``out`` the 62-bit hash of each row's trimmed string (the hash of
    :func:`hash_ids`, so equal ids hash alike whatever chunk or batch they come in); -1 for
    null or blank rows."""
    n = null.shape[0]
    for i in range(n):  # a plain loop: not worth threads
        s, e = trimmed_bounds(offsets, data, null, i)
        out[i] = _hash(data, s, e) if e > s else np.int64(-1)

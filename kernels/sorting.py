"""Parallel sort of uint64 keys: one radix pass on the top bits of the key range into
buckets (counted and scattered per chunk of the input), then every bucket sorted on its own.
Buckets are small enough to sort in cache, and both passes run over ``prange``."""

import numpy as np
from numba import prange

from rxrisk.kernels._jit import ngjit

_BUCKET_BITS = 12


@ngjit(parallel=True)
def sort_keys(keys, n_chunks):
    """Return a sorted copy of ``keys`` (uint64). ``n_chunks`` is a few per thread."""
    n = keys.shape[0]
    out = np.empty(n, np.uint64)
    if n == 0:
        return out
    lo = keys[0]
    hi = keys[0]
    for i in range(n):
        v = keys[i]
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    span = hi - lo
    width = 0
    while width < 64 and (span >> np.uint64(width)) > np.uint64(0):
        width += 1
    shift = np.uint64(width - _BUCKET_BITS if width > _BUCKET_BITS else 0)
    n_buckets = 1 << _BUCKET_BITS
    per_chunk = (n + n_chunks - 1) // n_chunks
    counts = np.zeros((n_chunks, n_buckets), np.int64)
    for c in prange(n_chunks):
        for i in range(c * per_chunk, min(n, (c + 1) * per_chunk)):
            counts[c, np.int64((keys[i] - lo) >> shift)] += 1
    starts = np.zeros((n_chunks, n_buckets), np.int64)
    bucket_start = np.zeros(n_buckets + 1, np.int64)
    pos = 0
    for b in range(n_buckets):
        bucket_start[b] = pos
        for c in range(n_chunks):
            starts[c, b] = pos
            pos += counts[c, b]
    bucket_start[n_buckets] = pos
    for c in prange(n_chunks):
        cursor = starts[c].copy()
        for i in range(c * per_chunk, min(n, (c + 1) * per_chunk)):
            b = np.int64((keys[i] - lo) >> shift)
            out[cursor[b]] = keys[i]
            cursor[b] += 1
    for b in prange(n_buckets):
        s = bucket_start[b]
        e = bucket_start[b + 1]
        if e - s > 1:
            out[s:e] = np.sort(out[s:e])
    return out

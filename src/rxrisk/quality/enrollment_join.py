"""Member-id lookups and span ordering for the enrollment inputs, vectorised for books of tens
of millions of members.

Integer ids are joined by one ``numpy.sort`` of packed 64-bit keys (id offset, a tag and a row
index): sorting plain integers is several times faster than an argsort or a hash table of that
size. Text ids, and integers whose range leaves no room for the row index, use Arrow's hash
lookup (``pyarrow.compute.index_in``); repeated text ids are found as the claims' repeated
claim ids are (:func:`rxrisk.ingest.validate.match_claim_ids`). Spans are ordered by one sort of packed (member, start,
end, product) keys when they fit 64 bits, else by ``numpy.lexsort``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.ingest.validate import match_claim_ids
from rxrisk.io.arrow import to_numpy
from rxrisk.kernels.measures_containers import OPEN_END

_ONE = np.uint64(1)


def _int_values(ids: pa.Array) -> np.ndarray | None:
    """A null-free integer array as int64 numpy (None for text or when nulls are present)."""
    if not pa.types.is_integer(ids.type) or ids.null_count:
        return None
    return to_numpy(ids.cast(pa.int64()), np.int64)


def _offsets(values: np.ndarray, low: int) -> np.ndarray:
    """``values - low`` as uint64 (exact: every value is at least ``low``)."""
    return values.view(np.uint64) - np.uint64(low % 2**64)


def _packed_plan(*arrays: np.ndarray) -> tuple[int, int, int] | None:
    """(lowest value, id bits, index bits) to pack ids with a tag bit and a row index into
    one uint64, or None when they do not fit."""
    filled = [a for a in arrays if len(a)]
    low = min(int(a.min()) for a in filled)
    high = max(int(a.max()) for a in filled)
    id_bits = (high - low).bit_length()
    index_bits = max(1, max(len(a) for a in arrays).bit_length())
    if id_bits + 1 + index_bits > 64:
        return None
    return low, id_bits, index_bits


def lookup(values: pa.Array, keys: pa.Array) -> np.ndarray:
    """Position of each of ``values`` in ``keys`` (distinct, same type), -1 when absent.

    Returns
    -------
    numpy.ndarray of intp, one per value
    """
    out = np.full(len(values), -1, np.intp)
    if not len(values) or not len(keys):
        return out
    v, k = _int_values(values), _int_values(keys)
    plan = _packed_plan(v, k) if v is not None and k is not None else None
    if plan is None:
        return to_numpy(pc.index_in(values, value_set=keys), np.intp, -1)
    low, _, index_bits = plan
    shift = np.uint64(index_bits + 1)
    mask = np.uint64((1 << index_bits) - 1)
    packed = np.concatenate(
        [
            (_offsets(k, low) << shift) | np.arange(len(k), dtype=np.uint64),
            (_offsets(v, low) << shift)
            | (_ONE << np.uint64(index_bits))
            | np.arange(len(v), dtype=np.uint64),
        ]
    )
    packed.sort()  # a key sorts just before the values equal to it (tag 0 < tag 1)
    is_value = ((packed >> np.uint64(index_bits)) & _ONE).astype(bool)
    at = np.where(is_value, -1, np.arange(len(packed)))
    np.maximum.accumulate(at, out=at)  # the latest key at or before each entry
    rows = np.flatnonzero(is_value)
    key_at = at[rows]
    found = key_at >= 0
    same = (packed[rows[found]] >> shift) == (packed[key_at[found]] >> shift)
    hit = rows[found][same]
    out[(packed[hit] & mask).astype(np.intp)] = (packed[key_at[found][same]] & mask).astype(np.intp)
    return out


def seen_before(ids: pa.Array) -> np.ndarray:
    """Whether each id (no nulls) equals an id at an earlier position (the first is kept)."""
    n = len(ids)
    if n == 0:
        return np.zeros(0, bool)
    v = _int_values(ids)
    plan = _packed_plan(v) if v is not None else None
    if plan is None and (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        # the claims' claim-id matching: hashed in place, radix-sorted, equal hashes compared
        none = np.zeros(n, bool)
        return match_claim_ids(pa.chunked_array([ids]), none, ~none)[1]
    if plan is None:
        first = to_numpy(pc.index_in(ids, value_set=ids), np.intp, -1)  # first occurrence
        return first != np.arange(n)
    low, _, index_bits = plan
    shift = np.uint64(index_bits)
    packed = (_offsets(v, low) << shift) | np.arange(n, dtype=np.uint64)
    packed.sort()  # equal ids in input order
    later = np.zeros(n, bool)
    later[1:] = (packed[1:] >> shift) == (packed[:-1] >> shift)
    out = np.zeros(n, bool)
    out[(packed[later] & np.uint64((1 << index_bits) - 1)).astype(np.intp)] = True
    return out


def sort_spans(
    member: np.ndarray, start: np.ndarray, end: np.ndarray, product: np.ndarray, n_products: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Spans sorted by (member, start, end, product): ``(member intp, start, end, product)``
    (int32, C-contiguous); ``end`` may hold ``OPEN_END``."""
    n = len(member)
    if n == 0:
        empty = np.zeros(0, np.int32)
        return np.zeros(0, np.intp), empty, empty.copy(), empty.copy()
    s0 = int(start.min())
    finite = end[end != OPEN_END]
    e0 = int(finite.min()) if len(finite) else 0
    e_open = (int(finite.max()) - e0 + 1) if len(finite) else 0  # the code of an open end
    bits = [
        max(1, int(member.max()).bit_length()),
        max(1, (int(start.max()) - s0).bit_length()),
        max(1, e_open.bit_length()),
        max(1, (n_products - 1).bit_length()),
    ]
    if sum(bits) > 64:
        order = np.lexsort((product, end, start, member))
        return (
            np.ascontiguousarray(member[order], np.intp),
            *(np.ascontiguousarray(a[order], np.int32) for a in (start, end, product)),
        )
    e_rel = np.where(end == OPEN_END, e_open, end.astype(np.int64) - e0)
    fields = (member, start.astype(np.int64) - s0, e_rel, product)
    shifts = np.cumsum([0, *bits[::-1]])[-2::-1]  # member in the top bits
    packed = np.zeros(n, np.uint64)
    for f, sh in zip(fields, shifts, strict=True):
        packed |= f.astype(np.uint64) << np.uint64(sh)
    packed.sort()
    out = [
        (packed >> np.uint64(sh)) & np.uint64((1 << b) - 1)
        for sh, b in zip(shifts, bits, strict=True)
    ]
    s_out = (out[1].astype(np.int64) + s0).astype(np.int32)
    e_out = np.where(out[2] == e_open, OPEN_END, out[2].astype(np.int64) + e0).astype(np.int32)
    return out[0].astype(np.intp), s_out, e_out, out[3].astype(np.int32)

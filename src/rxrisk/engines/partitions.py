"""Partitions of the streaming engine: rows hashed into member and claim-id partitions, how
many partitions to use, and the book-wide claim-id matching done one claim-id partition at a
time.

Equal (trimmed) member ids always share a member partition and equal claim ids a claim-id
partition, whichever input or batch they come from, so each partition is complete alone.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from rxrisk.engines.spool import Spool
from rxrisk.ingest.checked import CheckedPharmacy
from rxrisk.ingest.validate import blank_mask, match_claim_hashes
from rxrisk.io.arrow import is_null, string_chunks, take_rows, to_numpy

#: kind bits of a claim key
REVERSAL, PAID = 1, 2


def string_hashes(col: pa.ChunkedArray) -> np.ndarray:
    """62-bit hash of each row's trimmed string (int64; -1 for null or blank), computed on
    the numba threads chunk by chunk without copying the strings."""
    from rxrisk.kernels.strings import hash_strings  # lazy: kernels on first use

    out = np.empty(len(col), np.int64)
    pos = 0
    for offsets, data, null in string_chunks(col):
        m = len(null)
        hash_strings(offsets, data, null, out[pos : pos + m])
        pos += m
    return out


def hash_parts(hashes: np.ndarray, n_parts: int) -> np.ndarray:
    """Partition of each hash of :func:`string_hashes`; -1 for a null or blank string."""
    parts = hashes % np.int64(n_parts)
    parts[hashes < 0] = -1
    return parts


def member_parts(member_id: pa.ChunkedArray, n_parts: int) -> np.ndarray:
    """Partition of each (trimmed) member id; -1 for null (and blank strings). Strings hash
    by their bytes, integers by a multiplicative hash of the value, so a member always lands
    in one partition whichever input or batch it comes from. With one partition nothing is
    hashed: every row not null or blank is in partition 0."""
    if n_parts == 1:
        return np.where(blank_mask(member_id), -1, 0).astype(np.intp)
    if pa.types.is_integer(member_id.type):
        v = to_numpy(member_id, np.int64, 0).view(np.uint64)
        h = (v * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(33)
        parts = (h % np.uint64(n_parts)).astype(np.intp)
        parts[is_null(member_id)] = -1
        return parts
    return hash_parts(string_hashes(member_id), n_parts)


def partition_count(
    rows: int | None, explicit: int | None, per: int, default_unknown: int, min_rows: int = 1
) -> int:
    """Partitions to use: ``explicit``, else one per ``per`` rows (``default_unknown`` when the
    row count is not known before reading); never more than ``rows / min_rows`` when known,
    so a small input is not spread over thousands of near-empty partitions."""
    if explicit is not None:
        n = explicit
    elif rows is None:
        return default_unknown
    else:
        n = math.ceil(rows / per)
    if rows is not None:
        n = min(n, rows // min_rows)
    return max(1, n)


def add_claim_keys(claims: Spool, batch: CheckedPharmacy) -> None:
    """Spool the claim keys of a checked batch by claim-id partition: input row, kind
    (:data:`REVERSAL` / :data:`PAID`) and claim id of the rows that take part in matching
    (tracked rows that passed the checks; never untracked rows). The claim-id hashes pick the
    partitions and are not kept: :func:`match_claims` hashes each partition's ids again (about
    60 ns a row) rather than spill eight incompressible bytes a row. With one claim-id
    partition nothing is hashed here: every key goes to partition 0, blank ids included
    (matching leaves blank ids out)."""
    c = batch.checks
    cid = c.scoped.claim_id  # the tracked rows' claim ids (c.scope: their positions)
    taken = np.flatnonzero(c.is_reversal[c.scope] | c.paid_ok[c.scope])
    if cid.null_count == len(cid) or not len(taken):
        return
    include = c.scope[taken]
    sub = take_rows(cid, taken).cast(pa.string())
    parts = None if claims.n_parts == 1 else hash_parts(string_hashes(sub), claims.n_parts)
    kind = (
        c.is_reversal[include] * np.uint8(REVERSAL) | c.paid_ok[include] * np.uint8(PAID)
    ).astype(np.uint8)
    row = include.astype(np.int64) + batch.first_row
    claims.add(
        pa.table({"row": row, "kind": kind, "claim_id": sub}),
        parts,
    )


def match_claims(claims: Spool, clock) -> tuple[int, int, np.ndarray]:
    """Claim-id matching, partition by partition (each partition released once matched):
    ``(reversed rows, duplicate rows, sorted input rows of both)``."""
    n_rev = n_dup = 0
    drop = []
    for p in range(claims.n_parts):
        t = claims.read(p)
        if t is None:
            continue
        kind = to_numpy(t.column("kind"), np.uint8)
        rev, dup = match_claim_hashes(
            string_hashes(t.column("claim_id")),
            t.column("claim_id"),
            (kind & REVERSAL) != 0,
            (kind & PAID) != 0,
        )
        n_rev += int(np.count_nonzero(rev))
        n_dup += int(np.count_nonzero(dup))
        gone = rev | dup
        if gone.any():
            drop.append(to_numpy(t.column("row"), np.int64)[gone])
        claims.release(p)
        clock.tick("claim-id partitions matched", p + 1)
    drop_rows = np.sort(np.concatenate(drop)) if drop else np.zeros(0, np.int64)
    return n_rev, n_dup, drop_rows


def without_rows(fills: pa.Table, dropped: np.ndarray) -> pa.Table:
    """``fills`` without the rows whose ``row`` is in ``dropped`` (sorted input rows)."""
    if not len(dropped) or not fills.num_rows:
        return fills
    row = to_numpy(fills.column("row"), np.int64)
    pos = np.minimum(np.searchsorted(dropped, row), len(dropped) - 1)
    keep = dropped[pos] != row
    return fills if keep.all() else fills.filter(pa.array(keep))

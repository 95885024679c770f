"""Tracked rows to ``Claims``: sorted member ids, dense prescriber / pharmacy codes, day
numbers, covered days, daily MME, role bits and member offsets.

Member ids are not dictionary-encoded and sorted as a whole: each row's id is read as a
fixed-width key that orders like the id (``kernels.dictionary``), and ``kernels.grouping``
splits the rows by the top bits of their keys into cache-sized buckets that are already in
member order, finding the members and ordering the rows inside each bucket. Prescriber and
pharmacy ids get codes from a hash table over the Arrow string buffers.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.errors import InputError
from rxrisk.ingest.drugs import DrugTable
from rxrisk.ingest.select import Ingested, select_used
from rxrisk.ingest.tracked import TrackedRows
from rxrisk.io.arrow import date_days, dict_codes, null_mask, sort_uint64, string_chunks, to_numpy
from rxrisk.kernels._jit import submit, threads
from rxrisk.kernels.containers import GroupedRows, GroupingWork
from rxrisk.kernels.dictionary import (
    K_HI,
    K_LEN,
    K_LO,
    SHORT,
    code_integers,
    code_strings,
    key_strings,
    order_long_ids,
    packed_sort_keys,
    string_keys,
)
from rxrisk.kernels.grouping import group_members


@dataclass
class Claims:
    """Encoded, sorted claims of the members in ``member_ids`` (code = position).

    The fill arrays are those of :class:`rxrisk.kernels.containers.MemberFills` and the
    medical arrays those of :class:`rxrisk.kernels.containers.MemberEvents` (documented field
    by field there); :func:`rxrisk.scoring.run.run_kernels` hands them to the kernel as such.
    """

    member_ids: pa.Array  # sorted distinct member ids
    fill_offsets: np.ndarray  # intp (n_members + 1)
    start: np.ndarray  # int32 day of fill
    end: np.ndarray  # int32 last covered day
    role: np.ndarray  # uint8
    mme: np.ndarray  # float64 daily MME
    prescriber: np.ndarray  # int32 code, -1 null
    pharmacy: np.ndarray  # int32 code, -1 null
    row: np.ndarray  # int64 input row of each sorted fill
    n_prescribers: int
    n_pharmacies: int
    med_offsets: np.ndarray  # intp (n_members + 1)
    med_day: np.ndarray  # int32
    med_mask: np.ndarray  # uint8


_TABLE_SIZE = 1 << 12  # first hash-table size (it doubles as codes are added)


def _is_text(typ: pa.DataType) -> bool:
    return pa.types.is_string(typ) or pa.types.is_large_string(typ)


def _hash_codes(parts: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Codes in order of first appearance of the rows of ``parts`` (string or int64 columns
    of one type, one after another), coded chunk by chunk where the chunks lie.

    Returns (codes int32 with -1 for null, keys of the distinct ids, tail bytes, count).
    """
    n = sum(len(p) for p in parts)
    codes = np.empty(n, np.int32)
    keys = np.empty((max(n, 1), 4), np.uint64)
    state = np.zeros(2, np.int64)
    table = np.full(_TABLE_SIZE, -1, np.int32)
    tails = np.zeros(1, np.uint8)
    pos = 0
    if parts and _is_text(parts[0].type):
        chunks = [c for p in parts for c in string_chunks(p)]
        room = sum(max(0, int(o[-1]) - int(o[0])) for o, _, _ in chunks)
        tails = np.empty(max(room, 1), np.uint8)
        for offsets, data, null in chunks:
            table = code_strings(offsets, data, null, codes, pos, table, keys, tails, state)
            pos += len(null)
    else:
        for p in parts:
            for ch in p.chunks:
                m = len(ch)
                if m:
                    values = np.frombuffer(
                        ch.buffers()[1], dtype=np.int64, count=m, offset=ch.offset * 8
                    )
                    table = code_integers(values, null_mask(ch), codes, pos, table, keys, state)
                pos += m
    nd = int(state[0])
    return codes, keys[:nd], tails, nd


def _first_codes(col: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """Dense codes (order of first appearance, -1 for null) and the number of distinct values."""
    if _is_text(col.type):
        codes, _, _, nd = _hash_codes([col])
        return codes, nd
    codes, distinct = dict_codes(col)
    return codes, len(distinct)


def _sorted_member_codes(parts: list, typ: pa.DataType) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """Codes of the rows of ``parts`` (first appearance), the rank of each code among the
    sorted distinct ids, and the sorted distinct ids."""
    if not (_is_text(typ) or pa.types.is_integer(typ)):
        codes, distinct = dict_codes(pa.chunked_array([c for p in parts for c in p.chunks], typ))
        order = pc.sort_indices(distinct).to_numpy()
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        return codes, rank, distinct.take(pa.array(order))
    text = _is_text(typ)
    if not text:
        parts = [p.cast(pa.int64()) for p in parts]
    codes, keys, tails, nd = _hash_codes(parts)
    packed, code_bits = packed_sort_keys(keys, nd)
    if nd == 0:
        order = np.zeros(0, np.intp)
    elif len(packed):
        order = (sort_uint64(packed) & np.uint64((1 << code_bits) - 1)).astype(np.intp)
    else:
        short_len = np.minimum(keys[:, K_LEN], np.uint64(SHORT + 1))
        order = np.lexsort((short_len, keys[:, K_LO], keys[:, K_HI])).astype(np.intp)
    if text and nd and bool((keys[:, K_LEN] > SHORT).any()):
        order_long_ids(keys, tails, order)
    rank = np.empty(nd, np.int32)
    rank[order] = np.arange(nd, dtype=np.int32)
    if text:
        offsets, data = key_strings(keys, tails, order)
        large = pa.types.is_large_string(typ)
        if not large and offsets[-1] >= 2**31:
            raise InputError("the distinct member ids exceed 2 GiB of text; split the input")
        ids = pa.Array.from_buffers(
            typ,
            nd,
            [
                None,
                pa.py_buffer(offsets if large else offsets.astype(np.int32)),
                pa.py_buffer(data),
            ],
        )
    else:
        values = (keys[order, K_HI] ^ np.uint64(1 << 63)).view(np.int64)
        ids = pa.array(values, pa.int64()).cast(typ)
    return codes, rank, ids


_ROWS_PER_BUCKET = 4096  # grouping buckets: a few thousand rows each, so a bucket fits in cache
_MAX_BUCKET_BITS = 10
_NO_KEY = (np.zeros(0, np.uint64),) * 3


def _combined(col: pa.ChunkedArray) -> pa.Array:
    """One array of a chunked string or integer column (large_string past 2 GiB of text)."""
    if col.num_chunks == 1:
        return col.chunk(0)
    if pa.types.is_string(col.type) and sum(c.nbytes for c in col.chunks) >= 2**31 - 1:
        col = col.cast(pa.large_string())
    return col.combine_chunks()


def _member_keys(ph, md, ex, typ: pa.DataType, n_chunks: int):
    """The member key (hi, lo, length) of every pharmacy and medical row and of every distinct
    extra member (see ``kernels.dictionary``), and the sorted distinct ids when they had to be
    found by hashing (None when the grouping rebuilds them from the keys).

    Ids of up to 16 bytes and integers are their own keys. Longer ids, other types and null
    ids in the used rows go through the hash dictionary: their key is then the rank of the id.
    Extra members (every member seen, often many rows each) are reduced to their distinct ids
    with the hash dictionary first.
    """
    text = _is_text(typ)
    if (text or pa.types.is_integer(typ)) and not (
        ph.null_count or (md is not None and md.null_count)
    ):
        keys = []
        for col in (ph, md):
            if col is None:
                keys.append(_NO_KEY)
                continue
            arr = _combined(col)
            n = len(arr)
            if text:
                offsets, data, _ = next(string_chunks(arr))
                hi, lo, length = (np.empty(n, np.uint64) for _ in range(3))
                if n and string_keys(offsets, data, hi, lo, length, n_chunks) > SHORT:
                    break
            else:
                values = to_numpy(arr.cast(pa.int64()), np.int64)
                hi = values.view(np.uint64) ^ np.uint64(1 << 63)
                lo = length = np.zeros(n, np.uint64)
            keys.append((hi, lo, length))
        else:
            if ex is None:
                return (*keys, _NO_KEY), None
            _, distinct, _, nx = _hash_codes([ex if text else ex.cast(pa.int64())])
            if not (text and nx and distinct[:, K_LEN].max() > SHORT):
                extra = tuple(distinct[:, w].copy() for w in (K_HI, K_LO, K_LEN))
                return (*keys, extra), None
    present = [c for c in (ph, md, ex) if c is not None]
    codes, rank, ids = _sorted_member_codes(present, typ)
    keys, pos = [], 0
    for col in (ph, md, ex):
        if col is None:
            keys.append(_NO_KEY)
            continue
        part = codes[pos : pos + len(col)]
        pos += len(col)
        if col is ex:
            part = part[part >= 0]  # null extra ids are no member
        part = rank[part].astype(np.uint64)  # a null id in the used rows: as before
        zeros = np.zeros(len(part), np.uint64)
        keys.append((part, zeros, zeros))
    return tuple(keys), ids


def _key_layout(keys) -> tuple[np.ndarray, np.ndarray, int]:
    """The varying nibbles of the keys (word, shift, width; most significant first), and the
    grouping buckets: the top bits of the compacted key, as (word, shift, mask, place) of
    the at most 4 fields they come from, and their number of bits."""
    vary = [0, 0, 0]
    filled = [k for k in keys if len(k[0])]
    if filled:
        ref = [int(filled[0][w][0]) for w in range(3)]
        for part in filled:
            for w in range(3):
                vary[w] |= int(np.bitwise_or.reduce(part[w] ^ np.uint64(ref[w])))
    fields = [
        (w, 4 * nib, 4) for w in (0, 1) for nib in range(15, -1, -1) if vary[w] >> (4 * nib) & 15
    ]
    if vary[2]:
        fields.append((2, 0, 5))  # lengths are at most 16 here (longer ids are ranks)
    layout = np.array(fields, np.uint64).reshape(-1, 3).T.copy()
    rows = sum(len(k[0]) for k in keys)
    bits = min(
        max(0, (rows // _ROWS_PER_BUCKET - 1).bit_length()),
        _MAX_BUCKET_BITS,
        sum(f[2] for f in fields),
    )
    select = np.zeros((4, 4), np.uint64)  # unused rows take 0 bits
    left = bits
    for i, (w, shift, width) in enumerate(fields):
        if left == 0:
            break
        take = min(width, left)
        left -= take
        select[i] = (w, shift + width - take, (1 << take) - 1, left)
    return layout, select, bits


def _ids_from_keys(keys: np.ndarray, typ: pa.DataType) -> pa.Array:
    """The member ids of sorted distinct keys (short strings or integers)."""
    n = len(keys)
    if not _is_text(typ):
        values = (keys[:, 0] ^ np.uint64(1 << 63)).view(np.int64)
        return pa.array(values, pa.int64()).cast(typ)
    offsets, data = key_strings(keys, np.zeros(1, np.uint8), np.arange(n, dtype=np.intp))
    large = pa.types.is_large_string(typ)
    if not large and offsets[-1] >= 2**31:
        raise InputError("the distinct member ids exceed 2 GiB of text; split the input")
    return pa.Array.from_buffers(
        typ,
        n,
        [None, pa.py_buffer(offsets if large else offsets.astype(np.int32)), pa.py_buffer(data)],
    )


def encode(rows: TrackedRows, drugs: DrugTable) -> Claims:
    """Encode the tracked rows into sorted ``Claims``.

    Parameters
    ----------
    rows : rxrisk.ingest.tracked.TrackedRows
        The used rows (already filtered): the whole book's
        (:func:`rxrisk.ingest.select.select_used`) or one member partition's (streaming);
        ``rows.extra_members`` adds members without used rows (``--all-members``).
    drugs : rxrisk.ingest.drugs.DrugTable
        The reference as arrays.

    Returns
    -------
    Claims
    """
    fills, events, extra_members = rows.fills, rows.events, rows.extra_members
    pharmacy_member = fills.column("member_id")
    medical_member = events.column("member_id") if events is not None else None
    typ = _member_type(
        [c for c in (pharmacy_member, medical_member, extra_members) if c is not None]
    )
    n_chunks = 4 * threads()
    # prescriber and pharmacy codes on other threads (the kernels release the GIL) while the
    # member keys are read
    with ThreadPoolExecutor(max_workers=2) as pool:
        presc_codes = submit(pool, _first_codes, fills.column("prescriber_id"))
        pharm_codes = submit(pool, _first_codes, fills.column("pharmacy_id"))
        member_keys, member_ids = _member_keys(
            pharmacy_member.cast(typ),
            medical_member.cast(typ) if medical_member is not None else None,
            extra_members.cast(typ) if extra_members is not None else None,
            typ,
            n_chunks,
        )
        presc, n_prescribers = presc_codes.result()
        pharm, n_pharmacies = pharm_codes.result()
    out, n_members = _group(rows, drugs, member_keys, presc, pharm, n_chunks)
    if member_ids is None:
        member_ids = _ids_from_keys(out.members[:n_members], typ)
    return Claims(
        member_ids=member_ids,
        fill_offsets=out.fill_offsets[: n_members + 1],
        start=out.start,
        end=out.end,
        role=out.role,
        mme=out.mme,
        prescriber=out.prescriber,
        pharmacy=out.pharmacy,
        row=out.row,
        n_prescribers=n_prescribers,
        n_pharmacies=n_pharmacies,
        med_offsets=out.med_offsets[: n_members + 1],
        med_day=out.med_day,
        med_mask=out.med_mask,
    )


def _member_type(parts: list) -> pa.DataType:
    """The one member-id type of the inputs' member columns (a usage error when they differ)."""
    types = {str(p.type) for p in parts if len(p)}
    if len(types) > 1:
        raise InputError(
            f"member_id has different types across inputs ({', '.join(sorted(types))}); "
            "give pharmacy and medical member_id the same type"
        )
    return parts[0].type if not types else next(p.type for p in parts if len(p))


def _group(rows: TrackedRows, drugs: DrugTable, member_keys, presc, pharm, n_chunks: int):
    """Run the grouping kernel: fills and medical rows in (member, day, input row) order, with
    covered days, daily MME and role bits. Returns the filled ``GroupedRows`` and the number
    of members."""
    fills, events = rows.fills, rows.events
    layout, select, bucket_bits = _key_layout(member_keys)
    if events is not None:
        service_day = date_days(events.column("service_date"))
        category_mask = np.asarray(to_numpy(events.column("mask"), np.uint8), np.uint8)
    else:
        service_day = np.zeros(0, np.int32)
        category_mask = np.zeros(0, np.uint8)
    n, nm, nx = fills.num_rows, len(service_day), len(member_keys[2][0])
    work = GroupingWork.allocate(n, nm, nx)
    out = GroupedRows.allocate(n, nm, nx)
    days_supply = fills.column("days_supply")
    fill_arrays = (
        date_days(fills.column("fill_date")),
        to_numpy(days_supply, np.int32 if days_supply.type == pa.int32() else np.int64, 0),
        to_numpy(fills.column("quantity"), np.float64, np.nan),
        to_numpy(fills.column("ref_index"), np.int32),
        presc,
        pharm,
        to_numpy(fills.column("row"), np.int64),
    )
    drug_arrays = (drugs.role, drugs.strength, drugs.factor, drugs.days_per_unit)
    n_members = group_members(
        *member_keys,
        layout,
        select,
        bucket_bits,
        fill_arrays,
        drug_arrays,
        service_day,
        category_mask,
        work,
        out,
        n_chunks,
    )
    return out, n_members


def encode_selected(selected: TrackedRows, reference: pa.Table) -> Claims:
    """Encode the rows of :func:`rxrisk.ingest.select.select_used` into sorted :class:`Claims`
    (``reference``: the drug reference table)."""
    return encode(selected, DrugTable.from_reference(reference))


def encode_used(data: Ingested, *, all_members: bool = False):
    """Encode the used rows of both inputs into sorted :class:`Claims`."""
    return encode_selected(select_used(data, all_members=all_members), data.reference)

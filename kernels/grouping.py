"""Rows grouped by member: the sorted distinct member ids, and the fills and medical rows in
(member, day, input row) order with the member offsets, without a global sort or hash table.

Each row comes with its member's *key* (see ``kernels.dictionary``: two big-endian words and
the length, which order exactly as the ids do). Only the key bits that differ between rows
matter for the order (``layout``: the varying nibbles, most significant first), and the top
bits of that compacted key split the rows into a few hundred buckets that are themselves in
member order. Claims arrive in input order (often by date), so a plain gather ``x[order]``
would read one random cache line per row and column; here the rows move in two
cache-friendly passes instead, a radix partition:

1. in input order (parallel over row chunks), each row's payload is computed and written to
   its bucket: a few hundred sequential write streams;
2. per bucket (parallel over chunks of buckets; a bucket fits in cache), its members are
   found with a small hash table and sorted, then a counting sort by member and a stable sort
   of each member's rows by day put the rows in their final place.

Both passes are stable, so rows of one member and day keep their input order.

:func:`group_members` is plain Python: it runs each pass as a small ``nogil`` kernel per
chunk on threads (``kernels._jit.each_chunk``). Chunks write disjoint slots, so the result
does not depend on the thread count. There is no ``prange`` here: numba's parallel lowering
of these loops cost most of the first run's compile time.
"""

import numpy as np

from rxrisk.kernels._jit import each_chunk, ngjit
from rxrisk.kernels.fills import covered_of, daily, last_day, supply_days

_SMALL_GROUP = 32  # longer runs of one member are sorted by day with a merge sort


@ngjit
def compact_key(hi, lo, length, field_word, field_shift, field_width, bits):
    """The top ``bits`` bits of the compacted key (the fields one after another), for
    ``bits`` at most the fields' total width."""
    out = np.uint64(0)
    got = np.uint64(0)
    for f in range(field_word.shape[0]):
        if got >= bits:
            break
        w = field_word[f]
        v = hi if w == 0 else (lo if w == 1 else length)
        width = field_width[f]
        out = (out << width) | ((v >> field_shift[f]) & ((np.uint64(1) << width) - np.uint64(1)))
        got += width
    return out >> (got - bits)


@ngjit
def _pick(hi, lo, length, select, f):
    w = select[f, 0]
    v = hi if w == 0 else (lo if w == 1 else length)
    return ((v >> select[f, 1]) & select[f, 2]) << select[f, 3]


@ngjit
def _bucket_chunk(c, per_chunk, hi, lo, length, select, bucket, counts):
    """Pass 1 counts for row chunk ``c``: the bucket of each of its rows (into ``bucket``)
    and its rows per bucket (into ``counts[c]``).

    The bucket is the top bits of the compacted key, gathered from at most 4 fields:
    ``select`` (4, 4) holds, per field, the word, shift, mask and place of its bits.
    """
    n = hi.shape[0]
    for i in range(c * per_chunk, min(n, (c + 1) * per_chunk)):
        h = hi[i]
        lw = lo[i]
        ln = length[i]
        b = np.uint64(0)
        for f in range(4):
            b |= _pick(h, lw, ln, select, f)
        bucket[i] = b
        counts[c, np.intp(b)] += 1


@ngjit
def _cursors(counts):
    """Pass-1 slots from per-chunk bucket counts: (first slot of each chunk in each bucket,
    start of each bucket). Buckets in order, chunks in order inside a bucket (stable)."""
    n_chunks, n_buckets = counts.shape
    cursor = np.empty((n_chunks, n_buckets), np.intp)
    bucket_start = np.empty(n_buckets + 1, np.intp)
    pos = 0
    for b in range(n_buckets):
        bucket_start[b] = pos
        for c in range(n_chunks):
            cursor[c, b] = pos
            pos += counts[c, b]
    bucket_start[n_buckets] = pos
    return cursor, bucket_start


@ngjit
def _scatter_keys_chunk(c, per_chunk, cursor, bucket, hi, lo, length, keys):
    """Pass 1 for extra members, row chunk ``c``: keys in bucket order (into ``keys``)."""
    n = hi.shape[0]
    slot = cursor[c].copy()
    for i in range(c * per_chunk, min(n, (c + 1) * per_chunk)):
        b = bucket[i]
        p = slot[b]
        slot[b] = p + 1
        keys[p, 0] = hi[i]
        keys[p, 1] = lo[i]
        keys[p, 2] = length[i]


@ngjit
def _local_hash(hi, lo, length):
    """A cheap 32-bit hash for the small per-bucket tables (every product stays below 2**64)."""
    m = np.uint64(0xFFFFFFFF)
    x = hi ^ (lo >> np.uint64(7)) ^ (lo << np.uint64(11)) ^ length
    x = (x ^ (x >> np.uint64(32))) & m
    x = x * np.uint64(0x9E3779B1)
    return x ^ (x >> np.uint64(32))


@ngjit
def _add_keys(keys, a, z, table, mask, distinct, nd, code, q):
    """Code the keys ``a .. z - 1`` with the bucket's table; return (codes so far, next q)."""
    for p in range(a, z):
        hi = keys[p, 0]
        lo = keys[p, 1]
        ln = keys[p, 2]
        slot = np.intp(_local_hash(hi, lo, ln) & mask)
        while True:
            c = table[slot]
            if c < 0:
                table[slot] = nd
                distinct[nd, 0] = hi
                distinct[nd, 1] = lo
                distinct[nd, 2] = ln
                code[q] = nd
                nd += 1
                break
            if distinct[c, 0] == hi and distinct[c, 1] == lo and distinct[c, 2] == ln:
                code[q] = c
                break
            slot = np.intp((np.uint64(slot) + np.uint64(1)) & mask)
        q += 1
    return nd, q


@ngjit
def _stable_order(keys):
    """The stable sort order of ``keys`` (uint64): insertion-sorted runs of 16, then bottom-up
    merges. One small kernel for every sort of the grouping (numba's own ``argsort`` compiles
    a large function per dtype and kind)."""
    n = keys.shape[0]
    order = np.empty(n, np.intp)
    for i in range(n):
        order[i] = i
    run = 16
    for s in range(0, n, run):
        e = min(s + run, n)
        for t in range(s + 1, e):
            x = order[t]
            k = keys[x]
            u = t - 1
            while u >= s and keys[order[u]] > k:
                order[u + 1] = order[u]
                u -= 1
            order[u + 1] = x
    src = order
    dst = np.empty(n, np.intp)
    width = run
    while width < n:
        for s in range(0, n, 2 * width):
            m = min(s + width, n)
            e = min(s + 2 * width, n)
            i = s
            j = m
            o = s
            while i < m and j < e:
                if keys[src[j]] < keys[src[i]]:
                    dst[o] = src[j]
                    j += 1
                else:
                    dst[o] = src[i]
                    i += 1
                o += 1
            while i < m:
                dst[o] = src[i]
                i += 1
                o += 1
            while j < e:
                dst[o] = src[j]
                j += 1
                o += 1
        src, dst = dst, src
        width *= 2
    return src


@ngjit
def _local_members(fill_keys, med_keys, extra_keys, ranges, layout, total_bits):
    """Distinct keys of the records of one bucket, sorted, and each record's member.

    ``ranges`` (3, 2) holds the bucket's record range in ``fill_keys``, ``med_keys`` and
    ``extra_keys`` (uint64 (n, 3) each). Returns (sorted distinct keys (m, 3), local member
    of each record, fills then medical rows then extra members).
    """
    n_rec = 0
    for s in range(3):
        n_rec += ranges[s, 1] - ranges[s, 0]
    size = 16
    while size < 2 * n_rec:
        size *= 2
    mask = np.uint64(size - 1)
    table = np.full(size, -1, np.int32)
    distinct = np.empty((max(n_rec, 1), 3), np.uint64)
    code = np.empty(n_rec, np.int32)
    nd = q = np.intp(0)  # not literal zeros: one compile of _add_keys
    nd, q = _add_keys(fill_keys, ranges[0, 0], ranges[0, 1], table, mask, distinct, nd, code, q)
    nd, q = _add_keys(med_keys, ranges[1, 0], ranges[1, 1], table, mask, distinct, nd, code, q)
    nd, q = _add_keys(extra_keys, ranges[2, 0], ranges[2, 1], table, mask, distinct, nd, code, q)
    if total_bits <= 64:
        packed = np.empty(nd, np.uint64)
        field_word = layout[0]
        for c in range(nd):
            packed[c] = compact_key(
                distinct[c, 0],
                distinct[c, 1],
                distinct[c, 2],
                field_word,
                layout[1],
                layout[2],
                np.uint64(total_bits),
            )
        order = _stable_order(packed)  # distinct keys have distinct compacted keys
    else:
        # stable passes: length, then low word, then high word
        column = np.empty(nd, np.uint64)
        for c in range(nd):
            column[c] = distinct[c, 2]
        order = _stable_order(column)
        for w in (1, 0):
            for c in range(nd):
                column[c] = distinct[order[c], w]
            by_word = _stable_order(column)
            moved = np.empty(nd, np.intp)
            for c in range(nd):
                moved[c] = order[by_word[c]]
            order = moved
    rank = np.empty(nd, np.int32)
    out = np.empty((nd, 3), np.uint64)
    for r in range(nd):
        rank[order[r]] = r
        out[r, 0] = distinct[order[r], 0]
        out[r, 1] = distinct[order[r], 1]
        out[r, 2] = distinct[order[r], 2]
    for q in range(n_rec):
        code[q] = rank[code[q]]
    return out, code


@ngjit
def _member_order(member, day, n_members):
    """Order of records by (member, day, record) and the member counts, for local members
    ``member`` (in ``0 .. n_members - 1``) and days ``day``."""
    m = member.shape[0]
    first = np.zeros(n_members + 1, np.intp)
    for q in range(m):
        first[member[q] + 1] += 1
    for k in range(n_members):
        first[k + 1] += first[k]
    count = np.empty(n_members, np.intp)
    for k in range(n_members):
        count[k] = first[k + 1] - first[k]
    order = np.empty(m, np.intp)
    sday = np.empty(m, np.int32)
    for q in range(m):
        k = member[q]
        t = first[k]
        order[t] = q
        sday[t] = day[q]
        first[k] = t + 1
    s = 0
    for k in range(n_members):
        e = first[k]
        if e - s > _SMALL_GROUP:
            day_key = np.empty(e - s, np.uint64)
            for t in range(e - s):  # order-preserving: int32 day + 2**31 as uint64
                day_key[t] = np.uint64(np.int64(sday[s + t]) + np.int64(2147483648))
            by_day = _stable_order(day_key)
            rows = order[s:e].copy()
            for t in range(e - s):
                order[s + t] = rows[by_day[t]]
        else:
            for t in range(s + 1, e):  # insertion sort, stable
                d = sday[t]
                if d >= sday[t - 1]:
                    continue
                r = order[t]
                u = t - 1
                while u >= s and sday[u] > d:
                    sday[u + 1] = sday[u]
                    order[u + 1] = order[u]
                    u -= 1
                sday[u + 1] = d
                order[u + 1] = r
        s = e
    return order, count


def _to_buckets(key, select, n_buckets, n_chunks, bucket):
    """Pass 1 counts of one kind of row: returns (per-chunk slots of each bucket, start of
    each bucket, rows per chunk)."""
    hi, lo, length = key
    per_chunk = (hi.shape[0] + n_chunks - 1) // n_chunks
    counts = np.zeros((n_chunks, n_buckets), np.intp)
    each_chunk(_bucket_chunk, n_chunks, per_chunk, hi, lo, length, select, bucket, counts)
    cursor, start = _cursors(counts)
    return cursor, start, per_chunk


def group_members(
    fill_key,
    med_key,
    extra_key,
    layout,
    select,
    bucket_bits,
    fills,
    drugs,
    service_day,
    category_mask,
    work,
    out,
    n_chunks,
):
    """Group fills and medical rows by member; return the number of members.

    Every array of ``work`` and ``out`` is allocated by the caller (numpy's large allocations
    get huge pages; the kernel writes each element once).

    Parameters
    ----------
    fill_key, med_key, extra_key : tuples (hi, lo, length) of uint64 arrays
        Member key of every fill (n), medical row (nm) and extra member row (nx).
    layout : uint64 array (3, n_fields)
        Varying fields of the keys, most significant first: word (0 hi, 1 lo, 2 length),
        shift and width of each; ``layout[2].sum()`` is the compacted key's width.
    select : uint64 array (4, 4), bucket_bits : int (at most 16)
        Buckets are the top ``bucket_bits`` bits of the compacted key, gathered from at most
        4 fields: per field its word, shift, mask and place in the bucket number.
    fills : tuple (day, days_supply, quantity, ref_index, prescriber, pharmacy, input_row)
        By fill: day (int32), days supply (int), quantity (float64), reference row,
        prescriber and pharmacy codes (int32) and input row number (int64).
    drugs : tuple (role, strength, factor, days_per_unit), by reference row.
    service_day, category_mask : by medical row (int32, uint8).
    work : kernels.containers.GroupingWork
        Scratch (buckets, records in bucket order, member slots), written before it is read.
    out : kernels.containers.GroupedRows
        Output: the sorted distinct member keys, the fill and medical offsets and the sorted
        fills and medical rows (``end`` the last covered day). Only the first
        ``n_members (+ 1)`` rows of ``members`` and the offsets are written.
    n_chunks : int, a few per thread.
    """
    total_bits = int(layout[2].sum())
    n_buckets = 1 << int(bucket_bits)
    n_chunks = max(1, int(n_chunks))

    # pass 1: fills, medical rows and extra members to their buckets
    cursor, fill_start, per_chunk = _to_buckets(
        fill_key, select, n_buckets, n_chunks, work.fill_bucket
    )
    each_chunk(
        _scatter_fills_chunk, n_chunks, per_chunk, cursor, work.fill_bucket, fill_key, fills,
        drugs, work,
    )  # fmt: skip
    cursor, med_start, per_chunk = _to_buckets(
        med_key, select, n_buckets, n_chunks, work.med_bucket
    )
    each_chunk(
        _scatter_events_chunk, n_chunks, per_chunk, cursor, work.med_bucket, med_key,
        service_day, category_mask, work,
    )  # fmt: skip
    cursor, extra_start, per_chunk = _to_buckets(
        extra_key, select, n_buckets, n_chunks, work.extra_bucket
    )
    x_hi, x_lo, x_len = extra_key
    each_chunk(
        _scatter_keys_chunk, n_chunks, per_chunk, cursor, work.extra_bucket, x_hi, x_lo, x_len,
        work.extra_key,
    )  # fmt: skip

    # pass 2: per bucket, its members, then its rows in final order
    n_local = np.zeros(n_buckets, np.intp)
    per_chunk = (n_buckets + n_chunks - 1) // n_chunks
    each_chunk(
        _sort_buckets, n_chunks, per_chunk, fill_start, med_start, extra_start, layout,
        total_bits, work, out, n_local,
    )  # fmt: skip

    # members in order, and their offsets
    first = np.zeros(n_buckets + 1, np.intp)
    np.cumsum(n_local, out=first[1:])
    n_members = int(first[n_buckets])
    out.fill_offsets[n_members] = fill_key[0].shape[0]
    out.med_offsets[n_members] = med_key[0].shape[0]
    each_chunk(
        _member_slots, n_chunks, per_chunk, fill_start, med_start, extra_start, n_local, first,
        work, out,
    )  # fmt: skip
    return n_members


@ngjit
def _scatter_fills_chunk(c, per_chunk, cursor, bucket, fill_key, fills, drugs, work):
    """Pass 1 for fills, row chunk ``c``: each fill's key and payload (covered days, daily
    MME) to its slot."""
    r_key = work.fill_key
    r_int = work.fill_ints
    r_mme = work.fill_mme
    r_row = work.fill_row
    f_hi, f_lo, f_len = fill_key
    day, days_supply, quantity, ref_index, prescriber, pharmacy, input_row = fills
    drug_role, strength, factor, days_per_unit = drugs
    n = f_hi.shape[0]
    slot = cursor[c].copy()
    for i in range(c * per_chunk, min(n, (c + 1) * per_chunk)):
        b = bucket[i]
        p = slot[b]
        slot[b] = p + 1
        r = ref_index[i]
        q = quantity[i]
        ds = supply_days(days_supply[i], q, days_per_unit[r])
        s = np.int64(day[i])
        rl = drug_role[r]
        r_key[p, 0] = f_hi[i]
        r_key[p, 1] = f_lo[i]
        r_key[p, 2] = f_len[i]
        r_int[p, 0] = s
        r_int[p, 1] = last_day(s, covered_of(ds))
        r_int[p, 2] = prescriber[i]
        r_int[p, 3] = pharmacy[i]
        r_int[p, 4] = rl
        r_mme[p] = daily(rl, strength[r], q, ds, factor[r])
        r_row[p] = input_row[i]


@ngjit
def _scatter_events_chunk(c, per_chunk, cursor, bucket, med_key, service_day, category_mask, work):
    """Pass 1 for medical rows, row chunk ``c``: each row's key, day and category bits to its
    slot."""
    m_key = work.med_key
    m_day = work.med_day
    m_mask = work.med_mask
    m_hi, m_lo, m_len = med_key
    n = m_hi.shape[0]
    slot = cursor[c].copy()
    for i in range(c * per_chunk, min(n, (c + 1) * per_chunk)):
        b = bucket[i]
        p = slot[b]
        slot[b] = p + 1
        m_key[p, 0] = m_hi[i]
        m_key[p, 1] = m_lo[i]
        m_key[p, 2] = m_len[i]
        m_day[p] = service_day[i]
        m_mask[p] = category_mask[i]


@ngjit
def _sort_buckets(
    c, per_chunk, fill_start, med_start, extra_start, layout, total_bits, work, out, n_local
):
    """Pass 2 for the buckets of chunk ``c``: each bucket's sorted members (into its member
    slots of ``work``; their number into ``n_local``) and its fills and medical rows in final
    order (into ``out``)."""
    n_buckets = fill_start.shape[0] - 1
    for b in range(c * per_chunk, min(n_buckets, (c + 1) * per_chunk)):
        r_int = work.fill_ints
        ranges = np.empty((3, 2), np.intp)
        ranges[0, 0] = fill_start[b]
        ranges[0, 1] = fill_start[b + 1]
        ranges[1, 0] = med_start[b]
        ranges[1, 1] = med_start[b + 1]
        ranges[2, 0] = extra_start[b]
        ranges[2, 1] = extra_start[b + 1]
        keys, member = _local_members(
            work.fill_key, work.med_key, work.extra_key, ranges, layout, total_bits
        )
        nd = keys.shape[0]
        o = fill_start[b] + med_start[b] + extra_start[b]  # room for the bucket's members
        for k in range(nd):
            work.member_key[o + k, 0] = keys[k, 0]
            work.member_key[o + k, 1] = keys[k, 1]
            work.member_key[o + k, 2] = keys[k, 2]
        a = fill_start[b]
        z = fill_start[b + 1]
        # a contiguous copy of the fill days: the same types as the medical call (one compile)
        order, count = _member_order(member[: z - a], r_int[a:z, 0].copy(), nd)
        for k in range(nd):
            work.member_fills[o + k] = count[k]
        for q in range(z - a):
            p = a + order[q]
            out.start[a + q] = r_int[p, 0]
            out.end[a + q] = r_int[p, 1]
            out.prescriber[a + q] = r_int[p, 2]
            out.pharmacy[a + q] = r_int[p, 3]
            out.role[a + q] = r_int[p, 4]
            out.mme[a + q] = work.fill_mme[p]
            out.row[a + q] = work.fill_row[p]
        ma = med_start[b]
        mz = med_start[b + 1]
        morder, mcount = _member_order(member[z - a : z - a + mz - ma], work.med_day[ma:mz], nd)
        for k in range(nd):
            work.member_meds[o + k] = mcount[k]
        for q in range(mz - ma):
            p = ma + morder[q]
            out.med_day[ma + q] = work.med_day[p]
            out.med_mask[ma + q] = work.med_mask[p]
        n_local[b] = nd


@ngjit
def _member_slots(c, per_chunk, fill_start, med_start, extra_start, n_local, first, work, out):
    """The members of the buckets of chunk ``c``, in order, with their fill and medical
    offsets."""
    local_keys = work.member_key
    local_fills = work.member_fills
    local_meds = work.member_meds
    members = out.members
    fill_offsets = out.fill_offsets
    med_offsets = out.med_offsets
    for b in range(c * per_chunk, min(n_local.shape[0], (c + 1) * per_chunk)):
        o = fill_start[b] + med_start[b] + extra_start[b]
        g = first[b]
        fpos = fill_start[b]
        mpos = med_start[b]
        for k in range(n_local[b]):
            members[g + k, 0] = local_keys[o + k, 0]
            members[g + k, 1] = local_keys[o + k, 1]
            members[g + k, 2] = local_keys[o + k, 2]
            fill_offsets[g + k] = fpos
            med_offsets[g + k] = mpos
            fpos += local_fills[o + k]
            mpos += local_meds[o + k]

"""Point-of-sale safety-edit replay: one pass over each member's claims in
adjudication order, keeping the active claims incrementally.

Chunks of members run on threads (:func:`~rxrisk.kernels._jit.each_chunk` over
:func:`replay_chunk`); each chunk owns its scratch. Per member, the active opioid
and benzodiazepine claims sit in two min-heaps keyed by their last covered day: when the fill
day advances, the claims that ended before it are popped (each claim is pushed and popped
once), and running aggregates follow every push and pop: the number of active opioid and
benzodiazepine claims, per-prescriber counts of active opioid claims (and the number of
prescribers with one), per-ingredient counts of active long-acting opioid claims, and the
exact sum of the active opioid MME (nonoverlapping float64 partials, as ``math.fsum`` keeps
them). A claim is then evaluated from the aggregates in O(1), or, for the cumulative MME with
at most :data:`SEQUENTIAL_MAX` active opioid claims, by summing them in fill order; the work
per member is O(n log n) whatever the overlap. The naive check tracks the latest last-covered
day of the opioid claims filled on earlier days; the exclusion check walks the member's medical
rows forward once.

The contract (the containers ``EditClaims``, ``EditParams``, ``EditOutputs``, the ``fired``
bits and :data:`SEQUENTIAL_MAX`) is ``kernels/edits_containers.py``.
"""

import numpy as np

from rxrisk.kernels._jit import ngjit
from rxrisk.kernels.edits_containers import (
    E_CARE_COORDINATION,
    E_DUPLICATE_LA,
    E_HARD_LIMIT,
    E_NAIVE_DAYS,
    E_OPIOID_BENZO,
)
from rxrisk.kernels.roles import BENZO, OPIOID

NO_DAY = -(2**31)

#: Room for the exact-sum partials: nonoverlapping nonzero float64s occupy distinct bit
#: positions, of which float64 has 2098 (2**-1074 .. 2**1023).
PARTIALS_SIZE = 2112

_FIRST_CAPACITY = 64  # first size of a chunk's heaps (doubled when full)

# The small helpers below are inlined into the kernel (numba IR inlining): called, they pass
# their arrays through reference counting on every call, which made the kernel ~1.5x slower on
# a book of ordinary members.


# A heap is an int64 array of entries ``end * 2**32 + fill`` (``end`` the int32 last covered
# day, ``fill`` the index relative to the member's first fill, < 2**32): the smallest entry is
# the claim that ends first, ties in fill order, and no comparison reads another array.
_LOW = (1 << 32) - 1


@ngjit(inline="always")
def _heap_push(heap, size, entry):
    """Push ``entry`` on the min-heap ``heap[:size]``; return the sift steps taken."""
    pos = size
    steps = 0
    while pos > 0:
        parent = (pos - 1) >> 1
        p = heap[parent]
        if entry >= p:
            break
        heap[pos] = p
        pos = parent
        steps += 1
    heap[pos] = entry
    return steps


@ngjit(inline="always")
def _heap_pop(heap, size):
    """Remove the top of ``heap[:size]`` (size >= 1); return the sift steps taken."""
    size -= 1
    last = heap[size]
    pos = 0
    steps = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and heap[child + 1] < heap[child]:
            child += 1
        if heap[child] >= last:
            break
        heap[pos] = heap[child]
        pos = child
        steps += 1
    if size > 0:
        heap[pos] = last
    return steps


@ngjit
def _grown(heap, size):
    """``heap`` (full: ``size == len(heap)``) copied into one twice its size. Not inlined:
    numba's parallel array analysis would take the copy's size for the original's."""
    bigger = np.empty(2 * heap.shape[0], heap.dtype)
    bigger[:size] = heap[:size]
    return bigger


@ngjit(inline="always")
def _entry(end_day, fill):
    return (np.int64(end_day) << 32) + np.int64(fill)


@ngjit(inline="always")
def _ends_before(entry, day):
    """Whether the claim of heap ``entry`` ends before ``day``."""
    return (entry >> 32) < day


@ngjit(inline="always")
def _partials_add(p, n, x):
    """Add ``x`` exactly to the nonoverlapping partials ``p[:n]`` (increasing magnitude, as in
    Python's ``math.fsum``); return the new count, or -1 when a partial overflowed."""
    i = 0
    for j in range(n):
        y = p[j]
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            p[i] = lo
            i += 1
        x = hi
    if not np.isfinite(x):
        return -1
    if x != 0.0:
        p[i] = x
        i += 1
    return i


@ngjit(inline="always")
def _partials_round(p, n):
    """The exact sum of the partials ``p[:n]`` rounded to the nearest float64 (ties to even),
    as ``math.fsum`` rounds it."""
    if n == 0:
        return 0.0
    n -= 1
    hi = p[n]
    lo = 0.0
    while n > 0:
        x = hi
        n -= 1
        y = p[n]
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            break
    if n > 0 and ((lo < 0.0 and p[n - 1] < 0.0) or (lo > 0.0 and p[n - 1] > 0.0)):
        y = lo * 2.0
        x = hi + y
        if y == x - hi:
            hi = x
    return hi


@ngjit(inline="always")
def _sum_in_order(heap, size, mme, i0, first, order):
    """``first`` plus ``mme`` of the fills of ``heap[:size]`` (relative to ``i0``) added in fill
    order; ``order`` is scratch (used when it holds ``size``). Returns (sum, steps)."""
    steps = size
    if size <= order.shape[0]:
        for q in range(size):  # insertion sort: the heap holds few fills here
            v = heap[q] & _LOW
            k = q
            while k > 0 and order[k - 1] > v:
                order[k] = order[k - 1]
                k -= 1
                steps += 1
            order[k] = v
        total = first
        for q in range(size):
            total += mme[i0 + order[q]]
        return total, steps
    ordered = np.sort(heap[:size] & _LOW)
    total = first
    for q in range(size):
        total += mme[i0 + ordered[q]]
    return total, steps + size * int(np.log2(size + 1))


@ngjit
def replay_chunk(c, claims, params, outputs):
    """Evaluate the opioid and benzodiazepine claims of chunk ``c`` of the members against the
    claims adjudicated before each.

    Parameters
    ----------
    c : int
        The chunk: members ``c * per_chunk`` up to the next chunk's first, where ``per_chunk``
        spreads the members over ``len(outputs.work)`` chunks.
    claims : EditClaims
        The fills and medical rows, sorted, with their member offsets.
    params : EditParams
        Thresholds, lookbacks and code-space sizes.
    outputs : EditOutputs
        Zeroed outputs; ``outputs.work`` has one slot per chunk of members, and its length is
        the number of chunks (a few per thread, chosen by the caller).

    Returns
    -------
    None
        The outputs of the chunk's members are written in place: for each evaluated fill
        ``evaluated``, ``cumulative``, ``active_prescribers``, ``excluded`` and ``fired``; the
        chunk's ``work``. Chunks write disjoint slots, so they may run at once, in any order.
    """
    work = outputs.work
    n_chunks = work.shape[0]
    n_members = claims.fill_offsets.shape[0] - 1
    per_chunk = (n_members + n_chunks - 1) // n_chunks
    m0 = c * per_chunk
    m1 = min(n_members, m0 + per_chunk)
    if m0 < m1:
        work[c] = _replay_chunk(claims, params, outputs, m0, m1)


@ngjit
def _replay_chunk(claims, params, outputs, m0, m1):
    """Replay members ``m0 .. m1 - 1`` with their own scratch; return the steps taken."""
    fill_offsets = claims.fill_offsets
    start = claims.start
    end = claims.end
    role = claims.role
    mme = claims.mme
    prescriber = claims.prescriber
    ingredient = claims.ingredient
    long_acting = claims.long_acting
    med_offsets = claims.med_offsets
    med_day = claims.med_day
    med_mask = claims.med_mask
    exclusion_bits = params.exclusion_bits
    dx_days = params.dx_days
    care_floor = params.care_floor
    care_min_prescribers = params.care_min_prescribers
    hard_floor = params.hard_floor
    naive_lookback = params.naive_lookback
    naive_max_days = params.naive_max_days
    sequential_max = params.sequential_max
    evaluated = outputs.evaluated
    cumulative = outputs.cumulative
    active_prescribers = outputs.active_prescribers
    excluded = outputs.excluded
    fired = outputs.fired

    steps = 0
    opioids = np.empty(_FIRST_CAPACITY, np.int64)  # min-heaps of the active claims
    benzos = np.empty(_FIRST_CAPACITY, np.int64)
    n_by_prescriber = np.zeros(max(params.n_prescribers, 1), np.int64)
    la_by_ingredient = np.zeros(max(params.n_ingredients, 1), np.int64)
    partials = np.empty(PARTIALS_SIZE, np.float64)
    scratch = np.empty(PARTIALS_SIZE, np.float64)
    order = np.empty(max(1, min(sequential_max, 4096)), np.int64)
    for m in range(m0, m1):
        i0 = fill_offsets[m]
        i1 = fill_offsets[m + 1]
        j = med_offsets[m]
        j1 = med_offsets[m + 1]
        n_opioids = 0  # active opioid claims (the opioid heap's size)
        n_benzos = 0
        n_distinct = 0  # prescribers with an active opioid claim
        n_la = 0  # active long-acting opioid claims with an ingredient
        n_partials = 0  # exact sum of the active opioid claims' MME; -1 after overflow
        last_exclusion = NO_DAY
        opioid_end_all = NO_DAY  # latest end of the opioid claims seen so far
        opioid_end_before = NO_DAY  # ... of those filled before the current day
        day = NO_DAY
        for i in range(i0, i1):
            f = np.int64(start[i])
            if f != day:
                day = f
                opioid_end_before = opioid_end_all
                while n_opioids > 0 and _ends_before(opioids[0], f):
                    a = i0 + (opioids[0] & _LOW)
                    steps += 1 + _heap_pop(opioids, n_opioids)
                    n_opioids -= 1
                    p = prescriber[a]
                    if p >= 0:
                        n_by_prescriber[p] -= 1
                        if n_by_prescriber[p] == 0:
                            n_distinct -= 1
                    if long_acting[a] == 1 and ingredient[a] >= 0:
                        n_la -= 1
                        la_by_ingredient[ingredient[a]] -= 1
                    if n_partials >= 0 and mme[a] != 0.0:
                        steps += 1 + n_partials
                        n_partials = _partials_add(partials, n_partials, -mme[a])
                while n_benzos > 0 and _ends_before(benzos[0], f):
                    steps += 1 + _heap_pop(benzos, n_benzos)
                    n_benzos -= 1
                while j < j1 and med_day[j] <= f:
                    if med_mask[j] & exclusion_bits:
                        last_exclusion = med_day[j]
                    j += 1
            r = role[i]
            is_opioid = (r & OPIOID) != 0
            is_benzo = (r & BENZO) != 0
            if not (is_opioid or is_benzo):
                continue

            if n_opioids <= sequential_max or n_partials < 0:
                total, k = _sum_in_order(opioids, n_opioids, mme, i0, mme[i], order)
                steps += 1 + k
            else:
                scratch[:n_partials] = partials[:n_partials]
                n = _partials_add(scratch, n_partials, mme[i])
                steps += 2 + 2 * n_partials
                total = _partials_round(scratch, n) if n >= 0 else np.inf
                if not np.isfinite(total):  # overflow: the sum in fill order says what
                    total, k = _sum_in_order(opioids, n_opioids, mme, i0, mme[i], order)
                    steps += k
            n_presc = n_distinct
            if is_opioid and prescriber[i] >= 0 and n_by_prescriber[prescriber[i]] == 0:
                n_presc += 1
            la_claim = is_opioid and long_acting[i] == 1 and ingredient[i] >= 0
            duplicate = la_claim and n_la - la_by_ingredient[ingredient[i]] > 0

            excl = last_exclusion != NO_DAY and last_exclusion >= f - dx_days + 1
            bits = 0
            if is_opioid and not excl:
                if total >= care_floor and n_presc >= care_min_prescribers:
                    bits |= E_CARE_COORDINATION
                if total >= hard_floor:
                    bits |= E_HARD_LIMIT
                if (
                    opioid_end_before < f - naive_lookback
                    and end[i] - start[i] + 1 > naive_max_days
                ):
                    bits |= E_NAIVE_DAYS
            if (is_opioid and n_benzos > 0) or (is_benzo and n_opioids > 0):
                bits |= E_OPIOID_BENZO
            if duplicate:
                bits |= E_DUPLICATE_LA
            evaluated[i] = True
            cumulative[i] = total
            active_prescribers[i] = n_presc
            excluded[i] = excl
            fired[i] = bits

            if is_opioid:
                if n_opioids == opioids.shape[0]:
                    opioids = _grown(opioids, n_opioids)
                steps += 1 + _heap_push(opioids, n_opioids, _entry(end[i], i - i0))
                n_opioids += 1
                p = prescriber[i]
                if p >= 0:
                    if n_by_prescriber[p] == 0:
                        n_distinct += 1
                    n_by_prescriber[p] += 1
                if la_claim:
                    n_la += 1
                    la_by_ingredient[ingredient[i]] += 1
                if n_partials >= 0 and mme[i] != 0.0:
                    steps += 1 + n_partials
                    n_partials = _partials_add(partials, n_partials, mme[i])
                if end[i] > opioid_end_all:
                    opioid_end_all = end[i]
            if is_benzo:
                if n_benzos == benzos.shape[0]:
                    benzos = _grown(benzos, n_benzos)
                steps += 1 + _heap_push(benzos, n_benzos, _entry(end[i], i - i0))
                n_benzos += 1
        # the member's claims still active: give back their prescriber and ingredient counts
        steps += n_opioids
        for q in range(n_opioids):
            a = i0 + (opioids[q] & _LOW)
            if prescriber[a] >= 0:
                n_by_prescriber[prescriber[a]] -= 1
            if long_acting[a] == 1 and ingredient[a] >= 0:
                la_by_ingredient[ingredient[a]] -= 1
    return steps

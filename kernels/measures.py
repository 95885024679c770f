"""The standard-measures kernel: every quantity of every member for every period, one member's
rows at a time. The chunks of members run on threads (``kernels._jit.each_chunk``); each chunk
owns its scratch.

For member ``m`` and period ``P = p0 .. p1`` the quantities come from four helpers, one per
concern: :func:`period_enrollment` (spans), :func:`period_exclusion` (medical rows),
:func:`period_claims` (the opioid and benzodiazepine claims filled in ``P``, then their daily
timeline clipped to ``P``, built by ``kernels.timeline.build_timeline``, read by
:func:`timeline_quantities`) and :func:`episode` (continued use). The arguments are the
containers of ``kernels.containers`` and ``kernels.measures_containers``; the wrapper is
``rxrisk.quality.compute.measure_claims``.
"""

import numpy as np

from rxrisk.kernels._jit import each_chunk, ngjit
from rxrisk.kernels.measures_containers import (
    EPISODE_LONG_DAYS,
    EPISODE_SHORT_DAYS,
    EXCLUSION_CANCER,
    EXCLUSION_HOSPICE,
    EXCLUSION_NONE,
    EXCLUSION_SICKLE,
    F_AVG_MME,
    I_BENZO_FILL_DATES,
    I_COVERED_30,
    I_COVERED_62,
    I_CUMULATIVE_DAYS_SUPPLY,
    I_ENROLLED,
    I_EPISODE_START,
    I_EXCLUSION,
    I_IPSD,
    I_LONGEST_HIGH_DOSE_RUN,
    I_OPIOID_BENZO_DAYS,
    I_OPIOID_CLAIMS,
    I_OPIOID_FILL_DATES,
    I_PHARMACIES,
    I_PRESCRIBERS,
    I_PRODUCT,
    I_TREATMENT_DAYS,
    NO_DAY,
)
from rxrisk.kernels.roles import BENZO, OPIOID
from rxrisk.kernels.timeline import build_timeline


def measure_members(fills, events, spans, params, out):
    """Compute the measure quantities of members ``0 .. n_members - 1`` for every period.

    The contract of the kernel; ``rxrisk.quality.compute.measure_claims`` is its wrapper (it
    builds and checks the arguments). It only splits the members into ``params.n_chunks``
    chunks and runs :func:`measure_chunk` on each, on threads.

    Parameters
    ----------
    fills : kernels.containers.MemberFills
        The members' fills (every used claim, whatever its date), sorted by member then fill
        day; ``n_members`` is ``len(fills.fill_offsets) - 1``.
    events : kernels.containers.MemberEvents
        The members' classified medical rows, sorted by member then day (the same members).
    spans : kernels.measures_containers.MemberSpans
        The members' enrollment spans (the same members).
    params : kernels.measures_containers.MeasureParams
        Periods, enrollment and dose settings, category bits and the chunk count.
    out : kernels.measures_containers.MeasureOutputs
        Outputs holding the "nothing" values (``MeasureOutputs.filled``), one column per
        output row ``m * n_periods + j``; written in place.
    """
    n_members = fills.fill_offsets.shape[0] - 1
    n_chunks = params.n_chunks
    per_chunk = (n_members + n_chunks - 1) // n_chunks
    each_chunk(_measure_chunk_c, n_chunks, per_chunk, fills, events, spans, params, out)


def _measure_chunk_c(c, per_chunk, fills, events, spans, params, out):
    """:func:`measure_chunk` for chunk ``c`` (plain Python: one compiled kernel)."""
    measure_chunk(fills, events, spans, params, out, c * per_chunk, (c + 1) * per_chunk)


@ngjit
def measure_chunk(fills, events, spans, params, out, m0, m1):
    """The quantities of members ``m0 .. min(m1, n_members) - 1`` (one chunk, its own scratch).

    Arguments as for :func:`measure_members`. A row's slots are written only where the member
    has something for them (spans, medical rows, claims in the period, an episode).
    """
    fill_offsets = fills.fill_offsets
    start = fills.start
    periods = params.periods
    ints = out.ints
    m1 = min(m1, fill_offsets.shape[0] - 1)
    if m0 >= m1:
        return
    k = periods.shape[0]
    longest = 1
    for j in range(k):
        longest = max(longest, np.int64(periods[j, 1]) - np.int64(periods[j, 0]) + 1)
    mme_day = np.empty(longest + 1, np.float64)
    opioid_day = np.empty(longest + 1, np.int32)
    benzo_day = np.empty(longest + 1, np.int32)
    cns_day = np.empty(longest + 1, np.int32)
    prefix = np.empty(longest + 1, np.float64)
    episode_day = np.empty(EPISODE_LONG_DAYS + 1, np.int32)
    seen_prescriber = np.zeros(max(fills.n_prescribers, 1), np.int64)
    seen_pharmacy = np.zeros(max(fills.n_pharmacies, 1), np.int64)
    stamp = 0
    for m in range(m0, m1):
        i0 = np.int64(fill_offsets[m])
        i1 = np.int64(fill_offsets[m + 1])
        for j in range(k):
            r = m * k + j
            p0 = np.int64(periods[j, 0])
            p1 = np.int64(periods[j, 1])
            s0 = spans.span_offsets[m]
            s1 = spans.span_offsets[m + 1]
            if s1 > s0:
                enrolled, product = period_enrollment(
                    spans.span_start,
                    spans.span_end,
                    spans.span_product,
                    s0,
                    s1,
                    p0,
                    p1,
                    params.max_gaps,
                    params.max_gap_days,
                )
                ints[I_ENROLLED, r] = 1 if enrolled else 0
                ints[I_PRODUCT, r] = product
            e0 = events.med_offsets[m]
            e1 = events.med_offsets[m + 1]
            if e1 > e0:
                ints[I_EXCLUSION, r] = period_exclusion(
                    events.med_day,
                    events.med_mask,
                    e0,
                    e1,
                    p0,
                    p1,
                    params.hospice_bit,
                    params.cancer_bit,
                    params.sickle_bit,
                )
            if i1 == i0:
                continue
            a = first_filled_from(start, i0, i1, p0)
            b = first_filled_from(start, a, i1, p1 + 1)
            if b > a:
                stamp += 1
                period_claims(
                    fills, a, b, p0, p1, r, params.high_dose_floor, seen_prescriber,
                    seen_pharmacy, stamp, mme_day, opioid_day, benzo_day, cns_day, prefix, out,
                )  # fmt: skip
            e, c30, c62 = episode(
                start, fills.end, fills.role, i0, i1, p0, p1, params.negative_history_days,
                episode_day,
            )  # fmt: skip
            if e != NO_DAY:
                ints[I_EPISODE_START, r] = e
                ints[I_COVERED_30, r] = c30
                ints[I_COVERED_62, r] = c62


@ngjit
def first_filled_from(start, i0, i1, day):
    """The first fill of ``i0 .. i1 - 1`` (sorted by fill day) filled on or after ``day``;
    ``i1`` when none is (binary search)."""
    lo = i0
    hi = i1
    while lo < hi:
        mid = (lo + hi) // 2
        if start[mid] < day:
            lo = mid + 1
        else:
            hi = mid
    return lo


@ngjit
def period_enrollment(span_start, span_end, span_product, s0, s1, p0, p1, max_gaps, max_gap_days):
    """Continuous enrollment and product of one member in ``p0 .. p1``.

    Parameters
    ----------
    span_start, span_end, span_product : int32 arrays
        The spans (``kernels.measures_containers.MemberSpans``); spans ``s0 .. s1 - 1`` are the
        member's, sorted by start.
    p0, p1 : int
        First and last day of the period.
    max_gaps, max_gap_days : int
        At most this many gaps of at most this many days each.

    Returns
    -------
    (bool, int)
        Whether the union of the spans, clipped to the period, leaves at most ``max_gaps``
        gaps (maximal runs of uncovered days, either end included) of at most
        ``max_gap_days`` days and covers ``p1``; and the product code of the span covering
        ``p1`` with the latest start (ties: the smallest code), -1 when none covers ``p1``.
    """
    covered_to = p0 - 1  # last day of P covered by the spans seen so far
    gaps = 0
    long_gap = False
    product = -1
    product_start = p0
    for s in range(s0, s1):
        first = np.int64(span_start[s])
        last = min(np.int64(span_end[s]), p1)  # open ends: no arithmetic on the sentinel
        if first <= p1 and span_end[s] >= p1:
            code = span_product[s]
            if product < 0 or first > product_start or (first == product_start and code < product):
                product = code
                product_start = first
        if last < p0 or first > p1:
            continue
        if first > covered_to + 1:
            gaps += 1
            if first - covered_to - 1 > max_gap_days:
                long_gap = True
        if last > covered_to:
            covered_to = last
    enrolled = covered_to == p1 and gaps <= max_gaps and not long_gap
    return enrolled, product


@ngjit
def period_exclusion(med_day, med_mask, e0, e1, p0, p1, hospice_bit, cancer_bit, sickle_bit):
    """The exclusion code (``kernels.measures_containers.EXCLUSION_*``) of one member in
    ``p0 .. p1``: the first of hospice/palliative, cancer, sickle cell with a medical row of
    ``e0 .. e1 - 1`` (sorted by day) dated in the period; ``EXCLUSION_NONE`` when none."""
    bits = 0
    for i in range(e0, e1):
        d = med_day[i]
        if d > p1:
            break
        if d >= p0:
            bits |= med_mask[i]
    if bits & hospice_bit:
        return EXCLUSION_HOSPICE
    if bits & cancer_bit:
        return EXCLUSION_CANCER
    if bits & sickle_bit:
        return EXCLUSION_SICKLE
    return EXCLUSION_NONE


@ngjit
def period_claims(
    fills,
    a,
    b,
    p0,
    p1,
    r,
    high_dose_floor,
    seen_prescriber,
    seen_pharmacy,
    stamp,
    mme_day,
    opioid_day,
    benzo_day,
    cns_day,
    prefix,
    out,
):
    """Write the claim quantities of output row ``r`` from the fills ``a .. b - 1`` (those of
    one member filled in ``p0 .. p1``, sorted by fill day).

    Counts, distinct fill days, days supply, ipsd, treatment days and distinct prescribers
    and pharmacies (stamp arrays: ``seen_*[code] == stamp`` means counted; ``stamp`` is new
    for each call); then, when an opioid claim is among them, the daily timeline of the
    fills clipped to the period (scratch arrays of at least ``p1 - p0 + 2`` elements) and
    :func:`timeline_quantities`.
    """
    start = fills.start
    end = fills.end
    role = fills.role
    ints = out.ints
    n_opioid = 0
    opioid_dates = 0
    days_supply = 0
    last_covered = p0 - 1
    ipsd = p1 + 1
    n_presc = 0
    n_pharm = 0
    benzo_dates = 0
    last_opioid = p0 - 1
    last_benzo = p0 - 1
    for i in range(a, b):
        s = np.int64(start[i])
        if (role[i] & BENZO) != 0 and s != last_benzo:
            benzo_dates += 1
            last_benzo = s
        if not (role[i] & OPIOID):
            continue
        n_opioid += 1
        if s != last_opioid:
            opioid_dates += 1
            last_opioid = s
        ipsd = min(ipsd, s)
        days_supply += np.int64(end[i]) - s + 1
        last_covered = max(last_covered, np.int64(end[i]))
        p = fills.prescriber[i]
        if p >= 0 and seen_prescriber[p] != stamp:
            seen_prescriber[p] = stamp
            n_presc += 1
        q = fills.pharmacy[i]
        if q >= 0 and seen_pharmacy[q] != stamp:
            seen_pharmacy[q] = stamp
            n_pharm += 1
    ints[I_BENZO_FILL_DATES, r] = benzo_dates
    if n_opioid == 0:
        return
    ints[I_OPIOID_CLAIMS, r] = n_opioid
    ints[I_OPIOID_FILL_DATES, r] = opioid_dates
    ints[I_CUMULATIVE_DAYS_SUPPLY, r] = days_supply
    ints[I_PRESCRIBERS, r] = n_presc
    ints[I_PHARMACIES, r] = n_pharm
    ints[I_IPSD, r] = ipsd
    treatment_end = min(last_covered, p1)
    ints[I_TREATMENT_DAYS, r] = treatment_end - ipsd + 1
    length = p1 - p0 + 1
    build_timeline(
        start, end, role, fills.mme, a, b, p0, length, mme_day, opioid_day, benzo_day, cns_day,
        prefix,
    )  # fmt: skip
    run, both, total = timeline_quantities(
        mme_day, opioid_day, benzo_day, length, ipsd - p0, treatment_end - p0, high_dose_floor
    )
    ints[I_LONGEST_HIGH_DOSE_RUN, r] = run
    ints[I_OPIOID_BENZO_DAYS, r] = both
    out.floats[F_AVG_MME, r] = total / (treatment_end - ipsd + 1)


@ngjit
def timeline_quantities(mme_day, opioid_day, benzo_day, length, t0, t1, high_dose_floor):
    """Read one member's daily timeline of a period (``build_timeline``'s arrays, index =
    day - p0, ``length`` days).

    Returns
    -------
    (int, int, float)
        The longest run of consecutive days with ``mme_day >= high_dose_floor``; the days
        covered by an opioid and a benzodiazepine; the sum of ``mme_day`` over the days
        ``t0 .. t1`` (the treatment days).
    """
    longest = 0
    run = 0
    both = 0
    for d in range(length):
        if mme_day[d] >= high_dose_floor:
            run += 1
            longest = max(longest, run)
        else:
            run = 0
        if opioid_day[d] > 0 and benzo_day[d] > 0:
            both += 1
    total = 0.0
    for d in range(t0, t1 + 1):
        total += mme_day[d]
    return longest, both, total


@ngjit
def episode(start, end, role, i0, i1, p0, p1, history_days, covered):
    """The continued-use episode of one member in ``p0 .. p1``.

    Parameters
    ----------
    start, end, role : arrays
        Fill day, last covered day and role bits of the fills; ``i0 .. i1 - 1`` are the
        member's, sorted by fill day (claims filled before ``p0`` included).
    p0, p1 : int
        The period.
    history_days : int
        The negative history: an episode starts on an opioid fill day ``e`` when no opioid
        claim filled before ``e`` covers a day of ``e - history_days .. e - 1``.
    covered : int32 array of at least ``EPISODE_LONG_DAYS + 1`` elements
        Scratch.

    Returns
    -------
    (int, int, int)
        The earliest such ``e`` in ``p0 .. p1 - EPISODE_LONG_DAYS + 1`` and the days of
        ``e .. e + 29`` and of ``e .. e + 61`` covered by opioid claims filled from ``e`` on;
        ``(NO_DAY, 0, 0)`` when there is no episode.
    """
    last_start = p1 - (EPISODE_LONG_DAYS - 1)
    latest_end = np.int64(-(2**62))  # last day covered by the opioid claims filled before s
    i = i0
    found = -1
    while i < i1 and start[i] <= last_start:
        s = np.int64(start[i])
        g = i  # the fills of day s: g .. i - 1
        opioid_here = False
        group_end = latest_end
        while i < i1 and start[i] == s:
            if role[i] & OPIOID:
                opioid_here = True
                group_end = max(group_end, np.int64(end[i]))
            i += 1
        if opioid_here and s >= p0 and (history_days <= 0 or latest_end < s - history_days):
            found = g
            break
        latest_end = group_end
    if found < 0:
        return NO_DAY, 0, 0
    e = np.int64(start[found])
    for d in range(EPISODE_LONG_DAYS + 1):
        covered[d] = 0
    for i in range(found, i1):
        s = np.int64(start[i])
        if s - e >= EPISODE_LONG_DAYS:
            break
        if role[i] & OPIOID:
            covered[s - e] += 1
            covered[min(np.int64(end[i]) - e, EPISODE_LONG_DAYS - 1) + 1] -= 1
    count = 0
    c30 = 0
    c62 = 0
    for d in range(EPISODE_LONG_DAYS):
        count += covered[d]
        if count > 0:
            c62 += 1
            if d < EPISODE_SHORT_DAYS:
                c30 += 1
    return e, c30, c62

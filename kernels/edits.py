"""Point-of-sale safety-edit replay (SPEC 7): one pass over each member's claims in
adjudication order, keeping the active claims incrementally.

``prange`` over chunks of members; each chunk owns its scratch (the active list and the
prescriber stamps). Per member, the active list holds the opioid and benzodiazepine claims
whose last covered day is on or after the current fill day: it is compacted (order kept) when
the fill day advances and appended to after each claim, so no claim rescans the member's
history. The naive check tracks the latest last-covered day of the opioid claims filled on
earlier days; the exclusion check walks the member's medical rows forward once.
"""

import numpy as np
from numba import prange

from rxrisk.kernels._jit import ngjit
from rxrisk.kernels.roles import BENZO, OPIOID

#: Bit of each edit in the ``fired`` output, in SPEC 7 table order.
E_CARE_COORDINATION = 1
E_HARD_LIMIT = 2
E_NAIVE_DAYS = 4
E_OPIOID_BENZO = 8
E_DUPLICATE_LA = 16
EDIT_BITS = (E_CARE_COORDINATION, E_HARD_LIMIT, E_NAIVE_DAYS, E_OPIOID_BENZO, E_DUPLICATE_LA)

NO_DAY = -(2**31)


@ngjit(parallel=True)
def replay_members(
    fill_offsets,
    start,
    end,
    role,
    mme,
    prescriber,
    ingredient,
    long_acting,
    med_offsets,
    med_day,
    med_mask,
    exclusion_bits,
    dx_days,
    care_floor,
    care_min_prescribers,
    hard_floor,
    naive_lookback,
    naive_max_days,
    n_prescribers,
    max_fills,
    n_chunks,
    cumulative,
    active_prescribers,
    excluded,
    fired,
):
    """Evaluate every opioid and benzodiazepine claim against the claims adjudicated before it.

    Parameters
    ----------
    fill_offsets, med_offsets : intp arrays (n_members + 1)
        Member segments of the fill arrays and of the medical arrays.
    start, end, role, mme, prescriber : arrays (n_fills)
        Fills sorted by (member, fill day, input row): first and last covered day (the patch
        rewrite applied), role bits, daily MME (0 unless opioid), prescriber code (-1 null).
    ingredient : int32 array (n_fills)
        Dense code of the trimmed, lower-cased ingredient; -1 for null.
    long_acting : int8 array (n_fills)
        1 long-acting, 0 not, -1 null.
    med_day, med_mask : arrays (n_medical)
        Classified medical rows sorted by member then day, with category bits.
    exclusion_bits : int
        Category bits that exclude (cancer, sickle cell, hospice/palliative).
    dx_days : int
        ``D``: an exclusion code in ``f-D+1 .. f`` excludes the claim filled on ``f``.
    care_floor, hard_floor : float
        MME thresholds of the care-coordination and hard-limit edits, minus the tolerance.
    care_min_prescribers : int
        Distinct active opioid prescribers the care-coordination edit needs.
    naive_lookback : int
        ``L`` (>= 1): naive when no prior opioid claim covers a day in ``f-L .. f-1``.
    naive_max_days : int
        The naive edit fires when the claim covers more days than this.
    n_prescribers : int
        Size of the prescriber code space (stamp scratch).
    max_fills : int
        Largest number of fills of one member (active-list scratch).
    n_chunks : int
        Number of member chunks (a few per thread, passed in by the caller).
    cumulative : float64 (n_fills) output: claim MME plus the active opioid claims' MME.
    active_prescribers : int32 (n_fills) output: distinct active opioid prescribers (and c's).
    excluded : bool (n_fills) output: excluded at fill.
    fired : uint8 (n_fills) output: OR of the ``E_*`` bits of the edits that fire.

    Only the opioid and benzodiazepine fills (the evaluated claims) are written.
    """
    n_members = fill_offsets.shape[0] - 1
    per_chunk = (n_members + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        m0 = c * per_chunk
        m1 = min(n_members, m0 + per_chunk)
        if m0 >= m1:
            continue
        active = np.empty(max(max_fills, 1), np.int64)
        seen = np.zeros(max(n_prescribers, 1), np.int64)
        stamp = 0
        for m in range(m0, m1):
            i0 = fill_offsets[m]
            i1 = fill_offsets[m + 1]
            j = med_offsets[m]
            j1 = med_offsets[m + 1]
            n_active = 0
            last_exclusion = NO_DAY
            opioid_end_all = NO_DAY  # latest end of the opioid claims seen so far
            opioid_end_before = NO_DAY  # ... of those filled before the current day
            day = NO_DAY
            for i in range(i0, i1):
                f = np.int64(start[i])
                if f != day:
                    day = f
                    opioid_end_before = opioid_end_all
                    kept = 0
                    for q in range(n_active):
                        a = active[q]
                        if end[a] >= f:
                            active[kept] = a
                            kept += 1
                    n_active = kept
                    while j < j1 and med_day[j] <= f:
                        if med_mask[j] & exclusion_bits:
                            last_exclusion = med_day[j]
                        j += 1
                r = role[i]
                is_opioid = (r & OPIOID) != 0
                is_benzo = (r & BENZO) != 0
                if not (is_opioid or is_benzo):
                    continue

                stamp += 1
                total = mme[i]
                n_presc = 0
                if is_opioid and prescriber[i] >= 0:
                    seen[prescriber[i]] = stamp
                    n_presc = 1
                la_claim = is_opioid and long_acting[i] == 1 and ingredient[i] >= 0
                any_opioid = False
                any_benzo = False
                duplicate = False
                for q in range(n_active):
                    a = active[q]
                    ra = role[a]
                    if ra & OPIOID:
                        any_opioid = True
                        total += mme[a]
                        p = prescriber[a]
                        if p >= 0 and seen[p] != stamp:
                            seen[p] = stamp
                            n_presc += 1
                        if (
                            la_claim
                            and long_acting[a] == 1
                            and ingredient[a] >= 0
                            and ingredient[a] != ingredient[i]
                        ):
                            duplicate = True
                    if ra & BENZO:
                        any_benzo = True

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
                if (is_opioid and any_benzo) or (is_benzo and any_opioid):
                    bits |= E_OPIOID_BENZO
                if duplicate:
                    bits |= E_DUPLICATE_LA
                cumulative[i] = total
                active_prescribers[i] = n_presc
                excluded[i] = excl
                fired[i] = bits

                active[n_active] = i
                n_active += 1
                if is_opioid and end[i] > opioid_end_all:
                    opioid_end_all = end[i]

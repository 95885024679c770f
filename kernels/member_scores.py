"""The parallel driver: every metric of every member for every as-of date, in one pass
over each member's rows. ``prange`` over chunks of members; each chunk owns its scratch.

Outputs are column-major (one contiguous row of the output matrix per metric column), so the
member table takes its columns without copying.
"""

import numpy as np
from numba import prange

from rxrisk.kernels._jit import ngjit
from rxrisk.kernels.distinct import (
    C_BENZO_FILLS,
    C_OPIOID_FILLS,
    C_PHARMACIES,
    C_PRESCRIBERS,
    covers_horizon,
    fill_counts,
)
from rxrisk.kernels.events import NO_DATE, any_event_since, medical_lookback
from rxrisk.kernels.timeline import build_timeline, opioid_span
from rxrisk.kernels.windows import rolling_max, window_sums

N_COUNTS = 8
N_MME = 3
N_SCALARS_F = 2  # mme_today, mme_rolling_max
N_SCALARS_I = 7  # high_dose_run, mat, naloxone, ed visits, overdoses, last emergency, bits


def n_int_columns(n_windows):
    """Rows of the integer output: ``N_COUNTS`` per window, then ``N_SCALARS_I``."""
    return n_windows * N_COUNTS + N_SCALARS_I


def n_float_columns(n_windows):
    """Rows of the float output: ``N_MME`` per window, then ``N_SCALARS_F``."""
    return n_windows * N_MME + N_SCALARS_F


@ngjit(parallel=True)
def score_members(
    fill_offsets,
    start,
    end,
    role,
    mme,
    prescriber,
    pharmacy,
    med_offsets,
    med_day,
    med_mask,
    as_of,
    windows,
    high_dose_floor,
    rolling_days,
    ed_days,
    dx_days,
    ed_bit,
    od_bit,
    n_prescribers,
    n_pharmacies,
    n_chunks,
    ints,
    floats,
    present,
):
    """Compute the metrics for members ``0 .. len(fill_offsets) - 2``.

    Parameters
    ----------
    fill_offsets, med_offsets : intp arrays (n_members + 1)
        Member segments of the fill arrays and the medical arrays.
    start, end, role, mme, prescriber, pharmacy : arrays (n_fills)
        Fills sorted by member then fill day; ids are dense codes, -1 for null.
    med_day, med_mask : arrays (n_medical)
        Classified medical rows sorted by member then day, with category bits.
    as_of : int32 array (k), ascending day numbers.
    windows : int64 array, ascending; the last is the horizon H.
    high_dose_floor : float, threshold minus tolerance.
    rolling_days, ed_days, dx_days : int
    ed_bit, od_bit : int, category bits of ED visits and overdoses.
    n_prescribers, n_pharmacies : int, sizes of the id spaces (stamp scratch).
    n_chunks : int, number of member chunks (a few per thread, passed in by the caller).
    ints : int32 (n_int_columns(n_windows), n_members * k) output, one row per column of
        output row ``m * k + j``: for window w, row ``w * 8 + c`` holds count c (opioid fills,
        prescribers, pharmacies, opioid days, high-dose days, benzo fills, benzo overlap
        days, CNS overlap days); then high_dose_run, mat_fills, naloxone_fills, ed visits,
        overdoses, last emergency day (or ``NO_DATE``), category bits.
    floats : float64 (n_float_columns(n_windows), n_members * k) output: for window w, row
        ``w * 3 + c`` holds mme total, average, peak; then mme_today, mme_rolling_max.
    present : bool (n_members * k) output: the member has a row for that as-of.

    The outputs must come in zeroed: only values that may differ from 0 are written (members
    without fills, or without opioid coverage, leave most columns untouched).
    """
    n_members = fill_offsets.shape[0] - 1
    k = as_of.shape[0]
    nw = windows.shape[0]
    horizon = windows[nw - 1]
    lo = as_of[0] - horizon + 1
    length = as_of[k - 1] - lo + 1
    reach = horizon if horizon > dx_days else dx_days
    # Days outside the opioid span have mme 0: they are high-dose days only if 0 >= floor,
    # and then every timeline day is kept.
    zero_is_high = 0.0 >= high_dose_floor
    ci = nw * N_COUNTS
    cf = nw * N_MME
    per_chunk = (n_members + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        m0 = c * per_chunk
        m1 = min(n_members, m0 + per_chunk)
        if m0 >= m1:
            continue
        mme_day = np.empty(length + 1, np.float64)
        opioid_day = np.empty(length + 1, np.int32)
        benzo_day = np.empty(length + 1, np.int32)
        cns_day = np.empty(length + 1, np.int32)
        prefix = np.empty(length + 1, np.float64)
        counts = np.zeros((nw, N_COUNTS), np.int32)
        mmes = np.empty((nw, N_MME), np.float64)
        seen_prescriber = np.zeros(max(n_prescribers, 1), np.int64)
        seen_pharmacy = np.zeros(max(n_pharmacies, 1), np.int64)
        stamp = 0
        for m in range(m0, m1):
            i0 = fill_offsets[m]
            i1 = fill_offsets[m + 1]
            j0 = med_offsets[m]
            j1 = med_offsets[m + 1]
            first, last = opioid_span(start, end, role, i0, i1, lo, length)
            has_opioid = first <= last
            if has_opioid:
                if zero_is_high:
                    first = 0
                    last = length - 1
                span = last - first + 1
                build_timeline(
                    start,
                    end,
                    role,
                    mme,
                    i0,
                    i1,
                    lo + first,
                    span,
                    mme_day,
                    opioid_day,
                    benzo_day,
                    cns_day,
                    prefix,
                )
            for j in range(k):
                r = m * k + j
                a = as_of[j]
                seen = False
                if i1 > i0:
                    stamp += 1
                    mat, nal = fill_counts(
                        start,
                        role,
                        prescriber,
                        pharmacy,
                        i0,
                        i1,
                        a,
                        windows,
                        seen_prescriber,
                        seen_pharmacy,
                        stamp,
                        counts,
                    )
                    ints[ci + 1, r] = mat
                    ints[ci + 2, r] = nal
                    if has_opioid:
                        ia = a - lo
                        ints[ci, r] = window_sums(
                            mme_day,
                            opioid_day,
                            benzo_day,
                            cns_day,
                            first,
                            last,
                            ia,
                            windows,
                            high_dose_floor,
                            counts,
                            mmes,
                        )
                        if first <= ia <= last:
                            floats[cf, r] = mme_day[ia - first]
                        floats[cf + 1, r] = rolling_max(
                            prefix, first, last, ia, horizon, rolling_days
                        )
                        for w in range(nw):
                            for q in range(N_COUNTS):
                                ints[w * N_COUNTS + q, r] = counts[w, q]
                            for q in range(N_MME):
                                floats[w * N_MME + q, r] = mmes[w, q]
                    else:  # only the fill counts can be non-zero
                        for w in range(nw):
                            ints[w * N_COUNTS + C_OPIOID_FILLS, r] = counts[w, C_OPIOID_FILLS]
                            ints[w * N_COUNTS + C_PRESCRIBERS, r] = counts[w, C_PRESCRIBERS]
                            ints[w * N_COUNTS + C_PHARMACIES, r] = counts[w, C_PHARMACIES]
                            ints[w * N_COUNTS + C_BENZO_FILLS, r] = counts[w, C_BENZO_FILLS]
                    seen = covers_horizon(start, end, i0, i1, a, horizon)
                ints[ci + 5, r] = NO_DATE
                if j1 > j0:
                    ed, od, last_day, bits = medical_lookback(
                        med_day, med_mask, j0, j1, a, ed_days, dx_days, ed_bit, od_bit
                    )
                    ints[ci + 3, r] = ed
                    ints[ci + 4, r] = od
                    ints[ci + 5, r] = last_day
                    ints[ci + 6, r] = bits
                    if not seen:
                        seen = any_event_since(med_day, j0, j1, a, reach)
                present[r] = seen

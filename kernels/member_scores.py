"""The parallel driver: every metric of every member for every as-of date, in one pass
over each member's rows. ``prange`` over chunks of members; each chunk owns its scratch."""

import numpy as np
from numba import prange

from rxrisk.kernels._jit import ngjit
from rxrisk.kernels.distinct import covers_horizon, fill_counts
from rxrisk.kernels.events import any_event_since, medical_lookback
from rxrisk.kernels.timeline import build_timeline
from rxrisk.kernels.windows import longest_run, prefix_sums, rolling_max, window_sums

N_COUNTS = 8
N_MME = 3


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
    counts,
    mmes,
    scalars_f,
    scalars_i,
    present,
):
    """Compute the SPEC 2 metrics for members ``0 .. len(fill_offsets) - 2``.

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
    counts : int32 (n_members * k, n_windows, 8) output per window: opioid fills,
        prescribers, pharmacies, opioid days, high-dose days, benzo fills, benzo overlap
        days, CNS overlap days.
    mmes : float64 (n_members * k, n_windows, 3) output: total, average, peak.
    scalars_f : float64 (n_members * k, 2) output: mme_today, mme_rolling_max.
    scalars_i : int32 (n_members * k, 7) output: high_dose_run, mat_fills, naloxone_fills,
        ed visits, overdoses, last emergency day (or ``NO_DATE``), category bits.
    present : bool (n_members * k) output: the member has a row for that as-of (SPEC 4).

    The outputs must come in zeroed: rows of members without opioid coverage keep their zero
    MME and overlap figures.
    """
    n_members = fill_offsets.shape[0] - 1
    k = as_of.shape[0]
    nw = windows.shape[0]
    horizon = windows[nw - 1]
    lo = as_of[0] - horizon + 1
    length = as_of[k - 1] - lo + 1
    reach = horizon if horizon > dx_days else dx_days
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
        seen_prescriber = np.zeros(max(n_prescribers, 1), np.int64)
        seen_pharmacy = np.zeros(max(n_pharmacies, 1), np.int64)
        stamp = 0
        for m in range(m0, m1):
            i0 = fill_offsets[m]
            i1 = fill_offsets[m + 1]
            j0 = med_offsets[m]
            j1 = med_offsets[m + 1]
            has_opioid = False
            if i1 > i0:
                has_opioid = build_timeline(
                    start,
                    end,
                    role,
                    mme,
                    i0,
                    i1,
                    lo,
                    length,
                    mme_day,
                    opioid_day,
                    benzo_day,
                    cns_day,
                )
                if has_opioid:
                    prefix_sums(mme_day, length, prefix)
            for j in range(k):
                r = m * k + j
                a = as_of[j]
                ia = a - lo
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
                    counts[r],
                )
                if has_opioid:
                    window_sums(
                        mme_day,
                        opioid_day,
                        benzo_day,
                        cns_day,
                        ia,
                        windows,
                        high_dose_floor,
                        counts[r],
                        mmes[r],
                    )
                    scalars_f[r, 0] = mme_day[ia]
                    scalars_f[r, 1] = rolling_max(prefix, ia, horizon, rolling_days)
                    scalars_i[r, 0] = longest_run(mme_day, ia, horizon, high_dose_floor)
                scalars_i[r, 1] = mat
                scalars_i[r, 2] = nal
                ed, od, last, bits = medical_lookback(
                    med_day, med_mask, j0, j1, a, ed_days, dx_days, ed_bit, od_bit
                )
                scalars_i[r, 3] = ed
                scalars_i[r, 4] = od
                scalars_i[r, 5] = last
                scalars_i[r, 6] = bits
                seen = covers_horizon(start, end, i0, i1, a, horizon)
                if not seen:
                    seen = any_event_since(med_day, j0, j1, a, reach)
                present[r] = seen

"""The parallel driver: every metric of every member for every as-of date, in one pass
over each member's rows. The chunks of members run on threads (``kernels._jit.each_chunk``);
each chunk owns its scratch. (A ``prange`` here compiled the whole scoring kernel a second
time.)

Outputs are column-major (one contiguous row of the output matrix per slot of
``kernels.layout``), so the member table takes its columns without copying. The arguments
are the NamedTuples of ``kernels.containers``; the wrapper is
``rxrisk.scoring.run.run_kernels``.
"""

import numpy as np

from rxrisk.kernels._jit import each_chunk, ngjit
from rxrisk.kernels.distinct import covers_horizon, fill_counts
from rxrisk.kernels.events import any_event_since, medical_lookback
from rxrisk.kernels.layout import (
    N_DEFINITION_FLOATS,
    N_WINDOW_FLOATS,
    N_WINDOW_INTS,
    NO_DATE,
    S_CATEGORY_BITS,
    S_ED_VISITS,
    S_HIGH_DOSE_RUN,
    S_LAST_EMERGENCY,
    S_MAT_FILLS,
    S_MME_ROLLING_MAX,
    S_MME_TODAY,
    S_NALOXONE_FILLS,
    S_OVERDOSES,
    W_BENZO_FILLS,
    W_OPIOID_FILLS,
    W_PHARMACIES,
    W_PRESCRIBERS,
    definition_float,
    single_float,
    single_int,
    window_float,
    window_int,
)
from rxrisk.kernels.timeline import build_timeline, opioid_span
from rxrisk.kernels.windows import fill_averages, rolling_max, window_sums


def score_members(fills, events, params, outputs):
    """Compute the metrics of members ``0 .. n_members - 1`` for every as-of date.

    The contract of the kernel; ``rxrisk.scoring.run.run_kernels`` is its wrapper (it builds
    and checks the arguments). It only splits the members into ``params.n_chunks`` chunks
    and runs :func:`score_chunk` on each, on threads.

    Parameters
    ----------
    fills : kernels.containers.MemberFills
        The members' fills, sorted by member then fill day; ``n_members`` is
        ``len(fills.fill_offsets) - 1``.
    events : kernels.containers.MemberEvents
        The members' classified medical rows, sorted by member then day (the same members).
    params : kernels.containers.ScoreParams
        As-of days, windows, thresholds, lookbacks, category bits and the chunk count.
    outputs : kernels.containers.ScoreOutputs
        Zeroed outputs with one column per output row ``m * k + j`` (``k`` as-of dates),
        one row per slot of ``kernels.layout``; written in place.
    """
    n_members = fills.fill_offsets.shape[0] - 1
    n_chunks = params.n_chunks
    per_chunk = (n_members + n_chunks - 1) // n_chunks
    each_chunk(_score_chunk_c, n_chunks, per_chunk, fills, events, params, outputs)


def _score_chunk_c(c, per_chunk, fills, events, params, outputs):
    """:func:`score_chunk` for chunk ``c`` (plain Python: one compiled kernel)."""
    score_chunk(fills, events, params, outputs, c * per_chunk, (c + 1) * per_chunk)


@ngjit
def score_chunk(fills, events, params, outputs, m0, m1):
    """The metrics of members ``m0 .. min(m1, n_members) - 1`` (one chunk, its own scratch).

    Arguments as for :func:`score_members`. Only values that may differ from 0 are written
    (members without fills, or without opioid coverage, leave most slots untouched).
    """
    fill_offsets = fills.fill_offsets
    start = fills.start
    end = fills.end
    role = fills.role
    med_offsets = events.med_offsets
    med_day = events.med_day
    as_of = params.as_of
    windows = params.windows
    high_dose_floor = params.high_dose_floor
    ints = outputs.ints
    floats = outputs.floats
    m1 = min(m1, fill_offsets.shape[0] - 1)
    if m0 >= m1:
        return
    k = as_of.shape[0]
    nw = windows.shape[0]
    horizon = windows[nw - 1]
    lo = as_of[0] - horizon + 1
    length = as_of[k - 1] - lo + 1
    reach = horizon if horizon > params.dx_days else params.dx_days
    # Days outside the opioid span have mme 0: they are high-dose days only if 0 >= floor,
    # and then every timeline day is kept.
    zero_is_high = 0.0 >= high_dose_floor
    mme_day = np.empty(length + 1, np.float64)
    opioid_day = np.empty(length + 1, np.int32)
    benzo_day = np.empty(length + 1, np.int32)
    cns_day = np.empty(length + 1, np.int32)
    prefix = np.empty(length + 1, np.float64)
    counts = np.zeros((nw, N_WINDOW_INTS), np.int32)
    mmes = np.empty((nw, N_WINDOW_FLOATS), np.float64)
    averages = np.empty((nw, N_DEFINITION_FLOATS), np.float64)
    seen_prescriber = np.zeros(max(fills.n_prescribers, 1), np.int64)
    seen_pharmacy = np.zeros(max(fills.n_pharmacies, 1), np.int64)
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
                fills.mme,
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
                    fills.prescriber,
                    fills.pharmacy,
                    i0,
                    i1,
                    a,
                    windows,
                    seen_prescriber,
                    seen_pharmacy,
                    stamp,
                    counts,
                )
                ints[single_int(nw, S_MAT_FILLS), r] = mat
                ints[single_int(nw, S_NALOXONE_FILLS), r] = nal
                if has_opioid:
                    ia = a - lo
                    ints[single_int(nw, S_HIGH_DOSE_RUN), r] = window_sums(
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
                        floats[single_float(nw, S_MME_TODAY), r] = mme_day[ia - first]
                    floats[single_float(nw, S_MME_ROLLING_MAX), r] = rolling_max(
                        prefix, first, last, ia, horizon, params.rolling_days
                    )
                    for w in range(nw):
                        for q in range(N_WINDOW_INTS):
                            ints[window_int(w, q), r] = counts[w, q]
                        for q in range(N_WINDOW_FLOATS):
                            floats[window_float(w, q), r] = mmes[w, q]
                    if params.mme_definitions:  # (fills filled in a window cover a timeline day)
                        fill_averages(
                            start, end, role, fills.mme, i0, i1, a, windows, mmes, averages
                        )
                        for w in range(nw):
                            for q in range(N_DEFINITION_FLOATS):
                                floats[definition_float(nw, w, q), r] = averages[w, q]
                else:  # only the fill counts can be non-zero
                    for w in range(nw):
                        for q in (W_OPIOID_FILLS, W_PRESCRIBERS, W_PHARMACIES, W_BENZO_FILLS):
                            ints[window_int(w, q), r] = counts[w, q]
                seen = covers_horizon(start, end, i0, i1, a, horizon)
            ints[single_int(nw, S_LAST_EMERGENCY), r] = NO_DATE
            if j1 > j0:
                ed, od, last_day, bits = medical_lookback(
                    med_day,
                    events.med_mask,
                    j0,
                    j1,
                    a,
                    params.ed_days,
                    params.dx_days,
                    params.ed_bit,
                    params.od_bit,
                )
                ints[single_int(nw, S_ED_VISITS), r] = ed
                ints[single_int(nw, S_OVERDOSES), r] = od
                ints[single_int(nw, S_LAST_EMERGENCY), r] = last_day
                ints[single_int(nw, S_CATEGORY_BITS), r] = bits
                if not seen:
                    seen = any_event_since(med_day, j0, j1, a, reach)
            outputs.present[r] = seen

"""Window metrics over a member's daily timeline: totals, averages, peaks,
high-dose days, overlap days and the longest high-dose run, and the rolling maximum; and the
optional average-MME definitions of each window (:func:`fill_averages`).

The day arrays cover only the member's opioid days ``first .. last`` of the timeline (days
outside have mme 0 and no opioid coverage), so the work per member follows its opioid use,
not the window lengths; every sum is the one a pass over all the days would give.
"""

import numpy as np

from rxrisk.kernels._jit import ngjit
from rxrisk.kernels.layout import (
    D_MME_AVG_FILL,
    D_MME_AVG_SUPPLY,
    D_MME_AVG_WINDOW,
    W_BENZO_OVERLAP,
    W_CNS_OVERLAP,
    W_HIGH_DOSE_DAYS,
    W_MME_AVG,
    W_MME_PEAK,
    W_MME_TOTAL,
    W_OPIOID_DAYS,
)
from rxrisk.kernels.roles import OPIOID


@ngjit
def window_sums(
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
):
    """Window metrics for the as-of day at timeline index ``ia``.

    The day arrays hold timeline days ``first .. last`` (index ``d - first``); every other day
    has mme 0 and no coverage, and must not count as high-dose (``high_dose_floor > 0``, or the
    range is the whole timeline). One backward pass from ``min(ia, last)`` over the longest
    window; each window's figures are recorded when the pass is below its first day, and the
    sums are the ones a pass over every day of the window gives (the zero days add +0.0).
    ``windows`` must be ascending and ``ia - windows[-1] + 1 >= 0``.

    Parameters
    ----------
    high_dose_floor : float
        The high-dose threshold minus the tolerance.
    counts : int32 array (n_windows, N_WINDOW_INTS)
        Output; columns W_OPIOID_DAYS, W_HIGH_DOSE_DAYS, W_BENZO_OVERLAP, W_CNS_OVERLAP (of
        ``kernels.layout``) are set.
    mmes : float64 array (n_windows, N_WINDOW_FLOATS)
        Output: columns W_MME_TOTAL, W_MME_AVG (over days of use), W_MME_PEAK.

    Returns
    -------
    int
        The longest run of consecutive high-dose days in the longest window.
    """
    nw = windows.shape[0]
    best = 0
    run = 0
    total = 0.0
    peak = 0.0
    # np.intp, not literal zeros: a literal compiles ``_record`` again while types are inferred
    op_days = np.intp(0)
    hd_days = np.intp(0)
    bz_days = np.intp(0)
    cns_days = np.intp(0)
    k = np.intp(0)
    d = ia if ia < last else last
    bottom = ia - windows[nw - 1] + 1
    if bottom < first:
        bottom = first
    while True:
        while k < nw and ia - windows[k] + 1 > d:
            _record(k, total, peak, op_days, hd_days, bz_days, cns_days, counts, mmes)
            k += 1
        if k == nw or d < bottom:
            break
        v = mme_day[d - first]
        total += v
        if v > peak:
            peak = v
        if opioid_day[d - first] > 0:
            op_days += 1
            if benzo_day[d - first] > 0:
                bz_days += 1
            if cns_day[d - first] > 0:
                cns_days += 1
        if v >= high_dose_floor:
            hd_days += 1
            run += 1
            if run > best:
                best = run
        else:
            run = 0
        d -= 1
    # the windows left start before ``first``: their days before it add +0.0 to the total
    while k < nw:
        _record(k, total + 0.0, peak, op_days, hd_days, bz_days, cns_days, counts, mmes)
        k += 1
    return best


@ngjit
def _record(k, total, peak, op_days, hd_days, bz_days, cns_days, counts, mmes):
    counts[k, W_OPIOID_DAYS] = op_days
    counts[k, W_HIGH_DOSE_DAYS] = hd_days
    counts[k, W_BENZO_OVERLAP] = bz_days
    counts[k, W_CNS_OVERLAP] = cns_days
    mmes[k, W_MME_TOTAL] = total
    mmes[k, W_MME_AVG] = total / op_days if op_days > 0 else 0.0
    mmes[k, W_MME_PEAK] = peak


@ngjit
def fill_averages(start, end, role, mme, i0, i1, a, windows, mmes, averages):
    """The optional average-MME definitions of each window ending on day ``a``.

    Fills ``i0 .. i1 - 1`` are one member's, sorted by fill date. One backward pass from the
    last fill on or before ``a`` (as in ``distinct.fill_counts``); each window's figures are
    recorded when the pass is below its first day. A fill's covered days are
    ``end - start + 1``.

    Parameters
    ----------
    mmes : float64 array (n_windows, N_WINDOW_FLOATS)
        The figures of :func:`window_sums` for day ``a`` (column W_MME_TOTAL is read).
    averages : float64 array (n_windows, N_DEFINITION_FLOATS)
        Output, per window: D_MME_AVG_WINDOW (the MME total over the window length), and over
        the opioid fills with a fill day in the window D_MME_AVG_SUPPLY (sum of daily MME x
        covered days over the sum of covered days) and D_MME_AVG_FILL (mean daily MME); these
        two are 0 without such fills.
    """
    nw = windows.shape[0]
    j = i1 - 1
    while j >= i0 and start[j] > a:
        j -= 1
    n_fills = 0
    days = 0
    dose = 0.0  # sum of daily MME x covered days
    daily = 0.0  # sum of daily MME
    k = 0
    while k < nw:
        while k < nw and (j < i0 or start[j] < a - windows[k] + 1):
            averages[k, D_MME_AVG_WINDOW] = mmes[k, W_MME_TOTAL] / windows[k]
            averages[k, D_MME_AVG_SUPPLY] = dose / days if days > 0 else 0.0
            averages[k, D_MME_AVG_FILL] = daily / n_fills if n_fills > 0 else 0.0
            k += 1
        if k == nw:
            break
        if role[j] & OPIOID:
            ds = end[j] - start[j] + 1
            n_fills += 1
            days += ds
            dose += mme[j] * ds
            daily += mme[j]
        j -= 1


@ngjit
def _prefix_at(prefix, first, last, x):
    """Sum of the mme of timeline days before ``x``, as a forward pass over every day from
    day 0 gives it, from the prefix sums of days ``first .. last``."""
    if x <= first:
        return 0.0
    if x <= last + 1:
        return prefix[x - first]
    return prefix[last + 1 - first] + 0.0


@ngjit
def rolling_max(prefix, first, last, ia, horizon, span):
    """Largest average of ``span`` consecutive days inside ``ia - horizon + 1 .. ia``.

    ``prefix`` holds the prefix sums of timeline days ``first .. last`` (every other day is 0).
    Only the spans with an end inside that range are summed one by one; all others sum to 0,
    or to the whole range's total when they cover it, which is checked once.
    """
    best = 0.0
    if span > horizon:
        return best
    e0 = ia - horizon + span  # the first day on which a full span ends
    e1 = ia
    # spans whose last day is in first .. last
    lo = max(e0, first)
    hi = min(e1, last)
    for e in range(lo, hi + 1):
        s = _prefix_at(prefix, first, last, e + 1) - _prefix_at(prefix, first, last, e + 1 - span)
        if s > best:
            best = s
    # spans whose day before the first is in first .. last
    lo = max(e0, first + span, hi + 1)
    hi = min(e1, last + span)
    for e in range(lo, hi + 1):
        s = _prefix_at(prefix, first, last, e + 1) - _prefix_at(prefix, first, last, e + 1 - span)
        if s > best:
            best = s
    # spans covering the whole range
    e = max(e0, last + 1)
    if e <= min(e1, first + span - 1):
        s = _prefix_at(prefix, first, last, e + 1) - _prefix_at(prefix, first, last, e + 1 - span)
        if s > best:
            best = s
    return best / span

"""Window metrics over a member's daily timeline (SPEC 2): totals, averages, peaks,
high-dose days, overlap days, the rolling maximum and the longest high-dose run."""

from rxrisk.kernels._jit import ngjit

# Column positions in the per-window outputs.
C_OPIOID_DAYS = 3
C_HIGH_DOSE_DAYS = 4
C_BENZO_OVERLAP = 6
C_CNS_OVERLAP = 7
M_TOTAL = 0
M_AVG = 1
M_PEAK = 2


@ngjit
def window_sums(
    mme_day, opioid_day, benzo_day, cns_day, ia, windows, high_dose_floor, counts, mmes
):
    """Window metrics for the as-of day at timeline index ``ia``.

    One backward pass over the longest window; each window's figures are recorded when the
    pass reaches its first day. ``windows`` must be ascending and ``ia - windows[-1] + 1 >= 0``.

    Parameters
    ----------
    high_dose_floor : float
        The high-dose threshold minus the tolerance.
    counts : int32 array (n_windows, 8)
        Output; columns C_OPIOID_DAYS, C_HIGH_DOSE_DAYS, C_BENZO_OVERLAP, C_CNS_OVERLAP are set.
    mmes : float64 array (n_windows, 3)
        Output: total, average over days of use, peak.
    """
    nw = windows.shape[0]
    total = 0.0
    peak = 0.0
    op_days = 0
    hd_days = 0
    bz_days = 0
    cns_days = 0
    k = 0
    length = 0
    d = ia
    while k < nw:
        v = mme_day[d]
        total += v
        if v > peak:
            peak = v
        if opioid_day[d] > 0:
            op_days += 1
            if benzo_day[d] > 0:
                bz_days += 1
            if cns_day[d] > 0:
                cns_days += 1
        if v >= high_dose_floor:
            hd_days += 1
        length += 1
        d -= 1
        while k < nw and length == windows[k]:
            counts[k, C_OPIOID_DAYS] = op_days
            counts[k, C_HIGH_DOSE_DAYS] = hd_days
            counts[k, C_BENZO_OVERLAP] = bz_days
            counts[k, C_CNS_OVERLAP] = cns_days
            mmes[k, M_TOTAL] = total
            mmes[k, M_AVG] = total / op_days if op_days > 0 else 0.0
            mmes[k, M_PEAK] = peak
            k += 1


@ngjit
def prefix_sums(mme_day, length, prefix):
    """``prefix[i]`` = sum of ``mme_day[:i]`` for i in 0..length."""
    acc = 0.0
    prefix[0] = 0.0
    for d in range(length):
        acc += mme_day[d]
        prefix[d + 1] = acc


@ngjit
def rolling_max(prefix, ia, horizon, span):
    """Largest average of ``span`` consecutive days inside ``ia - horizon + 1 .. ia``."""
    best = 0.0
    if span > horizon:
        return best
    first_end = ia - horizon + span  # the first day on which a full span ends
    for e in range(first_end, ia + 1):
        s = prefix[e + 1] - prefix[e + 1 - span]
        if s > best:
            best = s
    return best / span


@ngjit
def longest_run(mme_day, ia, horizon, high_dose_floor):
    """Longest run of consecutive days with ``mme >= floor`` inside ``ia - horizon + 1 .. ia``."""
    best = 0
    run = 0
    for d in range(ia - horizon + 1, ia + 1):
        if mme_day[d] >= high_dose_floor:
            run += 1
            if run > best:
                best = run
        else:
            run = 0
    return best

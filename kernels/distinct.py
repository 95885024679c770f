"""Fill counts and distinct prescribers / pharmacies per window."""

from rxrisk.kernels._jit import ngjit
from rxrisk.kernels.layout import W_BENZO_FILLS, W_OPIOID_FILLS, W_PHARMACIES, W_PRESCRIBERS
from rxrisk.kernels.roles import BENZO, MAT, NALOXONE, OPIOID


@ngjit
def fill_counts(
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
):
    """Counts over fills with fill date in each window ending on day ``a``.

    Fills ``i0 .. i1 - 1`` are one member's, sorted by fill date. One backward pass from the
    last fill on or before ``a``; distinct ids are counted with stamp arrays
    (``seen_*[id] == stamp`` means already counted), so no clearing is needed between calls
    as long as ``stamp`` is new each call.

    Returns
    -------
    (int, int)
        mat fills and naloxone fills in the longest window.
    """
    nw = windows.shape[0]
    j = i1 - 1
    while j >= i0 and start[j] > a:
        j -= 1
    op_fills = 0
    n_presc = 0
    n_pharm = 0
    bz_fills = 0
    mat = 0
    nal = 0
    k = 0
    while k < nw:
        while k < nw and (j < i0 or start[j] < a - windows[k] + 1):
            counts[k, W_OPIOID_FILLS] = op_fills
            counts[k, W_PRESCRIBERS] = n_presc
            counts[k, W_PHARMACIES] = n_pharm
            counts[k, W_BENZO_FILLS] = bz_fills
            k += 1
        if k == nw:
            break
        r = role[j]
        if r & OPIOID:
            op_fills += 1
            p = prescriber[j]
            if p >= 0 and seen_prescriber[p] != stamp:
                seen_prescriber[p] = stamp
                n_presc += 1
            q = pharmacy[j]
            if q >= 0 and seen_pharmacy[q] != stamp:
                seen_pharmacy[q] = stamp
                n_pharm += 1
        if r & BENZO:
            bz_fills += 1
        if r & MAT:
            mat += 1
        if r & NALOXONE:
            nal += 1
        j -= 1
    return mat, nal


@ngjit
def covers_horizon(start, end, i0, i1, a, horizon):
    """Whether any fill covers or is filled in ``a - horizon + 1 .. a``."""
    first = a - horizon + 1
    for i in range(i0, i1):
        if start[i] > a:
            break
        if end[i] >= first:
            return True
    return False

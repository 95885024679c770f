"""Medical lookbacks over category bitmasks."""

from rxrisk.kernels._jit import ngjit
from rxrisk.kernels.layout import NO_DATE


@ngjit
def medical_lookback(day, mask, j0, j1, a, ed_days, dx_days, ed_bit, od_bit):
    """Lookback figures of one member for as-of day ``a``.

    Rows ``j0 .. j1 - 1`` are the member's classified medical rows sorted by day.

    Returns
    -------
    (int, int, int, int)
        ED visit dates in ``a-E+1 .. a``; overdose dates in ``a-D+1 .. a``; the latest
        emergency date in ``a-D+1 .. a`` (``NO_DATE`` when none); and the OR of category bits
        in ``a-D+1 .. a``.
    """
    j = j1 - 1
    while j >= j0 and day[j] > a:
        j -= 1
    reach = ed_days if ed_days > dx_days else dx_days
    ed_first = a - ed_days + 1
    dx_first = a - dx_days + 1
    ed_count = 0
    od_count = 0
    last_ed_day = NO_DATE
    last_od_day = NO_DATE
    last_emergency = NO_DATE
    bits = 0
    while j >= j0 and day[j] >= a - reach + 1:
        d = day[j]
        m = mask[j]
        if d >= ed_first and (m & ed_bit) and d != last_ed_day:
            ed_count += 1
            last_ed_day = d
        if d >= dx_first:
            bits |= m
            if (m & od_bit) and d != last_od_day:
                od_count += 1
                last_od_day = d
            if (m & (ed_bit | od_bit)) and last_emergency == NO_DATE:
                last_emergency = d
        j -= 1
    return ed_count, od_count, last_emergency, bits


@ngjit
def any_event_since(day, j0, j1, a, span):
    """Whether any row lies in ``a - span + 1 .. a``."""
    for j in range(j1 - 1, j0 - 1, -1):
        if day[j] > a:
            continue
        return day[j] >= a - span + 1
    return False

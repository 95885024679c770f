"""Daily timelines of one member: MME per day and coverage counts by role.

Difference arrays and one prefix-sum pass: O(fills + days), no allocation. The driver builds
the timeline over the member's opioid span only (``opioid_span``): outside it no day has
opioid coverage, so no day there has mme or counts toward any overlap.
"""

from rxrisk.kernels._jit import ngjit
from rxrisk.kernels.roles import BENZO, CNS, OPIOID


@ngjit
def build_timeline(
    start, end, role, mme, i0, i1, lo, length, mme_day, opioid_day, benzo_day, cns_day, prefix
):
    """Fill the day arrays for days ``lo .. lo + length - 1`` from fills ``i0 .. i1 - 1``.

    Parameters
    ----------
    start, end : int32 arrays
        First and last covered day (inclusive) of each fill.
    role : uint8 array
        Role bits of each fill (see ``roles``).
    mme : float64 array
        Daily MME of each fill (0 for non-opioids).
    i0, i1 : int
        The member's fill range.
    lo, length : int
        First day and number of days of the timeline.
    mme_day, opioid_day, benzo_day, cns_day : arrays of at least ``length + 1`` elements
        Scratch, overwritten: on return ``mme_day[d]`` is mme(lo + d) (exactly 0 on days no
        opioid covers) and the ``*_day`` arrays hold the number of fills of that role
        covering the day.
    prefix : float64 array of at least ``length + 1`` elements
        Output: ``prefix[d]`` is the sum of ``mme_day[:d]`` (summed in day order).

    Returns
    -------
    bool
        Whether any opioid fill covers a day of the timeline.
    """
    for d in range(length + 1):
        mme_day[d] = 0.0
        opioid_day[d] = 0
        benzo_day[d] = 0
        cns_day[d] = 0
    any_opioid = False
    for i in range(i0, i1):
        s = start[i] - lo
        e = end[i] - lo
        if e < 0 or s >= length:
            continue
        if s < 0:
            s = 0
        if e > length - 1:
            e = length - 1
        r = role[i]
        if r & OPIOID:
            any_opioid = True
            mme_day[s] += mme[i]
            mme_day[e + 1] -= mme[i]
            opioid_day[s] += 1
            opioid_day[e + 1] -= 1
        if r & BENZO:
            benzo_day[s] += 1
            benzo_day[e + 1] -= 1
        if r & CNS:
            cns_day[s] += 1
            cns_day[e + 1] -= 1
    acc = 0.0
    total = 0.0
    prefix[0] = 0.0
    op = 0
    bz = 0
    cn = 0
    for d in range(length):
        acc += mme_day[d]
        op += opioid_day[d]
        bz += benzo_day[d]
        cn += cns_day[d]
        v = acc if op > 0 else 0.0
        if op == 0:
            acc = 0.0  # no opioid covers the day: drop rounding residue of ended fills
        mme_day[d] = v
        total += v
        prefix[d + 1] = total
        opioid_day[d] = op
        benzo_day[d] = bz
        cns_day[d] = cn
    return any_opioid


@ngjit
def opioid_span(start, end, role, i0, i1, lo, length):
    """First and last timeline index (``day - lo`` in ``0 .. length - 1``) covered by an
    opioid fill of ``i0 .. i1 - 1``; ``(length, -1)`` when none is."""
    first = length
    last = -1
    for i in range(i0, i1):
        if not (role[i] & OPIOID):
            continue
        s = start[i] - lo
        e = end[i] - lo
        if e < 0 or s >= length:
            continue
        if s < first:
            first = max(s, 0)
        if e > last:
            last = min(e, length - 1)
    return first, last

"""Per-fill arithmetic: covered days and daily MME of one fill (the encoder's only copy of
it; ``tests/naive.py`` reads the same rules in plain Python, and the tests compare the two)."""

import math

import numpy as np

from rxrisk.kernels._jit import ngjit
from rxrisk.kernels.roles import OPIOID

#: Covered days are capped here (2**24 days, about 45,000 years: beyond any date in play),
#: so that no quantity, however large, overflows the day arithmetic. The daily MME still
#: divides by the uncapped days of supply.
MAX_COVERED_DAYS = 1 << 24
#: The last covered day is capped at the largest day number a date32 holds.
LAST_DAY = 2**31 - 1


@ngjit
def supply_days(days_supply, quantity, days_per_unit):
    """The days of supply as a float: days_supply, or max(1, round_half_up(quantity x
    days_per_unit)) when days_per_unit is set (patches); may be huge or infinite for absurd
    quantities. The same float operations as ``rxrisk.ingest.drugs.supply_days`` (the
    vectorised form validation uses)."""
    if days_per_unit != days_per_unit:  # NaN: not a patch
        return np.float64(days_supply)
    # Python floats under NUMBA_DISABLE_JIT: an overflow is inf, not a numpy warning
    v = np.floor(float(quantity) * float(days_per_unit) + 0.5)
    if v < 1.0:
        v = 1.0
    return np.float64(v)


@ngjit
def covered_of(ds):
    """Covered days (int64) of a float days of supply: capped at ``MAX_COVERED_DAYS``."""
    if not ds < MAX_COVERED_DAYS:  # also inf and NaN
        return np.int64(MAX_COVERED_DAYS)
    return np.int64(ds)


@ngjit
def covered(days_supply, quantity, days_per_unit):
    """Covered days: ``supply_days`` capped at ``MAX_COVERED_DAYS``."""
    return covered_of(supply_days(days_supply, quantity, days_per_unit))


@ngjit
def last_day(start, covered_days):
    """Last covered day of a fill starting on day ``start``, capped at ``LAST_DAY``."""
    e = np.int64(start) + covered_days - 1
    if e > LAST_DAY:
        return np.int64(LAST_DAY)
    return e


@ngjit
def daily(role, strength, quantity, ds, factor):
    """strength x quantity / ds x factor for opioid fills when finite; 0 otherwise. ``ds`` is
    the uncapped days of supply (``supply_days``)."""
    if not (role & OPIOID) or ds == 0:
        return 0.0
    value = float(strength) * float(quantity) / float(ds) * float(factor)
    if math.isfinite(value):
        return value
    return 0.0

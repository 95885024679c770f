"""Per-fill arithmetic (SPEC 2): covered days and daily MME of one fill, with the same float
operations as the vectorised ``rxrisk.encode.covered_days`` and ``daily_mme``."""

import math

import numpy as np

from rxrisk.kernels._jit import ngjit
from rxrisk.kernels.roles import OPIOID


@ngjit
def covered(days_supply, quantity, days_per_unit):
    """days_supply, or max(1, round_half_up(quantity x days_per_unit)) when days_per_unit is
    set (patches): the same float operations as ``rxrisk.encode.covered_days``."""
    if days_per_unit != days_per_unit:  # NaN: not a patch
        return np.int64(days_supply)
    v = np.floor(quantity * days_per_unit + 0.5)
    if v < 1.0:
        v = 1.0
    return np.int64(v)


@ngjit
def daily(role, strength, quantity, ds, factor):
    """strength x quantity / ds x factor for opioid fills when finite; 0 otherwise (the same
    float operations as ``rxrisk.encode.daily_mme``)."""
    if not (role & OPIOID) or ds == 0:
        return 0.0
    value = strength * quantity / np.float64(ds) * factor
    if math.isfinite(value):
        return value
    return 0.0

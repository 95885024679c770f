"""The measure rules: who is eligible for, in the denominator of and in the numerator of each
standard measure, from the per-(member, period) quantities."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: The measures, in table order (the order of the summary and of the detail's bool columns).
MEASURES: tuple[str, ...] = (
    "high_dose_average",
    "high_dose_sustained",
    "multiple_prescribers",
    "multiple_pharmacies",
    "multiple_providers",
    "high_dose_multiple_providers",
    "opioid_benzodiazepine",
    "continued_use_15_of_30",
    "continued_use_31_of_62",
)

#: Float quantities meet a threshold ``t`` when they are at least ``t - TOLERANCE``.
TOLERANCE = 1e-9

#: The quantities :func:`measure_flags` reads.
FLAG_INPUTS = (
    "age",
    "enrolled",
    "excluded",
    "opioid_fill_dates",
    "cumulative_days_supply",
    "avg_mme",
    "longest_high_dose_run",
    "prescribers",
    "pharmacies",
    "benzo_fill_dates",
    "opioid_benzo_days",
    "has_episode",
    "covered_30",
    "covered_62",
)


def measure_flags(
    q: Mapping[str, np.ndarray], settings
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Eligibility, denominator and numerator of every measure, row by row.

    ``eligible`` is the denominator before exclusions; ``denominator`` is eligible and not
    excluded; ``numerator`` is in the denominator and meets the measure's condition.

    Parameters
    ----------
    q : Mapping[str, numpy.ndarray]
        One array per name of :data:`FLAG_INPUTS`, all of one length (one element per
        (member, period) row): ``age`` (int, negative when unknown), ``enrolled``,
        ``excluded`` and ``has_episode`` (bool), ``avg_mme`` (float) and the counts (int).
    settings : rxrisk.quality.settings.MeasureSettings
        The thresholds (``min_age``, ``min_opioid_fill_dates``, ...).

    Returns
    -------
    dict[str, tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]]
        Measure name (:data:`MEASURES`, in order) -> ``(eligible, denominator, numerator)``
        bool arrays. Measures with the same eligibility share its arrays: do not modify them.
    """
    base = (np.asarray(q["age"]) >= settings.min_age) & np.asarray(q["enrolled"], bool)
    included = ~np.asarray(q["excluded"], bool)
    opioid = (
        base
        & (np.asarray(q["opioid_fill_dates"]) >= settings.min_opioid_fill_dates)
        & (np.asarray(q["cumulative_days_supply"]) >= settings.min_cumulative_days_supply)
    )
    continued = base & np.asarray(q["has_episode"], bool)
    high_average = np.asarray(q["avg_mme"]) >= settings.high_dose_average_mme - TOLERANCE
    sustained = np.asarray(q["longest_high_dose_run"]) >= settings.high_dose_run_days
    prescribers = np.asarray(q["prescribers"]) >= settings.min_prescribers
    pharmacies = np.asarray(q["pharmacies"]) >= settings.min_pharmacies
    benzo = (np.asarray(q["benzo_fill_dates"]) >= settings.min_benzo_fill_dates) & (
        np.asarray(q["opioid_benzo_days"]) >= settings.min_opioid_benzo_days
    )
    conditions = {
        "high_dose_average": (opioid, high_average),
        "high_dose_sustained": (opioid, sustained),
        "multiple_prescribers": (opioid, prescribers),
        "multiple_pharmacies": (opioid, pharmacies),
        "multiple_providers": (opioid, prescribers & pharmacies),
        "high_dose_multiple_providers": (opioid, sustained & prescribers & pharmacies),
        "opioid_benzodiazepine": (opioid, benzo),
        "continued_use_15_of_30": (
            continued,
            np.asarray(q["covered_30"]) >= settings.min_covered_30,
        ),
        "continued_use_31_of_62": (
            continued,
            np.asarray(q["covered_62"]) >= settings.min_covered_62,
        ),
    }
    denominators = {id(opioid): opioid & included, id(continued): continued & included}
    return {
        name: (eligible, denominators[id(eligible)], denominators[id(eligible)] & condition)
        for name, (eligible, condition) in conditions.items()
    }

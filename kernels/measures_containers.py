"""The contract of the standard-measures kernel (``kernels/measures.py``): its containers, the
slots of its outputs, its sentinels and exclusion codes.

Plain NumPy and ``typing.NamedTuple`` (no numba): the wrapper (``rxrisk.quality.compute``)
and the enrollment intake (``rxrisk.quality.enrollment``) import it without compiling
anything. The kernel also reads the fills and medical rows of ``kernels.containers``
(:class:`~rxrisk.kernels.containers.MemberFills`,
:class:`~rxrisk.kernels.containers.MemberEvents`).

Outputs are column-major: one row per slot, one column per output row ``r = m * n_periods + j``
(member ``m``, period ``j``). Days are days since 1970-01-01.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: An absent day (no opioid claim in the period, no episode): the smallest int32.
NO_DAY = -(2**31)
#: The end day of an open-ended enrollment span: the largest int32.
OPEN_END = 2**31 - 1

#: Exclusion codes of slot :data:`I_EXCLUSION`, in the order the categories are tried.
EXCLUSION_NONE = -1
EXCLUSION_HOSPICE = 0
EXCLUSION_CANCER = 1
EXCLUSION_SICKLE = 2
#: Name of each exclusion code ``0 ..``: the detail table's ``exclusion`` strings.
EXCLUSION_NAMES = ("hospice_palliative", "cancer", "sickle_cell")

#: Length of the short and long continued-use windows (``e .. e + 29``, ``e .. e + 61``); an
#: episode must start on or before ``p1 - (EPISODE_LONG_DAYS - 1)``.
EPISODE_SHORT_DAYS = 30
EPISODE_LONG_DAYS = 62

# -- integer slots of MeasureOutputs.ints (int32) ---------------------------------------------
I_ENROLLED = 0  # 1 when continuously enrolled in the period (gaps allowed, p1 covered), else 0
I_PRODUCT = 1  # product code of the span covering p1 with the latest start; -1 when none
I_EXCLUSION = 2  # EXCLUSION_* code of the first excluding category with a row in P; -1 none
I_OPIOID_CLAIMS = 3  # opioid claims filled in P
I_OPIOID_FILL_DATES = 4  # distinct fill days of those claims
I_CUMULATIVE_DAYS_SUPPLY = 5  # sum of their covered days (not clipped, overlaps each time)
I_IPSD = 6  # earliest opioid fill day in P; NO_DAY when none
I_TREATMENT_DAYS = 7  # days from ipsd to the last day an opioid claim in P covers, clipped to p1
I_LONGEST_HIGH_DOSE_RUN = 8  # longest run of days of P with mme(d) >= the high-dose floor
I_PRESCRIBERS = 9  # distinct non-null prescribers of the opioid claims in P
I_PHARMACIES = 10  # distinct non-null pharmacies of the opioid claims in P
I_BENZO_FILL_DATES = 11  # distinct fill days of the benzodiazepine claims in P
I_OPIOID_BENZO_DAYS = 12  # days of P covered by an opioid and a benzodiazepine claim in P
I_EPISODE_START = 13  # first opioid fill day starting a new episode; NO_DAY when none
I_COVERED_30 = 14  # days of episode_start .. +29 covered by opioid claims filled from it on
I_COVERED_62 = 15  # days of episode_start .. +61 covered by opioid claims filled from it on
N_INT_SLOTS = 16

#: Name of each integer slot, in slot order (the quantity names of the detail table).
INT_SLOT_NAMES = (
    "enrolled",
    "product",
    "exclusion",
    "opioid_claims",
    "opioid_fill_dates",
    "cumulative_days_supply",
    "ipsd",
    "treatment_days",
    "longest_high_dose_run",
    "prescribers",
    "pharmacies",
    "benzo_fill_dates",
    "opioid_benzo_days",
    "episode_start",
    "covered_30",
    "covered_62",
)

# -- float slots of MeasureOutputs.floats (float64) -------------------------------------------
F_AVG_MME = 0  # sum of mme(d) over the treatment days / treatment_days; 0 without treatment
N_FLOAT_SLOTS = 1
FLOAT_SLOT_NAMES = ("avg_mme",)

#: The value each integer slot holds for a row the kernel leaves alone (the member has nothing
#: for it): 0, except the codes and days whose "none" is not 0.
INT_FILL = np.zeros(N_INT_SLOTS, np.int32)
INT_FILL[I_PRODUCT] = -1
INT_FILL[I_EXCLUSION] = EXCLUSION_NONE
INT_FILL[I_IPSD] = NO_DAY
INT_FILL[I_EPISODE_START] = NO_DAY
INT_FILL.flags.writeable = False


class MemberSpans(NamedTuple):
    """The enrollment spans of the members, in the members' (sorted) order.

    A member's spans are sorted by (start, end, product); they may overlap or touch.

    Attributes
    ----------
    span_offsets : numpy.ndarray of intp, shape (n_members + 1,)
        Spans ``span_offsets[m] .. span_offsets[m + 1] - 1`` are member ``m``'s;
        non-decreasing, ``span_offsets[-1] == n_spans``.
    span_start : numpy.ndarray of int32, shape (n_spans,)
        First enrolled day.
    span_end : numpy.ndarray of int32, shape (n_spans,)
        Last enrolled day (inclusive), at least ``span_start``; :data:`OPEN_END` for an
        open-ended span.
    span_product : numpy.ndarray of int32, shape (n_spans,)
        Product code: the rank of the span's product name among the sorted distinct names
        (so the smallest product name has the smallest code).
    """

    span_offsets: np.ndarray
    span_start: np.ndarray
    span_end: np.ndarray
    span_product: np.ndarray


class MeasureParams(NamedTuple):
    """The periods and the settings of a measures run (Python ``int`` and ``float`` scalars).

    Attributes
    ----------
    periods : numpy.ndarray of int32, shape (n_periods, 2)
        First and last day (inclusive) of each period, sorted, distinct, at least one.
    max_gaps : int
        Most enrollment gaps (maximal runs of uncovered days of the period, either end
        included) a continuously enrolled member may have.
    max_gap_days : int
        Longest gap, in days, a continuously enrolled member may have.
    high_dose_floor : float
        The high-dose daily MME minus the tolerance: a day is high-dose when ``mme(d)`` is at
        least this.
    negative_history_days : int
        An episode starts on an opioid fill day ``e`` when no opioid claim filled on or before
        the period's last day covers any of the this many days before ``e``.
    hospice_bit : int
        Bit of ``hospice_palliative`` in ``MemberEvents.med_mask``.
    cancer_bit : int
        Bit of ``cancer`` in ``MemberEvents.med_mask``.
    sickle_bit : int
        Bit of ``sickle_cell`` in ``MemberEvents.med_mask``.
    n_chunks : int
        Number of member chunks the kernel runs on threads (a few per thread; at least 1).
    """

    periods: np.ndarray
    max_gaps: int
    max_gap_days: int
    high_dose_floor: float
    negative_history_days: int
    hospice_bit: int
    cancer_bit: int
    sickle_bit: int
    n_chunks: int


class MeasureOutputs(NamedTuple):
    """What the kernel writes, one column per output row ``r = m * n_periods + j``.

    They must come in filled with the "nothing" values (:meth:`filled`): the kernel writes the
    rows of a member only where the member has something (spans, claims, medical rows).

    Attributes
    ----------
    ints : numpy.ndarray of int32, shape (N_INT_SLOTS, n_members * n_periods)
        Integer quantities; row ``s`` is slot ``I_*`` (:data:`INT_SLOT_NAMES`).
    floats : numpy.ndarray of float64, shape (N_FLOAT_SLOTS, n_members * n_periods)
        Float quantities; row ``s`` is slot ``F_*`` (:data:`FLOAT_SLOT_NAMES`).
    """

    ints: np.ndarray
    floats: np.ndarray

    @classmethod
    def filled(cls, n_rows: int) -> MeasureOutputs:
        """Outputs for ``n_rows`` rows holding the "nothing" values (:data:`INT_FILL`, 0.0)."""
        ints = np.empty((N_INT_SLOTS, n_rows), np.int32)
        ints[:] = INT_FILL[:, None]
        return cls(ints=ints, floats=np.zeros((N_FLOAT_SLOTS, n_rows), np.float64))


#: The dtype and number of dimensions of every array field, and the Python type of every
#: scalar field, of the measure containers (checked by ``rxrisk.quality.compute``).
FIELD_TYPES = {
    MemberSpans: {
        "span_offsets": (np.intp, 1),
        "span_start": (np.int32, 1),
        "span_end": (np.int32, 1),
        "span_product": (np.int32, 1),
    },
    MeasureParams: {
        "periods": (np.int32, 2),
        "max_gaps": int,
        "max_gap_days": int,
        "high_dose_floor": float,
        "negative_history_days": int,
        "hospice_bit": int,
        "cancer_bit": int,
        "sickle_bit": int,
        "n_chunks": int,
    },
    MeasureOutputs: {
        "ints": (np.int32, 2),
        "floats": (np.float64, 2),
    },
}

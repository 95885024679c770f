"""The public wrapper beside the measures kernel (``measure_claims`` beside
``kernels.measures.measure_members``): the typed kernel arguments, one check, one kernel call,
the members' ages, and the quantities as named columns per (member, period) row."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from rxrisk.config.codesets import CATEGORIES
from rxrisk.kernels import containers as kc
from rxrisk.kernels import measures_containers as mc
from rxrisk.quality.enrollment import NO_BIRTH
from rxrisk.quality.rates import TOLERANCE
from rxrisk.scoring.run import check_field, member_containers, set_threads


@dataclass
class MeasureQuantities:
    """The quantities of every (member, period) row ``r = m * n_periods + j``: one numpy array
    per attribute, all of length ``n_members * n_periods``.

    Attributes
    ----------
    member_index, period_index : numpy.ndarray of int64
        Member ``m`` (position in the claims' sorted ``member_ids``) and period ``j`` of the
        row.
    age : numpy.ndarray of int32
        Completed years on the period's first day; -1 when the member has no birth date
        (negative as well when born after that day).
    enrolled : numpy.ndarray of bool
        Continuously enrolled in the period.
    product : numpy.ndarray of int32
        Product code (rank among the sorted product names) of the span covering the
        period's last day with the latest start; -1 when none covers it.
    exclusion : numpy.ndarray of int32
        ``kernels.measures_containers.EXCLUSION_*`` code; -1 when not excluded.
    opioid_claims, opioid_fill_dates, cumulative_days_supply : numpy.ndarray of int32
        Opioid claims filled in the period, their distinct fill days, and the sum of their
        covered days.
    ipsd : numpy.ndarray of int32
        Earliest opioid fill day in the period; ``NO_DAY`` when none.
    treatment_days : numpy.ndarray of int32
        Days from ipsd to the last day an opioid claim of the period covers, clipped to the
        period; 0 without an opioid claim.
    avg_mme : numpy.ndarray of float64
        Average daily MME over the treatment days; 0 without an opioid claim.
    longest_high_dose_run : numpy.ndarray of int32
        Longest run of consecutive days of the period at or above the high-dose MME.
    prescribers, pharmacies : numpy.ndarray of int32
        Distinct non-null prescribers and pharmacies of the opioid claims of the period.
    benzo_fill_dates, opioid_benzo_days : numpy.ndarray of int32
        Distinct benzodiazepine fill days in the period; days covered by both.
    episode_start : numpy.ndarray of int32
        Start of the continued-use episode; ``NO_DAY`` when none.
    covered_30, covered_62 : numpy.ndarray of int32
        Days of the episode's first 30 and 62 days covered by opioid claims filled from its
        start on.
    """

    member_index: np.ndarray
    period_index: np.ndarray
    age: np.ndarray
    enrolled: np.ndarray
    product: np.ndarray
    exclusion: np.ndarray
    opioid_claims: np.ndarray
    opioid_fill_dates: np.ndarray
    cumulative_days_supply: np.ndarray
    ipsd: np.ndarray
    treatment_days: np.ndarray
    avg_mme: np.ndarray
    longest_high_dose_run: np.ndarray
    prescribers: np.ndarray
    pharmacies: np.ndarray
    benzo_fill_dates: np.ndarray
    opioid_benzo_days: np.ndarray
    episode_start: np.ndarray
    covered_30: np.ndarray
    covered_62: np.ndarray

    def flag_inputs(self) -> dict[str, np.ndarray]:
        """The mapping :func:`rxrisk.quality.rates.measure_flags` reads (``excluded`` and
        ``has_episode`` derived from ``exclusion`` and ``episode_start``)."""
        q = {f.name: getattr(self, f.name) for f in fields(self)}
        q["excluded"] = self.exclusion != mc.EXCLUSION_NONE
        q["has_episode"] = self.episode_start != mc.NO_DAY
        return q

    def take(self, rows: np.ndarray) -> MeasureQuantities:
        """The quantities of the rows ``rows`` (indices or a bool mask)."""
        return MeasureQuantities(*(getattr(self, f.name)[rows] for f in fields(self)))


def measure_claims(claims, spans, birth_day, periods, settings, *, threads=None):
    """Every measure quantity of every member of ``claims`` for every period: the public
    wrapper of the kernel :func:`rxrisk.kernels.measures.measure_members`.

    Builds the kernel's arguments with outputs holding the "nothing" values, checks them once
    (:func:`check_measure_arguments`), calls the kernel once, then computes the ages.

    Parameters
    ----------
    claims : rxrisk.scoring.encode.Claims
        Encoded, member-sorted claims (every used claim, whatever its date).
    spans : rxrisk.kernels.measures_containers.MemberSpans
        The enrollment spans of the same members, in the same order.
    birth_day : numpy.ndarray of int32, shape (n_members,)
        Birth day of each member; :data:`NO_BIRTH` when unknown.
    periods : numpy.ndarray of int, shape (n_periods, 2)
        First and last day of each period (inclusive), sorted, distinct.
    settings : rxrisk.quality.settings.MeasureSettings
        ``max_gaps``, ``max_gap_days``, ``high_dose_mme`` and ``negative_history_days``.
    threads : int or None
        Thread count (None: numba's default).

    Returns
    -------
    MeasureQuantities
    """
    from rxrisk.kernels.measures import measure_members  # lazy: kernels on first use

    n_threads = set_threads(threads)
    n_members = len(claims.member_ids)
    periods = np.ascontiguousarray(periods, np.int32).reshape(-1, 2)
    fills, events = member_containers(claims)
    params = mc.MeasureParams(
        periods=periods,
        max_gaps=int(settings.max_gaps),
        max_gap_days=int(settings.max_gap_days),
        high_dose_floor=float(settings.high_dose_mme) - TOLERANCE,
        negative_history_days=int(settings.negative_history_days),
        hospice_bit=1 << CATEGORIES.index("hospice_palliative"),
        cancer_bit=1 << CATEGORIES.index("cancer"),
        sickle_bit=1 << CATEGORIES.index("sickle_cell"),
        n_chunks=max(1, min(n_members, n_threads * 8)),
    )
    out = mc.MeasureOutputs.filled(n_members * len(periods))
    check_measure_arguments(fills, events, spans, params, out)
    if len(birth_day) != n_members:
        raise ValueError(f"birth_day has {len(birth_day)} elements for {n_members} members")
    if n_members:
        measure_members(fills, events, spans, params, out)
    return _quantities(out, ages(birth_day, periods[:, 0]), len(periods))


def _quantities(out, age: np.ndarray, n_periods: int) -> MeasureQuantities:
    """The kernel's outputs as named columns (plus the row indices and the ages)."""
    n = out.ints.shape[1]
    rows = np.arange(n, dtype=np.int64)
    columns = {name: out.ints[s] for s, name in enumerate(mc.INT_SLOT_NAMES)}
    columns["enrolled"] = columns["enrolled"] != 0
    columns.update({name: out.floats[s] for s, name in enumerate(mc.FLOAT_SLOT_NAMES)})
    return MeasureQuantities(
        member_index=rows // max(n_periods, 1),
        period_index=rows % max(n_periods, 1),
        age=age.ravel(),
        **columns,
    )


def ages(birth_day: np.ndarray, first_days: np.ndarray) -> np.ndarray:
    """Completed years of each member on each day: int32, shape (n_members, n_days).

    A 29 February birthday turns over on 1 March in common years (the month and day are
    compared as they are); -1 for a member whose birth day is :data:`NO_BIRTH`.
    """
    birth = np.asarray(birth_day, np.int64)
    known = birth != NO_BIRTH
    by, bmd = _year_month_day(np.where(known, birth, 0))
    ay, amd = _year_month_day(np.asarray(first_days, np.int64))
    years = ay[None, :] - by[:, None] - (amd[None, :] < bmd[:, None])
    return np.where(known[:, None], years, -1).astype(np.int32)


def _year_month_day(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Calendar year and ``month * 32 + day`` (which orders like (month, day)) of day numbers."""
    dates = days.astype("datetime64[D]")
    year = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    month_start = dates.astype("datetime64[M]")
    month = month_start.astype(np.int64) % 12 + 1
    day = (dates - month_start.astype("datetime64[D]")).astype(np.int64) + 1
    return year, month * 32 + day


def check_measure_arguments(fills, events, spans, params, out) -> None:
    """Check the arguments of :func:`rxrisk.kernels.measures.measure_members` before the call:
    every field has the dtype, dimensions and C-contiguity of the containers' ``FIELD_TYPES``
    (another one would silently compile a new specialisation of the kernel), and the shapes
    agree (the kernel does not check bounds).

    Raises
    ------
    TypeError
        A container of the wrong class, or a field of the wrong type, dtype, dimensions or
        memory layout; the message names the field, what it must be and what it is.
    ValueError
        Shapes that disagree, no period, or a period ending before it starts.
    """
    wanted = (kc.MemberFills, kc.MemberEvents, mc.MemberSpans, mc.MeasureParams, mc.MeasureOutputs)
    for box, cls in zip((fills, events, spans, params, out), wanted, strict=True):
        if type(box) is not cls:
            raise TypeError(f"expected a {cls.__name__}, got {type(box).__name__}")
        types = kc.FIELD_TYPES.get(cls) or mc.FIELD_TYPES[cls]
        for name, want in types.items():
            check_field(f"{cls.__name__}.{name}", getattr(box, name), want)
    periods = params.periods
    if periods.shape[0] == 0 or periods.shape[1] != 2:
        raise ValueError(f"MeasureParams.periods has shape {periods.shape}; it needs (n >= 1, 2)")
    if bool((periods[:, 1] < periods[:, 0]).any()):
        raise ValueError("MeasureParams.periods has a period ending before it starts")
    n_members = max(len(fills.fill_offsets) - 1, 0)
    n = n_members * len(periods)
    sizes = {
        "MemberEvents.med_offsets": (len(events.med_offsets), n_members + 1),
        "MemberSpans.span_offsets": (len(spans.span_offsets), n_members + 1),
        "MeasureOutputs.ints": (out.ints.shape, (mc.N_INT_SLOTS, n)),
        "MeasureOutputs.floats": (out.floats.shape, (mc.N_FLOAT_SLOTS, n)),
    }
    for box, offsets, names in (
        (fills, "fill_offsets", ("start", "end", "role", "mme", "prescriber", "pharmacy")),
        (events, "med_offsets", ("med_day", "med_mask")),
        (spans, "span_offsets", ("span_start", "span_end", "span_product")),
    ):
        bounds = getattr(box, offsets)
        total = int(bounds[-1]) if len(bounds) else 0
        for name in names:
            sizes[f"{type(box).__name__}.{name}"] = (len(getattr(box, name)), total)
    for name, (got, want) in sizes.items():
        if got != want:
            raise ValueError(f"{name}: shape (or size) {got} where the other arguments need {want}")

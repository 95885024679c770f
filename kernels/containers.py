"""The typed arguments of the grouping and member-scoring kernels: NamedTuples of arrays and
scalars, documented field by field.

numba compiles a NamedTuple argument as a tuple of its field types, so a field of another
dtype, dimension or contiguity compiles (and caches) a new specialisation of the kernel. The
wrappers in ``rxrisk.scoring`` build these containers and check them once
(``rxrisk.scoring.run.check_kernel_arguments``) before the kernel call; the kernels read the
fields by name and unpack them before their ``prange`` loops.

Shapes use ``n_members`` (members, in sorted member order), ``n_fills`` (pharmacy fills),
``n_medical`` (classified medical rows), ``k`` (as-of dates) and ``n_windows``; every array is
C-contiguous.
"""

from typing import NamedTuple

import numpy as np


class MemberFills(NamedTuple):
    """The fills of the members, sorted by member, then fill day, then input row.

    Attributes
    ----------
    fill_offsets : numpy.ndarray of intp, shape (n_members + 1,)
        Fills ``fill_offsets[m] .. fill_offsets[m + 1] - 1`` are member ``m``'s;
        ``fill_offsets[-1] == n_fills``.
    start : numpy.ndarray of int32, shape (n_fills,)
        Fill day (days since 1970-01-01).
    end : numpy.ndarray of int32, shape (n_fills,)
        Last day the fill covers (inclusive; ``start`` plus the covered days minus one).
    role : numpy.ndarray of uint8, shape (n_fills,)
        Role bits of the drug (``kernels.roles``: opioid, benzo, CNS, MAT, naloxone).
    mme : numpy.ndarray of float64, shape (n_fills,)
        Daily MME of the fill; 0 for non-opioids and opioids without a conversion factor.
    prescriber : numpy.ndarray of int32, shape (n_fills,)
        Dense prescriber code in ``0 .. n_prescribers - 1``; -1 for a null prescriber.
    pharmacy : numpy.ndarray of int32, shape (n_fills,)
        Dense pharmacy code in ``0 .. n_pharmacies - 1``; -1 for a null pharmacy.
    n_prescribers : int
        Number of distinct prescriber codes (size of the kernel's stamp scratch).
    n_pharmacies : int
        Number of distinct pharmacy codes (size of the kernel's stamp scratch).
    """

    fill_offsets: np.ndarray
    start: np.ndarray
    end: np.ndarray
    role: np.ndarray
    mme: np.ndarray
    prescriber: np.ndarray
    pharmacy: np.ndarray
    n_prescribers: int
    n_pharmacies: int


class MemberEvents(NamedTuple):
    """The classified medical rows of the members, sorted by member, then service day.

    Attributes
    ----------
    med_offsets : numpy.ndarray of intp, shape (n_members + 1,)
        Rows ``med_offsets[m] .. med_offsets[m + 1] - 1`` are member ``m``'s;
        ``med_offsets[-1] == n_medical``.
    med_day : numpy.ndarray of int32, shape (n_medical,)
        Service day (days since 1970-01-01).
    med_mask : numpy.ndarray of uint8, shape (n_medical,)
        Category bits of the row (bit ``i`` is category ``i`` of the code sets).
    """

    med_offsets: np.ndarray
    med_day: np.ndarray
    med_mask: np.ndarray


class ScoreParams(NamedTuple):
    """The as-of dates and the metric settings of a scoring run.

    Attributes
    ----------
    as_of : numpy.ndarray of int32, shape (k,)
        As-of days, ascending.
    windows : numpy.ndarray of int64, shape (n_windows,)
        Window lengths in days, ascending; the last is the horizon.
    high_dose_floor : float
        The high-dose threshold minus the tolerance: a day is high-dose when its MME is at
        least this.
    rolling_days : int
        Length of the rolling average of ``mme_rolling_max``.
    ed_days : int
        ED visit lookback in days.
    dx_days : int
        Diagnosis (and overdose) lookback in days.
    ed_bit : int
        Category bit of ED visits in ``MemberEvents.med_mask``.
    od_bit : int
        Category bit of overdoses in ``MemberEvents.med_mask``.
    n_chunks : int
        Number of member chunks of the parallel loop (a few per thread; at least 1).
    mme_definitions : int
        1 to compute the optional average-MME definitions of every window (the ``D_*`` slots
        of ``kernels.layout``, which the outputs then have), 0 not to (nor have them).
    """

    as_of: np.ndarray
    windows: np.ndarray
    high_dose_floor: float
    rolling_days: int
    ed_days: int
    dx_days: int
    ed_bit: int
    od_bit: int
    n_chunks: int
    mme_definitions: int


class ScoreOutputs(NamedTuple):
    """The member-scoring outputs, column-major, one column per output row ``m * k + j``.

    They must come in zeroed: the kernel writes only the values that may differ from 0.

    Attributes
    ----------
    ints : numpy.ndarray of int32, shape (n_int_slots(n_windows), n_members * k)
        Integer metrics; row ``s`` is slot ``s`` of ``kernels.layout``.
    floats : numpy.ndarray of float64
        Float metrics, shape (n_float_slots(n_windows, mme_definitions), n_members * k); row
        ``s`` is slot ``s`` of ``kernels.layout``.
    present : numpy.ndarray of bool, shape (n_members * k,)
        Whether the member has a row for that as-of date (a fill or a medical row in reach).
    """

    ints: np.ndarray
    floats: np.ndarray
    present: np.ndarray


class GroupingWork(NamedTuple):
    """Scratch of ``kernels.grouping.group_members``, allocated by the caller.

    ``n``, ``nm`` and ``nx`` are the numbers of fills, medical rows and extra member rows;
    ``N = n + nm + nx`` bounds the members (one slot per record). Pass 1 writes the records in
    bucket order; pass 2 writes each bucket's members into its slots.

    Attributes
    ----------
    fill_bucket : numpy.ndarray of uint16, shape (n,)
        Bucket of each fill (input order).
    med_bucket : numpy.ndarray of uint16, shape (nm,)
        Bucket of each medical row.
    extra_bucket : numpy.ndarray of uint16, shape (nx,)
        Bucket of each extra member row.
    fill_key : numpy.ndarray of uint64, shape (n, 3)
        Member key (hi, lo, length) of each fill, in bucket order.
    fill_ints : numpy.ndarray of int32, shape (n, 5)
        Start day, last covered day, prescriber, pharmacy and role of each fill, in bucket
        order.
    fill_mme : numpy.ndarray of float64, shape (n,)
        Daily MME of each fill, in bucket order.
    fill_row : numpy.ndarray of int64, shape (n,)
        Input row of each fill, in bucket order.
    med_key : numpy.ndarray of uint64, shape (nm, 3)
        Member key of each medical row, in bucket order.
    med_day : numpy.ndarray of int32, shape (nm,)
        Service day of each medical row, in bucket order.
    med_mask : numpy.ndarray of uint8, shape (nm,)
        Category bits of each medical row, in bucket order.
    extra_key : numpy.ndarray of uint64, shape (nx, 3)
        Key of each extra member, in bucket order.
    member_key : numpy.ndarray of uint64, shape (N, 3)
        Sorted distinct keys of each bucket, in the bucket's member slots.
    member_fills : numpy.ndarray of intp, shape (N,)
        Fill count of each member slot.
    member_meds : numpy.ndarray of intp, shape (N,)
        Medical row count of each member slot.
    """

    fill_bucket: np.ndarray
    med_bucket: np.ndarray
    extra_bucket: np.ndarray
    fill_key: np.ndarray
    fill_ints: np.ndarray
    fill_mme: np.ndarray
    fill_row: np.ndarray
    med_key: np.ndarray
    med_day: np.ndarray
    med_mask: np.ndarray
    extra_key: np.ndarray
    member_key: np.ndarray
    member_fills: np.ndarray
    member_meds: np.ndarray

    @classmethod
    def allocate(cls, n, nm, nx):
        """Uninitialised scratch for ``n`` fills, ``nm`` medical and ``nx`` extra rows (the
        kernel writes every element it reads)."""
        big = n + nm + nx
        return cls(
            fill_bucket=np.empty(n, np.uint16),
            med_bucket=np.empty(nm, np.uint16),
            extra_bucket=np.empty(nx, np.uint16),
            fill_key=np.empty((n, 3), np.uint64),
            fill_ints=np.empty((n, 5), np.int32),
            fill_mme=np.empty(n, np.float64),
            fill_row=np.empty(n, np.int64),
            med_key=np.empty((nm, 3), np.uint64),
            med_day=np.empty(nm, np.int32),
            med_mask=np.empty(nm, np.uint8),
            extra_key=np.empty((nx, 3), np.uint64),
            member_key=np.empty((big, 3), np.uint64),
            member_fills=np.empty(big, np.intp),
            member_meds=np.empty(big, np.intp),
        )


class GroupedRows(NamedTuple):
    """Output of ``kernels.grouping.group_members``: the members and their rows in final
    order, allocated by the caller (``n``, ``nm``, ``nx`` and ``N`` as for
    :class:`GroupingWork`). Only the first ``n_members`` rows of ``members`` and
    ``n_members + 1`` of the offsets are written.

    Attributes
    ----------
    members : numpy.ndarray of uint64, shape (N, 3)
        Sorted distinct member keys (hi, lo, length).
    fill_offsets : numpy.ndarray of intp, shape (N + 1,)
        Member segments of the fill arrays (see :class:`MemberFills`).
    start : numpy.ndarray of int32, shape (n,)
        Fill day of each sorted fill.
    end : numpy.ndarray of int32, shape (n,)
        Last covered day of each sorted fill.
    role : numpy.ndarray of uint8, shape (n,)
        Role bits of each sorted fill.
    mme : numpy.ndarray of float64, shape (n,)
        Daily MME of each sorted fill.
    prescriber : numpy.ndarray of int32, shape (n,)
        Prescriber code of each sorted fill (-1 for null).
    pharmacy : numpy.ndarray of int32, shape (n,)
        Pharmacy code of each sorted fill (-1 for null).
    row : numpy.ndarray of int64, shape (n,)
        Input row of each sorted fill.
    med_offsets : numpy.ndarray of intp, shape (N + 1,)
        Member segments of the medical arrays (see :class:`MemberEvents`).
    med_day : numpy.ndarray of int32, shape (nm,)
        Service day of each sorted medical row.
    med_mask : numpy.ndarray of uint8, shape (nm,)
        Category bits of each sorted medical row.
    """

    members: np.ndarray
    fill_offsets: np.ndarray
    start: np.ndarray
    end: np.ndarray
    role: np.ndarray
    mme: np.ndarray
    prescriber: np.ndarray
    pharmacy: np.ndarray
    row: np.ndarray
    med_offsets: np.ndarray
    med_day: np.ndarray
    med_mask: np.ndarray

    @classmethod
    def allocate(cls, n, nm, nx):
        """Uninitialised outputs for ``n`` fills, ``nm`` medical and ``nx`` extra rows."""
        big = n + nm + nx
        return cls(
            members=np.empty((big, 3), np.uint64),
            fill_offsets=np.empty(big + 1, np.intp),
            start=np.empty(n, np.int32),
            end=np.empty(n, np.int32),
            role=np.empty(n, np.uint8),
            mme=np.empty(n, np.float64),
            prescriber=np.empty(n, np.int32),
            pharmacy=np.empty(n, np.int32),
            row=np.empty(n, np.int64),
            med_offsets=np.empty(big + 1, np.intp),
            med_day=np.empty(nm, np.int32),
            med_mask=np.empty(nm, np.uint8),
        )


#: The dtype and number of dimensions of every array field, and the Python type of every
#: scalar field, of the kernel arguments (checked by ``rxrisk.scoring.run``).
FIELD_TYPES = {
    MemberFills: {
        "fill_offsets": (np.intp, 1),
        "start": (np.int32, 1),
        "end": (np.int32, 1),
        "role": (np.uint8, 1),
        "mme": (np.float64, 1),
        "prescriber": (np.int32, 1),
        "pharmacy": (np.int32, 1),
        "n_prescribers": int,
        "n_pharmacies": int,
    },
    MemberEvents: {
        "med_offsets": (np.intp, 1),
        "med_day": (np.int32, 1),
        "med_mask": (np.uint8, 1),
    },
    ScoreParams: {
        "as_of": (np.int32, 1),
        "windows": (np.int64, 1),
        "high_dose_floor": float,
        "rolling_days": int,
        "ed_days": int,
        "dx_days": int,
        "ed_bit": int,
        "od_bit": int,
        "n_chunks": int,
        "mme_definitions": int,
    },
    ScoreOutputs: {
        "ints": (np.int32, 2),
        "floats": (np.float64, 2),
        "present": (np.bool_, 1),
    },
}

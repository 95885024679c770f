"""The contract of the safety-edit replay kernel (``kernels/edits.py``): its three containers,
the dtype and length of every array in them, and the codes of its ``fired`` output.

Plain NumPy and ``typing.NamedTuple`` (no numba): the wrapper (``rxrisk.edits.run``), the
decoder (``rxrisk.edits.table``) and the edit-set config import it without compiling anything.
"""

from __future__ import annotations

from typing import NamedTuple, get_type_hints

import numpy as np

#: Bit of each edit in :attr:`EditOutputs.fired`.
E_CARE_COORDINATION = 1
E_HARD_LIMIT = 2
E_NAIVE_DAYS = 4
E_OPIOID_BENZO = 8
E_DUPLICATE_LA = 16

#: Edit name -> its bit in :attr:`EditOutputs.fired`, in the documented table order: the names
#: of the edit set, of the claim table's bool columns and of the audit's counts.
EDIT_BITS = {
    "mme_care_coordination": E_CARE_COORDINATION,
    "mme_hard_limit": E_HARD_LIMIT,
    "opioid_naive_days_limit": E_NAIVE_DAYS,
    "opioid_benzo_concurrent": E_OPIOID_BENZO,
    "duplicate_long_acting": E_DUPLICATE_LA,
}

#: Up to this many active opioid claims, ``cumulative`` is summed in evaluation order (the
#: claim's MME, then each active opioid claim's, oldest first): the historical definition.
#: Above it, it is the exact sum of the same terms rounded once to the nearest float64, kept
#: incrementally, so that a member with very many overlapping claims costs O(log n) per claim.
#: The usual :attr:`EditParams.sequential_max`.
SEQUENTIAL_MAX = 32


class EditClaims(NamedTuple):
    """The claims the kernel replays: fills sorted by (member, fill day, input row) and the
    member's classified medical rows sorted by (member, day). Every array is 1-d, C-contiguous.

    Attributes
    ----------
    fill_offsets : intp array, shape (n_members + 1,)
        Member ``m``'s fills are ``fill_offsets[m] : fill_offsets[m + 1]``; non-decreasing.
    start : int32 array, shape (n_fills,)
        Fill day (days since 1970-01-01): the claim's first covered day.
    end : int32 array, shape (n_fills,)
        Last covered day, the patch rewrite applied; ``end >= start``.
    role : uint8 array, shape (n_fills,)
        Role bits (``rxrisk.kernels.roles``); a fill is evaluated when it has ``OPIOID`` or
        ``BENZO``.
    mme : float64 array, shape (n_fills,)
        Daily MME of the claim: finite, 0 unless opioid.
    prescriber : int32 array, shape (n_fills,)
        Prescriber code, ``0 .. EditParams.n_prescribers - 1``; -1 null.
    ingredient : int32 array, shape (n_fills,)
        Code of the trimmed, lower-cased ingredient, ``0 .. EditParams.n_ingredients - 1``;
        -1 null.
    long_acting : int8 array, shape (n_fills,)
        1 long-acting, 0 not, -1 null.
    med_offsets : intp array, shape (n_members + 1,)
        Member ``m``'s medical rows are ``med_offsets[m] : med_offsets[m + 1]``.
    med_day : int32 array, shape (n_medical,)
        Day of the medical row.
    med_mask : uint8 array, shape (n_medical,)
        Code-set category bits of the medical row (bit ``k`` = category ``k``).
    """

    fill_offsets: np.ndarray
    start: np.ndarray
    end: np.ndarray
    role: np.ndarray
    mme: np.ndarray
    prescriber: np.ndarray
    ingredient: np.ndarray
    long_acting: np.ndarray
    med_offsets: np.ndarray
    med_day: np.ndarray
    med_mask: np.ndarray


class EditParams(NamedTuple):
    """The thresholds and sizes of one replay: Python ``int`` (int64 in the kernel) and
    ``float`` (float64) scalars.

    Attributes
    ----------
    exclusion_bits : int
        ``med_mask`` bits that exclude a claim (cancer, sickle cell, hospice/palliative).
    dx_days : int
        ``D`` >= 1: an excluding medical row on a day in ``f-D+1 .. f`` excludes the claim
        filled on day ``f`` from the MME and naive edits.
    care_floor : float
        Cumulative MME at or above which the care-coordination edit fires: its threshold
        minus the tolerance.
    care_min_prescribers : int
        Distinct active opioid prescribers (the claim's included) the care-coordination edit
        needs.
    hard_floor : float
        Cumulative MME at or above which the hard-limit edit fires: its threshold minus the
        tolerance.
    naive_lookback : int
        ``L`` >= 1: the patient is naive when no opioid claim filled on an earlier day covers a
        day in ``f-L .. f-1``.
    naive_max_days : int
        The naive edit fires when the claim covers more days than this.
    n_prescribers : int
        Size of the prescriber code space (the kernel's per-prescriber counts).
    n_ingredients : int
        Size of the ingredient code space (the kernel's per-ingredient counts).
    sequential_max : int
        With at most this many active opioid claims, the cumulative MME is summed in fill
        order; above, it is the exact sum rounded once (usually :data:`SEQUENTIAL_MAX`).
    """

    exclusion_bits: int
    dx_days: int
    care_floor: float
    care_min_prescribers: int
    hard_floor: float
    naive_lookback: int
    naive_max_days: int
    n_prescribers: int
    n_ingredients: int
    sequential_max: int


class EditOutputs(NamedTuple):
    """What the kernel writes, allocated zeroed by the caller (:meth:`zeros`). Only the
    evaluated fills (opioid or benzodiazepine) are written; the others stay zero.

    Attributes
    ----------
    evaluated : bool array, shape (n_fills,)
        True for the fills the kernel evaluated.
    cumulative : float64 array, shape (n_fills,)
        The claim's MME plus the MME of the opioid claims active on its fill day.
    active_prescribers : int32 array, shape (n_fills,)
        Distinct prescribers of the active opioid claims, the claim's own included when it is
        an opioid with a prescriber.
    excluded : bool array, shape (n_fills,)
        True when an excluding medical row falls in the claim's ``dx_days`` window.
    fired : uint8 array, shape (n_fills,)
        OR of the bits (:data:`EDIT_BITS`) of the edits that fire on the claim.
    work : int64 array, shape (n_chunks,)
        Elementary steps per chunk of members (heap sifts, summed terms, partials touched),
        for the complexity tests. Its length is the number of chunks the kernel splits the
        members into (a few per thread).
    """

    evaluated: np.ndarray
    cumulative: np.ndarray
    active_prescribers: np.ndarray
    excluded: np.ndarray
    fired: np.ndarray
    work: np.ndarray

    @classmethod
    def zeros(cls, n_fills: int, n_chunks: int) -> EditOutputs:
        """Zeroed outputs for ``n_fills`` fills split into ``n_chunks`` chunks."""
        sizes = {"fills": n_fills, "chunks": n_chunks}
        return cls(*(np.zeros(sizes[ARRAYS[name][1]], ARRAYS[name][0]) for name in cls._fields))


#: Every array field of :class:`EditClaims` and :class:`EditOutputs`: name -> (dtype, length),
#: the length named by what it counts (``members + 1``, ``fills``, ``medical``, ``chunks``).
ARRAYS = {
    "fill_offsets": (np.dtype(np.intp), "members + 1"),
    "start": (np.dtype(np.int32), "fills"),
    "end": (np.dtype(np.int32), "fills"),
    "role": (np.dtype(np.uint8), "fills"),
    "mme": (np.dtype(np.float64), "fills"),
    "prescriber": (np.dtype(np.int32), "fills"),
    "ingredient": (np.dtype(np.int32), "fills"),
    "long_acting": (np.dtype(np.int8), "fills"),
    "med_offsets": (np.dtype(np.intp), "members + 1"),
    "med_day": (np.dtype(np.int32), "medical"),
    "med_mask": (np.dtype(np.uint8), "medical"),
    "evaluated": (np.dtype(np.bool_), "fills"),
    "cumulative": (np.dtype(np.float64), "fills"),
    "active_prescribers": (np.dtype(np.int32), "fills"),
    "excluded": (np.dtype(np.bool_), "fills"),
    "fired": (np.dtype(np.uint8), "fills"),
    "work": (np.dtype(np.int64), "chunks"),
}

#: Every scalar field of :class:`EditParams`: name -> Python type.
SCALARS = get_type_hints(EditParams)

"""The wrapper of the safety-edit replay kernel (``kernels/edits.py``): per-reference-row drug
keys, the kernel's containers built (``kernels/edits_containers.py``), checked once and handed
to the kernel once, for a whole book's claims or one member partition's."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.config.codesets import CATEGORIES
from rxrisk.edits.config import EditSet
from rxrisk.io.arrow import dict_codes, is_null, to_bool
from rxrisk.kernels._jit import each_chunk
from rxrisk.kernels.edits import replay_chunk
from rxrisk.kernels.edits_containers import (
    ARRAYS,
    SCALARS,
    SEQUENTIAL_MAX,
    EditClaims,
    EditOutputs,
    EditParams,
)
from rxrisk.scoring.run import set_threads

#: Medical categories whose codes exclude a claim from the MME and naive edits.
EXCLUSION_CATEGORIES = ("cancer", "sickle_cell", "hospice_palliative")


def drug_keys(reference: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Per reference row: dense ingredient code and long-acting flag for the duplicate edit.

    Parameters
    ----------
    reference : pyarrow.Table
        The drug reference (``ingredient`` and ``long_acting`` columns).

    Returns
    -------
    ingredient : int32 array
        Code of the trimmed, lower-cased ingredient (equal text = equal code); -1 when null or
        empty.
    long_acting : int8 array
        1 long-acting, 0 not, -1 null.
    """
    text = pc.utf8_lower(pc.utf8_trim_whitespace(reference.column("ingredient").cast(pa.string())))
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    codes, _ = dict_codes(text)
    la = reference.column("long_acting")
    long_acting = np.where(is_null(la), -1, to_bool(la).astype(np.int8)).astype(np.int8)
    return codes.astype(np.int32), long_acting


def run_edits_kernel(
    claims, ref_row: np.ndarray, keys, edit_set: EditSet, threads: int | None
) -> EditOutputs:
    """Build the kernel's containers, check them, and run the parallel replay over every member.

    Parameters
    ----------
    claims : rxrisk.scoring.encode.Claims
        The encoded used claims.
    ref_row : int array
        Reference row of each fill.
    keys : tuple of arrays
        Per reference row, ingredient code and long-acting flag (:func:`drug_keys`).
    edit_set : EditSet
        The validated edit set.
    threads : int or None
        Numba threads (None: all cores).

    Returns
    -------
    EditOutputs
        The per-fill outputs and the per-chunk work (elementary steps, O(n log n) per member).
    """
    n_threads = set_threads(threads)
    n = len(claims.start)
    n_members = len(claims.member_ids)
    ingredient_of_ref, la_of_ref = keys
    ingredient = ingredient_of_ref[ref_row] if n else np.zeros(0, np.int32)
    long_acting = la_of_ref[ref_row] if n else np.zeros(0, np.int8)
    kernel_claims = EditClaims(
        fill_offsets=claims.fill_offsets,
        start=claims.start,
        end=claims.end,
        role=claims.role,
        mme=claims.mme,
        prescriber=claims.prescriber,
        ingredient=ingredient.astype(np.int32, copy=False),
        long_acting=long_acting.astype(np.int8, copy=False),
        med_offsets=claims.med_offsets,
        med_day=claims.med_day,
        med_mask=claims.med_mask,
    )
    n_ingredients = max(0, int(ingredient.max()) + 1) if n else 0
    params = edit_params(edit_set, int(claims.n_prescribers), n_ingredients)
    outputs = EditOutputs.zeros(n, max(1, min(n_members, n_threads * 8)))
    check_kernel_arguments(kernel_claims, params, outputs)
    if n:
        each_chunk(replay_chunk, len(outputs.work), kernel_claims, params, outputs)
    return outputs


def edit_params(edit_set: EditSet, n_prescribers: int, n_ingredients: int) -> EditParams:
    """The kernel's scalars from the edit set (thresholds lowered by the tolerance) and the
    sizes of the prescriber and ingredient code spaces."""
    exclusion_bits = 0
    for name in EXCLUSION_CATEGORIES:
        exclusion_bits |= 1 << CATEGORIES.index(name)
    tol = edit_set.config.tolerance
    return EditParams(
        exclusion_bits=exclusion_bits,
        dx_days=int(edit_set.config.dx_lookback_days),
        care_floor=float(edit_set.mme_care_coordination.threshold - tol),
        care_min_prescribers=int(edit_set.mme_care_coordination.min_prescribers),
        hard_floor=float(edit_set.mme_hard_limit.threshold - tol),
        naive_lookback=int(edit_set.opioid_naive_days_limit.lookback_days),
        naive_max_days=int(edit_set.opioid_naive_days_limit.max_covered_days),
        n_prescribers=n_prescribers,
        n_ingredients=n_ingredients,
        sequential_max=SEQUENTIAL_MAX,
    )


def check_kernel_arguments(claims: EditClaims, params: EditParams, outputs: EditOutputs) -> None:
    """The one check of the kernel contract: every array of the dtype and length that
    ``kernels/edits_containers.py`` gives it, 1-d and C-contiguous; the offsets spanning their
    rows; the codes inside their code spaces; every scalar of its type.

    Raises
    ------
    ValueError
        Naming the field at fault (a bug of the caller, not of the input data).
    """
    sizes = {
        "members + 1": len(claims.fill_offsets),
        "fills": len(claims.start),
        "medical": len(claims.med_day),
        "chunks": len(outputs.work),
    }
    for box in (claims, outputs):
        for name, value in zip(box._fields, box, strict=True):
            dtype, size = ARRAYS[name]
            ok = isinstance(value, np.ndarray) and value.ndim == 1 and value.flags.c_contiguous
            if not (ok and value.dtype == dtype and len(value) == sizes[size]):
                raise ValueError(f"edits kernel: {name} must be a {dtype} array of {size}")
    for name, value in zip(params._fields, params, strict=True):
        if type(value) is not SCALARS[name]:
            raise ValueError(f"edits kernel: {name} must be a Python {SCALARS[name].__name__}")
    for offsets, rows in (("fill_offsets", "fills"), ("med_offsets", "medical")):
        bounds = getattr(claims, offsets)[[0, -1]] if sizes["members + 1"] else (-1, -1)
        if bounds[0] != 0 or bounds[1] != sizes[rows]:
            raise ValueError(f"edits kernel: {offsets} must run from 0 to the number of {rows}")
    for codes, size in (("prescriber", "n_prescribers"), ("ingredient", "n_ingredients")):
        values = getattr(claims, codes)
        if len(values) and not (-1 <= values.min() and values.max() < getattr(params, size)):
            raise ValueError(f"edits kernel: {codes} codes must lie in -1 .. {size} - 1")

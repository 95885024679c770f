"""The safety-edit replay run: :func:`replay_edits`, and the wrapper of the replay kernel that
builds its containers (``kernels/edits_containers.py``), checks them once and calls it once.

Same front half as :func:`rxrisk.score` (read, validate, encode: the very same buckets and
claims), then one numba pass per member (``kernels/edits.py``) that evaluates every used
opioid and benzodiazepine claim, in adjudication order, against the member's claims paid
before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.clock import Clock
from rxrisk.config.codesets import CATEGORIES
from rxrisk.config.settings import load_config
from rxrisk.edits.config import EditSet, load_edits
from rxrisk.edits.table import edits_table
from rxrisk.ingest.intake import audit_warnings
from rxrisk.ingest.select import ingest
from rxrisk.io.arrow import dict_codes, is_null, to_bool
from rxrisk.kernels.edits import replay_members
from rxrisk.kernels.edits_containers import (
    ARRAYS,
    SCALARS,
    SEQUENTIAL_MAX,
    EditClaims,
    EditOutputs,
    EditParams,
)
from rxrisk.scoring.encode import encode_used
from rxrisk.scoring.run import set_threads
from rxrisk.version import __version__

#: Medical categories whose codes exclude a claim from the MME and naive edits.
EXCLUSION_CATEGORIES = ("cancer", "sickle_cell", "hospice_palliative")


@dataclass
class EditsResult:
    """What :func:`replay_edits` returns.

    Attributes
    ----------
    claims : pyarrow.Table
        One row per evaluated claim, sorted by member_id then evaluation order.
    audit : dict
        The audit (``members_scored`` / ``rows_out`` count this table) plus ``edits``:
        ``claims_evaluated``, ``fired`` and ``members_hit`` per edit, and the settings used.
    """

    claims: pa.Table
    audit: dict


def replay_edits(
    pharmacy,
    medical=None,
    *,
    reference=None,
    rules=None,
    codesets=None,
    edits=None,
    overrides: Iterable[str] = (),
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
    date_format: str | None = None,
    max_reject_share: float | None = None,
) -> EditsResult:
    """Replay the point-of-sale safety edits over a claims history.

    Parameters
    ----------
    pharmacy : pyarrow.Table, RecordBatchReader, Arrow C stream object or path
        Pharmacy claims.
    medical : same kinds, optional
        Medical events; their cancer, sickle-cell and hospice/palliative codes
        exclude claims from the MME and naive edits.
    reference : path or pyarrow.Table, optional
        NDC rows merged over the packaged drug reference.
    rules : path or RuleSet, optional
        Scoring rule file; its ``[metrics]`` ``max_days_supply`` and ``factor_edition`` shape
        the claims exactly as in ``score``. Default ``data/rules/default.toml``.
    codesets : path, optional
        Medical code-set file; default ``data/codesets/default.toml``.
    edits : path or EditSet, optional
        Edits file; default ``data/rules/edits.toml``.
    overrides : iterable of str
        ``EDIT.FIELD=VALUE`` items applied over the edits file (like ``--set``).
    threads : int, optional
        Numba threads (default: all cores).
    progress : callable, optional
        Called with each stage name as it completes.
    date_format, max_reject_share :
        As for :func:`rxrisk.score`: the format of text dates in another form, and the
        share of rejected rows that stops the run (warnings go to the audit).

    Returns
    -------
    EditsResult
    """
    clock = Clock(progress)
    cfg = load_config(reference=reference, rules=rules, codesets=codesets)
    max_reject_share = cfg.reject_share(max_reject_share)
    edit_set = load_edits(edits, overrides)
    ref = cfg.reference
    data = ingest(
        pharmacy,
        medical,
        cfg,
        clock=clock,
        date_format=date_format,
        max_reject_share=max_reject_share,
    )
    claims = encode_used(data)
    ref_row = data.pharmacy_rows.ref_index[claims.row]
    clock.lap("encode")

    out = run_edits_kernel(claims, ref_row, drug_keys(ref), edit_set, threads)
    clock.lap("kernels")

    table, counts = edits_table(claims, data, ref, ref_row, out)
    clock.lap("output")

    audit = _audit(data, cfg, edit_set, table, counts, clock, max_reject_share)
    return EditsResult(claims=table, audit=audit)


def _audit(
    data, cfg, edit_set: EditSet, table: pa.Table, counts: dict, clock: Clock, max_reject_share
) -> dict:
    """The audit of a replay: the intake blocks, the table's counts, the edits block."""
    return {
        **data.audit_blocks(),
        "members_scored": counts.pop("members"),
        "rows_out": int(table.num_rows),
        "edits": {**counts, "settings": edit_set.sections()},
        "seconds": clock.seconds,
        "version": __version__,
        "config_digest": cfg.digest(edit_set.digest()),
        "warnings": audit_warnings(
            data.audit_blocks(),
            max_reject_share=max_reject_share,
            max_days_supply=cfg.metrics.max_days_supply,
        ),
    }


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
        replay_members(kernel_claims, params, outputs)
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

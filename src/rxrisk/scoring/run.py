"""The public wrapper beside the member-scoring kernel (``run_kernels`` beside
``kernels.member_scores.score_members``): threads, the typed kernel arguments, one check, one
kernel call; and the member table of a scored book or partition (kernels -> flags -> columns)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rxrisk.config.codesets import CATEGORIES
from rxrisk.config.rules import evaluate_flags
from rxrisk.config.settings import check_arguments
from rxrisk.kernels import containers as kc
from rxrisk.kernels._jit import set_threads as kernel_threads


def set_threads(threads: int | None) -> int:
    """Apply ``--threads`` to the kernels (numba's threads, and the Python threads that run
    kernel chunks) and return the thread count in force."""
    check_arguments(threads=threads)
    return kernel_threads(threads)


def score_claims(claims, days: np.ndarray, config, *, all_members: bool, threads, clock):
    """Kernels, flags and the member table for encoded claims: ``(members, members scored)``.

    Shared by the in-memory path (the whole book) and the streaming path (one member
    partition at a time). Stages "kernels" and "rules" are timed on ``clock``.
    """
    from rxrisk.scoring.columns import member_table, metric_columns  # lazy: kernels on first use

    m = config.metrics
    outputs = run_kernels(claims, days, m, threads)
    clock.lap("kernels")
    k = len(days)
    present = outputs.present
    rows = np.flatnonzero(np.ones_like(present) if all_members else present)
    row_days = days[rows % k]
    cols, nulls = metric_columns(m, rows, row_days, outputs)
    flags = evaluate_flags(config.rules, cols, nulls)
    clock.lap("rules")
    members = member_table(
        claims.member_ids.take(pa.array(rows // k)), row_days, m, cols, nulls, flags
    )
    member = rows // k  # ascending: count its runs rather than sort it again
    n_scored = int(np.count_nonzero(member[1:] != member[:-1])) + 1 if len(rows) else 0
    return members, n_scored


def member_containers(claims) -> tuple[kc.MemberFills, kc.MemberEvents]:
    """The fills and medical rows of encoded claims (``rxrisk.scoring.encode.Claims``) as the
    kernels' typed containers (the arrays as they are, no copy)."""
    fills = kc.MemberFills(
        fill_offsets=claims.fill_offsets,
        start=claims.start,
        end=claims.end,
        role=claims.role,
        mme=claims.mme,
        prescriber=claims.prescriber,
        pharmacy=claims.pharmacy,
        n_prescribers=int(claims.n_prescribers),
        n_pharmacies=int(claims.n_pharmacies),
    )
    events = kc.MemberEvents(
        med_offsets=claims.med_offsets, med_day=claims.med_day, med_mask=claims.med_mask
    )
    return fills, events


def run_kernels(claims, days: np.ndarray, metrics, threads: int | None):
    """Score every member of ``claims`` for every as-of day: the public wrapper of the kernel
    :func:`rxrisk.kernels.member_scores.score_members`.

    Builds the kernel's arguments (:mod:`rxrisk.kernels.containers`) with zeroed outputs,
    checks them once (:func:`check_kernel_arguments`) and calls the kernel once.

    Parameters
    ----------
    claims : rxrisk.scoring.encode.Claims
        Encoded, sorted claims.
    days : numpy.ndarray of int
        As-of days, ascending.
    metrics : MetricsConfig
        Windows, high-dose threshold and tolerance, rolling days and lookbacks.
    threads : int or None
        Thread count (None: numba's default).

    Returns
    -------
    rxrisk.kernels.containers.ScoreOutputs
        The column-major outputs (slots of :mod:`rxrisk.kernels.layout`, decoded by
        :func:`rxrisk.scoring.columns.metric_columns`) and ``present``.
    """
    from rxrisk.kernels.layout import n_float_slots, n_int_slots  # lazy: kernels on first use
    from rxrisk.kernels.member_scores import score_members  # lazy: kernels on first use

    n_threads = set_threads(threads)
    n_members = len(claims.member_ids)
    n = n_members * len(days)
    fills, events = member_containers(claims)
    params = kc.ScoreParams(
        as_of=np.asarray(days, np.int32),
        windows=np.asarray(metrics.windows, np.int64),
        high_dose_floor=float(metrics.high_dose_mme - metrics.tolerance),
        rolling_days=int(metrics.rolling_days),
        ed_days=int(metrics.ed_lookback_days),
        dx_days=int(metrics.dx_lookback_days),
        ed_bit=1 << CATEGORIES.index("ed_visit"),
        od_bit=1 << CATEGORIES.index("opioid_overdose"),
        n_chunks=max(1, min(n_members, n_threads * 8)),
        mme_definitions=1 if metrics.mme_definitions else 0,
    )
    n_windows = len(params.windows)
    # zeroed (fresh zero pages; the kernel writes only what may be non-zero)
    outputs = kc.ScoreOutputs(
        ints=np.zeros((n_int_slots(n_windows), n), np.int32),
        floats=np.zeros((n_float_slots(n_windows, params.mme_definitions), n), np.float64),
        present=np.zeros(n, np.bool_),
    )
    check_kernel_arguments(fills, events, params, outputs)
    if n_members:
        score_members(fills, events, params, outputs)
    return outputs


def check_kernel_arguments(fills, events, params, outputs) -> None:
    """Check the arguments of :func:`rxrisk.kernels.member_scores.score_members` before the
    call: every field has the dtype, dimensions and C-contiguity of
    :data:`rxrisk.kernels.containers.FIELD_TYPES` (another one would silently compile a new
    specialisation of the kernel), and the shapes agree (the kernel does not check bounds).

    Parameters
    ----------
    fills, events, params, outputs : MemberFills, MemberEvents, ScoreParams, ScoreOutputs
        The kernel's arguments (:mod:`rxrisk.kernels.containers`).

    Raises
    ------
    TypeError
        A container of the wrong class, or a field of the wrong type, dtype, dimensions or
        memory layout; the message names the field, what it must be and what it is.
    ValueError
        Shapes that disagree.
    """
    from rxrisk.kernels.layout import n_float_slots, n_int_slots  # lazy: kernels on first use

    wanted = (kc.MemberFills, kc.MemberEvents, kc.ScoreParams, kc.ScoreOutputs)
    for box, cls in zip((fills, events, params, outputs), wanted, strict=True):
        if type(box) is not cls:
            raise TypeError(f"expected a {cls.__name__}, got {type(box).__name__}")
        for name, want in kc.FIELD_TYPES[cls].items():
            check_field(f"{cls.__name__}.{name}", getattr(box, name), want)
    for name in ("as_of", "windows"):
        if not len(getattr(params, name)):
            raise ValueError(f"ScoreParams.{name} is empty; the kernel needs at least one")
    if params.mme_definitions not in (0, 1):
        raise ValueError(f"ScoreParams.mme_definitions is {params.mme_definitions}; use 0 or 1")
    n_members = len(fills.fill_offsets) - 1
    n = max(n_members, 0) * len(params.as_of)
    n_windows = len(params.windows)
    sizes = {
        "MemberFills.fill_offsets": (len(fills.fill_offsets), max(n_members, 0) + 1),
        "MemberEvents.med_offsets": (len(events.med_offsets), max(n_members, 0) + 1),
        "ScoreOutputs.ints": (outputs.ints.shape, (n_int_slots(n_windows), n)),
        "ScoreOutputs.floats": (
            outputs.floats.shape,
            (n_float_slots(n_windows, params.mme_definitions), n),
        ),
        "ScoreOutputs.present": (len(outputs.present), n),
    }
    n_fills = int(fills.fill_offsets[-1]) if len(fills.fill_offsets) else 0
    for name in ("start", "end", "role", "mme", "prescriber", "pharmacy"):
        sizes[f"MemberFills.{name}"] = (len(getattr(fills, name)), n_fills)
    n_medical = int(events.med_offsets[-1]) if len(events.med_offsets) else 0
    for name in ("med_day", "med_mask"):
        sizes[f"MemberEvents.{name}"] = (len(getattr(events, name)), n_medical)
    for name, (got, want) in sizes.items():
        if got != want:
            raise ValueError(f"{name}: shape (or size) {got} where the other arguments need {want}")


def check_field(name: str, value, want) -> None:
    """One field of a kernel container (:func:`check_kernel_arguments`, and the measures
    wrapper's check): ``want`` is a Python scalar type, or ``(dtype, ndim)`` of a C-contiguous
    array; a mismatch raises ``TypeError`` naming the field."""
    if want in (int, float):
        if type(value) is not want:
            raise TypeError(f"{name} must be a Python {want.__name__}, not {type(value).__name__}")
        return
    dtype, ndim = np.dtype(want[0]), want[1]
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of {dtype}, not {type(value).__name__}")
    if value.dtype != dtype or value.ndim != ndim or not value.flags.c_contiguous:
        layout = "C-contiguous" if value.flags.c_contiguous else "not C-contiguous"
        raise TypeError(
            f"{name} must be a C-contiguous {ndim}-d array of {dtype}, "
            f"not a {layout} {value.ndim}-d array of {value.dtype}"
        )

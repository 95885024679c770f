"""The wrapper beside the member-scoring kernel: threads, output arrays, one kernel call, and the
member table of a scored book or partition (kernels -> flags -> columns)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rxrisk.config.settings import check_arguments


def set_threads(threads: int | None) -> int:
    """Apply ``--threads`` to numba and return the thread count in force."""
    import numba

    check_arguments(threads=threads)
    if threads is not None:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return numba.get_num_threads()


def score_claims(claims, days: np.ndarray, config, *, all_members: bool, threads, clock):
    """Kernels, flags and the member table for encoded claims: ``(members, members scored)``.

    Shared by the in-memory path (the whole book) and the streaming path (one member
    partition at a time). Stages "kernels" and "rules" are timed on ``clock``.
    """
    from rxrisk.config.rules import evaluate_flags
    from rxrisk.io.outputs import member_table, metric_columns

    m = config.metrics
    raw, present = run_kernels(claims, days, m, threads)
    clock.lap("kernels")
    k = len(days)
    rows = np.flatnonzero(np.ones_like(present) if all_members else present)
    row_days = days[rows % k]
    cols, nulls = metric_columns(m, rows, row_days, raw)
    flags = evaluate_flags(config.rules, cols, nulls)
    clock.lap("rules")
    members = member_table(
        claims.member_ids.take(pa.array(rows // k)), row_days, m, cols, nulls, flags
    )
    n_scored = int(len(np.unique(rows // k))) if len(rows) else 0
    return members, n_scored


def run_kernels(claims, days: np.ndarray, metrics, threads: int | None):
    """Allocate outputs and run the parallel member kernel. Returns (raw arrays, present).

    ``raw`` holds the column-major kernel outputs (see
    :func:`rxrisk.kernels.member_scores.score_members`); :func:`rxrisk.io.outputs.metric_columns`
    reads them.
    """
    from rxrisk.config.codesets import CATEGORIES
    from rxrisk.kernels.member_scores import n_float_columns, n_int_columns, score_members
    from rxrisk.scoring.run import set_threads

    n_threads = set_threads(threads)
    n_members = len(claims.member_ids)
    k = len(days)
    windows = np.asarray(metrics.windows, np.int64)
    n = n_members * k
    # zeroed (fresh zero pages; the kernel writes only what may be non-zero)
    raw = {
        "ints": np.zeros((n_int_columns(len(windows)), n), np.int32),
        "floats": np.zeros((n_float_columns(len(windows)), n), np.float64),
    }
    present = np.zeros(n, np.bool_)
    n_chunks = max(1, min(n_members, n_threads * 8))
    if n_members:
        score_members(
            claims.fill_offsets,
            claims.start,
            claims.end,
            claims.role,
            claims.mme,
            claims.prescriber,
            claims.pharmacy,
            claims.med_offsets,
            claims.med_day,
            claims.med_mask,
            np.asarray(days, np.int32),
            windows,
            float(metrics.high_dose_mme - metrics.tolerance),
            int(metrics.rolling_days),
            int(metrics.ed_lookback_days),
            int(metrics.dx_lookback_days),
            1 << CATEGORIES.index("ed_visit"),
            1 << CATEGORIES.index("opioid_overdose"),
            claims.n_prescribers,
            claims.n_pharmacies,
            n_chunks,
            raw["ints"],
            raw["floats"],
            present,
        )
    return raw, present

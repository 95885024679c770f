"""``rxrisk.score``: the in-process pipeline, one direction of flow.

source -> inputs (Arrow, schema) -> validate (buckets) -> encode (Claims) -> kernels
(metrics) -> rules (flags) -> outputs (member table, audit, quarantine).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from rxrisk import __version__
from rxrisk.errors import InputError, shown

_EPOCH = dt.date(1970, 1, 1)


@dataclass
class Result:
    """What :func:`score` returns.

    Attributes
    ----------
    members : pyarrow.Table
        The member table: one row per (member, as-of date), columns as in
        ``docs/data-dictionary.md``.
    audit : dict
        Bucket counts, rejection reasons, stage seconds, version, config digest and
        ``warnings`` (rejection reasons above 1% of an input's in-scope rows).
    quarantine : pyarrow.Table or None
        Rejected rows of both inputs as read, with ``source``, ``row_number`` and
        ``reject_reason`` (None unless asked for).
    """

    members: pa.Table
    audit: dict
    quarantine: pa.Table | None = None


def parse_as_of(as_of) -> np.ndarray:
    """As-of dates to sorted unique day numbers (days since 1970-01-01).

    Accepts a date or datetime, ``'YYYY-MM-DD'`` text (several comma-separated), a
    ``numpy.datetime64``, or a list, tuple or array of those (a ``datetime64`` array, a
    pyarrow date array). Anything else is an :class:`~rxrisk.errors.InputError`.
    """
    if as_of is None:
        raise InputError("as_of is required: give one or more dates, e.g. as_of='2025-12-31'")
    if isinstance(as_of, str):
        items = as_of.split(",")
    elif isinstance(as_of, (dt.date, np.datetime64)):
        items = [as_of]
    elif isinstance(as_of, np.ndarray):
        items = list(as_of.ravel())
    elif isinstance(as_of, (bytes, bytearray, dict)) or not hasattr(as_of, "__iter__"):
        raise InputError(
            f"as_of {shown(as_of)} ({type(as_of).__name__}) is not a date; give a date, "
            "'YYYY-MM-DD' text, a numpy.datetime64 or a list of them, e.g. as_of='2025-12-31'"
        )
    else:
        items = list(as_of)
    if not items:
        raise InputError("as_of is empty: give one or more dates, e.g. as_of='2025-12-31'")
    days = []
    for item in items:
        if hasattr(item, "as_py"):  # a pyarrow scalar
            item = item.as_py()
        if isinstance(item, np.datetime64):
            if np.isnat(item):
                raise InputError("as_of value NaT is not a date; give a date, e.g. '2025-12-31'")
            item = (item.astype("datetime64[D]") - np.datetime64(0, "D")).astype(np.int64)
            item = _EPOCH + dt.timedelta(days=int(item))
        if isinstance(item, dt.datetime):
            item = item.date()
        if isinstance(item, str):
            try:
                item = dt.date.fromisoformat(item.strip())
            except ValueError:
                raise InputError(
                    f"as_of value {shown(item)} is not a date; write it as YYYY-MM-DD"
                ) from None
        if not isinstance(item, dt.date):
            raise InputError(
                f"as_of value {shown(item)} ({type(item).__name__}) is not a date; write it as "
                "YYYY-MM-DD"
            )
        days.append((item - _EPOCH).days)
    return np.unique(np.array(days, np.int32))


def score(
    pharmacy,
    medical=None,
    *,
    as_of,
    reference=None,
    rules=None,
    codesets=None,
    all_members: bool = False,
    quarantine: bool = False,
    threads: int | None = None,
    progress: Callable[..., None] | None = None,
    stream=None,
    date_format: str | None = None,
    max_reject_share: float | None = None,
) -> Result:
    """Score members: the metrics and the flags of the rules for each as-of date.

    Parameters
    ----------
    pharmacy : pyarrow.Table, RecordBatchReader, Arrow C stream object or path
        Pharmacy claims.
    medical : same kinds, optional
        Medical events (long format).
    as_of : date, str, numpy.datetime64 or list
        One or more as-of dates: dates, ``'YYYY-MM-DD'`` text (comma-separated for several),
        ``numpy.datetime64`` values, or a list or array of them.
    reference : path or pyarrow.Table, optional
        NDC rows merged over the packaged drug reference (same columns).
    rules : path, dict or RuleSet, optional
        Rule file; or a dict of the same structure as the file (``{"metrics": {...},
        "flags": [{"name": ..., "when": ...}]}``); default ``data/rules/default.toml``
        (``rxrisk config show rules`` prints it).
    codesets : path, optional
        Medical code-set file; default ``data/codesets/default.toml``.
    all_members : bool
        Add a row for every member seen in any input, not only members with recent data.
    quarantine : bool
        Also return the rejected rows.
    threads : int, optional
        Numba threads (1 to 1,024) for validation, encoding and the kernels. The setting stays in force
        for later calls in the process (it is numba's); None keeps the one in force (all
        cores unless changed).
    progress : callable, optional
        Called with each stage name as it completes; its ``tick(what, count)`` method, if
        any, gets running counts on streaming runs (see :class:`rxrisk.pipeline.Clock`).
    stream : bool or rxrisk.stream.StreamOptions, optional
        Score batch by batch with bounded memory (:mod:`rxrisk.stream`): same output, byte
        for byte. True uses the default :class:`~rxrisk.stream.StreamOptions`.
    date_format : str, optional
        ``strptime`` format of text dates in another form than ``YYYY-MM-DD`` or
        ``YYYYMMDD``, e.g. ``'%m/%d/%Y'`` (dates are never guessed).
    max_reject_share : float, optional
        Share of an input's in-scope rows one rejection reason may take before the run
        stops with :class:`~rxrisk.errors.InputError` (default 0.25; 1.0 never stops).
        Reasons above 1% that do not stop are listed in the audit's ``warnings``.

    Returns
    -------
    Result
    """
    from rxrisk import intake
    from rxrisk.inputs import check_date_format
    from rxrisk.pipeline import (
        Clock,
        check_arguments,
        encode_selected,
        ingest,
        load_config,
        select_used,
        set_threads,
    )

    date_format = check_date_format(date_format)
    if max_reject_share is not None:  # fail fast; the rule file's share applies when None
        intake.check_max_reject_share(max_reject_share)
    check_arguments(reference=reference, rules=rules, codesets=codesets, threads=threads)
    set_threads(threads)  # before validation: its hashing and sorting use the numba threads
    clock = Clock(progress)
    cfg = load_config(reference=reference, rules=rules, codesets=codesets)
    max_reject_share = cfg.reject_share(max_reject_share)
    days = parse_as_of(as_of)
    if stream is not None and stream is not False:
        from rxrisk.stream import StreamOptions, score_stream

        options = stream if isinstance(stream, StreamOptions) else StreamOptions()
        members, blocks, n_scored, q = score_stream(
            pharmacy,
            medical,
            days=days,
            config=cfg,
            options=options,
            clock=clock,
            all_members=all_members,
            quarantine=quarantine,
            threads=threads,
            date_format=date_format,
            max_reject_share=max_reject_share,
        )
    else:
        data = ingest(
            pharmacy,
            medical,
            cfg,
            clock=clock,
            date_format=date_format,
            max_reject_share=max_reject_share,
        )
        selected = select_used(data, all_members=all_members)
        clock.lap("select")
        claims = encode_selected(selected, cfg.reference)
        del selected
        clock.lap("encode")
        members, n_scored = score_claims(
            claims, days, cfg, all_members=all_members, threads=threads, clock=clock
        )
        blocks = data.audit_blocks()
        q = data.quarantine() if quarantine else None
        clock.lap("output")

    audit = {
        **blocks,
        "members_scored": n_scored,
        "rows_out": int(members.num_rows),
        "as_of": [str(_EPOCH + dt.timedelta(days=int(d))) for d in days],
        "seconds": clock.seconds,
        "version": __version__,
        "config_digest": cfg.digest(),
        "warnings": intake.audit_warnings(
            blocks,
            max_reject_share=max_reject_share,
            max_days_supply=cfg.metrics.max_days_supply,
        ),
    }
    return Result(members=members, audit=audit, quarantine=q)


def score_claims(claims, days: np.ndarray, config, *, all_members: bool, threads, clock):
    """Kernels, flags and the member table for encoded claims: ``(members, members scored)``.

    Shared by the in-memory path (the whole book) and the streaming path (one member
    partition at a time). Stages "kernels" and "rules" are timed on ``clock``.
    """
    from rxrisk.outputs import member_table, metric_columns
    from rxrisk.rules import evaluate_flags

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
    :func:`rxrisk.kernels.member_scores.score_members`); :func:`rxrisk.outputs.metric_columns`
    reads them.
    """
    from rxrisk.codesets import CATEGORIES
    from rxrisk.kernels.member_scores import n_float_columns, n_int_columns, score_members
    from rxrisk.pipeline import set_threads

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

"""``rxrisk.score``, the public face of scoring: the arguments checked, then an engine picked.

The in-process engine (:mod:`rxrisk.engines.local`) scores a book in memory; the streaming one
(:mod:`rxrisk.engines.stream`) batch by batch with bounded memory. Both give the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from rxrisk.config.settings import check_arguments, check_max_reject_share
from rxrisk.engines import local
from rxrisk.engines.stream import StreamOptions, score_stream
from rxrisk.ingest.dates import check_date_format
from rxrisk.kernels._jit import own_context


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


@own_context
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
        any, gets running counts on streaming runs (see :class:`rxrisk.clock.Clock`).
    stream : bool or rxrisk.engines.stream.StreamOptions, optional
        Score batch by batch with bounded memory (:mod:`rxrisk.engines.stream`): same output, byte
        for byte. True uses the default :class:`~rxrisk.engines.stream.StreamOptions`.
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
    setup = _setup(
        as_of, reference, rules, codesets, threads, progress, date_format, max_reject_share
    )
    if stream is None or stream is False:
        scored = local.score_book(
            pharmacy, medical, setup, all_members=all_members, quarantine=quarantine
        )
    else:
        options = stream if isinstance(stream, StreamOptions) else StreamOptions()
        scored = _score_streaming(pharmacy, medical, setup, options, all_members, quarantine)
    return Result(
        members=scored.members, audit=local.audit_of(scored, setup), quarantine=scored.quarantine
    )


def _setup(
    as_of, reference, rules, codesets, threads, progress, date_format, max_reject_share
) -> local.Setup:
    """The arguments checked (each refused with one line, before anything is read), then the
    run's settings loaded (:func:`rxrisk.engines.local.configure`)."""
    date_format = check_date_format(date_format)
    if max_reject_share is not None:  # fail fast; the rule file's share applies when None
        check_max_reject_share(max_reject_share)
    check_arguments(reference=reference, rules=rules, codesets=codesets, threads=threads)
    return local.configure(
        as_of=as_of,
        reference=reference,
        rules=rules,
        codesets=codesets,
        threads=threads,
        progress=progress,
        date_format=date_format,
        max_reject_share=max_reject_share,
    )


def _score_streaming(
    pharmacy, medical, setup: local.Setup, options: StreamOptions, all_members, quarantine
) -> local.Scored:
    """The streaming engine (:func:`rxrisk.engines.stream.score_stream`) on the run's settings."""
    members, blocks, n_scored, rejected = score_stream(
        pharmacy,
        medical,
        days=setup.days,
        config=setup.config,
        options=options,
        clock=setup.clock,
        all_members=all_members,
        quarantine=quarantine,
        threads=setup.threads,
        date_format=setup.date_format,
        max_reject_share=setup.max_reject_share,
    )
    return local.Scored(members, blocks, n_scored, rejected)

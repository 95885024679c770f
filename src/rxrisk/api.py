"""``rxrisk.score``: the in-process pipeline, one direction of flow.

source -> inputs (Arrow, schema) -> validate (buckets) -> encode (Claims) -> kernels
(metrics) -> rules (flags) -> outputs (member table, audit, quarantine).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from rxrisk import __version__
from rxrisk.config.settings import parse_as_of
from rxrisk.days import date_of
from rxrisk.scoring.run import score_claims


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
        any, gets running counts on streaming runs (see :class:`rxrisk.ingest.select.Clock`).
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
    from rxrisk.clock import Clock
    from rxrisk.config.settings import check_arguments, load_config
    from rxrisk.ingest import intake
    from rxrisk.ingest.select import ingest, select_used
    from rxrisk.ingest.sources import check_date_format
    from rxrisk.scoring.encode import encode_selected
    from rxrisk.scoring.run import set_threads

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
        from rxrisk.engines.stream import StreamOptions, score_stream

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
        "as_of": [str(date_of(d)) for d in days],
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

"""``rxrisk.measures``, the public face of the standard measures: the arguments checked, then the
claims, eligibility and members measured in memory or streamed, the summary and the audit made."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.config.settings import check_arguments, check_max_reject_share
from rxrisk.days import date_of
from rxrisk.engines import local
from rxrisk.engines.stream import StreamOptions
from rxrisk.errors import InputError, shown
from rxrisk.ingest import intake
from rxrisk.ingest.dates import check_date_format
from rxrisk.kernels._jit import own_context
from rxrisk.quality.detail import detail_table
from rxrisk.quality.enrollment import read_enrollment
from rxrisk.quality.settings import load_measure_settings, parse_periods
from rxrisk.quality.summary import ALL_PRODUCTS, summary_table
from rxrisk.version import __version__


@dataclass
class MeasureResult:
    """What :func:`measures` returns.

    Attributes
    ----------
    summary : pyarrow.Table
        One row per (period, measure, product): ``eligible``, ``excluded``, ``denominator``,
        ``numerator`` and ``rate`` (see :func:`rxrisk.quality.summary.summary_table`).
    detail : pyarrow.Table
        One row per (member, period) eligible for any measure: the member's quantities and
        each measure's ``<measure>_denominator`` and ``<measure>_numerator``; sorted by
        member_id then period_start.
    audit : dict
        The ``pharmacy``, ``medical``, ``eligibility`` and ``members`` blocks (rows read,
        buckets, rejections by reason), ``members_eligible`` (distinct members in the detail),
        ``periods``, ``settings`` (the thresholds used), stage ``seconds``, ``version``,
        ``config_digest`` and ``warnings``.
    quarantine : pyarrow.Table or None
        Rejected rows of the four inputs as read, with ``source``, ``row_number`` and
        ``reject_reason`` (None unless asked for).
    """

    summary: pa.Table
    detail: pa.Table
    audit: dict
    quarantine: pa.Table | None = None


@own_context
def measures(
    pharmacy,
    medical=None,
    *,
    eligibility,
    members,
    periods,
    reference=None,
    rules=None,
    codesets=None,
    config=None,
    threads: int | None = None,
    progress: Callable[..., None] | None = None,
    date_format: str | None = None,
    max_reject_share: float | None = None,
    quarantine: bool = False,
    stream=None,
) -> MeasureResult:
    """The standard opioid measures (high dose, multiple providers, opioid and benzodiazepine,
    continued use) per period and product.

    Parameters
    ----------
    pharmacy, medical
        Claims and medical events, as for :func:`rxrisk.score` (tables, streams or paths;
        ``medical`` optional): hospice/palliative, cancer and sickle-cell codes exclude.
    eligibility : same kinds
        Enrollment spans: ``member_id``, ``start_date``, ``end_date`` (inclusive; empty =
        open-ended) and optional ``product``.
    members : same kinds
        ``member_id`` and ``birth_date``; a member without a valid row is in no denominator.
    periods : int, str, or a list of years or of (start, end) pairs
        Calendar years (``2025``, ``"2024,2025"``, ``[2024, 2025]``) or periods with both ends
        inclusive (``"2025-01-01:2025-06-30"``, comma-separated for several; a pair
        ``("2025-01-01", "2025-06-30")``; a list of pairs of text, dates or
        ``numpy.datetime64``); all are measured in one pass.
    reference, rules, codesets, threads, progress, date_format, max_reject_share
        As for :func:`rxrisk.score` (the rule file shapes the claims exactly as there;
        ``date_format`` and ``max_reject_share`` apply to all four inputs).
    config : path, dict or MeasureSettings, optional
        Measures file (the thresholds); default ``data/measures/default.toml``. Tables and keys
        a file leaves out keep their defaults.
    quarantine : bool
        Also return the rejected rows of the four inputs.
    stream : bool or rxrisk.engines.stream.StreamOptions, optional
        Read the claims batch by batch with bounded memory: same outputs, byte for byte.

    Returns
    -------
    MeasureResult

    Raises
    ------
    InputError
        A bad argument (before anything is read), or bad input (one line naming the file, the
        column and the fix).
    """
    days, settings, options = _checked(
        eligibility, members, periods, config, quarantine, stream, date_format, max_reject_share
    )
    check_arguments(reference=reference, rules=rules, codesets=codesets, threads=threads)
    setup = local.configure(
        as_of=date_of(int(days[-1, 1])),  # unused: the periods set the windows
        reference=reference,
        rules=rules,
        codesets=codesets,
        threads=threads,
        progress=progress,
        date_format=check_date_format(date_format),
        max_reject_share=max_reject_share,
    )
    inputs = (pharmacy, medical, eligibility, members, days, settings, setup, quarantine)
    if options is None:
        detail, blocks, rejected = _in_memory(*inputs)
    else:
        detail, blocks, rejected = _streamed(*inputs, options)
    summary = summary_table(detail, days, settings)
    setup.clock.lap("summary")
    audit = _audit(detail, blocks, days, settings, setup)
    return MeasureResult(summary=summary, detail=detail, audit=audit, quarantine=rejected)


def _checked(eligibility, members, periods, config, quarantine, stream, date_format, share):
    """The arguments :func:`measures` checks before anything is read (one line each): the
    periods as day numbers, the measures settings and the streaming options (None: in
    memory)."""
    for name, value in (("eligibility", eligibility), ("members", members)):
        if value is None:
            raise InputError(
                f"{name}= is required: give the {name} input (a file path or a pyarrow Table)"
            )
    if not isinstance(quarantine, bool | np.bool_):
        raise InputError(f"quarantine {shown(quarantine)}: give True or False")
    if stream is None or stream is False:
        options = None
    elif stream is True:
        options = StreamOptions()
    elif isinstance(stream, StreamOptions):
        options = stream
    else:
        raise InputError(
            f"stream {shown(stream)}: give True, False or rxrisk.engines.stream.StreamOptions"
        )
    check_date_format(date_format)
    if share is not None:
        check_max_reject_share(share)
    days = periods_of(periods)
    return days, load_measure_settings(config), options


def _is_year(item) -> bool:
    """Whether ``item`` reads as calendar years (an int, or digits of at most 4 per
    comma-separated part)."""
    if isinstance(item, bool | np.bool_):
        return False
    if isinstance(item, int | np.integer):
        return True
    if isinstance(item, str):
        parts = [p.strip() for p in item.split(",")]
        return all(p.isascii() and p.isdigit() and len(p) <= 4 for p in parts if p)
    return False


def periods_of(periods) -> np.ndarray:
    """The ``periods=`` argument of :func:`measures` as day numbers.

    Years when every item reads as a year (``2025``, ``"2025"``, ``"2024,2025"``, a list of
    them); otherwise periods (``"A:B[,A:B]"`` text, a ``(start, end)`` pair or a list of pairs
    or ``"A:B"`` texts), as :func:`rxrisk.quality.settings.parse_periods` reads them.

    Returns
    -------
    numpy.ndarray of int32, shape (n_periods, 2)
        First and last day of each period, sorted and distinct.
    """
    example = (
        "give years (periods=2025 or [2024, 2025]) or (start, end) pairs "
        "(periods=[('2025-01-01', '2025-12-31')])"
    )
    if periods is None:
        raise InputError(f"periods= is required: {example}")
    if isinstance(periods, bool | np.bool_ | float | dict | bytes | dt.date | np.datetime64):
        raise InputError(f"periods {shown(periods)} ({type(periods).__name__}): {example}")
    if isinstance(periods, str | int | np.integer):
        items = [periods]
    elif isinstance(periods, list | tuple | np.ndarray):
        items = list(periods)
    else:
        raise InputError(f"periods {shown(periods)} ({type(periods).__name__}): {example}")
    if not items or (isinstance(periods, str) and not periods.strip(", ")):
        raise InputError(f"periods= is empty: {example}")
    if all(_is_year(item) for item in items):
        return parse_periods(years=periods)
    return parse_periods(periods=periods)


def _in_memory(pharmacy, medical, eligibility, members, days, settings, setup, quarantine):
    """The in-memory route: ``(detail, audit blocks, rejected rows or None)``."""
    from rxrisk.quality.compute import measure_claims  # lazy: kernels on first use

    data, selected = local.ingest_book(pharmacy, medical, setup, all_members=False)
    enrollment = read_enrollment(
        eligibility,
        members,
        member_type=data.pharmacy.member_id.type,
        date_format=setup.date_format,
        max_reject_share=setup.max_reject_share,
        clock=setup.clock,
    )
    check_products(enrollment.products, eligibility)
    claims = local.encode_book(selected, setup)
    del selected
    spans, products = enrollment.spans_for(claims.member_ids)
    births = enrollment.births_for(claims.member_ids)
    quantities = measure_claims(claims, spans, births, days, settings, threads=setup.threads)
    setup.clock.lap("measures")
    detail = detail_table(claims.member_ids, quantities, days, products, settings)
    setup.clock.lap("output")
    blocks = {**data.audit_blocks(), **enrollment.audit_blocks()}
    rejected = _rejected(data.quarantine(), enrollment.quarantine()) if quarantine else None
    return detail, blocks, rejected


def _streamed(pharmacy, medical, eligibility, members, days, settings, setup, quarantine, options):
    """The streaming route (:mod:`rxrisk.engines.stream_measures`): ``(detail, audit blocks,
    rejected rows or None)``."""
    from rxrisk.engines.stream_measures import (  # lazy: only streamed runs load it
        measures_stream,
    )

    streamed = measures_stream(
        pharmacy,
        medical,
        eligibility=eligibility,
        members=members,
        periods=days,
        settings=settings,
        config=setup.config,
        options=options,
        clock=setup.clock,
        threads=setup.threads,
        quarantine=quarantine,
        date_format=setup.date_format,
        max_reject_share=setup.max_reject_share,
    )
    check_products(streamed.enrollment.products, eligibility)
    rejected = None
    if quarantine:
        rejected = _rejected(streamed.quarantine, streamed.enrollment.quarantine())
    return streamed.detail, streamed.blocks, rejected


def check_products(products, eligibility) -> None:
    """Refuse a product named like the summary's rows of every product together
    (:data:`~rxrisk.quality.summary.ALL_PRODUCTS`): its rows could not be told apart."""
    if ALL_PRODUCTS in products:
        where = f" {eligibility}" if isinstance(eligibility, str | os.PathLike) else ""
        raise InputError(
            f"eligibility{where}: column product has the value {ALL_PRODUCTS!r}, the summary's "
            f"name for all products together; rename that product (e.g. {ALL_PRODUCTS}_lines)"
        )


def _rejected(claims: pa.Table, enrollment: pa.Table) -> pa.Table:
    """The rejected rows of the claims, then of eligibility and members, as one table (a
    column whose types differ is written as text)."""
    tables = [t for t in (claims, enrollment) if t is not None]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        texts = []
        for t in tables:
            fields = [
                pa.field(f.name, pa.string()) if i >= 3 else f for i, f in enumerate(t.schema)
            ]
            texts.append(t.cast(pa.schema(fields)))
        return pa.concat_tables(texts, promote_options="permissive")


def _audit(detail: pa.Table, blocks: dict, days: np.ndarray, settings, setup) -> dict:
    """The audit of a measures run."""
    members = detail.column("member_id")
    return {
        **blocks,
        "members_eligible": int(pc.count_distinct(members).as_py()) if len(members) else 0,
        "periods": [[str(date_of(a)), str(date_of(b))] for a, b in days],
        "settings": settings.values(),
        "seconds": setup.clock.seconds,
        "version": __version__,
        "config_digest": setup.config.digest(settings.digest()),
        "warnings": intake.audit_warnings(
            blocks,
            max_reject_share=setup.max_reject_share,
            max_days_supply=setup.config.metrics.max_days_supply,
        ),
    }

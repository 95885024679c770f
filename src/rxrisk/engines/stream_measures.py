"""The standard measures on the streaming engine: claims streamed and partitioned by member as
for ``score --stream``, eligibility and members read once and split by the same partitions, the
detail made partition by partition and merged into member order (the in-memory bytes)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from rxrisk.engines.partitions import member_parts
from rxrisk.engines.stream import StreamOptions, encoded_partitions, ingest_stream, member_order
from rxrisk.ingest.drugs import DrugTable
from rxrisk.quality.detail import detail_schema, detail_table
from rxrisk.quality.enrollment import Enrollment, read_enrollment

#: The detail's sort keys (member, then period): how partition details are merged.
DETAIL_ORDER = ("member_id", "period_start")


@dataclass
class StreamedMeasures:
    """What :func:`measures_stream` hands back.

    Attributes
    ----------
    detail : pyarrow.Table
        The member detail, byte for byte the in-memory one.
    blocks : dict
        The audit blocks ``pharmacy``, ``medical``, ``eligibility`` and ``members``, in that
        order.
    quarantine : pyarrow.Table or None
        The claims' rejected rows as ``score`` writes them (``quarantine=True`` only).
    enrollment : rxrisk.quality.enrollment.Enrollment
        Eligibility and members as read: their audit blocks and rejected rows (not their
        used rows, which went to the member partitions).
    """

    detail: pa.Table
    blocks: dict
    quarantine: pa.Table | None
    enrollment: Enrollment


def measure_detail(claims, enrollment: Enrollment, periods, settings, *, threads=None) -> pa.Table:
    """The member detail of the members of ``claims`` (a whole book's or one partition's).

    Parameters
    ----------
    claims : rxrisk.scoring.encode.Claims
        Encoded, member-sorted claims.
    enrollment : rxrisk.quality.enrollment.Enrollment
        Eligibility and members (the whole book's, or those of the claims' partition).
    periods : numpy.ndarray of int32, shape (n_periods, 2)
        From :func:`rxrisk.quality.settings.parse_periods`.
    settings : rxrisk.quality.settings.MeasureSettings
        The measure thresholds.
    threads : int or None
        Numba threads (None: numba's default).

    Returns
    -------
    pyarrow.Table
        :func:`rxrisk.quality.detail.detail_table` of these members.
    """
    from rxrisk.quality.compute import measure_claims  # lazy: kernels on first use

    spans, products = enrollment.spans_for(claims.member_ids)
    births = enrollment.births_for(claims.member_ids)
    quantities = measure_claims(claims, spans, births, periods, settings, threads=threads)
    return detail_table(claims.member_ids, quantities, periods, products, settings)


def split_enrollment(enrollment: Enrollment, n_parts: int) -> list[Enrollment]:
    """The used rows of ``enrollment`` split by member partition (the partition function of
    the streaming engine's claims, :func:`rxrisk.engines.partitions.member_parts`), once, so
    aligning one partition costs its own rows, not all of them.

    Each part keeps its used rows in input order and the whole book's product names (so
    product codes are unchanged); its ``table`` and ``reason`` are empty: the parts only
    serve :meth:`~Enrollment.spans_for` and :meth:`~Enrollment.births_for`, and the
    audit stays with ``enrollment``.
    """
    el, mb = enrollment.eligibility, enrollment.members
    el_parts = _split_rows(el.ids, n_parts)
    mb_parts = _split_rows(mb.ids, n_parts)
    none = np.zeros(0, np.int8)
    out = []  # the parts take copies: a slice would hold the whole input's buffers
    for p in range(n_parts):
        e_rows, m_rows = el_parts[p], mb_parts[p]
        e_take, m_take = pa.array(e_rows, pa.int64()), pa.array(m_rows, pa.int64())
        part_el = dataclasses.replace(
            el,
            table=el.table.schema.empty_table(),
            reason=none,
            ids=el.ids.take(e_take),
            start=np.ascontiguousarray(el.start[e_rows]),
            end=np.ascontiguousarray(el.end[e_rows]),
            product=np.ascontiguousarray(el.product[e_rows]),
        )
        part_mb = dataclasses.replace(
            mb,
            table=mb.table.schema.empty_table(),
            reason=none,
            ids=mb.ids.take(m_take),
            birth=np.ascontiguousarray(mb.birth[m_rows]),
        )
        out.append(Enrollment(part_el, part_mb))
    return out


def _rows_only(enrollment: Enrollment) -> Enrollment:
    """``enrollment`` without its used rows (audit blocks and rejected rows only), once the
    partitions hold them: the used rows are not kept twice."""
    el, mb = enrollment.eligibility, enrollment.members
    none = np.zeros(0, np.int32)
    return Enrollment(
        dataclasses.replace(el, ids=pa.array([], el.ids.type), start=none, end=none, product=none),
        dataclasses.replace(mb, ids=pa.array([], mb.ids.type), birth=none),
    )


def _split_rows(ids: pa.Array, n_parts: int) -> list[np.ndarray]:
    """Row numbers of ``ids`` in each member partition, in input order."""
    if n_parts == 1 or not len(ids):
        rows = np.arange(len(ids), dtype=np.int64)
        return [rows] + [rows[:0]] * (n_parts - 1)
    part = member_parts(pa.chunked_array([ids]), n_parts)
    order = np.argsort(part.astype(np.int16) if n_parts < (1 << 15) else part, kind="stable")
    counts = np.bincount(part, minlength=n_parts)  # ids of used rows are never null
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return [order[bounds[p] : bounds[p + 1]].astype(np.int64) for p in range(n_parts)]


def measures_stream(
    pharmacy,
    medical,
    *,
    eligibility,
    members,
    periods: np.ndarray,
    settings,
    config,
    options: StreamOptions,
    clock,
    threads: int | None = None,
    quarantine: bool = False,
    date_format: str | None = None,
    max_reject_share: float | None = None,
) -> StreamedMeasures:
    """Streaming counterpart of the measures' in-memory route (see the module docstring).

    Parameters
    ----------
    pharmacy, medical
        As for :func:`rxrisk.engines.stream.score_stream` (``medical`` may be None).
    eligibility, members
        As for :func:`rxrisk.quality.enrollment.read_enrollment`; read once, after the claims.
    periods : numpy.ndarray of int32, shape (n_periods, 2)
        From :func:`rxrisk.quality.settings.parse_periods`.
    settings : rxrisk.quality.settings.MeasureSettings
        The measure thresholds.
    config : rxrisk.config.settings.Config
        Reference and code sets (:func:`rxrisk.engines.local.configure`).
    options : StreamOptions
        Batches, partitions, spilling.
    clock : rxrisk.clock.Clock
        Stage seconds and progress.
    threads, quarantine, date_format, max_reject_share
        As for :func:`rxrisk.score`; ``max_reject_share`` applies to all four inputs.

    Returns
    -------
    StreamedMeasures
    """
    book = ingest_stream(
        pharmacy,
        medical,
        config,
        options=options,
        clock=clock,
        quarantine=quarantine,
        date_format=date_format,
        max_reject_share=max_reject_share,
    )
    try:
        enrollment = read_enrollment(
            eligibility,
            members,
            member_type=book.member_type,
            date_format=date_format,
            max_reject_share=config.reject_share(max_reject_share),
            clock=clock,
        )
        parts = split_enrollment(enrollment, book.n_parts)
        enrollment = _rows_only(enrollment)  # the parts hold the used rows now
        clock.lap("enrollment")
        details = []
        drugs = DrugTable.from_reference(config.reference)
        for p, claims in encoded_partitions(book, drugs, clock):
            details.append(measure_detail(claims, parts[p], periods, settings, threads=threads))
            parts[p] = None  # aligned once: free its rows
            clock.lap("measures")
            clock.tick("member partitions measured", p + 1)
        detail = member_order(_one_schema(details, book.member_type), DETAIL_ORDER)
        clock.lap("output")
        blocks = {**book.audit_blocks, **enrollment.audit_blocks()}
        return StreamedMeasures(detail, blocks, book.quarantine, enrollment)
    finally:
        book.close()


def _one_schema(details: list[pa.Table], member_type: pa.DataType) -> list[pa.Table]:
    """The partition details that have rows (one member-id type: the streaming engine checks
    the inputs agree up front), or one empty detail of the pharmacy's member-id type."""
    return [d for d in details if d.num_rows] or [detail_schema(member_type).empty_table()]

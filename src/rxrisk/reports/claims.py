"""The report's claims read in memory or streamed: the used rows of the reported members only
(:class:`~rxrisk.reports.data.MemberClaims`) and the claims' audit blocks, the same either way."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rxrisk.engines.partitions import without_rows
from rxrisk.engines.stream import StreamOptions, ingest_stream
from rxrisk.ingest.dates import check_date_format
from rxrisk.ingest.intake import audit_warnings
from rxrisk.ingest.select import ingest
from rxrisk.ingest.tracked import fills_schema
from rxrisk.io.arrow import to_numpy
from rxrisk.reports.data import MemberClaims, WantedRows, events_schema, member_claims


def read_claims(
    pharmacy,
    medical,
    config,
    wanted: pa.Array,
    *,
    stream=None,
    clock,
    date_format: str | None = None,
    max_reject_share: float | None = None,
) -> tuple[MemberClaims, dict]:
    """Read and check the claims; keep the used rows of the ``wanted`` members.

    Parameters
    ----------
    pharmacy, medical
        The claims, as for :func:`rxrisk.score` (``medical`` may be None).
    config : rxrisk.config.settings.Config
        Reference, code sets and rules.
    wanted : pyarrow.Array
        The member ids whose rows are kept.
    stream : bool or rxrisk.engines.stream.StreamOptions, optional
        None or False: read the whole book into memory; otherwise stream it batch by batch
        (True: the default options), keeping only the wanted members' rows and the claim keys
        of the book-wide reversal and duplicate matching (:mod:`rxrisk.engines.stream`).
    clock : rxrisk.clock.Clock
        Stage seconds and progress.
    date_format, max_reject_share
        As for :func:`rxrisk.score`.

    Returns
    -------
    (MemberClaims, dict)
        The wanted members' used rows, and the ``pharmacy`` and ``medical`` audit blocks
        with their ``warnings``.
    """
    date_format = check_date_format(date_format)
    max_reject_share = config.reject_share(max_reject_share)
    if stream is None or stream is False:
        data = ingest(
            pharmacy,
            medical,
            config,
            clock=clock,
            date_format=date_format,
            max_reject_share=max_reject_share,
        )
        return member_claims(data, wanted), _audit(data.audit_blocks(), config, max_reject_share)
    options = stream if isinstance(stream, StreamOptions) else StreamOptions()
    book = ingest_stream(
        pharmacy,
        medical,
        config,
        options=options,
        clock=clock,
        date_format=date_format,
        max_reject_share=max_reject_share,
        keep=WantedRows(wanted),
    )
    try:
        fills, events = [], []
        for p in range(book.n_parts):
            part = book.fills.read(p)
            if part is not None:
                fills.append(without_rows(part, book.dropped_rows))
            if book.events is not None:
                part = book.events.read(p)
                if part is not None:
                    events.append(part)
            book.release(p)
        rows = MemberClaims(
            _by_row(fills, book.fills.schema or fills_schema(book.member_type)),
            None
            if book.events is None
            else _by_row(events, book.events.schema or events_schema(book.member_type)),
        )
        return rows, _audit(book.audit_blocks, config, max_reject_share)
    finally:
        book.close()


def _audit(blocks: dict, config, max_reject_share: float) -> dict:
    """The claims' audit ``blocks`` (``pharmacy``, ``medical``) and their ``warnings``."""
    warnings = audit_warnings(
        blocks, max_reject_share=max_reject_share, max_days_supply=config.metrics.max_days_supply
    )
    return {**blocks, "warnings": warnings}


def _by_row(parts: list[pa.Table], schema: pa.Schema) -> pa.Table:
    """The member partitions' rows as one table in input-row order (as read in memory)."""
    if not parts:
        return schema.empty_table()
    table = pa.concat_tables(parts)
    order = np.argsort(to_numpy(table.column("row"), np.int64), kind="stable")
    return table.take(pa.array(order, pa.int64())).combine_chunks()

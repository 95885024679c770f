"""The rows scoring uses, ready for encoding (:class:`TrackedRows`), and the functions that
select them from checked rows, shared by every route.

In memory the whole book is one batch and the used rows are selected after claim-id
matching; streaming selects each batch's tracked rows as it is read, spools them by member
partition and removes the reversed and duplicate rows when a partition is read back. Either
way the rows reach :func:`rxrisk.scoring.encode.encode` in the same columns and types.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.ingest.conform import MedicalColumns, PharmacyColumns, clean_text
from rxrisk.ingest.validate import MEDICAL_BUCKETS, MedicalRows
from rxrisk.io.arrow import keep_rows


def fills_schema(member_type: pa.DataType) -> pa.Schema:
    """The columns of :attr:`TrackedRows.fills` (``member_type``: string or int64)."""
    return pa.schema(
        [
            ("row", pa.int64()),
            ("member_id", member_type),
            ("fill_date", pa.date32()),
            ("quantity", pa.float64()),
            ("days_supply", pa.int64()),
            ("prescriber_id", pa.string()),
            ("pharmacy_id", pa.string()),
            ("ref_index", pa.int32()),
        ]
    )


def events_schema(member_type: pa.DataType) -> pa.Schema:
    """The columns of :attr:`TrackedRows.events`."""
    return pa.schema(
        [("member_id", member_type), ("service_date", pa.date32()), ("mask", pa.uint8())]
    )


@dataclass(frozen=True)
class TrackedRows:
    """The rows scoring uses, in input order (within a member partition when streaming).

    Attributes
    ----------
    fills : pyarrow.Table
        The used pharmacy rows (:func:`fills_schema`): ``row`` (input row number, 0-based),
        ``member_id`` (trimmed, blank as null), ``fill_date``, ``quantity``,
        ``days_supply``, ``prescriber_id`` and ``pharmacy_id`` (trimmed, blank as null) and
        ``ref_index`` (the reference row of the normalised NDC).
    events : pyarrow.Table or None
        The used medical rows (:func:`events_schema`): ``member_id``, ``service_date`` and
        ``mask`` (category bits); None without a medical input.
    extra_members : pyarrow.ChunkedArray or None
        Distinct non-blank member ids seen in any row of either input, whatever its bucket
        (``--all-members``); None otherwise.
    """

    fills: pa.Table
    events: pa.Table | None = None
    extra_members: pa.ChunkedArray | None = None


def tracked_fills(
    columns: PharmacyColumns,
    keep: np.ndarray,
    ref_row: np.ndarray,
    first_row: int = 0,
    row_numbers: np.ndarray | None = None,
) -> pa.Table:
    """The pharmacy rows of ``keep`` (bool per row) as :attr:`TrackedRows.fills`.

    Parameters
    ----------
    columns : PharmacyColumns
        A batch (or the whole book) in working types.
    keep : numpy.ndarray of bool
        The rows to select (their NDC is in the reference).
    ref_row : numpy.ndarray
        Reference row of each row's NDC.
    first_row : int
        Input row number of the batch's first row.
    row_numbers : numpy.ndarray of int64, optional
        Input row number of each row of ``columns``, when they are not consecutive (e.g. a
        batch's tracked rows, :attr:`~rxrisk.ingest.validate.PharmacyChecks.scoped`);
        ``first_row`` is then not used.

    Returns
    -------
    pyarrow.Table
    """
    kept = keep_rows(
        {
            "member_id": columns.member_id,
            "fill_date": columns.fill_date,
            "quantity": columns.quantity,
            "days_supply": columns.days_supply,
            "prescriber_id": columns.prescriber_id,
            "pharmacy_id": columns.pharmacy_id,
        },
        keep,
    )
    rows = np.flatnonzero(keep)
    numbers = rows + first_row if row_numbers is None else row_numbers[rows]
    return pa.table(
        {
            "row": numbers.astype(np.int64, copy=False),
            "member_id": clean_text(kept["member_id"]),
            "fill_date": kept["fill_date"],
            "quantity": kept["quantity"],
            "days_supply": kept["days_supply"].cast(pa.int64()),
            "prescriber_id": clean_text(kept["prescriber_id"]),
            "pharmacy_id": clean_text(kept["pharmacy_id"]),
            "ref_index": ref_row[rows].astype(np.int32, copy=False),
        }
    )


def tracked_events(columns: MedicalColumns, rows: MedicalRows) -> pa.Table:
    """The used medical rows as :attr:`TrackedRows.events`.

    Parameters
    ----------
    columns : MedicalColumns
        A batch (or the whole book) in working types.
    rows : MedicalRows
        Its buckets and category bits.

    Returns
    -------
    pyarrow.Table
    """
    used = rows.bucket == MEDICAL_BUCKETS.index("used")
    kept = keep_rows({"member_id": columns.member_id, "service_date": columns.service_date}, used)
    return pa.table(
        {
            "member_id": clean_text(kept["member_id"]),
            "service_date": kept["service_date"],
            "mask": pa.array(rows.mask[used]),
        }
    )


def members_seen(member_id: pa.ChunkedArray) -> pa.ChunkedArray:
    """The distinct non-blank member ids (trimmed) of a batch, whatever the rows' buckets, for
    :attr:`TrackedRows.extra_members`."""
    seen = pc.unique(member_id) if len(member_id) else member_id
    seen = pa.chunked_array([seen]) if isinstance(seen, pa.Array) else seen
    seen = clean_text(seen)
    if len(seen):
        seen = pc.unique(seen)
        if seen.null_count:
            seen = seen.drop_null()
    return pa.chunked_array([seen]) if isinstance(seen, pa.Array) else seen

"""One batch of an input conformed and checked row by row: the step every route shares.

The in-memory route checks a whole book as one batch; the streaming route checks each batch
as it is read. Both then take their global step (claim-id matching over the whole book) and
select the tracked rows (:mod:`rxrisk.ingest.tracked`) from what is kept here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from rxrisk.ingest.conform import MedicalColumns, PharmacyColumns, conform_medical, conform_pharmacy
from rxrisk.ingest.intake import Offenders
from rxrisk.ingest.sources import Source
from rxrisk.ingest.validate import (
    MEDICAL_REASONS,
    PHARMACY_REASONS,
    MedicalRows,
    PharmacyChecks,
    check_pharmacy,
    validate_medical,
)


@dataclass(frozen=True)
class CheckedPharmacy:
    """A batch of pharmacy rows (or a whole book) after conforming and the row-local checks.

    Attributes
    ----------
    table : pyarrow.Table
        The rows as read (for the quarantine and the offending values).
    columns : PharmacyColumns
        The rows in their working types.
    checks : PharmacyChecks
        Rejection reason, status and reference row of every row
        (:func:`rxrisk.ingest.validate.check_pharmacy`).
    first_row : int
        Input row number (0-based) of the batch's first row.
    """

    table: pa.Table
    columns: PharmacyColumns
    checks: PharmacyChecks
    first_row: int = 0


@dataclass(frozen=True)
class CheckedMedical:
    """A batch of medical rows (or a whole book) after conforming and validation (medical rows
    need no global step: their buckets are row-local).

    Attributes
    ----------
    table : pyarrow.Table
        The rows as read.
    columns : MedicalColumns
        The rows in their working types.
    rows : MedicalRows
        Bucket, rejection reason and category bits of every row.
    first_row : int
        Input row number (0-based) of the batch's first row.
    """

    table: pa.Table
    columns: MedicalColumns
    rows: MedicalRows
    first_row: int = 0


def check_pharmacy_batch(
    source: Source,
    *,
    drugs,
    max_days_supply: int,
    date_format: str | None = None,
    first_row: int = 0,
    offenders: Offenders | None = None,
    ndcs=None,
) -> CheckedPharmacy:
    """Conform a batch of pharmacy rows and run the row-local checks.

    Parameters
    ----------
    source : Source
        The batch as read, with the input's name for messages.
    drugs : rxrisk.ingest.drugs.DrugTable
        The reference as arrays.
    max_days_supply : int
        Largest valid ``days_supply``.
    date_format : str, optional
        ``strptime`` format of text dates (:func:`rxrisk.ingest.conform.as_date`).
    first_row : int
        Input row number of the batch's first row.
    offenders : Offenders, optional
        Gathers the offending values of the rejected rows.
    ndcs : rxrisk.ingest.validate.RememberedNdcs, optional
        The NDC outcomes of earlier batches of the same run.

    Returns
    -------
    CheckedPharmacy
    """
    columns = conform_pharmacy(source, date_format=date_format)
    checks = check_pharmacy(columns, drugs, max_days_supply=max_days_supply, ndcs=ndcs)
    if offenders is not None:
        offenders.add("pharmacy", source.table, checks.reason, PHARMACY_REASONS)
    return CheckedPharmacy(source.table, columns, checks, first_row)


def check_medical_batch(
    source: Source,
    *,
    codesets,
    date_format: str | None = None,
    first_row: int = 0,
    offenders: Offenders | None = None,
) -> CheckedMedical:
    """Conform a batch of medical rows and put each in its bucket.

    Parameters
    ----------
    source : Source
        The batch as read, with the input's name for messages.
    codesets : rxrisk.config.codesets.CodeSets
        The medical code sets.
    date_format, first_row, offenders
        As for :func:`check_pharmacy_batch`.

    Returns
    -------
    CheckedMedical
    """
    columns = conform_medical(source, date_format=date_format)
    rows = validate_medical(columns, codesets)
    if offenders is not None:
        offenders.add("medical", source.table, rows.reason, MEDICAL_REASONS)
    return CheckedMedical(source.table, columns, rows, first_row)

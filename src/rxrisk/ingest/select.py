"""The in-memory front half of every command: read, check and select the tracked rows.

``score`` (metrics and flags), ``edits`` (point-of-sale replay) and ``report`` all run
:func:`ingest` then :func:`select_used`, so they see the very same buckets, reference
lookups and tracked rows. The whole book is one batch of :mod:`rxrisk.ingest.checked`; the
streaming engine runs the same steps batch by batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from rxrisk.clock import Clock
from rxrisk.config.kernel_tier import choose_tier
from rxrisk.errors import InputError
from rxrisk.ingest import intake, validate
from rxrisk.ingest.checked import check_medical_batch, check_pharmacy_batch
from rxrisk.ingest.conform import MedicalColumns, PharmacyColumns
from rxrisk.ingest.dates import check_date_format
from rxrisk.ingest.drugs import DrugTable
from rxrisk.ingest.sources import Source, read_source
from rxrisk.ingest.tracked import TrackedRows, members_seen, tracked_events, tracked_fills

if TYPE_CHECKING:  # pragma: no cover
    from rxrisk.config.settings import Config


@dataclass
class Ingested:
    """Validated inputs: the conformed columns and the bucket of every row."""

    reference: pa.Table
    pharmacy_source: Source
    pharmacy: PharmacyColumns
    pharmacy_rows: validate.PharmacyRows
    medical_source: Source | None = None
    medical: MedicalColumns | None = None
    medical_rows: validate.MedicalRows | None = None

    def audit_blocks(self) -> dict:
        """The ``pharmacy`` and ``medical`` blocks of the audit."""
        return {
            "pharmacy": self.pharmacy_rows.counts(),
            "medical": self.medical_rows.counts()
            if self.medical_rows is not None
            else validate.empty_medical_counts(),
        }

    def used_pharmacy_rows(self) -> np.ndarray:
        """Input row numbers (0-based) of the ``used`` pharmacy rows, in input order."""
        return np.flatnonzero(self.pharmacy_rows.bucket == validate.PHARMACY_BUCKETS.index("used"))

    def quarantine(self) -> pa.Table:
        """Rejected rows of both inputs as read (see :func:`rxrisk.io.outputs.quarantine_table`)."""
        from rxrisk.io.outputs import quarantine_table  # lazy: pulls pyarrow.compute

        r = self.pharmacy_rows.reason
        parts = [
            (
                "pharmacy",
                self.pharmacy_source.table,
                np.flatnonzero(r >= 0),
                r[r >= 0],
                validate.PHARMACY_REASONS,
            )
        ]
        if self.medical_rows is not None:
            m = self.medical_rows.reason
            parts.append(
                (
                    "medical",
                    self.medical_source.table,
                    np.flatnonzero(m >= 0),
                    m[m >= 0],
                    validate.MEDICAL_REASONS,
                )
            )
        return quarantine_table(parts)


def ingest(
    pharmacy,
    medical,
    config: Config,
    *,
    clock: Clock,
    max_days_supply: int | None = None,
    date_format: str | None = None,
    max_reject_share: float | None = None,
) -> Ingested:
    """Read both inputs, check their schemas and put every row in its bucket.

    When the inputs are read, the run's kernel tier is chosen from the rows read
    (:func:`rxrisk.config.kernel_tier.choose_tier`: plain Python for a small book).

    Parameters
    ----------
    pharmacy, medical
        Sources as :func:`rxrisk.ingest.sources.read_source` reads them (``medical`` may be
        None).
    config : Config
        Reference, code sets and rules.
    clock : Clock
        Takes the ``read`` and ``validate`` laps.
    max_days_supply : int, optional
        Default: the rules' ``[metrics] max_days_supply``.
    date_format : str, optional
        Reads text dates of another form (:func:`rxrisk.ingest.conform.as_date`).
    max_reject_share : float, optional
        A rejection reason above this share (default: the rule file's ``[metrics]
        max_reject_share``) of an input's in-scope rows stops here
        (:func:`rxrisk.ingest.intake.check`).

    Returns
    -------
    Ingested
    """
    date_format = check_date_format(date_format)
    max_reject_share = config.reject_share(max_reject_share)
    if max_days_supply is None:
        max_days_supply = config.metrics.max_days_supply
    ph_src = read_source(pharmacy, label="pharmacy")
    md_src = read_source(medical, label="medical") if medical is not None else None
    choose_tier(ph_src.table.num_rows + (md_src.table.num_rows if md_src is not None else 0))
    clock.lap("read")
    offenders = intake.Offenders()
    ph = check_pharmacy_batch(
        ph_src,
        drugs=DrugTable.from_reference(config.reference),
        max_days_supply=max_days_supply,
        date_format=date_format,
        offenders=offenders,
    )
    out = Ingested(
        reference=config.reference,
        pharmacy_source=ph_src,
        pharmacy=ph.columns,
        pharmacy_rows=validate.pharmacy_buckets(ph.checks, ph.columns.claim_id),
    )
    if md_src is not None:
        md = check_medical_batch(
            md_src, codesets=config.codesets, date_format=date_format, offenders=offenders
        )
        out.medical_source, out.medical, out.medical_rows = md_src, md.columns, md.rows
    intake.check(
        out.audit_blocks(),
        names={"pharmacy": ph_src.name, "medical": md_src.name if md_src else None},
        offenders=offenders,
        max_reject_share=max_reject_share,
        max_days_supply=max_days_supply,
    )
    clock.lap("validate")
    return out


def select_used(data: Ingested, *, all_members: bool = False) -> TrackedRows:
    """The used rows of both inputs, ready for :func:`rxrisk.scoring.encode.encode`: filtered
    out of the book and with ids trimmed, plus the members seen (``all_members``).

    This is the end of validation (from buckets to the rows that count); the streaming
    engine selects the same rows with the same functions (:mod:`rxrisk.ingest.tracked`).
    """
    rows = data.pharmacy_rows
    used = rows.bucket == validate.PHARMACY_BUCKETS.index("used")
    fills = tracked_fills(data.pharmacy, used, rows.ref_index)
    events = None
    if data.medical is not None:
        events = tracked_events(data.medical, data.medical_rows)
    extra = None
    if all_members:
        # every non-blank member id of any row, whatever its bucket (untracked and rejected
        # rows too)
        seen = [members_seen(data.pharmacy.member_id)]
        if data.medical is not None:
            seen.append(members_seen(data.medical.member_id))
        if len({str(s.type) for s in seen}) != 1:
            raise InputError(
                "member_id has different types in pharmacy and medical; give both the same type"
            )
        extra = pa.chunked_array([c for s in seen for c in s.chunks], type=seen[0].type)
    return TrackedRows(fills=fills, events=events, extra_members=extra)

"""The shared front half of every command: read, validate and encode.

``score`` (metrics and flags) and ``edits`` (point-of-sale replay) both run
:func:`ingest` then :func:`encode_used`, so they see the very same buckets, reference
lookups and sorted claims.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from rxrisk.clock import Clock
from rxrisk.errors import InputError
from rxrisk.ingest import sources as inputs
from rxrisk.ingest import validate
from rxrisk.io.arrow import keep_rows

if TYPE_CHECKING:  # pragma: no cover
    from rxrisk.config.settings import Config


@dataclass
class Ingested:
    """Validated inputs: the conformed columns and the bucket of every row."""

    reference: pa.Table
    pharmacy_source: inputs.Source
    pharmacy: inputs.PharmacyColumns
    pharmacy_rows: validate.PharmacyRows
    medical_source: inputs.Source | None = None
    medical: inputs.MedicalColumns | None = None
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
        from rxrisk.io.outputs import quarantine_table

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

    ``max_days_supply`` defaults to the rules' ``[metrics] max_days_supply``;
    ``date_format`` reads text dates of another form (:func:`rxrisk.ingest.sources.as_date`). A
    rejection reason above ``max_reject_share`` (default: the rule file's ``[metrics]
    max_reject_share``) of an input's in-scope rows stops here (:func:`rxrisk.ingest.intake.check`).
    """
    from rxrisk.ingest import intake

    date_format = inputs.check_date_format(date_format)
    max_reject_share = config.reject_share(max_reject_share)
    reference = config.reference
    codesets = config.codesets
    if max_days_supply is None:
        max_days_supply = config.metrics.max_days_supply
    ph_src = inputs.read_source(pharmacy, label="pharmacy")
    md_src = inputs.read_source(medical, label="medical") if medical is not None else None
    clock.lap("read")
    ph = inputs.conform_pharmacy(ph_src, date_format=date_format)
    from rxrisk.scoring.encode import DrugTable

    ph_rows = validate.validate_pharmacy(
        ph, DrugTable.from_reference(reference), max_days_supply=max_days_supply
    )
    out = Ingested(reference=reference, pharmacy_source=ph_src, pharmacy=ph, pharmacy_rows=ph_rows)
    if md_src is not None:
        out.medical_source = md_src
        out.medical = inputs.conform_medical(md_src, date_format=date_format)
        out.medical_rows = validate.validate_medical(out.medical, codesets)
    offenders = intake.Offenders()
    offenders.add("pharmacy", ph_src.table, ph_rows.reason, validate.PHARMACY_REASONS)
    if out.medical_rows is not None:
        offenders.add("medical", md_src.table, out.medical_rows.reason, validate.MEDICAL_REASONS)
    intake.check(
        out.audit_blocks(),
        names={"pharmacy": ph_src.name, "medical": md_src.name if md_src else None},
        offenders=offenders,
        max_reject_share=max_reject_share,
        max_days_supply=max_days_supply,
    )
    clock.lap("validate")
    return out


def select_used(data: Ingested, *, all_members: bool = False) -> dict:
    """The used rows of both inputs, ready for :func:`rxrisk.scoring.encode.encode`: filtered out of
    the book and with ids trimmed, plus the members seen (``--all-members``).

    This is the end of validation (from buckets to the rows that count); the streaming path
    does the same per batch. Returns the keyword arguments of ``encode`` but ``drugs``.
    """
    ph, rows = data.pharmacy, data.pharmacy_rows
    used = data.used_pharmacy_rows()
    kept = keep_rows(
        {
            "member_id": ph.member_id,
            "fill_date": ph.fill_date,
            "quantity": ph.quantity,
            "days_supply": ph.days_supply,
            "prescriber_id": ph.prescriber_id,
            "pharmacy_id": ph.pharmacy_id,
        },
        rows.bucket == validate.PHARMACY_BUCKETS.index("used"),
    )
    med_args = {"medical_member": None, "service_date": None, "medical_mask": None}
    if data.medical is not None:
        is_used = data.medical_rows.bucket == validate.MEDICAL_BUCKETS.index("used")
        mkept = keep_rows(
            {"member_id": data.medical.member_id, "service_date": data.medical.service_date},
            is_used,
        )
        med_args = {
            "medical_member": inputs.clean_text(mkept["member_id"]),
            "service_date": mkept["service_date"],
            "medical_mask": data.medical_rows.mask[is_used],
        }
    extra = None
    if all_members:
        # every non-blank member id of any row, whatever its bucket (untracked and rejected
        # rows too); blank ids become null here and are no member
        seen = [inputs.clean_text(ph.member_id)]
        if data.medical is not None:
            seen.append(inputs.clean_text(data.medical.member_id))
        if len({str(s.type) for s in seen}) != 1:
            raise InputError(
                "member_id has different types in pharmacy and medical; give both the same type"
            )
        extra = pa.chunked_array([c for s in seen for c in s.chunks], type=seen[0].type)
    return {
        "pharmacy_member": inputs.clean_text(kept["member_id"]),
        "fill_date": kept["fill_date"],
        "quantity": kept["quantity"],
        "days_supply": kept["days_supply"],
        "prescriber": inputs.clean_text(kept["prescriber_id"]),
        "pharmacy": inputs.clean_text(kept["pharmacy_id"]),
        "ref_index": rows.ref_index[used],
        "input_row": used.astype(np.int64),
        "extra_members": extra,
        **med_args,
    }

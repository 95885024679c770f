"""Eligibility spans and members' birth dates for the standard measures: read, bucket every row,
stop on bad input (loud intake), then align onto the claims' members.

:func:`read_enrollment` reads both inputs from any source kind, puts every row in a bucket
(``rejected`` with its first failing reason, or ``used``; :mod:`rxrisk.quality.enrollment_checks`)
and stops as the claims do when a reason rejects too many rows. The :class:`Enrollment` it
returns holds the used rows; :meth:`Enrollment.spans_for` and :meth:`Enrollment.births_for`
give them in the order of the claims' sorted member ids, vectorised (sorts of packed integer
keys or Arrow hash lookups, :mod:`rxrisk.quality.enrollment_join`; no per-row Python).

Member ids are compared in the pharmacy input's member_id type: integer ids of these inputs
are compared with text pharmacy ids as their decimal text (``123`` matches ``"123"``, not
``"00123"``); text ids of these inputs against integer pharmacy ids must be whole numbers
(``"00123"`` is 123), any other text is a usage error naming both types.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rxrisk.clock import Clock
from rxrisk.config.settings import check_max_reject_share
from rxrisk.ingest import intake
from rxrisk.ingest.dates import check_date_format
from rxrisk.ingest.sources import read_source
from rxrisk.kernels.measures_containers import NO_DAY, MemberSpans
from rxrisk.quality.enrollment_checks import (
    ELIGIBILITY_REASONS,
    MEMBERS_REASONS,
    CheckedEligibility,
    CheckedMembers,
    check_eligibility,
    check_members,
)
from rxrisk.quality.enrollment_join import lookup, sort_spans

#: birth day of a member without a valid members row
NO_BIRTH = NO_DAY


class Enrollment:
    """The used eligibility spans and members rows, and the bucket of every row read.

    Attributes
    ----------
    eligibility : CheckedEligibility
    members : CheckedMembers
    """

    def __init__(self, eligibility: CheckedEligibility, members: CheckedMembers):
        self.eligibility = eligibility
        self.members = members

    def audit_blocks(self) -> dict:
        """The audit's ``eligibility`` and ``members`` blocks (``rows_read``, ``buckets``
        {``rejected``, ``used``}, ``rejected_by_reason``)."""
        return {"eligibility": self.eligibility.counts(), "members": self.members.counts()}

    @property
    def products(self) -> tuple[str, ...]:
        """The sorted distinct product names of the used spans (``unspecified`` for none)."""
        return self.eligibility.products

    def spans_for(self, member_ids) -> tuple[MemberSpans, tuple[str, ...]]:
        """The used spans of the given members, in their order.

        Parameters
        ----------
        member_ids : pyarrow.Array
            Distinct member ids of the pharmacy's member_id type (the claims' sorted
            ``member_ids``); spans of other members are left out, a member without spans
            has none.

        Returns
        -------
        spans : MemberSpans
            A member's spans sorted by (start, end, product code); open ends are
            :data:`~rxrisk.kernels.measures_containers.OPEN_END`.
        products : tuple of str
            The product names; code ``k`` is ``products[k]`` (names sorted, so a smaller name
            has a smaller code).
        """
        e = self.eligibility
        ids = _ids_like(member_ids)
        position = lookup(_same_type(e.ids, ids.type), ids)
        keep = position >= 0
        member, start, end, product = sort_spans(
            position[keep], e.start[keep], e.end[keep], e.product[keep], len(e.products)
        )
        offsets = np.zeros(len(ids) + 1, np.intp)
        np.cumsum(np.bincount(member, minlength=len(ids)), out=offsets[1:])
        spans = MemberSpans(
            span_offsets=offsets, span_start=start, span_end=end, span_product=product
        )
        return spans, e.products

    def births_for(self, member_ids) -> np.ndarray:
        """Birth day (days since 1970-01-01, int32) of each of the given members, in their
        order; :data:`NO_BIRTH` for a member without a used members row."""
        m = self.members
        ids = _ids_like(member_ids)
        known = _same_type(m.ids, ids.type)
        if len(known) > len(ids):  # both sides are distinct: look up the larger in the smaller
            out = np.full(len(ids), NO_BIRTH, np.int32)
            at = lookup(known, ids)
            out[at[at >= 0]] = m.birth[at >= 0]
            return out
        births = np.append(m.birth, np.int32(NO_BIRTH))
        return np.ascontiguousarray(births[lookup(ids, known)], np.int32)  # -1: NO_BIRTH

    def quarantine(self) -> pa.Table:
        """Rejected rows of both inputs as read, with ``source``, ``row_number`` (1-based) and
        ``reject_reason`` (as :meth:`rxrisk.ingest.select.Ingested.quarantine`)."""
        from rxrisk.io.outputs import quarantine_table  # lazy: only runs that write it

        parts = []
        for label, checked, names in (
            ("eligibility", self.eligibility, ELIGIBILITY_REASONS),
            ("members", self.members, MEMBERS_REASONS),
        ):
            r = checked.reason
            rows = np.flatnonzero(r >= 0)
            parts.append((label, checked.table, rows, r[rows], names))
        return quarantine_table(parts)


def _ids_like(member_ids) -> pa.Array:
    if isinstance(member_ids, pa.ChunkedArray):
        return member_ids.combine_chunks()
    if not isinstance(member_ids, pa.Array):
        raise TypeError(f"member_ids must be a pyarrow Array, not {type(member_ids).__name__}")
    return member_ids


def _same_type(ids: pa.Array, typ: pa.DataType) -> pa.Array:
    return ids if ids.type == typ else ids.cast(typ)


def read_enrollment(
    eligibility,
    members,
    *,
    member_type: pa.DataType,
    date_format: str | None = None,
    max_reject_share: float | None = None,
    clock: Clock | None = None,
) -> Enrollment:
    """Read, check and bucket the eligibility and members inputs.

    Parameters
    ----------
    eligibility, members
        Sources as :func:`rxrisk.ingest.sources.read_source` reads them (a pyarrow Table or
        stream, a Parquet file or folder, an Arrow IPC file, a CSV file).
    member_type : pyarrow.DataType
        The pharmacy input's member_id type (string or int64): the ids are cast to it.
    date_format : str, optional
        ``strptime`` format of text dates (:func:`rxrisk.ingest.conform.as_date`).
    max_reject_share : float, optional
        A rejection reason above this share of an input's rows (and at least 10 rows) stops
        the run (:func:`rxrisk.ingest.intake.check`); default 0.25, 1 never stops.
    clock : Clock, optional
        Takes the ``enrollment`` lap.

    Returns
    -------
    Enrollment

    Raises
    ------
    InputError
        A missing column, a column of a type that cannot be cast (or member ids that do not
        fit the pharmacy's type), or a rejection reason above ``max_reject_share``.
    """
    date_format = check_date_format(date_format)
    share = check_max_reject_share(max_reject_share)
    el_src = read_source(eligibility, label="eligibility")
    mb_src = read_source(members, label="members")
    offenders = intake.Offenders()
    el = check_eligibility(el_src, member_type=member_type, date_format=date_format)
    offenders.add("eligibility", el_src.table, el.reason, ELIGIBILITY_REASONS)
    mb = check_members(mb_src, member_type=member_type, date_format=date_format)
    offenders.add("members", mb_src.table, mb.reason, MEMBERS_REASONS)
    out = Enrollment(el, mb)
    intake.check(
        out.audit_blocks(),
        names={"eligibility": el_src.name, "members": mb_src.name},
        offenders=offenders,
        max_reject_share=share,
    )
    if clock is not None:
        clock.lap("enrollment")
    return out

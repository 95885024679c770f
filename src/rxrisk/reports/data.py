"""The claims of the reported members: their used rows picked out of the book
(:class:`WantedRows`, whole or batch by batch), their fills (encoded by the scoring encode),
their classified medical events, and their daily MME and overlap series (from the scoring
kernels' daily timeline)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.errors import InputError
from rxrisk.ingest import validate
from rxrisk.ingest.conform import MedicalColumns, clean_text
from rxrisk.ingest.drugs import DrugTable
from rxrisk.ingest.select import Ingested
from rxrisk.ingest.tracked import TrackedRows, tracked_fills
from rxrisk.ingest.validate import MedicalRows, normalize_code_type
from rxrisk.io.arrow import date_days, dict_codes, take_rows, to_bool, to_numpy
from rxrisk.kernels.timeline import build_timeline
from rxrisk.scoring.encode import Claims, encode


@dataclass
class Fills:
    """Used pharmacy rows of the wanted members, sorted by (member, fill day, input row)."""

    member: np.ndarray  # int64 position in the wanted-id list
    start: np.ndarray  # int32 fill day
    end: np.ndarray  # int32 last covered day
    role: np.ndarray  # uint8 role bits
    covered: np.ndarray  # int64 covered days
    mme: np.ndarray  # float64 daily MME
    quantity: np.ndarray
    days_supply: np.ndarray
    prescriber: np.ndarray  # int32 code into prescriber_ids, -1 null
    pharmacy: np.ndarray  # int32 code into pharmacy_ids, -1 null
    prescriber_ids: pa.Array
    pharmacy_ids: pa.Array
    ndc: pa.Array
    drug_name: pa.Array
    drug_class: pa.Array
    strength: pa.Array
    unit: pa.Array
    offsets: np.ndarray  # per wanted member
    py: dict = field(default_factory=dict)  # Python lists of the text columns (renderer cache)

    def rows(self, m: int) -> slice:
        """The rows of member ``m``."""
        return slice(int(self.offsets[m]), int(self.offsets[m + 1]))


@dataclass
class MedicalEvents:
    """Classified medical rows of the wanted members, sorted by (member, day)."""

    member: np.ndarray
    day: np.ndarray
    mask: np.ndarray  # uint8 category bits (rxrisk.config.codesets.CATEGORIES)
    code_type: list
    code: list
    offsets: np.ndarray

    def rows(self, m: int) -> slice:
        """The rows of member ``m``."""
        return slice(int(self.offsets[m]), int(self.offsets[m + 1]))


def _offsets(member: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(member, minlength=n), out=out[1:])
    return out


def _ids_like(ids: pa.Array, like: pa.DataType) -> pa.Array:
    if ids.type == like:
        return ids
    try:
        return ids.cast(like)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise InputError(
            f"member_id is {ids.type} in the member table but {like} in the claims; "
            "give the claims the member table was scored from"
        ) from None


def events_schema(member_type: pa.DataType) -> pa.Schema:
    """The columns of :attr:`MemberClaims.events` (``member_type``: string or int64)."""
    return pa.schema(
        [
            ("row", pa.int64()),
            ("member_id", member_type),
            ("service_date", pa.date32()),
            ("mask", pa.uint8()),
            ("code_type", pa.string()),
            ("code", pa.string()),
        ]
    )


@dataclass
class MemberClaims:
    """The used rows of the reported members, in input order: all the report reads of the
    claims, the same whether the book was read whole or streamed.

    Attributes
    ----------
    fills : pyarrow.Table
        Their used pharmacy rows (:func:`rxrisk.ingest.tracked.fills_schema`), by ``row``.
    events : pyarrow.Table or None
        Their used medical rows (:func:`events_schema`: input row, member id, service date,
        category bits, normalised code type, code), by ``row``; None without medical input.
    """

    fills: pa.Table
    events: pa.Table | None


class WantedRows:
    """Picks the rows of the wanted members out of checked rows: the whole book's in memory,
    or each batch's when streaming (``keep`` of :func:`rxrisk.engines.stream.ingest_stream`).

    Parameters
    ----------
    wanted : pyarrow.Array
        Member ids (of the member table; cast to the claims' member id type on first use).
    """

    def __init__(self, wanted: pa.Array):
        self.wanted = wanted
        self._as: dict[str, pa.Array] = {}

    def ids_as(self, typ: pa.DataType) -> pa.Array:
        """The wanted ids as ``typ`` (an InputError when the member table's ids are not)."""
        key = str(typ)
        if key not in self._as:
            self._as[key] = _ids_like(self.wanted, typ)
        return self._as[key]

    def fills(self, fills: pa.Table) -> pa.Table:
        """The rows of ``fills`` (tracked fills) of the wanted members, in their order."""
        ids = fills.column("member_id")
        keep = pc.is_in(ids, value_set=self.ids_as(ids.type))
        return fills.filter(keep)

    def events(self, columns: MedicalColumns, rows: MedicalRows, first_row: int = 0) -> pa.Table:
        """The used rows of ``columns`` (a checked medical batch or book, ``rows`` its buckets)
        of the wanted members as :func:`events_schema` (input rows from ``first_row``)."""
        used = np.flatnonzero(rows.bucket == validate.MEDICAL_BUCKETS.index("used"))
        ids = clean_text(take_rows(columns.member_id, used))
        keep = to_bool(pc.is_in(ids, value_set=self.ids_as(ids.type)))
        at = used[keep]
        take = pa.array(at, pa.int64())
        code_type = normalize_code_type(clean_text(columns.code_type.take(take)))
        return pa.table(
            {
                "row": at + first_row,
                "member_id": ids.filter(pa.array(keep)),
                "service_date": columns.service_date.take(take),
                "mask": pa.array(rows.mask[at], pa.uint8()),
                "code_type": code_type.cast(pa.string()),
                "code": clean_text(columns.code.take(take)).cast(pa.string()),
            },
            schema=events_schema(ids.type),
        )


def member_claims(data: Ingested, wanted: pa.Array) -> MemberClaims:
    """The used rows of the ``wanted`` members of an in-memory book (:class:`MemberClaims`)."""
    keep = WantedRows(wanted)
    rows = data.pharmacy_rows
    used = rows.bucket == validate.PHARMACY_BUCKETS.index("used")
    fills = keep.fills(tracked_fills(data.pharmacy, used, rows.ref_index))
    events = None
    if data.medical is not None:
        events = keep.events(data.medical, data.medical_rows)
    return MemberClaims(fills, events)


def member_fills(data: Ingested, wanted: pa.Array, claims: Claims | None = None) -> Fills:
    """:func:`claims_fills` of the ``wanted`` members of an in-memory book."""
    return claims_fills(member_claims(data, wanted), data.reference, wanted, claims)


def claims_fills(
    rows: MemberClaims, reference: pa.Table, wanted: pa.Array, claims: Claims | None = None
) -> Fills:
    """The used pharmacy rows of the ``wanted`` members, in the scoring encode's order.

    Parameters
    ----------
    rows : MemberClaims
        The used rows of (at least) the wanted members.
    reference : pyarrow.Table
        The drug reference the rows were checked with.
    wanted : pyarrow.Array
        Member ids; the result's member positions index it.
    claims : rxrisk.scoring.encode.Claims, optional
        Encoded used rows holding those of the wanted members (a member's encoding does
        not depend on the other members'); ``rows.fills`` encoded here when not given.

    Returns
    -------
    Fills
        The rows of each wanted member in (fill day, input row) order, members in the order
        of ``wanted``: fill days, last covered days, roles and daily MME as the scoring
        encode computed them, plus what the pages show.
    """
    table = rows.fills
    if claims is None:
        claims = encode(TrackedRows(table), DrugTable.from_reference(reference))
    at = _claims_members(claims, wanted)
    found = at >= 0
    first = np.where(found, claims.fill_offsets[np.maximum(at, 0)], 0).astype(np.int64)
    count = np.where(found, claims.fill_offsets[np.maximum(at, 0) + 1], 0) - first
    offsets = np.zeros(len(wanted) + 1, np.int64)
    np.cumsum(count, out=offsets[1:])
    member = np.repeat(np.arange(len(wanted), dtype=np.int64), count)
    sorted_at = np.repeat(first - offsets[:-1], count) + np.arange(offsets[-1], dtype=np.int64)
    start = claims.start[sorted_at]
    end = claims.end[sorted_at]
    # the table is in input-row order: each encoded fill's position in it
    at_row = np.searchsorted(to_numpy(table.column("row"), np.int64), claims.row[sorted_at])
    picked = table.take(pa.array(at_row, pa.int64()))
    ref_rows = to_numpy(picked.column("ref_index"), np.int64)
    rtake = pa.array(ref_rows, pa.int64())
    presc, presc_ids = dict_codes(picked.column("prescriber_id"))
    pharm, pharm_ids = dict_codes(picked.column("pharmacy_id"))
    return Fills(
        member=member,
        start=start,
        end=end,
        role=claims.role[sorted_at],
        covered=end.astype(np.int64) - start + 1,
        mme=claims.mme[sorted_at],
        quantity=to_numpy(picked.column("quantity"), np.float64, np.nan),
        days_supply=to_numpy(picked.column("days_supply"), np.int64, 0),
        prescriber=presc,
        pharmacy=pharm,
        prescriber_ids=presc_ids,
        pharmacy_ids=pharm_ids,
        ndc=reference.column("ndc").take(rtake),  # the normalised NDC the row matched
        drug_name=reference.column("drug_name").take(rtake),
        drug_class=reference.column("drug_class").take(rtake),
        strength=reference.column("strength_per_unit").take(rtake),
        unit=reference.column("unit").take(rtake),
        offsets=offsets,
    )


def _claims_members(claims: Claims, wanted: pa.Array) -> np.ndarray:
    """The position of each wanted id among the encoded members (-1: no used rows)."""
    ids = claims.member_ids
    at = pc.index_in(_ids_like(wanted, ids.type), value_set=ids)
    return to_numpy(at, np.int64, -1)


def medical_events(
    rows: MemberClaims, wanted: pa.Array, first_day: int, last_day: int
) -> MedicalEvents:
    """Used medical rows of the wanted members dated ``first_day .. last_day``.

    The scoring encode's claims keep no medical input rows (the pages show each row's codes),
    so the rows are picked and sorted here.

    Parameters
    ----------
    rows : MemberClaims
        The used rows of (at least) the wanted members.
    wanted : pyarrow.Array
        Member ids; the result's member positions index it.
    first_day, last_day : int
        The service days kept (day numbers, inclusive).

    Returns
    -------
    MedicalEvents
        The rows by (member, day, input row) with their category bits and codes.
    """
    n = len(wanted)
    empty = MedicalEvents(
        np.zeros(0, np.int64),
        np.zeros(0, np.int32),
        np.zeros(0, np.uint8),
        [],
        [],
        np.zeros(n + 1, np.int64),
    )
    if rows.events is None:
        return empty
    ev = rows.events
    day = date_days(ev.column("service_date"))
    inside = np.flatnonzero((day >= first_day) & (day <= last_day))
    ev, day = ev.take(pa.array(inside, pa.int64())), day[inside]
    ids = ev.column("member_id")
    pos = pc.index_in(ids, value_set=_ids_like(wanted, ids.type))
    keep = to_bool(pc.is_valid(pos))
    ev, day = ev.filter(pa.array(keep)), day[keep]
    member = to_numpy(pos.filter(pa.array(keep)), np.int64)
    input_row = to_numpy(ev.column("row"), np.int64)
    order = np.lexsort((input_row, day, member))
    ev, day, member = ev.take(pa.array(order, pa.int64())), day[order], member[order]
    return MedicalEvents(
        member=member,
        day=day.astype(np.int32),
        mask=to_numpy(ev.column("mask"), np.uint8),
        code_type=ev.column("code_type").to_pylist(),
        code=ev.column("code").to_pylist(),
        offsets=_offsets(member, n),
    )


@dataclass
class Daily:
    """Per member (rows) and lookback day (columns): mme(d) and overlap days."""

    first_day: int
    mme: np.ndarray  # float64 (n, L)
    opioid: np.ndarray  # bool (n, L): covered by an opioid fill (mme may be 0: no factor)
    benzo_overlap: np.ndarray  # bool (n, L): opioid and benzodiazepine
    cns_overlap: np.ndarray  # bool (n, L): opioid and any CNS depressant


def daily_series(fills: Fills, n: int, first_day: int, last_day: int) -> Daily:
    """mme(d) and the overlap days of each member over ``first_day .. last_day``.

    Parameters
    ----------
    fills : Fills
        The members' fills (:func:`member_fills`).
    n : int
        Number of members (rows of the result).
    first_day, last_day : int
        The days of the series (day numbers, inclusive).

    Returns
    -------
    Daily
        One row per member, one column per day, from the scoring kernel's daily timeline
        (:func:`rxrisk.kernels.timeline.build_timeline`).
    """
    length = last_day - first_day + 1
    mme = np.zeros((n, length), np.float64)
    opioid = np.zeros((n, length), bool)
    benzo = np.zeros((n, length), bool)
    cns = np.zeros((n, length), bool)
    mme_day, prefix = np.empty(length + 1, np.float64), np.empty(length + 1, np.float64)
    opioid_day, benzo_day, cns_day = (np.empty(length + 1, np.int64) for _ in range(3))
    for m in range(n):
        i0, i1 = int(fills.offsets[m]), int(fills.offsets[m + 1])
        if i0 == i1:
            continue
        build_timeline(
            fills.start,
            fills.end,
            fills.role,
            fills.mme,
            i0,
            i1,
            first_day,
            length,
            mme_day,
            opioid_day,
            benzo_day,
            cns_day,
            prefix,
        )
        mme[m] = mme_day[:length]
        opioid[m] = opioid_day[:length] > 0
        benzo[m] = benzo_day[:length] > 0
        cns[m] = cns_day[:length] > 0
    return Daily(first_day, mme, opioid, opioid & benzo, opioid & cns)

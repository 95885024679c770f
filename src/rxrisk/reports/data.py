"""The claims of the reported members: their fills (from the scoring encode's member-sorted
claims), their classified medical events, and their daily MME and overlap series (from the
scoring kernels' daily timeline)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.errors import InputError
from rxrisk.ingest import validate
from rxrisk.ingest.conform import clean_text
from rxrisk.ingest.select import Ingested
from rxrisk.ingest.validate import normalize_code_type
from rxrisk.io.arrow import date_days, dict_codes, to_numpy
from rxrisk.kernels.timeline import build_timeline
from rxrisk.scoring.encode import Claims, encode_used


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


def member_fills(data: Ingested, wanted: pa.Array, claims: Claims | None = None) -> Fills:
    """The used pharmacy rows of the ``wanted`` members, in the scoring encode's order.

    Parameters
    ----------
    data : rxrisk.ingest.select.Ingested
        The ingested claims.
    wanted : pyarrow.Array
        Member ids; the result's member positions index it.
    claims : rxrisk.scoring.encode.Claims, optional
        The encoded used rows of ``data`` (:func:`rxrisk.scoring.encode.encode_used`);
        encoded here when not given.

    Returns
    -------
    Fills
        The rows of each wanted member in (fill day, input row) order, members in the order
        of ``wanted``: fill days, last covered days, roles and daily MME as the scoring
        encode computed them, plus what the pages show.
    """
    if claims is None:
        claims = encode_used(data)
    at = _claims_members(claims, wanted)
    found = at >= 0
    first = np.where(found, claims.fill_offsets[np.maximum(at, 0)], 0).astype(np.int64)
    count = np.where(found, claims.fill_offsets[np.maximum(at, 0) + 1], 0) - first
    offsets = np.zeros(len(wanted) + 1, np.int64)
    np.cumsum(count, out=offsets[1:])
    member = np.repeat(np.arange(len(wanted), dtype=np.int64), count)
    sorted_at = np.repeat(first - offsets[:-1], count) + np.arange(offsets[-1], dtype=np.int64)
    rows = claims.row[sorted_at]
    start = claims.start[sorted_at]
    end = claims.end[sorted_at]
    ph, ref = data.pharmacy, data.reference
    take = pa.array(rows, pa.int64())
    rtake = pa.array(data.pharmacy_rows.ref_index[rows], pa.int64())
    presc, presc_ids = dict_codes(clean_text(ph.prescriber_id.take(take)))
    pharm, pharm_ids = dict_codes(clean_text(ph.pharmacy_id.take(take)))
    return Fills(
        member=member,
        start=start,
        end=end,
        role=claims.role[sorted_at],
        covered=end.astype(np.int64) - start + 1,
        mme=claims.mme[sorted_at],
        quantity=to_numpy(ph.quantity.take(take), np.float64, np.nan),
        days_supply=to_numpy(ph.days_supply.take(take), np.int64, 0),
        prescriber=presc,
        pharmacy=pharm,
        prescriber_ids=presc_ids,
        pharmacy_ids=pharm_ids,
        ndc=data.pharmacy_rows.normalized_ndc(rows),
        drug_name=ref.column("drug_name").take(rtake),
        drug_class=ref.column("drug_class").take(rtake),
        strength=ref.column("strength_per_unit").take(rtake),
        unit=ref.column("unit").take(rtake),
        offsets=offsets,
    )


def _claims_members(claims: Claims, wanted: pa.Array) -> np.ndarray:
    """The position of each wanted id among the encoded members (-1: no used rows)."""
    ids = claims.member_ids
    at = pc.index_in(_ids_like(wanted, ids.type), value_set=ids)
    return to_numpy(at, np.int64, -1)


def medical_events(
    data: Ingested, wanted: pa.Array, first_day: int, last_day: int
) -> MedicalEvents:
    """Used medical rows of the wanted members dated ``first_day .. last_day``.

    The scoring encode's claims keep no medical input rows (the pages show each row's codes),
    so the rows are picked and sorted here.

    Parameters
    ----------
    data : rxrisk.ingest.select.Ingested
        The ingested claims.
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
    if data.medical is None:
        return empty
    md = data.medical
    rows = np.flatnonzero(data.medical_rows.bucket == validate.MEDICAL_BUCKETS.index("used"))
    day = date_days(md.service_date.take(pa.array(rows, pa.int64())))
    inside = (day >= first_day) & (day <= last_day)
    rows, day = rows[inside], day[inside]
    ids = clean_text(md.member_id.take(pa.array(rows, pa.int64())))
    pos = pc.index_in(ids, value_set=_ids_like(wanted, ids.type))
    keep = np.asarray(pc.is_valid(pos))
    rows, day = rows[keep], day[keep]
    member = np.asarray(pos.filter(pa.array(keep)).to_numpy(zero_copy_only=False), np.int64)
    order = np.lexsort((rows, day, member))
    rows, day, member = rows[order], day[order], member[order]
    take = pa.array(rows, pa.int64())
    return MedicalEvents(
        member=member,
        day=day.astype(np.int32),
        mask=data.medical_rows.mask[rows],
        code_type=normalize_code_type(clean_text(md.code_type.take(take))).to_pylist(),
        code=clean_text(md.code.take(take)).to_pylist(),
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

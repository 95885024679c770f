"""Tracked rows to ``Claims``: dense member / prescriber / pharmacy codes, day numbers,
covered days, daily MME, role bits, one packed-key sort and member offsets (SPEC 2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.arrowutil import date_days, dict_codes, sort_uint64, to_numpy
from rxrisk.errors import InputError
from rxrisk.kernels import roles

_ROLE_OF_CLASS = {
    "opioid": roles.OPIOID,
    "buprenorphine_mat": roles.MAT,
    "naltrexone": roles.MAT,
    "naloxone": roles.NALOXONE,
    "benzodiazepine": roles.BENZO | roles.CNS,
    "gabapentinoid": roles.CNS,
    "muscle_relaxant": roles.CNS,
    "sedative_hypnotic": roles.CNS,
    "stimulant": 0,
}


@dataclass(frozen=True)
class DrugTable:
    """Per-reference-row arrays the encoder needs (built once per reference)."""

    role: np.ndarray  # uint8
    strength: np.ndarray  # float64, NaN when null
    factor: np.ndarray  # float64, NaN when null
    days_per_unit: np.ndarray  # float64, NaN when null
    ndc: pa.Array

    @classmethod
    def from_reference(cls, ref: pa.Table) -> DrugTable:
        codes, distinct = dict_codes(ref.column("drug_class"))
        role_of_distinct = np.array(
            [_ROLE_OF_CLASS[c] for c in distinct.to_pylist()] + [0], np.uint8
        )
        return cls(
            role=role_of_distinct[codes],
            strength=to_numpy(ref.column("strength_per_unit"), np.float64, np.nan),
            factor=to_numpy(ref.column("mme_factor"), np.float64, np.nan),
            days_per_unit=to_numpy(ref.column("days_per_unit"), np.float64, np.nan),
            ndc=ref.column("ndc").combine_chunks(),
        )


@dataclass
class Claims:
    """Encoded, sorted claims of the members in ``member_ids`` (code = position)."""

    member_ids: pa.Array  # sorted distinct member ids
    fill_offsets: np.ndarray  # intp (n_members + 1)
    start: np.ndarray  # int32 day of fill
    end: np.ndarray  # int32 last covered day
    role: np.ndarray  # uint8
    mme: np.ndarray  # float64 daily MME
    prescriber: np.ndarray  # int32 code, -1 null
    pharmacy: np.ndarray  # int32 code, -1 null
    row: np.ndarray  # int64 input row of each sorted fill
    n_prescribers: int
    n_pharmacies: int
    med_offsets: np.ndarray  # intp (n_members + 1)
    med_day: np.ndarray  # int32
    med_mask: np.ndarray  # uint8


def covered_days(
    days_supply: np.ndarray, quantity: np.ndarray, days_per_unit: np.ndarray
) -> np.ndarray:
    """Covered days: days_supply, or max(1, round_half_up(quantity x days_per_unit)) for patches."""
    patch = ~np.isnan(days_per_unit)
    out = days_supply.astype(np.int64, copy=True)
    if patch.any():
        rewritten = np.floor(quantity[patch] * days_per_unit[patch] + 0.5)
        out[patch] = np.maximum(1, rewritten).astype(np.int64)
    return out


def daily_mme(role, strength, quantity, ds, factor) -> np.ndarray:
    """strength x quantity / ds x factor for opioid fills with a factor; 0 otherwise."""
    with np.errstate(invalid="ignore"):
        value = strength * quantity / ds * factor
    ok = ((role & roles.OPIOID) != 0) & np.isfinite(value)
    return np.where(ok, value, 0.0)


def _sorted_member_codes(ids: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    codes, distinct = dict_codes(ids)
    order = pc.sort_indices(distinct).to_numpy()
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes] if len(codes) else codes.astype(np.int64), distinct.take(pa.array(order))


def _packed_order(member: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Order rows by (member, day, input row) with one uint64 sort when the bits fit."""
    n = len(member)
    if n == 0:
        return np.zeros(0, np.int64)
    day_off = day.astype(np.int64) - int(day.min())
    b_row = max(1, int(n - 1).bit_length())
    b_day = max(1, int(day_off.max()).bit_length())
    b_mem = max(1, int(member.max()).bit_length())
    if b_row + b_day + b_mem <= 64:
        key = (member.astype(np.uint64) << np.uint64(b_day + b_row)) | (
            day_off.astype(np.uint64) << np.uint64(b_row)
        )
        key |= np.arange(n, dtype=np.uint64)
        key = sort_uint64(key)
        return (key & np.uint64((1 << b_row) - 1)).astype(np.int64)
    return np.lexsort((np.arange(n), day_off, member))


def _offsets(member_sorted: np.ndarray, n_members: int) -> np.ndarray:
    counts = np.bincount(member_sorted, minlength=n_members)
    out = np.zeros(n_members + 1, np.intp)
    np.cumsum(counts, out=out[1:])
    return out


def encode(
    *,
    pharmacy_member: pa.ChunkedArray,
    fill_date: pa.ChunkedArray,
    quantity: pa.ChunkedArray,
    days_supply: pa.ChunkedArray,
    prescriber: pa.ChunkedArray,
    pharmacy: pa.ChunkedArray,
    ref_index: np.ndarray,
    input_row: np.ndarray,
    drugs: DrugTable,
    medical_member: pa.ChunkedArray | None,
    service_date: pa.ChunkedArray | None,
    medical_mask: np.ndarray | None,
    extra_members: pa.ChunkedArray | None = None,
) -> Claims:
    """Encode the used rows (already filtered) into sorted ``Claims``.

    ``extra_members`` adds members without used rows (``--all-members``).
    """
    parts = [pharmacy_member]
    if medical_member is not None:
        parts.append(medical_member)
    if extra_members is not None:
        parts.append(extra_members)
    types = {str(p.type) for p in parts if len(p)}
    if len(types) > 1:
        raise InputError(
            f"member_id has different types across inputs ({', '.join(sorted(types))}); "
            "give pharmacy and medical member_id the same type"
        )
    typ = parts[0].type if not types else next(p.type for p in parts if len(p))
    all_ids = pa.chunked_array([c for p in parts for c in p.cast(typ).chunks], type=typ)
    member_codes, member_ids = _sorted_member_codes(all_ids)
    n_members = len(member_ids)
    n_ph = len(pharmacy_member)
    ph_member = member_codes[:n_ph]

    role = drugs.role[ref_index]
    start = date_days(fill_date)
    qty = to_numpy(quantity, np.float64, np.nan)
    ds = covered_days(to_numpy(days_supply, np.int64, 0), qty, drugs.days_per_unit[ref_index])
    mme = daily_mme(role, drugs.strength[ref_index], qty, ds, drugs.factor[ref_index])
    presc, presc_dict = dict_codes(prescriber)
    pharm, pharm_dict = dict_codes(pharmacy)

    order = _packed_order(ph_member, start)
    fill_offsets = _offsets(ph_member[order], n_members)
    start_s = start[order]
    claims_start = start_s.astype(np.int32)
    claims_end = (start_s.astype(np.int64) + ds[order] - 1).astype(np.int32)

    if medical_member is not None and len(medical_member):
        med_member = member_codes[n_ph : n_ph + len(medical_member)]
        med_day = date_days(service_date)
        morder = _packed_order(med_member, med_day)
        med_offsets = _offsets(med_member[morder], n_members)
        med_day = med_day[morder].astype(np.int32)
        med_mask = medical_mask[morder]
    else:
        med_offsets = np.zeros(n_members + 1, np.intp)
        med_day = np.zeros(0, np.int32)
        med_mask = np.zeros(0, np.uint8)

    return Claims(
        member_ids=member_ids,
        fill_offsets=fill_offsets,
        start=claims_start,
        end=claims_end,
        role=role[order],
        mme=mme[order],
        prescriber=presc[order],
        pharmacy=pharm[order],
        row=input_row[order],
        n_prescribers=len(presc_dict),
        n_pharmacies=len(pharm_dict),
        med_offsets=med_offsets,
        med_day=med_day,
        med_mask=med_mask,
    )

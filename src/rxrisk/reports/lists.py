"""The outreach and lock-in lists: ``emergency_outreach`` members, most urgent first, and the
``multi_provider`` / ``cms_oms`` members with the prescriber and the pharmacy that account
for most of their opioid fills."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.kernels import roles
from rxrisk.reports.data import Fills
from rxrisk.reports.members import flag_column

OUTREACH_FLAG = "emergency_outreach"
LOCK_IN_FLAGS = ("multi_provider", "cms_oms")


def _top_provider(member, code, day, ids: pa.Array, n: int):
    """Per member: the provider with most fills (ties: latest fill, then smallest id).

    Returns (top id array, top count, distinct count) over rows with a non-null code.
    """
    ok = code >= 0
    p = max(1, len(ids))
    rank = np.empty(len(ids), np.int64)
    rank[pc.sort_indices(ids).to_numpy()] = np.arange(len(ids))
    key = member[ok] * p + code[ok]
    uniq, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
    last = np.full(len(uniq), np.iinfo(np.int64).min)
    np.maximum.at(last, inv, day[ok].astype(np.int64))
    gm, gp = uniq // p, uniq % p
    order = np.lexsort((rank[gp], -last, -counts, gm))
    first = order[np.r_[True, gm[order][1:] != gm[order][:-1]]] if len(order) else order
    top = np.full(n, -1, np.int64)
    top_n = np.zeros(n, np.int64)
    top[gm[first]] = gp[first]
    top_n[gm[first]] = counts[first]
    distinct = np.bincount(gm, minlength=n)
    top_ids = pc.take(ids, pa.array(top, mask=top < 0)) if len(ids) else pa.nulls(n, ids.type)
    return top_ids, top_n, distinct


def lock_in_table(
    cand: pa.Table, fills: Fills, positions: np.ndarray, first_day: int, last_day: int
) -> pa.Table:
    """Lock-in candidates with their top prescriber and pharmacy over first_day..last_day.

    Parameters
    ----------
    cand : pyarrow.Table
        The candidates' member-table rows.
    fills : rxrisk.reports.data.Fills
        Fills of (at least) the candidates.
    positions : numpy.ndarray
        The member position in ``fills`` of each candidate row.
    first_day, last_day : int
        The lock-in window (day numbers, inclusive) of the opioid fills counted.

    Returns
    -------
    pyarrow.Table
        The lock-in list, most prescribers first, then most pharmacies, then highest
        ``mme_avg_180d``.
    """
    n = cand.num_rows
    local = np.full(int(fills.offsets.shape[0]), -1, np.int64)
    local[positions] = np.arange(n)
    k = (
        ((fills.role & roles.OPIOID) != 0)
        & (fills.start >= first_day)
        & (fills.start <= last_day)
        & (local[fills.member] >= 0)
    )
    member = local[fills.member[k]]
    day = fills.start[k]
    total = np.bincount(member, minlength=n)
    p_ids, p_n, p_distinct = _top_provider(
        member, fills.prescriber[k], day, fills.prescriber_ids, n
    )
    r_ids, r_n, r_distinct = _top_provider(member, fills.pharmacy[k], day, fills.pharmacy_ids, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_share = np.where(p_n > 0, p_n / np.maximum(total, 1), np.nan)
        r_share = np.where(r_n > 0, r_n / np.maximum(total, 1), np.nan)
    i32 = pa.int32()
    out = pa.table(
        {
            "member_id": cand.column("member_id"),
            "as_of": cand.column("as_of"),
            "reasons": cand.column("reasons"),
            "window_start": pa.array(np.full(n, first_day, np.int32)).view(pa.date32()),
            "opioid_fills": pa.array(total.astype(np.int32), i32),
            "distinct_prescribers": pa.array(p_distinct.astype(np.int32), i32),
            "distinct_pharmacies": pa.array(r_distinct.astype(np.int32), i32),
            "top_prescriber_id": p_ids,
            "top_prescriber_fills": pa.array(p_n.astype(np.int32), i32),
            "top_prescriber_share": pa.array(p_share, mask=np.isnan(p_share)),
            "top_pharmacy_id": r_ids,
            "top_pharmacy_fills": pa.array(r_n.astype(np.int32), i32),
            "top_pharmacy_share": pa.array(r_share, mask=np.isnan(r_share)),
            "mme_avg_180d": _float_col(cand, "mme_avg_180d"),
        }
    )
    return out.sort_by(
        [
            ("distinct_prescribers", "descending"),
            ("distinct_pharmacies", "descending"),
            ("mme_avg_180d", "descending"),
            ("member_id", "ascending"),
        ]
    )


def _float_col(table: pa.Table, name: str) -> pa.ChunkedArray:
    if name in table.column_names:
        return table.column(name).cast(pa.float64())
    return pa.chunked_array([pa.nulls(table.num_rows, pa.float64())])


def outreach_table(rows: pa.Table) -> pa.Table:
    """The outreach list: most recent emergency first, then highest ``mme_avg_180d``.

    Parameters
    ----------
    rows : pyarrow.Table
        The member-table rows of the ``emergency_outreach`` members.

    Returns
    -------
    pyarrow.Table
        The outreach list.
    """
    n = rows.num_rows

    def col(name, typ):
        if name in rows.column_names:
            return rows.column(name).cast(typ)
        return pa.chunked_array([pa.nulls(n, typ)])

    out = pa.table(
        {
            "member_id": rows.column("member_id"),
            "as_of": rows.column("as_of"),
            "last_emergency_date": col("last_emergency_date", pa.date32()),
            "days_since_emergency": col("days_since_emergency", pa.int32()),
            "reasons": rows.column("reasons"),
            "mme_avg_180d": _float_col(rows, "mme_avg_180d"),
        }
    )
    return out.sort_by(
        [
            ("last_emergency_date", "descending"),
            ("mme_avg_180d", "descending"),
            ("member_id", "ascending"),
        ]
    )


def list_members(table: pa.Table) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Who is on the outreach and the lock-in list.

    Parameters
    ----------
    table : pyarrow.Table
        The member table of one as-of date.

    Returns
    -------
    tuple of (numpy.ndarray, numpy.ndarray, list of str)
        bool per row for outreach and for lock-in, and notes on flags the table lacks.
    """
    notes = []
    if OUTREACH_FLAG in table.column_names:
        outreach = np.asarray(flag_column(table, OUTREACH_FLAG, "flag"), bool)
    else:
        outreach = np.zeros(table.num_rows, bool)
        notes.append(f"no '{OUTREACH_FLAG}' flag in the member table: the outreach list is empty")
    lock = np.zeros(table.num_rows, bool)
    present = [f for f in LOCK_IN_FLAGS if f in table.column_names]
    for name in present:
        lock |= np.asarray(flag_column(table, name, "flag"), bool)
    if not present:
        notes.append("no multi_provider or cms_oms flag in the member table: lock-in is empty")
    return outreach, lock, notes


def with_profile(table: pa.Table, profile: dict) -> pa.Table:
    """``table`` with a ``profile`` column: the page of each member that has one.

    Parameters
    ----------
    table : pyarrow.Table
        A list (``member_id`` column).
    profile : dict
        Member id (text) to the page's path in the report folder.

    Returns
    -------
    pyarrow.Table
        The list with ``profile`` last (null for members without a page).
    """
    ids = [str(v) for v in table.column("member_id").to_pylist()]
    return table.append_column("profile", pa.array([profile.get(i) for i in ids], pa.string()))

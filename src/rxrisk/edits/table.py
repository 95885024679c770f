"""The claim table of ``rxrisk edits``: the replay kernel's outputs decoded into one row per
evaluated claim, and the per-edit counts of the audit."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rxrisk.ingest.conform import clean_text
from rxrisk.io.arrow import take_rows
from rxrisk.kernels.edits_containers import EDIT_BITS, EditOutputs
from rxrisk.scoring.columns import reasons_array


def _distinct_sorted(values: np.ndarray) -> int:
    """Number of distinct values of a sorted array (the evaluated rows' member codes)."""
    return int(len(values) > 0) + int(np.count_nonzero(values[1:] != values[:-1]))


class BookText:
    """The claim ids and NDCs of the claim table, by input row, from a whole book read into
    memory (:class:`rxrisk.ingest.select.Ingested`)."""

    def __init__(self, data):
        self.data = data

    def claim_id(self, rows: np.ndarray) -> pa.Array:
        """Trimmed claim id of each input row (null when absent or empty)."""
        return clean_text(take_rows(self.data.pharmacy.claim_id, rows)).combine_chunks()

    def ndc(self, rows: np.ndarray) -> pa.Array:
        """Normalised 11-digit NDC of each input row."""
        return self.data.pharmacy_rows.normalized_ndc(rows)


def edits_table(
    claims, text, ref: pa.Table, ref_row: np.ndarray, out: EditOutputs
) -> tuple[pa.Table, dict]:
    """Assemble the claim table and the per-edit counts of the audit.

    Parameters
    ----------
    claims : rxrisk.scoring.encode.Claims
        The encoded used claims the kernel replayed (a whole book's or one member
        partition's).
    text : BookText or rxrisk.engines.stream_edits.PartitionText
        The claim ids and NDCs of the table: ``claim_id(rows)`` and ``ndc(rows)`` of input
        rows (``claims.row``).
    ref : pyarrow.Table
        The drug reference (``drug_class``).
    ref_row : int array
        Reference row of each fill.
    out : EditOutputs
        The kernel's outputs.

    Returns
    -------
    table : pyarrow.Table
        One row per evaluated claim, in fill order.
    counts : dict
        ``members`` (distinct members in the table), ``claims_evaluated``, and per edit
        ``fired`` (claims) and ``members_hit``.
    """
    sel = np.flatnonzero(out.evaluated)
    n_members = len(claims.member_ids)
    member_of_fill = np.repeat(np.arange(n_members, dtype=np.int64), np.diff(claims.fill_offsets))
    member = member_of_fill[sel]
    fired = out.fired[sel]
    flags = {name: (fired & np.uint8(bit)) != 0 for name, bit in EDIT_BITS.items()}
    columns = {
        "member_id": claims.member_ids.take(pa.array(member, pa.int64())),
        "claim_id": text.claim_id(claims.row[sel]),
        "fill_date": pa.array(claims.start[sel].astype(np.int32), pa.int32()).view(pa.date32()),
        "ndc": text.ndc(claims.row[sel]),
        "drug_class": ref.column("drug_class")
        .take(pa.array(ref_row[sel], pa.int64()))
        .combine_chunks(),
        "claim_mme": pa.array(claims.mme[sel], pa.float64()),
        "cumulative_mme": pa.array(out.cumulative[sel], pa.float64()),
        "active_opioid_prescribers": pa.array(out.active_prescribers[sel], pa.int32()),
        "excluded_at_fill": pa.array(out.excluded[sel], pa.bool_()),
        **{name: pa.array(values, pa.bool_()) for name, values in flags.items()},
        "edits": reasons_array(flags, len(sel)),
    }
    table = pa.Table.from_arrays(list(columns.values()), names=list(columns))
    counts = {
        "members": _distinct_sorted(member),
        "claims_evaluated": int(len(sel)),
        "fired": {name: int(v.sum()) for name, v in flags.items()},
        "members_hit": {name: _distinct_sorted(member[v]) for name, v in flags.items()},
    }
    return table, counts

"""The safety-edit replay on the streaming engine: claims streamed and partitioned by member as
for ``score --stream`` (tracked fills keeping their claim ids), each member partition encoded,
replayed and turned into its claim rows, the rows merged into member order (the in-memory
bytes) and the counts summed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.edits.replay import drug_keys, run_edits_kernel
from rxrisk.edits.table import edits_table
from rxrisk.engines.stream import StreamOptions, ingest_stream
from rxrisk.ingest.drugs import DrugTable
from rxrisk.io.arrow import take_rows, to_numpy


class PartitionText:
    """The claim ids and NDCs of the claim table, by input row, from one member partition's
    tracked fills (columns ``row``, ``ref_index`` and ``claim_id``, in input order) and the
    reference's NDCs (a used fill's normalised NDC is its reference row's NDC: the reference
    row was found by that very value).

    Parameters
    ----------
    fills : pyarrow.Table
        :attr:`rxrisk.ingest.tracked.TrackedRows.fills` of the partition, read with
        ``claim_ids=True`` (:func:`rxrisk.engines.stream.ingest_stream`).
    reference_ndc : pyarrow.Array
        The reference's ``ndc`` column (:attr:`rxrisk.ingest.drugs.DrugTable.ndc`).
    """

    def __init__(self, fills: pa.Table, reference_ndc: pa.Array):
        self.rows = to_numpy(fills.column("row"), np.int64)
        self.ref_index = to_numpy(fills.column("ref_index"), np.int32)
        if "claim_id" in fills.column_names:
            self.claim_ids = fills.column("claim_id")
        else:  # a partition without fills, of a book whose fills store stayed empty
            self.claim_ids = pa.chunked_array([], pa.string())
        self.reference_ndc = reference_ndc

    def positions(self, rows: np.ndarray) -> np.ndarray:
        """Position among the fills of each input row (every one a fill of the partition)."""
        pos = np.searchsorted(self.rows, rows)
        if len(rows) and not (pos.max() < len(self.rows) and (self.rows[pos] == rows).all()):
            raise ValueError("stream edits: a replayed fill is not among its partition's fills")
        return pos

    def ref_row(self, rows: np.ndarray) -> np.ndarray:
        """Reference row of each input row's NDC."""
        return self.ref_index[self.positions(rows)]

    def claim_id(self, rows: np.ndarray) -> pa.Array:
        """Trimmed claim id of each input row (null when absent or empty)."""
        return take_rows(self.claim_ids, self.positions(rows)).combine_chunks()

    def ndc(self, rows: np.ndarray) -> pa.Array:
        """Normalised 11-digit NDC of each input row."""
        return self.reference_ndc.take(pa.array(self.ref_row(rows), pa.int64()))


def add_counts(total: dict | None, part: dict) -> dict:
    """The counts of :func:`rxrisk.edits.table.edits_table` of two sets of members (members
    are in one partition only, so members and members hit add up)."""
    if total is None:
        return part
    return {
        key: {n: total[key][n] + v for n, v in value.items()}
        if isinstance(value, dict)
        else total[key] + value
        for key, value in part.items()
    }


def member_runs(claims, evaluated: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """The members with evaluated claims, in table order, and their number of table rows."""
    before = np.concatenate([[0], np.cumsum(evaluated != 0, dtype=np.int64)])
    offsets = claims.fill_offsets
    per_member = before[offsets[1:]] - before[offsets[:-1]]
    hit = np.flatnonzero(per_member)
    return claims.member_ids.take(pa.array(hit, pa.int64())), per_member[hit]


def merge_runs(tables: list[pa.Table], runs: list[tuple[pa.Array, np.ndarray]]) -> pa.Table:
    """The partition tables as one, in member order: each member's rows are one run of one
    partition's table, already in evaluation order, so sorting the (distinct) member ids of
    the runs orders the rows, whatever the stability of the sort."""
    kept = [i for i, t in enumerate(tables) if t.num_rows]
    if len(kept) <= 1:
        return tables[kept[0] if kept else 0]
    ids = pa.concat_arrays([runs[i][0] for i in kept])
    lengths = np.concatenate([runs[i][1] for i in kept])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    order = to_numpy(pc.sort_indices(ids), np.int64)
    lengths, starts = lengths[order], starts[order]
    first_out = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rows = np.repeat(starts - first_out, lengths) + np.arange(int(lengths.sum()))
    merged = pa.concat_tables([tables[i] for i in kept])
    return merged.take(pa.array(rows, pa.int64())).combine_chunks()


def replay_stream(
    pharmacy,
    medical,
    *,
    config,
    edit_set,
    options: StreamOptions,
    clock,
    threads: int | None = None,
    date_format: str | None = None,
    max_reject_share: float | None = None,
) -> tuple[pa.Table, dict, dict]:
    """Streaming counterpart of the in-memory replay of :func:`rxrisk.replay_edits`.

    Parameters
    ----------
    pharmacy, medical
        As for :func:`rxrisk.engines.stream.score_stream` (``medical`` may be None).
    config : rxrisk.config.settings.Config
        Reference, rules and code sets.
    edit_set : rxrisk.edits.config.EditSet
        The validated edit set.
    options : StreamOptions
        Batches, partitions, spilling.
    clock : rxrisk.clock.Clock
        Stage seconds and progress.
    threads, date_format, max_reject_share
        As for :func:`rxrisk.replay_edits`.

    Returns
    -------
    tuple
        ``(claim table, counts, audit blocks)``: the table and counts of
        :func:`rxrisk.edits.table.edits_table` for the whole book, and the audit's
        ``pharmacy`` and ``medical`` blocks.
    """
    from rxrisk.scoring.encode import encode  # lazy: kernels on first use

    book = ingest_stream(
        pharmacy,
        medical,
        config,
        options=options,
        clock=clock,
        date_format=date_format,
        max_reject_share=max_reject_share,
        claim_ids=True,
    )
    try:
        ref = config.reference
        drugs = DrugTable.from_reference(ref)
        keys = drug_keys(ref)
        tables, runs, counts = [], [], None
        for p in range(book.n_parts):  # encoded_partitions' steps, keeping the fills' text
            rows = book.tracked(p)
            clock.lap("select")
            claims = encode(rows, drugs)
            text = PartitionText(rows.fills, drugs.ndc)
            del rows
            book.release(p)
            clock.lap("encode")
            ref_row = text.ref_row(claims.row)
            out = run_edits_kernel(claims, ref_row, keys, edit_set, threads)
            clock.lap("kernels")
            table, part_counts = edits_table(claims, text, ref, ref_row, out)
            tables.append(table)
            runs.append(member_runs(claims, out.evaluated))
            counts = add_counts(counts, part_counts)
            clock.lap("output")
            clock.tick("member partitions replayed", p + 1)
        merged = merge_runs(tables, runs)
        clock.lap("output")
        return merged, counts, book.audit_blocks
    finally:
        book.close()

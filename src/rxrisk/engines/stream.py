"""The streaming engine: bounded-memory scoring of books larger than memory (same output as
:func:`rxrisk.score`'s in-memory path, byte for byte).

Flow, in one direction:

1. **Stream** each input batch by batch (:mod:`rxrisk.engines.batches`). Every batch is
   conformed and checked row by row with the functions of the in-memory path
   (:mod:`rxrisk.ingest.checked`); its counts go to the audit, its rejected rows (if asked)
   to the quarantine, and then the batch is dropped. What is kept:

   - *claim keys*: input row number, kind (reversal / paid) and claim id of every row that
     takes part in the book-wide claim-id matching (tracked rows that passed the checks:
     untracked rows are counted and never hashed or kept), partitioned by a hash of the
     trimmed claim id, so equal ids always share a partition;
   - *tracked rows*: the paid rows whose NDC is in the reference (a few per cent of a book)
     and the classified medical rows, selected as in memory (:mod:`rxrisk.ingest.tracked`)
     and partitioned by a hash of the member id (:mod:`rxrisk.engines.partitions`).

   Each partitioned store (:class:`rxrisk.engines.spool.Spool`) stays in memory up to its byte
   budget and then moves to Arrow IPC spill files.
2. **Match** claim ids partition by partition, exactly (hash runs, then string compares:
   :func:`rxrisk.engines.partitions.match_claims`), on a thread while the medical input is
   streamed; the reversed and duplicate rows are counted and removed from the tracked rows.
3. **Score** member partition by member partition with the in-process encoder and kernels
   (each partition's :class:`~rxrisk.ingest.tracked.TrackedRows`); partition tables are
   merged into member order.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.engines.batches import BatchSource, engine_columns, open_batches, timed_batches
from rxrisk.engines.partitions import (
    add_claim_keys,
    match_claims,
    member_parts,
    partition_count,
    without_rows,
)
from rxrisk.engines.spool import Spool
from rxrisk.errors import InputError
from rxrisk.ingest import intake, validate
from rxrisk.ingest.checked import check_medical_batch, check_pharmacy_batch
from rxrisk.ingest.conform import clean_text, conform_medical, conform_pharmacy
from rxrisk.ingest.drugs import DrugTable
from rxrisk.ingest.sources import MEDICAL_REQUIRED, PHARMACY_OPTIONAL, PHARMACY_REQUIRED, Source
from rxrisk.ingest.tracked import (
    TrackedRows,
    events_schema,
    fills_schema,
    members_seen,
    tracked_events,
    tracked_fills,
)
from rxrisk.io.arrow import take_rows

if TYPE_CHECKING:  # pragma: no cover
    from rxrisk.scoring.encode import Claims


@dataclass(frozen=True)
class StreamOptions:
    """How the streaming path batches, partitions and spills.

    Attributes
    ----------
    batch_rows : int
        Rows per batch read (Parquet batches also end at row-group boundaries).
    partitions : int or None
        Member partitions scored one at a time; None picks one per ``rows_per_partition``
        input rows (at least 1).
    claim_partitions : int or None
        Claim-id partitions matched one at a time; None: one per ``rows_per_partition / 4``
        pharmacy rows.
    memory_bytes : int
        In-memory budget of each partitioned store before it spills to Arrow IPC files.
    spill_dir : str or None
        Folder for spill files (default: the system temporary folder).
    rows_per_partition : int
        Input rows per partition when ``partitions`` is None.
    min_partition_rows : int
        Fewest input rows per partition: when the row count is known before reading, the
        partition counts used are at most ``rows / min_partition_rows`` (at least 1), whatever
        ``partitions`` and ``claim_partitions`` ask for.

    The ranges (inclusive) are in :data:`RANGES`; a value outside its range is an
    :class:`~rxrisk.errors.InputError` naming the field and the range.
    """

    batch_rows: int = 1_000_000
    partitions: int | None = None
    claim_partitions: int | None = None
    memory_bytes: int = 1 << 30
    spill_dir: str | None = None
    rows_per_partition: int = 100_000_000
    min_partition_rows: int = 10_000

    def __post_init__(self):
        for name in RANGES:
            v = getattr(self, name)
            if v is not None or name not in ("partitions", "claim_partitions"):
                check_range(name, v)


#: Allowed values of the :class:`StreamOptions` fields, inclusive (``--batch-rows``,
#: ``--partitions`` and ``--memory-budget`` on the command line).
RANGES = {
    "batch_rows": (1, 100_000_000),
    "partitions": (1, 4096),
    "claim_partitions": (1, 4096),
    "memory_bytes": (0, 1 << 40),
    "rows_per_partition": (1, 1 << 62),
    "min_partition_rows": (1, 1 << 62),
}


def describe_range(name: str) -> str:
    """``between 1 and 4,096``; sizes in bytes also with a unit (``1T``)."""
    lo, hi = RANGES[name]
    if name == "memory_bytes":
        return f"between 0 and 1T ({hi:,} bytes)"
    return f"between {lo:,} and {hi:,}"


def check_range(name: str, value, option: str | None = None) -> int:
    """``value`` as an int if it is a whole number in ``RANGES[name]``, else an InputError
    naming ``option`` (default: the field name) and the range."""
    lo, hi = RANGES[name]
    label = option or name
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{label} {value!r}: give a whole number {describe_range(name)}")
    if not lo <= value <= hi:
        raise InputError(
            f"{label} {value:,}: out of range; give a whole number {describe_range(name)}"
        )
    return int(value)


# ------------------------------------------------------------------------------------ ingest


@dataclass
class StreamedBook:
    """What streaming ingest keeps: audit blocks, tracked rows by member partition, quarantine."""

    audit_blocks: dict
    fills: Spool
    dropped_rows: np.ndarray  # sorted input rows of tracked fills that are reversed / duplicate
    events: Spool | None
    members: Spool | None
    quarantine: pa.Table | None
    n_parts: int
    member_type: pa.DataType

    def tracked(self, part: int) -> TrackedRows:
        """The tracked rows of member partition ``part``, without the reversed and duplicate
        fills: what :func:`rxrisk.ingest.select.select_used` gives for the whole book."""
        fills = self.fills.read(part)
        if fills is None:
            schema = self.fills.schema or fills_schema(self.member_type)
            fills = schema.empty_table()
        events = None
        if self.events is not None:
            events = self.events.read(part)
            if events is None:
                events = events_schema(self.member_type).empty_table()
        extra = None
        if self.members is not None:
            seen = self.members.read(part)
            extra = seen.column("member_id") if seen is not None else None
        return TrackedRows(without_rows(fills, self.dropped_rows), events, extra)

    def release(self, part: int) -> None:
        """Free the rows of member partition ``part`` (memory or spill file)."""
        for s in (self.fills, self.events, self.members):
            if s is not None:
                s.release(part)

    def close(self) -> None:
        for s in (self.fills, self.events, self.members):
            if s is not None:
                s.close()


class _PharmacyCounts:
    """Pharmacy audit counts accumulated over the checked batches."""

    def __init__(self):
        self.rows_read = self.reversal = self.tracked = self.untracked = 0
        self.reasons = np.zeros(len(validate.PHARMACY_REASONS), np.int64)

    def add(self, checks: validate.PharmacyChecks) -> None:
        r = checks.reason
        self.rows_read += len(r)
        self.reasons += np.bincount(r[r >= 0], minlength=len(self.reasons))
        self.reversal += int(np.count_nonzero(checks.is_reversal))
        self.tracked += int(np.count_nonzero(checks.paid_ok))
        self.untracked += int(np.count_nonzero(checks.untracked))

    def block(self, n_reversed: int, n_duplicate: int) -> dict:
        """The audit's ``pharmacy`` block, once claim-id matching found the reversed and
        duplicate rows (all among the tracked rows that passed the checks)."""
        buckets = {
            "rejected": int(self.reasons.sum()),
            "reversal": self.reversal,
            "reversed": n_reversed,
            "duplicate": n_duplicate,
            "untracked": self.untracked,
            "used": self.tracked - n_reversed - n_duplicate,
        }
        return {
            "rows_read": int(self.rows_read),
            "buckets": {k: int(buckets[k]) for k in validate.PHARMACY_BUCKETS},
            "rejected_by_reason": {
                name: int(self.reasons[i]) for i, name in enumerate(validate.PHARMACY_REASONS)
            },
        }


class _Rejected:
    """Each batch's rejected rows as read, with their input row numbers, for the quarantine."""

    def __init__(self):
        self.parts: list[tuple] = []
        self._schema: pa.Schema | None = None

    def add(self, label: str, t: pa.Table, r0: int, reason: np.ndarray, names) -> None:
        self._schema = self._schema or t.schema
        bad = np.flatnonzero(reason >= 0)
        if len(bad):
            taken = pa.table({name: take_rows(t.column(name), bad) for name in t.column_names})
            self.parts.append((label, taken, np.arange(len(bad)), reason[bad], names, bad + r0))

    def end_input(self, label: str, names) -> None:
        """After an input's last batch: a zero-row part when it had no rejected row, so the
        quarantine keeps its columns (as in memory)."""
        if not any(p[0] == label for p in self.parts):
            none = np.zeros(0, np.int64)
            empty = self._schema.empty_table()
            self.parts.append((label, empty, none, np.zeros(0, np.int8), names, none))
        self._schema = None

    def table(self) -> pa.Table:
        """The quarantine table (:func:`rxrisk.io.outputs.quarantine_table`)."""
        from rxrisk.io.outputs import quarantine_table  # lazy: pulls pyarrow.compute

        return quarantine_table(self.parts)


@dataclass
class _Pass:
    """What every batch of a pass goes to: the partitioned stores, the quarantine and the
    offending values, and the settings of the checks."""

    claims: Spool
    fills: Spool
    events: Spool | None
    members: Spool | None
    rejected: _Rejected | None
    offenders: intake.Offenders
    clock: object
    date_format: str | None
    claim_ids: bool = False  # tracked fills keep their trimmed claim id (the edit replay's table)
    keep: object | None = None  # narrows the tracked stores to some members (see ingest_stream)

    def stores(self) -> list[Spool]:
        return [s for s in (self.claims, self.fills, self.events, self.members) if s is not None]

    def add_members(self, member_id: pa.ChunkedArray) -> None:
        """The distinct non-blank member ids of a batch, whatever the rows' buckets."""
        if self.members is not None:
            seen = members_seen(member_id)
            if len(seen):
                self.members.add(
                    pa.table({"member_id": seen}), member_parts(seen, self.members.n_parts)
                )


#: Text columns the streaming path reads from Parquet as dictionaries (unless a quarantine
#: is kept: its rows keep the types of the in-memory reader). Not ``claim_status``, checked
#: on the tracked rows only (a tenth of a book): its dictionary cost the reader more CPU
#: time than the checks then saved.
STREAM_DICTIONARY_COLUMNS = ("ndc", "code_type", "code")


def _open_inputs(pharmacy, medical, options, quarantine: bool):
    """Both inputs opened for batch reading, their schemas and types checked up front with the
    messages of the in-memory path: ``(pharmacy, medical or None, member id type)``."""
    pick = None if quarantine else engine_columns(PHARMACY_REQUIRED, PHARMACY_OPTIONAL)
    read = dict(
        batch_rows=options.batch_rows,
        dictionary_columns=None if quarantine else STREAM_DICTIONARY_COLUMNS,
    )
    ph = open_batches(pharmacy, label="pharmacy", columns=pick, **read)
    md = None
    if medical is not None:
        pick = None if quarantine else engine_columns(MEDICAL_REQUIRED, ())
        md = open_batches(medical, label="medical", columns=pick, **read)
    ph_types = conform_pharmacy(Source(ph.schema.empty_table(), ph.name))
    if md is not None:
        md_types = conform_medical(Source(md.schema.empty_table(), md.name))
        a, b = ph_types.member_id.type, md_types.member_id.type
        if a != b:
            raise InputError(
                f"member_id has different types across inputs ({', '.join(sorted({str(a), str(b)}))}); "
                "give pharmacy and medical member_id the same type"
            )
    return ph, md, ph_types.member_id.type


def _open_pass(
    ph: BatchSource,
    md: BatchSource | None,
    options,
    *,
    all_members,
    quarantine,
    clock,
    date_format,
    claim_ids=False,
    keep=None,
) -> _Pass:
    """The partitioned stores of a run, their partition counts picked from the row counts."""
    total = (ph.rows or 0) + ((md.rows or 0) if md is not None else 0)
    known = ph.rows is not None and (md is None or md.rows is not None)
    n_parts = partition_count(
        total if known else None,
        options.partitions,
        options.rows_per_partition,
        8,
        options.min_partition_rows,
    )
    n_claim_parts = partition_count(
        ph.rows,
        options.claim_partitions,
        max(1, options.rows_per_partition // 4),
        16,
        options.min_partition_rows,
    )

    def spool(name: str, n: int) -> Spool:
        return Spool(name, n, budget_bytes=options.memory_bytes, spill_dir=options.spill_dir)

    return _Pass(
        claims=spool("claims", n_claim_parts),
        fills=spool("fills", n_parts),
        events=spool("events", n_parts) if md is not None else None,
        members=spool("members", n_parts) if all_members else None,
        rejected=_Rejected() if quarantine else None,
        offenders=intake.Offenders(),
        clock=clock,
        date_format=date_format,
        claim_ids=claim_ids,
        keep=keep,
    )


def ingest_stream(
    pharmacy,
    medical,
    config,
    *,
    options: StreamOptions,
    clock,
    all_members: bool = False,
    quarantine: bool = False,
    date_format: str | None = None,
    max_reject_share: float | None = None,
    claim_ids: bool = False,
    keep=None,
) -> StreamedBook:
    """Stream both inputs into partitioned stores (see the module docstring).

    ``date_format`` and ``max_reject_share`` as for :func:`rxrisk.ingest.select.ingest`: a
    rejection reason above the share stops here, after both inputs were read and before
    anything is scored or written. ``claim_ids`` adds to the tracked fills a ``claim_id``
    column (trimmed, empty as null), for the claim table of the edit replay.

    ``keep`` narrows the tracked stores for a command that needs only some rows (the
    report: its members' rows): ``keep.fills(table)`` gets each batch's tracked fills
    (:func:`~rxrisk.ingest.tracked.tracked_fills`) and returns the rows to store, and
    ``keep.events(columns, rows, first_row)`` each medical batch's checked columns and rows
    and returns the table to store (with a ``member_id`` column). Audit counts and claim-id
    matching do not change; read such stores with ``fills.read`` / ``events.read`` (not
    :meth:`StreamedBook.tracked`, which expects the scoring columns).
    """
    max_days_supply = config.metrics.max_days_supply
    max_reject_share = config.reject_share(max_reject_share)
    ph, md, member_type = _open_inputs(pharmacy, medical, options, quarantine)
    run = _open_pass(
        ph,
        md,
        options,
        all_members=all_members,
        quarantine=quarantine,
        clock=clock,
        date_format=date_format,
        claim_ids=claim_ids,
        keep=keep,
    )
    try:
        counts = _pharmacy_pass(
            ph,
            run,
            drugs=DrugTable.from_reference(config.reference),
            max_days_supply=max_days_supply,
        )
        blocks = {"medical": validate.empty_medical_counts()}
        # claim-id matching runs on a thread (its kernels release the GIL) while the medical
        # input is read and checked; the thread is done before the block is left
        with ThreadPoolExecutor(1) as pool:
            matched = pool.submit(match_claims, run.claims, clock)
            if md is not None:
                blocks["medical"] = _medical_pass(md, run, codesets=config.codesets)
            n_rev, n_dup, drop = matched.result()
        clock.lap("match")
        run.claims.close()
        blocks = {"pharmacy": counts.block(n_rev, n_dup), "medical": blocks["medical"]}
        intake.check(
            blocks,
            names={"pharmacy": ph.name, "medical": md.name if md is not None else None},
            offenders=run.offenders,
            max_reject_share=max_reject_share,
            max_days_supply=max_days_supply,
        )
        for s in run.stores():
            if s is not run.claims:  # matched and closed already
                s.finish()
        q = run.rejected.table() if run.rejected is not None else None
    except BaseException:  # an error or interrupt removes every spill file of this run
        for s in run.stores():
            s.close()
        raise
    n_parts = run.fills.n_parts
    return StreamedBook(blocks, run.fills, drop, run.events, run.members, q, n_parts, member_type)


def _pharmacy_pass(src: BatchSource, run: _Pass, *, drugs, max_days_supply: int) -> _PharmacyCounts:
    """Check the pharmacy input batch by batch: counts, claim keys, tracked fills by member
    partition, members seen, rejected rows."""
    counts = _PharmacyCounts()
    ndcs = validate.RememberedNdcs(drugs.ndc)  # batches repeat the same NDC texts
    for r0, t in timed_batches(src, run.clock, "validate", "pharmacy"):
        batch = check_pharmacy_batch(
            Source(t, src.name),
            drugs=drugs,
            max_days_supply=max_days_supply,
            date_format=run.date_format,
            first_row=r0,
            offenders=run.offenders,
            ndcs=ndcs,
        )
        c = batch.checks
        counts.add(c)
        add_claim_keys(run.claims, batch)
        if c.paid_ok.any():  # paid rows that passed the checks are tracked rows
            keep = c.paid_ok[c.scope]  # taken from the tracked rows' columns
            fills = tracked_fills(c.scoped, keep, c.ref_row[c.scope], row_numbers=c.scope + r0)
            if run.claim_ids:
                kept = take_rows(c.scoped.claim_id, np.flatnonzero(keep))
                fills = fills.append_column("claim_id", clean_text(kept))
            if run.keep is not None:
                fills = run.keep.fills(fills)
            run.fills.add(fills, member_parts(fills.column("member_id"), run.fills.n_parts))
        run.add_members(batch.columns.member_id)
        if run.rejected is not None:
            run.rejected.add("pharmacy", t, r0, c.reason, validate.PHARMACY_REASONS)
    if run.rejected is not None:
        run.rejected.end_input("pharmacy", validate.PHARMACY_REASONS)
    run.claims.finish()
    return counts


def _medical_pass(src: BatchSource, run: _Pass, *, codesets) -> dict:
    """Check the medical input batch by batch: its audit block; used events by member
    partition, members seen, rejected rows."""
    n_reasons = len(validate.MEDICAL_REASONS)
    codesets = validate.RememberedCodes(codesets)  # batches repeat the same codes
    rows_read, reasons = 0, np.zeros(n_reasons, np.int64)
    buckets = np.zeros(len(validate.MEDICAL_BUCKETS), np.int64)
    for r0, t in timed_batches(src, run.clock, "validate", "medical"):
        batch = check_medical_batch(
            Source(t, src.name),
            codesets=codesets,
            date_format=run.date_format,
            first_row=r0,
            offenders=run.offenders,
        )
        rows = batch.rows
        rows_read += len(rows.reason)
        reasons += np.bincount(rows.reason[rows.reason >= 0], minlength=n_reasons)
        buckets += np.bincount(rows.bucket, minlength=len(buckets))
        if (rows.bucket == validate.MEDICAL_BUCKETS.index("used")).any():
            if run.keep is None:
                events = tracked_events(batch.columns, rows)
            else:
                events = run.keep.events(batch.columns, rows, r0)
            run.events.add(events, member_parts(events.column("member_id"), run.events.n_parts))
        run.add_members(batch.columns.member_id)
        if run.rejected is not None:
            run.rejected.add("medical", t, r0, rows.reason, validate.MEDICAL_REASONS)
    if run.rejected is not None:
        run.rejected.end_input("medical", validate.MEDICAL_REASONS)
    return {
        "rows_read": int(rows_read),
        "buckets": {name: int(buckets[i]) for i, name in enumerate(validate.MEDICAL_BUCKETS)},
        "rejected_by_reason": {
            name: int(reasons[i]) for i, name in enumerate(validate.MEDICAL_REASONS)
        },
    }


# ------------------------------------------------------------------------------------ scoring


def score_stream(
    pharmacy,
    medical,
    *,
    days: np.ndarray,
    config,
    options: StreamOptions,
    clock,
    all_members: bool,
    quarantine: bool,
    threads: int | None,
    date_format: str | None = None,
    max_reject_share: float | None = None,
):
    """Streaming counterpart of the body of :func:`rxrisk.score`: returns
    ``(members, audit blocks, members scored, quarantine)``."""
    from rxrisk.scoring.run import score_claims  # lazy: kernels on first use

    book = ingest_stream(
        pharmacy,
        medical,
        config,
        options=options,
        clock=clock,
        all_members=all_members,
        quarantine=quarantine,
        date_format=date_format,
        max_reject_share=max_reject_share,
    )
    try:
        drugs = DrugTable.from_reference(config.reference)
        tables, n_scored = [], 0
        for p, claims in encoded_partitions(book, drugs, clock):
            table, n = score_claims(
                claims, days, config, all_members=all_members, threads=threads, clock=clock
            )
            tables.append(table)
            n_scored += n
            clock.tick("member partitions scored", p + 1)
        members = member_order(tables)
        clock.lap("output")
        return members, book.audit_blocks, n_scored, book.quarantine
    finally:
        book.close()


def encoded_partitions(book: StreamedBook, drugs: DrugTable, clock) -> Iterator[tuple[int, Claims]]:
    """Each member partition of ``book`` in turn as ``(partition, Claims)``: its tracked rows
    read back (clock stage ``select``), released, and encoded (stage ``encode``). The step
    every streaming run shares; what is done with each partition's claims is the caller's."""
    from rxrisk.scoring.encode import encode  # lazy: kernels on first use

    for p in range(book.n_parts):
        rows = book.tracked(p)
        clock.lap("select")
        claims = encode(rows, drugs)
        del rows
        book.release(p)
        clock.lap("encode")
        yield p, claims


def member_order(
    tables: list[pa.Table], keys: tuple[str, str] = ("member_id", "as_of")
) -> pa.Table:
    """The tables of the member partitions as one, sorted by ``keys`` (member id first)."""
    merged = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    if len(tables) > 1 and merged.num_rows:
        order = pc.sort_indices(merged, sort_keys=[(k, "ascending") for k in keys])
        merged = merged.take(order).combine_chunks()
    return merged

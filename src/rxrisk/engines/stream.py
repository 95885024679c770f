"""Streaming, bounded-memory scoring of books larger than memory (same output as
:func:`rxrisk.score`'s in-memory path, byte for byte).

Flow, in one direction:

1. **Stream** each input batch by batch (Parquet file or folder, Arrow IPC, CSV, Arrow
   table or stream). Every batch gets the row-local checks of validation
   (:func:`rxrisk.ingest.validate.check_pharmacy`, :func:`rxrisk.ingest.validate.validate_medical`); its
   counts go to the audit, its rejected rows (if asked) to the quarantine, and then the
   batch is dropped. What is kept:

   - *claim keys*: input row number, kind (reversal / paid) and claim id of every row that
     takes part in the book-wide claim-id matching (tracked rows that passed the checks:
     untracked rows are counted and never hashed or kept), partitioned by a hash of the
     trimmed claim id, so equal ids always share a partition;
   - *tracked rows*: the paid rows whose NDC is in the reference (a few per cent of a book)
     and the classified medical rows, partitioned by a hash of the member id.

   Each partitioned store (:class:`rxrisk.engines.spool.Spool`) stays in memory up to its byte
   budget and then moves to Arrow IPC spill files.
2. **Match** claim ids partition by partition, exactly (hash runs, then string compares:
   :func:`rxrisk.ingest.validate.match_claim_hashes`); the reversed and duplicate rows are counted
   and removed from the tracked rows.
3. **Score** member partition by member partition with the in-process encoder and kernels;
   partition tables are merged into member order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.ipc as ipc

from rxrisk.engines.spool import Spool
from rxrisk.errors import InputError
from rxrisk.ingest import sources as inputs
from rxrisk.ingest import validate
from rxrisk.io.arrow import keep_rows, string_chunks, take_rows, to_numpy

#: kind bits of a claim key
_REVERSAL, _PAID = 1, 2


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


# ------------------------------------------------------------------------------ batch sources


@dataclass
class BatchSource:
    """An input read batch by batch: a name for messages, the full schema, the row count
    when known without reading (Parquet / IPC metadata, tables), and the batches."""

    name: str
    schema: pa.Schema
    rows: int | None
    batches: Iterator[pa.Table]


def open_batches(source, *, label: str, batch_rows: int, columns=None) -> BatchSource:
    """Open ``source`` (as :func:`rxrisk.ingest.sources.read_source` accepts) for batch reading.

    ``columns``: a function of the schema giving the column names to read (None: all).
    """
    pick = (lambda schema: schema.names) if columns is None else columns
    if isinstance(source, (pa.Table, pa.RecordBatch, pa.RecordBatchReader)):
        inputs.unique_names(source.schema.names, f"{label} input")
    if isinstance(source, pa.Table):
        return BatchSource(
            label,
            source.schema,
            source.num_rows,
            (
                pa.Table.from_batches([b])
                for b in source.select(pick(source.schema)).to_batches(batch_rows)
            ),
        )
    if isinstance(source, pa.RecordBatch):
        return open_batches(
            pa.Table.from_batches([source]), label=label, batch_rows=batch_rows, columns=columns
        )
    if isinstance(source, pa.RecordBatchReader) or (
        hasattr(source, "__arrow_c_stream__") and not isinstance(source, (str, Path))
    ):
        reader = (
            source
            if isinstance(source, pa.RecordBatchReader)
            else pa.RecordBatchReader.from_stream(source)
        )
        inputs.unique_names(reader.schema.names, f"{label} input")
        return BatchSource(label, reader.schema, None, _reader_tables(reader, pick))
    if isinstance(source, (str, Path)):
        return _open_path(Path(source), label, batch_rows, pick)
    raise InputError(
        f"{label} input: cannot read an object of type {type(source).__name__}; "
        "pass a pyarrow Table, a RecordBatchReader, an Arrow C stream (polars, pandas via pyarrow) or a file path"
    )


def _reader_tables(reader, pick) -> Iterator[pa.Table]:
    names = pick(reader.schema)
    for b in reader:
        yield pa.Table.from_batches([b]).select(names)


def _open_path(path: Path, label: str, batch_rows: int, pick) -> BatchSource:
    if not path.exists():
        raise InputError(f"{label} input {path}: no such file or folder; check the path")
    name = path.name.lower()

    def fail(exc) -> InputError:
        return inputs.read_error(path, label, exc)

    try:
        if path.is_dir() or name.endswith((".parquet", ".pq")):
            # the scanner reads one batch ahead on Arrow's threads (overlapping the checks of
            # this batch); no pre-buffering of whole row groups, to keep memory low
            dataset = inputs.parquet_dataset(path, label, pre_buffer=False)
            schema = dataset.schema
            rows = dataset.count_rows()
            batches = dataset.to_batches(
                columns=pick(schema),
                batch_size=batch_rows,
                batch_readahead=1,
                fragment_readahead=1,
            )
        elif name.endswith((".arrow", ".feather", ".ipc")):
            mm = pa.memory_map(str(path))
            try:
                reader = ipc.open_file(mm)
                schema, rows = reader.schema, reader.count_rows()
                batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
            except pa.ArrowInvalid:
                mm.seek(0)
                reader = ipc.open_stream(mm)
                schema, rows, batches = reader.schema, None, iter(reader)
            inputs.unique_names(schema.names, f"{label} input {path}")
        elif name.endswith(inputs.CSV_SUFFIXES):
            reader = pacsv.open_csv(
                path,
                read_options=pacsv.ReadOptions(block_size=64 << 20),
                convert_options=pacsv.ConvertOptions(
                    column_types=inputs.all_text_types(path, label),
                    strings_can_be_null=False,
                    null_values=[],
                ),
            )
            schema, rows, batches = reader.schema, None, iter(reader)
        else:
            raise InputError(
                f"{label} input {path}: unknown file type; use .parquet (or a folder of them), .arrow/.feather, or .csv/.csv.gz"
            )
    except (pa.ArrowInvalid, OSError) as exc:
        raise fail(exc) from None

    names = pick(schema)

    def tables() -> Iterator[pa.Table]:
        it = iter(batches)
        while True:
            try:
                b = next(it)
            except StopIteration:
                return
            except (pa.ArrowInvalid, OSError) as exc:
                raise fail(exc) from None
            t = pa.Table.from_batches([b])
            yield t.select(names) if t.column_names != names else t

    return BatchSource(str(path), schema, rows, tables())


#: inputs with at least this many rows are streamed by default on the command line
AUTO_STREAM_ROWS = 5_000_000
#: CSV files have no row count: stream from this size on (about 60 bytes a row)
AUTO_STREAM_CSV_BYTES = 300 << 20


def should_stream(source) -> bool:
    """Whether the CLI streams ``source`` by default: a Parquet file or folder or Arrow IPC
    file of at least :data:`AUTO_STREAM_ROWS` rows (from metadata, nothing is read), or a
    CSV file of at least :data:`AUTO_STREAM_CSV_BYTES`. Anything unreadable: False (the
    reader then reports the problem)."""
    if not isinstance(source, (str, Path)):
        return False
    path = Path(source)
    name = path.name.lower()
    try:
        if path.is_dir() or name.endswith((".parquet", ".pq")):
            return ds.dataset(path, format="parquet").count_rows() >= AUTO_STREAM_ROWS
        if name.endswith((".arrow", ".feather", ".ipc")):
            with pa.memory_map(str(path)) as mm:
                return ipc.open_file(mm).count_rows() >= AUTO_STREAM_ROWS
        if name.endswith((".csv", ".csv.gz", ".txt", ".txt.gz")):
            return path.stat().st_size >= AUTO_STREAM_CSV_BYTES
    except (pa.ArrowInvalid, OSError):
        return False
    return False


# --------------------------------------------------------------------------------- partitions


def string_hashes(col: pa.ChunkedArray) -> np.ndarray:
    """62-bit hash of each row's trimmed string (int64; -1 for null or blank), computed on
    the numba threads chunk by chunk without copying the strings."""
    from rxrisk.kernels.strings import hash_strings

    out = np.empty(len(col), np.int64)
    pos = 0
    for offsets, data, null in string_chunks(col):
        m = len(null)
        hash_strings(offsets, data, null, out[pos : pos + m])
        pos += m
    return out


def _parts_of(hashes: np.ndarray, n_parts: int) -> np.ndarray:
    parts = hashes % np.int64(n_parts)
    parts[hashes < 0] = -1
    return parts


def member_parts(member_id: pa.ChunkedArray, n_parts: int) -> np.ndarray:
    """Partition of each (trimmed) member id; -1 for null. Strings hash by their bytes,
    integers by a multiplicative hash of the value, so a member always lands in one
    partition whichever input or batch it comes from."""
    if pa.types.is_integer(member_id.type):
        v = to_numpy(member_id, np.int64, 0).view(np.uint64)
        h = (v * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(33)
        parts = (h % np.uint64(n_parts)).astype(np.intp)
        parts[validate.is_null(member_id)] = -1
        return parts
    return _parts_of(string_hashes(member_id), n_parts)


# ------------------------------------------------------------------------------------ ingest


class _Counts:
    """Audit counts accumulated over batches."""

    def __init__(self, reasons: tuple[str, ...]):
        self.rows = 0
        self.reason = np.zeros(len(reasons), np.int64)

    def add_reasons(self, reason: np.ndarray) -> None:
        self.rows += len(reason)
        self.reason += np.bincount(reason[reason >= 0], minlength=len(self.reason))


@dataclass
class StreamedBook:
    """What streaming ingest keeps: audit blocks, partitioned tracked rows, quarantine."""

    audit_blocks: dict
    fills: Spool
    dropped_rows: np.ndarray  # sorted input rows of tracked fills that are reversed / duplicate
    events: Spool | None
    members: Spool | None
    quarantine: pa.Table | None
    n_parts: int
    member_type: pa.DataType

    def close(self) -> None:
        for s in (self.fills, self.events, self.members):
            if s is not None:
                s.close()


def _auto_parts(
    rows: int | None, explicit: int | None, per: int, default_unknown: int, min_rows: int = 1
) -> int:
    """Partitions to use: ``explicit``, else one per ``per`` rows (``default_unknown`` when the
    row count is not known before reading); never more than ``rows / min_rows`` when known,
    so a small input is not spread over thousands of near-empty partitions."""
    if explicit is not None:
        n = explicit
    elif rows is None:
        return default_unknown
    else:
        n = math.ceil(rows / per)
    if rows is not None:
        n = min(n, rows // min_rows)
    return max(1, n)


def _spec_columns(required, optional):
    def pick(schema: pa.Schema) -> list[str]:
        return [n for n in schema.names if n in required or n in optional]

    return pick


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
) -> StreamedBook:
    """Stream both inputs into partitioned stores (see the module docstring).

    ``date_format`` and ``max_reject_share`` as for :func:`rxrisk.ingest.select.ingest`: a
    rejection reason above the share stops here, after both inputs were read and before
    anything is scored or written.
    """
    from rxrisk.ingest import intake

    offenders = intake.Offenders()
    max_days_supply = config.metrics.max_days_supply
    max_reject_share = config.reject_share(max_reject_share)
    from rxrisk.scoring.encode import DrugTable

    drugs = DrugTable.from_reference(config.reference)
    cols = None if quarantine else _spec_columns(inputs.PHARMACY_REQUIRED, inputs.PHARMACY_OPTIONAL)
    ph = open_batches(pharmacy, label="pharmacy", batch_rows=options.batch_rows, columns=cols)
    md = None
    if medical is not None:
        mcols = None if quarantine else _spec_columns(inputs.MEDICAL_REQUIRED, ())
        md = open_batches(medical, label="medical", batch_rows=options.batch_rows, columns=mcols)
    # schema and type errors up front, with the messages of the in-memory path
    ph_types = inputs.conform_pharmacy(inputs.Source(ph.schema.empty_table(), ph.name))
    if md is not None:
        md_types = inputs.conform_medical(inputs.Source(md.schema.empty_table(), md.name))
        a, b = ph_types.member_id.type, md_types.member_id.type
        if a != b:
            raise InputError(
                f"member_id has different types across inputs ({', '.join(sorted({str(a), str(b)}))}); "
                "give pharmacy and medical member_id the same type"
            )
    total = (ph.rows or 0) + ((md.rows or 0) if md is not None else 0)
    known = ph.rows is not None and (md is None or md.rows is not None)
    n_parts = _auto_parts(
        total if known else None,
        options.partitions,
        options.rows_per_partition,
        8,
        options.min_partition_rows,
    )
    n_claim_parts = _auto_parts(
        ph.rows,
        options.claim_partitions,
        max(1, options.rows_per_partition // 4),
        16,
        options.min_partition_rows,
    )
    budget, spill_dir = options.memory_bytes, options.spill_dir
    claims = Spool("claims", n_claim_parts, budget_bytes=budget, spill_dir=spill_dir)
    fills = Spool("fills", n_parts, budget_bytes=budget, spill_dir=spill_dir)
    events = Spool("events", n_parts, budget_bytes=budget, spill_dir=spill_dir) if md else None
    members = (
        Spool("members", n_parts, budget_bytes=budget, spill_dir=spill_dir) if all_members else None
    )
    rejected = _Rejected() if quarantine else None
    try:
        counts = _pharmacy_pass(
            ph,
            drugs,
            max_days_supply,
            claims,
            fills,
            members,
            rejected,
            n_parts,
            clock,
            date_format=date_format,
            offenders=offenders,
        )
        ph_block, drop = _match(claims, counts, clock)
        claims.close()
        md_block = validate.empty_medical_counts()
        if md is not None:
            md_block = _medical_pass(
                md,
                config.codesets,
                events,
                members,
                rejected,
                n_parts,
                clock,
                date_format=date_format,
                offenders=offenders,
            )
        intake.check(
            {"pharmacy": ph_block, "medical": md_block},
            names={"pharmacy": ph.name, "medical": md.name if md is not None else None},
            offenders=offenders,
            max_reject_share=max_reject_share,
            max_days_supply=max_days_supply,
        )
        fills.finish()
        if events is not None:
            events.finish()
        if members is not None:
            members.finish()
        q = None
        if quarantine:
            from rxrisk.io.outputs import quarantine_table

            q = quarantine_table(rejected.parts)
    except BaseException:  # an error or interrupt removes every spill file of this run
        for s in (claims, fills, events, members):
            if s is not None:
                s.close()
        raise
    return StreamedBook(
        audit_blocks={"pharmacy": ph_block, "medical": md_block},
        fills=fills,
        dropped_rows=drop,
        events=events,
        members=members,
        quarantine=q,
        n_parts=n_parts,
        member_type=ph_types.member_id.type,
    )


def _timed_batches(
    src: BatchSource, clock, stage: str, label: str
) -> Iterator[tuple[int, pa.Table]]:
    """(first row number, batch) pairs; time spent waiting on the reader counts as "read"."""
    r0 = 0
    it = iter(src.batches)
    empty = True
    while True:
        clock.lap(stage, quiet=True)
        try:
            t = next(it)
        except StopIteration:
            break
        clock.lap("read", quiet=True)
        empty = False
        yield r0, t
        r0 += t.num_rows
        clock.tick(f"{label} rows read", r0)
    if empty:  # no batch at all: still check the schema on zero rows
        clock.lap("read", quiet=True)
        yield 0, src.schema.empty_table().select(src.schema.names)


def _pharmacy_pass(
    src,
    drugs,
    max_days_supply,
    claims,
    fills,
    members,
    rejected,
    n_parts,
    clock,
    *,
    date_format=None,
    offenders=None,
) -> dict:
    reason_counts = _Counts(validate.PHARMACY_REASONS)
    n_reversal = 0
    n_tracked = 0
    n_untracked = 0
    rows_read = 0
    for r0, t in _timed_batches(src, clock, "validate", "pharmacy"):
        cols = inputs.conform_pharmacy(inputs.Source(t, src.name), date_format=date_format)
        c = validate.check_pharmacy(cols, drugs, max_days_supply=max_days_supply)
        n = len(cols)
        rows_read += n
        reason_counts.add_reasons(c.reason)
        if offenders is not None:
            offenders.add("pharmacy", t, c.reason, validate.PHARMACY_REASONS)
        tracked = c.paid_ok  # paid rows that passed the checks are tracked rows
        n_reversal += int(np.count_nonzero(c.is_reversal))
        n_tracked += int(np.count_nonzero(tracked))
        n_untracked += int(np.count_nonzero(c.untracked))
        row = np.arange(r0, r0 + n, dtype=np.int64)

        # claim keys of the rows that take part in matching only (never untracked rows)
        cid = cols.claim_id
        include = np.flatnonzero(c.is_reversal | c.paid_ok)
        if cid.null_count < len(cid) and len(include):
            sub = take_rows(cid, include).cast(pa.string())
            hashes = string_hashes(sub)
            kind = (
                c.is_reversal[include] * np.uint8(_REVERSAL) | c.paid_ok[include] * np.uint8(_PAID)
            ).astype(np.uint8)
            claims.add(
                pa.table({"row": row[include], "hash": hashes, "kind": kind, "claim_id": sub}),
                _parts_of(hashes, claims.n_parts),
            )

        if tracked.any():
            kept = keep_rows(
                {
                    "member_id": cols.member_id,
                    "fill_date": cols.fill_date,
                    "quantity": cols.quantity,
                    "days_supply": cols.days_supply,
                    "prescriber_id": cols.prescriber_id,
                    "pharmacy_id": cols.pharmacy_id,
                },
                tracked,
            )
            member = inputs.clean_text(kept["member_id"])
            table = pa.table(
                {
                    "row": row[tracked],
                    "member_id": member,
                    "fill_date": kept["fill_date"],
                    "quantity": kept["quantity"],
                    "days_supply": kept["days_supply"].cast(pa.int64()),
                    "prescriber_id": inputs.clean_text(kept["prescriber_id"]),
                    "pharmacy_id": inputs.clean_text(kept["pharmacy_id"]),
                    "ref_index": c.ref_row[tracked].astype(np.int32, copy=False),
                }
            )
            fills.add(table, member_parts(member, n_parts))
        if members is not None:
            _add_members(members, cols.member_id, n_parts)
        if rejected is not None:
            rejected.add("pharmacy", t, r0, c.reason, validate.PHARMACY_REASONS)
    if rejected is not None:
        rejected.end_input("pharmacy", validate.PHARMACY_REASONS)
    claims.finish()
    return {
        "rows_read": rows_read,
        "reasons": reason_counts.reason,
        "reversal": n_reversal,
        "tracked": n_tracked,
        "untracked": n_untracked,
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


def _add_members(members: Spool, member_id: pa.ChunkedArray, n_parts) -> None:
    """The distinct non-blank member ids of a batch, whatever the rows' buckets."""
    seen = inputs.clean_text(member_id)
    if len(seen):
        seen = pc.unique(seen)
        if seen.null_count:
            seen = seen.drop_null()
        col = pa.chunked_array([seen]) if isinstance(seen, pa.Array) else seen
        members.add(pa.table({"member_id": col}), member_parts(col, n_parts))


def _match(claims: Spool, counts: dict, clock) -> tuple[dict, np.ndarray]:
    """Claim-id matching, partition by partition; the pharmacy audit block and the sorted
    input rows of the tracked rows that are reversed or duplicates (only tracked rows that
    passed the checks have claim keys)."""
    n_rev = n_dup = 0
    drop = []
    for p in range(claims.n_parts):
        t = claims.read(p)
        if t is None:
            continue
        kind = to_numpy(t.column("kind"), np.uint8)
        rev, dup = validate.match_claim_hashes(
            to_numpy(t.column("hash"), np.int64),
            t.column("claim_id"),
            (kind & _REVERSAL) != 0,
            (kind & _PAID) != 0,
        )
        n_rev += int(np.count_nonzero(rev))
        n_dup += int(np.count_nonzero(dup))
        gone = rev | dup
        if gone.any():
            drop.append(to_numpy(t.column("row"), np.int64)[gone])
        claims.release(p)
        clock.tick("claim-id partitions matched", p + 1)
    clock.lap("match")
    reasons = counts["reasons"]
    n_rejected = int(reasons.sum())
    buckets = {
        "rejected": n_rejected,
        "reversal": counts["reversal"],
        "reversed": n_rev,
        "duplicate": n_dup,
        "untracked": counts["untracked"],
        "used": counts["tracked"] - n_rev - n_dup,
    }
    block = {
        "rows_read": int(counts["rows_read"]),
        "buckets": {k: int(buckets[k]) for k in validate.PHARMACY_BUCKETS},
        "rejected_by_reason": {
            name: int(reasons[i]) for i, name in enumerate(validate.PHARMACY_REASONS)
        },
    }
    drop_rows = np.sort(np.concatenate(drop)) if drop else np.zeros(0, np.int64)
    return block, drop_rows


def _medical_pass(
    src, codesets, events, members, rejected, n_parts, clock, *, date_format=None, offenders=None
) -> dict:
    reason_counts = _Counts(validate.MEDICAL_REASONS)
    buckets = np.zeros(len(validate.MEDICAL_BUCKETS), np.int64)
    for r0, t in _timed_batches(src, clock, "validate", "medical"):
        cols = inputs.conform_medical(inputs.Source(t, src.name), date_format=date_format)
        rows = validate.validate_medical(cols, codesets)
        reason_counts.add_reasons(rows.reason)
        if offenders is not None:
            offenders.add("medical", t, rows.reason, validate.MEDICAL_REASONS)
        buckets += np.bincount(rows.bucket, minlength=len(buckets))
        used = rows.bucket == validate.MEDICAL_BUCKETS.index("used")
        if used.any():
            kept = keep_rows({"member_id": cols.member_id, "service_date": cols.service_date}, used)
            member = inputs.clean_text(kept["member_id"])
            events.add(
                pa.table(
                    {
                        "member_id": member,
                        "service_date": kept["service_date"],
                        "mask": pa.array(rows.mask[used]),
                    }
                ),
                member_parts(member, n_parts),
            )
        if members is not None:
            _add_members(members, cols.member_id, n_parts)
        if rejected is not None:
            rejected.add("medical", t, r0, rows.reason, validate.MEDICAL_REASONS)
    if rejected is not None:
        rejected.end_input("medical", validate.MEDICAL_REASONS)
    r = reason_counts.reason
    return {
        "rows_read": int(reason_counts.rows),
        "buckets": {name: int(buckets[i]) for i, name in enumerate(validate.MEDICAL_BUCKETS)},
        "rejected_by_reason": {name: int(r[i]) for i, name in enumerate(validate.MEDICAL_REASONS)},
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
    from rxrisk.scoring.encode import DrugTable, encode
    from rxrisk.scoring.run import score_claims

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
        for p in range(book.n_parts):
            f = book.fills.read(p)
            f = _empty_fills(book.fills, book.member_type) if f is None else f
            row = to_numpy(f.column("row"), np.int64)
            drop = book.dropped_rows
            if len(drop) and len(row):
                pos = np.minimum(np.searchsorted(drop, row), len(drop) - 1)
                keep = drop[pos] != row
                if not keep.all():
                    f = f.filter(pa.array(keep))
                    row = row[keep]
            med = {"medical_member": None, "service_date": None, "medical_mask": None}
            if book.events is not None:
                e = book.events.read(p)
                if e is None:
                    mtype = book.member_type
                    e = pa.table(
                        {
                            "member_id": pa.array([], mtype),
                            "service_date": pa.array([], pa.date32()),
                            "mask": pa.array([], pa.uint8()),
                        }
                    )
                med = {
                    "medical_member": e.column("member_id"),
                    "service_date": e.column("service_date"),
                    "medical_mask": to_numpy(e.column("mask"), np.uint8),
                }
            extra = None
            if book.members is not None:
                m = book.members.read(p)
                if m is not None:
                    extra = m.column("member_id")
            clock.lap("select")
            claims = encode(
                pharmacy_member=f.column("member_id"),
                fill_date=f.column("fill_date"),
                quantity=f.column("quantity"),
                days_supply=f.column("days_supply"),
                prescriber=f.column("prescriber_id"),
                pharmacy=f.column("pharmacy_id"),
                ref_index=to_numpy(f.column("ref_index"), np.int32),
                input_row=row,
                drugs=drugs,
                extra_members=extra,
                **med,
            )
            for s in (book.fills, book.events, book.members):
                if s is not None:
                    s.release(p)
            clock.lap("encode")
            table, n = score_claims(
                claims, days, config, all_members=all_members, threads=threads, clock=clock
            )
            tables.append(table)
            n_scored += n
            clock.tick("member partitions scored", p + 1)
        members = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        if len(tables) > 1 and members.num_rows:
            order = pc.sort_indices(
                members, sort_keys=[("member_id", "ascending"), ("as_of", "ascending")]
            )
            members = members.take(order).combine_chunks()
        clock.lap("output")
        return members, book.audit_blocks, n_scored, book.quarantine
    finally:
        book.close()


def _empty_fills(spool: Spool, member_type: pa.DataType) -> pa.Table:
    if spool.schema is not None:
        return spool.schema.empty_table()
    return pa.table(
        {
            "row": pa.array([], pa.int64()),
            "member_id": pa.array([], member_type),
            "fill_date": pa.array([], pa.date32()),
            "quantity": pa.array([], pa.float64()),
            "days_supply": pa.array([], pa.int64()),
            "prescriber_id": pa.array([], pa.string()),
            "pharmacy_id": pa.array([], pa.string()),
            "ref_index": pa.array([], pa.int32()),
        }
    )
